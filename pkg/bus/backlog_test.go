package bus

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
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
# HELP aiops_bus_backlog_ratio The part of the stream's limit (max_bytes or max_msgs) taken by messages this consumer has not acked (pending and ack pending; for a consumer of the whole stream, every message from its oldest unacked one on, weighed at what they take where the process follows the stream's sizes (the gateway's in aiops run), else at the larger of the stream's mean message size and a few of them read; at the mean for the others; never more than the stream holds); at 1 a consumer of the whole stream loses messages it never processed (a consumer of a few subjects holding a few messages can lose them well before: it is their age against the stream's span that counts there).
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

// The stream discards from its head, acked or not, so what a consumer of
// the whole stream stands to lose runs from its oldest unacked message to
// the stream's end: messages acked after that one make no room before it.
// The writer acks out of order (each table's inserts return when they
// do); counting only the messages not acked, the gateway's guard went on
// answering 200 while the stream discarded events the writer had not
// stored (2,123 of them on aiops run at the default 1 GiB, after a
// ClickHouse outage).
func TestConsumerBacklogRunsFromTheOldestUnackedMessage(t *testing.T) {
	e := newEnv(t, newTestServerURL(t))
	e.publish("m", 10)
	limitStream(t, e, int64(streamBytes(t, e)), 0) // full: the next message discards the oldest
	c, err := e.js.CreateOrUpdateConsumer(testCtx(t), e.stream, jetstream.ConsumerConfig{
		Durable: "behind", AckPolicy: jetstream.AckExplicitPolicy, AckWait: time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := c.Fetch(10, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for m := range batch.Messages() {
		if n > 0 { // all but the first
			if err := m.DoubleAck(testCtx(t)); err != nil {
				t.Fatal(err)
			}
		}
		n++
	}
	if n != 10 {
		t.Fatalf("fetched %d messages, want 10 (%v)", n, batch.Error())
	}

	b, err := ConsumerBacklog(testCtx(t), e.js, e.stream, "behind")
	if err != nil {
		t.Fatal(err)
	}
	if b.Unacked != 1 {
		t.Fatalf("backlog %+v, want 1 unacked", b)
	}
	if math.Abs(b.Ratio-1) > 1e-9 {
		t.Fatalf("backlog %+v, want ratio 1: the next message stored discards the unacked one", b)
	}

	// As the ratio said: one more message and the unacked one is gone.
	e.publish("n", 1) // as large as each of the others
	s, err := e.js.Stream(testCtx(t), e.stream)
	if err != nil {
		t.Fatal(err)
	}
	if first := s.CachedInfo().State.FirstSeq; first != 2 {
		t.Fatalf("stream starts at %d, want 2: the unacked first message discarded", first)
	}
}

// The unacked messages are weighed at their own size, not at the stream's
// mean: events that grow (a burst of large logs after hours of small
// samples) take far more of the limit than their count says. Weighed at
// the mean, the writer's backlog read 0.40 on aiops run when its 40 KB
// logs took 99% of a 1 GiB EVENTS after few-hundred-byte ones (ClickHouse down),
// and the gateway refused only with about 1 MB of the limit left, not the
// tenth it keeps (ingest.max_store_backlog).
func TestConsumerBacklogWeighsTheUnackedMessagesAtTheirSize(t *testing.T) {
	e := newEnv(t, newTestServerURL(t))
	e.publish("m", 90)
	ackFirst(t, e, "behind", 90)
	small := streamBytes(t, e)
	p, err := NewPublisher(e.js)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.PublishAll(testCtx(t), []Message{{Subject: e.prefix + ".big", ID: "big", Data: make([]byte, 19*small)}}); err != nil {
		t.Fatal(err)
	}
	limitStream(t, e, int64(streamBytes(t, e)), 0) // full: the next message discards the oldest

	b, err := ConsumerBacklog(testCtx(t), e.js, e.stream, "behind")
	if err != nil {
		t.Fatal(err)
	}
	if b.Unacked != 1 {
		t.Fatalf("backlog %+v, want 1 unacked", b)
	}
	if b.Ratio < 0.9 {
		t.Fatalf("backlog %+v, want 0.95: the one unacked message takes 19 parts of the 20 the stream holds", b)
	}
}

// The unacked messages are part of what the stream holds: a few samples
// that fall on its largest messages cannot make them more. With one log
// of 30 KB every ten samples of 300 bytes, the five messages read (every
// 250th) were all logs, and a consumer that had acked nothing on a
// stream at half its limit read 4.5 times the limit; the gateway would
// refuse at any fill past a tenth of it.
func TestConsumerBacklogIsNoMoreThanTheStreamHolds(t *testing.T) {
	e := newEnv(t, newTestServerURL(t))
	publishMix(t, e, 1001)
	limitStream(t, e, int64(2*streamBytes(t, e)), 0)
	if _, err := e.js.CreateOrUpdateConsumer(testCtx(t), e.stream, jetstream.ConsumerConfig{
		Durable: "behind", AckPolicy: jetstream.AckExplicitPolicy, AckWait: time.Minute,
	}); err != nil {
		t.Fatal(err)
	}

	b, err := ConsumerBacklog(testCtx(t), e.js, e.stream, "behind")
	if err != nil {
		t.Fatal(err)
	}
	if b.Unacked != 1001 || math.Abs(b.Ratio-0.5) > 1e-9 {
		t.Fatalf("backlog %+v, want 1001 unacked at ratio 0.5: the stream holds half its limit, all of it unacked", b)
	}
}

// storedSize is what the stream counts for a message in its bytes, read
// back however the stream answers: with allow_direct set (nats stream
// edit, say, between two starts of the services) a get is a direct get,
// whose answer carries four headers of the server's, about 120 bytes:
// counted, events of 300 bytes weighed 40% more than they take, and the
// gateway refused with a good part of the limit left.
func TestStoredSizeIsWhatTheStreamCounts(t *testing.T) {
	e := newEnv(t, startJetStream(t, server.Options{}).ClientURL())
	ctx := testCtx(t)
	for _, storage := range []jetstream.StorageType{jetstream.FileStorage, jetstream.MemoryStorage} {
		for _, direct := range []bool{false, true} {
			name := fmt.Sprintf("%s_%s_%v", e.stream, storage, direct)
			subject := strings.ToLower(name) + ".m"
			if _, err := e.js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{subject},
				Storage: storage, AllowDirect: direct}); err != nil {
				t.Fatal(err)
			}
			for i := range 10 {
				m := &nats.Msg{Subject: subject, Data: make([]byte, 100*i)}
				if i%2 == 0 { // with headers and without
					m.Header = nats.Header{jetstream.MsgIDHeader: {fmt.Sprint(i)}, "Traceparent": {"00-1", "00-22"}}
				}
				if _, err := e.js.PublishMsg(ctx, m); err != nil {
					t.Fatal(err)
				}
			}
			s, err := e.js.Stream(ctx, name)
			if err != nil {
				t.Fatal(err)
			}
			sum := 0
			for seq := uint64(1); seq <= 10; seq++ {
				m, err := s.GetMsg(ctx, seq)
				if err != nil {
					t.Fatal(err)
				}
				sum += storedSize(m.Subject, readHeader(m, s.CachedInfo().Config), len(m.Data), s.CachedInfo().Config)
			}
			if want := s.CachedInfo().State.Bytes; uint64(sum) != want {
				t.Errorf("%s storage, allow_direct %v: the messages weigh %d bytes, the stream counts %d", storage, direct, sum, want)
			}
		}
	}
}

// On a full stream of a steady mix of sizes (one event in ten of 30 KB
// among 300-byte ones, as logs with an occasional stack trace), a few
// samples spaced as the mix repeats all landed on the large ones: the
// writer's backlog read 0.95 to 1 when it held half the stream, and the
// gateway refused with half the limit free. The samples' median, which
// a minority of large ones does not move, weighs them at the stream's
// mean, which the mix makes right; a burst of large events still moves
// it (TestConsumerBacklogWeighsTheUnackedMessagesAtTheirSize).
func TestConsumerBacklogOfASteadyMixIsWeighedAtItsMean(t *testing.T) {
	e := newEnv(t, newTestServerURL(t))
	publishMix(t, e, 2000)
	limitStream(t, e, int64(streamBytes(t, e)), 0) // full
	ackFirst(t, e, "behind", 1000)
	b, err := ConsumerBacklog(testCtx(t), e.js, e.stream, "behind")
	if err != nil {
		t.Fatal(err)
	}
	if b.Unacked != 1000 || b.Ratio < 0.4 || b.Ratio > 0.6 {
		t.Fatalf("backlog %+v, want 1000 unacked at a ratio near 0.5: they are half the stream, of the same mix", b)
	}
}

// publishMix publishes n messages to e's stream, one in ten of 30 KB among
// 300-byte ones: logs with an occasional stack trace.
func publishMix(t *testing.T, e *env, n int) {
	t.Helper()
	p, err := NewPublisher(e.js)
	if err != nil {
		t.Fatal(err)
	}
	ms := make([]Message, n)
	for i := range ms {
		size := 300
		if i%10 == 0 {
			size = 30000
		}
		ms[i] = Message{Subject: e.prefix + ".m", ID: fmt.Sprint(i), Data: make([]byte, size)}
	}
	if _, err := p.PublishAll(testCtx(t), ms); err != nil {
		t.Fatal(err)
	}
}

// A consumer's backlog gauge is weighed at what its messages take where
// the process follows the stream's sizes (aiops run: the gateway follows
// EVENTS on the connection the writer's consumer shares), and it starts
// no follower of its own. From a few of them read it reads low when large
// messages are a minority of them and most of their bytes: one of 40 KB
// in four, after thousands of small ones acked.
func TestConsumerBacklogGaugeIsWeighedByTheFollowedSizes(t *testing.T) {
	e, c := behindOnLargeMessages(t)
	limit := float64(streamBytes(t, e))
	want := float64(unackedBytes(t, e, "behind")) / limit
	gauge := func() float64 { t.Helper(); return backlogGauge(t, c) }

	sampled := gauge()
	if sampled > want/2 {
		t.Fatalf("weighed from a few read: %.3f, the unacked messages take %.3f of the limit: want it to read low, as it does", sampled, want)
	}
	f := followed(t, e)
	if got := gauge(); got < want || got > want+float64(sizesError(40000))/limit {
		t.Fatalf("the sizes followed: %.3f, the unacked messages take %.3f of the limit (at most %.3f over)", got, want, float64(sizesError(40000))/limit)
	}
	f.Stop()
	if got := gauge(); got != sampled {
		t.Fatalf("the follower stopped: %.3f, want %.3f, weighed from a few read again", got, sampled)
	}
}

// behindOnLargeMessages is a stream at its byte limit and a consumer
// "behind" on it: thousands of small messages acked, then 400 unacked of
// which one in four takes 40 KB (most of the bytes, a minority of the
// messages, which a few read to weigh them misses).
func behindOnLargeMessages(t *testing.T) (*env, *Consumer) {
	t.Helper()
	e := newEnv(t, newTestServerURL(t))
	publishSizes(t, e, 0, 3400, func(i int) int {
		if i >= 3000 && i%4 == 0 {
			return 40000
		}
		return 300
	})
	limitStream(t, e, int64(streamBytes(t, e)), 0)
	ackFirst(t, e, "behind", 3000)
	return e, newConsumer(t, e, e.consumerConfig("behind"))
}

// backlogGauge is c's aiops_bus_backlog_ratio as scraped now.
func backlogGauge(t *testing.T, c *Consumer) float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c.Collector())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "aiops_bus_backlog_ratio" {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatal("no aiops_bus_backlog_ratio")
	return 0
}

// Two followers of a stream on one connection (aiops run: the gateway's
// store guard and the log miner's room, both on EVENTS): the gauge is
// weighed by the sizes while either still follows, whichever stopped
// first. The second one started took the first one's place, and once it
// stopped the gauge read from a few messages again, the first one still
// following.
func TestConsumerBacklogGaugeIsWeighedWhileAFollowerIsLeft(t *testing.T) {
	e, c := behindOnLargeMessages(t)
	sampled := backlogGauge(t, c)
	for _, stopFirst := range []string{"the first", "the second"} {
		a, b := followed(t, e), followed(t, e)
		if stopFirst == "the second" {
			a, b = b, a
		}
		a.Stop()
		if got := backlogGauge(t, c); got == sampled {
			t.Fatalf("%s follower stopped, the other following: the gauge reads %.3f, weighed from a few read", stopFirst, got)
		}
		b.Stop()
		if got := backlogGauge(t, c); got != sampled {
			t.Fatalf("both followers stopped (%s first): the gauge reads %.3f, want %.3f, weighed from a few read", stopFirst, got, sampled)
		}
	}
}
