package bus

import (
	"context"
	"testing"

	"github.com/aiops-dev/aiops/pkg/errs"
	"github.com/nats-io/nats.go/jetstream"
)

// DEADLETTER is bounded and discards its oldest dead letters to store new
// ones, which the server tells nobody. Once it is nearly full, a consumer
// storing dead letters says so: counted (aiops_bus_deadletters_near_full_total)
// and logged, so that operators learn before dead letters are lost.
func TestDeadLettersIntoANearlyFullStreamAreCounted(t *testing.T) {
	e := newEnv(t, newTestServerURL(t))
	if err := e.js.DeleteStream(testCtx(t), e.dlq); err != nil {
		t.Fatal(err)
	}
	if _, err := EnsureStream(testCtx(t), e.js, jetstream.StreamConfig{Name: e.dlq, Subjects: []string{e.dlPref + ".>"},
		Storage: jetstream.MemoryStorage, MaxBytes: 4 << 10, Discard: jetstream.DiscardOld}); err != nil {
		t.Fatal(err)
	}
	const n = 40 // a few hundred bytes each: several times the 4 KiB
	e.publish("bad", n)
	c := newConsumer(t, e, e.consumerConfig("dlfull"))
	c.dlCheckEvery = 0 // looks at every dead letter
	stop := runConsumer(t, c, Sync(func(context.Context, *Delivery) error { return errs.Permanentf("bad") }))
	waitFor(t, "every message dead-lettered", func() bool { return c.Stats().DeadLettered == n })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	s, err := e.js.Stream(testCtx(t), e.dlq)
	if err != nil {
		t.Fatal(err)
	}
	if kept := s.CachedInfo().State.Msgs; kept == n {
		t.Fatalf("all %d dead letters kept: the stream was never full", n)
	}
	if c.Stats().DeadLetterNearFull == 0 {
		t.Fatalf("%d of %d dead letters discarded by the stream, none counted", n-s.CachedInfo().State.Msgs, n)
	}
}
