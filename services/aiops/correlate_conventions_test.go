package aiops

import (
	"encoding/json"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aiops-dev/aiops/pkg/correlate/crossgen"
	"github.com/aiops-dev/aiops/pkg/correlate/eval"
)

// TestCorrelateLabelConventions replays storms whose alerts name their
// service another way than a `service` label, as other shops label them:
// the service in `app` under a scrape job (`job: kubernetes-pods`, which
// the gateway takes for the service), in `app.kubernetes.io/name` alone,
// or in other letter case than the catalog's. The correlator finds the
// catalogued service the same, so each scores as the storms as generated
// (crossgen seeds 1-5: 0.785 each). Before it looked at labels they
// scored 0.558, 0.558 and 0.235.
func TestCorrelateLabelConventions(t *testing.T) {
	if testing.Short() {
		t.Skip("five day-long replays per convention")
	}
	conventions := []struct {
		name string
		edit func(labels map[string]string)
	}{
		{"as generated", func(map[string]string) {}},
		{"app under a scrape job", func(l map[string]string) {
			if s, ok := l["service"]; ok {
				delete(l, "service")
				l["app"], l["job"] = s, "kubernetes-pods"
			}
		}},
		{"app.kubernetes.io/name alone", func(l map[string]string) {
			if s, ok := l["service"]; ok {
				delete(l, "service")
				delete(l, "job")
				l["app.kubernetes.io/name"] = s
			}
		}},
		{"upper case", func(l map[string]string) {
			if s, ok := l["service"]; ok {
				l["service"] = strings.ToUpper(s)
				l["job"] = strings.ToUpper(l["job"])
			}
		}},
	}
	var base float64
	for i, c := range conventions {
		var f1 float64
		for seed := uint64(1); seed <= 5; seed++ {
			s := crossgen.Generate(seed, crossgen.DefaultConfig())
			for j := range s.Lines {
				s.Lines[j].JSON = relabel(t, s.Lines[j].JSON, c.edit)
			}
			f1 += eval.Pairwise(crossReplay(t, s).ItemAssignments(), s.Truth).F1 / 5
		}
		t.Logf("%-30s F1 %.3f", c.name, f1)
		if i == 0 {
			base = f1
		} else if f1 < base-0.005 {
			t.Errorf("%s: F1 %.3f, as generated %.3f", c.name, f1, base)
		}
	}
}

// relabel applies edit to the labels of every alert of an Alertmanager
// replay line (the fingerprint, the truth's key, is kept); other lines are
// returned as they are.
func relabel(t *testing.T, line json.RawMessage, edit func(map[string]string)) json.RawMessage {
	t.Helper()
	var l map[string]json.RawMessage
	if err := json.Unmarshal(line, &l); err != nil {
		t.Fatal(err)
	}
	if string(l["type"]) != `"alertmanager"` {
		return line
	}
	var p map[string]json.RawMessage
	if err := json.Unmarshal(l["payload"], &p); err != nil {
		t.Fatal(err)
	}
	var alerts []map[string]json.RawMessage
	if err := json.Unmarshal(p["alerts"], &alerts); err != nil {
		t.Fatal(err)
	}
	for _, a := range alerts {
		var labels map[string]string
		if err := json.Unmarshal(a["labels"], &labels); err != nil {
			t.Fatal(err)
		}
		edit(labels)
		a["labels"] = mustJSON(t, labels)
	}
	p["alerts"] = mustJSON(t, alerts)
	l["payload"] = mustJSON(t, p)
	return mustJSON(t, l)
}

func mustJSON(t *testing.T, v any) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestCorrelateLinesOutOfOrder replays storms whose lines arrive out of
// order by up to two minutes (webhooks of several Alertmanagers, a
// collector's batches): each line delayed at random, its "time" (when it
// reached the correlator, which the replay orders lines by) the delayed
// one, its alerts' own times kept. They group as in order (crossgen seeds
// 1-5); with ten minutes they lose a little (0.785 → 0.762 when
// measured). A file merely written out of order replays in the order of
// its times (TestCorrelateReplayPutsLinesInTimeOrder).
func TestCorrelateLinesOutOfOrder(t *testing.T) {
	if testing.Short() {
		t.Skip("five day-long replays per delay")
	}
	var base float64
	for _, jitter := range []time.Duration{0, 30 * time.Second, 2 * time.Minute} {
		var f1 float64
		for seed := uint64(1); seed <= 5; seed++ {
			s := crossgen.Generate(seed, crossgen.DefaultConfig())
			r := rand.New(rand.NewPCG(seed, 9))
			moved := make([]time.Time, len(s.Lines))
			for i, l := range s.Lines {
				moved[i] = l.Time.Add(time.Duration(r.Int64N(int64(jitter) + 1)))
			}
			order := make([]int, len(s.Lines))
			for i := range order {
				order[i] = i
			}
			sort.SliceStable(order, func(a, b int) bool { return moved[order[a]].Before(moved[order[b]]) })
			lines := make([]crossgen.Line, len(order))
			for i, j := range order {
				var l map[string]json.RawMessage
				if err := json.Unmarshal(s.Lines[j].JSON, &l); err != nil {
					t.Fatal(err)
				}
				l["time"] = mustJSON(t, moved[j])
				lines[i] = crossgen.Line{Time: moved[j], JSON: mustJSON(t, l)}
			}
			s.Lines = lines
			f1 += eval.Pairwise(crossReplay(t, s).ItemAssignments(), s.Truth).F1 / 5
		}
		t.Logf("lines moved by up to %s: F1 %.3f", jitter, f1)
		if jitter == 0 {
			base = f1
		} else if f1 < base-0.005 {
			t.Errorf("lines moved by up to %s: F1 %.3f, in order %.3f", jitter, f1, base)
		}
	}
}
