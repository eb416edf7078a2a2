package bus

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// ErrLeaseLost is why a held lease ended: another holder wrote the key (the
// renewal's revision check failed) or the key expired before a renewal.
var ErrLeaseLost = errors.New("bus: lease lost")

// Lease is a leadership lease in a JetStream key-value bucket: one holder at
// a time per key. Acquire creates the key (it fails while another holder's
// value is there); the holder renews it every TTL/3 with the revision it
// last wrote, so a renewal after someone else took the key fails instead of
// overwriting it; a holder that stops renewing (crashed, cut off) loses the
// key when the bucket's TTL removes it. A stateful stage runs only while it
// holds its lease, so two instances on one durable never both process.
//
// The server may hand the key to another holder once the TTL passed since
// the last write it took, while a holder that was paused (GC, SIGSTOP, a
// throttled CPU) or whose renewal hangs would only learn of it at its
// next renewal. So the holder also keeps a deadline of its own: a TTL
// less a margin after it sent the last write that succeeded (the server
// counts from when it took it, later). Hold ends with ErrLeaseLost at the
// deadline, and Valid tells work about to make a change that outlives the
// term (saving state, applying a command) whether it is still inside it.
type Lease struct {
	kv     jetstream.KeyValue
	key    string
	holder string
	ttl    time.Duration
	rev    uint64
	// js and cfg raise the bucket's TTL back to ttl should another opener
	// have lowered it (atLeast, at each renewal).
	js  jetstream.JetStream
	cfg jetstream.KeyValueConfig

	mu       sync.Mutex
	deadline time.Time // zero: not held
}

// leaseMargin is how long before the server's expiry the holder stops
// taking itself for the holder: clocks that run at slightly different
// rates, and the time between Valid and the change it allows.
func (l *Lease) leaseMargin() time.Duration { return l.ttl / 6 }

// held records a write the server took, sent at sent.
func (l *Lease) held(sent time.Time) {
	l.mu.Lock()
	l.deadline = sent.Add(l.ttl - l.leaseMargin())
	l.mu.Unlock()
}

// Valid tells whether this holder has the lease by its own clock: it wrote
// the key last less than a TTL (less a margin) ago. A nil lease (disabled)
// is always valid.
func (l *Lease) Valid() bool {
	if l == nil {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return time.Now().Before(l.deadline)
}

// Bound is ctx ending at the holder's deadline too (see Lease), for a
// change that must not land after the next holder may have begun (a state
// saved late would undo what that one did since); a nil lease (disabled)
// leaves ctx as it is.
func (l *Lease) Bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if l == nil {
		return context.WithCancel(ctx)
	}
	return context.WithDeadline(ctx, l.until())
}

func (l *Lease) until() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.deadline
}

// NewLease binds (creating it if needed) the bucket of leases with the
// given TTL, for key, held as holder.
func NewLease(ctx context.Context, js jetstream.JetStream, bucket, key, holder string, ttl time.Duration) (*Lease, error) {
	return newLease(ctx, js, bucket, key, holder, ttl, 1)
}

func newLease(ctx context.Context, js jetstream.JetStream, bucket, key, holder string, ttl time.Duration, replicas int) (*Lease, error) {
	if ttl < 3*time.Second {
		return nil, invalid("lease ttl", "%s, want at least 3s", ttl)
	}
	if key == "" || holder == "" {
		return nil, invalid("lease", "key and holder are required")
	}
	cfg := jetstream.KeyValueConfig{
		Bucket:      bucket,
		Description: "aiops leadership leases: the key of a stage, its holder as value",
		TTL:         ttl,
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    max(replicas, 1),
	}
	kv, err := AskAgain(ctx, func() (jetstream.KeyValue, error) {
		kv, err := js.CreateKeyValue(ctx, cfg)
		if errors.Is(err, jetstream.ErrBucketExists) {
			return atLeast(ctx, js, cfg)
		}
		return kv, err
	})
	if err != nil {
		return nil, fmt.Errorf("bus: lease bucket %s: %w", bucket, err)
	}
	return &Lease{kv: kv, key: key, holder: holder, ttl: ttl, js: js, cfg: cfg}, nil
}

// atLeast returns the existing bucket of cfg, its TTL raised to cfg's when
// shorter, never lowered. Stages with different lease TTLs share the
// bucket, and a holder's deadline comes from its own TTL: were the bucket's
// lowered below it, the server would expire the key, and hand it to a
// standby, while the holder still took itself for the holder.
func atLeast(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	kv, err := js.KeyValue(ctx, cfg.Bucket)
	if err != nil {
		return nil, err
	}
	st, err := kv.Status(ctx)
	if err != nil {
		return nil, err
	}
	if st.TTL() >= cfg.TTL {
		return kv, nil
	}
	return js.UpdateKeyValue(ctx, cfg)
}

// Acquire waits until the lease is this holder's, or ctx ends.
func (l *Lease) Acquire(ctx context.Context) error {
	for {
		if got, err := l.TryAcquire(ctx); got || err != nil {
			return err
		}
		// Held by someone else: try again well within the TTL.
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(l.ttl / 6):
		}
	}
}

// TryAcquire takes the lease if nobody holds it, and reports whether it
// did.
func (l *Lease) TryAcquire(ctx context.Context) (bool, error) {
	sent := time.Now()
	rev, err := l.kv.Create(ctx, l.key, []byte(l.holder))
	switch {
	case errors.Is(err, jetstream.ErrKeyExists):
		return l.takeOwnKey(ctx), nil
	case err != nil:
		return false, fmt.Errorf("bus: acquiring lease %s: %w", l.key, err)
	}
	l.rev = rev
	l.held(sent)
	return true, nil
}

// takeOwnKey takes the key when it holds this holder's own name, which
// no one else writes: an acquisition applied whose answer was lost (the
// bucket's stream leader gone between the two), or a key an earlier term
// of this holder left. Nobody else holds the lease then, and waited for,
// the key would keep everyone out until its TTL: it is renewed from its
// revision instead, the deadline counted from that renewal.
func (l *Lease) takeOwnKey(ctx context.Context) bool {
	e, err := l.kv.Get(ctx, l.key)
	if err != nil || string(e.Value()) != l.holder {
		return false
	}
	sent := time.Now()
	rev, err := l.kv.Update(ctx, l.key, []byte(l.holder), e.Revision())
	if err != nil {
		return false
	}
	l.rev = rev
	l.held(sent)
	return true
}

// Hold renews the lease until ctx ends (it then returns nil) or the lease
// is lost (ErrLeaseLost): another holder's write is on the key (the
// renewal's revision check failed), or no renewal succeeded by the
// holder's own deadline (see Lease). A renewal that failed otherwise (no
// answer: the bucket's stream leader was on a NATS node that just went
// away, and the next one is being elected) leaves the key this holder's
// until that deadline, and is tried again every renewRetry: ended at the
// first such failure, the lease went for a whole TTL, its release failing
// too, while the bucket answered again after a few seconds. A renewal
// whose answer was lost though it was applied is taken as made
// (takeOwnKeyBy): the next one's revision check would fail on it.
func (l *Lease) Hold(ctx context.Context) error {
	t := time.NewTimer(l.ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		deadline := l.until()
		renew, cancel := context.WithDeadline(ctx, deadline)
		sent := time.Now()
		rev, err := l.kv.Update(renew, l.key, []byte(l.holder), l.rev)
		cancel()
		if err == nil {
			// Two stages opening at once may race to set the bucket's
			// TTL, the lower last: raise it back well before it could
			// expire the key. After the renewal, on its own time, so a
			// slow JetStream API does not cost the renewal.
			raise, cancel := context.WithTimeout(ctx, l.ttl/6)
			_, _ = atLeast(raise, l.js, l.cfg)
			cancel()
		}
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil && !time.Now().Before(deadline):
			return fmt.Errorf("%w: %s: not renewed within its TTL (%s) by this holder's clock: %w", ErrLeaseLost, l.key, l.ttl, err)
		case errors.Is(err, jetstream.ErrKeyExists) && l.takeOwnKeyBy(ctx, deadline):
			t.Reset(l.ttl / 3) // renewed from the revision it wrote
			continue
		case errors.Is(err, jetstream.ErrKeyExists):
			return fmt.Errorf("%w: %s: %w", ErrLeaseLost, l.key, err)
		case err != nil:
			t.Reset(l.renewRetry())
			continue
		}
		l.rev = rev
		l.held(sent)
		t.Reset(l.ttl / 3)
	}
}

// takeOwnKeyBy is takeOwnKey within the holder's deadline, for Hold: a
// renewal applied whose answer was lost (the bucket's stream leader gone
// between the two) left this holder's name at a revision it does not
// know, on which the next renewal's revision check fails.
func (l *Lease) takeOwnKeyBy(ctx context.Context, deadline time.Time) bool {
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	return l.takeOwnKey(ctx)
}

// renewRetry is how soon a renewal that got no answer is tried again: a
// few times before the holder's deadline.
func (l *Lease) renewRetry() time.Duration { return l.ttl / 15 }

// Release gives the lease up at once (if this holder still has it), so the
// next holder need not wait for the TTL. A key written since this
// holder's last write (another holder's, or gone at its TTL) is not this
// holder's to give up: nothing to do.
func (l *Lease) Release(ctx context.Context) error {
	if l.rev == 0 {
		return nil
	}
	l.mu.Lock()
	l.deadline = time.Time{}
	l.mu.Unlock()
	err := l.kv.Delete(ctx, l.key, jetstream.LastRevision(l.rev))
	l.rev = 0
	if errors.Is(err, jetstream.ErrKeyExists) {
		return nil
	}
	return err
}

// Name is this holder's name, what Holder returns while it holds the lease.
func (l *Lease) Name() string { return l.holder }

// Holder is the current holder of the lease ("" when nobody holds it).
func (l *Lease) Holder(ctx context.Context) (string, error) {
	e, err := l.kv.Get(ctx, l.key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return string(e.Value()), nil
}
