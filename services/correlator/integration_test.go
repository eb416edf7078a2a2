package correlator

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/bus"
	"github.com/aiops-dev/aiops/pkg/correlate"
	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/pkg/testenv"
)

// On a real JetStream: a storm goes in, its incidents come out; the
// correlator is stopped mid-storm and started again, and the rest of the
// storm joins the incidents it already had (no duplicate opens), which then
// resolve.
func TestStormAcrossARestart(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: needs JetStream")
	}
	srv := testenv.StartNATS(t)
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	ctx := context.Background()
	nc, js, err := bus.Connect(ctx, bus.Config{URLs: []string{srv.URL()}}, log)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if err := bus.EnsureTopology(ctx, js, bus.DefaultStreams()); err != nil {
		t.Fatal(err)
	}
	cfg := Config{Catalog: writeCatalog(t), State: StateConfig{SaveEvery: 200 * time.Millisecond}}
	cfg.Consumer.FetchWait = 50 * time.Millisecond
	run := func() (stop func()) {
		svc, err := New(ctx, js, cfg, log)
		if err != nil {
			t.Fatal(err)
		}
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- svc.Run(rctx) }()
		return func() {
			cancel()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		}
	}
	publish := func(es ...*event.Envelope) {
		for _, e := range es {
			data, _ := e.MarshalJSON()
			if _, err := js.Publish(ctx, e.Subject(), data, jetstream.WithMsgID(e.ID)); err != nil {
				t.Fatal(err)
			}
		}
	}

	stop := run()
	publish(alertEvent(t, "HighLatency", "web", 0, 0), alertEvent(t, "HighErrorRate", "checkout", 10*time.Second, 0),
		alertEvent(t, "HighLatency", "search", 12*time.Second, 0))
	opened := waitIncidents(t, js, event.IncidentOpened, 2)
	stop()

	stop = run()
	defer stop()
	publish(alertEvent(t, "ReplicationLag", "payments-db", 30*time.Second, 0),
		alertEvent(t, "HighLatency", "web", 0, 2*time.Minute), alertEvent(t, "HighErrorRate", "checkout", 10*time.Second, 2*time.Minute),
		alertEvent(t, "ReplicationLag", "payments-db", 30*time.Second, 3*time.Minute), alertEvent(t, "HighLatency", "search", 12*time.Second, 3*time.Minute),
		// a signal far later moves event time past the quiet periods
		alertEvent(t, "DiskFull", "search", time.Hour, 0))
	resolved := waitIncidents(t, js, event.IncidentResolved, 2)
	if got := waitIncidents(t, js, event.IncidentOpened, 3); len(got) != 3 {
		t.Fatalf("%d incidents opened, want 3 (cascade, search, the late DiskFull)", len(got))
	}
	ids := map[string]bool{}
	for _, b := range opened {
		ids[b.IncidentID] = true
	}
	for _, b := range resolved {
		if !ids[b.IncidentID] {
			t.Fatalf("resolved incident %s was not opened before the restart: the restart made a duplicate", b.IncidentID)
		}
	}
}

// Two instances on one durable at the same time: one holds the lease and
// makes the incidents, the other stands by (its API says so); when the
// active one stops, the standby takes over with the saved state, and the
// rest of the storm joins the same incidents: no duplicate anywhere.
func TestSecondInstanceStandsBy(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: needs JetStream")
	}
	srv := testenv.StartNATS(t)
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	ctx := context.Background()
	nc, js, err := bus.Connect(ctx, bus.Config{URLs: []string{srv.URL()}}, log)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if err := bus.EnsureTopology(ctx, js, bus.DefaultStreams()); err != nil {
		t.Fatal(err)
	}
	cfg := Config{Catalog: writeCatalog(t), State: StateConfig{SaveEvery: 200 * time.Millisecond}, Lease: LeaseConfig{TTL: 3 * time.Second}}
	cfg.Consumer.FetchWait = 50 * time.Millisecond
	type instance struct {
		svc  *Service
		stop func()
	}
	start := func() instance {
		svc, err := New(ctx, js, cfg, log)
		if err != nil {
			t.Fatal(err)
		}
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- svc.Run(rctx) }()
		return instance{svc, func() {
			cancel()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		}}
	}
	publish := func(es ...*event.Envelope) {
		for _, e := range es {
			data, _ := e.MarshalJSON()
			if _, err := js.Publish(ctx, e.Subject(), data, jetstream.WithMsgID(e.ID)); err != nil {
				t.Fatal(err)
			}
		}
	}
	a, b := start(), start()
	publish(alertEvent(t, "HighLatency", "web", 0, 0), alertEvent(t, "HighErrorRate", "checkout", 10*time.Second, 0),
		alertEvent(t, "HighLatency", "search", 12*time.Second, 0))
	opened := waitIncidents(t, js, event.IncidentOpened, 2)
	active, standby := a, b
	if b.svc.proc.leading.Load() {
		active, standby = b, a
	}
	if !active.svc.proc.leading.Load() || standby.svc.proc.leading.Load() {
		t.Fatalf("leading: a %v, b %v; want exactly one", a.svc.proc.leading.Load(), b.svc.proc.leading.Load())
	}
	if _, err := standby.svc.proc.Submit(ctx, correlate.Command{IncidentID: opened[0].IncidentID, Action: "ack"}); !errors.Is(err, ErrStandby) {
		t.Fatalf("a command to the standby: %v, want ErrStandby", err)
	}
	active.stop()
	deadline := time.Now().Add(10 * time.Second)
	for !standby.svc.proc.leading.Load() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if !standby.svc.proc.leading.Load() {
		t.Fatal("the standby did not take over after the active instance stopped")
	}
	defer standby.stop()
	publish(alertEvent(t, "ReplicationLag", "payments-db", 30*time.Second, 0),
		alertEvent(t, "HighLatency", "web", 0, 2*time.Minute), alertEvent(t, "HighErrorRate", "checkout", 10*time.Second, 2*time.Minute),
		alertEvent(t, "ReplicationLag", "payments-db", 30*time.Second, 3*time.Minute), alertEvent(t, "HighLatency", "search", 12*time.Second, 3*time.Minute),
		alertEvent(t, "DiskFull", "search", time.Hour, 0))
	resolved := waitIncidents(t, js, event.IncidentResolved, 2)
	if got := waitIncidents(t, js, event.IncidentOpened, 3); len(got) != 3 {
		t.Fatalf("%d incidents opened, want 3", len(got))
	}
	ids := map[string]bool{}
	for _, o := range opened {
		ids[o.IncidentID] = true
	}
	for _, r := range resolved {
		if !ids[r.IncidentID] {
			t.Fatalf("resolved %s was not opened by the first instance: the takeover made a duplicate", r.IncidentID)
		}
	}
}

// waitIncidents reads the incident events with status until want arrived
// (or 30 s passed) and returns them.
func waitIncidents(t *testing.T, js jetstream.JetStream, status string, want int) []event.IncidentBody {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := js.OrderedConsumer(ctx, bus.StreamEvents, jetstream.OrderedConsumerConfig{FilterSubjects: []string{event.KindFilterAll(event.KindIncident)}})
		if err != nil {
			t.Fatal(err)
		}
		var got []event.IncidentBody
		for {
			batch, err := c.FetchNoWait(100)
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for m := range batch.Messages() {
				n++
				e, err := event.Parse(m.Data())
				if err != nil {
					t.Fatal(err)
				}
				var b event.IncidentBody
				if err := e.DecodeBody(&b); err != nil {
					t.Fatal(err)
				}
				if b.Status == status {
					got = append(got, b)
				}
			}
			if n == 0 {
				break
			}
		}
		if len(got) >= want || time.Now().After(deadline) {
			if len(got) != want {
				t.Fatalf("%d %s incident events, want %d", len(got), status, want)
			}
			return got
		}
		time.Sleep(50 * time.Millisecond)
	}
}
