package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aiops-dev/aiops/pkg/errs"
	"github.com/aiops-dev/aiops/pkg/event"
)

func decode(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("not a JSON object: %v\n%s", err, b)
	}
	return m
}

func keys(m any) []string {
	return slices.Sorted(maps.Keys(m.(map[string]any)))
}

func minimalIncident() Incident {
	return Incident{
		ID: "01JPB00000000000000000000A", Status: StatusOpen, Transition: TransitionOpened,
		Title: "disk almost full", OpenedAt: time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC),
	}
}

func TestIncidentValidate(t *testing.T) {
	if err := SampleIncident().Validate(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		want   string
		modify func(*Incident)
	}{
		{"no id", func(in *Incident) { in.ID = "" }},
		{`status "firing"`, func(in *Incident) { in.Status = "firing" }},
		{`transition ""`, func(in *Incident) { in.Transition = "" }},
		{"no title", func(in *Incident) { in.Title = "" }},
		{"no opened_at", func(in *Incident) { in.OpenedAt = time.Time{} }},
	} {
		in := minimalIncident()
		c.modify(&in)
		err := in.Validate()
		if !errors.Is(err, ErrInvalidIncident) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v", c.want, err)
		}
		for name, build := range map[string]func(Incident) ([]byte, error){
			"generic":      Generic,
			"alertmanager": func(in Incident) ([]byte, error) { return Alertmanager(in, AlertmanagerOptions{}) },
			"slack":        func(in Incident) ([]byte, error) { return Slack(in, SlackOptions{}) },
			"pagerduty":    func(in Incident) ([]byte, error) { return PagerDuty(in, PagerDutyConfig{RoutingKey: "k"}) },
		} {
			if _, err := build(in); !errors.Is(err, ErrInvalidIncident) || !errs.IsPermanent(err) {
				t.Errorf("%s of an incident with %s: %v", name, c.want, err)
			}
		}
	}
}

func TestIdempotencyKey(t *testing.T) {
	in := SampleIncident()
	k := IdempotencyKey(in)
	if !event.ValidID(k) || strings.Contains(k, ".") || checkKey(k) != nil {
		t.Fatalf("key %q is not a ULID fit for webhook-id", k)
	}
	if !event.IDTime(k).Equal(in.At) {
		t.Fatalf("key time %v, want the transition's %v", event.IDTime(k), in.At)
	}
	if IdempotencyKey(SampleIncident()) != k {
		t.Fatal("the same transition got another key")
	}
	// Fields that are not the identity of the transition do not change it.
	same := in
	same.Title, same.Members = "renamed", nil
	if IdempotencyKey(same) != k {
		t.Fatal("the key depends on the title")
	}
	seen := map[string]bool{k: true}
	for _, modify := range []func(*Incident){
		func(in *Incident) { in.ID = "01JPA9V3KX8Q6M1T2R3S4W5Y70" },
		func(in *Incident) { in.Transition = TransitionUpdated },
		func(in *Incident) { in.Status, in.Transition = StatusResolved, TransitionResolved },
		func(in *Incident) { in.At = in.At.Add(time.Millisecond) },
		func(in *Incident) { in.At = in.At.Add(time.Nanosecond) },
	} {
		other := SampleIncident()
		modify(&other)
		k2 := IdempotencyKey(other)
		if seen[k2] {
			t.Fatalf("two transitions share the key %s", k2)
		}
		seen[k2] = true
	}
	// Without At, the time of the status.
	res := minimalIncident()
	res.Status, res.Transition, res.ResolvedAt = StatusResolved, TransitionResolved, res.OpenedAt.Add(time.Hour)
	if !res.Time().Equal(res.ResolvedAt) || !event.IDTime(IdempotencyKey(res)).Equal(res.ResolvedAt) {
		t.Fatalf("Time of a resolved incident: %v", res.Time())
	}
}

func TestGenericPayload(t *testing.T) {
	in := SampleIncident()
	b, err := Generic(in)
	if err != nil {
		t.Fatal(err)
	}
	m := decode(t, b)
	if got := keys(m); !slices.Equal(got, []string{"data", "timestamp", "type", "version"}) {
		t.Fatalf("top-level keys %v", got)
	}
	if m["version"] != "aiops.incident.v1" || m["type"] != "incident.opened" || m["timestamp"] != "2026-03-14T09:26:53Z" {
		t.Fatalf("envelope %v %v %v", m["version"], m["type"], m["timestamp"])
	}
	d := m["data"].(map[string]any)
	want := []string{
		"assignee", "changes", "id", "idempotency_key", "labels", "member_count", "members", "opened_at", "owner",
		"root_causes", "runbook", "service", "services", "severity", "status", "summary", "team", "title", "transition", "url",
	}
	if got := keys(d); !slices.Equal(got, want) {
		t.Fatalf("data keys %v\nwant %v", got, want)
	}
	if d["id"] != in.ID || d["idempotency_key"] != IdempotencyKey(in) || d["status"] != "open" || d["severity"] != "critical" ||
		d["member_count"] != 2.0 || d["opened_at"] != "2026-03-14T09:26:53Z" {
		t.Fatalf("data %v", d)
	}
	rc := d["root_causes"].([]any)[0].(map[string]any)
	if got := keys(rc); !slices.Equal(got, []string{"reasons", "score", "service"}) || rc["score"] != 0.82 {
		t.Fatalf("root cause %v", rc)
	}
	mem := d["members"].([]any)[0].(map[string]any)
	if got := keys(mem); !slices.Equal(got, []string{"fingerprint", "firing", "first_seen", "kind", "labels", "last_seen", "name", "service", "severity", "summary"}) {
		t.Fatalf("member keys %v", got)
	}
	ch := d["changes"].([]any)[0].(map[string]any)
	if got := keys(ch); !slices.Equal(got, []string{"author", "commit", "description", "id", "service", "time", "type", "url", "version"}) {
		t.Fatalf("change keys %v", got)
	}

	// A minimal incident: the "always" fields, with empty lists and maps
	// rather than null.
	b, err = Generic(minimalIncident())
	if err != nil {
		t.Fatal(err)
	}
	d = decode(t, b)["data"].(map[string]any)
	want = []string{"changes", "id", "idempotency_key", "labels", "member_count", "members", "opened_at", "root_causes", "services", "status", "title", "transition"}
	if got := keys(d); !slices.Equal(got, want) {
		t.Fatalf("minimal data keys %v\nwant %v", got, want)
	}
	if !strings.Contains(string(b), `"services":[],"root_causes":[],"members":[],"member_count":0,"changes":[],"labels":{}`) {
		t.Fatalf("empty collections: %s", b)
	}

	// Resolved: the times appear, type follows the transition.
	res := SampleIncident()
	res.Status, res.Transition = StatusResolved, TransitionResolved
	res.AcknowledgedAt, res.ResolvedAt = res.OpenedAt.Add(time.Minute), res.OpenedAt.Add(time.Hour)
	res.At = res.ResolvedAt
	m = decode(t, must(Generic(res)))
	d = m["data"].(map[string]any)
	if m["type"] != "incident.resolved" || m["timestamp"] != "2026-03-14T10:26:53Z" || d["resolved_at"] != "2026-03-14T10:26:53Z" || d["acknowledged_at"] != "2026-03-14T09:27:53Z" {
		t.Fatalf("resolved: %v", m)
	}
	if _, ok := d["acknowledged_by"]; ok {
		t.Fatalf("acknowledged_by without anybody named: %v", d)
	}

	// Who acted and what people wrote, for a ticket to show.
	res.AcknowledgedBy, res.ResolvedBy = "ana", "bo"
	res.Comments = []Comment{{By: "ana", Text: "failing over the replica", Time: res.OpenedAt.Add(2 * time.Minute)}}
	d = decode(t, must(Generic(res)))["data"].(map[string]any)
	if d["acknowledged_by"] != "ana" || d["resolved_by"] != "bo" {
		t.Fatalf("acknowledged by %v, resolved by %v; want ana and bo", d["acknowledged_by"], d["resolved_by"])
	}
	if c := d["comments"].([]any); len(c) != 1 || fmt.Sprint(c[0]) != "map[by:ana text:failing over the replica time:2026-03-14T09:28:53Z]" {
		t.Fatalf("comments %v", c)
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

func TestAlertmanagerPayload(t *testing.T) {
	in := SampleIncident()
	in.MemberCount = 5 // two listed of five
	b, err := Alertmanager(in, AlertmanagerOptions{Receiver: "team-payments", ExternalURL: "https://aiops.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	m := decode(t, b)
	want := []string{"alerts", "commonAnnotations", "commonLabels", "externalURL", "groupKey", "groupLabels", "receiver", "status", "truncatedAlerts", "version"}
	if got := keys(m); !slices.Equal(got, want) {
		t.Fatalf("keys %v\nwant %v", got, want)
	}
	if m["version"] != "4" || m["status"] != "firing" || m["receiver"] != "team-payments" || m["externalURL"] != "https://aiops.example.com" ||
		m["groupKey"] != `{}:{incident_id="`+in.ID+`"}` || m["truncatedAlerts"] != 3.0 {
		t.Fatalf("message %v", m)
	}
	if gl := m["groupLabels"].(map[string]any); len(gl) != 1 || gl["incident_id"] != in.ID {
		t.Fatalf("groupLabels %v", gl)
	}
	cl := m["commonLabels"].(map[string]any)
	if cl["incident_id"] != in.ID || cl["team"] != "payments" || cl["env"] != "prod" || cl["region"] != "eu-west-1" || cl["alertname"] != nil {
		t.Fatalf("commonLabels %v", cl)
	}
	ca := m["commonAnnotations"].(map[string]any)
	if ca["incident_title"] != in.Title || ca["runbook_url"] != in.Runbook || ca["incident_status"] != "open" || ca["summary"] != nil {
		t.Fatalf("commonAnnotations %v", ca)
	}
	alerts := m["alerts"].([]any)
	if len(alerts) != 2 {
		t.Fatalf("%d alerts", len(alerts))
	}
	hex16 := regexp.MustCompile(`^[0-9a-f]{16}$`)
	for i, a := range alerts {
		a := a.(map[string]any)
		if got := keys(a); !slices.Equal(got, []string{"annotations", "endsAt", "fingerprint", "generatorURL", "labels", "startsAt", "status"}) {
			t.Fatalf("alert keys %v", got)
		}
		labels := map[string]string{}
		for k, v := range a["labels"].(map[string]any) {
			labels[k] = v.(string)
		}
		if a["status"] != "firing" || a["endsAt"] != "0001-01-01T00:00:00Z" || a["generatorURL"] != in.URL ||
			!hex16.MatchString(a["fingerprint"].(string)) || a["fingerprint"] != event.AlertmanagerFingerprint(labels) {
			t.Fatalf("alert %d: %v", i, a)
		}
		if _, err := time.Parse(time.RFC3339, a["startsAt"].(string)); err != nil {
			t.Fatal(err)
		}
	}
	a0 := alerts[0].(map[string]any)["labels"].(map[string]any)
	if a0["alertname"] != "HighErrorRate" || a0["service"] != "checkout" || a0["severity"] != "critical" {
		t.Fatalf("first alert labels %v", a0)
	}
	if alerts[0].(map[string]any)["startsAt"] != "2026-03-14T09:25:23Z" {
		t.Fatalf("startsAt %v", alerts[0].(map[string]any)["startsAt"])
	}

	// Resolved: every alert resolved with an end.
	res := SampleIncident()
	res.Status, res.Transition, res.ResolvedAt = StatusResolved, TransitionResolved, res.OpenedAt.Add(time.Hour)
	m = decode(t, must(Alertmanager(res, AlertmanagerOptions{})))
	if m["status"] != "resolved" {
		t.Fatalf("status %v", m["status"])
	}
	for _, a := range m["alerts"].([]any) {
		a := a.(map[string]any)
		if a["status"] != "resolved" || a["endsAt"] != "2026-03-14T10:26:53Z" {
			t.Fatalf("resolved alert %v", a)
		}
	}

	// No members: the incident is the one alert.
	m = decode(t, must(Alertmanager(minimalIncident(), AlertmanagerOptions{})))
	alerts = m["alerts"].([]any)
	if len(alerts) != 1 || alerts[0].(map[string]any)["labels"].(map[string]any)["alertname"] != "AiopsIncident" ||
		alerts[0].(map[string]any)["annotations"].(map[string]any)["summary"] != "disk almost full" || m["truncatedAlerts"] != 0.0 {
		t.Fatalf("incident without members: %v", m)
	}
}

func TestSlackPayload(t *testing.T) {
	in := SampleIncident()
	in.Title = "checkout <down> & out " + strings.Repeat("x", 200)
	in.Summary = "<!channel> said <b>"
	b, err := Slack(in, SlackOptions{Channel: "#incidents"})
	if err != nil {
		t.Fatal(err)
	}
	m := decode(t, b)
	if got := keys(m); !slices.Equal(got, []string{"blocks", "channel", "text"}) {
		t.Fatalf("keys %v", got)
	}
	text := m["text"].(string)
	if !strings.HasPrefix(text, "🚨 [OPENED] checkout &lt;down&gt; &amp; out") || strings.ContainsAny(text, "<>") {
		t.Fatalf("text %q", text)
	}
	blocks := m["blocks"].([]any)
	header := blocks[0].(map[string]any)
	ht := header["text"].(map[string]any)
	if header["type"] != "header" || ht["type"] != "plain_text" || len([]rune(ht["text"].(string))) != slackHeaderMax ||
		!strings.HasPrefix(ht["text"].(string), "🚨 [OPENED] checkout <down> & out") {
		t.Fatalf("header %v", header)
	}
	var types []string
	for _, bl := range blocks {
		bl := bl.(map[string]any)
		types = append(types, bl["type"].(string))
		if tx, ok := bl["text"].(map[string]any); ok && tx["type"] == "mrkdwn" {
			s := tx["text"].(string)
			if strings.Contains(s, "<!channel>") || strings.Contains(s, "<b>") {
				t.Fatalf("unescaped mrkdwn %q", s)
			}
		}
		if fs, ok := bl["fields"].([]any); ok && len(fs) > slackFieldCount {
			t.Fatalf("%d fields", len(fs))
		}
	}
	if !slices.Equal(types, []string{"header", "section", "section", "section", "section", "section", "context"}) {
		t.Fatalf("blocks %v", types)
	}
	if !strings.Contains(string(b), "<https://runbooks.example.com/checkout/high-error-rate|Runbook>") ||
		!strings.Contains(string(b), "*checkout* (0.82)") || !strings.Contains(string(b), "<!date^") {
		t.Fatalf("links, root causes or dates missing: %s", b)
	}
	// A minimal incident: header, fields, context.
	m = decode(t, must(Slack(minimalIncident(), SlackOptions{})))
	types = nil
	for _, bl := range m["blocks"].([]any) {
		types = append(types, bl.(map[string]any)["type"].(string))
	}
	if !slices.Equal(types, []string{"header", "section", "context"}) || m["channel"] != nil {
		t.Fatalf("minimal: %v", m)
	}
}

func TestPagerDutyPayload(t *testing.T) {
	cfg := PagerDutyConfig{RoutingKey: "R0UT1NGKEY0000000000000000000000", ClientURL: "https://aiops.example.com"}
	in := SampleIncident()
	in.Title = strings.Repeat("t", 2000)
	m := decode(t, must(PagerDuty(in, cfg)))
	if got := keys(m); !slices.Equal(got, []string{"client", "client_url", "dedup_key", "event_action", "links", "payload", "routing_key"}) {
		t.Fatalf("trigger keys %v", got)
	}
	if m["event_action"] != "trigger" || m["dedup_key"] != in.ID || m["routing_key"] != cfg.RoutingKey || m["client"] != "aiops" {
		t.Fatalf("trigger %v", m)
	}
	p := m["payload"].(map[string]any)
	if got := keys(p); !slices.Equal(got, []string{"class", "component", "custom_details", "group", "severity", "source", "summary", "timestamp"}) {
		t.Fatalf("payload keys %v", got)
	}
	if len([]rune(p["summary"].(string))) != 1024 || p["source"] != "checkout" || p["severity"] != "critical" || p["group"] != "payments" ||
		p["timestamp"] != "2026-03-14T09:26:53.000Z" {
		t.Fatalf("payload %v", p)
	}
	cd := p["custom_details"].(map[string]any)
	if cd["incident_id"] != in.ID || cd["runbook"] != in.Runbook || len(cd["root_causes"].([]any)) != 2 {
		t.Fatalf("custom_details %v", cd)
	}
	links := m["links"].([]any)
	if len(links) != 2 || links[1].(map[string]any)["href"] != in.Runbook {
		t.Fatalf("links %v", links)
	}

	for _, c := range []struct {
		status Status
		action string
	}{{StatusAcknowledged, "acknowledge"}, {StatusResolved, "resolve"}} {
		in := SampleIncident()
		in.Status, in.Transition = c.status, Transition(c.action+"d")
		m := decode(t, must(PagerDuty(in, cfg)))
		if got := keys(m); !slices.Equal(got, []string{"dedup_key", "event_action", "routing_key"}) || m["event_action"] != c.action || m["dedup_key"] != in.ID {
			t.Fatalf("%s: %v", c.action, m)
		}
	}
	// Reopened: a trigger on the same dedup_key.
	in = SampleIncident()
	in.Transition = TransitionReopened
	if m := decode(t, must(PagerDuty(in, cfg))); m["event_action"] != "trigger" || m["dedup_key"] != in.ID {
		t.Fatalf("reopened: %v", m)
	}

	// Severities PagerDuty knows; the default for none.
	for sev, want := range map[event.Severity]string{"": "error", event.SeverityDebug: "info", event.SeverityWarning: "warning", "bogus": "error"} {
		in := minimalIncident()
		in.Severity = sev
		p := decode(t, must(PagerDuty(in, cfg)))["payload"].(map[string]any)
		if p["severity"] != want || p["source"] != "aiops" {
			t.Errorf("severity %q: %v", sev, p)
		}
	}
	cfg.DefaultSeverity = "warning"
	if p := decode(t, must(PagerDuty(minimalIncident(), cfg)))["payload"].(map[string]any); p["severity"] != "warning" {
		t.Errorf("default_severity: %v", p["severity"])
	}

	if _, err := PagerDuty(minimalIncident(), PagerDutyConfig{RoutingKeyFile: "/run/secrets/pd"}); !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "LoadRoutingKey") {
		t.Fatalf("no routing key: %v", err)
	}
	long := minimalIncident()
	long.ID = strings.Repeat("i", 256)
	if _, err := PagerDuty(long, cfg); !errors.Is(err, ErrInvalidIncident) {
		t.Fatalf("id over 255: %v", err)
	}
}

// PagerDuty ignores an acknowledge for a dedup_key with no open alert: an
// incident acknowledged before its receiver heard of it (FirstNotice) is
// triggered first, then acknowledged, on one dedup_key; one it heard of is
// only acknowledged, and a resolve or a trigger is sent alone either way.
func TestPagerDutyEvents(t *testing.T) {
	cfg := PagerDutyConfig{RoutingKey: "R0UT1NGKEY0000000000000000000000"}
	for _, c := range []struct {
		status Status
		first  bool
		want   []string
	}{
		{StatusAcknowledged, true, []string{"trigger", "acknowledge"}},
		{StatusAcknowledged, false, []string{"acknowledge"}},
		{StatusOpen, true, []string{"trigger"}},
		{StatusResolved, true, []string{"resolve"}},
		{StatusResolved, false, []string{"resolve"}},
	} {
		in := SampleIncident()
		in.Status, in.Transition, in.FirstNotice = c.status, Transition(pdAction(c.status)+"d"), c.first
		if c.status == StatusOpen {
			in.Transition = TransitionOpened
		}
		events, err := PagerDutyEvents(in, cfg)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range events {
			m := decode(t, e.Body)
			if m["event_action"] != e.Action || m["dedup_key"] != in.ID {
				t.Fatalf("%s: event %s is %v", c.status, e.Action, m)
			}
			got = append(got, e.Action)
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%s, first notice %v: %v, want %v", c.status, c.first, got, c.want)
		}
		if string(events[len(events)-1].Body) != string(must(PagerDuty(in, cfg))) {
			t.Errorf("%s: the last event is not PagerDuty's", c.status)
		}
		if c.want[0] == "trigger" {
			p := decode(t, events[0].Body)["payload"].(map[string]any)
			if p["summary"] != in.Title || p["severity"] != "critical" {
				t.Errorf("%s: trigger payload %v", c.status, p)
			}
		}
	}
	if _, err := PagerDutyEvents(minimalIncident(), PagerDutyConfig{}); !errors.Is(err, ErrInvalidConfig) || !errs.IsPermanent(err) {
		t.Fatalf("no routing key: %v", err)
	}
}

func TestPagerDutyConfig(t *testing.T) {
	for _, c := range []struct {
		key string
		cfg PagerDutyConfig
	}{
		{"routing_key_file", PagerDutyConfig{}},
		{"routing_key", PagerDutyConfig{RoutingKey: "a b"}},
		{"default_severity", PagerDutyConfig{RoutingKey: "k", DefaultSeverity: "debug"}},
		{"client_url", PagerDutyConfig{RoutingKey: "k", ClientURL: "aiops.example.com"}},
	} {
		if err := c.cfg.Validate(); !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), ": "+c.key+": ") {
			t.Errorf("%s: %v", c.key, err)
		}
	}
	dir := t.TempDir()
	path := dir + "/pd"
	if err := writeFile(path, "R0UT1NG\n"); err != nil {
		t.Fatal(err)
	}
	cfg, err := PagerDutyConfig{RoutingKeyFile: path}.LoadRoutingKey()
	if err != nil || cfg.RoutingKey != "R0UT1NG" || cfg.Validate() != nil {
		t.Fatalf("LoadRoutingKey = %+v, %v", cfg, err)
	}
	if _, err := (PagerDutyConfig{RoutingKeyFile: dir + "/missing"}).LoadRoutingKey(); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("missing file: %v", err)
	}
}

// A JSON template that puts a text value into its output without the json
// function renders valid JSON for the sample incident, whose text has no
// quote, and breaks on a title with one (or lets a crafted title add keys):
// the check renders an incident whose text has quotes, a backslash and a
// line break too, and refuses it, naming the template and the json
// function. Values that are not free text (id, status, severity, URLs) and
// text templates pass.
func TestTemplateCheckQuotesValues(t *testing.T) {
	for _, text := range []string{
		`{"summary": "{{ .Title }}", "severity": "{{ .Severity }}"}`,
		`{"summary": "{{ truncate 5 .Title }}"}`,
		`{"service": "{{ .Service }}", "team": {{ json .Team }}}`,
		`{"env": "{{ index .Labels "env" }}"}`,
		`{"why": "{{ range .RootCauses }}{{ range .Reasons }}{{ . }}; {{ end }}{{ end }}"}`,
		`{"alerts": [{{ range $i, $m := .Members }}{{ if $i }},{{ end }}"{{ $m.Name }}"{{ end }}]}`,
		`{"change": "{{ range .Changes }}{{ .Description }}{{ end }}"}`,
		`{"summary": "{{ js .Title }}"}`,
		`{"summary": "{{ html .Title }}"}`,
	} {
		err := CheckTemplate("ticket", text, TemplateJSON)
		if !errors.Is(err, ErrTemplate) || !strings.Contains(err.Error(), `template "ticket"`) || !strings.Contains(err.Error(), "json function") {
			t.Errorf("%s: %v; want it refused, naming the template and the json function", text, err)
		}
	}
	for _, text := range []string{
		`{"summary": {{ json .Title }}, "id": "{{ .ID }}", "status": "{{ .Status }}", "severity": "{{ upper .Severity }}", "url": "{{ .URL }}", "key": "{{ key }}"}`,
		`{"summary": {{ json (printf "[%s] %s" (upper .Severity) (truncate 20 .Title)) }}, "causes": [{{ range $i, $c := .RootCauses }}{{ if $i }}, {{ end }}{{ json $c.Service }}{{ end }}]}`,
		`{"summary": "{{ printf "%q" .Title | printf "%s" | len }}"}`,
	} {
		if err := CheckTemplate("ticket", text, TemplateJSON); err != nil {
			t.Errorf("%s: %v", text, err)
		}
	}
	if err := CheckTemplate("text", `"{{ .Title }}" on {{ .Service }}`, TemplateText); err != nil {
		t.Errorf("a text template: %v", err)
	}
}

func TestTemplate(t *testing.T) {
	const text = `{
  "id": {{json .ID}},
  "key": {{json key}},
  "text": {{json (printf "%s [%s] %s" (upper (default "unknown" .Severity)) .Status (truncate 20 .Title))}},
  "services": {{json (join .Services ", ")}},
  "opened": {{json (rfc3339 .OpenedAt)}},
  "resolved": {{unix .ResolvedAt}},
  "day": {{json (time "2006-01-02" .OpenedAt)}}
}`
	tmpl, err := ParseTemplate("teams", text, TemplateJSON)
	if err != nil {
		t.Fatal(err)
	}
	if err := tmpl.Check(); err != nil {
		t.Fatal(err)
	}
	in := SampleIncident()
	m := decode(t, must(tmpl.Render(in)))
	if m["id"] != in.ID || m["key"] != IdempotencyKey(in) || m["text"] != "CRITICAL [open] checkout: error rat…" ||
		m["services"] != "checkout, payments-api" || m["opened"] != "2026-03-14T09:26:53Z" || m["resolved"] != 0.0 || m["day"] != "2026-03-14" {
		t.Fatalf("rendered %v", m)
	}
	m = decode(t, must(tmpl.Render(minimalIncident())))
	if m["text"] != "UNKNOWN [open] disk almost full" || m["key"] != IdempotencyKey(minimalIncident()) {
		t.Fatalf("minimal %v", m)
	}

	for _, c := range []struct {
		name, text string
		format     TemplateFormat
		want       string
	}{
		// Parse errors name the line.
		{"parse", "{\n  \"a\": {{json .Title}},\n  \"b\": {{titel .Title}}\n}", TemplateJSON, `webhook: template "parse" line 3: function "titel" not defined`},
		{"unclosed", "line one\n{{if .Title}}\nno end", TemplateText, `template "unclosed" line 3: unexpected EOF`},
		// Rendering errors name the line, for the sample incident...
		{"field", "ok\n{{.Nope}}", TemplateText, `template "field" line 2: at <.Nope>: can't evaluate field Nope`},
		// ...and for a minimal one: a template that only works when an
		// incident has root causes fails at configuration time.
		{"index", "{\n\"rc\": {{json (index .RootCauses 0).Service}}\n}", TemplateJSON, `template "index" line 2: at <index .RootCauses 0>: error calling index`},
		{"missing label", `{{.Labels.env}}`, TemplateText, `template "missing label" line 1: at <.Labels.env>: map has no entry for key "env" (rendering a minimal incident)`},
		// Output that is not JSON names its line.
		{"json", "{\n  \"title\": \"{{.Title}}\",\n  \"summary\": {{.Summary}}\n}", TemplateJSON, `template "json": output line 3 is not valid JSON`},
	} {
		err := CheckTemplate(c.name, c.text, c.format)
		if !errors.Is(err, ErrTemplate) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v\nwant %s", c.name, err, c.want)
		}
	}
	if err := CheckTemplate("text", "{{.Title}} is {{.Status}}", TemplateText); err != nil {
		t.Fatal(err)
	}
	if _, err := ParseTemplate("", "x", TemplateText); !errors.Is(err, ErrTemplate) {
		t.Fatal(err)
	}
	runaway, _ := ParseTemplate("runaway", `{{range .Services}}{{range $.Services}}{{printf "%01048576d" 0}}{{end}}{{end}}`, TemplateText)
	if _, err := runaway.Render(SampleIncident()); !errors.Is(err, ErrTemplate) || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("runaway: %v", err)
	}
}

// End to end: an incident's payload, delivered signed, verified and
// decoded by the receiver.
func TestDeliverIncident(t *testing.T) {
	clock := newFakeClock()
	var got map[string]any
	rcv := newTestReceiver(t, clock, testSecret, func(_ int, w http.ResponseWriter, r *http.Request) {})
	c := newTestClient(t, testConfig(), clock, &attempts{})
	in := SampleIncident()
	body, err := Generic(in)
	if err != nil {
		t.Fatal(err)
	}
	req := Request{Receiver: "ops", URL: rcv.URL, Body: body, IdempotencyKey: IdempotencyKey(in), Secrets: [][]byte{testSecret}}
	if _, err := c.Deliver(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	h := rcv.Hits()[0]
	if h.verify != nil {
		t.Fatal(h.verify)
	}
	got = decode(t, h.body)
	if h.header.Get(HeaderID) != got["data"].(map[string]any)["idempotency_key"] {
		t.Fatalf("webhook-id %s, payload %v", h.header.Get(HeaderID), got["data"])
	}
}

func writeFile(path, content string) error { return os.WriteFile(path, []byte(content), 0o600) }

// ParseGeneric reads back what Generic wrote, as a payload or its data
// alone, and refuses what is not an incident.
func TestParseGenericRoundTrip(t *testing.T) {
	in := SampleIncident()
	in.Status, in.Transition, in.AcknowledgedAt, in.AcknowledgedBy = StatusAcknowledged, TransitionAcknowledged, in.OpenedAt.Add(time.Minute), "ana"
	in.At = in.AcknowledgedAt
	in.Comments = []Comment{{By: "ana", Text: "looking", Time: in.At}}
	b := must(Generic(in))
	back, err := ParseGeneric(b)
	if err != nil {
		t.Fatal(err)
	}
	if again := must(Generic(back)); string(again) != string(b) {
		t.Fatalf("round trip differs:\n%s\n%s", b, again)
	}
	data, _ := json.Marshal(decode(t, b)["data"])
	if d, err := ParseGeneric(data); err != nil || d.ID != in.ID || d.Time() != in.AcknowledgedAt {
		t.Fatalf("data alone: %+v %v", d, err)
	}
	for _, bad := range []string{`[1]`, `{"version":"aiops.incident.v9","data":{}}`, `{"id":"x"}`, `{"data":{"id":"x","status":"open","transition":"opened","title":"t"}}`} {
		if _, err := ParseGeneric([]byte(bad)); !errors.Is(err, ErrInvalidIncident) {
			t.Errorf("%s: %v, want ErrInvalidIncident", bad, err)
		}
	}
}

// The aiops payload says when it is a receiver's first notice of an
// incident, whatever its transition (an acknowledgement can be, after a
// restart), so that a receiver opening tickets on incident.opened opens
// one for it too; it adds nothing else, and reads back.
func TestGenericPayloadSaysItIsAFirstNotice(t *testing.T) {
	in := SampleIncident()
	in.Status, in.Transition = StatusAcknowledged, TransitionAcknowledged
	in.AcknowledgedAt, in.AcknowledgedBy = in.OpenedAt.Add(time.Minute), "ana"
	first := in
	first.FirstNotice = true
	d := decode(t, must(Generic(first)))["data"].(map[string]any)
	dLater := decode(t, must(Generic(in)))["data"].(map[string]any)
	if d["first_notice"] != true {
		t.Fatalf("a first notice's payload: first_notice %v", d["first_notice"])
	}
	if _, ok := dLater["first_notice"]; ok {
		t.Fatalf("a later notice's payload has first_notice: %v", dLater)
	}
	delete(d, "first_notice")
	if !reflect.DeepEqual(d, dLater) {
		t.Fatalf("first_notice changed other fields:\n%v\n%v", d, dLater)
	}
	if back, err := ParseGeneric(must(Generic(first))); err != nil || !back.FirstNotice {
		t.Fatalf("ParseGeneric: first notice %v, %v", back.FirstNotice, err)
	}
}

// mergedIncident is SampleIncident resolved by a merge into another.
func mergedIncident() Incident {
	in := SampleIncident()
	in.Status, in.Transition = StatusResolved, TransitionResolved
	in.ResolvedAt = in.OpenedAt.Add(3 * time.Minute)
	in.At = in.ResolvedAt
	in.MergedInto = "01JPA9Z0000000000000000TGT"
	return in
}

// A merged incident's resolution names the incident it went to in every
// payload that has a place for it, and changes nothing else: the generic
// payload gains merged_into alone, and reads back.
func TestMergedIncidentPayloads(t *testing.T) {
	in := mergedIncident()
	plain := in
	plain.MergedInto = ""

	d := decode(t, must(Generic(in)))["data"].(map[string]any)
	dPlain := decode(t, must(Generic(plain)))["data"].(map[string]any)
	if d["merged_into"] != in.MergedInto {
		t.Fatalf("generic merged_into %v", d["merged_into"])
	}
	if _, ok := dPlain["merged_into"]; ok {
		t.Fatalf("generic payload of an unmerged incident has merged_into: %v", dPlain)
	}
	delete(d, "merged_into")
	if !reflect.DeepEqual(d, dPlain) {
		t.Fatalf("merged_into changed other fields:\n%v\n%v", d, dPlain)
	}
	back, err := ParseGeneric(must(Generic(in)))
	if err != nil || back.MergedInto != in.MergedInto {
		t.Fatalf("ParseGeneric: merged_into %q, %v", back.MergedInto, err)
	}

	m := decode(t, must(Alertmanager(in, AlertmanagerOptions{})))
	if m["status"] != "resolved" || m["commonAnnotations"].(map[string]any)["incident_merged_into"] != in.MergedInto {
		t.Fatalf("alertmanager: status %v, commonAnnotations %v", m["status"], m["commonAnnotations"])
	}
	if ann := decode(t, must(Alertmanager(plain, AlertmanagerOptions{})))["commonAnnotations"].(map[string]any); ann["incident_merged_into"] != nil {
		t.Fatalf("alertmanager annotations of an unmerged incident: %v", ann)
	}

	s := decode(t, must(Slack(in, SlackOptions{})))
	if text := s["text"].(string); !strings.HasSuffix(text, ", merged into "+in.MergedInto) || !strings.HasPrefix(text, "✅ [RESOLVED]") {
		t.Fatalf("slack text %q", text)
	}
	fields := s["blocks"].([]any)[2].(map[string]any)["fields"].([]any)
	if f := fields[1].(map[string]any)["text"]; f != "*Merged into*\n`"+in.MergedInto+"`" {
		t.Fatalf("slack second field %q", f)
	}
	if b := must(Slack(plain, SlackOptions{})); strings.Contains(string(b), "erged into") {
		t.Fatalf("slack payload of an unmerged incident mentions a merge: %s", b)
	}

	tpl, err := ParseTemplate("merged", `{{ with .MergedInto }}merged into {{ . }}{{ end }}`, TemplateText)
	if err != nil || tpl.Check() != nil {
		t.Fatalf("a template of MergedInto: %v", err)
	}
	if out, err := tpl.Render(in); err != nil || string(out) != "merged into "+in.MergedInto {
		t.Fatalf("template rendered %q, %v", out, err)
	}

	// PagerDuty's resolve has no text to carry it: the same event.
	cfg := PagerDutyConfig{RoutingKey: "R0UT1NGKEY0000000000000000000000"}
	if a, b := must(PagerDuty(in, cfg)), must(PagerDuty(plain, cfg)); string(a) != string(b) {
		t.Fatalf("pagerduty resolve differs:\n%s\n%s", a, b)
	}

	for _, tc := range []struct {
		change func(*Incident)
		want   string
	}{
		{func(in *Incident) { in.Status, in.Transition = StatusOpen, TransitionUpdated }, `merged_into "01JPA9Z0000000000000000TGT" with status open`},
		{func(in *Incident) { in.MergedInto = in.ID }, "merged into itself"},
	} {
		bad := mergedIncident()
		tc.change(&bad)
		if _, err := Generic(bad); !errors.Is(err, ErrInvalidIncident) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want an error saying %q", bad, err, tc.want)
		}
	}
}

// An incident of a storm, its members' labels and all, is larger than a
// receiver's max_body_bytes: its payload lists as many members as fit,
// the first ones, and says how many it left out, instead of being
// refused for its size (its event dead-lettered, and again at a replay).
func TestFitListsTheMembersThatFit(t *testing.T) {
	in := SampleIncident()
	member := in.Members[0]
	in.Members = nil
	for i := range 200 {
		m := member
		m.Fingerprint = fmt.Sprintf("%016x", i)
		m.Labels = map[string]string{}
		for j := range 18 {
			m.Labels[fmt.Sprintf("label_%02d", j)] = fmt.Sprintf("value-%03d-%02d-abcdefghijklmnopqrstuvwxyz", i, j)
		}
		in.Members = append(in.Members, m)
	}
	const limit = 64 << 10
	builders := map[string]func(Incident) ([]byte, error){
		"generic": Generic,
		"alertmanager": func(in Incident) ([]byte, error) {
			return Alertmanager(in, AlertmanagerOptions{Receiver: "pager"})
		},
	}
	for name, build := range builders {
		whole, err := build(in)
		if err != nil || len(whole) <= limit {
			t.Fatalf("%s: the whole payload is %d bytes (%v); the test wants it over %d", name, len(whole), err, limit)
		}
		b, err := Fit(in, limit, build)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) > limit {
			t.Fatalf("%s: fitted payload of %d bytes, over %d", name, len(b), limit)
		}
		var listed []string
		var count, truncated float64
		switch m := decode(t, b); name {
		case "generic":
			data := m["data"].(map[string]any)
			count = data["member_count"].(float64)
			for _, x := range data["members"].([]any) {
				listed = append(listed, x.(map[string]any)["fingerprint"].(string))
			}
		case "alertmanager":
			truncated = m["truncatedAlerts"].(float64)
			for _, x := range m["alerts"].([]any) {
				listed = append(listed, x.(map[string]any)["labels"].(map[string]any)["label_00"].(string)[6:9])
			}
		}
		n := len(listed)
		if n == 0 || n == len(in.Members) {
			t.Fatalf("%s: %d members listed, want some of the %d", name, n, len(in.Members))
		}
		if name == "generic" && (count != 200 || listed[0] != in.Members[0].Fingerprint || listed[n-1] != in.Members[n-1].Fingerprint) {
			t.Fatalf("%s: member_count %v, listed %s..%s; want 200 and the first %d members", name, count, listed[0], listed[n-1], n)
		}
		if name == "alertmanager" && (int(truncated) != 200-n || listed[0] != "000") {
			t.Fatalf("%s: truncatedAlerts %v with %d listed, first %s; want %d and the first member first", name, truncated, n, listed[0], 200-n)
		}
		// As many as fit: one more would not.
		more := in
		more.Members, more.MemberCount = in.Members[:n+1], 200
		if b, _ := build(more); len(b) <= limit {
			t.Fatalf("%s: %d members listed, but %d fit in %d bytes (%d)", name, n, n+1, limit, len(b))
		}
	}
	// A payload that fits is built once and left as it is.
	small := minimalIncident()
	builds := 0
	b, err := Fit(small, limit, func(in Incident) ([]byte, error) { builds++; return Generic(in) })
	if want, _ := Generic(small); err != nil || builds != 1 || string(b) != string(want) {
		t.Fatalf("small incident: %d builds, err %v; want one build, unchanged", builds, err)
	}
}
