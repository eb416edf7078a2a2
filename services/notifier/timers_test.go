package notifier

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/correlate"
	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/pkg/stage"
	"github.com/aiops-dev/aiops/pkg/stage/stagetest"
)

// timedRig is a notifier routing everything to hook with group_wait 30s,
// group_interval 5m and repeat_interval 1h, on the stage runtime, whose
// clock is the test's: at(d) makes wall+d now (events of time t0+d arrive
// then), tick(d) ticks at wall+d and waits for the sends. muter, if not
// nil, silences.
func timedRig(t *testing.T, hook *receiver, muter Muter) (h *stagetest.Harness, proc *Processor, at, tick func(time.Duration)) {
	t.Helper()
	return timedRigWith(t, hook, muter, nil)
}

// timedRigWith is timedRig keeping the open incidents in store (if not
// nil), restored before the runner starts.
func timedRigWith(t *testing.T, hook *receiver, muter Muter, store OpenStore) (h *stagetest.Harness, proc *Processor, at, tick func(time.Duration)) {
	t.Helper()
	return timedRigTo(t, "webhook_configs: [{url: '"+hook.srv.URL+"'}]", muter, store)
}

// timedRigTo is timedRigWith sending through integration, the receiver's
// YAML (webhook_configs: [{url: ...}]).
func timedRigTo(t *testing.T, integration string, muter Muter, store OpenStore) (h *stagetest.Harness, proc *Processor, at, tick func(time.Duration)) {
	t.Helper()
	routes := filepath.Join(t.TempDir(), "alertmanager.yml")
	os.WriteFile(routes, []byte(`route:
  receiver: hook
  group_wait: 30s
  group_interval: 5m
  repeat_interval: 1h
receivers:
- name: hook
  `+integration+`
`), 0o600)
	proc, err := NewProcessor(Config{Routes: routes}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if muter != nil {
		proc.WithSilences(muter)
	}
	if store != nil {
		proc.WithOpenStore(store)
		if err := proc.restoreOpen(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	wall := time.Now()
	var fake atomic.Int64
	proc.now = func() time.Time { return time.Unix(0, fake.Load()) }
	at = func(d time.Duration) { fake.Store(wall.Add(d).UnixNano()) }
	at(0)
	h = stagetest.Start(t, proc, stage.Config{Name: "notifier", TickEvery: time.Second})
	tick = func(d time.Duration) {
		t.Helper()
		at(d)
		if err := h.Tick(wall.Add(d)); err != nil {
			t.Fatal(err)
		}
		waitSent(t, proc)
	}
	return h, proc, at, tick
}

// The grouping timers on the stage runtime, in event time: an incident
// event is held (not acked) until its notification went out; group_wait
// delays the first notification and a flap shorter than it is never
// notified; group_interval batches updates; an acknowledgement goes out at
// once; repeat_interval notifies an unchanged open incident again; a
// stopping notifier hands back what it held.
func TestGroupTimers(t *testing.T) {
	hook := newReceiver(t)
	h, _, at, tick := timedRig(t, hook, nil)
	sent := func() int { got, _ := hook.requests(); return len(got) }
	settled := func(p *stagetest.Held) stagetest.Outcome {
		t.Helper()
		r, ok := p.Result()
		if !ok {
			return -1
		}
		return r.Outcome
	}

	opened := h.Send(incidentOn(t, "db", "payments-db", "dba", event.SeverityCritical, event.IncidentOpened, t0))
	if settled(opened) != -1 || sent() != 0 {
		t.Fatalf("the opening was settled or sent before group_wait")
	}
	tick(29 * time.Second)
	if sent() != 0 {
		t.Fatal("sent before group_wait")
	}
	tick(31 * time.Second)
	if sent() != 1 || settled(opened) != stagetest.Acked {
		t.Fatalf("after group_wait: %d sent, opening %v; want it sent and acked", sent(), settled(opened))
	}

	// Two updates within the interval: held, then the latest goes out.
	at(time.Minute)
	up1 := h.Send(incidentOn(t, "db", "payments-db", "dba", event.SeverityCritical, event.IncidentUpdated, t0.Add(time.Minute)))
	at(2 * time.Minute)
	up2 := h.Send(incidentOn(t, "db", "payments-db", "dba", event.SeverityCritical, event.IncidentUpdated, t0.Add(2*time.Minute)))
	tick(5 * time.Minute)
	if sent() != 1 || settled(up1) != -1 {
		t.Fatalf("updates went out within group_interval: %d sent", sent())
	}
	tick(5*time.Minute + 31*time.Second)
	if sent() != 2 || settled(up1) != stagetest.Acked || settled(up2) != stagetest.Acked {
		t.Fatalf("at group_interval: %d sent (want the two updates as one), %v %v", sent(), settled(up1), settled(up2))
	}

	// An acknowledgement goes out at once.
	at(6 * time.Minute)
	if r := h.Feed(incidentOn(t, "db", "payments-db", "dba", event.SeverityCritical, event.IncidentAcknowledged, t0.Add(6*time.Minute)))[0]; r.Outcome != stagetest.Acked || sent() != 3 {
		t.Fatalf("acknowledgement: %v, %d sent; want it at once", r.Outcome, sent())
	}
	// Unchanged for repeat_interval: notified again.
	tick(time.Hour + 5*time.Minute)
	if sent() != 3 {
		t.Fatalf("repeated early: %d sent", sent())
	}
	tick(time.Hour + 6*time.Minute + time.Second)
	if sent() != 4 {
		t.Fatalf("no repeat after repeat_interval: %d sent", sent())
	}

	// The resolve goes out at once, and ends the repeats.
	at(time.Hour + 10*time.Minute)
	if r := h.Feed(incidentOn(t, "db", "payments-db", "dba", event.SeverityCritical, event.IncidentResolved, t0.Add(time.Hour+10*time.Minute)))[0]; r.Outcome != stagetest.Acked || sent() != 5 {
		t.Fatalf("resolve: %v, %d sent; want it at once", r.Outcome, sent())
	}

	// A flap: opened and resolved within group_wait is never notified,
	// and both events are acked.
	at(2 * time.Hour)
	flapAt := t0.Add(2 * time.Hour)
	flapOpen := h.Send(incidentAt(t, "web", "web", "storefront", event.SeverityWarning, event.IncidentOpened, flapAt, flapAt))
	at(2*time.Hour + 20*time.Second)
	if r := h.Feed(incidentAt(t, "web", "web", "storefront", event.SeverityWarning, event.IncidentResolved, flapAt, flapAt.Add(20*time.Second)))[0]; r.Outcome != stagetest.Acked {
		t.Fatalf("the flap's resolve: %v", r.Outcome)
	}
	tick(3 * time.Hour)
	if sent() != 5 || settled(flapOpen) != stagetest.Acked {
		t.Fatalf("the flap: %d sent, opening %v; want nothing sent, both acked", sent(), settled(flapOpen))
	}

	// Stopping hands back what waits: the event is redelivered later.
	at(4 * time.Hour)
	waiting := h.Send(incidentAt(t, "api", "api", "core", event.SeverityCritical, event.IncidentOpened, t0.Add(4*time.Hour), t0.Add(4*time.Hour)))
	h.Stop()
	r, ok := waiting.Result()
	if !ok || r.Outcome != stagetest.Naked || !errors.Is(r.Err, ErrStopping) {
		t.Fatalf("held at the stop: %v %v %v, want naked with ErrStopping", ok, r.Outcome, r.Err)
	}
}

// Unset, ack_wait is a minute whatever the timers: a route's 1h
// group_interval holds its events told in progress, not covered by
// ack_wait, which is how long a crashed notifier's held events wait for
// the next one (TestEventHeldByItsGroupWaitIsNotRedelivered); set, it
// is kept.
func TestAckWaitIsAMinuteWhateverTheTimers(t *testing.T) {
	routes := filepath.Join(t.TempDir(), "alertmanager.yml")
	os.WriteFile(routes, []byte(`route:
  receiver: hook
  routes:
  - matchers: [team="dba"]
    receiver: hook
    group_interval: 1h
receivers:
- name: hook
  webhook_configs:
  - url: http://127.0.0.1:1/
`), 0o600)
	proc, err := NewProcessor(Config{Routes: routes}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if got := proc.cfg.Consumer.AckWait; got != time.Minute {
		t.Fatalf("ack_wait %s, want a minute", got)
	}
	cfg := Config{Routes: routes}
	cfg.Consumer.AckWait = 10 * time.Minute
	if proc, err = NewProcessor(cfg, zerolog.Nop()); err != nil || proc.cfg.Consumer.AckWait != 10*time.Minute {
		t.Fatalf("a configured ack_wait became %s (%v)", proc.cfg.Consumer.AckWait, err)
	}
}

// switchMuter is a Muter whose silences a test turns on and off, by the
// service they match.
type switchMuter struct{ on atomic.Value }

func (m *switchMuter) set(service string) { m.on.Store(service) }

func (m *switchMuter) Mutes(labels map[string]string, _ time.Time) []string {
	if s, _ := m.on.Load().(string); s != "" && labels["service"] == s {
		return []string{"silence-" + s}
	}
	return nil
}

// A silence is asked when a notification is due, not only when its event
// arrived, as Alertmanager asks at every flush: one added while the first
// notification waits for group_wait holds it, and holds the repeats; a
// resolve made while it mutes ends the repeats, and goes out only to a
// receiver that heard of the incident (a mute holds back pages, not the
// end of one a receiver holds).
func TestSilenceAskedWhenDue(t *testing.T) {
	hook := newReceiver(t)
	muter := &switchMuter{}
	h, proc, at, tick := timedRig(t, hook, muter)
	bodies := func() []string {
		_, b := hook.requests()
		var out []string
		for _, x := range b {
			out = append(out, string(x))
		}
		return out
	}

	// Silenced during group_wait: never sent, its event acked.
	opened := h.Send(incidentOn(t, "db", "payments-db", "dba", event.SeverityCritical, event.IncidentOpened, t0))
	muter.set("payments-db")
	tick(31 * time.Second)
	if r, ok := opened.Result(); len(bodies()) != 0 || !ok || r.Outcome != stagetest.Acked {
		t.Fatalf("silenced during group_wait: %d sent, settled %v; want none sent, acked", len(bodies()), ok)
	}
	tick(time.Hour + time.Minute)
	if len(bodies()) != 0 {
		t.Fatalf("a repeat of a silenced incident went out")
	}
	// Resolved while silenced, nobody having heard of it: nothing goes
	// out, and once the silence ends no repeat says it fires.
	at(time.Hour + 10*time.Minute)
	h.Feed(incidentOn(t, "db", "payments-db", "dba", event.SeverityCritical, event.IncidentResolved, t0.Add(time.Hour+10*time.Minute)))
	muter.set("")
	tick(4 * time.Hour)
	if got := bodies(); len(got) != 0 {
		t.Fatalf("after a resolve while silenced: %d notifications, want none: %v", len(got), got)
	}

	// Heard, then silenced: the repeat is held, the resolve goes out.
	at(5 * time.Hour)
	opened5 := t0.Add(5 * time.Hour)
	h.Send(incidentAt(t, "web", "web", "storefront", event.SeverityCritical, event.IncidentOpened, opened5, opened5))
	tick(5*time.Hour + 31*time.Second)
	if len(bodies()) != 1 {
		t.Fatalf("web's opening: %d sent, want 1", len(bodies()))
	}
	muter.set("web")
	tick(6*time.Hour + time.Minute)
	if len(bodies()) != 1 {
		t.Fatalf("web's repeat went out while silenced: %d sent", len(bodies()))
	}
	at(6*time.Hour + 10*time.Minute)
	h.Feed(incidentAt(t, "web", "web", "storefront", event.SeverityCritical, event.IncidentResolved, opened5, t0.Add(6*time.Hour+10*time.Minute)))
	waitSent(t, proc)
	if got := bodies(); len(got) != 2 || !strings.Contains(got[1], `"status":"resolved"`) {
		t.Fatalf("web's resolve while silenced, its receiver having heard of it: %d sent, want it sent", len(got))
	}

	of := func(id string) (n int, last string) {
		for _, b := range bodies() {
			if strings.Contains(b, `"incident_id":"`+id+`"`) {
				n, last = n+1, b
			}
		}
		return n, last
	}
	// Muted during group_wait, then the silence ends: the page goes out
	// at the next group_interval (5m), not a repeat_interval (1h) later.
	// It was heard: a resolve muted again goes out.
	at(7 * time.Hour)
	api := t0.Add(7 * time.Hour)
	h.Send(incidentAt(t, "api", "api", "team", event.SeverityCritical, event.IncidentOpened, api, api))
	muter.set("api")
	tick(7*time.Hour + 31*time.Second)
	muter.set("")
	tick(7*time.Hour + 5*time.Minute + 32*time.Second)
	if n, _ := of("api"); n != 1 {
		t.Fatalf("api after its silence ended: %d sent within group_interval, want its page", n)
	}
	muter.set("api")
	at(7*time.Hour + 20*time.Minute)
	h.Feed(incidentAt(t, "api", "api", "team", event.SeverityCritical, event.IncidentResolved, api, api.Add(20*time.Minute)))
	waitSent(t, proc)
	if n, last := of("api"); n != 2 || !strings.Contains(last, `"status":"resolved"`) {
		t.Fatalf("api's resolve, its page having gone out after a muted opening: %d sent, want the resolve", n)
	}

	// Opened and resolved while silenced, both waiting when the slot comes
	// due: nobody heard of it, nothing goes out.
	muter.set("db2")
	at(9 * time.Hour)
	db2 := t0.Add(9 * time.Hour)
	h.Send(incidentAt(t, "db2", "db2", "team", event.SeverityCritical, event.IncidentOpened, db2, db2))
	at(9*time.Hour + 40*time.Second)
	h.Send(incidentAt(t, "db2", "db2", "team", event.SeverityCritical, event.IncidentResolved, db2, db2.Add(40*time.Second)))
	tick(9*time.Hour + time.Minute)
	tick(10 * time.Hour)
	if n, _ := of("db2"); n != 0 {
		t.Fatalf("an incident opened and resolved under a silence: %d sent, want none", n)
	}
}

// An open incident that does not change is repeated every repeat_interval
// also across a restart: what went out last to each route is kept with
// the open incident in the state bucket, and the notifier after the
// restart repeats it when its time comes (under the next repeat's key),
// and takes the event it sent, delivered again, as sent.
func TestRestartedNotifierRepeatsOnTime(t *testing.T) {
	hook := newReceiver(t)
	store := &memOpen{kept: map[string]openIncident{}}
	h, proc, _, tick := timedRigWith(t, hook, nil, store)
	opening := incidentOn(t, "db", "payments-db", "dba", event.SeverityCritical, event.IncidentOpened, t0)
	h.Send(opening)
	tick(31 * time.Second)
	if err := proc.saveOpen(context.Background()); err != nil {
		t.Fatal(err)
	}
	first, _ := hook.requests()
	if len(first) != 1 {
		t.Fatalf("%d sent at group_wait, want the opening", len(first))
	}
	if err := h.Stop(); err != nil {
		t.Fatal(err)
	}
	if kept := store.kept["db"]; len(kept.Sent) != 1 || kept.Sent[0].EventID != opening.ID || kept.Events[opening.ID] == nil {
		t.Fatalf("kept %+v, want what went out to the route and its event", kept)
	}

	h, _, at, tick := timedRigWith(t, hook, nil, store)
	sent := func() int { got, _ := hook.requests(); return len(got) }
	// another incident's event sets the restarted notifier's clock
	at(59 * time.Minute)
	h.Send(incidentAt(t, "web", "web", "frontend", event.SeverityCritical, event.IncidentOpened, t0.Add(59*time.Minute), t0.Add(59*time.Minute)))
	if r := h.Feed(opening)[0]; r.Outcome != stagetest.Acked || sent() != 1 {
		t.Fatalf("the opening delivered again: %v, %d sent; want it taken as sent", r.Outcome, sent())
	}
	tick(59*time.Minute + 31*time.Second) // web's group_wait
	if sent() != 2 {
		t.Fatalf("%d sent, want web's opening too", sent())
	}
	tick(60*time.Minute + 20*time.Second)
	if sent() != 2 {
		t.Fatal("db repeated before repeat_interval")
	}
	tick(61 * time.Minute)
	got, bodies := hook.requests()
	if len(got) != 3 || !strings.Contains(string(bodies[2]), "payments-db") {
		t.Fatalf("%d sent an hour after db went out, want its repeat", len(got))
	}
	if got[2].Header.Get("webhook-id") == first[0].Header.Get("webhook-id") {
		t.Error("the repeat has the opening's webhook-id: a receiver would drop it")
	}
}

// A notifier that leads again after another held the lease forgets what
// its earlier term knew of an incident the store no longer has open (the
// holder between resolved it): it does not repeat it.
func TestNoRepeatOfAnIncidentResolvedByTheHolderBetween(t *testing.T) {
	hook := newReceiver(t)
	store := &memOpen{kept: map[string]openIncident{}}
	h, proc, at, tick := timedRigWith(t, hook, nil, store)
	h.Send(incidentOn(t, "db", "payments-db", "dba", event.SeverityCritical, event.IncidentOpened, t0))
	tick(31 * time.Second)
	if err := proc.saveOpen(context.Background()); err != nil {
		t.Fatal(err)
	}
	// the term ends; the holder between resolves db
	proc.mu.Lock()
	proc.schedule.release(ErrStopping)
	proc.mu.Unlock()
	store.mu.Lock()
	store.kept["db"] = openIncident{ID: "db", Resolved: true, Revision: 99, At: t0.Add(30 * time.Minute)}
	store.mu.Unlock()
	if err := proc.restoreOpen(context.Background()); err != nil {
		t.Fatal(err)
	}
	at(59 * time.Minute)
	h.Send(incidentAt(t, "web", "web", "frontend", event.SeverityCritical, event.IncidentOpened, t0.Add(59*time.Minute), t0.Add(59*time.Minute)))
	tick(59*time.Minute + 31*time.Second)
	tick(61 * time.Minute)
	_, bodies := hook.requests()
	n := 0
	for _, b := range bodies {
		if strings.Contains(string(b), "payments-db") {
			n++
		}
	}
	if n != 1 || len(bodies) != 2 {
		t.Errorf("db notified %d times (of %d), want once: the holder between resolved it", n, len(bodies))
	}
}

// The incident events kept for repeats are bounded in all: past the bound
// a newly notified incident keeps none (it repeats from its next event
// after a restart), and a resolved one gives its bytes back.
func TestKeptEventsBounded(t *testing.T) {
	defer func(n int) { maxAllKeptEvents = n }(maxAllKeptEvents)
	hook := newReceiver(t)
	store := &memOpen{kept: map[string]openIncident{}}
	h, proc, at, tick := timedRigWith(t, hook, nil, store)
	startSaver(t, proc)
	db := incidentOn(t, "db", "payments-db", "dba", event.SeverityCritical, event.IncidentOpened, t0)
	data, err := db.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	maxAllKeptEvents = len(data) + len(data)/2 // one incident's event fits, not two
	h.Send(db)
	h.Send(incidentOn(t, "web", "web", "frontend", event.SeverityCritical, event.IncidentOpened, t0))
	tick(31 * time.Second)
	proc.mu.Lock()
	kept := 0
	for _, inc := range proc.open {
		if len(inc.Sent) > 0 {
			kept++
		}
	}
	proc.mu.Unlock()
	if kept != 1 {
		t.Fatalf("%d incidents keep their event, want 1 within the bound", kept)
	}
	// the one kept resolves: its bytes are given back, and the other's
	// next notification keeps its event
	keeper := "db"
	if len(proc.open["db"].Sent) == 0 {
		keeper = "web"
	}
	other := map[string]string{"db": "web", "web": "db"}[keeper]
	svc := map[string]string{"db": "payments-db", "web": "web"}
	team := map[string]string{"db": "dba", "web": "frontend"}
	at(time.Minute)
	h.Feed(incidentOn(t, keeper, svc[keeper], team[keeper], event.SeverityCritical, event.IncidentResolved, t0.Add(time.Minute)))
	h.Feed(incidentOn(t, other, svc[other], team[other], event.SeverityCritical, event.IncidentAcknowledged, t0.Add(time.Minute)))
	waitSent(t, proc)
	proc.mu.Lock()
	defer proc.mu.Unlock()
	if len(proc.open[other].Sent) != 1 || proc.keptEvents > maxAllKeptEvents {
		t.Errorf("%s keeps %d sends, %d bytes kept (bound %d): want its acknowledgement kept once the resolved one gave its bytes back",
			other, len(proc.open[other].Sent), proc.keptEvents, maxAllKeptEvents)
	}
}

// The first page of an incident that was muted when due goes out once the
// mute ends, as a repeat of the muted state; nobody has heard of the
// incident yet, so a receiver that cannot be reached then has it held and
// tried again, as any first page, not skipped until repeat_interval as a
// repeat that failed is.
func TestFirstPageAfterAMuteIsHeldWhenItFails(t *testing.T) {
	hook := newReceiver(t, 503) // the first request fails, the next ones go through
	muter := &switchMuter{}
	routes := filepath.Join(t.TempDir(), "alertmanager.yml")
	os.WriteFile(routes, []byte("route:\n  receiver: hook\n  group_wait: 30s\n  group_interval: 5m\n  repeat_interval: 4h\nreceivers:\n- name: hook\n  webhook_configs:\n  - url: "+hook.srv.URL+"\n"), 0o600)
	cfg := Config{Routes: routes}
	cfg.Delivery.Retry.MaxAttempts = 1 // one failed attempt fails the send
	proc, err := NewProcessor(cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	proc.WithSilences(muter)
	wall := time.Now()
	var fake atomic.Int64
	proc.now = func() time.Time { return time.Unix(0, fake.Load()) }
	at := func(d time.Duration) { fake.Store(wall.Add(d).UnixNano()) }
	at(0)
	h := stagetest.Start(t, proc, stage.Config{Name: "notifier", TickEvery: time.Second})
	tick := func(d time.Duration) {
		t.Helper()
		at(d)
		if err := h.Tick(wall.Add(d)); err != nil {
			t.Fatal(err)
		}
		waitSent(t, proc)
	}
	h.Send(incidentAt(t, "api", "api", "team", event.SeverityCritical, event.IncidentOpened, t0, t0))
	muter.set("api")
	tick(31 * time.Second) // muted when due
	muter.set("")
	tick(5*time.Minute + 32*time.Second) // the page goes out: 503
	if got, _ := hook.requests(); len(got) != 1 {
		t.Fatalf("%d requests once the mute ended, want the page's (failing)", len(got))
	}
	for d := 6 * time.Minute; d <= 20*time.Minute; d += 30 * time.Second {
		tick(d)
	}
	if got, _ := hook.requests(); len(got) != 2 {
		t.Fatalf("%d requests within 15 minutes of the failed page, want it tried again once and delivered (repeat_interval is 4h)", len(got))
	}
}

// A resolve is timed when its incident went quiet (the last signal plus
// quiet_period) and published at the correlator's next tick, up to 30 s
// later. A repeat (or, under a silence, the re-check at every
// group_interval) made in between was stamped with the time it was made,
// so the resolve looked older than the state last sent and was settled as
// stale: the receiver, which had the page, never got its end.
func TestResolveTimedBeforeARepeatStillGoesOut(t *testing.T) {
	for _, silenced := range []bool{false, true} {
		name := "repeat"
		if silenced {
			name = "muted re-check"
		}
		t.Run(name, func(t *testing.T) {
			hook := newReceiver(t)
			muter := &switchMuter{}
			h, proc, at, tick := timedRig(t, hook, muter)
			h.Send(incidentAt(t, "db", "payments-db", "dba", event.SeverityCritical, event.IncidentOpened, t0, t0))
			tick(31 * time.Second)
			if _, b := hook.requests(); len(b) != 1 {
				t.Fatalf("the opening: %d sent, want 1", len(b))
			}
			next := time.Hour + 31*time.Second // repeat_interval after the page
			if silenced {
				// The repeat muted, then asked again group_interval later.
				muter.set("payments-db")
				tick(next)
				next += 5 * time.Minute
			}
			tick(next) // the repeat, or the muted re-check, at t0+next
			// Quiet since t0+next-10s, said at the tick 20 s after next.
			at(next + 20*time.Second)
			h.Feed(incidentAt(t, "db", "payments-db", "dba", event.SeverityCritical, event.IncidentResolved, t0, t0.Add(next-10*time.Second)))
			waitSent(t, proc)
			_, b := hook.requests()
			if len(b) == 0 || !strings.Contains(string(b[len(b)-1]), `"status":"resolved"`) {
				t.Fatalf("%d sent, the last not the resolve: the receiver holds the incident open", len(b))
			}
		})
	}
}

// An incident opened and merged into another at once, its events late
// on the notifier's clock, is a flap like any other: in an alert storm
// Alertmanager sends an alert that joins a group a group_interval after
// it started, the correlator opens an incident as of then and merges it
// into the storm's in the same moment, and publishes both states
// together. The opening, past its group_wait on a clock other incidents
// moved on, went out at once, its resolve right behind it: a page and
// its resolve for every such alert (13 pairs of 40 webhooks in a storm
// trial of 9,436 alerts).
func TestLateOpeningResolvedAsItOpenedIsNeverNotified(t *testing.T) {
	hook := newReceiver(t)
	h, _, at, tick := timedRig(t, hook, nil)
	at(2 * time.Minute)
	h.Send(incidentAt(t, "storm", "db", "dba", event.SeverityCritical, event.IncidentOpened, t0.Add(2*time.Minute), t0.Add(2*time.Minute)))
	lateOpen := h.Send(incidentAt(t, "late", "batch", "ops", event.SeverityWarning, event.IncidentOpened, t0, t0))
	if r := h.Feed(incidentAt(t, "late", "batch", "ops", event.SeverityWarning, event.IncidentResolved, t0, t0))[0]; r.Outcome != stagetest.Acked {
		t.Fatalf("the late flap's resolve: %v", r.Outcome)
	}
	tick(2*time.Minute + 31*time.Second)
	_, bodies := hook.requests()
	for _, b := range bodies {
		if strings.Contains(string(b), `"late"`) {
			t.Errorf("the receiver heard of the incident merged as it opened: %s", b)
		}
	}
	if len(bodies) != 1 {
		t.Errorf("%d notifications, want the storm incident's opening alone", len(bodies))
	}
	if r, ok := lateOpen.Result(); !ok || r.Outcome != stagetest.Acked {
		t.Errorf("the late opening: %v %v, want acked", ok, r.Outcome)
	}
}

// An incident opened from an anomaly that waited (the correlator's
// lone_anomalies) is timed at the anomaly, minutes before the signal
// that corroborated it, which its state holds (last_signal_at). A
// notifier that had seen nothing else took the opening's time for now
// and ran that far behind: the opening waited its group_wait as if
// just opened, and every timer was late until another event came. The
// clock takes the latest signal the state holds.
func TestBackdatedOpeningAfterStartIsLate(t *testing.T) {
	hook := newReceiver(t)
	h, proc, at, tick := timedRig(t, hook, nil)
	e := incidentAt(t, "waited", "payments", "pay", event.SeverityWarning, event.IncidentOpened, t0, t0)
	st := correlate.State{}
	if err := json.Unmarshal(e.Body, &st); err != nil {
		t.Fatal(err)
	}
	st.LastEvent = t0.Add(4 * time.Minute) // the corroborating alert
	e, err := correlate.Envelope(correlate.Update{Transition: correlate.Opened, Time: t0, State: st}, t0.Add(4*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	at(4 * time.Minute)
	h.Send(e)
	tick(4*time.Minute + time.Second)
	if got, _ := hook.requests(); len(got) != 1 {
		t.Errorf("%d notifications a second after the opening that began 4 minutes before, want it paged at once", len(got))
	}
	if now := proc.clock.at(proc.now()); now.Before(t0.Add(4 * time.Minute)) {
		t.Errorf("the notifier's clock reads %s, behind the latest signal %s", now.Sub(t0), 4*time.Minute)
	}
}

// A reopening goes out at once, as an acknowledgement does, and reads as
// one, even when a newer update of the incident replaced it before its
// turn came: the soak's correlator, catching up after a restart,
// published a reopening and an update in the same millisecond while the
// incident's resolve was being sent, and the update, replacing the
// reopening, waited for group_interval and went out as incident.updated.
func TestReopeningReplacedByAnUpdateStillGoesOutAtOnce(t *testing.T) {
	var mu sync.Mutex
	var answered []string
	took, resolveGate := make(chan struct{}, 8), make(chan struct{})
	requests := 0
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		mu.Lock()
		requests++
		n := requests
		mu.Unlock()
		took <- struct{}{}
		if n == 2 {
			<-resolveGate
		}
		typ := payloadType(t, body)
		mu.Lock()
		answered = append(answered, typ)
		mu.Unlock()
	}))
	defer hook.Close()
	file := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(file, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	h, _, at, tick := timedRigTo(t, "aiops_webhook_configs: [{url: '"+hook.URL+"', secret_file: '"+file+"'}]", nil, nil)
	h.Send(incidentAt(t, "inc", "db", "dba", event.SeverityCritical, event.IncidentOpened, t0, t0))
	tick(31 * time.Second)
	<-took
	at(40 * time.Second)
	h.Send(incidentAt(t, "inc", "db", "dba", event.SeverityCritical, event.IncidentResolved, t0, t0.Add(40*time.Second)))
	<-took // the resolve is being sent
	at(45 * time.Second)
	h.Send(incidentAt(t, "inc", "db", "dba", event.SeverityCritical, event.IncidentReopened, t0, t0.Add(45*time.Second)))
	h.Send(incidentAt(t, "inc", "db", "dba", event.SeverityCritical, event.IncidentUpdated, t0, t0.Add(45*time.Second+time.Millisecond)))
	close(resolveGate)
	tick(46 * time.Second)
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"incident.opened", "incident.resolved", "incident.reopened"}; !slices.Equal(answered, want) {
		t.Fatalf("within group_interval of the resolve the receiver took %v, want %v", answered, want)
	}
}
