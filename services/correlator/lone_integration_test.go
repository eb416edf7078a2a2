package correlator

import (
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/aiops-dev/aiops/pkg/event"
)

// episodeEvent is the detector's anomaly event of series on service, the
// episode (phase) begun at start, timed at.
func episodeEvent(t *testing.T, series, service, phase string, start, at time.Duration) *event.Envelope {
	t.Helper()
	v, score := 900.0, 0.99
	e, err := event.New(event.KindAnomaly, service, t0.Add(at), event.AnomalyBody{
		Series: series, Metric: "latency", Value: &v, Expected: 100, Upper: 200, Score: &score, Detector: "robust_z",
		Episode: phase, EpisodeID: series + "-ep", Start: t0.Add(start), End: t0.Add(at)})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// anomaliesWaiting is the correlator's aiops_correlator_anomalies_waiting.
func anomaliesWaiting(t *testing.T, svc *Service) float64 {
	reg := prometheus.NewRegistry()
	if err := reg.Register(svc.Collector()); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "aiops_correlator_anomalies_waiting" {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	return -1
}

// waitWaiting waits for n anomalies waiting in svc, which restores its
// state as it starts to run.
func waitWaiting(t *testing.T, svc *Service, n float64, when string) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); anomaliesWaiting(t, svc) != n; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%v anomalies waiting, want %v%s", anomaliesWaiting(t, svc), n, when)
		}
	}
}

// Through JetStream and a restart: a lone anomaly on payments-db and one
// on search wait (rules.lone_anomalies), are saved waiting, and after the
// restart the alert of checkout, which depends on payments-db, opens one
// incident with payments-db's anomaly, its opening listing both;
// search's opens nothing.
func TestLoneAnomalyWaitsThroughARestartForTheAlertThatCorroboratesIt(t *testing.T) {
	r := newStormRig(t, Config{})
	svc, stop := r.start()
	r.publish(episodeEvent(t, "db-latency", "payments-db", event.EpisodeOpen, 0, 0), episodeEvent(t, "db-latency", "payments-db", event.EpisodeClose, 0, 15*time.Second),
		episodeEvent(t, "search-latency", "search", event.EpisodeOpen, 20*time.Second, 20*time.Second))
	waitWaiting(t, svc, 2, "")
	time.Sleep(3 * r.cfg.State.SaveEvery) // saved, and so acked: not delivered again
	stop()

	svc, stop = r.start()
	defer stop()
	waitWaiting(t, svc, 2, " after the restart (the 2 saved)")
	alert := alertEvent(t, "HighErrorRate", "checkout", time.Minute, 0)
	r.publish(alert)
	opened := waitIncidents(t, r.js, event.IncidentOpened, 1)[0]
	var services []string
	for _, m := range opened.Members {
		services = append(services, m.Service+"/"+string(m.Kind))
	}
	slices.Sort(services)
	if want := []string{"checkout/alert", "payments-db/anomaly"}; !slices.Equal(services, want) || !opened.OpenedAt.Equal(t0) {
		t.Errorf("opened at %s with %v, want at the anomaly's time %s with %v", opened.OpenedAt, services, t0, want)
	}
	svc.proc.mu.Lock()
	id, ok := svc.proc.c.IncidentOf(alert.Fingerprint)
	waiting := svc.proc.c.Waiting()
	svc.proc.mu.Unlock()
	if !ok || id != opened.IncidentID {
		t.Errorf("the alert is in %q, want the anomaly's incident %s", id, opened.IncidentID)
	}
	if waiting != 1 {
		t.Errorf("%d anomalies waiting, want search's", waiting)
	}
}
