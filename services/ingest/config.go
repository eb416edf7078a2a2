// Package ingest is the HTTP side of the ingest gateway: one http.Handler
// that authenticates producers, limits their rate and request sizes, turns
// each supported format into envelopes (package decode) and answers only
// after a Publisher took every event of the request.
//
// The answer is 200 with the count and the ids once PublishAll returned nil,
// or 503 with Retry-After when it failed: an event is never dropped without
// the producer being told. A request with any invalid item is refused whole
// (400) so that a producer never has to work out which half of its batch got
// in.
package ingest

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/aiops-dev/aiops/pkg/config"
	"github.com/aiops-dev/aiops/services/ingest/decode"
)

// Config sets the gateway's limits and credentials. The zero value of a
// field means its default, except Tokens: without tokens every request is
// refused with 401 unless AllowAnonymous is set.
type Config struct {
	// Tokens are the bearer tokens producers may present. Load them from a
	// file or the environment; they are never logged.
	Tokens []string `yaml:"-" env:"tokens"`
	// AllowAnonymous accepts requests without a token (all of them share
	// one rate limiter). Only for local development.
	AllowAnonymous bool `yaml:"allow_anonymous"`
	// MaxBodyBytes bounds a request body as sent (compressed). Default 10 MiB.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// MaxDecodedBytes bounds a body after gzip or snappy decompression.
	// Default 10 MiB.
	MaxDecodedBytes int64 `yaml:"max_decoded_bytes"`
	// MaxEvents bounds the events one request may produce. Default 10,000.
	MaxEvents int `yaml:"max_events"`
	// MaxExpandedBytes bounds the events one request may produce by their
	// estimated size as JSON, checked before they are built: a remote-write
	// series' labels and an OTLP resource are copied into every event made
	// from them. Default 32 MiB (decode.DefaultMaxExpandedBytes).
	MaxExpandedBytes int64 `yaml:"max_expanded_bytes"`
	// RatePerToken is the sustained requests per second each token may
	// make; Burst how many it may make at once. Defaults 100 and 200.
	RatePerToken float64 `yaml:"rate_per_token"`
	Burst        int     `yaml:"burst"`
	// MaxEventAge and MaxEventFuture bound an event's time around the
	// gateway's clock: the store drops day partitions past their retention,
	// so an older event would be acked and then deleted, and far-apart times
	// would each open a partition. Such events are refused with a 400 (a
	// firing alert that started earlier is kept with a later time, see
	// docs/security.md). Defaults 13 days (a day less than the events and
	// logs tables' 14 days of writer.retention: keep it so if either
	// changes) and 1 hour. An observed time the producer set is refused
	// too past MaxEventFuture: the correlator takes a report observed
	// before the latest as old news.
	MaxEventAge    time.Duration `yaml:"max_event_age"`
	MaxEventFuture time.Duration `yaml:"max_event_future"`
	// ResolveTimeout is how long an alert posted to /api/v2/alerts firing
	// without endsAt holds without a resend before the correlator takes
	// it as resolved, as Alertmanager's global.resolve_timeout. Default
	// 5 minutes (decode.DefaultResolveTimeout).
	ResolveTimeout time.Duration `yaml:"resolve_timeout"`
	// MaxConcurrentRequests bounds the requests past authentication that
	// are read, decoded and published at once; one more is answered 503
	// with Retry-After. Each request is bounded on its own (body, decoded
	// body, expansion), so this bounds the gateway's memory. Default 16.
	MaxConcurrentRequests int `yaml:"max_concurrent_requests"`
	// AuthFailureRate is the sustained requests per second with a missing
	// or wrong token one client address may make; AuthFailureBurst how many
	// at once. Past them every request from that address without a valid
	// token is answered 429 until the bucket refills; a valid token still
	// passes (behind a proxy, or under aiops run, many producers share one
	// address, and one with a stale token must not lock the others out;
	// tokens of 16 characters or more are out of a guesser's reach anyway).
	// Defaults 1 and 10.
	AuthFailureRate  float64 `yaml:"auth_failure_rate"`
	AuthFailureBurst int     `yaml:"auth_failure_burst"`
	// MinBodyRate and BodyGracePeriod bound how long a request may hold
	// one of the MaxConcurrentRequests slots while its body arrives: after
	// the grace period the body must keep arriving at MinBodyRate bytes/s
	// on average, else the request is answered 503 and its slot freed (a
	// stalled client, or one gone without closing its connection, held it
	// until the server's 2-minute read timeout, and as many of them as
	// slots made the gateway refuse every producer). Defaults 16 KiB/s
	// and 10 s.
	MinBodyRate     int64         `yaml:"min_body_rate"`
	BodyGracePeriod time.Duration `yaml:"body_grace_period"`
	// PublishTimeout bounds how long a request waits for the Publisher.
	// Default 10 s.
	PublishTimeout time.Duration `yaml:"publish_timeout"`
	// RetryAfter is what a 503 tells the producer to wait. Default 1 s.
	RetryAfter time.Duration `yaml:"retry_after"`
	// MaxStoreBacklog is the part of the event stream's limit
	// (streams.max_bytes) that events the writer has not stored may take
	// before requests are refused with 503 (WithStoreBacklog): past the
	// limit the stream discards its oldest events, stored or not, so an
	// event answered 200 could never reach ClickHouse. The rest is room
	// for what the stages still derive from events already taken.
	// Default 0.9; at most 1.
	MaxStoreBacklog float64 `yaml:"max_store_backlog"`
}

// Defaults.
const (
	DefaultMaxBodyBytes          = 10 << 20
	DefaultMaxDecodedBytes       = 10 << 20
	DefaultMaxEvents             = 10_000
	DefaultRatePerToken          = 100
	DefaultBurst                 = 200
	DefaultMaxConcurrentRequests = 16
	DefaultAuthFailureRate       = 1
	DefaultAuthFailureBurst      = 10
	DefaultMinBodyRate           = 16 << 10
	DefaultBodyGracePeriod       = 10 * time.Second
	DefaultPublishTimeout        = 10 * time.Second
	DefaultRetryAfter            = time.Second
	DefaultMaxStoreBacklog       = 0.9
)

// withDefaults fills the zero fields.
func (c Config) withDefaults() Config {
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.MaxDecodedBytes == 0 {
		c.MaxDecodedBytes = DefaultMaxDecodedBytes
	}
	if c.MaxEvents == 0 {
		c.MaxEvents = DefaultMaxEvents
	}
	if c.MaxExpandedBytes == 0 {
		c.MaxExpandedBytes = decode.DefaultMaxExpandedBytes
	}
	if c.RatePerToken == 0 {
		c.RatePerToken = DefaultRatePerToken
	}
	if c.Burst == 0 {
		c.Burst = DefaultBurst
	}
	if c.MaxEventAge == 0 {
		c.MaxEventAge = decode.DefaultMaxPast
	}
	if c.MaxEventFuture == 0 {
		c.MaxEventFuture = decode.DefaultMaxFuture
	}
	if c.ResolveTimeout == 0 {
		c.ResolveTimeout = decode.DefaultResolveTimeout
	}
	if c.MaxConcurrentRequests == 0 {
		c.MaxConcurrentRequests = DefaultMaxConcurrentRequests
	}
	if c.AuthFailureRate == 0 {
		c.AuthFailureRate = DefaultAuthFailureRate
	}
	if c.AuthFailureBurst == 0 {
		c.AuthFailureBurst = DefaultAuthFailureBurst
	}
	if c.MinBodyRate == 0 {
		c.MinBodyRate = DefaultMinBodyRate
	}
	if c.BodyGracePeriod == 0 {
		c.BodyGracePeriod = DefaultBodyGracePeriod
	}
	if c.PublishTimeout == 0 {
		c.PublishTimeout = DefaultPublishTimeout
	}
	if c.RetryAfter == 0 {
		c.RetryAfter = DefaultRetryAfter
	}
	if c.MaxStoreBacklog == 0 {
		c.MaxStoreBacklog = DefaultMaxStoreBacklog
	}
	return c
}

// ErrInvalidConfig is wrapped by every error of Config.Validate.
var ErrInvalidConfig = fmt.Errorf("ingest: %w", config.ErrInvalidConfig)

// Validate checks the config after defaults are applied, naming the field.
func (c Config) Validate() error {
	c = c.withDefaults()
	var problems []error
	bad := func(field, format string, args ...any) {
		problems = append(problems, fmt.Errorf("%w: %s: %s", ErrInvalidConfig, field, fmt.Sprintf(format, args...)))
	}
	if len(c.Tokens) == 0 && !c.AllowAnonymous {
		bad("tokens", "no bearer tokens and allow_anonymous is false: every request would be refused")
	}
	for i, t := range c.Tokens {
		if len(t) < 16 {
			bad(fmt.Sprintf("tokens[%d]", i), "is %d characters, want at least 16", len(t))
		}
	}
	if c.MaxBodyBytes < 0 {
		bad("max_body_bytes", "is %d, want > 0", c.MaxBodyBytes)
	}
	if c.MaxDecodedBytes < 0 {
		bad("max_decoded_bytes", "is %d, want > 0", c.MaxDecodedBytes)
	}
	if c.MaxDecodedBytes > 1<<30 {
		bad("max_decoded_bytes", "is %d, over the 1 GiB a request may hold in memory", c.MaxDecodedBytes)
	}
	if c.MaxExpandedBytes < 0 || c.MaxExpandedBytes > 1<<30 {
		bad("max_expanded_bytes", "is %d, want 1 to 1 GiB", c.MaxExpandedBytes)
	}
	if c.MaxEvents < 0 {
		bad("max_events", "is %d, want > 0", c.MaxEvents)
	}
	if !finitePositive(c.RatePerToken) {
		bad("rate_per_token", "is %g, want a finite number > 0 (requests per second)", c.RatePerToken)
	}
	if c.Burst < 0 {
		bad("burst", "is %d, want > 0", c.Burst)
	}
	if c.MaxEventAge < 0 {
		bad("max_event_age", "is %s, want > 0", c.MaxEventAge)
	}
	if c.MaxEventFuture < 0 {
		bad("max_event_future", "is %s, want > 0", c.MaxEventFuture)
	}
	if c.ResolveTimeout < 0 {
		bad("resolve_timeout", "is %s, want > 0", c.ResolveTimeout)
	}
	if c.MaxConcurrentRequests < 0 {
		bad("max_concurrent_requests", "is %d, want > 0", c.MaxConcurrentRequests)
	}
	if !finitePositive(c.AuthFailureRate) {
		bad("auth_failure_rate", "is %g, want a finite number > 0 (requests per second)", c.AuthFailureRate)
	}
	if c.AuthFailureBurst < 0 {
		bad("auth_failure_burst", "is %d, want > 0", c.AuthFailureBurst)
	}
	if c.MinBodyRate < 0 {
		bad("min_body_rate", "is %d, want > 0 (bytes per second)", c.MinBodyRate)
	}
	if c.BodyGracePeriod < 0 {
		bad("body_grace_period", "is %s, want > 0", c.BodyGracePeriod)
	}
	if !(c.MaxStoreBacklog >= 0 && c.MaxStoreBacklog <= 1) { // NaN too: no ratio is >= NaN, nothing would be refused
		bad("max_store_backlog", "is %g, want a part of the stream's limit above 0 and at most 1", c.MaxStoreBacklog)
	}
	if c.PublishTimeout < 0 {
		bad("publish_timeout", "is %s, want > 0", c.PublishTimeout)
	}
	if c.RetryAfter < 0 {
		bad("retry_after", "is %s, want > 0", c.RetryAfter)
	}
	return errors.Join(problems...)
}

// finitePositive tells whether a rate is one a token bucket can keep: NaN
// and +Inf pass a plain "< 0" check and each make a bucket that never
// runs dry, so every request would pass without a word.
func finitePositive(rate float64) bool {
	return rate > 0 && !math.IsInf(rate, 1)
}
