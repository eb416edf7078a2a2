package opsgen

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"regexp"
	"slices"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/aiops-dev/aiops/pkg/correlate/eval"
	"github.com/aiops-dev/aiops/pkg/event"
)

func TestDeterministic(t *testing.T) {
	for seed := uint64(1); seed <= 3; seed++ {
		a, b := Generate(seed, DefaultConfig()), Generate(seed, DefaultConfig())
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("seed %d: two runs differ", seed)
		}
	}
	if reflect.DeepEqual(Generate(1, DefaultConfig()).Lines, Generate(2, DefaultConfig()).Lines) {
		t.Fatal("seeds 1 and 2 make the same storm")
	}
}

// the replay input as the issue defines it
type replayLine struct {
	Type    string          `json:"type"`
	Time    string          `json:"time"`
	Payload json.RawMessage `json:"payload"`
	Change  json.RawMessage `json:"change"`
}

type webhookIn struct {
	Version           string            `json:"version"`
	GroupKey          string            `json:"groupKey"`
	TruncatedAlerts   int               `json:"truncatedAlerts"`
	Status            string            `json:"status"`
	Receiver          string            `json:"receiver"`
	GroupLabels       map[string]string `json:"groupLabels"`
	CommonLabels      map[string]string `json:"commonLabels"`
	CommonAnnotations map[string]string `json:"commonAnnotations"`
	ExternalURL       string            `json:"externalURL"`
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

type changeIn struct {
	Service string `json:"service"`
	Kind    string `json:"kind"`
	Version string `json:"version"`
	Author  string `json:"author"`
	Commit  string `json:"commit"`
	URL     string `json:"url"`
}

type catalogIn struct {
	Services map[string]struct {
		Owner     string   `yaml:"owner"`
		Team      string   `yaml:"team"`
		Tier      int      `yaml:"tier"`
		Runbook   string   `yaml:"runbook"`
		DependsOn []string `yaml:"depends_on"`
	} `yaml:"services"`
}

// strict decodes b into v, refusing unknown fields.
func strict(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	return d.Decode(v)
}

func parseCatalog(t *testing.T, b []byte) catalogIn {
	t.Helper()
	var c catalogIn
	d := yaml.NewDecoder(bytes.NewReader(b))
	d.KnownFields(true)
	if err := d.Decode(&c); err != nil {
		t.Fatalf("catalog: %v", err)
	}
	return c
}

func TestLines(t *testing.T) {
	for seed := uint64(1); seed <= 5; seed++ {
		st := Generate(seed, DefaultConfig())
		cat := parseCatalog(t, st.Catalog)
		var last time.Time
		notifications := 0
		for i, b := range st.Lines {
			var keys map[string]json.RawMessage
			if err := json.Unmarshal(b, &keys); err != nil {
				t.Fatalf("seed %d line %d: %v", seed, i, err)
			}
			var l replayLine
			if err := strict(b, &l); err != nil {
				t.Fatalf("seed %d line %d: %v", seed, i, err)
			}
			at, err := time.Parse(time.RFC3339, l.Time)
			if err != nil {
				t.Fatalf("seed %d line %d: time: %v", seed, i, err)
			}
			if at.Before(last) {
				t.Fatalf("seed %d line %d: time %s before %s", seed, i, at, last)
			}
			last = at
			switch l.Type {
			case "alertmanager":
				notifications++
				if !slices.Equal(slices.Sorted(maps.Keys(keys)), []string{"payload", "time", "type"}) {
					t.Fatalf("seed %d line %d: fields %v", seed, i, slices.Sorted(maps.Keys(keys)))
				}
				checkWebhook(t, l.Payload, at, cat)
			case "change":
				if !slices.Equal(slices.Sorted(maps.Keys(keys)), []string{"change", "time", "type"}) {
					t.Fatalf("seed %d line %d: fields %v", seed, i, slices.Sorted(maps.Keys(keys)))
				}
				var c changeIn
				if err := strict(l.Change, &c); err != nil {
					t.Fatalf("seed %d line %d: change: %v", seed, i, err)
				}
				var ck map[string]any
				json.Unmarshal(l.Change, &ck)
				if len(ck) != 6 {
					t.Fatalf("seed %d line %d: change fields %v", seed, i, ck)
				}
				if _, ok := cat.Services[c.Service]; !ok {
					t.Fatalf("seed %d line %d: change of %q, not in the catalog", seed, i, c.Service)
				}
				if !slices.Contains([]string{"deploy", "config", "feature_flag", "rollback"}, c.Kind) || c.Version == "" || c.Author == "" || c.URL == "" {
					t.Fatalf("seed %d line %d: change %+v", seed, i, c)
				}
			default:
				t.Fatalf("seed %d line %d: type %q", seed, i, l.Type)
			}
		}
		if notifications != st.Notifications {
			t.Fatalf("seed %d: %d notifications, Notifications says %d", seed, notifications, st.Notifications)
		}
	}
}

func checkWebhook(t *testing.T, raw json.RawMessage, at time.Time, cat catalogIn) {
	t.Helper()
	var p webhookIn
	if err := strict(raw, &p); err != nil {
		t.Fatalf("payload: %v", err)
	}
	if p.Version != "4" || p.GroupKey == "" || p.Receiver == "" || p.ExternalURL == "" || len(p.Alerts) == 0 {
		t.Fatalf("payload: %s", raw)
	}
	status := "resolved"
	for _, a := range p.Alerts {
		if a.Fingerprint != event.AlertmanagerFingerprint(a.Labels) {
			t.Fatalf("alert %v: fingerprint %s, labels give %s", a.Labels, a.Fingerprint, event.AlertmanagerFingerprint(a.Labels))
		}
		for _, k := range []string{"alertname", "severity", "service", "team", "namespace"} {
			if a.Labels[k] == "" {
				t.Fatalf("alert %v: no %s", a.Labels, k)
			}
		}
		if _, ok := cat.Services[a.Labels["service"]]; !ok {
			t.Fatalf("alert %v: service not in the catalog", a.Labels)
		}
		if a.Annotations["summary"] == "" || a.Annotations["description"] == "" || a.GeneratorURL == "" {
			t.Fatalf("alert %v: annotations %v", a.Labels, a.Annotations)
		}
		if a.StartsAt.After(at) {
			t.Fatalf("alert %v starts at %s, after its notification at %s", a.Labels, a.StartsAt, at)
		}
		switch a.Status {
		case "firing":
			status = "firing"
			if !a.EndsAt.IsZero() {
				t.Fatalf("firing alert %v ends at %s", a.Labels, a.EndsAt)
			}
		case "resolved":
			if a.EndsAt.Before(a.StartsAt) || a.EndsAt.After(at) {
				t.Fatalf("resolved alert %v: %s to %s, notified at %s", a.Labels, a.StartsAt, a.EndsAt, at)
			}
		default:
			t.Fatalf("alert status %q", a.Status)
		}
		for k, v := range p.CommonLabels {
			if a.Labels[k] != v {
				t.Fatalf("common label %s=%s not on %v", k, v, a.Labels)
			}
		}
	}
	if p.Status != status {
		t.Fatalf("payload status %s, alerts say %s", p.Status, status)
	}
	for k, v := range p.GroupLabels {
		if p.CommonLabels[k] != v {
			t.Fatalf("group label %s=%s not common", k, v)
		}
	}
}

func TestTruth(t *testing.T) {
	id := regexp.MustCompile(`^(inc-\d{3}-(cascade|deploy|replicas|node|flap|refire)|noise-\d{3})$`)
	for seed := uint64(1); seed <= 10; seed++ {
		st := Generate(seed, DefaultConfig())
		seen := map[string]bool{}
		for _, b := range st.Lines {
			var l struct{ Payload *webhookIn }
			json.Unmarshal(b, &l)
			if l.Payload == nil {
				continue
			}
			for _, a := range l.Payload.Alerts {
				seen[a.Fingerprint] = true
				if _, ok := st.Truth[a.Fingerprint]; !ok {
					t.Fatalf("seed %d: alert %s of the lines is not in the truth", seed, a.Fingerprint)
				}
			}
		}
		ids := map[string]bool{}
		kinds := map[string]bool{}
		for fp, inc := range st.Truth {
			if !seen[fp] {
				t.Fatalf("seed %d: truth alert %s is in no line", seed, fp)
			}
			if !id.MatchString(inc) {
				t.Fatalf("seed %d: incident id %q", seed, inc)
			}
			ids[inc] = true
			kinds[kindOf(inc)] = true
		}
		if st.Incidents != len(ids) {
			t.Fatalf("seed %d: Incidents %d, truth has %d", seed, st.Incidents, len(ids))
		}
		if !kinds["cascade"] || !kinds["noise"] {
			t.Fatalf("seed %d: no cascade or no noise (%v)", seed, kinds)
		}
		for _, base := range []map[string]string{st.BaselineByService(), st.BaselineTimeWindow(5 * time.Minute)} {
			for fp := range st.Truth {
				if base[fp] == "" {
					t.Fatalf("seed %d: a baseline misses %s", seed, fp)
				}
			}
		}
	}
}

var incidentID = regexp.MustCompile(`^inc-\d+-(\w+)$`)

// kindOf is the kind of incident an id names, "noise" for a noise id.
func kindOf(id string) string {
	if m := incidentID.FindStringSubmatch(id); m != nil {
		return m[1]
	}
	return "noise"
}

func TestCatalog(t *testing.T) {
	for seed := uint64(1); seed <= 10; seed++ {
		cat := parseCatalog(t, Generate(seed, DefaultConfig()).Catalog)
		if n := len(cat.Services); n < 40 || n > 61 {
			t.Fatalf("seed %d: %d services", seed, n)
		}
		for name, s := range cat.Services {
			if s.Owner == "" || s.Team == "" || s.Runbook == "" || s.Tier < 1 || s.Tier > 3 || s.DependsOn == nil {
				t.Fatalf("seed %d: service %s: %+v", seed, name, s)
			}
			for _, d := range s.DependsOn {
				if _, ok := cat.Services[d]; !ok {
					t.Fatalf("seed %d: %s depends on %s, not in the catalog", seed, name, d)
				}
			}
		}
		// no cycles: depth-first, a service met again on the path is one
		state := map[string]int{} // 1 on the path, 2 done
		var visit func(string, []string)
		visit = func(n string, path []string) {
			switch state[n] {
			case 1:
				t.Fatalf("seed %d: dependency cycle %v", seed, append(path, n))
			case 2:
				return
			}
			state[n] = 1
			for _, d := range cat.Services[n].DependsOn {
				visit(d, append(path, n))
			}
			state[n] = 2
		}
		for _, n := range slices.Sorted(maps.Keys(cat.Services)) {
			visit(n, nil)
		}
	}
}

// mean averages the scores of the baselines over seeds from to to.
func mean(from, to uint64) (byService, window eval.Scores) {
	n := float64(to - from + 1)
	add := func(sum *eval.Scores, s eval.Scores) {
		sum.Precision += s.Precision / n
		sum.Recall += s.Recall / n
		sum.F1 += s.F1 / n
	}
	for seed := from; seed <= to; seed++ {
		st := Generate(seed, DefaultConfig())
		add(&byService, eval.Pairwise(st.BaselineByService(), st.Truth))
		add(&window, eval.Pairwise(st.BaselineTimeWindow(5*time.Minute), st.Truth))
	}
	return byService, window
}

// TestBaselines checks the calibration: over seeds 1-20 the two naive
// baselines score as the issue measured them on its storms. Seeds 21-40
// and 41-100 are logged as a check on seeds the calibration did not see.
func TestBaselines(t *testing.T) {
	for _, r := range [][2]uint64{{1, 20}, {21, 40}, {41, 100}} {
		s, w := mean(r[0], r[1])
		t.Logf("seeds %d-%d: by service P=%.3f R=%.3f F1=%.3f; 5-minute window P=%.3f R=%.3f F1=%.3f",
			r[0], r[1], s.Precision, s.Recall, s.F1, w.Precision, w.Recall, w.F1)
		if r[0] != 1 {
			continue
		}
		if s.F1 < 0.09 || s.F1 > 0.20 {
			t.Errorf("label grouping by service: mean F1 %.3f over seeds 1-20, the issue measured 0.09-0.20", s.F1)
		}
		if w.F1 < 0.63 || w.F1 > 0.73 {
			t.Errorf("5-minute time window: mean F1 %.3f over seeds 1-20, the issue measured 0.63-0.73", w.F1)
		}
	}
}

// TestSummary logs what the storms hold (go test -v -run Summary) and
// checks that every kind of incident shows up.
func TestSummary(t *testing.T) {
	var lines, notifications, alerts, incidents, noise, changes int
	kinds := map[string]int{}
	const n = 20
	for seed := uint64(1); seed <= n; seed++ {
		st := Generate(seed, DefaultConfig())
		lines += len(st.Lines)
		notifications += st.Notifications
		changes += len(st.Lines) - st.Notifications
		alerts += len(st.Truth)
		incidents += st.Incidents
		ids := map[string]bool{}
		for _, id := range st.Truth {
			ids[id] = true
		}
		for id := range ids {
			kinds[kindOf(id)]++
			if kindOf(id) == "noise" {
				noise++
			}
		}
	}
	per := func(x int) string { return fmt.Sprintf("%.1f", float64(x)/n) }
	t.Logf("per storm (seeds 1-%d): %s lines, %s notifications, %s changes, %s alerts, %s true incidents of which %s noise alerts",
		n, per(lines), per(notifications), per(changes), per(alerts), per(incidents), per(noise))
	for _, k := range []string{"cascade", "deploy", "replicas", "node", "flap", "refire", "noise"} {
		t.Logf("  %-9s %s per storm", k, per(kinds[k]))
		if kinds[k] == 0 {
			t.Errorf("no %s incident in seeds 1-%d", k, n)
		}
	}
}

// A small estate (20-30 services) may have no service a kind of noise
// fits: the storm leaves that noise out instead of failing.
func TestSmallEstate(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MinServices, cfg.MaxServices = 20, 30
	for seed := uint64(41); seed <= 60; seed++ {
		st := Generate(seed, cfg)
		if len(st.Truth) == 0 || len(st.Lines) == 0 {
			t.Fatalf("seed %d: an empty storm", seed)
		}
		if n := len(parseCatalog(t, st.Catalog).Services); n < 20 || n > 30 {
			t.Fatalf("seed %d: %d services, want 20-30", seed, n)
		}
	}
}
