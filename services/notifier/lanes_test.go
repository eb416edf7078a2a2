package notifier

import (
	"context"
	"encoding/json"
	"errors"
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

	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/event"
)

// gatedReceiver is an endpoint that tells the test of every request as it
// arrives ("<incident id>/<transition>") and answers it only once the test
// opened its gate.
type gatedReceiver struct {
	srv     *httptest.Server
	arrived chan string
	gate    chan struct{}
	open    func()
	count   atomic.Int64
}

func newGatedReceiver(t *testing.T) *gatedReceiver {
	g := &gatedReceiver{arrived: make(chan string, 100), gate: make(chan struct{})}
	var once sync.Once
	g.open = func() { once.Do(func() { close(g.gate) }) }
	g.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var body struct{ ID, Transition string }
		if err := json.NewDecoder(req.Body).Decode(&body); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		g.count.Add(1)
		g.arrived <- body.ID + "/" + body.Transition
		select {
		case <-g.gate:
		case <-req.Context().Done(): // the notifier gave up on it
		}
	}))
	t.Cleanup(g.srv.Close)
	t.Cleanup(g.open) // before Close: a held handler would keep Close waiting
	return g
}

// next is the next request to arrive.
func (g *gatedReceiver) next(t *testing.T) string {
	t.Helper()
	select {
	case got := <-g.arrived:
		return got
	case <-time.After(time.Minute):
		t.Fatal("no request arrived within a minute")
		return ""
	}
}

// laneRoutes sends team=dba to the receiver slow and the rest to fast, as
// {"id": ..., "transition": ...} bodies.
func laneRoutes(t *testing.T, groupWait string, slow, fast *gatedReceiver) *Processor {
	t.Helper()
	routes := filepath.Join(t.TempDir(), "alertmanager.yml")
	body := `'{"id": {{ json .ID }}, "transition": {{ json .Transition }}}'`
	if err := os.WriteFile(routes, []byte(`route:
  receiver: fast
  group_wait: `+groupWait+`
  routes:
  - {matchers: [team="dba"], receiver: slow}
receivers:
- name: slow
  aiops_template_configs: [{url: `+slow.srv.URL+`, template: `+body+`}]
- name: fast
  aiops_template_configs: [{url: `+fast.srv.URL+`, template: `+body+`}]
`), 0o600); err != nil {
		t.Fatal(err)
	}
	proc, err := NewProcessor(Config{Routes: routes}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	return proc
}

// dones counts, per incident event, the results it was settled with.
type dones struct {
	mu  sync.Mutex
	got map[string][]error
}

func (d *dones) done(id string) func(error) {
	return func(err error) {
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.got == nil {
			d.got = map[string][]error{}
		}
		d.got[id] = append(d.got[id], err)
	}
}

func (d *dones) of(id string) []error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.got[id])
}

// A receiver that does not answer holds only its own notifications: the
// other receiver's arrives while the first is still waiting for its
// answer, and each event is settled once, after its notification went
// out.
func TestSlowReceiverHoldsOnlyItsOwn(t *testing.T) {
	slow, fast := newGatedReceiver(t), newGatedReceiver(t)
	fast.open()
	proc := laneRoutes(t, "0s", slow, fast)
	var d dones
	ctx := context.Background()
	db := incidentOn(t, "db", "payments-db", "dba", event.SeverityCritical, event.IncidentOpened, t0)
	web := incidentOn(t, "web", "web", "storefront", event.SeverityCritical, event.IncidentOpened, t0)

	proc.Write(ctx, db, d.done(db.ID))
	if got := slow.next(t); got != "db/opened" {
		t.Fatalf("the slow receiver got %q", got)
	}
	proc.Write(ctx, web, d.done(web.ID))
	if got := fast.next(t); got != "web/opened" {
		t.Fatalf("the fast receiver got %q", got)
	}
	waitFor(t, func() bool { return len(d.of(web.ID)) == 1 })
	if got := d.of(db.ID); len(got) != 0 {
		t.Fatalf("the held notification's event was settled before it was answered: %v", got)
	}

	slow.open()
	waitSent(t, proc)
	for _, id := range []string{db.ID, web.ID} {
		if got := d.of(id); len(got) != 1 || got[0] != nil {
			t.Fatalf("event %s settled with %v, want acked once", id, got)
		}
	}
	if slow.count.Load() != 1 || fast.count.Load() != 1 {
		t.Fatalf("requests: slow %d, fast %d; want one each", slow.count.Load(), fast.count.Load())
	}
}

// One receiver's notifications go out one at a time in the order they
// came due (the earliest event first), and an incident's newer state,
// offered while its previous one was still out, follows it: never beside
// or before it.
func TestReceiverKeepsOrder(t *testing.T) {
	hook, unused := newGatedReceiver(t), newGatedReceiver(t)
	proc := laneRoutes(t, "30s", hook, unused)
	wall := time.Now()
	proc.now = func() time.Time { return wall }
	var d dones
	ctx := context.Background()
	var events []*event.Envelope
	// Written out of order; they come due together at the tick below.
	for _, i := range []int{3, 1, 2, 0} {
		at := t0.Add(time.Duration(i) * time.Second)
		e := incidentAt(t, fmt.Sprint("inc", i), "payments-db", "dba", event.SeverityCritical, event.IncidentOpened, at, at)
		events = append(events, e)
		proc.Write(ctx, e, d.done(e.ID))
	}
	if err := proc.Tick(ctx, wall.Add(40*time.Second), nil); err != nil {
		t.Fatal(err)
	}
	if got := hook.next(t); got != "inc0/opened" {
		t.Fatalf("first request %q, want the earliest incident", got)
	}
	// While inc0's opening is held by the receiver and inc1's waits in
	// the queue, both are acknowledged: each acknowledgement must wait
	// for its own incident's opening.
	for _, id := range []string{"inc0", "inc1"} {
		e := incidentAt(t, id, "payments-db", "dba", event.SeverityCritical, event.IncidentAcknowledged, t0, t0.Add(45*time.Second))
		events = append(events, e)
		proc.Write(ctx, e, d.done(e.ID))
	}
	hook.open()
	got := []string{"inc0/opened"}
	for len(got) < 6 {
		got = append(got, hook.next(t))
	}
	want := []string{"inc0/opened", "inc1/opened", "inc2/opened", "inc3/opened", "inc0/acknowledged", "inc1/acknowledged"}
	if !slices.Equal(got, want) {
		t.Fatalf("arrived %v, want %v", got, want)
	}
	waitSent(t, proc)
	for _, e := range events {
		if r := d.of(e.ID); len(r) != 1 || r[0] != nil {
			t.Fatalf("event %s settled with %v, want acked once", e.ID, r)
		}
	}
	if hook.count.Load() != 6 {
		t.Fatalf("%d requests, want 6", hook.count.Load())
	}
}

// The drain waits for a send in flight and settles its event with its
// result, while what was only queued goes back with ErrStopping, unsent;
// a drain that ends first cancels the send, whose event goes back once.
// The notifier delivers again after a drain (a lease taken back).
func TestFlushWithSendInFlight(t *testing.T) {
	hook, unused := newGatedReceiver(t), newGatedReceiver(t)
	proc := laneRoutes(t, "0s", hook, unused)
	var d dones
	ctx := context.Background()
	first := incidentOn(t, "db1", "payments-db", "dba", event.SeverityCritical, event.IncidentOpened, t0)
	queued := incidentOn(t, "db2", "payments-db", "dba", event.SeverityCritical, event.IncidentOpened, t0)
	proc.Write(ctx, first, d.done(first.ID))
	if got := hook.next(t); got != "db1/opened" {
		t.Fatalf("got %q", got)
	}
	proc.Write(ctx, queued, d.done(queued.ID))

	flushed := make(chan error, 1)
	go func() { flushed <- proc.Flush(ctx) }()
	// Once the drain dropped the queued note, only the one in flight is
	// left: answer it.
	waitFor(t, func() bool { proc.mu.Lock(); defer proc.mu.Unlock(); return proc.inFlight == 1 })
	hook.open()
	if err := <-flushed; err != nil {
		t.Fatalf("Flush: %v", err)
	}
	if got := d.of(first.ID); len(got) != 1 || got[0] != nil {
		t.Fatalf("the event in flight at the drain settled with %v, want acked once", got)
	}
	if got := d.of(queued.ID); len(got) != 1 || !errors.Is(got[0], ErrStopping) {
		t.Fatalf("the queued event settled with %v, want ErrStopping once", got)
	}
	if hook.count.Load() != 1 {
		t.Fatalf("%d requests, want the queued note unsent", hook.count.Load())
	}

	// A drain that ends before the receiver answers.
	held := newGatedReceiver(t)
	proc = laneRoutes(t, "0s", held, unused)
	stuck := incidentOn(t, "db3", "payments-db", "dba", event.SeverityCritical, event.IncidentOpened, t0)
	proc.Write(ctx, stuck, d.done(stuck.ID))
	held.next(t)
	drain, cancel := context.WithCancel(ctx)
	cancel()
	if err := proc.Flush(drain); err == nil {
		t.Fatal("Flush returned nil with a send still going at the drain's end")
	}
	waitSent(t, proc) // the cancelled send comes back
	if got := d.of(stuck.ID); len(got) != 1 || !errors.Is(got[0], ErrStopping) {
		t.Fatalf("the event whose send the drain cut settled with %v, want ErrStopping once", got)
	}

	// Delivering again after the drain.
	held.open()
	again := incidentOn(t, "db4", "payments-db", "dba", event.SeverityCritical, event.IncidentOpened, t0)
	proc.Write(ctx, again, d.done(again.ID))
	waitSent(t, proc)
	if got := d.of(again.ID); len(got) != 1 || got[0] != nil {
		t.Fatalf("after the drain: settled with %v, want acked", got)
	}
}

// A note queued while the drain waits (a Write of the source's drain)
// goes back with ErrStopping when the drain times out, and is not sent
// after Flush returned: another notifier may be sending it.
func TestFlushTimedOutSendsNothingQueuedMeanwhile(t *testing.T) {
	hook, unused := newGatedReceiver(t), newGatedReceiver(t)
	proc := laneRoutes(t, "0s", hook, unused)
	var d dones
	ctx := context.Background()
	first := incidentOn(t, "db1", "payments-db", "dba", event.SeverityCritical, event.IncidentOpened, t0)
	proc.Write(ctx, first, d.done(first.ID))
	hook.next(t)
	drain, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	flushed := make(chan error, 1)
	go func() { flushed <- proc.Flush(drain) }()
	waitFor(t, func() bool { proc.mu.Lock(); defer proc.mu.Unlock(); return proc.idle != nil })
	late := incidentOn(t, "db2", "payments-db", "dba", event.SeverityCritical, event.IncidentOpened, t0)
	proc.Write(ctx, late, d.done(late.ID))
	if err := <-flushed; err == nil {
		t.Fatal("Flush returned nil with a send still going at the drain's end")
	}
	if got := d.of(late.ID); len(got) != 1 || !errors.Is(got[0], ErrStopping) {
		t.Fatalf("the event queued during the drain settled with %v, want ErrStopping once", got)
	}
	select {
	case got := <-hook.arrived:
		t.Fatalf("%q sent after Flush returned, its event already settled with ErrStopping", got)
	case <-time.After(time.Second):
	}
	waitSent(t, proc) // the cancelled send comes back
	if got := d.of(first.ID); len(got) != 1 || !errors.Is(got[0], ErrStopping) {
		t.Fatalf("the event whose send the drain cut settled with %v, want ErrStopping once", got)
	}
}

// waitFor waits until cond holds (a minute at most).
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached within a minute")
		}
	}
}
