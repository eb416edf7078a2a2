package bus

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/nats-io/nats.go"
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
	// count over max_msgs or their bytes over max_bytes, whichever is
	// larger (bytes at the stream's mean message size or, for a consumer
	// of the whole stream, at a few of them read if larger, and never more
	// than the stream holds); 0 for a stream without either limit. For a consumer of the whole stream (the writer) they
	// are every message from its oldest unacked one on, those acked out of
	// order after it included, since the stream discards from its head:
	// at 1 the next message stored discards one it has not acked. A consumer
	// of a few subjects that holds a message while the others move on
	// loses it once the stream rolls past it, whatever the ratio: the
	// server does not tell which messages are held, only the consumer
	// knows.
	Ratio float64
	// StreamMaxBytes is the stream's max_bytes as looked at (0 or less:
	// none): it changes while a consumer runs (streams.max_bytes is
	// applied by each service's start).
	StreamMaxBytes int64
}

// ConsumerBacklog asks the server for the consumer's backlog on its
// stream: two requests, the stream's state and the consumer's, and for a
// consumer of the whole stream sizeSamples more, to weigh what it has
// not acked.
func ConsumerBacklog(ctx context.Context, js jetstream.JetStream, stream, durable string) (Backlog, error) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return Backlog{}, fmt.Errorf("bus: backlog of %s on %s: stream: %w", durable, stream, err)
	}
	c, err := s.Consumer(ctx, durable)
	if err != nil {
		return Backlog{}, fmt.Errorf("bus: backlog of %s on %s: consumer: %w", durable, stream, err)
	}
	return backlogAt(ctx, s, c.CachedInfo()), nil
}

// sizeSamples is how many of a whole-stream consumer's unacked messages
// are read to weigh them, from the first to the last (sampleAt): enough
// to see a shift in size (large logs after small samples) without
// reading much at each look.
const sizeSamples = 5

// backlogAt is the backlog of the consumer c on the stream s, its info
// fetched just now, its unacked messages weighed by estimatedBytes.
func backlogAt(ctx context.Context, s jetstream.Stream, c *jetstream.ConsumerInfo) Backlog {
	info := s.CachedInfo()
	from, to, whole := unackedSpan(info, c)
	var size float64
	if whole {
		size = sampledSize(ctx, s, from, to)
	}
	return backlogOf(info, c, estimatedBytes(info, c, size))
}

// backlogOf is c's backlog on s, its unacked messages taking bytes of
// the stream's.
func backlogOf(s *jetstream.StreamInfo, c *jetstream.ConsumerInfo, bytes float64) Backlog {
	b := Backlog{Unacked: c.NumPending + uint64(c.NumAckPending), StreamMaxBytes: s.Config.MaxBytes}
	if b.Unacked == 0 {
		return b
	}
	if limit := s.Config.MaxMsgs; limit > 0 {
		b.Ratio = float64(unackedCount(s, c)) / float64(limit)
	}
	if limit := s.Config.MaxBytes; limit > 0 {
		if r := bytes / float64(limit); r > b.Ratio {
			b.Ratio = r
		}
	}
	return b
}

// unackedCount is how many of s's messages c's backlog spans: from its
// oldest unacked one to the stream's end for a consumer of the whole
// stream (unackedSpan), those it has not acked for the others.
func unackedCount(s *jetstream.StreamInfo, c *jetstream.ConsumerInfo) uint64 {
	n := c.NumPending + uint64(c.NumAckPending)
	if from, to, whole := unackedSpan(s, c); whole {
		n = max(n, to-from+1)
	}
	return n
}

// estimatedBytes weighs c's unacked messages at the stream's mean message
// size, or at sampled, their own mean size as read (0: not read), when
// that is larger. The stream does not say how many bytes they take; the
// mean alone makes large events after small ones look like a fraction of
// what they take, and the gateway would refuse only once the stream had
// no room left. The larger of the two errs toward refusing early, but
// never past what the stream holds: they are part of it, and a few
// samples that fell on its largest messages (a 30 KB log every ten small
// events, read at every 250th) made 4.5 times the limit of a stream at
// half of it, all unacked. It still reads low when large messages are
// under half of them but most of their bytes: StreamSizes weighs them
// as they are.
func estimatedBytes(s *jetstream.StreamInfo, c *jetstream.ConsumerInfo, sampled float64) float64 {
	if s.State.Msgs == 0 {
		return 0
	}
	size := max(float64(s.State.Bytes)/float64(s.State.Msgs), sampled)
	return min(float64(unackedCount(s, c))*size, float64(s.State.Bytes))
}

// unackedSpan is the stream sequences from c's oldest unacked message to
// the stream's end, for a consumer of the whole stream (whole). The
// stream discards from its head, acked or not, so what such a consumer
// loses next runs from there, the messages acked out of order after it
// included (the writer acks out of order: its inserts return in any
// order). For a consumer of some subjects the other subjects' messages
// lie in between and its oldest unacked one is not known: not whole.
func unackedSpan(s *jetstream.StreamInfo, c *jetstream.ConsumerInfo) (from, to uint64, whole bool) {
	if c.NumPending+uint64(c.NumAckPending) == 0 || !readsWholeStream(s, c) {
		return 0, 0, false
	}
	floor := c.AckFloor.Stream
	if first := s.State.FirstSeq; first > 0 && first-1 > floor {
		floor = first - 1 // the stream moved past it: those are gone
	}
	last := s.State.LastSeq
	if last <= floor {
		return 0, 0, false
	}
	if n := s.State.Msgs; n > 0 && last-floor > n {
		floor = last - n // deleted messages in between take no room
	}
	return floor + 1, last, true
}

// sampledSize reads up to sizeSamples messages spread over from..to and
// returns their median size as the stream stores them, 0 when it read
// none (deleted, discarded meanwhile, or the server slow: the stream's
// mean is used then). The median, not the mean: on a steady mix (one
// event in ten large) the stream's mean is right, and a few samples that
// happen on the large ones made the mean of samples read twice to ten
// times that, so the gateway refused with half the limit free; a burst of
// large events, most of what waits, moves the median all the same. The
// samples are spread unevenly (sampleAt), so that a mix repeating at
// their spacing does not put them all on one kind.
func sampledSize(ctx context.Context, s jetstream.Stream, from, to uint64) float64 {
	var sizes []int
	var last uint64
	for i, at := range sampleAt {
		seq := from + (to-from)*at/1000
		if i > 0 && seq == last {
			continue
		}
		last = seq
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			continue
		}
		sizes = append(sizes, storedSize(m.Subject, readHeader(m, s.CachedInfo().Config), len(m.Data), s.CachedInfo().Config))
	}
	if len(sizes) == 0 {
		return 0
	}
	slices.Sort(sizes)
	n := len(sizes)
	return float64(sizes[(n-1)/2]+sizes[n/2]) / 2
}

// sampleAt are where sampledSize reads, in thousandths of the span: from
// its first message to its last, at uneven steps.
var sampleAt = [sizeSamples]uint64{0, 230, 490, 740, 1000}

// storedSize is what a stream of config cfg counts in its bytes for a
// message of subject, header and data bytes of data: subject, headers as
// sent and data, plus the store's own record around them (the server's
// memStoreMsgSize and fileStoreMsgSize).
func storedSize(subject string, header nats.Header, data int, cfg jetstream.StreamConfig) int {
	headers := 0
	for k, vs := range header {
		for _, v := range vs {
			headers += len(k) + len(": \r\n") + len(v)
		}
	}
	if headers > 0 {
		headers += len("NATS/1.0\r\n\r\n")
	}
	size := len(subject) + headers + data
	if cfg.Storage == jetstream.MemoryStorage {
		return size + 16 // sequence and time
	}
	size += 30 // record length, sequence, time, subject length, checksum
	if headers > 0 {
		size += 4 // headers' length
	}
	return size
}

// readHeader is m's header as stored. A stream that allows direct gets
// answers GetMsg with one, whose answer carries directGetHeaders of the
// server's besides the message's own (a message sent without headers
// gets a header block of those alone): they are not stored, and left
// out.
func readHeader(m *jetstream.RawStreamMsg, cfg jetstream.StreamConfig) nats.Header {
	if !cfg.AllowDirect {
		return m.Header
	}
	h := maps.Clone(m.Header)
	for _, k := range directGetHeaders {
		h.Del(k)
	}
	return h
}

// directGetHeaders are the headers the server adds to a direct get's
// answer (its dg format).
var directGetHeaders = []string{jetstream.StreamHeader, jetstream.SubjectHeader, jetstream.SequenceHeader, jetstream.TimeStampHeaer}

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
