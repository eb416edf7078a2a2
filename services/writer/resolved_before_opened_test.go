package writer

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/event"
)

// A resolution whose resolved_at is before the incident's opening (a
// producer's clock behind the one that timed the opening) was stored as
// sent, and MTTR, resolved_at minus opened_at, came out negative, pulling
// the mean of its week, service and team below the real one. It is stored
// as resolved at its opening (0 minutes), as MTTA counts an
// acknowledgement before the opening.
func TestMTTRNeverNegativeForAResolutionTimedBeforeTheOpening(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: needs ClickHouse")
	}
	opened := time.Date(2026, 11, 3, 10, 0, 0, 0, time.UTC)
	var envs [][]byte
	state := func(at time.Time, body event.IncidentBody) {
		t.Helper()
		e := incidentState(t, at, body)
		data, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		envs = append(envs, data)
	}
	state(opened, event.IncidentBody{IncidentID: "inc-skew", Status: event.IncidentOpened, Title: "billing 5xx", OpenedAt: opened})
	state(opened.Add(30*time.Minute), event.IncidentBody{IncidentID: "inc-skew", Status: event.IncidentResolved, Title: "billing 5xx",
		OpenedAt: opened, ResolvedAt: opened.Add(-time.Hour)})

	ctx := context.Background()
	st := migratedStore(t, ctx, zerolog.Nop())
	loadEnvelopes(t, ctx, st, nil, envs)

	rows := queryRows(t, ctx, st.Conn, cookbookQuery(t, "mtta_mttr_per_service_team_week"),
		[]any{time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)})
	if len(rows) != 1 {
		t.Fatalf("mtta_mttr_per_service_team_week: %v, want one row", rows)
	}
	if resolved, mttr := rows[0][6], rows[0][7]; resolved != uint64(1) || mttr != 0.0 {
		t.Errorf("mtta_mttr_per_service_team_week: %d resolved, MTTR %v minutes; want 1 resolved in 0 minutes (resolved_at an hour before its opening)", resolved, mttr)
	}
	var resolvedAt time.Time
	if err := st.Conn.QueryRow(ctx, "SELECT resolved_at FROM incidents FINAL WHERE incident_id = 'inc-skew'").Scan(&resolvedAt); err != nil {
		t.Fatal(err)
	}
	if !resolvedAt.Equal(opened) {
		t.Errorf("incidents FINAL: resolved_at %s, want %s (its opening)", resolvedAt.UTC(), opened)
	}
}
