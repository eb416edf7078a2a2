package synth

import (
	"math"
	"reflect"
	"testing"
)

func TestDeterministicAndLabelled(t *testing.T) {
	for _, k := range Kinds {
		a, err := Generate(k, Options{Seed: 3})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := Generate(k, Options{Seed: 3})
		c, _ := Generate(k, Options{Seed: 4})
		if !reflect.DeepEqual(a.Labels, b.Labels) || !sameFloats(a.Values, b.Values) {
			t.Errorf("%s: same seed, different series", k)
		}
		if sameFloats(a.Values, c.Values) {
			t.Errorf("%s: seeds 3 and 4 give the same series", k)
		}
		labelled := 0
		for _, l := range a.Labels {
			if l {
				labelled++
			}
		}
		switch k {
		case Clean, Missing:
			if labelled != 0 || a.Onset != -1 {
				t.Errorf("%s: %d labelled points, onset %d", k, labelled, a.Onset)
			}
		default:
			if labelled == 0 || !a.Labels[a.Onset] || a.Onset < len(a.Values)/2 {
				t.Errorf("%s: %d labelled points, onset %d", k, labelled, a.Onset)
			}
		}
		for i := 1; i < len(a.Times); i++ {
			if !a.Times[i].After(a.Times[i-1]) {
				t.Fatalf("%s: time not increasing at %d", k, i)
			}
		}
	}
	m, _ := Generate(Missing, Options{Seed: 1})
	nan := 0
	for _, v := range m.Values {
		if math.IsNaN(v) {
			nan++
		}
	}
	if nan == 0 || m.Times[len(m.Times)/3].Sub(m.Times[len(m.Times)/3-1]) < 6*3600e9 {
		t.Errorf("missing: %d NaN, no 6 h hole", nan)
	}
	cn, _ := Generate(Counter, Options{Seed: 1})
	resets := 0
	for i := 1; i < len(cn.Values); i++ {
		if cn.Values[i] < cn.Values[i-1] {
			resets++
		}
	}
	if !cn.Counter || resets != 2 {
		t.Errorf("counter: %d resets, want 2", resets)
	}
	if _, err := Generate(Spike, Options{N: 10}); err == nil {
		t.Error("N=10 accepted")
	}
}

func sameFloats(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] && !(math.IsNaN(a[i]) && math.IsNaN(b[i])) {
			return false
		}
	}
	return true
}

// AR noise has the asked lag-1 autocorrelation and keeps its σ, so a suite
// with wander differs from the white one only in how the noise moves.
func TestARNoise(t *testing.T) {
	for _, ar := range []float64{0, 0.6} {
		// Amplitude 0 means the default 10; a negligible one leaves the noise alone
		s, err := Generate(Clean, Options{Seed: 1, N: 20000, AR: ar, Amplitude: 1e-300})
		if err != nil {
			t.Fatal(err)
		}
		var mean, v, c float64
		for _, x := range s.Values {
			mean += x
		}
		mean /= float64(len(s.Values))
		for i, x := range s.Values {
			d := x - mean
			v += d * d
			if i > 0 {
				c += d * (s.Values[i-1] - mean)
			}
		}
		rho, sd := c/v, math.Sqrt(v/float64(len(s.Values)))
		if math.Abs(rho-ar) > 0.03 || math.Abs(sd-1) > 0.05 {
			t.Errorf("AR %v: lag-1 autocorrelation %.3f, σ %.3f; want %v and 1", ar, rho, sd, ar)
		}
	}
	for _, bad := range []float64{-0.1, 1, math.NaN()} {
		if _, err := Generate(Clean, Options{AR: bad}); err == nil {
			t.Errorf("AR %v accepted", bad)
		}
	}
}

// Changepoints mark a fault's start and the row after its end, and with a
// transition also where the move in ends and the move back starts; the
// labels cover the fault, transitions included.
func TestGroupChangepoints(t *testing.T) {
	for _, tr := range []int{0, 50} {
		for _, k := range GroupKinds {
			for seed := uint64(1); seed <= 5; seed++ {
				g, err := GenerateGroup(k, GroupOptions{Seed: seed, Transition: tr})
				if err != nil {
					t.Fatal(err)
				}
				var cps []int
				for i, c := range g.Changepoints {
					if c {
						cps = append(cps, i)
					}
				}
				first, end := -1, -1
				for i, l := range g.Labels {
					if l && first < 0 {
						first = i
					}
					if l {
						end = i + 1
					}
				}
				want := 2
				if tr > 0 {
					want = 4
				}
				switch {
				case k == GroupClean && len(cps) != 0:
					t.Errorf("clean seed %d: changepoints %v", seed, cps)
				case k == GroupClean:
				case len(cps) != want || cps[0] != g.Onset || cps[0] != first || cps[len(cps)-1] != end:
					t.Errorf("%s seed %d transition %d: changepoints %v, fault rows [%d, %d), want %d from the onset to the row after", k, seed, tr, cps, first, end, want)
				case tr > 0 && (cps[1]-cps[0] < 10 || cps[1]-cps[0] > 50 || cps[3]-cps[2] < 10 || cps[3]-cps[2] > 50):
					t.Errorf("%s seed %d: transitions %v, want 10-50 rows each", k, seed, cps)
				}
			}
		}
	}
	if _, err := GenerateGroup(GroupShift, GroupOptions{Transition: 5}); err == nil {
		t.Error("a transition of 5 rows was accepted; want 10 to 50")
	}
}
