package writer

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/correlate"
	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/pkg/store"
)

// TestMTTANeverNegativeForMergeAtMonthStart drives the real correlator
// through a cascade at a month's start: api-a alerts at 23:50 on the
// last day of November (incident A), a person acknowledges A at 23:52,
// api-b alerts at 23:55 (incident B), db, what both depend on, alerts at
// 23:56 and A is merged into B. The merge hands A's acknowledgement
// (23:52) to B, but B keeps its own opening (23:55: the correlator does not
// move an opening across a month's start). The incident events go through
// the writer into ClickHouse and the cookbook's MTTA query reads them: B
// was acknowledged 3 minutes before it opened.
func TestMTTANeverNegativeForMergeAtMonthStart(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: needs ClickHouse")
	}
	c := cascadeCorrelator(t)
	base := time.Date(2026, 11, 30, 23, 50, 0, 0, time.UTC)
	alertAt := func(name, svc string, at time.Time) correlate.Signal {
		return correlate.Signal{Kind: correlate.SignalAlert, Fingerprint: name + "/" + svc, Service: svc, Name: name,
			Severity: event.SeverityCritical, Time: at, Observed: at, EventID: event.DerivedID(at, name, svc)}
	}
	var ups []correlate.Update
	a := alertAt("HighLatency", "api-a", base)
	ups = append(ups, c.Observe(a)...)
	incA, _ := c.IncidentOf(a.Fingerprint)
	u, err := c.Apply(correlate.Command{IncidentID: incA, Action: "ack", By: "alice", Time: base.Add(2 * time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	ups = append(ups, u)
	b := alertAt("HighLatency", "api-b", base.Add(5*time.Minute))
	ups = append(ups, c.Observe(b)...)
	ups = append(ups, c.Observe(alertAt("ReplicationLag", "db", base.Add(6*time.Minute)))...)
	ups = append(ups, c.Advance(base.Add(7*time.Minute))...)
	if c.Stats().Merged != 1 {
		t.Fatalf("%d merged, want 1", c.Stats().Merged)
	}
	incB, _ := c.IncidentOf(b.Fingerprint)
	st, _ := c.Incident(incB)
	t.Logf("%s: opened_at %s, acknowledged_at %s (%s merged into it)", incB, st.OpenedAt, st.AcknowledgedAt, incA)

	f := &fixture{}
	var envs [][]byte
	for _, u := range ups {
		e, err := correlate.Envelope(u, u.Time)
		if err != nil {
			t.Fatal(err)
		}
		data, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		envs = append(envs, data)
	}
	ctx := context.Background()
	st2 := migratedStore(t, ctx, zerolog.Nop())
	loadEnvelopes(t, ctx, st2, f, envs)

	mtta := cookbookQuery(t, "mtta_mttr_per_service_team_week")
	rows := queryRows(t, ctx, st2.Conn, mtta, []any{time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)})
	for _, r := range rows {
		t.Logf("row: %v", r)
		if m, ok := r[5].(float64); ok && m < 0 {
			t.Errorf("mtta_mttr_per_service_team_week: service %v team %v: MTTA %v minutes, negative (acknowledged before it opened)", r[1], r[2], m)
		}
	}
	if len(rows) == 0 {
		t.Fatal("no rows")
	}
}

// loadEnvelopes writes envs through the writer's sink twice, with merges
// stopped, as loadFixture does.
func loadEnvelopes(t *testing.T, ctx context.Context, st *store.Store, _ *fixture, envs [][]byte) {
	t.Helper()
	for _, table := range EventTables {
		if err := st.Conn.Exec(ctx, "SYSTEM STOP MERGES "+table); err != nil {
			t.Fatal(err)
		}
	}
	sink, err := NewSink(st.Conn, SinkConfig{MaxRows: 100, MaxAge: time.Hour, MaxPendingRows: 10_000}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	var fails []error
	for round := 0; round < 2; round++ {
		done := make(chan error, len(envs))
		for _, data := range envs {
			e, err := event.Parse(data)
			if err != nil {
				t.Fatalf("%v\n%s", err, data)
			}
			sink.Write(ctx, e, func(err error) { done <- err })
		}
		if err := sink.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		for range envs {
			if err := <-done; err != nil {
				fails = append(fails, err)
			}
		}
	}
	if err := sink.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if len(fails) > 0 {
		t.Fatalf("%d rows failed: %v", len(fails), fails[0])
	}
}

// cascadeCorrelator is the real correlator, defaults, on api-a and api-b
// both depending on db: a late db alert merges their incidents.
func cascadeCorrelator(t *testing.T) *correlate.Correlator {
	t.Helper()
	cat, err := correlate.ParseCatalog([]byte(`
services:
  api-a: {depends_on: [db]}
  api-b: {depends_on: [db]}
  db:    {}
`))
	if err != nil {
		t.Fatal(err)
	}
	c, err := correlate.New(correlate.Config{}, cat)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
