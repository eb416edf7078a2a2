package bus

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// limitStream bounds e's stream to maxBytes and maxMsgs (0: no bound),
// discarding the oldest past them as the default streams do.
func limitStream(t *testing.T, e *env, maxBytes, maxMsgs int64) {
	t.Helper()
	s, err := e.js.Stream(testCtx(t), e.stream)
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.CachedInfo().Config
	cfg.MaxBytes, cfg.MaxMsgs, cfg.Discard = maxBytes, maxMsgs, jetstream.DiscardOld
	if maxBytes == 0 {
		cfg.MaxBytes = -1
	}
	if maxMsgs == 0 {
		cfg.MaxMsgs = -1
	}
	if _, err := e.js.UpdateStream(testCtx(t), cfg); err != nil {
		t.Fatal(err)
	}
}

func streamBytes(t *testing.T, e *env) uint64 {
	t.Helper()
	s, err := e.js.Stream(testCtx(t), e.stream)
	if err != nil {
		t.Fatal(err)
	}
	return s.CachedInfo().State.Bytes
}

// A consumer's backlog is told against the stream's limit, the larger of
// its share of max_bytes and of max_msgs: the streams discard their
// oldest messages past either, acked or not, so this is how near a
// consumer that fell behind is to losing messages it never processed.
func TestConsumerBacklogAgainstTheStreamLimit(t *testing.T) {
	e := newEnv(t, newTestServerURL(t))
	e.publish("m", 10)
	c := newConsumer(t, e, e.consumerConfig("behind"))
	backlog := func() Backlog {
		t.Helper()
		b, err := ConsumerBacklog(testCtx(t), e.js, e.stream, "behind")
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	wantRatio := func(want float64) {
		t.Helper()
		if b := backlog(); b.Ratio != want {
			t.Fatalf("backlog %+v, want ratio %g", b, want)
		}
		exp := fmt.Sprintf(`
# HELP aiops_bus_backlog_ratio The part of the stream's limit (max_bytes or max_msgs) taken by messages this consumer has not acked (pending and ack pending, at the stream's mean message size); at 1 a consumer of the whole stream loses messages it never processed (a consumer of a few subjects holding a few messages can lose them well before: it is their age against the stream's span that counts there).
# TYPE aiops_bus_backlog_ratio gauge
aiops_bus_backlog_ratio{consumer="behind",stream=%q} %g
`, e.stream, want)
		if err := testutil.CollectAndCompare(c.Collector(), strings.NewReader(exp), "aiops_bus_backlog_ratio"); err != nil {
			t.Fatal(err)
		}
	}

	wantRatio(0) // no limit: nothing is discarded
	if b := backlog(); b.Unacked != 10 {
		t.Fatalf("backlog %+v, want 10 unacked", b)
	}
	limitStream(t, e, int64(4*streamBytes(t, e)), 0)
	wantRatio(0.25)
	limitStream(t, e, int64(4*streamBytes(t, e)), 20)
	wantRatio(0.5) // the count's share is the larger

	stop := runConsumer(t, c, Sync(func(ctx context.Context, d *Delivery) error { return nil }))
	waitFor(t, "10 acks", func() bool { return c.Stats().Acked == 10 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	serverState(t, e, "behind")
	wantRatio(0)
}
