package eval

import (
	"testing"
	"time"

	"github.com/aiops-dev/aiops/pkg/correlate/scenario"
)

var baselineSeeds = []uint64{1, 2, 3, 4, 5}

// TestBaselines prints the two baselines' scores on the default storm of
// five seeds (go test -run TestBaselines -v). It fails only if the storms
// became easy enough for a naive grouping to do well: a correlator is
// measured against these numbers.
func TestBaselines(t *testing.T) {
	var sumLabel, sumWindow float64
	for _, seed := range baselineSeeds {
		s := scenario.Generate(seed, scenario.DefaultConfig())
		truth := s.Truth.Items
		byService := Pairwise(BaselineByLabel(s, "service"), truth)
		window := Pairwise(BaselineTimeWindow(s, 5*time.Minute), truth)
		sum := s.Summary()
		t.Logf("seed %d: %d lines, %d notifications, %d items, %d true incidents (%d planned)", seed, sum.Lines, sum.Notifications, len(truth), sum.Total, sum.Planned)
		t.Logf("seed %d: by service:    %v", seed, byService)
		t.Logf("seed %d: 5-minute window: %v", seed, window)
		for _, extra := range []struct {
			name   string
			assign map[string]string
		}{
			{"by alertname", BaselineByLabel(s, "alertname")},
			{"by team label", BaselineByLabel(s, "team")},
			{"1-minute window", BaselineTimeWindow(s, time.Minute)},
			{"2-minute window", BaselineTimeWindow(s, 2*time.Minute)},
		} {
			sc := Pairwise(extra.assign, truth)
			t.Logf("seed %d:   (%s: P=%.3f R=%.3f F1=%.3f, %d incidents)", seed, extra.name, sc.Precision, sc.Recall, sc.F1, sc.PredictedIncidents)
		}
		sumLabel += byService.F1
		sumWindow += window.F1
		if byService.F1 > 0.4 || window.F1 > 0.5 {
			t.Errorf("seed %d: a naive baseline scores F1 %.3f (by service) / %.3f (5-minute window): the storm is too easy", seed, byService.F1, window.F1)
		}
		if perfect := Pairwise(truth, truth); perfect.F1 != 1 || perfect.CountRatio != 1 {
			t.Errorf("seed %d: the truth scores %v against itself", seed, perfect)
		}
	}
	n := float64(len(baselineSeeds))
	t.Logf("mean pairwise F1 over %d seeds: by service %.3f, 5-minute window %.3f", len(baselineSeeds), sumLabel/n, sumWindow/n)
}

func TestBaselinesAssignEveryItem(t *testing.T) {
	s := scenario.Generate(9, scenario.DefaultConfig())
	for name, assign := range map[string]map[string]string{
		"by service":  BaselineByLabel(s, "service"),
		"time window": BaselineTimeWindow(s, 5*time.Minute),
	} {
		if len(assign) != len(s.Truth.Items) {
			t.Errorf("%s: %d items assigned, truth has %d", name, len(assign), len(s.Truth.Items))
		}
		for id := range s.Truth.Items {
			if _, ok := assign[id]; !ok {
				t.Errorf("%s: item %s not assigned", name, id)
			}
		}
	}
}

func TestBaselineTimeWindowChains(t *testing.T) {
	// Items first seen at 0, 4, 8 and 14 minutes: a 5-minute window
	// chains the first three (each within 5 minutes of the previous one,
	// 8 minutes end to end) and starts over at 14.
	at := func(min int) time.Time { return scenario.DefaultStart.Add(time.Duration(min) * time.Minute) }
	alert := func(fp, svc string, min int) scenario.Line {
		labels := map[string]string{"alertname": "HighLatency", "service": svc, "fp": fp}
		return scenario.Line{Type: scenario.TypeAlertmanager, Time: at(min), Payload: &scenario.Webhook{
			Version: "4", Status: "firing",
			Alerts: []scenario.Alert{{Status: "firing", Labels: labels, StartsAt: at(min), Fingerprint: scenario.AlertFingerprint(labels)}},
		}}
	}
	lines := []scenario.Line{alert("1", "a", 0), alert("2", "b", 4), alert("1", "a", 7), alert("3", "a", 8), alert("4", "b", 14)}
	s := scenario.Scenario{Lines: lines}
	items := s.Items()
	if len(items) != 4 {
		t.Fatalf("%d items, want 4 (the repeat at 7 minutes is not an item)", len(items))
	}
	w := BaselineTimeWindow(s, 5*time.Minute)
	if w[items[0].ID] != w[items[1].ID] || w[items[1].ID] != w[items[2].ID] || w[items[2].ID] == w[items[3].ID] {
		t.Errorf("window assignment %v", w)
	}
	l := BaselineByLabel(s, "service")
	if l[items[0].ID] != l[items[2].ID] || l[items[1].ID] != l[items[3].ID] || l[items[0].ID] == l[items[1].ID] {
		t.Errorf("label assignment %v", l)
	}
}

// A trickle of items 4 minutes apart is one chain of 5-minute gaps, and
// two 5-minute windows.
func TestChainAndWindowsByTime(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	items := []Sighting{{"a", t0}, {"b", t0.Add(4 * time.Minute)}, {"c", t0.Add(8 * time.Minute)}, {"d", t0.Add(20 * time.Minute)}}
	groups := func(m map[string]string) [4]string { return [4]string{m["a"], m["b"], m["c"], m["d"]} }
	chain, windows := groups(ChainByTime(items, 5*time.Minute)), groups(WindowsByTime(items, 5*time.Minute))
	if chain[0] != chain[1] || chain[1] != chain[2] || chain[2] == chain[3] {
		t.Errorf("chain %v, want a, b, c together and d apart", chain)
	}
	if windows[0] != windows[1] || windows[1] == windows[2] || windows[2] == windows[3] {
		t.Errorf("windows %v, want a with b, c apart, d apart", windows)
	}
}
