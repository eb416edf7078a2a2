package writer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/bus"
	"github.com/aiops-dev/aiops/pkg/config"
	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/pkg/store"
	"github.com/aiops-dev/aiops/pkg/testenv"
)

// The limits the writer keeps: the connections its inserts need, the bytes
// a batch and a table may hold, and the consumer's ack wait while rows wait
// for their insert.

// Every batch writer holds a connection per insert in flight (a table
// each, times writer.senders); with fewer in the pool, inserts, the
// retention pass and the readiness ping fail against each other after the
// dial timeout ("acquire conn timeout"). New refuses such a pool, naming
// the keys, instead of failing under load.
func TestNewRefusesAPoolTooSmallForItsInserts(t *testing.T) {
	if testing.Short() {
		t.Skip("needs JetStream")
	}
	ns := testenv.StartNATS(t)
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	nc, js, err := bus.Connect(context.Background(), bus.Config{URLs: []string{ns.URL()}}, log)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if err := bus.EnsureTopology(context.Background(), js, bus.DefaultStreams()); err != nil {
		t.Fatal(err)
	}
	pool := func(maxOpen int) driver.Conn {
		// Opening a pool dials nothing: New must decide from its size.
		conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{"127.0.0.1:1"}, MaxOpenConns: maxOpen})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}

	cfg := Config{Senders: 2}
	need := len(EventTables)*2 + store.ReservedConns
	if got := cfg.PoolConns(); got != need {
		t.Fatalf("PoolConns() = %d, want %d", got, need)
	}
	_, err = New(context.Background(), js, pool(need-1), cfg, log)
	if err == nil || !errors.Is(err, config.ErrInvalidConfig) || !strings.Contains(err.Error(), "store.max_open_conns") ||
		!strings.Contains(err.Error(), "writer.senders") || !strings.Contains(err.Error(), fmt.Sprint(need)) {
		t.Fatalf("New on a pool of %d for %d inserts = %v, want an invalid config naming store.max_open_conns, writer.senders and %d", need-1, len(EventTables)*2, err, need)
	}
	w, err := New(context.Background(), js, pool(need), cfg, log)
	if err != nil {
		t.Fatalf("New on a pool of %d: %v", need, err)
	}
	w.sink.Close(context.Background())

	// The store's default pool fits the writer's default.
	if n := DefaultConfig().PoolConns(); n > store.DefaultMaxOpenConns {
		t.Fatalf("the default writer needs %d connections, the store's default pool has %d", n, store.DefaultMaxOpenConns)
	}
}

// slowConn makes every insert take delay, as a loaded server does.
type slowConn struct {
	driver.Conn
	delay time.Duration
}

func (c *slowConn) PrepareBatch(ctx context.Context, q string, opts ...driver.PrepareBatchOption) (driver.Batch, error) {
	select {
	case <-time.After(c.delay):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return c.Conn.PrepareBatch(ctx, q, opts...)
}

// An insert slower than the consumer's ack wait (a loaded server, or
// batches queued behind one that times out) must not get the messages of
// its rows redelivered while the writer still holds them: the consumer
// tells JetStream they are in progress.
func TestSlowInsertIsNotRedelivered(t *testing.T) {
	r := newRig(t)
	_, js := r.connect()
	const n = 20
	publishEvents(t, js, n)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, wjs := r.connect()
	cfg := Config{MaxAge: 100 * time.Millisecond, Consumer: bus.ConsumerConfig{AckWait: 2 * time.Second}}
	w, err := New(ctx, wjs, &slowConn{Conn: r.store.Conn, delay: 5 * time.Second}, cfg, r.log)
	if err != nil {
		t.Fatal(err)
	}
	finished := make(chan error, 1)
	go func() { finished <- w.Run(ctx) }()
	defer func() {
		cancel()
		<-finished
	}()

	r.waitFor(time.Minute, "all acked", func() (bool, string) {
		s := w.Stats()
		return s.Acked == n, fmt.Sprintf("%+v", s)
	})
	if s := w.Stats(); s.Delivered != n || s.InProgress == 0 {
		t.Fatalf("%+v: want each of the %d messages delivered once, told in progress while its insert took longer than the ack wait", s, n)
	}
}

// Large events fill a batch by bytes long before max_rows: the batch is
// sent when it reaches writer.max_bytes, not at its age.
func TestLargeEventsCutBatchesByBytes(t *testing.T) {
	r := newRig(t)
	_, js := r.connect()
	pub, err := bus.NewPublisher(js)
	if err != nil {
		t.Fatal(err)
	}
	const n = 40
	now := time.Now().UTC().Truncate(time.Second)
	msgs := make([]bus.Message, n)
	for i := range msgs {
		// About 60 KiB each: 40 of them are 2.4 MiB per table.
		e, err := event.New(event.KindLog, "checkout", now, event.LogBody{Message: fmt.Sprintf("%d %s", i, strings.Repeat("x", 60_000))})
		if err != nil {
			t.Fatal(err)
		}
		raw, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		msgs[i] = bus.Message{Subject: e.Subject(), ID: e.ID, Data: raw}
	}
	if _, err := pub.PublishAll(context.Background(), msgs); err != nil {
		t.Fatal(err)
	}

	stop, w := r.startWriter(r.dsn, Config{MaxAge: 5 * time.Second, MaxBytes: 1 << 20})
	defer stop()
	r.waitFor(time.Minute, "all acked", func() (bool, string) { return r.drained(js) })
	for _, table := range []string{TableEvents, TableLogs} {
		if got := testutil.ToFloat64(w.sink.metrics.batches.WithLabelValues(table, "bytes")); got < 2 {
			t.Errorf("%s: %v batches cut by bytes, want 2 (1 MiB of 2.4 MiB each)", table, got)
		}
	}
	if got := r.count("SELECT count() FROM logs FINAL"); got != n {
		t.Fatalf("%d logs rows, want %d", got, n)
	}
}

// max_age bounds how long a row waits for its insert, and the message its
// ack: past the ack wait it would be redelivered meanwhile, so max_age must
// be well under consumer.ack_wait (a third at most), and the error names
// both keys.
func TestConfigMaxAgeWellUnderAckWait(t *testing.T) {
	for _, cfg := range []Config{
		{MaxAge: time.Minute},
		{MaxAge: 11 * time.Second},
		{MaxAge: 2 * time.Second, Consumer: bus.ConsumerConfig{AckWait: 5 * time.Second}},
	} {
		err := cfg.Validate()
		if err == nil || !strings.HasPrefix(err.Error(), "writer.max_age:") || !strings.Contains(err.Error(), "writer.consumer.ack_wait") {
			t.Errorf("max_age %s, ack_wait %s: Validate() = %v, want an error naming writer.max_age and writer.consumer.ack_wait", cfg.MaxAge, cfg.Consumer.AckWait, err)
		}
	}
	for _, cfg := range []Config{
		{},
		{MaxAge: 10 * time.Second},
		{MaxAge: time.Minute, Consumer: bus.ConsumerConfig{AckWait: 5 * time.Minute}},
		// a short ack_wait the bus takes, max_age left to its default
		{Consumer: bus.ConsumerConfig{AckWait: 2 * time.Second}},
		{Consumer: bus.ConsumerConfig{AckWait: time.Second}},
	} {
		if err := cfg.Validate(); err != nil {
			t.Errorf("max_age %s, ack_wait %s: Validate() = %v", cfg.MaxAge, cfg.Consumer.AckWait, err)
		}
	}
	if got := (Config{Consumer: bus.ConsumerConfig{AckWait: 2 * time.Second}}).WithDefaults().MaxAge; got > 2*time.Second/3 {
		t.Errorf("default max_age under ack_wait 2s: %s, want at most a third of it", got)
	}
}

// writer.max_bytes and writer.max_pending_bytes are checked when the
// configuration loads.
func TestConfigByteLimits(t *testing.T) {
	for _, c := range []struct {
		field string
		cfg   Config
	}{
		{"writer.max_bytes", Config{MaxBytes: -1}},
		{"writer.max_bytes", Config{MaxBytes: 1000}}, // below one envelope
		{"writer.max_bytes", Config{MaxBytes: store.MaxBatchBytes + 1}},
		{"writer.max_pending_bytes", Config{MaxBytes: 8 << 20, MaxPendingBytes: 4 << 20}},
	} {
		if err := c.cfg.Validate(); err == nil || !strings.HasPrefix(err.Error(), c.field+":") {
			t.Errorf("%s: %+v: Validate() = %v", c.field, c.cfg, err)
		}
	}
	if err := (Config{MaxBytes: 16 << 20, MaxPendingBytes: 32 << 20}).Validate(); err != nil {
		t.Fatalf("valid byte limits refused: %v", err)
	}
	if d := DefaultConfig(); d.MaxBytes != store.DefaultMaxBytes || d.MaxPendingBytes != 4*store.DefaultMaxBytes {
		t.Fatalf("defaults: max_bytes %d, max_pending_bytes %d", d.MaxBytes, d.MaxPendingBytes)
	}
}
