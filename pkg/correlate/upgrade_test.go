package correlate

import (
	"os"
	"slices"
	"testing"
	"time"
)

// A snapshot of an earlier build goes on in this one: the state aiops run
// 4841052 (before alerts expired) saved with two open incidents, one
// acknowledged by ana and one with a comment and a resolved member,
// taken from its object store by an upgrade trial. Each keeps its id,
// who acknowledged it and its comment, and resolves once its alerts do:
// an upgrade must not lose open incidents (never resolved downstream) nor
// open them again under other ids (paged twice).
func TestSnapshotOfAnEarlierBuildGoesOn(t *testing.T) {
	data, err := os.ReadFile("testdata/snapshot-4841052.json")
	if err != nil {
		t.Fatal(err)
	}
	c := newCorrelator(t, Config{})
	if err := c.UnmarshalJSON(data); err != nil {
		t.Fatalf("restoring 4841052's snapshot: %v", err)
	}
	const acked, commented = "01M97WFTVQSG57MNBFPY4Z4B38", "01M97WX8J2R7P1F7CW9S83YSA2"
	a, ok := c.Incident(acked)
	if !ok || a.State != StatusAcknowledged || a.AcknowledgedBy != "ana" || a.Firing != 1 {
		t.Fatalf("acknowledged incident restored as %+v (found %v); want acknowledged by ana, 1 firing", a, ok)
	}
	b, ok := c.Incident(commented)
	if !ok || b.State != StatusOpen || len(b.Comments) != 1 || b.Comments[0].Text != "before the upgrade" || b.Firing != 2 || b.MemberCount != 3 {
		t.Fatalf("commented incident restored as %+v (found %v); want open, its comment, 2 of 3 members firing", b, ok)
	}

	at := time.Date(2026, 12, 7, 9, 23, 0, 0, time.UTC) // a minute after the snapshot
	end := func(fingerprint, name, service string) Signal {
		return Signal{Kind: SignalAlert, Fingerprint: fingerprint, Service: service, Name: name, Resolved: true, Time: at}
	}
	ups := feed(c,
		end("00000000000000a5", "DiskFull", "search-index"),
		end("00000000000000a1", "ReplicationLag", "payments-db"),
		end("00000000000000a2", "ConnectionPoolExhausted", "payments"))
	ups = append(ups, c.Advance(at.Add(time.Hour))...)
	var resolved []string
	for _, u := range ups {
		if u.Transition == Resolved {
			resolved = append(resolved, u.State.IncidentID)
		}
		if u.Transition == Opened {
			t.Errorf("incident %s opened after the restore: its alerts belong to a restored incident", u.State.IncidentID)
		}
	}
	slices.Sort(resolved)
	if want := []string{acked, commented}; !slices.Equal(resolved, want) {
		t.Fatalf("resolved %v (transitions %s), want each restored incident once: %v", resolved, transitions(ups), want)
	}
}
