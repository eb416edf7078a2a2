package specgen

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/aiops-dev/aiops/pkg/event"
)

// span is one firing of an alert: Alertmanager receives it at on and its
// resolution at off (zero: still firing when the storm ends).
type span struct{ on, off time.Time }

// alertDef is one alert (one label set, one fingerprint) and every time it
// fires.
type alertDef struct {
	labels      map[string]string
	annotations map[string]string
	fp          string
	genURL      string
	forDur      time.Duration // startsAt = on - forDur
	spans       []span
	inc         *incident
}

// incident is a true incident: the alerts of one failure.
type incident struct {
	id         string
	kind       string
	start, end time.Time // active interval, first onset to last resolution
	svcs       []int     // services that alert
	alerts     []*alertDef
	changes    []pendingChange // the changes that belong to it
}

// pendingChange is a change on a service; versions are given once all
// changes are known, in time order.
type pendingChange struct {
	at   time.Time
	svc  int
	kind string
}

// change is a change line's payload.
type change struct {
	Service string `json:"service"`
	Kind    string `json:"kind"`
	Version string `json:"version"`
	Author  string `json:"author"`
	Commit  string `json:"commit"`
	URL     string `json:"url"`
}

// target is where an alert points: a pod and the address it is scraped at.
type target struct {
	pod, ip string
}

type planner struct {
	r         *rand.Rand
	g         *graph
	cfg       Config
	start     time.Time
	end       time.Time
	incidents []*incident // true incidents, then noise
	changes   []pendingChange
	usedFP    map[string]bool
}

func newPlanner(r *rand.Rand, g *graph, cfg Config) *planner {
	p := &planner{r: r, g: g, cfg: cfg, start: cfg.Start.UTC().Truncate(time.Second), usedFP: map[string]bool{}}
	p.end = p.start.Add(cfg.Duration)
	return p
}

// between draws a whole number of seconds in [lo, hi].
func (p *planner) between(lo, hi time.Duration) time.Duration {
	s := int64(lo / time.Second)
	n := int64((hi-lo)/time.Second) + 1
	return time.Duration(s+p.r.Int64N(n)) * time.Second
}

func (p *planner) chance(x float64) bool { return p.r.Float64() < x }

const hexDigits = "0123456789abcdef"

func (p *planner) randString(alphabet string, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[p.r.IntN(len(alphabet))]
	}
	return string(b)
}

// targets draws n fresh pods of service s: a new ReplicaSet hash for
// deployments, ordinals for the stateful stores, new pod IPs either way.
func (p *planner) targets(s, n int) []target {
	svc := p.g.svcs[s]
	rs := p.randString("bcdfghjklmnpqrstvwxz2456789", 10)
	var out []target
	for _, o := range p.r.Perm(max(n, 3))[:n] {
		ip := fmt.Sprintf("10.%d.%d.%d", 40+p.r.IntN(8), p.r.IntN(256), 2+p.r.IntN(250))
		pod := svc.name + "-" + rs + "-" + p.randString("bcdfghjklmnpqrstvwxz2456789", 5)
		if svc.kind.isStore() {
			pod = fmt.Sprintf("%s-%d", svc.name, o)
		}
		out = append(out, target{pod: pod, ip: ip})
	}
	return out
}

// addAlert creates the alert of rule ru on target tg of service s.
func (p *planner) addAlert(inc *incident, s int, ru rule, tg target, spans []span) {
	svc := p.g.svcs[s]
	job := ru.job
	if job == "" {
		job = svc.name
	}
	labels := map[string]string{
		"alertname": ru.name,
		"service":   svc.name,
		"severity":  ru.severity,
		"cluster":   cluster,
		"namespace": p.g.namespace(s),
		"job":       job,
		"pod":       tg.pod,
		"instance":  tg.ip + ":" + ru.port,
	}
	fp := event.AlertmanagerFingerprint(labels)
	for p.usedFP[fp] { // a label set belongs to one incident only
		labels["instance"] = fmt.Sprintf("10.%d.%d.%d:%s", 48+p.r.IntN(8), p.r.IntN(256), 2+p.r.IntN(250), ru.port)
		fp = event.AlertmanagerFingerprint(labels)
	}
	p.usedFP[fp] = true
	a := &alertDef{
		labels: labels,
		annotations: map[string]string{
			"summary":     fmt.Sprintf(ru.summary, svc.name),
			"description": fmt.Sprintf(ru.summary, svc.name) + " (pod " + tg.pod + ").",
			"runbook_url": p.g.runbook(s) + "#" + ru.name,
		},
		fp:     fp,
		genURL: ru.generatorURL(svc.name),
		forDur: ru.forDur,
		spans:  spans,
		inc:    inc,
	}
	inc.alerts = append(inc.alerts, a)
	if !slices.Contains(inc.svcs, s) {
		inc.svcs = append(inc.svcs, s)
	}
	for _, sp := range spans {
		if inc.start.IsZero() || sp.on.Add(-ru.forDur).Before(inc.start) {
			inc.start = sp.on.Add(-ru.forDur)
		}
		off := sp.off
		if off.IsZero() {
			off = p.end
		}
		if off.After(inc.end) {
			inc.end = off
		}
	}
}

// affect makes service s alert from onset (when its condition starts) to
// clear: nRules rules of rules, each on the same nPods pods. The alert
// fires once its rule's for has elapsed (plus evaluation delay) and
// resolves an evaluation after clear. It may flicker once in between.
func (p *planner) affect(inc *incident, s int, rules []rule, nRules, nPods int, onset, clear time.Time, flicker float64) {
	tgs := p.targets(s, nPods)
	for _, ri := range p.r.Perm(len(rules))[:min(nRules, len(rules))] {
		ru := rules[ri]
		for _, tg := range tgs {
			on := onset.Add(ru.forDur + p.between(5*second, 45*second))
			off := clear.Add(p.between(10*second, 60*second))
			if !on.Before(off.Add(-minute)) {
				continue // the condition did not hold long enough to fire
			}
			spans := []span{{on, off}}
			if off.Sub(on) > 12*minute && p.chance(flicker) {
				// the condition dips below threshold for a moment
				mid := on.Add(p.between(3*minute, off.Sub(on)/2))
				spans = []span{{on, mid}, {mid.Add(p.between(90*second, 4*minute)), off}}
			}
			p.addAlert(inc, s, ru, tg, spans)
		}
	}
}

// conflicts reports whether services svcs active over [from, to] would be
// confused with another incident: the same service or a direct dependency
// alerting within margin of it. Independent incidents only ever coincide on
// unrelated parts of the graph.
func (p *planner) conflicts(svcs []int, from, to time.Time, skip *incident) bool {
	margin := p.cfg.Separation
	for _, inc := range p.incidents {
		if inc == skip || inc.end.Add(margin).Before(from) || inc.start.After(to.Add(margin)) {
			continue
		}
		for _, a := range svcs {
			for _, b := range inc.svcs {
				if p.g.adjacent(a, b) {
					return true
				}
			}
		}
	}
	return false
}

// changeLines gives the pending changes, sorted by time, their versions
// (a deploy bumps the minor version, a config change the patch, a
// rollback returns to the previous version), authors and commits.
func (p *planner) changeLines(pending []pendingChange) ([]time.Time, []change) {
	slices.SortStableFunc(pending, func(a, b pendingChange) int { return a.at.Compare(b.at) })
	minor := make([]int, len(p.g.svcs))
	patch := make([]int, len(p.g.svcs))
	prev := make([][2]int, len(p.g.svcs))
	for i := range minor {
		minor[i], patch[i] = 1+p.r.IntN(40), p.r.IntN(10)
	}
	var times []time.Time
	var out []change
	for _, c := range pending {
		s := c.svc
		switch c.kind {
		case "deploy":
			prev[s] = [2]int{minor[s], patch[s]}
			minor[s]++
			patch[s] = 0
		case "config":
			prev[s] = [2]int{minor[s], patch[s]}
			patch[s]++
		case "rollback":
			minor[s], patch[s] = prev[s][0], prev[s][1]
		}
		svc := p.g.svcs[s]
		commit := p.randString(hexDigits, 40)
		os := owners[svc.team]
		times = append(times, c.at)
		out = append(out, change{
			Service: svc.name,
			Kind:    c.kind,
			Version: fmt.Sprintf("v2.%d.%d", minor[s], patch[s]),
			Author:  os[p.r.IntN(len(os))],
			Commit:  commit,
			URL:     "https://git.example.com/" + svc.team + "/" + svc.name + "/commit/" + commit,
		})
	}
	return times, out
}

// spread is a cascade climbing from root to what depends on it: each
// dependent of an affected service is affected with probability prob
// (decaying by hop), its condition starting a hop delay later. It returns
// the affected services in the order they are reached and their onsets.
func (p *planner) spread(root int, onset time.Time, prob, decay float64, limit int) ([]int, map[int]time.Time, map[int]int) {
	order := []int{root}
	at := map[int]time.Time{root: onset}
	hop := map[int]int{root: 0}
	for i := 0; i < len(order) && len(order) < limit; i++ {
		s := order[i]
		deps := slices.Clone(p.g.svcs[s].dependents)
		p.r.Shuffle(len(deps), func(a, b int) { deps[a], deps[b] = deps[b], deps[a] })
		for _, d := range deps {
			if _, ok := at[d]; ok || len(order) >= limit {
				continue
			}
			if !p.chance(prob * pow(decay, hop[s])) {
				continue
			}
			hd := p.cfg.HopDelay
			at[d] = at[s].Add(p.between(hd/4, hd*7/4))
			hop[d] = hop[s] + 1
			order = append(order, d)
		}
	}
	return order, at, hop
}

func pow(x float64, n int) float64 {
	out := 1.0
	for range n {
		out *= x
	}
	return out
}

// pods is how many pods (or instances) of a service a failure shows on.
func (p *planner) pods() int {
	if p.chance(p.cfg.MultiPod) {
		return 2
	}
	return 1
}

// nRules is how many rules fire on a failing service.
func (p *planner) nRules() int { return []int{1, 1, 1, 2}[p.r.IntN(4)] }

// cascade: a failure of a store or a shared service climbs to the
// services that depend on it, and from them to theirs.
func (p *planner) cascade(t0 time.Time) *incident {
	// roots are drawn by how many services call them: shared stores and
	// core services fail into storms more visibly than leaves
	var roots []int
	for i, s := range p.g.svcs {
		if s.kind != kindEdge {
			for range len(s.dependents) {
				roots = append(roots, i)
			}
		}
	}
	root := roots[p.r.IntN(len(roots))]
	inc := &incident{kind: "cascade"}
	order, at, hop := p.spread(root, t0, p.cfg.CascadeSpread, 0.85, p.cfg.CascadeMax)
	clear := t0.Add(p.between(15*minute, 50*minute))
	p.affect(inc, root, rootRules[p.g.svcs[root].kind], p.nRules(), p.pods(), t0, clear, 0.1)
	for _, s := range order[1:] {
		recover := clear.Add(time.Duration(hop[s]) * p.between(20*second, 2*minute))
		p.affect(inc, s, symptomRules, p.nRules(), p.pods(), at[s], recover, 0.15)
	}
	return inc
}

// deploy: a deploy breaks the deployed service; its callers follow; a
// rollback ends it.
func (p *planner) deploy(t0 time.Time) *incident {
	var cands []int
	for i, s := range p.g.svcs {
		if !s.kind.isStore() {
			cands = append(cands, i)
		}
	}
	s := cands[p.r.IntN(len(cands))]
	inc := &incident{kind: "deploy"}
	onset := t0.Add(p.between(1*minute, 6*minute))
	rollback := onset.Add(p.between(10*minute, 25*minute))
	clear := rollback.Add(p.between(1*minute, 4*minute))
	order, at, hop := p.spread(s, onset, p.cfg.CascadeSpread*0.8, 0.5, p.cfg.CascadeMax/2)
	p.affect(inc, s, deployRules, p.nRules(), p.pods(), onset, clear, 0)
	for _, d := range order[1:] {
		p.affect(inc, d, symptomRules, 1, p.pods(), at[d], clear.Add(time.Duration(hop[d])*p.between(10*second, 90*second)), 0.1)
	}
	if len(inc.alerts) == 0 {
		return inc
	}
	inc.start = t0 // the deploy opens it
	inc.changes = []pendingChange{{t0, s, "deploy"}, {rollback, s, "rollback"}}
	return inc
}

// flap: one or two alerts of one service going on and off for a while.
func (p *planner) flap(t0 time.Time) *incident {
	s := p.r.IntN(len(p.g.svcs))
	rules := flapRules[p.g.svcs[s].kind.isStore()]
	ru := rules[p.r.IntN(len(rules))]
	inc := &incident{kind: "flap"}
	n := 1
	if p.chance(0.3) {
		n = 2
	}
	for _, tg := range p.targets(s, n) {
		var spans []span
		t := t0.Add(ru.forDur + p.between(0, 40*second))
		for range 4 + p.r.IntN(7) {
			off := t.Add(p.between(1*minute, 4*minute))
			spans = append(spans, span{t, off})
			t = off.Add(p.between(1*minute, 6*minute))
		}
		p.addAlert(inc, s, ru, tg, spans)
	}
	return inc
}

// refire: a failure that resolves, stays quiet for a while and comes back
// on the same pods: the same alerts firing again.
func (p *planner) refire(t0 time.Time) *incident {
	var cands []int
	for i, s := range p.g.svcs {
		if s.kind != kindEdge {
			cands = append(cands, i)
		}
	}
	s := cands[p.r.IntN(len(cands))]
	inc := &incident{kind: "refire"}
	order, at, _ := p.spread(s, t0, p.cfg.CascadeSpread*0.6, 0.4, 4)
	first := p.between(8*minute, 20*minute)
	gap := p.between(12*minute, 40*minute)
	second := p.between(8*minute, 25*minute)
	for i, d := range order {
		rules, k := symptomRules, 1
		if i == 0 {
			rules, k = rootRules[p.g.svcs[d].kind], p.nRules()
		}
		lag := at[d].Sub(t0)
		p.affect(inc, d, rules, k, p.pods(), at[d], t0.Add(first+lag/2), 0)
	}
	// the same alerts come back after the gap
	back := t0.Add(first + gap)
	for _, a := range inc.alerts {
		if len(a.spans) == 0 || !p.chance(0.85) {
			continue
		}
		last := a.spans[len(a.spans)-1]
		on := back.Add(last.on.Sub(t0) + p.between(0, 60*second))
		if !on.After(last.off.Add(5 * minute)) {
			continue
		}
		a.spans = append(a.spans, span{on, on.Add(second)})
		if on.Add(second).After(inc.end) {
			inc.end = on.Add(second)
		}
	}
	return inc
}
