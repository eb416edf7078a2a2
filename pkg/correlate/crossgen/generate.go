// Package crossgen generates alert storms with ground truth, written
// independently of pkg/correlate/scenario to cross-check the correlator on
// storms its defaults were not chosen on.
//
// A storm is a day (by default) of an e-commerce estate on Kubernetes:
// Prometheus alerts as an Alertmanager webhook receiver gets them (grouped
// by alertname and service, with group_wait, group_interval and
// repeat_interval, resolved alerts sent once, flaps inside a group
// interval never seen), deploys and rollbacks as change events, and
// detector anomalies as events. The truth says which true incident every
// alert fingerprint and anomaly event belongs to; an unrelated noise alert
// or anomaly is an incident of its own.
//
// The incidents are what an on-call SRE meets: a datastore, queue or
// third-party failure cascading up the dependency graph with per-hop
// delays (some hops late, as caches and retries hide the failure for
// minutes), bad deploys (a change, then alerts on the service and its
// callers, then a rollback), a service overloaded on its own, a Kubernetes
// node lost (alerts on whatever pods ran there, related by nothing in the
// catalog), a DNS failure (every kind of service errors at once, and the
// catalog does not list DNS), several incidents starting at the same
// moment, flapping alerts, and incidents that relapse after resolving.
package crossgen

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"time"
)

// Config shapes a storm. The zero value of a field means its default.
type Config struct {
	// Duration of the storm (24h).
	Duration time.Duration
	// Incidents is the number of true incidents planned (24).
	Incidents int
	// NoiseAlerts and NoiseAnomalies are unrelated alerts and anomalies,
	// each an incident of its own (40 and 12; negative for none).
	NoiseAlerts    int
	NoiseAnomalies int
	// Concurrent is the share of incidents started within three minutes
	// of another one (0.25; negative for none).
	Concurrent float64
	// LateHops is the share of dependency hops that take 4-12 minutes
	// instead of 20s-3m (0.15; negative for none).
	LateHops float64
	// Relapses is the share of incidents that come back 8-30 minutes
	// after resolving (0.25; negative for none).
	Relapses float64
	// BenignChanges are deploys and config changes that break nothing (30).
	BenignChanges int
	// AnomalyRate is the chance that a service affected by an incident
	// also has a detector anomaly (0.35; negative for none).
	AnomalyRate float64
	// Alertmanager's route timers (30s, 5m, 4h).
	GroupWait, GroupInterval, RepeatInterval time.Duration
	// Start is when the storm starts (a fixed day plus the seed in days).
	Start time.Time
	// Beyond adds the incidents the correlator issue does not list, a lost
	// Kubernetes node and a cluster DNS failure, whose alerts the catalog
	// does not relate (about one incident in eight).
	Beyond bool
}

// DefaultConfig is the configuration of the cross-check.
func DefaultConfig() Config { return Config{}.withDefaults() }

func (c Config) withDefaults() Config {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.Incidents, 24)
	def(&c.NoiseAlerts, 40)
	def(&c.NoiseAnomalies, 12)
	def(&c.BenignChanges, 30)
	if c.Duration <= 0 {
		c.Duration = 24 * time.Hour
	}
	if c.Concurrent == 0 {
		c.Concurrent = 0.25
	}
	if c.LateHops == 0 {
		c.LateHops = 0.15
	}
	if c.Relapses == 0 {
		c.Relapses = 0.25
	}
	if c.AnomalyRate == 0 {
		c.AnomalyRate = 0.35
	}
	if c.GroupWait <= 0 {
		c.GroupWait = 30 * time.Second
	}
	if c.GroupInterval <= 0 {
		c.GroupInterval = 5 * time.Minute
	}
	if c.RepeatInterval <= 0 {
		c.RepeatInterval = 4 * time.Hour
	}
	return c
}

// Kind is what sort of true incident it is.
type Kind string

const (
	KindCascade  Kind = "cascade"  // a datastore, queue or third party fails, callers follow
	KindDeploy   Kind = "deploy"   // a bad deploy, its callers, a rollback
	KindOverload Kind = "overload" // one service saturates on its own
	KindNode     Kind = "node"     // a Kubernetes node lost: its pods, of unrelated services
	KindDNS      Kind = "dns"      // cluster DNS fails: errors everywhere at once
	KindNoise    Kind = "noise"    // one unrelated alert or anomaly
)

// Incident is one true incident.
type Incident struct {
	Label string    `json:"label"`
	Kind  Kind      `json:"kind"`
	Root  string    `json:"root"`
	Start time.Time `json:"start"`
	// End is when its last alert stopped firing.
	End time.Time `json:"end"`
	// Services affected, root first.
	Services []string `json:"services"`
	// Relapsed is set when it resolved and came back.
	Relapsed bool `json:"relapsed,omitempty"`
	// Concurrent names the incident it was started together with.
	Concurrent string `json:"concurrent,omitempty"`
	// Items are its alert fingerprints and anomaly event ids that reached
	// the output (an alert that fired and resolved between two group
	// flushes never does).
	Items []string `json:"items"`
}

// span is one firing interval of an alert.
type span struct{ start, end time.Time }

// alert is one Prometheus alert (one label set) over the storm.
type alert struct {
	labels      map[string]string
	annotations map[string]string
	fp          string
	truth       string
	on          []span // sorted, disjoint
}

// anomaly is one detector anomaly event.
type anomaly struct {
	id, truth, service, metric string
	labels                     map[string]string
	at                         time.Time
	value, expected            float64
	score                      float64
}

// change is one change event.
type change struct {
	at                                     time.Time
	service, kind, version, author, commit string
}

type gen struct {
	cfg  Config
	seed uint64
	r    *rand.Rand
	// Anomalies and relapses draw from streams of their own, so that a
	// storm without them has the same incidents otherwise.
	anomalyR, relapseR *rand.Rand
	e                  *estate
	start              time.Time
	alerts             []*alert
	byFP               map[string]*alert
	anomalies          []*anomaly
	changes            []change
	incidents          []*Incident
	versions           map[string]int
}

// Generate makes the storm of seed: the same seed and configuration give
// the same storm.
func Generate(seed uint64, cfg Config) *Storm {
	cfg = cfg.withDefaults()
	r := rand.New(rand.NewPCG(seed, 0x63726f7373676e))
	start := cfg.Start
	if start.IsZero() {
		start = time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC).Add(time.Duration(seed%365) * 24 * time.Hour)
	}
	g := &gen{cfg: cfg, seed: seed, r: r, e: newEstate(r), start: start, byFP: map[string]*alert{}, versions: map[string]int{},
		anomalyR: rand.New(rand.NewPCG(seed, 0x616e6f6d)), relapseR: rand.New(rand.NewPCG(seed, 0x72656c61))}
	g.plan()
	for i := range cfg.NoiseAlerts {
		g.noiseAlert(i)
	}
	for i := range cfg.NoiseAnomalies {
		g.noiseAnomaly(i)
	}
	for range cfg.BenignChanges {
		at := g.at(g.r.Float64() * float64(cfg.Duration))
		svc := g.pickService(roleHTTP, roleWorker)
		kind := "deploy"
		if g.r.Float64() < 0.25 {
			kind = []string{"config", "feature_flag"}[g.r.IntN(2)]
		}
		g.change(at, svc, kind)
	}
	return g.storm()
}

// at is the storm's start plus d.
func (g *gen) at(d float64) time.Time {
	return g.start.Add(time.Duration(d)).Truncate(time.Second)
}

// use makes the generator draw from r until the returned func is called.
func (g *gen) use(r *rand.Rand) (restore func()) {
	old := g.r
	g.r = r
	return func() { g.r = old }
}

func (g *gen) between(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(g.r.Float64()*float64(hi-lo))
}

// plan places the incidents: most at random over the day, a share
// (Config.Concurrent) started within a few minutes of another one (independent incidents at
// the same moment are what time windows cannot tell apart).
func (g *gen) plan() {
	kinds := []struct {
		kind   Kind
		weight float64
	}{{KindCascade, 0.48}, {KindDeploy, 0.33}, {KindOverload, 0.19}}
	if g.cfg.Beyond {
		kinds = []struct {
			kind   Kind
			weight float64
		}{{KindCascade, 0.42}, {KindDeploy, 0.30}, {KindOverload, 0.16}, {KindNode, 0.07}, {KindDNS, 0.05}}
	}
	margin := 30 * time.Minute
	span := g.cfg.Duration - 2*time.Hour - margin
	for i := range g.cfg.Incidents {
		x := g.r.Float64()
		kind := kinds[len(kinds)-1].kind
		for _, k := range kinds {
			if x < k.weight {
				kind = k.kind
				break
			}
			x -= k.weight
		}
		inc := &Incident{Label: fmt.Sprintf("inc-%02d-%s", i+1, kind), Kind: kind}
		// Every draw is made either way, so that storms with and without
		// concurrent starts differ only there.
		inc.Start = g.at(float64(margin) + g.r.Float64()*float64(span))
		concurrent, other, offset := g.r.Float64() < g.cfg.Concurrent, g.r.IntN(len(g.incidents)+1), g.between(-3*time.Minute, 3*time.Minute)
		if concurrent && other < len(g.incidents) {
			inc.Start = g.incidents[other].Start.Add(offset).Truncate(time.Second)
			inc.Concurrent = g.incidents[other].Label
		}
		g.incidents = append(g.incidents, inc)
		switch kind {
		case KindCascade:
			g.cascadeIncident(inc)
		case KindDeploy:
			g.deployIncident(inc)
		case KindOverload:
			g.overloadIncident(inc)
		case KindNode:
			g.nodeIncident(inc)
		case KindDNS:
			g.dnsIncident(inc)
		}
		g.maybeRelapse(inc)
	}
}

// window is when a service is affected by an incident.
type window struct {
	svc      string
	from, to time.Time
	cause    string // the service below it that broke it ("" at the root)
	hop      int
}

// propagate spreads a failure of root (affected over w) up the
// dependents, hop by hop: each caller is hit with a probability falling
// with the hops, after a delay (usually a minute or two, sometimes ten:
// caches, retries and queues hide a failure for a while), and recovers a
// little after its dependency does.
func (g *gen) propagate(root window, reach float64) []window {
	out := []window{root}
	seen := map[string]bool{root.svc: true}
	for i := 0; i < len(out) && len(out) < 11; i++ {
		w := out[i]
		if w.hop >= 4 {
			continue
		}
		for _, d := range g.e.dependents[w.svc] {
			if seen[d] {
				continue
			}
			p := reach * []float64{0.8, 0.6, 0.45, 0.3}[w.hop]
			if g.r.Float64() >= p {
				continue
			}
			seen[d] = true
			// Both delays are drawn, so that storms with and without late
			// hops differ only there.
			delay, lateDelay := g.between(20*time.Second, 3*time.Minute), g.between(4*time.Minute, 12*time.Minute)
			if g.r.Float64() < g.cfg.LateHops {
				delay = lateDelay
			}
			from := w.from.Add(delay)
			to := w.to.Add(g.between(30*time.Second, 4*time.Minute))
			if !from.Before(to.Add(-time.Minute)) {
				continue
			}
			out = append(out, window{svc: d, from: from, to: to, cause: w.svc, hop: w.hop + 1})
		}
	}
	return out
}

func (g *gen) duration() time.Duration {
	d := g.between(8*time.Minute, 40*time.Minute)
	if g.r.Float64() < 0.25 {
		d = g.between(40*time.Minute, 2*time.Hour)
	}
	return d
}

// roots a cascade can start from, weighted by how often they break.
var cascadeRoots = []string{"orders-db", "users-db", "inventory-db", "session-redis", "cart-redis", "search-es", "kafka", "kafka", "psp-proxy", "psp-proxy",
	"inventory-service", "catalog-service", "auth-service", "pricing-service", "user-service", "payments-service", "shipping-service", "notification-service"}

// freeRoot draws a root for inc until it is not a service of another
// incident running then: two independent incidents rooted in one service
// at one time would be one incident to anybody, so the truth would be
// unknowable.
func (g *gen) freeRoot(inc *Incident, draw func() string) string {
	var svc string
	for range 20 {
		svc = draw()
		busy := false
		for _, other := range g.incidents {
			if other != inc && other.Kind != KindNoise && slices.Contains(other.Services, svc) &&
				inc.Start.After(other.Start.Add(-30*time.Minute)) && inc.Start.Before(other.End.Add(15*time.Minute)) {
				busy = true
				break
			}
		}
		if !busy {
			break
		}
	}
	return svc
}

func (g *gen) cascadeIncident(inc *Incident) {
	root := g.freeRoot(inc, func() string { return cascadeRoots[g.r.IntN(len(cascadeRoots))] })
	inc.Root = root
	ws := g.propagate(window{svc: root, from: inc.Start, to: inc.Start.Add(g.duration())}, 1)
	g.raise(inc, ws, "")
}

func (g *gen) deployIncident(inc *Incident) {
	svc := g.freeRoot(inc, func() string { return g.pickService(roleHTTP, roleWorker) })
	inc.Root = svc
	g.change(inc.Start, svc, "deploy")
	// Errors start when the rollout shifts traffic to the new pods: a few
	// minutes, or longer for a slow canary or a leak that takes a while to
	// OOM.
	onset := inc.Start.Add(g.between(time.Minute, 8*time.Minute))
	if g.r.Float64() < 0.2 {
		onset = inc.Start.Add(g.between(10*time.Minute, 22*time.Minute))
	}
	rollback := onset.Add(g.between(8*time.Minute, 45*time.Minute))
	ws := g.propagate(window{svc: svc, from: onset, to: rollback.Add(g.between(2*time.Minute, 6*time.Minute))}, 0.8)
	g.raise(inc, ws, "deploy")
	g.versions[svc] -= 2 // the rollback goes back to the version before
	g.change(rollback, svc, "deploy")
}

func (g *gen) overloadIncident(inc *Incident) {
	svc := g.freeRoot(inc, func() string { return g.pickService(roleHTTP, roleWorker, rolePostgres, roleSearch) })
	inc.Root = svc
	ws := g.propagate(window{svc: svc, from: inc.Start, to: inc.Start.Add(g.duration())}, 0.45)
	g.raise(inc, ws, "overload")
}

// nodeIncident loses a node: the node's own alert (from
// kube-state-metrics, with no service label), then every pod on it goes
// down: alerts on services the catalog does not relate.
func (g *gen) nodeIncident(inc *Incident) {
	node := g.e.nodes[g.r.IntN(len(g.e.nodes))]
	inc.Root = "node/" + node
	end := inc.Start.Add(g.between(6*time.Minute, 25*time.Minute))
	g.fire(inc, "", func() map[string]string {
		return map[string]string{"alertname": "KubeNodeNotReady", "job": "kube-state-metrics", "node": node, "severity": "critical", "namespace": "kube-system", "condition": "Ready"}
	}, "Node "+node+" has been unready for more than 2 minutes.", g.flap(inc.Start.Add(2*time.Minute), end, 0.1)...)
	g.fire(inc, "", func() map[string]string {
		return map[string]string{"alertname": "KubeNodeUnreachable", "job": "kube-state-metrics", "node": node, "severity": "warning", "namespace": "kube-system", "effect": "NoSchedule"}
	}, "Node "+node+" is unreachable.", g.flap(inc.Start.Add(g.between(time.Minute, 3*time.Minute)), end, 0)...)
	for _, svc := range g.e.names {
		for _, p := range g.e.pods[svc] {
			if p.node != node {
				continue
			}
			from := inc.Start.Add(g.between(30*time.Second, 3*time.Minute))
			// Pods are rescheduled elsewhere within minutes.
			to := from.Add(g.between(2*time.Minute, 9*time.Minute))
			inc.Services = appendNew(inc.Services, svc)
			g.fire(inc, svc, func() map[string]string {
				return g.podLabels(svc, p, "TargetDown", "warning")
			}, fmt.Sprintf("%s/%s target is down.", svc, p.name), g.flap(from, to, 0.1)...)
			if g.r.Float64() < 0.5 {
				g.fire(inc, svc, func() map[string]string {
					return g.podLabels(svc, p, "KubePodNotReady", "warning")
				}, "Pod "+p.name+" has been in a non-ready state.", g.flap(from.Add(g.between(0, 2*time.Minute)), to, 0)...)
			}
		}
	}
	// A service that lost most of its pods errors for its callers.
	for _, svc := range slices.Clone(inc.Services) {
		if g.e.specs[svc].role == roleHTTP && g.r.Float64() < 0.4 {
			g.symptoms(inc, window{svc: svc, from: inc.Start.Add(g.between(time.Minute, 4*time.Minute)), to: end, cause: "node", hop: 1})
		}
	}
	g.anomalyFor(inc, inc.Services)
}

// dnsIncident fails cluster DNS: CoreDNS alerts, then errors and timeouts
// on services all over the estate within a couple of minutes. The
// catalog does not list DNS as a dependency (nobody does).
func (g *gen) dnsIncident(inc *Incident) {
	inc.Root = "coredns"
	end := inc.Start.Add(g.between(6*time.Minute, 20*time.Minute))
	g.raise(inc, []window{{svc: "coredns", from: inc.Start, to: end}}, "")
	victims := g.r.Perm(len(g.e.names))[:4+g.r.IntN(5)]
	var ws []window
	for _, i := range victims {
		svc := g.e.names[i]
		if svc == "coredns" || (g.e.specs[svc].role != roleHTTP && g.e.specs[svc].role != roleWorker) {
			continue
		}
		ws = append(ws, window{svc: svc, from: inc.Start.Add(g.between(30*time.Second, 3*time.Minute)), to: end.Add(g.between(0, 3*time.Minute)), cause: "dns", hop: 1})
	}
	g.raise(inc, ws, "")
}

// maybeRelapse brings an incident back after it resolved, a quarter of
// the time: the fix did not hold. Its root alerts fire again (the same
// label sets), some of its callers too.
func (g *gen) maybeRelapse(inc *Incident) {
	defer g.use(g.relapseR)()
	if g.r.Float64() >= g.cfg.Relapses || inc.End.IsZero() {
		return
	}
	inc.Relapsed = true
	back := inc.End.Add(g.between(8*time.Minute, 30*time.Minute))
	until := back.Add(g.between(5*time.Minute, 20*time.Minute))
	first := true
	for _, a := range g.alerts {
		if a.truth != inc.Label {
			continue
		}
		svc := a.labels["service"]
		if svc == inc.Root || first || g.r.Float64() < 0.35 {
			first = false
			from := back.Add(g.between(0, 3*time.Minute))
			if svc != inc.Root {
				from = from.Add(g.between(30*time.Second, 4*time.Minute))
			}
			a.on = append(a.on, g.flap(from, until.Add(g.between(0, 3*time.Minute)), 0.2)...)
			inc.End = later(inc.End, a.on[len(a.on)-1].end)
		}
	}
}

// raise makes the alerts of each affected service's window.
func (g *gen) raise(inc *Incident, ws []window, why string) {
	for _, w := range ws {
		inc.Services = appendNew(inc.Services, w.svc)
		if w.cause == "" {
			g.rootAlerts(inc, w, why)
		} else {
			g.symptoms(inc, w)
		}
	}
	g.anomalyFor(inc, inc.Services)
}

func appendNew(list []string, s string) []string {
	if slices.Contains(list, s) {
		return list
	}
	return append(list, s)
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// flap is the firing spans of an alert active from from to to: one span
// after its `for:` delay, or, with probability p, several with gaps (a
// value hovering around its threshold).
func (g *gen) flap(from, to time.Time, p float64) []span {
	from = from.Add(g.between(0, 90*time.Second)).Truncate(time.Second)
	to = to.Add(g.between(0, 2*time.Minute)).Truncate(time.Second)
	if !to.After(from.Add(30 * time.Second)) {
		to = from.Add(g.between(time.Minute, 3*time.Minute)).Truncate(time.Second)
	}
	if g.r.Float64() >= p {
		return []span{{from, to}}
	}
	var out []span
	t := from
	for t.Before(to) {
		on := g.between(time.Minute, 7*time.Minute)
		end := t.Add(on).Truncate(time.Second)
		if end.After(to) {
			end = to
		}
		if end.Sub(t) >= 30*time.Second {
			out = append(out, span{t, end})
		}
		t = end.Add(g.between(time.Minute, 6*time.Minute)).Truncate(time.Second)
	}
	if len(out) == 0 {
		out = []span{{from, to}}
	}
	return out
}

// fire records an alert of the incident with the labels make returns,
// firing over spans. A label set already used by another incident (the
// scorer knows an alert by its fingerprint, so one alert is in one
// incident) is drawn again, up to a few times, then the alert is dropped.
func (g *gen) fire(inc *Incident, svc string, make func() map[string]string, summary string, spans ...span) *alert {
	for range 4 {
		labels := make()
		labels["cluster"] = "prod-eu-west-1"
		labels["prometheus"] = "monitoring/k8s"
		fp := Fingerprint(labels)
		if a, ok := g.byFP[fp]; ok {
			if a.truth != inc.Label {
				continue
			}
			a.on = mergeSpans(append(a.on, spans...))
			return a
		}
		a := &alert{labels: labels, fp: fp, truth: inc.Label, on: mergeSpans(spans), annotations: map[string]string{
			"summary":     summary,
			"description": summary + " Affected service: " + svc + ".",
			"runbook_url": "https://runbooks.shop.example.com/alerts/" + labels["alertname"],
		}}
		if svc == "" {
			a.annotations["description"] = summary
		}
		g.alerts = append(g.alerts, a)
		g.byFP[fp] = a
		if inc.Start.IsZero() || a.on[0].start.Before(inc.Start) {
			inc.Start = a.on[0].start
		}
		inc.End = later(inc.End, a.on[len(a.on)-1].end)
		return a
	}
	return nil
}

func mergeSpans(s []span) []span {
	slices.SortFunc(s, func(a, b span) int { return a.start.Compare(b.start) })
	var out []span
	for _, x := range s {
		if n := len(out); n > 0 && !x.start.After(out[n-1].end) {
			out[n-1].end = later(out[n-1].end, x.end)
			continue
		}
		out = append(out, x)
	}
	return out
}

// baseLabels are the labels every alert of a service carries.
func (g *gen) baseLabels(svc, name, severity string) map[string]string {
	return map[string]string{"alertname": name, "service": svc, "namespace": g.e.specs[svc].namespace, "job": svc, "severity": severity}
}

func (g *gen) podLabels(svc string, p pod, name, severity string) map[string]string {
	l := g.baseLabels(svc, name, severity)
	l["pod"] = p.name
	l["instance"] = p.ip + ":" + port(g.e.specs[svc].role)
	l["container"] = svc
	return l
}

func port(r role) string {
	switch r {
	case rolePostgres:
		return "9187"
	case roleRedis:
		return "9121"
	case roleKafka:
		return "9308"
	case roleSearch:
		return "9114"
	case roleDNS:
		return "9153"
	}
	return "8080"
}

func (g *gen) randomPod(svc string) pod {
	ps := g.e.pods[svc]
	return ps[g.r.IntN(len(ps))]
}

func (g *gen) handlerLabels(svc, name, severity string) map[string]string {
	l := g.baseLabels(svc, name, severity)
	if hs := g.e.specs[svc].handlers; len(hs) > 0 {
		l["handler"] = hs[g.r.IntN(len(hs))]
	}
	return l
}

// rootAlerts are the alerts of the service where an incident starts, by
// what the service is.
func (g *gen) rootAlerts(inc *Incident, w window, why string) {
	svc := w.svc
	spec := g.e.specs[svc]
	f := func(p float64, name, severity, summary string, perPod bool, flapP float64) {
		if g.r.Float64() >= p {
			return
		}
		from := w.from
		make := func() map[string]string { return g.baseLabels(svc, name, severity) }
		if perPod {
			make = func() map[string]string { return g.podLabels(svc, g.randomPod(svc), name, severity) }
		}
		g.fire(inc, svc, make, summary, g.flap(from, w.to, flapP)...)
	}
	switch {
	case why == "deploy":
		n := 1 + g.r.IntN(3)
		for range n {
			p := g.randomPod(svc)
			g.fire(inc, svc, func() map[string]string { return g.podLabels(svc, p, "PodCrashLooping", "warning") },
				"Pod "+p.name+" is restarting frequently.", g.flap(w.from, w.to, 0.4)...)
		}
		g.fire(inc, svc, func() map[string]string { return g.handlerLabels(svc, "HighErrorRate", "critical") },
			"5xx ratio above 5% on "+svc+".", g.flap(w.from, w.to, 0.2)...)
		f(0.5, "HighLatencyP99", "warning", "p99 latency above SLO on "+svc+".", false, 0.3)
		f(0.25, "ContainerOOMKilled", "warning", "Container OOMKilled in "+svc+".", true, 0.3)
	case spec.role == rolePostgres:
		mode := g.r.IntN(3)
		switch mode {
		case 0:
			f(1, "DiskFull", "critical", "Disk on "+svc+" is over 95% full.", true, 0)
			f(0.8, "PostgresDown", "critical", "PostgreSQL on "+svc+" is not accepting connections.", true, 0.2)
		case 1:
			f(1, "PostgresTooManyConnections", "warning", "Connections on "+svc+" above 90% of max_connections.", true, 0.3)
			f(0.7, "PostgresSlowQueries", "warning", "Mean query time on "+svc+" is high.", false, 0.3)
		default:
			f(1, "PostgresReplicationLag", "critical", "Replica of "+svc+" is behind the primary.", true, 0.2)
			f(0.6, "PostgresDeadlocks", "warning", "Deadlocks on "+svc+".", false, 0.4)
		}
		f(0.4, "HighCPUUsage", "warning", "CPU usage on "+svc+" above 90%.", true, 0.3)
	case spec.role == roleRedis:
		f(0.7, "RedisMemoryHigh", "warning", svc+" memory above 90% of maxmemory.", true, 0.3)
		f(0.6, "RedisRejectedConnections", "critical", svc+" is rejecting connections.", true, 0.2)
		f(0.4, "RedisDown", "critical", svc+" is down.", true, 0)
	case spec.role == roleKafka:
		f(0.8, "KafkaBrokerDown", "critical", "A Kafka broker is down.", true, 0)
		f(0.9, "KafkaUnderReplicatedPartitions", "warning", "Partitions under-replicated.", false, 0.3)
		f(0.4, "KafkaOfflinePartitions", "critical", "Partitions offline.", false, 0.1)
	case spec.role == roleSearch:
		f(0.8, "ElasticsearchClusterRed", "critical", "Cluster "+svc+" is red.", false, 0.2)
		f(0.6, "ElasticsearchHeapHigh", "warning", "Heap above 90% on "+svc+".", true, 0.3)
		f(0.4, "ElasticsearchDiskWatermarkHigh", "warning", "Disk high watermark reached on "+svc+".", true, 0)
	case spec.role == roleExternal:
		provider := []string{"stripe", "adyen"}[g.r.IntN(2)]
		g.fire(inc, svc, func() map[string]string {
			l := g.handlerLabels(svc, "UpstreamProviderErrors", "critical")
			l["provider"] = provider
			return l
		}, "Payment provider "+provider+" is returning errors.", g.flap(w.from, w.to, 0.3)...)
		f(0.6, "HighLatencyP99", "warning", "p99 latency above SLO on "+svc+".", false, 0.3)
	case spec.role == roleDNS:
		f(1, "CoreDNSErrorsHigh", "critical", "CoreDNS is returning SERVFAIL.", false, 0.2)
		f(0.7, "CoreDNSLatencyHigh", "warning", "CoreDNS latency is high.", false, 0.3)
		f(0.5, "CoreDNSForwardFailures", "warning", "CoreDNS upstream forwarding fails.", true, 0.2)
	case spec.role == roleWorker:
		g.consumerLag(inc, w)
		f(0.5, "HighCPUThrottling", "warning", svc+" is CPU-throttled.", true, 0.4)
		f(0.3, "PodCrashLooping", "warning", svc+" pod is restarting frequently.", true, 0.3)
	default: // an HTTP service, on its own (overload, a leak, a bug)
		g.fire(inc, svc, func() map[string]string { return g.handlerLabels(svc, "HighLatencyP99", "warning") },
			"p99 latency above SLO on "+svc+".", g.flap(w.from, w.to, 0.35)...)
		f(0.6, "HighErrorRate", "critical", "5xx ratio above 5% on "+svc+".", false, 0.3)
		f(0.5, "HighCPUThrottling", "warning", svc+" is CPU-throttled.", true, 0.4)
		f(0.3, "PodCrashLooping", "warning", svc+" pod is restarting frequently.", true, 0.3)
		f(0.25, "HPAMaxedOut", "warning", svc+" HPA at max replicas.", false, 0)
	}
}

// symptoms are the alerts of a service hurt by a dependency (or by DNS or
// a lost node): errors and latency on its handlers, an open circuit
// breaker to the dependency, and consumer lag for a queue consumer.
func (g *gen) symptoms(inc *Incident, w window) {
	svc := w.svc
	spec := g.e.specs[svc]
	if spec.role == roleWorker {
		g.consumerLag(inc, w)
		if g.r.Float64() < 0.5 {
			g.fire(inc, svc, func() map[string]string { return g.baseLabels(svc, "ConsumerProcessingErrors", "warning") },
				svc+" fails to process messages.", g.flap(w.from, w.to, 0.3)...)
		}
		return
	}
	if spec.role != roleHTTP {
		g.fire(inc, svc, func() map[string]string { return g.podLabels(svc, g.randomPod(svc), "TargetDown", "warning") },
			svc+" target is down.", g.flap(w.from, w.to, 0.2)...)
		return
	}
	n := 0
	if g.r.Float64() < 0.8 {
		n++
		g.fire(inc, svc, func() map[string]string { return g.handlerLabels(svc, "HighErrorRate", "critical") },
			"5xx ratio above 5% on "+svc+".", g.flap(w.from, w.to, 0.25)...)
		if g.r.Float64() < 0.35 {
			g.fire(inc, svc, func() map[string]string { return g.handlerLabels(svc, "HighErrorRate", "warning") },
				"5xx ratio above 1% on "+svc+".", g.flap(w.from.Add(-time.Minute), w.to, 0.3)...)
		}
	}
	if n == 0 || g.r.Float64() < 0.5 {
		g.fire(inc, svc, func() map[string]string { return g.handlerLabels(svc, "HighLatencyP99", "warning") },
			"p99 latency above SLO on "+svc+".", g.flap(w.from, w.to, 0.35)...)
	}
	if w.cause != "" && w.cause != "dns" && w.cause != "node" && g.r.Float64() < 0.3 {
		g.fire(inc, svc, func() map[string]string {
			l := g.baseLabels(svc, "CircuitBreakerOpen", "warning")
			l["upstream"] = w.cause
			return l
		}, svc+" opened its circuit breaker to "+w.cause+".", g.flap(w.from.Add(30*time.Second), w.to, 0.3)...)
	}
	if g.r.Float64() < 0.1 {
		g.fire(inc, svc, func() map[string]string { return g.podLabels(svc, g.randomPod(svc), "PodCrashLooping", "warning") },
			svc+" pod is restarting frequently (liveness probe fails).", g.flap(w.from, w.to, 0.3)...)
	}
}

func (g *gen) consumerLag(inc *Incident, w window) {
	svc := w.svc
	topic := g.e.specs[svc].consumes
	g.fire(inc, svc, func() map[string]string {
		l := g.baseLabels(svc, "KafkaConsumerLag", []string{"warning", "critical"}[g.r.IntN(2)])
		l["consumergroup"] = svc
		l["topic"] = topic
		return l
	}, "Consumer group "+svc+" is lagging on "+topic+".", g.flap(w.from.Add(g.between(0, 2*time.Minute)), w.to.Add(g.between(time.Minute, 5*time.Minute)), 0.25)...)
}

// pickService is a random service of one of the roles.
func (g *gen) pickService(roles ...role) string {
	var c []string
	for _, n := range g.e.names {
		if slices.Contains(roles, g.e.specs[n].role) {
			c = append(c, n)
		}
	}
	return c[g.r.IntN(len(c))]
}

// change records a change event; a deploy rolls the service's pods.
func (g *gen) change(at time.Time, svc, kind string) {
	g.versions[svc]++
	v := g.versions[svc]
	authors := []string{"argocd", "j.okafor", "m.silva", "p.novak", "flux", "s.tanaka"}
	g.changes = append(g.changes, change{at: at, service: svc, kind: kind, version: fmt.Sprintf("v2.%d.%d", 10+v/5, v%5+g.r.IntN(2)),
		author: authors[g.r.IntN(len(authors))], commit: fmt.Sprintf("%08x%08x", g.r.Uint32(), g.r.Uint32())})
	if kind == "deploy" {
		g.e.rollPods(g.r, svc)
	}
}

var anomalyMetrics = map[role][]string{
	roleHTTP:     {"http_server_requests_errors_ratio", "http_server_request_duration_p99", "http_server_requests_rate"},
	roleWorker:   {"kafka_consumergroup_lag", "messages_processed_rate"},
	rolePostgres: {"pg_stat_activity_count", "pg_replication_lag_seconds", "node_filesystem_avail_bytes"},
	roleRedis:    {"redis_memory_used_bytes", "redis_connected_clients"},
	roleKafka:    {"kafka_server_under_replicated_partitions", "kafka_network_request_rate"},
	roleSearch:   {"elasticsearch_jvm_memory_used_ratio", "elasticsearch_search_latency_p99"},
	roleExternal: {"upstream_errors_ratio", "upstream_request_duration_p99"},
	roleDNS:      {"coredns_dns_responses_servfail_rate", "coredns_dns_request_duration_p99"},
}

// anomalyFor adds detector anomalies on some of the incident's services,
// seen a little before or after their alerts (a detector often leads the
// alert's `for:`).
func (g *gen) anomalyFor(inc *Incident, services []string) {
	if g.cfg.AnomalyRate < 0 {
		return
	}
	defer g.use(g.anomalyR)()
	first := map[string]time.Time{}
	for _, a := range g.alerts {
		if a.truth == inc.Label {
			svc := a.labels["service"]
			if t, ok := first[svc]; !ok || a.on[0].start.Before(t) {
				first[svc] = a.on[0].start
			}
		}
	}
	for _, svc := range services {
		t, ok := first[svc]
		if !ok || g.r.Float64() >= g.cfg.AnomalyRate {
			continue
		}
		g.addAnomaly(inc.Label, svc, t.Add(g.between(-3*time.Minute, time.Minute)), 0.7+0.3*g.r.Float64())
	}
}

func (g *gen) addAnomaly(truth, svc string, at time.Time, score float64) {
	ms := anomalyMetrics[g.e.specs[svc].role]
	metric := ms[g.r.IntN(len(ms))]
	at = at.Truncate(time.Second)
	expected := 10 + 100*g.r.Float64()
	a := &anomaly{truth: truth, service: svc, metric: metric, at: at, expected: expected, value: expected * (2 + 3*g.r.Float64()), score: score,
		labels: map[string]string{"service": svc, "namespace": g.e.specs[svc].namespace, "job": svc, "__name__": metric}}
	a.id = derivedID(at, g.seed, len(g.anomalies))
	g.anomalies = append(g.anomalies, a)
}

// noiseAlerts are the alerts a day brings that belong to nothing: a cron
// job failing, a certificate to renew, a disk filling slowly, a pod OOM,
// a latency blip. Some flap, some fire for hours (and are resent on the
// repeat interval).
func (g *gen) noiseAlert(i int) {
	inc := &Incident{Label: fmt.Sprintf("noise-%02d", i+1), Kind: KindNoise}
	at := g.at(g.r.Float64() * float64(g.cfg.Duration-20*time.Minute))
	short := g.between(2*time.Minute, 15*time.Minute)
	long := g.between(time.Hour, 7*time.Hour)
	type kindOf struct {
		name, severity string
		roles          []role
		dur            time.Duration
		flap           float64
		perPod         bool
	}
	ks := []kindOf{
		{"KubeJobFailed", "warning", []role{roleHTTP, rolePostgres}, long / 3, 0, false},
		{"CertificateExpiringSoon", "warning", []role{roleHTTP}, long, 0, false},
		{"DiskSpaceLow", "warning", []role{rolePostgres, roleKafka, roleSearch}, long, 0.2, true},
		{"ContainerOOMKilled", "warning", []role{roleHTTP, roleWorker}, short, 0, true},
		{"HighLatencyP99", "warning", []role{roleHTTP}, short, 0.5, false},
		{"HighCPUThrottling", "warning", []role{roleHTTP, roleWorker}, short * 2, 0.6, true},
		{"HighErrorRate", "warning", []role{roleHTTP}, short, 0.4, false},
		{"PodCrashLooping", "warning", []role{roleHTTP, roleWorker}, short, 0.3, true},
		{"KafkaConsumerLag", "warning", []role{roleWorker}, short, 0.4, false},
		{"RedisEvictions", "warning", []role{roleRedis}, short * 2, 0.5, false},
		{"NodeFilesystemAlmostFull", "warning", nil, long, 0.1, false},
	}
	k := ks[g.r.IntN(len(ks))]
	if k.roles == nil {
		node := g.e.nodes[g.r.IntN(len(g.e.nodes))]
		g.incidents = append(g.incidents, inc)
		g.fire(inc, "", func() map[string]string {
			return map[string]string{"alertname": k.name, "job": "node-exporter", "instance": node + ":9100", "device": "/dev/nvme0n1p1", "mountpoint": "/", "severity": k.severity, "namespace": "monitoring"}
		}, "Filesystem on "+node+" is over 85% full.", g.flap(at, at.Add(k.dur), k.flap)...)
		return
	}
	svc := g.pickService(k.roles...)
	inc.Root = svc
	inc.Services = []string{svc}
	g.incidents = append(g.incidents, inc)
	make := func() map[string]string {
		var l map[string]string
		if k.perPod {
			l = g.podLabels(svc, g.randomPod(svc), k.name, k.severity)
		} else {
			l = g.handlerLabels(svc, k.name, k.severity)
		}
		switch k.name {
		case "KubeJobFailed":
			l["job_name"] = fmt.Sprintf("%s-backup-%d", svc, 29000000+g.r.IntN(99999))
		case "CertificateExpiringSoon":
			l["certificate"] = svc + "-tls"
		case "KafkaConsumerLag":
			l["consumergroup"], l["topic"] = svc, g.e.specs[svc].consumes
		}
		return l
	}
	g.fire(inc, svc, make, k.name+" on "+svc+".", g.flap(at, at.Add(k.dur), k.flap)...)
}

func (g *gen) noiseAnomaly(i int) {
	defer g.use(g.anomalyR)()
	svc := g.e.names[g.r.IntN(len(g.e.names))]
	label := fmt.Sprintf("noise-anomaly-%02d", i+1)
	g.incidents = append(g.incidents, &Incident{Label: label, Kind: KindNoise, Root: svc, Services: []string{svc}})
	g.addAnomaly(label, svc, g.at(g.r.Float64()*float64(g.cfg.Duration-10*time.Minute)), 0.5+0.4*g.r.Float64())
}
