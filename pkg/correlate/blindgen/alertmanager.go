package blindgen

import (
	"cmp"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	amwebhook "github.com/aiops-dev/aiops/pkg/notify/webhook"
)

const (
	receiver    = "aiops-correlator"
	externalURL = "https://alertmanager.shop.example.com"
)

var groupBy = []string{"alertname", "cluster", "service"}

// webhook and webhookAlert are Alertmanager's webhook payload (version 4)
// and one of its alerts, as the notifier also writes them.
type (
	webhook      = amwebhook.AlertmanagerPayload
	webhookAlert = amwebhook.AlertmanagerAlert
)

type notification struct {
	t   time.Time
	key string
	w   *webhook
}

// amEvent is Prometheus telling Alertmanager an alert fired or resolved.
type amEvent struct {
	t        time.Time
	a        *alert
	firing   bool
	startsAt time.Time
	endsAt   time.Time
}

type amGroup struct {
	key    string
	route  Route
	labels map[string]string
	events []amEvent
}

type stored struct {
	a        *alert
	startsAt time.Time
	endsAt   time.Time
	resolved bool
}

// routeOf is the route tree: critical alerts one way, the rest another.
func (g *gen) routeOf(a *alert) (string, Route) {
	if a.rule.sev == critical {
		return `{}/{severity="critical"}`, g.cfg.Critical
	}
	return `{}/{severity=~"warning|info|none"}`, g.cfg.Warning
}

// alertmanager runs Alertmanager's dispatcher and notification log over
// the alerts: aggregation groups by route and group_by labels, the first
// flush group_wait after a group appears, later flushes every
// group_interval, a notification only when a firing alert is new, an
// alert resolved, or repeat_interval passed; resolved alerts sent once and
// dropped; a group deleted when empty and created anew by its next alert.
func (g *gen) alertmanager(alerts []*alert) []notification {
	groups := map[string]*amGroup{}
	for _, a := range alerts {
		rk, route := g.routeOf(a)
		gl := map[string]string{}
		var parts []string
		for _, l := range groupBy {
			gl[l] = a.labels[l]
			parts = append(parts, fmt.Sprintf("%s=%q", l, a.labels[l]))
		}
		key := rk + ":{" + strings.Join(parts, ", ") + "}"
		grp, ok := groups[key]
		if !ok {
			grp = &amGroup{key: key, route: route, labels: gl}
			groups[key] = grp
		}
		// Prometheus sends an alert a moment after the evaluation that
		// fired or resolved it.
		for _, f := range a.fired {
			grp.events = append(grp.events, amEvent{t: f.a.Add(g.sendDelay()), a: a, firing: true, startsAt: f.a})
			if f.b.Before(g.end) {
				grp.events = append(grp.events, amEvent{t: f.b.Add(g.sendDelay()), a: a, firing: false, startsAt: f.a, endsAt: f.b})
			}
		}
	}
	keys := make([]string, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var out []notification
	for _, k := range keys {
		out = append(out, g.runGroup(groups[k])...)
	}
	return out
}

func (g *gen) sendDelay() time.Duration {
	return g.between(5*time.Millisecond, 600*time.Millisecond)
}

func (g *gen) runGroup(grp *amGroup) []notification {
	slices.SortStableFunc(grp.events, func(x, y amEvent) int {
		if c := x.t.Compare(y.t); c != 0 {
			return c
		}
		if x.firing != y.firing { // a resolution before a new firing at the same instant
			if !x.firing {
				return -1
			}
			return 1
		}
		return cmp.Compare(x.a.fp, y.a.fp)
	})
	store := map[string]*stored{}
	active := false
	var next time.Time
	// The notification log entry of the group: what was last sent.
	var logged bool
	var lastFiring, lastResolved map[string]bool
	var lastSent time.Time
	var out []notification
	i := 0
	for {
		if !active && i >= len(grp.events) {
			break
		}
		if !active || (i < len(grp.events) && grp.events[i].t.Before(next)) {
			e := grp.events[i]
			i++
			if e.firing {
				store[e.a.fp] = &stored{a: e.a, startsAt: e.startsAt}
				if !active {
					active = true
					next = e.t.Add(grp.route.GroupWait)
				}
			} else if s, ok := store[e.a.fp]; ok {
				s.resolved, s.endsAt = true, e.endsAt
			}
			continue
		}
		// Flush.
		t := next
		if t.After(g.end) {
			break
		}
		firing, resolved := map[string]bool{}, map[string]bool{}
		for fp, s := range store {
			if s.resolved {
				resolved[fp] = true
			} else {
				firing[fp] = true
			}
		}
		send := false
		switch {
		case !logged:
			send = len(firing) > 0
		case !subset(firing, lastFiring):
			send = true
		case len(firing) == 0:
			send = len(lastFiring) > 0
		case !subset(resolved, lastResolved):
			send = true
		default:
			send = lastSent.Before(t.Add(-grp.route.RepeatInterval))
		}
		if send {
			if !t.Before(g.start) {
				out = append(out, notification{t: t, key: grp.key, w: g.payload(grp, store, t)})
			}
			logged, lastFiring, lastResolved, lastSent = true, firing, resolved, t
		}
		for fp := range resolved {
			delete(store, fp)
		}
		if len(store) == 0 {
			active = false
		} else {
			next = t.Add(grp.route.GroupInterval)
		}
	}
	return out
}

// subset reports whether every key of a is in b.
func subset(a, b map[string]bool) bool {
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}

func (g *gen) payload(grp *amGroup, store map[string]*stored, t time.Time) *webhook {
	list := make([]*stored, 0, len(store))
	for _, s := range store {
		list = append(list, s)
	}
	// Alertmanager sorts by job, then instance, then the whole label set.
	slices.SortFunc(list, func(x, y *stored) int {
		if c := cmp.Compare(x.a.labels["job"], y.a.labels["job"]); c != 0 {
			return c
		}
		if c := cmp.Compare(x.a.labels["instance"], y.a.labels["instance"]); c != 0 {
			return c
		}
		return cmp.Compare(x.a.fp, y.a.fp)
	})
	w := &webhook{
		Version: "4", GroupKey: grp.key, Status: "resolved", Receiver: receiver,
		GroupLabels: grp.labels, ExternalURL: externalURL,
	}
	for n, s := range list {
		wa := webhookAlert{
			Status: "firing", Labels: s.a.labels, Annotations: s.a.ann, StartsAt: s.startsAt,
			GeneratorURL: "https://prometheus.shop.example.com/graph?g0.expr=" + url.QueryEscape(s.a.rule.exprFor(s.a.svc.Name)) + "&g0.tab=1",
			Fingerprint:  s.a.fp,
		}
		if s.resolved {
			wa.Status, wa.EndsAt = "resolved", s.endsAt
		} else {
			w.Status = "firing"
		}
		w.Alerts = append(w.Alerts, wa)
		if n == 0 {
			w.CommonLabels = clone(s.a.labels)
			w.CommonAnnotations = clone(s.a.ann)
		} else {
			intersect(w.CommonLabels, s.a.labels)
			intersect(w.CommonAnnotations, s.a.ann)
		}
	}
	return w
}

func clone(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func intersect(common, m map[string]string) {
	for k, v := range common {
		if m[k] != v {
			delete(common, k)
		}
	}
}
