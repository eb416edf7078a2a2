package decode

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aiops-dev/aiops/pkg/event"
)

// amPayloadJSON is shaped like what Alertmanager 0.27 posts to a webhook.
const amPayloadJSON = `{
  "receiver": "aiops",
  "status": "firing",
  "alerts": [
    {
      "status": "firing",
      "labels": {"alertname": "HighErrorRate", "job": "checkout", "severity": "page", "instance": "10.0.0.7:9090"},
      "annotations": {"summary": "5xx above 5%", "runbook_url": "https://runbooks/5xx"},
      "startsAt": "2026-11-21T11:50:00.123Z",
      "endsAt": "0001-01-01T00:00:00Z",
      "generatorURL": "http://prometheus:9090/graph?g0.expr=rate",
      "fingerprint": "1a2b3c4d5e6f7081"
    },
    {
      "status": "resolved",
      "labels": {"alertname": "DiskFull", "service": "db", "job": "node", "severity": "warning"},
      "annotations": {},
      "startsAt": "2026-11-21T10:00:00Z",
      "endsAt": "2026-11-21T11:55:00Z",
      "generatorURL": "",
      "fingerprint": "00000000000000ff"
    },
    {
      "status": "firing",
      "labels": {"alertname": "Watchdog", "severity": "purple"},
      "annotations": {},
      "startsAt": "2026-11-21T09:00:00+02:00",
      "endsAt": "2026-11-21T12:04:00Z",
      "generatorURL": ""
    },
    {
      "status": "firing",
      "labels": {"alertname": "PodCrash", "app": "cart"},
      "startsAt": "2026-11-21T11:00:00Z"
    }
  ],
  "groupLabels": {"alertname": "HighErrorRate"},
  "commonLabels": {},
  "commonAnnotations": {},
  "externalURL": "http://alertmanager:9093",
  "version": "4",
  "groupKey": "{}:{alertname=\"HighErrorRate\"}",
  "truncatedAlerts": 0
}`

func TestAlertmanager(t *testing.T) {
	b, err := Alertmanager([]byte(amPayloadJSON), opts())
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Events) != 4 {
		t.Fatalf("got %d events, want 4", len(b.Events))
	}
	checkValid(t, b, SourceAlertmanager)

	firing := b.Events[0]
	eq(t, "kind", firing.Kind, event.KindAlert)
	eq(t, "fingerprint", firing.Fingerprint, "1a2b3c4d5e6f7081")
	eq(t, "service from job", firing.Service, "checkout")
	eq(t, "severity", firing.Severity, event.SeverityCritical)
	eq(t, "time = startsAt", firing.Time, time.Date(2026, 11, 21, 11, 50, 0, 123e6, time.UTC))
	eq(t, "observed", firing.ObservedTime, testNow)
	eq(t, "labels", firing.Labels, map[string]string{"alertname": "HighErrorRate", "job": "checkout", "severity": "page", "instance": "10.0.0.7:9090"})
	fb := body[event.AlertBody](t, firing)
	eq(t, "name", fb.Name, "HighErrorRate")
	eq(t, "status", fb.Status, event.AlertFiring)
	eq(t, "startsAt", fb.StartsAt, firing.Time)
	eq(t, "endsAt zero", fb.EndsAt.IsZero(), true)
	eq(t, "annotations", fb.Annotations, map[string]string{"summary": "5xx above 5%", "runbook_url": "https://runbooks/5xx"})
	eq(t, "generatorURL", fb.GeneratorURL, "http://prometheus:9090/graph?g0.expr=rate")

	resolved := b.Events[1]
	eq(t, "service label wins over job", resolved.Service, "db")
	eq(t, "time = endsAt", resolved.Time, time.Date(2026, 11, 21, 11, 55, 0, 0, time.UTC))
	eq(t, "severity", resolved.Severity, event.SeverityWarning)
	rb := body[event.AlertBody](t, resolved)
	eq(t, "status", rb.Status, event.AlertResolved)
	eq(t, "startsAt", rb.StartsAt, time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC))
	eq(t, "endsAt", rb.EndsAt, resolved.Time)

	watchdog := b.Events[2]
	eq(t, "no service label", watchdog.Service, UnknownService)
	eq(t, "unknown severity word", watchdog.Severity, event.Severity(""))
	eq(t, "severity label kept", watchdog.Labels["severity"], "purple")
	eq(t, "time in UTC", watchdog.Time, time.Date(2026, 11, 21, 7, 0, 0, 0, time.UTC))
	eq(t, "fingerprint Alertmanager gives", watchdog.Fingerprint, event.AlertmanagerFingerprint(watchdog.Labels))

	eq(t, "service from app", b.Events[3].Service, "cart")
	eq(t, "no annotations", body[event.AlertBody](t, b.Events[3]).Annotations, map[string]string(nil))
}

func TestAlertmanagerRepeatsKeepTheirID(t *testing.T) {
	first, err := Alertmanager([]byte(amPayloadJSON), opts())
	if err != nil {
		t.Fatal(err)
	}
	// A later group notification repeats the alerts; the firing Watchdog
	// has a new endsAt, which does not make it a new event.
	later := Options{Now: testNow.Add(5 * time.Minute)}
	again, err := Alertmanager([]byte(strings.Replace(amPayloadJSON, "2026-11-21T12:04:00Z", "2026-11-21T12:09:00Z", 1)), later)
	if err != nil {
		t.Fatal(err)
	}
	for i := range first.Events {
		eq(t, "id of repeat", again.Events[i].ID, first.Events[i].ID)
	}
	// The same alert resolved is a different event.
	resolved := strings.Replace(amPayloadJSON, `"status": "firing",
      "labels": {"alertname": "HighErrorRate"`, `"status": "resolved",
      "labels": {"alertname": "HighErrorRate"`, 1)
	resolved = strings.Replace(resolved, `"endsAt": "0001-01-01T00:00:00Z"`, `"endsAt": "2026-11-21T11:58:00Z"`, 1)
	r, err := Alertmanager([]byte(resolved), opts())
	if err != nil {
		t.Fatal(err)
	}
	if r.Events[0].ID == first.Events[0].ID {
		t.Error("resolved alert has the id of its firing notification")
	}
	eq(t, "resolved keeps fingerprint", r.Events[0].Fingerprint, first.Events[0].Fingerprint)
	if first.Events[0].ID == first.Events[1].ID {
		t.Error("two alerts share an id")
	}
}

// TestAlertmanagerFromOtherTools: a payload made by another tool than
// Alertmanager may leave out the version, an alert's status or its
// fingerprint, and may send a fingerprint of its own form. The alerts are
// taken as Alertmanager would have sent them, and a fingerprint sent is
// kept as it is (the replay's assignments are keyed by it). Times left out
// are taken from Now only when the options say so.
func TestAlertmanagerFromOtherTools(t *testing.T) {
	in := `{"status":"firing","alerts":[
	  {"labels":{"alertname":"DBDown","service":"db"},"startsAt":"2026-11-21T11:00:00Z"},
	  {"status":"resolved","labels":{"alertname":"HighLatency","service":"api"},"startsAt":"2026-11-21T11:00:00Z","endsAt":"2026-11-21T11:05:00Z","fingerprint":"api/HighLatency #7"},
	  {"labels":{"alertname":"NoStart","service":"api"}},
	  {"status":"resolved","labels":{"alertname":"NoEnd","service":"api"},"startsAt":"2026-11-21T11:00:00Z","endsAt":"0001-01-01T00:00:00Z"}]}`
	b, err := Alertmanager([]byte(in), opts())
	if err != nil || len(b.Events) != 2 || b.Skipped[SkippedInvalid] != 2 || fmt.Sprint(b.Problems) != `[item 2: field "startsAt": is required item 3: field "endsAt": is required for a resolved alert]` {
		t.Fatalf("the gateway times no alert at its clock (a resend would be a new event): %v, %v", err, b)
	}
	o := opts()
	o.AlertTimesFromNow = true
	b, err = Alertmanager([]byte(in), o)
	if err != nil {
		t.Fatal(err)
	}
	checkValid(t, b, SourceAlertmanager)
	if len(b.Events) != 4 {
		t.Fatalf("got %d events, want 4", len(b.Events))
	}
	// With AlertTimesFromNow (the replay: the line's time).
	eq(t, "no startsAt: started at Now", b.Events[2].Time, testNow)
	eq(t, "no endsAt: resolved at Now", b.Events[3].Time, testNow)
	first, second := b.Events[0], b.Events[1]
	var body event.AlertBody
	if err := first.DecodeBody(&body); err != nil {
		t.Fatal(err)
	}
	eq(t, "status from the payload", body.Status, event.AlertFiring)
	// Prometheus's fingerprint of {alertname="DBDown", service="db"}.
	eq(t, "fingerprint Alertmanager gives", first.Fingerprint, event.AlertmanagerFingerprint(map[string]string{"alertname": "DBDown", "service": "db"}))
	eq(t, "producer's fingerprint", second.Fingerprint, "api/HighLatency #7")
	if err := second.DecodeBody(&body); err != nil {
		t.Fatal(err)
	}
	eq(t, "own status kept", body.Status, event.AlertResolved)
}

func TestAlertmanagerErrors(t *testing.T) {
	alert := func(fields string) string {
		return `{"version":"4","alerts":[{"status":"firing","labels":{"alertname":"ok"},"startsAt":"2026-11-21T11:00:00Z"},` + fields + `]}`
	}
	cases := []struct {
		name, in string
		item     int
		field    string
		says     string
	}{
		{"not json", `{"version":`, NoItem, "", "not valid JSON"},
		{"version 3", `{"version":"3","alerts":[]}`, NoItem, "version", `is "3", want "4"`},
		{"no alerts", `{"version":"4","alerts":[]}`, NoItem, "alerts", "is empty"},
		{"alerts not array", `{"version":"4","alerts":{}}`, NoItem, "alerts", "want array"},
		{"no labels", alert(`{"status":"firing","labels":{},"startsAt":"2026-11-21T11:00:00Z"}`), 1, "labels", "is empty"},
		{"bad startsAt", alert(`{"status":"firing","labels":{"alertname":"a"},"startsAt":"21/11/2026"}`), 1, "startsAt", "RFC 3339"},
		{"bad status", alert(`{"status":"pending","labels":{"alertname":"a"},"startsAt":"2026-11-21T11:00:00Z"}`), 1, "status", "want firing or resolved"},
		{"no status", alert(`{"labels":{"alertname":"a"},"startsAt":"2026-11-21T11:00:00Z"}`), 1, "status", "is required"},
		{"labels not object", alert(`{"status":"firing","labels":["a"],"startsAt":"2026-11-21T11:00:00Z"}`), 1, "labels", "want object"},
		{"fingerprint with a control character", alert(`{"status":"firing","labels":{"alertname":"a"},"startsAt":"2026-11-21T11:00:00Z","fingerprint":"a\tb"}`), 1, "fingerprint", "printable"},
		{"alert not object", alert(`"a"`), 1, "", "not a JSON object"},
		{"before 1970", alert(`{"status":"firing","labels":{"alertname":"a"},"startsAt":"1960-01-01T00:00:00Z"}`), 1, "startsAt", "outside the storable range"},
		// Another tool's fingerprint given to two alerts made them one
		// event id: the answer said both accepted, the stream kept one.
		{"fingerprint of another alert", alert(`{"status":"firing","labels":{"alertname":"b"},"startsAt":"2026-11-21T11:00:00Z","fingerprint":"` +
			event.AlertmanagerFingerprint(map[string]string{"alertname": "ok"}) + `"}`), 1, "fingerprint", "is item 0's too"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b, err := Alertmanager([]byte(c.in), opts())
			p := refusedProblem(t, b, err, c.item, c.field)
			if !strings.Contains(p.Problem, c.says) {
				t.Errorf("problem %q does not say %q", p.Problem, c.says)
			}
			// The good alert beside a bad one is taken.
			if err == nil && len(b.Events) != 1 {
				t.Errorf("%d alerts taken, want the good one", len(b.Events))
			}
		})
	}
}

func TestAlertmanagerTooMany(t *testing.T) {
	o := opts()
	o.MaxEvents = 3
	if _, err := Alertmanager([]byte(amPayloadJSON), o); !errors.Is(err, ErrTooManyEvents) {
		t.Fatalf("want ErrTooManyEvents, got %v", err)
	}
}

// An array of alerts (or changes) is counted as it is read: past MaxEvents
// the rest is not decoded (millions of {} are a few KB gzipped).
func TestArraysCountedAsRead(t *testing.T) {
	o := opts()
	o.MaxEvents = 3
	many := "[" + strings.Repeat("{},", 999) + "{}]"
	if _, err := Alertmanager([]byte(`{"version":"4","alerts":`+many+`}`), o); !errors.Is(err, ErrTooManyEvents) {
		t.Fatalf("alertmanager: want ErrTooManyEvents, got %v", err)
	}
	if _, err := Changes([]byte(many), o); !errors.Is(err, ErrTooManyEvents) {
		t.Fatalf("changes: want ErrTooManyEvents, got %v", err)
	}
	b := boundedItems{max: 3}
	if err := json.Unmarshal([]byte(many), &b); !errors.Is(err, errTooManyItems) || len(b.items) != 3 {
		t.Fatalf("boundedItems: %v after %d items, want it to stop at the 4th", err, len(b.items))
	}
	if err := json.Unmarshal([]byte(`{"a":1}`), &b); err == nil {
		t.Fatal("boundedItems took an object")
	}
}

// skipped.invalid counts the alerts refused, not their problems.
func TestSkippedInvalidCountsInputs(t *testing.T) {
	in := `{"version":"4","alerts":[
	  {"status":"firing","labels":{"alertname":"ok"},"startsAt":"2026-11-21T11:00:00Z"},
	  {"status":"pending","labels":{"job":"x"},"startsAt":"yesterday"}]}`
	b, err := Alertmanager([]byte(in), opts())
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Problems) < 2 || b.Skipped[SkippedInvalid] != 1 || len(b.Events) != 1 {
		t.Fatalf("one alert with %d problems: skipped.invalid %d, %d taken; want 1 refused, 1 taken", len(b.Problems), b.Skipped[SkippedInvalid], len(b.Events))
	}
}

// Alertmanager takes an alert with any one label: one without alertname
// is named by its fingerprint (two such alerts are two names); times in
// the spellings RFC 3339 and Alertmanager's API allow besides its own are
// read (a space for the T, lower case, no colon in the offset, no offset:
// UTC).
func TestAlertmanagerLenientAlerts(t *testing.T) {
	in := `{"version":"4","alerts":[
		{"status":"firing","labels":{"job":"db"},"startsAt":"2026-11-21 11:00:00"},
		{"status":"firing","labels":{"job":"web"},"startsAt":"2026-11-21t11:00:00.5z"},
		{"status":"resolved","labels":{"alertname":"a"},"startsAt":"2026-11-21T12:00:00+0100","endsAt":"2026-11-21T11:30:00"}]}`
	b, err := Alertmanager([]byte(in), opts())
	if err != nil || len(b.Events) != 3 {
		t.Fatalf("%v, %v: want all three alerts", b, err)
	}
	for i, want := range []time.Time{
		time.Date(2026, 11, 21, 11, 0, 0, 0, time.UTC),
		time.Date(2026, 11, 21, 11, 0, 0, 5e8, time.UTC),
		time.Date(2026, 11, 21, 11, 30, 0, 0, time.UTC),
	} {
		if !b.Events[i].Time.Equal(want) {
			t.Errorf("alert %d at %s, want %s", i, b.Events[i].Time, want)
		}
	}
	if body := body[event.AlertBody](t, b.Events[2]); !body.StartsAt.Equal(time.Date(2026, 11, 21, 11, 0, 0, 0, time.UTC)) {
		t.Errorf("startsAt +0100 read as %s", body.StartsAt)
	}
	n0, n1 := body[event.AlertBody](t, b.Events[0]).Name, body[event.AlertBody](t, b.Events[1]).Name
	if n0 != b.Events[0].Fingerprint || n1 != b.Events[1].Fingerprint || n0 == n1 {
		t.Errorf("nameless alerts named %q and %q, want their fingerprints %s and %s", n0, n1, b.Events[0].Fingerprint, b.Events[1].Fingerprint)
	}
	for _, bad := range []string{"21/11/2026 11:00", "2026-11-21T11:00", "yesterday", "2026-11-21T11:00:00 UTC"} {
		if _, err := ParseTime(bad); err == nil {
			t.Errorf("ParseTime(%q) took it", bad)
		}
	}
}

// An alert with a label given twice, or invalid UTF-8, is refused alone,
// named, and the others are taken: encoding/json kept the last value of
// the label and rewrote the bytes to U+FFFD, so the alert was stored and
// fingerprinted other than it was sent. Alertmanager never sends either;
// other tools posting its shape may.
func TestAlertWithARepeatedLabelOrInvalidUTF8IsRefused(t *testing.T) {
	in := "{\"version\":\"4\",\"alerts\":[" +
		`{"status":"firing","labels":{"alertname":"ok"},"startsAt":"2026-11-21T11:00:00Z"},` +
		`{"status":"firing","labels":{"alertname":"Disk","severity":"critical","severity":"info"},"startsAt":"2026-11-21T11:00:00Z"},` +
		"{\"status\":\"firing\",\"labels\":{\"alertname\":\"Caf\xe9\"},\"startsAt\":\"2026-11-21T11:00:00Z\"}]}"
	b, err := Alertmanager([]byte(in), opts())
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Events) != 1 || b.Skipped[SkippedInvalid] != 2 {
		t.Fatalf("%d taken, skipped %v; want the first alert alone, 2 refused", len(b.Events), b.Skipped)
	}
	if p := refusedProblem(t, b, err, 1, "labels.severity"); !strings.Contains(p.Problem, "appears more than once") {
		t.Errorf("problem %q", p.Problem)
	}
	if p := refusedProblem(t, b, err, 2, ""); !strings.Contains(p.Problem, "not valid UTF-8") {
		t.Errorf("problem %q", p.Problem)
	}
}

// promAlertsJSON is shaped like what Prometheus 2.42 posts to an
// Alertmanager's /api/v2/alerts: no status, no fingerprint; a firing
// alert's endsAt is a few evaluation intervals after its last evaluation,
// a resolved one's the resolution.
const promAlertsJSON = `[
  {"labels": {"alertname": "HighErrorRate", "job": "checkout", "severity": "critical", "instance": "10.0.0.7:9090"},
   "annotations": {"summary": "5xx above 5%"},
   "startsAt": "2026-11-21T11:50:00.123Z", "endsAt": "2026-11-21T12:04:00.000Z",
   "generatorURL": "http://prometheus:9090/graph?g0.expr=rate"},
  {"labels": {"alertname": "DiskFull", "service": "db", "severity": "warning"},
   "annotations": {},
   "startsAt": "2026-11-21T10:00:00.000Z", "endsAt": "2026-11-21T11:55:00.000Z",
   "generatorURL": ""}
]`

func TestPrometheusAlerts(t *testing.T) {
	b, err := PrometheusAlerts([]byte(promAlertsJSON), opts())
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Events) != 2 {
		t.Fatalf("got %d events, want 2", len(b.Events))
	}
	checkValid(t, b, SourcePrometheus)

	firing := b.Events[0]
	eq(t, "fingerprint Alertmanager gives", firing.Fingerprint, event.AlertmanagerFingerprint(firing.Labels))
	eq(t, "service from job", firing.Service, "checkout")
	eq(t, "severity", firing.Severity, event.SeverityCritical)
	eq(t, "time = startsAt", firing.Time, time.Date(2026, 11, 21, 11, 50, 0, 123e6, time.UTC))
	fb := body[event.AlertBody](t, firing)
	eq(t, "endsAt in the future: firing", fb.Status, event.AlertFiring)
	eq(t, "no endsAt while firing, as Alertmanager's webhook", fb.EndsAt.IsZero(), true)
	eq(t, "endsAt kept as when it expires without a resend", fb.ExpiresAt, time.Date(2026, 11, 21, 12, 4, 0, 0, time.UTC))
	eq(t, "annotations", fb.Annotations, map[string]string{"summary": "5xx above 5%"})

	resolved := b.Events[1]
	rb := body[event.AlertBody](t, resolved)
	eq(t, "endsAt passed: resolved", rb.Status, event.AlertResolved)
	eq(t, "time = endsAt", resolved.Time, time.Date(2026, 11, 21, 11, 55, 0, 0, time.UTC))

	// Prometheus resends a firing alert every minute with a later endsAt:
	// one event. Once its endsAt has passed it is resolved.
	later := strings.Replace(promAlertsJSON, "2026-11-21T12:04:00.000Z", "2026-11-21T12:05:00.000Z", 1)
	again, err := PrometheusAlerts([]byte(later), Options{Now: testNow.Add(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "id of a resend", again.Events[0].ID, firing.ID)
	eq(t, "a resend expires later", body[event.AlertBody](t, again.Events[0]).ExpiresAt, time.Date(2026, 11, 21, 12, 5, 0, 0, time.UTC))
	expired, err := PrometheusAlerts([]byte(promAlertsJSON), Options{Now: time.Date(2026, 11, 21, 12, 4, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "endsAt reached: resolved", body[event.AlertBody](t, expired.Events[0]).Status, event.AlertResolved)
	if expired.Events[0].ID == firing.ID {
		t.Error("the resolved alert has its firing event's id")
	}

	// Through an Alertmanager the same alert is the same member.
	am, err := Alertmanager([]byte(amPayloadJSON), opts())
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range am.Events {
		eq(t, "a webhook's alert never expires: Alertmanager sends its resolution", body[event.AlertBody](t, e).ExpiresAt.IsZero(), true)
	}
	eq(t, "fingerprint as Alertmanager's webhook gives it",
		event.AlertmanagerFingerprint(am.Events[1].Labels), event.AlertmanagerFingerprint(map[string]string{"alertname": "DiskFull", "service": "db", "job": "node", "severity": "warning"}))
}

// Alertmanager's API works out a posted alert's status and fingerprint
// whatever the body says: a client posting back what it read (status an
// object, its fingerprint) is taken as Alertmanager takes it.
func TestPrometheusAlertsIgnoreStatusAndFingerprint(t *testing.T) {
	b, err := PrometheusAlerts([]byte(`[{"labels": {"alertname": "DiskFull", "service": "db"}, "startsAt": "2026-11-21T11:00:00Z",
		"endsAt": "2026-11-21T11:55:00Z", "status": {"state": "active", "silencedBy": [], "inhibitedBy": []}, "fingerprint": "made-up"},
		{"labels": {"alertname": "Down", "service": "db"}, "startsAt": "2026-11-21T11:00:00Z", "status": "resolved"}]`), opts())
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "ended: resolved, whatever its status says", body[event.AlertBody](t, b.Events[0]).Status, event.AlertResolved)
	eq(t, "fingerprint of the labels", b.Events[0].Fingerprint, event.AlertmanagerFingerprint(b.Events[0].Labels))
	eq(t, "no end: firing, whatever its status says", body[event.AlertBody](t, b.Events[1]).Status, event.AlertFiring)
}

func TestPrometheusAlertsErrors(t *testing.T) {
	for _, c := range []struct{ name, body, want string }{
		{"an Alertmanager webhook", `{"version": "4", "alerts": []}`, "goes to /v1/alertmanager"},
		{"not an array", `"alerts"`, "array"},
		{"empty", `[]`, "empty list"},
		{"no labels", `[{"startsAt": "2026-11-21T11:50:00Z"}]`, "labels"},
		{"a bad time", `[{"labels": {"alertname": "A"}, "startsAt": "yesterday"}]`, "startsAt"},
	} {
		_, err := PrometheusAlerts([]byte(c.body), opts())
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error naming %q", c.name, err, c.want)
		}
	}
	many := "[" + strings.Repeat(`{"labels":{"alertname":"A"}},`, 3) + `{"labels":{"alertname":"A"}}]`
	if _, err := PrometheusAlerts([]byte(many), Options{Now: testNow, MaxEvents: 3}); !errors.Is(err, ErrTooManyEvents) {
		t.Errorf("4 alerts over a limit of 3: %v, want ErrTooManyEvents", err)
	}
}

// falcoSidekickJSON is shaped like what falcosidekick's Alertmanager output
// posts (endpoint /api/v2/alerts) for one Falco event: labels from the
// event's output fields (dots made underscores), rule, priority and
// severity, and an endsAt of Go's zero time (none set), but no startsAt.
const falcoSidekickJSON = `[{"labels":{"container_name":"payments-7d9f8-x2x9q","evt_time":"1796615388132000000","k8s_pod_name":"payments-7d9f8-x2x9q","priority":"Critical","rule":"Terminal shell in container","severity":"critical","source":"falco","tags":"T1059,container,shell"},"annotations":{"description":"A shell was spawned in a container","summary":"Terminal shell in container"},"endsAt":"0001-01-01T00:00:00Z"}]`

// Alertmanager's API takes an alert without startsAt as starting when it
// arrives; tools other than Prometheus send none (falcosidekick), and
// refusing them refused every alert they sent.
func TestPrometheusAlertsWithoutStartsAtStartOnArrival(t *testing.T) {
	b, err := PrometheusAlerts([]byte(falcoSidekickJSON), opts())
	if err != nil {
		t.Fatal(err)
	}
	checkValid(t, b, SourcePrometheus)
	e := b.Events[0]
	eq(t, "time: when it arrived", e.Time, testNow)
	eq(t, "severity", e.Severity, event.SeverityCritical)
	ab := body[event.AlertBody](t, e)
	eq(t, "status", ab.Status, event.AlertFiring)
	eq(t, "startsAt", ab.StartsAt, testNow)
	eq(t, "name: its fingerprint, as no alertname is sent", ab.Name, e.Fingerprint)
	eq(t, "without endsAt it holds for resolve_timeout, as in Alertmanager", ab.ExpiresAt, testNow.Add(DefaultResolveTimeout))
	o := opts()
	o.ResolveTimeout = time.Hour
	if b, err = PrometheusAlerts([]byte(falcoSidekickJSON), o); err != nil {
		t.Fatal(err)
	}
	eq(t, "a resolve_timeout of an hour", body[event.AlertBody](t, b.Events[0]).ExpiresAt, testNow.Add(time.Hour))

	// falcosidekick's expiresafter sets endsAt ahead: still firing now.
	expiring := strings.Replace(falcoSidekickJSON, "0001-01-01T00:00:00Z", testNow.Add(10*time.Minute).Format(time.RFC3339), 1)
	b, err = PrometheusAlerts([]byte(expiring), opts())
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "endsAt ahead: firing from now", body[event.AlertBody](t, b.Events[0]).Status, event.AlertFiring)
	eq(t, "endsAt ahead: time", b.Events[0].Time, testNow)
	eq(t, "endsAt ahead: expires then", body[event.AlertBody](t, b.Events[0]).ExpiresAt, testNow.Add(10*time.Minute))
}

// An alert without startsAt starts when it arrives, so its id differs on
// every retry: an Idempotency-Key cannot make that retry safe, and the
// gateway took the key and stored each retry as another alert, as it did
// a change without a time. It refuses the alert, naming startsAt, and
// takes one with a startsAt.
func TestPrometheusAlertWithoutStartsAtUnderAnIdempotencyKeyIsRefused(t *testing.T) {
	o := opts()
	o.IdempotencyKey = "falco-811"
	_, err := PrometheusAlerts([]byte(falcoSidekickJSON), o)
	p := hasProblem(t, err, 0, "startsAt")
	if !strings.Contains(p.Problem, "Idempotency-Key") {
		t.Errorf("problem %q does not name the Idempotency-Key", p.Problem)
	}
	started := strings.Replace(falcoSidekickJSON, `"endsAt"`, `"startsAt":"2026-11-21T11:30:00Z","endsAt"`, 1)
	if _, err := PrometheusAlerts([]byte(started), o); err != nil {
		t.Errorf("an alert with startsAt under a key: %v", err)
	}
}

// Alertmanager takes a label of any length, and falcosidekick makes a
// Falco event's output fields labels: a command line over 4 KiB (a
// payload piped to a shell) refused the alert, and falcosidekick dropped
// the event. Such a value is cut as an OTLP attribute's is, marked with a
// hash of the whole; the fingerprint is the whole labels'.
func TestAlertLabelOverTheLimitIsCut(t *testing.T) {
	long := "-c echo " + strings.Repeat("QUFBQUFB", 1000) + " | base64 -d | sh"
	labels := map[string]string{"rule": "Terminal shell in container", "proc_args": long, "severity": "critical"}
	raw, _ := json.Marshal([]map[string]any{{"labels": labels, "endsAt": "0001-01-01T00:00:00Z"}})
	b, err := PrometheusAlerts(raw, opts())
	if err != nil {
		t.Fatal(err)
	}
	checkValid(t, b, SourcePrometheus)
	e := b.Events[0]
	eq(t, "cut", b.Truncated, 1)
	eq(t, "fingerprint of the whole labels", e.Fingerprint, event.AlertmanagerFingerprint(labels))
	eq(t, "the value cut as an OTLP attribute's", e.Labels["proc_args"], cutLabel(long))
	if len(e.Labels["proc_args"]) > event.MaxLabelBytes || !strings.HasPrefix(e.Labels["proc_args"], long[:1000]) {
		t.Errorf("label %q: want the value's start, within %d bytes", e.Labels["proc_args"], event.MaxLabelBytes)
	}

	webhook, _ := json.Marshal(map[string]any{"alerts": []map[string]any{{"status": "firing", "labels": labels, "startsAt": "2026-11-21T11:50:00Z"}}})
	if b, err = Alertmanager(webhook, opts()); err != nil {
		t.Fatal(err)
	}
	eq(t, "cut, from Alertmanager's webhook", b.Events[0].Labels["proc_args"], cutLabel(long))
}
