package specgen

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// The Alertmanager model: two routes (critical alerts page, the rest go to
// chat), both grouping by alertname, cluster and service, with group_wait,
// group_interval and repeat_interval from the Config and send_resolved on.
// An aggregation group flushes group_wait after its first alert, then every
// group_interval; a flush notifies when the notification log says it must
// (Alertmanager's dedup stage): a new firing alert, a newly resolved one,
// or repeat_interval since the last notification. Resolved alerts leave the
// group after a flush, and an empty group is dropped.

var groupBy = []string{"alertname", "cluster", "service"}

// webhook is the Alertmanager webhook payload, version 4.
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

type webhookAlert struct {
	Status       string            `json:"status"`
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     string            `json:"startsAt"`
	EndsAt       string            `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
	Fingerprint  string            `json:"fingerprint"`
}

// notification is one webhook sent at a time.
type notification struct {
	at      time.Time
	payload webhook
}

type amAlert struct {
	def      *alertDef
	startsAt time.Time
	endsAt   time.Time
	resolved bool
}

type amGroup struct {
	key      string
	receiver string
	labels   map[string]string
	alerts   map[string]*amAlert
	next     time.Time
	seq      int
}

type nflogEntry struct {
	firing, resolved map[string]bool
	at               time.Time
}

type amEvent struct {
	at   time.Time
	a    *alertDef
	fire bool
	on   time.Time // the span's on, for startsAt
}

// simulate runs the alerts through Alertmanager from start to end and
// returns the webhooks it sends, in time order.
func simulate(alerts []*alertDef, cfg Config, end time.Time) []notification {
	var events []amEvent
	for _, a := range alerts {
		for _, sp := range a.spans {
			if sp.on.After(end) {
				continue
			}
			events = append(events, amEvent{at: sp.on, a: a, fire: true, on: sp.on})
			if !sp.off.IsZero() && !sp.off.After(end) {
				events = append(events, amEvent{at: sp.off, a: a})
			}
		}
	}
	slices.SortStableFunc(events, func(x, y amEvent) int { return x.at.Compare(y.at) })

	groups := map[string]*amGroup{}
	nflog := map[string]*nflogEntry{}
	var out []notification
	seq := 0
	i := 0
	for {
		var g *amGroup
		for _, c := range groups {
			if g == nil || c.next.Before(g.next) || c.next.Equal(g.next) && c.seq < g.seq {
				g = c
			}
		}
		if i < len(events) && (g == nil || !events[i].at.After(g.next)) {
			ev := events[i]
			i++
			key, receiver, glabels := route(ev.a.labels)
			grp := groups[key]
			if grp == nil {
				if !ev.fire {
					continue
				}
				seq++
				grp = &amGroup{key: key, receiver: receiver, labels: glabels, alerts: map[string]*amAlert{}, next: ev.at.Add(cfg.GroupWait), seq: seq}
				groups[key] = grp
			}
			if ev.fire {
				grp.alerts[ev.a.fp] = &amAlert{def: ev.a, startsAt: ev.on.Add(-ev.a.forDur)}
			} else if al := grp.alerts[ev.a.fp]; al != nil && !al.resolved {
				al.resolved, al.endsAt = true, ev.at
			}
			continue
		}
		if g == nil || g.next.After(end) {
			break
		}
		if n, ok := flush(g, nflog, cfg.RepeatInterval); ok {
			out = append(out, n)
		}
		for fp, al := range g.alerts {
			if al.resolved {
				delete(g.alerts, fp)
			}
		}
		if len(g.alerts) == 0 {
			delete(groups, g.key)
		}
		g.next = g.next.Add(cfg.GroupInterval)
	}
	return out
}

// route picks the receiver and builds the group key and labels.
func route(labels map[string]string) (key, receiver string, glabels map[string]string) {
	glabels = map[string]string{}
	parts := make([]string, 0, len(groupBy))
	for _, l := range groupBy { // groupBy is sorted, as Alertmanager prints it
		glabels[l] = labels[l]
		parts = append(parts, fmt.Sprintf("%s=%q", l, labels[l]))
	}
	routeKey, receiver := "{}", "slack-alerts"
	if labels["severity"] == "critical" {
		routeKey, receiver = `{}/{severity="critical"}`, "pagerduty-oncall"
	}
	return routeKey + ":{" + strings.Join(parts, ", ") + "}", receiver, glabels
}

// flush decides, as the dedup stage does, whether the group notifies now.
func flush(g *amGroup, nflog map[string]*nflogEntry, repeat time.Duration) (notification, bool) {
	firing, resolved := map[string]bool{}, map[string]bool{}
	for fp, al := range g.alerts {
		if al.resolved {
			resolved[fp] = true
		} else {
			firing[fp] = true
		}
	}
	entry := nflog[g.key]
	subset := func(a, b map[string]bool) bool { // a ⊆ b
		for k := range a {
			if !b[k] {
				return false
			}
		}
		return true
	}
	var notify bool
	switch {
	case entry == nil:
		notify = len(firing) > 0
	case !subset(firing, entry.firing):
		notify = true
	case len(firing) == 0:
		notify = len(entry.firing) > 0
	case !subset(resolved, entry.resolved):
		notify = true
	default:
		notify = !g.next.Before(entry.at.Add(repeat))
	}
	if !notify {
		return notification{}, false
	}
	nflog[g.key] = &nflogEntry{firing: firing, resolved: resolved, at: g.next}

	als := make([]*amAlert, 0, len(g.alerts))
	for _, al := range g.alerts {
		als = append(als, al)
	}
	slices.SortFunc(als, func(a, b *amAlert) int {
		if c := a.startsAt.Compare(b.startsAt); c != 0 {
			return c
		}
		return strings.Compare(a.def.fp, b.def.fp)
	})
	w := webhook{
		Receiver:        g.receiver,
		Status:          "resolved",
		GroupLabels:     g.labels,
		ExternalURL:     externalURL,
		Version:         "4",
		GroupKey:        g.key,
		TruncatedAlerts: 0,
	}
	if len(firing) > 0 {
		w.Status = "firing"
	}
	for i, al := range als {
		wa := webhookAlert{
			Status:       "firing",
			Labels:       al.def.labels,
			Annotations:  al.def.annotations,
			StartsAt:     al.startsAt.UTC().Format(time.RFC3339),
			EndsAt:       time.Time{}.Format(time.RFC3339),
			GeneratorURL: al.def.genURL,
			Fingerprint:  al.def.fp,
		}
		if al.resolved {
			wa.Status = "resolved"
			wa.EndsAt = al.endsAt.UTC().Format(time.RFC3339)
		}
		w.Alerts = append(w.Alerts, wa)
		if i == 0 {
			w.CommonLabels = copyMap(al.def.labels)
			w.CommonAnnotations = copyMap(al.def.annotations)
			continue
		}
		intersect(w.CommonLabels, al.def.labels)
		intersect(w.CommonAnnotations, al.def.annotations)
	}
	return notification{at: g.next, payload: w}, true
}

func copyMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// intersect keeps in common only the pairs m has too.
func intersect(common, m map[string]string) {
	for k, v := range common {
		if m[k] != v {
			delete(common, k)
		}
	}
}
