package issuegen

import (
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/aiops-dev/aiops/pkg/event"
)

// episode is one firing of an alert: from its startsAt to its endsAt (an
// end past the horizon: still firing when the storm's recording stops).
type episode struct{ start, end time.Time }

// alert is one label set (one Alertmanager fingerprint) and when it fires.
type alert struct {
	labels, annotations map[string]string
	url                 string
	fp                  string
	incident            string
	episodes            []episode
}

// change is a change event.
type change struct {
	at                                          time.Time
	service, kind, version, author, commit, url string
}

// span is when a service belongs to an incident (or carries noise).
type span struct {
	from, to time.Time
	incident string
}

// rollout is a set of pods a service runs from a time on.
type rollout struct {
	at   time.Time
	pods []string
}

// planner lays out one storm: the incidents, the noise, the changes.
type planner struct {
	cfg        Config
	seed       uint64
	rng        *rand.Rand
	w          *world
	alerts     []*alert
	byFP       map[string]*alert
	changes    []change
	busy       map[string][]span      // service → incident spans
	harmlessAt map[string][]time.Time // service → times of harmless changes
	rollouts   map[string][]rollout
	horizon    time.Time
	nodes      []string // node addresses, for node-level noise
}

// evaluation is Prometheus's rule evaluation interval.
const evaluation = 30 * time.Second

// minFirstEpisode is the shortest first firing: an alert first seen as
// already resolved (it fired and resolved between two flushes of its
// group) would reach a receiver without ever firing; real rules with a
// `for` rarely do that, and no storm here does.
const minFirstEpisode = 7 * time.Minute

// margin keeps an incident's services apart from other incidents, noise
// and harmless changes before and after it, so the truth stays decidable.
const margin = 10 * time.Minute

// evalAt is the first evaluation of rule name at or after t: each rule
// group evaluates on its own phase.
func (p *planner) evalAt(name string, t time.Time) time.Time {
	h := fnv.New64a()
	fmt.Fprintf(h, "%d/%s", p.seed, name)
	phase := time.Duration(h.Sum64() % uint64(evaluation/time.Millisecond) * uint64(time.Millisecond))
	base := p.cfg.Start.Add(phase - evaluation)
	k := (t.Sub(base) + evaluation - 1) / evaluation
	return base.Add(k * evaluation)
}

func (p *planner) between(lo, hi time.Duration) time.Duration {
	if hi <= lo {
		return lo
	}
	return lo + time.Duration(p.rng.Int64N(int64(hi-lo)))
}

// podsAt are the pods service s runs at t.
func (p *planner) podsAt(s *service, t time.Time) []string {
	pods, at := s.pods, time.Time{}
	for _, r := range p.rollouts[s.name] { // recorded out of time order
		if !r.at.After(t) && !r.at.Before(at) {
			pods, at = r.pods, r.at
		}
	}
	return pods
}

// free reports whether service name can take part in an incident or carry
// noise over [from, to]: it belongs to no other incident then, nor within
// margin of it, and none of its neighbours (what it calls, what calls it)
// is failing in another incident then, so incidents at the same moment
// never touch one another in the dependency graph.
func (p *planner) free(name string, from, to time.Time) bool {
	s := p.w.services[name]
	for _, n := range append(append([]string{name}, s.deps...), s.callers...) {
		m := time.Duration(0)
		if n == name {
			m = margin
		}
		for _, sp := range p.busy[n] {
			if sp.from.Add(-m).Before(to) && from.Before(sp.to.Add(m)) {
				return false
			}
		}
	}
	return true
}

// quiet reports whether no harmless change touched service name in the
// half hour before t (or just after): an incident's first service never
// has one, so a change right before an incident on its first service is
// the one that caused it.
func (p *planner) quiet(name string, t time.Time) bool {
	for _, at := range p.harmlessAt[name] {
		if at.After(t.Add(-3*margin)) && at.Before(t.Add(margin)) {
			return false
		}
	}
	return true
}

// incident is one being built.
type incident struct {
	id        string
	start     time.Time // the first service's impact
	mitigated time.Time // when the fix lands
	until     time.Time // the latest any of its alerts may fire (a recurrence included)
	refire    bool      // the fix does not hold: the alerts fire again
	flapping  bool      // its alerts all flap already
	alerts    []*alert
	roots     []*alert // the first service's own alerts
	services  []string
	impact    map[string]time.Time
	parent    map[string]string // caller → the failing service it calls
}

// begin draws an incident's course: how long until the fix, and whether
// the fix holds, so the services it takes are known free for all of it.
func (p *planner) begin(id string, t time.Time) *incident {
	inc := &incident{id: id, start: t, impact: map[string]time.Time{}, parent: map[string]string{}}
	inc.mitigated = t.Add(p.between(p.cfg.MinDuration, p.cfg.MaxDuration))
	inc.refire = p.rng.Float64() < p.cfg.Refire
	inc.until = inc.mitigated.Add(10 * time.Minute)
	if inc.refire {
		inc.until = inc.until.Add(45 * time.Minute)
	}
	return inc
}

// window is the stretch an incident keeps its services for.
func (inc *incident) window() (time.Time, time.Time) {
	return inc.start.Add(-5 * time.Minute), inc.until
}

// join makes service name part of inc, failing at t because of parent
// ("" for the first service).
func (inc *incident) join(name, parent string, t time.Time) {
	inc.services = append(inc.services, name)
	inc.impact[name] = t
	if parent != "" {
		inc.parent[name] = parent
	}
}

// add fires rule r on service s (instance or pod i, upstream up), its
// condition holding from onset to end. A label set already taken (by this
// storm's other incidents or noise) is skipped: a fingerprint belongs to
// one incident.
func (p *planner) add(inc *incident, r rule, s *service, i int, up string, onset, end time.Time) *alert {
	labels := instanceLabels(r, s, p.podsAt(s, onset), i, up)
	fp := event.AlertmanagerFingerprint(labels)
	if p.byFP[fp] != nil && r.scope != perPod && r.scope != perInstance {
		// The rule has a sibling of the other severity (a warning and a
		// critical threshold, as estates write them): when one fired in
		// an earlier incident, the other fires in this one.
		r.severity = map[string]string{sevCritical: sevWarning, sevWarning: sevCritical}[r.severity]
		labels = instanceLabels(r, s, p.podsAt(s, onset), i, up)
		fp = event.AlertmanagerFingerprint(labels)
	}
	if p.byFP[fp] != nil {
		return nil
	}
	start := p.evalAt(r.name, onset.Add(r.hold))
	stop := p.evalAt(r.name, end)
	if stop.Sub(start) < minFirstEpisode {
		stop = p.evalAt(r.name, start.Add(minFirstEpisode+p.between(0, 3*time.Minute)))
	}
	a := &alert{
		labels:   labels,
		fp:       fp,
		url:      generatorURL(r.expr),
		incident: inc.id,
		episodes: []episode{{start, stop}},
		annotations: map[string]string{
			"summary":     fill(r.summary, labels),
			"description": fill(r.summary, labels) + " (" + r.expr + ").",
			"runbook_url": runbookBase + r.name,
		},
	}
	p.byFP[fp] = a
	p.alerts = append(p.alerts, a)
	inc.alerts = append(inc.alerts, a)
	return a
}

// discard takes back an incident that could not be laid out.
func (p *planner) discard(inc *incident) {
	for _, a := range inc.alerts {
		delete(p.byFP, a.fp)
	}
	p.alerts = slices.DeleteFunc(p.alerts, func(a *alert) bool { return a.incident == inc.id })
}

// fireMode fires the uses of a mode on service s impacted at t, each
// condition lasting until end (plus a recovery lag). Which pods or
// instances fire is drawn (after a failover the primary is another pod).
func (p *planner) fireMode(inc *incident, uses []use, s *service, t, end time.Time, up string) []*alert {
	var out []*alert
	rot := p.rng.IntN(s.replicas)
	for _, u := range uses {
		if p.rng.Float64() >= u.p {
			continue
		}
		n := max(u.n, 1)
		if u.r.scope == perPod {
			n = min(n, 1+p.rng.IntN(n))
		}
		for k := range n {
			onset := t.Add(p.between(u.lead, u.late)).Add(p.between(0, 40*time.Second))
			stop := end.Add(p.between(0, 4*time.Minute))
			if a := p.add(inc, u.r, s, u.from+k+rot, up, onset, stop); a != nil {
				out = append(out, a)
			}
		}
	}
	return out
}

// fireRoot fires mode m on inc's first service, its main symptom (the
// mode's first rule) surely; false when that could not fire (its label
// sets taken by earlier incidents).
func (p *planner) fireRoot(inc *incident, m mode) bool {
	s := p.w.services[inc.services[0]]
	main := m.uses[0]
	main.p = 1
	inc.roots = p.fireMode(inc, []use{main}, s, inc.start, inc.mitigated, "")
	if len(inc.roots) == 0 {
		return false
	}
	inc.roots = append(inc.roots, p.fireMode(inc, m.uses[1:], s, inc.start, inc.mitigated, "")...)
	return true
}

// spread walks the callers of the services already in inc, breadth first,
// each joining with probability fanout·spread^depth: the cascade over the
// dependency graph. A caller that is not free stops the walk there.
func (p *planner) spread(inc *incident, m mode, spread float64, maxDepth int) {
	from, to := inc.window()
	frontier := slices.Clone(inc.services)
	prob := m.fanout
	for depth := 1; depth <= maxDepth && len(frontier) > 0; depth++ {
		var next []string
		for _, name := range frontier {
			for _, c := range p.w.services[name].callers {
				if _, in := inc.impact[c]; in || !p.free(c, from, to) || p.rng.Float64() >= prob*math.Pow(spread, float64(depth)) {
					continue
				}
				hop := m.hop
				if p.w.services[c].kind == kindWorker {
					hop = slowHop
				}
				inc.join(c, name, inc.impact[name].Add(p.between(hop[0], hop[1])))
				next = append(next, c)
			}
		}
		frontier = next
	}
}

// fireCallers fires the symptoms of inc's callers: each shows at least
// its error rate.
func (p *planner) fireCallers(inc *incident) {
	for _, name := range inc.services {
		up, ok := inc.parent[name]
		if !ok {
			continue
		}
		s := p.w.services[name]
		end := inc.mitigated.Add(p.between(0, time.Duration(1+len(inc.services))*30*time.Second))
		if len(p.fireMode(inc, callerUses[s.kind], s, inc.impact[name], end, up)) == 0 {
			r := rHighErrorRate
			if s.kind == kindWorker {
				r = rJobErrors
			}
			p.add(inc, r, s, 0, up, inc.impact[name].Add(p.between(0, 40*time.Second)), end)
		}
		// Synthetic probes of the public URLs behind an edge service fail
		// or slow down with it.
		for _, url := range probes[name] {
			if p.rng.Float64() < 0.5 {
				r := rProbeFailed
				if p.rng.IntN(2) == 0 {
					r = rProbeSlow
				}
				p.add(inc, r, s, 0, url, inc.impact[name].Add(p.between(0, time.Minute)), end)
			}
		}
	}
}

// pickService draws a service free for inc and quiet before it, with
// weight w.
func (p *planner) pickService(inc *incident, weight func(*service) float64) *service {
	from, to := inc.window()
	var cands []*service
	var ws []float64
	total := 0.0
	for _, name := range p.w.names {
		s := p.w.services[name]
		w := weight(s)
		if w <= 0 || !p.free(name, from, to) || !p.quiet(name, inc.start) {
			continue
		}
		cands = append(cands, s)
		ws = append(ws, w)
		total += w
	}
	if len(cands) == 0 {
		return nil
	}
	x := p.rng.Float64() * total
	for i, w := range ws {
		if x < w {
			return cands[i]
		}
		x -= w
	}
	return cands[len(cands)-1]
}

// rootWeight favours shared dependencies whose callers are free as the
// cause of a cascade: a service nothing calls fails alone (a local
// incident), and one whose callers all take part in other incidents then
// would cascade nowhere.
func (p *planner) rootWeight(inc *incident) func(*service) float64 {
	from, to := inc.window()
	return func(s *service) float64 {
		w := 0.0
		for _, c := range s.callers {
			if p.free(c, from, to) {
				w++
			}
		}
		if s.kind.stateful() {
			w *= 2
		}
		return w
	}
}

func anyService(*service) float64 { return 1 }

func appService(s *service) float64 {
	if s.kind.stateful() {
		return 0
	}
	return 1
}

// finish flaps a member, fires the incident again when its fix does not
// hold, checks that each of its services is free for as long as it
// actually fires (the draw was made on an estimate), and marks them busy;
// false when one is not (the caller discards the incident).
func (p *planner) finish(inc *incident) bool {
	if p.rng.Float64() < p.cfg.FlapMember && len(inc.alerts) > 1 && !inc.flapping {
		a := inc.alerts[1+p.rng.IntN(len(inc.alerts)-1)]
		a.episodes = p.flaps(a.episodes[0].start, a.episodes[0].end)
	}
	if inc.refire {
		// The cause comes back: the first service's alerts and most of
		// the others fire again, in about the same order.
		again := inc.mitigated.Add(p.between(4*time.Minute, 15*time.Minute))
		last := again.Add(p.between(8*time.Minute, 25*time.Minute))
		for _, a := range inc.alerts {
			if !slices.Contains(inc.roots, a) && p.rng.Float64() >= 0.6 {
				continue
			}
			prev := a.episodes[len(a.episodes)-1].end
			start := again.Add(a.episodes[0].start.Sub(inc.start) / 2)
			if start.Before(prev.Add(time.Minute)) {
				start = prev.Add(time.Minute + p.between(0, time.Minute))
			}
			end := last.Add(p.between(0, 3*time.Minute))
			if end.Before(start.Add(3 * time.Minute)) {
				end = start.Add(3 * time.Minute)
			}
			a.episodes = append(a.episodes, episode{start, end})
		}
	}
	spans := make([]span, len(inc.services))
	for i, name := range inc.services {
		from, to := inc.impact[name], inc.mitigated
		for _, a := range inc.alerts {
			if a.labels["service"] != name {
				continue
			}
			if first := a.episodes[0].start; first.Before(from) {
				from = first
			}
			if last := a.episodes[len(a.episodes)-1].end; last.After(to) {
				to = last
			}
		}
		if !p.free(name, from, to) {
			return false
		}
		spans[i] = span{from, to, inc.id}
	}
	for i, name := range inc.services {
		p.busy[name] = append(p.busy[name], spans[i])
	}
	return true
}

// flaps cuts [start, end) into a flapping alert's episodes: a first one
// long enough to be notified, then short ones with short gaps, at least
// three and at most ten, the last starting before end.
func (p *planner) flaps(start, end time.Time) []episode {
	first := start.Add(minFirstEpisode + p.between(0, 2*time.Minute))
	eps := []episode{{start, first}}
	t := first
	for n := 0; n < 10; n++ {
		on := t.Add(p.between(time.Minute, 5*time.Minute))
		if on.After(end) && n >= 3 {
			break
		}
		off := on.Add(p.between(2*time.Minute, 6*time.Minute))
		eps = append(eps, episode{on, off})
		t = off
	}
	return eps
}

// tries is how many first services an incident draws before it gives up
// (every candidate's alerts taken by earlier incidents).
const tries = 6

// cascade: a shared service fails and its callers, and theirs, fail with it.
func (p *planner) cascade(id string, t time.Time) {
	for range tries {
		inc := p.begin(id, t)
		root := p.pickService(inc, p.rootWeight(inc))
		if root == nil {
			return
		}
		modes := failureModes[root.kind]
		m := modes[p.rng.IntN(len(modes))]
		inc.join(root.name, "", t)
		p.spread(inc, m, p.cfg.Spread, 5)
		if !p.fireRoot(inc, m) {
			p.discard(inc)
			continue
		}
		p.fireCallers(inc)
		if !p.finish(inc) {
			p.discard(inc)
			continue
		}
		return
	}
}

// local: one service fails on its own and nothing else shows it.
func (p *planner) local(id string, t time.Time) {
	for range tries {
		inc := p.begin(id, t)
		s := p.pickService(inc, anyService)
		if s == nil {
			return
		}
		modes := failureModes[s.kind]
		inc.join(s.name, "", t)
		if !p.fireRoot(inc, modes[p.rng.IntN(len(modes))]) || !p.finish(inc) {
			p.discard(inc)
			continue
		}
		return
	}
}

// deploy: a change to a service breaks it, and maybe its callers; a
// rollback ends it.
func (p *planner) deploy(id string, t time.Time) {
	for range tries {
		inc := p.begin(id, t)
		inc.until = inc.until.Add(20 * time.Minute) // the alerts follow the change by up to 20 minutes
		s := p.pickService(inc, appService)
		if s == nil {
			return
		}
		modes := deployModes
		if s.kind == kindWorker {
			modes = failureModes[kindWorker]
		}
		m := modes[p.rng.IntN(len(modes))]
		kind := "deploy"
		if x := p.rng.Float64(); m.name != "crash on start" && m.name != "memory leak" && x < 0.2 {
			kind = "config"
			if x < 0.08 {
				kind = "feature_flag"
			}
		}
		// The change lands first; the alerts follow once the rollout is
		// through (slow regressions later).
		impact := t.Add(p.between(time.Minute, 6*time.Minute))
		if m.name == "memory leak" || m.name == "slow regression" {
			impact = t.Add(p.between(8*time.Minute, 20*time.Minute))
		}
		inc.start = impact
		inc.mitigated = inc.mitigated.Add(impact.Sub(t))
		prev, nChanges, nRollouts := s.version, len(p.changes), len(p.rollouts[s.name])
		p.recordChange(s, t, kind, false)
		inc.join(s.name, "", impact)
		p.spread(inc, m, p.cfg.Spread*0.7, 2)
		ok := p.fireRoot(inc, m)
		if ok {
			p.fireCallers(inc)
			ok = p.finish(inc)
		}
		if !ok {
			p.discard(inc)
			s.version, p.changes, p.rollouts[s.name] = prev, p.changes[:nChanges], p.rollouts[s.name][:nRollouts]
			continue
		}
		// The rollback (the flag off, the config reverted) is the fix.
		s.version = prev
		p.recordChange(s, inc.mitigated, kind, true)
		return
	}
}

// flapping: a service hovers around a threshold; its alerts flap together.
func (p *planner) flapping(id string, t time.Time) {
	for range tries {
		inc := p.begin(id, t)
		inc.refire, inc.flapping = false, true
		inc.until = t.Add(p.cfg.MaxDuration + time.Hour) // the flapping may outlast the fix
		s := p.pickService(inc, anyService)
		if s == nil {
			return
		}
		modes := failureModes[s.kind]
		m := modes[p.rng.IntN(len(modes))]
		inc.join(s.name, "", t)
		end := t.Add(p.between(30*time.Minute, p.cfg.MaxDuration+10*time.Minute))
		n := 2 + p.rng.IntN(2)
		for _, u := range m.uses[:min(len(m.uses), n)] {
			u.p, u.lead, u.late = 1, 0, 30*time.Second
			inc.roots = append(inc.roots, p.fireMode(inc, []use{u}, s, t, end, "")...)
		}
		if len(inc.roots) == 0 {
			p.discard(inc)
			continue
		}
		// The alerts flap in step: one pattern, each alert a little off.
		pattern := p.flaps(inc.roots[0].episodes[0].start, end)
		for _, a := range inc.alerts {
			shift := p.between(-20*time.Second, 20*time.Second)
			a.episodes = a.episodes[:0]
			for _, e := range pattern {
				name := a.labels["alertname"]
				a.episodes = append(a.episodes, episode{p.evalAt(name, e.start.Add(shift)), p.evalAt(name, e.end.Add(shift))})
			}
		}
		if !p.finish(inc) {
			p.discard(inc)
			continue
		}
		return
	}
}

// Change authors: people and the bots that deploy for them.
var authors = []string{"argocd-bot", "renovate[bot]", "j.moreau", "a.kowalski", "s.okafor", "m.lindqvist", "r.tanaka", "p.haddad", "e.novak", "d.ferreira"}

// flags a feature-flag change toggles.
var flags = []string{"new-pricing-engine", "async-checkout", "grpc-client-v2", "cache-warmup", "batch-writes", "retry-budget", "smart-routing"}

// recordChange records a change to s at t (revert: it takes back the one
// before); a deploy bumps the version and rolls out new pods.
func (p *planner) recordChange(s *service, t time.Time, kind string, revert bool) {
	sha := make([]byte, 20)
	for i := range sha {
		sha[i] = byte(p.rng.IntN(256))
	}
	commit := fmt.Sprintf("%x", sha)
	c := change{at: t, service: s.name, kind: kind, commit: commit, author: authors[p.rng.IntN(len(authors))]}
	switch kind {
	case "deploy":
		if !revert {
			var major, minor, patch int
			fmt.Sscanf(s.version, "v%d.%d.%d", &major, &minor, &patch)
			if p.rng.IntN(4) == 0 {
				minor, patch = minor+1, 0
			} else {
				patch++
			}
			s.version = fmt.Sprintf("v%d.%d.%d", major, minor, patch)
		}
		c.version = s.version
		c.url = fmt.Sprintf("https://argocd.shop.example.com/applications/%s?revision=%s", s.name, commit)
		p.rollouts[s.name] = append(p.rollouts[s.name], rollout{t, podNames(p.rng, s)})
	case "config":
		c.version = fmt.Sprintf("config-%s", commit[:8])
		c.url = fmt.Sprintf("https://git.shop.example.com/%s/%s-config/-/commit/%s", s.team, s.name, commit)
	case "feature_flag":
		state := "on"
		if revert {
			state = "off"
		}
		c.version = flags[p.rng.IntN(len(flags))] + "=" + state
		c.url = fmt.Sprintf("https://flags.shop.example.com/audit/%s", commit[:12])
	default:
		c.version = fmt.Sprintf("%s-%s", s.version, commit[:7])
		c.url = fmt.Sprintf("https://git.shop.example.com/platform/infrastructure/-/commit/%s", commit)
	}
	if revert {
		c.author = authors[2+p.rng.IntN(len(authors)-2)] // a person rolls back
	}
	p.changes = append(p.changes, c)
}

// harmless: changes that break nothing, anywhere and any time.
func (p *planner) harmless() {
	for range p.cfg.HarmlessChanges {
		t := p.cfg.Start.Add(p.between(0, p.cfg.Span))
		s := p.w.services[p.w.names[p.rng.IntN(len(p.w.names))]]
		kind := "deploy"
		switch x := p.rng.Float64(); {
		case s.kind.stateful() || x < 0.05:
			kind = "infrastructure"
		case x < 0.25:
			kind = "config"
		case x < 0.4:
			kind = "feature_flag"
		}
		p.recordChange(s, t, kind, false)
		p.harmlessAt[s.name] = append(p.harmlessAt[s.name], t)
	}
}
