package correlator

import (
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/correlate"
	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/pkg/stage"
	"github.com/aiops-dev/aiops/pkg/stage/stagetest"
)

// search's alert names payments-db, of another catalog component, as its
// upstream; payments-db alerts 20s later. Whether the two are one
// incident must not depend on how many partitions run (nor on whether
// the two components hash to one partition): partitions split what a
// peer label joins across components.
func TestPeerLabelAcrossComponentsWhateverThePartitionCount(t *testing.T) {
	search := alertEvent(t, "CircuitBreakerOpen", "search", 0, 0)
	search.Labels["upstream"] = "payments-db"
	search.Fingerprint = event.Fingerprint(search.Kind, search.Service, search.Labels, nil)
	db := alertEvent(t, "ReplicationLag", "payments-db", 20*time.Second, 0)
	catalog := writeCatalog(t)
	grouped := map[int]bool{}
	for n := 2; n <= 12; n++ {
		ids := map[string]string{}
		for i := 0; i < n; i++ {
			proc, err := NewProcessor(Config{Catalog: catalog, Partition: PartitionConfig{Count: n, Index: i}}, zerolog.Nop(), (&clock{t: t0.Add(time.Hour)}).now)
			if err != nil {
				t.Fatal(err)
			}
			h := stagetest.Start(t, proc, stage.Config{TickEvery: time.Hour})
			for _, r := range h.Feed(search, db) {
				if r.Outcome != stagetest.Acked {
					t.Fatalf("%v %v", r.Outcome, r.Err)
				}
			}
			for _, e := range h.Pub.Events(t) {
				var b correlate.State
				if err := e.DecodeBody(&b); err != nil {
					t.Fatal(err)
				}
				into := b.IncidentID
				if b.MergedInto != "" {
					into = b.MergedInto
				}
				for _, m := range b.Members {
					ids[m.Service] = into
				}
			}
		}
		grouped[n] = ids["search"] == ids["payments-db"]
	}
	first := grouped[2]
	t.Logf("%v", grouped)
	for n, g := range grouped {
		if g != first {
			t.Fatalf("search and payments-db in one incident, by partition count: %v", grouped)
		}
		_ = n
	}
}
