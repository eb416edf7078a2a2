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
