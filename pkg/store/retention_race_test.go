package store

import (
	"context"
	"slices"
	"testing"
	"time"
)

// Retention lists the old partitions, checks them and then drops them. The
// partition the cutoff falls in holds rows past retention, but it can
// still take rows within it: an event timed after the cutoff that comes
// late (a writer catching up after an outage of almost the events table's
// retention, which its time window accepts). Such a row inserted between
// the checks and the DROP went with the partition, acked and lost. That
// partition is kept until the cutoff has left it.
func TestDropPartitionsKeepsThePartitionTheCutoffFallsIn(t *testing.T) {
	s, _ := openTestStore(t)
	ctx := context.Background()
	if err := s.Conn.Exec(ctx, "CREATE TABLE late (id String, time DateTime) ENGINE = MergeTree PARTITION BY toYYYYMMDD(time) ORDER BY id"); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 3, 20, 12, 0, 0, 0, time.UTC)
	cutoff := now.AddDate(0, 0, -3) // 2026-03-17 12:00
	insertTimes(t, s, "late", now.AddDate(0, 0, -10), cutoff.Add(-3*time.Hour))

	lateRow := cutoff.Add(3 * time.Hour)
	inserted := false
	beforeDrop = func(string) {
		if !inserted {
			// The late event's insert lands after the partitions were
			// listed and before they are dropped.
			inserted = true
			insertTimes(t, s, "late", lateRow)
		}
	}
	t.Cleanup(func() { beforeDrop = nil })

	dropped, err := DropPartitionsOlderThan(ctx, s.Conn, "late", 3, now)
	if err != nil {
		t.Fatal(err)
	}
	if n := count(t, s, "SELECT count() FROM late WHERE time >= ?", cutoff); n != 1 {
		t.Fatalf("dropped %v: %d rows timed after the cutoff %s left, want the late one (%s)", dropped, n, cutoff, lateRow)
	}
	if want := []string{"20260310"}; !slices.Equal(dropped, want) {
		t.Fatalf("dropped %v, want %v", dropped, want)
	}

	// Once the cutoff has left March 17 and its newest row is past it,
	// the day goes.
	dropped, err = DropPartitionsOlderThan(ctx, s.Conn, "late", 3, time.Date(2026, 3, 21, 0, 0, 0, 0, time.UTC))
	if err != nil || !slices.Equal(dropped, []string{"20260317"}) {
		t.Fatalf("at March 21: dropped %v, %v; want [20260317]", dropped, err)
	}
}
