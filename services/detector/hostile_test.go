package detector

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/correlate"
	"github.com/aiops-dev/aiops/pkg/detect"
	"github.com/aiops-dev/aiops/pkg/detect/pipeline"
	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/pkg/stage/stagetest"
)

// restoreInto loads what s.encode wrote for key into s, as Restore does
// with a bucket's value.
func restoreInto(t *testing.T, s *Service, key string, v []byte) {
	t.Helper()
	ser, err := s.decode(key, v)
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.series.Add(key, ser)
	if ser.last != nil {
		ser.seen = s.now().UnixNano()
		s.open[ser] = struct{}{}
	}
}

// snapshotOf is the snapshot value of the series of fingerprint fp in s.
func snapshotOf(t *testing.T, s *Service, fp string) []byte {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	ser, ok := s.series.Peek(seriesKey(fp))
	if !ok {
		t.Fatalf("series %s not in memory", fp)
	}
	v, err := s.encode(nil, ser)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func routeOf(s *Service, fp string) (string, int, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ser, ok := s.series.Peek(seriesKey(fp))
	if !ok {
		return "", 0, 0
	}
	cfg := ser.det.Profile().Config()
	return ser.route, cfg.Window, ser.det.Observations()
}

// A rule added to the pipeline takes the series it matches at their next
// sample, also those restored from a snapshot written under another route:
// the snapshot names the route that chose the series when it was created,
// and the labels that choose it are only at hand with a sample. A rule of
// the same shape keeps the series' baseline (its thresholds change, as
// across a restart); one of another shape starts it again.
func TestRestoredSeriesTakesTheCurrentRoute(t *testing.T) {
	for _, c := range []struct {
		name, detectors string
		window, obs     int
	}{
		{"same shape", "{z_threshold: 8}", 32, 41},
		{"other shape", "{window: 64}", 64, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			old, h := newTestService(t, Config{})
			var fp string
			for i, v := range normal(40, 9) {
				e, data := sample(t, "db", "latency_ms", nil, t0.Add(time.Duration(i)*time.Minute), v, "")
				ack(t, h, data)
				fp = e.Fingerprint
			}
			v := snapshotOf(t, old, fp)

			p, err := pipeline.Parse("t.yaml", []byte("detect:\n  rules:\n    - name: latency\n      match: {metric: latency_ms}\n      detectors: "+c.detectors+"\n"))
			if err != nil {
				t.Fatal(err)
			}
			s, h2 := newTestService(t, Config{}, WithPipeline(p))
			restoreInto(t, s, seriesKey(fp), v)
			_, data := sample(t, "db", "latency_ms", nil, t0.Add(40*time.Minute), 100, "")
			ack(t, h2, data)
			route, window, obs := routeOf(s, fp)
			if route != "latency" || window != c.window || obs != c.obs {
				t.Errorf("restored series after its next sample: route %q window %d observations %d; want latency, %d, %d",
					route, window, obs, c.window, c.obs)
			}
			if n := testutil.ToFloat64(s.m.evicted); n != 0 {
				t.Errorf("series_evicted_total %v after a change of route, want 0 (nothing was evicted)", n)
			}
		})
	}
}

// A series restored in an episode whose new route has another shape warms
// up again; the episode it had open is closed at its last sample, not left
// open for ever.
func TestRerouteClosesTheEpisodeOfTheOldShape(t *testing.T) {
	clock := &testClock{t: t0.Add(3 * time.Hour)}
	old, h := newTestService(t, Config{}, WithClock(clock.now))
	values := append(normal(100, 5), 150, 151)
	var last *event.Envelope
	for i, v := range values {
		e, data := sample(t, "db", "latency_ms", nil, t0.Add(time.Duration(i)*time.Minute), v, "")
		ack(t, h, data)
		last = e
	}
	if n := len(h.Pub.Messages()); n != 1 {
		t.Fatalf("%d anomalies before the restart, want the open", n)
	}
	v := snapshotOf(t, old, last.Fingerprint)

	p, err := pipeline.Parse("t.yaml", []byte("detect:\n  rules:\n    - name: latency\n      match: {metric: latency_ms}\n      detectors: {window: 64}\n"))
	if err != nil {
		t.Fatal(err)
	}
	s, h2 := newTestService(t, Config{}, WithPipeline(p), WithClock(clock.now))
	restoreInto(t, s, seriesKey(last.Fingerprint), v)
	_, data := sample(t, "db", "latency_ms", nil, t0.Add(time.Duration(len(values))*time.Minute), 100, "")
	ack(t, h2, data)
	if err := h2.Tick(clock.now()); err != nil {
		t.Fatal(err)
	}
	got := h2.Pub.Events(t)
	if len(got) != 1 {
		t.Fatalf("%d events after the change of route, want the close of the old episode", len(got))
	}
	var b event.AnomalyBody
	if err := got[0].DecodeBody(&b); err != nil {
		t.Fatal(err)
	}
	if b.Episode != event.EpisodeClose || got[0].Links[0] != last.ID {
		t.Errorf("%s linked to %v, want a close linked to the last sample %s (reason %q)", b.Episode, got[0].Links, last.ID, b.Reason)
	}
}

// A series restored in an episode, from a snapshot written under a route
// that scored it, that a rule added since ignores (ignore: true): its next
// sample is not scored, and the episode its snapshot held open is closed at
// its last sample (an open anomaly with no close would hold its incident
// open for ever), as for a route of another shape; the series leaves
// memory without counting as an eviction, and once the close is stored its
// snapshot is rewritten with the episode ended, so that a restart does not
// close it again.
func TestRestoredSeriesANewRuleIgnoresHasItsEpisodeClosed(t *testing.T) {
	clock := &testClock{t: t0.Add(3 * time.Hour)}
	scored, err := pipeline.Parse("scores-everything.yaml", []byte("detect:\n  rules: []\n"))
	if err != nil {
		t.Fatal(err)
	}
	old, h := newTestService(t, Config{}, WithPipeline(scored), WithClock(clock.now))
	last := openEpisode(t, h, clock, "scrape_duration_seconds", t0)
	if n := len(h.Pub.Messages()); n != 1 {
		t.Fatalf("%d anomalies before the restart, want the open", n)
	}
	v := snapshotOf(t, old, last.Fingerprint)

	p, err := pipeline.Load("../../pipelines/default.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s, h2 := newTestService(t, Config{}, WithPipeline(p), WithClock(clock.now))
	kv := &kvDeletes{}
	s.kv = kv
	key := seriesKey(last.Fingerprint)
	restoreInto(t, s, key, v)
	_, data := sample(t, "db", "scrape_duration_seconds", map[string]string{"instance": "db-1"}, last.Time.Add(time.Minute), 150, "")
	ack(t, h2, data)
	if err := h2.Tick(clock.now()); err != nil {
		t.Fatal(err)
	}
	got := episodeEvents(t, h2)
	if len(got) != 1 {
		t.Fatalf("%d events after the series' rule came to ignore it, want the close of its episode", len(got))
	}
	if b := got[0].body; b.Episode != event.EpisodeClose || got[0].env.Links[0] != last.ID || !got[0].env.Time.Equal(last.Time) ||
		!strings.Contains(b.Reason, "not scored any more (rule prometheus-scrape has ignore: true)") {
		t.Errorf("%s at %v linked to %v (%q), want a close at the last sample %s (%v) saying why", b.Episode, got[0].env.Time, got[0].env.Links, b.Reason, last.ID, last.Time)
	}
	if n := s.Series(); n != 0 {
		t.Errorf("%d series in memory, want the ignored one dropped", n)
	}
	if n := testutil.ToFloat64(s.m.evicted); n != 0 {
		t.Errorf("series_evicted_total %v, want 0 (nothing was evicted for max_series)", n)
	}
	if n := testutil.ToFloat64(s.m.ignored.WithLabelValues("rule")); n != 1 {
		t.Errorf(`samples_ignored_total{reason="rule"} = %v, want 1`, n)
	}
	if err := h2.Tick(clock.now()); err != nil { // the close is stored: the snapshot is rewritten
		t.Fatal(err)
	}
	rewritten, ok := kv.put[s.keyOf(key)]
	if !ok {
		t.Fatalf("snapshot %s not rewritten (deleted %v, written %d)", key, kv.deleted, len(kv.put))
	}
	if h, err := decodeHeader(key, rewritten); err != nil || h.last != nil {
		t.Errorf("the rewritten snapshot: %v, want its episode ended", err)
	} else if _, open, err := detect.OpenEpisodeOf(h.state); err != nil || open {
		t.Errorf("the rewritten snapshot holds an open episode (%v)", err)
	}
}

// counterSamples sends a counter rising by 60 a minute (1/s), then the
// hostile values, then the rise again; it returns the events published.
func counterSamples(t *testing.T, h *stagetest.Harness, hostile ...float64) []*event.Envelope {
	t.Helper()
	at, v := 0, 1000.0
	send := func(x float64) {
		_, data := sample(t, "api", "requests_total", nil, t0.Add(time.Duration(at)*time.Minute), x, event.MetricCounter)
		ack(t, h, data)
		at++
	}
	for range 80 {
		v += 60
		send(v)
	}
	for _, x := range hostile {
		v += 60 // the counter goes on; the sample says x
		send(x)
	}
	for range 20 {
		v += 60
		send(v)
	}
	return h.Pub.Events(t)
}

// A counter never goes below zero: a negative value is no reset but a bad
// sample, and taking it for one made a negative rate (one anomaly) and, at
// the next sample, a rise from it of the whole range (another).
func TestNegativeCounterValueIsIgnored(t *testing.T) {
	_, h := newTestService(t, Config{})
	if got := counterSamples(t, h); len(got) != 0 {
		t.Fatalf("%d anomalies on a steady counter", len(got))
	}
	s, h := newTestService(t, Config{})
	if got := counterSamples(t, h, -1e9); len(got) != 0 {
		var b event.AnomalyBody
		_ = got[0].DecodeBody(&b)
		t.Errorf("a negative counter value made %d anomalies, the first %q", len(got), b.Reason)
	}
	if n := testutil.ToFloat64(s.m.ignored.WithLabelValues("invalid_value")); n != 1 {
		t.Errorf("samples_ignored_total{reason=invalid_value} = %v, want 1", n)
	}
}

// A sample the detector cannot score by its value creates no series: a
// flood of them under new fingerprints would otherwise evict the series
// that are scored (with their episodes and warm-up).
func TestInvalidValueCreatesNoSeries(t *testing.T) {
	s, h := newTestService(t, Config{MaxSeries: 2})
	e, data := sample(t, "api", "latency_ms", nil, t0, 1, "")
	ack(t, h, data)
	for i := range 5 {
		_, data := sample(t, "api", "junk", map[string]string{"i": string(rune('a' + i))}, t0, 1e200, "")
		ack(t, h, data)
		_, data = sample(t, "api", "junk_total", map[string]string{"i": string(rune('a' + i))}, t0, -5, event.MetricCounter)
		ack(t, h, data)
	}
	if _, ok := s.Observations(e.Fingerprint); !ok || s.Series() != 1 {
		t.Errorf("%d series in memory, the scored one kept: %v; want 1, true", s.Series(), ok)
	}
}

// rawSample is a metric sample as a producer that leaves the metric name
// out of the labels sends it: its fingerprint is that of the labels.
func rawSample(t *testing.T, service, name string, at time.Time, v float64) []byte {
	t.Helper()
	e, err := event.New(event.KindMetric, service, at, event.MetricBody{Name: name, Value: &v})
	if err != nil {
		t.Fatal(err)
	}
	e.Labels = map[string]string{"instance": "db-1"}
	e.Fingerprint = ""
	e.Normalize(at)
	data, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// Two metrics of one label set whose producer left __name__ out have one
// fingerprint; each is still its own series (one detector each): taken as
// one, their samples alternate between two levels and every one of them
// is scored against the other metric's.
func TestMetricsSharingAFingerprintAreTwoSeries(t *testing.T) {
	s, h := newTestService(t, Config{})
	for i := range 100 {
		at := t0.Add(time.Duration(i) * time.Minute)
		ack(t, h, rawSample(t, "db", "cpu_ratio", at, 0.2+0.001*float64(i%3)))
		ack(t, h, rawSample(t, "db", "connections", at.Add(time.Second), 500+float64(i%5)))
	}
	if got := len(h.Pub.Messages()); got != 0 {
		t.Errorf("%d anomalies on two steady metrics", got)
	}
	if n := s.Series(); n != 2 {
		t.Errorf("%d series for two metrics, want 2", n)
	}
	// 30 above a series that moves by 4: scored against its own samples,
	// not inside the band of both metrics' values
	ack(t, h, rawSample(t, "db", "connections", t0.Add(100*time.Minute), 534))
	if got := len(h.Pub.Messages()); got != 1 {
		t.Errorf("%d anomalies for a jump of connections, want 1", got)
	}
}

// Two metrics of one label set whose producer left __name__ out share a
// fingerprint, and their anomalies named it as their series: the
// correlator took both for one member, whose state each metric's
// episodes overwrote. Each metric is its own member; a series whose
// labels carry __name__ keeps its fingerprint as its series, so members
// of incidents from before stay what they were.
func TestMetricsSharingAFingerprintAreTwoMembers(t *testing.T) {
	_, h := newTestService(t, Config{})
	var named *event.Envelope
	for i := range 101 {
		at := t0.Add(time.Duration(i) * time.Minute)
		cpu, conns, latency := 0.2+0.001*float64(i%3), 500+float64(i%5), 100+float64(i%4)
		if i == 100 {
			cpu, conns, latency = 0.9, 900, 300
		}
		ack(t, h, rawSample(t, "db", "cpu_ratio", at, cpu))
		ack(t, h, rawSample(t, "db", "connections", at.Add(time.Second), conns))
		e, data := sample(t, "db", "latency_ms", map[string]string{"instance": "db-1"}, at.Add(2*time.Second), latency, "")
		ack(t, h, data)
		named = e
	}
	members := map[string]string{} // member fingerprint -> metric
	for _, ev := range episodeEvents(t, h) {
		sig, ok, err := correlate.SignalOf(ev.env)
		if !ok || err != nil {
			t.Fatalf("anomaly %s is no signal: %v", ev.env.ID, err)
		}
		if m, dup := members[sig.Fingerprint]; dup {
			t.Errorf("%s and %s are one member %s", m, ev.body.Metric, sig.Fingerprint)
		}
		members[sig.Fingerprint] = ev.body.Metric
		if ev.body.Metric == "latency_ms" && ev.body.Series != named.Fingerprint {
			t.Errorf("series %q of a sample with __name__, want its fingerprint %s", ev.body.Series, named.Fingerprint)
		}
	}
	if len(members) != 3 {
		t.Errorf("%d members %v, want the three metrics' episodes", len(members), members)
	}
}

// One sample stamped ahead (a producer's clock, a timestamp in the wrong
// unit) became its series' event time: every real sample after it was out
// of order, so the series, and its asset in a group, scored nothing until
// the clock caught up with it (up to a day, the bound before
// max_event_future), and its snapshot kept it so across restarts. Such a
// sample is ignored and counted; the series and its group go on, and a
// spike after it is an anomaly.
func TestSampleAheadOfTheClockDoesNotStopTheSeries(t *testing.T) {
	for _, ahead := range []time.Duration{6 * time.Hour, time.Date(2105, 1, 1, 0, 0, 0, 0, time.UTC).Sub(t0)} {
		t.Run(ahead.String(), func(t *testing.T) {
			clock := &testClock{t: t0}
			s, h := newTestService(t, Config{}, WithPipeline(groupPipeline(t, []string{"latency_ms", "errors"}, "")), WithClock(clock.now))
			values := append(normal(100, 4), 150)
			var fp string
			for i, v := range values {
				at := t0.Add(time.Duration(i) * time.Minute)
				clock.t = at // live: the samples come as they are taken
				if i == 50 {
					_, data := sample(t, "db", "latency_ms", nil, at.Add(ahead), 100, "")
					ack(t, h, data)
				}
				e, data := sample(t, "db", "latency_ms", nil, at, v, "")
				ack(t, h, data)
				_, data = sample(t, "db", "errors", nil, at, 1, "")
				ack(t, h, data)
				fp = e.Fingerprint
			}
			if n, _ := s.Observations(fp); n != len(values) {
				t.Errorf("%d observations of %d samples", n, len(values))
			}
			if n := testutil.ToFloat64(s.m.ignored.WithLabelValues("future")); n != 1 {
				t.Errorf("samples_ignored_total{reason=future} = %v, want 1", n)
			}
			if n := testutil.ToFloat64(s.m.ignored.WithLabelValues("out_of_order")); n != 0 {
				t.Errorf("samples_ignored_total{reason=out_of_order} = %v, want 0", n)
			}
			if n := testutil.ToFloat64(s.m.groupLate); n != 0 {
				t.Errorf("group_samples_late_total %v, want 0", n)
			}
			got := episodeEvents(t, h)
			if len(got) == 0 || got[0].body.Metric != "latency_ms" || got[0].body.Episode != event.EpisodeOpen ||
				!got[0].env.Time.Equal(t0.Add(100*time.Minute)) {
				t.Fatalf("%d anomalies, want the spike after the sample ahead to open an episode of latency_ms", len(got))
			}
		})
	}
}

// A sample up to max_event_future ahead is scored; one further ahead is
// not, and is told in the log at most once a minute, with how many there
// were, the setting to raise, and no value or label of the sample.
func TestSampleAheadIsBoundedByMaxEventFuture(t *testing.T) {
	var logs strings.Builder
	clock := &testClock{t: t0}
	s, err := newService(Config{MaxEventFuture: 10 * time.Minute}, zerolog.New(&logs), WithClock(clock.now))
	if err != nil {
		t.Fatal(err)
	}
	h := run(t, s, s)
	send := func(name string, at time.Time) {
		t.Helper()
		_, data := sample(t, "db", name, map[string]string{"secret_label": "s3cr3t"}, at, 123.456, "")
		ack(t, h, data)
	}
	future := func() float64 { return testutil.ToFloat64(s.m.ignored.WithLabelValues("future")) }
	send("a", t0.Add(10*time.Minute)) // at the bound: scored
	if n := future(); n != 0 {
		t.Fatalf("a sample max_event_future ahead was not scored (future %v)", n)
	}
	send("b", t0.Add(10*time.Minute+time.Second))
	send("c", t0.Add(time.Hour))
	clock.add(59 * time.Second)
	send("d", t0.Add(time.Hour))
	if n := future(); n != 3 {
		t.Fatalf("samples_ignored_total{reason=future} = %v, want 3", n)
	}
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != 1 || !strings.Contains(lines[0], "detector.max_event_future") || !strings.Contains(lines[0], `"samples":1`) {
		t.Fatalf("log within a minute: %q, want one line naming detector.max_event_future", lines)
	}
	clock.add(time.Second)
	send("e", t0.Add(time.Hour))
	lines = strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[1], `"samples":3`) {
		t.Fatalf("log a minute on: %q, want a second line counting the 3 samples since the first", lines)
	}
	if strings.Contains(logs.String(), "s3cr3t") || strings.Contains(logs.String(), "123.456") {
		t.Errorf("the log holds a sample's label or value: %s", logs.String())
	}
	if n := s.Series(); n != 1 {
		t.Errorf("%d series in memory, want only the one scored", n)
	}
}

// legacySnapshot feeds values of db's latency_ms (labels without
// __name__, a minute apart from t0) to a detector and returns its harness,
// the last sample, and the series' snapshot as a detector wrote it
// before the metric name joined a series' identity (to be restored under
// the fingerprint's key: its open episode without lastSample.Series),
// and whether an episode was open.
func legacySnapshot(t *testing.T, values []float64, opts ...Option) (h *stagetest.Harness, last event.Envelope, v []byte, open bool) {
	t.Helper()
	old, h := newTestService(t, Config{}, opts...)
	for i, x := range values {
		data := rawSample(t, "db", "latency_ms", t0.Add(time.Duration(i)*time.Minute), x)
		ack(t, h, data)
		if err := json.Unmarshal(data, &last); err != nil {
			t.Fatal(err)
		}
	}
	old.mu.Lock()
	defer old.mu.Unlock()
	ser, ok := old.series.Peek(seriesKey(seriesID(last.Fingerprint, "latency_ms", last.Labels)))
	if !ok {
		t.Fatal("series not in memory")
	}
	if open = ser.last != nil; open {
		was := *ser.last
		was.Series = "" // the older snapshot did not hold it
		ser.last = &was
	}
	v, err := old.encode(nil, ser)
	if err != nil {
		t.Fatal(err)
	}
	return h, last, v, open
}

// A series whose producer leaves __name__ out of its labels was keyed by
// its fingerprint alone before two metrics of one label set were two
// series: its snapshot is under that key, and the episode it had open was
// published with an id derived from the fingerprint. After the upgrade the
// series' next sample takes that state (no warm-up again) and its episode
// goes on and closes under the id it opened with, not under a new one
// (which left the episode open for ever in the anomalies table, and a close
// of an episode nobody opened).
func TestSnapshotOfTheFingerprintAloneIsTakenOver(t *testing.T) {
	clock := &testClock{t: t0.Add(3 * time.Hour)}
	values := append(normal(100, 5), 150, 151)
	h, last, v, open := legacySnapshot(t, values, WithClock(clock.now))
	fp := last.Fingerprint
	got := episodeEvents(t, h)
	if len(got) != 1 || got[0].body.Episode != event.EpisodeOpen || !open {
		t.Fatalf("%d events before the upgrade, episode open in the series %v; want the open", len(got), open)
	}
	legacyID := event.DerivedID(got[0].body.Start, "episode", fp)

	s, h2 := newTestService(t, Config{}, WithClock(clock.now))
	restoreInto(t, s, seriesKey(fp), v)
	for i := range 30 {
		ack(t, h2, rawSample(t, "db", "latency_ms", t0.Add(time.Duration(len(values)+i)*time.Minute), 100))
	}
	clock.add(time.Hour)
	_, beat := sample(t, "other", "heartbeat", nil, clock.now(), 1, "")
	ack(t, h2, beat)
	if err := h2.Tick(clock.now()); err != nil {
		t.Fatal(err)
	}
	if n := s.Series(); n != 2 {
		t.Errorf("%d series in memory, want latency_ms (taken over) and the heartbeat", n)
	}
	s.mu.Lock()
	ser, ok := s.series.Peek(seriesKey(seriesID(fp, "latency_ms", last.Labels)))
	obs := 0
	if ok {
		obs = ser.det.Observations()
	}
	s.mu.Unlock()
	if want := len(values) + 30; obs != want {
		t.Errorf("%d observations after the upgrade, want %d: the snapshot's state goes on", obs, want)
	}
	got = episodeEvents(t, h2)
	if len(got) != 1 || got[0].body.Episode != event.EpisodeClose || got[0].body.EpisodeID != legacyID {
		for _, e := range got {
			t.Logf("%s %s: %s", e.body.Episode, e.body.EpisodeID, e.body.Reason)
		}
		t.Fatalf("%d events after the upgrade, want one close of episode %s", len(got), legacyID)
	}
	// the next episode has the series' own id
	for i, x := range []float64{150, 151, 150} {
		ack(t, h2, rawSample(t, "db", "latency_ms", t0.Add(time.Duration(len(values)+30+i)*time.Minute), x))
	}
	got = episodeEvents(t, h2)
	if len(got) < 2 || got[1].body.Episode != event.EpisodeOpen ||
		got[1].body.EpisodeID != event.DerivedID(got[1].body.Start, "episode", seriesID(fp, "latency_ms", last.Labels)) {
		t.Errorf("%d events, want a new episode under the series' own id", len(got))
	}
}

// heldKV stands for the bucket's stream: with hold set, a write is acked
// only by release, so that a sample can come while it is in flight.
type heldKV struct {
	mu      sync.Mutex
	hold    bool
	keys    []string
	waiting []*future
	sent    chan struct{}
}

func (k *heldKV) PublishAsync(subject string, _ []byte, _ ...jetstream.PublishOpt) (jetstream.PubAckFuture, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	f := &future{ok: make(chan *jetstream.PubAck, 1), err: make(chan error, 1)}
	k.keys = append(k.keys, strings.TrimPrefix(subject, "$KV."+DefaultBucket+"."))
	if k.hold {
		k.waiting = append(k.waiting, f)
		select {
		case k.sent <- struct{}{}:
		default:
		}
		return f, nil
	}
	f.ok <- &jetstream.PubAck{}
	return f, nil
}

func (k *heldKV) release() {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, f := range k.waiting {
		f.ok <- &jetstream.PubAck{}
	}
	k.waiting, k.hold = nil, false
}

// A restored series under its fingerprint alone whose snapshot is being
// written under that key (it changed while restored: a silence closed the
// episode it had open) when its metric's sample takes it over: that write
// is not the series' own key, so the snapshot under the fingerprint is not
// deleted until the next snapshot has written the series' own (a crash in
// between lost the series' state, and its open episode's).
func TestLegacySnapshotKeptUntilTheSeriesOwnKeyIsWritten(t *testing.T) {
	_, last, v, _ := legacySnapshot(t, normal(30, 5))
	fp := last.Fingerprint

	s, h := newTestService(t, Config{})
	kv := &heldKV{hold: true, sent: make(chan struct{}, 1)}
	s.snap = kv
	legacy := seriesKey(fp)
	restoreInto(t, s, legacy, v)
	s.mu.Lock()
	if ser, ok := s.series.Peek(legacy); ok {
		ser.dirty = true
		s.dirty = append(s.dirty, ser)
	}
	s.mu.Unlock()
	done := make(chan error, 1)
	go func() {
		_, err := s.Snapshot(context.Background())
		done <- err
	}()
	<-kv.sent // the write under the fingerprint's key is in flight
	ack(t, h, rawSample(t, "db", "latency_ms", t0.Add(30*time.Minute), 100))
	kv.release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	dropped := func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, k := range s.stale {
			if k.kv == s.keyOf(legacy) && k.value == nil {
				return true
			}
		}
		return false
	}
	if want := []string{"detector." + legacy}; !slices.Equal(kv.written(), want) || dropped() {
		t.Fatalf("written %v (want %v), the fingerprint's snapshot queued for deletion %v: want it kept until the series' own key is written", kv.written(), want, dropped())
	}
	if _, err := s.Snapshot(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := kv.written(); len(got) != 2 || got[1] != "detector."+seriesKey(seriesID(fp, "latency_ms", last.Labels)) || !dropped() {
		t.Errorf("after the next snapshot written %v, the fingerprint's snapshot queued for deletion %v: want the series' own key written, then the old one deleted", got, dropped())
	}
}

func (k *heldKV) written() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.keys)
}

// kvLog stands for the bucket in dropStale: it records the puts and
// deletes (any other method is not called).
type kvLog struct {
	jetstream.KeyValue
	mu  sync.Mutex
	ops []string
}

func (k *kvLog) Put(_ context.Context, key string, _ []byte) (uint64, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.ops = append(k.ops, "put "+key)
	return 1, nil
}

func (k *kvLog) Delete(_ context.Context, key string, _ ...jetstream.KVDeleteOpt) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.ops = append(k.ops, "delete "+key)
	return nil
}

func (k *kvLog) done() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.ops)
}

// A series taken over from its snapshot under the fingerprint alone and
// evicted (max_series) with its episode open before any snapshot wrote
// its own key: once the close is stored, the snapshot under the
// fingerprint, which holds the episode open, goes too, or a restart
// would restore it beside the series and close that episode again.
func TestEvictedSeriesTakenOverLeavesNoSnapshotHoldingItsEpisodeOpen(t *testing.T) {
	clock := &testClock{t: t0.Add(3 * time.Hour)}
	values := append(normal(100, 5), 150, 151)
	_, last, v, open := legacySnapshot(t, values, WithClock(clock.now))
	fp := last.Fingerprint
	if !open {
		t.Fatal("no episode open in the series")
	}

	s, h := newTestService(t, Config{MaxSeries: 2}, WithClock(clock.now))
	kv := &kvLog{}
	s.kv = kv
	legacy := seriesKey(fp)
	restoreInto(t, s, legacy, v)
	ack(t, h, rawSample(t, "db", "latency_ms", t0.Add(time.Duration(len(values))*time.Minute), 150)) // taken over
	for _, name := range []string{"a", "b"} {
		_, data := sample(t, "other", name, nil, t0.Add(time.Duration(len(values))*time.Minute), 1, "")
		ack(t, h, data)
	}
	for range 3 { // the close out, stored, and the snapshots it made stale dealt with
		if err := h.Tick(clock.now()); err != nil {
			t.Fatal(err)
		}
	}
	got := episodeEvents(t, h)
	if len(got) != 1 || got[0].body.Episode != event.EpisodeClose {
		t.Fatalf("%d episode events, want the evicted series' close", len(got))
	}
	if ops := kv.done(); !slices.Contains(ops, "delete "+s.keyOf(legacy)) {
		t.Errorf("bucket operations %v: the snapshot under the fingerprint (%s) still holds the closed episode open", ops, s.keyOf(legacy))
	}
}

// watchKV stands for the bucket in Restore (Watch delivers entries, then
// the end of the initial values) and in dropStale (kvLog).
type watchKV struct {
	kvLog
	entries []kvEntry
}

type kvEntry struct {
	jetstream.KeyValueEntry
	key   string
	value []byte
}

func (e kvEntry) Key() string   { return e.key }
func (e kvEntry) Value() []byte { return e.value }

type kvWatcher chan jetstream.KeyValueEntry

func (w kvWatcher) Updates() <-chan jetstream.KeyValueEntry { return w }
func (w kvWatcher) Stop() error                             { return nil }

func (k *watchKV) Watch(context.Context, string, ...jetstream.WatchOpt) (jetstream.KeyWatcher, error) {
	w := make(kvWatcher, len(k.entries)+1)
	for _, e := range k.entries {
		w <- e
	}
	w <- nil
	return w, nil
}

// A series taken over from its snapshot under the fingerprint alone, its
// own key written, and a crash before the old key was deleted: the
// restart restored both, the old one with the episode it had open, and
// closed that episode twice (the old key's silent close beside the
// series' own close, or after the close the taking sample had made), or
// closed it while the series went on with it. The old snapshot is
// superseded: dropped at the restore without a close, and deleted.
func TestSnapshotTakenOverAndNotDeletedClosesItsEpisodeOnce(t *testing.T) {
	for _, c := range []struct {
		name   string
		value  float64 // of the sample that takes the series over
		closes int     // after the restart
	}{
		{"episode goes on", 150, 1},
		{"episode closed", 100, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			clock := &testClock{t: t0.Add(3 * time.Hour)}
			values := append(normal(100, 5), 150, 151)
			_, last, v, open := legacySnapshot(t, values, WithClock(clock.now))
			if !open {
				t.Fatal("no episode open in the series")
			}
			fp, legacy := last.Fingerprint, seriesKey(last.Fingerprint)
			key := seriesKey(seriesID(fp, "latency_ms", last.Labels))

			s1, h1 := newTestService(t, Config{}, WithClock(clock.now))
			restoreInto(t, s1, legacy, v)
			ack(t, h1, rawSample(t, "db", "latency_ms", t0.Add(time.Duration(len(values))*time.Minute), c.value)) // taken over
			s1.mu.Lock()
			ser, ok := s1.series.Peek(key)
			var own []byte
			var err error
			if ok {
				own, err = s1.encode(nil, ser)
			}
			inEpisode := ok && ser.det.InEpisode()
			s1.mu.Unlock()
			if own == nil || err != nil || inEpisode != (c.closes == 1) {
				t.Fatalf("series taken over %v, in its episode %v, its snapshot %v", ok, inEpisode, err)
			}

			// the crash: both keys in the bucket
			s, h := newTestService(t, Config{}, WithClock(clock.now))
			kv := &watchKV{entries: []kvEntry{{key: s.keyOf(legacy), value: v}, {key: s.keyOf(key), value: own}}}
			s.kv = kv
			if err := s.Restore(context.Background()); err != nil {
				t.Fatal(err)
			}
			clock.add(11 * time.Minute)
			heartbeat(t, h, clock)
			for range 2 { // the closes, and the deletion of the old key
				if err := h.Tick(clock.now()); err != nil {
					t.Fatal(err)
				}
			}
			closes := 0
			for _, e := range episodeEvents(t, h) {
				if e.body.Episode == event.EpisodeClose {
					closes++
				}
			}
			if closes != c.closes {
				t.Errorf("%d closes of the episode after the restart, want %d", closes, c.closes)
			}
			if ops := kv.done(); !slices.Contains(ops, "delete "+s.keyOf(legacy)) {
				t.Errorf("bucket operations %v: the superseded snapshot %s is not deleted", ops, s.keyOf(legacy))
			}
		})
	}
}

// The stage runner recovers a panic in Process or Tick as that input's or
// tick's failure and goes on: the service's lock must not stay held, or
// the next sample would wait for it for ever.
func TestLockReleasedByAPanic(t *testing.T) {
	s := &Service{}
	func() {
		defer func() { _ = recover() }()
		s.locked(func() { panic("a detector's bug") })
	}()
	if !s.mu.TryLock() {
		t.Fatal("the lock is still held after a panic under it")
	}
}

// An episode open at the upgrade that made an anomaly's series a hash of
// the fingerprint and the metric (labels without __name__) was opened
// under the fingerprint: the correlator holds that as its member. Its
// update and close named the hash, a member the incident does not hold,
// so the incident waited for a close that never came (three quiet
// periods) and the close opened nothing either. The episode names what
// its open named to its end, closed by a sample or by silence; the next
// episode names the hash.
func TestEpisodeOpenAtTheUpgradeKeepsItsMember(t *testing.T) {
	for _, silent := range []bool{false, true} {
		clock := &testClock{t: t0.Add(3 * time.Hour)}
		values := append(normal(100, 5), 150, 151)
		old, oh := newTestService(t, Config{}, WithClock(clock.now))
		var last event.Envelope
		for i, x := range values {
			data := rawSample(t, "db", "latency_ms", t0.Add(time.Duration(i)*time.Minute), x)
			ack(t, oh, data)
			if err := json.Unmarshal(data, &last); err != nil {
				t.Fatal(err)
			}
		}
		fp := last.Fingerprint
		id := seriesID(fp, "latency_ms", last.Labels)
		old.mu.Lock()
		ser, ok := old.series.Peek(seriesKey(id))
		var v []byte
		var err error
		if ok && ser.last != nil {
			was := *ser.last
			was.Member = "" // written before the upgrade: its open named fp
			ser.last = &was
			v, err = old.encode(nil, ser)
		}
		old.mu.Unlock()
		if v == nil || err != nil {
			t.Fatalf("no episode open before the upgrade (%v)", err)
		}

		s, h := newTestService(t, Config{}, WithClock(clock.now))
		restoreInto(t, s, seriesKey(id), v)
		next := len(values)
		if silent {
			clock.add(time.Hour)
			heartbeat(t, h, clock)
			if err := h.Tick(clock.now()); err != nil {
				t.Fatal(err)
			}
		} else {
			for ; next < len(values)+30; next++ {
				ack(t, h, rawSample(t, "db", "latency_ms", t0.Add(time.Duration(next)*time.Minute), 100))
			}
		}
		got := episodeEvents(t, h)
		if len(got) == 0 || got[len(got)-1].body.Episode != event.EpisodeClose {
			t.Fatalf("silent %v: %d events after the upgrade, want the episode's close", silent, len(got))
		}
		for _, e := range got {
			if e.body.Series != fp {
				t.Errorf("silent %v: %s of the episode open at the upgrade names series %s, want %s as its open did", silent, e.body.Episode, e.body.Series, fp)
			}
		}
		// the next episode is the series' own member
		for i, x := range []float64{150, 151, 150} {
			ack(t, h, rawSample(t, "db", "latency_ms", t0.Add(time.Duration(next+i)*time.Minute), x))
		}
		got = episodeEvents(t, h)
		if e := got[len(got)-1]; e.body.Episode != event.EpisodeOpen || e.body.Series != anomalySeries(id) {
			t.Errorf("silent %v: the next episode's %s names %s, want an open naming %s", silent, e.body.Episode, e.body.Series, anomalySeries(id))
		}
	}
}

// An episode open in a snapshot of the first format (version 1, written
// before the last sample was kept: keyed by the sample's fingerprint, no
// last sample, its open naming the fingerprint and its episode_id derived
// from it) goes on and closes under that id and member after the upgrade.
// A real upgrade from such a build closed it under the series' hash and
// another episode_id: ClickHouse held an episode opened and never closed
// beside a close of an episode never opened.
func TestEpisodeOpenInAFirstFormatSnapshotKeepsItsIDAcrossTheUpgrade(t *testing.T) {
	clock := &testClock{t: t0.Add(3 * time.Hour)}
	values := append(normal(100, 5), 150, 151)
	old, oh := newTestService(t, Config{}, WithClock(clock.now))
	var last event.Envelope
	for i, x := range values {
		data := rawSample(t, "db", "latency_ms", t0.Add(time.Duration(i)*time.Minute), x)
		ack(t, oh, data)
		if err := json.Unmarshal(data, &last); err != nil {
			t.Fatal(err)
		}
	}
	opens := episodeEvents(t, oh)
	if len(opens) == 0 || opens[0].body.Episode != event.EpisodeOpen {
		t.Fatalf("no episode open before the upgrade: %d events", len(opens))
	}
	start := opens[0].body.Start
	fp := last.Fingerprint
	id := seriesID(fp, "latency_ms", last.Labels)
	if id == fp {
		t.Fatal("the sample's labels name the metric: its series is its fingerprint, nothing to upgrade")
	}
	old.mu.Lock()
	ser, ok := old.series.Peek(seriesKey(id))
	var v []byte
	var err error
	if ok && ser.det.InEpisode() {
		// what that build wrote: version(1) flags(1) len(route)(1) route state
		v = append([]byte{1, 0, byte(len(ser.route))}, ser.route...)
		v, err = ser.det.AppendBinary(v)
	}
	old.mu.Unlock()
	if v == nil || err != nil {
		t.Fatalf("no episode open before the upgrade (%v)", err)
	}

	s, h := newTestService(t, Config{}, WithClock(clock.now))
	restoreInto(t, s, seriesKey(fp), v)
	for i := len(values); i < len(values)+30; i++ {
		ack(t, h, rawSample(t, "db", "latency_ms", t0.Add(time.Duration(i)*time.Minute), 100))
	}
	got := episodeEvents(t, h)
	if len(got) == 0 || got[len(got)-1].body.Episode != event.EpisodeClose {
		t.Fatalf("%d events after the upgrade, want the episode's close", len(got))
	}
	want := event.DerivedID(start, "episode", fp)
	for _, e := range got {
		if e.body.Series != fp || e.body.EpisodeID != want {
			t.Errorf("%s of the episode open at the upgrade: series %s, episode_id %s; want %s and %s, as its open had",
				e.body.Episode, e.body.Series, e.body.EpisodeID, fp, want)
		}
	}
}

// The episode of a series whose labels lack __name__ has its id derived
// from the fingerprint and the metric joined by the byte 0xFF
// (seriesID), which the snapshot's JSON cannot hold: restored, it read
// U+FFFD there, so every update and the close after a restart had
// another episode_id than the open (and, named by it, another series):
// the correlator held the episode open. A restart changes neither.
func TestEpisodeOfASeriesWithoutNameKeepsItsIDAcrossARestart(t *testing.T) {
	for _, silent := range []bool{false, true} {
		clock := &testClock{t: t0.Add(3 * time.Hour)}
		values := append(normal(100, 5), 150, 151)
		old, oh := newTestService(t, Config{}, WithClock(clock.now))
		var last event.Envelope
		for i, x := range values {
			data := rawSample(t, "db", "latency_ms", t0.Add(time.Duration(i)*time.Minute), x)
			ack(t, oh, data)
			if err := json.Unmarshal(data, &last); err != nil {
				t.Fatal(err)
			}
		}
		opened := episodeEvents(t, oh)
		if len(opened) != 1 || opened[0].body.Episode != event.EpisodeOpen {
			t.Fatalf("%d events before the restart, want the open", len(opened))
		}
		key := seriesKey(seriesID(last.Fingerprint, "latency_ms", last.Labels))
		v := snapshotOfKey(t, old, key)

		s, h := newTestService(t, Config{}, WithClock(clock.now))
		restoreInto(t, s, key, v)
		if silent {
			clock.add(time.Hour)
			heartbeat(t, h, clock)
			if err := h.Tick(clock.now()); err != nil {
				t.Fatal(err)
			}
		} else {
			for i := range 30 {
				ack(t, h, rawSample(t, "db", "latency_ms", t0.Add(time.Duration(len(values)+i)*time.Minute), 100))
			}
		}
		got := episodeEvents(t, h)
		if len(got) == 0 || got[len(got)-1].body.Episode != event.EpisodeClose {
			t.Fatalf("silent %v: %d events after the restart, want the episode's close", silent, len(got))
		}
		for _, e := range got {
			if e.body.EpisodeID != opened[0].body.EpisodeID || e.body.Series != opened[0].body.Series {
				t.Errorf("silent %v: %s after the restart: episode %s of series %q, want the open's %s of %q", silent,
					e.body.Episode, e.body.EpisodeID, e.body.Series, opened[0].body.EpisodeID, opened[0].body.Series)
			}
		}
	}
}

// snapshotOfKey is the snapshot value of the series under key in s.
func snapshotOfKey(t *testing.T, s *Service, key string) []byte {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	ser, ok := s.series.Peek(key)
	if !ok {
		t.Fatalf("series %s not in memory", key)
	}
	v, err := s.encode(nil, ser)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
