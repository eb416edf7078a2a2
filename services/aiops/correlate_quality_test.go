package aiops

import (
	"bytes"
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/aiops-dev/aiops/pkg/correlate"
	"github.com/aiops-dev/aiops/pkg/correlate/eval"
	"github.com/aiops-dev/aiops/pkg/correlate/scenario"
	"github.com/aiops-dev/aiops/pkg/event"
)

// scoreSeed scores one generated storm of the exploration's scenario.
func scoreSeed(t testing.TB, seed uint64, cfg correlate.Config) (eval.Scores, scenario.Scenario) {
	t.Helper()
	s := scenario.Generate(seed, expScenario(t))
	return replayScore(t, s, cfg), s
}

// replayScore runs the replay (the correlator's code behind the gateway's
// decoders) on a generated storm and scores incident membership against
// its truth.
func replayScore(t testing.TB, s scenario.Scenario, cfg correlate.Config) eval.Scores {
	t.Helper()
	return eval.Pairwise(replayScenario(t, s, cfg).ItemAssignments(), s.Truth.Items)
}

// TestCorrelateQuality scores the correlator, defaults only, on generated
// storms it was not tuned on (seeds 101-110; the defaults were chosen on
// seeds 1-5), beside the two naive baselines on the same storms, and gates
// a floor so that a regression fails. Storms of 24 hours are calibrated to
// the difficulty the correlator issue describes (label grouping by service
// 0.09-0.20, a 5-minute window 0.63-0.73); the default 4-hour storms, four
// times denser, are reported as a stress test. QUALITY.md in pkg/correlate
// has the figures.
func TestCorrelateQuality(t *testing.T) {
	if testing.Short() {
		t.Skip("quality test: a few seconds of replays")
	}
	for _, c := range []struct {
		name     string
		duration time.Duration
		floor    float64
	}{{"24h storms", 24 * time.Hour, 0.90}, {"4h storms (dense)", 4 * time.Hour, 0.66}} {
		cfg := scenario.DefaultConfig()
		cfg.Duration = c.duration
		var ours, label, window, count float64
		const seeds = 10
		for seed := uint64(101); seed < 101+seeds; seed++ {
			s := scenario.Generate(seed, cfg)
			sc := replayScore(t, s, correlate.DefaultConfig())
			ours += sc.F1 / seeds
			count += sc.CountRatio / seeds
			label += eval.Pairwise(eval.BaselineByLabel(s, "service"), s.Truth.Items).F1 / seeds
			window += eval.Pairwise(eval.BaselineTimeWindow(s, 5*time.Minute), s.Truth.Items).F1 / seeds
			t.Logf("%s seed %d: %s", c.name, seed, sc)
		}
		t.Logf("%s, seeds 101-110: pairwise F1 %.3f (incident count ratio %.2f); baselines on the same storms: by service %.3f, 5-minute window %.3f",
			c.name, ours, count, label, window)
		if ours < c.floor || ours <= window {
			t.Errorf("%s: mean pairwise F1 %.3f, floor %.2f, 5-minute window %.3f", c.name, ours, c.floor, window)
		}
	}
}

func TestCorrelateExplore(t *testing.T) {
	if os.Getenv("AIOPS_EXP") == "" {
		t.Skip("exploration")
	}
	from, _ := strconv.Atoi(os.Getenv("AIOPS_EXP_FROM"))
	cfg := expRules(t)
	var f1 float64
	for seed := uint64(from); seed < uint64(from)+5; seed++ {
		sc, s := scoreSeed(t, seed, cfg)
		f1 += sc.F1 / 5
		t.Logf("seed %d: %s (true %d)", seed, sc, len(s.Truth.Incidents))
	}
	t.Logf("mean F1 %.3f", f1)
}

func TestCorrelateDiagnose(t *testing.T) {
	if os.Getenv("AIOPS_EXP") == "" {
		t.Skip("exploration")
	}
	seed, _ := strconv.Atoi(os.Getenv("AIOPS_EXP_FROM"))
	s := scenario.Generate(uint64(seed), expScenario(t))
	res := replayScenario(t, s, expRules(t))
	// Split true incidents: one true label in several predicted incidents.
	split := map[string]map[string]int{}
	for item, label := range s.Truth.Items {
		id := res.IncidentOf(item)
		if split[label] == nil {
			split[label] = map[string]int{}
		}
		split[label][id]++
	}
	for label, ids := range split {
		if len(ids) > 1 {
			t.Logf("true %s split over %d: %v", label, len(ids), ids)
		}
	}
	if trace := os.Getenv("AIOPS_EXP_TRACE"); trace != "" {
		items := s.Items()
		for _, it := range items {
			if s.Truth.Items[it.ID] != trace {
				continue
			}
			id := res.IncidentOf(it.ID)
			t.Logf("trace %s %-8s %-20s %-26s %s", it.FirstSeen.Format("15:04:05"), it.Kind, it.Service, it.Labels["alertname"]+it.Labels["__name__"], id)
		}
		for _, inc := range res.Incidents {
			for _, rc := range inc.RootCauses[:min(1, len(inc.RootCauses))] {
				t.Logf("incident %s opened %s root %s services %v", inc.ID, inc.OpenedAt.Format("15:04:05"), rc.Service, inc.Services)
			}
		}
	}
	byLabel := map[string]scenario.Incident{}
	for _, inc := range s.Truth.Incidents {
		byLabel[inc.Label] = inc
	}
	groups := map[string]map[string]int{}
	for item, label := range s.Truth.Items {
		id := res.IncidentOf(item)
		if groups[id] == nil {
			groups[id] = map[string]int{}
		}
		groups[id][label]++
	}
	for id, labels := range groups {
		if len(labels) < 2 {
			continue
		}
		t.Logf("predicted %s holds %d true incidents:", id, len(labels))
		for l, n := range labels {
			inc := byLabel[l]
			t.Logf("   %-14s %-13s root %-16s %s..%s items %d services %v", l, inc.Kind, inc.Root, inc.Start.Format("15:04:05"), inc.End.Format("15:04:05"), n, inc.Services)
		}
	}
	for name, svc := range s.Catalog.Services {
		t.Logf("catalog %s -> %v", name, svc.DependsOn)
	}
}

func TestScenarioCalibrate(t *testing.T) {
	if os.Getenv("AIOPS_EXP") == "" {
		t.Skip("exploration")
	}
	for _, v := range []string{"{}", "{duration: 8h}", "{duration: 12h}", "{duration: 24h}", "{duration: 12h, noise_alerts: 20, noise_anomalies: 15}", "{duration: 24h, noise_alerts: 45, noise_anomalies: 30, incidents: 30}"} {
		cfg := scenario.DefaultConfig()
		if err := strictYAML([]byte(v), &cfg); err != nil {
			t.Fatal(err)
		}
		var lab, win, ours float64
		for seed := uint64(1); seed <= 5; seed++ {
			s := scenario.Generate(seed, cfg)
			lab += eval.Pairwise(eval.BaselineByLabel(s, "service"), s.Truth.Items).F1 / 5
			win += eval.Pairwise(eval.BaselineTimeWindow(s, 5*time.Minute), s.Truth.Items).F1 / 5
			ours += replayScore(t, s, expRules(t)).F1 / 5
		}
		t.Logf("%-70s by service %.3f  5m window %.3f  ours %.3f", v, lab, win, ours)
	}
}

// replayScenario runs s through the correlator's replay with cfg.
func replayScenario(t testing.TB, s scenario.Scenario, cfg correlate.Config) *ReplayResult {
	t.Helper()
	var in bytes.Buffer
	if err := scenario.WriteJSONL(&in, s.Lines); err != nil {
		t.Fatal(err)
	}
	res, err := Replay(context.Background(), &in, cfg, &s.Catalog, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// expRules is the correlator's default configuration with the rules of
// AIOPS_EXP_RULES (YAML) applied, for the exploration tests.
func expRules(t testing.TB) correlate.Config {
	t.Helper()
	cfg := correlate.DefaultConfig()
	if v := os.Getenv("AIOPS_EXP_RULES"); v != "" {
		if err := strictYAML([]byte(v), &cfg); err != nil {
			t.Fatal(err)
		}
	}
	return cfg
}

func expScenario(t testing.TB) scenario.Config {
	cfg := scenario.DefaultConfig()
	if v := os.Getenv("AIOPS_EXP_SCENARIO"); v != "" {
		if err := strictYAML([]byte(v), &cfg); err != nil {
			t.Fatal(err)
		}
	}
	return cfg
}

// TestCorrelateLosses breaks the pairs the correlator gets wrong on seeds
// AIOPS_EXP_FROM..+4 down by the kinds of the true incidents involved:
// false pairs (two true incidents merged) and missed pairs (one true
// incident split), so a rule can be aimed at the largest loss.
func TestCorrelateLosses(t *testing.T) {
	if os.Getenv("AIOPS_EXP") == "" {
		t.Skip("exploration")
	}
	from, _ := strconv.Atoi(os.Getenv("AIOPS_EXP_FROM"))
	cfg := expRules(t)
	falsePairs, missed := map[string]int64{}, map[string]int64{}
	for seed := uint64(from); seed < uint64(from)+5; seed++ {
		s := scenario.Generate(seed, expScenario(t))
		res := replayScenario(t, s, cfg)
		kind := map[string]string{}
		for _, inc := range s.Truth.Incidents {
			kind[inc.Label] = string(inc.Kind)
		}
		// cells[predicted][true label] = items
		cells := map[string]map[string]int64{}
		perTrue := map[string]map[string]int64{}
		for item, label := range s.Truth.Items {
			id := res.IncidentOf(item)
			if id == "" {
				id = "none:" + item
			}
			if cells[id] == nil {
				cells[id] = map[string]int64{}
			}
			cells[id][label]++
			if perTrue[label] == nil {
				perTrue[label] = map[string]int64{}
			}
			perTrue[label][id]++
		}
		for _, labels := range cells {
			var ls []string
			for l := range labels {
				ls = append(ls, l)
			}
			for i := range ls {
				for j := i + 1; j < len(ls); j++ {
					a, b := kind[ls[i]], kind[ls[j]]
					if a > b {
						a, b = b, a
					}
					falsePairs[a+"+"+b] += labels[ls[i]] * labels[ls[j]]
				}
			}
		}
		for label, ids := range perTrue {
			var total, same int64
			for _, n := range ids {
				total += n
				same += n * (n - 1) / 2
			}
			missed[kind[label]] += total*(total-1)/2 - same
		}
	}
	for k, n := range falsePairs {
		t.Logf("false pairs %-28s %d", k, n)
	}
	for k, n := range missed {
		t.Logf("missed pairs %-28s %d", k, n)
	}
}

// alone is the incident of an item that joins none: its own, or its
// series' for an anomaly (a correlator's member is the series).
func alone(it scenario.Item) string {
	if it.Kind == event.KindAnomaly {
		return "alone:" + it.Service + "/" + it.Labels["__name__"]
	}
	return "alone:" + it.ID
}

// catalogHops is the fewest dependency hops from from down to to (0 when
// from does not depend on to).
func catalogHops(c *correlate.Catalog, from, to string) int {
	frontier, seen := []string{from}, map[string]bool{from: true}
	for hops := 1; len(frontier) > 0; hops++ {
		var next []string
		for _, n := range frontier {
			for _, d := range c.Services[n].DependsOn {
				if d == to {
					return hops
				}
				if !seen[d] {
					seen[d] = true
					next = append(next, d)
				}
			}
		}
		frontier = next
	}
	return 0
}

// TestCorrelateOracle bounds what grouping by topology and time can score
// on the storms of AIOPS_EXP_SCENARIO, seeds AIOPS_EXP_FROM..+4, with
// oracles that know more than any correlator does. Each knows every
// planned incident's root, its start and when its last item was first
// seen; an item joins one of the planned incidents between those two
// times when it is first seen whose root is its service or a dependency
// of it, else it stands alone. Of several, "latest" takes the one that
// started last, "closest" the one whose root is the fewest hops below the
// item's service (then the latest). "noise known" also keeps every noise
// and background incident as it truly is; "planned exact" puts every
// planned item in its true incident and lets only noise join by the rule.
// The gaps say where the storms are inseparable: concurrent incidents on
// shared services, noise on the services of a running incident.
func TestCorrelateOracle(t *testing.T) {
	if os.Getenv("AIOPS_EXP") == "" {
		t.Skip("exploration")
	}
	from, _ := strconv.Atoi(os.Getenv("AIOPS_EXP_FROM"))
	names := []string{"topology+time", "noise known", "planned exact"}
	for _, closest := range []bool{false, true} {
		var f1, count [3]float64
		for seed := uint64(from); seed < uint64(from)+5; seed++ {
			s := scenario.Generate(seed, expScenario(t))
			var planned []scenario.Incident
			for _, inc := range s.Truth.Incidents {
				if inc.Kind.Planned() {
					planned = append(planned, inc)
				}
			}
			lastNew := map[string]time.Time{}
			for _, it := range s.Items() {
				if l := s.Truth.Items[it.ID]; it.FirstSeen.After(lastNew[l]) {
					lastNew[l] = it.FirstSeen
				}
			}
			byRule := func(it scenario.Item) string {
				var best *scenario.Incident
				bestHops := 0
				for i := range planned {
					inc := &planned[i]
					if it.FirstSeen.Before(inc.Start) || it.FirstSeen.After(lastNew[inc.Label]) {
						continue
					}
					hops := 0
					if it.Service != inc.Root {
						if hops = catalogHops(&s.Catalog, it.Service, inc.Root); hops == 0 {
							continue
						}
					}
					closer := closest && best != nil && hops < bestHops
					tie := !closest || best == nil || hops == bestHops
					if best == nil || closer || tie && inc.Start.After(best.Start) {
						best, bestHops = inc, hops
					}
				}
				if best == nil {
					return alone(it)
				}
				return best.Label
			}
			assigns := [3]map[string]string{{}, {}, {}}
			for _, it := range s.Items() {
				label := s.Truth.Items[it.ID]
				inc, _ := s.Truth.Incident(label)
				rule := byRule(it)
				assigns[0][it.ID] = rule
				if inc.Kind.Planned() {
					assigns[1][it.ID], assigns[2][it.ID] = rule, label
				} else {
					assigns[1][it.ID], assigns[2][it.ID] = label, rule
				}
			}
			for i, a := range assigns {
				sc := eval.Pairwise(a, s.Truth.Items)
				f1[i] += sc.F1 / 5
				count[i] += sc.CountRatio / 5
			}
		}
		choice := "latest"
		if closest {
			choice = "closest"
		}
		for i, n := range names {
			t.Logf("oracle %-7s %-14s mean F1 %.3f, count ratio %.2f", choice, n, f1[i], count[i])
		}
	}
}
