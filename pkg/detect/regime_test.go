package detect

import (
	"encoding/binary"
	"errors"
	"math"
	"slices"
	"testing"
	"time"
)

// excursion returns noise of σ 1 with a step of size from start to end.
func excursion(seed uint64, n, start, end int, size float64) []float64 {
	v := noise(seed, n, 1)
	for i := start; i < end && i < n; i++ {
		v[i] += size
	}
	return v
}

// TestRegimeKeepsExcursionFlagged: a 6σ step that lasts 300 points (2.5
// hours, inside regimeMaxDuration) is
// flagged for nearly all of them (the fast baselines alone absorb it within
// a few dozen), and the regime ends soon after the series returns. The
// return is itself a step the fast baselines flag for a while, so the
// quiet is checked after that.
func TestRegimeKeepsExcursionFlagged(t *testing.T) {
	const start, end = 500, 800
	for seed := uint64(1); seed <= 5; seed++ {
		v := excursion(seed, 1100, start, end, 6)
		d := mustDetector(t, Config{})
		inside, after := 0, 0
		for i, x := range v {
			r := d.Observe(at(i, 30*time.Second), x)
			if r.Anomaly && i >= start && i < end {
				inside++
			}
			// the return is a level shift too and may start a regime of its
			// own, which ends regimeRelease points later
			if i == end+40 && d.regN != 0 {
				t.Errorf("seed %d: regime still running 40 points after the return", seed)
			}
			if r.Anomaly && i >= end+60 {
				after++
			}
		}
		if frac := float64(inside) / (end - start); frac < 0.9 {
			t.Errorf("seed %d: %.2f of the excursion flagged, want ≥ 0.9", seed, frac)
		}
		if after > 2 {
			t.Errorf("seed %d: %d alarms from 60 points after the return on", seed, after)
		}
	}
}

// TestNoRegimeMeansExcursionFades pins why the regime exists: without the
// level-shift CUSUM (which starts it) the same excursion fades within a
// few dozen points.
func TestNoRegimeMeansExcursionFades(t *testing.T) {
	v := excursion(1, 1100, 500, 800, 6)
	d := mustDetector(t, Config{CUSUM: CUSUMConfig{Disabled: true}})
	inside := 0
	for i, x := range v {
		if r := d.Observe(at(i, 30*time.Second), x); r.Anomaly && i >= 500 && i < 800 {
			inside++
		}
	}
	if inside > 150 {
		t.Errorf("%d of 300 points flagged without the regime; the regime test proves nothing", inside)
	}
}

// TestRegimeEndsOnLastingShift: an 8σ step that never returns is flagged
// while it is news and accepted after regimeMaxDuration.
func TestRegimeEndsOnLastingShift(t *testing.T) {
	const start = 100
	maxPoints := int(regimeMaxDuration / 60)
	v := excursion(2, start+maxPoints+300, start, math.MaxInt, 8)
	d := mustDetector(t, Config{})
	late, accepted := 0, 0
	for i, x := range v {
		r := d.Observe(at(i, time.Minute), x)
		if r.Anomaly && i >= start+maxPoints-100 && i < start+maxPoints-10 {
			late++
		}
		if r.Anomaly && i >= start+maxPoints+10 {
			accepted++
		}
	}
	if late < 80 {
		t.Errorf("%d of the 90 points before the regime's end flagged, want ≥ 80", late)
	}
	if accepted > 0 {
		t.Errorf("%d alarms after the regime's maximum duration", accepted)
	}
}

// TestRegimeStateRoundTrip: a snapshot taken during a regime restores it,
// a version 1 snapshot (no regime fields) restores with none running, and
// a regime with no scale is refused.
func TestRegimeStateRoundTrip(t *testing.T) {
	v := excursion(4, 900, 400, 800, 6)
	a := mustDetector(t, Config{})
	for i := 0; i < 600; i++ {
		a.Observe(at(i, 30*time.Second), v[i])
	}
	if a.regN == 0 {
		t.Fatal("no regime running 200 points into the excursion")
	}
	snap, err := a.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	b := mustDetector(t, Config{})
	if err := b.UnmarshalBinary(snap); err != nil {
		t.Fatal(err)
	}
	for i := 600; i < len(v); i++ {
		if ra, rb := a.Observe(at(i, 30*time.Second), v[i]), b.Observe(at(i, 30*time.Second), v[i]); ra != rb {
			t.Fatalf("point %d after restore: %+v != %+v", i, ra, rb)
		}
	}

	v1 := slices.Clone(snap[:len(snap)-seasonBytes-episodeBytes-trendBytes-regimeBytes])
	v1[2] = 1
	c := mustDetector(t, Config{})
	if err := c.UnmarshalBinary(v1); err != nil {
		t.Fatalf("version 1 snapshot: %v", err)
	}
	if c.regN != 0 || c.Observations() != 600 {
		t.Errorf("version 1 snapshot restored regime %d, %d observations", c.regN, c.Observations())
	}
	if err := c.UnmarshalBinary(snap[:len(snap)-seasonBytes-episodeBytes-trendBytes]); !errors.Is(err, ErrStateCorrupt) {
		t.Errorf("version 3 snapshot without its trend fields: %v", err)
	}

	bad := slices.Clone(snap)
	binary.LittleEndian.PutUint32(bad[len(bad)-seasonBytes-episodeBytes-trendBytes-regimeBytes+4:], math.Float32bits(0))
	if err := mustDetector(t, Config{}).UnmarshalBinary(bad); !errors.Is(err, ErrStateCorrupt) {
		t.Errorf("regime with scale 0: %v", err)
	}
}

// TestRegimeExplainsAgainstFrozenBaseline: deep in an excursion, when the
// regime holds the alarm, the result's band is the pre-step baseline, so
// the value lies outside the band it is reported against.
func TestRegimeExplainsAgainstFrozenBaseline(t *testing.T) {
	v := excursion(3, 800, 400, 700, 8)
	d := mustDetector(t, Config{})
	held := 0
	for i, x := range v {
		r := d.Observe(at(i, 30*time.Second), x)
		if i < 500 || i >= 700 || !r.Anomaly || r.Detector != KindLevelShift {
			continue
		}
		held++
		if math.Abs(r.Expected-100) > 1 || !(r.Scored > r.Upper) || r.Sigmas < regimeZ {
			t.Fatalf("point %d: value %.2f reported against expected %.2f band [%.2f, %.2f] at %.1f scales; want the pre-step baseline near 100",
				i, r.Scored, r.Expected, r.Lower, r.Upper, r.Sigmas)
		}
	}
	if held < 150 {
		t.Errorf("the regime held %d of the 200 points from 100 into the excursion, want ≥ 150", held)
	}
}

// TestGapEndsRegime: a gap ends a regime as it restarts the CUSUMs, since
// the frozen baseline is as stale as their evidence: a lasting shift with
// holes in it (every hole used to start a new alarm episode, the regime
// still holding the shift) is flagged again only if the CUSUM finds it
// anew.
func TestGapEndsRegime(t *testing.T) {
	v := excursion(2, 900, 400, 900, 8)
	d := mustDetector(t, Config{})
	for i := 0; i < 500; i++ {
		d.Observe(at(i, 30*time.Second), v[i])
	}
	if d.regN == 0 {
		t.Fatal("no regime running 100 points into an 8σ shift")
	}
	// 20 minutes without data: a gap at 10 × the 30 s interval
	for i := 540; i < len(v); i++ {
		r := d.Observe(at(i, 30*time.Second), v[i])
		if i == 540 && r.Flags&FlagGap == 0 {
			t.Fatal("20 minutes not flagged as a gap")
		}
		if i == 540 && d.regN != 0 {
			t.Fatalf("regime still running (%d points) after the gap", d.regN)
		}
		if r.Anomaly {
			t.Fatalf("point %d, %d after the gap: flagged by %v (score %.2f) though the shift was learnt before it", i, i-540, r.Detector, r.Score)
		}
	}
}
