package detector

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/aiops-dev/aiops/pkg/stage/stagetest"
)

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
