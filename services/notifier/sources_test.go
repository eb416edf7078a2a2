package notifier

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/bus"
	"github.com/aiops-dev/aiops/pkg/event"
)

// inhibitRoutes writes an Alertmanager configuration sending everything at
// once to url, where a team's critical incident inhibits its warnings.
func inhibitRoutes(t *testing.T, url string) string {
	t.Helper()
	routes := filepath.Join(t.TempDir(), "alertmanager.yml")
	yml := "route:\n  receiver: hook\n  group_wait: 0s\nreceivers:\n- name: hook\n  webhook_configs:\n  - url: " + url + "\n" +
		"inhibit_rules:\n- source_matchers: [severity=\"critical\"]\n  target_matchers: [severity=\"warning\"]\n  equal: [team]\n"
	if err := os.WriteFile(routes, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	return routes
}

// A critical incident opened before a restart still inhibits its team's
// warnings after it (the open incidents are kept in the key-value
// bucket); once it resolved, the next warning goes out. With the state
// disabled the restarted notifier pages for the warning, which is what
// every restart did before.
func TestRestartedNotifierStillInhibits(t *testing.T) {
	for _, disabled := range []bool{false, true} {
		t.Run(fmt.Sprintf("state disabled %v", disabled), func(t *testing.T) {
			r := newJSRig(t, zerolog.ErrorLevel)
			hook := newHookLog(t, false)
			cfg := Config{Routes: inhibitRoutes(t, hook.srv.URL), Lease: bus.LeaseConfig{Disabled: true}, State: StateConfig{Disabled: disabled}}
			cfg.Consumer.FetchWait = 50 * time.Millisecond
			// in the past: the notifier's clock takes an event time at most a
			// minute ahead of the wall clock (MaxClockSkew)
			now := time.Now().UTC().Truncate(time.Millisecond).Add(-10 * time.Minute)

			first, stopFirst := r.start(cfg)
			r.publish(incidentAt(t, "db-crit", "payments-db", "dba", event.SeverityCritical, event.IncidentOpened, now, now))
			eventually(t, func() string { return fmt.Sprintf("heard %v", hook.heard()) }, func() bool {
				return len(hook.heard()) == 1 && first.ConsumerStats().Acked == 1
			})
			stopFirst()

			second, stopSecond := r.start(cfg)
			defer stopSecond()
			r.publish(
				incidentAt(t, "db-warn", "replica", "dba", event.SeverityWarning, event.IncidentOpened, now.Add(time.Minute), now.Add(time.Minute)),
				incidentAt(t, "web-warn", "web", "storefront", event.SeverityWarning, event.IncidentOpened, now.Add(time.Minute), now.Add(time.Minute)),
			)
			eventually(t, func() string { return fmt.Sprintf("consumer %+v", second.ConsumerStats()) }, func() bool {
				return second.ConsumerStats().Acked == 2
			})
			waitSent(t, second.proc)
			if disabled {
				if got := hook.statuses("db-warn"); len(got) != 1 {
					t.Errorf("db-warn with the state disabled: heard %v, want it paged (the restart forgot db-crit)", got)
				}
				return
			}
			if got := hook.statuses("db-warn"); len(got) != 0 {
				t.Errorf("db-warn: heard %v after the restart, want it inhibited by db-crit", got)
			}
			if got := hook.statuses("web-warn"); len(got) != 1 {
				t.Errorf("web-warn, another team's: heard %v, want its opening", got)
			}
			r.publish(
				incidentAt(t, "db-crit", "payments-db", "dba", event.SeverityCritical, event.IncidentResolved, now, now.Add(2*time.Minute)),
				incidentAt(t, "db-warn-2", "replica", "dba", event.SeverityWarning, event.IncidentOpened, now.Add(3*time.Minute), now.Add(3*time.Minute)),
			)
			eventually(t, func() string { return fmt.Sprintf("heard %v, consumer %+v", hook.heard(), second.ConsumerStats()) }, func() bool {
				return len(hook.statuses("db-warn-2")) == 1
			})
			if got := hook.statuses("db-crit"); len(got) != 2 || got[1] != "resolved" {
				t.Errorf("db-crit: heard %v, want its opening and its resolve", got)
			}
		})
	}
}

// memOpen is an OpenStore in memory that fails while failing is set.
// startSaver runs proc's saver (the service runs it beside the stage) until
// the returned stop, or the test's end: a resolve's event is settled once
// its tombstone is written.
func startSaver(t *testing.T, proc *Processor) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { proc.saveLoop(ctx); close(done) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return stop
}

type memOpen struct {
	mu      sync.Mutex
	kept    map[string]openIncident
	failing bool
	writes  int
}

func (m *memOpen) Put(_ context.Context, inc openIncident) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failing {
		return errors.New("fake: bucket down")
	}
	m.writes++
	m.kept[inc.ID] = inc
	return nil
}

func (m *memOpen) All(context.Context) ([]openIncident, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []openIncident
	for _, inc := range m.kept {
		out = append(out, inc)
	}
	return out, nil
}

func (m *memOpen) List(ctx context.Context) ([]openIncident, error) { return m.All(ctx) }

// What is kept of an open incident changes with its labels and its
// resolve, not with every event, and never back to an older revision; a
// write that failed is made again by the next checkpoint.
func TestOpenIncidentsKept(t *testing.T) {
	store := &memOpen{kept: map[string]openIncident{}}
	proc, err := NewProcessor(Config{Routes: inhibitRoutes(t, "http://127.0.0.1:1")}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	proc.WithOpenStore(store)
	ctx := context.Background()
	track := func(id string, labels map[string]string, resolved bool, rev int) {
		t.Helper()
		proc.mu.Lock()
		if proc.trackOpen(id, "", labels, resolved, stamp{rev, t0}, shownAs{}) {
			proc.changed(id)
		}
		proc.mu.Unlock()
		if err := proc.saveOpen(ctx); err != nil && !store.failing {
			t.Fatal(err)
		}
	}
	crit := map[string]string{"severity": "critical", "team": "dba"}
	track("a", crit, false, 1)
	track("a", crit, false, 2) // same labels: nothing to write
	if store.writes != 1 || store.kept["a"].Revision != 1 {
		t.Fatalf("%d writes, kept %+v; want one write for the opening", store.writes, store.kept["a"])
	}
	track("a", map[string]string{"severity": "warning", "team": "dba"}, false, 1) // older: ignored
	if got := proc.open["a"].Labels["severity"]; got != "critical" {
		t.Errorf("an older revision changed the labels to severity %q", got)
	}
	if !proc.inhibited("b", map[string]string{"severity": "warning", "team": "dba"}) {
		t.Error("the open critical incident does not inhibit its team's warning")
	}
	store.failing = true
	track("a", nil, true, 3)
	if store.kept["a"].Resolved {
		t.Fatal("the resolve was written while the bucket was down")
	}
	store.failing = false
	if err := proc.saveOpen(ctx); err != nil {
		t.Fatal(err)
	}
	if kept := store.kept["a"]; !kept.Resolved || proc.inhibited("b", map[string]string{"severity": "warning", "team": "dba"}) {
		t.Error("the resolved incident is not kept as resolved, or still inhibits, after the retry")
	}
	// its opening, come again, does not bring it back
	track("a", crit, false, 1)
	if _, ok := proc.open["a"]; ok || store.kept["a"].Resolved != true {
		t.Error("an older state of the resolved incident brought it back")
	}
	// a reopening (a later revision) does
	track("a", crit, false, 4)
	if _, ok := proc.open["a"]; !ok || store.kept["a"].Resolved {
		t.Error("the reopened incident is not kept open")
	}
	track("a", nil, true, 5)

	// a producer whose revisions are all 0: ordered by event time
	proc.mu.Lock()
	proc.trackOpen("z", "", crit, false, stamp{0, t0}, shownAs{})
	proc.trackOpen("z", "", nil, true, stamp{0, t0.Add(time.Minute)}, shownAs{})
	back := proc.trackOpen("z", "", crit, false, stamp{0, t0}, shownAs{}) // the opening, come again
	proc.mu.Unlock()
	if back {
		t.Error("a revision-0 incident's opening, come again after its resolve, brought it back")
	}
	// the resolve of an incident never seen open is kept as resolved, so
	// that its opening, come later (after a restart), does not open it
	track("y", nil, true, 2)
	if !store.kept["y"].Resolved {
		t.Error("the resolve of an incident not seen open left no tombstone")
	}

	// a new processor restores what was kept
	track("c", crit, false, 1)
	again, err := NewProcessor(Config{Routes: inhibitRoutes(t, "http://127.0.0.1:1")}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	again.WithOpenStore(store)
	// what it knew before the term (another holder resolved it since) is
	// forgotten
	again.mu.Lock()
	again.trackOpen("stale", "", crit, false, stamp{1, t0}, shownAs{})
	again.mu.Unlock()
	if err := again.restoreOpen(ctx); err != nil {
		t.Fatal(err)
	}
	if !again.inhibited("d", map[string]string{"severity": "warning", "team": "dba"}) {
		t.Error("the restored processor does not know the open critical incident")
	}
	if _, ok := again.open["stale"]; ok {
		t.Error("an incident known before the term, not in the store, survived the restore")
	}
	again.mu.Lock()
	if again.trackOpen("a", "", crit, false, stamp{2, t0}, shownAs{}) {
		t.Error("after the restore, an older state of the resolved incident a brought it back")
	}
	again.mu.Unlock()
	// the first tick writes the restored open incidents again, so that
	// their entries do not expire (max_age)
	before := store.writes
	if err := again.saveOpen(ctx); err != nil || store.writes != before+1 {
		t.Errorf("the saver's first pass: %v, wrote %d entries, want the one open incident restored", err, store.writes-before)
	}
	if err := again.saveOpen(ctx); err != nil || store.writes != before+1 {
		t.Error("a second pass wrote again what was just written")
	}
	// fenced (the lease lost), nothing is written
	again.fenced.Store(true)
	writes := store.writes
	again.mu.Lock()
	again.trackOpen("e", "", crit, false, stamp{1, t0}, shownAs{})
	again.changed("e")
	again.mu.Unlock()
	if err := again.saveOpen(ctx); err != nil || store.writes != writes {
		t.Errorf("fenced: %v, %d writes; want none", err, store.writes-writes)
	}
	// the lease ran out by this instance's clock (paused, not renewing):
	// nothing is written either, and once it holds again the rest goes
	again.fenced.Store(false)
	holds := false
	again.holds = func() bool { return holds }
	again.mu.Lock()
	again.changed("e")
	again.mu.Unlock()
	if err := again.saveOpen(ctx); err != nil || store.writes != writes {
		t.Errorf("lease run out: %v, %d writes; want none", err, store.writes-writes)
	}
	holds = true
	again.mu.Lock()
	again.changed("e")
	again.mu.Unlock()
	if err := again.saveOpen(ctx); err != nil || store.writes != writes+1 {
		t.Errorf("holding again: %v, %d writes; want the changed incident", err, store.writes-writes)
	}
	// no routes: nothing to restore, and no panic
	none, err := NewProcessor(Config{}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	none.WithOpenStore(store)
	if err := none.restoreOpen(ctx); err != nil {
		t.Fatal(err)
	}
}
