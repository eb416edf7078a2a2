package synth

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// GroupKind is the kind of fault injected into a generated asset.
type GroupKind string

// The faults GenerateGroup knows. Each lasts 100 to 400 rows and ends (the
// asset returns to normal), labelled for as long as it lasts; magnitudes
// are in units of a channel's own standard deviation and small enough that
// no single channel need leave its band.
const (
	GroupClean GroupKind = "clean" // no fault
	// GroupShift moves the asset's operating point along its usual
	// relations (a latent factor offset by 2 to 4 of its σ): every loaded
	// channel moves, together, as they always do, but further.
	GroupShift GroupKind = "shift"
	// GroupBreak offsets one channel by 1.5 to 3 σ against the others (a
	// sensor bias, a leak between two gauges): a broken relation.
	GroupBreak GroupKind = "break"
	// GroupVariance multiplies the noise of two channels by 2.5 to 4
	// (vibration, cavitation).
	GroupVariance GroupKind = "variance"
	// GroupDrift ramps one channel away from the others, reaching 3 to 5 σ
	// at the fault's end (a fouling sensor, a slow leak).
	GroupDrift GroupKind = "drift"
)

// GroupKinds lists every group kind, in a fixed order.
var GroupKinds = []GroupKind{GroupClean, GroupShift, GroupBreak, GroupVariance, GroupDrift}

// Group is a generated asset: several channels sharing latent factors.
type Group struct {
	Name     string
	Kind     GroupKind
	Channels []string
	Times    []time.Time
	Values   [][]float64 // Values[c][i]: channel c at row i
	Labels   []bool
	// Changepoints marks where the asset's behaviour starts or stops
	// changing: the fault's first row and the first row after it, and
	// with a transition also where the move in ends and the move back
	// starts (SKAB marks the same four).
	Changepoints []bool
	Onset        int // first faulty row; -1 if none
}

// GroupOptions shape a generated asset. Zero fields take the defaults.
type GroupOptions struct {
	Seed     uint64
	Channels int           // default 8
	Factors  int           // latent factors, default 3
	Rows     int           // default 1200
	Clean    int           // leading rows without a fault, default 450
	Step     time.Duration // default 1 s
	Start    time.Time     // default 2026-01-05 00:00 UTC
	// AR is the lag-1 autocorrelation of each channel's own noise; the
	// factors wander more slowly (0.95). Default 0.5.
	AR float64
	// Walk is the step σ of a random walk each factor's operating point
	// takes per row (in units of the factor's σ): over hours an asset's
	// normal moves. Default 0.01; negative for none.
	Walk float64
	// Trend makes about a third of the channels drift on their own (a
	// warming motor, a filling disk): each of them by up to Trend of its σ
	// per row, the same all along. Default 0: none.
	Trend float64
	// Magnitude multiplies the fault's size (default 1): tests that need a
	// fault every detector must see use several times the usual.
	Magnitude float64
	// Transition, when positive (10 to 50), makes a fault come in and go
	// out over 10 to Transition rows each, a ramp (a valve takes seconds
	// to close, a pump to spin down), not a step. Default 0: steps.
	Transition int
}

func (o GroupOptions) withDefaults() GroupOptions {
	if o.Channels == 0 {
		o.Channels = 8
	}
	if o.Factors == 0 {
		o.Factors = 3
	}
	if o.Rows == 0 {
		o.Rows = 1200
	}
	if o.Clean == 0 {
		o.Clean = 450
	}
	if o.Step == 0 {
		o.Step = time.Second
	}
	if o.Start.IsZero() {
		o.Start = time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
	}
	if o.AR == 0 {
		o.AR = 0.5
	}
	if o.Walk == 0 {
		o.Walk = 0.01
	}
	if o.Magnitude == 0 {
		o.Magnitude = 1
	}
	return o
}

// GenerateGroup returns an asset of o.Channels channels driven by
// o.Factors slowly wandering latent factors (one with a slow operating
// cycle) plus each channel's own autocorrelated noise, with one fault of
// kind k. The same kind, options and seed give the same asset.
func GenerateGroup(k GroupKind, o GroupOptions) (Group, error) {
	o = o.withDefaults()
	known := false
	for _, kk := range GroupKinds {
		known = known || kk == k
	}
	if !known {
		return Group{}, fmt.Errorf("synth: unknown group kind %q", k)
	}
	if o.Channels < 2 || o.Factors < 1 || o.Factors >= o.Channels || o.Rows < o.Clean+500 || !(o.AR >= 0 && o.AR < 1) || o.Transition < 0 || o.Transition > 50 || (o.Transition > 0 && o.Transition < 10) {
		return Group{}, fmt.Errorf("synth: group options out of range: %+v", o)
	}
	rng := rand.New(rand.NewPCG(o.Seed, 0x67726f7570))
	d, f, n := o.Channels, o.Factors, o.Rows
	g := Group{Name: fmt.Sprintf("%s-%d", k, o.Seed), Kind: k, Onset: -1,
		Channels: make([]string, d), Times: make([]time.Time, n), Values: make([][]float64, d), Labels: make([]bool, n), Changepoints: make([]bool, n)}
	// Loadings: each channel depends on the factors with random weights,
	// its own noise making a quarter to a half of its variance.
	load := make([][]float64, d)
	own := make([]float64, d)
	level, unit := make([]float64, d), make([]float64, d)
	for c := range d {
		g.Channels[c] = fmt.Sprintf("ch%d", c)
		g.Values[c] = make([]float64, n)
		load[c] = make([]float64, f)
		var v float64
		for i := range f {
			load[c][i] = rng.NormFloat64()
			v += load[c][i] * load[c][i]
		}
		share := 0.25 + 0.25*rng.Float64()
		own[c] = math.Sqrt(v * share / (1 - share))
		// marginal σ of the channel before scaling: factors have σ 1
		level[c] = 10 + 100*rng.Float64()
		unit[c] = (0.5 + 5*rng.Float64()) / math.Sqrt(v+own[c]*own[c])
	}
	trend := make([]float64, d)
	for c := range trend {
		if o.Trend > 0 && rng.IntN(3) == 0 {
			trend[c] = o.Trend * (2*rng.Float64() - 1)
		}
	}
	sigma := func(c int) float64 { return unit[c] * math.Sqrt(sq(load[c])+own[c]*own[c]) }

	onset, length := -1, 0
	if k != GroupClean {
		length = 100 + rng.IntN(301)
		onset = o.Clean + 50 + rng.IntN(n-o.Clean-50-length-50)
		g.Onset = onset
	}
	ch := rng.IntN(d)
	ch2 := (ch + 1 + rng.IntN(d-1)) % d
	factor := rng.IntN(f)
	mag := 0.0
	switch k {
	case GroupShift:
		mag = (2 + 2*rng.Float64()) * sign(rng)
	case GroupBreak:
		mag = (1.5 + 1.5*rng.Float64()) * sign(rng)
	case GroupVariance:
		mag = 2.5 + 1.5*rng.Float64()
	case GroupDrift:
		mag = (3 + 2*rng.Float64()) * sign(rng)
	}
	if k == GroupVariance {
		mag = 1 + (mag-1)*o.Magnitude
	} else {
		mag *= o.Magnitude
	}
	// The fault's weight over its rows: 1 throughout for steps, else a
	// ramp in and a ramp out (drawn only then, so that assets without
	// transitions are the same as before the option).
	rampIn, rampOut := 0, 0
	if onset >= 0 {
		if o.Transition > 0 {
			rampIn, rampOut = 10+rng.IntN(o.Transition-9), 10+rng.IntN(o.Transition-9)
		}
		for _, i := range []int{onset, onset + rampIn, onset + length - rampOut, onset + length} {
			g.Changepoints[i] = true
		}
	}
	weight := func(i int) float64 {
		switch {
		case i < onset || i >= onset+length:
			return 0
		case i < onset+rampIn:
			return float64(i-onset+1) / float64(rampIn+1)
		case i >= onset+length-rampOut:
			return float64(onset+length-i) / float64(rampOut+1)
		}
		return 1
	}

	const factorAR = 0.95
	fac, walk := make([]float64, f), make([]float64, f)
	noise := make([]float64, d)
	drive := make([]float64, f)
	cycle := 120 + 180*rng.Float64() // the operating cycle's period in rows
	for i := range n {
		g.Times[i] = o.Start.Add(time.Duration(i) * o.Step)
		in := onset >= 0 && i >= onset && i < onset+length
		g.Labels[i] = in
		for j := range fac {
			fac[j] = factorAR*fac[j] + math.Sqrt(1-factorAR*factorAR)*rng.NormFloat64()
		}
		for j := range fac {
			if o.Walk > 0 {
				walk[j] += o.Walk * rng.NormFloat64()
			}
			drive[j] = fac[j] + walk[j]
		}
		drive[0] = 0.7*drive[0] + math.Sin(2*math.Pi*float64(i)/cycle)
		w := weight(i)
		if in && k == GroupShift {
			drive[factor] += mag * w
		}
		for c := range d {
			noise[c] = o.AR*noise[c] + math.Sqrt(1-o.AR*o.AR)*rng.NormFloat64()
			e := noise[c]
			if in && k == GroupVariance && (c == ch || c == ch2) {
				e *= 1 + (mag-1)*w
			}
			var x float64
			for j := range f {
				x += load[c][j] * drive[j]
			}
			v := level[c] + unit[c]*(x+own[c]*e) + trend[c]*float64(i)*sigma(c)
			if in && c == ch {
				switch k {
				case GroupBreak:
					v += mag * sigma(c) * w
				case GroupDrift:
					v += mag * sigma(c) * float64(i-onset+1) / float64(length) * w
				}
			}
			g.Values[c][i] = v
		}
	}
	return g, nil
}

func sq(xs []float64) (s float64) {
	for _, x := range xs {
		s += x * x
	}
	return s
}

func sign(rng *rand.Rand) float64 {
	if rng.IntN(2) == 0 {
		return -1
	}
	return 1
}
