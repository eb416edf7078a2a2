package bus

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/aiops-dev/aiops/pkg/errs"
	"github.com/nats-io/nats.go"
)

// A dead-letter stream that takes the publish and never answers (a stalled
// server) must not hold the message past its ack wait: the server would
// hand it out again, to another instance too, while this one still waits.
// The wait ends first and the message is naked, kept for a later try; and
// the publish given up leaves nothing pending in the connection's shared
// publish window, which detector snapshots use too (a dead letter without
// an answer held its slot for ever).
func TestDeadLetterStalledIsGivenBackWithinAckWait(t *testing.T) {
	e := newEnv(t, newTestServerURL(t))
	e.publish("bad", 1)
	cfg := e.consumerConfig("dlstall") // ack wait 1s
	c := newConsumer(t, e, cfg)
	if err := e.js.DeleteStream(testCtx(t), e.dlq); err != nil {
		t.Fatal(err)
	}
	// Takes every dead letter, answers none.
	sub, err := e.nc.Subscribe(e.dlPref+".>", func(*nats.Msg) {})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	var calls atomic.Int64
	failedAtSecond := make(chan uint64, 1)
	stop := runConsumer(t, c, Sync(func(context.Context, *Delivery) error {
		if calls.Add(1) == 2 {
			failedAtSecond <- c.Stats().DeadLetterFailed
		}
		return errs.Permanentf("not a number")
	}))
	waitFor(t, "the second delivery", func() bool { return calls.Load() >= 2 })
	if failed := <-failedAtSecond; failed == 0 {
		t.Fatalf("delivered again while its first dead letter still waited for the stream: held past ack wait %s", cfg.AckWait)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if s := c.Stats(); s.DeadLettered != 0 || s.Acked != 0 {
		t.Fatalf("%+v: the message was settled though no dead letter was stored", s)
	}
	if n := e.js.PublishAsyncPending(); n != 0 {
		t.Fatalf("%d publishes left pending on the shared JetStream context by dead letters given up", n)
	}
}

// A fetched batch waits in the client while the handler takes its
// messages one by one (a processor with one worker; one waiting up to 1 s
// for room for its outputs). Those still waiting must be told in progress:
// the server would otherwise hand them out again after ack wait to
// another instance (or to this one later), while they are still queued
// here, and count a delivery no handler saw.
func TestFetchedMessagesWaitingAreToldInProgress(t *testing.T) {
	e := newEnv(t, newTestServerURL(t))
	e.publish("queued", 2) // data "0" and "1", fetched in one batch
	cfg := e.consumerConfig("queued")
	a := newConsumer(t, e, cfg)
	release := make(chan struct{})
	var first atomic.Bool
	stopA := runConsumer(t, a, Sync(func(_ context.Context, d *Delivery) error {
		if string(d.Data) == "0" {
			first.Store(true)
			<-release // the handler is slow with the first
		}
		return nil
	}))
	var releaseOnce sync.Once
	t.Cleanup(func() { releaseOnce.Do(func() { close(release) }) }) // before the stop's
	waitFor(t, "the first message handed out", first.Load)
	// Another instance of the same durable.
	b := newConsumer(t, e, cfg)
	stolen := make(chan struct{})
	stopB := runConsumer(t, b, Sync(func(_ context.Context, d *Delivery) error {
		if string(d.Data) == "1" {
			close(stolen)
		}
		return nil
	}))
	// Told at a third of ack wait, then every third: four signals cover
	// more than an ack wait since the batch came.
	waitFor(t, "the queued message told in progress or handed out again", func() bool {
		select {
		case <-stolen:
			return true
		default:
			return a.Stats().InProgress >= 4
		}
	})
	select {
	case <-stolen:
		t.Fatalf("the message queued behind a slow one was handed to another instance (%d in-progress signals)", a.Stats().InProgress)
	default:
	}
	releaseOnce.Do(func() { close(release) })
	waitFor(t, "both acked by the first instance", func() bool { return a.Stats().Acked == 2 })
	for _, stop := range []func() error{stopA, stopB} {
		if err := stop(); err != nil {
			t.Fatal(err)
		}
	}
}
