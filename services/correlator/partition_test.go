package correlator

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/bus"
	"github.com/aiops-dev/aiops/pkg/correlate"
	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/pkg/stage"
	"github.com/aiops-dev/aiops/pkg/stage/stagetest"
)

// Three partitions together make exactly the incidents one correlator
// makes of the same storm (same ids, the same members), and each makes
// only the incidents of its own components. When each transition is
// published may differ: a partition's event time moves on with its own
// signals only, so a quiet period ends later there.
func TestPartitionsMakeTheSameIncidents(t *testing.T) {
	services := []string{"web", "checkout", "payments-db", "search", "auth", "mail", "queue", "cdn"}
	rng := rand.New(rand.NewPCG(5, 8))
	var storm []*event.Envelope
	for i := 0; i < 300; i++ {
		svc := services[rng.IntN(len(services))]
		start := time.Duration(rng.IntN(6*3600)) * time.Second
		name := fmt.Sprintf("Alert%d", rng.IntN(4))
		storm = append(storm, alertEvent(t, name, svc, start, 0))
		if rng.IntN(2) == 0 {
			storm = append(storm, alertEvent(t, name, svc, start, start+time.Duration(1+rng.IntN(1200))*time.Second))
		}
	}
	slices.SortStableFunc(storm, func(a, b *event.Envelope) int { return a.Time.Compare(b.Time) })
	catalog := writeCatalog(t)
	run := func(cfg Config) (members map[string]string) {
		cfg.Catalog = catalog
		// the wall clock after the storm, as it would be: an event
		// over an hour ahead of it is refused
		proc, err := NewProcessor(cfg, zerolog.Nop(), (&clock{t: t0.Add(7 * time.Hour)}).now)
		if err != nil {
			t.Fatal(err)
		}
		h := stagetest.Start(t, proc, stage.Config{TickEvery: time.Second})
		for _, r := range h.Feed(storm...) {
			if r.Outcome != stagetest.Acked {
				t.Fatalf("%v %v", r.Outcome, r.Err)
			}
		}
		// An incident's members: every fingerprint it ever listed.
		seen := map[string]map[string]bool{}
		for _, e := range h.Pub.Events(t) {
			var b correlate.State
			if err := e.DecodeBody(&b); err != nil {
				t.Fatal(err)
			}
			if seen[b.IncidentID] == nil {
				seen[b.IncidentID] = map[string]bool{}
			}
			for _, m := range b.Members {
				seen[b.IncidentID][m.Fingerprint] = true
			}
		}
		members = map[string]string{}
		for id, fps := range seen {
			list := slices.Sorted(maps.Keys(fps))
			members[id] = strings.Join(list, ",")
		}
		return members
	}
	// Partitioned correlators turn shared_services, alert_storms,
	// location_bursts and unplaced_signals off (a burst, and what spreads
	// now, span components); so does the one they are compared with.
	whole := run(Config{Rules: correlate.Config{SharedServices: correlate.Flag(false), AlertStorms: correlate.Flag(false), LocationBursts: correlate.Flag(false), UnplacedSignals: correlate.Flag(false)}})
	if len(whole) < 10 {
		t.Fatalf("the storm made %d incidents: too few to tell", len(whole))
	}
	union := map[string]string{}
	owner := map[string]int{}
	for i := 0; i < 3; i++ {
		for id, m := range run(Config{Partition: PartitionConfig{Count: 3, Index: i}}) {
			if prev, ok := owner[id]; ok {
				t.Fatalf("incident %s made by partitions %d and %d", id, prev, i)
			}
			owner[id], union[id] = i, m
		}
	}
	// The same incidents, by their members: a partition's ids derive from
	// the partition too (correlate.Correlator.Partitioned).
	if one, parted := slices.Sorted(maps.Values(whole)), slices.Sorted(maps.Values(union)); !slices.Equal(one, parted) {
		t.Fatalf("partitions made other incidents than one correlator:\none:\n%v\npartitions:\n%v", one, parted)
	}
	parts := map[int]bool{}
	for _, p := range owner {
		parts[p] = true
	}
	if len(parts) < 2 {
		t.Fatalf("all incidents in one partition: the storm does not test the split")
	}
}

func TestPartitionConfig(t *testing.T) {
	for _, p := range []PartitionConfig{{Count: 2, Index: 2}, {Count: 2, Index: -1}, {Count: -1}, {Count: 2000}} {
		if err := (Config{Partition: p}).Validate(); err == nil || !strings.Contains(err.Error(), "correlator.partition") {
			t.Errorf("%+v: %v", p, err)
		}
	}
	// A name of its own that looks like a partition's would be taken for
	// an earlier layout's by a default deployment on the same account.
	for _, c := range []Config{{Consumer: bus.ConsumerConfig{Durable: "correlator-7"}}, {State: StateConfig{Key: "correlator-0"}}} {
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "is a partition's name") {
			t.Errorf("%+v: %v, want refused as a partition's name", c, err)
		}
	}
	for _, c := range []Config{{Consumer: bus.ConsumerConfig{Durable: "correlator"}}, {Consumer: bus.ConsumerConfig{Durable: "correlator-blue"}}} {
		if err := c.Validate(); err != nil {
			t.Errorf("%+v: %v", c, err)
		}
	}
	cfg := Config{Partition: PartitionConfig{Count: 4, Index: 3}}.WithDefaults()
	if cfg.Consumer.Durable != "correlator-3" || cfg.State.Key != "correlator-3" {
		t.Fatalf("partition 3's durable %q, state key %q; want correlator-3 for both", cfg.Consumer.Durable, cfg.State.Key)
	}
}
