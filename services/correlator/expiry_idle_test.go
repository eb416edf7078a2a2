package correlator

import (
	"fmt"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/correlate"
	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/pkg/stage"
	"github.com/aiops-dev/aiops/pkg/stage/stagetest"
)

// A Prometheus sends its firing alerts straight to the gateway; the
// stream keeps a resend every two minutes (its duplicate window), and
// with fifteen alerts firing for hours one arrives every eight seconds,
// as with the Watchdogs (heartbeats, ignored) of fifteen clusters. Those
// repeats carry their old startsAt, so they do not move event time; the
// idle advance must still move it with the wall clock, no further behind
// than idle_advance and the delivery lag, or the alert whose rule was
// deleted would expire only once another alert starts.
func TestAnAlertExpiresWhileOthersAreResent(t *testing.T) {
	for _, resent := range []struct {
		name    string
		service func(i int64) (string, string)
		members int
	}{
		{"alerts firing", func(i int64) (string, string) { return fmt.Sprintf("Firing%d", i), "search" }, 15},
		{"heartbeats", func(i int64) (string, string) { return "Watchdog", fmt.Sprintf("cluster-%d", i) }, 0},
	} {
		t.Run(resent.name, func(t *testing.T) {
			wall := &clock{t: t0}
			proc, err := NewProcessor(Config{Catalog: writeCatalog(t)}, zerolog.Nop(), wall.now)
			if err != nil {
				t.Fatal(err)
			}
			h := stagetest.Start(t, proc, stage.Config{TickEvery: time.Hour})
			sent := func(name, service string, startsAt time.Duration) *event.Envelope {
				e := alertEvent(t, name, service, startsAt, 0)
				var b event.AlertBody
				if err := e.DecodeBody(&b); err != nil {
					t.Fatal(err)
				}
				b.ExpiresAt = wall.now().Add(4 * time.Minute) // Prometheus's endsAt
				if e.Body, err = event.MarshalBody(b); err != nil {
					t.Fatal(err)
				}
				e.ObservedTime = wall.now()
				return e
			}
			const deleted = 10 * time.Minute // PostgresDown's rule is deleted then
			for at := time.Duration(0); at <= 40*time.Minute; at += time.Second {
				wall.set(t0.Add(at))
				if at%(2*time.Minute) == 0 && at <= deleted {
					h.Feed(sent("PostgresDown", "payments-db", 0))
				}
				if i := int64(at % (2 * time.Minute) / (8 * time.Second)); at%(8*time.Second) == 0 && i < 15 {
					name, service := resent.service(i)
					h.Feed(sent(name, service, -3*time.Hour))
				}
				if err := h.Tick(wall.now()); err != nil {
					t.Fatal(err)
				}
			}
			// Its last send expires at 14m, and resolves 17 minutes later
			// (the stream's duplicate window and MaxAheadOfObserved): 31m
			// by event time. The alerts still sent still fire.
			firing := 0
			for _, st := range proc.Incidents() {
				for _, m := range st.Members {
					switch {
					case m.Name == "PostgresDown" && m.Firing:
						t.Errorf("PostgresDown, not sent since %s, still fires at %s (event time %s)", deleted, 40*time.Minute, proc.c.Now().Sub(t0))
					case m.Name != "PostgresDown" && m.Firing:
						firing++
					}
				}
			}
			if firing != resent.members {
				t.Errorf("%d of the alerts still sent fire, want %d", firing, resent.members)
			}
		})
	}
}

// A correlator falling behind its stream (its delivery lag growing to
// half an hour) takes the resends of an alert still sent ever later: they
// hold the idle advance as any signal delivered late does, or event time
// would run ahead of them with the wall clock and the alert expire while
// it is being sent.
func TestResendsDeliveredLateHoldTheIdleAdvance(t *testing.T) {
	wall := &clock{t: t0}
	proc, err := NewProcessor(Config{Catalog: writeCatalog(t)}, zerolog.Nop(), wall.now)
	if err != nil {
		t.Fatal(err)
	}
	h := stagetest.Start(t, proc, stage.Config{TickEvery: time.Hour})
	// Sent at sentAt (every 8s one of sixteen alerts, each every two
	// minutes, PostgresDown among them) and delivered at twice that.
	for sentAt := time.Duration(0); sentAt <= 30*time.Minute; sentAt += 4 * time.Second {
		for at := 2 * sentAt; at < 2*sentAt+8*time.Second; at += time.Second {
			wall.set(t0.Add(at))
			if err := h.Tick(wall.now()); err != nil {
				t.Fatal(err)
			}
		}
		if sentAt%(8*time.Second) != 0 {
			continue
		}
		name, service := "PostgresDown", "payments-db"
		if i := sentAt % (2 * time.Minute) / (8 * time.Second); i > 0 {
			name, service = fmt.Sprintf("Firing%d", i), "search"
		}
		e := alertEvent(t, name, service, 0, 0)
		var b event.AlertBody
		if err := e.DecodeBody(&b); err != nil {
			t.Fatal(err)
		}
		b.ExpiresAt = t0.Add(sentAt + 4*time.Minute)
		if e.Body, err = event.MarshalBody(b); err != nil {
			t.Fatal(err)
		}
		e.ObservedTime = t0.Add(sentAt)
		h.Feed(e)
	}
	for _, st := range proc.Incidents() {
		for _, m := range st.Members {
			if !m.Firing {
				t.Errorf("%s, sent every two minutes, resolved (event time %s, wall clock %s)", m.Name, proc.c.Now().Sub(t0), wall.now().Sub(t0))
			}
		}
	}
}

// Prometheus resends a resolved alert too, every resend_delay for 15
// minutes after it resolved, each with its old endsAt: the stream keeps
// one every two minutes (its duplicate window), so fifteen alerts
// resolved together make one every eight seconds for a quarter of an
// hour. Like a firing alert's resends, they move no event time and must
// not hold the idle advance, or every other incident would resolve that
// much past its quiet period (here one whose alert Alertmanager resolved,
// sent once), and event time stay behind by as much until another alert
// starts.
func TestAnIncidentResolvesWhileOtherResolvedAlertsAreResent(t *testing.T) {
	wall := &clock{t: t0}
	proc, err := NewProcessor(Config{Catalog: writeCatalog(t)}, zerolog.Nop(), wall.now)
	if err != nil {
		t.Fatal(err)
	}
	h := stagetest.Start(t, proc, stage.Config{TickEvery: time.Hour})
	const resolvedAt = time.Minute
	sent := func(name, service string, resolved bool) *event.Envelope {
		var end time.Duration
		if resolved {
			end = resolvedAt
		}
		e := alertEvent(t, name, service, -3*time.Hour, end)
		e.ObservedTime = wall.now()
		return e
	}
	const resent = 15
	for at := time.Duration(0); at <= 15*time.Minute; at += time.Second {
		wall.set(t0.Add(at))
		switch {
		case at == 0 || at == resolvedAt:
			h.Feed(sent("PostgresDown", "payments-db", at == resolvedAt))
			for i := range resent {
				h.Feed(sent(fmt.Sprintf("Firing%d", i), "search", at == resolvedAt))
			}
		case at > resolvedAt && at%(8*time.Second) == 0:
			if i := int64(at % (2 * time.Minute) / (8 * time.Second)); i < resent {
				h.Feed(sent(fmt.Sprintf("Firing%d", i), "search", true))
			}
		}
		if err := h.Tick(wall.now()); err != nil {
			t.Fatal(err)
		}
	}
	// PostgresDown resolved at 1m: its incident resolves at 6m by event
	// time (the quiet period), which the idle advance reaches long before
	// the wall clock's 15m.
	found := false
	for _, st := range proc.Incidents() {
		if st.Service != "payments-db" {
			continue
		}
		found = true
		if st.State != correlate.StatusResolved {
			t.Errorf("PostgresDown's incident, resolved at %s, is %s at %s (event time %s), want resolved", resolvedAt, st.State, 15*time.Minute, proc.c.Now().Sub(t0))
		}
	}
	if !found {
		t.Error("PostgresDown's incident is gone")
	}
}
