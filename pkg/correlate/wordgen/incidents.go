package wordgen

import (
	"fmt"
	"slices"
	"time"
)

// incKind is what went wrong.
type incKind int

const (
	kindCascade  incKind = iota // a datastore or shared service fails, its callers follow
	kindDeploy                  // a deploy breaks a service (rolled back)
	kindConfig                  // a config or feature-flag change breaks a service (reverted)
	kindSelf                    // a service fails on its own (load, leak, poison message)
	kindNode                    // a worker node dies with the pods on it
	kindExternal                // a third party (payment provider, CDN) fails
)

var kindWeights = []struct {
	kind   incKind
	weight float64
}{
	{kindCascade, 0.30}, {kindDeploy, 0.22}, {kindConfig, 0.12}, {kindSelf, 0.14}, {kindNode, 0.10}, {kindExternal, 0.12},
}

// A hit is a component in trouble during an incident.
type hit struct {
	comp      *component
	at, until time.Time // symptoms start and end
	hop       int       // 0: where the fault is; n: n calls away from it
	severe    bool      // an outage, not a degradation
	saturated bool      // a datastore overloaded by its caller (the fault is the caller's)
}

type plan struct {
	id      string
	kind    incKind
	start   time.Time
	hits    []hit
	node    string
	refire  bool
	variant string
}

// span is what the plan holds: its components from its start to a
// quarter of an hour after its last symptom (refirings included).
func (p *plan) span() hold {
	h := hold{from: p.start.Add(-2 * time.Minute), comps: map[string]bool{}}
	for _, x := range p.hits {
		h.comps[x.comp.name] = true
		if x.until.After(h.to) {
			h.to = x.until
		}
	}
	if p.node != "" {
		h.comps["node:"+p.node] = true
	}
	if p.refire {
		h.to = h.to.Add(35 * time.Minute)
	}
	h.to = h.to.Add(15 * time.Minute)
	return h
}

func (g *gen) free(h hold) bool {
	for _, o := range g.held {
		if o.from.After(h.to) || h.from.After(o.to) {
			continue
		}
		for c := range h.comps {
			if o.comps[c] {
				return false
			}
		}
	}
	return true
}

// incidents schedules the storm's incidents. Onsets come MinIncidentGap
// to MaxIncidentGap apart (uniform); with probability Concurrent one more
// independent incident starts 0 to 3 minutes after one (again with the
// same probability, so three at once happen too).
func (g *gen) incidents() {
	t := g.cfg.Start.Add(g.between(3*time.Minute, 12*time.Minute))
	last := g.end.Add(-45 * time.Minute)
	for t.Before(last) {
		g.incident(t)
		for at := t; g.p(g.cfg.Concurrent); {
			at = at.Add(g.between(0, 3*time.Minute))
			g.incident(at)
		}
		t = t.Add(g.between(g.cfg.MinIncidentGap, g.cfg.MaxIncidentGap))
	}
}

func (g *gen) incident(t time.Time) {
	g.nInc++
	id := fmt.Sprintf("inc-%02d", g.nInc)
	for range 12 {
		p := g.plan(id, g.pickKind(), t)
		if p == nil || !g.free(p.span()) {
			continue
		}
		h := p.span()
		// Held until its last alert (a slow burn, a backlog) is over.
		if last := g.materialize(p).Add(10 * time.Minute); last.After(h.to) {
			h.to = last
		}
		g.held = append(g.held, h)
		g.planned = append(g.planned, p)
		return
	}
}

func (g *gen) pickKind() incKind {
	x := g.r.Float64()
	for _, kw := range kindWeights {
		if x < kw.weight {
			return kw.kind
		}
		x -= kw.weight
	}
	return kindCascade
}

func (g *gen) comps(keep func(*component) bool) []*component {
	var out []*component
	for _, c := range g.est.list {
		if keep(c) {
			out = append(out, c)
		}
	}
	return out
}

// cascadeApps are the internal services many others call: with the
// datastores, where a cascade starts.
var cascadeApps = []string{"auth-service", "entitlement-service", "asset-metadata", "geo-service", "catalog-api", "subscription-service", "manifest-service"}

// plan draws an incident of kind k starting at t, or nil when k cannot
// be drawn.
func (g *gen) plan(id string, k incKind, t time.Time) *plan {
	p := &plan{id: id, kind: k, start: t}
	apps := g.comps(func(c *component) bool { return !c.stateful() })
	switch k {
	case kindCascade:
		var root *component
		if g.p(0.7) {
			root = pick(g, g.comps((*component).stateful))
		} else {
			root = g.est.byName[pick(g, cascadeApps)]
		}
		severe := g.p(0.4)
		hops := []float64{0.65, 0.4, 0.2}
		if severe {
			hops = []float64{0.85, 0.6, 0.4, 0.25}
		}
		p.hits = g.spread(root, t, t.Add(g.between(8*time.Minute, 40*time.Minute)), severe, hops)
		p.refire = g.p(g.cfg.Refire)
	case kindDeploy:
		target := pick(g, apps)
		p.variant = pick(g, []string{"errors", "errors", "latency", "crashloop"})
		deployAt := t.Add(-g.between(time.Minute, 6*time.Minute))
		fix := t.Add(g.between(6*time.Minute, 18*time.Minute))
		if p.variant == "crashloop" {
			fix = t.Add(g.between(12*time.Minute, 30*time.Minute))
		}
		until := fix.Add(g.between(2*time.Minute, 5*time.Minute))
		hops := []float64{0.55, 0.3}
		if p.variant == "latency" {
			hops = []float64{0.45, 0.2}
		}
		p.hits = g.spread(target, t, until, p.variant != "latency", hops)
		if p.variant == "latency" {
			// An N+1 query or a dropped cache: the service's own
			// datastore is what alerts loudest.
			for _, d := range target.deps {
				if dc := g.est.byName[d]; (dc.kind == kindPostgres || dc.kind == kindRedis) && g.p(0.6) {
					p.hits = append(p.hits, hit{comp: dc, at: t.Add(g.between(time.Minute, 4*time.Minute)), until: until, hop: 1, saturated: true})
					break
				}
			}
		}
		if !g.free(p.span()) {
			return nil
		}
		author := pick(g, people)
		if g.p(0.3) {
			author = "argocd-image-updater"
		}
		g.deploy(target.name, deployAt, author)
		g.rs[target.name] = g.hash(10)
		g.rollback(target.name, fix, pick(g, people))
	case kindConfig:
		target := pick(g, g.comps(func(c *component) bool { return c.kind == kindHTTP }))
		kind := pick(g, []string{"config", "config", "feature_flag"})
		at := t.Add(-g.between(30*time.Second, 3*time.Minute))
		fix := t.Add(g.between(4*time.Minute, 15*time.Minute))
		p.hits = g.spread(target, t, fix.Add(g.between(time.Minute, 3*time.Minute)), true, []float64{0.5, 0.25})
		if !g.free(p.span()) {
			return nil
		}
		author := pick(g, people)
		g.configChange(target.name, kind, at, author, false)
		g.configChange(target.name, kind, fix, author, true)
	case kindSelf:
		target := pick(g, apps)
		p.variant = pick(g, []string{"saturation", "leak", "crash"})
		p.hits = g.spread(target, t, t.Add(g.between(10*time.Minute, 35*time.Minute)), p.variant == "crash", []float64{0.4, 0.15})
		p.refire = g.p(g.cfg.Refire)
	case kindNode:
		p.node = pick(g, nodes)
		until := t.Add(g.between(18*time.Minute, 35*time.Minute)) // until the autoscaler replaced it
		perm := g.r.Perm(len(apps))
		n := 2 + g.r.IntN(3)
		for _, i := range perm[:n] {
			// The pods were rescheduled within minutes; what users saw was
			// a short burst of errors.
			p.hits = append(p.hits, hit{comp: apps[i], at: t.Add(g.between(10*time.Second, 50*time.Second)), until: t.Add(g.between(2*time.Minute, 6*time.Minute)), hop: 1})
		}
		if g.p(0.4) {
			sts := g.est.byName[pick(g, []string{"cassandra-main", "events-kafka", "search-elasticsearch", "media-storage"})]
			p.hits = append(p.hits, hit{comp: sts, at: t.Add(g.between(20*time.Second, time.Minute)), until: until, hop: 1, severe: true})
		}
	case kindExternal:
		root := g.est.byName[pick(g, []string{"billing-gateway", "cdn-router"})]
		p.variant = "psp"
		if root.name == "cdn-router" {
			p.variant = "cdn"
		}
		p.hits = g.spread(root, t, t.Add(g.between(10*time.Minute, 45*time.Minute)), true, []float64{0.7, 0.4, 0.2})
		p.refire = g.p(g.cfg.Refire)
	}
	return p
}

// spread walks the callers of root: each caller of a component in
// trouble is hit with the probability of its hop (hops[0] for root's
// callers), a little later, and recovers a little after it.
func (g *gen) spread(root *component, at, until time.Time, severe bool, hops []float64) []hit {
	hits := []hit{{comp: root, at: at, until: until, severe: severe}}
	seen := map[string]bool{root.name: true}
	for i := 0; i < len(hits); i++ {
		h := hits[i]
		if h.hop >= len(hops) {
			continue
		}
		for _, name := range g.est.callers[h.comp.name] {
			if seen[name] || !g.p(hops[h.hop]) {
				continue
			}
			seen[name] = true
			c := g.est.byName[name]
			delay := g.between(10*time.Second, 75*time.Second) // timeouts and retries
			if c.kind == kindConsumer || h.comp.kind == kindKafka || h.comp.kind == kindRabbit {
				delay = g.between(2*time.Minute, 6*time.Minute) // a backlog builds up
			}
			hits = append(hits, hit{comp: c, at: h.at.Add(delay), until: h.until.Add(g.between(0, 2*time.Minute)), hop: h.hop + 1, severe: severe && g.p(0.7)})
		}
	}
	return hits
}

// materialize turns a plan into alerts, and returns when the last of them
// ends.
func (g *gen) materialize(p *plan) time.Time {
	var made []*alert
	hop := map[*alert]int{}
	fire := func(h hit, labels, ann map[string]string, forDur time.Duration, lag time.Duration) *alert {
		start := h.at.Add(forDur).Add(g.between(0, 45*time.Second))
		end := h.until.Add(lag).Add(g.between(-time.Minute, 90*time.Second))
		if end.Sub(start) < time.Minute {
			return nil // it recovered before the rule's for: elapsed
		}
		a := g.add(p.id, labels, ann, episode{start, end})
		if a != nil && !slices.Contains(made, a) {
			made = append(made, a)
			hop[a] = h.hop
		}
		return a
	}
	for _, h := range p.hits {
		switch {
		case p.kind == kindNode:
			g.nodeHit(p, h, fire)
		case h.hop == 0:
			g.rootHit(p, h, fire)
		case h.saturated:
			g.datastoreAlerts(h, "saturation", fire)
		default:
			g.symptoms(p, h, fire)
		}
	}
	if p.kind == kindNode {
		g.nodeAlerts(p, fire)
	}
	if p.refire {
		g.refire(made, hop)
	}
	if g.p(g.cfg.Flapping) {
		g.flap(made)
	}
	var last time.Time
	for _, a := range made {
		if end := a.episodes[len(a.episodes)-1].end; end.After(last) {
			last = end
		}
	}
	return last
}

type fireFunc func(h hit, labels, ann map[string]string, forDur, lag time.Duration) *alert

// refire makes the faulty component's alerts (and some of its callers')
// resolve and fire again: the fix did not hold.
func (g *gen) refire(made []*alert, hop map[*alert]int) {
	var base time.Time
	for _, a := range made {
		if end := a.episodes[len(a.episodes)-1].end; hop[a] == 0 && end.After(base) {
			base = end
		}
	}
	again := base.Add(g.between(6*time.Minute, 20*time.Minute))
	dur := g.between(4*time.Minute, 15*time.Minute)
	for _, a := range made {
		if hop[a] > 1 || hop[a] == 1 && !g.p(0.3) || a.episodes[len(a.episodes)-1].end.After(again) {
			continue
		}
		start := again.Add(g.between(0, time.Minute))
		if hop[a] == 1 {
			start = start.Add(g.between(30*time.Second, 2*time.Minute))
		}
		if start.Before(g.end) {
			a.episodes = append(a.episodes, episode{ms(start), ms(start.Add(dur))})
		}
	}
}

// flap makes one of the incident's warnings hover around its threshold:
// firing and resolving every few minutes over its span and a little
// beyond.
func (g *gen) flap(made []*alert) {
	var cands []*alert
	for _, a := range made {
		e := a.episodes[0]
		if a.labels["severity"] == "warning" && len(a.episodes) == 1 && e.end.Sub(e.start) >= 6*time.Minute {
			cands = append(cands, a)
		}
	}
	if len(cands) == 0 {
		return
	}
	a := pick(g, cands)
	from, to := a.episodes[0].start, a.episodes[0].end.Add(g.between(0, 12*time.Minute))
	var eps []episode
	for t := from; t.Before(to) || len(eps) < 3; {
		end := t.Add(g.between(time.Minute, 4*time.Minute))
		eps = append(eps, episode{ms(t), ms(end)})
		t = end.Add(g.between(time.Minute, 5*time.Minute))
	}
	a.episodes = eps
}

// --- labels ---

func appLabels(c *component, alertname, severity string) map[string]string {
	return map[string]string{"alertname": alertname, "severity": severity, "namespace": c.namespace, "service": c.name, "job": c.name, "team": c.team}
}

// httpLabels are the labels of an alert on an API's requests: from its
// own metrics (a ServiceMonitor: service and job name it, per route), or,
// for the teams that rely on the mesh, from Istio's sidecar telemetry
// (destination_service_name names it, no route).
func httpLabels(c *component, alertname, severity, route string) map[string]string {
	if c.mesh {
		return map[string]string{"alertname": alertname, "severity": severity, "namespace": c.namespace, "destination_service_name": c.name,
			"destination_workload_namespace": c.namespace, "reporter": "destination", "team": c.team}
	}
	l := appLabels(c, alertname, severity)
	if route != "" {
		l["route"] = route
	}
	return l
}

// ksmLabels are kube-state-metrics' alerts: the target is kube-state-
// metrics itself, so service, job, instance and (for alerts about a
// Deployment) pod and container name it, not the workload.
func ksmLabels(namespace, alertname, severity string) map[string]string {
	return map[string]string{
		"alertname": alertname, "severity": severity, "namespace": namespace,
		"job": "kube-state-metrics", "service": ksmService, "endpoint": "http", "instance": "10.42.2.31:8080",
		"pod": "kube-prometheus-stack-kube-state-metrics-7d9c6b5f4-x2kqp", "container": "kube-state-metrics",
	}
}

func sloLabels(c *component, severity, long, short string) map[string]string {
	return map[string]string{"alertname": "ErrorBudgetBurn", "severity": severity, "namespace": c.namespace, "slo": c.name + "-availability", "long": long, "short": short, "team": c.team}
}

func ann(summary, description, runbook string) map[string]string {
	return map[string]string{"summary": summary, "description": description, "runbook_url": "https://runbooks." + domain + "/alerts/" + runbook}
}

func (g *gen) pod(c *component) string { return c.name + "-" + g.rs[c.name] + "-" + g.hash(5) }

// --- application alerts ---

// httpAlerts fires what an API in trouble raises: 5xx ratio per route
// (warning at 1%, critical at 5%), p99 latency, the SLO's fast and slow
// burn, readiness and autoscaling.
func (g *gen) httpAlerts(id string, h hit, fire fireFunc, errors, latency float64) {
	c := h.comp
	routes := slices.Clone(c.routes)
	if c.mesh {
		routes = []string{""}
	}
	g.r.Shuffle(len(routes), func(i, j int) { routes[i], routes[j] = routes[j], routes[i] })
	nRoutes := 1
	if g.p(0.35) {
		nRoutes = 2
	}
	for _, route := range routes {
		if nRoutes == 0 || !g.p(errors) {
			break
		}
		warn := httpLabels(c, "HTTPErrorRateHigh", "warning", route)
		if g.taken(id, warn) {
			continue
		}
		nRoutes--
		pct := 1 + g.r.Float64()*4
		fire(h, warn, ann(fmt.Sprintf("%s: 5xx above 1%% on %s", c.name, route),
			fmt.Sprintf("%.1f%% of requests to %s %s failed with a 5xx over the last 5 minutes.", pct, c.name, route), "http-error-rate"), 2*time.Minute, 0)
		if h.severe || g.p(0.25) {
			crit := httpLabels(c, "HTTPErrorRateHigh", "critical", route)
			fire(h, crit, ann(fmt.Sprintf("%s: 5xx above 5%% on %s", c.name, route),
				fmt.Sprintf("%.1f%% of requests to %s %s failed with a 5xx over the last 5 minutes.", 5+g.r.Float64()*40, c.name, route), "http-error-rate"),
				2*time.Minute+g.between(0, 90*time.Second), -g.between(0, 2*time.Minute))
		}
	}
	if g.p(latency) {
		fire(h, httpLabels(c, "HTTPLatencyHigh", "warning", ""), ann(c.name+": p99 latency above SLO",
			fmt.Sprintf("p99 latency of %s is %.2fs (objective 0.8s).", c.name, 0.9+g.r.Float64()*4), "http-latency"), 5*time.Minute, 0)
	}
	if c.tier <= 2 {
		if g.p(map[bool]float64{true: 0.5, false: 0.15}[h.severe]) {
			fire(h, sloLabels(c, "critical", "1h", "5m"), ann(c.name+"-availability: error budget burning fast",
				"The availability objective 99.9% is burning 14x its budget (1h and 5m windows).", "error-budget-burn"), 2*time.Minute, 0)
		}
		if g.p(0.2) {
			// The 6h window lags: it fires late and resolves late.
			fire(h, sloLabels(c, "warning", "6h", "30m"), ann(c.name+"-availability: error budget burning",
				"The availability objective 99.9% is burning 6x its budget (6h and 30m windows).", "error-budget-burn"),
				g.between(9*time.Minute, 20*time.Minute), g.between(10*time.Minute, 35*time.Minute))
		}
	}
	if g.p(0.04) {
		// Retries against a failing dependency can pin CPU.
		l := ksmLabels(c.namespace, "KubeHpaMaxedOut", "warning")
		l["horizontalpodautoscaler"] = c.name
		fire(h, l, ann("HPA is running at max replicas",
			fmt.Sprintf("HPA %s/%s has been running at max replicas for longer than 15 minutes.", c.namespace, c.name), "kubehpamaxedout"), 15*time.Minute, 0)
	}
	for _, url := range c.probes {
		if g.p(map[bool]float64{true: 0.7, false: 0.2}[h.severe]) {
			g.probe(h, url, fire)
		}
	}
	if c.name == "playback-api" && h.severe && g.p(0.4) {
		// Business KPIs computed by the analytics pipeline from player
		// heartbeats: labelled by where they are computed.
		for _, fam := range []string{"tv", "web", "mobile"} {
			if g.p(0.5) {
				fire(h, map[string]string{"alertname": "PlaybackStartFailureRateHigh", "severity": "critical", "namespace": "data", "service": "qoe-analytics",
					"job": "qoe-analytics", "team": "playback", "device_family": fam},
					ann("Playback start failures above 2% on "+fam, fmt.Sprintf("%.1f%% of play attempts on %s devices failed to start in the last 5 minutes.", 2+g.r.Float64()*20, fam), "playback-start-failures"),
					3*time.Minute, 0)
			}
		}
	}
}

func (g *gen) probe(h hit, url string, fire fireFunc) {
	fire(h, map[string]string{"alertname": "BlackboxProbeFailed", "severity": "critical", "namespace": "monitoring", "job": "blackbox-exporter", "module": "http_2xx", "instance": url},
		ann("Probe failed", "Probe of "+url+" failed from 2 of 3 locations.", "blackbox-probe-failed"), time.Minute, -30*time.Second)
}

func (g *gen) consumerAlerts(id string, h hit, fire fireFunc) {
	c := h.comp
	if c.name == "transcode-worker" {
		fire(h, map[string]string{"alertname": "RabbitmqTooManyReadyMessages", "severity": "warning", "namespace": "content", "service": "transcode-queue",
			"job": "transcode-queue", "instance": "transcode-queue-server-0.transcode-queue-nodes.content:15692", "queue": c.topic, "vhost": "/"},
			ann("RabbitMQ queue backlog", "Queue "+c.topic+" has more than 1000 ready messages.", "rabbitmq-backlog"), 3*time.Minute, g.between(2*time.Minute, 10*time.Minute))
		return
	}
	fire(h, map[string]string{"alertname": "KafkaConsumerGroupLagHigh", "severity": "warning", "namespace": "kafka", "service": "events-kafka-exporter",
		"job": "kafka-exporter", "instance": "events-kafka-kafka-exporter-6c8f9d7b5-p4x7t:9404", "consumergroup": c.name, "topic": c.topic},
		ann("Kafka consumer group lag", fmt.Sprintf("Consumer group %s lags %d messages on %s.", c.name, 50000+g.r.IntN(900000), c.topic), "kafka-consumer-lag"),
		3*time.Minute, g.between(3*time.Minute, 12*time.Minute))
}

// crashLoop fires kube-state-metrics' alerts of pods that keep
// restarting (after their 15 minutes).
func (g *gen) crashLoop(h hit, fire fireFunc, pods int) {
	c := h.comp
	for range pods {
		l := ksmLabels(c.namespace, "KubePodCrashLooping", "warning")
		pod := g.pod(c)
		l["pod"], l["container"] = pod, c.name
		fire(h, l, ann("Pod is crash looping.", fmt.Sprintf("Pod %s/%s (%s) is in waiting state (reason: \"CrashLoopBackOff\").", c.namespace, pod, c.name), "kubepodcrashlooping"), 15*time.Minute, 0)
	}
	l := ksmLabels(c.namespace, "KubeDeploymentReplicasMismatch", "warning")
	l["deployment"] = c.name
	fire(h, l, ann("Deployment has not matched the expected number of replicas.",
		fmt.Sprintf("Deployment %s/%s has not matched the expected number of replicas for longer than 15 minutes.", c.namespace, c.name), "kubedeploymentreplicasmismatch"), 15*time.Minute, 0)
}

// symptoms are the alerts of a component hit because what it calls is in
// trouble.
func (g *gen) symptoms(p *plan, h hit, fire fireFunc) {
	switch h.comp.kind {
	case kindHTTP:
		errs, lat := 0.6, 0.5
		if h.severe {
			errs, lat = 0.9, 0.45
		}
		g.httpAlerts(p.id, h, fire, errs, lat)
		if g.p(0.06) {
			l := ksmLabels(h.comp.namespace, "KubePodNotReady", "warning")
			l["pod"] = g.pod(h.comp)
			delete(l, "container")
			fire(h, l, ann("Pod has been in a non-ready state for more than 15 minutes.", "Pod "+h.comp.namespace+"/"+l["pod"]+" has been in a non-ready state for longer than 15 minutes.", "kubepodnotready"), 15*time.Minute, 0)
		}
	case kindConsumer:
		g.consumerAlerts(p.id, h, fire)
	}
}

// rootHit fires what the faulty component raises.
func (g *gen) rootHit(p *plan, h hit, fire fireFunc) {
	c := h.comp
	if c.stateful() {
		variant := "saturation"
		if h.severe {
			variant = "outage"
		}
		g.datastoreAlerts(h, variant, fire)
		return
	}
	switch p.kind {
	case kindExternal:
		if p.variant == "psp" {
			provider := pick(g, []string{"adyen", "stripe"})
			l := appLabels(c, "PaymentProviderErrorRateHigh", "critical")
			l["provider"] = provider
			fire(h, l, ann("Payment provider "+provider+" failing", fmt.Sprintf("%.0f%% of calls to %s failed in the last 5 minutes.", 10+g.r.Float64()*80, provider), "psp-errors"), time.Minute, 0)
		} else {
			cdn := pick(g, []string{"fastly", "akamai"})
			l := appLabels(c, "CDNProviderErrorRateHigh", "critical")
			l["cdn"] = cdn
			fire(h, l, ann("CDN "+cdn+" failing", fmt.Sprintf("%.0f%% of segment requests to %s failed; steering traffic away.", 5+g.r.Float64()*60, cdn), "cdn-errors"), time.Minute, 0)
			g.probe(h, "https://vod-"+cdn+"."+domain+"/probe/1MiB.bin", fire)
		}
		g.httpAlerts(p.id, h, fire, 0.8, 0.5)
	case kindDeploy:
		switch p.variant {
		case "crashloop":
			if c.kind == kindConsumer {
				g.consumerAlerts(p.id, h, fire)
			} else {
				g.httpAlerts(p.id, h, fire, 0.7, 0.3)
			}
			g.crashLoop(h, fire, 1+g.r.IntN(3))
		case "latency":
			if c.kind == kindConsumer {
				g.consumerAlerts(p.id, h, fire)
			} else {
				g.httpAlerts(p.id, h, fire, 0.3, 0.95)
			}
		default:
			if c.kind == kindConsumer {
				g.consumerAlerts(p.id, h, fire)
				g.crashLoop(h, fire, 1+g.r.IntN(2))
			} else {
				g.httpAlerts(p.id, h, fire, 1, 0.4)
			}
		}
	case kindSelf:
		switch {
		case c.kind == kindConsumer:
			g.consumerAlerts(p.id, h, fire)
			g.crashLoop(h, fire, 1+g.r.IntN(3))
		case p.variant == "leak":
			l := map[string]string{"alertname": "KubeContainerMemoryNearLimit", "severity": "warning", "namespace": c.namespace, "job": "kubelet", "service": kubeletSvc,
				"metrics_path": "/metrics/cadvisor", "container": c.name, "pod": g.pod(c)}
			fire(h, l, ann("Container memory near its limit", "Container "+c.name+" in pod "+l["pod"]+" uses more than 90% of its memory limit.", "container-memory"), 0, 0)
			g.httpAlerts(p.id, h, fire, 0.6, 0.8)
			g.crashLoop(h, fire, 1+g.r.IntN(2))
		case p.variant == "crash":
			g.httpAlerts(p.id, h, fire, 0.9, 0.3)
			g.crashLoop(h, fire, 1+g.r.IntN(3))
		default:
			g.httpAlerts(p.id, h, fire, 0.8, 0.8)
		}
	case kindConfig:
		g.httpAlerts(p.id, h, fire, 1, 0.4)
	default: // a shared service failing: where a cascade starts
		g.httpAlerts(p.id, h, fire, 0.95, 0.6)
	}
}

// datastoreAlerts fires what a datastore's exporter raises, as an outage
// or as saturation.
func (g *gen) datastoreAlerts(h hit, variant string, fire fireFunc) {
	c := h.comp
	outage := variant == "outage"
	opt := func(p float64, labels, a map[string]string, forDur time.Duration) {
		if g.p(p) {
			fire(h, labels, a, forDur, 0)
		}
	}
	switch c.kind {
	case kindPostgres:
		base := func(alertname, severity string, replica int) map[string]string {
			return map[string]string{"alertname": alertname, "severity": severity, "namespace": c.namespace, "service": c.name + "-metrics",
				"job": "postgres-exporter", "instance": fmt.Sprintf("%s-%d.%s-hl.data.svc:9187", c.name, replica, c.name), "server": fmt.Sprintf("%s-%d", c.name, replica)}
		}
		db := c.name[:len(c.name)-3]
		if outage {
			fire(h, base("PostgresqlDown", "critical", 0), ann("Postgresql down", "Postgresql instance "+c.name+"-0 is down.", "postgresql-down"), 0, 0)
			l := base("PostgresqlReplicationLag", "warning", 1)
			fire(h, l, ann("Postgresql replication lag", "The replica "+c.name+"-1 lags more than 30s behind its primary.", "postgresql-replication-lag"), 2*time.Minute, 2*time.Minute)
			opt(0.5, base("PostgresqlRestarted", "critical", 0), ann("Postgresql restarted", "Postgresql "+c.name+"-0 restarted.", "postgresql-restarted"), 0)
			return
		}
		fire(h, base("PostgresqlTooManyConnections", "warning", 0), ann("Postgresql too many connections", "PostgreSQL "+c.name+" has more than 80% of its connections in use.", "postgresql-connections"), 2*time.Minute, 0)
		l := base("PostgresqlHighRateStatementTimeout", "critical", 0)
		l["datname"] = db
		opt(0.6, l, ann("Postgresql high rate statement timeout", "PostgreSQL "+c.name+" is cancelling more than 3 statements a minute on "+db+".", "postgresql-statement-timeout"), time.Minute)
		l = base("PostgresqlTooManyLocksAcquired", "critical", 0)
		opt(0.35, l, ann("Postgresql too many locks acquired", "Too many locks acquired on "+c.name+".", "postgresql-locks"), 2*time.Minute)
	case kindRedis:
		base := func(alertname, severity string, node int) map[string]string {
			return map[string]string{"alertname": alertname, "severity": severity, "namespace": c.namespace, "service": c.name + "-metrics",
				"job": "redis-exporter", "instance": fmt.Sprintf("redis://%s-node-%d.%s-headless:6379", c.name, node, c.name)}
		}
		if outage {
			node := g.r.IntN(c.replicas)
			fire(h, base("RedisDown", "critical", node), ann("Redis down", fmt.Sprintf("Redis %s-node-%d is down.", c.name, node), "redis-down"), 0, 0)
			opt(0.7, base("RedisMissingMaster", "critical", 0), ann("Redis missing master", "Redis "+c.name+" has no node marked as master.", "redis-missing-master"), 0)
			opt(0.5, base("RedisRejectedConnections", "critical", (node+1)%c.replicas), ann("Redis rejected connections", "Some connections to Redis "+c.name+" were rejected.", "redis-rejected-connections"), 0)
			return
		}
		fire(h, base("RedisTooManyConnections", "warning", 0), ann("Redis too many connections", "Redis "+c.name+" is running out of connections (> 90% used).", "redis-connections"), 2*time.Minute, 0)
		opt(0.5, base("RedisOutOfConfiguredMaxmemory", "warning", 0), ann("Redis out of configured maxmemory", "Redis "+c.name+" is using more than 90% of its maxmemory.", "redis-memory"), 2*time.Minute)
		opt(0.4, base("RedisRejectedConnections", "critical", 0), ann("Redis rejected connections", "Some connections to Redis "+c.name+" were rejected.", "redis-rejected-connections"), 0)
	case kindCassandra:
		base := func(alertname, severity string) map[string]string {
			return map[string]string{"alertname": alertname, "severity": severity, "namespace": c.namespace, "service": "cassandra-main-dc1-all-pods-service",
				"job": "cassandra", "cluster": c.name, "datacenter": "dc1"}
		}
		if outage {
			l := base("CassandraNodeDown", "critical")
			l["instance"] = fmt.Sprintf("cassandra-main-dc1-r%d-sts-%d", 1+g.r.IntN(3), g.r.IntN(2))
			fire(h, l, ann("Cassandra node down", "Cassandra node "+l["instance"]+" is down.", "cassandra-node-down"), time.Minute, 0)
		}
		for _, ks := range []string{"profiles", "viewing_history"} {
			l := base("CassandraReadLatencyHigh", "warning")
			l["keyspace"] = ks
			opt(0.6, l, ann("Cassandra read latency high", "p99 read latency on keyspace "+ks+" is above 100ms.", "cassandra-latency"), 2*time.Minute)
			l = base("CassandraClientRequestWriteFailure", "critical")
			l["keyspace"] = ks
			opt(map[bool]float64{true: 0.6, false: 0.2}[outage], l, ann("Cassandra write failures", "Write requests to keyspace "+ks+" are failing.", "cassandra-write-failures"), time.Minute)
		}
		opt(0.3, base("CassandraCompactionPending", "warning"), ann("Cassandra compactions pending", "More than 100 compactions are pending.", "cassandra-compaction"), 5*time.Minute)
	case kindKafka:
		base := func(alertname, severity string, broker int) map[string]string {
			return map[string]string{"alertname": alertname, "severity": severity, "namespace": "kafka", "job": "kafka/events-kafka-kafka-resources-metrics",
				"strimzi_io_cluster": "events-kafka", "strimzi_io_kind": "Kafka", "pod": fmt.Sprintf("events-kafka-kafka-%d", broker), "kubernetes_pod_name": fmt.Sprintf("events-kafka-kafka-%d", broker)}
		}
		broker := g.r.IntN(c.replicas)
		for b := range c.replicas {
			if b != broker {
				opt(0.8, base("UnderReplicatedPartitions", "warning", b), ann("Kafka under replicated partitions", fmt.Sprintf("There are under-replicated partitions on events-kafka-kafka-%d.", b), "kafka-urp"), time.Minute)
			}
		}
		if outage {
			fire(h, base("OfflinePartitions", "critical", broker), ann("Kafka offline partitions", "One or more partitions have no leader.", "kafka-offline-partitions"), 0, 0)
		} else {
			l := base("KafkaRunningOutOfSpace", "warning", broker)
			l["persistentvolumeclaim"] = fmt.Sprintf("data-0-events-kafka-kafka-%d", broker)
			fire(h, l, ann("Kafka is running out of free disk space", "There are only 8% free space left on "+l["persistentvolumeclaim"]+".", "kafka-disk"), 0, 0)
		}
	case kindElastic:
		base := func(alertname, severity string) map[string]string {
			return map[string]string{"alertname": alertname, "severity": severity, "namespace": c.namespace, "service": "search-elasticsearch-exporter",
				"job": "elasticsearch-exporter", "instance": "search-es-http.data.svc:9114", "cluster": "search"}
		}
		if outage {
			fire(h, base("ElasticsearchClusterRed", "critical"), ann("Elasticsearch cluster red", "Elasticsearch cluster search is red: primary shards unassigned.", "es-red"), 0, 0)
		} else {
			fire(h, base("ElasticsearchClusterYellow", "warning"), ann("Elasticsearch cluster yellow", "Elasticsearch cluster search is yellow: replica shards unassigned.", "es-yellow"), 0, 0)
		}
		l := base("ElasticsearchHeapUsageTooHigh", "warning")
		l["name"] = fmt.Sprintf("search-es-data-%d", g.r.IntN(c.replicas))
		opt(0.6, l, ann("Elasticsearch heap usage too high", "Heap usage of "+l["name"]+" is above 90%.", "es-heap"), 2*time.Minute)
	case kindCeph:
		base := func(alertname, severity string) map[string]string {
			return map[string]string{"alertname": alertname, "severity": severity, "namespace": "rook-ceph", "service": "rook-ceph-mgr", "job": "rook-ceph-mgr", "managedBy": "rook-ceph"}
		}
		if outage {
			fire(h, base("CephHealthError", "critical"), ann("Ceph is in the ERROR state", "The cluster state has been HEALTH_ERROR for more than 5 minutes.", "ceph-health-error"), 0, 0)
			l := base("CephPGsInactive", "critical")
			l["pool_id"], l["name"] = "7", "media.rgw.buckets.data"
			fire(h, l, ann("One or more placement groups are inactive", "PGs of pool media.rgw.buckets.data are inactive.", "ceph-pgs-inactive"), time.Minute, 0)
		} else {
			fire(h, base("CephHealthWarning", "warning"), ann("Ceph is in the WARNING state", "The cluster state has been HEALTH_WARN for more than 15 minutes.", "ceph-health-warning"), 0, 0)
		}
		for range 1 + g.r.IntN(3) {
			l := base("CephOSDDown", "warning")
			l["ceph_daemon"] = fmt.Sprintf("osd.%d", g.r.IntN(36))
			fire(h, l, ann("An OSD has been marked down", l["ceph_daemon"]+" is down.", "ceph-osd-down"), 0, 0)
		}
	case kindRabbit:
		base := func(alertname, severity string) map[string]string {
			return map[string]string{"alertname": alertname, "severity": severity, "namespace": c.namespace, "service": c.name, "job": c.name,
				"instance": "transcode-queue-server-0.transcode-queue-nodes.content:15692"}
		}
		if outage {
			fire(h, base("RabbitmqNodeDown", "critical"), ann("RabbitMQ node down", "Less than 3 nodes running in the RabbitMQ cluster.", "rabbitmq-node-down"), 0, 0)
		}
		fire(h, base("RabbitmqMemoryHigh", "warning"), ann("RabbitMQ memory high", "A node uses more than 90% of the allocated RAM.", "rabbitmq-memory"), 2*time.Minute, 0)
	case kindClickHouse:
		base := func(alertname, severity string) map[string]string {
			return map[string]string{"alertname": alertname, "severity": severity, "namespace": c.namespace, "service": "clickhouse-operator-metrics",
				"job": "clickhouse-operator-metrics", "chi": "analytics", "hostname": fmt.Sprintf("chi-analytics-main-0-%d", g.r.IntN(2))}
		}
		if outage {
			fire(h, base("ClickHouseServerDown", "critical"), ann("ClickHouse server down", "ClickHouse server on "+cluster+" is down.", "clickhouse-down"), 0, 0)
		}
		fire(h, base("ClickHouseRejectedInsert", "warning"), ann("ClickHouse rejected inserts", "Inserts are rejected: too many parts.", "clickhouse-rejected-insert"), time.Minute, 0)
	case kindVault:
		base := func(alertname, severity string) map[string]string {
			return map[string]string{"alertname": alertname, "severity": severity, "namespace": "vault", "service": "vault-internal", "job": "vault",
				"instance": fmt.Sprintf("vault-%d.vault-internal:8200", g.r.IntN(3))}
		}
		if outage {
			l := base("VaultSealed", "critical")
			fire(h, l, ann("Vault sealed", "Vault instance "+l["instance"]+" is sealed.", "vault-sealed"), 0, 0)
		}
		fire(h, base("VaultRequestLatencyHigh", "warning"), ann("Vault request latency high", "Vault request p99 latency is above 500ms.", "vault-latency"), 2*time.Minute, 0)
	}
}

// nodeHit fires what a component with a pod on the dead node raises.
func (g *gen) nodeHit(p *plan, h hit, fire fireFunc) {
	c := h.comp
	if c.stateful() {
		g.datastoreAlerts(h, "outage", fire)
		l := ksmLabels(c.namespace, "KubeStatefulSetReplicasMismatch", "warning")
		l["statefulset"] = c.name
		fire(h, l, ann("StatefulSet has not matched the expected number of replicas.", "StatefulSet "+c.namespace+"/"+c.name+" has not matched the expected number of replicas for longer than 15 minutes.", "kubestatefulsetreplicasmismatch"), 15*time.Minute, 0)
		return
	}
	if c.kind == kindConsumer {
		if g.p(0.4) {
			g.consumerAlerts(p.id, h, fire)
		}
		return
	}
	if g.p(0.75) {
		route := pick(g, c.routes)
		if c.mesh {
			route = ""
		}
		l := httpLabels(c, "HTTPErrorRateHigh", "warning", route)
		fire(h, l, ann(fmt.Sprintf("%s: 5xx above 1%% on %s", c.name, route),
			fmt.Sprintf("%.1f%% of requests to %s %s failed with a 5xx over the last 5 minutes.", 1+g.r.Float64()*6, c.name, route), "http-error-rate"), 0, 0)
	}
	if g.p(0.4) {
		fire(h, httpLabels(c, "HTTPLatencyHigh", "warning", ""), ann(c.name+": p99 latency above SLO",
			fmt.Sprintf("p99 latency of %s is %.2fs (objective 0.8s).", c.name, 0.9+g.r.Float64()*3), "http-latency"), time.Minute, 0)
	}
}

// nodeAlerts fires what the node itself raises: its exporter's target
// goes down at once, the kube-state-metrics alerts after their 15
// minutes.
func (g *gen) nodeAlerts(p *plan, fire fireFunc) {
	until := p.start
	for _, h := range p.hits {
		if h.until.After(until) {
			until = h.until
		}
	}
	// The node stays NotReady until the autoscaler removes it.
	until = until.Add(g.between(5*time.Minute, 20*time.Minute))
	h := hit{at: p.start, until: until}
	l := ksmLabels("kube-system", "KubeNodeNotReady", "warning")
	delete(l, "namespace")
	l["node"] = p.node
	fire(h, l, ann("Node is not ready.", p.node+" has been unready for more than 15 minutes.", "kubenodenotready"), 15*time.Minute, 0)
	l = ksmLabels("kube-system", "KubeNodeUnreachable", "warning")
	delete(l, "namespace")
	l["node"], l["key"], l["effect"] = p.node, "node.kubernetes.io/unreachable", "NoSchedule"
	fire(h, l, ann("Node is unreachable and some workloads may be rescheduled.", p.node+" is unreachable and some workloads may be rescheduled.", "kubenodeunreachable"), 15*time.Minute, 0)
	fire(h, map[string]string{"alertname": "TargetDown", "severity": "warning", "namespace": "monitoring", "job": "node-exporter", "service": nodeExpSvc},
		ann("One or more targets are unreachable.", "8.3% of the node-exporter/node-exporter targets in monitoring namespace are down.", "targetdown"), 10*time.Minute, 0)
}
