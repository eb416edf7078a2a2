package store

import (
	"context"
	"errors"
	"fmt"
	"time"

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
// rows; dbExpr is currentDatabase() or a bound parameter.
func partitionsQuery(dbExpr string) string {
	return "SELECT partition_id, max(max_time), max(max_date) FROM system.parts" +
		" WHERE database = " + dbExpr + " AND table = ? AND active GROUP BY partition_id ORDER BY partition_id"
}

// DropPartitionsOlderThan drops the partitions of table ("table" or
// "database.table") whose newest row is older than days before now, and
// returns their partition ids. It works on every server version (18.16 has
// no TTL): the age of a partition comes from the min/max index ClickHouse
// keeps for the partition key's column (system.parts max_time, or max_date
// for a Date column), so the table may be partitioned by day, month or any
// function of one time column.
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
	rows, err := conn.Query(ctx, partitionsQuery(dbExpr), args...)
	if err != nil {
		return nil, fmt.Errorf("store: list partitions of %s: %w", table, err)
	}
	type partition struct {
		id     string
		newest time.Time // first instant after the partition's newest row
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
		var newest time.Time
		switch {
		case maxTime.Unix() > 0:
			newest = maxTime.Add(time.Second)
		case maxDate.Unix() > 0:
			// A Date covers its whole day.
			newest = maxDate.AddDate(0, 0, 1)
		default:
			rows.Close()
			return nil, errs.Permanent(fmt.Errorf("store: %s partition %s: %w", table, id, ErrNotTimePartitioned))
		}
		if !newest.After(cutoff) {
			old = append(old, partition{id, newest})
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: list partitions of %s: %w", table, err)
	}
	for _, p := range old {
		// The partition id is bound by the client, quoted as a string
		// literal: 18.16 has no server-side parameters.
		if err := conn.Exec(ctx, "ALTER TABLE "+quoted+" DROP PARTITION ID ?", p.id); err != nil {
			return dropped, fmt.Errorf("store: drop partition %s of %s: %w", p.id, table, err)
		}
		dropped = append(dropped, p.id)
	}
	return dropped, nil
}
