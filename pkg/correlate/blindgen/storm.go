package blindgen

import (
	"cmp"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"
)

// Storm is one generated alert storm: the lines a correlator reads, the
// catalog it is given, and the truth it is scored against.
type Storm struct {
	// Lines are JSON lines in non-decreasing time: Alertmanager webhook
	// notifications and change events.
	Lines [][]byte
	// Catalog is the service catalog, YAML.
	Catalog []byte
	// Truth maps every alert fingerprint in Lines to its true incident.
	Truth map[string]string
	// Incidents is the number of true incidents in Truth, noise alerts
	// (one incident each) included.
	Incidents int
	// Notifications is the number of webhook lines.
	Notifications int
}

type line struct {
	Type    string      `json:"type"`
	Time    string      `json:"time"`
	Payload *webhook    `json:"payload,omitempty"`
	Change  *changeLine `json:"change,omitempty"`
}

type changeLine struct {
	Service string `json:"service"`
	Kind    string `json:"kind"`
	Version string `json:"version"`
	Author  string `json:"author"`
	Commit  string `json:"commit"`
	URL     string `json:"url"`
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// Generate makes the storm of seed; the same seed and config give the same
// bytes.
func Generate(seed uint64, cfg Config) *Storm {
	g := &gen{
		r:     rand.New(rand.NewPCG(seed, 0x6a09e667f3bcc909)),
		cfg:   cfg,
		fps:   map[string]*incident{},
		start: cfg.Start,
		end:   cfg.Start.Add(cfg.Duration),
	}
	g.cat = buildCatalog(g.r, cfg.DropOptional)
	g.heat(cfg.HotServices, cfg.HotWeight)
	g.backgroundChanges()
	g.plan()

	var alerts []*alert
	for _, inc := range g.incs {
		for _, k := range inc.keys {
			a := inc.alerts[k]
			a.fire()
			if len(a.fired) > 0 {
				alerts = append(alerts, a)
			}
		}
	}
	notes := g.alertmanager(alerts)
	for i := range notes {
		// Delivery takes a moment; Alertmanager stamps nothing, the
		// receiver notes when the notification came.
		notes[i].t = notes[i].t.Add(g.between(15*time.Millisecond, 900*time.Millisecond)).Truncate(time.Millisecond)
	}
	slices.SortStableFunc(notes, func(x, y notification) int {
		if c := x.t.Compare(y.t); c != 0 {
			return c
		}
		return cmp.Compare(x.key, y.key)
	})

	s := &Storm{Catalog: g.cat.yaml(), Truth: map[string]string{}}
	chs := g.versions()
	ci := 0
	emitChange := func(c *change) {
		repo := c.svc
		if c.kind == "config" {
			repo = "platform-config"
		}
		b, err := json.Marshal(line{Type: "change", Time: stamp(c.t), Change: &changeLine{
			Service: c.svc, Kind: c.kind, Version: c.version, Author: c.author, Commit: c.commit,
			URL: fmt.Sprintf("https://git.shop.example.com/shop/%s/-/commit/%s", repo, c.commit),
		}})
		if err != nil {
			panic(err)
		}
		s.Lines = append(s.Lines, b)
	}
	for _, n := range notes {
		for ci < len(chs) && !chs[ci].t.After(n.t) {
			emitChange(chs[ci])
			ci++
		}
		for _, a := range n.w.Alerts {
			inc := g.fps[a.Fingerprint]
			s.Truth[a.Fingerprint] = inc.id
		}
		b, err := json.Marshal(line{Type: "alertmanager", Time: stamp(n.t), Payload: n.w})
		if err != nil {
			panic(err)
		}
		s.Lines = append(s.Lines, b)
		s.Notifications++
	}
	for ; ci < len(chs); ci++ {
		emitChange(chs[ci])
	}
	ids := map[string]bool{}
	for _, id := range s.Truth {
		ids[id] = true
	}
	s.Incidents = len(ids)
	return s
}

// plan schedules the day: incidents by kind, bursts of simultaneous
// incidents, a certificate expiry, noise.
func (g *gen) plan() {
	type planned struct {
		kind int
		at   time.Time
	}
	mix := g.cfg.Mix
	w := []float64{mix.Cascade, mix.Deploy, mix.Local, mix.Flapping, mix.Capacity, mix.Infra}
	n := g.poisson(float64(g.cfg.Incidents))
	ps := make([]planned, n)
	for i := range ps {
		k := g.weighted(w)
		hours := hourWeights
		if k == 1 {
			hours = deployWeights
		}
		ps[i] = planned{kind: k, at: g.timeOfDay(hours, 5*time.Minute, 30*time.Minute)}
	}
	// Bursts: unrelated incidents starting within the same few minutes.
	for range g.cfg.Bursts {
		var idx []int
		for _, i := range g.r.Perm(len(ps)) {
			if k := ps[i].kind; k == 0 || k == 1 || k == 2 || k == 5 {
				idx = append(idx, i)
			}
		}
		k := min(len(idx), 2+g.r.IntN(2))
		t := g.timeOfDay(hourWeights, 5*time.Minute, 30*time.Minute)
		for _, i := range idx[:k] {
			ps[i].at = t.Add(g.between(0, g.cfg.BurstWithin))
		}
	}
	slices.SortStableFunc(ps, func(x, y planned) int { return x.at.Compare(y.at) })
	for _, p := range ps {
		switch p.kind {
		case 0:
			g.cascade(p.at)
		case 1:
			g.deploy(p.at)
		case 2:
			g.local(p.at)
		case 3:
			g.flapping(p.at)
		case 4:
			g.capacity(p.at)
		default:
			g.infra(p.at)
		}
	}
	if g.chance(g.cfg.CertExpiry) {
		g.certExpiry(g.timeOfDay(hourWeights, time.Hour, time.Hour))
	}
	for range g.poisson(float64(g.cfg.NoiseAlerts)) {
		g.noise(g.start.Add(g.between(-2*time.Hour, g.cfg.Duration)))
	}
	// Alerts that have been firing for days and that everyone ignores,
	// and the Watchdog that always fires.
	inc := g.newIncident("noise")
	g.add(inc, g.cat.byName["prometheus"], rWatchdog, 0, nil, span{g.start.Add(-30 * 24 * time.Hour), g.end.Add(time.Hour)})
	for range 1 + g.r.IntN(2) {
		inc := g.newIncident("noise")
		nodes := g.cat.byName["k8s-nodes"]
		g.add(inc, nodes, rNodeDisk, g.r.IntN(nodes.Pods), nil, span{g.start.Add(-g.between(6*time.Hour, 72*time.Hour)), g.start.Add(g.between(time.Hour, 30*time.Hour))})
	}
}

// versions gives every change its version, in time order: deploys bump
// the service's version, rollbacks return to the one before.
func (g *gen) versions() []*change {
	chs := slices.Clone(g.chs)
	slices.SortStableFunc(chs, func(x, y *change) int { return x.t.Compare(y.t) })
	var out []*change
	hist := map[string][]string{}
	rev := map[string]int{}
	for _, c := range chs {
		if c.kind == "config" {
			rev[c.svc]++
			if rev[c.svc] == 1 {
				rev[c.svc] = 100 + g.r.IntN(900)
			}
			c.version = fmt.Sprintf("r%d", rev[c.svc])
		} else {
			h := hist[c.svc]
			if len(h) == 0 {
				h = []string{fmt.Sprintf("v%d.%d.%d", 1+g.r.IntN(3), g.r.IntN(60), g.r.IntN(12))}
			}
			if c.rollback && len(h) > 1 {
				h = h[:len(h)-1]
			} else {
				h = append(h, g.bump(h[len(h)-1]))
			}
			hist[c.svc] = h
			c.version = h[len(h)-1]
		}
		if !c.t.Before(g.start) && c.t.Before(g.end) {
			out = append(out, c)
		}
	}
	return out
}

// bump raises a vMAJOR.MINOR.PATCH version: mostly the minor, sometimes
// the patch.
func (g *gen) bump(v string) string {
	var a, b, c int
	if _, err := fmt.Sscanf(v, "v%d.%d.%d", &a, &b, &c); err != nil {
		panic(err)
	}
	if g.chance(0.3) {
		return fmt.Sprintf("v%d.%d.%d", a, b, c+1)
	}
	return fmt.Sprintf("v%d.%d.0", a, b+1)
}
