package correlate

import (
	"fmt"
	"testing"
	"time"
)

// Changes are remembered at most maxChangesPerService a service, but an
// open incident links every change timed within change_window before its
// opening, however many come: a flood of changes delivered late (a CI
// re-sending its deploy history, a hostile producer) grows one incident's
// linked changes, its memory, its snapshot and every event's body
// building, without bound, and each link scans all linked before it.
func TestLinkedChangesBoundedPerService(t *testing.T) {
	c := newCorrelator(t, Config{})
	feed(c, alert("DBDown", "payments-db", time.Hour))
	const n = 5000
	for i := 0; i < n; i++ {
		feed(c, Signal{Kind: SignalChange, Service: "payments-db", Name: "config", Version: fmt.Sprint("v", i),
			Time: t0.Add(time.Hour - time.Duration(n-i)*time.Millisecond), EventID: fmt.Sprint("chg-", i)})
	}
	inc := c.incidents[c.members["DBDown/payments-db"].inc.id]
	if len(inc.changes) > 10*maxChangesPerService {
		t.Errorf("one incident links %d changes (%d kept a service); want a bound", len(inc.changes), maxChangesPerService)
	}
}
