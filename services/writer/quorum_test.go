package writer

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/bus"
	"github.com/aiops-dev/aiops/pkg/store"
	"github.com/aiops-dev/aiops/pkg/testenv"
)

// On a shard of two replicas the writer acked an event once the replica
// its insert reached had the rows, before the other fetched them: lost
// with that replica's disk, the event is gone, JetStream delivering it no
// more. With writer.insert_quorum 2 it is not acked while the second
// replica cannot take its rows, and once acked both replicas have them.
func TestInsertQuorumAcksOnlyWhatTwoReplicasHold(t *testing.T) {
	if testing.Short() {
		t.Skip("starts ZooKeeper, two ClickHouse servers and JetStream")
	}
	const cluster, database = "aiops_quorum", "aiops"
	nodes := testenv.ClickHouseCluster(t, cluster, 1, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	waitFor := (&rig{t: t}).waitFor
	open := func(addr, db, cluster string) *store.Store {
		t.Helper()
		st, err := store.Open(ctx, store.Config{DSN: "clickhouse://" + addr + "/" + db, Cluster: cluster}, log)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	if err := open(nodes[0].Addr, "default", "").Conn.Exec(ctx, "CREATE DATABASE "+database); err != nil {
		t.Fatal(err)
	}
	first := open(nodes[0].Addr, database, cluster)
	if _, err := first.Migrate(ctx, store.Schema); err != nil {
		t.Fatal(err)
	}
	second := open(nodes[1].Addr, database, cluster)
	// The second replica lags: it fetches nothing, as a slow or cut-off
	// replica, or one about to be all that is left of the shard.
	for _, table := range []string{"events_local", "logs_local"} {
		if err := second.Conn.Exec(ctx, "SYSTEM STOP FETCHES "+table); err != nil {
			t.Fatal(err)
		}
	}

	nats := testenv.StartNATS(t)
	nc, js, err := bus.Connect(ctx, bus.Config{URLs: []string{nats.URL()}}, log)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if err := bus.EnsureTopology(ctx, js, bus.DefaultStreams()); err != nil {
		t.Fatal(err)
	}
	w, err := New(ctx, js, first.Conn, Config{InsertQuorum: 2, MaxAge: 50 * time.Millisecond,
		Consumer: bus.ConsumerConfig{Backoff: []time.Duration{time.Second}}}, log)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(runCtx) }()
	defer func() { stop(); <-done }()

	e, raw := envelope(t, 1, time.Now().UTC())
	if _, err := js.Publish(ctx, e.Subject(), raw); err != nil {
		t.Fatal(err)
	}
	onSecond := func() uint64 {
		var n uint64
		if err := second.Conn.QueryRow(ctx, "SELECT count() FROM events_local WHERE id = ?", e.ID).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	failed := func() float64 { return testutil.ToFloat64(w.sink.metrics.failed.WithLabelValues(TableEvents)) }
	waitFor(time.Minute, "the event acked or its insert failed", func() (bool, string) {
		return w.Stats().Acked > 0 || failed() > 0, fmt.Sprintf("%+v", w.Stats())
	})
	if acked := w.Stats().Acked; acked > 0 {
		t.Fatalf("the event was acked (%d) while the second replica holds %d of its rows: lost with the first replica's disk", acked, onSecond())
	}

	for _, table := range []string{"events_local", "logs_local"} {
		if err := second.Conn.Exec(ctx, "SYSTEM START FETCHES "+table); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(2*time.Minute, "the event acked once the second replica fetches", func() (bool, string) {
		return w.Stats().Acked > 0, fmt.Sprintf("%+v", w.Stats())
	})
	// At once, no SYSTEM SYNC REPLICA: the ack is the promise.
	if n := onSecond(); n == 0 {
		t.Fatal("acked with none of the event's rows on the second replica")
	}
}
