package correlate

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/aiops-dev/aiops/pkg/event"
)

// Listed keeps its own order of the incidents (Correlator.listing) instead
// of sorting them all each call: through openings in and out of time
// order, merges that move an opening back, incidents forgotten and a
// restore, every page it lists must be what sorting them all gives.
func TestListedOrderFollowsEveryChange(t *testing.T) {
	cat := layeredCatalog(40)
	c, err := New(Config{MaxFingerprints: 400}, cat)
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, 0, len(cat.Services))
	for n := range cat.Services {
		names = append(names, n)
	}
	slices.Sort(names)
	rng := rand.New(rand.NewPCG(7, 8))
	now := t0
	check := func(step int) {
		t.Helper()
		var want []string
		for _, inc := range slices.Backward(c.sortedIncidents()) {
			want = append(want, inc.id)
		}
		var got []string
		var before *ListPosition
		for page := 0; ; page++ {
			out, more := c.Listed(IncidentFilter{Before: before}, nil, 7)
			for _, st := range out {
				got = append(got, st.IncidentID)
			}
			if !more {
				break
			}
			last := out[len(out)-1]
			before = &ListPosition{OpenedAt: last.OpenedAt, ID: last.IncidentID}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("step %d: listed %d incidents %v, sorting them all gives %d %v", step, len(got), got, len(want), want)
		}
	}
	var saved []byte
	for step := range 3000 {
		now = now.Add(time.Duration(rng.IntN(90)) * time.Second)
		at := now
		if rng.IntN(10) == 0 { // late: an opening before the latest ones
			at = now.Add(-time.Duration(rng.IntN(600)) * time.Second)
		}
		c.Observe(Signal{Kind: SignalAlert, Fingerprint: fmt.Sprintf("fp-%d", rng.IntN(300)), Service: names[rng.IntN(len(names))],
			Name: "HighErrorRate", Severity: event.SeverityCritical, Time: at, EventID: event.NewID(at), Resolved: rng.IntN(3) == 0})
		if rng.IntN(50) == 0 {
			c.Advance(now.Add(time.Duration(rng.IntN(4)) * time.Hour)) // resolves and forgets
			now = c.Now()
		}
		if rng.IntN(300) == 0 {
			// A restore, into the same correlator, of an earlier state (a
			// term taking over from another instance's last save).
			data, err := c.MarshalJSON()
			if err != nil {
				t.Fatal(err)
			}
			if saved != nil {
				check(step)
				if err := c.UnmarshalJSON(saved); err != nil {
					t.Fatal(err)
				}
				now = c.Now()
			}
			saved = data
		}
		if step%25 == 0 {
			check(step)
		}
	}
	check(3000)
	if c.stats.Opened < 100 {
		t.Fatalf("only %d incidents opened: the test would not test", c.stats.Opened)
	}
}

// A merge that moves an incident's opening back, past one opened between,
// moves it in the list too.
func TestListedAfterAMergeMovedAnOpeningBack(t *testing.T) {
	c := correlatorOn(t, Config{}, `
services:
  api-a: {depends_on: [db]}
  api-b: {depends_on: [db]}
  db:    {}
  mail:  {}
`)
	a, mail := alert("HighLatency", "api-a", 0), alert("SMTPDown", "mail", 10*time.Second)
	b, db := alert("HighLatency", "api-b", 20*time.Second), alert("ReplicationLag", "db", 70*time.Second)
	feed(c, a, mail, b)
	c.Listed(IncidentFilter{}, nil, 10) // the order as it stands, kept
	feed(c, db)
	into, _ := c.IncidentOf(b.Fingerprint)
	if got, _ := c.IncidentOf(a.Fingerprint); got != into || c.Stats().Merged != 1 {
		t.Fatalf("api-a in %s, want merged into %s (stats %+v)", got, into, c.Stats())
	}
	other, _ := c.IncidentOf(mail.Fingerprint)
	out, _ := c.Listed(IncidentFilter{}, nil, 10)
	var got []string
	for _, st := range out {
		got = append(got, st.IncidentID)
	}
	if want := []string{other, into}; !slices.Equal(got, want) {
		t.Errorf("listed %v, want %v: the merged incident opened with api-a, before mail's", got, want)
	}
}

// The team filter remembers each incident's lead service, and must follow
// it when a late root takes the lead: an incident opened on the web team's
// service becomes the database team's once its database fails under it.
func TestTeamFilterFollowsTheLeadService(t *testing.T) {
	c := correlatorOn(t, Config{}, `
services:
  api: {team: web, depends_on: [db]}
  db:  {team: data}
`)
	teams := func() (web, data int) {
		a, _ := c.Listed(IncidentFilter{Team: "web"}, nil, 10)
		b, _ := c.Listed(IncidentFilter{Team: "data"}, nil, 10)
		return len(a), len(b)
	}
	feed(c, alert("HighLatency", "api", 0))
	if web, data := teams(); web != 1 || data != 0 {
		t.Fatalf("api's incident listed for web %d times, for data %d, want 1 and 0", web, data)
	}
	feed(c, alert("ReplicationLag", "db", time.Minute))
	if web, data := teams(); web != 0 || data != 1 {
		t.Errorf("after db failed under it: listed for web %d times, for data %d, want 0 and 1", web, data)
	}
	c.Advance(c.Now().Add(time.Second)) // its update published: no change pending
	if web, data := teams(); web != 0 || data != 1 {
		t.Errorf("once published: listed for web %d times, for data %d, want 0 and 1", web, data)
	}
}
