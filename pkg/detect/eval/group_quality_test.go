package eval

import (
	"math"
	"os"
	"testing"

	"github.com/aiops-dev/aiops/pkg/detect"
	"github.com/aiops-dev/aiops/pkg/detect/synth"
)

func groupMultivariate(g synth.Group) Multivariate {
	return Multivariate{Channels: g.Channels, Times: g.Times, Values: g.Values, Labels: g.Labels}
}

// runGroupSuite scores the generated assets of seeds first..last with cfg
// on the rows after the first skip (the warm-up's share, as SKAB's
// leaderboard scores the rows after its training split).
func runGroupSuite(t testing.TB, cfg detect.GroupConfig, first, last int, o synth.GroupOptions) (map[synth.GroupKind]*Report, Report) {
	per := map[synth.GroupKind]*Report{}
	var all Report
	eachGroupAsset(t, first, last, o, func(g synth.Group) {
		_, alarms, err := ScoreGroup(cfg, groupMultivariate(g))
		if err != nil {
			t.Fatal(err)
		}
		r := Evaluate(g.Labels[skabTrain:], alarms[skabTrain:], 0)
		if per[g.Kind] == nil {
			per[g.Kind] = &Report{}
		}
		per[g.Kind].Add(r)
		all.Add(r)
	})
	return per, all
}

// eachGroupAsset generates the assets of seeds first..last, every kind of
// each, with options o, and passes them to each in turn.
func eachGroupAsset(t testing.TB, first, last int, o synth.GroupOptions, each func(synth.Group)) {
	for seed := first; seed <= last; seed++ {
		for _, k := range synth.GroupKinds {
			o.Seed = uint64(seed)
			g, err := synth.GenerateGroup(k, o)
			if err != nil {
				t.Fatal(err)
			}
			each(g)
		}
	}
}

// readSKABFile reads one SKAB file or fails the test.
func readSKABFile(t testing.TB, path string) Multivariate {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := ReadSKAB(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return m
}

// TestQualityGroup runs the default multivariate Group on the generated
// assets (seeds 1-30 chose the defaults; 31-90 are held out) and on SKAB
// (measured only).
func TestQualityGroup(t *testing.T) {
	cfg := detect.GroupConfig{}
	for _, c := range []struct {
		name        string
		first, last int
		trend       float64
		floor       float64 // a little under the measured sum, so a regression fails
	}{{"GROUP", 1, 30, 0, 1.46}, {"GROUP DRIFT", 1, 30, 0.002, 1.42}, {"GROUP HOLDOUT", 31, 90, 0, 1.45}, {"GROUP HOLDOUT DRIFT", 31, 90, 0.002, 1.40}} {
		per, all := runGroupSuite(t, cfg, c.first, c.last, synth.GroupOptions{Trend: c.trend})
		for _, k := range synth.GroupKinds {
			t.Log(line(string(k), *per[k]))
		}
		t.Log(line(c.name, all))
		if f := all.Event.F1() + all.Point.F1(); f < c.floor {
			t.Errorf("%s: event F1 + point F1 = %.3f, below the floor %.3f", c.name, f, c.floor)
		}
	}
	files := skabFiles(t)
	var test, base Report
	cp, baseCP := skabNAB(), skabNAB()
	for _, path := range files {
		m := readSKABFile(t, path)
		_, alarms, err := ScoreGroup(cfg, m)
		if err != nil {
			t.Fatal(err)
		}
		test.Add(Evaluate(m.Labels[skabTrain:], alarms[skabTrain:], 0))
		cp.Add(m.Times[skabTrain:], m.Changepoints[skabTrain:], alarms[skabTrain:])
		if alarms, err = LeaderboardT2Q(m, skabTrain); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		base.Add(Evaluate(m.Labels[skabTrain:], alarms[skabTrain:], 0))
		baseCP.Add(m.Times[skabTrain:], m.Changepoints[skabTrain:], alarms[skabTrain:])
	}
	t.Log(line("SKAB test rows", test))
	t.Logf("SKAB test rows: FAR=%.2f%% MAR=%.2f%%", 100*test.Point.FAR(), 100*test.Point.MAR())
	logNAB(t, "SKAB test rows", cp)
	// The leaderboard's T²+Q, rebuilt and run here on the same rows: its
	// published point F1 is 0.76 (FAR 26.62 %, MAR 24.92 %; NAB 25.35 /
	// 14.51 / 31.33, 72 missed). Landing on it checks that this package
	// reads and scores SKAB as the leaderboard does.
	t.Log(line("SKAB test rows, leaderboard T²+Q", base))
	t.Logf("SKAB test rows, leaderboard T²+Q: FAR=%.2f%% MAR=%.2f%%", 100*base.Point.FAR(), 100*base.Point.MAR())
	logNAB(t, "SKAB test rows, leaderboard T²+Q", baseCP)
	if f := base.Point.F1(); math.Abs(f-0.76) > 0.01 {
		t.Errorf("the rebuilt leaderboard T²+Q scores point F1 %.3f on SKAB's test rows, published 0.76: the evaluation no longer matches the leaderboard's", f)
	}
	// Measured, never tuned on: the floor only catches a regression.
	if f := test.Point.F1(); f < 0.72 {
		t.Errorf("SKAB test-row point F1 %.3f is below the floor 0.72", f)
	}
	free := readSKABFree(t)
	_, alarms, err := ScoreGroup(cfg, free)
	if err != nil {
		t.Fatal(err)
	}
	fr := Evaluate(free.Labels[skabTrain:], alarms[skabTrain:], 0)
	t.Logf("SKAB anomaly-free after %d rows: FAR=%.2f%% (%d alarm episodes)", skabTrain, 100*fr.Point.FAR(), fr.Event.Episodes)
	if alarms, err = LeaderboardT2Q(free, skabTrain); err != nil {
		t.Fatal(err)
	}
	bf := Evaluate(free.Labels[skabTrain:], alarms[skabTrain:], 0)
	t.Logf("SKAB anomaly-free after %d rows, leaderboard T²+Q: FAR=%.2f%% (%d alarm episodes)", skabTrain, 100*bf.Point.FAR(), bf.Event.Episodes)
	// What the leaderboard does not score: the same pump on a healthy
	// afternoon. A default must not flag it as the offline model does.
	if fr.Point.FAR() >= bf.Point.FAR() {
		t.Errorf("on the anomaly-free recording the Group flags %.2f%%, no fewer than the leaderboard's T²+Q (%.2f%%)", 100*fr.Point.FAR(), 100*bf.Point.FAR())
	}
	// The defaults were chosen under this ceiling (QUALITY.md), the one
	// the univariate defaults keep too.
	if far := fr.Point.FAR(); far > 0.06 {
		t.Errorf("SKAB anomaly-free FAR %.2f%% is over the 6%% ceiling", 100*far)
	}
}

// TestQualityGroupChangepoints scores the Group's change detector
// (detect.GroupResult.Changing, its switches the predicted changepoints)
// with SKAB's changepoint score: on generated assets whose faults come in
// and go out over 10-50 rows (seeds 1-30 chose the defaults; 31-90 are
// held out), and on SKAB's test rows (measured only).
func TestQualityGroupChangepoints(t *testing.T) {
	cfg := detect.GroupConfig{}
	for _, c := range []struct {
		name        string
		first, last int
		o           synth.GroupOptions
		floor       float64 // a little under the measured sum of the three profiles
	}{
		{"TRANSITIONS", 1, 30, synth.GroupOptions{Transition: 50}, 80},
		{"TRANSITIONS DRIFT", 1, 30, synth.GroupOptions{Transition: 50, Trend: 0.002}, 65},
		{"STEPS", 1, 30, synth.GroupOptions{}, 65},
		{"TRANSITIONS HOLDOUT", 31, 90, synth.GroupOptions{Transition: 50}, 0},
		{"STEPS HOLDOUT", 31, 90, synth.GroupOptions{}, 0},
	} {
		s := skabNAB()
		eachGroupAsset(t, c.first, c.last, c.o, func(g synth.Group) {
			changing, err := GroupChanges(cfg, groupMultivariate(g))
			if err != nil {
				t.Fatal(err)
			}
			s.Add(g.Times[skabTrain:], g.Changepoints[skabTrain:], changing[skabTrain:])
		})
		logNAB(t, c.name, s)
		if sum := s.Score(0) + s.Score(1) + s.Score(2); sum < c.floor {
			t.Errorf("%s: NAB profiles sum to %.2f, below the floor %.2f", c.name, sum, c.floor)
		}
	}
	files := skabFiles(t)
	s := skabNAB()
	for _, path := range files {
		m := readSKABFile(t, path)
		changing, err := GroupChanges(cfg, m)
		if err != nil {
			t.Fatal(err)
		}
		s.Add(m.Times[skabTrain:], m.Changepoints[skabTrain:], changing[skabTrain:])
	}
	logNAB(t, "SKAB test rows, changepoints", s)
	// Measured, never tuned on: the floor only catches a regression.
	if s.Score(0) < 30 {
		t.Errorf("SKAB NAB standard %.2f is below the floor 30", s.Score(0))
	}
	free := readSKABFree(t)
	changing, err := GroupChanges(cfg, free)
	if err != nil {
		t.Fatal(err)
	}
	switches := 0
	for i := skabTrain + 1; i < len(changing); i++ {
		if changing[i] != changing[i-1] {
			switches++
		}
	}
	hours := free.Times[len(free.Times)-1].Sub(free.Times[skabTrain]).Hours()
	t.Logf("SKAB anomaly-free after %d rows: %d switches, %.1f an hour", skabTrain, switches, float64(switches)/hours)
}
