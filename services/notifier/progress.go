package notifier

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
)

// The notifier holds an incident event unsettled until its notification
// went out, and that can take longer than ack_wait: a slow or failing
// receiver holds the notes queued behind it in its lane, each for up to
// the retry budget. JetStream would redeliver such an event although it
// is being handled (counting it against max_deliver, which dead-letters
// it in the end). So, as JetStream intends, every event held longer than
// a third of ack_wait is told in progress (msg.InProgress, which restarts
// its ack_wait), again every third of ack_wait, until it is settled. A
// notifier that dies stops telling, and its events come again after
// ack_wait.
//
// The stage's consumer (pkg/bus) hands the notifier an envelope, not the
// message, so the messages are tracked where they come from: the
// JetStream the consumer is given wraps the consumer it makes, whose
// fetches wrap every message; a message's Ack, Nak or Term ends its
// tracking.

// heldMsgs are the messages fetched and not settled yet, each with when
// it was delivered or last told in progress.
type heldMsgs struct {
	mu    sync.Mutex
	since map[*heldMsg]time.Time
	// told counts InProgress signals sent.
	told atomic.Uint64
}

func newHeldMsgs() *heldMsgs { return &heldMsgs{since: map[*heldMsg]time.Time{}} }

// len is the number of messages held.
func (h *heldMsgs) len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.since)
}

func (h *heldMsgs) track(m jetstream.Msg) jetstream.Msg {
	hm := &heldMsg{Msg: m, held: h}
	h.mu.Lock()
	h.since[hm] = time.Now()
	h.mu.Unlock()
	return hm
}

func (h *heldMsgs) settled(m *heldMsg) {
	h.mu.Lock()
	delete(h.since, m)
	h.mu.Unlock()
}

// keepInProgress tells every message held for a third of ackWait that
// it is in progress, checking every sixth of it, until ctx ends: no held
// message goes half of ackWait without a signal.
func (h *heldMsgs) keepInProgress(ctx context.Context, ackWait time.Duration, log zerolog.Logger) {
	if ackWait <= 0 {
		return
	}
	after := ackWait / 3
	t := time.NewTicker(after / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			// Under the lock, which a message's settling takes before it
			// acks or naks: an in-progress signal sent after a nak would
			// turn the nak's short delay (a stop hands events back at
			// once) into a whole ack_wait. InProgress only publishes; it
			// does not wait for the server.
			failed := 0
			var failure error
			h.mu.Lock()
			for m, since := range h.since {
				if now.Sub(since) < after {
					continue
				}
				h.since[m] = now
				switch err := m.Msg.InProgress(); {
				case err == nil:
					h.told.Add(1)
				case errors.Is(err, jetstream.ErrMsgAlreadyAckd) || errors.Is(err, jetstream.ErrMsgNoReply) || errors.Is(err, jetstream.ErrMsgNotBound):
					delete(h.since, m) // settled meanwhile, or nothing to settle
				default:
					// Tried again at the next check; the server redelivers
					// it if the connection stays down past ack_wait.
					failed, failure = failed+1, err
				}
			}
			h.mu.Unlock()
			if failed > 0 {
				log.Warn().Err(failure).Int("events", failed).Msg("telling held incident events in progress failed; tried again")
			}
		}
	}
}

// heldMsg is a fetched message, tracked until it is settled.
type heldMsg struct {
	jetstream.Msg
	held *heldMsgs
}

func (m *heldMsg) Ack() error { m.held.settled(m); return m.Msg.Ack() }

func (m *heldMsg) DoubleAck(ctx context.Context) error {
	m.held.settled(m)
	return m.Msg.DoubleAck(ctx)
}

func (m *heldMsg) Nak() error { m.held.settled(m); return m.Msg.Nak() }

func (m *heldMsg) NakWithDelay(d time.Duration) error {
	m.held.settled(m)
	return m.Msg.NakWithDelay(d)
}

func (m *heldMsg) Term() error { m.held.settled(m); return m.Msg.Term() }

func (m *heldMsg) TermWithReason(reason string) error {
	m.held.settled(m)
	return m.Msg.TermWithReason(reason)
}

// trackingJS is the JetStream the notifier's consumer is given: the
// consumer it creates (bus.EnsureConsumer keeps the one
// CreateOrUpdateConsumer returns) tracks what it fetches in held.
type trackingJS struct {
	jetstream.JetStream
	held *heldMsgs
}

func (j trackingJS) CreateOrUpdateConsumer(ctx context.Context, stream string, cfg jetstream.ConsumerConfig) (jetstream.Consumer, error) {
	c, err := j.JetStream.CreateOrUpdateConsumer(ctx, stream, cfg)
	if err != nil {
		return nil, err
	}
	return trackingConsumer{Consumer: c, held: j.held}, nil
}

type trackingConsumer struct {
	jetstream.Consumer
	held *heldMsgs
}

func (c trackingConsumer) Fetch(batch int, opts ...jetstream.FetchOpt) (jetstream.MessageBatch, error) {
	mb, err := c.Consumer.Fetch(batch, opts...)
	if err != nil {
		return nil, err
	}
	tb := &trackingBatch{MessageBatch: mb, msgs: make(chan jetstream.Msg)}
	go func() {
		defer close(tb.msgs)
		for m := range mb.Messages() {
			tb.msgs <- c.held.track(m)
		}
	}()
	return tb, nil
}

// trackingBatch is a fetch whose messages are tracked. Error, as for any
// batch, is read once Messages is closed.
type trackingBatch struct {
	jetstream.MessageBatch
	msgs chan jetstream.Msg
}

func (b *trackingBatch) Messages() <-chan jetstream.Msg { return b.msgs }
