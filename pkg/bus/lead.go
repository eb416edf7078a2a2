package bus

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/event"
)

// LeaseConfig is a stage's leadership lease: one instance active per
// durable, the others standing by.
type LeaseConfig struct {
	// Disabled runs without a lease (tests; one instance guaranteed).
	Disabled bool `yaml:"disabled"`
	// Bucket is the key-value bucket of leases (default "leases").
	Bucket string `yaml:"bucket"`
	// TTL is how long a silent holder keeps the lease (default 15s, at
	// least 3s): the longest a standby waits after a crash. The bucket
	// keeps every key for the longest TTL a stage opened on it (a shorter
	// one would expire a longer-lived holder's key), so a stage given a
	// shorter TTL than another sharing its bucket fails over as slowly as
	// that one: give it a bucket of its own.
	TTL time.Duration `yaml:"ttl"`
	// Replicas of the bucket on a NATS cluster (default 1).
	Replicas int `yaml:"replicas"`
}

// WithDefaults fills what is unset.
func (c LeaseConfig) WithDefaults() LeaseConfig {
	if c.Bucket == "" {
		c.Bucket = "leases"
	}
	if c.TTL == 0 {
		c.TTL = 15 * time.Second
	}
	return c
}

// Validate names the key that is wrong (relative: "ttl: ...").
func (c LeaseConfig) Validate() error {
	if c = c.WithDefaults(); c.TTL < 3*time.Second {
		return fmt.Errorf("ttl: %s, want at least 3s", c.TTL)
	}
	if c.Replicas < 0 || c.Replicas > 5 {
		return fmt.Errorf("replicas: %d, want 1 to 5", c.Replicas)
	}
	return nil
}

// Open binds the lease key for this process (a holder name of host, pid
// and a fresh id); nil when the lease is disabled.
func (c LeaseConfig) Open(ctx context.Context, js jetstream.JetStream, key string) (*Lease, error) {
	if c.Disabled {
		return nil, nil
	}
	c = c.WithDefaults()
	host, _ := os.Hostname()
	holder := fmt.Sprintf("%s/%d/%s", host, os.Getpid(), event.NewID(time.Now()))
	return newLease(ctx, js, c.Bucket, key, holder, c.TTL, c.Replicas)
}

// Lead runs term in turns while this holder has the lease, until ctx ends:
// it waits for the lease, runs term with a context that ends when the
// lease is lost (lost is called first, so the term can stop saving state
// another holder now owns), releases the lease when term returns so a
// standby takes over at once, and waits for it again. A term that fails
// is not retried in a tight loop. With a nil lease, term runs once. A
// connection closed for good (nats.ErrConnectionClosed, from term or from
// acquiring) ends it with that error, so that the service is restarted.
func (l *Lease) Lead(ctx context.Context, log zerolog.Logger, term func(context.Context) error, lost func()) error {
	if l == nil {
		return term(ctx)
	}
	said := false
	for ctx.Err() == nil {
		// Said once per wait: Acquire blocks while another holds it, and
		// a standby's log otherwise ended at "service started".
		if !said && l.HeldByAnother(ctx) {
			log.Info().Str("lease", l.key).Msg("lease held by another instance: standing by")
			said = true
		}
		if err := l.Acquire(ctx); err != nil {
			if ctx.Err() != nil {
				break
			}
			if errors.Is(err, nats.ErrConnectionClosed) {
				// Closed for good: no lease can be had again, and the
				// service must end to be restarted.
				return err
			}
			// A warning: a standby sees this at every failover of the
			// NATS node leading the leases bucket, while the next leader
			// is elected; tried again as soon as a lease held by another
			// is, so the takeover does not wait for the retry.
			log.Warn().Err(err).Str("lease", l.key).Msg("acquiring the lease failed; retrying")
			sleep(ctx, min(5*time.Second, l.ttl/6))
			continue
		}
		log.Info().Str("lease", l.key).Msg("lease held: active")
		said = false
		err := l.runTerm(ctx, log, term, lost)
		if errors.Is(err, nats.ErrConnectionClosed) {
			return err
		}
		if err != nil && ctx.Err() == nil {
			log.Error().Err(err).Str("lease", l.key).Msg("term ended with an error; standing by")
			sleep(ctx, 5*time.Second)
		}
	}
	return nil
}

// HeldByAnother reports whether another instance holds the lease now
// (false for a nil lease, or when that cannot be read).
func (l *Lease) HeldByAnother(ctx context.Context) bool {
	if l == nil {
		return false
	}
	holder, err := l.Holder(ctx)
	return err == nil && holder != "" && holder != l.holder
}

func (l *Lease) runTerm(ctx context.Context, log zerolog.Logger, term func(context.Context) error, lost func()) error {
	tctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The lease is renewed until the term has returned: a stop's drain and
	// last save come after ctx ended, and they check Valid. Only a lost
	// lease ends the term early.
	hctx, stopHolding := context.WithCancel(context.WithoutCancel(ctx))
	defer stopHolding()
	held := make(chan struct{})
	go func() {
		defer close(held)
		if err := l.Hold(hctx); err != nil && !errors.Is(err, context.Canceled) {
			if lost != nil {
				lost()
			}
			log.Error().Err(err).Str("lease", l.key).Msg("lease lost: standing by")
			cancel()
		}
	}()
	err := term(tctx)
	cancel()
	stopHolding()
	<-held
	rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), LeaseReleaseTimeout)
	defer rcancel()
	if rerr := l.Release(rctx); rerr != nil {
		log.Warn().Err(rerr).Str("lease", l.key).Msg("releasing the lease failed; a standby takes over after its TTL")
	}
	return err
}

// LeaseReleaseTimeout bounds the release of a lease at the end of a term:
// a stop's budgets leave it this much of the service's shutdown timeout
// (stage.StopLimit). Past it the standby takes over after the lease's TTL.
const LeaseReleaseTimeout = 2 * time.Second

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
