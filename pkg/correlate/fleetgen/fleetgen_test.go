package fleetgen

import (
	"bytes"
	"encoding/json"
	"maps"
	"regexp"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/aiops-dev/aiops/pkg/correlate/eval"
	"github.com/aiops-dev/aiops/pkg/event"
)

func TestDeterministicPerSeed(t *testing.T) {
	a, b := Generate(7, DefaultConfig()), Generate(7, DefaultConfig())
	if len(a.Lines) != len(b.Lines) {
		t.Fatalf("seed 7 gave %d then %d lines", len(a.Lines), len(b.Lines))
	}
	for i := range a.Lines {
		if !bytes.Equal(a.Lines[i], b.Lines[i]) {
			t.Fatalf("line %d differs:\n%s\n%s", i, a.Lines[i], b.Lines[i])
		}
	}
	if !maps.Equal(a.Truth, b.Truth) || a.Incidents != b.Incidents || a.Notifications != b.Notifications {
		t.Error("truth or counts differ for one seed")
	}
	c := Generate(8, DefaultConfig())
	if len(c.Lines) == len(a.Lines) && bytes.Equal(bytes.Join(c.Lines, nil), bytes.Join(a.Lines, nil)) {
		t.Error("seeds 7 and 8 gave the same storm")
	}
}

func TestCatalog(t *testing.T) {
	var cat struct {
		Services map[string]struct {
			Owner     string   `yaml:"owner"`
			Team      string   `yaml:"team"`
			Tier      int      `yaml:"tier"`
			Runbook   string   `yaml:"runbook"`
			DependsOn []string `yaml:"depends_on"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(Generate(1, DefaultConfig()).Catalog, &cat); err != nil {
		t.Fatal(err)
	}
	if n := len(cat.Services); n < 30 || n > 60 {
		t.Errorf("%d services, want 30-60", n)
	}
	for name, s := range cat.Services {
		if s.Owner == "" || s.Team == "" || s.Runbook == "" || s.Tier < 1 || s.Tier > 3 {
			t.Errorf("%s: incomplete entry %+v", name, s)
		}
		for _, d := range s.DependsOn {
			if _, ok := cat.Services[d]; !ok {
				t.Errorf("%s depends on undeclared %s", name, d)
			}
		}
	}
	// No cycles: depth-first search with colours.
	state := map[string]int{} // 0 new, 1 on the stack, 2 done
	var visit func(string, []string)
	visit = func(name string, path []string) {
		switch state[name] {
		case 1:
			t.Fatalf("dependency cycle: %v -> %s", path, name)
		case 2:
			return
		}
		state[name] = 1
		for _, d := range cat.Services[name].DependsOn {
			visit(d, append(path, name))
		}
		state[name] = 2
	}
	for name := range cat.Services {
		visit(name, nil)
	}
	// The real (partly undeclared) dependency graph is acyclic too, and
	// names only known services.
	for _, s := range estate {
		for _, d := range s.calls() {
			svc(d)
		}
	}
}

var fingerprintRE = regexp.MustCompile(`^[0-9a-f]{16}$`)

// TestLines checks every line against the formats and the truth.
func TestLines(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3, 11, 29} {
		s := Generate(seed, DefaultConfig())
		var last time.Time
		labelsOf := map[string]map[string]string{}
		notifications, changes := 0, 0
		for i, raw := range s.Lines {
			var l struct {
				Type    string          `json:"type"`
				Time    string          `json:"time"`
				Payload json.RawMessage `json:"payload"`
				Change  *change         `json:"change"`
			}
			if err := json.Unmarshal(raw, &l); err != nil {
				t.Fatalf("seed %d line %d: %v", seed, i, err)
			}
			at, err := time.Parse(time.RFC3339, l.Time)
			if err != nil {
				t.Fatalf("seed %d line %d: time %q: %v", seed, i, l.Time, err)
			}
			if at.Before(last) {
				t.Fatalf("seed %d line %d: time goes back from %v to %v", seed, i, last, at)
			}
			last = at
			switch l.Type {
			case "change":
				changes++
				if l.Change == nil || l.Change.Kind == "" || l.Change.Version == "" || l.Change.Commit == "" || l.Change.URL == "" || l.Change.Author == "" {
					t.Fatalf("seed %d line %d: incomplete change %s", seed, i, raw)
				}
				svc(l.Change.Service)
			case "alertmanager":
				notifications++
				var w webhook
				dec := json.NewDecoder(bytes.NewReader(l.Payload))
				dec.DisallowUnknownFields()
				if err := dec.Decode(&w); err != nil {
					t.Fatalf("seed %d line %d: payload: %v", seed, i, err)
				}
				if w.Version != "4" || w.GroupKey == "" || w.Receiver == "" || w.ExternalURL == "" || len(w.Alerts) == 0 {
					t.Fatalf("seed %d line %d: incomplete payload %s", seed, i, l.Payload)
				}
				anyFiring := false
				for _, a := range w.Alerts {
					if !fingerprintRE.MatchString(a.Fingerprint) || a.Fingerprint != event.AlertmanagerFingerprint(a.Labels) {
						t.Fatalf("seed %d line %d: fingerprint %q of %v", seed, i, a.Fingerprint, a.Labels)
					}
					switch a.Status {
					case "firing":
						anyFiring = true
						if !a.EndsAt.IsZero() {
							t.Errorf("seed %d line %d: firing alert ends at %v", seed, i, a.EndsAt)
						}
					case "resolved":
						if a.EndsAt.Before(a.StartsAt) || a.EndsAt.After(at) {
							t.Errorf("seed %d line %d: resolved %v..%v notified at %v", seed, i, a.StartsAt, a.EndsAt, at)
						}
					default:
						t.Fatalf("seed %d line %d: status %q", seed, i, a.Status)
					}
					if a.StartsAt.After(at) || a.Annotations["summary"] == "" || a.GeneratorURL == "" {
						t.Errorf("seed %d line %d: alert %v", seed, i, a)
					}
					if prev, ok := labelsOf[a.Fingerprint]; ok && !maps.Equal(prev, a.Labels) {
						t.Fatalf("seed %d: labels of %s changed from %v to %v", seed, a.Fingerprint, prev, a.Labels)
					}
					labelsOf[a.Fingerprint] = a.Labels
					if _, ok := s.Truth[a.Fingerprint]; !ok {
						t.Fatalf("seed %d: %s not in the truth", seed, a.Fingerprint)
					}
					// Every alert names its catalog service by the conventions.
					if got, want := ServiceOf(a.Labels), s.service[a.Fingerprint]; got != want {
						t.Errorf("seed %d: ServiceOf(%v) = %q, want %q", seed, a.Labels, got, want)
					}
					for k, v := range w.GroupLabels {
						if a.Labels[k] != v {
							t.Errorf("seed %d line %d: group label %s=%s, alert has %q", seed, i, k, v, a.Labels[k])
						}
					}
					for k, v := range w.CommonLabels {
						if a.Labels[k] != v {
							t.Errorf("seed %d line %d: common label %s=%s, alert has %q", seed, i, k, v, a.Labels[k])
						}
					}
				}
				if (w.Status == "firing") != anyFiring {
					t.Errorf("seed %d line %d: payload status %s", seed, i, w.Status)
				}
			default:
				t.Fatalf("seed %d line %d: type %q", seed, i, l.Type)
			}
		}
		if len(labelsOf) != len(s.Truth) {
			t.Errorf("seed %d: %d fingerprints in the lines, %d in the truth", seed, len(labelsOf), len(s.Truth))
		}
		incidents := map[string]bool{}
		for _, inc := range s.Truth {
			incidents[inc] = true
		}
		if s.Incidents != len(incidents) || s.Notifications != notifications {
			t.Errorf("seed %d: Incidents %d (truth has %d), Notifications %d (lines have %d)", seed, s.Incidents, len(incidents), s.Notifications, notifications)
		}
		if changes < 50 || notifications < 100 || len(s.Truth) < 100 {
			t.Errorf("seed %d: a thin day: %d changes, %d notifications, %d alerts", seed, changes, notifications, len(s.Truth))
		}
	}
}

func TestBaselinesAssignEveryAlert(t *testing.T) {
	s := Generate(4, DefaultConfig())
	for name, assign := range map[string]map[string]string{
		"by service":  s.BaselineByService(),
		"time window": s.BaselineTimeWindow(5 * time.Minute),
	} {
		if len(assign) != len(s.Truth) {
			t.Errorf("%s: %d alerts assigned, truth has %d", name, len(assign), len(s.Truth))
		}
	}
}

func TestBaselineTimeWindowAnchorsAtFirstAlert(t *testing.T) {
	// Alerts first seen at 0, 4, 8 and 9 minutes: the 5-minute window
	// opened at 0 takes 0 and 4; 8 opens a new window that 9 joins.
	at := func(m int) time.Time { return DefaultConfig().Start.Add(time.Duration(m) * time.Minute) }
	var s Storm
	for i, m := range []int{0, 4, 8, 9} {
		labels := map[string]string{"alertname": "HighErrorRate", "service": "projects-api", "n": string(rune('a' + i))}
		fp := event.AlertmanagerFingerprint(labels)
		raw, _ := json.Marshal(line{Type: "alertmanager", Time: at(m), Payload: &webhook{Version: "4", Alerts: []webhookAlert{{Status: "firing", Labels: labels, Fingerprint: fp}}}})
		s.Lines = append(s.Lines, raw)
	}
	var fps []string
	for _, a := range s.alertsInOrder() {
		fps = append(fps, a.fp)
	}
	w := s.BaselineTimeWindow(5 * time.Minute)
	if w[fps[0]] != w[fps[1]] || w[fps[1]] == w[fps[2]] || w[fps[2]] != w[fps[3]] {
		t.Errorf("windows %v", w)
	}
	if b := s.BaselineByService(); b[fps[0]] != "service/projects-api" || b[fps[0]] != b[fps[3]] {
		t.Errorf("by service %v", b)
	}
}

// TestCalibration holds DefaultConfig to the figures of storms of this
// kind: over seeds 1-20, grouping by service scores a mean pairwise F1 of
// 0.09-0.20 and a 5-minute time window 0.63-0.73.
func TestCalibration(t *testing.T) {
	if testing.Short() {
		t.Skip("generates 20 storms")
	}
	var byService, window float64
	for seed := uint64(1); seed <= 20; seed++ {
		s := Generate(seed, DefaultConfig())
		b := eval.Pairwise(s.BaselineByService(), s.Truth)
		w := eval.Pairwise(s.BaselineTimeWindow(5*time.Minute), s.Truth)
		t.Logf("seed %2d: %4d lines, %3d alerts, %3d incidents; by service F1 %.3f, 5-minute window F1 %.3f", seed, len(s.Lines), len(s.Truth), s.Incidents, b.F1, w.F1)
		byService += b.F1
		window += w.F1
	}
	byService, window = byService/20, window/20
	t.Logf("mean F1 over seeds 1-20: by service %.3f, 5-minute window %.3f", byService, window)
	if byService < 0.09 || byService > 0.20 {
		t.Errorf("by-service mean F1 %.3f outside 0.09-0.20", byService)
	}
	if window < 0.63 || window > 0.73 {
		t.Errorf("5-minute window mean F1 %.3f outside 0.63-0.73", window)
	}
}
