package store

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
)

// On a shard of two replicas an insert returns once the replica it
// reached has the rows: the other fetches them afterwards. The writer
// acks the events then, so if that replica is lost with its disk before
// the other fetched, the events are gone from ClickHouse and JetStream
// will not deliver them again. With insert_quorum 2 the insert returns
// only once both replicas have the rows, and fails (the events are naked
// and come again) while the second cannot take them.
func TestInsertQuorumHoldsTheAckUntilASecondReplicaHasTheRows(t *testing.T) {
	if testing.Short() {
		t.Skip("starts ZooKeeper and two ClickHouse servers")
	}
	nodes, ctx := clusterWithDatabase(t, 1, 2)
	first := openNode(t, nodes[0].Addr, clusterDatabase, clusterName)
	if _, err := first.Migrate(ctx, Schema); err != nil {
		t.Fatal(err)
	}
	second := openNode(t, nodes[1].Addr, clusterDatabase, clusterName)
	// The second replica lags: it fetches nothing (a slow or partitioned
	// replica, or one that is about to take over from a first that dies).
	if err := second.Conn.Exec(ctx, "SYSTEM STOP FETCHES events_local"); err != nil {
		t.Fatal(err)
	}
	onSecond := func(id string) uint64 {
		t.Helper()
		return count(t, second, "SELECT count() FROM events_local WHERE id = ?", id)
	}
	insert := func(id string, settings clickhouse.Settings) error {
		t.Helper()
		w := newWriter(t, first.Conn, BatchConfig{Table: "events", Columns: []string{"id", "kind", "time", "service", "body"},
			MaxRows: 1, Settings: settings, InsertTimeout: 20 * time.Second})
		res := newResults()
		if err := w.Add(ctx, []any{id, "log", time.Now().UTC().Truncate(time.Second), "checkout", "{}"}, res.done(id)); err != nil {
			t.Fatal(err)
		}
		res.wait(t, 1)
		return res.get(id)[0]
	}

	const unsafe = "01JQUORUM0000000000000000A"
	if err := insert(unsafe, nil); err != nil {
		t.Fatalf("insert without a quorum: %v", err)
	}
	if n := onSecond(unsafe); n != 0 {
		t.Fatalf("the second replica fetches nothing, yet has %d rows", n)
	}
	t.Logf("without insert_quorum: the insert succeeded (the writer acks) with the row on the first replica only")

	quorum := clickhouse.Settings{"insert_quorum": 2, "insert_quorum_timeout": 2000}
	const safe = "01JQUORUM0000000000000000B"
	err := insert(safe, quorum)
	if err == nil {
		t.Fatal("insert_quorum 2 succeeded while the second replica fetches nothing: the writer would ack rows only one replica has")
	}
	t.Logf("with insert_quorum 2 and the second replica not fetching: %v", err)
	if !strings.Contains(err.Error(), "uorum") && !strings.Contains(err.Error(), "code: 319") {
		t.Errorf("the failure does not say it is the quorum's: %v", err)
	}

	// Once the second replica fetches again, it takes the part whose
	// quorum timed out (the first replica kept it: "unknown status"),
	// which satisfies that quorum; until then ClickHouse 18.16 refuses
	// the next quorum insert into the table (code 286, "Quorum for
	// previous write has not been satisfied yet"), retried like any.
	if err := second.Conn.Exec(ctx, "SYSTEM START FETCHES events_local"); err != nil {
		t.Fatal(err)
	}
	if err := second.Conn.Exec(ctx, "SYSTEM SYNC REPLICA events_local"); err != nil {
		t.Fatal(err)
	}
	const again = "01JQUORUM0000000000000000C"
	if err := insert(again, quorum); err != nil {
		t.Fatalf("insert_quorum 2 with both replicas taking rows: %v", err)
	}
	// Read at once, no SYSTEM SYNC REPLICA: the insert's success is the
	// promise.
	if n := onSecond(again); n != 1 {
		t.Fatalf("insert_quorum 2 returned with %d rows on the second replica, want 1", n)
	}

	// With the second replica down, no quorum insert goes through.
	nodes[1].Stop(t)
	if err := insert("01JQUORUM0000000000000000D", quorum); err == nil {
		t.Fatal("insert_quorum 2 succeeded with the second replica down")
	} else {
		t.Logf("with insert_quorum 2 and the second replica down: %v", err)
	}
}

// A server without replicated tables takes a quorum insert as any:
// writer.insert_quorum set for a cluster does not stop a single server's
// inserts (docs/operations.md says it is ignored there).
func TestInsertQuorumIsIgnoredWithoutReplicas(t *testing.T) {
	s, _ := openTestStore(t)
	ctx := context.Background()
	if _, err := s.Migrate(ctx, Schema); err != nil {
		t.Fatal(err)
	}
	w := newWriter(t, s.Conn, BatchConfig{Table: "events", Columns: []string{"id", "kind", "time", "service", "body"},
		MaxRows: 1, Settings: clickhouse.Settings{"insert_quorum": 2, "insert_quorum_timeout": 2000}})
	const id = "01JQUORUM0000000000000000S"
	res := newResults()
	if err := w.Add(ctx, []any{id, "log", time.Now().UTC().Truncate(time.Second), "checkout", "{}"}, res.done(id)); err != nil {
		t.Fatal(err)
	}
	res.wait(t, 1)
	if err := res.get(id)[0]; err != nil {
		t.Fatalf("insert_quorum 2 on a single server: %v", err)
	}
	if n := count(t, s, "SELECT count() FROM events WHERE id = ?", id); n != 1 {
		t.Fatalf("%d rows after the insert, want 1", n)
	}
}
