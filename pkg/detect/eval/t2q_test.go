package eval

import (
	"strings"
	"testing"

	"github.com/aiops-dev/aiops/pkg/detect/synth"
)

// A channel broken 6-12 σ against the others is off the model's subspace:
// Q flags most of the fault, and the rows before it, which look like the
// training rows, hardly at all. Nothing is flagged before the training
// split ends and the median window fills.
func TestLeaderboardT2QFlagsBrokenRelation(t *testing.T) {
	g, err := synth.GenerateGroup(synth.GroupBreak, synth.GroupOptions{Seed: 3, Magnitude: 4})
	if err != nil {
		t.Fatal(err)
	}
	m := groupMultivariate(g)
	alarms, err := LeaderboardT2Q(m, skabTrain)
	if err != nil {
		t.Fatal(err)
	}
	if len(alarms) != len(m.Times) {
		t.Fatalf("%d alarms for %d rows", len(alarms), len(m.Times))
	}
	var before, in, faulty int
	for i, a := range alarms {
		switch {
		case i < skabTrain+4 && a:
			t.Fatalf("row %d flagged before the training split and the median window", i)
		case i < g.Onset && a:
			before++
		case g.Labels[i]:
			faulty++
			if a {
				in++
			}
		}
	}
	if in < faulty*9/10 {
		t.Errorf("flagged %d of %d faulty rows, want nine in ten", in, faulty)
	}
	if n := g.Onset - skabTrain; before > n/10 {
		t.Errorf("flagged %d of the %d normal rows before the fault", before, n)
	}
}

func TestLeaderboardT2QErrors(t *testing.T) {
	g, err := synth.GenerateGroup(synth.GroupClean, synth.GroupOptions{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	m := groupMultivariate(g)
	flat := groupMultivariate(g)
	flat.Values = append([][]float64{}, m.Values...)
	flat.Values[2] = make([]float64, len(m.Times)) // all zero
	one := groupMultivariate(g)
	one.Values, one.Channels = m.Values[:1], m.Channels[:1]
	for _, c := range []struct {
		name  string
		m     Multivariate
		train int
		want  string
	}{
		{"constant channel", flat, skabTrain, "channel ch2 is constant"},
		{"one channel", one, skabTrain, "2 or more channels"},
		{"too few training rows", m, 5, "train 5"},
		{"training past the end", m, len(m.Times) + 1, "train 1201"},
	} {
		if _, err := LeaderboardT2Q(c.m, c.train); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one saying %q", c.name, err, c.want)
		}
	}
}
