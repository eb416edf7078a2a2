package bus

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aiops-dev/aiops/pkg/errs"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
)

// Headers set on a dead-lettered message, next to the original headers.
const (
	HeaderDeadLetterReason = "Aiops-Deadletter-Reason"
	HeaderOriginalSubject  = "Aiops-Original-Subject"
	HeaderStreamSeq        = "Aiops-Stream-Seq"
	HeaderDeliveries       = "Aiops-Deliveries"
	HeaderOriginalMsgID    = "Aiops-Original-Msg-Id"
	HeaderConsumer         = "Aiops-Consumer"
)

// Delivery is what a handler sees of a message: data and metadata, no
// transport. The runner never reuses Header or Data, so a handler may keep
// them after calling done.
type Delivery struct {
	Subject string
	Header  nats.Header
	Data    []byte
	// Delivered is 1 on the first delivery.
	Delivered uint64
	// Last is set on the MaxDeliver-th delivery: a failure dead-letters
	// it, so it will not come again.
	Last      bool
	StreamSeq uint64
	// Published is when the stream stored the message.
	Published time.Time
	// AckLater, set by a Consumer (nil from a source that cannot), is for
	// a handler whose result is durable only later (a stage whose state
	// a checkpoint saves). Called before done, it returns the delivery's
	// ack: done(nil) then settles the delivery for the consumer (its place
	// under MaxAckPending is free, a drain does not wait for it) without
	// acking it, and the function returned acks it (nil) or asks for its
	// redelivery (an error) once that is known. Never called (a crash),
	// the server redelivers the message after AckWait.
	AckLater func() (ack func(error))
	// Queued, set by a Consumer (nil from a source that cannot), is for
	// a handler that queues the delivery before it handles it (a stage's
	// workers, all busy): called as it is queued, it has the consumer tell
	// the delivery in progress while it waits, as it tells the messages
	// waiting in a fetched batch, until the function returned is called
	// (a worker took it) or its result comes. Else a queue that waits
	// longer than AckWait (workers slow, or waiting for room for their
	// outputs) has the server hand its deliveries out again, to another
	// instance too, while they are still queued here, and count a
	// delivery no handler saw.
	Queued func() (taken func())
}

// Handler processes one delivery synchronously. nil acks it; an error marked
// errs.Permanent dead-letters it; any other error redelivers it later.
type Handler func(ctx context.Context, d *Delivery) error

// AsyncHandler processes a delivery and reports the result by calling done
// exactly once, possibly later and from another goroutine (for example after
// a ClickHouse batch holding it committed). Further calls are ignored and
// logged. The runner keeps at most MaxAckPending deliveries un-done.
type AsyncHandler func(ctx context.Context, d *Delivery, done func(error))

// Sync adapts a synchronous Handler.
func Sync(h Handler) AsyncHandler {
	return func(ctx context.Context, d *Delivery, done func(error)) { done(h(ctx, d)) }
}

// ConsumerConfig describes a durable pull consumer and how the runner drives
// it. Zero values take the defaults documented on each field.
type ConsumerConfig struct {
	Stream  string `yaml:"stream"`
	Durable string `yaml:"durable"`
	// FilterSubjects restricts the consumer to these subjects (all when empty).
	FilterSubjects []string `yaml:"filter_subjects"`
	// BatchSize is the most messages one fetch asks for (default 256).
	BatchSize int `yaml:"batch_size"`
	// FetchWait is how long a fetch waits for BatchSize messages (default 1s);
	// it also bounds how long Run takes to notice cancellation.
	FetchWait time.Duration `yaml:"fetch_wait"`
	// FetchMaxBytes bounds the bytes one fetch can bring (0: no bound but
	// BatchSize): what a fetch brings waits in the client until the
	// handler takes it, outside any bound the handler keeps. A fetch asks
	// for at most as many messages as fit in it at the largest size a
	// message can have (the server's max_payload, 1 MiB by default), and
	// always for one at least (see fetchBatch).
	FetchMaxBytes int `yaml:"fetch_max_bytes"`
	// MaxAckPending bounds deliveries handed to the handler and not yet done
	// (default 1024); it is also the server-side limit.
	MaxAckPending int `yaml:"max_ack_pending"`
	// AckWait is how long the server waits for a result before redelivering
	// (default 30s). It must exceed the longest time a handler holds a
	// delivery, batching included (the messages of a fetched batch that
	// wait for the handler to take them are told in progress meanwhile).
	AckWait time.Duration `yaml:"ack_wait"`
	// MaxDeliver is how many deliveries a message gets before it is
	// dead-lettered (default 5).
	MaxDeliver int `yaml:"max_deliver"`
	// Backoff gives the redelivery delay after a transient error by delivery
	// count: Backoff[Delivered-1], the last entry repeating. Empty means
	// exponential from 1s, doubling up to 2m, with ±20% jitter so that a burst
	// of failures does not come back as a burst.
	Backoff []time.Duration `yaml:"backoff"`
	// DeadLetterPrefix starts the dead-letter subject
	// <prefix>.<stream>.<durable> (default "deadletter").
	DeadLetterPrefix string `yaml:"deadletter_prefix"`
	// StartSeq is the stream sequence a consumer created now starts at
	// (0: the stream's beginning); one that exists goes on where it is.
	// Set by a service, not configured: a correlator partition added to
	// a running layout starts where the layout's consumers stand.
	StartSeq uint64 `yaml:"-"`
	// Metadata's keys are set on the consumer, created now or one that
	// exists (which keeps its other keys). Set by a service, not
	// configured: a correlator partition records the layout it was
	// created in, and whether it ran in another since.
	Metadata map[string]string `yaml:"-"`
}

// Of fills an unset stream, durable name and filter: the consumer a
// service reads by default, which its configuration may change.
func (c ConsumerConfig) Of(stream, durable string, filters ...string) ConsumerConfig {
	if c.Stream == "" {
		c.Stream = stream
	}
	if c.Durable == "" {
		c.Durable = durable
	}
	if len(c.FilterSubjects) == 0 && len(filters) > 0 {
		c.FilterSubjects = append([]string(nil), filters...)
	}
	return c
}

// WithDefaults returns c with its zero fields set to their defaults.
func (c ConsumerConfig) WithDefaults() ConsumerConfig {
	if c.BatchSize == 0 {
		c.BatchSize = 256
	}
	if c.FetchWait == 0 {
		c.FetchWait = DefaultFetchWait
	}
	if c.MaxAckPending == 0 {
		c.MaxAckPending = max(1024, c.BatchSize)
	}
	if c.AckWait == 0 {
		c.AckWait = 30 * time.Second
	}
	if c.MaxDeliver == 0 {
		c.MaxDeliver = 5
	}
	if c.DeadLetterPrefix == "" {
		c.DeadLetterPrefix = "deadletter"
	}
	return c
}

func validName(s string) bool {
	return s != "" && !strings.ContainsAny(s, ". \t\r\n*>/\\")
}

// Validate checks the config; zero values are valid and mean the defaults.
func (c ConsumerConfig) Validate() error {
	if !validName(c.Stream) {
		return invalid("stream", "%q is not a stream name (non-empty, no '.', '*', '>', '/', spaces)", c.Stream)
	}
	if !validName(c.Durable) {
		return invalid("durable", "%q is not a consumer name (non-empty, no '.', '*', '>', '/', spaces)", c.Durable)
	}
	for i, s := range c.FilterSubjects {
		if s == "" || strings.ContainsAny(s, " \t\r\n") {
			return invalid(fmt.Sprintf("filter_subjects[%d]", i), "%q is not a subject", s)
		}
	}
	if c.BatchSize < 0 {
		return invalid("batch_size", "%d, want >= 1", c.BatchSize)
	}
	if c.FetchWait < 0 {
		return invalid("fetch_wait", "negative (%s)", c.FetchWait)
	}
	if c.FetchWait != 0 && c.FetchWait < 10*time.Millisecond {
		return invalid("fetch_wait", "%s is below the 10ms the server accepts", c.FetchWait)
	}
	if c.MaxAckPending < 0 {
		return invalid("max_ack_pending", "%d, want >= 1", c.MaxAckPending)
	}
	if c.BatchSize > 0 && c.MaxAckPending > 0 && c.BatchSize > c.MaxAckPending {
		return invalid("batch_size", "%d exceeds max_ack_pending %d", c.BatchSize, c.MaxAckPending)
	}
	if c.AckWait < 0 || (c.AckWait > 0 && c.AckWait < time.Second) {
		return invalid("ack_wait", "%s, want >= 1s", c.AckWait)
	}
	if c.MaxDeliver < 0 {
		return invalid("max_deliver", "%d, want >= 1", c.MaxDeliver)
	}
	if c.FetchMaxBytes < 0 {
		return invalid("fetch_max_bytes", "%d, want >= 0", c.FetchMaxBytes)
	}
	for i, d := range c.Backoff {
		if d < 0 {
			return invalid(fmt.Sprintf("backoff[%d]", i), "negative (%s)", d)
		}
	}
	if c.DeadLetterPrefix != "" && (strings.ContainsAny(c.DeadLetterPrefix, " \t\r\n*>") ||
		strings.HasPrefix(c.DeadLetterPrefix, ".") || strings.HasSuffix(c.DeadLetterPrefix, ".")) {
		return invalid("deadletter_prefix", "%q is not a subject prefix", c.DeadLetterPrefix)
	}
	return nil
}

// jetstreamConfig is the server-side consumer. The server's MaxDeliver is
// unbounded: the runner dead-letters on the MaxDeliver-th failure itself, a
// message whose deliveries all timed out (a crashing handler) comes back only
// to be dead-lettered, and one whose dead letter could not be stored is
// naked to be dead-lettered again later. A bound on the server would drop
// it silently once the dead-letter stream was unavailable for a few tries.
func (c ConsumerConfig) jetstreamConfig() jetstream.ConsumerConfig {
	cc := jetstream.ConsumerConfig{
		Durable:       c.Durable,
		AckPolicy:     jetstream.AckExplicitPolicy,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckWait:       c.AckWait,
		MaxDeliver:    -1,
		MaxAckPending: c.MaxAckPending,
		Metadata:      c.Metadata,
	}
	// A single filter uses the older field, which servers before 2.10 know.
	if len(c.FilterSubjects) == 1 {
		cc.FilterSubject = c.FilterSubjects[0]
	} else {
		cc.FilterSubjects = c.FilterSubjects
	}
	return cc
}

// Stats counts what a consumer did with its deliveries.
type Stats struct {
	Delivered        uint64 // handed to the handler
	Acked            uint64
	Naked            uint64 // redelivery requested after a transient error
	DeadLettered     uint64 // stored on the dead-letter subject and terminated
	DeadLetterFailed uint64 // dead-letter publish failed, message naked instead
	AckFailed        uint64 // ack/nak/term could not be sent; the server redelivers
	Outstanding      int64  // handed to the handler, result not yet applied
	InProgress       uint64 // in-progress signals sent for deliveries held long (WithInProgress) or waiting in a fetched batch
	// DeadLetterNearFull counts dead letters stored while the dead-letter
	// stream was seen at 90% of its max_bytes or max_msgs or more (looked
	// at once a minute): past its limit it discards its oldest.
	DeadLetterNearFull uint64
}

// DefaultFetchWait is ConsumerConfig.FetchWait's default.
const DefaultFetchWait = time.Second

// AckFlushTimeout bounds the flush of acks at the end of Run's drain.
const AckFlushTimeout = 5 * time.Second

// ErrDrainTimeout is returned by Run when deliveries were still un-done after
// the drain timeout. They are not lost: the server redelivers them.
var ErrDrainTimeout = errors.New("bus: drain timeout")

// ErrAlreadyRunning is returned by a second concurrent Run.
var ErrAlreadyRunning = errors.New("bus: consumer already running")

// Consumer runs a durable pull consumer.
type Consumer struct {
	js      jetstream.JetStream
	cons    jetstream.Consumer
	cfg     ConsumerConfig
	log     zerolog.Logger
	dlSubj  string
	drain   time.Duration
	backoff func(delivered uint64) time.Duration
	// dl publishes dead letters, dlWait bounding the wait for their acks:
	// a context of their own, whose timeout frees the slot of an ack that
	// never comes (the connection's shared context has no timeout, and
	// detector snapshots publish on it too).
	dl     jetstream.JetStream
	dlWait time.Duration
	// dlChecked is when the dead-letter stream's room was last looked at
	// (unix ns), dlNearFull what was seen (checkDeadLetterRoom).
	dlCheckEvery time.Duration
	dlChecked    atomic.Int64
	dlNearFull   atomic.Bool

	running atomic.Bool
	// settleOnRun (WithSettingsOnRun): a consumer that exists gets its
	// settings on the server from Run, not from NewConsumer.
	settleOnRun bool
	// outstanding counts reserved slots: deliveries being fetched or handed
	// out and not yet settled. freed wakes the fetch loop when it drops.
	outstanding atomic.Int64
	freed       chan struct{}

	// held (WithInProgress; nil without) maps each delivery handed out
	// and not settled to when it was handed out or last told in progress.
	heldMu sync.Mutex
	held   map[*delivery]time.Time
	// later maps each delivery whose ack waits (AckLater) to when it was
	// last told in progress, under heldMu: its ack may wait longer than
	// AckWait (a slow save, a store down), and a redelivery would be
	// processed again and, after MaxDeliver, dead-lettered though saved.
	later map[*delivery]time.Time
	// queued maps each delivery a handler queued (Delivery.Queued) and no
	// worker took yet to when it was queued or last told in progress,
	// under heldMu.
	queued map[*delivery]time.Time
	// batch is the fetch being handed out, whose messages not yet handed
	// to the handler keepInProgress tells in progress (nil between).
	batch atomic.Pointer[fetched]

	// ackFloor is the highest ack floor the server reported for the
	// consumer (every message of the stream up to it acked or terminated),
	// asked at most every ackFloorEvery by Run; streamCreated tells the
	// stream it belongs to. A consumer deleted on the server is re-created
	// from the message after it (recreate).
	ackFloor      atomic.Uint64
	streamCreated time.Time
	floorAsked    time.Time
	// floorSettled is settled() when the floor was last learned with
	// every ack of this runner in it, askSettled when it was last asked:
	// until this runner settles another delivery only other instances'
	// acks move the server's floor, and a floor known lower only hands
	// out more again after a deletion. An idle consumer asks nothing.
	floorSettled, askSettled uint64
	// streamEpoch is streamCreated in Unix nanoseconds, for dead letters'
	// ids (sent from any goroutine): sequences start over on a stream
	// created again.
	streamEpoch atomic.Int64

	// reasons holds, by stream sequence, why a message on its last
	// delivery was to be dead-lettered when its dead letter could not be
	// stored: its redelivery is dead-lettered without the handler, and
	// must say why. Bounded (maxReasons); one dropped gets the generic
	// reason.
	reasonsMu sync.Mutex
	reasons   map[uint64]string

	delivered, acked, naked, deadLettered, deadLetterFailed, ackFailed, toldInProgress, deadLetterNearFull atomic.Uint64
	lastAckWarn                                                                                            atomic.Int64 // unix ns of the last ack-failure log line
}

// ConsumerOption configures NewConsumer.
type ConsumerOption func(*Consumer) error

// WithInProgress makes Run tell the server that a delivery handed out
// and not settled for a third of AckWait is in progress, again every
// third of AckWait until its result comes: for a handler that holds
// deliveries on purpose (the notifier holds an incident event until its
// notification went out, which can take several AckWaits), so that the
// server neither redelivers them while they are handled nor counts the
// redeliveries against MaxDeliver. A process that dies stops telling, and
// its deliveries come again after AckWait. A delivery's signals stop at
// its result: one being dead-lettered is told in progress once, and its
// dead letter waits for the store at most half of AckWait.
func WithInProgress() ConsumerOption {
	return func(c *Consumer) error {
		c.held = map[*delivery]time.Time{}
		return nil
	}
}

// WithSettingsOnRun makes NewConsumer leave a consumer that exists as it
// is on the server (it still refuses settings the server could not apply
// to it) and each Run apply them before its first fetch: for an instance
// that stands by while another one reads its durable (a lease), whose
// settings, if they differ (an upgrade that changed ack_wait), must not
// change the consumer under that reader. The reader tells what it holds
// in progress every third of its own ack_wait: a shorter one set under it
// had the server redeliver what it held, again and again.
func WithSettingsOnRun() ConsumerOption {
	return func(c *Consumer) error {
		c.settleOnRun = true
		return nil
	}
}

// WithDrainTimeout bounds how long Run waits, after its context is cancelled,
// for outstanding done calls (default 30s).
func WithDrainTimeout(d time.Duration) ConsumerOption {
	return func(c *Consumer) error {
		if d <= 0 {
			return invalid("drain timeout", "%s, want > 0", d)
		}
		c.drain = d
		return nil
	}
}

// StopTimeout is the longest Run takes to return after its context is
// cancelled: the fetch under way ends (FetchWait), the drain waits for
// outstanding deliveries, the acks are flushed.
func (c *Consumer) StopTimeout() time.Duration {
	return c.cfg.FetchWait + c.drain + AckFlushTimeout
}

// WithBackoffFunc replaces the redelivery delay computation (Backoff and the
// default exponential); tests use it for determinism.
func WithBackoffFunc(f func(delivered uint64) time.Duration) ConsumerOption {
	return func(c *Consumer) error {
		if f == nil {
			return invalid("backoff func", "nil")
		}
		c.backoff = f
		return nil
	}
}

// NewConsumer validates cfg, applies opts (one that fails refuses before
// the server is asked anything) and ensures the durable consumer on the
// server.
func NewConsumer(ctx context.Context, js jetstream.JetStream, cfg ConsumerConfig, log zerolog.Logger, opts ...ConsumerOption) (*Consumer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	c := &Consumer{
		js:     js,
		cfg:    cfg,
		log:    log.With().Str("stream", cfg.Stream).Str("consumer", cfg.Durable).Logger(),
		dlSubj: cfg.DeadLetterPrefix + "." + cfg.Stream + "." + cfg.Durable,
		drain:  30 * time.Second,
		// Within the ack wait the in-progress signal sent at its start
		// gives (deadLetter): the server must not hand the message out
		// again while its dead letter waits.
		dlWait:       min(10*time.Second, cfg.AckWait/2),
		dlCheckEvery: time.Minute,
		later:        map[*delivery]time.Time{},
		queued:       map[*delivery]time.Time{},
		freed:        make(chan struct{}, 1),
	}
	c.backoff = c.defaultBackoff
	for _, o := range opts {
		if err := o(c); err != nil {
			return nil, err
		}
	}
	// Without a stream behind the dead-letter subject every dead letter would
	// fail and its message come back for ever (the server's MaxDeliver is
	// unbounded, see jetstreamConfig): refuse to start.
	if _, err := js.StreamNameBySubject(ctx, c.dlSubj); err != nil {
		return nil, fmt.Errorf("bus: consumer %s: no stream stores dead-letter subject %s (add one, e.g. DEADLETTER on %s.>): %w",
			cfg.Durable, c.dlSubj, cfg.DeadLetterPrefix, err)
	}
	dl, err := jetstream.New(js.Conn(), jetstream.WithPublishAsyncTimeout(c.dlWait))
	if err != nil {
		return nil, fmt.Errorf("bus: consumer %s: dead-letter publisher: %w", cfg.Durable, err)
	}
	c.dl = dl
	have, want, err := c.wanted(ctx)
	if err != nil {
		return nil, err
	}
	cons := have
	if have != nil && c.settleOnRun {
		// Run applies them: refuse now what it could not.
		if err := checkConsumerChange(cfg.Stream+"/"+cfg.Durable, have.CachedInfo().Config, want); err != nil {
			return nil, err
		}
	} else if cons, err = EnsureConsumer(ctx, js, cfg.Stream, want); err != nil {
		return nil, err
	}
	c.cons = cons
	c.ackFloor.Store(cons.CachedInfo().AckFloor.Stream)
	s, err := js.Stream(ctx, cfg.Stream)
	if err != nil {
		return nil, fmt.Errorf("bus: look up stream %s: %w", cfg.Stream, err)
	}
	c.streamCreated = s.CachedInfo().Created
	c.streamEpoch.Store(c.streamCreated.UnixNano())
	return c, nil
}

func (c *Consumer) defaultBackoff(delivered uint64) time.Duration {
	if n := len(c.cfg.Backoff); n > 0 {
		i := int(min(delivered, uint64(n))) - 1
		return c.cfg.Backoff[max(i, 0)]
	}
	d := time.Second << min(delivered-1, 7)
	d = min(d, 2*time.Minute)
	jitter := 0.8 + 0.4*rand.Float64()
	return time.Duration(float64(d) * jitter)
}

// wanted is the consumer on the server (nil when there is none) and the
// settings to give it: the configuration's, keeping where one that
// exists starts and its metadata's other keys.
func (c *Consumer) wanted(ctx context.Context) (jetstream.Consumer, jetstream.ConsumerConfig, error) {
	cfg := c.cfg
	want := cfg.jetstreamConfig()
	// One this runner re-created starts past what was acked (recreate);
	// where a consumer starts matters only when it is created.
	have, err := c.js.Consumer(ctx, cfg.Stream, cfg.Durable)
	switch {
	case err == nil:
		hc := have.CachedInfo().Config
		if hc.DeliverPolicy == jetstream.DeliverByStartSequencePolicy {
			want.DeliverPolicy, want.OptStartSeq = hc.DeliverPolicy, hc.OptStartSeq
		}
		if len(cfg.Metadata) > 0 {
			want.Metadata = maps.Clone(hc.Metadata)
			if want.Metadata == nil {
				want.Metadata = map[string]string{}
			}
			maps.Copy(want.Metadata, cfg.Metadata)
		} else {
			want.Metadata = hc.Metadata
		}
		return have, want, nil
	case errors.Is(err, jetstream.ErrConsumerNotFound):
		if cfg.StartSeq > 0 {
			want.DeliverPolicy, want.OptStartSeq = jetstream.DeliverByStartSequencePolicy, cfg.StartSeq
		}
		return nil, want, nil
	default:
		return nil, want, fmt.Errorf("bus: look up consumer %s on stream %s: %w", cfg.Durable, cfg.Stream, err)
	}
}

// DeadLetterSubject is where this consumer's dead letters go.
func (c *Consumer) DeadLetterSubject() string { return c.dlSubj }

// Stats returns the counters so far.
func (c *Consumer) Stats() Stats {
	return Stats{
		Delivered:        c.delivered.Load(),
		Acked:            c.acked.Load(),
		Naked:            c.naked.Load(),
		DeadLettered:     c.deadLettered.Load(),
		DeadLetterFailed: c.deadLetterFailed.Load(),
		AckFailed:        c.ackFailed.Load(),
		Outstanding:      c.outstanding.Load(),
		InProgress:       c.toldInProgress.Load(),

		DeadLetterNearFull: c.deadLetterNearFull.Load(),
	}
}

func (c *Consumer) release(n int64) {
	if n == 0 {
		return
	}
	c.outstanding.Add(-n)
	select {
	case c.freed <- struct{}{}:
	default:
	}
}

// settle applies the consumer's settings on the server
// (WithSettingsOnRun). One deleted meanwhile is not created here,
// delivering the whole stream: the first fetch re-creates it after the
// ack floor.
func (c *Consumer) settle(ctx context.Context) error {
	have, want, err := c.wanted(ctx)
	if err != nil || have == nil {
		return err
	}
	cons, err := EnsureConsumer(ctx, c.js, c.cfg.Stream, want)
	if err != nil {
		return err // c.cons stays what it was, for the next Run
	}
	c.cons = cons
	return nil
}

// Run fetches batches and hands each delivery to h until ctx is cancelled.
// Then it stops fetching, naks what was fetched but not yet handed out, waits
// up to the drain timeout for outstanding done calls, and returns nil (or
// ErrDrainTimeout). A connection closed for good ends it the same way, with
// an error wrapping nats.ErrConnectionClosed. Deliveries never settled are redelivered by the server
// after AckWait: nothing accepted is lost.
func (c *Consumer) Run(ctx context.Context, h AsyncHandler) error {
	if h == nil {
		return invalid("handler", "nil")
	}
	if !c.running.CompareAndSwap(false, true) {
		return ErrAlreadyRunning
	}
	defer c.running.Store(false)
	if c.settleOnRun {
		if err := c.settle(ctx); err != nil {
			if ctx.Err() != nil {
				return nil // stopped before it began: nothing fetched, nothing to drain
			}
			return err
		}
	}

	// Handlers keep their context during the drain, so that a batch in
	// progress can still commit; it ends when the drain does.
	hctx, hcancel := context.WithCancel(context.WithoutCancel(ctx))
	defer hcancel()
	{
		// Until the drain ends: a held delivery is still handled then.
		// What is still held after it (the drain timed out, an ack that
		// waits for a save past the stop) is left to the server's
		// redelivery: a later Run must not tell it in progress, which
		// would reset the ack timer of its redelivery.
		var wg sync.WaitGroup
		wg.Go(func() { c.keepInProgress(hctx) })
		defer func() {
			hcancel()
			wg.Wait()
			c.heldMu.Lock()
			clear(c.held)
			clear(c.later)
			clear(c.queued)
			c.heldMu.Unlock()
		}()
	}

	limit := int64(c.cfg.MaxAckPending)
	var fetchErrDelay time.Duration
	for ctx.Err() == nil {
		free := limit - c.outstanding.Load()
		if free <= 0 {
			select {
			case <-c.freed:
			case <-ctx.Done():
			}
			continue
		}
		n := min(free, c.fetchBatch())
		c.outstanding.Add(n)
		got, err := c.fetch(ctx, hctx, int(n), h)
		c.release(n - int64(got))
		if errors.Is(err, nats.ErrConnectionClosed) {
			// Closed for good (max_reconnects spent): no fetch can succeed
			// again, and the service must end to be restarted. The drain
			// logs what it left; its ErrDrainTimeout must not stand for
			// this error, which callers treat as a clean stop.
			_ = c.drainOutstanding()
			return fmt.Errorf("bus: consumer %s: %w", c.cfg.Durable, err)
		}
		if err != nil {
			fetchErrDelay = min(max(2*fetchErrDelay, 100*time.Millisecond), 5*time.Second)
			c.log.Warn().Err(err).Dur("retry_in", fetchErrDelay).Msg("fetch failed")
			// A pull request to a consumer that is gone gets no responders:
			// only a fetch waiting when it was deleted hears "consumer
			// deleted", and the runner may have been at its bound then.
			if errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrConsumerDeleted) ||
				errors.Is(err, nats.ErrNoResponders) {
				c.recreate(ctx)
			}
			select {
			case <-time.After(fetchErrDelay):
			case <-ctx.Done():
			}
			continue
		}
		fetchErrDelay = 0
		if time.Since(c.floorAsked) >= ackFloorEvery && c.settled() != c.floorSettled {
			c.askAckFloor(ctx)
		}
	}
	return c.drainOutstanding()
}

// ackFloorEvery is how often Run asks the server for the consumer's ack
// floor while it settles deliveries: what a re-created consumer hands out
// again is what was acked since.
const ackFloorEvery = time.Second

// settled counts the deliveries this runner acked or terminated: what
// moves the ack floor.
func (c *Consumer) settled() uint64 { return c.acked.Load() + c.deadLettered.Load() }

// askAckFloor raises ackFloor to the server's. A failure is left to the
// next fetch to tell; the floor known stays, which is never too high, and
// is asked again.
func (c *Consumer) askAckFloor(ctx context.Context) {
	c.floorAsked = time.Now()
	// Counted before the request. The server applies acks apart from its
	// API requests, so the answer may miss those sent just before: the
	// floor holds all of them once nothing was settled for a whole
	// ackFloorEvery before the request.
	settled := c.settled()
	actx, cancel := context.WithTimeout(ctx, c.cfg.FetchWait)
	defer cancel()
	info, err := c.cons.Info(actx)
	if err != nil {
		return
	}
	if settled == c.askSettled {
		c.floorSettled = settled
	}
	c.askSettled = settled
	// A floor never goes down on one stream; a consumer just re-created
	// by another instance from an older floor reports that one.
	if f := info.AckFloor.Stream; f > c.ackFloor.Load() {
		c.ackFloor.Store(f)
	}
}

// defaultMaxPayload is nats-server's default max_payload, the largest
// message it takes, for a connection that does not know its server's.
const defaultMaxPayload = 1 << 20

// fetchBatch is the most messages one fetch asks for: BatchSize, and
// under FetchMaxBytes only as many as fit at the largest size a message
// can have, one at least. The bound is kept by the count alone: a fetch
// with a byte bound (the server's max_bytes) lost messages on a
// replicated stream. The server sends a replicated consumer's deliveries
// once its replicas recorded them, but ends a fetch whose count is
// reached with bytes left ("409 Batch Completed") at once; that status
// overtook the fetch's last messages, the client closed the fetch on it
// and dropped them, and the server, counting them delivered, handed them
// out again only after AckWait, when the same could happen to them again
// (nats-server 2.15.2; TestConsumerOnAReplicatedStreamGetsEachMessageAtItsFirstDelivery).
func (c *Consumer) fetchBatch() int64 {
	n := int64(c.cfg.BatchSize)
	if c.cfg.FetchMaxBytes > 0 {
		largest := c.js.Conn().MaxPayload()
		if largest <= 0 {
			largest = defaultMaxPayload
		}
		n = min(n, max(1, int64(c.cfg.FetchMaxBytes)/largest))
	}
	return n
}

// fetch runs one fetch and dispatches what arrives; it returns how many
// deliveries it handed to h (or settled itself).
func (c *Consumer) fetch(ctx, hctx context.Context, n int, h AsyncHandler) (int, error) {
	mb, err := c.cons.Fetch(n, jetstream.FetchMaxWait(c.cfg.FetchWait))
	if err != nil {
		return 0, err
	}
	// The batch waits in the client while the handler takes it one by one
	// (a processor with one worker, which may wait a second for room for
	// its outputs): what still waits is told in progress, or the server
	// would hand it out again, to another instance too, and count a
	// delivery no handler saw.
	b := &fetched{since: time.Now()}
	queue := make(chan jetstream.Msg, n) // a fetch brings at most n: never full
	go func() {
		defer close(queue)
		for msg := range mb.Messages() {
			b.add(msg)
			queue <- msg
		}
	}()
	c.batch.Store(b)
	defer c.batch.Store(nil)
	got := 0
	for msg := range queue {
		got++
		told := b.take()
		if ctx.Err() != nil && !c.lastDelivery(msg) {
			// Fetched after cancellation: give it back rather than wait
			// for AckWait. The nak costs it a delivery, so one on its
			// last is handed out instead: given back unhandled it would
			// be dead-lettered unhandled, and a few stops in a row would
			// dead-letter good messages no handler ever saw. Its
			// redelivery waits FetchWait, until this fetch ended: naked
			// at once, it came straight back into this fetch, again and
			// again, and was on its last delivery within milliseconds
			// (handed to a correlator whose lease ran out, dead-lettered).
			if err := msg.NakWithDelay(c.cfg.FetchWait); err != nil {
				c.ackFailed.Add(1)
			}
			c.release(1)
			continue
		}
		if told {
			// It waited long enough to be told: its handler gets a whole
			// AckWait from now.
			_ = msg.InProgress()
		}
		c.dispatch(hctx, msg, h)
	}
	if err := mb.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, context.DeadlineExceeded) {
		return got, err
	}
	return got, nil
}

// fetched is a fetch's batch while it is handed out: msgs[next:] came and
// wait for the handler.
type fetched struct {
	mu    sync.Mutex
	msgs  []jetstream.Msg
	next  int
	since time.Time // when the fetch began, or those waiting were last told
	told  bool      // those waiting were told in progress at least once
}

func (b *fetched) add(m jetstream.Msg) {
	b.mu.Lock()
	b.msgs = append(b.msgs, m)
	b.mu.Unlock()
}

// take marks the next message handed out and tells whether the batch was
// told in progress while it waited.
func (b *fetched) take() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.msgs[b.next] = nil // the handler's now
	b.next++
	return b.told
}

// tell tells the messages still waiting that they are in progress, once
// after have passed since the fetch or the last time; it returns how many
// were told and the last failure (tried again at the next call).
func (b *fetched) tell(now time.Time, after time.Duration) (told, failed int, failure error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if now.Sub(b.since) < after {
		return 0, 0, nil
	}
	for _, m := range b.msgs[b.next:] {
		if err := m.InProgress(); err != nil {
			failed, failure = failed+1, err
			continue
		}
		told++
	}
	if failed == 0 {
		b.since, b.told = now, true
	}
	return told, failed, failure
}

// lastDelivery tells whether msg is on its MaxDeliver-th delivery or past it.
func (c *Consumer) lastDelivery(msg jetstream.Msg) bool {
	meta, err := msg.Metadata()
	return err == nil && meta.NumDelivered >= uint64(c.cfg.MaxDeliver)
}

func (c *Consumer) recreate(ctx context.Context) {
	switch cons, err := c.js.Consumer(ctx, c.cfg.Stream, c.cfg.Durable); {
	case err == nil:
		// Still there: no responders during a restart or leader change.
		c.cons = cons
		return
	case !errors.Is(err, jetstream.ErrConsumerNotFound):
		// JetStream itself is not answering (an outage, a restart): the
		// fetch's own warning tells it, and the next failure looks again.
		return
	}
	// The deleted consumer's state went with it: created to deliver all,
	// it would hand out again the whole stream, which the notifier would
	// notify again. It starts after the last ack floor known instead:
	// what was acked since comes again (at least once), nothing unacked
	// is skipped. On a stream deleted and created again its sequences
	// start over, and so does the consumer.
	want := c.cfg.jetstreamConfig()
	floor := c.ackFloor.Load()
	s, err := c.js.Stream(ctx, c.cfg.Stream)
	if err != nil {
		c.log.Error().Err(err).Msg("re-creating the deleted consumer failed: its stream cannot be looked up")
		return
	}
	if created := s.CachedInfo().Created; !created.Equal(c.streamCreated) {
		c.log.Warn().Time("stream_created", created).Msg("the stream was created again: the consumer starts at its beginning")
		floor = 0
		c.ackFloor.Store(0)
		c.streamCreated = created
		c.streamEpoch.Store(created.UnixNano())
		c.reasonsMu.Lock()
		clear(c.reasons) // another stream's sequences
		c.reasonsMu.Unlock()
	}
	if floor > 0 {
		want.DeliverPolicy, want.OptStartSeq = jetstream.DeliverByStartSequencePolicy, floor+1
	}
	cons, err := EnsureConsumer(ctx, c.js, c.cfg.Stream, want)
	if err != nil {
		c.log.Error().Err(err).Msg("re-creating the deleted consumer failed")
		return
	}
	c.log.Warn().Uint64("start_seq", floor+1).Msg("consumer was deleted on the server and has been re-created after its last ack floor")
	c.cons = cons
}

// delivery carries a message from fetch to its settlement.
type delivery struct {
	Delivery
	c      *Consumer
	msg    jetstream.Msg
	once   atomic.Bool
	later  atomic.Bool // AckLater was called: done(nil) does not ack
	queued atomic.Bool // Queued was called and no worker took it: it may be in Consumer.queued
}

// queue is Delivery.Queued.
func (d *delivery) queue() func() {
	c := d.c
	if c.held != nil {
		return func() {} // held, it is told in progress until its result
	}
	d.queued.Store(true)
	c.heldMu.Lock()
	if !d.once.Load() { // not settled (done deletes it under heldMu)
		c.queued[d] = time.Now()
	}
	c.heldMu.Unlock()
	return func() {
		c.heldMu.Lock()
		delete(c.queued, d)
		d.queued.Store(false) // done need not look again
		c.heldMu.Unlock()
	}
}

// ackLater is Delivery.AckLater.
func (d *delivery) ackLater() func(error) {
	d.later.Store(true)
	c := d.c
	c.heldMu.Lock()
	c.later[d] = time.Now()
	c.heldMu.Unlock()
	var once atomic.Bool
	return func(err error) {
		if !once.CompareAndSwap(false, true) {
			return
		}
		// Under heldMu, as done: no in-progress signal after a nak.
		c.heldMu.Lock()
		defer c.heldMu.Unlock()
		delete(c.later, d)
		if err != nil {
			if d.Delivered >= uint64(c.cfg.MaxDeliver) {
				// Its redelivery is dead-lettered without the handler.
				c.keepReason(d.StreamSeq, c.lastReason(err))
			}
			if nerr := d.msg.Nak(); nerr != nil {
				c.ackFailure(nerr, d.StreamSeq, "nak failed; the message will be redelivered after ack_wait")
			} else {
				c.naked.Add(1)
			}
			return
		}
		c.ack(d)
	}
}

// Rewind hands out again, at once and in stream order, every message
// after the consumer's ack floor, before any newer one (JetStream's
// consumer reset). Left to the server, those delivered to an instance
// that died without acking them come again only once their ack_wait
// ran out, behind whatever arrived meanwhile. Their delivery counts
// start over. A server without the reset (an older nats-server) answers
// an error, and they come after ack_wait as before.
func (c *Consumer) Rewind(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, rewindTimeout)
	defer cancel()
	if _, err := c.js.ResetConsumer(ctx, c.cfg.Stream, c.cfg.Durable); err != nil {
		return fmt.Errorf("bus: consumer %s: rewind to the ack floor: %w", c.cfg.Durable, err)
	}
	return nil
}

// rewindTimeout bounds Rewind: a server that does not know the request
// may leave it unanswered, and the start must go on without it.
const rewindTimeout = 5 * time.Second

// FlushAcks waits until the acks sent so far (AckLater's among them) reached
// the server, or ctx ends: a connection closed at once after would lose
// those still buffered.
func (c *Consumer) FlushAcks(ctx context.Context) error {
	return c.js.Conn().FlushWithContext(ctx)
}

func (c *Consumer) dispatch(hctx context.Context, msg jetstream.Msg, h AsyncHandler) {
	c.delivered.Add(1)
	d := &delivery{c: c, msg: msg}
	d.AckLater = d.ackLater
	d.Queued = d.queue
	d.Subject = msg.Subject()
	d.Header = msg.Headers()
	d.Data = msg.Data()
	meta, err := msg.Metadata()
	if err != nil {
		// Not a JetStream message: nothing to ack, nothing to redeliver.
		c.log.Error().Err(err).Str("subject", d.Subject).Msg("delivery without JetStream metadata")
		c.release(1)
		return
	}
	d.Delivered = meta.NumDelivered
	d.Last = d.Delivered >= uint64(c.cfg.MaxDeliver)
	d.StreamSeq = meta.Sequence.Stream
	d.Published = meta.Timestamp
	if d.Delivered > uint64(c.cfg.MaxDeliver) {
		// Every earlier delivery timed out without a result: the handler
		// probably crashed on it. Do not hand it out again.
		d.once.Store(true)
		reason, ok := c.takeReason(d.StreamSeq)
		if !ok {
			// Or naked, unjudged, by an instance that is gone (a stop,
			// a lost lease): its reason went with it.
			reason = fmt.Sprintf("max deliveries exceeded: no result within ack wait %s for %d deliveries, "+
				"or given back by an instance stopped or fenced since (then not judged bad: %s)", c.cfg.AckWait, c.cfg.MaxDeliver, replayHint)
		}
		c.deadLetter(d, reason)
		return
	}
	if c.held != nil {
		c.heldMu.Lock()
		c.held[d] = time.Now()
		c.heldMu.Unlock()
	}
	c.call(hctx, d, h)
}

// keepInProgress tells every delivery held for a third of AckWait that it
// is in progress, checking every sixth of it, until ctx ends; and, for
// every consumer, the messages of a fetched batch still waiting for the
// handler, and the deliveries a handler queued (Delivery.Queued). It sends
// under heldMu, which a result takes before it acks or naks (done): an
// in-progress signal after a nak would turn the nak's short delay into a
// whole AckWait. InProgress only publishes; it waits for nothing.
func (c *Consumer) keepInProgress(ctx context.Context) {
	after := c.cfg.AckWait / 3
	t := time.NewTicker(after / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			failed := 0
			var failure error
			c.heldMu.Lock()
			for _, held := range []map[*delivery]time.Time{c.held, c.later, c.queued} {
				for d, since := range held {
					if now.Sub(since) < after {
						continue
					}
					switch err := d.msg.InProgress(); {
					case err == nil:
						held[d] = now
						c.toldInProgress.Add(1)
					case errors.Is(err, jetstream.ErrMsgAlreadyAckd) || errors.Is(err, jetstream.ErrMsgNoReply) || errors.Is(err, jetstream.ErrMsgNotBound):
						delete(held, d) // nothing to tell (done settles every message; a safeguard)
					default:
						// Tried again at the next check; the server redelivers
						// it if the connection stays down past AckWait.
						failed, failure = failed+1, err
					}
				}
			}
			c.heldMu.Unlock()
			if b := c.batch.Load(); b != nil {
				told, bfailed, berr := b.tell(now, after)
				c.toldInProgress.Add(uint64(told))
				if bfailed > 0 {
					failed, failure = failed+bfailed, berr
				}
			}
			if failed > 0 {
				c.log.Warn().Err(failure).Int("deliveries", failed).Msg("telling held deliveries in progress failed; tried again")
			}
		}
	}
}

func (c *Consumer) call(hctx context.Context, d *delivery, h AsyncHandler) {
	defer func() {
		if r := recover(); r != nil {
			c.log.Error().Interface("panic", r).Uint64("stream_seq", d.StreamSeq).Msg("handler panicked")
			d.done(fmt.Errorf("handler panicked: %v", r))
		}
	}()
	h(hctx, &d.Delivery, d.done)
}

func (d *delivery) done(err error) {
	c := d.c
	if !d.once.CompareAndSwap(false, true) {
		c.log.Error().Uint64("stream_seq", d.StreamSeq).AnErr("result", err).Msg("done called more than once; ignored")
		return
	}
	if c.held != nil || d.queued.Load() {
		c.heldMu.Lock()
		delete(c.held, d)
		delete(c.queued, d)
		c.heldMu.Unlock()
	}
	switch {
	case err == nil && d.later.Load():
		c.release(1) // acked by AckLater's function
	case err == nil:
		c.ack(d)
		c.release(1)
	case errs.IsPermanent(err):
		c.deadLetter(d, err.Error())
	case d.Delivered >= uint64(c.cfg.MaxDeliver):
		c.deadLetter(d, c.lastReason(err))
	default:
		c.nak(d)
		c.release(1)
	}
}

// replayHint tells, in a dead letter's reason, how to have a good message
// processed after all (docs/operations.md, "Dead letters").
const replayHint = "replay it (aiops notify replay for the notifier's, else publish it again to its subject)"

// lastReason is why a message whose last delivery failed with err is
// dead-lettered. One given back (errs.GivenBack: a stop, a lost lease, no
// room for its outputs) was never judged bad: naked, it would be
// dead-lettered all the same by its redelivery, past MaxDeliver, and with
// a reason that does not say so.
func (c *Consumer) lastReason(err error) string {
	if errs.IsGivenBack(err) {
		return fmt.Sprintf("given back on its last delivery (max_deliver %d), not judged bad: %s: %v", c.cfg.MaxDeliver, replayHint, err)
	}
	return "max deliveries exceeded: " + err.Error()
}

// ackFailure counts a failed ack or nak and logs at most one line a second:
// a lost connection fails every result in flight at once, and thousands of
// identical lines would bury the one that says why.
func (c *Consumer) ackFailure(err error, seq uint64, msg string) {
	total := c.ackFailed.Add(1)
	now := time.Now().UnixNano()
	last := c.lastAckWarn.Load()
	if now-last < int64(time.Second) || !c.lastAckWarn.CompareAndSwap(last, now) {
		return
	}
	c.log.Warn().Err(err).Uint64("stream_seq", seq).Uint64("ack_failures_total", total).Msg(msg + " (more within a second are only counted)")
}

// ack acks d, counted (done, or AckLater's function).
func (c *Consumer) ack(d *delivery) {
	if err := d.msg.Ack(); err != nil {
		c.ackFailure(err, d.StreamSeq, "ack failed; the message will be redelivered")
		return
	}
	c.acked.Add(1)
}

func (c *Consumer) nak(d *delivery) {
	if err := d.msg.NakWithDelay(c.backoff(d.Delivered)); err != nil {
		c.ackFailure(err, d.StreamSeq, "nak failed; the message will be redelivered after ack wait")
		return
	}
	c.naked.Add(1)
}

// deadLetter stores the original message with the reason on the dead-letter
// subject and terminates it only once the store is acked; if the store fails
// or does not answer within dlWait the message is naked, so it is never
// lost. It runs off the caller's goroutine because it waits for a pub ack;
// dead letters are rare.
func (c *Consumer) deadLetter(d *delivery, reason string) {
	// The handler may have held it for most of AckWait: the wait below
	// starts a new one, so the message is not handed out again meanwhile.
	// Not sent, the wait still ends and the message is naked; at worst it
	// came again already.
	_ = d.msg.InProgress()
	h := make(nats.Header, len(d.Header)+6)
	for k, v := range d.Header {
		// Nats-* headers steer the server (dedup, expectations) and would
		// apply to the dead-letter stream if copied.
		if strings.HasPrefix(k, "Nats-") {
			continue
		}
		h[k] = v
	}
	if id := d.Header.Get(jetstream.MsgIDHeader); id != "" {
		h.Set(HeaderOriginalMsgID, id)
	}
	seq := strconv.FormatUint(d.StreamSeq, 10)
	h.Set(HeaderDeadLetterReason, truncate(reason, 1024))
	h.Set(HeaderOriginalSubject, d.Subject)
	h.Set(HeaderStreamSeq, seq)
	h.Set(HeaderDeliveries, strconv.FormatUint(d.Delivered, 10))
	h.Set(HeaderConsumer, c.cfg.Stream+"/"+c.cfg.Durable)
	// Unique per stream message and consumer: a dead letter re-published after
	// a failed term is stored once, while two consumers may both dead-letter
	// the same event. The stream's creation time tells apart the messages
	// of a stream created again, numbered from 1 again.
	h.Set(jetstream.MsgIDHeader, c.cfg.Stream+"."+c.cfg.Durable+"."+strconv.FormatInt(c.streamEpoch.Load(), 36)+"."+seq)

	f, err := c.dl.PublishMsgAsync(fitDeadLetter(c.dlSubj, h, d.Data, c.js.Conn().MaxPayload()))
	if err != nil {
		c.deadLetterFailedNak(d, reason, err)
		return
	}
	go func() {
		var stored *jetstream.PubAck
		select {
		case stored = <-f.Ok():
		case err := <-f.Err(): // a refusal, or no ack within dlWait
			c.deadLetterFailedNak(d, reason, err)
			return
		}
		if err := d.msg.TermWithReason(truncate(reason, 256)); err != nil {
			// Stored as a dead letter but not terminated: it comes back and is
			// dead-lettered again, deduplicated by its msg id.
			c.ackFailed.Add(1)
		}
		c.deadLettered.Add(1)
		c.log.Warn().Uint64("stream_seq", d.StreamSeq).Str("subject", d.Subject).Uint64("deliveries", d.Delivered).
			Str("reason", truncate(reason, 256)).Str("deadletter_subject", c.dlSubj).Msg("message dead-lettered")
		c.release(1)
		c.checkDeadLetterRoom(stored.Stream)
	}()
}

// checkDeadLetterRoom looks, at most every dlCheckEvery, at how full the
// dead-letter stream that just stored a dead letter is. It discards its
// oldest dead letters to make room for new ones (DiscardOld, bounded by
// max_bytes), which the server tells nobody: from 90% of a limit on, each
// dead letter stored is counted (Stats.DeadLetterNearFull) and a warning
// logged at each check.
func (c *Consumer) checkDeadLetterRoom(stream string) {
	now := time.Now().UnixNano()
	last := c.dlChecked.Load()
	if now-last < int64(c.dlCheckEvery) || !c.dlChecked.CompareAndSwap(last, now) {
		if c.dlNearFull.Load() {
			c.deadLetterNearFull.Add(1)
		}
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.dlWait)
	defer cancel()
	s, err := c.js.Stream(ctx, stream)
	if err != nil {
		return // asked again at the next dead letter past dlCheckEvery
	}
	info := s.CachedInfo()
	nearly := func(have uint64, limit int64) bool { return limit > 0 && have >= uint64(limit)/10*9 }
	full := info.Config.Discard == jetstream.DiscardOld &&
		(nearly(info.State.Bytes, info.Config.MaxBytes) || nearly(info.State.Msgs, info.Config.MaxMsgs))
	c.dlNearFull.Store(full)
	if !full {
		return
	}
	c.deadLetterNearFull.Add(1)
	c.log.Warn().Str("deadletter_stream", stream).Uint64("bytes", info.State.Bytes).Int64("max_bytes", info.Config.MaxBytes).
		Uint64("messages", info.State.Msgs).Int64("max_msgs", info.Config.MaxMsgs).
		Msg("the dead-letter stream is at 90% of its limit or more: past it, each dead letter stored discards the oldest; replay or remove them, or raise streams.max_bytes")
}

// maxReasons bounds Consumer.reasons.
const maxReasons = 4096

// keepReason remembers why seq, on its last delivery, was dead-lettered.
func (c *Consumer) keepReason(seq uint64, reason string) {
	c.reasonsMu.Lock()
	defer c.reasonsMu.Unlock()
	if c.reasons == nil {
		c.reasons = map[uint64]string{}
	}
	if _, ok := c.reasons[seq]; !ok && len(c.reasons) >= maxReasons {
		for k := range c.reasons {
			delete(c.reasons, k)
			break
		}
	}
	c.reasons[seq] = reason
}

func (c *Consumer) takeReason(seq uint64) (string, bool) {
	c.reasonsMu.Lock()
	defer c.reasonsMu.Unlock()
	r, ok := c.reasons[seq]
	delete(c.reasons, seq)
	return r, ok
}

func (c *Consumer) deadLetterFailedNak(d *delivery, reason string, err error) {
	c.deadLetterFailed.Add(1)
	if d.Delivered >= uint64(c.cfg.MaxDeliver) {
		// Its redelivery does not reach the handler: it must keep the reason.
		c.keepReason(d.StreamSeq, reason)
	}
	c.log.Error().Err(err).Uint64("stream_seq", d.StreamSeq).Str("reason", truncate(reason, 256)).
		Str("deadletter_subject", c.dlSubj).Msg("dead-letter publish failed; message naked instead")
	c.nak(d)
	c.release(1)
}

// HeaderTruncated is set on a dead letter whose data was cut to fit the
// server's max_payload: the original length. The whole message is still on
// its stream at Aiops-Stream-Seq (until the stream's limits remove it).
const HeaderTruncated = "Aiops-Deadletter-Truncated"

// fitDeadLetter makes the dead letter of data fit maxPayload. A message
// that fitted its own stream may not once the dead-letter headers are
// added: its publish would fail at once, for ever, and the message come
// back for ever. The original headers go first, then the data is cut.
func fitDeadLetter(subj string, h nats.Header, data []byte, maxPayload int64) *nats.Msg {
	m := &nats.Msg{Subject: subj, Header: h, Data: data}
	if maxPayload <= 0 || int64(headerLen(h)+len(data)) <= maxPayload {
		return m
	}
	ours := nats.Header{}
	for _, k := range []string{HeaderDeadLetterReason, HeaderOriginalSubject, HeaderStreamSeq, HeaderDeliveries,
		HeaderOriginalMsgID, HeaderConsumer, jetstream.MsgIDHeader} {
		if v := h.Values(k); len(v) > 0 {
			ours[k] = v
		}
	}
	ours.Set(HeaderTruncated, strconv.Itoa(len(data)))
	m.Header = ours
	if room := maxPayload - int64(headerLen(ours)); int64(len(data)) > room {
		m.Data = data[:max(room, 0)]
	}
	return m
}

// headerLen is the encoded size of h (NATS/1.0 and a line a value), with
// a margin.
func headerLen(h nats.Header) int {
	n := len("NATS/1.0\r\n\r\n") + 64
	for k, vs := range h {
		for _, v := range vs {
			n += len(k) + len(": \r\n") + len(v)
		}
	}
	return n
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// drainOutstanding waits for outstanding deliveries to settle, then flushes
// the acks so they reach the server before Run returns.
func (c *Consumer) drainOutstanding() error {
	deadline := time.NewTimer(c.drain)
	defer deadline.Stop()
	var err error
	for c.outstanding.Load() > 0 && err == nil {
		select {
		case <-c.freed:
		case <-deadline.C:
			err = fmt.Errorf("%w: %d deliveries un-done after %s; the server redelivers them after ack wait",
				ErrDrainTimeout, c.outstanding.Load(), c.drain)
		}
	}
	if ferr := c.js.Conn().FlushTimeout(AckFlushTimeout); ferr != nil && err == nil && !errors.Is(ferr, nats.ErrConnectionClosed) {
		c.log.Warn().Err(ferr).Msg("flushing acks at shutdown failed; unacked messages will be redelivered")
	}
	if err != nil {
		c.log.Warn().Err(err).Msg("consumer stopped before all deliveries were done")
		return err
	}
	c.log.Info().Msg("consumer drained and stopped")
	return nil
}
