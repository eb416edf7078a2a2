package notifier

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/bus"
	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/pkg/notify/webhook"
	"github.com/aiops-dev/aiops/pkg/stage"
	"github.com/aiops-dev/aiops/pkg/stage/stagetest"
	"github.com/aiops-dev/aiops/pkg/testenv"
)

// outageConfig is a notifier whose old retry budget is short: two
// attempts a delivery, a breaker opening after two failures for 100ms,
// and JetStream redelivering twice, 50ms apart. A receiver down for a
// few of its cool-downs outlasts that budget many times over.
func outageConfig(routes string) Config {
	cfg := Config{Routes: routes, Lease: bus.LeaseConfig{Disabled: true}}
	cfg.Consumer.FetchWait = 50 * time.Millisecond
	cfg.Consumer.MaxDeliver = 2
	cfg.Consumer.Backoff = []time.Duration{50 * time.Millisecond}
	cfg.Delivery.RateLimit.Disabled = true
	cfg.Delivery.Retry.MaxAttempts = 2
	cfg.Delivery.Retry.BaseDelay = 10 * time.Millisecond
	cfg.Delivery.Retry.MaxDelay = 50 * time.Millisecond
	cfg.Delivery.Breaker.Failures = 2
	cfg.Delivery.Breaker.CoolDown = 100 * time.Millisecond
	return cfg
}

// deadLetters counts what the notifier dead-lettered.
func (r *jsRig) deadLetters(cfg Config) uint64 {
	r.t.Helper()
	stream, err := r.js.Stream(context.Background(), bus.StreamDeadLetter)
	if err != nil {
		r.t.Fatal(err)
	}
	subject := cfg.DeadLetterSubject()
	info, err := stream.Info(context.Background(), jetstream.WithSubjectFilter(subject))
	if err != nil {
		r.t.Fatal(err)
	}
	return info.State.Subjects[subject]
}

// breakerOpens counts the times the breakers in front of the receiver
// opened: each time, the receiver failed its trial again.
func breakerOpens(svc *Service, receiver string) uint64 {
	var n uint64
	for _, s := range svc.proc.client.AllStats() {
		if strings.HasPrefix(s.Receiver, receiver+" ") {
			n += s.BreakerOpens
		}
	}
	return n
}

// A receiver down (connection refused) for longer than the whole old
// budget (every attempt of every redelivery, most of them refused at
// once by the open breaker) gets the notification once it is back:
// the notifier holds the incident event meanwhile, told in progress
// past several ack_waits rather than redelivered, and nothing is
// dead-lettered.
func TestReceiverDownLongerThanRetriesGetsItWhenBack(t *testing.T) {
	r := newJSRig(t, zerolog.ErrorLevel)
	hook := newHookLog(t, false)
	proxy := testenv.NewProxy(t, strings.TrimPrefix(hook.srv.URL, "http://"))
	cfg := outageConfig(routesTo(t, "http://"+proxy.Addr(), "0s"))
	cfg.Consumer.AckWait = time.Second // the outage below lasts several
	proxy.Cut()
	svc, stop := r.start(cfg)
	defer stop()

	now := time.Now().UTC()
	r.publish(incidentAt(t, "down-inc", "db", "dba", event.SeverityCritical, event.IncidentOpened, now, now))
	// Down through several cool-downs of its breaker: 2 attempts and 2
	// deliveries were the whole budget before.
	eventually(t, func() string {
		return fmt.Sprintf("breaker opened %d times, %d dead letters", breakerOpens(svc, "hook"), r.deadLetters(cfg))
	}, func() bool { return breakerOpens(svc, "hook") >= 4 || r.deadLetters(cfg) > 0 })
	if n := r.deadLetters(cfg); n != 0 {
		t.Fatalf("%d dead letters while the receiver was down for a few cool-downs, want the event held", n)
	}
	if st := svc.ConsumerStats(); st.Delivered != 1 || st.Naked != 0 || st.InProgress == 0 {
		t.Fatalf("consumer %+v: want the event delivered once and held, told in progress, not naked", st)
	}

	proxy.Restore()
	eventually(t, func() string { return fmt.Sprintf("heard %v, consumer %+v", hook.heard(), svc.ConsumerStats()) }, func() bool {
		return svc.ConsumerStats().Acked == 1
	})
	if got := hook.statuses("down-inc"); len(got) != 1 {
		t.Fatalf("the receiver heard %v, want the opening once", got)
	}
	if n := r.deadLetters(cfg); n != 0 {
		t.Fatalf("%d dead letters, want none", n)
	}
}

// syncBuffer is a log sink a test reads while the notifier writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// A receiver down past notifier.delivery.max_hold gets the incident event
// dead-lettered, once, with a reason that says so and names aiops notify
// replay, as the log line does; the event was held meanwhile, not
// redelivered.
func TestReceiverDownPastMaxHoldIsDeadLettered(t *testing.T) {
	r := newJSRig(t, zerolog.ErrorLevel)
	hook := newHookLog(t, false)
	proxy := testenv.NewProxy(t, strings.TrimPrefix(hook.srv.URL, "http://"))
	cfg := outageConfig(routesTo(t, "http://"+proxy.Addr(), "0s"))
	cfg.Delivery.MaxHold = 500 * time.Millisecond
	proxy.Cut()
	var logs syncBuffer
	svc, err := New(context.Background(), r.js, cfg, zerolog.New(&logs))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()

	now := time.Now().UTC()
	e := incidentAt(t, "gone-inc", "db", "dba", event.SeverityCritical, event.IncidentOpened, now, now)
	r.publish(e)
	eventually(t, func() string {
		return fmt.Sprintf("%d dead letters, consumer %+v", r.deadLetters(cfg), svc.ConsumerStats())
	}, func() bool {
		return r.deadLetters(cfg) == 1 && svc.ConsumerStats().DeadLettered == 1
	})
	stream, err := r.js.Stream(context.Background(), bus.StreamDeadLetter)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := stream.GetLastMsgForSubject(context.Background(), cfg.DeadLetterSubject())
	if err != nil {
		t.Fatal(err)
	}
	reason := msg.Header.Get(bus.HeaderDeadLetterReason)
	for _, want := range []string{"receiver not reached: hook", "notifier.delivery.max_hold (500ms", "aiops notify replay", "connection refused"} {
		if !strings.Contains(reason, want) {
			t.Errorf("dead letter reason %q, want it to say %q", reason, want)
		}
	}
	if got := msg.Header.Get(bus.HeaderDeliveries); got != "1" {
		t.Errorf("dead-lettered on delivery %s, want the first: held, not redelivered", got)
	}
	if !strings.Contains(logs.String(), "run `aiops notify replay` once the receiver is back") {
		t.Errorf("no log line names aiops notify replay:\n%s", logs.String())
	}
	if n := len(hook.heard()); n != 0 {
		t.Fatalf("the receiver heard %d notifications through a cut proxy", n)
	}
}

// One receiver down holds back only its own notifications: the other
// receiver gets each of its own at once, its events acked, while the
// first's are held; once back, the first gets its own, nothing
// dead-lettered.
func TestDownReceiverHoldsBackOnlyItsOwn(t *testing.T) {
	r := newJSRig(t, zerolog.ErrorLevel)
	down, up := newHookLog(t, false), newHookLog(t, false)
	proxy := testenv.NewProxy(t, strings.TrimPrefix(down.srv.URL, "http://"))
	routes := filepath.Join(t.TempDir(), "alertmanager.yml")
	if err := os.WriteFile(routes, []byte(`route:
  receiver: up
  group_wait: 0s
  routes:
  - {matchers: [team="dba"], receiver: hook}
receivers:
- name: hook
  webhook_configs: [{url: 'http://`+proxy.Addr()+`'}]
- name: up
  webhook_configs: [{url: '`+up.srv.URL+`'}]
`), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := outageConfig(routes)
	proxy.Cut()
	svc, stop := r.start(cfg)
	defer stop()

	now := time.Now().UTC()
	for i := range 3 {
		r.publish(incidentAt(t, fmt.Sprint("db-", i), "payments-db", "dba", event.SeverityCritical, event.IncidentOpened, now, now),
			incidentAt(t, fmt.Sprint("web-", i), "web", "storefront", event.SeverityCritical, event.IncidentOpened, now, now))
	}
	eventually(t, func() string { return fmt.Sprintf("up heard %v, consumer %+v", up.heard(), svc.ConsumerStats()) }, func() bool {
		return len(up.heard()) == 3 && svc.ConsumerStats().Acked == 3
	})
	// Still down through a few of its cool-downs, its events held.
	eventually(t, func() string { return fmt.Sprintf("breaker opened %d times", breakerOpens(svc, "hook")) }, func() bool {
		return breakerOpens(svc, "hook") >= 3
	})
	if st := svc.ConsumerStats(); st.Acked != 3 || st.Naked != 0 || st.DeadLettered != 0 {
		t.Fatalf("consumer %+v: want the up receiver's 3 acked, the down one's held", st)
	}

	proxy.Restore()
	eventually(t, func() string { return fmt.Sprintf("down heard %v, consumer %+v", down.heard(), svc.ConsumerStats()) }, func() bool {
		return svc.ConsumerStats().Acked == 6
	})
	for i := range 3 {
		if got := down.statuses(fmt.Sprint("db-", i)); len(got) != 1 {
			t.Errorf("db-%d: the receiver back heard %v, want its opening once", i, got)
		}
	}
	if n := r.deadLetters(cfg); n != 0 || len(up.heard()) != 3 {
		t.Fatalf("%d dead letters, up heard %d; want none, and its 3 once", n, len(up.heard()))
	}
}

// A held event survives the notifier's stops: each hands it back and the
// next notifier holds it again, as many times as a rolling update or a
// few restarts during an outage take (each a delivery, counted against
// consumer.max_deliver); once the receiver is back, it is delivered once,
// nothing dead-lettered.
func TestHeldEventSurvivesRestarts(t *testing.T) {
	r := newJSRig(t, zerolog.ErrorLevel)
	hook := newHookLog(t, false)
	proxy := testenv.NewProxy(t, strings.TrimPrefix(hook.srv.URL, "http://"))
	cfg := outageConfig(routesTo(t, "http://"+proxy.Addr(), "0s"))
	cfg.Consumer.MaxDeliver = 0 // the notifier's default
	proxy.Cut()
	now := time.Now().UTC()
	r.publish(incidentAt(t, "restart-inc", "db", "dba", event.SeverityCritical, event.IncidentOpened, now, now))
	const restarts = 6
	for i := range restarts {
		svc, stop := r.start(cfg)
		// It took the event and tried it (its breaker opened), then stops.
		eventually(t, func() string { return fmt.Sprintf("run %d: consumer %+v", i, svc.ConsumerStats()) }, func() bool {
			return breakerOpens(svc, "hook") >= 1
		})
		stop()
		if st := svc.ConsumerStats(); st.Delivered != 1 || st.DeadLettered != 0 {
			t.Fatalf("run %d: consumer %+v, want the event delivered, held and handed back", i, st)
		}
	}
	proxy.Restore()
	svc, stop := r.start(cfg)
	defer stop()
	eventually(t, func() string { return fmt.Sprintf("heard %v, consumer %+v", hook.heard(), svc.ConsumerStats()) }, func() bool {
		return svc.ConsumerStats().Acked == 1
	})
	if got := hook.statuses("restart-inc"); len(got) != 1 || r.deadLetters(cfg) != 0 {
		t.Fatalf("after %d restarts: the receiver heard %v, %d dead letters; want the opening once, none", restarts, got, r.deadLetters(cfg))
	}
}

// A standby taking the lease from a notifier that stops while it holds
// an event for a receiver that is down holds it in turn, and delivers it
// once the receiver is back.
func TestStandbyTakesOverAHeldEvent(t *testing.T) {
	r := newJSRig(t, zerolog.ErrorLevel)
	hook := newHookLog(t, false)
	proxy := testenv.NewProxy(t, strings.TrimPrefix(hook.srv.URL, "http://"))
	cfg := outageConfig(routesTo(t, "http://"+proxy.Addr(), "0s"))
	cfg.Lease = bus.LeaseConfig{TTL: 3 * time.Second}
	proxy.Cut()
	a, stopA := r.start(cfg)
	eventually(t, func() string { return "the first instance has no lease" }, a.lease.Valid)
	b, stopB := r.start(cfg)
	defer stopB()

	now := time.Now().UTC()
	r.publish(incidentAt(t, "takeover-inc", "db", "dba", event.SeverityCritical, event.IncidentOpened, now, now))
	eventually(t, func() string { return fmt.Sprintf("active %+v", a.ConsumerStats()) }, func() bool {
		return breakerOpens(a, "hook") >= 1
	})
	stopA()
	eventually(t, func() string { return fmt.Sprintf("standby %+v", b.ConsumerStats()) }, func() bool {
		return breakerOpens(b, "hook") >= 1
	})
	if st := b.ConsumerStats(); st.Delivered != 1 || st.Acked != 0 {
		t.Fatalf("standby %+v: want the event handed over, held", st)
	}
	proxy.Restore()
	eventually(t, func() string { return fmt.Sprintf("heard %v, standby %+v", hook.heard(), b.ConsumerStats()) }, func() bool {
		return b.ConsumerStats().Acked == 1
	})
	if got := hook.statuses("takeover-inc"); len(got) != 1 || r.deadLetters(cfg) != 0 {
		t.Fatalf("the receiver heard %v, %d dead letters; want the opening once, none", got, r.deadLetters(cfg))
	}
}

// notifier.delivery.max_hold must be positive and leave the stream's
// max_age room to store the dead letter before the stream drops the
// event: one set past nine tenths of it is refused, naming both; the
// default is shortened to half a short max_age.
func TestMaxHoldBoundedByTheStream(t *testing.T) {
	cfg := Config{}
	cfg.Delivery.MaxHold = -time.Second
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "notifier.delivery.max_hold: negative") {
		t.Fatalf("a negative max_hold: %v", err)
	}

	r := newJSRig(t, zerolog.ErrorLevel)
	cfg = Config{Lease: bus.LeaseConfig{Disabled: true}}
	cfg.Delivery.MaxHold = bus.DefaultMaxAge
	_, err := New(context.Background(), r.js, cfg, r.log)
	if err == nil || !strings.Contains(err.Error(), "notifier.delivery.max_hold 336h0m0s: at most 302h24m0s") || !strings.Contains(err.Error(), "max_age (336h0m0s)") {
		t.Fatalf("max_hold as long as the stream's max_age: %v", err)
	}

	proc, err := NewProcessor(Config{}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if err := proc.holdWithin("EVENTS", 2*time.Hour, false); err != nil || proc.maxHold != time.Hour {
		t.Fatalf("default max_hold under a 2h max_age: %v, %v; want 1h", proc.maxHold, err)
	}
}

// heldRig is a notifier on the stage runtime sending everything at once
// to url, on a clock the test moves (for the notifier and its breakers)
// with no sleeps between attempts; the breaker opens at the first failure
// and stays open an hour.
func heldRig(t *testing.T, url string) (h *stagetest.Harness, proc *Processor, move func(time.Duration)) {
	t.Helper()
	return heldRigWith(t, url, func(*Config) {})
}

// heldRigWith is heldRig with the configuration changed by set.
func heldRigWith(t *testing.T, url string, set func(*Config)) (h *stagetest.Harness, proc *Processor, move func(time.Duration)) {
	t.Helper()
	var mu sync.Mutex
	wall := time.Now()
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return wall }
	noSleep := func(ctx context.Context, d time.Duration) error { return ctx.Err() }
	cfg := Config{Routes: routesTo(t, url, "0s")}
	cfg.Delivery.Retry.MaxAttempts = 1
	cfg.Delivery.Breaker = webhook.BreakerConfig{Failures: 1, CoolDown: time.Hour}
	set(&cfg)
	proc, err := NewProcessor(cfg, zerolog.Nop(), webhook.WithClock(now, noSleep))
	if err != nil {
		t.Fatal(err)
	}
	proc.now = now
	h = stagetest.Start(t, proc, stage.Config{Name: "notifier", TickEvery: time.Second})
	move = func(d time.Duration) {
		t.Helper()
		mu.Lock()
		wall = wall.Add(d)
		mu.Unlock()
		if err := h.Tick(now()); err != nil {
			t.Fatal(err)
		}
		waitSent(t, proc)
	}
	return h, proc, move
}

// A held notification is not tried while the breaker in front of its
// receiver is open (no try is spent on a refusal without a request), and
// is tried when the cool-down lets a trial through.
func TestHeldNotificationWaitsForTheBreaker(t *testing.T) {
	hook := newReceiver(t, 503)
	h, proc, move := heldRig(t, hook.srv.URL)
	held := sendHeld(t, h, proc, incidentOn(t, "inc", "db", "dba", event.SeverityCritical, event.IncidentOpened, time.Now()))
	stats := func() webhook.ReceiverStats { return proc.client.AllStats()[0] }
	if s := stats(); s.Attempts != 1 || s.Breaker != webhook.BreakerOpen {
		t.Fatalf("after the first try: %+v; want one attempt, the breaker open", s)
	}
	for range 5 {
		move(10 * time.Minute)
	}
	if s := stats(); s.Attempts != 1 || s.BreakerRejected != 0 {
		t.Fatalf("within the cool-down: %+v; want no try (none sent, none refused by the breaker)", s)
	}
	move(11 * time.Minute)
	if r := resultOf(t, held); r.Outcome != stagetest.Acked || stats().Attempts != 2 {
		t.Fatalf("after the cool-down: %v %v, %d attempts; want the trial delivered", r.Outcome, r.Err, stats().Attempts)
	}
}

// An event held so long that the stream would soon drop it (made nine
// tenths of its max_age ago) is dead-lettered at its first failure, with
// the reason, however long max_hold is: a dead letter is replayable, an
// event the stream dropped is lost.
func TestHeldEventGivenUpBeforeTheStreamDropsIt(t *testing.T) {
	hook := newReceiver(t, 503)
	h, proc, _ := heldRig(t, hook.srv.URL)
	if err := proc.holdWithin("EVENTS", bus.DefaultMaxAge, false); err != nil {
		t.Fatal(err)
	}
	old := incidentOn(t, "old", "db", "dba", event.SeverityCritical, event.IncidentOpened, time.Now())
	old.ObservedTime = time.Now().Add(-13 * 24 * time.Hour)
	r := h.Feed(old)[0]
	if r.Outcome != stagetest.DeadLettered || !errors.Is(r.Err, ErrHeldTooLong) || !strings.Contains(r.Err.Error(), "would soon leave the stream (max_age 336h0m0s)") {
		t.Fatalf("%v %v; want dead-lettered, saying it would leave the stream", r.Outcome, r.Err)
	}
	fresh := incidentOn(t, "fresh", "db", "dba", event.SeverityCritical, event.IncidentOpened, time.Now())
	fresh.ObservedTime = time.Now()
	sendHeld(t, h, proc, fresh)
}

// EVENTS at its max_bytes discards its oldest events however young they
// are: a held event is dead-lettered (replayable) before the stream's
// oldest tenth reaches it, at the pace the stream went, not only before
// max_age. Measured on aiops run with a 4 MiB EVENTS rolled over while a
// receiver was down: the held event left the stream, and a restart lost
// its notification without a word.
func TestHeldEventGivenUpBeforeTheFullStreamDiscardsIt(t *testing.T) {
	hook := newReceiver(t, 503)
	h, proc, move := heldRig(t, hook.srv.URL)
	now := proc.now()
	made := func(id string, ago time.Duration) *event.Envelope {
		e := incidentOn(t, id, "db", "dba", event.SeverityCritical, event.IncidentOpened, now)
		e.ObservedTime = now.Add(-ago)
		return e
	}
	// An hour in the stream: its oldest tenth is what came in its first 6 minutes.
	proc.noteStream(streamSpan{first: now.Add(-time.Hour), last: now})
	sendHeld(t, h, proc, made("calm", 58*time.Minute)) // not full: nothing goes for its size

	proc.noteStream(streamSpan{first: now.Add(-time.Hour), last: now, full: true})
	r := h.Feed(made("oldest", 58*time.Minute))[0]
	if r.Outcome != stagetest.DeadLettered || !errors.Is(r.Err, ErrHeldTooLong) || !strings.Contains(r.Err.Error(), "would soon leave the stream, which is at its max_bytes") {
		t.Fatalf("%v %v; want dead-lettered, saying the full stream would discard it", r.Outcome, r.Err)
	}
	older := sendHeld(t, h, proc, made("older", 50*time.Minute)) // 4 minutes before its turn
	sendHeld(t, h, proc, made("fresh", 0))
	move(5 * time.Minute)
	if r := resultOf(t, older); r.Outcome != stagetest.DeadLettered || !errors.Is(r.Err, ErrHeldTooLong) {
		t.Fatalf("4 minutes on: %v %v; want dead-lettered", r.Outcome, r.Err)
	}
}

// A receiver down through many incidents holds at most half of
// consumer.max_ack_pending: the events it would hold past that are
// dead-lettered (for aiops notify replay, the reason says why), so the
// consumer keeps fetching and another receiver still gets a new
// incident at once. Held without a bound, they filled max_ack_pending and
// every receiver waited for max_hold. Nothing is lost: each incident is
// heard by the receiver once it is back, or dead-lettered.
func TestDownReceiverCannotFillMaxAckPending(t *testing.T) {
	r := newJSRig(t, zerolog.ErrorLevel)
	down, up := newHookLog(t, false), newHookLog(t, false)
	proxy := testenv.NewProxy(t, strings.TrimPrefix(down.srv.URL, "http://"))
	routes := filepath.Join(t.TempDir(), "alertmanager.yml")
	if err := os.WriteFile(routes, []byte(`route:
  receiver: up
  group_wait: 0s
  routes:
  - {matchers: [team="dba"], receiver: hook}
receivers:
- name: hook
  webhook_configs: [{url: 'http://`+proxy.Addr()+`'}]
- name: up
  webhook_configs: [{url: '`+up.srv.URL+`'}]
`), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := outageConfig(routes)
	cfg.Consumer.MaxAckPending = 8 // 4 held at most
	proxy.Cut()
	svc, stop := r.start(cfg)
	defer stop()

	now := time.Now().UTC()
	const incidents = 12
	for i := range incidents {
		r.publish(incidentAt(t, fmt.Sprint("db-", i), "payments-db", "dba", event.SeverityCritical, event.IncidentOpened, now, now))
	}
	eventually(t, func() string { return fmt.Sprintf("consumer %+v", svc.ConsumerStats()) }, func() bool {
		return svc.ConsumerStats().DeadLettered == incidents-4
	})
	r.publish(incidentAt(t, "web", "web", "storefront", event.SeverityCritical, event.IncidentOpened, now, now))
	eventually(t, func() string { return fmt.Sprintf("up heard %v, consumer %+v", up.heard(), svc.ConsumerStats()) }, func() bool {
		return len(up.statuses("web")) == 1
	})

	proxy.Restore()
	eventually(t, func() string { return fmt.Sprintf("down heard %v, consumer %+v", down.heard(), svc.ConsumerStats()) }, func() bool {
		return svc.ConsumerStats().Acked == 4+1
	})
	stream, err := r.js.Stream(context.Background(), bus.StreamDeadLetter)
	if err != nil {
		t.Fatal(err)
	}
	letters, err := readDeadLetters(context.Background(), stream, cfg.DeadLetterSubject())
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, g := range letters {
		dl := g.newest
		got[dl.IncidentID]++
		if !strings.Contains(dl.Reason, "half of notifier.consumer.max_ack_pending (8)") || !strings.Contains(dl.Reason, "aiops notify replay") {
			t.Errorf("dead letter of %s: reason %q, want it to name max_ack_pending and aiops notify replay", dl.IncidentID, dl.Reason)
		}
	}
	for _, h := range down.heard() {
		got[h.incident]++
	}
	for i := range incidents {
		if id := fmt.Sprint("db-", i); got[id] != 1 {
			t.Errorf("%s: heard or dead-lettered %d times, want once", id, got[id])
		}
	}
	svc.proc.mu.Lock()
	defer svc.proc.mu.Unlock()
	if n := svc.proc.schedule.failingInputs; n != 0 {
		t.Errorf("%d inputs still counted as held for a failing receiver, want none", n)
	}
}

// A resolve arriving while an older state of its incident is held for a
// receiver that is down replaces it: once the receiver is back it gets
// the resolve, once, and not the older state; both events are acked.
func TestResolveReplacesAHeldState(t *testing.T) {
	hook := newReceiver(t, 503) // then 200
	h, proc, move := heldRig(t, hook.srv.URL)
	now := time.Now()
	opened := sendHeld(t, h, proc, incidentOn(t, "inc", "db", "dba", event.SeverityCritical, event.IncidentOpened, now))
	resolved := h.Send(incidentOn(t, "inc", "db", "dba", event.SeverityCritical, event.IncidentResolved, now.Add(time.Minute)))
	waitSent(t, proc)
	if r, settled := resolved.Result(); settled {
		t.Fatalf("the resolve settled %v %v while the receiver is down, want it held", r.Outcome, r.Err)
	}
	move(61 * time.Minute) // past the breaker's cool-down
	_, bodies := hook.requests()
	var statuses []string
	for _, b := range bodies {
		var p struct {
			CommonAnnotations map[string]string `json:"commonAnnotations"`
		}
		if err := json.Unmarshal(b, &p); err != nil {
			t.Fatal(err)
		}
		statuses = append(statuses, p.CommonAnnotations["incident_status"])
	}
	if !slices.Equal(statuses, []string{"open", "resolved"}) {
		t.Fatalf("the receiver got %v, want the opening it failed, then the resolve once", statuses)
	}
	for _, held := range []*stagetest.Held{opened, resolved} {
		if r := resultOf(t, held); r.Outcome != stagetest.Acked {
			t.Fatalf("%v %v, want both events acked", r.Outcome, r.Err)
		}
	}
}

// A stream is full at nine tenths of a limit, whichever it is; with a
// limit under 10 messages, 9/10 of it rounded down used to be 0, and an
// empty stream counted as full.
func TestStreamIsFullAtNineTenthsOfALimit(t *testing.T) {
	info := func(msgs, bytes uint64, maxMsgs, maxBytes int64) *jetstream.StreamInfo {
		return &jetstream.StreamInfo{Config: jetstream.StreamConfig{MaxMsgs: maxMsgs, MaxBytes: maxBytes}, State: jetstream.StreamState{Msgs: msgs, Bytes: bytes}}
	}
	for _, c := range []struct {
		info *jetstream.StreamInfo
		full bool
	}{
		{info(0, 0, 5, -1), false},
		{info(4, 100, 5, -1), false},
		{info(5, 100, 5, -1), true},
		{info(10, 899, -1, 1000), false},
		{info(10, 900, -1, 1000), true},
		{info(10, 900, -1, -1), false},
	} {
		if got := spanOf(c.info).full; got != c.full {
			t.Errorf("%d messages of %d, %d bytes of %d: full %v, want %v", c.info.State.Msgs, c.info.Config.MaxMsgs, c.info.State.Bytes, c.info.Config.MaxBytes, got, c.full)
		}
	}
}
