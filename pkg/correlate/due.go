package correlate

import (
	"container/heap"
	"time"
)

// dueEntry is one incident queued at the time it falls due. An entry whose
// time is no longer its incident's dueAt is stale (the incident was
// rescheduled or forgotten since) and is skipped when it comes up.
type dueEntry struct {
	at  time.Time
	inc *incident
}

// dueQueue is a min-heap of dueEntry by time.
type dueQueue []dueEntry

func (q dueQueue) Len() int           { return len(q) }
func (q dueQueue) Less(i, j int) bool { return q[i].at.Before(q[j].at) }
func (q dueQueue) Swap(i, j int)      { q[i], q[j] = q[j], q[i] }
func (q *dueQueue) Push(x any)        { *q = append(*q, x.(dueEntry)) }
func (q *dueQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	old[len(old)-1] = dueEntry{}
	*q = old[:len(old)-1]
	return e
}

// reschedule queues inc at dueOf(inc) when that changed. Every change to
// what dueOf reads goes through here before the operation returns.
func (c *Correlator) reschedule(inc *incident) {
	at := c.dueOf(inc)
	if at.Equal(inc.dueAt) {
		return
	}
	inc.dueAt = at
	if at.IsZero() {
		return
	}
	heap.Push(&c.queue, dueEntry{at: at, inc: inc})
	if len(c.queue) > 2*len(c.incidents)+64 {
		c.compactQueue()
	}
}

// compactQueue drops the stale entries.
func (c *Correlator) compactQueue() {
	live := c.queue[:0]
	for _, e := range c.queue {
		if e.inc.dueAt.Equal(e.at) && c.incidents[e.inc.id] == e.inc {
			live = append(live, e)
		}
	}
	clear(c.queue[len(live):])
	c.queue = live
	heap.Init(&c.queue)
}

// popDue takes the incidents due at or before now off the queue, each
// once, and clears their dueAt (the caller reschedules them).
func (c *Correlator) popDue(now time.Time) []*incident {
	var due []*incident
	for len(c.queue) > 0 && !now.Before(c.queue[0].at) {
		e := heap.Pop(&c.queue).(dueEntry)
		if !e.inc.dueAt.Equal(e.at) || c.incidents[e.inc.id] != e.inc {
			continue // stale
		}
		e.inc.dueAt = time.Time{}
		due = append(due, e.inc)
	}
	return due
}
