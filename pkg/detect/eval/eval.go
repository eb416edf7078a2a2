// Package eval measures anomaly detectors against labels, point-wise and
// event-wise, and scores multivariate files such as SKAB with the default
// univariate detector.
//
// Point-wise: every point is a binary classification; precision, recall and
// F1 over points. This is the metric of SKAB's outlier leaderboard, where the
// labels mark whole anomaly windows.
//
// Event-wise (range-based): an event is a maximal run of labelled points,
// credited over [start, end+Tolerance]. An event is detected if an alarm
// falls in its credit range; its delay is the first such alarm minus the
// start, in points. An alarm episode is a maximal run of alarms (runs
// separated by fewer than Tolerance points merge); it is a true episode if it
// overlaps the credit range of an event, else a false alarm. Precision =
// true episodes / episodes, recall = detected events / events. Long windows
// are then one event each, so a detector is not paid for flagging every
// point of a level shift, nor punished for stopping once it has found it.
package eval

import (
	"math"
	"sort"
)

// Point holds point-wise counts.
type Point struct {
	TP, FP, FN, TN int
}

// Precision, recall and F1 are 0 when undefined.
func (p Point) Precision() float64 { return ratio(p.TP, p.TP+p.FP) }
func (p Point) Recall() float64    { return ratio(p.TP, p.TP+p.FN) }
func (p Point) F1() float64        { return f1(p.Precision(), p.Recall()) }

// FAR is the false alarm rate FP/(FP+TN) and MAR the missed alarm rate
// FN/(FN+TP), as SKAB's leaderboard reports them.
func (p Point) FAR() float64 { return ratio(p.FP, p.FP+p.TN) }
func (p Point) MAR() float64 { return ratio(p.FN, p.FN+p.TP) }

// Event holds event-wise counts and detection delays.
type Event struct {
	Events, Detected       int
	Episodes, TrueEpisodes int
	Delays                 []int // points from event start to its first alarm, per detected event
}

func (e Event) Precision() float64 { return ratio(e.TrueEpisodes, e.Episodes) }
func (e Event) Recall() float64    { return ratio(e.Detected, e.Events) }
func (e Event) F1() float64        { return f1(e.Precision(), e.Recall()) }

// MeanDelay and MedianDelay in points; NaN with no detected event.
func (e Event) MeanDelay() float64 {
	if len(e.Delays) == 0 {
		return math.NaN()
	}
	s := 0
	for _, d := range e.Delays {
		s += d
	}
	return float64(s) / float64(len(e.Delays))
}

func (e Event) MedianDelay() float64 {
	if len(e.Delays) == 0 {
		return math.NaN()
	}
	d := append([]int(nil), e.Delays...)
	sort.Ints(d)
	if len(d)%2 == 1 {
		return float64(d[len(d)/2])
	}
	return float64(d[len(d)/2-1]+d[len(d)/2]) / 2
}

// Report is both scores of one or more series (counts add up: micro average).
type Report struct {
	Point Point
	Event Event
}

// Add accumulates o into r.
func (r *Report) Add(o Report) {
	r.Point.TP += o.Point.TP
	r.Point.FP += o.Point.FP
	r.Point.FN += o.Point.FN
	r.Point.TN += o.Point.TN
	r.Event.Events += o.Event.Events
	r.Event.Detected += o.Event.Detected
	r.Event.Episodes += o.Event.Episodes
	r.Event.TrueEpisodes += o.Event.TrueEpisodes
	r.Event.Delays = append(r.Event.Delays, o.Event.Delays...)
}

// Evaluate scores alarms against labels (same length; the shorter bounds).
// tolerance extends each event's credit range past its end and merges alarm
// runs closer than it.
func Evaluate(labels, alarms []bool, tolerance int) Report {
	n := min(len(labels), len(alarms))
	var r Report
	for i := 0; i < n; i++ {
		switch {
		case labels[i] && alarms[i]:
			r.Point.TP++
		case alarms[i]:
			r.Point.FP++
		case labels[i]:
			r.Point.FN++
		default:
			r.Point.TN++
		}
	}
	// credit[i]: i lies in some event's credit range
	credit := make([]bool, n)
	for i := 0; i < n; {
		if !labels[i] {
			i++
			continue
		}
		start := i
		for i < n && labels[i] {
			i++
		}
		end := min(n, i+tolerance) // exclusive
		r.Event.Events++
		for j := start; j < end; j++ {
			credit[j] = true
		}
		for j := start; j < end; j++ {
			if alarms[j] {
				r.Event.Detected++
				r.Event.Delays = append(r.Event.Delays, j-start)
				break
			}
		}
	}
	for i := 0; i < n; {
		if !alarms[i] {
			i++
			continue
		}
		hit := false
		last := i
		for j := i; j < n && j <= last+1+tolerance; j++ {
			if alarms[j] {
				last = j
				hit = hit || credit[j]
			}
		}
		r.Event.Episodes++
		if hit {
			r.Event.TrueEpisodes++
		}
		i = last + 1
	}
	return r
}

func ratio(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

func f1(p, r float64) float64 {
	if p+r == 0 {
		return 0
	}
	return 2 * p * r / (p + r)
}
