package aiops

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aiops-dev/aiops/pkg/correlate/crossgen"
	"github.com/aiops-dev/aiops/pkg/correlate/eval"
	"github.com/aiops-dev/aiops/pkg/correlate/scenario"
)

// crossReplay writes a crossgen storm to files and runs `aiops correlate
// replay` on them with the default rules, as someone scoring the
// correlator from outside would, and reads the result back.
func crossReplay(t testing.TB, s *crossgen.Storm) *ReplayResult {
	t.Helper()
	var buf bytes.Buffer
	if err := s.WriteJSONL(&buf); err != nil {
		t.Fatal(err)
	}
	cat, err := s.CatalogYAML()
	if err != nil {
		t.Fatal(err)
	}
	return replayFiles(t, buf.Bytes(), cat)
}

// replayFiles runs `aiops correlate replay` over a storm's lines and
// catalog, with AIOPS_EXP_RULES as its rules when set (the exploration
// tests').
func replayFiles(t testing.TB, lines, catalogYAML []byte) *ReplayResult {
	t.Helper()
	dir := t.TempDir()
	events, catalog, output := filepath.Join(dir, "events.jsonl"), filepath.Join(dir, "catalog.yaml"), filepath.Join(dir, "result.json")
	if err := os.WriteFile(events, lines, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(catalog, catalogYAML, 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"replay", "--input", events, "--catalog", catalog, "--output", output}
	if v := os.Getenv("AIOPS_EXP_RULES"); v != "" {
		rules := filepath.Join(dir, "rules.yaml")
		if err := os.WriteFile(rules, []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args, "--rules", rules)
	}
	var stderr bytes.Buffer
	if err := correlateMain(context.Background(), args, &bytes.Buffer{}, &stderr); err != nil {
		t.Fatalf("replay: %v\n%s", err, stderr.String())
	}
	data, err := os.ReadFile(output)
	if err != nil {
		t.Fatal(err)
	}
	var res ReplayResult
	if err := json.Unmarshal(data, &res); err != nil {
		t.Fatal(err)
	}
	return &res
}

// TestCorrelateCrossCheck scores the correlator, defaults only, on storms
// of pkg/correlate/crossgen: a generator written apart from the one the
// defaults were chosen on (pkg/correlate/scenario), without reading it or
// the correlator's grouping. It logs seeds 1-10 one by one and the means
// over them and over seeds 1-40 (a mean of ten storms still moves by
// several hundredths from one ten to the next). Over seeds 1-40 it checks
// that the storms are as hard as the correlator issue describes
// (by-service grouping 0.09-0.20, a 5-minute window 0.63-0.73) and that
// the correlator beats the 5-minute window and keeps a floor of 0.81
// (seeds 1-20 have been used to choose defaults since session 10, seeds
// 21-40 not; QUALITY.md has both halves). CROSSGEN_DIAG=1 logs the
// true incidents the correlator splits and merges.
func TestCorrelateCrossCheck(t *testing.T) {
	if testing.Short() {
		t.Skip("cross-check: forty day-long replays")
	}
	first := crossRun(t, crossgen.DefaultConfig(), 1, 10, true)
	rest := crossRun(t, crossgen.DefaultConfig(), 11, 30, false)
	m := crossMeans{
		f1: (first.f1 + 3*rest.f1) / 4, p: (first.p + 3*rest.p) / 4, r: (first.r + 3*rest.r) / 4,
		count: (first.count + 3*rest.count) / 4, label: (first.label + 3*rest.label) / 4, window: (first.window + 3*rest.window) / 4,
	}
	t.Logf("mean over seeds 1-40: correlator P=%.3f R=%.3f F1=%.3f count ratio %.2f | by service F1 %.3f | 5-min window F1 %.3f",
		m.p, m.r, m.f1, m.count, m.label, m.window)
	if m.label < 0.09 || m.label > 0.20 {
		t.Errorf("generator calibration: by-service baseline mean F1 %.3f over seeds 1-40, want 0.09-0.20", m.label)
	}
	if m.window < 0.63 || m.window > 0.73 {
		t.Errorf("generator calibration: 5-minute window baseline mean F1 %.3f over seeds 1-40, want 0.63-0.73", m.window)
	}
	if m.f1 <= m.window {
		t.Errorf("correlator mean F1 %.3f over seeds 1-40 does not beat the 5-minute window's %.3f", m.f1, m.window)
	}
	if m.f1 < 0.81 {
		t.Errorf("correlator mean F1 %.3f over seeds 1-40, floor 0.81", m.f1)
	}
}

// TestCorrelateCrossCheckVariants (CROSSGEN_VARIANTS=1) logs the
// correlator's means on variants of the storms, each changing one thing,
// to say which of the storms' features cost it most.
func TestCorrelateCrossCheckVariants(t *testing.T) {
	if os.Getenv("CROSSGEN_VARIANTS") == "" {
		t.Skip("exploration")
	}
	if v := os.Getenv("CROSSGEN_CONFIG"); v != "" {
		// One configuration (JSON of crossgen.Config), in detail.
		cfg := crossgen.DefaultConfig()
		if err := json.Unmarshal([]byte(v), &cfg); err != nil {
			t.Fatal(err)
		}
		crossRun(t, cfg, seedsFrom(), 10, true)
		return
	}
	for _, v := range []struct {
		name string
		edit func(*crossgen.Config)
	}{
		{"defaults", func(*crossgen.Config) {}},
		{"no late hops", func(c *crossgen.Config) { c.LateHops = -1 }},
		{"no concurrent starts", func(c *crossgen.Config) { c.Concurrent = -1 }},
		{"no relapses", func(c *crossgen.Config) { c.Relapses = -1 }},
		{"no anomalies", func(c *crossgen.Config) { c.AnomalyRate = -1 }},
		{"no noise", func(c *crossgen.Config) { c.NoiseAlerts, c.NoiseAnomalies = -1, -1 }},
		{"group_interval 1m", func(c *crossgen.Config) { c.GroupInterval = time.Minute }},
		{"none of these", func(c *crossgen.Config) {
			c.LateHops, c.Concurrent, c.Relapses, c.AnomalyRate, c.NoiseAlerts, c.NoiseAnomalies = -1, -1, -1, -1, -1, -1
		}},
		{"with node and DNS incidents", func(c *crossgen.Config) { c.Beyond = true }},
	} {
		cfg := crossgen.DefaultConfig()
		v.edit(&cfg)
		m := crossRun(t, cfg, seedsFrom(), 10, false)
		t.Logf("%-28s correlator P=%.3f R=%.3f F1=%.3f count ratio %.2f | by service %.3f | 5-min window %.3f",
			v.name, m.p, m.r, m.f1, m.count, m.label, m.window)
	}
}

type crossMeans struct{ f1, p, r, count, label, window float64 }

// seedsFrom is the first seed of the exploration tests: CROSSGEN_FROM, or 1.
func seedsFrom() uint64 {
	if v, err := strconv.ParseUint(os.Getenv("CROSSGEN_FROM"), 10, 64); err == nil && v > 0 {
		return v
	}
	return 1
}

// crossRun replays seeds from..from+seeds-1 of cfg and returns the means;
// verbose logs each seed, the means and the lost pairs.
func crossRun(t *testing.T, cfg crossgen.Config, from uint64, seeds int, verbose bool) crossMeans {
	var mean crossMeans
	losses := map[string]int{}
	late := map[string][2]int{}
	n := float64(seeds)
	for seed := from; seed < from+uint64(seeds); seed++ {
		s := crossgen.Generate(seed, cfg)
		res := crossReplay(t, s)
		assign := res.ItemAssignments()
		sc := eval.Pairwise(assign, s.Truth)
		label := eval.Pairwise(s.BaselineByLabel("service"), s.Truth)
		window := eval.Pairwise(s.BaselineTimeWindow(5*time.Minute), s.Truth)
		if verbose {
			t.Logf("seed %2d: correlator P=%.3f R=%.3f F1=%.3f incidents %d/%d (ratio %.2f) | by service F1 %.3f | 5-min window F1 %.3f | %d items, %d notifications",
				seed, sc.Precision, sc.Recall, sc.F1, sc.PredictedIncidents, sc.TrueIncidents, sc.CountRatio, label.F1, window.F1, sc.Items, s.Notifications)
		}
		mean.f1 += sc.F1 / n
		mean.p += sc.Precision / n
		mean.r += sc.Recall / n
		mean.count += sc.CountRatio / n
		mean.label += label.F1 / n
		mean.window += window.F1 / n
		if os.Getenv("CROSSGEN_DIAG") != "" {
			diagnose(t, s, res)
		}
		lossTable(s, assign, losses)
		lateTable(s, assign, late)
	}
	if !verbose {
		return mean
	}
	t.Logf("mean over seeds %d-%d: correlator P=%.3f R=%.3f F1=%.3f count ratio %.2f | by service F1 %.3f | 5-min window F1 %.3f",
		from, from+uint64(seeds)-1, mean.p, mean.r, mean.f1, mean.count, mean.label, mean.window)
	var keys []string
	for k := range losses {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		return losses[keys[i]] > losses[keys[j]] || losses[keys[i]] == losses[keys[j]] && keys[i] < keys[j]
	})
	for _, k := range keys[:min(20, len(keys))] {
		t.Logf("pairs lost, all seeds: %-60s %d", k, losses[k])
	}
	var lk []string
	for k := range late {
		lk = append(lk, k)
	}
	slices.Sort(lk)
	for _, k := range lk {
		t.Logf("items of planned incidents first seen %s after the one before: %d of %d outside the incident's main part", k, late[k][0], late[k][1])
	}
	return mean
}

// diagnose logs, for one storm, the true incidents the correlator split
// (with where each part went) and the predicted incidents that hold
// several true ones, and the pairs lost to each by kind.
func diagnose(t *testing.T, s *crossgen.Storm, res *ReplayResult) {
	t.Helper()
	assign := res.ItemAssignments()
	kindOf := map[string]string{}
	for _, inc := range s.Incidents {
		kindOf[inc.Label] = string(inc.Kind)
	}
	first := map[string]time.Time{}
	items := map[string]crossgen.Item{}
	for _, it := range s.Items() {
		first[it.ID] = it.FirstSeen
		items[it.ID] = it
	}
	predOf := func(id string) string {
		if p := assign[id]; p != "" {
			return p
		}
		return "none:" + id
	}
	missed, falsePairs := map[string]int{}, map[string]int{}
	for _, inc := range s.Incidents {
		parts := map[string][]string{}
		for _, id := range inc.Items {
			parts[predOf(id)] = append(parts[predOf(id)], id)
		}
		if len(parts) < 2 {
			continue
		}
		total, same := len(inc.Items), 0
		for _, p := range parts {
			same += len(p) * (len(p) - 1) / 2
		}
		missed[string(inc.Kind)] += total*(total-1)/2 - same
		var desc []string
		for p, ids := range parts {
			sort.Slice(ids, func(i, j int) bool { return first[ids[i]].Before(first[ids[j]]) })
			var what []string
			for _, id := range ids[:min(4, len(ids))] {
				it := items[id]
				what = append(what, fmt.Sprintf("%s %s/%s", it.FirstSeen.Format("15:04:05"), it.Service, it.Labels["alertname"]+it.Labels["__name__"]))
			}
			desc = append(desc, fmt.Sprintf("%s[%d: %s]", short(p), len(ids), strings.Join(what, ", ")))
		}
		slices.Sort(desc)
		t.Logf("  split %s (root %s, %s..%s, relapsed %v, concurrent %q) into %d: %s", inc.Label, inc.Root, inc.Start.Format("15:04"), inc.End.Format("15:04"),
			inc.Relapsed, inc.Concurrent, len(parts), strings.Join(desc, " | "))
	}
	held := map[string]map[string]int{}
	for id, label := range s.Truth {
		p := predOf(id)
		if held[p] == nil {
			held[p] = map[string]int{}
		}
		held[p][label]++
	}
	for p, labels := range held {
		if len(labels) < 2 {
			continue
		}
		var ls []string
		for l := range labels {
			ls = append(ls, l)
		}
		slices.Sort(ls)
		var desc []string
		for i, a := range ls {
			inc, _ := s.Incident(a)
			desc = append(desc, fmt.Sprintf("%s(%d, root %s, %s)", a, labels[a], inc.Root, inc.Start.Format("15:04")))
			for _, b := range ls[i+1:] {
				ka, kb := kindOf[a], kindOf[b]
				if ka > kb {
					ka, kb = kb, ka
				}
				falsePairs[ka+"+"+kb] += labels[a] * labels[b]
			}
		}
		t.Logf("  merged in %s: %s", short(p), strings.Join(desc, ", "))
	}
	t.Logf("  missed pairs by kind %v; false pairs by kinds %v", missed, falsePairs)
}

func short(id string) string {
	if len(id) > 14 {
		return id[:14]
	}
	return id
}

// lossTable counts the item pairs the correlator gets wrong: missed (one
// true incident, two predicted) and false (two true, one predicted), by
// the true incidents' kinds, how far apart the two items were first seen,
// and how their services relate in the catalog.
func lossTable(s *crossgen.Storm, assign map[string]string, into map[string]int) {
	items := s.Items()
	kind := map[string]string{}
	for _, inc := range s.Incidents {
		kind[inc.Label] = string(inc.Kind)
	}
	pred := func(id string) string {
		if p := assign[id]; p != "" {
			return p
		}
		return "none:" + id
	}
	for i := range items {
		for j := i + 1; j < len(items); j++ {
			a, b := items[i], items[j]
			ta, tb := s.Truth[a.ID], s.Truth[b.ID]
			same, together := ta == tb, pred(a.ID) == pred(b.ID)
			if same == together {
				continue
			}
			gap := b.FirstSeen.Sub(a.FirstSeen)
			bucket := ">30m"
			for _, g := range []time.Duration{2 * time.Minute, 5 * time.Minute, 10 * time.Minute, 30 * time.Minute} {
				if gap <= g {
					bucket = "<=" + g.String()
					break
				}
			}
			rel := "unrelated"
			switch {
			case a.Service == b.Service:
				rel = "same service"
			case s.Catalog.DependsTransitively(a.Service, b.Service) || s.Catalog.DependsTransitively(b.Service, a.Service):
				rel = "dependency path"
			}
			if same {
				into[fmt.Sprintf("missed %-8s %-15s gap %s", kind[ta], rel, bucket)]++
			} else {
				ka, kb := kind[ta], kind[tb]
				if ka > kb {
					ka, kb = kb, ka
				}
				into[fmt.Sprintf("false  %-17s %-15s gap %s", ka+"+"+kb, rel, bucket)]++
			}
		}
	}
}

// lateTable counts, for the items of planned (not noise) true incidents,
// how many land outside the incident's main predicted part (the one
// holding most of its items), by how long after the previous item of the
// same incident the item was first seen.
func lateTable(s *crossgen.Storm, assign map[string]string, into map[string][2]int) {
	first := map[string]time.Time{}
	for _, it := range s.Items() {
		first[it.ID] = it.FirstSeen
	}
	for _, inc := range s.Incidents {
		if inc.Kind == crossgen.KindNoise || len(inc.Items) < 2 {
			continue
		}
		ids := slices.Clone(inc.Items)
		sort.Slice(ids, func(i, j int) bool { return first[ids[i]].Before(first[ids[j]]) })
		size := map[string]int{}
		main := ""
		for _, id := range ids {
			size[assign[id]]++
			if size[assign[id]] > size[main] {
				main = assign[id]
			}
		}
		for i, id := range ids[1:] {
			gap := first[id].Sub(first[ids[i]])
			bucket := "> 10m"
			switch {
			case gap <= 2*time.Minute:
				bucket = "<= 2m"
			case gap <= 5*time.Minute:
				bucket = "2-5m"
			case gap <= 10*time.Minute:
				bucket = "5-10m"
			}
			c := into[bucket]
			if assign[id] != main || assign[id] == "" {
				c[0]++
			}
			c[1]++
			into[bucket] = c
		}
	}
}

// TestCorrelateTune (AIOPS_EXP=1) scores the rules of AIOPS_EXP_RULES on
// the storms the defaults are chosen on: crossgen, blindgen, fleetgen,
// specgen, stagegen, opsgen, issuegen and wordgen seeds 1-20 and the scenario's seeds 1-5,
// day-long and dense. AIOPS_EXP_HELD=1 scores the held-out ones instead
// (seeds 21-40 of the six, scenario 101-110): look at those once a choice is
// made, never to make it.
func TestCorrelateTune(t *testing.T) {
	if os.Getenv("AIOPS_EXP") == "" {
		t.Skip("exploration")
	}
	cross, scen, n := uint64(1), uint64(1), 5
	if os.Getenv("AIOPS_EXP_HELD") != "" {
		cross, scen, n = 21, 101, 10
	}
	m := crossRun(t, crossgen.DefaultConfig(), cross, 20, false)
	t.Logf("crossgen seeds %d-%d: F1 %.3f (P %.3f R %.3f) count ratio %.2f", cross, cross+19, m.f1, m.p, m.r, m.count)
	f1, p, r, count, _, _ := stormRun(t, blindgenStorm, cross, 20, false)
	t.Logf("blindgen seeds %d-%d: F1 %.3f (P %.3f R %.3f) count ratio %.2f", cross, cross+19, f1, p, r, count)
	f1, p, r, count, _, _ = stormRun(t, fleetgenStorm, cross, 20, false)
	t.Logf("fleetgen seeds %d-%d: F1 %.3f (P %.3f R %.3f) count ratio %.2f", cross, cross+19, f1, p, r, count)
	f1, p, r, count, _, _ = stormRun(t, specgenStorm, cross, 20, false)
	t.Logf("specgen seeds %d-%d: F1 %.3f (P %.3f R %.3f) count ratio %.2f", cross, cross+19, f1, p, r, count)
	f1, p, r, count, _, _ = stormRun(t, stagegenStorm, cross, 20, false)
	t.Logf("stagegen seeds %d-%d: F1 %.3f (P %.3f R %.3f) count ratio %.2f", cross, cross+19, f1, p, r, count)
	f1, p, r, count, _, _ = stormRun(t, opsgenStorm, cross, 20, false)
	t.Logf("opsgen seeds %d-%d: F1 %.3f (P %.3f R %.3f) count ratio %.2f", cross, cross+19, f1, p, r, count)
	f1, p, r, count, _, _ = stormRun(t, issuegenStorm, cross, 20, false)
	t.Logf("issuegen seeds %d-%d: F1 %.3f (P %.3f R %.3f) count ratio %.2f", cross, cross+19, f1, p, r, count)
	f1, p, r, count, _, _ = stormRun(t, wordgenStorm, cross, 20, false)
	t.Logf("wordgen seeds %d-%d: F1 %.3f (P %.3f R %.3f) count ratio %.2f", cross, cross+19, f1, p, r, count)
	cfg := expRules(t)
	for _, d := range []time.Duration{24 * time.Hour, 4 * time.Hour} {
		sc := scenario.DefaultConfig()
		sc.Duration = d
		var f1, p, r, count float64
		for seed := scen; seed < scen+uint64(n); seed++ {
			s := replayScore(t, scenario.Generate(seed, sc), cfg)
			f1, p, r, count = f1+s.F1/float64(n), p+s.Precision/float64(n), r+s.Recall/float64(n), count+s.CountRatio/float64(n)
		}
		t.Logf("scenario %s seeds %d-%d: F1 %.3f (P %.3f R %.3f) count ratio %.2f", d, scen, scen+uint64(n)-1, f1, p, r, count)
	}
	rs, rc := rootRun(t, scen, n, cross, 20)
	_, _ = logRoots(t, fmt.Sprintf("scenario 24h seeds %d-%d", scen, scen+uint64(n)-1), rs)
	_, _ = logRoots(t, fmt.Sprintf("crossgen seeds %d-%d", cross, cross+19), rc)
}
