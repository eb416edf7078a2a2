package platform

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/aiops-dev/aiops/pkg/bus"
)

// RegisterConsumer exports a consumer's counters on /metrics as
// aiops_consumer_*{consumer="name"}.
func (p *Platform) RegisterConsumer(name string, stats func() bus.Stats) {
	labels := prometheus.Labels{"consumer": name}
	counter := func(metric, help string, get func(bus.Stats) uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "aiops_consumer_" + metric + "_total", Help: help, ConstLabels: labels,
		}, func() float64 { return float64(get(stats())) })
	}
	p.Registry.MustRegister(
		counter("delivered", "Messages handed to the handler.", func(s bus.Stats) uint64 { return s.Delivered }),
		counter("acked", "Messages acknowledged after their handler succeeded.", func(s bus.Stats) uint64 { return s.Acked }),
		counter("naked", "Messages handed back for redelivery after a transient failure.", func(s bus.Stats) uint64 { return s.Naked }),
		counter("deadlettered", "Messages moved to the dead-letter subject.", func(s bus.Stats) uint64 { return s.DeadLettered }),
		counter("deadletter_failed", "Dead-letter publishes that failed (the message was naked instead).", func(s bus.Stats) uint64 { return s.DeadLetterFailed }),
		counter("ack_failed", "Acks, naks or terms that could not be sent (the server redelivers).", func(s bus.Stats) uint64 { return s.AckFailed }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "aiops_consumer_outstanding", Help: "Messages in the handler, result not yet applied.", ConstLabels: labels,
		}, func() float64 { return float64(stats().Outstanding) }),
	)
}
