package correlator

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/correlate"
	"github.com/aiops-dev/aiops/pkg/stage"
	"github.com/aiops-dev/aiops/pkg/stage/stagetest"
)

// A partition's component is keyed by its first service's name, so adding
// a front end whose name sorts first (aaa-frontend calling web) can move
// the whole component, and its open incidents, to another partition.
// Restored with the new catalog, the old partition must let them go
// (resolved, saying why): their signals go to the other partition now,
// and nothing would ever end them here. With the catalog unchanged it
// keeps them.
func TestPartitionLetsGoOfIncidentsTheCatalogMovedAway(t *testing.T) {
	mv := movedComponent(t)
	before, after, count, from := mv.before, mv.after, mv.count, mv.from
	for _, tc := range []struct {
		name, catalog string
		resolved      int
	}{{"catalog changed", after, 1}, {"catalog unchanged", before, 0}} {
		t.Run(tc.name, func(t *testing.T) {
			wall := &clock{t: t0.Add(time.Minute)}
			cfg := Config{Catalog: before, Partition: PartitionConfig{Count: count, Index: from}}
			old, err := NewProcessor(cfg, zerolog.Nop(), wall.now)
			if err != nil {
				t.Fatal(err)
			}
			h := stagetest.Start(t, old, stage.Config{TickEvery: time.Hour})
			h.Feed(alertEvent(t, "ReplicationLag", "payments-db", 0, 0))
			if got := incidentEvents(t, h, "opened"); len(got) != 1 {
				t.Fatalf("%d incidents opened, want payments-db's", len(got))
			}
			st, err := old.snapshot()
			if err != nil {
				t.Fatal(err)
			}

			cfg.Catalog = tc.catalog
			restarted, h2 := restartedAtFirstTick(t, cfg, st.data, wall.now)
			got := incidentEvents(t, h2, "resolved")
			if len(got) != tc.resolved {
				t.Fatalf("%d incidents resolved at the first tick, want %d", len(got), tc.resolved)
			}
			if tc.resolved == 0 {
				if n := len(restarted.Incidents()); n != 1 {
					t.Errorf("%d incidents held, want payments-db's", n)
				}
				return
			}
			var b correlate.State
			if err := got[0].DecodeBody(&b); err != nil {
				t.Fatal(err)
			}
			if last := b.Timeline[len(b.Timeline)-1].What; !strings.Contains(last, "another partition's") {
				t.Errorf("last timeline entry %q, want why it was let go", last)
			}
			if n := len(restarted.Incidents()); n != 0 {
				t.Errorf("%d incidents still held", n)
			}
		})
	}
}

// componentMove is a catalog edit that moves payments-db's component to
// another partition (before, after: catalog files) at count partitions,
// from partition from to partition to.
type componentMove struct {
	before, after   string
	count, from, to int
}

// movedComponent adds a front end whose name sorts first (aaa-frontend,
// calling web) to web -> checkout -> payments-db, which changes the
// component's key, and finds a partition count at which that moves it.
// restartedAtFirstTick is a processor on cfg restored from a snapshot's
// data, run until its first tick at now: what a restart publishes first.
func restartedAtFirstTick(t *testing.T, cfg Config, data []byte, now func() time.Time) (*Processor, *stagetest.Harness) {
	t.Helper()
	p, err := NewProcessor(cfg, zerolog.Nop(), now)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.restore(data); err != nil {
		t.Fatal(err)
	}
	h := stagetest.Start(t, p, stage.Config{TickEvery: time.Hour})
	if err := h.Tick(now()); err != nil {
		t.Fatal(err)
	}
	return p, h
}

func movedComponent(t *testing.T) componentMove {
	t.Helper()
	before := "services:\n  web: {depends_on: [checkout]}\n  checkout: {depends_on: [payments-db]}\n  payments-db: {}\n"
	after := "services:\n  aaa-frontend: {depends_on: [web]}\n" + strings.TrimPrefix(before, "services:\n")
	parse := func(yaml string) *correlate.Catalog {
		c, err := correlate.ParseCatalog([]byte(yaml))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	write := func(yaml string) string {
		p := filepath.Join(t.TempDir(), "catalog.yaml")
		if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for n := 2; n <= 16; n++ {
		if a, b := correlate.NewPartitioner(parse(before), n).Of("payments-db"), correlate.NewPartitioner(parse(after), n).Of("payments-db"); a != b {
			return componentMove{before: write(before), after: write(after), count: n, from: a, to: b}
		}
	}
	t.Fatal("payments-db moves at no partition count from 2 to 16: the test would not test")
	return componentMove{}
}

// Changing partition.count in place (2 to 3) keeps the durables both
// layouts share (correlator-0), so partition 0 of 3 restores what
// partition 0 of 2 saved and lets go of the incidents whose services
// hash elsewhere now, with the catalog unchanged. The timeline must not
// tell the operator who changed the count that the catalog changed: it
// names both causes, the count among them.
func TestPartitionCountChangeLetsGoSayingTheCountMayHaveChanged(t *testing.T) {
	yaml := "services:\n  pay-api: {depends_on: [pay-db]}\n  pay-db: {}\n"
	catalog := filepath.Join(t.TempDir(), "catalog.yaml")
	if err := os.WriteFile(catalog, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cat, err := correlate.ParseCatalog([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	from := correlate.NewPartitioner(cat, 2).Of("pay-db")
	if correlate.NewPartitioner(cat, 3).Of("pay-db") == from {
		t.Fatal("pay-db stays in its partition from 2 to 3 partitions: the test would not test")
	}
	wall := &clock{t: t0.Add(time.Minute)}
	cfg := Config{Catalog: catalog, Partition: PartitionConfig{Count: 2, Index: from}}
	old, err := NewProcessor(cfg, zerolog.Nop(), wall.now)
	if err != nil {
		t.Fatal(err)
	}
	h := stagetest.Start(t, old, stage.Config{TickEvery: time.Hour})
	h.Feed(alertEvent(t, "ReplicationLag", "pay-db", 0, 0))
	if got := incidentEvents(t, h, "opened"); len(got) != 1 {
		t.Fatalf("%d incidents opened, want pay-db's", len(got))
	}
	st, err := old.snapshot()
	if err != nil {
		t.Fatal(err)
	}

	cfg.Partition.Count = 3
	_, h2 := restartedAtFirstTick(t, cfg, st.data, wall.now)
	got := incidentEvents(t, h2, "resolved")
	if len(got) != 1 {
		t.Fatalf("%d incidents resolved at the first tick, want pay-db's", len(got))
	}
	var b correlate.State
	if err := got[0].DecodeBody(&b); err != nil {
		t.Fatal(err)
	}
	if last := b.Timeline[len(b.Timeline)-1].What; !strings.Contains(last, "correlator.partition.count") {
		t.Errorf("last timeline entry %q, want it to name correlator.partition.count as a cause", last)
	}
}
