package decode

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/aiops-dev/aiops/pkg/event"
)

// AlertmanagerVersion is the webhook payload version Alertmanager (0.x
// through today) sends and Alertmanager decodes.
const AlertmanagerVersion = "4"

// amPayload is the webhook body; the group fields are not needed per alert.
type amPayload struct {
	Version string       `json:"version"`
	Status  string       `json:"status"`
	Alerts  boundedItems `json:"alerts"`
}

// amAlert keeps the times as strings so a bad one is reported by name.
type amAlert struct {
	Status       string            `json:"status"`
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     string            `json:"startsAt"`
	EndsAt       string            `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
	Fingerprint  string            `json:"fingerprint"`
	// ExpiresAt is a posted firing alert's endsAt (unmarshalAlert).
	ExpiresAt time.Time `json:"-"`
}

// postableAlert is an alert posted to Alertmanager's API: what it takes of
// one. Its status and fingerprint Alertmanager works out, whatever the
// body says (a client posting back what it read has a status object).
type postableAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     string            `json:"startsAt"`
	EndsAt       string            `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
}

// unmarshalAlert reads raw into a: all of a webhook's alert, or what
// Alertmanager's API takes of a posted one (SourcePrometheus), whose
// status it works out as Alertmanager does: resolved once its endsAt has
// passed (now), else firing. A firing one's endsAt is how long
// Prometheus's alert holds without a resend, not an end: it is kept as
// ExpiresAt, and the row is the one Alertmanager's webhook would give.
// Without endsAt it holds for timeout (global.resolve_timeout), as
// Alertmanager's API has it. A bad endsAt is left for alertEvent to
// report.
func unmarshalAlert(raw json.RawMessage, source string, now time.Time, timeout time.Duration, a *amAlert) error {
	if source != SourcePrometheus {
		return json.Unmarshal(raw, a)
	}
	var p postableAlert
	if err := json.Unmarshal(raw, &p); err != nil {
		return err
	}
	*a = amAlert{Status: event.AlertFiring, Labels: p.Labels, Annotations: p.Annotations, StartsAt: p.StartsAt, EndsAt: p.EndsAt, GeneratorURL: p.GeneratorURL}
	switch ends, err := parseTime(p.EndsAt); {
	case err != nil:
	case !ends.IsZero() && !ends.After(now):
		a.Status = event.AlertResolved
	case ends.IsZero():
		a.EndsAt, a.ExpiresAt = "", now.Add(timeout)
	default:
		a.EndsAt, a.ExpiresAt = "", ends
	}
	return nil
}

// serviceLabels are the alert labels, in order, that name the service; an
// alert with none of them gets UnknownService.
var serviceLabels = []string{"service", "job", "app"}

// Alertmanager decodes a Prometheus Alertmanager webhook payload (version
// 4) into one alert event per alert. Item is the index in "alerts"; Field is
// the alert's field ("startsAt", "labels.alertname").
//
// Alertmanager always sends version "4", each alert's status and its
// fingerprint; a payload made by another tool may leave them out: no
// version is read as version 4, an alert without a status has the
// payload's, and one without a fingerprint gets the one Alertmanager would
// have given it (event.AlertmanagerFingerprint of its labels). A
// fingerprint sent is kept as it is. With o.AlertTimesFromNow a firing
// alert without startsAt starts, and a resolved one without endsAt ends,
// at o.Now. An alert with the id of an earlier one of the payload (one
// fingerprint, status and times) is refused, naming it.
//
// The envelope keeps Alertmanager's fingerprint, the labels (alertname
// included) and the severity from the "severity" label (event.ParseSeverity;
// an unknown word leaves it empty, the label stays). The service is the
// first of the labels service, job, app that is set, else "unknown". The
// event time is startsAt for a firing alert and endsAt for a resolved one.
// The body is an event.AlertBody: alertname, status, startsAt, endsAt,
// annotations, generatorURL.
func Alertmanager(body []byte, o Options) (*Batch, error) {
	o = o.withDefaults()
	if err := event.CheckJSONNesting(body); err != nil {
		return nil, tooDeep(err)
	}
	p := amPayload{Alerts: boundedItems{max: o.MaxEvents}}
	if err := json.Unmarshal(body, &p); err != nil {
		if errors.Is(err, errTooManyItems) {
			return nil, tooManyEvents(o.MaxEvents)
		}
		return nil, syntaxProblem(NoItem, err)
	}
	switch {
	case p.Version != "" && p.Version != AlertmanagerVersion:
		return nil, requestProblem("version", "is %q, want %q", clip(p.Version), AlertmanagerVersion)
	case len(p.Alerts.items) == 0:
		return nil, requestProblem("alerts", "is empty")
	}
	var c problems
	batch := &Batch{Events: make([]*event.Envelope, 0, len(p.Alerts.items))}
	seen := make(map[string]int, len(p.Alerts.items)) // ids, to their item
	for i, raw := range p.Alerts.items {
		e, cut := alertEvent(i, raw, p.Status, SourceAlertmanager, o, &c)
		if e == nil {
			continue
		}
		// Alertmanager sends an alert once per notification; another
		// tool may give two alerts one fingerprint, hence one id, and the
		// stream would keep the first while the answer said both were
		// taken.
		if j, dup := seen[e.ID]; dup {
			c.add(i, "fingerprint", "%q is item %d's too, with the same status and times: the stream keeps one event per id; give each alert a fingerprint of its own, or none (then it is Alertmanager's, from the labels)", clip(e.Fingerprint), j)
			continue
		}
		seen[e.ID] = i
		batch.Events = append(batch.Events, e)
		batch.Truncated += cut
	}
	if err := c.partial(batch); err != nil {
		return nil, err
	}
	return batch, nil
}

// PrometheusAlerts decodes what Prometheus posts to an Alertmanager
// (`alerting.alertmanagers`, API v2: POST /api/v2/alerts): a JSON array of
// alerts with labels, annotations, startsAt, endsAt and generatorURL, and
// no status or fingerprint. As Alertmanager reads them, an alert whose
// endsAt has passed (o.Now) is resolved, any other firing; Prometheus
// sends a firing alert's endsAt a few evaluation intervals ahead (it
// resends the alert before then) and a resolved one's at its resolution.
// The fingerprint is Alertmanager's, of the labels, so an alert sent both
// here and through an Alertmanager is one member of one incident. The
// events are as Alertmanager's: one per alert, the same for every resend
// of a firing alert (status and startsAt make its id). A firing alert
// without startsAt starts at o.Now, as Alertmanager's API starts it:
// Prometheus always sends one, other tools posting to an Alertmanager
// (falcosidekick) send none, and each of their posts is then an event of
// its own.
func PrometheusAlerts(body []byte, o Options) (*Batch, error) {
	o = o.withDefaults()
	o.AlertTimesFromNow = true
	if err := event.CheckJSONNesting(body); err != nil {
		return nil, tooDeep(err)
	}
	if trimmed := bytes.TrimSpace(body); len(trimmed) > 0 && trimmed[0] == '{' {
		// An Alertmanager's webhook pointed at the wrong path.
		return nil, requestProblem("", "is a JSON object, not the array of alerts Prometheus posts here; an Alertmanager webhook payload goes to /v1/alertmanager")
	}
	alerts := boundedItems{max: o.MaxEvents}
	if err := json.Unmarshal(body, &alerts); err != nil {
		if errors.Is(err, errTooManyItems) {
			return nil, tooManyEvents(o.MaxEvents)
		}
		return nil, syntaxProblem(NoItem, err)
	}
	if len(alerts.items) == 0 {
		return nil, requestProblem("", "is an empty list: Prometheus posts a JSON array of alerts")
	}
	var c problems
	batch := &Batch{Events: make([]*event.Envelope, 0, len(alerts.items))}
	seen := make(map[string]int, len(alerts.items))
	for i, raw := range alerts.items {
		e, cut := alertEvent(i, raw, "", SourcePrometheus, o, &c) // the status is worked out
		if e == nil {
			continue
		}
		if j, dup := seen[e.ID]; dup {
			c.add(i, "labels", "are item %d's too, with the same startsAt and endsAt: one alert is sent once", j)
			continue
		}
		seen[e.ID] = i
		batch.Events = append(batch.Events, e)
		batch.Truncated += cut
	}
	if err := c.partial(batch); err != nil {
		return nil, err
	}
	return batch, nil
}

// storableFrom is where event.Validate's storable range starts: a startsAt
// before it is refused, not clamped.
var storableFrom = time.Date(1970, 1, 2, 0, 0, 0, 0, time.UTC)

// alertEvent returns the alert's event, or nil with its problems in c, and
// how many of its label values it cut to fit.
func alertEvent(i int, raw json.RawMessage, groupStatus, source string, o Options, c *problems) (*event.Envelope, int) {
	var a amAlert
	if len(bytes.TrimSpace(raw)) == 0 || raw[0] != '{' {
		c.add(i, "", "is not a JSON object")
		return nil, 0
	}
	// encoding/json keeps the last of a label given twice and rewrites
	// invalid UTF-8: the alert would be stored (and fingerprinted) other
	// than it was sent. Alertmanager's own payloads have neither.
	if err := event.CheckJSON(raw); err != nil {
		c.addInvalid(i, err, nil)
		return nil, 0
	}
	if err := unmarshalAlert(raw, source, o.Now, o.ResolveTimeout, &a); err != nil {
		c.addProblem(problemOf(i, err))
		return nil, 0
	}
	if a.Status == "" {
		a.Status = groupStatus
	}
	if a.Fingerprint == "" {
		a.Fingerprint = event.AlertmanagerFingerprint(a.Labels)
	}
	// Alertmanager takes a label of any length, and falcosidekick makes
	// a Falco event's output fields labels: refused, the longest command
	// lines (a payload piped to a shell) were lost. A value over a label's
	// limit is cut as an OTLP attribute's is, marked with a hash of the
	// whole; the fingerprint above is the whole labels'.
	cut := cutLabels(a.Labels)
	before := c.total
	startsAt, startErr := parseTime(a.StartsAt)
	if startErr != nil {
		c.add(i, "startsAt", "%v", startErr)
	}
	endsAt, endErr := parseTime(a.EndsAt)
	if endErr != nil {
		c.add(i, "endsAt", "%v", endErr)
	}
	name := a.Labels["alertname"]
	switch {
	case len(a.Labels) == 0:
		c.add(i, "labels", "is empty: an alert has at least one label (alertname, as Prometheus gives every alert)")
	case name == "":
		// Alertmanager takes an alert with any one label. Named by its
		// fingerprint, nameless alerts stay apart: under one made-up name
		// the correlator would take them for one alert firing everywhere.
		name = a.Fingerprint
	}
	timeField := "startsAt"
	t := startsAt
	switch a.Status {
	case event.AlertFiring:
		switch {
		case !startsAt.IsZero() || startErr != nil:
		case o.AlertTimesFromNow && o.IdempotencyKey != "":
			// Started on arrival, the alert gets another derived id on
			// every retry: the key would be taken and do nothing.
			c.add(i, "startsAt", "is required with an Idempotency-Key: without it the alert starts when it arrives, so each retry would be stored as another alert")
		case o.AlertTimesFromNow:
			startsAt, t = o.Now, o.Now
		default:
			c.add(i, "startsAt", "is required")
		}
	case event.AlertResolved:
		switch {
		case !endsAt.IsZero() || endErr != nil:
		case o.AlertTimesFromNow:
			endsAt = o.Now
		default:
			c.add(i, "endsAt", "is required for a resolved alert")
		}
		timeField, t = "endsAt", endsAt
	case "":
		c.add(i, "status", "is required")
	default:
		c.add(i, "status", "is %q, want firing or resolved", clip(a.Status))
	}
	if c.total > before {
		return nil, 0
	}
	sev, ok := event.ParseSeverity(a.Labels["severity"])
	if !ok {
		sev = ""
	}
	e := &event.Envelope{
		Kind:        event.KindAlert,
		Time:        t,
		Service:     serviceFrom(a.Labels, serviceLabels),
		Labels:      a.Labels,
		Severity:    sev,
		Fingerprint: a.Fingerprint,
	}
	e.Body, _ = event.MarshalBody(event.AlertBody{
		Name:         name,
		Status:       a.Status,
		StartsAt:     startsAt,
		EndsAt:       endsAt,
		ExpiresAt:    a.ExpiresAt,
		Annotations:  a.Annotations,
		GeneratorURL: a.GeneratorURL,
	})
	// A firing alert is the same event every time Alertmanager repeats it
	// (its endsAt moves with each resend, so it is not part of the identity).
	identity := [][]byte{[]byte(a.Status), []byte(startsAt.UTC().Format(time.RFC3339Nano))}
	if a.Status == event.AlertResolved {
		identity = append(identity, []byte(endsAt.UTC().Format(time.RFC3339Nano)))
	}
	// A firing alert that started before the window is still news: its
	// event is timed at the start of the day after the window's start (the
	// same time for every resend during a day, so resends keep one id),
	// the true startsAt stays in the body and the original time is named
	// in the envelope's field time_clamped_from.
	if start := o.Now.Add(-o.MaxPast); a.Status == event.AlertFiring && e.Time.Before(start) && !e.Time.Before(storableFrom) {
		e.Extra = map[string]json.RawMessage{"time_clamped_from": json.RawMessage(strconv.Quote(e.Time.UTC().Format(time.RFC3339Nano)))}
		e.Time = start.UTC().Truncate(24 * time.Hour).Add(24 * time.Hour)
		if e.Time.After(o.Now) { // a window shorter than a day
			e.Time = o.Now
		}
	}
	if err := seal(e, source, o, identity...); err != nil {
		c.addInvalid(i, err, func(field string) string {
			switch {
			case field == "time":
				return timeField
			case field == "body.name":
				return "labels.alertname"
			case field == "body.generator_url":
				return "generatorURL"
			case strings.HasPrefix(field, "body.annotations"):
				return strings.TrimPrefix(field, "body.")
			}
			return field
		})
		return nil, 0
	}
	return e, cut
}

// serviceFrom is the value of the first of keys set in labels.
func serviceFrom(labels map[string]string, keys []string) string {
	for _, k := range keys {
		if v := labels[k]; v != "" {
			return v
		}
	}
	return UnknownService
}
