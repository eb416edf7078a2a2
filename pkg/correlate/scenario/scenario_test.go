package scenario

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"hash/fnv"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aiops-dev/aiops/pkg/config"
	"github.com/aiops-dev/aiops/pkg/correlate"
	"github.com/aiops-dev/aiops/pkg/event"
)

// seeds every property test runs over.
var seeds = []uint64{1, 2, 3, 4, 5}

var (
	cacheMu sync.Mutex
	cache   = map[uint64]Scenario{}
)

// scenarioOf is the default scenario of seed, generated once per test binary.
func scenarioOf(t *testing.T, seed uint64) Scenario {
	t.Helper()
	cacheMu.Lock()
	defer cacheMu.Unlock()
	s, ok := cache[seed]
	if !ok {
		s = Generate(seed, DefaultConfig())
		cache[seed] = s
	}
	return s
}

func jsonl(t *testing.T, lines []Line) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := WriteJSONL(&buf, lines); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestGenerateIsDeterministic(t *testing.T) {
	a := Generate(42, DefaultConfig())
	b := Generate(42, DefaultConfig())
	if !bytes.Equal(jsonl(t, a.Lines), jsonl(t, b.Lines)) {
		t.Fatal("two scenarios of seed 42 have different lines")
	}
	ta, _ := json.Marshal(a.Truth)
	tb, _ := json.Marshal(b.Truth)
	if !bytes.Equal(ta, tb) {
		t.Fatal("two scenarios of seed 42 have different truth")
	}
	ca, _ := json.Marshal(a.Catalog)
	cb, _ := json.Marshal(b.Catalog)
	if !bytes.Equal(ca, cb) {
		t.Fatal("two scenarios of seed 42 have different catalogs")
	}
	c := Generate(43, DefaultConfig())
	if bytes.Equal(jsonl(t, a.Lines), jsonl(t, c.Lines)) {
		t.Fatal("seeds 42 and 43 gave the same lines")
	}
}

func TestDefaultSizes(t *testing.T) {
	for _, seed := range seeds {
		s := scenarioOf(t, seed)
		sum := s.Summary()
		b, _ := json.Marshal(sum)
		t.Logf("seed %d: %s", seed, b)
		if err := s.Catalog.Validate(); err != nil {
			t.Errorf("seed %d: %v", seed, err)
		}
		if sum.Lines < 1000 || sum.Lines > 10000 {
			t.Errorf("seed %d: %d lines, want a few thousand", seed, sum.Lines)
		}
		if sum.Planned < 20 || sum.Planned > 40 {
			t.Errorf("seed %d: %d planned incidents, want 20 to 40", seed, sum.Planned)
		}
		if sum.Incidents[KindNoiseAlert] == 0 || sum.Incidents[KindNoiseAnomaly] == 0 || sum.Incidents[KindBackground] == 0 {
			t.Errorf("seed %d: no noise of some kind: %v", seed, sum.Incidents)
		}
		if sum.Changes < DefaultConfig().BenignChanges {
			t.Errorf("seed %d: %d changes, want at least the %d benign ones", seed, sum.Changes, DefaultConfig().BenignChanges)
		}
		for _, k := range []IncidentKind{KindCascade, KindDeploy, KindLocal} {
			if sum.Incidents[k] == 0 {
				t.Errorf("seed %d: no %s incident", seed, k)
			}
		}
	}
}

func TestLinesAreSortedAndInsideTheTimeline(t *testing.T) {
	for _, seed := range seeds {
		s := scenarioOf(t, seed)
		end := s.Config.Start.Add(s.Config.Duration)
		if !slices.IsSortedFunc(s.Lines, func(a, b Line) int { return a.Time.Compare(b.Time) }) {
			t.Errorf("seed %d: lines not sorted by time", seed)
		}
		for i, l := range s.Lines {
			if l.Time.Before(s.Config.Start) || l.Time.After(end) {
				t.Errorf("seed %d: line %d at %v, outside the timeline", seed, i+1, l.Time)
			}
		}
	}
}

// refFingerprint is Alertmanager's fingerprint written out independently.
func refFingerprint(labels map[string]string) string {
	keys := slices.Sorted(maps.Keys(labels))
	h := fnv.New64a()
	for _, k := range keys {
		h.Write(append([]byte(k), 0xff))
		h.Write(append([]byte(labels[k]), 0xff))
	}
	return hex.EncodeToString(h.Sum(nil))
}

func TestAlertFingerprint(t *testing.T) {
	// Prometheus' FNV-1a 64 of the empty label set is the offset basis.
	if got := AlertFingerprint(nil); got != "cbf29ce484222325" {
		t.Errorf("empty label set: %s", got)
	}
	l := map[string]string{"alertname": "HighLatency", "service": "checkout-api", "severity": "critical"}
	if got, want := AlertFingerprint(l), refFingerprint(l); got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	l2 := maps.Clone(l)
	l2["severity"] = "warning"
	if AlertFingerprint(l) == AlertFingerprint(l2) {
		t.Error("different label sets share a fingerprint")
	}
}

// keysOf returns the sorted keys of a decoded JSON object.
func keysOf(m map[string]json.RawMessage) []string { return slices.Sorted(maps.Keys(m)) }

func TestEveryLineHasTheDocumentedShape(t *testing.T) {
	s := scenarioOf(t, 1)
	data := jsonl(t, s.Lines)
	lineKeys := map[string][]string{
		"alertmanager": {"payload", "time", "type"},
		"change":       {"change", "time", "type"},
		"event":        {"event", "type"},
	}
	payloadKeys := []string{"alerts", "commonAnnotations", "commonLabels", "externalURL", "groupKey", "groupLabels", "receiver", "status", "truncatedAlerts", "version"}
	alertKeys := []string{"annotations", "endsAt", "fingerprint", "generatorURL", "labels", "startsAt", "status"}
	changeKeys := []string{"author", "commit", "kind", "service", "url", "version"}
	var prev time.Time
	counts := map[string]int{}
	for n, raw := range bytes.Split(bytes.TrimSpace(data), []byte("\n")) {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(raw, &obj); err != nil {
			t.Fatalf("line %d: %v", n+1, err)
		}
		var typ string
		json.Unmarshal(obj["type"], &typ)
		counts[typ]++
		if want, ok := lineKeys[typ]; !ok || !slices.Equal(keysOf(obj), want) {
			t.Fatalf("line %d: type %q keys %v", n+1, typ, keysOf(obj))
		}
		var lineTime time.Time
		if typ != "event" {
			var ts string
			json.Unmarshal(obj["time"], &ts)
			var err error
			if lineTime, err = time.Parse(time.RFC3339, ts); err != nil {
				t.Fatalf("line %d: time %q: %v", n+1, ts, err)
			}
		}
		switch typ {
		case "alertmanager":
			var p map[string]json.RawMessage
			json.Unmarshal(obj["payload"], &p)
			if !slices.Equal(keysOf(p), payloadKeys) {
				t.Fatalf("line %d: payload keys %v", n+1, keysOf(p))
			}
			var w struct {
				Version     string            `json:"version"`
				Status      string            `json:"status"`
				GroupLabels map[string]string `json:"groupLabels"`
				Common      map[string]string `json:"commonLabels"`
				Alerts      []map[string]json.RawMessage
			}
			json.Unmarshal(obj["payload"], &w)
			if w.Version != "4" || len(w.Alerts) == 0 || len(w.GroupLabels) != 1 {
				t.Fatalf("line %d: version %q, %d alerts, group labels %v", n+1, w.Version, len(w.Alerts), w.GroupLabels)
			}
			anyFiring := false
			for i, ra := range w.Alerts {
				if !slices.Equal(keysOf(ra), alertKeys) {
					t.Fatalf("line %d alert %d: keys %v", n+1, i, keysOf(ra))
				}
				var a struct {
					Status, StartsAt, EndsAt, Fingerprint string
					Labels                                map[string]string
					Annotations                           map[string]string
				}
				b, _ := json.Marshal(ra)
				json.Unmarshal(b, &a)
				if got := refFingerprint(a.Labels); a.Fingerprint != got {
					t.Fatalf("line %d alert %d: fingerprint %s, labels hash to %s", n+1, i, a.Fingerprint, got)
				}
				for _, k := range []string{"alertname", "service", "severity", "namespace"} {
					if a.Labels[k] == "" {
						t.Fatalf("line %d alert %d: no %s label: %v", n+1, i, k, a.Labels)
					}
				}
				if !slices.Contains([]string{"critical", "warning", "info"}, a.Labels["severity"]) {
					t.Fatalf("line %d alert %d: severity %q", n+1, i, a.Labels["severity"])
				}
				if a.Annotations["summary"] == "" || a.Annotations["description"] == "" {
					t.Fatalf("line %d alert %d: annotations %v", n+1, i, a.Annotations)
				}
				for k, v := range w.GroupLabels {
					if a.Labels[k] != v {
						t.Fatalf("line %d alert %d: group label %s=%s, alert has %q", n+1, i, k, v, a.Labels[k])
					}
				}
				for k, v := range w.Common {
					if a.Labels[k] != v {
						t.Fatalf("line %d alert %d: common label %s=%s, alert has %q", n+1, i, k, v, a.Labels[k])
					}
				}
				st, err := time.Parse(time.RFC3339, a.StartsAt)
				if err != nil || st.After(lineTime) {
					t.Fatalf("line %d alert %d: startsAt %q (%v) after the post at %v", n+1, i, a.StartsAt, err, lineTime)
				}
				switch a.Status {
				case "firing":
					anyFiring = true
					if a.EndsAt != "0001-01-01T00:00:00Z" {
						t.Fatalf("line %d alert %d: firing with endsAt %s", n+1, i, a.EndsAt)
					}
				case "resolved":
					en, err := time.Parse(time.RFC3339, a.EndsAt)
					if err != nil || !en.After(st) || en.After(lineTime) {
						t.Fatalf("line %d alert %d: resolved, startsAt %s endsAt %s posted %v", n+1, i, a.StartsAt, a.EndsAt, lineTime)
					}
				default:
					t.Fatalf("line %d alert %d: status %q", n+1, i, a.Status)
				}
			}
			if want := map[bool]string{true: "firing", false: "resolved"}[anyFiring]; w.Status != want {
				t.Fatalf("line %d: payload status %s, want %s", n+1, w.Status, want)
			}
		case "change":
			var c map[string]string
			if err := json.Unmarshal(obj["change"], &c); err != nil {
				t.Fatalf("line %d: change: %v", n+1, err)
			}
			if !slices.Equal(slices.Sorted(maps.Keys(c)), changeKeys) {
				t.Fatalf("line %d: change keys %v", n+1, slices.Sorted(maps.Keys(c)))
			}
			if !slices.Contains([]string{"deploy", "config", "feature_flag"}, c["kind"]) || c["service"] == "" || c["version"] == "" {
				t.Fatalf("line %d: change %v", n+1, c)
			}
			if _, ok := s.Catalog.Services[c["service"]]; !ok {
				t.Fatalf("line %d: change of %s, not in the catalog", n+1, c["service"])
			}
		case "event":
			e, err := event.Parse(obj["event"])
			if err != nil {
				t.Fatalf("line %d: %v", n+1, err)
			}
			lineTime = e.ObservedTime
		}
		if lineTime.Before(prev) {
			t.Fatalf("line %d at %v before the previous line at %v", n+1, lineTime, prev)
		}
		prev = lineTime
	}
	for _, typ := range []string{"alertmanager", "change", "event"} {
		if counts[typ] == 0 {
			t.Errorf("no %s lines", typ)
		}
	}
	// The lines read back as they were written.
	back, err := ReadJSONL(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(jsonl(t, back), data) {
		t.Error("lines read back do not write the same")
	}
}

func TestAnomaliesPassEventValidation(t *testing.T) {
	for _, seed := range seeds {
		s := scenarioOf(t, seed)
		ids := map[string]bool{}
		for _, l := range s.Lines {
			if l.Type != TypeEvent {
				continue
			}
			raw, err := json.Marshal(l.Event)
			if err != nil {
				t.Fatal(err)
			}
			e, err := event.Parse(raw)
			if err != nil {
				t.Fatalf("seed %d: %v\n%s", seed, err, raw)
			}
			if e.Kind != event.KindAnomaly || e.Source != "detector" || !e.ObservedTime.After(e.Time) {
				t.Fatalf("seed %d: kind %s source %s time %v observed %v", seed, e.Kind, e.Source, e.Time, e.ObservedTime)
			}
			var b event.AnomalyBody
			if err := e.DecodeBody(&b); err != nil {
				t.Fatal(err)
			}
			if b.Series != event.Fingerprint(event.KindMetric, e.Service, e.Labels, nil) || b.Metric != e.Labels["__name__"] {
				t.Fatalf("seed %d: anomaly %s: series %s metric %s labels %v", seed, e.ID, b.Series, b.Metric, e.Labels)
			}
			if e.Labels["service"] != e.Service {
				t.Fatalf("seed %d: anomaly %s: service %s, label %s", seed, e.ID, e.Service, e.Labels["service"])
			}
			if ids[e.ID] {
				t.Fatalf("seed %d: anomaly id %s twice", seed, e.ID)
			}
			ids[e.ID] = true
		}
		if len(ids) == 0 {
			t.Fatalf("seed %d: no anomalies", seed)
		}
	}
}

// itemsOfLines collects alert fingerprints (with their label sets) and
// anomaly ids straight from the lines.
func itemsOfLines(lines []Line) (alerts map[string]map[string]string, anomalies map[string]*event.Envelope) {
	alerts = map[string]map[string]string{}
	anomalies = map[string]*event.Envelope{}
	for _, l := range lines {
		switch l.Type {
		case TypeAlertmanager:
			for _, a := range l.Payload.Alerts {
				alerts[a.Fingerprint] = a.Labels
			}
		case TypeEvent:
			anomalies[l.Event.ID] = l.Event
		}
	}
	return alerts, anomalies
}

func TestTruthCoversEveryItem(t *testing.T) {
	for _, seed := range seeds {
		s := scenarioOf(t, seed)
		alerts, anomalies := itemsOfLines(s.Lines)
		for fp := range alerts {
			if s.Truth.Items[fp] == "" {
				t.Errorf("seed %d: alert %s has no true incident", seed, fp)
			}
		}
		for id := range anomalies {
			if s.Truth.Items[id] == "" {
				t.Errorf("seed %d: anomaly %s has no true incident", seed, id)
			}
		}
		if len(s.Truth.Items) != len(alerts)+len(anomalies) {
			t.Errorf("seed %d: truth has %d items, the lines %d", seed, len(s.Truth.Items), len(alerts)+len(anomalies))
		}
		// Every label is an incident, and each incident lists exactly its items.
		listed := map[string]string{}
		for _, inc := range s.Truth.Incidents {
			for _, id := range append(slices.Clone(inc.Alerts), inc.Anomalies...) {
				if prev, dup := listed[id]; dup {
					t.Errorf("seed %d: item %s in %s and %s", seed, id, prev, inc.Label)
				}
				listed[id] = inc.Label
			}
			if len(inc.Alerts)+len(inc.Anomalies) == 0 {
				t.Errorf("seed %d: incident %s has no items", seed, inc.Label)
			}
		}
		if !maps.Equal(listed, s.Truth.Items) {
			t.Errorf("seed %d: the incidents' item lists differ from Truth.Items", seed)
		}
		if got := len(s.Items()); got != len(s.Truth.Items) {
			t.Errorf("seed %d: Items() has %d items, truth %d", seed, got, len(s.Truth.Items))
		}
	}
}

func TestFingerprintKeepsItsLabelsAcrossNotifications(t *testing.T) {
	s := scenarioOf(t, 1)
	seen := map[string]map[string]string{}
	for _, l := range s.Lines {
		if l.Type != TypeAlertmanager {
			continue
		}
		for _, a := range l.Payload.Alerts {
			if prev, ok := seen[a.Fingerprint]; ok && !maps.Equal(prev, a.Labels) {
				t.Fatalf("fingerprint %s with labels %v and %v", a.Fingerprint, prev, a.Labels)
			}
			seen[a.Fingerprint] = a.Labels
		}
	}
}

func TestCatalogIsAcyclicAndLayered(t *testing.T) {
	for _, n := range []int{MinServices, 20, 40, MaxServices} {
		for _, seed := range seeds {
			c := buildTopology(rand.New(rand.NewPCG(seed, 1)), n).catalog
			if len(c.Services) != n {
				t.Fatalf("%d services asked, %d made", n, len(c.Services))
			}
			if err := c.Validate(); err != nil {
				t.Fatalf("seed %d, %d services: %v", seed, n, err)
			}
			teams := map[string]bool{}
			dependents := c.Dependents()
			for _, name := range c.Names() {
				svc := c.Services[name]
				if svc.Owner == "" || svc.Team == "" || svc.Tier == "" || svc.Runbook == "" {
					t.Fatalf("%s: %+v", name, svc)
				}
				teams[svc.Team] = true
				if c.DependsTransitively(name, name) {
					t.Fatalf("%s depends on itself", name)
				}
				if len(svc.DependsOn) == 0 && len(dependents[name]) == 0 {
					t.Errorf("seed %d, %d services: %s is isolated", seed, n, name)
				}
			}
			if len(teams) < 4 {
				t.Errorf("seed %d, %d services: %d teams", seed, n, len(teams))
			}
		}
	}
}

func TestCatalogFiles(t *testing.T) {
	s := scenarioOf(t, 1)
	dir := t.TempDir()
	yamlPath := filepath.Join(dir, "catalog.yaml")
	if err := WriteCatalog(yamlPath, s.Catalog); err != nil {
		t.Fatal(err)
	}
	back, err := correlate.ReadCatalog(yamlPath)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := json.Marshal(s.Catalog)
	if got, _ := json.Marshal(back); !bytes.Equal(got, want) {
		t.Error("catalog read back from YAML differs")
	}
	text, _ := os.ReadFile(yamlPath)
	for _, k := range []string{"services:", "owner:", "team:", "tier:", "runbook:", "depends_on:"} {
		if !bytes.Contains(text, []byte(k)) {
			t.Errorf("catalog.yaml has no %q", k)
		}
	}
	jsonPath := filepath.Join(dir, "catalog.json")
	os.WriteFile(jsonPath, want, 0o644)
	back, err = correlate.ReadCatalog(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := json.Marshal(back); !bytes.Equal(got, want) {
		t.Error("catalog read back from JSON differs")
	}
}

func TestWriteFilesRoundTrip(t *testing.T) {
	s := scenarioOf(t, 2)
	dir := filepath.Join(t.TempDir(), "storm")
	if err := WriteFiles(dir, s); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{EventsFile, CatalogFile, TruthFile} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	back, err := ReadFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(jsonl(t, back.Lines), jsonl(t, s.Lines)) {
		t.Error("lines differ after WriteFiles/ReadFiles")
	}
	a, _ := json.Marshal(s.Truth)
	b, _ := json.Marshal(back.Truth)
	if !bytes.Equal(a, b) {
		t.Error("truth differs after WriteFiles/ReadFiles")
	}
	if !reflect.DeepEqual(back.Catalog, s.Catalog) {
		t.Error("catalog differs after WriteFiles/ReadFiles")
	}
}

// alertServices maps each fingerprint to its service label, and anomaly
// ids to their service.
func itemService(lines []Line) map[string]string {
	out := map[string]string{}
	alerts, anomalies := itemsOfLines(lines)
	for fp, l := range alerts {
		out[fp] = l["service"]
	}
	for id, e := range anomalies {
		out[id] = e.Service
	}
	return out
}

func TestFailuresOnlyTravelUp(t *testing.T) {
	for _, seed := range seeds {
		s := scenarioOf(t, seed)
		svcOf := itemService(s.Lines)
		spread := 0
		for _, inc := range s.Truth.Incidents {
			if !slices.Contains(inc.Services, inc.Root) {
				t.Errorf("seed %d %s: root %s not among its services %v", seed, inc.Label, inc.Root, inc.Services)
			}
			for _, svc := range inc.Services {
				if svc != inc.Root && !s.Catalog.DependsTransitively(svc, inc.Root) {
					t.Errorf("seed %d %s (%s): %s is affected but does not depend on the root %s", seed, inc.Label, inc.Kind, svc, inc.Root)
				}
			}
			if inc.Kind.Planned() && len(inc.Services) > 1 {
				spread++
			}
			for _, id := range append(slices.Clone(inc.Alerts), inc.Anomalies...) {
				if !slices.Contains(inc.Services, svcOf[id]) {
					t.Errorf("seed %d %s: item %s on %s, outside %v", seed, inc.Label, id, svcOf[id], inc.Services)
				}
			}
			if inc.Kind == KindCascade && len(inc.Services) < 2 {
				t.Errorf("seed %d %s: a cascade that reached nobody", seed, inc.Label)
			}
		}
		if spread < 10 {
			t.Errorf("seed %d: only %d incidents spread beyond their root", seed, spread)
		}
	}
}

func TestDeployIncidentsFollowTheirChange(t *testing.T) {
	for _, seed := range seeds {
		s := scenarioOf(t, seed)
		firstAlert := map[string]time.Time{}
		for _, l := range s.Lines {
			if l.Type != TypeAlertmanager {
				continue
			}
			for _, a := range l.Payload.Alerts {
				if f, ok := firstAlert[a.Fingerprint]; !ok || a.StartsAt.Before(f) {
					firstAlert[a.Fingerprint] = a.StartsAt
				}
			}
		}
		changes := map[string]bool{}
		for _, l := range s.Lines {
			if l.Type == TypeChange {
				changes[l.Change.Service+"|"+l.Change.Kind+"|"+l.Change.Version+"|"+l.Time.Format(time.RFC3339)] = true
			}
		}
		for _, inc := range s.Truth.Incidents {
			if inc.Kind != KindDeploy {
				if inc.Change != nil {
					t.Errorf("seed %d %s: a %s incident with a change", seed, inc.Label, inc.Kind)
				}
				continue
			}
			c := inc.Change
			if c == nil || c.Service != inc.Root {
				t.Fatalf("seed %d %s: change %+v, root %s", seed, inc.Label, c, inc.Root)
			}
			if !changes[c.Service+"|"+c.Kind+"|"+c.Version+"|"+c.Time.Format(time.RFC3339)] {
				t.Errorf("seed %d %s: change %+v not among the lines", seed, inc.Label, c)
			}
			if d := inc.Start.Sub(c.Time); d < time.Minute || d > 10*time.Minute {
				t.Errorf("seed %d %s: failure %v after its change", seed, inc.Label, d)
			}
			for _, fp := range inc.Alerts {
				if firstAlert[fp].Before(c.Time.Add(time.Minute)) {
					t.Errorf("seed %d %s: alert %s starts at %v, less than a minute after the change at %v", seed, inc.Label, fp, firstAlert[fp], c.Time)
				}
			}
		}
	}
}

func TestAnomaliesComeBeforeAlerts(t *testing.T) {
	s := scenarioOf(t, 1)
	svcOf := itemService(s.Lines)
	firstAlert := map[string]time.Time{} // incident|service → first startsAt
	for _, l := range s.Lines {
		if l.Type != TypeAlertmanager {
			continue
		}
		for _, a := range l.Payload.Alerts {
			k := s.Truth.Items[a.Fingerprint] + "|" + a.Labels["service"]
			if f, ok := firstAlert[k]; !ok || a.StartsAt.Before(f) {
				firstAlert[k] = a.StartsAt
			}
		}
	}
	firstAnomaly := map[string]time.Time{}
	for _, l := range s.Lines {
		if l.Type == TypeEvent {
			label := s.Truth.Items[l.Event.ID]
			// On the 15 s scrape grid, not before the failure began.
			if inc, _ := s.Truth.Incident(label); l.Event.Time.Before(inc.Start.Add(-15 * time.Second)) {
				t.Errorf("%s: anomaly at %v, before the failure at %v", label, l.Event.Time, inc.Start)
			}
			k := label + "|" + svcOf[l.Event.ID]
			if f, ok := firstAnomaly[k]; !ok || l.Event.Time.Before(f) {
				firstAnomaly[k] = l.Event.Time
			}
		}
	}
	inIncidents := 0
	for k, at := range firstAnomaly {
		label := strings.Split(k, "|")[0]
		inc, _ := s.Truth.Incident(label)
		if !inc.Kind.Planned() {
			continue
		}
		inIncidents++
		alert, ok := firstAlert[k]
		if ok && !at.Before(alert) {
			t.Errorf("%s: first anomaly at %v, first alert at %v", k, at, alert)
		}
	}
	if inIncidents == 0 {
		t.Error("no anomalies inside incidents")
	}
}

func TestSimultaneousIndependentIncidents(t *testing.T) {
	sameTeam, sharedName := 0, 0
	for _, seed := range seeds {
		s := scenarioOf(t, seed)
		names := map[string]map[string]bool{} // incident → alert names
		alerts, _ := itemsOfLines(s.Lines)
		for fp, l := range alerts {
			label := s.Truth.Items[fp]
			if names[label] == nil {
				names[label] = map[string]bool{}
			}
			names[label][l["alertname"]] = true
		}
		var planned []Incident
		for _, inc := range s.Truth.Incidents {
			if inc.Kind.Planned() {
				planned = append(planned, inc)
			}
		}
		independent := 0
		for i, a := range planned {
			for _, b := range planned[i+1:] {
				if d := b.Start.Sub(a.Start).Abs(); d > time.Minute {
					continue
				}
				disjoint := !slices.ContainsFunc(a.Services, func(x string) bool { return slices.Contains(b.Services, x) })
				unrelated := !s.Catalog.DependsTransitively(a.Root, b.Root) && !s.Catalog.DependsTransitively(b.Root, a.Root)
				if !disjoint || !unrelated {
					continue
				}
				independent++
				if a.Team == b.Team {
					sameTeam++
				}
				for n := range names[a.Label] {
					if names[b.Label][n] {
						sharedName++
						break
					}
				}
			}
		}
		t.Logf("seed %d: %d independent pairs starting within a minute", seed, independent)
		if independent == 0 {
			t.Errorf("seed %d: no independent incidents starting within a minute of each other", seed)
		}
	}
	t.Logf("%d simultaneous pairs share a team, %d an alert name", sameTeam, sharedName)
	if sameTeam == 0 || sharedName == 0 {
		t.Errorf("over %d seeds: %d simultaneous pairs share a team, %d share an alert name; want some of both", len(seeds), sameTeam, sharedName)
	}
}

// occurrences maps fingerprint → the distinct startsAt it was sent with.
func occurrences(lines []Line) map[string]map[time.Time]bool {
	out := map[string]map[time.Time]bool{}
	for _, l := range lines {
		if l.Type != TypeAlertmanager {
			continue
		}
		for _, a := range l.Payload.Alerts {
			if out[a.Fingerprint] == nil {
				out[a.Fingerprint] = map[time.Time]bool{}
			}
			out[a.Fingerprint][a.StartsAt] = true
		}
	}
	return out
}

func TestFlappingRefiringAndRepeats(t *testing.T) {
	for _, seed := range seeds {
		s := scenarioOf(t, seed)
		occ := occurrences(s.Lines)
		flapping, refired := 0, 0
		for _, inc := range s.Truth.Incidents {
			most := 0
			for _, fp := range inc.Alerts {
				most = max(most, len(occ[fp]))
			}
			switch {
			case inc.Flapping && most < 3:
				t.Errorf("seed %d %s: flapping, but no alert fired more than %d times", seed, inc.Label, most)
			case inc.Flapping && inc.Kind.Planned():
				flapping++
			case inc.Refired && most < 2:
				t.Errorf("seed %d %s: refired, but no alert fired twice", seed, inc.Label)
			case inc.Refired:
				refired++
			}
		}
		t.Logf("seed %d: %d incidents with a flapping alert, %d with a refired one", seed, flapping, refired)
		if flapping == 0 || refired == 0 {
			t.Errorf("seed %d: %d incidents with a flapping alert, %d with a refired one", seed, flapping, refired)
		}

		// A firing alert is re-sent at least every repeat interval while it
		// fires, and resolved notifications carry endsAt.
		type key struct {
			fp string
			at time.Time
		}
		lastSent := map[key]time.Time{}
		resolved, repeats := 0, 0
		sizes := map[int]int{}
		groupBy := map[string]bool{}
		for _, l := range s.Lines {
			if l.Type != TypeAlertmanager {
				continue
			}
			sizes[min(len(l.Payload.Alerts), 3)]++
			for k := range l.Payload.GroupLabels {
				groupBy[k] = true
			}
			for _, a := range l.Payload.Alerts {
				k := key{a.Fingerprint, a.StartsAt}
				if a.Status == event.AlertResolved {
					resolved++
					delete(lastSent, k)
					continue
				}
				if prev, ok := lastSent[k]; ok {
					repeats++
					if gap := l.Time.Sub(prev); gap > s.Config.RepeatMax {
						t.Errorf("seed %d: alert %s re-sent after %v, over the longest repeat interval", seed, a.Fingerprint, gap)
					}
				}
				lastSent[k] = l.Time
			}
		}
		t.Logf("seed %d: %d resolved notifications, %d repeats, webhook sizes (1, 2, 3+) %v", seed, resolved, repeats, sizes)
		if resolved == 0 || repeats == 0 {
			t.Errorf("seed %d: %d resolved notifications, %d repeats", seed, resolved, repeats)
		}
		if sizes[1] == 0 || sizes[2]+sizes[3] == 0 {
			t.Errorf("seed %d: webhook sizes %v: want lone alerts and groups", seed, sizes)
		}
		if !groupBy["alertname"] || !groupBy["service"] {
			t.Errorf("seed %d: webhooks grouped by %v, want alertname and service", seed, groupBy)
		}
	}
}

func TestSomeGroupsMixIncidents(t *testing.T) {
	s := scenarioOf(t, 1)
	mixed := 0
	for _, l := range s.Lines {
		if l.Type != TypeAlertmanager {
			continue
		}
		labels := map[string]bool{}
		for _, a := range l.Payload.Alerts {
			labels[s.Truth.Items[a.Fingerprint]] = true
		}
		if len(labels) > 1 {
			mixed++
		}
	}
	t.Logf("%d webhooks hold alerts of more than one incident", mixed)
	if mixed == 0 {
		t.Error("no webhook holds alerts of two incidents")
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	cases := map[string]func(*Config){
		"no start":             func(c *Config) { c.Start = time.Time{} },
		"short":                func(c *Config) { c.Duration = 10 * time.Minute },
		"few services":         func(c *Config) { c.Services = MinServices - 1 },
		"many services":        func(c *Config) { c.Services = MaxServices + 1 },
		"negative incidents":   func(c *Config) { c.Incidents = -1 },
		"too many clusters":    func(c *Config) { c.Simultaneous = c.Incidents/3 + 1 },
		"shares over one":      func(c *Config) { c.CascadeShare, c.DeployShare = 0.7, 0.5 },
		"bad flap rate":        func(c *Config) { c.FlapRate = 1.5 },
		"negative noise":       func(c *Config) { c.NoiseAlerts = -1 },
		"repeat under group":   func(c *Config) { c.RepeatMin = 30 * time.Second },
		"repeat max under min": func(c *Config) { c.RepeatMax = c.RepeatMin - time.Second },
		"tiny group interval":  func(c *Config) { c.GroupInterval = time.Second },
	}
	names := slices.Collect(maps.Keys(cases))
	sort.Strings(names)
	for _, name := range names {
		c := DefaultConfig()
		cases[name](&c)
		err := c.Validate()
		if !errors.Is(err, ErrInvalidConfig) || !errors.Is(err, config.ErrInvalidConfig) {
			t.Errorf("%s: %v", name, err)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("Generate accepted an invalid config")
		}
	}()
	c := DefaultConfig()
	c.Services = 0
	Generate(1, c)
}

func TestSmallAndQuietConfigs(t *testing.T) {
	c := DefaultConfig()
	c.Incidents, c.Simultaneous = 0, 0
	c.NoiseAlerts, c.NoiseAnomalies, c.BackgroundAlerts, c.BenignChanges = 0, 0, 0, 0
	if s := Generate(1, c); len(s.Lines) != 0 || len(s.Truth.Items) != 0 {
		t.Errorf("an empty config made %d lines, %d items", len(s.Lines), len(s.Truth.Items))
	}
	c = DefaultConfig()
	c.Services, c.Incidents, c.Simultaneous, c.Duration = MinServices, 3, 1, time.Hour
	s := Generate(7, c)
	if len(s.Truth.Items) == 0 {
		t.Error("a small config made no items")
	}
}
