package aiops

import (
	"encoding/json"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/aiops-dev/aiops/pkg/correlate"
	"github.com/aiops-dev/aiops/pkg/correlate/specgen"
	"github.com/aiops-dev/aiops/pkg/event"
)

// soakDay is what the correlator holds at the end of one day of a soak.
type soakDay struct {
	open, resolved, fingerprints, members, timeline, changes, comments int
	stateBytes, snapshotBytes                                          int64
	heap                                                               uint64
	sections                                                           map[string]int // the snapshot's top-level keys, in bytes
	retired, changeLists, changesKept                                  int
}

// TestCorrelatorStateStaysFlatOverAMonth runs a month of event time
// through one correlator, restarted from its snapshot every day: a storm
// a day (specgen, seeds 1 to 20 in turn, each shifted to its day) over a
// steady background of alerts that fire and resolve every few minutes,
// flapping ones, anomaly episodes of series that live a day (pods
// replaced), deploys, and people acknowledging, commenting on and
// assigning what opens. Days 21 to 30 are days 1 to 10 again, so what
// the correlator holds at day 27 to 30 must be what it held at day 7 to
// 10: state that only grows would take an operator's memory over months.
func TestCorrelatorStateStaysFlatOverAMonth(t *testing.T) {
	if testing.Short() {
		t.Skip("a month of event time")
	}
	const days = 30
	base := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
	storm0 := specgen.Generate(1, specgen.DefaultConfig())
	cat, err := correlate.ParseCatalog(storm0.Catalog)
	if err != nil {
		t.Fatal(err)
	}
	cfg := correlate.DefaultConfig()
	// A storm's alerts that never resolve within it are sent no more
	// after it: in this concatenation of storms their resolution is
	// lost, which alert_expiry is for (with its default, 0, each would
	// be an incident open for ever: docs/operations.md).
	cfg.AlertExpiry = 12 * time.Hour
	c, err := correlate.New(cfg, cat)
	if err != nil {
		t.Fatal(err)
	}
	commanded := map[string]bool{}
	cmdN := 0
	command := func(ups []correlate.Update, at time.Time) {
		for _, u := range ups {
			id := u.State.IncidentID
			if u.Transition != correlate.Opened && u.Transition != correlate.Reopened {
				continue
			}
			// A person acknowledges, assigns and comments on what opens
			// or reopens, each command once (ids kept).
			for _, cmd := range []correlate.Command{
				{Action: "ack", By: "alice"},
				{Action: "assign", By: "alice", Assignee: "bob"},
				{Action: "comment", By: "bob", Text: "looking at it " + id},
			} {
				cmdN++
				cmd.IncidentID, cmd.Time, cmd.ID = id, at, fmt.Sprintf("cmd-%d", cmdN)
				_, _ = c.Apply(cmd) // a conflict (acknowledged already) is fine
			}
			commanded[id] = true
		}
	}
	observe := func(s correlate.Signal) {
		if s.Observed.IsZero() {
			s.Observed = s.Time
		}
		command(c.Observe(s), s.Time)
	}
	advance := func(t time.Time) { command(c.Advance(t), t) }
	alert := func(fp, svc, name string, at time.Time, resolved bool) correlate.Signal {
		return correlate.Signal{Kind: correlate.SignalAlert, EventID: event.DerivedID(at, fp, at.String(), fmt.Sprint(resolved)), Fingerprint: fp,
			Service: svc, Name: name, Severity: event.SeverityCritical, Resolved: resolved, Time: at,
			Labels: map[string]string{"alertname": name, "service": svc, "pod": fp}}
	}
	services := slices.Sorted(maps.Keys(cat.Services))
	var figures []soakDay
	for day := range days {
		start := base.Add(time.Duration(day) * 24 * time.Hour)
		// The day's events, in time order: the storm's and the background's.
		type timed struct {
			at  time.Time
			run func()
		}
		var evs []timed
		scfg := specgen.DefaultConfig()
		scfg.Start = start.Add(8 * time.Hour)
		storm := specgen.Generate(uint64(day%20+1), scfg)
		for _, line := range storm.Lines {
			envs, err := lineEvents(line, time.Time{})
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range envs {
				s, ok, err := correlate.SignalOf(e)
				if err != nil || !ok {
					t.Fatalf("storm line: %v %v", ok, err)
				}
				evs = append(evs, timed{s.Time, func() { observe(s) }})
			}
		}
		for m := 0; m < 24*60; m++ {
			at := start.Add(time.Duration(m) * time.Minute)
			// Steady alerts: fire 3 minutes in every 10.
			for i := range 10 {
				if (m+i)%10 == 0 || (m+i)%10 == 3 {
					fire := (m+i)%10 == 0
					evs = append(evs, timed{at, func() {
						observe(alert(fmt.Sprintf("steady-%d", i), services[i%len(services)], "HighErrorRate", at, !fire))
					}})
				}
			}
			// Flapping alerts: change state every minute.
			for i := range 3 {
				evs = append(evs, timed{at, func() {
					observe(alert(fmt.Sprintf("flap-%d", i), services[(i+5)%len(services)], "QueueDepthHigh", at, m%2 == 1))
				}})
			}
			// Anomalies of series living one day (a pod's, replaced
			// daily): an episode an hour, opened, updated, closed.
			if m%60 < 20 && m%10 == 0 {
				for i := range 5 {
					phase := []string{event.EpisodeOpen, event.EpisodeUpdate, correlate.EpisodeClose}[m%60/10]
					series := fmt.Sprintf("cpu{pod=web-%d-%d}", day, i)
					ep := fmt.Sprintf("%s/%d", series, m/60)
					evs = append(evs, timed{at, func() {
						observe(correlate.Signal{Kind: correlate.SignalAnomaly, EventID: event.DerivedID(at, series, at.String()), Fingerprint: series,
							Service: services[(i+7)%len(services)], Name: "cpu_seconds", Time: at, Resolved: phase == correlate.EpisodeClose,
							EpisodeID: ep, Episode: phase, Value: 9, Expected: 1, Lower: 0, Upper: 2})
					}})
				}
			}
			// A deploy every half hour.
			if m%30 == 0 {
				svc := services[(m/30)%len(services)]
				evs = append(evs, timed{at, func() {
					observe(correlate.Signal{Kind: correlate.SignalChange, EventID: event.DerivedID(at, "deploy", svc), Service: svc,
						Name: "deploy", Version: fmt.Sprintf("v%d.%d", day, m), Author: "ci", Time: at})
				}})
			}
			// People comment on what is open every hour.
			if m%60 == 30 {
				evs = append(evs, timed{at, func() {
					for _, st := range c.Incidents() {
						if st.State != correlate.StatusResolved {
							cmdN++
							_, _ = c.Apply(correlate.Command{IncidentID: st.IncidentID, Action: "comment", By: "carol", Text: "still on it", Time: at, ID: fmt.Sprintf("cmd-%d", cmdN)})
						}
					}
				}})
			}
			evs = append(evs, timed{at.Add(59 * time.Second), func() { advance(at.Add(59 * time.Second)) }})
		}
		slices.SortStableFunc(evs, func(a, b timed) int { return a.at.Compare(b.at) })
		for _, e := range evs {
			e.run()
		}
		advance(start.Add(24 * time.Hour))

		// A restart: the next day runs on the correlator restored from
		// the snapshot.
		snap, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		c, err = correlate.New(cfg, cat)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(snap, c); err != nil {
			t.Fatal(err)
		}
		f := soakDay{fingerprints: c.Fingerprints(), stateBytes: c.StateBytes(), snapshotBytes: int64(len(snap)), sections: map[string]int{}}
		for _, st := range c.Incidents() {
			if st.State == correlate.StatusResolved {
				f.resolved++
			} else {
				f.open++
			}
			f.members += st.MemberCount
			f.timeline += len(st.Timeline)
			f.changes += len(st.Changes)
			f.comments += len(st.Comments)
		}
		var sections map[string]json.RawMessage
		if err := json.Unmarshal(snap, &sections); err != nil {
			t.Fatal(err)
		}
		for k, v := range sections {
			f.sections[k] = len(v)
		}
		var retired []string
		var changes map[string][]json.RawMessage
		if err := json.Unmarshal(sections["retired"], &retired); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(sections["changes"], &changes); err != nil {
			t.Fatal(err)
		}
		f.retired, f.changeLists = len(retired), len(changes)
		for _, list := range changes {
			f.changesKept += len(list)
		}
		storm, evs = specgen.Storm{}, nil
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		f.heap = ms.HeapAlloc
		figures = append(figures, f)
		t.Logf("day %2d: incidents %d open %d resolved, fingerprints %d, members %d, timeline %d, changes %d, comments %d, state %d B, snapshot %d B (retired ids %d, changes %d of %d services), heap %d B, sections %v",
			day+1, f.open, f.resolved, f.fingerprints, f.members, f.timeline, f.changes, f.comments, f.stateBytes, f.snapshotBytes, f.retired, f.changesKept, f.changeLists, f.heap, f.sections)
	}
	// Days 27 to 30 replay the storms of days 7 to 10 over the same
	// background: each must hold what its twin held, within half again
	// (a day's figures vary with its storm, not with time; the first
	// days fill what is bounded per incident: comments, timelines).
	for d := 26; d < days; d++ {
		week, month := figures[d-20], figures[d]
		check := func(what string, w, m int64) {
			t.Helper()
			if float64(m) > 1.5*float64(max(w, 1)) {
				t.Errorf("%s grew from %d at day %d to %d at day %d under the same load", what, w, d-19, m, d+1)
			}
		}
		check("incidents held", int64(week.open+week.resolved), int64(month.open+month.resolved))
		check("open incidents", int64(week.open), int64(month.open))
		check("fingerprints", int64(week.fingerprints), int64(month.fingerprints))
		check("members", int64(week.members), int64(month.members))
		check("timeline entries", int64(week.timeline), int64(month.timeline))
		check("linked changes", int64(week.changes), int64(month.changes))
		check("comments", int64(week.comments), int64(month.comments))
		check("state bytes", week.stateBytes, month.stateBytes)
		check("snapshot's incidents", int64(week.sections["incidents"]), int64(month.sections["incidents"]))
		check("changes remembered", int64(week.changesKept), int64(month.changesKept))
		// Only a count bounds the ids of forgotten incidents (MaxRetired).
		if month.retired > correlate.MaxRetired {
			t.Errorf("%d retired ids held, want at most %d", month.retired, correlate.MaxRetired)
		}
	}
}
