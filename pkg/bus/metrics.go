package bus

import "github.com/prometheus/client_golang/prometheus"

var (
	descDeliveries = prometheus.NewDesc("aiops_bus_deliveries_total",
		"Deliveries handed to the handler.", []string{"stream", "consumer"}, nil)
	descResults = prometheus.NewDesc("aiops_bus_results_total",
		"How deliveries were settled: ack, nak, deadletter, deadletter_failed (naked instead), settle_failed (ack/nak/term not sent).",
		[]string{"stream", "consumer", "result"}, nil)
	descOutstanding = prometheus.NewDesc("aiops_bus_outstanding",
		"Deliveries handed out or being fetched and not yet settled; bounded by max_ack_pending.",
		[]string{"stream", "consumer"}, nil)
)

// Collector exposes the consumer's Stats as Prometheus metrics labelled with
// its stream and durable name. It reads the same counters as Stats, so it
// adds no cost to the delivery path.
func (c *Consumer) Collector() prometheus.Collector { return consumerCollector{c} }

type consumerCollector struct{ c *Consumer }

func (cc consumerCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descDeliveries
	ch <- descResults
	ch <- descOutstanding
}

func (cc consumerCollector) Collect(ch chan<- prometheus.Metric) {
	s := cc.c.Stats()
	stream, durable := cc.c.cfg.Stream, cc.c.cfg.Durable
	ch <- prometheus.MustNewConstMetric(descDeliveries, prometheus.CounterValue, float64(s.Delivered), stream, durable)
	for _, r := range []struct {
		name string
		v    uint64
	}{
		{"ack", s.Acked}, {"nak", s.Naked}, {"deadletter", s.DeadLettered},
		{"deadletter_failed", s.DeadLetterFailed}, {"settle_failed", s.AckFailed},
	} {
		ch <- prometheus.MustNewConstMetric(descResults, prometheus.CounterValue, float64(r.v), stream, durable, r.name)
	}
	ch <- prometheus.MustNewConstMetric(descOutstanding, prometheus.GaugeValue, float64(s.Outstanding), stream, durable)
}
