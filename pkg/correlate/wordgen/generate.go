package wordgen

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/aiops-dev/aiops/pkg/event"
)

// Storm is one generated alert storm with its ground truth.
type Storm struct {
	// Lines are replay input lines (JSON), in non-decreasing time:
	// Alertmanager webhook notifications and change events.
	Lines [][]byte
	// Catalog is the service catalog (YAML): top-level services, each
	// with owner, team, tier, runbook and depends_on.
	Catalog []byte
	// Truth maps every alert fingerprint in Lines to its true incident
	// id; a noise alert is an incident of its own.
	Truth map[string]string
	// Incidents is the number of distinct true incidents in Truth,
	// noise alerts included (eval.Scores.TrueIncidents).
	Incidents int
	// Notifications is the number of webhook notifications in Lines.
	Notifications int
	// Roots maps each true incident whose fault is on one catalogued
	// component (all but a node dying) to that component: where a
	// root-cause ranking should point first.
	Roots map[string]string
}

// Config shapes a storm. DefaultConfig is what the calibration in doc.go
// was measured on.
type Config struct {
	// Start is when the storm begins; Duration how long it lasts. Alerts
	// still firing at the end stay firing (no resolution is sent).
	Start    time.Time
	Duration time.Duration
	// Incidents start MinIncidentGap to MaxIncidentGap apart (uniform).
	MinIncidentGap time.Duration
	MaxIncidentGap time.Duration
	// Concurrent is the probability that another, independent incident
	// starts 0 to 3 minutes after one (drawn again for each, so three or
	// more at once happen too).
	Concurrent float64
	// NoiseGap is the mean time between unrelated alerts; ChangeGap the
	// mean time between harmless changes (exponential). Standing is the
	// number of unrelated alerts already firing when the storm starts
	// (started up to a week before; Alertmanager repeats them).
	NoiseGap  time.Duration
	ChangeGap time.Duration
	Standing  int
	// Flapping is the probability that an incident has a flapping alert;
	// Refire the probability that its root's alerts resolve and fire
	// again some minutes later.
	Flapping float64
	Refire   float64
	// The Alertmanager route the aiops receiver hangs on, and whether
	// kube-prometheus' inhibition rule is in place (a firing critical
	// alert mutes the warnings of its alertname and namespace).
	Inhibit        bool
	GroupBy        []string
	GroupWait      time.Duration
	GroupInterval  time.Duration
	RepeatInterval time.Duration
}

// DefaultConfig is a six-hour Saturday-evening storm behind Alertmanager's
// usual timers (group_wait 30s, group_interval 5m, repeat_interval 4h).
func DefaultConfig() Config {
	return Config{
		Start:          time.Date(2026, 3, 14, 17, 0, 0, 0, time.UTC),
		Duration:       6 * time.Hour,
		MinIncidentGap: 20 * time.Minute,
		MaxIncidentGap: 60 * time.Minute,
		Concurrent:     0.2,
		NoiseGap:       15 * time.Minute,
		ChangeGap:      12 * time.Minute,
		Standing:       20,
		Flapping:       0.35,
		Refire:         0.25,
		Inhibit:        true,
		GroupBy:        []string{"namespace", "alertname"},
		GroupWait:      30 * time.Second,
		GroupInterval:  5 * time.Minute,
		RepeatInterval: 4 * time.Hour,
	}
}

// Validate names the first field that cannot make a storm.
func (c Config) Validate() error {
	var errs []error
	positive := func(name string, d time.Duration) {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("%s must be positive, got %v", name, d))
		}
	}
	probability := func(name string, p float64) {
		if !(p >= 0 && p <= 1) {
			errs = append(errs, fmt.Errorf("%s must be a probability in [0, 1], got %v", name, p))
		}
	}
	if c.Start.IsZero() {
		errs = append(errs, errors.New("config: Start must be set"))
	}
	if c.Duration < time.Hour {
		errs = append(errs, fmt.Errorf("config: Duration must be at least 1h (an incident runs up to 45 minutes), got %v", c.Duration))
	}
	positive("MinIncidentGap", c.MinIncidentGap)
	if c.MaxIncidentGap < c.MinIncidentGap {
		errs = append(errs, fmt.Errorf("config: MaxIncidentGap (%v) must be at least MinIncidentGap (%v)", c.MaxIncidentGap, c.MinIncidentGap))
	}
	positive("NoiseGap", c.NoiseGap)
	positive("ChangeGap", c.ChangeGap)
	if c.Standing < 0 {
		errs = append(errs, fmt.Errorf("config: Standing must not be negative, got %d", c.Standing))
	}
	positive("GroupWait", c.GroupWait)
	positive("GroupInterval", c.GroupInterval)
	positive("RepeatInterval", c.RepeatInterval)
	probability("Concurrent", c.Concurrent)
	probability("Flapping", c.Flapping)
	probability("Refire", c.Refire)
	if len(c.GroupBy) == 0 {
		errs = append(errs, errors.New("GroupBy must name at least one label (Alertmanager's '...' is not modelled)"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("wordgen: invalid config: %w", err)
	}
	return nil
}

// Generate makes the storm of seed under cfg; the same seed and cfg give
// the same bytes. It panics when cfg does not validate (a programming
// error: configs are written in code).
func Generate(seed uint64, cfg Config) Storm {
	_, s := generate(seed, cfg)
	return s
}

// generate is Generate, with what the storm was made of for the tests.
func generate(seed uint64, cfg Config) (*gen, Storm) {
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	g := &gen{
		cfg:  cfg,
		r:    rand.New(rand.NewPCG(seed, 0x776f7264)),
		est:  newEstate(),
		end:  cfg.Start.Add(cfg.Duration),
		byFP: map[string]*alert{},
		rs:   map[string]string{},
	}
	for _, c := range g.est.list {
		g.rs[c.name] = g.hash(10)
	}
	g.incidents()
	g.noise()
	g.harmlessChanges()
	g.versions()
	return g, g.storm()
}

// An episode is one firing of an alert, from start to end (end after the
// storm: still firing when it ends).
type episode struct{ start, end time.Time }

// alert is one label set (one fingerprint) and its firings.
type alert struct {
	labels      map[string]string
	annotations map[string]string
	generator   string
	fp          string
	truth       string
	episodes    []episode
}

// change is one change event line.
type change struct {
	at                                     time.Time
	service, kind, version, author, commit string
	url                                    string
	rollback                               bool
}

type gen struct {
	cfg     Config
	r       *rand.Rand
	est     *estate
	end     time.Time
	alerts  []*alert
	byFP    map[string]*alert
	changes []change
	held    []hold
	planned []*plan
	rs      map[string]string // a Deployment's current ReplicaSet hash
	nInc    int
	nNoise  int
}

// hold is the components an incident occupies over a span: an incident
// starting meanwhile must keep off them, so that every alert has one
// defensible cause.
type hold struct {
	from, to time.Time
	comps    map[string]bool
}

// --- randomness ---

func (g *gen) p(x float64) bool { return g.r.Float64() < x }

func (g *gen) between(a, b time.Duration) time.Duration {
	if b <= a {
		return a
	}
	return a + time.Duration(g.r.Int64N(int64(b-a)))
}

func (g *gen) exp(mean time.Duration) time.Duration {
	return time.Duration(-math.Log(1-g.r.Float64()) * float64(mean))
}

func pick[T any](g *gen, xs []T) T { return xs[g.r.IntN(len(xs))] }

const lowerAlnum = "bcdfghjklmnpqrstvwxz2456789"

// hash is Kubernetes-like random suffix of n characters.
func (g *gen) hash(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = lowerAlnum[g.r.IntN(len(lowerAlnum))]
	}
	return string(b)
}

func (g *gen) sha() string {
	const hexdigits = "0123456789abcdef"
	b := make([]byte, 40)
	for i := range b {
		b[i] = hexdigits[g.r.IntN(16)]
	}
	return string(b)
}

// ms drops below a millisecond, as Prometheus's timestamps do.
func ms(t time.Time) time.Time { return t.Truncate(time.Millisecond) }

// --- alerts ---

// add registers an alert of incident truth with its firings, and returns
// it; nil when the label set is taken by another incident (a fingerprint
// belongs to one incident) or it never fires inside the storm.
func (g *gen) add(truth string, labels, ann map[string]string, eps ...episode) *alert {
	labels["cluster"] = cluster
	labels["prometheus"] = prometheus
	var kept []episode
	for _, e := range eps {
		if !e.start.Before(g.end) || !e.end.After(e.start) {
			continue
		}
		kept = append(kept, episode{ms(e.start), ms(e.end)})
	}
	if len(kept) == 0 {
		return nil
	}
	fp := event.AlertmanagerFingerprint(labels)
	if prev := g.byFP[fp]; prev != nil {
		if prev.truth != truth {
			return nil
		}
		// The same series again in one incident: one alert, more firings.
		prev.episodes = mergeEpisodes(append(prev.episodes, kept...))
		return prev
	}
	a := &alert{labels: labels, annotations: ann, fp: fp, truth: truth, episodes: mergeEpisodes(kept), generator: generatorURL(labels["alertname"])}
	g.byFP[fp] = a
	g.alerts = append(g.alerts, a)
	return a
}

// taken reports whether labels (with the external labels) are another
// incident's already.
func (g *gen) taken(truth string, labels map[string]string) bool {
	l := map[string]string{"cluster": cluster, "prometheus": prometheus}
	for k, v := range labels {
		l[k] = v
	}
	a := g.byFP[event.AlertmanagerFingerprint(l)]
	return a != nil && a.truth != truth
}

// mergeEpisodes sorts firings and joins overlapping ones: Prometheus has
// one active alert per label set.
func mergeEpisodes(eps []episode) []episode {
	slices.SortFunc(eps, func(a, b episode) int { return a.start.Compare(b.start) })
	out := eps[:0]
	for _, e := range eps {
		if n := len(out); n > 0 && !e.start.After(out[n-1].end) {
			if e.end.After(out[n-1].end) {
				out[n-1].end = e.end
			}
			continue
		}
		out = append(out, e)
	}
	return out
}

func generatorURL(alertname string) string {
	return "https://prometheus.ops." + domain + "/graph?g0.expr=ALERTS%7Balertname%3D%22" + alertname + "%22%7D&g0.tab=1"
}

// --- changes ---

var people = []string{"a.fournier", "t.nakamura", "i.carvalho", "r.menon", "o.petrova", "s.okafor", "l.vogel", "m.bellini", "h.kim", "j.adeyemi", "p.novak", "k.larsen"}

// deploy records a deploy of comp at t; its version is given in time
// order by versions.
func (g *gen) deploy(comp string, at time.Time, author string) {
	sha := g.sha()
	g.changes = append(g.changes, change{
		at: at, service: comp, kind: "deploy", author: author, commit: sha,
		url: "https://argocd.ops." + domain + "/applications/argocd/" + comp + "?revision=" + sha[:12],
	})
}

// rollback records the rollback of comp's last deploy at t: a deploy of
// the version before it, as Argo CD reports one.
func (g *gen) rollback(comp string, at time.Time, author string) {
	sha := g.sha()
	g.changes = append(g.changes, change{
		at: at, service: comp, kind: "deploy", rollback: true, author: author, commit: sha,
		url: "https://argocd.ops." + domain + "/applications/argocd/" + comp + "?revision=" + sha[:12] + "&rollback=true",
	})
}

// versions gives deploys their versions in time order: a patch or minor
// release after the component's current one, a rollback the one before.
func (g *gen) versions() {
	slices.SortStableFunc(g.changes, func(a, b change) int { return a.at.Compare(b.at) })
	history := map[string][][3]int{}
	for _, c := range g.est.list {
		history[c.name] = [][3]int{{1 + g.r.IntN(5), g.r.IntN(40), g.r.IntN(20)}}
	}
	for i := range g.changes {
		ch := &g.changes[i]
		if ch.kind != "deploy" {
			continue
		}
		h := history[ch.service]
		v := h[len(h)-1]
		switch {
		case ch.rollback && len(h) > 1:
			h = h[:len(h)-1]
			v = h[len(h)-1]
		case g.p(0.8):
			v[2]++
			h = append(h, v)
		default:
			v[1]++
			v[2] = 0
			h = append(h, v)
		}
		history[ch.service] = h
		ch.version = fmt.Sprintf("v%d.%d.%d", v[0], v[1], v[2])
	}
}

var flags = []string{"new-abr-ladder", "av1-for-tv", "graphql-batching", "async-entitlements", "ranker-v7", "passkeys", "trial-banner", "prefetch-next-episode"}

// configChange records a configuration or feature-flag change of comp.
func (g *gen) configChange(comp, kind string, at time.Time, author string, revert bool) {
	sha := g.sha()
	ch := change{at: at, service: comp, kind: kind, author: author, commit: sha}
	switch kind {
	case "feature_flag":
		f := pick(g, flags)
		state := fmt.Sprintf("%s=%d%%", f, pick(g, []int{5, 10, 25, 50, 100}))
		if revert {
			state = f + "=0%"
		}
		ch.version = state
		ch.url = "https://flags.ops." + domain + "/projects/streamio/flags/" + f + "/history"
	default:
		ch.version = "configmap/" + comp + "-config@" + sha[:8]
		ch.url = "https://github.com/streamio/k8s-config/commit/" + sha
	}
	g.changes = append(g.changes, ch)
}

// harmlessChanges are the deploys, config and flag changes of a normal
// evening that break nothing.
func (g *gen) harmlessChanges() {
	for t := g.cfg.Start.Add(g.exp(g.cfg.ChangeGap)); t.Before(g.end); t = t.Add(g.exp(g.cfg.ChangeGap)) {
		// Not on a component an incident hits within half an hour: a
		// change there would read as its cause.
		var comp *component
		for range 8 {
			c := pick(g, g.est.list)
			if g.free(hold{from: t, to: t.Add(30 * time.Minute), comps: map[string]bool{c.name: true}}) {
				comp = c
				break
			}
		}
		if comp == nil {
			continue
		}
		author := pick(g, people)
		switch x := g.r.Float64(); {
		case comp.stateful():
			g.configChange(comp.name, "config", t, author, false)
		case x < 0.6:
			if g.p(0.3) {
				author = "argocd-image-updater"
			}
			g.deploy(comp.name, t, author)
		case x < 0.85:
			g.configChange(comp.name, "config", t, author, false)
		default:
			g.configChange(comp.name, "feature_flag", t, author, false)
		}
	}
}
