package bus

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aiops-dev/aiops/pkg/testenv"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
)

var uniq atomic.Int64

// env is one test's view of a JetStream server: its own stream and subject
// prefix, so tests stay independent even on a shared $AIOPS_TEST_NATS_URL.
type env struct {
	t      testing.TB
	nc     *nats.Conn
	js     jetstream.JetStream
	stream string // work stream, subjects <prefix>.>
	prefix string
	dlq    string // dead-letter stream, subjects <prefix>dl.>
	dlPref string
}

func newEnv(t testing.TB, url string) *env {
	t.Helper()
	return newReplicatedEnv(t, url, 1)
}

// newReplicatedEnv is newEnv with streams of replicas copies, on a
// cluster of at least that many nodes (testenv.StartNATSCluster).
func newReplicatedEnv(t testing.TB, url string, replicas int) *env {
	t.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	n := uniq.Add(1)
	e := &env{t: t, nc: nc, js: js,
		stream: fmt.Sprintf("W%d_%d", time.Now().UnixNano()%1e9, n),
		dlq:    fmt.Sprintf("DL%d_%d", time.Now().UnixNano()%1e9, n),
	}
	e.prefix = "w" + e.stream[1:]
	e.dlPref = "dl" + e.stream[1:]
	ctx := testCtx(t)
	for _, sc := range []jetstream.StreamConfig{
		{Name: e.stream, Subjects: []string{e.prefix + ".>"}, Storage: jetstream.MemoryStorage, Duplicates: time.Minute, Replicas: replicas},
		{Name: e.dlq, Subjects: []string{e.dlPref + ".>"}, Storage: jetstream.MemoryStorage, Replicas: replicas},
	} {
		if _, err := EnsureStream(ctx, js, sc); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		if !nc.IsConnected() {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = js.DeleteStream(ctx, e.stream)
		_ = js.DeleteStream(ctx, e.dlq)
	})
	return e
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func testLog(t testing.TB) zerolog.Logger {
	return zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
}

// publish stores n messages <prefix>.<sub> with ids id-0..id-n-1 and data "i".
func (e *env) publish(sub string, n int) {
	e.t.Helper()
	p, err := NewPublisher(e.js)
	if err != nil {
		e.t.Fatal(err)
	}
	ms := make([]Message, n)
	for i := range ms {
		ms[i] = Message{Subject: e.prefix + "." + sub, ID: fmt.Sprintf("%s-%d", sub, i), Data: []byte(fmt.Sprint(i))}
	}
	if _, err := p.PublishAll(testCtx(e.t), ms); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) consumerConfig(durable string) ConsumerConfig {
	return ConsumerConfig{
		Stream:           e.stream,
		Durable:          durable,
		BatchSize:        50,
		FetchWait:        100 * time.Millisecond,
		AckWait:          time.Second,
		Backoff:          []time.Duration{10 * time.Millisecond},
		DeadLetterPrefix: e.dlPref,
	}
}

// runConsumer runs c in the background; the returned func cancels it and
// returns Run's result.
func runConsumer(t testing.TB, c *Consumer, h AsyncHandler) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- c.Run(ctx, h) }()
	var once atomic.Bool
	stop = func() error {
		if !once.CompareAndSwap(false, true) {
			return nil
		}
		cancel()
		select {
		case err := <-errc:
			return err
		case <-time.After(30 * time.Second):
			t.Fatal("Run did not return 30s after cancel")
			return nil
		}
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

// waitFor polls cond until it holds or fails the test after 20s.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// fetchAll reads every message of stream through an ephemeral consumer.
func fetchAll(t testing.TB, js jetstream.JetStream, stream string) []jetstream.Msg {
	t.Helper()
	ctx := testCtx(t)
	s, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	n := s.CachedInfo().State.Msgs
	if n == 0 {
		return nil
	}
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var out []jetstream.Msg
	for uint64(len(out)) < n {
		mb, err := c.Fetch(int(n)-len(out), jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for m := range mb.Messages() {
			out = append(out, m)
		}
		if err := mb.Error(); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func newTestServerURL(t testing.TB) string { return testenv.NATS(t) }
