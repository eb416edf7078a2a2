package store

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/aiops-dev/aiops/pkg/errs"
)

// failingConn answers every PrepareBatch with err, as a server refusing
// the insert.
type failingConn struct {
	driver.Conn
	err error
}

func (c *failingConn) PrepareBatch(context.Context, string, ...driver.PrepareBatchOption) (driver.Batch, error) {
	return nil, c.err
}

// What a server answers an insert while DDL runs on the table (a
// migration on another writer, retention's DROP PARTITION, a replica
// catching up) is no fault of the rows: it must be retried (the message
// naked), never dead-lettered. Only errors that blame the data, and only
// once a row alone gets one, are permanent.
func TestServerErrorsOfConcurrentDDLAreRetried(t *testing.T) {
	for _, c := range []struct {
		code      int32
		name, msg string
		permanent bool
	}{
		{473, "DEADLOCK_AVOIDED", "Locking attempt timed out! Possible deadlock avoided.", false},
		{218, "TABLE_IS_DROPPED", "Table is dropped", false},
		{517, "CANNOT_ASSIGN_ALTER", "Metadata on replica is not up to date with common metadata in Zookeeper", false},
		{60, "UNKNOWN_TABLE", "Table default.events doesn't exist", false},
		{16, "NO_SUCH_COLUMN_IN_TABLE", "No such column merged_into in table incidents", false},
		{10, "NOT_FOUND_COLUMN_IN_BLOCK", "Not found column version in block", false},
		{242, "TABLE_IS_READ_ONLY", "Table is in readonly mode", false},
		{252, "TOO_MANY_PARTS", "Too many parts (300). Merges are processing significantly slower than inserts", false},
		{236, "ABORTED", "Cancelled merging parts", false},
		{159, "TIMEOUT_EXCEEDED", "Timeout exceeded", false},
		{999, "KEEPER_EXCEPTION", "Session expired", false},
		{319, "UNKNOWN_STATUS_OF_INSERT", "Unknown status of insert", false},
		{53, "TYPE_MISMATCH", "Type mismatch", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			conn := &failingConn{err: &clickhouse.Exception{Code: c.code, Name: "DB::Exception", Message: c.msg}}
			w := newWriter(t, conn, BatchConfig{Table: "kv", Columns: kvColumns, MaxAge: time.Hour})
			r := newResults()
			for _, id := range []string{"a", "b"} {
				if err := w.Add(context.Background(), kvRow(id), r.done(id)); err != nil {
					t.Fatal(err)
				}
			}
			_ = w.Flush(context.Background())
			for _, id := range []string{"a", "b"} {
				got := r.get(id)
				if len(got) != 1 || got[0] == nil || errs.IsPermanent(got[0]) != c.permanent {
					t.Fatalf("row %s: %v; want one error, permanent %v", id, got, c.permanent)
				}
			}
		})
	}
}

// The DDL the schema and retention run on a live table (ADD COLUMN of a
// migration, a column's type changed, DROP PARTITION, a mutation, a
// merge) while the batch writer inserts into it, on the real server: no
// row fails for good.
func TestBatchWriterInsertsThroughConcurrentDDL(t *testing.T) {
	s, _ := openTestStore(t)
	ctx := context.Background()
	if err := s.Conn.Exec(ctx, "CREATE TABLE ddl (id String, time DateTime, n UInt16, labels Nested(key String, value String)) ENGINE = ReplacingMergeTree PARTITION BY toYYYYMMDD(time) ORDER BY (time, id)"); err != nil {
		t.Fatal(err)
	}
	w := newWriter(t, s.Conn, BatchConfig{Table: "ddl", Columns: []string{"id", "time", "n", "labels.key", "labels.value"}, MaxRows: 50, MaxAge: 5 * time.Millisecond, Senders: 4})
	day := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

	var (
		mu     sync.Mutex
		failed []error
		added  int
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := range 2 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				row := []any{fmt.Sprint(g, "-", i), day.Add(time.Duration(i%2) * 24 * time.Hour), uint16(i), []string{"k"}, []string{"v"}}
				err := w.Add(ctx, row, func(err error) {
					if err != nil {
						mu.Lock()
						failed = append(failed, err)
						mu.Unlock()
					}
				})
				if err == nil {
					mu.Lock()
					added++
					mu.Unlock()
				}
			}
		})
	}
	for range 2 {
		for _, q := range []string{
			"ALTER TABLE ddl ADD COLUMN extra String",
			"ALTER TABLE ddl MODIFY COLUMN n UInt32",
			"ALTER TABLE ddl DROP PARTITION ID '20260301'",
			"ALTER TABLE ddl DELETE WHERE n = 7",
			"OPTIMIZE TABLE ddl FINAL",
			"ALTER TABLE ddl MODIFY COLUMN n UInt16",
			"ALTER TABLE ddl DROP COLUMN extra",
		} {
			if err := s.Conn.Exec(ctx, q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
	}
	close(stop)
	wg.Wait()
	if err := w.Flush(ctx); err != nil {
		t.Logf("flush: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	var permanent []error
	for _, err := range failed {
		if errs.IsPermanent(err) {
			permanent = append(permanent, err)
		}
	}
	t.Logf("%d rows added, %d failed", added, len(failed))
	if len(permanent) > 0 {
		t.Fatalf("%d of %d rows failed for good during DDL (dead-lettered), first: %v", len(permanent), added, permanent[0])
	}
}

// A cluster's server that lost its ZooKeeper (or ClickHouse Keeper)
// session answers inserts with "Table is in readonly mode" or "Session
// expired", neither of which names ZooKeeper: the error the writer logs
// says where to look.
func TestKeeperErrorsNameZooKeeper(t *testing.T) {
	for _, c := range []struct {
		code int32
		msg  string
	}{
		{242, "Table is in readonly mode"},
		{999, "Session expired"},
	} {
		conn := &failingConn{err: &clickhouse.Exception{Code: c.code, Name: "DB::Exception", Message: c.msg}}
		w := newWriter(t, conn, BatchConfig{Table: "kv", Columns: kvColumns, MaxAge: time.Hour})
		r := newResults()
		if err := w.Add(context.Background(), kvRow("a"), r.done("a")); err != nil {
			t.Fatal(err)
		}
		_ = w.Flush(context.Background())
		got := r.get("a")
		if len(got) != 1 || got[0] == nil || !strings.Contains(got[0].Error(), "ZooKeeper") || !strings.Contains(got[0].Error(), c.msg) {
			t.Errorf("code %d: %v; want one error with the server's message and naming ZooKeeper", c.code, got)
		}
	}
}
