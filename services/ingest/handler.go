package ingest

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/aiops-dev/aiops/pkg/errs"
	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/pkg/httpapi"
	"github.com/aiops-dev/aiops/services/ingest/decode"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"golang.org/x/time/rate"
	"google.golang.org/protobuf/encoding/protowire"
)

// Publisher takes the events of one request. It returns nil only when every
// event is stored (acked by JetStream); the gateway answers the producer
// after that and never before.
type Publisher interface {
	PublishAll(ctx context.Context, events []*event.Envelope) error
}

// Option changes a Handler.
type Option func(*Handler)

// WithClock sets the clock used for receive times and rate limiting.
func WithClock(now func() time.Time) Option { return func(h *Handler) { h.now = now } }

// WithLogger sets the logger (default: none).
func WithLogger(l zerolog.Logger) Option { return func(h *Handler) { h.log = l } }

// withTokenHint adds to the 401 where a client finds the token.
func withTokenHint(hint string) Option { return func(h *Handler) { h.tokenHint = hint } }

// Handler is the gateway's http.Handler. Create it with New.
type Handler struct {
	cfg       Config
	pub       Publisher
	now       func() time.Time
	log       zerolog.Logger
	tokenHint string // added to the 401: where the token is
	tokens    [][sha256.Size]byte
	limiters  []*rate.Limiter // one per token, then one for anonymous requests
	failures  *httpapi.AuthFailures
	inflight  chan struct{} // one slot per request being read, decoded, published
	backlog   *backlogGuard // nil: the store's backlog is not watched
	endpoints map[string]*endpoint
	m         *metrics
}

// Paths the handler serves.
const (
	PathEvents       = "/v1/events"
	PathAlertmanager = "/v1/alertmanager"
	PathRemoteWrite  = "/api/v1/write"
	PathOTLPLogs     = "/v1/logs"
	PathOTLPMetrics  = "/v1/metrics"
	PathChanges      = "/v1/changes"
	// PathPrometheusAlerts is where Prometheus posts its alerts to an
	// Alertmanager (API v2), so that it can send them here directly.
	PathPrometheusAlerts = "/api/v2/alerts"
)

type decoderFunc func(body []byte, o decode.Options) (*decode.Batch, error)

// endpoint is one route: which media types it takes and how it decodes them.
type endpoint struct {
	name string
	// decoder picks the decoder for a media type; nil means 415.
	decoder func(mediaType string, params map[string]string) (decoderFunc, error)
	// accepts lists the media types for the 415 message.
	accepts string
	// snappy: the body is snappy-compressed by the format itself
	// (remote-write), so gzip is refused and "snappy" is accepted.
	snappy bool
	// otlp: protobuf requests get protobuf answers, as OTLP/HTTP requires.
	otlp bool
	// retriesOnly5xx: its usual client drops a batch answered 429
	// (Prometheus remote-write, Alertmanager), so over the rate limit it
	// is answered 503.
	retriesOnly5xx bool
	// skipInvalid: the request may ask for its invalid items to be
	// skipped instead of refusing it whole (?skip_invalid=true,
	// decode.Options.SkipInvalid).
	skipInvalid bool
}

var errWrongType = errors.New("unsupported media type")

func jsonOnly(d decoderFunc, types ...string) func(string, map[string]string) (decoderFunc, error) {
	return func(mt string, _ map[string]string) (decoderFunc, error) {
		for _, t := range types {
			if mt == t {
				return d, nil
			}
		}
		return nil, errWrongType
	}
}

// otlpProtobufTypes are the media types of binary protobuf: the one
// OTLP/HTTP names, and the one RFC 9996 registered for it (naming
// application/x-protobuf a deprecated alias), which clients built on
// that registration send.
var otlpProtobufTypes = []string{"application/x-protobuf", "application/protobuf"}

func otlpDecoder(f func([]byte, decode.Encoding, decode.Options) (*decode.Batch, error)) func(string, map[string]string) (decoderFunc, error) {
	return func(mt string, _ map[string]string) (decoderFunc, error) {
		var enc decode.Encoding
		switch {
		case protobufType(mt) != "":
			enc = decode.Protobuf
		case mt == "application/json":
			enc = decode.JSON
		default:
			return nil, errWrongType
		}
		return func(body []byte, o decode.Options) (*decode.Batch, error) { return f(body, enc, o) }, nil
	}
}

func endpoints() map[string]*endpoint {
	return map[string]*endpoint{
		PathEvents: {
			name: "events",
			decoder: func(mt string, _ map[string]string) (decoderFunc, error) {
				switch mt {
				case "application/json":
					return decode.Events, nil
				case "application/x-ndjson", "application/ndjson", "application/jsonl":
					return decode.NDJSON, nil
				}
				return nil, errWrongType
			},
			accepts:     "application/json or application/x-ndjson",
			skipInvalid: true,
		},
		PathAlertmanager: {
			name:           "alertmanager",
			decoder:        jsonOnly(decode.Alertmanager, "application/json"),
			accepts:        "application/json",
			retriesOnly5xx: true,
		},
		PathPrometheusAlerts: {
			name:           "prometheus_alerts",
			decoder:        jsonOnly(decode.PrometheusAlerts, "application/json"),
			accepts:        "application/json",
			retriesOnly5xx: true,
		},
		PathRemoteWrite: {
			name: "remote_write",
			decoder: func(mt string, params map[string]string) (decoderFunc, error) {
				if mt != "application/x-protobuf" {
					return nil, errWrongType
				}
				if p, ok := params["proto"]; ok && p != "prometheus.WriteRequest" {
					return nil, fmt.Errorf("remote-write message %q is not supported, only remote-write 1.0 (prometheus.WriteRequest): set protobuf_message: prometheus.WriteRequest in remote_write", p)
				}
				return decode.RemoteWrite, nil
			},
			accepts:        "application/x-protobuf (remote-write 1.0)",
			snappy:         true,
			retriesOnly5xx: true,
		},
		PathOTLPLogs: {
			name:    "otlp_logs",
			decoder: otlpDecoder(decode.OTLPLogs),
			accepts: "application/x-protobuf, application/protobuf or application/json",
			otlp:    true,
		},
		PathOTLPMetrics: {
			name:    "otlp_metrics",
			decoder: otlpDecoder(decode.OTLPMetrics),
			accepts: "application/x-protobuf, application/protobuf or application/json",
			otlp:    true,
		},
		PathChanges: {
			name:    "changes",
			decoder: jsonOnly(decode.Changes, "application/json"),
			accepts: "application/json",
		},
	}
}

// New returns the handler, or an error naming the config field that is wrong.
func New(cfg Config, pub Publisher, opts ...Option) (*Handler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if pub == nil {
		return nil, fmt.Errorf("%w: Publisher is nil", ErrInvalidConfig)
	}
	cfg = cfg.withDefaults()
	h := &Handler{cfg: cfg, pub: pub, now: time.Now, log: zerolog.Nop(), endpoints: endpoints(), m: newMetrics()}
	for _, o := range opts {
		o(h)
	}
	// Tokens are compared as SHA-256 digests: equal length, so the
	// constant-time comparison does not leak a token's length either.
	for _, t := range cfg.Tokens {
		h.tokens = append(h.tokens, sha256.Sum256([]byte(t)))
	}
	h.inflight = make(chan struct{}, cfg.MaxConcurrentRequests)
	h.failures = httpapi.NewAuthFailures(cfg.AuthFailureRate, cfg.AuthFailureBurst)
	for range len(cfg.Tokens) + 1 {
		h.limiters = append(h.limiters, rate.NewLimiter(rate.Limit(cfg.RatePerToken), cfg.Burst))
	}
	return h, nil
}

// Paths lists the paths the handler serves, for mounting it on a mux
// next to other routes (health, metrics); any other path answers 404.
func (h *Handler) Paths() []string {
	return []string{PathEvents, PathAlertmanager, PathPrometheusAlerts, PathRemoteWrite, PathOTLPLogs, PathOTLPMetrics, PathChanges}
}

// Response is the body of a 200 answer.
type Response struct {
	Accepted int      `json:"accepted"`
	IDs      []string `json:"ids"`
	// Skipped counts inputs deliberately not turned into events (see
	// decode.Batch.Skipped); omitted when none were.
	Skipped map[string]int `json:"skipped,omitempty"`
	// Problems are why the inputs counted in skipped.invalid were refused
	// (remote-write, Alertmanager and OTLP take the others of their
	// request).
	Problems []decode.Problem `json:"problems,omitempty"`
	// PartialSuccess is, in the answer to an OTLP JSON request of which
	// something was skipped or refused, the partial_success of an
	// Export*ServiceResponse (OTLP's JSON mapping), which OTLP JSON
	// clients read; the other fields are unknown to them and ignored.
	PartialSuccess *OTLPPartialSuccess `json:"partialSuccess,omitempty"`
}

// OTLPPartialSuccess is ExportLogsPartialSuccess or
// ExportMetricsPartialSuccess in OTLP's JSON mapping (64-bit integers as
// strings).
type OTLPPartialSuccess struct {
	RejectedLogRecords int64  `json:"rejectedLogRecords,omitempty,string"`
	RejectedDataPoints int64  `json:"rejectedDataPoints,omitempty,string"`
	ErrorMessage       string `json:"errorMessage,omitempty"`
}

// ErrBusUnavailable is the error of a 503 answer.
const ErrBusUnavailable = "the event bus did not confirm every event of this request; retry the same request later " +
	"(some events may already be stored: a retry stores each once if it has the same id, " +
	"which holds for every endpoint except for events sent without a time or an id: /v1/events envelopes without an id, " +
	"changes without time, OTLP log records without timeUnixNano or observedTimeUnixNano, which take the receive time)"

// ErrorResponse is the body of every error answer.
type ErrorResponse struct {
	Error    string           `json:"error"`
	Problems []decode.Problem `json:"problems,omitempty"`
	// ProblemCount is the number of problems when more were found than
	// Problems lists.
	ProblemCount int `json:"problem_count,omitempty"`
	// Code and Message make the answer to an OTLP JSON request a
	// google.rpc.Status in OTLP's JSON mapping too, as OTLP/HTTP asks of
	// every 4xx and 5xx answer ("the same Content-Type in the response as
	// it received in the request"); the other fields are unknown to an
	// OTLP client and ignored.
	Code    int    `json:"code,omitempty"`
	Message string `json:"message,omitempty"`
}

// ServeHTTP handles one request. The checks run cheapest first, so a
// request without a token or over its rate costs no body read.
// ServeHTTP answers one request (serve) and records it in the gateway's
// metrics.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
	var body *countingReader
	if r.Body != nil {
		body = &countingReader{r: r.Body}
		r.Body = struct {
			io.Reader
			io.Closer
		}{body, r.Body}
	}
	accepted := h.serve(sw, r)
	name := "unknown"
	if ep := h.endpoints[r.URL.Path]; ep != nil {
		name = ep.name
	}
	var n int64
	if body != nil {
		n = body.n
	}
	h.m.observe(name, sw.code, start, accepted, n)
}

// Collector exports the gateway's metrics.
func (h *Handler) Collector() prometheus.Collector { return h.m }

func (h *Handler) serve(w http.ResponseWriter, r *http.Request) (accepted int) {
	ep := h.endpoints[r.URL.Path]
	if ep == nil {
		h.fail(w, r, nil, "", http.StatusNotFound, ErrorResponse{Error: fmt.Sprintf("no endpoint %s; see %s", r.URL.Path, strings.Join(h.Paths(), ", "))})
		return 0
	}
	// An OTLP protobuf client reads only protobuf answers, refusals made
	// before the media type is parsed included: the Content-Type it sent
	// says which it is, even one with a malformed parameter. proto is
	// that media type ("" for any other request), which the answer
	// carries: OTLP/HTTP answers with the Content-Type of the request.
	proto := ""
	if ep.otlp {
		proto = protobufType(r.Header.Get("Content-Type"))
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		h.fail(w, r, ep, proto, http.StatusMethodNotAllowed, ErrorResponse{Error: fmt.Sprintf("method %s not allowed, use POST", r.Method)})
		return 0
	}
	now := h.now()
	client := httpapi.ClientAddr(r)
	// A valid token passes whatever its address did: behind a proxy, or
	// under aiops run, every producer has one address, and one script
	// with a stale token must not lock the others out. Guessing a token
	// is what the block is against, and it holds for the wrong ones.
	who, ok := h.authenticate(r)
	if !ok {
		if wait := h.failures.Blocked(client, now); wait > 0 {
			w.Header().Set("Retry-After", retryAfter(wait))
			h.fail(w, r, ep, proto, http.StatusTooManyRequests, ErrorResponse{Error: fmt.Sprintf("too many requests with a missing or invalid token from this address; retry in %s", wait.Round(time.Millisecond))})
			return 0
		}
		h.failures.Fail(client, now)
		w.Header().Set("WWW-Authenticate", `Bearer realm="aiops"`)
		msg := "missing or invalid bearer token (Authorization: Bearer <token>)"
		if h.cfg.AllowAnonymous && r.Header.Get("Authorization") == "" {
			msg = "missing bearer token: requests without one are taken only when addressed to localhost or an IP address " +
				"(a web page could point a name of its own at this machine); use 127.0.0.1 or localhost, or send Authorization: Bearer <token>"
		}
		if h.tokenHint != "" {
			msg += "; " + h.tokenHint
		}
		h.fail(w, r, ep, proto, http.StatusUnauthorized, ErrorResponse{Error: msg})
		return 0
	}
	if wait := h.admit(who, now); wait > 0 {
		// Prometheus's remote-write (by default) and Alertmanager drop
		// what is answered 429; they retry a 503.
		status := http.StatusTooManyRequests
		if ep.retriesOnly5xx {
			status = http.StatusServiceUnavailable
		}
		w.Header().Set("Retry-After", retryAfter(wait))
		h.fail(w, r, ep, proto, status, ErrorResponse{Error: fmt.Sprintf("over the rate limit of %g requests/s for this token; retry in %s", h.cfg.RatePerToken, wait.Round(time.Millisecond))})
		return 0
	}
	if h.backlog != nil {
		// Accepted now, events would push out older ones the writer has
		// not stored: the producer keeps them until the store caught up.
		if refusal, over := h.backlog.over(r.Context(), now, h.cfg.MaxStoreBacklog); over {
			w.Header().Set("Retry-After", retryAfter(h.cfg.RetryAfter))
			h.fail(w, r, ep, proto, http.StatusServiceUnavailable, ErrorResponse{Error: refusal})
			return 0
		}
	}
	select {
	case h.inflight <- struct{}{}:
		defer func() { <-h.inflight }()
	default:
		w.Header().Set("Retry-After", retryAfter(h.cfg.RetryAfter))
		h.fail(w, r, ep, proto, http.StatusServiceUnavailable, ErrorResponse{Error: fmt.Sprintf("the gateway is handling its limit of %d requests at once; retry the same request later", h.cfg.MaxConcurrentRequests)})
		return 0
	}
	mediaType, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil {
		h.fail(w, r, ep, proto, http.StatusUnsupportedMediaType, ErrorResponse{Error: fmt.Sprintf("Content-Type %q is not a media type; want %s", r.Header.Get("Content-Type"), ep.accepts)})
		return 0
	}
	dec, err := ep.decoder(mediaType, params)
	if err != nil {
		msg := fmt.Sprintf("Content-Type %s is not supported here; want %s", mediaType, ep.accepts)
		if !errors.Is(err, errWrongType) {
			msg = err.Error()
		}
		h.fail(w, r, ep, proto, http.StatusUnsupportedMediaType, ErrorResponse{Error: msg})
		return 0
	}
	body, status, err := h.readBody(w, r, ep)
	if err != nil {
		h.fail(w, r, ep, proto, status, ErrorResponse{Error: err.Error()})
		return 0
	}
	key, err := idempotencyKey(r.Header)
	if err != nil {
		h.fail(w, r, ep, proto, http.StatusBadRequest, ErrorResponse{Error: err.Error()})
		return 0
	}
	skip, err := skipInvalid(r, ep)
	if err != nil {
		h.fail(w, r, ep, proto, http.StatusBadRequest, ErrorResponse{Error: err.Error()})
		return 0
	}
	batch, err := dec(body, decode.Options{Now: now, MaxEvents: h.cfg.MaxEvents, MaxDecodedBytes: int(h.cfg.MaxDecodedBytes), MaxExpandedBytes: int(h.cfg.MaxExpandedBytes),
		MaxPast: h.cfg.MaxEventAge, MaxFuture: h.cfg.MaxEventFuture, IdempotencyKey: key, ResolveTimeout: h.cfg.ResolveTimeout, SkipInvalid: skip})
	if err != nil {
		status, resp := decodeFailure(err)
		h.fail(w, r, ep, proto, status, resp)
		return 0
	}
	if len(batch.Events) > 0 {
		// What the events take: the body's for JSON, more for the
		// formats whose events share one part (decode.Batch).
		bytes := max(len(body), batch.ExpandedBytes())
		if err := h.backlog.reserve(bytes, h.cfg.MaxStoreBacklog); errors.Is(err, errNeverFits) {
			h.fail(w, r, ep, proto, http.StatusRequestEntityTooLarge, ErrorResponse{Error: err.Error()})
			return 0
		} else if err != nil {
			w.Header().Set("Retry-After", retryAfter(h.cfg.RetryAfter))
			h.fail(w, r, ep, proto, http.StatusServiceUnavailable, ErrorResponse{Error: fmt.Sprintf(
				"the events of this request, with those not stored yet and those other requests are publishing, would take %.0f%% of the event stream's limit or more "+
					"(ingest.max_store_backlog), past which the stream discards the oldest, stored or not; retry the same request later", 100*h.cfg.MaxStoreBacklog)})
			return 0
		}
		ctx, cancel := context.WithTimeout(r.Context(), h.cfg.PublishTimeout)
		err = h.pub.PublishAll(ctx, batch.Events)
		cancel()
		h.backlog.published(bytes)
		if err != nil {
			h.log.Warn().Err(err).Str("endpoint", ep.name).Int("events", len(batch.Events)).Msg("publish failed; answered 503")
			w.Header().Set("Retry-After", retryAfter(h.cfg.RetryAfter))
			// Not "nothing was stored": the client keeps no reconnect
			// buffer (pkg/bus), so nothing is sent behind the producer's
			// back after this answer, but a publish whose ack was lost or
			// late may have been stored already. A retry of the same request
			// stores each event once when it has an id the stream saw
			// before (TestE2EBusOutage).
			h.fail(w, r, ep, proto, http.StatusServiceUnavailable, ErrorResponse{Error: ErrBusUnavailable})
			return 0
		}
	}
	h.m.observeSkipped(ep.name, batch)
	h.log.Debug().Str("endpoint", ep.name).Int("token_index", who).Int("events", len(batch.Events)).Msg("accepted")
	if len(batch.Problems) > 0 {
		// Prometheus and Alertmanager read no answer body, and an OTLP
		// exporter may not log it: the problem is told here too.
		h.log.Warn().Str("endpoint", ep.name).Int("token_index", who).Int("refused", batch.Skipped[decode.SkippedInvalid]).Int("accepted", len(batch.Events)).
			Str("first_problem", batch.Problems[0].String()).Msg("some inputs refused, the others taken")
	}
	if proto != "" {
		// An OTLP protobuf client expects an Export*ServiceResponse: empty
		// for full success, else a partial_success counting what was
		// skipped or refused.
		out, err := decode.OTLPResponse(ep.name == "otlp_logs", batch)
		if err != nil {
			h.log.Error().Err(err).Msg("encoding an OTLP response failed; answered empty")
			out = nil
		}
		w.Header().Set("Content-Type", proto)
		w.WriteHeader(http.StatusOK)
		w.Write(out)
		return len(batch.Events)
	}
	if n := batch.Skipped[decode.SkippedInvalid]; n > 0 && ep.name == "remote_write" {
		// Remote-write 1.0: receivers "MAY ingest valid samples within a
		// write request that otherwise contains invalid samples" but "MUST
		// return a HTTP 400 status code" for it. The valid samples are
		// stored (a sender does not retry a 400, so none is lost); the 400
		// makes Prometheus log the refusal and count it as failed, where a
		// 200 told it the batch was sent.
		h.fail(w, r, ep, proto, http.StatusBadRequest, ErrorResponse{
			Error: fmt.Sprintf("%d invalid time series or sample(s) refused; the %d valid samples of the request were stored: do not resend it",
				n, len(batch.Events)),
			Problems: batch.Problems,
		})
		return len(batch.Events)
	}
	resp := Response{Accepted: len(batch.Events), IDs: make([]string, len(batch.Events)), Skipped: batch.Skipped, Problems: batch.Problems}
	for i, e := range batch.Events {
		resp.IDs[i] = e.ID
	}
	if ep.otlp {
		if n, msg := decode.OTLPPartialSuccess(batch); n > 0 || msg != "" {
			resp.PartialSuccess = &OTLPPartialSuccess{ErrorMessage: msg}
			if ep.name == "otlp_logs" {
				resp.PartialSuccess.RejectedLogRecords = n
			} else {
				resp.PartialSuccess.RejectedDataPoints = n
			}
		}
	}
	writeJSON(w, http.StatusOK, resp)
	return len(batch.Events)
}

// protobufType is the protobuf media type (otlpProtobufTypes) a
// Content-Type header names, parameters aside, well-formed or not; ""
// when it names another.
func protobufType(contentType string) string {
	mt, _, _ := strings.Cut(contentType, ";")
	for _, t := range otlpProtobufTypes {
		if strings.EqualFold(strings.TrimSpace(mt), t) {
			return t
		}
	}
	return ""
}

// MaxIdempotencyKey bounds the Idempotency-Key header.
const MaxIdempotencyKey = 255

// idempotencyKey returns the request's Idempotency-Key header ("" when
// absent): a producer that sends envelopes without ids names each request
// with a key of its own (a UUID), and sends the same key when it retries
// that request, so its events keep their ids and are stored once.
func idempotencyKey(h http.Header) (string, error) {
	vs := h.Values("Idempotency-Key")
	switch {
	case len(vs) == 0:
		return "", nil
	case len(vs) > 1:
		return "", fmt.Errorf("the Idempotency-Key header: given %d times, want once", len(vs))
	}
	k := vs[0]
	if k == "" || len(k) > MaxIdempotencyKey {
		return "", fmt.Errorf("the Idempotency-Key header: %d characters, want 1 to %d", len(k), MaxIdempotencyKey)
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x21 || k[i] > 0x7e {
			return "", fmt.Errorf("the Idempotency-Key header: character %d is not printable ASCII", i+1)
		}
	}
	return k, nil
}

// skipInvalid reads the query parameter skip_invalid of an endpoint that
// takes it (any other ignores the query, as before).
func skipInvalid(r *http.Request, ep *endpoint) (bool, error) {
	if !ep.skipInvalid || !r.URL.Query().Has("skip_invalid") {
		return false, nil
	}
	v := r.URL.Query().Get("skip_invalid")
	skip, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("the skip_invalid parameter: %q is not true or false", v)
	}
	return skip, nil
}

// authenticate returns the index of the request's token (len(tokens) for
// an anonymous request when those are allowed).
func (h *Handler) authenticate(r *http.Request) (int, bool) {
	auth := r.Header.Get("Authorization")
	scheme, token, found := strings.Cut(auth, " ")
	if !found || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		// Anonymous requests are allowed on loopback only, and there
		// only those addressed to localhost or an IP address: not a web
		// page's own name rebound to 127.0.0.1 (httpapi.LocalHost).
		if auth == "" && h.cfg.AllowAnonymous && httpapi.LocalHost(r.Host) {
			return len(h.tokens), true
		}
		return 0, false
	}
	digest := sha256.Sum256([]byte(strings.TrimSpace(token)))
	match := -1
	// Every configured token is compared, so the time taken does not say
	// which one (or whether any) matched.
	for i := range h.tokens {
		if subtle.ConstantTimeCompare(digest[:], h.tokens[i][:]) == 1 {
			match = i
		}
	}
	return match, match >= 0
}

// admit takes one request from the token's bucket; it returns how long to
// wait when the bucket is empty, else 0.
func (h *Handler) admit(who int, now time.Time) time.Duration {
	lim := h.limiters[who]
	res := lim.ReserveN(now, 1)
	if !res.OK() {
		return time.Second
	}
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return d
	}
	return 0
}

func retryAfter(d time.Duration) string {
	return strconv.Itoa(int(math.Ceil(max(d, time.Second).Seconds())))
}

var errBodyTooLarge = errors.New("request body too large")

// readBody reads the body within MaxBodyBytes and undoes gzip within
// MaxDecodedBytes; the status goes with the error.
func (h *Handler) readBody(w http.ResponseWriter, r *http.Request, ep *endpoint) ([]byte, int, error) {
	encoding := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding")))
	switch {
	case encoding == "" || encoding == "identity":
	case encoding == "gzip" && !ep.snappy:
	case encoding == "snappy" && ep.snappy:
		// The remote-write decoder undoes snappy and checks its size.
	default:
		want := "gzip or none"
		if ep.snappy {
			want = "snappy"
		}
		return nil, http.StatusUnsupportedMediaType, fmt.Errorf("Content-Encoding %q is not supported here; want %s", encoding, want)
	}
	if r.ContentLength > h.cfg.MaxBodyBytes {
		return nil, http.StatusRequestEntityTooLarge, fmt.Errorf("%w: %d bytes, over the limit of %d", errBodyTooLarge, r.ContentLength, h.cfg.MaxBodyBytes)
	}
	var buf bytes.Buffer
	if r.ContentLength > 0 {
		buf.Grow(int(r.ContentLength) + bytes.MinRead)
	}
	paced := &pacedBody{r: http.MaxBytesReader(w, r.Body, h.cfg.MaxBodyBytes), rc: http.NewResponseController(w),
		begin: time.Now(), grace: h.cfg.BodyGracePeriod, rate: h.cfg.MinBodyRate}
	_, err := buf.ReadFrom(paced)
	if err != nil {
		var tooLarge *http.MaxBytesError
		switch {
		case errors.As(err, &tooLarge):
			return nil, http.StatusRequestEntityTooLarge, fmt.Errorf("%w: over the limit of %d bytes", errBodyTooLarge, h.cfg.MaxBodyBytes)
		case paced.timedOut(err):
			// Every producer the gateway serves retries a 503 (Prometheus
			// and the OpenTelemetry exporters drop a request answered 408),
			// and a slow link may be quicker next time.
			h.log.Warn().Str("endpoint", ep.name).Int64("bytes", paced.n).Dur("after", time.Since(paced.begin)).
				Msg("request body arrived too slowly; answered 503")
			w.Header().Set("Retry-After", retryAfter(h.cfg.RetryAfter))
			return nil, http.StatusServiceUnavailable, fmt.Errorf("the request body arrived slower than %d bytes/s after the first %s (%d bytes in %s): "+
				"the gateway stopped reading to serve other producers; retry the same request, or send smaller ones",
				h.cfg.MinBodyRate, h.cfg.BodyGracePeriod, paced.n, time.Since(paced.begin).Round(time.Millisecond))
		}
		return nil, http.StatusBadRequest, fmt.Errorf("reading the request body: %v", err)
	}
	if encoding != "gzip" {
		return buf.Bytes(), 0, nil
	}
	zr, err := gzip.NewReader(&buf)
	if err != nil {
		return nil, http.StatusBadRequest, fmt.Errorf("the body is not gzip: %v", err)
	}
	// Read one byte past the limit to tell "exactly at" from "over" without
	// inflating a zip bomb any further.
	plain, err := io.ReadAll(io.LimitReader(zr, h.cfg.MaxDecodedBytes+1))
	if err != nil {
		return nil, http.StatusBadRequest, fmt.Errorf("the body is not valid gzip: %v", err)
	}
	if int64(len(plain)) > h.cfg.MaxDecodedBytes {
		return nil, http.StatusRequestEntityTooLarge, fmt.Errorf("%w: over %d bytes after gzip decompression", errBodyTooLarge, h.cfg.MaxDecodedBytes)
	}
	return plain, 0, nil
}

// maxBodyTime is the longest a request body may take to arrive, the
// server's ReadTimeout: a body read under pacedBody's deadlines, which
// replace the server's, still ends there.
const maxBodyTime = 2 * time.Minute

// pacedBody reads a request body under a read deadline that moves with
// what arrived: grace, plus a second for each rate bytes read, at most
// maxBodyTime after begin. A client that stalls or trickles is cut off
// once it falls behind, instead of holding its concurrency slot until
// the server's read timeout. Without a connection to set deadlines on
// (a handler served by httptest.ResponseRecorder) the body is read as is.
//
// No deadline is set once the body ended: net/http then lifts it and
// reads on for the next request, and a deadline passing under that read
// would cancel the request's context while its events are published.
type pacedBody struct {
	r           io.Reader
	rc          *http.ResponseController
	begin       time.Time
	grace       time.Duration
	rate        int64 // bytes per second
	n           int64 // bytes read
	err         error // the first error (io.EOF at the end)
	deadline    time.Time
	unsupported bool
}

// bodyDeadline is when the next bytes of a body must arrive after n
// bytes came since begin.
func bodyDeadline(begin time.Time, n int64, grace time.Duration, rate int64) time.Time {
	due := grace + time.Duration(float64(n)/float64(rate)*float64(time.Second))
	return begin.Add(min(due, maxBodyTime))
}

func (b *pacedBody) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if d := bodyDeadline(b.begin, b.n, b.grace, b.rate); !b.unsupported && !d.Equal(b.deadline) {
		if err := b.rc.SetReadDeadline(d); err != nil {
			b.unsupported = true
		}
		b.deadline = d
	}
	n, err := b.r.Read(p)
	b.n += int64(n)
	b.err = err
	return n, err
}

// timedOut says whether err is the body's deadline passing.
func (b *pacedBody) timedOut(err error) bool {
	return !b.unsupported && errors.Is(err, os.ErrDeadlineExceeded)
}

// decodeFailure maps a decoder error to a status and an answer.
func decodeFailure(err error) (int, ErrorResponse) {
	var invalid *decode.Error
	switch {
	case errors.Is(err, decode.ErrTooLarge), errors.Is(err, decode.ErrTooManyEvents), errors.Is(err, decode.ErrTooMuchOutput):
		return http.StatusRequestEntityTooLarge, ErrorResponse{Error: err.Error()}
	case errors.As(err, &invalid):
		resp := ErrorResponse{
			Error:    fmt.Sprintf("invalid request, nothing accepted: %d problem(s)", invalid.Total),
			Problems: invalid.Problems,
		}
		if invalid.Total > len(invalid.Problems) {
			resp.ProblemCount = invalid.Total
		}
		return http.StatusBadRequest, resp
	case errs.IsPermanent(err):
		return http.StatusBadRequest, ErrorResponse{Error: err.Error()}
	}
	return http.StatusInternalServerError, ErrorResponse{Error: "internal error decoding the request"}
}

// fail writes an error answer: JSON, or for an OTLP protobuf request (of
// media type proto) the google.rpc.Status message OTLP/HTTP clients read.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, ep *endpoint, proto string, status int, resp ErrorResponse) {
	name := "unknown"
	if ep != nil {
		name = ep.name
	}
	h.log.Debug().Str("endpoint", name).Int("status", status).Str("remote", r.RemoteAddr).Str("error", resp.Error).Msg("refused")
	msg := resp.Error
	for _, p := range resp.Problems {
		msg += "; " + p.String()
	}
	if ep != nil && ep.otlp && proto == "" {
		resp.Code, resp.Message = grpcCode(status), msg
	}
	if proto != "" {
		w.Header().Set("Content-Type", proto)
		w.WriteHeader(status)
		_, _ = w.Write(rpcStatus(grpcCode(status), msg))
		return
	}
	writeJSON(w, status, resp)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false) // "Bearer <token>", not "Bearer \u003ctoken\u003e"
	_ = enc.Encode(v)
}

// rpcStatus encodes google.rpc.Status{code=1, message=2}: two fields, not
// worth a dependency on the genproto module.
func rpcStatus(code int, msg string) []byte {
	var b []byte
	b = protowire.AppendTag(b, 1, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(code))
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	return protowire.AppendString(b, msg)
}

// grpcCode is the gRPC status code OTLP pairs with an HTTP status.
func grpcCode(status int) int {
	switch status {
	case http.StatusBadRequest:
		return 3 // INVALID_ARGUMENT
	case http.StatusUnauthorized:
		return 16 // UNAUTHENTICATED
	case http.StatusRequestEntityTooLarge, http.StatusTooManyRequests:
		return 8 // RESOURCE_EXHAUSTED
	case http.StatusServiceUnavailable:
		return 14 // UNAVAILABLE
	}
	return 2 // UNKNOWN
}
