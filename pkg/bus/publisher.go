package bus

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/aiops-dev/aiops/pkg/errs"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Message is one publish. ID becomes the Nats-Msg-Id header, so a stream
// stores a retried publish once within its duplicate window.
type Message struct {
	Subject string
	ID      string
	Header  nats.Header
	Data    []byte
}

// Sentinel errors of Publish; all are permanent (the message is wrong, not the
// server).
var (
	ErrMissingID      = errors.New("bus: message has no id")
	ErrIDTooLong      = errors.New("bus: message id too long")
	ErrInvalidSubject = errors.New("bus: invalid publish subject")
)

// MaxIDLength bounds message ids: the id travels in a header of every message
// and the stream keeps it for the duplicate window.
const MaxIDLength = 256

// Publisher publishes asynchronously with a bounded number of publishes
// awaiting their ack, so a producer faster than the server blocks instead of
// growing memory without bound.
type Publisher struct {
	js         jetstream.JetStream
	inFlight   chan struct{}
	ackTimeout time.Duration

	// held maps each message that took a slot to nothing, so that a slot is
	// freed exactly once. nats.go may both fail the publish call and call
	// the error handler for the same message: when the connection starts
	// reconnecting between registering the publish and writing it, every
	// pending publish is failed by a status goroutine while the write
	// itself fails too. Counting releases on the channel alone then took
	// a second slot back, and with none left the publishing goroutine
	// blocked forever (TestPublisherSlotsSurviveDisconnects).
	mu   sync.Mutex
	held map[*nats.Msg]struct{}
}

type publisherOptions struct {
	maxInFlight int
	ackTimeout  time.Duration
}

// PublisherOption configures NewPublisher.
type PublisherOption func(*publisherOptions) error

// WithMaxInFlight bounds publishes awaiting their ack (default 4096).
func WithMaxInFlight(n int) PublisherOption {
	return func(o *publisherOptions) error {
		if n < 1 {
			return invalid("max in flight", "%d, want >= 1", n)
		}
		o.maxInFlight = n
		return nil
	}
}

// DefaultPublishAckTimeout is how long a publish waits for its ack unless
// WithAckTimeout says otherwise.
const DefaultPublishAckTimeout = 30 * time.Second

// WithAckTimeout fails a publish whose ack has not come after d (default
// DefaultPublishAckTimeout), so a lost ack cannot hold an in-flight slot
// forever.
func WithAckTimeout(d time.Duration) PublisherOption {
	return func(o *publisherOptions) error {
		if d <= 0 {
			return invalid("ack timeout", "%s, want > 0", d)
		}
		o.ackTimeout = d
		return nil
	}
}

// NewPublisher returns a publisher on js's connection. It keeps its own
// JetStream context so that its in-flight accounting and Flush cover only its
// own publishes, not those of other users of js.
func NewPublisher(js jetstream.JetStream, opts ...PublisherOption) (*Publisher, error) {
	o := publisherOptions{maxInFlight: 4096, ackTimeout: DefaultPublishAckTimeout}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	p := &Publisher{inFlight: make(chan struct{}, o.maxInFlight), ackTimeout: o.ackTimeout, held: make(map[*nats.Msg]struct{})}
	pjs, err := jetstream.New(js.Conn(),
		jetstream.WithPublishAsyncMaxPending(o.maxInFlight),
		jetstream.WithPublishAsyncTimeout(o.ackTimeout),
		// Every publish that got a future ends in exactly one of these two
		// callbacks (ack, error, timeout or disconnect), which frees its slot
		// without a goroutine per message.
		jetstream.WithPublishAsyncAckHandler(func(_ jetstream.JetStream, m *nats.Msg, _ *jetstream.PubAck) { p.release(m) }),
		jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, m *nats.Msg, _ error) { p.release(m) }),
	)
	if err != nil {
		return nil, fmt.Errorf("bus: publisher: %w", err)
	}
	p.js = pjs
	return p, nil
}

func checkPublish(m *Message) error {
	if m.ID == "" {
		return errs.Permanent(fmt.Errorf("%w (subject %q)", ErrMissingID, m.Subject))
	}
	if len(m.ID) > MaxIDLength {
		return errs.Permanent(fmt.Errorf("%w: %d bytes, the limit is %d", ErrIDTooLong, len(m.ID), MaxIDLength))
	}
	if m.Subject == "" || strings.ContainsAny(m.Subject, " \t\r\n*>") ||
		m.Subject[0] == '.' || m.Subject[len(m.Subject)-1] == '.' || strings.Contains(m.Subject, "..") {
		return errs.Permanent(fmt.Errorf("%w: %q", ErrInvalidSubject, m.Subject))
	}
	return nil
}

// Publish sends m without waiting for the ack; the returned future delivers
// it. It blocks while the in-flight bound is reached, until ctx is done. The
// publisher takes ownership of m.Header (it sets Nats-Msg-Id there) and m.Data
// until the ack arrives.
func (p *Publisher) Publish(ctx context.Context, m Message) (jetstream.PubAckFuture, error) {
	if err := checkPublish(&m); err != nil {
		return nil, err
	}
	select {
	case p.inFlight <- struct{}{}:
	default:
		select {
		case p.inFlight <- struct{}{}:
		case <-ctx.Done():
			return nil, fmt.Errorf("bus: publish %s: waiting for an in-flight slot: %w", m.ID, ctx.Err())
		}
	}
	h := m.Header
	if h == nil {
		h = make(nats.Header, 1)
	}
	h[jetstream.MsgIDHeader] = []string{m.ID}
	msg := &nats.Msg{Subject: m.Subject, Header: h, Data: m.Data}
	p.mu.Lock()
	p.held[msg] = struct{}{}
	p.mu.Unlock()
	f, err := p.js.PublishMsgAsync(msg)
	if err != nil {
		// Usually no callback will come for a publish without a future;
		// release is idempotent for the case where one came anyway.
		p.release(msg)
		return nil, fmt.Errorf("bus: publish %s to %s: %w", m.ID, m.Subject, err)
	}
	return f, nil
}

// release frees the slot msg took, once, however many times it is called.
func (p *Publisher) release(msg *nats.Msg) {
	p.mu.Lock()
	_, ok := p.held[msg]
	delete(p.held, msg)
	p.mu.Unlock()
	if ok {
		<-p.inFlight
	}
}

// PublishAll publishes every message asynchronously and returns only after
// each one was acked by the stream, so a caller may then tell its own client
// the data is safe. On failure the error names the index of the first message
// that failed; messages before and after it may be stored, and retrying the
// whole batch with the same ids is safe thanks to the duplicate window.
func (p *Publisher) PublishAll(ctx context.Context, ms []Message) ([]*jetstream.PubAck, error) {
	for i := range ms {
		if err := checkPublish(&ms[i]); err != nil {
			return nil, fmt.Errorf("bus: message %d: %w", i, err)
		}
	}
	futures := make([]jetstream.PubAckFuture, len(ms))
	for i := range ms {
		f, err := p.Publish(ctx, ms[i])
		if err != nil {
			return nil, fmt.Errorf("bus: message %d of %d: %w", i, len(ms), err)
		}
		futures[i] = f
	}
	acks := make([]*jetstream.PubAck, len(ms))
	for i, f := range futures {
		select {
		case a := <-f.Ok():
			acks[i] = a
		case err := <-f.Err():
			return nil, fmt.Errorf("bus: message %d of %d (id %s): %w", i, len(ms), ms[i].ID, err)
		case <-ctx.Done():
			return nil, fmt.Errorf("bus: message %d of %d (id %s): waiting for ack: %w", i, len(ms), ms[i].ID, ctx.Err())
		}
	}
	return acks, nil
}

// Flush waits until every publish of this publisher was acked or failed.
func (p *Publisher) Flush(ctx context.Context) error {
	if p.js.PublishAsyncPending() == 0 {
		return nil
	}
	select {
	case <-p.js.PublishAsyncComplete():
		return nil
	case <-ctx.Done():
		return fmt.Errorf("bus: flush: %d publish(es) still awaiting ack: %w", p.js.PublishAsyncPending(), ctx.Err())
	}
}

// InFlight is the number of publishes awaiting their ack.
func (p *Publisher) InFlight() int { return len(p.inFlight) }
