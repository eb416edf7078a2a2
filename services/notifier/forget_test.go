package notifier

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/pkg/stage"
	"github.com/aiops-dev/aiops/pkg/stage/stagetest"
)

// An event that changes no label still gets its Seen to the bucket (at
// least every eighth of max_age), also when no send of it is recorded
// (the 64 MiB bound of kept events reached, or an event past 512 KiB): the
// notifier after a restart does not forget an incident with recent events.
func TestSeenOfAnEventWithoutLabelChangeIsKept(t *testing.T) {
	old := maxAllKeptEvents
	maxAllKeptEvents = 0 // the bound is reached (a storm of open incidents)
	t.Cleanup(func() { maxAllKeptEvents = old })
	pd, _ := pdDown(t)
	store := &memOpen{kept: map[string]openIncident{}}
	rig := newPDRestartRig(t, pd.srv.URL, store, nil)
	h, proc, tick := rig.start()
	rig.at(0)
	h.Send(incidentAt(t, "db", "payments-db", "dba", event.SeverityCritical, event.IncidentOpened, t0, t0))
	tick(31 * time.Second)
	if err := proc.saveOpen(context.Background()); err != nil {
		t.Fatal(err)
	}
	rig.at(100 * time.Hour)
	h.Send(incidentAt(t, "db", "payments-db", "dba", event.SeverityCritical, event.IncidentUpdated, t0, t0.Add(time.Minute)))
	tick(100*time.Hour + 6*time.Minute)
	if err := proc.saveOpen(context.Background()); err != nil {
		t.Fatal(err)
	}
	proc.mu.Lock()
	mem := proc.open["db"].Seen
	proc.mu.Unlock()
	h.Stop()
	store.mu.Lock()
	kept := store.kept["db"].Seen
	store.mu.Unlock()
	if !kept.Equal(mem) {
		t.Fatalf("Seen %v after base in the bucket, %v in memory", kept.Sub(rig.base), mem.Sub(rig.base))
	}

	_, proc, tick = rig.start()
	tick(169 * time.Hour) // 69 h after db's last event
	proc.saveOpen(context.Background())
	proc.mu.Lock()
	_, open := proc.open["db"]
	proc.mu.Unlock()
	if !open {
		t.Errorf("db forgotten 69h after its last event (max_age 168h): the bucket kept the opening's Seen (%v after base)", kept.Sub(rig.base))
	}
}

// A resolve waiting for its tombstone whose incident left the resolved
// ones' memory (maxResolved, past 10,000 resolves while the bucket was
// down; shrunk to 1 here) is naked once the bucket is back, rather than
// waiting for ever: its redelivery is tracked again and its tombstone
// written.
func TestResolveWaitOfAForgottenTombstoneComesAgain(t *testing.T) {
	store := &memOpen{kept: map[string]openIncident{}}
	hook := newReceiver(t)
	h, proc, at, tick := timedRigWith(t, hook, nil, store)
	proc.mu.Lock()
	proc.resolved, _ = lru.New[string, ended](1)
	proc.mu.Unlock()
	h.Send(incidentOn(t, "a", "payments-db", "dba", event.SeverityCritical, event.IncidentOpened, t0))
	tick(31 * time.Second)
	if err := proc.saveOpen(context.Background()); err != nil {
		t.Fatal(err)
	}
	store.mu.Lock()
	store.failing = true
	store.mu.Unlock()
	at(10 * time.Minute)
	resA := h.Send(incidentOn(t, "a", "payments-db", "dba", event.SeverityCritical, event.IncidentResolved, t0.Add(10*time.Minute)))
	waitSent(t, proc)
	proc.saveOpen(context.Background()) // fails: the bucket is down
	h.Send(incidentOn(t, "b", "web", "frontend", event.SeverityCritical, event.IncidentResolved, t0.Add(10*time.Minute)))
	waitSent(t, proc)
	store.mu.Lock()
	store.failing = false
	store.mu.Unlock()
	proc.saveOpen(context.Background())
	if r, settled := resA.Result(); !settled || r.Outcome != stagetest.Naked {
		t.Fatalf("bucket back: a's resolve, its tombstone forgotten, settled %v (%v), want naked (it comes again)", settled, r.Outcome)
	}
	proc.mu.Lock()
	held := proc.tombstoneHeld
	proc.mu.Unlock()
	if held != 0 {
		t.Fatalf("tombstoneHeld %d after every wait was settled", held)
	}
	// its redelivery is tracked again, and its tombstone written
	resA = h.Send(incidentOn(t, "a", "payments-db", "dba", event.SeverityCritical, event.IncidentResolved, t0.Add(10*time.Minute)))
	waitSent(t, proc)
	proc.saveOpen(context.Background())
	store.mu.Lock()
	kept := store.kept["a"]
	store.mu.Unlock()
	if r, settled := resA.Result(); !settled || r.Outcome != stagetest.Acked || !kept.Resolved {
		t.Errorf("a's resolve redelivered: settled %v (%v), its entry resolved %v; want acked, resolved", settled, r.Outcome, kept.Resolved)
	}
}

// An incident forgotten (no event for max_age) while a repeat of it was
// being sent is repeated no more once that send is done.
func TestForgottenIncidentWhoseRepeatWasInFlightRepeatsNoMore(t *testing.T) {
	var block atomic.Bool
	arrived := make(chan struct{}, 100)
	gate := make(chan struct{})
	var mu sync.Mutex
	n := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		mu.Lock()
		n++
		mu.Unlock()
		if block.Load() {
			arrived <- struct{}{}
			<-gate
		}
	}))
	t.Cleanup(srv.Close)
	count := func() int { mu.Lock(); defer mu.Unlock(); return n }
	store := &memOpen{kept: map[string]openIncident{}}
	h, proc, at, tick := timedRigWith(t, &receiver{srv: srv}, nil, store)
	h.Send(incidentOn(t, "db", "payments-db", "dba", event.SeverityCritical, event.IncidentOpened, t0))
	tick(31 * time.Second)
	proc.saveOpen(context.Background())
	maxAge := proc.cfg.State.WithDefaults().MaxAge
	block.Store(true)
	at(maxAge + time.Minute)
	h.Tick(time.Unix(0, proc.now().UnixNano())) // a repeat goes out, its answer held
	select {
	case <-arrived:
	case <-time.After(30 * time.Second):
		t.Fatal("no repeat")
	}
	// the saver's pass meanwhile: db had no event for max_age
	proc.saveOpen(context.Background())
	proc.mu.Lock()
	_, open := proc.open["db"]
	proc.mu.Unlock()
	if open {
		t.Fatal("db not forgotten")
	}
	block.Store(false)
	close(gate)
	waitSent(t, proc)
	before := count()
	for d := maxAge + time.Hour; d <= maxAge+5*time.Hour; d += time.Hour {
		tick(d + 2*time.Minute)
	}
	if got := count() - before; got > 0 {
		t.Errorf("db, forgotten (\"repeats no more\"), repeated %d times in the 5 hours after", got)
	}
}

var _ = fmt.Sprint

// heard_by counts a receiver's integrations by position: when they change
// between two terms (a webhook_config removed beside PagerDuty), the
// record no longer tells who heard, and PagerDuty, never reached, gets a
// trigger before the acknowledge.
func TestHeardByReadOnlyAgainstTheSameIntegrations(t *testing.T) {
	pd, down := pdDown(t)
	hook := newReceiver(t)
	store := &memOpen{kept: map[string]openIncident{}}
	rig := newPDRestartRig(t, pd.srv.URL, store, nil)
	key := filepath.Join(filepath.Dir(rig.routes), "pd.key")
	both := "route: {receiver: pager, group_wait: 30s, group_interval: 5m, repeat_interval: 1h}\nreceivers:\n- name: pager\n  webhook_configs:\n  - url: " + hook.srv.URL + "\n  pagerduty_configs:\n  - routing_key_file: " + key + "\n    url: " + pd.srv.URL + "/v2/enqueue\n"
	os.WriteFile(rig.routes, []byte(both), 0o600)
	opened, acked, _ := lifecycle(t)
	id := opened.Labels["incident_id"]
	h, proc, tick := rig.start()
	rig.giveUpOpening(h, tick, opened, down)
	if err := proc.saveOpen(context.Background()); err != nil {
		t.Fatal(err)
	}
	h.Stop()

	// the webhook removed from the receiver
	os.WriteFile(rig.routes, []byte("route: {receiver: pager, group_wait: 30s, group_interval: 5m, repeat_interval: 1h}\nreceivers:\n- name: pager\n  pagerduty_configs:\n  - routing_key_file: "+key+"\n    url: "+pd.srv.URL+"/v2/enqueue\n"), 0o600)
	down.Store(false)
	before := len(pd.got())
	h, proc, _ = rig.start()
	rig.at(31 * time.Minute)
	feedAcked(t, h, acked)
	waitSent(t, proc)
	if actions, _ := pdActions(t, pd.got()[before:], id); !slices.Equal(actions, []string{"trigger", "acknowledge"}) {
		t.Errorf("PagerDuty, never reached, got %v after the receiver lost its webhook: want trigger, acknowledge", actions)
	}
}

// With notifier.state.disabled an open incident of which no event came
// for max_age is forgotten as with a bucket: over a month of incidents
// whose resolve was lost (a correlator's state lost), the notifier holds
// those of the last max_age, not all of them until MaxOpen, past which
// every new incident would inhibit nothing, nor repeats them for ever.
func TestOpenIncidentsWithoutEventsForMaxAgeAreForgottenWithoutABucket(t *testing.T) {
	routes := filepath.Join(t.TempDir(), "alertmanager.yml")
	if err := os.WriteFile(routes, []byte("route:\n  receiver: none\n  repeat_interval: 1h\nreceivers:\n- name: none\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	proc, err := NewProcessor(Config{Routes: routes}, zerolog.Nop()) // no bucket: state.disabled
	if err != nil {
		t.Fatal(err)
	}
	wall := time.Now()
	var clock atomic.Int64
	proc.now = func() time.Time { return time.Unix(0, clock.Load()) }
	h := stagetest.Start(t, proc, stage.Config{Name: "notifier", TickEvery: time.Hour})
	const perDay = 10
	held := map[int]int{}
	for day := range 30 {
		d := time.Duration(day) * 24 * time.Hour
		clock.Store(wall.Add(d).UnixNano())
		for i := range perDay {
			id := fmt.Sprintf("inc-%d-%d", day, i)
			h.Send(incidentOn(t, id, fmt.Sprintf("svc-%d", i), "dba", event.SeverityCritical, event.IncidentOpened, t0.Add(d)))
		}
		clock.Store(wall.Add(d + time.Hour).UnixNano())
		if err := h.Tick(wall.Add(d + time.Hour)); err != nil {
			t.Fatal(err)
		}
		proc.mu.Lock()
		held[day+1] = len(proc.open)
		proc.mu.Unlock()
	}
	t.Logf("open incidents held: day 7 %d, day 30 %d", held[7], held[30])
	maxAgeDays := int(proc.cfg.State.WithDefaults().MaxAge / (24 * time.Hour))
	if want := (maxAgeDays + 1) * perDay; held[30] > want {
		t.Errorf("open incidents held at day 30: %d, want at most %d (those of the last %d days); day 7: %d", held[30], want, maxAgeDays+1, held[7])
	}
}
