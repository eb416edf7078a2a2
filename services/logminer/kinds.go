package logminer

import "github.com/aiops-dev/aiops/pkg/event"

// TemplatedSuffix ends the subject of a templated log:
// events.log.<service>.templated. A templated log is of kind log (the raw
// log's envelope with a new id, Links = [raw id] and the template fields of
// its body filled; the writer stores it in the logs table with derived = 1),
// and the extra subject token keeps it away from the miner, whose filter
// events.log.* matches raw logs only (three tokens).
const TemplatedSuffix = ".templated"

// RawLogFilter is the consumer filter for raw logs.
const RawLogFilter = "events.log.*"

// The kind the logminer publishes that pkg/event does not list yet. Until
// event.Kinds holds it, event.Validate (and so the writer's strict Parse)
// refuses these envelopes; the proposal for pkg/event is in README.md.
const (
	// KindLogTemplate is one change in the life of a template (body
	// LogTemplateBody): a new template, or a template generalised into
	// another (a merge). Published on events.log_template.<service>.
	KindLogTemplate event.Kind = "log_template"
)

// Template lifecycle statuses of LogTemplateBody.Status.
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

// The metric and the detector name the logminer's samples and anomalies
// carry.
const (
	// MetricTemplateCount is the gauge of lines per template, per service
	// and per interval (labels template_id and service).
	MetricTemplateCount = "log_template_count"
	// MetricTemplateErrorCount names the series an error burst is about:
	// lines of error or critical severity per template and interval.
	MetricTemplateErrorCount = "log_template_error_count"
	// BurstDetector is AnomalyBody.Detector of an error burst.
	BurstDetector = "logminer.error_burst"
)
