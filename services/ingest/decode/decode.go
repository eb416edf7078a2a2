// Package decode turns what producers send to the ingest gateway (envelopes
// as JSON or NDJSON, Alertmanager webhooks, Prometheus remote-write, OTLP
// logs and metrics, change events) into normalized, validated envelopes.
//
// Every decoder takes the request body (already decompressed from gzip; the
// remote-write decoder undoes snappy itself because it is part of that
// format) and Options, and returns a Batch or an error. Every error is
// permanent: the same bytes will never decode. Invalid data is an *Error that
// lists each problem with the item it was found in and the field, so a
// producer can fix its payload; a decoder checks every item and refuses the
// request whole when any item is invalid, never accepting a part. Except
// the formats whose senders drop a whole batch answered 4xx (remote-write,
// Alertmanager, OTLP): they take the valid inputs of a request and count
// the others in Batch.Skipped with their problems in Batch.Problems, and
// refuse only a request with none valid.
package decode

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/aiops-dev/aiops/pkg/errs"
	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/oklog/ulid/v2"
)

// Sentinel errors for limits; a decoder wraps them (permanent) so that
// errors.Is finds them and the HTTP layer can answer 413.
var (
	// ErrTooLarge: the decompressed payload is over Options.MaxDecodedBytes.
	ErrTooLarge = errors.New("payload too large")
	// ErrTooManyEvents: the request would produce more than Options.MaxEvents events.
	ErrTooManyEvents = errors.New("too many events in one request")
	// ErrTooMuchOutput: the events a request would make are over
	// Options.MaxExpandedBytes (see there).
	ErrTooMuchOutput = errors.New("request expands to too much event data")
)

// Defaults used when an Options field is zero.
const (
	DefaultMaxEvents       = 10_000
	DefaultMaxDecodedBytes = 10 << 20
	// DefaultMaxExpandedBytes is 32 MiB of events (as JSON) per request:
	// 10,000 events of 3.3 KiB, room for a full batch of OTLP logs with a
	// resource of a few dozen attributes, while the 92 KB remote-write
	// request of one series with 128 labels and 10,000 samples (34 MB of
	// events) that took a gateway from 61 MB to 1 GB is refused before a
	// single event is built.
	DefaultMaxExpandedBytes = 32 << 20
	// DefaultMaxPast is a day less than the shortest retention of a table
	// every event is written to (events and logs, 14 days), so an accepted
	// event is kept at least a day.
	DefaultMaxPast = 13 * 24 * time.Hour
	// DefaultMaxFuture tolerates producers' clock skew.
	DefaultMaxFuture = time.Hour
	// DefaultResolveTimeout is Alertmanager's global.resolve_timeout.
	DefaultResolveTimeout = 5 * time.Minute
	// MaxProblems bounds the problems an *Error lists, so a request of ten
	// thousand bad items gets a readable answer; Error.Total counts them all.
	MaxProblems = 100
)

// Sources set on events whose producer did not name one.
const (
	SourceHTTP         = "http"
	SourceAlertmanager = "alertmanager"
	SourcePrometheus   = "prometheus"
	SourceOTLP         = "otlp"
	SourceChanges      = "changes"
)

// UnknownService is the service of an event whose payload names none.
const UnknownService = "unknown"

// Options control one decode call.
type Options struct {
	// Now is the receive time: the observed time of every event and the
	// event time where the payload has none. Zero means time.Now().
	Now time.Time
	// MaxEvents is the most events one request may produce (0: DefaultMaxEvents).
	MaxEvents int
	// MaxDecodedBytes bounds a payload after decompression, for formats
	// that carry their own compression (0: DefaultMaxDecodedBytes).
	MaxDecodedBytes int
	// MaxPast and MaxFuture bound an event's time around Now (0:
	// DefaultMaxPast, DefaultMaxFuture). The store partitions by event time
	// by day and drops whole partitions past their retention, so an older
	// event would be acked and then deleted at the next retention pass, and
	// far-apart times would each open a partition; such events are refused
	// (a firing alert that started earlier is kept, see Alertmanager).
	MaxPast, MaxFuture time.Duration
	// MaxExpandedBytes bounds the size of the events one request makes,
	// estimated as their JSON before they are built (0:
	// DefaultMaxExpandedBytes). The formats that share one part among many
	// events (a remote-write series' labels among its samples, an OTLP
	// resource among its records) make events far larger than the request:
	// every event carries its own copy once encoded for the bus.
	MaxExpandedBytes int
	// IdempotencyKey, when set, names the request (the Idempotency-Key
	// header): an envelope sent without an id gets one derived from the
	// key, its position in the request and its content, so a producer that
	// retries the request with the same key gets the same ids, and the
	// stream's duplicate window keeps one copy. OTLP log records take it
	// into their content-derived ids, so two requests of the same lines
	// are told apart; the other formats whose ids derive from their
	// content ignore it (the same sample or alert twice is one).
	IdempotencyKey string
	// AlertTimesFromNow times a firing alert without startsAt, and a
	// resolved one without endsAt, at Now instead of refusing it: for an
	// offline replay, where Now is the line's time. The gateway leaves it
	// off for Alertmanager's webhook, which always sends both, since every
	// resend of such an alert would be timed, and so identified, anew;
	// PrometheusAlerts sets it, as Alertmanager's API does.
	AlertTimesFromNow bool
	// ResolveTimeout is how long an alert posted firing without endsAt
	// holds without a resend (PrometheusAlerts), as Alertmanager's
	// global.resolve_timeout (0: DefaultResolveTimeout).
	ResolveTimeout time.Duration
	// SkipInvalid makes Events and NDJSON take the valid envelopes of a
	// request and count the others in Batch.Skipped, with their problems,
	// instead of refusing the request whole; a request with none valid is
	// taken as nothing. For senders that cannot fix an item and resend: a
	// syslog daemon's HTTP output batches lines it only formats, and
	// syslog-ng resends a batch answered 400 for ever, so one bad line
	// stopped all that came after it.
	SkipInvalid bool
}

func (o Options) withDefaults() Options {
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	if o.MaxEvents <= 0 {
		o.MaxEvents = DefaultMaxEvents
	}
	if o.MaxDecodedBytes <= 0 {
		o.MaxDecodedBytes = DefaultMaxDecodedBytes
	}
	if o.MaxPast <= 0 {
		o.MaxPast = DefaultMaxPast
	}
	if o.MaxFuture <= 0 {
		o.MaxFuture = DefaultMaxFuture
	}
	if o.MaxExpandedBytes <= 0 {
		o.MaxExpandedBytes = DefaultMaxExpandedBytes
	}
	if o.ResolveTimeout <= 0 {
		o.ResolveTimeout = DefaultResolveTimeout
	}
	return o
}

// Skip reasons counted in Batch.Skipped.
const (
	// SkippedStaleMarkers counts Prometheus staleness markers (the special
	// NaN) and OTLP points flagged "no recorded value": they say "this
	// series ended", not a value, and an envelope cannot carry NaN.
	SkippedStaleMarkers = "stale_markers"
	// SkippedNonFinite counts other NaN and ±Inf samples, which ClickHouse
	// and the detectors cannot use.
	SkippedNonFinite = "non_finite_values"
	// SkippedNativeHistograms counts remote-write native histogram samples,
	// which have no metric-sample form yet.
	SkippedNativeHistograms = "native_histograms"
	// SkippedInvalid counts the remote-write series (refused whole, or
	// some of their samples), the Alertmanager alerts, the OTLP log
	// records and the OTLP data points refused for a problem
	// (Batch.Problems) while the others of their request were taken:
	// Prometheus, Alertmanager and the OpenTelemetry exporters drop a
	// whole batch answered 4xx, so one bad series (a label too long, a
	// skewed clock) would lose the good ones with it, batch after batch.
	SkippedInvalid = "invalid"
)

// Batch is what one request decoded to.
type Batch struct {
	// Events are read-only: the events made from one remote-write series
	// share its label map, those of one OTLP resource its resource map.
	Events []*event.Envelope
	// Skipped counts inputs deliberately not turned into events, by reason
	// (the Skipped* constants). Nil when nothing was skipped.
	Skipped map[string]int
	// Problems are those of the inputs counted in Skipped[SkippedInvalid]
	// (at most MaxProblems listed), and of OTLP metrics refused without a
	// point (no data).
	Problems []Problem
	// Truncated counts the OTLP attribute values (of log records, of
	// resources) and the alert label values cut to fit a label (at most
	// event.MaxLabelBytes) and the log messages cut to fit
	// event.MaxLogMessageBytes.
	Truncated int
	// expanded is the estimated JSON size of the events charged so far.
	expanded int
}

// Estimated JSON sizes for Options.MaxExpandedBytes: an event's fixed
// fields (schema version, id, kind, two times, source, fingerprint and
// their names, about 200 bytes), a label's quotes, colon and comma.
const (
	eventOverhead = 256
	labelOverhead = 6
)

// labelsSize is the JSON size of a label map, escapes counted (a control
// character is six bytes once encoded).
func labelsSize(m map[string]string) int {
	n := 2
	for k, v := range m {
		n += event.JSONStringLen(k) + event.JSONStringLen(v) + labelOverhead
	}
	return n
}

// ExpandedBytes is the estimated JSON size of the batch's events
// (Options.MaxExpandedBytes).
func (b *Batch) ExpandedBytes() int { return b.expanded }

// charge adds n estimated bytes of events to the batch, or refuses the
// request when they go over the limit; what was charged is all the
// gateway allocates for the events, so it is called before building them.
func (b *Batch) charge(n int, o Options, what func() string) error {
	b.expanded += n
	if b.expanded > o.MaxExpandedBytes {
		return errs.Permanent(fmt.Errorf("%w: the events would be over %d bytes (%s); send fewer events per request or fewer labels per series",
			ErrTooMuchOutput, o.MaxExpandedBytes, what()))
	}
	return nil
}

func (b *Batch) skip(reason string) {
	if b.Skipped == nil {
		b.Skipped = make(map[string]int)
	}
	b.Skipped[reason]++
}

// NoItem is Problem.Item for a problem with the request as a whole.
const NoItem = -1

// Problem is one thing wrong with one field of one item. Item is the
// 0-based position of the item in the request (the envelope, alert, time
// series, resource or change; see each decoder) or NoItem; Field is a path
// in the input format ("startsAt", "samples[2].timestamp"), empty when the
// item as a whole is wrong.
type Problem struct {
	Item    int    `json:"item"`
	Field   string `json:"field,omitempty"`
	Problem string `json:"problem"`
}

// MarshalJSON leaves "item" out for request-wide problems.
func (p Problem) MarshalJSON() ([]byte, error) {
	type plain Problem
	if p.Item >= 0 {
		return json.Marshal(plain(p))
	}
	return json.Marshal(struct {
		Field   string `json:"field,omitempty"`
		Problem string `json:"problem"`
	}{p.Field, p.Problem})
}

// String reads like `item 3: field "time": is required`.
func (p Problem) String() string {
	var b strings.Builder
	if p.Item >= 0 {
		b.WriteString("item ")
		b.WriteString(strconv.Itoa(p.Item))
		b.WriteString(": ")
	}
	if p.Field != "" {
		b.WriteString("field ")
		b.WriteString(strconv.Quote(p.Field))
		b.WriteString(": ")
	}
	b.WriteString(p.Problem)
	return b.String()
}

// Error is invalid input: every problem found (the first MaxProblems of
// them, repeats dropped) and how many there were in all (repeats past the
// listed ones included).
type Error struct {
	Problems []Problem
	Total    int
}

func (e *Error) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.String()
	}
	msg := "invalid input: " + strings.Join(parts, "; ")
	if e.Total > len(e.Problems) {
		msg += fmt.Sprintf(" (and %d more problems)", e.Total-len(e.Problems))
	}
	return msg
}

// problems collects Problems, dropping exact repeats (the label problem of
// a series would otherwise appear once per sample).
type problems struct {
	list  []Problem
	seen  map[Problem]struct{}
	total int
	items map[int]struct{} // the inputs with a problem (at most MaxEvents)
}

// partial takes the inputs with problems out of a request whose others are
// good (SkippedInvalid counts the items with a problem); a request with
// nothing good is refused with them.
func (c *problems) partial(batch *Batch) error {
	return c.partialCount(batch, len(c.items))
}

// partialCount is partial where the inputs refused are parts of the items
// the problems name (OTLP: the records or data points of a resource), and
// refused counts them. A problem that refused no input (an OTLP metric
// without data) is listed all the same.
func (c *problems) partialCount(batch *Batch, refused int) error {
	if c.total == 0 {
		return nil
	}
	if len(batch.Events) == 0 || len(c.items) == 0 {
		return c.err() // nothing good, or a problem of the whole request
	}
	c.skipInto(batch, refused)
	return nil
}

// skipAll is partial under Options.SkipInvalid: a request whose every
// item has a problem is taken too, as nothing. A problem of the request
// as a whole still refuses it.
func (c *problems) skipAll(batch *Batch) error {
	if c.total == 0 {
		return nil
	}
	if len(c.items) == 0 {
		return c.err()
	}
	c.skipInto(batch, len(c.items))
	return nil
}

func (c *problems) skipInto(batch *Batch, refused int) {
	if refused > 0 {
		if batch.Skipped == nil {
			batch.Skipped = make(map[string]int)
		}
		batch.Skipped[SkippedInvalid] += refused
	}
	batch.Problems = c.list
}

func (c *problems) add(item int, field, format string, args ...any) {
	c.addProblem(Problem{Item: item, Field: field, Problem: fmt.Sprintf(format, args...)})
}

func (c *problems) addProblem(p Problem) {
	if p.Item != NoItem {
		if c.items == nil {
			c.items = make(map[int]struct{})
		}
		c.items[p.Item] = struct{}{}
	}
	if len(c.list) >= MaxProblems {
		// Past the listed ones only the count matters; keeping every
		// problem for deduplication would let a request of millions of
		// empty items allocate a problem each.
		c.total++
		return
	}
	if c.seen == nil {
		c.seen = make(map[Problem]struct{})
	}
	if _, dup := c.seen[p]; dup {
		return
	}
	c.seen[p] = struct{}{}
	c.total++
	c.list = append(c.list, p)
}

// addInvalid records the problems of an envelope that failed Validate.
// rename maps an envelope field to the input's name for it; prefix goes in
// front of the others (the input path of the item part the event came from).
func (c *problems) addInvalid(item int, err error, rename func(field string) string) {
	var ve *event.ValidationError
	if !errors.As(err, &ve) {
		c.add(item, "", "%v", err)
		return
	}
	for _, fe := range ve.Problems {
		field := fe.Field
		if rename != nil {
			field = rename(field)
		}
		c.addProblem(Problem{Item: item, Field: field, Problem: fe.Problem})
	}
}

func (c *problems) err() error {
	if c.total == 0 {
		return nil
	}
	return errs.Permanent(&Error{Problems: c.list, Total: c.total})
}

// requestProblem is a permanent *Error with one request-wide problem.
func requestProblem(field, format string, args ...any) error {
	var c problems
	c.add(NoItem, field, format, args...)
	return c.err()
}

// boundedItems is a JSON array of items kept raw that refuses, as it reads
// them, more than max: an array of millions of {} is a few KB gzipped,
// and held whole before it was counted it took hundreds of MB a request.
type boundedItems struct {
	max   int
	items []json.RawMessage
}

// errTooManyItems is boundedItems' refusal (tooManyEvents to the client).
var errTooManyItems = errors.New("too many items")

func (b *boundedItems) UnmarshalJSON(data []byte) error {
	b.items = nil
	if bytes.Equal(data, []byte("null")) {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if t, err := dec.Token(); err != nil {
		return err
	} else if t != json.Delim('[') {
		return &json.UnmarshalTypeError{Value: "non-array", Type: reflect.TypeFor[[]json.RawMessage]()}
	}
	for dec.More() {
		if len(b.items) == b.max {
			return errTooManyItems
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return err
		}
		b.items = append(b.items, raw)
	}
	return nil
}

func tooManyEvents(max int) error {
	return errs.Permanent(fmt.Errorf("%w: more than %d events", ErrTooManyEvents, max))
}

func tooLargeErr(what string) error {
	return errs.Permanent(fmt.Errorf("%w: %s", ErrTooLarge, what))
}

func tooLarge(n, max int) error {
	return errs.Permanent(fmt.Errorf("%w: %d bytes decompressed, over the limit of %d", ErrTooLarge, n, max))
}

// seal finishes an envelope built by a decoder: the source if none, the
// fingerprint, a content-derived id, then Normalize, Validate and the
// limits that keep it within what every later stage takes (CheckFits).
//
// The id is derived from what the event says (kind, fingerprint, time and
// the identity parts given) rather than drawn at random, because the
// senders of these formats retry whole requests (Prometheus on a 5xx,
// Alertmanager on every group notification, which repeats the alerts it
// already sent): the same event then gets the same id, which JetStream's
// duplicate window and the writer's deduplication drop.
func seal(e *event.Envelope, source string, o Options, identity ...[]byte) error {
	now := o.Now
	if e.Source == "" {
		e.Source = source
	}
	if e.Fingerprint == "" {
		e.Fingerprint = event.Fingerprint(e.Kind, e.Service, e.Labels, e.Resource)
	}
	if e.ID == "" {
		e.ID = stableID(e, identity...)
	}
	e.Normalize(now)
	if err := e.Validate(); err != nil {
		return err
	}
	if err := o.checkTime(e); err != nil {
		return err
	}
	return e.CheckFits()
}

// days writes a whole number of days as "13 days", else as a duration.
func days(d time.Duration) string {
	const day = 24 * time.Hour
	switch {
	case d == day:
		return "1 day"
	case d%day == 0:
		return strconv.Itoa(int(d/day)) + " days"
	}
	return d.String()
}

// checkTime refuses an event timed outside [Now-MaxPast, Now+MaxFuture],
// or observed after Now+MaxFuture, with a *event.ValidationError on "time"
// and "observed_time". A producer may set the observed time; one far ahead
// would make every later report of its alert or series look older to the
// correlator, which takes old news as no news.
func (o Options) checkTime(e *event.Envelope) error {
	var problems []event.FieldError
	switch {
	case e.Time.Before(o.Now.Add(-o.MaxPast)):
		problems = append(problems, event.FieldError{Field: "time", Problem: fmt.Sprintf("is %s, more than %s before the gateway's clock (%s): the store keeps events by their time and would delete it at its next retention pass; send newer events or raise ingest.max_event_age together with writer.retention",
			e.Time.Format(time.RFC3339), days(o.MaxPast), o.Now.UTC().Format(time.RFC3339))})
	case e.Time.After(o.Now.Add(o.MaxFuture)):
		problems = append(problems, event.FieldError{Field: "time", Problem: o.future(e.Time)})
	}
	if e.ObservedTime.After(o.Now.Add(o.MaxFuture)) {
		problems = append(problems, event.FieldError{Field: "observed_time", Problem: o.future(e.ObservedTime)})
	}
	if len(problems) == 0 {
		return nil
	}
	return errs.Permanent(&event.ValidationError{Problems: problems})
}

// future is the problem of a time more than MaxFuture after Now.
func (o Options) future(t time.Time) string {
	return fmt.Sprintf("is %s, more than %s after the gateway's clock (%s): check the producer's clock, or raise ingest.max_event_future",
		t.Format(time.RFC3339), days(o.MaxFuture), o.Now.UTC().Format(time.RFC3339))
}

// keyedID returns the id function of event.DecodeWithID for the envelope
// at position item of a request with an idempotency key ("" without one).
func keyedID(key string, item int) func(*event.Envelope) string {
	if key == "" {
		return nil
	}
	return func(e *event.Envelope) string {
		if e.Fingerprint == "" {
			e.Fingerprint = event.Fingerprint(e.Kind, e.Service, e.Labels, e.Resource)
		}
		// the body too: another event at that position under the same key
		// (a key used again by mistake) is another event, not dropped as
		// a duplicate while answered accepted
		return stableID(e, []byte("idempotency-key"), []byte(key), []byte(strconv.Itoa(item)), canonicalJSON(e.Body))
	}
}

// canonicalJSON is raw encoded one way whatever its spacing and key
// order (keys sorted, numbers as written), so that a retry a client
// encoded anew keeps its ids; raw itself if it does not decode.
func canonicalJSON(raw []byte) []byte {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if dec.Decode(&v) != nil {
		return raw
	}
	out, err := json.Marshal(v)
	if err != nil {
		return raw
	}
	return out
}

// stableID is event.DerivedID over the event's kind, fingerprint, time and
// identity; empty (Normalize then draws a random one) when the event time
// is outside what a ULID holds, which Validate reports anyway.
func stableID(e *event.Envelope, identity ...[]byte) string {
	if e.Time.Before(time.Unix(0, 0)) || e.Time.UnixMilli() > int64(ulid.MaxTime()) {
		return ""
	}
	var nanos [8]byte
	binary.BigEndian.PutUint64(nanos[:], uint64(e.Time.UnixNano()))
	parts := make([][]byte, 0, 3+len(identity))
	parts = append(parts, []byte(e.Kind), []byte(e.Fingerprint), nanos[:])
	return event.DerivedIDBytes(e.Time, append(parts, identity...)...)
}

func float64Bytes(f float64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], math.Float64bits(f))
	return b[:]
}

// jsonProblem turns an encoding/json error into a field and a reason.
func jsonProblem(err error) (field, problem string) {
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) {
		return typeErr.Field, event.TypeProblem(typeErr)
	}
	var syntaxErr *json.SyntaxError
	if errors.As(err, &syntaxErr) {
		return "", fmt.Sprintf("is not valid JSON: %s (at byte %d)", syntaxErr.Error(), syntaxErr.Offset)
	}
	if msg, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		name, _ := strconv.Unquote(msg)
		return name, "is not a known field"
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return "", "is not valid JSON: unexpected end of input"
	}
	return "", "is not valid JSON: " + strings.TrimPrefix(err.Error(), "json: ")
}

// parseTime is ParseTime for the decoders.
func parseTime(s string) (time.Time, error) { return ParseTime(s) }

// timeLayouts are the spellings ParseTime reads after RFC 3339's own:
// what RFC 3339 allows besides (a space for the T, section 5.6; t and z
// in lower case, read upper-cased), an offset without its colon, and no
// offset at all, taken as UTC, as Alertmanager's own API takes the last
// two (go-openapi's strfmt.DateTime).
var timeLayouts = []string{
	"2006-01-02T15:04:05.999999999Z0700",
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999Z0700",
	"2006-01-02 15:04:05.999999999",
}

// ParseTime reads a time in RFC 3339 (2026-03-02T10:00:00Z, offsets and
// fractions of any length), or one of timeLayouts; "" gives the zero
// time, as "0001-01-01T00:00:00Z" (Go's and Alertmanager's zero) does.
// The error names the time, not the field: the caller knows which it is.
func ParseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	upper := strings.ToUpper(s)
	for _, layout := range append([]string{time.RFC3339Nano}, timeLayouts...) {
		if t, err := time.Parse(layout, upper); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("is not an RFC 3339 time: %q", clip(s))
}

func clip(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	return strings.ToValidUTF8(s[:max], "") + "..."
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

func metricBody(name string, value *float64, typ, unit string) []byte {
	b, _ := event.MarshalBody(event.MetricBody{Name: name, Value: value, Type: typ, Unit: unit})
	return b
}
