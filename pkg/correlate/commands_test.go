package correlate

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aiops-dev/aiops/pkg/event"
)

const mergeCatalog = `
services:
  api-a: {depends_on: [mid]}
  api-b: {depends_on: [mid]}
  mid:   {}
`

// What people did on an incident goes with it when it is merged: its
// acknowledgement, its assignee and its comments are the target's, so
// that nobody is paged again for a failure someone already took.
func TestMergeCarriesWhatPeopleDid(t *testing.T) {
	a, b, mid := alert("HighLatency", "api-a", 0), alert("HighLatency", "api-b", 10*time.Second), alert("PoolExhausted", "mid", 20*time.Second)
	// A first run says which of the two is merged into the other.
	probe := correlatorOn(t, Config{}, mergeCatalog)
	feed(probe, a, b)
	incA, _ := probe.IncidentOf(a.Fingerprint)
	incB, _ := probe.IncidentOf(b.Fingerprint)
	feed(probe, mid)
	into, _ := probe.IncidentOf(mid.Fingerprint)
	merged := incA
	if into == incA {
		merged = incB
	}
	if probe.Stats().Merged != 1 || into == merged {
		t.Fatalf("want one incident merged into the other: %d merged", probe.Stats().Merged)
	}

	c := correlatorOn(t, Config{}, mergeCatalog)
	feed(c, a, b)
	for _, cmd := range []Command{
		{IncidentID: merged, Action: "ack", By: "ana", Time: t0.Add(12 * time.Second)},
		{IncidentID: merged, Action: "assign", By: "ana", Assignee: "ana", Time: t0.Add(13 * time.Second)},
		{IncidentID: merged, Action: "comment", By: "ana", Text: "looking at api pools", Time: t0.Add(14 * time.Second)},
		{IncidentID: into, Action: "comment", By: "bo", Text: "me too", Time: t0.Add(15 * time.Second)},
	} {
		if _, err := c.Apply(cmd); err != nil {
			t.Fatal(err)
		}
	}
	feed(c, mid)
	st, ok := c.Incident(into)
	if !ok {
		t.Fatalf("incident %s gone", into)
	}
	if st.State != StatusAcknowledged || !st.AcknowledgedAt.Equal(t0.Add(12*time.Second)) {
		t.Fatalf("target %s after the merge: %s, acknowledged at %v; want acknowledged as the merged one was", into, st.State, st.AcknowledgedAt)
	}
	if st.Assignee != "ana" || st.AcknowledgedBy != "ana" {
		t.Fatalf("assignee %q, acknowledged by %q, want the merged incident's", st.Assignee, st.AcknowledgedBy)
	}
	if len(st.Comments) != 2 || st.Comments[0].Text != "looking at api pools" || st.Comments[1].By != "bo" {
		t.Fatalf("comments %+v, want both incidents', in time order", st.Comments)
	}
}

// An incident's state names who acknowledged and who resolved it, for a
// ticket or a page to say, across a restart; a reopening clears both,
// and a resolution by time alone names nobody.
func TestStateNamesWhoAcknowledgedAndResolved(t *testing.T) {
	c := newCorrelator(t, Config{})
	a := alert("HighLatency", "checkout", 0)
	feed(c, a)
	id, _ := c.IncidentOf(a.Fingerprint)
	for _, cmd := range []Command{
		{IncidentID: id, Action: "ack", By: "ana", Time: t0.Add(time.Minute)},
		{IncidentID: id, Action: "resolve", By: "bo", Time: t0.Add(2 * time.Minute)},
	} {
		if _, err := c.Apply(cmd); err != nil {
			t.Fatal(err)
		}
	}
	c = restarted(t, c)
	if st, _ := c.Incident(id); st.AcknowledgedBy != "ana" || st.ResolvedBy != "bo" {
		t.Fatalf("acknowledged by %q, resolved by %q; want ana and bo", st.AcknowledgedBy, st.ResolvedBy)
	}
	feed(c, resolved(a, 3*time.Minute))
	again := a
	again.Time = t0.Add(4 * time.Minute)
	feed(c, again)
	if st, _ := c.Incident(id); st.State != StatusOpen || st.AcknowledgedBy != "" || st.ResolvedBy != "" {
		t.Fatalf("reopened: %s, acknowledged by %q, resolved by %q; want open, neither", st.State, st.AcknowledgedBy, st.ResolvedBy)
	}
	feed(c, resolved(again, 5*time.Minute))
	c.Advance(t0.Add(time.Hour))
	if st, _ := c.Incident(id); st.State != StatusResolved || st.ResolvedBy != "" {
		t.Fatalf("resolved by time alone: %s, resolved by %q; want nobody", st.State, st.ResolvedBy)
	}
}

// Alertmanager resends an alert that still fires: after a person resolved
// its incident by hand, that is no news and reopens nothing. The alert
// resolving and firing again is a new failure and reopens it.
func TestResendOfAStillFiringAlertKeepsAManualResolve(t *testing.T) {
	c := newCorrelator(t, Config{})
	a := alert("HighLatency", "checkout", 0)
	feed(c, a)
	id, _ := c.IncidentOf(a.Fingerprint)
	if _, err := c.Apply(Command{IncidentID: id, Action: "resolve", By: "ana", Time: t0.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	resend := a
	resend.Time = t0.Add(5 * time.Minute)
	if ups := feed(c, resend); strings.Contains(transitions(ups), string(Reopened)) {
		t.Fatalf("a resend of the still-firing alert: %s, want no reopening", transitions(ups))
	}
	if st, _ := c.Incident(id); st.State != StatusResolved {
		t.Fatalf("state %s after the resend, want resolved", st.State)
	}
	feed(c, resolved(a, 6*time.Minute))
	again := a
	again.Time = t0.Add(8 * time.Minute)
	if ups := feed(c, again); !strings.Contains(transitions(ups), string(Reopened)) {
		t.Fatalf("the alert firing again after it resolved: %s, want the incident reopened", transitions(ups))
	}
}

// A command's names are bounded, and so are the comments an incident
// keeps: every later event of the incident carries them.
func TestCommandLimits(t *testing.T) {
	c := newCorrelator(t, Config{})
	a := alert("HighLatency", "checkout", 0)
	feed(c, a)
	id, _ := c.IncidentOf(a.Fingerprint)
	long := strings.Repeat("x", MaxCommandName+1)
	for _, cmd := range []Command{
		{IncidentID: id, Action: "assign", By: "ana", Assignee: long},
		{IncidentID: id, Action: "comment", By: long, Text: "hi"},
		{IncidentID: id, Action: "assign", By: "ana"},
		{IncidentID: id, Action: "assign", By: "ana", Assignee: "   "},
		{IncidentID: id, Action: "comment", By: "ana", Text: "  "},
		// A field the action takes no notice of, sent over NATS as over
		// the API: a resolution note would be lost unseen.
		{IncidentID: id, Action: "resolve", By: "ana", Text: "rolled back"},
		{IncidentID: id, Action: "comment", By: "ana", Text: "hi", Assignee: "bo"},
		{IncidentID: id, Action: "ack", By: "ana", ID: long + long},
	} {
		if _, err := c.Apply(cmd); !errors.Is(err, ErrInvalidCommand) {
			t.Fatalf("%s by %d bytes, assignee %d bytes: %v, want ErrInvalidCommand", cmd.Action, len(cmd.By), len(cmd.Assignee), err)
		}
	}
	for i := range MaxComments + 5 {
		if _, err := c.Apply(Command{IncidentID: id, Action: "comment", By: "ana", Text: fmt.Sprintf("note %d ", i) + strings.Repeat("é", MaxCommentText)}); err != nil {
			t.Fatal(err)
		}
	}
	st, _ := c.Incident(id)
	if len(st.Comments) != MaxComments || !strings.HasPrefix(st.Comments[0].Text, "note 5 ") {
		t.Fatalf("%d comments kept, the first %.10q; want the newest %d", len(st.Comments), st.Comments[0].Text, MaxComments)
	}
	for _, cm := range st.Comments {
		if len(cm.Text) > MaxCommentText || !strings.HasSuffix(cm.Text, "é") {
			t.Fatalf("a comment of %d bytes ending %q: want at most %d, cut between characters", len(cm.Text), cm.Text[len(cm.Text)-2:], MaxCommentText)
		}
	}
}

// An incident whose event would pass the body limit every consumer holds
// events to (many members with long labels, many long comments) still
// makes a storable event: it lists fewer members, its member count exact.
func TestIncidentEventFitsTheBodyLimit(t *testing.T) {
	c := newCorrelator(t, Config{MaxMembers: 10_000, UpdateInterval: time.Hour})
	var last Signal
	for i := range 1500 {
		// web's symptoms first, then its cause, checkout: the members on
		// the incident's service come last in its list.
		svc := "web"
		if i >= 750 {
			svc = "checkout"
		}
		s := alert(fmt.Sprintf("PodNotReady%d", i), svc, time.Duration(i)*time.Millisecond)
		s.Labels = map[string]string{"pod": fmt.Sprintf("%s-%d-%s", svc, i, strings.Repeat("z", 300)), "namespace": "shop"}
		feed(c, s)
		last = s
	}
	id, _ := c.IncidentOf(last.Fingerprint)
	for i := range MaxComments {
		if _, err := c.Apply(Command{IncidentID: id, Action: "comment", By: "ana", Text: fmt.Sprint(i) + strings.Repeat("y", MaxCommentText)}); err != nil {
			t.Fatal(err)
		}
	}
	u, err := c.Apply(Command{IncidentID: id, Action: "resolve", By: "ana"})
	if err != nil {
		t.Fatal(err)
	}
	if u.State.MemberCount != 1500 {
		t.Fatalf("member count %d", u.State.MemberCount)
	}
	back := parsedEnvelope(t, u) // refused if over the limits
	var st State
	if err := back.DecodeBody(&st); err != nil {
		t.Fatal(err)
	}
	if st.MemberCount != 1500 || len(st.Members) == 0 || len(st.Members) >= 1500 || st.State != StatusResolved {
		t.Fatalf("event: %d members listed of %d, state %s; want fewer listed, the count exact, resolved", len(st.Members), st.MemberCount, st.State)
	}
	if st.Members[0].Service != st.Service {
		t.Fatalf("the first member listed is on %s, want one on the incident's service %s (a notifier routes by its labels)", st.Members[0].Service, st.Service)
	}
}

// An alert still firing when its incident was resolved by hand is sent
// again with its startsAt once the incident is forgotten (past
// reopen_window): the incident it opens gets an id of its own, and so do
// its events, also after a restore; the stores and the notifier would
// otherwise take it for the old incident.
func TestResendAfterTheIncidentIsForgottenGetsANewID(t *testing.T) {
	c := newCorrelator(t, Config{})
	a := alert("HighLatency", "checkout", 0)
	opened := feed(c, a)
	id, _ := c.IncidentOf(a.Fingerprint)
	if _, err := c.Apply(Command{IncidentID: id, Action: "resolve", By: "ana", Time: t0.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	c.Advance(t0.Add(2 * time.Hour)) // past reopen_window: forgotten
	if _, ok := c.Incident(id); ok {
		t.Fatalf("incident %s still in memory two hours after its resolve", id)
	}
	data, err := c.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	restored := newCorrelator(t, Config{})
	if err := restored.UnmarshalJSON(data); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]*Correlator{"live": c, "restored": restored} {
		ups := feed(c, a) // the resend: the same signal, startsAt and all
		again, ok := c.IncidentOf(a.Fingerprint)
		if !ok || again == id || len(ups) == 0 || ups[0].Transition != Opened {
			t.Fatalf("%s: the resend opened %q (%s), want a new incident, not %s", name, again, transitions(ups), id)
		}
		first, err := Envelope(opened[0], t0)
		if err != nil {
			t.Fatal(err)
		}
		second, err := Envelope(ups[0], t0)
		if err != nil {
			t.Fatal(err)
		}
		if first.ID == second.ID {
			t.Fatalf("%s: the new incident's opening has the old one's event id %s", name, first.ID)
		}
	}
}

// An incident forgotten after it resolved on its own (its alert resolved,
// the quiet period and reopen_window passed, or memory full) keeps its id
// too: its alert firing again with its old startsAt (Alertmanager resolved
// it when Prometheus stopped refreshing it, and fires it again once the
// refresh comes) opens an incident of another id, also after a restore.
func TestRefiringAfterTheIncidentIsForgottenGetsANewID(t *testing.T) {
	a := alert("HighLatency", "checkout", 0)
	for _, tc := range []struct {
		name   string
		cfg    Config
		forget func(c *Correlator)
	}{
		{"resolved", Config{}, func(c *Correlator) { c.Advance(t0.Add(2 * time.Hour)) }},
		{"evicted", Config{MaxFingerprints: 1}, func(c *Correlator) {
			feed(c, alert("Down", "batch", 20*time.Minute), alert("Down", "cart", 21*time.Minute))
		}},
	} {
		c := newCorrelator(t, tc.cfg)
		opened := feed(c, observedAt(a, 0), observedAt(resolved(a, 3*time.Minute), 3*time.Minute))
		id, _ := c.IncidentOf(a.Fingerprint)
		opened = append(opened, c.Advance(t0.Add(15*time.Minute))...)
		if got := strings.ReplaceAll(transitions(opened), "updated,", ""); got != "opened,resolved" {
			t.Fatalf("%s: events %s, want opened,resolved", tc.name, got)
		}
		tc.forget(c)
		if _, ok := c.Incident(id); ok {
			t.Fatalf("%s: incident %s still in memory", tc.name, id)
		}
		restored := restarted(t, c)
		for name, c := range map[string]*Correlator{"live": c, "restored": restored} {
			ups := feed(c, observedAt(a, 3*time.Hour))
			again, ok := c.IncidentOf(a.Fingerprint)
			if !ok || again == id || len(ups) == 0 || ups[0].Transition != Opened {
				t.Errorf("%s, %s: the alert firing again opened %q (%s), want a new incident, not %s", tc.name, name, again, transitions(ups), id)
			}
		}
	}
}

// Listed filters on what the correlator knows before it builds a state,
// lists the latest opened first, and builds no more states than it needs
// for limit (one more tells truncated).
func TestListedBuildsOnlyWhatItLists(t *testing.T) {
	c := newCorrelator(t, Config{})
	for i := range 40 {
		// unrelated services an hour apart: one incident each
		feed(c, alert("HighLatency", fmt.Sprintf("svc-%02d", i), time.Duration(i)*time.Hour))
	}
	built := 0
	keep := func(State) bool { built++; return true }
	out, truncated := c.Listed(IncidentFilter{}, keep, 3)
	if len(out) != 3 || !truncated || out[0].Service != "svc-39" || out[2].Service != "svc-37" {
		t.Fatalf("listed %d (truncated %v), first %v: want svc-39, 38, 37 and truncated", len(out), truncated, out)
	}
	if built != 4 {
		t.Errorf("%d states built for a limit of 3, want 4", built)
	}
	built = 0
	out, truncated = c.Listed(IncidentFilter{Service: "svc-07"}, keep, 3)
	if len(out) != 1 || truncated || out[0].Service != "svc-07" || built != 1 {
		t.Errorf("service svc-07: %d listed, %d built, truncated %v; want its one incident, one state built", len(out), built, truncated)
	}
	out, _ = c.Listed(IncidentFilter{Since: t0.Add(10 * time.Hour), Until: t0.Add(12 * time.Hour)}, nil, 10)
	if len(out) != 3 || out[0].Service != "svc-12" || out[2].Service != "svc-10" {
		t.Errorf("opened within 10h..12h: %d listed, want svc-12, 11, 10", len(out))
	}
	if out, _ := c.Listed(IncidentFilter{Status: StatusAcknowledged}, nil, 10); len(out) != 0 {
		t.Errorf("%d acknowledged listed, want none", len(out))
	}
	// Team (the first root-cause candidate's) and severity (the worst
	// reported) are found before a state is built, too.
	warning := alert("DiskFilling", "search", 2*time.Hour)
	warning.Severity = event.SeverityWarning
	feed(c, alert("HighLatency", "checkout", 40*time.Hour), warning)
	built = 0
	if out, _ := c.Listed(IncidentFilter{Team: "payments"}, keep, 10); len(out) != 1 || out[0].Service != "checkout" || out[0].Team != "payments" || built != 1 {
		t.Errorf("team payments: %d listed, %d built; want checkout's incident, one state built", len(out), built)
	}
	built = 0
	if out, _ := c.Listed(IncidentFilter{Severity: event.SeverityWarning}, keep, 10); len(out) != 1 || out[0].Service != "search" || built != 1 {
		t.Errorf("severity warning: %d listed, %d built; want search's incident, one state built", len(out), built)
	}
}

// A command is timed when the person gave it (Command.Time: the API's
// receipt, a NATS command's stream timestamp), which an event-time replay
// of the signals does not hold: that time is the resolution's
// resolved_at and its timeline entry, and moves no timer. The same
// signals with a resolution given 30 s after the alert resolved or three
// hours after it (a backfill: the person acts now, on history) make the
// same events at the same event times, across a restart too: the reopen
// window and the forgetting run from the resolution's event time, so the
// alert firing again 45 minutes later opens a new incident in both.
func TestCommandTimesMoveNoTimer(t *testing.T) {
	run := func(given time.Time) (ups []Update, resolution State) {
		c := newCorrelator(t, Config{})
		a := alert("HighLatency", "checkout", 0)
		ups = feed(c, a, resolved(a, time.Minute))
		u, err := c.Apply(Command{IncidentID: ups[0].State.IncidentID, Action: "resolve", By: "ana", Time: given})
		if err != nil {
			t.Fatal(err)
		}
		ups = append(ups, u)
		c = restarted(t, c)
		again := a
		again.Time = t0.Add(45 * time.Minute)
		ups = append(ups, feed(c, again)...)
		return append(ups, c.Advance(t0.Add(2*time.Hour))...), u.State
	}
	soon, late := t0.Add(90*time.Second), t0.Add(3*time.Hour)
	want, st := run(soon)
	got, stLate := run(late)
	if transitions(want) != "opened,resolved,opened" || transitions(got) != transitions(want) {
		t.Fatalf("events %s with the resolution given soon, %s given late; want opened,resolved,opened for both", transitions(want), transitions(got))
	}
	for i := range want {
		a, _ := Envelope(want[i], t0)
		b, _ := Envelope(got[i], t0)
		if !got[i].Time.Equal(want[i].Time) || a.ID != b.ID {
			t.Fatalf("event %d (%s) at %v given late, %v given soon: a command's time moved event time", i, got[i].Transition, got[i].Time, want[i].Time)
		}
	}
	for _, c := range []struct {
		st    State
		given time.Time
	}{{st, soon}, {stLate, late}} {
		last := c.st.Timeline[len(c.st.Timeline)-1]
		if !c.st.ResolvedAt.Equal(c.given) || last.What != "resolved by ana" || !last.Time.Equal(c.given) {
			t.Errorf("resolved_at %v, last timeline entry %+v; want both at %v, when ana resolved it", c.st.ResolvedAt, last, c.given)
		}
	}
}

// A command is never timed before its incident's opening, nor before the
// state the incident is in (a clock behind, a NATS command published
// before an API call and applied after it): it is timed then. A reopening
// by a signal timed before the resolution it undoes (event time lagging
// the clock) is timed at that resolution on the timeline, and what comes
// after it, after. The floor is kept across a restart. A command without
// a time is timed at the event time.
func TestCommandNeverTimedBeforeTheIncidentsState(t *testing.T) {
	c := newCorrelator(t, Config{})
	a := alert("HighLatency", "checkout", 0)
	id := feed(c, a)[0].State.IncidentID
	at := func(cmd Command) State {
		t.Helper()
		cmd.IncidentID = id
		u, err := c.Apply(cmd)
		if err != nil {
			t.Fatal(err)
		}
		return u.State
	}
	if st := at(Command{Action: "comment", By: "ana", Text: "looking", Time: t0.Add(-time.Hour)}); !st.Comments[0].Time.Equal(t0) {
		t.Fatalf("a comment timed an hour before the opening: at %v, want the opening %v", st.Comments[0].Time, t0)
	}
	if st := at(Command{Action: "ack", By: "ana", Time: t0.Add(-time.Hour)}); !st.AcknowledgedAt.Equal(t0) {
		t.Fatalf("an ack timed an hour before the opening: acknowledged_at %v, want the opening %v", st.AcknowledgedAt, t0)
	}
	// acknowledged at 2m (a clock ahead), resolved by a command timed 1m
	c = newCorrelator(t, Config{})
	id = feed(c, a)[0].State.IncidentID
	at(Command{Action: "ack", By: "ana", Time: t0.Add(2 * time.Minute)})
	c = restarted(t, c)
	if st := at(Command{Action: "resolve", By: "bo", Time: t0.Add(time.Minute)}); !st.ResolvedAt.Equal(t0.Add(2 * time.Minute)) {
		t.Fatalf("a resolve timed before the ack: resolved_at %v, want the ack's %v", st.ResolvedAt, t0.Add(2*time.Minute))
	}
	// The alert resolves and fires again within the reopen window of the
	// resolution's event time (the opening's), before the person's 2m.
	again := a
	again.Time = t0.Add(40 * time.Second)
	ups := feed(c, resolved(a, 30*time.Second), again)
	if transitions(ups) != "reopened" {
		t.Fatalf("the alert firing again: %s, want reopened", transitions(ups))
	}
	st, _ := c.Incident(id)
	if last := st.Timeline[len(st.Timeline)-1]; !strings.HasPrefix(last.What, "reopened") || !last.Time.Equal(t0.Add(2*time.Minute)) {
		t.Fatalf("the reopening on the timeline: %+v, want it at the resolution it undid (%v)", last, t0.Add(2*time.Minute))
	}
	c = restarted(t, c)
	if st := at(Command{Action: "ack", By: "cy", Time: t0.Add(time.Minute)}); !st.AcknowledgedAt.Equal(t0.Add(2 * time.Minute)) {
		t.Fatalf("an ack of the reopened incident timed before its reopening: %v, want %v", st.AcknowledgedAt, t0.Add(2*time.Minute))
	}
	// No time: the event time.
	c = newCorrelator(t, Config{})
	id = feed(c, a, observedAt(alert("HighErrorRate", "checkout", 20*time.Second), 20*time.Second))[0].State.IncidentID
	if st := at(Command{Action: "ack", By: "ana"}); !st.AcknowledgedAt.Equal(t0.Add(20 * time.Second)) {
		t.Fatalf("an ack without a time: %v, want the event time %v", st.AcknowledgedAt, t0.Add(20*time.Second))
	}
}

// The timeline's times have one format, RFC 3339 in UTC with
// milliseconds: time.Time's own drops trailing zeros, and 09:35:52Z stood
// beside 09:38:28.429767318Z. A checkpoint keeps them whole (a restored
// correlator orders later entries as a live one does).
func TestTimelineTimesHaveOneFormat(t *testing.T) {
	c := newCorrelator(t, Config{})
	a := alert("HighLatency", "checkout", 0)
	id := feed(c, a)[0].State.IncidentID
	odd := t0.Add(90*time.Second + 429767318*time.Nanosecond).In(time.FixedZone("CET", 3600))
	if _, err := c.Apply(Command{IncidentID: id, Action: "assign", By: "ana <sre> & co", Assignee: "bo", Time: odd}); err != nil {
		t.Fatal(err)
	}
	st, _ := c.Incident(id)
	body, err := event.MarshalBody(st)
	if err != nil {
		t.Fatal(err)
	}
	var raw struct {
		Timeline []map[string]string `json:"timeline"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Fatal(err)
	}
	want := []string{"2026-11-21T12:00:00.000Z", "2026-11-21T12:01:30.429Z"}
	if len(raw.Timeline) != 2 || raw.Timeline[0]["time"] != want[0] || raw.Timeline[1]["time"] != want[1] {
		t.Fatalf("timeline %v, want times %v", raw.Timeline, want)
	}
	if !strings.Contains(string(body), `"what":"assigned to bo by ana <sre> & co"`) {
		t.Fatalf("the entry's text is not kept as it is: %s", body)
	}
	var back State
	if err := json.Unmarshal(body, &back); err != nil || !back.Timeline[1].Time.Equal(t0.Add(90*time.Second+429*time.Millisecond)) {
		t.Fatalf("read back: %+v %v", back.Timeline, err)
	}
	if got, _ := restarted(t, c).Incident(id); !got.Timeline[1].Time.Equal(odd) {
		t.Fatalf("restored entry at %v, want %v", got.Timeline[1].Time, odd)
	}
}

// "active" lists what a person on call still has to deal with: open and
// acknowledged incidents ("open" keeps meaning not acknowledged yet).
func TestListedActive(t *testing.T) {
	c := newCorrelator(t, Config{})
	var ids []string
	for i := range 3 {
		ids = append(ids, feed(c, alert("HighLatency", fmt.Sprintf("svc-%d", i), time.Duration(i)*time.Hour))[0].State.IncidentID)
	}
	if _, err := c.Apply(Command{IncidentID: ids[0], Action: "ack", By: "ana"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Apply(Command{IncidentID: ids[1], Action: "resolve", By: "ana"}); err != nil {
		t.Fatal(err)
	}
	listed := func(status string) (got []string) {
		out, _ := c.Listed(IncidentFilter{Status: status}, nil, 10)
		for _, st := range out {
			got = append(got, st.IncidentID)
		}
		return got
	}
	if got := listed(StatusActive); !slices.Equal(got, []string{ids[2], ids[0]}) {
		t.Errorf("active: %v, want the open and the acknowledged (%v, %v)", got, ids[2], ids[0])
	}
	if got := listed(StatusOpen); !slices.Equal(got, []string{ids[2]}) {
		t.Errorf("open: %v, want the one not acknowledged (%v)", got, ids[2])
	}
}

// restoredFromBefore restores c's checkpoint as one written before
// commands were timed when given: without since and resolved_event.
func restoredFromBefore(t *testing.T, c *Correlator) *Correlator {
	t.Helper()
	data, err := c.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	old := regexp.MustCompile(`,"(since|resolved_event)":"[^"]*"`).ReplaceAll(data, nil)
	if bytes.Equal(old, data) {
		t.Fatal("the checkpoint has no since nor resolved_event to leave out")
	}
	r, err := New(c.cfg, c.cat)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.UnmarshalJSON(old); err != nil {
		t.Fatal(err)
	}
	return r
}

// A checkpoint from before commands were timed when given restores
// what they are timed by: a command on an incident reopened before it is
// not timed before that reopening (its timeline entry tells when; a NATS
// command published before the reopening and applied after it came
// before the resolution on the timeline), and a resolution by hand, then
// timed at event time, is where its reopen window runs from.
func TestCheckpointFromBeforeCommandTimes(t *testing.T) {
	c := newCorrelator(t, Config{})
	a := alert("HighLatency", "checkout", 0)
	id := feed(c, a, resolved(a, time.Minute))[0].State.IncidentID
	c.Advance(t0.Add(7 * time.Minute))
	again := a
	again.Time = t0.Add(10 * time.Minute)
	if ups := feed(c, again); transitions(ups) != "reopened" {
		t.Fatalf("the alert firing again: %s, want reopened", transitions(ups))
	}
	c = restoredFromBefore(t, c)
	u, err := c.Apply(Command{IncidentID: id, Action: "ack", By: "ana", Time: t0.Add(5 * time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	if got := u.State.AcknowledgedAt; !got.Equal(again.Time) {
		t.Fatalf("acknowledged at %v, before the reopening at %v", got, again.Time)
	}
	if last := u.State.Timeline[len(u.State.Timeline)-1]; last.What != "acknowledged by ana" {
		t.Fatalf("timeline ends with %+v, want the acknowledgement after the reopening", last)
	}

	// resolved by hand at event time t0 (as then), the alert resolving
	// and firing again 20m later reopens it, 40m later opens another
	c = newCorrelator(t, Config{})
	id = feed(c, a)[0].State.IncidentID
	if _, err := c.Apply(Command{IncidentID: id, Action: "resolve", By: "ana"}); err != nil {
		t.Fatal(err)
	}
	c = restoredFromBefore(t, c)
	again.Time = t0.Add(20 * time.Minute)
	if ups := feed(c, resolved(a, 2*time.Minute), again); transitions(ups) != "reopened" {
		t.Fatalf("fired again within the reopen window of the resolution: %s, want reopened", transitions(ups))
	}
	c = newCorrelator(t, Config{})
	id = feed(c, a)[0].State.IncidentID
	if _, err := c.Apply(Command{IncidentID: id, Action: "resolve", By: "ana"}); err != nil {
		t.Fatal(err)
	}
	c = restoredFromBefore(t, c)
	again.Time = t0.Add(40 * time.Minute)
	if ups := feed(c, resolved(a, 2*time.Minute), again); transitions(ups) != "opened" || ups[0].State.IncidentID == id {
		t.Fatalf("fired again past the reopen window of the resolution: %s, want another incident opened", transitions(ups))
	}
}
