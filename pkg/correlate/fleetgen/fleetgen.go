package fleetgen

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"time"

	"github.com/aiops-dev/aiops/pkg/correlate/eval"
	"github.com/aiops-dev/aiops/pkg/event"
)

// Storm is one generated storm.
type Storm struct {
	Lines         [][]byte          // JSON lines in non-decreasing time
	Catalog       []byte            // service catalog, YAML
	Truth         map[string]string // every alert fingerprint in Lines -> its true incident id
	Incidents     int               // number of true incidents in Truth (noise alerts one each)
	Notifications int               // number of webhook lines

	// service is the catalog service the generator meant each alert for,
	// to check ServiceOf against.
	service map[string]string
}

// Config holds the knobs of a storm. The defaults describe an ordinary
// weekday of the estate; see the package documentation for the
// calibration.
type Config struct {
	// Start is the beginning of the day; Length how long incidents keep
	// starting (notifications of late incidents run past it).
	Start  time.Time
	Length time.Duration
	// Incidents is the expected number of real (multi-alert) incidents in
	// a day, and Mix the relative weight of each kind (see mix).
	Incidents float64
	Mix       map[string]float64
	// Coincident is the chance that an incident is joined by an unrelated
	// one starting within three minutes, half the time in the same region.
	Coincident float64
	// Noise is the expected number of stand-alone noise alerts in a day,
	// Flapping the expected number of alerts flapping around their
	// threshold for hours. Each is its own true incident.
	Noise    float64
	Flapping float64
	// Changes is the expected number of harmless deploys, config pushes
	// and flag flips in a day (the ones that cause incidents come on top).
	Changes float64
}

// DefaultConfig is the calibrated weekday.
func DefaultConfig() Config {
	mix := map[string]float64{}
	for _, k := range kinds {
		mix[k.name] = k.weight
	}
	return Config{
		Start:      time.Date(2025, 6, 3, 0, 0, 0, 0, time.UTC),
		Length:     24 * time.Hour,
		Incidents:  34,
		Mix:        mix,
		Coincident: 0.08,
		Noise:      70,
		Flapping:   5,
		Changes:    110,
	}
}

// generator holds the state of one Generate call.
type generator struct {
	cfg      Config
	rng      *rand.Rand
	alerts   []*alert
	owner    map[string]string // fingerprint -> incident, so no label set serves two
	changes  []changeLine
	count    int // incidents planned
	versions map[string]version
}

// Generate builds the storm of one seed.
func Generate(seed uint64, cfg Config) Storm {
	g := &generator{
		cfg:      cfg,
		rng:      rand.New(rand.NewPCG(seed, seed^0x5eed_f1ee_7ae2_0001)),
		owner:    map[string]string{},
		versions: map[string]version{},
	}
	g.planIncidents()
	g.planNoise()
	g.planChanges()
	for _, a := range g.alerts {
		evaluate(a)
	}
	notes := alertmanager(g.alerts)
	return g.storm(notes)
}

// planIncidents draws the day's real incidents: a Poisson number, each of
// a kind drawn from the mix, at a time that follows the kind's calendar.
func (g *generator) planIncidents() {
	names := make([]string, 0, len(g.cfg.Mix))
	for name := range g.cfg.Mix {
		names = append(names, name)
	}
	slices.Sort(names)
	total := 0.0
	for _, n := range names {
		total += g.cfg.Mix[n]
	}
	pickKind := func() incidentKind {
		x := g.rng.Float64() * total
		for _, n := range names {
			x -= g.cfg.Mix[n]
			if x < 0 {
				return kindNamed(n)
			}
		}
		return kindNamed(names[len(names)-1])
	}
	for range g.poisson(g.cfg.Incidents) {
		k := pickKind()
		at := g.when(k.changeDriven)
		used := k.run(g.newIncident(k.name), at, "")
		if g.chance(g.cfg.Coincident) {
			other := pickKind()
			region := ""
			if g.chance(0.5) {
				region = used
			}
			other.run(g.newIncident(other.name), at.Add(g.between(0, 3*min)), region)
		}
	}
}

// when draws an incident's start. Change-driven incidents follow the
// deploy calendar (European and American working hours); others are
// spread over the day with a mild bump at peak traffic.
func (g *generator) when(changeDriven bool) time.Time {
	weights := trafficByHour
	if changeDriven {
		weights = deploysByHour
	}
	total := 0.0
	for _, w := range weights {
		total += w
	}
	x := g.rng.Float64() * total
	hour := 0
	for h, w := range weights {
		if x -= w; x < 0 {
			hour = h
			break
		}
	}
	at := time.Duration(hour)*time.Hour + g.between(0, time.Hour)
	return g.cfg.Start.Add(time.Duration(float64(at) * float64(g.cfg.Length) / float64(24*time.Hour)))
}

// Relative rates per UTC hour. Deploys follow working hours in Europe
// (07-17 UTC) and the US east coast (13-22 UTC), with a freeze-ish night.
var (
	deploysByHour = [24]float64{0.1, 0.1, 0.1, 0.1, 0.1, 0.2, 0.4, 0.9, 1.2, 1.3, 1.3, 1.1, 1.0, 1.4, 1.6, 1.6, 1.5, 1.2, 1.0, 0.9, 0.8, 0.6, 0.3, 0.2}
	trafficByHour = [24]float64{0.6, 0.5, 0.5, 0.5, 0.5, 0.6, 0.8, 0.9, 1.0, 1.1, 1.1, 1.1, 1.1, 1.2, 1.3, 1.3, 1.3, 1.2, 1.1, 1.0, 0.9, 0.8, 0.7, 0.6}
)

func (g *generator) newIncident(kind string) *incident {
	g.count++
	return &incident{g: g, id: fmt.Sprintf("inc-%03d-%s", g.count, kind), byFP: map[string]*alert{}}
}

// incident collects the alerts of one true incident.
type incident struct {
	g    *generator
	id   string
	byFP map[string]*alert
}

// raise registers an alert with the incident and returns it; the same
// label set raised twice in one incident is one alert (it may fire
// several times). A label set another incident already owns is redrawn
// through vary, or dropped (nil) when the rule has nothing fresh to draw.
func (in *incident) raise(a *alert) *alert {
	g := in.g
	for range 8 {
		fp := event.AlertmanagerFingerprint(a.labels)
		if prev, ok := in.byFP[fp]; ok {
			return prev
		}
		if _, taken := g.owner[fp]; !taken {
			a.incident = in.id
			g.finish(a)
			g.owner[fp] = in.id
			in.byFP[fp] = a
			g.alerts = append(g.alerts, a)
			return a
		}
		if a.vary == nil {
			return nil
		}
		a.vary(a)
	}
	return nil
}

// Random helpers.

func (g *generator) chance(p float64) bool { return g.rng.Float64() < p }

func (g *generator) between(lo, hi time.Duration) time.Duration {
	if hi <= lo {
		return lo
	}
	return lo + time.Duration(g.rng.Int64N(int64(hi-lo)))
}

func pick[T any](g *generator, xs []T) T { return xs[g.rng.IntN(len(xs))] }

// some picks n distinct elements of xs (all of them if there are fewer).
func some[T any](g *generator, xs []T, n int) []T {
	out := slices.Clone(xs)
	g.rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	if n < len(out) {
		out = out[:n]
	}
	return out
}

func (g *generator) poisson(lambda float64) int {
	if lambda <= 0 {
		return 0
	}
	if lambda > 200 { // normal approximation, never needed by the defaults
		return int(math.Max(0, math.Round(lambda+math.Sqrt(lambda)*g.rng.NormFloat64())))
	}
	l, k, p := math.Exp(-lambda), 0, 1.0
	for {
		p *= g.rng.Float64()
		if p <= l {
			return k
		}
		k++
	}
}

// storm renders the notifications and changes as lines and derives the
// truth from what was actually sent.
func (g *generator) storm(notes []notification) Storm {
	type timed struct {
		at   time.Time
		line line
	}
	var all []timed
	for _, n := range notes {
		all = append(all, timed{n.at, line{Type: "alertmanager", Time: n.at, Payload: n.payload}})
	}
	for _, c := range g.changes {
		all = append(all, timed{c.at, line{Type: "change", Time: c.at, Change: &c.change}})
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].at.Before(all[j].at) })

	s := Storm{Catalog: catalogYAML(), Truth: map[string]string{}, service: map[string]string{}}
	byFP := map[string]*alert{}
	for _, a := range g.alerts {
		byFP[a.fp] = a
	}
	incidents := map[string]bool{}
	for _, t := range all {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(t.line); err != nil {
			panic(err)
		}
		s.Lines = append(s.Lines, bytes.TrimRight(buf.Bytes(), "\n"))
		if t.line.Payload == nil {
			continue
		}
		s.Notifications++
		for _, wa := range t.line.Payload.Alerts {
			a := byFP[wa.Fingerprint]
			s.Truth[a.fp] = a.incident
			s.service[a.fp] = a.service
			incidents[a.incident] = true
		}
	}
	s.Incidents = len(incidents)
	return s
}

// line is one JSON line of a storm.
type line struct {
	Type    string    `json:"type"`
	Time    time.Time `json:"time"`
	Payload *webhook  `json:"payload,omitempty"`
	Change  *change   `json:"change,omitempty"`
}

// BaselineByService groups alerts by the catalog service their labels
// name (ServiceOf), over the whole day: one incident per service.
func (s *Storm) BaselineByService() map[string]string {
	out := map[string]string{}
	for _, a := range s.alertsInOrder() {
		out[a.fp] = "service/" + ServiceOf(a.labels)
	}
	return out
}

// BaselineTimeWindow groups alerts by time: in the order alerts are first
// seen, an alert first seen within d of the current window's first alert
// joins it, else it opens a new window.
func (s *Storm) BaselineTimeWindow(d time.Duration) map[string]string {
	var items []eval.Sighting
	for _, a := range s.alertsInOrder() {
		items = append(items, eval.Sighting{ID: a.fp, First: a.seen})
	}
	return eval.WindowsByTime(items, d)
}

type seenAlert struct {
	fp     string
	seen   time.Time
	labels map[string]string
}

// alertsInOrder reads the alerts of the lines in the order they are
// first seen, as a consumer of the lines would.
func (s *Storm) alertsInOrder() []seenAlert {
	var out []seenAlert
	seen := map[string]bool{}
	for _, raw := range s.Lines {
		var l line
		if err := json.Unmarshal(raw, &l); err != nil || l.Payload == nil {
			continue
		}
		for _, a := range l.Payload.Alerts {
			if !seen[a.Fingerprint] {
				seen[a.Fingerprint] = true
				out = append(out, seenAlert{a.Fingerprint, l.Time, a.Labels})
			}
		}
	}
	return out
}
