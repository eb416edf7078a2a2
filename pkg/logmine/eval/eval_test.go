package eval

import (
	"errors"
	"math"
	"testing"
)

func TestGroupingAccuracy(t *testing.T) {
	truth := []string{"A", "A", "B", "B", "C", "D"}
	cases := []struct {
		name string
		pred []string
		want float64
	}{
		{"perfect, other labels", []string{"x", "x", "y", "y", "z", "w"}, 1},
		{"split group", []string{"x", "x", "y", "v", "z", "w"}, 4.0 / 6},    // B split: both B lines wrong
		{"merged groups", []string{"x", "x", "y", "y", "z", "z"}, 4.0 / 6},  // C and D merged: both wrong
		{"everything one group", []string{"x", "x", "x", "x", "x", "x"}, 0}, // nothing exact
	}
	for _, c := range cases {
		got, err := GroupingAccuracy(truth, c.pred)
		if err != nil || math.Abs(got-c.want) > 1e-12 {
			t.Errorf("%s: %v %v, want %v", c.name, got, err, c.want)
		}
	}
	if _, err := GroupingAccuracy(truth, truth[:2]); !errors.Is(err, ErrLength) {
		t.Errorf("length mismatch: %v", err)
	}
}

func TestParsingAccuracy(t *testing.T) {
	truth := []string{"a <*>", "a <*>", "b", "c <*> d"}
	got, err := ParsingAccuracy(truth, []string{"a <*>", "a 1", "b", "c <*>  d"})
	if err != nil || got != 0.5 {
		t.Fatalf("PA %v %v, want 0.5 (exact string equality)", got, err)
	}
	if _, err := ParsingAccuracy(truth, nil); !errors.Is(err, ErrLength) {
		t.Errorf("length mismatch: %v", err)
	}
}
