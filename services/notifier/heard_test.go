package notifier

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/pkg/notify/webhook"
	"github.com/aiops-dev/aiops/pkg/stage"
	"github.com/aiops-dev/aiops/pkg/stage/stagetest"
)

// pdRestartRig runs notifiers (one at a time) routing everything to a
// PagerDuty fake with group_wait 30s, group_interval 5m, repeat_interval
// 1h and max_hold 20m, keeping their state in store, on a fake wall clock
// shared by the notifier and its webhook client.
type pdRestartRig struct {
	t      *testing.T
	routes string
	store  OpenStore
	muter  Muter
	mu     sync.Mutex
	wall   time.Time
	base   time.Time
}

func newPDRestartRig(t *testing.T, url string, store OpenStore, muter Muter) *pdRestartRig {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "pd.key"), []byte("R0UT1NGKEY\n"), 0o600)
	routes := filepath.Join(dir, "alertmanager.yml")
	os.WriteFile(routes, []byte("route: {receiver: pager, group_wait: 30s, group_interval: 5m, repeat_interval: 1h}\nreceivers:\n- name: pager\n  pagerduty_configs:\n  - routing_key_file: "+
		filepath.Join(dir, "pd.key")+"\n    url: "+url+"/v2/enqueue\n"), 0o600)
	now := time.Now()
	return &pdRestartRig{t: t, routes: routes, store: store, muter: muter, wall: now, base: now}
}

func (r *pdRestartRig) now() time.Time { r.mu.Lock(); defer r.mu.Unlock(); return r.wall }

func (r *pdRestartRig) at(d time.Duration) { r.mu.Lock(); r.wall = r.base.Add(d); r.mu.Unlock() }

// start is one notifier's term: restored from the store.
func (r *pdRestartRig) start() (*stagetest.Harness, *Processor, func(time.Duration)) {
	t := r.t
	cfg := Config{Routes: r.routes}
	cfg.Delivery.Retry.MaxAttempts = 1
	cfg.Delivery.MaxHold = 20 * time.Minute
	noSleep := func(ctx context.Context, d time.Duration) error { return ctx.Err() }
	proc, err := NewProcessor(cfg, zerolog.Nop(), webhook.WithClock(r.now, noSleep))
	if err != nil {
		t.Fatal(err)
	}
	if r.muter != nil {
		proc.WithSilences(r.muter)
	}
	proc.WithOpenStore(r.store)
	if err := proc.restoreOpen(context.Background()); err != nil {
		t.Fatal(err)
	}
	proc.now = r.now
	h := stagetest.Start(t, proc, stage.Config{Name: "notifier", TickEvery: time.Second})
	tick := func(d time.Duration) {
		t.Helper()
		r.at(d)
		if err := h.Tick(r.now()); err != nil {
			t.Fatal(err)
		}
		waitSent(t, proc)
	}
	return h, proc, tick
}

// giveUpOpening sends opened while PagerDuty is down (down) and ticks
// past max_hold: the opening is dead-lettered.
func (r *pdRestartRig) giveUpOpening(h *stagetest.Harness, tick func(time.Duration), opened *event.Envelope, down *atomic.Bool) {
	r.t.Helper()
	down.Store(true)
	r.at(0)
	held := h.Send(opened)
	for d := 31 * time.Second; d <= 30*time.Minute; d += time.Minute {
		tick(d)
	}
	if res, ok := held.Result(); !ok || res.Outcome != stagetest.DeadLettered {
		r.t.Fatalf("the opening: %v %+v, want dead-lettered past max_hold", ok, res)
	}
}

func pdDown(t *testing.T) (*fakeAPI, *atomic.Bool) {
	down := new(atomic.Bool)
	pd := newFakeAPI(t, func(c call) answer {
		if down.Load() {
			return answer{code: 503}
		}
		return answer{code: 202, body: `{"status":"success"}`}
	})
	return pd, down
}

// An incident opened and acknowledged under a silence; the silence ends
// while PagerDuty is down: the first page (a repeat of the muted
// acknowledged state) is held, and given up past max_hold. Recorded as
// sent, it reached nobody, which the record keeps: after a restart the
// next repeat triggers before it acknowledges (PagerDuty ignores an
// acknowledge of an alert it never had).
func TestGivenUpFirstPageIsNotHeardAfterARestart(t *testing.T) {
	pd, down := pdDown(t)
	muter := &switchMuter{}
	store := &memOpen{kept: map[string]openIncident{}}
	rig := newPDRestartRig(t, pd.srv.URL, store, muter)
	opened, acked, _ := lifecycle(t)
	id := opened.Labels["incident_id"]

	h, proc, tick := rig.start()
	muter.set("payments-db")
	rig.at(0)
	h.Send(opened)
	tick(31 * time.Second) // muted at group_wait
	rig.at(time.Minute)
	feedAcked(t, h, acked) // muted too
	if len(pd.got()) != 0 {
		t.Fatalf("sent while silenced: %d", len(pd.got()))
	}
	muter.set("")
	down.Store(true)
	for d := 6*time.Minute + 30*time.Second; d <= 40*time.Minute; d += time.Minute {
		tick(d)
	}
	if len(pd.got()) == 0 {
		t.Fatal("the first page after the silence was never tried")
	}
	proc.mu.Lock()
	sl := proc.schedule.slots[slotKey(id, proc.routes.Route.Path)]
	heardInMemory := sl.heardBy
	proc.mu.Unlock()
	if err := proc.saveOpen(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := h.Stop(); err != nil {
		t.Fatal(err)
	}
	if heardInMemory != 0 {
		t.Fatalf("heard by %b before the restart, want nobody", heardInMemory)
	}

	down.Store(false)
	before := len(pd.got())
	_, _, tick = rig.start()
	tick(3 * time.Hour) // the next repeat is due
	actions, _ := pdActions(t, pd.got()[before:], id)
	if !slices.Contains(actions, "trigger") {
		t.Errorf("after the restart PagerDuty got %v for an incident it never had: want a trigger (it ignores an acknowledge of an alert it never had)", actions)
	}
}

// The same without a silence: the opening is given up past max_hold
// (dead-lettered). The acknowledgement then triggers before it
// acknowledges, with a restart between or without.
func TestAcknowledgeTriggersWhatNeverReachedPagerDuty(t *testing.T) {
	for _, restart := range []bool{false, true} {
		pd, down := pdDown(t)
		store := &memOpen{kept: map[string]openIncident{}}
		rig := newPDRestartRig(t, pd.srv.URL, store, nil)
		opened, acked, _ := lifecycle(t)
		id := opened.Labels["incident_id"]

		h, proc, tick := rig.start()
		rig.giveUpOpening(h, tick, opened, down)
		if restart {
			if err := proc.saveOpen(context.Background()); err != nil {
				t.Fatal(err)
			}
			if err := h.Stop(); err != nil {
				t.Fatal(err)
			}
			h, proc, _ = rig.start()
		}
		down.Store(false)
		before := len(pd.got())
		rig.at(31 * time.Minute)
		feedAcked(t, h, acked)
		waitSent(t, proc)
		if actions, _ := pdActions(t, pd.got()[before:], id); !slices.Equal(actions, []string{"trigger", "acknowledge"}) {
			t.Errorf("restart %v: PagerDuty got %v for an incident it never had: want trigger, acknowledge", restart, actions)
		}
	}
}

// End to end with the real state bucket and `aiops notify replay`: the
// opening dead-lettered past max_hold, a restart, the acknowledgement,
// then a replay of the dead letter once PagerDuty is back (it finds a
// newer open state in the bucket and drops the opening as outdated):
// PagerDuty got a trigger, with the acknowledgement.
func TestPagerDutyTriggeredAcrossARestartAndAReplay(t *testing.T) {
	r := newJSRig(t, zerolog.ErrorLevel)
	kv := r.stateBucket()
	pd, down := pdDown(t)
	rig := newPDRestartRig(t, pd.srv.URL, kv, nil)
	opened, acked, _ := lifecycle(t)
	id := opened.Labels["incident_id"]

	h, proc, tick := rig.start()
	rig.giveUpOpening(h, tick, opened, down)
	subject := proc.cfg.DeadLetterSubject()
	deadLetter(t, r.js, subject, opened) // as the consumer does with a permanent error
	if err := proc.saveOpen(context.Background()); err != nil {
		t.Fatal(err)
	}
	h.Stop()

	down.Store(false)
	before := len(pd.got())
	h, proc, _ = rig.start()
	rig.at(31 * time.Minute)
	feedAcked(t, h, acked)
	waitSent(t, proc)
	if err := proc.saveOpen(context.Background()); err != nil {
		t.Fatal(err)
	}
	var listed []DeadLetter
	if _, _, err := Replay(context.Background(), r.js, proc, subject, false, func(dl DeadLetter) { listed = append(listed, dl) }); err != nil {
		t.Fatal(err)
	}
	accepted, _ := pdActions(t, pd.got()[before:], id)
	if n := deadLetters(t, r.js, subject); n != 0 || !slices.Contains(accepted, "trigger") {
		t.Errorf("PagerDuty took %v once back, %d dead letters left: it never got a trigger for an incident open and acknowledged in aiops", accepted, n)
	}
}

// An incident silenced from its opening: after a restart its resolve,
// still silenced, does not go out, since the state bucket says nothing
// reached the receiver.
func TestSilencedIncidentsResolveStaysMutedAfterARestart(t *testing.T) {
	hook := newReceiver(t)
	muter := &switchMuter{}
	store := &memOpen{kept: map[string]openIncident{}}
	muter.set("payments-db")
	h, proc, _, tick := timedRigWith(t, hook, muter, store)
	h.Send(incidentOn(t, "db", "payments-db", "dba", event.SeverityCritical, event.IncidentOpened, t0))
	tick(31 * time.Second)
	if err := proc.saveOpen(context.Background()); err != nil {
		t.Fatal(err)
	}
	h.Stop()
	if k := store.kept["db"]; len(k.Sent) != 1 || !k.Sent[0].Muted {
		t.Fatalf("kept %+v, want the muted opening", k.Sent)
	}
	h, proc, at, _ := timedRigWith(t, hook, muter, store)
	startSaver(t, proc)
	at(10 * time.Minute)
	h.Feed(incidentOn(t, "db", "payments-db", "dba", event.SeverityCritical, event.IncidentResolved, t0.Add(10*time.Minute)))
	waitSent(t, proc)
	if got, _ := hook.requests(); len(got) != 0 {
		t.Errorf("%d notifications of an incident silenced all its life (the state bucket says muted): want none", len(got))
	}
}

// The first page after a mute is held when it fails
// (TestFirstPageAfterAMuteIsHeldWhenItFails), after a restart too: the
// restored slot knows nothing reached the receiver, and does not skip the
// page until repeat_interval (4h).
func TestFirstPageAfterAMuteIsHeldAfterARestart(t *testing.T) {
	hook := newReceiver(t)
	muter := &switchMuter{}
	store := &memOpen{kept: map[string]openIncident{}}
	routes := filepath.Join(t.TempDir(), "alertmanager.yml")
	os.WriteFile(routes, []byte("route:\n  receiver: hook\n  group_wait: 30s\n  group_interval: 5m\n  repeat_interval: 4h\nreceivers:\n- name: hook\n  webhook_configs:\n  - url: "+hook.srv.URL+"\n"), 0o600)
	wall := time.Now()
	var fake atomic.Int64
	at := func(d time.Duration) { fake.Store(wall.Add(d).UnixNano()) }
	start := func() (*stagetest.Harness, *Processor, func(time.Duration)) {
		cfg := Config{Routes: routes}
		cfg.Delivery.Retry.MaxAttempts = 1
		proc, err := NewProcessor(cfg, zerolog.Nop())
		if err != nil {
			t.Fatal(err)
		}
		proc.WithSilences(muter)
		proc.WithOpenStore(store)
		if err := proc.restoreOpen(context.Background()); err != nil {
			t.Fatal(err)
		}
		proc.now = func() time.Time { return time.Unix(0, fake.Load()) }
		h := stagetest.Start(t, proc, stage.Config{Name: "notifier", TickEvery: time.Second})
		return h, proc, func(d time.Duration) {
			t.Helper()
			at(d)
			if err := h.Tick(wall.Add(d)); err != nil {
				t.Fatal(err)
			}
			waitSent(t, proc)
		}
	}
	at(0)
	h, proc, tick := start()
	h.Send(incidentAt(t, "api", "api", "team", event.SeverityCritical, event.IncidentOpened, t0, t0))
	muter.set("api")
	tick(31 * time.Second) // muted when due
	proc.saveOpen(context.Background())
	h.Stop()

	h, _, tick = start()
	// another incident's event sets the restarted notifier's clock
	at(2 * time.Minute)
	h.Send(incidentAt(t, "web", "web", "frontend", event.SeverityCritical, event.IncidentOpened, t0.Add(2*time.Minute), t0.Add(2*time.Minute)))
	muter.set("")
	hook.mu.Lock()
	hook.script = []int{503, 503} // web's page and api's fail once
	hook.mu.Unlock()
	for d := 5*time.Minute + 32*time.Second; d <= 25*time.Minute; d += 30 * time.Second {
		tick(d)
	}
	n := 0
	_, bodies := hook.requests()
	for _, b := range bodies {
		if strings.Contains(string(b), `"incident_id":"api"`) {
			n++
		}
	}
	if n != 2 {
		t.Errorf("%d requests for api within 20 minutes of its first page failing, after a restart: want it held and tried again (2), as without a restart", n)
	}
}

// An open incident of which no notifier took an event for max_age (its
// resolve lost, or its correlator's state) is written no more, so that
// its entry expires, across a restart too; within max_age of its last
// event it is written again before it would.
func TestOpenIncidentWithoutEventsIsWrittenNoMore(t *testing.T) {
	store := &memOpen{kept: map[string]openIncident{}}
	hook := newReceiver(t)
	h, proc, _, tick := timedRigWith(t, hook, nil, store)
	h.Send(incidentOn(t, "db", "payments-db", "dba", event.SeverityCritical, event.IncidentOpened, t0))
	tick(31 * time.Second)
	if err := proc.saveOpen(context.Background()); err != nil {
		t.Fatal(err)
	}
	maxAge := proc.cfg.State.WithDefaults().MaxAge
	writes := func() int { store.mu.Lock(); defer store.mu.Unlock(); return store.writes }
	w0 := writes()
	tick(maxAge - time.Minute) // its entry would expire within a minute
	proc.saveOpen(context.Background())
	if writes() != w0+1 {
		t.Fatalf("%d writes within max_age of its event, want 1 (a refresh)", writes()-w0)
	}
	tick(2 * (maxAge - time.Minute))
	proc.saveOpen(context.Background())
	h.Stop()
	_, proc, _, tick = timedRigWith(t, hook, nil, store)
	tick(3 * (maxAge - time.Minute))
	proc.saveOpen(context.Background())
	if writes() != w0+1 {
		t.Errorf("db, without any event for %v (state.max_age %v), was written %d more times (a restart between): its entry never expires", 3*(maxAge-time.Minute), maxAge, writes()-w0-1)
	}
}

// A resolve's event is settled only once its tombstone is written: with
// the bucket down, its notification goes out but the event stays unacked;
// a crash then gives it to the next notifier, which writes the tombstone.
// Acked before, the next notifier would restore the incident open and
// page it after its resolve, every repeat_interval.
func TestResolveSettledOnceItsTombstoneIsWritten(t *testing.T) {
	store := &memOpen{kept: map[string]openIncident{}}
	hook := newReceiver(t)
	h, proc, at, tick := timedRigWith(t, hook, nil, store)
	stop := startSaver(t, proc)
	h.Send(incidentOn(t, "db", "payments-db", "dba", event.SeverityCritical, event.IncidentOpened, t0))
	tick(31 * time.Second)
	if err := proc.saveOpen(context.Background()); err != nil {
		t.Fatal(err)
	}
	store.mu.Lock()
	store.failing = true // the bucket is down
	store.mu.Unlock()
	at(10 * time.Minute)
	resolve := incidentOn(t, "db", "payments-db", "dba", event.SeverityCritical, event.IncidentResolved, t0.Add(10*time.Minute))
	res := h.Send(resolve)
	waitSent(t, proc)
	if got, _ := hook.requests(); len(got) != 2 {
		t.Fatalf("%d notifications, want the opening and the resolve (a bucket down holds back no delivery)", len(got))
	}
	if r, ok := res.Result(); ok {
		t.Fatalf("the resolve's event settled (%v) before its tombstone was written", r.Outcome)
	}
	// a crash: the event goes back to the stream
	h.Stop()
	stop()
	if r := resultOf(t, res); r.Outcome == stagetest.Acked {
		t.Fatalf("the resolve's event acked at the stop, its tombstone not written")
	}
	store.mu.Lock()
	store.failing = false
	store.mu.Unlock()

	h, proc, at, tick = timedRigWith(t, hook, nil, store)
	startSaver(t, proc)
	at(11 * time.Minute)
	if r := h.Feed(resolve)[0]; r.Outcome != stagetest.Acked {
		t.Fatalf("the resolve redelivered: %v %v", r.Outcome, r.Err)
	}
	at(2 * time.Hour)
	h.Send(incidentAt(t, "web", "web", "frontend", event.SeverityCritical, event.IncidentOpened, t0.Add(2*time.Hour), t0.Add(2*time.Hour)))
	tick(3 * time.Hour)
	_, bodies := hook.requests()
	resolved := false
	for _, b := range bodies {
		if !strings.Contains(string(b), `"incident_id":"db"`) {
			continue
		}
		firing := !strings.Contains(string(b), `"status":"resolved"`)
		if resolved && firing {
			t.Fatalf("db paged firing after its resolve")
		}
		resolved = resolved || !firing
	}
	if !resolved {
		t.Fatal("db's resolve never went out")
	}
}

// What reached a receiver is known per integration: a receiver with a
// webhook and PagerDuty, the webhook taking the opening and PagerDuty
// down; the acknowledgement that replaces the held opening triggers
// PagerDuty before it acknowledges.
func TestPagerDutyTriggeredWhenASiblingIntegrationTookTheOpening(t *testing.T) {
	hook := newReceiver(t)
	pd, down := pdDown(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "pd.key"), []byte("R0UT1NGKEY\n"), 0o600)
	routes := filepath.Join(dir, "alertmanager.yml")
	os.WriteFile(routes, []byte("route: {receiver: pager, group_wait: 0s}\nreceivers:\n- name: pager\n  webhook_configs:\n  - url: "+hook.srv.URL+"\n  pagerduty_configs:\n  - routing_key_file: "+
		filepath.Join(dir, "pd.key")+"\n    url: "+pd.srv.URL+"/v2/enqueue\n"), 0o600)
	var mu sync.Mutex
	wall := time.Now()
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return wall }
	noSleep := func(ctx context.Context, d time.Duration) error { return ctx.Err() }
	cfg := Config{Routes: routes}
	cfg.Delivery.Retry.MaxAttempts = 1
	proc, err := NewProcessor(cfg, zerolog.Nop(), webhook.WithClock(now, noSleep))
	if err != nil {
		t.Fatal(err)
	}
	proc.now = now
	h := stagetest.Start(t, proc, stage.Config{Name: "notifier", TickEvery: time.Second})
	opened, acked, _ := lifecycle(t)
	id := opened.Labels["incident_id"]
	down.Store(true)
	sendHeld(t, h, proc, opened) // webhook 200, PagerDuty 503: held
	held := h.Send(acked)        // replaces the held opening
	down.Store(false)
	before := len(pd.got())
	mu.Lock()
	wall = wall.Add(2 * time.Hour)
	mu.Unlock()
	h.Tick(now())
	waitSent(t, proc)
	if r := resultOf(t, held); r.Outcome != stagetest.Acked {
		t.Fatalf("ack: %v %v", r.Outcome, r.Err)
	}
	accepted, _ := pdActions(t, pd.got()[before:], id)
	if !slices.Contains(accepted, "trigger") {
		t.Errorf("PagerDuty (never reached before) took %v: want a trigger before the acknowledge", accepted)
	}
}
