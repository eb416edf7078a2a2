package notifier

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/bus"
)

// Two notifier instances on one durable: one delivers while the other
// stands by; when the active one stops mid-stream the other takes over,
// and every incident reaches the receiver exactly once.
func TestTwoInstancesDeliverOnce(t *testing.T) {
	r := newJSRig(t, zerolog.ErrorLevel)
	js := r.js
	var mu sync.Mutex
	got := map[string]int{}
	idRE := regexp.MustCompile(`inc-\d{8}`)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		buf := make([]byte, 1<<16)
		n, _ := r.Body.Read(buf)
		if id := idRE.Find(buf[:n]); id != nil {
			mu.Lock()
			got[string(id)]++
			mu.Unlock()
		}
	}))
	defer hook.Close()
	cfg := Config{Routes: hookRoutes(t, hook.URL), Lease: bus.LeaseConfig{TTL: 3 * time.Second}}
	cfg.Delivery.RateLimit.Disabled = true
	cfg.Consumer.FetchWait = 50 * time.Millisecond
	start := func() (*Service, func()) { return r.start(cfg) }
	publish := func(from, to int) {
		now := time.Now().UTC()
		for i := from; i < to; i++ {
			e := incidentEvent(t, i, now)
			data, _ := e.MarshalJSON()
			if _, err := js.Publish(context.Background(), e.Subject(), data, jetstream.WithMsgID(e.ID)); err != nil {
				t.Fatal(err)
			}
		}
	}
	wait := func(n int) {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			mu.Lock()
			k := len(got)
			mu.Unlock()
			if k >= n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d of %d incidents delivered", k, n)
			}
		}
	}
	a, stopA := start()
	for deadline := time.Now().Add(20 * time.Second); !a.lease.Valid(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) { // a takes the lease first
			t.Fatal("the first instance did not take the lease in 20s")
		}
	}
	b, stopB := start()
	defer stopB()
	publish(0, 50)
	wait(50)
	if n := b.ConsumerStats().Delivered; n != 0 {
		t.Fatalf("the standby consumed %d events while the other held the lease", n)
	}
	stopA()
	publish(50, 100)
	wait(100)
	if n := b.ConsumerStats().Delivered; n < 50 {
		t.Fatalf("the standby consumed %d events after taking over, want the last 50", n)
	}
	mu.Lock()
	defer mu.Unlock()
	for id, n := range got {
		if n != 1 {
			t.Errorf("%s delivered %d times", id, n)
		}
	}
	if len(got) != 100 {
		t.Fatalf("%d incidents delivered, want 100", len(got))
	}
}

// A holder that loses its lease while a request to a receiver is on its
// way ends the request then, not at the drain's end (up to 15 s later,
// or a send's whole retry budget): the next holder may have sent a newer
// state of the incident meanwhile (its resolve), and the old request,
// answered or retried late, would put the receiver back to the older
// state (a PagerDuty trigger after the resolve opens the alert again).
func TestLostLeaseEndsTheSendsInFlight(t *testing.T) {
	r := newJSRig(t, zerolog.ErrorLevel)
	entered := make(chan struct{}, 1)
	cut := make(chan struct{}, 1)
	release := make(chan struct{})
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		_, _ = io.ReadAll(req.Body) // read whole, the server sees the client go
		select {
		case entered <- struct{}{}:
		default:
		}
		select {
		case <-req.Context().Done():
			select {
			case cut <- struct{}{}:
			default:
			}
		case <-release:
		}
	}))
	t.Cleanup(hook.Close)
	t.Cleanup(func() { close(release) }) // before the hook's Close
	cfg := Config{Routes: hookRoutes(t, hook.URL), Lease: bus.LeaseConfig{TTL: 3 * time.Second}}
	cfg.Delivery.RateLimit.Disabled = true
	cfg.Delivery.Timeout = MaxSendTimeout
	cfg.Consumer.FetchWait = 50 * time.Millisecond
	svc, stop := r.start(cfg)
	defer stop()
	for deadline := time.Now().Add(20 * time.Second); !svc.lease.Valid(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the notifier did not take the lease in 20s")
		}
	}
	e := incidentEvent(t, 1, time.Now().UTC())
	data, _ := e.MarshalJSON()
	if _, err := r.js.Publish(context.Background(), e.Subject(), data, jetstream.WithMsgID(e.ID)); err != nil {
		t.Fatal(err)
	}
	<-entered
	// Another holder takes the key: the next renewal (within a third of
	// the TTL) finds it written since, and the lease is lost.
	leases, err := r.js.KeyValue(context.Background(), cfg.Lease.WithDefaults().Bucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := leases.Put(context.Background(), "notifier."+svc.proc.cfg.Consumer.Durable, []byte("next-holder")); err != nil {
		t.Fatal(err)
	}
	// Within the drain's wait for the sends in flight (drainTimeout), which
	// cancels them at its end.
	select {
	case <-cut:
	case <-time.After(drainTimeout / 2):
		t.Fatalf("the request begun before the lease was lost was still going %v after", drainTimeout/2)
	}
}

// A notifier whose terms end in errors (its open incidents unreadable)
// stands by and tries again every few seconds for ever: /readyz says so
// until a term reads them, instead of ready while it delivers nothing.
func TestReadinessFailsWhileTermsCannotReadTheOpenIncidents(t *testing.T) {
	r := newJSRig(t, zerolog.Disabled)
	ctx := context.Background()
	cfg := Config{Routes: hookRoutes(t, "http://127.0.0.1:1/hook")}
	cfg.State.Bucket = "ready-state"
	svc, err := New(ctx, r.js, cfg, r.log)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := r.js.KeyValue(ctx, "ready-state")
	if err != nil {
		t.Fatal(err)
	}
	status, err := kv.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	config := status.(*jetstream.KeyValueBucketStatus).StreamInfo().Config
	if err := r.js.DeleteStream(ctx, config.Name); err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- svc.Run(runCtx) }()
	defer func() { cancel(); <-done }()
	check := svc.Checks()[0]
	for deadline := time.Now().Add(20 * time.Second); check.Fn(ctx) == nil; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("ready while the open incidents cannot be read")
		}
	}
	if _, err := r.js.CreateStream(ctx, config); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); check.Fn(ctx) != nil; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("readiness %v once the open incidents can be read", check.Fn(ctx))
		}
	}
}

// A standby leaves the consumer as the instance holding the lease set it:
// in a rolling update the new build's standby starts beside the old
// build's active instance, and a shorter ack_wait applied then made the
// server redeliver what the active one held (it tells them in progress
// every third of its own, longer ack_wait), again and again, until a
// stop gave them back on their last delivery and they were dead-lettered.
// The standby's settings apply when it takes the lease.
func TestStandbyDoesNotChangeTheActiveInstancesConsumer(t *testing.T) {
	r := newJSRig(t, zerolog.ErrorLevel)
	hook := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer hook.Close()
	cfg := func(ackWait time.Duration) Config {
		c := Config{Routes: hookRoutes(t, hook.URL), Lease: bus.LeaseConfig{TTL: 3 * time.Second}}
		c.Consumer.FetchWait = 50 * time.Millisecond
		c.Consumer.AckWait = ackWait
		return c
	}
	ackWait := func() time.Duration {
		t.Helper()
		c, err := r.js.Consumer(context.Background(), "EVENTS", "notifier")
		if err != nil {
			t.Fatal(err)
		}
		return c.CachedInfo().Config.AckWait
	}
	a, stopA := r.start(cfg(5 * time.Minute))
	for deadline := time.Now().Add(20 * time.Second); !a.lease.Valid(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the first instance did not take the lease in 20s")
		}
	}
	b, stopB := r.start(cfg(time.Minute))
	defer stopB()
	if got := ackWait(); got != 5*time.Minute {
		t.Fatalf("with a standby started beside the active instance the consumer's ack_wait is %s, want the active one's 5m", got)
	}
	stopA()
	for deadline := time.Now().Add(20 * time.Second); !b.lease.Valid(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the standby did not take the lease in 20s after the active instance stopped")
		}
	}
	for deadline := time.Now().Add(10 * time.Second); ackWait() != time.Minute; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the standby took the lease and the consumer's ack_wait is still %s, want its own 1m", ackWait())
		}
	}
}
