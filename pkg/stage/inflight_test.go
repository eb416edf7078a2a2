package stage_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/pkg/stage"
)

// An output is kept until stored (Settled with nil, or StoredLate after a
// failure), listed oldest first; those whose publish failed are listed by
// Failed; past Max nothing is dropped, and Room waits for one to be
// stored, or says to refuse the input.
func TestInFlight(t *testing.T) {
	f := stage.InFlight{Max: 2, Wait: time.Millisecond}
	ev := func(i int) *event.Envelope {
		e, err := event.New(event.KindMetric, "api", t0, event.MetricBody{Name: "m", Value: new(float64(i))})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	a, b, c := ev(1), ev(2), ev(3)
	settleA, _, err := f.Track(a)
	if err != nil {
		t.Fatal(err)
	}
	settleB, lateB, _ := f.Track(b)
	settleA(nil)
	if ms := f.Messages(); len(ms) != 1 || ms[0].ID != b.ID {
		t.Fatalf("after a's store: %v, want b only", ms)
	}
	if len(f.Failed()) != 0 {
		t.Fatal("b listed as failed before its publish failed")
	}
	settleB(errors.New("refused"))
	if f.Len() != 1 {
		t.Fatal("a failed publish forgot the output")
	}
	if ms := f.Failed(); len(ms) != 1 || ms[0].ID != b.ID {
		t.Fatalf("failed: %v, want b", ms)
	}
	lateB()
	if f.Len() != 0 {
		t.Fatal("StoredLate did not forget the output")
	}
	ctx := context.Background()
	f.Track(a)
	if err := f.Room(ctx); err != nil {
		t.Fatalf("no room with 1 of 2: %v", err)
	}
	f.Track(b)
	f.Track(c)
	if ms := f.Messages(); len(ms) != 3 || ms[0].ID != a.ID || ms[1].ID != b.ID || ms[2].ID != c.ID {
		t.Fatalf("past Max: %v kept; want a, b and c", ms)
	}
	if err := f.Room(ctx); !errors.Is(err, stage.ErrBusy) {
		t.Fatalf("room past Max: %v, want ErrBusy", err)
	}
	// a waiter gets room once enough are stored
	got := make(chan error, 1)
	f.Wait = time.Minute
	go func() { got <- f.Room(ctx) }()
	f.Stored(a.ID)
	select {
	case err := <-got:
		t.Fatalf("room with 2 of 2 kept: %v", err)
	case <-time.After(20 * time.Millisecond):
	}
	f.Stored(b.ID)
	if err := <-got; err != nil {
		t.Fatalf("room after b's store: %v", err)
	}
	f.Clear()
	if f.Len() != 0 {
		t.Fatal("Clear kept outputs")
	}
}
