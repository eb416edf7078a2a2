package issuegen

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/aiops-dev/aiops/pkg/correlate/eval"
)

// Config shapes the storms. DefaultConfig is what the calibration in the
// package documentation was measured on.
type Config struct {
	// Start is when the storm's recording starts; Span how long it lasts
	// (the horizon: what Alertmanager would send after it is not in the
	// storm).
	Start time.Time
	Span  time.Duration
	// Incidents by kind: cascades over the dependency graph, bad
	// changes (deploy, config, feature flag), failures of one service
	// alone, services whose alerts flap.
	Cascades, Deploys, Local, Flapping int
	// Simultaneous is how many incidents start at the same moment (within
	// 90 seconds) as another one, elsewhere in the estate.
	Simultaneous int
	// MinDuration and MaxDuration bound how long an incident lasts until
	// it is mitigated.
	MinDuration, MaxDuration time.Duration
	// Spread is how surely a failure climbs the dependency graph: a
	// caller at depth d of a failing service fails too with probability
	// Spread^d times the failure mode's fanout (a bad change climbs
	// less: (0.7·Spread)^d, two hops at most).
	Spread float64
	// Refire is the probability that an incident's fix does not hold and
	// its alerts fire again; FlapMember that one of its alerts flaps.
	Refire, FlapMember float64
	// Noise is the number of unrelated alerts; NoiseFlap the share of them
	// that flap.
	Noise     int
	NoiseFlap float64
	// HarmlessChanges is the number of changes that break nothing.
	HarmlessChanges int
	// OptionalEdge is the probability of each optional dependency of the
	// estate (the catalog differs from storm to storm).
	OptionalEdge float64
	// DuplicateDelivery is the probability that a webhook call is sent
	// twice (a receiver that answered too late).
	DuplicateDelivery float64
	// Alertmanager's timers; critical alerts repeat at
	// CriticalRepeatInterval, the others at RepeatInterval.
	GroupWait, GroupInterval, RepeatInterval, CriticalRepeatInterval time.Duration
}

// DefaultConfig is a six-hour storm of a dozen incidents, seven of them
// cascades, and forty-five unrelated alerts: the storms the calibration
// in the package documentation was measured on.
func DefaultConfig() Config {
	return Config{
		Start:                  time.Date(2026, 3, 10, 13, 0, 0, 0, time.UTC),
		Span:                   6 * time.Hour,
		Cascades:               7,
		Deploys:                2,
		Local:                  1,
		Flapping:               2,
		Simultaneous:           2,
		MinDuration:            15 * time.Minute,
		MaxDuration:            60 * time.Minute,
		Spread:                 1,
		Refire:                 0.3,
		FlapMember:             0.35,
		Noise:                  45,
		NoiseFlap:              0.2,
		HarmlessChanges:        30,
		OptionalEdge:           0.5,
		DuplicateDelivery:      0.02,
		GroupWait:              30 * time.Second,
		GroupInterval:          5 * time.Minute,
		RepeatInterval:         4 * time.Hour,
		CriticalRepeatInterval: time.Hour,
	}
}

// Validate names every field out of range.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf("issuegen: "+format, args...)) }
	if c.Start.IsZero() {
		bad("Start is not set")
	}
	if c.Span < 2*time.Hour {
		bad("Span %v is shorter than 2h (incidents need room)", c.Span)
	}
	for name, n := range map[string]int{"Cascades": c.Cascades, "Deploys": c.Deploys, "Local": c.Local, "Flapping": c.Flapping, "Simultaneous": c.Simultaneous, "Noise": c.Noise, "HarmlessChanges": c.HarmlessChanges} {
		if n < 0 {
			bad("%s is %d, negative", name, n)
		}
	}
	if n := c.Cascades + c.Deploys + c.Local + c.Flapping; c.Simultaneous >= n && c.Simultaneous > 0 {
		bad("Simultaneous %d needs more incidents than %d", c.Simultaneous, n)
	}
	if c.MinDuration < minFirstEpisode || c.MaxDuration < c.MinDuration+15*time.Minute {
		bad("durations [%v, %v]: want MinDuration of at least %v and MaxDuration 15m above it", c.MinDuration, c.MaxDuration, minFirstEpisode)
	} else if c.Span < c.MaxDuration+time.Hour {
		bad("MaxDuration %v leaves no room in Span %v (want Span an hour longer at least)", c.MaxDuration, c.Span)
	}
	for name, v := range map[string]float64{"Spread": c.Spread, "Refire": c.Refire, "FlapMember": c.FlapMember, "NoiseFlap": c.NoiseFlap, "OptionalEdge": c.OptionalEdge, "DuplicateDelivery": c.DuplicateDelivery} {
		if !(v >= 0 && v <= 1) {
			bad("%s is %v, not a probability", name, v)
		}
	}
	if c.GroupWait <= 0 || c.GroupInterval <= 0 || c.RepeatInterval < c.GroupInterval || c.CriticalRepeatInterval < c.GroupInterval {
		bad("Alertmanager timers group_wait %v, group_interval %v, repeat %v/%v: want positive, repeats at least group_interval", c.GroupWait, c.GroupInterval, c.RepeatInterval, c.CriticalRepeatInterval)
	}
	slices.SortFunc(errs, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
	return errors.Join(errs...)
}

// Storm is one generated alert storm with its ground truth.
type Storm struct {
	// Lines are the replay input (`aiops correlate replay --input`):
	// Alertmanager webhook calls and change events, JSON, in
	// non-decreasing time.
	Lines [][]byte
	// Catalog is the service catalog (YAML: services → owner, team, tier,
	// runbook, depends_on).
	Catalog []byte
	// Truth maps every alert fingerprint in Lines to its true incident.
	Truth map[string]string
	// Incidents is the number of true incidents in Truth (noise alerts
	// count one each); Notifications the number of webhook calls.
	Incidents     int
	Notifications int
}

// Generate makes the storm of seed: the same seed and Config give the
// same storm. It panics when cfg does not validate (a programming error).
func Generate(seed uint64, cfg Config) Storm {
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	rng := rand.New(rand.NewPCG(seed, 0x69737375656765)) // "issuege"
	p := &planner{
		cfg: cfg, seed: seed, rng: rng,
		byFP:       map[string]*alert{},
		busy:       map[string][]span{},
		harmlessAt: map[string][]time.Time{},
		rollouts:   map[string][]rollout{},
		horizon:    cfg.Start.Add(cfg.Span),
	}
	p.w = newWorld(rng, cfg.OptionalEdge)
	for range 24 {
		p.nodes = append(p.nodes, fmt.Sprintf("10.0.%d.%d", 16*rng.IntN(3)+rng.IntN(16), 4+rng.IntN(250)))
	}
	p.harmless()
	p.incidents()
	p.noise()
	notes := p.deliver()

	s := Storm{Catalog: p.w.catalogYAML(), Truth: map[string]string{}, Notifications: len(notes)}
	s.Lines = p.lines(notes)
	for _, n := range notes {
		for _, a := range n.body.Alerts {
			s.Truth[a.Fingerprint] = p.byFP[a.Fingerprint].incident
		}
	}
	ids := map[string]bool{}
	for _, id := range s.Truth {
		ids[id] = true
	}
	s.Incidents = len(ids)
	return s
}

// incidents draws the incidents' kinds and start times, then lays them
// out kind by kind, each kind in time order: bad changes first (they roll
// out new pods the others' alerts name), then cascades, then the failures
// of one service, which fit in where the estate is free.
func (p *planner) incidents() {
	type planned struct {
		kind string
		at   time.Time
	}
	var all []planned
	for _, k := range []struct {
		kind string
		n    int
	}{{"deploy", p.cfg.Deploys}, {"cascade", p.cfg.Cascades}, {"local", p.cfg.Local}, {"flapping", p.cfg.Flapping}} {
		for range k.n {
			all = append(all, planned{kind: k.kind})
		}
	}
	// Starts are spread over the storm, one to a slot at a random place
	// in it (slots are shorter than most incidents, so neighbours
	// overlap), in random order of kinds; then Simultaneous of them move
	// to start with another one.
	p.rng.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	first, latest := 10*time.Minute, p.cfg.Span-p.cfg.MaxDuration-20*time.Minute
	slot := (latest - first) / time.Duration(max(len(all), 1))
	for i := range all {
		all[i].at = p.cfg.Start.Add(first + time.Duration(i)*slot + p.between(0, slot))
	}
	order := p.rng.Perm(len(all))
	for i := 1; i <= p.cfg.Simultaneous; i++ {
		all[order[i]].at = all[order[p.rng.IntN(i)]].at.Add(p.between(0, 90*time.Second))
	}
	slices.SortStableFunc(all, func(a, b planned) int { return a.at.Compare(b.at) })
	ids := make([]string, len(all))
	for i, pl := range all {
		ids[i] = fmt.Sprintf("inc-%02d-%s", i+1, pl.kind)
	}
	for _, kind := range []string{"deploy", "cascade", "local", "flapping"} {
		for i, pl := range all {
			if pl.kind != kind {
				continue
			}
			switch kind {
			case "cascade":
				p.cascade(ids[i], pl.at)
			case "deploy":
				p.deploy(ids[i], pl.at)
			case "local":
				p.local(ids[i], pl.at)
			case "flapping":
				p.flapping(ids[i], pl.at)
			}
		}
	}
}

// Item is an alert as a correlator sees it in the lines: its fingerprint,
// its labels and when it first fired (its earliest startsAt in the lines).
type Item struct {
	Fingerprint string
	Labels      map[string]string
	First       time.Time
}

// Items reads the alerts out of lines (a Storm's, or any replay input of
// Alertmanager and change lines), in the order first fired; an
// unreadable line is an error naming its number.
func Items(lines [][]byte) ([]Item, error) {
	seen := map[string]int{}
	var items []Item
	for n, raw := range lines {
		var l struct {
			Type    string `json:"type"`
			Payload struct {
				Alerts []struct {
					Labels      map[string]string `json:"labels"`
					StartsAt    time.Time         `json:"startsAt"`
					Fingerprint string            `json:"fingerprint"`
				} `json:"alerts"`
			} `json:"payload"`
		}
		if err := json.Unmarshal(raw, &l); err != nil {
			return nil, fmt.Errorf("issuegen: line %d: %w", n+1, err)
		}
		if l.Type != "alertmanager" {
			continue
		}
		for _, a := range l.Payload.Alerts {
			if a.Fingerprint == "" {
				return nil, fmt.Errorf("issuegen: line %d: an alert without a fingerprint", n+1)
			}
			if i, ok := seen[a.Fingerprint]; ok {
				if a.StartsAt.Before(items[i].First) {
					items[i].First = a.StartsAt
				}
				continue
			}
			seen[a.Fingerprint] = len(items)
			items = append(items, Item{a.Fingerprint, a.Labels, a.StartsAt})
		}
	}
	slices.SortStableFunc(items, func(a, b Item) int {
		if c := a.First.Compare(b.First); c != 0 {
			return c
		}
		return strings.Compare(a.Fingerprint, b.Fingerprint)
	})
	return items, nil
}

// Sightings are items for the time baselines (eval.WindowsByTime,
// eval.ChainByTime): each alert at its first startsAt.
func Sightings(items []Item) []eval.Sighting {
	out := make([]eval.Sighting, len(items))
	for i, it := range items {
		out[i] = eval.Sighting{ID: it.Fingerprint, First: it.First}
	}
	return out
}

// ByLabel is the label baseline: one incident per value of label (alerts
// without it share the empty value), as an Alertmanager route grouping by
// that label alone.
func ByLabel(items []Item, label string) map[string]string {
	out := make(map[string]string, len(items))
	for _, it := range items {
		out[it.Fingerprint] = label + "=" + it.Labels[label]
	}
	return out
}
