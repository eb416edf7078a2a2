package writer

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/correlate"
	"github.com/aiops-dev/aiops/pkg/event"
)

// TestIncidentOpeningMovedByMergeIsCountedOnce drives the real correlator
// through a cascade across midnight (same month): api-a alerts at 23:58 on
// March 1 (incident A), api-b at 00:03 on March 2 (incident B), db, what
// both depend on, at 00:04: A is merged into B, which takes A's opening
// (23:58 on March 1). The writer stores each state as it comes (each its
// own part, as a writer flushing every second does; merges not yet run).
// An analyst asks for March 2 alone: the incidents that opened on it. B
// opened on March 1; but the part holding B's latest state (opened_at
// March 1 23:58) is skipped by the partition key's min/max index for
// opened_at >= March 2, and FINAL then finds only B's stale first state
// (opened_at 00:03 on March 2) and counts it.
func TestIncidentOpeningMovedByMergeIsCountedOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: needs ClickHouse")
	}
	c := cascadeCorrelator(t)
	march2 := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	var envs [][]byte
	add := func(e *event.Envelope) {
		data, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		envs = append(envs, data)
	}
	alertAt := func(name, svc string, at time.Time) correlate.Signal {
		id := event.DerivedID(at, name, svc)
		body, _ := json.Marshal(event.AlertBody{Name: name, Status: event.AlertFiring, StartsAt: at})
		e := &event.Envelope{SchemaVersion: 1, ID: id, Kind: event.KindAlert, Time: at, ObservedTime: at, Source: "test",
			Service: svc, Labels: map[string]string{"alertname": name}, Severity: event.SeverityCritical, Fingerprint: name + "/" + svc, Body: body}
		add(e)
		return correlate.Signal{Kind: correlate.SignalAlert, Fingerprint: name + "/" + svc, Service: svc, Name: name,
			Severity: event.SeverityCritical, Time: at, Observed: at, EventID: id}
	}
	publish := func(ups []correlate.Update) {
		for _, u := range ups {
			e, err := correlate.Envelope(u, u.Time)
			if err != nil {
				t.Fatal(err)
			}
			add(e)
		}
	}
	a := alertAt("HighLatency", "api-a", march2.Add(-2*time.Minute))
	publish(c.Observe(a))
	b := alertAt("HighLatency", "api-b", march2.Add(3*time.Minute))
	publish(c.Observe(b))
	publish(c.Observe(alertAt("ReplicationLag", "db", march2.Add(4*time.Minute))))
	publish(c.Advance(march2.Add(10 * time.Minute)))
	incB, _ := c.IncidentOf(b.Fingerprint)
	st, _ := c.Incident(incB)
	if c.Stats().Merged != 1 || !st.OpenedAt.Before(march2) {
		t.Fatalf("merged %d, %s opened %s: want A merged into B and B's opening moved to March 1", c.Stats().Merged, incB, st.OpenedAt)
	}

	ctx := context.Background()
	s := migratedStore(t, ctx, zerolog.Nop())
	for _, table := range EventTables {
		if err := s.Conn.Exec(ctx, "SYSTEM STOP MERGES "+table); err != nil {
			t.Fatal(err)
		}
	}
	sink, err := NewSink(s.Conn, SinkConfig{MaxRows: 100, MaxAge: time.Hour, MaxPendingRows: 10_000}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	for _, data := range envs { // one flush per event: one part per state
		e, err := event.Parse(data)
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		sink.Write(ctx, e, func(err error) { done <- err })
		if err := sink.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if err := sink.Close(ctx); err != nil {
		t.Fatal(err)
	}

	var latest uint64
	if err := s.Conn.QueryRow(ctx, "SELECT count() FROM incidents FINAL WHERE incident_id = ? AND opened_at < ?", incB, march2).Scan(&latest); err != nil {
		t.Fatal(err)
	}
	var stale uint64
	if err := s.Conn.QueryRow(ctx, "SELECT count() FROM incidents FINAL WHERE incident_id = ? AND opened_at >= ?", incB, march2).Scan(&stale); err != nil {
		t.Fatal(err)
	}
	t.Logf("incidents FINAL: %s with opened_at < March 2: %d row(s), with opened_at >= March 2: %d row(s)", incB, latest, stale)

	query := cookbookQuery(t, "alerts_per_incident_per_day")
	march3 := march2.AddDate(0, 0, 1)
	rows := queryRows(t, ctx, s.Conn, query, []any{march2, march3, march2, march3})
	for _, r := range rows {
		t.Logf("alerts_per_incident_per_day, March 2 alone: %v", r)
		if n := r[3].(uint64); n != 0 {
			t.Errorf("March 2: %d incident(s) opened, want 0: the only incident not merged, %s, opened %s (March 1)", n, incB, st.OpenedAt.UTC())
		}
	}
	if len(rows) != 1 {
		t.Fatalf("%d rows, want March 2's", len(rows))
	}

	// The dashboard's "Incidents opened per hour by service", over March 2
	// 00:00-06:00: nothing opened then.
	panel := dashboardClickHouseSQL(t, march2, march2.Add(6*time.Hour))["Incidents opened per hour by service"]
	if len(panel) != 1 {
		t.Fatalf("%d queries", len(panel))
	}
	if got := queryRows(t, ctx, s.Conn, panel[0], nil); len(got) != 0 {
		t.Errorf("dashboard Incidents opened per hour by service, March 2 00:00-06:00: %v, want none (%s opened %s)", got, incB, st.OpenedAt.UTC())
	}
}
