package correlate

import (
	"slices"
	"strings"
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
	if id, ok := c.IncidentOf("disk_io_now"); !ok {
		t.Errorf("off for 5 minutes (anomaly_wait), the series is in no incident")
	} else if st, _ := c.Incident(id); !st.OpenedAt.Equal(t0) {
		t.Errorf("the incident opened at %s, want the anomaly's first event's time %s", st.OpenedAt, t0)
	}

	critical := loneAnomaly("mem_free", "search", EpisodeOpen, 0, 10*time.Minute)
	critical.Severity = event.SeverityCritical
	feed(c, critical)
	if _, ok := c.IncidentOf("mem_free"); !ok {
		t.Errorf("a critical anomaly is in no incident, want one at once")
	}
}

// That a series lasted anomaly_wait is seen at an event of it timed that
// long into its episode: time alone opens nothing, since the detector
// sends an episode's updates minutes apart (5) and a silent series is
// closed by the detector only later, at its last sample. A wait of 2
// minutes opens at the 5-minute update (the README says so).
func TestLastingIsSeenAtAnEventOfTheSeries(t *testing.T) {
	c := newCorrelator(t, Config{AnomalyWait: 2 * time.Minute})
	feed(c, loneAnomaly("disk_io_now", "cart", EpisodeOpen, 0, 0), alert("IndexLag", "search-index", 4*time.Minute))
	c.Advance(t0.Add(4*time.Minute + 59*time.Second))
	if id, ok := c.IncidentOf("disk_io_now"); ok {
		t.Errorf("with no event of the series past the wait, it is in %s; want it waiting", id)
	}
	feed(c, loneAnomaly("disk_io_now", "cart", EpisodeUpdate, 0, 5*time.Minute))
	if _, ok := c.IncidentOf("disk_io_now"); !ok {
		t.Errorf("the update 5 minutes into the episode opened nothing, want an incident")
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
// The incident a corroborated anomaly opens is announced with what
// corroborated it: a notifier takes an opening timed minutes back as
// late and pages it at once, so an opening of the anomaly alone paged
// without the alert that made it worth a page, which followed a
// group_interval later (a trial: 30 s with the route's 30 s, 5 minutes
// by default).
func TestCorroboratedOpeningHoldsWhatCorroboratedIt(t *testing.T) {
	firstSeenResolved := resolved(alert("PaymentsErrors", "payments", time.Minute), 2*time.Minute)
	firstSeenResolved.Started = t0.Add(time.Minute)
	for name, second := range map[string]Signal{
		"an alert of a dependent":           alert("CheckoutErrors", "checkout", 2*time.Minute),
		"an anomaly of a dependency":        loneAnomaly("db_latency", "payments-db", EpisodeOpen, 2*time.Minute, 2*time.Minute),
		"an alert of the anomaly's service": alert("PaymentsErrors", "payments", 4*time.Minute),
		"an alert first seen resolved":      firstSeenResolved,
	} {
		c := newCorrelator(t, Config{})
		feed(c, loneAnomaly("latency", "payments", EpisodeOpen, 0, 0))
		ups := feed(c, second)
		if len(ups) == 0 || ups[0].Transition != Opened {
			t.Errorf("%s: transitions %q, want the opening first", name, transitions(ups))
			continue
		}
		var fps []string
		for _, m := range ups[0].State.Members {
			fps = append(fps, m.Fingerprint)
		}
		if !slices.Contains(fps, second.Fingerprint) || !slices.Contains(fps, "latency") {
			t.Errorf("%s: the opening lists %v, want the anomaly and %s", name, fps, second.Fingerprint)
		}
		if ups := c.Advance(second.Time.Add(time.Minute)); len(ups) > 0 {
			t.Errorf("%s: %s a minute on, want nothing new to publish", name, transitions(ups))
		}
	}
}

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

// The series waiting take at most a sixteenth of max_fingerprints: past
// it a lone anomaly opens at once, as with lone_anomalies: true, and the
// members' bounds hold it.
func TestWaitingSeriesAreBounded(t *testing.T) {
	c := newCorrelator(t, Config{MaxFingerprints: 32}) // two may wait
	feed(c, loneAnomaly("a", "cart", EpisodeOpen, 0, 0), loneAnomaly("b", "cart", EpisodeOpen, 0, time.Second),
		loneAnomaly("c", "cart", EpisodeOpen, 0, 2*time.Second))
	if n := c.Waiting(); n != 2 {
		t.Errorf("%d series waiting, want 2 (max_fingerprints 32 / 16)", n)
	}
	for fp, want := range map[string]bool{"a": false, "b": false, "c": true} {
		if _, ok := c.IncidentOf(fp); ok != want {
			t.Errorf("series %s in an incident: %v, want %v", fp, ok, want)
		}
	}
}

// A series whose episode ended while it waited, placed when an alert
// corroborates it, is in its incident as ended: the incident resolves
// once the alert does, as it would have had the anomaly opened it.
func TestWaitingSeriesThatEndedIsPlacedEnded(t *testing.T) {
	c := newCorrelator(t, Config{})
	a := alert("PaymentsErrors", "payments", time.Minute)
	feed(c, loneAnomaly("latency", "payments", EpisodeOpen, 0, 0), loneAnomaly("latency", "payments", EpisodeClose, 0, 30*time.Second), a)
	id, ok := c.IncidentOf("latency")
	if other, _ := c.IncidentOf(a.Fingerprint); !ok || other != id {
		t.Fatalf("the anomaly is in %q, the alert in %q; want one incident", id, other)
	}
	st, _ := c.Incident(id)
	for _, m := range st.Members {
		if m.Fingerprint == "latency" && m.Firing {
			t.Errorf("the anomaly's member is firing, want its episode ended")
		}
	}
	ups := append(feed(c, resolved(a, 3*time.Minute)), c.Advance(t0.Add(time.Hour))...)
	if tl := timelineOf(ups); !strings.Contains(tl, "resolved") || strings.Contains(tl, "not closed") {
		t.Errorf("timeline after the alert resolved:\n%s\nwant the incident resolved with no episode open", tl)
	}
}

// The series waiting are part of the state: a correlator restored from
// a checkpoint places them as the one that ran on does.
func TestWaitingSeriesSurviveARestart(t *testing.T) {
	ss := []Signal{loneAnomaly("latency", "payments", EpisodeOpen, 0, 0), loneAnomaly("forks", "cart", EpisodeOpen, 0, 10*time.Second),
		alert("CheckoutErrors", "checkout", 2*time.Minute), loneAnomaly("forks", "cart", EpisodeUpdate, 0, 6*time.Minute)}
	ups := sameEvents(t, Config{}, ss, 2, t0.Add(2*time.Hour))
	if got := strings.Count(transitions(ups), "opened"); got != 2 {
		t.Errorf("transitions %s, want 2 incidents opened (payments corroborated, cart lasted)", transitions(ups))
	}
}

// A late update of a waiting series, delivered after its episode's end,
// places nothing the updates in order would not: the series was off
// for less than anomaly_wait.
func TestLateUpdateOfAWaitingSeries(t *testing.T) {
	open, update, closed := loneAnomaly("latency", "payments", EpisodeOpen, 0, 0), loneAnomaly("latency", "payments", EpisodeUpdate, 0, 3*time.Minute),
		loneAnomaly("latency", "payments", EpisodeClose, 0, 5*time.Minute)
	for _, order := range [][]Signal{{open, update, closed}, {open, closed, update}} {
		c := newCorrelator(t, Config{})
		feed(c, order...)
		c.Advance(t0.Add(time.Hour))
		if n := c.Stats().Opened; n != 0 {
			t.Errorf("%s then %s: %d incidents opened, want none", order[1].Episode, order[2].Episode, n)
		}
		if n := c.Stats().Unconfirmed; n != 1 {
			t.Errorf("%s then %s: %d series unconfirmed, want 1", order[1].Episode, order[2].Episode, n)
		}
		if n := c.Waiting(); n != 0 {
			t.Errorf("%d series still waiting an hour on, want none", n)
		}
	}
}

// timelineOf is the last update's timeline, one entry a line.
func timelineOf(ups []Update) string {
	if len(ups) == 0 {
		return ""
	}
	var b strings.Builder
	for _, e := range ups[len(ups)-1].State.Timeline {
		b.WriteString(e.What + "\n")
	}
	return b.String()
}

// A series that is off a sample at a time, every minute, never lasted
// anomaly_wait: lasting is of one episode, as an alerting rule's `for`
// starts again when its condition stops holding. Told with the
// episodes' starts, or without (a producer's anomalies), it opens
// nothing; one episode as long does.
func TestBlinkingSeriesDoesNotLast(t *testing.T) {
	for _, told := range []bool{true, false} {
		c := newCorrelator(t, Config{})
		for i := range 10 {
			start := time.Duration(i) * time.Minute
			open, closed := loneAnomaly("forks", "cart", EpisodeOpen, start, start), loneAnomaly("forks", "cart", EpisodeClose, start, start+15*time.Second)
			if !told {
				open.EpisodeStart, closed.EpisodeStart = time.Time{}, time.Time{}
			}
			feed(c, open, closed)
		}
		if id, ok := c.IncidentOf("forks"); ok {
			t.Errorf("episode starts told %v: a series off 15 s of every minute is in %s, want no incident", told, id)
		}
	}
	c := newCorrelator(t, Config{})
	feed(c, loneAnomaly("forks", "cart", EpisodeOpen, 0, 0), loneAnomaly("forks", "cart", EpisodeUpdate, 0, 5*time.Minute))
	if _, ok := c.IncidentOf("forks"); !ok {
		t.Errorf("one episode of 5 minutes opens no incident, want one")
	}
}

// A correlator restored from its checkpoint forgets the series waiting
// in vain when the one that ran on does. Swept a minute after its last
// sweep, the restored one (which had none) forgot the payments series at
// once, 5m15s after its end, where the other kept it until its next
// sweep, in time for an alert a little late, timed 4m55s after the end,
// to corroborate it.
func TestWaitingSweepSurvivesARestart(t *testing.T) {
	ss := []Signal{
		loneAnomaly("latency", "payments", EpisodeOpen, 0, 0), loneAnomaly("latency", "payments", EpisodeClose, 0, 15*time.Second),
		alert("BatchLate", "batch", 5*time.Minute), // swept here: the series ended 4m45s ago
		alert("IndexLag", "search-index", 5*time.Minute+30*time.Second),
		alert("PaymentsErrors", "payments", 5*time.Minute+10*time.Second),
	}
	sameEvents(t, Config{}, ss, 3, t0.Add(2*time.Hour))
}

// A resource alert on a dependent, or a forecast on another service,
// tells nothing of a failure of what the service calls (LocalAlerts,
// AdvisoryAlerts): it joins no incident of it, so it corroborates no
// anomaly there either. Each opens its own incident, the anomaly waits.
func TestResourceOrAdvisoryAlertCorroboratesNothingBelow(t *testing.T) {
	for _, name := range []string{"CPUThrottlingHigh", "KubeQuotaAlmostFull"} {
		c := newCorrelator(t, Config{})
		a := alert(name, "checkout", time.Minute)
		feed(c, loneAnomaly("latency", "payments", EpisodeOpen, 0, 0), a)
		if id, ok := c.IncidentOf("latency"); ok {
			other, _ := c.IncidentOf(a.Fingerprint)
			t.Errorf("%s on checkout placed the payments anomaly in %s (the alert is in %s); want it waiting", name, id, other)
		}
	}
}

// An alert that fired and resolved within Alertmanager's group_wait,
// first seen resolved, fired all the same: it corroborates an anomaly
// on its service as its firing would have, and joins its incident
// (resolvedFirst), where alone it would be an orphan.
func TestAlertFirstSeenResolvedCorroborates(t *testing.T) {
	c := newCorrelator(t, Config{})
	a := resolved(alert("PaymentsErrors", "payments", time.Minute), 2*time.Minute)
	a.Started = t0.Add(time.Minute)
	feed(c, loneAnomaly("latency", "payments", EpisodeOpen, 0, 0), a)
	id, ok := c.IncidentOf("latency")
	if other, _ := c.IncidentOf(a.Fingerprint); !ok || other != id {
		t.Errorf("the anomaly is in %q, the alert first seen resolved in %q; want one incident", id, other)
	}
}

// The signal that corroborates a waiting series joins the incident the
// series then opens, also when it comes near the end of anomaly_wait
// after a run that lasted almost as long: past spread_window after the
// run's first signal, it would otherwise open an incident of its own
// beside the anomaly's, which it alone placed.
func TestCorroboratingAlertJoinsLateInTheWait(t *testing.T) {
	c := newCorrelator(t, Config{})
	a := alert("PaymentsErrors", "payments", 8*time.Minute+59*time.Second)
	feed(c, loneAnomaly("latency", "payments", EpisodeOpen, 0, 0), loneAnomaly("latency", "payments", EpisodeUpdate, 0, 4*time.Minute),
		loneAnomaly("latency", "payments", EpisodeClose, 0, 4*time.Minute+30*time.Second), a)
	id, placed := c.IncidentOf("latency")
	other, _ := c.IncidentOf(a.Fingerprint)
	if placed && other != id {
		t.Errorf("the alert placed the anomaly in %s and opened %s of its own; want one incident, or the anomaly left out", id, other)
	}
}

// A partition lets go of the series waiting on services another
// partition owns now, as of their incidents (Release): their signals go
// there, and here they were counted waiting and saved until forgotten.
func TestReleaseLetsGoOfWaitingSeries(t *testing.T) {
	c := newCorrelator(t, Config{})
	feed(c, loneAnomaly("latency", "payments", EpisodeOpen, 0, 0), loneAnomaly("forks", "cart", EpisodeOpen, 0, time.Second))
	c.Release(func(service string) bool { return service != "payments" }, "payments is another partition's")
	if _, ok := c.WaitingRun("latency"); ok {
		t.Errorf("the payments series still waits after its service was let go")
	}
	if _, ok := c.WaitingRun("forks"); !ok {
		t.Errorf("the cart series, of a service kept, no longer waits")
	}
}

// An alert on a service changed after a waiting series began is the
// change's failure (eligible): it corroborates nothing begun before, or
// it would open the series' incident and another of its own beside it.
func TestAlertAfterAChangeCorroboratesNothingBefore(t *testing.T) {
	c := newCorrelator(t, Config{})
	a := alert("PaymentsErrors", "payments", 2*time.Minute)
	feed(c, loneAnomaly("latency", "payments", EpisodeOpen, 0, 0),
		Signal{Kind: SignalChange, Service: "payments", Name: "deploy", Version: "v9", Time: t0.Add(time.Minute), EventID: "c-v9"}, a)
	id, placed := c.IncidentOf("latency")
	if other, _ := c.IncidentOf(a.Fingerprint); placed && other != id {
		t.Errorf("the alert placed the anomaly in %s and opened %s of its own; want one incident, or the anomaly left out", id, other)
	}
}

// With group_by, an alert of another group (cluster) tells nothing of a
// series waiting in this one: it would join no incident of it.
func TestAlertOfAnotherGroupCorroboratesNothing(t *testing.T) {
	c := newCorrelator(t, Config{GroupBy: []string{"cluster"}})
	a := inCluster(alert("PaymentsErrors", "payments", time.Minute), "b")
	feed(c, inCluster(loneAnomaly("latency", "payments", EpisodeOpen, 0, 0), "a"), a)
	id, placed := c.IncidentOf("latency")
	if other, _ := c.IncidentOf(a.Fingerprint); placed && other != id {
		t.Errorf("cluster b's alert placed cluster a's anomaly in %s and opened %s of its own; want the anomaly left out", id, other)
	}
}

// A series placed after it waited is the member it would have been
// placed at once: every event it sent while waiting counts, and its
// worst report sets its severity, as repeats of a member do (a detector
// that reports an episode every minute is one member of that count).
// The incident's opening says so: it is the first page.
func TestReleasedSeriesKeepsItsCountAndWorstSeverity(t *testing.T) {
	for name, release := range map[string]Signal{
		"corroborated": alert("CheckoutErrors", "checkout", 4*time.Minute),
		"lasted":       loneAnomaly("latency", "payments", EpisodeUpdate, 0, 5*time.Minute),
	} {
		c := newCorrelator(t, Config{})
		for i, sev := range []event.Severity{event.SeverityWarning, event.SeverityError, event.SeverityWarning, event.SeverityWarning} {
			phase := EpisodeUpdate
			if i == 0 {
				phase = EpisodeOpen
			}
			s := loneAnomaly("latency", "payments", phase, 0, time.Duration(i)*time.Minute)
			s.Severity = sev
			feed(c, s)
		}
		if n := c.Waiting(); n != 1 {
			t.Fatalf("%s: %d series waiting after 4 events in 3 minutes, want 1", name, n)
		}
		release.Severity = event.SeverityWarning
		ups := feed(c, release)
		want := 4
		if release.Fingerprint == "latency" {
			want = 5
		}
		var opening *State
		for i := range ups {
			if ups[i].Transition == Opened {
				opening = &ups[i].State
			}
		}
		if opening == nil {
			t.Fatalf("%s: transitions %s, want an opening", name, transitions(ups))
		}
		for _, m := range opening.Members {
			if m.Fingerprint != "latency" {
				continue
			}
			if m.Count != want {
				t.Errorf("%s: the member counts %d events, want the %d it sent", name, m.Count, want)
			}
			if m.Severity != event.SeverityError {
				t.Errorf("%s: the member's severity is %q, want its worst report's %q", name, m.Severity, event.SeverityError)
			}
		}
	}
}
