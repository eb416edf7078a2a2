package ingest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// StoreBacklog measures the part of the event stream's limit taken by
// events the store has not acked yet (the Ratio of the writer's
// consumer's bus.Backlog: busStoreBacklog), and that limit in bytes as
// it is now (0 or less: none): another service's start changes it. The
// stream discards its oldest events past its limit, stored or not, so at
// 1 every event accepted pushes out one the writer never stored.
type StoreBacklog func(ctx context.Context) (ratio float64, streamBytes int64, err error)

// ErrNoStoreConsumer is wrapped by a StoreBacklog's error when the
// consumer it watches is not on the stream: no writer ever started with
// that name (ingest.store_consumer is not its writer.consumer.durable, or
// no writer started yet). The gateway is not ready meanwhile (Checks).
var ErrNoStoreConsumer = errors.New("ingest: the store's consumer is not on the event stream")

// WithStoreBacklog makes the gateway refuse requests with 503 and
// Retry-After while measure says the unstored events take
// Config.MaxStoreBacklog of the stream's limit or more. It looks again at
// most once per every (0: at every request) while the last look was
// below half that limit, and ten times as often past it, so that a burst
// between two looks cannot fill the rest of the stream; blind (looks that
// fail) past half the limit for longer than every, it refuses too
// (backlogGuard.apply). Without it the gateway answers 200 for events
// that a long store outage then discards unstored.
//
// Given the stream's limit in bytes (as of the last look; 0: none) it
// looks again too once the events it accepted since the last look take a
// share of the room that look left below the limit (roomParts): a burst could
// otherwise fill the rest of a small stream within every (a 4 MiB EVENTS
// on aiops run, one 40 KB log in four posted in a loop: full within the
// second below half the limit, 101 of 268 events answered 200 lost:
// docs/operations.md). Given too what the stream took of its bytes as
// followed (streamRead: bus.StreamSizes.ReadBytes; nil: not followed),
// it counts what every producer stored since, when that is more: other
// gateways, the log miner's templated copies and producers on NATS fill
// the room too (four gateways on a 4 MiB EVENTS, each counting its own:
// 26 of 530 events answered 200 lost; 1 of 505 counting the stream's).
//
// Its gauge looks too when scraped, by the same rule: looked at only when
// requests came, it kept its value for ever without traffic.
func WithStoreBacklog(measure StoreBacklog, every time.Duration, streamRead func() uint64) Option {
	return func(h *Handler) {
		g := &backlogGuard{measure: measure, every: every, streamRead: streamRead, log: &h.log}
		h.backlog = g
		h.m.storeBacklog = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "aiops_ingest_store_backlog_ratio",
			Help: "The part of the event stream's limit taken by events the writer has not stored, as the gateway last looked (at a request or a scrape: at most once a second, every 100 ms past half of ingest.max_store_backlog, and at once when what the stream took since, or the events accepted if more, take a quarter of the room the last look left; a look that fails keeps the last value, and is logged); from ingest.max_store_backlog on, requests are refused with 503."},
			func() float64 {
				g.over(context.Background(), h.now(), h.cfg.MaxStoreBacklog)
				return g.seen()
			})
	}
}

// pastHalfPace is how many times more often the gateway looks at the
// backlog once it is past half the limit (every 100 ms at the default
// second): often enough that no burst between two looks fills the rest
// (a tenth of 1 GiB at tens of MB/s), seldom enough that the looks (two
// JetStream API requests each, more while the sizes are not read:
// busStoreBacklog) do not grow with the request rate.
const pastHalfPace = 10

// roomParts is the share of the room below the limit, as last looked at,
// that the events the gateway accepts, or all the stream took as
// followed, may take before it looks again: a quarter, as the log miner
// publishes a templated copy of each log some time after it is accepted
// (what the gateway's logs take, twice), and other gateways' requests in
// flight were admitted by their last look.
const roomParts = 4

// backlogTimeout bounds one look at the backlog: a bus that does not
// answer fails the publish anyway, with its own 503.
const backlogTimeout = time.Second

// backlogGuard remembers the last look at the store's backlog, so that a
// request costs no round trip to the server but once per every.
type backlogGuard struct {
	measure    StoreBacklog
	every      time.Duration
	streamRead func() uint64 // what the stream took as followed; nil: not followed
	log        *zerolog.Logger

	mu          sync.Mutex
	at          time.Time // of the last look
	looking     bool      // a look is under way: the others take the last one
	last        float64
	streamBytes int64     // the stream's limit as of the last look that did not fail; 0 or less: none
	lastSeen    float64   // of the last look that did not fail: the gauge
	seenAt      time.Time // of that look
	refusing    bool
	failing     bool   // the last look failed, said once
	lastErr     error  // of the last look: nil when it did not fail
	since       int64  // bytes of events published since the last look began
	inFlight    int64  // bytes of events let in and not published yet (reserve)
	readAt      uint64 // streamRead as the last look began
}

// errNeverFits: a request's events take more than limit of the whole
// stream, so no wait can make room for them.
var errNeverFits = errors.New("no room the event stream can have takes them")

// errRoomTaken: a request's events would take the backlog to the limit.
var errRoomTaken = errors.New("the room below ingest.max_store_backlog is taken")

// reserve counts bytes of events about to be published, unless they
// would take the backlog to limit as far as the gateway can tell since
// its last look (taken): then it returns errRoomTaken, or errNeverFits
// when they take more than limit of the whole stream, and they are not
// to be published. A request is let in by the last look before its body
// is read (over), so several in flight at once were each let in by the
// same room, and landed past the bound together (two gateways, eight
// requests in flight on each, on a 4 MiB EVENTS: up to 96 of some 550
// events answered 200 lost). published ends the reservation. A nil guard
// (none configured) takes everything.
func (g *backlogGuard) reserve(bytes int, limit float64) error {
	if g == nil {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.streamBytes > 0 {
		if float64(bytes) > limit*float64(g.streamBytes) {
			return fmt.Errorf("%w: the events of this request take %d bytes, over ingest.max_store_backlog %g of the event stream's limit of %d bytes "+
				"(streams.max_bytes), which they would take however long the client waited; send fewer events a request, or raise streams.max_bytes",
				errNeverFits, bytes, limit, g.streamBytes)
		}
		if g.taken()+float64(bytes) > g.room(limit) {
			return errRoomTaken
		}
	}
	g.inFlight += int64(bytes)
	return nil
}

// published ends the reservation of bytes (reserve): the events are
// published, or their publish failed (some may be stored: counted all
// the same).
func (g *backlogGuard) published(bytes int) {
	if g == nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.inFlight -= int64(bytes)
	g.since += int64(bytes)
}

// taken is what the stream took since the last look began as far as the
// gateway can tell, under mu: the events it published since, or all the
// stream took since as followed when that is more (the follower reads
// the gateway's own a delivery after their store), and the events it is
// publishing.
func (g *backlogGuard) taken() float64 {
	taken := float64(g.since)
	if g.streamRead != nil {
		taken = max(taken, float64(g.streamRead()-g.readAt))
	}
	return taken + float64(g.inFlight)
}

// room is the bytes the last look left below limit, under mu.
func (g *backlogGuard) room(limit float64) float64 {
	return max(limit-g.last, 0) * float64(g.streamBytes)
}

// roomTaken tells whether what the stream took since the last look
// (taken) is over 1/roomParts of the room it left below limit, under mu.
func (g *backlogGuard) roomTaken(limit float64) bool {
	return g.streamBytes > 0 && g.taken() > g.room(limit)/roomParts
}

// seen is the ratio of the last look that did not fail.
func (g *backlogGuard) seen() float64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.lastSeen
}

// over tells whether the backlog is at limit or beyond, or the guard
// blind near it (apply), looking again when the last look is older than
// every or was past half the limit; refusal says why to the client. One
// request (or scrape) looks at a time, outside the lock: the others go by
// the last look meanwhile rather than wait in line for the server's
// answer.
func (g *backlogGuard) over(ctx context.Context, now time.Time, limit float64) (refusal string, over bool) {
	g.mu.Lock()
	every := g.every
	if g.last >= limit/2 {
		every /= pastHalfPace
	}
	due := !g.looking && (g.at.IsZero() || now.Sub(g.at) >= every || g.roomTaken(limit))
	if !due {
		defer g.mu.Unlock()
		return g.refusal(now, limit)
	}
	g.at, g.looking, g.since = now, true, 0
	if g.streamRead != nil {
		g.readAt = g.streamRead()
	}
	g.mu.Unlock()

	// The look serves the requests after it too: the caller hanging up
	// (a client, a readiness probe past its timeout) does not end it.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), backlogTimeout)
	ratio, streamBytes, err := g.measure(ctx)
	cancel()

	g.mu.Lock()
	defer g.mu.Unlock()
	g.looking = false
	g.apply(now, ratio, streamBytes, err, limit)
	return g.refusal(now, limit)
}

// missing looks as over does and tells the last look's error when it
// found no consumer to watch (ErrNoStoreConsumer), else nil.
func (g *backlogGuard) missing(ctx context.Context, now time.Time, limit float64) error {
	g.over(ctx, now, limit)
	g.mu.Lock()
	defer g.mu.Unlock()
	if errors.Is(g.lastErr, ErrNoStoreConsumer) {
		return g.lastErr
	}
	return nil
}

// refusal is what a refused request is told, under mu; over false when
// requests are accepted.
func (g *backlogGuard) refusal(now time.Time, limit float64) (string, bool) {
	switch {
	case !g.refusing:
		return "", false
	case g.failing:
		return fmt.Sprintf("the gateway cannot see how many events are not stored yet, and %s ago they took %.0f%% of the event stream's limit, "+
			"over half of ingest.max_store_backlog (%.0f%%), past which the stream discards the oldest, stored or not; retry the same request later",
			now.Sub(g.seenAt).Round(time.Millisecond), 100*g.lastSeen, 100*limit), true
	default:
		return fmt.Sprintf("events not stored yet take %.0f%% of the event stream's limit (ingest.max_store_backlog: %.0f%%), past which the stream discards the oldest, stored or not; "+
			"retry the same request later, once the writer has caught up with the store", 100*g.last, 100*limit), true
	}
}

// apply takes a look's answer at now, under mu.
func (g *backlogGuard) apply(now time.Time, ratio float64, streamBytes int64, err error, limit float64) {
	g.lastErr = err
	if err != nil {
		// A look that fails leaves the last good one standing for every,
		// as long as the guard goes without looking below half the limit.
		// Past that it refuses if that look was past half the limit: a
		// burst could fill the rest unseen and the stream discard events
		// answered 200 (the writer's consumer removed, the server
		// answering publishes but not its API in time), and a refused
		// producer retries later and loses nothing, which the operator
		// would rather have than events lost unsaid. A look that succeeds
		// ends it. It accepts otherwise: a writer not started yet has no
		// consumer, and a bus away fails the publish anyway, with its own
		// 503.
		wasRefusing := g.refusing
		if now.Sub(g.seenAt) >= g.every {
			g.refusing = g.lastSeen >= limit/2
		}
		switch {
		case g.refusing && !(g.failing && wasRefusing):
			g.log.Warn().Err(err).Float64("last_store_backlog_ratio", g.lastSeen).Time("last_seen", g.seenAt).
				Msg("cannot see how many events the writer has not stored, and the last look saw them past half of ingest.max_store_backlog: refusing requests with 503 until a look succeeds (is the bus slow? is ingest.store_consumer the writer's consumer.durable?)")
		case !g.failing:
			g.log.Warn().Err(err).Float64("last_store_backlog_ratio", g.lastSeen).
				Msg("cannot see how many events the writer has not stored; accepting requests meanwhile, unless the last look saw them past half of ingest.max_store_backlog (is ingest.store_consumer the writer's consumer.durable?)")
		}
		g.failing = true
		return
	}
	if g.failing {
		g.log.Info().Msg("the writer's backlog is visible again")
		g.failing = false
	}
	g.last, g.lastSeen, g.seenAt, g.streamBytes = ratio, ratio, now, streamBytes
	switch over := ratio >= limit; {
	case over && !g.refusing:
		g.log.Warn().Float64("store_backlog_ratio", ratio).Float64("max_store_backlog", limit).
			Msg("events the writer has not stored fill the event stream near its limit, past which it discards the oldest: refusing requests with 503 until the writer catches up (is ClickHouse down or slow?)")
		g.refusing = true
	case !over && g.refusing:
		g.log.Info().Float64("store_backlog_ratio", ratio).Msg("the writer caught up: accepting requests again")
		g.refusing = false
	}
}
