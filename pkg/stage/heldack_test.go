package stage_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/pkg/stage"
	"github.com/aiops-dev/aiops/pkg/stage/stagetest"
)

// holder holds the ack of every input it processes until the test
// releases it, as a detector does until a snapshot holds what the input
// did.
type holder struct {
	echo
	hmu      sync.Mutex
	releases []func()
}

func (p *holder) Process(ctx context.Context, in *event.Envelope, out stage.Emitter) error {
	release := stage.HoldAck(out)
	p.hmu.Lock()
	p.releases = append(p.releases, release)
	p.hmu.Unlock()
	return p.echo.Process(ctx, in, out)
}

func (p *holder) release(i int) {
	p.hmu.Lock()
	release := p.releases[i]
	p.hmu.Unlock()
	release()
}

// With HoldAcks an input whose ack the processor held is settled for the
// source once its outputs are stored, but acked only when the hold is
// released; an input whose output failed is redelivered, its kept outputs
// sent again without processing it, and the first delivery's hold holds
// the redelivery's ack.
func TestHeldAckWaitsForItsReleaseAlsoOnTheRedelivery(t *testing.T) {
	p := &holder{}
	h := stagetest.Start(t, p, stage.Config{CheckpointEvery: time.Hour, HoldAcks: true})
	want := func(what string, w stagetest.LaterAcks) {
		t.Helper()
		if got := h.Later(); got != w {
			t.Fatalf("%s: acks %+v, want %+v", what, got, w)
		}
	}
	if r := h.Feed(logEvent(t, 1, "a"))[0]; r.Outcome != stagetest.Acked {
		t.Fatalf("held input: %v (%v), want settled", r.Outcome, r.Err)
	}
	want("processed, hold not released", stagetest.LaterAcks{Waiting: 1})
	p.release(0)
	want("hold released", stagetest.LaterAcks{Acked: 1})

	b := logEvent(t, 2, "b")
	h.Pub.FailNext(1)
	if r := h.Feed(b)[0]; r.Outcome != stagetest.Naked {
		t.Fatalf("input whose output failed: %v, want naked", r.Outcome)
	}
	if r := h.Feed(b)[0]; r.Outcome != stagetest.Acked {
		t.Fatalf("its redelivery: %v (%v), want settled", r.Outcome, r.Err)
	}
	if n := p.calls.Load(); n != 2 {
		t.Fatalf("%d inputs processed, want 2: the redelivery sends the kept outputs", n)
	}
	want("redelivered, hold not released", stagetest.LaterAcks{Waiting: 1, Acked: 1})
	p.release(1)
	want("redelivery's hold released", stagetest.LaterAcks{Acked: 2})
}

// holdsFirstSight holds the ack of an input the first time it sees it and
// takes a later delivery for a repeat, emitting nothing and holding
// nothing, as a detector does with a sample it already scored.
type holdsFirstSight struct {
	holder
	seen sync.Map
}

func (p *holdsFirstSight) Process(ctx context.Context, in *event.Envelope, out stage.Emitter) error {
	if _, repeat := p.seen.LoadOrStore(in.ID, true); repeat {
		return nil
	}
	return p.holder.Process(ctx, in, out)
}

// An input held past ack_wait (its in-progress signals lost while the
// connection was down) is redelivered though its first delivery
// succeeded: the redelivery's ack waits for the first delivery's hold
// too. Processed again, it was taken for a repeat and acked at once,
// before the processor released it, and a crash then lost what the hold
// was for.
func TestRedeliveryOfAHeldInputWaitsForItsRelease(t *testing.T) {
	p := &holdsFirstSight{}
	h := stagetest.Start(t, p, stage.Config{CheckpointEvery: time.Hour, HoldAcks: true})
	a := logEvent(t, 1, "a")
	if r := h.Feed(a)[0]; r.Outcome != stagetest.Acked {
		t.Fatalf("held input: %v (%v), want settled", r.Outcome, r.Err)
	}
	if r := h.Feed(a)[0]; r.Outcome != stagetest.Acked {
		t.Fatalf("its redelivery: %v (%v), want settled", r.Outcome, r.Err)
	}
	if got, want := h.Later(), (stagetest.LaterAcks{Waiting: 2}); got != want {
		t.Fatalf("held input redelivered, hold not released: acks %+v, want %+v", got, want)
	}
	p.release(0)
	if got, want := h.Later(), (stagetest.LaterAcks{Acked: 2}); got != want {
		t.Fatalf("hold released: acks %+v, want %+v", got, want)
	}
	if n := p.calls.Load(); n != 1 {
		t.Errorf("%d inputs processed, want 1: the redelivery of a stored input is not processed again", n)
	}
}

// HoldAcks with AckAfterCheckpoint is refused: each takes the delivery's
// ack for later and the first to come acked it, a held input at the next
// checkpoint before its release, then a second time.
func TestHoldAcksWithAckAfterCheckpointIsRefused(t *testing.T) {
	_, err := stage.NewRunner(&checkpointer{}, stage.Config{Name: "x", AckAfterCheckpoint: true, HoldAcks: true}, stagetest.NewPublisher(), zeroLog())
	if !errors.Is(err, stage.ErrInvalidConfig) {
		t.Errorf("hold acks with ack after checkpoint: %v, want refused", err)
	}
}

// failsAfterHolding holds the ack of an input the first time it sees it
// and then fails (an error, or a panic), as a detector whose state took a
// sample and held its ack does when the sample's anomaly then cannot be
// emitted; a later delivery is a repeat, emitting and holding nothing.
type failsAfterHolding struct {
	holdsFirstSight
	panics bool
}

func (p *failsAfterHolding) Process(ctx context.Context, in *event.Envelope, out stage.Emitter) error {
	if _, repeat := p.seen.LoadOrStore(in.ID, true); repeat {
		return nil
	}
	release := stage.HoldAck(out)
	p.hmu.Lock()
	p.releases = append(p.releases, release)
	p.hmu.Unlock()
	if p.panics {
		panic("after the hold")
	}
	return errors.New("after the hold: try again")
}

// An input whose processing failed, transiently, after the processor held
// its ack is redelivered, and that redelivery's ack waits for the hold: the
// processor's state took the input and keeps the release for it. Dropped
// with the failure, the hold held nothing: the redelivery, a repeat for
// the processor, was acked at once, before the release, and a crash then
// lost what the hold was for (a detector's episode, a group asset's rows).
func TestHeldAckOfAFailedInputHoldsItsRedelivery(t *testing.T) {
	for _, panics := range []bool{false, true} {
		name := "error"
		if panics {
			name = "panic"
		}
		t.Run(name, func(t *testing.T) {
			p := &failsAfterHolding{panics: panics}
			h := stagetest.Start(t, p, stage.Config{CheckpointEvery: time.Hour, HoldAcks: true})
			a := logEvent(t, 1, "a")
			if r := h.Feed(a)[0]; r.Outcome != stagetest.Naked {
				t.Fatalf("input failed after its hold: %v (%v), want naked", r.Outcome, r.Err)
			}
			if r := h.Feed(a)[0]; r.Outcome != stagetest.Acked {
				t.Fatalf("its redelivery: %v (%v), want settled", r.Outcome, r.Err)
			}
			if got, want := h.Later(), (stagetest.LaterAcks{Waiting: 1}); got != want {
				t.Fatalf("redelivered, hold not released: acks %+v, want %+v", got, want)
			}
			p.release(0)
			if got, want := h.Later(), (stagetest.LaterAcks{Acked: 1}); got != want {
				t.Fatalf("hold released: acks %+v, want %+v", got, want)
			}
		})
	}
}
