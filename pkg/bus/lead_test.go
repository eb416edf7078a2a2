package bus

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/testenv"
)

// Two instances lead in turns, never both at once; the one that stops
// hands over at once (it releases the lease); one whose key someone else
// took is told (lost) and its term ends.
func TestLeaseLead(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: needs JetStream")
	}
	js := newEnv(t, testenv.NATS(t)).js
	ctx := context.Background()
	// A long TTL: a takeover well within it shows the lease was released,
	// not left to expire, even on a loaded machine.
	cfg := LeaseConfig{Bucket: fmt.Sprintf("leases_%d", uniq.Add(1)), TTL: 12 * time.Second}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := (LeaseConfig{TTL: time.Second}).Validate(); err == nil {
		t.Fatal("a 1s TTL passed validation")
	}
	var active atomic.Int32
	var overlap atomic.Bool
	started := make(chan string, 4)
	term := func(name string) func(context.Context) error {
		return func(ctx context.Context) error {
			if active.Add(1) > 1 {
				overlap.Store(true)
			}
			started <- name
			<-ctx.Done()
			active.Add(-1)
			return nil
		}
	}
	run := func(name string) (stop func(), lost *atomic.Bool, l *Lease) {
		l, err := cfg.Open(ctx, js, "stage.durable")
		if err != nil {
			t.Fatal(err)
		}
		lost = new(atomic.Bool)
		cctx, cancel := context.WithCancel(ctx)
		var wg sync.WaitGroup
		wg.Go(func() { l.Lead(cctx, zerolog.Nop(), term(name), func() { lost.Store(true) }) })
		return func() { cancel(); wg.Wait() }, lost, l
	}
	stopA, _, _ := run("a")
	if got := <-started; got != "a" {
		t.Fatalf("%s started first", got)
	}
	stopB, lostB, b := run("b")
	select {
	case got := <-started:
		t.Fatalf("%s started while a leads", got)
	case <-time.After(time.Second):
	}
	t0 := time.Now()
	stopA()
	select {
	case got := <-started:
		if got != "b" || time.Since(t0) > 6*time.Second {
			t.Fatalf("%s took over after %s, want b at once (well within the %s TTL)", got, time.Since(t0), cfg.TTL)
		}
	case <-time.After(8 * time.Second):
		t.Fatal("b did not take over after a stopped")
	}
	// Someone else takes b's key: b hears of it at its next renewal.
	if err := b.kv.Delete(ctx, b.key); err != nil {
		t.Fatal(err)
	}
	if _, err := b.kv.Create(ctx, b.key, []byte("intruder")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second) // the next renewal, TTL/3
	for !lostB.Load() || active.Load() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("b was not told it lost the lease within 10s (lost %v, active %d)", lostB.Load(), active.Load())
		}
		time.Sleep(20 * time.Millisecond)
	}
	stopB()
	if overlap.Load() {
		t.Fatal("two instances led at once")
	}
	// Without a lease the term runs once.
	var nilLease *Lease
	ran := false
	nilLease.Lead(ctx, zerolog.Nop(), func(context.Context) error { ran = true; return nil }, nil)
	if !ran {
		t.Fatal("a nil lease did not run the term")
	}
}

// A term that is stopping (the service's drain and last save, after its
// context ended) still holds the lease, by the holder's clock too: its
// renewals go on until it returns, and nobody else can have the key before
// Release.
func TestLeaseHeldWhileTheTermStops(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: needs JetStream")
	}
	js := newEnv(t, testenv.NATS(t)).js
	ctx := context.Background()
	cfg := LeaseConfig{Bucket: fmt.Sprintf("leases_%d", uniq.Add(1)), TTL: 3 * time.Second}
	l, err := cfg.Open(ctx, js, "stage.durable")
	if err != nil {
		t.Fatal(err)
	}
	valid := make(chan bool, 1)
	term := func(ctx context.Context) error {
		<-ctx.Done()
		time.Sleep(2700 * time.Millisecond) // a drain longer than the holder's deadline (2.5 s)
		valid <- l.Valid()
		return nil
	}
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { l.Lead(cctx, zerolog.Nop(), term, nil); close(done) }()
	time.Sleep(1500 * time.Millisecond)
	cancel()
	<-done
	if !<-valid {
		t.Error("the lease ran out by the holder's clock while its term was stopping: its last save would be skipped")
	}
}

// An instance that starts while another holds the lease says that it
// stands by: an operator reading its log otherwise saw only "service
// started", and could not tell a standby from an instance that hangs.
func TestLeaseLeadSaysItStandsBy(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: needs JetStream")
	}
	js := newEnv(t, testenv.NATS(t)).js
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg := LeaseConfig{Bucket: fmt.Sprintf("leases_%d", uniq.Add(1)), TTL: 12 * time.Second}
	lead := func(log zerolog.Logger, term func(context.Context) error) *sync.WaitGroup {
		l, err := cfg.Open(ctx, js, "stage.durable")
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		wg.Go(func() { l.Lead(ctx, log, term, nil) })
		return &wg
	}
	holding := make(chan struct{})
	a := lead(zerolog.Nop(), func(ctx context.Context) error { close(holding); <-ctx.Done(); return nil })
	defer func() { cancel(); a.Wait() }()
	<-holding
	var mu sync.Mutex
	var buf []byte
	log := zerolog.New(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		buf = append(buf, p...)
		return len(p), nil
	}))
	b := lead(log, func(ctx context.Context) error {
		t.Error("the second instance led while the first held the lease")
		return nil
	})
	defer func() { cancel(); b.Wait() }()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		mu.Lock()
		said := strings.Contains(string(buf), "standing by")
		mu.Unlock()
		if said {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("a standby's log says nothing of standing by: %q", buf)
		}
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
