package correlator

import (
	"fmt"
	"time"

	"github.com/aiops-dev/aiops/pkg/bus"
	"github.com/aiops-dev/aiops/pkg/config"
	"github.com/aiops-dev/aiops/pkg/correlate"
	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/pkg/stage"
)

// ErrInvalidConfig is wrapped by Validate's errors.
var ErrInvalidConfig = fmt.Errorf("correlator: %w", config.ErrInvalidConfig)

// Config is the correlator's section.
type Config struct {
	// Consumer reads alerts, anomalies and changes: stream EVENTS, durable
	// "correlator", filters events.alert.>, events.anomaly.>, events.change.>.
	Consumer bus.ConsumerConfig `yaml:"consumer"`
	// Catalog is the service catalog file (YAML: services → owner, team,
	// tier, runbook, depends_on); empty means no topology, a service then
	// relates only to itself.
	Catalog string `yaml:"catalog"`
	// Rules tune the grouping, lifecycle and flapping (pkg/correlate).
	Rules correlate.Config `yaml:"rules"`
	// IdleAdvance: when no signal arrived for this long, event time moves
	// on with the wall clock, so incidents resolve while nothing happens,
	// staying this and the recent signals' longest delivery lag behind
	// it (Processor.Tick); a replay of history, which never idles, runs
	// on event time alone (default 10s).
	IdleAdvance time.Duration `yaml:"idle_advance"`
	// State is where the incidents are kept between runs.
	State StateConfig `yaml:"state"`
	// API is the incidents API (off unless api.listen is set).
	API APIConfig `yaml:"api"`
	// Lease keeps one instance active per durable: a second instance on
	// the same durable stands by and takes over when the first stops or
	// stops renewing (after TTL), so two never both make incidents.
	Lease LeaseConfig `yaml:"lease"`
	// Partition spreads correlation over several active instances.
	Partition PartitionConfig `yaml:"partition"`
}

// PartitionConfig splits the signals among Count correlators by group
// key, the catalog component of the signal's service (services joined by
// depends_on, either way; a service not in the catalog is its own): the
// correlator joins signals only along the catalog, so two components
// never share an incident and each partition makes exactly the incidents
// one correlator would make of its components. Instance Index (0 to
// Count-1) reads every signal on its own durable (correlator-<index>:
// its own lease and state) and keeps those of its partition.
type PartitionConfig struct {
	Count int `yaml:"count"` // default 1: no partitioning
	Index int `yaml:"index"`
}

// LeaseConfig is the correlator's leadership lease in a JetStream
// key-value bucket (key: correlator.<durable>).
type LeaseConfig = bus.LeaseConfig

// StateConfig says where and how often the correlator's state is saved
// (default: the object store "correlator", the consumer's durable name as
// the key, every 10s).
type StateConfig = stage.StateConfig

// DefaultMaxAckPending is the correlator's consumer.max_ack_pending when
// it saves its state: the signals taken in and not acked yet, as their
// acks wait for a saved state that holds them.
const DefaultMaxAckPending = 16_384

// DefaultConfig is the correlator with no configuration at all.
func DefaultConfig() Config { return Config{}.WithDefaults() }

// WithDefaults fills what is unset.
func (c Config) WithDefaults() Config {
	if c.Partition.Count == 0 {
		c.Partition.Count = 1
	}
	durable := defaultDurable(c.Partition.Count, c.Partition.Index)
	if c.Consumer.MaxAckPending == 0 && !c.State.Disabled {
		// A signal is acked once a saved state holds it, and a save is
		// taken when half of these wait: 8,192 a save keeps a busy
		// correlator near its stateless speed (BenchmarkEndToEnd).
		c.Consumer.MaxAckPending = DefaultMaxAckPending
	}
	c.Consumer = c.Consumer.Of(bus.StreamEvents, durable, event.KindFilterAll(event.KindAlert), event.KindFilterAll(event.KindAnomaly), event.KindFilterAll(event.KindChange))
	if c.IdleAdvance == 0 {
		c.IdleAdvance = 10 * time.Second
	}
	c.State = c.State.WithDefaults("correlator", c.Consumer.Durable, 10*time.Second)
	c.Lease = c.Lease.WithDefaults()
	c.Rules = c.Rules.WithDefaults()
	return c
}

// Validate names the key that is wrong; unset fields take their defaults.
func (c Config) Validate() error {
	if c.IdleAdvance < 0 || c.State.SaveEvery < 0 {
		return fmt.Errorf("%w: correlator.idle_advance and correlator.state.save_every must not be negative", ErrInvalidConfig)
	}
	if c.Partition.Count > 1 && (c.Consumer.Durable != "" || c.State.Key != "") {
		// Each partition needs its own durable, lease and state: shared,
		// one instance would consume while the others stood by, and keep
		// only its own share of the signals.
		return fmt.Errorf("%w: correlator.consumer.durable and correlator.state.key must not be set with partition.count %d: each partition takes its own (correlator-<index>)", ErrInvalidConfig, c.Partition.Count)
	}
	for key, name := range map[string]string{"consumer.durable": c.Consumer.Durable, "state.key": c.State.Key} {
		if i, ok := inLayout(name); ok && i >= 0 {
			// Taken for a partition of an earlier layout, a default
			// deployment sharing the account would delete its consumers
			// and resolve its incidents (layout.go).
			return fmt.Errorf("%w: correlator.%s %q is a partition's name (correlator-<index>, set by partition.count): choose another", ErrInvalidConfig, key, name)
		}
	}
	c = c.WithDefaults()
	if err := c.Consumer.Validate(); err != nil {
		return fmt.Errorf("%w: correlator.consumer: %w", ErrInvalidConfig, err)
	}
	if err := c.Rules.Validate(); err != nil {
		return err
	}
	if err := c.State.Validate(); err != nil {
		return fmt.Errorf("%w: correlator.%w", ErrInvalidConfig, err)
	}
	if err := c.API.Validate(); err != nil {
		return fmt.Errorf("%w: correlator.api.%w", ErrInvalidConfig, err)
	}
	if p := c.Partition; p.Count < 1 || p.Count > 1024 || p.Index < 0 || p.Index >= p.Count {
		return fmt.Errorf("%w: correlator.partition: index %d of count %d, want count 1 to 1024 and index 0 to count-1", ErrInvalidConfig, p.Index, p.Count)
	}
	if err := c.Lease.Validate(); err != nil {
		return fmt.Errorf("%w: correlator.lease.%w", ErrInvalidConfig, err)
	}
	if c.Catalog != "" {
		if _, err := correlate.ReadCatalog(c.Catalog); err != nil {
			return fmt.Errorf("%w: correlator.catalog: %w", ErrInvalidConfig, err)
		}
	}
	return nil
}
