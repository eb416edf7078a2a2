package logminer

// A templated log is of kind log (the raw log's envelope with a new id,
// Links = [raw id] and the template fields of its body filled; the writer
// stores it in the logs table with derived = 1) on
// event.TemplatedLogSubject: the extra subject token keeps it away from the
// miner, whose filter event.KindFilter(event.KindLog) matches raw logs
// only (three tokens).

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
