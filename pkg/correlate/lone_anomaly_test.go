package correlate

import (
	"testing"
	"time"

	"github.com/aiops-dev/aiops/pkg/event"
)

// loneAnomaly is an event of episode (series fingerprint, begun at
// start) on service at at.
func loneAnomaly(series, service, phase string, start, at time.Duration) Signal {
	return Signal{Kind: SignalAnomaly, Fingerprint: series, Service: service, Name: series, Severity: event.SeverityError,
		Time: t0.Add(at), EventID: event.DerivedID(t0.Add(at), series), EpisodeID: series + "-ep", Episode: phase,
		EpisodeStart: t0.Add(start), Resolved: phase == EpisodeClose}
}

// A host's series one sample off, as a busy machine's are every few
// minutes, open nothing; neither does another series of the same
// service: a host has hundreds.
func TestLoneShortAnomalyOpensNothing(t *testing.T) {
	c := newCorrelator(t, Config{})
	feed(c, loneAnomaly("disk_io_now", "cart", EpisodeOpen, 0, 0), loneAnomaly("disk_io_now", "cart", EpisodeClose, 0, 15*time.Second),
		loneAnomaly("forks_total", "cart", EpisodeOpen, time.Minute, time.Minute), loneAnomaly("forks_total", "cart", EpisodeClose, time.Minute, time.Minute+15*time.Second))
	c.Advance(t0.Add(time.Hour))
	for _, fp := range []string{"disk_io_now", "forks_total"} {
		if id, ok := c.IncidentOf(fp); ok {
			t.Errorf("%s, one sample off, is in %s; want no incident", fp, id)
		}
	}
	if n := c.Stats().Opened; n != 0 {
		t.Errorf("%d incidents opened, want none", n)
	}
}

// A series off for AnomalyWait opens an incident, as an alerting rule
// fires after its `for`; a critical one at once.
func TestLastingOrCriticalAnomalyOpens(t *testing.T) {
	c := newCorrelator(t, Config{})
	feed(c, loneAnomaly("disk_io_now", "cart", EpisodeOpen, 0, 0), loneAnomaly("disk_io_now", "cart", EpisodeUpdate, 0, 3*time.Minute))
	if id, ok := c.IncidentOf("disk_io_now"); ok {
		t.Fatalf("off for 3 minutes, the series is in %s; want none yet", id)
	}
	feed(c, loneAnomaly("disk_io_now", "cart", EpisodeUpdate, 0, 5*time.Minute))
	if _, ok := c.IncidentOf("disk_io_now"); !ok {
		t.Errorf("off for 5 minutes (anomaly_wait), the series is in no incident")
	}

	critical := loneAnomaly("mem_free", "search", EpisodeOpen, 0, 10*time.Minute)
	critical.Severity = event.SeverityCritical
	feed(c, critical)
	if _, ok := c.IncidentOf("mem_free"); !ok {
		t.Errorf("a critical anomaly is in no incident, want one at once")
	}
}

// An alert on a related service, or an anomaly on a related other
// service, within AnomalyWait corroborates a held anomaly: it opens the
// incident, from its own time, and what corroborated it joins.
func TestCorroboratedAnomalyOpens(t *testing.T) {
	for name, second := range map[string]Signal{
		"an alert of a dependent":           alert("CheckoutErrors", "checkout", 2*time.Minute),
		"an anomaly of a dependency":        loneAnomaly("db_latency", "payments-db", EpisodeOpen, 2*time.Minute, 2*time.Minute),
		"an alert of the anomaly's service": alert("PaymentsErrors", "payments", 4*time.Minute),
	} {
		c := newCorrelator(t, Config{})
		feed(c, loneAnomaly("latency", "payments", EpisodeOpen, 0, 0), loneAnomaly("latency", "payments", EpisodeClose, 0, 15*time.Second), second)
		id, ok := c.IncidentOf("latency")
		if other, _ := c.IncidentOf(second.Fingerprint); !ok || other != id {
			t.Errorf("%s: the anomaly is in %q, %s in %q; want one incident", name, id, second.Fingerprint, other)
			continue
		}
		if st, _ := c.Incident(id); !st.OpenedAt.Equal(t0) {
			t.Errorf("%s: the incident opened at %s, want the anomaly's time %s", name, st.OpenedAt, t0)
		}
	}

	// Past AnomalyWait nothing corroborates it.
	c := newCorrelator(t, Config{})
	feed(c, loneAnomaly("latency", "payments", EpisodeOpen, 0, 0), alert("CheckoutErrors", "checkout", 6*time.Minute))
	if id, ok := c.IncidentOf("latency"); ok {
		t.Errorf("an alert 6 minutes later placed the anomaly in %s; want it left out", id)
	}
}

// An anomaly that may join an incident joins it at once, however short.
func TestAnomalyJoinsAnExistingIncident(t *testing.T) {
	c := newCorrelator(t, Config{})
	feed(c, alert("PaymentsErrors", "payments", 0), loneAnomaly("latency", "checkout", EpisodeOpen, time.Minute, time.Minute))
	id, _ := c.IncidentOf("PaymentsErrors/payments")
	if got, ok := c.IncidentOf("latency"); !ok || got != id {
		t.Errorf("the anomaly is in %q, want the alert's incident %s", got, id)
	}
}

// lone_anomalies: true opens an incident for each, as before.
func TestLoneAnomaliesOpenWhenAsked(t *testing.T) {
	c := newCorrelator(t, Config{LoneAnomalies: Flag(true)})
	feed(c, loneAnomaly("disk_io_now", "cart", EpisodeOpen, 0, 0))
	if _, ok := c.IncidentOf("disk_io_now"); !ok {
		t.Errorf("with lone_anomalies: true the anomaly is in no incident")
	}
}
