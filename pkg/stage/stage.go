// Package stage is the runtime under every aiops service that turns events
// into events: a service is a Processor (an envelope in, outputs emitted),
// and the Runner does the rest the same way for all of them:
//
//   - decodes each delivery into an envelope (bad data is dead-lettered);
//   - calls the processor on a bounded number of workers;
//   - publishes what it emitted and acks the input only after every output
//     was acked by the stream, in the order inputs were processed;
//   - when an output fails, keeps the input's outputs (bounded) and naks the
//     input: its redelivery republishes the kept outputs under the same ids
//     instead of processing it again, so a stateful processor that already
//     took the input in (a detector that ignores a repeated sample, a miner
//     that knows the template by then) loses nothing and counts nothing twice;
//     a Checkpointer's restore (a new term) forgets them: its state decides;
//   - recovers a panicking processor as a transient failure;
//   - runs the processor's periodic work (Ticker) and state checkpoints
//     (Checkpointer: restored before the first delivery, saved every interval
//     and once more after the drain; an Outbox's checkpoint also keeps the
//     tick outputs not stored yet, which the next run sends; with
//     Config.AckAfterCheckpoint an input is acked only once a checkpoint
//     holds what it did, with Config.HoldAcks those the processor held,
//     HoldAck, once it released them);
//   - drains gracefully: on cancellation it stops fetching, finishes what it
//     was handed, and settles every delivery before it returns.
//
// A handler's result decides the delivery's fate as everywhere in aiops: nil
// acks, an errs.Permanent error dead-letters, anything else naks with backoff.
// Batching sinks (the writer) implement Sink instead of Processor and report
// each input's result when its batch committed.
//
// stagetest runs a processor through this same runner in memory.
package stage

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/aiops-dev/aiops/pkg/bus"
	"github.com/aiops-dev/aiops/pkg/config"
	"github.com/aiops-dev/aiops/pkg/errs"
	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/pkg/service"
)

// Processor turns one input event into zero or more outputs. It may be
// called from several workers at once (Config.Workers). An error marked
// errs.Permanent says the input is bad and will never be processed
// (dead-lettered); any other error asks for a redelivery. Outputs emitted
// before an error are not published.
type Processor interface {
	Process(ctx context.Context, in *event.Envelope, out Emitter) error
}

// Ticker is implemented by processors and sinks with periodic work
// (closing count intervals, closing rows that waited long enough, sending
// what a sink holds once its time came; a sink's Tick emits nothing). Tick is called at every
// multiple of Config.TickEvery of the runner's clock, with that boundary as
// now, never concurrently with itself but concurrently with Process. Its
// outputs are published before the next tick; those that fail are kept
// (bounded by Config.MaxKept) and published first by the next tick.
type Ticker interface {
	Tick(ctx context.Context, now time.Time, out Emitter) error
}

// Checkpointer is implemented by processors whose state outlives a restart.
// Restore runs before the first delivery (an error stops the stage);
// Checkpoint every Config.CheckpointEvery and once after the drain, when
// every input that was acked is in the state.
type Checkpointer interface {
	Restore(ctx context.Context) error
	Checkpoint(ctx context.Context) error
}

// Sink is a terminal stage: it takes inputs and reports each one's result
// through done, exactly once and possibly later (when the batch holding it
// committed). Flush is called once the drain has begun, so that held inputs
// are not kept waiting for a batch to fill. A Sink emits nothing.
type Sink interface {
	Write(ctx context.Context, in *event.Envelope, done func(error))
	Flush(ctx context.Context) error
}

// Output is one event a processor emits.
type Output struct {
	// Subject is where the event goes; empty means the event's own
	// (event.Envelope.Subject).
	Subject string
	Event   *event.Envelope
	// Settled, when set, is called once with the publish's result (nil
	// once the stream stored it). A processor whose checkpoint must not
	// hold an input before its output is stored waits for it. An output
	// that failed is republished later without it (with the input's
	// redelivery, or by the next tick). An input's output whose ack had
	// not come when a stop's drain ended is never settled: its input is
	// redelivered, and after a restart processed again, so the state that
	// made it must stay out of the last checkpoint. A tick's output whose
	// ack had not come then is kept, and settled by the stop's last send of
	// the kept tick outputs (ErrStopped if it did not store it either; an
	// Outbox's last checkpoint then holds it).
	Settled func(error)
	// StoredLate, when set, is called once if a later send stores the
	// output after Settled heard a failure: a tick's output by a later
	// tick's retry (a correlator command whose caller was told "not
	// stored" learns it was), an input's by its redelivery's send of the
	// outputs kept for it (a processor that keeps what it made until
	// stored forgets it). Not called when the kept outputs were dropped
	// (Config.MaxKept) or the process stopped first.
	StoredLate func()
}

// Emitter takes a processor's outputs. Emit encodes the event at once (the
// processor may reuse it afterwards); an encoding error is permanent.
type Emitter interface {
	Emit(o Output) error
}

// HoldAck holds the ack of the input being processed, out's, until the
// returned release is called (Config.HoldAcks): the input is acked once
// it succeeded and every hold on it was released, whichever comes last.
// A failed input is redelivered as ever; when its outputs were kept, the
// hold carries over to the redelivery that sends them, and when Process
// failed transiently after the hold, to the redelivery processed again
// (the state took the input: processed again it may hold nothing). An
// input that succeeded and is redelivered while its ack is held (held
// past ack_wait, its in-progress signals lost) is not processed again:
// that redelivery's ack waits for the same release. Without
// Config.HoldAcks (or from an Emitter that is not the runner's) nothing is
// held and release does nothing. release may be called from any
// goroutine, more than once.
func HoldAck(out Emitter) (release func()) {
	if h, ok := out.(interface{ holdAck() func() }); ok {
		return h.holdAck()
	}
	return func() {}
}

// Publisher sends one message and returns the future of its ack;
// *bus.Publisher is one.
type Publisher interface {
	Publish(ctx context.Context, m bus.Message) (jetstream.PubAckFuture, error)
}

// Source hands deliveries to a handler until its context ends, then waits for
// the results of what it handed out; *bus.Consumer is one. Delivered must
// count a message's deliveries (1 the first time), as JetStream does: the
// runner looks for kept outputs only on a redelivery; Last marks the
// delivery whose failure dead-letters it, for which it keeps none.
type Source interface {
	Run(ctx context.Context, h bus.AsyncHandler) error
}

// Config says how the runner drives a processor. Zero values take the
// defaults documented on each field.
type Config struct {
	// Name labels the runner's metrics and logs ("logminer").
	Name string
	// Workers is how many inputs are processed at once (default 1, which
	// keeps inputs in stream order, as a per-series detector needs, and
	// processes them on the source's own goroutine).
	Workers int
	// Queue bounds inputs handed to the workers and outputs awaiting their
	// acks (default 1024; set it to the consumer's MaxAckPending so that
	// handing out never blocks the consumer below its own bound).
	Queue int
	// MaxKept bounds the inputs whose outputs are kept after a failed
	// publish, and the tick outputs kept for the next tick (default 10,000).
	MaxKept int
	// TickEvery is the period of Ticker.Tick (required for a Ticker).
	TickEvery time.Duration
	// CheckpointEvery is the period of Checkpointer.Checkpoint (default 30s).
	CheckpointEvery time.Duration
	// DrainTimeout bounds how long a stop waits for the inputs handed out
	// to get their results (default 8s): Open gives it to the consumer,
	// and the runner stops waiting for output acks when it ends (what is
	// not settled by then is redelivered). A stop's parts must end within
	// the service's shutdown timeout (25s), with 2s to spare for a lease's
	// release (bus.Lease): NewRunner and Open refuse a Config whose do not.
	DrainTimeout time.Duration
	// CheckpointTimeout bounds what comes after the drain, the tick outputs
	// kept sent once more and the last checkpoint (default 8s), and a
	// sink's flush at the drain.
	CheckpointTimeout time.Duration
	// AckAfterCheckpoint acks an input only once a checkpoint taken after
	// it was processed is saved (a Checkpointer's; the source must offer
	// bus.Delivery.AckLater, else inputs are acked at once). For a
	// processor whose state alone keeps what an input did (an alert's
	// resolution starts a quiet period and emits nothing): acked before
	// the save, a crash would lose it for good, as the producer never
	// sends it again. A checkpoint is asked for at once when Queue/2
	// inputs wait for one (the consumer's max_ack_pending bounds them);
	// one that was not saved (Checkpointer returned an error) leaves them
	// for the next, or, ErrFenced (another instance owns the state now),
	// gives them back to the stream for that one. An input whose result
	// came while a checkpoint was under way may be in its state and still
	// wait for the next one: after a crash it comes again to a state that
	// holds it, so the processor must take an input twice as a repeat (the
	// correlator does; the log miner, whose counts would double, does not
	// use this). After the restore the runner rewinds a source that can
	// (bus.Consumer.Rewind) to its ack floor, so that the inputs the
	// restored state lacks come again first, in their order, rather than
	// after ack_wait behind newer ones.
	AckAfterCheckpoint bool
	// HoldAcks lets the processor hold the ack of an input whose effect
	// its state must save before the input may be acked (HoldAck: a
	// detector's episode opened or closed, which the next checkpoint
	// would be too late for, or the first of the samples its group rows
	// took since the last checkpoint, which keeps the rewind below under
	// them all). After a Checkpointer's restore the runner
	// rewinds a source that can (as for AckAfterCheckpoint), so that a
	// held input a crash left unacked comes again before the newer ones
	// (the processor must take the inputs after it that were acked, and
	// come again too, as repeats); after the last checkpoint it flushes
	// the acks that checkpoint released. Held inputs count against the
	// consumer's max_ack_pending on the server until released. Not with
	// AckAfterCheckpoint (NewRunner refuses both).
	HoldAcks bool
	// TicksDuringCheckpoint lets ticks run while an Outbox's periodic
	// checkpoint does; they wait only while the tick outputs not stored
	// are handed over (Outbox.Hold). For a processor whose state is never
	// saved with a tick's effect before that tick's outputs are stored
	// (the detector leaves a series or asset out of its snapshots until
	// its anomaly is), so that an output that fails during the checkpoint
	// need not be in its outbox. Without it ticks wait for the checkpoint,
	// up to CheckpointTimeout on a stalled store.
	TicksDuringCheckpoint bool
}

// ErrFenced is what a Checkpointer returns when it did not save because
// another instance owns the state now (a lost lease): not a failure of
// its own, and the inputs waiting for that checkpoint go back to the
// stream (Config.AckAfterCheckpoint), marked given back (errs.GivenBack).
var ErrFenced = errs.GivenBack(errors.New("stage: another instance owns the state: not saved"))

// DefaultConfig is a Config with every default filled in.
func DefaultConfig(name string) Config {
	return Config{Name: name, Workers: 1, Queue: 1024, MaxKept: 10_000,
		CheckpointEvery: 30 * time.Second, DrainTimeout: 8 * time.Second, CheckpointTimeout: 8 * time.Second}
}

// StopLimit is what a stage's stop must take less than: the service's
// shutdown timeout, less the release of a lease after it
// (bus.LeaseReleaseTimeout, for the stages that run under one).
const StopLimit = service.DefaultShutdownTimeout - bus.LeaseReleaseTimeout

// CheckpointBudget is what StopLimit leaves the last checkpoint after a
// consumer's stop with the defaults (the fetch under way, the drain, the
// acks' flush): a CheckpointTimeout must stay under it (Open refuses one
// that does not).
func CheckpointBudget() time.Duration {
	return StopLimit - bus.DefaultFetchWait - DefaultConfig("").DrainTimeout - bus.AckFlushTimeout
}

// ErrInvalidConfig is wrapped by Validate's errors.
var ErrInvalidConfig = fmt.Errorf("stage: %w", config.ErrInvalidConfig)

// Validate names the field that is wrong; zero values are valid and mean
// the defaults.
func (c Config) Validate() error {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrInvalidConfig, field, fmt.Sprintf(format, args...))
	}
	switch {
	case c.Name == "":
		return bad("name", "empty")
	case c.Workers < 0 || c.Workers > 1024:
		return bad("workers", "%d, want 1 to 1024", c.Workers)
	case c.Queue < 0:
		return bad("queue", "%d, want >= 1", c.Queue)
	case c.MaxKept < 0:
		return bad("max_kept", "%d, want >= 1", c.MaxKept)
	case c.TickEvery < 0:
		return bad("tick_every", "negative (%s)", c.TickEvery)
	case c.CheckpointEvery < 0:
		return bad("checkpoint_every", "negative (%s)", c.CheckpointEvery)
	case c.DrainTimeout < 0:
		return bad("drain_timeout", "negative (%s)", c.DrainTimeout)
	case c.CheckpointTimeout < 0:
		return bad("checkpoint_timeout", "negative (%s)", c.CheckpointTimeout)
	}
	return nil
}

func (c Config) withDefaults() Config {
	d := DefaultConfig(c.Name)
	if c.Workers == 0 {
		c.Workers = d.Workers
	}
	if c.Queue == 0 {
		c.Queue = d.Queue
	}
	if c.MaxKept == 0 {
		c.MaxKept = d.MaxKept
	}
	if c.CheckpointEvery == 0 {
		c.CheckpointEvery = d.CheckpointEvery
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = d.DrainTimeout
	}
	if c.CheckpointTimeout == 0 {
		c.CheckpointTimeout = d.CheckpointTimeout
	}
	return c
}
