package detect

import (
	"math/rand/v2"
	"testing"
	"time"
)

// The change detector marks where the asset starts to move and where it
// has settled: a step of 3σ switches it on within a window and off within
// three; a ramp back over 60 rows keeps it on and it settles within three
// windows of the ramp's end. On calm rows from the warm-up's distribution
// it switches now and then: its defaults were chosen for a changepoint
// score that prices a false switch at a ninth of a miss.
func TestGroupChangeMarksStepsAndRamps(t *testing.T) {
	for seed := uint64(1); seed <= 10; seed++ {
		rng := rand.New(rand.NewPCG(seed, 7))
		g, ts := warmGroup(t, GroupConfig{}, rng)
		w := g.cfg.ChangeWindow
		// 2,000 calm rows; at row 2000 the operating point moves along
		// the usual relations (the factor) by 3 of its σ, stays until
		// 2400, and comes back along a ramp over rows 2400-2459.
		changing := make([]bool, 2700)
		calm := 0
		for i := range changing {
			by := 0.0
			switch {
			case i >= 2000 && i < 2400:
				by = 3
			case i >= 2400 && i < 2460:
				by = 3 * float64(2460-i) / 61
			}
			row := correlatedRow(rng)
			row[0] += 10 * by
			row[1] += 5 * by
			row[2] -= 3 * by
			r := g.Observe(ts, row)
			ts = ts.Add(time.Second)
			if r.ChangeLimit <= 0 || r.Change < 0 {
				t.Fatalf("seed %d row %d: change %v limit %v", seed, i, r.Change, r.ChangeLimit)
			}
			changing[i] = r.Changing
			if i < 2000 && r.Changing {
				calm++
			}
		}
		first := func(from, to int, want bool) int {
			for i := from; i < to; i++ {
				if changing[i] == want {
					return i
				}
			}
			return -1
		}
		if calm*5 > 2000 {
			t.Errorf("seed %d: changing on %d of 2000 calm rows, want under 20%%", seed, calm)
		}
		if on := first(2000, 2000+w, true); on < 0 {
			t.Errorf("seed %d: the step at row 2000 is not marked within %d rows", seed, w)
		}
		if off := first(2000+2*w, 2000+3*w, false); off < 0 {
			t.Errorf("seed %d: the step is still changing %d rows after it", seed, 3*w)
		}
		if on := first(2400, 2460, true); on < 0 {
			t.Errorf("seed %d: the ramp over rows 2400-2459 is not marked", seed)
		}
		if off := first(2460, 2460+3*w, false); off < 0 {
			t.Errorf("seed %d: still changing %d rows after the ramp's end", seed, 3*w)
		}
	}
}

// With ChangeWindow negative, or a warm-up too short to learn its limit,
// the change detector is off.
func TestGroupChangeOff(t *testing.T) {
	for _, cfg := range []GroupConfig{{ChangeWindow: -1}, {Warmup: 30}} {
		rng := rand.New(rand.NewPCG(1, 1))
		g, ts := warmGroup(t, cfg, rng)
		for i := 0; i < 100; i++ {
			row := correlatedRow(rng)
			row[0] += 50 * float64(i%2)
			if r := g.Observe(ts, row); r.Changing || r.ChangeLimit != 0 {
				t.Fatalf("%+v row %d: changing %v limit %v, want off", cfg, i, r.Changing, r.ChangeLimit)
			}
			ts = ts.Add(time.Second)
		}
	}
}
