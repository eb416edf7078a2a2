//go:build linux || darwin

package store

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/aiops-dev/aiops/pkg/testenv"
)

func TestSchemaOnCurrentClickHouse(t *testing.T) {
	c := testenv.CurrentClickHouse(t)
	t.Logf("chdb ClickHouse %s", c.MustQuery(t, "SELECT version()"))
	db := fmt.Sprintf("aiops_schema_%d", os.Getpid())
	c.MustQuery(t, "CREATE DATABASE "+db)
	c.MustQuery(t, "USE "+db)
	// chdb sessions may not keep USE between queries; the check below
	// fails loudly if they do not.
	if got := c.MustQuery(t, "SELECT currentDatabase()"); got != db {
		t.Fatalf("currentDatabase() = %q after USE %s", got, db)
	}

	units, err := loadMigrations(Schema)
	if err != nil {
		t.Fatal(err)
	}
	c.MustQuery(t, createMigrationsTable)
	for _, u := range units {
		for i, stmt := range u.statements {
			if _, err := c.Query(stmt); err != nil {
				t.Fatalf("migration %s statement %d fails on current ClickHouse: %v\n%s", u.name, i+1, err, stmt)
			}
		}
		c.MustQuery(t, fmt.Sprintf("INSERT INTO %s (name, checksum, server_version) VALUES ('%s', '%s', 'chdb')", MigrationsTable, u.name, u.checksum))
	}
	if got := c.MustQuery(t, selectAppliedMigrations+" ORDER BY name"); strings.Count(got, "\n")+1 != len(units) {
		t.Fatalf("applied migrations read back as %q, want %d units", got, len(units))
	}

	types := c.MustQuery(t, "SELECT name, type FROM system.columns WHERE database = currentDatabase() AND table = 'events' AND name IN ('severity', 'source', 'body') ORDER BY name")
	for _, want := range []string{"body\tString", "severity\tLowCardinality(String)", "source\tLowCardinality(String)"} {
		if !strings.Contains(types, want) {
			t.Fatalf("events columns after all blocks:\n%s\nwant %q", types, want)
		}
	}
	codecs := c.MustQuery(t, "SELECT name, compression_codec FROM system.columns WHERE database = currentDatabase() AND table = 'events' AND name = 'body'")
	if !strings.Contains(codecs, "ZSTD(3)") {
		t.Fatalf("body codec = %q, want ZSTD(3)", codecs)
	}

	// A redelivered event stays one row under FINAL; retention's partition
	// query and DROP PARTITION ID work here too.
	for i := 0; i < 2; i++ {
		c.MustQuery(t, "INSERT INTO events (id, kind, time, observed_time, source, service, severity, fingerprint, `labels.key`, `labels.value`, `resource.key`, `resource.value`, body, schema_version) "+
			"VALUES ('01J0', 'log', '2026-01-01 10:00:00', '2026-01-01 10:00:01', 'test', 'checkout', 'error', 'fp', ['env'], ['prod'], [], [], '{}', 1)")
	}
	if got := c.MustQuery(t, "SELECT count() FROM events FINAL"); got != "1" {
		t.Fatalf("FINAL count = %s, want 1", got)
	}
	parts := c.MustQuery(t, strings.Replace(partitionsQuery("system.parts", "currentDatabase()"), "table = ?", "table = 'events'", 1))
	if !strings.HasPrefix(parts, "20260101\t2026-01-01 10:00:00") {
		t.Fatalf("partitions query on current ClickHouse = %q", parts)
	}
	c.MustQuery(t, "ALTER TABLE events DROP PARTITION ID '20260101'")
	// Retention's check of a partition's newest row time, for tables (like
	// incidents) partitioned by another column.
	col := "SELECT count() FROM system.columns WHERE database = currentDatabase() AND table = '%s' AND name = 'time' AND type LIKE 'DateTime%%' AND NOT is_in_partition_key"
	if got := c.MustQuery(t, fmt.Sprintf(col, "incidents")); got != "1" {
		t.Fatalf("incidents: time outside the partition key found %s times, want 1", got)
	}
	if got := c.MustQuery(t, fmt.Sprintf(col, "events")); got != "0" {
		t.Fatalf("events: time outside the partition key found %s times, want 0", got)
	}
	c.MustQuery(t, "INSERT INTO incidents (incident_id, version, time, opened_at) VALUES ('i', 2, '2026-03-05 10:00:00', '2026-01-31 10:00:00')")
	if got := c.MustQuery(t, "SELECT max(time) FROM incidents WHERE _partition_id = '202601'"); got != "2026-03-05 10:00:00" {
		t.Fatalf("newest time of incidents partition 202601 = %q", got)
	}
	if got := c.MustQuery(t, "SELECT count() FROM events"); got != "0" {
		t.Fatalf("%s rows after DROP PARTITION ID, want 0", got)
	}
}

// The cluster form of every unit, newer-server blocks included, parses on a
// current server. libchdb has no ZooKeeper or network, so ON CLUSTER
// statements cannot run there; EXPLAIN AST checks what a current parser
// makes of them (TestMigrateOnCluster runs them on 18.16).
func TestClusterFormParsesOnCurrentClickHouse(t *testing.T) {
	c := testenv.CurrentClickHouse(t)
	units, err := loadMigrations(Schema)
	if err != nil {
		t.Fatal(err)
	}
	cluster, err := clusterUnits(units, "aiops", "aiops")
	if err != nil {
		t.Fatal(err)
	}
	stmts := []string{migrationsTableCluster("aiops", "aiops"),
		"ALTER TABLE `aiops`.`events_local` ON CLUSTER `aiops` DROP PARTITION ID '20260101'",
		strings.Replace(partitionsQuery("cluster('aiops', system, parts)", "'aiops'"), "table = ?", "table = 'events_local'", 1)}
	for _, u := range cluster {
		stmts = append(stmts, u.statements...)
	}
	if _, err := c.Query("EXPLAIN AST ALTER TABLE t ON CLUSTER c MODIFY COLUMN"); err == nil {
		t.Fatal("EXPLAIN AST accepted a broken statement: it checks nothing")
	}
	for _, stmt := range stmts {
		if _, err := c.Query("EXPLAIN AST " + stmt); err != nil {
			t.Errorf("current ClickHouse does not parse the cluster form: %v\n%s", err, stmt)
		}
	}
	t.Logf("%d cluster-form statements parsed", len(stmts))
}
