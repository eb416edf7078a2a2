package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/aiops-dev/aiops/pkg/errs"
)

// ErrNotTimePartitioned is returned when a table's partitions carry no time
// range, so their age cannot be told.
var ErrNotTimePartitioned = errors.New("table is not partitioned by a Date or DateTime column")

// MaxRetentionDays bounds the days argument, a guard against a unit mix-up
// (hours or seconds passed as days) that would silently keep everything.
const MaxRetentionDays = 100 * 365

// partitionsQuery lists a table's partitions with the newest time of their
// rows; dbExpr is currentDatabase() or a bound parameter, parts is
// system.parts or, on a cluster, cluster(?, system, parts) (every shard's).
func partitionsQuery(parts, dbExpr string) string {
	return "SELECT partition_id, max(max_time), max(max_date) FROM " + parts +
		" WHERE database = " + dbExpr + " AND table = ? AND active GROUP BY partition_id ORDER BY partition_id"
}

// DropPartitionsOlderThan drops the partitions of table ("table" or
// "database.table") whose newest row is older than days before now, and
// returns their partition ids. It works on every server version (18.16 has
// no TTL): the age of a partition comes from the min/max index ClickHouse
// keeps for the partition key's column (system.parts max_time, or max_date
// for a Date column), so the table may be partitioned by day, month or any
// function of one time column.
//
// The partition the cutoff falls in is kept until the cutoff has left it
// (a day, or a month, later than its newest row alone would say): it can
// still take rows within retention, and one inserted between the checks
// and the DROP would be lost with it.
//
// A table with a `time` column (each row's own time) that its partition
// key does not use, like incidents (partitioned by the month an incident
// opened, each row the incident's latest state), loses a partition only
// once its newest `time` is old too: an incident opened before the cutoff
// but still open, or updated since, keeps its month.
//
// A Distributed table (the cluster form of the schema, Config.Cluster) has
// no partitions of its own: its local table's partitions are listed on every
// shard and dropped ON CLUSTER, so every shard and replica loses them, and a
// partition goes only once its newest row on every shard is old.
func DropPartitionsOlderThan(ctx context.Context, conn driver.Conn, table string, days int, now time.Time) (dropped []string, err error) {
	quoted, err := QuoteTable(table)
	if err != nil {
		return nil, err
	}
	if days < 1 || days > MaxRetentionDays {
		return nil, errs.Permanentf("store: retention days: must be between 1 and %d, got %d", MaxRetentionDays, days)
	}
	cutoff := now.Add(-time.Duration(days) * 24 * time.Hour)

	database, name := splitTable(table)
	dbExpr, args := "currentDatabase()", []any{name}
	if database != "" {
		dbExpr, args = "?", []any{database, name}
	}
	parts, onCluster := "system.parts", ""
	dist, err := distributedTarget(ctx, conn, dbExpr, args)
	if err != nil {
		return nil, fmt.Errorf("store: retention of %s: %w", table, err)
	}
	// Where rows are read for a partition's newest row time
	// (rowTimeOutsidePartitionKey): the table, or every shard's local table.
	rowSource, rowSourceArgs := quoted, []any(nil)
	colDBExpr, colArgs := dbExpr, args
	if dist != nil {
		quoted = quoteIdents(dist.database, dist.table)
		onCluster = " ON CLUSTER " + quoteIdents(dist.cluster)
		parts, dbExpr, args = "cluster(?, system, parts)", "?", []any{dist.cluster, dist.database, dist.table}
		rowSource, rowSourceArgs = "cluster(?, "+quoteIdents(dist.database)+", "+quoteIdents(dist.table)+")", []any{dist.cluster}
		colDBExpr, colArgs = "?", []any{dist.database, dist.table}
	}
	checkRowTime, err := rowTimeOutsidePartitionKey(ctx, conn, colDBExpr, colArgs)
	if err != nil {
		return nil, fmt.Errorf("store: retention of %s: %w", table, err)
	}
	checkOpen := false
	if checkRowTime {
		if checkOpen, err = hasColumns(ctx, conn, colDBExpr, colArgs, openStateColumns...); err != nil {
			return nil, fmt.Errorf("store: retention of %s: %w", table, err)
		}
	}
	rows, err := conn.Query(ctx, partitionsQuery(parts, dbExpr), args...)
	if err != nil {
		return nil, fmt.Errorf("store: list partitions of %s: %w", table, err)
	}
	type partition struct {
		id     string
		newest time.Time // first instant after the partition's newest row
		date   bool      // its time column is a Date
		latest time.Time // the newest value of its time column
	}
	var old []partition
	for rows.Next() {
		var (
			id               string
			maxTime, maxDate time.Time
		)
		if err := rows.Scan(&id, &maxTime, &maxDate); err != nil {
			rows.Close()
			return nil, fmt.Errorf("store: list partitions of %s: %w", table, err)
		}
		p := partition{id: id, latest: maxTime}
		switch {
		case maxTime.Unix() > 0:
			p.newest = maxTime.Add(time.Second)
		case maxDate.Unix() > 0:
			// A Date covers its whole day.
			p.newest, p.date, p.latest = maxDate.AddDate(0, 0, 1), true, maxDate
		default:
			rows.Close()
			return nil, errs.Permanent(fmt.Errorf("store: %s partition %s: %w", table, id, ErrNotTimePartitioned))
		}
		if !p.newest.After(cutoff) {
			old = append(old, p)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: list partitions of %s: %w", table, err)
	}
	var holdsCutoff func(latest time.Time, date bool) (bool, error)
	if len(old) > 0 {
		if holdsCutoff, err = cutoffPartition(ctx, conn, colDBExpr, colArgs, cutoff); err != nil {
			return nil, fmt.Errorf("store: retention of %s: %w", table, err)
		}
	}
	for _, p := range old {
		// The partition the cutoff falls in can still take rows within
		// retention (an event timed after the cutoff, coming late: a
		// writer catching up after an outage), and one inserted between
		// the checks here and the DROP would go with it. It goes once
		// the cutoff has left it, when every row it can hold is past
		// retention.
		if holds, err := holdsCutoff(p.latest, p.date); err != nil {
			return dropped, fmt.Errorf("store: partition key of %s: %w", table, err)
		} else if holds {
			continue
		}
		if checkRowTime {
			var newestRow time.Time
			q := "SELECT max(`" + rowTimeColumn + "`) FROM " + rowSource + " WHERE _partition_id = ?"
			if err := conn.QueryRow(ctx, q, append(rowSourceArgs, p.id)...).Scan(&newestRow); err != nil {
				return dropped, fmt.Errorf("store: newest %s of partition %s of %s: %w", rowTimeColumn, p.id, table, err)
			}
			if newestRow.Add(time.Second).After(cutoff) {
				continue // a row of it was updated within retention
			}
		}
		if checkOpen {
			// An incident still open keeps its month however long ago its
			// last state came (a firing alert whose resolution was lost
			// makes no more states).
			var open uint64
			q := "SELECT count() FROM (SELECT argMax(toUnixTimestamp(resolved_at), version) AS resolved FROM " + rowSource +
				" WHERE _partition_id = ? GROUP BY incident_id) WHERE resolved = 0"
			if err := conn.QueryRow(ctx, q, append(rowSourceArgs, p.id)...).Scan(&open); err != nil {
				return dropped, fmt.Errorf("store: open incidents of partition %s of %s: %w", p.id, table, err)
			}
			if open > 0 {
				continue
			}
		}
		if beforeDrop != nil {
			beforeDrop(p.id)
		}
		// The partition id is bound by the client, quoted as a string
		// literal: 18.16 has no server-side parameters.
		if err := conn.Exec(ctx, "ALTER TABLE "+quoted+onCluster+" DROP PARTITION ID ?", p.id); err != nil {
			if onCluster != "" && isDDLTimeout(err) {
				// The servers that ran it in time dropped it; the
				// statement waits in ZooKeeper's DDL queue for the others.
				// The pass stops here rather than wait as long again for
				// each partition.
				return append(dropped, p.id), fmt.Errorf("store: drop partition %s of %s: dropped by the servers that answered; "+
					"those that did not within distributed_ddl_task_timeout (down?) drop it when they return: %w", p.id, table, err)
			}
			return dropped, fmt.Errorf("store: drop partition %s of %s: %w", p.id, table, err)
		}
		dropped = append(dropped, p.id)
	}
	return dropped, nil
}

// isDDLTimeout matches what an ON CLUSTER statement answers when a server
// did not run it within distributed_ddl_task_timeout (code 159,
// TIMEOUT_EXCEEDED, "Watching task ... is executing longer than ...").
func isDDLTimeout(err error) bool {
	var ex *clickhouse.Exception
	return errors.As(err, &ex) && ex.Code == 159 && strings.Contains(ex.Message, "distributed_ddl_task_timeout")
}

// beforeDrop, when set (by a test), is called right before a partition is
// dropped, after every check of it.
var beforeDrop func(partitionID string)

// cutoffPartition returns a function that tells whether the partition
// whose time column's newest value is latest (a Date when date is set) is
// the one cutoff falls in, by the table's own partition key evaluated by
// the server (in its time zone) on both. The key must be a function of one
// Date or DateTime column (every table of the schema); of several
// columns, the partition of the cutoff cannot be told and none is kept
// for it. dbExpr and args select the table as in partitionsQuery.
func cutoffPartition(ctx context.Context, conn driver.Conn, dbExpr string, args []any, cutoff time.Time) (func(latest time.Time, date bool) (bool, error), error) {
	var key string
	if err := conn.QueryRow(ctx, "SELECT partition_key FROM system.tables WHERE database = "+dbExpr+" AND name = ?", args...).Scan(&key); err != nil {
		return nil, fmt.Errorf("read its partition key: %w", err)
	}
	rows, err := conn.Query(ctx, "SELECT name, type FROM system.columns WHERE database = "+dbExpr+" AND table = ? AND is_in_partition_key", args...)
	if err != nil {
		return nil, fmt.Errorf("read its partition key columns: %w", err)
	}
	var names, types []string
	for rows.Next() {
		var name, typ string
		if err := rows.Scan(&name, &typ); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read its partition key columns: %w", err)
		}
		names, types = append(names, name), append(types, typ)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read its partition key columns: %w", err)
	}
	if len(names) != 1 || !strings.HasPrefix(types[0], "Date") {
		return func(time.Time, bool) (bool, error) { return false, nil }, nil
	}
	// The key and the column's type come from the server's own catalogue.
	keyOf := func(value string, arg any) (string, error) {
		var k string
		q := "SELECT toString(" + key + ") FROM (SELECT CAST(" + value + " AS " + types[0] + ") AS " + quoteIdents(names[0]) + ")"
		err := conn.QueryRow(ctx, q, arg).Scan(&k)
		return k, err
	}
	cutoffKey, err := keyOf("toDateTime(?)", cutoff.Unix())
	if err != nil {
		return nil, fmt.Errorf("partition key of the cutoff: %w", err)
	}
	return func(latest time.Time, date bool) (bool, error) {
		value, arg := "toDateTime(?)", any(latest.Unix())
		if date {
			// a Date as scanned: its day, whatever the time zone
			value, arg = "toDate(?)", latest.Format(time.DateOnly)
		}
		k, err := keyOf(value, arg)
		return k == cutoffKey, err
	}, nil
}

// rowTimeColumn holds each row's own time in every table of the schema.
const rowTimeColumn = "time"

// rowTimeOutsidePartitionKey reports whether the table has a DateTime
// column rowTimeColumn that its partition key does not use. Such a table
// (incidents: partitioned by the month an incident opened, so that all its
// states collapse in one partition, while each row is the latest state)
// holds rows newer than its partitions' min/max index says: an incident
// opened long ago may still be open. Its partitions old by that index are
// dropped only once their newest row time is old too. dbExpr and args
// select the table as in partitionsQuery.
func rowTimeOutsidePartitionKey(ctx context.Context, conn driver.Conn, dbExpr string, args []any) (bool, error) {
	var n uint64
	q := "SELECT count() FROM system.columns WHERE database = " + dbExpr + " AND table = ? AND name = '" + rowTimeColumn +
		"' AND type LIKE 'DateTime%' AND NOT is_in_partition_key"
	if err := conn.QueryRow(ctx, q, args...).Scan(&n); err != nil {
		return false, fmt.Errorf("read its %s column: %w", rowTimeColumn, err)
	}
	return n > 0, nil
}

// openStateColumns mark a table of latest states (incidents): one row per
// incident_id of the highest version, open while resolved_at is zero.
var openStateColumns = []string{"incident_id", "version", "resolved_at"}

// hasColumns reports whether the table selected by dbExpr and args (as in
// partitionsQuery) has every one of names.
func hasColumns(ctx context.Context, conn driver.Conn, dbExpr string, args []any, names ...string) (bool, error) {
	var n uint64
	q := "SELECT count() FROM system.columns WHERE database = " + dbExpr + " AND table = ? AND has(?, name)"
	if err := conn.QueryRow(ctx, q, append(append([]any(nil), args...), names)...).Scan(&n); err != nil {
		return false, fmt.Errorf("read its columns: %w", err)
	}
	return int(n) == len(names), nil
}

// distributedTable is where a Distributed table's rows are: its engine's
// cluster, database and table.
type distributedTable struct{ cluster, database, table string }

// distributedTarget returns the local table behind a Distributed table, or
// nil for any other table. dbExpr and args select the table as in
// partitionsQuery.
func distributedTarget(ctx context.Context, conn driver.Conn, dbExpr string, args []any) (*distributedTable, error) {
	rows, err := conn.Query(ctx, "SELECT engine, engine_full FROM system.tables WHERE database = "+dbExpr+" AND name = ?", args...)
	if err != nil {
		return nil, fmt.Errorf("read its engine: %w", err)
	}
	defer rows.Close()
	var engine, full string
	if rows.Next() {
		if err := rows.Scan(&engine, &full); err != nil {
			return nil, fmt.Errorf("read its engine: %w", err)
		}
	}
	if err := rows.Err(); err != nil || engine != "Distributed" {
		return nil, err
	}
	// Distributed(cluster, database, table[, sharding key]): each of the
	// first three a name or a string literal.
	toks, err := lex(full)
	if err != nil || len(toks) < 8 || !toks.words(0, "Distributed") || toks[1].text != "(" ||
		toks[3].text != "," || toks[5].text != "," {
		return nil, errs.Permanentf("engine %q: not Distributed(cluster, database, table, ...)", full)
	}
	d := &distributedTable{cluster: toks[2].name(), database: toks[4].name(), table: toks[6].name()}
	for _, n := range []string{d.cluster, d.database, d.table} {
		if !validName(n) {
			return nil, errs.Permanentf("engine %q: %q is not a plain name", full, n)
		}
	}
	return d, nil
}
