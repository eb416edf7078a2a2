package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/aiops-dev/aiops/pkg/errs"
	"github.com/aiops-dev/aiops/pkg/testenv"
	"github.com/rs/zerolog"
)

// createdTables lists the tables the schema files create, read from the
// files, so a new migration needs no edit here.
func createdTables(t *testing.T) []string {
	t.Helper()
	files, err := fs.Glob(Schema, "*.sql")
	if err != nil {
		t.Fatal(err)
	}
	create := regexp.MustCompile(`(?m)^CREATE TABLE IF NOT EXISTS (\w+)`)
	var tables []string
	for _, f := range files {
		text, err := fs.ReadFile(Schema, f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range create.FindAllStringSubmatch(string(text), -1) {
			tables = append(tables, m[1])
		}
	}
	if len(tables) < 10 {
		t.Fatalf("schema creates only %v", tables)
	}
	return tables
}

func TestClusterFormOfTheSchema(t *testing.T) {
	units, err := loadMigrations(Schema)
	if err != nil {
		t.Fatal(err)
	}
	cluster, err := clusterUnits(units, "c1", "aiops")
	if err != nil {
		t.Fatalf("the project schema has no cluster form: %v", err)
	}
	if len(cluster) != len(units) {
		t.Fatalf("%d units in cluster form, %d in single-node form", len(cluster), len(units))
	}
	all := map[string]string{} // statement -> unit
	for i, u := range cluster {
		if u.name != units[i].name || u.checksum != units[i].checksum || !equalVersions(u.minVersion, units[i].minVersion) {
			t.Fatalf("unit %d is %s (%s) in cluster form, %s (%s) on one server: names and checksums must not change", i, u.name, u.checksum, units[i].name, units[i].checksum)
		}
		for _, stmt := range u.statements {
			if !strings.Contains(stmt, " ON CLUSTER `c1`") {
				t.Errorf("%s: a statement not ON CLUSTER: %s", u.name, stmt)
			}
			all[stmt] = u.name
		}
	}
	for _, table := range createdTables(t) {
		var local, dist string
		for stmt := range all {
			switch {
			case strings.HasPrefix(stmt, "CREATE TABLE IF NOT EXISTS `aiops`.`"+table+"_local` ON CLUSTER `c1` ("):
				local = stmt
			case strings.HasPrefix(stmt, "CREATE TABLE IF NOT EXISTS `aiops`.`"+table+"` ON CLUSTER `c1` AS `aiops`.`"+table+"_local` ENGINE = Distributed(`c1`, `aiops`, `"+table+"_local`, cityHash64("):
				dist = stmt
			}
		}
		if !strings.Contains(local, "ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/aiops/"+table+"_local', '{replica}'") {
			t.Errorf("%s: no replicated local table: %q", table, local)
		}
		if dist == "" {
			t.Errorf("%s: no Distributed table", table)
		}
	}
	// The engine's own arguments and the rest of the definition are kept;
	// the sharding key is the sorting key, hashed.
	for _, want := range []string{
		"ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/aiops/events_local', '{replica}', inserted_at) PARTITION BY toYYYYMMDD(time)\nORDER BY (kind, service, time, id)",
		"ENGINE = Distributed(`c1`, `aiops`, `events_local`, cityHash64(kind, service, time, id))",
		"ENGINE = Distributed(`c1`, `aiops`, `incidents_local`, cityHash64(incident_id))",
		"ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/aiops/incidents_local', '{replica}', version)",
	} {
		found := false
		for stmt := range all {
			found = found || strings.Contains(stmt, want)
		}
		if !found {
			t.Errorf("no statement contains %q", want)
		}
	}
	// A column change goes to the local table; the Distributed table is made
	// again from it at the end of the unit, once per table.
	links := cluster[slices.IndexFunc(cluster, func(u migrationUnit) bool { return u.name == "0002_events_links_extra.sql" })]
	want := []string{
		"ALTER TABLE `aiops`.`events_local` ON CLUSTER `c1` ADD COLUMN links Array(String) AFTER resource.value",
		"ALTER TABLE `aiops`.`events_local` ON CLUSTER `c1` ADD COLUMN extra String AFTER body",
		"DROP TABLE IF EXISTS `aiops`.`events` ON CLUSTER `c1`",
		"CREATE TABLE IF NOT EXISTS `aiops`.`events` ON CLUSTER `c1` AS `aiops`.`events_local` ENGINE = Distributed(`c1`, `aiops`, `events_local`, cityHash64(kind, service, time, id))",
	}
	if !slices.Equal(links.statements, want) {
		t.Errorf("0002 in cluster form:\n%s\nwant\n%s", strings.Join(links.statements, "\n"), strings.Join(want, "\n"))
	}
}

func equalVersions(a, b *Version) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }

func TestClusterFormOfOtherStatements(t *testing.T) {
	base := "CREATE TABLE t (id String, at DateTime) ENGINE = MergeTree() PARTITION BY toYYYYMM(at) ORDER BY id SETTINGS index_granularity = 1024;\n"
	units, err := parseMigration("0001_t.sql", base+
		"ALTER TABLE t DROP PARTITION 202601;\n"+
		"ALTER TABLE t MODIFY TTL at + INTERVAL 1 DAY, ADD COLUMN `n` UInt8;\n"+
		"DROP TABLE IF EXISTS t;\n")
	if err != nil {
		t.Fatal(err)
	}
	got, err := clusterUnits(units, "c", "db")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"CREATE TABLE `db`.`t_local` ON CLUSTER `c` (id String, at DateTime) ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/db/t_local', '{replica}') PARTITION BY toYYYYMM(at) ORDER BY id SETTINGS index_granularity = 1024",
		"CREATE TABLE IF NOT EXISTS `db`.`t` ON CLUSTER `c` AS `db`.`t_local` ENGINE = Distributed(`c`, `db`, `t_local`, cityHash64(id))",
		// Not a column change: the local table only.
		"ALTER TABLE `db`.`t_local` ON CLUSTER `c` DROP PARTITION 202601",
		"ALTER TABLE `db`.`t_local` ON CLUSTER `c` MODIFY TTL at + INTERVAL 1 DAY, ADD COLUMN `n` UInt8",
		"DROP TABLE IF EXISTS `db`.`t` ON CLUSTER `c`",
		"DROP TABLE IF EXISTS `db`.`t_local` ON CLUSTER `c`",
		// t was dropped in the unit, so its Distributed table is not made again.
	}
	if !slices.Equal(got[0].statements, want) {
		t.Errorf("cluster form:\n%s\nwant\n%s", strings.Join(got[0].statements, "\n"), strings.Join(want, "\n"))
	}

	for name, tc := range map[string]struct{ sql, why string }{
		"materialized view": {"CREATE MATERIALIZED VIEW v TO t AS SELECT id FROM t", "MATERIALIZED VIEW"},
		"view":              {"CREATE VIEW v AS SELECT id FROM t", "no cluster form"},
		"insert":            {"INSERT INTO t SELECT * FROM t", "no cluster form"},
		"rename":            {"RENAME TABLE t TO u", "no cluster form"},
		"memory engine":     {"CREATE TABLE m (x UInt8) ENGINE = Memory", "engine Memory"},
		"replicated engine": {"CREATE TABLE r (x UInt8) ENGINE = ReplicatedMergeTree('/p', 'r') ORDER BY x", "engine ReplicatedMergeTree"},
		"no sorting key":    {"CREATE TABLE n (x UInt8) ENGINE = MergeTree ORDER BY tuple()", "ORDER BY has no columns"},
		"old syntax":        {"CREATE TABLE o (d Date, x UInt8) ENGINE = MergeTree(d, (x), 8192)", "no ORDER BY"},
		"with database":     {"ALTER TABLE db.t ADD COLUMN y UInt8", "without its database"},
		"on cluster":        {"ALTER TABLE t ON CLUSTER c ADD COLUMN y UInt8", "ON CLUSTER is added"},
		"unknown table":     {"ALTER TABLE nosuch ADD COLUMN y UInt8", "no earlier migration creates it"},
		"local name":        {"CREATE TABLE x_local (x UInt8) ENGINE = MergeTree ORDER BY x", "local tables"},
		"create as":         {"CREATE TABLE u AS t", "column list"},
	} {
		units, err := parseMigration("0002_bad.sql", base+"ALTER TABLE t ADD COLUMN z UInt8;\n"+tc.sql+";\n")
		if err != nil {
			t.Fatal(err)
		}
		_, err = clusterUnits(units, "c", "db")
		if !errors.Is(err, ErrBadMigration) || !strings.Contains(err.Error(), "0002_bad.sql statement 3") || !strings.Contains(err.Error(), tc.why) {
			t.Errorf("%s: err = %v, want ErrBadMigration naming 0002_bad.sql statement 3 and %q", name, err, tc.why)
		}
	}
}

// A database holding the single-node schema is refused in cluster form
// rather than found applied and left unreplicated.
func TestMigrateClusterRefusesSingleNodeDatabase(t *testing.T) {
	s, _ := openTestStore(t)
	ctx := context.Background()
	if err := s.Conn.Exec(ctx, createMigrationsTable); err != nil {
		t.Fatal(err)
	}
	s.cluster = "aiops"
	_, err := s.Migrate(ctx, Schema)
	if err == nil || !strings.Contains(err.Error(), "holds the single-node schema") {
		t.Fatalf("cluster Migrate over a single-node database: err = %v", err)
	}
}

// openNode opens a Store on one server of a test cluster.
func openNode(t *testing.T, addr, database, cluster string) *Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := Open(ctx, Config{DSN: "clickhouse://" + addr + "/" + database, Cluster: cluster}, zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel))
	if err != nil {
		t.Fatalf("Open %s: %v", addr, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestMigrateOnCluster applies the project's schema in cluster form on two
// ClickHouse servers coordinating through ZooKeeper, as one shard of two
// replicas (replication) and as two shards of one replica (sharding), writes
// through the batch writer on the first server and reads through the
// Distributed tables on the second.
func TestMigrateOnCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts ZooKeeper and two ClickHouse servers")
	}
	for _, shape := range []struct{ shards, replicas int }{{1, 2}, {2, 1}} {
		t.Run(fmt.Sprintf("%d shard(s) of %d replica(s)", shape.shards, shape.replicas), func(t *testing.T) {
			testMigrateOnCluster(t, shape.shards, shape.replicas)
		})
	}
}

func testMigrateOnCluster(t *testing.T, shards, replicas int) {
	const cluster, database = "aiops_test", "aiops"
	nodes := testenv.ClickHouseCluster(t, cluster, shards, replicas)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// The writer's DSN names a database that exists on the server it
	// connects to; Migrate creates it on the others.
	admin := openNode(t, nodes[0].Addr, "default", "")
	if err := admin.Conn.Exec(ctx, "CREATE DATABASE "+database); err != nil {
		t.Fatal(err)
	}
	first := openNode(t, nodes[0].Addr, database, cluster)
	start := time.Now()
	applied, err := first.Migrate(ctx, Schema)
	if err != nil {
		t.Fatalf("Migrate on cluster: %v", err)
	}
	t.Logf("cluster Migrate applied %d units in %s", len(applied), time.Since(start).Round(time.Millisecond))
	units, err := loadMigrations(Schema)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, u := range units {
		if u.minVersion == nil || first.ServerVersion().AtLeast(u.minVersion.Major, u.minVersion.Minor) {
			want = append(want, u.name)
		}
	}
	if !slices.Equal(applied, want) {
		t.Fatalf("Migrate applied %v, want %v", applied, want)
	}
	stores := []*Store{first}
	for _, n := range nodes[1:] {
		stores = append(stores, openNode(t, n.Addr, database, cluster))
	}
	last := stores[len(stores)-1]

	// SYSTEM SYNC REPLICA waits until a replica has fetched what the others
	// wrote, so what follows reads settled data instead of polling.
	syncReplicas := func(table string) {
		t.Helper()
		for i, s := range stores {
			if err := s.Conn.Exec(ctx, "SYSTEM SYNC REPLICA "+quoteIdents(database, table)); err != nil {
				t.Fatalf("node %d: sync replica %s: %v", i+1, table, err)
			}
		}
	}
	for _, table := range createdTables(t) {
		for name, engine := range map[string]string{table: "Distributed", table + localSuffix: "ReplicatedReplacingMergeTree"} {
			var got string
			_ = last.Conn.QueryRow(ctx, "SELECT engine FROM system.tables WHERE database = ? AND name = ?", database, name).Scan(&got)
			if got != engine {
				t.Errorf("last node: %s.%s has engine %q, want %s", database, name, got, engine)
			}
		}
	}
	// Columns added by later migrations reach the Distributed tables too.
	if n := count(t, last, "SELECT count() FROM system.columns WHERE database = ? AND table = 'events' AND name IN ('links', 'extra')", database); n != 2 {
		t.Errorf("last node: the Distributed events table has %d of the columns links and extra", n)
	}

	// The writer's batch path on the first node; the second batch is a
	// redelivery of the first three events.
	now := time.Now().UTC().Truncate(time.Second)
	old := now.Add(-10 * 24 * time.Hour)
	columns := []string{"id", "kind", "time", "service", "body"}
	var rows [][]any
	for i := 1; i <= 40; i++ {
		at := now.Add(-time.Duration(i) * time.Minute)
		if i > 30 {
			at = old
		}
		rows = append(rows, []any{fmt.Sprintf("01JCLUSTER%016d", i), "log", at, fmt.Sprintf("svc-%d", i%4), "{}"})
	}
	w := newWriter(t, first.Conn, BatchConfig{Table: "events", Columns: columns, MaxRows: 100, MaxAge: time.Hour})
	res := newResults()
	for _, batch := range [][][]any{rows, rows[:3]} {
		for _, row := range batch {
			if err := w.Add(ctx, row, res.done(row[0].(string))); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	res.wait(t, len(rows)+3)
	for _, row := range rows {
		for _, err := range res.get(row[0].(string)) {
			if err != nil {
				t.Fatalf("insert of %s: %v", row[0], err)
			}
		}
	}

	syncReplicas("events" + localSuffix)
	if n := count(t, last, "SELECT count() FROM events FINAL"); n != uint64(len(rows)) {
		t.Fatalf("the last node reads %d events through the Distributed table under FINAL, want %d", n, len(rows))
	}
	// The cookbook's subqueries over a Distributed table (an incident's
	// linked events, the anomalies around a change) are GLOBAL IN: a plain
	// IN there is refused on several shards (distributed_product_mode).
	svc1 := uint64(0)
	for _, row := range rows {
		if row[3] == "svc-1" {
			svc1++
		}
	}
	if n := count(t, last, "SELECT count() FROM events FINAL WHERE id GLOBAL IN (SELECT id FROM events WHERE service = 'svc-1')"); n != svc1 {
		t.Errorf("GLOBAL IN over the Distributed table: %d events, want %d", n, svc1)
	}
	// Each shard's replicas hold the same rows; the shards split them.
	perShard := map[int]uint64{}
	for i, s := range stores {
		n := count(t, s, "SELECT count() FROM events_local FINAL")
		if prev, ok := perShard[nodes[i].Shard]; ok && prev != n {
			t.Errorf("shard %d: replicas hold %d and %d events", nodes[i].Shard, prev, n)
		}
		perShard[nodes[i].Shard] = n
	}
	var total uint64
	for shard, n := range perShard {
		if shards > 1 && n == 0 {
			t.Errorf("shard %d holds no events: the sharding key sent all %d to the others", shard, len(rows))
		}
		total += n
	}
	if total != uint64(len(rows)) {
		t.Errorf("shards hold %v events under FINAL, %d in all, want %d", perShard, total, len(rows))
	}
	t.Logf("events per shard under FINAL %v; rows on the first node without FINAL: %d", perShard, count(t, first, "SELECT count() FROM events_local"))

	// A backup of the old day as docs/operations.md describes it for 18.16:
	// FREEZE on one replica of each shard hard-links its parts under
	// shadow/.
	oldDay := old.Format("20060102")
	for i, s := range stores {
		if nodes[i].Replica == 1 {
			if err := s.Conn.Exec(ctx, "ALTER TABLE events_local FREEZE PARTITION ID ?", oldDay); err != nil {
				t.Fatalf("node %d: freeze: %v", i+1, err)
			}
		}
	}

	// Retention through the Distributed table drops the old day on every
	// node.
	dropped, err := DropPartitionsOlderThan(ctx, first.Conn, "events", 3, now)
	if err != nil {
		t.Fatalf("retention on cluster: %v", err)
	}
	if want := []string{old.Format("20060102")}; !slices.Equal(dropped, want) {
		t.Fatalf("retention dropped %v, want %v", dropped, want)
	}
	syncReplicas("events" + localSuffix)
	for i, s := range stores {
		if n := count(t, s, "SELECT count() FROM system.parts WHERE database = ? AND table = 'events_local' AND active AND partition_id = ?", database, dropped[0]); n != 0 {
			t.Errorf("node %d still has %d parts of partition %s", i+1, n, dropped[0])
		}
	}
	if n := count(t, last, "SELECT count() FROM events FINAL"); n != 30 {
		t.Errorf("%d events after retention, want 30", n)
	}

	// Restore: the frozen parts copied into detached/ of the same replica
	// and attached; replication brings them to the other replicas.
	for i, s := range stores {
		if nodes[i].Replica != 1 {
			continue
		}
		parts, err := filepath.Glob(filepath.Join(nodes[i].Dir, "data", "shadow", "*", "data", database, "events_local", "*"))
		if err != nil {
			t.Fatal(err)
		}
		for _, part := range parts {
			if err := os.CopyFS(filepath.Join(nodes[i].Dir, "data", "data", database, "events_local", "detached", filepath.Base(part)), os.DirFS(part)); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Conn.Exec(ctx, "ALTER TABLE events_local ATTACH PARTITION ID ?", oldDay); err != nil {
			t.Fatalf("node %d: attach the frozen partition: %v", i+1, err)
		}
	}
	syncReplicas("events" + localSuffix)
	for i, s := range stores {
		if n := count(t, s, "SELECT count() FROM events FINAL"); n != uint64(len(rows)) {
			t.Errorf("node %d reads %d events after the restore, want %d", i+1, n, len(rows))
		}
	}

	// incidents is partitioned by the month an incident opened: a month
	// whose newest opening is old still stays while any shard holds a state
	// of it within retention (an incident opened then and updated lately).
	at := func(month time.Month, day int) time.Time { return time.Date(2026, month, day, 9, 0, 0, 0, time.UTC) }
	iw := newWriter(t, first.Conn, BatchConfig{Table: "incidents", Columns: []string{"incident_id", "version", "id", "time", "status", "opened_at", "resolved_at"}, MaxRows: 100, MaxAge: time.Hour})
	ires := newResults()
	var states [][]any
	for i := 0; i < 8; i++ {
		// March: opened and resolved long ago. April: the same, plus one
		// incident still updated in June. (One still open would keep its
		// month: TestDropPartitionsKeepsIncidentsStillOpen.)
		month := time.March + time.Month(i%2)
		opened, resolved := at(month, 1+i), at(month, 2+i)
		states = append(states, []any{fmt.Sprintf("inc-%d", i), uint64(opened.UnixNano()), fmt.Sprintf("st-%d", i), opened, "opened", opened, time.Unix(0, 0)},
			[]any{fmt.Sprintf("inc-%d", i), uint64(resolved.UnixNano()), fmt.Sprintf("st-%d-resolved", i), resolved, "resolved", opened, resolved})
	}
	states = append(states, []any{"inc-1", uint64(at(6, 15).UnixNano()), "st-late", at(6, 15), "updated", at(4, 2), time.Unix(0, 0)})
	for _, row := range states {
		if err := iw.Add(ctx, row, ires.done(row[2].(string))); err != nil {
			t.Fatal(err)
		}
	}
	if err := iw.Flush(ctx); err != nil {
		t.Fatalf("insert incidents: %v", err)
	}
	syncReplicas("incidents" + localSuffix)
	dropped, err = DropPartitionsOlderThan(ctx, first.Conn, "incidents", 30, at(6, 20))
	if err != nil || !slices.Equal(dropped, []string{"202603"}) {
		t.Fatalf("incidents retention on cluster dropped %v, %v; want [202603] (April holds a state of June 15)", dropped, err)
	}
	syncReplicas("incidents" + localSuffix)
	if n := count(t, last, "SELECT count() FROM incidents FINAL"); n != 4 {
		t.Errorf("%d incidents after retention, want April's 4", n)
	}

	// A node opened without store.cluster (a writer whose config lost it)
	// is refused rather than finding the cluster form applied and writing
	// to it as one server.
	single := openNode(t, nodes[len(nodes)-1].Addr, database, "")
	if _, err := single.Migrate(ctx, Schema); err == nil || !strings.Contains(err.Error(), "holds the cluster form") || !errs.IsPermanent(err) {
		t.Fatalf("single-node Migrate over the cluster form: err = %v, want a permanent error naming the cluster form", err)
	}

	// Applying again, on any node, finds everything recorded.
	syncReplicas(MigrationsTable)
	for i, s := range stores {
		again, err := s.Migrate(ctx, Schema)
		if err != nil || len(again) != 0 {
			t.Fatalf("Migrate again on node %d applied %v, %v; want nothing (the bookkeeping is replicated to every node)", i+1, again, err)
		}
		if recorded, err := s.AppliedMigrations(ctx); err != nil || !slices.Equal(recorded, sortedCopy(want)) {
			t.Fatalf("node %d recorded %v, %v; want %v", i+1, recorded, err, want)
		}
	}
}

func sortedCopy(s []string) []string {
	c := slices.Clone(s)
	slices.Sort(c)
	return c
}

// TestMigrateOnClusterWithAServerDown restarts a writer while one replica is
// down and nothing is left to apply: it starts, since nothing needs every
// server. Each ON CLUSTER statement waits for every server
// (distributed_ddl_task_timeout, 180 s) and then fails, and the writer used
// to run two at every start (the database and the bookkeeping table), so a
// replica down stopped every writer start (here: the context's deadline).
func TestMigrateOnClusterWithAServerDown(t *testing.T) {
	if testing.Short() {
		t.Skip("starts ZooKeeper and two ClickHouse servers")
	}
	nodes, ctx := clusterWithDatabase(t, 1, 2)
	first := openNode(t, nodes[0].Addr, clusterDatabase, clusterName)
	// A start with something to apply waits for every server, silently
	// for 180 s when one is down: the log says so before it waits.
	var logs bytes.Buffer
	first.log = zerolog.New(&logs)
	const waits = "waits for every server of the cluster"
	if _, err := first.Migrate(ctx, Schema); err != nil {
		t.Fatalf("Migrate with every server up: %v", err)
	}
	if !strings.Contains(logs.String(), waits) {
		t.Errorf("Migrate with migrations to apply logged no line saying it %s:\n%s", waits, logs.String())
	}

	nodes[1].Stop(t)
	logs.Reset()
	again, err := first.Migrate(ctx, Schema)
	if err != nil || len(again) != 0 {
		t.Fatalf("Migrate with the second replica down and nothing to apply: applied %v, %v; want nothing and no error", again, err)
	}
	if strings.Contains(logs.String(), waits) {
		t.Errorf("Migrate with nothing to apply said it %s", waits)
	}
}

// unansweredDropConn runs ALTER ... DROP PARTITION and then answers as the
// server does when another server of the cluster did not run it within
// distributed_ddl_task_timeout (seen with a replica down): code 159.
type unansweredDropConn struct{ driver.Conn }

func (c unansweredDropConn) Exec(ctx context.Context, query string, args ...any) error {
	if err := c.Conn.Exec(ctx, query, args...); err != nil || !strings.Contains(query, "DROP PARTITION") {
		return err
	}
	return &clickhouse.Exception{Code: 159, Name: "DB::Exception", Message: "Watching task /clickhouse/task_queue/ddl/query-0000000117 is executing longer than distributed_ddl_task_timeout (=180) seconds. " +
		"There are 1 unfinished hosts (0 of them are currently active), they are going to execute the query in background"}
}

// A retention pass with a server of the cluster down: the servers that
// answered dropped the partition and the others run the DROP from
// ZooKeeper's queue on their return, so the pass reports it dropped and
// says so, instead of a bare "retention pass failed" over a partition
// that is gone.
func TestRetentionOnClusterWithAServerNotAnswering(t *testing.T) {
	if testing.Short() {
		t.Skip("starts ZooKeeper and a ClickHouse server")
	}
	nodes, ctx := clusterWithDatabase(t, 1, 1)
	s := openNode(t, nodes[0].Addr, clusterDatabase, clusterName)
	if _, err := s.Migrate(ctx, Schema); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	old := now.Add(-10 * 24 * time.Hour)
	if err := s.Conn.Exec(ctx, fmt.Sprintf("INSERT INTO events (id, kind, time, service, body) SELECT '01JOLD', 'log', toDateTime(%d), 'svc', '{}'", old.Unix())); err != nil {
		t.Fatal(err)
	}

	dropped, err := DropPartitionsOlderThan(ctx, unansweredDropConn{s.Conn}, "events", 3, now)
	if want := []string{old.Format("20060102")}; !slices.Equal(dropped, want) {
		t.Errorf("dropped %v, want %v: the server that answered dropped it", dropped, want)
	}
	if err == nil || !strings.Contains(err.Error(), "when they return") || !strings.Contains(err.Error(), "code: 159") {
		t.Errorf("err = %v; want the server's code 159 and that the others drop it when they return", err)
	}
	if n := count(t, s, "SELECT count() FROM events"); n != 0 {
		t.Errorf("%d events left after the drop", n)
	}
}

// clusterName and clusterDatabase are the cluster and the DSN's database
// of clusterWithDatabase.
const clusterName, clusterDatabase = "aiops_test", "aiops"

// clusterWithDatabase starts a cluster of shards x replicas and makes the
// DSN's database on its first server, as an operator does before a
// writer's first start; ctx ends with the test, at the latest in a minute.
func clusterWithDatabase(t *testing.T, shards, replicas int) ([]testenv.ClickHouseNode, context.Context) {
	t.Helper()
	nodes := testenv.ClickHouseCluster(t, clusterName, shards, replicas)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	admin := openNode(t, nodes[0].Addr, "default", "")
	if err := admin.Conn.Exec(ctx, "CREATE DATABASE "+clusterDatabase); err != nil {
		t.Fatal(err)
	}
	return nodes, ctx
}
