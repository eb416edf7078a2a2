package notifier

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/pkg/notify/amconfig"
)

// The open incidents, listed as Alertmanager's API v2 lists its alerts
// (GET /api/v2/alerts), so that `amtool alert query` and the dashboards
// that read an Alertmanager (Grafana's Alertmanager data source, Karma)
// show what the notifier routes: each open incident is one alert with
// the labels it is routed by, whether a silence or another incident
// holds it back, and the receivers its routes name.

// gettableAlert is Alertmanager's API v2 GettableAlert.
type gettableAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	UpdatedAt    time.Time         `json:"updatedAt"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
	Fingerprint  string            `json:"fingerprint"`
	Receivers    []receiverRef     `json:"receivers"`
	Status       alertStatus       `json:"status"`

	routes []*amconfig.Route // the routes it matches, for its groups
}

// alertGroup is Alertmanager's API v2 AlertGroup: the alerts one route
// groups by the same values of its group_by labels.
type alertGroup struct {
	Labels   map[string]string `json:"labels"`
	Receiver receiverRef       `json:"receiver"`
	Alerts   []gettableAlert   `json:"alerts"`
}

// groupAlerts groups alerts as Alertmanager's GET /api/v2/alerts/groups:
// by route, then by the values of the route's group_by labels (every
// label with group_by: [...]); an alert is in a group of each route it
// matches. Groups are sorted as Alertmanager sorts them: by their labels
// (compareLabels), then by receiver; and so are a group's alerts
// (compareAlerts).
func groupAlerts(alerts []gettableAlert) []alertGroup {
	type key struct{ route, labels string }
	groups := map[key]*alertGroup{}
	var order []key
	for _, a := range alerts {
		for _, r := range a.routes {
			labels := a.Labels
			if !r.GroupByAll {
				labels = map[string]string{}
				for _, l := range r.GroupBy {
					if v, ok := a.Labels[l]; ok {
						labels[l] = v
					}
				}
			}
			k := key{r.Path, labelsKey(labels)}
			g, ok := groups[k]
			if !ok {
				g = &alertGroup{Labels: labels, Receiver: receiverRef{r.Receiver}}
				groups[k] = g
				order = append(order, k)
			}
			g.Alerts = append(g.Alerts, a)
		}
	}
	slices.SortFunc(order, func(a, b key) int {
		return cmp.Or(compareLabels(groups[a].Labels, groups[b].Labels), strings.Compare(groups[a].Receiver.Name, groups[b].Receiver.Name), strings.Compare(a.route, b.route))
	})
	out := make([]alertGroup, 0, len(order))
	for _, k := range order {
		slices.SortStableFunc(groups[k].Alerts, compareAlerts)
		out = append(out, *groups[k])
	}
	return out
}

// compareAlerts orders a group's alerts as Alertmanager does (its
// AlertSlice): by job, then instance (one without the label after one
// with it), then by their labels (compareLabels).
func compareAlerts(a, b gettableAlert) int {
	for _, name := range []string{"job", "instance"} {
		av, aok := a.Labels[name]
		bv, bok := b.Labels[name]
		switch {
		case !aok && !bok:
			continue
		case !aok:
			return 1
		case !bok:
			return -1
		}
		if c := strings.Compare(av, bv); c != 0 {
			return c
		}
	}
	return compareLabels(a.Labels, b.Labels)
}

// compareLabels orders label sets as Alertmanager orders its groups'
// (Prometheus's LabelSet.Before): fewer labels first, then by the first
// name, in name order, that one has and the other not (the one without
// it first), or whose values differ (the lower value first).
func compareLabels(a, b map[string]string) int {
	if c := cmp.Compare(len(a), len(b)); c != 0 {
		return c
	}
	names := slices.Collect(maps.Keys(a))
	for n := range b {
		if _, ok := a[n]; !ok {
			names = append(names, n)
		}
	}
	slices.Sort(names) // once, both sets' names together
	for _, n := range names {
		av, aok := a[n]
		bv, bok := b[n]
		switch {
		case !aok:
			return -1
		case !bok:
			return 1
		}
		if c := strings.Compare(av, bv); c != 0 {
			return c
		}
	}
	return 0
}

// labelsKey is labels in one string, sorted by name.
func labelsKey(labels map[string]string) string {
	names := slices.Sorted(maps.Keys(labels))
	var b strings.Builder
	for _, n := range names {
		fmt.Fprintf(&b, "%q=%q,", n, labels[n])
	}
	return b.String()
}

type receiverRef struct {
	Name string `json:"name"`
}

type alertStatus struct {
	State       string   `json:"state"` // active or suppressed
	SilencedBy  []string `json:"silencedBy"`
	InhibitedBy []string `json:"inhibitedBy"`
}

// openForListing is the open incidents this notifier knows: what its term
// holds while it holds the lease, else what the holder last wrote to the
// bucket (a standby's memory holds nothing, or an older term's).
func (p *Processor) openForListing(ctx context.Context) ([]openIncident, error) {
	if p.routes == nil {
		return nil, nil // nothing is routed: no incident is kept
	}
	if p.store == nil || !p.fencedOff() && p.termBegun.Load() {
		p.mu.Lock()
		defer p.mu.Unlock()
		out := make([]openIncident, 0, len(p.open))
		for _, inc := range p.open {
			out = append(out, inc)
		}
		return out, nil
	}
	all, err := p.store.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("open incidents: %w", err)
	}
	// as restoreOpen reads them: an entry the holder forgot is not listed
	now := p.now()
	return slices.DeleteFunc(all, func(inc openIncident) bool { return inc.Resolved || p.forgotten(inc, now) }), nil
}

// Alerts lists the open incidents as alerts at now, sorted by
// fingerprint.
func (p *Processor) Alerts(ctx context.Context, now time.Time) ([]gettableAlert, error) {
	open, err := p.openForListing(ctx)
	if err != nil || len(open) == 0 {
		return []gettableAlert{}, err
	}
	// Each inhibit rule's sources, indexed once for the list: looked up
	// in a list of them for each incident, 20,000 open incidents cost
	// 9 GB. An incident is among the sources it is looked up in, as
	// InhibitingAlert allows: it never inhibits itself.
	labels := make([]map[string]string, len(open))
	for i, inc := range open {
		labels[i] = inc.Labels
	}
	sources := make([]*amconfig.InhibitIndex, len(p.routes.InhibitRules))
	for i, r := range p.routes.InhibitRules {
		sources[i] = r.Index(labels)
	}
	fingerprints := make(map[string]string, len(open))
	for _, inc := range open {
		fingerprints[inc.ID] = event.AlertmanagerFingerprint(inc.Labels)
	}
	out := make([]gettableAlert, 0, len(open))
	for _, inc := range open {
		a := gettableAlert{
			Labels:      inc.Labels,
			Annotations: map[string]string{},
			StartsAt:    inc.Opened,
			UpdatedAt:   inc.At,
			Fingerprint: fingerprints[inc.ID],
			Receivers:   []receiverRef{},
			Status:      alertStatus{State: "active", SilencedBy: []string{}, InhibitedBy: []string{}},
		}
		if a.StartsAt.IsZero() {
			a.StartsAt = inc.At // kept by a build before openIncident.Opened
		}
		if inc.Title != "" {
			a.Annotations["summary"] = inc.Title
		}
		a.routes = p.routes.Route.Match(inc.Labels)
		for _, route := range a.routes {
			if !slices.ContainsFunc(a.Receivers, func(r receiverRef) bool { return r.Name == route.Receiver }) {
				a.Receivers = append(a.Receivers, receiverRef{route.Receiver})
			}
		}
		if p.silences != nil {
			a.Status.SilencedBy = append(a.Status.SilencedBy, p.silences.Mutes(inc.Labels, now)...)
		}
		for _, x := range sources {
			if j := x.InhibitingAlert(inc.Labels); j >= 0 {
				a.Status.InhibitedBy = append(a.Status.InhibitedBy, fingerprints[open[j].ID])
				break // Alertmanager names the first
			}
		}
		if len(a.Status.SilencedBy) > 0 || len(a.Status.InhibitedBy) > 0 {
			a.Status.State = "suppressed"
		}
		out = append(out, a)
	}
	slices.SortFunc(out, func(a, b gettableAlert) int { return strings.Compare(a.Fingerprint, b.Fingerprint) })
	return out, nil
}

// alertsFilter is what GET /api/v2/alerts selects: the alerts whose labels
// every matcher matches, in the states asked for, routed to a receiver
// the receiver expression matches (all when nil).
type alertsFilter struct {
	matchers                    amconfig.Matchers
	active, silenced, inhibited bool
	receiver                    *amconfig.Matcher
}

func (f alertsFilter) keeps(a gettableAlert) bool {
	switch {
	case !f.matchers.Matches(a.Labels):
		return false
	case a.Status.State == "active" && !f.active:
		return false
	case len(a.Status.SilencedBy) > 0 && !f.silenced:
		return false
	case len(a.Status.InhibitedBy) > 0 && !f.inhibited:
		return false
	case f.receiver != nil:
		return slices.ContainsFunc(a.Receivers, func(r receiverRef) bool { return f.receiver.Matches(r.Name) })
	}
	return true
}
