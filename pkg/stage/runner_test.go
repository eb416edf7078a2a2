package stage_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/bus"
	"github.com/aiops-dev/aiops/pkg/errs"
	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/pkg/stage"
	"github.com/aiops-dev/aiops/pkg/stage/stagetest"
)

var t0 = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

func logEvent(t testing.TB, i int, msg string) *event.Envelope {
	t.Helper()
	e, err := event.New(event.KindLog, "checkout", t0.Add(time.Duration(i)*time.Second), event.LogBody{Message: msg})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// echo emits one log per input, derived from it, and counts its calls;
// a message "bad" is bad data, "flaky" fails once, "panic" panics.
type echo struct {
	calls   atomic.Int64
	flaked  atomic.Bool
	mu      sync.Mutex
	settled map[string]error
	late    atomic.Int64 // StoredLate calls
}

func (p *echo) Process(_ context.Context, in *event.Envelope, out stage.Emitter) error {
	p.calls.Add(1)
	var body event.LogBody
	if err := in.DecodeBody(&body); err != nil {
		return errs.Permanent(err)
	}
	switch body.Message {
	case "bad":
		return errs.Permanentf("message is bad")
	case "flaky":
		if p.flaked.CompareAndSwap(false, true) {
			return errors.New("flaky: try again")
		}
	case "panic":
		panic("processor bug")
	}
	a := *in
	a.ID = "7" + in.ID[1:]
	return out.Emit(stage.Output{Subject: a.Subject() + ".echo", Event: &a, StoredLate: func() { p.late.Add(1) }, Settled: func(err error) {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.settled == nil {
			p.settled = map[string]error{}
		}
		p.settled[a.ID] = err
	}})
}

func (p *echo) settledOf(id string) (error, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	err, ok := p.settled[id]
	return err, ok
}

func TestRunnerPublishesThenAcks(t *testing.T) {
	p := &echo{}
	h := stagetest.Start(t, p, stage.Config{Workers: 4})
	var in []*event.Envelope
	for i := range 50 {
		in = append(in, logEvent(t, i, fmt.Sprintf("line %d", i)))
	}
	for i, r := range h.Feed(in...) {
		if r.Outcome != stagetest.Acked {
			t.Fatalf("input %d: %v (%v), want acked", i, r.Outcome, r.Err)
		}
		// The input is acked only after its output was stored.
		id := "7" + in[i].ID[1:]
		if err, ok := p.settledOf(id); !ok || err != nil {
			t.Fatalf("input %d acked before its output %s settled (settled %v, err %v)", i, id, ok, err)
		}
	}
	got := h.Pub.Events(t)
	if len(got) != 50 {
		t.Fatalf("published %d events, want 50", len(got))
	}
	for _, e := range got {
		if e.Kind != event.KindLog || !strings.HasPrefix(e.ID, "7") {
			t.Fatalf("published %s of kind %s, want the derived anomaly", e.ID, e.Kind)
		}
	}
	if s := h.Runner.Stats(); s.Inputs != 50 || s.Outputs != 50 || s.OutputFailures != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestRunnerSettlesBadAndFailingInputs(t *testing.T) {
	p := &echo{}
	h := stagetest.Start(t, p, stage.Config{})
	if r := h.FeedRaw([]byte(`{"kind":`)); r.Outcome != stagetest.DeadLettered || !strings.Contains(r.Err.Error(), "JSON") {
		t.Fatalf("undecodable input: %v %v, want dead-lettered naming the JSON problem", r.Outcome, r.Err)
	}
	if r := h.Feed(logEvent(t, 1, "bad"))[0]; r.Outcome != stagetest.DeadLettered || !strings.Contains(r.Err.Error(), "message is bad") {
		t.Fatalf("bad input: %v %v, want dead-lettered with the processor's reason", r.Outcome, r.Err)
	}
	flaky := logEvent(t, 2, "flaky")
	if r := h.Feed(flaky)[0]; r.Outcome != stagetest.Naked {
		t.Fatalf("transient failure: %v, want naked", r.Outcome)
	}
	if r := h.Feed(flaky)[0]; r.Outcome != stagetest.Acked {
		t.Fatalf("redelivery after a transient failure: %v (%v), want acked", r.Outcome, r.Err)
	}
	if r := h.Feed(logEvent(t, 3, "panic"))[0]; r.Outcome != stagetest.Naked || !strings.Contains(r.Err.Error(), "processor bug") {
		t.Fatalf("panicking processor: %v %v, want naked with the panic", r.Outcome, r.Err)
	}
	if r := h.Feed(logEvent(t, 4, "still running"))[0]; r.Outcome != stagetest.Acked {
		t.Fatalf("after a panic: %v, want the runner to go on", r.Outcome)
	}
	s := h.Runner.Stats()
	if s.Invalid != 2 || s.Failed != 1 || s.Panics != 1 || s.Outputs != 2 {
		t.Fatalf("stats %+v, want 2 invalid, 1 failed, 1 panic, 2 outputs", s)
	}
}

// A failed output naks its input and keeps the outputs: the redelivery
// republishes them without processing the input again.
func TestRunnerKeepsFailedOutputsForRedelivery(t *testing.T) {
	for _, how := range []string{"ack fails", "publish refused"} {
		t.Run(how, func(t *testing.T) {
			p := &echo{}
			h := stagetest.Start(t, p, stage.Config{})
			in := logEvent(t, 1, "hello")
			if how == "ack fails" {
				h.Pub.FailNext(1)
			} else {
				h.Pub.Refuse(true)
			}
			r := h.Feed(in)[0]
			if r.Outcome != stagetest.Naked || !errors.Is(r.Err, stagetest.ErrPublish) {
				t.Fatalf("failed output: %v %v, want naked with the publish error", r.Outcome, r.Err)
			}
			if err, ok := p.settledOf("7" + in.ID[1:]); !ok || !errors.Is(err, stagetest.ErrPublish) {
				t.Fatalf("the output's Settled got %v (called %v), want the publish error", err, ok)
			}
			if h.Runner.Kept() != 1 || len(h.Pub.Messages()) != 0 {
				t.Fatalf("kept %d, stored %d; want 1 kept, none stored", h.Runner.Kept(), len(h.Pub.Messages()))
			}
			h.Pub.Refuse(false)
			if r := h.Feed(in)[0]; r.Outcome != stagetest.Acked {
				t.Fatalf("redelivery: %v (%v), want acked", r.Outcome, r.Err)
			}
			if n := p.calls.Load(); n != 1 {
				t.Fatalf("processor called %d times, want once: the redelivery republishes the kept outputs", n)
			}
			if got := h.Pub.Messages(); len(got) != 1 || got[0].ID != "7"+in.ID[1:] {
				t.Fatalf("stored %v, want the one derived output", got)
			}
			if h.Runner.Kept() != 0 || h.Runner.Stats().Replayed != 1 || h.Runner.Stats().KeptDropped != 0 {
				t.Fatalf("kept %d, stats %+v after the redelivery", h.Runner.Kept(), h.Runner.Stats())
			}
			// Settled heard the failure; StoredLate tells the processor
			// that the redelivery's send stored it after all.
			if n := p.late.Load(); n != 1 {
				t.Fatalf("StoredLate called %d times after the redelivery stored the output, want once", n)
			}
		})
	}
}

func TestRunnerBoundsKeptOutputs(t *testing.T) {
	p := &echo{}
	h := stagetest.Start(t, p, stage.Config{MaxKept: 2})
	h.Pub.Refuse(true)
	var in []*event.Envelope
	for i := range 3 {
		in = append(in, logEvent(t, i, fmt.Sprintf("line %d", i)))
	}
	h.Feed(in...)
	if h.Runner.Kept() != 2 || h.Runner.Stats().KeptDropped != 1 {
		t.Fatalf("kept %d, dropped %d; want 2 kept and 1 dropped", h.Runner.Kept(), h.Runner.Stats().KeptDropped)
	}
	h.Pub.Refuse(false)
	// The oldest was dropped: its redelivery is processed again.
	h.Feed(in...)
	if n := p.calls.Load(); n != 4 {
		t.Fatalf("processor called %d times, want 4 (3, then the dropped one again)", n)
	}
	if len(h.Pub.Messages()) != 3 {
		t.Fatalf("stored %d outputs, want 3", len(h.Pub.Messages()))
	}
}

// ticker emits one metric sample per tick, named after the boundary.
type ticker struct {
	echo
	ticks []time.Time
}

func (p *ticker) Tick(_ context.Context, now time.Time, out stage.Emitter) error {
	p.ticks = append(p.ticks, now)
	e, err := event.New(event.KindMetric, "checkout", now, event.MetricBody{Name: "lines", Value: new(1.0)})
	if err != nil {
		return err
	}
	e.ID = event.NewID(now)
	return out.Emit(stage.Output{Event: e})
}

func TestRunnerTicksAndRetriesTickOutputs(t *testing.T) {
	p := &ticker{}
	h := stagetest.Start(t, p, stage.Config{TickEvery: time.Minute, MaxKept: 2})
	h.Pub.FailNext(1)
	if err := h.Tick(t0); !errors.Is(err, stagetest.ErrPublish) {
		t.Fatalf("tick with a failed publish: %v", err)
	}
	if h.Runner.Unsent() != 1 {
		t.Fatalf("unsent %d, want the failed sample kept", h.Runner.Unsent())
	}
	if err := h.Tick(t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if got := h.Pub.Events(t); len(got) != 2 || !got[0].Time.Equal(t0) || !got[1].Time.Equal(t0.Add(time.Minute)) {
		t.Fatalf("stored %d samples, want the kept one first, then the new one", len(got))
	}
	// Beyond MaxKept the oldest are dropped and counted.
	h.Pub.Refuse(true)
	for i := range 3 {
		_ = h.Tick(t0.Add(time.Duration(2+i) * time.Minute))
	}
	if h.Runner.Unsent() != 2 || h.Runner.Stats().KeptDropped != 1 {
		t.Fatalf("unsent %d, dropped %d; want 2 and 1", h.Runner.Unsent(), h.Runner.Stats().KeptDropped)
	}
	// Stopping sends what is kept once more, before the last checkpoint.
	h.Pub.Refuse(false)
	if err := h.Stop(); err != nil {
		t.Fatal(err)
	}
	if h.Runner.Unsent() != 0 || len(h.Pub.Events(t)) != 4 {
		t.Fatalf("after stop: unsent %d, stored %d; want the 2 kept samples stored", h.Runner.Unsent(), len(h.Pub.Events(t)))
	}
}

func TestRunnerTicksOnBoundaries(t *testing.T) {
	p := &ticker{}
	var now atomic.Int64
	now.Store(time.Now().UnixNano())
	r, err := stage.NewRunner(p, stage.Config{Name: "ticker", TickEvery: 10 * time.Millisecond}, stagetest.NewPublisher(), zeroLog(),
		stage.WithClock(func() time.Time { return time.Unix(0, now.Load()) }))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx, idleSource{}) }()
	deadline := time.Now().Add(10 * time.Second)
	for r.Stats().Ticks < 3 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
		now.Store(time.Now().UnixNano())
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if len(p.ticks) < 3 {
		t.Fatalf("%d ticks, want at least 3", len(p.ticks))
	}
	for _, tk := range p.ticks {
		if tk.UnixNano()%int64(10*time.Millisecond) != 0 {
			t.Fatalf("tick at %v, not on a 10ms boundary", tk)
		}
	}
}

// checkpointer records the order of restore, inputs and checkpoints.
type checkpointer struct {
	echo
	mu      sync.Mutex
	order   []string
	fail    error
	saveErr error         // what Checkpoint returns
	gate    chan struct{} // when set, a checkpoint waits for it to close
}

func (p *checkpointer) note(s string) {
	p.mu.Lock()
	p.order = append(p.order, s)
	p.mu.Unlock()
}

func (p *checkpointer) Restore(context.Context) error { p.note("restore"); return p.fail }
func (p *checkpointer) Checkpoint(context.Context) error {
	p.note("checkpoint")
	if p.gate != nil {
		<-p.gate
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.saveErr
}

func (p *checkpointer) checkpoints() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Count(strings.Join(p.order, ","), "checkpoint")
}

// With AckAfterCheckpoint an input's ack waits for the next checkpoint
// saved: a failed one leaves it for the next, a fenced one gives it back
// to the stream; inputs waiting for half the queue ask for a checkpoint;
// the stop's last checkpoint acks the rest. Only a Checkpointer may ask.
func TestRunnerAcksAfterCheckpoint(t *testing.T) {
	p := &checkpointer{}
	h := stagetest.Start(t, p, stage.Config{CheckpointEvery: time.Hour, Queue: 8, AckAfterCheckpoint: true})
	checkpointed := func(n int) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); p.checkpoints() < n; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%d checkpoints after 10 s, want %d", p.checkpoints(), n)
			}
		}
	}
	// want waits for the acks a checkpoint settles as it returns.
	want := func(what string, w stagetest.LaterAcks) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
			got := h.Later()
			if got.Waiting == w.Waiting && got.Acked == w.Acked && got.GivenBack == w.GivenBack {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: acks waiting %d, acked %d, given back %d; want %d, %d, %d",
					what, got.Waiting, got.Acked, got.GivenBack, w.Waiting, w.Acked, w.GivenBack)
			}
		}
	}
	for i, r := range h.Feed(logEvent(t, 1, "a"), logEvent(t, 2, "b")) {
		if r.Outcome != stagetest.Acked {
			t.Fatalf("input %d: %v, want settled", i, r.Outcome)
		}
	}
	want("processed, no checkpoint yet", stagetest.LaterAcks{Waiting: 2})
	h.Runner.CheckpointSoon()
	checkpointed(1)
	want("after a checkpoint", stagetest.LaterAcks{Acked: 2})

	p.mu.Lock()
	p.saveErr = errors.New("bucket gone")
	p.mu.Unlock()
	h.Feed(logEvent(t, 3, "c"))
	h.Runner.CheckpointSoon()
	checkpointed(2)
	want("after a failed checkpoint", stagetest.LaterAcks{Waiting: 1, Acked: 2})

	p.mu.Lock()
	p.saveErr = fmt.Errorf("lease lost: %w", stage.ErrFenced)
	p.mu.Unlock()
	h.Runner.CheckpointSoon()
	checkpointed(3)
	want("after a fenced checkpoint", stagetest.LaterAcks{Acked: 2, GivenBack: 1})

	p.mu.Lock()
	p.saveErr = nil
	p.mu.Unlock()
	h.Feed(logEvent(t, 4, "d"), logEvent(t, 5, "e"), logEvent(t, 6, "f"), logEvent(t, 7, "g")) // half the queue: a checkpoint unasked
	checkpointed(4)
	h.Feed(logEvent(t, 8, "h"))
	if err := h.Stop(); err != nil {
		t.Fatal(err)
	}
	want("after the stop", stagetest.LaterAcks{Acked: 7, GivenBack: 1})

	if _, err := stage.NewRunner(&echo{}, stage.Config{Name: "x", AckAfterCheckpoint: true}, stagetest.NewPublisher(), zeroLog()); !errors.Is(err, stage.ErrInvalidConfig) {
		t.Errorf("ack after checkpoint without a checkpoint: %v, want refused", err)
	}
}
func (p *checkpointer) Process(ctx context.Context, in *event.Envelope, out stage.Emitter) error {
	p.note("process")
	return p.echo.Process(ctx, in, out)
}

func TestRunnerRestoresAndCheckpoints(t *testing.T) {
	p := &checkpointer{}
	h := stagetest.Start(t, p, stage.Config{CheckpointEvery: time.Hour})
	h.Feed(logEvent(t, 1, "a"), logEvent(t, 2, "b"))
	if err := h.Stop(); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(p.order, ","); got != "restore,process,process,checkpoint" {
		t.Fatalf("order %s, want restore first and a checkpoint after the drain", got)
	}

	failing := &checkpointer{fail: errors.New("bucket gone")}
	h = stagetest.Start(t, failing, stage.Config{})
	if err := h.Stop(); err == nil || !strings.Contains(err.Error(), "restore: bucket gone") {
		t.Fatalf("run with a failing restore: %v", err)
	}
}

// CheckpointSoon checkpoints without waiting for CheckpointEvery, once
// for the calls made before it began: two calls while one runs make one
// more.
func TestCheckpointSoon(t *testing.T) {
	gate := make(chan struct{})
	p := &checkpointer{gate: gate}
	h := stagetest.Start(t, p, stage.Config{CheckpointEvery: time.Hour})
	waitFor := func(n int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for p.checkpoints() < n {
			if time.Now().After(deadline) {
				t.Fatalf("%d checkpoints 10 s after CheckpointSoon, with CheckpointEvery an hour; want %d", p.checkpoints(), n)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	h.Runner.CheckpointSoon()
	waitFor(1) // begun, held at the gate
	h.Runner.CheckpointSoon()
	h.Runner.CheckpointSoon()
	close(gate)
	waitFor(2)
	time.Sleep(100 * time.Millisecond)
	if n := p.checkpoints(); n != 2 {
		t.Errorf("%d checkpoints for a call, then two while it ran, want two", n)
	}
	if err := h.Stop(); err != nil {
		t.Fatal(err)
	}
}

// TickSoon ticks without waiting for the TickEvery boundary (an hour
// here, which no test waits for), timed when it ticks.
func TestTickSoon(t *testing.T) {
	p := &countingTicker{}
	pub := stagetest.NewPublisher()
	r, err := stage.NewRunner(p, stage.Config{Name: "soon", TickEvery: time.Hour}, pub, zeroLog())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx, idleSource{}) }()
	before := time.Now()
	r.TickSoon()
	deadline := time.Now().Add(10 * time.Second)
	for p.n.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no tick 10 s after TickSoon, with TickEvery an hour")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if at := p.last.Load().(time.Time); at.Before(before) || at.Truncate(time.Hour).Equal(at) && !before.Truncate(time.Hour).Equal(before) {
		t.Errorf("the tick was timed %s, want when it came (after %s), not a boundary", at, before)
	}
}

// countingTicker counts its ticks and keeps the last one's time.
type countingTicker struct {
	echo
	n    atomic.Int64
	last atomic.Value
}

func (p *countingTicker) Tick(_ context.Context, now time.Time, _ stage.Emitter) error {
	p.last.Store(now)
	p.n.Add(1)
	return nil
}

// sink holds inputs until Flush and then reports them.
type sink struct {
	mu      sync.Mutex
	held    []func(error)
	flushed atomic.Int64
}

func (s *sink) Write(_ context.Context, in *event.Envelope, done func(error)) {
	if in.Service == "bad" {
		done(errs.Permanentf("service bad has no table"))
		return
	}
	s.mu.Lock()
	s.held = append(s.held, done)
	s.mu.Unlock()
}

func (s *sink) Flush(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.flushed.Add(1)
	for _, d := range s.held {
		d(nil)
	}
	s.held = nil
	return nil
}

func TestRunnerDrivesASink(t *testing.T) {
	s := &sink{}
	h := stagetest.Start(t, s, stage.Config{})
	bad := logEvent(t, 1, "x")
	bad.Service = "bad"
	if r := h.Feed(bad)[0]; r.Outcome != stagetest.DeadLettered {
		t.Fatalf("sink's permanent error: %v, want dead-lettered", r.Outcome)
	}
	results := make(chan stagetest.Result, 1)
	go func() { results <- h.Feed(logEvent(t, 2, "held"))[0] }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.mu.Lock()
		n := len(s.held)
		s.mu.Unlock()
		if n == 1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	// Stopping flushes the sink, which settles the held input.
	if err := h.Stop(); err != nil {
		t.Fatal(err)
	}
	if r := <-results; r.Outcome != stagetest.Acked || s.flushed.Load() != 1 {
		t.Fatalf("held input %v after stop, flushes %d; want acked by the flush at shutdown", r.Outcome, s.flushed.Load())
	}
}

// lateSource hands one delivery out after its context ended and the
// sink's drain Flush ran: a message fetched just before the stop reaches
// the sink after that Flush. It reports the delivery's result, or that
// none came within 5s (the sink still holds it).
type lateSource struct {
	sink   *sink
	data   []byte
	result chan error
}

var errNoResult = errors.New("no result within 5s")

func (s *lateSource) Run(ctx context.Context, h bus.AsyncHandler) error {
	<-ctx.Done()
	for s.sink.flushed.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	got := make(chan error, 1)
	h(context.WithoutCancel(ctx), &bus.Delivery{Data: s.data, Delivered: 1}, func(err error) { got <- err })
	select {
	case err := <-got:
		s.result <- err
	case <-time.After(5 * time.Second):
		s.result <- errNoResult
	}
	return nil
}

// An input the source hands out after the drain's Flush (fetched before
// the stop) is flushed too: the source is waiting for its result, and a
// sink would otherwise hold it for a batch or a timer that never comes.
func TestRunnerFlushesWhatArrivesAfterTheDrainFlush(t *testing.T) {
	s := &sink{}
	r, err := stage.NewRunner(s, stage.Config{Name: "late"}, nil, zeroLog())
	if err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(logEvent(t, 1, "late"))
	if err != nil {
		t.Fatal(err)
	}
	src := &lateSource{sink: s, data: data, result: make(chan error, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := r.Run(ctx, src); err != nil {
		t.Fatal(err)
	}
	if err := <-src.result; err != nil {
		t.Fatalf("the late input's result: %v, want acked by a flush", err)
	}
	if n := s.flushed.Load(); n < 2 {
		t.Fatalf("flushes %d, want the drain's and one for the late input", n)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []struct {
		cfg  stage.Config
		want string
	}{
		{stage.Config{}, "name: empty"},
		{stage.Config{Name: "x", Workers: -1}, "workers"},
		{stage.Config{Name: "x", TickEvery: -time.Second}, "tick_every"},
		{stage.Config{Name: "x", MaxKept: -1}, "max_kept"},
	} {
		err := c.cfg.Validate()
		if !errors.Is(err, stage.ErrInvalidConfig) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want an invalid config naming %s", c.cfg, err, c.want)
		}
	}
	if err := stage.DefaultConfig("x").Validate(); err != nil {
		t.Fatal(err)
	}
	if _, err := stage.NewRunner(&ticker{}, stage.Config{Name: "x"}, stagetest.NewPublisher(), zeroLog()); err == nil || !strings.Contains(err.Error(), "tick_every") {
		t.Fatalf("a Ticker without a period: %v", err)
	}
	if _, err := stage.NewRunner(&echo{}, stage.Config{Name: "x"}, nil, zeroLog()); !errors.Is(err, stage.ErrNoPublisher) {
		t.Fatalf("a processor without a publisher: %v", err)
	}
	if _, err := stage.NewRunner(42, stage.Config{Name: "x"}, nil, zeroLog()); err == nil || !strings.Contains(err.Error(), "int is neither") {
		t.Fatalf("not a processor: %v", err)
	}
	{
		c := stage.Config{Name: "x", DrainTimeout: -time.Second}
		if err := c.Validate(); !errors.Is(err, stage.ErrInvalidConfig) || !strings.Contains(err.Error(), "drain_timeout") {
			t.Fatalf("a negative drain: %v", err)
		}
	}
}

// A stop's budgets nest in the service's: the drain, the acks' flush and
// (for a Checkpointer) the last checkpoint end before the service gives up.
func TestRunnerStopBudgetsNest(t *testing.T) {
	budget := stage.CheckpointBudget()
	if d := stage.DefaultConfig("x"); d.CheckpointTimeout >= budget {
		t.Fatalf("default checkpoint_timeout %s, want under the budget %s", d.CheckpointTimeout, budget)
	}
	for _, c := range []struct {
		proc   any
		cfg    stage.Config
		refuse string // "" when accepted
	}{
		{&checkpointer{}, stage.Config{Name: "x"}, ""},
		// Without a consumer's fetch (Open adds it; see TestStageOnJetStream).
		{&checkpointer{}, stage.Config{Name: "x", CheckpointTimeout: 9 * time.Second}, ""},
		{&checkpointer{}, stage.Config{Name: "x", CheckpointTimeout: 10 * time.Second}, "checkpoint_timeout (10s) for the last checkpoint and tick outputs, take up to 23s: a stop must end within 23s"},
		{&checkpointer{}, stage.Config{Name: "x", DrainTimeout: 15 * time.Second}, "drain_timeout (15s) and the acks' flush (5s), then checkpoint_timeout (8s) for the last checkpoint and tick outputs, take up to 28s"},
		// Tick outputs kept are sent once more after the drain.
		{&ticker{}, stage.Config{Name: "x", TickEvery: time.Second, DrainTimeout: 15 * time.Second}, "take up to 28s"},
		// Nothing follows a plain processor's drain.
		{&echo{}, stage.Config{Name: "x", DrainTimeout: 15 * time.Second, CheckpointTimeout: time.Minute}, ""},
		{&echo{}, stage.Config{Name: "x", DrainTimeout: 20 * time.Second}, "drain_timeout (20s) and the acks' flush (5s) take up to 25s"},
		// A sink's flush runs beside the drain.
		{&sink{}, stage.Config{Name: "x", DrainTimeout: 15 * time.Second}, ""},
		{&sink{}, stage.Config{Name: "x", CheckpointTimeout: 30 * time.Second}, "beside checkpoint_timeout (30s) for the sink's flush, take up to 30s"},
	} {
		_, err := stage.NewRunner(c.proc, c.cfg, stagetest.NewPublisher(), zeroLog())
		switch {
		case c.refuse == "" && err != nil:
			t.Errorf("%T %+v: %v, want accepted", c.proc, c.cfg, err)
		case c.refuse != "" && (!errors.Is(err, stage.ErrInvalidConfig) || !strings.Contains(err.Error(), c.refuse)):
			t.Errorf("%T %+v: %v, want refused with %q", c.proc, c.cfg, err, c.refuse)
		}
	}
}

// An ack lost with a cluster node must not hold the stop for the
// publisher's ack timeout: when the drain ends the runner waits for no
// more acks, naks the input (it is redelivered, its output sent again with
// the same id) and goes on to its checkpoint.
func TestRunnerStopsWaitingForAcksWhenTheDrainEnds(t *testing.T) {
	p := &checkpointer{}
	h := stagetest.Start(t, p, stage.Config{DrainTimeout: 50 * time.Millisecond, CheckpointEvery: time.Hour})
	if r := h.Feed(logEvent(t, 1, "acked"))[0]; r.Outcome != stagetest.Acked {
		t.Fatalf("before the loss: %v (%v)", r.Outcome, r.Err)
	}
	h.Pub.LoseAcks(true)
	lost := logEvent(t, 2, "ack lost")
	held := h.Send(lost)
	if _, ok := held.Result(); ok {
		t.Fatal("settled before its ack came")
	}
	stopWithin(t, h, time.Minute) // what the drain left is redelivered: no error
	r, ok := held.Result()
	if !ok || r.Outcome != stagetest.Naked || !errors.Is(r.Err, stage.ErrStopped) {
		t.Fatalf("input whose ack was lost: %v %v (settled %v), want naked with ErrStopped", r.Outcome, r.Err, ok)
	}
	if got := strings.Join(p.order, ","); got != "restore,process,process,checkpoint" {
		t.Fatalf("order %s, want the checkpoint after the drain", got)
	}
	// Not settled: the state that made the output must stay out of the
	// last checkpoint, so that the redelivery after a restart makes it
	// again (a detector would otherwise take the sample for a repeat).
	if err, ok := p.settledOf("7" + lost.ID[1:]); ok {
		t.Fatalf("the output whose ack was lost was settled with %v", err)
	}
}

// Tick outputs whose acks are lost hold neither the tick nor the stop:
// the tick gives up when its context ends, keeps them, and the stop sends
// them once more within half of CheckpointTimeout, then checkpoints.
func TestRunnerStopsWaitingForTickAcks(t *testing.T) {
	p := &tickingCheckpointer{}
	h := stagetest.Start(t, p, stage.Config{TickEvery: time.Minute, CheckpointEvery: time.Hour, CheckpointTimeout: 200 * time.Millisecond})
	h.Pub.LoseAcks(true)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := h.Runner.Tick(ctx, t0); !errors.Is(err, stage.ErrStopped) {
		t.Fatalf("tick whose ack was lost: %v, want ErrStopped", err)
	}
	if h.Runner.Unsent() != 1 {
		t.Fatalf("unsent %d, want the sample kept", h.Runner.Unsent())
	}
	stopWithin(t, h, time.Minute)
	if got := strings.Join(p.order, ","); got != "restore,checkpoint" || h.Runner.Unsent() != 1 {
		t.Fatalf("order %s, unsent %d: want the checkpoint after the send gave up, the sample still kept", got, h.Runner.Unsent())
	}
}

// stopWithin stops h and fails t when the stop errs or hangs past limit
// (an ack that never comes must not hold it).
func stopWithin(t *testing.T, h *stagetest.Harness, limit time.Duration) {
	t.Helper()
	stopped := make(chan error, 1)
	go func() { stopped <- h.Stop() }()
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatalf("stop: %v", err)
		}
	case <-time.After(limit):
		t.Fatalf("the stop still waits after %s for an ack that never comes", limit)
	}
}

// tickingCheckpointer is a ticker whose state is checkpointed.
type tickingCheckpointer struct {
	ticker
	mu    sync.Mutex
	order []string
}

func (p *tickingCheckpointer) note(s string) {
	p.mu.Lock()
	p.order = append(p.order, s)
	p.mu.Unlock()
}
func (p *tickingCheckpointer) Restore(context.Context) error    { p.note("restore"); return nil }
func (p *tickingCheckpointer) Checkpoint(context.Context) error { p.note("checkpoint"); return nil }

func zeroLog() zerolog.Logger { return zerolog.Nop() }

// idleSource delivers nothing until its context ends.
type idleSource struct{}

func (idleSource) Run(ctx context.Context, _ bus.AsyncHandler) error { <-ctx.Done(); return nil }

// heldSource delivers nothing; after cancellation its drain lasts until
// release is closed.
type heldSource struct{ release chan struct{} }

func (s heldSource) Run(ctx context.Context, _ bus.AsyncHandler) error {
	<-ctx.Done()
	<-s.release
	return nil
}

// settledTicker emits one sample per tick and tells its settlement.
type settledTicker struct {
	echo
	settled chan error
}

func (p *settledTicker) Tick(_ context.Context, now time.Time, out stage.Emitter) error {
	e, err := event.New(event.KindMetric, "checkout", now, event.MetricBody{Name: "lines", Value: new(1.0)})
	if err != nil {
		return err
	}
	e.ID = event.NewID(now)
	return out.Emit(stage.Output{Event: e, Settled: func(err error) { p.settled <- err }})
}

// A tick under way when the stop begins goes on waiting for its outputs'
// acks through the drain (a command the correlator applied in it must not
// be told "not stored" while the ack may still come); when the drain ends
// it keeps them, and the stop's last send tells their Settled whether it
// stored them.
func TestRunnerTickWaitsForAcksUntilTheDrainEnds(t *testing.T) {
	for _, acksBack := range []bool{false, true} {
		t.Run(fmt.Sprintf("acks back for the last send %v", acksBack), func(t *testing.T) {
			p := &settledTicker{settled: make(chan error, 16)}
			pub := stagetest.NewPublisher()
			pub.LoseAcks(true)
			r, err := stage.NewRunner(p, stage.Config{Name: "x", TickEvery: 10 * time.Millisecond, CheckpointTimeout: 100 * time.Millisecond}, pub, zeroLog())
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			src := heldSource{release: make(chan struct{})}
			done := make(chan error, 1)
			go func() { done <- r.Run(ctx, src) }()
			for pub.Sent() == 0 { // a tick published and waits for its ack
				time.Sleep(time.Millisecond)
			}
			cancel()
			select {
			case err := <-p.settled:
				t.Fatalf("the tick gave up at the stop's start (%v), before the drain ended", err)
			case <-time.After(100 * time.Millisecond):
			}
			pub.LoseAcks(!acksBack)
			close(src.release)
			select {
			case err := <-p.settled:
				if acksBack && err != nil || !acksBack && !errors.Is(err, stage.ErrStopped) {
					t.Fatalf("settled %v, want the last send's result", err)
				}
			case <-time.After(time.Minute):
				t.Fatal("the tick's output was never settled after the drain ended")
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if acksBack != (r.Unsent() == 0) {
				t.Fatalf("unsent %d after the stop", r.Unsent())
			}
		})
	}
}

// outboxTicker is a ticker whose checkpoint saves its outbox in saved, as
// a service saves it beside its state.
type outboxTicker struct {
	ticker
	stage.HeldOutputs
	saved  *[]byte
	fenced bool // Checkpoint saves nothing: another instance owns the state
}

func (p *outboxTicker) Restore(context.Context) error { return p.UnmarshalBinary(*p.saved) }
func (p *outboxTicker) Checkpoint(context.Context) error {
	if p.fenced {
		return stage.ErrFenced
	}
	data, err := p.MarshalBinary()
	*p.saved = data
	return err
}

// A term that ends fenced (another instance owns the state now) drops
// the tick outputs it kept: nobody saved the state that made them, and a
// later term of this instance must not send them, hours on, beside the
// state the other one kept.
func TestRunnerFencedTermDropsItsKeptOutputs(t *testing.T) {
	var saved []byte
	p := &outboxTicker{saved: &saved}
	h := stagetest.Start(t, p, stage.Config{TickEvery: time.Minute, CheckpointEvery: time.Hour})
	h.Pub.Refuse(true)
	if err := h.Tick(t0); err == nil {
		t.Fatal("tick with its publish refused: no error")
	}
	if h.Runner.Unsent() != 1 {
		t.Fatalf("unsent %d, want the sample kept", h.Runner.Unsent())
	}
	p.fenced = true
	if err := h.Stop(); err != nil {
		t.Fatalf("a fenced stop: %v, want no error (not a failure of its own)", err)
	}
	if got := h.Runner.Unsent(); got != 0 {
		t.Errorf("unsent %d after a fenced term, want none kept", got)
	}
}

// A tick's outputs the stop could not store are kept by the last
// checkpoint, and the next run sends them with its first tick, under
// their ids; once stored, the next checkpoint holds none.
func TestRunnerCheckpointHoldsTickOutputsTheStreamDidNotStore(t *testing.T) {
	var saved []byte
	h := stagetest.Start(t, &outboxTicker{saved: &saved}, stage.Config{TickEvery: time.Minute, CheckpointEvery: time.Hour})
	h.Pub.Refuse(true)
	if err := h.Tick(t0); err == nil {
		t.Fatal("tick with its publish refused: no error")
	}
	if err := h.Tick(t0.Add(time.Minute)); err == nil {
		t.Fatal("tick with its publish refused: no error")
	}
	if err := h.Stop(); err != nil {
		t.Fatal(err)
	}
	if h.Pub.Sent() != 0 {
		t.Fatalf("%d stored while the stream refused", h.Pub.Sent())
	}
	var held []map[string]any
	if err := json.Unmarshal(saved, &held); err != nil || len(held) != 2 {
		t.Fatalf("the last checkpoint holds %s (%v), want the 2 samples", saved, err)
	}

	next := &outboxTicker{saved: &saved}
	h = stagetest.Start(t, next, stage.Config{TickEvery: time.Minute, CheckpointEvery: time.Hour})
	for deadline := time.Now().Add(5 * time.Second); h.Runner.Unsent() != 2; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("unsent %d after restore, want the 2 held samples waiting for the first tick", h.Runner.Unsent())
		}
	}
	if err := h.Tick(t0.Add(2 * time.Minute)); err != nil {
		t.Fatal(err)
	}
	got := h.Pub.Events(t)
	if len(got) != 3 || got[0].ID != held[0]["id"] || got[1].ID != held[1]["id"] || !got[2].Time.Equal(t0.Add(2*time.Minute)) {
		t.Fatalf("stored %d samples, want the 2 held ones, under their ids, then the new one", len(got))
	}
	if err := h.Stop(); err != nil {
		t.Fatal(err)
	}
	if string(saved) != "[]" {
		t.Fatalf("the checkpoint after they were stored holds %s, want none", saved)
	}
	// A saved outbox that cannot be read stops the start: the outputs it
	// held would otherwise be lost unseen.
	saved = []byte(`[{"subject":"events.metric.checkout"}]`)
	h = stagetest.Start(t, &outboxTicker{saved: &saved}, stage.Config{TickEvery: time.Minute})
	if err := h.Stop(); !errors.Is(err, stage.ErrOutbox) {
		t.Fatalf("run restoring a bad outbox: %v, want ErrOutbox", err)
	}
}

// A runner run again (a correlator's next term) still keeps the tick
// outputs of the last one; those its checkpoint holds too are sent once.
func TestRunnerRunAgainSendsHeldOutputsOnce(t *testing.T) {
	var saved []byte
	pub := stagetest.NewPublisher()
	r, err := stage.NewRunner(&outboxTicker{saved: &saved}, stage.Config{Name: "outbox", TickEvery: time.Minute, CheckpointEvery: time.Hour}, pub, zeroLog(), stage.WithManualTicks())
	if err != nil {
		t.Fatal(err)
	}
	run := func(during func()) {
		t.Helper()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx, idleSource{}) }()
		during()
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	pub.Refuse(true)
	run(func() {
		if err := r.Tick(context.Background(), t0); err == nil {
			t.Error("tick with its publish refused: no error")
		}
	})
	if r.Unsent() != 1 || !strings.Contains(string(saved), `"id"`) {
		t.Fatalf("after the first run: unsent %d, saved %s; want the sample kept and held", r.Unsent(), saved)
	}
	run(func() {}) // the stream still refuses: the outputs stay kept
	if got := r.Unsent(); got != 1 {
		t.Fatalf("unsent %d after the second run, want the one sample once", got)
	}
}

// lateTicker emits one sample at its first tick, telling its Settled and
// StoredLate.
type lateTicker struct {
	echo
	ticked  bool
	settled []error
	late    int
}

func (p *lateTicker) Tick(_ context.Context, now time.Time, out stage.Emitter) error {
	if p.ticked {
		return nil
	}
	p.ticked = true
	e, err := event.New(event.KindMetric, "checkout", now, event.MetricBody{Name: "lines", Value: new(1.0)})
	if err != nil {
		return err
	}
	return out.Emit(stage.Output{Event: e, Settled: func(err error) { p.settled = append(p.settled, err) }, StoredLate: func() { p.late++ }})
}

// A tick's output whose first publish failed (Settled told so) and which
// a later tick's retry stored is reported by StoredLate, once.
func TestRunnerTellsATickOutputStoredLate(t *testing.T) {
	p := &lateTicker{}
	h := stagetest.Start(t, p, stage.Config{TickEvery: time.Minute})
	h.Pub.FailNext(1)
	_ = h.Tick(t0)
	if len(p.settled) != 1 || p.settled[0] == nil || p.late != 0 {
		t.Fatalf("after the failed publish: settled %v, late %d; want the failure told, nothing late", p.settled, p.late)
	}
	for i := range 2 {
		if err := h.Tick(t0.Add(time.Duration(i+1) * time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	if len(p.settled) != 1 || p.late != 1 || len(h.Pub.Events(t)) != 1 {
		t.Fatalf("after the retry: settled %v, late %d, stored %d; want StoredLate once, Settled not again", p.settled, p.late, len(h.Pub.Events(t)))
	}
}

// panicky panics in its first tick, after emitting a sample, and in its
// first checkpoint; later ones work.
type panicky struct {
	ticker
	ticked, checkpointed atomic.Int64
}

func (p *panicky) Tick(ctx context.Context, now time.Time, out stage.Emitter) error {
	if err := p.ticker.Tick(ctx, now, out); err != nil {
		return err
	}
	if p.ticked.Add(1) == 1 {
		panic("tick bug")
	}
	return nil
}

func (p *panicky) Restore(context.Context) error { return nil }
func (p *panicky) Checkpoint(context.Context) error {
	if p.checkpointed.Add(1) == 1 {
		panic("checkpoint bug")
	}
	return nil
}

// A panic in a processor's periodic work or checkpoint is recovered as
// one in Process is: logged, counted as that run's failure, and the
// service goes on (a crash would lose the state acked since the last
// checkpoint). What the tick emitted before the panic is published: the
// state that made it has moved on.
func TestRunnerRecoversPanicsInTicksAndCheckpoints(t *testing.T) {
	p := &panicky{}
	pub := stagetest.NewPublisher()
	r, err := stage.NewRunner(p, stage.Config{Name: "panicky", TickEvery: 10 * time.Millisecond, CheckpointEvery: 10 * time.Millisecond}, pub, zeroLog())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx, idleSource{}) }()
	deadline := time.Now().Add(20 * time.Second)
	for p.ticked.Load() < 3 || p.checkpointed.Load() < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("%d ticks, %d checkpoints after 20s; want the runner to go on after the panics", p.ticked.Load(), p.checkpointed.Load())
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	s := r.Stats()
	if s.TickFailures != 1 || s.CheckpointFailures != 1 {
		t.Fatalf("stats %+v, want the panicking tick and checkpoint counted as one failure each", s)
	}
	if got := pub.Events(t); len(got) != int(p.ticked.Load()) {
		t.Fatalf("stored %d samples for %d ticks, want the panicking tick's too", len(got), p.ticked.Load())
	}
}

// failingPublisher fails every publish at once with err.
type failingPublisher struct{ err error }

func (p failingPublisher) Publish(context.Context, bus.Message) (jetstream.PubAckFuture, error) {
	return nil, p.err
}

// scriptedSource hands out its next delivery when told on next, and
// reports its result on results.
type scriptedSource struct {
	deliveries []bus.Delivery
	next       chan struct{}
	results    chan error
}

func (s scriptedSource) Run(ctx context.Context, h bus.AsyncHandler) error {
	for i := range s.deliveries {
		select {
		case <-s.next:
		case <-ctx.Done():
			return nil
		}
		h(ctx, &s.deliveries[i], func(err error) { s.results <- err })
	}
	<-ctx.Done()
	return nil
}

// The outputs of an input that will not come back are not kept for its
// redelivery: one whose output was refused for good, or whose last
// delivery failed, is dead-lettered (and a dead letter sent again is a
// first delivery, which never looks for kept outputs).
func TestRunnerKeepsNoOutputsForDeadLetteredInputs(t *testing.T) {
	data, err := json.Marshal(logEvent(t, 1, "hello"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name       string
		err        error
		deliveries []bus.Delivery
	}{
		{"refused for good", errs.Permanentf("subject has a space"), []bus.Delivery{{Data: data, Delivered: 1}}},
		{"last delivery", errors.New("no stream answers"), []bus.Delivery{{Data: data, Delivered: 1}, {Data: data, Delivered: 2, Last: true}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			r, err := stage.NewRunner(&echo{}, stage.Config{Name: "x"}, failingPublisher{c.err}, zeroLog())
			if err != nil {
				t.Fatal(err)
			}
			src := scriptedSource{deliveries: c.deliveries, next: make(chan struct{}), results: make(chan error, 1)}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- r.Run(ctx, src) }()
			for i := range c.deliveries {
				src.next <- struct{}{}
				if err := <-src.results; !errors.Is(err, c.err) {
					t.Fatalf("delivery %d: %v, want the publish error", i+1, err)
				}
				if i < len(c.deliveries)-1 && r.Kept() != 1 {
					t.Fatalf("kept %d after delivery %d, want its outputs kept for the next", r.Kept(), i+1)
				}
			}
			if n := r.Kept(); n != 0 {
				t.Errorf("kept the outputs of %d dead-lettered input(s), want none", n)
			}
			cancel()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		})
	}
}

// savedSeen is a stateful processor as the correlator is: its state is
// the ids of the inputs it took in, restored at each term from what its
// last checkpoint saved (none while fenced).
type savedSeen struct {
	mu     sync.Mutex
	seen   []string
	saved  []string
	fenced bool
}

func (p *savedSeen) Process(_ context.Context, in *event.Envelope, out stage.Emitter) error {
	p.mu.Lock()
	p.seen = append(p.seen, in.ID)
	p.mu.Unlock()
	a := *in
	a.ID = "7" + in.ID[1:]
	return out.Emit(stage.Output{Subject: a.Subject() + ".out", Event: &a})
}

func (p *savedSeen) Restore(context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.seen = slices.Clone(p.saved)
	return nil
}

func (p *savedSeen) Checkpoint(context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fenced {
		return stage.ErrFenced
	}
	p.saved = slices.Clone(p.seen)
	return nil
}

// An input whose output failed has its outputs kept for its redelivery;
// when the term ends first (a lost lease) and the same runner leads again,
// the new term restores a state that may not hold the input: its
// redelivery is processed again, not answered with the outputs kept from
// the state that is gone (the input would be acked, held by no state).
func TestKeptOutputsDoNotOutliveTheirTerm(t *testing.T) {
	e := logEvent(t, 1, "hello")
	data, _ := json.Marshal(e)
	p := &savedSeen{}
	pub := stagetest.NewPublisher()
	r, err := stage.NewRunner(p, stage.Config{Name: "x", CheckpointEvery: time.Hour}, pub, zeroLog())
	if err != nil {
		t.Fatal(err)
	}
	term := func(d bus.Delivery) error {
		src := scriptedSource{deliveries: []bus.Delivery{d}, next: make(chan struct{}, 1), results: make(chan error, 1)}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx, src) }()
		src.next <- struct{}{}
		res := <-src.results
		cancel()
		<-done
		return res
	}
	pub.Refuse(true) // the output is refused: kept for the redelivery
	p.fenced = true  // and the lease is lost: nothing saved
	if err := term(bus.Delivery{Data: data, Delivered: 1}); err == nil || r.Kept() != 1 {
		t.Fatalf("first term: %v, %d kept; want the publish failure, its output kept", err, r.Kept())
	}
	pub.Refuse(false)
	p.fenced = false
	if err := term(bus.Delivery{Data: data, Delivered: 2}); err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !slices.Contains(p.saved, e.ID) {
		t.Fatalf("the redelivery was settled, but the state the second term saved, %v, does not hold it: it was answered with the kept outputs, not processed", p.saved)
	}
}
