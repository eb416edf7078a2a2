package wordgen

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/aiops-dev/aiops/pkg/event"
)

// testSeeds are a handful of the calibration seeds (2001–2100).
var testSeeds = []uint64{2001, 2002, 2003, 2004, 2005, 2006, 2007, 2008, 2009, 2010}

func TestGenerateIsDeterministic(t *testing.T) {
	a, b := Generate(2001, DefaultConfig()), Generate(2001, DefaultConfig())
	if len(a.Lines) != len(b.Lines) || !bytes.Equal(a.Catalog, b.Catalog) || a.Incidents != b.Incidents || a.Notifications != b.Notifications {
		t.Fatalf("two storms of seed 2001 differ: %d/%d lines, %d/%d incidents", len(a.Lines), len(b.Lines), a.Incidents, b.Incidents)
	}
	for i := range a.Lines {
		if !bytes.Equal(a.Lines[i], b.Lines[i]) {
			t.Fatalf("line %d differs:\n%s\n%s", i+1, a.Lines[i], b.Lines[i])
		}
	}
	for fp, id := range a.Truth {
		if b.Truth[fp] != id {
			t.Fatalf("truth of %s: %q, then %q", fp, id, b.Truth[fp])
		}
	}
	if c := Generate(2002, DefaultConfig()); len(c.Lines) == len(a.Lines) && bytes.Equal(c.Lines[0], a.Lines[0]) {
		t.Error("seeds 2001 and 2002 gave the same storm")
	}
}

// replayLine is a line as the replay reads it.
type replayLine struct {
	Type    string          `json:"type"`
	Time    string          `json:"time"`
	Payload json.RawMessage `json:"payload"`
	Change  json.RawMessage `json:"change"`
}

type payload struct {
	Version, Status, Receiver, GroupKey string
	GroupLabels                         map[string]string
	Alerts                              []struct {
		Status           string
		Labels           map[string]string
		Annotations      map[string]string
		StartsAt, EndsAt time.Time
		GeneratorURL     string
		Fingerprint      string
	}
}

// TestLinesAreReplayInput checks every line against the replay's input
// format and Alertmanager's webhook: valid JSON of a known type, in
// non-decreasing time, alerts carrying Alertmanager's fingerprint of
// their labels, firing ones with the zero endsAt, resolved ones ended.
func TestLinesAreReplayInput(t *testing.T) {
	for _, seed := range testSeeds {
		s := Generate(seed, DefaultConfig())
		var prev time.Time
		labelsOf := map[string]string{}
		for i, raw := range s.Lines {
			where := fmt.Sprintf("seed %d line %d", seed, i+1)
			if bytes.ContainsRune(raw, '\n') {
				t.Fatalf("%s: a line holds a newline", where)
			}
			var l replayLine
			if err := json.Unmarshal(raw, &l); err != nil {
				t.Fatalf("%s: not JSON: %v", where, err)
			}
			at, err := time.Parse(time.RFC3339, l.Time)
			if err != nil {
				t.Fatalf("%s: time %q: %v", where, l.Time, err)
			}
			if at.Before(prev) {
				t.Fatalf("%s: time %v before the previous line's %v", where, at, prev)
			}
			prev = at
			switch l.Type {
			case "change":
				var c map[string]string
				if err := json.Unmarshal(l.Change, &c); err != nil {
					t.Fatalf("%s: change: %v", where, err)
				}
				for _, k := range []string{"service", "kind", "version", "author", "commit", "url"} {
					if c[k] == "" {
						t.Errorf("%s: change without %s: %s", where, k, raw)
					}
				}
			case "alertmanager":
				var p payload
				if err := json.Unmarshal(l.Payload, &p); err != nil {
					t.Fatalf("%s: payload: %v", where, err)
				}
				if p.Version != "4" || p.Receiver == "" || p.GroupKey == "" || len(p.Alerts) == 0 {
					t.Fatalf("%s: not a webhook v4 payload: %s", where, raw)
				}
				status := "resolved"
				for _, a := range p.Alerts {
					if fp := event.AlertmanagerFingerprint(a.Labels); a.Fingerprint != fp {
						t.Fatalf("%s: fingerprint %s, Alertmanager's of its labels is %s", where, a.Fingerprint, fp)
					}
					ls, _ := json.Marshal(a.Labels)
					if prev, ok := labelsOf[a.Fingerprint]; ok && prev != string(ls) {
						t.Fatalf("%s: fingerprint %s with two label sets", where, a.Fingerprint)
					}
					labelsOf[a.Fingerprint] = string(ls)
					if a.Labels["alertname"] == "" || a.Annotations["summary"] == "" || a.GeneratorURL == "" {
						t.Errorf("%s: alert without alertname, summary or generatorURL: %v", where, a.Labels)
					}
					for k, v := range p.GroupLabels {
						if a.Labels[k] != v {
							t.Errorf("%s: alert %v outside its group %v", where, a.Labels, p.GroupLabels)
						}
					}
					if a.StartsAt.After(at) {
						t.Errorf("%s: alert starts at %v, after it was sent", where, a.StartsAt)
					}
					switch a.Status {
					case "firing":
						status = "firing"
						if !a.EndsAt.IsZero() {
							t.Errorf("%s: firing alert with endsAt %v (Alertmanager sends the zero time)", where, a.EndsAt)
						}
					case "resolved":
						if !a.EndsAt.After(a.StartsAt) || a.EndsAt.After(at) {
							t.Errorf("%s: resolved alert %v–%v sent at %v", where, a.StartsAt, a.EndsAt, at)
						}
					default:
						t.Errorf("%s: alert status %q", where, a.Status)
					}
				}
				if p.Status != status {
					t.Errorf("%s: payload status %q, its alerts say %q", where, p.Status, status)
				}
			default:
				t.Fatalf("%s: type %q", where, l.Type)
			}
		}
	}
}

func TestTruthIsExactlyTheAlertsSent(t *testing.T) {
	for _, seed := range testSeeds {
		s := Generate(seed, DefaultConfig())
		alerts, err := Alerts(s.Lines)
		if err != nil {
			t.Fatal(err)
		}
		inLines := map[string]bool{}
		for _, a := range alerts {
			inLines[a.Fingerprint] = true
			if s.Truth[a.Fingerprint] == "" {
				t.Errorf("seed %d: alert %s (%s) has no truth", seed, a.Fingerprint, a.Labels["alertname"])
			}
		}
		incidents := map[string]bool{}
		for fp, id := range s.Truth {
			incidents[id] = true
			if !inLines[fp] {
				t.Errorf("seed %d: truth holds %s, which no line carries", seed, fp)
			}
		}
		if s.Incidents != len(incidents) {
			t.Errorf("seed %d: Incidents %d, truth has %d", seed, s.Incidents, len(incidents))
		}
		n := 0
		for _, l := range s.Lines {
			if bytes.HasPrefix(l, []byte(`{"type":"alertmanager"`)) {
				n++
			}
		}
		if s.Notifications != n {
			t.Errorf("seed %d: Notifications %d, %d webhook lines", seed, s.Notifications, n)
		}
		// Every root is a true incident's, on a catalogued service, and
		// every incident but a node's has one.
		var cat struct{ Services map[string]any }
		if err := yaml.Unmarshal(s.Catalog, &cat); err != nil {
			t.Fatal(err)
		}
		for id, root := range s.Roots {
			if !incidents[id] || cat.Services[root] == nil {
				t.Errorf("seed %d: root %s of %s: want a true incident's, catalogued", seed, root, id)
			}
		}
		g, _ := generate(seed, DefaultConfig())
		for _, p := range g.planned {
			if _, ok := s.Roots[p.id]; ok != (incidents[p.id] && p.kind != kindNode) {
				t.Errorf("seed %d: incident %s (kind %d): root %q", seed, p.id, p.kind, s.Roots[p.id])
			}
		}
	}
}

func TestCatalog(t *testing.T) {
	s := Generate(2001, DefaultConfig())
	var cat struct {
		Services map[string]struct {
			Owner, Team, Runbook string
			Tier                 int
			DependsOn            []string `yaml:"depends_on"`
		}
	}
	dec := yaml.NewDecoder(bytes.NewReader(s.Catalog))
	dec.KnownFields(true)
	if err := dec.Decode(&cat); err != nil {
		t.Fatalf("catalog: %v\n%s", err, s.Catalog)
	}
	if n := len(cat.Services); n < 24 || n > 60 {
		t.Errorf("%d services, want a few dozen", n)
	}
	for name, svc := range cat.Services {
		if svc.Owner == "" || svc.Team == "" || svc.Runbook == "" || svc.Tier < 1 || svc.Tier > 3 {
			t.Errorf("%s: incomplete entry %+v", name, svc)
		}
		for _, d := range svc.DependsOn {
			if _, ok := cat.Services[d]; !ok {
				t.Errorf("%s depends on %s, not in the catalog", name, d)
			}
		}
	}
}

// TestStormsHoldWhatTheIssueLists checks, over a handful of seeds, that
// the storms have each kind of trouble issue #12 names: cascades over the
// dependency graph, deploy-induced incidents (the deploy sent before the
// first alert), independent incidents at the same moment, flapping
// alerts, alerts resolved and firing again, unrelated noise, harmless
// changes.
func TestStormsHoldWhatTheIssueLists(t *testing.T) {
	var cascades, deploys, concurrent, refired, flapping, noise, changes int
	for _, seed := range testSeeds {
		g, s := generate(seed, DefaultConfig())
		alerts, err := Alerts(s.Lines)
		if err != nil {
			t.Fatal(err)
		}
		firstOf := map[string]time.Time{} // incident → its first alert
		for _, a := range alerts {
			id := s.Truth[a.Fingerprint]
			if f, ok := firstOf[id]; !ok || a.First.Before(f) {
				firstOf[id] = a.First
			}
			if strings.HasPrefix(id, "noise-") {
				noise++
			}
		}
		for _, p := range g.planned {
			first, ok := firstOf[p.id]
			if !ok {
				continue
			}
			services := map[string]bool{}
			for _, h := range p.hits {
				services[h.comp.name] = true
			}
			if p.kind == kindCascade && len(services) >= 3 {
				cascades++
			}
			if p.kind == kindDeploy {
				for _, c := range g.changes {
					if c.service == p.hits[0].comp.name && c.kind == "deploy" && c.at.Before(first) && first.Sub(c.at) < 10*time.Minute {
						deploys++
						break
					}
				}
			}
			for _, q := range g.planned {
				if _, ok := firstOf[q.id]; ok && q.id > p.id && q.start.Sub(p.start).Abs() <= 3*time.Minute {
					concurrent++
				}
			}
		}
		// Alerts sent firing with more than one startsAt fired again;
		// with three or more, they flap.
		starts := map[string]map[time.Time]bool{}
		for _, raw := range s.Lines {
			var l struct{ Payload *payload }
			if err := json.Unmarshal(raw, &l); err != nil || l.Payload == nil {
				continue
			}
			for _, a := range l.Payload.Alerts {
				if starts[a.Fingerprint] == nil {
					starts[a.Fingerprint] = map[time.Time]bool{}
				}
				starts[a.Fingerprint][a.StartsAt] = true
			}
		}
		for _, st := range starts {
			if len(st) >= 2 {
				refired++
			}
			if len(st) >= 3 {
				flapping++
			}
		}
		for _, raw := range s.Lines {
			if bytes.HasPrefix(raw, []byte(`{"type":"change"`)) {
				changes++
			}
		}
	}
	n := len(testSeeds)
	t.Logf("over %d storms: %d cascades over 3+ services, %d deploy-induced incidents, %d concurrent pairs, %d alerts firing again (%d flapping), %d noise alerts, %d changes",
		n, cascades, deploys, concurrent, refired, flapping, noise, changes)
	for what, got := range map[string]int{"cascades": cascades, "deploy-induced incidents": deploys, "concurrent incidents": concurrent,
		"alerts firing again": refired, "flapping alerts": flapping, "noise alerts": noise, "changes": changes} {
		if got < n/2 {
			t.Errorf("%d %s over %d storms, want at least %d", got, what, n, n/2)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("the default config: %v", err)
	}
	for field, mutate := range map[string]func(*Config){
		"Duration":       func(c *Config) { c.Duration = time.Minute },
		"MaxIncidentGap": func(c *Config) { c.MaxIncidentGap = c.MinIncidentGap - time.Minute },
		"Concurrent":     func(c *Config) { c.Concurrent = 1.5 },
		"GroupInterval":  func(c *Config) { c.GroupInterval = 0 },
		"GroupBy":        func(c *Config) { c.GroupBy = nil },
		"Standing":       func(c *Config) { c.Standing = -1 },
		"Start":          func(c *Config) { c.Start = time.Time{} },
	} {
		c := DefaultConfig()
		mutate(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("%s broken: error %v, want one naming it", field, err)
		}
	}
	defer func() {
		if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "Concurrent") {
			t.Errorf("Generate with a bad config: panic %v, want one naming the field", r)
		}
	}()
	c := DefaultConfig()
	c.Concurrent = -1
	Generate(1, c)
}
