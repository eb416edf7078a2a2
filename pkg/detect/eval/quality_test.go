package eval

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/aiops-dev/aiops/pkg/detect"
	"github.com/aiops-dev/aiops/pkg/detect/synth"
)

// sharedData finds ../shared/data next to the repository root (the directory
// holding go.work), or AIOPS_SHARED_DATA. Without it the test is skipped,
// except in CI where missing data is a failure.
func sharedData(t testing.TB) string {
	t.Helper()
	if d := os.Getenv("AIOPS_SHARED_DATA"); d != "" {
		return d
	}
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			d := filepath.Join(dir, "..", "shared", "data")
			if _, err := os.Stat(d); err == nil {
				return d
			}
			break
		}
		if filepath.Dir(dir) == dir {
			break
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("shared data not found: set AIOPS_SHARED_DATA to the directory holding skab/")
	}
	t.Skip("shared data not found (set AIOPS_SHARED_DATA to the directory holding skab/)")
	return ""
}

func runSynthetic(t testing.TB, seeds int, opts synth.Options) (map[synth.Kind]*Report, Report) {
	suite, err := synth.Suite(seeds, opts)
	if err != nil {
		t.Fatal(err)
	}
	return scoreSuite(t, suite)
}

func scoreSuite(t testing.TB, suite []synth.Series) (map[synth.Kind]*Report, Report) {
	per := map[synth.Kind]*Report{}
	var all Report
	for _, s := range suite {
		cfg := detect.Config{Counter: s.Counter}
		_, alarms, err := Score(cfg, s.Times, s.Values)
		if err != nil {
			t.Fatal(err)
		}
		r := Evaluate(s.Labels, alarms, 6)
		if per[s.Kind] == nil {
			per[s.Kind] = &Report{}
		}
		per[s.Kind].Add(r)
		all.Add(r)
	}
	return per, all
}

func line(name string, r Report) string {
	return fmt.Sprintf("%-16s event P=%.3f R=%.3f F1=%.3f (events %d detected %d, episodes %d false %d) delay mean=%.1f median=%.1f | point P=%.3f R=%.3f F1=%.3f",
		name, r.Event.Precision(), r.Event.Recall(), r.Event.F1(), r.Event.Events, r.Event.Detected,
		r.Event.Episodes, r.Event.Episodes-r.Event.TrueEpisodes, r.Event.MeanDelay(), r.Event.MedianDelay(),
		r.Point.Precision(), r.Point.Recall(), r.Point.F1())
}

// TestQualitySynthetic runs the default configuration on the labelled
// synthetic suite and fails if event-wise F1 falls below the measured floor.
func TestQualitySynthetic(t *testing.T) {
	per, all := runSynthetic(t, 10, synth.Options{})
	kinds := make([]string, 0, len(per))
	for k := range per {
		kinds = append(kinds, string(k))
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		t.Log(line(k, *per[synth.Kind(k)]))
	}
	t.Log(line("ALL", all))
	if f := all.Event.F1(); f < synthF1Floor {
		t.Errorf("synthetic event-wise F1 %.3f is below the floor %.3f", f, synthF1Floor)
	}
	if r := all.Event.Recall(); r < synthRecallFloor {
		t.Errorf("synthetic event-wise recall %.3f is below the floor %.3f", r, synthRecallFloor)
	}
	if r := per[synth.TrendChange].Event.Recall(); r < synthTrendRecallFloor {
		t.Errorf("trend changes: event-wise recall %.3f is below the floor %.3f", r, synthTrendRecallFloor)
	}
}

// TestQualitySyntheticHoldout runs seeds 11-60, which chose nothing (the
// defaults were chosen on seeds 1-10), with white and AR(0.6) noise: 50
// series per kind make the figures of the rarer outcomes (a trend found,
// a false alarm) less a matter of a few draws.
func TestQualitySyntheticHoldout(t *testing.T) {
	for _, c := range []struct {
		name  string
		ar    float64
		floor float64
	}{{"HOLDOUT", 0, holdoutF1Floor}, {"HOLDOUT AR 0.6", 0.6, holdoutARF1Floor}} {
		var suite []synth.Series
		for seed := 11; seed <= 60; seed++ {
			for _, k := range synth.Kinds {
				s, err := synth.Generate(k, synth.Options{Seed: uint64(seed), AR: c.ar})
				if err != nil {
					t.Fatal(err)
				}
				suite = append(suite, s)
			}
		}
		per, all := scoreSuite(t, suite)
		for _, k := range synth.Kinds {
			t.Log(line(string(k), *per[k]))
		}
		t.Log(line(c.name, all))
		if f := all.Event.F1(); f < c.floor {
			t.Errorf("%s: event-wise F1 %.3f is below the floor %.3f", c.name, f, c.floor)
		}
	}
}

// TestQualitySyntheticWander is the same suite with AR(1) noise of lag-1
// autocorrelation 0.6: real metrics wander, and a detector tuned on white
// noise alone mistakes wander for change. It guards the defaults against
// that.
func TestQualitySyntheticWander(t *testing.T) {
	per, all := runSynthetic(t, 10, synth.Options{AR: 0.6})
	kinds := make([]string, 0, len(per))
	for k := range per {
		kinds = append(kinds, string(k))
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		t.Log(line(k, *per[synth.Kind(k)]))
	}
	t.Log(line("ALL (AR 0.6)", all))
	if f := all.Event.F1(); f < synthARF1Floor {
		t.Errorf("synthetic AR(0.6) event-wise F1 %.3f is below the floor %.3f", f, synthARF1Floor)
	}
}

// TestQualitySyntheticFast runs the suite sampled every second (seeds
// 1-30, and 31-60 held out), as SKAB is: the daily season is then a slow drift, the regime's 3
// hours outlast the series, and the 6-hour hole of the missing kind moves
// the season by a quarter period (a lasting 10σ step).
func TestQualitySyntheticFast(t *testing.T) {
	for _, c := range []struct {
		name       string
		ar         float64
		floor      float64
		seed, last int
	}{
		{"FAST (1 s)", 0, fastF1Floor, 1, 30},
		{"FAST (1 s) AR 0.6", 0.6, fastARF1Floor, 1, 30},
		// seeds 31-60 were generated only to check the choice of the
		// early slow baseline (fastFirstPeriod), never to make it
		{"FAST HOLDOUT", 0, fastHoldoutF1Floor, 31, 60},
		{"FAST HOLDOUT AR", 0.6, fastHoldoutARF1Floor, 31, 60},
	} {
		var suite []synth.Series
		for seed := c.seed; seed <= c.last; seed++ {
			for _, k := range synth.Kinds {
				s, err := synth.Generate(k, synth.Options{Seed: uint64(seed), AR: c.ar, Step: time.Second})
				if err != nil {
					t.Fatal(err)
				}
				suite = append(suite, s)
			}
		}
		per, all := scoreSuite(t, suite)
		for _, k := range synth.Kinds {
			t.Log(line(string(k), *per[k]))
		}
		t.Log(line(c.name, all))
		if f := all.Event.F1(); f < c.floor {
			t.Errorf("%s: event-wise F1 %.3f is below the floor %.3f", c.name, f, c.floor)
		}
	}
}

// Floors a little under the figures measured with the default config, so a
// regression fails.
const (
	synthF1Floor     = 0.89 // measured 0.923 (event-wise)
	synthRecallFloor = 0.86 // measured 0.900 (event-wise)
	synthARF1Floor   = 0.85 // measured 0.881 (event-wise, AR(0.6) noise)
	// synthTrendRecallFloor: trend changes found within their label,
	// measured 0.2 (2 of 10; 0 before the trend test)
	synthTrendRecallFloor = 0.1
	holdoutF1Floor        = 0.90 // measured 0.931 (seeds 11-60, event-wise)
	holdoutARF1Floor      = 0.83 // measured 0.861 (seeds 11-60, AR(0.6) noise)
	// 1 s steps: measured 0.845 white, 0.842 AR(0.6) with the early slow
	// baseline (0.803 / 0.796 before it; 0.587 / 0.590 before a gap ended
	// the regime); held out (seeds 31-60) 0.852 / 0.817 (0.813 / 0.793)
	fastF1Floor          = 0.81
	fastARF1Floor        = 0.81
	fastHoldoutF1Floor   = 0.82
	fastHoldoutARF1Floor = 0.79
	skabPointF1Floor     = 0.60 // measured 0.653 (point-wise, test rows; 0.637 before the early slow baseline)
	skabEventF1Floor     = 0.46 // measured 0.535 (event-wise, all rows; 0.492 before)
	// skabFreeFARCeiling caps the point-wise false alarm rate on
	// anomaly-free.csv: measured 5.90% (5.21% before the early slow
	// baseline)
	skabFreeFARCeiling = 0.06
)

// skabFiles lists the labelled SKAB files (valve1, valve2, other).
func skabFiles(t testing.TB) []string {
	root := filepath.Join(sharedData(t), "skab", "data")
	var files []string
	for _, dir := range []string{"valve1", "valve2", "other"} {
		m, err := filepath.Glob(filepath.Join(root, dir, "*.csv"))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	if len(files) == 0 {
		t.Fatalf("no SKAB files under %s", root)
	}
	return files
}

// readSKABFree reads SKAB's anomaly-free recording (about 2.6 hours of the
// same pump without a fault), beside the labelled files.
func readSKABFree(t testing.TB) Multivariate {
	return readSKABFile(t, filepath.Join(sharedData(t), "skab", "data", "anomaly-free", "anomaly-free.csv"))
}

// skabNAB is the changepoint score of SKAB's leaderboard: windows of 60 s
// to the right of each true changepoint.
func skabNAB() *NAB { return &NAB{Window: time.Minute} }

// logNAB logs the three NAB profiles and the counts behind them.
func logNAB(t *testing.T, name string, s *NAB) {
	t.Helper()
	t.Logf("%s: NAB standard %.2f, LowFP %.2f, LowFN %.2f (changepoints %d, found %d, missed %d, false positives %d)",
		name, s.Score(0), s.Score(1), s.Score(2), s.Windows, s.Detected, s.Windows-s.Detected, s.FalsePositives)
}

// skabTrain is the number of leading rows of each file that SKAB's
// leaderboard notebooks use for training; the leaderboard scores the rest.
const skabTrain = 400

// TestQualitySKAB runs the default configuration on every labelled SKAB file
// (per-channel detectors, max score across channels) and reports point-wise
// F1 on the whole file and on the rows after the first 400 (SKAB's test
// split), next to the always-anomalous baseline.
func TestQualitySKAB(t *testing.T) {
	files := skabFiles(t)
	var all, test, always Report
	cp := skabNAB()
	for _, path := range files {
		m := readSKABFile(t, path)
		_, alarms, err := ScoreMax(detect.Config{}, m)
		if err != nil {
			t.Fatal(err)
		}
		r := Evaluate(m.Labels, alarms, 0)
		all.Add(r)
		if len(m.Labels) > skabTrain {
			test.Add(Evaluate(m.Labels[skabTrain:], alarms[skabTrain:], 0))
			cp.Add(m.Times[skabTrain:], m.Changepoints[skabTrain:], alarms[skabTrain:])
			ones := make([]bool, len(m.Labels)-skabTrain)
			for i := range ones {
				ones[i] = true
			}
			always.Add(Evaluate(m.Labels[skabTrain:], ones, 0))
		}
		rel, _ := filepath.Rel(filepath.Dir(filepath.Dir(path)), path)
		if testing.Verbose() {
			t.Log(line(rel, r))
		}
	}
	t.Log(line("SKAB all rows", all))
	t.Log(line("SKAB test rows", test))
	t.Logf("SKAB test rows: FAR=%.2f%% MAR=%.2f%%", 100*test.Point.FAR(), 100*test.Point.MAR())
	t.Log(line("always-1 test", always))
	logNAB(t, "SKAB test rows", cp)

	// false alarms on SKAB's anomaly-free recording (about 2.6 hours)
	free := readSKABFree(t)
	_, alarms, err := ScoreMax(detect.Config{}, free)
	if err != nil {
		t.Fatal(err)
	}
	fr := Evaluate(free.Labels, alarms, 0)
	hours := free.Times[len(free.Times)-1].Sub(free.Times[0]).Hours()
	t.Logf("SKAB anomaly-free: %d rows, FAR=%.2f%%, %d alarm episodes (%.1f per hour, 8 channels)", len(free.Labels), 100*fr.Point.FAR(), fr.Event.Episodes, float64(fr.Event.Episodes)/hours)
	if far := fr.Point.FAR(); far > skabFreeFARCeiling {
		t.Errorf("false alarm rate %.4f on anomaly-free data is above the ceiling %.4f", far, skabFreeFARCeiling)
	}
	if f := test.Point.F1(); f < skabPointF1Floor {
		t.Errorf("SKAB point-wise F1 %.3f is below the floor %.3f", f, skabPointF1Floor)
	}
	if f := all.Event.F1(); f < skabEventF1Floor {
		t.Errorf("SKAB event-wise F1 %.3f is below the floor %.3f", f, skabEventF1Floor)
	}

	// the same with a row anomalous only when at least 2 of the 8 channels
	// are: an evaluation choice, reported beside the maximum, not instead
	var test2 Report
	for _, path := range files {
		m := readSKABFile(t, path)
		_, alarms, err := ScoreAgree(detect.Config{}, m, 2)
		if err != nil {
			t.Fatal(err)
		}
		if len(m.Labels) > skabTrain {
			test2.Add(Evaluate(m.Labels[skabTrain:], alarms[skabTrain:], 0))
		}
	}
	_, alarms2, err := ScoreAgree(detect.Config{}, free, 2)
	if err != nil {
		t.Fatal(err)
	}
	fr2 := Evaluate(free.Labels, alarms2, 0)
	t.Log(line("SKAB test ≥2 ch", test2))
	t.Logf("SKAB test rows, ≥2 channels: FAR=%.2f%% MAR=%.2f%%; anomaly-free: FAR=%.2f%%, %d alarm episodes", 100*test2.Point.FAR(), 100*test2.Point.MAR(), 100*fr2.Point.FAR(), fr2.Event.Episodes)
}
