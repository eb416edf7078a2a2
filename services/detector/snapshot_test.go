package detector

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/bus"
	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/pkg/stage"
	"github.com/aiops-dev/aiops/pkg/stage/stagetest"
)

type future struct {
	ok  chan *jetstream.PubAck
	err chan error
}

func (f *future) Ok() <-chan *jetstream.PubAck { return f.ok }
func (f *future) Err() <-chan error            { return f.err }
func (f *future) Msg() *nats.Msg               { return nil }

// kvRecorder stands for the bucket's stream: it acks every write, or fails
// the next fail writes.
type kvRecorder struct {
	mu   sync.Mutex
	fail int
	keys []string
}

func (k *kvRecorder) PublishAsync(subject string, data []byte, _ ...jetstream.PublishOpt) (jetstream.PubAckFuture, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	f := &future{ok: make(chan *jetstream.PubAck, 1), err: make(chan error, 1)}
	if k.fail > 0 {
		k.fail--
		f.err <- errors.New("fake: no ack")
		return f, nil
	}
	k.keys = append(k.keys, strings.TrimPrefix(subject, "$KV."+DefaultBucket+"."))
	f.ok <- &jetstream.PubAck{}
	return f, nil
}

func (k *kvRecorder) written() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]string(nil), k.keys...)
}

// onEmit runs the service as its processor, calling hook with each output
// it emits before the runner takes it: between Process and the output's
// Settled.
type onEmit struct {
	s    *Service
	hook func(stage.Output)
}

func (p onEmit) Process(ctx context.Context, in *event.Envelope, out stage.Emitter) error {
	return p.s.Process(ctx, in, hookEmitter{out, p.hook})
}

type hookEmitter struct {
	stage.Emitter
	hook func(stage.Output)
}

func (e hookEmitter) Emit(o stage.Output) error {
	e.hook(o)
	return e.Emitter.Emit(o)
}

// A series whose anomaly is not stored yet stays out of the snapshot, so a
// crash before the ack leaves a state without the anomalous sample and its
// redelivery is scored (and published) again. Once stored, it is written.
func TestSnapshotWaitsForAnomalyAck(t *testing.T) {
	s := newCore(t, Config{})
	kv := &kvRecorder{}
	s.snap = kv
	type snap struct {
		n    int
		err  error
		keys []string
	}
	var during []snap
	h := run(t, s, onEmit{s, func(stage.Output) {
		n, err := s.Snapshot(context.Background())
		during = append(during, snap{n, err, kv.written()})
	}})
	spike, data := feed(t, h, "api", "latency", 100, "")
	_, calm := sample(t, "api", "other", nil, t0, 1, "")
	ack(t, h, calm)
	if len(during) != 0 {
		t.Fatalf("%d anomalies among the normal samples: the test proves nothing", len(during))
	}
	ack(t, h, data)
	if len(during) != 1 {
		t.Fatalf("the spike emitted %d outputs, want its anomaly", len(during))
	}
	if d := during[0]; d.err != nil || d.n != 1 || len(d.keys) != 1 || strings.HasSuffix(d.keys[0], spike.Fingerprint) {
		t.Fatalf("snapshot before the anomaly was stored wrote %d (%v) %v: want only the calm series", d.n, d.err, d.keys)
	}
	if n, err := s.Snapshot(context.Background()); err != nil || n != 1 {
		t.Fatalf("after the ack the snapshot wrote %d (%v), want the spiked series", n, err)
	}
	if got := kv.written(); len(got) != 2 || got[1] != "detector."+spike.Fingerprint {
		t.Errorf("written %v, want detector.%s last", got, spike.Fingerprint)
	}
	if n, _ := s.Snapshot(context.Background()); n != 0 {
		t.Errorf("a snapshot with nothing changed wrote %d", n)
	}
}

// A failed write leaves the series dirty, and the next snapshot writes it.
func TestSnapshotRetriesFailedWrites(t *testing.T) {
	s, h := newTestService(t, Config{})
	kv := &kvRecorder{fail: 1}
	s.snap = kv
	e, data := sample(t, "api", "m", nil, t0, 1, "")
	ack(t, h, data)
	if n, err := s.Snapshot(context.Background()); err == nil || n != 0 {
		t.Fatalf("failed write: wrote %d, err %v", n, err)
	}
	if n, err := s.Snapshot(context.Background()); err != nil || n != 1 {
		t.Fatalf("retry: wrote %d, err %v", n, err)
	}
	if got := kv.written(); len(got) != 1 || got[0] != "detector."+e.Fingerprint {
		t.Errorf("written %v", got)
	}
}

// A cancelled snapshot leaves what it did not reach for the next one.
func TestCancelledSnapshotKeepsTheRest(t *testing.T) {
	s, h := newTestService(t, Config{Snapshot: SnapshotConfig{Chunk: 1}})
	kv := &kvRecorder{}
	s.snap = kv
	for i := 0; i < 3; i++ {
		_, data := sample(t, "api", string(rune('a'+i)), nil, t0, 1, "")
		ack(t, h, data)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	n, err := s.Snapshot(ctx)
	if err == nil {
		t.Fatal("cancelled snapshot reported no error")
	}
	m, err := s.Snapshot(context.Background())
	if err != nil || n != 0 || m != 3 {
		t.Errorf("cancelled snapshot wrote %d, the next %d (%v); want 0 then 3", n, m, err)
	}
}

// A producer may send a fingerprint that is no key token ("cpu.host a"):
// the series is still snapshotted, under a hash of it, and the key is the
// same every time.
func TestSnapshotOfAProducersFingerprint(t *testing.T) {
	s, h := newTestService(t, Config{})
	kv := &kvRecorder{}
	s.snap = kv
	e, _ := sample(t, "api", "m", nil, t0, 1, "")
	e.Fingerprint = "cpu.host a"
	data, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	ack(t, h, data)
	if n, err := s.Snapshot(context.Background()); err != nil || n != 1 {
		t.Fatalf("wrote %d (%v), want the series", n, err)
	}
	got := kv.written()
	if len(got) != 1 || got[0] != "detector."+seriesKey(e.Fingerprint) || !bus.ValidKeyToken(seriesKey(e.Fingerprint)) {
		t.Fatalf("written %v, want detector.%s", got, seriesKey(e.Fingerprint))
	}
	if seriesKey("cpu.host b") == seriesKey(e.Fingerprint) || seriesKey("0123456789abcdef") != "0123456789abcdef" {
		t.Error("seriesKey must keep a token and tell other fingerprints apart")
	}
}

// stalledKV stands for a bucket that takes writes and acks none until
// released, as one whose stream lost its leader.
type stalledKV struct {
	mu      sync.Mutex
	keys    []string
	futures []*future
}

func (k *stalledKV) PublishAsync(subject string, _ []byte, _ ...jetstream.PublishOpt) (jetstream.PubAckFuture, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	f := &future{ok: make(chan *jetstream.PubAck, 1), err: make(chan error, 1)}
	k.keys = append(k.keys, strings.TrimPrefix(subject, "$KV."+DefaultBucket+"."))
	k.futures = append(k.futures, f)
	return f, nil
}

func (k *stalledKV) written() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]string(nil), k.keys...)
}

// release acks every write taken so far.
func (k *stalledKV) release() {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, f := range k.futures {
		f.ok <- &jetstream.PubAck{}
	}
	k.futures = nil
}

// tickUnheld ticks h at now and fails the test unless the tick returns:
// a bucket that stalls (release ends the stall) must not hold it.
func tickUnheld(t *testing.T, h *stagetest.Harness, now time.Time, release func()) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- h.Tick(now) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		release()
		t.Fatal("the tick waited for the stalled snapshot bucket")
	}
}

// settledTransitions waits until the transitions' snapshots in flight are
// settled.
func settledTransitions(s *Service) { s.awaitTransitions(context.Background()) }

// A bucket that stalls does not hold the tick that wrote an episode's
// transition: the next one closes a silent series' episode while the write
// is still in flight, and writes no second batch until the first settled
// (then the close's). Awaited on the tick, it held every tick up to
// snapshot.shutdown_timeout, and with it the closes, the rows closed on
// their wait and the tick outputs' retries.
func TestStalledSnapshotBucketDoesNotHoldTheTick(t *testing.T) {
	clock := &testClock{t: t0}
	s, h := newTestService(t, Config{}, WithClock(clock.now))
	s.cfg.Snapshot.ShutdownTimeout = time.Hour // the stall outlasts the test
	kv := &stalledKV{}
	s.snap = kv
	t.Cleanup(kv.release)
	last := openEpisode(t, h, clock, "latency_ms", t0)
	key := "detector." + last.Fingerprint

	tick := func() { t.Helper(); tickUnheld(t, h, clock.now(), kv.release) }
	tick()
	if got := kv.written(); len(got) != 1 || got[0] != key {
		t.Fatalf("written %v at the tick after the open, want %s", got, key)
	}

	clock.add(11 * time.Minute) // silent for ten of its intervals
	heartbeat(t, h, clock)
	tick()
	if got := episodeEvents(t, h); len(got) != 2 || got[1].body.Episode != event.EpisodeClose {
		t.Fatalf("%d anomaly events while the snapshot stalls, want the open and the silent series' close", len(got))
	}
	if got := kv.written(); len(got) != 1 {
		t.Fatalf("written %v while the open's write is in flight, want no second batch", got)
	}

	kv.release()
	settledTransitions(s)
	tick()
	if got := kv.written(); len(got) != 2 || got[1] != key {
		t.Fatalf("written %v once the open's write was acked, want the close's snapshot of %s", got, key)
	}
	if n := testutil.ToFloat64(s.m.snapshotErrors); n != 0 {
		t.Errorf("%v snapshot errors, want none: every write was acked", n)
	}
}

// A periodic snapshot that a stalled bucket holds until it is cut
// (snapshot.shutdown_timeout, 8 s by default) does not hold the ticks: a
// silent series' episode is closed while it waits. The runner held every
// tick for as long, every snapshot.interval: the closes of silent series,
// the rows closed on their wait and the retries of tick outputs waited
// for it, though the detector never saves a state whose anomaly is not
// stored, a tick's included.
func TestStalledPeriodicSnapshotDoesNotHoldTheTick(t *testing.T) {
	clock := &testClock{t: t0}
	s := newCore(t, Config{}, WithClock(clock.now))
	kv := &stalledKV{}
	s.snap = kv
	s.outboxEmpty = true // no outbox to write (no bucket for it in the test)
	h := run(t, s, snapshotting{s})
	t.Cleanup(kv.release)
	last := openEpisode(t, h, clock, "latency_ms", t0)
	key := "detector." + last.Fingerprint

	h.Runner.CheckpointSoon()
	for deadline := time.Now().Add(10 * time.Second); !slices.Contains(kv.written(), key); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the periodic snapshot did not write the series within 10s")
		}
	}
	clock.add(11 * time.Minute) // silent for ten of its intervals
	heartbeat(t, h, clock)
	tickUnheld(t, h, clock.now(), kv.release)
	if st := h.Runner.Stats(); st.Checkpoints+st.CheckpointFailures != 0 {
		t.Fatalf("the tick returned once the snapshot on the stalled bucket was over (%d saved, %d failed), not while it waited: it held the tick",
			st.Checkpoints, st.CheckpointFailures)
	}
	if got := episodeEvents(t, h); len(got) != 2 || got[1].body.Episode != event.EpisodeClose {
		t.Errorf("%d anomaly events while the snapshot stalls, want the open and the silent series' close", len(got))
	}
}

// A tick writes at most a chunk of transitions; the rest go with the next
// tick once that chunk settled, so a storm of them does not go beyond the
// publisher's pending acks at once.
func TestTransitionsAreWrittenAChunkAtATime(t *testing.T) {
	clock := &testClock{t: t0.Add(100 * time.Minute)} // at the last sample
	s, h := newTestService(t, Config{Snapshot: SnapshotConfig{Chunk: 1}}, WithClock(clock.now))
	kv := &kvRecorder{}
	s.snap = kv
	feed := func(i int, v float64) {
		for _, name := range []string{"a", "b"} {
			_, data := sample(t, "db", name, nil, t0.Add(time.Duration(i)*time.Minute), v, "")
			ack(t, h, data)
		}
	}
	for i, v := range normal(100, 5) {
		feed(i, v)
	}
	if _, err := s.Snapshot(context.Background()); err != nil {
		t.Fatal(err)
	}
	feed(100, 150)
	if n := len(episodeEvents(t, h)); n != 2 {
		t.Fatalf("%d episodes, want one opened in each series", n)
	}
	before := len(kv.written())
	for i := 1; i <= 2; i++ {
		if err := h.Tick(clock.now()); err != nil {
			t.Fatal(err)
		}
		settledTransitions(s)
		if n := len(kv.written()) - before; n != i {
			t.Fatalf("after %d ticks %d transitions written, want %d (a chunk of 1 a tick)", i, n, i)
		}
	}
}

// A snapshot write whose ack never comes (the bucket's leader lost) is given
// up by the client after shutdown_timeout, not kept pending for ever: 4,000
// of them (a few minutes of a stalled bucket, a chunk given up at each
// snapshot) left the client no pending ack free, and every later write,
// the bucket back or not, waited 200 ms under the service's lock and failed.
func TestSnapshotWriteNeverAckedIsGivenUp(t *testing.T) {
	r := newRig(t)
	nc, js := r.connect()
	// no stream takes the bucket's subjects, and a subscriber that answers
	// nothing stands for its stalled leader
	if _, err := nc.Subscribe("$KV.stalled.>", func(*nats.Msg) {}); err != nil {
		t.Fatal(err)
	}
	s, h := newTestService(t, Config{Snapshot: SnapshotConfig{Bucket: "stalled", ShutdownTimeout: 200 * time.Millisecond}})
	snap, err := snapshotPublisher(js, s.cfg.Snapshot)
	if err != nil {
		t.Fatal(err)
	}
	s.snap = snap
	_, data := sample(t, "api", "m", nil, t0, 1, "")
	ack(t, h, data)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := s.Snapshot(ctx); !errors.Is(err, jetstream.ErrAsyncPublishTimeout) {
		t.Fatalf("snapshot to a stalled bucket: %v, want the write given up (%v)", err, jetstream.ErrAsyncPublishTimeout)
	}
	if n := snap.PublishAsyncPending(); n != 0 {
		t.Errorf("%d writes still pending after they were given up", n)
	}
}

// Snapshots a restart does not load because max_series is reached are a
// warning naming the setting and how many: their series start from
// nothing, and a count in an Info line was all that said so.
func TestSnapshotsOverMaxSeriesAtRestoreAreAWarning(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	kv, err := r.js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: DefaultBucket})
	if err != nil {
		t.Fatal(err)
	}
	s0, h0 := newTestService(t, Config{})
	for _, name := range []string{"a", "b", "c"} {
		_, data := sample(t, "api", name, nil, t0, 1, "")
		ack(t, h0, data)
	}
	s0.mu.Lock()
	for _, ser := range s0.series.Values() {
		v, err := s0.encode(nil, ser)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := kv.Put(ctx, s0.keyOf(ser.key), v); err != nil {
			t.Fatal(err)
		}
	}
	s0.mu.Unlock()

	var logs strings.Builder
	s, err := newService(Config{MaxSeries: 1}, zerolog.New(&logs))
	if err != nil {
		t.Fatal(err)
	}
	s.kv = kv
	if err := s.Restore(ctx); err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, `"level":"warn"`) && strings.Contains(line, `"setting":"detector.max_series"`) &&
			strings.Contains(line, `"limit":1`) && strings.Contains(line, `"not_restored":2`) {
			return
		}
	}
	t.Errorf("log of a restore over max_series: %s, want a warning naming detector.max_series, its limit and the 2 snapshots not restored", logs.String())
}
