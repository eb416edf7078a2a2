package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aiops-dev/aiops/pkg/errs"
)

// Errors of Deliver and New, for errors.Is. Those marked permanent are
// wrapped with errs.Permanent: delivering the same request again will fail
// the same way. The others mean "not delivered yet, try again later".
// Deliver's errors read "webhook: receiver <name>: <what>", so the
// sentinels they wrap carry no prefix of their own.
var (
	// ErrInvalidRequest (permanent): a Request that cannot be sent, e.g.
	// no receiver name, a URL that is not http(s), an idempotency key with
	// a "." or a reserved header among the extra ones.
	ErrInvalidRequest = errors.New("webhook: invalid request")
	// ErrBodyTooLarge (permanent): a body over Config.MaxBodyBytes.
	ErrBodyTooLarge = errors.New("webhook: request body too large")
	// ErrRedirect (permanent): the receiver answered 3xx and redirects are
	// not followed, or it redirected more than MaxRedirects times.
	ErrRedirect = errors.New("redirect not followed")
	// ErrRejected (permanent): the receiver answered a 4xx other than 408
	// and 429. errors.As with *StatusError gives the status and body.
	ErrRejected = errors.New("rejected by the receiver")
	// ErrGaveUp: every attempt failed with a retryable error until
	// retry.max_attempts, retry.max_elapsed or the context's deadline.
	ErrGaveUp = errors.New("gave up retrying")
	// ErrCircuitOpen: the receiver's circuit breaker is open (or half-open
	// with its trial in flight), so no request was sent.
	ErrCircuitOpen = errors.New("circuit breaker open")
	// ErrRateLimited: the receiver's token bucket is further behind than
	// rate_limit.max_wait or the context's deadline allows.
	ErrRateLimited = errors.New("rate limit")
	// ErrInvalidOption: a nil or out-of-range argument to an Option.
	ErrInvalidOption = errors.New("webhook: invalid option")
	// ErrMayBeApplied: an Unsafe request got no answer, or one that stands
	// for none (502, 504, 408), so the receiver may have acted on it; it
	// was not retried.
	ErrMayBeApplied = errors.New("not retried: the request is not idempotent and may have been applied")
)

// StatusError is a response that was not 2xx.
type StatusError struct {
	StatusCode int
	// Body is the start of the response body, for the message.
	Body string
}

func (e *StatusError) Error() string {
	msg := "HTTP " + strconv.Itoa(e.StatusCode)
	if t := http.StatusText(e.StatusCode); t != "" {
		msg += " " + t
	}
	if e.Body != "" {
		msg += ": " + e.Body
	}
	return msg
}

// Request is one notification to deliver.
type Request struct {
	// Receiver names the receiver; the attempts are recorded under it.
	// Required.
	Receiver string
	// Integration names one integration of the receiver (its place in
	// the configuration, say receivers[0].slack_configs[1]). The circuit
	// breaker, the rate limit and the statistics are per receiver and
	// integration: a receiver's Slack being down must not open the
	// breaker in front of its PagerDuty. Empty: the receiver's own.
	Integration string
	// URL is the absolute http or https URL to POST to. It never appears
	// in errors or attempts: it often holds a token.
	URL string
	// Body is sent as is; at most Config.MaxBodyBytes.
	Body []byte
	// IdempotencyKey is sent as webhook-id: stable for one incident
	// transition, the same on every attempt and every later delivery of
	// it (see IdempotencyKey). Required; 1 to 255 visible ASCII
	// characters without "." (the signed content is "id.timestamp.body").
	IdempotencyKey string
	// Secrets sign the request, each giving one signature in
	// webhook-signature (two during a rotation). None: unsigned.
	Secrets [][]byte
	// Header holds extra headers (an Authorization for the receiver, say;
	// a User-Agent replaces Config.UserAgent). It may not set webhook-*, Content-Type, Content-Length, Host or
	// Transfer-Encoding.
	Header http.Header
	// ContentType defaults to "application/json".
	ContentType string
	// Method defaults to POST; GET, PUT and PATCH serve the ticketing
	// APIs (a search, an update). A GET sends no body.
	Method string
	// Unsafe marks a request that is not idempotent at the receiver (a
	// ticket created by a POST): when the receiver may have acted on it,
	// it is not retried; Deliver returns a transient error and the caller
	// checks (searches) before sending it again. That is after no answer
	// (a timeout, a broken connection) and after the answers that stand
	// for none: 502 and 504 (a gateway that lost or gave up waiting for
	// the answer; the request usually reached the server) and 408. 503
	// and 429 (the server says it did not take the request) and the
	// other 5xx are retried as usual.
	Unsafe bool
	// Transport sends this request instead of the client's own (a
	// receiver's http_config: its CA, client certificate, proxy); nil:
	// the client's.
	Transport http.RoundTripper
	// Redirects overrides Config.FollowRedirects for this request (a
	// receiver's http_config.follow_redirects); zero: the client's.
	Redirects RedirectPolicy
	// Timeout bounds each attempt of this request instead of
	// Config.Timeout (a webhook_config's timeout); zero: the client's.
	Timeout time.Duration
}

// Result says what happened to one delivery.
type Result struct {
	Receiver       string
	IdempotencyKey string
	// Delivered is true after a 2xx; Deliver then returns nil.
	Delivered bool
	// Attempts is the number of HTTP requests sent.
	Attempts int
	// StatusCode is the last response's status, 0 if none came.
	StatusCode int
	// Body is the last response's body, at most MaxResponseBytes.
	Body []byte
	// RetryAfter is what the last response's Retry-After asked for, before
	// retry.max_retry_after capped it; 0 without one. A caller that gives
	// up may use it to schedule the next delivery.
	RetryAfter time.Duration
	// Start is when Deliver began; Duration runs to its end, waits included.
	Start    time.Time
	Duration time.Duration
}

// Attempt is one HTTP request of a delivery, as reported to the Recorder
// (the notifier stores them in ClickHouse webhook_deliveries).
type Attempt struct {
	Receiver       string
	IdempotencyKey string
	// Number counts the attempts of one delivery from 1.
	Number int
	// Start is when the request was sent (after any rate-limit wait);
	// Duration runs to the end of reading the response.
	Start    time.Time
	Duration time.Duration
	// StatusCode is the response's status, 0 when none came (a timeout,
	// a refused connection).
	StatusCode int
	// Error is empty for a 2xx, else why the attempt failed. It never
	// holds the URL.
	Error string
	// Retrying is true when another attempt was scheduled after this one.
	Retrying bool
}

// Recorder receives every attempt, from the goroutine that called Deliver,
// before Deliver returns. It must not block for long.
type Recorder interface {
	RecordAttempt(Attempt)
}

// RecorderFunc adapts a function to a Recorder.
type RecorderFunc func(Attempt)

// RecordAttempt calls f(a).
func (f RecorderFunc) RecordAttempt(a Attempt) { f(a) }

// ContextRecorder is a Recorder that is given the context Deliver was
// called with instead, so that a caller delivering on several goroutines
// at once tells each attempt's delivery by what it put in the context,
// not by shared state.
type ContextRecorder interface {
	Recorder
	RecordAttemptContext(ctx context.Context, a Attempt)
}

// ReceiverStats is what a Client observed of one receiver.
type ReceiverStats struct {
	Receiver string
	// Breaker is the circuit breaker's state; BreakerOpenUntil the end of
	// the cool-down while it is open. ConsecutiveFailures counts toward
	// opening it; BreakerOpens counts the times it opened; BreakerRejected
	// the deliveries it failed without a request.
	Breaker             BreakerState
	BreakerOpenUntil    time.Time
	ConsecutiveFailures int
	BreakerOpens        uint64
	BreakerRejected     uint64
	// Tokens is what the rate-limit bucket holds now (negative: borrowed by
	// attempts waiting for their turn; 0 when rate limits are disabled).
	// RateLimitWaits counts attempts that waited for a token,
	// RateLimitWaited adds up their waits, RateLimitDenied counts the
	// deliveries that failed with ErrRateLimited.
	Tokens          float64
	RateLimitWaits  uint64
	RateLimitWaited time.Duration
	RateLimitDenied uint64
	// Deliveries counts calls of Deliver, Delivered those that got a 2xx,
	// Failed the others; Attempts counts HTTP requests.
	Deliveries, Delivered, Failed, Attempts uint64
}

// Option configures what a Client takes from its environment.
type Option func(*Client) error

// WithClock injects the clock and the sleep of retries and rate-limit
// waits, so that tests run without waiting. sleep must return early with
// ctx.Err() when ctx is done. The attempt timeout (Config.Timeout) stays on
// the real clock: it bounds a real request.
func WithClock(now func() time.Time, sleep func(ctx context.Context, d time.Duration) error) Option {
	return func(c *Client) error {
		if now == nil || sleep == nil {
			return fmt.Errorf("%w: WithClock: now and sleep must not be nil", ErrInvalidOption)
		}
		c.now, c.sleep = now, sleep
		return nil
	}
}

// WithRecorder sends every attempt to r.
func WithRecorder(r Recorder) Option {
	return func(c *Client) error {
		if r == nil {
			return fmt.Errorf("%w: WithRecorder: nil recorder", ErrInvalidOption)
		}
		c.recorder = r
		return nil
	}
}

// WithTransport sends requests through rt instead of a clone of
// http.DefaultTransport (for a proxy that filters internal addresses
// against SSRF, or custom TLS).
func WithTransport(rt http.RoundTripper) Option {
	return func(c *Client) error {
		if rt == nil {
			return fmt.Errorf("%w: WithTransport: nil transport", ErrInvalidOption)
		}
		c.http.Transport = rt
		return nil
	}
}

// WithJitter replaces the source of the backoff's jitter: f returns a
// number in [0,1); the backoff slept is f() times the exponential delay.
// Tests pass func() float64 { return 0.5 } for exact delays.
func WithJitter(f func() float64) Option {
	return func(c *Client) error {
		if f == nil {
			return fmt.Errorf("%w: WithJitter: nil function", ErrInvalidOption)
		}
		c.jitter = f
		return nil
	}
}

// WithBreakerObserver calls f on every state change of a receiver's
// circuit breaker (for logs and metrics). f must not block for long.
func WithBreakerObserver(f func(receiver string, from, to BreakerState)) Option {
	return func(c *Client) error {
		if f == nil {
			return fmt.Errorf("%w: WithBreakerObserver: nil function", ErrInvalidOption)
		}
		c.onBreaker = f
		return nil
	}
}

// Client delivers webhooks. It is safe for concurrent use; deliveries to
// one receiver share its circuit breaker and rate limit.
type Client struct {
	cfg       Config
	http      *http.Client
	now       func() time.Time
	sleep     func(context.Context, time.Duration) error
	jitter    func() float64
	recorder  Recorder
	onBreaker func(receiver string, from, to BreakerState)

	mu        sync.Mutex
	receivers map[string]*receiver
}

type receiver struct {
	breaker *breaker
	bucket  *bucket

	deliveries, delivered, failed, attempts atomic.Uint64
}

var (
	errTooManyRedirects = errors.New("too many redirects")
	errMethodChanged    = errors.New("redirect changes the method")
	errElsewhere        = errors.New("redirect to another origin")
)

// checkRedirect is an http.Client's CheckRedirect that follows up to
// MaxRedirects redirects, or none: the 3xx is then the response. A
// redirect that would change the method (a 301, 302 or 303 turns a POST
// into a GET without its body) is refused: the GET's 2xx would count as
// delivered while the receiver never got the notification. So is one to
// another origin (scheme, host or port): Go drops Authorization there but
// would send the body and the webhook-* signature, which the other host
// could replay. Errors name no URL: its path or query often holds a token.
func checkRedirect(follow bool) func(*http.Request, []*http.Request) error {
	return func(req *http.Request, via []*http.Request) error {
		if !follow {
			return http.ErrUseLastResponse
		}
		if len(via) > MaxRedirects {
			return errTooManyRedirects
		}
		if req.Method != via[0].Method {
			return fmt.Errorf("%w: %s answered %d, which would resend it as %s without its body", errMethodChanged,
				via[0].Method, req.Response.StatusCode, req.Method)
		}
		if req.URL.Scheme != via[0].URL.Scheme || req.URL.Host != via[0].URL.Host {
			return fmt.Errorf("%w: answered %d toward another scheme, host or port, which would get the body and its signature", errElsewhere,
				req.Response.StatusCode)
		}
		return nil
	}
}

// New returns a Client for cfg (defaults filled in, then validated).
// Errors wrap ErrInvalidConfig or ErrInvalidOption.
func New(cfg Config, opts ...Option) (*Client, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := &Client{
		cfg:       cfg,
		http:      &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()},
		now:       time.Now,
		sleep:     sleepCtx,
		jitter:    rand.Float64,
		receivers: map[string]*receiver{},
	}
	c.http.CheckRedirect = checkRedirect(cfg.FollowRedirects)
	for i, o := range opts {
		if o == nil {
			return nil, fmt.Errorf("%w: option %d is nil", ErrInvalidOption, i)
		}
		if err := o(c); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Config returns the configuration in use, defaults filled in.
func (c *Client) Config() Config { return c.cfg }

func (c *Client) receiver(name string) *receiver {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.receivers[name]
	if r == nil {
		var onChange func(from, to BreakerState)
		if f := c.onBreaker; f != nil {
			onChange = func(from, to BreakerState) { f(name, from, to) }
		}
		r = &receiver{breaker: newBreaker(c.cfg.Breaker, onChange), bucket: newBucket(c.cfg.RateLimit)}
		c.receivers[name] = r
	}
	return r
}

// endpointName is what the client keeps a breaker, a rate limit and
// statistics under: the receiver, or the receiver and one integration of
// it.
func endpointName(receiver, integration string) string {
	if integration == "" {
		return receiver
	}
	return receiver + " " + integration
}

// Stats returns what the client observed of one receiver, or of one
// integration of it under "receiver integration" (zero counters and a
// closed breaker for one it never delivered to).
func (c *Client) Stats(receiver string) ReceiverStats {
	c.mu.Lock()
	r := c.receivers[receiver]
	c.mu.Unlock()
	s := ReceiverStats{Receiver: receiver}
	if r == nil {
		if !c.cfg.RateLimit.Disabled {
			s.Tokens = float64(c.cfg.RateLimit.Burst)
		}
		return s
	}
	r.breaker.stats(&s)
	r.bucket.stats(c.now(), &s)
	s.Deliveries, s.Delivered, s.Failed, s.Attempts = r.deliveries.Load(), r.delivered.Load(), r.failed.Load(), r.attempts.Load()
	return s
}

// BreakerOpenUntil is when the circuit breaker in front of a receiver's
// integration (integration empty: the receiver's own) lets a trial
// request through again: the end of its cool-down while it is open, zero
// when it is closed or half-open. A caller holding a notification for a
// later try waits that long: trying before would fail at once, without a
// request.
func (c *Client) BreakerOpenUntil(receiver, integration string) time.Time {
	c.mu.Lock()
	r := c.receivers[endpointName(receiver, integration)]
	c.mu.Unlock()
	if r == nil {
		return time.Time{}
	}
	var s ReceiverStats
	r.breaker.stats(&s)
	return s.BreakerOpenUntil
}

// AllStats returns Stats of every receiver delivered to, sorted by name.
func (c *Client) AllStats() []ReceiverStats {
	c.mu.Lock()
	names := make([]string, 0, len(c.receivers))
	for n := range c.receivers {
		names = append(names, n)
	}
	c.mu.Unlock()
	sort.Strings(names)
	out := make([]ReceiverStats, len(names))
	for i, n := range names {
		out[i] = c.Stats(n)
	}
	return out
}

// Deliver sends req.Body to req.URL (a POST unless req.Method says) until
// a 2xx, a permanent failure, or the end of the retries, and reports every attempt to the Recorder. It
// returns nil only when the receiver answered 2xx, after which nothing
// more is sent. A permanent error (errs.IsPermanent: ErrInvalidRequest,
// ErrBodyTooLarge, ErrRedirect, ErrRejected) will not go away by trying
// again; any other error (ErrGaveUp, ErrCircuitOpen, ErrRateLimited, the
// context's) means the notification was not delivered yet and should be
// delivered again later with the same IdempotencyKey.
func (c *Client) Deliver(ctx context.Context, req Request) (Result, error) {
	res := Result{Receiver: req.Receiver, IdempotencyKey: req.IdempotencyKey, Start: c.now()}
	if err := c.check(&req); err != nil {
		return res, errs.Permanent(err)
	}
	r := c.receiver(endpointName(req.Receiver, req.Integration))
	r.deliveries.Add(1)
	err := c.deliver(ctx, &req, r, &res)
	res.Duration = c.now().Sub(res.Start)
	if err != nil {
		r.failed.Add(1)
		return res, err
	}
	r.delivered.Add(1)
	res.Delivered = true
	return res, nil
}

func (c *Client) deliver(ctx context.Context, req *Request, r *receiver, res *Result) error {
	fail := func(err, last error) error {
		if last != nil {
			return fmt.Errorf("webhook: receiver %s: %w; last attempt: %w", req.Receiver, err, last)
		}
		return fmt.Errorf("webhook: receiver %s: %w", req.Receiver, err)
	}
	var last error
	for n := 1; ; n++ {
		if err := ctx.Err(); err != nil {
			return fail(err, last)
		}
		now := c.now()
		gen, ok, until := r.breaker.allow(now)
		if !ok {
			if until.IsZero() {
				return fail(fmt.Errorf("%w (half-open: a trial request is in flight)", ErrCircuitOpen), last)
			}
			return fail(fmt.Errorf("%w (until %s)", ErrCircuitOpen, until.UTC().Format(time.RFC3339)), last)
		}
		wait, ok := r.bucket.take(now, timeLeft(ctx))
		if !ok {
			r.breaker.cancel(gen)
			return fail(fmt.Errorf("%w: the next token comes in %v", ErrRateLimited, wait), last)
		}
		if wait > 0 {
			if err := c.sleep(ctx, wait); err != nil {
				r.bucket.giveBack()
				r.breaker.cancel(gen)
				return fail(err, last)
			}
		}

		start := c.now()
		out := c.send(ctx, req, start)
		end := c.now()
		r.attempts.Add(1)
		res.Attempts, res.StatusCode, res.Body, res.RetryAfter = n, out.status, out.body, out.retryAfter
		if out.canceled {
			r.breaker.cancel(gen)
		} else {
			r.breaker.done(gen, end, out.failure)
		}
		a := Attempt{
			Receiver: req.Receiver, IdempotencyKey: req.IdempotencyKey, Number: n,
			Start: start, Duration: end.Sub(start), StatusCode: out.status,
		}
		if out.err == nil {
			c.record(ctx, a)
			return nil
		}
		a.Error = out.err.Error()
		last = out.err
		if req.Unsafe && out.retry && noAnswer(out.status) {
			// The receiver may have acted on the request. The caller
			// checks before it sends it again.
			out.retry = false
			out.err = fmt.Errorf("%w (%w)", out.err, ErrMayBeApplied)
			a.Error = out.err.Error()
		}
		if !out.retry {
			c.record(ctx, a)
			return fail(out.err, nil) // still permanent when out.err is
		}
		delay, stop := c.next(ctx, r, n, out, res.Start, end)
		a.Retrying = stop == nil
		c.record(ctx, a)
		if stop != nil {
			return fail(stop, last)
		}
		if err := c.sleep(ctx, delay); err != nil {
			return fail(err, last)
		}
	}
}

// noAnswer tells whether a status (0: none came) leaves it unknown
// whether the receiver acted on the request: no answer, or a gateway's
// 502 or 504 (it lost the server's answer, or stopped waiting for it,
// after forwarding the request), or a 408. An Unsafe request is not
// retried after one.
func noAnswer(status int) bool {
	switch status {
	case 0, http.StatusBadGateway, http.StatusGatewayTimeout, http.StatusRequestTimeout:
		return true
	}
	return false
}

func (c *Client) record(ctx context.Context, a Attempt) {
	switch r := c.recorder.(type) {
	case nil:
	case ContextRecorder:
		r.RecordAttemptContext(ctx, a)
	default:
		r.RecordAttempt(a)
	}
}

// timeLeft is the time to ctx's deadline on the real clock (deadlines are
// real), or effectively forever.
func timeLeft(ctx context.Context) time.Duration {
	if dl, ok := ctx.Deadline(); ok {
		return time.Until(dl)
	}
	return 1<<63 - 1
}

// next decides about the attempt after attempt n, which failed at now with
// a retryable outcome: the delay before it, or why there is none.
func (c *Client) next(ctx context.Context, r *receiver, n int, out outcome, start, now time.Time) (time.Duration, error) {
	rc := c.cfg.Retry
	if n >= rc.MaxAttempts {
		return 0, fmt.Errorf("%w after %s (retry.max_attempts)", ErrGaveUp, plural(n, "attempt"))
	}
	var d time.Duration
	if out.hasRetryAfter {
		d = min(out.retryAfter, rc.MaxRetryAfter)
	} else {
		d = c.backoff(n)
	}
	if now.Add(d).Sub(start) > rc.MaxElapsed {
		return 0, fmt.Errorf("%w after %s: the next, in %v, would start past retry.max_elapsed (%v)", ErrGaveUp, plural(n, "attempt"), d, rc.MaxElapsed)
	}
	if d > timeLeft(ctx) {
		return 0, fmt.Errorf("%w after %s: the next, in %v, would start past the context's deadline", ErrGaveUp, plural(n, "attempt"), d)
	}
	if !r.breaker.willAllow(now.Add(d)) {
		return 0, fmt.Errorf("%w after %s", ErrCircuitOpen, plural(n, "attempt"))
	}
	return d, nil
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return strconv.Itoa(n) + " " + what + "s"
}

// backoff is the full-jitter exponential backoff after attempt n: uniform
// in [0, min(max_delay, base_delay * 2^(n-1))).
func (c *Client) backoff(n int) time.Duration {
	rc := c.cfg.Retry
	ceiling := rc.MaxDelay
	if n-1 < 62 {
		if d := rc.BaseDelay << (n - 1); d > 0 && d>>(n-1) == rc.BaseDelay && d < ceiling {
			ceiling = d
		}
	}
	f := c.jitter()
	if f < 0 || f >= 1 || math.IsNaN(f) {
		f = 0
	}
	return time.Duration(f * float64(ceiling))
}

// outcome is the result of one HTTP request.
type outcome struct {
	status        int
	body          []byte
	retryAfter    time.Duration
	hasRetryAfter bool
	err           error // nil for a 2xx
	retry         bool  // worth another attempt
	failure       bool  // counts against the circuit breaker
	canceled      bool  // the caller's context ended: nothing learnt of the receiver
}

func (c *Client) send(ctx context.Context, req *Request, ts time.Time) outcome {
	timeout := c.cfg.Timeout
	if req.Timeout > 0 {
		timeout = req.Timeout
	}
	actx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var reqBody io.Reader
	if req.Method != http.MethodGet {
		reqBody = bytes.NewReader(req.Body)
	}
	hr, err := http.NewRequestWithContext(actx, req.Method, req.URL, reqBody)
	if err != nil { // check parsed the URL already
		return outcome{err: errs.Permanent(fmt.Errorf("%w: cannot build the request", ErrInvalidRequest))}
	}
	for k, vs := range req.Header {
		hr.Header[http.CanonicalHeaderKey(k)] = append([]string(nil), vs...)
	}
	if reqBody != nil {
		hr.Header.Set("Content-Type", req.ContentType)
	}
	if hr.Header.Get("User-Agent") == "" {
		hr.Header.Set("User-Agent", c.cfg.UserAgent)
	}
	SetHeaders(hr.Header, req.Secrets, req.IdempotencyKey, ts, req.Body)

	hc := c.http
	if req.Transport != nil || req.Redirects != RedirectsDefault {
		hc = &http.Client{Transport: c.http.Transport, CheckRedirect: c.http.CheckRedirect}
		if req.Transport != nil {
			hc.Transport = req.Transport
		}
		if req.Redirects != RedirectsDefault {
			hc.CheckRedirect = checkRedirect(req.Redirects == RedirectsFollow)
		}
	}
	resp, err := hc.Do(hr)
	if err != nil {
		switch {
		case ctx.Err() != nil:
			return outcome{err: ctx.Err(), canceled: true}
		case errors.Is(err, errTooManyRedirects):
			return outcome{err: errs.Permanent(fmt.Errorf("%w: more than %d redirects", ErrRedirect, MaxRedirects))}
		case errors.Is(err, errMethodChanged):
			return outcome{err: errs.Permanent(fmt.Errorf("%w: %w (point the receiver at the final URL, or have it answer 307 or 308)", ErrRedirect, transportError(err)))}
		case errors.Is(err, errElsewhere):
			return outcome{err: errs.Permanent(fmt.Errorf("%w: %w (point the receiver at the final URL)", ErrRedirect, transportError(err)))}
		case errors.Is(actx.Err(), context.DeadlineExceeded):
			return outcome{err: fmt.Errorf("timed out after %v", timeout), retry: true, failure: true}
		}
		return outcome{err: transportError(err), retry: true, failure: true}
	}
	defer resp.Body.Close()
	// A 2xx is a delivery even if its body cannot be read to the end.
	body, _ := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBytes))
	out := outcome{status: resp.StatusCode, body: body}
	se := &StatusError{StatusCode: resp.StatusCode, Body: snippet(body)}
	switch code := resp.StatusCode; {
	case code >= 200 && code < 300:
		return out
	case code >= 300 && code < 400:
		out.err = errs.Permanent(fmt.Errorf("%w: %w (set follow_redirects, or better, fix the URL)", ErrRedirect, se))
	case code == http.StatusRequestTimeout, code == http.StatusTooManyRequests, code >= 500:
		out.err, out.retry, out.failure = se, true, true
		out.retryAfter, out.hasRetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), c.now())
	default:
		out.err = errs.Permanent(fmt.Errorf("%w: %w", ErrRejected, se))
	}
	return out
}

// transportError is err without the URL, which *url.Error repeats and
// which may hold a token.
func transportError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", strings.ToLower(ue.Op), ue.Err)
	}
	return err
}

// parseRetryAfter reads Retry-After: delay-seconds or an HTTP date
// (RFC 9110 10.2.3). A date in the past means now.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 {
			return 0, false
		}
		if secs > int64((1<<63-1)/time.Second) {
			secs = int64((1<<63 - 1) / time.Second)
		}
		return time.Duration(secs) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return max(t.Sub(now), 0), true
}

// snippet is the start of a response body for an error message: at most
// 256 bytes of valid UTF-8 with control characters replaced.
func snippet(b []byte) string {
	const n = 256
	cut := len(b) > n
	if cut {
		b = b[:n]
	}
	s := strings.Map(func(r rune) rune {
		if isControl(r) {
			return ' '
		}
		return r
	}, strings.TrimSpace(strings.ToValidUTF8(string(b), "")))
	if cut {
		s += "..."
	}
	return s
}

// reserved are the headers Request.Header may not set.
var reserved = map[string]bool{
	"Webhook-Id": true, "Webhook-Timestamp": true, "Webhook-Signature": true,
	"Content-Type": true, "Content-Length": true, "Host": true, "Transfer-Encoding": true,
}

// check validates req and fills its defaults. Errors never hold the URL
// nor a secret.
func (c *Client) check(req *Request) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidRequest, fmt.Sprintf(format, args...))
	}
	if req.Receiver == "" || len(req.Receiver) > 256 || strings.ContainsFunc(req.Receiver, isControl) {
		return bad("receiver name: empty, longer than 256 bytes or with control characters")
	}
	if req.Timeout < 0 {
		return bad("timeout %v: negative", req.Timeout)
	}
	if len(req.Integration) > 256 || strings.ContainsFunc(req.Integration, isControl) {
		return bad("integration name: longer than 256 bytes or with control characters")
	}
	u, err := url.Parse(req.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return bad("receiver %s: url: not an absolute http or https URL", req.Receiver)
	}
	if u.User != nil {
		// Basic auth in the URL would be sent, but it belongs in Header.
		return bad("receiver %s: url: holds a user name or password; send an Authorization header instead", req.Receiver)
	}
	if err := checkKey(req.IdempotencyKey); err != nil {
		return bad("receiver %s: idempotency key: %v", req.Receiver, err)
	}
	if len(req.Body) > c.cfg.MaxBodyBytes {
		return fmt.Errorf("%w: receiver %s: %d bytes, max_body_bytes is %d", ErrBodyTooLarge, req.Receiver, len(req.Body), c.cfg.MaxBodyBytes)
	}
	for i, s := range req.Secrets {
		if len(s) == 0 {
			return bad("receiver %s: secret %d is empty", req.Receiver, i)
		}
	}
	if req.ContentType == "" {
		req.ContentType = "application/json"
	}
	switch req.Method {
	case "":
		req.Method = http.MethodPost
	case http.MethodPost, http.MethodPut, http.MethodPatch:
	case http.MethodGet:
		if len(req.Body) > 0 {
			return bad("receiver %s: a GET has no body", req.Receiver)
		}
	default:
		return bad("receiver %s: method %q, want POST, PUT, PATCH or GET", req.Receiver, req.Method)
	}
	if req.Redirects < RedirectsDefault || req.Redirects > RedirectsRefuse {
		return bad("receiver %s: redirect policy %d is none of RedirectsDefault, RedirectsFollow, RedirectsRefuse", req.Receiver, req.Redirects)
	}
	if strings.ContainsFunc(req.ContentType, isControl) {
		return bad("receiver %s: content type has control characters", req.Receiver)
	}
	for k, vs := range req.Header {
		if !validHeaderName(k) {
			return bad("receiver %s: header %q: not a valid header name", req.Receiver, k)
		}
		if reserved[http.CanonicalHeaderKey(k)] {
			return bad("receiver %s: header %s is set by the client", req.Receiver, http.CanonicalHeaderKey(k))
		}
		for _, v := range vs {
			if strings.ContainsAny(v, "\r\n\x00") {
				return bad("receiver %s: header %s: value with a line break or NUL", req.Receiver, http.CanonicalHeaderKey(k))
			}
		}
	}
	return nil
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

func checkKey(k string) error {
	if k == "" || len(k) > 255 {
		return fmt.Errorf("%d characters, want 1 to 255", len(k))
	}
	for i := 0; i < len(k); i++ {
		if b := k[i]; b <= ' ' || b >= 0x7f || b == '.' {
			return fmt.Errorf("character %d is %q; want visible ASCII other than \".\"", i, b)
		}
	}
	return nil
}

// validHeaderName reports whether s is an RFC 9110 token.
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		switch {
		case b >= 'a' && b <= 'z', b >= 'A' && b <= 'Z', b >= '0' && b <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", b) >= 0:
		default:
			return false
		}
	}
	return true
}
