package fleetgen

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	amwebhook "github.com/aiops-dev/aiops/pkg/notify/webhook"
)

// Alertmanager is emulated per region (each region runs its own HA pair,
// which deduplicates to one sender). Alerts are routed by the first
// matching route, grouped by the route's group_by, and each aggregation
// group is flushed group_wait after it is created and every
// group_interval after that. A flush sends a notification only when the
// notification log says so (Alertmanager's DedupStage): a new firing
// alert, a newly resolved one, or repeat_interval elapsed since the last
// notification. Resolved alerts leave the group after the flush that
// reports them, and an empty group is deleted, so a later alert opens a
// new group and waits group_wait again. The default kube-prometheus-stack
// inhibition mutes warning and info alerts while a more severe alert with
// the same alertname and namespace fires.

// webhook is the Alertmanager webhook payload, version 4, as aiops's own
// notifier writes it (the same fields and encoding).
type (
	webhook      = amwebhook.AlertmanagerPayload
	webhookAlert = amwebhook.AlertmanagerAlert
)

type notification struct {
	at      time.Time
	payload *webhook
}

// route is a leaf of the Alertmanager routing tree.
type route struct {
	key      string // the route's path of matchers, as in the groupKey
	receiver string
	groupBy  []string
	wait     time.Duration
	interval time.Duration
	repeat   time.Duration
}

var platformNamespaces = []string{"kube-system", "monitoring", "istio-system", "kafka", "vault", "platform", "cert-manager"}

// routeOf is the routing tree every region's Alertmanager shares: SLO
// alerts to the SLO receivers, the platform's namespaces to the platform
// team, each team's namespace to its pager (critical) or its Slack
// channel (warning, info), the rest to a catch-all. Every receiver also
// has a webhook config pointing at the AIOps ingest, which is what the
// storm records.
func routeOf(labels map[string]string) route {
	if labels["sloth_slo"] != "" {
		repeat := time.Hour
		if labels["sloth_severity"] == "ticket" {
			repeat = 12 * time.Hour
		}
		return route{`{}/{sloth_slo=~".+"}`, "slo-" + labels["team"] + "-" + labels["sloth_severity"],
			[]string{"sloth_service", "sloth_slo", "sloth_severity"}, 30 * sec, 5 * min, repeat}
	}
	ns := labels["namespace"]
	switch {
	case ns == "":
		return route{"{}", "default-webhook", []string{"alertname", "cluster"}, 30 * sec, 5 * min, 4 * time.Hour}
	case slices.Contains(platformNamespaces, ns):
		key := `{}/{namespace=~"` + strings.Join(platformNamespaces, "|") + `"}`
		if labels["severity"] == "critical" {
			return route{key + `/{severity="critical"}`, "platform-pagerduty", []string{"alertname", "cluster"}, time.Minute, 5 * min, 2 * time.Hour}
		}
		return route{key, "platform-slack", []string{"alertname", "cluster"}, time.Minute, 5 * min, 12 * time.Hour}
	}
	team := teamOfNamespace(ns)
	key := fmt.Sprintf(`{}/{namespace=%q}`, ns)
	if labels["severity"] == "critical" {
		return route{key + `/{severity="critical"}`, team + "-pagerduty", []string{"alertname", "cluster", "namespace"}, time.Minute, 5 * min, 2 * time.Hour}
	}
	return route{key, team + "-slack", []string{"alertname", "namespace"}, time.Minute, 5 * min, 12 * time.Hour}
}

// labelSetString renders labels as Prometheus's LabelSet.String does.
func labelSetString(l map[string]string) string {
	names := make([]string, 0, len(l))
	for n := range l {
		names = append(names, n)
	}
	slices.Sort(names)
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = fmt.Sprintf("%s=%q", n, l[n])
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

// arrivals: when Alertmanager learns that an alert fires and resolves.
func (a *alert) delay() time.Duration { return sendDelay(a.labels["cluster"], a.rule.conv) }

// stateAt is the alert as Alertmanager holds it at t: present once a
// firing has arrived, resolved once that firing's resolution has arrived.
func (a *alert) stateAt(t time.Time) (present, firing bool, f span) {
	d := a.delay()
	for i := len(a.firing) - 1; i >= 0; i-- {
		f = a.firing[i]
		if !f.from.Add(d).After(t) {
			return true, f.to.Add(d).After(t), f
		}
	}
	return false, false, span{}
}

type group struct {
	region  string
	route   route
	key     string
	labels  map[string]string
	alerts  []*alert
	arrived []arrival
}

type arrival struct {
	at time.Time
	a  *alert
}

// nflogEntry is what the notification log remembers of a group's last
// notification.
type nflogEntry struct {
	at       time.Time
	firing   map[string]bool
	resolved map[string]bool
}

// alertmanager turns the alerts' firing periods into the webhook
// notifications the regions' Alertmanagers send.
func alertmanager(alerts []*alert) []notification {
	groups := map[string]*group{}
	inhibitors := map[string][]*alert{} // region/alertname/namespace -> alerts
	for _, a := range alerts {
		if len(a.firing) == 0 {
			continue
		}
		r := routeOf(a.labels)
		gl := map[string]string{}
		for _, n := range r.groupBy {
			if v, ok := a.labels[n]; ok {
				gl[n] = v
			}
		}
		key := r.key + ":" + labelSetString(gl)
		id := a.region + "\x00" + key
		g := groups[id]
		if g == nil {
			g = &group{region: a.region, route: r, key: key, labels: gl}
			groups[id] = g
		}
		g.alerts = append(g.alerts, a)
		for _, f := range a.firing {
			g.arrived = append(g.arrived, arrival{f.from.Add(a.delay()), a})
		}
		ik := a.region + "/" + a.labels["alertname"] + "/" + a.labels["namespace"]
		inhibitors[ik] = append(inhibitors[ik], a)
	}
	muted := func(a *alert, t time.Time) bool {
		rank := severityRank[a.labels["severity"]]
		for _, src := range inhibitors[a.region+"/"+a.labels["alertname"]+"/"+a.labels["namespace"]] {
			if severityRank[src.labels["severity"]] > rank {
				if _, firing, _ := src.stateAt(t); firing {
					return true
				}
			}
		}
		return false
	}

	ids := make([]string, 0, len(groups))
	for id := range groups {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	var out []notification
	for _, id := range ids {
		out = append(out, groups[id].flushes(muted)...)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].at.Before(out[j].at) })
	return out
}

var severityRank = map[string]int{"info": 0, "warning": 1, "critical": 2}

// flushes simulates one aggregation group over the day.
func (g *group) flushes(muted func(*alert, time.Time) bool) []notification {
	slices.SortStableFunc(g.arrived, func(x, y arrival) int { return x.at.Compare(y.at) })
	var out []notification
	var entry *nflogEntry
	next := 0
	for next < len(g.arrived) {
		// A new aggregation group: the first alert creates it.
		members := map[*alert]bool{}
		flush := g.arrived[next].at.Add(g.route.wait)
		for {
			for next < len(g.arrived) && !g.arrived[next].at.After(flush) {
				members[g.arrived[next].a] = true
				next++
			}
			var send []*alert
			firing, resolved := map[string]bool{}, map[string]bool{}
			for _, a := range g.alerts { // g.alerts keeps a stable order
				if !members[a] {
					continue
				}
				present, isFiring, _ := a.stateAt(flush)
				if !present || muted(a, flush) {
					continue
				}
				send = append(send, a)
				if isFiring {
					firing[a.fp] = true
				} else {
					resolved[a.fp] = true
				}
			}
			// With every alert muted the pipeline stops before the dedup stage.
			if len(send) > 0 && needsUpdate(entry, firing, resolved, g.route.repeat, flush) {
				out = append(out, notification{flush, g.payload(send, flush)})
				entry = &nflogEntry{flush, firing, resolved}
			}
			for a := range members {
				if _, isFiring, _ := a.stateAt(flush); !isFiring {
					delete(members, a)
				}
			}
			if len(members) == 0 {
				break
			}
			flush = flush.Add(g.route.interval)
		}
	}
	return out
}

// needsUpdate is Alertmanager's DedupStage decision, with send_resolved.
func needsUpdate(e *nflogEntry, firing, resolved map[string]bool, repeat time.Duration, now time.Time) bool {
	if e == nil {
		return len(firing) > 0
	}
	for fp := range firing {
		if !e.firing[fp] {
			return true
		}
	}
	if len(firing) == 0 {
		return len(e.firing) > 0
	}
	for fp := range resolved {
		if !e.resolved[fp] {
			return true
		}
	}
	return e.at.Before(now.Add(-repeat))
}

// payload renders one notification: alerts ordered as Alertmanager orders
// them (by job, then instance, then labels), with the labels and
// annotations all of them share.
func (g *group) payload(send []*alert, now time.Time) *webhook {
	sort.SliceStable(send, func(i, j int) bool {
		x, y := send[i].labels, send[j].labels
		for _, k := range []string{"job", "instance"} {
			if x[k] != y[k] {
				return x[k] < y[k]
			}
		}
		return labelSetString(x) < labelSetString(y)
	})
	w := &webhook{
		Version:     "4",
		GroupKey:    g.key,
		Status:      "resolved",
		Receiver:    g.route.receiver,
		GroupLabels: g.labels,
		ExternalURL: "https://alertmanager." + g.region + ".ops.tessera.example",
	}
	for i, a := range send {
		_, firing, f := a.stateAt(now)
		wa := webhookAlert{Labels: a.labels, Annotations: a.annots, StartsAt: f.from, GeneratorURL: generatorURL(a), Fingerprint: a.fp}
		if firing {
			wa.Status, w.Status = "firing", "firing"
		} else {
			wa.Status, wa.EndsAt = "resolved", f.to
		}
		w.Alerts = append(w.Alerts, wa)
		if i == 0 {
			w.CommonLabels, w.CommonAnnotations = cloneMap(a.labels), cloneMap(a.annots)
			continue
		}
		intersect(w.CommonLabels, a.labels)
		intersect(w.CommonAnnotations, a.annots)
	}
	return w
}

func cloneMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func intersect(common, other map[string]string) {
	for k, v := range common {
		if other[k] != v {
			delete(common, k)
		}
	}
}
