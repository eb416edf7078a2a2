package correlate

import (
	"testing"
	"time"
)

// A signal the last run opened an incident for after its last checkpoint
// (a crash, a lease lost) comes again after the restart. A catalog edit
// shipped with that restart adds a service to the component (a new
// frontend over web) without moving it anywhere (one correlator, no
// partitions): the signal must open the incident under the id the last
// run published, or downstream keeps that one open for ever beside a
// second one. Without partitions an id does not depend on the catalog.
func TestRedeliveredSignalKeepsItsIDAcrossACatalogEdit(t *testing.T) {
	before := "services:\n  web: {depends_on: [checkout]}\n  checkout: {depends_on: [payments-db]}\n  payments-db: {}\n"
	after := "services:\n  aaa-frontend: {depends_on: [web]}\n  web: {depends_on: [checkout]}\n  checkout: {depends_on: [payments-db]}\n  payments-db: {}\n"
	s := alert("ReplicationLag", "payments-db", time.Minute)

	first := correlatorOn(t, Config{}, before)
	feed(first, alert("Other", "unrelated", 0)) // the checkpoint: before s
	data, err := first.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	ups := feed(first, s) // published, never checkpointed
	ups = openedOn(ups, "payments-db")
	if len(ups) != 1 {
		t.Fatalf("%d opened, want 1", len(ups))
	}

	again := correlatorOn(t, Config{}, after)
	if err := again.UnmarshalJSON(data); err != nil {
		t.Fatal(err)
	}
	ups2 := openedOn(feed(again, s), "payments-db") // redelivered
	if len(ups2) != 1 {
		t.Fatalf("%d updates after the restart, want 1", len(ups2))
	}
	if a, b := ups[0].State.IncidentID, ups2[0].State.IncidentID; a != b {
		t.Errorf("the redelivered signal opened %s after the restart, the last run published %s: two incidents downstream, the first never resolved", b, a)
	}
}

func openedOn(ups []Update, service string) []Update {
	var out []Update
	for _, u := range ups {
		if u.Transition == "opened" && u.State.Service == service {
			out = append(out, u)
		}
	}
	return out
}
