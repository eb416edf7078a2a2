package bus

import (
	"context"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// Collector exposes the consumer's Stats as Prometheus metrics labelled with
// its stream and durable name. It reads the same counters as Stats, so it
// adds no cost to the delivery path; what the server holds for the
// consumer (how far behind it is, and how much of the stream's limit that
// takes) it asks the server at each scrape, two requests and, for a
// consumer of the whole stream, a few of its unacked messages to weigh
// them (ConsumerBacklog; pendingTimeout at most; on an error those three
// are left out), or none when this process follows the stream's sizes on
// the same connection (StreamSizes: the gateway's, in aiops run), which
// weigh them at what they take. The few read weigh low when large
// messages are a minority of them and most of their bytes.
// The labels are constant labels of this consumer's descriptors, so the
// collectors of several consumers (aiops run has one per service) register
// side by side on one registry.
func (c *Consumer) Collector() prometheus.Collector {
	labels := prometheus.Labels{"stream": c.cfg.Stream, "consumer": c.cfg.Durable}
	return consumerCollector{
		c: c,
		deliveries: prometheus.NewDesc("aiops_bus_deliveries_total",
			"Deliveries handed to the handler.", nil, labels),
		results: prometheus.NewDesc("aiops_bus_results_total",
			"How deliveries were settled: ack, nak, deadletter, deadletter_failed (naked instead), settle_failed (ack/nak/term not sent).",
			[]string{"result"}, labels),
		outstanding: prometheus.NewDesc("aiops_bus_outstanding",
			"Deliveries handed out or being fetched and not yet settled; bounded by max_ack_pending.", nil, labels),
		inProgress: prometheus.NewDesc("aiops_bus_in_progress_total",
			"In-progress signals sent for deliveries held longer than a third of ack_wait (consumers that hold deliveries on purpose) or waiting as long in a fetched batch.", nil, labels),
		deadLetterNearFull: prometheus.NewDesc("aiops_bus_deadletters_near_full_total",
			"Dead letters stored while the dead-letter stream was at 90% or more of its max_bytes or max_msgs (looked at once a minute): past its limit each discards the oldest dead letters.", nil, labels),
		pending: prometheus.NewDesc("aiops_bus_pending",
			"Messages of the stream this consumer was not handed yet (the server's num_pending, asked at each scrape).", nil, labels),
		ackPending: prometheus.NewDesc("aiops_bus_ack_pending",
			"Messages handed to this consumer and not acked yet (the server's num_ack_pending, asked at each scrape).", nil, labels),
		backlogRatio: prometheus.NewDesc("aiops_bus_backlog_ratio",
			"The part of the stream's limit (max_bytes or max_msgs) taken by messages this consumer has not acked (pending and ack pending; for a consumer of the whole stream, every message from its oldest unacked one on, weighed at what they take where the process follows the stream's sizes (the gateway's in aiops run), else at the larger of the stream's mean message size and a few of them read; at the mean for the others; never more than the stream holds); at 1 a consumer of the whole stream loses messages it never processed (a consumer of a few subjects holding a few messages can lose them well before: it is their age against the stream's span that counts there).", nil, labels),
	}
}

// pendingTimeout bounds the scrape's request for the consumer's state: a
// server that does not answer leaves the two gauges out, not the scrape
// waiting. aiops run scrapes a consumer per service one after another,
// and a scrape past Prometheus's scrape_timeout (10 s) loses every metric
// just when the bus is in trouble.
const pendingTimeout = 500 * time.Millisecond

type consumerCollector struct {
	c                                                                *Consumer
	deliveries, results, outstanding, inProgress, deadLetterNearFull *prometheus.Desc
	pending, ackPending, backlogRatio                                *prometheus.Desc
}

func (cc consumerCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- cc.deliveries
	ch <- cc.results
	ch <- cc.outstanding
	ch <- cc.inProgress
	ch <- cc.deadLetterNearFull
	ch <- cc.pending
	ch <- cc.ackPending
	ch <- cc.backlogRatio
}

func (cc consumerCollector) Collect(ch chan<- prometheus.Metric) {
	s := cc.c.Stats()
	ch <- prometheus.MustNewConstMetric(cc.deliveries, prometheus.CounterValue, float64(s.Delivered))
	for _, r := range []struct {
		name string
		v    uint64
	}{
		{"ack", s.Acked}, {"nak", s.Naked}, {"deadletter", s.DeadLettered},
		{"deadletter_failed", s.DeadLetterFailed}, {"settle_failed", s.AckFailed},
	} {
		ch <- prometheus.MustNewConstMetric(cc.results, prometheus.CounterValue, float64(r.v), r.name)
	}
	ch <- prometheus.MustNewConstMetric(cc.outstanding, prometheus.GaugeValue, float64(s.Outstanding))
	ch <- prometheus.MustNewConstMetric(cc.inProgress, prometheus.CounterValue, float64(s.InProgress))
	ch <- prometheus.MustNewConstMetric(cc.deadLetterNearFull, prometheus.CounterValue, float64(s.DeadLetterNearFull))
	if nc := cc.c.js.Conn(); nc != nil && !nc.IsConnected() {
		return // asked, it would wait its timeout for nothing
	}
	ctx, cancel := context.WithTimeout(context.Background(), pendingTimeout)
	defer cancel()
	stream, err := cc.c.js.Stream(ctx, cc.c.cfg.Stream)
	if err != nil {
		return
	}
	if con, err := stream.Consumer(ctx, cc.c.cfg.Durable); err == nil {
		// Stream and Consumer fetched their info just now.
		info := con.CachedInfo()
		ch <- prometheus.MustNewConstMetric(cc.pending, prometheus.GaugeValue, float64(info.NumPending))
		ch <- prometheus.MustNewConstMetric(cc.ackPending, prometheus.GaugeValue, float64(info.NumAckPending))
		ch <- prometheus.MustNewConstMetric(cc.backlogRatio, prometheus.GaugeValue, cc.backlog(ctx, stream, info).Ratio)
	}
}

// backlog is the consumer's backlog on stream, their info fetched just
// now: weighed by the stream's sizes where this process follows them,
// else from a few messages read.
func (cc consumerCollector) backlog(ctx context.Context, stream jetstream.Stream, info *jetstream.ConsumerInfo) Backlog {
	if f := followerOf(cc.c.js, cc.c.cfg.Stream); f != nil {
		if b, err := f.backlogAt(ctx, stream, info); err == nil {
			return b
		}
	}
	return backlogAt(ctx, stream, info)
}

// ConnCollector exposes the connection's state: whether it is connected
// to a NATS server now, and how often it reconnected. A gateway's 503s
// count overload and a bus gone alike; these tell the second apart.
func ConnCollector(nc *nats.Conn) prometheus.Collector {
	return connCollector{
		nc: nc,
		connected: prometheus.NewDesc("aiops_bus_connected",
			"1 while the connection to NATS is up, else 0 (reconnecting, or closed).", nil, nil),
		reconnects: prometheus.NewDesc("aiops_bus_reconnects_total",
			"Reconnections to a NATS server (another node of a cluster, or the same one back) since the process started.", nil, nil),
	}
}

type connCollector struct {
	nc                    *nats.Conn
	connected, reconnects *prometheus.Desc
}

func (cc connCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- cc.connected
	ch <- cc.reconnects
}

func (cc connCollector) Collect(ch chan<- prometheus.Metric) {
	up := 0.0
	if cc.nc.IsConnected() {
		up = 1
	}
	ch <- prometheus.MustNewConstMetric(cc.connected, prometheus.GaugeValue, up)
	ch <- prometheus.MustNewConstMetric(cc.reconnects, prometheus.CounterValue, float64(cc.nc.Stats().Reconnects))
}
