package bus

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aiops-dev/aiops/pkg/errs"
	"github.com/aiops-dev/aiops/pkg/testenv"
	"github.com/nats-io/nats.go/jetstream"
)

func newConsumer(t *testing.T, e *env, cfg ConsumerConfig, opts ...ConsumerOption) *Consumer {
	t.Helper()
	c, err := NewConsumer(testCtx(t), e.js, cfg, testLog(t), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// serverState is the durable consumer's view on the server once every ack
// sent has been applied. The server applies acks asynchronously, after the
// client's flush returned, so it polls until nothing is pending any more (or
// gives up after a while and returns what it saw, for the caller to report).
func serverState(t *testing.T, e *env, durable string) *jetstream.ConsumerInfo {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := e.js.Consumer(testCtx(t), e.stream, durable)
		if err != nil {
			t.Fatal(err)
		}
		info := c.CachedInfo()
		if (info.NumAckPending == 0 && info.NumPending == 0) || time.Now().After(deadline) {
			return info
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestConsumerAcksHandledMessages(t *testing.T) {
	e := newEnv(t, newTestServerURL(t))
	e.publish("ok", 120)
	c := newConsumer(t, e, e.consumerConfig("acks"))
	var mu sync.Mutex
	seen := map[string]int{}
	stop := runConsumer(t, c, Sync(func(ctx context.Context, d *Delivery) error {
		if d.Delivered != 1 || d.StreamSeq == 0 || d.Published.IsZero() || d.Subject != e.prefix+".ok" {
			return errs.Permanentf("unexpected delivery %+v", d)
		}
		mu.Lock()
		seen[string(d.Data)]++
		mu.Unlock()
		return nil
	}))
	waitFor(t, "120 acks", func() bool { return c.Stats().Acked == 120 })
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if len(seen) != 120 {
		t.Fatalf("handler saw %d distinct messages, want 120", len(seen))
	}
	st := c.Stats()
	if st.Delivered != 120 || st.Naked != 0 || st.DeadLettered != 0 || st.Outstanding != 0 {
		t.Fatalf("stats %+v", st)
	}
	if info := serverState(t, e, "acks"); info.NumAckPending != 0 || info.NumPending != 0 || info.AckFloor.Stream != 120 {
		t.Fatalf("server: ack pending %d, pending %d, ack floor %d", info.NumAckPending, info.NumPending, info.AckFloor.Stream)
	}
}

func TestConsumerDeadLettersPermanentErrorsAndGoesOn(t *testing.T) {
	e := newEnv(t, newTestServerURL(t))
	p, _ := NewPublisher(e.js)
	ms := []Message{
		{Subject: e.prefix + ".in", ID: "a", Data: []byte("good-1")},
		{Subject: e.prefix + ".in", ID: "b", Data: []byte("bad"), Header: map[string][]string{"Trace": {"t-1"}}},
		{Subject: e.prefix + ".in", ID: "c", Data: []byte("good-2")},
		{Subject: e.prefix + ".in", ID: "d", Data: []byte("good-3")},
	}
	if _, err := p.PublishAll(testCtx(t), ms); err != nil {
		t.Fatal(err)
	}
	c := newConsumer(t, e, e.consumerConfig("perm"))
	var mu sync.Mutex
	var order []string
	stop := runConsumer(t, c, Sync(func(ctx context.Context, d *Delivery) error {
		mu.Lock()
		order = append(order, string(d.Data))
		mu.Unlock()
		if string(d.Data) == "bad" {
			return errs.Permanentf("field x: not a number")
		}
		return nil
	}))
	waitFor(t, "3 acks and 1 dead letter", func() bool { st := c.Stats(); return st.Acked == 3 && st.DeadLettered == 1 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if strings.Join(order, ",") != "good-1,bad,good-2,good-3" {
		t.Fatalf("handler order %v: the bad message must be seen once and the rest after it", order)
	}
	dl := fetchAll(t, e.js, e.dlq)
	if len(dl) != 1 {
		t.Fatalf("%d dead letters, want 1", len(dl))
	}
	m := dl[0]
	h := m.Headers()
	if m.Subject() != e.dlPref+"."+e.stream+".perm" || m.Subject() != c.DeadLetterSubject() {
		t.Fatalf("dead letter subject %q", m.Subject())
	}
	want := map[string]string{
		HeaderDeadLetterReason: "field x: not a number",
		HeaderOriginalSubject:  e.prefix + ".in",
		HeaderStreamSeq:        "2",
		HeaderDeliveries:       "1",
		HeaderOriginalMsgID:    "b",
		"Trace":                "t-1",
	}
	for k, v := range want {
		if got := h.Get(k); got != v {
			t.Errorf("header %s = %q, want %q", k, got, v)
		}
	}
	if string(m.Data()) != "bad" {
		t.Errorf("dead letter data %q, want the original", m.Data())
	}
	if info := serverState(t, e, "perm"); info.NumAckPending != 0 || info.NumPending != 0 || info.NumRedelivered != 0 {
		t.Fatalf("server: ack pending %d pending %d redelivered %d: the bad message was not terminated", info.NumAckPending, info.NumPending, info.NumRedelivered)
	}
}

func TestConsumerRedeliversTransientErrors(t *testing.T) {
	e := newEnv(t, newTestServerURL(t))
	e.publish("flaky", 3)
	c := newConsumer(t, e, e.consumerConfig("flaky"))
	var mu sync.Mutex
	deliveries := map[string][]uint64{}
	stop := runConsumer(t, c, Sync(func(ctx context.Context, d *Delivery) error {
		mu.Lock()
		defer mu.Unlock()
		k := string(d.Data)
		deliveries[k] = append(deliveries[k], d.Delivered)
		if k == "1" && d.Delivered < 3 {
			return errors.New("clickhouse: connection refused")
		}
		return nil
	}))
	waitFor(t, "3 acks", func() bool { return c.Stats().Acked == 3 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(deliveries["1"]); got != "[1 2 3]" {
		t.Fatalf("deliveries of the flaky message: %s, want [1 2 3]", got)
	}
	if got := fmt.Sprint(deliveries["0"], deliveries["2"]); got != "[1] [1]" {
		t.Fatalf("deliveries of the others: %s", got)
	}
	if st := c.Stats(); st.Naked != 2 || st.DeadLettered != 0 {
		t.Fatalf("stats %+v, want 2 naks and no dead letter", st)
	}
}

func TestConsumerDeadLettersAfterMaxDeliver(t *testing.T) {
	e := newEnv(t, newTestServerURL(t))
	e.publish("hopeless", 1)
	cfg := e.consumerConfig("maxdel")
	cfg.MaxDeliver = 3
	var backoffCalls []uint64
	var mu sync.Mutex
	c := newConsumer(t, e, cfg, WithBackoffFunc(func(n uint64) time.Duration {
		mu.Lock()
		backoffCalls = append(backoffCalls, n)
		mu.Unlock()
		return time.Duration(n) * 5 * time.Millisecond
	}))
	var seen, last []uint64
	stop := runConsumer(t, c, Sync(func(ctx context.Context, d *Delivery) error {
		mu.Lock()
		seen = append(seen, d.Delivered)
		if d.Last {
			last = append(last, d.Delivered)
		}
		mu.Unlock()
		return errors.New("downstream timeout")
	}))
	waitFor(t, "a dead letter", func() bool { return c.Stats().DeadLettered == 1 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(seen) != "[1 2 3]" || fmt.Sprint(backoffCalls) != "[1 2]" {
		t.Fatalf("deliveries %v backoff calls %v, want [1 2 3] and [1 2]", seen, backoffCalls)
	}
	if fmt.Sprint(last) != "[3]" {
		t.Fatalf("deliveries marked last %v, want [3]: the one whose failure dead-letters it", last)
	}
	dl := fetchAll(t, e.js, e.dlq)
	if len(dl) != 1 {
		t.Fatalf("%d dead letters, want 1", len(dl))
	}
	h := dl[0].Headers()
	if r := h.Get(HeaderDeadLetterReason); r != "max deliveries exceeded: downstream timeout" {
		t.Fatalf("reason %q", r)
	}
	if h.Get(HeaderDeliveries) != "3" {
		t.Fatalf("deliveries header %q, want 3", h.Get(HeaderDeliveries))
	}
}

// A delivery whose earlier attempts all expired (the handler never answered,
// e.g. the process crashed on it) is dead-lettered, not dropped by the server.
func TestConsumerDeadLettersExpiredDeliveries(t *testing.T) {
	e := newEnv(t, newTestServerURL(t))
	e.publish("crashy", 1)
	cfg := e.consumerConfig("expired")
	cfg.MaxDeliver = 2
	c := newConsumer(t, e, cfg, WithDrainTimeout(50*time.Millisecond))
	var calls atomic.Int32
	stop := runConsumer(t, c, func(ctx context.Context, d *Delivery, done func(error)) {
		calls.Add(1) // never answers
	})
	waitFor(t, "a dead letter", func() bool { return c.Stats().DeadLettered == 1 })
	if err := stop(); !errors.Is(err, ErrDrainTimeout) && err != nil {
		t.Fatal(err)
	}
	if n := calls.Load(); n != 2 {
		t.Fatalf("handler called %d times, want MaxDeliver=2", n)
	}
	dl := fetchAll(t, e.js, e.dlq)
	if len(dl) != 1 || !strings.HasPrefix(dl[0].Headers().Get(HeaderDeadLetterReason), "max deliveries exceeded: no result within ack wait") {
		t.Fatalf("dead letters %d, reason %q", len(dl), dl[0].Headers().Get(HeaderDeadLetterReason))
	}
}

func TestConsumerAsyncDoneFromAnotherGoroutine(t *testing.T) {
	e := newEnv(t, newTestServerURL(t))
	e.publish("async", 200)
	c := newConsumer(t, e, e.consumerConfig("async"))
	// A batcher: collects 25 deliveries, then "commits" them from its own
	// goroutine, like the ClickHouse writer.
	type pending struct {
		d    *Delivery
		done func(error)
	}
	in := make(chan pending, 1000)
	var committed atomic.Int64
	go func() {
		var batch []pending
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case p := <-in:
				batch = append(batch, p)
				if len(batch) < 25 {
					continue
				}
			case <-tick.C:
			}
			for _, p := range batch {
				p.done(nil)
				if p.d.StreamSeq == 7 {
					p.done(nil) // a second call must be ignored, not double-acked
				}
				committed.Add(1)
			}
			batch = batch[:0]
		}
	}()
	stop := runConsumer(t, c, func(ctx context.Context, d *Delivery, done func(error)) {
		in <- pending{d, done}
	})
	waitFor(t, "200 acks", func() bool { return c.Stats().Acked == 200 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if st := c.Stats(); st.Acked != 200 || st.AckFailed != 0 || st.Delivered != 200 {
		t.Fatalf("stats %+v", st)
	}
	if info := serverState(t, e, "async"); info.NumAckPending != 0 || info.NumRedelivered != 0 {
		t.Fatalf("server: ack pending %d redelivered %d", info.NumAckPending, info.NumRedelivered)
	}
}

func TestConsumerMaxAckPendingBoundsOutstanding(t *testing.T) {
	e := newEnv(t, newTestServerURL(t))
	const total, bound = 60, 10
	e.publish("bp", total)
	cfg := e.consumerConfig("bp")
	cfg.BatchSize = 4
	cfg.MaxAckPending = bound
	// The releaser below holds each delivery for about bound release
	// cycles (~0.5s, several seconds on a loaded or CPU-throttled machine):
	// within the 1s AckWait of consumerConfig the server redelivered some,
	// and the copies filled the bound (a drain timeout, or a loop that
	// never saw finished == total). The bound is what is tested, not the
	// redelivery: an AckWait no hold comes near.
	cfg.AckWait = 5 * time.Minute
	c := newConsumer(t, e, cfg)
	var mu sync.Mutex
	var held []func(error)
	maxHeld, finished := 0, 0
	// The handler only collects; the releaser lets one delivery go whenever
	// the runner has stopped handing out more (nothing new for 20ms), so the
	// runner is pushed against its bound over and over.
	stop := runConsumer(t, c, func(ctx context.Context, d *Delivery, done func(error)) {
		mu.Lock()
		held = append(held, done)
		maxHeld = max(maxHeld, len(held))
		mu.Unlock()
	})
	for deadline := time.Now().Add(2 * time.Minute); ; {
		mu.Lock()
		before := len(held)
		mu.Unlock()
		time.Sleep(20 * time.Millisecond)
		mu.Lock()
		if len(held) != before || len(held) == 0 {
			n := len(held)
			mu.Unlock()
			if finished == total {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d of %d deliveries settled after 2 minutes, %d held; stats %+v", finished, total, n, c.Stats())
			}
			continue
		}
		done := held[0]
		held = held[1:]
		mu.Unlock()
		done(nil)
		finished++
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if maxHeld > bound {
		t.Fatalf("%d deliveries outstanding at once, MaxAckPending is %d", maxHeld, bound)
	}
	if maxHeld != bound {
		t.Fatalf("at most %d outstanding although the handler never finished on its own: the runner stalls below its bound %d", maxHeld, bound)
	}
	if st := c.Stats(); st.Acked != total {
		t.Fatalf("stats %+v", st)
	}
}

// Cancelling mid-run returns cleanly after finishing what was handed out, and a
// new consumer on the same durable then receives every message not acked.
func TestConsumerCancelLosesNothing(t *testing.T) {
	e := newEnv(t, newTestServerURL(t))
	const total = 400
	e.publish("crash", total)
	cfg := e.consumerConfig("crash")
	cfg.BatchSize = 20
	c1 := newConsumer(t, e, cfg)

	var mu sync.Mutex
	acked := map[uint64]bool{}
	ack := func(seq uint64) {
		mu.Lock()
		acked[seq] = true
		mu.Unlock()
	}
	ctx, cancel := context.WithCancel(context.Background())
	var handed atomic.Int64
	var lateDone sync.WaitGroup
	errc := make(chan error, 1)
	go func() {
		errc <- c1.Run(ctx, func(hctx context.Context, d *Delivery, done func(error)) {
			n := handed.Add(1)
			seq := d.StreamSeq
			switch {
			case n%3 == 0:
				// Finishes only during the drain, from another goroutine.
				lateDone.Add(1)
				go func() {
					defer lateDone.Done()
					time.Sleep(50 * time.Millisecond)
					if hctx.Err() != nil {
						done(hctx.Err())
						return
					}
					ack(seq)
					done(nil)
				}()
			default:
				ack(seq)
				done(nil)
			}
			if n == 100 {
				cancel()
			}
		})
	}()
	var err error
	select {
	case err = <-errc:
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if err != nil {
		t.Fatalf("Run after cancel: %v", err)
	}
	lateDone.Wait()
	st := c1.Stats()
	if st.Outstanding != 0 || int(st.Acked) != len(acked) {
		t.Fatalf("after Run: stats %+v, handler acked %d", st, len(acked))
	}
	if len(acked) >= total {
		t.Fatalf("the first run acked everything (%d); cancel came too late to test anything", len(acked))
	}

	c2 := newConsumer(t, e, cfg)
	stop := runConsumer(t, c2, Sync(func(ctx context.Context, d *Delivery) error {
		ack(d.StreamSeq)
		return nil
	}))
	waitFor(t, "every message acked by one of the runs", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(acked) == total
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	for seq := uint64(1); seq <= total; seq++ {
		if !acked[seq] {
			t.Fatalf("stream seq %d lost", seq)
		}
	}
	if info := serverState(t, e, "crash"); info.NumAckPending != 0 || info.NumPending != 0 {
		t.Fatalf("server: ack pending %d pending %d", info.NumAckPending, info.NumPending)
	}
}

func TestNewConsumerNeedsDeadLetterStream(t *testing.T) {
	e := newEnv(t, newTestServerURL(t))
	cfg := e.consumerConfig("nodl")
	cfg.DeadLetterPrefix = "nowhere" + e.prefix
	_, err := NewConsumer(testCtx(t), e.js, cfg, testLog(t))
	if err == nil || !strings.Contains(err.Error(), "dead-letter subject nowhere"+e.prefix+"."+e.stream+".nodl") {
		t.Fatalf("err = %v, want a refusal naming the dead-letter subject", err)
	}
	if _, err := e.js.Consumer(testCtx(t), e.stream, "nodl"); err == nil {
		t.Fatal("the consumer was created although NewConsumer failed")
	}
}

func TestConsumerRejectsSecondRun(t *testing.T) {
	e := newEnv(t, newTestServerURL(t))
	c := newConsumer(t, e, e.consumerConfig("twice"))
	runConsumer(t, c, Sync(func(context.Context, *Delivery) error { return nil }))
	waitFor(t, "Run to start", func() bool { return c.running.Load() })
	if err := c.Run(context.Background(), Sync(func(context.Context, *Delivery) error { return nil })); !errors.Is(err, ErrAlreadyRunning) {
		t.Fatalf("second Run: %v", err)
	}
	if err := c.Run(context.Background(), nil); err == nil {
		t.Fatal("nil handler accepted")
	}
}

func TestConsumerConfigValidate(t *testing.T) {
	ok := ConsumerConfig{Stream: "EVENTS", Durable: "writer"}
	if err := ok.Validate(); err != nil {
		t.Fatalf("minimal config: %v", err)
	}
	for _, tc := range []struct {
		field string
		edit  func(*ConsumerConfig)
	}{
		{"stream", func(c *ConsumerConfig) { c.Stream = "" }},
		{"stream", func(c *ConsumerConfig) { c.Stream = "a.b" }},
		{"durable", func(c *ConsumerConfig) { c.Durable = "" }},
		{"durable", func(c *ConsumerConfig) { c.Durable = "w*" }},
		{"filter_subjects[1]", func(c *ConsumerConfig) { c.FilterSubjects = []string{"events.>", ""} }},
		{"batch_size", func(c *ConsumerConfig) { c.BatchSize = -1 }},
		{"batch_size", func(c *ConsumerConfig) { c.BatchSize = 500; c.MaxAckPending = 100 }},
		{"fetch_wait", func(c *ConsumerConfig) { c.FetchWait = -time.Second }},
		{"fetch_wait", func(c *ConsumerConfig) { c.FetchWait = time.Millisecond }},
		{"max_ack_pending", func(c *ConsumerConfig) { c.MaxAckPending = -5 }},
		{"ack_wait", func(c *ConsumerConfig) { c.AckWait = 100 * time.Millisecond }},
		{"max_deliver", func(c *ConsumerConfig) { c.MaxDeliver = -2 }},
		{"backoff[1]", func(c *ConsumerConfig) { c.Backoff = []time.Duration{time.Second, -time.Second} }},
		{"deadletter_prefix", func(c *ConsumerConfig) { c.DeadLetterPrefix = "dl.>" }},
	} {
		c := ok
		tc.edit(&c)
		err := c.Validate()
		if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.field+":") {
			t.Errorf("%+v: err = %v, want ErrInvalidConfig naming %s", c, err, tc.field)
		}
	}
}

func TestDefaultBackoffGrowsWithJitter(t *testing.T) {
	c := &Consumer{}
	prevMax := time.Duration(0)
	for n := uint64(1); n <= 12; n++ {
		base := min(time.Second<<min(n-1, 7), 2*time.Minute)
		lo, hi := time.Duration(float64(base)*0.8), time.Duration(float64(base)*1.2)
		seen := map[time.Duration]bool{}
		for i := 0; i < 50; i++ {
			d := c.defaultBackoff(n)
			if d < lo || d > hi {
				t.Fatalf("delivery %d: delay %s outside [%s, %s]", n, d, lo, hi)
			}
			seen[d] = true
		}
		if len(seen) < 2 {
			t.Fatalf("delivery %d: no jitter", n)
		}
		if hi < prevMax {
			t.Fatalf("delivery %d: delay shrinks", n)
		}
		prevMax = hi
	}
	c.cfg.Backoff = []time.Duration{time.Second, 5 * time.Second}
	for n, want := range map[uint64]time.Duration{1: time.Second, 2: 5 * time.Second, 9: 5 * time.Second} {
		if got := c.defaultBackoff(n); got != want {
			t.Errorf("configured backoff, delivery %d: %s, want %s", n, got, want)
		}
	}
}

func TestConsumerFilterSubjects(t *testing.T) {
	e := newEnv(t, newTestServerURL(t))
	e.publish("a", 3)
	e.publish("b", 4)
	e.publish("c", 5)
	cfg := e.consumerConfig("filtered")
	cfg.FilterSubjects = []string{e.prefix + ".a", e.prefix + ".c"}
	c := newConsumer(t, e, cfg)
	var mu sync.Mutex
	subjects := map[string]int{}
	stop := runConsumer(t, c, Sync(func(ctx context.Context, d *Delivery) error {
		mu.Lock()
		subjects[d.Subject]++
		mu.Unlock()
		return nil
	}))
	waitFor(t, "8 acks", func() bool { return c.Stats().Acked == 8 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if d := c.Stats().Delivered; d != 8 {
		t.Fatalf("%d deliveries, want 8", d)
	}
	if len(subjects) != 2 || subjects[e.prefix+".a"] != 3 || subjects[e.prefix+".c"] != 5 {
		t.Fatalf("delivered by subject: %v", subjects)
	}
	if info := serverState(t, e, "filtered"); info.NumPending != 0 || info.NumAckPending != 0 {
		t.Fatalf("server: pending %d, ack pending %d", info.NumPending, info.NumAckPending)
	}
}

// A handler that holds its deliveries for several ack waits, as the
// notifier does, gets each once with WithInProgress: the consumer tells
// the server they are in progress until their result, and not after.
// Without it the server redelivers them (the comparison shows the test
// would see the difference).
func TestConsumerInProgressKeepsHeldDeliveries(t *testing.T) {
	for _, withIt := range []bool{true, false} {
		t.Run(fmt.Sprintf("in_progress=%v", withIt), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, newTestServerURL(t))
			e.publish("held", 3)
			cfg := e.consumerConfig(fmt.Sprintf("held-%v", withIt))
			cfg.AckWait = time.Second // the least allowed
			var opts []ConsumerOption
			if withIt {
				opts = append(opts, WithInProgress())
			}
			c := newConsumer(t, e, cfg, opts...)
			var mu sync.Mutex
			var held []func(error)
			stop := runConsumer(t, c, func(_ context.Context, _ *Delivery, done func(error)) {
				mu.Lock()
				held = append(held, done)
				mu.Unlock()
			})
			time.Sleep(4 * cfg.AckWait) // several ack waits, holding every delivery
			mu.Lock()
			n := len(held)
			for _, done := range held {
				done(nil)
			}
			held = nil
			mu.Unlock()
			if withIt {
				if n != 3 || c.Stats().InProgress == 0 {
					t.Fatalf("%d deliveries while held (want each of the 3 once), %d in-progress signals", n, c.Stats().InProgress)
				}
				told := c.Stats().InProgress
				time.Sleep(cfg.AckWait) // settled: no more signals
				if got := c.Stats().InProgress; got != told {
					t.Fatalf("%d in-progress signals after the deliveries were acked, want none", got-told)
				}
			} else if n <= 3 {
				t.Fatalf("%d deliveries in four ack waits without in-progress signals, want redeliveries", n)
			}
			if err := stop(); err != nil && !errors.Is(err, ErrDrainTimeout) {
				t.Fatal(err)
			}
		})
	}
}

// A delivery still held when a drain timed out is left to the server's
// redelivery: a later Run of the same consumer (a lease regained) does not
// tell it in progress, which would reset the ack timer of its redelivery.
func TestConsumerInProgressForgetsWhatADrainLeft(t *testing.T) {
	e := newEnv(t, newTestServerURL(t))
	e.publish("left", 1)
	cfg := e.consumerConfig("left")
	cfg.AckWait = time.Second
	c := newConsumer(t, e, cfg, WithInProgress(), WithDrainTimeout(100*time.Millisecond))
	var got atomic.Int64
	stop := runConsumer(t, c, func(context.Context, *Delivery, func(error)) { got.Add(1) }) // never settles
	waitFor(t, "the delivery", func() bool { return got.Load() == 1 })
	if err := stop(); !errors.Is(err, ErrDrainTimeout) {
		t.Fatalf("Run: %v, want ErrDrainTimeout", err)
	}
	told := c.Stats().InProgress
	stop = runConsumer(t, c, Sync(func(context.Context, *Delivery) error { return nil }))
	waitFor(t, "the redelivery acked", func() bool { return c.Stats().Acked == 1 })
	time.Sleep(2 * cfg.AckWait)
	if n := c.Stats().InProgress - told; n != 0 {
		t.Fatalf("%d in-progress signals in the second run for the delivery the first one left", n)
	}
	// The first run's delivery still counts as outstanding (its done may
	// come late), so this drain times out too.
	if err := stop(); err != nil && !errors.Is(err, ErrDrainTimeout) {
		t.Fatal(err)
	}
}

// A message whose dead letter cannot be stored (the dead-letter stream is
// away) is naked and dead-lettered once the stream is back, however many
// deliveries that takes: it is never dropped when deliveries run out.
func TestConsumerDeadLettersOnceTheDeadLetterStreamIsBack(t *testing.T) {
	e := newEnv(t, newTestServerURL(t))
	e.publish("bad", 1)
	cfg := e.consumerConfig("dlaway")
	cfg.MaxDeliver = 2
	c := newConsumer(t, e, cfg)
	if err := e.js.DeleteStream(testCtx(t), e.dlq); err != nil {
		t.Fatal(err)
	}
	stop := runConsumer(t, c, Sync(func(context.Context, *Delivery) error { return errs.Permanentf("not a number") }))
	// One more failure than the deliveries MaxDeliver allows.
	waitFor(t, "dead letters failing", func() bool { return c.Stats().DeadLetterFailed > uint64(cfg.MaxDeliver) })
	if _, err := EnsureStream(testCtx(t), e.js, jetstream.StreamConfig{Name: e.dlq, Subjects: []string{e.dlPref + ".>"}, Storage: jetstream.MemoryStorage}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the dead letter stored", func() bool { return c.Stats().DeadLettered == 1 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	dl := fetchAll(t, e.js, e.dlq)
	if len(dl) != 1 || dl[0].Headers().Get(HeaderDeadLetterReason) == "" {
		t.Fatalf("%d dead letters, want 1 with its reason", len(dl))
	}
}

// On a replicated stream the server sends a consumer's deliveries only
// once their replicas recorded them, but ended a fetch under a byte bound
// (409 Batch Completed: its count reached, bytes left) at once: the status
// overtook the fetch's last messages, the client closed the fetch on it and
// dropped them, and the server, counting them delivered, handed them out
// again only after ack_wait. After a node loss the writer's fetches lost
// hundreds that way, 30 s per round (TestRunOnNATSClusterLosesNoEvent
// outwaited its two minutes under load). Every message reaches the handler
// on its first delivery.
func TestConsumerOnAReplicatedStreamGetsEachMessageAtItsFirstDelivery(t *testing.T) {
	_, urls := testenv.StartNATSCluster(t)
	e := newReplicatedEnv(t, strings.Join(urls, ","), 3)
	const n = 1000
	e.publish("r3", n)
	cfg := e.consumerConfig("r3")
	// A bound that holds batches of 50 messages of any size, far over
	// what 50 small ones take: a fetch with it as its byte bound ended by
	// its count, bytes left.
	cfg.FetchMaxBytes, cfg.MaxAckPending = 64<<20, n
	cfg.AckWait = 2 * time.Second // what a dropped delivery waits for
	cfg.MaxDeliver = 1000         // dropped again and again, none is dead-lettered
	c := newConsumer(t, e, cfg)
	var mu sync.Mutex
	handled := map[uint64]bool{}
	var again []uint64
	stop := runConsumer(t, c, Sync(func(ctx context.Context, d *Delivery) error {
		mu.Lock()
		defer mu.Unlock()
		if d.Delivered > 1 {
			again = append(again, d.StreamSeq)
		}
		handled[d.StreamSeq] = true
		return nil
	}))
	// Lost first deliveries come again within a few ack waits.
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		mu.Lock()
		all := len(handled) == n
		mu.Unlock()
		if all || time.Now().After(deadline) {
			break
		}
	}
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(handled) < n || len(again) > 0 {
		t.Fatalf("%d of %d messages handled, %d of them only on a redelivery (the first sequences of those: %v): first deliveries were lost", len(handled), n, len(again), again[:min(len(again), 20)])
	}
}

// FetchMaxBytes bounds what one fetch brings into the client (it waits
// there until the handler takes it, outside the handler's own bounds):
// while the handler holds the first message, the server has handed out
// only what fits; a message over the bound still comes, alone.
func TestConsumerFetchMaxBytes(t *testing.T) {
	e := newEnv(t, newTestServerURL(t))
	p, err := NewPublisher(e.js)
	if err != nil {
		t.Fatal(err)
	}
	var ms []Message
	for i := range 20 {
		size := 2 << 10
		if i == 10 {
			size = 64 << 10 // over the bound
		}
		ms = append(ms, Message{Subject: e.prefix + ".big", ID: fmt.Sprintf("big-%d", i), Data: []byte(strings.Repeat("x", size))})
	}
	if _, err := p.PublishAll(testCtx(t), ms); err != nil {
		t.Fatal(err)
	}
	cfg := e.consumerConfig("bytes")
	cfg.BatchSize, cfg.MaxAckPending, cfg.FetchMaxBytes = 100, 100, 8<<10
	c := newConsumer(t, e, cfg)
	release := make(chan struct{})
	var handled atomic.Int64
	stop := runConsumer(t, c, Sync(func(ctx context.Context, d *Delivery) error {
		if handled.Add(1) == 1 {
			<-release
		}
		return nil
	}))
	waitFor(t, "the first message handed out", func() bool { return handled.Load() == 1 })
	info := serverState(t, e, "bytes") // polls while messages are pending: returns what it saw
	if info.NumAckPending == 0 || info.NumAckPending > 4 {
		t.Fatalf("%d messages of 2 KiB handed out by the server while the handler holds the first, want at most what 8 KiB holds", info.NumAckPending)
	}
	close(release)
	waitFor(t, "every message acked, the one over the bound too", func() bool { return c.Stats().Acked == 20 })
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
}
