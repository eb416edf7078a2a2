package correlate

import (
	"testing"
	"time"

	"github.com/aiops-dev/aiops/pkg/event"
)

// A resolved alert carries when it started firing, so that one first seen
// resolved joins what failed then; one without a startsAt carries none
// (not the year 1), and a firing alert never does.
func TestSignalOfAlertStarted(t *testing.T) {
	end := t0.Add(10 * time.Minute)
	for _, c := range []struct {
		name     string
		body     event.AlertBody
		at       time.Time
		resolved bool
		started  time.Time
	}{
		{"resolved", event.AlertBody{Name: "Down", Status: event.AlertResolved, StartsAt: t0, EndsAt: end}, end, true, t0},
		{"resolved without startsAt", event.AlertBody{Name: "Down", Status: event.AlertResolved, EndsAt: end}, end, true, time.Time{}},
		{"firing", event.AlertBody{Name: "Down", Status: event.AlertFiring, StartsAt: t0}, t0, false, time.Time{}},
	} {
		e, err := event.New(event.KindAlert, "db", c.at, c.body)
		if err != nil {
			t.Fatal(err)
		}
		s, ok, err := SignalOf(e)
		if err != nil || !ok || s.Kind != SignalAlert || s.Resolved != c.resolved || !s.Started.Equal(c.started) || s.Name != "Down" {
			t.Errorf("%s: %+v %v %v", c.name, s, ok, err)
		}
	}
}
