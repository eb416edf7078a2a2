package notifier

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/aiops-dev/aiops/pkg/bus"
	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/pkg/notify/amconfig"
	"github.com/aiops-dev/aiops/pkg/stage"
)

// The open incidents are what inhibits: an incident is held back while
// another open incident matches an inhibit rule's source. The correlator
// sends an incident's events only when it changes, so a notifier that
// knew them only in memory forgot, at every restart (or when a standby
// took the lease), every incident that inhibits, and paged for what they
// inhibit until each one's next event. The open incidents' labels are
// kept in a key-value bucket (StateConfig), written by a saver of their own
// as soon as they change (apart from the deliveries, which a slow bucket
// must not hold back), and read when this instance's term begins (at start, or when it takes the lease). A
// resolved incident is kept as resolved (a tombstone), so that an older
// state of it that comes again (a redelivery) does not bring it back; an
// entry not written for state.max_age expires, so one whose resolve never
// came inhibits no longer than that. While the bucket cannot be written,
// delivery goes on: what failed is written again every 30 s, and a crash
// meanwhile forgets it.

// StateConfig is the key-value bucket of the open incidents' labels.
type StateConfig struct {
	// Bucket is the JetStream key-value bucket (default "notifier_state").
	Bucket string `yaml:"bucket"`
	// Replicas of the bucket on a NATS cluster (default 1).
	Replicas int `yaml:"replicas"`
	// Disabled keeps the open incidents in memory only: a restart forgets
	// which of them inhibit.
	Disabled bool `yaml:"disabled"`
	// MaxAge drops an entry not written for this long (default 168h, at
	// least 10m; an open incident's entry is written again 2m before, while
	// a notifier took an event of it within MaxAge): an open incident with
	// no event for this long is forgotten.
	MaxAge time.Duration `yaml:"max_age"`
}

// WithDefaults fills what is unset.
func (c StateConfig) WithDefaults() StateConfig {
	if c.Bucket == "" {
		c.Bucket = "notifier_state"
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.MaxAge == 0 {
		c.MaxAge = 168 * time.Hour
	}
	return c
}

// Validate names the key that is wrong.
func (c StateConfig) Validate() error {
	if c.Replicas < 0 || c.Replicas > 5 {
		return fmt.Errorf("replicas: %d is not in [1,5]", c.Replicas)
	}
	if c.MaxAge < 0 || c.MaxAge > 0 && c.MaxAge < 10*time.Minute {
		return fmt.Errorf("max_age: %v, want at least 10m", c.MaxAge)
	}
	return nil
}

// MaxOpen bounds the open incidents the notifier keeps for inhibition;
// past it an incident's opening inhibits nothing (counted in the log).
const MaxOpen = 100_000

// maxResolved bounds the resolved incidents remembered in memory, whose
// older states are refused (the bucket keeps its tombstones until they
// expire).
const maxResolved = 10_000

// openIncident is what the notifier keeps of an open incident: the labels
// it is routed by, and its revision, so that an older state of it that
// comes again changes nothing. Resolved: a tombstone.
//
// Sent is what went out last to each of its routes, and Events those
// states' incident events: a notifier after a restart repeats them on time
// (restoreSent), instead of not until the incident's next event. They are
// never changed in place (the saver marshals copies outside the lock).
type openIncident struct {
	ID       string            `json:"id"`
	Labels   map[string]string `json:"labels,omitempty"`
	Revision int               `json:"revision"`
	At       time.Time         `json:"at"` // the state's event time
	// Opened and Title are the incident's opening and title, which
	// GET /api/v2/alerts shows (Alerts).
	Opened   time.Time                  `json:"opened,omitzero"`
	Title    string                     `json:"title,omitempty"`
	Resolved bool                       `json:"resolved,omitempty"`
	Sent     []sentRecord               `json:"sent,omitempty"`
	Events   map[string]json.RawMessage `json:"events,omitempty"`
	// EventID is a tombstone's resolve's incident event: aiops notify
	// replay, bringing a receiver to the resolve, sends it under that
	// event's idempotency keys, so a receiver that had it can tell.
	EventID string `json:"event_id,omitempty"`
	// Unheard are a tombstone's routes whose receivers never heard of the
	// incident: its resolve came within group_wait of the opening this
	// notifier held (a flap, the incident merged into another that
	// soon). A notifier after a restart sends neither that resolve nor an
	// older state to them when the events come again (endedFor).
	Unheard []string `json:"unheard,omitempty"`
	// Seen is when (wall clock) a notifier last took an event of it: an
	// open incident with none for max_age is written again no more, and
	// its entry expires (its resolve lost, or its correlator's state).
	Seen time.Time `json:"seen,omitzero"`
	// OutRevision and OutAt stamp the latest state of it after its
	// opening that a notifier handed to a receiver (an update, an
	// acknowledgement, a reopening), written before it went out
	// (stateUnwritten): an older state that comes again is not sent to a
	// route it goes to (supersededFor). Not the entry's own stamp, which
	// is written as soon as its labels change, sent or not: a state that
	// only waited (for group_wait, given back at a graceful stop) stands
	// for no older one, and the opening that comes again before it must
	// still make the slot that knows no receiver heard (a flap).
	OutRevision int       `json:"out_revision,omitempty"`
	OutAt       time.Time `json:"out_at,omitzero"`
	// EndedRevision, EndedAt and EndedUnheard are the tombstone its
	// reopening replaced: its resolve's stamp, and the routes that never
	// heard of it. A notifier after a restart drops an older state, and
	// that resolve to those routes, as it would for the tombstone
	// (endedFor). The entry of a reopened incident knows nothing of what
	// went out before its resolve (Sent, Out: a send that ended once the
	// resolve was known is not recorded at all), and without them an
	// older state that came again went out as the incident's opening,
	// the receiver opened twice, or after the resolve.
	EndedRevision int       `json:"ended_revision,omitempty"`
	EndedAt       time.Time `json:"ended_at,omitzero"`
	EndedUnheard  []string  `json:"ended_unheard,omitempty"`
	saved         time.Time // when this instance last wrote it (wall clock)
	// written is the latest Out the bucket holds, as this instance knows
	// (restored, or written since): what a resolve or an update waits for
	// before it goes out (stateUnwritten).
	written stamp
}

// sentRecord is what went out last to one route of an open incident: the
// incident event, when (event time), whether it was muted, and how many
// repeats of it went out (a repeat's idempotency key counts them).
type sentRecord struct {
	Route   string    `json:"route"`
	EventID string    `json:"event_id"`
	At      time.Time `json:"at"`
	Muted   bool      `json:"muted,omitempty"`
	Repeat  int       `json:"repeat,omitempty"`
	// HeardBy are the integrations of the route's receiver a notification
	// of the incident reached (slot.heardBy), known when Knows: the
	// notifier knew every notification since the opening. Without it (a
	// record of an older notifier) the receiver may have heard.
	HeardBy uint64 `json:"heard_by,omitempty"`
	Knows   bool   `json:"knows,omitempty"`
	// Integrations identifies the receiver's integrations HeardBy counts
	// by position (integrationsKey): a configuration that changed them
	// since leaves a receiver that may have heard, and first notices.
	Integrations string `json:"integrations,omitempty"`
	// Receiver is the route's receiver when it went out (an older
	// notifier's record has none): a route whose matchers the event no
	// longer matches is restored only to the same receiver.
	Receiver string `json:"receiver,omitempty"`
}

// maxKeptEvents bounds the incident events an entry keeps for repeats, so
// that the entry stays within a key-value value (1 MB by default): past
// it, only the latest is kept, and one larger alone is not kept (the
// incident is then repeated only from its next event after a restart).
const maxKeptEvents = 512 << 10

func (o openIncident) stamp() stamp { return stamp{o.Revision, o.At} }

// out is the stamp of the latest state of it handed out after its opening
// (zero: none).
func (o openIncident) out() stamp { return stamp{o.OutRevision, o.OutAt} }

// endedBefore is the resolve a reopened incident's entry keeps (ok false:
// it never resolved, or was written by an older notifier).
func (o openIncident) endedBefore() (r ended, ok bool) {
	r = ended{stamp: stamp{o.EndedRevision, o.EndedAt}, unheard: o.EndedUnheard}
	return r, r.stamp != stamp{}
}

// ended is what is remembered of a resolved incident: its resolve's stamp
// and incident event (its tombstone's EventID).
type ended struct {
	stamp
	eventID string
	saved   bool     // its tombstone was written
	unheard []string // the routes that never heard of it (openIncident.Unheard)
}

// tombstoneWait is a resolve's event, its notification sent, waiting for
// its incident's tombstone to be written before it is settled.
type tombstoneWait struct {
	st   stamp
	done func(error)
}

// afterTombstone wraps done, the settling of a resolve's event (stamp
// st), so that it is settled only once the incident's tombstone is
// written: acked before, a crash (or a bucket that is down) would leave
// the incident open in the bucket, and the next notifier would repeat its
// page after its resolve, for ever. Its notification is not held back:
// only the ack waits. At most a quarter of max_ack_pending wait (a bucket
// down for long must not stop the consumer); past it, one is settled at
// once. The wrapper is called with p.mu held, as the schedule settles.
func (p *Processor) afterTombstone(id string, st stamp, done func(error)) func(error) {
	return func(err error) {
		if err == nil && p.tombstoneForgotten(id) {
			err = errTombstoneForgotten
		}
		if err != nil || p.tombstoneWritten(id, st) || p.tombstoneHeld >= p.cfg.Consumer.MaxAckPending/4 {
			done(err)
			return
		}
		if p.tombstoneWaits == nil {
			p.tombstoneWaits = map[string][]tombstoneWait{}
		}
		p.tombstoneWaits[id] = append(p.tombstoneWaits[id], tombstoneWait{st, done})
		p.tombstoneHeld++
	}
}

// stateUnwritten tells whether n's state of its incident is not in the
// bucket yet: a resolve's tombstone, or an open state after the opening
// not written as handed out (Out; a repeat's was), which it then marks
// for writing. p.mu is held.
func (p *Processor) stateUnwritten(n *note) bool {
	r, _ := n.send.(*routed)
	if p.store == nil || n.repeat > 0 || n.opening || r == nil || r.env == nil {
		return false // nothing is older than an opening
	}
	st := stamp{r.st.Revision, r.env.Time}
	if n.resolved {
		return !p.tombstoneWritten(n.incidentID, st)
	}
	inc, ok := p.open[n.incidentID]
	if !ok || !inc.written.before(st) {
		return false
	}
	if inc.out().before(st) {
		inc.OutRevision, inc.OutAt = st.rev, st.at
		p.open[n.incidentID] = inc
	}
	// Its labels unchanged, the saver would not write it: written for
	// the notifications that go out, not for every event.
	p.changed(n.incidentID)
	return true
}

// stateWriteWait bounds how long a notification waits for its state to be
// written (writeState).
const stateWriteWait = time.Second

// writeState writes what changed of the open incidents, a notification's
// state among them (a resolve's tombstone, an acknowledgement, an
// update), before the notification goes out: sent first, a kill before
// the saver's pass left nothing that said a newer state went out, and
// the incident's older state, its ack lost too, came again to the next
// notifier ahead of the newer one and went out after it (an opening, a
// PagerDuty trigger, after the resolve): the next notifier drops what is
// older than what it reads (endedFor, supersededFor). A bucket that
// cannot be written holds back no notification: the wait is bounded, and
// not made while the saver's last pass failed.
func (p *Processor) writeState(ctx context.Context) {
	if p.storeFailing.Load() {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stateWriteWait)
	defer cancel()
	if err := p.saveChanged(ctx); err != nil {
		p.log.Warn().Err(err).Msg("an incident's state not written before its notification went out: a kill before it is may send an older state after it")
	}
}

// tombstoneWritten tells whether the bucket holds incident id at st or
// later: its tombstone written, or a later state (reopened). p.mu is
// held.
func (p *Processor) tombstoneWritten(id string, st stamp) bool {
	if inc, open := p.open[id]; open {
		return !inc.stamp().before(st)
	}
	r, ok := p.resolved.Peek(id)
	return ok && r.saved && !r.before(st)
}

// tombstoneForgotten tells whether resolved incident id left memory (the
// resolved ones' bound, past maxResolved resolves while the bucket was
// down) before its tombstone was written: the saver will not write it.
// p.mu is held.
func (p *Processor) tombstoneForgotten(id string) bool {
	_, open := p.open[id]
	return !open && !p.resolved.Contains(id)
}

// errTombstoneForgotten settles a resolve whose tombstone the saver will
// not write: its event comes again, and is tracked again.
var errTombstoneForgotten = errors.New("notifier: the resolve left memory before its tombstone was written (too many resolves while the state bucket could not be written): it comes again")

// releaseTombstoneWaits settles with err the resolves of incident id
// waiting for a write at st or later (every incident's, and all, with
// id ""). p.mu is held.
func (p *Processor) releaseTombstoneWaits(id string, st stamp, err error) {
	for wid, ws := range p.tombstoneWaits {
		if id != "" && wid != id {
			continue
		}
		kept := ws[:0]
		for _, w := range ws {
			if id != "" && st.before(w.st) {
				kept = append(kept, w)
				continue
			}
			w.done(err)
			p.tombstoneHeld--
		}
		if len(kept) == 0 {
			delete(p.tombstoneWaits, wid)
		} else {
			p.tombstoneWaits[wid] = kept
		}
	}
}

// OpenStore keeps the open incidents, and the resolved ones' tombstones,
// across restarts.
type OpenStore interface {
	Put(ctx context.Context, inc openIncident) error
	// All returns every entry kept, for a term that begins: the writes
	// after it expect what it read.
	All(ctx context.Context) ([]openIncident, error)
	// List returns every entry kept, to be shown: nothing else changes.
	List(ctx context.Context) ([]openIncident, error)
}

// kvOpen is an OpenStore on a JetStream key-value bucket: one key per
// incident, expiring after StateConfig.MaxAge.
//
// A write expects the key at the revision this instance last read or
// wrote (compare-and-set), so that a write of a holder whose term ended,
// landing late (its process paused between its check of the lease and
// the write, or its bytes held on a stalled link), cannot replace what
// the next holder wrote since: it would bring back, say, an incident the
// next holder resolved, and the holder after would page it after its
// resolve. A write refused so is made anyway (as a plain put) when this
// instance still holds the lease (holds): the other write was the late
// one.
type kvOpen struct {
	kv jetstream.KeyValue
	// holds tells whether this instance still holds the lease (nil:
	// always, as without a lease).
	holds func() bool
	mu    sync.Mutex
	// revs are the revisions of the open incidents' keys as this instance
	// last read or wrote them; a key not here is expected to be absent.
	revs map[string]uint64
}

// openKVStore creates (or updates) the bucket of cfg.
func openKVStore(ctx context.Context, js jetstream.JetStream, cfg StateConfig) (*kvOpen, error) {
	kvc := jetstream.KeyValueConfig{
		Bucket:      cfg.Bucket,
		Description: "aiops notifier: the labels of the open incidents, which inhibit (key open.<incident id>), the Jira issues its search may not show yet (jira.<integration>.<incident id>), and the integrations that took a notification another integration of its receiver failed (sent.<idempotency key>)",
		History:     1,
		TTL:         cfg.MaxAge,
		Replicas:    cfg.Replicas,
		Storage:     jetstream.FileStorage,
	}
	kv, err := bus.AskAgain(ctx, func() (jetstream.KeyValue, error) { return js.CreateOrUpdateKeyValue(ctx, kvc) })
	if err != nil {
		return nil, fmt.Errorf("notifier: bucket %s: %w", cfg.Bucket, err)
	}
	return &kvOpen{kv: kv, revs: map[string]uint64{}}, nil
}

// openKey is the key of incident id.
func openKey(id string) string { return "open." + bus.KeyToken(id) }

// fenceBy makes a write refused for another instance's write since fail
// (stage.ErrFenced) while holds says this instance lost the lease.
func (s *kvOpen) fenceBy(holds func() bool) { s.holds = holds }

func (s *kvOpen) Put(ctx context.Context, inc openIncident) error {
	data, err := json.Marshal(inc)
	if err != nil {
		return err
	}
	key := openKey(inc.ID)
	s.mu.Lock()
	rev := s.revs[key]
	s.mu.Unlock()
	rev, err = s.kv.Update(ctx, key, data, rev)
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		// Written by another instance since this one read it
		// (ErrKeyExists would miss the conflict code of a replicated
		// bucket).
		if s.holds != nil && !s.holds() {
			return fmt.Errorf("%w: open incident %s was written by the next holder", stage.ErrFenced, inc.ID)
		}
		rev, err = s.kv.Put(ctx, key, data)
	}
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	// A key not in revs costs one write more (expected absent, refused,
	// then put while this instance holds the lease), so revs keeps the
	// open incidents only: not the tombstones, which are many, and not
	// past a bound (incidents forgotten without their resolve).
	if inc.Resolved {
		delete(s.revs, key)
		return nil
	}
	if len(s.revs) >= 2*MaxOpen {
		clear(s.revs)
	}
	s.revs[key] = rev
	return nil
}

// All reads every entry (read), and expects the revisions it read in the
// writes after it.
func (s *kvOpen) All(ctx context.Context) ([]openIncident, error) {
	out, revs, err := s.read(ctx, false)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.revs = revs // a new term's: what an earlier one knew may be stale
	s.mu.Unlock()
	return out, nil
}

// List reads every entry (read).
// It leaves out what each entry keeps of the notifications sent (Sent,
// Events: up to maxAllKeptEvents together), which a listing shows not.
func (s *kvOpen) List(ctx context.Context) ([]openIncident, error) {
	out, _, err := s.read(ctx, true)
	return out, err
}

// listed is what List reads of an entry: the kept notifications (Sent,
// Events), shadowed by fields of their own JSON names, are skipped, not
// copied.
type listed struct {
	openIncident
	Sent   skipped `json:"sent"`
	Events skipped `json:"events"`
}

// skipped takes a JSON value and keeps nothing of it.
type skipped struct{}

func (*skipped) UnmarshalJSON([]byte) error { return nil }

// read reads every entry in one watch of the bucket (its current values,
// then a nil), not one request per key, with the open ones' revisions;
// shown only (List) when forListing.
func (s *kvOpen) read(ctx context.Context, forListing bool) ([]openIncident, map[string]uint64, error) {
	w, err := s.kv.Watch(ctx, "open.>", jetstream.IgnoreDeletes())
	if err != nil {
		return nil, nil, err
	}
	defer w.Stop()
	var out []openIncident
	revs := map[string]uint64{}
	for {
		var e jetstream.KeyValueEntry
		select {
		case e = <-w.Updates():
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		}
		if e == nil {
			return out, revs, nil
		}
		var inc openIncident
		if forListing {
			var l listed
			if err := json.Unmarshal(e.Value(), &l); err != nil || l.ID == "" {
				continue
			}
			inc = l.openIncident
		} else if err := json.Unmarshal(e.Value(), &inc); err != nil || inc.ID == "" {
			continue // not ours; the next put of that incident mends it
		}
		if !inc.Resolved && e.Key() == openKey(inc.ID) {
			revs[e.Key()] = e.Revision()
		}
		out = append(out, inc)
	}
}

// WithOpenStore keeps the open incidents in store, read by restoreOpen.
// A store that fences (kvOpen) is told whether this instance still holds
// the lease.
func (p *Processor) WithOpenStore(store OpenStore) *Processor {
	p.store = store
	if f, ok := store.(interface{ fenceBy(holds func() bool) }); ok {
		f.fenceBy(func() bool { return !p.fencedOff() })
	}
	return p
}

// stamp orders the states of one incident: its revision, then its event
// time (a producer whose revisions are all 0 is still ordered).
type stamp struct {
	rev int
	at  time.Time
}

func (s stamp) before(o stamp) bool { return s.rev < o.rev || s.rev == o.rev && s.at.Before(o.at) }

// trackOpen records the state of incident id (its labels, resolved or not,
// at its stamp; eventID its incident event) as what it inhibits by, and
// reports whether what is kept of it changed. An older state than the one kept, or than its resolve,
// changes nothing. p.mu is held.
func (p *Processor) trackOpen(id, eventID string, labels map[string]string, resolved bool, st stamp, shown shownAs) bool {
	old, had := p.open[id]
	if had && st.before(old.stamp()) {
		return false // an older state, come again
	}
	if r, ok := p.resolved.Peek(id); ok && !had && !r.before(st) {
		return false // the resolve or an older state of a resolved incident
	}
	switch {
	case resolved:
		p.resolved.Add(id, ended{stamp: st, eventID: eventID})
		p.keptEvents -= eventsSize(old)
		delete(p.open, id)
		p.trackSource(id, nil, true)
		return true // its tombstone, also for one not seen open
	case !had && len(p.open) >= MaxOpen:
		if !p.loggedFull {
			p.loggedFull = true
			p.log.Error().Int("max", MaxOpen).Msg("too many open incidents: the newest inhibit nothing")
		}
		return false
	}
	endedBefore, _ := old.endedBefore()
	if r, ok := p.resolved.Peek(id); ok && !had {
		endedBefore = r // reopened: its entry replaces the tombstone
	}
	p.resolved.Remove(id)
	p.releaseTombstoneWaits(id, st, nil)
	now := p.now()
	p.open[id] = openIncident{ID: id, Labels: labels, Revision: st.rev, At: st.at, Opened: shown.opened, Title: shown.title,
		Sent: old.Sent, Events: old.Events, Seen: now, OutRevision: old.OutRevision, OutAt: old.OutAt,
		EndedRevision: endedBefore.rev, EndedAt: endedBefore.at, EndedUnheard: endedBefore.unheard, saved: old.saved, written: old.written}
	p.trackSource(id, labels, false)
	// Seen is written at least every eighth of max_age: restored, an
	// older one could forget an incident that has events
	return !had || !maps.Equal(old.Labels, labels) || old.Title != shown.title || now.Sub(old.saved) >= p.cfg.State.WithDefaults().MaxAge/8
}

// shownAs is what GET /api/v2/alerts shows of an open incident beside its
// labels.
type shownAs struct {
	opened time.Time
	title  string
}

// endedFor tells whether the resolve of incident id that this notifier
// knows (in this term, or from its tombstone) stands for the incident's
// state at st to route, when the schedule knows nothing of the pair
// (after a restart, or once the slot was forgotten): a state older than
// the resolve, which a receiver that heard of the incident would see
// after its resolve (the resolve's own event is acked only once it went
// out), or the resolve itself when the route's receiver never heard of
// the incident (its tombstone's Unheard). Without it, a flap whose
// opening and resolve came again after a crash (their acks lost with
// the server's consumer state, flushed every 100 ms) paged for the
// opening, due at once on a clock that newer events had moved past its
// group_wait, then for its resolve. An incident reopened since keeps that
// resolve in its entry (endedBefore). p.mu is held.
func (p *Processor) endedFor(id string, st stamp, route string) bool {
	r, ok := p.resolved.Peek(id)
	if inc, open := p.open[id]; open {
		r, ok = inc.endedBefore()
	}
	if !ok || p.schedule.has(id, route) {
		return false
	}
	return st.before(r.stamp) || !r.before(st) && slices.Contains(r.unheard, route)
}

// supersededFor tells whether a newer state of open incident id than st
// was handed out (here, or by the notifier before, as its entry read at
// the term's start says: Out) that goes to route too: it went out there,
// or its event, not settled, comes again, so it stands for st. Without
// it, a notifier killed right after an update went out, before the saver
// wrote that it did, was followed by one that got the older state again
// (its ack, settled by the newer one's send, lost with the kill) before
// the newer one, and sent it after the newer had gone out. A newer state
// that was only known (written with the incident's labels) stands for
// nothing yet: its opening, dropped for it after a graceful stop, left
// the slot to the update, which cannot tell that no receiver heard, and
// a flap's resolve went out alone. p.mu is held.
func (p *Processor) supersededFor(id string, st stamp, route *amconfig.Route) bool {
	inc, ok := p.open[id]
	if !ok || !st.before(inc.out()) {
		return false
	}
	return p.schedule.has(id, route.Path) || slices.Contains(p.routes.Route.Match(inc.Labels), route)
}

// unheard records, with the tombstone of incident id resolved at st,
// the routes whose receivers never heard of it (offer dropped the resolve
// as a flap). Called in the same hold of p.mu as the resolve's trackOpen,
// before the saver can take its tombstone, so that the tombstone the
// resolve's ack waits for says so. p.mu is held.
func (p *Processor) unheard(id string, st stamp, routes []string) {
	r, ok := p.resolved.Peek(id)
	if !ok || st.before(r.stamp) || r.before(st) || slices.Equal(r.unheard, routes) {
		return
	}
	r.unheard = routes
	p.resolved.Add(id, r)
	p.changed(id)
}

// recordSent keeps with n's open incident that n went out to its route at
// (event time), and n's incident event, for a notifier after a restart to
// repeat it (restoreSent). p.mu is held.
func (p *Processor) recordSent(n *note, at time.Time) {
	inc, ok := p.open[n.incidentID]
	r, _ := n.send.(*routed)
	if p.store == nil || n.resolved || !ok || r == nil || r.env == nil {
		return
	}
	data, kept := inc.Events[n.eventID]
	if !kept {
		var err error
		if data, err = json.Marshal(r.env); err != nil || len(data) > maxKeptEvents {
			return
		}
	}
	rec := sentRecord{Route: n.route, EventID: n.eventID, At: at, Muted: n.muted, Repeat: n.repeat}
	rec.HeardBy, rec.Knows = p.schedule.knowledge(n)
	rec.Integrations, rec.Receiver = p.integrationsKey(n.receiver), n.receiver
	sent := []sentRecord{rec}
	events := map[string]json.RawMessage{n.eventID: data}
	size := len(data)
	for _, s := range inc.Sent {
		if s.Route == n.route {
			continue
		}
		d, ok := inc.Events[s.EventID]
		if _, counted := events[s.EventID]; !counted {
			if !ok || size+len(d) > maxKeptEvents {
				continue // its route repeats from the incident's next event
			}
			size += len(d)
			events[s.EventID] = d
		}
		sent = append(sent, s)
	}
	if grown := p.keptEvents + size - eventsSize(inc); grown > maxAllKeptEvents {
		if !p.loggedKeptFull {
			p.loggedKeptFull = true
			p.log.Warn().Int("max_bytes", maxAllKeptEvents).Msg("the incident events kept for repeats after a restart are at their bound: the newest incidents repeat only from their next event after a restart")
		}
		return
	}
	p.keptEvents += size - eventsSize(inc)
	inc.Sent, inc.Events = sent, events
	p.open[n.incidentID] = inc
	p.changed(n.incidentID)
}

// integrationsKey identifies the integrations of the receiver named name,
// in their order (where each is in the file: its kind and position), so
// that a record's HeardBy is read only against those it was made with.
func (p *Processor) integrationsKey(name string) string {
	igs := p.integrations[name]
	paths := make([]string, len(igs))
	for i, ig := range igs {
		paths[i] = ig.path
	}
	return strconv.FormatUint(event.PartsHash(paths...), 16)
}

// maxAllKeptEvents bounds the incident events all open incidents keep for
// repeats (recordSent), in memory and in the bucket: a storm of open
// incidents with large events must not take the notifier's memory.
var maxAllKeptEvents = 64 << 20

// eventsSize is the bytes of the incident events inc keeps.
func eventsSize(inc openIncident) int {
	n := 0
	for _, d := range inc.Events {
		n += len(d)
	}
	return n
}

// restoreSent gives the schedule what went out last of a restored open
// incident to each of its routes (one no longer in the configuration is
// left out). p.mu is held.
func (p *Processor) restoreSent(inc openIncident) {
	for _, rec := range inc.Sent {
		env, err := event.Parse(inc.Events[rec.EventID])
		if err != nil {
			continue
		}
		r, err := p.routedOf(env)
		if err != nil {
			continue
		}
		// Looked up among every route, not only those its labels match:
		// a route the incident matched before its labels changed is sent
		// its later states (withRoutesBefore), and its slot must come
		// back for the resolve to reach it. Not when the route there
		// now sends to another receiver than the record's (the file
		// changed, its routes moved): that one never heard of it.
		route := p.routeAt(rec.Route)
		if route == nil {
			continue
		}
		if !slices.Contains(r.routes, route) {
			if rec.Receiver == "" || rec.Receiver != route.Receiver {
				continue
			}
			r.routes = append(r.routes, route)
		}
		heardBy, knows := rec.HeardBy, rec.Knows
		if rec.Integrations != p.integrationsKey(route.Receiver) {
			heardBy, knows = 0, false // its bits name other integrations now
		}
		p.schedule.restoreSent(&note{incidentID: inc.ID, route: route.Path, receiver: route.Receiver, eventID: rec.EventID, at: env.Time,
			send: r, muted: rec.Muted, repeat: rec.Repeat,
			timing: Timing{Wait: route.GroupWait, Interval: route.GroupInterval, Repeat: route.RepeatInterval}}, rec.At, heardBy, knows)
	}
}

// recallHeard gives n's slot, just made by a later state than the
// opening, what the incident's record of n's route says reached the
// receiver: a slot the schedule forgot at its bound (MaxSlots) knew it,
// and without it every integration was sent the update as a first
// notice, which reads as a second opening (asSeenBy). p.mu is held.
func (p *Processor) recallHeard(n *note) {
	for _, rec := range p.open[n.incidentID].Sent {
		if rec.Route == n.route && rec.Receiver == n.receiver && rec.Integrations == p.integrationsKey(n.receiver) {
			p.schedule.recallHeard(n, rec.HeardBy, rec.Knows)
			return
		}
	}
}

// routeAt is the route at path in the file whose receiver is known (nil:
// none). p.routes is set.
func (p *Processor) routeAt(path string) *amconfig.Route {
	var at *amconfig.Route
	p.routes.Route.Walk(func(route *amconfig.Route) {
		if _, ok := p.routes.Receiver(route.Receiver); ok && at == nil && route.Path == path {
			at = route
		}
	})
	return at
}

// changed marks incident id to be written by the saver. p.mu is held.
func (p *Processor) changed(id string) {
	if p.store == nil {
		return
	}
	p.unsaved[id] = struct{}{}
	select {
	case p.saveNow <- struct{}{}:
	default:
	}
}

// fencedOff tells whether the store is the next holder's: the lease was
// lost, or ran out by this instance's clock.
func (p *Processor) fencedOff() bool {
	return p.fenced.Load() || p.holds != nil && !p.holds()
}

// saveOpen writes what changed of the open incidents to the store, and
// again the open ones written more than a refresh ago (so that they do not
// expire), after forgetting the quiet ones (forgetQuietOpen); what fails
// is written at the next pass. Nothing is written once the lease is lost
// (fenced): the next holder owns the bucket. A pass waits for the one
// under way until ctx ends, and then writes nothing.
func (p *Processor) saveOpen(ctx context.Context) error { return p.save(ctx, true) }

// saveChanged is saveOpen without its sweeps over every open incident
// (forgetting the quiet ones, refreshing old entries), which the saver's
// passes make: the pass a notification of a later state waits for
// (writeState) then costs what changed, not two scans of
// every open incident under p.mu (with 3,000 open, a quarter of the
// notifier's CPU on a burst of updates, BenchmarkLaterStates), and the
// notification waits for no refresh of others' entries.
func (p *Processor) saveChanged(ctx context.Context) error { return p.save(ctx, false) }

// save is a pass of saveOpen, or of saveChanged without sweep.
func (p *Processor) save(ctx context.Context, sweep bool) error {
	if p.store == nil {
		return nil
	}
	select {
	case p.saving <- struct{}{}:
	default:
		select {
		case p.saving <- struct{}{}:
		case <-ctx.Done():
			return fmt.Errorf("notifier: another pass is writing the open incidents: %w", ctx.Err())
		}
	}
	defer func() { <-p.saving }()
	if p.fencedOff() {
		return nil
	}
	now := p.now()
	p.mu.Lock()
	if sweep {
		p.forgetQuietOpen(now)
	}
	var todo []openIncident
	for id := range p.unsaved {
		if inc, ok := p.open[id]; ok {
			todo = append(todo, inc)
		} else if r, ok := p.resolved.Peek(id); ok {
			todo = append(todo, openIncident{ID: id, Revision: r.rev, At: r.at, Resolved: true, EventID: r.eventID, Unheard: r.unheard})
		} else {
			p.releaseTombstoneWaits(id, stamp{rev: math.MaxInt}, errTombstoneForgotten)
		}
	}
	if sweep {
		refresh := p.cfg.State.WithDefaults().MaxAge - 4*saveEvery
		for id, inc := range p.open {
			if _, taken := p.unsaved[id]; !taken && now.Sub(inc.saved) >= refresh {
				todo = append(todo, inc)
			}
		}
	}
	clear(p.unsaved)
	p.mu.Unlock()
	results := p.putAll(ctx, todo)
	failed, fenced := 0, false
	var firstErr error
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, inc := range todo {
		if err := results[i]; err != nil {
			// written at the next pass; one fenced off, by a pass that
			// holds the lease again (a renewal just late), else the next
			// holder reads the bucket afresh
			p.unsaved[inc.ID] = struct{}{}
			if errors.Is(err, stage.ErrFenced) {
				fenced = true
				continue
			}
			if failed == 0 {
				firstErr = err
			}
			failed++
			continue
		}
		if cur, ok := p.open[inc.ID]; ok && !inc.Resolved {
			cur.saved = now
			if cur.written.before(inc.out()) {
				cur.written = inc.out()
			}
			p.open[inc.ID] = cur
		}
		if r, ok := p.resolved.Peek(inc.ID); ok && inc.Resolved && r.stamp == inc.stamp() {
			r.saved = true
			p.resolved.Add(inc.ID, r)
			p.releaseTombstoneWaits(inc.ID, inc.stamp(), nil)
		}
	}
	if fenced {
		return nil
	}
	p.storeFailing.Store(failed > 0)
	if failed > 0 {
		// the first error only: a stalled bucket fails them all alike
		return fmt.Errorf("notifier: %d open incidents not saved (retried): %w", failed, firstErr)
	}
	return nil
}

// putsAtOnce bounds the writes of a pass in flight together.
const putsAtOnce = 64

// putAll writes the entries of a pass at once (at most putsAtOnce in
// flight), each one's error in its place (stage.ErrFenced once the lease
// is lost). Each is a round trip to the bucket, and one at a time a pass
// cost them in series: the pass a notification waits for writes the
// states of the notes handed out with it too (hand), in about one.
func (p *Processor) putAll(ctx context.Context, todo []openIncident) []error {
	errs := make([]error, len(todo))
	var wg sync.WaitGroup
	inFlight := make(chan struct{}, putsAtOnce)
	for i, inc := range todo {
		inFlight <- struct{}{}
		wg.Go(func() {
			defer func() { <-inFlight }()
			errs[i] = stage.ErrFenced
			if !p.fencedOff() {
				errs[i] = p.store.Put(ctx, inc)
			}
		})
	}
	wg.Wait()
	return errs
}

// forgetQuietOpen forgets the open incidents of which no notifier took an
// event for max_age (forgetOpen): the saver does it before each pass, and
// Tick without a bucket (state.disabled), so that the incidents whose
// resolve was lost do not pile up in memory, repeated and inhibiting,
// until MaxOpen. p.mu is held.
func (p *Processor) forgetQuietOpen(now time.Time) {
	maxAge := p.cfg.State.WithDefaults().MaxAge
	for id, inc := range p.open {
		if now.Sub(inc.Seen) >= maxAge {
			p.forgetOpen(id) // a repeat's record changed it, not an event
		}
	}
}

// forgetOpen drops open incident id, of which no notifier took an event
// for max_age (its resolve lost, or its correlator's state): it inhibits
// and repeats no more, and its entry, written no more, expires. Its next
// event brings it back. p.mu is held.
func (p *Processor) forgetOpen(id string) {
	p.keptEvents -= eventsSize(p.open[id])
	delete(p.open, id)
	delete(p.unsaved, id)
	p.trackSource(id, nil, true)
	p.schedule.forgetIncident(id)
	p.log.Warn().Str("incident_id", id).Dur("max_age", p.cfg.State.WithDefaults().MaxAge).
		Msg("open incident without any event for notifier.state.max_age forgotten: it inhibits and repeats no more")
}

// saveEvery is how often the saver writes again what failed, and looks
// for entries to refresh.
const saveEvery = 30 * time.Second

// lastSave bounds the saver's last pass, after the drain (the stage's
// stop takes up to 22 s of the service's 25; the lease's release follows).
const lastSave = time.Second

// saveLoop is the saver of a term: it writes the open incidents that
// changed as soon as Write marks them, and every saveEvery what failed and
// the entries to refresh, apart from the deliveries, so that a slow bucket
// holds back no notification; a last pass when the term ends.
func (p *Processor) saveLoop(ctx context.Context) {
	if p.store == nil {
		return
	}
	pass := func(ctx context.Context) {
		ctx, cancel := context.WithTimeout(ctx, saveEvery)
		defer cancel()
		if err := p.saveOpen(ctx); err != nil {
			p.log.Warn().Err(err).Msg("open incidents not saved: a restart before they are would forget that they inhibit")
		}
	}
	t := time.NewTicker(saveEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			// after the drain: within the service's stop budget
			last, cancel := context.WithTimeout(context.WithoutCancel(ctx), lastSave)
			pass(last)
			cancel()
			return
		case <-p.saveNow:
		case <-t.C:
		}
		pass(ctx)
	}
}

// forgotten tells whether the entry inc is of an open incident of which
// no notifier took an event for max_age at now: its holder forgot it
// (forgetOpen), and its last write stays in the bucket until the TTL.
// An older notifier's entry has no Seen, and is kept.
func (p *Processor) forgotten(inc openIncident, now time.Time) bool {
	return !inc.Resolved && !inc.Seen.IsZero() && now.Sub(inc.Seen) >= p.cfg.State.WithDefaults().MaxAge
}

// restoreOpen begins a term (at start, or when this instance takes the
// lease): it forgets what it knew of the open incidents, which the holder
// between may have changed, and reads them from the store.
func (p *Processor) restoreOpen(ctx context.Context) error {
	if p.store == nil || p.routes == nil {
		return nil
	}
	all, err := p.store.All(ctx)
	if err != nil {
		return fmt.Errorf("notifier: open incidents: %w", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	// what an earlier term held goes back to the stream (its Flush
	// released it already; a term begun without one must not hang it)
	p.releaseTombstoneWaits("", stamp{}, ErrStopping)
	clear(p.open)
	p.keptEvents = 0
	clear(p.unsaved)
	p.sources = nil
	p.resolved.Purge()
	p.fenced.Store(false)
	p.termBegun.Store(true)
	open := 0
	for _, inc := range all {
		if p.forgotten(inc, p.now()) {
			continue // no event for max_age: forgotten (forgetOpen)
		}
		if inc.Resolved {
			p.resolved.Add(inc.ID, ended{stamp: inc.stamp(), eventID: inc.EventID, saved: true, unheard: inc.Unheard})
			continue
		}
		// never saved by this instance: written again at the saver's first
		// refresh, so that it does not expire, unless no notifier took an
		// event of it for max_age
		if p.trackOpen(inc.ID, "", inc.Labels, false, inc.stamp(), shownAs{inc.Opened, inc.Title}) {
			open++
		}
		if cur, ok := p.open[inc.ID]; ok {
			if !inc.Seen.IsZero() {
				cur.Seen = inc.Seen // kept (an older notifier's entry has none: from now)
			}
			cur.OutRevision, cur.OutAt, cur.written = inc.OutRevision, inc.OutAt, inc.out()
			cur.EndedRevision, cur.EndedAt, cur.EndedUnheard = inc.EndedRevision, inc.EndedAt, inc.EndedUnheard
			p.open[inc.ID] = cur
		}
		if cur, ok := p.open[inc.ID]; ok && len(inc.Sent) > 0 && p.keptEvents+eventsSize(inc) <= maxAllKeptEvents {
			cur.Sent, cur.Events = inc.Sent, inc.Events
			p.open[inc.ID] = cur
			p.keptEvents += eventsSize(inc)
			p.restoreSent(cur)
		}
	}
	p.schedule.forgetIdle(func(id string) bool { _, ok := p.open[id]; return ok })
	p.log.Info().Int("open_incidents", open).Msg("open incidents restored")
	return nil
}
