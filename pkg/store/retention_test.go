package store

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/aiops-dev/aiops/pkg/errs"
)

func insertTimes(t *testing.T, s *Store, table string, times ...time.Time) {
	t.Helper()
	b, err := s.Conn.PrepareBatch(context.Background(), "INSERT INTO "+table+" (id, time)")
	if err != nil {
		t.Fatal(err)
	}
	for i, tm := range times {
		if err := b.Append(string(rune('a'+i)), tm); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Send(); err != nil {
		t.Fatal(err)
	}
}

func TestDropPartitionsOlderThan(t *testing.T) {
	s, _ := openTestStore(t)
	ctx := context.Background()
	now := time.Date(2026, 3, 20, 12, 0, 0, 0, time.UTC)
	day := 24 * time.Hour

	t.Run("daily", func(t *testing.T) {
		if err := s.Conn.Exec(ctx, "CREATE TABLE daily (id String, time DateTime) ENGINE = MergeTree PARTITION BY toYYYYMMDD(time) ORDER BY id"); err != nil {
			t.Fatal(err)
		}
		// 10 and 5 days old go; 3 days minus a minute (inside the window)
		// and 1 day stay.
		insertTimes(t, s, "daily", now.Add(-10*day), now.Add(-5*day), now.Add(-3*day+time.Minute), now.Add(-day))
		dropped, err := DropPartitionsOlderThan(ctx, s.Conn, "daily", 3, now)
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"20260310", "20260315"}; !slices.Equal(dropped, want) {
			t.Fatalf("dropped %v, want %v", dropped, want)
		}
		if n := count(t, s, "SELECT count() FROM daily"); n != 2 {
			t.Fatalf("%d rows left, want 2", n)
		}
		again, err := DropPartitionsOlderThan(ctx, s.Conn, "daily", 3, now)
		if err != nil || len(again) != 0 {
			t.Fatalf("second run dropped %v, %v; want nothing", again, err)
		}
	})

	t.Run("monthly with database prefix", func(t *testing.T) {
		if err := s.Conn.Exec(ctx, "CREATE TABLE monthly (id String, time DateTime) ENGINE = MergeTree PARTITION BY toYYYYMM(time) ORDER BY id"); err != nil {
			t.Fatal(err)
		}
		// January is entirely older than 30 days; February's newest row
		// (Feb 25) is not, so February stays whole.
		insertTimes(t, s, "monthly",
			time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC), time.Date(2026, 1, 31, 23, 0, 0, 0, time.UTC),
			time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 2, 25, 0, 0, 0, 0, time.UTC))
		var db string
		if err := s.Conn.QueryRow(ctx, "SELECT currentDatabase()").Scan(&db); err != nil {
			t.Fatal(err)
		}
		dropped, err := DropPartitionsOlderThan(ctx, s.Conn, db+".monthly", 30, now)
		if err != nil || !slices.Equal(dropped, []string{"202601"}) {
			t.Fatalf("dropped %v, %v; want [202601]", dropped, err)
		}
		if n := count(t, s, "SELECT count() FROM monthly"); n != 2 {
			t.Fatalf("%d rows left, want 2", n)
		}
	})

	t.Run("date column", func(t *testing.T) {
		if err := s.Conn.Exec(ctx, "CREATE TABLE bydate (id String, d Date) ENGINE = MergeTree PARTITION BY d ORDER BY id"); err != nil {
			t.Fatal(err)
		}
		b, err := s.Conn.PrepareBatch(ctx, "INSERT INTO bydate (id, d)")
		if err != nil {
			t.Fatal(err)
		}
		// A Date covers its whole day: 2 days back is still inside a
		// 2-day window until the day ends, 3 days back is out.
		_ = b.Append("old", now.Add(-3*day))
		_ = b.Append("edge", now.Add(-2*day))
		if err := b.Send(); err != nil {
			t.Fatal(err)
		}
		dropped, err := DropPartitionsOlderThan(ctx, s.Conn, "bydate", 2, now)
		if err != nil || len(dropped) != 1 {
			t.Fatalf("dropped %v, %v; want the 3-day-old partition only", dropped, err)
		}
	})

	t.Run("not time partitioned", func(t *testing.T) {
		if err := s.Conn.Exec(ctx, "CREATE TABLE bykind (kind String) ENGINE = MergeTree PARTITION BY kind ORDER BY kind"); err != nil {
			t.Fatal(err)
		}
		b, _ := s.Conn.PrepareBatch(ctx, "INSERT INTO bykind (kind)")
		_ = b.Append("log")
		if err := b.Send(); err != nil {
			t.Fatal(err)
		}
		_, err := DropPartitionsOlderThan(ctx, s.Conn, "bykind", 1, now)
		if !errors.Is(err, ErrNotTimePartitioned) || !errs.IsPermanent(err) {
			t.Fatalf("err = %v, want permanent ErrNotTimePartitioned", err)
		}
		if n := count(t, s, "SELECT count() FROM bykind"); n != 1 {
			t.Fatal("rows of a table without time partitions were dropped")
		}
	})

	t.Run("bad input", func(t *testing.T) {
		if _, err := DropPartitionsOlderThan(ctx, s.Conn, "daily; DROP TABLE daily", 3, now); !errors.Is(err, ErrInvalidIdentifier) {
			t.Fatalf("injected table name: err = %v, want ErrInvalidIdentifier", err)
		}
		for _, days := range []int{0, -1, MaxRetentionDays + 1} {
			if _, err := DropPartitionsOlderThan(ctx, s.Conn, "daily", days, now); err == nil || !errs.IsPermanent(err) {
				t.Fatalf("days=%d: err = %v, want a permanent error", days, err)
			}
		}
		if n := count(t, s, "SELECT count() FROM system.tables WHERE database = currentDatabase() AND name = 'daily'"); n != 1 {
			t.Fatal("table daily is gone")
		}
	})
}

// incidents is partitioned by the month an incident opened, but each row is
// its latest state: an incident opened long ago and still open (or updated
// lately) sits in an old month. Retention must keep that month until its
// newest state is past retention too, or the open incident vanishes from
// the table (and each later state recreates the month, dropped again).
func TestDropPartitionsKeepsIncidentsUpdatedLately(t *testing.T) {
	s, _ := openTestStore(t)
	ctx := context.Background()
	if _, err := s.Migrate(ctx, Schema); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 6, 20, 12, 0, 0, 0, time.UTC)
	at := func(month time.Month, day int) time.Time { return time.Date(2026, month, day, 9, 0, 0, 0, time.UTC) }
	b, err := s.Conn.PrepareBatch(ctx, "INSERT INTO incidents (incident_id, version, id, time, status, opened_at, resolved_at)")
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range []struct {
		incident, status string
		at, opened       time.Time
	}{
		// March: opened and resolved long ago, dropped.
		{"inc-march", "opened", at(3, 10), at(3, 10)},
		{"inc-march", "resolved", at(3, 11), at(3, 10)},
		// April: one resolved long ago, one opened then and still being
		// updated five days ago.
		{"inc-april-done", "opened", at(4, 5), at(4, 5)},
		{"inc-april-done", "resolved", at(4, 6), at(4, 5)},
		{"inc-april-open", "opened", at(4, 20), at(4, 20)},
		{"inc-april-open", "updated", at(6, 15), at(4, 20)},
	} {
		resolved := time.Unix(0, 0)
		if st.status == "resolved" {
			resolved = st.at
		}
		if err := b.Append(st.incident, uint64(st.at.UnixNano()), st.incident+"-"+st.status, st.at, st.status, st.opened, resolved); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Send(); err != nil {
		t.Fatal(err)
	}
	dropped, err := DropPartitionsOlderThan(ctx, s.Conn, "incidents", 30, now)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"202603"}; !slices.Equal(dropped, want) {
		t.Fatalf("dropped %v, want %v: April holds an incident updated 5 days ago", dropped, want)
	}
	if n := count(t, s, "SELECT count() FROM incidents FINAL WHERE incident_id = 'inc-april-open' AND status = 'updated'"); n != 1 {
		t.Fatalf("the incident updated 5 days ago has %d latest rows, want 1", n)
	}
	// An incident still open keeps its month however old its newest
	// state (one whose alert's resolution was lost makes no more).
	dropped, err = DropPartitionsOlderThan(ctx, s.Conn, "incidents", 30, at(6, 15).AddDate(0, 0, 31))
	if err != nil || len(dropped) != 0 {
		t.Fatalf("a month later, inc-april-open still open: dropped %v, %v; want none", dropped, err)
	}
	// Resolved, and that past retention too, April goes.
	resolved := at(6, 16)
	b, err = s.Conn.PrepareBatch(ctx, "INSERT INTO incidents (incident_id, version, id, time, status, opened_at, resolved_at)")
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Append("inc-april-open", uint64(resolved.UnixNano()), "inc-april-open-resolved", resolved, "resolved", at(4, 20), resolved); err != nil {
		t.Fatal(err)
	}
	if err := b.Send(); err != nil {
		t.Fatal(err)
	}
	dropped, err = DropPartitionsOlderThan(ctx, s.Conn, "incidents", 30, resolved.AddDate(0, 0, 31))
	if err != nil || !slices.Equal(dropped, []string{"202604"}) {
		t.Fatalf("a month after its resolution: dropped %v, %v; want [202604]", dropped, err)
	}
}
