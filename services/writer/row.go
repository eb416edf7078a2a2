package writer

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/aiops-dev/aiops/pkg/errs"
	"github.com/aiops-dev/aiops/pkg/event"
)

// Table names, as in pkg/store/schema.
const (
	TableEvents            = "events"
	TableLogs              = "logs"
	TableMetricSamples     = "metric_samples"
	TableAlerts            = "alerts"
	TableChanges           = "changes"
	TableAnomalies         = "anomalies"
	TableIncidents         = "incidents"
	TableIncidentHistory   = "incident_history"
	TableWebhookDeliveries = "webhook_deliveries"
	TableLogTemplates      = "log_templates"
)

// ErrBadBody is wrapped (permanent) when an event's body does not fit its
// kind's table; the message names the field.
var ErrBadBody = errors.New("body does not fit its table")

// Columns are the columns the writer fills in each table, in the order of
// the rows Rows returns. webhook_deliveries is filled from the notifier's
// webhook_delivery events (one per attempt, through WebhookDeliveryRow).
var Columns = map[string][]string{
	TableEvents: EventColumns,
	TableLogs: {"id", "time", "observed_time", "service", "source", "severity", "message", "template_id", "template",
		"params", "trace_id", "span_id", "fingerprint", "labels.key", "labels.value", "resource.key", "resource.value", "links", "derived"},
	TableMetricSamples: {"id", "time", "name", "value", "type", "unit", "fingerprint", "service", "labels.key", "labels.value"},
	TableAlerts: {"id", "time", "alert_name", "status", "fingerprint", "starts_at", "ends_at", "severity", "service",
		"labels.key", "labels.value", "annotations.key", "annotations.value", "generator_url"},
	TableChanges: {"id", "time", "service", "change_type", "version", "author", "commit", "url", "description",
		"labels.key", "labels.value"},
	TableAnomalies: {"id", "time", "service", "series", "metric", "value", "expected", "lower", "upper", "score",
		"detector", "window", "reason", "episode", "episode_id", "episode_start", "episode_end", "peak", "peak_time",
		"peak_value", "severity", "labels.key", "labels.value", "links"},
	TableIncidents: {"incident_id", "version", "id", "time", "status", "title", "service", "severity", "team",
		"opened_at", "acknowledged_at", "resolved_at", "merged_into", "acknowledged_by", "resolved_by", "fingerprint", "labels.key", "labels.value", "links"},
	TableIncidentHistory: {"incident_id", "time", "version", "id", "status", "title", "service", "severity", "team",
		"opened_at", "acknowledged_at", "resolved_at", "merged_into", "acknowledged_by", "resolved_by", "links"},
	TableLogTemplates:      {"id", "time", "service", "template_id", "template", "status", "previous_id", "merged_from", "example"},
	TableWebhookDeliveries: {"id", "time", "incident_id", "receiver", "attempt", "status_code", "error", "duration_ms", "idempotency_key"},
}

// EventTables are the tables the writer fills from events, in a fixed
// order: the raw events table, then each kind's table.
var EventTables = []string{TableEvents, TableLogs, TableMetricSamples, TableAlerts, TableChanges, TableAnomalies, TableIncidents, TableIncidentHistory, TableLogTemplates, TableWebhookDeliveries}

// TableRow is one row bound for one table.
type TableRow struct {
	Table string
	Row   []any
}

// EventColumns are the columns of the events table, in EventRow's order.
var EventColumns = []string{
	"id", "kind", "time", "observed_time", "source", "service", "severity", "fingerprint",
	"labels.key", "labels.value", "resource.key", "resource.value", "links", "body", "extra", "schema_version",
}

// Rows, and the row functions below, put pointers to e's fields in the rows
// rather than copies: boxing a string or a time.Time into an interface
// allocates, a pointer does not, and at this volume the allocations (and the
// garbage collection after them) cost more than the rest of the row
// building (BenchmarkRows). So e must not change until the rows are
// inserted; envelopes are never changed after they are parsed.

// labelPairs are an event's labels in the Nested layout, computed once for
// all of its rows.
type labelPairs struct{ keys, values []string }

func labelsOf(e *event.Envelope) *labelPairs {
	k, v := pairs(e.Labels)
	return &labelPairs{k, v}
}

// Rows returns every row e becomes: its events row first, then its kind's
// typed row (an incident state two: the latest-state row and the history
// row). A kind without a table of its own gets its events row only (every
// kind of pkg/event has one; an event of a kind this build does not know
// never comes here: the runner's event.Parse refuses it). A body that does
// not fit the kind's table is a permanent error wrapping ErrBadBody that
// names the field.
func Rows(e *event.Envelope) ([]TableRow, error) { return rowsUntil(e, time.Time{}) }

// rowsUntil is Rows with an incident state's acknowledged_at and
// resolved_at refused when after notAfter (the sink's clock plus its
// window's MaxFuture; zero: not bounded; see incidentRows).
func rowsUntil(e *event.Envelope, notAfter time.Time) ([]TableRow, error) {
	labels := labelsOf(e)
	raw := TableRow{TableEvents, eventRow(e, labels)}
	var (
		typed []any
		err   error
		table string
	)
	switch e.Kind {
	case event.KindLog:
		table = TableLogs
		typed, err = logRow(e, labels)
	case event.KindMetric:
		table = TableMetricSamples
		typed, err = metricSampleRow(e, labels)
	case event.KindAlert:
		table = TableAlerts
		typed, err = alertRow(e, labels)
	case event.KindChange:
		table = TableChanges
		typed, err = changeRow(e, labels)
	case event.KindAnomaly:
		table = TableAnomalies
		typed, err = anomalyRow(e, labels)
	case event.KindIncident:
		latest, history, err := incidentRows(e, labels, notAfter)
		if err != nil {
			return nil, err
		}
		return []TableRow{raw, {TableIncidents, latest}, {TableIncidentHistory, history}}, nil
	case event.KindLogTemplate:
		table = TableLogTemplates
		typed, err = LogTemplateRow(e)
	case event.KindWebhookDelivery:
		table = TableWebhookDeliveries
		typed, err = webhookDeliveryRow(e)
	default:
		return []TableRow{raw}, nil
	}
	if err != nil {
		return nil, err
	}
	return []TableRow{raw, {table, typed}}, nil
}

// EventRow is e as a row of the events table (EventColumns).
func EventRow(e *event.Envelope) []any { return eventRow(e, labelsOf(e)) }

func eventRow(e *event.Envelope, labels *labelPairs) []any {
	var rk, rv any = emptyStrings, emptyStrings
	if len(e.Resource) > 0 {
		rk, rv = pairs(e.Resource)
	}
	extra := ""
	if len(e.Extra) > 0 {
		// Unknown top-level fields, as a JSON object, so analysts can still
		// reach them with visitParam*/JSONExtract*.
		raw, err := jsonObject(e.Extra)
		if err == nil {
			extra = raw
		}
	}
	return []any{
		&e.ID, kindValue(e.Kind), &e.Time, &e.ObservedTime, &e.Source, &e.Service, severityValue(e.Severity), &e.Fingerprint,
		labels.keys, labels.values, rk, rv, nonNil(e.Links), e.Body, extra, uint16(e.SchemaVersion),
	}
}

// kindValue and severityValue box the known values as constants, which
// needs no allocation.
func kindValue(k event.Kind) any {
	switch k {
	case event.KindLog:
		return string(event.KindLog)
	case event.KindMetric:
		return string(event.KindMetric)
	}
	return string(k)
}

func severityValue(s event.Severity) any {
	switch s {
	case "":
		return ""
	case event.SeverityDebug:
		return string(event.SeverityDebug)
	case event.SeverityInfo:
		return string(event.SeverityInfo)
	case event.SeverityWarning:
		return string(event.SeverityWarning)
	case event.SeverityError:
		return string(event.SeverityError)
	case event.SeverityCritical:
		return string(event.SeverityCritical)
	}
	return string(s)
}

// LogRow is e (a log) as a row of the logs table.
func LogRow(e *event.Envelope) ([]any, error) { return logRow(e, labelsOf(e)) }

func logRow(e *event.Envelope, labels *labelPairs) ([]any, error) {
	b := new(event.LogBody)
	if !fastLogBody(e.Body, b) {
		*b = event.LogBody{}
		if err := decodeBody(e, b); err != nil {
			return nil, err
		}
	}
	if b.Message == "" {
		return nil, badBody(e, "message", "is required")
	}
	derived := uint8(0)
	if len(e.Links) > 0 {
		derived = 1
	}
	var rk, rv any = emptyStrings, emptyStrings
	if len(e.Resource) > 0 {
		rk, rv = pairs(e.Resource)
	}
	return []any{
		&e.ID, &e.Time, &e.ObservedTime, &e.Service, &e.Source, severityValue(e.Severity), &b.Message, &b.TemplateID, &b.Template,
		nonNil(b.Params), &b.TraceID, &b.SpanID, &e.Fingerprint, labels.keys, labels.values, rk, rv, nonNil(e.Links), derived,
	}, nil
}

// MetricSampleRow is e (a metric sample) as a row of metric_samples; an
// unset type is a gauge.
func MetricSampleRow(e *event.Envelope) ([]any, error) { return metricSampleRow(e, labelsOf(e)) }

func metricSampleRow(e *event.Envelope, labels *labelPairs) ([]any, error) {
	var d struct {
		body  event.MetricBody
		value float64
	}
	p := &d
	if !fastMetricBody(e.Body, &p.body, &p.value) {
		p.body = event.MetricBody{}
		if err := decodeBody(e, &p.body); err != nil {
			return nil, err
		}
	}
	b := &p.body
	switch {
	case b.Name == "":
		return nil, badBody(e, "name", "is required")
	case b.Value == nil:
		return nil, badBody(e, "value", "is required")
	}
	var typ any = event.MetricGauge
	switch b.Type {
	case "", event.MetricGauge:
	case event.MetricCounter:
		typ = event.MetricCounter
	default:
		typ = b.Type
	}
	return []any{&e.ID, &e.Time, &b.Name, b.Value, typ, &b.Unit, &e.Fingerprint, &e.Service, labels.keys, labels.values}, nil
}

// AlertRow is e (an alert notification) as a row of alerts.
func AlertRow(e *event.Envelope) ([]any, error) { return alertRow(e, labelsOf(e)) }

func alertRow(e *event.Envelope, labels *labelPairs) ([]any, error) {
	var b event.AlertBody
	if err := decodeBody(e, &b); err != nil {
		return nil, err
	}
	switch {
	case b.Name == "":
		return nil, badBody(e, "name", "is required")
	case b.Status == "":
		return nil, badBody(e, "status", "is required")
	}
	startsAt, err := dateTime(e, "starts_at", b.StartsAt)
	if err != nil {
		return nil, err
	}
	endsAt, err := dateTime(e, "ends_at", b.EndsAt)
	if err != nil {
		return nil, err
	}
	ak, av := pairs(b.Annotations)
	return []any{
		&e.ID, &e.Time, b.Name, b.Status, &e.Fingerprint, startsAt, endsAt, severityValue(e.Severity), &e.Service,
		labels.keys, labels.values, ak, av, b.GeneratorURL,
	}, nil
}

// ChangeRow is e (a change) as a row of changes.
func ChangeRow(e *event.Envelope) ([]any, error) { return changeRow(e, labelsOf(e)) }

func changeRow(e *event.Envelope, labels *labelPairs) ([]any, error) {
	var b event.ChangeBody
	if err := decodeBody(e, &b); err != nil {
		return nil, err
	}
	if b.Type == "" {
		return nil, badBody(e, "type", "is required")
	}
	return []any{&e.ID, &e.Time, &e.Service, b.Type, b.Version, b.Author, b.Commit, b.URL, b.Description, labels.keys, labels.values}, nil
}

// AnomalyRow is e (an anomaly) as a row of anomalies.
func AnomalyRow(e *event.Envelope) ([]any, error) { return anomalyRow(e, labelsOf(e)) }

func anomalyRow(e *event.Envelope, labels *labelPairs) ([]any, error) {
	var b event.AnomalyBody
	if err := decodeBody(e, &b); err != nil {
		return nil, err
	}
	switch {
	case b.Series == "":
		return nil, badBody(e, "series", "is required")
	case b.Value == nil:
		return nil, badBody(e, "value", "is required")
	case b.Score == nil:
		return nil, badBody(e, "score", "is required")
	}
	// An anomaly without an episode leaves the episode columns at their
	// defaults (zero times, 0), as the schema says.
	var peak, peakValue float64
	if b.Peak != nil {
		peak = *b.Peak
	}
	if b.PeakValue != nil {
		peakValue = *b.PeakValue
	}
	start, err := dateTime(e, "start", b.Start)
	if err != nil {
		return nil, err
	}
	end, err := dateTime(e, "end", b.End)
	if err != nil {
		return nil, err
	}
	peakTime, err := dateTime(e, "peak_time", b.PeakTime)
	if err != nil {
		return nil, err
	}
	return []any{
		&e.ID, &e.Time, &e.Service, b.Series, b.Metric, *b.Value, b.Expected, b.Lower, b.Upper, *b.Score,
		b.Detector, b.Window, b.Reason, b.Episode, b.EpisodeID, start, end, peak,
		peakTime, peakValue, severityValue(e.Severity), labels.keys, labels.values, nonNil(e.Links),
	}, nil
}

// LogTemplateRow is e (a template lifecycle event of the log miner) as a
// row of log_templates.
func LogTemplateRow(e *event.Envelope) ([]any, error) {
	var b event.LogTemplateBody
	if err := decodeBody(e, &b); err != nil {
		return nil, err
	}
	switch {
	case b.TemplateID == "":
		return nil, badBody(e, "template_id", "is required")
	case b.Status == "":
		return nil, badBody(e, "status", "is required")
	}
	return []any{&e.ID, &e.Time, &e.Service, b.TemplateID, b.Template, b.Status, b.PreviousID, nonNil(b.MergedFrom), b.Example}, nil
}

// IncidentRows is e (one incident state) as its incidents row (the latest
// state, versioned by event time) and its incident_history row.
//
// opened_at falls back to the event time on the opened state, where it is
// exact, and is required on every later state (see incidentRows);
// resolved_at falls back to the event time of a resolved state, and is
// held no earlier than opened_at; team to
// labels["team"]. merged_into is empty except on the resolved state of an
// incident merged into another. It has no clock: the writer's sink also
// refuses an acknowledged_at or resolved_at further ahead of its clock
// than writer.max_event_future (TimeWindow).
func IncidentRows(e *event.Envelope) (latest, history []any, err error) {
	return incidentRows(e, labelsOf(e), time.Time{})
}

func incidentRows(e *event.Envelope, labels *labelPairs, notAfter time.Time) (latest, history []any, err error) {
	var b event.IncidentBody
	if err := decodeBody(e, &b); err != nil {
		return nil, nil, err
	}
	switch {
	case b.IncidentID == "":
		return nil, nil, badBody(e, "incident_id", "is required")
	case b.Status == "":
		return nil, nil, badBody(e, "status", "is required")
	case b.MergedInto != "" && b.Status != event.IncidentResolved:
		return nil, nil, badBody(e, "merged_into", fmt.Sprintf("set on a %q state: only a resolved state says what it was merged into", b.Status))
	case b.MergedInto != "" && b.MergedInto == b.IncidentID:
		return nil, nil, badBody(e, "merged_into", "names the incident itself")
	}
	if b.OpenedAt.IsZero() {
		// incidents is partitioned by the month of opened_at, and its
		// states collapse into one row only within one partition. A later
		// state's own time is not its opening: taken as one, it put the
		// incident's latest row in another month than its opening (two
		// rows, one left open there, which retention then keeps for ever)
		// and said it opened when it was, say, resolved. The writer cannot
		// tell the opening without it, so such a state is refused.
		if b.Status != event.IncidentOpened {
			return nil, nil, badBody(e, "opened_at", fmt.Sprintf("is required when status is %q: only an opened state's own time is its opening, "+
				"and an incident's states are stored in the partition of the month it opened", b.Status))
		}
		// Exact for the opening; a later state must then carry this time
		// (or one in its month): the writer keeps no state to hold it to
		// that, and one in another month splits the incident across two
		// partitions (docs/queries.md).
		b.OpenedAt = e.Time
	}
	// incidents is partitioned by the month of opened_at, which the
	// event-time window did not check. One before 1970-01-02 would be
	// stored as 0 (or, in a server time zone west of UTC, fall in 1969),
	// a partition whose age retention cannot tell, which stops the
	// table's retention; one after the state's own time is a producer's
	// mistake. How long before the state it opened is not bounded: an
	// incident may stay open for more than a year (a low-severity alert
	// that never stops firing), retention keeps its month while it is
	// open, and its later states (a comment, its resolution) must reach
	// that month, or ClickHouse shows it open for ever.
	switch {
	case b.OpenedAt.Before(minOpenedAt):
		return nil, nil, badBody(e, "opened_at", fmt.Sprintf("%s is before %s, outside what a DateTime stores in every time zone", b.OpenedAt.UTC().Format(time.RFC3339), minOpenedAt.Format(time.RFC3339)))
	case b.OpenedAt.After(e.Time.Add(time.Minute)):
		return nil, nil, badBody(e, "opened_at", fmt.Sprintf("%s is after the state's own time %s", b.OpenedAt.UTC().Format(time.RFC3339), e.Time.UTC().Format(time.RFC3339)))
	}
	// acknowledged_at and resolved_at are what MTTA and MTTR run to.
	// Unlike opened_at they may be after the state's own time (a command
	// is timed when it was given, its state at event time), but not after
	// the writer's clock by more than an event's own time may be: such a
	// time (a producer's 9999 for "never", a clock years off) was stored
	// as 2106, an 80-year MTTR. Any time put in its place would be
	// invented (the state's time can be before the act, the writer's clock
	// after it), so the state is refused, as one timed that far ahead is
	// (incident states come from NATS producers only: the gateway refuses
	// the kind). Replays of history are in the past: only the future is
	// bounded, opened_at already by the state's own time.
	if !notAfter.IsZero() {
		for _, f := range []struct {
			name string
			at   time.Time
		}{{"acknowledged_at", b.AcknowledgedAt}, {"resolved_at", b.ResolvedAt}} {
			if f.at.After(notAfter) {
				return nil, nil, badBody(e, f.name, fmt.Sprintf("%s is after %s, further ahead of the writer's clock than writer.max_event_future: not yet a time anybody acted",
					f.at.UTC().Format(time.RFC3339), notAfter.UTC().Format(time.RFC3339)))
			}
		}
	}
	if b.ResolvedAt.IsZero() && b.Status == event.IncidentResolved {
		b.ResolvedAt = e.Time
	}
	if !b.ResolvedAt.IsZero() && b.ResolvedAt.Before(b.OpenedAt) {
		// Resolved before it opened (clocks apart): MTTR, resolved_at
		// minus opened_at, would be negative and pull its mean below the
		// real one. Resolved at its opening, as MTTA counts an
		// acknowledgement before the opening; refused, the resolution
		// would be lost and the incident left open.
		b.ResolvedAt = b.OpenedAt
	}
	if b.Team == "" {
		b.Team = e.Labels["team"]
	}
	opened, err := dateTime(e, "opened_at", b.OpenedAt)
	if err != nil {
		return nil, nil, err
	}
	acked, err := dateTime(e, "acknowledged_at", b.AcknowledgedAt)
	if err != nil {
		return nil, nil, err
	}
	resolved, err := dateTime(e, "resolved_at", b.ResolvedAt)
	if err != nil {
		return nil, nil, err
	}
	links := nonNil(e.Links)
	latest = []any{
		b.IncidentID, incidentVersion(e.Time), &e.ID, &e.Time, b.Status, b.Title, &e.Service, severityValue(e.Severity), b.Team,
		opened, acked, resolved, b.MergedInto, b.AcknowledgedBy, b.ResolvedBy, &e.Fingerprint, labels.keys, labels.values, links,
	}
	history = []any{
		b.IncidentID, &e.Time, incidentVersion(e.Time), &e.ID, b.Status, b.Title, &e.Service, severityValue(e.Severity), b.Team,
		opened, acked, resolved, b.MergedInto, b.AcknowledgedBy, b.ResolvedBy, links,
	}
	return latest, history, nil
}

// minOpenedAt is the earliest opened_at stored: the envelope's own lower
// bound on times (event.Validate), a day after the DateTime zero, so that
// the month it falls in is 1970-01 in every server time zone.
var minOpenedAt = time.Date(1970, 1, 2, 0, 0, 0, 0, time.UTC)

// incidentVersion orders an incident's states for ReplacingMergeTree: the
// event time in nanoseconds (DateTime keeps seconds only, too coarse for
// two states in one second).
func incidentVersion(t time.Time) uint64 {
	if t.Before(time.Unix(0, 0)) {
		return 0
	}
	return uint64(t.UnixNano())
}

// webhookDeliveryRow is a webhook_delivery event as its row: the attempt's
// id is the event's.
func webhookDeliveryRow(e *event.Envelope) ([]any, error) {
	var b event.WebhookDeliveryBody
	if err := e.DecodeBody(&b); err != nil {
		return nil, errs.Permanent(fmt.Errorf("event %s (%s): body: %v: %w", e.ID, e.Kind, err, ErrBadBody))
	}
	// Held to what the column stores before it becomes a Duration: past
	// 292 years in milliseconds the product overflows, wrapping to a
	// negative Duration or to a few nanoseconds.
	ms := min(b.DurationMS, maxDurationMS)
	return WebhookDeliveryRow(WebhookDelivery{ID: e.ID, Time: e.Time, IncidentID: b.IncidentID, Receiver: b.Receiver,
		Attempt: uint16(b.Attempt), StatusCode: uint16(b.StatusCode), Error: b.Error,
		Duration: time.Duration(ms) * time.Millisecond, IdempotencyKey: b.IdempotencyKey})
}

// maxDurationMS is the longest duration_ms stored (a UInt32 column,
// 49.7 days); a longer one is stored as this.
const maxDurationMS = 1<<32 - 1

// WebhookDelivery is one attempt to deliver an incident to a receiver, as
// the notifier records it (a webhook_delivery event).
type WebhookDelivery struct {
	ID             string // the attempt's own id (a ULID)
	Time           time.Time
	IncidentID     string
	Receiver       string
	Attempt        uint16 // 1 for the first try
	StatusCode     uint16 // 0 when no HTTP answer came
	Error          string
	Duration       time.Duration
	IdempotencyKey string
}

// WebhookDeliveryRow is d as a row of webhook_deliveries
// (Columns[TableWebhookDeliveries]).
func WebhookDeliveryRow(d WebhookDelivery) ([]any, error) {
	switch {
	case !event.ValidID(d.ID):
		return nil, errs.Permanentf("webhook delivery: id: is not a ULID: %q", d.ID)
	case d.IncidentID == "":
		return nil, errs.Permanentf("webhook delivery %s: incident_id: is required", d.ID)
	case d.Receiver == "":
		return nil, errs.Permanentf("webhook delivery %s: receiver: is required", d.ID)
	case d.Duration < 0:
		return nil, errs.Permanentf("webhook delivery %s: duration: must not be negative, got %s", d.ID, d.Duration)
	}
	ms := min(d.Duration.Milliseconds(), maxDurationMS)
	return []any{d.ID, d.Time, d.IncidentID, d.Receiver, d.Attempt, d.StatusCode, d.Error, uint32(ms), d.IdempotencyKey}, nil
}

// decodeBody decodes e's body into v; a body of the wrong shape is a
// permanent error naming the field where the decoder can tell it.
func decodeBody(e *event.Envelope, v any) error {
	if len(e.Body) == 0 {
		return errs.Permanent(fmt.Errorf("event %s (%s): body: is required: %w", e.ID, e.Kind, ErrBadBody))
	}
	if err := json.Unmarshal(e.Body, v); err != nil {
		field := "body"
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) && typeErr.Field != "" {
			field = "body." + typeErr.Field
		} else if f := badTimeField(e.Body); f != "" {
			field = "body." + f
		}
		return errs.Permanent(fmt.Errorf("event %s (%s): %s: %v: %w", e.ID, e.Kind, field, err, ErrBadBody))
	}
	return nil
}

// timeFields are the body fields decoded as time.Time; a bad one fails with
// a *time.ParseError that does not say which field it was.
var timeFields = []string{"starts_at", "ends_at", "opened_at", "acknowledged_at", "resolved_at", "start", "end", "peak_time"}

func badTimeField(body []byte) string {
	var m map[string]json.RawMessage
	if json.Unmarshal(body, &m) != nil {
		return ""
	}
	for _, f := range timeFields {
		raw, ok := m[f]
		if !ok {
			continue
		}
		var t time.Time
		if json.Unmarshal(raw, &t) != nil {
			return f
		}
	}
	return ""
}

func badBody(e *event.Envelope, field, problem string) error {
	return errs.Permanent(fmt.Errorf("event %s (%s): body.%s: %s: %w", e.ID, e.Kind, field, problem, ErrBadBody))
}

// maxDateTime is the last second a ClickHouse DateTime holds (UInt32
// seconds): a later time is stored wrapped around, 2200 as 2063, with no
// error from the server.
var maxDateTime = time.Unix(1<<32-1, 0).UTC()

// dateTime is body.field's value t for a DateTime column. It maps "not
// set" to the DateTime zero (1970-01-01 00:00:00), which queries test with
// toUnixTimestamp(x) > 0; times before 1970 cannot be stored and mean the
// same. A time after maxDateTime (which the driver would wrap around, to
// 2063 for 2200) is stored as maxDateTime, the last second a DateTime
// holds: "far in the future", as such times mean (a producer's "never"),
// while the events table keeps the body with the time as sent. Refusing
// it would dead-letter an event the gateway accepted, raw row and all.
func dateTime(_ *event.Envelope, _ string, t time.Time) (time.Time, error) {
	switch {
	case t.Before(time.Unix(0, 0)):
		return time.Unix(0, 0).UTC(), nil
	case t.After(maxDateTime):
		return maxDateTime, nil
	}
	return t, nil
}

// nonNil boxes s for an Array(String) column; the empty array, the usual
// value of links, resource and params, is boxed once for all rows.
func nonNil(s []string) any {
	if len(s) == 0 {
		return emptyStrings
	}
	return s
}

var emptyStrings any = []string{}

// pairs turns a map into sorted parallel key and value arrays, the Nested
// layout ClickHouse 18.16 can store (it has no Map type).
func pairs(m map[string]string) (keys, values []string) {
	keys = make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	values = make([]string, len(keys))
	for i, k := range keys {
		values[i] = m[k]
	}
	return keys, values
}

func jsonObject(m map[string]json.RawMessage) (string, error) {
	raw, err := json.Marshal(m)
	return string(raw), err
}
