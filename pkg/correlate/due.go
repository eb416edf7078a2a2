package correlate

import "time"

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
	c.queue.Push(at, inc)
	if c.queue.Len() > 2*len(c.incidents)+64 {
		c.queue.Compact(c.queued)
	}
}

// queued tells whether an entry of the queue is inc's current one: an
// entry whose time is no longer its incident's dueAt is stale (the
// incident was rescheduled or forgotten since).
func (c *Correlator) queued(at time.Time, inc *incident) bool {
	return inc.dueAt.Equal(at) && c.incidents[inc.id] == inc
}

// popDue takes the incidents due at or before now off the queue, each
// once, and clears their dueAt (the caller reschedules them).
func (c *Correlator) popDue(now time.Time) []*incident {
	var due []*incident
	for {
		at, inc, ok := c.queue.PopDue(now)
		if !ok {
			break
		}
		if !c.queued(at, inc) {
			continue // stale
		}
		inc.dueAt = time.Time{}
		due = append(due, inc)
	}
	return due
}
