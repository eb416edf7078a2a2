package writer

import (
	"context"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/pkg/store"
)

// An incident left open for more than a year (a low-severity alert that
// never stops firing) keeps its month through retention, which checks for
// open incidents; its resolution, coming now, must reach that month. The
// writer dead-lettered every state whose opened_at was more than 366 days
// before the state, so ClickHouse showed the incident open for ever, and
// retention kept its month for ever too.
func TestIncidentOpenMoreThanAYearTakesItsResolution(t *testing.T) {
	ctx := context.Background()
	st := migratedStore(t, ctx, zerolog.New(zerolog.NewTestWriter(t)))
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	opened := now.AddDate(0, 0, -400)

	write := func(at time.Time, e *event.Envelope) error {
		t.Helper()
		// Each state through a sink whose clock is its own time, as the
		// writer running then saw it.
		sink, err := NewSink(st.Conn, SinkConfig{MaxRows: 10, MaxAge: time.Hour}, zerolog.Nop())
		if err != nil {
			t.Fatal(err)
		}
		defer sink.Close(ctx)
		sink.SetTimeWindow(TimeWindow{MaxPast: 14 * 24 * time.Hour, MaxFuture: DefaultMaxEventFuture, Now: func() time.Time { return at }})
		done := make(chan error, 1)
		sink.Write(ctx, e, func(err error) { done <- err })
		if err := sink.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		return <-done
	}

	if err := write(opened, incidentState(t, opened, event.IncidentBody{IncidentID: "inc-old", Status: event.IncidentOpened, Title: "disk 81% full", OpenedAt: opened})); err != nil {
		t.Fatalf("opened state: %v", err)
	}
	if err := write(now, incidentState(t, now, event.IncidentBody{IncidentID: "inc-old", Status: event.IncidentResolved, Title: "disk 81% full", OpenedAt: opened})); err != nil {
		t.Fatalf("the resolution of an incident opened %s, 400 days before it, was refused: %v", opened.Format(time.DateOnly), err)
	}

	if _, err := store.DropPartitionsOlderThan(ctx, st.Conn, TableIncidents, DefaultRetentionDays[TableIncidents], now); err != nil {
		t.Fatal(err)
	}
	var status string
	var resolvedAt, openedAt time.Time
	if err := st.Conn.QueryRow(ctx, "SELECT status, resolved_at, opened_at FROM incidents FINAL WHERE incident_id = 'inc-old'").Scan(&status, &resolvedAt, &openedAt); err != nil {
		t.Fatal(err)
	}
	if status != event.IncidentResolved || !resolvedAt.Equal(now) || !openedAt.Equal(opened) {
		t.Fatalf("incidents FINAL: %s, resolved_at %s, opened_at %s; want resolved at %s, opened %s", status, resolvedAt.UTC(), openedAt.UTC(), now, opened)
	}
	var history uint64
	if err := st.Conn.QueryRow(ctx, "SELECT count() FROM incident_history FINAL WHERE incident_id = 'inc-old' AND status = 'resolved'").Scan(&history); err != nil {
		t.Fatal(err)
	}
	if history != 1 {
		t.Fatalf("incident_history: %d resolved states of inc-old, want 1", history)
	}
}
