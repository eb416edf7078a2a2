package correlate

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aiops-dev/aiops/pkg/event"
)

// layeredCatalog is n services in four layers, each depending on two of
// the layer below.
func layeredCatalog(n int) *Catalog {
	c := &Catalog{Services: map[string]Service{}}
	per := n / 4
	name := func(layer, i int) string { return fmt.Sprintf("svc-%d-%d", layer, i) }
	for layer := range 4 {
		for i := range per {
			s := Service{Team: fmt.Sprintf("team-%d", i%10)}
			if layer < 3 {
				s.DependsOn = []string{name(layer+1, i), name(layer+1, (i+1)%per)}
			}
			c.Services[name(layer, i)] = s
		}
	}
	return c
}

// populated is a correlator holding fps active fingerprints: firing alerts
// on the catalog's services, in incidents of about 100 members. They all
// have one name and open incidents a hundred a second, which is an alert
// storm (Config.AlertStorms): the rule is off here, so that signals meet
// a thousand incidents, and on in BenchmarkNewFingerprintsInAStorm.
func populated(b *testing.B, fps int) (*Correlator, []Signal) {
	return populatedWith(b, fps, Config{MaxFingerprints: 2 * fps, AlertStorms: Flag(false)})
}

func populatedWith(b *testing.B, fps int, cfg Config) (*Correlator, []Signal) {
	cat := layeredCatalog(400)
	c, err := New(cfg, cat)
	if err != nil {
		b.Fatal(err)
	}
	names := make([]string, 0, len(cat.Services))
	for n := range cat.Services {
		names = append(names, n)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	sigs := make([]Signal, fps)
	for i := range sigs {
		svc := names[rng.IntN(len(names))]
		at := t0.Add(time.Duration(i/100) * time.Second)
		sigs[i] = Signal{Kind: SignalAlert, Fingerprint: fmt.Sprintf("%016x", rng.Uint64()), Service: svc, Name: "HighLatency",
			Severity: event.SeverityWarning, Time: at, EventID: event.NewID(at)}
		c.Observe(sigs[i])
	}
	return c, sigs
}

// observeLoop times b.N signals drawn from the populated ones, one
// millisecond apart, each changed by vary, and reports signals/s.
func observeLoop(b *testing.B, c *Correlator, sigs []Signal, seed uint64, vary func(i int, s *Signal, rng *rand.Rand)) {
	rng := rand.New(rand.NewPCG(seed, seed+1))
	now := c.Now()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		s := sigs[rng.IntN(len(sigs))]
		now = now.Add(time.Millisecond)
		s.Time = now
		vary(i, &s, rng)
		c.Observe(s)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "signals/s")
}

// BenchmarkObserve: signals through the correlator's processing with
// 100,000 active fingerprints, as an alert storm's repeats and state
// changes arrive (90% repeats of firing members, 10% resolutions and
// re-firings). Reports signals/s.
func BenchmarkObserve(b *testing.B) {
	c, sigs := populated(b, 100_000)
	observeLoop(b, c, sigs, 3, func(i int, s *Signal, rng *rand.Rand) {
		if i%10 == 0 {
			s.Resolved = rng.IntN(2) == 0
		}
	})
	if c.Fingerprints() < 90_000 {
		b.Fatalf("only %d fingerprints active", c.Fingerprints())
	}
}

// BenchmarkNewFingerprints: new members joining incidents by topology.
func BenchmarkNewFingerprints(b *testing.B) {
	c, sigs := populated(b, 100_000)
	observeLoop(b, c, sigs, 5, func(i int, s *Signal, _ *rand.Rand) { s.Fingerprint = fmt.Sprintf("new-%d", i) })
}

// BenchmarkNewUnplacedFingerprints: new signals of a service the catalog
// does not know (blackbox probes), each looking for what spreads now
// among the arrivals of the last minutes (spreadingNow); against
// BenchmarkNewFingerprints in the same run.
func BenchmarkNewUnplacedFingerprints(b *testing.B) {
	c, sigs := populated(b, 100_000)
	observeLoop(b, c, sigs, 5, func(i int, s *Signal, _ *rand.Rand) {
		s.Fingerprint, s.Service, s.Name = fmt.Sprintf("probe-%d", i), "blackbox-exporter", "BlackboxProbeFailed"
	})
}

// BenchmarkNewFingerprintsNamingUpstreams: new members whose alerts name
// a catalogued service in an upstream label, as callers' errors do, so
// that each joins the index of incidents naming a service (byPeer) that
// a new root looks in; against BenchmarkNewFingerprints in the same run.
func BenchmarkNewFingerprintsNamingUpstreams(b *testing.B) {
	c, sigs := populated(b, 100_000)
	upstreams := make([]map[string]string, 0, len(c.cat.Services))
	for n := range c.cat.Services {
		upstreams = append(upstreams, map[string]string{"upstream": n})
	}
	observeLoop(b, c, sigs, 5, func(i int, s *Signal, rng *rand.Rand) {
		s.Fingerprint, s.Labels = fmt.Sprintf("new-%d", i), upstreams[rng.IntN(len(upstreams))]
	})
}

// BenchmarkNewFingerprintsInAStorm: the same with the defaults, where
// the populated alerts are one alert storm's incident of 100,000 members
// (and, past MaxFingerprints, the one forgotten).
func BenchmarkNewFingerprintsInAStorm(b *testing.B) {
	c, sigs := populatedWith(b, 100_000, Config{MaxFingerprints: 200_000})
	observeLoop(b, c, sigs, 5, func(i int, s *Signal, _ *rand.Rand) { s.Fingerprint = fmt.Sprintf("new-%d", i) })
}

// BenchmarkNewLoneAnomalies: new anomaly series of 1,000 hosts the
// catalog does not know (unplaced_signals off: none joins an incident),
// among 100,000
// firing alerts: "waiting" as by default, where each waits
// (Config.LoneAnomalies) and every signal looks at the hosts waiting
// (corroborate), up to a sixteenth of MaxFingerprints of them; "at once"
// with lone_anomalies: true, each opening its incident, in the same run.
func BenchmarkNewLoneAnomalies(b *testing.B) {
	for _, bm := range []struct {
		name string
		lone *bool
	}{{"waiting", nil}, {"at-once", Flag(true)}} {
		b.Run(bm.name, func(b *testing.B) {
			c, sigs := populatedWith(b, 100_000, Config{MaxFingerprints: 200_000, AlertStorms: Flag(false), UnplacedSignals: Flag(false), LoneAnomalies: bm.lone})
			observeLoop(b, c, sigs, 5, func(i int, s *Signal, _ *rand.Rand) {
				*s = Signal{Kind: SignalAnomaly, Fingerprint: fmt.Sprintf("series-%d", i), Service: fmt.Sprintf("host-%d", i%1000),
					Name: "node_forks_total", Severity: event.SeverityWarning, Time: s.Time, EventID: event.NewID(s.Time), EpisodeID: fmt.Sprintf("ep-%d", i)}
			})
			b.ReportMetric(float64(c.Waiting()), "waiting")
		})
	}
}

// BenchmarkBytesPerFingerprint: heap held per active fingerprint.
func BenchmarkBytesPerFingerprint(b *testing.B) {
	for range b.N {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		c, _ := populated(b, 100_000)
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(c.Fingerprints()), "B/fingerprint")
		runtime.KeepAlive(c)
	}
}

// BenchmarkBytesPerFingerprintOf: heap held per fingerprint, and the
// estimate max_state_bytes bounds (StateBytes), for alerts without labels
// and typical ones (ten labels of about 20 bytes, a 100-byte summary), in
// incidents of a hundred (on a catalog's services) or alone in their own
// (each on a service of its own): what memberBytes, entryBytes and
// incidentBytes were measured with.
func BenchmarkBytesPerFingerprintOf(b *testing.B) {
	for _, bc := range []struct {
		name    string
		alone   bool
		labels  int
		summary int
	}{{"bare-in-hundreds", false, 0, 0}, {"bare-alone", true, 0, 0}, {"typical-in-hundreds", false, 10, 100}, {"typical-alone", true, 10, 100}} {
		b.Run(bc.name, func(b *testing.B) {
			const n = 50_000
			for range b.N {
				var cat *Catalog
				var names []string
				if !bc.alone {
					cat = layeredCatalog(400)
					names = slices.Sorted(maps.Keys(cat.Services))
				}
				runtime.GC()
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				c, err := New(Config{MaxFingerprints: 2 * n, AlertStorms: Flag(false), LocationBursts: Flag(false)}, cat)
				if err != nil {
					b.Fatal(err)
				}
				for i := range n {
					at := t0.Add(time.Duration(i/100) * time.Second)
					svc := fmt.Sprintf("svc-%07d", i)
					if !bc.alone {
						svc = names[i%len(names)]
					}
					var labels map[string]string
					if bc.labels > 0 {
						labels = make(map[string]string, bc.labels)
						for j := range bc.labels {
							labels[fmt.Sprintf("label%02d", j)] = fmt.Sprintf("%012d", i)
						}
					}
					c.Observe(Signal{Kind: SignalAlert, Fingerprint: fmt.Sprintf("%016x", i), Service: svc, Name: "HighLatency",
						Severity: event.SeverityWarning, Time: at, EventID: event.NewID(at), Labels: labels, Summary: strings.Repeat("s", bc.summary)})
				}
				runtime.GC()
				runtime.ReadMemStats(&after)
				b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(c.Fingerprints()), "B/fingerprint")
				b.ReportMetric(float64(c.StateBytes())/float64(c.Fingerprints()), "estimate-B/fingerprint")
				runtime.KeepAlive(c)
			}
		})
	}
}

// BenchmarkOpeningsOfDistinctNames: new alerts of as many names on as
// many uncatalogued services, ten milliseconds apart, each opening an
// incident: the alert-storm check looks only at the recent incidents
// holding an alert of the opening one's name, so it costs the same
// however many opened within storm_window (12,000 here).
func BenchmarkOpeningsOfDistinctNames(b *testing.B) {
	benchOpenings(b, Config{}, func(int) map[string]string { return nil })
}

// benchOpenings observes new alerts of distinct names on as many
// uncatalogued services, ten milliseconds apart, the i-th with labels(i).
func benchOpenings(b *testing.B, cfg Config, labels func(i int) map[string]string) {
	c, err := New(cfg, layeredCatalog(400))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		at := t0.Add(time.Duration(i) * 10 * time.Millisecond)
		c.Observe(Signal{Kind: SignalAlert, Fingerprint: fmt.Sprintf("f%d", i), Service: fmt.Sprintf("job-%d", i),
			Name: fmt.Sprintf("Alert%d", i), Severity: event.SeverityWarning, Time: at, EventID: event.NewID(at), Labels: labels(i)})
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "signals/s")
}

// BenchmarkOpeningsInOnePlace: new alerts on as many uncatalogued
// services, ten milliseconds apart, each opening an incident that may
// join or merge with no other: all from one cluster (the label never
// varies, so no burst is looked for), or from two regions, each of its
// own tenant under group_by. The location-burst check looks only at the
// recent incidents of the opening one's place and group, and pruning
// takes them from the front, so a signal costs the same however many
// opened within location_window (30,000 here).
func BenchmarkOpeningsInOnePlace(b *testing.B) {
	for _, bc := range []struct {
		name   string
		cfg    Config
		labels func(i int) map[string]string
	}{
		{"one-cluster", Config{}, func(int) map[string]string { return map[string]string{"cluster": "prod"} }},
		{"two-regions-own-group", Config{GroupBy: []string{"tenant"}}, func(i int) map[string]string {
			return map[string]string{"region": []string{"eu", "us"}[i%2], "tenant": fmt.Sprintf("t%d", i)}
		}},
	} {
		b.Run(bc.name, func(b *testing.B) { benchOpenings(b, bc.cfg, bc.labels) })
	}
}

// BenchmarkNewFingerprintsAtTheBound: new members once memory is full
// (MaxFingerprints 20,000) of incidents of one member each (unrelated
// services, no catalog), each opening an incident and making room by
// forgetting the oldest (and publishing its resolution); "under" is the
// same with room to spare, the baseline.
func BenchmarkNewFingerprintsAtTheBound(b *testing.B) {
	const held = 20_000
	for _, c := range []struct {
		name  string
		bound int
	}{{"under", 100 * held}, {"at", held}} {
		b.Run(c.name, func(b *testing.B) { newFingerprintsHolding(b, held, c.bound) })
	}
}

func newFingerprintsHolding(b *testing.B, held, bound int) {
	c, err := New(Config{MaxFingerprints: bound}, nil)
	if err != nil {
		b.Fatal(err)
	}
	signal := func(i int, at time.Time) Signal {
		return Signal{Kind: SignalAlert, Fingerprint: fmt.Sprintf("fp-%d", i), Service: fmt.Sprintf("svc-%d", i), Name: fmt.Sprintf("Alert%d", i),
			Severity: event.SeverityWarning, Time: at, EventID: event.NewID(at)}
	}
	at := t0
	for i := range held {
		at = at.Add(time.Second)
		c.Observe(signal(i, at))
	}
	if n := len(c.Incidents()); n < held/2 {
		b.Fatalf("%d incidents for %d signals, want about one each", n, held)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		at = at.Add(time.Second)
		c.Observe(signal(held+i, at))
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "signals/s")
	if c.Fingerprints() > bound {
		b.Fatalf("%d fingerprints held, over the bound %d", c.Fingerprints(), bound)
	}
}

// BenchmarkPlacedAmongUnplacedOfOtherGroups: new alerts on catalogued
// services while 20,000 incidents that signals the catalog cannot place
// opened within the last minute, each of another group (Config.GroupBy),
// none of which a new alert may adopt (adoptUnplaced looks at its own
// group's alone); unplaced_signals off is the baseline of the same run.
func BenchmarkPlacedAmongUnplacedOfOtherGroups(b *testing.B) {
	for _, on := range []bool{false, true} {
		b.Run(fmt.Sprint("unplaced_signals=", on), func(b *testing.B) {
			c, err := New(Config{GroupBy: []string{"tenant"}, UnplacedSignals: Flag(on), AlertStorms: Flag(false), LocationBursts: Flag(false)}, layeredCatalog(400))
			if err != nil {
				b.Fatal(err)
			}
			at := t0
			for i := range 20_000 {
				at = at.Add(3 * time.Millisecond)
				c.Observe(Signal{Kind: SignalAlert, Fingerprint: fmt.Sprint("u", i), Service: fmt.Sprint("job-", i), Name: "Down",
					Time: at, EventID: event.NewID(at), Labels: map[string]string{"tenant": fmt.Sprint("t", i)}})
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				s := at.Add(-time.Duration(i%1000) * time.Millisecond)
				c.Observe(Signal{Kind: SignalAlert, Fingerprint: fmt.Sprint("p", i), Service: fmt.Sprintf("svc-%d-%d", i%4, i%100), Name: "HighLatency",
					Time: s, EventID: event.NewID(s), Labels: map[string]string{"tenant": "x"}})
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "signals/s")
		})
	}
}

// BenchmarkSlowAlertOnABigIncident: whether a slow alert waited on an
// incident of n members on its service, all resolved longer than
// slow_alert_wait before it (waitedOn reads one time per service, not the
// members).
func BenchmarkSlowAlertOnABigIncident(b *testing.B) {
	for _, n := range []int{10, 100_000} {
		b.Run(fmt.Sprint("members=", n), func(b *testing.B) {
			c, err := New(Config{MaxFingerprints: 1_000_000, AlertStorms: Flag(false)}, layeredCatalog(400))
			if err != nil {
				b.Fatal(err)
			}
			c.Observe(alert("DBDown", "svc-3-0", 0))
			for i := range n {
				s := alert("HighErrorRate", "svc-2-0", time.Second)
				s.Fingerprint = fmt.Sprint("e-", i)
				c.Observe(s)
				c.Observe(resolved(s, 2*time.Second))
			}
			id, _ := c.IncidentOf("DBDown/svc-3-0")
			inc := c.incidents[id]
			s := alert("KubePodCrashLooping", "svc-2-0", 20*time.Minute)
			b.ResetTimer()
			for range b.N {
				if c.waitedOn(inc, s) {
					b.Fatal("waited on a failure 18 minutes over")
				}
			}
		})
	}
}

// BenchmarkListed: one page of the incidents API's list (Listed, the
// first 500) with 20,000 incidents held, under the lock the signals wait
// on: no filter, the active ones, and one team's (a team filter ranks the
// root causes of each incident it looks at).
func BenchmarkListed(b *testing.B) {
	c, _ := populatedWith(b, 20_000, Config{MaxFingerprints: 40_000, AlertStorms: Flag(false), GroupWindow: time.Millisecond, SpreadWindow: time.Millisecond})
	b.Logf("%d incidents", len(c.incidents))
	for _, bc := range []struct {
		name string
		f    IncidentFilter
	}{{"all", IncidentFilter{}}, {"active", IncidentFilter{Status: StatusActive}}, {"team", IncidentFilter{Team: "team-3"}}} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				if out, _ := c.Listed(bc.f, nil, 500); len(out) == 0 {
					b.Fatal("nothing listed")
				}
			}
		})
	}
}
