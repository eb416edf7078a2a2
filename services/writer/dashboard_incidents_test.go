package writer

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// dashboardClickHouseSQL returns the Grafana dashboard's ClickHouse queries
// by panel title, the time macros replaced by [from, to).
func dashboardClickHouseSQL(t *testing.T, from, to time.Time) map[string][]string {
	t.Helper()
	data, err := os.ReadFile("../../deployments/grafana/aiops-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string
			Targets []struct {
				RawSQL string `json:"rawSql"`
			}
		}
	}
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatal(err)
	}
	r := strings.NewReplacer("$__fromTime", fmt.Sprintf("toDateTime(%d)", from.Unix()), "$__toTime", fmt.Sprintf("toDateTime(%d)", to.Unix()))
	out := map[string][]string{}
	for _, p := range d.Panels {
		for _, q := range p.Targets {
			if q.RawSQL != "" {
				out[p.Title] = append(out[p.Title], r.Replace(q.RawSQL))
			}
		}
	}
	return out
}

// TestDashboardIncidentPanelsAgreeWithCookbook loads the cookbook fixture
// (every row twice) and checks the dashboard's incident panels against the
// definitions of docs/queries.md: an incident is open when its latest
// state is not resolved (a comment on a resolved incident is an "updated"
// state, still resolved), and MTTR runs to the latest state's resolution
// (an incident reopened and still open is not resolved), and an incident
// merged into another is no incident opened (the noise reduction's count).
func TestDashboardIncidentPanelsAgreeWithCookbook(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: needs ClickHouse")
	}
	ctx := context.Background()
	st := migratedStore(t, ctx, zerolog.Nop())
	f := newFixture()
	loadFixture(t, ctx, st.Conn, f)
	incidents := f.incidentSummaries()
	from, to := day(0), day(14)
	panels := dashboardClickHouseSQL(t, from, to)

	// Open incidents: the stat panel and the table.
	var wantOpen []string
	for _, in := range incidents {
		if in.resolved.IsZero() {
			wantOpen = append(wantOpen, in.id)
		}
	}
	sort.Strings(wantOpen)
	open := panels["Open incidents"]
	if len(open) != 2 {
		t.Fatalf("%d queries in the panels titled Open incidents, want 2", len(open))
	}
	var count uint64
	if err := st.Conn.QueryRow(ctx, open[0]).Scan(&count); err != nil {
		t.Fatal(err)
	}
	if int(count) != len(wantOpen) {
		t.Errorf("stat panel Open incidents: %d, want %d (%v)", count, len(wantOpen), wantOpen)
	}
	var gotOpen []string
	for _, r := range queryRows(t, ctx, st.Conn, open[1], nil) {
		gotOpen = append(gotOpen, r[0].(string))
	}
	sort.Strings(gotOpen)
	if fmt.Sprint(gotOpen) != fmt.Sprint(wantOpen) {
		t.Errorf("table panel Open incidents lists %v, want %v", gotOpen, wantOpen)
	}

	// MTTA and MTTR per service and team, over [from, to).
	type key struct{ svc, team string }
	groups, _ := mttaGroups(incidents, from, to, func(in incidentSummary) key { return key{in.service, in.team} })
	want := map[key]string{}
	for k, g := range groups {
		want[k] = fmt.Sprintf("incidents=%d acknowledged=%d mtta=%v resolved=%d mttr=%v", g.n, g.acked, g.mtta(), g.resolved, g.mttr())
	}
	mtta := panels["MTTA and MTTR per service and team (minutes)"]
	if len(mtta) != 1 {
		t.Fatalf("%d MTTA queries", len(mtta))
	}
	got := map[key]string{}
	for _, r := range queryRows(t, ctx, st.Conn, mtta[0], nil) {
		got[key{r[0].(string), r[1].(string)}] = fmt.Sprintf("incidents=%v acknowledged=%v mtta=%v resolved=%v mttr=%v", r[2], r[3], r[4], r[5], r[6])
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("MTTA/MTTR panel, %s/%s: %s\n\twant %s", k.svc, k.team, got[k], w)
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("MTTA/MTTR panel: a row %s/%s (%s) that the cookbook's definition has no incident for", k.svc, k.team, g)
		}
	}

	// Incidents opened per hour by service, merged ones left out.
	byHour, merged := mttaGroups(incidents, from, to, func(in incidentSummary) string {
		return fmt.Sprintf("%s %s", in.opened.Truncate(time.Hour).Format(time.RFC3339), in.service)
	})
	wantOpened := map[string]int{}
	for k, g := range byHour {
		wantOpened[k] = g.n
	}
	if merged == 0 {
		t.Fatal("fixture: no merged incident in range, so nothing tests that the panel leaves them out")
	}
	opened := panels["Incidents opened per hour by service"]
	if len(opened) != 1 {
		t.Fatalf("%d queries in the panel Incidents opened per hour by service", len(opened))
	}
	gotOpened := map[string]int{}
	for _, r := range queryRows(t, ctx, st.Conn, opened[0], nil) {
		gotOpened[fmt.Sprintf("%s %s", r[0].(time.Time).UTC().Format(time.RFC3339), r[1])] = int(r[2].(uint64))
	}
	if fmt.Sprint(gotOpened) != fmt.Sprint(wantOpened) {
		t.Errorf("panel Incidents opened per hour by service: %v\n\twant %v", gotOpened, wantOpened)
	}
}
