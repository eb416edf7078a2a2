package writer

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// The dashboard's "Anomalies per hour by service" names its hour column
// `time`, which is also the anomalies' own column: ClickHouse takes the
// alias in WHERE, so the range is applied to the hour, not to the
// anomaly's time. Over 10:37-15:37, an anomaly at 10:50 (in range) is left
// out and one at 15:50 (after the range) is counted.
func TestDashboardAnomaliesPerHourFiltersTheAnomalyTime(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: needs ClickHouse")
	}
	ctx := context.Background()
	st := migratedStore(t, ctx, zerolog.Nop())
	at := func(h, m int) time.Time { return day(0).Add(time.Duration(h)*time.Hour + time.Duration(m)*time.Minute) }
	b, err := st.Conn.PrepareBatch(ctx, "INSERT INTO anomalies (id, time, service, series, metric)")
	if err != nil {
		t.Fatal(err)
	}
	for i, tm := range []time.Time{at(10, 50), at(12, 10), at(15, 50)} {
		if err := b.Append(fmt.Sprintf("a%d", i), tm, "checkout", "s", "latency"); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Send(); err != nil {
		t.Fatal(err)
	}
	q := dashboardClickHouseSQL(t, at(10, 37), at(15, 37))["Anomalies per hour by service"]
	if len(q) != 1 {
		t.Fatalf("%d queries", len(q))
	}
	got := map[string]uint64{}
	for _, r := range queryRows(t, ctx, st.Conn, q[0], nil) {
		got[r[0].(time.Time).UTC().Format("15:04")] += r[2].(uint64)
	}
	want := map[string]uint64{"10:00": 1, "12:00": 1}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("anomalies per hour over 10:37-15:37: %v, want %v (the anomalies at 10:50, 12:10; not the one at 15:50)", got, want)
	}
}
