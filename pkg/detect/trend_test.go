package detect

import (
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/aiops-dev/aiops/pkg/detect/synth"
)

func pushAll(w *window, xs ...float64) {
	for _, x := range xs {
		w.push(x)
	}
}

// TestWindowSlope: a line is fitted exactly, in arrival order across the
// ring's wrap; a spike moves the slope only a clipped step; no slope until
// the window is full and after a break until it is refilled.
func TestWindowSlope(t *testing.T) {
	w := newWindow(8)
	for i := 0; i < 7; i++ {
		w.push(10 + 0.5*float64(i))
	}
	if _, _, _, ok := w.slope(w.median(), 1); ok {
		t.Fatal("slope of a window not yet full")
	}
	for i := 7; i < 13; i++ { // wraps the ring
		w.push(10 + 0.5*float64(i))
	}
	sl, se, end, ok := w.slope(w.median(), 1)
	if !ok || math.Abs(sl-0.5) > 1e-12 || se > 1e-9 || math.Abs(end-16) > 1e-9 {
		t.Fatalf("line 10+0.5i: slope %v se %v end %v ok %v, want 0.5, 0, 16", sl, se, end, ok)
	}

	w = newWindow(8)
	pushAll(&w, 0, 0, 0, 0, 0, 0, 0, 1000)
	med := w.median()
	sl, _, _, _ = w.slope(med, 1)
	// clipped to med+3: the spike counts as 3, slope 3·3.5/42 = 0.25
	if math.Abs(sl-0.25) > 1e-12 {
		t.Errorf("slope with a 1000 spike clipped to 3 scales: %v, want 0.25", sl)
	}

	w.breakSlope()
	pushAll(&w, 1, 2, 3, 4, 5, 6, 7)
	if _, _, _, ok := w.slope(w.median(), 1); ok {
		t.Error("slope across a gap: 7 values since the break in a window of 8")
	}
	w.push(8)
	if sl, _, _, ok := w.slope(w.median(), 10); !ok || math.Abs(sl-1) > 1e-12 {
		t.Errorf("refilled window 1..8: slope %v ok %v, want 1", sl, ok)
	}
}

// seasonalRamp: 5-minute points of 100 + a 10σ daily sine + white noise
// σ = 1, and from onset on a ramp of slope σ per point.
func seasonalRamp(seed uint64, n, onset int, slope float64) ([]time.Time, []float64) {
	rng := rand.New(rand.NewPCG(seed, 7))
	ts := make([]time.Time, n)
	vs := make([]float64, n)
	for i := range vs {
		ts[i] = at(i, 5*time.Minute)
		vs[i] = 100 + 10*math.Sin(2*math.Pi*float64(i)/288) + rng.NormFloat64()
		if i >= onset {
			vs[i] += slope * float64(i-onset)
		}
	}
	return ts, vs
}

// firstTrend feeds the series to a default detector and returns the first
// trend alarm (score ≥ 0.5) and its result (-1 if none).
func firstTrend(t *testing.T, ts []time.Time, vs []float64) (int, Result) {
	t.Helper()
	d := mustDetector(t, Config{})
	for i, v := range vs {
		if r := d.Observe(ts[i], v); r.Scores[KindTrend] >= 0.5 {
			return i, r
		}
	}
	return -1, Result{}
}

// TestTrendFindsSteepRamp: a ramp of 0.15σ per point (up or down) after a
// week of a daily season with white noise is found inside its 3-hour label
// (36 points) plus the evaluator's tolerance of 6 in most cases, never
// before it, and explained against the slow baseline (which has not
// followed the ramp) with the deviation on the ramp's side. (Measured: 15 of 20 seeds; 0 of 20 at
// 0.1σ per point; 20 of 20 at 0.2σ per point after 5 days; after 3 days
// the profile is still too rough for any.)
func TestTrendFindsSteepRamp(t *testing.T) {
	const onset = 7 * 288
	found := 0
	for seed := uint64(1); seed <= 20; seed++ {
		sign := 1.0
		if seed%2 == 0 {
			sign = -1
		}
		ts, vs := seasonalRamp(seed, onset+100, onset, sign*0.15)
		i, r := firstTrend(t, ts, vs)
		switch {
		case i < 0:
			t.Logf("seed %d: no trend alarm", seed)
		case i < onset:
			t.Errorf("seed %d: trend alarm at %d, before the ramp at %d", seed, i, onset)
		case i <= onset+42:
			found++
			// the expected value is the slow baseline, which has not
			// followed the ramp: the season's value before it
			pre := 100 + 10*math.Sin(2*math.Pi*float64(i)/288)
			if r.Detector == KindTrend && (sign*r.Deviation <= 0 || math.Abs(r.Expected-pre) > 1.5) {
				t.Errorf("seed %d: %.2f reported as %+.2f from expected %.2f (pre-ramp %.2f) on a ramp of sign %v", seed, r.Scored, r.Deviation, r.Expected, pre, sign)
			}
		default:
			t.Logf("seed %d: trend alarm %d points after the onset", seed, i-onset)
		}
	}
	if found < 12 {
		t.Errorf("found %d of 20 ramps of 0.15σ/point within 42 points, want ≥ 12", found)
	}
}

// TestTrendQuietOnWander: no trend alarm on anomaly-free series, white or
// with AR(0.6) noise (whose 32-point slopes are often significant against
// white noise), nor on the white one with holes, whose profile is worst
// where data was missing. (With holes and AR(0.6) noise together, 4 of 20
// seeds get a trend alarm where the profile is off: QUALITY.md.)
func TestTrendQuietOnWander(t *testing.T) {
	for _, kind := range []synth.Kind{synth.Clean, synth.Missing} {
		for _, ar := range []float64{0, 0.6} {
			if kind == synth.Missing && ar > 0 {
				continue
			}
			for seed := uint64(1); seed <= 20; seed++ {
				s, err := synth.Generate(kind, synth.Options{Seed: seed, AR: ar})
				if err != nil {
					t.Fatal(err)
				}
				if i, _ := firstTrend(t, s.Times, s.Values); i >= 0 {
					t.Errorf("%s AR %v seed %d: trend alarm at %d", kind, ar, seed, i)
				}
			}
		}
	}
}

// TestTrendNeedsLearntSeason: the slope test is silent for the first two
// periods (a season not yet removed is a slope), and needs a full window
// after a gap.
func TestTrendNeedsLearntSeason(t *testing.T) {
	ts, vs := seasonalRamp(1, 500, 100, 0.3)
	if i, _ := firstTrend(t, ts, vs); i >= 0 {
		t.Errorf("trend alarm at %d, inside the first two periods", i)
	}

	d := mustDetector(t, Config{})
	ts, vs = seasonalRamp(2, 3*288, 3*288, 0)
	for i, v := range vs {
		d.Observe(ts[i], v)
	}
	if d.win.fresh != uint8(len(d.win.vals)) {
		t.Fatalf("%d values since a gap, want the window's %d", d.win.fresh, len(d.win.vals))
	}
	gap := ts[len(ts)-1].Add(6 * time.Hour)
	for i := 0; i < 31; i++ {
		r := d.Observe(gap.Add(time.Duration(i)*5*time.Minute), 100+5*float64(i))
		if i == 0 && r.Flags&FlagGap == 0 {
			t.Fatal("6 hours not flagged as a gap")
		}
		if r.Scores[KindTrend] != 0 {
			t.Fatalf("trend score %v %d points after a gap, with the window not yet refilled", r.Scores[KindTrend], i)
		}
	}
}

// TestTrendStateRoundTrip: the trend CUSUM and the count since the last gap
// survive a snapshot; a version 2 snapshot restores with the CUSUM at 0;
// impossible values are refused.
func TestTrendStateRoundTrip(t *testing.T) {
	const onset = 5 * 288
	ts, vs := seasonalRamp(3, onset+60, onset, 0.2)
	a := mustDetector(t, Config{})
	for i := 0; i < onset+30; i++ {
		a.Observe(ts[i], vs[i])
	}
	if a.win.slopeCu == 0 {
		t.Fatal("trend CUSUM at 0 30 points into a steep ramp")
	}
	snap, err := a.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	b := mustDetector(t, Config{})
	if err := b.UnmarshalBinary(snap); err != nil {
		t.Fatal(err)
	}
	for i := onset + 30; i < len(vs); i++ {
		if ra, rb := a.Observe(ts[i], vs[i]), b.Observe(ts[i], vs[i]); ra != rb {
			t.Fatalf("point %d after restore: %+v != %+v", i, ra, rb)
		}
	}

	v2 := slices.Clone(snap[:len(snap)-seasonBytes-episodeBytes-trendBytes])
	v2[2] = 2
	c := mustDetector(t, Config{})
	if err := c.UnmarshalBinary(v2); err != nil {
		t.Fatalf("version 2 snapshot: %v", err)
	}
	if c.win.slopeCu != 0 || c.win.fresh != c.win.n {
		t.Errorf("version 2 snapshot restored trend CUSUM %v, %d values since a gap of %d", c.win.slopeCu, c.win.fresh, c.win.n)
	}

	for name, mutate := range map[string]func([]byte){
		"NaN CUSUM": func(b []byte) {
			binary.LittleEndian.PutUint32(b[len(b)-seasonBytes-episodeBytes-trendBytes:], math.Float32bits(float32(math.NaN())))
		},
		"CUSUM past twice its limit": func(b []byte) {
			binary.LittleEndian.PutUint32(b[len(b)-seasonBytes-episodeBytes-trendBytes:], math.Float32bits(2*trendLimit+1))
		},
		"more values since a gap than the window holds": func(b []byte) { b[len(b)-seasonBytes-episodeBytes-1] = 200 },
	} {
		bad := slices.Clone(snap)
		mutate(bad)
		if err := mustDetector(t, Config{}).UnmarshalBinary(bad); !errors.Is(err, ErrStateCorrupt) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
