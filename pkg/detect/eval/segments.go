package eval

import "math"

// ChallengeDelay is the delay of the AIOps Challenge 2018's rule: a
// labelled segment counts as found when an alarm falls within its first
// ChallengeDelay+1 points.
const ChallengeDelay = 7

// Segments holds the scores of alarms against labelled segments, in the
// three conventions the literature on operations metrics uses, and the
// counts that tell a useful detector from a flood.
type Segments struct {
	Rows, Normal, Flagged, FlaggedNormal int
	// Segments is the number of labelled segments (maximal runs of
	// labelled rows); Found of them hold an alarm anywhere, FoundInTime
	// within their first Delay+1 rows.
	Segments, Found, FoundInTime int
	// FalseEpisodes counts maximal runs of alarms that touch no labelled
	// row: what an operator is paged for in vain.
	FalseEpisodes int
	// Point: every row a classification. Adjusted: a found segment counts
	// all its rows as true positives (point-adjusted, as OmniAnomaly and
	// its successors score SMD). Delayed: the same, but only for segments
	// found in time (the AIOps Challenge 2018's rule).
	Point, Adjusted, Delayed Point
}

// MeasureSegments scores alarms against labels (same length; the shorter
// bounds) with the challenge rule's delay.
func MeasureSegments(labels, alarms []bool, delay int) Segments {
	n := min(len(labels), len(alarms))
	s := Segments{Rows: n}
	for i := 0; i < n; i++ {
		if alarms[i] {
			s.Flagged++
		}
		switch {
		case labels[i] && alarms[i]:
			s.Point.TP++
		case alarms[i]:
			s.Point.FP++
			s.FlaggedNormal++
			s.Normal++
		case labels[i]:
			s.Point.FN++
		default:
			s.Point.TN++
			s.Normal++
		}
	}
	s.Adjusted.FP, s.Adjusted.TN = s.Point.FP, s.Point.TN
	s.Delayed.FP, s.Delayed.TN = s.Point.FP, s.Point.TN
	for i := 0; i < n; {
		if !labels[i] {
			if alarms[i] {
				// a run of alarms outside every segment; one that
				// reaches into a segment is a detection, not false
				j := i
				for j < n && alarms[j] && !labels[j] {
					j++
				}
				touches := (j < n && labels[j] && alarms[j]) || (i > 0 && labels[i-1] && alarms[i-1])
				if !touches {
					s.FalseEpisodes++
				}
				i = j
				continue
			}
			i++
			continue
		}
		start := i
		found, inTime := false, false
		for i < n && labels[i] {
			if alarms[i] {
				found = true
				if i-start <= delay {
					inTime = true
				}
			}
			i++
		}
		size := i - start
		s.Segments++
		if found {
			s.Found++
			s.Adjusted.TP += size
		} else {
			s.Adjusted.FN += size
		}
		if inTime {
			s.FoundInTime++
			s.Delayed.TP += size
		} else {
			s.Delayed.FN += size
		}
	}
	return s
}

// Add accumulates o into s (micro average: the counts add up).
func (s *Segments) Add(o Segments) {
	s.Rows += o.Rows
	s.Normal += o.Normal
	s.Flagged += o.Flagged
	s.FlaggedNormal += o.FlaggedNormal
	s.Segments += o.Segments
	s.Found += o.Found
	s.FoundInTime += o.FoundInTime
	s.FalseEpisodes += o.FalseEpisodes
	for _, p := range [...][2]*Point{{&s.Point, &o.Point}, {&s.Adjusted, &o.Adjusted}, {&s.Delayed, &o.Delayed}} {
		p[0].TP += p[1].TP
		p[0].FP += p[1].FP
		p[0].FN += p[1].FN
		p[0].TN += p[1].TN
	}
}

// FalsePer1000 is false episodes per 1,000 rows.
func (s Segments) FalsePer1000() float64 { return 1000 * ratio(s.FalseEpisodes, s.Rows) }

// FlaggedFraction is the fraction of rows flagged; FlaggedNormalFraction
// the fraction of normal rows flagged (the flood measure).
func (s Segments) FlaggedFraction() float64       { return ratio(s.Flagged, s.Rows) }
func (s Segments) FlaggedNormalFraction() float64 { return ratio(s.FlaggedNormal, s.Normal) }

// ZScoreAlarms is the baseline the issue compares against: each value's z
// against the mean and standard deviation of the values in the window
// before it (a day of the series' typical interval), alarm at |z| >=
// threshold. Values that are NaN are skipped (no alarm, not in the window);
// a window of fewer than 10 values or no spread raises no alarm.
func ZScoreAlarms(values []float64, window int, threshold float64) []bool {
	alarms := make([]bool, len(values))
	if window < 2 {
		window = 2
	}
	ring := make([]float64, 0, window)
	head := 0
	var sum, sumSq float64
	for i, v := range values {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			continue
		}
		if n := len(ring); n >= 10 {
			mean := sum / float64(n)
			sd := math.Sqrt(math.Max(sumSq/float64(n)-mean*mean, 0))
			alarms[i] = sd > 0 && math.Abs(v-mean) >= threshold*sd
		}
		if len(ring) < window {
			ring = append(ring, v)
		} else {
			old := ring[head]
			sum -= old
			sumSq -= old * old
			ring[head] = v
			head = (head + 1) % window
			if head == 0 { // resum once a window against rounding drift
				sum, sumSq = 0, 0
				for _, x := range ring {
					sum += x
					sumSq += x * x
				}
				continue
			}
		}
		sum += v
		sumSq += v * v
	}
	return alarms
}
