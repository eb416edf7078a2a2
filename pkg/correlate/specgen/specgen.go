package specgen

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/aiops-dev/aiops/pkg/correlate/eval"
)

// Storm is one generated alert storm with its ground truth.
type Storm struct {
	Lines         [][]byte          // JSON lines in non-decreasing time
	Catalog       []byte            // service catalog, YAML
	Truth         map[string]string // every alert fingerprint in Lines -> its true incident id (noise alerts one incident each)
	Incidents     int               // number of true incidents in Truth
	Notifications int               // number of webhook lines
}

// Config holds the knobs of a storm.
type Config struct {
	// Start is when the storm begins; Duration how long it lasts.
	Start    time.Time
	Duration time.Duration
	// Services is the approximate size of the catalog (8 to 39).
	Services int

	// How many incidents of each kind: failures cascading up the
	// dependency graph, deploy-induced failures, flapping alerts, and
	// failures that resolve and fire again.
	Cascades, Deploys, Flaps, Refires int
	// Coincide is the probability that an incident starts at the same
	// moment (within a minute) as the previous one, on an unrelated part
	// of the graph; chains of three happen with Coincide squared.
	Coincide float64
	// Noise is the number of unrelated alerts, each an incident of its own.
	Noise int
	// HarmlessChanges is the rate of deploys and config changes per hour
	// that break nothing.
	HarmlessChanges float64

	// CascadeSpread is the probability that a service depending on a
	// failing one fails too, at the first hop (it decays with each hop);
	// CascadeMax caps the services of a cascade.
	CascadeSpread float64
	CascadeMax    int
	// MultiPod is the probability that a failing service alerts on two
	// pods rather than one.
	MultiPod float64
	// HopDelay is the mean time for a failure to climb one dependency.
	HopDelay time.Duration
	// Separation is how far apart in time two incidents on the same or
	// directly dependent services must be to count as distinct.
	Separation time.Duration

	// Alertmanager's route timers.
	GroupWait, GroupInterval, RepeatInterval time.Duration
}

// DefaultConfig is the calibrated storm (see doc.go).
func DefaultConfig() Config {
	return Config{
		Start:           time.Date(2025, 3, 11, 8, 0, 0, 0, time.UTC),
		Duration:        6 * time.Hour,
		Services:        32,
		Cascades:        6,
		Deploys:         4,
		Flaps:           2,
		Refires:         2,
		Coincide:        0.3,
		Noise:           25,
		HarmlessChanges: 3,
		CascadeSpread:   0.85,
		CascadeMax:      14,
		MultiPod:        0.25,
		HopDelay:        90 * time.Second,
		Separation:      15 * time.Minute,
		GroupWait:       30 * time.Second,
		GroupInterval:   5 * time.Minute,
		RepeatInterval:  4 * time.Hour,
	}
}

// Generate draws the storm of seed: the same seed and Config give the same
// storm, byte for byte.
func Generate(seed uint64, cfg Config) Storm {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	g := newGraph(r, cfg.Services)
	p := newPlanner(r, g, cfg)
	p.planIncidents()
	p.planNoise()
	p.planChanges()

	var alerts []*alertDef
	for _, inc := range p.incidents {
		alerts = append(alerts, inc.alerts...)
	}
	notes := simulate(alerts, cfg, p.end)
	changeAt, changes := p.changeLines(p.changes)

	byFP := map[string]*alertDef{}
	for _, a := range alerts {
		byFP[a.fp] = a
	}
	s := Storm{Catalog: g.yaml(), Truth: map[string]string{}}
	ci := 0
	for _, n := range notes {
		for ci < len(changeAt) && !changeAt[ci].After(n.at) {
			s.Lines = append(s.Lines, changeLine(changeAt[ci], changes[ci]))
			ci++
		}
		s.Lines = append(s.Lines, alertLine(n))
		s.Notifications++
		for _, a := range n.payload.Alerts {
			s.Truth[a.Fingerprint] = byFP[a.Fingerprint].inc.id
		}
	}
	for ; ci < len(changeAt); ci++ {
		if !changeAt[ci].After(p.end) {
			s.Lines = append(s.Lines, changeLine(changeAt[ci], changes[ci]))
		}
	}
	ids := map[string]bool{}
	for _, id := range s.Truth {
		ids[id] = true
	}
	s.Incidents = len(ids)
	return s
}

func changeLine(at time.Time, c change) []byte {
	return mustJSON(struct {
		Type   string `json:"type"`
		Time   string `json:"time"`
		Change change `json:"change"`
	}{"change", at.UTC().Format(time.RFC3339), c})
}

func alertLine(n notification) []byte {
	return mustJSON(struct {
		Type    string  `json:"type"`
		Time    string  `json:"time"`
		Payload webhook `json:"payload"`
	}{"alertmanager", n.at.UTC().Format(time.RFC3339), n.payload})
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// planIncidents schedules the incidents: random moments over the storm,
// some shared by two or three independent incidents, built in time order
// so that each avoids the services of those active around it.
func (p *planner) planIncidents() {
	var kinds []string
	for _, k := range []struct {
		kind string
		n    int
	}{{"cascade", p.cfg.Cascades}, {"deploy", p.cfg.Deploys}, {"flap", p.cfg.Flaps}, {"refire", p.cfg.Refires}} {
		for range k.n {
			kinds = append(kinds, k.kind)
		}
	}
	p.r.Shuffle(len(kinds), func(i, j int) { kinds[i], kinds[j] = kinds[j], kinds[i] })
	type slot struct {
		at   time.Time
		kind string
	}
	var slots []slot
	lo, span := 10*minute, p.cfg.Duration-80*minute
	for i := 0; i < len(kinds); {
		t := p.start.Add(lo + p.between(0, span))
		slots = append(slots, slot{t, kinds[i]})
		i++
		for i < len(kinds) && p.chance(p.cfg.Coincide) {
			slots = append(slots, slot{t.Add(p.between(0, 60*second)), kinds[i]})
			i++
		}
	}
	// the big incidents are placed first, the small ones fit around them
	prio := map[string]int{"cascade": 0, "deploy": 1, "refire": 2, "flap": 3}
	slices.SortStableFunc(slots, func(a, b slot) int {
		if c := prio[a.kind] - prio[b.kind]; c != 0 {
			return c
		}
		return a.at.Compare(b.at)
	})
	for _, sl := range slots {
		p.place(sl.kind, sl.at)
	}
	slices.SortStableFunc(p.incidents, func(a, b *incident) int { return a.start.Compare(b.start) })
	for i, inc := range p.incidents {
		inc.id = fmt.Sprintf("inc-%03d-%s", i+1, inc.kind)
	}
}

// place builds an incident of kind at t, trying other services, then
// later moments, until it is clear of the incidents around it.
func (p *planner) place(kind string, t time.Time) {
	for range 10 {
		for range 30 {
			var inc *incident
			switch kind {
			case "cascade":
				inc = p.cascade(t)
			case "deploy":
				inc = p.deploy(t)
			case "flap":
				inc = p.flap(t)
			default:
				inc = p.refire(t)
			}
			if len(inc.alerts) > 0 && !p.conflicts(inc.svcs, inc.start, inc.end, nil) {
				p.incidents = append(p.incidents, inc)
				p.changes = append(p.changes, inc.changes...)
				return
			}
			for _, a := range inc.alerts {
				delete(p.usedFP, a.fp)
			}
		}
		// no room at this moment: try another one
		t = p.start.Add(10*minute + p.between(0, p.cfg.Duration-80*minute))
	}
}

// planNoise adds unrelated alerts: housekeeping warnings and short blips,
// one alert each, on services no incident is using at the time. A
// quarter never resolve.
func (p *planner) planNoise() {
	var noise []*incident
	for range p.cfg.Noise {
		for range 200 {
			s := p.r.IntN(len(p.g.svcs))
			var rules []rule
			for _, ru := range noiseRules {
				if ru.job != "" || !p.g.svcs[s].kind.isStore() {
					rules = append(rules, ru)
				}
			}
			ru := rules[p.r.IntN(len(rules))]
			on := p.start.Add(p.between(5*minute, p.cfg.Duration-5*minute))
			off := time.Time{}
			if !p.chance(0.25) {
				off = on.Add(p.between(4*minute, 40*minute))
			}
			inc := &incident{kind: "noise"}
			p.addAlert(inc, s, ru, p.targets(s, 1)[0], []span{{on, off}})
			if !p.conflicts(inc.svcs, inc.start, inc.end, nil) {
				p.incidents = append(p.incidents, inc)
				noise = append(noise, inc)
				break
			}
			delete(p.usedFP, inc.alerts[0].fp)
		}
	}
	slices.SortStableFunc(noise, func(a, b *incident) int { return a.start.Compare(b.start) })
	for i, inc := range noise {
		inc.id = fmt.Sprintf("noise-%03d", i+1)
	}
}

// planChanges adds the changes that break nothing: deploys of services
// and, now and then, configuration changes of any service.
func (p *planner) planChanges() {
	if p.cfg.HarmlessChanges <= 0 {
		return
	}
	var apps []int
	for i, s := range p.g.svcs {
		if !s.kind.isStore() {
			apps = append(apps, i)
		}
	}
	mean := float64(time.Hour) / p.cfg.HarmlessChanges
	for t := p.start; ; {
		t = t.Add(time.Duration(p.r.ExpFloat64() * mean).Truncate(time.Second))
		if !t.Before(p.end) {
			return
		}
		if p.chance(0.15) {
			p.changes = append(p.changes, pendingChange{t, p.r.IntN(len(p.g.svcs)), "config"})
			continue
		}
		p.changes = append(p.changes, pendingChange{t, apps[p.r.IntN(len(apps))], "deploy"})
	}
}

// item is an alert as a correlator sees it: its fingerprint, its service
// label and when it was first notified.
type item struct {
	fp, service string
	first       time.Time
}

// items lists the alerts of the storm in the order they are first seen.
func (s *Storm) items() []item {
	var out []item
	seen := map[string]bool{}
	for _, l := range s.Lines {
		var line struct {
			Type    string    `json:"type"`
			Time    time.Time `json:"time"`
			Payload struct {
				Alerts []struct {
					Labels      map[string]string `json:"labels"`
					Fingerprint string            `json:"fingerprint"`
				} `json:"alerts"`
			} `json:"payload"`
		}
		if err := json.Unmarshal(l, &line); err != nil || line.Type != "alertmanager" {
			continue
		}
		for _, a := range line.Payload.Alerts {
			if !seen[a.Fingerprint] {
				seen[a.Fingerprint] = true
				out = append(out, item{a.Fingerprint, a.Labels["service"], line.Time})
			}
		}
	}
	return out
}

// BaselineByService puts all alerts with the same service label into one
// incident, as an Alertmanager route grouping by service would.
func (s *Storm) BaselineByService() map[string]string {
	out := map[string]string{}
	for _, it := range s.items() {
		out[it.fp] = "service=" + it.service
	}
	return out
}

// BaselineTimeWindow groups alerts by time: a window opens at an alert and
// every alert first seen within d of that opening alert joins it; the next
// alert after that opens a new window.
func (s *Storm) BaselineTimeWindow(d time.Duration) map[string]string {
	var items []eval.Sighting
	for _, it := range s.items() {
		items = append(items, eval.Sighting{ID: it.fp, First: it.first})
	}
	return eval.WindowsByTime(items, d)
}
