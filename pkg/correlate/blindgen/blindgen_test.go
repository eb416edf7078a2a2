package blindgen

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"testing"
	"time"

	"github.com/aiops-dev/aiops/pkg/correlate/eval"
	"github.com/aiops-dev/aiops/pkg/event"
	"gopkg.in/yaml.v3"
)

func TestDeterministic(t *testing.T) {
	for _, seed := range []uint64{1, 7, 12345} {
		a, b := Generate(seed, DefaultConfig()), Generate(seed, DefaultConfig())
		if !bytes.Equal(a.Catalog, b.Catalog) {
			t.Fatalf("seed %d: catalogs differ", seed)
		}
		if len(a.Lines) != len(b.Lines) {
			t.Fatalf("seed %d: %d lines, then %d", seed, len(a.Lines), len(b.Lines))
		}
		for i := range a.Lines {
			if !bytes.Equal(a.Lines[i], b.Lines[i]) {
				t.Fatalf("seed %d: line %d differs:\n%s\n%s", seed, i, a.Lines[i], b.Lines[i])
			}
		}
		if !maps.Equal(a.Truth, b.Truth) || a.Incidents != b.Incidents || a.Notifications != b.Notifications {
			t.Fatalf("seed %d: truth or counts differ", seed)
		}
	}
	if a, b := Generate(1, DefaultConfig()), Generate(2, DefaultConfig()); bytes.Equal(a.Lines[len(a.Lines)/2], b.Lines[len(b.Lines)/2]) {
		t.Error("seeds 1 and 2 give the same storm")
	}
}

type catalogFile struct {
	Services map[string]struct {
		Owner     string   `yaml:"owner"`
		Team      string   `yaml:"team"`
		Tier      int      `yaml:"tier"`
		Runbook   string   `yaml:"runbook"`
		DependsOn []string `yaml:"depends_on"`
	} `yaml:"services"`
}

func checkCatalog(t *testing.T, seed uint64, raw []byte) catalogFile {
	t.Helper()
	var c catalogFile
	if err := yaml.Unmarshal(raw, &c); err != nil {
		t.Fatalf("seed %d: catalog: %v", seed, err)
	}
	if n := len(c.Services); n < 25 || n > 45 {
		t.Errorf("seed %d: %d services", seed, n)
	}
	for name, s := range c.Services {
		if s.Owner == "" || s.Team == "" || s.Tier == 0 || s.Runbook == "" {
			t.Errorf("seed %d: service %s incomplete: %+v", seed, name, s)
		}
		for _, d := range s.DependsOn {
			if _, ok := c.Services[d]; !ok {
				t.Errorf("seed %d: %s depends on undeclared %s", seed, name, d)
			}
		}
	}
	// No cycle: depth-first search with colours.
	state := map[string]int{}
	var visit func(string) bool
	visit = func(n string) bool {
		switch state[n] {
		case 1:
			return false
		case 2:
			return true
		}
		state[n] = 1
		for _, d := range c.Services[n].DependsOn {
			if !visit(d) {
				return false
			}
		}
		state[n] = 2
		return true
	}
	for name := range c.Services {
		if !visit(name) {
			t.Errorf("seed %d: dependency cycle through %s", seed, name)
		}
	}
	return c
}

type lineJSON struct {
	Type    string          `json:"type"`
	Time    string          `json:"time"`
	Payload json.RawMessage `json:"payload"`
	Change  json.RawMessage `json:"change"`
}

type payloadJSON struct {
	Version           *string            `json:"version"`
	GroupKey          *string            `json:"groupKey"`
	Status            *string            `json:"status"`
	Receiver          *string            `json:"receiver"`
	GroupLabels       map[string]string  `json:"groupLabels"`
	CommonLabels      map[string]string  `json:"commonLabels"`
	CommonAnnotations *map[string]string `json:"commonAnnotations"`
	ExternalURL       *string            `json:"externalURL"`
	Alerts            []struct {
		Status       string            `json:"status"`
		Labels       map[string]string `json:"labels"`
		Annotations  map[string]string `json:"annotations"`
		StartsAt     time.Time         `json:"startsAt"`
		EndsAt       time.Time         `json:"endsAt"`
		GeneratorURL string            `json:"generatorURL"`
		Fingerprint  string            `json:"fingerprint"`
	} `json:"alerts"`
}

type changeJSON struct {
	Service, Kind, Version, Author, Commit, URL string
}

// TestLinesWellFormed checks the format of every line and the catalog,
// and that the truth covers exactly the fingerprints of the lines.
func TestLinesWellFormed(t *testing.T) {
	var refired, deploys, resolvedSeen int
	for seed := uint64(1); seed <= 5; seed++ {
		s := Generate(seed, DefaultConfig())
		cat := checkCatalog(t, seed, s.Catalog)
		var prev time.Time
		seen := map[string]bool{}
		labelsOf := map[string]string{}
		lastStatus := map[string]string{}
		notes := 0
		for i, raw := range s.Lines {
			var l lineJSON
			if err := json.Unmarshal(raw, &l); err != nil {
				t.Fatalf("seed %d line %d: %v", seed, i, err)
			}
			ts, err := time.Parse(time.RFC3339, l.Time)
			if err != nil {
				t.Fatalf("seed %d line %d: time %q: %v", seed, i, l.Time, err)
			}
			if ts.Before(prev) {
				t.Fatalf("seed %d line %d: time %s before %s", seed, i, ts, prev)
			}
			prev = ts
			if ts.Before(DefaultStart) || ts.After(DefaultStart.Add(24*time.Hour)) {
				t.Errorf("seed %d line %d: time %s outside the storm", seed, i, ts)
			}
			switch l.Type {
			case "change":
				var c changeJSON
				if err := json.Unmarshal(l.Change, &c); err != nil {
					t.Fatalf("seed %d line %d: change: %v", seed, i, err)
				}
				if _, ok := cat.Services[c.Service]; !ok || c.Version == "" || c.Author == "" || c.Commit == "" || c.URL == "" || (c.Kind != "deploy" && c.Kind != "config") {
					t.Errorf("seed %d line %d: bad change %s", seed, i, raw)
				}
				if c.Kind == "deploy" {
					deploys++
				}
			case "alertmanager":
				notes++
				var p payloadJSON
				if err := json.Unmarshal(l.Payload, &p); err != nil {
					t.Fatalf("seed %d line %d: payload: %v", seed, i, err)
				}
				if p.Version == nil || *p.Version != "4" || p.GroupKey == nil || *p.GroupKey == "" || p.Status == nil ||
					(*p.Status != "firing" && *p.Status != "resolved") || p.Receiver == nil || p.GroupLabels == nil ||
					p.CommonLabels == nil || p.CommonAnnotations == nil || p.ExternalURL == nil || len(p.Alerts) == 0 {
					t.Fatalf("seed %d line %d: incomplete payload %s", seed, i, raw)
				}
				anyFiring := false
				for _, a := range p.Alerts {
					if a.Labels["alertname"] == "" || a.Labels["severity"] == "" || a.Annotations["summary"] == "" || a.GeneratorURL == "" {
						t.Errorf("seed %d line %d: incomplete alert %v", seed, i, a.Labels)
					}
					if _, ok := cat.Services[a.Labels["service"]]; !ok {
						t.Errorf("seed %d line %d: service %q not in the catalog", seed, i, a.Labels["service"])
					}
					if fp := event.AlertmanagerFingerprint(a.Labels); fp != a.Fingerprint {
						t.Errorf("seed %d line %d: fingerprint %s, labels give %s", seed, i, a.Fingerprint, fp)
					}
					for k, v := range p.GroupLabels {
						if a.Labels[k] != v {
							t.Errorf("seed %d line %d: alert %v outside group %v", seed, i, a.Labels, p.GroupLabels)
						}
					}
					for k, v := range p.CommonLabels {
						if a.Labels[k] != v {
							t.Errorf("seed %d line %d: common label %s=%s not on %v", seed, i, k, v, a.Labels)
						}
					}
					if a.StartsAt.IsZero() || a.StartsAt.After(ts) {
						t.Errorf("seed %d line %d: startsAt %s", seed, i, a.StartsAt)
					}
					switch a.Status {
					case "firing":
						anyFiring = true
						if !a.EndsAt.IsZero() {
							t.Errorf("seed %d line %d: firing alert with endsAt %s", seed, i, a.EndsAt)
						}
						if lastStatus[a.Fingerprint] == "resolved" {
							refired++
						}
					case "resolved":
						resolvedSeen++
						if a.EndsAt.IsZero() || a.EndsAt.After(ts) || a.EndsAt.Before(a.StartsAt) {
							t.Errorf("seed %d line %d: resolved alert with endsAt %s", seed, i, a.EndsAt)
						}
					default:
						t.Errorf("seed %d line %d: alert status %q", seed, i, a.Status)
					}
					lastStatus[a.Fingerprint] = a.Status
					seen[a.Fingerprint] = true
					key := fmt.Sprint(a.Labels)
					if old, ok := labelsOf[a.Fingerprint]; ok && old != key {
						t.Errorf("seed %d: fingerprint %s has two label sets", seed, a.Fingerprint)
					}
					labelsOf[a.Fingerprint] = key
				}
				if want := map[bool]string{true: "firing", false: "resolved"}[anyFiring]; *p.Status != want {
					t.Errorf("seed %d line %d: status %s, want %s", seed, i, *p.Status, want)
				}
			default:
				t.Fatalf("seed %d line %d: type %q", seed, i, l.Type)
			}
		}
		for fp := range seen {
			if s.Truth[fp] == "" {
				t.Errorf("seed %d: fingerprint %s not in the truth", seed, fp)
			}
		}
		if len(s.Truth) != len(seen) {
			t.Errorf("seed %d: truth has %d fingerprints, lines %d", seed, len(s.Truth), len(seen))
		}
		ids := map[string]bool{}
		for _, id := range s.Truth {
			ids[id] = true
		}
		if s.Incidents != len(ids) || s.Notifications != notes {
			t.Errorf("seed %d: Incidents %d (truth has %d), Notifications %d (lines have %d)", seed, s.Incidents, len(ids), s.Notifications, notes)
		}
		if len(s.BaselineByService()) != len(s.Truth) || len(s.BaselineTimeWindow(5*time.Minute)) != len(s.Truth) {
			t.Errorf("seed %d: a baseline does not assign every fingerprint", seed)
		}
	}
	if refired == 0 || deploys == 0 || resolvedSeen == 0 {
		t.Errorf("over seeds 1-5: %d alerts fired again after a resolved notification, %d deploys, %d resolved alerts", refired, deploys, resolvedSeen)
	}
}

// TestCalibration: the naive baselines score on these storms what the
// project's issue measured on storms of this kind.
func TestCalibration(t *testing.T) {
	const n = 20
	var byService, window float64
	var lines, notes, items, incidents int
	for seed := uint64(1); seed <= n; seed++ {
		s := Generate(seed, DefaultConfig())
		bs := eval.Pairwise(s.BaselineByService(), s.Truth)
		tw := eval.Pairwise(s.BaselineTimeWindow(5*time.Minute), s.Truth)
		byService += bs.F1
		window += tw.F1
		lines += len(s.Lines)
		notes += s.Notifications
		items += len(s.Truth)
		incidents += s.Incidents
		t.Logf("seed %2d: %4d lines, %4d notifications, %3d alerts, %2d incidents; by service F1 %.3f, 5-minute window F1 %.3f (P %.3f R %.3f)",
			seed, len(s.Lines), s.Notifications, len(s.Truth), s.Incidents, bs.F1, tw.F1, tw.Precision, tw.Recall)
	}
	byService /= n
	window /= n
	t.Logf("means over seeds 1-%d: %d lines, %d notifications, %d alerts, %d incidents per storm", n, lines/n, notes/n, items/n, incidents/n)
	t.Logf("mean pairwise F1 over seeds 1-%d: by service %.3f (want 0.09-0.20), 5-minute window %.3f (want 0.63-0.73)", n, byService, window)
	if byService < 0.09 || byService > 0.20 {
		t.Errorf("by-service baseline mean F1 %.3f outside 0.09-0.20", byService)
	}
	if window < 0.63 || window > 0.73 {
		t.Errorf("5-minute window baseline mean F1 %.3f outside 0.63-0.73", window)
	}
}
