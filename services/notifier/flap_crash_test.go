package notifier

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/correlate"
	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/pkg/stage/stagetest"
)

// An incident merged into another within group_wait is never notified,
// and a crash right after the merge does not change that. The crash of
// the operator's trial: `aiops run` killed (-9) 50 ms after the merge,
// its embedded server with it, whose consumer state (written at most
// every 100 ms) did not have the acks yet, while the state bucket had
// the tombstone. The opening and the resolve came again after ack_wait,
// behind newer events that had moved the notifier's clock past the
// opening's group_wait: the opening went out at once, then the resolve
// (a page for an incident nobody would have been paged for). When only
// the resolve comes again (the server had the opening's ack, settled
// first), it went out alone. The incident it was merged into, waiting
// for its group_wait at the crash, still goes out, and the resolve of an
// incident the receiver heard of goes out again, never its opening after
// it.
func TestMergedWithinGroupWaitIsNotNotifiedAfterACrash(t *testing.T) {
	for _, tc := range []struct {
		name      string
		openAgain bool
	}{
		{"its opening and its resolve come again", true},
		{"its resolve comes again", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newJSRig(t, zerolog.ErrorLevel)
			events, merged, into := merge(t)
			var st correlate.State
			if err := merged.DecodeBody(&st); err != nil {
				t.Fatal(err)
			}
			var opening, other *event.Envelope // the merged one's opening, the other's
			for _, e := range events {
				switch {
				case strings.Contains(string(e.Body), `"incident_id":"`+st.IncidentID+`"`) && e.ID != merged.ID:
					opening = e
				case strings.Contains(string(e.Body), `"incident_id":"`+into+`"`):
					other = e
				}
			}
			if opening == nil || other == nil || merged.Time.Sub(st.OpenedAt) >= 30*time.Second {
				t.Fatalf("the correlator's merge: %d events, merged %s after its opening; want it within group_wait (30s)", len(events), merged.Time.Sub(st.OpenedAt))
			}
			hook := newReceiver(t)
			heard := func(id string) []string {
				var out []string
				_, bodies := hook.requests()
				for _, b := range bodies {
					if strings.Contains(string(b), `"incident_id":"`+id+`"`) {
						status := "firing"
						if strings.Contains(string(b), `"status":"resolved"`) {
							status = "resolved"
						}
						out = append(out, status)
					}
				}
				return out
			}

			h, proc, at, tick := timedRigWith(t, hook, nil, r.stateBucket())
			// db: notified, then resolved within the merge's group_wait
			dbOpen := incidentAt(t, "db", "payments-db", "dba", event.SeverityCritical, event.IncidentOpened, t0.Add(-time.Minute), t0.Add(-time.Minute))
			dbResolve := incidentAt(t, "db", "payments-db", "dba", event.SeverityCritical, event.IncidentResolved, t0.Add(-time.Minute), t0.Add(15*time.Second))
			at(-time.Minute)
			h.Send(dbOpen)
			tick(-29 * time.Second)
			held := map[string]*stagetest.Held{}
			for _, e := range append([]*event.Envelope{dbResolve}, events...) {
				at(e.Time.Sub(t0))
				held[e.ID] = h.Send(e)
			}
			// the saver's pass that follows the merge at once: the tombstone
			if err := proc.saveOpen(context.Background()); err != nil {
				t.Fatal(err)
			}
			waitSent(t, proc)
			if got := heard("db"); len(got) != 2 || got[1] != "resolved" {
				t.Fatalf("db before the crash: the receiver heard %v, want its opening and its resolve", got)
			}
			for _, e := range []*event.Envelope{dbResolve, opening, merged} {
				if res, ok := held[e.ID].Result(); !ok || res.Outcome != stagetest.Acked {
					t.Fatalf("%s settled %v (%v): want acked once the merge's tombstone is written", e.ID, ok, res.Outcome)
				}
			}
			ackWait := proc.cfg.Consumer.AckWait
			h.Stop() // the kill: no save after this

			h, _, at, tick = timedRigWith(t, hook, nil, r.stateBucket())
			// What was published meanwhile is delivered at once, moving
			// the clock; the held events come again after ack_wait.
			at(ackWait)
			h.Send(incidentAt(t, "search-inc", "search", "discovery", event.SeverityWarning, event.IncidentOpened, t0.Add(ackWait), t0.Add(ackWait)))
			again := []*event.Envelope{dbOpen, dbResolve, other, merged}
			if tc.openAgain {
				again = []*event.Envelope{dbOpen, dbResolve, opening, other, merged}
			}
			// Each is settled once the tick below handed out what came due
			// (an opening past its wait waits LateOpeningHold for a resolve).
			heldAgain := map[string]*stagetest.Held{}
			for _, e := range again {
				heldAgain[e.ID] = h.Send(e)
			}
			tick(ackWait + time.Minute)
			for _, e := range again {
				if res, ok := heldAgain[e.ID].Result(); !ok || res.Outcome != stagetest.Acked {
					t.Fatalf("%s delivered again: settled %v, %v %v", e.ID, ok, res.Outcome, res.Err)
				}
			}
			if got := heard(st.IncidentID); len(got) > 0 {
				t.Errorf("the incident merged within group_wait: the receiver heard %v after the crash; want nothing, as without it", got)
			}
			if got := heard(into); len(got) != 1 || got[0] != "firing" {
				t.Errorf("the incident it was merged into: the receiver heard %v; want its opening", got)
			}
			if got := heard("db"); len(got) != 3 || got[2] != "resolved" {
				t.Errorf("db, resolved before the crash: the receiver heard %v; want its opening and its resolve, then the resolve again", got)
			}
		})
	}
}
