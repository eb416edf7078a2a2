package opsgen

import (
	"math/rand/v2"
	"slices"
	"time"
)

// scheduleIncidents places the incidents over the storm (a Poisson
// process; some start right after another one, on an unrelated part of
// the estate) and makes their alerts, in time order.
func (g *gen) scheduleIncidents() {
	var starts []time.Time
	first, last := g.start.Add(5*time.Minute), g.end.Add(-20*time.Minute)
	rate := g.cfg.IncidentsPerHour / float64(time.Hour)
	for t := first.Add(time.Duration(g.r.ExpFloat64() / rate)); t.Before(last); t = t.Add(time.Duration(g.r.ExpFloat64() / rate)) {
		starts = append(starts, t)
		if g.chance(g.cfg.Concurrent) {
			starts = append(starts, t.Add(g.uniform(0, 3*time.Minute)))
		}
	}
	slices.SortFunc(starts, func(a, b time.Time) int { return a.Compare(b) })

	k := g.cfg.Kinds
	weights := []float64{k.Cascade, k.Deploy, k.Replicas, k.Node, k.Flap, k.Refire}
	makers := []func(*incident){g.cascade, g.deploy, g.replicas, g.node, g.flap, g.refire}
	names := []string{"cascade", "deploy", "replicas", "node", "flap", "refire"}
	for _, t := range starts {
		i := g.weighted(weights)
		inc := &incident{kind: names[i], start: t, services: map[*service]bool{}}
		makers[i](inc)
		if len(inc.alerts) == 0 {
			continue
		}
		inc.until = inc.start
		for _, a := range inc.alerts {
			for _, sp := range a.spans {
				if sp.end.IsZero() {
					inc.until = g.end
				} else if sp.end.After(inc.until) {
					inc.until = sp.end
				}
			}
		}
		g.incidents = append(g.incidents, inc)
	}
}

// busy reports whether s takes part in an incident around [from, to]:
// two incidents at once stay on separate services, so that the truth is
// unambiguous.
func (g *gen) busy(s *service, from, to time.Time) bool {
	for _, inc := range g.incidents {
		if inc.services[s] && from.Before(inc.until.Add(15*time.Minute)) && to.After(inc.start.Add(-15*time.Minute)) {
			return true
		}
	}
	return false
}

// pickCause draws the service an incident starts from, with weights,
// among those free around [from, to] that caused no earlier incident (the
// same thing failing again the same day is that incident coming back);
// nil when there is none.
func (g *gen) pickCause(from, to time.Time, weight func(*service) float64) *service {
	var cands []*service
	var ws []float64
	for _, s := range g.services {
		w := weight(s)
		if w <= 0 || g.causes[s] || g.busy(s, from, to) {
			continue
		}
		cands = append(cands, s)
		ws = append(ws, w)
	}
	if len(cands) == 0 {
		return nil
	}
	s := cands[g.weighted(ws)]
	g.causes[s] = true
	return s
}

// impact is how a failure reaches one service: from when to when, at how
// many hops from the root, through which dependency.
type impact struct {
	svc             *service
	hop             int
	via             *service
	onset, recovery time.Time
	slow            bool // the failure shows as latency rather than errors
}

// propagate walks up the callers of the root: a caller at hop h is hit
// with probability probs[h-1]; its trouble starts within a minute and a
// half of its dependency's and ends a little after it, earlier for some
// (retries, fallbacks, circuit breakers).
func (g *gen) propagate(root impact, probs []float64) []impact {
	var out []impact
	seen := map[*service]bool{root.svc: true}
	frontier := []impact{root}
	for hop := 1; hop <= len(probs) && len(frontier) > 0; hop++ {
		var next []impact
		for _, im := range frontier {
			for _, c := range im.svc.callers {
				if seen[c] {
					continue
				}
				seen[c] = true
				if !g.chance(probs[hop-1]) || g.busy(c, root.onset, root.recovery) {
					continue
				}
				ci := impact{svc: c, hop: hop, via: im.svc, slow: im.slow}
				ci.onset = im.onset.Add(g.uniform(5*time.Second, 45*time.Second))
				ci.recovery = im.recovery.Add(g.uniform(0, 3*time.Minute))
				if g.chance(0.2) {
					ci.recovery = ci.onset.Add(time.Duration(float64(ci.recovery.Sub(ci.onset)) * (0.3 + 0.5*g.r.Float64())))
				}
				next = append(next, ci)
			}
		}
		out = append(out, next...)
		frontier = next
	}
	return out
}

// modes of failure per role; the slow ones show as latency upstream.
var modes = map[role][]string{
	rolePostgres:    {"failover", "connections", "slow"},
	roleRedis:       {"down", "memory"},
	roleKafka:       {"broker", "broker", "latency"},
	roleElastic:     {"red", "heap"},
	roleObjectStore: {"node"},
	roleClickHouse:  {"replica", "queries"},
	roleAdapter:     {"provider"},
	roleHTTP:        {"errors", "errors", "crash", "latency", "oom"},
	roleEdge:        {"errors", "latency", "crash"},
	roleWorker:      {"errors", "crash", "oom"},
}

var slowModes = map[string]bool{"slow": true, "memory": true, "latency": true, "heap": true, "queries": true}

// problem makes the alerts of a service that fails in mode from onset to
// recovery: the alerts of the failing thing itself.
func (g *gen) problem(o owner, s *service, mode string, onset, recovery time.Time) {
	pods := s.podsAt(onset)
	port := exporterPort[s.role]
	some := func(n int) []pod {
		ps := slices.Clone(pods)
		g.r.Shuffle(len(ps), func(i, j int) { ps[i], ps[j] = ps[j], ps[i] })
		return ps[:min(n, len(ps))]
	}
	switch mode {
	case "failover":
		subj, l := instanceLabels(pods[0], port)
		g.cond(o, s, "pg-down", subj, l, onset, recovery)
		for _, p := range pods[1:] {
			subj, l := instanceLabels(p, port)
			g.cond(o, s, "pg-lag", subj, l, recovery, recovery.Add(g.uniform(5*time.Minute, 25*time.Minute)))
		}
	case "connections":
		subj, l := instanceLabels(pods[0], port)
		g.cond(o, s, "pg-conns", subj, l, onset, recovery)
	case "slow":
		subj, l := instanceLabels(pods[0], port)
		g.cond(o, s, "pg-slow", subj, l, onset, recovery)
		if g.chance(0.5) {
			g.cond(o, s, "pg-deadlocks", subj, l, onset.Add(g.uniform(0, 5*time.Minute)), recovery)
		}
	case "down":
		subj, l := instanceLabels(pick(g, pods), port)
		g.cond(o, s, "redis-down", subj, l, onset, recovery)
	case "memory":
		subj, l := instanceLabels(pods[0], port)
		g.cond(o, s, "redis-mem", subj, l, onset.Add(-g.uniform(0, 10*time.Minute)), recovery)
		g.cond(o, s, "redis-rejected", subj, l, onset, recovery)
	case "broker":
		p := pick(g, pods)
		g.cond(o, s, "kafka-broker", p.name, map[string]string{"instance": p.name + ":" + port, "pod": p.name}, onset, recovery)
		g.cond(o, s, "kafka-urp", "", nil, onset, recovery)
		if g.chance(0.3) {
			g.cond(o, s, "kafka-offline", "", nil, onset, onset.Add(g.uniform(2*time.Minute, 8*time.Minute)))
		}
	case "latency":
		if s.role == roleKafka {
			for _, p := range some(2) {
				g.cond(o, s, "kafka-latency", p.name, map[string]string{"instance": p.name + ":" + port, "pod": p.name}, onset, recovery)
			}
			break
		}
		if s.role == roleWorker {
			l := consumerLabels(s)
			g.cond(o, s, "lag", l["topic"], l, onset, recovery)
		} else {
			g.cond(o, s, "latency", "", g.anyRoute(s), onset, recovery)
		}
		for _, p := range some(1 + g.r.IntN(2)) {
			subj, l := podLabels(s, p)
			g.cond(o, s, "throttle", subj, l, onset, recovery)
		}
		if g.chance(0.5) {
			g.cond(o, s, "hpa", s.namespace+"/"+s.name, map[string]string{"horizontalpodautoscaler": s.name}, onset, recovery)
		}
		if g.chance(0.3) && s.role != roleWorker {
			g.cond(o, s, "errors", "", g.anyRoute(s), onset.Add(g.uniform(0, 5*time.Minute)), recovery)
		}
	case "red":
		g.cond(o, s, "es-red", pods[0].name, map[string]string{"instance": pods[0].name + ":" + port}, onset, recovery)
		g.cond(o, s, "es-yellow", pods[0].name, map[string]string{"instance": pods[0].name + ":" + port}, recovery, recovery.Add(g.uniform(5*time.Minute, 30*time.Minute)))
		if g.chance(0.6) {
			subj, l := instanceLabels(pick(g, pods), port)
			g.cond(o, s, "es-heap", subj, l, onset.Add(-g.uniform(0, 5*time.Minute)), recovery)
		}
	case "heap":
		for _, p := range some(1 + g.r.IntN(2)) {
			subj, l := instanceLabels(p, port)
			g.cond(o, s, "es-heap", subj, l, onset, recovery)
		}
		g.cond(o, s, "es-yellow", pods[0].name, map[string]string{"instance": pods[0].name + ":" + port}, onset.Add(g.uniform(2*time.Minute, 8*time.Minute)), recovery)
	case "node":
		p := pick(g, pods)
		subj, l := instanceLabels(p, port)
		g.cond(o, s, "minio-node", subj, l, onset, recovery)
		if g.chance(0.5) {
			g.cond(o, s, "minio-disk", subj, l, onset, recovery)
		}
	case "replica", "queries":
		p := pick(g, pods)
		subj, l := instanceLabels(p, port)
		g.cond(o, s, "ch-"+mode, subj, l, onset, recovery)
	case "provider":
		l := map[string]string{"provider": s.extra}
		g.cond(o, s, "provider", s.extra, l, onset, recovery)
		if g.chance(0.6) {
			url := "https://api." + s.extra + ".com/health"
			g.cond(o, s, "probe", url, map[string]string{"instance": url}, onset.Add(g.uniform(0, time.Minute)), recovery)
		}
		if g.chance(0.5) {
			g.cond(o, s, "errors", "", g.anyRoute(s), onset.Add(g.uniform(0, time.Minute)), recovery)
		}
	case "errors":
		g.errorAlert(o, s, onset, recovery)
		if g.chance(0.4) && s.role != roleWorker {
			g.cond(o, s, "latency", "", g.anyRoute(s), onset, recovery)
		}
		if s.tier == 1 && s.role != roleWorker && g.teams[s.team].slo {
			g.cond(o, s, "slo-fast", "", map[string]string{"slo": "availability", "long_window": "1h"}, onset, recovery)
			if g.chance(0.2) {
				g.cond(o, s, "slo-slow", "", map[string]string{"slo": "availability", "long_window": "6h"}, onset, recovery)
			}
		}
	case "crash":
		for _, p := range some(1 + g.r.IntN(3)) {
			subj, l := podLabels(s, p)
			g.cond(o, s, "crashloop", subj, l, onset.Add(g.uniform(0, 2*time.Minute)), recovery)
		}
		g.cond(o, s, "replicas", s.namespace+"/"+s.name, map[string]string{"deployment": s.name}, onset, recovery)
		if g.chance(0.5) {
			g.errorAlert(o, s, onset, recovery)
		}
	case "oom":
		kill := onset
		for _, p := range some(2 + g.r.IntN(2)) {
			subj, l := podLabels(s, p)
			g.cond(o, s, "oom", subj, l, kill, kill.Add(g.uniform(10*time.Second, 2*time.Minute)))
			if g.chance(0.3) {
				g.cond(o, s, "crashloop", subj, l, kill, recovery)
			}
			kill = kill.Add(g.uniform(time.Minute, 10*time.Minute))
		}
		if g.chance(0.4) {
			g.errorAlert(o, s, onset, recovery)
		}
	}
}

// errorAlert fires the error alert that fits s: 5xx for an API, failed
// messages for a worker.
func (g *gen) errorAlert(o owner, s *service, onset, recovery time.Time) {
	if s.role == roleWorker {
		g.cond(o, s, "worker-errors", "", nil, onset, recovery)
		return
	}
	g.cond(o, s, "errors", "", g.anyRoute(s), onset, recovery)
}

// symptoms makes the alerts of a caller suffering from its dependency.
func (g *gen) symptoms(o owner, im impact) {
	s, dep := im.svc, im.via
	n := 0
	fire := func(id, subj string, l map[string]string, onset time.Time) {
		if g.cond(o, s, id, subj, l, onset, im.recovery) != nil {
			n++
		}
	}
	if im.hop == 1 {
		switch {
		case dep.role == rolePostgres && g.chance(0.6):
			fire("dbpool", dep.name, map[string]string{"datasource": dep.name}, im.onset)
		case dep.role == roleKafka && s.role == roleWorker:
			l := consumerLabels(s)
			fire("lag", l["topic"], l, im.onset)
		case dep.role == roleKafka && g.chance(0.6):
			topic := s.extra
			if topic == "" {
				topic = s.team + ".events"
			}
			fire("produce", topic, map[string]string{"topic": topic}, im.onset)
		case dep.role != roleRedis && dep.role != roleKafka && g.chance(0.7):
			fire("upstream", dep.name, map[string]string{"upstream": dep.name}, im.onset)
		}
	}
	// an API shows a failing dependency on the routes that call it (when
	// its team alerts per route), a worker as errors and a growing backlog
	errID, latID := "errors", "latency"
	errLabels := g.routeVia(s, dep)
	latLabels := errLabels
	if s.role == roleWorker {
		errID, latID = "worker-errors", "lag"
		errLabels, latLabels = nil, consumerLabels(s)
	}
	pErr, pLat := 0.65, 0.35
	if im.slow {
		pErr, pLat = 0.3, 0.75
	}
	if g.chance(pErr) {
		fire(errID, "", errLabels, im.onset)
	}
	if g.chance(pLat) {
		fire(latID, latLabels["topic"], latLabels, im.onset)
		if a := g.byFP[g.fingerprint(s, latID, latLabels)]; a != nil && a.inc == o.inc && g.chance(0.3) {
			g.flutter(a) // latency hovering around its threshold
		}
	}
	if s.tier == 1 && s.role != roleWorker && g.teams[s.team].slo {
		if g.chance(0.7) {
			fire("slo-fast", "", map[string]string{"slo": "availability", "long_window": "1h"}, im.onset)
		}
		if g.chance(0.15) {
			fire("slo-slow", "", map[string]string{"slo": "availability", "long_window": "6h"}, im.onset)
		}
	}
	if g.chance(0.05) {
		// readiness probes that check the dependency take pods out
		pods := s.podsAt(im.onset)
		for _, p := range pods[:min(len(pods), 1+g.r.IntN(2))] {
			subj, l := podLabels(s, p)
			fire("notready", subj, l, im.onset)
		}
	}
	if n == 0 {
		fire(errID, "", errLabels, im.onset)
	}
}

// flutter makes the last firing period of a flap: it resolves for a
// minute or three once or twice before it resolves for good.
func (g *gen) flutter(a *alert) {
	last := a.spans[len(a.spans)-1]
	if last.end.IsZero() || last.end.Sub(last.start) < 12*time.Minute {
		return
	}
	a.spans = a.spans[:len(a.spans)-1]
	at := last.start
	for range 1 + g.r.IntN(2) {
		on := g.uniform(3*time.Minute, 6*time.Minute)
		off := g.uniform(time.Minute, 3*time.Minute)
		if at.Add(on + off + 2*time.Minute).After(last.end) {
			break
		}
		a.spans = append(a.spans, span{at, at.Add(on)})
		at = at.Add(on + off)
	}
	a.spans = append(a.spans, span{at, last.end})
}

// rootWeight is how likely s is the root of a cascade: the more services
// call it, directly or not, the likelier its failure makes a storm.
func rootWeight(s *service) float64 {
	return 1 + float64(len(upstream(s)))
}

// upstream lists the services that call s, directly or not.
func upstream(s *service) []*service {
	seen := map[*service]bool{}
	var out []*service
	var walk func(*service)
	walk = func(x *service) {
		for _, c := range x.callers {
			if !seen[c] {
				seen[c] = true
				out = append(out, c)
				walk(c)
			}
		}
	}
	walk(s)
	return out
}

// cascade: a shared dependency fails and its callers alert, several hops
// up.
func (g *gen) cascade(inc *incident) {
	o := owner{inc}
	t0 := inc.start
	d := g.lognormal(18*time.Minute, 0.7, 6*time.Minute, 150*time.Minute)
	root := g.pickCause(t0, t0.Add(d), func(s *service) float64 {
		if len(s.callers) == 0 || modes[s.role] == nil {
			return 0
		}
		return rootWeight(s)
	})
	if root == nil {
		return
	}
	mode := pick(g, modes[root.role])
	if mode == "failover" || mode == "down" || mode == "broker" {
		d = g.uniform(3*time.Minute, 12*time.Minute) // until the standby took over
	}
	ri := impact{svc: root, onset: t0, recovery: t0.Add(d), slow: slowModes[mode]}
	g.problem(o, root, mode, ri.onset, ri.recovery)
	if len(inc.alerts) == 0 {
		return // too short to alert, or its alerts belong to an earlier incident
	}
	for _, im := range g.propagate(ri, g.cfg.CascadeReach) {
		g.symptoms(o, im)
	}
}

// deploy: a change breaks a service; it is rolled back (or fixed forward)
// once someone notices.
func (g *gen) deploy(inc *incident) {
	o := owner{inc}
	tc := inc.start
	s := g.pickCause(tc, tc.Add(time.Hour), func(s *service) float64 {
		if !s.role.app() {
			return 0
		}
		return 1
	})
	if s == nil {
		return
	}
	kind := []string{"deploy", "config", "feature_flag"}[g.weighted([]float64{0.7, 0.15, 0.15})]
	mode := pick(g, []string{"errors", "errors", "crash", "latency", "oom"})
	var onset time.Time
	switch kind {
	case "deploy":
		onset = tc.Add(g.uniform(time.Minute, 8*time.Minute))
	case "config":
		onset = tc.Add(g.uniform(30*time.Second, 3*time.Minute))
	default:
		mode = pick(g, []string{"errors", "latency"})
		onset = tc.Add(g.uniform(30*time.Second, 5*time.Minute))
	}
	notice := g.uniform(8*time.Minute, 35*time.Minute)
	if mode == "crash" || mode == "oom" {
		notice = g.uniform(16*time.Minute, 40*time.Minute)
	}
	fixAt := onset.Add(notice)
	fixForward := kind == "deploy" && g.chance(0.2)
	if fixForward {
		fixAt = fixAt.Add(g.uniform(15*time.Minute, 40*time.Minute))
	}
	recovery := fixAt.Add(g.uniform(time.Minute, 4*time.Minute))

	c := change{t: tc.Truncate(time.Second), svc: s, kind: kind}
	if kind == "feature_flag" {
		c.flag = s.name + "." + pick(g, features)
	}
	g.addChange(c)
	fix := change{t: fixAt.Truncate(time.Second), svc: s, kind: "rollback"}
	switch {
	case fixForward:
		fix.kind, fix.hotfix = "deploy", true
	case kind == "feature_flag":
		fix.kind, fix.flag, fix.off = "feature_flag", c.flag, true
	}
	g.addChange(fix)

	g.problem(o, s, mode, onset, recovery)
	ri := impact{svc: s, onset: onset, recovery: recovery, slow: slowModes[mode]}
	if mode == "crash" || mode == "oom" {
		ri.onset = onset.Add(g.uniform(2*time.Minute, 10*time.Minute)) // the old pods carry the load a while
	}
	for _, im := range g.propagate(ri, g.cfg.DeployReach) {
		g.symptoms(o, im)
	}
}

// replicas: the same failure on two or three pods or instances of one
// service (a memory leak, replicas falling behind, volumes filling).
func (g *gen) replicas(inc *incident) {
	o := owner{inc}
	t0 := inc.start
	d := g.lognormal(35*time.Minute, 0.5, 15*time.Minute, 120*time.Minute)
	s := g.pickCause(t0, t0.Add(d), func(s *service) float64 {
		switch {
		case s.role == rolePostgres && len(s.podsAt(t0)) >= 3:
			return 1
		case s.role == roleKafka || s.role == roleElastic || s.role == roleRedis:
			return 1
		case s.role.app() && len(s.podsAt(t0)) >= 2:
			return 1
		}
		return 0
	})
	if s == nil {
		return
	}
	pods := slices.Clone(s.podsAt(t0))
	port := exporterPort[s.role]
	at := t0
	next := func() time.Time { at = at.Add(g.uniform(30*time.Second, 8*time.Minute)); return at }
	switch s.role {
	case rolePostgres:
		for _, p := range pods[1:3] {
			subj, l := instanceLabels(p, port)
			g.cond(o, s, "pg-lag", subj, l, next(), t0.Add(d))
		}
	case roleKafka:
		for _, p := range pods[:2] {
			pvc := "data-" + p.name
			g.cond(o, s, "pvc", s.namespace+"/"+pvc, map[string]string{"persistentvolumeclaim": pvc}, next().Add(-time.Hour), t0.Add(d))
		}
		g.cond(o, s, "kafka-latency", pods[0].name, map[string]string{"instance": pods[0].name + ":" + port, "pod": pods[0].name}, t0.Add(g.uniform(0, 10*time.Minute)), t0.Add(d))
	case roleElastic, roleRedis:
		id := "es-heap"
		if s.role == roleRedis {
			id = "redis-mem"
		}
		for _, p := range pods[:2] {
			subj, l := instanceLabels(p, port)
			g.cond(o, s, id, subj, l, next(), t0.Add(d))
		}
	default:
		g.r.Shuffle(len(pods), func(i, j int) { pods[i], pods[j] = pods[j], pods[i] })
		for _, p := range pods[:min(len(pods), 2+g.r.IntN(2))] {
			subj, l := podLabels(s, p)
			kill := next()
			g.cond(o, s, "oom", subj, l, kill, kill.Add(g.uniform(10*time.Second, time.Minute)))
			if g.chance(0.3) {
				g.cond(o, s, "crashloop", subj, l, kill, t0.Add(d))
			}
		}
		if g.chance(0.4) && s.role != roleWorker {
			g.cond(o, s, "latency", "", g.anyRoute(s), t0.Add(g.uniform(0, 10*time.Minute)), t0.Add(d))
		}
	}
}

// node: a Kubernetes node stops answering. Deployment pods are evicted
// after five minutes and come back elsewhere; StatefulSet pods stay down
// until the node returns.
func (g *gen) node(inc *incident) {
	o := owner{inc}
	t0 := inc.start
	d := g.lognormal(35*time.Minute, 0.4, 18*time.Minute, 90*time.Minute)
	k8s := g.byName["kubernetes"]
	node := pick(g, g.nodes)
	if g.busy(k8s, t0, t0.Add(d)) {
		return
	}
	g.cond(o, k8s, "node-notready", node, map[string]string{"node": node}, t0, t0.Add(d))
	if g.chance(0.6) {
		g.cond(o, k8s, "node-unreachable", node, map[string]string{"node": node}, t0, t0.Add(d))
	}
	for _, s := range g.services {
		if s.role == roleCluster || g.busy(s, t0, t0.Add(d)) {
			continue
		}
		for _, p := range s.podsAt(t0) {
			if p.node != node {
				continue
			}
			onset := t0.Add(g.uniform(0, 40*time.Second))
			if !s.role.stateful() {
				if len(s.podsAt(t0)) <= 3 && g.chance(0.4) {
					g.errorAlert(o, s, onset, t0.Add(g.uniform(5*time.Minute, 7*time.Minute)))
				}
				continue
			}
			subj, l := podLabels(s, p)
			g.cond(o, s, "notready", subj, l, onset, t0.Add(d))
			g.cond(o, s, "sts-replicas", s.namespace+"/"+s.name, map[string]string{"statefulset": s.name}, onset, t0.Add(d))
			port := exporterPort[s.role]
			isubj, il := instanceLabels(p, port)
			switch s.role {
			case rolePostgres:
				g.cond(o, s, "pg-down", isubj, il, onset, t0.Add(d))
			case roleRedis:
				g.cond(o, s, "redis-down", isubj, il, onset, t0.Add(d))
			case roleKafka:
				g.cond(o, s, "kafka-broker", p.name, il, onset, t0.Add(d))
				g.cond(o, s, "kafka-urp", "", nil, onset, t0.Add(d))
			case roleElastic:
				first := s.podsAt(t0)[0].name
				g.cond(o, s, "es-yellow", first, map[string]string{"instance": first + ":" + port}, onset, t0.Add(d))
			case roleObjectStore:
				g.cond(o, s, "minio-node", isubj, il, onset, t0.Add(d))
			}
		}
	}
}

// flap: an alert hovering around its threshold fires and resolves over
// and over.
var flappy = map[role][]string{
	roleHTTP:        {"latency", "latency", "errors", "hpa", "throttle"},
	roleEdge:        {"latency", "errors"},
	roleWorker:      {"lag", "lag", "worker-errors"},
	roleAdapter:     {"provider", "probe", "latency"},
	rolePostgres:    {"pg-lag", "pg-conns"},
	roleRedis:       {"redis-mem"},
	roleKafka:       {"kafka-urp", "kafka-latency"},
	roleElastic:     {"es-yellow", "es-heap"},
	roleClickHouse:  {"ch-queries", "ch-replica"},
	roleObjectStore: {"minio-disk"},
}

func (g *gen) flap(inc *incident) {
	o := owner{inc}
	t0 := inc.start
	n := 4 + g.r.IntN(9)
	s := g.pickCause(t0, t0.Add(time.Duration(n)*12*time.Minute), func(s *service) float64 {
		if flappy[s.role] == nil {
			return 0
		}
		return 1
	})
	if s == nil {
		return
	}
	ids := []string{pick(g, flappy[s.role])}
	if g.chance(0.3) {
		if id := pick(g, flappy[s.role]); id != ids[0] {
			ids = append(ids, id)
		}
	}
	for _, id := range ids {
		subj, l := g.subjectFor(s, id, t0)
		at := t0.Add(g.uniform(0, 3*time.Minute))
		for range n {
			on := g.uniform(2*time.Minute, 8*time.Minute)
			g.direct(o, s, id, subj, l, at, at.Add(on))
			at = at.Add(on + g.uniform(time.Minute, 9*time.Minute))
		}
	}
}

// consumerLabels are the labels of a worker's consumer lag.
func consumerLabels(s *service) map[string]string {
	topic := s.extra
	if topic == "" {
		topic = s.team + ".jobs"
	}
	return map[string]string{"topic": topic, "consumergroup": s.name}
}

// subjectFor gives the subject labels rule id needs on s.
func (g *gen) subjectFor(s *service, id string, t time.Time) (string, map[string]string) {
	pods := s.podsAt(t)
	port := exporterPort[s.role]
	switch id {
	case "throttle", "crashloop", "notready", "oom", "waiting":
		return podLabels(s, pick(g, pods))
	case "hpa":
		return s.namespace + "/" + s.name, map[string]string{"horizontalpodautoscaler": s.name}
	case "errors", "latency":
		return "", g.anyRoute(s)
	case "lag":
		l := consumerLabels(s)
		return l["topic"], l
	case "provider":
		return s.extra, map[string]string{"provider": s.extra}
	case "probe":
		url := "https://api." + s.extra + ".com/health"
		return url, map[string]string{"instance": url}
	case "pg-lag":
		return instanceLabels(pods[len(pods)-1], port)
	case "pg-conns", "redis-mem", "es-heap", "ch-queries", "ch-replica", "minio-disk", "pg-slow":
		return instanceLabels(pick(g, pods), port)
	case "kafka-latency":
		p := pick(g, pods)
		return p.name, map[string]string{"instance": p.name + ":" + port, "pod": p.name}
	case "es-yellow":
		return pods[0].name, map[string]string{"instance": pods[0].name + ":" + port}
	}
	return "", nil
}

// refire: a problem that resolves (a restart, a manual failover, load
// dropping) and comes back with the same alerts before anyone fixed it.
func (g *gen) refire(inc *incident) {
	o := owner{inc}
	t0 := inc.start
	s := g.pickCause(t0, t0.Add(2*time.Hour), func(s *service) float64 {
		if modes[s.role] == nil {
			return 0
		}
		if s.role.app() {
			return 2
		}
		return 1
	})
	if s == nil {
		return
	}
	mode := pick(g, modes[s.role])
	var callers []*service
	for _, c := range s.callers {
		if len(callers) < 2 && g.chance(0.35) && !g.busy(c, t0, t0.Add(2*time.Hour)) {
			callers = append(callers, c)
		}
	}
	episodes := 2
	if g.chance(0.25) {
		episodes = 3
	}
	// the same pods and instances each time: each episode replays the
	// same random draws
	seed1, seed2 := g.r.Uint64(), g.r.Uint64()
	at := t0
	for range episodes {
		end := at.Add(g.uniform(10*time.Minute, 35*time.Minute))
		saved := g.r
		g.r = rand.New(rand.NewPCG(seed1, seed2))
		g.problem(o, s, mode, at, end)
		g.r = saved
		for _, c := range callers {
			g.symptoms(o, impact{svc: c, hop: 1, via: s, onset: at.Add(time.Minute), recovery: end, slow: slowModes[mode]})
		}
		at = end.Add(g.uniform(5*time.Minute, 35*time.Minute))
	}
}
