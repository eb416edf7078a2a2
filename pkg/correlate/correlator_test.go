package correlate

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/aiops-dev/aiops/pkg/event"
)

var t0 = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

// shop is a small catalog: web → checkout → {payments → payments-db, cart},
// and an unrelated search → search-index.
func shop(t testing.TB) *Catalog {
	t.Helper()
	return catalog(t, `
services:
  web:          {owner: ana, team: storefront, tier: "1", depends_on: [checkout, search]}
  checkout:     {owner: bo, team: payments, tier: "1", runbook: https://runbooks/checkout, depends_on: [payments, cart]}
  payments:     {owner: cy, team: payments, tier: "1", depends_on: [payments-db]}
  payments-db:  {owner: di, team: dba, tier: "0", runbook: https://runbooks/pg}
  cart:         {owner: ed, team: storefront, depends_on: []}
  search:       {owner: fu, team: discovery, depends_on: [search-index]}
  search-index: {owner: gi, team: discovery}
  batch:        {owner: ho, team: data}
`)
}

// catalog parses a test's service catalog.
func catalog(t testing.TB, yaml string) *Catalog {
	t.Helper()
	c, err := ParseCatalog([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// correlatorOn is a correlator of cfg over the catalog yaml.
func correlatorOn(t testing.TB, cfg Config, yaml string) *Correlator {
	t.Helper()
	c, err := New(cfg, catalog(t, yaml))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// restarted is a correlator of c's configuration and catalog restored
// from c's checkpoint, as after a restart.
func restarted(t testing.TB, c *Correlator) *Correlator {
	t.Helper()
	data, err := c.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	r, err := New(c.cfg, c.cat)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.UnmarshalJSON(data); err != nil {
		t.Fatal(err)
	}
	return r
}

func newCorrelator(t testing.TB, cfg Config) *Correlator {
	t.Helper()
	c, err := New(cfg, shop(t))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func alert(name, service string, at time.Duration) Signal {
	return Signal{Kind: SignalAlert, Fingerprint: name + "/" + service, Service: service, Name: name,
		Severity: event.SeverityCritical, Time: t0.Add(at), EventID: event.DerivedID(t0.Add(at), name, service)}
}

// inCluster is s with the label cluster.
func inCluster(s Signal, cluster string) Signal {
	s.Labels = map[string]string{"cluster": cluster}
	return s
}

func resolved(s Signal, at time.Duration) Signal {
	s.Resolved, s.Time = true, t0.Add(at)
	return s
}

func feed(c *Correlator, ss ...Signal) []Update {
	var ups []Update
	for _, s := range ss {
		ups = append(ups, c.Observe(s)...)
	}
	return ups
}

func transitions(ups []Update) string {
	var b []string
	for _, u := range ups {
		b = append(b, string(u.Transition))
	}
	return strings.Join(b, ",")
}

// A detector that reports the same series every second for ten minutes is
// one member, not 600.
func TestRepeatsAreOneMember(t *testing.T) {
	c := newCorrelator(t, Config{LoneAnomalies: Flag(true)})
	var ups []Update
	for i := range 600 {
		s := Signal{Kind: SignalAnomaly, Fingerprint: "series-1", Service: "payments", Name: "latency_p99", Time: t0.Add(time.Duration(i) * time.Second), Value: float64(i)}
		ups = append(ups, c.Observe(s)...)
	}
	incs := c.Incidents()
	if len(incs) != 1 || incs[0].MemberCount != 1 || incs[0].Members[0].Count != 600 {
		t.Fatalf("incidents %d, members %d, count %d; want one incident, one member seen 600 times", len(incs), incs[0].MemberCount, incs[0].Members[0].Count)
	}
	if incs[0].Members[0].Value != 599 {
		t.Fatalf("member value %g, want the last", incs[0].Members[0].Value)
	}
	if got := transitions(ups); strings.Count(got, "opened") != 1 || strings.Count(got, "updated") > 20 {
		t.Fatalf("transitions %s: want one opened and updates at most every 30s of event time", got)
	}
}

// An anomaly series quiet for longer than the quiet period that goes wrong
// again is a new member: it joins what fails now, not the incident of its
// first episode (here resolved, and then left without members, which must
// still publish).
func TestAnomalySeriesAfterAQuietPeriodIsANewEpisode(t *testing.T) {
	c := newCorrelator(t, Config{LoneAnomalies: Flag(true)})
	anomaly := func(at time.Duration) Signal {
		return Signal{Kind: SignalAnomaly, Fingerprint: "series-checkout", Service: "checkout", Name: "latency_p99", Time: t0.Add(at)}
	}
	feed(c, anomaly(0), anomaly(30*time.Second))
	first, _ := c.IncidentOf("series-checkout")
	feed(c, alert("ReplicationLag", "payments-db", 20*time.Minute), anomaly(21*time.Minute))
	second, _ := c.IncidentOf("series-checkout")
	cascade, _ := c.IncidentOf("ReplicationLag/payments-db")
	if second == first || second != cascade {
		t.Fatalf("after 20 quiet minutes the series is in %s, want the cascade's %s (first episode: %s)", second, cascade, first)
	}
	if _, err := c.Apply(Command{IncidentID: first, Action: "comment", Text: "seen", Time: t0.Add(22 * time.Minute)}); err != nil {
		t.Fatalf("a comment on the incident its member left: %v", err)
	}
	// Within the quiet period it stays one member.
	feed(c, anomaly(24*time.Minute))
	if got, _ := c.IncidentOf("series-checkout"); got != cascade {
		t.Fatalf("3 minutes later the series moved to %s", got)
	}
}

// A detector that names its episodes (episode_id) says which anomalies are
// one: its updates of a long episode, further apart than the quiet period
// (the detector's update_every is 5 minutes), stay one member of an
// incident that stays open until the close, after a restart too; another
// episode is a new member even soon after; a late event of an episode
// gone by changes nothing; a close lost resolves the incident after
// three quiet periods without a signal.
func TestAnomalyEpisodeIDsSayWhatIsOneEpisode(t *testing.T) {
	c := newCorrelator(t, Config{LoneAnomalies: Flag(true)})
	anomaly := func(episode, phase string, at time.Duration) Signal {
		return Signal{Kind: SignalAnomaly, Fingerprint: "series-checkout", Service: "checkout", Name: "latency_p99", Time: t0.Add(at),
			EpisodeID: episode, Episode: phase, Resolved: phase == EpisodeClose}
	}
	ups := feed(c, anomaly("e1", EpisodeOpen, 0))
	first, _ := c.IncidentOf("series-checkout")
	for _, at := range []time.Duration{5*time.Minute + 10*time.Second, 10*time.Minute + 20*time.Second, 15*time.Minute + 30*time.Second} {
		c = restarted(t, c)
		ups = append(ups, feed(c, anomaly("e1", EpisodeUpdate, at))...)
		if got, _ := c.IncidentOf("series-checkout"); got != first {
			t.Fatalf("an update of episode e1 at %s moved the series to %s, want %s", at, got, first)
		}
	}
	if got := transitions(ups); strings.Contains(got, "resolved") || strings.Contains(got, "reopened") {
		t.Fatalf("transitions %s while the episode is open, want no resolution", got)
	}
	feed(c, alert("ReplicationLag", "payments-db", 20*time.Minute), anomaly("e1", EpisodeClose, 21*time.Minute))
	feed(c, anomaly("e2", EpisodeOpen, 22*time.Minute))
	cascade, _ := c.IncidentOf("ReplicationLag/payments-db")
	if got, _ := c.IncidentOf("series-checkout"); got != cascade || cascade == first {
		t.Fatalf("episode e2 is in %s, want what fails now, %s", got, cascade)
	}
	// Late events of e1 (an update redelivered, its close again) repeat
	// the member and leave it in e2.
	feed(c, anomaly("e1", EpisodeUpdate, 21*time.Minute+30*time.Second), anomaly("e1", EpisodeClose, 23*time.Minute), anomaly("e2", EpisodeUpdate, 27*time.Minute))
	if m := c.members["series-checkout"]; m.inc.id != cascade || m.episode != "e2" || !m.Firing || m.Count != 4 || !m.FirstSeen.Equal(t0.Add(22*time.Minute)) {
		t.Errorf("after late e1 events the member is in %s, episode %s, open %v, count %d, first seen %s; want %s, e2, open, 4, e2's opening",
			m.inc.id, m.episode, m.Firing, m.Count, m.FirstSeen, cascade)
	}
	if st, _ := c.Incident(first); st.State != StatusResolved {
		t.Errorf("e1's incident is %s after its close and a quiet period, want resolved", st.State)
	}
	// A close lost: the incident resolves three quiet periods after its
	// last signal, not one.
	c = newCorrelator(t, Config{})
	feed(c, anomaly("e9", EpisodeOpen, 0), anomaly("e9", EpisodeUpdate, 5*time.Minute))
	id, _ := c.IncidentOf("series-checkout")
	c.Advance(t0.Add(5*time.Minute + 3*c.cfg.QuietPeriod - time.Second))
	if st, _ := c.Incident(id); st.State == StatusResolved {
		t.Fatalf("resolved before three quiet periods without a signal")
	}
	c.Advance(t0.Add(5*time.Minute + 3*c.cfg.QuietPeriod))
	if st, _ := c.Incident(id); st.State != StatusResolved {
		t.Errorf("%s three quiet periods after the last update of an episode never closed, want resolved", st.State)
	}
}

// An incident resolved by hand while an anomaly episode of it is still
// open stays resolved through the detector's routine updates of that
// episode (the person resolving knew it was open, as an alert still
// firing, which Alertmanager resends, does not reopen it either); the
// series going wrong in a new episode is news again (a lone series: an
// incident of its own, TestAFailureThatComesBackIsOneIncident).
func TestManualResolveHoldsThroughAnOpenEpisodesUpdates(t *testing.T) {
	anomaly := func(episode, phase string, at time.Duration) Signal {
		return Signal{Kind: SignalAnomaly, Fingerprint: "series-checkout", Service: "checkout", Name: "latency_p99", Time: t0.Add(at),
			EpisodeID: episode, Episode: phase, Resolved: phase == EpisodeClose}
	}
	c := newCorrelator(t, Config{LoneAnomalies: Flag(true)})
	feed(c, anomaly("e1", EpisodeOpen, 0))
	id := ups0ID(c)
	if _, err := c.Apply(Command{IncidentID: id, Action: "resolve", By: "ana", Time: t0.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if ups := feed(c, anomaly("e1", EpisodeUpdate, 5*time.Minute), anomaly("e1", EpisodeUpdate, 10*time.Minute)); strings.Contains(transitions(ups), string(Reopened)) {
		t.Fatalf("updates of the open episode after a resolve by hand: %s, want no reopening", transitions(ups))
	}
	feed(c, anomaly("e1", EpisodeClose, 12*time.Minute))
	if ups := feed(c, anomaly("e2", EpisodeOpen, 14*time.Minute)); transitions(ups) != string(Opened) {
		t.Errorf("a new episode of the series after the resolve: %q, want an incident opened", transitions(ups))
	}
}

// A failure that comes back in a wave (a pool draining again, retries
// piling up again) is one incident: its root's series going wrong again
// after the incident resolved reopens it, as an alert firing again does,
// and the wave's symptoms on the callers join it, after a restart too.
// Returned episodes' updates repeat it. A lone series blipping again, a
// return past ReopenWindow, a return to an open incident after a quiet
// longer than GroupWindow, a return after a deploy of the root, a fourth
// return (maxReturns) and a new failure below the root that takes the
// series are incidents of their own.
func TestAFailureThatComesBackIsOneIncident(t *testing.T) {
	anomaly := func(service, episode, phase string, at time.Duration) Signal {
		return Signal{Kind: SignalAnomaly, Fingerprint: "series-" + service, Service: service, Name: "latency_p99", Time: t0.Add(at),
			EpisodeID: episode, Episode: phase, Resolved: phase == EpisodeClose}
	}
	wave := func(c *Correlator) string {
		feed(c, anomaly("payments", "p1", EpisodeOpen, 0), anomaly("checkout", "c1", EpisodeOpen, time.Minute),
			anomaly("payments", "p1", EpisodeClose, 5*time.Minute), anomaly("checkout", "c1", EpisodeClose, 6*time.Minute))
		id, _ := c.IncidentOf("series-payments")
		if got, _ := c.IncidentOf("series-checkout"); got != id {
			t.Fatalf("the first wave is in %s and %s, want one incident", id, got)
		}
		return id
	}

	c := newCorrelator(t, Config{LoneAnomalies: Flag(true)})
	first := wave(c)
	c.Advance(t0.Add(15 * time.Minute))
	if st, _ := c.Incident(first); st.State != StatusResolved {
		t.Fatalf("after the first wave the incident is %s, want resolved", st.State)
	}
	ups := feed(c, anomaly("payments", "p2", EpisodeOpen, 20*time.Minute))
	if got, _ := c.IncidentOf("series-payments"); got != first || !strings.Contains(transitions(ups), "reopened") {
		t.Fatalf("the root going wrong again is in %s (transitions %s), want %s reopened", got, transitions(ups), first)
	}
	c = restarted(t, c)
	feed(c, anomaly("checkout", "c2", EpisodeOpen, 22*time.Minute), alert("CheckoutErrors", "checkout", 23*time.Minute), alert("WebErrors", "web", 24*time.Minute))
	for _, fp := range []string{"series-checkout", "CheckoutErrors/checkout", "WebErrors/web"} {
		if got, _ := c.IncidentOf(fp); got != first {
			t.Errorf("%s of the second wave is in %s, want %s", fp, got, first)
		}
	}
	// The returned episode's updates repeat it: no transition, and the
	// timeline says once that the failure came back.
	if ups := feed(c, anomaly("payments", "p2", EpisodeUpdate, 25*time.Minute), anomaly("payments", "p2", EpisodeUpdate, 30*time.Minute)); strings.Contains(transitions(ups), "resolved") || strings.Contains(transitions(ups), "reopened") {
		t.Errorf("updates of the returned episode: transitions %s, want none", transitions(ups))
	}
	st, _ := c.Incident(first)
	if n := len(slices.DeleteFunc(slices.Clone(st.Timeline), func(e Entry) bool { return !strings.Contains(e.What, "came back") })); n != 1 || st.State == StatusResolved {
		t.Errorf("the timeline says %d times that the failure came back, the incident is %s; want once, not resolved: %v", n, st.State, st.Timeline)
	}

	// A lone series blipping again is noise, not a wave.
	c = newCorrelator(t, Config{LoneAnomalies: Flag(true)})
	feed(c, anomaly("payments", "p1", EpisodeOpen, 0), anomaly("payments", "p1", EpisodeClose, 2*time.Minute))
	lone, _ := c.IncidentOf("series-payments")
	feed(c, anomaly("payments", "p2", EpisodeOpen, 20*time.Minute))
	if got, _ := c.IncidentOf("series-payments"); got == lone {
		t.Errorf("a lone series blipping again stayed in %s, want an incident of its own", got)
	}

	// Past ReopenWindow it is a failure of its own.
	c = newCorrelator(t, Config{LoneAnomalies: Flag(true)})
	first = wave(c)
	feed(c, anomaly("payments", "p2", EpisodeOpen, 5*time.Minute+c.cfg.ReopenWindow+time.Minute))
	if got, _ := c.IncidentOf("series-payments"); got == first {
		t.Errorf("the root going wrong again past the reopen window stayed in %s", got)
	}

	// Still open, a series quiet longer than GroupWindow is a failure of
	// its own (the incident is held open by the first wave's callers).
	c = newCorrelator(t, Config{LoneAnomalies: Flag(true)})
	feed(c, anomaly("payments", "p1", EpisodeOpen, 0), alert("CheckoutErrors", "checkout", time.Minute),
		anomaly("payments", "p1", EpisodeClose, 2*time.Minute))
	first, _ = c.IncidentOf("series-payments")
	feed(c, alert("CheckoutErrors", "checkout", 10*time.Minute), anomaly("payments", "p2", EpisodeOpen, 2*time.Minute+c.cfg.GroupWindow+time.Minute))
	if got, _ := c.IncidentOf("series-payments"); got == first {
		t.Errorf("the root going wrong again after a quiet longer than group_window stayed in the open %s", got)
	}

	// A deploy of the root between the waves: the new failure is the
	// deploy's, an incident of its own with the deploy linked.
	c = newCorrelator(t, Config{LoneAnomalies: Flag(true)})
	first = wave(c)
	feed(c, Signal{Kind: SignalChange, Service: "payments", Name: "deploy", Version: "v9", Time: t0.Add(18 * time.Minute), EventID: "c-v9"},
		anomaly("payments", "p2", EpisodeOpen, 20*time.Minute))
	second, _ := c.IncidentOf("series-payments")
	if st, _ := c.Incident(second); second == first || len(st.Changes) != 1 || st.Changes[0].Version != "v9" {
		t.Errorf("after a deploy of the root the series is in %s (first %s), changes %v; want a new incident with the deploy", second, first, st.Changes)
	}

	// A root blipping all day comes back at most maxReturns times.
	c = newCorrelator(t, Config{LoneAnomalies: Flag(true)})
	first = wave(c)
	at := 6 * time.Minute
	for i := range maxReturns + 1 {
		at += 8 * time.Minute
		ep := fmt.Sprint("b", i)
		feed(c, anomaly("payments", ep, EpisodeOpen, at), anomaly("payments", ep, EpisodeClose, at+time.Minute))
	}
	if got, _ := c.IncidentOf("series-payments"); got == first {
		t.Errorf("the root's %d-th return stayed in %s", maxReturns+1, got)
	}

	// A new failure below the root takes the series: it failed first.
	c = newCorrelator(t, Config{LoneAnomalies: Flag(true)})
	first = wave(c)
	feed(c, alert("ReplicationLag", "payments-db", 20*time.Minute), anomaly("payments", "p2", EpisodeOpen, 21*time.Minute))
	below, _ := c.IncidentOf("ReplicationLag/payments-db")
	if got, _ := c.IncidentOf("series-payments"); got != below || below == first {
		t.Errorf("the root going wrong again after a failure below it is in %s, want that failure's %s (first: %s)", got, below, first)
	}
}

// The root's series comes back in a new episode after the incident
// resolved with the first episode's close lost (three quiet periods):
// the wave reopens the incident, as it does when the close came.
func TestAFailureComingBackAfterALostCloseReopens(t *testing.T) {
	anomaly := func(service, episode, phase string, at time.Duration) Signal {
		return Signal{Kind: SignalAnomaly, Fingerprint: "series-" + service, Service: service, Name: "latency_p99", Time: t0.Add(at),
			EpisodeID: episode, Episode: phase, Resolved: phase == EpisodeClose}
	}
	c := newCorrelator(t, Config{})
	feed(c, anomaly("payments", "p1", EpisodeOpen, 0), alert("CheckoutErrors", "checkout", time.Minute),
		resolved(alert("CheckoutErrors", "checkout", time.Minute), 2*time.Minute))
	first, _ := c.IncidentOf("series-payments")
	c.Advance(t0.Add(19 * time.Minute))
	if st, _ := c.Incident(first); st.State != StatusResolved {
		t.Fatalf("with p1's close lost, the incident is %s after three quiet periods, want resolved", st.State)
	}
	ups := feed(c, anomaly("payments", "p2", EpisodeOpen, 20*time.Minute))
	got, _ := c.IncidentOf("series-payments")
	st, _ := c.Incident(got)
	if st.State == StatusResolved {
		t.Errorf("the root's new episode went to %s, which stays resolved (transitions %q): the wave is lost", got, transitions(ups))
	}
	if got == first && !strings.Contains(transitions(ups), string(Reopened)) {
		t.Errorf("the root's new episode came back to %s without reopening it (transitions %q)", got, transitions(ups))
	}
}

// An alert whose rule waits long before firing (kube-prometheus's
// KubePodCrashLooping waits `for: 15m`) joins, past the spread window,
// the incident with an alert firing on its service, or that fired there
// until at most SlowAlertWait before it: it waited on that failure.
// Another late alert there, a slow one past SlowAlertWait, or any with
// the rule off, is a failure of its own.
func TestSlowAlertJoinsTheFailureItWaitedOn(t *testing.T) {
	failure := func(c *Correlator, until time.Time) string {
		// The alerts repeat every 4 minutes, as Alertmanager resends
		// them: the incident keeps firing.
		for at := time.Duration(0); t0.Add(at + time.Minute).Before(until); at += 4 * time.Minute {
			feed(c, alert("PostgresDown", "payments-db", at), alert("HighErrorRate", "payments", at+time.Minute))
		}
		id, _ := c.IncidentOf("HighErrorRate/payments")
		return id
	}
	for _, tc := range []struct {
		name  string
		cfg   Config
		late  Signal
		prior []Signal
		joins bool
	}{
		{"a slow alert on a failing service", Config{}, alert("KubePodCrashLooping", "payments", 14*time.Minute), nil, true},
		{"another late alert", Config{}, alert("HighLatency", "payments", 14*time.Minute), nil, false},
		{"a slow alert on a service the incident does not hold", Config{}, alert("KubePodCrashLooping", "checkout", 14*time.Minute), nil, false},
		{"a slow alert where the failure ended 15 s before", Config{}, alert("KubePodCrashLooping", "payments", 13*time.Minute+30*time.Second),
			[]Signal{resolved(alert("HighErrorRate", "payments", 0), 13*time.Minute+15*time.Second)}, true},
		{"a slow alert past the wait", Config{SlowAlertWait: 5 * time.Minute}, alert("KubePodCrashLooping", "payments", 14*time.Minute), nil, false},
		{"the rule off", Config{SlowAlerts: []string{}}, alert("KubePodCrashLooping", "payments", 14*time.Minute), nil, false},
	} {
		c := newCorrelator(t, tc.cfg)
		id := failure(c, tc.late.Time)
		feed(c, tc.prior...)
		feed(c, tc.late)
		got, _ := c.IncidentOf(tc.late.Fingerprint)
		if (got == id) != tc.joins {
			t.Errorf("%s: it went to %s, the failure is %s, want joined %v", tc.name, got, id, tc.joins)
		}
	}
	// A forecast firing on the service is no failure to wait on.
	c := newCorrelator(t, Config{})
	for at := time.Duration(0); at < 14*time.Minute; at += 4 * time.Minute {
		feed(c, alert("KubePersistentVolumeFillingUp", "payments", at), alert("HighErrorRate", "checkout", at))
	}
	feed(c, alert("KubePodCrashLooping", "payments", 14*time.Minute))
	forecast, _ := c.IncidentOf("KubePersistentVolumeFillingUp/payments")
	if got, _ := c.IncidentOf("KubePodCrashLooping/payments"); got == forecast {
		t.Errorf("a slow alert joined %s, where only a forecast fires on its service", got)
	}
}

// A slow alert joins the failure it waited on even when that failure's
// alerts fired once, more than GroupWindow before it, and stayed firing
// (Alertmanager repeats a firing alert only every few hours): its rule's
// condition began while the incident still took members. An SLO's slow
// burn (Pyrra's ErrorBudgetBurn over 6h), a consumer's lag and a
// replica's are such alerts. Anything else that late is a failure of its own.
func TestSlowAlertWaitedOnAFailureThatFiredOnce(t *testing.T) {
	burn := alert("ErrorBudgetBurn", "payments", 14*time.Minute)
	burn.Labels = map[string]string{"slo": "payments-availability", "long": "6h"}
	burn.Fingerprint = "ErrorBudgetBurn/payments/6h"
	for _, tc := range []struct {
		late  Signal
		joins bool
	}{
		{alert("KubePodCrashLooping", "payments", 14*time.Minute), true},
		{burn, true},
		{alert("PostgresqlReplicationLag", "payments", 14*time.Minute), true},
		{alert("KafkaConsumergroupLag", "payments", 14*time.Minute), true}, // kafka-exporter's, a lag building up
		{alert("KubeHpaMaxedOut", "payments", 14*time.Minute), true},       // kubernetes-mixin's, for: 15m
		{alert("CPUThrottlingHigh", "payments", 14*time.Minute), false},    // for: 15m too, but a resource alert: no symptom (LocalAlerts)
		{alert("HighLatency", "payments", 14*time.Minute), false},
		{alert("KubePodCrashLooping", "payments", 27*time.Minute), false}, // past GroupWindow and SlowAlertWait
	} {
		c := newCorrelator(t, Config{})
		feed(c, alert("PostgresDown", "payments-db", 0), alert("HighErrorRate", "payments", time.Minute))
		id, _ := c.IncidentOf("HighErrorRate/payments")
		feed(c, tc.late)
		if got, _ := c.IncidentOf(tc.late.Fingerprint); (got == id) != tc.joins {
			t.Errorf("%s at %s: it went to %s, the failure is %s, want joined %v", tc.late.Name, tc.late.Time.Sub(t0), got, id, tc.joins)
		}
	}
	// Where the failure ended: 12 minutes before the slow alert, it
	// waited on it; 18 minutes before (past SlowAlertWait), it did not.
	for _, tc := range []struct {
		at    time.Duration
		joins bool
	}{{14 * time.Minute, true}, {20 * time.Minute, false}} {
		c := newCorrelator(t, Config{})
		feed(c, alert("PostgresDown", "payments-db", 0), alert("HighErrorRate", "payments", time.Minute),
			resolved(alert("HighErrorRate", "payments", time.Minute), 2*time.Minute))
		id, _ := c.IncidentOf("HighErrorRate/payments")
		late := alert("KubePodCrashLooping", "payments", tc.at)
		feed(c, late)
		if got, _ := c.IncidentOf(late.Fingerprint); (got == id) != tc.joins {
			t.Errorf("a slow alert %s after payments stopped failing: in %s, the failure is %s, want joined %v", tc.at-2*time.Minute, got, id, tc.joins)
		}
	}
}

// A rollback while the incident is under way does not split off the slow
// alert that waited on the bad deploy's failure: its condition began
// before the rollback. A new alert of another kind after the rollback
// is the change's, as before.
func TestSlowAlertAfterARollback(t *testing.T) {
	deploy := func(version string, at time.Duration) Signal {
		return Signal{Kind: SignalChange, Service: "payments", Name: "deploy", Version: version, Time: t0.Add(at), EventID: "c-" + version}
	}
	for _, tc := range []struct {
		late  Signal
		joins bool
	}{
		{alert("KubePodCrashLooping", "payments", 16*time.Minute), true},
		{alert("HighLatency", "payments", 7*time.Minute), false},
	} {
		c := newCorrelator(t, Config{})
		feed(c, deploy("v2", -time.Minute), alert("HighErrorRate", "payments", 0), deploy("v1", 6*time.Minute), tc.late)
		id, _ := c.IncidentOf("HighErrorRate/payments")
		if got, _ := c.IncidentOf(tc.late.Fingerprint); (got == id) != tc.joins {
			t.Errorf("%s %s after the deploy, %s after the rollback: in %s, the deploy's incident is %s, want joined %v",
				tc.late.Name, tc.late.Time.Sub(t0.Add(-time.Minute)), tc.late.Time.Sub(t0.Add(6*time.Minute)), got, id, tc.joins)
		}
	}
}

// Symptoms that alert before their cause open incidents of their own; when
// the cause arrives it joins one of them as its late root and the others,
// opened within spread_window on its direct dependents, are merged into it:
// their last event is resolved and names the incident they went into.
// One opened earlier than spread_window stays apart.
func TestLateRootMergesTheSymptomsThatAlertedFirst(t *testing.T) {
	c := correlatorOn(t, Config{}, `
services:
  api-a: {depends_on: [db]}
  api-b: {depends_on: [db]}
  api-c: {depends_on: [db]}
  db:    {}
`)
	old := alert("HighLatency", "api-c", 0)
	a, b, db := alert("HighLatency", "api-a", 10*time.Minute), alert("HighLatency", "api-b", 10*time.Minute+30*time.Second), alert("ReplicationLag", "db", 11*time.Minute)
	feed(c, old, a, b)
	before, _ := c.IncidentOf(a.Fingerprint)
	ups := feed(c, db)
	into, _ := c.IncidentOf(db.Fingerprint)
	for _, s := range []Signal{a, b} {
		if got, _ := c.IncidentOf(s.Fingerprint); got != into {
			t.Errorf("%s in %s, want the root's incident %s", s.Fingerprint, got, into)
		}
	}
	if got, _ := c.IncidentOf(old.Fingerprint); got == into {
		t.Errorf("the symptom opened 11 minutes before (spread_window %s) was merged too", c.cfg.SpreadWindow)
	}
	var merged []string
	for _, u := range ups {
		if u.State.MergedInto != "" {
			if u.Transition != Resolved || u.State.MergedInto != into {
				t.Errorf("merge event %s merged into %q, want resolved into %s", u.Transition, u.State.MergedInto, into)
			}
			merged = append(merged, u.State.IncidentID)
		}
	}
	if len(merged) != 1 || merged[0] == into || (merged[0] != before && into != before) {
		t.Errorf("merged %v into %s, want the other symptom's incident", merged, into)
	}
	if _, ok := c.Incident(merged[0]); ok || c.Stats().Merged != 1 {
		t.Errorf("the merged incident is still known (stats %+v)", c.Stats())
	}
	st, _ := c.Incident(into)
	if st.MemberCount != 3 || st.RootCauses[0].Service != "db" {
		t.Errorf("merged incident: %d members, first root cause %s; want 3 and db", st.MemberCount, st.RootCauses[0].Service)
	}
}

// A caller two hops above the late root, whose alert names by a peer
// label the hop between (its upstream, the circuit it opened) or the root
// itself, alerted first on its own: the late root merges it as it merges
// its direct dependents' incidents, live and after a restart. Without the
// label, or naming a service unrelated to the root, it stays apart; and
// once merged, no index holds the incident it was.
func TestLateRootMergesTheCallerThatNamedItsUpstream(t *testing.T) {
	withLabels := func(s Signal, labels map[string]string) Signal {
		s.Labels = labels
		return s
	}
	db := alert("DBDown", "db", 13*time.Second)
	for _, tc := range []struct {
		name   string
		labels map[string]string
		one    bool
	}{
		{"upstream names the hop between", map[string]string{"upstream": "api"}, true},
		{"circuit names the hop between", map[string]string{"circuit": "api"}, true},
		{"upstream names the root", map[string]string{"upstream": "db"}, true},
		{"no label", nil, false},
		{"upstream names an unrelated service", map[string]string{"upstream": "search"}, false},
		{"a label that is no peer's names the hop between", map[string]string{"team": "api"}, false},
		{"a label naming a caller names the hop between", map[string]string{"client": "api"}, false},
		{"a label naming a downstream names the root", map[string]string{"downstream": "db"}, false},
	} {
		web := withLabels(alert("CircuitBreakerOpen", "web", 0), tc.labels)
		for _, restart := range []bool{false, true} {
			c := correlatorOn(t, Config{}, chainCatalog)
			feed(c, web)
			if restart {
				c = restarted(t, c)
			}
			feed(c, db)
			if got := incidentOf(c, web) == incidentOf(c, db); got != tc.one {
				t.Errorf("%s (restarted %v): one incident %v, want %v", tc.name, restart, got, tc.one)
			}
			if !tc.one {
				continue
			}
			checkPeerIndex(t, c)
		}
	}
	// The index follows the root: web's incident, named after api, is
	// filed under it until api joins as its late root.
	c := correlatorOn(t, Config{}, chainCatalog)
	web := alert("CircuitBreakerOpen", "web", 0)
	web.Labels = map[string]string{"upstream": "api"}
	feed(c, web)
	if _, ok := c.byPeer["api"][c.incidents[incidentOf(c, web)]]; !ok {
		t.Errorf("web's incident is not filed as naming api")
	}
	feed(c, alert("Errors", "api", 10*time.Second))
	checkPeerIndex(t, c)
	if len(c.byPeer) != 0 {
		t.Errorf("filed as naming %v, want nothing once api is the root", c.byPeer)
	}
}

// checkPeerIndex compares byPeer with what the incidents' root members
// name, computed afresh.
func checkPeerIndex(t *testing.T, c *Correlator) {
	t.Helper()
	want := map[string]map[*incident]struct{}{}
	for _, inc := range c.incidents {
		for _, m := range inc.members {
			if m.Service != inc.root {
				continue
			}
			c.peersOf(m, func(named string) {
				if want[named] == nil {
					want[named] = map[*incident]struct{}{}
				}
				want[named][inc] = struct{}{}
			})
		}
	}
	if !reflect.DeepEqual(c.byPeer, want) {
		t.Errorf("byPeer %v, want %v", c.byPeer, want)
	}
}

// A late root merges only what it could have joined, and only when it
// becomes the root (not at another alert of a root that already was one):
// not a symptom that opened before its service changed (that failure is
// not the change's), nor one that opened longer than spread_window before
// it, nor one of another group_by value.
func TestLateRootMergesOnlyWhatItCouldJoin(t *testing.T) {
	deploy := func(service string, at time.Duration) Signal {
		return Signal{Kind: SignalChange, Service: service, Name: "deploy", Version: "v9", Time: t0.Add(at), EventID: fmt.Sprint("c-", service, at)}
	}
	for _, tc := range []struct {
		name           string
		cfg            Config
		signals        []Signal
		symptom, cause string // fingerprints that must stay in two incidents
	}{
		{"the root changed after the symptom opened", Config{}, []Signal{
			alert("HighErrorRate", "checkout", 0), deploy("payments", time.Minute), alert("ConnectionPoolExhausted", "payments", 2*time.Minute),
		}, "HighErrorRate/checkout", "ConnectionPoolExhausted/payments"},
		{"another alert of a root that was already the root", Config{DownDepth: 2}, []Signal{
			alert("ReplicationLag", "payments-db", 0), deploy("checkout", 30*time.Second), alert("HighErrorRate", "checkout", time.Minute),
			alert("HighLatency", "payments-db", 2*time.Minute),
		}, "HighErrorRate/checkout", "ReplicationLag/payments-db"},
		{"the root alerted past spread_window", Config{}, []Signal{
			alert("HighErrorRate", "checkout", 0), alert("ConnectionPoolExhausted", "payments", 9*time.Minute),
		}, "HighErrorRate/checkout", "ConnectionPoolExhausted/payments"},
		{"the root alerted in another cluster", Config{GroupBy: []string{"cluster"}}, []Signal{
			inCluster(alert("HighErrorRate", "checkout", 0), "eu"), inCluster(alert("ConnectionPoolExhausted", "payments", time.Minute), "us"),
		}, "HighErrorRate/checkout", "ConnectionPoolExhausted/payments"},
	} {
		c := newCorrelator(t, tc.cfg)
		ups := feed(c, tc.signals...)
		a, _ := c.IncidentOf(tc.symptom)
		b, _ := c.IncidentOf(tc.cause)
		if a == "" || a == b || c.Stats().Merged != 0 {
			t.Errorf("%s: %s in %q, %s in %q, %d merged (%s); want two incidents, none merged", tc.name, tc.symptom, a, tc.cause, b, c.Stats().Merged, transitions(ups))
		}
	}
	// The same two a minute apart, in one cluster, unchanged: one incident.
	c := newCorrelator(t, Config{})
	feed(c, alert("HighErrorRate", "checkout", 0), alert("ConnectionPoolExhausted", "payments", time.Minute))
	a, _ := c.IncidentOf("HighErrorRate/checkout")
	if b, _ := c.IncidentOf("ConnectionPoolExhausted/payments"); a != b {
		t.Errorf("the root alerting a minute after its symptom: incidents %q and %q, want one", a, b)
	}
}

// A symptom that joins an incident brings the incident its own symptom
// opened before it was notified (a fast cascade: web, two hops above the
// database, is notified before api, the hop between), also when it was
// first seen resolved or after a restart; not one that opened before it
// started failing (that failed first, on its own), nor one it could not
// have joined (another cluster), nor one two hops above it (top, whose
// own incident is web's to bring), unless that one's alert names its
// direct dependent by a peer label: it fails on it, whenever it opened.
func TestSymptomBringsWhatItsSymptomsOpened(t *testing.T) {
	const chain = `
services:
  top: {depends_on: [web]}
  web: {depends_on: [api]}
  api: {depends_on: [db]}
  db:  {}
`
	api := alert("Errors", "api", time.Minute)
	apiResolvedFirst := resolved(api, time.Minute+10*time.Second)
	apiResolvedFirst.Started = api.Time
	namingWeb := alert("CircuitBreakerOpen", "top", 30*time.Second)
	namingWeb.Labels = map[string]string{"upstream": "web"}
	for _, tc := range []struct {
		name    string
		cfg     Config
		piece   Signal // fed first: opens an incident of its own
		api     Signal
		restart bool
		one     bool
	}{
		{"web failed after api", Config{}, alert("Errors", "web", 90*time.Second), api, false, true},
		{"api first seen resolved", Config{}, alert("Errors", "web", 90*time.Second), apiResolvedFirst, false, true},
		{"after a restart", Config{}, alert("Errors", "web", 90*time.Second), api, true, true},
		{"web failed before api", Config{}, alert("Errors", "web", 30*time.Second), api, false, false},
		{"web in another cluster", Config{GroupBy: []string{"cluster"}}, inCluster(alert("Errors", "web", 90*time.Second), "eu"), api, false, false},
		{"top, two hops above api", Config{}, alert("Errors", "top", 90*time.Second), api, false, false},
		{"top before api, naming web its upstream", Config{}, namingWeb, api, false, true},
		{"top before api, naming web its upstream, after a restart", Config{}, namingWeb, api, true, true},
	} {
		c := correlatorOn(t, tc.cfg, chain)
		db := alert("Down", "db", 0)
		feed(c, tc.piece, db) // the piece first: no direct dependent's of db, so db leaves it be
		a, _ := c.IncidentOf(tc.piece.Fingerprint)
		if b, _ := c.IncidentOf(db.Fingerprint); a == b {
			t.Fatalf("%s: %s and db share %s before api alerted", tc.name, tc.piece.Service, a)
		}
		if tc.restart {
			c = restarted(t, c)
		}
		ups := feed(c, tc.api)
		a, _ = c.IncidentOf(tc.piece.Fingerprint)
		b, _ := c.IncidentOf(db.Fingerprint)
		if got, _ := c.IncidentOf(tc.api.Fingerprint); got != b {
			t.Fatalf("%s: api in %s, want db's %s", tc.name, got, b)
		}
		if (a == b) != tc.one {
			t.Errorf("%s: %s in db's incident %v, want %v (%s)", tc.name, tc.piece.Service, a == b, tc.one, transitions(ups))
		}
	}
}

// With memory full, a symptom whose incident is forgotten as it joins
// (it was the oldest) brings nothing into it: what stays is consistent.
func TestSymptomForgottenAsItJoinsBringsNothing(t *testing.T) {
	c := correlatorOn(t, Config{MaxFingerprints: 2}, `
services:
  web: {depends_on: [api]}
  api: {depends_on: [db]}
  db:  {}
`)
	feed(c, alert("Errors", "web", 90*time.Second), alert("Down", "db", 0), alert("Errors", "api", time.Minute))
	for _, fp := range []string{"Errors/web", "Down/db", "Errors/api"} {
		if id, ok := c.IncidentOf(fp); ok {
			if _, ok := c.Incident(id); !ok {
				t.Errorf("%s is in %s, which the correlator does not know", fp, id)
			}
		}
	}
	if got, want := len(restarted(t, c).members), len(c.members); got != want {
		t.Errorf("%d members after a restore, %d live", got, want)
	}
}

// A storm cascading up from the database is one incident, whose first root
// cause is the database, with the reason.
func TestCascadeIsOneIncidentWithItsRoot(t *testing.T) {
	c := newCorrelator(t, Config{})
	feed(c,
		alert("HighLatency", "web", 0), // symptoms first
		alert("HighErrorRate", "checkout", 20*time.Second),
		alert("ConnectionPoolExhausted", "payments", 40*time.Second),
		alert("ReplicationLag", "payments-db", 90*time.Second), // the root, late
		alert("HighErrorRate", "web", 2*time.Minute),
	)
	incs := c.Incidents()
	if len(incs) != 1 {
		t.Fatalf("%d incidents, want 1: %+v", len(incs), incs)
	}
	inc := incs[0]
	if inc.MemberCount != 5 || !reflect.DeepEqual(inc.Services, []string{"checkout", "payments", "payments-db", "web"}) {
		t.Fatalf("members %d, services %v", inc.MemberCount, inc.Services)
	}
	root := inc.RootCauses[0]
	if root.Service != "payments-db" || !strings.Contains(strings.Join(root.Reasons, ";"), "most upstream") {
		t.Fatalf("root causes %+v, want payments-db first as the most upstream failing service", inc.RootCauses)
	}
	if inc.Service != "payments-db" || inc.Team != "dba" || inc.Runbook != "https://runbooks/pg" || inc.Owner != "di" {
		t.Fatalf("enrichment %s/%s/%s/%s, want the root's owner, team and runbook", inc.Service, inc.Team, inc.Owner, inc.Runbook)
	}
	if !strings.HasPrefix(inc.Title, "ReplicationLag on payments-db and 3 more services") {
		t.Fatalf("title %q", inc.Title)
	}
}

// Each service joining an incident says on its timeline why: how it
// relates to the root, and the evidence that chose this incident (a label
// naming a service in it, what it calls failing in it); a late root, an
// unplaced signal, an alert storm's and a shared service's incident say
// theirs.
func TestTimelineSaysWhyEachServiceJoined(t *testing.T) {
	pool := alert("ConnectionPoolExhausted", "payments", 20*time.Second)
	pool.Labels = map[string]string{"pool": "payments-db"}
	probe := alert("ProbeFailed", "blackbox", 30*time.Second)
	c := newCorrelator(t, Config{})
	feed(c,
		alert("ReplicationLag", "payments-db", 0),
		pool,
		probe,
		alert("HighLatency", "web", 40*time.Second),
		alert("HighErrorRate", "checkout", time.Minute),
	)
	wantTimeline(t, c, "ReplicationLag/payments-db",
		"opened by alert ReplicationLag on payments-db",
		"payments joined with alert ConnectionPoolExhausted: it depends on the root, payments-db; its label pool names payments-db, in the incident; payments-db, which it calls, fails in the incident",
		"blackbox joined with alert ProbeFailed: the catalog does not place blackbox, and it failed within 1m0s of payments joining",
		"web joined with alert HighLatency: it depends on the root, payments-db (3 hops away)",
		"checkout joined with alert HighErrorRate: it depends on the root, payments-db (2 hops away); payments, which it calls, fails in the incident",
	)

	late := newCorrelator(t, Config{})
	feed(late, alert("HighLatency", "web", 0), alert("HighErrorRate", "checkout", 20*time.Second))
	wantTimeline(t, late, "HighLatency/web",
		"opened by alert HighLatency on web",
		"checkout joined with alert HighErrorRate: the root, web, depends on it: the cause showing after its symptoms",
	)

	storm := correlatorOn(t, Config{}, `
services:
  a: {depends_on: [a-db]}
  b: {depends_on: [b-db]}
  c: {depends_on: [c-db]}
  d: {depends_on: [d-db]}
`)
	feed(storm,
		alert("HighErrorRate", "a", 0),
		alert("HighErrorRate", "b", 20*time.Second),
		alert("HighErrorRate", "c", 40*time.Second),
		alert("DiskFull", "d", time.Minute),
	)
	wantTimeline(t, storm, "DiskFull/d",
		"d joined with alert DiskFull: an alert storm, which takes what fails now on any service")

	shared := correlatorOn(t, Config{}, threeFailuresAndDNS)
	feed(shared,
		alert("HighErrorRate", "web", 0),
		alert("SearchErrors", "search", 20*time.Second),
		alert("SendFailures", "mail", 40*time.Second),
		alert("CoreDNSErrors", "coredns", 90*time.Second),
		alert("IndexDown", "index", 3*time.Minute),
	)
	wantTimeline(t, shared, "IndexDown/index",
		"index joined with alert IndexDown: the root, coredns, is a shared service failing under 4 services")
}

// Two services join one incident at one instant, then a signal the
// catalog cannot place joins next to them: its timeline line names the
// same one live and after a restore.
func TestTimelineOfAnUnplacedSignalIsTheSameAfterARestore(t *testing.T) {
	run := func(restart bool) string {
		c := newCorrelator(t, Config{})
		feed(c, alert("HighLatency", "payments-db", 0), alert("HighErrorRate", "payments", 0))
		if restart {
			c = restarted(t, c)
		}
		feed(c, alert("ProbeFailed", "probe-x", 10*time.Second))
		id, _ := c.IncidentOf("ProbeFailed/probe-x")
		st, _ := c.Incident(id)
		return st.Timeline[len(st.Timeline)-1].What
	}
	if live, restored := run(false), run(true); live != restored || !strings.Contains(live, "of payments joining") {
		t.Fatalf("the unplaced signal's line:\nlive:     %s\nrestored: %s\nwant both naming payments, first by name", live, restored)
	}
}

// wantTimeline fails unless the timeline of fp's incident holds each of
// want, in that order, among its entries.
func wantTimeline(t *testing.T, c *Correlator, fp string, want ...string) {
	t.Helper()
	id, ok := c.IncidentOf(fp)
	if !ok {
		t.Fatalf("%s is in no incident", fp)
	}
	st, _ := c.Incident(id)
	var got []string
	for _, e := range st.Timeline {
		got = append(got, e.What)
	}
	i := 0
	for _, e := range got {
		if i < len(want) && e == want[i] {
			i++
		}
	}
	if i < len(want) {
		t.Errorf("timeline of %s lacks %q (in order); it has:\n%s", fp, want[i], strings.Join(got, "\n"))
	}
}

// A signal whose service is not catalogued is about the service one of
// its labels names (a scrape job as the service, the service in app), or
// the catalogued one spelled in other letter case; an alert on a service
// no label ties to the catalog goes by time alone: it joins the cascade
// that reached payments 10 s before it (unplaced_signals), and with that
// rule off stays apart.
func TestServiceNamedByALabelOrInOtherCase(t *testing.T) {
	// Three HighErrorRate within a minute would be an alert storm.
	c := newCorrelator(t, Config{AlertStorms: Flag(false)})
	db := alert("ReplicationLag", "kubernetes-pods", 0)
	db.Labels = map[string]string{"job": "kubernetes-pods", "app": "payments-db", "upstream": "search"}
	api := alert("HighErrorRate", "Payments", 20*time.Second)
	lone := alert("HighErrorRate", "kubernetes-pods", 30*time.Second)
	lone.Labels = map[string]string{"job": "kubernetes-pods", "upstream": "payments"}
	// No label of serviceLabels, but a value naming a catalogued service.
	cart := alert("HighErrorRate", "unknown", 40*time.Second)
	cart.Labels = map[string]string{"zone": "eu-1", "svc": "cart", "pool": "payments"}
	feed(c, db, api, lone, cart)
	incs := c.Incidents()
	if len(incs) != 2 {
		t.Fatalf("%d incidents, want the cascade (with the alert no label ties) and cart's: %+v", len(incs), incs)
	}
	for _, inc := range incs {
		switch {
		case inc.MemberCount == 3 && reflect.DeepEqual(inc.Services, []string{"kubernetes-pods", "payments", "payments-db"}) && inc.RootCauses[0].Service == "payments-db":
		case inc.MemberCount == 1 && reflect.DeepEqual(inc.Services, []string{"cart"}):
		default:
			t.Errorf("incident %+v", inc)
		}
	}
	off := newCorrelator(t, Config{AlertStorms: Flag(false), UnplacedSignals: Flag(false)})
	feed(off, db, api, lone, cart)
	if got, _ := off.IncidentOf(lone.Fingerprint); len(off.Incidents()) != 3 || got == func() string { id, _ := off.IncidentOf(api.Fingerprint); return id }() {
		t.Errorf("unplaced_signals off: %d incidents, the alert no label ties in %s; want it apart", len(off.Incidents()), got)
	}
	// Of two labels naming catalogued services, a peer's (database)
	// never names the signal's own, and of the others the first key in
	// order does, every time.
	for range 20 {
		if got := c.names.of("unknown", map[string]string{"database": "payments-db", "zz": "search", "owner_app": "cart"}); got != "cart" {
			t.Fatalf("service %q, want cart (owner_app before zz; database a peer)", got)
		}
	}
	// A Kubernetes object named after a service's workload names it: a
	// Deployment's or a StatefulSet's pod, a CronJob's job and its pod, a
	// StatefulSet's volume claim. What follows the name must look
	// generated: a pod of an uncatalogued payments-loader is no payments'.
	for labels, want := range map[[2]string]string{
		{"pod", "payments-db-7d9f8b6c5-x2x9q"}:          "payments-db",
		{"pod", "payments-6c9d7bf8-lrbbh"}:              "payments",
		{"pod", "payments-db-0"}:                        "payments-db",
		{"job_name", "search-29001234"}:                 "search",
		{"job_name", "search-reindex-29001234"}:         "search",
		{"pod", "search-reindex-29001234-wq8zt"}:        "search",
		{"persistentvolumeclaim", "data-payments-db-0"}: "payments-db",
		{"persistentvolumeclaim", "payments-db-0"}:      "kubernetes-pods",
		{"pod", "payments-loader-abc-xyz"}:              "kubernetes-pods",
		{"pod", "data-payments-db-0"}:                   "kubernetes-pods",
		{"pod", "paymentsdb-0"}:                         "kubernetes-pods",
		{"pod", strings.Repeat("payments-", 40) + "0"}:  "kubernetes-pods",
	} {
		if got := c.names.of("kubernetes-pods", map[string]string{"job": "kubernetes-pods", labels[0]: labels[1]}); got != want {
			t.Errorf("%s=%s: service %q, want %q", labels[0], labels[1], got, want)
		}
	}
	// A name that starts with a catalogued one names it when nothing
	// names one outright: an exporter's Service, an SLO; the longest
	// wins. Words glued on without a dash do not.
	for labels, want := range map[[2]string]string{
		{"service", "payments-db-metrics"}:                 "payments-db",
		{"service", "payments-db-postgresql-exporter"}:     "payments-db",
		{"slo", "search-availability"}:                     "search",
		{"service", "paymentsdb-metrics"}:                  "kubernetes-pods",
		{"database", "payments-db-metrics"}:                "kubernetes-pods",
		{"service", strings.Repeat("payments-", 40) + "x"}: "kubernetes-pods",
	} {
		sig := map[string]string{"job": "kubernetes-pods", labels[0]: labels[1]}
		service := "kubernetes-pods"
		if labels[0] == "service" {
			service = labels[1]
		}
		got := c.names.of(service, sig)
		if labels[0] == "service" && want == "kubernetes-pods" {
			want = service // unplaced: its own service
		}
		if got != want {
			t.Errorf("%s=%s: service %q, want %q", labels[0], labels[1], got, want)
		}
	}
	// A name made safe for a metric (_ for -) is the service too.
	if got := c.names.of("Payments_DB", nil); got != "payments-db" {
		t.Errorf("service %q, want payments-db", got)
	}
	// ServiceOf tells what Observe took: the eval's by-service baseline
	// groups by it.
	if got := c.ServiceOf(db); got != "payments-db" {
		t.Errorf("ServiceOf %q, want payments-db, as the incident has it", got)
	}
	p := NewPartitioner(shop(t), 7)
	if p.OfSignal(db) != p.Of("payments-db") || p.OfSignal(api) != p.Of("payments") {
		t.Error("a signal's partition must be that of the service the correlator finds for it")
	}
}

// A service that depends on nothing and that nothing depends on (DNS)
// alerting amid a burst of incidents on unrelated services is their cause:
// they merge into its incident, and later symptoms anywhere join it.
// Amid fewer incidents (a standalone job failing next to two unrelated
// failures) it stays apart, as it does with shared_services off.
func TestSharedServiceCausesABurst(t *testing.T) {
	yaml := `
services:
  web:     {depends_on: [api]}
  api:     {depends_on: [db]}
  db:      {}
  search:  {depends_on: [index]}
  index:   {}
  mail:    {depends_on: [smtp]}
  smtp:    {}
  coredns: {}
`
	burst := []Signal{
		alert("HighErrorRate", "web", 0),
		alert("HighErrorRate", "search", 20*time.Second),
		alert("SendFailures", "mail", 40*time.Second),
		alert("CoreDNSErrors", "coredns", 90*time.Second),
		alert("HighErrorRate", "index", 3*time.Minute), // after: joins too
	}
	for _, on := range []bool{true, false} {
		c := correlatorOn(t, Config{SharedServices: Flag(on)}, yaml)
		feed(c, burst...)
		dns, _ := c.IncidentOf("CoreDNSErrors/coredns")
		together := 0
		for _, s := range burst {
			if id, _ := c.IncidentOf(s.Fingerprint); id == dns {
				together++
			}
		}
		if want := map[bool]int{true: 5, false: 1}[on]; together != want {
			t.Errorf("shared_services %v: %d of the burst with coredns, want %d", on, together, want)
		}
	}
	c := correlatorOn(t, Config{}, yaml)
	feed(c, burst[0], burst[1], alert("CoreDNSErrors", "coredns", 90*time.Second))
	if len(c.Incidents()) != 3 {
		t.Errorf("coredns amid two incidents: %d incidents, want 3 apart", len(c.Incidents()))
	}
}

// Two failures at the same moment in unrelated parts of the catalog stay
// two incidents, even with the same alert name; an alert on a service
// nothing relates to is its own.
func TestUnrelatedFailuresStayApart(t *testing.T) {
	c := newCorrelator(t, Config{})
	feed(c,
		alert("HighLatency", "payments-db", 0),
		alert("HighLatency", "search-index", time.Second),
		alert("HighErrorRate", "payments", 10*time.Second),
		alert("HighErrorRate", "search", 11*time.Second),
		alert("DiskFull", "batch", 12*time.Second),
	)
	want := map[string]string{
		"HighLatency/payments-db": "a", "HighErrorRate/payments": "a",
		"HighLatency/search-index": "b", "HighErrorRate/search": "b",
		"DiskFull/batch": "c",
	}
	checkPartition(t, c, want)
}

// checkPartition asserts that fingerprints share an incident exactly when
// they share a label in want.
func checkPartition(t *testing.T, c *Correlator, want map[string]string) {
	t.Helper()
	got := map[string]string{}
	for fp := range want {
		id, ok := c.IncidentOf(fp)
		if !ok {
			t.Fatalf("%s is in no incident", fp)
		}
		got[fp] = id
	}
	for a := range want {
		for b := range want {
			if (want[a] == want[b]) != (got[a] == got[b]) {
				t.Errorf("%s and %s: together %v, want %v", a, b, got[a] == got[b], want[a] == want[b])
			}
		}
	}
}

// A deploy shortly before the first alert is linked and ranks its service
// as a root cause; one long before, or to an unrelated service, is not.
func TestChangesAreLinked(t *testing.T) {
	c := newCorrelator(t, Config{})
	change := func(service, version string, at time.Duration) Signal {
		return Signal{Kind: SignalChange, Service: service, Name: "deploy", Version: version, Author: "ana", Time: t0.Add(at), EventID: "c-" + version}
	}
	feed(c,
		change("payments", "v1", -3*time.Hour), // too old
		change("batch", "v7", -5*time.Minute),  // unrelated
		change("payments", "v2", -6*time.Minute),
		alert("HighErrorRate", "checkout", 0),
		alert("HighLatency", "web", 30*time.Second),
	)
	inc := c.Incidents()[0]
	if len(inc.Changes) != 1 || inc.Changes[0].Version != "v2" {
		t.Fatalf("changes %+v, want only payments v2", inc.Changes)
	}
	if inc.RootCauses[0].Service != "payments" && inc.RootCauses[0].Service != "checkout" {
		t.Fatalf("root causes %+v", inc.RootCauses)
	}
	var saw bool
	for _, cand := range inc.RootCauses {
		if cand.Service == "payments" && strings.Contains(strings.Join(cand.Reasons, ";"), "deploy v2 by ana 6m0s before") {
			saw = true
		}
	}
	if !saw {
		t.Fatalf("no root-cause candidate names the deploy: %+v", inc.RootCauses)
	}
}

// A change to a service that is not failing (a harmless deploy of a
// dependency of one of the failing services) does not outrank the failing
// service every other failing one depends on: measured on generated
// storms, ranking it first named the wrong root in a quarter of cascades.
// It stays a candidate, saying it is not failing itself.
func TestRootCausesPreferWhatFailsOverWhatChanged(t *testing.T) {
	c := newCorrelator(t, Config{})
	feed(c,
		Signal{Kind: SignalChange, Service: "cart", Name: "deploy", Version: "v9", Author: "bo", Time: t0.Add(-10 * time.Minute), EventID: "c-v9"},
		alert("ReplicationLag", "payments-db", 0),
		alert("ConnectionPoolExhausted", "payments", 20*time.Second),
		alert("HighErrorRate", "checkout", 40*time.Second),
		alert("HighLatency", "web", time.Minute),
	)
	inc := c.Incidents()[0]
	if len(inc.Changes) != 1 || inc.RootCauses[0].Service != "payments-db" || inc.Service != "payments-db" {
		t.Fatalf("changes %+v, root causes %+v (incident on %s), want payments-db first", inc.Changes, inc.RootCauses, inc.Service)
	}
	var cart *Candidate
	for i := range inc.RootCauses {
		if inc.RootCauses[i].Service == "cart" {
			cart = &inc.RootCauses[i]
		}
	}
	if cart == nil || !strings.Contains(strings.Join(cart.Reasons, ";"), "not failing itself, 2 failing service(s) depend on it") ||
		!strings.Contains(strings.Join(cart.Reasons, ";"), "deploy v9 by bo") {
		t.Fatalf("cart's candidate %+v, want it kept with its deploy, not failing itself", cart)
	}
	// Alone too: a failing service outranks its changed dependency.
	c = newCorrelator(t, Config{})
	feed(c,
		Signal{Kind: SignalChange, Service: "payments-db", Name: "config", Version: "c1", Author: "di", Time: t0.Add(-5 * time.Minute), EventID: "c-c1"},
		alert("HighErrorRate", "payments", 0),
	)
	if rc := c.Incidents()[0].RootCauses; len(rc) != 2 || rc[0].Service != "payments" || rc[1].Service != "payments-db" {
		t.Fatalf("root causes %+v, want payments, then its changed database", rc)
	}
}

// A new alert joins an incident only within spread_window of its opening,
// even on the incident's own root: later it is a failure of its own. Repeats
// of the incident's members stay in it.
func TestNewAlertsAfterTheSpreadWindowOpenTheirOwn(t *testing.T) {
	c := newCorrelator(t, Config{})
	root := alert("ReplicationLag", "payments-db", 0)
	repeat := root
	repeat.Time = t0.Add(20 * time.Minute)
	early := alert("HighCPU", "payments-db", 5*time.Minute)
	late := alert("DiskFull", "payments-db", 12*time.Minute)
	feed(c, root, alert("ConnectionPoolExhausted", "payments", 30*time.Second), early, late, repeat)
	cascade, _ := c.IncidentOf(root.Fingerprint)
	if got, _ := c.IncidentOf(early.Fingerprint); got != cascade {
		t.Errorf("an alert on the root 5m after the opening: incident %s, want the cascade's %s", got, cascade)
	}
	if got, _ := c.IncidentOf(late.Fingerprint); got == cascade {
		t.Errorf("an alert on the root 12m after the opening (spread_window %s) joined the cascade", c.cfg.SpreadWindow)
	}
	if n := len(c.Incidents()); n != 2 {
		t.Errorf("%d incidents, want 2 (the repeat is no new one)", n)
	}
}

// A service changed while an incident was under way does not join it: its
// new failure is the change's. Unless the incident already has a member on
// a direct dependency of the service (the failure came its way: changes
// come every few minutes in a busy shop, and one that broke nothing must
// not split the cascade). The same change made before the incident opened
// does not keep it out (a cascade reaches what was deployed earlier), nor
// does one older than change_window.
func TestChangeDuringAnIncidentKeepsTheChangedServiceOut(t *testing.T) {
	deploy := func(at time.Duration) Signal {
		return Signal{Kind: SignalChange, Service: "checkout", Name: "deploy", Version: "v9", Time: t0.Add(at), EventID: fmt.Sprint("c-", at)}
	}
	root := alert("ReplicationLag", "payments-db", 0)
	payments := alert("ConnectionPoolExhausted", "payments", 30*time.Second) // checkout depends on payments
	for _, tc := range []struct {
		name     string
		before   []Signal
		change   Signal
		cfg      Config
		joinsOld bool
	}{
		{"deployed during the incident", []Signal{root}, deploy(2 * time.Minute), Config{}, false},
		{"deployed during the incident, which reached a dependency", []Signal{root, payments}, deploy(2 * time.Minute), Config{}, true},
		{"deployed before it opened", []Signal{root}, deploy(-2 * time.Minute), Config{}, true},
		{"deployed longer than change_window ago", []Signal{root}, deploy(2 * time.Minute), Config{ChangeWindow: time.Minute}, true},
	} {
		c := newCorrelator(t, tc.cfg)
		checkout := alert("HighErrorRate", "checkout", 4*time.Minute)
		feed(c, tc.before...)
		feed(c, tc.change, checkout)
		got, _ := c.IncidentOf(checkout.Fingerprint)
		cascade, _ := c.IncidentOf(root.Fingerprint)
		if (got == cascade) != tc.joinsOld {
			t.Errorf("%s: checkout in the cascade's incident %v, want %v", tc.name, got == cascade, tc.joinsOld)
		}
	}
}

// A change made while an incident is under way to one of its services
// (one it holds at the change, or one that joins it later) is on its
// timeline, once, not among its linked changes (it came after the failure,
// so it is no cause the root causes should weigh); a change to a service
// the incident never holds is not. The note is published with the next
// update, and a correlator restored between the change and that update
// publishes the same.
func TestChangeDuringAnIncidentIsOnItsTimeline(t *testing.T) {
	change := func(service string, at time.Duration) Signal {
		return Signal{Kind: SignalChange, Service: service, Name: "deploy", Version: "v9", Author: "ana", Time: t0.Add(at), EventID: "c-" + service}
	}
	before := []Signal{
		alert("ReplicationLag", "payments-db", 0), alert("ConnectionPoolExhausted", "payments", 30*time.Second),
		change("payments", 2*time.Minute), change("search", 2*time.Minute),
		change("payments", 2*time.Minute), // delivered again
	}
	after := []Signal{
		change("checkout", 3*time.Minute),
		alert("HighErrorRate", "checkout", 4*time.Minute), // reached through payments: joins
	}
	want := []string{duringPrefix + "deploy of payments v9 by ana", duringPrefix + "deploy of checkout v9 by ana"}

	live := newCorrelator(t, Config{})
	feed(live, before...)
	restored := restarted(t, live)
	var published [2][]Update
	for i, c := range []*Correlator{live, restored} {
		published[i] = c.Advance(t0.Add(2*time.Minute + 40*time.Second))
		if len(published[i]) != 1 || !slices.ContainsFunc(published[i][0].State.Timeline, func(e Entry) bool { return e.What == want[0] }) {
			t.Fatalf("the note was not published before the next signal: %s", transitions(published[i]))
		}
		published[i] = append(published[i], feed(c, after...)...)
		published[i] = append(published[i], c.Advance(t0.Add(6*time.Minute))...)
		if n := c.Stats().Changes; n != 3 {
			t.Errorf("%d changes counted, want 3 (one came twice)", n)
		}
		id, _ := c.IncidentOf("ReplicationLag/payments-db")
		if got, _ := c.IncidentOf("HighErrorRate/checkout"); got != id {
			t.Fatalf("checkout in %q, want the cascade's %q", got, id)
		}
		st, _ := c.Incident(id)
		var notes []string
		for _, e := range st.Timeline {
			if strings.HasPrefix(e.What, "change") {
				notes = append(notes, e.What)
			}
		}
		if !slices.Equal(notes, want) {
			t.Errorf("timeline notes of changes %q, want %q", notes, want)
		}
		if len(st.Changes) != 0 {
			t.Errorf("linked changes %v, want none", st.Changes)
		}
		if len(st.RootCauses) == 0 || st.RootCauses[0].Service != "payments-db" {
			t.Errorf("root causes %v, want payments-db first", st.RootCauses)
		}
	}
	if len(published[0]) != len(published[1]) {
		t.Fatalf("%d updates live, %d restored", len(published[0]), len(published[1]))
	}
	for i := range published[0] {
		a, _ := Envelope(published[0][i], t0)
		b, _ := Envelope(published[1][i], t0)
		if string(a.Body) != string(b.Body) {
			t.Fatalf("update %d differs after a restore:\n%s\n%s", i, a.Body, b.Body)
		}
	}
}

// A burst of changes to a member's service (a config pushed every minute)
// notes at most maxDuringNotes of them: the joins and merges stay on the
// timeline.
func TestChangesDuringAnIncidentAreBounded(t *testing.T) {
	c := newCorrelator(t, Config{})
	feed(c, alert("ReplicationLag", "payments-db", 0))
	for i := range 3 * maxDuringNotes {
		feed(c, Signal{Kind: SignalChange, Service: "payments-db", Name: "config", Time: t0.Add(time.Duration(i+1) * time.Second), EventID: fmt.Sprint("c-", i)})
	}
	id, _ := c.IncidentOf("ReplicationLag/payments-db")
	st, _ := c.Incident(id)
	n := 0
	for _, e := range st.Timeline {
		if strings.HasPrefix(e.What, duringPrefix) {
			n++
		}
	}
	if n != maxDuringNotes || !strings.HasPrefix(st.Timeline[0].What, "opened by") {
		t.Errorf("%d change notes (bound %d), first entry %q", n, maxDuringNotes, st.Timeline[0].What)
	}
}

// Resolved once every member resolved and the quiet period passed, at the
// time of the last resolution; a related alert within the reopen window
// reopens it under the same id; after it, a new incident opens.
func TestLifecycle(t *testing.T) {
	c := newCorrelator(t, Config{})
	a, b := alert("HighErrorRate", "checkout", 0), alert("HighLatency", "web", time.Minute)
	ups := feed(c, a, b, resolved(a, 3*time.Minute), resolved(b, 4*time.Minute))
	ups = append(ups, c.Advance(t0.Add(8*time.Minute))...)
	if got := transitions(ups); !strings.HasPrefix(got, "opened") || strings.Contains(got, "resolved") {
		t.Fatalf("transitions %s: resolved before the quiet period ended", got)
	}
	ups = c.Advance(t0.Add(9 * time.Minute))
	if transitions(ups) != "resolved" || !ups[0].State.ResolvedAt.Equal(t0.Add(4*time.Minute)) || !ups[0].Time.Equal(t0.Add(9*time.Minute)) {
		t.Fatalf("%s at %v, resolved_at %v; want resolved at 9m, resolved_at 4m", transitions(ups), ups[0].Time, ups[0].State.ResolvedAt)
	}
	id := ups[0].State.IncidentID
	// One of its alerts firing again soon after: reopened.
	again := a
	again.Time = t0.Add(20 * time.Minute)
	ups = feed(c, again)
	if transitions(ups) != "reopened" || ups[0].State.IncidentID != id || ups[0].State.Reopens != 1 {
		t.Fatalf("%s of %v, want the same incident reopened", transitions(ups), ups)
	}
	feed(c, resolved(again, 21*time.Minute))
	c.Advance(t0.Add(30 * time.Minute))
	ups = feed(c, alert("HighErrorRate", "checkout", 2*time.Hour))
	if transitions(ups) != "opened" || ups[0].State.IncidentID == id {
		t.Fatalf("%s: after the reopen window a new incident opens", transitions(ups))
	}
	// Resolved, then a new alert on its service within the reopen window:
	// a new incident, not a reopening.
	c.Advance(t0.Add(2*time.Hour + time.Minute))
	feed(c, resolved(alert("HighErrorRate", "checkout", 0), 2*time.Hour+time.Minute))
	c.Advance(t0.Add(2*time.Hour + 10*time.Minute))
	if ups = feed(c, alert("TargetDown", "checkout", 2*time.Hour+12*time.Minute)); transitions(ups) != "opened" {
		t.Fatalf("%s: a new alert after the recovery is a new incident", transitions(ups))
	}
}

// The reopening says what reopened the incident: the alert that fired
// again is firing in it. Published before the alert's state changed, it
// listed every member resolved and counted none firing, so the page of a
// reopened incident told the person paged that nothing fails (trial of
// session oncall: Alertmanager's payload had only resolved alerts).
func TestReopenedStateHasTheAlertFiringAgain(t *testing.T) {
	c := newCorrelator(t, Config{})
	a, b := alert("HighErrorRate", "checkout", 0), alert("HighLatency", "web", time.Minute)
	feed(c, a, b, resolved(a, 3*time.Minute), resolved(b, 4*time.Minute))
	c.Advance(t0.Add(10 * time.Minute))
	again := a
	again.Time = t0.Add(20 * time.Minute)
	ups := feed(c, again)
	if transitions(ups) != "reopened" {
		t.Fatalf("%s, want reopened", transitions(ups))
	}
	st := ups[0].State
	if st.Firing != 1 {
		t.Errorf("the reopened state counts %d members firing, want 1", st.Firing)
	}
	for _, m := range st.Members {
		if m.Fingerprint == a.Fingerprint && (!m.Firing || !m.LastSeen.Equal(again.Time)) {
			t.Errorf("the alert that fired again is listed firing=%v, last seen %v; want firing, last seen %v", m.Firing, m.LastSeen, again.Time)
		}
	}
	// It said all there is: no update follows to say the alert fires.
	if ups := c.Advance(t0.Add(25 * time.Minute)); len(ups) != 0 {
		t.Errorf("after the reopening: %s, want nothing", transitions(ups))
	}
}

// A flapping member holds the incident's updates until it calms.
func TestFlapping(t *testing.T) {
	c := newCorrelator(t, Config{})
	a := alert("HighLatency", "checkout", 0)
	feed(c, a, alert("HighErrorRate", "checkout", 10*time.Second))
	c.Advance(t0.Add(time.Minute))
	var held []Update
	for i := 1; i <= 8; i++ {
		at := time.Duration(i) * time.Minute
		s := a
		if i%2 == 1 {
			s = resolved(a, at)
		} else {
			s.Time = t0.Add(at)
		}
		before, _ := c.Incident(ups0ID(c))
		ups := c.Observe(s)
		if before.Flapping == 1 {
			held = append(held, ups...)
		}
	}
	inc, _ := c.Incident(ups0ID(c))
	if inc.Flapping != 1 {
		t.Fatalf("flapping %d, want the member flapping", inc.Flapping)
	}
	if strings.Contains(transitions(held), "updated") {
		t.Fatalf("transitions %s while flapping: want the updates held", transitions(held))
	}
	ups := c.Advance(t0.Add(40 * time.Minute))
	inc, _ = c.Incident(ups0ID(c))
	if inc.Flapping != 0 || !strings.Contains(transitions(ups), "updated") {
		t.Fatalf("after calming: flapping %d, transitions %s", inc.Flapping, transitions(ups))
	}
}

// A member that flaps with quiet stretches longer than the quiet period
// (fires a minute, clears six) holds the incident's resolution as it holds
// its updates: no resolved and reopened pages each cycle. Once it calms
// for good, the incident resolves, as of its last signal.
func TestFlappingHoldsTheResolution(t *testing.T) {
	c := newCorrelator(t, Config{})
	a := alert("HighLatency", "checkout", 0)
	ups := feed(c, a)
	for i := range 8 {
		base := time.Duration(i) * 7 * time.Minute
		ups = append(ups, feed(c, resolved(a, base+time.Minute))...)
		again := a
		again.Time = t0.Add(base + 7*time.Minute)
		ups = append(ups, feed(c, again)...)
	}
	// The reopening whose firing starts the flapping goes out (the
	// incident fires again, and says it flaps); nothing after it.
	flapping := false
	for _, u := range ups {
		if (u.Transition == Resolved || u.Transition == Reopened) && flapping {
			t.Fatalf("%s while its member flapped (transitions %s): want it held", u.Transition, transitions(ups))
		}
		flapping = flapping || u.State.Flapping > 0
	}
	if !flapping {
		t.Fatalf("transitions %s: no state says the member flaps", transitions(ups))
	}
	last := t0.Add(57 * time.Minute)
	ups = append(feed(c, resolved(a, 57*time.Minute)), c.Advance(last.Add(time.Hour))...)
	st, _ := c.Incident(ups0ID(c))
	if !strings.Contains(transitions(ups), "resolved") || st.State != StatusResolved || !st.ResolvedAt.Equal(last) {
		t.Fatalf("after it calmed: transitions %s, state %s resolved at %s; want resolved as of its last signal %s", transitions(ups), st.State, st.ResolvedAt, last)
	}
}

func ups0ID(c *Correlator) string { return c.Incidents()[0].IncidentID }

// A resolution is timed at the last signal plus the quiet period; when an
// update was published later than that (a resolved alert that arrived
// late), the resolution is moved just after it, so the incidents table,
// which keeps the latest state by time, ends resolved.
func TestIncidentEventsAreOrderedInTime(t *testing.T) {
	c := newCorrelator(t, Config{})
	var last time.Time
	check := func(ups []Update) {
		t.Helper()
		for _, u := range ups {
			if !u.Time.After(last) {
				t.Fatalf("%s at %v, not after the previous event at %v", u.Transition, u.Time, last)
			}
			last = u.Time
		}
	}
	check(c.Observe(alert("HighLatency", "checkout", 0)))
	// A second alert joins within the update interval: the update is held,
	// then published when event time jumps an hour on.
	check(c.Observe(alert("HighErrorRate", "checkout", 20*time.Second)))
	check(c.Advance(t0.Add(time.Hour)))
	// Both alerts' resolutions come late: they ended at 2 and 3 minutes.
	for i, name := range []string{"HighLatency", "HighErrorRate"} {
		r := alert(name, "checkout", 0)
		r.Resolved, r.Time = true, t0.Add(time.Duration(2+i)*time.Minute)
		check(c.Observe(r))
	}
	ups := c.Advance(t0.Add(2 * time.Hour))
	check(ups)
	if len(ups) == 0 || ups[len(ups)-1].Transition != Resolved {
		t.Fatalf("no resolution: %+v", ups)
	}
}

func TestCommands(t *testing.T) {
	c := newCorrelator(t, Config{})
	feed(c, alert("HighLatency", "checkout", 0))
	id := ups0ID(c)
	u, err := c.Apply(Command{IncidentID: id, Action: "ack", By: "ana", Time: t0.Add(3 * time.Minute)})
	if err != nil || u.Transition != Acknowledged || u.State.State != StatusAcknowledged || !u.State.AcknowledgedAt.Equal(t0.Add(3*time.Minute)) {
		t.Fatalf("ack: %+v %v", u, err)
	}
	if _, err := c.Apply(Command{IncidentID: id, Action: "ack"}); !errors.Is(err, ErrConflict) {
		t.Fatalf("a second ack: %v, want ErrConflict", err)
	}
	if u, err = c.Apply(Command{IncidentID: id, Action: "assign", Assignee: "bo", By: "ana"}); err != nil || u.State.Assignee != "bo" {
		t.Fatalf("assign: %+v %v", u.State.Assignee, err)
	}
	assigned := u
	if u, err = c.Apply(Command{IncidentID: id, Action: "comment", Text: "rolling back", By: "bo"}); err != nil || len(u.State.Comments) != 1 {
		t.Fatalf("comment: %v %v", u.State.Comments, err)
	}
	// Two transitions at one instant are two events, not one id twice (the
	// stream would drop the second as a duplicate), and ordered: the second
	// is timed just after the first, so the latest state by time is it.
	a, _ := Envelope(assigned, t0)
	b, _ := Envelope(u, t0)
	if !u.Time.After(assigned.Time) || u.Time.Sub(assigned.Time) > time.Microsecond || a.ID == b.ID {
		t.Fatalf("assign and comment at %v and %v have ids %s and %s", assigned.Time, u.Time, a.ID, b.ID)
	}
	if u, err = c.Apply(Command{IncidentID: id, Action: "resolve", By: "bo"}); err != nil || u.State.State != StatusResolved {
		t.Fatalf("resolve: %v %v", u.State.State, err)
	}
	if _, err := c.Apply(Command{IncidentID: id, Action: "resolve", By: "bo"}); !errors.Is(err, ErrConflict) {
		t.Fatalf("a second resolve: %v, want ErrConflict", err)
	}
	if _, err := c.Apply(Command{IncidentID: "nope", Action: "ack"}); !errors.Is(err, ErrUnknownIncident) {
		t.Fatalf("unknown incident: %v", err)
	}
	if _, err := c.Apply(Command{IncidentID: id, Action: "escalate"}); !errors.Is(err, ErrUnknownAction) {
		t.Fatalf("unknown action: %v", err)
	}
}

// A command given again under its id (a redelivered NATS command, an API
// request retried) applies once, across a restart too: the second is
// answered ErrApplied with the incident's state, and makes no event.
func TestCommandWithAnIDAppliesOnce(t *testing.T) {
	c := newCorrelator(t, Config{})
	feed(c, alert("HighLatency", "checkout", 0))
	id := ups0ID(c)
	comment := Command{IncidentID: id, Action: "comment", Text: "rolling back", By: "bo", ID: "nats:7"}
	u, err := c.Apply(comment)
	if err != nil || len(u.State.Comments) != 1 {
		t.Fatalf("comment: %v %v", u.State.Comments, err)
	}
	c = restarted(t, c)
	u, err = c.Apply(comment)
	if !errors.Is(err, ErrApplied) || u.Transition != "" || len(u.State.Comments) != 1 || u.State.IncidentID != id {
		t.Fatalf("the comment again: %+v %v, want ErrApplied, one comment, no event", u, err)
	}
	// Another id is another command; none is any number of them.
	comment.ID = "nats:8"
	if u, err = c.Apply(comment); err != nil || len(u.State.Comments) != 2 {
		t.Fatalf("the comment under another id: %v %v", u.State.Comments, err)
	}
	comment.ID = ""
	for range 2 {
		if _, err = c.Apply(comment); err != nil {
			t.Fatal(err)
		}
	}
	// A command refused is not applied, so its id is not taken.
	if _, err := c.Apply(Command{IncidentID: id, Action: "comment", Text: " ", ID: "nats:9"}); err == nil || errors.Is(err, ErrApplied) {
		t.Fatalf("a comment without text: %v, want its refusal", err)
	}
	if u, err = c.Apply(Command{IncidentID: id, Action: "comment", Text: "now with text", ID: "nats:9"}); err != nil || len(u.State.Comments) != 5 {
		t.Fatalf("the id of a refused command, given again: %d comments, %v", len(u.State.Comments), err)
	}
	// The ack given again is no refusal of a second ack.
	ack := Command{IncidentID: id, Action: "ack", By: "ana", ID: "key:abc"}
	if _, err := c.Apply(ack); err != nil {
		t.Fatal(err)
	}
	if u, err = c.Apply(ack); !errors.Is(err, ErrApplied) || u.State.State != StatusAcknowledged {
		t.Fatalf("the ack again: %v %v", u.State.State, err)
	}
	// An incident remembers its last maxCommandIDs ids.
	for i := range maxCommandIDs {
		if _, err := c.Apply(Command{IncidentID: id, Action: "comment", Text: "note", ID: fmt.Sprint("n", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Apply(Command{IncidentID: id, Action: "comment", Text: "note", ID: "n0"}); !errors.Is(err, ErrApplied) {
		t.Fatalf("the last of %d ids given again: %v", maxCommandIDs, err)
	}
	if _, err := c.Apply(ack); err == nil || errors.Is(err, ErrApplied) {
		t.Fatalf("an ack whose id was forgotten: %v, want the refusal of a second ack", err)
	}
	long := Command{IncidentID: id, Action: "comment", Text: "x", ID: strings.Repeat("k", MaxCommandID+1)}
	if _, err := c.Apply(long); err == nil {
		t.Fatal("a command id over MaxCommandID was taken")
	}
}

// Incident events are valid envelopes whose ids are the same for the same
// transition, and the same input gives the same events.
func TestEventsAreDeterministicEnvelopes(t *testing.T) {
	run := func() []*event.Envelope {
		c := newCorrelator(t, Config{})
		ups := feed(c, alert("HighErrorRate", "checkout", 0), alert("HighLatency", "payments", 5*time.Second),
			resolved(alert("HighErrorRate", "checkout", 0), time.Minute), resolved(alert("HighLatency", "payments", 0), 2*time.Minute))
		ups = append(ups, c.Advance(t0.Add(time.Hour))...)
		var out []*event.Envelope
		for _, u := range ups {
			out = append(out, parsedEnvelope(t, u))
		}
		return out
	}
	a, b := run(), run()
	if len(a) < 2 || len(a) != len(b) {
		t.Fatalf("%d and %d events", len(a), len(b))
	}
	for i := range a {
		if a[i].ID != b[i].ID || string(a[i].Body) != string(b[i].Body) {
			t.Fatalf("event %d differs between two runs of the same input", i)
		}
	}
	last := a[len(a)-1]
	var body event.IncidentBody
	if err := last.DecodeBody(&body); err != nil || body.Status != event.IncidentResolved || body.ResolvedAt.IsZero() {
		t.Fatalf("last event %+v %v, want resolved with resolved_at", body, err)
	}
	if last.Subject() != "events.incident.payments" || len(last.Links) != 2 {
		t.Fatalf("subject %s, links %v", last.Subject(), last.Links)
	}
}

func TestCatalogErrors(t *testing.T) {
	for _, c := range []struct{ yaml, want string }{
		{"services:\n  a: {depends_on: [b, \" \"]}\n  b: {}\n", `services.a.depends_on[1]: an empty name`},
	} {
		if _, err := ParseCatalog([]byte(c.yaml)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.yaml, err, c.want)
		}
	}
	if _, err := ParseCatalog([]byte(`{"services": {"a": {"depends_on": ["b"]}, "b": {}}}`)); err != nil {
		t.Fatalf("JSON catalog: %v", err)
	}
	if err := (&Catalog{Services: map[string]Service{"a": {DependsOn: []string{"b"}}}}).Validate(); err == nil || !strings.Contains(err.Error(), `services.a.depends_on[0]: "b" is not in the catalog`) {
		t.Fatalf("a catalog built in code must declare its dependencies: %v", err)
	}
	cyclic := &Catalog{Services: map[string]Service{"a": {DependsOn: []string{"b"}}, "b": {DependsOn: []string{"a"}}}}
	if err := cyclic.Validate(); err == nil || !strings.Contains(err.Error(), "dependency cycle a -> b -> a") {
		t.Fatalf("a catalog built in code must have no cycle: %v", err)
	}
	self := &Catalog{Services: map[string]Service{"a": {DependsOn: []string{"a"}}}}
	if err := self.Validate(); err == nil || !strings.Contains(err.Error(), "services.a.depends_on[0]: depends on itself") {
		t.Fatalf("a catalog built in code must not depend on itself: %v", err)
	}
}

// TestCatalogCyclesAreBroken: a file's dependency cycle (two services
// calling each other, a stale entry) loses the dependency that closes it,
// named in a warning, instead of refusing the whole catalog.
func TestCatalogCyclesAreBroken(t *testing.T) {
	cat := catalog(t, "services:\n  a: {depends_on: [b]}\n  b: {depends_on: [c, d]}\n  c: {depends_on: [a]}\n  d: {depends_on: [d]}\n")
	want := []string{
		`services.c.depends_on[0]: "a" closes the dependency cycle a -> b -> c -> a: ignored (the last met in lexical order; check which entry is stale)`,
		`services.d.depends_on[0]: "d" closes the dependency cycle d -> d: ignored (the last met in lexical order; check which entry is stale)`,
	}
	if !reflect.DeepEqual(cat.Warnings, want) {
		t.Errorf("warnings %q, want %q", cat.Warnings, want)
	}
	if got := cat.Services["b"].DependsOn; !reflect.DeepEqual([]string(got), []string{"c", "d"}) {
		t.Errorf("b depends on %v, want [c d] kept", got)
	}
	if len(cat.Services["c"].DependsOn) != 0 || len(cat.Services["d"].DependsOn) != 0 {
		t.Errorf("c depends on %v, d on %v, want nothing", cat.Services["c"].DependsOn, cat.Services["d"].DependsOn)
	}
	// The example of pipelines/README.md.
	readme := catalog(t, "services:\n  web: {depends_on: [search]}\n  search: {depends_on: [web]}\n")
	if want := `services.web.depends_on[0]: "search" closes the dependency cycle search -> web -> search: ignored (the last met in lexical order; check which entry is stale)`; !slices.Contains(readme.Warnings, want) {
		t.Errorf("warnings %q, want %q", readme.Warnings, want)
	}
	// What is left is still a topology: a failing c is what a and b fail on.
	c := correlatorOn(t, Config{}, "services:\n  a: {depends_on: [b]}\n  b: {depends_on: [c]}\n  c: {depends_on: [a]}\n")
	feed(c, alert("DBDown", "c", 0), alert("HighLatency", "a", time.Minute))
	if id1, _ := c.IncidentOf("DBDown/c"); id1 == "" || func() string { id, _ := c.IncidentOf("HighLatency/a"); return id }() != id1 {
		t.Errorf("a's symptom did not join c's incident")
	}
}

// Keys a catalog has no field for (a catalog exported from elsewhere) are
// ignored and named, a typo among them.
func TestCatalogUnknownKeysAreNamed(t *testing.T) {
	cat := catalog(t, "version: 2\nservices:\n  a: {owner: x, onwer: y, description: the API, depends_on: [b]}\n  b: {tier: 1}\n")
	want := []string{
		"services.a.description: unknown key, ignored (known: owner, team, tier, runbook, depends_on)",
		"services.a.onwer: unknown key, ignored (known: owner, team, tier, runbook, depends_on)",
		"version: unknown key, ignored (a catalog has services:)",
	}
	if !reflect.DeepEqual(cat.Warnings, want) || cat.Services["a"].Owner != "x" || cat.Services["b"].Tier != "1" || cat.Services["a"].DependsOn[0] != "b" {
		t.Fatalf("warnings %q, services %+v", cat.Warnings, cat.Services)
	}
	// A misspelt services: key is no empty catalog.
	if _, err := ParseCatalog([]byte("servces:\n  a: {owner: x}\n")); err == nil || err.Error() != "no services: key (the file has servces)" {
		t.Fatalf("misspelt services: %v", err)
	}
	for _, empty := range []string{"services:\n", "services: {}\n"} {
		if c, err := ParseCatalog([]byte(empty)); err != nil || len(c.Names()) != 0 {
			t.Errorf("%q: %v, want an empty catalog", empty, err)
		}
	}
	// An empty file is no catalog (an export that wrote nothing), and a
	// second document would be services ignored.
	for in, want := range map[string]string{
		"":                "no services: key (the file is empty)",
		"# nothing yet\n": "no services: key (the file is empty)",
		"{}\n":            "no services: key (the file has no keys)",
		"services:\n  a: {}\n---\nservices:\n  b: {}\n":      "more than one YAML document",
		"services:\n  a: {}\n---\nservices:\n  b: {}\n---\n": "more than one YAML document",
	} {
		if _, err := ParseCatalog([]byte(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want an error saying %q", in, err, want)
		}
	}
	// A file that ends a document with --- (and a comment) is one catalog.
	for _, in := range []string{"services:\n  a: {}\n---\n", "services:\n  a: {}\n---\n# end\n", "---\nservices:\n  a: {}\n"} {
		if c, err := ParseCatalog([]byte(in)); err != nil || len(c.Names()) != 1 {
			t.Errorf("%q: %v, want the catalog of a", in, err)
		}
	}
	// One dependency may be written alone.
	cat = catalog(t, "services:\n  api: {depends_on: db}\n  db: {}\n")
	if !reflect.DeepEqual([]string(cat.Services["api"].DependsOn), []string{"db"}) {
		t.Errorf("depends_on: db read as %v", cat.Services["api"].DependsOn)
	}
	if _, err := ParseCatalog([]byte("services:\n  api: {depends_on: {db: 1}}\n")); err == nil || !strings.Contains(err.Error(), "depends_on is a list of service names (or one name)") {
		t.Errorf("depends_on as a mapping: %v", err)
	}
	// A boolean is no service's name, alone or in the list (a service
	// named so is written quoted).
	for _, in := range []string{"services:\n  api: {depends_on: true}\n", "services:\n  api: {depends_on: [db, false]}\n  db: {}\n"} {
		if _, err := ParseCatalog([]byte(in)); err == nil || !strings.Contains(err.Error(), "is not a service name") {
			t.Errorf("%q: %v, want an error naming the boolean", in, err)
		}
	}
	if cat := catalog(t, "services:\n  api: {depends_on: ['true']}\n"); cat.Services["api"].DependsOn[0] != "true" {
		t.Errorf("a quoted 'true' read as %v", cat.Services["api"].DependsOn)
	}
	// A dependency in other letter case is the declared service.
	cat = catalog(t, "services:\n  api: {depends_on: [Payments]}\n  payments: {}\n")
	if !reflect.DeepEqual(cat.Names(), []string{"api", "payments"}) || cat.Services["api"].DependsOn[0] != "payments" || len(cat.Undeclared) != 0 ||
		len(cat.Warnings) != 1 || cat.Warnings[0] != `services.api.depends_on[0]: "Payments" taken for the declared "payments"` {
		t.Fatalf("names %v, api %+v, warnings %q", cat.Names(), cat.Services["api"], cat.Warnings)
	}
}

// A service a catalog file names only as a dependency (an external API)
// is a service without owner or declared dependencies, listed in Undeclared, and
// failures spread from it like from any other.
func TestUndeclaredDependenciesAreServices(t *testing.T) {
	cat := catalog(t, "services:\n  checkout: {team: payments, depends_on: [stripe, db]}\n  db: {depends_on: [stripe]}\n")
	if !reflect.DeepEqual(cat.Undeclared, []string{"stripe"}) || !reflect.DeepEqual(cat.Names(), []string{"checkout", "db", "stripe"}) ||
		len(cat.Warnings) != 1 || !strings.Contains(cat.Warnings[0], `"stripe" is named only in depends_on`) {
		t.Fatalf("undeclared %v, names %v, warnings %q", cat.Undeclared, cat.Names(), cat.Warnings)
	}
	c, err := New(Config{}, cat)
	if err != nil {
		t.Fatal(err)
	}
	feed(c, alert("UpstreamErrors", "stripe", 0), alert("HighErrorRate", "checkout", 30*time.Second))
	if incs := c.Incidents(); len(incs) != 1 || incs[0].RootCauses[0].Service != "stripe" || incs[0].MemberCount != 2 {
		t.Fatalf("incidents %+v, want checkout's errors in stripe's incident", incs)
	}
	// A dependency named in other letter case is the declared service,
	// also when the name holds a _ (folding maps it to -).
	cat = catalog(t, "services:\n  billing: {depends_on: [Billing_DB]}\n  billing_db: {}\n")
	if len(cat.Undeclared) != 0 || cat.Services["billing"].DependsOn[0] != "billing_db" {
		t.Errorf("undeclared %v, billing depends on %v, want the declared billing_db", cat.Undeclared, cat.Services["billing"].DependsOn)
	}
}

// A service the catalog names only in depends_on calls, as far as the
// correlator guesses, what its callers call besides it: the front end the
// ingress names calls the gateway beside it, so its failure joins the
// gateway's incident (with the guess off it stands alone). A guess that
// would close a cycle is left out. The guess only lets the undeclared
// service's own signals join as symptoms: it never makes it a root above
// the services it is guessed to call, so a third party named by the one
// service that calls it does not pull a sibling's failure into its own.
func TestUndeclaredServicesCallTheirSiblings(t *testing.T) {
	const shop = `
services:
  ingress: {depends_on: [web, gateway]}
  gateway: {depends_on: [orders, auth]}
  orders:  {depends_on: [orders-db, stripe]}
  auth:    {depends_on: [orders]}
  batch:   {}
`
	cat := catalog(t, shop)
	want := map[string][]string{"web": {"gateway"}, "orders-db": {}, "stripe": {}}
	if got := guessSiblings(cat); !reflect.DeepEqual(got, want) {
		t.Fatalf("guessed %v, want %v: web calls the gateway; orders-db and stripe, named by orders beside each other only, call nothing declared", got, want)
	}
	// auth calls orders: orders named only by gateway and auth would be
	// guessed to call auth, closing a cycle.
	cyc := catalog(t, "services:\n  gateway: {depends_on: [orders, auth]}\n  auth: {depends_on: [orders]}\n")
	if got := guessSiblings(cyc); len(got["orders"]) != 0 {
		t.Fatalf("guessed %v, want no call closing the cycle orders -> auth -> orders", got)
	}
	storm := []Signal{
		alert("HighErrorRate", "orders", 0),
		alert("HighLatency", "gateway", 40*time.Second),
		alert("HighErrorRate", "web", 90*time.Second),
		alert("NightlyJobFailed", "batch", 100*time.Second),
	}
	for _, guess := range []bool{true, false} {
		c := correlatorOn(t, Config{UndeclaredSiblings: Flag(guess), AlertStorms: Flag(false)}, shop)
		feed(c, storm...)
		web, _ := c.IncidentOf("HighErrorRate/web")
		orders, _ := c.IncidentOf("HighErrorRate/orders")
		if joined := web != "" && web == orders; joined != guess {
			t.Errorf("guess %v: web in %q, orders in %q", guess, web, orders)
		}
		if batch, _ := c.IncidentOf("NightlyJobFailed/batch"); batch == orders {
			t.Errorf("guess %v: the unrelated batch job joined the storm", guess)
		}
		if root := c.Incidents()[0].RootCauses[0].Service; guess && root != "orders" {
			t.Errorf("root %s, want orders: web joined as a symptom", root)
		}
	}
	// The gateway failing after the front end stays apart: the guess does
	// not make web the gateway's dependent for a late root to join.
	c := correlatorOn(t, Config{AlertStorms: Flag(false)}, shop)
	feed(c, alert("HighErrorRate", "web", 0), alert("HighLatency", "gateway", 30*time.Second))
	if web, _ := c.IncidentOf("HighErrorRate/web"); web == "" || len(c.Incidents()) != 2 {
		t.Errorf("%d incidents, want web and the gateway apart", len(c.Incidents()))
	}
}

// An undeclared service's guessed calls are the way a failure comes to it,
// as a declared service's dependencies are: web, named only by the
// ingress and guessed to call the gateway, joins the incident that
// reached the gateway though it was deployed during it (the change rule
// keeps out only a service the failure has not reached), and past
// spread_window while the failure is still spreading (front_window after
// the gateway joined).
func TestUndeclaredServiceIsReachedThroughItsGuessedCalls(t *testing.T) {
	const shop = `
services:
  ingress: {depends_on: [web, gateway]}
  gateway: {depends_on: [orders]}
  orders:  {}
`
	deploy := Signal{Kind: SignalChange, Service: "web", Name: "deploy", Version: "v9", Time: t0.Add(time.Minute), EventID: "c-web"}
	for _, tc := range []struct {
		name  string
		storm []Signal
	}{
		{"deployed during the incident", []Signal{
			alert("HighErrorRate", "orders", 0), alert("HighLatency", "gateway", 40*time.Second), deploy, alert("HighErrorRate", "web", 90*time.Second),
		}},
		{"past spread_window, still spreading", []Signal{
			alert("HighErrorRate", "orders", 0), alert("HighLatency", "gateway", 5*time.Minute), alert("HighErrorRate", "web", 9*time.Minute),
		}},
	} {
		c := correlatorOn(t, Config{AlertStorms: Flag(false)}, shop)
		feed(c, tc.storm...)
		web, _ := c.IncidentOf("HighErrorRate/web")
		if orders, _ := c.IncidentOf("HighErrorRate/orders"); web != orders {
			t.Errorf("%s: web in %q, want the orders incident %q", tc.name, web, orders)
		}
	}
}

// A weight of NaN passes every comparison but equality: refused by
// name, as one out of range is (read from YAML as .nan).
func TestConfigRefusesWeightsThatAreNaN(t *testing.T) {
	for key, cfg := range map[string]Config{
		"recency_weight": {RecencyWeight: math.NaN()},
		"label_weight":   {LabelWeight: Weight(math.NaN())},
		"path_weight":    {PathWeight: Weight(math.NaN())},
	} {
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("%s NaN: %v, want an error naming it", key, err)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	for key, cfg := range map[string]Config{
		"correlator.rules.group_window":       {GroupWindow: -time.Second},
		"correlator.rules.flap_stop":          {FlapStart: 3, FlapStop: 3},
		"correlator.rules.up_depth":           {UpDepth: 99},
		"correlator.rules.path_weight":        {PathWeight: Weight(-1)},
		"correlator.rules.label_weight":       {LabelWeight: Weight(101)},
		"correlator.rules.group_by[0]":        {GroupBy: []string{""}},
		"correlator.rules.storm_burst":        {StormBurst: 1},
		"correlator.rules.storm_window":       {StormWindow: 11 * time.Minute},
		"correlator.rules.location_burst":     {LocationBurst: 1},
		"correlator.rules.location_window":    {LocationWindow: 11 * time.Minute},
		"correlator.rules.location_labels[1]": {LocationLabels: []string{"region", ""}},
		"correlator.rules.location_labels":    {LocationLabels: []string{}},
		"correlator.rules.advisory_alerts[1]": {AdvisoryAlerts: []string{".*Soon", "Disk(Full"}},
		// Compiles only inside the wrapping, where its flag would reach
		// the patterns after it.
		"correlator.rules.advisory_alerts[0]": {AdvisoryAlerts: []string{")(?i)(?:", ".*Soon"}},
		"correlator.rules.advisory_alerts":    {AdvisoryAlerts: make([]string, 101)},
		"correlator.rules.slow_alerts[1]":     {SlowAlerts: []string{"KubePodNotReady", "Kube(Pod"}},
		"correlator.rules.slow_alerts":        {SlowAlerts: make([]string, 101)},
		"correlator.rules.slow_alert_wait":    {SlowAlertWait: -time.Minute},
		"correlator.rules.unplaced_window":    {UnplacedWindow: 11 * time.Minute},
	} {
		err := cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), key+":") || !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: %v", key, err)
		}
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	// A group window shorter than the default storm window shortens it,
	// and with storms off the storm window does not matter.
	for _, cfg := range []Config{{GroupWindow: time.Minute}, {GroupWindow: time.Minute, StormWindow: 5 * time.Minute, AlertStorms: Flag(false)}} {
		if err := cfg.Validate(); err != nil {
			t.Errorf("%+v: %v", cfg, err)
		}
	}
	if got := (Config{GroupWindow: time.Minute}).WithDefaults().StormWindow; got != time.Minute {
		t.Errorf("storm window %s with a group window of 1m, want 1m", got)
	}
	// The service starts from a zero Config: it must get every default
	// the quality figures were measured with.
	if !reflect.DeepEqual(Config{}.WithDefaults(), DefaultConfig()) {
		t.Fatalf("Config{}.WithDefaults() = %+v, DefaultConfig() = %+v", Config{}.WithDefaults(), DefaultConfig())
	}
}

// GroupBy keeps signals with different values of a label apart even on
// one service.
func TestGroupBy(t *testing.T) {
	c := newCorrelator(t, Config{GroupBy: []string{"cluster"}})
	a, b := alert("HighLatency", "checkout", 0), alert("HighErrorRate", "checkout", time.Second)
	a.Labels, b.Labels = map[string]string{"cluster": "eu"}, map[string]string{"cluster": "us"}
	feed(c, a, b)
	if n := len(c.Incidents()); n != 2 {
		t.Fatalf("%d incidents, want one per cluster", n)
	}
}

func TestMaxFingerprints(t *testing.T) {
	c := newCorrelator(t, Config{MaxFingerprints: 10})
	for i := range 50 {
		feed(c, alert(fmt.Sprintf("A%d", i), "batch", time.Duration(i)*time.Hour))
	}
	if c.Fingerprints() > 10 || c.Stats().Evicted == 0 {
		t.Fatalf("%d fingerprints, %d evicted; want at most 10", c.Fingerprints(), c.Stats().Evicted)
	}
}

// A correlator restored from a checkpoint taken mid-storm goes on exactly
// as one that never stopped: same incidents, same events.
func TestSnapshotRoundTrip(t *testing.T) {
	storm := []Signal{
		alert("HighLatency", "payments-db", 0), alert("HighErrorRate", "payments", 20*time.Second),
		alert("HighLatency", "search-index", 30*time.Second),
		resolved(alert("HighLatency", "payments-db", 0), 2*time.Minute),
		alert("HighErrorRate", "checkout", 3*time.Minute), alert("HighLatency", "web", 4*time.Minute),
		resolved(alert("HighErrorRate", "payments", 0), 5*time.Minute), resolved(alert("HighErrorRate", "checkout", 0), 6*time.Minute),
		resolved(alert("HighLatency", "web", 0), 7*time.Minute), resolved(alert("HighLatency", "search-index", 0), 8*time.Minute),
	}
	whole := newCorrelator(t, Config{})
	want := feed(whole, storm...)
	want = append(want, whole.Advance(t0.Add(time.Hour))...)

	first := newCorrelator(t, Config{})
	got := feed(first, storm[:4]...)
	second := restarted(t, first)
	got = append(got, feed(second, storm[4:]...)...)
	got = append(got, second.Advance(t0.Add(time.Hour))...)
	if len(got) != len(want) {
		t.Fatalf("%d events after a restore, %d without: %s vs %s", len(got), len(want), transitions(got), transitions(want))
	}
	for i := range want {
		a, _ := Envelope(want[i], t0)
		b, _ := Envelope(got[i], t0)
		if a.ID != b.ID || string(a.Body) != string(b.Body) {
			t.Fatalf("event %d differs after a restore:\n%s\n%s", i, a.Body, b.Body)
		}
	}
	if err := second.UnmarshalJSON([]byte(`{"version":99}`)); err == nil || !strings.Contains(err.Error(), "version 99") {
		t.Fatalf("foreign snapshot: %v", err)
	}
}

// PathWeight: a symptom whose direct dependency is failing in one incident
// joins it, rather than a more recent incident it relates to only through
// that incident's root. web depends on checkout (failing in the
// payments-db incident) and, through search, on search-index (a failure
// that started later). Without the rule recency wins and web goes to the
// search-index incident.
func TestPathWeightPrefersTheIncidentOfADirectDependency(t *testing.T) {
	storm := []Signal{
		alert("ReplicationLag", "payments-db", 0),
		alert("ConnectionPoolExhausted", "payments", 30*time.Second),
		alert("HighErrorRate", "checkout", 60*time.Second),
		alert("HighLatency", "search-index", 90*time.Second),
		alert("HighLatency", "web", 120*time.Second),
	}
	for _, tc := range []struct {
		name string
		cfg  Config
		want string // the incident web joins, by its root's fingerprint
	}{
		{"default", Config{}, "ReplicationLag/payments-db"},
		{"rule off", Config{PathWeight: Weight(0)}, "HighLatency/search-index"},
	} {
		c := newCorrelator(t, tc.cfg)
		feed(c, storm...)
		web, _ := c.IncidentOf("HighLatency/web")
		want, _ := c.IncidentOf(tc.want)
		if web != want {
			t.Errorf("%s: web joined %s, want the incident of %s (%s)", tc.name, web, tc.want, want)
		}
	}
}

// LabelWeight: an alert whose label names a service failing in one
// incident (the pool it cannot get connections from) joins that incident
// rather than a more recent one on its direct dependency. The same alert
// without the label goes to the recent one.
func TestLabelWeightFollowsTheServiceALabelNames(t *testing.T) {
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   string
	}{
		{"pool names payments-db", map[string]string{"pool": "payments-db"}, "ReplicationLag/payments-db"},
		{"no label", nil, "HighLatency/cart"},
	} {
		c := newCorrelator(t, Config{LabelWeight: Weight(1)})
		checkout := alert("ConnectionPoolExhausted", "checkout", 120*time.Second)
		checkout.Labels = tc.labels
		feed(c,
			alert("ReplicationLag", "payments-db", 0),
			alert("ConnectionPoolExhausted", "payments", 30*time.Second),
			alert("HighLatency", "cart", 90*time.Second),
			checkout,
		)
		got, _ := c.IncidentOf(checkout.Fingerprint)
		want, _ := c.IncidentOf(tc.want)
		if got != want {
			t.Errorf("%s: checkout joined %s, want the incident of %s (%s)", tc.name, got, tc.want, want)
		}
	}
}

// Time alone resolves each of many independent incidents exactly once, at
// its own last signal plus the quiet period, although only the incidents
// due are looked at; rescheduling over and over keeps the queue of due
// times bounded.
func TestTimeResolvesEachIncidentOnceFromTheQueue(t *testing.T) {
	// Fifty DiskFull a second apart would be an alert storm.
	c := newCorrelator(t, Config{AlertStorms: Flag(false)})
	const n = 50
	quiet := c.cfg.QuietPeriod
	lastSignal := map[string]time.Time{}
	for i := range n {
		s := alert("DiskFull", fmt.Sprintf("uncatalogued-%d", i), time.Duration(i)*time.Second)
		feed(c, s)
		// Flip it many times (each reschedules its incident), then resolve.
		for k := 1; k <= 20; k++ {
			r := resolved(s, time.Duration(i)*time.Second+time.Duration(k)*time.Hour/1000)
			r.Resolved = k%2 == 0
			feed(c, r)
			lastSignal[s.Fingerprint] = r.Time
		}
		if c.queue.Len() > 2*len(c.incidents)+64 {
			t.Fatalf("queue of %d entries for %d incidents", c.queue.Len(), len(c.incidents))
		}
	}
	resolvedAt := map[string]time.Time{}
	for _, u := range c.Advance(t0.Add(2 * time.Hour)) {
		if u.Transition != Resolved {
			continue
		}
		fp := u.State.Members[0].Fingerprint
		if _, twice := resolvedAt[fp]; twice {
			t.Fatalf("%s resolved twice", fp)
		}
		resolvedAt[fp] = u.Time
	}
	if len(resolvedAt) != n {
		t.Fatalf("%d incidents resolved, want %d", len(resolvedAt), n)
	}
	for fp, at := range resolvedAt {
		if want := lastSignal[fp].Add(quiet); !at.Equal(want) {
			t.Errorf("%s resolved at %s, want its last signal + quiet period %s", fp, at, want)
		}
	}
}

// A weight of 0 in the rules turns its rule off; a weight left out is the
// default.
func TestEvidenceWeightsZeroIsOff(t *testing.T) {
	for _, tc := range []struct {
		yaml        string
		path, label float64
	}{
		{"{}", 0.5, 0.5},
		{"path_weight: 0", 0, 0.5},
		{"label_weight: 0", 0.5, 0},
		{"{path_weight: 0.25, label_weight: 2}", 0.25, 2},
	} {
		var cfg Config
		if err := yaml.Unmarshal([]byte(tc.yaml), &cfg); err != nil {
			t.Fatal(err)
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("%s: %v", tc.yaml, err)
		}
		got := cfg.WithDefaults()
		if *got.PathWeight != tc.path || *got.LabelWeight != tc.label {
			t.Errorf("%s: path_weight %g, label_weight %g, want %g and %g", tc.yaml, *got.PathWeight, *got.LabelWeight, tc.path, tc.label)
		}
	}
	err := Config{LabelWeight: Weight(-0.5)}.Validate()
	if err == nil || !strings.Contains(err.Error(), "correlator.rules.label_weight: -0.5, want 0 (off) to 100") {
		t.Errorf("negative label_weight: %v", err)
	}
}

// An alert that fired and resolved within Alertmanager's group_wait, or
// that an inhibition rule muted all the while it fired, is first seen
// resolved: it joins the incident it would have joined firing when it
// started, as a resolved member, and opens none of its own.
func TestAlertFirstSeenResolvedJoinsWhatFailedThen(t *testing.T) {
	c := newCorrelator(t, Config{})
	feed(c, alert("PaymentsDown", "payments", 0))
	short := resolved(alert("CheckoutErrors", "checkout", time.Minute), 2*time.Minute)
	short.Started = t0.Add(time.Minute)
	if ups := feed(c, short); len(ups) != 0 {
		t.Fatalf("the short alert published %s, want nothing yet", transitions(ups))
	}
	cascade, _ := c.IncidentOf("PaymentsDown/payments")
	got, ok := c.IncidentOf("CheckoutErrors/checkout")
	if !ok || got != cascade {
		t.Fatalf("the short alert is in %q (%v), want the cascade's %s", got, ok, cascade)
	}
	st, _ := c.Incident(cascade)
	if st.MemberCount != 2 {
		t.Fatalf("members %d, want 2", st.MemberCount)
	}
	for _, m := range st.Members {
		if m.Name == "CheckoutErrors" && (m.Firing || m.Count != 1) {
			t.Fatalf("the short alert: firing %v, count %d; want resolved, seen once", m.Firing, m.Count)
		}
	}
	// One muted (by an inhibition rule) for 20 minutes, from a minute
	// into the cascade, joins it when it resolves, while it still fails.
	muted := resolved(alert("PaymentsLatencyHigh", "payments", time.Minute), 21*time.Minute)
	muted.Started = t0.Add(time.Minute)
	feed(c, alert("PaymentsDown", "payments", 20*time.Minute), muted)
	if got, _ := c.IncidentOf("PaymentsLatencyHigh/payments"); got != cascade {
		t.Fatalf("the muted alert is in %q, want the cascade's %s", got, cascade)
	}
	// The cascade's own alert resolving resolves the incident after the
	// quiet period: the short members do not hold it open.
	ups := feed(c, resolved(alert("PaymentsDown", "payments", 0), 23*time.Minute))
	ups = append(ups, c.Advance(t0.Add(29*time.Minute))...)
	if !strings.Contains(transitions(ups), "resolved") {
		t.Fatalf("transitions %s, want the incident resolved once its alerts resolved and the quiet period passed", transitions(ups))
	}

	// One with nothing failing near it opens nothing (it is counted as an
	// orphan), nor does one that started long before anything failing
	// now.
	lone := resolved(alert("BatchLate", "batch", 50*time.Minute), 51*time.Minute)
	lone.Started = t0.Add(50 * time.Minute)
	old := resolved(alert("CartSlow", "cart", 0), 60*time.Minute)
	old.Started = t0
	feed(c, alert("CartDown", "cart", 59*time.Minute))
	if ups := feed(c, lone, old); len(ups) != 0 {
		t.Fatalf("published %s, want nothing", transitions(ups))
	}
	for _, fp := range []string{"BatchLate/batch", "CartSlow/cart"} {
		if id, ok := c.IncidentOf(fp); ok {
			t.Fatalf("%s is in %s, want no incident", fp, id)
		}
	}
	if got := c.Stats().Orphans; got != 2 {
		t.Fatalf("orphans %d, want 2", got)
	}
}

// A cascade that reaches a service past spread_window joins the incident
// while it is still spreading: a direct dependency of the service joined
// at most front_window before. A dependent alerting longer after its
// dependency joined, or past front_limit, opens its own.
func TestSpreadingCascadeJoinsPastSpreadWindow(t *testing.T) {
	c := newCorrelator(t, Config{})
	feed(c,
		alert("PostgresDown", "payments-db", 0),
		alert("PaymentsErrors", "payments", 5*time.Minute),
		alert("CheckoutErrors", "checkout", 9*time.Minute), // 9m after the open, 4m after payments
		alert("WebErrors", "web", 15*time.Minute),          // 6m after checkout
	)
	root, _ := c.IncidentOf("PostgresDown/payments-db")
	for fp, want := range map[string]bool{"PaymentsErrors/payments": true, "CheckoutErrors/checkout": true, "WebErrors/web": false} {
		got, _ := c.IncidentOf(fp)
		if (got == root) != want {
			t.Errorf("%s in %s, root's incident %s: want joined %v", fp, got, root, want)
		}
	}

	c = newCorrelator(t, Config{FrontLimit: 8 * time.Minute})
	feed(c,
		alert("PostgresDown", "payments-db", 0),
		alert("PaymentsErrors", "payments", 5*time.Minute),
		alert("CheckoutErrors", "checkout", 9*time.Minute),
	)
	root, _ = c.IncidentOf("PostgresDown/payments-db")
	if got, _ := c.IncidentOf("CheckoutErrors/checkout"); got == root {
		t.Errorf("front_limit 8m (off): checkout joined the incident opened 9m before it")
	}
}

// A resolved-first alert joining the incident that memory then forgets at
// once (it alone holds more than the bound) is left alone, not a panic;
// while another incident can go, that one is forgotten instead.
func TestAlertFirstSeenResolvedWhenMemoryIsFull(t *testing.T) {
	short := resolved(alert("CheckoutErrors", "checkout", time.Minute), 4*time.Minute)
	short.Started = t0.Add(time.Minute)

	c := newCorrelator(t, Config{MaxFingerprints: 2})
	feed(c, alert("PaymentsDown", "payments", 0), alert("PaymentsSlow", "payments", 30*time.Second), short)
	if _, ok := c.IncidentOf("CheckoutErrors/checkout"); ok {
		t.Fatal("the short alert is in an incident memory forgot")
	}
	if got := c.Fingerprints(); got > 2 {
		t.Fatalf("%d fingerprints in memory, bound 2", got)
	}

	c = newCorrelator(t, Config{MaxFingerprints: 2})
	feed(c, alert("PaymentsDown", "payments", 0), alert("Other", "batch", 3*time.Minute), short)
	into, ok := c.IncidentOf("CheckoutErrors/checkout")
	if first, _ := c.IncidentOf("PaymentsDown/payments"); !ok || into != first {
		t.Fatalf("the short alert is in %q (%v), want payments' incident %q kept, batch's forgotten", into, ok, first)
	}
	if _, ok := c.IncidentOf("Other/batch"); ok {
		t.Fatal("batch's incident is still in memory")
	}
	if got := c.Fingerprints(); got > 2 {
		t.Fatalf("%d fingerprints in memory, bound 2", got)
	}
}

// When a member leaves an incident that goes on (an anomaly's new
// episode), the time the failure last arrived on its service is that of
// the members left there: a restored correlator decides the same.
func TestSpreadingAfterAMemberLeftIsWhatARestoreSees(t *testing.T) {
	cfg := Config{QuietPeriod: 2 * time.Minute, GroupBy: []string{"cluster"}}
	anomaly := func(series string, at time.Duration) Signal {
		return Signal{Kind: SignalAnomaly, Fingerprint: series, Service: "payments", Name: "latency_p99", Time: t0.Add(at)}
	}
	elsewhere := anomaly("y", 6*time.Minute+30*time.Second)
	elsewhere.Labels = map[string]string{"cluster": "eu"}
	before := []Signal{
		alert("PostgresDown", "payments-db", 0),
		anomaly("x", time.Minute), anomaly("y", 4*time.Minute),
		elsewhere, // a new episode: y leaves, and its other cluster keeps it out
	}
	late := alert("CheckoutErrors", "checkout", 8*time.Minute+30*time.Second)

	live := newCorrelator(t, cfg)
	feed(live, before...)
	restored := restarted(t, live)
	for name, c := range map[string]*Correlator{"live": live, "restored": restored} {
		feed(c, late)
		root, _ := c.IncidentOf("PostgresDown/payments-db")
		if got, _ := c.IncidentOf("CheckoutErrors/checkout"); got == root {
			t.Errorf("%s: checkout joined the incident 8m30s after it opened; payments' members left there arrived at 1m, beyond front_window", name)
		}
	}
}

// A resolved-first alert that joins as the late root brings the other
// symptom incidents along, as a firing one does.
func TestAlertFirstSeenResolvedAsTheLateRootMerges(t *testing.T) {
	c := correlatorOn(t, Config{}, `
services:
  orders:  {depends_on: [db]}
  billing: {depends_on: [db]}
  db:      {}
`)
	feed(c, alert("OrdersErrors", "orders", 0), alert("BillingErrors", "billing", 30*time.Second))
	a, _ := c.IncidentOf("OrdersErrors/orders")
	b, _ := c.IncidentOf("BillingErrors/billing")
	if a == b {
		t.Fatalf("orders and billing share %s before their cause alerted", a)
	}
	root := resolved(alert("DBDown", "db", time.Minute), 2*time.Minute)
	root.Started = t0.Add(time.Minute)
	ups := feed(c, root)
	a, _ = c.IncidentOf("OrdersErrors/orders")
	b, _ = c.IncidentOf("BillingErrors/billing")
	d, _ := c.IncidentOf("DBDown/db")
	if a != b || b != d {
		t.Fatalf("orders in %s, billing in %s, db in %s: want one incident (transitions %s)", a, b, d, transitions(ups))
	}
}

// In a busy hour (more than busy_openings incidents opened) the spread
// window shrinks to busy_spread_window: a dependent alerting 7 minutes
// after the opening joins in a quiet hour, not in a busy one.
func TestBusyHourShortensTheSpreadWindow(t *testing.T) {
	yaml := `
services:
  web: {depends_on: [db]}
  db:  {}
`
	for i := range 9 {
		yaml += fmt.Sprintf("  lone-%d: {}\n", i)
	}
	for _, busy := range []bool{false, true} {
		// The lone services are isolated: shared services would merge
		// their burst (TestSharedServiceCausesABurst).
		c := correlatorOn(t, Config{SharedServices: Flag(false), AlertStorms: Flag(false)}, yaml)
		if busy {
			for i := range 9 { // nine unrelated incidents in the hour before
				feed(c, alert("Down", fmt.Sprintf("lone-%d", i), time.Duration(i)*time.Minute))
			}
			c = restarted(t, c) // a restart keeps the hour's openings
		}
		feed(c, alert("DBDown", "db", 20*time.Minute), alert("WebErrors", "web", 27*time.Minute))
		root, _ := c.IncidentOf("DBDown/db")
		got, _ := c.IncidentOf("WebErrors/web")
		if joined := got == root; joined == busy {
			t.Errorf("busy hour %v: web 7m after db's opening joined %v, want %v", busy, joined, !busy)
		}
	}
}

// The same symptom opening incidents on services the catalog does not
// relate, at least storm_burst of them within storm_window, is one
// failure (a flag or mesh config pushed everywhere, a zone's network):
// they merge into the first, which then takes what fails anywhere. Fewer,
// or further apart, stay apart.
func TestAlertStormMergesTheSameSymptomEverywhere(t *testing.T) {
	yaml := `
services:
  orders:     {owner: a, team: t, depends_on: [orders-db]}
  billing:    {owner: b, team: t, depends_on: [billing-db]}
  search:     {owner: c, team: t, depends_on: [search-db]}
  mail:       {owner: d, team: t, depends_on: [mail-db]}
  reports:    {owner: e, team: t, depends_on: [reports-db]}
  orders-db:  {owner: a, team: t}
  billing-db: {owner: b, team: t}
  search-db:  {owner: c, team: t}
  mail-db:    {owner: d, team: t}
  reports-db: {owner: e, team: t}
`
	count := func(c *Correlator) (open int) {
		for _, inc := range c.Incidents() {
			if inc.Status != StatusResolved {
				open++
			}
		}
		return open
	}
	for _, on := range []bool{true, false} {
		c := correlatorOn(t, Config{AlertStorms: Flag(on)}, yaml)
		first := alert("HighErrorRate", "orders", 0)
		feed(c, first, alert("HighErrorRate", "billing", 50*time.Second))
		if got := count(c); got != 2 {
			t.Fatalf("storms %v: %d incidents after two, want 2: two failures at one moment stay apart", on, got)
		}
		ups := feed(c, alert("HighErrorRate", "search", 100*time.Second))
		want := map[bool]int{true: 1, false: 3}[on]
		if got := count(c); got != want {
			t.Fatalf("storms %v: %d incidents after the third, want %d", on, got, want)
		}
		if !on {
			continue
		}
		into, _ := c.IncidentOf(first.Fingerprint)
		if merged := transitions(ups); !strings.Contains(merged, "resolved") {
			t.Errorf("the storm's pieces end merged, got transitions %s", merged)
		}
		// Anything failing now joins the storm, here after a restart.
		c = restarted(t, c)
		feed(c, alert("QueueBacklog", "mail", 3*time.Minute))
		if id, _ := c.IncidentOf("QueueBacklog/mail"); id != into {
			t.Errorf("mail's alert went to %s, want the storm's incident %s", id, into)
		}
	}
	// Late alerts make the same storm as alerts in order; and a restart
	// changes nothing: only incidents opened within storm_window of the
	// watermark count, live or restored.
	c := correlatorOn(t, Config{}, yaml)
	feed(c, alert("HighErrorRate", "orders", 10*time.Second), alert("HighErrorRate", "billing", 5*time.Second), alert("HighErrorRate", "search", 8*time.Second))
	if got := count(c); got != 1 {
		t.Errorf("%d incidents of three alerts of one name arriving out of order, want 1", got)
	}
	for _, restart := range []bool{false, true} {
		c := correlatorOn(t, Config{}, yaml)
		a := alert("HighErrorRate", "orders", 0)
		feed(c, a, alert("HighErrorRate", "billing", 30*time.Second))
		a.Time = t0.Add(c.cfg.StormWindow + 30*time.Second)
		feed(c, a) // a repeat moves the watermark on
		if restart {
			c = restarted(t, c)
		}
		feed(c, alert("HighErrorRate", "search", 100*time.Second))
		if got := count(c); got != 3 {
			t.Errorf("restart %v: %d incidents, want 3: orders opened more than storm_window before the watermark", restart, got)
		}
	}
	// A restored correlator files the recent incidents under the names of
	// their alerts, as the live one did (not an anomaly's name).
	live := correlatorOn(t, Config{}, yaml)
	blip := alert("LatencyAnomaly", "orders", 0)
	blip.Kind = SignalAnomaly
	feed(live, blip, alert("HighErrorRate", "orders", 5*time.Second), alert("DiskFull", "mail", 10*time.Second))
	named := func(c *Correlator) map[string]int {
		out := map[string]int{}
		for key, incs := range c.bursts {
			if key.name != "" {
				out[key.name] = len(incs)
			}
		}
		return out
	}
	if got, want := named(restarted(t, live)), named(live); !reflect.DeepEqual(got, want) || want["LatencyAnomaly"] != 0 {
		t.Errorf("storm index restored %v, live %v (no anomaly's name)", got, want)
	}
	// A storm's incident restored with the rule off is an incident like
	// any other.
	on := correlatorOn(t, Config{}, yaml)
	feed(on, alert("HighErrorRate", "orders", 0), alert("HighErrorRate", "billing", 10*time.Second), alert("HighErrorRate", "search", 20*time.Second))
	data, err := on.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	off := correlatorOn(t, Config{AlertStorms: Flag(false)}, yaml)
	if err := off.UnmarshalJSON(data); err != nil {
		t.Fatal(err)
	}
	feed(off, alert("QueueBacklog", "mail", time.Minute))
	if got := count(off); got != 2 {
		t.Errorf("%d incidents after restoring a storm with alert_storms off, want 2: mail's alone", got)
	}
	// Three of one name spread over more than storm_window stay three.
	c = correlatorOn(t, Config{}, yaml)
	feed(c, alert("HighErrorRate", "orders", 0), alert("HighErrorRate", "billing", 90*time.Second), alert("HighErrorRate", "search", 181*time.Second))
	if got := count(c); got != 3 {
		t.Errorf("%d incidents of three alerts 90 s apart, want 3", got)
	}
	// A cascade's own alerts of one name are one incident, no storm: a
	// third incident of that name beside it is not a burst of three.
	c = correlatorOn(t, Config{}, yaml)
	feed(c, alert("HighErrorRate", "reports-db", 0), alert("HighErrorRate", "reports", 10*time.Second), alert("HighErrorRate", "orders", 20*time.Second))
	if got := count(c); got != 2 {
		t.Errorf("%d incidents of a cascade and an alert beside it, want 2", got)
	}
}

// An alert storm can hold unrelated failures, each a cascade of its own.
// It is named after, and paged to the owner of, the failure with the most
// services failing behind it, not the one that happened to fire first:
// live, a tier-0 database's outage was paged to the owner of an analytics
// store whose alert came seconds before.
func TestAStormIsNamedAfterTheFailureMostServicesFailBehind(t *testing.T) {
	yaml := `
services:
  web:          {owner: ana, team: shop, depends_on: [checkout]}
  checkout:     {owner: bo, team: shop, depends_on: [payments]}
  payments:     {owner: cy, team: pay, depends_on: [payments-db]}
  payments-db:  {owner: di, team: dba}
  reports:      {owner: hu, team: analytics, depends_on: [warehouse]}
  warehouse:    {owner: io, team: analytics}
  search:       {owner: fu, team: discovery, depends_on: [search-index]}
  search-index: {owner: gi, team: discovery}
`
	c := correlatorOn(t, Config{}, yaml)
	feed(c, alert("ServiceDown", "warehouse", 0), alert("ServiceDown", "search-index", 10*time.Second), alert("ServiceDown", "payments-db", 20*time.Second),
		alert("ServiceDown", "reports", 40*time.Second), alert("ServiceDown", "payments", 45*time.Second),
		alert("ServiceDown", "checkout", 50*time.Second), alert("ServiceDown", "web", 55*time.Second))
	var open []State
	for _, inc := range c.Incidents() {
		if inc.Status != StatusResolved {
			open = append(open, inc)
		}
	}
	if len(open) != 1 {
		t.Fatalf("%d open incidents, want the storm's one", len(open))
	}
	st := open[0]
	if st.Service != "payments-db" || st.Owner != "di" || len(st.RootCauses) == 0 || st.RootCauses[0].Service != "payments-db" {
		t.Errorf("the storm is on %s (owner %q), root causes %+v; want payments-db, with three services failing behind it", st.Service, st.Owner, st.RootCauses)
	}
	// The analytics store's alert came first, and still says so.
	for _, rc := range st.RootCauses {
		if rc.Service == "warehouse" && !strings.Contains(strings.Join(rc.Reasons, "; "), "earliest signal") {
			t.Errorf("warehouse's reasons %q do not name its earliest signal", rc.Reasons)
		}
	}
}

// TestLocationBurstMergesWhatFailsInOnePlace: failures of any kind on
// services the catalog does not relate, at least location_burst of them
// opening within location_window in one region, are that region's (its
// network, its nodes); once signals from two regions were seen.
func TestLocationBurstMergesWhatFailsInOnePlace(t *testing.T) {
	yaml := `
services:
  orders:  {owner: a, team: t, depends_on: [orders-db]}
  billing: {owner: b, team: t, depends_on: [billing-db]}
  search:  {owner: c, team: t, depends_on: [search-db]}
  mail:    {owner: d, team: t, depends_on: [mail-db]}
  reports: {owner: e, team: t, depends_on: [reports-db]}
  files:   {owner: f, team: t, depends_on: [files-db]}
  orders-db: {}
  billing-db: {}
  search-db: {}
  mail-db: {}
  reports-db: {}
  files-db: {}
`
	// at gives s the labels kv (pairs), and a fingerprint of its own.
	at := func(s Signal, kv ...string) Signal {
		s.Labels = map[string]string{"service": s.Service}
		for i := 0; i+1 < len(kv); i += 2 {
			s.Labels[kv[i]] = kv[i+1]
			s.Fingerprint += "/" + kv[i+1]
		}
		return s
	}
	in := func(region string, s Signal) Signal { return at(s, "region", region) }
	open := func(c *Correlator) (n int) {
		for _, inc := range c.Incidents() {
			if inc.Status != StatusResolved {
				n++
			}
		}
		return n
	}
	// A burst of location_burst (3) failures.
	burst := func(region string) []Signal {
		return []Signal{
			in(region, alert("HighLatency", "orders", 0)), in(region, alert("ConnectionErrors", "billing", time.Minute)),
			in(region, alert("TargetDown", "mail", 4*time.Minute)),
		}
	}
	// A forecast there (advisory_alerts) neither makes the third nor
	// joins: two failures and a disk filling up stay three.
	c := correlatorOn(t, Config{}, yaml)
	feed(c, in("us-east-1", alert("DiskFull", "files", -time.Hour)))
	feed(c, in("eu-west-1", alert("NodeFilesystemSpaceFillingUp", "reports", -time.Minute)))
	feed(c, burst("eu-west-1")[:2]...)
	feed(c, in("eu-west-1", alert("CertificateExpiringSoon", "files", 3*time.Minute)))
	if got := open(c); got != 5 {
		t.Fatalf("%d incidents open after two failures and two forecasts in one region, want 5: no burst", got)
	}
	// Another region seen before: three in one region within 5 minutes are one.
	c = correlatorOn(t, Config{}, yaml)
	feed(c, in("us-east-1", alert("DiskFull", "files", -time.Hour)))
	feed(c, burst("eu-west-1")[:2]...)
	if got := open(c); got != 3 {
		t.Fatalf("%d incidents open after two failures in one region, want 3: two stay apart", got)
	}
	feed(c, burst("eu-west-1")[2])
	if got := open(c); got != 2 {
		t.Fatalf("%d incidents open after the third, want 2 (the burst's and us-east-1's)", got)
	}
	into, _ := c.IncidentOf(burst("eu-west-1")[0].Fingerprint)
	// A new failure there joins it, after a restart too; one elsewhere
	// does not.
	c = restarted(t, c)
	feed(c, in("eu-west-1", alert("HighErrorRate", "reports", 5*time.Minute)), in("us-east-1", alert("HighErrorRate", "files", 5*time.Minute)))
	if id, _ := c.IncidentOf("HighErrorRate/reports/eu-west-1"); id != into {
		t.Errorf("a new failure in the region went to %s, want the burst's incident %s", id, into)
	}
	if id, _ := c.IncidentOf("HighErrorRate/files/us-east-1"); id == into {
		t.Errorf("a failure in another region joined the burst's incident")
	}
	// The regions seen survive a restart.
	c = correlatorOn(t, Config{}, yaml)
	feed(c, in("us-east-1", alert("DiskFull", "files", -time.Hour)))
	c = restarted(t, c)
	feed(c, burst("eu-west-1")...)
	if got := open(c); got != 2 {
		t.Errorf("%d incidents open of a burst after a restart, want 2", got)
	}
	// Every signal from one region: the region tells nothing.
	c = correlatorOn(t, Config{}, yaml)
	feed(c, burst("eu-west-1")...)
	if got := open(c); got != 3 {
		t.Errorf("%d incidents of three failures with one region seen, want 3", got)
	}
	// Out of order, the same burst; spread over more than the window, none.
	c = correlatorOn(t, Config{}, yaml)
	b := burst("eu-west-1")
	feed(c, in("us-east-1", alert("DiskFull", "files", -time.Hour)), b[2], b[1], b[0])
	if got := open(c); got != 2 {
		t.Errorf("%d incidents open of a burst arriving out of order, want 2", got)
	}
	c = correlatorOn(t, Config{}, yaml)
	b[2].Time = t0.Add(7 * time.Minute)
	feed(c, in("us-east-1", alert("DiskFull", "files", -time.Hour)))
	feed(c, b...)
	if got := open(c); got != 4 {
		t.Errorf("%d incidents open of three failures over 7 minutes, want 4", got)
	}
	// Three at once in two regions stay apart; a burst of four with
	// location_burst 4 too; and the rule off.
	c = correlatorOn(t, Config{}, yaml)
	mixed := burst("eu-west-1")
	mixed[1] = burst("us-east-1")[1]
	feed(c, mixed...)
	if got := open(c); got != 3 {
		t.Errorf("%d incidents of three failures in two regions, want 3", got)
	}
	c = correlatorOn(t, Config{LocationBurst: 4}, yaml)
	feed(c, in("us-east-1", alert("DiskFull", "files", -time.Hour)))
	feed(c, burst("eu-west-1")...)
	if got := open(c); got != 4 {
		t.Errorf("location_burst 4: %d incidents open of three failures in one region, want 4", got)
	}
	feed(c, in("eu-west-1", alert("KafkaLag", "search", 4*time.Minute)))
	if got := open(c); got != 2 {
		t.Errorf("location_burst 4: %d incidents open after the fourth, want 2", got)
	}
	c = correlatorOn(t, Config{LocationBursts: Flag(false)}, yaml)
	feed(c, in("us-east-1", alert("DiskFull", "files", -time.Hour)))
	feed(c, burst("eu-west-1")...)
	if got := open(c); got != 4 {
		t.Errorf("location_bursts false: %d incidents, want 4", got)
	}
	// burstBeside feeds a failure elsewhere, then the burst, each signal
	// placed by where, and counts the incidents open.
	burstBeside := func(cfg Config, where func(place string, s Signal) Signal) int {
		c := correlatorOn(t, cfg, yaml)
		feed(c, where("b", alert("DiskFull", "files", -time.Hour)))
		for _, s := range burst("") {
			feed(c, where("a", s))
		}
		return open(c)
	}
	// One region everywhere tells nothing; its clusters do.
	if got := burstBeside(Config{}, func(cluster string, s Signal) Signal { return at(s, "region", "eu-west-1", "cluster", cluster) }); got != 2 {
		t.Errorf("%d incidents open of a burst in one cluster of the only region, want 2", got)
	}
	// An incident holding the bursts of two places takes signals from
	// both, after a restart too, with alert_storms off (no storm of its
	// own); restored with a location label no longer configured, it is
	// an incident like any.
	for _, cfg := range []Config{{}, {AlertStorms: Flag(false)}} {
		c = correlatorOn(t, cfg, yaml)
		feed(c, in("us-east-1", alert("DiskFull", "files", -time.Hour)))
		feed(c, burst("eu-west-1")...)
		inc := c.members[burst("eu-west-1")[0].Fingerprint].inc
		c.markStorm(inc, place{"region", "ap-southeast-2"})
		r := restarted(t, c)
		if got := r.incidents[inc.id]; got.storm || !reflect.DeepEqual(got.stormPlaces, inc.stormPlaces) {
			t.Errorf("%+v: restored storm %v places %v, want false and %v", cfg, got.storm, got.stormPlaces, inc.stormPlaces)
		}
		data, err := c.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		zoned, _ := New(Config{LocationLabels: []string{"zone"}}, c.cat)
		if err := zoned.UnmarshalJSON(data); err != nil {
			t.Fatal(err)
		}
		if got := zoned.incidents[inc.id]; len(got.stormPlaces) != 0 || got.place != (place{}) || len(zoned.storms) != 0 {
			t.Errorf("restored with location_labels [zone]: places %v, opened at %v, storms %d, want none", got.stormPlaces, got.place, len(zoned.storms))
		}
	}
	// The labels are tried in order: a zone when there is no region.
	if got := burstBeside(Config{LocationLabels: []string{"region", "zone"}}, func(zone string, s Signal) Signal { return at(s, "zone", zone) }); got != 2 {
		t.Errorf("%d incidents open of a burst in one zone, want 2", got)
	}
}

// A change delivered after later signals goes on the timeline at its own
// time, before the entries it preceded: a timeline reads in time order.
func TestLateChangeIsNotedInTimeOrder(t *testing.T) {
	c := newCorrelator(t, Config{})
	feed(c, alert("ReplicationLag", "payments-db", 0), alert("ConnectionPoolExhausted", "payments", 30*time.Second),
		alert("HighErrorRate", "checkout", 5*time.Minute))
	feed(c, Signal{Kind: SignalChange, Service: "payments", Name: "deploy", Version: "v9", Author: "ana", Time: t0.Add(2 * time.Minute), EventID: "late"})
	id, _ := c.IncidentOf("ReplicationLag/payments-db")
	st, _ := c.Incident(id)
	at := slices.IndexFunc(st.Timeline, func(e Entry) bool { return e.What == duringPrefix+"deploy of payments v9 by ana" })
	if at < 0 {
		t.Fatalf("the late change is not on the timeline: %v", st.Timeline)
	}
	if !slices.IsSortedFunc(st.Timeline, func(a, b Entry) int { return a.Time.Compare(b.Time) }) {
		t.Errorf("timeline out of time order: %v", st.Timeline)
	}
	if at == len(st.Timeline)-1 {
		t.Errorf("the late change was appended last, after checkout's join at 5m: %v", st.Timeline)
	}
}

// Advisory alerts (Config.AdvisoryAlerts) neither join a failure on
// another service nor take one: a disk forecast to fill on a caller of a
// failing database, or a certificate expiring soon beneath a failing
// service, is a warning of its own. On their own service they are members
// like any other (the disk then fills and the service fails), an incident
// of advisory alerts alone holding the same name takes them (one
// certificate on several services), and an empty list turns the rule off. A restored
// correlator keeps them apart too.
func TestAdvisoryAlertsStayApart(t *testing.T) {
	failing := []Signal{alert("ReplicationLag", "payments-db", 0), alert("ConnectionPoolExhausted", "payments", 30*time.Second)}
	advisories := []Signal{
		alert("NodeFilesystemSpaceFillingUp", "checkout", time.Minute), // a caller of payments
		alert("CertificateExpiringSoon", "web", 90*time.Second),
		alert("CertificateExpiringSoon", "search", 2*time.Minute), // the same name: joins web's
		alert("KubeJobFailed", "payments-db", 2*time.Minute),      // on the root's own service: joins
	}
	later := []Signal{
		alert("HighErrorRate", "search-index", 3*time.Minute), // under web's and search's certificate incident
		alert("HighLatency", "cart", 3*time.Minute),           // under checkout's disk forecast
	}
	c := newCorrelator(t, Config{})
	feed(c, failing...)
	feed(c, advisories...)
	c = restarted(t, c)
	feed(c, later...)
	of := incidentOfFingerprint
	db := of(c, "ReplicationLag/payments-db")
	for fp, joins := range map[string]bool{
		"NodeFilesystemSpaceFillingUp/checkout": false,
		"CertificateExpiringSoon/web":           false, // web is above payments-db, 3 hops
		"KubeJobFailed/payments-db":             true,
	} {
		if got := of(c, fp) == db; got != joins {
			t.Errorf("%s in the database's incident: %v, want %v", fp, got, joins)
		}
	}
	if of(c, "CertificateExpiringSoon/search") != of(c, "CertificateExpiringSoon/web") {
		t.Error("one certificate expiring on web and search made two incidents")
	}
	if of(c, "HighErrorRate/search-index") == of(c, "CertificateExpiringSoon/web") {
		t.Error("search-index failing joined the certificate warnings above it")
	}
	if of(c, "HighLatency/cart") == of(c, "NodeFilesystemSpaceFillingUp/checkout") {
		t.Error("cart failing joined checkout's disk forecast above it")
	}
	// With the rule off they join the failure as any symptom does.
	off := newCorrelator(t, Config{AdvisoryAlerts: []string{}, LocalAlerts: []string{}}) // a filesystem's is a resource alert too
	feed(off, failing...)
	feed(off, advisories[:2]...)
	for _, fp := range []string{"NodeFilesystemSpaceFillingUp/checkout", "CertificateExpiringSoon/web"} {
		if of(off, fp) != of(off, "ReplicationLag/payments-db") {
			t.Errorf("advisory_alerts: []: %s not in the database's incident", fp)
		}
	}
	// On its own service an advisory alert takes the failure it warned of.
	c = newCorrelator(t, Config{})
	feed(c, alert("NodeFilesystemSpaceFillingUp", "payments-db", 0), alert("PostgresDown", "payments-db", 5*time.Minute),
		alert("ConnectionPoolExhausted", "payments", 6*time.Minute))
	if n := len(c.Incidents()); n != 1 {
		t.Errorf("a disk forecast, then the database down and its caller failing: %d incidents, want 1", n)
	}
}

// Resource alerts (Config.LocalAlerts) tell of their own service: a
// caller's memory filling while a database fails beneath it is a failure
// of its own, not a symptom, and a caller's CPU alert is no symptom of a
// failure of what it calls coming after it. Below the root, as its cause,
// and on the root's own service they join; an empty list turns the rule
// off, and a restored correlator keeps it.
func TestResourceAlertsAreNoSymptoms(t *testing.T) {
	failing := []Signal{alert("PostgresDown", "payments-db", 0), alert("HighErrorRate", "payments", 30*time.Second)}
	resource := []Signal{
		alert("HighMemoryUsage", "checkout", time.Minute),              // above the root: no symptom
		alert("ContainerOOMKilled", "payments", 70*time.Second),        // on a member's service, above the root
		alert("PostgresqlDiskSpaceLow", "payments-db", 80*time.Second), // on the root: joins
	}
	c := newCorrelator(t, Config{})
	feed(c, failing...)
	c = restarted(t, c)
	feed(c, resource...)
	of := incidentOfFingerprint
	db := of(c, "PostgresDown/payments-db")
	for fp, joins := range map[string]bool{
		"HighMemoryUsage/checkout":           false,
		"ContainerOOMKilled/payments":        false,
		"PostgresqlDiskSpaceLow/payments-db": true,
	} {
		if got := of(c, fp) == db; got != joins {
			t.Errorf("%s in the database's incident: %v, want %v", fp, got, joins)
		}
	}
	wantTimeline(t, c, "HighMemoryUsage/checkout", "opened by alert HighMemoryUsage on checkout",
		"kept out of the incident of payments-db, which checkout depends on: a resource alert tells of checkout itself, not of what it calls (local_alerts)")
	// Below a failing service a resource alert is its cause: the late
	// root takes the caller's incident.
	c = newCorrelator(t, Config{})
	feed(c, alert("HighErrorRate", "payments", 0), alert("JvmHeapUsageHigh", "payments-db", 40*time.Second))
	if a, b := of(c, "HighErrorRate/payments"), of(c, "JvmHeapUsageHigh/payments-db"); a != b {
		t.Error("the database's heap filling under its failing caller made an incident of its own")
	}
	// An incident of resource alerts alone is no symptom of what fails
	// beneath it after: neither joined by the late root nor merged.
	cpu := []Signal{alert("CPUThrottlingHigh", "payments", 0), alert("HighMemoryUsage", "payments", 10*time.Second)}
	down := alert("PostgresDown", "payments-db", time.Minute)
	c = newCorrelator(t, Config{})
	feed(c, cpu...)
	c = restarted(t, c)
	feed(c, down)
	if a, b := of(c, "CPUThrottlingHigh/payments"), of(c, "PostgresDown/payments-db"); a == b {
		t.Error("the database failing took payments' CPU and memory alerts before it as its symptoms")
	}
	// Opening first, the database's incident does not gather them either.
	c = newCorrelator(t, Config{})
	feed(c, alert("HighMemoryUsage", "payments", 0), alert("PostgresDown", "payments-db", 20*time.Second), alert("HighErrorRate", "payments", 30*time.Second))
	if a, b := of(c, "HighMemoryUsage/payments"), of(c, "PostgresDown/payments-db"); a == b {
		t.Error("payments failing on the database gathered payments' memory alert into the database's incident")
	}
	// Nor does a symptom that started before it, notified after (gather).
	c = newCorrelator(t, Config{})
	feed(c, alert("PostgresDown", "payments-db", 0), alert("HighMemoryUsage", "checkout", 30*time.Second), alert("HighErrorRate", "payments", 20*time.Second))
	if a, b := of(c, "HighMemoryUsage/checkout"), of(c, "HighErrorRate/payments"); a == b {
		t.Error("payments, notified after checkout's memory alert, brought it along as its symptom")
	}
	// With the rule off they are symptoms as any alert is.
	off := newCorrelator(t, Config{LocalAlerts: []string{}})
	feed(off, failing...)
	feed(off, resource[:2]...)
	for _, fp := range []string{"HighMemoryUsage/checkout", "ContainerOOMKilled/payments"} {
		if of(off, fp) != of(off, "PostgresDown/payments-db") {
			t.Errorf("local_alerts: []: %s not in the database's incident", fp)
		}
	}
	off = newCorrelator(t, Config{LocalAlerts: []string{}})
	feed(off, cpu...)
	feed(off, down)
	if of(off, "CPUThrottlingHigh/payments") != of(off, "PostgresDown/payments-db") {
		t.Error("local_alerts: []: the database failing under payments did not take payments' incident")
	}
	for name, want := range map[string]bool{"ContainerMemoryNearLimit": true, "NodeFilesystemAlmostOutOfSpace": true,
		"KubeContainerOOMKilled": true, "oom_kill_detected": true, "NodeOOMKills": true, "OomKilled": true, "TargetDown": true,
		"KubeHpaMaxedOut": false, "HighErrorRate": false, "ThreadPoolSaturated": false,
		"HTTPTooManyRequests": false, "PostgresqlTooManyConnections": false, "ZoomApiErrors": false} {
		if got := c.isLocal(SignalAlert, name); got != want {
			t.Errorf("isLocal(%s) = %v, want %v", name, got, want)
		}
	}
	if c.isLocal(SignalAnomaly, "HighMemoryUsage") {
		t.Error("an anomaly is a resource alert")
	}
	// An incident of resource alerts whose label names the failing
	// service is no symptom of it either.
	c = newCorrelator(t, Config{})
	named := alert("ContainerMemoryNearLimit", "payments", 0)
	named.Labels = map[string]string{"database": "payments-db"}
	feed(c, named, alert("PostgresDown", "payments-db", 20*time.Second))
	if a, b := of(c, named.Fingerprint), of(c, "PostgresDown/payments-db"); a == b {
		t.Error("the database failing took payments' memory alert naming it as its symptom")
	}
}

// threeFailuresAndDNS is a catalog of three unrelated pairs of services
// and a shared one, coredns, that nothing names.
const threeFailuresAndDNS = `
services:
  web:     {depends_on: [api]}
  api:     {}
  search:  {depends_on: [index]}
  index:   {}
  mail:    {depends_on: [smtp]}
  smtp:    {}
  coredns: {}
`

// Nor is a resource alert a symptom of a shared service: incidents of
// them alone neither make a shared service's burst nor are merged into
// it, and none joins the burst after.
func TestResourceAlertsAreNoSymptomsOfASharedService(t *testing.T) {
	c := correlatorOn(t, Config{}, threeFailuresAndDNS)
	feed(c, alert("HighMemoryUsage", "web", 0), alert("CPUThrottlingHigh", "search", 20*time.Second),
		alert("NodeDiskFull", "mail", 40*time.Second), alert("CoreDNSErrors", "coredns", 90*time.Second))
	if n := len(c.Incidents()); n != 4 {
		t.Errorf("coredns amid three incidents of resource alerts: %d incidents, want 4 apart", n)
	}
	c = correlatorOn(t, Config{}, threeFailuresAndDNS)
	feed(c, alert("HighErrorRate", "web", 0), alert("HighErrorRate", "search", 20*time.Second),
		alert("SendFailures", "mail", 40*time.Second), alert("HighMemoryUsage", "api", 50*time.Second),
		alert("CoreDNSErrors", "coredns", 90*time.Second), alert("ContainerOOMKilled", "index", 2*time.Minute))
	dns, _ := c.IncidentOf("CoreDNSErrors/coredns")
	if id, _ := c.IncidentOf("HighErrorRate/search"); id != dns {
		t.Fatal("coredns amid three failures made no burst")
	}
	if id, _ := c.IncidentOf("ContainerOOMKilled/index"); id == dns {
		t.Error("index's OOM kill after the burst joined coredns's incident")
	}
}

// A failure's incident does not take an advisory alert of another service
// because it holds one of that name on its own service: every job that
// fails is a KubeJobFailed. Only what is advisory by the whole name is,
// only alerts are, and a name longer than any rule's is not.
func TestAdvisoryAlertsOfOneNameInAFailure(t *testing.T) {
	c := newCorrelator(t, Config{})
	feed(c, alert("ReplicationLag", "payments-db", 0), alert("KubeJobFailed", "payments-db", time.Minute),
		alert("KubeJobFailed", "checkout", 2*time.Minute), alert("KubeJobFailed", "web", 3*time.Minute))
	db, _ := c.IncidentOf("ReplicationLag/payments-db")
	if id, _ := c.IncidentOf("KubeJobFailed/payments-db"); id != db {
		t.Error("a job failing on the failing database's own service stayed out")
	}
	for _, fp := range []string{"KubeJobFailed/checkout", "KubeJobFailed/web"} {
		if id, _ := c.IncidentOf(fp); id == db {
			t.Errorf("%s joined the database's failure through the name of the job failing there", fp)
		}
	}
	if a, _ := c.IncidentOf("KubeJobFailed/checkout"); a == "" {
		t.Error("checkout's job failure is in no incident")
	} else if b, _ := c.IncidentOf("KubeJobFailed/web"); a != b {
		t.Error("two job failures of one name, advisory alone, made two incidents")
	}
	for _, tc := range []struct {
		kind SignalKind
		name string
		want bool
	}{
		{SignalAlert, "CertificateExpiringSoon", true},
		{SignalAlert, "CertificateExpiry", true},
		{SignalAlert, "SSLCertExpiring", true},
		{SignalAlert, "BlackboxSSLCertExpired", false}, // expired: a failure, not a warning
		{SignalAlert, "ForecastSoonish", false},
		{SignalAlert, "SoonDiskFull", false},
		{SignalAnomaly, "KubeJobFailed", false},
		{SignalAlert, strings.Repeat("x", maxRuleName) + "Soon", false},
	} {
		if got := c.isAdvisory(tc.kind, tc.name); got != tc.want {
			t.Errorf("isAdvisory(%s, %.30q) = %v, want %v", tc.kind, tc.name, got, tc.want)
		}
	}
}

// advisoryCounted checks every incident's counts of advisory members
// and of resource alerts against its members.
func advisoryCounted(t *testing.T, c *Correlator) {
	t.Helper()
	for _, inc := range c.incidents {
		advisory, local := 0, 0
		for _, m := range inc.members {
			if c.isAdvisory(m.Kind, m.Name) {
				advisory++
			}
			if c.isLocal(m.Kind, m.Name) {
				local++
			}
		}
		if advisory != inc.advisory || local != inc.local {
			t.Fatalf("incident %s counts %d advisory members and %d resource alerts, holds %d and %d", inc.id, inc.advisory, inc.local, advisory, local)
		}
	}
}

// The counts of advisory members and resource alerts follow members
// through merges, a restore and the eviction of a full memory.
func TestAdvisoryCountFollowsMembers(t *testing.T) {
	c := newCorrelator(t, Config{MaxFingerprints: 6})
	feed(c, alert("KubeJobFailed", "checkout", 0), alert("ContainerOOMKilled", "checkout", 5*time.Second), alert("HighErrorRate", "checkout", 10*time.Second),
		alert("NodeFilesystemSpaceFillingUp", "web", 20*time.Second), alert("HighLatency", "web", 30*time.Second))
	advisoryCounted(t, c)
	// payments fails under checkout: the late root merges checkout's
	// incident (advisory member and all) into its own.
	feed(c, alert("ConnectionPoolExhausted", "payments", 40*time.Second))
	if a, _ := c.IncidentOf("KubeJobFailed/checkout"); a == "" {
		t.Fatal("checkout's job failure is in no incident")
	}
	advisoryCounted(t, c)
	c = restarted(t, c)
	advisoryCounted(t, c)
	// A member leaving a live incident (as one whose incident is gone for
	// good leaves when it fires again) takes its count along.
	c.leave(c.members["KubeJobFailed/checkout"])
	advisoryCounted(t, c)
	for i := range 8 { // the memory fills: the oldest are forgotten
		feed(c, alert(fmt.Sprint("JobFailed", i), "batch", time.Hour+time.Duration(i)*time.Minute))
		advisoryCounted(t, c)
		feed(c, alert(fmt.Sprint("DiskFull", i), "batch", time.Hour+time.Duration(i)*time.Minute+time.Second))
		advisoryCounted(t, c)
	}
}

// The opening stays first on a timeline whose linked changes came before
// it, also once the timeline is trimmed; entries of one time keep the
// order they came in.
func TestTimelineKeepsItsOpening(t *testing.T) {
	c := newCorrelator(t, Config{})
	for i := range 15 {
		feed(c, Signal{Kind: SignalChange, Service: "checkout", Name: "config", Time: t0.Add(time.Duration(i-20) * time.Minute), EventID: fmt.Sprint("c-", i)})
	}
	feed(c, alert("HighErrorRate", "checkout", 0), alert("HighLatency", "web", time.Minute))
	// A change delivered late, at the time of web's join: after it.
	feed(c, Signal{Kind: SignalChange, Service: "web", Name: "deploy", Version: "v2", Author: "ana", Time: t0.Add(time.Minute), EventID: "late"})
	id, _ := c.IncidentOf("HighErrorRate/checkout")
	st, _ := c.Incident(id)
	if !strings.HasPrefix(st.Timeline[0].What, "opened by") {
		t.Fatalf("first entry %q, want the opening", st.Timeline[0].What)
	}
	n := len(st.Timeline)
	if !strings.HasPrefix(st.Timeline[n-2].What, "web joined") || !strings.HasPrefix(st.Timeline[n-1].What, duringPrefix) {
		t.Errorf("the last two entries %q, %q: want web's join, then the change of the same time", st.Timeline[n-2].What, st.Timeline[n-1].What)
	}
	for i := range maxTimeline {
		feed(c, alert("HighLatency", "checkout", 2*time.Minute+time.Duration(i)*time.Second), resolved(alert("HighLatency", "checkout", 0), 2*time.Minute+time.Duration(i)*time.Second+time.Millisecond))
	}
	st, _ = c.Incident(id)
	if len(st.Timeline) != maxTimeline || !strings.HasPrefix(st.Timeline[0].What, "opened by") {
		t.Errorf("after a trim: %d entries, the first %q; want %d and the opening", len(st.Timeline), st.Timeline[0].What, maxTimeline)
	}
}

// parsedEnvelope is u's incident event as a consumer reads it: encoded,
// then parsed and validated.
func parsedEnvelope(t *testing.T, u Update) *event.Envelope {
	t.Helper()
	e, err := Envelope(u, t0)
	if err != nil {
		t.Fatal(err)
	}
	data, err := e.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := event.Parse(data)
	if err != nil {
		t.Fatalf("%s event does not validate: %v", u.Transition, err)
	}
	return parsed
}

// An incident is as severe as the worst any of its members got: an
// anomaly episode whose peak grows is reported warning, then error (the
// detector's severity follows the peak), and its incident, the event
// notifiers route by, is then error; after a restart too. A later, milder
// report does not make it milder.
func TestMemberSeverityFollowsItsWorstReport(t *testing.T) {
	c := newCorrelator(t, Config{LoneAnomalies: Flag(true)})
	anomaly := func(phase string, sev event.Severity, at time.Duration) Signal {
		return Signal{Kind: SignalAnomaly, Fingerprint: "series-checkout", Service: "checkout", Name: "latency_p99", Time: t0.Add(at),
			Severity: sev, EpisodeID: "e1", Episode: phase, Resolved: phase == EpisodeClose, EventID: event.DerivedID(t0.Add(at), "anomaly")}
	}
	feed(c, anomaly(EpisodeOpen, event.SeverityWarning, 0))
	id, _ := c.IncidentOf("series-checkout")
	ups := feed(c, anomaly(EpisodeUpdate, event.SeverityError, 5*time.Minute))
	ups = append(ups, c.Advance(t0.Add(6*time.Minute))...)
	if len(ups) == 0 {
		t.Fatal("no update published after the member got worse")
	}
	last := ups[len(ups)-1]
	if e := parsedEnvelope(t, last); e.Severity != event.SeverityError || last.State.Severity != event.SeverityError || last.State.Members[0].Severity != event.SeverityError {
		t.Fatalf("after an error report the incident's event has severity %q (state %q, member %q), want error", e.Severity, last.State.Severity, last.State.Members[0].Severity)
	}
	c = restarted(t, c)
	feed(c, anomaly(EpisodeUpdate, event.SeverityWarning, 7*time.Minute), anomaly(EpisodeClose, "", 8*time.Minute))
	if st, _ := c.Incident(id); st.Severity != event.SeverityError {
		t.Fatalf("after a restart and milder reports the incident is %q, want error", st.Severity)
	}
}

// An anomaly member's value and band are in its incident's event even when
// zero (traffic fallen to nothing, a band whose floor is 0, the log
// miner's error bursts, whose expected count is often 0): left out, a
// reader could not tell "0" from "not known". An alert, which has none,
// carries none; after a restart too.
func TestAnomalyMemberKeepsZeroValueAndBand(t *testing.T) {
	c := newCorrelator(t, Config{})
	feed(c, Signal{Kind: SignalAnomaly, Fingerprint: "series-checkout", Service: "checkout", Name: "requests_per_second", Time: t0,
		Value: 0, Expected: 120, Lower: 0, Upper: 180, EventID: event.DerivedID(t0, "anomaly")},
		alert("HighErrorRate", "checkout", time.Second))
	id, _ := c.IncidentOf("series-checkout")
	for _, c := range []*Correlator{c, restarted(t, c)} {
		st, _ := c.Incident(id)
		st.Status = string(Updated)
		e := parsedEnvelope(t, Update{Transition: Updated, Time: t0.Add(time.Minute), State: st})
		var body struct {
			Members []map[string]any `json:"members"`
		}
		if err := e.DecodeBody(&body); err != nil || len(body.Members) != 2 {
			t.Fatalf("members: %v %s", err, e.Body)
		}
		for _, m := range body.Members {
			_, value := m["value"]
			_, lower := m["lower"]
			_, expected := m["expected"]
			_, upper := m["upper"]
			switch anomaly := m["kind"] == string(SignalAnomaly); {
			case anomaly && (!value || !lower || m["expected"] != 120.0 || m["upper"] != 180.0):
				t.Errorf("anomaly member %v: want value 0, expected 120, lower 0, upper 180", m)
			case !anomaly && (value || lower || expected || upper):
				t.Errorf("alert member %v: want no value or band", m)
			}
		}
	}
}

// An incident event links the changes linked to it beside its members'
// first events: the analysts' incident_timeline query (docs/queries.md)
// finds an incident's changes through its links, as it finds its alerts.
func TestIncidentEventLinksItsChanges(t *testing.T) {
	c := newCorrelator(t, Config{})
	deploy := event.DerivedID(t0.Add(-6*time.Minute), "change", "payments")
	feed(c, Signal{Kind: SignalChange, Service: "payments", Name: "deploy", Version: "v2", Time: t0.Add(-6 * time.Minute), EventID: deploy})
	ups := feed(c, alert("HighErrorRate", "checkout", 0))
	if len(ups) != 1 || len(ups[0].State.Changes) != 1 {
		t.Fatalf("%d events, want the opening with the deploy linked: %+v", len(ups), ups)
	}
	e := parsedEnvelope(t, ups[0])
	if !slices.Contains(e.Links, deploy) || !slices.Contains(e.Links, ups[0].State.Members[0].FirstEventID) {
		t.Fatalf("links %v, want the alert's first event and the deploy %s", e.Links, deploy)
	}
}

// A change linked without a version or an author says so on the timeline
// with "-", as a change noted during the incident and a root-cause reason
// do, not with a blank ("deploy of payments  by ").
func TestLinkedChangeWithoutAuthorReadsOnTheTimeline(t *testing.T) {
	c := newCorrelator(t, Config{})
	feed(c, Signal{Kind: SignalChange, Service: "payments", Name: "deploy", Time: t0.Add(-6 * time.Minute), EventID: event.DerivedID(t0, "change")},
		alert("HighErrorRate", "checkout", 0))
	id, _ := c.IncidentOf("HighErrorRate/checkout")
	st, _ := c.Incident(id)
	var linked []string
	for _, e := range st.Timeline {
		if strings.HasPrefix(e.What, "change linked") {
			linked = append(linked, e.What)
		}
	}
	if want := "change linked: deploy of payments - by -"; len(linked) != 1 || linked[0] != want {
		t.Fatalf("timeline says %q, want %q", linked, want)
	}
}

// A signal the catalog cannot place (a blackbox probe of a public URL,
// under the exporter's name) joins the incident whose failure reached a
// new service within unplaced_window before it, the latest of them; it
// stays apart when nothing spreads now, with the rule off, and without a
// catalog; one whose label names a catalogued service goes by that.
func TestUnplacedSignalJoinsWhatSpreadsNow(t *testing.T) {
	const cat = chainCatalog
	probe := probeOf
	cascade := []Signal{alert("DBDown", "db", 0), alert("HighErrorRate", "api", time.Minute), alert("HighErrorRate", "web", 2*time.Minute)}
	in := incidentOf

	c := correlatorOn(t, Config{}, cat)
	feed(c, cascade...)
	// search fails on its own 15 s before the cascade reaches web: both
	// within the window of the probes, the cascade the latest.
	feed(c, alert("DiskFull", "search", 105*time.Second))
	p1, p2 := probe(2*time.Minute+40*time.Second, "https://www.shop.example.com/"), probe(2*time.Minute+50*time.Second, "https://api.shop.example.com/")
	feed(c, p1, p2)
	if got, want := in(c, p1), in(c, cascade[0]); got != want || in(c, p2) != want {
		t.Errorf("probes in %s and %s, want the cascade's %s, whose failure reached web 40 s before", got, in(c, p2), want)
	}
	late := probe(4*time.Minute, "https://m.shop.example.com/")
	feed(c, late)
	if got := in(c, late); got == in(c, cascade[0]) {
		t.Errorf("a probe 2 minutes after the cascade last spread joined it")
	}
	// A label naming a catalogued service places it as before.
	named := alert("QueueBacklog", "rabbitmq-exporter", 2*time.Minute+55*time.Second)
	named.Labels = map[string]string{"consumer": "search"}
	feed(c, named)
	if got := in(c, named); got != in(c, alert("DiskFull", "search", 0)) {
		t.Errorf("an alert naming search in a label went to %s, want search's incident", got)
	}

	// What joined by time alone is no sign of spreading: unknown
	// exporters a minute apart do not chain into the incident. (Their
	// alerts are named apart: one name on each would be an alert storm.)
	chain := correlatorOn(t, Config{}, cat)
	feed(chain, alert("DBDown", "db", 0))
	var joined int
	for i, svc := range []string{"snmp-exporter", "ping-exporter", "x-exporter", "y-exporter"} {
		s := alert(svc+"Down", svc, time.Duration(50*(i+1))*time.Second)
		if feed(chain, s); in(chain, s) == in(chain, alert("DBDown", "db", 0)) {
			joined++
		}
	}
	if joined != 1 {
		t.Errorf("%d unknown exporters 50 s apart joined db's incident, want the first only", joined)
	}
	// An incident of one member, just opened, is spreading too.
	one := correlatorOn(t, Config{}, cat)
	feed(one, alert("DBDown", "db", 0))
	p := probe(30*time.Second, "https://www.shop.example.com/")
	if feed(one, p); in(one, p) != in(one, alert("DBDown", "db", 0)) {
		t.Errorf("a probe 30 s after db's alert opened its incident stayed apart")
	}

	// A restart between the cascade and the probes changes nothing: the
	// arrivals are filed again from the snapshot.
	again := correlatorOn(t, Config{}, cat)
	feed(again, cascade...)
	feed(again, alert("DiskFull", "search", 105*time.Second))
	again = restarted(t, again)
	feed(again, p1, p2)
	if got, want := in(again, p1), in(again, cascade[0]); got != want || in(again, p2) != want {
		t.Errorf("after a restart the probes are in %s and %s, want the cascade's %s", got, in(again, p2), want)
	}

	for name, c := range map[string]*Correlator{
		"rule off":   correlatorOn(t, Config{UnplacedSignals: Flag(false)}, cat),
		"no catalog": func() *Correlator { c, _ := New(Config{}, nil); return c }(),
	} {
		feed(c, cascade...)
		feed(c, p1)
		if in(c, p1) == in(c, cascade[0]) {
			t.Errorf("%s: the probe joined the cascade", name)
		}
	}
}

// A signal the catalog cannot place that fails first is adopted by the
// failure that reaches a catalogued service at most unplaced_window after
// it: the probe's incident is merged into it, and says so. One longer
// before, with the rule off or across a group_by label stays apart; a
// restart in between changes nothing.
func TestUnplacedSignalAdoptedByWhatFailsJustAfter(t *testing.T) {
	const cat = `
services:
  api: {depends_on: [db]}
  db:  {}
`
	probe := func(at time.Duration, url string) Signal {
		s := probeOf(at, url)
		s.Labels["cluster"] = "eu"
		return s
	}
	in := incidentOf
	early, before := alert("UPSOnBattery", "snmp-exporter", -2*time.Minute), probe(-40*time.Second, "https://www.example.com/")
	early.Labels = map[string]string{"cluster": "eu"}
	db := alert("DBDown", "db", 0)
	db.Labels = map[string]string{"cluster": "eu"}

	c := correlatorOn(t, Config{}, cat)
	feed(c, early, before)
	probeInc := in(c, before)
	ups := feed(c, db)
	if in(c, before) != in(c, db) {
		t.Fatalf("a probe 40 s before db failed is in %s, db in %s: want one incident", in(c, before), in(c, db))
	}
	if in(c, early) == in(c, db) {
		t.Errorf("a probe 2 minutes before db failed was adopted too")
	}
	var merged bool
	for _, u := range ups {
		if u.State.IncidentID == probeInc && u.State.MergedInto == in(c, db) {
			merged = true
		}
	}
	if !merged {
		t.Errorf("no event tells the probe's incident %s went into db's: %s", probeInc, transitions(ups))
	}

	again := correlatorOn(t, Config{}, cat)
	feed(again, before)
	again = restarted(t, again)
	if feed(again, db); in(again, before) != in(again, db) {
		t.Errorf("after a restart the probe stayed apart from db's incident")
	}

	for name, cfg := range map[string]Config{
		"rule off": {UnplacedSignals: Flag(false)},
		"group_by": {GroupBy: []string{"cluster"}},
	} {
		c := correlatorOn(t, cfg, cat)
		other := db
		if name == "group_by" {
			other.Labels = map[string]string{"cluster": "us"}
		}
		feed(c, before, other)
		if in(c, before) == in(c, other) {
			t.Errorf("%s: the probe was adopted", name)
		}
	}
}

// Unplaced signals go the same way whatever the order they arrive in, and
// whether the correlator restarted in between (review of session 26): a
// placed alert delivered after the probe it is timed before adopts it; a
// signal timed further back than group_window and unplaced_window behind
// the latest event time (what a restore no longer files) neither adopts
// nor is taken by what spread then, live or restarted.
func TestUnplacedSignalsLiveAsRestarted(t *testing.T) {
	const cat = chainCatalog
	probe := func(at time.Duration) Signal { return probeOf(at, "https://www.example.com/") }
	in := incidentOf
	run := func(restart bool, before []Signal, after ...Signal) *Correlator {
		c := correlatorOn(t, Config{}, cat)
		feed(c, before...)
		if restart {
			c = restarted(t, c)
		}
		feed(c, after...)
		return c
	}

	db, p := alert("DBDown", "db", 0), probe(10*time.Second)
	for _, c := range []*Correlator{run(false, nil, db, p), run(false, nil, p, db), run(true, []Signal{p}, db)} {
		if in(c, p) != in(c, db) {
			t.Errorf("a probe 10 s after db failed is apart from it (in order, delivered first, or restarted in between)")
		}
	}

	search := alert("DiskFull", "search", 20*time.Minute)
	lateDB := alert("DBDown", "db", 30*time.Second)
	other := alert("Down", "snmp-exporter", 19*time.Minute)
	for name, c := range map[string]*Correlator{
		"live":                       run(false, []Signal{probe(0), search}, lateDB),
		"restarted":                  run(true, []Signal{probe(0), search}, lateDB),
		"after another unplaced one": run(false, []Signal{probe(0), other, search}, lateDB),
	} {
		if in(c, probe(0)) == in(c, lateDB) {
			t.Errorf("%s: an alert timed 19.5 minutes behind the latest adopted a probe of its time", name)
		}
	}
	again := db
	again.Time = t0.Add(20 * time.Minute) // a repeat: the latest time moves on
	for name, c := range map[string]*Correlator{
		"live":      run(false, []Signal{db, again}, probe(30*time.Second)),
		"restarted": run(true, []Signal{db, again}, probe(30*time.Second)),
	} {
		if in(c, probe(30*time.Second)) == in(c, db) {
			t.Errorf("%s: a probe timed 19.5 minutes behind the latest joined what spread then", name)
		}
	}
}

// An event timed within an incident's span joins it however late it
// arrives, but not one timed while the incident was resolved, though a
// return of its root's failure reopened it since (review of session 26).
func TestLateEventWithinAResolvedStretch(t *testing.T) {
	const cat = chainCatalog
	an := func(at time.Duration) Signal {
		return Signal{Kind: SignalAnomaly, Fingerprint: "db-latency", Service: "db", Name: "latency_p99", Time: t0.Add(at), Severity: event.SeverityWarning}
	}
	api := alert("HighErrorRate", "api", time.Minute)
	setup := []Signal{an(0), api, resolved(api, 2*time.Minute), an(3 * time.Minute), an(5 * time.Minute),
		alert("DiskFull", "search", 12*time.Minute), resolved(alert("DiskFull", "search", 12*time.Minute), 13*time.Minute)}
	web := alert("HighErrorRate", "web", 15*time.Minute)
	c := correlatorOn(t, Config{}, cat)
	feed(c, setup...)
	id, _ := c.IncidentOf("db-latency")
	if st, _ := c.Incident(id); st.State != StatusResolved {
		t.Fatalf("setup: db's incident %s, want resolved", st.State)
	}
	feed(c, an(30*time.Minute))
	if st, _ := c.Incident(id); st.State == StatusResolved {
		t.Fatalf("setup: the root's return did not reopen db's incident")
	}
	muted := resolved(alert("HighErrorRate", "web", 15*time.Minute), 31*time.Minute)
	muted.Fingerprint, muted.Started = "muted/web", t0.Add(15*time.Minute)
	feed(c, web, muted)
	for _, s := range []Signal{web, muted} {
		if got, _ := c.IncidentOf(s.Fingerprint); got == id {
			t.Errorf("%s, timed while db's incident was resolved, joined it after it reopened", s.Fingerprint)
		}
	}
}

// What spreads now is the incident that took a new member latest, however
// the arrivals came in: an alert sent late (timed at its start, minutes
// behind the others), the old members a merge brings, an incident's own
// late member, a restart, an incident of many members restored (review of
// session 25).
func TestUnplacedSignalsWhateverTheOrder(t *testing.T) {
	const cat = `
services:
  web: {depends_on: [api]}
  api: {depends_on: [db]}
  shop: {depends_on: [db]}
  db:  {}
  search: {}
`
	probe := func(at time.Duration) Signal { return probeOf(at, "https://www.shop.example.com/") }
	in := incidentOf
	db := alert("DBDown", "db", 0)
	t.Run("an alert sent late", func(t *testing.T) {
		c := correlatorOn(t, Config{}, cat)
		feed(c, db, alert("HighErrorRate", "api", 3*time.Minute), alert("DiskFull", "search", 30*time.Second))
		p := probe(3*time.Minute + 20*time.Second)
		if feed(c, p); in(c, p) != in(c, db) {
			t.Errorf("the probe went to %s, want db's %s, which reached api 20 s before", in(c, p), in(c, db))
		}
	})
	t.Run("a merge", func(t *testing.T) {
		c := correlatorOn(t, Config{}, cat)
		web, shop := alert("HighErrorRate", "api", 0), alert("Slow", "shop", 0)
		feed(c, web, shop, alert("DiskFull", "search", 3*time.Minute))
		late := alert("DBDown", "db", 3*time.Minute+10*time.Second)
		feed(c, late)
		if in(c, web) != in(c, shop) || in(c, late) != in(c, web) {
			t.Fatal("setup: db did not bring api and shop together")
		}
		p := probe(3*time.Minute + 30*time.Second)
		if feed(c, p); in(c, p) != in(c, late) {
			t.Errorf("the probe went to %s, want db's %s, which took its root 20 s before", in(c, p), in(c, late))
		}
	})
	t.Run("an incident's own late member", func(t *testing.T) {
		c := correlatorOn(t, Config{}, cat)
		feed(c, db, alert("HighErrorRate", "api", 50*time.Second), alert("DiskFull", "search", 40*time.Second), alert("HighErrorRate", "web", 20*time.Second))
		p := probe(time.Minute)
		if feed(c, p); in(c, p) != in(c, db) {
			t.Errorf("the probe went to %s, want db's %s, which reached api 10 s before", in(c, p), in(c, db))
		}
	})
	t.Run("a restart", func(t *testing.T) {
		c := correlatorOn(t, Config{AlertStorms: Flag(false)}, cat)
		feed(c, db, alert("DiskFull", "search", 30*time.Second), alert("HighErrorRate", "api", 3*time.Minute))
		for i := range 65 { // a big incident: restored past the first pruning
			s := alert("DBDown", "db", time.Duration(i)*time.Second)
			s.Fingerprint += strconv.Itoa(i)
			feed(c, s)
		}
		r := restarted(t, c)
		p := probe(3*time.Minute + 20*time.Second)
		feed(c, p)
		feed(r, p)
		if in(c, p) != in(c, db) || in(r, p) != in(r, db) {
			t.Errorf("the probe went to %s live and %s restarted, want db's %s both times", in(c, p), in(r, p), in(c, db))
		}
	})
}

// chainCatalog is web calling api calling db, and search apart: the
// catalog of the tests of signals it cannot place.
const chainCatalog = `
services:
  web: {depends_on: [api]}
  api: {depends_on: [db]}
  db:  {}
  search: {}
`

// probeOf is a blackbox probe of url failing at at, under the exporter's
// name: a signal the catalog cannot place.
func probeOf(at time.Duration, url string) Signal {
	s := alert("BlackboxProbeFailed", "blackbox-exporter", at)
	s.Fingerprint += url
	s.Labels = map[string]string{"instance": url}
	return s
}

// incidentOf is the incident c holds s in, "" for none.
func incidentOf(c *Correlator, s Signal) string { return incidentOfFingerprint(c, s.Fingerprint) }

// incidentOfFingerprint is the incident c holds fingerprint fp in, ""
// for none.
func incidentOfFingerprint(c *Correlator, fp string) string {
	id, _ := c.IncidentOf(fp)
	return id
}

// A correlator restored in place (the correlator service restores into
// its long-lived correlator at each new lease term) keeps no peer-label
// filing of the state it had (review of session 27).
func TestRestoreInPlaceRefilesPeerLabels(t *testing.T) {
	web := alert("CircuitBreakerOpen", "web", 0)
	web.Labels = map[string]string{"upstream": "api"}
	c := correlatorOn(t, Config{}, chainCatalog)
	empty, err := c.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	feed(c, web)
	ghost := incidentOf(c, web)
	if err := c.UnmarshalJSON(empty); err != nil {
		t.Fatal(err)
	}
	checkPeerIndex(t, c)
	for _, u := range feed(c, alert("Errors", "api", 10*time.Second)) {
		if u.State.IncidentID == ghost {
			t.Errorf("an incident not in the restored state published %s", u.Transition)
		}
	}
	// Its own last state, restored in place: filed once, as restored.
	c = correlatorOn(t, Config{}, chainCatalog)
	feed(c, web)
	data, err := c.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.UnmarshalJSON(data); err != nil {
		t.Fatal(err)
	}
	checkPeerIndex(t, c)
}

// The alerting pipeline's own heartbeats (Config.IgnoredAlerts), which
// fire for ever, open no incident and join none: counted, and nothing
// else. An empty list turns the rule off.
func TestIgnoredAlertsOpenNothing(t *testing.T) {
	beats := []Signal{alert("Watchdog", "prometheus", 0), alert("InfoInhibitor", "payments", 10*time.Second)}
	c := newCorrelator(t, Config{})
	feed(c, alert("PostgresDown", "payments-db", 0))
	feed(c, beats...)
	if n, ignored := len(c.Incidents()), c.Stats().Ignored; n != 1 || ignored != 2 {
		t.Errorf("the database failing, and two heartbeats: %d incidents, %d ignored; want 1 and 2", n, ignored)
	}
	for _, s := range beats {
		if id, ok := c.IncidentOf(s.Fingerprint); ok {
			t.Errorf("%s is in incident %s", s.Name, id)
		}
	}
	off := newCorrelator(t, Config{IgnoredAlerts: []string{}})
	feed(off, beats...)
	if _, ok := off.IncidentOf("Watchdog/prometheus"); !ok || off.Stats().Ignored != 0 {
		t.Error("ignored_alerts: []: the Watchdog is in no incident")
	}
}

// An unplaced signal that joined an incident by time alone does not take
// the incident's lead from the catalogued service it joined at an equal
// score: an exporter's alert arriving with search's (both the earliest
// signal, neither with a failing dependency the catalog knows) left the
// incident named after the exporter, sorted first by name, without
// search's owner, team and runbook, so a route by team no longer matched
// (found by a trial of an alert storm through aiops run).
func TestUnplacedSignalDoesNotLeadTheCataloguedIncidentItJoined(t *testing.T) {
	const cat = `
services:
  search: {owner: gi, team: discovery, runbook: "https://runbooks.example.com/search"}
`
	c := correlatorOn(t, Config{}, cat)
	disk, backlog := alert("DiskFull", "search", 0), alert("QueueBacklog", "billing-batch", 0)
	feed(c, disk, backlog)
	id := incidentOf(c, disk)
	if incidentOf(c, backlog) != id {
		t.Fatalf("the unplaced alert went to %s, not search's %s", incidentOf(c, backlog), id)
	}
	st, _ := c.Incident(id)
	if st.Service != "search" || st.Team != "discovery" || st.Owner != "gi" || st.Runbook == "" {
		t.Fatalf("incident %q led by %s (team %q, owner %q, runbook %q), want search's (root causes %+v)",
			st.Title, st.Service, st.Team, st.Owner, st.Runbook, st.RootCauses)
	}
}
