package event

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
)

// The body of each kind. Producers may add fields a body type does not
// name: they stay in the raw Body and reach ClickHouse unchanged.

// LogBody is one log record. The log miner fills the template fields.
type LogBody struct {
	Message    string   `json:"message"`
	TemplateID string   `json:"template_id,omitempty"`
	Template   string   `json:"template,omitempty"`
	Params     []string `json:"params,omitempty"`
	TraceID    string   `json:"trace_id,omitempty"`
	SpanID     string   `json:"span_id,omitempty"`
}

// MetricType says how to read a sample's value.
const (
	MetricGauge   = "gauge"
	MetricCounter = "counter"
)

// MetricBody is one sample of one series; the series identity is the
// envelope's fingerprint, with the metric name also in labels["__name__"].
type MetricBody struct {
	Name  string   `json:"name"`
	Value *float64 `json:"value"`
	Unit  string   `json:"unit,omitempty"`
	Type  string   `json:"type,omitempty"` // gauge (default) or counter
}

// Alert statuses, as Prometheus Alertmanager spells them.
const (
	AlertFiring   = "firing"
	AlertResolved = "resolved"
)

// AlertBody is one alert notification.
type AlertBody struct {
	Name     string    `json:"name"`
	Status   string    `json:"status"`
	StartsAt time.Time `json:"starts_at,omitzero"`
	EndsAt   time.Time `json:"ends_at,omitzero"`
	// ExpiresAt is, for a firing alert, when it is to be taken as
	// resolved unless reported again: the endsAt Prometheus sends with a
	// firing alert a few resends ahead, which Alertmanager resolves it by
	// when its sender stopped (Prometheus gone, its rule deleted).
	ExpiresAt    time.Time         `json:"expires_at,omitzero"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	GeneratorURL string            `json:"generator_url,omitempty"`
}

// Change types.
var ChangeTypes = []string{"deploy", "config", "feature_flag", "infrastructure", "other"}

// ChangeBody is one change to a service: a deploy, a config change, a flag.
type ChangeBody struct {
	Type        string `json:"type"`
	Version     string `json:"version,omitempty"`
	Author      string `json:"author,omitempty"`
	Commit      string `json:"commit,omitempty"`
	URL         string `json:"url,omitempty"`
	Description string `json:"description,omitempty"`
}

// AnomalyBody is what the detector found abnormal about one series.
type AnomalyBody struct {
	Series   string   `json:"series"` // fingerprint of the series
	Metric   string   `json:"metric,omitempty"`
	Value    *float64 `json:"value"`
	Expected float64  `json:"expected"`
	Lower    float64  `json:"lower"`
	Upper    float64  `json:"upper"`
	Score    *float64 `json:"score"`
	Detector string   `json:"detector"`
	Window   string   `json:"window,omitempty"`
	Reason   string   `json:"reason,omitempty"`

	// The alarm episode the event belongs to: the detector publishes one
	// event when an episode opens, updates at a bounded rate while it
	// lasts and one event when it ends. Empty for anomalies without
	// episodes (an error burst, a group's row, a producer's own).
	Episode   string `json:"episode,omitempty"`    // EpisodeOpen, EpisodeUpdate or EpisodeClose
	EpisodeID string `json:"episode_id,omitempty"` // the same for every event of one episode
	// Start of the episode, and End: its last anomalous observation so
	// far (the episode's end once Episode is EpisodeClose).
	Start time.Time `json:"start,omitzero"`
	End   time.Time `json:"end,omitzero"`
	// Peak is the highest score of the episode so far, at PeakTime with
	// the value PeakValue.
	Peak      *float64  `json:"peak,omitempty"`
	PeakTime  time.Time `json:"peak_time,omitzero"`
	PeakValue *float64  `json:"peak_value,omitempty"`
}

// Anomaly episode events (AnomalyBody.Episode).
const (
	EpisodeOpen   = "open"
	EpisodeUpdate = "update"
	EpisodeClose  = "close"
)

// Incident statuses.
const (
	IncidentOpened       = "opened"
	IncidentUpdated      = "updated"
	IncidentAcknowledged = "acknowledged"
	IncidentResolved     = "resolved"
	IncidentReopened     = "reopened"
)

// IncidentBody is one state of an incident. The lifecycle timestamps and
// the team are what MTTA and MTTR per team are computed from; OpenedAt
// belongs in every state (the incidents table is partitioned by it).
type IncidentBody struct {
	IncidentID     string    `json:"incident_id"`
	Status         string    `json:"status"`
	Title          string    `json:"title"`
	Team           string    `json:"team,omitempty"`
	OpenedAt       time.Time `json:"opened_at,omitzero"`
	AcknowledgedAt time.Time `json:"acknowledged_at,omitzero"`
	ResolvedAt     time.Time `json:"resolved_at,omitzero"`
	// MergedInto, on the last (resolved) state of an incident merged
	// into another, names that incident: the failure goes on there.
	MergedInto string `json:"merged_into,omitempty"`
	// AcknowledgedBy and ResolvedBy name who gave the command; a
	// resolution by time alone has no ResolvedBy.
	AcknowledgedBy string `json:"acknowledged_by,omitempty"`
	ResolvedBy     string `json:"resolved_by,omitempty"`
}

// WebhookDeliveryBody is one attempt to deliver an incident to a
// receiver (the notifier's; the writer's webhook_deliveries table).
type WebhookDeliveryBody struct {
	IncidentID string `json:"incident_id"`
	Receiver   string `json:"receiver"`
	// Attempt is 1 for the first try of one idempotency key.
	Attempt int `json:"attempt"`
	// StatusCode is the HTTP answer, 0 when none came (Error says why).
	StatusCode     int    `json:"status_code"`
	Error          string `json:"error,omitempty"`
	DurationMS     int64  `json:"duration_ms"`
	IdempotencyKey string `json:"idempotency_key"`
	// Retrying says another attempt follows.
	Retrying bool `json:"retrying,omitempty"`
}

// Log template statuses.
const (
	TemplateNew     = "new"
	TemplateChanged = "changed"
)

// LogTemplateBody is the body of a KindLogTemplate event.
type LogTemplateBody struct {
	TemplateID string `json:"template_id"`
	Template   string `json:"template"`
	// Status is TemplateNew or TemplateChanged.
	Status string `json:"status"`
	// PreviousID is the id before the change (TemplateChanged).
	PreviousID string `json:"previous_id,omitempty"`
	// MergedFrom lists every template id whose lines now carry TemplateID
	// (TemplateChanged): usually PreviousID alone, several when templates
	// that differed in one routing token were folded.
	MergedFrom []string `json:"merged_from,omitempty"`
	// Example is the message content that created or changed the template.
	Example string `json:"example,omitempty"`
}

// MarshalBody encodes a body. Unlike json.Marshal it leaves <, > and &
// as they are: log templates are full of <*>, and analysts read bodies in
// ClickHouse, where "\u003c*\u003e" is noise.
func MarshalBody(v any) (json.RawMessage, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

// DecodeBody unmarshals the body into v (one of the body types).
func (e *Envelope) DecodeBody(v any) error {
	if len(e.Body) == 0 {
		return fmt.Errorf("event %s has no body", e.ID)
	}
	return json.Unmarshal(e.Body, v)
}

// validateBody checks the fields each kind requires.
func validateBody(k Kind, raw json.RawMessage) []FieldError {
	var p problems
	required := func(field, v string) {
		if v == "" {
			p.add("body."+field, "is required")
		}
	}
	oneOf := func(field, v string, allowed ...string) {
		for _, a := range allowed {
			if v == a {
				return
			}
		}
		p.add("body."+field, "is %q, want one of %v", clip(v), allowed)
	}
	decode := func(v any) bool {
		if len(raw) == 0 {
			p.add("body", "is required for kind %s", k)
			return false
		}
		if fe := decodeBody(raw, v); fe != nil {
			p.list = append(p.list, *fe)
			return false
		}
		return true
	}
	switch k {
	case KindLog:
		var b LogBody
		if decode(&b) && b.Message == "" {
			p.add("body.message", "is required")
		}
	case KindMetric:
		var b MetricBody
		if decode(&b) {
			required("name", b.Name)
			switch {
			case b.Value == nil:
				p.add("body.value", "is required")
			case !finite(*b.Value):
				p.add("body.value", "must be a finite number")
			}
			if b.Type != "" {
				oneOf("type", b.Type, MetricGauge, MetricCounter)
			}
		}
	case KindAlert:
		var b AlertBody
		if decode(&b) {
			required("name", b.Name)
			oneOf("status", b.Status, AlertFiring, AlertResolved)
		}
	case KindChange:
		var b ChangeBody
		if decode(&b) {
			oneOf("type", b.Type, ChangeTypes...)
		}
	case KindAnomaly:
		var b AnomalyBody
		if decode(&b) {
			required("series", b.Series)
			required("detector", b.Detector)
			if b.Value == nil {
				p.add("body.value", "is required")
			}
			if b.Score == nil || !(*b.Score >= 0 && *b.Score <= 1) {
				p.add("body.score", "is required, a number in [0,1]")
			}
			if b.Episode != "" {
				oneOf("episode", b.Episode, EpisodeOpen, EpisodeUpdate, EpisodeClose)
				required("episode_id", b.EpisodeID)
				switch {
				case b.Start.IsZero():
					p.add("body.start", "is required with an episode")
				case b.End.IsZero():
					p.add("body.end", "is required with an episode (its last anomalous observation so far)")
				case b.End.Before(b.Start):
					p.add("body.end", "is before start")
				}
			}
		}
	case KindLogTemplate:
		var b LogTemplateBody
		if decode(&b) {
			if !isHex16(b.TemplateID) {
				p.add("body.template_id", "must be 16 lower-case hex digits, got %q", clip(b.TemplateID))
			}
			required("template", b.Template)
			oneOf("status", b.Status, TemplateNew, TemplateChanged)
			if b.Status == TemplateChanged && !isHex16(b.PreviousID) {
				p.add("body.previous_id", "must be 16 lower-case hex digits when status is changed, got %q", clip(b.PreviousID))
			}
		}
	case KindWebhookDelivery:
		var b WebhookDeliveryBody
		if decode(&b) {
			required("incident_id", b.IncidentID)
			required("receiver", b.Receiver)
			required("idempotency_key", b.IdempotencyKey)
			if b.Attempt < 1 || b.Attempt > 65535 {
				p.add("body.attempt", "must be 1 to 65535, got %d", b.Attempt)
			}
			if b.StatusCode < 0 || b.StatusCode > 999 {
				p.add("body.status_code", "must be 0 (no answer) or an HTTP status, got %d", b.StatusCode)
			}
			if b.DurationMS < 0 {
				p.add("body.duration_ms", "must not be negative, got %d", b.DurationMS)
			}
		}
	case KindIncident:
		var b IncidentBody
		if decode(&b) {
			required("incident_id", b.IncidentID)
			required("title", b.Title)
			oneOf("status", b.Status, IncidentOpened, IncidentUpdated, IncidentAcknowledged, IncidentResolved, IncidentReopened)
		}
	}
	return p.list
}
