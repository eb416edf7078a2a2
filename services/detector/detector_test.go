package detector

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/bus"
	"github.com/aiops-dev/aiops/pkg/config"
	"github.com/aiops-dev/aiops/pkg/detect"
	"github.com/aiops-dev/aiops/pkg/detect/pipeline"
	"github.com/aiops-dev/aiops/pkg/errs"
	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/pkg/stage"
	"github.com/aiops-dev/aiops/pkg/stage/stagetest"
)

var t0 = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

// sample encodes one metric sample as a producer would publish it.
func sample(t testing.TB, service, name string, labels map[string]string, at time.Time, v float64, typ string) (*event.Envelope, []byte) {
	t.Helper()
	e, err := event.New(event.KindMetric, service, at, event.MetricBody{Name: name, Value: &v, Type: typ})
	if err != nil {
		t.Fatal(err)
	}
	e.Labels = map[string]string{"__name__": name}
	for k, v := range labels {
		e.Labels[k] = v
	}
	e.Fingerprint = ""
	e.Normalize(at)
	data, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	return e, data
}

// replayNow is the clock of a test that does not set one: after every
// sample the tests send from t0 on, as when a detector replays history, so
// that none is further ahead of it than max_event_future.
var replayNow = t0.Add(30 * 24 * time.Hour)

// newCore builds the processing core, without a runner.
func newCore(t testing.TB, cfg Config, opts ...Option) *Service {
	t.Helper()
	s, err := newService(cfg, zerolog.Nop(), append([]Option{WithClock(func() time.Time { return replayNow })}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// newTestService builds the service and runs it in the stage runner, in
// memory (stagetest: no server).
func newTestService(t testing.TB, cfg Config, opts ...Option) (*Service, *stagetest.Harness) {
	t.Helper()
	s := newCore(t, cfg, opts...)
	return s, run(t, s, s)
}

// run runs proc (s, or a wrapper of it) with s's stage configuration, on
// s's clock, ticking only when the test does (Harness.Tick, FlushRows).
func run(t testing.TB, s *Service, proc any) *stagetest.Harness {
	t.Helper()
	cfg := s.stageConfig()
	cfg.TickEvery = 24 * time.Hour
	h := stagetest.Start(t, proc, cfg, stage.WithClock(s.now))
	s.runner = h.Runner
	return h
}

// ack delivers a sample and fails the test unless it is acked.
func ack(t testing.TB, h *stagetest.Harness, data []byte) {
	t.Helper()
	if r := h.FeedRaw(data); r.Outcome != stagetest.Acked {
		t.Fatalf("sample %s: %v", r.Outcome, r.Err)
	}
}

// testClock is a clock a test moves while the runner reads it.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// normal returns n samples around 100 with σ 1, one a minute.
func normal(n int, seed uint64) []float64 {
	r := rand.New(rand.NewPCG(seed, 7))
	v := make([]float64, n)
	for i := range v {
		v[i] = 100 + r.NormFloat64()
	}
	return v
}

// An anomalous sample publishes one anomaly, explained and linked to it,
// and is acked only after the anomaly was stored.
func TestSpikePublishesExplainedAnomaly(t *testing.T) {
	s, h := newTestService(t, Config{})
	labels := map[string]string{"instance": "web-1"}
	values := normal(150, 1)
	values = append(values, 125) // 25σ
	var spike *event.Envelope
	for i, v := range values {
		e, data := sample(t, "checkout", "latency_ms", labels, t0.Add(time.Duration(i)*time.Minute), v, "")
		ack(t, h, data)
		if i < len(values)-1 && len(h.Pub.Messages()) > 0 {
			t.Fatalf("anomaly published on normal sample %d (value %.2f)", i, v)
		}
		spike = e
	}
	if n := testutil.ToFloat64(s.m.anomalies); n != 1 {
		t.Errorf("the spike was acked with anomalies_total %v: acked before its anomaly was stored", n)
	}
	if st := h.Runner.Stats(); st.Outputs != 1 || st.Inputs != uint64(len(values)) {
		t.Errorf("runner stats %+v, want %d inputs and one output acked", st, len(values))
	}
	msgs := h.Pub.Messages()
	if len(msgs) != 1 {
		t.Fatalf("published %d anomalies for one spike, want 1", len(msgs))
	}
	m := msgs[0]
	if m.Subject != "events.anomaly.checkout" {
		t.Errorf("subject %q", m.Subject)
	}
	a, err := event.Parse(m.Data)
	if err != nil {
		t.Fatalf("anomaly does not parse strictly: %v", err)
	}
	if a.ID != m.ID || a.Kind != event.KindAnomaly || a.Source != Source || a.Service != "checkout" {
		t.Errorf("envelope %+v, message id %s", a, m.ID)
	}
	if len(a.Links) != 1 || a.Links[0] != spike.ID {
		t.Errorf("links %v, want the spike's id %s", a.Links, spike.ID)
	}
	if a.Labels["instance"] != "web-1" || !a.Time.Equal(spike.Time) {
		t.Errorf("labels %v time %v", a.Labels, a.Time)
	}
	var b event.AnomalyBody
	if err := a.DecodeBody(&b); err != nil {
		t.Fatal(err)
	}
	if b.Series != spike.Fingerprint || b.Metric != "latency_ms" || b.Value == nil || *b.Value != 125 {
		t.Errorf("body %+v, want series %s value 125", b, spike.Fingerprint)
	}
	if b.Score == nil || *b.Score < 0.5 || *b.Score > 1 {
		t.Errorf("score %v not in [0.5,1]", b.Score)
	}
	if !(b.Lower < b.Expected && b.Expected < b.Upper && b.Upper < 125) || b.Expected < 98 || b.Expected > 102 {
		t.Errorf("expected %g band [%g,%g] does not explain a spike to 125 from ~100", b.Expected, b.Lower, b.Upper)
	}
	if b.Detector == "" || b.Detector == "none" || b.Window == "" || !strings.Contains(b.Reason, "latency_ms") {
		t.Errorf("explanation missing: %+v", b)
	}
	// people read the reason: 4 significant digits, not the full float64
	want := fmt.Sprintf("latency_ms = 125, expected %.4g (band %.4g to %.4g)", b.Expected, b.Lower, b.Upper)
	if !strings.HasPrefix(b.Reason, want) {
		t.Errorf("reason %q, want it to start %q", b.Reason, want)
	}
}

// feed sends n normal samples of one series, then returns the envelope and
// bytes of a spike after them.
func feed(t *testing.T, h *stagetest.Harness, service, name string, n int, typ string) (*event.Envelope, []byte) {
	t.Helper()
	for i, v := range normal(n, 3) {
		_, data := sample(t, service, name, nil, t0.Add(time.Duration(i)*time.Minute), v, typ)
		ack(t, h, data)
	}
	return sample(t, service, name, nil, t0.Add(time.Duration(n)*time.Minute), 150, typ)
}

// An episode's close says why it ended: a series back in its range, or
// one settled at a new level (a shift that stays), whose value is no
// longer in the band of the level it left, which the close of a shift
// called "back in its normal range" and set beside it.
func TestCloseReasonSaysWhetherTheSeriesCameBackOrSettled(t *testing.T) {
	for _, c := range []struct {
		name  string
		stays bool
		want  string
	}{
		{"spike", false, "latency_ms back in its normal range ("},
		{"shift", true, "latency_ms settled at a new level ("},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, h := newTestService(t, Config{})
			values := normal(300, 2)
			for i := 200; i < 300; i++ {
				if c.stays || i < 203 {
					values[i] += 40
				}
			}
			for i, v := range values {
				_, data := sample(t, "checkout", "latency_ms", nil, t0.Add(time.Duration(i)*time.Minute), v, "")
				ack(t, h, data)
			}
			var closes []string
			for _, m := range h.Pub.Messages() {
				a, err := event.Parse(m.Data)
				if err != nil {
					t.Fatal(err)
				}
				var b event.AnomalyBody
				if err := a.DecodeBody(&b); err != nil {
					t.Fatal(err)
				}
				if b.Episode == event.EpisodeClose {
					closes = append(closes, b.Reason)
				}
			}
			if len(closes) != 1 || !strings.HasPrefix(closes[0], c.want) {
				t.Errorf("closes %q, want one starting %q", closes, c.want)
			}
		})
	}
}

// A failed publish naks the sample; its redelivery republishes the same
// anomaly under the same id without scoring the sample again (the detector
// would take it for a duplicate timestamp and publish nothing).
func TestFailedPublishIsRetriedWithTheSameID(t *testing.T) {
	for name, fail := range map[string]func(p *stagetest.Publisher){
		"ack fails":       func(p *stagetest.Publisher) { p.FailNext(1) },
		"publish refused": func(p *stagetest.Publisher) { p.Refuse(true) },
	} {
		t.Run(name, func(t *testing.T) {
			s, h := newTestService(t, Config{})
			e, spike := feed(t, h, "api", "errors", 100, "")
			fail(h.Pub)
			if r := h.FeedRaw(spike); r.Outcome != stagetest.Naked {
				t.Fatalf("failed publish: %v (%v), want naked", r.Outcome, r.Err)
			}
			h.Pub.Refuse(false)
			if n := len(h.Pub.Messages()); n != 0 {
				t.Fatalf("%d anomalies stored by a failed publish", n)
			}
			if n := testutil.ToFloat64(s.m.anomalies); n != 0 {
				t.Errorf("anomalies_total %v after a failed publish, want 0", n)
			}
			samples := testutil.ToFloat64(s.m.samples)
			ack(t, h, spike) // the redelivery
			if got := testutil.ToFloat64(s.m.samples); got != samples {
				t.Errorf("the redelivery was scored again (samples_total %v, was %v)", got, samples)
			}
			if n, _ := s.Observations(e.Fingerprint); n != 101 {
				t.Errorf("%d observations, want 101", n)
			}
			if st := h.Runner.Stats(); st.Replayed != 1 {
				t.Errorf("runner replayed %d inputs, want the redelivery", st.Replayed)
			}
			sent := h.Pub.Sent()
			ack(t, h, spike) // a further duplicate: scored, ignored, nothing to publish
			if h.Pub.Sent() != sent {
				t.Errorf("a duplicate sample published %d more", h.Pub.Sent()-sent)
			}
			msgs := h.Pub.Messages()
			if len(msgs) != 1 {
				t.Fatalf("published %d, want the retried anomaly once", len(msgs))
			}
			// The id is the first attempt's: derived from the sample, as the
			// same sample scored by another instance shows.
			_, h3 := newTestService(t, Config{})
			feed(t, h3, "api", "errors", 100, "")
			ack(t, h3, spike)
			if got := h3.Pub.Messages(); len(got) != 1 || got[0].ID != msgs[0].ID {
				t.Errorf("the same sample scored by another instance gave anomaly %v, want id %s", got, msgs[0].ID)
			}
			// and another sample gives another id
			_, h2 := newTestService(t, Config{})
			e2, spike2 := feed(t, h2, "api", "errors", 100, "")
			if e2.ID == e.ID {
				t.Fatal("test samples share an id")
			}
			ack(t, h2, spike2)
			if got := h2.Pub.Messages(); len(got) != 1 || got[0].ID == msgs[0].ID {
				t.Errorf("anomalies of different samples: %v, want one with another id than %s", got, msgs[0].ID)
			}
		})
	}
}

func TestBadSamplesArePermanent(t *testing.T) {
	s, h := newTestService(t, Config{})
	logEvent, err := event.New(event.KindLog, "api", t0, map[string]string{"message": "hi"})
	if err != nil {
		t.Fatal(err)
	}
	logData, _ := json.Marshal(logEvent)
	noValue, err := event.New(event.KindMetric, "api", t0, map[string]any{"name": "x"})
	if err != nil {
		t.Fatal(err)
	}
	noValueData, _ := json.Marshal(noValue)
	for name, c := range map[string]struct {
		data []byte
		want error
	}{
		"not json":     {[]byte("{"), nil},
		"log event":    {logData, ErrNotMetric},
		"no value":     {noValueData, nil}, // event.Parse already checks body.value
		"empty object": {[]byte("{}"), nil},
	} {
		r := h.FeedRaw(c.data)
		err := r.Err
		if r.Outcome != stagetest.DeadLettered || !errs.IsPermanent(err) {
			t.Errorf("%s: %v (%v), want dead-lettered with a permanent error", name, r.Outcome, err)
		}
		if c.want != nil && !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", name, err, c.want)
		}
	}
	if got := testutil.ToFloat64(s.m.invalid); got != 4 {
		t.Errorf("invalid counter %v, want 4", got)
	}
	if s.Series() != 0 {
		t.Errorf("bad samples created %d series", s.Series())
	}
}

func TestLeastRecentlySeenSeriesIsEvicted(t *testing.T) {
	s, h := newTestService(t, Config{MaxSeries: 3})
	fp := make([]string, 5)
	send := func(i int, at time.Duration) {
		e, data := sample(t, "api", fmt.Sprintf("m%d", i), nil, t0.Add(at), 1, "")
		fp[i] = e.Fingerprint
		ack(t, h, data)
	}
	send(0, 0)
	send(1, 0)
	send(2, 0)
	send(0, time.Minute) // 0 is now the most recent; 1 the least
	send(3, 0)
	if s.Series() != 3 {
		t.Fatalf("%d series, max 3", s.Series())
	}
	if _, ok := s.Observations(fp[1]); ok {
		t.Error("series 1, the least recently seen, was kept")
	}
	if n, ok := s.Observations(fp[0]); !ok || n != 2 {
		t.Errorf("series 0: %d observations, in memory %v; want 2, true", n, ok)
	}
	send(4, 0)
	if _, ok := s.Observations(fp[2]); ok {
		t.Error("series 2 should be evicted next")
	}
	if got := testutil.ToFloat64(s.m.evicted); got != 2 {
		t.Errorf("evicted counter %v, want 2", got)
	}
}

// More live series than max_series: each sample of a series sent in turn
// finds it evicted and starts it again, so none ever ends its warm-up and
// the detector scores nothing. That was told only by a counter; the series
// in memory are gauged against the limit, and the eviction is logged when
// it starts, then at most once a minute, naming the limit and its setting.
func TestEvictionByMaxSeriesIsLoggedAndGaugedAgainstTheLimit(t *testing.T) {
	var logs strings.Builder
	clock := &testClock{t: replayNow}
	s, err := newService(Config{MaxSeries: 2}, zerolog.New(&logs), WithClock(clock.now))
	if err != nil {
		t.Fatal(err)
	}
	h := run(t, s, s)
	fp := make([]string, 3)
	round := func(i int, series int) {
		t.Helper()
		for j := range series {
			e, data := sample(t, "api", fmt.Sprintf("m%d", j), nil, t0.Add(time.Duration(i)*time.Minute), 100, "")
			fp[j] = e.Fingerprint
			ack(t, h, data)
		}
	}
	round(0, 2)
	if logs.Len() != 0 {
		t.Fatalf("logged under the limit: %s", logs.String())
	}
	for i := 1; i <= 40; i++ { // past the warm-up of 30 samples
		round(i, 3)
	}
	if got, limit := testutil.ToFloat64(s.m.series), testutil.ToFloat64(s.m.seriesLimit); got != 2 || limit != 2 {
		t.Errorf("series gauge %v against series_limit %v, want 2 against 2", got, limit)
	}
	for j, f := range fp {
		if n, _ := s.Observations(f); n > 1 {
			t.Errorf("series m%d: %d observations, want each sample to start it again", j, n)
		}
	}
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != 1 || !strings.Contains(lines[0], `"level":"warn"`) || !strings.Contains(lines[0], `"setting":"detector.max_series"`) ||
		!strings.Contains(lines[0], `"limit":2`) || !strings.Contains(lines[0], "warm-up") {
		t.Fatalf("log of the evictions within a minute: %q, want one warning naming detector.max_series, its limit and the warm-up", lines)
	}
	clock.add(time.Minute)
	round(41, 1) // m0, evicted by m2, evicts m1
	lines = strings.Split(strings.TrimSpace(logs.String()), "\n")
	evicted := int(testutil.ToFloat64(s.m.evicted))
	if len(lines) != 2 || !strings.Contains(lines[1], fmt.Sprintf(`"evicted":%d`, evicted-1)) {
		t.Errorf("log a minute on: %q, want a second line counting the %d evictions since the first", lines, evicted-1)
	}
}

func TestPipelineChoosesDetectors(t *testing.T) {
	p, err := pipeline.Parse("t.yaml", []byte(`
detect:
  rules:
    - name: wide
      match: {metric: "disk_.*", labels: {env: prod}}
      detectors: {window: 64}
`))
	if err != nil {
		t.Fatal(err)
	}
	s, h := newTestService(t, Config{}, WithPipeline(p))
	send := func(name, env, typ string) *series {
		e, data := sample(t, "db", name, map[string]string{"env": env}, t0, 1, typ)
		ack(t, h, data)
		s.mu.Lock()
		defer s.mu.Unlock()
		ser, _ := s.series.Peek(e.Fingerprint)
		return ser
	}
	if ser := send("disk_used", "prod", ""); ser.route != "wide" || ser.det.Profile().Config().Window != 64 {
		t.Errorf("prod disk: route %s window %d", ser.route, ser.det.Profile().Config().Window)
	}
	if ser := send("disk_used", "dev", ""); ser.route != pipeline.DefaultRoute {
		t.Errorf("dev disk routed to %s", ser.route)
	}
	if ser := send("disk_writes_total", "prod", event.MetricCounter); !ser.det.Profile().Config().Counter || ser.route != "wide" {
		t.Errorf("counter: route %s counter %v", ser.route, ser.det.Profile().Config().Counter)
	}
}

func TestConfigValidate(t *testing.T) {
	if err := (Config{}).Validate(); err != nil {
		t.Fatalf("zero config: %v", err)
	}
	for field, c := range map[string]Config{
		"instance":          {Instance: "a.b"},
		"max_series":        {MaxSeries: -1},
		"max_event_future":  {MaxEventFuture: -time.Second},
		"snapshot.bucket":   {Snapshot: SnapshotConfig{Bucket: "a b"}},
		"snapshot.interval": {Snapshot: SnapshotConfig{Interval: time.Millisecond}},
		"snapshot.max_age":  {Snapshot: SnapshotConfig{Interval: time.Hour, MaxAge: time.Minute}},
		"snapshot.chunk":    {Snapshot: SnapshotConfig{Chunk: 1 << 20}},
		// With the drain after it, a stop would outlast the service's.
		"snapshot.shutdown_timeout": {Snapshot: SnapshotConfig{ShutdownTimeout: 20 * time.Second}},
		"consumer":                  {Consumer: bus.ConsumerConfig{BatchSize: -1}},
	} {
		err := c.Validate()
		if !errors.Is(err, ErrInvalidConfig) || errs.IsPermanent(err) || !strings.Contains(err.Error(), "detector."+field+":") {
			t.Errorf("%s: %v", field, err)
		}
	}
	// over a day, a sample ahead blinds its series longer than any clock
	// mistake explains
	if err := (Config{MaxEventFuture: 25 * time.Hour}).Validate(); !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "detector.max_event_future:") {
		t.Errorf("max_event_future 25h: %v", err)
	}
	if _, err := newService(Config{Pipeline: "/nonexistent/pipeline.yaml"}, zerolog.Nop()); err == nil {
		t.Error("a missing pipeline file was accepted")
	}
	// A pipeline missing or wrong is a configuration error (exit code 2,
	// before anything connects), naming the key and the file's problem.
	bad := filepath.Join(t.TempDir(), "p.yaml")
	if err := os.WriteFile(bad, []byte("detect:\n  bogus: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/nonexistent/pipeline.yaml", bad} {
		err := Config{Pipeline: path}.Validate()
		if !errors.Is(err, config.ErrInvalidConfig) || !strings.Contains(err.Error(), "detector.pipeline") || !strings.Contains(err.Error(), path) {
			t.Errorf("pipeline %s: %v, want a configuration error naming detector.pipeline and the file", path, err)
		}
	}
}

// The runner scores samples one at a time (a series' samples in stream
// order), keeps today's bound of anomalies kept for a retry, ticks every
// second and snapshots on the snapshot settings, holding the acks of
// transitions until a snapshot holds them, and ticks during a snapshot.
func TestStageConfig(t *testing.T) {
	s := newCore(t, Config{Snapshot: SnapshotConfig{Interval: 7 * time.Second, ShutdownTimeout: 3 * time.Second}})
	want := stage.Config{Name: "detector", Workers: 1, MaxKept: 10_000, TickEvery: time.Second,
		CheckpointEvery: 7 * time.Second, CheckpointTimeout: 3 * time.Second, HoldAcks: true, TicksDuringCheckpoint: true}
	if got := s.stageConfig(); got != want {
		t.Errorf("stage config %+v, want %+v", got, want)
	}
	s = newCore(t, Config{Snapshot: SnapshotConfig{Disabled: true}})
	if s.stageConfig().HoldAcks {
		t.Error("acks held without snapshots: nothing would release them")
	}
	var proc any = s
	if _, ok := proc.(stage.Checkpointer); ok {
		t.Error("the service is a Checkpointer by itself: with snapshots disabled the runner would checkpoint nothing")
	}
	if _, ok := any(snapshotting{s}).(stage.Checkpointer); !ok {
		t.Error("the service with snapshots is not a Checkpointer")
	}
}

// Every detector kind explains its window in an anomaly event; a kind added
// to pkg/detect without one would publish anomalies with an empty window.
func TestEveryKindHasAWindow(t *testing.T) {
	cfg := detect.DefaultConfig()
	for k := detect.Kind(1); k < detect.NumKinds; k++ {
		if window(cfg, k) == "" {
			t.Errorf("no window text for detector kind %s", k)
		}
	}
}

// A sample the detector cannot score is acked, and counted by why: a value
// out of range, a timestamp before the series' last, the same timestamp
// again.
func TestIgnoredSamplesAreCounted(t *testing.T) {
	s, h := newTestService(t, Config{})
	labels := map[string]string{"instance": "web-1"}
	for i, v := range normal(20, 2) {
		_, data := sample(t, "checkout", "latency_ms", labels, t0.Add(time.Duration(i)*time.Minute), v, "")
		ack(t, h, data)
	}
	for _, c := range []struct {
		at    time.Duration
		value float64
	}{{20 * time.Minute, 1e200}, {5 * time.Minute, 100}, {19 * time.Minute, 100}} {
		_, data := sample(t, "checkout", "latency_ms", labels, t0.Add(c.at), c.value, "")
		ack(t, h, data)
	}
	for _, reason := range []string{"invalid_value", "out_of_order", "duplicate"} {
		if n := testutil.ToFloat64(s.m.ignored.WithLabelValues(reason)); n != 1 {
			t.Errorf("samples_ignored_total{reason=%q} = %v, want 1", reason, n)
		}
	}
}

// Prometheus remote-writes its alerts' own state series, ALERTS (1 while
// an alert is pending or firing) and ALERTS_FOR_STATE (the Unix time the
// alert became active): the alerts themselves, which reach the correlator
// from Alertmanager, not measurements. Scored, every alert that fired
// again (a new activation time) opened an anomaly, and with it a second
// incident beside the alert's ("ALERTS_FOR_STATE on payments-db").
func TestPrometheusAlertStateSeriesAreNotScored(t *testing.T) {
	s, h := newTestService(t, Config{})
	labels := map[string]string{"alertname": "ReplicationLag", "instance": "db-1"}
	activeAt := 1796594000.0
	for i := range 150 {
		if i == 100 { // resolved, then active again: a new activation time
			activeAt += 600
		}
		for _, name := range []string{"ALERTS_FOR_STATE", "ALERTS"} {
			v := activeAt
			if name == "ALERTS" {
				v = 1
			}
			_, data := sample(t, "payments-db", name, labels, t0.Add(time.Duration(i)*15*time.Second), v, "")
			ack(t, h, data)
		}
	}
	if msgs := h.Pub.Messages(); len(msgs) != 0 {
		t.Fatalf("%d anomalies published on Prometheus's alert state series (first %s), want none", len(msgs), msgs[0].Data)
	}
	if n := testutil.ToFloat64(s.m.ignored.WithLabelValues("alert_state")); n != 300 {
		t.Errorf(`samples_ignored_total{reason="alert_state"} = %v, want 300`, n)
	}
}

// Prometheus remote-writes its scrape-health series with each target's own
// (scrape_duration_seconds, scrape_samples_scraped, ...): about the
// monitoring, not the service. Scored, the jitter of a scrape's duration
// opened anomaly incidents on a quiet service ("scrape_duration_seconds on
// shop"). The default pipeline's rule prometheus-scrape ignores them; the
// same spike on the service's own metric is still an anomaly.
func TestDefaultPipelineDoesNotScorePrometheusScrapeHealth(t *testing.T) {
	s, h := newTestService(t, Config{Pipeline: "../../pipelines/default.yaml"})
	labels := map[string]string{"job": "shop", "instance": "shop-1:8080"}
	values := append(normal(150, 4), 125) // 25σ
	anomalies := func(metric string) int {
		before := len(h.Pub.Messages())
		for i, v := range values {
			_, data := sample(t, "shop", metric, labels, t0.Add(time.Duration(i)*15*time.Second), v/1000, "")
			ack(t, h, data)
		}
		return len(h.Pub.Messages()) - before
	}
	if n := anomalies("scrape_duration_seconds"); n != 0 {
		t.Errorf("%d anomalies on a spike of scrape_duration_seconds, want none: Prometheus's scrape health is not the service's", n)
	}
	if n := testutil.ToFloat64(s.m.ignored.WithLabelValues("rule")); n != float64(len(values)) {
		t.Errorf(`samples_ignored_total{reason="rule"} = %v, want %d`, n, len(values))
	}
	if n := s.Series(); n != 0 {
		t.Errorf("%d series in memory after samples of an ignored series only, want 0", n)
	}
	if n := anomalies("http_request_duration_seconds"); n != 1 {
		t.Errorf("%d anomalies on the same spike of http_request_duration_seconds, want 1 (the open)", n)
	}
}

// node_exporter exposes the counters of /proc/net/netstat untyped, and
// remote-write carries their samples as gauges. Scored as a gauge, a
// counter of a quiet machine (a few datagrams now and then, steps of 2 to
// 4) had a level-shift episode open at a step that never ended (a trial
// against a real node_exporter; these are its steps; since an episode
// ends once the series settles on a new level, such a gauge's episodes
// end too, but its steps still open them). The built-in rule
// untyped-counters scores the rate, whose episodes end.
func TestUntypedCounterIsScoredByItsRate(t *testing.T) {
	var values []float64
	for _, run := range []struct{ value, samples int }{{393, 35}, {395, 4}, {397, 7}, {401, 15}, {403, 3}, {407, 30}, {409, 4}, {411, 37}, {413, 7}} {
		for range run.samples {
			values = append(values, float64(run.value))
		}
	}
	// open is how many episodes are open after the samples, and how many
	// were opened.
	open := func(p *pipeline.Pipeline) (open, opened int) {
		_, h := newTestService(t, Config{}, WithPipeline(p))
		for i, v := range values {
			_, data := sample(t, "node", "node_netstat_Udp_InDatagrams", map[string]string{"job": "node"}, t0.Add(time.Duration(i)*15*time.Second), v, event.MetricGauge)
			ack(t, h, data)
		}
		episodes := map[string]bool{}
		for _, m := range h.Pub.Messages() {
			var e struct {
				Body event.AnomalyBody `json:"body"`
			}
			if err := json.Unmarshal(m.Data, &e); err != nil {
				t.Fatal(err)
			}
			episodes[e.Body.EpisodeID] = e.Body.Episode != event.EpisodeClose
		}
		for _, o := range episodes {
			if o {
				open++
			}
		}
		return open, len(episodes)
	}
	if n, _ := open(pipeline.Default()); n != 0 {
		t.Errorf("%d anomaly episodes still open after an untyped counter's quiet steps, with the built-in rules; want none", n)
	}
	none, err := pipeline.Parse("none.yaml", []byte("detect:\n  rules: []\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, n := open(none); n == 0 {
		t.Error("no episode opened by the same samples scored as a gauge: the test no longer shows what the rule is for")
	}
}

// A series a rule ignores is not taken by a group that lists its metric
// either: the group's rows go without that channel. (A rule that ignores
// the metric on every service is refused with such a group.)
func TestIgnoredSeriesIsNotTakenByGroups(t *testing.T) {
	p, err := pipeline.Parse("t.yaml", []byte(`
detect:
  rules:
    - name: quiet
      match: {metric: pressure, service: plant}
      ignore: true
  groups:
    - name: pump
      by: [host]
      channels: [flow, pressure]
`))
	if err != nil {
		t.Fatal(err)
	}
	s, h := newTestService(t, Config{}, WithPipeline(p))
	for i := range 5 {
		_, data := sample(t, "plant", "pressure", map[string]string{"host": "p1"}, t0.Add(time.Duration(i)*time.Minute), 3, "")
		ack(t, h, data)
	}
	if n := s.Assets(); n != 0 {
		t.Errorf("%d group assets after samples of an ignored series only, want 0", n)
	}
	if n := testutil.ToFloat64(s.m.ignored.WithLabelValues("rule")); n != 5 {
		t.Errorf(`samples_ignored_total{reason="rule"} = %v, want 5`, n)
	}
}

// TestSeriesOfReplacedPodsAreForgottenAfterSnapshotMaxAge runs a month of
// pods replaced every day, each a series of its own: a series that sent
// nothing for snapshot.max_age is dropped from memory, as its snapshot
// expires from the bucket then, so that memory holds the series of the
// last max_age, not of every pod the month had (up to max_series, whose
// evictions would warn about series long gone). None of it counts as an
// eviction for max_series.
func TestSeriesOfReplacedPodsAreForgottenAfterSnapshotMaxAge(t *testing.T) {
	var logs strings.Builder
	clock := &testClock{t: t0}
	s, err := newService(Config{}, zerolog.New(&logs), WithClock(clock.now))
	if err != nil {
		t.Fatal(err)
	}
	held := monthOfReplacedPods(t, s, clock, []string{"cpu"}, func(int, int) float64 { return 100 }, s.series.Len)
	t.Logf("series held: day 7 %d, day 30 %d", held[7], held[30])
	if want := (maxAgeDays(s) + 1) * replacedPods; held[30] > want {
		t.Errorf("series held at day 30: %d, want at most %d (the pods of the last %d days); day 7: %d", held[30], want, maxAgeDays(s)+1, held[7])
	}
	if n := testutil.ToFloat64(s.m.evicted); n != 0 || strings.Contains(logs.String(), "max_series") {
		t.Errorf("%v series counted as evicted for max_series (log %q): a series gone silent is no eviction", n, logs.String())
	}
}

// replacedPods is how many pods monthOfReplacedPods replaces a day.
const replacedPods = 20

// monthOfReplacedPods feeds s, on clock, a month of replacedPods pods
// replaced every day, each sending metrics hourly (value(channel, hour)),
// with a tick after each hour, and returns what held() counts at the end
// of each day (1 to 30).
func monthOfReplacedPods(t *testing.T, s *Service, clock *testClock, metrics []string, value func(c, hour int) float64, held func() int) map[int]int {
	t.Helper()
	h := run(t, s, s)
	days := map[int]int{}
	for day := range 30 {
		for hour := range 24 {
			at := t0.Add(time.Duration(day*24+hour) * time.Hour)
			clock.t = at
			for p := range replacedPods {
				for c, name := range metrics {
					_, data := sample(t, "api", name, map[string]string{"pod": fmt.Sprintf("api-%d-%d", day, p)}, at, value(c, hour), "")
					ack(t, h, data)
				}
			}
			if err := h.Tick(clock.now()); err != nil {
				t.Fatal(err)
			}
		}
		days[day+1] = held()
	}
	return days
}

// maxAgeDays is s's snapshot.max_age in whole days.
func maxAgeDays(s *Service) int { return int(s.cfg.Snapshot.MaxAge / (24 * time.Hour)) }
