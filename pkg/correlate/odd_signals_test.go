package correlate

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// Signals at odd times (zero, 1970, a century back, ahead), with tiny
// bounds, flapping, commands and restarts: no panic, no incident opened
// twice, no event after a merge, a reopening only after a resolution,
// each incident's events in strictly increasing time.
func TestOddSignalsNeitherPanicNorDuplicate(t *testing.T) {
	times := []time.Time{{}, t0, t0.Add(-100 * 365 * 24 * time.Hour), t0.Add(50 * time.Minute), time.Unix(0, 0), t0.Add(time.Second)}
	for seed := uint64(0); seed < 200; seed++ {
		rng := rand.New(rand.NewPCG(seed, 1))
		c := newCorrelator(t, Config{MaxFingerprints: 5, FlapStart: 2, FlapStop: 1, AlertExpiry: time.Hour})
		last := map[string]Update{}
		check := func(u Update) {
			id := u.State.IncidentID
			prev, seen := last[id]
			switch {
			case !seen && u.Transition != Opened:
				t.Fatalf("seed %d: %s first event %s", seed, id, u.Transition)
			case seen && u.Transition == Opened:
				t.Fatalf("seed %d: %s opened twice", seed, id)
			case seen && prev.State.MergedInto != "":
				t.Fatalf("seed %d: %s %s after its merge", seed, id, u.Transition)
			case seen && prev.State.State == StatusResolved && u.Transition != Reopened:
				t.Fatalf("seed %d: %s %s (state %s) after its resolution\n%v", seed, id, u.Transition, u.State.State, u.State.Timeline)
			case seen && !u.Time.After(prev.Time):
				t.Fatalf("seed %d: %s event at %s after one at %s", seed, id, u.Time, prev.Time)
			case u.Transition == Resolved && u.State.State != StatusResolved:
				t.Fatalf("seed %d: resolved event in state %s", seed, u.State.State)
			}
			last[id] = u
		}
		for i := 0; i < 100; i++ {
			svc := []string{"web", "payments-db", "", "x", "search"}[rng.IntN(5)]
			s := Signal{Kind: []SignalKind{SignalAlert, SignalAnomaly, SignalChange}[rng.IntN(3)], Service: svc,
				Fingerprint: fmt.Sprint("fp", rng.IntN(8)), Name: []string{"A", "", "CPUHigh", "DiskFillingUpSoon", "Watchdog"}[rng.IntN(5)],
				Time: times[rng.IntN(len(times))].Add(time.Duration(rng.IntN(3600)) * time.Second), Resolved: rng.IntN(2) == 0,
				EventID: fmt.Sprint("e", i), EpisodeID: []string{"", "e1", "e2"}[rng.IntN(3)], Episode: []string{"", EpisodeOpen, EpisodeClose}[rng.IntN(3)]}
			if rng.IntN(3) == 0 {
				s.Started = times[rng.IntN(len(times))]
			}
			if rng.IntN(3) == 0 {
				s.Observed = times[rng.IntN(len(times))]
			}
			if rng.IntN(4) == 0 {
				s.Labels = map[string]string{"upstream": "payments-db", "cluster": fmt.Sprint(rng.IntN(3)), "region": fmt.Sprint(rng.IntN(3))}
			}
			for _, u := range c.Observe(s) {
				check(u)
				if _, err := Envelope(u, t0); err != nil {
					t.Fatal(err)
				}
			}
			if rng.IntN(10) == 0 {
				if all := c.sortedIncidents(); len(all) > 0 {
					if u, err := c.Apply(Command{IncidentID: all[rng.IntN(len(all))].id, Action: []string{"ack", "resolve"}[rng.IntN(2)], Time: times[rng.IntN(len(times))]}); err == nil {
						check(u)
					}
				}
			}
			if rng.IntN(10) == 0 {
				c = restarted(t, c)
			}
		}
		for _, u := range c.Advance(t0.Add(100 * time.Hour)) {
			check(u)
		}
	}
}
