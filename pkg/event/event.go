// Package event defines the one envelope that carries every signal through
// aiops: logs, metric samples, alerts, changes, anomalies and incidents.
//
// An envelope is identified by a ULID (also the JetStream Nats-Msg-Id, so the
// stream drops republished duplicates), has a kind, an event time and an
// observed time, who produced it (source) and for which service, identity
// labels and resource attributes, a severity, a fingerprint over its identity
// and a kind-specific JSON body. Fields this version does not know are kept in
// Extra and written back unchanged, so an older stage never strips what a newer
// producer added.
package event

import (
	"encoding/json"
	"strings"
	"time"
)

// SchemaVersion is the envelope version this package writes. Readers accept
// envelopes of this version and older ones.
const SchemaVersion = 1

// Kind says what an envelope carries; it is the second token of the subject.
type Kind string

const (
	KindLog      Kind = "log"
	KindMetric   Kind = "metric"
	KindAlert    Kind = "alert"
	KindChange   Kind = "change"
	KindAnomaly  Kind = "anomaly"
	KindIncident Kind = "incident"
	// KindLogTemplate is one change in the life of a log template: a new
	// template, or one generalised into another (a merge).
	KindLogTemplate Kind = "log_template"
	// KindWebhookDelivery is one attempt of the notifier to deliver an
	// incident to a receiver.
	KindWebhookDelivery Kind = "webhook_delivery"
)

// Kinds lists every kind in a fixed order.
var Kinds = []Kind{KindLog, KindMetric, KindAlert, KindChange, KindAnomaly, KindIncident, KindLogTemplate, KindWebhookDelivery}

// Valid reports whether k is one of Kinds.
func (k Kind) Valid() bool {
	for _, known := range Kinds {
		if k == known {
			return true
		}
	}
	return false
}

// Severity orders how bad an event is. The empty severity means "not said".
type Severity string

const (
	SeverityDebug    Severity = "debug"
	SeverityInfo     Severity = "info"
	SeverityWarning  Severity = "warning"
	SeverityError    Severity = "error"
	SeverityCritical Severity = "critical"
)

// Severities lists every severity from least to most severe.
var Severities = []Severity{SeverityDebug, SeverityInfo, SeverityWarning, SeverityError, SeverityCritical}

// ParseSeverity maps the spellings producers use (syslog, OpenTelemetry,
// Prometheus alert labels, and the priorities of paging and ticketing
// tools: P1 to P5, SEV1 to SEV5, Jira's Highest to Lowest) to a Severity.
// ok is false for unknown words.
func ParseSeverity(s string) (sev Severity, ok bool) {
	w := strings.ToLower(strings.TrimSpace(s))
	if level, ok := priorityLevel(w); ok {
		// Priority 1 is the worst (Opsgenie P1 critical, P2 high, P3
		// moderate, P4 low, P5 informational; incident SEV1 to SEV5
		// alike), or 0 where a company counts from it (SEV0, P0).
		return []Severity{SeverityCritical, SeverityCritical, SeverityError, SeverityWarning, SeverityInfo, SeverityInfo}[level], true
	}
	switch w {
	case "":
		return "", true
	case "trace", "debug", "dbg", "lowest":
		return SeverityDebug, true
	case "info", "information", "informational", "notice", "ok", "none", "low", "planning":
		return SeverityInfo, true
	case "warn", "warning", "minor", "medium", "moderate":
		return SeverityWarning, true
	case "err", "error", "major", "high", "severe":
		return SeverityError, true
	case "crit", "critical", "fatal", "alert", "emerg", "emergency", "panic", "page", "disaster", "highest", "urgent", "blocker":
		return SeverityCritical, true
	}
	return "", false
}

// priorityLevel reads a priority word, 0 to 5: "p1", "sev1", "sev-1",
// "sev 1", "s1". A bare number is none: syslog counts 0 to 7 from the
// worst, OpenTelemetry 1 to 24 from the least.
func priorityLevel(w string) (int, bool) {
	for _, prefix := range []string{"sev", "p", "s"} {
		if rest, ok := strings.CutPrefix(w, prefix); ok {
			rest = strings.TrimLeft(rest, " -_")
			if len(rest) == 1 && rest[0] >= '0' && rest[0] <= '5' {
				return int(rest[0] - '0'), true
			}
			return 0, false
		}
	}
	return 0, false
}

// Rank is 0 for an empty severity and 1..5 from debug to critical.
func (s Severity) Rank() int {
	for i, known := range Severities {
		if s == known {
			return i + 1
		}
	}
	return 0
}

// Envelope is one event. The zero value is not valid: use New or fill the
// required fields and call Normalize, then Validate.
type Envelope struct {
	SchemaVersion int               `json:"schema_version"`
	ID            string            `json:"id"`
	Kind          Kind              `json:"kind"`
	Time          time.Time         `json:"time"`
	ObservedTime  time.Time         `json:"observed_time"`
	Source        string            `json:"source,omitempty"`
	Service       string            `json:"service"`
	Resource      map[string]string `json:"resource,omitempty"`
	Labels        map[string]string `json:"labels,omitempty"`
	Severity      Severity          `json:"severity,omitempty"`
	Fingerprint   string            `json:"fingerprint"`
	// Links holds the ids of the events this one was derived from (a templated
	// log names its raw log, an anomaly its samples, an incident its alerts),
	// so analysts can walk the chain from raw event to incident.
	Links []string        `json:"links,omitempty"`
	Body  json.RawMessage `json:"body,omitempty"`
	// Extra keeps top-level fields this version does not know.
	Extra map[string]json.RawMessage `json:"-"`
}

// New returns a normalized envelope of kind k for service, with a fresh id,
// event time t and the given body marshalled to JSON.
func New(k Kind, service string, t time.Time, body any) (*Envelope, error) {
	e := &Envelope{Kind: k, Service: service, Time: t}
	if body != nil {
		raw, err := MarshalBody(body)
		if err != nil {
			return nil, err
		}
		e.Body = raw
	}
	e.Normalize(time.Now())
	return e, nil
}

// Normalize fills what a producer may leave out: the schema version, a new
// id, the observed time (now), the canonical severity spelling and the
// fingerprint. It never overwrites what is set, except that a severity
// spelled in a known synonym is rewritten to its canonical form.
func (e *Envelope) Normalize(now time.Time) {
	if e.SchemaVersion == 0 {
		e.SchemaVersion = SchemaVersion
	}
	if e.ID == "" {
		e.ID = NewID(now)
	}
	if e.ObservedTime.IsZero() {
		e.ObservedTime = now
	}
	if sev, ok := ParseSeverity(string(e.Severity)); ok {
		e.Severity = sev
	}
	e.Time = e.Time.UTC()
	e.ObservedTime = e.ObservedTime.UTC()
	if e.Fingerprint == "" {
		e.Fingerprint = Fingerprint(e.Kind, e.Service, e.Labels, e.Resource)
	}
}

// Subject is the JetStream subject the envelope is published on:
// events.<kind>.<service>, the service reduced to a valid subject token.
func (e *Envelope) Subject() string {
	return Subject(e.Kind, e.Service)
}
