// Package due holds Queue, things ordered by the time they fall due: a
// min-heap whose entries may go stale (the thing was rescheduled or
// forgotten since), so that rescheduling is a push and what came due is
// found without looking at everything. The correlator's incidents and the
// notifier's grouping timers wait in one.
package due

import (
	"container/heap"
	"time"
)

// Queue is a min-heap of items by time. It is not safe for concurrent use.
// An item may be pushed again at another time; the caller tells a stale
// entry from the live one (by the time it keeps on the item) when it pops
// it, and compacts the queue when stale entries pile up.
type Queue[T any] struct{ h entries[T] }

type entry[T any] struct {
	at   time.Time
	item T
}

// Push queues item at at.
func (q *Queue[T]) Push(at time.Time, item T) { heap.Push(&q.h, entry[T]{at, item}) }

// Len is the number of entries, stale ones included.
func (q *Queue[T]) Len() int { return len(q.h) }

// PopDue takes off the earliest entry due at or before now; ok is false
// when none is.
func (q *Queue[T]) PopDue(now time.Time) (at time.Time, item T, ok bool) {
	if len(q.h) == 0 || now.Before(q.h[0].at) {
		return at, item, false
	}
	e := heap.Pop(&q.h).(entry[T])
	return e.at, e.item, true
}

// Compact keeps only the entries live holds for.
func (q *Queue[T]) Compact(live func(at time.Time, item T) bool) {
	kept := q.h[:0]
	for _, e := range q.h {
		if live(e.at, e.item) {
			kept = append(kept, e)
		}
	}
	clear(q.h[len(kept):])
	q.h = kept
	heap.Init(&q.h)
}

// entries is the heap (container/heap) under Queue.
type entries[T any] []entry[T]

func (h entries[T]) Len() int           { return len(h) }
func (h entries[T]) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h entries[T]) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *entries[T]) Push(x any)        { *h = append(*h, x.(entry[T])) }
func (h *entries[T]) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = entry[T]{}
	*h = old[:len(old)-1]
	return e
}
