package correlator

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/correlate"
	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/pkg/stage"
	"github.com/aiops-dev/aiops/pkg/stage/stagetest"
)

// INCIDENTS refuses publishes (full with discard new, or down) while more
// than stage.DefaultMaxInFlight alerts each open an incident: every
// opening fails and its alert is naked, and past the bound an alert is
// refused before the correlator takes it in (stage.ErrBusy). The stop's
// checkpoint saves the state and every opening in its outbox; after the
// restart every alert is acked and every opening stored.
func TestNoIncidentOpeningLostPastTheInFlightBound(t *testing.T) {
	r := newStormRig(t, Config{})
	_, err := r.js.CreateOrUpdateObjectStore(context.Background(), jetstream.ObjectStoreConfig{Bucket: "inflight-loss"})
	if err != nil {
		t.Fatal(err)
	}
	cfg := r.cfg
	cfg.Rules.AlertStorms = correlate.Flag(false)
	cfg.Rules.UnplacedSignals = correlate.Flag(false)
	cfg.Rules.LocationBursts = correlate.Flag(false)
	cfg.Rules.SharedServices = correlate.Flag(false)
	proc, err := NewProcessor(cfg, zerolog.Nop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	proc.unstored = map[string]bool{}
	proc.inFlight = &stage.InFlight{Wait: time.Millisecond} // as New builds it, without waiting for room
	objects, err := stage.NewFencedObjects(context.Background(), r.js, "inflight-loss")
	if err != nil {
		t.Fatal(err)
	}
	d := durable{Processor: proc, HeldOutputs: new(stage.HeldOutputs), objects: objects, key: "correlator", fenced: new(atomic.Bool)}
	scfg := stage.Config{TickEvery: time.Second, CheckpointEvery: time.Hour, AckAfterCheckpoint: true}

	n := stage.DefaultMaxInFlight + 10
	alerts := make([]*event.Envelope, n)
	for i := range alerts {
		alerts[i] = alertEvent(t, "HighLatency", fmt.Sprintf("svc-%d", i), time.Duration(i)*time.Millisecond, 0)
	}
	h := stagetest.Start(t, d, scfg)
	h.Pub.Refuse(true)
	for i, res := range h.Feed(alerts...) {
		if res.Outcome != stagetest.Naked {
			t.Fatalf("alert %d: %v while INCIDENTS refuses, want naked", i, res.Outcome)
		}
	}
	if err := h.Stop(); err != nil {
		t.Fatal(err)
	}
	if got := len(proc.Incidents()); got > n {
		t.Fatalf("%d incidents, want at most %d (one per alert)", got, n)
	}

	h = stagetest.Start(t, d, scfg)
	if err := h.Tick(t0); err != nil { // sends the outbox the stop saved
		t.Fatal(err)
	}
	for i, res := range h.Feed(alerts...) {
		if res.Outcome != stagetest.Acked {
			t.Fatalf("redelivered alert %d: %v %v", i, res.Outcome, res.Err)
		}
	}
	if err := h.Stop(); err != nil {
		t.Fatal(err)
	}
	if l := h.Later(); l.Acked != n {
		t.Fatalf("acked %d of %d alerts", l.Acked, n)
	}
	opened := map[string]bool{}
	for _, e := range h.Pub.Events(t) {
		opened[e.Service] = true
	}
	if len(opened) != n {
		t.Fatalf("every alert acked, but only %d of %d incident openings stored", len(opened), n)
	}
}
