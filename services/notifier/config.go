package notifier

import (
	"fmt"
	"time"

	"github.com/aiops-dev/aiops/pkg/bus"
	"github.com/aiops-dev/aiops/pkg/config"
	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/pkg/httpapi"
	"github.com/aiops-dev/aiops/pkg/notify/amconfig"
	"github.com/aiops-dev/aiops/pkg/notify/silence"
	"github.com/aiops-dev/aiops/pkg/notify/webhook"
)

// ErrInvalidConfig is wrapped by Validate's errors.
var ErrInvalidConfig = fmt.Errorf("notifier: %w", config.ErrInvalidConfig)

// Config is the notifier's section.
type Config struct {
	// Consumer reads incident events: stream EVENTS, durable "notifier",
	// filter events.incident.>. Unset ack_wait is the longest time a
	// route's timers hold an event plus the delivery's retry budget; an
	// event held longer (queued behind a slow receiver) is told in
	// progress, so that it is not redelivered while held (bus.WithInProgress).
	Consumer bus.ConsumerConfig `yaml:"consumer"`
	// Routes is an Alertmanager configuration file (alertmanager.yml, as
	// it is): its route tree, inhibit rules, time intervals and webhook
	// receivers decide who hears of which incident. Empty: incidents are
	// delivered to nobody (and said so at start).
	Routes string `yaml:"routes"`
	// Delivery tunes timeouts, retries, the circuit breaker and the rate
	// limit of every receiver.
	Delivery webhook.Config `yaml:"delivery"`
	// ExternalURL is the link back to aiops in Alertmanager-shaped payloads.
	ExternalURL string `yaml:"external_url"`
	// Silences are kept in a JetStream key-value bucket (default
	// "silences", expired ones kept 120h).
	Silences silence.Config `yaml:"silences"`
	// API serves silences in Alertmanager's API v2 shape, for amtool
	// (off unless api.listen is set; `aiops run` listens on
	// 127.0.0.1:9093 with data/api-token).
	API httpapi.Config `yaml:"api"`
	// Lease keeps one instance delivering per durable (key
	// notifier.<durable> in the bucket "leases"): the timers of an
	// incident live in one place, and a second instance stands by (it
	// still serves the silences API) until the first stops or dies.
	Lease bus.LeaseConfig `yaml:"lease"`
	// State keeps the open incidents' labels, which inhibit, in a
	// key-value bucket (default "notifier_state"), so that a restart, or a
	// standby taking the lease, still knows them; and the Jira issues
	// made (or whose create got no answer) that Jira's search may not
	// show yet, so that they do not make a second issue.
	State StateConfig `yaml:"state"`
}

// ackWait is consumer.ack_wait, or when unset how long an event may wait
// unsettled: the longest a route's timers hold it (hold) and the delivery's
// retry budget.
func (c Config) ackWait(hold time.Duration) time.Duration {
	if c.Consumer.AckWait > 0 {
		return c.Consumer.AckWait
	}
	d := c.Delivery.WithDefaults()
	return hold + d.Retry.MaxElapsed + d.Timeout + 30*time.Second
}

// DefaultConfig is the notifier with no configuration at all.
func DefaultConfig() Config { return Config{}.WithDefaults() }

// WithDefaults fills what is unset.
func (c Config) WithDefaults() Config {
	c.Consumer = c.Consumer.Of(bus.StreamEvents, "notifier", event.KindFilterAll(event.KindIncident))
	if c.Consumer.MaxAckPending == 0 {
		// Events wait for their notifications unacked: room for a storm's
		// incidents and their updates within group_interval.
		c.Consumer.MaxAckPending = 20_000
	}
	c.Delivery = c.Delivery.WithDefaults()
	c.Silences = c.Silences.WithDefaults()
	c.Lease = c.Lease.WithDefaults()
	c.State = c.State.WithDefaults()
	return c
}

// Validate names the key that is wrong; it reads the routes file.
func (c Config) Validate() error {
	c = c.WithDefaults()
	if err := c.Consumer.Validate(); err != nil {
		return fmt.Errorf("%w: notifier.consumer: %w", ErrInvalidConfig, err)
	}
	if err := c.Delivery.Validate(); err != nil {
		return fmt.Errorf("notifier.delivery: %w", err)
	}
	if c.Delivery.Timeout > MaxSendTimeout {
		return fmt.Errorf("%w: notifier.delivery.timeout %v: at most %v (a stop waits %v for the sends in flight, then cancels them)", ErrInvalidConfig, c.Delivery.Timeout, MaxSendTimeout, drainTimeout)
	}
	if err := c.Silences.Validate(); err != nil {
		return fmt.Errorf("notifier.silences: %w", err)
	}
	if err := c.API.Validate(); err != nil {
		return fmt.Errorf("%w: notifier.api.%w", ErrInvalidConfig, err)
	}
	if err := c.Lease.Validate(); err != nil {
		return fmt.Errorf("%w: notifier.lease.%w", ErrInvalidConfig, err)
	}
	if err := c.State.Validate(); err != nil {
		return fmt.Errorf("%w: notifier.state.%w", ErrInvalidConfig, err)
	}
	if c.Routes != "" {
		if _, err := amconfig.Load(c.Routes); err != nil {
			return fmt.Errorf("%w: notifier.routes: %w", ErrInvalidConfig, err)
		}
	}
	return nil
}
