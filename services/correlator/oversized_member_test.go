package correlator

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/pkg/stage"
	"github.com/aiops-dev/aiops/pkg/stage/stagetest"
)

// A valid alert whose labels and resource (125 and 16 values of 4 KB,
// within the envelope limits) make one member larger than the event body
// limit still opens an incident whose event goes out: the member's long
// values are left out of it.
func TestOversizedMemberStillMakesItsIncidentEvents(t *testing.T) {
	wall := &clock{t: t0}
	proc, err := NewProcessor(Config{Catalog: writeCatalog(t)}, zerolog.Nop(), wall.now)
	if err != nil {
		t.Fatal(err)
	}
	h := stagetest.Start(t, proc, stage.Config{TickEvery: time.Second})
	e := alertEvent(t, "HighLatency", "search", 0, 0)
	for i := range event.MaxLabels - 3 {
		e.Labels[fmt.Sprintf("k%03d", i)] = strings.Repeat("v", event.MaxLabelBytes)
	}
	e.Resource = map[string]string{}
	for i := range 16 {
		e.Resource[fmt.Sprintf("r%03d", i)] = strings.Repeat("w", event.MaxLabelBytes)
	}
	e.Fingerprint = event.Fingerprint(event.KindAlert, "search", e.Labels, e.Resource)[:16]
	if err := e.Validate(); err != nil {
		t.Fatalf("the alert is not a valid envelope: %v", err)
	}
	r := h.Feed(e)[0]
	inState := len(proc.c.Incidents())
	opened := incidentEvents(t, h, "opened")
	if r.Outcome != stagetest.Acked || inState != 1 || len(opened) != 1 {
		t.Fatalf("alert %v (%v); %d incidents in state, %d opened events; want acked, 1, 1", r.Outcome, r.Err, inState, len(opened))
	}
}
