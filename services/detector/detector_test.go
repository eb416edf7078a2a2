package detector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/bus"
	"github.com/aiops-dev/aiops/pkg/detect"
	"github.com/aiops-dev/aiops/pkg/detect/pipeline"
	"github.com/aiops-dev/aiops/pkg/errs"
	"github.com/aiops-dev/aiops/pkg/event"
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

// fakePublisher acks (or fails) at once and records what it published.
type fakePublisher struct {
	mu   sync.Mutex
	fail int // the next fail publishes fail
	msgs []bus.Message
}

type future struct {
	ok  chan *jetstream.PubAck
	err chan error
	msg *nats.Msg
}

func (f *future) Ok() <-chan *jetstream.PubAck { return f.ok }
func (f *future) Err() <-chan error            { return f.err }
func (f *future) Msg() *nats.Msg               { return f.msg }

func (p *fakePublisher) Publish(_ context.Context, m bus.Message) (jetstream.PubAckFuture, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f := &future{ok: make(chan *jetstream.PubAck, 1), err: make(chan error, 1), msg: &nats.Msg{Subject: m.Subject, Data: m.Data}}
	if p.fail > 0 {
		p.fail--
		f.err <- errors.New("fake: no ack")
		return f, nil
	}
	p.msgs = append(p.msgs, m)
	f.ok <- &jetstream.PubAck{Stream: "EVENTS"}
	return f, nil
}

func (p *fakePublisher) published() []bus.Message {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]bus.Message(nil), p.msgs...)
}

// handle runs Handle and waits for its result.
func handle(s *Service, data []byte) error {
	res := make(chan error, 1)
	s.Handle(context.Background(), &bus.Delivery{Subject: "events.metric.x", Data: data, Delivered: 1}, func(err error) { res <- err })
	select {
	case err := <-res:
		return err
	case <-time.After(10 * time.Second):
		return errors.New("done not called within 10s")
	}
}

func newTestService(t testing.TB, cfg Config, opts ...Option) (*Service, *fakePublisher) {
	t.Helper()
	pub := &fakePublisher{}
	s, err := newService(cfg, zerolog.Nop(), append([]Option{WithPublisher(pub), WithClock(func() time.Time { return t0 })}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return s, pub
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

func TestHandleSpikePublishesExplainedAnomaly(t *testing.T) {
	s, pub := newTestService(t, Config{})
	labels := map[string]string{"instance": "web-1"}
	values := normal(150, 1)
	values = append(values, 125) // 25σ
	var spike *event.Envelope
	for i, v := range values {
		e, data := sample(t, "checkout", "latency_ms", labels, t0.Add(time.Duration(i)*time.Minute), v, "")
		if err := handle(s, data); err != nil {
			t.Fatalf("sample %d: %v", i, err)
		}
		if i < len(values)-1 && len(pub.published()) > 0 {
			t.Fatalf("anomaly published on normal sample %d (value %.2f)", i, v)
		}
		spike = e
	}
	msgs := pub.published()
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
}

// feed sends n normal samples of one series, then returns the envelope and
// bytes of a spike after them.
func feed(t *testing.T, s *Service, service, name string, n int, typ string) (*event.Envelope, []byte) {
	t.Helper()
	for i, v := range normal(n, 3) {
		_, data := sample(t, service, name, nil, t0.Add(time.Duration(i)*time.Minute), v, typ)
		if err := handle(s, data); err != nil {
			t.Fatalf("sample %d: %v", i, err)
		}
	}
	return sample(t, service, name, nil, t0.Add(time.Duration(n)*time.Minute), 150, typ)
}

// A failed publish reports a transient error; the redelivered sample (which
// the detector itself ignores as a duplicate timestamp) republishes the
// same anomaly under the same id.
func TestFailedPublishIsRetriedWithTheSameID(t *testing.T) {
	s, pub := newTestService(t, Config{})
	_, spike := feed(t, s, "api", "errors", 100, "")
	pub.fail = 1
	err := handle(s, spike)
	if err == nil || errs.IsPermanent(err) {
		t.Fatalf("failed publish: %v, want a transient error", err)
	}
	if err := handle(s, spike); err != nil {
		t.Fatalf("redelivery: %v", err)
	}
	if err := handle(s, spike); err != nil { // a further duplicate: nothing to publish
		t.Fatalf("second redelivery: %v", err)
	}
	msgs := pub.published()
	if len(msgs) != 1 {
		t.Fatalf("published %d, want the retried anomaly once", len(msgs))
	}
	// The id is the same as the first attempt's: derived from the sample.
	e, _ := event.Parse(spike)
	s2, pub2 := newTestService(t, Config{})
	_, spike2 := feed(t, s2, "api", "errors", 100, "")
	if err := handle(s2, spike2); err != nil {
		t.Fatal(err)
	}
	e2, _ := event.Parse(spike2)
	if e.ID == e2.ID {
		t.Fatal("test samples share an id")
	}
	if msgs[0].ID == pub2.published()[0].ID {
		t.Error("anomalies of different samples share an id")
	}
	s3, pub3 := newTestService(t, Config{})
	feed(t, s3, "api", "errors", 100, "")
	if err := handle(s3, spike); err != nil {
		t.Fatal(err)
	}
	if got := pub3.published(); len(got) != 1 || got[0].ID != msgs[0].ID {
		t.Errorf("the same sample scored by another instance gave anomaly %v, want id %s", got, msgs[0].ID)
	}
}

func TestBadSamplesArePermanent(t *testing.T) {
	s, _ := newTestService(t, Config{})
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
		err := handle(s, c.data)
		if err == nil || !errs.IsPermanent(err) {
			t.Errorf("%s: %v, want a permanent error", name, err)
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
	s, _ := newTestService(t, Config{MaxSeries: 3})
	fp := make([]string, 5)
	send := func(i int, at time.Duration) {
		e, data := sample(t, "api", fmt.Sprintf("m%d", i), nil, t0.Add(at), 1, "")
		fp[i] = e.Fingerprint
		if err := handle(s, data); err != nil {
			t.Fatal(err)
		}
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
	s, _ := newTestService(t, Config{}, WithPipeline(p))
	send := func(name, env, typ string) *series {
		e, data := sample(t, "db", name, map[string]string{"env": env}, t0, 1, typ)
		if err := handle(s, data); err != nil {
			t.Fatal(err)
		}
		return s.series[e.Fingerprint]
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
		"snapshot.bucket":   {Snapshot: SnapshotConfig{Bucket: "a b"}},
		"snapshot.interval": {Snapshot: SnapshotConfig{Interval: time.Millisecond}},
		"snapshot.max_age":  {Snapshot: SnapshotConfig{Interval: time.Hour, MaxAge: time.Minute}},
		"snapshot.chunk":    {Snapshot: SnapshotConfig{Chunk: 1 << 20}},
		"consumer":          {Consumer: bus.ConsumerConfig{BatchSize: -1}},
	} {
		err := c.Validate()
		if !errors.Is(err, ErrInvalidConfig) || !errs.IsPermanent(err) || !strings.Contains(err.Error(), field+":") {
			t.Errorf("%s: %v", field, err)
		}
	}
	if _, err := newService(Config{Pipeline: "/nonexistent/pipeline.yaml"}, zerolog.Nop()); err == nil {
		t.Error("a missing pipeline file was accepted")
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
