package correlator

import (
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/correlate"
	"github.com/aiops-dev/aiops/pkg/stage"
	"github.com/aiops-dev/aiops/pkg/stage/stagetest"
)

// When a catalog change moves a component, the old partition resolves
// its incident (Release) and the new partition opens its own for what
// still fails. The still-firing alert, sent again with its startsAt, must
// not derive there the id the old partition just resolved: downstream
// (ClickHouse incidents, versioned by event time; the notifier's
// tombstone, ordered by revision) the new incident would read as an older
// state of a resolved one.
func TestReleasedIncidentIDIsNotReusedByTheNewPartition(t *testing.T) {
	mv := movedComponent(t)
	count, from, to := mv.count, mv.from, mv.to
	wall := &clock{t: t0.Add(time.Minute)}
	cfg := Config{Catalog: mv.before, Partition: PartitionConfig{Count: count, Index: from}}
	old, err := NewProcessor(cfg, zerolog.Nop(), wall.now)
	if err != nil {
		t.Fatal(err)
	}
	h := stagetest.Start(t, old, stage.Config{TickEvery: time.Hour})
	h.Feed(alertEvent(t, "ReplicationLag", "payments-db", 0, 0))
	// Event time moves on while nothing else comes (idle advance).
	for _, at := range []time.Duration{time.Minute, 4 * time.Minute} {
		wall.set(t0.Add(at))
		if err := h.Tick(wall.now()); err != nil {
			t.Fatal(err)
		}
	}
	st, err := old.snapshot()
	if err != nil {
		t.Fatal(err)
	}

	// Restart of both partitions with the new catalog.
	wall.set(t0.Add(5 * time.Minute))
	cfg.Catalog = mv.after
	_, h2 := restartedAtFirstTick(t, cfg, st.data, wall.now)
	res := incidentEvents(t, h2, "resolved")
	if len(res) != 1 {
		t.Fatalf("%d resolved, want 1", len(res))
	}
	var released correlate.State
	if err := res[0].DecodeBody(&released); err != nil {
		t.Fatal(err)
	}

	ncfg := cfg
	ncfg.Partition.Index = to
	other, err := NewProcessor(ncfg, zerolog.Nop(), wall.now)
	if err != nil {
		t.Fatal(err)
	}
	h3 := stagetest.Start(t, other, stage.Config{TickEvery: time.Hour})
	h3.Feed(alertEvent(t, "ReplicationLag", "payments-db", 0, 0)) // still firing: sent again with its group
	opened := incidentEvents(t, h3, "opened")
	if len(opened) != 1 {
		t.Fatalf("%d opened in the new partition, want 1", len(opened))
	}
	var reopened correlate.State
	if err := opened[0].DecodeBody(&reopened); err != nil {
		t.Fatal(err)
	}
	if reopened.IncidentID == released.IncidentID {
		t.Errorf("the new partition's incident %s has the id the old one resolved (revision %d at %s); the new one is revision %d at %s: "+
			"an older state of a resolved incident to ClickHouse (version = event time) and to the notifier (stamp = revision)",
			reopened.IncidentID, released.Revision, res[0].Time.Format(time.RFC3339), reopened.Revision, opened[0].Time.Format(time.RFC3339))
	}
}
