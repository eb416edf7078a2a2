package wordgen

import (
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// What reaches aiops is what Alertmanager sends its webhook receiver. The
// model follows Alertmanager's dispatcher and notification pipeline:
//
//   - alerts are grouped by the route's group_by labels; a new group waits
//     group_wait, then is flushed every group_interval while it holds
//     alerts; a resolved alert leaves its group after the flush that saw
//     it resolved, and a group left empty is deleted (a later alert makes
//     a new one, which waits group_wait again);
//   - at a flush the group notifies (DedupStage) when an alert fires that
//     the last notification did not have firing, when everything resolved
//     after something was notified firing, when an alert resolved that
//     was not yet notified resolved (send_resolved), or when
//     repeat_interval passed since the last notification; an alert that
//     fired and resolved between two flushes is sent only as resolved,
//     and not at all when nothing it came with was notified;
//   - a notification holds every alert of the group, firing and resolved,
//     each with Alertmanager's fingerprint; a firing alert's endsAt is the
//     zero time, as Alertmanager sends it;
//   - kube-prometheus' inhibition rule (Config.Inhibit): a firing
//     critical alert mutes the warnings of the same alertname and
//     namespace. A warning muted from before its first flush until after
//     it resolved is only ever sent resolved.

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
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
	Fingerprint  string            `json:"fingerprint"`
}

type amLine struct {
	Type    string    `json:"type"`
	Time    time.Time `json:"time"`
	Payload *webhook  `json:"payload"`
}

type changeBody struct {
	Service string `json:"service"`
	Kind    string `json:"kind"`
	Version string `json:"version"`
	Author  string `json:"author"`
	Commit  string `json:"commit"`
	URL     string `json:"url"`
}

type changeLine struct {
	Type   string     `json:"type"`
	Time   time.Time  `json:"time"`
	Change changeBody `json:"change"`
}

// state is an alert as Alertmanager holds it at t: firing, or resolved
// (its last firing ended), or not yet seen.
func (a *alert) state(t time.Time) (ep episode, firing, seen bool) {
	for i := len(a.episodes) - 1; i >= 0; i-- {
		e := a.episodes[i]
		if e.start.After(t) {
			continue
		}
		return e, t.Before(e.end), true
	}
	return episode{}, false, false
}

type nflogEntry struct {
	firing, resolved map[string]bool
	at               time.Time
}

type sent struct {
	at   time.Time
	data []byte
	fps  []string
}

// deliver runs the storm's alerts through Alertmanager and returns the
// webhook notifications it sends until the storm ends.
func (g *gen) deliver() []sent {
	groups := map[string][]*alert{}
	groupLabels := map[string]map[string]string{}
	inhibitors := map[string][]*alert{} // alertname and namespace → its critical alerts
	for _, a := range g.alerts {
		gl := map[string]string{}
		for _, name := range g.cfg.GroupBy {
			if v, ok := a.labels[name]; ok {
				gl[name] = v
			}
		}
		key := labelString(gl)
		groups[key] = append(groups[key], a)
		groupLabels[key] = gl
		if a.labels["severity"] == "critical" {
			k := a.labels["alertname"] + "\xff" + a.labels["namespace"]
			inhibitors[k] = append(inhibitors[k], a)
		}
	}
	muted := func(a *alert, t time.Time) bool {
		if !g.cfg.Inhibit || a.labels["severity"] != "warning" {
			return false
		}
		for _, src := range inhibitors[a.labels["alertname"]+"\xff"+a.labels["namespace"]] {
			if _, firing, _ := src.state(t); firing {
				return true
			}
		}
		return false
	}
	var out []sent
	for _, key := range slices.Sorted(maps.Keys(groups)) {
		type arrival struct {
			at time.Time
			a  *alert
		}
		var arrivals []arrival
		for _, a := range groups[key] {
			for _, e := range a.episodes {
				arrivals = append(arrivals, arrival{e.start, a})
			}
		}
		slices.SortFunc(arrivals, func(x, y arrival) int {
			return cmp.Or(x.at.Compare(y.at), strings.Compare(x.a.fp, y.a.fp))
		})
		var entry *nflogEntry // the notification log outlives the group
		in := map[*alert]bool{}
		next := 0
		for next < len(arrivals) && arrivals[next].at.Before(g.end) {
			flush := arrivals[next].at.Add(g.cfg.GroupWait)
			for flush.Before(g.end) {
				for next < len(arrivals) && !arrivals[next].at.After(flush) {
					in[arrivals[next].a] = true
					next++
				}
				members := slices.SortedFunc(maps.Keys(in), alertOrder)
				var shown []*alert
				firing, resolved := map[string]bool{}, map[string]bool{}
				for _, a := range members {
					if muted(a, flush) {
						continue
					}
					shown = append(shown, a)
					if _, f, _ := a.state(flush); f {
						firing[a.fp] = true
					} else {
						resolved[a.fp] = true
					}
				}
				if notify(entry, firing, resolved, flush, g.cfg.RepeatInterval) {
					entry = &nflogEntry{firing: firing, resolved: resolved, at: flush}
					// What was sent before the storm is history: it only
					// shapes what Alertmanager sends next.
					if !flush.Before(g.cfg.Start) {
						at := ms(flush.Add(g.between(50*time.Millisecond, 1500*time.Millisecond)))
						out = append(out, g.notification(at, flush, key, groupLabels[key], shown))
					}
				}
				for _, a := range members {
					if _, f, _ := a.state(flush); !f {
						delete(in, a)
					}
				}
				if len(in) == 0 {
					break
				}
				flush = flush.Add(g.cfg.GroupInterval)
			}
			if !flush.Before(g.end) {
				break
			}
		}
	}
	return out
}

// notify is Alertmanager's DedupStage.needsUpdate with send_resolved.
func notify(entry *nflogEntry, firing, resolved map[string]bool, now time.Time, repeat time.Duration) bool {
	if entry == nil {
		return len(firing) > 0
	}
	if !subset(firing, entry.firing) {
		return true
	}
	if len(firing) == 0 {
		return len(entry.firing) > 0
	}
	if !subset(resolved, entry.resolved) {
		return true
	}
	return !entry.at.After(now.Add(-repeat))
}

func subset(a, b map[string]bool) bool {
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}

// alertOrder is Alertmanager's order of alerts in a notification: by job,
// then instance, then the whole label set.
func alertOrder(x, y *alert) int {
	return cmp.Or(strings.Compare(x.labels["job"], y.labels["job"]), strings.Compare(x.labels["instance"], y.labels["instance"]),
		strings.Compare(labelString(x.labels), labelString(y.labels)))
}

// labelString is a label set as Prometheus prints one: {a="1", b="2"}.
func labelString(l map[string]string) string {
	var b strings.Builder
	b.WriteByte('{')
	for i, k := range slices.Sorted(maps.Keys(l)) {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s=%q", k, l[k])
	}
	b.WriteByte('}')
	return b.String()
}

func (g *gen) notification(at, flush time.Time, key string, groupLabels map[string]string, shown []*alert) sent {
	wh := &webhook{
		Receiver: "aiops", Status: "resolved", GroupLabels: groupLabels,
		ExternalURL: "https://alertmanager.ops." + domain, Version: "4",
		GroupKey: `{}/{severity=~"warning|critical"}:` + key,
	}
	var fps []string
	for i, a := range shown {
		ep, firing, _ := a.state(flush)
		wa := webhookAlert{Status: "resolved", Labels: a.labels, Annotations: a.annotations, StartsAt: ep.start, EndsAt: ep.end,
			GeneratorURL: a.generator, Fingerprint: a.fp}
		if firing {
			wa.Status, wa.EndsAt = "firing", time.Time{}
			wh.Status = "firing"
		}
		wh.Alerts = append(wh.Alerts, wa)
		fps = append(fps, a.fp)
		if i == 0 {
			wh.CommonLabels, wh.CommonAnnotations = maps.Clone(a.labels), maps.Clone(a.annotations)
			continue
		}
		for k, v := range wh.CommonLabels {
			if a.labels[k] != v {
				delete(wh.CommonLabels, k)
			}
		}
		for k, v := range wh.CommonAnnotations {
			if a.annotations[k] != v {
				delete(wh.CommonAnnotations, k)
			}
		}
	}
	data, err := json.Marshal(amLine{Type: "alertmanager", Time: at, Payload: wh})
	if err != nil {
		panic("wordgen: " + err.Error())
	}
	return sent{at: at, data: data, fps: fps}
}

// storm assembles the lines, in time order, and the truth.
func (g *gen) storm() Storm {
	s := Storm{Catalog: g.est.catalogYAML(), Truth: map[string]string{}}
	lines := g.deliver()
	s.Notifications = len(lines)
	byFP := map[string]*alert{}
	for _, a := range g.alerts {
		byFP[a.fp] = a
	}
	for _, l := range lines {
		for _, fp := range l.fps {
			s.Truth[fp] = byFP[fp].truth
		}
	}
	for _, c := range g.changes {
		if !c.at.Before(g.end) {
			continue
		}
		at := ms(c.at)
		data, err := json.Marshal(changeLine{Type: "change", Time: at, Change: changeBody{c.service, c.kind, c.version, c.author, c.commit, c.url}})
		if err != nil {
			panic("wordgen: " + err.Error())
		}
		lines = append(lines, sent{at: at, data: data})
	}
	slices.SortStableFunc(lines, func(a, b sent) int { return a.at.Compare(b.at) })
	for _, l := range lines {
		s.Lines = append(s.Lines, l.data)
	}
	incidents := map[string]bool{}
	for _, id := range s.Truth {
		incidents[id] = true
	}
	s.Incidents = len(incidents)
	s.Roots = map[string]string{}
	for _, p := range g.planned {
		if p.kind == kindNode || !incidents[p.id] {
			continue
		}
		for _, h := range p.hits {
			if h.hop == 0 {
				s.Roots[p.id] = h.comp.name
				break
			}
		}
	}
	return s
}
