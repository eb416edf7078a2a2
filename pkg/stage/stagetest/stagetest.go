// Package stagetest runs a stage processor through the real stage.Runner in
// memory, as the OpenTelemetry Collector's consumertest does for its
// components: feed envelopes, read what was published and how each input was
// settled (acked, naked, dead-lettered), fail publishes on demand, tick by
// hand. No server is needed.
package stagetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/bus"
	"github.com/aiops-dev/aiops/pkg/errs"
	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/pkg/stage"
)

// Outcome is how the runner settled one input.
type Outcome int

// The outcomes, as a JetStream consumer would apply them.
const (
	Acked        Outcome = iota // nil result
	Naked                       // transient error: redelivered
	DeadLettered                // permanent error
)

func (o Outcome) String() string {
	return [...]string{"acked", "naked", "dead-lettered"}[o]
}

// Result is an input's settlement.
type Result struct {
	Outcome Outcome
	Err     error
}

func resultOf(err error) Result {
	switch {
	case err == nil:
		return Result{Acked, nil}
	case errs.IsPermanent(err):
		return Result{DeadLettered, err}
	default:
		return Result{Naked, err}
	}
}

// ErrPublish is the error of a publish failed on purpose (Publisher.FailNext).
var ErrPublish = errors.New("stagetest: publish failed on purpose")

// Publisher is an in-memory stage.Publisher that stores each message id once,
// as a stream's duplicate window does.
type Publisher struct {
	mu       sync.Mutex
	msgs     []bus.Message
	seen     map[string]bool
	sent     int
	failNext int
	refuse   bool
	loseAcks bool
}

// NewPublisher returns an empty publisher.
func NewPublisher() *Publisher { return &Publisher{seen: map[string]bool{}} }

// FailNext makes the acks of the next n publishes fail with ErrPublish.
func (p *Publisher) FailNext(n int) {
	p.mu.Lock()
	p.failNext = n
	p.mu.Unlock()
}

// Refuse makes every publish fail at once (a closed connection) until
// called with false.
func (p *Publisher) Refuse(on bool) {
	p.mu.Lock()
	p.refuse = on
	p.mu.Unlock()
}

// LoseAcks makes the publishes stored while on never get their acks, as
// when the cluster node that took them was lost, until called with false.
func (p *Publisher) LoseAcks(on bool) {
	p.mu.Lock()
	p.loseAcks = on
	p.mu.Unlock()
}

// Publish stores m (unless it is a duplicate) or fails as told.
func (p *Publisher) Publish(_ context.Context, m bus.Message) (jetstream.PubAckFuture, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.refuse {
		return nil, fmt.Errorf("%w: refused", ErrPublish)
	}
	p.sent++
	f := &future{ok: make(chan *jetstream.PubAck, 1), err: make(chan error, 1), msg: &nats.Msg{Subject: m.Subject, Data: m.Data}}
	if p.failNext > 0 {
		p.failNext--
		f.err <- ErrPublish
		return f, nil
	}
	dup := p.seen[m.ID]
	if !dup {
		p.seen[m.ID] = true
		p.msgs = append(p.msgs, bus.Message{Subject: m.Subject, ID: m.ID, Data: m.Data})
	}
	if p.loseAcks {
		return f, nil
	}
	f.ok <- &jetstream.PubAck{Stream: "TEST", Sequence: uint64(len(p.msgs)), Duplicate: dup}
	return f, nil
}

// Sent is the number of publishes attempted (duplicates and failures
// included).
func (p *Publisher) Sent() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sent
}

// Messages returns what was stored, in order.
func (p *Publisher) Messages() []bus.Message {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]bus.Message(nil), p.msgs...)
}

// Events decodes what was stored; a message that is not an envelope fails t.
func (p *Publisher) Events(t testing.TB) []*event.Envelope {
	t.Helper()
	var out []*event.Envelope
	for _, m := range p.Messages() {
		e, err := event.Parse(m.Data)
		if err != nil {
			t.Fatalf("published %s on %s is not an envelope: %v", m.ID, m.Subject, err)
		}
		out = append(out, e)
	}
	return out
}

type future struct {
	ok  chan *jetstream.PubAck
	err chan error
	msg *nats.Msg
}

func (f *future) Ok() <-chan *jetstream.PubAck { return f.ok }
func (f *future) Err() <-chan error            { return f.err }
func (f *future) Msg() *nats.Msg               { return f.msg }

// Harness runs one processor (or sink) in a stage.Runner on an in-memory
// source.
type Harness struct {
	Runner *stage.Runner
	Pub    *Publisher

	t        testing.TB
	in       chan delivery
	cancel   context.CancelFunc
	stopped  chan struct{}
	runErr   error
	mu       sync.Mutex
	attempts map[string]uint64
	later    *laterAcks
}

// LaterAcks counts the acks a runner took for later
// (bus.Delivery.AckLater: stage.Config.AckAfterCheckpoint): Waiting ones
// not given yet, then Acked or GivenBack (to the stream, for redelivery).
type LaterAcks struct{ Waiting, Acked, GivenBack int }

// Later returns the counts of the acks taken for later.
func (h *Harness) Later() LaterAcks {
	h.later.mu.Lock()
	defer h.later.mu.Unlock()
	return h.later.n
}

// laterAcks counts the acks taken for later as they come.
type laterAcks struct {
	mu sync.Mutex
	n  LaterAcks
}

// ackLater is a delivery's bus.Delivery.AckLater.
func (l *laterAcks) ackLater() func(error) {
	l.mu.Lock()
	l.n.Waiting++
	l.mu.Unlock()
	var once sync.Once
	return func(err error) {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			l.n.Waiting--
			if err == nil {
				l.n.Acked++
			} else {
				l.n.GivenBack++
			}
		})
	}
}

type delivery struct {
	data   []byte
	n      uint64
	result chan Result
	handed chan struct{} // closed once the runner's handler returned
}

// Start runs proc in a runner with cfg (Name defaults to "test") and stops
// it when the test ends. The runner ticks only when the test calls Tick.
func Start(t testing.TB, proc any, cfg stage.Config, opts ...stage.Option) *Harness {
	t.Helper()
	if cfg.Name == "" {
		cfg.Name = "test"
	}
	pub := NewPublisher()
	// Ticks happen when the test calls Tick, never on the wall clock.
	r, err := stage.NewRunner(proc, cfg, pub, zerolog.Nop(), append([]stage.Option{stage.WithManualTicks()}, opts...)...)
	if err != nil {
		t.Fatalf("stagetest: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &Harness{Runner: r, Pub: pub, t: t, in: make(chan delivery), cancel: cancel, stopped: make(chan struct{}), attempts: map[string]uint64{}, later: &laterAcks{}}
	go func() {
		defer close(h.stopped)
		h.runErr = r.Run(ctx, source{h.in, r.Config().DrainTimeout, h.later})
	}()
	t.Cleanup(func() { h.Stop() })
	return h
}

// Stop cancels the runner and waits for its drain; it returns Run's error.
func (h *Harness) Stop() error {
	h.cancel()
	<-h.stopped
	return h.runErr
}

// Feed delivers each envelope in turn and waits for its result. Feeding an
// envelope again is its redelivery.
func (h *Harness) Feed(es ...*event.Envelope) []Result {
	h.t.Helper()
	out := make([]Result, len(es))
	for i, e := range es {
		data, err := e.MarshalJSON()
		if err != nil {
			h.t.Fatalf("stagetest: encoding %s: %v", e.ID, err)
		}
		out[i] = h.FeedRaw(data)
	}
	return out
}

// Held is an input a sink may hold: its result comes when the sink
// settles it.
type Held struct{ result chan Result }

// Result is the input's result, if it was settled.
func (p *Held) Result() (Result, bool) {
	select {
	case r := <-p.result:
		p.result <- r // keep it for the next look
		return r, true
	default:
		return Result{}, false
	}
}

// Send delivers an envelope without waiting for its result: a sink that
// holds inputs (until a batch fills, until a timer fires) settles it
// later; look with Held.Result. It returns once the runner took the input
// (a sink's Write returned).
func (h *Harness) Send(e *event.Envelope) *Held {
	h.t.Helper()
	data, err := e.MarshalJSON()
	if err != nil {
		h.t.Fatalf("stagetest: encoding %s: %v", e.ID, err)
	}
	d := h.deliver(data)
	select {
	case <-d.handed:
	case <-time.After(time.Minute):
		h.t.Fatal("stagetest: the runner did not take the input within a minute")
	}
	return &Held{result: d.result}
}

// FeedRaw delivers raw bytes and waits for their result.
func (h *Harness) FeedRaw(data []byte) Result {
	h.t.Helper()
	d := h.deliver(data)
	select {
	case r := <-d.result:
		return r
	case <-time.After(time.Minute):
		h.t.Fatal("stagetest: no result within a minute")
		return Result{}
	}
}

// deliver hands data to the runner as its next delivery.
func (h *Harness) deliver(data []byte) delivery {
	h.t.Helper()
	h.mu.Lock()
	h.attempts[string(data)]++
	n := h.attempts[string(data)]
	h.mu.Unlock()
	d := delivery{data: data, n: n, result: make(chan Result, 1), handed: make(chan struct{})}
	select {
	case h.in <- d:
	case <-h.stopped:
		h.t.Fatal("stagetest: fed after the runner stopped")
	}
	return d
}

// Tick runs the processor's periodic work for the boundary now.
func (h *Harness) Tick(now time.Time) error { return h.Runner.Tick(context.Background(), now) }

// source hands the harness's deliveries to the runner; after cancellation
// it waits up to the drain timeout for the results of what it handed out,
// as bus.Consumer does.
type source struct {
	in    chan delivery
	drain time.Duration
	later *laterAcks
}

func (s source) Run(ctx context.Context, h bus.AsyncHandler) error {
	var wg sync.WaitGroup
	for {
		select {
		case <-ctx.Done():
			all := make(chan struct{})
			go func() { wg.Wait(); close(all) }()
			select {
			case <-all:
				return nil
			case <-time.After(s.drain):
				return fmt.Errorf("%w: after %s", bus.ErrDrainTimeout, s.drain)
			}
		case d := <-s.in:
			wg.Add(1)
			var once sync.Once
			h(context.WithoutCancel(ctx), &bus.Delivery{Subject: "test", Data: d.data, Delivered: d.n, Published: time.Now(), AckLater: s.later.ackLater}, func(err error) {
				once.Do(func() {
					d.result <- resultOf(err)
					wg.Done()
				})
			})
			close(d.handed)
		}
	}
}
