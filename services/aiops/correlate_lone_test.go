package aiops

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/aiops-dev/aiops/pkg/correlate"
)

// A lone anomaly that opened nothing (correlator.rules.lone_anomalies)
// is assigned apart, one item for its run of events (an episode); one an alert on
// its service corroborated is assigned to the incident it then opened.
func TestReplayAssignsHeldAnomalies(t *testing.T) {
	anomaly := func(id, series, service, at, episode string) string {
		return `{"type":"event","event":{"id":"` + id + `","kind":"anomaly","service":"` + service + `","time":"` + at +
			`","body":{"series":"` + series + `","metric":"m","value":2.5,"score":0.9,"detector":"robust_z","episode":"` + episode +
			`","episode_id":"ep-` + series + `","start":"` + at + `","end":"` + at + `"}}}`
	}
	in := strings.Join([]string{
		anomaly("01M9857AT61K43KVGFJKRCY260", "aaaa000000000001", "node", "2026-11-21T12:00:00Z", "open"),
		anomaly("01M9857AT61K43KVGFJKRCY261", "aaaa000000000001", "node", "2026-11-21T12:00:15Z", "close"),
		anomaly("01M9857AT61K43KVGFJKRCY262", "aaaa000000000002", "checkout", "2026-11-21T12:00:20Z", "open"),
		anomaly("01M9857AT61K43KVGFJKRCY263", "aaaa000000000001", "node", "2026-11-21T12:00:45Z", "open"), // its next episode
		amLine("2026-11-21T12:01:05Z", amAlert("bbbb000000000001", "HighErrorRate", "checkout", "firing", "2026-11-21T12:01:00Z", "0001-01-01T00:00:00Z")),
	}, "\n")
	res, err := Replay(context.Background(), strings.NewReader(in), correlate.DefaultConfig(), nil, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"01M9857AT61K43KVGFJKRCY260", "01M9857AT61K43KVGFJKRCY261"} {
		if got := res.EventAssignments[id]; got != "unassigned:01M9857AT61K43KVGFJKRCY260" {
			t.Errorf("event %s of the lone anomaly is assigned %q, want apart with its run", id, got)
		}
	}
	if got := res.EventAssignments["01M9857AT61K43KVGFJKRCY263"]; got != "unassigned:01M9857AT61K43KVGFJKRCY263" {
		t.Errorf("the lone anomaly's next episode is assigned %q, want apart, a run of its own", got)
	}
	alert := res.Assignments["bbbb000000000001"]
	if got := res.EventAssignments["01M9857AT61K43KVGFJKRCY262"]; alert == "" || got != alert {
		t.Errorf("the corroborated anomaly is assigned %q, the alert %q; want one incident", got, alert)
	}
	if len(res.Incidents) != 1 || len(res.Incidents[0].Anomalies) != 1 {
		t.Errorf("incidents %+v, want one, with the corroborated series", res.Incidents)
	}
}

// A run that waited in vain stays apart when the series' next episode
// opens an incident at once (critical): its events are not that one's.
func TestReplayKeepsARunInVainApartFromTheNextEpisode(t *testing.T) {
	anomaly := func(id, severity, at, episode, episodeID string) string {
		return `{"type":"event","event":{"id":"` + id + `","kind":"anomaly","service":"node","severity":"` + severity + `","time":"` + at +
			`","body":{"series":"aaaa000000000001","metric":"m","value":2.5,"score":0.9,"detector":"robust_z","episode":"` + episode +
			`","episode_id":"` + episodeID + `","start":"` + at + `","end":"` + at + `"}}}`
	}
	in := strings.Join([]string{
		anomaly("01M9857AT61K43KVGFJKRCY260", "warning", "2026-11-21T12:00:00Z", "open", "ep-1"),
		anomaly("01M9857AT61K43KVGFJKRCY261", "warning", "2026-11-21T12:00:15Z", "close", "ep-1"),
		anomaly("01M9857AT61K43KVGFJKRCY262", "critical", "2026-11-21T12:01:00Z", "open", "ep-2"),
	}, "\n")
	res, err := Replay(context.Background(), strings.NewReader(in), correlate.DefaultConfig(), nil, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	opened := res.EventAssignments["01M9857AT61K43KVGFJKRCY262"]
	if strings.HasPrefix(opened, "unassigned:") {
		t.Fatalf("the critical episode is assigned %q, want the incident it opened", opened)
	}
	for _, id := range []string{"01M9857AT61K43KVGFJKRCY260", "01M9857AT61K43KVGFJKRCY261"} {
		if got := res.EventAssignments[id]; got != "unassigned:01M9857AT61K43KVGFJKRCY260" {
			t.Errorf("event %s of the run that waited in vain is assigned %q, want apart with its run (the next episode opened %s)", id, got, opened)
		}
	}
}
