package writer

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/aiops-dev/aiops/pkg/event"
)

// hungTableConn holds every insert into one table until release is closed
// (a table ClickHouse delays, e.g. parts_to_delay_insert), the others pass.
type hungTableConn struct {
	driver.Conn
	table   string
	release chan struct{}
}

func (c *hungTableConn) PrepareBatch(ctx context.Context, q string, opts ...driver.PrepareBatchOption) (driver.Batch, error) {
	if strings.HasPrefix(q, "INSERT INTO `"+c.table+"`") {
		select {
		case <-c.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return c.Conn.PrepareBatch(ctx, q, opts...)
}

// A typed row points into its envelope, keeping it whole, while its
// table counts only the row's columns: with one table's inserts held (as
// ClickHouse delays a table under merge pressure, parts_to_delay_insert)
// the sink still takes no more envelopes than twice max_pending_bytes.
func TestEnvelopesHeldByTypedRowsAreBounded(t *testing.T) {
	r := newRig(t)
	release := make(chan struct{})
	conn := &hungTableConn{Conn: r.store.Conn, table: TableMetricSamples, release: release}
	const bound = 1 << 20
	sink, err := NewSink(conn, SinkConfig{MaxRows: 5000, MaxBytes: bound, MaxAge: 50 * time.Millisecond,
		MaxPendingRows: 20000, MaxPendingBytes: bound}, r.log)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		close(release)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		sink.Close(ctx)
	}()

	blob := strings.Repeat("x", 900_000)
	now := time.Now().UTC().Truncate(time.Second)
	const n = 20 // within the held insert's timeout (30 s): its rows would fail and free their envelopes
	mk := func(i int) *event.Envelope {
		e, err := event.New(event.KindMetric, "checkout", now, map[string]any{"name": "cpu", "value": float64(i)})
		if err != nil {
			panic(err)
		}
		raw, err := e.MarshalJSON()
		if err != nil {
			panic(err)
		}
		// an unknown top-level field, kept in Extra as the design asks
		raw = append(raw[:len(raw)-1], []byte(fmt.Sprintf(`,"blob":%q}`, blob))...)
		p, err := event.Parse(raw)
		if err != nil {
			panic(err)
		}
		return p
	}
	taken := 0
	for i := range n {
		// a Write the bound holds up is given up: not taken
		e := mk(i) // before the deadline starts: parsing 900 KB takes a while under -race
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		refused := false
		sink.Write(ctx, e, func(err error) {
			if errors.Is(err, ErrNotTaken) && ctx.Err() != nil {
				refused = true
			}
		})
		cancel()
		if !refused {
			taken++
		}
	}
	if most := 2*bound/900_000 + 1; taken > most {
		t.Fatalf("the sink took %d envelopes of ~900 KB with one table's inserts held and max_pending_bytes %d: want at most %d", taken, bound, most)
	}
	if taken == 0 {
		t.Fatal("the sink took no envelope at all")
	}
}
