package stagegen

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"
)

// Storm is one generated day of what the pipeline's stages emit, with its
// ground truth.
type Storm struct {
	// Lines are the replay lines (alertmanager, change, event), one JSON
	// object each, in non-decreasing time.
	Lines [][]byte
	// Catalog is the service catalog YAML (imperfect, as real ones are).
	Catalog []byte
	// Truth maps every item (an alert's Alertmanager fingerprint, an
	// anomaly event's id) to its true incident. Each noise unit is an
	// incident of its own.
	Truth map[string]string
	// Incidents is the number of distinct incidents in Truth.
	Incidents int
}

// Config are the knobs of a storm. DefaultConfig is calibrated (see doc.go).
type Config struct {
	// Start and Duration: the stretch of operations the storm covers.
	Start    time.Time
	Duration time.Duration

	// Incidents is the number of real failures (each becomes one true
	// incident, if anything of it reaches the lines). Mix weighs the
	// archetypes: dependency cascade from a backing service, bad deploy,
	// bad config/flag change, third-party outage, resource exhaustion of
	// one service, Kubernetes node failure.
	Incidents int
	Mix       [6]float64
	// Concurrent is the share of incidents that start within a few
	// minutes of another, unrelated one.
	Concurrent float64
	// Recurring is the share of failures that come in two or three waves
	// with quiet spells between; Canary the share of bad deploys seen
	// first on a canary, minutes before the promotion breaks everything.
	Recurring float64
	Canary    float64
	// MedianDuration is the median length of a failure (log-normal,
	// clipped to 6 min..3 h).
	MedianDuration time.Duration
	// Propagate is the chance that a caller of a failing service is hurt
	// (times 0.7 per further hop, up to MaxHops).
	Propagate float64
	MaxHops   int
	// EdgePropagate is the chance that an edge service (ingress, gateway,
	// BFF) calling a hurt service is hurt, at any hop.
	EdgePropagate float64
	// AlertCoverage is the chance that a symptom on a tier-1 service has
	// an alert rule that fires (tier 2: 0.6×, tier 3: 0.35×);
	// DetectorCoverage the chance the anomaly detector watches the
	// symptom's series; LogCoverage the chance an error symptom shows as
	// an error burst in the logs.
	AlertCoverage    float64
	DetectorCoverage float64
	LogCoverage      float64

	// Noise: alerts that belong to nothing, alerts that flap all day,
	// detector blips, error bursts; harmless changes.
	NoiseAlerts   int
	ChronicAlerts int
	NoiseBlips    int
	// ChattySeries series (a batch job's latency, a cron's CPU) blip
	// ChattyBlips times a day each, every blip about nothing.
	ChattySeries    int
	ChattyBlips     int
	NoiseBursts     int
	HarmlessChanges int

	// The detector publishes an episode update at most every
	// DetectorUpdate; the log miner reports a burst at most every
	// BurstEvery while it lasts.
	DetectorUpdate time.Duration
	BurstEvery     time.Duration

	// Prometheus rule evaluation and Alertmanager's route.
	EvalInterval   time.Duration
	GroupBy        []string
	GroupWait      time.Duration
	GroupInterval  time.Duration
	RepeatInterval time.Duration
	SendResolved   bool

	// Catalog imperfections: services never registered, real dependencies
	// never declared, declared dependencies that no longer exist.
	CatalogMissingServices int
	CatalogMissingEdges    int
	CatalogStaleEdges      int

	// Nodes is the number of Kubernetes nodes pods run on.
	Nodes int
}

// DefaultConfig is a day of a 56-service shop, calibrated so that the
// naive baselines score as the correlator's issue says of real storms.
func DefaultConfig() Config {
	return Config{
		Start:                  time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC),
		Duration:               24 * time.Hour,
		Incidents:              20,
		Mix:                    [6]float64{0.32, 0.24, 0.1, 0.1, 0.14, 0.1},
		Concurrent:             0.1,
		Recurring:              0.3,
		Canary:                 0.5,
		MedianDuration:         14 * time.Minute,
		Propagate:              0.85,
		MaxHops:                4,
		EdgePropagate:          0.85,
		AlertCoverage:          0.55,
		DetectorCoverage:       0.8,
		LogCoverage:            0.6,
		NoiseAlerts:            25,
		ChronicAlerts:          2,
		NoiseBlips:             35,
		ChattySeries:           5,
		ChattyBlips:            18,
		NoiseBursts:            20,
		HarmlessChanges:        70,
		DetectorUpdate:         5 * time.Minute,
		BurstEvery:             3 * time.Minute,
		EvalInterval:           30 * time.Second,
		GroupBy:                []string{"alertname", "namespace"},
		GroupWait:              30 * time.Second,
		GroupInterval:          5 * time.Minute,
		RepeatInterval:         4 * time.Hour,
		SendResolved:           true,
		CatalogMissingServices: 3,
		CatalogMissingEdges:    5,
		CatalogStaleEdges:      4,
		Nodes:                  14,
	}
}

// alertCond is an interval during which an alert rule's condition holds.
type alertCond struct {
	def        alertDef
	fp         string
	start, end time.Time
	owner      string
}

// episode is an interval during which a series is anomalous.
type episode struct {
	svc        string
	m          metricDef
	start, end time.Time
	owner      string
}

// burst is an interval during which a log template of a service bursts.
type burst struct {
	svc, tmpl  string
	start, end time.Time
	rate       float64 // lines per minute
	owner      string
}

type change struct {
	t                                  time.Time
	svc, kind, version, author, commit string
	url                                string
}

type gen struct {
	seed    uint64
	r       *rand.Rand
	cfg     Config
	w       *world
	conds   []alertCond
	fpOwner map[string]string
	eps     []episode
	bursts  []burst
	changes []change
	nNoise  int
	version map[string][3]int
}

// Generate makes the storm of seed: the same seed and config always give
// the same storm.
func Generate(seed uint64, cfg Config) Storm {
	r := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	g := &gen{seed: seed, r: r, cfg: cfg, fpOwner: map[string]string{}, version: map[string][3]int{}}
	g.w = newWorld(r, cfg)
	g.incidents()
	g.noise()
	g.harmlessChanges()
	return g.emit()
}

func (g *gen) end() time.Time { return g.cfg.Start.Add(g.cfg.Duration) }

// between is a uniform duration in [a, b).
func (g *gen) between(a, b time.Duration) time.Duration {
	if b <= a {
		return a
	}
	return a + time.Duration(g.r.Int64N(int64(b-a)))
}

func (g *gen) chance(p float64) bool { return g.r.Float64() < p }

// addAlert records that the rule def's condition holds over [start, end).
// An alert's fingerprint is one item of one incident: when an alert with
// the same labels already belongs to another incident, this occurrence is
// left out (the truth could not say which incident it belongs to).
func (g *gen) addAlert(def alertDef, start, end time.Time, owner string) {
	if def.labels["alertname"] == "" {
		return
	}
	fp := amFingerprint(def.labels)
	if o, ok := g.fpOwner[fp]; ok && o != owner {
		return
	}
	g.fpOwner[fp] = owner
	g.conds = append(g.conds, alertCond{def: def, fp: fp, start: start, end: end, owner: owner})
}

func (g *gen) alertP(s *service) float64 {
	switch s.tier {
	case 1:
		return g.cfg.AlertCoverage
	case 2:
		return g.cfg.AlertCoverage * 0.6
	}
	return g.cfg.AlertCoverage * 0.35
}

// show makes a symptom of a service visible to the stages: an anomaly
// episode on its series (detector coverage), an alert (alert coverage),
// and for errors an error burst (log coverage) of template tmpl.
func (g *gen) show(s *service, sym symptom, start, end time.Time, owner, tmpl string, boost float64) {
	if m, ok := metricFor(s.kind, sym); ok && sym != symCrash && g.chance(min(1, g.cfg.DetectorCoverage*boost)) {
		g.eps = append(g.eps, episode{svc: s.name, m: m, start: start.Add(g.between(0, time.Minute)), end: end.Add(-g.between(0, 2*time.Minute)), owner: owner})
	}
	if g.chance(min(1, g.alertP(s)*boost)) {
		if def, ok := g.alertFor(s, sym); ok {
			g.addAlert(def, start.Add(g.between(0, 90*time.Second)), end.Add(g.between(-2*time.Minute, time.Minute)), owner)
		}
	}
	if (sym == symErrors || sym == symCrash) && tmpl != "" && g.chance(min(1, g.cfg.LogCoverage*boost)) {
		g.bursts = append(g.bursts, burst{svc: s.name, tmpl: tmpl, start: start.Add(g.between(0, time.Minute)), end: end, rate: 20 + 400*g.r.Float64(), owner: owner})
	}
}

// rootSymptoms are how a backing service shows its own failure.
func rootSymptoms(k kind) [][]symptom {
	switch k {
	case kPostgres:
		return [][]symptom{{symConn, symLatency}, {symLatency, symSaturation}, {symLag}, {symDisk, symErrors}, {symConn, symErrors}}
	case kRedis:
		return [][]symptom{{symMemory, symLatency}, {symErrors, symLatency}}
	case kMemcached:
		return [][]symptom{{symMemory, symLatency}}
	case kKafka:
		return [][]symptom{{symLag, symLatency}, {symDisk, symErrors}, {symLatency, symErrors}}
	case kSearch:
		return [][]symptom{{symMemory, symLatency}, {symErrors, symLatency}}
	case kObject:
		return [][]symptom{{symErrors, symLatency}}
	case kExternal:
		return [][]symptom{{symErrors, symLatency}, {symLatency}}
	case kWarehouse:
		return [][]symptom{{symLatency, symSaturation}}
	case kWorker:
		return [][]symptom{{symErrors, symLag}, {symLag}, {symCrash, symErrors}}
	}
	return [][]symptom{{symErrors, symLatency}, {symLatency, symSaturation}, {symCrash, symErrors}, {symMemory, symErrors}}
}

// cascade spreads a failure of root up its callers: each caller is hurt
// with a chance that shrinks per hop, a little later, and shows latency
// and errors naming the dependency that failed it.
func (g *gen) cascade(root *service, start, end time.Time, owner string, hops int) {
	type hit struct {
		s     *service
		from  *service
		at    time.Time
		hop   int
		until time.Time
	}
	seen := map[string]bool{root.name: true}
	queue := []hit{{s: root, at: start, until: end}}
	for len(queue) > 0 {
		h := queue[0]
		queue = queue[1:]
		if h.hop > 0 {
			tmpl := depTemplate(g.r, h.from)
			syms := []symptom{symLatency, symErrors}
			if h.s.kind == kWorker {
				syms = []symptom{symLag, symErrors}
			}
			if h.s.kind == kEdge && g.chance(0.3) {
				syms = append(syms, symTraffic)
			}
			for _, sym := range syms {
				if g.chance(0.8) {
					g.show(h.s, sym, h.at.Add(g.between(0, time.Minute)), h.until, owner, tmpl, 1)
				}
			}
		}
		if h.hop >= hops {
			continue
		}
		p := g.cfg.Propagate * math.Pow(0.7, float64(h.hop))
		for _, c := range g.w.callers[h.s.name] {
			pc := p
			if g.w.byName[c].kind == kEdge {
				// What users see, the edge sees: nearly every user-facing
				// failure reaches the gateways' latency and SLOs.
				pc = max(pc, g.cfg.EdgePropagate)
			}
			if seen[c] || !g.chance(pc) {
				continue
			}
			seen[c] = true
			until := h.until.Add(g.between(-3*time.Minute, 3*time.Minute))
			at := h.at.Add(g.between(20*time.Second, 3*time.Minute))
			if !until.After(at.Add(4 * time.Minute)) {
				until = at.Add(4 * time.Minute)
			}
			queue = append(queue, hit{s: g.w.byName[c], from: h.s, at: at, hop: h.hop + 1, until: until})
		}
	}
}

// incidents schedules the real failures of the day.
func (g *gen) incidents() {
	var starts []time.Time
	span := g.cfg.Duration - 90*time.Minute
	// Failures are spread over the day (one per slot, anywhere in it),
	// except the concurrent ones, which start within minutes of another.
	slot := span / time.Duration(max(1, g.cfg.Incidents))
	for i := 0; i < g.cfg.Incidents; i++ {
		var t time.Time
		if len(starts) > 0 && g.chance(g.cfg.Concurrent) {
			t = starts[g.r.IntN(len(starts))].Add(g.between(-4*time.Minute, 4*time.Minute))
		} else {
			t = g.cfg.Start.Add(20*time.Minute + time.Duration(i)*slot + g.between(0, slot))
		}
		starts = append(starts, t)
	}
	slices.SortFunc(starts, func(a, b time.Time) int { return a.Compare(b) })
	var total float64
	for _, m := range g.cfg.Mix {
		total += m
	}
	for i, t := range starts {
		d := time.Duration(float64(g.cfg.MedianDuration) * math.Exp(0.5*g.r.NormFloat64()))
		d = min(max(d, 6*time.Minute), 90*time.Minute)
		x := g.r.Float64() * total
		a := 0
		for a < len(g.cfg.Mix)-1 && x >= g.cfg.Mix[a] {
			x -= g.cfg.Mix[a]
			a++
		}
		// The id names the archetype, for whoever reads the losses by kind.
		owner := fmt.Sprintf("inc-%03d-%s", i+1, []string{"backing", "deploy", "change", "provider", "exhaustion", "node"}[min(a, 5)])
		switch a {
		case 0:
			g.backingFailure(t, d, owner)
		case 1:
			g.badChange(t, d, owner, "deploy")
		case 2:
			g.badChange(t, d, owner, pick(g.r, []string{"config", "feature_flag"}))
		case 3:
			g.providerOutage(t, d, owner)
		case 4:
			g.exhaustion(t, d, owner)
		default:
			g.nodeFailure(t, d, owner)
		}
	}
}

func (g *gen) ofKinds(ks ...kind) []*service {
	var out []*service
	for _, s := range g.w.svcs {
		if slices.Contains(ks, s.kind) {
			out = append(out, s)
		}
	}
	return out
}

// wave is one stretch of an incident during which it hurts.
type wave struct{ s, e time.Time }

// waves splits a failure of length d from t into the stretches it hurts:
// most failures are one stretch; some come back after a quiet spell
// (a pool that drains again, retries that pile up again) before they are
// fixed.
func (g *gen) waves(t time.Time, d time.Duration) []wave {
	if !g.chance(g.cfg.Recurring) {
		return []wave{{t, t.Add(d)}}
	}
	n := 2 + g.r.IntN(2)
	var out []wave
	for i := 0; i < n; i++ {
		l := max(d/time.Duration(n), 5*time.Minute)
		out = append(out, wave{t, t.Add(l)})
		t = t.Add(l + g.between(8*time.Minute, 22*time.Minute))
	}
	return out
}

// backingFailure: a database, cache, broker, search or object store fails
// and its callers suffer. Sometimes an infrastructure or config change on
// it came first.
func (g *gen) backingFailure(t time.Time, d time.Duration, owner string) {
	root := pick(g.r, g.ofKinds(kPostgres, kRedis, kMemcached, kKafka, kSearch, kObject, kWarehouse))
	if g.chance(0.25) {
		g.addChange(t.Add(-g.between(3*time.Minute, 25*time.Minute)), root.name, pick(g.r, []string{"config", "infrastructure"}), "")
	}
	syms := pick(g.r, rootSymptoms(root.kind))
	tmpl := pick(g.r, selfTemplates)
	for _, w := range g.waves(t, d) {
		for _, sym := range syms {
			g.show(root, sym, w.s, w.e, owner, tmpl, 1.3)
		}
		g.cascade(root, w.s, w.e, owner, g.cfg.MaxHops)
	}
}

// badChange: a deploy or a config/flag change breaks a service minutes
// later; its callers suffer; a rollback ends it. A progressive rollout
// shows first on the canary (a small bump on the service alone) and
// breaks for real when promoted.
func (g *gen) badChange(t time.Time, d time.Duration, owner, kind string) {
	cands := g.ofKinds(kHTTP, kEdge, kWorker)
	root := pick(g.r, cands)
	lead := g.between(90*time.Second, 15*time.Minute)
	g.addChange(t.Add(-lead), root.name, kind, "")
	tmpl := pick(g.r, selfTemplates)
	if kind == "deploy" && g.chance(g.cfg.Canary) {
		canary := g.between(3*time.Minute, 8*time.Minute)
		g.show(root, symErrors, t, t.Add(canary), owner, tmpl, 1)
		t = t.Add(canary + g.between(8*time.Minute, 20*time.Minute))
	}
	syms := []symptom{symErrors}
	if kind == "deploy" && g.chance(0.5) {
		syms = append(syms, symCrash)
	}
	if g.chance(0.5) {
		syms = append(syms, pick(g.r, []symptom{symLatency, symMemory, symSaturation}))
	}
	for _, w := range g.waves(t, d) {
		for _, sym := range syms {
			g.show(root, sym, w.s, w.e, owner, tmpl, 1.4)
		}
		g.cascade(root, w.s, w.e, owner, max(1, g.cfg.MaxHops-1))
	}
	if g.chance(0.7) {
		g.addChange(t.Add(d-g.between(0, 3*time.Minute)), root.name, kind, "rollback")
	}
}

// providerOutage: a third-party provider degrades; the proxy and what
// calls it suffer.
func (g *gen) providerOutage(t time.Time, d time.Duration, owner string) {
	root := pick(g.r, g.ofKinds(kExternal))
	syms := pick(g.r, rootSymptoms(root.kind))
	for _, w := range g.waves(t, d) {
		for _, sym := range syms {
			g.show(root, sym, w.s, w.e, owner, "ERROR upstream "+providerOf(root.name)+" returned HTTP <*> for request <*>", 1.3)
		}
		g.cascade(root, w.s, w.e, owner, g.cfg.MaxHops)
	}
}

// exhaustion: one service runs out of something (memory leak, disk, CPU
// or connection pool) and mostly hurts itself; a long, slow episode.
func (g *gen) exhaustion(t time.Time, d time.Duration, owner string) {
	root := pick(g.r, g.w.svcs)
	d = min(d*3/2, 2*time.Hour)
	var syms []symptom
	switch root.kind {
	case kPostgres, kKafka:
		syms = []symptom{symDisk}
		if g.chance(0.5) {
			syms = append(syms, symLatency)
		}
	case kRedis, kSearch, kMemcached:
		syms = []symptom{symMemory}
	default:
		syms = []symptom{pick(g.r, []symptom{symMemory, symSaturation, symConn})}
		if g.chance(0.5) {
			syms = append(syms, symLatency)
		}
		if syms[0] == symMemory && g.chance(0.6) {
			syms = append(syms, symCrash)
		}
	}
	tmpl := pick(g.r, []string{"ERROR java.lang.OutOfMemoryError: Java heap space <*>", "ERROR no space left on device writing <*>", "WARN worker pool saturated, <*> tasks queued"})
	for _, sym := range syms {
		g.show(root, sym, t, t.Add(d), owner, tmpl, 1.3)
	}
	if g.chance(0.35) {
		g.cascade(root, t.Add(d/2), t.Add(d), owner, 1)
	}
}

// nodeFailure: a Kubernetes node goes NotReady; pods of unrelated
// services on it restart elsewhere and those services hiccup.
func (g *gen) nodeFailure(t time.Time, d time.Duration, owner string) {
	node := pick(g.r, g.w.nodes)
	d = min(d, 40*time.Minute)
	if g.chance(0.4) {
		g.addChange(t.Add(-g.between(2*time.Minute, 20*time.Minute)), "k8s-prod-eu-west-1", "infrastructure", "node-pool")
	}
	g.addAlert(alertDef{labels: map[string]string{"alertname": "KubeNodeNotReady", "node": node, "job": "kube-state-metrics", "severity": "warning", "cluster": "prod-eu-west-1"},
		expr: `kube_node_status_condition{job="kube-state-metrics",condition="Ready",status="true"} == 0`, forDur: 2 * time.Minute,
		ann: map[string]string{"summary": "Node is not ready.", "description": node + " has been unready for more than 2 minutes.", "runbook_url": "https://runbooks.prometheus-operator.dev/runbooks/kubernetes/kubenodenotready"}},
		t, t.Add(d), owner)
	if g.chance(0.6) {
		g.addAlert(alertDef{labels: map[string]string{"alertname": "NodeMemoryHighUtilization", "instance": node + ":9100", "job": "node-exporter", "severity": "warning", "cluster": "prod-eu-west-1"},
			expr: `100 - (node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes * 100) > 90`, forDur: 5 * time.Minute,
			ann: map[string]string{"summary": "Host is running out of memory.", "description": "Memory is filling up at " + node}},
			t.Add(-10*time.Minute), t.Add(2*time.Minute), owner)
	}
	n := 2 + g.r.IntN(4)
	for _, i := range g.r.Perm(len(g.w.svcs))[:n] {
		s := g.w.svcs[i]
		if s.kind != kHTTP && s.kind != kWorker && s.kind != kEdge {
			continue
		}
		at := t.Add(g.between(10*time.Second, 2*time.Minute))
		until := at.Add(g.between(5*time.Minute, 15*time.Minute))
		g.show(s, symErrors, at, until, owner, "ERROR connection reset by peer while calling <*>", 1)
		if g.chance(0.5) {
			g.show(s, symCrash, at, until, owner, "", 1)
		}
	}
}

// noise: things that belong to no incident. Each noise unit is its own
// incident.
func (g *gen) noise() {
	day := g.cfg.Duration
	next := func() string { g.nNoise++; return fmt.Sprintf("noise-%03d", g.nNoise) }
	for i := 0; i < g.cfg.NoiseAlerts; i++ {
		s := pick(g.r, g.w.svcs)
		t := g.cfg.Start.Add(g.between(0, day))
		sym := pick(g.r, []symptom{symLatency, symErrors, symSaturation, symMemory, symCrash, symLag, symConn})
		def, ok := g.alertFor(s, sym)
		if !ok {
			def, _ = g.alertFor(s, symCrash)
		}
		g.addAlert(def, t, t.Add(def.forDur+g.between(2*time.Minute, 25*time.Minute)), next())
	}
	for i := 0; i < g.cfg.ChronicAlerts; i++ {
		s := pick(g.r, g.ofKinds(kHTTP, kEdge, kWorker))
		def, _ := g.alertFor(s, symErrors)
		if s.kind != kWorker && g.chance(0.5) {
			def, _ = g.alertFor(s, symLatency)
		}
		def.forDur = 0
		owner := next()
		t := g.cfg.Start.Add(g.between(0, 3*time.Hour))
		for t.Before(g.end()) {
			on := g.between(90*time.Second, 8*time.Minute)
			g.addAlert(def, t, t.Add(on), owner)
			t = t.Add(on + g.between(5*time.Minute, 70*time.Minute))
		}
	}
	for i := 0; i < g.cfg.NoiseBlips; i++ {
		s := pick(g.r, g.w.svcs)
		m, ok := metricFor(s.kind, pick(g.r, []symptom{symLatency, symErrors, symSaturation, symMemory, symTraffic}))
		if !ok {
			continue
		}
		t := g.cfg.Start.Add(g.between(0, day))
		g.eps = append(g.eps, episode{svc: s.name, m: m, start: t, end: t.Add(g.between(2*time.Minute, 9*time.Minute)), owner: next()})
	}
	for i := 0; i < g.cfg.ChattySeries; i++ {
		s := pick(g.r, g.ofKinds(kHTTP, kWorker, kEdge, kWarehouse, kPostgres))
		m, _ := metricFor(s.kind, pick(g.r, []symptom{symLatency, symSaturation, symErrors}))
		for j := 0; j < g.cfg.ChattyBlips; j++ {
			t := g.cfg.Start.Add(g.between(0, day))
			g.eps = append(g.eps, episode{svc: s.name, m: m, start: t, end: t.Add(g.between(2*time.Minute, 7*time.Minute)), owner: next()})
		}
	}
	for i := 0; i < g.cfg.NoiseBursts; i++ {
		s := pick(g.r, g.w.svcs)
		t := g.cfg.Start.Add(g.between(0, day))
		g.bursts = append(g.bursts, burst{svc: s.name, tmpl: pick(g.r, noiseTemplates), start: t, end: t.Add(g.between(time.Minute, 5*time.Minute)), rate: 15 + 100*g.r.Float64(), owner: next()})
	}
}

// harmlessChanges: deploys and config changes that break nothing, mostly
// in working hours.
func (g *gen) harmlessChanges() {
	for i := 0; i < g.cfg.HarmlessChanges; i++ {
		var off time.Duration
		if g.chance(0.8) {
			off = g.between(7*time.Hour, 19*time.Hour)
		} else {
			off = g.between(0, g.cfg.Duration)
		}
		s := pick(g.r, g.w.svcs)
		kind := "deploy"
		switch x := g.r.Float64(); {
		case x < 0.15:
			kind = "config"
		case x < 0.25:
			kind = "feature_flag"
		case x < 0.3 && s.kind >= kPostgres:
			kind = "infrastructure"
		}
		g.addChange(g.cfg.Start.Add(off), s.name, kind, "")
	}
}

var authors = []string{"argocd", "a.kowalski", "m.okafor", "j.lindqvist", "s.tanaka", "r.mehta", "l.moreau", "d.alvarez", "k.nguyen", "terraform-cloud", "flagger"}

// addChange records a change; how is "rollback" for a rollback of the
// service's last deploy.
func (g *gen) addChange(t time.Time, svc, kind, how string) {
	v := g.version[svc]
	if v == ([3]int{}) {
		v = [3]int{1 + g.r.IntN(4), g.r.IntN(30), g.r.IntN(10)}
	}
	author := pick(g.r, authors)
	switch {
	case how == "rollback" && kind == "deploy":
		v[2]--
		if v[2] < 0 {
			v[2] = 0
		}
		author = "argocd-rollback"
	case how == "rollback":
		author = pick(g.r, authors[1:9])
	case kind == "deploy":
		if g.chance(0.2) {
			v[1]++
			v[2] = 0
		} else {
			v[2]++
		}
	}
	g.version[svc] = v
	commit := fmt.Sprintf("%016x%016x%08x", g.r.Uint64(), g.r.Uint64(), g.r.Uint32())
	version := fmt.Sprintf("v%d.%d.%d", v[0], v[1], v[2])
	url := fmt.Sprintf("https://argocd.internal/applications/%s?revision=%s", svc, commit[:12])
	switch kind {
	case "config":
		version = fmt.Sprintf("config-%s", commit[:8])
		url = fmt.Sprintf("https://git.internal/platform/config/commit/%s", commit)
	case "feature_flag":
		version = fmt.Sprintf("flag:%s-%s=%v", svc, pick(g.r, []string{"new-pricing", "async-writes", "v2-api", "batching", "cache-bypass"}), how != "rollback")
		url = fmt.Sprintf("https://flags.internal/flags/%s", svc)
	case "infrastructure":
		version = fmt.Sprintf("tf-run-%s", commit[:8])
		url = fmt.Sprintf("https://app.terraform.io/app/shop/runs/run-%s", commit[:16])
		author = "terraform-cloud"
	}
	g.changes = append(g.changes, change{t: t, svc: svc, kind: kind, version: version, author: author, commit: commit, url: url})
}
