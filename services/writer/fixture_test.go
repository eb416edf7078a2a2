package writer

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"testing"
	"time"

	"github.com/aiops-dev/aiops/pkg/event"
)

// The cookbook fixture: a small, deterministic ops day (Monday 2026-03-02,
// with a little of the day before and the week after) described as plain Go
// values, turned into envelopes for the writer, and read again by the
// expectations in queries_test.go, which compute each query's answer from
// these values.

var (
	fxDay      = time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC) // a Monday
	fxServices = []string{"checkout", "payments", "search"}
)

type fxLog struct {
	id, service, severity, message, trace string
	at                                    time.Time
	// the log miner's templated copy, when templateID is set
	copyID, templateID, template string
}

type fxSample struct {
	id, name, service string
	at                time.Time
	value             float64
}

type fxAlert struct {
	id, name, fingerprint, service, status string
	at                                     time.Time
}

type fxChange struct {
	id, service, typ, version, author string
	at                                time.Time
}

type fxAnomaly struct {
	id, service, metric, detector string
	at                            time.Time
	score                         float64
	episode                       *fxEpisode // nil: an anomaly without an episode
}

// fxEpisode is the episode part of one anomaly event, as of that event.
type fxEpisode struct {
	phase, id            string // open, update or close
	start, end, peakTime time.Time
	peak, peakValue      float64
}

type fxIncidentState struct {
	id, incidentID, status, title, service string
	at                                     time.Time
	team, teamLabel                        string    // body field, labels["team"]
	openedAt, ackedAt, resolvedAt          time.Time // body fields; zero = absent
	mergedInto                             string
	links                                  []string
}

type fxTemplate struct {
	id, service, templateID, template, status, previousID, example string
	mergedFrom                                                     []string
	at                                                             time.Time
}

type fixture struct {
	templates  []fxTemplate
	logs       []fxLog
	samples    []fxSample
	alerts     []fxAlert
	changes    []fxChange
	anomalies  []fxAnomaly
	incidents  []fxIncidentState
	deliveries []WebhookDelivery
}

type idSeq int

func (s *idSeq) next() string {
	*s++
	return fmt.Sprintf("01JQ%022d", int(*s))
}

func newFixture() *fixture {
	var ids idSeq
	f := &fixture{}
	at := func(day, h, m int) time.Time {
		return fxDay.AddDate(0, 0, day).Add(time.Duration(h)*time.Hour + time.Duration(m)*time.Minute)
	}

	// Logs: 90 raw logs over the day, one in five an error, one in eleven
	// critical; every other one templated by the log miner. The day before,
	// a few logs with the first two templates, so only the others are new.
	for i := 0; i < 90; i++ {
		l := fxLog{id: ids.next(), service: fxServices[i%3], severity: "info", at: at(0, 8, i*7), trace: fmt.Sprintf("trace-%d", i%10)}
		switch {
		case i%11 == 0:
			l.severity = "critical"
		case i%5 == 0:
			l.severity = "error"
		}
		l.message = fmt.Sprintf("request %d took %d ms", i, 10+i)
		if i%2 == 0 {
			k := (i / 2) % (3 + i%3*2) // uneven template counts per service
			l.copyID, l.templateID, l.template = ids.next(), fmt.Sprintf("tpl-%d", k), fmt.Sprintf("template %d <*>", k)
		}
		f.logs = append(f.logs, l)
	}
	for i := 0; i < 6; i++ {
		k := i % 2
		f.logs = append(f.logs, fxLog{id: ids.next(), service: "checkout", severity: "error", at: at(-1, 10, i*10),
			message: fmt.Sprintf("yesterday %d", i), trace: "trace-old",
			copyID: ids.next(), templateID: fmt.Sprintf("tpl-%d", k), template: fmt.Sprintf("template %d <*>", k)})
	}

	// Metric samples: three hours, twenty samples an hour per service.
	for h := 9; h < 12; h++ {
		for si, svc := range fxServices {
			for i := 0; i < 20; i++ {
				f.samples = append(f.samples, fxSample{id: ids.next(), name: "http_latency_ms", service: svc,
					at: at(0, h, i*3), value: float64((i*37+h*11)%100 + si*10)})
				if i%4 == 0 {
					f.samples = append(f.samples, fxSample{id: ids.next(), name: "cpu_ratio", service: svc, at: at(0, h, i*3), value: 0.5})
				}
			}
		}
	}

	// Alerts: status sequences per alert instance, five minutes apart.
	for _, a := range []struct {
		name, fp, service, statuses string
		start                       int // minutes after 09:00
	}{
		{"HighLatency", "a1a1a1a1a1a1a1a1", "checkout", "FFRFRF", 0},
		{"HighLatency", "a2a2a2a2a2a2a2a2", "payments", "FR", 3},
		{"ErrorBudgetBurn", "b1b1b1b1b1b1b1b1", "checkout", "FFF", 1},
		{"DiskFull", "c1c1c1c1c1c1c1c1", "search", "FRFRFR", 2},
	} {
		for k, s := range a.statuses {
			status := event.AlertFiring
			if s == 'R' {
				status = event.AlertResolved
			}
			f.alerts = append(f.alerts, fxAlert{id: ids.next(), name: a.name, fingerprint: a.fp, service: a.service, status: status, at: at(0, 9, a.start+k*5)})
		}
	}

	// Changes.
	f.changes = []fxChange{
		{ids.next(), "checkout", "deploy", "v1.2.0", "alice", at(0, 10, 0)},
		{ids.next(), "checkout", "config", "cfg-7", "bob", at(0, 14, 0)},
		{ids.next(), "payments", "deploy", "v3.1.0", "carol", at(0, 11, 0)},
		{ids.next(), "search", "deploy", "v0.9.0", "alice", at(1, 9, 0)},
		{ids.next(), "payments", "deploy", "v3.0.9", "dave", at(-1, 12, 0)},
	}
	deploy := f.changes[0]

	// Anomalies around the checkout deploy at 10:00, and elsewhere.
	f.anomalies = []fxAnomaly{
		{ids.next(), "checkout", "http_latency_ms", "mad", deploy.at.Add(5 * time.Minute), 0.9, nil},
		{ids.next(), "checkout", "http_latency_ms", "ewma", deploy.at.Add(20 * time.Minute), 0.7, nil},
		{ids.next(), "checkout", "error_rate", "mad", deploy.at.Add(-40 * time.Minute), 0.6, nil},
		{ids.next(), "payments", "http_latency_ms", "mad", deploy.at.Add(5 * time.Minute), 0.8, nil},
		{ids.next(), "checkout", "cpu_ratio", "level_shift", deploy.at.Add(2 * time.Hour), 0.55, nil},
		{ids.next(), "checkout", "http_latency_ms", "mad", deploy.at.Add(-10 * time.Minute), 0.65, nil},
	}

	// Alarm episodes as the detector publishes them: payments' queue depth
	// opens, peaks in an update and closes; search's latency opens and is
	// still open; checkout's error rate the next day is outside the day.
	queue, search, nextDay := "ep-queue", "ep-search", "ep-next-day"
	qStart, sStart, nStart := at(0, 13, 0), at(0, 15, 0), at(1, 2, 0)
	f.anomalies = append(f.anomalies,
		fxAnomaly{ids.next(), "payments", "queue_depth", "ensemble", qStart, 0.7,
			&fxEpisode{"open", queue, qStart, qStart, qStart, 0.7, 40}},
		fxAnomaly{ids.next(), "payments", "queue_depth", "ensemble", qStart.Add(5 * time.Minute), 0.95,
			&fxEpisode{"update", queue, qStart, qStart.Add(5 * time.Minute), qStart.Add(4 * time.Minute), 0.95, 80}},
		fxAnomaly{ids.next(), "payments", "queue_depth", "ensemble", qStart.Add(20 * time.Minute), 0.3,
			&fxEpisode{"close", queue, qStart, qStart.Add(18 * time.Minute), qStart.Add(4 * time.Minute), 0.95, 80}},
		fxAnomaly{ids.next(), "search", "http_latency_ms", "ensemble", sStart, 0.8,
			&fxEpisode{"open", search, sStart, sStart, sStart, 0.8, 900}},
		fxAnomaly{ids.next(), "search", "http_latency_ms", "ensemble", sStart.Add(5 * time.Minute), 0.85,
			&fxEpisode{"update", search, sStart, sStart.Add(5 * time.Minute), sStart.Add(2 * time.Minute), 0.9, 1200}},
		fxAnomaly{ids.next(), "checkout", "error_rate", "ensemble", nStart, 0.75,
			&fxEpisode{"open", nextDay, nStart, nStart, nStart, 0.75, 0.2}},
	)

	// Incidents: their states, with the optional lifecycle fields present
	// or absent in the ways producers may send them.
	firstAlert := f.alerts[0].id
	rawLog := f.logs[0].id
	f.incidents = []fxIncidentState{
		{id: ids.next(), incidentID: "inc-1", status: "opened", title: "checkout latency", service: "checkout", at: at(0, 10, 10), team: "team-a",
			links: []string{firstAlert, f.anomalies[0].id, deploy.id, rawLog}},
		{id: ids.next(), incidentID: "inc-1", status: "updated", title: "checkout latency", service: "checkout", at: at(0, 10, 30), team: "team-a",
			openedAt: at(0, 10, 10), ackedAt: at(0, 10, 25)},
		// resolved without resolved_at or acknowledged_at: the event time
		// resolves it, the history keeps the acknowledgement.
		{id: ids.next(), incidentID: "inc-1", status: "resolved", title: "checkout latency", service: "checkout", at: at(0, 11, 40), team: "team-a",
			openedAt: at(0, 10, 10)},

		{id: ids.next(), incidentID: "inc-2", status: "opened", title: "payments errors", service: "payments", at: at(0, 11, 20), team: "team-b"},
		{id: ids.next(), incidentID: "inc-2", status: "updated", title: "payments errors", service: "payments", at: at(0, 11, 50), team: "team-b",
			openedAt: at(0, 11, 20), ackedAt: at(0, 11, 30)},
		{id: ids.next(), incidentID: "inc-2", status: "resolved", title: "payments errors", service: "payments", at: at(0, 13, 0), team: "team-b",
			openedAt: at(0, 11, 20), ackedAt: at(0, 11, 30), resolvedAt: at(0, 12, 55)},

		{id: ids.next(), incidentID: "inc-3", status: "opened", title: "checkout saturation", service: "checkout", at: at(7, 9, 0), team: "team-a"},
		{id: ids.next(), incidentID: "inc-3", status: "updated", title: "checkout saturation", service: "checkout", at: at(7, 9, 20), team: "team-a",
			openedAt: at(7, 9, 0), ackedAt: at(7, 9, 12)},

		// team only as a label, never acknowledged.
		{id: ids.next(), incidentID: "inc-4", status: "opened", title: "search disk", service: "search", at: at(0, 15, 0), teamLabel: "team-c"},
		{id: ids.next(), incidentID: "inc-4", status: "resolved", title: "search disk", service: "search", at: at(0, 16, 0), teamLabel: "team-c",
			openedAt: at(0, 15, 0)},

		// Acknowledged, then merged into inc-1 (the correlator's late
		// root): resolved with merged_into, in inc-1's MTTA/MTTR group, which
		// must not count it.
		{id: ids.next(), incidentID: "inc-5", status: "opened", title: "checkout 5xx", service: "checkout", at: at(0, 10, 5), team: "team-a"},
		{id: ids.next(), incidentID: "inc-5", status: "acknowledged", title: "checkout 5xx", service: "checkout", at: at(0, 10, 7), team: "team-a",
			openedAt: at(0, 10, 5), ackedAt: at(0, 10, 7)},
		{id: ids.next(), incidentID: "inc-5", status: "resolved", title: "checkout 5xx", service: "checkout", at: at(0, 10, 12), team: "team-a",
			openedAt: at(0, 10, 5), ackedAt: at(0, 10, 7), resolvedAt: at(0, 10, 12), mergedInto: "inc-1"},

		// Acknowledged, then resolved a moment later, in the same second
		// (both applied in one tick of the correlator): their rows tie on
		// time, and the resolution is the latest state.
		{id: ids.next(), incidentID: "inc-11", status: "opened", title: "cart errors", service: "cart", at: at(3, 9, 0), team: "team-c"},
		{id: ids.next(), incidentID: "inc-11", status: "acknowledged", title: "cart errors", service: "cart", at: at(3, 9, 5).Add(100 * time.Millisecond), team: "team-c",
			openedAt: at(3, 9, 0), ackedAt: at(3, 9, 5).Add(100 * time.Millisecond)},
		{id: ids.next(), incidentID: "inc-11", status: "resolved", title: "cart errors", service: "cart", at: at(3, 9, 5).Add(400 * time.Millisecond), team: "team-c",
			openedAt: at(3, 9, 0), ackedAt: at(3, 9, 5).Add(100 * time.Millisecond), resolvedAt: at(3, 9, 5).Add(400 * time.Millisecond)},

		// Resolved, reopened (which clears resolved_at and
		// acknowledged_at), resolved again: MTTR runs to the last
		// resolution, MTTA to the first acknowledgement.
		{id: ids.next(), incidentID: "inc-6", status: "opened", title: "web errors", service: "web", at: at(1, 9, 0), team: "team-w"},
		{id: ids.next(), incidentID: "inc-6", status: "resolved", title: "web errors", service: "web", at: at(1, 9, 10), team: "team-w",
			openedAt: at(1, 9, 0), ackedAt: at(1, 9, 5), resolvedAt: at(1, 9, 10)},
		{id: ids.next(), incidentID: "inc-6", status: "reopened", title: "web errors", service: "web", at: at(1, 9, 30), team: "team-w",
			openedAt: at(1, 9, 0)},
		{id: ids.next(), incidentID: "inc-6", status: "resolved", title: "web errors", service: "web", at: at(1, 10, 0), team: "team-w",
			openedAt: at(1, 9, 0), resolvedAt: at(1, 10, 0)},
		// Open while inc-6 was (its opening to its last resolution) on
		// the same service: an overlap availability counts once.
		{id: ids.next(), incidentID: "inc-9", status: "opened", title: "web latency", service: "web", at: at(1, 9, 50), team: "team-w"},
		{id: ids.next(), incidentID: "inc-9", status: "resolved", title: "web latency", service: "web", at: at(1, 10, 20), team: "team-w",
			openedAt: at(1, 9, 50), resolvedAt: at(1, 10, 20)},
		// Reopened and still open: not resolved, and open now.
		{id: ids.next(), incidentID: "inc-7", status: "opened", title: "web cache", service: "web", at: at(1, 11, 0), team: "team-w"},
		{id: ids.next(), incidentID: "inc-7", status: "resolved", title: "web cache", service: "web", at: at(1, 11, 10), team: "team-w",
			openedAt: at(1, 11, 0), resolvedAt: at(1, 11, 10)},
		{id: ids.next(), incidentID: "inc-7", status: "reopened", title: "web cache", service: "web", at: at(1, 11, 20), team: "team-w",
			openedAt: at(1, 11, 0)},
		// Its root cause found later, on another team's service; then a
		// comment after the resolve ("updated", still resolved): charged
		// to where it ended, and not open.
		{id: ids.next(), incidentID: "inc-8", status: "opened", title: "frontend slow", service: "frontend", at: at(2, 10, 0), team: "team-fe"},
		{id: ids.next(), incidentID: "inc-8", status: "updated", title: "frontend slow", service: "db", at: at(2, 10, 5), team: "team-db",
			openedAt: at(2, 10, 0)},
		{id: ids.next(), incidentID: "inc-8", status: "resolved", title: "frontend slow", service: "db", at: at(2, 10, 30), team: "team-db",
			openedAt: at(2, 10, 0), resolvedAt: at(2, 10, 30)},
		{id: ids.next(), incidentID: "inc-8", status: "updated", title: "frontend slow", service: "db", at: at(2, 10, 40), team: "team-db",
			openedAt: at(2, 10, 0), resolvedAt: at(2, 10, 30)},
	}

	// The log miner's template lifecycle: new templates yesterday and
	// today, and one merge today. A log miner that started empty (its state
	// lost) announces the templates it learns again: a1 (new yesterday)
	// and b1 (new this morning) once more at 14:00.
	f.templates = []fxTemplate{
		{id: ids.next(), service: "checkout", templateID: "00000000000000a1", template: "user <*> logged in", status: "new", example: "user 7 logged in", at: at(-1, 9, 0)},
		{id: ids.next(), service: "checkout", templateID: "00000000000000a2", template: "cart <*> emptied", status: "new", example: "cart 3 emptied", at: at(0, 9, 5)},
		{id: ids.next(), service: "payments", templateID: "00000000000000b1", template: "card declined: <*>", status: "new", example: "card declined: expired", at: at(0, 8, 30)},
		{id: ids.next(), service: "checkout", templateID: "00000000000000a3", template: "user <*> logged <*>", status: "changed", previousID: "00000000000000a1",
			mergedFrom: []string{"00000000000000a1", "00000000000000a4"}, example: "user 9 logged out", at: at(0, 12, 0)},
		{id: ids.next(), service: "checkout", templateID: "00000000000000a1", template: "user <*> logged in", status: "new", example: "user 8 logged in", at: at(0, 14, 0)},
		{id: ids.next(), service: "payments", templateID: "00000000000000b1", template: "card declined: <*>", status: "new", example: "card declined: stolen", at: at(0, 14, 0)},
	}

	// Webhook deliveries of the notifier.
	for _, d := range []struct {
		receiver, incident string
		attempt, status    uint16
		err                string
		ms                 int
		min                int
	}{
		{"pagerduty", "inc-1", 1, 500, "server error", 120, 11},
		{"pagerduty", "inc-1", 2, 200, "", 80, 12},
		{"pagerduty", "inc-2", 1, 200, "", 95, 21},
		{"jira", "inc-1", 1, 0, "timeout", 5000, 11},
		{"jira", "inc-1", 2, 0, "timeout", 5000, 13},
		{"jira", "inc-4", 1, 201, "", 300, 5*60 + 1},
	} {
		f.deliveries = append(f.deliveries, WebhookDelivery{
			ID: ids.next(), Time: at(0, 10, d.min), IncidentID: d.incident, Receiver: d.receiver, Attempt: d.attempt,
			StatusCode: d.status, Error: d.err, Duration: time.Duration(d.ms) * time.Millisecond, IdempotencyKey: d.incident + "/" + d.receiver,
		})
	}
	return f
}

// envelopes turns the fixture into the JSON the writer consumes.
func (f *fixture) envelopes(t testing.TB) [][]byte {
	var out [][]byte
	add := func(id string, kind event.Kind, service string, at time.Time, sev string, labels map[string]string, links []string, body any) {
		raw, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		e := &event.Envelope{SchemaVersion: 1, ID: id, Kind: kind, Time: at, ObservedTime: at.Add(time.Second), Source: "fixture",
			Service: service, Labels: labels, Severity: event.Severity(sev), Links: links, Body: raw}
		e.Fingerprint = event.Fingerprint(kind, service, labels, nil)
		if fp, ok := labels["__fingerprint"]; ok {
			e.Fingerprint = fp
			delete(labels, "__fingerprint")
		}
		data, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, data)
	}
	for _, l := range f.logs {
		add(l.id, event.KindLog, l.service, l.at, l.severity, map[string]string{"env": "prod"}, nil, event.LogBody{Message: l.message, TraceID: l.trace})
		if l.templateID != "" {
			add(l.copyID, event.KindLog, l.service, l.at, l.severity, map[string]string{"env": "prod"}, []string{l.id},
				event.LogBody{Message: l.message, TraceID: l.trace, TemplateID: l.templateID, Template: l.template, Params: []string{"x"}})
		}
	}
	for _, s := range f.samples {
		v := s.value
		add(s.id, event.KindMetric, s.service, s.at, "", map[string]string{"__name__": s.name}, nil, event.MetricBody{Name: s.name, Value: &v})
	}
	for _, a := range f.alerts {
		add(a.id, event.KindAlert, a.service, a.at, "warning", map[string]string{"alertname": a.name, "__fingerprint": a.fingerprint}, nil,
			event.AlertBody{Name: a.name, Status: a.status, StartsAt: a.at, Annotations: map[string]string{"summary": a.name}})
	}
	for _, c := range f.changes {
		add(c.id, event.KindChange, c.service, c.at, "", nil, nil, event.ChangeBody{Type: c.typ, Version: c.version, Author: c.author})
	}
	for _, a := range f.anomalies {
		v, s := 1.0, a.score
		b := event.AnomalyBody{Series: "0123456789abcdef", Metric: a.metric, Value: &v, Score: &s, Detector: a.detector}
		if ep := a.episode; ep != nil {
			peak, peakValue := ep.peak, ep.peakValue
			b.Episode, b.EpisodeID, b.Start, b.End = ep.phase, ep.id, ep.start, ep.end
			b.Peak, b.PeakTime, b.PeakValue = &peak, ep.peakTime, &peakValue
		}
		add(a.id, event.KindAnomaly, a.service, a.at, "warning", nil, nil, b)
	}
	for _, tp := range f.templates {
		add(tp.id, event.KindLogTemplate, tp.service, tp.at, "", nil, nil, event.LogTemplateBody{TemplateID: tp.templateID, Template: tp.template,
			Status: tp.status, PreviousID: tp.previousID, MergedFrom: tp.mergedFrom, Example: tp.example})
	}
	for _, s := range f.incidents {
		var labels map[string]string
		if s.teamLabel != "" {
			labels = map[string]string{"team": s.teamLabel}
		}
		add(s.id, event.KindIncident, s.service, s.at, "error", labels, s.links, event.IncidentBody{
			IncidentID: s.incidentID, Status: s.status, Title: s.title,
			Team: s.team, OpenedAt: s.openedAt, AcknowledgedAt: s.ackedAt, ResolvedAt: s.resolvedAt, MergedInto: s.mergedInto,
		})
	}
	return out
}

// incidentSummary is one incident as the MTTA/MTTR query defines it:
// service, team and resolution of its latest state, its first
// acknowledgement, its earliest opening.
type incidentSummary struct {
	id, service, team       string
	opened, acked, resolved time.Time // zero: never (resolved: not now)
	lastStatus, title       string
	lastAt                  time.Time
	lastAcked               time.Time
	mergedInto              string
}

// mttaGroup is what the cookbook's MTTA/MTTR definition counts for one
// group of incidents: how many opened, were acknowledged and resolved, and
// the seconds each took.
type mttaGroup struct{ n, acked, resolved, ackSum, resSum int }

// mtta and mttr are the group's means in minutes to one decimal, NaN where
// nothing was acknowledged or resolved (what avgIf gives over no row).
func (g *mttaGroup) mtta() float64 { return meanMinutes(g.ackSum, g.acked) }
func (g *mttaGroup) mttr() float64 { return meanMinutes(g.resSum, g.resolved) }

func meanMinutes(sum, n int) float64 {
	if n == 0 {
		return math.NaN()
	}
	return roundTo(float64(sum)/float64(n)/60, 1)
}

// mttaGroups groups the incidents that opened in [from, to) by key, as the
// cookbook's MTTA/MTTR definition does: an incident merged into another is
// left out (its members count in the one that took them); merged says how
// many were.
func mttaGroups[K comparable](incidents []incidentSummary, from, to time.Time, key func(incidentSummary) K) (groups map[K]*mttaGroup, merged int) {
	groups = map[K]*mttaGroup{}
	for _, in := range incidents {
		if in.opened.Before(from) || !in.opened.Before(to) {
			continue
		}
		if in.mergedInto != "" {
			merged++
			continue
		}
		k := key(in)
		g := groups[k]
		if g == nil {
			g = &mttaGroup{}
			groups[k] = g
		}
		g.n++
		if !in.acked.IsZero() {
			g.acked++
			g.ackSum += int(in.acked.Sub(in.opened).Seconds())
		}
		if !in.resolved.IsZero() {
			g.resolved++
			g.resSum += int(in.resolved.Sub(in.opened).Seconds())
		}
	}
	return groups, merged
}

func (f *fixture) incidentSummaries() []incidentSummary {
	by := map[string]*incidentSummary{}
	var order []string
	for _, s := range f.incidents {
		sum := by[s.incidentID]
		if sum == nil {
			sum = &incidentSummary{id: s.incidentID}
			by[s.incidentID] = sum
			order = append(order, s.incidentID)
		}
		team := s.team
		if team == "" {
			team = s.teamLabel
		}
		latest := !s.at.Before(sum.lastAt)
		if latest {
			sum.service, sum.team = s.service, team
		}
		opened := s.openedAt
		if opened.IsZero() {
			opened = s.at
		}
		if sum.opened.IsZero() || opened.Before(sum.opened) {
			sum.opened = opened
		}
		if !s.ackedAt.IsZero() && (sum.acked.IsZero() || s.ackedAt.Before(sum.acked)) {
			sum.acked = s.ackedAt
		}
		resolved := s.resolvedAt
		if resolved.IsZero() && s.status == "resolved" {
			resolved = s.at
		}
		if latest {
			sum.resolved = resolved // the latest state's: zero once reopened
		}
		if s.mergedInto != "" {
			sum.mergedInto = s.mergedInto
		}
		if s.at.After(sum.lastAt) {
			sum.lastAt, sum.lastStatus, sum.title, sum.lastAcked = s.at, s.status, s.title, s.ackedAt
		}
	}
	out := make([]incidentSummary, 0, len(order))
	for _, id := range order {
		out = append(out, *by[id])
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}
