package correlate

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // the zones below, on a machine without its own

	"github.com/aiops-dev/aiops/pkg/event"
)

// mergeChain is two merges, one into the other: api-a and api-b alert
// first (two incidents), mid, what both depend on, arrives late and
// merges them; then api-x alerts, and db, what mid and api-x depend on,
// arrives late and merges those two.
type mergeChain struct {
	c      *Correlator
	first  string // the incident merged when mid arrived
	into   string // the incident it went into
	merges []time.Time
}

func newMergeChain(t *testing.T) *mergeChain {
	t.Helper()
	c := correlatorOn(t, Config{}, `
services:
  api-a: {depends_on: [mid]}
  api-b: {depends_on: [mid]}
  api-x: {depends_on: [db]}
  mid:   {depends_on: [db]}
  db:    {}
`)
	a, b := alert("HighLatency", "api-a", 0), alert("HighLatency", "api-b", 10*time.Second)
	feed(c, a, b)
	incA, _ := c.IncidentOf(a.Fingerprint)
	incB, _ := c.IncidentOf(b.Fingerprint)
	mid := alert("ConnectionPoolExhausted", "mid", 20*time.Second)
	feed(c, mid)
	into, _ := c.IncidentOf(mid.Fingerprint)
	first := incA
	if into == incA {
		first = incB
	}
	if incA == incB || c.Stats().Merged != 1 {
		t.Fatalf("api-a in %s, api-b in %s, %d merged; want two incidents, one merged into the other", incA, incB, c.Stats().Merged)
	}
	return &mergeChain{c: c, first: first, into: into, merges: []time.Time{mid.Time}}
}

// second makes the second merge and returns the incident both merges end in.
func (m *mergeChain) second(t *testing.T) string {
	t.Helper()
	db := alert("ReplicationLag", "db", 40*time.Second)
	feed(m.c, alert("HighLatency", "api-x", 30*time.Second), db)
	if m.c.Stats().Merged != 2 {
		t.Fatalf("%d merged, want 2 (db took mid's incident or api-x's)", m.c.Stats().Merged)
	}
	m.merges = append(m.merges, db.Time)
	final, _ := m.c.IncidentOf(db.Fingerprint)
	return final
}

func hasEntry(st State, what string) bool {
	for _, e := range st.Timeline {
		if strings.Contains(e.What, what) {
			return true
		}
	}
	return false
}

// A merged incident leaves memory at once, but where it went does not:
// MergedInto names it, and the commands a person gives the incident they
// were paged for reach the one the failure goes on in, which says so.
func TestCommandsOnAMergedIncidentReachItsTarget(t *testing.T) {
	m := newMergeChain(t)
	c := m.c
	if _, ok := c.Incident(m.first); ok {
		t.Fatalf("merged incident %s is still an incident", m.first)
	}
	if got, ok := c.MergedInto(m.first); !ok || got != m.into {
		t.Fatalf("MergedInto(%s) = %q %v, want %s", m.first, got, ok, m.into)
	}
	if got, ok := c.MergedInto(m.into); ok {
		t.Fatalf("MergedInto(%s), not merged, = %q", m.into, got)
	}
	at := t0.Add(time.Minute)
	u, err := c.Apply(Command{IncidentID: m.first, Action: "ack", By: "ana", Time: at})
	if err != nil || u.State.IncidentID != m.into || u.Transition != Acknowledged || u.State.State != StatusAcknowledged {
		t.Fatalf("ack of the merged incident: %s %s %s, %v; want %s acknowledged", u.State.IncidentID, u.Transition, u.State.State, err, m.into)
	}
	if want := "acknowledged by ana (ack of merged incident " + m.first + ")"; !hasEntry(u.State, want) {
		t.Fatalf("the target's timeline does not say %q: %+v", want, u.State.Timeline)
	}
	// The target refuses what it would refuse anyway, naming both.
	_, err = c.Apply(Command{IncidentID: m.first, Action: "ack", By: "bo", Time: at})
	if err == nil || !strings.Contains(err.Error(), m.into+" is acknowledged") || !strings.Contains(err.Error(), m.first) {
		t.Fatalf("a second ack through the merged incident: %v, want the target's refusal naming both", err)
	}
	if _, err := c.Apply(Command{IncidentID: m.first, Action: "escalate"}); !errors.Is(err, ErrUnknownAction) {
		t.Fatalf("unknown action through the merged incident: %v", err)
	}
	u, err = c.Apply(Command{IncidentID: m.first, Action: "comment", By: "bo", Text: "the pool is exhausted", Time: at})
	if err != nil || u.State.IncidentID != m.into || len(u.State.Comments) != 1 || u.State.Comments[0].By != "bo" {
		t.Fatalf("comment through the merged incident: %+v %v", u.State.Comments, err)
	}
	// Chains are followed: the target merged in turn sends on.
	final := m.second(t)
	for _, id := range []string{m.first, m.into} {
		if id == final {
			continue
		}
		if got, ok := c.MergedInto(id); !ok || got != final {
			t.Fatalf("MergedInto(%s) = %q %v after the second merge, want %s", id, got, ok, final)
		}
	}
	u, err = c.Apply(Command{IncidentID: m.first, Action: "resolve", By: "cy", Time: t0.Add(2 * time.Minute)})
	if err != nil || u.State.IncidentID != final || u.State.State != StatusResolved {
		t.Fatalf("resolve of the first merged incident: %s %s %v, want %s resolved", u.State.IncidentID, u.State.State, err, final)
	}
}

// A merge is remembered for reopen_window of event time, as a resolved
// incident is; then the id is unknown.
func TestMergesAgeOutAfterTheReopenWindow(t *testing.T) {
	m := newMergeChain(t)
	m.second(t)
	c, window := m.c, m.c.cfg.ReopenWindow
	c.Advance(m.merges[0].Add(window))
	if _, ok := c.MergedInto(m.first); !ok {
		t.Fatalf("the merge of %s was forgotten at reopen_window (%s) after it", m.first, window)
	}
	c.Advance(m.merges[0].Add(window + time.Nanosecond))
	if got, ok := c.MergedInto(m.first); ok {
		t.Fatalf("MergedInto(%s) = %s beyond reopen_window", m.first, got)
	}
	if _, err := c.Apply(Command{IncidentID: m.first, Action: "ack"}); !errors.Is(err, ErrUnknownIncident) {
		t.Fatalf("a command on a merge forgotten: %v, want ErrUnknownIncident", err)
	}
	if len(c.merged) != 1 || len(c.mergedOrder) != 1 {
		t.Fatalf("%d merges remembered (%d in order), want the second only", len(c.merged), len(c.mergedOrder))
	}
	c.Advance(m.merges[1].Add(window + time.Nanosecond))
	if len(c.merged) != 0 || len(c.mergedOrder) != 0 {
		t.Fatalf("%d merges remembered beyond every reopen_window", len(c.merged))
	}
}

// The merges remembered are at most max_fingerprints, the oldest going
// first, whatever order they come in.
func TestMergesRememberedAreBounded(t *testing.T) {
	c := newCorrelator(t, Config{MaxFingerprints: 3})
	for _, s := range []int{5, 1, 4, 2, 3} {
		id := string(rune('0' + s))
		c.remember(mergeRecord{ID: id, Into: "x" + id, At: t0.Add(time.Duration(s) * time.Minute)})
	}
	var kept []string
	for _, r := range c.mergedOrder {
		kept = append(kept, r.ID)
	}
	if strings.Join(kept, ",") != "3,4,5" || len(c.merged) != 3 {
		t.Fatalf("kept %v (%d looked up), want the three latest in time order", kept, len(c.merged))
	}
	if got, ok := c.MergedInto("4"); !ok || got != "x4" {
		t.Fatalf("MergedInto(4) = %q %v", got, ok)
	}
}

// Merges survive a restart: a checkpoint has them, a restored correlator
// forwards commands as the first did, and a checkpoint of version 1
// (before merges were kept) still restores, with none remembered.
func TestMergesSurviveASnapshot(t *testing.T) {
	m := newMergeChain(t)
	data, err := m.c.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	restored, err := New(Config{}, m.c.cat)
	if err != nil {
		t.Fatal(err)
	}
	if err := restored.UnmarshalJSON(data); err != nil {
		t.Fatal(err)
	}
	if got, ok := restored.MergedInto(m.first); !ok || got != m.into {
		t.Fatalf("restored MergedInto(%s) = %q %v, want %s", m.first, got, ok, m.into)
	}
	u, err := restored.Apply(Command{IncidentID: m.first, Action: "assign", By: "ana", Assignee: "bo"})
	if err != nil || u.State.IncidentID != m.into || u.State.Assignee != "bo" {
		t.Fatalf("assign through the merged incident after a restore: %s %q %v", u.State.IncidentID, u.State.Assignee, err)
	}

	var old map[string]json.RawMessage
	if err := json.Unmarshal(data, &old); err != nil {
		t.Fatal(err)
	}
	if _, ok := old["merged"]; !ok {
		t.Fatalf("the snapshot has no merges: %s", data)
	}
	delete(old, "merged")
	old["version"] = json.RawMessage("1")
	v1, _ := json.Marshal(old)
	if err := restored.UnmarshalJSON(v1); err != nil {
		t.Fatalf("a version 1 snapshot: %v", err)
	}
	if _, ok := restored.MergedInto(m.first); ok {
		t.Fatal("a version 1 snapshot restored a merge it did not have")
	}
	if got, want := len(restored.Incidents()), len(m.c.Incidents()); got != want {
		t.Fatalf("a version 1 snapshot restored %d incidents, want %d", got, want)
	}

	old["version"] = json.RawMessage("2")
	old["merged"] = json.RawMessage(`[{"id":"","into":"x","at":"2026-11-21T12:00:00Z"}]`)
	bad, _ := json.Marshal(old)
	if err := restored.UnmarshalJSON(bad); err == nil || !strings.Contains(err.Error(), "merge record") {
		t.Fatalf("a merge record without an id: %v", err)
	}
}

// A command given to an incident before it was merged, given again (a
// redelivery), is not applied twice: the incident it went into took the
// ids of the one merged, and kept its own.
func TestCommandIDsFollowAMerge(t *testing.T) {
	c := correlatorOn(t, Config{}, `
services:
  api-a: {depends_on: [mid]}
  api-b: {depends_on: [mid]}
  mid:   {}
`)
	a, b := alert("HighLatency", "api-a", 0), alert("HighLatency", "api-b", 10*time.Second)
	feed(c, a, b)
	incA, _ := c.IncidentOf(a.Fingerprint)
	incB, _ := c.IncidentOf(b.Fingerprint)
	for i, id := range []string{incA, incB} {
		if _, err := c.Apply(Command{IncidentID: id, Action: "comment", Text: "looking", ID: "nats:" + id}); err != nil {
			t.Fatalf("comment %d: %v", i, err)
		}
	}
	feed(c, alert("ConnectionPoolExhausted", "mid", 20*time.Second))
	if c.Stats().Merged != 1 {
		t.Fatalf("%d merged, want 1", c.Stats().Merged)
	}
	for _, id := range []string{incA, incB} {
		target, _ := c.MergedInto(id)
		if target == "" {
			target = id
		}
		before, _ := c.Incident(target)
		u, err := c.Apply(Command{IncidentID: id, Action: "comment", Text: "looking", ID: "nats:" + id})
		if !errors.Is(err, ErrApplied) || len(u.State.Comments) != len(before.Comments) {
			t.Fatalf("the comment to %s again after the merge: %v, %d comments, %d before; want ErrApplied and no new comment", id, err, len(u.State.Comments), len(before.Comments))
		}
	}
}

// A merge moves the incident's opening back to the merged one's, but not
// into another month in any time zone: the incidents table keeps an
// incident's states in the partition of the month it opened, in the
// ClickHouse server's zone, and a state in another partition would be a
// second row for it. Well within a month it moves back.
func TestMergeKeepsTheOpeningInItsMonth(t *testing.T) {
	for _, tc := range []struct {
		name     string
		symptoms time.Time
		moved    bool
	}{
		{"across the month's first midnight", time.Date(2026, 11, 30, 23, 59, 50, 0, time.UTC), false},
		// The same UTC month, but November in New York.
		{"across the month's first midnight in another zone", time.Date(2026, 12, 1, 4, 59, 50, 0, time.UTC), false},
		{"within a month", time.Date(2026, 12, 3, 0, 0, 30, 0, time.UTC), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := correlatorOn(t, Config{}, `
services:
  api-a: {depends_on: [db]}
  api-b: {depends_on: [db]}
  db:    {}
`)
			at := func(s Signal, tm time.Time) Signal {
				s.Time, s.EventID = tm, event.DerivedID(tm, s.Fingerprint)
				return s
			}
			a := at(alert("HighLatency", "api-a", 0), tc.symptoms)
			b := at(alert("HighLatency", "api-b", 0), tc.symptoms.Add(20*time.Second))
			db := at(alert("ReplicationLag", "db", 0), tc.symptoms.Add(70*time.Second))
			feed(c, a)
			feed(c, b)
			into, _ := c.IncidentOf(b.Fingerprint)
			feed(c, db)
			if got, _ := c.IncidentOf(db.Fingerprint); got != into {
				t.Fatalf("the root joined %s, want the latest symptom's incident %s", got, into)
			}
			if got, _ := c.IncidentOf(a.Fingerprint); got != into || c.Stats().Merged != 1 {
				t.Fatalf("api-a in %s, want merged into %s (stats %+v)", got, into, c.Stats())
			}
			st, _ := c.Incident(into)
			if moved := st.OpenedAt.Equal(tc.symptoms); moved != tc.moved {
				t.Errorf("opened_at %s after merging an incident opened %s: moved %v, want %v", st.OpenedAt, tc.symptoms, moved, tc.moved)
			}
			for _, zone := range []string{"UTC", "America/New_York", "Pacific/Kiritimati"} {
				loc, err := time.LoadLocation(zone)
				if err != nil {
					t.Fatal(err)
				}
				if st.OpenedAt.In(loc).Month() != b.Time.In(loc).Month() {
					t.Errorf("opened_at %s left the month, in %s, of the incident's first state (%s)", st.OpenedAt, zone, b.Time)
				}
			}
		})
	}
}
