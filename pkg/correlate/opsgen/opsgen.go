package opsgen

import (
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/aiops-dev/aiops/pkg/event"
)

// Storm is one generated alert storm with its ground truth.
type Storm struct {
	// Lines are the replay input, one JSON object each, in non-decreasing
	// time: Alertmanager webhook notifications and changes.
	Lines [][]byte
	// Catalog is the service catalog YAML.
	Catalog []byte
	// Truth maps every alert fingerprint of Lines to its true incident:
	// "inc-NNN-<kind>" or, for an unrelated alert, "noise-NNN".
	Truth map[string]string
	// Incidents counts the distinct ids of Truth (noise alerts included:
	// each is an incident of its own, as eval counts them).
	Incidents int
	// Notifications counts the webhook notifications among Lines.
	Notifications int
}

// Kinds weighs the kinds of incident.
type Kinds struct {
	Cascade  float64 // a shared dependency fails, callers several hops up alert
	Deploy   float64 // a deploy, config change or feature flag breaks a service
	Replicas float64 // the same failure on two or three pods or instances
	Node     float64 // a Kubernetes node goes away with the pods on it
	Flap     float64 // an alert hovering around its threshold
	Refire   float64 // a problem that resolves and comes back
}

// Config shapes the storms. DefaultConfig holds the calibrated values.
type Config struct {
	MinServices, MaxServices int
	// CatalogMissingEdges is the share of real dependencies the catalog
	// does not list.
	CatalogMissingEdges float64
	MinHours, MaxHours  float64
	// IncidentsPerHour is the rate of incidents; Concurrent the chance
	// that one comes with a second, unrelated one starting within three
	// minutes. Kinds weighs what they are.
	IncidentsPerHour float64
	Concurrent       float64
	Kinds            Kinds
	// CascadeReach[h-1] is the chance that a caller h hops above the
	// failing service of a cascade shows symptoms; DeployReach the same
	// for a broken deploy.
	CascadeReach []float64
	DeployReach  []float64
	// NoisePerHour is the rate of unrelated alerts; StandingNoise the
	// most unrelated alerts already firing when the storm starts.
	NoisePerHour  float64
	StandingNoise int
	// ChangesPerHour is the rate of harmless changes in working hours on
	// weekdays (less in the evening, a fifth of it at night and on
	// weekends).
	ChangesPerHour float64
	// SendResolved is the chance that a receiver has send_resolved.
	SendResolved float64
}

// DefaultConfig is a bad day on a 40-60 service estate, 3 to 12 hours of
// it: one or two incidents an hour, most of them cascades, and five
// unrelated alerts an hour. The values are calibrated (see the package
// documentation).
func DefaultConfig() Config {
	return Config{
		MinServices:         40,
		MaxServices:         60,
		CatalogMissingEdges: 0.05,
		MinHours:            3,
		MaxHours:            12,
		IncidentsPerHour:    1.2,
		Concurrent:          0.25,
		Kinds:               Kinds{Cascade: 0.55, Deploy: 0.2, Replicas: 0.05, Node: 0.04, Flap: 0.08, Refire: 0.08},
		CascadeReach:        []float64{0.9, 0.75, 0.6, 0.45, 0.3},
		DeployReach:         []float64{0.8, 0.55, 0.3},
		NoisePerHour:        4,
		StandingNoise:       6,
		ChangesPerHour:      4,
		SendResolved:        0.9,
	}
}

// span is one firing period of an alert; end is zero while it fires on.
type span struct{ start, end time.Time }

// alert is one Prometheus alert (one label set, one fingerprint) over the
// storm.
type alert struct {
	labels   map[string]string
	fp       string
	rule     rule
	svc      *service
	subj     string
	spans    []span
	inc      *incident // nil for noise
	noiseIdx int
}

// incident is a true incident: what it touched and when.
type incident struct {
	kind         string
	start, until time.Time
	services     map[*service]bool
	alerts       []*alert
}

// gen holds one storm while it is made.
type gen struct {
	r   *rand.Rand
	cfg Config

	start, end                   time.Time
	domain, org, cluster, region string

	// the estate
	services []*service // by name
	byName   map[string]*service
	nodes    []string
	teams    map[string]teamRules

	// Alertmanager: routes, and for inhibition the alerts per namespace
	// and whether kube-prometheus's InfoInhibitor is deployed
	routes        []*route
	root          *route
	byNamespace   map[string][]*alert
	infoInhibitor bool

	// what happens
	alerts    []*alert
	byFP      map[string]*alert
	incidents []*incident
	causes    map[*service]bool // services an incident started from
	noise     int
	changes   []change
}

var companies = []struct{ domain, org string }{
	{"shopline.io", "shopline"}, {"northwind-retail.com", "northwind"},
	{"cartwheel.dev", "cartwheel"}, {"mercato.eu", "mercato-eng"},
}

var regions = []string{"eu-west-1", "us-east-1", "eu-central-1", "ap-southeast-2", "us-west-2"}

// Generate makes the storm of seed.
func Generate(seed uint64, cfg Config) Storm {
	g := &gen{r: rand.New(rand.NewPCG(seed, 0x6f707367656e)), cfg: cfg, byFP: map[string]*alert{}, teams: map[string]teamRules{}, causes: map[*service]bool{}}
	c := companies[g.r.IntN(len(companies))]
	g.domain, g.org = c.domain, c.org
	g.region = regions[g.r.IntN(len(regions))]
	g.cluster = "prod-" + g.region
	day := time.Date(2025, 1, 6, 0, 0, 0, 0, time.UTC).AddDate(0, 0, g.r.IntN(330))
	g.start = day.Add(time.Duration(g.r.IntN(24*60)) * time.Minute)
	hours := cfg.MinHours + g.r.Float64()*(cfg.MaxHours-cfg.MinHours)
	g.end = g.start.Add(time.Duration(hours * float64(time.Hour))).Truncate(time.Minute)

	g.buildEstate()
	g.buildRoutes()
	catalog := g.catalog()
	g.harmlessChanges()
	g.scheduleIncidents()
	g.makeNoise()
	s := g.render()
	s.Catalog = catalog
	return s
}

// uniform is a duration between lo and hi.
func (g *gen) uniform(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(g.r.Float64()*float64(hi-lo))
}

// lognormal is a duration around median, clipped to [lo, hi].
func (g *gen) lognormal(median time.Duration, sigma float64, lo, hi time.Duration) time.Duration {
	d := time.Duration(float64(median) * math.Exp(sigma*g.r.NormFloat64()))
	return max(lo, min(hi, d))
}

func (g *gen) chance(p float64) bool { return g.r.Float64() < p }

func pick[T any](g *gen, xs []T) T { return xs[g.r.IntN(len(xs))] }

// weighted picks an index with probability proportional to w.
func (g *gen) weighted(w []float64) int {
	var sum float64
	for _, x := range w {
		sum += x
	}
	x := g.r.Float64() * sum
	for i, v := range w {
		if x < v {
			return i
		}
		x -= v
	}
	return len(w) - 1
}

// teamRules is how a team writes its alerting rules: the spelling of its
// alert names, how long its latency alerts wait, whether it has SLO
// burn-rate alerts, whether its HTTP alerts are per route.
type teamRules struct {
	style      int
	latencyFor time.Duration
	slo        bool
	perRoute   bool
}

// rule is rule id as the team of s wrote it.
func (g *gen) rule(s *service, id string) rule {
	r, ok := rules[id]
	if !ok {
		panic("opsgen: no rule " + id)
	}
	t := g.teams[s.team]
	r.names = []string{r.names[t.style%len(r.names)]}
	if id == "latency" {
		r.forDur = t.latencyFor
	}
	return r
}

// owner tells whose an alert is: an incident, or noise when inc is nil.
type owner struct{ inc *incident }

// labels are the labels of rule id on s with the subject labels extra.
func (g *gen) labels(s *service, id string, extra map[string]string) map[string]string {
	r := g.rule(s, id)
	l := map[string]string{
		"alertname":  r.names[0],
		"severity":   r.severity,
		"service":    s.name,
		"namespace":  s.namespace,
		"team":       s.team,
		"cluster":    g.cluster,
		"prometheus": "monitoring/k8s",
	}
	if r.job != "" {
		l["job"] = r.job
	}
	for k, v := range extra {
		l[k] = v
	}
	return l
}

func (g *gen) fingerprint(s *service, id string, extra map[string]string) string {
	return event.AlertmanagerFingerprint(g.labels(s, id, extra))
}

// alertFor returns the alert of rule id on s with the subject labels, or
// nil when that label set is already another incident's (one fingerprint
// has one true incident).
func (g *gen) alertFor(o owner, s *service, id string, subj string, extra map[string]string) *alert {
	l := g.labels(s, id, extra)
	fp := event.AlertmanagerFingerprint(l)
	if a := g.byFP[fp]; a != nil {
		if a.inc != o.inc || (o.inc == nil && a.inc == nil) {
			return nil
		}
		return a
	}
	a := &alert{labels: l, fp: fp, rule: g.rule(s, id), svc: s, subj: subj, inc: o.inc}
	g.byFP[fp] = a
	g.alerts = append(g.alerts, a)
	if o.inc != nil {
		o.inc.alerts = append(o.inc.alerts, a)
		o.inc.services[s] = true
	} else {
		g.noise++
		a.noiseIdx = g.noise
	}
	return a
}

// addSpan adds a firing period, merging it with those it overlaps.
func (a *alert) addSpan(sp span) {
	// Prometheus keeps milliseconds
	sp.start, sp.end = sp.start.Round(time.Millisecond), sp.end.Round(time.Millisecond)
	a.spans = append(a.spans, sp)
	slices.SortFunc(a.spans, func(x, y span) int { return x.start.Compare(y.start) })
	merged := a.spans[:1]
	for _, s := range a.spans[1:] {
		last := &merged[len(merged)-1]
		if last.end.IsZero() || !s.start.After(last.end) {
			if last.end.IsZero() || s.end.IsZero() {
				last.end = time.Time{}
			} else if s.end.After(last.end) {
				last.end = s.end
			}
			continue
		}
		merged = append(merged, s)
	}
	a.spans = merged
}

// cond makes rule id fire on s for a condition holding from onset to
// recovery: the alert fires once the condition held for the rule's
// for-duration (plus the rule evaluation delay) and resolves the rule's
// lag after the condition clears. A condition shorter than the for-
// duration fires nothing.
func (g *gen) cond(o owner, s *service, id, subj string, extra map[string]string, onset, recovery time.Time) *alert {
	r := g.rule(s, id)
	fire := onset.Add(r.forDur + g.uniform(0, 30*time.Second))
	if !fire.Before(recovery) {
		return nil
	}
	a := g.alertFor(o, s, id, subj, extra)
	if a == nil {
		return nil
	}
	a.addSpan(span{fire, recovery.Add(g.uniform(r.lag[0], r.lag[1]))})
	return a
}

// direct makes rule id fire on s from start to end, as observed.
func (g *gen) direct(o owner, s *service, id, subj string, extra map[string]string, start, end time.Time) *alert {
	a := g.alertFor(o, s, id, subj, extra)
	if a == nil {
		return nil
	}
	a.addSpan(span{start, end})
	return a
}

// subject labels
func podLabels(s *service, p pod) (string, map[string]string) {
	return s.namespace + "/" + p.name, map[string]string{"pod": p.name, "container": s.name}
}

func instanceLabels(p pod, port string) (string, map[string]string) {
	inst := p.name + ":" + port
	return inst, map[string]string{"instance": inst, "pod": p.name}
}

var exporterPort = map[role]string{
	rolePostgres: "9187", roleRedis: "9121", roleKafka: "9404", roleElastic: "9114",
	roleObjectStore: "9000", roleClickHouse: "9363",
}
