package writer

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/aiops-dev/aiops/pkg/store"
)

// batchMetrics are the writer's series on /metrics, per table: what each
// insert carried and how long it took, from store.BatchWriter's observer.
type batchMetrics struct {
	rows     *prometheus.CounterVec   // rows committed, by table
	failed   *prometheus.CounterVec   // rows reported with an error, by table
	batches  *prometheus.CounterVec   // inserts, by table and trigger (size, bytes, age, flush, close)
	size     *prometheus.HistogramVec // rows per insert, by table
	duration *prometheus.HistogramVec // taking a batch to its last result, by table
}

func newBatchMetrics() *batchMetrics {
	return &batchMetrics{
		rows: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "aiops_writer_rows_written_total",
			Help: "Rows committed to ClickHouse, by table."}, []string{"table"}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "aiops_writer_rows_failed_total",
			Help: "Rows an insert reported with an error (their events are redelivered, or dead-lettered when the data cannot fit), by table."}, []string{"table"}),
		batches: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "aiops_writer_batches_total",
			Help: "Inserts, by table and what cut the batch (size, bytes, age, flush, close)."}, []string{"table", "trigger"}),
		size: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "aiops_writer_batch_rows",
			Help: "Rows per insert, by table.", Buckets: prometheus.ExponentialBuckets(1, 4, 9)}, []string{"table"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "aiops_writer_insert_duration_seconds",
			Help:    "Time from cutting a batch to its last row's result (retries included), by table.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10, 30}}, []string{"table"}),
	}
}

// observer records table's batches (store.WithBatchObserver).
func (m *batchMetrics) observer(table string) func(store.BatchResult) {
	// The table's series exist from the start, at 0, so that a rate over
	// them means something before the first failure.
	m.rows.WithLabelValues(table)
	m.failed.WithLabelValues(table)
	return func(r store.BatchResult) {
		m.rows.WithLabelValues(table).Add(float64(r.Rows - r.Failed))
		if r.Failed > 0 {
			m.failed.WithLabelValues(table).Add(float64(r.Failed))
		}
		m.batches.WithLabelValues(table, r.Trigger).Inc()
		m.size.WithLabelValues(table).Observe(float64(r.Rows))
		m.duration.WithLabelValues(table).Observe(r.Duration.Seconds())
	}
}

// Describe and Collect make batchMetrics a prometheus.Collector.
func (m *batchMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range m.collectors() {
		c.Describe(ch)
	}
}

func (m *batchMetrics) Collect(ch chan<- prometheus.Metric) {
	for _, c := range m.collectors() {
		c.Collect(ch)
	}
}

func (m *batchMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.rows, m.failed, m.batches, m.size, m.duration}
}
