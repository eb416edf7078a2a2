package detect

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

func TestGroupHostileFinite(t *testing.T) {
	vals := []float64{0, math.Copysign(0, -1), 1, -1, 1e100, -1e100, 1e-300, 5e-324, 1e-12, 1e50, math.NaN(), math.Inf(1), 1e300}
	for seed := uint64(0); seed < 200; seed++ {
		rng := rand.New(rand.NewPCG(seed, 5))
		d := 1 + rng.IntN(6)
		g, err := NewGroup(GroupConfig{Warmup: 10 + rng.IntN(50), Memory: 10 + rng.IntN(100), LevelMemory: []int{0, -1, 10}[rng.IntN(3)]}, d)
		if err != nil {
			t.Fatal(err)
		}
		base := make([]float64, d)
		for j := range base {
			base[j] = vals[rng.IntN(len(vals))]
			if !validValue(base[j]) {
				base[j] = 1
			}
		}
		t0 := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
		for i := 0; i < 2000; i++ {
			row := make([]float64, d)
			for j := range row {
				row[j] = base[j]
				if rng.IntN(4) == 0 {
					row[j] = vals[rng.IntN(len(vals))]
				}
			}
			r := g.Observe(t0.Add(time.Duration(i)*time.Second), row)
			for name, v := range map[string]float64{"score": r.Score, "t2": r.T2, "q": r.Q, "t2lim": r.T2Limit, "qlim": r.QLimit, "sigmas": r.Sigmas, "change": r.Change, "changelim": r.ChangeLimit} {
				if math.IsNaN(v) || math.IsInf(v, 0) {
					t.Fatalf("seed %d d %d row %d %v: %s = %v", seed, d, i, row, name, v)
				}
			}
			for j, e := range r.Expected {
				if math.IsNaN(e) || math.IsInf(e, 0) {
					t.Fatalf("seed %d row %d: expected[%d] = %v", seed, i, j, e)
				}
			}
			if i%300 == 0 {
				b, _ := g.MarshalBinary()
				g2, _ := NewGroup(g.cfg, d)
				if err := g2.UnmarshalBinary(b); err != nil {
					t.Fatalf("seed %d: round trip: %v", seed, err)
				}
			}
		}
	}
}
