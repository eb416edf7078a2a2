package detect

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

func TestSeasonalHostile(t *testing.T) {
	vals := []float64{0, 1e100, -1e100, 5e-324, 1e-12, 1e50, -1e50, 3}
	for _, cfg := range []Config{{}, {Season: "auto"}, {Counter: true}, {Counter: true, Season: "auto"}} {
		for seed := uint64(0); seed < 20; seed++ {
			rng := rand.New(rand.NewPCG(seed, 9))
			d, _ := NewDetector(cfg)
			ns := int64(time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
			for i := 0; i < 15*24*60/5; i++ {
				ns += int64(5 * time.Minute)
				v := 100 + 10*math.Sin(float64(i)/288*2*math.Pi) + rng.NormFloat64()
				if cfg.Counter {
					v = float64(i) * 100
				}
				if i > 3*288 && rng.IntN(50) == 0 {
					v = vals[rng.IntN(len(vals))]
					if rng.IntN(3) == 0 {
						ns += int64(rng.IntN(1000)) * int64(time.Millisecond)
					}
				}
				r := d.Observe(time.Unix(0, ns), v)
				if name, ok := finiteResult(r); !ok {
					t.Fatalf("cfg %+v seed %d i %d v %v: %s: %+v", cfg, seed, i, v, name, r)
				}
			}
		}
	}
}

// Season auto on a series stamped before 1970 (aiops detect replay takes
// Unix seconds down to -1e11): the finder's bins had negative indexes and
// the profile of the season it chose indexed its phases with a negative
// remainder: index out of range [-11]. It chooses what it chooses after
// 1970.
func TestPre1970AutoSeason(t *testing.T) {
	for _, t0 := range []time.Time{time.Date(1969, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)} {
		d, _ := NewDetector(Config{Season: "auto"})
		for i := 0; i < 4*24*12; i++ {
			d.Observe(t0.Add(time.Duration(i)*5*time.Minute), 100+10*math.Sin(float64(i)/12*2*math.Pi))
		}
		if d.Period() != time.Hour {
			t.Errorf("from %v: season %v, want 1h", t0, d.Period())
		}
	}
}
