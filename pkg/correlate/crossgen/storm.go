package crossgen

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/aiops-dev/aiops/pkg/correlate"
	"github.com/aiops-dev/aiops/pkg/correlate/eval"
	"github.com/aiops-dev/aiops/pkg/event"
)

// Storm is a generated storm: the replay's input lines, the catalog, and
// the truth.
type Storm struct {
	Seed    uint64
	Catalog correlate.Catalog
	// Lines are the replay input, in time order.
	Lines []Line
	// Truth maps every item (alert fingerprint, anomaly event id) that
	// reached the lines to its true incident's label.
	Truth map[string]string
	// Incidents are the true incidents with at least one item.
	Incidents []Incident
	// Notifications counts the webhook posts.
	Notifications int
	items         []Item
}

// Line is one replay input line.
type Line struct {
	Time time.Time
	JSON json.RawMessage
}

// Item is one scored thing as a correlator sees it: an alert (all its
// notifications) or an anomaly event.
type Item struct {
	ID      string
	Kind    string // "alert" or "anomaly"
	Service string
	Labels  map[string]string
	// FirstSeen is the time of the first line that carries it.
	FirstSeen time.Time
}

// Items lists the storm's items in the order they are first seen.
func (s *Storm) Items() []Item { return s.items }

// Incident returns the true incident of label.
func (s *Storm) Incident(label string) (Incident, bool) {
	for _, inc := range s.Incidents {
		if inc.Label == label {
			return inc, true
		}
	}
	return Incident{}, false
}

// WriteJSONL writes the lines, one JSON object a line.
func (s *Storm) WriteJSONL(w io.Writer) error {
	for _, l := range s.Lines {
		if _, err := w.Write(append(slices.Clone(l.JSON), '\n')); err != nil {
			return err
		}
	}
	return nil
}

// CatalogYAML is the catalog as the replay's --catalog file.
func (s *Storm) CatalogYAML() ([]byte, error) { return yaml.Marshal(&s.Catalog) }

// Fingerprint is Alertmanager's (Prometheus') fingerprint of a label set:
// FNV-1a 64 over the label names in order, each followed by 0xff, its
// value and 0xff, as 16 hex digits.
func Fingerprint(labels map[string]string) string { return event.AlertmanagerFingerprint(labels) }

func derivedID(at time.Time, seed uint64, n int) string {
	return event.DerivedID(at, "crossgen", strconv.FormatUint(seed, 10), strconv.Itoa(n))
}

// storm simulates Alertmanager over the alerts and assembles the lines,
// the truth and the items.
func (g *gen) storm() *Storm {
	s := &Storm{Seed: g.seed, Catalog: g.e.catalog, Truth: map[string]string{}}
	type timed struct {
		line  Line
		order int
	}
	var lines []timed
	add := func(t time.Time, v any) {
		b, err := json.Marshal(v)
		if err != nil {
			panic(err) // the generator's own values always marshal
		}
		lines = append(lines, timed{Line{t, b}, len(lines)})
	}
	firstSeen := map[string]time.Time{}
	seen := func(id string, t time.Time) {
		if f, ok := firstSeen[id]; !ok || t.Before(f) {
			firstSeen[id] = t
		}
	}
	for _, n := range g.notifications() {
		add(n.at, map[string]any{"type": "alertmanager", "time": n.at, "payload": n.payload})
		for _, a := range n.payload.Alerts {
			seen(a.Fingerprint, n.at)
		}
		s.Notifications++
	}
	for _, c := range g.changes {
		add(c.at, map[string]any{"type": "change", "time": c.at, "change": map[string]string{
			"service": c.service, "kind": c.kind, "version": c.version, "author": c.author, "commit": c.commit,
			"url": "https://git.shop.example.com/" + c.service + "/commit/" + c.commit}})
	}
	for _, a := range g.anomalies {
		value, score := a.value, a.score
		body := event.AnomalyBody{Series: Fingerprint(map[string]string{"service": a.service, "__name__": a.metric}), Metric: a.metric,
			Value: &value, Expected: a.expected, Lower: a.expected * 0.5, Upper: a.expected * 1.5, Score: &score, Detector: "seasonal-mad", Window: "5m",
			Reason: fmt.Sprintf("%s is %.0f%% above its expected value", a.metric, 100*(value/a.expected-1))}
		raw, err := event.MarshalBody(body)
		if err != nil {
			panic(err)
		}
		env := map[string]any{"schema_version": 1, "id": a.id, "kind": "anomaly", "time": a.at, "observed_time": a.at.Add(5 * time.Second),
			"source": "detector", "service": a.service, "labels": a.labels, "severity": "warning", "body": raw}
		add(a.at, map[string]any{"type": "event", "time": a.at, "event": env})
		seen(a.id, a.at)
	}
	sort.SliceStable(lines, func(i, j int) bool {
		if !lines[i].line.Time.Equal(lines[j].line.Time) {
			return lines[i].line.Time.Before(lines[j].line.Time)
		}
		return lines[i].order < lines[j].order
	})
	for _, l := range lines {
		s.Lines = append(s.Lines, l.line)
	}

	// Truth and items over what reached the lines.
	byLabel := map[string]*Incident{}
	for _, inc := range g.incidents {
		byLabel[inc.Label] = inc
		inc.Items = nil
	}
	for _, a := range g.alerts {
		t, ok := firstSeen[a.fp]
		if !ok {
			continue
		}
		s.Truth[a.fp] = a.truth
		byLabel[a.truth].Items = append(byLabel[a.truth].Items, a.fp)
		s.items = append(s.items, Item{ID: a.fp, Kind: "alert", Service: serviceOf(a.labels), Labels: a.labels, FirstSeen: t})
	}
	for _, a := range g.anomalies {
		s.Truth[a.id] = a.truth
		byLabel[a.truth].Items = append(byLabel[a.truth].Items, a.id)
		s.items = append(s.items, Item{ID: a.id, Kind: "anomaly", Service: a.service, Labels: a.labels, FirstSeen: a.at})
	}
	sort.SliceStable(s.items, func(i, j int) bool {
		if !s.items[i].FirstSeen.Equal(s.items[j].FirstSeen) {
			return s.items[i].FirstSeen.Before(s.items[j].FirstSeen)
		}
		return s.items[i].ID < s.items[j].ID
	})
	for _, inc := range g.incidents {
		if len(inc.Items) > 0 {
			slices.Sort(inc.Items)
			s.Incidents = append(s.Incidents, *inc)
		}
	}
	return s
}

// serviceOf is the service the ingest decoder gives an alert: the first of
// the labels service, job, app.
func serviceOf(labels map[string]string) string {
	for _, k := range []string{"service", "job", "app"} {
		if v := labels[k]; v != "" {
			return v
		}
	}
	return "unknown"
}

// BaselineByLabel puts items with the same value of label in one incident
// over the whole storm (an Alertmanager route grouping by that label),
// as pkg/correlate/eval's baseline of that name does.
func (s *Storm) BaselineByLabel(label string) map[string]string {
	out := map[string]string{}
	for _, it := range s.items {
		out[it.ID] = label + "=" + it.Labels[label]
	}
	return out
}

// BaselineTimeWindow chains items by time, as pkg/correlate/eval's
// baseline of that name does: in the order first seen, an item joins the
// current incident when first seen within window of the previous item,
// else opens a new one.
func (s *Storm) BaselineTimeWindow(window time.Duration) map[string]string {
	items := make([]eval.Sighting, len(s.items))
	for i, it := range s.items {
		items[i] = eval.Sighting{ID: it.ID, First: it.FirstSeen}
	}
	return eval.ChainByTime(items, window)
}

// Webhook payload (Alertmanager webhook version 4).
type webhook struct {
	Version           string            `json:"version"`
	GroupKey          string            `json:"groupKey"`
	TruncatedAlerts   int               `json:"truncatedAlerts"`
	Status            string            `json:"status"`
	Receiver          string            `json:"receiver"`
	GroupLabels       map[string]string `json:"groupLabels"`
	CommonLabels      map[string]string `json:"commonLabels"`
	CommonAnnotations map[string]string `json:"commonAnnotations"`
	ExternalURL       string            `json:"externalURL"`
	Alerts            []webhookAlert    `json:"alerts"`
}

type webhookAlert struct {
	Status       string            `json:"status"`
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     string            `json:"startsAt"`
	EndsAt       string            `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
	Fingerprint  string            `json:"fingerprint"`
}

type notification struct {
	at      time.Time
	payload webhook
}

// groupBy are the route's group_by labels.
var groupBy = []string{"alertname", "service"}

// notifications simulates one Alertmanager route (group_by alertname,
// service; a webhook receiver with send_resolved) over the alerts: an
// aggregation group is created by its first alert and flushed group_wait
// later, then every group_interval while it has alerts. A flush notifies
// when the notification log says so, as Alertmanager's dedup stage does:
// a firing alert the last notification did not have, a resolved alert it
// did not report as resolved (unless nothing fires and nothing did), or
// repeat_interval since the last one. Resolved alerts leave the group at
// every flush; an empty group is deleted, the log entry stays.
func (g *gen) notifications() []notification {
	groups := map[string][]*alert{}
	var keys []string
	for _, a := range g.alerts {
		k := groupKey(a.labels)
		if _, ok := groups[k]; !ok {
			keys = append(keys, k)
		}
		groups[k] = append(groups[k], a)
	}
	var out []notification
	for _, k := range keys {
		out = append(out, g.flushGroup(k, groups[k])...)
	}
	return out
}

func groupKey(labels map[string]string) string {
	var parts []string
	for _, n := range groupBy {
		parts = append(parts, n+"="+strconv.Quote(labels[n]))
	}
	return "{}:{" + strings.Join(parts, ", ") + "}"
}

// state of an alert at t: firing within a span, else resolved by its
// last span that ended (ok false before its first span).
func stateAt(a *alert, t time.Time) (firing bool, sp span, ok bool) {
	for _, s := range a.on {
		if s.start.After(t) {
			break
		}
		sp, ok = s, true
		if t.Before(s.end) {
			return true, s, true
		}
	}
	return false, sp, ok
}

func (g *gen) flushGroup(key string, alerts []*alert) []notification {
	var out []notification
	removed := map[*alert]time.Time{} // when each last left the group
	var logFiring, logResolved map[string]bool
	var logAt time.Time
	var logged bool
	// nextStart is the first activation after t of any alert: when a group
	// is created again.
	nextStart := func(t time.Time, strict bool) (time.Time, bool) {
		var best time.Time
		for _, a := range alerts {
			for _, s := range a.on {
				if s.start.After(t) || (!strict && s.start.Equal(t)) {
					if best.IsZero() || s.start.Before(best) {
						best = s.start
					}
					break
				}
			}
		}
		return best, !best.IsZero()
	}
	created, ok := nextStart(time.Time{}, true)
	for ok {
		t := created.Add(g.cfg.GroupWait)
		for {
			var firing, resolved []*alert
			var members []webhookAlert
			for _, a := range alerts {
				f, sp, seen := stateAt(a, t)
				if !seen {
					continue
				}
				// A member: firing now, or activated since it last left.
				if !f && !sp.start.After(removed[a]) {
					continue
				}
				w := webhookAlert{Labels: a.labels, Annotations: a.annotations, StartsAt: sp.start.Format(time.RFC3339),
					EndsAt: "0001-01-01T00:00:00Z", Fingerprint: a.fp,
					GeneratorURL: "http://prometheus.monitoring.svc:9090/graph?g0.expr=" + a.labels["alertname"]}
				if f {
					w.Status = "firing"
					firing = append(firing, a)
				} else {
					w.Status, w.EndsAt = "resolved", sp.end.Format(time.RFC3339)
					resolved = append(resolved, a)
				}
				members = append(members, w)
			}
			if len(members) > 0 && needsUpdate(logged, logFiring, logResolved, logAt, firing, resolved, t, g.cfg.RepeatInterval) {
				out = append(out, notification{at: t, payload: payloadOf(key, members, len(firing) > 0)})
				logged, logAt = true, t
				logFiring, logResolved = map[string]bool{}, map[string]bool{}
				for _, a := range firing {
					logFiring[a.fp] = true
				}
				for _, a := range resolved {
					logResolved[a.fp] = true
				}
			}
			for _, a := range resolved {
				removed[a] = t
			}
			if len(firing) == 0 {
				break // the group is empty and deleted
			}
			t = t.Add(g.cfg.GroupInterval)
		}
		created, ok = nextStart(t, true)
	}
	return out
}

// needsUpdate is Alertmanager's dedup decision for a flush.
func needsUpdate(logged bool, logFiring, logResolved map[string]bool, logAt time.Time, firing, resolved []*alert, now time.Time, repeat time.Duration) bool {
	if !logged {
		return len(firing) > 0
	}
	for _, a := range firing {
		if !logFiring[a.fp] {
			return true
		}
	}
	if len(firing) == 0 {
		// Everything resolved: tell the receiver if it was told of firing
		// alerts; alerts that fired and resolved unseen are not news.
		return len(logFiring) > 0
	}
	for _, a := range resolved {
		if !logResolved[a.fp] {
			return true
		}
	}
	return !logAt.After(now.Add(-repeat))
}

func payloadOf(key string, members []webhookAlert, firing bool) webhook {
	w := webhook{Version: "4", GroupKey: key, Receiver: "aiops", Status: "resolved", ExternalURL: "http://alertmanager.monitoring.svc:9093",
		GroupLabels: map[string]string{}, CommonAnnotations: map[string]string{}, Alerts: members}
	if firing {
		w.Status = "firing"
	}
	for _, n := range groupBy {
		if v := members[0].Labels[n]; v != "" {
			w.GroupLabels[n] = v
		}
	}
	w.CommonLabels = common(members, func(a webhookAlert) map[string]string { return a.Labels })
	w.CommonAnnotations = common(members, func(a webhookAlert) map[string]string { return a.Annotations })
	return w
}

func common(members []webhookAlert, of func(webhookAlert) map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range of(members[0]) {
		out[k] = v
	}
	for _, m := range members[1:] {
		for k, v := range out {
			if of(m)[k] != v {
				delete(out, k)
			}
		}
	}
	return out
}
