package plot

import (
	"slices"
	"testing"
	"time"

	"github.com/aiops-dev/aiops/pkg/detect"
)

// A long series is drawn from a bounded number of rows that still hold
// what the picture shows: its first and last rows, a one-row spike and
// dip, and its anomalous rows, in time order.
func TestThinnerKeepsWhatThePictureShows(t *testing.T) {
	const n = 1_000_000
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	th := SeriesThinner()
	for i := range n {
		r := detect.ReplayRow{Line: i + 2}
		r.Result.Time = start.Add(time.Duration(i) * time.Minute)
		r.Result.Scored = float64(i % 10)
		switch i {
		case 123_457:
			r.Result.Scored = 1e6 // a spike
		case 700_001:
			r.Result.Scored = -1e6 // a dip
		case 400_003:
			r.Result.Anomaly = true
		}
		th.Add(r)
	}
	rows := th.Rows()
	if len(rows) > 4*MaxBuckets+8 || len(rows) < MaxBuckets {
		t.Fatalf("%d rows kept of %d, want about 2 to 4 per bucket of %d", len(rows), n, MaxBuckets)
	}
	lines := make([]int, len(rows))
	for i, r := range rows {
		lines[i] = r.Line
	}
	if !slices.IsSorted(lines) {
		t.Fatal("rows kept out of order")
	}
	for _, want := range []int{2, n + 1, 123_457 + 2, 700_001 + 2, 400_003 + 2} {
		if !slices.Contains(lines, want) {
			t.Errorf("line %d not kept (first, last, spike, dip, anomaly)", want)
		}
	}
	// A short series is kept whole.
	short := SeriesThinner()
	for i := range 100 {
		short.Add(detect.ReplayRow{Line: i})
	}
	if got := len(short.Rows()); got != 100 {
		t.Fatalf("100 rows: %d kept, want all", got)
	}
}

// A group keeps each channel's extremes.
func TestThinnerKeepsEveryChannelsExtremes(t *testing.T) {
	th := GroupThinner()
	for i := range 100_000 {
		r := detect.GroupReplayRow{Line: i, Values: []float64{0, 0}}
		if i == 31_337 {
			r.Values[1] = 9
		}
		th.Add(r)
	}
	var lines []int
	for _, r := range th.Rows() {
		lines = append(lines, r.Line)
	}
	if !slices.Contains(lines, 31_337) {
		t.Fatal("channel 1's spike not kept")
	}
}
