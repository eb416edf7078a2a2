package webhook

import (
	"math"
	"sync"
	"time"
)

// BreakerState is the state of a receiver's circuit breaker.
type BreakerState int

// The states of a circuit breaker.
const (
	// BreakerClosed: requests go through; consecutive failures are counted.
	BreakerClosed BreakerState = iota
	// BreakerOpen: requests fail at once until the cool-down is over.
	BreakerOpen
	// BreakerHalfOpen: one trial request is in flight; the others fail at
	// once until it tells whether the receiver is back.
	BreakerHalfOpen
)

func (s BreakerState) String() string {
	switch s {
	case BreakerClosed:
		return "closed"
	case BreakerOpen:
		return "open"
	case BreakerHalfOpen:
		return "half-open"
	}
	return "unknown"
}

// breaker is a consecutive-failures circuit breaker. Each permission
// carries the generation it was given in; an outcome reported after the
// state changed (a slow request that started before the breaker opened)
// is ignored, so a stale success cannot close a breaker that a newer
// failure opened.
type breaker struct {
	mu       sync.Mutex
	disabled bool
	limit    int
	coolDown time.Duration
	onChange func(from, to BreakerState)

	state    BreakerState
	gen      uint64
	failures int // consecutive, in the closed state
	openedAt time.Time
	trial    bool // the half-open trial is in flight

	opens, rejected uint64
	changes         [][2]BreakerState // to report once mu is released
}

// unlock releases mu, then reports the state changes made while it was
// held, so that onChange may call back into the client.
func (b *breaker) unlock() {
	changes := b.changes
	b.changes = nil
	b.mu.Unlock()
	if b.onChange != nil {
		for _, c := range changes {
			b.onChange(c[0], c[1])
		}
	}
}

func newBreaker(c BreakerConfig, onChange func(from, to BreakerState)) *breaker {
	return &breaker{disabled: c.Disabled, limit: c.Failures, coolDown: c.CoolDown, onChange: onChange}
}

// allow asks to send one request at now. ok false means the breaker is
// open until retryAt, or half-open with its trial in flight (retryAt zero).
func (b *breaker) allow(now time.Time) (gen uint64, ok bool, retryAt time.Time) {
	if b.disabled {
		return 0, true, time.Time{}
	}
	b.mu.Lock()
	defer b.unlock()
	switch b.state {
	case BreakerOpen:
		until := b.openedAt.Add(b.coolDown)
		if now.Before(until) {
			b.rejected++
			return 0, false, until
		}
		b.set(BreakerHalfOpen)
		b.trial = true
		return b.gen, true, time.Time{}
	case BreakerHalfOpen:
		if b.trial {
			b.rejected++
			return 0, false, time.Time{}
		}
		b.trial = true
	}
	return b.gen, true, time.Time{}
}

// willAllow tells whether a request at t would be let through, without
// asking: a closed breaker, or an open one whose cool-down is over by t.
func (b *breaker) willAllow(t time.Time) bool {
	if b.disabled {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.state {
	case BreakerOpen:
		return !t.Before(b.openedAt.Add(b.coolDown))
	case BreakerHalfOpen:
		return !b.trial
	}
	return true
}

// done reports the outcome of a request allowed in generation gen.
func (b *breaker) done(gen uint64, now time.Time, failed bool) {
	if b.disabled {
		return
	}
	b.mu.Lock()
	defer b.unlock()
	if gen != b.gen {
		return
	}
	switch {
	case b.state == BreakerHalfOpen && failed:
		b.open(now)
	case b.state == BreakerHalfOpen:
		b.set(BreakerClosed)
	case failed:
		b.failures++
		if b.failures >= b.limit {
			b.open(now)
		}
	default:
		b.failures = 0
	}
}

// cancel gives back a permission whose request was not sent or whose
// outcome says nothing about the receiver (the caller gave up).
func (b *breaker) cancel(gen uint64) {
	if b.disabled {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if gen == b.gen && b.state == BreakerHalfOpen {
		b.trial = false
	}
}

func (b *breaker) open(now time.Time) {
	b.set(BreakerOpen)
	b.openedAt = now
	b.opens++
}

// set changes the state, starting a new generation. Called with mu held.
func (b *breaker) set(s BreakerState) {
	from := b.state
	b.state, b.failures, b.trial = s, 0, false
	if b.gen == math.MaxUint64 {
		b.gen = 0
	}
	b.gen++
	if from != s {
		b.changes = append(b.changes, [2]BreakerState{from, s})
	}
}

func (b *breaker) stats(s *ReceiverStats) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s.Breaker, s.ConsecutiveFailures, s.BreakerOpens, s.BreakerRejected = b.state, b.failures, b.opens, b.rejected
	if b.state == BreakerOpen {
		s.BreakerOpenUntil = b.openedAt.Add(b.coolDown)
	}
}

// bucket is a token bucket on an injected clock: tokens come back at rate
// per second up to burst; taking one from an empty bucket borrows it
// (tokens go negative) and says how long to wait until it is paid back, so
// waiters are served in order without a queue.
type bucket struct {
	mu       sync.Mutex
	disabled bool
	rate     float64
	burst    float64
	maxWait  time.Duration
	tokens   float64
	last     time.Time

	waits  uint64
	waited time.Duration
	denied uint64
}

func newBucket(c RateLimitConfig) *bucket {
	return &bucket{disabled: c.Disabled, rate: c.PerSecond, burst: float64(c.Burst), maxWait: c.MaxWait, tokens: float64(c.Burst)}
}

func (b *bucket) refill(now time.Time) {
	if b.last.IsZero() {
		b.last = now
		return
	}
	if dt := now.Sub(b.last); dt > 0 {
		b.tokens = math.Min(b.burst, b.tokens+dt.Seconds()*b.rate)
		b.last = now
	}
}

// take takes a token at now and returns how long to wait before using it;
// ok is false (and nothing is taken) when that is longer than the bucket's
// MaxWait or than limit (the time left to the caller).
func (b *bucket) take(now time.Time, limit time.Duration) (wait time.Duration, ok bool) {
	if b.disabled {
		return 0, true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refill(now)
	if b.tokens >= 1 {
		b.tokens--
		return 0, true
	}
	wait = time.Duration(math.Ceil((1 - b.tokens) / b.rate * float64(time.Second)))
	if wait > b.maxWait || wait > limit {
		b.denied++
		return wait, false
	}
	b.tokens--
	b.waits++
	b.waited += wait
	return wait, true
}

// giveBack returns a token taken but not used.
func (b *bucket) giveBack() {
	if b.disabled {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.tokens = math.Min(b.burst, b.tokens+1)
}

func (b *bucket) stats(now time.Time, s *ReceiverStats) {
	if b.disabled {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refill(now)
	s.Tokens, s.RateLimitWaits, s.RateLimitWaited, s.RateLimitDenied = b.tokens, b.waits, b.waited, b.denied
}
