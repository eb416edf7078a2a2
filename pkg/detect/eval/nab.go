package eval

import (
	"math"
	"time"
)

// NAB profiles: the weights of a true detection (at the window's start),
// a false positive and a missed changepoint, as SKAB's changepoint
// leaderboard uses them (the tsad library's defaults).
type NABProfile struct {
	Name          string
	ATP, AFP, AFN float64
}

// NABProfiles are Standard, LowFP and LowFN.
var NABProfiles = [...]NABProfile{
	{"Standard", 1, -0.11, -1},
	{"LowFP", 1, -0.22, -1},
	{"LowFN", 1, -0.11, -2},
}

// NAB accumulates the changepoint score of SKAB's leaderboard (the
// Numenta Anomaly Benchmark's scoring with SKAB's "improved" scale
// function) over several files.
//
// Each true changepoint opens a detection window of Window to its right.
// The predicted changepoints are the rows where the alarm switches on or
// off. The first predicted changepoint inside a window is a true
// detection, worth between ATP (at the changepoint) and AFP (at the
// window's end) along a tanh; later ones in the same window count for
// nothing; a window without one is a miss (AFN); a predicted changepoint
// outside every window is a false positive (AFP). Where two windows
// overlap, the right one starts where the left one ends. The score is
// normalised between the null detector (0) and the perfect one (100).
type NAB struct {
	Window time.Duration
	// Windows, Detected and FalsePositives count over every file added.
	Windows, Detected, FalsePositives int
	// tpScore sums the true detections' worth per profile; the false
	// positives and misses are weighed in Score
	tpScore [len(NABProfiles)]float64
}

// nabWindow is a true changepoint's detection window, both ends included.
type nabWindow struct{ start, end time.Time }

func (w nabWindow) contains(t time.Time) bool { return !t.Before(w.start) && !t.After(w.end) }

// Add scores one file: times in order, the true changepoints and the
// alarms, all the same length (the shortest bounds).
func (s *NAB) Add(times []time.Time, changepoints, alarms []bool) {
	n := min(len(times), len(changepoints), len(alarms))
	var ws []nabWindow
	for i := 0; i < n; i++ {
		if changepoints[i] {
			ws = append(ws, nabWindow{times[i], times[i].Add(s.Window)})
		}
	}
	for i := 0; i+1 < len(ws); i++ {
		if !ws[i].end.Before(ws[i+1].start) {
			ws[i+1].start = ws[i].end
		}
	}
	var preds []time.Time
	for i := 0; i < n; i++ {
		if alarms[i] != (i > 0 && alarms[i-1]) {
			preds = append(preds, times[i])
		}
	}
	s.Windows += len(ws)
	for _, p := range preds {
		in := false
		for _, w := range ws {
			in = in || w.contains(p)
		}
		if !in {
			s.FalsePositives++
		}
	}
	for _, w := range ws {
		for _, p := range preds {
			if w.contains(p) {
				s.Detected++
				for k, pr := range NABProfiles {
					s.tpScore[k] += nabScale(float64(p.Sub(w.start))/float64(w.end.Sub(w.start)), pr)
				}
				break
			}
		}
	}
}

// nabScale is the worth of a detection a fraction pos into its window:
// ATP at 0 falling along a tanh to AFP at 1, sampled on 1,000 points as
// SKAB's scale function is.
func nabScale(pos float64, p NABProfile) float64 {
	const detail = 1000
	i := min(int(pos*detail), detail-1)
	x := -math.Pi/2 + float64(i)*math.Pi/(detail-1)
	h := (p.ATP - p.AFP) / 2
	return -h*math.Tanh(x)/math.Tanh(math.Pi/2) + h + p.AFP
}

// Score returns the normalised score of profile k (0 null, 100 perfect).
func (s *NAB) Score(k int) float64 {
	if s.Windows == 0 {
		return 0
	}
	p := NABProfiles[k]
	missed := s.Windows - s.Detected
	raw := s.tpScore[k] + p.AFP*float64(s.FalsePositives) + p.AFN*float64(missed)
	null := p.AFN * float64(s.Windows)
	perfect := p.ATP * float64(s.Windows)
	return 100 * (raw - null) / (perfect - null)
}
