package detector

import (
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/pkg/stage/stagetest"
)

// A series whose anomaly's publish failed stays out of snapshots until
// the redelivery stored it: saved with the spike in it, a crash before
// the redelivery would restore a state that takes the redelivered spike
// for a duplicate, and the anomaly, kept only in the runner's memory,
// would be lost. An anomaly never stored (the runner dropped it) holds the
// series back at most maxUnstoredHold.
func TestSnapshotWaitsForAFailedAnomalysRedelivery(t *testing.T) {
	clock := &testClock{t: t0.Add(200 * time.Minute)}
	s, h := newTestService(t, Config{}, WithClock(clock.now))
	kv := &kvRecorder{}
	s.snap = kv
	e, spike := feed(t, h, "api", "errors", 100, "")
	key := "detector." + e.Fingerprint
	before := snapshotOf(t, s, e.Fingerprint) // the last periodic snapshot
	h.Pub.FailNext(1)
	if r := h.FeedRaw(spike); r.Outcome != stagetest.Naked {
		t.Fatalf("failed publish: %v (%v), want naked", r.Outcome, r.Err)
	}
	if _, err := s.Snapshot(context.Background()); err != nil {
		t.Fatal(err)
	}
	if slices.Contains(kv.written(), key) {
		t.Fatalf("the snapshot after the failed publish wrote the series with the spike in it")
	}
	// a crash: the next process restores the snapshot from before, and
	// the spike is redelivered
	s2, h2 := newTestService(t, Config{}, WithClock(clock.now))
	restoreInto(t, s2, seriesKey(e.Fingerprint), before)
	ack(t, h2, spike)
	if len(h2.Pub.Messages()) != 1 {
		t.Fatalf("the redelivered spike published %d anomalies after the restart, want 1", len(h2.Pub.Messages()))
	}

	// the first process goes on: its anomaly never stored, the series is
	// saved again once maxUnstoredHold passed
	clock.add(maxUnstoredHold - time.Minute)
	if _, err := s.Snapshot(context.Background()); err != nil {
		t.Fatal(err)
	}
	if slices.Contains(kv.written(), key) {
		t.Fatalf("the series was saved before maxUnstoredHold passed")
	}
	clock.add(time.Minute)
	if _, err := s.Snapshot(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(kv.written(), key) {
		t.Errorf("the series was not saved after maxUnstoredHold: an anomaly never stored holds its state back for ever")
	}
}

// Without snapshots nothing would empty the list of series to save:
// series created and evicted must not pile up on it, each holding its
// detector.
func TestNoSnapshotListWithoutSnapshots(t *testing.T) {
	for _, snapshots := range []bool{false, true} {
		// with snapshots, none is written while the series come and go
		// (the bucket is down): evicted series leave the list
		s, h := newTestService(t, Config{MaxSeries: 10, Snapshot: SnapshotConfig{Disabled: !snapshots}})
		if snapshots {
			s.snap = &kvRecorder{}
		}
		for i := range 2000 {
			_, data := sample(t, "api", "m", map[string]string{"pod": strconv.Itoa(i)}, t0, 1, "")
			ack(t, h, data)
		}
		s.mu.Lock()
		n := len(s.dirty)
		s.mu.Unlock()
		if max := map[bool]int{false: 0, true: 2*10 + 1}[snapshots]; n > max {
			t.Errorf("snapshots %v: %d series wait for a snapshot after 2,000 came and went (max_series 10), want at most %d", snapshots, n, max)
		}
	}
}

// A valid sample whose metric name is long (its body under
// event.MaxBodyBytes) gives an anomaly every consumer can parse: the
// anomaly names the metric twice (metric, reason), clipped.
func TestAnomalyOfALongMetricNameIsValid(t *testing.T) {
	_, h := newTestService(t, Config{})
	name := strings.Repeat("n", 300<<10)
	for i, v := range normal(100, 3) {
		ack(t, h, rawSample(t, "api", name, t0.Add(time.Duration(i)*time.Minute), v))
	}
	spike := rawSample(t, "api", name, t0.Add(100*time.Minute), 150)
	if _, err := event.Parse(spike); err != nil {
		t.Fatalf("the sample itself is invalid: %v", err)
	}
	ack(t, h, spike)
	msgs := h.Pub.Messages()
	if len(msgs) == 0 {
		t.Fatal("no anomaly for the spike")
	}
	a, err := event.Parse(msgs[0].Data)
	if err != nil {
		t.Fatalf("the detector published an anomaly no consumer can parse (%d bytes): %.200v", len(msgs[0].Data), err)
	}
	var body event.AnomalyBody
	if err := json.Unmarshal(a.Body, &body); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(body.Metric, name[:1000]) || !strings.HasSuffix(body.Metric, "…") || len(body.Metric) > event.MaxLabelBytes {
		t.Errorf("metric %.40q… (%d bytes), want the name clipped to %d bytes and marked", body.Metric, len(body.Metric), event.MaxLabelBytes)
	}
}

// An anomaly never stored (its input dead-lettered, or its kept copies
// dropped past MaxKept) leaves unstored above zero for good. An hour
// later a fresh anomaly of the same series fails: it keeps the series out
// of the snapshot until its redelivery, the hold counted from the latest
// failure.
func TestAFreshFailureHoldsTheSnapshotAfterAnOldOneNeverStored(t *testing.T) {
	clock := &testClock{t: t0.Add(200 * time.Minute)}
	s, h := newTestService(t, Config{}, WithClock(clock.now))
	kv := &kvRecorder{}
	s.snap = kv
	e, spike1 := feed(t, h, "api", "errors", 100, "")
	key := "detector." + e.Fingerprint
	h.Pub.FailNext(1)
	if r := h.FeedRaw(spike1); r.Outcome != stagetest.Naked {
		t.Fatalf("spike1: %v", r.Outcome)
	}
	// spike1 is never redelivered (dead-lettered / kept copy dropped).
	// The series goes back to normal, long enough for the episode to end.
	for i, v := range normal(120, 9) {
		_, data := sample(t, "api", "errors", nil, t0.Add(time.Duration(101+i)*time.Minute), v, "")
		ack(t, h, data)
	}
	clock.add(maxUnstoredHold + time.Minute)
	if _, err := s.Snapshot(context.Background()); err != nil {
		t.Fatal(err)
	}
	before := snapshotOf(t, s, e.Fingerprint)
	n0 := len(h.Pub.Messages())

	// a fresh anomaly of the same series fails now
	_, spike2 := sample(t, "api", "errors", nil, t0.Add(230*time.Minute), 200, "")
	h.Pub.FailNext(1)
	if r := h.FeedRaw(spike2); r.Outcome != stagetest.Naked {
		t.Fatalf("spike2: %v (%v), want naked (an anomaly that failed)", r.Outcome, r.Err)
	}
	w0 := len(kv.written())
	if _, err := s.Snapshot(context.Background()); err != nil {
		t.Fatal(err)
	}
	if slices.Contains(kv.written()[w0:], key) {
		// show the consequence: a crash now restores the snapshot with
		// spike2 in it, and spike2's redelivery publishes nothing
		after := snapshotOf(t, s, e.Fingerprint)
		s2, h2 := newTestService(t, Config{}, WithClock(clock.now))
		restoreInto(t, s2, seriesKey(e.Fingerprint), after)
		ack(t, h2, spike2)
		t.Errorf("a fresh failed anomaly's series was snapshotted at once (failedAt stale by >1h; before=%d bytes, published before %d); after a crash its redelivery published %d anomalies, want 1",
			len(before), n0, len(h2.Pub.Messages()))
	}
}
