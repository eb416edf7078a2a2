package bus

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// StreamSizes follows what a stream's messages take of its bytes, reading
// their headers only (an ordered consumer with HeadersOnly: the server
// sends each message's headers and its data's length, Nats-Msg-Size), so
// that a consumer's backlog is weighed at what its messages take, whatever
// their mix of sizes, and a look reads no message (Backlog). It costs the
// server a delivery of some 150 bytes per message stored, whatever its
// size, and keeps sizeBlock's 16 bytes per block of the messages the
// stream holds.
type StreamSizes struct {
	js     jetstream.JetStream
	stream string

	mu          sync.Mutex
	cfg         jetstream.StreamConfig // as last looked at: how it stores a message, its limits
	made        time.Time              // the stream's creation, as started on: another is a new stream
	follow      jetstream.ConsumeContext
	blocks      []sizeBlock // in stream order, the stream's first message's on
	bytes       uint64      // the blocks'
	taken       uint64      // what every message read took, over every start, but those held at it (ReadBytes)
	lastAtStart uint64      // the stream's last sequence as started on: those up to it are not taken
	next        uint64      // the sequence after the last one read; 0: none read
	run         int         // counts the starts: a message read for an earlier one is dropped
	stopped     bool        // Stop was called: no start any more
	broken      error       // a message came without its size: not weighed
}

// sizeBlock is what the messages from sequence first to the next block's
// first take of the stream's bytes. A block takes messages while it spans
// under blockSeqs sequences and blockBytes bytes: a block is what the
// estimate can be off by (Backlog), and the blocks take 16 bytes per 64
// messages, a quarter of a byte each, while the messages are small.
type sizeBlock struct {
	first, bytes uint64
}

// msgSizeHeader is the header in which a headers-only consumer gets a
// message's data length (the server's JSMsgSize).
const msgSizeHeader = "Nats-Msg-Size"

const (
	blockSeqs  = 64
	blockBytes = 64 << 10
)

// FollowSizes starts following the sizes of stream's messages from its
// first one; Stop ends it. Until then the collectors of consumers of the
// stream on the same connection weigh their backlog by it (followerOf).
func FollowSizes(ctx context.Context, js jetstream.JetStream, stream string) (*StreamSizes, error) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return nil, fmt.Errorf("bus: following the sizes of %s: %w", stream, err)
	}
	f := &StreamSizes{js: js, stream: stream}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.start(ctx, s); err != nil {
		return nil, err
	}
	followingMu.Lock()
	defer followingMu.Unlock()
	key := followKey{js.Conn(), stream}
	following[key] = append(following[key], f)
	return f, nil
}

// following holds the StreamSizes of this process that follow a stream,
// by connection and stream, in the order they started: the gateway's
// follows EVENTS, and in aiops run the writer's consumer, on the same
// connection, is weighed by it rather than by a follower of its own. It
// holds each follower until it stops, not one a key: aiops run has two
// of EVENTS (the gateway's and the log miner's), and either may stop
// first.
var (
	followingMu sync.Mutex
	following   = map[followKey][]*StreamSizes{}
)

type followKey struct {
	nc     *nats.Conn
	stream string
}

// followerOf is the StreamSizes following stream on js's connection, nil
// when there is none: the one that started first, which has read the
// most of the stream.
func followerOf(js jetstream.JetStream, stream string) *StreamSizes {
	followingMu.Lock()
	defer followingMu.Unlock()
	if fs := following[followKey{js.Conn(), stream}]; len(fs) > 0 {
		return fs[0]
	}
	return nil
}

// unfollow takes f out of following.
func unfollow(f *StreamSizes) {
	followingMu.Lock()
	defer followingMu.Unlock()
	key := followKey{f.js.Conn(), f.stream}
	fs := slices.DeleteFunc(following[key], func(g *StreamSizes) bool { return g == f })
	if len(fs) == 0 {
		delete(following, key)
		return
	}
	following[key] = fs
}

// start (re)starts following s from its first message, under mu or before
// f is shared; s's info is as last looked at: the messages up to its last
// one are not counted in ReadBytes.
func (f *StreamSizes) start(ctx context.Context, s jetstream.Stream) error {
	c, err := f.js.OrderedConsumer(ctx, f.stream, jetstream.OrderedConsumerConfig{HeadersOnly: true})
	if err != nil {
		return fmt.Errorf("bus: following the sizes of %s: %w", f.stream, err)
	}
	run := f.run + 1
	// The ordered consumer recreates itself after a disconnect or a
	// missed message from the sequence after the last one handed here,
	// so none is read twice or skipped (but for those gone meanwhile).
	// What it reads waits for mu, held here: the state is set anew
	// before, and only once it follows (a start that failed is tried
	// again at the next look, the stream still not the one followed).
	cc, err := c.Consume(func(m jetstream.Msg) { f.read(run, m) }, jetstream.PullMaxMessages(4096))
	if err != nil {
		return fmt.Errorf("bus: following the sizes of %s: %w", f.stream, err)
	}
	info := s.CachedInfo()
	f.cfg, f.made, f.lastAtStart = info.Config, info.Created, info.State.LastSeq
	f.blocks, f.bytes, f.next, f.broken = nil, 0, 0, nil
	f.run, f.follow = run, cc
	return nil
}

// ReadBytes is what every message read so far took of the stream's
// bytes, over every start, but for those the stream held as it started:
// it grows by what each producer stores (every gateway, the stages,
// producers on NATS), once the follower read it, a delivery after the
// store. The messages held at a start are read too (FollowSizes, and a
// start over on a new stream at a look), but are not counted: they were
// not just stored, and a caller that counts what the stream took since a
// look (the gateway's guard, the log miner's room) took a follower's
// catch-up on a large stream for that much stored since, and refused
// room the stream had: its looks weigh them.
func (f *StreamSizes) ReadBytes() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.taken
}

// Stop ends following; Backlog weighs as ConsumerBacklog does after it.
func (f *StreamSizes) Stop() {
	unfollow(f)
	f.mu.Lock()
	f.stopped = true
	follow := f.follow
	f.mu.Unlock()
	// Not under mu: an ordered consumer resetting (its stream deleted)
	// holds its own lock through backoffs of up to 10 s, and looks would
	// wait on mu that long.
	follow.Stop()
}

// read takes one message's size, read by the follower of start number run.
func (f *StreamSizes) read(run int, m jetstream.Msg) {
	meta, err := m.Metadata()
	if err != nil {
		return // not a message of the stream's
	}
	header := m.Headers()
	data, err := strconv.Atoi(header.Get(msgSizeHeader))
	f.mu.Lock()
	defer f.mu.Unlock()
	seq := meta.Sequence.Stream
	if run != f.run || seq < f.next {
		return // a stopped follower's, or one read already
	}
	if err != nil {
		f.broken = fmt.Errorf("bus: message %d of %s came without its size (%s): %w", seq, f.stream, msgSizeHeader, err)
		return
	}
	header.Del(msgSizeHeader) // the server's, not stored
	size := uint64(storedSize(m.Subject(), header, data, f.cfg))
	if n := len(f.blocks); n == 0 || seq-f.blocks[n-1].first >= blockSeqs || f.blocks[n-1].bytes >= blockBytes {
		f.blocks = append(f.blocks, sizeBlock{first: seq})
		f.dropBeyondLimits(seq)
	}
	f.blocks[len(f.blocks)-1].bytes += size
	f.bytes += size
	if seq > f.lastAtStart {
		f.taken += size
	}
	f.next = seq + 1
}

// dropBeyondLimits drops the blocks the stream cannot hold any more, seq
// stored: those before max_msgs messages or max_bytes bytes from its end.
// A look drops what the stream discarded too (heldBytes), but without
// looks (a gateway with no requests, not scraped, while others publish)
// the blocks would grow with every message stored.
func (f *StreamSizes) dropBeyondLimits(seq uint64) {
	drop := 0
	for ; drop+1 < len(f.blocks); drop++ {
		b, next := f.blocks[drop], f.blocks[drop+1]
		gone := f.cfg.MaxBytes > 0 && f.bytes-b.bytes >= uint64(f.cfg.MaxBytes) ||
			f.cfg.MaxMsgs > 0 && next.first+uint64(f.cfg.MaxMsgs) <= seq+1
		if !gone {
			break
		}
		f.bytes -= b.bytes
	}
	f.blocks = f.blocks[drop:]
}

// heldBytes is what the stream's messages from first to upTo take, as
// read: the blocks wholly inside, so that it errs low, by under a block at
// each end; ok false when they are not all read yet. Blocks wholly before
// first are dropped: the stream discarded them.
func (f *StreamSizes) heldBytes(first, upTo uint64) (bytes uint64, ok bool) {
	drop := 0
	for drop+1 < len(f.blocks) && f.blocks[drop+1].first <= first {
		f.bytes -= f.blocks[drop].bytes
		drop++
	}
	f.blocks = f.blocks[drop:]
	if upTo < first {
		return 0, true
	}
	if f.next <= upTo {
		return 0, false
	}
	for i, b := range f.blocks {
		end := f.next // the sequence after the block's last
		if i+1 < len(f.blocks) {
			end = f.blocks[i+1].first
		}
		if b.first >= first && end-1 <= upTo {
			bytes += b.bytes
		}
	}
	return bytes, true
}

// Backlog is ConsumerBacklog with the unacked messages of a consumer of
// the whole stream weighed at what they take: the stream's bytes less
// those of the messages before them it still holds, as read. That is
// over by what acked messages take in the blocks at the two ends (under
// two blocks: 2 x 64 KiB and a message), never under (but for messages
// deleted from the middle of the stream after they were read: nats
// stream rmm, a purge of a subject). Until the messages up to the
// consumer's oldest unacked one are read (a gateway started on a stream
// holding millions), it weighs them as ConsumerBacklog does.
func (f *StreamSizes) Backlog(ctx context.Context, durable string) (Backlog, error) {
	s, err := f.js.Stream(ctx, f.stream)
	if err != nil {
		return Backlog{}, fmt.Errorf("bus: backlog of %s on %s: stream: %w", durable, f.stream, err)
	}
	c, err := s.Consumer(ctx, durable)
	if err != nil {
		return Backlog{}, fmt.Errorf("bus: backlog of %s on %s: consumer: %w", durable, f.stream, err)
	}
	return f.backlogAt(ctx, s, c.CachedInfo())
}

// backlogAt is Backlog of the consumer ci on s, their info fetched just
// now.
func (f *StreamSizes) backlogAt(ctx context.Context, s jetstream.Stream, ci *jetstream.ConsumerInfo) (Backlog, error) {
	info := s.CachedInfo()
	if _, _, whole := unackedSpan(info, ci); !whole {
		return backlogAt(ctx, s, ci), nil
	}
	// Every message up to floor is acked (and those deleted in between
	// take no room, nor count here).
	floor := max(ci.AckFloor.Stream, info.State.FirstSeq-1)
	f.mu.Lock()
	if f.stopped { // looks go on while the gateway shuts down: a start now would never stop
		f.mu.Unlock()
		return backlogAt(ctx, s, ci), nil
	}
	f.cfg = info.Config // its limits changed (nats stream edit, a service's start)
	// The stream was made anew: its sequences start over. By its
	// creation time, not only by a last sequence below the one read:
	// the follower goes on from there on the new stream, and one that
	// grew past it by this look read as the old one's messages before.
	var old jetstream.ConsumeContext // stopped once mu is let go, as in Stop
	if !info.Created.Equal(f.made) || info.State.LastSeq+1 < f.next {
		old = f.follow
		if err := f.start(ctx, s); err != nil {
			f.mu.Unlock()
			old.Stop()
			return Backlog{}, err
		}
	}
	acked, ok := f.heldBytes(info.State.FirstSeq, floor)
	ok = ok && f.broken == nil
	f.mu.Unlock()
	if old != nil {
		old.Stop()
	}
	if !ok {
		return backlogAt(ctx, s, ci), nil
	}
	return backlogOf(info, ci, float64(info.State.Bytes-min(acked, info.State.Bytes))), nil
}
