package stage

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/aiops-dev/aiops/pkg/bus"
)

// StateConfig says where a stage keeps its state between runs: one object
// in a JetStream object store (an object store, not a key-value bucket,
// because a snapshot can exceed a KV value's 1 MB), saved every SaveEvery
// and after the drain, restored before the first delivery.
type StateConfig struct {
	// Disabled keeps the state in memory only (tests, benchmarks).
	Disabled bool `yaml:"disabled"`
	// Bucket is the object store (default: the stage's name).
	Bucket string `yaml:"bucket"`
	// Key names the object (default: the consumer's durable name), so
	// instances that own different partitions keep separate states.
	Key string `yaml:"key"`
	// SaveEvery is the period of saves while running; the state is also
	// saved on shutdown.
	SaveEvery time.Duration `yaml:"save_every"`
	// Replicas of the object store on a NATS cluster (default 1; 3 keeps
	// the state through the loss of a node).
	Replicas int `yaml:"replicas"`
}

// WithDefaults fills what is unset.
func (c StateConfig) WithDefaults(bucket, key string, every time.Duration) StateConfig {
	if c.Bucket == "" {
		c.Bucket = bucket
	}
	if c.Key == "" {
		c.Key = key
	}
	if c.SaveEvery == 0 {
		c.SaveEvery = every
	}
	return c
}

// Validate names the key that is wrong, relative to the section
// ("state.bucket: ..."); call it on the config WithDefaults filled.
func (c StateConfig) Validate() error {
	if c.Disabled {
		return nil
	}
	switch {
	case !validBucket(c.Bucket):
		return fmt.Errorf("state.bucket: %q is not a valid bucket name (letters, digits, - and _)", c.Bucket)
	case c.Key == "":
		return fmt.Errorf("state.key: empty")
	case c.SaveEvery <= 0:
		return fmt.Errorf("state.save_every: must be positive, got %s", c.SaveEvery)
	case c.Replicas < 0 || c.Replicas > 5:
		return fmt.Errorf("state.replicas: %d, want 1 to 5", c.Replicas)
	}
	return nil
}

func validBucket(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

// OpenStateStore creates (or binds) the object store c names.
func OpenStateStore(ctx context.Context, js jetstream.JetStream, c StateConfig, description string) (jetstream.ObjectStore, error) {
	osc := jetstream.ObjectStoreConfig{
		Bucket:      c.Bucket,
		Description: description,
		Storage:     jetstream.FileStorage,
		Replicas:    max(c.Replicas, 1),
	}
	store, err := bus.AskAgain(ctx, func() (jetstream.ObjectStore, error) { return js.CreateOrUpdateObjectStore(ctx, osc) })
	if err != nil {
		return nil, fmt.Errorf("state bucket %s: %w", c.Bucket, err)
	}
	return store, nil
}
