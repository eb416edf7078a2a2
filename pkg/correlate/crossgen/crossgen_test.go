package crossgen

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/aiops-dev/aiops/pkg/correlate"
	"github.com/aiops-dev/aiops/pkg/correlate/eval"
)

func TestGenerateIsDeterministicBySeed(t *testing.T) {
	jsonl := func(seed uint64) []byte {
		var b bytes.Buffer
		if err := Generate(seed, DefaultConfig()).WriteJSONL(&b); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	a, b := jsonl(7), jsonl(7)
	if !bytes.Equal(a, b) {
		t.Fatal("seed 7 gave two different storms")
	}
	if bytes.Equal(a, jsonl(8)) {
		t.Fatal("seeds 7 and 8 gave the same storm")
	}
	s1, s2 := Generate(7, DefaultConfig()), Generate(7, DefaultConfig())
	if len(s1.Truth) != len(s2.Truth) {
		t.Fatalf("truth of seed 7: %d then %d items", len(s1.Truth), len(s2.Truth))
	}
	for id, label := range s1.Truth {
		if s2.Truth[id] != label {
			t.Fatalf("truth of seed 7: item %s in %q then %q", id, label, s2.Truth[id])
		}
	}
}

// webhookLine is what the test reads back from an alertmanager line.
type webhookLine struct {
	Type    string    `json:"type"`
	Time    time.Time `json:"time"`
	Payload struct {
		Version string `json:"version"`
		Status  string `json:"status"`
		Alerts  []struct {
			Status      string            `json:"status"`
			Labels      map[string]string `json:"labels"`
			StartsAt    time.Time         `json:"startsAt"`
			EndsAt      time.Time         `json:"endsAt"`
			Fingerprint string            `json:"fingerprint"`
		} `json:"alerts"`
	} `json:"payload"`
	Event struct {
		ID string `json:"id"`
	} `json:"event"`
}

// TestStormLinesAndTruth checks every line of a few storms against the
// truth: every alert and anomaly in the lines has a true incident, every
// item of the truth is in the lines, fingerprints are Alertmanager's of
// the label set, lines are in time order, a resolved alert ends after it
// started, and the storms have flapping alerts (several startsAt for one
// fingerprint) and alerts resolved and firing again.
func TestStormLinesAndTruth(t *testing.T) {
	for seed := uint64(1); seed <= 5; seed++ {
		s := Generate(seed, DefaultConfig())
		inLines := map[string]bool{}
		starts := map[string]map[time.Time]bool{}
		resolvedThenFiring := 0
		lastStatus := map[string]string{}
		var prev time.Time
		kinds := map[string]int{}
		for i, l := range s.Lines {
			var w webhookLine
			if err := json.Unmarshal(l.JSON, &w); err != nil {
				t.Fatalf("seed %d line %d: %v", seed, i, err)
			}
			kinds[w.Type]++
			if l.Time.Before(prev) {
				t.Fatalf("seed %d line %d: at %s, before the line above (%s)", seed, i, l.Time, prev)
			}
			prev = l.Time
			switch w.Type {
			case "alertmanager":
				if !w.Time.Equal(l.Time) || w.Payload.Version != "4" || len(w.Payload.Alerts) == 0 {
					t.Fatalf("seed %d line %d: bad webhook line %s", seed, i, l.JSON)
				}
				for _, a := range w.Payload.Alerts {
					if got := Fingerprint(a.Labels); got != a.Fingerprint {
						t.Fatalf("seed %d line %d: fingerprint %s, of its labels %s", seed, i, a.Fingerprint, got)
					}
					if a.Status == "resolved" && !a.EndsAt.After(a.StartsAt) {
						t.Fatalf("seed %d line %d: resolved alert %s ends %s, starts %s", seed, i, a.Fingerprint, a.EndsAt, a.StartsAt)
					}
					if a.StartsAt.After(l.Time) {
						t.Fatalf("seed %d line %d: alert %s starts after it is sent", seed, i, a.Fingerprint)
					}
					if _, ok := s.Truth[a.Fingerprint]; !ok {
						t.Fatalf("seed %d line %d: alert %s has no true incident", seed, i, a.Fingerprint)
					}
					inLines[a.Fingerprint] = true
					if starts[a.Fingerprint] == nil {
						starts[a.Fingerprint] = map[time.Time]bool{}
					}
					starts[a.Fingerprint][a.StartsAt] = true
					if a.Status == "firing" && lastStatus[a.Fingerprint] == "resolved" {
						resolvedThenFiring++
					}
					lastStatus[a.Fingerprint] = a.Status
				}
			case "event":
				if _, ok := s.Truth[w.Event.ID]; !ok {
					t.Fatalf("seed %d line %d: anomaly %s has no true incident", seed, i, w.Event.ID)
				}
				inLines[w.Event.ID] = true
			case "change":
			default:
				t.Fatalf("seed %d line %d: type %q", seed, i, w.Type)
			}
		}
		for id := range s.Truth {
			if !inLines[id] {
				t.Fatalf("seed %d: truth item %s is in no line", seed, id)
			}
		}
		if len(s.Items()) != len(s.Truth) {
			t.Fatalf("seed %d: %d items, %d in the truth", seed, len(s.Items()), len(s.Truth))
		}
		flapping := 0
		for _, st := range starts {
			if len(st) > 1 {
				flapping++
			}
		}
		if flapping < 3 || resolvedThenFiring < 3 || kinds["change"] < 10 || kinds["event"] < 10 {
			t.Fatalf("seed %d: %d alerts with several starts, %d resolved then firing again, %d changes, %d anomalies", seed, flapping, resolvedThenFiring, kinds["change"], kinds["event"])
		}
		byKind := map[Kind]int{}
		for _, inc := range s.Incidents {
			byKind[inc.Kind]++
			for _, id := range inc.Items {
				if s.Truth[id] != inc.Label {
					t.Fatalf("seed %d: incident %s lists %s, whose truth is %s", seed, inc.Label, id, s.Truth[id])
				}
			}
		}
		if byKind[KindCascade] == 0 || byKind[KindDeploy] == 0 || byKind[KindNoise] < 20 {
			t.Fatalf("seed %d: incidents by kind %v", seed, byKind)
		}
	}
}

// TestCatalogParses: the catalog file is one the replay accepts (known
// services, no cycle).
func TestCatalogParses(t *testing.T) {
	s := Generate(3, DefaultConfig())
	data, err := s.CatalogYAML()
	if err != nil {
		t.Fatal(err)
	}
	c, err := correlate.ParseCatalog(data)
	if err != nil {
		t.Fatalf("%v\n%s", err, data)
	}
	if len(c.Services) != len(estateTemplate) || len(c.Services["checkout-api"].DependsOn) < 4 {
		t.Fatalf("catalog: %d services, checkout-api depends on %v", len(c.Services), c.Services["checkout-api"].DependsOn)
	}
}

// TestAlertmanagerFlushes pins the webhook simulation on one group: a
// group_wait, then group_interval flushes that notify only on news, a
// flap inside one interval unseen, a resolve sent once.
func TestAlertmanagerFlushes(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	g := &gen{cfg: DefaultConfig()}
	a := &alert{labels: map[string]string{"alertname": "HighErrorRate", "service": "x", "handler": "/a"},
		on: []span{{t0, t0.Add(7 * time.Minute)}, {t0.Add(8 * time.Minute), t0.Add(20 * time.Minute)}}}
	b := &alert{labels: map[string]string{"alertname": "HighErrorRate", "service": "x", "handler": "/b"},
		on: []span{{t0.Add(time.Minute), t0.Add(2 * time.Minute)}}}
	c := &alert{labels: map[string]string{"alertname": "HighErrorRate", "service": "x", "handler": "/c"},
		on: []span{{t0.Add(12 * time.Minute), t0.Add(14 * time.Minute)}}}
	for _, x := range []*alert{a, b, c} {
		x.fp = Fingerprint(x.labels)
	}
	g.alerts = []*alert{a, b, c}
	ns := g.notifications()
	// 10:00:30 a firing (b not yet); 10:05:30 b resolved is news; 10:10:30 a
	// flapped unseen (firing at both), nothing new; 10:15:30 c fired and
	// resolved since: news; 10:20:30 a resolved, nothing firing: the
	// all-resolved notification.
	want := []struct {
		at     time.Duration
		alerts string
	}{{30 * time.Second, "a:firing"}, {5*time.Minute + 30*time.Second, "a:firing b:resolved"}, {15*time.Minute + 30*time.Second, "a:firing c:resolved"}, {20*time.Minute + 30*time.Second, "a:resolved"}}
	name := map[string]string{a.fp: "a", b.fp: "b", c.fp: "c"}
	if len(ns) != len(want) {
		for _, n := range ns {
			t.Logf("%s %d alerts", n.at, len(n.payload.Alerts))
		}
		t.Fatalf("%d notifications, want %d", len(ns), len(want))
	}
	for i, n := range ns {
		got := ""
		for j, x := range n.payload.Alerts {
			if j > 0 {
				got += " "
			}
			got += name[x.Fingerprint] + ":" + x.Status
		}
		if !n.at.Equal(t0.Add(want[i].at)) || got != want[i].alerts {
			t.Errorf("notification %d: at %s %q, want %s %q", i, n.at.Format("15:04:05"), got, t0.Add(want[i].at).Format("15:04:05"), want[i].alerts)
		}
	}
}

// TestCalibrate logs the baselines over seeds 1-10, or 1-CROSSGEN_SEEDS
// (CROSSGEN_CALIBRATE=1; CROSSGEN_CONFIG a crossgen.Config in JSON).
func TestCalibrate(t *testing.T) {
	if os.Getenv("CROSSGEN_CALIBRATE") == "" {
		t.Skip("calibration")
	}
	cfg := DefaultConfig()
	if v := os.Getenv("CROSSGEN_CONFIG"); v != "" {
		if err := json.Unmarshal([]byte(v), &cfg); err != nil {
			t.Fatal(err)
		}
	}
	n := 10
	if v, err := strconv.Atoi(os.Getenv("CROSSGEN_SEEDS")); err == nil && v > 0 {
		n = v
	}
	var label, window, items, incs float64
	for seed := uint64(1); seed <= uint64(n); seed++ {
		s := Generate(seed, cfg)
		l := eval.Pairwise(s.BaselineByLabel("service"), s.Truth)
		w := eval.Pairwise(s.BaselineTimeWindow(5*time.Minute), s.Truth)
		label += l.F1 / float64(n)
		window += w.F1 / float64(n)
		items += float64(l.Items) / float64(n)
		incs += float64(l.TrueIncidents) / float64(n)
		t.Logf("seed %d: by service %.3f, window %.3f (P %.3f R %.3f), %d items, %d incidents", seed, l.F1, w.F1, w.Precision, w.Recall, l.Items, l.TrueIncidents)
	}
	t.Logf("mean: by service %.3f, window %.3f, %.0f items, %.0f incidents", label, window, items, incs)
}

// TestWriteStorm writes the storm of CROSSGEN_SEED (1 by default) to the
// directory CROSSGEN_WRITE: events.jsonl and catalog.yaml for `aiops
// correlate replay`, truth.json (item → true incident) and
// incidents.json, for looking at one storm by hand.
func TestWriteStorm(t *testing.T) {
	dir := os.Getenv("CROSSGEN_WRITE")
	if dir == "" {
		t.Skip("a tool: CROSSGEN_WRITE=dir")
	}
	seed, _ := strconv.ParseUint(os.Getenv("CROSSGEN_SEED"), 10, 64)
	if seed == 0 {
		seed = 1
	}
	s := Generate(seed, DefaultConfig())
	var events bytes.Buffer
	if err := s.WriteJSONL(&events); err != nil {
		t.Fatal(err)
	}
	cat, err := s.CatalogYAML()
	if err != nil {
		t.Fatal(err)
	}
	truth, _ := json.MarshalIndent(s.Truth, "", "  ")
	incidents, _ := json.MarshalIndent(s.Incidents, "", "  ")
	for name, data := range map[string][]byte{"events.jsonl": events.Bytes(), "catalog.yaml": cat, "truth.json": truth, "incidents.json": incidents} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
