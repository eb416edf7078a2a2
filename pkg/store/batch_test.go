package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/aiops-dev/aiops/pkg/errs"
	"github.com/rs/zerolog"
)

var kvColumns = []string{"id", "n", "labels.key", "labels.value"}

func createKV(t *testing.T, s *Store, engine string) {
	t.Helper()
	if err := s.Conn.Exec(context.Background(), "CREATE TABLE kv (id String, n UInt16, labels Nested(key String, value String)) ENGINE = "+engine+" ORDER BY id"); err != nil {
		t.Fatal(err)
	}
}

func kvRow(id string) []any { return []any{id, uint16(len(id)), []string{"k"}, []string{"v"}} }

// results records every done call, to check each row is reported once.
type results struct {
	mu    sync.Mutex
	calls map[string][]error
	ch    chan struct{}
}

func newResults() *results {
	return &results{calls: map[string][]error{}, ch: make(chan struct{}, 1<<16)}
}

func (r *results) done(id string) func(error) {
	return func(err error) {
		r.mu.Lock()
		r.calls[id] = append(r.calls[id], err)
		r.mu.Unlock()
		r.ch <- struct{}{}
	}
}

// wait blocks until n more done calls arrived.
func (r *results) wait(t *testing.T, n int) {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for i := 0; i < n; i++ {
		select {
		case <-r.ch:
		case <-timeout:
			t.Fatalf("only %d of %d done calls arrived", i, n)
		}
	}
}

func (r *results) get(id string) []error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]error(nil), r.calls[id]...)
}

func (r *results) total() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, c := range r.calls {
		n += len(c)
	}
	return n
}

func newWriter(t *testing.T, conn driver.Conn, cfg BatchConfig, opts ...Option) *BatchWriter {
	t.Helper()
	w, err := NewBatchWriter(conn, cfg, zerolog.New(zerolog.NewTestWriter(t)), opts...)
	if err != nil {
		t.Fatalf("NewBatchWriter: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = w.Close(ctx)
	})
	return w
}

func TestBatchConfigValidate(t *testing.T) {
	ok := BatchConfig{Table: "events", Columns: []string{"id", "labels.key"}}
	tests := []struct {
		name    string
		mutate  func(*BatchConfig)
		wantErr string
	}{
		{"defaults", func(*BatchConfig) {}, ""},
		{"database prefix", func(c *BatchConfig) { c.Table = "aiops.events" }, ""},
		{"explicit limits", func(c *BatchConfig) { c.MaxRows, c.MaxPendingRows, c.MaxAge = 10, 10, time.Millisecond }, ""},
		{"no table", func(c *BatchConfig) { c.Table = "" }, "table"},
		{"table injection", func(c *BatchConfig) { c.Table = "events (id) SELECT * FROM secrets --" }, "table"},
		{"no columns", func(c *BatchConfig) { c.Columns = nil }, "columns"},
		{"column injection", func(c *BatchConfig) { c.Columns = []string{"id", "x) VALUES ('a'"} }, "columns[1]"},
		{"duplicate column", func(c *BatchConfig) { c.Columns = []string{"id", "id"} }, "columns[1]"},
		{"negative max rows", func(c *BatchConfig) { c.MaxRows = -1 }, "max_rows"},
		{"huge max rows", func(c *BatchConfig) { c.MaxRows = maxBatchRows + 1 }, "max_rows"},
		{"negative age", func(c *BatchConfig) { c.MaxAge = -time.Second }, "max_age"},
		{"pending below batch", func(c *BatchConfig) { c.MaxRows, c.MaxPendingRows = 100, 99 }, "max_pending_rows"},
		{"negative timeout", func(c *BatchConfig) { c.InsertTimeout = -1 }, "insert_timeout"},
		{"negative senders", func(c *BatchConfig) { c.Senders = -1 }, "senders"},
		{"too many senders", func(c *BatchConfig) { c.Senders = maxSenders + 1 }, "senders"},
		{"explicit bytes", func(c *BatchConfig) { c.MaxBytes, c.MaxPendingBytes = 1<<20, 1<<20 }, ""},
		{"negative max bytes", func(c *BatchConfig) { c.MaxBytes = -1 }, "max_bytes"},
		{"huge max bytes", func(c *BatchConfig) { c.MaxBytes = MaxBatchBytes + 1 }, "max_bytes"},
		{"pending bytes below batch", func(c *BatchConfig) { c.MaxBytes, c.MaxPendingBytes = 1000, 999 }, "max_pending_bytes"},
		{"pending bytes below default batch", func(c *BatchConfig) { c.MaxPendingBytes = DefaultMaxBytes - 1 }, "max_pending_bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			c.Columns = append([]string(nil), ok.Columns...)
			tt.mutate(&c)
			err := c.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate() = %v", err)
				}
				return
			}
			if err == nil || !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tt.wantErr+":") {
				t.Fatalf("Validate() = %v, want ErrInvalidConfig naming %s", err, tt.wantErr)
			}
		})
	}
	if _, err := NewBatchWriter(nil, ok, zerolog.Nop()); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("NewBatchWriter(nil conn) = %v", err)
	}
}

func TestBatchWriterFlushesBySize(t *testing.T) {
	s, _ := openTestStore(t)
	createKV(t, s, "MergeTree")
	clock := newFakeClock()
	var batches []BatchResult
	var mu sync.Mutex
	w := newWriter(t, s.Conn, BatchConfig{Table: "kv", Columns: kvColumns, MaxRows: 3, MaxAge: time.Hour},
		WithClock(clock), WithBatchObserver(func(r BatchResult) { mu.Lock(); batches = append(batches, r); mu.Unlock() }))
	res := newResults()
	ctx := context.Background()
	for i := 0; i < 7; i++ {
		id := fmt.Sprintf("r%d", i)
		if err := w.Add(ctx, kvRow(id), res.done(id)); err != nil {
			t.Fatal(err)
		}
	}
	// Two full batches go without the clock moving; the seventh row waits.
	res.wait(t, 6)
	if n := count(t, s, "SELECT count() FROM kv"); n != 6 {
		t.Fatalf("%d rows in the table after two full batches, want 6", n)
	}
	for i := 0; i < 6; i++ {
		if got := res.get(fmt.Sprintf("r%d", i)); len(got) != 1 || got[0] != nil {
			t.Fatalf("row r%d: done calls %v, want one nil", i, got)
		}
	}
	if got := res.get("r6"); len(got) != 0 {
		t.Fatalf("row r6 reported before its batch was sent: %v", got)
	}
	if err := w.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	if got := res.get("r6"); len(got) != 1 || got[0] != nil {
		t.Fatalf("row r6 after Flush: %v, want one nil", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(batches) != 3 || batches[0].Trigger != "size" || batches[1].Trigger != "size" || batches[2].Trigger != "flush" || batches[2].Rows != 1 {
		t.Fatalf("batches = %+v, want size(3), size(3), flush(1)", batches)
	}
}

func TestBatchWriterFlushesByAge(t *testing.T) {
	s, _ := openTestStore(t)
	createKV(t, s, "MergeTree")
	clock := newFakeClock()
	w := newWriter(t, s.Conn, BatchConfig{Table: "kv", Columns: kvColumns, MaxRows: 1000, MaxAge: 2 * time.Second}, WithClock(clock))
	res := newResults()
	ctx := context.Background()
	for _, id := range []string{"a", "b"} {
		if err := w.Add(ctx, kvRow(id), res.done(id)); err != nil {
			t.Fatal(err)
		}
	}
	clock.Advance(time.Second)
	w.mu.Lock()
	held := w.cur != nil && len(w.cur.rows) == 2
	w.mu.Unlock()
	if !held || res.total() != 0 {
		t.Fatalf("batch left the writer before MaxAge (held=%v, done calls=%d)", held, res.total())
	}
	clock.Advance(time.Second)
	res.wait(t, 2)
	if got := res.get("a"); len(got) != 1 || got[0] != nil {
		t.Fatalf("row a: %v, want one nil", got)
	}
	if n := count(t, s, "SELECT count() FROM kv"); n != 2 {
		t.Fatalf("%d rows, want 2", n)
	}
	// The next row starts a new age window.
	if err := w.Add(ctx, kvRow("c"), res.done("c")); err != nil {
		t.Fatal(err)
	}
	if clock.pendingTimers() != 1 {
		t.Fatalf("%d age timers armed, want 1", clock.pendingTimers())
	}
	clock.Advance(2 * time.Second)
	res.wait(t, 1)
	if n := count(t, s, "SELECT count() FROM kv"); n != 3 {
		t.Fatalf("%d rows, want 3", n)
	}
}

func TestBatchWriterReplacingMergeTreeHidesRedelivery(t *testing.T) {
	s, _ := openTestStore(t)
	ctx := context.Background()
	if _, err := s.Migrate(ctx, Schema); err != nil {
		t.Fatal(err)
	}
	cols := []string{"id", "kind", "time", "observed_time", "source", "service", "severity", "fingerprint",
		"labels.key", "labels.value", "resource.key", "resource.value", "body", "schema_version"}
	// Without merges both inserts stay visible as parts, so the test sees
	// the duplicate rows exist and that FINAL hides them.
	if err := s.Conn.Exec(ctx, "SYSTEM STOP MERGES events"); err != nil {
		t.Fatal(err)
	}
	w := newWriter(t, s.Conn, BatchConfig{Table: "events", Columns: cols, MaxRows: 100})
	ts := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	row := func(id string) []any {
		return []any{id, "log", ts, ts, "test", "checkout", "error", "fp", []string{"env"}, []string{"prod"},
			[]string{"host"}, []string{"h1"}, `{"msg":"boom"}`, uint16(1)}
	}
	// The same five events delivered twice, in two inserts.
	for round := 0; round < 2; round++ {
		for i := 0; i < 5; i++ {
			if err := w.Add(ctx, row(fmt.Sprintf("01J%d", i)), nil); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Flush(ctx); err != nil {
			t.Fatalf("Flush round %d: %v", round, err)
		}
	}
	if n := count(t, s, "SELECT count() FROM events"); n != 10 {
		t.Fatalf("%d stored rows, want 10 (two deliveries of 5)", n)
	}
	if n := count(t, s, "SELECT count() FROM events FINAL"); n != 5 {
		t.Fatalf("SELECT FINAL counts %d events, want 5", n)
	}
	if n := count(t, s, "SELECT uniqExact(id) FROM events"); n != 5 {
		t.Fatalf("%d distinct ids, want 5", n)
	}
}

func TestBatchWriterBadRowFailsAlone(t *testing.T) {
	s, _ := openTestStore(t)
	createKV(t, s, "MergeTree")
	w := newWriter(t, s.Conn, BatchConfig{Table: "kv", Columns: kvColumns, MaxRows: 100})
	res := newResults()
	ctx := context.Background()
	rows := map[string][]any{
		"good1":      kvRow("good1"),
		"wrong-type": {"wrong-type", "not a number", []string{}, []string{}}, // rejected by the client
		"good2":      kvRow("good2"),
		"ragged":     {"ragged", uint16(1), []string{"k1", "k2"}, []string{"v1"}}, // rejected by the server
		"good3":      kvRow("good3"),
	}
	for _, id := range []string{"good1", "wrong-type", "good2", "ragged", "good3"} {
		if err := w.Add(ctx, rows[id], res.done(id)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(ctx); err == nil {
		t.Fatal("Flush reported no error for a batch with bad rows")
	}
	for _, id := range []string{"wrong-type", "ragged"} {
		got := res.get(id)
		if len(got) != 1 || got[0] == nil || !errs.IsPermanent(got[0]) {
			t.Fatalf("bad row %s: done calls %v, want one permanent error", id, got)
		}
		// The reason is dead-lettered with the event: it must say which
		// of the writer's tables refused the row.
		if !strings.Contains(got[0].Error(), " kv") {
			t.Errorf("bad row %s: %v, want the table (kv) named", id, got[0])
		}
	}
	for _, id := range []string{"good1", "good2", "good3"} {
		if got := res.get(id); len(got) != 1 || got[0] != nil {
			t.Fatalf("good row %s: done calls %v, want one nil", id, got)
		}
	}
	if n := count(t, s, "SELECT count() FROM kv"); n != 3 {
		t.Fatalf("%d rows stored, want the 3 good ones", n)
	}
	if err := w.Add(ctx, []any{"short"}, res.done("short")); !errors.Is(err, ErrColumnCount) || !errs.IsPermanent(err) {
		t.Fatalf("Add(short row) = %v, want permanent ErrColumnCount", err)
	}
}

func TestBatchWriterSurvivesOutage(t *testing.T) {
	s, dsn := openTestStore(t)
	createKV(t, s, "MergeTree")
	proxied, proxy := viaProxy(t, dsn)
	ctx := context.Background()
	ps, err := Open(ctx, Config{DSN: proxied, DialTimeout: time.Second}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer ps.Close()
	w := newWriter(t, ps.Conn, BatchConfig{Table: "kv", Columns: kvColumns, MaxRows: 100, InsertTimeout: 5 * time.Second})
	res := newResults()

	if err := w.Add(ctx, kvRow("before"), res.done("before")); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(ctx); err != nil {
		t.Fatalf("Flush before the outage: %v", err)
	}

	proxy.Cut()
	for _, id := range []string{"during1", "during2"} {
		if err := w.Add(ctx, kvRow(id), res.done(id)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(ctx); err == nil {
		t.Fatal("Flush during the outage reported success")
	}
	for _, id := range []string{"during1", "during2"} {
		got := res.get(id)
		if len(got) != 1 || got[0] == nil || errs.IsPermanent(got[0]) {
			t.Fatalf("row %s during the outage: %v, want one transient error", id, got)
		}
	}

	proxy.Restore()
	// A redelivery of the failed rows, as the consumer's nak would cause.
	for _, id := range []string{"during1", "during2", "after"} {
		if err := w.Add(ctx, kvRow(id), res.done(id+"/retry")); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(ctx); err != nil {
		t.Fatalf("Flush after Restore: %v", err)
	}
	for _, id := range []string{"during1/retry", "during2/retry", "after/retry"} {
		if got := res.get(id); len(got) != 1 || got[0] != nil {
			t.Fatalf("row %s after Restore: %v, want one nil", id, got)
		}
	}
	if n := count(t, s, "SELECT count() FROM kv"); n != 4 {
		t.Fatalf("%d rows stored, want 4 (before, during1, during2, after)", n)
	}
}

// blockingConn holds PrepareBatch until released, to fill the writer up.
type blockingConn struct {
	driver.Conn
	release chan struct{}
	entered chan struct{} // if set, gets a value as each PrepareBatch begins
}

func (c *blockingConn) PrepareBatch(ctx context.Context, q string, opts ...driver.PrepareBatchOption) (driver.Batch, error) {
	if c.entered != nil {
		c.entered <- struct{}{}
	}
	select {
	case <-c.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return c.Conn.PrepareBatch(ctx, q, opts...)
}

func TestBatchWriterBackpressure(t *testing.T) {
	s, _ := openTestStore(t)
	createKV(t, s, "MergeTree")
	conn := &blockingConn{Conn: s.Conn, release: make(chan struct{})}
	w := newWriter(t, conn, BatchConfig{Table: "kv", Columns: kvColumns, MaxRows: 2, MaxPendingRows: 4, MaxAge: time.Hour}, WithClock(newFakeClock()))
	res := newResults()
	ctx := context.Background()
	for i := 0; i < 4; i++ {
		id := fmt.Sprintf("r%d", i)
		if err := w.Add(ctx, kvRow(id), res.done(id)); err != nil {
			t.Fatal(err)
		}
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := w.Add(short, kvRow("r4"), res.done("r4")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Add beyond MaxPendingRows = %v, want it to block until ctx ends", err)
	}
	added := make(chan error, 1)
	go func() { added <- w.Add(ctx, kvRow("r5"), res.done("r5")) }()
	close(conn.release)
	if err := <-added; err != nil {
		t.Fatalf("Add after the sender caught up: %v", err)
	}
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := res.get("r4"); len(got) != 0 {
		t.Fatalf("row r4 was refused by Add but reported: %v", got)
	}
	if n := count(t, s, "SELECT count() FROM kv"); n != 5 {
		t.Fatalf("%d rows, want 5", n)
	}
}

// padRow is a kv row of about n bytes (rowBytes): its id carries them.
func padRow(id string, n int) []any {
	return kvRow(id + strings.Repeat("x", n-len(id)-rowBytes(kvRow(""))))
}

// A batch is also cut when its rows reach MaxBytes, whatever their number:
// a few large events must not make one insert of gigabytes. A row larger
// than the limit is still taken, and cuts the batch it joins.
func TestBatchWriterFlushesByBytes(t *testing.T) {
	s, _ := openTestStore(t)
	createKV(t, s, "MergeTree")
	var (
		mu      sync.Mutex
		batches []BatchResult
	)
	w := newWriter(t, s.Conn, BatchConfig{Table: "kv", Columns: kvColumns, MaxRows: 1000, MaxAge: time.Hour, MaxBytes: 1000},
		WithClock(newFakeClock()), WithBatchObserver(func(r BatchResult) { mu.Lock(); batches = append(batches, r); mu.Unlock() }))
	res := newResults()
	ctx := context.Background()
	for i := range 5 {
		id := fmt.Sprintf("r%d", i)
		if err := w.Add(ctx, padRow(id, 400), res.done(id)); err != nil {
			t.Fatal(err)
		}
	}
	// 400 + 400 + 400 reach 1000: the first three go without the clock
	// moving; the other two (800) wait.
	res.wait(t, 3)
	if got := res.get("r3"); len(got) != 0 {
		t.Fatalf("row r3 reported before its batch was full: %v", got)
	}
	if err := w.Add(ctx, padRow("big", 5000), res.done("big")); err != nil {
		t.Fatal(err)
	}
	res.wait(t, 3)
	if n := count(t, s, "SELECT count() FROM kv"); n != 6 {
		t.Fatalf("%d rows in the table, want 6", n)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(batches) != 2 || batches[0].Trigger != "bytes" || batches[0].Rows != 3 || batches[0].Bytes != 1200 ||
		batches[1].Trigger != "bytes" || batches[1].Rows != 3 || batches[1].Bytes != 5800 {
		t.Fatalf("batches = %+v, want bytes(3 rows, 1200 B), bytes(3 rows, 5800 B)", batches)
	}
}

// Rows accepted and not yet reported are bounded in bytes too: Add blocks
// at MaxPendingBytes until the sender catches up, as at MaxPendingRows.
// One row is always taken when nothing is pending, however large.
func TestBatchWriterBackpressureByBytes(t *testing.T) {
	s, _ := openTestStore(t)
	createKV(t, s, "MergeTree")
	conn := &blockingConn{Conn: s.Conn, release: make(chan struct{})}
	w := newWriter(t, conn, BatchConfig{Table: "kv", Columns: kvColumns, MaxRows: 1000, MaxAge: time.Hour, MaxBytes: 1000, MaxPendingBytes: 2000}, WithClock(newFakeClock()))
	res := newResults()
	ctx := context.Background()
	for i := range 4 {
		id := fmt.Sprintf("r%d", i)
		if err := w.Add(ctx, padRow(id, 500), res.done(id)); err != nil {
			t.Fatal(err)
		}
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := w.Add(short, padRow("r4", 500), res.done("r4")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Add beyond MaxPendingBytes = %v, want it to block until ctx ends", err)
	}
	added := make(chan error, 1)
	go func() { added <- w.Add(ctx, padRow("r5", 500), res.done("r5")) }()
	close(conn.release)
	if err := <-added; err != nil {
		t.Fatalf("Add after the sender caught up: %v", err)
	}
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	res.wait(t, 5)
	if got := res.get("r4"); len(got) != 0 {
		t.Fatalf("row r4 was refused by Add but reported: %v", got)
	}

	alone := newWriter(t, s.Conn, BatchConfig{Table: "kv", Columns: kvColumns, MaxAge: time.Hour, MaxBytes: 1000, MaxPendingBytes: 1000}, WithClock(newFakeClock()))
	short, cancel = context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := alone.Add(short, padRow("huge", 10_000), res.done("huge")); err != nil {
		t.Fatalf("a row over MaxPendingBytes with nothing pending: %v, want it taken", err)
	}
	res.wait(t, 1)
	if n := count(t, s, "SELECT count() FROM kv"); n != 6 {
		t.Fatalf("%d rows, want 6", n)
	}
}

// rowBytes counts what a row carries: strings and byte slices by length,
// pointers (the writer's rows point into their envelopes) by what they
// point at, arrays element by element, numbers and times by their size.
func TestRowBytes(t *testing.T) {
	s, now, f := "héllo", time.Now(), 2.5
	type named string
	for _, c := range []struct {
		row  []any
		want int
	}{
		{[]any{"abc", []byte("de"), json.RawMessage(`{"a":1}`)}, 3 + 2 + 7},
		{[]any{&s, []string{"a", "bb"}, named("xyz")}, 6 + 3 + 3},
		{[]any{uint16(1), uint8(1), &f, f, now, &now, nil, (*string)(nil)}, 2 + 1 + 8 + 8 + 8 + 8},
		{[]any{[]float64{1, 2}, map[string]string{"k": "v"}}, 16 + 8},
	} {
		if got := rowBytes(c.row); got != c.want {
			t.Errorf("rowBytes(%#v) = %d, want %d", c.row, got, c.want)
		}
	}
}

func TestBatchWriterClose(t *testing.T) {
	s, _ := openTestStore(t)
	createKV(t, s, "MergeTree")
	ctx := context.Background()

	t.Run("sends what it holds", func(t *testing.T) {
		w, err := NewBatchWriter(s.Conn, BatchConfig{Table: "kv", Columns: kvColumns, MaxRows: 100, MaxAge: time.Hour}, zerolog.Nop(), WithClock(newFakeClock()))
		if err != nil {
			t.Fatal(err)
		}
		res := newResults()
		for _, id := range []string{"c1", "c2"} {
			if err := w.Add(ctx, kvRow(id), res.done(id)); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(ctx); err != nil {
			t.Fatalf("Close: %v", err)
		}
		for _, id := range []string{"c1", "c2"} {
			if got := res.get(id); len(got) != 1 || got[0] != nil {
				t.Fatalf("row %s after Close: %v, want one nil", id, got)
			}
		}
		if err := w.Add(ctx, kvRow("late"), res.done("late")); !errors.Is(err, ErrClosed) {
			t.Fatalf("Add after Close = %v, want ErrClosed", err)
		}
		if err := w.Flush(ctx); !errors.Is(err, ErrClosed) {
			t.Fatalf("Flush after Close = %v, want ErrClosed", err)
		}
		if err := w.Close(ctx); err != nil {
			t.Fatalf("second Close = %v", err)
		}
	})

	t.Run("gives up and reports every row", func(t *testing.T) {
		conn := &blockingConn{Conn: s.Conn, release: make(chan struct{})}
		w, err := NewBatchWriter(conn, BatchConfig{Table: "kv", Columns: kvColumns, MaxRows: 2, MaxAge: time.Hour}, zerolog.Nop(), WithClock(newFakeClock()))
		if err != nil {
			t.Fatal(err)
		}
		res := newResults()
		for i := 0; i < 5; i++ {
			id := fmt.Sprintf("g%d", i)
			if err := w.Add(ctx, kvRow(id), res.done(id)); err != nil {
				t.Fatal(err)
			}
		}
		short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		if err := w.Close(short); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Close with a stuck server = %v, want DeadlineExceeded", err)
		}
		for i := 0; i < 5; i++ {
			got := res.get(fmt.Sprintf("g%d", i))
			if len(got) != 1 || !errors.Is(got[0], ErrClosed) {
				t.Fatalf("row g%d: %v, want one ErrClosed", i, got)
			}
		}
	})
}

func TestBatchWriterConcurrentAdds(t *testing.T) {
	for _, senders := range []int{1, 3} {
		t.Run(fmt.Sprintf("senders=%d", senders), func(t *testing.T) { testConcurrentAdds(t, senders) })
	}
}

func testConcurrentAdds(t *testing.T, senders int) {
	s, _ := openTestStore(t)
	createKV(t, s, "MergeTree")
	w := newWriter(t, s.Conn, BatchConfig{Table: "kv", Columns: kvColumns, MaxRows: 64, MaxAge: 10 * time.Millisecond, Senders: senders})
	res := newResults()
	ctx := context.Background()
	const workers, perWorker = 4, 500
	var wg sync.WaitGroup
	for g := 0; g < workers; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perWorker; i++ {
				id := fmt.Sprintf("w%d-%d", g, i)
				if err := w.Add(ctx, kvRow(id), res.done(id)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := res.total(); got != workers*perWorker {
		t.Fatalf("%d done calls, want %d", got, workers*perWorker)
	}
	res.mu.Lock()
	for id, calls := range res.calls {
		if len(calls) != 1 || calls[0] != nil {
			t.Errorf("row %s: done calls %v, want one nil", id, calls)
		}
	}
	res.mu.Unlock()
	if n := count(t, s, "SELECT count() FROM kv"); n != workers*perWorker {
		t.Fatalf("%d rows, want %d", n, workers*perWorker)
	}
}

// While an insert is slow (an overloaded server), the rows that come in
// meanwhile wait for it in one batch, not in a batch per MaxAge: a queue of
// small batches would each become an insert, and a part, of their own once
// the server answers (more load on a server already behind), and would
// hold memory per batch rather than per row.
func TestBatchWriterSlowInsertDoesNotQueueSmallBatches(t *testing.T) {
	s, _ := openTestStore(t)
	createKV(t, s, "MergeTree")
	conn := &blockingConn{Conn: s.Conn, release: make(chan struct{}), entered: make(chan struct{}, 16)}
	clock := newFakeClock()
	var (
		mu      sync.Mutex
		batches []BatchResult
	)
	w := newWriter(t, conn, BatchConfig{Table: "kv", Columns: kvColumns, MaxRows: 1000, MaxAge: time.Second},
		WithClock(clock), WithBatchObserver(func(r BatchResult) { mu.Lock(); batches = append(batches, r); mu.Unlock() }))
	res := newResults()
	ctx := context.Background()
	// The first row's batch goes at its age and its insert hangs; five
	// more rows come, a second apart.
	for i := range 6 {
		id := fmt.Sprintf("r%d", i)
		if err := w.Add(ctx, kvRow(id), res.done(id)); err != nil {
			t.Fatal(err)
		}
		clock.Advance(time.Second)
		if i == 0 {
			<-conn.entered // its insert is under way
		}
	}
	close(conn.release)
	res.wait(t, 6)
	for i := range 6 {
		if got := res.get(fmt.Sprintf("r%d", i)); len(got) != 1 || got[0] != nil {
			t.Fatalf("row r%d: %v, want one nil", i, got)
		}
	}
	if n := count(t, s, "SELECT count() FROM kv"); n != 6 {
		t.Fatalf("%d rows, want 6", n)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(batches) != 2 || batches[0].Rows != 1 || batches[1].Rows != 5 || batches[1].Trigger != "age" {
		t.Fatalf("batches = %+v, want age(1 row) and, once it returned, age(5 rows)", batches)
	}
}

// A batch holds memory for the rows it has, not for MaxRows: a table that
// gets a row a second under max_rows 1,000,000 must not allocate tens of
// megabytes a second.
func TestBatchWriterAllocatesForItsRows(t *testing.T) {
	s, _ := openTestStore(t)
	createKV(t, s, "MergeTree")
	w := newWriter(t, s.Conn, BatchConfig{Table: "kv", Columns: kvColumns, MaxRows: MaxBatchRows, MaxAge: time.Hour}, WithClock(newFakeClock()))
	ctx := context.Background()
	row := kvRow("one")
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if err := w.Add(ctx, row, nil); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
		t.Fatalf("the first row of a batch allocated %d bytes, want well under 1 MiB (room for MaxRows %d rows is %d bytes)", n, MaxBatchRows, MaxBatchRows*32)
	}
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}
