package detector

import (
	"fmt"
	"regexp"
	"time"

	"github.com/aiops-dev/aiops/pkg/bus"
	"github.com/aiops-dev/aiops/pkg/config"
	"github.com/aiops-dev/aiops/pkg/detect/pipeline"
	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/pkg/stage"
)

// ErrInvalidConfig is wrapped by every error Config.Validate returns.
var ErrInvalidConfig = fmt.Errorf("detector: %w", config.ErrInvalidConfig)

// Defaults of Config.
const (
	DefaultDurable          = "detector"
	DefaultMaxSeries        = 200_000
	DefaultMaxAssets        = 20_000
	MaxAssetsLimit          = 1_000_000
	DefaultBucket           = "detector_state"
	DefaultSnapshotInterval = time.Minute
	DefaultSnapshotMaxAge   = 7 * 24 * time.Hour
	DefaultSnapshotChunk    = 1024
	DefaultShutdownSnapshot = 8 * time.Second
	MaxSeriesLimit          = 20_000_000
	DefaultMaxEventFuture   = 5 * time.Minute
	MaxEventFutureLimit     = 24 * time.Hour
)

// Config is the detector's own section of the service configuration.
type Config struct {
	// Pipeline is the pipeline file whose `detect` section routes series to
	// detector settings (pipelines/README.md). Empty: built-in defaults.
	Pipeline string `yaml:"pipeline"`
	// Consumer is the durable pull consumer. Defaults: stream EVENTS,
	// durable "detector", filter events.metric.>. To scale out, give each
	// instance its own durable, instance and filter (README.md).
	Consumer bus.ConsumerConfig `yaml:"consumer"`
	// Instance prefixes this instance's snapshot keys so instances sharing a
	// bucket never overwrite each other. Default: the consumer's durable.
	Instance string `yaml:"instance"`
	// MaxSeries bounds the series held in memory; the least recently seen
	// one is evicted beyond it, and starts again from nothing (its warm-up)
	// when it sends again: keep it above the live series. Default 200,000
	// (about 1 KB each).
	MaxSeries int `yaml:"max_series"`
	// MaxAssets bounds the assets of pipeline groups held in memory; the
	// least recently seen one is evicted beyond it. Default 20,000 (a few
	// KB each: the warm-up rows, then a channels × channels model).
	MaxAssets int `yaml:"max_assets"`
	// MaxEventFuture is how far ahead of the service's clock a sample may be
	// stamped and still be scored. A sample's time is its series' event
	// time: one stamped ahead (a producer's clock, a wrong unit) would make
	// every real sample after it out of order, and the series (and its
	// group asset) score nothing until the clock caught up. A sample further
	// ahead is acked unscored, counted in
	// aiops_detector_samples_ignored_total{reason="future"} and logged at
	// most once a minute; the writer stores it all the same. Only the future
	// is bounded: a backlog or a replay of history, however old, is scored
	// on its own times. Default 5m, at most 24h (ingest.max_event_future,
	// 1h by default, bounds what the gateway accepts).
	MaxEventFuture time.Duration `yaml:"max_event_future"`
	// Snapshot configures the state snapshots to a JetStream key-value bucket.
	Snapshot SnapshotConfig `yaml:"snapshot"`
}

// SnapshotConfig configures the state snapshots.
type SnapshotConfig struct {
	// Disabled keeps state in memory only: a restart warms up again.
	Disabled bool `yaml:"disabled"`
	// Bucket is the key-value bucket. Default detector_state.
	Bucket string `yaml:"bucket"`
	// Interval between snapshots of the series changed since the last one.
	// Default 1m; a final snapshot is taken on shutdown.
	Interval time.Duration `yaml:"interval"`
	// MaxAge drops the state of a series not snapshotted for this long
	// (the bucket's TTL), and from memory one that sent nothing for this
	// long (forgetIdle), and a group asset that took no sample for this
	// long (forgetIdleAssets), so series and assets that vanished do not
	// pile up. Default 7d.
	MaxAge time.Duration `yaml:"max_age"`
	// Replicas of the bucket in a cluster. Default 1.
	Replicas int `yaml:"replicas"`
	// Chunk is how many series are encoded under one lock hold and
	// published before waiting for their acks. Default 1024.
	Chunk int `yaml:"chunk"`
	// ShutdownTimeout bounds the final snapshot. Default 8s; under
	// stage.CheckpointBudget (9s), so that the stop ends within the
	// service's 25s after the drain.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
}

// DefaultConfig returns the configuration with every default filled in.
func DefaultConfig() Config { return Config{}.WithDefaults() }

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	c.Consumer = c.Consumer.Of(bus.StreamEvents, DefaultDurable, event.KindFilterAll(event.KindMetric))
	if c.Instance == "" {
		c.Instance = c.Consumer.Durable
	}
	if c.MaxSeries == 0 {
		c.MaxSeries = DefaultMaxSeries
	}
	if c.MaxAssets == 0 {
		c.MaxAssets = DefaultMaxAssets
	}
	if c.MaxEventFuture == 0 {
		c.MaxEventFuture = DefaultMaxEventFuture
	}
	s := &c.Snapshot
	if s.Bucket == "" {
		s.Bucket = DefaultBucket
	}
	if s.Interval == 0 {
		s.Interval = DefaultSnapshotInterval
	}
	if s.MaxAge == 0 {
		s.MaxAge = DefaultSnapshotMaxAge
	}
	if s.Replicas == 0 {
		s.Replicas = 1
	}
	if s.Chunk == 0 {
		s.Chunk = DefaultSnapshotChunk
	}
	if s.ShutdownTimeout == 0 {
		s.ShutdownTimeout = DefaultShutdownSnapshot
	}
	return c
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// Validate checks c after defaults; errors name the full key and wrap
// ErrInvalidConfig (the one configuration error: exit code 2).
func (c Config) Validate() error {
	c = c.WithDefaults()
	if err := c.Consumer.Validate(); err != nil {
		return invalid("consumer", "%v", err)
	}
	s := c.Snapshot
	switch {
	case !nameRE.MatchString(c.Instance):
		return invalid("instance", "%q must be 1 to 64 letters, digits, _ or -", c.Instance)
	case c.MaxSeries < 1 || c.MaxSeries > MaxSeriesLimit:
		return invalid("max_series", "%d is not in [1,%d]", c.MaxSeries, MaxSeriesLimit)
	case c.MaxAssets < 1 || c.MaxAssets > MaxAssetsLimit:
		return invalid("max_assets", "%d is not in [1,%d]", c.MaxAssets, MaxAssetsLimit)
	case c.MaxEventFuture < 0 || c.MaxEventFuture > MaxEventFutureLimit:
		// beyond a day a sample ahead blinds its series for longer than any
		// clock mistake explains
		return invalid("max_event_future", "%v is not in [0,%v] (0: the default %v)", c.MaxEventFuture, MaxEventFutureLimit, DefaultMaxEventFuture)
	case !nameRE.MatchString(s.Bucket):
		return invalid("snapshot.bucket", "%q must be 1 to 64 letters, digits, _ or -", s.Bucket)
	case s.Interval < time.Second:
		return invalid("snapshot.interval", "%v is shorter than 1s", s.Interval)
	case s.MaxAge < s.Interval:
		return invalid("snapshot.max_age", "%v is shorter than snapshot.interval %v", s.MaxAge, s.Interval)
	case s.Replicas < 1 || s.Replicas > 5:
		return invalid("snapshot.replicas", "%d is not in [1,5]", s.Replicas)
	case s.Chunk < 1 || s.Chunk > 65536:
		return invalid("snapshot.chunk", "%d is not in [1,65536]", s.Chunk)
	case s.ShutdownTimeout <= 0:
		return invalid("snapshot.shutdown_timeout", "%v is not positive", s.ShutdownTimeout)
	case s.ShutdownTimeout >= stage.CheckpointBudget():
		return invalid("snapshot.shutdown_timeout", "%v is not under %v, what the service's stop leaves after the drain", s.ShutdownTimeout, stage.CheckpointBudget())
	}
	// The pipeline is read here, with the rest of the configuration: a
	// file missing or wrong is a usage error before anything connects.
	if c.Pipeline != "" {
		if _, err := pipeline.Load(c.Pipeline); err != nil {
			return fmt.Errorf("%w: detector.pipeline: %w", ErrInvalidConfig, err)
		}
	}
	return nil
}

func invalid(field, format string, args ...any) error {
	return fmt.Errorf("%w: detector.%s: %s", ErrInvalidConfig, field, fmt.Sprintf(format, args...))
}
