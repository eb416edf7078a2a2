package logminer

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/bus"
	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/pkg/logmine"
	"github.com/aiops-dev/aiops/pkg/stage"
	"github.com/aiops-dev/aiops/pkg/stage/stagetest"
)

// testNow is the clock of newTestLogminer: a minute boundary.
var testNow = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

// newTestLogminer builds the processing part alone, without JetStream.
func newTestLogminer(t testing.TB, cfg Config) *Logminer {
	t.Helper()
	l, err := newLogminer(cfg, zerolog.Nop(), WithClock(func() time.Time { return testNow }))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// startHarness runs l on stagetest's in-memory runner, configured as New
// configures the real one, except for the period of the runner's own
// ticks: tests tick by hand (h.Tick), and a tick of the runner's clock in
// the middle of a test would close its interval.
func startHarness(t testing.TB, l *Logminer) *stagetest.Harness {
	t.Helper()
	cfg := l.stageConfig()
	cfg.TickEvery = 24 * time.Hour
	return stagetest.Start(t, l.processor(), cfg, stage.WithClock(l.now))
}

// feedOK feeds envelopes and fails unless each one is acked.
func feedOK(t testing.TB, h *stagetest.Harness, es ...*event.Envelope) {
	t.Helper()
	for i, r := range h.Feed(es...) {
		if r.Outcome != stagetest.Acked {
			t.Fatalf("input %d (%s): %v (%v), want acked", i, es[i].ID, r.Outcome, r.Err)
		}
	}
}

func rawEvent(t testing.TB, svc, msg string, sev event.Severity) *event.Envelope {
	t.Helper()
	e, err := event.New(event.KindLog, svc, time.Date(2026, 11, 21, 11, 59, 0, 0, time.UTC), event.LogBody{Message: msg})
	if err != nil {
		t.Fatal(err)
	}
	e.Severity = sev
	return e
}

// decode parses a published message.
func decode(t testing.TB, m bus.Message) *event.Envelope {
	t.Helper()
	e, err := event.Parse(m.Data)
	if err != nil {
		t.Fatalf("published %s on %s: %v", m.ID, m.Subject, err)
	}
	return e
}

// TestProcessFormatAndMerge: a service with a header format is mined on its
// content, its Level gives the severity; a generalised template is announced
// as changed, and its counts move to the new id.
func TestProcessFormatAndMerge(t *testing.T) {
	l := newTestLogminer(t, Config{Formats: map[string]string{"hdfs": "<Date> <Time> <Level> <Component>: <Content>"}})
	h := startHarness(t, l)

	raw := rawEvent(t, "hdfs", "081109 203615 ERROR dfs.DataNode: session closed for user u1001", "")
	feedOK(t, h, raw)
	msgs := h.Pub.Messages()
	if len(msgs) != 2 || msgs[0].Subject != "events.log.hdfs.templated" || msgs[1].Subject != "events.log_template.hdfs" {
		t.Fatalf("messages %+v", msgs)
	}
	out := decode(t, msgs[0])
	var body event.LogBody
	if err := out.DecodeBody(&body); err != nil {
		t.Fatal(err)
	}
	if body.Template != "session closed for user u1001" || body.Message != "081109 203615 ERROR dfs.DataNode: session closed for user u1001" || out.Severity != event.SeverityError {
		t.Fatalf("templated %+v body %+v", out, body)
	}
	if msgs[0].ID != out.ID || out.ID != event.DerivedID(event.IDTime(raw.ID), "templated_log", raw.ID) {
		t.Errorf("message id %s, envelope id %s: not the derived id", msgs[0].ID, out.ID)
	}
	// Delivered again after it was acked (a lost ack): processed again,
	// into the same id, which the duplicate window drops.
	sent := h.Pub.Sent()
	feedOK(t, h, raw)
	if h.Pub.Sent() != sent+1 || len(h.Pub.Messages()) != 2 {
		t.Fatalf("redelivered raw log: %d publishes, %d stored; want 1 more publish and the same 2 stored (same id)", h.Pub.Sent()-sent, len(h.Pub.Messages()))
	}

	feedOK(t, h, rawEvent(t, "hdfs", "081109 203616 INFO dfs.DataNode: session closed for user u1002", ""))
	msgs = h.Pub.Messages()[2:]
	if len(msgs) != 2 {
		t.Fatalf("generalising line: %d messages, want the templated log and a changed event", len(msgs))
	}
	te := decode(t, msgs[1])
	var tb event.LogTemplateBody
	if err := te.DecodeBody(&tb); err != nil {
		t.Fatal(err)
	}
	oldID, newID := logmine.IDOf("session closed for user u1001"), logmine.IDOf("session closed for user <*>")
	if te.Kind != event.KindLogTemplate || tb.Status != event.TemplateChanged || tb.TemplateID != newID.String() || tb.PreviousID != oldID.String() || len(tb.MergedFrom) != 1 || tb.MergedFrom[0] != oldID.String() {
		t.Fatalf("changed event %+v body %+v", te, tb)
	}
	samples, bursts := l.counts.flush(testNow)
	if len(samples) != 1 || samples[0].ID != newID || samples[0].Count != 3 {
		t.Fatalf("counts %v, want the 3 lines under %s", samples, newID)
	}
	if len(bursts) != 0 {
		t.Errorf("bursts %v from 2 error lines", bursts)
	}

	// A line without the header is mined whole and counted.
	feedOK(t, h, rawEvent(t, "hdfs", "no header here", event.SeverityWarning))
	if got := l.metrics.unmatchedFormat.Load(); got != 1 {
		t.Errorf("unmatched %d, want 1", got)
	}
}

// TestStateRoundTrip: the encoded state restores templates and series; the
// counts of the interval in progress survive a restart within the interval
// and are dropped (averages kept) after it, when they may have been emitted.
func TestStateRoundTrip(t *testing.T) {
	clock := time.Date(2026, 11, 21, 10, 0, 30, 0, time.UTC)
	now := func() time.Time { return clock }
	l := newTestLogminer(t, Config{})
	l.now = now
	h := startHarness(t, l)
	for i := range 12 {
		feedOK(t, h, rawEvent(t, "api", "request "+string(rune('0'+i%10))+" failed", event.SeverityError))
	}
	l.counts.flush(clock.Truncate(time.Minute)) // seeds the error average with 12
	feedOK(t, h, rawEvent(t, "api", "request 7 failed", event.SeverityError))
	state, err := l.encodeState()
	if err != nil {
		t.Fatal(err)
	}
	id := logmine.IDOf("request <*> failed")

	for _, c := range []struct {
		restoredAt time.Time
		count      uint64
	}{
		{clock.Add(15 * time.Second), 1}, // same interval
		{clock.Add(35 * time.Second), 0}, // the next one
	} {
		m := newTestLogminer(t, Config{})
		m.now = func() time.Time { return c.restoredAt }
		if err := m.decodeState(state); err != nil {
			t.Fatal(err)
		}
		if tpl, ok := m.miner.Lookup(id); !ok || tpl.Count != 13 {
			t.Fatalf("restored at %v: template %v %v", c.restoredAt, tpl, ok)
		}
		s := m.counts.byID[id]["api"]
		if s == nil || s.Count != c.count || s.ErrAvg != 12 {
			t.Fatalf("restored at %v: series %+v, want count %d and average 12", c.restoredAt, s, c.count)
		}
	}

	m := newTestLogminer(t, Config{})
	for _, bad := range [][]byte{[]byte("{"), []byte(`{"version":9}`), []byte(`{"version":1,"miner":"AAAA"}`)} {
		if err := m.decodeState(bad); !errors.Is(err, ErrInvalidState) {
			t.Errorf("state %q: got %v, want ErrInvalidState", bad, err)
		}
	}
}

// A state saved after an interval's end but before its tick, in the
// first interval of a run (nothing flushed yet), names the interval that
// ended, whether the run started empty or from a saved state: a restart
// after that interval drops its counts (its tick may have published them)
// instead of publishing them again, with their burst, as the next
// interval's.
func TestCheckpointBeforeTheFirstTickNamesItsInterval(t *testing.T) {
	var clock time.Time
	now := func() time.Time { return clock }
	start := func(at time.Time) *Logminer {
		clock = at
		l, err := newLogminer(Config{}, zerolog.Nop(), WithClock(now))
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	intervalEnd := func(l *Logminer) time.Time {
		data, err := l.encodeState()
		if err != nil {
			t.Fatal(err)
		}
		var st savedState
		if err := json.Unmarshal(data, &st); err != nil {
			t.Fatal(err)
		}
		return st.IntervalEnd
	}
	boundary := testNow.Add(time.Minute) // 12:01

	// a run that started empty at 12:00:30
	l := start(testNow.Add(30 * time.Second))
	h := startHarness(t, l)
	for i := range 12 {
		feedOK(t, h, rawEvent(t, "api", fmt.Sprintf("payment %d failed", i), event.SeverityError))
	}
	clock = boundary.Add(time.Millisecond) // the tick of 12:01 not run yet
	state, err := l.encodeState()
	if err != nil {
		t.Fatal(err)
	}
	if end := intervalEnd(l); !end.Equal(boundary) {
		t.Fatalf("counts of the interval ending %v saved as ending %v", boundary, end)
	}
	if err := h.Tick(boundary); err != nil {
		t.Fatal(err)
	}

	// restarted at 12:01:20 from that state: the 12:02 tick counts nothing
	// of it and flags no burst
	l2 := start(boundary.Add(20 * time.Second))
	if err := l2.decodeState(state); err != nil {
		t.Fatal(err)
	}
	h2 := startHarness(t, l2)
	if err := h2.Tick(boundary.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	for _, m := range h2.Pub.Messages() {
		e := decode(t, m)
		var mb event.MetricBody
		if e.Kind == event.KindAnomaly || (e.DecodeBody(&mb) == nil && mb.Value != nil && *mb.Value != 0) {
			t.Fatalf("after the restart the 12:02 tick publishes the 12:01 interval's lines again: %s", m.Data)
		}
	}

	// a run restored at 12:00:40 from a state saved at 12:00:35 (its
	// logminer built long before)
	l3 := start(testNow.Add(35 * time.Second))
	feedOK(t, startHarness(t, l3), rawEvent(t, "api", "payment 1 failed", event.SeverityError))
	state, err = l3.encodeState()
	if err != nil {
		t.Fatal(err)
	}
	l4 := start(testNow.Add(-time.Hour))
	clock = testNow.Add(40 * time.Second)
	if err := l4.decodeState(state); err != nil {
		t.Fatal(err)
	}
	clock = boundary.Add(time.Millisecond)
	if end := intervalEnd(l4); !end.Equal(boundary) {
		t.Fatalf("restored run: counts of the interval ending %v saved as ending %v", boundary, end)
	}
}

// What a consumer would refuse is not published: a line of blanks makes
// no template event (it would name no template), and a line whose
// templated copy passes the body limit is dead-lettered with why.
func TestProcessPublishesOnlyValidEvents(t *testing.T) {
	l := newTestLogminer(t, Config{})
	h := startHarness(t, l)
	feedOK(t, h, rawEvent(t, "api", "\t  \t", event.SeverityInfo))
	for _, m := range h.Pub.Messages() {
		decode(t, m) // fails on an invalid event
		if strings.Contains(m.Subject, "log_template") {
			t.Fatalf("a template event for a line of blanks: %s", m.Data)
		}
	}
	big := rawEvent(t, "api", strings.Repeat("1,", 245_000), event.SeverityInfo)
	r := h.Feed(big)[0]
	if r.Outcome != stagetest.DeadLettered || !strings.Contains(r.Err.Error(), "templated copy may not fit") {
		t.Fatalf("a line whose templated copy is over the limit: %v %v, want dead-lettered with why", r.Outcome, r.Err)
	}
}
