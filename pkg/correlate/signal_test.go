package correlate

import (
	"testing"
	"time"

	"github.com/aiops-dev/aiops/pkg/event"
)

// A resolved alert carries when it started firing, so that one first seen
// resolved joins what failed then; one without a startsAt carries none
// (not the year 1), and a firing alert never does. A firing alert carries
// when it expires (Prometheus's endsAt); a resolved one, resolved, does not.
func TestSignalOfAlertStarted(t *testing.T) {
	end := t0.Add(10 * time.Minute)
	for _, c := range []struct {
		name     string
		body     event.AlertBody
		at       time.Time
		resolved bool
		started  time.Time
		expires  time.Time
	}{
		{"resolved", event.AlertBody{Name: "Down", Status: event.AlertResolved, StartsAt: t0, EndsAt: end}, end, true, t0, time.Time{}},
		{"resolved without startsAt", event.AlertBody{Name: "Down", Status: event.AlertResolved, EndsAt: end}, end, true, time.Time{}, time.Time{}},
		{"firing", event.AlertBody{Name: "Down", Status: event.AlertFiring, StartsAt: t0}, t0, false, time.Time{}, time.Time{}},
		{"firing until", event.AlertBody{Name: "Down", Status: event.AlertFiring, StartsAt: t0, ExpiresAt: end}, t0, false, time.Time{}, end},
		{"resolved with an expiry", event.AlertBody{Name: "Down", Status: event.AlertResolved, StartsAt: t0, EndsAt: end, ExpiresAt: end}, end, true, t0, time.Time{}},
	} {
		e, err := event.New(event.KindAlert, "db", c.at, c.body)
		if err != nil {
			t.Fatal(err)
		}
		s, ok, err := SignalOf(e)
		if err != nil || !ok || s.Kind != SignalAlert || s.Resolved != c.resolved || !s.Started.Equal(c.started) || !s.Expires.Equal(c.expires) || s.Name != "Down" {
			t.Errorf("%s: %+v %v %v", c.name, s, ok, err)
		}
	}
}

// A producer whose clock runs 40 minutes ahead (the gateway takes events
// up to an hour ahead) sends an alert on another service: timed as it
// says, it would move the correlator's time 40 minutes at once and
// resolve the database's incident a minute after its alert resolved, not
// after the quiet period. Its receipt stands for its time; an alert less
// than MaxAheadOfObserved ahead of its receipt keeps its own.
func TestSignalAheadOfItsReceiptIsTimedAtIt(t *testing.T) {
	signal := func(name, service, status string, at, heard time.Duration) Signal {
		t.Helper()
		b := event.AlertBody{Name: name, Status: status, StartsAt: t0}
		if status == event.AlertResolved {
			b.EndsAt = t0.Add(at)
		}
		e, err := event.New(event.KindAlert, service, t0.Add(at), b)
		if err != nil {
			t.Fatal(err)
		}
		e.ObservedTime = t0.Add(heard)
		s, ok, err := SignalOf(e)
		if err != nil || !ok {
			t.Fatal(ok, err)
		}
		return s
	}
	if s := signal("HighLatency", "search", event.AlertFiring, 42*time.Minute, 2*time.Minute); !s.Time.Equal(t0.Add(2 * time.Minute)) {
		t.Errorf("an alert 40 minutes ahead of its receipt is timed %s, want its receipt", s.Time.Sub(t0))
	}
	if s := signal("HighLatency", "search", event.AlertFiring, 12*time.Minute, 2*time.Minute); !s.Time.Equal(t0.Add(12 * time.Minute)) {
		t.Errorf("an alert 10 minutes ahead of its receipt is timed %s, want its own time", s.Time.Sub(t0))
	}
	c := newCorrelator(t, Config{})
	feed(c, signal("PostgresDown", "payments-db", event.AlertFiring, 0, 0), signal("PostgresDown", "payments-db", event.AlertResolved, time.Minute, time.Minute))
	db := c.Incidents()[0].IncidentID
	feed(c, signal("HighLatency", "search", event.AlertFiring, 42*time.Minute, 2*time.Minute))
	if st, _ := c.Incident(db); st.State != StatusOpen {
		t.Fatalf("the database's incident is %s a minute after its alert resolved, once an alert 40 minutes ahead came; want open for the quiet period", st.State)
	}
	if c.Advance(t0.Add(6*time.Minute + time.Second)); func() string { st, _ := c.Incident(db); return st.State }() != StatusResolved {
		t.Errorf("the database's incident is not resolved after its quiet period")
	}
}
