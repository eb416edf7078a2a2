package correlate

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// sameEvents feeds ss to a correlator of cfg without a break and to one
// restored from a checkpoint taken after the first split signals, advances
// both to until, and fails when their events differ.
func sameEvents(t *testing.T, cfg Config, ss []Signal, split int, until time.Time) []Update {
	t.Helper()
	whole := newCorrelator(t, cfg)
	want := feed(whole, ss...)
	want = append(want, whole.Advance(until)...)

	first := newCorrelator(t, cfg)
	got := feed(first, ss[:split]...)
	second := restarted(t, first)
	got = append(got, feed(second, ss[split:]...)...)
	got = append(got, second.Advance(until)...)
	if len(got) != len(want) {
		t.Fatalf("%d events after a restore, %d without: %s vs %s", len(got), len(want), transitions(got), transitions(want))
	}
	for i := range want {
		a, b := parsedEnvelope(t, want[i]), parsedEnvelope(t, got[i])
		if a.ID != b.ID || string(a.Body) != string(b.Body) {
			t.Fatalf("event %d differs after a restore:\n%s\n%s", i, a.Body, b.Body)
		}
	}
	return want
}

// An alert's firing event delivered again after its resolution (a
// redelivery, a notification retried) is no new firing: the incident
// resolves once the quiet period passed, and one resolved already is not
// reopened by it.
func TestFiringDeliveredAgainAfterTheResolution(t *testing.T) {
	a := alert("HighErrorRate", "checkout", 0)
	c := newCorrelator(t, Config{})
	ups := feed(c, a, resolved(a, 3*time.Minute), a)
	ups = append(ups, c.Advance(t0.Add(time.Hour))...)
	if got := strings.ReplaceAll(transitions(ups), "updated,", ""); got != "opened,resolved" {
		t.Errorf("transitions %s, want opened,resolved: the firing delivered again holds the incident open", got)
	}

	c = newCorrelator(t, Config{})
	ups = feed(c, a, resolved(a, 3*time.Minute))
	ups = append(ups, c.Advance(t0.Add(10*time.Minute))...)
	ups = append(ups, feed(c, a)...)
	ups = append(ups, c.Advance(t0.Add(time.Hour))...)
	if got := strings.ReplaceAll(transitions(ups), "updated,", ""); got != "opened,resolved" {
		t.Errorf("transitions %s, want opened,resolved: the firing delivered again reopens the incident", got)
	}
}

// observedAt is s as the gateway received it at t0+at.
func observedAt(s Signal, at time.Duration) Signal {
	s.Observed = t0.Add(at)
	return s
}

// Alertmanager resolves an alert that Prometheus stopped refreshing (a
// restart longer than four resend intervals) and, once the refresh comes,
// sends it firing again with its old startsAt: observed after the
// resolution, that firing is news, and the incident fires again. The same
// firing delivered again (observed when it first came) is not.
func TestFiringReportedAgainWithItsOldStartIsNews(t *testing.T) {
	a := alert("HighErrorRate", "checkout", 0)
	for _, tc := range []struct {
		name   string
		again  Signal
		firing int
	}{
		{"reported again", observedAt(a, 12*time.Minute), 1},
		{"delivered again", observedAt(a, 0), 0},
	} {
		c := newCorrelator(t, Config{})
		ups := feed(c, observedAt(a, 0), observedAt(resolved(a, 10*time.Minute), 10*time.Minute))
		ups = append(ups, c.Advance(t0.Add(11*time.Minute))...)
		ups = append(ups, feed(c, tc.again)...)
		firing := 0
		for _, st := range c.Incidents() {
			firing += st.Firing
		}
		if firing != tc.firing {
			t.Errorf("%s: %d members firing (transitions %s), want %d", tc.name, firing, transitions(ups), tc.firing)
		}
		// and a snapshot keeps what tells them apart
		c = restarted(t, c)
		feed(c, observedAt(a, 0))
		again := 0
		for _, st := range c.Incidents() {
			again += st.Firing
		}
		if again != tc.firing {
			t.Errorf("%s, restored: the first firing delivered once more changed the state: %d members firing, want %d", tc.name, again, tc.firing)
		}
	}
}

// A producer that times its firings by their arrival (no startsAt) and
// resolves with the end it saw, before the last firing's arrival: the
// resolution, observed last, resolves the member.
func TestResolutionReportedAfterARetimedFiringIsNews(t *testing.T) {
	a := alert("HighErrorRate", "checkout", 0)
	resend := alert("HighErrorRate", "checkout", 5*time.Minute) // timed by its arrival
	c := newCorrelator(t, Config{})
	ups := feed(c, observedAt(a, 0), observedAt(resend, 5*time.Minute), observedAt(resolved(a, 4*time.Minute), 6*time.Minute))
	ups = append(ups, c.Advance(t0.Add(time.Hour))...)
	if got := strings.ReplaceAll(transitions(ups), "updated,", ""); got != "opened,resolved" {
		t.Errorf("transitions %s, want opened,resolved: the resolution reported last holds", got)
	}
}

// Events of one alert delivered out of time order give what they give in
// order: a resolution that arrives after a later firing, or a firing that
// arrives after its own resolution (first seen resolved), leave the
// member as its latest event has it.
func TestAlertEventsOutOfOrderGiveWhatTheyGiveInOrder(t *testing.T) {
	a := alert("HighErrorRate", "checkout", 0)
	again := alert("HighErrorRate", "checkout", 4*time.Minute)
	for _, tc := range []struct {
		name         string
		inOrder, out []Signal
	}{
		{"a resolution after a later firing",
			[]Signal{a, resolved(a, 2*time.Minute), again},
			[]Signal{a, again, resolved(a, 2*time.Minute)}},
		{"a firing after its resolution",
			[]Signal{alert("PaymentsDown", "payments", 0), alert("CheckoutErrors", "checkout", time.Minute), resolved(alert("CheckoutErrors", "checkout", time.Minute), 2*time.Minute)},
			[]Signal{alert("PaymentsDown", "payments", 0), startedAt(resolved(alert("CheckoutErrors", "checkout", time.Minute), 2*time.Minute), time.Minute), alert("CheckoutErrors", "checkout", time.Minute)}},
	} {
		want := firingAfter(t, tc.inOrder)
		if got := firingAfter(t, tc.out); got != want {
			t.Errorf("%s: %d members firing out of order, %d in order", tc.name, got, want)
		}
	}
}

func startedAt(s Signal, at time.Duration) Signal {
	s.Started = t0.Add(at)
	return s
}

// firingAfter is how many members fire once ss went in.
func firingAfter(t *testing.T, ss []Signal) int {
	t.Helper()
	c := newCorrelator(t, Config{})
	feed(c, ss...)
	n := 0
	for _, st := range c.Incidents() {
		n += st.Firing
	}
	return n
}

// A late event of an anomaly episode that closed (an update delivered
// after the close) changes nothing: the incident resolves a quiet period
// after the close, and is not reopened by it.
func TestLateUpdateOfAClosedEpisode(t *testing.T) {
	anomaly := func(phase string, at time.Duration) Signal {
		return Signal{Kind: SignalAnomaly, Fingerprint: "series-checkout", Service: "checkout", Name: "latency_p99", Time: t0.Add(at),
			EpisodeID: "e1", Episode: phase, Resolved: phase == EpisodeClose}
	}
	run := func(ss ...Signal) (string, time.Time) {
		c := newCorrelator(t, Config{LoneAnomalies: Flag(true)}) // opens at once
		var ups []Update
		for _, s := range ss {
			ups = append(ups, c.Observe(s)...)
			ups = append(ups, c.Advance(s.Time.Add(time.Second))...)
		}
		ups = append(ups, c.Advance(t0.Add(2*time.Hour))...)
		var at time.Time
		for _, u := range ups {
			if u.Transition == Resolved {
				at = u.Time
			}
		}
		return strings.ReplaceAll(transitions(ups), "updated,", ""), at
	}
	open, update, closed := anomaly(EpisodeOpen, 0), anomaly(EpisodeUpdate, 3*time.Minute), anomaly(EpisodeClose, 5*time.Minute)
	wantTr, wantAt := run(open, update, closed)
	if gotTr, gotAt := run(open, closed, update); gotTr != wantTr || !gotAt.Equal(wantAt) {
		t.Errorf("the update after the close: transitions %s, resolved at %v; in order %s at %v", gotTr, gotAt, wantTr, wantAt)
	}
	other := Signal{Kind: SignalAlert, Fingerprint: "x", Service: "batch", Name: "X", Time: t0.Add(20 * time.Minute)}
	wantTr, wantAt = run(open, update, closed, other)
	if gotTr, gotAt := run(open, update, closed, other, update); gotTr != wantTr || !gotAt.Equal(wantAt) {
		t.Errorf("the update again after the resolution: transitions %s, resolved at %v; without it %s at %v", gotTr, gotAt, wantTr, wantAt)
	}
}

// An incident whose last member left it (its series started another
// episode, which opened an incident of its own) still resolves after a
// restore, as it does without one.
func TestSnapshotKeepsAnIncidentWithoutMembers(t *testing.T) {
	anomaly := func(episode, phase string, at time.Duration) Signal {
		return Signal{Kind: SignalAnomaly, Fingerprint: "series-batch", Service: "batch", Name: "lag", Time: t0.Add(at),
			EpisodeID: episode, Episode: phase, Resolved: phase == EpisodeClose}
	}
	ss := []Signal{anomaly("e1", EpisodeOpen, 0), anomaly("e1", EpisodeUpdate, 5*time.Minute), anomaly("e2", EpisodeOpen, 10*time.Minute),
		anomaly("e2", EpisodeClose, 11*time.Minute)}
	ups := sameEvents(t, Config{LoneAnomalies: Flag(true)}, ss, 3, t0.Add(2*time.Hour))
	if n := strings.Count(transitions(ups), "resolved"); n != 2 {
		t.Fatalf("transitions %s, want both incidents resolved", transitions(ups))
	}
}

// When an incident last fired is kept by a checkpoint: an alert that
// fired again and resolved keeps a slow alert joining after a restore,
// as without one.
func TestSnapshotKeepsWhenAnIncidentLastFired(t *testing.T) {
	b := alert("HighLatency", "payments", time.Minute)
	bAgain := alert("HighLatency", "payments", 9*time.Minute)
	ss := []Signal{
		alert("HighErrorRate", "payments", 0), b, resolved(b, 2*time.Minute), bAgain, resolved(bAgain, 10*time.Minute),
		alert("KubePodCrashLooping", "payments", 18*time.Minute),
	}
	ups := sameEvents(t, Config{}, ss, 5, t0.Add(30*time.Minute))
	if n := strings.Count(transitions(ups), "opened"); n != 1 {
		t.Fatalf("transitions %s: want the slow alert in the incident (one opened)", transitions(ups))
	}
}

// A change linked to an incident merged into one that opened before the
// change is named, in the root-cause reasons, as coming after the
// opening, not a negative time before it.
func TestChangeAfterAMergedOpeningIsNamedSo(t *testing.T) {
	c := correlatorOn(t, Config{}, `
services:
  orders:  {depends_on: [orders-db]}
  billing: {depends_on: [billing-db]}
  search:  {depends_on: [search-db]}
  orders-db: {}
  billing-db: {}
  search-db: {}
`)
	feed(c, alert("HighErrorRate", "orders", 0),
		Signal{Kind: SignalChange, Service: "billing", Name: "deploy", Version: "v2", Author: "bo", Time: t0.Add(30 * time.Second), EventID: "ch-1"},
		alert("HighErrorRate", "billing", time.Minute), alert("HighErrorRate", "search", 90*time.Second))
	id, _ := c.IncidentOf("HighErrorRate/orders")
	if got, _ := c.IncidentOf("HighErrorRate/billing"); got != id {
		t.Fatalf("billing is in %s, want the storm's %s", got, id)
	}
	st, _ := c.Incident(id)
	found := false
	for _, cand := range st.RootCauses {
		for _, r := range cand.Reasons {
			if strings.Contains(r, "deploy v2") {
				found = true
				if strings.Contains(r, "-") || !strings.Contains(r, "30s after the incident opened") {
					t.Errorf("reason %q, want the change 30s after the incident opened", r)
				}
			}
		}
	}
	if !found {
		t.Fatalf("no reason names the change: %+v", st.RootCauses)
	}
}

// An incident's linked changes, however many, leave its events storable:
// the event lists fewer of them rather than failing.
func TestManyLinkedChangesFitTheBodyLimit(t *testing.T) {
	var b strings.Builder
	b.WriteString("services:\n  db: {}\n")
	for i := range 40 {
		fmt.Fprintf(&b, "  svc-%d: {depends_on: [db]}\n", i)
	}
	c := correlatorOn(t, Config{MaxMembers: 10_000}, b.String())
	for i := range 40 {
		for j := range maxChangesPerService {
			feed(c, Signal{Kind: SignalChange, Service: fmt.Sprint("svc-", i), Name: "config", Version: fmt.Sprint("v", j),
				Summary: strings.Repeat("d", 500), Time: t0.Add(-50*time.Minute + time.Duration(j)*time.Minute), EventID: fmt.Sprint("ch-", i, "-", j)})
		}
	}
	var ups []Update
	ups = append(ups, feed(c, alert("Down", "db", 0))...)
	for i := range 40 {
		ups = append(ups, feed(c, alert("Errors", fmt.Sprint("svc-", i), time.Second))...)
	}
	id, _ := c.IncidentOf("Down/db")
	u, err := c.Apply(Command{IncidentID: id, Action: "resolve", By: "ana"})
	if err != nil {
		t.Fatal(err)
	}
	if len(u.State.Changes) < 40*maxChangesPerService {
		t.Fatalf("%d changes linked, want %d", len(u.State.Changes), 40*maxChangesPerService)
	}
	for _, u := range append(ups, u) {
		if _, err := Envelope(u, t0); err != nil {
			t.Fatalf("%s: %v", u.Transition, err)
		}
	}
	back := parsedEnvelope(t, u)
	var st State
	if err := back.DecodeBody(&st); err != nil || st.State != StatusResolved || len(st.Changes) == 0 {
		t.Fatalf("the resolution: %v, state %s, %d changes", err, st.State, len(st.Changes))
	}
}

// An open incident forgotten because memory is full (max_fingerprints)
// publishes its resolution: its last event must not leave it open in the
// stores and the notifier for ever.
func TestIncidentEvictedOpenIsResolved(t *testing.T) {
	c := newCorrelator(t, Config{MaxFingerprints: 2})
	ups := feed(c, alert("Down", "batch", 0), alert("Down", "cart", time.Hour))
	first := ups[0].State.IncidentID
	ups = feed(c, alert("Down", "search-index", 2*time.Hour))
	if _, ok := c.Incident(first); ok {
		t.Fatalf("%s still in memory", first)
	}
	var last *Update
	for i := range ups {
		if ups[i].State.IncidentID == first {
			last = &ups[i]
		}
	}
	if last == nil || last.Transition != Resolved || last.State.State != StatusResolved || last.State.MemberCount != 1 {
		t.Fatalf("events %s; want %s's resolution, with its member", transitions(ups), first)
	}
	if !strings.Contains(last.State.Timeline[len(last.State.Timeline)-1].What, "max_fingerprints") {
		t.Errorf("timeline %v, want the eviction said", last.State.Timeline)
	}
	parsedEnvelope(t, *last)
}

// The changes remembered are bounded however many services change: a
// service named once (a preview environment, a job per commit) does not
// stay in memory and in every checkpoint for ever.
func TestChangesRememberedAreBounded(t *testing.T) {
	c := newCorrelator(t, Config{})
	n := maxChangeServices + 100
	for i := range n {
		feed(c, Signal{Kind: SignalChange, Service: fmt.Sprint("preview-", i), Name: "deploy", Time: t0.Add(time.Duration(i) * time.Second), EventID: fmt.Sprint("ch-", i)})
	}
	if len(c.changes) > maxChangeServices {
		t.Fatalf("changes of %d services remembered, want at most %d", len(c.changes), maxChangeServices)
	}
	if _, ok := c.changes[fmt.Sprint("preview-", n-1)]; !ok {
		t.Fatal("the latest change was forgotten")
	}
	if _, ok := c.changes["preview-0"]; ok {
		t.Fatal("the oldest change is still remembered")
	}
}

// Making room at max_fingerprints never forgets the incident the signal
// just joined while others can go: a storm's incident holding most of
// memory, still firing, stays (forgetting down to the low-water mark
// took it too, resolving it downstream while it fired).
func TestEvictionKeepsTheIncidentJustJoined(t *testing.T) {
	c := newCorrelator(t, Config{MaxFingerprints: 128})
	ups := feed(c, alert("Down", "search-index", 0))
	for i := range 128 {
		ups = append(ups, feed(c, alert(fmt.Sprint("Errors", i), "checkout", 10*time.Minute+time.Duration(i)*time.Second))...)
	}
	storm, ok := c.IncidentOf("Errors127/checkout")
	if !ok {
		t.Fatalf("the storm's incident was forgotten as its last alert joined it (events %s)", transitions(ups))
	}
	if first, _ := c.IncidentOf("Errors0/checkout"); first != storm {
		t.Fatalf("the storm's first alert is in %q, its last in %q: want one incident kept", first, storm)
	}
	for _, u := range ups {
		if u.State.IncidentID == storm && u.Transition == Resolved {
			t.Fatalf("the storm's incident, still firing, was resolved: %s", u.State.Timeline[len(u.State.Timeline)-1].What)
		}
	}
	if c.Fingerprints() > 128 {
		t.Fatalf("%d fingerprints held, over the bound", c.Fingerprints())
	}
}

// An incident opened by a late signal when memory is full is not
// forgotten at once: its opening is published, so it must stay (or be
// resolved), never be left open downstream for ever.
func TestIncidentOpenedAtTheBoundIsNotLeftOpen(t *testing.T) {
	c := newCorrelator(t, Config{MaxFingerprints: 2})
	ups := feed(c, alert("Down", "batch", time.Hour), alert("Down", "cart", 2*time.Hour), alert("Down", "search-index", 0))
	resolved := map[string]bool{}
	for _, u := range ups {
		if u.Transition == Resolved {
			resolved[u.State.IncidentID] = true
		}
	}
	for _, u := range ups {
		if u.Transition != Opened {
			continue
		}
		if _, ok := c.Incident(u.State.IncidentID); !ok && !resolved[u.State.IncidentID] {
			t.Errorf("%s opened (%s), forgotten, never resolved: events %s", u.State.IncidentID, u.State.Title, transitions(ups))
		}
	}
}

// A firing delivered after its own resolution, when the resolution came
// first (Alertmanager's notifications reordered, the firing naked and
// redelivered), is the firing that resolution ended: the failure is over,
// and nothing is left open by it, whether the resolution was an orphan
// (no member known for it) or joined an incident as a resolved member;
// also after a restore between the two. The alert firing again later
// (a startsAt after that end) is news.
func TestLateFiringAfterItsResolutionLeavesNothingOpen(t *testing.T) {
	a := alert("HighErrorRate", "checkout", 0)
	longOver := startedAt(resolved(a, 20*time.Minute), 0) // longer than group_window: an orphan
	shortOver := startedAt(resolved(a, 2*time.Minute), 0) // nothing failing near it: an orphan
	payments := alert("PaymentsDown", "payments", 0)
	checkout := alert("CheckoutErrors", "checkout", time.Minute)
	joined := startedAt(resolved(checkout, 2*time.Minute), time.Minute) // joins payments' incident
	for _, tc := range []struct {
		name string
		ss   []Signal
	}{
		{"orphan, the firing observed after it", []Signal{observedAt(longOver, 20*time.Minute), observedAt(a, 21*time.Minute)}},
		{"orphan, the firing observed before it", []Signal{observedAt(longOver, 20*time.Minute), observedAt(a, 0)}},
		{"orphan, no observed times", []Signal{longOver, a}},
		{"orphan within group_window", []Signal{observedAt(shortOver, 2*time.Minute), observedAt(a, 3*time.Minute)}},
		{"joined resolved", []Signal{observedAt(payments, 0), observedAt(joined, 2*time.Minute), observedAt(checkout, 3*time.Minute),
			observedAt(resolved(payments, 4*time.Minute), 4*time.Minute)}},
	} {
		for split := 1; split < len(tc.ss); split++ {
			c := newCorrelator(t, Config{})
			ups := feed(c, tc.ss[:split]...)
			c = restarted(t, c)
			ups = append(ups, feed(c, tc.ss[split:]...)...)
			ups = append(ups, c.Advance(t0.Add(time.Hour))...)
			for _, st := range c.Incidents() {
				if st.State != StatusResolved {
					t.Errorf("%s (restored after %d): %s is %s with %d firing (events %s), want it resolved", tc.name, split, st.IncidentID, st.State, st.Firing, transitions(ups))
				}
			}
		}
	}

	c := newCorrelator(t, Config{})
	feed(c, observedAt(longOver, 20*time.Minute), observedAt(a, 21*time.Minute))
	again := observedAt(alert("HighErrorRate", "checkout", 25*time.Minute), 25*time.Minute)
	if ups := feed(c, again); transitions(ups) != "opened" {
		t.Errorf("the alert firing again after the end: events %s, want opened", transitions(ups))
	}
}

// An incident whose alerts fire but of which nothing was heard for
// AlertExpiry resolves as of then (Config.AlertExpiry): its resolution was
// lost. An alert Alertmanager sends again firing every repeat interval,
// with its old startsAt, is heard of and keeps it open; one sent again
// firing after the expiry, within ReopenWindow, reopens it, while what was
// heard before, delivered again, is old news. What was heard outlives a
// restart; 0, the default, never expires.
func TestAlertExpiryResolvesWhatIsNoLongerHeardOf(t *testing.T) {
	db := alert("PostgresDown", "payments-db", 0)
	pay := alert("HighErrorRate", "payments", 30*time.Second)
	one := func(c *Correlator) State {
		t.Helper()
		sts := c.Incidents()
		if len(sts) != 1 {
			t.Fatalf("%d incidents, want 1", len(sts))
		}
		return sts[0]
	}
	// Heard at 0 and 30s, then nothing: resolved as of 3h after 30s,
	// the timeline saying why.
	c := newCorrelator(t, Config{AlertExpiry: 3 * time.Hour})
	feed(c, observedAt(db, 0), observedAt(pay, 30*time.Second))
	id := one(c).IncidentID
	if ups := c.Advance(t0.Add(3 * time.Hour)); strings.Contains(transitions(ups), string(Resolved)) || one(c).State != StatusOpen {
		t.Errorf("3h after the first alert, 30s before the last was 3h old: %s (%s), want open", one(c).State, transitions(ups))
	}
	c = restarted(t, c)
	expired := t0.Add(3*time.Hour + 30*time.Second)
	ups := c.Advance(expired.Add(time.Second))
	st := one(c)
	if transitions(ups) != string(Resolved) || st.State != StatusResolved || !st.ResolvedAt.Equal(expired) || st.Firing != 0 {
		t.Fatalf("nothing heard for 3h: %s, %s at %s with %d firing; want resolved at %s", transitions(ups), st.State, st.ResolvedAt, st.Firing, expired)
	}
	if last := st.Timeline[len(st.Timeline)-1]; !last.Time.Equal(expired) || last.What != "resolved: nothing of it heard for 3h0m0s while 2 alerts fired (alert_expiry): taken as resolved" {
		t.Errorf("timeline ends %v", last)
	}
	// What was heard before, delivered again, is old news.
	if ups := feed(c, observedAt(db, 0), observedAt(pay, 30*time.Second)); len(ups) > 0 || one(c).State != StatusResolved {
		t.Errorf("the firings heard before the expiry delivered again: %s, %s; want nothing", transitions(ups), one(c).State)
	}
	// Sent again firing after the expiry, with its old startsAt: it
	// reopens the incident.
	ups = feed(c, observedAt(db, 3*time.Hour+10*time.Minute))
	if st := one(c); transitions(ups) != string(Reopened) || st.IncidentID != id || st.State != StatusOpen {
		t.Errorf("the database's alert sent again firing after the expiry: %s, %s %s; want %s reopened", transitions(ups), st.IncidentID, st.State, id)
	}
	// Repeated every 2h (Alertmanager's repeat interval), it never expires.
	c = newCorrelator(t, Config{AlertExpiry: 3 * time.Hour})
	feed(c, observedAt(db, 0))
	for at := 2 * time.Hour; at <= 10*time.Hour; at += 2 * time.Hour {
		feed(c, observedAt(db, at))
		if c.Advance(t0.Add(at + time.Hour)); one(c).State != StatusOpen {
			t.Fatalf("repeated every 2h, at %s: %s, want open", at+time.Hour, one(c).State)
		}
	}
	// What was heard is saved, not taken again from the members, which
	// may have left.
	want := c.incidents[one(c).IncidentID].lastHeard
	c.incidents[one(c).IncidentID].members[0].observed = t0
	if got := restarted(t, c).incidents[one(c).IncidentID].lastHeard; !got.Equal(want) {
		t.Errorf("restored, heard last at %s, want %s", got, want)
	}
	// Without alert_expiry nothing expires.
	c = newCorrelator(t, Config{})
	feed(c, observedAt(db, 0))
	if c.Advance(t0.Add(30 * 24 * time.Hour)); one(c).State != StatusOpen {
		t.Errorf("without alert_expiry, a month later: %s, want open", one(c).State)
	}
	for _, bad := range []time.Duration{time.Minute, -time.Hour} {
		if err := (Config{AlertExpiry: bad}).Validate(); err == nil || !strings.Contains(err.Error(), "alert_expiry") {
			t.Errorf("alert_expiry %s: %v, want refused naming it", bad, err)
		}
	}
}

// A change is kept bounded, whatever its producer sent: the gateway takes
// a change of up to 512 KiB, and one with a 200 KB version, author and
// commit, linked to an incident, made each of its events 1.7 MB (the
// change, and its version and author again in the root cause's reason
// and the timeline), which fitBody cannot trim: every later event of the
// incident was dropped, its resolution too, so it stayed open in the
// stores and at the notifier for ever.
func TestLinkedChangeWithHugeFieldsLeavesTheIncidentStorable(t *testing.T) {
	c := correlatorOn(t, Config{}, "services:\n  db: {}\n  api: {depends_on: [db]}\n")
	huge := strings.Repeat("9", 200_000)
	feed(c, Signal{Kind: SignalChange, Service: "db", Name: "deploy", Version: "v" + huge, Author: huge, Commit: huge,
		URL: "https://ci.example.com/" + huge, Time: t0.Add(-time.Minute), EventID: "ch-1"})
	ups := feed(c, alert("Down", "db", 0), alert("Errors", "api", time.Second))
	id, _ := c.IncidentOf("Down/db")
	u, err := c.Apply(Command{IncidentID: id, Action: "resolve", By: "ana"})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range append(ups, u) {
		if _, err := Envelope(u, t0); err != nil {
			t.Fatalf("%s: %v", u.Transition, err)
		}
	}
	if len(u.State.Changes) != 1 {
		t.Fatalf("%d changes linked, want the deploy", len(u.State.Changes))
	}
	ch := u.State.Changes[0]
	for name, v := range map[string]string{"version": ch.Version, "author": ch.Author, "commit": ch.Commit, "url": ch.URL} {
		if len(v) > maxStoredText || !strings.HasSuffix(v, cutMark) {
			t.Errorf("the change's %s is kept at %d bytes, want it cut to %d", name, len(v), maxStoredText)
		}
	}
}

// The opening of an incident is what its first signal made it, and a
// notifier's first page, group_wait after it, carries the latest state
// published. A root whose alert came seconds after its symptom's moved
// the incident to its service, team and owner in an update held for
// update_interval (30 s) after the opening: with Alertmanager's
// group_wait of 30 s, a real Prometheus and Alertmanager paged the
// symptom's team, and the root's a group_interval later. The first update
// that moves the root is published at once; later ones keep the interval.
func TestFirstUpdateThatMovesTheRootIsNotHeld(t *testing.T) {
	c := correlatorOn(t, Config{}, "services:\n  db: {team: dba}\n  api: {team: edge, depends_on: [db]}\n")
	ups := feed(c, alert("Errors", "api", 0), alert("Down", "db", 12*time.Second))
	ups = append(ups, c.Advance(t0.Add(13*time.Second))...)
	var first *Update
	for i := range ups {
		if ups[i].Transition == Updated {
			first = &ups[i]
			break
		}
	}
	if first == nil || first.State.Service != "db" || first.Time.After(t0.Add(13*time.Second)) {
		t.Fatalf("events %s by 13s; want an update naming db, its root, before update_interval", transitions(ups))
	}
	// A later change waits for the interval, as before.
	ups = feed(c, alert("Slow", "api", 14*time.Second))
	ups = append(ups, c.Advance(t0.Add(20*time.Second))...)
	if len(ups) != 0 {
		t.Fatalf("events %s within update_interval of the last update; want none", transitions(ups))
	}
	// A restart between the opening and the root's alert keeps what the
	// opening named.
	c = correlatorOn(t, Config{}, "services:\n  db: {team: dba}\n  api: {team: edge, depends_on: [db]}\n")
	feed(c, alert("Errors", "api", time.Hour))
	r := restarted(t, c)
	ups = feed(r, alert("Down", "db", time.Hour+12*time.Second))
	ups = append(ups, r.Advance(t0.Add(time.Hour+13*time.Second))...)
	if len(ups) != 1 || ups[0].Transition != Updated || ups[0].State.Service != "db" {
		t.Fatalf("after a restart, events %s by 13s; want an update naming db", transitions(ups))
	}
}

// Prometheus sends a firing alert straight to the gateway every minute
// with an endsAt a few resends ahead (Signal.Expires), and Alertmanager
// resolves it once that passes without a resend: Prometheus gone, or its
// rule deleted, it would otherwise fire for ever. The correlator resolves
// such a member expiryGrace after its expiry, as of its expiry, whatever
// else fires in its incident; resends keep it firing, a restart keeps
// what it expires by, and a resend after it fires it again. An alert
// without an expiry (Alertmanager's webhook) waits for its resolution.
func TestAlertNotSentAgainByItsExpiryResolves(t *testing.T) {
	sent := func(s Signal, at, holds time.Duration) Signal {
		s = observedAt(s, at)
		s.Expires = s.Observed.Add(holds)
		return s
	}
	db := alert("PostgresDown", "payments-db", 0)
	pay := alert("HighErrorRate", "payments", 30*time.Second) // through an Alertmanager
	c := newCorrelator(t, Config{})
	feed(c, sent(db, 0, 4*time.Minute), observedAt(pay, time.Minute))
	var last time.Duration
	for at := 3 * time.Minute; at <= 30*time.Minute; at += 3 * time.Minute {
		feed(c, sent(db, at, 4*time.Minute))
		c.Advance(t0.Add(at + time.Second))
		last = at
	}
	member := func(c *Correlator, fp string) Member {
		t.Helper()
		sts := c.Incidents()
		if len(sts) != 1 {
			t.Fatalf("%d incidents, want 1", len(sts))
		}
		for _, m := range sts[0].Members {
			if m.Fingerprint == fp {
				return m
			}
		}
		t.Fatalf("no member %s", fp)
		return Member{}
	}
	expiry := t0.Add(last + 4*time.Minute)
	if m := member(c, db.Fingerprint); !m.Firing || !m.Expires.Equal(expiry) {
		t.Fatalf("resent every 3 minutes: firing %t, expires %s; want firing until %s", m.Firing, m.Expires, expiry)
	}
	// A producer's clock a little ahead moves event time past the expiry:
	// no reason to end an alert still sent.
	c.Advance(expiry.Add(c.expiryGrace() - time.Second))
	if m := member(c, db.Fingerprint); !m.Firing {
		t.Fatal("resolved before its expiry's grace passed")
	}
	c = restarted(t, c)
	c.Advance(expiry.Add(c.expiryGrace()))
	st := c.Incidents()[0]
	if m := member(c, db.Fingerprint); m.Firing || st.State != StatusOpen || st.Firing != 1 {
		t.Fatalf("not sent again by its expiry: member firing %t, incident %s with %d firing; want the member resolved, the incident open for the alert still firing", m.Firing, st.State, st.Firing)
	}
	want := "PostgresDown on payments-db resolved: not sent again by " + expiry.UTC().Format(time.RFC3339) + ", when its sender said it ends unless sent again"
	if !slices.ContainsFunc(st.Timeline, func(e Entry) bool { return e.What == want && e.Time.Equal(expiry) }) {
		t.Errorf("timeline %v, want %q at %s", st.Timeline, want, expiry)
	}
	// Delivered again, a send from before the expiry is old news; a send
	// after it is the alert firing again.
	feed(c, sent(db, last, 4*time.Minute))
	if member(c, db.Fingerprint).Firing {
		t.Error("a send from before the expiry, delivered again, fired the alert")
	}
	feed(c, sent(db, last+30*time.Minute, 4*time.Minute))
	if !member(c, db.Fingerprint).Firing {
		t.Error("sent again after its expiry: not firing")
	}

	// Alone in its incident, the alert resolves it as of its expiry.
	c = newCorrelator(t, Config{})
	feed(c, sent(db, 0, 4*time.Minute))
	ups := c.Advance(t0.Add(4*time.Minute + c.expiryGrace()))
	if st := c.Incidents()[0]; transitions(ups) != string(Resolved) || !st.ResolvedAt.Equal(t0.Add(4*time.Minute)) {
		t.Errorf("the incident's one alert expired: %s, resolved at %s; want resolved at its expiry %s", transitions(ups), st.ResolvedAt, t0.Add(4*time.Minute))
	}
	// The stream drops resends within its duplicate window: an hour's
	// window, an alert still sent may go unheard for an hour.
	c = newCorrelator(t, Config{ResendGap: time.Hour})
	feed(c, sent(db, 0, 4*time.Minute))
	if c.Advance(t0.Add(4*time.Minute + 50*time.Minute)); c.Incidents()[0].Firing != 1 {
		t.Error("resolved within the stream's duplicate window of its expiry")
	}
	// Without an expiry, nothing expires.
	c = newCorrelator(t, Config{})
	feed(c, observedAt(db, 0))
	if c.Advance(t0.Add(30 * 24 * time.Hour)); c.Incidents()[0].Firing != 1 {
		t.Error("an alert without an expiry resolved without its resolution")
	}
}

// An alert taken as resolved, by its expiry or by alert_expiry, is last
// seen then, as its resolution sent at that time leaves it: a notifier
// gives a member not firing its last seen as its end (the endsAt of
// Alertmanager's webhook payload), and a firing alert's resends keep its
// startsAt, so it ended, to the receiver, the moment it started.
func TestAlertTakenAsResolvedIsLastSeenThen(t *testing.T) {
	db := alert("PostgresDown", "payments-db", 0)
	member := func(c *Correlator) Member {
		t.Helper()
		for _, st := range c.Incidents() {
			for _, m := range st.Members {
				if m.Fingerprint == db.Fingerprint {
					return m
				}
			}
		}
		t.Fatal("no member PostgresDown")
		return Member{}
	}
	c := newCorrelator(t, Config{})
	for at := time.Duration(0); at <= 10*time.Minute; at += time.Minute {
		s := observedAt(db, at) // resent with its startsAt
		s.Expires = t0.Add(at + 4*time.Minute)
		feed(c, s)
	}
	expiry := t0.Add(14 * time.Minute)
	c.Advance(expiry.Add(c.expiryGrace()))
	if m := member(c); m.Firing || !m.LastSeen.Equal(expiry) {
		t.Errorf("expired: firing %t, last seen %s; want resolved, last seen at its expiry %s", m.Firing, m.LastSeen, expiry)
	}

	c = newCorrelator(t, Config{AlertExpiry: time.Hour})
	feed(c, observedAt(db, 0), observedAt(db, 10*time.Minute))
	c.Advance(t0.Add(2 * time.Hour))
	if m, at := member(c), t0.Add(70*time.Minute); m.Firing || !m.LastSeen.Equal(at) {
		t.Errorf("alert_expiry: firing %t, last seen %s; want resolved, last seen at %s", m.Firing, m.LastSeen, at)
	}
}

// An incident resolved by its alert's expiry resolves as of the expiry,
// expiryGrace before the resolution goes out: its reopen window runs from
// when the expiry was taken, so the alert sent again reopens it within
// ReopenWindow of the resolution going out, whatever the duplicate
// window, and opens another incident later (services/correlator/README.md,
// reopen_window).
func TestAlertSentAgainAfterItsExpiryReopensWithinReopenWindowOfIt(t *testing.T) {
	db := alert("PostgresDown", "payments-db", 0)
	for _, tc := range []struct {
		gap, after time.Duration
		want       Transition
	}{
		{2 * time.Minute, 29 * time.Minute, Reopened},
		{2 * time.Minute, 31 * time.Minute, Opened},
		{time.Hour, time.Minute, Reopened},
		{time.Hour, 29 * time.Minute, Reopened},
		{time.Hour, 31 * time.Minute, Opened},
	} {
		c := newCorrelator(t, Config{ResendGap: tc.gap})
		s := observedAt(db, 0)
		s.Expires = t0.Add(4 * time.Minute)
		feed(c, s)
		out := t0.Add(4*time.Minute + c.expiryGrace())
		if ups := c.Advance(out); transitions(ups) != string(Resolved) {
			t.Fatalf("duplicate window %s: %s at the expiry's grace, want resolved", tc.gap, transitions(ups))
		}
		again := observedAt(db, out.Sub(t0)+tc.after)
		c.Advance(again.Observed)
		if ups := feed(c, again); transitions(ups) != string(tc.want) {
			t.Errorf("duplicate window %s, sent again %s after the resolution went out: %s, want %s", tc.gap, tc.after, transitions(ups), tc.want)
		}
	}
}

// Prometheus resends a resolved alert for 15 minutes, each with its
// endsAt; the stream keeps one every duplicate window. Each such resend
// started the quiet period again, so an incident sent straight from
// Prometheus resolved some 15 minutes past its quiet period. The
// resolution of an alert resolved already is no signal; a firing again
// still is.
func TestResolvedAlertSentAgainDoesNotRestartTheQuietPeriod(t *testing.T) {
	db := alert("PostgresDown", "payments-db", 0)
	ended := db
	ended.Resolved, ended.Time, ended.Started = true, t0.Add(time.Minute), t0
	c := newCorrelator(t, Config{})
	feed(c, observedAt(db, 0), observedAt(ended, time.Minute))
	for at := 3 * time.Minute; at <= 5*time.Minute; at += 2 * time.Minute {
		c.Advance(t0.Add(at))
		feed(c, observedAt(ended, at))
	}
	ups := c.Advance(t0.Add(time.Minute + DefaultConfig().QuietPeriod))
	if st := c.Incidents()[0]; transitions(ups) != string(Resolved) || !st.ResolvedAt.Equal(t0.Add(time.Minute)) {
		t.Errorf("quiet period after the resolution, its resends heard meanwhile: %s, %s; want resolved as of 1m", transitions(ups), st.State)
	}
}
