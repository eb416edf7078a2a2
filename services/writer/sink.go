package writer

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/rs/zerolog"
	"golang.org/x/sync/semaphore"

	"github.com/aiops-dev/aiops/pkg/errs"
	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/pkg/store"
)

// ErrNotTaken is wrapped when a row was not queued (the sink is closing or
// the caller's context ended): a transient failure, the event comes again.
var ErrNotTaken = errors.New("writer: row not queued")

// SinkConfig sizes the batch writer of every table (see store.BatchConfig).
type SinkConfig struct {
	MaxRows         int
	MaxBytes        int
	MaxAge          time.Duration
	MaxPendingRows  int
	MaxPendingBytes int
	Senders         int
	// UnreadyAfter is how long every insert into a table may fail before
	// the writer is not ready (insertHealth); 0 means DefaultUnreadyAfter.
	UnreadyAfter time.Duration
	// Settings are ClickHouse settings of every insert (insert_quorum).
	Settings clickhouse.Settings
}

// Sink turns events into rows and hands each row to its table's inserter,
// reporting an event's outcome once all its rows are reported. It is the
// writer's stage.Sink.
type Sink struct {
	batches map[string]Inserter
	closing atomic.Bool // set by Close
	log     zerolog.Logger
	window  *TimeWindow   // nil: every storable time is taken
	metrics *batchMetrics // nil for a sink of NewSinkOf
	health  *insertHealth // nil for a sink of NewSinkOf
	// envelopes bounds the bytes of the events whose rows are queued or
	// being inserted, in every table (nil: no bound): a typed row points
	// into its envelope, which it keeps whole, while its table counts
	// only the row's columns (a metric sample of a 900 KB envelope
	// counts 40 bytes). Past it Write waits, as past a table's bound.
	envelopes    *semaphore.Weighted
	envelopesMax int64
}

// TimeWindow bounds the event times the writer stores around its clock.
// The tables are partitioned by event time and retention drops whole
// partitions, so an event older than MaxPast would be deleted at the next
// retention pass and one far in the future kept for ever, each opening a
// partition of its own. The gateway refuses such events; this holds the
// same line for producers that publish straight to NATS, by dead-lettering
// them with the reason (nothing the gateway accepted is refused: its
// window is a day narrower in the past and 23 hours in the future).
// MaxFuture bounds an incident state's acknowledged_at and resolved_at
// too (incidentRows).
type TimeWindow struct {
	MaxPast, MaxFuture time.Duration
	Now                func() time.Time
}

func (w *TimeWindow) check(e *event.Envelope, now time.Time) error {
	switch {
	case e.Time.Before(now.Add(-w.MaxPast)):
		return errs.Permanentf("writer: event %s: time %s is more than %s before now, past the events table's retention: it would be deleted at the next retention pass",
			e.ID, e.Time.UTC().Format(time.RFC3339), w.MaxPast)
	case e.Time.After(now.Add(w.MaxFuture)):
		return errs.Permanentf("writer: event %s: time %s is more than %s after now (writer.max_event_future)",
			e.ID, e.Time.UTC().Format(time.RFC3339), w.MaxFuture)
	}
	return nil
}

// SetTimeWindow makes the sink refuse (permanently: dead-lettered) events
// timed outside w; call it before the first Write.
func (s *Sink) SetTimeWindow(w TimeWindow) {
	if w.Now == nil {
		w.Now = time.Now
	}
	s.window = &w
}

// Inserter takes one table's rows and reports each one's result once the
// insert holding it returned; *store.BatchWriter is one, and
// stagetest.Table is one in memory, for the writer's logic without a
// server.
type Inserter interface {
	Add(ctx context.Context, row []any, done func(error)) error
	Flush(ctx context.Context) error
	Close(ctx context.Context) error
}

// NewSink starts one batch writer per table of EventTables.
func NewSink(conn driver.Conn, cfg SinkConfig, log zerolog.Logger, opts ...store.Option) (*Sink, error) {
	m := newBatchMetrics()
	health := newInsertHealth(cmp.Or(cfg.UnreadyAfter, DefaultUnreadyAfter), time.Now)
	s, err := NewSinkOf(func(table string) (Inserter, error) {
		observe := m.observer(table)
		return store.NewBatchWriter(conn, store.BatchConfig{
			Table:           table,
			Columns:         Columns[table],
			MaxRows:         cfg.MaxRows,
			MaxBytes:        cfg.MaxBytes,
			MaxAge:          cfg.MaxAge,
			MaxPendingRows:  cfg.MaxPendingRows,
			MaxPendingBytes: cfg.MaxPendingBytes,
			Senders:         cfg.Senders,
			Settings:        cfg.Settings,
		}, log, append([]store.Option{store.WithBatchObserver(func(r store.BatchResult) {
			observe(r)
			health.observe(table, r)
		})}, opts...)...)
	}, log)
	if err != nil {
		return nil, err
	}
	s.metrics = m
	s.health = health
	// twice a table's bound: the events table's rows hold their envelopes
	// whole, and the typed rows of one batch of them as much again
	s.envelopesMax = 2 * int64(cmp.Or(cfg.MaxPendingBytes, 4*cmp.Or(cfg.MaxBytes, store.DefaultMaxBytes)))
	s.envelopes = semaphore.NewWeighted(s.envelopesMax)
	return s, nil
}

// NewSinkOf builds a sink on the inserter newInserter makes for each table
// of EventTables.
func NewSinkOf(newInserter func(table string) (Inserter, error), log zerolog.Logger) (*Sink, error) {
	s := &Sink{batches: make(map[string]Inserter, len(EventTables)), log: log}
	for _, table := range EventTables {
		b, err := newInserter(table)
		if err != nil {
			s.Close(context.Background())
			return nil, fmt.Errorf("writer: table %s: %w", table, err)
		}
		s.batches[table] = b
	}
	return s, nil
}

// Write queues every row of e (Rows) and calls done exactly once, after all
// of them were reported: nil when all committed, else the first error, made
// permanent if any row failed permanently (its data will never fit, so a
// retry cannot help; the rows that did commit are deduplicated if the
// event comes again).
func (s *Sink) Write(ctx context.Context, e *event.Envelope, done func(error)) {
	var notAfter time.Time // no clock: any storable time is taken
	if s.window != nil {
		now := s.window.Now()
		if err := s.window.check(e, now); err != nil {
			done(err)
			return
		}
		notAfter = now.Add(s.window.MaxFuture)
	}
	rows, err := rowsUntil(e, notAfter)
	if err != nil {
		done(err)
		return
	}
	if s.envelopes != nil {
		// one larger than the whole bound waits for it to be free
		n := min(int64(e.SizeBound()), s.envelopesMax)
		if err := s.envelopes.Acquire(ctx, n); err != nil {
			done(fmt.Errorf("%w: %w", ErrNotTaken, err))
			return
		}
		reported := done
		done = func(err error) {
			s.envelopes.Release(n)
			reported(err)
		}
	}
	if len(rows) == 1 {
		s.add(ctx, rows[0], done)
		return
	}
	rowDone := newJoin(len(rows), done).rowDone
	for i, r := range rows {
		if !s.add(ctx, r, rowDone) {
			// The rows not added fail with the same error; the added ones
			// report on their own.
			for range rows[i+1:] {
				rowDone(ErrNotTaken)
			}
			return
		}
	}
}

// add hands r to its table's batch writer; when it is not taken (shutting
// down, or ctx ended) done gets the reason at once.
func (s *Sink) add(ctx context.Context, r TableRow, done func(error)) bool {
	b, ok := s.batches[r.Table]
	if !ok {
		done(errs.Permanentf("writer: no batch writer for table %s", r.Table))
		return false
	}
	if err := b.Add(ctx, r.Row, done); err != nil {
		done(fmt.Errorf("%w: %w", ErrNotTaken, err))
		return false
	}
	return true
}

// Flush sends every table's pending batch and waits for them. Once Close
// has begun it returns nil: Close sends what is held, and its caller
// reports the outcome (the stage runtime flushes at the start of the drain,
// when the writer closes the sink).
func (s *Sink) Flush(ctx context.Context) error {
	err := s.each(func(b Inserter) error { return b.Flush(ctx) })
	if s.closing.Load() {
		return nil
	}
	return err
}

// Close stops taking rows and sends what every batch writer holds. If ctx
// ends first, the inserts under way are given up and every row not
// inserted is reported with an error (its message is naked), and Close
// returns ctx's error.
func (s *Sink) Close(ctx context.Context) error {
	s.closing.Store(true)
	return s.each(func(b Inserter) error { return b.Close(ctx) })
}

// each runs f on every inserter at once, so one slow table does not hold
// the others' flush.
func (s *Sink) each(f func(Inserter) error) error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errl []error
	)
	for table, b := range s.batches {
		wg.Go(func() {
			if err := f(b); err != nil {
				mu.Lock()
				errl = append(errl, fmt.Errorf("%s: %w", table, err))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return errors.Join(errl...)
}

// join combines the done callbacks of one event's rows into the event's.
type join struct {
	mu        sync.Mutex
	left      int
	first     error
	permanent error
	done      func(error)
}

func newJoin(n int, done func(error)) *join { return &join{left: n, done: done} }

func (j *join) rowDone(err error) {
	j.mu.Lock()
	if err != nil {
		if j.first == nil {
			j.first = err
		}
		if j.permanent == nil && errs.IsPermanent(err) {
			j.permanent = err
		}
	}
	j.left--
	last := j.left == 0
	result := j.first
	if j.permanent != nil {
		result = j.permanent
	}
	j.mu.Unlock()
	if last && j.done != nil {
		j.done(result)
	}
}
