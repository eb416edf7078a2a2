// Package eval scores a log parser against labelled data with the two
// measures of the Loghub benchmark, as its FORMATS.md defines them:
// grouping accuracy (GA) and parsing accuracy (PA).
package eval

import (
	"errors"
	"fmt"
)

// ErrLength reports label slices of different lengths.
var ErrLength = errors.New("eval: truth and prediction differ in length")

// GroupingAccuracy is the share of lines whose predicted group is exactly
// the set of lines that share their true event id. truth[i] and predicted[i]
// are the labels of line i; only equality of labels matters.
func GroupingAccuracy(truth, predicted []string) (float64, error) {
	if len(truth) != len(predicted) {
		return 0, fmt.Errorf("%w: %d truth labels, %d predicted", ErrLength, len(truth), len(predicted))
	}
	if len(truth) == 0 {
		return 0, nil
	}
	truthSize := map[string]int{}
	for _, t := range truth {
		truthSize[t]++
	}
	type group struct {
		size  int
		truth string
		mixed bool
	}
	groups := map[string]*group{}
	for i, p := range predicted {
		g := groups[p]
		if g == nil {
			g = &group{truth: truth[i]}
			groups[p] = g
		}
		g.size++
		if g.truth != truth[i] {
			g.mixed = true
		}
	}
	correct := 0
	for _, g := range groups {
		if !g.mixed && truthSize[g.truth] == g.size {
			correct += g.size
		}
	}
	return float64(correct) / float64(len(truth)), nil
}

// ParsingAccuracy is the share of lines whose predicted template string
// equals the true template exactly.
func ParsingAccuracy(truthTemplates, predictedTemplates []string) (float64, error) {
	if len(truthTemplates) != len(predictedTemplates) {
		return 0, fmt.Errorf("%w: %d truth templates, %d predicted", ErrLength, len(truthTemplates), len(predictedTemplates))
	}
	if len(truthTemplates) == 0 {
		return 0, nil
	}
	correct := 0
	for i, t := range truthTemplates {
		if predictedTemplates[i] == t {
			correct++
		}
	}
	return float64(correct) / float64(len(truthTemplates)), nil
}
