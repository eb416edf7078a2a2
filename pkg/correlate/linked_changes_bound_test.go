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

// A month of deploys, twenty new services a day (preview environments)
// and one service deploying every hour: the changes remembered are those
// a signal could still link (change_window before the watermark, less
// MaxAhead and reopen_window), not the latest 32 of every service that
// ever deployed.
func TestChangesNoSignalCanLinkAreForgotten(t *testing.T) {
	c := newCorrelator(t, Config{})
	for day := range 30 {
		for h := range 24 {
			at := t0.Add(time.Duration(day*24+h) * time.Hour)
			feed(c, Signal{Kind: SignalChange, Service: "checkout", Name: "deploy", Version: fmt.Sprint("v", day, ".", h), Time: at, EventID: fmt.Sprint("chg-", day, "-", h)})
			if h < 20 {
				feed(c, Signal{Kind: SignalChange, Service: fmt.Sprint("preview-", day, "-", h), Name: "deploy", Time: at, EventID: fmt.Sprint("pre-", day, "-", h)})
			}
		}
	}
	kept := 0
	for _, list := range c.changes {
		kept += len(list)
	}
	// At most the changes of change_window + MaxAhead + reopen_window +
	// one sweep interval (change_window) before the watermark: 3.5 hours.
	if len(c.changes) > 4 || kept > 6 {
		t.Errorf("after a month %d changes of %d services remembered, want those of the last hours only", kept, len(c.changes))
	}
	// An incident that opened after a change still links it, and one
	// held for days keeps what it may link remembered.
	at := 30 * 24 * time.Hour
	feed(c, Signal{Kind: SignalChange, Service: "payments-db", Name: "deploy", Version: "v9", Time: t0.Add(at), EventID: "chg-db"})
	feed(c, alert("DBDown", "payments-db", at+10*time.Minute))
	inc := c.members["DBDown/payments-db"].inc
	if len(inc.changes) != 1 {
		t.Fatalf("incident links %d changes, want the deploy before it", len(inc.changes))
	}
	c.Advance(t0.Add(at + 5*24*time.Hour))
	if _, ok := c.changes["payments-db"]; !ok {
		t.Errorf("the change before an incident still held was forgotten")
	}
}

// The watermark runs up to an hour ahead of the wall clock: the correlator
// service takes an event timed up to an hour ahead of its clock (a
// producer's clock ahead, within ingest's max_event_future). The signals
// on time then trail the watermark by as much, and a deploy made within
// change_window before the failure they report must still be remembered
// for them to link.
func TestChangeStaysLinkableWhileTheWatermarkRunsAhead(t *testing.T) {
	c := newCorrelator(t, Config{})
	deploy := 10 * time.Minute
	feed(c, Signal{Kind: SignalChange, Service: "payments-db", Name: "deploy", Version: "v2", Time: t0.Add(deploy), EventID: "chg-db"})
	// 40 minutes later by the wall clock, a producer whose clock runs 55
	// minutes ahead: the watermark crosses an hour (a sweep of the changes).
	wall := deploy + 40*time.Minute
	feed(c, Signal{Kind: SignalChange, Service: "cart", Name: "config", Time: t0.Add(wall + 55*time.Minute), EventID: "chg-cart"})
	// The deploy's failure, reported on time.
	feed(c, alert("DBDown", "payments-db", wall))
	inc := c.members["DBDown/payments-db"].inc
	if len(inc.changes) != 1 {
		t.Errorf("the incident links %d changes, want the deploy 40 minutes before it: forgotten as the watermark ran ahead", len(inc.changes))
	}
}
