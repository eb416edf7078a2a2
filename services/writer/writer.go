// Package writer is the ClickHouse writer service: it consumes every event
// from JetStream and stores it twice over, raw in the events table and as
// columns in its kind's table (logs, metric_samples, alerts, changes,
// anomalies, incidents and incident_history, log_templates), the shape the
// analyst cookbook (docs/queries.md) queries. A message is acked only after
// every one of its rows was inserted; one batch writer per table groups rows
// by size or age. It also drops each table's partitions past its retention.
//
// A message that is not a valid envelope, or whose body does not fit its
// table, is dead-lettered with the reason naming the field (the consumer
// runner does that for permanent errors); an insert that fails for any
// other reason naks the message, which JetStream redelivers with backoff.
// Every table is a ReplacingMergeTree keyed so that a redelivered event is
// one row under FINAL.
package writer

import (
	"cmp"
	"context"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/bus"
	"github.com/aiops-dev/aiops/pkg/config"
	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/pkg/stage"
	"github.com/aiops-dev/aiops/pkg/store"
)

// Config is the writer's part of a service config.
type Config struct {
	// Consumer is the durable JetStream consumer; Stream defaults to EVENTS
	// and Durable to "writer". A message whose rows wait longer than a
	// third of AckWait (default 30s) for their insert is told in progress
	// meanwhile (bus.WithInProgress), so that a slow insert does not get
	// it redelivered.
	Consumer bus.ConsumerConfig `yaml:"consumer"`
	// MaxRows, MaxBytes and MaxAge bound one ClickHouse insert: it is sent
	// when it holds MaxRows rows, when its rows' approximate size reaches
	// MaxBytes (default 64 MiB, at least 1 MiB: one envelope may be that
	// large), or MaxAge after its first row. MaxAge must be at most a third
	// of consumer.ack_wait: rows wait that long before their insert starts.
	MaxRows  int           `yaml:"max_rows"`
	MaxBytes int           `yaml:"max_bytes"`
	MaxAge   time.Duration `yaml:"max_age"`
	// MaxPendingBytes bounds the bytes each table holds, queued or being
	// inserted (default 4×MaxBytes): past it the consumer waits for an
	// insert to return before it hands out more (back-pressure), so large
	// events cannot exhaust memory. The envelopes whose rows are queued or
	// being inserted in any table are bounded at twice it (a typed row
	// keeps its envelope whole), plus the inserts being encoded, plus what
	// one fetch brought (consumer.fetch_max_bytes, by default
	// MaxPendingBytes too).
	MaxPendingBytes int `yaml:"max_pending_bytes"`
	// Senders is how many inserts per table may be in flight at once (see
	// store.BatchConfig.Senders); 0 means 1, which keeps inserts in order.
	// Each holds a ClickHouse connection: the pool (store.max_open_conns)
	// must have PoolConns.
	Senders int `yaml:"senders"`
	// Retention is how many days each table keeps, by table name; tables
	// left out keep DefaultRetentionDays. Old partitions are dropped every
	// RetentionInterval (0 means an hour).
	Retention         map[string]int `yaml:"retention"`
	RetentionInterval time.Duration  `yaml:"retention_interval"`
	// MaxEventFuture is how far after the writer's clock an event may be
	// timed; one timed later, or older than the retention of the events
	// table, is dead-lettered instead of stored (see TimeWindow), and so
	// is an incident state acknowledged or resolved later than that.
	// Default a day.
	MaxEventFuture time.Duration `yaml:"max_event_future"`
	// DrainTimeout bounds the stop: what the writer holds is inserted and
	// acked if ClickHouse takes it by then, and what it could not insert is
	// naked, so that the next writer gets it at once instead of after
	// consumer.ack_wait. Default 15s, under the 25s a service has to stop.
	// A connection to ClickHouse being opened is not interrupted: the stop
	// can take up to store.dial_timeout (5s) longer.
	DrainTimeout time.Duration `yaml:"drain_timeout"`
	// UnreadyAfter is how long every insert into a table may fail (the
	// events are naked and come again) before /readyz fails, naming the
	// table and ClickHouse's error; the first insert that commits makes
	// it ready again, as does no insert into that table tried for twice
	// as long (it must be over consumer.backoff's longest wait). Shorter failures (a ClickHouse restart, a replica
	// failing over) leave it ready, so that it does not flap. /healthz
	// stays ok: restarting the writer does not mend ClickHouse. Default
	// DefaultUnreadyAfter, a minute.
	UnreadyAfter time.Duration `yaml:"unready_after"`
	// InsertQuorum, on a cluster whose shards have replicas (store.cluster),
	// makes every insert return only once that many replicas of each shard
	// have its rows (ClickHouse's insert_quorum): without it an insert
	// returns once one replica has them, the writer acks, and the events
	// are lost if that replica is lost with its disk before another
	// fetched them. While fewer replicas can take rows, inserts fail and
	// are retried. 0 (the default) is off; a server without replicated
	// tables ignores it. See docs/operations.md, "ClickHouse cluster".
	InsertQuorum int `yaml:"insert_quorum"`
}

// InsertQuorumTimeout is how long a quorum insert waits for the replicas
// (insert_quorum_timeout), under the insert's own timeout
// (store.DefaultInsertTimeout), so that the server answers why first.
const InsertQuorumTimeout = 20 * time.Second

// DefaultMaxEventFuture is Config.MaxEventFuture's default.
const DefaultMaxEventFuture = 24 * time.Hour

// DefaultDrainTimeout is Config.DrainTimeout's default: it leaves the naks
// and their flush seconds within stage.StopLimit.
const DefaultDrainTimeout = 15 * time.Second

// DefaultAckWait is consumer.ack_wait's default, the bus's.
const DefaultAckWait = 30 * time.Second

// PoolConns is how many ClickHouse connections the writer may use at once:
// one per insert in flight (every table, times Senders) and
// store.ReservedConns for the retention pass, the readiness ping and
// queries. New refuses a smaller pool.
func (c Config) PoolConns() int { return len(EventTables)*max(c.Senders, 1) + store.ReservedConns }

// StoreConns tells the platform how large a pool to open (PoolConns), so
// that writer.senders alone sizes it.
func (c Config) StoreConns() int { return c.PoolConns() }

// DefaultConfig is the writer with no configuration at all.
func DefaultConfig() Config { return Config{}.WithDefaults() }

// WithDefaults fills what is unset.
func (c Config) WithDefaults() Config {
	c.Consumer = c.Consumer.Of(bus.StreamEvents, "writer")
	if c.MaxRows == 0 {
		c.MaxRows = 5000
	}
	if c.Consumer.AckWait == 0 {
		// bus.ConsumerConfig's default, set here so that Validate holds
		// max_age against it.
		c.Consumer.AckWait = DefaultAckWait
	}
	if c.MaxAge == 0 {
		// a second, or less under a short ack_wait (see Validate)
		c.MaxAge = min(time.Second, c.Consumer.AckWait/3)
	}
	if c.MaxBytes == 0 {
		c.MaxBytes = store.DefaultMaxBytes
	}
	if c.MaxPendingBytes == 0 {
		c.MaxPendingBytes = 4 * c.MaxBytes
	}
	if c.Consumer.FetchMaxBytes == 0 {
		// What a fetch brought waits in the client for the handler, which
		// MaxPendingBytes may be holding up: bound it too (a fetch of
		// batch_size envelopes of up to 1 MiB would hold a GiB).
		c.Consumer.FetchMaxBytes = c.MaxPendingBytes
	}
	if c.Consumer.BatchSize == 0 {
		c.Consumer.BatchSize = 1000
	}
	if c.Consumer.MaxDeliver == 0 {
		// A ClickHouse outage must never dead-letter events: transient
		// failures are retried for longer than the stream keeps an event
		// (EVENTS' max_age, 14 days by default: 50,000 tries, the last
		// ones 30 s apart, take 17), while bad data is dead-lettered on
		// its first delivery. (20,000 took 7 days: an outage of a week
		// moved events the stream still held to the dead letters.)
		c.Consumer.MaxDeliver = 50_000
	}
	if c.Consumer.Backoff == nil {
		c.Consumer.Backoff = []time.Duration{time.Second, 2 * time.Second, 5 * time.Second, 15 * time.Second, 30 * time.Second}
	}
	if c.RetentionInterval == 0 {
		c.RetentionInterval = time.Hour
	}
	if c.MaxEventFuture == 0 {
		c.MaxEventFuture = DefaultMaxEventFuture
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = DefaultDrainTimeout
	}
	if c.UnreadyAfter == 0 {
		c.UnreadyAfter = DefaultUnreadyAfter
	}
	if c.Consumer.MaxAckPending == 0 {
		// Enough for a full insert in flight while the next one fills.
		c.Consumer.MaxAckPending = 4 * c.MaxRows
	}
	return c
}

// Validate names the field that is wrong; unset fields take their defaults.
func (c Config) Validate() error {
	// Checked before the defaults, which derive the consumer's limits
	// from them.
	if c.MaxRows < 0 || c.MaxRows > store.MaxBatchRows {
		return fmt.Errorf("writer.max_rows: must be between 0 (the default) and %d, got %d", store.MaxBatchRows, c.MaxRows)
	}
	if c.MaxAge < 0 {
		return fmt.Errorf("writer.max_age: must not be negative, got %s", c.MaxAge)
	}
	if c.MaxBytes != 0 && (c.MaxBytes < event.MaxEnvelopeBytes || c.MaxBytes > store.MaxBatchBytes) {
		return fmt.Errorf("writer.max_bytes: must be 0 (the default, %d) or between %d (one envelope) and %d, got %d",
			store.DefaultMaxBytes, event.MaxEnvelopeBytes, store.MaxBatchBytes, c.MaxBytes)
	}
	c = c.WithDefaults()
	if c.MaxPendingBytes < c.MaxBytes {
		return fmt.Errorf("writer.max_pending_bytes: must be at least writer.max_bytes (%d), got %d", c.MaxBytes, c.MaxPendingBytes)
	}
	if err := c.Consumer.Validate(); err != nil {
		return fmt.Errorf("writer.consumer: %w", err)
	}
	if c.MaxAge > c.Consumer.AckWait/3 {
		// Every row waits up to max_age before its insert starts; the
		// in-progress signals are for the insert that is slow, not for
		// every batch.
		return fmt.Errorf("writer.max_age: %s must be at most a third of writer.consumer.ack_wait (%s), or messages wait for their batch about as long as the server waits for their ack",
			c.MaxAge, c.Consumer.AckWait)
	}
	if c.Senders < 0 || c.Senders > 16 {
		return fmt.Errorf("writer.senders: must be between 0 and 16, got %d", c.Senders)
	}
	if c.RetentionInterval < 0 {
		return fmt.Errorf("writer.retention_interval: must not be negative, got %s", c.RetentionInterval)
	}
	if c.MaxEventFuture < 0 {
		return fmt.Errorf("writer.max_event_future: must not be negative, got %s", c.MaxEventFuture)
	}
	if c.InsertQuorum < 0 {
		return fmt.Errorf("writer.insert_quorum: must not be negative (0 is off), got %d", c.InsertQuorum)
	}
	if c.UnreadyAfter < 0 {
		return fmt.Errorf("writer.unready_after: must not be negative, got %s", c.UnreadyAfter)
	}
	backoff := c.Consumer.Backoff
	if backoff == nil {
		backoff = c.WithDefaults().Consumer.Backoff
	}
	if unready := cmp.Or(c.UnreadyAfter, DefaultUnreadyAfter); len(backoff) > 0 && backoff[len(backoff)-1] >= unready {
		// A table failing is tried again after the backoff; one not tried
		// for twice unready_after counts as not failing (insertHealth), so
		// a longer backoff would have readiness come and go.
		return fmt.Errorf("writer.unready_after: %s is not over writer.consumer.backoff's longest wait, %s: a table whose inserts fail would turn ready between two tries",
			unready, backoff[len(backoff)-1])
	}
	fetchWait := c.Consumer.FetchWait
	if fetchWait == 0 {
		fetchWait = bus.DefaultFetchWait
	}
	if limit := stage.StopLimit - time.Second - fetchWait - bus.AckFlushTimeout; c.DrainTimeout < 0 || c.DrainTimeout >= limit {
		// Past the service's own deadline the process ends before the
		// naks are sent, and the messages wait for their ack wait.
		return fmt.Errorf("writer.drain_timeout: must be between 0 (the default, %s) and %s (a stage's stop limit %s less the consumer's fetch and flush of its acks), got %s",
			DefaultDrainTimeout, limit, stage.StopLimit, c.DrainTimeout)
	}
	if err := validateRetention(c.Retention); err != nil {
		return err
	}
	if c.Consumer.MaxAckPending != 0 && c.Consumer.MaxAckPending < c.MaxRows {
		return fmt.Errorf("writer.consumer.max_ack_pending: %d is below writer.max_rows %d, so no insert could ever fill", c.Consumer.MaxAckPending, c.MaxRows)
	}
	return nil
}

// insertSettings are the ClickHouse settings of every insert: the
// quorum's, or none.
func (c Config) insertSettings() clickhouse.Settings {
	if c.InsertQuorum == 0 {
		return nil
	}
	// milliseconds, as an int: clickhouse-go refuses an int64 setting
	// ("query setting insert_quorum_timeout has unsupported data type")
	return clickhouse.Settings{"insert_quorum": c.InsertQuorum, "insert_quorum_timeout": int(InsertQuorumTimeout.Milliseconds())}
}

// Writer moves events from a JetStream consumer into ClickHouse: each
// event's raw row into events and its typed row(s) into its kind's table,
// one batch writer per table, and drops partitions past their retention.
// The consumer side is a stage.Sink on the stage runtime.
type Writer struct {
	stage        *stage.Stage
	sink         *Sink
	retention    *Retention
	drainTimeout time.Duration
	log          zerolog.Logger
}

// Option configures a Writer.
type Option func(*options)

type options struct {
	retentionClock RetentionClock
}

// WithRetentionClock replaces the clock of the retention loop and of the
// window of event times stored.
func WithRetentionClock(c RetentionClock) Option { return func(o *options) { o.retentionClock = c } }

// New ensures the durable consumer and prepares a batch writer per table;
// the tables must exist (store.Migrate with store.Schema).
func New(ctx context.Context, js jetstream.JetStream, conn driver.Conn, cfg Config, log zerolog.Logger, opts ...Option) (*Writer, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if have, need := conn.Stats().MaxOpenConns, cfg.PoolConns(); have < need {
		return nil, fmt.Errorf("%w: store.max_open_conns: the ClickHouse pool has %d connections and the writer needs %d (%d tables × writer.senders %d, plus %d for retention, the readiness ping and queries); raise store.max_open_conns or lower writer.senders",
			config.ErrInvalidConfig, have, need, len(EventTables), max(cfg.Senders, 1), store.ReservedConns)
	}
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	sink, err := NewSink(conn, SinkConfig{
		MaxRows:  cfg.MaxRows,
		MaxBytes: cfg.MaxBytes,
		MaxAge:   cfg.MaxAge,
		// The consumer already bounds the rows in flight (MaxAckPending,
		// at most one row per table per message); the batch writers must
		// never block below that. Bytes it does not bound: MaxPendingBytes
		// does, blocking the consumer's handler until an insert returns.
		MaxPendingRows:  max(cfg.Consumer.MaxAckPending, cfg.MaxRows),
		MaxPendingBytes: cfg.MaxPendingBytes,
		Senders:         cfg.Senders,
		UnreadyAfter:    cfg.UnreadyAfter,
		Settings:        cfg.insertSettings(),
	}, log)
	if err != nil {
		return nil, err
	}
	retention, err := NewRetention(conn, cfg.Retention, cfg.RetentionInterval, log, o.retentionClock)
	if err != nil {
		sink.Close(ctx)
		return nil, err
	}
	window := TimeWindow{MaxPast: time.Duration(retention.Days()[TableEvents]) * 24 * time.Hour, MaxFuture: cfg.MaxEventFuture}
	if o.retentionClock != nil {
		window.Now = o.retentionClock.Now
	}
	sink.SetTimeWindow(window)
	// The consumer's drain outlasts the sink's Close by a second, so that
	// the naks Close ends in are still the consumer's to send. A message
	// is held until its rows' inserts return, which a slow server (or
	// batches queued behind an insert that times out) can make longer than
	// ack_wait: the consumer tells JetStream it is in progress meanwhile,
	// so that it is not redelivered (and inserted again) while held.
	st, err := stage.Open(ctx, js, sink, stage.Config{Name: "writer", DrainTimeout: cfg.DrainTimeout + time.Second}, cfg.Consumer, log,
		stage.WithConsumerOptions(bus.WithInProgress()))
	if err != nil {
		sink.Close(ctx)
		return nil, err
	}
	return &Writer{stage: st, sink: sink, retention: retention, drainTimeout: cfg.DrainTimeout, log: log}, nil
}

// Run consumes until ctx is cancelled, then drains: the consumer fetches
// no more and the sink sends every batch it holds at once. What ClickHouse
// takes within DrainTimeout is acked; then the inserts still under way are
// given up and every message not inserted is naked, so that the next writer
// gets it at once (not after the ack wait). Retention runs alongside.
func (w *Writer) Run(ctx context.Context) error {
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	retentionDone := make(chan struct{})
	go func() {
		defer close(retentionDone)
		w.retention.Run(runCtx)
	}()
	// The sink is closed when the drain begins, not after it: the consumer
	// waits for the result of every message the sink holds, and only
	// Close's deadline turns an insert that hangs into results (naks)
	// before the service's own deadline ends the process.
	closed := make(chan error, 1)
	go func() {
		<-runCtx.Done()
		drainCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.drainTimeout)
		defer cancel()
		closed <- w.sink.Close(drainCtx)
	}()
	runErr := w.stage.Run(runCtx)
	stop()
	if err := <-closed; err != nil {
		// Not a failure of the stop: those messages were naked.
		w.log.Warn().Err(err).Dur("drain_timeout", w.drainTimeout).
			Msg("ClickHouse did not take every held row within the drain; their messages were naked for redelivery")
	}
	<-retentionDone
	return runErr
}

// Stats reports the consumer's counters.
func (w *Writer) Stats() bus.Stats { return w.stage.ConsumerStats() }

// Collector exports the runtime's and the consumer's counters and the
// inserts' (aiops_writer_*) on /metrics.
func (w *Writer) Collector() prometheus.Collector {
	return stage.Collectors{w.stage.Collector(), w.sink.metrics}
}
