package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/aiops-dev/aiops/pkg/errs"
	"github.com/aiops-dev/aiops/pkg/logging"
	"github.com/rs/zerolog"
)

// Sentinel errors of the batch writer.
var (
	// ErrClosed is returned by Add and Flush after Close, and reported to
	// the rows an interrupted Close could not insert.
	ErrClosed = errors.New("store: batch writer closed")
	// ErrColumnCount is wrapped (permanent) when a row has a different
	// number of values than BatchConfig.Columns.
	ErrColumnCount = errors.New("store: row does not match the columns")
)

// Defaults for zero BatchConfig fields.
const (
	DefaultMaxRows       = 10_000
	DefaultMaxAge        = time.Second
	DefaultInsertTimeout = 30 * time.Second
	DefaultMaxBytes      = 64 << 20
	maxBatchRows         = MaxBatchRows
	maxSenders           = 64
	// initialBatchRows is the room a new batch starts with; it grows as
	// rows come.
	initialBatchRows = 1024
)

// MaxBatchRows bounds the rows of one insert; a service config that sizes
// batches checks against it when it is loaded, not when the batch writer
// starts.
const MaxBatchRows = 1_000_000

// MaxBatchBytes bounds BatchConfig.MaxBytes.
const MaxBatchBytes = 1 << 30

// BatchConfig says where rows go and when a batch is sent.
type BatchConfig struct {
	// Table is "table" or "database.table".
	Table string `yaml:"table"`
	// Columns are the column names of each row, in row order; an explicit
	// list is what lets ClickHouse 18.16 accept the insert.
	Columns []string `yaml:"columns"`
	// MaxRows sends a batch once it holds this many rows; 0 means
	// DefaultMaxRows.
	MaxRows int `yaml:"max_rows"`
	// MaxAge sends a batch this long after its first row, whatever its
	// size, or, when every sender is busy then, as soon as one is free (it
	// takes rows until then); 0 means DefaultMaxAge.
	MaxAge time.Duration `yaml:"max_age"`
	// MaxPendingRows bounds the rows accepted but not yet reported: Add
	// blocks beyond it (backpressure). 0 means 4×MaxRows; it must be at
	// least MaxRows.
	MaxPendingRows int `yaml:"max_pending_rows"`
	// InsertTimeout bounds one insert round trip; 0 means
	// DefaultInsertTimeout.
	InsertTimeout time.Duration `yaml:"insert_timeout"`
	// Senders is how many batches may be in flight at once, each on its own
	// connection; 0 means 1. With one, batches commit in the order they
	// were filled; with more, the client fills and encodes one batch while
	// the server writes another, and batches may commit out of order.
	Senders int `yaml:"senders"`
	// MaxBytes sends a batch once its rows' approximate size (rowBytes)
	// reaches it, however few they are, so that large rows (an envelope
	// may be 1 MiB) cannot make one insert of gigabytes; 0 means
	// DefaultMaxBytes. The row that reaches it is still taken: a batch is
	// at most MaxBytes plus one row.
	MaxBytes int `yaml:"max_bytes"`
	// MaxPendingBytes bounds the approximate bytes of the rows accepted but
	// not yet reported, as MaxPendingRows bounds their number: Add blocks
	// beyond it (one row is always taken when none is pending). 0 means
	// 4×MaxBytes; it must be at least MaxBytes.
	MaxPendingBytes int `yaml:"max_pending_bytes"`
	// Settings are ClickHouse settings of every insert (insert_quorum,
	// say), beside the connection's; nil: none.
	Settings clickhouse.Settings `yaml:"-"`
}

func (c BatchConfig) withDefaults() BatchConfig {
	if c.MaxRows == 0 {
		c.MaxRows = DefaultMaxRows
	}
	if c.MaxAge == 0 {
		c.MaxAge = DefaultMaxAge
	}
	if c.MaxPendingRows == 0 && c.MaxRows > 0 {
		c.MaxPendingRows = 4 * c.MaxRows
	}
	if c.InsertTimeout == 0 {
		c.InsertTimeout = DefaultInsertTimeout
	}
	if c.Senders == 0 {
		c.Senders = 1
	}
	if c.MaxBytes == 0 {
		c.MaxBytes = DefaultMaxBytes
	}
	if c.MaxPendingBytes == 0 && c.MaxBytes > 0 {
		c.MaxPendingBytes = 4 * c.MaxBytes
	}
	return c
}

// Validate checks the config as NewBatchWriter will use it (zero fields
// take their defaults); each error names the field.
func (c BatchConfig) Validate() error {
	if _, err := QuoteTable(c.Table); err != nil {
		return fmt.Errorf("%w: table: %w", ErrInvalidConfig, err)
	}
	if len(c.Columns) == 0 {
		return fmt.Errorf("%w: columns: at least one column is required", ErrInvalidConfig)
	}
	seen := make(map[string]bool, len(c.Columns))
	for i, col := range c.Columns {
		if _, err := QuoteColumn(col); err != nil {
			return fmt.Errorf("%w: columns[%d]: %w", ErrInvalidConfig, i, err)
		}
		if seen[col] {
			return fmt.Errorf("%w: columns[%d]: %q listed twice", ErrInvalidConfig, i, col)
		}
		seen[col] = true
	}
	d := c.withDefaults()
	if d.MaxRows < 1 || d.MaxRows > maxBatchRows {
		return fmt.Errorf("%w: max_rows: must be between 1 and %d, got %d", ErrInvalidConfig, maxBatchRows, c.MaxRows)
	}
	if d.MaxAge < 0 {
		return fmt.Errorf("%w: max_age: must not be negative, got %s", ErrInvalidConfig, c.MaxAge)
	}
	if d.MaxPendingRows < d.MaxRows {
		return fmt.Errorf("%w: max_pending_rows: must be at least max_rows (%d), got %d", ErrInvalidConfig, d.MaxRows, c.MaxPendingRows)
	}
	if d.InsertTimeout < 0 {
		return fmt.Errorf("%w: insert_timeout: must not be negative, got %s", ErrInvalidConfig, c.InsertTimeout)
	}
	if d.Senders < 1 || d.Senders > maxSenders {
		return fmt.Errorf("%w: senders: must be between 1 and %d, got %d", ErrInvalidConfig, maxSenders, c.Senders)
	}
	if d.MaxBytes < 1 || d.MaxBytes > MaxBatchBytes {
		return fmt.Errorf("%w: max_bytes: must be between 1 and %d, got %d", ErrInvalidConfig, MaxBatchBytes, c.MaxBytes)
	}
	if d.MaxPendingBytes < d.MaxBytes {
		return fmt.Errorf("%w: max_pending_bytes: must be at least max_bytes (%d), got %d", ErrInvalidConfig, d.MaxBytes, c.MaxPendingBytes)
	}
	return nil
}

// Clock is the time source of the writer's age limit, injected so tests can
// decide when a batch is old without sleeping.
type Clock interface {
	Now() time.Time
	// AfterFunc calls f in its own goroutine after d.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a pending AfterFunc call.
type Timer interface{ Stop() bool }

type systemClock struct{}

func (systemClock) Now() time.Time                            { return time.Now() }
func (systemClock) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }

// BatchResult describes one batch the writer finished, for metrics.
type BatchResult struct {
	Rows     int           // rows in the batch
	Bytes    int           // their approximate size (rowBytes)
	Failed   int           // rows reported with an error
	Trigger  string        // "size", "bytes", "age", "flush" or "close"
	Duration time.Duration // from taking the batch to the last done call
	Err      error         // the first row error, nil when all committed
}

// Option configures a BatchWriter.
type Option func(*BatchWriter)

// WithClock replaces the system clock.
func WithClock(c Clock) Option { return func(w *BatchWriter) { w.clock = c } }

// WithBatchObserver calls f after each batch, from a sender goroutine
// (concurrently when Senders > 1); f must not block.
func WithBatchObserver(f func(BatchResult)) Option { return func(w *BatchWriter) { w.observe = f } }

// BatchWriter groups rows into inserts of up to MaxRows rows or about
// MaxBytes, sent when full or MaxAge after their first row, and reports
// every row's outcome once through the done function given to Add.
//
// Failures are reported, not retried: the caller (a JetStream consumer)
// naks a failed row and gets it redelivered with backoff, which is a retry
// that also survives a crash of this process; retrying here as well would
// hold messages past their ack wait. What the writer does itself is keep one
// bad row from failing its neighbours: a row whose values do not fit the
// column types fails alone with a permanent error, and a batch the server
// rejects for its data (type, parse or array-size errors) is split in halves
// until the rows at fault are found and reported permanent, the rest
// inserted. A batch spanning more partitions than the server takes in one
// insert is split the same way. Anything else (server unreachable, timeout)
// fails the batch's rows with a transient error.
//
// Senders goroutines (one by default, which keeps batches in order) send
// the batches while Add keeps filling the next one. A batch reaching
// MaxAge while every sender is busy is not queued behind them but kept
// filling until a sender is free: a slow server gets fewer, larger inserts
// rather than a queue of small ones.
type BatchWriter struct {
	conn      driver.Conn
	cfg       BatchConfig
	insertSQL string
	log       zerolog.Logger
	clock     Clock
	observe   func(BatchResult)

	ctx    context.Context // cancelled only when Close gives up waiting
	cancel context.CancelFunc

	mu       sync.Mutex
	wake     *sync.Cond // the sender waits on it for queued batches
	cur      *pendingBatch
	queue    []*pendingBatch
	inflight map[*pendingBatch]struct{}
	idle     int           // senders waiting for a batch
	pending  int           // rows accepted and not yet reported
	pendingB int           // their bytes (rowBytes)
	space    chan struct{} // closed (and replaced) when pending drops
	closed   bool
	stopped  chan struct{} // closed when the sender has exited

	fails failureLog
}

// failureLogEvery is how often, at most, a writer warns of failed
// inserts while they go on.
const failureLogEvery = 30 * time.Second

// failureLog lets the warning of a failed insert out at once, then at
// most once per failureLogEvery with how many batches failed since, and
// says when inserts succeed again: during a ClickHouse outage every
// batch fails, and a line per batch (one per table a second, 535 in a
// minute in a trial) buried what else the log said.
type failureLog struct {
	mu       sync.Mutex
	last     time.Time // of the last warning
	unlogged int       // batches failed since it
	spell    int       // batches failed since the last success
}

// failed counts a failed batch at now and returns how many failed since
// the last warning (this one included) when a warning is due, else 0.
func (f *failureLog) failed(now time.Time) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.unlogged++
	f.spell++
	if !f.last.IsZero() && now.Sub(f.last) < failureLogEvery {
		return 0
	}
	n := f.unlogged
	f.last, f.unlogged = now, 0
	return n
}

// succeeded returns how many batches failed in a row before this
// success (0: none), and starts over.
func (f *failureLog) succeeded() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := f.spell
	f.last, f.unlogged, f.spell = time.Time{}, 0, 0
	return n
}

type pendingBatch struct {
	rows    [][]any
	bytes   int // rowBytes of rows
	dones   []func(error)
	trigger string
	timer   Timer
	due     bool          // past MaxAge while every sender was busy
	done    chan struct{} // closed after every row was reported
	err     error         // first row error, readable after done
}

// NewBatchWriter validates cfg and starts the writer's sender goroutine;
// Close stops it.
func NewBatchWriter(conn driver.Conn, cfg BatchConfig, log zerolog.Logger, opts ...Option) (*BatchWriter, error) {
	if conn == nil {
		return nil, fmt.Errorf("%w: conn: nil", ErrInvalidConfig)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	table, _ := QuoteTable(cfg.Table)
	cols := make([]string, len(cfg.Columns))
	for i, c := range cfg.Columns {
		cols[i], _ = QuoteColumn(c)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &BatchWriter{
		conn:      conn,
		cfg:       cfg,
		insertSQL: "INSERT INTO " + table + " (" + strings.Join(cols, ", ") + ")",
		log:       log.With().Str(logging.FieldPart, "batch_writer").Str("table", cfg.Table).Logger(),
		clock:     systemClock{},
		ctx:       ctx,
		cancel:    cancel,
		space:     make(chan struct{}),
		stopped:   make(chan struct{}),
		inflight:  map[*pendingBatch]struct{}{},
	}
	w.wake = sync.NewCond(&w.mu)
	for _, o := range opts {
		o(w)
	}
	if w.clock == nil {
		cancel()
		return nil, fmt.Errorf("%w: clock: nil", ErrInvalidConfig)
	}
	var senders sync.WaitGroup
	for i := 0; i < cfg.Senders; i++ {
		senders.Go(w.sendLoop)
	}
	go func() {
		senders.Wait()
		close(w.stopped)
	}()
	return w, nil
}

// Add queues row (one value per column, in BatchConfig.Columns order). When
// Add returns nil, done (if not nil) is called exactly once, from a sender
// goroutine, after the insert holding the row returned: with nil when it
// committed, with an error otherwise (errs.IsPermanent tells bad data from a
// failure worth a retry). done runs before the sender takes the next batch,
// so it must be quick and must not call Add (acking a message is fine). When Add returns an error the row was
// not taken and done is never called. Add blocks while MaxPendingRows rows,
// or MaxPendingBytes bytes, are unreported, until ctx ends.
func (w *BatchWriter) Add(ctx context.Context, row []any, done func(error)) error {
	if len(row) != len(w.cfg.Columns) {
		return errs.Permanent(fmt.Errorf("%w: %d values for %d columns (%s)", ErrColumnCount, len(row), len(w.cfg.Columns), strings.Join(w.cfg.Columns, ", ")))
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	size := rowBytes(row)
	w.mu.Lock()
	for {
		if w.closed {
			w.mu.Unlock()
			return ErrClosed
		}
		// pendingB can only reach the bound with rows pending, whose
		// report makes room: a row larger than the bound is still taken
		// when it is alone.
		if w.pending < w.cfg.MaxPendingRows && w.pendingB < w.cfg.MaxPendingBytes {
			break
		}
		space := w.space
		w.mu.Unlock()
		select {
		case <-space:
		case <-ctx.Done():
			return ctx.Err()
		}
		w.mu.Lock()
	}
	b := w.cur
	if b == nil {
		// Room for the rows it is likely to get, not for MaxRows: a batch
		// of a quiet table, cut at its age, holds a few rows, and room for
		// a million would cost 32 MB a batch.
		n := min(w.cfg.MaxRows, initialBatchRows)
		b = &pendingBatch{
			rows:  make([][]any, 0, n),
			dones: make([]func(error), 0, n),
			done:  make(chan struct{}),
		}
		w.cur = b
		b.timer = w.clock.AfterFunc(w.cfg.MaxAge, func() { w.cutAged(b) })
	}
	b.rows = append(b.rows, row)
	b.dones = append(b.dones, done)
	b.bytes += size
	w.pending++
	w.pendingB += size
	switch {
	case len(b.rows) >= w.cfg.MaxRows:
		w.cutLocked("size")
	case b.bytes >= w.cfg.MaxBytes:
		w.cutLocked("bytes")
	}
	w.mu.Unlock()
	return nil
}

// cutAged sends b at its age, if it is still the batch being filled. When
// every sender is busy (a slow server) b stays open and keeps taking rows
// until a sender is free to take it (sendLoop): cut now, it would only wait
// in the queue, and each batch cut meanwhile would become an insert, and a
// part, of its own, a pile of small inserts for a server already behind.
func (w *BatchWriter) cutAged(b *pendingBatch) {
	w.mu.Lock()
	if w.cur == b {
		if len(w.queue) < w.idle {
			w.cutLocked("age")
		} else {
			b.due = true
		}
	}
	w.mu.Unlock()
}

// cutLocked hands the current batch to the sender. w.mu is held.
func (w *BatchWriter) cutLocked(trigger string) {
	b := w.cur
	if b == nil {
		return
	}
	w.cur = nil
	b.timer.Stop()
	b.trigger = trigger
	w.queue = append(w.queue, b)
	w.wake.Signal()
}

// Flush sends the rows added so far and waits until each was reported. It
// returns the first row error of those batches (every row also got its own
// through done), or ctx's error when waiting ended early.
func (w *BatchWriter) Flush(ctx context.Context) error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return ErrClosed
	}
	w.cutLocked("flush")
	waitFor := w.outstandingLocked()
	w.mu.Unlock()
	return waitBatches(ctx, waitFor)
}

func (w *BatchWriter) outstandingLocked() []*pendingBatch {
	out := make([]*pendingBatch, 0, len(w.queue)+len(w.inflight))
	for b := range w.inflight {
		out = append(out, b)
	}
	return append(out, w.queue...)
}

func waitBatches(ctx context.Context, batches []*pendingBatch) error {
	var first error
	for _, b := range batches {
		select {
		case <-b.done:
			if first == nil {
				first = b.err
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return first
}

// Close stops taking rows, sends what it holds and stops the sender. No
// row is dropped silently: if ctx ends first, the inserts under way are
// cancelled and every row not yet committed is reported to its done with an
// error (ErrClosed), and Close returns ctx's error.
func (w *BatchWriter) Close(ctx context.Context) error {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		w.cutLocked("close")
		close(w.space) // wake blocked Adds so they see closed
		w.space = make(chan struct{})
		w.wake.Broadcast()
	}
	w.mu.Unlock()
	select {
	case <-w.stopped:
		w.cancel()
		return nil
	case <-ctx.Done():
		w.cancel()
		<-w.stopped
		return ctx.Err()
	}
}

func (w *BatchWriter) sendLoop() {
	for {
		w.mu.Lock()
		for len(w.queue) == 0 && !w.closed {
			if w.cur != nil && w.cur.due {
				w.cutLocked("age")
				break
			}
			w.idle++
			w.wake.Wait()
			w.idle--
		}
		if len(w.queue) == 0 {
			w.mu.Unlock()
			return
		}
		b := w.queue[0]
		w.queue[0] = nil
		w.queue = w.queue[1:]
		w.inflight[b] = struct{}{}
		w.mu.Unlock()

		w.send(b)

		w.mu.Lock()
		delete(w.inflight, b)
		w.pending -= len(b.rows)
		w.pendingB -= b.bytes
		close(w.space)
		w.space = make(chan struct{})
		w.mu.Unlock()
		close(b.done)
	}
}

func (w *BatchWriter) send(b *pendingBatch) {
	start := w.clock.Now()
	rowErrs := make([]error, len(b.rows))
	idx := make([]int, len(b.rows))
	for i := range idx {
		idx[i] = i
	}
	w.insert(b.rows, idx, rowErrs)
	failed := 0
	for i, done := range b.dones {
		if err := rowErrs[i]; err != nil {
			failed++
			if b.err == nil {
				b.err = err
			}
		}
		if done != nil {
			done(rowErrs[i])
		}
	}
	switch {
	case failed > 0:
		if n := w.fails.failed(w.clock.Now()); n > 0 {
			// batches_failed: since the last such line (this one included).
			w.log.Warn().Err(b.err).Int("rows", len(b.rows)).Int("failed", failed).Str("trigger", b.trigger).
				Int("batches_failed", n).Msg("batch insert failed")
		}
	default:
		if n := w.fails.succeeded(); n > 0 {
			w.log.Info().Int("batches_failed", n).Msg("batch inserts succeed again")
		}
	}
	if w.observe != nil {
		w.observe(BatchResult{Rows: len(b.rows), Bytes: b.bytes, Failed: failed, Trigger: b.trigger, Duration: w.clock.Now().Sub(start), Err: b.err})
	}
}

// insert inserts rows[idx...] and sets out[i] for each row that failed,
// splitting the rows when the server rejects their data.
func (w *BatchWriter) insert(rows [][]any, idx []int, out []error) {
	if err := w.ctx.Err(); err != nil {
		for _, i := range idx {
			out[i] = fmt.Errorf("%w: insert not attempted: %w", ErrClosed, err)
		}
		return
	}
	sent, err := w.sendOnce(rows, idx, out)
	if err == nil {
		return
	}
	if w.ctx.Err() != nil {
		err = fmt.Errorf("%w: insert cancelled: %w", ErrClosed, err)
	}
	split := isDataError(err) || isTooManyPartitions(err)
	if split && len(sent) > 1 && w.ctx.Err() == nil {
		half := len(sent) / 2
		// sent aliases idx; copy so the halves stay independent.
		left := append([]int(nil), sent[:half]...)
		right := append([]int(nil), sent[half:]...)
		w.insert(rows, left, out)
		w.insert(rows, right, out)
		return
	}
	if isDataError(err) && len(sent) == 1 {
		err = errs.Permanent(fmt.Errorf("store: insert into %s: row rejected by the server: %w", w.cfg.Table, err))
	} else {
		err = fmt.Errorf("store: insert %d rows into %s: %w", len(sent), w.cfg.Table, withKeeperHint(err))
	}
	for _, i := range sent {
		out[i] = err
	}
}

// sendOnce is one PrepareBatch/Append/Send round. A row whose values do not
// convert to the column types fails alone (permanent); since clickhouse-go
// then drops the whole batch, the batch is prepared again with the rows
// that went in before. It returns the rows it sent.
func (w *BatchWriter) sendOnce(rows [][]any, idx []int, out []error) (sent []int, err error) {
	// The context is left to expire on its own instead of being cancelled
	// when Send returns: clickhouse-go's Send starts a goroutine that closes
	// the connection once the context is done, and if that goroutine runs
	// late it sees both "send finished" and "context done" and may pick the
	// latter, closing a connection already back in the pool and in use by
	// the next batch ("use of closed network connection", seen with two
	// senders on a loaded machine). A deadline InsertTimeout away is long
	// past any such goroutine.
	ctx, cancel := context.WithTimeout(w.ctx, w.cfg.InsertTimeout)
	time.AfterFunc(w.cfg.InsertTimeout, cancel)
	if len(w.cfg.Settings) > 0 {
		ctx = clickhouse.Context(ctx, clickhouse.WithSettings(w.cfg.Settings))
	}
	batch, err := w.conn.PrepareBatch(ctx, w.insertSQL)
	if err != nil {
		return idx, err
	}
	sent = make([]int, 0, len(idx))
	for _, i := range idx {
		if aerr := batch.Append(rows[i]...); aerr != nil {
			out[i] = errs.Permanent(fmt.Errorf("store: row does not fit the columns of %s: %w", w.cfg.Table, aerr))
			_ = batch.Abort()
			if batch, err = w.conn.PrepareBatch(ctx, w.insertSQL); err != nil {
				return append(sent, restAfter(idx, i)...), err
			}
			for _, j := range sent {
				if aerr := batch.Append(rows[j]...); aerr != nil {
					_ = batch.Abort()
					return append(sent, restAfter(idx, i)...), fmt.Errorf("re-append after a rejected row: %w", aerr)
				}
			}
			continue
		}
		sent = append(sent, i)
	}
	if len(sent) == 0 {
		_ = batch.Abort()
		return nil, nil
	}
	return sent, batch.Send()
}

// restAfter returns the indexes in idx after the value i.
func restAfter(idx []int, i int) []int {
	for k, v := range idx {
		if v == i {
			return idx[k+1:]
		}
	}
	return nil
}

// Server error codes that blame the inserted data rather than the server.
var dataErrorCodes = map[int32]bool{
	6:   true, // CANNOT_PARSE_TEXT
	27:  true, // CANNOT_PARSE_INPUT_ASSERTION_FAILED
	38:  true, // CANNOT_PARSE_DATE
	41:  true, // CANNOT_PARSE_DATETIME
	53:  true, // TYPE_MISMATCH
	69:  true, // ARGUMENT_OUT_OF_BOUND
	70:  true, // CANNOT_CONVERT_TYPE
	72:  true, // CANNOT_PARSE_NUMBER
	190: true, // SIZES_OF_ARRAYS_DOESNT_MATCH (Nested key/value lengths)
	469: true, // VIOLATED_CONSTRAINT
}

func isDataError(err error) bool {
	var ex *clickhouse.Exception
	return errors.As(err, &ex) && dataErrorCodes[ex.Code]
}

// withKeeperHint adds to an error of a server without its ZooKeeper (or
// ClickHouse Keeper) session what that means, since the server's words
// ("Table is in readonly mode", "Session expired") do not name it.
func withKeeperHint(err error) error {
	var ex *clickhouse.Exception
	if errors.As(err, &ex) && (ex.Code == 242 || ex.Code == 999) { // TABLE_IS_READ_ONLY, KEEPER_EXCEPTION
		return fmt.Errorf("%w (the server has no ZooKeeper or ClickHouse Keeper session: its replicated tables take no rows and ON CLUSTER statements do not run until it has one again)", err)
	}
	return err
}

// isTooManyPartitions matches "Too many partitions for single INSERT block"
// (a replay of old events spans many days), which a smaller batch avoids.
func isTooManyPartitions(err error) bool {
	var ex *clickhouse.Exception
	return errors.As(err, &ex) && ex.Code == 252 && strings.Contains(ex.Message, "partitions for single INSERT block")
}

// rowBytes approximates the memory a row holds and the bytes it adds to an
// insert: strings and byte slices by their length, arrays element by
// element, numbers and times by their size, pointers (the writer's rows
// point into their envelopes) by what they point at. The usual types are
// counted without reflection: Add runs for every row.
func rowBytes(row []any) int {
	n := 0
	for _, v := range row {
		n += valueBytes(v)
	}
	return n
}

func valueBytes(v any) int {
	switch v := v.(type) {
	case nil:
		return 0
	case string:
		return len(v)
	case *string:
		if v == nil {
			return 0
		}
		return len(*v)
	case []byte:
		return len(v)
	case json.RawMessage:
		return len(v)
	case []string:
		n := 0
		for _, s := range v {
			n += len(s)
		}
		return n
	case time.Time, *time.Time, float64, *float64, int64, uint64:
		return 8
	case uint8, int8, bool:
		return 1
	case uint16, int16:
		return 2
	case uint32, int32, float32:
		return 4
	}
	return reflectBytes(reflect.ValueOf(v))
}

func reflectBytes(rv reflect.Value) int {
	switch rv.Kind() {
	case reflect.Invalid:
		return 0
	case reflect.Pointer, reflect.Interface:
		if rv.IsNil() {
			return 0
		}
		return reflectBytes(rv.Elem())
	case reflect.String:
		return rv.Len()
	case reflect.Slice, reflect.Array:
		switch elem := rv.Type().Elem(); elem.Kind() {
		case reflect.String, reflect.Slice, reflect.Array, reflect.Pointer, reflect.Interface:
			n := 0
			for i := range rv.Len() {
				n += reflectBytes(rv.Index(i))
			}
			return n
		default:
			return rv.Len() * int(elem.Size())
		}
	}
	return int(rv.Type().Size())
}
