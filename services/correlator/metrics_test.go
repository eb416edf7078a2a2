package correlator

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/aiops-dev/aiops/pkg/event"
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
