package detect

import (
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

var groupStart = time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)

// correlatedRow returns three channels driven by one factor plus a
// little noise of their own: b follows a, c follows -a.
func correlatedRow(rng *rand.Rand) []float64 {
	f := rng.NormFloat64()
	return []float64{
		100 + 10*f + 0.5*rng.NormFloat64(),
		50 + 5*f + 0.5*rng.NormFloat64(),
		20 - 3*f + 0.5*rng.NormFloat64(),
	}
}

func warmGroup(t *testing.T, cfg GroupConfig, rng *rand.Rand) (*Group, time.Time) {
	t.Helper()
	g, err := NewGroup(cfg, 3)
	if err != nil {
		t.Fatal(err)
	}
	ts := groupStart
	for i := 0; i < g.cfg.Warmup; i++ {
		r := g.Observe(ts, correlatedRow(rng))
		if r.Score != 0 || r.Flags&FlagWarmUp == 0 {
			t.Fatalf("warm-up row %d: score %v flags %b, want 0 and FlagWarmUp", i, r.Score, r.Flags)
		}
		ts = ts.Add(time.Second)
	}
	if !g.Warm() {
		t.Fatal("not warm after Warmup rows")
	}
	return g, ts
}

// A broken relation is found on the channel that broke, though every
// channel stays well inside its own range; normal rows are not flagged.
func TestGroupFindsBrokenRelation(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	g, ts := warmGroup(t, GroupConfig{}, rng)
	normal := 0
	for i := 0; i < 500; i++ {
		if g.Observe(ts, correlatedRow(rng)).Anomaly {
			normal++
		}
		ts = ts.Add(time.Second)
	}
	if normal > 10 {
		t.Errorf("%d of 500 normal rows flagged", normal)
	}
	flagged, onB := 0, 0
	for i := 0; i < 60; i++ {
		row := correlatedRow(rng)
		row[1] += 4 // 4 units: under half of b's own spread (σ ≈ 5)
		r := g.Observe(ts, row)
		ts = ts.Add(time.Second)
		if r.Score < 0 || r.Score > 1 || math.IsNaN(r.Score) {
			t.Fatalf("score %v outside [0,1]", r.Score)
		}
		if r.Anomaly {
			flagged++
			if r.Channel == 1 {
				onB++
			}
			if r.Q <= r.QLimit && r.T2 <= r.T2Limit && r.Ratio >= 1 {
				t.Fatalf("ratio %v though T2 %v <= %v and Q %v <= %v", r.Ratio, r.T2, r.T2Limit, r.Q, r.QLimit)
			}
		}
	}
	if flagged < 45 {
		t.Errorf("%d of 60 rows with the broken relation flagged, want >= 45", flagged)
	}
	if onB < flagged*3/4 {
		t.Errorf("channel b named on %d of %d flagged rows", onB, flagged)
	}
	// back to normal: the alarm ends after the release rows
	last := true
	for i := 0; i < 100; i++ {
		last = g.Observe(ts, correlatedRow(rng)).Anomaly
		ts = ts.Add(time.Second)
	}
	if last {
		t.Error("still in alarm 100 rows after the relation came back")
	}
}

// A fault that lasts longer than MaxAlarm becomes the new normal: the model
// is learnt again and the alarm ends.
func TestGroupRelearnsAfterMaxAlarm(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	g, ts := warmGroup(t, GroupConfig{MaxAlarm: 5 * time.Minute, Warmup: 100}, rng)
	var relearnt bool
	var flaggedAfter int
	for i := 0; i < 1200; i++ {
		row := correlatedRow(rng)
		row[1] += 10
		r := g.Observe(ts, row)
		ts = ts.Add(time.Second)
		if r.Flags&FlagRelearn != 0 {
			relearnt = true
			if i < 290 || i > 310 {
				t.Errorf("relearnt at row %d of the fault, want about 300 (5 minutes)", i)
			}
		}
		if relearnt && i > 500 && r.Anomaly {
			flaggedAfter++
		}
	}
	if !relearnt {
		t.Fatal("no relearn in 20 minutes of a fault with MaxAlarm 5m")
	}
	if flaggedAfter > 20 {
		t.Errorf("%d rows flagged once the fault was learnt as normal", flaggedAfter)
	}
}

// Missing channels count as at their mean; a row with none, a duplicate
// or an out-of-order row is ignored; a row of the wrong width is invalid.
func TestGroupBadRows(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	g, ts := warmGroup(t, GroupConfig{Warmup: 50}, rng)
	r := g.Observe(ts, []float64{math.NaN(), math.Inf(1), 1e300})
	if r.Flags&FlagInvalid == 0 || r.Score != 0 {
		t.Errorf("all channels missing: %+v", r)
	}
	r = g.Observe(ts, []float64{math.NaN(), 50, 20})
	if r.Flags.Ignored() || r.Score < 0 || r.Score > 1 {
		t.Errorf("one channel missing: %+v", r)
	}
	if r := g.Observe(ts, correlatedRow(rng)); r.Flags&FlagDuplicate == 0 {
		t.Errorf("same timestamp: flags %b", r.Flags)
	}
	if r := g.Observe(ts.Add(-time.Second), correlatedRow(rng)); r.Flags&FlagOutOfOrder == 0 {
		t.Errorf("older timestamp: flags %b", r.Flags)
	}
	if r := g.Observe(ts.Add(time.Second), []float64{1, 2}); r.Flags&FlagInvalid == 0 {
		t.Errorf("two values for three channels: flags %b", r.Flags)
	}
	// a channel flat during the warm-up that then moves is far out
	flat, err := NewGroup(GroupConfig{Warmup: 20}, 2)
	if err != nil {
		t.Fatal(err)
	}
	ts = groupStart
	for i := 0; i < 20; i++ {
		flat.Observe(ts, []float64{5, float64(i % 3)})
		ts = ts.Add(time.Second)
	}
	var hit bool
	for i := 0; i < 20; i++ {
		r := flat.Observe(ts, []float64{5.5, float64(i % 3)})
		ts = ts.Add(time.Second)
		if math.IsNaN(r.Score) || r.Score < 0 || r.Score > 1 {
			t.Fatalf("score %v", r.Score)
		}
		hit = hit || (r.Anomaly && r.Channel == 0)
	}
	if !hit {
		t.Error("a flat channel that moved was not flagged")
	}
}

// Scores stay in [0,1] on hostile input.
func TestGroupScoreRange(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	g, err := NewGroup(GroupConfig{Warmup: 10}, 4)
	if err != nil {
		t.Fatal(err)
	}
	ts := groupStart
	vals := []float64{0, 1, -1, 1e-300, 1e99, -1e99, math.NaN(), math.Inf(-1), 42}
	for i := 0; i < 5000; i++ {
		row := make([]float64, 4)
		for j := range row {
			row[j] = vals[rng.IntN(len(vals))] * (1 + rng.Float64())
		}
		r := g.Observe(ts, row)
		ts = ts.Add(time.Duration(1+rng.IntN(3)) * time.Second)
		if math.IsNaN(r.Score) || r.Score < 0 || r.Score > 1 {
			t.Fatalf("row %d %v: score %v", i, row, r.Score)
		}
	}
}

func TestGroupConfigValidate(t *testing.T) {
	for _, c := range []struct {
		cfg   GroupConfig
		field string
	}{
		{GroupConfig{Warmup: 5}, "warmup"},
		{GroupConfig{Variance: 1.5}, "variance"},
		{GroupConfig{Quantile: 1}, "quantile"},
		{GroupConfig{Margin: 0.5}, "margin"},
		{GroupConfig{Smooth: -1}, "smooth"},
		{GroupConfig{Memory: 5}, "memory"},
		{GroupConfig{LevelMemory: 3}, "level_memory"},
		{GroupConfig{Release: 2}, "release"},
		{GroupConfig{ReleaseRows: -1}, "release_rows"},
		{GroupConfig{MaxAlarm: -time.Second}, "max_alarm"},
		{GroupConfig{Threshold: 1}, "threshold"},
	} {
		err := c.cfg.Validate()
		if !errors.Is(err, ErrInvalidGroupConfig) || !strings.Contains(err.Error(), c.field+":") {
			t.Errorf("%+v: err %v, want one naming %s", c.cfg, err, c.field)
		}
	}
	if err := (GroupConfig{}).Validate(); err != nil {
		t.Errorf("defaults: %v", err)
	}
	if _, err := NewGroup(GroupConfig{}, 0); !errors.Is(err, ErrInvalidGroupConfig) {
		t.Errorf("0 channels: %v", err)
	}
	if _, err := NewGroup(GroupConfig{}, MaxGroupChannels+1); !errors.Is(err, ErrInvalidGroupConfig) {
		t.Errorf("too many channels: %v", err)
	}
}

// BenchmarkGroupObserve: one row of 8 channels after the warm-up, scored
// by each asset method in the same run: the vote (the default; ns/channel
// sets it beside BenchmarkObserve, one detector), PCA with the change
// detector (its default) and without it (the baseline of its cost).
func BenchmarkGroupObserve(b *testing.B) {
	const d = 8
	rng := rand.New(rand.NewPCG(9, 10))
	rows := make([][]float64, 4096)
	for i := range rows {
		f := rng.NormFloat64()
		rows[i] = make([]float64, d)
		for j := range rows[i] {
			rows[i][j] = float64(j+1)*f + rng.NormFloat64()
		}
	}
	profile, err := NewProfile(Config{})
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		new  func() (func(time.Time, []float64), error)
	}{
		{"vote", func() (func(time.Time, []float64), error) {
			v, err := NewVote(profile, d)
			return func(t time.Time, r []float64) { v.Observe(t, r) }, err
		}},
		{"pca", func() (func(time.Time, []float64), error) {
			g, err := NewGroup(GroupConfig{}, d)
			return func(t time.Time, r []float64) { g.Observe(t, r) }, err
		}},
		{"pca,change=off", func() (func(time.Time, []float64), error) {
			g, err := NewGroup(GroupConfig{ChangeWindow: -1}, d)
			return func(t time.Time, r []float64) { g.Observe(t, r) }, err
		}},
	} {
		b.Run(c.name, func(b *testing.B) {
			observe, err := c.new()
			if err != nil {
				b.Fatal(err)
			}
			ts := groupStart
			for i := 0; i < DefaultGroupWarmup; i++ {
				observe(ts, rows[i%len(rows)])
				ts = ts.Add(time.Second)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				observe(ts, rows[i%len(rows)])
				ts = ts.Add(time.Second)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/d, "ns/channel")
		})
	}
}
