// Package eval scores how a correlator groups items (alert fingerprints
// and anomaly event ids) into incidents against the ground truth of a
// generated scenario, and provides two naive baselines to compare with.
//
// The score is pairwise: every unordered pair of items is either in one
// incident or not, in the prediction and in the truth. Precision is the
// share of predicted same-incident pairs that are truly together, recall
// the share of true same-incident pairs the prediction keeps together.
// Large incidents weigh more (pairs grow with the square of the size): a
// correlator that splits a 20-alert cascade in two loses more than one that
// leaves a noise alert alone.
package eval

import (
	"fmt"
	"slices"
)

// Scores are the pairwise scores of one assignment.
type Scores struct {
	// Items is the number of items scored: those in the truth.
	Items int `json:"items"`
	// TruePairs and PredictedPairs count the item pairs in one true and
	// one predicted incident; SharedPairs the pairs in both.
	TruePairs      int64 `json:"true_pairs"`
	PredictedPairs int64 `json:"predicted_pairs"`
	SharedPairs    int64 `json:"shared_pairs"`
	// Precision = SharedPairs / PredictedPairs, 0 when there are no
	// predicted pairs. Recall = SharedPairs / TruePairs, 0 when there are
	// no true pairs. F1 is their harmonic mean, and 0 when there are no
	// predicted pairs or no true pairs (so an all-singletons prediction
	// scores 0 even when the truth is all singletons too).
	Precision float64 `json:"precision"`
	Recall    float64 `json:"recall"`
	F1        float64 `json:"f1"`
	// PredictedIncidents and TrueIncidents count the distinct incidents
	// among the scored items; CountRatio = predicted / true (0 when there
	// are no true incidents): above 1 the correlator splits, below 1 it
	// merges.
	PredictedIncidents int     `json:"predicted_incidents"`
	TrueIncidents      int     `json:"true_incidents"`
	CountRatio         float64 `json:"count_ratio"`
	// NoiseReduction = 1 - PredictedIncidents / Items: the share of
	// items (distinct alerts and anomalies, not notifications) that
	// did not open an incident of their own. For the reduction over raw
	// webhook notifications use NoiseReductionOver with
	// scenario.Summary().Notifications.
	NoiseReduction float64 `json:"noise_reduction"`
}

// String is a one-line summary.
func (s Scores) String() string {
	return fmt.Sprintf("pairwise P=%.3f R=%.3f F1=%.3f; incidents predicted %d, true %d (ratio %.2f); noise reduction %.3f over %d items",
		s.Precision, s.Recall, s.F1, s.PredictedIncidents, s.TrueIncidents, s.CountRatio, s.NoiseReduction, s.Items)
}

// NoiseReductionOver is 1 - incidents / notifications, 0 when there are
// no notifications.
func NoiseReductionOver(incidents, notifications int) float64 {
	if notifications <= 0 {
		return 0
	}
	return 1 - float64(incidents)/float64(notifications)
}

// Pairwise scores assign (item → predicted incident) against truth (item
// → true incident) over the items of truth. An item of truth missing from
// assign counts as a predicted incident of its own; items of assign that
// truth does not know are ignored. Labels are opaque: only which items
// share one matters.
func Pairwise(assign, truth map[string]string) Scores {
	items := make([]string, 0, len(truth))
	for id := range truth {
		items = append(items, id)
	}
	slices.Sort(items)

	predID := map[string]int{}
	trueID := map[string]int{}
	predSize := map[int]int64{}
	trueSize := map[int]int64{}
	cell := map[[2]int]int64{}
	nextPred := 0
	for _, id := range items {
		p, ok := assign[id]
		var pi int
		if ok {
			var seen bool
			if pi, seen = predID[p]; !seen {
				pi = nextPred
				nextPred++
				predID[p] = pi
			}
		} else {
			pi = nextPred // a singleton no label can join
			nextPred++
		}
		ti, seen := trueID[truth[id]]
		if !seen {
			ti = len(trueID)
			trueID[truth[id]] = ti
		}
		predSize[pi]++
		trueSize[ti]++
		cell[[2]int{pi, ti}]++
	}
	s := Scores{Items: len(items), PredictedIncidents: len(predSize), TrueIncidents: len(trueSize)}
	for _, n := range predSize {
		s.PredictedPairs += pairs(n)
	}
	for _, n := range trueSize {
		s.TruePairs += pairs(n)
	}
	for _, n := range cell {
		s.SharedPairs += pairs(n)
	}
	if s.PredictedPairs > 0 {
		s.Precision = float64(s.SharedPairs) / float64(s.PredictedPairs)
	}
	if s.TruePairs > 0 {
		s.Recall = float64(s.SharedPairs) / float64(s.TruePairs)
	}
	if s.PredictedPairs > 0 && s.TruePairs > 0 && s.Precision+s.Recall > 0 {
		s.F1 = 2 * s.Precision * s.Recall / (s.Precision + s.Recall)
	}
	if s.TrueIncidents > 0 {
		s.CountRatio = float64(s.PredictedIncidents) / float64(s.TrueIncidents)
	}
	s.NoiseReduction = NoiseReductionOver(s.PredictedIncidents, s.Items)
	return s
}

func pairs(n int64) int64 { return n * (n - 1) / 2 }
