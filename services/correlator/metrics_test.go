package correlator

import (
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/pkg/stage"
	"github.com/aiops-dev/aiops/pkg/stage/stagetest"
)

// The correlator exports what it holds beside its bounds, as the detector
// exports its series beside series_limit: open incidents piling up (an
// alert whose resolution never comes, with alert_expiry 0) show long
// before max_fingerprints or max_state_bytes forget them. Without these
// a soak saw nothing of the correlator on /metrics.
func TestCollectorExportsTheStateAgainstItsBounds(t *testing.T) {
	r := newStormRig(t, Config{})
	r.cfg.Rules.MaxFingerprints = 5000
	svc, stop := r.start()
	defer stop()
	r.firstHalf() // three alerts: the cascade (web, checkout) and search
	waitIncidents(t, r.js, event.IncidentOpened, 2)

	reg := prometheus.NewRegistry()
	if err := reg.Register(svc.Collector()); err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			if m.GetGauge() != nil {
				got[mf.GetName()] = m.GetGauge().GetValue()
			}
		}
	}
	for name, want := range map[string]float64{
		"aiops_correlator_fingerprints":       3,
		"aiops_correlator_fingerprints_limit": 5000,
		"aiops_correlator_incidents":          2,
		"aiops_correlator_state_bytes_limit":  512 << 20,
	} {
		if v, ok := got[name]; !ok || v != want {
			t.Errorf("%s = %v (exported: %v), want %v", name, v, ok, want)
		}
	}
	if got["aiops_correlator_state_bytes"] <= 0 {
		t.Errorf("aiops_correlator_state_bytes = %v, want the estimate of three members in two incidents", got["aiops_correlator_state_bytes"])
	}
	if problems, err := testutil.CollectAndLint(svc.Collector()); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
}

// Lone anomalies waiting (rules.lone_anomalies) open nothing yet: the
// gauge shows them, and the counter those that waited in vain, so that
// an operator sees what the wait kept out of the incidents.
func TestCollectorExportsTheAnomaliesWaiting(t *testing.T) {
	wall := &clock{t: t0.Add(time.Minute)}
	proc, err := NewProcessor(Config{Catalog: writeCatalog(t)}, zerolog.Nop(), wall.now)
	if err != nil {
		t.Fatal(err)
	}
	h := stagetest.Start(t, proc, stage.Config{TickEvery: time.Second})
	anomaly := func(series string, at time.Duration) *event.Envelope {
		v, score := 900.0, 0.99
		e, err := event.New(event.KindAnomaly, "search", t0.Add(at), event.AnomalyBody{
			Series: series, Metric: "latency", Value: &v, Expected: 100, Upper: 200, Score: &score, Detector: "robust_z"})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	for i, r := range h.Feed(anomaly("latency-a", 0), anomaly("latency-b", 30*time.Minute)) {
		if r.Outcome != stagetest.Acked {
			t.Fatalf("event %d: %v %v", i, r.Outcome, r.Err)
		}
	}
	if n := len(incidentEvents(t, h, "opened")); n != 0 {
		t.Fatalf("%d incidents opened, want none: each anomaly is one sample, alone", n)
	}
	c := stateCollector{p: proc}
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			got[mf.GetName()] = m.GetGauge().GetValue() + m.GetCounter().GetValue()
		}
	}
	if v := got["aiops_correlator_anomalies_waiting"]; v != 1 {
		t.Errorf("aiops_correlator_anomalies_waiting = %v, want 1 (latency-b)", v)
	}
	// The wall clock is behind the events here: event time stays at the
	// latest one, which time() less it shows an operator.
	if v, want := got["aiops_correlator_event_time_seconds"], float64(t0.Add(30*time.Minute).Unix()); v != want {
		t.Errorf("aiops_correlator_event_time_seconds = %v, want %v, the latest event's time", v, want)
	}
	if v := got["aiops_correlator_anomalies_unconfirmed_total"]; v != 1 {
		t.Errorf("aiops_correlator_anomalies_unconfirmed_total = %v, want 1 (latency-a, which waited in vain)", v)
	}
	if problems, err := testutil.CollectAndLint(c); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
}
