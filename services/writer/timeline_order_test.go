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

// TestIncidentTimelineListsStatesOfOneSecondInTheirOrder drives the real
// correlator as aiops run does when a person acts on an incident right
// after its alerts: the acknowledgement, the assignment, the comment and
// the resolution are events timed at the correlator's event time, the
// alert's second, each a nanosecond after the one before (their
// version). Their ids are ULIDs whose random part is a hash, so within one
// second they sort in no order of the states: ordered by time, kind and id
// the cookbook's timeline listed an incident "updated" before "opened".
func TestIncidentTimelineListsStatesOfOneSecondInTheirOrder(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: needs ClickHouse")
	}
	c := cascadeCorrelator(t)
	base := time.Date(2026, 11, 20, 9, 30, 0, 0, time.UTC)
	alert := correlate.Signal{Kind: correlate.SignalAlert, Fingerprint: "ReplicationLag/db", Service: "db", Name: "ReplicationLag",
		Severity: event.SeverityCritical, Time: base, Observed: base, EventID: event.DerivedID(base, "ReplicationLag", "db")}
	ups := c.Observe(alert)
	inc, ok := c.IncidentOf(alert.Fingerprint)
	if !ok {
		t.Fatal("the alert opened no incident")
	}
	for i, cmd := range []correlate.Command{
		{Action: "ack", By: "ana"},
		{Action: "assign", By: "ana", Assignee: "bo"},
		{Action: "comment", By: "ana", Text: "failing over the replica"},
		{Action: "resolve", By: "ana"},
	} {
		cmd.IncidentID = inc
		cmd.Time = base.Add(time.Duration(i+1) * time.Second)
		u, err := c.Apply(cmd)
		if err != nil {
			t.Fatal(err)
		}
		ups = append(ups, u)
	}
	var envs [][]byte
	var want []string
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
		want = append(want, string(u.Transition))
		t.Logf("%s at %s: id %s", u.Transition, u.Time.Format(time.RFC3339Nano), e.ID)
	}
	ctx := context.Background()
	st := migratedStore(t, ctx, zerolog.Nop())
	loadEnvelopes(t, ctx, st, &fixture{}, envs)

	rows := queryRows(t, ctx, st.Conn, cookbookQuery(t, "incident_timeline"), []any{inc, inc, inc, inc, inc})
	var got []string
	for _, r := range rows {
		if r[1] == "incident" {
			got = append(got, r[2].(string))
		}
	}
	if len(got) != len(want) {
		t.Fatalf("incident_timeline lists %d states %v, want %d %v", len(got), got, len(want), want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("incident_timeline lists the states as %v, want them as they happened: %v", got, want)
		}
	}
}
