package scenario

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/aiops-dev/aiops/pkg/correlate"
	"github.com/aiops-dev/aiops/pkg/event"
)

// Scenario is one generated storm: the catalog the correlator may read,
// the replay lines it reads, and the truth it is scored against.
type Scenario struct {
	Seed    uint64
	Config  Config
	Catalog correlate.Catalog
	Lines   []Line // sorted by Time
	Truth   Truth
}

// gen holds the state of one Generate call.
type gen struct {
	cfg        Config
	r          *rand.Rand
	salt       uint64
	topo       *topology
	start, end time.Time
	// never is an end for alerts that still fire when the scenario ends.
	never     time.Time
	usedFP    map[string]bool
	usedIDs   map[string]bool
	teamLabel map[string]bool
	routes    map[string]route
	versions  map[string][3]int // before the first change

	rollbacks  map[*Change]bool
	causes     map[*Incident]*Change
	rollbackOf map[*Incident]*Change

	alerts    []*genAlert
	anomalies []genAnomaly
	changes   []Line
	incidents []*Incident
}

type genAnomaly struct {
	env   *event.Envelope
	label string
}

// route is one team's Alertmanager route.
type route struct {
	groupBy string // alertname or service
	repeat  time.Duration
}

// plan is an incident before its root is chosen.
type plan struct {
	t0       time.Time
	kind     IncidentKind
	cluster  int // 0: none
	sameTeam bool
}

// Generate builds the storm of seed: the same seed and config give the
// same scenario, byte for byte. It panics if cfg does not pass Validate.
func Generate(seed uint64, cfg Config) Scenario {
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	g := &gen{
		cfg:       cfg,
		r:         rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		start:     cfg.Start.UTC().Truncate(time.Second),
		usedFP:    map[string]bool{},
		usedIDs:   map[string]bool{},
		teamLabel: map[string]bool{},
		routes:    map[string]route{},
		versions:  map[string][3]int{},

		rollbacks:  map[*Change]bool{},
		causes:     map[*Incident]*Change{},
		rollbackOf: map[*Incident]*Change{},
	}
	g.end = g.start.Add(cfg.Duration)
	g.never = g.end.Add(24 * time.Hour)
	g.salt = g.r.Uint64()
	g.topo = buildTopology(g.r, cfg.Services)
	g.setup()
	g.background()
	g.plannedIncidents()
	g.noise()
	g.benignChanges()
	g.versionChanges()

	lines := g.notify()
	for _, a := range g.anomalies {
		lines = append(lines, Line{Type: TypeEvent, Time: a.env.ObservedTime, Event: a.env})
	}
	lines = append(lines, g.changes...)
	lines = slices.DeleteFunc(lines, func(l Line) bool { return l.Time.Before(g.start) || l.Time.After(g.end) })
	slices.SortStableFunc(lines, func(a, b Line) int { return a.Time.Compare(b.Time) })
	return Scenario{
		Seed:    seed,
		Config:  cfg,
		Catalog: g.topo.catalog,
		Lines:   lines,
		Truth:   g.truth(lines),
	}
}

// between is a uniform duration in [lo, hi], whole seconds.
func (g *gen) between(lo, hi time.Duration) time.Duration {
	if hi <= lo {
		return lo
	}
	return (lo + time.Duration(g.r.Int64N(int64(hi-lo)+1))).Truncate(time.Second)
}

func (g *gen) chance(p float64) bool { return g.r.Float64() < p }

func pick[T any](r *rand.Rand, xs []T) T { return xs[r.IntN(len(xs))] }

func (g *gen) teams() []string {
	seen := map[string]bool{}
	var out []string
	for _, n := range g.topo.names {
		if t := g.topo.svcs[n].team; !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	slices.Sort(out)
	return out
}

// setup draws the routes (group_by and repeat interval per team), which
// alert rules carry a team label, and each service's running version.
func (g *gen) setup() {
	steps := int((g.cfg.RepeatMax - g.cfg.RepeatMin) / g.cfg.GroupInterval)
	for _, t := range g.teams() {
		rt := route{groupBy: "alertname", repeat: g.cfg.RepeatMin + time.Duration(g.r.IntN(steps+1))*g.cfg.GroupInterval}
		if g.chance(0.5) {
			rt.groupBy = "service"
		}
		g.routes[t] = rt
	}
	for _, n := range AlertNames {
		g.teamLabel[n] = g.chance(0.4)
	}
	for _, n := range g.topo.names {
		g.versions[n] = [3]int{1 + g.r.IntN(3), g.r.IntN(40), g.r.IntN(12)}
	}
}

func (g *gen) svc(name string) *svcInfo { return g.topo.svcs[name] }

// background starts the long-lived singletons: alerts that fire from
// before the scenario to after it and are re-sent all along.
func (g *gen) background() {
	kinds := []struct {
		name, sev string
		data      bool
	}{
		{CertificateExpiry, "warning", false},
		{DiskFull, "warning", true},
		{HighMemoryUsage, "warning", true},
		{KubePodNotReady, "info", false},
		{CertificateExpiry, "info", false},
		{HighCPU, "info", false},
	}
	for i := range g.cfg.BackgroundAlerts {
		k := kinds[i%len(kinds)]
		layerPool := g.topo.byLayer[layerBackend]
		if k.data {
			layerPool = g.topo.byLayer[layerData]
		}
		s := g.svc(pick(g.r, layerPool))
		label := fmt.Sprintf("bg-%02d", i+1)
		a := g.newAlert(k.name, s, k.sev, alertCtx{}, label)
		st := g.start.Add(-g.between(time.Hour, 30*time.Hour))
		a.spans = []span{{st, g.never}}
		g.incidents = append(g.incidents, &Incident{
			Label: label, Kind: KindBackground, Root: s.name, Team: s.team,
			Start: st, Services: []string{s.name},
		})
	}
}

// plannedIncidents places the incidents on the timeline (the simultaneous
// clusters first), then builds them in time order.
func (g *gen) plannedIncidents() {
	var plans []plan
	dur := g.cfg.Duration
	used := 0
	for c := 1; c <= g.cfg.Simultaneous; c++ {
		k := 2
		if left := g.cfg.Simultaneous - c; g.chance(0.35) && used+3+2*left <= g.cfg.Incidents {
			k = 3
		}
		base := g.start.Add(10*time.Minute + g.between(0, dur-55*time.Minute))
		for m := range k {
			t0 := base
			if m > 0 {
				t0 = base.Add(g.between(0, 59*time.Second))
			}
			plans = append(plans, plan{t0: t0, cluster: c, sameTeam: c%2 == 0})
		}
		used += k
	}
	for used < g.cfg.Incidents {
		plans = append(plans, plan{t0: g.start.Add(5*time.Minute + g.between(0, dur-35*time.Minute))})
		used++
	}
	for i := range plans {
		switch x := g.r.Float64(); {
		case x < g.cfg.CascadeShare:
			plans[i].kind = KindCascade
		case x < g.cfg.CascadeShare+g.cfg.DeployShare:
			plans[i].kind = KindDeploy
		default:
			plans[i].kind = KindLocal
		}
	}
	slices.SortStableFunc(plans, func(a, b plan) int { return a.t0.Compare(b.t0) })
	for i, p := range plans {
		g.buildIncident(fmt.Sprintf("inc-%02d", i+1), p)
	}
}

// activeAt lists the planned incidents under way at t.
func (g *gen) activeAt(t time.Time) []*Incident {
	var out []*Incident
	for _, inc := range g.incidents {
		if inc.Kind.Planned() && !t.Before(inc.Start) && !t.After(inc.End) {
			out = append(out, inc)
		}
	}
	return out
}

// chooseRoot picks the failing service of a planned incident. Members of
// a simultaneous cluster avoid the services of their siblings and anything
// on a dependency path with the siblings' roots; a same-team cluster keeps
// to the first member's team when it can.
func (g *gen) chooseRoot(p plan, siblings []*Incident) string {
	t := g.topo
	var pool []string
	weightOf := func(string) float64 { return 1 }
	switch p.kind {
	case KindCascade:
		pool = append(slices.Clone(t.byLayer[layerBackend]), t.byLayer[layerData]...)
		weightOf = func(n string) float64 {
			if g.svc(n).layer == layerData {
				return 1.6
			}
			return 1
		}
	case KindDeploy:
		pool = append(append(slices.Clone(t.byLayer[layerFrontend]), t.byLayer[layerAPI]...), t.byLayer[layerBackend]...)
		if g.chance(0.1) {
			pool = slices.Clone(t.byLayer[layerData])
		}
	default:
		pool = slices.Clone(t.names)
	}
	busy := map[string]bool{}
	for _, inc := range g.activeAt(p.t0) {
		busy[inc.Root] = true
	}
	taken := map[string]bool{}
	for _, sib := range siblings {
		for _, s := range sib.Services {
			taken[s] = true
		}
	}
	ok := func(n string, team string, unrelated bool) bool {
		if busy[n] || taken[n] || len(t.dependents[n]) == 0 && p.kind == KindCascade {
			return false
		}
		if team != "" && g.svc(n).team != team {
			return false
		}
		if unrelated {
			for _, sib := range siblings {
				if t.related(n, sib.Root) {
					return false
				}
			}
		}
		return true
	}
	team := ""
	if p.sameTeam && len(siblings) > 0 {
		team = siblings[0].Team
	}
	attempts := []struct {
		team      string
		unrelated bool
		pool      []string
	}{
		{team, true, pool},
		{"", true, pool},
		{team, true, t.names},
		{"", true, t.names},
		{"", false, t.names},
	}
	for _, at := range attempts {
		var cands []string
		for _, n := range at.pool {
			if ok(n, at.team, at.unrelated) {
				cands = append(cands, n)
			}
		}
		if len(cands) == 0 {
			continue
		}
		total := 0.0
		for _, n := range cands {
			total += weightOf(n)
		}
		x := g.r.Float64() * total
		for _, n := range cands {
			x -= weightOf(n)
			if x < 0 {
				return n
			}
		}
		return cands[len(cands)-1]
	}
	return pick(g.r, t.names)
}

// buildIncident makes one planned incident: the failure at its root at
// p.t0, its spread up the dependency graph, its alerts and anomalies and,
// for a deploy-induced one, the change that caused it.
func (g *gen) buildIncident(label string, p plan) {
	var siblings []*Incident
	if p.cluster > 0 {
		for _, inc := range g.incidents {
			if inc.Cluster == p.cluster {
				siblings = append(siblings, inc)
			}
		}
	}
	rootName := g.chooseRoot(p, siblings)
	root := g.svc(rootName)
	t0 := p.t0
	rec := t0.Add(12*time.Minute + g.between(0, 38*time.Minute))
	inc := &Incident{Label: label, Kind: p.kind, Root: rootName, Team: root.team, Start: t0, End: rec, Cluster: p.cluster}
	g.incidents = append(g.incidents, inc)

	exclude := map[string]bool{}
	for _, sib := range siblings {
		for _, s := range sib.Services {
			exclude[s] = true
		}
	}
	// Spread: each dependent of an affected service is hit with a chance
	// that falls with the distance from the root.
	base, maxDepth, maxAffected := 0.75, 4, 9
	switch p.kind {
	case KindDeploy:
		base, maxDepth, maxAffected = 0.55, 3, 7
	case KindLocal:
		base, maxDepth, maxAffected = 0.15, 1, 2
	}
	onset := map[string]time.Time{rootName: t0}
	parent := map[string]string{}
	depth := map[string]int{rootName: 0}
	queue := []string{rootName}
	for len(queue) > 0 && len(onset) < maxAffected {
		cur := queue[0]
		queue = queue[1:]
		if depth[cur] >= maxDepth {
			continue
		}
		for _, d := range g.topo.dependents[cur] {
			if _, done := onset[d]; done || exclude[d] || len(onset) >= maxAffected {
				continue
			}
			if g.chance(base * math.Pow(0.7, float64(depth[cur]))) {
				onset[d] = onset[cur].Add(g.between(15*time.Second, 150*time.Second))
				parent[d] = cur
				depth[d] = depth[cur] + 1
				queue = append(queue, d)
			}
		}
	}
	if p.kind == KindCascade && len(onset) == 1 {
		// A cascade reaches at least one dependent when one is free.
		var free []string
		for _, d := range g.topo.dependents[rootName] {
			if !exclude[d] {
				free = append(free, d)
			}
		}
		if len(free) > 0 {
			d := pick(g.r, free)
			onset[d] = t0.Add(g.between(15*time.Second, 150*time.Second))
			parent[d] = rootName
			depth[d] = 1
		}
	}
	affected := make([]string, 0, len(onset))
	for n := range onset {
		affected = append(affected, n)
	}
	slices.SortFunc(affected, func(a, b string) int {
		if c := onset[a].Compare(onset[b]); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	inc.Services = slices.Sorted(slices.Values(affected))

	ctxRoot := alertCtx{}
	changeKind := ""
	if p.kind == KindDeploy {
		changeKind = ChangeDeploy
		switch x := g.r.Float64(); {
		case root.layer == layerData:
			changeKind = ChangeConfig
		case x < 0.15:
			changeKind = ChangeConfig
		case x < 0.25:
			changeKind = ChangeFeatureFlag
		}
		tc := t0.Add(-g.between(time.Minute, 10*time.Minute))
		ch := g.change(root, changeKind, tc, false)
		inc.Change = &ChangeRef{Service: root.name, Kind: ch.Kind, Commit: ch.Commit, Time: tc}
		g.causes[inc] = ch
		if changeKind == ChangeDeploy {
			ctxRoot.rsHash = randomAlnum(g.r, 9, podAlphabet)
		}
		if g.chance(0.6) {
			tr := rec.Add(-g.between(0, 2*time.Minute))
			rb := g.change(root, changeKind, tr, true)
			inc.Rollback = &ChangeRef{Service: root.name, Kind: rb.Kind, Commit: rb.Commit, Time: tr}
			g.rollbackOf[inc] = rb
		}
	}

	var incAlerts []*genAlert
	firstAlert := map[string]time.Time{}
	for _, name := range affected {
		s := g.svc(name)
		var names []string
		var n int
		sev := func(i int) string {
			if i == 0 || g.chance(0.6) {
				return "critical"
			}
			return "warning"
		}
		ctx := ctxRoot
		if name == rootName {
			switch p.kind {
			case KindCascade:
				names, n = rootAlerts(s), 2+g.r.IntN(3)
			case KindDeploy:
				names, n = deployAlerts(s, changeKind), 2+g.r.IntN(3)
			default:
				names, n = localAlerts(s), 1+g.r.IntN(3)
			}
		} else {
			cause := g.svc(parent[name])
			names, n = symptomAlerts(s, cause, true), 1+g.r.IntN(2)
			if s.layer <= layerAPI && g.chance(0.4) {
				n++
			}
			ctx = alertCtx{target: cause.name}
			sev = func(int) string {
				switch x := g.r.Float64(); {
				case x < 0.55:
					return "warning"
				case x < 0.95:
					return "critical"
				}
				return "info"
			}
		}
		for i := range n {
			a := g.newAlert(pick(g.r, names), s, sev(i), ctx, label)
			// Rules fire after their "for:" (30 s at least) has passed.
			st := onset[name].Add(g.between(30*time.Second, 150*time.Second))
			if g.chance(0.25) { // a rule with a longer "for:"
				st = st.Add(g.between(time.Minute, 4*time.Minute))
			}
			var en time.Time
			if name == rootName {
				en = rec.Add(g.between(0, 3*time.Minute) - time.Minute)
			} else {
				en = rec.Add(g.between(0, 4*time.Minute) + time.Duration(depth[name])*20*time.Second)
				if g.chance(0.2) {
					if early := st.Add(g.between(3*time.Minute, 12*time.Minute)); early.Before(en) {
						en = early
					}
				}
			}
			if en.Before(st.Add(2 * time.Minute)) {
				en = st.Add(2 * time.Minute)
			}
			a.spans = []span{{st, en}}
			incAlerts = append(incAlerts, a)
			if f, ok := firstAlert[name]; !ok || st.Before(f) {
				firstAlert[name] = st
			}
		}
	}
	// Flapping: one alert fires and resolves every 1-3 minutes for a while.
	flapper := -1
	if g.chance(g.cfg.FlapRate) {
		flapper = g.r.IntN(len(incAlerts))
		a := incAlerts[flapper]
		a.spans = g.flap(a.spans[0], g.between(8*time.Minute, 20*time.Minute))
		inc.Flapping = true
	}
	// Refire: one alert resolves and fires again later, new startsAt.
	if g.chance(g.cfg.RefireRate) && len(incAlerts) > 1 {
		i := g.r.IntN(len(incAlerts))
		if i == flapper {
			i = (i + 1) % len(incAlerts)
		}
		a := incAlerts[i]
		sp := a.spans[0]
		cut := sp.start.Add(time.Duration(float64(sp.end.Sub(sp.start)) * (0.3 + 0.2*g.r.Float64())).Truncate(time.Second))
		if cut.Before(sp.start.Add(2 * time.Minute)) {
			cut = sp.start.Add(2 * time.Minute)
		}
		again := cut.Add(g.between(3*time.Minute, 12*time.Minute))
		en := sp.end
		if en.Before(again.Add(3 * time.Minute)) {
			en = again.Add(g.between(5*time.Minute, 10*time.Minute))
		}
		a.spans = []span{{sp.start, cut}, {again, en}}
		inc.Refired = true
	}
	for _, a := range incAlerts {
		if last := a.spans[len(a.spans)-1].end; last.After(inc.End) {
			inc.End = last
		}
	}
	// Anomalies: the detector sees an affected service go wrong after its
	// onset and shortly before its alerts' rules fire.
	for _, name := range affected {
		if !g.chance(g.cfg.AnomalyRate) {
			continue
		}
		s := g.svc(name)
		t := firstAlert[name].Add(-g.between(30*time.Second, min(3*time.Minute, firstAlert[name].Sub(onset[name]))))
		metric := pick(g.r, anomalyMetrics(s))
		for range 1 + g.r.IntN(4) {
			g.addAnomaly(s, metric, t, label, 0.7+0.29*g.r.Float64())
			t = t.Add(g.between(30*time.Second, 60*time.Second))
		}
	}
}

// flap turns one firing span into a flapping one: on and off every 1-3
// minutes for about d, then on until the span's end.
func (g *gen) flap(sp span, d time.Duration) []span {
	var out []span
	t := sp.start
	stop := sp.start.Add(d)
	for t.Before(stop) {
		on := t.Add(g.between(time.Minute, 3*time.Minute))
		out = append(out, span{t, on})
		t = on.Add(g.between(time.Minute, 3*time.Minute))
	}
	if t.Before(sp.end.Add(-time.Minute)) {
		out = append(out, span{t, sp.end})
	}
	return out
}

// change records one change line and returns it. Deploy versions are
// filled in at the end, in time order (see versionChanges).
func (g *gen) change(s *svcInfo, kind string, t time.Time, rollback bool) *Change {
	people := teamPeople[s.team]
	author := pick(g.r, people)
	if !rollback && g.chance(0.15) {
		author = pick(g.r, []string{"ci-bot", "renovate[bot]", "argocd"})
	}
	commit := randomAlnum(g.r, 40, hexLower)
	ch := &Change{Service: s.name, Kind: kind, Author: author, Commit: commit}
	switch kind {
	case ChangeDeploy:
		ch.URL = fmt.Sprintf("https://github.example.com/acme/%s/commit/%s", s.name, commit)
	case ChangeConfig:
		ch.Version = "cfg-" + commit[:8]
		ch.URL = fmt.Sprintf("https://github.example.com/acme/platform-config/pull/%d", 1000+g.r.IntN(9000))
	case ChangeFeatureFlag:
		flag := pick(g.r, []string{"new-checkout-flow", "async-pricing", "search-v2-ranking", "fast-cart", "lazy-images", "grpc-transport", "batch-writes"})
		pct := pick(g.r, []int{5, 10, 25, 50, 100})
		if rollback {
			pct = 0
		}
		ch.Version = fmt.Sprintf("%s=%d%%", flag, pct)
		ch.Commit = ""
		ch.URL = "https://flags.example.com/projects/shop/flags/" + flag
	}
	g.changes = append(g.changes, Line{Type: TypeChange, Time: t, Change: ch})
	if rollback {
		g.rollbacks[ch] = true
	}
	return ch
}

// versionChanges numbers the deploys of each service in time order: a
// deploy bumps the patch (sometimes the minor) version, a rollback
// returns to the version before the previous deploy.
func (g *gen) versionChanges() {
	order := slices.Clone(g.changes)
	slices.SortStableFunc(order, func(a, b Line) int { return a.Time.Compare(b.Time) })
	history := map[string][][3]int{}
	for _, l := range order {
		ch := l.Change
		if ch.Kind != ChangeDeploy {
			continue
		}
		h := history[ch.Service]
		if len(h) == 0 {
			h = [][3]int{g.versions[ch.Service]}
		}
		v := h[len(h)-1]
		switch {
		case g.rollbacks[ch] && len(h) > 1:
			v = h[len(h)-2]
		case g.chance(0.3):
			v[1]++
			v[2] = 0
		default:
			v[2]++
		}
		history[ch.Service] = append(h, v)
		ch.Version = fmt.Sprintf("v%d.%d.%d", v[0], v[1], v[2])
	}
	for _, inc := range g.incidents {
		if ch := g.causes[inc]; ch != nil {
			inc.Change.Version = ch.Version
		}
		if ch := g.rollbackOf[inc]; ch != nil {
			inc.Rollback.Version = ch.Version
		}
	}
}

// noise adds the singletons: isolated alerts (a tenth of them flapping)
// and isolated detector blips.
func (g *gen) noise() {
	dur := g.cfg.Duration
	for i := range g.cfg.NoiseAlerts {
		label := fmt.Sprintf("noise-a%03d", i+1)
		s := g.svc(pick(g.r, g.topo.names))
		sev := "warning"
		switch x := g.r.Float64(); {
		case x < 0.2:
			sev = "info"
		case x < 0.35:
			sev = "critical"
		}
		a := g.newAlert(pick(g.r, noiseAlerts(s)), s, sev, alertCtx{}, label)
		st := g.start.Add(g.between(0, dur-2*time.Minute))
		d := g.between(2*time.Minute, 15*time.Minute)
		if g.chance(0.3) {
			d = g.between(15*time.Minute, time.Hour)
		}
		a.spans = []span{{st, st.Add(d)}}
		inc := &Incident{Label: label, Kind: KindNoiseAlert, Root: s.name, Team: s.team, Start: st, End: st.Add(d), Services: []string{s.name}}
		if g.chance(0.1) {
			a.spans = g.flap(span{st, st.Add(d + 10*time.Minute)}, g.between(6*time.Minute, 15*time.Minute))
			inc.Flapping = true
			inc.End = a.spans[len(a.spans)-1].end
		}
		g.incidents = append(g.incidents, inc)
	}
	for i := range g.cfg.NoiseAnomalies {
		label := fmt.Sprintf("noise-n%03d", i+1)
		s := g.svc(pick(g.r, g.topo.names))
		t := g.start.Add(g.between(0, dur-3*time.Minute))
		metric := pick(g.r, anomalyMetrics(s))
		st := t
		for range 1 + g.r.IntN(3) {
			g.addAnomaly(s, metric, t, label, 0.5+0.4*g.r.Float64())
			t = t.Add(g.between(30*time.Second, 60*time.Second))
		}
		g.incidents = append(g.incidents, &Incident{Label: label, Kind: KindNoiseAnomaly, Root: s.name, Team: s.team, Start: st, End: t, Services: []string{s.name}})
	}
}

// benignChanges are deploys, config changes and flag flips that break
// nothing: most changes in a day.
func (g *gen) benignChanges() {
	for range g.cfg.BenignChanges {
		var s *svcInfo
		if g.chance(0.1) {
			s = g.svc(pick(g.r, g.topo.byLayer[layerData]))
		} else {
			var pool []string
			for l := layerFrontend; l <= layerBackend; l++ {
				pool = append(pool, g.topo.byLayer[l]...)
			}
			s = g.svc(pick(g.r, pool))
		}
		kind := ChangeDeploy
		switch x := g.r.Float64(); {
		case s.layer == layerData || x < 0.2:
			kind = ChangeConfig
		case x < 0.3:
			kind = ChangeFeatureFlag
		}
		g.change(s, kind, g.start.Add(g.between(0, g.cfg.Duration)), false)
	}
}

// anomalyMetrics are the series the detector watches on a service.
func anomalyMetrics(s *svcInfo) []string {
	switch s.store {
	case "postgres":
		return []string{"pg_replication_lag_seconds", "pg_stat_activity_count", "pg_stat_statements_mean_time_seconds"}
	case "mysql":
		return []string{"mysql_slave_lag_seconds", "mysql_global_status_threads_connected"}
	case "redis":
		return []string{"redis_memory_used_bytes", "redis_command_duration_seconds:p99"}
	case "kafka":
		return []string{"kafka_consumergroup_lag", "kafka_server_request_latency_seconds:p99"}
	case "rabbitmq":
		return []string{"rabbitmq_queue_messages_ready"}
	case "elasticsearch":
		return []string{"elasticsearch_search_latency_seconds:p99", "elasticsearch_jvm_memory_used_bytes"}
	}
	return []string{"http_request_duration_seconds:p99", "http_requests:error_ratio", "container_cpu_usage_seconds:rate5m", "container_memory_working_set_bytes"}
}

var detectorWindows = map[string]string{
	"robust_z":    "last 60 samples (rolling median and MAD)",
	"ewma":        "EWMA, about 20 samples of memory (alpha 0.05)",
	"level_shift": "CUSUM since its last restart (drift 0.5 sigma, limit 5 sigma)",
	"seasonal":    "seasonal profile of 24h0m0s in 48 buckets",
}

// addAnomaly adds one anomaly event of the detector on the series metric
// of s at sample time t (rounded down to the 15 s scrape grid).
func (g *gen) addAnomaly(s *svcInfo, metric string, t time.Time, label string, score float64) {
	t = t.Truncate(15 * time.Second)
	labels := map[string]string{"__name__": metric, "service": s.name, "namespace": s.namespace, "job": s.name}
	if s.layer == layerData {
		labels["instance"] = fmt.Sprintf("%s-0.%s.data.svc:%d", s.name, s.name, storePorts[s.store])
	}
	series := event.Fingerprint(event.KindMetric, s.name, labels, nil)
	var id string
	for {
		id = event.DerivedID(t, "scenario-anomaly", series, t.Format(time.RFC3339Nano))
		if !g.usedIDs[id] {
			break
		}
		t = t.Add(15 * time.Second)
	}
	g.usedIDs[id] = true
	expected := 1.0
	switch {
	case strings.HasSuffix(metric, "_bytes"):
		expected = float64(256+g.r.IntN(4096)) * (1 << 20)
	case strings.Contains(metric, "ratio"):
		expected = 0.002 + 0.01*g.r.Float64()
	case strings.Contains(metric, "seconds"):
		expected = 0.05 + 0.5*g.r.Float64()
	default:
		expected = float64(10 + g.r.IntN(500))
	}
	band := expected * (0.2 + 0.3*g.r.Float64())
	value := expected + band*(1.5+6*score*g.r.Float64())
	if g.chance(0.15) && !strings.Contains(metric, "lag") {
		value = math.Max(0, expected-band*(1.3+g.r.Float64()))
	}
	detector := pick(g.r, []string{"robust_z", "ewma", "level_shift", "seasonal"})
	sc := math.Round(score*1000) / 1000
	body := event.AnomalyBody{
		Series:   series,
		Metric:   metric,
		Value:    &value,
		Expected: expected,
		Lower:    math.Max(0, expected-band),
		Upper:    expected + band,
		Score:    &sc,
		Detector: detector,
		Window:   detectorWindows[detector],
		Reason:   fmt.Sprintf("%s = %.4g outside [%.4g, %.4g]", metric, value, math.Max(0, expected-band), expected+band),
	}
	sev := event.SeverityWarning
	if sc >= 0.9 {
		sev = event.SeverityError
	}
	e := &event.Envelope{
		SchemaVersion: event.SchemaVersion,
		ID:            id,
		Kind:          event.KindAnomaly,
		Time:          t,
		ObservedTime:  t.Add(g.between(2*time.Second, 20*time.Second)),
		Source:        "detector",
		Service:       s.name,
		Labels:        labels,
		Severity:      sev,
		Fingerprint:   event.Fingerprint(event.KindAnomaly, s.name, labels, nil),
		Links:         []string{event.DerivedID(t, "scenario-sample", series, t.Format(time.RFC3339Nano))},
	}
	raw, err := event.MarshalBody(body)
	if err != nil {
		panic(err) // a body of plain numbers and strings always encodes
	}
	e.Body = raw
	g.anomalies = append(g.anomalies, genAnomaly{env: e, label: label})
}

// occurrence is one firing span of one alert, as Alertmanager holds it.
type occurrence struct {
	a  *genAlert
	sp span
}

// notify runs Alertmanager over every alert: one aggregation group per
// team route and group_by value, notified group_wait after it forms, then
// every group_interval when an alert fired or resolved, and every repeat
// interval while alerts keep firing unchanged. Resolved alerts are sent
// once (send_resolved). A group with nothing firing is deleted; the next
// alert forms a new one.
func (g *gen) notify() []Line {
	groups := map[string][]*genAlert{}
	for _, a := range g.alerts {
		rt := g.routes[a.team]
		key := a.team + "\xff" + rt.groupBy + "\xff" + a.labels[rt.groupBy]
		groups[key] = append(groups[key], a)
	}
	keys := make([]string, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var lines []Line
	for _, k := range keys {
		parts := strings.Split(k, "\xff")
		lines = append(lines, g.simulateGroup(parts[0], parts[1], parts[2], groups[k])...)
	}
	return lines
}

func (g *gen) simulateGroup(team, groupBy, value string, alerts []*genAlert) []Line {
	rt := g.routes[team]
	var occs []occurrence
	for _, a := range alerts {
		for _, sp := range a.spans {
			if sp.start.Before(g.end) {
				occs = append(occs, occurrence{a, sp})
			}
		}
	}
	slices.SortStableFunc(occs, func(x, y occurrence) int {
		if c := x.sp.start.Compare(y.sp.start); c != 0 {
			return c
		}
		return strings.Compare(x.a.fp, y.a.fp)
	})
	var lines []Line
	next := 0
	for next < len(occs) {
		created := occs[next].sp.start
		flush := created.Add(g.cfg.GroupWait)
		lastFlush := created
		sent := map[int]bool{}
		var lastSent time.Time
		for {
			if flush.After(g.end) {
				return lines
			}
			var firing, resolved []int
			for i, o := range occs {
				if o.sp.start.After(flush) {
					break
				}
				switch {
				case o.sp.end.After(flush):
					firing = append(firing, i)
				case o.sp.end.After(lastFlush):
					resolved = append(resolved, i)
				}
			}
			changed := len(resolved) > 0 || len(firing) != len(sent)
			for _, i := range firing {
				if !sent[i] {
					changed = true
				}
			}
			if changed || len(firing) > 0 && flush.Sub(lastSent) >= rt.repeat {
				lines = append(lines, g.webhook(team, groupBy, value, flush, occs, firing, resolved))
				sent = map[int]bool{}
				for _, i := range firing {
					sent[i] = true
				}
				lastSent = flush
			}
			lastFlush = flush
			if len(firing) == 0 {
				next = len(occs)
				for i, o := range occs {
					if o.sp.start.After(flush) {
						next = i
						break
					}
				}
				break
			}
			flush = flush.Add(g.cfg.GroupInterval)
		}
	}
	return lines
}

// webhook is the payload one group sends at t.
func (g *gen) webhook(team, groupBy, value string, t time.Time, occs []occurrence, firing, resolved []int) Line {
	alerts := make([]Alert, 0, len(firing)+len(resolved))
	for _, i := range firing {
		o := occs[i]
		alerts = append(alerts, Alert{
			Status: event.AlertFiring, Labels: o.a.labels, Annotations: o.a.annotations(t),
			StartsAt: o.sp.start, GeneratorURL: o.a.generatorURL, Fingerprint: o.a.fp,
		})
	}
	for _, i := range resolved {
		o := occs[i]
		alerts = append(alerts, Alert{
			Status: event.AlertResolved, Labels: o.a.labels, Annotations: o.a.annotations(o.sp.end),
			StartsAt: o.sp.start, EndsAt: o.sp.end, GeneratorURL: o.a.generatorURL, Fingerprint: o.a.fp,
		})
	}
	slices.SortStableFunc(alerts, func(x, y Alert) int {
		return cmp.Or(x.StartsAt.Compare(y.StartsAt), strings.Compare(x.Fingerprint, y.Fingerprint))
	})
	status := event.AlertResolved
	if len(firing) > 0 {
		status = event.AlertFiring
	}
	common := func(get func(Alert) map[string]string) map[string]string {
		out := map[string]string{}
		for k, v := range get(alerts[0]) {
			out[k] = v
		}
		for _, a := range alerts[1:] {
			m := get(a)
			for k, v := range out {
				if m[k] != v {
					delete(out, k)
				}
			}
		}
		return out
	}
	return Line{Type: TypeAlertmanager, Time: t, Payload: &Webhook{
		Version:           "4",
		GroupKey:          fmt.Sprintf(`{}/{team=%q}:{%s=%q}`, team, groupBy, value),
		Status:            status,
		Receiver:          team + "-oncall",
		GroupLabels:       map[string]string{groupBy: value},
		CommonLabels:      common(func(a Alert) map[string]string { return a.Labels }),
		CommonAnnotations: common(func(a Alert) map[string]string { return a.Annotations }),
		ExternalURL:       "http://alertmanager.monitoring.svc:9093",
		Alerts:            alerts,
	}}
}
