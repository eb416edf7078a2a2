package logminer

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/aiops-dev/aiops/pkg/bus"
	"github.com/aiops-dev/aiops/pkg/logmine"
	"github.com/aiops-dev/aiops/pkg/testenv"
)

// runUntilMined starts a logminer on cfg, waits until the EVENTS stream
// holds want templated logs in all, calls atStop (if not nil), stops it
// and returns it with Run's error (a Restore that failed ends Run at
// once, mining nothing).
func (r *rig) runUntilMined(cfg Config, want int, atStop func()) (*Logminer, error) {
	r.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, js := r.connect()
	l, err := New(ctx, js, cfg, r.log)
	if err != nil {
		r.t.Fatal(err)
	}
	finished := make(chan error, 1)
	go func() { finished <- l.Run(ctx) }()
	for deadline := time.Now().Add(20 * time.Second); storedCount(r.t, js, "events.log.*.templated") < uint64(want); time.Sleep(20 * time.Millisecond) {
		select {
		case err := <-finished:
			return l, err
		default:
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("%d templated logs within 20s, want %d", storedCount(r.t, js, "events.log.*.templated"), want)
		}
	}
	if atStop != nil {
		atStop()
	}
	cancel()
	return l, <-finished
}

// refuseChunks makes the logminer's state bucket refuse the chunks of
// objects and take their meta messages (a full disk, a stream leader
// lost between the two): nats.go's put sends an object's meta without
// waiting for its chunks' answers. New undoes it (it sets the bucket's
// stream up again).
func refuseChunks(t *testing.T, js jetstream.JetStream) (restore func()) {
	return testenv.NarrowStream(t, js, "OBJ_logminer", "$O.logminer.M.>")
}

// A save whose chunks the bucket refuses leaves the state saved before it
// readable: the next start restores it, the templates it holds known
// (not announced again), instead of failing on an object naming chunks
// that are not there.
func TestSaveWhoseChunksAreRefusedLeavesTheLastStateReadable(t *testing.T) {
	r := newRig(t)
	_, js := r.connect()
	at := time.Now().Add(-time.Minute)
	publishRaw(t, js, rawLogs(t, 6, 0, at)) // 3 templates
	if _, err := r.runUntilMined(Config{}, 6, nil); err != nil {
		t.Fatal(err)
	}
	if st := savedStateOf(t, js); len(st.Series) != 6 {
		t.Fatalf("first run saved %d series, want 6", len(st.Series))
	}

	// The next run's last save meets a bucket that refuses chunks.
	var restore func()
	publishRaw(t, js, rawLogs(t, 3, 6, at)) // the same templates
	if _, err := r.runUntilMined(Config{}, 9, func() { restore = refuseChunks(t, js) }); err == nil {
		t.Fatal("the last save, while the bucket refuses chunks: no error")
	}
	restore()

	publishRaw(t, js, rawLogs(t, 3, 9, at))
	l, err := r.runUntilMined(Config{}, 12, nil)
	if err != nil {
		t.Fatalf("start after a save whose chunks were refused: %v", err)
	}
	if got := l.metrics.stateLoadFailures.Load(); got != 0 {
		t.Fatalf("%d load failures: the state saved before the refused save was lost", got)
	}
	if got := l.metrics.newTemplates.Load(); got != 0 {
		t.Fatalf("%d templates created: the restored state should have known all 3", got)
	}
}

// A state object that cannot be read for good (its meta names chunks that
// are not stored: written so by an earlier version's save) is reported
// (log and counter) and the logminer starts empty, the templates relearned
// under the ids they had, instead of failing every start.
func TestStateNamingMissingChunksStartsEmpty(t *testing.T) {
	r := newRig(t)
	_, js := r.connect()
	ctx := context.Background()
	store, err := openState(ctx, js, StateConfig{Bucket: "logminer"})
	if err != nil {
		t.Fatal(err)
	}
	restore := refuseChunks(t, js)
	for _, key := range []string{"logminer", "logminer.outbox"} {
		if _, err := store.PutBytes(ctx, key, []byte(`{"version":1}`)); err == nil {
			t.Fatalf("%s: put while the bucket refuses chunks succeeded", key)
		}
		if _, err := store.GetInfo(ctx, key); err != nil {
			t.Fatalf("%s: the put's meta did not land (%v): the test makes no broken object", key, err)
		}
	}
	restore()
	logs := rawLogs(t, 3, 0, time.Now().Add(-time.Minute))
	publishRaw(t, js, logs)
	l, err := r.runUntilMined(Config{}, 3, nil)
	if err != nil {
		t.Fatalf("start on a state naming missing chunks: %v", err)
	}
	if got := l.metrics.stateLoadFailures.Load(); got != 2 {
		t.Fatalf("%d load failures, want 2 (the state and its outbox)", got)
	}
	for _, g := range logs {
		if _, ok := l.Miner().Lookup(logmine.IDOf(g.template)); !ok {
			t.Errorf("template %q not relearned under its id %s", g.template, logmine.IDOf(g.template))
		}
	}
	// The save at the stop replaced the broken objects.
	if _, err := store.GetBytes(ctx, "logminer"); err != nil {
		t.Fatalf("state after the stop: %v", err)
	}
	if _, err := store.GetBytes(ctx, "logminer.outbox"); err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
		t.Fatalf("outbox after the stop: %v", err)
	}
}

// Two logminers on one state key (a second replica on one durable, or an
// old instance still stopping when the new one started): the one that
// restored last keeps the state, and the other's saves, its last one
// included, are refused and counted instead of replacing it.
func TestSavesOfAnInstanceWhoseStateAnotherRestoredAreRefused(t *testing.T) {
	r := newRig(t)
	_, js := r.connect()
	publishRaw(t, js, rawLogs(t, 3, 0, time.Now().Add(-time.Minute)))
	long := StateConfig{SaveEvery: time.Hour}
	mined := func(l *Logminer) {
		for deadline := time.Now().Add(20 * time.Second); l.metrics.lines.Load() < 3; time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("mined %d lines, want 3", l.metrics.lines.Load())
			}
		}
	}
	old, stopOld := r.start(Config{State: long})
	mined(old)
	// The next one, on a durable of its own (it mines the same lines),
	// on the same state key.
	next, stopNext := r.start(Config{Consumer: bus.ConsumerConfig{Durable: "logminer-next"}, State: StateConfig{Key: "logminer", SaveEvery: time.Hour}})
	mined(next)
	stopOld()
	if got := old.metrics.stateSaveFailures.Load(); got == 0 {
		t.Fatalf("the first instance's last save was taken (%d saves): it replaced the state the next one restored", old.metrics.stateSaves.Load())
	}
	stopNext()
	if got := next.metrics.stateSaveFailures.Load(); got != 0 {
		t.Fatalf("%d saves of the instance that restored last failed", got)
	}
	if st := savedStateOf(t, js); len(st.Series) != 3 {
		t.Fatalf("saved state: %d series, want the 3 the last instance counted", len(st.Series))
	}
}
