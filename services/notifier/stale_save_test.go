package notifier

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/event"
)

// gatedOpen holds the next Put, once armed, until released: a holder
// paused (or its link stalled) after it checked its lease, its write on
// the way.
type gatedOpen struct {
	*kvOpen
	armed    atomic.Bool
	entered  chan struct{}
	released chan struct{}
}

func (g *gatedOpen) Put(ctx context.Context, inc openIncident) error {
	if g.armed.CompareAndSwap(true, false) {
		close(g.entered)
		<-g.released
	}
	return g.kvOpen.Put(ctx, inc)
}

// A holder whose write of an open incident is on its way when its term
// ends must not replace what the next holder wrote of it since, when the
// write lands at last: the incident the next holder resolved came back
// open in the bucket, so the holder after it inhibited by it and paged it
// again every repeat_interval, after its resolve, until max_age. A late
// write that lands before the next holder writes the incident does not
// stop that one's write either.
func TestLateWriteOfALostTermDoesNotReopenAnIncidentTheNextHolderResolved(t *testing.T) {
	for _, landsFirst := range []bool{false, true} {
		name := "lands after the next holder's write"
		if landsFirst {
			name = "lands before the next holder's write"
		}
		t.Run(name, func(t *testing.T) {
			r := newJSRig(t, zerolog.ErrorLevel)
			ctx := context.Background()
			routes := inhibitRoutes(t, "http://127.0.0.1:1")
			instance := func(store OpenStore, holds func() bool) *Processor {
				t.Helper()
				p, err := NewProcessor(Config{Routes: routes}, zerolog.Nop())
				if err != nil {
					t.Fatal(err)
				}
				p.holds = holds
				p.WithOpenStore(store)
				if err := p.restoreOpen(ctx); err != nil {
					t.Fatal(err)
				}
				return p
			}
			track := func(p *Processor, labels map[string]string, resolved bool, rev int) {
				p.mu.Lock()
				if p.trackOpen("inc-1", "", labels, resolved, stamp{rev, t0}, shownAs{}) {
					p.changed("inc-1")
				}
				p.mu.Unlock()
			}
			save := func(p *Processor) {
				t.Helper()
				if err := p.saveOpen(ctx); err != nil {
					t.Fatal(err)
				}
			}

			kvA := r.stateBucket()
			gate := &gatedOpen{kvOpen: kvA, entered: make(chan struct{}), released: make(chan struct{})}
			var aHolds atomic.Bool
			aHolds.Store(true)
			a := instance(gate, aHolds.Load)
			track(a, map[string]string{"severity": "critical", "team": "dba"}, false, 1)
			save(a)
			// Its next write passes its check of the lease, then it pauses
			// past the lease's end.
			track(a, map[string]string{"severity": "critical", "team": "dba", "cluster": "eu"}, false, 2)
			gate.armed.Store(true)
			late := make(chan error, 1)
			go func() { late <- a.saveOpen(ctx) }()
			<-gate.entered
			aHolds.Store(false)

			b := instance(r.stateBucket(), nil) // the next holder
			if _, open := b.open["inc-1"]; !open {
				t.Fatal("the next holder did not restore the open incident")
			}
			if landsFirst {
				close(gate.released)
				if err := <-late; err != nil {
					t.Fatal(err)
				}
			}
			track(b, nil, true, 3)
			save(b)
			if !landsFirst {
				close(gate.released)
				if err := <-late; err != nil {
					t.Fatal(err)
				}
			}

			c := instance(r.stateBucket(), nil) // the holder after it
			if inc, open := c.open["inc-1"]; open {
				t.Fatalf("the incident the next holder resolved is open again in the bucket (revision %d): the lost term's late write replaced its tombstone", inc.Revision)
			}
			if _, resolved := c.resolved.Peek("inc-1"); !resolved {
				t.Fatal("the next holder's tombstone is not in the bucket")
			}
		})
	}
}

// stalledOpen holds every Put until released, as a bucket whose server
// stalls does: the pass writing is in it.
type stalledOpen struct {
	memOpen
	entered  chan struct{}
	released chan struct{}
	once     sync.Once
}

func (s *stalledOpen) Put(ctx context.Context, inc openIncident) error {
	s.once.Do(func() { close(s.entered) })
	<-s.released
	return s.memOpen.Put(ctx, inc)
}

// A notification waits for its state's write at most stateWriteWait, even
// while another pass holds the saver in a stalled bucket: waiting for
// that pass first, a lane held every resolve and update behind the
// saver's first pass of a term, which writes every open incident restored
// (a second per some thousand), or behind a bucket that answers nothing.
func TestNotificationWaitsNoLongerForAStalledSaver(t *testing.T) {
	p, err := NewProcessor(Config{Routes: inhibitRoutes(t, "http://127.0.0.1:1")}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	store := &stalledOpen{memOpen: memOpen{kept: map[string]openIncident{}}, entered: make(chan struct{}), released: make(chan struct{})}
	p.WithOpenStore(store)
	p.mu.Lock()
	p.trackOpen("inc-1", "", map[string]string{"service": "db"}, false, stamp{1, t0}, shownAs{})
	p.changed("inc-1")
	p.mu.Unlock()
	pass := make(chan error, 1)
	go func() { pass <- p.saveOpen(context.Background()) }()
	<-store.entered // the saver's pass is in the stalled bucket

	waited := make(chan struct{})
	go func() { p.writeState(context.Background()); close(waited) }()
	select {
	case <-waited:
	case <-time.After(30 * stateWriteWait):
		t.Error("the notification still waits for the stalled pass, past 30 times stateWriteWait")
	}
	close(store.released)
	<-waited
	if err := <-pass; err != nil {
		t.Errorf("the stalled pass, released: %v", err)
	}
}

// A notification's write of its state (writeState) writes what changed,
// and none of the saver's sweeps: an entry of another incident due for
// its refresh waits for the saver's pass. Swept for each notification,
// every open incident was scanned twice under p.mu per update or
// acknowledgement sent (a quarter of the notifier's CPU with 3,000 open,
// BenchmarkLaterStates), and the notification waited for the refresh of
// the others' entries.
func TestNotificationWriteRefreshesNoOtherEntry(t *testing.T) {
	p, err := NewProcessor(Config{Routes: inhibitRoutes(t, "http://127.0.0.1:1")}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	store := &memOpen{kept: map[string]openIncident{}}
	p.WithOpenStore(store)
	wall := t0
	p.now = func() time.Time { return wall }
	labels := map[string]string{"service": "db"}
	p.mu.Lock()
	for _, id := range []string{"a", "b", "c"} {
		p.trackOpen(id, "", labels, false, stamp{1, t0}, shownAs{})
		p.changed(id)
	}
	p.mu.Unlock()
	if err := p.saveOpen(context.Background()); err != nil {
		t.Fatal(err)
	}
	// b's and c's entries are due for their refresh; none is quiet for
	// max_age yet
	wall = t0.Add(p.cfg.State.WithDefaults().MaxAge - time.Minute)
	p.mu.Lock()
	p.trackOpen("a", "", labels, false, stamp{2, wall}, shownAs{}) // an update of a
	p.changed("a")                                                 // as stateUnwritten marks it for its notification
	p.mu.Unlock()
	before := store.writes
	p.writeState(context.Background())
	if got := store.writes - before; got != 1 || store.kept["a"].Revision != 2 {
		t.Fatalf("the notification's write made %d writes, a at revision %d; want a's update only", got, store.kept["a"].Revision)
	}
	if err := p.saveOpen(context.Background()); err != nil || store.writes-before != 3 {
		t.Errorf("the saver's pass: %v, %d writes in all; want b's and c's refresh too", err, store.writes-before)
	}
}

// pairedOpen, once armed, holds each Put until another is in flight
// beside it (or its context ends), and tells whether two ever were.
type pairedOpen struct {
	memOpen
	armed   atomic.Bool
	mu      sync.Mutex
	waiting chan struct{} // a Put waiting for its pair (nil: none)
	paired  atomic.Bool
}

func (s *pairedOpen) Put(ctx context.Context, inc openIncident) error {
	if s.armed.Load() {
		s.mu.Lock()
		if s.waiting != nil {
			close(s.waiting)
			s.waiting = nil
			s.paired.Store(true)
			s.mu.Unlock()
		} else {
			wait := make(chan struct{})
			s.waiting = wait
			s.mu.Unlock()
			select {
			case <-wait:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	return s.memOpen.Put(ctx, inc)
}

// The later states of two incidents that come due together to one
// receiver are written in one pass, their writes in flight together: each
// went out after a pass of its own, one bucket round trip after another
// on the receiver's lane (BenchmarkLaterStates: a burst of updates fell
// behind 1,000/s).
func TestLaterStatesDueTogetherAreWrittenTogether(t *testing.T) {
	hook := newReceiver(t)
	store := &pairedOpen{memOpen: memOpen{kept: map[string]openIncident{}}}
	h, proc, at, tick := timedRigWith(t, hook, nil, store)
	for _, id := range []string{"a", "b"} {
		h.Send(incidentAt(t, id, "db", "dba", event.SeverityCritical, event.IncidentOpened, t0, t0))
	}
	tick(31 * time.Second) // the openings go out
	if err := proc.saveOpen(context.Background()); err != nil {
		t.Fatal(err)
	}
	store.armed.Store(true)
	at(40 * time.Second)
	for _, id := range []string{"a", "b"} {
		h.Send(incidentAt(t, id, "db", "dba", event.SeverityCritical, event.IncidentUpdated, t0, t0.Add(40*time.Second)))
	}
	tick(6 * time.Minute) // both updates come due, past group_interval
	if got, _ := hook.requests(); len(got) != 4 {
		t.Fatalf("the receiver got %d notifications, want the 2 openings and the 2 updates", len(got))
	}
	if !store.paired.Load() {
		t.Error("the two updates' states were never written together: one pass, one round trip, each")
	}
}
