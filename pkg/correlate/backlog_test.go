package correlate

import (
	"strings"
	"testing"
	"time"
)

// An anomaly episode of a backlog (a remote-write queue catching up
// after an outage, the detector scoring it) comes while live alerts keep
// the watermark half an hour ahead of it. Its quiet ran from its own
// time: each of its events opened an incident and resolved it at once
// (three incidents, each of MTTR 0, for one episode of eight minutes).
// Quiet now runs from when its last event came: one incident, resolved
// at the episode's close, the same across a restart.
func TestBacklogEpisodeIsOneIncidentAsLongAsItLasted(t *testing.T) {
	anomaly := func(phase string, at time.Duration) Signal {
		return Signal{Kind: SignalAnomaly, Fingerprint: "series-batch", Service: "batch", Name: "lag", Time: t0.Add(at),
			EpisodeID: "e1", Episode: phase, Resolved: phase == EpisodeClose}
	}
	ss := []Signal{alert("HighErrorRate", "payments", 40*time.Minute),
		anomaly(EpisodeOpen, 53*time.Second), anomaly(EpisodeUpdate, 3*time.Minute), anomaly(EpisodeUpdate, 6*time.Minute), anomaly(EpisodeClose, 9*time.Minute)}
	ups := sameEvents(t, Config{LoneAnomalies: Flag(true)}, ss, 3, t0.Add(2*time.Hour))
	if got := strings.Count(transitions(ups), "opened"); got != 2 {
		t.Fatalf("transitions %s: want two incidents opened, the live alert's and the episode's", transitions(ups))
	}
	var resolvedAt []time.Time
	for _, u := range ups {
		if u.Transition == Resolved {
			resolvedAt = append(resolvedAt, u.State.ResolvedAt)
		}
	}
	if len(resolvedAt) != 1 || !resolvedAt[0].Equal(t0.Add(9*time.Minute)) {
		t.Errorf("resolved at %v, want the episode's incident once, at its close (%v)", resolvedAt, t0.Add(9*time.Minute))
	}
}
