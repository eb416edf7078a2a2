package logminer

import (
	"context"
	"encoding/json"
	"github.com/aiops-dev/aiops/pkg/event"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/aiops-dev/aiops/pkg/bus"
	"github.com/aiops-dev/aiops/pkg/errs"
	"github.com/aiops-dev/aiops/pkg/logmine"
)

// doneRecorder is a delivery's done that keeps every result it was given.
type doneRecorder struct {
	mu      sync.Mutex
	results []error
	called  chan struct{}
}

func newDoneRecorder() *doneRecorder { return &doneRecorder{called: make(chan struct{}, 16)} }

func (r *doneRecorder) done(err error) {
	r.mu.Lock()
	r.results = append(r.results, err)
	r.mu.Unlock()
	r.called <- struct{}{}
}

// wait returns the first result, failing after a while without one.
func (r *doneRecorder) wait(t *testing.T) error {
	t.Helper()
	select {
	case <-r.called:
	case <-time.After(30 * time.Second):
		t.Fatal("done not called within 30s")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.results[0]
}

func (r *doneRecorder) calls() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.results)
}

// storedOn counts the messages the EVENTS stream holds on subject and
// returns the msg id of the last one.
func storedOn(t *testing.T, js jetstream.JetStream, subject string) (n uint64, lastID string) {
	t.Helper()
	ctx := context.Background()
	s, err := js.Stream(ctx, bus.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		t.Fatal(err)
	}
	n = info.State.Subjects[subject]
	if n == 0 {
		return 0, ""
	}
	m, err := s.GetLastMsgForSubject(ctx, subject)
	if err != nil {
		t.Fatal(err)
	}
	return n, m.Header.Get(jetstream.MsgIDHeader)
}

// handSource is a stage.Source the test drives by hand: it gives the
// runner's handler to the test and returns when ctx ends. It does not wait
// for results: the caller waits for every done before it stops the runner.
type handSource struct{ handler chan bus.AsyncHandler }

func (s handSource) Run(ctx context.Context, h bus.AsyncHandler) error {
	s.handler <- h
	<-ctx.Done()
	return nil
}

// runByHand runs l's runner (workers, publisher, acker: the service path
// without the consumer) on a handSource. handle hands it a delivery; stop
// cancels it and returns Run's error.
func runByHand(tb testing.TB, l *Logminer) (handle bus.AsyncHandler, stop func() error) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	src := handSource{handler: make(chan bus.AsyncHandler)}
	finished := make(chan error, 1)
	go func() { finished <- l.stage.Runner.Run(ctx, src) }()
	select {
	case handle = <-src.handler:
	case err := <-finished:
		cancel()
		tb.Fatalf("runner stopped at once: %v", err)
	}
	return handle, func() error { cancel(); return <-finished }
}

// TestDoneFollowsTheOutputs: a raw log is settled only by the fate of what it
// caused, on a real stream. With no stream to store its outputs, done gets a
// transient error (the raw log is redelivered); once the stream is back the
// redelivery is settled with nil after its templated log and its template
// event were stored, without mining the line again (it is counted once);
// a further redelivery is settled too but stored once (same derived id,
// duplicate window); closing the interval (Flush) stores its sample. Bad
// input is refused as permanent. done is called exactly once per delivery.
func TestDoneFollowsTheOutputs(t *testing.T) {
	r := newRig(t)
	_, js := r.connect()
	ctx := context.Background()
	// An hour's interval: a tick at a minute's boundary would move the
	// counts into a sample mid-test (CI once saw "counted 0 times").
	l, err := New(ctx, js, Config{State: StateConfig{Disabled: true}, Interval: time.Hour}, r.log)
	if err != nil {
		t.Fatal(err)
	}
	handle, stopRunner := runByHand(t, l)
	stopped := false
	defer func() {
		if !stopped {
			_ = stopRunner()
		}
	}()

	raw := rawLogs(t, 1, 0, time.Now().Add(-time.Minute))[0].env
	data, err := json.Marshal(raw)
	if err != nil {
		t.Fatal(err)
	}
	delivery := func(n uint64) *bus.Delivery { return &bus.Delivery{Subject: raw.Subject(), Data: data, Delivered: n} }
	templatedSubject := event.TemplatedLogSubject(raw.Service)
	wantID := event.DerivedID(event.IDTime(raw.ID), "templated_log", raw.ID)

	if err := js.DeleteStream(ctx, bus.StreamEvents); err != nil {
		t.Fatal(err)
	}
	failed := newDoneRecorder()
	handle(ctx, delivery(1), failed.done)
	if err := failed.wait(t); err == nil || errs.IsPermanent(err) {
		t.Fatalf("outputs not stored: done(%v), want a transient error", err)
	}
	if st := l.stage.Stats(); st.OutputFailures == 0 || l.stage.Kept() != 1 {
		t.Errorf("output failures %d, kept %d: want the failure counted and the outputs kept", st.OutputFailures, l.stage.Kept())
	}

	if err := bus.EnsureTopology(ctx, js, bus.DefaultStreams()); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		redelivered := newDoneRecorder()
		handle(ctx, delivery(uint64(2+i)), redelivered.done)
		if err := redelivered.wait(t); err != nil {
			t.Fatalf("redelivery %d: done(%v), want nil", i+1, err)
		}
		// done(nil) came after the ack: the templated log is stored by now.
		n, id := storedOn(t, js, templatedSubject)
		if n != 1 || id != wantID {
			t.Fatalf("after redelivery %d: %d templated logs, last id %q; want 1 with id %s", i+1, n, id, wantID)
		}
		if i == 0 {
			// The failed delivery was counted; its redelivery republished
			// its outputs without mining it again. (A second redelivery
			// of a log that succeeded, after a lost ack, is mined and
			// counted again: nothing marks it.)
			if got := countedLines(l.counts, raw.Service); got != 1 || l.stage.Stats().Replayed != 1 {
				t.Errorf("after the redelivery of a failed raw log: counted %d times, %d replayed; want 1 and 1", got, l.stage.Stats().Replayed)
			}
			// The template event of the failed first delivery, which the
			// redelivery would not cause again (the template is known by
			// then), was republished with it.
			if n, id := storedOn(t, js, "events.log_template."+raw.Service); n != 1 || id != event.DerivedID(event.IDTime(raw.ID), "log_template", raw.ID) {
				t.Fatalf("%d template events stored, last id %q; want the failed one, once", n, id)
			}
		}
	}

	// Closing the interval publishes its count sample to the stream.
	end := time.Now().Truncate(time.Minute)
	if err := l.Flush(ctx, end); err != nil {
		t.Fatal(err)
	}
	if n, id := storedOn(t, js, "events.metric."+raw.Service); n != 1 || id != event.DerivedID(end, MetricTemplateCount, raw.Service, logmine.IDOf("request <*> served in <*>").String()) {
		t.Fatalf("%d samples stored, last id %q; want the interval's one", n, id)
	}

	bad := newDoneRecorder()
	handle(ctx, &bus.Delivery{Subject: raw.Subject(), Data: []byte(`{"kind":`), Delivered: 1}, bad.done)
	if err := bad.wait(t); !errs.IsPermanent(err) {
		t.Fatalf("bad input: done(%v), want a permanent error", err)
	}

	// Stopping waits for the workers and the acker: every done call has
	// happened.
	if err := stopRunner(); err != nil {
		t.Fatal(err)
	}
	stopped = true
	for name, rec := range map[string]*doneRecorder{"failed": failed, "bad": bad} {
		if n := rec.calls(); n != 1 {
			t.Errorf("%s delivery: done called %d times, want 1", name, n)
		}
	}
}

// TestShutdownDrains: a logminer stopped in the middle of a backlog settles
// every delivery it took (Run returns nil, nothing outstanding, each one
// acked, naked or dead-lettered), and the next run mines the rest: every raw
// log ends up templated exactly once.
func TestShutdownDrains(t *testing.T) {
	r := newRig(t)
	_, js := r.connect()
	logs := rawLogs(t, 3000, 0, time.Now().Add(-time.Hour))
	publishRaw(t, js, logs)
	cfg := Config{Interval: time.Minute, State: StateConfig{Disabled: true}}

	ctx, cancel := context.WithCancel(context.Background())
	_, js1 := r.connect()
	l, err := New(ctx, js1, cfg, r.log)
	if err != nil {
		t.Fatal(err)
	}
	finished := make(chan error, 1)
	go func() { finished <- l.Run(ctx) }()
	deadline := time.Now().Add(30 * time.Second)
	for l.Stats().Acked == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	cancel()
	select {
	case err := <-finished:
		if err != nil {
			t.Fatalf("Run: %v, want a clean drain", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("Run did not return within a minute of cancellation")
	}
	st := l.Stats()
	if st.Outstanding != 0 || st.Acked == 0 || st.Delivered != st.Acked+st.Naked+st.DeadLettered {
		t.Fatalf("after Run: %+v, want every delivery settled", st)
	}
	t.Logf("first run settled %d of %d before stopping", st.Acked, len(logs))

	_, stop := r.start(cfg)
	defer stop()
	checkTemplated(t, logs, collect(t, js, "events.log.*.templated", len(logs), 60*time.Second))
	if n := storedCount(t, js, "events.log.*.templated"); n != uint64(len(logs)) {
		t.Fatalf("%d templated logs stored, want %d: a redelivered raw log was stored twice", n, len(logs))
	}
}

// storedCount is the number of messages the EVENTS stream holds on filter.
func storedCount(t *testing.T, js jetstream.JetStream, filter string) uint64 {
	t.Helper()
	ctx := context.Background()
	s, err := js.Stream(ctx, bus.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(filter))
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, c := range info.State.Subjects {
		n += c
	}
	return n
}
