package bus

import (
	"context"
	"fmt"
	"slices"

	"github.com/nats-io/nats.go/jetstream"
)

// Backlog is what one consumer has not acked of its stream, against the
// stream's limit. The streams discard their oldest messages past
// max_bytes or max_msgs, acked or not (DefaultStreams), so a consumer
// whose backlog reaches the whole limit loses messages it never
// processed: for the writer, events the gateway answered 200 for and
// ClickHouse never got.
type Backlog struct {
	// Unacked counts the messages not handed to the consumer yet and
	// those handed and not acked (num_pending + num_ack_pending).
	Unacked uint64
	// Ratio is the part of the stream's limit those messages take: their
	// count over max_msgs or, at the stream's mean message size, their
	// bytes over max_bytes, whichever is larger; 0 for a stream without
	// either limit. For a consumer of the whole stream (the writer) they
	// are every message from its oldest unacked one on, those acked out of
	// order after it included, since the stream discards from its head:
	// at 1 the next message stored discards one it has not acked. A consumer
	// of a few subjects that holds a message while the others move on
	// loses it once the stream rolls past it, whatever the ratio: the
	// server does not tell which messages are held, only the consumer
	// knows.
	Ratio float64
}

// ConsumerBacklog asks the server for the consumer's backlog on its
// stream: two requests, the stream's state and the consumer's.
func ConsumerBacklog(ctx context.Context, js jetstream.JetStream, stream, durable string) (Backlog, error) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return Backlog{}, fmt.Errorf("bus: backlog of %s on %s: stream: %w", durable, stream, err)
	}
	c, err := s.Consumer(ctx, durable)
	if err != nil {
		return Backlog{}, fmt.Errorf("bus: backlog of %s on %s: consumer: %w", durable, stream, err)
	}
	return backlogOf(s.CachedInfo(), c.CachedInfo()), nil
}

func backlogOf(s *jetstream.StreamInfo, c *jetstream.ConsumerInfo) Backlog {
	b := Backlog{Unacked: c.NumPending + uint64(c.NumAckPending)}
	if b.Unacked == 0 {
		return b
	}
	// The stream discards from its head, acked or not: for a consumer of
	// the whole stream, what is lost next runs from its oldest unacked
	// message to the end, the messages acked after that one included (the
	// writer acks out of order: its inserts return in any order). For a
	// consumer of some subjects the other subjects' messages lie in between,
	// and the oldest unacked one is not known: its count is what there is.
	span := b.Unacked
	if readsWholeStream(s, c) {
		floor := c.AckFloor.Stream
		if first := s.State.FirstSeq; first > 0 && first-1 > floor {
			floor = first - 1 // the stream moved past it: those are gone
		}
		if last := s.State.LastSeq; last > floor {
			span = max(span, min(last-floor, s.State.Msgs))
		}
	}
	if max := s.Config.MaxMsgs; max > 0 {
		b.Ratio = float64(span) / float64(max)
	}
	if max := s.Config.MaxBytes; max > 0 && s.State.Msgs > 0 {
		// The stream does not say how many bytes the unacked messages
		// take; the mean size is near enough for events of one kind mix.
		mean := float64(s.State.Bytes) / float64(s.State.Msgs)
		if r := float64(span) * mean / float64(max); r > b.Ratio {
			b.Ratio = r
		}
	}
	return b
}

// readsWholeStream tells whether c's filter takes every subject of s.
func readsWholeStream(s *jetstream.StreamInfo, c *jetstream.ConsumerInfo) bool {
	filters := c.Config.FilterSubjects
	if c.Config.FilterSubject != "" {
		filters = append(filters, c.Config.FilterSubject)
	}
	if len(filters) == 0 {
		return true
	}
	for _, subject := range s.Config.Subjects {
		if !slices.Contains(filters, subject) {
			return false
		}
	}
	return true
}
