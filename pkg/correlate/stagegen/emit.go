package stagegen

import (
	"bytes"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/pkg/notify/webhook"
)

// amFingerprint is the fingerprint Alertmanager gives an alert.
func amFingerprint(labels map[string]string) string { return event.AlertmanagerFingerprint(labels) }

// line is one replay line before sorting.
type line struct {
	t    time.Time
	seq  int
	data []byte
}

type emitter struct {
	*gen
	lines []line
	truth map[string]string
}

func (e *emitter) add(t time.Time, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // log templates are full of <*>
	if err := enc.Encode(v); err != nil {
		panic(fmt.Sprintf("stagegen: marshal: %v", err))
	}
	e.lines = append(e.lines, line{t: t, seq: len(e.lines), data: bytes.TrimRight(buf.Bytes(), "\n")})
}

func (g *gen) emit() Storm {
	e := &emitter{gen: g, truth: map[string]string{}}
	e.alertmanager()
	e.detector()
	e.logminer()
	e.changeLines()
	slices.SortStableFunc(e.lines, func(a, b line) int { return a.t.Compare(b.t) })
	s := Storm{Catalog: g.w.catalog, Truth: e.truth}
	for _, l := range e.lines {
		s.Lines = append(s.Lines, l.data)
	}
	inc := map[string]bool{}
	for _, v := range e.truth {
		inc[v] = true
	}
	s.Incidents = len(inc)
	return s
}

// --- Prometheus and Alertmanager ---------------------------------------

// amAlert and amPayload are Alertmanager's webhook body, version 4, as
// pkg/notify/webhook writes it.
type (
	amAlert   = webhook.AlertmanagerAlert
	amPayload = webhook.AlertmanagerPayload
)

type amLine struct {
	Type    string    `json:"type"`
	Time    time.Time `json:"time"`
	Payload amPayload `json:"payload"`
}

// amEvent is Prometheus telling Alertmanager an alert fired or resolved.
type amEvent struct {
	t    time.Time
	fp   string
	fire bool
	at   time.Time // startsAt when firing, endsAt when resolved
	c    *alertCond
}

// prometheus turns the conditions into what Prometheus sends: an alert
// fires at the first evaluation at least its rule's `for` after the
// condition started (if the condition still holds then), with startsAt
// that evaluation, and resolves at the first evaluation after it ended.
func (e *emitter) prometheus() []amEvent {
	byFP := map[string][]*alertCond{}
	var fps []string
	for i := range e.conds {
		c := &e.conds[i]
		if byFP[c.fp] == nil {
			fps = append(fps, c.fp)
		}
		byFP[c.fp] = append(byFP[c.fp], c)
	}
	ev := e.cfg.EvalInterval
	tick := func(t time.Time, off time.Duration) time.Time {
		d := t.Sub(e.cfg.Start.Add(off))
		n := (d + ev - 1) / ev
		if d < 0 {
			n = 0
		}
		return e.cfg.Start.Add(off + n*ev)
	}
	var out []amEvent
	for _, fp := range fps {
		cs := byFP[fp]
		slices.SortFunc(cs, func(a, b *alertCond) int { return a.start.Compare(b.start) })
		// The rule group's evaluation offset within the interval.
		h := fnv.New32a()
		h.Write([]byte(cs[0].def.labels["alertname"]))
		off := time.Duration(h.Sum32()%uint32(ev/time.Millisecond)) * time.Millisecond
		// Merge overlapping conditions.
		type iv struct {
			s, e time.Time
			c    *alertCond
		}
		var ivs []iv
		for _, c := range cs {
			if n := len(ivs); n > 0 && !c.start.After(ivs[n-1].e) {
				if c.end.After(ivs[n-1].e) {
					ivs[n-1].e = c.end
				}
				continue
			}
			ivs = append(ivs, iv{c.start, c.end, c})
		}
		for _, v := range ivs {
			active := tick(v.s, off)
			fired := tick(active.Add(v.c.def.forDur), off)
			if !fired.Before(v.e) {
				continue // pending only: never fired
			}
			resolved := tick(v.e, off)
			send := time.Duration(200+len(fp)*13) * time.Millisecond
			out = append(out, amEvent{t: fired.Add(send), fp: fp, fire: true, at: fired, c: v.c},
				amEvent{t: resolved.Add(send), fp: fp, fire: false, at: resolved, c: v.c})
		}
	}
	return out
}

// route is the Alertmanager route an alert takes: team receivers, group
// by cfg.GroupBy.
func (e *emitter) route(labels map[string]string) (receiver, routeKey string, groupLabels map[string]string) {
	receiver, routeKey = "platform-oncall", "{}"
	if t := labels["team"]; t != "" {
		receiver = "team-" + t
		routeKey = fmt.Sprintf("{}/{team=%q}", t)
	}
	groupLabels = map[string]string{}
	for _, k := range e.cfg.GroupBy {
		if v, ok := labels[k]; ok {
			groupLabels[k] = v
		}
	}
	return
}

func labelString(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%q", k, m[k])
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

type amState struct {
	a        amAlert
	resolved bool
}

// alertmanager simulates Alertmanager's aggregation groups: group_wait
// before the first notification of a new group, then a flush every
// group_interval that notifies when new alerts fire, when alerts resolve
// (send_resolved) or when repeat_interval passed; resolved alerts leave
// the group after a flush, and an empty group is deleted (a later alert
// starts a new one with a new group_wait). The notification log outlives
// groups, as Alertmanager's does.
func (e *emitter) alertmanager() {
	evs := e.prometheus()
	type grp struct {
		receiver string
		routeKey string
		labels   map[string]string
		evs      []amEvent
	}
	groups := map[string]*grp{}
	var keys []string
	for _, ev := range evs {
		rcv, rk, gl := e.route(ev.c.def.labels)
		key := rk + ":" + labelString(gl)
		g := groups[key]
		if g == nil {
			g = &grp{receiver: rcv, routeKey: rk, labels: gl}
			groups[key] = g
			keys = append(keys, key)
		}
		g.evs = append(g.evs, ev)
	}
	sort.Strings(keys)
	for _, key := range keys {
		g := groups[key]
		slices.SortStableFunc(g.evs, func(a, b amEvent) int {
			if c := a.t.Compare(b.t); c != 0 {
				return c
			}
			return strings.Compare(a.fp, b.fp)
		})
		var logFiring, logResolved map[string]bool
		var logTime time.Time
		logged := false
		i := 0
		for i < len(g.evs) {
			if !g.evs[i].fire {
				i++ // a resolve for an alert whose group is gone
				continue
			}
			alerts := map[string]*amState{}
			next := g.evs[i].t.Add(e.cfg.GroupWait)
			for {
				for i < len(g.evs) && !g.evs[i].t.After(next) {
					ev := g.evs[i]
					i++
					st := alerts[ev.fp]
					if ev.fire {
						if st == nil || st.resolved {
							alerts[ev.fp] = &amState{a: amAlert{Status: "firing", Labels: ev.c.def.labels, Annotations: ev.c.def.ann, StartsAt: ev.at,
								GeneratorURL: "http://prometheus.monitoring:9090/graph?g0.expr=" + urlQuery(ev.c.def.expr) + "&g0.tab=1", Fingerprint: ev.fp}}
						}
					} else if st != nil {
						st.resolved = true
						st.a.Status = "resolved"
						st.a.EndsAt = ev.at
					}
				}
				firing, resolved := map[string]bool{}, map[string]bool{}
				for fp, st := range alerts {
					if st.resolved {
						resolved[fp] = true
					} else {
						firing[fp] = true
					}
				}
				notify := false
				switch {
				case !logged:
					notify = len(firing) > 0
				case !subset(firing, logFiring):
					notify = true
				case len(firing) == 0:
					notify = len(logFiring) > 0
				case e.cfg.SendResolved && !subset(resolved, logResolved):
					notify = true
				default:
					notify = !logTime.After(next.Add(-e.cfg.RepeatInterval))
				}
				if notify {
					e.notify(next, key, g.receiver, g.labels, alerts)
					logFiring, logResolved, logTime, logged = firing, resolved, next, true
				}
				for fp := range resolved {
					delete(alerts, fp)
				}
				if len(alerts) == 0 {
					break
				}
				next = next.Add(e.cfg.GroupInterval)
			}
		}
	}
}

func subset(a, b map[string]bool) bool {
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}

func urlQuery(s string) string {
	r := strings.NewReplacer(" ", "+", "\"", "%22", "{", "%7B", "}", "%7D", "=", "%3D", "~", "%7E", "[", "%5B", "]", "%5D", ">", "%3E", "<", "%3C", "/", "%2F", "*", "%2A", ",", "%2C", "(", "%28", ")", "%29", "!", "%21")
	return r.Replace(s)
}

// notify writes one webhook notification of a group.
func (e *emitter) notify(at time.Time, key, receiver string, groupLabels map[string]string, alerts map[string]*amState) {
	fps := make([]string, 0, len(alerts))
	for fp := range alerts {
		fps = append(fps, fp)
	}
	sort.Strings(fps)
	p := amPayload{Version: "4", GroupKey: key, Status: "resolved", Receiver: receiver, GroupLabels: groupLabels,
		ExternalURL: "http://alertmanager.monitoring:9093"}
	for _, fp := range fps {
		st := alerts[fp]
		if st.resolved && !e.cfg.SendResolved {
			continue
		}
		if !st.resolved {
			p.Status = "firing"
		}
		p.Alerts = append(p.Alerts, st.a)
	}
	if len(p.Alerts) == 0 {
		return
	}
	slices.SortStableFunc(p.Alerts, func(a, b amAlert) int { return a.StartsAt.Compare(b.StartsAt) })
	p.CommonLabels = common(p.Alerts, func(a amAlert) map[string]string { return a.Labels })
	p.CommonAnnotations = common(p.Alerts, func(a amAlert) map[string]string { return a.Annotations })
	// The webhook goes out a little after the flush.
	h := fnv.New32a()
	h.Write([]byte(key))
	t := at.Add(time.Duration(40+h.Sum32()%400) * time.Millisecond)
	for _, a := range p.Alerts {
		if _, ok := e.truth[a.Fingerprint]; !ok {
			e.truth[a.Fingerprint] = e.fpOwner[a.Fingerprint]
		}
	}
	e.add(t, amLine{Type: "alertmanager", Time: t, Payload: p})
}

func common(as []amAlert, f func(amAlert) map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range f(as[0]) {
		out[k] = v
	}
	for _, a := range as[1:] {
		m := f(a)
		for k, v := range out {
			if m[k] != v {
				delete(out, k)
			}
		}
	}
	return out
}

// --- the detector and the log miner -------------------------------------

type eventLine struct {
	Type  string          `json:"type"`
	Time  time.Time       `json:"time"`
	Event *event.Envelope `json:"event"`
}

func fptr(f float64) *float64 { return &f }

func round(f float64) float64 {
	if f == 0 {
		return 0
	}
	mag := math.Pow(10, 4-math.Ceil(math.Log10(math.Abs(f))))
	return math.Round(f*mag) / mag
}

func (e *emitter) envelope(t time.Time, source, svc string, labels map[string]string, sev event.Severity, body event.AnomalyBody, idParts ...string) *event.Envelope {
	t = t.Truncate(time.Millisecond)
	raw, err := event.MarshalBody(body)
	if err != nil {
		panic(err)
	}
	parts := append([]string{"stagegen", strconv.FormatUint(e.seed, 10)}, idParts...)
	env := &event.Envelope{
		SchemaVersion: event.SchemaVersion,
		ID:            event.DerivedID(t, parts...),
		Kind:          event.KindAnomaly,
		Time:          t.UTC(),
		ObservedTime:  t.Add(150 * time.Millisecond).UTC(),
		Source:        source,
		Service:       svc,
		Resource:      map[string]string{"cluster": "prod-eu-west-1", "region": "eu-west-1"},
		Labels:        labels,
		Severity:      sev,
		Body:          raw,
	}
	env.Fingerprint = event.Fingerprint(env.Kind, env.Service, env.Labels, env.Resource)
	return env
}

func (e *emitter) addEvent(env *event.Envelope, owner string) {
	e.truth[env.ID] = owner
	e.add(env.ObservedTime, eventLine{Type: "event", Time: env.ObservedTime, Event: env})
}

// detector turns episodes into the detector's anomaly events: open a
// little after the series leaves its band, updates at most every
// DetectorUpdate while it stays out, close once it is back.
func (e *emitter) detector() {
	for n, ep := range e.eps {
		if ep.end.Sub(ep.start) < time.Minute {
			continue
		}
		ms := time.Millisecond
		end := ep.end.Truncate(ms)
		open := ep.start.Add(e.between(30*time.Second, 2*time.Minute)).Truncate(ms)
		if !open.Before(end) {
			open = end.Add(-20 * time.Second)
		}
		closeAt := end.Add(e.between(time.Minute, 3*time.Minute)).Truncate(ms)
		ns := e.w.namespace(ep.svc)
		labels := map[string]string{"__name__": ep.m.name, "service": ep.svc, "namespace": ns, "job": ep.svc}
		series := event.Fingerprint(event.KindMetric, ep.svc, labels, nil)
		epID := event.DerivedID(open, "episode", strconv.FormatUint(e.seed, 10), series, strconv.Itoa(n))
		detector := "robust-zscore"
		if ep.m.name == "http_server_requests:rate5m" {
			detector = "seasonal-mad"
		}
		lower := math.Max(0, ep.m.expected-ep.m.band)
		upper := ep.m.expected + ep.m.band
		var peak, peakVal float64
		var peakT time.Time
		type obs struct {
			t     time.Time
			phase string
		}
		var obsv []obs
		obsv = append(obsv, obs{open, event.EpisodeOpen})
		for t := open.Add(e.cfg.DetectorUpdate + e.between(0, time.Minute)).Truncate(ms); t.Before(end); t = t.Add(e.cfg.DetectorUpdate + e.between(0, time.Minute)).Truncate(ms) {
			obsv = append(obsv, obs{t, event.EpisodeUpdate})
		}
		obsv = append(obsv, obs{closeAt, event.EpisodeClose})
		total := ep.end.Sub(ep.start).Seconds()
		for k, o := range obsv {
			frac := 1.0
			if o.phase != event.EpisodeClose {
				x := o.t.Sub(ep.start).Seconds() / total
				frac = math.Min(1, 0.35+0.9*x) * (0.85 + 0.15*e.r.Float64())
			}
			v := ep.m.expected + (ep.m.peak-ep.m.expected)*frac
			score := math.Min(1, 0.55+0.45*frac)
			endObs := o.t
			if o.phase == event.EpisodeClose {
				v = ep.m.expected + (ep.m.peak-ep.m.expected)*0.05
				score = 0.2
				endObs = end
			}
			v, score = round(v), round(score)
			if score > peak || peakT.IsZero() {
				peak, peakVal, peakT = score, v, o.t
			}
			body := event.AnomalyBody{Series: series, Metric: ep.m.name, Value: fptr(v), Expected: round(ep.m.expected), Lower: round(lower), Upper: round(upper),
				Score: fptr(score), Detector: detector, Window: "15m",
				Reason:  fmt.Sprintf("%s = %g outside the expected band [%g, %g]", ep.m.name, v, round(lower), round(upper)),
				Episode: o.phase, EpisodeID: epID, Start: open, End: endObs, Peak: fptr(peak), PeakTime: peakT, PeakValue: fptr(peakVal)}
			if o.phase == event.EpisodeClose {
				body.Reason = fmt.Sprintf("%s back inside the expected band [%g, %g]", ep.m.name, round(lower), round(upper))
			}
			sev := event.SeverityWarning
			if score >= 0.9 {
				sev = event.SeverityError
			}
			env := e.envelope(o.t, "detector", ep.svc, labels, sev, body, "episode", epID, strconv.Itoa(k))
			e.addEvent(env, ep.owner)
		}
	}
}

// logminer turns bursts into the log miner's error-burst anomalies: one
// when the burst is seen (after a minute's window), then one every
// BurstEvery while it lasts.
func (e *emitter) logminer() {
	for n, b := range e.bursts {
		tid := templateID(b.svc, b.tmpl)
		ns := e.w.namespace(b.svc)
		labels := map[string]string{"template_id": tid, "level": "error", "namespace": ns}
		if strings.HasPrefix(b.tmpl, "WARN") {
			labels["level"] = "warn"
		}
		k := 0
		for t := b.start.Add(e.between(45*time.Second, 75*time.Second)); k == 0 || t.Before(b.end); t = t.Add(e.cfg.BurstEvery + e.between(0, 30*time.Second)) {
			rate := math.Round(b.rate * (0.6 + 0.8*e.r.Float64()))
			baseline := round(0.1 + 0.5*e.r.Float64())
			score := round(math.Min(1, 0.6+rate/1000))
			body := event.AnomalyBody{Series: tid, Metric: "log_template_lines:rate1m", Value: fptr(rate), Expected: baseline, Lower: 0, Upper: round(baseline * 8),
				Score: fptr(score), Detector: "logminer", Window: "1m",
				Reason: fmt.Sprintf("error burst: %g lines/min of template %q, usually %g/min", rate, b.tmpl, baseline)}
			env := e.envelope(t, "logminer", b.svc, labels, event.SeverityError, body, "burst", strconv.Itoa(n), strconv.Itoa(k))
			e.addEvent(env, b.owner)
			k++
		}
	}
}

// --- CD ------------------------------------------------------------------

type changeLine struct {
	Type   string     `json:"type"`
	Time   time.Time  `json:"time"`
	Change changeBody `json:"change"`
}

type changeBody struct {
	Service string `json:"service"`
	Kind    string `json:"kind"`
	Version string `json:"version"`
	Author  string `json:"author"`
	Commit  string `json:"commit"`
	URL     string `json:"url"`
}

func (e *emitter) changeLines() {
	for _, c := range e.changes {
		t := c.t.Truncate(time.Second)
		e.add(t, changeLine{Type: "change", Time: t, Change: changeBody{Service: c.svc, Kind: c.kind, Version: c.version, Author: c.author, Commit: c.commit, URL: c.url}})
	}
}
