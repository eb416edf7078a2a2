package aiops

import (
	"bytes"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aiops-dev/aiops/pkg/correlate/blindgen"
	"github.com/aiops-dev/aiops/pkg/correlate/eval"
	"github.com/aiops-dev/aiops/pkg/correlate/fleetgen"
	"github.com/aiops-dev/aiops/pkg/correlate/issuegen"
	"github.com/aiops-dev/aiops/pkg/correlate/opsgen"
	"github.com/aiops-dev/aiops/pkg/correlate/specgen"
	"github.com/aiops-dev/aiops/pkg/correlate/stagegen"
	"github.com/aiops-dev/aiops/pkg/correlate/wordgen"
)

// blindStorm is a storm of a generator written blind to the correlator
// (blindgen, fleetgen): its lines, catalog and truth, and the two
// baselines' assignments.
type blindStorm struct {
	lines           [][]byte
	catalog         []byte
	truth           map[string]string
	service, window map[string]string
}

func blindgenStorm(seed uint64) blindStorm {
	s := blindgen.Generate(seed, blindgen.DefaultConfig())
	return blindStorm{s.Lines, s.Catalog, s.Truth, s.BaselineByService(), s.BaselineTimeWindow(5 * time.Minute)}
}

func specgenStorm(seed uint64) blindStorm {
	s := specgen.Generate(seed, specgen.DefaultConfig())
	return blindStorm{s.Lines, s.Catalog, s.Truth, s.BaselineByService(), s.BaselineTimeWindow(5 * time.Minute)}
}

func stagegenStorm(seed uint64) blindStorm {
	s := stagegen.Generate(seed, stagegen.DefaultConfig())
	return blindStorm{s.Lines, s.Catalog, s.Truth, s.BaselineByService(), s.BaselineTimeWindow(5 * time.Minute)}
}

func opsgenStorm(seed uint64) blindStorm {
	s := opsgen.Generate(seed, opsgen.DefaultConfig())
	return blindStorm{s.Lines, s.Catalog, s.Truth, s.BaselineByService(), s.BaselineTimeWindow(5 * time.Minute)}
}

func issuegenStorm(seed uint64) blindStorm {
	s := issuegen.Generate(seed, issuegen.DefaultConfig())
	items, err := issuegen.Items(s.Lines)
	if err != nil {
		panic(err) // the generator's own lines
	}
	return blindStorm{s.Lines, s.Catalog, s.Truth, issuegen.ByLabel(items, "service"), eval.WindowsByTime(issuegen.Sightings(items), 5*time.Minute)}
}

func wordgenStorm(seed uint64) blindStorm {
	s := wordgen.Generate(seed, wordgen.DefaultConfig())
	alerts, err := wordgen.Alerts(s.Lines)
	if err != nil {
		panic(err) // the generator's own lines
	}
	return blindStorm{s.Lines, s.Catalog, s.Truth, wordgen.ByLabel(alerts, "service"), eval.ChainByTime(wordgen.Sightings(alerts), 5*time.Minute)}
}

func fleetgenStorm(seed uint64) blindStorm {
	s := fleetgen.Generate(seed, fleetgen.DefaultConfig())
	return blindStorm{s.Lines, s.Catalog, s.Truth, s.BaselineByService(), s.BaselineTimeWindow(5 * time.Minute)}
}

// stormRun replays the storms of gen, seeds from..from+n-1, with the
// defaults (or AIOPS_EXP_RULES) and returns the correlator's mean
// pairwise scores and the baselines'.
func stormRun(t *testing.T, gen func(uint64) blindStorm, from uint64, n int, verbose bool) (f1, p, r, count, service, window float64) {
	t.Helper()
	k := float64(n)
	missed, falsePairs, pairs := map[string]int{}, map[string]int{}, map[string]int{}
	losses := os.Getenv("AIOPS_EXP_LOSSES") != ""
	for seed := from; seed < from+uint64(n); seed++ {
		s := gen(seed)
		res := replayFiles(t, append(bytes.Join(s.lines, []byte("\n")), '\n'), s.catalog)
		assign := res.ItemAssignments() // alert fingerprints and anomaly event ids
		if losses {
			tallyLosses(assign, s.truth, missed, falsePairs, pairs)
		}
		sc := eval.Pairwise(assign, s.truth)
		by := eval.Pairwise(s.service, s.truth)
		win := eval.Pairwise(s.window, s.truth)
		if verbose {
			t.Logf("seed %2d: correlator P=%.3f R=%.3f F1=%.3f incidents %d/%d | by service %.3f | 5-min window %.3f",
				seed, sc.Precision, sc.Recall, sc.F1, sc.PredictedIncidents, sc.TrueIncidents, by.F1, win.F1)
		}
		f1, p, r, count = f1+sc.F1/k, p+sc.Precision/k, r+sc.Recall/k, count+sc.CountRatio/k
		service, window = service+by.F1/k, window+win.F1/k
	}
	for _, kind := range slices.Sorted(maps.Keys(pairs)) {
		t.Logf("%s: %d of %d true pairs missed", kind, missed[kind], pairs[kind])
	}
	for _, kinds := range slices.Sorted(maps.Keys(falsePairs)) {
		t.Logf("%s: %d false pairs", kinds, falsePairs[kinds])
	}
	return
}

// tallyLosses adds, by the kind of true incident (the word after its
// number in ids such as "inc-007-cascade"; "noise" for the rest), the
// true pairs (pairs) and those the correlator split (missed), and the
// pairs it joined across two true incidents (falsePairs, by both kinds).
// AIOPS_EXP_LOSSES=1 logs them: where a generator's storms lose.
func tallyLosses(assign, truth map[string]string, missed, falsePairs, pairs map[string]int) {
	kind := func(id string) string {
		if p := strings.SplitN(id, "-", 3); len(p) == 3 && p[0] == "inc" {
			return p[2]
		}
		return "noise"
	}
	fps := slices.Sorted(maps.Keys(truth))
	for i, a := range fps {
		for _, b := range fps[i+1:] {
			same, joined := truth[a] == truth[b], assign[a] != "" && assign[a] == assign[b]
			switch {
			case same:
				pairs[kind(truth[a])]++
				if !joined {
					missed[kind(truth[a])]++
				}
			case joined:
				ks := []string{kind(truth[a]), kind(truth[b])}
				slices.Sort(ks)
				falsePairs[ks[0]+" + "+ks[1]]++
			}
		}
	}
}

// TestCorrelateBlindCheck scores the correlator, defaults only, on storms
// of pkg/correlate/blindgen: a third generator, written in session 11 by
// someone who read neither the correlator nor the other two generators,
// calibrated to the issue's baselines before the correlator ever ran on
// it (the defaults of then scored 0.643 on seeds 1-20, 0.632 on 21-40,
// under the 5-minute window). Seeds 1-20 have been used to choose
// defaults since (shared_services, shared_burst); seeds 21-40 are held
// out. It checks that the correlator beats the 5-minute window on each
// half and keeps a floor of 0.72 over seeds 1-40. BLINDGEN_VERBOSE=1 logs
// each seed.
func TestCorrelateBlindCheck(t *testing.T) {
	blindCheck(t, blindgenStorm, "blindgen", 0.72, true)
}

// blindCheck replays seeds 1-20 and 21-40 (held out) of gen, logs the
// correlator's means beside the baselines' (NAME_VERBOSE=1, the name in
// capitals, logs each seed), and fails when their mean F1 is under floor,
// when a half does not beat grouping by service, or, with beatWindow, the
// 5-minute window.
func blindCheck(t *testing.T, gen func(uint64) blindStorm, name string, floor float64, beatWindow bool) {
	if testing.Short() {
		t.Skip(name + " check: forty replays")
	}
	verbose := os.Getenv(strings.ToUpper(name)+"_VERBOSE") != ""
	var mean float64
	for _, half := range []struct {
		name string
		from uint64
	}{{"seeds 1-20", 1}, {"seeds 21-40 (held out)", 21}} {
		f1, p, r, count, service, window := stormRun(t, gen, half.from, 20, verbose)
		t.Logf("%s %s: correlator P=%.3f R=%.3f F1=%.3f count ratio %.2f | by service %.3f | 5-min window %.3f",
			name, half.name, p, r, f1, count, service, window)
		if f1 <= service || beatWindow && f1 <= window {
			t.Errorf("%s %s: correlator F1 %.3f does not beat the baselines (by service %.3f, 5-minute window %.3f)", name, half.name, f1, service, window)
		}
		mean += f1 / 2
	}
	if mean < floor {
		t.Errorf("correlator mean F1 %.3f over %s seeds 1-40, floor %.2f", mean, name, floor)
	}
}

// TestCorrelateFleetCheck scores the correlator, defaults only, on storms
// of pkg/correlate/fleetgen: a fourth generator, written in session 12 by
// someone who read neither the correlator nor the other generators (a
// multi-region SaaS platform under kube-prometheus-stack, whose alerts
// name their service by the convention of each rule family), calibrated
// to the issue's baselines before the correlator ran on it. The defaults
// of then scored 0.490 on seeds 1-20 and 0.485 on 21-40, far under the
// 5-minute window; seeds 1-20 have been used to choose defaults since
// (alert_storms, location_bursts), seeds 21-40 are held out. The
// correlator was level with the window on the held-out half (0.660,
// the window 0.658) until slow alerts joined the failure they waited on
// (session 17: 0.685 on seeds 1-20 and 21-40). It checks that the
// correlator beats the 5-minute window on each half and keeps a floor of
// 0.67 over seeds 1-40. FLEETGEN_VERBOSE=1 logs each seed.
func TestCorrelateFleetCheck(t *testing.T) {
	blindCheck(t, fleetgenStorm, "fleetgen", 0.67, true)
}

// TestCorrelateSpecCheck scores the correlator, defaults only, on storms
// of pkg/correlate/specgen: a fifth generator, written in session 12 from
// the issue's words alone by someone who read neither the correlator nor
// the other generators, as the issue's author might score it; calibrated
// to the issue's baselines before the correlator ran on it. The defaults
// of then (and of the session's start) scored 0.973 on seeds 1-20 and
// 0.943 on seeds 21-40, count ratio 0.92 (0.960, 0.91 since session 15;
// 0.967, 0.95 since session 16). It
// checks that the correlator beats the 5-minute window on each half and
// keeps a floor of 0.93 over seeds 1-40. SPECGEN_VERBOSE=1 logs each seed.
func TestCorrelateSpecCheck(t *testing.T) {
	blindCheck(t, specgenStorm, "specgen", 0.93, true)
}

// TestCorrelateStageCheck scores the correlator, defaults only, on storms
// of pkg/correlate/stagegen: a sixth generator, written in session 13 by
// someone who read neither the correlator nor the other generators, of
// storms as the whole pipeline sees them (detector anomalies and log
// error bursts beside Alertmanager's alerts and CD's changes, over an
// incomplete catalog), calibrated to the issue's baselines before the
// correlator ran on it. A catalog with a dependency cycle (7 seeds of 40)
// stopped the replay; with cycles broken the defaults of then scored
// 0.492 on seeds 1-20 and 0.556 on 21-40, a long anomaly episode split
// wherever the detector's updates came further apart than quiet_period
// (QUALITY.md); 0.654 and 0.728 in session 13, 0.686 and 0.738 since
// undeclared services' signals join what they are guessed to call
// (session 14), 0.704 and 0.744 since their guessed calls count as the way
// a failure came to them (session 15), 0.763 and 0.801 since a failure
// coming back on its root is one incident (session 17). Seeds 1-20 may be
// used to choose defaults, 21-40 are held out; the test keeps a floor of
// 0.76 over seeds 1-40 and checks the
// correlator beats grouping by service and the 5-minute window on each
// half.
// STAGEGEN_VERBOSE=1 logs each seed.
func TestCorrelateStageCheck(t *testing.T) {
	blindCheck(t, stagegenStorm, "stagegen", 0.76, true)
}

// TestCorrelateOpsCheck scores the correlator, defaults only, on storms
// of pkg/correlate/opsgen: a seventh generator, written in session 16
// from the issue's words by someone who read neither the correlator nor
// the other generators (an e-commerce estate of 40-60 services behind a
// real Alertmanager's routing tree, inhibition and per-team alert names,
// a catalog missing 5% of the dependencies), calibrated to the issue's
// baselines on seeds 1001-1150 before the correlator ran on it. The
// defaults of then, run once on it, scored 0.820 on seeds 1-20, 0.804 on
// 21-40 and 0.823 on 41-80 (count ratio 1.09), the 5-minute window 0.717,
// 0.702 and 0.704; 0.825, 0.806 and 0.828 since slow alerts join the
// failure they waited on (session 17). Seeds 1-20 may be used to choose
// defaults, 21-40 are held out. It checks that the correlator beats the 5-minute window on
// each half and keeps a floor of 0.78 over seeds 1-40. OPSGEN_VERBOSE=1
// logs each seed.
func TestCorrelateOpsCheck(t *testing.T) {
	blindCheck(t, opsgenStorm, "opsgen", 0.78, true)
}

// TestCorrelateIssueCheck scores the correlator, defaults only, on storms
// of pkg/correlate/issuegen: an eighth generator, written in session 25
// from the issue's words by someone who read neither the correlator nor
// the other generators (a web shop of 56 services behind a model of
// Prometheus and Alertmanager, blackbox probes of its public URLs under
// the exporter's name), calibrated to the issue's baselines on seeds
// 1001-1100 before the correlator ran on it. The defaults of then, run
// once on it, scored 0.842 on seeds 1-20 and 0.836 on 21-40 (count ratio
// 1.06); 0.900 and 0.873 since signals the catalog cannot place join what
// spreads now (unplaced_signals, session 25); 0.926 and 0.901 since the
// rules of session 26 (TestCorrelateWordCheck; a consumer's lag a slow
// alert). Seeds 1-20 may be used to
// choose defaults, 21-40 are held out. It checks that the correlator
// beats the 5-minute window on each half and keeps a floor of 0.86 over
// seeds 1-40. ISSUEGEN_VERBOSE=1 logs each seed.
func TestCorrelateIssueCheck(t *testing.T) {
	blindCheck(t, issuegenStorm, "issuegen", 0.86, true)
}

// TestCorrelateWordCheck scores the correlator, defaults only, on storms
// of pkg/correlate/wordgen: a ninth generator, written in sessions 25-26
// from the issue's words by someone who read neither the correlator nor
// the other generators (a video streaming platform on Kubernetes whose
// alerts name their component the way each monitoring source does:
// Istio's destination_service_name, an SLO's name, kube-state-metrics'
// workload labels, a datastore exporter's own service), calibrated to the
// issue's baselines on seeds 2001-2100 before the correlator ran on it.
// The defaults of then, run once on it, scored 0.585 on seeds 1-20 and
// 0.594 on 21-40 (count ratio 1.27 and 1.20), under the 5-minute chain
// on startsAt (0.706, 0.673): precision 0.90, recall 0.44. Five rules
// chosen on seeds 1-20 in session 26 (names that start with a catalogued
// one, SLO slow burns as slow alerts, alerts first seen resolved, unplaced
// signals adopted, slow alerts waiting on a failure just ended) brought
// 0.855 on seeds 1-20 and 0.831 on the held-out 21-40 (count ratio 1.03);
// a sixth (a rollback does not keep out a slow alert) 0.859 and 0.834.
// Seeds 1-20 may be used to choose defaults, 21-40 are held out. It checks
// that the correlator beats the 5-minute chain on each half and keeps a
// floor of 0.82 over seeds 1-40. WORDGEN_VERBOSE=1 logs each seed.
func TestCorrelateWordCheck(t *testing.T) {
	blindCheck(t, wordgenStorm, "wordgen", 0.82, true)
}
