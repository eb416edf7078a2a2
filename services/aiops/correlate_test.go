package aiops

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/correlate"
	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/pkg/service"
	"github.com/aiops-dev/aiops/pkg/stage"
	"github.com/aiops-dev/aiops/pkg/stage/stagetest"
	"github.com/aiops-dev/aiops/services/correlator"
)

const replayCatalog = `services:
  web:         {team: storefront, depends_on: [checkout]}
  checkout:    {team: payments, depends_on: [payments-db]}
  payments-db: {team: dba, runbook: https://runbooks/pg}
  search:      {team: discovery}
`

// amLine is one Alertmanager webhook as a replay line.
func amLine(at string, alerts ...string) string {
	return `{"type":"alertmanager","time":"` + at + `","payload":{"version":"4","groupKey":"{}:{}","status":"firing","receiver":"aiops","groupLabels":{},"commonLabels":{},"commonAnnotations":{},"externalURL":"http://am","alerts":[` + strings.Join(alerts, ",") + `]}}`
}

func amAlert(fp, name, service, status, startsAt, endsAt string) string {
	return `{"status":"` + status + `","labels":{"alertname":"` + name + `","service":"` + service + `","severity":"critical"},"annotations":{"summary":"` + name + `"},"startsAt":"` + startsAt + `","endsAt":"` + endsAt + `","generatorURL":"http://prom","fingerprint":"` + fp + `"}`
}

var replayInput = strings.Join([]string{
	`{"type":"change","time":"2026-11-21T11:55:00Z","change":{"service":"checkout","kind":"deploy","version":"2.4.1","author":"ana","commit":"abc123","url":"https://ci/1"}}`,
	amLine("2026-11-21T12:00:05Z",
		amAlert("aaaa000000000001", "HighLatency", "web", "firing", "2026-11-21T12:00:00Z", "0001-01-01T00:00:00Z"),
		amAlert("aaaa000000000002", "HighErrorRate", "checkout", "firing", "2026-11-21T12:00:20Z", "0001-01-01T00:00:00Z")),
	amLine("2026-11-21T12:00:40Z",
		amAlert("aaaa000000000003", "ReplicationLag", "payments-db", "firing", "2026-11-21T12:00:35Z", "0001-01-01T00:00:00Z"),
		amAlert("bbbb000000000001", "HighLatency", "search", "firing", "2026-11-21T12:00:36Z", "0001-01-01T00:00:00Z")),
	`{"type":"event","event":{"kind":"anomaly","service":"checkout","time":"2026-11-21T12:00:10Z","labels":{"__name__":"latency_p99"},"body":{"series":"ffff000000000001","metric":"latency_p99","value":2.5,"expected":0.3,"lower":0,"upper":0.6,"score":0.97,"detector":"robust_z"}}}`,
	amLine("2026-11-21T12:10:00Z",
		amAlert("aaaa000000000001", "HighLatency", "web", "resolved", "2026-11-21T12:00:00Z", "2026-11-21T12:09:00Z"),
		amAlert("aaaa000000000002", "HighErrorRate", "checkout", "resolved", "2026-11-21T12:00:20Z", "2026-11-21T12:09:30Z"),
		amAlert("aaaa000000000003", "ReplicationLag", "payments-db", "resolved", "2026-11-21T12:00:35Z", "2026-11-21T12:09:40Z"),
		amAlert("bbbb000000000001", "HighLatency", "search", "resolved", "2026-11-21T12:00:36Z", "2026-11-21T12:05:00Z")),
}, "\n") + "\n"

func TestCorrelateReplay(t *testing.T) {
	dir := t.TempDir()
	in, cat, out := filepath.Join(dir, "events.jsonl"), filepath.Join(dir, "catalog.yaml"), filepath.Join(dir, "result.json")
	os.WriteFile(in, []byte(replayInput), 0o600)
	os.WriteFile(cat, []byte(replayCatalog), 0o600)
	var stderr bytes.Buffer
	if err := correlateMain(context.Background(), []string{"replay", "--input", in, "--catalog", cat, "--output", out}, &bytes.Buffer{}, &stderr); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	var res ReplayResult
	data, _ := os.ReadFile(out)
	if err := json.Unmarshal(data, &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Incidents) != 2 || len(res.Assignments) != 4 {
		t.Fatalf("%d incidents, %d assignments; want 2 and every one of the 4 alerts", len(res.Incidents), len(res.Assignments))
	}
	cascade := res.Assignments["aaaa000000000001"]
	if res.Assignments["aaaa000000000002"] != cascade || res.Assignments["aaaa000000000003"] != cascade || res.Assignments["bbbb000000000001"] == cascade {
		t.Fatalf("assignments %v: want the three cascade alerts together and search apart", res.Assignments)
	}
	for _, inc := range res.Incidents {
		if inc.ID != cascade {
			continue
		}
		if inc.Status != correlate.StatusResolved || inc.RootCauses[0].Service != "payments-db" || len(inc.Changes) != 1 ||
			inc.Changes[0].Version != "2.4.1" || len(inc.Anomalies) != 1 || inc.Team != "dba" {
			t.Fatalf("cascade incident %+v", inc)
		}
		// The timeline says why each service joined.
		var timeline []string
		for _, e := range inc.Timeline {
			timeline = append(timeline, e.What)
		}
		if !slices.Contains(timeline, "checkout joined with alert HighErrorRate: the root, web, depends on it: the cause showing after its symptoms") {
			t.Fatalf("cascade timeline %q: want why checkout joined", timeline)
		}
	}
	if !strings.Contains(stderr.String(), "5 lines, 4 alerts, 2 incidents") {
		t.Fatalf("progress %q", stderr.String())
	}
}

// --page draws a lane per incident, the earliest opened first, coloured
// by how it ended, with the changes linked; the picture is well-formed.
func TestCorrelateReplayDrawsItsIncidents(t *testing.T) {
	dir := t.TempDir()
	in, cat, page := filepath.Join(dir, "events.jsonl"), filepath.Join(dir, "catalog.yaml"), filepath.Join(dir, "incidents.html")
	os.WriteFile(in, []byte(replayInput), 0o600)
	os.WriteFile(cat, []byte(replayCatalog), 0o600)
	var stdout, stderr bytes.Buffer
	if err := correlateMain(context.Background(), []string{"replay", "--input", in, "--catalog", cat, "--page", page}, &stdout, &stderr); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	var res ReplayResult
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil || len(res.Incidents) != 2 {
		t.Fatalf("the result on standard output: %v, %d incidents; want 2", err, len(res.Incidents))
	}
	data, err := os.ReadFile(page)
	if err != nil {
		t.Fatal(err)
	}
	rects, changes, _ := pageSVG(t, string(data))
	if len(rects) != 2 || changes != 1 {
		t.Fatalf("%d lanes, %d changes drawn; want one lane per incident (2) and the linked change", len(rects), changes)
	}
	first := slices.MinFunc(res.Incidents, func(a, b ReplayIncident) int { return a.OpenedAt.Compare(b.OpenedAt) })
	if !strings.HasPrefix(rects[0].Title, first.ID+": ") {
		t.Errorf("first lane %q, want the earliest opened, %s", rects[0].Title, first.ID)
	}
	for i, r := range rects {
		inc := res.Incidents[slices.IndexFunc(res.Incidents, func(x ReplayIncident) bool { return strings.HasPrefix(r.Title, x.ID+": ") })]
		if want := map[string]string{correlate.StatusResolved: "#1f77b4", correlate.StatusOpen: "#d62728"}[inc.Status]; r.Fill != want {
			t.Errorf("lane %d (%s, %s) drawn %s, want %s", i, inc.ID, inc.Status, r.Fill, want)
		}
	}

	// A merged incident is grey up to its merge.
	res.Incidents = append(res.Incidents, ReplayIncident{ID: "m1", Title: "merged <one>", OpenedAt: first.OpenedAt.Add(time.Second),
		ResolvedAt: first.OpenedAt.Add(time.Minute), MergedInto: first.ID, Status: correlate.StatusResolved})
	var buf bytes.Buffer
	if err := writeReplayPage(&buf, &res); err != nil {
		t.Fatal(err)
	}
	rects, _, _ = pageSVG(t, buf.String())
	if len(rects) != 3 || rects[1].Fill != "#999" || !strings.Contains(rects[1].Title, "merged into "+first.ID) || strings.Contains(buf.String(), "<one>") {
		t.Errorf("lanes %+v: want the merged one second, grey, saying into what, its title escaped", rects)
	}

	if err := correlateMain(context.Background(), []string{"replay", "--input", in, "--page", "-"}, &stdout, &stderr); err == nil || !strings.Contains(err.Error(), "--page: a file") {
		t.Errorf("--page -: %v, want it refused", err)
	}
}

// Storms made by other tools than Alertmanager: payloads without a
// version, alerts without a status or a fingerprint, fingerprints of the
// producer's own form. The assignments are keyed by the fingerprint as
// sent, or by the one Alertmanager would have given.
func TestCorrelateReplayOfOtherToolsPayloads(t *testing.T) {
	catalog, err := correlate.ParseCatalog([]byte(replayCatalog))
	if err != nil {
		t.Fatal(err)
	}
	input := strings.Join([]string{
		`{"type":"alertmanager","time":"2026-11-21T12:00:05Z","payload":{"status":"firing","alerts":[` +
			`{"labels":{"alertname":"ReplicationLag","service":"payments-db"},"startsAt":"2026-11-21T12:00:00Z","fingerprint":"storm-1/alert-1"},` +
			`{"labels":{"alertname":"HighErrorRate","service":"checkout"},"startsAt":"2026-11-21T12:00:30Z","fingerprint":"storm-1/alert-2"}]}}`,
		`{"type":"alertmanager","time":"2026-11-21T12:01:05Z","payload":{"alerts":[` +
			`{"status":"firing","labels":{"alertname":"HighLatency","service":"web"},"startsAt":"2026-11-21T12:01:00Z"}]}}`,
		`{"type":"alertmanager","time":"2026-11-21T12:10:05Z","payload":{"status":"resolved","alerts":[` +
			`{"labels":{"alertname":"ReplicationLag","service":"payments-db"},"startsAt":"2026-11-21T12:00:00Z","endsAt":"2026-11-21T12:10:00Z","fingerprint":"storm-1/alert-1"}]}}`,
	}, "\n")
	res, err := Replay(context.Background(), strings.NewReader(input), correlate.DefaultConfig(), catalog, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	web := event.AlertmanagerFingerprint(map[string]string{"alertname": "HighLatency", "service": "web"})
	id := res.Assignments["storm-1/alert-1"]
	if len(res.Assignments) != 3 || id == "" || res.Assignments["storm-1/alert-2"] != id || res.Assignments[web] != id {
		t.Fatalf("assignments %v: want storm-1/alert-1, storm-1/alert-2 and %s in one incident", res.Assignments, web)
	}
}

// Changes of any kind word link to the incident they may have caused: a
// tool's word for a deploy ("rollout") is a deploy, a kind of the
// producer's own is "other" with the word in its labels; the change's
// time may be in "change" instead of on the line.
func TestCorrelateReplayChangeKinds(t *testing.T) {
	catalog, err := correlate.ParseCatalog([]byte(replayCatalog))
	if err != nil {
		t.Fatal(err)
	}
	for kind, want := range map[string]string{"rollout": "deploy", "canary-shift": "other", "": "deploy"} {
		input := `{"type":"change","change":{"service":"payments-db","kind":"` + kind + `","version":"16.2","time":"2026-11-21T11:50:00Z"}}` + "\n" +
			amLine("2026-11-21T12:00:05Z", amAlert("aaaa000000000003", "ReplicationLag", "payments-db", "firing", "2026-11-21T12:00:00Z", "0001-01-01T00:00:00Z"))
		res, err := Replay(context.Background(), strings.NewReader(input), correlate.DefaultConfig(), catalog, &bytes.Buffer{})
		if err != nil {
			t.Fatal(err)
		}
		if res.RejectedLines != 0 || len(res.Incidents) != 1 || len(res.Incidents[0].Changes) != 1 || res.Incidents[0].Changes[0].Type != want ||
			!res.Incidents[0].Changes[0].Time.Equal(time.Date(2026, 11, 21, 11, 50, 0, 0, time.UTC)) {
			t.Errorf("kind %q: rejected %v, incidents %+v; want one with a %s change linked", kind, res.Rejected, res.Incidents, want)
		}
	}
}

// An alert without startsAt (or endsAt, resolved) is timed at its line's
// time, else at the latest event time before it, so a replay is the same
// every time; the first line without either is rejected.
func TestCorrelateReplayTimesAlertsWithoutTimes(t *testing.T) {
	catalog, err := correlate.ParseCatalog([]byte(replayCatalog))
	if err != nil {
		t.Fatal(err)
	}
	input := strings.Join([]string{
		`{"type":"alertmanager","payload":{"alerts":[{"status":"firing","labels":{"alertname":"Early","service":"search"},"fingerprint":"f0"}]}}`,
		`{"type":"alertmanager","time":"2026-11-21T12:00:05Z","payload":{"alerts":[{"status":"firing","labels":{"alertname":"ReplicationLag","service":"payments-db"},"startsAt":"2026-11-21T12:00:00Z","fingerprint":"f1"}]}}`,
		`{"type":"alertmanager","payload":{"alerts":[{"status":"firing","labels":{"alertname":"HighErrorRate","service":"checkout"},"fingerprint":"f2"}]}}`,
		`{"type":"alertmanager","time":"2026-11-21T12:10:05Z","payload":{"alerts":[{"status":"resolved","labels":{"alertname":"ReplicationLag","service":"payments-db"},"startsAt":"2026-11-21T12:00:00Z","fingerprint":"f1"}]}}`,
	}, "\n")
	var outs [2][]byte
	for i := range outs {
		res, err := Replay(context.Background(), strings.NewReader(input), correlate.DefaultConfig(), catalog, &bytes.Buffer{})
		if err != nil {
			t.Fatal(err)
		}
		if res.RejectedLines != 1 || res.Rejected[0].Line != 1 || !strings.Contains(res.Rejected[0].Problem, `"startsAt": is required`) {
			t.Fatalf("rejected %v, want line 1 (no time anywhere)", res.Rejected)
		}
		if res.Assignments["f1"] == "" || res.Assignments["f2"] != res.Assignments["f1"] {
			t.Fatalf("assignments %v: want checkout's alert, timed at 12:00, with payments-db's", res.Assignments)
		}
		outs[i], _ = json.Marshal(res)
	}
	if !bytes.Equal(outs[0], outs[1]) {
		t.Fatalf("two replays of one input differ:\n%s\n%s", outs[0], outs[1])
	}
}

// Changes written after the alerts (a generator that appends its deploys
// at the end) are linked as when written before them: a replay in file
// order met them after their incidents had ended, and linked none.
func TestCorrelateReplayLinksChangesWrittenLast(t *testing.T) {
	catalog, err := correlate.ParseCatalog([]byte(replayCatalog))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(replayInput), "\n")
	// The storm's alerts, an alert two hours later, then the deploy.
	changesLast := append(lines[1:], amLine("2026-11-21T14:00:05Z", amAlert("bbbb000000000002", "DiskFull", "search", "firing", "2026-11-21T14:00:00Z", "0001-01-01T00:00:00Z")), lines[0])
	res, err := Replay(context.Background(), strings.NewReader(strings.Join(changesLast, "\n")), correlate.DefaultConfig(), catalog, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	cascade := res.Assignments["aaaa000000000001"]
	for _, inc := range res.Incidents {
		if inc.ID == cascade && (len(inc.Changes) != 1 || inc.Changes[0].Version != "2.4.1") {
			t.Errorf("cascade incident's changes %+v: want checkout's deploy 2.4.1", inc.Changes)
		}
	}
}

// A "time" given empty (or null) is none, as an empty startsAt is: the
// line's alerts are timed by their own times.
func TestCorrelateReplayTakesAnEmptyTimeAsNone(t *testing.T) {
	input := strings.Join([]string{
		`{"type":"alertmanager","time":"","payload":{"alerts":[{"status":"firing","labels":{"alertname":"HighLatency","service":"web"},"startsAt":"2026-11-21T12:00:00Z","fingerprint":"f1"}]}}`,
		`{"type":"change","time":null,"change":{"service":"web","kind":"deploy","time":"2026-11-21T11:59:00Z"}}`,
	}, "\n")
	res, err := Replay(context.Background(), strings.NewReader(input), correlate.DefaultConfig(), nil, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if res.RejectedLines != 0 || res.Assignments["f1"] == "" || len(res.Incidents) != 1 || !res.Incidents[0].OpenedAt.Equal(time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)) {
		t.Fatalf("rejected %v, assignments %v, incidents %+v: want f1's incident opened at its startsAt", res.Rejected, res.Assignments, res.Incidents)
	}
}

// History from long ago, in webhook lines without a time of their own
// (a change needs one, on its line or in it), groups as it did when it
// happened: the gateway's window around its clock (events
// older than 13 days refused or re-timed) does not apply offline.
func TestCorrelateReplayOfOldHistoryWithoutLineTimes(t *testing.T) {
	catalog, err := correlate.ParseCatalog([]byte(replayCatalog))
	if err != nil {
		t.Fatal(err)
	}
	now, err := Replay(context.Background(), strings.NewReader(replayInput), correlate.DefaultConfig(), catalog, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	old := regexp.MustCompile(`(?m)^(\{"type":"alertmanager",)"time":"[^"]*",`).ReplaceAllString(strings.ReplaceAll(replayInput, "2026-11-21", "2019-03-04"), "$1")
	then, err := Replay(context.Background(), strings.NewReader(old), correlate.DefaultConfig(), catalog, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if then.RejectedLines != 0 || len(then.Incidents) != len(now.Incidents) || len(then.Assignments) != 4 {
		t.Fatalf("old history: %d rejected (%v), %d incidents, %d assignments; as new: %d incidents", then.RejectedLines, then.Rejected, len(then.Incidents), len(then.Assignments), len(now.Incidents))
	}
	for fp := range now.Assignments {
		for other := range now.Assignments {
			if (now.Assignments[fp] == now.Assignments[other]) != (then.Assignments[fp] == then.Assignments[other]) {
				t.Errorf("%s and %s: together %v as new, %v as old history", fp, other, now.Assignments[fp] == now.Assignments[other], then.Assignments[fp] == then.Assignments[other])
			}
		}
	}
	for _, inc := range then.Incidents {
		if inc.OpenedAt.Year() != 2019 || inc.Status != correlate.StatusResolved {
			t.Errorf("incident %s opened %s, %s: want it at its own time, resolved", inc.ID, inc.OpenedAt, inc.Status)
		}
	}
}

// An incident merged into another (symptoms that alerted before their
// cause) leaves its alerts to that one in the replay's assignments, and
// says where it went.
func TestCorrelateReplayFollowsMerges(t *testing.T) {
	catalog, err := correlate.ParseCatalog([]byte(`services: {api-a: {depends_on: [db]}, api-b: {depends_on: [db]}, db: {}}`))
	if err != nil {
		t.Fatal(err)
	}
	input := strings.Join([]string{
		amLine("2026-11-21T12:00:05Z", amAlert("cccc000000000001", "HighLatency", "api-a", "firing", "2026-11-21T12:00:00Z", "0001-01-01T00:00:00Z")),
		amLine("2026-11-21T12:00:35Z", amAlert("cccc000000000002", "HighLatency", "api-b", "firing", "2026-11-21T12:00:30Z", "0001-01-01T00:00:00Z")),
		amLine("2026-11-21T12:01:05Z", amAlert("cccc000000000003", "ReplicationLag", "db", "firing", "2026-11-21T12:01:00Z", "0001-01-01T00:00:00Z")),
	}, "\n")
	res, err := Replay(context.Background(), strings.NewReader(input), correlate.DefaultConfig(), catalog, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	into := res.Assignments["cccc000000000003"]
	if res.Assignments["cccc000000000001"] != into || res.Assignments["cccc000000000002"] != into {
		t.Fatalf("assignments %v: want the three alerts in one incident", res.Assignments)
	}
	var merged int
	for _, inc := range res.Incidents {
		switch {
		case inc.ID == into && len(inc.Alerts) != 3:
			t.Errorf("incident %s lists alerts %v, want all three", inc.ID, inc.Alerts)
		case inc.ID != into && (inc.MergedInto != into || len(inc.Alerts) != 0 || inc.Status != correlate.StatusResolved):
			t.Errorf("incident %+v: want it resolved, merged into %s, without alerts", inc, into)
		case inc.ID != into:
			merged++
		}
	}
	if merged != 1 || res.Stats.Merged != 1 {
		t.Errorf("%d merged incidents in the output, stats %+v; want 1", merged, res.Stats)
	}
}

// The same input through the live service's processor (on the stage
// runtime) and through the replay gives the same incidents.
func TestReplayAndLiveAgree(t *testing.T) {
	cat := filepath.Join(t.TempDir(), "catalog.yaml")
	os.WriteFile(cat, []byte(replayCatalog), 0o600)
	catalog, err := correlate.ReadCatalog(cat)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Replay(context.Background(), strings.NewReader(replayInput), correlate.DefaultConfig(), catalog, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	// The live clock stands after the input, as it would: an event or
	// observed time over an hour ahead of it is not taken as it is.
	wall := time.Date(2026, 11, 21, 13, 0, 0, 0, time.UTC)
	proc, err := correlator.NewProcessor(correlator.Config{Catalog: cat}, zerolog.Nop(), func() time.Time { return wall })
	if err != nil {
		t.Fatal(err)
	}
	h := stagetest.Start(t, proc, stage.Config{TickEvery: time.Hour})
	for i, line := range strings.Split(strings.TrimSpace(replayInput), "\n") {
		envs, err := lineEvents([]byte(line), time.Time{})
		if err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
		for _, r := range h.Feed(envs...) {
			if r.Outcome != stagetest.Acked {
				t.Fatalf("line %d: %v %v", i+1, r.Outcome, r.Err)
			}
		}
	}
	live := map[string]string{}
	for _, inc := range proc.Incidents() {
		for _, m := range inc.Members {
			if m.Kind == correlate.SignalAlert {
				live[m.Fingerprint] = inc.IncidentID
			}
		}
	}
	if len(live) != len(res.Assignments) {
		t.Fatalf("live assigned %d alerts, replay %d", len(live), len(res.Assignments))
	}
	for fp, id := range res.Assignments {
		if live[fp] != id {
			t.Fatalf("alert %s: live incident %s, replay %s", fp, live[fp], id)
		}
	}
}

// Generated storms (a tuning seed of each of the two newest generators:
// probes the catalog cannot place, members muted by inhibition and first
// seen resolved, slow alerts, SLO burns) give the same incidents through
// the live service's processor as through the replay.
func TestReplayAndLiveAgreeOnGeneratedStorms(t *testing.T) {
	if testing.Short() {
		t.Skip("two storms of six hours")
	}
	for name, s := range map[string]blindStorm{"wordgen 1": wordgenStorm(1), "issuegen 1": issuegenStorm(1)} {
		cat := filepath.Join(t.TempDir(), "catalog.yaml")
		os.WriteFile(cat, s.catalog, 0o600)
		catalog, err := correlate.ReadCatalog(cat)
		if err != nil {
			t.Fatal(err)
		}
		input := bytes.Join(s.lines, []byte("\n"))
		res, err := Replay(context.Background(), bytes.NewReader(input), correlate.DefaultConfig(), catalog, &bytes.Buffer{})
		if err != nil {
			t.Fatal(err)
		}
		var last time.Time
		var envs [][]*event.Envelope
		for i, line := range s.lines {
			e, err := lineEvents(line, last)
			if err != nil {
				t.Fatalf("%s line %d: %v", name, i+1, err)
			}
			for _, env := range e {
				if env.Time.After(last) {
					last = env.Time
				}
			}
			envs = append(envs, e)
		}
		wall := last.Add(time.Minute)
		proc, err := correlator.NewProcessor(correlator.Config{Catalog: cat}, zerolog.Nop(), func() time.Time { return wall })
		if err != nil {
			t.Fatal(err)
		}
		h := stagetest.Start(t, proc, stage.Config{TickEvery: time.Hour})
		for i, e := range envs {
			for _, r := range h.Feed(e...) {
				if r.Outcome != stagetest.Acked {
					t.Fatalf("%s line %d: %v %v", name, i+1, r.Outcome, r.Err)
				}
			}
		}
		// What the live service told: its incident events, in order (it
		// forgets an incident some time after it resolved), the latest
		// listing an alert places it, and a merge moves it on.
		live, mergedInto := map[string]string{}, map[string]string{}
		for _, e := range h.Pub.Events(t) {
			var st correlate.State
			if e.Kind != event.KindIncident {
				continue
			}
			if err := e.DecodeBody(&st); err != nil {
				t.Fatal(err)
			}
			if st.MemberCount > len(st.Members) {
				t.Fatalf("%s: incident %s lists %d of %d members", name, st.IncidentID, len(st.Members), st.MemberCount)
			}
			for _, m := range st.Members {
				if m.Kind == correlate.SignalAlert {
					live[m.Fingerprint] = st.IncidentID
				}
			}
			if st.MergedInto != "" {
				mergedInto[st.IncidentID] = st.MergedInto
			}
		}
		for fp, id := range live {
			for hops := 0; mergedInto[id] != "" && hops <= len(mergedInto); hops++ {
				id = mergedInto[id]
			}
			live[fp] = id
		}
		var joined int
		for fp, id := range res.Assignments {
			if strings.HasPrefix(id, "unassigned:") {
				if live[fp] != "" {
					t.Errorf("%s: alert %s: live incident %s, replay none", name, fp, live[fp])
				}
				continue
			}
			joined++
			if live[fp] != id {
				t.Errorf("%s: alert %s: live incident %q, replay %s", name, fp, live[fp], id)
			}
		}
		if len(live) != joined || joined == 0 {
			t.Errorf("%s: live assigned %d alerts, replay %d", name, len(live), joined)
		}
	}
}

// A line that cannot be read is told with its number and why, and the
// rest of the input goes on (a webhook's good alerts too); --strict makes
// it an error.
func TestCorrelateReplayErrors(t *testing.T) {
	dir := t.TempDir()
	good := amLine("2026-11-21T12:00:05Z", amAlert("aaaa000000000001", "HighLatency", "web", "firing", "2026-11-21T12:00:00Z", "0001-01-01T00:00:00Z"))
	for _, c := range []struct{ input, want string }{
		{`{"type":"pager"}`, `line 1 rejected: type "pager": want alertmanager, change or event`},
		{"\n" + `{"type":"alertmanager","time":"2026-11-21T12:00:00Z"}`, `line 2 rejected: type alertmanager: "payload" is required`},
		{`{"type":"event","event":{"kind":"alert","service":"x","time":"2026-11-21T12:00:00Z","body":{"status":"firing"}}}`, "line 1 rejected: event:"},
		{`not json`, "line 1 rejected: not a JSON object"},
		// A time that is not RFC 3339 is named by its field.
		{`{"type":"change","time":"21/11/2026 11:00:00","change":{"service":"web","kind":"deploy"}}`, `line 1 rejected: field "time": is not an RFC 3339 time: "21/11/2026 11:00:00"`},
		{`{"type":"change","change":{"service":"web","kind":"deploy","time":"yesterday"}}`, `line 1 rejected: field "change.time": is not an RFC 3339 time: "yesterday"`},
		// A line over the bound is one line rejected, not the end; a
		// line of blanks is an empty one.
		{"  \t \n" + `{"type":"change","time":"2026-11-21T11:00:00Z","change":{"service":"web","kind":"deploy","version":"` + strings.Repeat("v", MaxReplayLine) + `"}}`,
			fmt.Sprintf("line 2 rejected: longer than %d bytes: skipped", MaxReplayLine)},
		{amLine("2026-11-21T12:00:05Z", `{"status":"firing","labels":{},"startsAt":"2026-11-21T12:00:00Z","fingerprint":"bbbb000000000001"}`,
			amAlert("aaaa000000000002", "HighErrorRate", "web", "firing", "2026-11-21T12:00:00Z", "0001-01-01T00:00:00Z")),
			`line 1 rejected: alertmanager payload: invalid input: item 0: field "labels": is empty`},
	} {
		in, out := filepath.Join(dir, "in.jsonl"), filepath.Join(dir, "out.json")
		os.WriteFile(in, []byte(c.input+"\n"+good+"\n"), 0o600)
		var stderr bytes.Buffer
		if err := correlateMain(context.Background(), []string{"replay", "--input", in, "--output", out}, &bytes.Buffer{}, &stderr); err != nil {
			t.Fatalf("%q: %v", c.input, err)
		}
		if !strings.Contains(stderr.String(), c.want) || !strings.Contains(stderr.String(), "rejected lines: 1 (1 told above)") {
			t.Errorf("%q: stderr %q, want %q", c.input, stderr.String(), c.want)
		}
		var res ReplayResult
		data, _ := os.ReadFile(out)
		if err := json.Unmarshal(data, &res); err != nil || res.RejectedLines != 1 || res.Assignments["aaaa000000000001"] == "" {
			t.Errorf("%q: %v, result %s: want one rejected line and the good alert after it", c.input, err, data)
		}
		if strings.Contains(c.input, "aaaa000000000002") && res.Assignments["aaaa000000000002"] == "" {
			t.Errorf("the good alert of a webhook with a bad one was lost: %v", res.Assignments)
		}
		err := correlateMain(context.Background(), []string{"replay", "--strict", "--input", in, "--output", out}, &bytes.Buffer{}, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), "--strict: rejected lines: 1, the first: line ") {
			t.Errorf("%q with --strict: %v", c.input, err)
		}
	}
	err := correlateMain(context.Background(), []string{"replay"}, &bytes.Buffer{}, &bytes.Buffer{})
	if service.ExitCode(err) != 2 {
		t.Fatalf("no --input: %v (exit %d), want a usage error", err, service.ExitCode(err))
	}
	// A service named only as a dependency is taken, and told.
	in, cat := filepath.Join(dir, "in.jsonl"), filepath.Join(dir, "catalog.yaml")
	os.WriteFile(in, []byte(replayInput), 0o600)
	os.WriteFile(cat, []byte("services:\n  web: {depends_on: [serch]}\n"), 0o600)
	var stderr bytes.Buffer
	if err := correlateMain(context.Background(), []string{"replay", "--input", in, "--catalog", cat}, &bytes.Buffer{}, &stderr); err != nil ||
		!strings.Contains(stderr.String(), `services: "serch" is named only in depends_on: taken as a service without owner or declared dependencies (declare it, or check the name for a typo)`) {
		t.Fatalf("undeclared dependency: %v, stderr %q", err, stderr.String())
	}
	// A dependency closing a cycle is dropped, and told.
	os.WriteFile(cat, []byte("services:\n  web: {depends_on: [search]}\n  search: {depends_on: [web]}\n"), 0o600)
	stderr.Reset()
	if err := correlateMain(context.Background(), []string{"replay", "--input", in, "--catalog", cat}, &bytes.Buffer{}, &stderr); err != nil ||
		!strings.Contains(stderr.String(), `services.web.depends_on[0]: "search" closes the dependency cycle search -> web -> search: ignored`) {
		t.Fatalf("a cycle: %v, stderr %q", err, stderr.String())
	}
}

// A line of exactly the bound is read whole, whatever ends it (\n, \r\n,
// nothing); one byte more is too long.
func TestBoundedLinesAtTheLimit(t *testing.T) {
	for _, c := range []struct {
		in      string
		tooLong bool
	}{
		{"0123456789\n", false}, {"0123456789\r\n", false}, {"0123456789", false}, {"0123456789a\r\n", true},
	} {
		l := newBoundedLines(strings.NewReader(c.in), 10)
		line, tooLong, err := l.next()
		if err != nil || tooLong != c.tooLong || (!tooLong && string(line) != "0123456789") {
			t.Errorf("%q: %q, too long %v, %v", c.in, line, tooLong, err)
		}
		if _, _, err := l.next(); err != io.EOF {
			t.Errorf("%q: after the line %v, want io.EOF", c.in, err)
		}
	}
}

// An alert that fires again after its incident resolved and was
// forgotten opens another incident; the first one must still list it
// (its member), and an incident of anomalies alone lists its alerts as
// an empty list, not null.
func TestCorrelateReplayListsEveryIncidentsAlerts(t *testing.T) {
	input := strings.Join([]string{
		amLine("2026-11-21T10:00:05Z", amAlert("f1", "HighLatency", "web", "firing", "2026-11-21T10:00:00Z", "0001-01-01T00:00:00Z")),
		amLine("2026-11-21T10:05:05Z", amAlert("f1", "HighLatency", "web", "resolved", "2026-11-21T10:00:00Z", "2026-11-21T10:05:00Z")),
		amLine("2026-11-21T14:00:05Z", amAlert("f1", "HighLatency", "web", "firing", "2026-11-21T14:00:00Z", "0001-01-01T00:00:00Z")),
		`{"type":"event","event":{"kind":"anomaly","service":"search","time":"2026-11-21T18:00:10Z","body":{"series":"ffff000000000009","metric":"latency_p99","value":2.5,"score":0.97,"detector":"robust_z"}}}`,
	}, "\n")
	cfg := correlate.DefaultConfig()
	cfg.LoneAnomalies = correlate.Flag(true) // the anomaly opens its own incident
	res, err := Replay(context.Background(), strings.NewReader(input), cfg, nil, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Incidents) != 3 || res.RejectedLines != 0 {
		t.Fatalf("%d incidents, rejected %v: want 3 (two of f1, one of the anomaly)", len(res.Incidents), res.Rejected)
	}
	for _, inc := range res.Incidents[:2] {
		if len(inc.Alerts) != 1 || inc.Alerts[0] != "f1" {
			t.Errorf("incident %s (opened %s, %d members) lists alerts %v, want [f1]", inc.ID, inc.OpenedAt, inc.Members, inc.Alerts)
		}
	}
	if res.Assignments["f1"] != res.Incidents[1].ID {
		t.Errorf("f1 assigned to %s, want its latest incident %s", res.Assignments["f1"], res.Incidents[1].ID)
	}
	data, _ := json.Marshal(res.Incidents[2])
	if !strings.Contains(string(data), `"alerts":[]`) {
		t.Errorf("an incident without alerts is %s: want \"alerts\":[]", data)
	}
}

// An incident's anomalies list every series that joined it, also past
// max_members, which bounds only the members an incident holds.
func TestCorrelateReplayListsAnomaliesPastMaxMembers(t *testing.T) {
	var lines []string
	for i := range 5 {
		lines = append(lines, fmt.Sprintf(`{"type":"event","event":{"kind":"anomaly","service":"search","time":"2026-11-21T18:00:%02dZ","body":{"series":"ffff00000000000%d","metric":"latency_p99","value":2.5,"score":0.97,"detector":"robust_z"}}}`, 10+i, i))
	}
	cfg := correlate.DefaultConfig()
	cfg.MaxMembers = 2
	cfg.LoneAnomalies = correlate.Flag(true) // one series of a service opens the incident the others join
	res, err := Replay(context.Background(), strings.NewReader(strings.Join(lines, "\n")), cfg, nil, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Incidents) != 1 || res.RejectedLines != 0 {
		t.Fatalf("%d incidents, rejected %v: want 1", len(res.Incidents), res.Rejected)
	}
	if got := res.Incidents[0].Anomalies; len(got) != 5 {
		t.Errorf("anomalies %v (%d members held): want all 5 series", got, res.Incidents[0].Members)
	}
}

// A change's own time (in "change") is when it happened; the line's time
// is when the line was sent, taken only when the change has none.
func TestCorrelateReplayChangeKeepsItsOwnTime(t *testing.T) {
	catalog, err := correlate.ParseCatalog([]byte(replayCatalog))
	if err != nil {
		t.Fatal(err)
	}
	input := `{"type":"change","time":"2026-11-21T12:30:00Z","change":{"service":"payments-db","kind":"deploy","version":"16.2","time":"2026-11-21T11:50:00Z"}}` + "\n" +
		amLine("2026-11-21T12:00:05Z", amAlert("aaaa000000000003", "ReplicationLag", "payments-db", "firing", "2026-11-21T12:00:00Z", "0001-01-01T00:00:00Z"))
	res, err := Replay(context.Background(), strings.NewReader(input), correlate.DefaultConfig(), catalog, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Incidents) != 1 || len(res.Incidents[0].Changes) != 1 || !res.Incidents[0].Changes[0].Time.Equal(time.Date(2026, 11, 21, 11, 50, 0, 0, time.UTC)) {
		t.Fatalf("incidents %+v: want one with the deploy of 11:50 linked", res.Incidents)
	}
}

// What the command line names is checked before the replay: an output
// that cannot be written, an input that is a folder, an argument that is
// not a flag (after which the flag package stops reading flags) are
// usage errors (exit 2), and the replay does not run.
func TestCorrelateReplayRefusesUnusableCommandLines(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in.jsonl")
	os.WriteFile(in, []byte(replayInput), 0o600)
	for name, args := range map[string][]string{
		"output in a missing folder": {"replay", "--input", in, "--output", filepath.Join(dir, "no", "out.json")},
		"output a folder":            {"replay", "--input", in, "--output", dir},
		"input a folder":             {"replay", "--input", dir},
		"a stray argument":           {"replay", "--input", in, "out.json"},
		"flags after a stray word":   {"replay", "--input", in, "--strict", "false", "--catalog", filepath.Join(dir, "nope.yaml")},
	} {
		var stdout, stderr bytes.Buffer
		err := correlateMain(context.Background(), args, &stdout, &stderr)
		if service.ExitCode(err) != 2 {
			t.Errorf("%s: %v (exit %d), want a usage error", name, err, service.ExitCode(err))
		}
		if strings.Contains(stderr.String(), "lines,") || stdout.Len() > 0 {
			t.Errorf("%s: the replay ran: %q, %d bytes out", name, stderr.String(), stdout.Len())
		}
	}
}

// A file saved with a byte order mark, or compressed with gzip (a rotated
// log, an exported archive), replays as the plain file does.
func TestCorrelateReplayReadsBOMAndGzip(t *testing.T) {
	dir := t.TempDir()
	plain := filepath.Join(dir, "plain.jsonl")
	os.WriteFile(plain, []byte(replayInput), 0o600)
	bom, gz := bomAndGzip(t, dir, "in.jsonl", replayInput)
	var want []byte
	for _, in := range []string{plain, bom, gz} {
		var stdout, stderr bytes.Buffer
		if err := correlateMain(context.Background(), []string{"replay", "--input", in}, &stdout, &stderr); err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		if strings.Contains(stderr.String(), "rejected") {
			t.Errorf("%s: %s", in, stderr.String())
		}
		if want == nil {
			want = stdout.Bytes()
		} else if !bytes.Equal(stdout.Bytes(), want) {
			t.Errorf("%s: result differs from the plain file's", in)
		}
	}
}

// bomAndGzip writes text under dir as name with a UTF-8 byte order mark,
// and as name.gz compressed with gzip, and returns the two paths.
func bomAndGzip(t *testing.T, dir, name, text string) (bom, gz string) {
	t.Helper()
	bom, gz = filepath.Join(dir, "bom-"+name), filepath.Join(dir, name+".gz")
	var zb bytes.Buffer
	zw := gzip.NewWriter(&zb)
	zw.Write([]byte(text))
	zw.Close()
	if err := errors.Join(os.WriteFile(bom, []byte("\xef\xbb\xbf"+text), 0o600), os.WriteFile(gz, zb.Bytes(), 0o600)); err != nil {
		t.Fatal(err)
	}
	return bom, gz
}

// The replay's summary line counts in the singular when there is one:
// "1 incidents" read as a slip.
func TestCorrelateReplaySummaryCountsOne(t *testing.T) {
	input := amLine("2026-11-21T12:00:05Z", amAlert("aaaa000000000001", "HighLatency", "web", "firing", "2026-11-21T12:00:00Z", "0001-01-01T00:00:00Z")) + "\n"
	var progress bytes.Buffer
	res, err := Replay(context.Background(), strings.NewReader(input), correlate.DefaultConfig(), nil, &progress)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Incidents) != 1 {
		t.Fatalf("%d incidents, want 1", len(res.Incidents))
	}
	if !regexp.MustCompile(`correlate replay: 1 line, 1 alert, 1 incident in `).MatchString(progress.String()) {
		t.Fatalf("progress %q: want 1 line, 1 alert, 1 incident", progress.String())
	}
	progress.Reset()
	if _, err := Replay(context.Background(), strings.NewReader(replayInput), correlate.DefaultConfig(), nil, &progress); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(progress.String(), "correlate replay: 5 lines, 4 alerts, ") {
		t.Fatalf("progress %q: want 5 lines, 4 alerts", progress.String())
	}
}

// A generator that writes each alert's webhooks in turn (one alert's
// firing and resolve, then the next alert's) goes back in time at each
// turn. The lines' times tell the order they were sent, and the replay
// takes them in it: the same incidents as from the file in time order.
// In file order, checkout's alert came after web's incident had resolved
// and opened one of its own.
func TestCorrelateReplayPutsLinesInTimeOrder(t *testing.T) {
	catalog, err := correlate.ParseCatalog([]byte(replayCatalog))
	if err != nil {
		t.Fatal(err)
	}
	const zero = "0001-01-01T00:00:00Z"
	perAlert := []string{
		amLine("2026-11-21T12:10:04Z", amAlert("f1", "ThreadPoolExhausted", "web", "firing", "2026-11-21T12:06:34Z", zero)),
		// Without a time of its own, a line keeps its place after the
		// one before it; its alert is timed at the latest time then.
		`{"type":"alertmanager","payload":{"alerts":[{"status":"firing","labels":{"alertname":"IndexStale","service":"search"},"fingerprint":"f3"}]}}`,
		amLine("2026-11-21T12:20:04Z", amAlert("f1", "ThreadPoolExhausted", "web", "resolved", "2026-11-21T12:06:34Z", "2026-11-21T12:19:27Z")),
		amLine("2026-11-21T12:22:31Z", amAlert("f1", "ThreadPoolExhausted", "web", "firing", "2026-11-21T12:19:01Z", zero)),
		amLine("2026-11-21T12:37:31Z", amAlert("f1", "ThreadPoolExhausted", "web", "resolved", "2026-11-21T12:19:01Z", "2026-11-21T12:35:25Z")),
		amLine("2026-11-21T12:10:12Z", amAlert("f2", "CircuitBreakerOpen", "checkout", "firing", "2026-11-21T12:08:42Z", zero)),
		amLine("2026-11-21T12:40:12Z", amAlert("f2", "CircuitBreakerOpen", "checkout", "resolved", "2026-11-21T12:08:42Z", "2026-11-21T12:36:20Z")),
		`{"type":"nonsense"}`,
	}
	inOrder := []string{perAlert[0], perAlert[1], perAlert[5], perAlert[2], perAlert[3], perAlert[4], perAlert[6], perAlert[7]}
	var results [2]*ReplayResult
	for i, lines := range [][]string{perAlert, inOrder} {
		var progress bytes.Buffer
		if results[i], err = Replay(context.Background(), strings.NewReader(strings.Join(lines, "\n")), correlate.DefaultConfig(), catalog, &progress); err != nil {
			t.Fatal(err)
		}
		if i == 0 && !strings.Contains(progress.String(), "correlate replay: 1 line out of time order: replayed in the order of their times") {
			t.Errorf("progress %q: want the lines out of order told", progress.String())
		}
	}
	got, want := results[0], results[1]
	if len(want.Incidents) != 2 || want.Assignments["f1"] != want.Assignments["f2"] || !want.Incidents[0].OpenedAt.Equal(want.Incidents[1].OpenedAt) {
		t.Fatalf("in time order: %d incidents, assignments %v: want f1 and f2 in one, f3 in another opened with it", len(want.Incidents), want.Assignments)
	}
	if !maps.Equal(got.Assignments, want.Assignments) || len(got.Incidents) != len(want.Incidents) {
		t.Errorf("a line per alert in turn: assignments %v (%d incidents); in time order %v (%d)", got.Assignments, len(got.Incidents), want.Assignments, len(want.Incidents))
	}
	// A line is told by its number in the input, whatever its turn.
	if got.RejectedLines != 1 || got.Rejected[0].Line != 8 || got.Lines != 8 {
		t.Errorf("rejected %v of %d lines: want line 8 of 8", got.Rejected, got.Lines)
	}
}

// Past spoolInMemory bytes the lines wait for their turn in a temporary
// file, not in memory: the replay is the same, out of order lines and
// rejected ones included, and the file leaves nothing behind, while the
// replay runs (killed, it could not clean up), once it ends, or fails.
func TestCorrelateReplaySpoolsLinesToDisk(t *testing.T) {
	s := issuegenStorm(1)
	catalog, err := correlate.ParseCatalog(s.catalog)
	if err != nil {
		t.Fatal(err)
	}
	lines := slices.Clone(s.lines)
	slices.Reverse(lines[len(lines)/2:]) // half of them out of time order
	lines = append(lines, []byte(`{"type":"nonsense"}`))
	input := bytes.Join(lines, []byte("\n"))
	was := spoolInMemory
	t.Cleanup(func() { spoolInMemory = was })
	replayWith := func(inMemory int64) (*ReplayResult, []byte) {
		t.Helper()
		tmp := t.TempDir()
		t.Setenv("TMPDIR", tmp)
		spoolInMemory = inMemory
		res, err := Replay(context.Background(), bytes.NewReader(input), correlate.DefaultConfig(), catalog, &bytes.Buffer{})
		if err != nil {
			t.Fatal(err)
		}
		if left, _ := os.ReadDir(tmp); len(left) > 0 {
			t.Errorf("spool of %d bytes in memory: %s left behind", inMemory, left[0].Name())
		}
		out, _ := json.Marshal(res)
		return res, out
	}
	inMemory, want := replayWith(int64(len(input)))
	onDisk, got := replayWith(4096)
	// The spool did go to disk past 4096 bytes, and not before; the
	// file's name is gone while it is read, so that a replay killed
	// midway leaves nothing behind.
	for limit, onFile := range map[int64]bool{4096: true, int64(len(input)): false} {
		tmp := t.TempDir()
		t.Setenv("TMPDIR", tmp)
		spoolInMemory = limit
		lines, err := readLines(context.Background(), bytes.NewReader(input), &bytes.Buffer{})
		if err != nil {
			t.Fatal(err)
		}
		if (lines.spool.f != nil) != onFile {
			t.Errorf("spool of %d bytes in memory for %d: on a file %v, want %v", limit, len(input), lines.spool.f != nil, onFile)
		}
		if left, _ := os.ReadDir(tmp); len(left) > 0 && runtime.GOOS != "windows" {
			t.Errorf("while the lines wait: %s in %s", left[0].Name(), tmp)
		}
		lines.spool.close()
	}
	if inMemory.RejectedLines != 1 || len(inMemory.Incidents) < 10 {
		t.Fatalf("in memory: %d incidents, %d rejected lines: want a storm's, and one", len(inMemory.Incidents), inMemory.RejectedLines)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("spooled to disk the replay differs: %d incidents, %d assignments; in memory %d, %d",
			len(onDisk.Incidents), len(onDisk.Assignments), len(inMemory.Incidents), len(inMemory.Assignments))
	}
	// A replay that fails (cancelled) leaves no file either.
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	spoolInMemory = 0
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	many := bytes.Repeat(append(bytes.Clone(lines[0]), '\n'), 100_001)
	if _, err := Replay(ctx, bytes.NewReader(many), correlate.DefaultConfig(), catalog, &bytes.Buffer{}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled replay: %v", err)
	}
	if left, _ := os.ReadDir(tmp); len(left) > 0 {
		t.Errorf("cancelled replay: %s left behind", left[0].Name())
	}
}

// The rejected lines listed are the first of the file, whatever their
// times: lines in falling time order are taken last to first.
func TestCorrelateReplayListsTheFirstRejectedLines(t *testing.T) {
	var lines []string
	start := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	n := MaxRejectedListed + 50
	for i := range n {
		at := start.Add(time.Duration(n-i) * time.Minute).Format(time.RFC3339)
		lines = append(lines, `{"type":"change","time":"`+at+`","change":{"kind":"deploy"}}`) // no service
	}
	res, err := Replay(context.Background(), strings.NewReader(strings.Join(lines, "\n")), correlate.DefaultConfig(), nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if res.RejectedLines != n || len(res.Rejected) != MaxRejectedListed {
		t.Fatalf("%d rejected, %d listed; want %d and %d", res.RejectedLines, len(res.Rejected), n, MaxRejectedListed)
	}
	for i, p := range res.Rejected {
		if p.Line != i+1 {
			t.Fatalf("listed lines %v..., want 1 to %d", res.Rejected[:3], MaxRejectedListed)
		}
	}
}
