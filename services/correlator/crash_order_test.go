package correlator

import (
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/aiops-dev/aiops/pkg/event"
)

// A crash after the correlator took signals in and before it saved them:
// the next instance gets them again before the signals published after
// the crash, in stream order, so it makes the incident events the crashed
// one would have made, under the same ids, as a run without a crash.
// Left to the server, the signals from before the crash came again only
// after ack_wait, after newer ones: applied out of order, they made
// other incidents (an extra one, members in another) and other events
// (the same state at another revision, under another id).
func TestSignalsFromBeforeACrashComeAgainBeforeNewerOnes(t *testing.T) {
	// The reference: one instance, no crash.
	ref := newStormRig(t, Config{Lease: LeaseConfig{Disabled: true}})
	_, stopRef := ref.start()
	ref.firstHalf()
	waitIncidents(t, ref.js, event.IncidentOpened, 2)
	ref.resolutions()
	ref.later()
	waitIncidents(t, ref.js, event.IncidentResolved, 2)
	waitIncidents(t, ref.js, event.IncidentOpened, 3)
	stopRef()
	want := incidentEventIDs(t, ref.js)

	r := newStormRig(t, Config{Lease: LeaseConfig{Disabled: true}})
	r.cfg.State.SaveEvery = time.Hour // no save before the crash
	// Long enough that what the crashed instance was handed is not due
	// again by the time the signal after the crash is.
	r.cfg.Consumer.AckWait = 5 * time.Second
	a, crash := r.startCrashable()
	r.firstHalf()
	waitIncidents(t, r.js, event.IncidentOpened, 2)
	r.resolutions()
	for deadline := time.Now().Add(10 * time.Second); a.ConsumerStats().Delivered < 8; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d signals delivered to the first instance, want 8", a.ConsumerStats().Delivered)
		}
	}
	crash() // the crash: neither an ack nor a save reaches the server
	_, stop := r.start()
	defer stop()
	r.later()
	waitIncidents(t, r.js, event.IncidentResolved, 2)
	waitIncidents(t, r.js, event.IncidentOpened, 3)
	if got := incidentEventIDs(t, r.js); !slices.Equal(got, want) {
		t.Fatalf("incident events across the crash:\n%v\nwant those of the run without one:\n%v", got, want)
	}
}

// incidentEventIDs lists the ids of the incident events on the stream,
// sorted, each once.
func incidentEventIDs(t *testing.T, js jetstream.JetStream) []string {
	t.Helper()
	var ids []string
	for _, e := range streamIncidentEvents(t, js) {
		ids = append(ids, e.ID)
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}
