package notifier

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/correlate"
	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/pkg/stage"
	"github.com/aiops-dev/aiops/pkg/stage/stagetest"
)

// incidentOn is an incident event of one service with a team and
// severity, in the given transition, of an incident opened at t0.
func incidentOn(t *testing.T, id, service, team string, sev event.Severity, transition string, at time.Time) *event.Envelope {
	t.Helper()
	return incidentAt(t, id, service, team, sev, transition, t0, at)
}

// incidentAt is incidentOn for an incident opened at opened.
func incidentAt(t *testing.T, id, service, team string, sev event.Severity, transition string, opened, at time.Time) *event.Envelope {
	t.Helper()
	state := correlate.StatusOpen
	var resolved time.Time
	if transition == event.IncidentResolved {
		state, resolved = correlate.StatusResolved, at
	}
	st := correlate.State{IncidentID: id, Status: transition, State: state, Title: "down: " + service, Team: team, Service: service,
		Severity: sev, OpenedAt: opened, ResolvedAt: resolved, LastEvent: at, Services: []string{service}, MemberCount: 1,
		Members: []correlate.Member{{Fingerprint: "fp-" + id, Kind: correlate.SignalAlert, Service: service, Name: "Down",
			Severity: sev, Firing: state != correlate.StatusResolved, FirstSeen: opened, LastSeen: at}}}
	e, err := correlate.Envelope(correlate.Update{Transition: correlate.Transition(transition), Time: at, State: st}, at)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// An open critical incident of a team inhibits that team's warnings (the
// rule's equal: [team]); another team's warning goes out; once the
// critical one resolved, the team's next warning goes out too.
func TestInhibitionByOpenIncidents(t *testing.T) {
	hook := newReceiver(t)
	routes := filepath.Join(t.TempDir(), "alertmanager.yml")
	os.WriteFile(routes, []byte(`route:
  receiver: hook
  group_wait: 0s
receivers:
- name: hook
  webhook_configs:
  - url: `+hook.srv.URL+`
inhibit_rules:
- source_matchers: [severity="critical"]
  target_matchers: [severity="warning"]
  equal: [team]
`), 0o600)
	proc, err := NewProcessor(Config{Routes: routes}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	h := stagetest.Start(t, proc, stage.Config{Name: "notifier", TickEvery: time.Second})
	feed := func(e *event.Envelope) {
		t.Helper()
		if r := h.Feed(e)[0]; r.Outcome != stagetest.Acked {
			t.Fatalf("%s: %v %v", e.ID, r.Outcome, r.Err)
		}
	}
	delivered := func() (ids []string) {
		_, bodies := hook.requests()
		for _, b := range bodies {
			for _, id := range []string{"db-crit", "db-warn", "web-warn", "db-warn-2"} {
				if strings.Contains(string(b), `"incident_id":"`+id+`"`) {
					ids = append(ids, id)
				}
			}
		}
		return ids
	}
	feed(incidentOn(t, "db-crit", "payments-db", "dba", event.SeverityCritical, event.IncidentOpened, t0))
	feed(incidentOn(t, "db-warn", "replica", "dba", event.SeverityWarning, event.IncidentOpened, t0.Add(time.Minute)))
	feed(incidentOn(t, "web-warn", "web", "storefront", event.SeverityWarning, event.IncidentOpened, t0.Add(time.Minute)))
	if got := strings.Join(delivered(), " "); got != "db-crit web-warn" {
		t.Fatalf("delivered %q, want the critical one and the other team's warning", got)
	}
	feed(incidentOn(t, "db-crit", "payments-db", "dba", event.SeverityCritical, event.IncidentResolved, t0.Add(2*time.Minute)))
	feed(incidentOn(t, "db-warn-2", "replica", "dba", event.SeverityWarning, event.IncidentOpened, t0.Add(3*time.Minute)))
	if got := strings.Join(delivered(), " "); got != "db-crit web-warn db-crit db-warn-2" {
		t.Fatalf("delivered %q, want the resolved critical one, then the warning it no longer inhibits", got)
	}
}
