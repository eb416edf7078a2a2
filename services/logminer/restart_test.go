package logminer

import (
	"context"
	"encoding/json"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/pkg/logmine"
	"github.com/aiops-dev/aiops/pkg/stage"
	"github.com/aiops-dev/aiops/pkg/stage/stagetest"
)

// A line a saved state counted, whose raw log was not acked (its outputs
// failed, or their acks had not come when the state was taken, as before
// a crash), comes back after the restart: it is templated again, but not
// counted again, so its count and error count are not doubled.
func TestRedeliveryAfterRestartNotCountedTwice(t *testing.T) {
	l := newTestLogminer(t, Config{})
	cfg := l.stageConfig()
	cfg.TickEvery = 24 * time.Hour
	cfg.DrainTimeout = 100 * time.Millisecond // the lost acks never come
	h := stagetest.Start(t, l.processor(), cfg, stage.WithClock(l.now))
	var lines []*event.Envelope
	for i := range 3 {
		lines = append(lines, rawEvent(t, "api", "payment "+string(rune('1'+i))+" failed", event.SeverityError))
	}
	feedOK(t, h, lines[0])
	h.Pub.FailNext(1) // the templated log of the second line is not stored
	if r := h.Feed(lines[1])[0]; r.Outcome != stagetest.Naked {
		t.Fatalf("line whose output failed: %v, want naked", r.Outcome)
	}
	h.Pub.LoseAcks(true) // the third's outputs are stored, their acks never come
	h.Send(lines[2])
	// Send returns once a worker has it: wait until it is mined
	for deadline := time.Now().Add(20 * time.Second); l.Miner().Stats().Lines < 3; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the third line is not mined")
		}
	}
	state, err := l.encodeState()
	if err != nil {
		t.Fatal(err)
	}

	m := newTestLogminer(t, Config{})
	if err := m.decodeState(state); err != nil {
		t.Fatal(err)
	}
	hm := startHarness(t, m)
	feedOK(t, hm, lines[1], lines[2]) // their redeliveries
	id := logmine.IDOf("payment <*> failed")
	for i, e := range hm.Pub.Events(t) {
		var b event.LogBody
		if err := e.DecodeBody(&b); err != nil || b.TemplateID != id.String() {
			t.Fatalf("redelivery %d: templated as %+v (%v)", i, b, err)
		}
	}
	s := m.counts.byID[id]["api"]
	if s == nil || s.Count != 3 || s.Errors != 3 {
		t.Fatalf("series after the redeliveries: %+v, want the 3 lines counted once", s)
	}
	// A redelivery after the one that stored its outputs is counted: it
	// is a line sent again, which the producer would have to dedup.
	feedOK(t, hm, lines[1])
	if s.Count != 4 {
		t.Fatalf("series %+v, want the line counted again once its first redelivery was acked", s)
	}
}

// The counts of the interval under way when the logminer stopped are not
// lost when it starts again after that interval's end: the last
// checkpoint saved them after the last tick, so no tick published them,
// and the restarted logminer publishes them as that interval's samples.
func TestCountsOfTheIntervalAtTheStopSentAfterALaterRestart(t *testing.T) {
	r := newRig(t)
	_, js := r.connect()
	var mu sync.Mutex
	clock := time.Now().UTC().Truncate(time.Minute).Add(-time.Hour + 30*time.Second)
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	start := func() (*Logminer, func()) {
		ctx, cancel := context.WithCancel(context.Background())
		l, err := New(ctx, js, Config{State: StateConfig{SaveEvery: time.Hour}}, r.log, WithClock(now))
		if err != nil {
			t.Fatal(err)
		}
		finished := make(chan error, 1)
		go func() { finished <- l.Run(ctx) }()
		return l, func() {
			cancel()
			if err := <-finished; err != nil {
				t.Errorf("logminer Run: %v", err)
			}
		}
	}
	logs := rawLogs(t, 6, 0, clock)
	publishRaw(t, js, logs)
	_, stop := start()
	collect(t, js, "events.log.*.templated", len(logs), 10*time.Second)
	stop()
	if st := savedStateOf(t, js); !st.Stopped || len(st.Series) != 6 {
		t.Fatalf("state saved by the stop: stopped %v, %d series; want stopped and the 6 series", st.Stopped, len(st.Series))
	}

	// Started again within the interval, and stopped: the state the stop
	// saved is saved again at the start (this run's tick may publish the
	// interval, which a crash must not make the next start publish again).
	mu.Lock()
	clock = clock.Add(10 * time.Second)
	mu.Unlock()
	_, stop = start()
	// Read while the logminer writes it: a read that meets the object
	// being replaced fails (an i/o timeout on its chunks) and is tried again.
	stillStopped := func() bool {
		st, err := readSavedState(js)
		return err != nil || st.Stopped
	}
	for deadline := time.Now().Add(20 * time.Second); stillStopped(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the state the stop saved is not saved again at the start")
		}
	}
	stop()

	end := clock.Truncate(time.Minute).Add(time.Minute)
	mu.Lock()
	clock = end.Add(20 * time.Second) // restarted after the interval's end
	mu.Unlock()
	l, stop := start()
	defer stop()
	// Ticks until the counts arrived (the first tick after the restore
	// sends them), not waiting for the minute's end.
	counted := make(chan struct{})
	go func() {
		for {
			select {
			case <-counted:
				return
			case <-time.After(100 * time.Millisecond):
				_ = l.Flush(context.Background(), end.Add(time.Minute))
			}
		}
	}()
	sums := countsBy(t, js, len(logs))
	close(counted)
	want := map[[2]string]float64{}
	for _, g := range logs {
		want[[2]string{g.env.Service, logmine.IDOf(g.template).String()}]++
	}
	for k, v := range want {
		if sums[k] != v {
			t.Errorf("count of %v: %g, want %g", k, sums[k], v)
		}
	}
}

// savedStateOf reads the logminer's saved state (default bucket and key).
func savedStateOf(t *testing.T, js jetstream.JetStream) savedState {
	t.Helper()
	st, err := readSavedState(js)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func readSavedState(js jetstream.JetStream) (savedState, error) {
	ctx := context.Background()
	var st savedState
	store, err := openState(ctx, js, StateConfig{Bucket: "logminer"})
	if err != nil {
		return st, err
	}
	data, err := store.GetBytes(ctx, "logminer")
	if err != nil {
		return st, err
	}
	return st, json.Unmarshal(data, &st)
}

// Every raw log a consumer may deliver again is remembered as counted:
// up to max_ack_pending of them are unacked at once (naked ones
// included), however small max_series (which bounded the list) is. With
// max_series under that, a failure of the outputs of more raw logs than
// max_series made the redeliveries of the oldest count their lines again.
func TestUnackedHoldsWhatTheConsumerMayRedeliver(t *testing.T) {
	l := newTestLogminer(t, Config{MaxSeries: 2})
	h := startHarness(t, l)
	var lines []*event.Envelope
	for i := range 6 {
		lines = append(lines, rawEvent(t, "api", "payment "+strconv.Itoa(i)+" failed", event.SeverityError))
	}
	h.Pub.Refuse(true) // the bus is away: every raw log is naked
	for i, r := range h.Feed(lines...) {
		if r.Outcome != stagetest.Naked {
			t.Fatalf("line %d with the bus away: %v, want naked", i, r.Outcome)
		}
	}
	h.Pub.Refuse(false)
	feedOK(t, h, lines...) // their redeliveries
	s := l.counts.byID[logmine.IDOf("payment <*> failed")]["api"]
	if s == nil || s.Count != uint64(len(lines)) {
		t.Fatalf("series after the redeliveries: %+v, want the %d lines counted once", s, len(lines))
	}
}
