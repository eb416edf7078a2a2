package logminer

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/aiops-dev/aiops/pkg/bus"
	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/pkg/logmine"
	"github.com/aiops-dev/aiops/pkg/stage"
	"github.com/aiops-dev/aiops/pkg/stage/stagetest"
	"github.com/aiops-dev/aiops/pkg/testenv"
)

func templatedBody(t *testing.T, msgs []bus.Message, svc string) event.LogBody {
	t.Helper()
	var out event.LogBody
	found := false
	for _, m := range msgs {
		if m.Subject == event.TemplatedLogSubject(svc) {
			if err := decode(t, m).DecodeBody(&out); err != nil {
				t.Fatal(err)
			}
			found = true
		}
	}
	if !found {
		t.Fatal("no templated log")
	}
	return out
}

// The header decision of an auto service is saved with the state: the
// same line gets the same template id before a restart (the service was
// decided "none": mined whole) and after it (detected again, the line
// would be split by the first kind that takes it, logfmt).
func TestTemplateIDStableAcrossARestartWithADetectedHeader(t *testing.T) {
	l := newTestLogminer(t, Config{})
	h := startHarness(t, l)
	for i := range logmine.DetectSampleLines {
		feedOK(t, h, rawEvent(t, "svc", fmt.Sprintf("plain line number %d without a header", i), ""))
	}
	if d := l.headers.detected()["svc"]; d.Kind != logmine.HeaderNone {
		t.Fatalf("decided %+v, want none", d)
	}
	line := `level=info msg="user 42 logged in from the console"`
	feedOK(t, h, rawEvent(t, "svc", line, ""))
	before := templatedBody(t, h.Pub.Messages(), "svc")
	state, err := l.encodeState()
	if err != nil {
		t.Fatal(err)
	}

	m := newTestLogminer(t, Config{})
	if err := m.decodeState(state); err != nil {
		t.Fatal(err)
	}
	hm := startHarness(t, m)
	feedOK(t, hm, rawEvent(t, "svc", line, ""))
	after := templatedBody(t, hm.Pub.Messages(), "svc")
	if before.TemplateID != after.TemplateID {
		t.Fatalf("same line: template %s %q before the restart, %s %q after", before.TemplateID, before.Template, after.TemplateID, after.Template)
	}
}

// A raw log of under 1 MiB (accepted by every consumer: event.Parse) whose
// templated copy may be over event.MaxEnvelopeBytes (its labels and
// resource, and a body that grows) is dead-lettered with the reason, not
// turned into a copy no consumer can parse.
func TestTemplatedCopyFitsTheEnvelopeLimit(t *testing.T) {
	l := newTestLogminer(t, Config{})
	h := startHarness(t, l)
	raw := rawEvent(t, "big", strings.Repeat("a 1 ", 16000), "")
	raw.Labels = map[string]string{}
	raw.Resource = map[string]string{}
	for i := range 119 {
		raw.Labels[fmt.Sprintf("l%03d", i)] = strings.Repeat("x", 4000)
		raw.Resource[fmt.Sprintf("r%03d", i)] = strings.Repeat("y", 4000)
	}
	raw.Fingerprint = event.Fingerprint(raw.Kind, raw.Service, raw.Labels, raw.Resource)
	data, err := raw.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := event.Parse(data); err != nil {
		t.Fatalf("raw log (%d bytes) not valid: %v", len(data), err)
	}
	r := h.Feed(raw)[0]
	if r.Outcome != stagetest.DeadLettered || r.Err == nil || !strings.Contains(r.Err.Error(), "envelope of up to") {
		t.Fatalf("raw log of %d bytes: %v %v, want dead-lettered: its copy may not fit the envelope limit", len(data), r.Outcome, r.Err)
	}
	for _, m := range h.Pub.Messages() {
		if _, err := event.Parse(m.Data); err != nil {
			t.Fatalf("published %s on %s (%d bytes) no consumer can parse: %v", m.ID, m.Subject, len(m.Data), err)
		}
	}
}

// Template events in flight at a stop are saved in the outbox; after the
// restart they sit among the runner's tick outputs, of which it keeps at
// most MaxKept (= max_series) across a failed tick, but never those a
// restored outbox held: the restored miner knows the templates and
// announces them no more.
func TestTemplateEventsInTheOutboxSurviveAFailedFirstTick(t *testing.T) {
	r := newRig(t)
	_, js := r.connect()
	restore := testenv.NarrowStream(t, js, bus.StreamEvents,
		event.KindFilterAll(event.KindLog), event.KindFilterAll(event.KindMetric), event.KindFilterAll(event.KindAlert),
		event.KindFilterAll(event.KindChange), event.KindFilterAll(event.KindIncident), event.KindFilterAll(event.KindAnomaly))
	publishRaw(t, js, rawLogs(t, 6, 0, time.Now().Add(-time.Minute)))
	cfg := Config{MaxSeries: 1}
	l, stop := r.start(cfg)
	for deadline := time.Now().Add(20 * time.Second); l.miner.Stats().Templates < 3; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the miner knows %d templates, want 3", l.miner.Stats().Templates)
		}
	}
	stop()
	var ob stage.HeldOutputs
	if st, err := jetstream.JetStream(js).ObjectStore(context.Background(), "logminer"); err == nil {
		_ = ob.LoadFrom(context.Background(), st, "logminer")
	}
	if len(ob.Held()) != 3 {
		t.Fatalf("the stop's outbox holds %d outputs, want the 3 template events", len(ob.Held()))
	}
	l, stop = r.start(cfg) // EVENTS still refuses template events
	for deadline := time.Now().Add(10 * time.Second); l.stage.Runner.Unsent() < 3; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("unsent after restore: %d", l.stage.Runner.Unsent())
		}
	}
	defer stop()
	if err := l.Flush(context.Background(), time.Now()); err == nil {
		t.Fatal("first tick while template events are refused: no error")
	}
	restore()
	ticking := make(chan struct{})
	go func() {
		for {
			select {
			case <-ticking:
				return
			case <-time.After(100 * time.Millisecond):
				_ = l.Flush(context.Background(), time.Now())
			}
		}
	}()
	defer close(ticking)
	if got := collect(t, js, event.KindFilterAll(event.KindLogTemplate), 3, 10*time.Second); len(got) != 3 {
		t.Fatalf("%d template events after the outage, want the 3 new templates'", len(got))
	}
}

// With the state disabled too, template events are kept until stored: one
// whose kept outputs the runner dropped (MaxKept = max_series) is sent by
// a tick, since the redelivery is mined again, the miner knows the
// template and announces nothing.
func TestTemplateEventNotLostWithoutState(t *testing.T) {
	l := newTestLogminer(t, Config{MaxSeries: 1, State: StateConfig{Disabled: true}})
	h := startHarness(t, l)
	a := rawEvent(t, "api", "user 42 logged in", "")
	b := rawEvent(t, "api", "disk sda full on host", "")
	h.Pub.FailNext(2)
	if r := h.Feed(a)[0]; r.Outcome != stagetest.Naked {
		t.Fatalf("a: %v", r.Outcome)
	}
	h.Pub.FailNext(2)
	if r := h.Feed(b)[0]; r.Outcome != stagetest.Naked {
		t.Fatalf("b: %v", r.Outcome)
	}
	feedOK(t, h, a, b) // the redeliveries
	if err := h.Tick(testNow.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, m := range h.Pub.Messages() {
		if strings.HasPrefix(m.Subject, "events.log_template.") {
			n++
		}
	}
	if n != 2 {
		t.Fatalf("%d template events stored, want 2 (one per new template)", n)
	}
}

// memStore is a state store in memory: no claims, no refusals.
type memStore struct{ m map[string][]byte }

func (s *memStore) Claim(context.Context, ...string) error { return nil }

func (s *memStore) GetBytes(_ context.Context, name string, _ ...jetstream.GetObjectOpt) ([]byte, error) {
	if d, ok := s.m[name]; ok {
		return d, nil
	}
	return nil, jetstream.ErrObjectNotFound
}

func (s *memStore) Put(_ context.Context, name string, data []byte) error {
	s.m[name] = append([]byte(nil), data...)
	return nil
}

// A tick sends the failed template events, the redeliveries store the
// rest, and no raw log stays listed as unacked.
func TestTickResendAndUnacked(t *testing.T) {
	l := newTestLogminer(t, Config{MaxSeries: 1})
	l.state = &memStore{m: map[string][]byte{}}
	h := startHarness(t, l)
	a := rawEvent(t, "api", "user 42 logged in", "")
	b := rawEvent(t, "api", "disk sda full on host", "")
	h.Pub.FailNext(2)
	h.Feed(a)
	h.Pub.FailNext(2)
	h.Feed(b)
	if err := h.Tick(testNow.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	feedOK(t, h, a, b)
	if err := h.Tick(testNow.Add(2 * time.Minute)); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, m := range h.Pub.Messages() {
		if strings.HasPrefix(m.Subject, "events.log_template.") {
			n++
		}
	}
	if n != 2 || len(l.unacked.list()) != 0 {
		t.Fatalf("%d template events, unacked %v", n, l.unacked.list())
	}
}
