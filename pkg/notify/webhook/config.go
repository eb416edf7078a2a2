package webhook

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/aiops-dev/aiops/pkg/config"
)

// ErrInvalidConfig is wrapped by every error Config.Validate and New
// return, so a main maps them to its usage exit code with errors.Is.
var ErrInvalidConfig = fmt.Errorf("webhook: %w", config.ErrInvalidConfig)

// Config configures a Client: the limits of one request and, per receiver,
// the retries, the circuit breaker and the rate limit.
//
// The zero value is usable: every zero field takes the default listed
// beside it (DefaultConfig). Booleans are phrased so that false is the
// default.
type Config struct {
	// Timeout bounds one attempt, from sending the request to reading the
	// response body. Default 15s, the low end of the 15 to 30s the
	// specification recommends: a receiver slower than that is retried.
	Timeout time.Duration `yaml:"timeout" json:"timeout"`
	// MaxBodyBytes refuses a request body larger than this before anything
	// is sent (a permanent error). Default 256 KiB.
	MaxBodyBytes int `yaml:"max_body_bytes" json:"max_body_bytes"`
	// FollowRedirects follows up to MaxRedirects redirects. Default false:
	// a 3xx is a permanent failure, as the specification recommends (fix
	// the URL instead); a redirect may also turn the POST into a GET.
	FollowRedirects bool `yaml:"follow_redirects" json:"follow_redirects"`
	// UserAgent is sent with every request. Default "aiops-notifier".
	UserAgent string `yaml:"user_agent" json:"user_agent"`

	Retry     RetryConfig     `yaml:"retry" json:"retry"`
	Breaker   BreakerConfig   `yaml:"breaker" json:"breaker"`
	RateLimit RateLimitConfig `yaml:"rate_limit" json:"rate_limit"`
}

// RetryConfig says when and how often a failed attempt is tried again.
// Delivery stops at whichever limit comes first: MaxAttempts, or an attempt
// that would start after MaxElapsed, or the context's deadline.
type RetryConfig struct {
	// BaseDelay is the backoff before the second attempt; each further
	// attempt doubles it, up to MaxDelay, and the delay actually slept is
	// drawn uniformly from [0, backoff) ("full jitter"). Default 500ms.
	BaseDelay time.Duration `yaml:"base_delay" json:"base_delay"`
	// MaxDelay caps the backoff. Default 30s.
	MaxDelay time.Duration `yaml:"max_delay" json:"max_delay"`
	// MaxAttempts counts the first attempt. Default 6; 1 disables retries.
	MaxAttempts int `yaml:"max_attempts" json:"max_attempts"`
	// MaxElapsed bounds the time from the first attempt to the start of the
	// last. Default 2m: a receiver down for longer gets the notification
	// when the caller delivers it again.
	MaxElapsed time.Duration `yaml:"max_elapsed" json:"max_elapsed"`
	// MaxRetryAfter caps how long a Retry-After header (seconds or an HTTP
	// date) makes an attempt wait. Default 1m.
	MaxRetryAfter time.Duration `yaml:"max_retry_after" json:"max_retry_after"`
}

// BreakerConfig configures the circuit breaker of each receiver. A failure
// is an attempt that would be retried (5xx, 408, 429, a timeout, a
// connection error); any other answer (2xx, other 4xx, 3xx) shows the
// receiver is up and resets the count.
type BreakerConfig struct {
	// Disabled turns the breakers off.
	Disabled bool `yaml:"disabled" json:"disabled"`
	// Failures is the number of consecutive failures that opens the
	// breaker; while open every delivery to the receiver fails at once
	// with ErrCircuitOpen, without a request. Default 5.
	Failures int `yaml:"failures" json:"failures"`
	// CoolDown is how long the breaker stays open before it lets one trial
	// request through (half-open): success closes it, failure opens it for
	// another CoolDown. Default 30s.
	CoolDown time.Duration `yaml:"cool_down" json:"cool_down"`
}

// RateLimitConfig configures the token bucket of each receiver: every
// attempt takes a token, and waits for one when the bucket is empty.
type RateLimitConfig struct {
	// Disabled turns the rate limits off.
	Disabled bool `yaml:"disabled" json:"disabled"`
	// PerSecond is the rate at which tokens come back. Default 1, which
	// Slack's incoming webhooks and PagerDuty's Events API (per key) both
	// accept in bursts; raise it for receivers built for more.
	PerSecond float64 `yaml:"per_second" json:"per_second"`
	// Burst is the bucket's size: how many attempts may go at once after a
	// quiet period. Default 10.
	Burst int `yaml:"burst" json:"burst"`
	// MaxWait is the longest an attempt waits for a token; when the bucket
	// is further behind, delivery fails with ErrRateLimited (transient)
	// rather than queueing without bound. Default 1m.
	MaxWait time.Duration `yaml:"max_wait" json:"max_wait"`
}

// Defaults returned by DefaultConfig.
const (
	DefaultTimeout       = 15 * time.Second
	DefaultMaxBodyBytes  = 256 << 10
	DefaultUserAgent     = "aiops-notifier"
	DefaultBaseDelay     = 500 * time.Millisecond
	DefaultMaxDelay      = 30 * time.Second
	DefaultMaxAttempts   = 6
	DefaultMaxElapsed    = 2 * time.Minute
	DefaultMaxRetryAfter = time.Minute
	DefaultFailures      = 5
	DefaultCoolDown      = 30 * time.Second
	DefaultPerSecond     = 1.0
	DefaultBurst         = 10
	DefaultMaxWait       = time.Minute
)

// MaxResponseBytes is how much of a response body is read (and kept in
// Result.Body); the rest is discarded unread.
const MaxResponseBytes = 64 << 10

// MaxRedirects is how many redirects a Client follows when
// Config.FollowRedirects is set (or a Request says RedirectsFollow).
const MaxRedirects = 5

// RedirectPolicy says whether one Request follows redirects, for a
// receiver whose configuration decides (Alertmanager's
// http_config.follow_redirects).
type RedirectPolicy int

const (
	// RedirectsDefault does as Config.FollowRedirects says.
	RedirectsDefault RedirectPolicy = iota
	// RedirectsFollow follows up to MaxRedirects redirects.
	RedirectsFollow
	// RedirectsRefuse makes a 3xx a permanent failure (ErrRedirect).
	RedirectsRefuse
)

// DefaultConfig returns Config{} with every default filled in.
func DefaultConfig() Config { return Config{}.WithDefaults() }

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	setDefault(&c.Timeout, DefaultTimeout)
	setDefault(&c.MaxBodyBytes, DefaultMaxBodyBytes)
	setDefault(&c.UserAgent, DefaultUserAgent)
	setDefault(&c.Retry.BaseDelay, DefaultBaseDelay)
	setDefault(&c.Retry.MaxDelay, DefaultMaxDelay)
	setDefault(&c.Retry.MaxAttempts, DefaultMaxAttempts)
	setDefault(&c.Retry.MaxElapsed, DefaultMaxElapsed)
	setDefault(&c.Retry.MaxRetryAfter, DefaultMaxRetryAfter)
	setDefault(&c.Breaker.Failures, DefaultFailures)
	setDefault(&c.Breaker.CoolDown, DefaultCoolDown)
	setDefault(&c.RateLimit.PerSecond, DefaultPerSecond)
	setDefault(&c.RateLimit.Burst, DefaultBurst)
	setDefault(&c.RateLimit.MaxWait, DefaultMaxWait)
	return c
}

func setDefault[T comparable](p *T, d T) {
	var zero T
	if *p == zero {
		*p = d
	}
}

func invalid(key, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrInvalidConfig, key, fmt.Sprintf(format, args...))
}

// Validate checks c after filling defaults; each error names the key and
// wraps ErrInvalidConfig.
func (c Config) Validate() error {
	c = c.WithDefaults()
	r, b, l := c.Retry, c.Breaker, c.RateLimit
	switch {
	case c.Timeout < time.Millisecond:
		return invalid("timeout", "%v, want at least 1ms", c.Timeout)
	case c.MaxBodyBytes < 1:
		return invalid("max_body_bytes", "%d, want at least 1", c.MaxBodyBytes)
	case strings.ContainsAny(c.UserAgent, "\r\n\x00"):
		return invalid("user_agent", "contains a line break or NUL")
	case r.BaseDelay < 0:
		return invalid("retry.base_delay", "negative (%v)", r.BaseDelay)
	case r.MaxDelay < r.BaseDelay:
		return invalid("retry.max_delay", "%v is shorter than retry.base_delay (%v)", r.MaxDelay, r.BaseDelay)
	case r.MaxAttempts < 1 || r.MaxAttempts > 1000:
		return invalid("retry.max_attempts", "%d, want 1 to 1000", r.MaxAttempts)
	case r.MaxElapsed < 0:
		return invalid("retry.max_elapsed", "negative (%v)", r.MaxElapsed)
	case r.MaxRetryAfter < 0:
		return invalid("retry.max_retry_after", "negative (%v)", r.MaxRetryAfter)
	case b.Failures < 1:
		return invalid("breaker.failures", "%d, want at least 1", b.Failures)
	case b.CoolDown < 0:
		return invalid("breaker.cool_down", "negative (%v)", b.CoolDown)
	case math.IsNaN(l.PerSecond) || math.IsInf(l.PerSecond, 0) || l.PerSecond <= 0:
		return invalid("rate_limit.per_second", "%v, want a finite number above 0", l.PerSecond)
	case l.Burst < 1:
		return invalid("rate_limit.burst", "%d, want at least 1", l.Burst)
	case l.MaxWait < 0:
		return invalid("rate_limit.max_wait", "negative (%v)", l.MaxWait)
	}
	return nil
}
