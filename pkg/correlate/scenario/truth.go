package scenario

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/aiops-dev/aiops/pkg/correlate"
	"github.com/aiops-dev/aiops/pkg/event"
)

// IncidentKind says how a true incident came about.
type IncidentKind string

// The incident kinds. Cascade, deploy and local are the planned,
// multi-signal incidents; the others are singletons.
const (
	// KindCascade: a backend or data store fails; services that depend on
	// it, transitively, alert seconds to minutes later.
	KindCascade IncidentKind = "cascade"
	// KindDeploy: a change (deploy, config, feature flag) breaks a
	// service 1-10 minutes later; some of its dependents alert too.
	KindDeploy IncidentKind = "deploy"
	// KindLocal: one service fails on its own (disk, crash loop, expired
	// certificate); a direct dependent notices now and then.
	KindLocal IncidentKind = "local"
	// KindNoiseAlert: one isolated alert.
	KindNoiseAlert IncidentKind = "noise_alert"
	// KindNoiseAnomaly: one isolated detector blip (1-3 anomaly events of
	// one series).
	KindNoiseAnomaly IncidentKind = "noise_anomaly"
	// KindBackground: one alert firing from before the scenario to after it.
	KindBackground IncidentKind = "background"
)

// Planned reports whether k is a multi-signal incident kind.
func (k IncidentKind) Planned() bool {
	return k == KindCascade || k == KindDeploy || k == KindLocal
}

// Truth is what a correlator should find.
type Truth struct {
	// Items maps every alert fingerprint and every anomaly event id in
	// the lines to the label of its true incident. A fingerprint belongs
	// to one incident: the generator never reuses a label set across
	// incidents.
	Items map[string]string `json:"items"`
	// Incidents lists every true incident that has an item in the lines,
	// by start time.
	Incidents []Incident `json:"incidents"`
}

// Incident is one true incident.
type Incident struct {
	Label string       `json:"label"`
	Kind  IncidentKind `json:"kind"`
	// Root is the service where the failure began (for a singleton, the
	// service of its alert or anomaly) and Team the root's team.
	Root string `json:"root"`
	Team string `json:"team"`
	// Change is the change that caused the incident (deploy kind only);
	// Rollback the change that undid it, if any. Neither is an item.
	Change   *ChangeRef `json:"change,omitempty"`
	Rollback *ChangeRef `json:"rollback,omitempty"`
	// Start is when the failure began at the root (before any alert; a
	// background alert's startsAt, before the scenario); End when its last
	// alert stopped firing or its last anomaly was seen, at most the end
	// of the scenario. Open says its alerts still fire at the end.
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	Open  bool      `json:"open,omitempty"`
	// Services are the affected services, sorted; every one but the root
	// depends on the root, directly or not.
	Services []string `json:"services"`
	// Alerts and Anomalies are the incident's items, sorted.
	Alerts    []string `json:"alerts"`
	Anomalies []string `json:"anomalies"`
	// Cluster, when positive, numbers the group of simultaneous
	// incidents (starting within a minute of each other) it belongs to.
	Cluster  int  `json:"cluster,omitempty"`
	Flapping bool `json:"flapping,omitempty"`
	Refired  bool `json:"refired,omitempty"`
}

// ChangeRef identifies one change line: service, kind and time, with the
// version and commit it carried.
type ChangeRef struct {
	Service string    `json:"service"`
	Kind    string    `json:"kind"`
	Version string    `json:"version,omitempty"`
	Commit  string    `json:"commit,omitempty"`
	Time    time.Time `json:"time"`
}

// truth keeps what went into the lines.
func (g *gen) truth(lines []Line) Truth {
	of := map[string]string{}
	for _, a := range g.alerts {
		of[a.fp] = a.label
	}
	for _, a := range g.anomalies {
		of[a.env.ID] = a.label
	}
	items := map[string]string{}
	alerts := map[string][]string{}
	anomalies := map[string][]string{}
	for _, l := range lines {
		switch l.Type {
		case TypeAlertmanager:
			for _, a := range l.Payload.Alerts {
				if _, ok := items[a.Fingerprint]; !ok {
					label := of[a.Fingerprint]
					items[a.Fingerprint] = label
					alerts[label] = append(alerts[label], a.Fingerprint)
				}
			}
		case TypeEvent:
			label := of[l.Event.ID]
			items[l.Event.ID] = label
			anomalies[label] = append(anomalies[label], l.Event.ID)
		}
	}
	t := Truth{Items: items}
	for _, inc := range g.incidents {
		if len(alerts[inc.Label])+len(anomalies[inc.Label]) == 0 {
			continue
		}
		c := *inc
		if c.End.IsZero() || c.End.After(g.end) {
			c.End, c.Open = g.end, true
		}
		c.Alerts = slices.Sorted(slices.Values(alerts[inc.Label]))
		c.Anomalies = slices.Sorted(slices.Values(anomalies[inc.Label]))
		if c.Alerts == nil {
			c.Alerts = []string{}
		}
		if c.Anomalies == nil {
			c.Anomalies = []string{}
		}
		t.Incidents = append(t.Incidents, c)
	}
	slices.SortStableFunc(t.Incidents, func(a, b Incident) int {
		if c := a.Start.Compare(b.Start); c != 0 {
			return c
		}
		return strings.Compare(a.Label, b.Label)
	})
	return t
}

// Incident returns the true incident labelled label.
func (t Truth) Incident(label string) (Incident, bool) {
	for _, inc := range t.Incidents {
		if inc.Label == label {
			return inc, true
		}
	}
	return Incident{}, false
}

// File names WriteFiles writes.
const (
	EventsFile  = "events.jsonl"
	CatalogFile = "catalog.yaml"
	TruthFile   = "truth.json"
)

// WriteFiles writes the scenario into dir (created if missing):
// events.jsonl (the replay lines), catalog.yaml and truth.json.
func WriteFiles(dir string, s Scenario) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := WriteJSONL(&buf, s.Lines); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, EventsFile), buf.Bytes(), 0o644); err != nil {
		return err
	}
	if err := WriteCatalog(filepath.Join(dir, CatalogFile), s.Catalog); err != nil {
		return err
	}
	return WriteTruth(filepath.Join(dir, TruthFile), s.Truth)
}

// WriteTruth writes t as indented JSON.
func WriteTruth(path string, t Truth) error {
	data, err := json.MarshalIndent(t, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}

// ReadTruth reads what WriteTruth wrote.
func ReadTruth(path string) (Truth, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Truth{}, err
	}
	var t Truth
	if err := json.Unmarshal(data, &t); err != nil {
		return Truth{}, fmt.Errorf("truth %s: %w", path, err)
	}
	return t, nil
}

// ReadFiles reads a scenario WriteFiles wrote (Seed and Config are not
// stored and stay zero).
func ReadFiles(dir string) (Scenario, error) {
	var s Scenario
	f, err := os.Open(filepath.Join(dir, EventsFile))
	if err != nil {
		return s, err
	}
	defer f.Close()
	if s.Lines, err = ReadJSONL(f); err != nil {
		return s, fmt.Errorf("%s: %w", EventsFile, err)
	}
	cat, err := correlate.ReadCatalog(filepath.Join(dir, CatalogFile))
	if err != nil {
		return s, err
	}
	s.Catalog = *cat
	s.Truth, err = ReadTruth(filepath.Join(dir, TruthFile))
	return s, err
}

// Item is one thing to correlate, as the lines show it: an alert (all
// notifications of one fingerprint) or one anomaly event.
type Item struct {
	ID      string     // alert fingerprint or anomaly event id
	Kind    event.Kind // event.KindAlert or event.KindAnomaly
	Service string     // the alert's service label (else job, app), the anomaly's service
	// Labels are the alert's labels or the anomaly envelope's labels.
	Labels map[string]string
	// FirstSeen is the time of the first line that carries the item.
	FirstSeen time.Time
	// Notifications counts the alert entries of the item in webhooks
	// (firing, repeated and resolved); 1 for an anomaly.
	Notifications int
}

// Items lists the items of the lines in the order they were first seen
// (then by id). It reads only what a correlator reads, not the truth.
func (s Scenario) Items() []Item {
	return ItemsOf(s.Lines)
}

// ItemsOf is Scenario.Items over any lines.
func ItemsOf(lines []Line) []Item {
	index := map[string]int{}
	var out []Item
	for _, l := range lines {
		switch l.Type {
		case TypeAlertmanager:
			for _, a := range l.Payload.Alerts {
				if i, ok := index[a.Fingerprint]; ok {
					out[i].Notifications++
					continue
				}
				index[a.Fingerprint] = len(out)
				svc := a.Labels["service"]
				for _, k := range []string{"job", "app"} {
					if svc == "" {
						svc = a.Labels[k]
					}
				}
				out = append(out, Item{ID: a.Fingerprint, Kind: event.KindAlert, Service: svc, Labels: a.Labels, FirstSeen: l.Time, Notifications: 1})
			}
		case TypeEvent:
			if l.Event.Kind != event.KindAnomaly {
				continue
			}
			if _, ok := index[l.Event.ID]; ok {
				continue
			}
			index[l.Event.ID] = len(out)
			out = append(out, Item{ID: l.Event.ID, Kind: event.KindAnomaly, Service: l.Event.Service, Labels: l.Event.Labels, FirstSeen: l.Time, Notifications: 1})
		}
	}
	slices.SortStableFunc(out, func(a, b Item) int {
		if c := a.FirstSeen.Compare(b.FirstSeen); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}

// Summary counts what a scenario holds.
type Summary struct {
	Lines         int `json:"lines"`
	Webhooks      int `json:"webhooks"`
	Changes       int `json:"changes"`
	AnomalyEvents int `json:"anomaly_events"`
	// Notifications counts alert entries over all webhooks; Alerts the
	// distinct fingerprints among them.
	Notifications int `json:"notifications"`
	Alerts        int `json:"alerts"`
	Resolved      int `json:"resolved"` // resolved alert entries
	// Incidents counts true incidents by kind; Planned the cascade, deploy
	// and local ones.
	Incidents map[IncidentKind]int `json:"incidents"`
	Planned   int                  `json:"planned"`
	Total     int                  `json:"total"`
}

// Summary counts the lines, notifications, items and true incidents.
func (s Scenario) Summary() Summary {
	sum := Summary{Lines: len(s.Lines), Incidents: map[IncidentKind]int{}}
	fps := map[string]bool{}
	for _, l := range s.Lines {
		switch l.Type {
		case TypeAlertmanager:
			sum.Webhooks++
			for _, a := range l.Payload.Alerts {
				sum.Notifications++
				fps[a.Fingerprint] = true
				if a.Status == event.AlertResolved {
					sum.Resolved++
				}
			}
		case TypeChange:
			sum.Changes++
		case TypeEvent:
			sum.AnomalyEvents++
		}
	}
	sum.Alerts = len(fps)
	for _, inc := range s.Truth.Incidents {
		sum.Incidents[inc.Kind]++
		if inc.Kind.Planned() {
			sum.Planned++
		}
	}
	sum.Total = len(s.Truth.Incidents)
	return sum
}
