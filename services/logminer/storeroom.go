package logminer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/bus"
	"github.com/aiops-dev/aiops/pkg/errs"
)

// storeRoom holds the log miner's copies while the events the writer has
// not stored leave them no room below maxStoreBacklog of the stream's
// limit. The stream discards its oldest events past its limit, stored or
// not, and takes every copy: the gateway stops accepting logs at that
// bound (ingest.max_store_backlog), but each log it accepted owes a copy
// as large as it and more, and published past the bound the copies
// pushed out logs answered 200 (README, "Room in EVENTS"). Held, a copy
// waits for the writer to catch up; its raw log stays on the stream
// meanwhile, as nothing else fills it.
type storeRoom struct {
	measure    func(ctx context.Context) (bus.Backlog, error)
	streamRead func() uint64 // what the stream took as followed (bus.StreamSizes.ReadBytes); nil: not followed
	limit      float64       // the part of the stream's limit the writer's backlog may take
	log        zerolog.Logger
	held       *atomic.Int64 // inputs waiting for room: the gauge

	mu       sync.Mutex
	at       time.Time // of the last look
	last     bus.Backlog
	bounded  bool    // the last look saw the writer's consumer and a byte limit
	inFlight float64 // bytes taken and not stored yet (take)
	since    float64 // bytes taken since the last look began
	readAt   uint64  // streamRead as the last look began
	failing  bool    // the last look failed, said once
}

// Looks: once a second while the backlog is under half the bound, ten
// times as often past it, as the gateway does (what the gateways publish
// between two looks is counted once stored and read, not while in
// flight); while there is no room, every roomPoll.
const (
	roomEvery = time.Second
	roomPoll  = 100 * time.Millisecond
)

// errNoStoreRoom is why an input waiting for room is given back: the log
// miner stops.
var errNoStoreRoom = errors.New("logminer: the events the writer has not stored leave no room in the stream for the templated copy: input given back")

// take waits until bytes fit below the bound, as far as the log miner
// can tell since its last look, and counts them in flight until release
// is called (once stored, or not published). It gives up, with an error
// given back (errs.GivenBack), when ctx or stop ends. A nil room takes
// everything.
func (r *storeRoom) take(ctx context.Context, stop <-chan struct{}, bytes int) (release func(), err error) {
	if r == nil {
		return func() {}, nil
	}
	n := float64(bytes)
	waiting := false
	defer func() {
		if waiting {
			r.held.Add(-1)
		}
	}()
	for {
		r.mu.Lock()
		now := time.Now()
		if r.due(now, n) {
			r.look(ctx, now)
		}
		if !r.bounded || r.taken()+n <= r.room() {
			r.inFlight += n
			r.since += n
			r.mu.Unlock()
			var once sync.Once
			return func() {
				once.Do(func() {
					r.mu.Lock()
					r.inFlight -= n
					r.mu.Unlock()
				})
			}, nil
		}
		r.mu.Unlock()
		if !waiting {
			waiting = true
			r.held.Add(1)
		}
		select {
		case <-time.After(roomPoll):
		case <-ctx.Done():
			return nil, errs.GivenBack(fmt.Errorf("%w (%w)", errNoStoreRoom, ctx.Err()))
		case <-stop:
			return nil, errs.GivenBack(fmt.Errorf("%w (stopping)", errNoStoreRoom))
		}
	}
}

// due tells whether to look again before n bytes are taken, under mu.
func (r *storeRoom) due(now time.Time, n float64) bool {
	every := roomEvery
	switch {
	case r.bounded && r.taken()+n > r.room():
		every = roomPoll
	case r.bounded && r.last.Ratio >= r.limit/2:
		every /= 10
	}
	return r.at.IsZero() || now.Sub(r.at) >= every
}

// taken is what the stream took since the last look began as far as
// the log miner can tell, under mu: the copies it took since, or all the
// stream took as followed when that is more (the gateways' events, read a
// delivery after their store), and the copies in flight.
func (r *storeRoom) taken() float64 {
	taken := r.since
	if r.streamRead != nil {
		taken = max(taken, float64(r.streamRead()-r.readAt))
	}
	return taken + r.inFlight
}

// room is the bytes below the bound as of the last look, under mu.
func (r *storeRoom) room() float64 {
	return max(r.limit-r.last.Ratio, 0) * float64(r.last.StreamMaxBytes)
}

// look measures the writer's backlog, under mu. The bytes in flight are
// counted on top of it, as the look may not have seen them stored; those
// taken since it began are, once stored, in the next one.
func (r *storeRoom) look(ctx context.Context, now time.Time) {
	r.at, r.since = now, 0
	if r.streamRead != nil {
		r.readAt = r.streamRead()
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	b, err := r.measure(ctx)
	switch {
	case errors.Is(err, jetstream.ErrConsumerNotFound):
		// No writer started yet: nothing on the stream waits for it.
		r.bounded = false
	case err != nil:
		// Blind, it goes by the last look and what it took since.
		if !r.failing {
			r.log.Warn().Err(err).Msg("cannot see how many events the writer has not stored; templated copies go by the last look meanwhile")
		}
		r.failing = true
		return
	default:
		r.last, r.bounded = b, b.StreamMaxBytes > 0
	}
	if r.failing {
		r.log.Info().Msg("the writer's backlog is visible again")
		r.failing = false
	}
}

// openStoreRoom watches the backlog of cfg.StoreConsumer on the log
// miner's stream, its events weighed at what they take: it follows the
// sizes of the stream's messages until ctx ends (bus.StreamSizes), as the
// gateway does, or, when it cannot (the stream not there yet), weighs
// them from a few read at each look, which reads low when large logs are
// a minority of them and most of their bytes.
func openStoreRoom(ctx context.Context, js jetstream.JetStream, cfg Config, log zerolog.Logger, held *atomic.Int64) *storeRoom {
	stream, durable := cfg.Consumer.Stream, cfg.StoreConsumer
	r := &storeRoom{limit: cfg.MaxStoreBacklog, log: log, held: held}
	r.measure = func(ctx context.Context) (bus.Backlog, error) {
		return bus.ConsumerBacklog(ctx, js, stream, durable)
	}
	if sizes, err := bus.FollowSizes(ctx, js, stream); err != nil {
		log.Warn().Err(err).Msg("weighing the events the writer has not stored from a few of them read at each look, which reads low when large events are a minority of them")
	} else {
		context.AfterFunc(ctx, sizes.Stop)
		r.measure = func(ctx context.Context) (bus.Backlog, error) { return sizes.Backlog(ctx, durable) }
		r.streamRead = sizes.ReadBytes
	}
	return r
}
