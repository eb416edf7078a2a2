// Package synth generates labelled synthetic metric series to measure the
// detectors of package detect: a daily-seasonal level with Gaussian noise and
// one injected anomaly of a chosen kind. A seed fixes every series, so the
// figures measured on them are reproducible.
package synth

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// Kind of anomaly injected.
type Kind string

// The kinds Generate knows. Clean and Missing carry no anomaly: they measure
// false alarms on normal data and on data with holes.
const (
	Clean          Kind = "clean"           // no anomaly
	Spike          Kind = "spike"           // one point 8 to 15 σ above
	Dip            Kind = "dip"             // one point 8 to 15 σ below
	LevelShift     Kind = "level_shift"     // a permanent step of 4 to 8 σ
	TrendChange    Kind = "trend_change"    // a ramp starting at 0.05 to 0.15 σ per point
	SeasonChange   Kind = "season_change"   // the daily profile inverted from then on
	VarianceChange Kind = "variance_change" // noise 3 to 5 times larger from then on
	Missing        Kind = "missing"         // NaN runs and a 6 h hole in time; no anomaly
	Counter        Kind = "counter"         // a counter with resets (normal) and a burst of rate (anomaly)
	// Excursion is a step of 4 to 8 σ that returns after 3 to 12 hours
	// (a failover, a closed valve, a degraded dependency): unlike a level
	// shift it is anomalous for as long as it lasts, and labelled so.
	Excursion Kind = "excursion"
)

// Kinds lists every kind, in a fixed order.
var Kinds = []Kind{Clean, Spike, Dip, LevelShift, TrendChange, SeasonChange, VarianceChange, Missing, Counter, Excursion}

// Series is one generated series with its labels.
type Series struct {
	Name    string
	Kind    Kind
	Times   []time.Time
	Values  []float64
	Labels  []bool // true on the points of the anomaly window
	Counter bool   // values are a cumulative counter (use detect.Config.Counter)
	Onset   int    // index where the anomaly starts; -1 if none
}

// Options shape a series. Zero fields take the defaults beside them.
type Options struct {
	Seed      uint64        // default 0 is a valid seed
	N         int           // points, default 4032 (14 days of 5 minutes)
	Step      time.Duration // default 5 minutes
	Start     time.Time     // default 2026-01-05 00:00 UTC
	Level     float64       // default 100
	Noise     float64       // σ of the noise, default 1
	Amplitude float64       // amplitude of the daily profile, default 10
	// AR is the lag-1 autocorrelation of the noise, in [0,1): real metrics
	// wander, and a detector that only ever saw white noise mistakes the
	// wander for change. The noise keeps its σ (Noise). Default 0: white.
	AR float64
}

func (o Options) withDefaults() Options {
	if o.N == 0 {
		o.N = 4032
	}
	if o.Step == 0 {
		o.Step = 5 * time.Minute
	}
	if o.Start.IsZero() {
		o.Start = time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
	}
	if o.Level == 0 {
		o.Level = 100
	}
	if o.Noise == 0 {
		o.Noise = 1
	}
	if o.Amplitude == 0 {
		o.Amplitude = 10
	}
	return o
}

// window is how many points after the onset a persistent anomaly is
// labelled: a detector is credited for finding the change, not for
// flagging the new normal forever.
const window = 36 // 3 hours at 5 minutes

// Generate returns a series of the kind, deterministic in opts.
func Generate(kind Kind, opts Options) (Series, error) {
	o := opts.withDefaults()
	if o.N < 600 {
		return Series{}, fmt.Errorf("synth: N %d is below 600 points", o.N)
	}
	if !(o.AR >= 0 && o.AR < 1) {
		return Series{}, fmt.Errorf("synth: AR %v is not in [0,1)", o.AR)
	}
	innov := math.Sqrt(1 - o.AR*o.AR)
	var prevNoise float64
	rng := rand.New(rand.NewPCG(o.Seed, uint64(len(kind))*0x9e3779b97f4a7c15))
	s := Series{
		Name: fmt.Sprintf("%s-%d", kind, o.Seed), Kind: kind, Onset: -1,
		Times: make([]time.Time, o.N), Values: make([]float64, o.N), Labels: make([]bool, o.N),
	}
	day := 24 * time.Hour
	// the anomaly lands in the second half, after the seasonal profile is learnt
	onset := o.N/2 + rng.IntN(o.N/2-window-10)
	profile := func(i int, t time.Time) float64 {
		ph := 2 * math.Pi * float64(t.Sub(o.Start)%day) / float64(day)
		return o.Amplitude * math.Sin(ph)
	}
	sign := 1.0
	if rng.IntN(2) == 0 {
		sign = -1
	}
	shift := (4 + 4*rng.Float64()) * o.Noise
	slope := (0.05 + 0.1*rng.Float64()) * o.Noise
	varFactor := 3 + 2*rng.Float64()
	spike := (8 + 7*rng.Float64()) * o.Noise
	excursionEnd := onset
	if kind == Excursion { // drawn last, so the other kinds keep their series
		excursionEnd = min(onset+window+rng.IntN(3*window+1), o.N-10)
	}
	t := o.Start
	for i := 0; i < o.N; i++ {
		if kind == Missing && i == o.N/3 {
			t = t.Add(6 * time.Hour)
		}
		s.Times[i] = t
		noise := rng.NormFloat64() * o.Noise
		if o.AR > 0 {
			noise = o.AR*prevNoise + innov*noise
			prevNoise = noise
		}
		season := profile(i, t)
		v := o.Level + season
		switch kind {
		case Spike:
			if i == onset {
				v += spike
			}
		case Dip:
			if i == onset {
				v -= spike
			}
		case LevelShift:
			if i >= onset {
				v += sign * shift
			}
		case Excursion:
			if i >= onset && i < excursionEnd {
				v += sign * shift
			}
		case TrendChange:
			if i >= onset {
				v += sign * slope * float64(i-onset)
			}
		case SeasonChange:
			if i >= onset {
				v -= 2 * season
			}
		case VarianceChange:
			if i >= onset {
				noise *= varFactor
			}
		case Counter:
			// the rate: 5/s on average, bursting 3× for 6 points
			v = 5 + season/4
			if i >= onset && i < onset+6 {
				v *= 3
			}
		}
		v += noise
		if kind == Missing && (i%500 >= 480) {
			v = math.NaN()
		}
		s.Values[i] = v
		t = t.Add(o.Step)
	}
	switch kind {
	case Spike, Dip:
		s.Onset = onset
		s.Labels[onset] = true
	case LevelShift, TrendChange, VarianceChange:
		s.Onset = onset
		for i := onset; i < onset+window; i++ {
			s.Labels[i] = true
		}
	case Excursion:
		s.Onset = onset
		for i := onset; i < excursionEnd; i++ {
			s.Labels[i] = true
		}
	case SeasonChange:
		// an inverted profile departs from the old one gradually; label
		// the first day after the change
		s.Onset = onset
		for i := onset; i < o.N && i < onset+int(day/o.Step); i++ {
			s.Labels[i] = true
		}
	case Counter:
		s.Onset = onset
		for i := onset; i < onset+6; i++ {
			s.Labels[i] = true
		}
		s.Counter = true
		total := 1e6 * rng.Float64()
		resets := map[int]bool{o.N / 4: true, o.N / 3: true}
		for i := range s.Values {
			rate := math.Max(s.Values[i], 0)
			if resets[i] {
				total = 0
			}
			total += rate * o.Step.Seconds()
			s.Values[i] = math.Round(total)
		}
	}
	return s, nil
}

// Suite returns seeds series of every kind, seeds 1..seeds.
func Suite(seeds int, opts Options) ([]Series, error) {
	var out []Series
	for seed := 1; seed <= seeds; seed++ {
		for _, k := range Kinds {
			o := opts
			o.Seed = uint64(seed)
			s, err := Generate(k, o)
			if err != nil {
				return nil, err
			}
			out = append(out, s)
		}
	}
	return out, nil
}
