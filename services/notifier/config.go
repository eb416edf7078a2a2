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
	// filter events.incident.>. Unset ack_wait is a minute (ackWait):
	// an event held longer (by a route's timers, queued behind a slow
	// receiver) is told in progress, so that it is not redelivered while
	// held (bus.WithInProgress). A standby leaves these settings on the
	// server to the instance holding the lease, and applies its own when
	// it takes it.
	Consumer bus.ConsumerConfig `yaml:"consumer"`
	// Routes is an Alertmanager configuration file (alertmanager.yml, as
	// it is): its route tree, inhibit rules, time intervals and webhook
	// receivers decide who hears of which incident. Empty: incidents are
	// delivered to nobody (and said so at start).
	Routes string `yaml:"routes"`
	// Delivery tunes timeouts, retries, the circuit breaker and the rate
	// limit of every receiver, and how long a notification whose receiver
	// cannot be reached is held and tried again (max_hold).
	Delivery DeliveryConfig `yaml:"delivery"`
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

// DeliveryConfig is the webhook client's configuration (timeouts,
// retries, breaker, rate limit) and how long the notifier holds a
// notification its receiver could not take.
type DeliveryConfig struct {
	webhook.Config `yaml:",inline"`
	// MaxHold is how long a notification whose receiver cannot be reached
	// (5xx, 408, 429, a timeout, a refused connection, its breaker open) is
	// held and tried again, from its first failure, before its incident
	// event is dead-lettered (for aiops notify replay). Its event stays
	// unacked meanwhile, told in progress, so what is held is bounded too:
	// a notification failing while receivers that cannot be reached hold
	// more than half of consumer.max_ack_pending is dead-lettered at once
	// (past max_ack_pending every receiver would wait). Default
	// DefaultMaxHold, or half the stream's max_age when that is shorter;
	// at most nine tenths of the stream's max_age (New checks).
	MaxHold time.Duration `yaml:"max_hold"`
	// MaxHeldBytes bounds the same in bytes (of incident event bodies):
	// each held event stays in memory (the consumer keeps it to
	// dead-letter it), and a storm's incident comes near the 512 KiB
	// body limit, so half of max_ack_pending in such events would take
	// 5 GB. A notification failing while receivers that cannot be
	// reached hold more is dead-lettered at once too. Default
	// DefaultMaxHeldBytes; at least event.MaxBodyBytes.
	MaxHeldBytes int `yaml:"max_held_bytes"`
}

// DefaultMaxHeldBytes is notifier.delivery.max_held_bytes by default:
// 128 events of a storm's incident at the body limit; events averaging
// under 6.7 KiB reach half of max_ack_pending's 20,000 first.
const DefaultMaxHeldBytes = 64 << 20

// DefaultMaxDeliver is notifier.consumer.max_deliver by default. A
// receiver that cannot be reached does not send the event back to the
// stream (it is held, max_hold), so what counts deliveries is the stops
// and crashes of notifiers while they hold it: each hands it back, and
// JetStream counts the next delivery. A rolling update or a few
// restarts during a receiver's outage must not dead-letter what is held;
// a notifier crashing on one event still gives it up.
const DefaultMaxDeliver = 20

// DefaultMaxHold is notifier.delivery.max_hold by default: a receiver's
// deploy, a network partition or a night's outage of a ticketing system
// is ridden out; past it the event goes to the dead letters, where
// aiops notify replay finds it.
const DefaultMaxHold = 6 * time.Hour

// WithDefaults fills what is unset; MaxHold stays 0 (New fills it in,
// knowing the stream's max_age).
func (d DeliveryConfig) WithDefaults() DeliveryConfig {
	d.Config = d.Config.WithDefaults()
	if d.MaxHeldBytes == 0 {
		d.MaxHeldBytes = DefaultMaxHeldBytes
	}
	return d
}

// ackWait is consumer.ack_wait, or when unset a minute (more than one
// try's timeout and a margin). It need not cover what holds an event:
// while a route's timers, a receiver's lane or its retries hold it, the
// notifier tells it in progress every third of ack_wait
// (bus.WithInProgress). It is how long a crashed notifier's held events
// wait before the stream hands them to the next one: covering the
// longest group_interval, as it did, held a page for minutes after a
// kill -9.
func (c Config) ackWait() time.Duration {
	if c.Consumer.AckWait > 0 {
		return c.Consumer.AckWait
	}
	return max(time.Minute, c.Delivery.WithDefaults().Timeout+30*time.Second)
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
	if c.Consumer.MaxDeliver == 0 {
		c.Consumer.MaxDeliver = DefaultMaxDeliver
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
	if c.Delivery.MaxHold < 0 {
		return fmt.Errorf("%w: notifier.delivery.max_hold: negative (%v)", ErrInvalidConfig, c.Delivery.MaxHold)
	}
	if c.Delivery.MaxHeldBytes < event.MaxBodyBytes {
		return fmt.Errorf("%w: notifier.delivery.max_held_bytes %d: at least %d (an incident event of the largest size)", ErrInvalidConfig, c.Delivery.MaxHeldBytes, event.MaxBodyBytes)
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
		routes, err := amconfig.Load(c.Routes)
		if err != nil {
			return fmt.Errorf("%w: notifier.routes: %w", ErrInvalidConfig, err)
		}
		if err := checkSeverityMatchers(routes); err != nil {
			return err
		}
		// What the notifier refuses when it starts (templates rendered on
		// the sample incidents, timeouts, TLS files, ...) is refused
		// here too: `aiops run -check` asks only this.
		if _, err := buildIntegrations(routes, &Processor{cfg: c, jiras: map[string]*webhook.Jira{}}); err != nil {
			return fmt.Errorf("notifier.routes: %w", err)
		}
	}
	return nil
}
