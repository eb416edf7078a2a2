package correlator

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/aiops-dev/aiops/pkg/correlate"
	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/pkg/stage"
	"github.com/aiops-dev/aiops/pkg/stage/stagetest"
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
	defer ackThenCrash(t, r, crashed, crash, restore, opened.IncidentID)()
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
	defer ackThenCrash(t, r, crashed, crash, restore, opened.IncidentID)()
	if acked := waitIncidents(t, r.js, event.IncidentAcknowledged, 1); len(acked) != 1 || acked[0].IncidentID != opened.IncidentID {
		t.Fatalf("%d acknowledgements downstream, want 1 of %s", len(acked), opened.IncidentID)
	}
}

// ackThenCrash acknowledges incident id on crashed, whose state's saves
// fail past the outbox (saveStateThenOutboxOnly), moves event time on
// past the ack, crashes it, widens the bucket again (restore) and starts
// the next instance, which is given the ack again until it is done; the
// func it returns stops that instance.
func ackThenCrash(t *testing.T, r *stormRig, crashed *Service, crash, restore func(), id string) (stop func()) {
	t.Helper()
	ack := correlate.Command{IncidentID: id, Action: "ack", By: "ana", ID: "key:k1"}
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
	submitAgain(t, next.proc, ack)
	return stop
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

// An outbox saved with its state (one checkpoint, no crash between the
// two) holds only events that state made, and goes out whole after a
// restore, even an event of an incident the state no longer tells it
// gave: forgotten, then fallen out of its MaxRetired ids (an eviction
// at max_fingerprints forgets up to a sixty-fourth of a million members
// at once). Left out as made since, such a resolution was lost for good:
// nothing makes it again, and the incident stayed open downstream.
func TestOutboxSavedWithItsStateGoesOutWhole(t *testing.T) {
	r := newStormRig(t, Config{})
	ctx := context.Background()
	if _, err := r.js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: "outbox-whole"}); err != nil {
		t.Fatal(err)
	}
	// The event of an incident the saving state gave and forgot.
	maker, err := NewProcessor(r.cfg, r.log, nil)
	if err != nil {
		t.Fatal(err)
	}
	h := stagetest.Start(t, maker, stage.Config{TickEvery: time.Second})
	h.Feed(alertEvent(t, "HighLatency", "web", 0, 0))
	made := h.Pub.Messages()
	st, ok := incidentState(made[0])
	if len(made) != 1 || !ok {
		t.Fatalf("%d messages published, want the incident's opening", len(made))
	}

	saving, err := NewProcessor(r.cfg, r.log, nil)
	if err != nil {
		t.Fatal(err)
	}
	objects, err := stage.NewFencedObjects(ctx, r.js, "outbox-whole")
	if err != nil {
		t.Fatal(err)
	}
	d := durable{Processor: saving, HeldOutputs: new(stage.HeldOutputs), objects: objects, key: "correlator", fenced: new(atomic.Bool)}
	if err := d.Restore(ctx); err != nil {
		t.Fatal(err)
	}
	saving.c.Retire(st.IncidentID)
	for i := range correlate.MaxRetired {
		saving.c.Retire(fmt.Sprintf("forgotten-since-%d", i))
	}
	d.Hold(made)
	if err := d.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}

	restoring, err := NewProcessor(r.cfg, r.log, nil)
	if err != nil {
		t.Fatal(err)
	}
	objects, err = stage.NewFencedObjects(ctx, r.js, "outbox-whole")
	if err != nil {
		t.Fatal(err)
	}
	next := durable{Processor: restoring, HeldOutputs: new(stage.HeldOutputs), objects: objects, key: "correlator", fenced: new(atomic.Bool)}
	if err := next.Restore(ctx); err != nil {
		t.Fatal(err)
	}
	if held := next.Held(); len(held) != 1 || held[0].ID != made[0].ID {
		t.Fatalf("%d outputs held after the restore, want the one saved with the state (%s)", len(held), made[0].ID)
	}
}
