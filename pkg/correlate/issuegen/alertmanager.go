package issuegen

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
)

// route is one route of the Alertmanager in front of the correlator: its
// matcher (empty for the root) and its timers. Every route groups by
// alertname, cluster and service (the example configuration's choice, and
// a common one) and sends resolved alerts (webhook_config's default).
type route struct {
	matcher                                  string
	severity                                 string
	groupWait, groupInterval, repeatInterval time.Duration
}

var groupBy = []string{"alertname", "cluster", "service"}

const (
	receiver    = "aiops"
	externalURL = "https://alertmanager.shop.example.com"
)

// routes: critical alerts page and repeat hourly; the rest go through the
// root route.
func (c Config) routes() []route {
	return []route{
		{`{severity="critical"}`, sevCritical, c.GroupWait, c.GroupInterval, c.CriticalRepeatInterval},
		{"", "", c.GroupWait, c.GroupInterval, c.RepeatInterval},
	}
}

func routeFor(routes []route, labels map[string]string) *route {
	for i := range routes {
		if routes[i].severity == "" || routes[i].severity == labels["severity"] {
			return &routes[i]
		}
	}
	return &routes[len(routes)-1]
}

// labelSetString prints labels as Prometheus does: {a="x", b="y"}.
func labelSetString(labels map[string]string) string {
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%q", k, labels[k])
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

// member is an alert as an aggregation group holds it: the episode it is
// in, resolved or not.
type member struct {
	a        *alert
	ep       int
	resolved bool
}

type aggrGroup struct {
	key    string
	route  *route
	labels map[string]string
	alerts map[string]*member
	next   time.Time // next flush
}

// logEntry is the notification log's record of a group's last
// notification.
type logEntry struct {
	firing, resolved map[string]bool
	at               time.Time
}

func subset(sub, of map[string]bool) bool {
	for k := range sub {
		if !of[k] {
			return false
		}
	}
	return true
}

// needsUpdate is Alertmanager's dedup stage: notify a group when an alert
// fires that was not in the last notification, when an alert resolved
// since (send_resolved), when everything resolved, or when the repeat
// interval passed; never for a group that only ever held resolved alerts.
func needsUpdate(e *logEntry, firing, resolved map[string]bool, now time.Time, repeat time.Duration) bool {
	if e == nil {
		return len(firing) > 0
	}
	if !subset(firing, e.firing) {
		return true
	}
	if len(firing) == 0 {
		return len(e.firing) > 0
	}
	if !subset(resolved, e.resolved) {
		return true
	}
	return e.at.Before(now.Add(-repeat))
}

// Webhook payload, version 4, as Alertmanager sends it.
type webhookAlert struct {
	Status       string            `json:"status"`
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
	Fingerprint  string            `json:"fingerprint"`
}

type webhook struct {
	Receiver          string            `json:"receiver"`
	Status            string            `json:"status"`
	Alerts            []webhookAlert    `json:"alerts"`
	GroupLabels       map[string]string `json:"groupLabels"`
	CommonLabels      map[string]string `json:"commonLabels"`
	CommonAnnotations map[string]string `json:"commonAnnotations"`
	ExternalURL       string            `json:"externalURL"`
	Version           string            `json:"version"`
	GroupKey          string            `json:"groupKey"`
	TruncatedAlerts   int               `json:"truncatedAlerts"`
}

// common is the label pairs all maps share.
func common(ms []map[string]string) map[string]string {
	out := map[string]string{}
	if len(ms) == 0 {
		return out
	}
	for k, v := range ms[0] {
		out[k] = v
	}
	for _, m := range ms[1:] {
		for k, v := range out {
			if m[k] != v {
				delete(out, k)
			}
		}
	}
	return out
}

// payload is the webhook body of g's notification at now.
func (g *aggrGroup) payload() webhook {
	ms := make([]*member, 0, len(g.alerts))
	for _, m := range g.alerts {
		ms = append(ms, m)
	}
	// Alertmanager's order: by job, then instance, then the label sets.
	slices.SortFunc(ms, func(x, y *member) int {
		for _, k := range []string{"job", "instance"} {
			if c := strings.Compare(x.a.labels[k], y.a.labels[k]); c != 0 {
				return c
			}
		}
		return strings.Compare(labelSetString(x.a.labels), labelSetString(y.a.labels))
	})
	w := webhook{Receiver: receiver, Status: "resolved", GroupLabels: g.labels, ExternalURL: externalURL, Version: "4", GroupKey: g.key}
	var labels, annotations []map[string]string
	for _, m := range ms {
		ep := m.a.episodes[m.ep]
		wa := webhookAlert{Status: "firing", Labels: m.a.labels, Annotations: m.a.annotations, StartsAt: ep.start, GeneratorURL: m.a.url, Fingerprint: m.a.fp}
		if m.resolved {
			wa.Status, wa.EndsAt = "resolved", ep.end
		} else {
			w.Status = "firing" // a firing alert's endsAt goes out zero, as Alertmanager sends it
		}
		w.Alerts = append(w.Alerts, wa)
		labels = append(labels, m.a.labels)
		annotations = append(annotations, m.a.annotations)
	}
	w.CommonLabels, w.CommonAnnotations = common(labels), common(annotations)
	return w
}

// sent is one webhook call.
type sent struct {
	at   time.Time
	body webhook
}

// deliver runs the alerts through Alertmanager until the horizon: each
// alert reaches it shortly after its rule evaluation, joins the
// aggregation group of its route and group labels, and groups flush after
// group_wait, then every group_interval, through the dedup stage.
func (p *planner) deliver() []sent {
	type arrival struct {
		at      time.Time
		a       *alert
		ep      int
		resolve bool
	}
	var arrivals []arrival
	for _, a := range p.alerts {
		for i, e := range a.episodes {
			arrivals = append(arrivals, arrival{e.start.Add(p.between(50*time.Millisecond, 1500*time.Millisecond)), a, i, false})
			if e.end.Before(p.horizon) {
				arrivals = append(arrivals, arrival{e.end.Add(p.between(50*time.Millisecond, 1500*time.Millisecond)), a, i, true})
			}
		}
	}
	slices.SortStableFunc(arrivals, func(x, y arrival) int { return x.at.Compare(y.at) })

	routes := p.cfg.routes()
	groups := map[string]*aggrGroup{}
	nflog := map[string]*logEntry{}
	var out []sent
	next := func() *aggrGroup {
		var best *aggrGroup
		for _, g := range groups {
			if best == nil || g.next.Before(best.next) || g.next.Equal(best.next) && g.key < best.key {
				best = g
			}
		}
		return best
	}
	i := 0
	for {
		g := next()
		if i < len(arrivals) && (g == nil || !arrivals[i].at.After(g.next)) {
			ar := arrivals[i]
			i++
			if ar.at.After(p.horizon) {
				i = len(arrivals)
				continue
			}
			r := routeFor(routes, ar.a.labels)
			gl := map[string]string{}
			for _, k := range groupBy {
				if v, ok := ar.a.labels[k]; ok {
					gl[k] = v
				}
			}
			key := "{}"
			if r.matcher != "" {
				key += "/" + r.matcher
			}
			key += ":" + labelSetString(gl)
			ag := groups[key]
			if ar.resolve {
				if ag != nil && ag.alerts[ar.a.fp] != nil && ag.alerts[ar.a.fp].ep == ar.ep {
					ag.alerts[ar.a.fp].resolved = true
				}
				continue
			}
			if ag == nil {
				ag = &aggrGroup{key: key, route: r, labels: gl, alerts: map[string]*member{}, next: ar.at.Add(r.groupWait)}
				groups[key] = ag
			}
			ag.alerts[ar.a.fp] = &member{a: ar.a, ep: ar.ep}
			continue
		}
		if g == nil || g.next.After(p.horizon) {
			break
		}
		now := g.next
		firing, resolved := map[string]bool{}, map[string]bool{}
		for fp, m := range g.alerts {
			if m.resolved {
				resolved[fp] = true
			} else {
				firing[fp] = true
			}
		}
		if needsUpdate(nflog[g.key], firing, resolved, now, g.route.repeatInterval) {
			at := now.Add(p.between(5*time.Millisecond, 300*time.Millisecond))
			body := g.payload()
			out = append(out, sent{at, body})
			if p.rng.Float64() < p.cfg.DuplicateDelivery {
				// The receiver answered too late: Alertmanager sends the same body again.
				out = append(out, sent{at.Add(p.between(10*time.Second, 12*time.Second)), body})
			}
			nflog[g.key] = &logEntry{firing, resolved, now}
		}
		for fp := range resolved {
			delete(g.alerts, fp)
		}
		if len(g.alerts) == 0 {
			delete(groups, g.key)
		} else {
			g.next = now.Add(g.route.groupInterval)
		}
	}
	return out
}

// line is one replay input line.
type line struct {
	Type    string         `json:"type"`
	Time    string         `json:"time"`
	Payload *webhook       `json:"payload,omitempty"`
	Change  map[string]any `json:"change,omitempty"`
}

func timeText(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// lines are the notifications and the changes, in time order.
func (p *planner) lines(notes []sent) [][]byte {
	type timed struct {
		at time.Time
		l  line
	}
	var all []timed
	for _, n := range notes {
		body := n.body
		all = append(all, timed{n.at, line{Type: "alertmanager", Time: timeText(n.at), Payload: &body}})
	}
	for _, c := range p.changes {
		if c.at.After(p.horizon) {
			continue
		}
		all = append(all, timed{c.at, line{Type: "change", Time: timeText(c.at), Change: map[string]any{
			"service": c.service, "kind": c.kind, "version": c.version, "author": c.author, "commit": c.commit, "url": c.url,
		}}})
	}
	slices.SortStableFunc(all, func(x, y timed) int { return x.at.Compare(y.at) })
	out := make([][]byte, len(all))
	for i, t := range all {
		b, err := json.Marshal(t.l)
		if err != nil {
			panic("issuegen: " + err.Error()) // plain maps and strings: cannot fail
		}
		out[i] = b
	}
	return out
}
