package stage

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/bus"
	"github.com/aiops-dev/aiops/pkg/errs"
	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/pkg/service"
)

// Sentinel errors of the runner.
var (
	ErrAlreadyRunning = errors.New("stage: already running")
	ErrNilEvent       = errors.New("stage: emitted an output without an event")
	ErrNoPublisher    = errors.New("stage: a processor needs a publisher")
	ErrSinkEmits      = errors.New("stage: a sink emits nothing")
)

// Runner drives one Processor or Sink (see the package comment).
type Runner struct {
	cfg         Config
	manualTicks bool
	proc        Processor // nil for a sink
	sink        Sink      // nil for a processor
	pub         Publisher
	log         zerolog.Logger
	now         func() time.Time

	running atomic.Bool
	work    chan job
	pending chan pendingInput
	inline  emitter // the emitter of the source's goroutine (Workers == 1)

	// kept maps an input id to the outputs it was processed into when one
	// of them failed; its redelivery republishes them.
	kept *lru.Cache[string, keptInput]
	// held maps the id of an input whose ack the processor held
	// (Config.HoldAcks; nil without) to that hold, for its redelivery;
	// the MaxKept latest (a released one answers nothing: the redelivery
	// is processed).
	held *lru.Cache[string, *heldAck]

	// tickMu makes ticks one at a time; unsent are tick outputs that failed,
	// sent first by the next tick, and unsettled the Settled of those whose
	// ack had not come when a stop's drain ended (nil for the others), told
	// by the stop's last send.
	tickMu    sync.Mutex
	unsent    []bus.Message
	unsettled []func(error)
	late      []func() // the StoredLate of each unsent output (nil for none)
	// restored are the ids among unsent a restored Outbox held: never
	// dropped beyond MaxKept, since a checkpoint's state already holds
	// what made them (a correlator's incident events in flight, a log
	// miner's template announcements), and nothing would make them again.
	restored map[string]bool

	// draining is set once a sink's drain Flush is due; flushMu makes
	// flushes one at a time (see flushSink).
	draining atomic.Bool
	flushMu  sync.Mutex

	// soon asks the checkpoint loop for a checkpoint now (CheckpointSoon),
	// tickSoon the tick loop for a tick now (TickSoon).
	soon, tickSoon chan struct{}

	// ackMu guards awaiting, the acks of the inputs processed since the
	// last checkpoint began (Config.AckAfterCheckpoint).
	ackMu    sync.Mutex
	awaiting []func(error)

	m metrics
}

// Option adjusts NewRunner.
type Option func(*Runner)

// WithClock replaces time.Now for tick boundaries (tests).
func WithClock(now func() time.Time) Option { return func(r *Runner) { r.now = now } }

// WithManualTicks turns the runner's own tick loop off: ticks happen only
// when Tick is called (stagetest, whose tests tick by hand).
func WithManualTicks() Option { return func(r *Runner) { r.manualTicks = true } }

// NewRunner builds the runner of proc, a Processor or a Sink; pub publishes
// a processor's outputs (a Sink needs none).
func NewRunner(proc any, cfg Config, pub Publisher, log zerolog.Logger, opts ...Option) (*Runner, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	r := &Runner{cfg: cfg, pub: pub, log: log, now: time.Now, soon: make(chan struct{}, 1), tickSoon: make(chan struct{}, 1)}
	switch p := proc.(type) {
	case Processor:
		r.proc = p
		if pub == nil {
			return nil, ErrNoPublisher
		}
	case Sink:
		r.sink = p
	default:
		return nil, fmt.Errorf("%w: %T is neither a stage.Processor nor a stage.Sink", ErrInvalidConfig, proc)
	}
	// Run restores and checkpoints a processor only (r.proc): a sink's
	// acks would wait for a checkpoint that never comes.
	if _, ok := r.proc.(Checkpointer); cfg.AckAfterCheckpoint && !ok {
		return nil, fmt.Errorf("%w: ack after checkpoint: %T saves no checkpoint", ErrInvalidConfig, proc)
	}
	// Each takes the delivery's ack for later, and the first of the two
	// to come would ack it: a held input at the checkpoint, before its
	// release, and then once more.
	if cfg.AckAfterCheckpoint && cfg.HoldAcks {
		return nil, fmt.Errorf("%w: hold acks: with ack after checkpoint the two would each ack an input, at the first of them", ErrInvalidConfig)
	}
	if _, ok := proc.(Ticker); ok && cfg.TickEvery <= 0 {
		return nil, fmt.Errorf("%w: tick_every: a Ticker needs a period", ErrInvalidConfig)
	}
	if err := checkStop(proc, cfg, fmt.Sprintf("drain_timeout (%s) and the acks' flush (%s)", cfg.DrainTimeout, bus.AckFlushTimeout),
		cfg.DrainTimeout+bus.AckFlushTimeout); err != nil {
		return nil, err
	}
	kept, err := lru.New[string, keptInput](cfg.MaxKept)
	if err != nil {
		return nil, err
	}
	r.kept = kept
	if cfg.HoldAcks {
		if r.held, err = lru.New[string, *heldAck](cfg.MaxKept); err != nil {
			return nil, err
		}
	}
	r.inline.holding = cfg.HoldAcks
	for _, o := range opts {
		o(r)
	}
	return r, nil
}

// checkStop checks that a stop ends within the service's shutdown timeout
// (or the service reports the stage hung while it was still saving), when
// the source takes up to sourceStop (what) to drain: a sink's drain flush
// runs beside the drain, within CheckpointTimeout; the tick outputs kept
// and the last checkpoint come after it, within CheckpointTimeout.
func checkStop(proc any, cfg Config, what string, sourceStop time.Duration) error {
	stop := sourceStop
	_, checkpoints := proc.(Checkpointer)
	_, ticks := proc.(Ticker)
	switch _, sink := proc.(Sink); {
	case sink:
		stop = max(stop, cfg.CheckpointTimeout)
		what += fmt.Sprintf(", beside checkpoint_timeout (%s) for the sink's flush,", cfg.CheckpointTimeout)
	case checkpoints || ticks:
		stop += cfg.CheckpointTimeout
		what += fmt.Sprintf(", then checkpoint_timeout (%s) for the last checkpoint and tick outputs,", cfg.CheckpointTimeout)
	}
	if stop >= StopLimit {
		return fmt.Errorf("%w: %s take up to %s: a stop must end within %s (the service's %s less %s for a lease's release)",
			ErrInvalidConfig, what, stop, StopLimit, service.DefaultShutdownTimeout, bus.LeaseReleaseTimeout)
	}
	return nil
}

// Config is the runner's configuration with the defaults filled in.
func (r *Runner) Config() Config { return r.cfg }

// job is one delivery on its way from the source to a worker.
type job struct {
	ctx       context.Context
	data      []byte
	delivered uint64 // 1 on the first delivery
	last      bool   // a failure dead-letters it (bus.Delivery.Last)
	done      func(error)
	taken     func()             // a worker took it (bus.Delivery.Queued); nil: none to tell
	ackLater  func() func(error) // bus.Delivery.AckLater; nil from a source that cannot
}

// pendingInput is an input whose outputs were sent and await their acks.
type pendingInput struct {
	id      string
	outs    []sentOutput // one allocation per input for all of this
	sent    int          // outs[:sent] have a future
	sendErr error        // why outs[sent] could not be sent
	last    bool         // its last delivery: a failure dead-letters it
	done    func(error)
	hold    *heldAck // the processor holds its ack (HoldAck); nil: none
}

// sentOutput is one output on its way to the stream.
type sentOutput struct {
	msg     bus.Message
	settled func(error)
	late    func() // StoredLate: told when a redelivery's send stores it
	future  jetstream.PubAckFuture
}

// keptOutput is an output kept for its input's redelivery.
type keptOutput struct {
	msg  bus.Message
	late func()
}

// keptInput is what is kept for an input's redelivery: its outputs, and
// the hold on its ack, which the redelivery's ack waits for in turn.
type keptInput struct {
	outs []keptOutput
	hold *heldAck
}

// heldAck is the ack of an input its processor holds (HoldAck): it is
// given once the input succeeded and every hold was released, whichever
// comes last.
type heldAck struct {
	mu    sync.Mutex
	holds int           // releases still to come
	acks  []func(error) // the acks of its deliveries that succeeded, waiting for them
}

// waiting reports whether a delivery of the input succeeded and its ack
// waits for a release.
func (h *heldAck) waiting() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.acks) > 0
}

// hold adds a hold and returns its release.
func (h *heldAck) hold() func() {
	h.mu.Lock()
	h.holds++
	h.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			h.mu.Lock()
			h.holds--
			var acks []func(error)
			if h.holds == 0 {
				acks, h.acks = h.acks, nil
			}
			h.mu.Unlock()
			for _, ack := range acks {
				ack(nil)
			}
		})
	}
}

// wrap is done of a delivery whose ack h holds: a success settles the
// delivery for the source at once (its place under max_ack_pending on
// the client is free, a drain does not wait for it) and acks it when the
// last hold is released. A source that cannot ack later (ackLater nil)
// is acked at once.
func (h *heldAck) wrap(ackLater func() func(error), done func(error)) func(error) {
	return func(err error) {
		if err != nil || ackLater == nil {
			done(err)
			return
		}
		// Registered before the delivery is settled: once it is, a
		// release (which may follow at once) finds the ack waiting.
		ack := ackLater()
		h.mu.Lock()
		if h.holds > 0 {
			h.acks, ack = append(h.acks, ack), nil
		}
		h.mu.Unlock()
		done(nil)
		if ack != nil {
			ack(nil)
		}
	}
}

// Run restores the checkpoint, then hands the source's deliveries to the
// processor until ctx is cancelled; then it lets the source drain (every
// delivery handed out gets its result), stops the workers and saves a last
// checkpoint.
func (r *Runner) Run(ctx context.Context, src Source) error {
	if !r.running.CompareAndSwap(false, true) {
		return ErrAlreadyRunning
	}
	defer r.running.Store(false)
	if cp, ok := r.proc.(Checkpointer); ok {
		if err := cp.Restore(ctx); err != nil {
			if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
				return nil // stopped while starting: nothing was consumed
			}
			return fmt.Errorf("stage %s: restore: %w", r.cfg.Name, err)
		}
		// Outputs kept from an earlier term (a correlator leading again)
		// came from a state the restored one replaced, which may not hold
		// their inputs: a redelivery must be processed by this one, not
		// answered with them (its outputs in flight, if it holds them,
		// are its checkpoint's outbox's).
		r.kept.Purge()
		if r.held != nil {
			r.held.Purge()
		}
		r.takeHeld()
		// What the restored state lacks is exactly what is not acked: it
		// must be taken again before anything newer, as it came first.
		// Left to the server, what a crashed instance held comes again
		// only after ack_wait, behind the inputs that arrived meanwhile,
		// and a processor whose result depends on the order (the
		// correlator's grouping) made other outputs from it, under other
		// ids, than the instance that crashed had published.
		if rw, ok := src.(interface{ Rewind(context.Context) error }); ok && (r.cfg.AckAfterCheckpoint || r.cfg.HoldAcks) {
			if err := rw.Rewind(ctx); err != nil {
				r.log.Warn().Err(err).Msg("inputs not acked before this start come again after ack_wait, possibly after newer ones")
			}
		}
	}
	// drained ends once the source's drain did: from then on no output's
	// ack is waited for, an input's or a tick's.
	drained, endDrain := context.WithCancel(context.WithoutCancel(ctx))
	defer endDrain()
	stopPipeline := r.startPipeline(drained.Done())

	loops, stopLoops := context.WithCancel(ctx)
	var wg sync.WaitGroup
	if _, ok := r.ticker(); ok && !r.manualTicks {
		wg.Go(func() { r.tickLoop(loops, drained) })
	}
	if _, ok := r.proc.(Checkpointer); ok {
		wg.Go(func() { r.checkpointLoop(loops) })
	}
	if r.sink != nil {
		r.draining.Store(false)
		wg.Go(func() {
			<-loops.Done()
			// Held inputs must not wait for a batch to fill: the source is
			// waiting for their results to finish its drain.
			r.draining.Store(true)
			r.flushSink(ctx)
		})
	}

	runErr := src.Run(ctx, r.handle)
	if errors.Is(runErr, bus.ErrDrainTimeout) {
		// Not a failure of the stop: what was not settled is redelivered
		// (the consumer said how many), and the stop must go on to its
		// checkpoint within the service's budget.
		runErr = nil
	}
	stopLoops()
	endDrain()
	wg.Wait()
	stopPipeline()

	final, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.CheckpointTimeout)
	defer cancel()
	// Tick outputs that failed are sent once more: the state that made
	// them is about to be checkpointed. Their acks get half the time, so
	// that lost ones leave the checkpoint the other half.
	unsent, cancelUnsent := context.WithTimeout(final, r.cfg.CheckpointTimeout/2)
	defer cancelUnsent()
	if err := r.sendUnsent(unsent); err != nil {
		r.log.Warn().Err(err).Int("outputs", r.Unsent()).Msg("periodic outputs not stored at shutdown")
	}
	r.giveUpUnsent()
	if cp, ok := r.proc.(Checkpointer); ok {
		switch err := r.checkpoint(final, cp); {
		case errors.Is(err, ErrFenced):
			// Another instance owns the state now, with its own outbox:
			// outputs kept from ours, which nobody saved, are not to be
			// sent by a later term of this one.
			r.dropUnsent()
		case err != nil:
			runErr = errors.Join(runErr, err)
		}
		// Not saved: what waited for it goes back to the stream now, for
		// the next instance, rather than after ack_wait.
		r.settleAwaiting(r.takeAwaiting(), ErrFenced)
		// Within the last checkpoint's time, which the stop's budget has.
		if f, ok := src.(interface{ FlushAcks(context.Context) error }); ok && (r.cfg.AckAfterCheckpoint || r.cfg.HoldAcks) {
			if err := f.FlushAcks(final); err != nil {
				r.log.Warn().Err(err).Msg("acks after the last checkpoint not flushed: their inputs are redelivered")
			}
		}
	}
	return runErr
}

// startPipeline starts the workers and the acker; the returned stop, called
// once the source hands out nothing more, lets them finish (so that every
// delivery's done is called) and waits for them. Once drained is closed the
// acker waits for no more acks: an ack lost with a cluster node would hold
// the stop for the publisher's whole ack timeout.
func (r *Runner) startPipeline(drained <-chan struct{}) (stop func()) {
	if r.sink != nil {
		return func() {}
	}
	r.work = make(chan job, r.cfg.Queue)
	r.pending = make(chan pendingInput, r.cfg.Queue)
	acked := make(chan struct{})
	go func() { defer close(acked); r.acker(r.pending, drained) }()
	var workers sync.WaitGroup
	if r.cfg.Workers == 1 {
		close(r.work) // inputs are processed on the source's goroutine
	}
	for range r.cfg.Workers {
		workers.Go(func() {
			em := emitter{holding: r.cfg.HoldAcks}
			for j := range r.work {
				if j.taken != nil {
					j.taken()
				}
				r.process(j, &em)
			}
		})
	}
	return func() {
		if r.cfg.Workers > 1 {
			close(r.work)
		}
		workers.Wait()
		close(r.pending)
		<-acked
	}
}

// handle is the source's handler. With one worker the source's own
// goroutine processes the input (stream order, and no hand-off: a channel
// send and a goroutine switch cost as much as scoring a sample).
func (r *Runner) handle(ctx context.Context, d *bus.Delivery, done func(error)) {
	if r.cfg.AckAfterCheckpoint && d.AckLater != nil {
		done = r.ackAfterCheckpoint(d, done)
	}
	if r.sink == nil {
		if r.cfg.Workers == 1 {
			r.process(job{ctx: ctx, data: d.Data, delivered: d.Delivered, last: d.Last, done: done, ackLater: d.AckLater}, &r.inline)
			return
		}
		j := job{ctx: ctx, data: d.Data, delivered: d.Delivered, last: d.Last, done: done, ackLater: d.AckLater}
		if d.Queued != nil {
			// While every worker is busy it waits in the queue, past
			// AckWait maybe: told in progress, it is not handed out again
			// meanwhile.
			j.taken = d.Queued()
		}
		r.work <- j
		return
	}
	r.m.inputs.Add(1)
	e, err := event.Parse(d.Data)
	if err != nil {
		r.m.invalid.Add(1)
		done(err)
		return
	}
	r.sink.Write(ctx, e, done)
	if r.draining.Load() {
		// Fetched before the stop, handed out after the drain's Flush:
		// it too must not wait for a batch or a timer. (A Write before
		// draining was set is seen by that Flush, which comes after.)
		r.flushSink(ctx)
	}
}

// ackAfterCheckpoint wraps d's done: a success settles d for the source
// at once, its ack waiting for the next checkpoint saved
// (Config.AckAfterCheckpoint); a failure is done's as ever.
func (r *Runner) ackAfterCheckpoint(d *bus.Delivery, done func(error)) func(error) {
	return func(err error) {
		if err != nil {
			done(err)
			return
		}
		ack := d.AckLater()
		done(nil)
		r.ackMu.Lock()
		r.awaiting = append(r.awaiting, ack)
		n := len(r.awaiting)
		r.ackMu.Unlock()
		if n >= max(r.cfg.Queue/2, 1) {
			r.CheckpointSoon() // the consumer's bound of unacked inputs is near
		}
	}
}

// takeAwaiting returns the acks waiting for a checkpoint and forgets them.
func (r *Runner) takeAwaiting() []func(error) {
	r.ackMu.Lock()
	defer r.ackMu.Unlock()
	acks := r.awaiting
	r.awaiting = nil
	return acks
}

// settleAwaiting acks (err nil) or gives back to the stream (err) acks; a
// checkpoint that failed otherwise puts them back for the next one.
func (r *Runner) settleAwaiting(acks []func(error), err error) {
	switch {
	case err == nil || errors.Is(err, ErrFenced):
		for _, ack := range acks {
			ack(err)
		}
	default:
		r.ackMu.Lock()
		r.awaiting = append(acks, r.awaiting...)
		r.ackMu.Unlock()
	}
}

// flushSink flushes the sink at the drain, within CheckpointTimeout.
func (r *Runner) flushSink(ctx context.Context) {
	r.flushMu.Lock()
	defer r.flushMu.Unlock()
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.CheckpointTimeout)
	defer cancel()
	if err := r.sink.Flush(fctx); err != nil {
		r.log.Warn().Err(err).Msg("flush at shutdown failed")
	}
}

// process runs one input through the processor and either settles it (bad
// data, a failure, no outputs) or hands its outputs' futures to the acker.
// A panic is a transient failure, as the consumer treats its own handler's:
// redelivered, dead-lettered after MaxDeliver, and the other inputs go on.
func (r *Runner) process(j job, em *emitter) {
	settled, processing := false, false // processing: in Process, em.hold is this input's
	id := ""
	var held *heldAck // a redelivery's hold an earlier delivery kept
	defer func() {
		if p := recover(); p != nil {
			r.m.panics.Add(1)
			r.log.Error().Interface("panic", p).Str("event_id", id).Msg("processor panicked")
			if !settled {
				if processing {
					r.keepHold(id, em.hold, j.last) // a panic is transient
				}
				em.settle(fmt.Errorf("stage %s: processing panicked: %v", r.cfg.Name, p))
				j.done(fmt.Errorf("stage %s: processing panicked: %v", r.cfg.Name, p))
			}
		}
	}()
	r.m.inputs.Add(1)
	e, err := event.Parse(j.data)
	if err != nil {
		r.m.invalid.Add(1)
		settled = true
		j.done(err)
		return
	}
	id = e.ID
	// Only a redelivery can have kept outputs (a first delivery has never
	// failed): the first delivery pays no lookup.
	if j.delivered != 1 {
		if kept, ok := r.kept.Peek(id); ok {
			// A redelivery of an input whose outputs failed: send them again.
			r.kept.Remove(id)
			r.m.replayed.Add(1)
			outs := make([]sentOutput, len(kept.outs))
			for i, k := range kept.outs {
				outs[i].msg, outs[i].late = k.msg, k.late
			}
			done := j.done
			if kept.hold != nil {
				// what held the first delivery's ack holds this one's
				done = kept.hold.wrap(j.ackLater, j.done)
			}
			r.send(j, pendingInput{id: id, outs: outs, last: j.last, done: done, hold: kept.hold})
			settled = true
			return
		}
		if r.held != nil {
			held, _ = r.held.Peek(id)
		}
		if held != nil && held.waiting() {
			// A redelivery of an input that succeeded and whose ack is
			// still held: it was held past ack_wait (its in-progress
			// signals lost, a connection down longer). Its outputs are
			// stored; processed again, it would be taken for a repeat and
			// acked at once, before the processor released it. It waits
			// for that release too.
			settled = true
			held.wrap(j.ackLater, j.done)(nil)
			return
		}
	}
	em.reset()
	// An earlier delivery held the ack and failed (keepHold), or its kept
	// outputs were dropped: the processor's state took the input and keeps
	// the release, and this delivery, maybe a repeat that holds nothing,
	// waits for it too.
	em.hold = held
	processing = true
	err = r.proc.Process(j.ctx, e, em)
	processing = false
	if err != nil {
		if !errs.IsPermanent(err) {
			r.keepHold(id, em.hold, j.last)
		}
		em.settle(err)
		if errs.IsPermanent(err) {
			r.m.invalid.Add(1)
		} else {
			r.m.failed.Add(1)
		}
		settled = true
		j.done(err)
		return
	}
	done, hold := j.done, em.hold
	if hold != nil {
		done = hold.wrap(j.ackLater, j.done)
		r.held.Add(id, hold) // for a redelivery while it is held
	}
	if len(em.msgs) == 0 {
		settled = true
		done(nil)
		return
	}
	outs := make([]sentOutput, len(em.msgs))
	for i := range outs {
		outs[i].msg, outs[i].settled, outs[i].late = em.msgs[i], em.settled[i], em.late[i]
	}
	r.send(j, pendingInput{id: id, outs: outs, last: j.last, done: done, hold: hold})
	settled = true // the acker settles it now
}

// keepHold keeps hold, the hold on the ack of input id whose processing
// failed, for its redelivery (process): the processor held the ack, so its
// state took the input and will release the hold, while the redelivery may
// be a repeat that holds nothing and would be acked at once. An input
// failed for good, or on its last delivery, is dead-lettered: nothing
// comes back to hold.
func (r *Runner) keepHold(id string, hold *heldAck, last bool) {
	if hold != nil && !last {
		r.held.Add(id, hold)
	}
}

// send publishes p's messages without waiting and hands p to the acker.
func (r *Runner) send(j job, p pendingInput) {
	for i := range p.outs {
		f, err := r.pub.Publish(j.ctx, p.outs[i].msg)
		if err != nil {
			// Those already sent are sent again on redelivery with the same
			// ids, and dropped by the duplicate window.
			p.sendErr = err
			break
		}
		p.outs[i].future = f
		p.sent++
	}
	r.pending <- p
}

// acker settles inputs once their outputs were acked. Futures of one
// publisher resolve roughly in send order, so waiting in order costs little
// and needs one goroutine, not one per input.
func (r *Runner) acker(pending <-chan pendingInput, drained <-chan struct{}) {
	for p := range pending {
		var first error
		for i, o := range p.outs {
			m := o.msg
			var err error
			switch {
			case i < p.sent:
				err = awaitAck(o.future, drained)
			case i == p.sent:
				err = p.sendErr
			default:
				err = fmt.Errorf("not sent after an earlier output failed: %w", p.sendErr)
			}
			if err != nil {
				r.m.outputFailures.Add(1)
				if first == nil {
					first = fmt.Errorf("stage %s: publishing %s to %s: %w", r.cfg.Name, m.ID, m.Subject, err)
				}
			} else {
				r.m.outputs.Add(1)
			}
			// An output stopped before its ack came is not settled: its
			// input is redelivered, after a restart processed again, and
			// the state that made it must stay out of the last checkpoint
			// (Output.Settled).
			switch {
			case o.settled != nil && !errors.Is(err, ErrStopped):
				o.settled(err)
			case o.settled == nil && err == nil && o.late != nil:
				o.late() // a redelivery's send stored what failed before
			}
		}
		// Kept only for an input that comes back: one refused for good or
		// failed on its last delivery is dead-lettered, and a dead letter
		// sent again is a first delivery, which looks for none.
		if first != nil && !errs.IsPermanent(first) && !p.last {
			r.keep(p.id, p.outs, p.hold)
		}
		p.done(first) // transient: the input comes back and its outputs are sent again
	}
}

// ErrStopped settles an output whose ack had not come when the stop's drain
// ended: its input is redelivered, and the output sent again with its id
// (dead-lettered on its last delivery, saying it was given back:
// errs.GivenBack).
var ErrStopped = errs.GivenBack(errors.New("stage: stopped before the output's ack came"))

// awaitAck waits for f's ack until drained is closed; an ack that came is
// taken even then.
func awaitAck(f jetstream.PubAckFuture, drained <-chan struct{}) error {
	select {
	case <-f.Ok():
		return nil
	case err := <-f.Err():
		return err
	case <-drained:
	}
	select {
	case <-f.Ok():
		return nil
	case err := <-f.Err():
		return err
	default:
		return ErrStopped
	}
}

// keep holds the outputs of input id for its redelivery. The publisher wrote
// the message id into the headers it was given; kept copies carry none, and
// no Settled: it was called once, with the failure, and the processor's
// bookkeeping of that attempt is done. StoredLate is kept: the
// redelivery's send tells it.
func (r *Runner) keep(id string, outs []sentOutput, hold *heldAck) {
	kept := make([]keptOutput, len(outs))
	for i, o := range outs {
		kept[i] = keptOutput{bus.Message{Subject: o.msg.Subject, ID: o.msg.ID, Data: o.msg.Data}, o.late}
	}
	if r.kept.Add(id, keptInput{kept, hold}) {
		r.m.keptDropped.Add(1) // the oldest kept input went
	}
}

// Kept is the number of inputs whose outputs wait for their redelivery.
func (r *Runner) Kept() int { return r.kept.Len() }

// tickLoop ticks at every multiple of TickEvery until ctx ends; a tick
// under way then goes on, and waits for its outputs' acks until drained
// ends.
func (r *Runner) tickLoop(ctx, drained context.Context) {
	every := r.cfg.TickEvery
	for {
		next := r.now().Truncate(every).Add(every)
		t := time.NewTimer(next.Sub(r.now()))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		case <-r.tickSoon:
			t.Stop()
			next = r.now() // between boundaries: for a processor that asked
		}
		if ctx.Err() != nil {
			return // the timer and the stop came together: no new tick
		}
		if err := r.Tick(drained, next); err != nil && ctx.Err() == nil {
			r.log.Warn().Err(err).Time("tick", next).Msg("periodic work failed; its outputs are retried at the next tick")
		}
	}
}

// Tick runs the processor's periodic work for the boundary now and
// publishes the outputs kept from earlier ticks and the new ones, waiting
// for their acks. Those that fail are kept for the next tick (the oldest
// dropped beyond MaxKept, counted). Run calls it every TickEvery; tests call
// it directly.
func (r *Runner) Tick(ctx context.Context, now time.Time) error {
	t, ok := r.ticker()
	if !ok {
		return nil
	}
	r.tickMu.Lock()
	defer r.tickMu.Unlock()
	r.m.ticks.Add(1)
	var em emitter
	var out Emitter = &em
	if r.sink != nil {
		out = sinkEmitter{}
	}
	// What the tick emitted before a panic is published: the state that
	// made it has moved on, and nothing would make it again.
	tickErr := r.safely("periodic work", func() error { return t.Tick(ctx, now, out) })
	sendErr := r.publishTickOutputs(ctx, em.msgs, em.settled, em.late)
	resendErr := r.resendInFlight(ctx)
	if tickErr != nil || sendErr != nil || resendErr != nil {
		r.m.tickFailures.Add(1)
	}
	return errors.Join(tickErr, sendErr, resendErr)
}

// resendInFlight sends again the outputs in the processor's InFlight whose
// publish failed. Most are kept for their input's redelivery too (the same
// id: the stream drops the second copy), but nothing else would send those
// of an input dead-lettered on its last delivery, or whose kept outputs
// were dropped (MaxKept) and whose redelivery was a repeat that made
// nothing. The oldest goes first, alone: while the stream still refuses
// it, the others wait for the next tick. r.tickMu is held.
func (r *Runner) resendInFlight(ctx context.Context) error {
	p, ok := r.proc.(InFlightOutputs)
	if !ok {
		return nil
	}
	f := p.InFlightOutputs()
	if f == nil {
		return nil
	}
	msgs := f.Failed()
	if len(msgs) == 0 {
		return nil
	}
	send := func(msgs []bus.Message) error {
		var first error
		for i, err := range r.publishAll(ctx, msgs) {
			switch {
			case err == nil:
				f.Stored(msgs[i].ID)
			case first == nil:
				first = fmt.Errorf("stage %s: publishing %s to %s again: %w", r.cfg.Name, msgs[i].ID, msgs[i].Subject, err)
			}
		}
		return first
	}
	if err := send(msgs[:1]); err != nil {
		return err
	}
	return send(msgs[1:])
}

// publishAll publishes msgs and waits for their acks until ctx ends (an
// ack that came is taken even then), counting each in the outputs stored
// or failed: the result of each, in order.
func (r *Runner) publishAll(ctx context.Context, msgs []bus.Message) []error {
	futures := make([]jetstream.PubAckFuture, len(msgs))
	errl := make([]error, len(msgs))
	for i, m := range msgs {
		futures[i], errl[i] = r.pub.Publish(ctx, m)
	}
	for i := range msgs {
		if errl[i] == nil {
			errl[i] = awaitAck(futures[i], ctx.Done())
		}
		if errl[i] != nil {
			r.m.outputFailures.Add(1)
		} else {
			r.m.outputs.Add(1)
		}
	}
	return errl
}

// safely runs f, a tick or a checkpoint, and turns a panic into its
// error, logged. Like one in Process, a panic there must not end the
// service: the crash would lose the state acked since the last
// checkpoint. The next tick or checkpoint tries again.
func (r *Runner) safely(what string, f func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			r.log.Error().Interface("panic", p).Msg(what + " panicked")
			err = fmt.Errorf("stage %s: %s panicked: %v", r.cfg.Name, what, p)
		}
	}()
	return f()
}

// ticker is the processor's or the sink's periodic work, if it has any.
func (r *Runner) ticker() (Ticker, bool) {
	if r.sink != nil {
		t, ok := r.sink.(Ticker)
		return t, ok
	}
	t, ok := r.proc.(Ticker)
	return t, ok
}

// sinkEmitter is what a Sink's Tick gets: a Sink emits nothing.
type sinkEmitter struct{}

func (sinkEmitter) Emit(Output) error { return errs.Permanent(ErrSinkEmits) }

// sendUnsent publishes the tick outputs kept from failed ticks.
func (r *Runner) sendUnsent(ctx context.Context) error {
	r.tickMu.Lock()
	defer r.tickMu.Unlock()
	return r.publishTickOutputs(ctx, nil, nil, nil)
}

// publishTickOutputs publishes the kept tick outputs, then msgs, and waits
// for their acks until ctx ends (the tick loop's when a stop's drain ended,
// the last send's within half of CheckpointTimeout: an ack lost with a
// cluster node must not hold the stop for the publisher's ack timeout);
// those that fail, or whose ack had not come (ErrStopped), are kept, the
// oldest dropped beyond MaxKept. r.tickMu is held.
func (r *Runner) publishTickOutputs(ctx context.Context, fresh []bus.Message, freshSettled []func(error), freshLate []func()) error {
	msgs := append(r.unsent, fresh...)
	settled := append(append(make([]func(error), 0, len(msgs)), r.unsettled...), freshSettled...)
	late := append(append(make([]func(), 0, len(msgs)), r.late...), freshLate...)
	r.unsent, r.unsettled, r.late = nil, nil, nil
	var first error
	for i, err := range r.publishAll(ctx, msgs) {
		m := msgs[i]
		if err != nil {
			if first == nil {
				first = fmt.Errorf("stage %s: publishing %s to %s: %w", r.cfg.Name, m.ID, m.Subject, err)
			}
			r.unsent = append(r.unsent, bus.Message{Subject: m.Subject, ID: m.ID, Data: m.Data})
			r.late = append(r.late, late[i])
			if errors.Is(err, ErrStopped) && settled[i] != nil {
				// Told by the stop's last send, which may store it yet
				// (a correlator command's answer, a detector's asset held
				// out of the checkpoint until then).
				r.unsettled = append(r.unsettled, settled[i])
				continue
			}
			r.unsettled = append(r.unsettled, nil)
		} else {
			delete(r.restored, m.ID)
			if settled[i] == nil && late[i] != nil {
				late[i]() // Settled heard the first failure
			}
		}
		if settled[i] != nil {
			settled[i](err)
		}
	}
	if n := len(r.unsent) - len(r.restored) - r.cfg.MaxKept; n > 0 {
		// the oldest go, but those a restored checkpoint held
		r.m.keptDropped.Add(uint64(n))
		var unsent []bus.Message
		var unsettled []func(error)
		var late []func()
		for i, m := range r.unsent {
			if n > 0 && !r.restored[m.ID] {
				n--
				if f := r.unsettled[i]; f != nil {
					f(fmt.Errorf("stage %s: dropped beyond max_kept: %w", r.cfg.Name, ErrStopped))
				}
				continue
			}
			unsent, unsettled, late = append(unsent, m), append(unsettled, r.unsettled[i]), append(late, r.late[i])
		}
		r.unsent, r.unsettled, r.late = unsent, unsettled, late
	}
	return first
}

// giveUpUnsent tells the Settled still waiting for the stop's last send
// that their outputs were not stored by it.
func (r *Runner) giveUpUnsent() {
	r.tickMu.Lock()
	defer r.tickMu.Unlock()
	for _, f := range r.unsettled {
		if f != nil {
			f(fmt.Errorf("stage %s: not stored by the stop's last send: %w", r.cfg.Name, ErrStopped))
		}
	}
	r.unsettled = make([]func(error), len(r.unsent))
}

// dropUnsent forgets the tick outputs kept: a fenced term's, whose state
// another instance owns now.
func (r *Runner) dropUnsent() {
	r.tickMu.Lock()
	defer r.tickMu.Unlock()
	if len(r.unsent) > 0 {
		r.log.Warn().Int("outputs", len(r.unsent)).Msg("periodic outputs of a term whose state another instance owns now: dropped")
	}
	r.unsent, r.unsettled, r.late, r.restored = nil, nil, nil, nil
}

// takeHeld puts the outputs a restored Outbox held before the tick outputs
// kept, so that the first tick sends them.
func (r *Runner) takeHeld() {
	o, ok := r.proc.(Outbox)
	if !ok {
		return
	}
	r.tickMu.Lock()
	defer r.tickMu.Unlock()
	// A correlator standing by between two terms still has the outputs it
	// kept; those the checkpoint holds too go once.
	kept := make(map[string]bool, len(r.unsent))
	for _, m := range r.unsent {
		kept[m.ID] = true
	}
	var held []bus.Message
	r.restored = map[string]bool{} // this term's: those its checkpoint held
	for _, m := range o.Held() {
		r.restored[m.ID] = true // kept already too: never dropped now
		if !kept[m.ID] {
			held = append(held, m)
		}
	}
	if len(held) == 0 {
		return
	}
	r.unsent = append(held, r.unsent...)
	r.unsettled = append(make([]func(error), len(held)), r.unsettled...)
	r.late = append(make([]func(), len(held)), r.late...)
	r.log.Info().Int("outputs", len(held)).Msg("tick outputs the last checkpoint held: sent with the first tick")
}

// Unsent is the number of tick outputs waiting for the next tick.
func (r *Runner) Unsent() int {
	r.tickMu.Lock()
	defer r.tickMu.Unlock()
	return len(r.unsent)
}

func (r *Runner) checkpointLoop(ctx context.Context) {
	cp := r.proc.(Checkpointer)
	t := time.NewTicker(r.cfg.CheckpointEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-r.soon:
			t.Reset(r.cfg.CheckpointEvery)
		}
		cctx, cancel := ctx, context.CancelFunc(func() {})
		if _, ok := cp.(Outbox); ok {
			// Ticks wait for it: an ack lost with a cluster node must not
			// hold them until the stop.
			cctx, cancel = context.WithTimeout(ctx, r.cfg.CheckpointTimeout)
		}
		if err := r.checkpoint(cctx, cp); err != nil && ctx.Err() == nil && !errors.Is(err, ErrFenced) {
			r.log.Warn().Err(err).Msg("checkpoint failed; retried at the next one")
		}
		cancel()
	}
}

// TickSoon asks for a tick now instead of at the next TickEvery boundary
// (after the one running, if one is), timed now: for a processor whose
// callers wait for work its tick does (a command the correlator applies
// there), and that takes a tick off the boundaries. Calls made before the
// tick began are served by it. Without a tick loop (WithManualTicks) it
// does nothing.
func (r *Runner) TickSoon() {
	select {
	case r.tickSoon <- struct{}{}:
	default:
	}
}

// CheckpointSoon asks for a checkpoint now instead of at the end of the
// CheckpointEvery period (after the one running, if one is): for a
// processor whose callers wait until its state holds what they asked (the
// correlator's incident commands). Calls made before it began are one
// checkpoint. A runner whose processor is no Checkpointer ignores it.
func (r *Runner) CheckpointSoon() {
	select {
	case r.soon <- struct{}{}:
	default:
	}
}

// checkpoint saves cp; an Outbox gets the tick outputs not stored first,
// and no tick runs until the checkpoint returned (so that no tick's state
// is saved without its outputs; a periodic one waits at most
// CheckpointTimeout), unless Config.TicksDuringCheckpoint.
func (r *Runner) checkpoint(ctx context.Context, cp Checkpointer) error {
	if o, ok := cp.(Outbox); ok {
		r.tickMu.Lock()
		var held []bus.Message
		if len(r.unsent) > 0 {
			held = slices.Clone(r.unsent)
		}
		o.Hold(held)
		if r.cfg.TicksDuringCheckpoint {
			r.tickMu.Unlock()
		} else {
			defer r.tickMu.Unlock()
		}
	}
	// Every input processed before the checkpoint takes its state is in
	// it: those waiting now were (the later ones wait for the next).
	acks := r.takeAwaiting()
	err := r.safely("checkpoint", func() error { return cp.Checkpoint(ctx) })
	r.settleAwaiting(acks, err)
	if err != nil {
		r.m.checkpointFailures.Add(1)
		return fmt.Errorf("stage %s: checkpoint: %w", r.cfg.Name, err)
	}
	r.m.checkpoints.Add(1)
	return nil
}

// emitter collects one input's outputs, encoded; a worker reuses its own.
// holding: the processor may hold the input's ack (Config.HoldAcks), held
// by hold once it did.
type emitter struct {
	msgs    []bus.Message
	settled []func(error)
	late    []func()
	holding bool
	hold    *heldAck
}

func (e *emitter) reset() {
	clear(e.msgs)
	clear(e.settled)
	clear(e.late)
	e.msgs, e.settled, e.late = e.msgs[:0], e.settled[:0], e.late[:0]
	e.hold = nil
}

// holdAck is HoldAck's: a tick's emitter, or one without Config.HoldAcks,
// holds nothing.
func (e *emitter) holdAck() func() {
	if !e.holding {
		return func() {}
	}
	if e.hold == nil {
		e.hold = &heldAck{}
	}
	return e.hold.hold()
}

// Message is what output o is published as: its event as JSON, under its
// id, on its subject (the event's own when o names none). An event that
// cannot be encoded is a permanent error.
func Message(o Output) (bus.Message, error) {
	if o.Event == nil {
		return bus.Message{}, errs.Permanent(ErrNilEvent)
	}
	data, err := o.Event.MarshalJSON() // not json.Marshal: it would compact the whole envelope once more
	if err != nil {
		return bus.Message{}, errs.Permanentf("stage: encoding %s event %s: %v", o.Event.Kind, o.Event.ID, err)
	}
	subject := o.Subject
	if subject == "" {
		subject = o.Event.Subject()
	}
	return bus.Message{Subject: subject, ID: o.Event.ID, Data: data}, nil
}

func (e *emitter) Emit(o Output) error {
	m, err := Message(o)
	if err != nil {
		return err
	}
	e.msgs = append(e.msgs, m)
	e.settled = append(e.settled, o.Settled)
	e.late = append(e.late, o.StoredLate)
	return nil
}

// settle reports err to every output emitted so far (none will be sent).
func (e *emitter) settle(err error) {
	for _, s := range e.settled {
		if s != nil {
			s(err)
		}
	}
	e.reset()
}
