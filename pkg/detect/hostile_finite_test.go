package detect

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

func finiteResult(r Result) (string, bool) {
	for name, v := range map[string]float64{"Scored": r.Scored, "Score": r.Score, "Expected": r.Expected, "Lower": r.Lower, "Upper": r.Upper,
		"Deviation": r.Deviation, "Sigmas": r.Sigmas, "Peak": r.EpisodeInfo.Peak, "PeakValue": r.EpisodeInfo.PeakValue} {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return name, false
		}
	}
	return "", true
}

// Hostile values and intervals (±1e100, subnormals, -0, 1e-12 steps,
// counter wraps, 1 ns to 30 days, duplicates, steps back) never make a
// NaN or an Inf in a result, nor a panic.
func TestHostileFinite(t *testing.T) {
	vals := []float64{0, math.Copysign(0, -1), 1, -1, 1e100, -1e100, 1e-300, 5e-324, -5e-324, 1e-12, 1 + 1e-12, 1e50, -1e50, 4294967295, 3}
	steps := []int64{1, int64(time.Millisecond), int64(time.Second), int64(time.Minute), int64(time.Hour), int64(24 * time.Hour), 30 * int64(24*time.Hour), 0, -int64(time.Second)}
	cfgs := []Config{{}, {Counter: true}, {Season: "auto"}, {Counter: true, Season: "auto"}, {Forecast: ForecastConfig{Enabled: true, Threshold: 1e99}}, {Forecast: ForecastConfig{Enabled: true, Threshold: -1e99, Falling: true}}, {Seasonal: SeasonalConfig{Disabled: true}}}
	fails := 0
	for seed := uint64(0); seed < 400; seed++ {
		rng := rand.New(rand.NewPCG(seed, 7))
		cfg := cfgs[int(seed)%len(cfgs)]
		cfg.WarmUp = 1 + rng.IntN(30)
		d, err := NewDetector(cfg)
		if err != nil {
			t.Fatal(err)
		}
		ns := int64(time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
		mode := rng.IntN(4)
		for i := 0; i < 3000; i++ {
			var v float64
			switch mode {
			case 0:
				v = vals[rng.IntN(len(vals))]
			case 1: // alternate two extreme values
				if i%2 == 0 {
					v = vals[int(seed)%len(vals)]
				} else {
					v = vals[int(seed/3)%len(vals)]
				}
			case 2: // constant then a tiny move
				v = 1e6
				if i > 2000 {
					v += 1e-6 * float64(rng.IntN(3))
				}
			case 3: // counter-like ramp with wrap
				v = float64((i * 1000000007) % 4294967296)
			}
			if rng.IntN(5) == 0 {
				v = vals[rng.IntN(len(vals))]
			}
			st := steps[rng.IntN(len(steps))]
			if mode >= 2 && rng.IntN(10) > 0 {
				st = int64(time.Second) * int64(1+rng.IntN(3))
			}
			ns += st
			r := d.Observe(time.Unix(0, ns), v)
			if name, ok := finiteResult(r); !ok {
				fails++
				if fails < 10 {
					t.Errorf("seed %d cfg %+v mode %d i %d: value %v: %s not finite: %+v", seed, cfg, mode, i, v, name, r)
				}
				break
			}
			if i%500 == 0 {
				b, _ := d.MarshalBinary()
				if err := d.UnmarshalBinary(b); err != nil {
					t.Errorf("seed %d: round trip: %v", seed, err)
					break
				}
			}
		}
	}
}
