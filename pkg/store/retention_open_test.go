package store

import (
	"context"
	"testing"
	"time"
)

// An incident opened in April and still open (its alert fires and its
// resolution was lost: with alert_expiry 0, the default, the correlator
// publishes nothing more of it) must keep its month, as docs/queries.md
// (Retention) and DropPartitionsOlderThan's comment say: "an incident
// opened long ago and still open (or updated lately) stays".
func TestDropPartitionsKeepsIncidentsStillOpen(t *testing.T) {
	s, _ := openTestStore(t)
	ctx := context.Background()
	if _, err := s.Migrate(ctx, Schema); err != nil {
		t.Fatal(err)
	}
	at := func(month time.Month, day int) time.Time { return time.Date(2026, month, day, 9, 0, 0, 0, time.UTC) }
	b, err := s.Conn.PrepareBatch(ctx, "INSERT INTO incidents (incident_id, version, id, time, status, opened_at, resolved_at)")
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range []struct {
		status string
		at     time.Time
	}{{"opened", at(4, 20)}, {"acknowledged", at(4, 21)}} {
		if err := b.Append("inc-april-open", uint64(st.at.UnixNano()), "inc-april-open-"+st.status, st.at, st.status, at(4, 20), time.Unix(0, 0)); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Send(); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 6, 20, 12, 0, 0, 0, time.UTC)
	dropped, err := DropPartitionsOlderThan(ctx, s.Conn, "incidents", 30, now)
	if err != nil {
		t.Fatal(err)
	}
	if n := count(t, s, "SELECT count() FROM incidents FINAL WHERE toUnixTimestamp(resolved_at) = 0"); n != 1 {
		t.Fatalf("retention of 30 days dropped %v: the incident opened in April and still open is gone (%d open incidents left, want 1)", dropped, n)
	}
}
