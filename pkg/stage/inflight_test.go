package stage_test

import (
	"errors"
	"testing"

	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/pkg/stage"
)

// An output is kept until stored (Settled with nil, or StoredLate after a
// failure), listed oldest first, and the oldest is dropped beyond Max.
func TestInFlight(t *testing.T) {
	var dropped []string
	f := stage.InFlight{Max: 2, OnDrop: func(id string) { dropped = append(dropped, id) }}
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
	settleB(errors.New("refused"))
	if f.Len() != 1 {
		t.Fatal("a failed publish forgot the output")
	}
	lateB()
	if f.Len() != 0 {
		t.Fatal("StoredLate did not forget the output")
	}
	f.Track(a)
	f.Track(b)
	f.Track(c)
	if ms := f.Messages(); len(ms) != 2 || ms[0].ID != b.ID || ms[1].ID != c.ID || len(dropped) != 1 || dropped[0] != a.ID {
		t.Fatalf("past Max: %v kept, %v dropped; want b and c, a dropped", ms, dropped)
	}
	f.Clear()
	if f.Len() != 0 {
		t.Fatal("Clear kept outputs")
	}
}
