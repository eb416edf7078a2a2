package correlator

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/stage"
	"github.com/aiops-dev/aiops/pkg/stage/stagetest"
)

// An incident opening failed (INCIDENTS refused it) and stays in the
// processor's InFlight, marked failed. Then the lease runs out by this
// instance's clock (paused, renewals hanging): the next holder restores
// and owns the incidents, and the runner's ticks send none of this term's
// outputs (what this state made would be published beside what that one
// makes).
func TestNoResendOfInFlightOutputsOnceTheLeaseRanOut(t *testing.T) {
	wall := &clock{t: t0}
	proc, holds := leasedProcessor(t, wall.now, &stage.InFlight{})
	h := stagetest.Start(t, proc, stage.Config{TickEvery: time.Second})
	h.Pub.Refuse(true)
	if r := h.Feed(alertEvent(t, "HighLatency", "web", 0, 0))[0]; r.Outcome != stagetest.Naked {
		t.Fatalf("alert: %v, want naked", r.Outcome)
	}
	if n := len(proc.inFlight.Failed()); n == 0 {
		t.Fatal("no failed output in flight")
	}
	holds.Store(false) // the lease ran out; another instance took over
	h.Pub.Refuse(false)
	wall.set(t0.Add(time.Second))
	_ = h.Tick(wall.now())
	if msgs := h.Pub.Messages(); len(msgs) > 0 {
		t.Errorf("after the lease ran out, a tick published %d incident events of the old term (%s)", len(msgs), msgs[0].ID)
	}
}

// leasedProcessor is a processor with a state store's bookkeeping
// (inFlight) under a lease the test holds until it stores false.
func leasedProcessor(t *testing.T, now func() time.Time, inFlight *stage.InFlight) (*Processor, *atomic.Bool) {
	t.Helper()
	proc, err := NewProcessor(Config{Catalog: writeCatalog(t)}, zerolog.Nop(), now)
	if err != nil {
		t.Fatal(err)
	}
	holds := new(atomic.Bool)
	holds.Store(true)
	proc.holds = holds.Load
	proc.unstored = map[string]bool{}
	proc.inFlight = inFlight
	return proc, holds
}

type recEmitter struct{ outs []stage.Output }

func (r *recEmitter) Emit(o stage.Output) error { r.outs = append(r.outs, o); return nil }

// A lease that runs out while Process waits in Room for INCIDENTS to
// store what is in flight (the next holder restored meanwhile) stops it:
// the signal is given back (ErrStandby), not taken in.
func TestSignalGivenBackWhenTheLeaseRanOutInRoom(t *testing.T) {
	proc, holds := leasedProcessor(t, nil, &stage.InFlight{Max: 1, Wait: 5 * time.Second})
	settle, _, err := proc.inFlight.Track(alertEvent(t, "Other", "x", 0, 0)) // one output awaiting its ack
	if err != nil {
		t.Fatal(err)
	}
	var em recEmitter
	done := make(chan error, 1)
	go func() { done <- proc.Process(t.Context(), alertEvent(t, "HighLatency", "web", 0, 0), &em) }()
	time.Sleep(100 * time.Millisecond) // Process waits in Room
	holds.Store(false)                 // the lease runs out; another instance takes over
	settle(nil)                        // INCIDENTS stores the output in flight: room
	err = <-done
	if !errors.Is(err, ErrStandby) || len(em.outs) > 0 {
		t.Errorf("the lease ran out while Process waited for room: %v, %d incident events emitted; want ErrStandby and none", err, len(em.outs))
	}
}
