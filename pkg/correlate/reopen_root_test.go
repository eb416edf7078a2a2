package correlate

import (
	"strings"
	"testing"
	"time"
)

// A root whose failure comes back fires again after a symptom of the new
// wave opened an incident of its own (the detector's anomalies, or a
// symptom's alert with a shorter `for`, come first): the reopened
// incident takes that symptom's incident in, as a root alerting late for
// the first time does, rather than paging the wave twice.
func TestRootFiringAgainMergesTheSymptomsThatCameFirst(t *testing.T) {
	c := newCorrelator(t, Config{})
	db := alert("ServiceDown", "payments-db", 0)
	feed(c, db, resolved(db, time.Minute))
	c.Advance(t0.Add(10 * time.Minute))
	first, _ := c.IncidentOf(db.Fingerprint)
	if st, _ := c.Incident(first); st.State != StatusResolved {
		t.Fatalf("after the first failure the incident is %s, want resolved", st.State)
	}

	symptom := alert("HighLatency", "payments", 20*time.Minute)
	feed(c, symptom)
	again := db
	again.Time = t0.Add(20*time.Minute + 30*time.Second)
	ups := feed(c, again)
	if got, _ := c.IncidentOf(db.Fingerprint); got != first || !strings.Contains(transitions(ups), "reopened") {
		t.Fatalf("the root firing again is in %s (transitions %s), want %s reopened", got, transitions(ups), first)
	}
	if got, _ := c.IncidentOf(symptom.Fingerprint); got != first {
		t.Errorf("the symptom that came first is in %s, want the root's reopened incident %s (transitions %s)", got, first, transitions(ups))
	}
	if active := len(c.Incidents()) - countResolved(c); active != 1 {
		t.Errorf("%d incidents not resolved, want the one reopened", active)
	}
	// The reopening's page names the symptom too.
	for _, u := range ups {
		if u.Transition == Reopened && (u.State.IncidentID != first || u.State.MemberCount != 2) {
			t.Errorf("reopened %s with %d members, want %s with the root and its symptom", u.State.IncidentID, u.State.MemberCount, first)
		}
	}
}

func countResolved(c *Correlator) int {
	n := 0
	for _, st := range c.Incidents() {
		if st.State == StatusResolved {
			n++
		}
	}
	return n
}

// A shared service (one nothing depends on and that depends on nothing:
// DNS) firing again after a burst of the new wave opened incidents of
// their own takes them in, as it does when it first fails amid a burst
// (TestSharedServiceCausesABurst): the burst is timed at the reopening,
// not at the opening a reopen_window back.
func TestSharedRootFiringAgainMergesTheBurstThatCameFirst(t *testing.T) {
	c := correlatorOn(t, Config{}, threeFailuresAndDNS)
	dns := alert("CoreDNSErrors", "coredns", 0)
	feed(c, dns, resolved(dns, time.Minute))
	c.Advance(t0.Add(10 * time.Minute))
	first, _ := c.IncidentOf(dns.Fingerprint)
	burst := []Signal{
		alert("HighErrorRate", "web", 20*time.Minute),
		alert("HighErrorRate", "search", 20*time.Minute+20*time.Second),
		alert("SendFailures", "mail", 20*time.Minute+40*time.Second),
	}
	feed(c, burst...)
	again := dns
	again.Time = t0.Add(20*time.Minute + 90*time.Second)
	ups := feed(c, again)
	if got, _ := c.IncidentOf(dns.Fingerprint); got != first || !strings.Contains(transitions(ups), "reopened") {
		t.Fatalf("coredns firing again is in %s (transitions %s), want %s reopened", got, transitions(ups), first)
	}
	for _, s := range burst {
		if got, _ := c.IncidentOf(s.Fingerprint); got != first {
			t.Errorf("%s is in %s, want coredns' reopened incident %s (transitions %s)", s.Fingerprint, got, first, transitions(ups))
		}
	}
}
