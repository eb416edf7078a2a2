package correlator

import (
	"github.com/prometheus/client_golang/prometheus"
)

// What the correlator holds, beside its bounds, as the detector exports
// its series beside series_limit: incidents that never resolve (an alert
// whose resolution never comes, with alert_expiry 0) pile up here long
// before max_fingerprints or max_state_bytes forget them, each forgotten
// open one resolved.
var (
	descFingerprints = prometheus.NewDesc("aiops_correlator_fingerprints",
		"Members (alert fingerprints, anomaly series, log templates) held in memory.", nil, nil)
	descFingerprintsLimit = prometheus.NewDesc("aiops_correlator_fingerprints_limit",
		"Members and waiting anomaly series held at most (correlator.rules.max_fingerprints); beyond it the longest-resolved incidents, then the longest-quiet open ones, are forgotten.", nil, nil)
	descIncidents = prometheus.NewDesc("aiops_correlator_incidents",
		"Incidents held in memory: the open ones and those resolved within reopen_window.", nil, nil)
	descStateBytes = prometheus.NewDesc("aiops_correlator_state_bytes",
		"Estimate of the heap the members, incidents and waiting anomalies take, as counted against max_state_bytes.", nil, nil)
	descStateBytesLimit = prometheus.NewDesc("aiops_correlator_state_bytes_limit",
		"The estimate's bound (correlator.rules.max_state_bytes); beyond it incidents are forgotten as at max_fingerprints.", nil, nil)
	descWaiting = prometheus.NewDesc("aiops_correlator_anomalies_waiting",
		"Lone anomaly series waiting to open an incident (correlator.rules.lone_anomalies, anomaly_wait); at most a sixteenth of max_fingerprints, beyond which an anomaly opens at once.", nil, nil)
	descEventTime = prometheus.NewDesc("aiops_correlator_event_time_seconds",
		"The correlator's clock, event time, as Unix seconds: windows, quiet periods and expiries run on it. time() less it is how far it is behind the wall clock (idle_advance: by the longest delivery lag of the last hour's signals, and after a restart by the time no instance held the lease), which is how much later than the wall clock says incidents resolve. Absent before the first signal.", nil, nil)
	descUnconfirmed = prometheus.NewDesc("aiops_correlator_anomalies_unconfirmed_total",
		"Lone anomaly series that waited anomaly_wait and opened no incident: neither lasting, critical nor corroborated. The detector stored them all the same.", nil, nil)
)

// stateCollector reads the processor's correlator under its lock at each
// scrape: counts, nothing walked.
type stateCollector struct{ p *Processor }

func (c stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descFingerprints, descFingerprintsLimit, descIncidents, descStateBytes, descStateBytesLimit, descWaiting, descUnconfirmed, descEventTime} {
		ch <- d
	}
}

func (c stateCollector) Collect(ch chan<- prometheus.Metric) {
	rules := c.p.cfg.Rules.WithDefaults()
	c.p.mu.Lock()
	fingerprints, incidents, bytes := c.p.c.Fingerprints(), c.p.c.Held(), c.p.c.StateBytes()
	waiting, unconfirmed, eventTime := c.p.c.Waiting(), c.p.c.Stats().Unconfirmed, c.p.c.Now()
	c.p.mu.Unlock()
	gauge := func(d *prometheus.Desc, v float64) { ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v) }
	gauge(descFingerprints, float64(fingerprints))
	gauge(descFingerprintsLimit, float64(rules.MaxFingerprints))
	gauge(descIncidents, float64(incidents))
	gauge(descStateBytes, float64(bytes))
	gauge(descStateBytesLimit, float64(rules.MaxStateBytes))
	gauge(descWaiting, float64(waiting))
	ch <- prometheus.MustNewConstMetric(descUnconfirmed, prometheus.CounterValue, float64(unconfirmed))
	if !eventTime.IsZero() {
		gauge(descEventTime, float64(eventTime.UnixNano())/1e9)
	}
}
