package notifier

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/aiops-dev/aiops/pkg/stage"
)

// metrics are the notifier's own, beside its stage's: what each
// integration was sent and how it answered (Alertmanager's
// alertmanager_notifications_total and _failed_total, by receiver too),
// and what receivers that cannot be reached hold.
type metrics struct {
	notifications *prometheus.CounterVec
	duration      *prometheus.HistogramVec
	held          prometheus.Collector
	heldBytes     prometheus.Collector
}

// Outcomes of one integration's notification (label outcome).
const (
	outcomeSent    = "sent"    // answered 2xx
	outcomeFailed  = "failed"  // could not be reached in the retry budget (held, tried again)
	outcomeRefused = "refused" // refused for good (4xx: dead-lettered)
)

func newMetrics(p *Processor) *metrics {
	held := func(f func(s *schedule) int) func() float64 {
		return func() float64 {
			p.mu.Lock()
			defer p.mu.Unlock()
			return float64(f(p.schedule))
		}
	}
	return &metrics{
		notifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "aiops_notifier_notifications_total",
			Help: "Notifications sent to each integration of each receiver, by outcome: sent (2xx), failed (not reached within the retry budget; held and tried again), refused (for good: dead-lettered).",
		}, []string{"receiver", "integration", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "aiops_notifier_notification_duration_seconds",
			Help:    "Time to send one notification to one integration, its retries included.",
			Buckets: []float64{.01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"receiver", "integration"}),
		held: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "aiops_notifier_held_events",
			Help: "Incident events held for receivers that cannot be reached (bounded by delivery.max_held_bytes and half of consumer.max_ack_pending).",
		}, held(func(s *schedule) int { return s.failingInputs })),
		heldBytes: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "aiops_notifier_held_bytes",
			Help: "Bytes of the incident events held for receivers that cannot be reached (delivery.max_held_bytes bounds it).",
		}, held(func(s *schedule) int { return s.failingBytes })),
	}
}

// observe records one integration's notification.
func (m *metrics) observe(receiver string, ig *integration, outcome string, took time.Duration) {
	m.notifications.WithLabelValues(receiver, ig.label, outcome).Inc()
	m.duration.WithLabelValues(receiver, ig.label).Observe(took.Seconds())
}

// collector is the metrics as one collector.
func (m *metrics) collector() prometheus.Collector {
	return stage.Collectors{m.notifications, m.duration, m.held, m.heldBytes}
}
