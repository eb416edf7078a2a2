package bus

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aiops-dev/aiops/pkg/testenv"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"
)

// The consumer outlives a server restart: it keeps fetching after the
// reconnect and loses none of the messages stored before or after.
func TestConsumerSurvivesServerRestart(t *testing.T) {
	srv := testenv.StartNATS(t)
	e := newEnv(t, srv.URL())
	ctx := testCtx(t)
	// The env's streams live in memory; this test needs them on disk.
	durable := jetstream.StreamConfig{Name: "DISK" + e.stream, Subjects: []string{"disk" + e.prefix + ".>"}, Storage: jetstream.FileStorage}
	if _, err := EnsureStream(ctx, e.js, durable); err != nil {
		t.Fatal(err)
	}
	cfg := e.consumerConfig("restart")
	cfg.Stream = durable.Name
	c := newConsumer(t, e, cfg)
	var mu sync.Mutex
	seen := map[string]bool{}
	stop := runConsumer(t, c, Sync(func(ctx context.Context, d *Delivery) error {
		mu.Lock()
		seen[string(d.Data)] = true
		mu.Unlock()
		return nil
	}))
	p, err := NewPublisher(e.js)
	if err != nil {
		t.Fatal(err)
	}
	publish := func(from, to int) {
		ms := make([]Message, 0, to-from)
		for i := from; i < to; i++ {
			ms = append(ms, Message{Subject: "disk" + e.prefix + ".x", ID: fmt.Sprint(i), Data: []byte(fmt.Sprint(i))})
		}
		// After a restart the first attempts may fail until the client has
		// reconnected; the same ids make retrying safe.
		for {
			pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			_, err := p.PublishAll(pctx, ms)
			cancel()
			if err == nil {
				return
			}
			if ctx.Err() != nil {
				t.Fatalf("publish %d..%d: %v", from, to, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(seen) }
	publish(0, 50)
	waitFor(t, "50 before the restart", func() bool { return count() == 50 })
	srv.Restart()
	publish(50, 100)
	waitFor(t, "100 after the restart", func() bool { return count() == 100 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

func TestConsumerCollector(t *testing.T) {
	e := newEnv(t, newTestServerURL(t))
	e.publish("m", 5)
	c := newConsumer(t, e, e.consumerConfig("metrics"))
	stop := runConsumer(t, c, Sync(func(ctx context.Context, d *Delivery) error { return nil }))
	waitFor(t, "5 acks", func() bool { return c.Stats().Acked == 5 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf(`
# HELP aiops_bus_deliveries_total Deliveries handed to the handler.
# TYPE aiops_bus_deliveries_total counter
aiops_bus_deliveries_total{consumer="metrics",stream=%q} 5
`, e.stream)
	if err := testutil.CollectAndCompare(c.Collector(), strings.NewReader(want), "aiops_bus_deliveries_total"); err != nil {
		t.Fatal(err)
	}
	want = fmt.Sprintf(`
# HELP aiops_bus_outstanding Deliveries handed out or being fetched and not yet settled; bounded by max_ack_pending.
# TYPE aiops_bus_outstanding gauge
aiops_bus_outstanding{consumer="metrics",stream=%[1]q} 0
`, e.stream)
	if err := testutil.CollectAndCompare(c.Collector(), strings.NewReader(want), "aiops_bus_outstanding"); err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(c.Collector(), "aiops_bus_results_total"); n != 5 {
		t.Fatalf("%d result series, want 5", n)
	}

	// aiops run registers one collector per service's consumer on one
	// registry: they must not clash.
	other := newConsumer(t, e, e.consumerConfig("metrics-2"))
	reg := prometheus.NewRegistry()
	if err := reg.Register(c.Collector()); err != nil {
		t.Fatal(err)
	}
	if err := reg.Register(other.Collector()); err != nil {
		t.Fatalf("second consumer's collector: %v", err)
	}
	if n, err := testutil.GatherAndCount(reg, "aiops_bus_deliveries_total"); err != nil || n != 2 {
		t.Fatalf("%d delivery series, %v; want one per consumer", n, err)
	}
}

// A consumer deleted on the server while the runner was at its
// MaxAckPending bound (no fetch waiting, so nothing heard "consumer
// deleted") is re-created: the next fetch gets no responders, which must
// lead to the same re-creation, not to fetch failures for ever.
func TestConsumerRecreatedWhenDeletedWhileAtItsBound(t *testing.T) {
	e := newEnv(t, newTestServerURL(t))
	e.publish("held", 2)
	cfg := e.consumerConfig("deleted")
	cfg.BatchSize = 2
	cfg.MaxAckPending = 2
	c := newConsumer(t, e, cfg)
	var mu sync.Mutex
	var held []func(error)
	acked := map[string]bool{}
	stop := runConsumer(t, c, func(_ context.Context, d *Delivery, done func(error)) {
		mu.Lock()
		defer mu.Unlock()
		if d.Subject == e.prefix+".held" && len(held) < 2 {
			held = append(held, done)
			return
		}
		acked[string(d.Data)+"@"+d.Subject] = true
		done(nil)
	})
	waitFor(t, "both deliveries held", func() bool { mu.Lock(); defer mu.Unlock(); return len(held) == 2 })
	if err := e.js.DeleteConsumer(testCtx(t), e.stream, "deleted"); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	for _, done := range held {
		done(nil)
	}
	mu.Unlock()
	e.publish("after", 3)
	waitFor(t, "the messages published after the deletion", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for i := range 3 {
			if !acked[fmt.Sprint(i)+"@"+e.prefix+".after"] {
				return false
			}
		}
		return true
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// A connection closed for good (max_reconnects spent) ends Run with an
// error, so that the service stops and is restarted instead of running on
// without a bus, failing every fetch for ever.
func TestConsumerRunEndsWhenConnectionIsClosed(t *testing.T) {
	u, err := url.Parse(newTestServerURL(t))
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, u.String())
	proxy := testenv.NewProxy(t, u.Host)
	nc, js, err := Connect(testCtx(t), Config{URLs: []string{"nats://" + proxy.Addr()}, MaxReconnects: 1, ReconnectWait: 10 * time.Millisecond},
		testLog(t).Level(zerolog.ErrorLevel+1))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	c, err := NewConsumer(testCtx(t), js, e.consumerConfig("closed"), testLog(t).Level(zerolog.ErrorLevel+1))
	if err != nil {
		t.Fatal(err)
	}
	e.publish("x", 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- c.Run(ctx, Sync(func(context.Context, *Delivery) error { return nil })) }()
	waitFor(t, "the message acked", func() bool { return c.Stats().Acked == 1 })
	proxy.Cut()
	waitFor(t, "the connection closed", nc.IsClosed)
	select {
	case err := <-errc:
		if !errors.Is(err, nats.ErrConnectionClosed) {
			t.Fatalf("Run: %v, want an error wrapping nats.ErrConnectionClosed", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run still fetching 20s after its connection was closed for good")
	}
}

// A consumer deleted on the server after it had acked messages is
// re-created from past what it acked: what was handled is not handed out
// again (the notifier would send old incidents' webhooks again), and
// nothing stored after the deletion is lost.
func TestConsumerRecreatedAfterWhatItAcked(t *testing.T) {
	e := newEnv(t, newTestServerURL(t))
	e.publish("old", 5)
	c := newConsumer(t, e, e.consumerConfig("resume"))
	var mu sync.Mutex
	seen := map[string]int{}
	stop := runConsumer(t, c, Sync(func(_ context.Context, d *Delivery) error {
		mu.Lock()
		defer mu.Unlock()
		seen[d.Subject[len(e.prefix)+1:]+"-"+string(d.Data)]++
		return nil
	}))
	waitFor(t, "the server's ack floor at 5", func() bool {
		info, err := e.js.Consumer(testCtx(t), e.stream, "resume")
		return err == nil && info.CachedInfo().AckFloor.Stream == 5
	})
	waitFor(t, "the consumer knowing its ack floor", func() bool { return c.ackFloor.Load() == 5 })
	if err := e.js.DeleteConsumer(testCtx(t), e.stream, "resume"); err != nil {
		t.Fatal(err)
	}
	e.publish("new", 3)
	waitFor(t, "the messages published after the deletion", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return seen["new-0"] == 1 && seen["new-1"] == 1 && seen["new-2"] == 1
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	for k, n := range seen {
		if n != 1 {
			t.Errorf("%s handled %d times, want once", k, n)
		}
	}
	if len(seen) != 8 {
		t.Fatalf("handled %v, want the 5 old and 3 new once each", seen)
	}

	// The service restarted takes the re-created consumer as it is.
	again, err := NewConsumer(testCtx(t), e.js, e.consumerConfig("resume"), testLog(t))
	if err != nil {
		t.Fatalf("a restart on the re-created consumer: %v", err)
	}
	if got := again.ackFloor.Load(); got != 8 {
		t.Fatalf("ack floor %d after the restart, want 8", got)
	}

	// A stream deleted and created again numbers its messages from 1: the
	// consumer re-created on it starts at its beginning.
	stop = runConsumer(t, again, Sync(func(_ context.Context, d *Delivery) error {
		mu.Lock()
		defer mu.Unlock()
		seen[d.Subject[len(e.prefix)+1:]+"-"+string(d.Data)]++
		return nil
	}))
	ctx := testCtx(t)
	s, err := e.js.Stream(ctx, e.stream)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.js.DeleteStream(ctx, e.stream); err != nil {
		t.Fatal(err)
	}
	if _, err := EnsureStream(ctx, e.js, s.CachedInfo().Config); err != nil {
		t.Fatal(err)
	}
	e.publish("reborn", 2)
	waitFor(t, "the messages of the stream created again", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return seen["reborn-0"] == 1 && seen["reborn-1"] == 1
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// countingConsumer counts the requests a runner makes of its consumer.
type countingConsumer struct {
	jetstream.Consumer
	infos, fetches atomic.Int64
}

func (c *countingConsumer) Info(ctx context.Context) (*jetstream.ConsumerInfo, error) {
	c.infos.Add(1)
	return c.Consumer.Info(ctx)
}

func (c *countingConsumer) Fetch(n int, opts ...jetstream.FetchOpt) (jetstream.MessageBatch, error) {
	c.fetches.Add(1)
	return c.Consumer.Fetch(n, opts...)
}

// The ack floor is asked of the server only after the runner settled
// something since it last learned it: an idle consumer (most of them,
// most of the time) adds no JetStream API request a second, while one
// that acks still learns its floor.
func TestConsumerAsksAckFloorOnlyAfterSettling(t *testing.T) {
	e := newEnv(t, newTestServerURL(t))
	cfg := e.consumerConfig("floor")
	cfg.FetchWait = 10 * time.Millisecond
	c := newConsumer(t, e, cfg)
	counted := &countingConsumer{Consumer: c.cons}
	c.cons = counted
	var handled atomic.Int64
	stop := runConsumer(t, c, Sync(func(context.Context, *Delivery) error {
		handled.Add(1)
		return nil
	}))
	// idle fetches of 10ms each: well past ackFloorEvery
	waitFor(t, "200 idle fetches", func() bool { return counted.fetches.Load() >= 200 })
	if n := counted.infos.Load(); n != 0 {
		t.Fatalf("an idle consumer asked its info %d times, want never", n)
	}
	e.publish("x", 3)
	waitFor(t, "the ack floor after 3 acks", func() bool { return handled.Load() == 3 && c.ackFloor.Load() == 3 })
	// Once more, a second after its last ack (the answer before may have
	// missed it), then never while idle.
	fetched := counted.fetches.Load()
	waitFor(t, "200 more idle fetches", func() bool { return counted.fetches.Load() >= fetched+200 })
	asked, fetched := counted.infos.Load(), counted.fetches.Load()
	waitFor(t, "200 more idle fetches", func() bool { return counted.fetches.Load() >= fetched+200 })
	if n := counted.infos.Load(); n != asked {
		t.Fatalf("the consumer asked its info %d more times while idle after learning its floor, want none", n-asked)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// How far behind a consumer is must be on /metrics: in an alert storm
// trial the only way to tell whether the correlator had caught up was
// the nats CLI (consumer info), which needs the NATS token.
func TestConsumerCollectorTellsWhatIsPending(t *testing.T) {
	e := newEnv(t, newTestServerURL(t))
	e.publish("m", 7)
	c := newConsumer(t, e, e.consumerConfig("behind"))
	want := func(pending, ackPending int) {
		t.Helper()
		exp := fmt.Sprintf(`
# HELP aiops_bus_pending Messages of the stream this consumer was not handed yet (the server's num_pending, asked at each scrape).
# TYPE aiops_bus_pending gauge
aiops_bus_pending{consumer="behind",stream=%[1]q} %[2]d
# HELP aiops_bus_ack_pending Messages handed to this consumer and not acked yet (the server's num_ack_pending, asked at each scrape).
# TYPE aiops_bus_ack_pending gauge
aiops_bus_ack_pending{consumer="behind",stream=%[1]q} %[3]d
`, e.stream, pending, ackPending)
		if err := testutil.CollectAndCompare(c.Collector(), strings.NewReader(exp), "aiops_bus_pending", "aiops_bus_ack_pending"); err != nil {
			t.Fatal(err)
		}
	}
	want(7, 0)
	stop := runConsumer(t, c, Sync(func(ctx context.Context, d *Delivery) error { return nil }))
	waitFor(t, "7 acks", func() bool { return c.Stats().Acked == 7 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the acks on the server", func() bool { return serverState(t, e, "behind").NumAckPending == 0 })
	want(0, 0)
}

// The connection's metrics tell a bus gone from one that is up: 0 while
// the server is away, 1 again and a reconnection counted once it is back.
func TestConnCollectorTellsWhetherTheBusIsReachable(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: needs JetStream")
	}
	srv := testenv.StartNATS(t)
	e := newEnv(t, srv.URL())
	c := ConnCollector(e.nc)
	want := func(connected, reconnects int) {
		t.Helper()
		exp := fmt.Sprintf(`
# HELP aiops_bus_connected 1 while the connection to NATS is up, else 0 (reconnecting, or closed).
# TYPE aiops_bus_connected gauge
aiops_bus_connected %d
# HELP aiops_bus_reconnects_total Reconnections to a NATS server (another node of a cluster, or the same one back) since the process started.
# TYPE aiops_bus_reconnects_total counter
aiops_bus_reconnects_total %d
`, connected, reconnects)
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			err := testutil.CollectAndCompare(c, strings.NewReader(exp))
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Fatal(err)
			}
		}
	}
	want(1, 0)
	srv.Shutdown()
	want(0, 0)
	srv.Restart()
	want(1, 1)
}
