package bus

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"time"

	"github.com/aiops-dev/aiops/pkg/errs"
	"github.com/aiops-dev/aiops/pkg/testenv"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// A permanent error whose dead letter could not be stored (DEADLETTER away)
// is naked; its redelivery is past MaxDeliver and is dead-lettered without
// the handler. The dead letter must still say why the handler refused it,
// not that no result came within ack wait.
func TestDeadLetterKeepsReasonAfterFailedStore(t *testing.T) {
	e := newEnv(t, newTestServerURL(t))
	e.publish("bad", 1)
	cfg := e.consumerConfig("dlreason")
	cfg.MaxDeliver = 1
	c := newConsumer(t, e, cfg)
	if err := e.js.DeleteStream(testCtx(t), e.dlq); err != nil {
		t.Fatal(err)
	}
	stop := runConsumer(t, c, Sync(func(context.Context, *Delivery) error { return errs.Permanentf("not a number") }))
	waitFor(t, "a dead letter failing", func() bool { return c.Stats().DeadLetterFailed >= 1 })
	if _, err := EnsureStream(testCtx(t), e.js, jetstream.StreamConfig{Name: e.dlq, Subjects: []string{e.dlPref + ".>"}, Storage: jetstream.MemoryStorage}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the dead letter stored", func() bool { return c.Stats().DeadLettered == 1 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	dl := fetchAll(t, e.js, e.dlq)
	if len(dl) != 1 {
		t.Fatalf("%d dead letters, want 1", len(dl))
	}
	if r := dl[0].Headers().Get(HeaderDeadLetterReason); !strings.Contains(r, "not a number") {
		t.Fatalf("dead letter reason %q, want the handler's %q", r, "not a number")
	}
}

// A message near the server's max_payload is stored on its stream, but its
// dead letter (the same data plus the dead-letter headers) is over it: the
// publish fails at once, the message is naked, comes back past MaxDeliver,
// fails again, for ever. It is never settled and never reaches DEADLETTER.
func TestLargeMessageCanBeDeadLettered(t *testing.T) {
	e := newEnv(t, newTestServerURL(t))
	max := int(e.nc.MaxPayload())
	hdr := nats.Header{}
	hdr.Set(jetstream.MsgIDHeader, "big-0")
	// Fits with its own header, with room to spare for the server's.
	data := []byte(strings.Repeat("x", max-120))
	if _, err := e.js.PublishMsg(testCtx(t), &nats.Msg{Subject: e.prefix + ".big", Header: hdr, Data: data}); err != nil {
		t.Fatalf("the message itself is refused: %v", err)
	}
	cfg := e.consumerConfig("bigdl")
	cfg.MaxDeliver = 2
	c := newConsumer(t, e, cfg)
	stop := runConsumer(t, c, Sync(func(context.Context, *Delivery) error {
		return errs.Permanentf("refused: too large")
	}))
	deadline := time.Now().Add(5 * time.Second)
	for c.Stats().DeadLettered == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	_ = stop()
	if s := c.Stats(); s.DeadLettered != 1 {
		t.Fatalf("not dead-lettered after 5s: %+v (its dead letter keeps failing, the message comes back for ever)", s)
	}
	dl := fetchAll(t, e.js, e.dlq)
	if len(dl) != 1 || !strings.HasPrefix(dl[0].Headers().Get(HeaderDeadLetterReason), "refused") || dl[0].Headers().Get(HeaderStreamSeq) != "1" {
		t.Fatalf("%d dead letters, want 1 with its reason and sequence", len(dl))
	}
	t.Logf("dead letter: %d of %d bytes, truncated header %q", len(dl[0].Data()), len(data), dl[0].Headers().Get("Aiops-Deadletter-Truncated"))
}

// Each stop naks, unhandled, what the fetch under way brings after the
// cancellation, and each nak is a delivery. A message caught so by
// MaxDeliver stops (a few restarts in a row, a lease changing hands) comes
// back past MaxDeliver and is dead-lettered, "no result within ack wait",
// though no handler ever saw it.
func TestStopsDoNotDeadLetterUnhandledMessages(t *testing.T) {
	e := newEnv(t, newTestServerURL(t))
	e.publish("good", 1)
	cfg := e.consumerConfig("stops")
	cfg.MaxDeliver = 3
	c := newConsumer(t, e, cfg)
	var handled atomic.Int64
	h := Sync(func(context.Context, *Delivery) error { handled.Add(1); return nil })
	stopped, cancel := context.WithCancel(context.Background())
	cancel()
	for range cfg.MaxDeliver {
		// The fetch under way when the stop came (Run's loop, ctx ended).
		c.outstanding.Add(1)
		got, err := c.fetch(stopped, context.Background(), 1, h)
		c.release(1 - int64(got))
		if err != nil {
			t.Fatal(err)
		}
	}
	stop := runConsumer(t, c, h)
	waitFor(t, "the message settled", func() bool { s := c.Stats(); return s.Acked+s.DeadLettered == 1 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if s := c.Stats(); s.DeadLettered != 0 || handled.Load() != 1 {
		t.Fatalf("handled %d times, %+v: a good message dead-lettered by stops, never handled", handled.Load(), s)
	}
}

// The fetch under way at a stop waits on for FetchWait, and what it brings
// after the cancellation is given back. Naked at once, a message came
// straight back into that same fetch, was naked again, and so on: within
// milliseconds it was on its last delivery, handed to a handler that could
// only give it back too (a correlator whose lease ran out), and
// dead-lettered. Signals published during a lost lease's drain were taken
// from the holder that had the lease then (found by a crash test pausing
// the active correlator past its lease: 3 signals dead-lettered a few ms
// after they were published, at their 5th delivery).
func TestStoppedFetchGivesAMessageBackOnceNotUntilItsLastDelivery(t *testing.T) {
	e := newEnv(t, newTestServerURL(t))
	e.publish("good", 1)
	cfg := e.consumerConfig("stopfetch")
	cfg.MaxDeliver = 5
	cfg.FetchWait = 2 * time.Second // long enough for the bounces to show
	c := newConsumer(t, e, cfg)
	var stoppedHandled atomic.Int64
	fenced := Sync(func(context.Context, *Delivery) error {
		stoppedHandled.Add(1)
		return errs.GivenBack(errors.New("standing by"))
	})
	stopped, cancel := context.WithCancel(context.Background())
	cancel()
	c.outstanding.Add(10)
	got, err := c.fetch(stopped, context.Background(), 10, fenced)
	c.release(10 - int64(got))
	if err != nil {
		t.Fatal(err)
	}
	if s := c.Stats(); got != 1 || stoppedHandled.Load() != 0 || s.DeadLettered != 0 {
		t.Fatalf("one stopped fetch: %d deliveries, %d handled, %+v; want the message fetched once and given back unhandled", got, stoppedHandled.Load(), s)
	}
	// The next instance gets it on its second delivery.
	var delivered atomic.Uint64
	stop := runConsumer(t, c, Sync(func(_ context.Context, d *Delivery) error { delivered.Store(d.Delivered); return nil }))
	waitFor(t, "the message handled", func() bool { return c.Stats().Acked == 1 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if n := delivered.Load(); n != 2 {
		t.Fatalf("handled on delivery %d, want 2", n)
	}
}

// A dead letter's msg id is <stream>.<durable>.<seq>. A stream deleted and
// created again numbers from 1 again: within DEADLETTER's duplicate window
// the new message's dead letter is taken for the old one's and dropped,
// while the message itself is terminated: stored nowhere.
func TestDeadLettersOfARecreatedStreamAreKept(t *testing.T) {
	e := newEnv(t, newTestServerURL(t))
	ctx := testCtx(t)
	cfg := e.consumerConfig("again")
	run := func(want uint64) *Consumer {
		c := newConsumer(t, e, cfg)
		stop := runConsumer(t, c, Sync(func(context.Context, *Delivery) error { return errs.Permanentf("bad") }))
		waitFor(t, "the dead letter", func() bool { return c.Stats().DeadLettered == want })
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		return c
	}
	e.publish("first", 1)
	run(1)
	sc := jetstream.StreamConfig{Name: e.stream, Subjects: []string{e.prefix + ".>"}, Storage: jetstream.MemoryStorage, Duplicates: time.Minute}
	if err := e.js.DeleteStream(ctx, e.stream); err != nil {
		t.Fatal(err)
	}
	if _, err := EnsureStream(ctx, e.js, sc); err != nil {
		t.Fatal(err)
	}
	e.publish("second", 1) // sequence 1 again
	run(1)
	dl := fetchAll(t, e.js, e.dlq)
	var subjects []string
	for _, m := range dl {
		subjects = append(subjects, m.Headers().Get(HeaderOriginalSubject))
	}
	if len(dl) != 2 {
		t.Fatalf("%d dead letters %v, want 2: the second message was terminated and its dead letter dropped as a duplicate", len(dl), subjects)
	}
}

// A connection closed for good (max_reconnects spent) must end the service
// so that it is restarted (the consumer's Run returns the error for that).
// Lead instead logs the term's error, sleeps and tries to acquire again,
// which fails for ever on the closed connection: it never returns, and a
// correlator or notifier stays up doing nothing.
func TestLeadEndsWhenTheConnectionIsClosed(t *testing.T) {
	srv := testenv.StartNATS(t)
	nc, err := nats.Connect(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	l, err := NewLease(testCtx(t), js, "leases_closed", "stage.durable", "me", 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	term := func(ctx context.Context) error {
		close(started)
		<-ctx.Done()
		return fmt.Errorf("consumer: %w", nats.ErrConnectionClosed)
	}
	ended := make(chan error, 1)
	go func() { ended <- l.Lead(context.Background(), testLog(t), term, nil) }()
	<-started
	nc.Close()
	select {
	case err := <-ended:
		t.Logf("Lead returned: %v", err)
	case <-time.After(15 * time.Second):
		t.Fatal("Lead still running 15s after its connection was closed for good")
	}
}
