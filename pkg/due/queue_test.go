package due

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)

// Entries come off in time order, only once due; Compact keeps the live
// ones in order.
func TestQueue(t *testing.T) {
	var q Queue[int]
	rng := rand.New(rand.NewPCG(1, 2))
	var want []int
	for i := range 200 {
		d := rng.IntN(1000)
		q.Push(t0.Add(time.Duration(d)*time.Second), i*1000+d)
		want = append(want, d)
	}
	if _, _, ok := q.PopDue(t0.Add(-time.Second)); ok {
		t.Fatal("an entry came off before it was due")
	}
	q.Compact(func(_ time.Time, item int) bool { return item%2 == 0 })
	want = want[:0]
	for _, e := range q.h {
		want = append(want, e.item%1000)
	}
	slices.Sort(want)
	var got []int
	for {
		at, item, ok := q.PopDue(t0.Add(500 * time.Second))
		if !ok {
			break
		}
		if item%2 != 0 || !at.Equal(t0.Add(time.Duration(item%1000)*time.Second)) {
			t.Fatalf("popped %d at %v", item, at)
		}
		got = append(got, item%1000)
	}
	i := slices.IndexFunc(want, func(d int) bool { return d > 500 })
	if !slices.Equal(got, want[:i]) || q.Len() != len(want)-i {
		t.Fatalf("popped %v, want %v; %d left, want %d", got, want[:i], q.Len(), len(want)-i)
	}
}
