package bus

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/aiops-dev/aiops/pkg/testenv"
)

// One holder at a time; a second waits; release hands over at once; a
// holder that stops renewing loses the key at the TTL; a holder whose key
// someone else took notices at its next renewal.
func TestLease(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: needs JetStream")
	}
	js := newEnv(t, testenv.NATS(t)).js
	ctx := context.Background()
	bucket := fmt.Sprintf("leases_%d", uniq.Add(1)) // a shared server may hold other tests' buckets
	a, err := NewLease(ctx, js, bucket, "correlator", "a", 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewLease(ctx, js, bucket, "correlator", "b", 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Acquire(ctx); err != nil {
		t.Fatal(err)
	}
	if h, _ := b.Holder(ctx); h != "a" {
		t.Fatalf("holder %q, want a", h)
	}
	short, cancel := context.WithTimeout(ctx, 1500*time.Millisecond)
	if err := b.Acquire(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second holder acquired a held lease: %v", err)
	}
	cancel()
	if err := a.Release(ctx); err != nil {
		t.Fatal(err)
	}
	quick, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := b.Acquire(quick); err != nil {
		t.Fatalf("after a release the next holder waited: %v", err)
	}
	// b stops renewing: after the TTL, a gets it.
	start := time.Now()
	if err := a.Acquire(ctx); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 2*time.Second {
		t.Fatalf("acquired after %s, before the TTL removed b's key", d)
	}
	// b believes it holds the lease: its next renewal fails.
	hold, stop := context.WithTimeout(ctx, 5*time.Second)
	defer stop()
	if err := b.Hold(hold); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("a renewal after losing the key: %v, want ErrLeaseLost", err)
	}
	// Its release at the end of the term has nothing to give up: no
	// error (it used to warn that the release failed), and a keeps it.
	if err := b.Release(ctx); err != nil {
		t.Fatalf("release of a lease another holder took: %v", err)
	}
	if h, _ := b.Holder(ctx); h != "a" {
		t.Fatalf("holder %q after the lost holder's release, want a", h)
	}
	if _, err := NewLease(ctx, js, bucket, "x", "a", time.Second); err == nil {
		t.Fatal("a TTL of 1s was taken")
	}
}

// stalledKV is a bucket whose updates hang until their context ends (a
// renewal stuck behind a slow cluster, or a paused process).
type stalledKV struct{ jetstream.KeyValue }

func (stalledKV) Update(ctx context.Context, _ string, _ []byte, _ uint64) (uint64, error) {
	<-ctx.Done()
	return 0, ctx.Err()
}

// A holder whose renewals do not get through stops taking itself for the
// holder by its own clock, before the server may hand the key to another:
// Valid turns false and Hold ends with ErrLeaseLost, without waiting for a
// renewal's answer.
func TestLeaseExpiresByTheHoldersClock(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: needs JetStream")
	}
	js := newEnv(t, testenv.NATS(t)).js
	ctx := context.Background()
	l, err := NewLease(ctx, js, fmt.Sprintf("leases_%d", uniq.Add(1)), "correlator", "a", 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if l.Valid() {
		t.Fatal("valid before it was acquired")
	}
	acquired := time.Now()
	if err := l.Acquire(ctx); err != nil {
		t.Fatal(err)
	}
	if !l.Valid() {
		t.Fatal("not valid right after it was acquired")
	}
	l.kv = stalledKV{l.kv}
	hold, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	err = l.Hold(hold)
	if !errors.Is(err, ErrLeaseLost) || !strings.Contains(err.Error(), "not renewed within its TTL") {
		t.Fatalf("Hold with renewals hanging: %v, want ErrLeaseLost at the holder's deadline", err)
	}
	if l.Valid() {
		t.Fatal("still valid after Hold gave it up")
	}
	if d := l.until().Sub(acquired); d >= 3*time.Second {
		t.Errorf("the holder's deadline %s after acquiring, at or past the server's TTL (3s)", d)
	}
}

// flakyKV is a bucket whose first update fails as a bucket without a
// stream leader answers (its node was killed, the election under way),
// and whose later ones go through, counted.
type flakyKV struct {
	jetstream.KeyValue
	// applied: the failed update is applied, only its answer lost.
	applied  bool
	mu       sync.Mutex
	failed   bool
	renewals int // updates that went through after the failure
}

func (f *flakyKV) Update(ctx context.Context, key string, value []byte, rev uint64) (uint64, error) {
	f.mu.Lock()
	if !f.failed {
		f.failed = true
		f.mu.Unlock()
		if f.applied {
			if _, err := f.KeyValue.Update(ctx, key, value, rev); err != nil {
				return 0, err
			}
		}
		return 0, jetstream.ErrNoStreamResponse
	}
	f.mu.Unlock()
	n, err := f.KeyValue.Update(ctx, key, value, rev)
	if err == nil {
		f.mu.Lock()
		f.renewals++
		f.mu.Unlock()
	}
	return n, err
}

func (f *flakyKV) renewed() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.renewals
}

// A renewal that fails without an answer on the key (the bucket's stream
// leader was on the NATS node just killed) leaves the key this holder's
// until its deadline: it is tried again, and the lease kept. A cluster
// trial lost the correlator's and the notifier's leases at the first such
// renewal, and with their releases failing too, nobody held either for a
// whole TTL (13 and 16 s) while the bucket had a leader again after 6.
// Another holder's key (TestLease) still ends the lease at once.
func TestLeaseOutlivesARenewalWithoutAnswer(t *testing.T) {
	for _, applied := range []bool{false, true} {
		t.Run(fmt.Sprintf("applied %v", applied), func(t *testing.T) { leaseOutlivesARenewalWithoutAnswer(t, applied) })
	}
}

// With applied, the renewal reached the key and only its answer was lost:
// the next renewal's revision check fails on this holder's own write,
// which is not another holder's.
func leaseOutlivesARenewalWithoutAnswer(t *testing.T, applied bool) {
	if testing.Short() {
		t.Skip("integration test: needs JetStream")
	}
	js := newEnv(t, testenv.NATS(t)).js
	ctx := context.Background()
	l, err := NewLease(ctx, js, fmt.Sprintf("leases_%d", uniq.Add(1)), "correlator", "a", 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Acquire(ctx); err != nil {
		t.Fatal(err)
	}
	kv := &flakyKV{KeyValue: l.kv, applied: applied}
	l.kv = kv
	hold, cancel := context.WithCancel(ctx)
	defer cancel()
	held := make(chan error, 1)
	go func() { held <- l.Hold(hold) }()
	for kv.renewed() < 2 {
		select {
		case err := <-held:
			t.Fatalf("Hold ended after a renewal without answer: %v, want the lease kept", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	if !l.Valid() {
		t.Fatal("not valid after two renewals")
	}
	cancel()
	if err := <-held; err != nil {
		t.Fatalf("Hold ended with %v, want nil when its context ended", err)
	}
}

// Stages with different lease TTLs share one bucket: opening one with a
// shorter TTL never shortens the bucket's (the server would expire a
// longer-lived holder's key, and hand it to a standby, while the holder
// still took itself for the holder); a longer one raises it; and a holder
// raises it back at its next renewal should two openers have raced it
// down.
func TestLeaseBucketTTLOnlyRises(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: needs JetStream")
	}
	js := newEnv(t, testenv.NATS(t)).js
	ctx := context.Background()
	bucket := fmt.Sprintf("leases_%d", uniq.Add(1))
	ttl := func() time.Duration {
		t.Helper()
		kv, err := js.KeyValue(ctx, bucket)
		if err != nil {
			t.Fatal(err)
		}
		st, err := kv.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return st.TTL()
	}
	a, err := NewLease(ctx, js, bucket, "correlator", "a", 6*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Acquire(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := NewLease(ctx, js, bucket, "notifier", "n", 3*time.Second); err != nil {
		t.Fatal(err)
	}
	if got := ttl(); got != 6*time.Second {
		t.Fatalf("bucket TTL %s after a 3s lease opened, want 6s kept", got)
	}
	if _, err := NewLease(ctx, js, bucket, "detector", "d", 9*time.Second); err != nil {
		t.Fatal(err)
	}
	if got := ttl(); got != 9*time.Second {
		t.Fatalf("bucket TTL %s after a 9s lease opened, want 9s", got)
	}
	// Lowered behind the holders' backs, as by a racing opener.
	if _, err := js.UpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: bucket, TTL: 3 * time.Second, History: 1, Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	hold, cancel := context.WithTimeout(ctx, 2500*time.Millisecond) // one renewal (every 2s)
	defer cancel()
	if err := a.Hold(hold); err != nil {
		t.Fatal(err)
	}
	if got := ttl(); got != 6*time.Second {
		t.Errorf("bucket TTL %s after the 6s holder renewed, want it raised back to 6s", got)
	}
}

// lostCreateKV is a bucket whose first create is applied while its
// answer is lost (the bucket's stream leader gone between the two).
type lostCreateKV struct {
	jetstream.KeyValue
	lost bool
}

func (k *lostCreateKV) Create(ctx context.Context, key string, value []byte, opts ...jetstream.KVCreateOpt) (uint64, error) {
	if k.lost {
		return k.KeyValue.Create(ctx, key, value, opts...)
	}
	k.lost = true
	if _, err := k.KeyValue.Create(ctx, key, value, opts...); err != nil {
		return 0, err
	}
	return 0, jetstream.ErrNoStreamResponse
}

// An acquisition applied whose answer was lost leaves the key holding
// this holder's own name, which no one else writes: the next try takes
// it, instead of waiting for the TTL, during which nobody held the lease
// (a standby's create at a failover of the leases bucket's leader).
func TestLeaseAcquiredWhoseAnswerWasLostIsTaken(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: needs JetStream")
	}
	js := newEnv(t, testenv.NATS(t)).js
	ctx := context.Background()
	l, err := NewLease(ctx, js, fmt.Sprintf("leases_%d", uniq.Add(1)), "correlator", "a", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	l.kv = &lostCreateKV{KeyValue: l.kv}
	if got, err := l.TryAcquire(ctx); got || err == nil {
		t.Fatalf("acquisition without answer: %v, %v; want an error", got, err)
	}
	if got, err := l.TryAcquire(ctx); !got || err != nil {
		t.Fatalf("acquisition once the key holds this holder's name: %v, %v; want it taken", got, err)
	}
	if !l.Valid() {
		t.Fatal("not valid once taken")
	}
	other, err := NewLease(ctx, js, l.cfg.Bucket, "correlator", "b", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := other.TryAcquire(ctx); got || err != nil {
		t.Fatalf("another holder's acquisition: %v, %v; want it refused", got, err)
	}
	// Its revision is the key's: its release frees it at once.
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if got, err := other.TryAcquire(ctx); !got || err != nil {
		t.Fatalf("another holder's acquisition after the release: %v, %v; want it taken", got, err)
	}
}
