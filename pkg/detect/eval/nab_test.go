package eval

import (
	"math"
	"testing"
	"time"
)

// nabCase builds n one-second rows with changepoints and alarm runs.
func nabCase(n int, cps []int, alarmRuns [][2]int) ([]time.Time, []bool, []bool) {
	t0 := time.Date(2020, 3, 9, 10, 0, 0, 0, time.UTC)
	times, cp, al := make([]time.Time, n), make([]bool, n), make([]bool, n)
	for i := range times {
		times[i] = t0.Add(time.Duration(i) * time.Second)
	}
	for _, c := range cps {
		cp[c] = true
	}
	for _, r := range alarmRuns {
		for i := r[0]; i < r[1]; i++ {
			al[i] = true
		}
	}
	return times, cp, al
}

func TestNAB(t *testing.T) {
	for _, c := range []struct {
		name           string
		n              int
		cps            []int
		alarms         [][2]int
		standard       float64 // by hand from the definition
		detected       int
		falsePositives int
	}{
		// the alarm switches on at the changepoint: a perfect detector
		{"at the changepoint", 200, []int{50}, [][2]int{{50, 200}}, 100, 1, 0},
		// no alarm: the null detector
		{"nothing", 200, []int{50}, nil, 0, 0, 0},
		// switching on at the window's end is worth AFP: (−0.11+1)/2
		{"at the window's end", 200, []int{50}, [][2]int{{110, 200}}, 44.5, 1, 0},
		// half-way: tanh(0)=0, worth (1−0.11)/2 + (−0.11) = 0.335; the
		// switch-off at 150 lies in no window: a false positive
		{"half-way, then off", 200, []int{50}, [][2]int{{80, 150}}, 100 * (0.445 - 0.11*1 + 1) / 2, 1, 1},
		// an alarm before the window: on and off are two false positives
		{"early", 200, []int{100}, [][2]int{{10, 20}, {100, 200}}, 100 * (1 - 0.22 + 1) / 2, 1, 2},
		// overlapping windows: the second starts where the first ends
		// (row 90), so one switch at row 70 detects only the first
		{"overlap", 200, []int{40, 60}, [][2]int{{40, 70}}, 50, 1, 0}, // (1 − 1 + 2) / 4
	} {
		var s NAB
		s.Window = time.Minute
		s.Add(nabCase(c.n, c.cps, c.alarms))
		// half-way sits at index 500 of 1,000: tanh of a tiny positive x
		if got := s.Score(0); math.Abs(got-c.standard) > 0.2 {
			t.Errorf("%s: standard %.3f, want %.3f", c.name, got, c.standard)
		}
		if s.Detected != c.detected || s.FalsePositives != c.falsePositives {
			t.Errorf("%s: detected %d, false positives %d; want %d, %d", c.name, s.Detected, s.FalsePositives, c.detected, c.falsePositives)
		}
	}
	// LowFN doubles a miss: one of two found at once, one missed
	var s NAB
	s.Window = time.Minute
	s.Add(nabCase(300, []int{10, 200}, [][2]int{{10, 300}}))
	if got, want := s.Score(2), 100*(1-2+4)/6.0; math.Abs(got-want) > 1e-9 {
		t.Errorf("LowFN %.3f, want %.3f", got, want)
	}
}
