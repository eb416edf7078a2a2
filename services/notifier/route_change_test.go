package notifier

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/pkg/stage"
	"github.com/aiops-dev/aiops/pkg/stage/stagetest"
)

// An incident's labels change while it is open (its root cause moves to
// another team's service as members join), so it matches another route
// than the one that paged: the receiver that was paged must still hear of
// its resolve, or its page (a PagerDuty alert, a ticket) stays open for
// ever, and must not be repeated the incident's old state after the
// incident resolved. Alertmanager never meets this, since an alert's
// labels are its identity.
func TestReceiverPagedBeforeTheIncidentChangedRouteGetsItsResolve(t *testing.T) {
	for _, c := range []routeChange{
		{name: "without a restart"},
		{name: "after a restart between the page and the change", restart: true},
		{name: "after a restart once the old route was sent the change", restartChanged: true},
		// The file changed meanwhile: the old route's place holds
		// another team's route, whose receiver never heard of the
		// incident and is sent nothing of it.
		{name: "after a restart with another route in the old one's place", restartChanged: true, moved: true},
	} {
		t.Run(c.name, func(t *testing.T) { pagedBeforeRouteChange(t, c) })
	}
}

// routeChange is a case of pagedBeforeRouteChange.
type routeChange struct {
	name           string
	restart        bool // between the page and the change
	restartChanged bool // once the old route was sent the change
	moved          bool // with routes[0] another team's after that restart
}

func pagedBeforeRouteChange(t *testing.T, c routeChange) {
	payments, dba, ops := newReceiver(t), newReceiver(t), newReceiver(t)
	routes := filepath.Join(t.TempDir(), "alertmanager.yml")
	os.WriteFile(routes, []byte(`route:
  receiver: dba
  group_wait: 30s
  group_interval: 5m
  repeat_interval: 1h
  routes:
  - matchers: [team="payments"]
    receiver: payments
receivers:
- name: payments
  webhook_configs:
  - url: `+payments.srv.URL+`
- name: dba
  webhook_configs:
  - url: `+dba.srv.URL+`
`), 0o600)
	store := &memOpen{kept: map[string]openIncident{}}
	wall := time.Now()
	var fake atomic.Int64
	at := func(d time.Duration) { fake.Store(wall.Add(d).UnixNano()) }
	at(0)
	start := func() (*stagetest.Harness, *Processor) {
		proc, err := NewProcessor(Config{Routes: routes}, zerolog.Nop())
		if err != nil {
			t.Fatal(err)
		}
		proc.WithOpenStore(store)
		if err := proc.restoreOpen(context.Background()); err != nil {
			t.Fatal(err)
		}
		proc.now = func() time.Time { return time.Unix(0, fake.Load()) }
		return stagetest.Start(t, proc, stage.Config{Name: "notifier", TickEvery: time.Second}), proc
	}
	h, proc := start()
	tick := func(d time.Duration) {
		t.Helper()
		at(d)
		if err := h.Tick(wall.Add(d)); err != nil {
			t.Fatal(err)
		}
		waitSent(t, proc)
	}
	statuses := func(r *receiver) []string {
		_, bodies := r.requests()
		var out []string
		for _, b := range bodies {
			if strings.Contains(string(b), `"status":"resolved"`) {
				out = append(out, "resolved")
			} else {
				out = append(out, "firing")
			}
		}
		return out
	}

	h.Send(incidentOn(t, "inc", "checkout", "payments", event.SeverityCritical, event.IncidentOpened, t0))
	tick(31 * time.Second)
	if got := statuses(payments); len(got) != 1 {
		t.Fatalf("payments got %v after group_wait, want the opening", got)
	}
	restartNow := func() {
		t.Helper()
		if err := proc.saveOpen(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := h.Stop(); err != nil {
			t.Fatal(err)
		}
		if c.moved {
			os.WriteFile(routes, []byte(`route:
  receiver: dba
  group_wait: 30s
  group_interval: 5m
  repeat_interval: 1h
  routes:
  - matchers: [team="ops"]
    receiver: ops
  - matchers: [team="payments"]
    receiver: payments
receivers:
- name: payments
  webhook_configs:
  - url: `+payments.srv.URL+`
- name: dba
  webhook_configs:
  - url: `+dba.srv.URL+`
- name: ops
  webhook_configs:
  - url: `+ops.srv.URL+`
`), 0o600)
		}
		h, proc = start()
	}
	if c.restart {
		restartNow()
	}
	// The root cause moves to the database: the incident is dba's now.
	at(time.Minute)
	h.Send(incidentOn(t, "inc", "payments-db", "dba", event.SeverityCritical, event.IncidentUpdated, t0.Add(time.Minute)))
	tick(2 * time.Minute)
	if c.restartChanged {
		// payments is sent the change at its group_interval: what went
		// out last to it is an event its route no longer matches.
		tick(7 * time.Minute)
		if got := statuses(payments); len(got) != 2 {
			t.Fatalf("payments got %v by its group_interval, want the opening and the change", got)
		}
		restartNow()
	}
	at(10 * time.Minute)
	// Sent, not fed: with a state store its ack waits for the tombstone.
	h.Send(incidentOn(t, "inc", "payments-db", "dba", event.SeverityCritical, event.IncidentResolved, t0.Add(10*time.Minute)))
	tick(11 * time.Minute)
	if got := statuses(dba); len(got) == 0 || got[len(got)-1] != "resolved" {
		t.Fatalf("dba got %v, want its notifications to end with the resolve", got)
	}
	if c.moved {
		tick(3 * time.Hour)
		if got := statuses(ops); len(got) != 0 {
			t.Fatalf("ops, in the place of the route that was paged, got %v", got)
		}
		return
	}
	if got := statuses(payments); len(got) == 0 || got[len(got)-1] != "resolved" {
		t.Fatalf("payments, paged for the incident, got %v: it never heard of the resolve", got)
	}
	n := len(statuses(payments))
	tick(3 * time.Hour)
	if got := statuses(payments); len(got) != n {
		t.Fatalf("payments got %v: repeated after the incident resolved", got)
	}
}
