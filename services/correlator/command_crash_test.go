package correlator

import (
	"context"
	"encoding/base64"
	"errors"
	"testing"
	"time"

	"github.com/aiops-dev/aiops/pkg/correlate"
	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/pkg/stage"
	"github.com/aiops-dev/aiops/pkg/testenv"
)

// A correlator applies an acknowledgement and crashes before a saved
// state holds it (its saves fail: the object store is out of reach). The
// next instance restores a state without it, and the command, given
// again under its id (an API client retrying with its Idempotency-Key, a
// NATS command redelivered), is applied there. Downstream sees one
// acknowledgement: the crashed instance published none, since a command's
// event goes out only once a saved state holds the command. It used to go
// out first, and the second application, timed at another event time,
// made another event under another id (a second page, a second row).
func TestCommandMakesOneEventAcrossACrashBeforeItsSave(t *testing.T) {
	r := newStormRig(t, Config{Lease: LeaseConfig{Disabled: true}})
	r.cfg.State.SaveEvery = time.Hour // the command's save only
	r.cfg.Consumer.AckWait = 2 * time.Second
	crashed, crash := r.startCrashable()
	r.firstHalf()
	opened := waitIncidents(t, r.js, event.IncidentOpened, 2)[0]

	// Every save fails from now on: the object store takes nothing.
	bucket := crashed.proc.cfg.State.Bucket
	restore := testenv.NarrowStream(t, r.js, "OBJ_"+bucket, "$O."+bucket+".none")
	ack := correlate.Command{IncidentID: opened.IncidentID, Action: "ack", By: "ana", ID: "key:k1"}
	submit, stopSubmit := context.WithTimeout(context.Background(), 2*time.Second)
	defer stopSubmit()
	if _, err := crashed.proc.Submit(submit, ack); !errors.Is(err, ErrNotStored) {
		t.Fatalf("ack while saves fail: %v, want ErrNotStored", err)
	}
	// Signals go on coming: event time moves on past the ack's.
	r.publish(alertEvent(t, "ReplicationLag", "payments-db", 30*time.Second, 0))
	waitEventTime(t, crashed.proc, t0.Add(30*time.Second))
	crash() // the crash: no save, no ack
	restore()

	next, stop := r.start()
	defer stop()
	submitAgain(t, next.proc, ack)
	// The answer came once its event was stored: every acknowledgement
	// published is in the stream by now.
	acked := waitIncidents(t, r.js, event.IncidentAcknowledged, 1)
	if acked[0].IncidentID != opened.IncidentID {
		t.Fatalf("acknowledged %s, want %s", acked[0].IncidentID, opened.IncidentID)
	}
}

// A correlator applies an acknowledgement and crashes after its
// checkpoint saved the outbox and before it saved the state (the state's
// put is the long one). The next instance restores a state without the
// command, which, given again under its id, is applied there: downstream
// must see one acknowledgement, not the outbox's and the second
// application's.
func TestCommandMakesOneEventAcrossACrashBetweenOutboxAndState(t *testing.T) {
	r := newStormRig(t, Config{Lease: LeaseConfig{Disabled: true}})
	r.cfg.State.SaveEvery = time.Hour // the command's save only
	r.cfg.Consumer.AckWait = 2 * time.Second
	crashed, crash := r.startCrashable()
	r.firstHalf()
	opened := waitIncidents(t, r.js, event.IncidentOpened, 2)[0]
	restore := saveStateThenOutboxOnly(t, r, crashed)
	ack := correlate.Command{IncidentID: opened.IncidentID, Action: "ack", By: "ana", ID: "key:k1"}
	submit, stopSubmit := context.WithTimeout(context.Background(), 2*time.Second)
	defer stopSubmit()
	if _, err := crashed.proc.Submit(submit, ack); !errors.Is(err, ErrNotStored) {
		t.Fatalf("ack while the state's saves fail: %v, want ErrNotStored", err)
	}
	// Signals go on coming: event time moves on past the ack's.
	r.publish(alertEvent(t, "ReplicationLag", "payments-db", 30*time.Second, 0))
	waitEventTime(t, crashed.proc, t0.Add(30*time.Second))
	crash()
	restore()

	next, stop := r.start()
	defer stop()
	submitAgain(t, next.proc, ack)
	// The first tick sent what the outbox held long before the answer.
	if acked := waitIncidents(t, r.js, event.IncidentAcknowledged, 1); len(acked) != 1 {
		var times []time.Time
		for _, a := range acked {
			times = append(times, a.AcknowledgedAt)
		}
		t.Fatalf("%d acknowledgements of %s downstream (acknowledged at %v), want 1", len(acked), opened.IncidentID, times)
	}
}

// The same crash, for an incident the saved state does not hold: it
// opened after that save. The outbox's acknowledgement, of an incident
// the restored state never knew, is as much ahead of it as one past the
// revision it holds: the signals that opened the incident come again and
// open it under the same id, and the command, given again, is applied
// there at another event time.
func TestCommandMakesOneEventAcrossACrashBetweenOutboxAndStateOfAnIncidentOpenedSince(t *testing.T) {
	r := newStormRig(t, Config{Lease: LeaseConfig{Disabled: true}})
	r.cfg.State.SaveEvery = time.Hour // the command's save only
	r.cfg.Consumer.AckWait = 2 * time.Second
	crashed, crash := r.startCrashable()
	r.publish(alertEvent(t, "HighLatency", "search", 12*time.Second, 0))
	waitIncidents(t, r.js, event.IncidentOpened, 1)
	restore := saveStateThenOutboxOnly(t, r, crashed)
	r.publish(alertEvent(t, "HighLatency", "web", 14*time.Second, 0))
	var opened correlate.State
	for _, o := range waitIncidents(t, r.js, event.IncidentOpened, 2) {
		if o.Service == "web" {
			opened = o
		}
	}
	ack := correlate.Command{IncidentID: opened.IncidentID, Action: "ack", By: "ana", ID: "key:k1"}
	submit, stopSubmit := context.WithTimeout(context.Background(), 2*time.Second)
	defer stopSubmit()
	if _, err := crashed.proc.Submit(submit, ack); !errors.Is(err, ErrNotStored) {
		t.Fatalf("ack while the state's saves fail: %v, want ErrNotStored", err)
	}
	r.publish(alertEvent(t, "ReplicationLag", "payments-db", 30*time.Second, 0))
	waitEventTime(t, crashed.proc, t0.Add(30*time.Second))
	crash()
	restore()

	next, stop := r.start()
	defer stop()
	submitAgain(t, next.proc, ack)
	if acked := waitIncidents(t, r.js, event.IncidentAcknowledged, 1); len(acked) != 1 || acked[0].IncidentID != opened.IncidentID {
		t.Fatalf("%d acknowledgements downstream, want 1 of %s", len(acked), opened.IncidentID)
	}
}

// saveStateThenOutboxOnly has crashed save its state, then narrows the
// state bucket's stream so that a checkpoint's outbox lands and its state
// does not (a crash between the two); the func it returns widens it again.
func saveStateThenOutboxOnly(t *testing.T, r *stormRig, crashed *Service) (restore func()) {
	t.Helper()
	bucket := crashed.proc.cfg.State.Bucket
	store, err := r.js.ObjectStore(context.Background(), bucket)
	if err != nil {
		t.Fatal(err)
	}
	crashed.CheckpointSoon()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := store.GetInfo(context.Background(), crashed.proc.cfg.State.Key); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no state saved")
		}
	}
	// The outbox's meta lands, the state's does not: chunks and the
	// outbox's meta only.
	meta := func(name string) string {
		return "$O." + bucket + ".M." + base64.URLEncoding.EncodeToString([]byte(name))
	}
	return testenv.NarrowStream(t, r.js, "OBJ_"+bucket, "$O."+bucket+".C.>", meta(stage.OutboxObject(crashed.proc.cfg.State.Key)))
}

// waitEventTime waits until p's event time is want.
func waitEventTime(t *testing.T, p *Processor, want time.Time) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		p.mu.Lock()
		now := p.c.Now()
		p.mu.Unlock()
		if now.Equal(want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("event time %v, want %v", now, want)
		}
	}
}

// submitAgain gives cmd again after a crash until it is done: unknown
// until the signals from before the crash came again.
func submitAgain(t *testing.T, p *Processor, cmd correlate.Command) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := p.Submit(ctx, cmd)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the %s given again after the crash: %v, want done", cmd.Action, err)
		}
	}
}
