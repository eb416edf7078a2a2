package opsgen

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"net/url"
	"slices"
	"strings"
	"time"
)

// route is one route of the Alertmanager routing tree: the root, or one
// child per team matching team="<team>". Alerts of a team without a route
// take the root's.
type route struct {
	key          string
	receiver     string
	groupBy      []string // nil with all: group by every label ("...")
	all          bool
	wait         time.Duration
	interval     time.Duration
	repeat       time.Duration
	sendResolved bool
}

var groupings = [][]string{
	{"alertname", "service"},
	{"alertname", "service"},
	{"alertname", "namespace", "service"},
	{"alertname", "severity", "service"},
	{"service"},
	{"..."},
}

// buildRoutes draws the Alertmanager configuration: the root keeps
// Alertmanager's defaults, the teams tune theirs.
func (g *gen) buildRoutes() {
	teams := []string{}
	for _, s := range g.services {
		if !slices.Contains(teams, s.team) {
			teams = append(teams, s.team)
		}
	}
	slices.Sort(teams)
	for _, t := range teams {
		g.teams[t] = teamRules{
			style:      g.r.IntN(3),
			latencyFor: pick(g, []time.Duration{2 * time.Minute, 3 * time.Minute, 5 * time.Minute}),
			slo:        g.chance(0.5),
			perRoute:   g.chance(0.35),
		}
	}
	g.infoInhibitor = g.chance(0.7)
	rootGroupings := [][]string{
		{"namespace"}, // kube-prometheus's default
		{"alertname", "namespace"},
		{"alertname", "cluster", "service"},
		{"alertname", "service"},
	}
	g.root = &route{key: "{}", receiver: "aiops-default", groupBy: pick(g, rootGroupings),
		wait: 30 * time.Second, interval: 5 * time.Minute, repeat: 4 * time.Hour, sendResolved: true}
	for _, t := range teams {
		if g.chance(0.15) && t != "platform" {
			continue // no route of its own: the root's
		}
		r := &route{
			key:          fmt.Sprintf("{}/{team=%q}", t),
			receiver:     t + "-oncall",
			groupBy:      g.root.groupBy,
			wait:         pick(g, []time.Duration{10 * time.Second, 30 * time.Second, 30 * time.Second, time.Minute}),
			interval:     pick(g, []time.Duration{time.Minute, 2 * time.Minute, 5 * time.Minute, 5 * time.Minute, 10 * time.Minute}),
			repeat:       pick(g, []time.Duration{time.Hour, 2 * time.Hour, 4 * time.Hour, 4 * time.Hour, 12 * time.Hour}),
			sendResolved: g.chance(g.cfg.SendResolved),
		}
		if t == "platform" || t == "data-platform" {
			r.groupBy = []string{"alertname", "cluster", "namespace"}
		} else if g.chance(0.6) {
			r.groupBy = pick(g, groupings)
		}
		if r.groupBy[0] == "..." {
			r.groupBy, r.all = nil, true
		}
		g.routes = append(g.routes, r)
	}
}

func (g *gen) routeOf(a *alert) *route {
	for _, r := range g.routes {
		if r.key == fmt.Sprintf("{}/{team=%q}", a.labels["team"]) {
			return r
		}
	}
	return g.root
}

// labelString renders a label set as Prometheus does: {a="x", b="y"}.
func labelString(l map[string]string) string {
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%q", k, l[k])
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

// aggrGroup is an Alertmanager aggregation group: the alerts of one route
// with the same values of the group_by labels.
type aggrGroup struct {
	route  *route
	labels map[string]string
	key    string
	alerts []*alert
}

// notification is one webhook call.
type notification struct {
	at      time.Time
	payload webhook
}

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
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
	Fingerprint  string            `json:"fingerprint"`
}

// groups puts every alert in its aggregation group.
func (g *gen) groups() []*aggrGroup {
	byKey := map[string]*aggrGroup{}
	var out []*aggrGroup
	for _, a := range g.alerts {
		if len(a.spans) == 0 {
			continue
		}
		r := g.routeOf(a)
		gl := map[string]string{}
		if r.all {
			gl = a.labels
		} else {
			for _, k := range r.groupBy {
				if v, ok := a.labels[k]; ok {
					gl[k] = v
				}
			}
		}
		key := r.key + ":" + labelString(gl)
		ag := byKey[key]
		if ag == nil {
			ag = &aggrGroup{route: r, labels: gl, key: key}
			byKey[key] = ag
			out = append(out, ag)
		}
		ag.alerts = append(ag.alerts, a)
	}
	slices.SortFunc(out, func(x, y *aggrGroup) int { return strings.Compare(x.key, y.key) })
	return out
}

// stateAt is an alert as Alertmanager holds it at t: the last firing
// period begun by t, and whether it had ended by t.
func (a *alert) stateAt(t time.Time) (sp span, firing, known bool) {
	for _, s := range a.spans {
		if s.start.After(t) {
			break
		}
		sp, known = s, true
	}
	firing = known && (sp.end.IsZero() || t.Before(sp.end))
	return sp, firing, known
}

// dispatch replays one aggregation group as Alertmanager's dispatcher,
// dedup stage and notification log handle it: the first flush group_wait
// after the group appears, then one every group_interval while it holds
// alerts; a flush notifies when an alert started firing since the last
// notification, when one resolved (with send_resolved), when all
// resolved, or when repeat_interval passed. Resolved alerts leave the
// group after a flush; an empty group is deleted and a new alert makes a
// new one (the notification log entry stays).
func (g *gen) dispatch(ag *aggrGroup, until time.Time) []notification {
	type arrival struct {
		t time.Time
		a *alert
	}
	var arrivals []arrival
	for _, a := range ag.alerts {
		for _, s := range a.spans {
			arrivals = append(arrivals, arrival{s.start, a})
		}
	}
	slices.SortStableFunc(arrivals, func(x, y arrival) int { return x.t.Compare(y.t) })

	var out []notification
	var logged bool // a notification log entry exists
	var lastFiring, lastResolved map[string]bool
	var lastAt time.Time
	members := map[*alert]bool{}
	r := ag.route
	i := 0
	for i < len(arrivals) && !arrivals[i].t.After(until) {
		next := arrivals[i].t.Add(r.wait)
		for {
			for i < len(arrivals) && !arrivals[i].t.After(next) {
				members[arrivals[i].a] = true
				i++
			}
			if next.After(until) {
				return out
			}
			var alerts []*alert
			for a := range members {
				alerts = append(alerts, a)
			}
			slices.SortFunc(alerts, alertOrder)
			var shown []*alert
			firing, resolved := map[string]bool{}, map[string]bool{}
			for _, a := range alerts {
				if g.muted(a, next) {
					continue
				}
				shown = append(shown, a)
				if _, f, _ := a.stateAt(next); f {
					firing[a.fp] = true
				} else {
					resolved[a.fp] = true
				}
			}
			if needsUpdate(logged, lastFiring, lastResolved, lastAt, firing, resolved, next, r) {
				logged, lastFiring, lastResolved, lastAt = true, firing, resolved, next
				if p, ok := g.payload(ag, shown, next); ok {
					out = append(out, notification{at: next, payload: p})
				}
			}
			for _, a := range alerts {
				if _, f, _ := a.stateAt(next); !f {
					delete(members, a)
				}
			}
			if len(members) == 0 {
				break
			}
			next = next.Add(r.interval)
		}
	}
	return out
}

// muted applies the inhibition rules of kube-prometheus's Alertmanager
// configuration: a critical alert mutes the warning and info alerts of the
// same name in its namespace, a warning one the info ones; and, with
// InfoInhibitor, info alerts stay silent unless a warning or critical
// alert fires in their namespace.
func (g *gen) muted(a *alert, t time.Time) bool {
	sev, name := a.labels["severity"], a.labels["alertname"]
	if sev == "critical" {
		return false
	}
	louder := false
	for _, b := range g.byNamespace[a.labels["namespace"]] {
		if b == a {
			continue
		}
		if _, f, _ := b.stateAt(t); !f {
			continue
		}
		bs := b.labels["severity"]
		if b.labels["alertname"] == name && (bs == "critical" || bs == "warning" && sev == "info") {
			return true
		}
		louder = louder || bs == "critical" || bs == "warning"
	}
	return sev == "info" && g.infoInhibitor && !louder
}

// needsUpdate is Alertmanager's DedupStage decision.
func needsUpdate(logged bool, lastFiring, lastResolved map[string]bool, lastAt time.Time, firing, resolved map[string]bool, now time.Time, r *route) bool {
	if !logged {
		return len(firing) > 0
	}
	for fp := range firing {
		if !lastFiring[fp] {
			return true
		}
	}
	if len(firing) == 0 {
		return len(lastFiring) > 0
	}
	if r.sendResolved {
		for fp := range resolved {
			if !lastResolved[fp] {
				return true
			}
		}
	}
	return lastAt.Before(now.Add(-r.repeat))
}

// alertOrder sorts as Alertmanager does: by job, then instance, then
// labels.
func alertOrder(x, y *alert) int {
	for _, k := range []string{"job", "instance"} {
		xv, xok := x.labels[k]
		yv, yok := y.labels[k]
		switch {
		case !xok && !yok:
			continue
		case !xok:
			return 1
		case !yok:
			return -1
		case xv != yv:
			return strings.Compare(xv, yv)
		}
	}
	return strings.Compare(labelString(x.labels), labelString(y.labels))
}

// payload renders the webhook of a flush at t; ok is false when nothing
// is sent (only resolved alerts and no send_resolved).
func (g *gen) payload(ag *aggrGroup, alerts []*alert, t time.Time) (webhook, bool) {
	p := webhook{
		Version:     "4",
		GroupKey:    ag.key,
		Status:      "resolved",
		Receiver:    ag.route.receiver,
		GroupLabels: ag.labels,
		ExternalURL: "https://alertmanager." + g.domain,
	}
	for _, a := range alerts {
		sp, firing, _ := a.stateAt(t)
		if !firing && !ag.route.sendResolved {
			continue
		}
		wa := webhookAlert{
			Status:       "resolved",
			Labels:       a.labels,
			Annotations:  g.annotations(a, t),
			StartsAt:     sp.start,
			EndsAt:       sp.end,
			GeneratorURL: "https://prometheus." + g.domain + "/graph?g0.expr=" + url.QueryEscape(strings.ReplaceAll(a.rule.expr, "{svc}", a.svc.name)) + "&g0.tab=1",
			Fingerprint:  a.fp,
		}
		if firing {
			wa.Status = "firing"
			wa.EndsAt = time.Time{}
			p.Status = "firing"
		}
		p.Alerts = append(p.Alerts, wa)
	}
	if len(p.Alerts) == 0 {
		return p, false
	}
	p.CommonLabels = common(p.Alerts, func(w webhookAlert) map[string]string { return w.Labels })
	p.CommonAnnotations = common(p.Alerts, func(w webhookAlert) map[string]string { return w.Annotations })
	return p, true
}

func common(alerts []webhookAlert, kv func(webhookAlert) map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range kv(alerts[0]) {
		out[k] = v
	}
	for _, a := range alerts[1:] {
		m := kv(a)
		for k, v := range out {
			if m[k] != v {
				delete(out, k)
			}
		}
	}
	return out
}

// annotations of a at t; the value in the description moves between
// notifications as Prometheus re-evaluates it.
func (g *gen) annotations(a *alert, t time.Time) map[string]string {
	h := fnv.New64a()
	fmt.Fprintf(h, "%s %d", a.fp, t.Unix())
	frac := float64(h.Sum64()%10000) / 10000
	value := fmt.Sprintf(a.rule.format, a.rule.lo+(a.rule.hi-a.rule.lo)*frac)
	rep := strings.NewReplacer("{svc}", a.svc.name, "{subj}", a.subj, "{value}", value)
	ann := map[string]string{
		"summary":     rep.Replace(a.rule.summary),
		"description": rep.Replace(a.rule.desc),
	}
	name := a.labels["alertname"]
	if a.rule.mixin != "" {
		ann["runbook_url"] = "https://runbooks.prometheus-operator.dev/runbooks/" + a.rule.mixin + "/" + strings.ToLower(name)
	} else {
		ann["runbook_url"] = fmt.Sprintf("https://runbooks.%s/%s/%s#%s", g.domain, a.svc.team, a.svc.name, strings.ToLower(name))
		ann["dashboard"] = fmt.Sprintf("https://grafana.%s/d/%s/%s", g.domain, a.svc.name, a.svc.name)
	}
	return ann
}

// timedLine is a line with its exact time.
type timedLine struct {
	at time.Time
	l  line
}

// line is one replay input line.
type line struct {
	Type    string      `json:"type"`
	Time    string      `json:"time"`
	Payload *webhook    `json:"payload,omitempty"`
	Change  *changeBody `json:"change,omitempty"`
}

type changeBody struct {
	Service string `json:"service"`
	Kind    string `json:"kind"`
	Version string `json:"version"`
	Author  string `json:"author"`
	Commit  string `json:"commit"`
	URL     string `json:"url"`
}

// render runs Alertmanager over the storm and writes the lines and the
// truth.
func (g *gen) render() Storm {
	all := g.describeChanges()
	g.byNamespace = map[string][]*alert{}
	for _, a := range g.alerts {
		ns := a.labels["namespace"]
		g.byNamespace[ns] = append(g.byNamespace[ns], a)
	}
	for _, ag := range g.groups() {
		for _, n := range g.dispatch(ag, g.end) {
			if n.at.Before(g.start) {
				continue
			}
			all = append(all, timedLine{n.at, line{Type: "alertmanager", Payload: &n.payload}})
		}
	}
	slices.SortStableFunc(all, func(x, y timedLine) int { return x.at.Compare(y.at) })

	st := Storm{Truth: map[string]string{}}
	// number incidents and noise in order of first appearance
	incNo, noiseNo := map[*incident]int{}, map[int]int{}
	for _, t := range all {
		// whole seconds, rounded up: never before what the line reports
		sec := t.at.UTC().Truncate(time.Second)
		if sec.Before(t.at) {
			sec = sec.Add(time.Second)
		}
		t.l.Time = sec.Format(time.RFC3339)
		b, err := json.Marshal(t.l)
		if err != nil {
			panic(err)
		}
		st.Lines = append(st.Lines, b)
		if t.l.Payload == nil {
			continue
		}
		st.Notifications++
		for _, wa := range t.l.Payload.Alerts {
			if _, ok := st.Truth[wa.Fingerprint]; ok {
				continue
			}
			a := g.byFP[wa.Fingerprint]
			if a.inc != nil {
				if incNo[a.inc] == 0 {
					incNo[a.inc] = len(incNo) + 1
				}
				st.Truth[a.fp] = fmt.Sprintf("inc-%03d-%s", incNo[a.inc], a.inc.kind)
			} else {
				if noiseNo[a.noiseIdx] == 0 {
					noiseNo[a.noiseIdx] = len(noiseNo) + 1
				}
				st.Truth[a.fp] = fmt.Sprintf("noise-%03d", noiseNo[a.noiseIdx])
			}
		}
	}
	st.Incidents = len(incNo) + len(noiseNo)
	return st
}
