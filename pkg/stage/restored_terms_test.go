package stage_test

import (
	"context"
	"testing"
	"time"

	"github.com/aiops-dev/aiops/pkg/stage"
	"github.com/aiops-dev/aiops/pkg/stage/stagetest"
)

// The ids a restored outbox held (never dropped past MaxKept) are that
// term's: after a fenced term, the next one, with nothing held, keeps its
// failed tick outputs within MaxKept again.
func TestRestoredIdsDoNotOutliveTheirTerm(t *testing.T) {
	var saved []byte
	{ // an earlier instance's checkpoint holds 3 tick outputs
		var s []byte
		h := stagetest.Start(t, &outboxTicker{saved: &s}, stage.Config{TickEvery: time.Minute, CheckpointEvery: time.Hour, MaxKept: 10})
		h.Pub.Refuse(true)
		for i := range 3 {
			_ = h.Tick(t0.Add(time.Duration(i) * time.Minute))
		}
		if err := h.Stop(); err != nil {
			t.Fatal(err)
		}
		saved = s
	}
	p := &outboxTicker{saved: &saved}
	pub := stagetest.NewPublisher()
	r, err := stage.NewRunner(p, stage.Config{Name: "outbox", TickEvery: time.Minute, CheckpointEvery: time.Hour, MaxKept: 1}, pub, zeroLog(), stage.WithManualTicks())
	if err != nil {
		t.Fatal(err)
	}
	run := func(during func()) {
		t.Helper()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx, idleSource{}) }()
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
			if r.Unsent() > 0 || len(saved) == 0 || string(saved) == "[]" || string(saved) == "null" {
				break
			}
		}
		during()
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	pub.Refuse(true)
	// term 1: restores the 3, cannot send them, ends fenced
	run(func() { p.fenced = true })
	if r.Unsent() != 0 {
		t.Fatalf("unsent %d after a fenced term", r.Unsent())
	}
	// term 2: the other instance's checkpoint holds nothing
	p.fenced = false
	saved = nil
	run(func() {
		for i := range 4 {
			_ = r.Tick(context.Background(), t0.Add(time.Duration(10+i)*time.Minute))
		}
		if got := r.Unsent(); got > 1 {
			t.Errorf("unsent %d with MaxKept 1 and nothing restored this term: the ids restored in the fenced term still count", got)
		}
	})
}
