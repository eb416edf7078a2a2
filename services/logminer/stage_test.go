package logminer

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/aiops-dev/aiops/pkg/bus"
	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/pkg/logmine"
	"github.com/aiops-dev/aiops/pkg/stage"
	"github.com/aiops-dev/aiops/pkg/stage/stagetest"
)

// The logminer's processor on the stage runtime, in memory: what a raw log
// becomes, how its delivery is settled, what a tick publishes.

// TestRawLogTemplatedThenAcked: a raw log is published templated on
// events.log.<service>.templated and, as it creates a template, announced
// on events.log_template.<service>, both with ids derived from the raw id;
// it is acked with both stored.
func TestRawLogTemplatedThenAcked(t *testing.T) {
	l := newTestLogminer(t, Config{})
	h := startHarness(t, l)
	raw := rawEvent(t, "api", "user 42 logged in", event.SeverityInfo)
	raw.Labels = map[string]string{"env": "test"}
	feedOK(t, h, raw)

	msgs := h.Pub.Messages()
	if len(msgs) != 2 {
		t.Fatalf("stored %d messages when the raw log was acked, want the templated log and the template event", len(msgs))
	}
	tpl := logmine.IDOf("user <*> logged in").String()
	templated, te := decode(t, msgs[0]), decode(t, msgs[1])
	var body event.LogBody
	if err := templated.DecodeBody(&body); err != nil {
		t.Fatal(err)
	}
	if msgs[0].Subject != "events.log.api.templated" || templated.ID != event.DerivedID(event.IDTime(raw.ID), "templated_log", raw.ID) ||
		templated.Kind != event.KindLog || templated.Source != Source || len(templated.Links) != 1 || templated.Links[0] != raw.ID ||
		templated.Labels["template_id"] != tpl || templated.Labels["env"] != "test" || !templated.ObservedTime.Equal(testNow) {
		t.Fatalf("templated log on %s: %+v", msgs[0].Subject, templated)
	}
	if body.Message != "user 42 logged in" || body.Template != "user <*> logged in" || body.TemplateID != tpl || len(body.Params) != 1 || body.Params[0] != "42" {
		t.Fatalf("templated body %+v", body)
	}
	var tb event.LogTemplateBody
	if err := te.DecodeBody(&tb); err != nil {
		t.Fatal(err)
	}
	if msgs[1].Subject != "events.log_template.api" || te.ID != event.DerivedID(event.IDTime(raw.ID), "log_template", raw.ID) || te.Kind != event.KindLogTemplate ||
		len(te.Links) != 1 || te.Links[0] != raw.ID || tb.Status != event.TemplateNew || tb.TemplateID != tpl || tb.Example != "user 42 logged in" {
		t.Fatalf("template event on %s: %+v body %+v", msgs[1].Subject, te, tb)
	}

	// The template is known now: the next line of it is only templated.
	feedOK(t, h, rawEvent(t, "api", "user 7 logged in", event.SeverityInfo))
	if msgs := h.Pub.Messages(); len(msgs) != 3 || msgs[2].Subject != "events.log.api.templated" {
		t.Fatalf("second line of a known template: stored %d messages, want one more templated log", len(msgs))
	}
	if got := l.metrics.lines.Load(); got != 2 || l.metrics.newTemplates.Load() != 1 {
		t.Fatalf("lines %d, new templates %d; want 2 and 1", got, l.metrics.newTemplates.Load())
	}
}

// TestNotARawLogDeadLettered: what is not a raw log is dead-lettered with
// the reason, publishes nothing and is not mined; the next raw log is.
func TestNotARawLogDeadLettered(t *testing.T) {
	l := newTestLogminer(t, Config{})
	h := startHarness(t, l)
	metric, err := event.New(event.KindMetric, "api", testNow, event.MetricBody{Name: "x", Value: new(float64)})
	if err != nil {
		t.Fatal(err)
	}
	templated := rawEvent(t, "api", "m", "")
	templated.Body = []byte(`{"message":"m","template_id":"00000000000000aa"}`)
	for _, c := range []struct {
		name   string
		result stagetest.Result
		reason string
	}{
		{"a metric", h.Feed(metric)[0], `kind "metric", want log`},
		{"a templated log", h.Feed(templated)[0], "already has template_id"},
		{"not an envelope", h.FeedRaw([]byte(`{"kind":`)), "JSON"},
	} {
		if c.result.Outcome != stagetest.DeadLettered || !strings.Contains(c.result.Err.Error(), c.reason) {
			t.Errorf("%s: %v (%v), want dead-lettered with a reason containing %q", c.name, c.result.Outcome, c.result.Err, c.reason)
		}
	}
	if n := len(h.Pub.Messages()); n != 0 || l.metrics.lines.Load() != 0 {
		t.Fatalf("stored %d messages and mined %d lines from what is not a raw log", n, l.metrics.lines.Load())
	}
	if s := h.Runner.Stats(); s.Invalid != 3 {
		t.Errorf("invalid inputs %d, want 3", s.Invalid)
	}
	feedOK(t, h, rawEvent(t, "api", "user 42 logged in", ""))
}

// TestFailedPublishRedeliveryRepublishes: a raw log whose outputs fail is
// naked; its redelivery publishes the same outputs, with the same ids,
// without mining the line again: it is counted once and its template event
// (the template is known by the time of the redelivery) is not lost.
func TestFailedPublishRedeliveryRepublishes(t *testing.T) {
	for _, failing := range []int{1, 2} { // the templated log; both
		t.Run(fmt.Sprint(failing, " failing"), func(t *testing.T) {
			l := newTestLogminer(t, Config{})
			h := startHarness(t, l)
			raw := rawEvent(t, "api", "user 42 logged in", event.SeverityInfo)
			h.Pub.FailNext(failing)
			if r := h.Feed(raw)[0]; r.Outcome != stagetest.Naked || !errors.Is(r.Err, stagetest.ErrPublish) {
				t.Fatalf("failed publish: %v (%v), want naked with the publish error", r.Outcome, r.Err)
			}
			if h.Runner.Kept() != 1 {
				t.Fatalf("%d inputs' outputs kept, want the failed raw log's", h.Runner.Kept())
			}
			feedOK(t, h, raw) // the redelivery
			want := []string{event.DerivedID(event.IDTime(raw.ID), "templated_log", raw.ID), event.DerivedID(event.IDTime(raw.ID), "log_template", raw.ID)}
			got := h.Pub.Messages()
			ids := map[string]int{}
			for _, m := range got {
				ids[m.ID]++
			}
			if len(got) != 2 || ids[want[0]] != 1 || ids[want[1]] != 1 {
				t.Fatalf("stored %v, want the templated log %s and the template event %s, once each", got, want[0], want[1])
			}
			if s := h.Runner.Stats(); s.Replayed != 1 || l.metrics.lines.Load() != 1 {
				t.Fatalf("replayed %d, mined %d lines; want the redelivery answered with the kept outputs, the line mined once", s.Replayed, l.metrics.lines.Load())
			}
			if err := h.Tick(testNow.Add(time.Minute)); err != nil {
				t.Fatal(err)
			}
			if v := sampleValues(t, h.Pub.Messages()[2:])["api"]; v != 1 {
				t.Fatalf("count sample %g, want the line counted once", v)
			}
		})
	}
}

// sampleValues maps a service to the value of its log_template_count
// sample among msgs (one template per service).
func sampleValues(t testing.TB, msgs []bus.Message) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for _, m := range msgs {
		e := decode(t, m)
		if e.Kind != event.KindMetric {
			continue
		}
		var b event.MetricBody
		if err := e.DecodeBody(&b); err != nil {
			t.Fatal(err)
		}
		out[e.Service] += *b.Value
	}
	return out
}

// TestTickPublishesCounts: a tick publishes one sample per series for the
// interval that ends at the tick, with ids derived from (end, service,
// template), and an anomaly for a burst of error lines; a sample whose
// publish fails is published by the next tick.
func TestTickPublishesCounts(t *testing.T) {
	l := newTestLogminer(t, Config{})
	h := startHarness(t, l)
	for i := range 12 {
		feedOK(t, h, rawEvent(t, "api", fmt.Sprintf("payment %d failed", i), event.SeverityError))
	}
	for i := range 3 {
		feedOK(t, h, rawEvent(t, "db", fmt.Sprintf("query %d done", i), event.SeverityInfo))
	}
	stored := len(h.Pub.Messages())
	end := testNow.Add(time.Minute)
	if err := h.Tick(end); err != nil {
		t.Fatal(err)
	}
	ticked := h.Pub.Messages()[stored:]
	payment, query := logmine.IDOf("payment <*> failed").String(), logmine.IDOf("query <*> done").String()
	if v := sampleValues(t, ticked); len(v) != 2 || v["api"] != 12 || v["db"] != 3 {
		t.Fatalf("samples %v, want api 12 and db 3", v)
	}
	var anomalies int
	for _, m := range ticked {
		e := decode(t, m)
		switch e.Kind {
		case event.KindMetric:
			tpl := map[string]string{"api": payment, "db": query}[e.Service]
			if m.Subject != "events.metric."+e.Service || e.ID != event.DerivedID(end, MetricTemplateCount, e.Service, tpl) || !e.Time.Equal(end) || e.Labels["template_id"] != tpl {
				t.Errorf("sample on %s: %+v", m.Subject, e)
			}
		case event.KindAnomaly:
			anomalies++
			var b event.AnomalyBody
			if err := e.DecodeBody(&b); err != nil {
				t.Fatal(err)
			}
			if m.Subject != "events.anomaly.api" || e.ID != event.DerivedID(end, BurstDetector, "api", payment) || *b.Value != 12 || b.Detector != BurstDetector || len(e.Links) != maxBurstExamples {
				t.Errorf("burst on %s: %+v body %+v", m.Subject, e, b)
			}
		default:
			t.Errorf("tick published a %s", e.Kind)
		}
	}
	if anomalies != 1 || l.metrics.bursts.Load() != 1 || l.metrics.samples.Load() != 2 {
		t.Fatalf("%d anomalies, metrics bursts %d samples %d; want 1, 1, 2", anomalies, l.metrics.bursts.Load(), l.metrics.samples.Load())
	}

	// The next interval's first sample (api: 0 lines) fails; the tick after
	// publishes it, with the id of its interval, before its own.
	h.Pub.FailNext(1)
	if err := h.Tick(end.Add(time.Minute)); !errors.Is(err, stagetest.ErrPublish) {
		t.Fatalf("tick with a failed publish: %v, want the publish error", err)
	}
	if h.Runner.Unsent() != 1 {
		t.Fatalf("%d tick outputs kept, want the failed sample", h.Runner.Unsent())
	}
	stored = len(h.Pub.Messages())
	if err := h.Tick(end.Add(2 * time.Minute)); err != nil {
		t.Fatal(err)
	}
	retried := h.Pub.Messages()[stored:]
	if len(retried) != 3 || retried[0].ID != event.DerivedID(end.Add(time.Minute), MetricTemplateCount, "api", payment) || h.Runner.Unsent() != 0 {
		t.Fatalf("after a failed tick: stored %v (kept %d), want the failed sample first, then the two of this interval", retried, h.Runner.Unsent())
	}
}

// TestStageConfig: the runner drives the logminer as the config says, and
// saves a state only when there is a store for it.
func TestStageConfig(t *testing.T) {
	l := newTestLogminer(t, Config{Interval: 30 * time.Second, MaxSeries: 500, State: StateConfig{SaveEvery: 2 * time.Minute}})
	want := stage.Config{Name: "logminer", Workers: min(runtime.GOMAXPROCS(0), 8), TickEvery: 30 * time.Second, MaxKept: 500, CheckpointEvery: 2 * time.Minute}
	if got := l.stageConfig(); got != want {
		t.Fatalf("stage config %+v, want %+v", got, want)
	}
	if _, ok := l.processor().(stage.Checkpointer); ok {
		t.Fatal("without a state store the processor is a Checkpointer")
	}
	l.state = &memStore{}
	p := l.processor()
	if _, ok := p.(stage.Checkpointer); !ok {
		t.Fatal("with a state store the processor is not a Checkpointer")
	}
	if _, ok := p.(stage.Ticker); !ok {
		t.Fatal("the processor is not a Ticker")
	}
}

// TestPanicSettlesTransient: a panic while mining a raw log (here: no
// miner) settles that delivery with a transient error, and leaves the miner
// free for the next one.
func TestPanicSettlesTransient(t *testing.T) {
	l := newTestLogminer(t, Config{})
	h := startHarness(t, l)
	miner := l.miner
	l.miner = nil
	r := h.Feed(rawEvent(t, "api", "user 42 logged in", event.SeverityInfo))[0]
	if r.Outcome != stagetest.Naked || !strings.Contains(r.Err.Error(), "panicked") {
		t.Fatalf("%v (%v), want naked with an error saying it panicked", r.Outcome, r.Err)
	}
	l.miner = miner
	feedOK(t, h, rawEvent(t, "api", "user 7 logged in", event.SeverityInfo)) // mineMu was released
}

// TestBacklogOfOldLogsIsNotABurstNow: lines timed hours before the clock
// (a backlog flushed after an outage) are templated but not counted, so
// they neither make an error burst now nor inflate the interval's count;
// lines late by less than max_lateness (one interval) are counted in the
// interval open when they come.
func TestBacklogOfOldLogsIsNotABurstNow(t *testing.T) {
	l := newTestLogminer(t, Config{})
	h := startHarness(t, l)
	line := func(i int, at time.Time) *event.Envelope {
		e := rawEvent(t, "api", fmt.Sprintf("payment %d failed", i), event.SeverityError)
		e.Time = at
		return e
	}
	// the steady rate of the template: 4 errors a minute
	for i := range 4 {
		feedOK(t, h, line(i, testNow.Add(10*time.Second)))
	}
	end := testNow.Add(time.Minute)
	if err := h.Tick(end); err != nil {
		t.Fatal(err)
	}
	// three hours of the same rate, ending an hour ago, delivered at once
	// after an outage, and this minute's 4, one of them late by 30 s
	for i := range 3 * 60 * 4 {
		feedOK(t, h, line(i, end.Add(-4*time.Hour).Add(time.Duration(i)*15*time.Second)))
	}
	for i := range 4 {
		feedOK(t, h, line(i, end.Add(time.Duration(i)*10*time.Second-30*time.Second)))
	}
	stored := len(h.Pub.Messages())
	if err := h.Tick(end.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	ticked := h.Pub.Messages()[stored:]
	for _, m := range ticked {
		if e := decode(t, m); e.Kind == event.KindAnomaly {
			t.Errorf("backlog flagged as a burst now: %s", e.Body)
		}
	}
	if v := sampleValues(t, ticked); v["api"] != 4 {
		t.Errorf("sample %v, want api 4: this minute's lines only", v)
	}
	if _, _, late := l.counts.stats(); late != 3*60*4 {
		t.Errorf("%d lines not counted as late, want the %d of the backlog", late, 3*60*4)
	}
}
