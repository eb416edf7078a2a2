package correlate

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/aiops-dev/aiops/pkg/event"
)

func randomStorm(seed uint64, n int) []Signal {
	rng := rand.New(rand.NewPCG(seed, 7))
	services := []string{"web", "checkout", "payments", "payments-db", "cart", "search", "search-index", "unknown-svc"}
	names := []string{"HighLatency", "HighErrorRate", "CPUThrottlingHigh", "DiskFillingUpSoon", "KubePodCrashLooping"}
	var out []Signal
	at := time.Duration(0)
	firing := map[string]Signal{}
	for i := 0; i < n; i++ {
		at += time.Duration(rng.IntN(90)) * time.Second
		switch r := rng.IntN(10); {
		case r < 4:
			s := alert(names[rng.IntN(len(names))], services[rng.IntN(len(services))], at)
			if rng.IntN(3) == 0 {
				s.Labels = map[string]string{"upstream": services[rng.IntN(len(services))], "cluster": fmt.Sprint("c", rng.IntN(2))}
			}
			s.Observed = s.Time.Add(time.Second)
			firing[s.Fingerprint] = s
			out = append(out, s)
		case r < 7 && len(firing) > 0:
			keys := make([]string, 0, len(firing))
			for k := range firing {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			k := keys[rng.IntN(len(keys))]
			s := firing[k]
			if rng.IntN(2) == 0 {
				s = resolved(s, at)
				s.EventID = event.DerivedID(s.Time, "r", k)
				delete(firing, k)
			} else {
				s.Time = t0.Add(at)
				s.EventID = event.DerivedID(s.Time, "f", k)
			}
			s.Observed = t0.Add(at + time.Second)
			out = append(out, s)
		case r < 9:
			svc := services[rng.IntN(len(services))]
			ep := fmt.Sprint("ep", rng.IntN(3))
			s := Signal{Kind: SignalAnomaly, Fingerprint: "series/" + svc, Service: svc, Name: "latency", Time: t0.Add(at),
				EventID: event.DerivedID(t0.Add(at), "a", svc), Value: float64(rng.IntN(100)), EpisodeID: ep, Episode: EpisodeOpen,
				Observed: t0.Add(at + time.Second)}
			if rng.IntN(3) == 0 {
				s.Episode, s.Resolved = EpisodeClose, true
			}
			out = append(out, s)
		default:
			svc := services[rng.IntN(len(services))]
			out = append(out, Signal{Kind: SignalChange, Service: svc, Name: "deploy", Version: fmt.Sprint("v", i),
				Time: t0.Add(at - time.Duration(rng.IntN(600))*time.Second), EventID: event.DerivedID(t0.Add(at), "c", svc, fmt.Sprint(i))})
		}
	}
	return out
}

// What a correlator restored from its checkpoint after every few signals
// publishes is what one that never stopped publishes.
func TestRestartEveryFewSignalsChangesNoEvent(t *testing.T) {
	for seed := uint64(0); seed < 10; seed++ {
		storm := randomStorm(seed, 200)
		for _, cfg := range []Config{{}, {FlapStart: 3, FlapStop: 2, AlertExpiry: time.Hour}, {MaxFingerprints: 6, QuietPeriod: 20 * time.Minute}, {GroupBy: []string{"cluster"}, ReopenWindow: 2 * time.Hour}} {
			whole := newCorrelator(t, cfg)
			c := newCorrelator(t, cfg)
			var want, got []Update
			rng := rand.New(rand.NewPCG(seed, 99))
			for i, s := range storm {
				want = append(want, whole.Observe(s)...)
				got = append(got, c.Observe(s)...)
				if rng.IntN(6) == 0 {
					if all := whole.sortedIncidents(); len(all) > 0 {
						id := all[rng.IntN(len(all))].id
						cmd := Command{IncidentID: id, Action: []string{"ack", "resolve", "assign", "comment"}[rng.IntN(4)], By: "ana",
							Time: s.Time.Add(time.Duration(rng.IntN(120)-60) * time.Second), ID: fmt.Sprint("cmd", i)}
						switch cmd.Action {
						case "assign":
							cmd.Assignee = "bo"
						case "comment":
							cmd.Text = "looking"
						}
						u1, e1 := whole.Apply(cmd)
						u2, e2 := c.Apply(cmd)
						if (e1 == nil) != (e2 == nil) {
							t.Fatalf("seed %d: command %+v: %v vs %v", seed, cmd, e1, e2)
						}
						if e1 == nil {
							want, got = append(want, u1), append(got, u2)
						}
					}
				}
				if i%7 == 3 {
					c = restarted(t, c)
				}
			}
			want = append(want, whole.Advance(t0.Add(48*time.Hour))...)
			got = append(got, c.Advance(t0.Add(48*time.Hour))...)
			n := min(len(got), len(want))
			for i := 0; i < n; i++ {
				a, _ := Envelope(want[i], t0)
				b, _ := Envelope(got[i], t0)
				if a.ID != b.ID || string(a.Body) != string(b.Body) {
					t.Fatalf("seed %d cfg %+v: event %d differs after restores:\nwant %s %s\ngot  %s %s", seed, cfg, i, want[i].Transition, a.Body, got[i].Transition, b.Body)
				}
			}
			if len(got) != len(want) {
				t.Fatalf("seed %d: %d events with restores, %d without", seed, len(got), len(want))
			}
		}
	}
}
