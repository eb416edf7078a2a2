package writer

import (
	"strings"
	"testing"
	"time"

	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/pkg/stage/stagetest"
)

// An incident state whose resolved_at (or acknowledged_at) was in 9999, a
// producer's "never" or a clock years off, was stored as 2106-02-07, the
// last second a DateTime holds: the MTTA/MTTR queries then counted an
// 80-year resolution. A time further ahead of the writer's clock than
// writer.max_event_future is dead-lettered naming the field, as an event
// timed that far ahead is; a command's time after its state's event time
// (a replay's old state resolved now) is still stored.
func TestIncidentTimeFarAheadOfTheWritersClockIsRefusedNotStoredAs2106(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	h, tables := windowedSink(t, now)
	opened := now.Add(-time.Hour)
	never := time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)
	for _, c := range []struct {
		name  string
		body  event.IncidentBody
		field string
	}{
		{"resolved in 9999", event.IncidentBody{IncidentID: "inc-r", Status: event.IncidentResolved, Title: "t", OpenedAt: opened, ResolvedAt: never}, "body.resolved_at:"},
		{"acknowledged in 9999", event.IncidentBody{IncidentID: "inc-a", Status: event.IncidentAcknowledged, Title: "t", OpenedAt: opened, AcknowledgedAt: never}, "body.acknowledged_at:"},
		{"acknowledged two days ahead", event.IncidentBody{IncidentID: "inc-a2", Status: event.IncidentAcknowledged, Title: "t", OpenedAt: opened, AcknowledgedAt: now.Add(48 * time.Hour)}, "body.acknowledged_at:"},
		{"opened in 9999", event.IncidentBody{IncidentID: "inc-o", Status: event.IncidentOpened, Title: "t", OpenedAt: never}, "body.opened_at:"},
	} {
		r := h.Feed(incidentState(t, now, c.body))[0]
		if r.Outcome != stagetest.DeadLettered || !strings.Contains(r.Err.Error(), c.field) {
			t.Errorf("%s: %v %v, want dead-lettered naming %s", c.name, r.Outcome, r.Err, c.field)
		}
	}
	for _, table := range []string{TableIncidents, TableIncidentHistory} {
		if rows := tables[table].Rows(); len(rows) != 0 {
			t.Fatalf("%s: %d rows stored of the refused states, want none: %v", table, len(rows), rows)
		}
	}

	// A state of ten days ago (a backlog, a replay) resolved by a command
	// given now, and one acknowledged within the window ahead: stored as
	// sent.
	old := now.Add(-10 * 24 * time.Hour)
	for _, c := range []struct {
		at   time.Time
		body event.IncidentBody
	}{
		{old, event.IncidentBody{IncidentID: "inc-old", Status: event.IncidentResolved, Title: "t", OpenedAt: old.Add(-time.Hour), ResolvedAt: now}},
		{now, event.IncidentBody{IncidentID: "inc-skew", Status: event.IncidentAcknowledged, Title: "t", OpenedAt: opened, AcknowledgedAt: now.Add(time.Hour)}},
	} {
		if r := h.Feed(incidentState(t, c.at, c.body))[0]; r.Outcome != stagetest.Acked {
			t.Fatalf("%s: %v %v, want stored", c.body.IncidentID, r.Outcome, r.Err)
		}
	}
	rows := tables[TableIncidents].Rows()
	if len(rows) != 2 {
		t.Fatalf("incidents: %d rows, want 2", len(rows))
	}
	if got := column(t, TableIncidents, rows[0], "resolved_at"); got != now {
		t.Errorf("inc-old: resolved_at %v, want %v (the command's time, after the state's)", got, now)
	}
	if got := column(t, TableIncidents, rows[1], "acknowledged_at"); got != now.Add(time.Hour) {
		t.Errorf("inc-skew: acknowledged_at %v, want %v", got, now.Add(time.Hour))
	}
}
