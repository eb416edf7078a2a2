package wordgen

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/aiops-dev/aiops/pkg/correlate/eval"
)

// Seen is an alert as a correlator sees it in the lines: its labels and
// the earliest startsAt it was sent with (event time, what the issue's
// windows run on).
type Seen struct {
	Fingerprint string
	Labels      map[string]string
	First       time.Time
}

// Alerts reads the alerts of a storm's lines, in the order first seen
// (earliest startsAt, then fingerprint). It reads what any consumer of
// the lines would, never the truth.
func Alerts(lines [][]byte) ([]Seen, error) {
	byFP := map[string]*Seen{}
	for i, raw := range lines {
		var l struct {
			Type    string `json:"type"`
			Payload *struct {
				Alerts []struct {
					Labels      map[string]string `json:"labels"`
					StartsAt    time.Time         `json:"startsAt"`
					Fingerprint string            `json:"fingerprint"`
				} `json:"alerts"`
			} `json:"payload"`
		}
		if err := json.Unmarshal(raw, &l); err != nil {
			return nil, fmt.Errorf("line %d: %w", i+1, err)
		}
		if l.Type != "alertmanager" {
			continue
		}
		if l.Payload == nil {
			return nil, fmt.Errorf("line %d: alertmanager line without a payload", i+1)
		}
		for _, a := range l.Payload.Alerts {
			if a.Fingerprint == "" {
				return nil, fmt.Errorf("line %d: alert without a fingerprint", i+1)
			}
			s := byFP[a.Fingerprint]
			if s == nil {
				byFP[a.Fingerprint] = &Seen{a.Fingerprint, a.Labels, a.StartsAt}
			} else if a.StartsAt.Before(s.First) {
				s.First = a.StartsAt
			}
		}
	}
	out := make([]Seen, 0, len(byFP))
	for _, s := range byFP {
		out = append(out, *s)
	}
	slices.SortFunc(out, func(a, b Seen) int {
		return cmp.Or(a.First.Compare(b.First), cmp.Compare(a.Fingerprint, b.Fingerprint))
	})
	return out, nil
}

// Sightings are the alerts as the time baselines take them.
func Sightings(alerts []Seen) []eval.Sighting {
	out := make([]eval.Sighting, len(alerts))
	for i, a := range alerts {
		out[i] = eval.Sighting{ID: a.Fingerprint, First: a.First}
	}
	return out
}

// ByLabel groups alerts by the value of label over the whole storm, as an
// Alertmanager route grouping by that label does; alerts without it
// share the group of the empty value.
func ByLabel(alerts []Seen, label string) map[string]string {
	out := make(map[string]string, len(alerts))
	for _, a := range alerts {
		out[a.Fingerprint] = label + "=" + a.Labels[label]
	}
	return out
}

// Calibration is how the two baselines score on a storm.
type Calibration struct {
	ByService, Chain5m, Windows5m eval.Scores
}

// Calibrate scores grouping by the service label, a 5-minute chain
// (eval.ChainByTime, the one the figures are matched to) and
// 5-minute windows (eval.WindowsByTime) against the storm's truth.
func Calibrate(s Storm) (Calibration, error) {
	alerts, err := Alerts(s.Lines)
	if err != nil {
		return Calibration{}, err
	}
	seen := Sightings(alerts)
	return Calibration{
		ByService: eval.Pairwise(ByLabel(alerts, "service"), s.Truth),
		Chain5m:   eval.Pairwise(eval.ChainByTime(seen, 5*time.Minute), s.Truth),
		Windows5m: eval.Pairwise(eval.WindowsByTime(seen, 5*time.Minute), s.Truth),
	}, nil
}
