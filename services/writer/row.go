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
)

// ErrBadBody is wrapped (permanent) when an event's body does not fit its
// kind's table; the message names the field.
var ErrBadBody = errors.New("body does not fit its table")

// Columns are the columns the writer fills in each table, in the order of
// the rows Rows returns. webhook_deliveries is filled by the notifier
// (WebhookDeliveryRow), not from events.
var Columns = map[string][]string{
	TableEvents: EventColumns,
	TableLogs: {"id", "time", "observed_time", "service", "source", "severity", "message", "template_id", "template",
		"params", "trace_id", "span_id", "fingerprint", "labels.key", "labels.value", "links", "derived"},
	TableMetricSamples: {"id", "time", "name", "value", "type", "unit", "fingerprint", "service", "labels.key", "labels.value"},
	TableAlerts: {"id", "time", "alert_name", "status", "fingerprint", "starts_at", "ends_at", "severity", "service",
		"labels.key", "labels.value", "annotations.key", "annotations.value", "generator_url"},
	TableChanges: {"id", "time", "service", "change_type", "version", "author", "commit", "url", "description",
		"labels.key", "labels.value"},
	TableAnomalies: {"id", "time", "service", "series", "metric", "value", "expected", "lower", "upper", "score",
		"detector", "window", "reason", "severity", "labels.key", "labels.value", "links"},
	TableIncidents: {"incident_id", "version", "id", "time", "status", "title", "service", "severity", "team",
		"opened_at", "acknowledged_at", "resolved_at", "fingerprint", "labels.key", "labels.value", "links"},
	TableIncidentHistory: {"incident_id", "time", "id", "status", "title", "service", "severity", "team",
		"opened_at", "acknowledged_at", "resolved_at", "links"},
	TableWebhookDeliveries: {"id", "time", "incident_id", "receiver", "attempt", "status_code", "error", "duration_ms", "idempotency_key"},
}

// EventTables are the tables the writer fills from events, in a fixed
// order: the raw events table, then each kind's table.
var EventTables = []string{TableEvents, TableLogs, TableMetricSamples, TableAlerts, TableChanges, TableAnomalies, TableIncidents, TableIncidentHistory}

// TableRow is one row bound for one table.
type TableRow struct {
	Table string
	Row   []any
}

// Rows returns every row e becomes: its events row first, then its kind's
// typed row (an incident state two: the latest-state row and the history
// row). A body that does not fit the kind's table is a permanent error
// wrapping ErrBadBody that names the field.
func Rows(e *event.Envelope) ([]TableRow, error) {
	raw := TableRow{TableEvents, EventRow(e)}
	var (
		typed []any
		err   error
		table string
	)
	switch e.Kind {
	case event.KindLog:
		table = TableLogs
		typed, err = LogRow(e)
	case event.KindMetric:
		table = TableMetricSamples
		typed, err = MetricSampleRow(e)
	case event.KindAlert:
		table = TableAlerts
		typed, err = AlertRow(e)
	case event.KindChange:
		table = TableChanges
		typed, err = ChangeRow(e)
	case event.KindAnomaly:
		table = TableAnomalies
		typed, err = AnomalyRow(e)
	case event.KindIncident:
		latest, history, err := IncidentRows(e)
		if err != nil {
			return nil, err
		}
		return []TableRow{raw, {TableIncidents, latest}, {TableIncidentHistory, history}}, nil
	default:
		return nil, errs.Permanentf("event %s: kind %q has no table", e.ID, e.Kind)
	}
	if err != nil {
		return nil, err
	}
	return []TableRow{raw, {table, typed}}, nil
}

// LogRow is e (a log) as a row of the logs table.
func LogRow(e *event.Envelope) ([]any, error) {
	var b event.LogBody
	if err := decodeBody(e, &b); err != nil {
		return nil, err
	}
	if b.Message == "" {
		return nil, badBody(e, "message", "is required")
	}
	lk, lv := pairs(e.Labels)
	derived := uint8(0)
	if len(e.Links) > 0 {
		derived = 1
	}
	return []any{
		e.ID, e.Time, e.ObservedTime, e.Service, e.Source, string(e.Severity), b.Message, b.TemplateID, b.Template,
		nonNil(b.Params), b.TraceID, b.SpanID, e.Fingerprint, lk, lv, nonNil(e.Links), derived,
	}, nil
}

// MetricSampleRow is e (a metric sample) as a row of metric_samples; an
// unset type is a gauge.
func MetricSampleRow(e *event.Envelope) ([]any, error) {
	var b event.MetricBody
	if err := decodeBody(e, &b); err != nil {
		return nil, err
	}
	switch {
	case b.Name == "":
		return nil, badBody(e, "name", "is required")
	case b.Value == nil:
		return nil, badBody(e, "value", "is required")
	}
	typ := b.Type
	if typ == "" {
		typ = event.MetricGauge
	}
	lk, lv := pairs(e.Labels)
	return []any{e.ID, e.Time, b.Name, *b.Value, typ, b.Unit, e.Fingerprint, e.Service, lk, lv}, nil
}

// AlertRow is e (an alert notification) as a row of alerts.
func AlertRow(e *event.Envelope) ([]any, error) {
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
	lk, lv := pairs(e.Labels)
	ak, av := pairs(b.Annotations)
	return []any{
		e.ID, e.Time, b.Name, b.Status, e.Fingerprint, dateTime(b.StartsAt), dateTime(b.EndsAt), string(e.Severity), e.Service,
		lk, lv, ak, av, b.GeneratorURL,
	}, nil
}

// ChangeRow is e (a change) as a row of changes.
func ChangeRow(e *event.Envelope) ([]any, error) {
	var b event.ChangeBody
	if err := decodeBody(e, &b); err != nil {
		return nil, err
	}
	if b.Type == "" {
		return nil, badBody(e, "type", "is required")
	}
	lk, lv := pairs(e.Labels)
	return []any{e.ID, e.Time, e.Service, b.Type, b.Version, b.Author, b.Commit, b.URL, b.Description, lk, lv}, nil
}

// AnomalyRow is e (an anomaly) as a row of anomalies.
func AnomalyRow(e *event.Envelope) ([]any, error) {
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
	lk, lv := pairs(e.Labels)
	return []any{
		e.ID, e.Time, e.Service, b.Series, b.Metric, *b.Value, b.Expected, b.Lower, b.Upper, *b.Score,
		b.Detector, b.Window, b.Reason, string(e.Severity), lk, lv, nonNil(e.Links),
	}, nil
}

// IncidentFields is what the writer reads from an incident body: the
// fields of event.IncidentBody plus the lifecycle timestamps and the owning
// team the MTTA/MTTR queries need. Those are optional in the body
// (event.IncidentBody does not name them yet), so a body without them
// decodes; a body with one of the wrong type does not.
type IncidentFields struct {
	event.IncidentBody
	Team           string    `json:"team,omitempty"`
	OpenedAt       time.Time `json:"opened_at,omitzero"`
	AcknowledgedAt time.Time `json:"acknowledged_at,omitzero"`
	ResolvedAt     time.Time `json:"resolved_at,omitzero"`
}

// IncidentRows is e (one incident state) as its incidents row (the latest
// state, versioned by event time) and its incident_history row.
//
// opened_at falls back to the event time (exact for the opened state, the
// best guess for a later state whose producer left it out); resolved_at to
// the event time of a resolved state; team to labels["team"].
func IncidentRows(e *event.Envelope) (latest, history []any, err error) {
	var b IncidentFields
	if err := decodeBody(e, &b); err != nil {
		return nil, nil, err
	}
	switch {
	case b.IncidentID == "":
		return nil, nil, badBody(e, "incident_id", "is required")
	case b.Status == "":
		return nil, nil, badBody(e, "status", "is required")
	}
	if b.OpenedAt.IsZero() {
		b.OpenedAt = e.Time
	}
	if b.ResolvedAt.IsZero() && b.Status == event.IncidentResolved {
		b.ResolvedAt = e.Time
	}
	if b.Team == "" {
		b.Team = e.Labels["team"]
	}
	opened, acked, resolved := dateTime(b.OpenedAt), dateTime(b.AcknowledgedAt), dateTime(b.ResolvedAt)
	links := nonNil(e.Links)
	lk, lv := pairs(e.Labels)
	latest = []any{
		b.IncidentID, incidentVersion(e.Time), e.ID, e.Time, b.Status, b.Title, e.Service, string(e.Severity), b.Team,
		opened, acked, resolved, e.Fingerprint, lk, lv, links,
	}
	history = []any{
		b.IncidentID, e.Time, e.ID, b.Status, b.Title, e.Service, string(e.Severity), b.Team,
		opened, acked, resolved, links,
	}
	return latest, history, nil
}

// incidentVersion orders an incident's states for ReplacingMergeTree: the
// event time in nanoseconds (DateTime keeps seconds only, too coarse for
// two states in one second).
func incidentVersion(t time.Time) uint64 {
	if t.Before(time.Unix(0, 0)) {
		return 0
	}
	return uint64(t.UnixNano())
}

// WebhookDelivery is one attempt to deliver an incident to a receiver, as
// the notifier records it.
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
	ms := min(d.Duration.Milliseconds(), 1<<32-1)
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
var timeFields = []string{"starts_at", "ends_at", "opened_at", "acknowledged_at", "resolved_at"}

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

// dateTime maps "not set" to the DateTime zero (1970-01-01 00:00:00), which
// queries test with toUnixTimestamp(x) > 0; times before 1970 cannot be
// stored and mean the same.
func dateTime(t time.Time) time.Time {
	if t.Before(time.Unix(0, 0)) {
		return time.Unix(0, 0).UTC()
	}
	return t
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

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
