package stage

import (
	"context"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/bus"
)

// Stage is a runner wired to JetStream: its durable consumer and its
// publisher. It is a service.Runner.
type Stage struct {
	*Runner
	consumer *bus.Consumer
}

// OpenOption adjusts Open.
type OpenOption func(*openOptions)

type openOptions struct {
	consumerOpts []bus.ConsumerOption
	runnerOpts   []Option
}

// WithConsumerOptions passes options to the bus consumer.
func WithConsumerOptions(opts ...bus.ConsumerOption) OpenOption {
	return func(o *openOptions) { o.consumerOpts = append(o.consumerOpts, opts...) }
}

// WithRunnerOptions passes options to the runner.
func WithRunnerOptions(opts ...Option) OpenOption {
	return func(o *openOptions) { o.runnerOpts = append(o.runnerOpts, opts...) }
}

// Open ensures the durable consumer described by cc and returns the stage
// of proc (a Processor or a Sink) on js. Queue defaults to the consumer's
// MaxAckPending, so that handing a delivery to the workers never blocks
// below the consumer's own bound, and the publisher has room for two
// outputs per pending input plus a tick's worth.
func Open(ctx context.Context, js jetstream.JetStream, proc any, cfg Config, cc bus.ConsumerConfig, log zerolog.Logger, opts ...OpenOption) (*Stage, error) {
	var o openOptions
	for _, opt := range opts {
		opt(&o)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := cc.Validate(); err != nil {
		return nil, err
	}
	defaulted := cc.WithDefaults()
	pending := defaulted.MaxAckPending
	if cfg.Queue == 0 {
		cfg.Queue = pending
	}
	var pub Publisher
	if _, isProcessor := proc.(Processor); isProcessor {
		// Inputs are settled in order, so those behind an output whose ack
		// was lost wait for the publisher's ack timeout: it must end well
		// within ack_wait, or the server redelivers them all to be
		// processed again (and dead-letters them at max_deliver, done).
		ackTimeout := min(bus.DefaultPublishAckTimeout, defaulted.AckWait/3)
		p, err := bus.NewPublisher(js, bus.WithMaxInFlight(2*pending+4096), bus.WithAckTimeout(ackTimeout))
		if err != nil {
			return nil, err
		}
		pub = p
	}
	r, err := NewRunner(proc, cfg, pub, log, o.runnerOpts...)
	if err != nil {
		return nil, err
	}
	// The drain is the stage's (the consumer's options may still set it).
	// The stop is checked by the last option, once the others set the
	// consumer's, and before NewConsumer creates or changes it on the
	// server: a configuration refused leaves the server as it was.
	consumerOpts := append([]bus.ConsumerOption{bus.WithDrainTimeout(r.Config().DrainTimeout)}, o.consumerOpts...)
	consumerOpts = append(consumerOpts, func(c *bus.Consumer) error {
		return checkStop(proc, r.Config(), "the consumer's fetch, drain and acks' flush", c.StopTimeout())
	})
	consumer, err := bus.NewConsumer(ctx, js, cc, log, consumerOpts...)
	if err != nil {
		return nil, err
	}
	return &Stage{Runner: r, consumer: consumer}, nil
}

// Run consumes until ctx is cancelled, then drains (Runner.Run).
func (s *Stage) Run(ctx context.Context) error { return s.Runner.Run(ctx, s.consumer) }

// ConsumerStats reports the consumer's counters.
func (s *Stage) ConsumerStats() bus.Stats { return s.consumer.Stats() }

// Collector exports the runner's and the consumer's metrics.
func (s *Stage) Collector() prometheus.Collector {
	return Collectors{s.Runner.Collector(), s.consumer.Collector()}
}

// Collectors is several collectors as one.
type Collectors []prometheus.Collector

// Describe describes every collector's metrics.
func (cs Collectors) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range cs {
		c.Describe(ch)
	}
}

// Collect collects every collector's metrics.
func (cs Collectors) Collect(ch chan<- prometheus.Metric) {
	for _, c := range cs {
		c.Collect(ch)
	}
}
