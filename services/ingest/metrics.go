package ingest

import (
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/aiops-dev/aiops/services/ingest/decode"
)

// metrics are the gateway's series on /metrics. Labels are bounded: the
// endpoint is one of the paths (Handler.Paths) or "unknown", the code an HTTP status.
type metrics struct {
	requests *prometheus.CounterVec   // by endpoint and status code
	duration *prometheus.HistogramVec // by endpoint: receipt to answer, the bus's ack included
	events   *prometheus.CounterVec   // accepted (stored by JetStream), by endpoint
	bytes    *prometheus.CounterVec   // request bodies read, by endpoint
	skipped  *prometheus.CounterVec   // inputs of accepted requests not made events, by endpoint and reason
	// log record attribute values cut to fit a label, by endpoint
	truncated *prometheus.CounterVec
	// the writer's backlog as last seen, looked at anew when due;
	// nil without WithStoreBacklog
	storeBacklog prometheus.GaugeFunc
}

func newMetrics() *metrics {
	return &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "aiops_ingest_requests_total",
			Help: "Requests by endpoint and answer (200 accepted; 4xx refused, the body names why; 503 not stored, retry)."}, []string{"endpoint", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "aiops_ingest_request_duration_seconds",
			Help:    "Time from a request's receipt to its answer, JetStream's ack included.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10}}, []string{"endpoint"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "aiops_ingest_events_accepted_total",
			Help: "Events stored by JetStream and acknowledged to the producer."}, []string{"endpoint"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "aiops_ingest_request_bytes_total",
			Help: "Request bodies read, as sent (compressed when the request was)."}, []string{"endpoint"}),
		// The reasons are decode's Skipped* constants: a bounded set.
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "aiops_ingest_skipped_total",
			Help: "Inputs of accepted requests not made events, by reason: stale_markers, non_finite_values (NaN, ±Inf) and native_histograms are valid and not stored; invalid were refused while the others of their request were taken."}, []string{"endpoint", "reason"}),
		truncated: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "aiops_ingest_truncated_total",
			Help: "OTLP attribute values (of log records, of resources) and alert label values over 4 KiB and log messages over 64 KiB as JSON cut to fit, marked \"…[cut from N bytes\" and the rest, in the requests taken."}, []string{"endpoint"}),
	}
}

// Describe and Collect make metrics a prometheus.Collector.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	m.requests.Describe(ch)
	m.duration.Describe(ch)
	m.events.Describe(ch)
	m.bytes.Describe(ch)
	m.skipped.Describe(ch)
	m.truncated.Describe(ch)
	if m.storeBacklog != nil {
		m.storeBacklog.Describe(ch)
	}
}

func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	m.requests.Collect(ch)
	m.duration.Collect(ch)
	m.events.Collect(ch)
	m.bytes.Collect(ch)
	m.skipped.Collect(ch)
	m.truncated.Collect(ch)
	if m.storeBacklog != nil {
		m.storeBacklog.Collect(ch)
	}
}

// observe records one request.
func (m *metrics) observe(endpoint string, code int, start time.Time, events int, bytes int64) {
	m.requests.WithLabelValues(endpoint, strconv.Itoa(code)).Inc()
	m.duration.WithLabelValues(endpoint).Observe(time.Since(start).Seconds())
	if events > 0 {
		m.events.WithLabelValues(endpoint).Add(float64(events))
	}
	if bytes > 0 {
		m.bytes.WithLabelValues(endpoint).Add(float64(bytes))
	}
}

// observeSkipped counts what an accepted request skipped (decode.Batch.Skipped)
// and cut (decode.Batch.Truncated):
// Prometheus and Alertmanager read no answer body, and the OTLP answer
// does not tell valid values it did not store, so this is where an
// operator sees them.
func (m *metrics) observeSkipped(endpoint string, b *decode.Batch) {
	for reason, n := range b.Skipped {
		m.skipped.WithLabelValues(endpoint, reason).Add(float64(n))
	}
	if b.Truncated > 0 {
		m.truncated.WithLabelValues(endpoint).Add(float64(b.Truncated))
	}
}

// statusWriter remembers the status code written.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	w.code = code
	w.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the connection (read
// deadlines of a request body).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// countingReader counts the bytes read from a request body.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
