package correlator

import (
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/pkg/stage"
	"github.com/aiops-dev/aiops/pkg/stage/stagetest"
)

// Alertmanager delivers a new alert group_wait (30s by default) after
// its startsAt, which is the alert's event time. After a quiet stretch,
// the idle advance must not have moved event time past that startsAt by
// the time the alert arrives: an incident whose quiet period ended in
// those seconds would be resolved live, and the alert open a second
// incident, where a replay of the same events (no idle advance) joins the
// alert to the open incident and resolves nothing.
func TestIdleAdvanceWaitsForTheDeliveryLag(t *testing.T) {
	run := func(idle bool) (opened, resolved int) {
		wall := &clock{t: t0}
		proc, err := NewProcessor(Config{Catalog: writeCatalog(t)}, zerolog.Nop(), wall.now)
		if err != nil {
			t.Fatal(err)
		}
		h := stagetest.Start(t, proc, stage.Config{TickEvery: time.Hour})
		wall.set(t0.Add(30 * time.Second))
		h.Feed(alertEvent(t, "HighLatency", "payments-db", 0, 0)) // delivered after group_wait
		wall.set(t0.Add(time.Minute))
		h.Feed(alertEvent(t, "HighLatency", "payments-db", 0, time.Minute)) // resolved: quiet 5m
		// HighErrorRate on checkout starts at 5m50s, 10s before the quiet
		// period ends, and is delivered at 6m20s.
		if idle {
			for at := time.Minute + time.Second; at <= 6*time.Minute+20*time.Second; at += time.Second {
				wall.set(t0.Add(at))
				if err := h.Tick(wall.now()); err != nil {
					t.Fatal(err)
				}
			}
		}
		wall.set(t0.Add(6*time.Minute + 20*time.Second))
		h.Feed(alertEvent(t, "HighErrorRate", "checkout", 5*time.Minute+50*time.Second, 0))
		return len(incidentEvents(t, h, "opened")), len(incidentEvents(t, h, "resolved"))
	}
	ro, rr := run(false)
	lo, lr := run(true)
	if ro != lo || rr != lr {
		t.Errorf("replay (no idle advance): %d opened, %d resolved; live: %d opened, %d resolved", ro, rr, lo, lr)
	}
}

// Neither an alert firing for hours that the correlator sees only now
// (its first notification since a restart of Alertmanager, a new route),
// nor a firing alert sent again with its group (its startsAt as it was),
// nor a change sent when its deploy ended, is a delivery's lag: event time goes on with the wall clock as ever,
// and a quiet incident resolves when its quiet period is over.
func TestIdleAdvanceIgnoresRepeatsAndAlertsFiringForHours(t *testing.T) {
	wall := &clock{t: t0}
	proc, err := NewProcessor(Config{Catalog: writeCatalog(t)}, zerolog.Nop(), wall.now)
	if err != nil {
		t.Fatal(err)
	}
	h := stagetest.Start(t, proc, stage.Config{TickEvery: time.Hour})
	h.Feed(alertEvent(t, "HighLatency", "payments-db", 0, 0))
	h.Feed(alertEvent(t, "TargetDown", "web", 0, 0))
	wall.set(t0.Add(time.Minute))
	h.Feed(alertEvent(t, "HighLatency", "payments-db", 0, time.Minute)) // resolved: quiet 5m
	h.Feed(alertEvent(t, "DiskFull", "search", -2*time.Hour, 0))
	h.Feed(alertEvent(t, "TargetDown", "web", 0, 0)) // with its group, a minute after its startsAt
	// A deploy timed when it began, eight minutes ago, sent when it ended.
	deploy, err := event.New(event.KindChange, "search", t0.Add(-7*time.Minute), event.ChangeBody{Type: "deploy", Version: "v2"})
	if err != nil {
		t.Fatal(err)
	}
	h.Feed(deploy)
	for at := time.Minute + time.Second; at <= 6*time.Minute+15*time.Second; at += time.Second {
		wall.set(t0.Add(at))
		if err := h.Tick(wall.now()); err != nil {
			t.Fatal(err)
		}
	}
	if got := incidentEvents(t, h, "resolved"); len(got) != 1 || got[0].Service != "payments-db" {
		t.Errorf("%d incidents resolved by 6m15s, want payments-db's, quiet since 1m (quiet period 5m, idle_advance 10s)", len(got))
	}
}

// A producer whose clock is three minutes ahead: its alerts come timed
// three minutes after the wall clock. The idle advance must still resolve
// a quiet incident when its quiet period is over, by event time, and not
// wait for the wall clock to catch up with the skew.
func TestIdleAdvanceWithAProducerClockAhead(t *testing.T) {
	wall := &clock{t: t0}
	proc, err := NewProcessor(Config{Catalog: writeCatalog(t)}, zerolog.Nop(), wall.now)
	if err != nil {
		t.Fatal(err)
	}
	h := stagetest.Start(t, proc, stage.Config{TickEvery: time.Hour})
	h.Feed(alertEvent(t, "HighLatency", "payments-db", 3*time.Minute, 0))
	wall.set(t0.Add(time.Minute))
	h.Feed(alertEvent(t, "HighLatency", "payments-db", 3*time.Minute, 4*time.Minute)) // resolved at 4m by its clock: quiet 5m
	for at := time.Minute + time.Second; at <= 6*time.Minute+15*time.Second; at += time.Second {
		wall.set(t0.Add(at))
		if err := h.Tick(wall.now()); err != nil {
			t.Fatal(err)
		}
	}
	if got := incidentEvents(t, h, "resolved"); len(got) != 1 {
		t.Errorf("%d incidents resolved 5m15s after the resolution came (quiet period 5m, idle_advance 10s), want 1", len(got))
	}
}
