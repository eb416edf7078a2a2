package eval

import (
	"math"
	"testing"
)

// truth5 is two true pairs and a singleton: {a,b} {c,d} {e}.
var truth5 = map[string]string{"a": "t1", "b": "t1", "c": "t2", "d": "t2", "e": "t3"}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func TestPairwiseWorkedCases(t *testing.T) {
	cases := []struct {
		name                  string
		assign, truth         map[string]string
		predPairs, truePairs  int64
		shared                int64
		p, r, f1              float64
		predicted, trueN      int
		ratio, noiseReduction float64
	}{
		{
			// Labels differ but the partition is the truth's.
			name:   "perfect",
			assign: map[string]string{"a": "x", "b": "x", "c": "y", "d": "y", "e": "z"},
			truth:  truth5, predPairs: 2, truePairs: 2, shared: 2,
			p: 1, r: 1, f1: 1, predicted: 3, trueN: 3, ratio: 1, noiseReduction: 1 - 3.0/5,
		},
		{
			// One incident: C(5,2) = 10 predicted pairs, 2 of them true.
			// P = 0.2, R = 1, F1 = 2·0.2·1/1.2 = 1/3.
			name:   "all in one",
			assign: map[string]string{"a": "x", "b": "x", "c": "x", "d": "x", "e": "x"},
			truth:  truth5, predPairs: 10, truePairs: 2, shared: 2,
			p: 0.2, r: 1, f1: 1.0 / 3, predicted: 1, trueN: 3, ratio: 1.0 / 3, noiseReduction: 0.8,
		},
		{
			// No predicted pairs: precision 0 by definition, F1 0.
			name:   "all singletons",
			assign: map[string]string{"a": "1", "b": "2", "c": "3", "d": "4", "e": "5"},
			truth:  truth5, predPairs: 0, truePairs: 2, shared: 0,
			p: 0, r: 0, f1: 0, predicted: 5, trueN: 3, ratio: 5.0 / 3, noiseReduction: 0,
		},
		{
			// A true incident of four split in two halves: 6 true pairs,
			// 2 predicted, both true. P = 1, R = 1/3, F1 = 0.5.
			name:      "split incident",
			assign:    map[string]string{"a": "x", "b": "x", "c": "y", "d": "y", "e": "z"},
			truth:     map[string]string{"a": "t1", "b": "t1", "c": "t1", "d": "t1", "e": "t2"},
			predPairs: 2, truePairs: 6, shared: 2,
			p: 1, r: 1.0 / 3, f1: 0.5, predicted: 3, trueN: 2, ratio: 1.5, noiseReduction: 0.4,
		},
		{
			// Two true pairs merged: 6 predicted pairs, 2 true.
			// P = 1/3, R = 1, F1 = 0.5.
			name:   "merged pair",
			assign: map[string]string{"a": "x", "b": "x", "c": "x", "d": "x", "e": "z"},
			truth:  truth5, predPairs: 6, truePairs: 2, shared: 2,
			p: 1.0 / 3, r: 1, f1: 0.5, predicted: 2, trueN: 3, ratio: 2.0 / 3, noiseReduction: 0.6,
		},
		{
			// c is missing from assign: its own incident. z is not in the
			// truth: ignored. Predicted {a,b} {c}: 1 pair, true; true pairs
			// C(3,2) = 3. P = 1, R = 1/3, F1 = 0.5.
			name:      "missing and unknown items",
			assign:    map[string]string{"a": "x", "b": "x", "z": "x"},
			truth:     map[string]string{"a": "t", "b": "t", "c": "t"},
			predPairs: 1, truePairs: 3, shared: 1,
			p: 1, r: 1.0 / 3, f1: 0.5, predicted: 2, trueN: 1, ratio: 2, noiseReduction: 1 - 2.0/3,
		},
		{
			// Two missing items do not join each other, even though a
			// label could be empty.
			name:      "missing items stay apart",
			assign:    map[string]string{"a": ""},
			truth:     map[string]string{"a": "t", "b": "t", "c": "t"},
			predPairs: 0, truePairs: 3, shared: 0,
			p: 0, r: 0, f1: 0, predicted: 3, trueN: 1, ratio: 3, noiseReduction: 0,
		},
		{
			// All true singletons: no true pairs, so F1 is 0 by definition
			// even for the right answer.
			name:      "no true pairs",
			assign:    map[string]string{"a": "1", "b": "2"},
			truth:     map[string]string{"a": "t1", "b": "t2"},
			predPairs: 0, truePairs: 0, shared: 0,
			p: 0, r: 0, f1: 0, predicted: 2, trueN: 2, ratio: 1, noiseReduction: 0,
		},
		{
			name:   "empty truth",
			assign: map[string]string{"a": "x"},
			truth:  map[string]string{},
		},
	}
	for _, c := range cases {
		s := Pairwise(c.assign, c.truth)
		if s.PredictedPairs != c.predPairs || s.TruePairs != c.truePairs || s.SharedPairs != c.shared {
			t.Errorf("%s: pairs predicted %d true %d shared %d, want %d %d %d", c.name, s.PredictedPairs, s.TruePairs, s.SharedPairs, c.predPairs, c.truePairs, c.shared)
		}
		if !near(s.Precision, c.p) || !near(s.Recall, c.r) || !near(s.F1, c.f1) {
			t.Errorf("%s: P %.4f R %.4f F1 %.4f, want %.4f %.4f %.4f", c.name, s.Precision, s.Recall, s.F1, c.p, c.r, c.f1)
		}
		if s.PredictedIncidents != c.predicted || s.TrueIncidents != c.trueN || !near(s.CountRatio, c.ratio) {
			t.Errorf("%s: incidents predicted %d true %d ratio %.3f, want %d %d %.3f", c.name, s.PredictedIncidents, s.TrueIncidents, s.CountRatio, c.predicted, c.trueN, c.ratio)
		}
		if !near(s.NoiseReduction, c.noiseReduction) {
			t.Errorf("%s: noise reduction %.4f, want %.4f", c.name, s.NoiseReduction, c.noiseReduction)
		}
		if s.Items != len(c.truth) {
			t.Errorf("%s: %d items, want %d", c.name, s.Items, len(c.truth))
		}
	}
}

func TestNoiseReductionOver(t *testing.T) {
	if got := NoiseReductionOver(30, 3000); !near(got, 0.99) {
		t.Errorf("30 incidents over 3000 notifications: %g", got)
	}
	if got := NoiseReductionOver(3, 0); got != 0 {
		t.Errorf("no notifications: %g", got)
	}
}
