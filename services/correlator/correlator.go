// Package correlator is the correlation service: it consumes alerts,
// anomalies (the detector's and the log miner's error bursts) and changes,
// groups them into incidents with pkg/correlate, and publishes every
// incident transition (opened, updated, acknowledged, resolved, reopened)
// as an incident event on events.incident.<service>, which the writer
// stores in incidents and incident_history and the notifier delivers.
//
// It runs on the stage runtime with one worker (the state is one), ticks
// every second to let event time move on while nothing arrives, and saves
// its state to a JetStream object store every few seconds and on shutdown.
package correlator

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/bus"
	"github.com/aiops-dev/aiops/pkg/correlate"
	"github.com/aiops-dev/aiops/pkg/errs"
	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/pkg/httpapi"
	"github.com/aiops-dev/aiops/pkg/service"
	"github.com/aiops-dev/aiops/pkg/stage"
)

// Processor is the correlator as a stage.Processor and stage.Ticker; its
// state is one correlate.Correlator.
type Processor struct {
	cfg Config
	cat *correlate.Catalog // what c was made with (forget makes another)
	log zerolog.Logger
	now func() time.Time

	mu          sync.Mutex
	c           *correlate.Correlator
	lastArrival time.Time // wall clock of the last signal, not an alert sent again nor a heartbeat
	lastTick    time.Time
	// lag is the longest delivery lag (observed, else arrival, less the
	// event's time) up to maxIdleLag of a signal new to the correlator,
	// seen within lagMemory (lags): the idle advance keeps event time
	// that far behind the wall clock (Tick).
	lag time.Duration
	// lags are the lags that may still be the longest of the last
	// lagMemory: each shorter than the one before and seen later, in
	// whole seconds from -maxAhead to maxIdleLag (so at most 4,201).
	lags []seenLag
	// release: the next tick resolves the restored incidents whose
	// services are another partition's now (Correlator.Release).
	release  bool
	commands []pendingCommand // applied by the next tick
	// unstored are the ids of commands applied whose event the stream
	// has not stored and no checkpoint holds yet (kept only with a state
	// store): a command given again under one of them is answered
	// ErrNotStored, not ErrApplied's success, so that a crash before
	// either cannot lose a command whose repeat was acked.
	unstored map[string]bool
	// unsaved are the events of the commands applied that no saved
	// checkpoint holds yet (with a state store), due those one holds,
	// which the next tick publishes: a command's event goes out only once
	// a saved state holds the command (and its outbox the event).
	// Published before, it would stay downstream after a crash that
	// restores a state without the command, and the command, given again
	// (a NATS redelivery, an API retry), would make a second event, timed
	// at another event time and so under another id: a second page, a
	// second row. checkpointSoon asks the runner for that checkpoint at
	// once.
	unsaved, due   []commandEvent
	checkpointSoon func()
	// tickSoon asks the runner for the tick that applies a command now,
	// not at the next second's boundary: a burst of commands over NATS,
	// taken one at a time, would go at one a second.
	tickSoon func()
	// holds tells whether the lease is still this instance's by its own
	// clock (bus.Lease.Valid; nil: no lease): a paused instance must not
	// apply a command, or save a state, the next holder owns.
	holds func() bool
	// bound ends a context at the lease's deadline (bus.Lease.Bound), so
	// a save that outlasts the term is cut short rather than landing over
	// the next holder's.
	bound func(context.Context) (context.Context, context.CancelFunc)
	// leading is true while this instance consumes (holds the lease) and
	// its state is restored: a standby's state is not current, nor one
	// still restoring, so its API refuses.
	leading atomic.Bool
	// restored is closed once the term's state is restored (newTerm).
	restored chan struct{}
	// catchUpUntil (wall clock, Unix ns) is when the signals delivered
	// before the restore and not acked (a crash before their save) have
	// surely come again: until then an incident a command names may be
	// one they make again, not one unknown (ErrCatchingUp).
	catchUpUntil atomic.Int64
	// inFlight are the incident events Process emitted that the stream
	// has not stored yet (kept only with a state store): a checkpoint
	// saves them in its outbox, sent after a restart, since the state it
	// saves made them.
	inFlight *stage.InFlight
	// partition says which signals are this instance's (nil: all).
	partition *correlate.Partitioner
}

// NewProcessor builds the processor without a network: it reads the
// catalog and checks the rules.
func NewProcessor(cfg Config, log zerolog.Logger, now func() time.Time) (*Processor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	var cat *correlate.Catalog
	if cfg.Catalog != "" {
		var err error
		if cat, err = correlate.ReadCatalog(cfg.Catalog); err != nil {
			return nil, err
		}
		for _, w := range cat.Warnings {
			log.Warn().Str("catalog", cfg.Catalog).Msg(w)
		}
	}
	if cfg.Partition.Count > 1 {
		// A shared service's burst, an alert storm, a location burst and
		// what spreads now span the catalog's components, which
		// partitions split: each partition would see only its share.
		if *cfg.Rules.SharedServices {
			cfg.Rules.SharedServices = correlate.Flag(false)
			log.Info().Msg("rules.shared_services is off: partitions split a shared service's burst")
		}
		if *cfg.Rules.AlertStorms {
			cfg.Rules.AlertStorms = correlate.Flag(false)
			log.Info().Msg("rules.alert_storms is off: partitions split an alert storm")
		}
		if *cfg.Rules.LocationBursts {
			cfg.Rules.LocationBursts = correlate.Flag(false)
			log.Info().Msg("rules.location_bursts is off: partitions split a location burst")
		}
		if *cfg.Rules.UnplacedSignals {
			cfg.Rules.UnplacedSignals = correlate.Flag(false)
			log.Info().Msg("rules.unplaced_signals is off: a partition sees only its share of what spreads now")
		}
	}
	c, err := correlate.New(cfg.Rules, cat)
	if err != nil {
		return nil, err
	}
	if cfg.Partition.Count > 1 {
		c.Partitioned(cfg.Partition.Index, cfg.Partition.Count)
	}
	if now == nil {
		now = time.Now
	}
	p := &Processor{cfg: cfg, log: log, now: now, c: c, cat: cat}
	if cfg.Partition.Count > 1 {
		p.partition = correlate.NewPartitioner(cat, cfg.Partition.Count)
	}
	p.leading.Store(true) // alone, it is active; a Service with a lease says when
	return p, nil
}

// Process takes one event: alerts, anomalies and changes become signals;
// other kinds are acked and ignored (a filter that lets them through is
// harmless).
func (p *Processor) Process(ctx context.Context, in *event.Envelope, out stage.Emitter) error {
	s, ok, err := correlate.SignalOf(in)
	if err != nil || !ok {
		return err
	}
	if p.partition != nil && p.partition.OfSignal(s) != p.cfg.Partition.Index {
		return nil // another partition's
	}
	if !p.holding() {
		// Past the lease's deadline (paused, renewals hanging): the next
		// holder may have restored already; what this state made of the
		// signal would be published beside what that one makes.
		return fmt.Errorf("%w: signal %s given back", ErrStandby, s.EventID)
	}
	if p.inFlight != nil {
		if err := p.inFlight.Room(ctx); err != nil {
			// Taken in now, its incident events could be kept for no
			// checkpoint: it comes again once INCIDENTS stored what is
			// in flight (the runner's ticks send it again).
			return fmt.Errorf("correlator: signal %s: %w", s.EventID, err)
		}
		if !p.holding() { // the lease ran out while it waited
			return fmt.Errorf("%w: signal %s given back", ErrStandby, s.EventID)
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	arrived := p.now()
	if s.Observed.After(arrived.Add(maxAhead)) {
		// A producer's clock far ahead (published straight to NATS: the
		// gateway refuses it) would make every later report of the
		// member look older, old news, for as long: without it, the
		// event is judged by its own time.
		p.log.Debug().Str("event_id", s.EventID).Time("observed_time", s.Observed).Msg("observed time far ahead of the clock: not trusted")
		s.Observed = time.Time{}
		if !s.Claimed.IsZero() { // nor does it stand for the event's time
			s.Time = s.Claimed
		}
	}
	if s.Time.After(arrived.Add(maxAhead)) {
		// A producer's clock far ahead (published straight to NATS: the
		// gateway refuses it): its time would be the watermark, so every
		// incident's quiet period and reopen window would pass at once,
		// and go on passing (the snapshot keeps the watermark).
		return errs.Permanent(fmt.Errorf("correlator: event %s: time %s is more than %s ahead of the correlator's clock (%s): check the producer's clock",
			s.EventID, s.Time.UTC().Format(time.RFC3339), maxAhead, arrived.UTC().Format(time.RFC3339)))
	}
	before := p.c.Stats()
	ups := p.c.Observe(s)
	after := p.c.Stats()
	resent := s.Kind == correlate.SignalAlert && (after.Repeats > before.Repeats || after.Ignored > before.Ignored)
	if !resent || s.Observed.IsZero() || arrived.Sub(s.Observed) >= p.cfg.IdleAdvance {
		// An alert sent again, or a heartbeat (Watchdog), heard just now
		// carries its startsAt (a resolved one its endsAt) and moves no
		// event time: it does not hold the idle advance either.
		// Prometheus servers resending their firing alerts straight to
		// the gateway (one stored every few seconds with a few dozen
		// alerts, or the Watchdogs of a few dozen clusters) would hold
		// event time still, and an alert not sent again would never
		// reach its expiry (Member.Expires); as would the resends of
		// those that resolved together (Prometheus resends a resolved
		// alert for 15 minutes), and their incident resolve that much
		// past its quiet period. One delivered late holds it, as any
		// signal: event time must not run ahead of the resends still to
		// come.
		p.lastArrival = arrived
	}
	if after.Repeats == before.Repeats && s.Kind != correlate.SignalChange {
		// A repeat carries its alert's startsAt, hours old: no lag. Nor
		// is a change's (timed when the deploy began, sent when it
		// ended) one the signals that join incidents wait for.
		p.noteLag(s, arrived)
	}
	return p.emit(ups, out, p.inFlight != nil)
}

// Delivery lags the idle advance allows for (noteLag).
const (
	// maxIdleLag is the longest lag taken for one: Alertmanager holds a
	// new alert of a group for up to its group_interval (5m by default);
	// one later (an alert firing for hours that the correlator sees first
	// now, a history published late) is no delivery's lag.
	maxIdleLag = 10 * time.Minute
	// lagMemory is how long a lag counts after it was seen.
	lagMemory = time.Hour
)

// noteLag takes the delivery lag of s, which arrived at arrived, into
// p.lag. A producer whose clock is ahead (by up to maxAhead, what Process
// takes) makes it negative: event time then moves on ahead of the wall
// clock by as much, as it did before any lag was allowed for, instead of
// waiting for the wall clock to catch up with the skew before a quiet
// incident may resolve.
func (p *Processor) noteLag(s correlate.Signal, arrived time.Time) {
	lag := cmp.Or(s.Observed, arrived).Sub(s.Time)
	if lag > maxIdleLag || lag < -maxAhead {
		return
	}
	lag = lag.Truncate(time.Second) + time.Second // whole seconds: bounds p.lags
	for n := len(p.lags); n > 0 && p.lags[n-1].lag <= lag; n-- {
		p.lags = p.lags[:n-1]
	}
	p.lags = append(p.lags, seenLag{arrived, lag})
	p.expireLags(arrived)
}

// seenLag is a delivery lag and when it was seen (noteLag).
type seenLag struct {
	at  time.Time
	lag time.Duration
}

// expireLags forgets the lags seen more than lagMemory before now, and
// sets p.lag to the longest of the others.
func (p *Processor) expireLags(now time.Time) {
	i := 0
	for i < len(p.lags) && now.Sub(p.lags[i].at) > lagMemory {
		i++
	}
	p.lags = p.lags[i:]
	p.lag = 0
	if len(p.lags) > 0 {
		p.lag = p.lags[0].lag
	}
}

// maxAhead is how far ahead of the correlator's clock an event's time is
// taken, and its observed time trusted: the gateway's bound (ingest's
// max_event_future, 1 hour by default). The correlator keeps changes a
// signal on time could link past a watermark that far ahead.
const maxAhead = correlate.MaxAhead

// emit publishes ups; track keeps each in inFlight until the stream stored
// it (an input's outputs: a tick's are the runner's to hold).
func (p *Processor) emit(ups []correlate.Update, out stage.Emitter, track bool) error {
	observed := p.now().UTC()
	for _, u := range ups {
		e, err := correlate.Envelope(u, observed)
		if err != nil {
			// One that cannot be encoded must not keep the others (another
			// incident's resolution) from going out.
			p.log.Error().Err(err).Str("incident_id", u.State.IncidentID).Str("transition", string(u.Transition)).Msg("incident event dropped")
			continue
		}
		o := stage.Output{Event: e}
		if track {
			if o.Settled, o.StoredLate, err = p.inFlight.Track(e); err != nil {
				return err
			}
		}
		if err := out.Emit(o); err != nil {
			return err
		}
		p.log.Info().Str("incident_id", u.State.IncidentID).Str("transition", string(u.Transition)).
			Str("service", u.State.Service).Int("members", u.State.MemberCount).Msg("incident " + string(u.Transition))
	}
	return nil
}

// Tick applies the commands submitted since the last tick, and lets event
// time move on with the wall clock while no signal arrives (see
// Config.IdleAdvance), resolving quiet incidents and publishing held
// updates.
func (p *Processor) Tick(_ context.Context, now time.Time, out stage.Emitter) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.applyCommands(now, out)
	if !p.holding() {
		// Past the lease's deadline: time moved on for a state the next
		// holder may have restored; what it resolves is that one's to say.
		return nil
	}
	if p.release {
		p.release = false
		part := p.cfg.Partition.Index
		// The state does not say which count saved it: a durable both
		// layouts share (correlator-0 from 2 to 3) restores one saved in
		// the other count, so either change may have moved them.
		ups := p.c.Release(func(svc string) bool { return p.partition.Of(svc) == part },
			fmt.Sprintf("its services are another partition's now (the catalog or correlator.partition.count changed): partition %d of %d lets it go, and the other opens its own for what still fails", part, p.cfg.Partition.Count))
		if err := p.emit(ups, out, false); err != nil {
			return err
		}
	}
	first, step := p.lastTick.IsZero(), now.Sub(p.lastTick)
	p.lastTick = now
	if p.lastArrival.IsZero() {
		// Nothing arrived yet this term: the quiet counts from its first
		// tick, or a state restored while all is quiet would hold its
		// incidents open until the next signal.
		p.lastArrival = now
	}
	if first || now.Sub(p.lastArrival) < p.cfg.IdleAdvance || step <= 0 || p.c.Now().IsZero() {
		return nil
	}
	// No further than the longest recent delivery lag behind the wall
	// clock: an alert Alertmanager delivers group_wait after its startsAt
	// must not find event time past it, an incident resolved live that a
	// replay of the same events keeps open for it.
	to := p.c.Now().Add(step)
	p.expireLags(now)
	if limit := now.Add(-p.cfg.IdleAdvance - p.lag); to.After(limit) {
		to = limit
	}
	if !to.After(p.c.Now()) {
		return nil
	}
	return p.emit(p.c.Advance(to), out, false)
}

// Incidents returns the incidents in memory.
func (p *Processor) Incidents() []correlate.State {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.c.Incidents()
}

// InFlightOutputs is the incident events Process emitted that the stream
// has not stored yet (nil without a state store): the runner's ticks send
// again those whose publish failed; none once the lease ran out (the next
// holder publishes what its restored state makes).
func (p *Processor) InFlightOutputs() *stage.InFlight {
	if !p.holding() {
		return nil
	}
	return p.inFlight
}

// holding tells whether this instance still holds its lease (see holds).
func (p *Processor) holding() bool { return p.holds == nil || p.holds() }

// commandEvent is the incident event a command made and its caller's
// answer, told once the stream stored the event.
type commandEvent struct {
	event  *event.Envelope
	answer func(error)
}

// failUnsaved answers the commands whose events wait for a saved
// checkpoint, or for the next tick, with err: the term ended (the lease
// was lost, or the service stops). The next holder's state does not have
// those no saved checkpoint holds, and applies them when they come again
// (a NATS command is naked); those one holds, its outbox sends.
func (p *Processor) failUnsaved(err error) {
	p.mu.Lock()
	waiting := append(p.unsaved, p.due...)
	p.unsaved, p.due = nil, nil
	p.mu.Unlock()
	for _, w := range waiting {
		w.answer(err)
	}
}

// savedState is what a checkpoint saves: the state as bytes, the ids of
// the commands applied whose events were not stored yet (once the state
// is saved, the outbox saved before it holds their events), how many of
// the unsaved commands' events it holds (the first), and the incident
// events in flight, oldest first, those commands' among them, which the
// outbox must hold: the state made them.
type savedState struct {
	data     []byte
	unstored []string
	commands int
	flying   []bus.Message
}

// snapshot and restore are the state as bytes.
func (p *Processor) snapshot() (savedState, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	data, err := p.c.MarshalJSON()
	st := savedState{data: data, unstored: slices.Collect(maps.Keys(p.unstored)), commands: len(p.unsaved)}
	if p.inFlight != nil {
		st.flying = p.inFlight.Messages()
	}
	for _, c := range slices.Concat(p.due, p.unsaved) {
		m, merr := stage.Message(stage.Output{Event: c.event})
		err = errors.Join(err, merr)
		st.flying = append(st.flying, m)
	}
	return st, err
}

// saved records st as saved: its commands are held, and their events go
// out with the next tick, asked for at once.
func (p *Processor) saved(st savedState) {
	p.mu.Lock()
	for _, id := range st.unstored {
		delete(p.unstored, id)
	}
	n := min(st.commands, len(p.unsaved))
	p.due = append(p.due, p.unsaved[:n]...)
	p.unsaved = slices.Delete(p.unsaved, 0, n)
	p.mu.Unlock()
	if n > 0 && p.tickSoon != nil {
		p.tickSoon()
	}
}

func (p *Processor) restore(data []byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	// A new term: the time spent standing by is not event time passing
	// (what the last term had in flight, newTerm cleared).
	p.lastTick, p.lastArrival, p.lag, p.lags = time.Time{}, time.Time{}, 0, nil
	// The catalog may have changed since the save, and a component moved
	// to another partition with it: the first tick lets its incidents go.
	p.release = p.partition != nil
	return p.c.UnmarshalJSON(data)
}

// savedTogether tells whether the outbox and the state were saved by one
// checkpoint (tagged alike): then the outbox holds only events the state
// made, and goes out whole. Told apart (a crash between the two puts, an
// earlier build's untagged objects, a tag not read), the outbox may be
// newer than the state (madeSince).
func (d durable) savedTogether(ctx context.Context) bool {
	state, err := d.objects.Tag(ctx, d.key)
	if err != nil || state == "" {
		return false
	}
	outbox, err := d.objects.Tag(ctx, stage.OutboxObject(d.key))
	return err == nil && outbox == state
}

// madeSince is msgs without the incident events a later state than the
// one restored made, and how many it left out: a checkpoint saves the
// outbox, then the state, so a crash between the two (the state's put is
// the long one) restores an outbox newer than its state (savedTogether
// tells the two apart: only then is madeSince asked). Sent, such an
// event would stand beside the one the restored state makes again: a
// command's, applied again when given again, is timed at another event
// time, so a second acknowledgement under another id (a second page), and
// the state's next event, at the revision it had, would undo it
// downstream. What made them comes again: the signals not acked, a
// command not answered, the ticks. A later state made the event of an
// incident past the revision the restored state holds of it, or of one
// that state never gave (correlate.Correlator.Given: opened since; one it
// forgot after making the event, an eviction's resolution, is retired,
// and so given, as an earlier layout's taken over is).
func (p *Processor) madeSince(msgs []bus.Message) (kept []bus.Message, ahead int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, m := range msgs {
		if st, ok := incidentState(m); ok {
			now, held := p.c.Incident(st.IncidentID)
			if held && st.Revision > now.Revision || !held && !p.c.Given(st.IncidentID) {
				ahead++
				continue
			}
		}
		kept = append(kept, m)
	}
	return kept, ahead
}

// incidentState is the incident state m carries, if it is an incident
// event.
func incidentState(m bus.Message) (correlate.State, bool) {
	var st correlate.State
	e, err := event.Parse(m.Data)
	if err != nil || e.Kind != event.KindIncident || e.DecodeBody(&st) != nil {
		return st, false
	}
	return st, true
}

// forget replaces the state with an empty one, as a restore of nothing.
func (p *Processor) forget() error {
	c, err := correlate.New(p.cfg.Rules, p.cat)
	if err != nil {
		return err
	}
	if p.partition != nil {
		c.Partitioned(p.cfg.Partition.Index, p.cfg.Partition.Count)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.c, p.lastTick, p.lastArrival, p.lag, p.lags = c, time.Time{}, time.Time{}, 0, nil
	return nil
}

// newTerm starts a term: the channel it returns is closed once its state
// is restored (markRestored), at once when nothing is to be restored.
func (p *Processor) newTerm(restores bool) <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.inFlight != nil {
		p.inFlight.Clear() // the last term's are its checkpoint's to send
	}
	if p.unstored != nil {
		// The state restored holds the commands the last term saved; those
		// it did not are applied anew when given again.
		clear(p.unstored)
	}
	// Answered when the last term ended: the outbox holds the events of
	// those saved, and the others are applied anew.
	p.unsaved, p.due = nil, nil
	p.restored = make(chan struct{})
	if !restores {
		close(p.restored)
	}
	return p.restored
}

// markRestored tells the term that its state is restored.
func (p *Processor) markRestored() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.restored != nil {
		select {
		case <-p.restored:
		default:
			close(p.restored)
		}
	}
}

// durable adds saving the state to an object store. It is a stage.Outbox:
// the incident events a tick made (an incident resolved after its quiet
// period, a command applied) that the stream had not stored are saved
// beside the state, as the object <key>.outbox, and sent after a restart.
type durable struct {
	*Processor
	*stage.HeldOutputs
	// objects writes the state and its outbox under compare-and-set,
	// claimed by each term's restore: a save of a term that ended, landing
	// late, is refused rather than replacing the next holder's state.
	objects *stage.FencedObjects
	key     string
	// store lists the state objects; layout is set when the state key is
	// a default partition name, so that earlier layouts' can be told.
	store  jetstream.ObjectStore
	layout *earlierLayout
	// fenced is true once this instance lost its lease: another instance
	// may have restored the state already, and a late save would undo what
	// that one did since.
	fenced *atomic.Bool
}

// Restore loads the saved outbox and state, if any.
func (d durable) Restore(ctx context.Context) error {
	d.catchUp()
	// Claimed first: what is read then is the last state saved, and no
	// earlier holder's save lands over what this term saves.
	if err := d.objects.Claim(ctx, d.key, stage.OutboxObject(d.key)); err != nil {
		return fmt.Errorf("correlator: state %s: %w", d.cfg.State.Bucket, err)
	}
	// Read through the claim: a replica of the bucket not caught up
	// answers as a failure for now, not as "nothing saved" (which would
	// start empty and let the next save replace the state), and an object
	// no read will get is told at once (stage.ErrBrokenObject), not after
	// nats.go's read timeout. Either stops the start: started empty, the
	// open incidents would never resolve downstream, so deleting the
	// object is the operator's choice.
	if err := d.LoadFrom(ctx, d.objects, d.key); err != nil {
		return fmt.Errorf("correlator: state %s: %w%s", d.cfg.State.Bucket, err, brokenHint(err, d.cfg.State.Bucket, stage.OutboxObject(d.key)))
	}
	data, err := d.objects.GetBytes(ctx, d.key)
	switch {
	case errors.Is(err, jetstream.ErrObjectNotFound):
		// Nothing saved: an empty state, not what an earlier term of
		// this process held (the state may have been deleted since).
		if err := d.forget(); err != nil {
			return err
		}
	case err != nil:
		return fmt.Errorf("correlator: reading state %s/%s: %w%s", d.cfg.State.Bucket, d.key, err, brokenHint(err, d.cfg.State.Bucket, d.key))
	default:
		if err := d.restore(data); err != nil {
			return err
		}
		d.log.Info().Int("incidents", len(d.Incidents())).Msg("state restored")
		if !d.savedTogether(ctx) {
			if held, ahead := d.madeSince(d.Held()); ahead > 0 {
				d.Hold(held)
				d.log.Info().Int("outputs", ahead).Msg("the outbox was saved after the state it goes with: the events that state did not make yet are left to what comes again")
			}
		}
	}
	if d.layout != nil {
		// What an earlier layout left does not keep this one from
		// starting: it is taken over at a later start.
		if err := d.layout.dropConsumers(ctx); err != nil {
			d.log.Warn().Err(err).Msg("the consumers of an earlier partition layout are not deleted yet")
		}
		if err := d.takeOverEarlierStates(ctx); err != nil {
			d.log.Warn().Err(err).Msg("the incidents of an earlier partition layout are not let go yet")
		}
	}
	d.markRestored()
	return nil
}

// takeOverEarlierStates lets go of the incidents in the states an
// earlier partition layout left (partition 0's task): their resolutions
// and the earlier outboxes join this one's outbox, saved before the
// earlier objects are deleted, and go out with the first tick.
func (d durable) takeOverEarlierStates(ctx context.Context) error {
	if d.layout.index != 0 {
		return nil
	}
	// An earlier partition running may have saved nothing yet: its
	// consumer names it too.
	names, err := d.layout.earlierConsumers(ctx)
	if err != nil {
		return err
	}
	objects, err := d.store.List(ctx)
	if err != nil && !errors.Is(err, jetstream.ErrNoObjectsFound) {
		return err
	}
	for _, o := range objects {
		if d.layout.earlier(o.Name) && !slices.Contains(names, o.Name) {
			names = append(names, o.Name)
		}
	}
	for _, name := range names {
		if err := d.takeOverEarlierState(ctx, name); err != nil {
			return fmt.Errorf("state %s of an earlier layout: %w", name, err)
		}
	}
	return nil
}

func (d durable) takeOverEarlierState(ctx context.Context, key string) error {
	unlock, ok, err := d.layout.lock(ctx, key)
	if err != nil || !ok {
		return err
	}
	defer unlock()
	outbox := stage.OutboxObject(key)
	if err := d.objects.Claim(ctx, key, outbox); err != nil {
		return err
	}
	var held stage.HeldOutputs
	if err := held.LoadFrom(ctx, d.objects, outbox); err != nil {
		return err
	}
	msgs := held.Held()
	data, err := d.objects.GetBytes(ctx, key)
	if err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
		return err
	}
	resolved := 0
	if err == nil {
		c, err := correlate.New(d.cfg.Rules, d.cat)
		if err != nil {
			return err
		}
		if err := c.UnmarshalJSON(data); err != nil {
			return err
		}
		why := fmt.Sprintf("partition %s of an earlier layout is gone (correlator.partition.count changed to %d): the partition that holds its services now opens its own for what still fails", key, d.layout.count)
		observed := d.now().UTC()
		for _, u := range c.Release(func(string) bool { return false }, why) {
			e, err := correlate.Envelope(u, observed)
			if err != nil {
				d.log.Error().Err(err).Str("incident_id", u.State.IncidentID).Msg("incident event dropped")
				continue
			}
			m, err := stage.Message(stage.Output{Event: e})
			if err != nil {
				return err
			}
			msgs = append(msgs, m)
			resolved++
		}
	}
	d.Hold(append(slices.Clone(d.Held()), msgs...))
	// Saved first: deleted before, a crash would lose the resolutions.
	// The state saved with them has their incidents retired, so that a
	// restore does not take their events for ones made since it
	// (madeSince) should a later checkpoint's state not land.
	data, err = d.retire(msgs)
	if err != nil {
		return err
	}
	if err := d.saveTogether(ctx, d.HeldOutputs, data); err != nil {
		return err
	}
	if err := d.objects.Delete(ctx, outbox); err != nil {
		return err
	}
	if err := d.objects.Delete(ctx, key); err != nil {
		return err
	}
	d.log.Info().Str("partition", key).Int("resolved", resolved).Int("outputs", len(msgs)).Msg("an earlier layout's state is taken over: its incidents are resolved")
	return nil
}

// retire takes the incidents of msgs (an earlier layout's events) as
// given and forgotten, and returns the state as bytes.
func (p *Processor) retire(msgs []bus.Message) ([]byte, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, m := range msgs {
		if st, ok := incidentState(m); ok {
			p.c.Retire(st.IncidentID)
		}
	}
	return p.c.MarshalJSON()
}

// saveTogether saves outbox, then state, tagged alike with a tag of
// their own (savedTogether tells, at a restore, whether both landed).
func (d durable) saveTogether(ctx context.Context, outbox *stage.HeldOutputs, state []byte) error {
	tag := event.NewID(time.Now())
	if err := outbox.SaveFenced(ctx, d.objects, d.key, tag); err != nil {
		return err
	}
	return d.objects.PutTagged(ctx, d.key, state, tag)
}

// brokenHint tells an operator what to do with a state object no read will
// get: the correlator cannot start on it.
func brokenHint(err error, bucket, name string) string {
	if !errors.Is(err, stage.ErrBrokenObject) {
		return ""
	}
	return fmt.Sprintf(" (delete it to start with no incidents: nats object rm %s %s; the incidents open downstream are then resolved by hand)", bucket, name)
}

// catchUp starts the time in which the signals delivered before a restore
// and not acked come again: within the consumer's ack_wait of it (the
// instance before, crashed, told them in progress no more).
func (p *Processor) catchUp() {
	p.catchUpUntil.Store(p.now().Add(p.cfg.Consumer.WithDefaults().AckWait).UnixNano())
}

// catchingUp reports whether the signals from before the restore may
// still come again.
func (p *Processor) catchingUp() bool {
	return p.now().UnixNano() < p.catchUpUntil.Load()
}

// Checkpoint saves the outbox, then the state, unless the lease was lost.
// An outbox not saved leaves the state unsaved too: saved alone, it would
// hold what the lost outputs came from. The outbox holds the tick outputs
// the runner handed over (Hold) and the input outputs in flight when the
// state was taken.
func (d durable) Checkpoint(ctx context.Context) error {
	if d.fenced.Load() || !d.holding() {
		d.log.Warn().Msg("lease lost: state not saved (whoever takes the lease next, another instance or this one, restores what was saved last)")
		return stage.ErrFenced
	}
	if d.bound != nil {
		var cancel context.CancelFunc
		ctx, cancel = d.bound(ctx)
		defer cancel()
	}
	st, err := d.snapshot()
	if err != nil {
		return err
	}
	outbox := new(stage.HeldOutputs)
	outbox.Hold(append(slices.Clone(d.Held()), st.flying...))
	err = d.saveTogether(ctx, outbox, st.data)
	if errors.Is(err, stage.ErrFenced) {
		// Another holder restored since: its term owns the state.
		d.fenced.Store(true)
		d.log.Warn().Err(err).Msg("state not saved: another instance holds it now")
	}
	if err != nil {
		return fmt.Errorf("correlator: state %s: %w", d.cfg.State.Bucket, err)
	}
	d.saved(st)
	return nil
}

// Service is the correlator wired to JetStream, with its incidents API
// and its command consumer.
type Service struct {
	*stage.Stage
	fenced   *atomic.Bool // the lease was lost: stop saving
	restores bool         // a term restores a saved state before it leads
	proc     *Processor
	api      *API          // nil without api.listen
	commands *bus.Consumer // incidents.command.> on INCIDENTS
	lease    *bus.Lease    // nil with lease.disabled
	log      zerolog.Logger
	// layout takes over what an earlier partition layout left (nil for
	// names outside the layouts); poll is how often a term looks whether
	// an earlier partition it found running has stopped.
	layout *earlierLayout
	poll   time.Duration
	// terms fails /readyz with the error the last term ended with, until
	// a term restores again.
	terms *service.LastFailure
}

// New builds the correlator on js: the processor, its state store and its
// durable consumer.
func New(ctx context.Context, js jetstream.JetStream, cfg Config, log zerolog.Logger, opts ...stage.OpenOption) (*Service, error) {
	// The stream drops a firing alert's resends within its duplicate
	// window (they keep the first send's id): an alert's expiry waits
	// that long for one (correlate.Config.ResendGap).
	if s, err := js.Stream(ctx, cfg.WithDefaults().Consumer.Stream); err == nil {
		cfg.Rules.ResendGap = s.CachedInfo().Config.Duplicates
	} else if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, fmt.Errorf("correlator: reading the duplicate window of stream %s: %w", cfg.WithDefaults().Consumer.Stream, err)
	}
	proc, err := NewProcessor(cfg, log, nil)
	if err != nil {
		return nil, err
	}
	cfg = proc.cfg
	var run any = proc
	fenced := new(atomic.Bool)
	var layout *earlierLayout
	scfg := stage.Config{Name: "correlator", Workers: 1, TickEvery: time.Second}
	if !cfg.State.Disabled {
		store, err := stage.OpenStateStore(ctx, js, cfg.State, "aiops correlator state: incidents and their members")
		if err != nil {
			return nil, fmt.Errorf("correlator: %w", err)
		}
		objects, err := stage.NewFencedObjects(ctx, js, cfg.State.Bucket)
		if err != nil {
			return nil, fmt.Errorf("correlator: %w", err)
		}
		proc.unstored = map[string]bool{}
		proc.inFlight = &stage.InFlight{}
		d := durable{Processor: proc, HeldOutputs: new(stage.HeldOutputs), objects: objects, key: cfg.State.Key, store: store, fenced: fenced}
		if p := cfg.Partition; cfg.State.Key == defaultDurable(p.Count, p.Index) && cfg.Consumer.Durable == cfg.State.Key {
			layout = &earlierLayout{js: js, lease: cfg.Lease, count: p.Count, index: p.Index, log: log}
			d.layout = layout
		}
		run = d
		scfg.CheckpointEvery = cfg.State.SaveEvery
		// What a signal did is in the state alone until it is saved (a
		// resolution only starts a quiet period): acked before, a crash
		// would lose it, and the producer never sends it again.
		scfg.AckAfterCheckpoint = true
	}
	if n := cfg.Partition.Count; cfg.Consumer.Durable == defaultDurable(n, cfg.Partition.Index) {
		if cfg.Consumer.StartSeq, cfg.Consumer.Metadata, err = startOfNewPartition(ctx, js, cfg.Consumer.Stream, cfg.Consumer.Durable, n); err != nil {
			return nil, err
		}
	}
	if cfg.Consumer.StartSeq > 1 {
		log.Info().Uint64("start_seq", cfg.Consumer.StartSeq).Msg("a new partition: its consumer starts where the earlier layout's stand")
	}
	// The consumer's settings on the server are applied when this
	// instance takes the lease, not by a standby: the holder (an older
	// build, in a rolling update) acks after its checkpoints and tells in
	// progress by its own ack_wait, and a shorter one set under it had the
	// server redeliver what it held.
	opts = append([]stage.OpenOption{stage.WithConsumerOptions(bus.WithSettingsOnRun())}, opts...)
	st, err := stage.Open(ctx, js, run, scfg, cfg.Consumer, log, opts...)
	if err != nil {
		return nil, err
	}
	s := &Service{Stage: st, proc: proc, log: log, fenced: fenced, restores: !cfg.State.Disabled, layout: layout, poll: cfg.Lease.WithDefaults().TTL / 3, terms: service.NewLastFailure("correlator")}
	proc.checkpointSoon, proc.tickSoon = st.CheckpointSoon, st.TickSoon
	if s.lease, err = cfg.Lease.Open(ctx, js, "correlator."+cfg.Consumer.Durable); err != nil {
		return nil, fmt.Errorf("correlator: %w", err)
	}
	proc.holds, proc.bound = s.lease.Valid, s.lease.Bound
	proc.leading.Store(false) // until a term restored the state (lead)
	commands := bus.ConsumerConfig{
		Stream: bus.StreamIncidents, Durable: cfg.Consumer.Durable + "-commands",
		FilterSubjects: []string{event.IncidentCommandPrefix + ".>"}, FetchWait: cfg.Consumer.FetchWait, MaxDeliver: 3,
	}
	if cfg.Consumer.StartSeq > 0 {
		// A partition new to a changed layout holds none of the incidents
		// the commands stored so far were for (the earlier layout's,
		// resolved by partition 0): taken again, each would be refused,
		// and with one partition dead-lettered.
		incidents, err := js.Stream(ctx, bus.StreamIncidents)
		if err != nil {
			return nil, fmt.Errorf("correlator: stream %s: %w", bus.StreamIncidents, err)
		}
		commands.StartSeq = incidents.CachedInfo().State.LastSeq + 1
	}
	s.commands, err = bus.NewConsumer(ctx, js, commands, log, bus.WithInProgress(), // held while catching up (Service.command)
		bus.WithDrainTimeout(st.Config().DrainTimeout+time.Second)) // a command under way whose answer waits for the stop's last checkpoint may outlast this drain: it is redelivered after ack_wait, found applied, and acked
	if err != nil {
		return nil, err
	}
	if cfg.API.Listen != "" {
		if s.api, err = newAPI(proc, cfg.API, log); err != nil {
			return nil, err
		}
		if s.lease != nil {
			s.api.fwd = &forwarder{nc: js.Conn(), lease: s.lease, durable: cfg.Consumer.Durable, slots: make(chan struct{}, maxForwardedAtOnce), timeout: ForwardTimeout}
		}
	}
	return s, nil
}

// Run serves the API and, while this instance holds the lease, consumes
// signals and commands, until ctx ends. An instance that loses the lease
// (it stopped renewing in time) stops consuming and waits to hold it again,
// restoring the state the holder saved.
func (s *Service) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	var apiErr error
	// The API ends with the terms: Lead returns only when ctx ended, or
	// (lease.disabled) when its one term ended, a state it could not
	// restore, and an API left answering 503 would keep the service up
	// doing nothing instead of ending it to be restarted.
	apiCtx, endAPI := context.WithCancel(ctx)
	defer endAPI()
	if s.api != nil {
		wg.Go(func() { apiErr = s.api.Run(apiCtx) })
	}
	// The lease's loss fences the state before the drain's last
	// checkpoint: the instance holding it now owns the state.
	runErr := s.lease.Lead(ctx, s.log, s.lead, func() { s.fenced.Store(true) })
	endAPI()
	wg.Wait()
	return errors.Join(runErr, apiErr)
}

// lead is one term: it consumes signals and commands until ctx ends (the
// lease was lost, or the service stops) or the stage stops on its own (a
// state it cannot restore): the term then ends, so that the lease is
// released for a standby, instead of holding it while consuming nothing.
// Commands and the API wait for the state to be restored: before, every
// incident would be unknown (a command dead-lettered, a list empty).
func (s *Service) lead(ctx context.Context) error {
	s.fenced.Store(false)
	term, endTerm := context.WithCancel(ctx)
	defer endTerm()
	restored := s.proc.newTerm(s.restores)
	// The tick that applies commands stops with the term: the commands
	// not applied by then are answered at once (ErrStandby: a NATS command
	// is naked for the next holder, an API call gets 503), not at their
	// 30s timeout, which would outlast the service's stop. One applied is
	// answered when its incident event is stored, or the drain ended.
	stopAnswering := context.AfterFunc(term, func() {
		s.proc.leading.Store(false)
		s.proc.failPending(ErrStandby)
	})
	defer stopAnswering()
	errs := make([]error, 2)
	var consumers sync.WaitGroup
	consumers.Go(func() {
		errs[0] = s.Stage.Run(term)
		// The last checkpoint is behind: what it did not save, no saved
		// state of this term will hold.
		s.proc.failUnsaved(ErrStandby)
		endTerm()
	})
	select {
	case <-restored:
		if term.Err() == nil { // not ended meanwhile (stopAnswering ran)
			stopForwarded, err := s.api.answerForwarded(term)
			if err != nil {
				errs[1] = err
				endTerm()
				break
			}
			context.AfterFunc(term, stopForwarded) // the next holder answers them
			s.terms.Failed(nil)
			s.proc.leading.Store(true)
			consumers.Go(func() { errs[1] = s.commands.Run(term, bus.Sync(s.command)) })
			if s.layout != nil && s.layout.waiting() {
				consumers.Go(func() { s.awaitEarlier(term, endTerm) })
			}
		}
	case <-term.Done():
	}
	consumers.Wait()
	s.proc.leading.Store(false)
	s.proc.failPending(ErrStandby)
	err := errors.Join(errs...)
	if err != nil && ctx.Err() == nil {
		s.terms.Failed(err)
	}
	return err
}

// Checks is the correlator's readiness: not ready while its terms end in
// errors (a state it cannot restore, say), which the lease's loop tries
// again for ever with nothing but its log to tell; ready again once
// another instance holds the lease (the failing one a standby like any
// other, whose failure a pod-not-ready alert would page for in vain).
func (s *Service) Checks() []service.Check {
	return []service.Check{s.terms.Check("its last term ended with an error, and it stands by until a term restores its state", s.lease.HeldByAnother)}
}

// awaitEarlier ends the term once a partition of an earlier layout that
// was running at its start has stopped, so that the next term's restore
// takes over what it left: a rolling update starts the new layout's
// instances before it stops the earlier ones.
func (s *Service) awaitEarlier(term context.Context, endTerm func()) {
	t := time.NewTicker(s.poll)
	defer t.Stop()
	for {
		select {
		case <-term.Done():
			return
		case <-t.C:
		}
		if stopped, _ := s.layout.stopped(term); stopped { // an error: looked at again
			s.log.Info().Msg("a partition of an earlier layout stopped: this term ends, and the next takes over what it left")
			endTerm()
			return
		}
	}
}

// API is the incidents API (nil when api.listen is not set).
func (s *Service) API() *API { return s.api }

// Addr is where the incidents API listens (nil without one).
func (s *Service) Addr() net.Addr {
	if s.api == nil {
		return nil
	}
	return s.api.Addr()
}

// command applies one command taken from incidents.command.<id>: a JSON
// correlate.Command (the incident id may come from the subject alone; one
// in the body naming another incident than the subject is refused).
// A command on an incident merged within the reopen window applies to the
// one it went into (logged with merged_incident_id). A command the
// incident refuses is dead-lettered with the reason.
func (s *Service) command(ctx context.Context, d *bus.Delivery) error {
	var cmd correlate.Command
	// One command per message: a second would be dropped unseen.
	if err := httpapi.UnmarshalStrict(d.Data, &cmd); err != nil {
		return errs.Permanent(fmt.Errorf("correlator: command on %s is not a command: %w", d.Subject, err))
	}
	subject := strings.TrimPrefix(d.Subject, event.IncidentCommandPrefix+".")
	switch {
	case cmd.IncidentID == "":
		cmd.IncidentID = subject
	case event.SubjectToken(cmd.IncidentID) != subject:
		// Which one was meant? Applied to the body's, a command
		// published for one incident would change another.
		return errs.Permanent(fmt.Errorf("correlator: command on %s names incident %q in its body: publish it on %s, or leave incident_id out",
			d.Subject, cmd.IncidentID, event.IncidentCommandSubject(cmd.IncidentID)))
	}
	// What the person did is timed when the stream stored the command,
	// the same on a redelivery: a time the command names is no server's
	// clock (one ahead would date the acknowledgement in the future).
	cmd.Time = d.Published
	if cmd.ID == "" {
		// A redelivery (its event not stored yet, a stop) applies once.
		// The time the stream stored it tells a stream created again
		// (memory storage after a restart), whose sequence restarts.
		cmd.ID = "nats:" + strconv.FormatUint(d.StreamSeq, 10) + "@" + strconv.FormatInt(d.Published.UnixNano(), 10)
	}
	submit := func() error {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		_, err := s.proc.Submit(cctx, cmd)
		return err
	}
	err := submit()
	// The incident may come back with the signals from before the
	// restore: asked again until they may have (the catch-up ends the
	// signals' ack_wait after the restore), the command is applied, or
	// refused for an incident nobody knows. Held, not naked: a
	// redelivery would count against the commands' MaxDeliver, which a
	// long ack_wait outlasts (the consumer tells the server it is in
	// progress).
	for errors.Is(err, ErrCatchingUp) {
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Second):
		}
		err = submit()
	}
	if errors.Is(err, correlate.ErrUnknownIncident) && s.proc.partition != nil {
		// Every partition reads every command; the incident is another
		// partition's (or unknown to all, which each of them logs).
		s.log.Debug().Str("incident_id", cmd.IncidentID).Msg("command for an incident of another partition: ignored")
		return nil
	}
	if err != nil && !errors.Is(err, ErrCommandTimeout) && !errors.Is(err, ErrNotStored) && !errors.Is(err, ErrStandby) && !errors.Is(err, ErrCatchingUp) {
		return errs.Permanent(err)
	}
	return err
}

// Processor is the service's processor (its incidents, commands).
func (s *Service) Processor() *Processor { return s.proc }

// Collector exports the runtime's and the consumers' metrics, and what
// the correlator holds against its bounds (metrics.go).
func (s *Service) Collector() prometheus.Collector {
	return stage.Collectors{s.Stage.Collector(), s.commands.Collector(), stateCollector{s.proc}}
}
