package ingest

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/services/ingest/decode"
	"github.com/klauspost/compress/snappy"
	"github.com/rs/zerolog"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"google.golang.org/protobuf/encoding/protowire"
)

const (
	tokenA = "token-a-0123456789abcdef"
	tokenB = "token-b-0123456789abcdef"
)

var testNow = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

// fakePublisher records what it was given and fails when told to.
type fakePublisher struct {
	mu       sync.Mutex
	calls    [][]*event.Envelope
	deadline bool
	fail     error
}

func (p *fakePublisher) PublishAll(ctx context.Context, events []*event.Envelope) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, p.deadline = ctx.Deadline()
	if p.fail != nil {
		return p.fail
	}
	p.calls = append(p.calls, events)
	return nil
}

func (p *fakePublisher) published() []*event.Envelope {
	p.mu.Lock()
	defer p.mu.Unlock()
	var all []*event.Envelope
	for _, c := range p.calls {
		all = append(all, c...)
	}
	return all
}

// clock is a settable test clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func newTestHandler(t testing.TB, pub Publisher, change func(*Config), opts ...Option) *Handler {
	t.Helper()
	cfg := Config{Tokens: []string{tokenA, tokenB}}
	if change != nil {
		change(&cfg)
	}
	clk := &clock{now: testNow}
	h, err := New(cfg, pub, append([]Option{WithClock(clk.Now)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

type request struct {
	method, path, contentType, encoding, token string
	body                                       []byte
	unknownLength                              bool
	idempotencyKeys                            []string // one Idempotency-Key header each
	remote                                     string   // RemoteAddr; httptest's default when empty
	host                                       string   // Host; httptest's example.com when empty
}

func (r request) do(h http.Handler) *httptest.ResponseRecorder {
	method := r.method
	if method == "" {
		method = http.MethodPost
	}
	var body io.Reader = bytes.NewReader(r.body)
	if r.unknownLength {
		body = io.MultiReader(body) // hides the length from NewRequest
	}
	req := httptest.NewRequest(method, r.path, body)
	if r.unknownLength {
		req.ContentLength = -1
	}
	if r.remote != "" {
		req.RemoteAddr = r.remote
	}
	if r.host != "" {
		req.Host = r.host
	}
	if r.contentType != "" {
		req.Header.Set("Content-Type", r.contentType)
	}
	if r.encoding != "" {
		req.Header.Set("Content-Encoding", r.encoding)
	}
	for _, k := range r.idempotencyKeys {
		req.Header.Add("Idempotency-Key", k)
	}
	switch r.token {
	case "":
		req.Header.Set("Authorization", "Bearer "+tokenA)
	case "-":
	default:
		req.Header.Set("Authorization", r.token)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

const (
	logLine    = `{"kind":"log","service":"checkout","time":"2026-11-21T11:59:00Z","body":{"message":"payment failed"}}`
	metricLine = `{"kind":"metric","service":"api","time":"2026-11-21T11:59:00Z","body":{"name":"latency","value":0.25}}`
	amBody     = `{"version":"4","status":"firing","receiver":"aiops","alerts":[{"status":"firing","labels":{"alertname":"HighErrorRate","job":"checkout","severity":"critical"},"annotations":{"summary":"5xx"},"startsAt":"2026-11-21T11:50:00Z","endsAt":"0001-01-01T00:00:00Z","generatorURL":"http://prom/graph","fingerprint":"1a2b3c4d5e6f7081"}]}`
	changeBody = `{"service":"checkout","version":"v2","author":"ana","commit":"9fceb02","time":"2026-11-21T11:30:00Z"}`
)

func gzipped(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

// remoteWrite encodes a WriteRequest of one series with the given values,
// one millisecond apart.
func remoteWrite(name string, values ...float64) []byte {
	var ts []byte
	for _, l := range [][2]string{{"__name__", name}, {"job", "node"}} {
		var lb []byte
		lb = protowire.AppendTag(lb, 1, protowire.BytesType)
		lb = protowire.AppendString(lb, l[0])
		lb = protowire.AppendTag(lb, 2, protowire.BytesType)
		lb = protowire.AppendString(lb, l[1])
		ts = protowire.AppendTag(ts, 1, protowire.BytesType)
		ts = protowire.AppendBytes(ts, lb)
	}
	for i, v := range values {
		var sb []byte
		sb = protowire.AppendTag(sb, 1, protowire.Fixed64Type)
		sb = protowire.AppendFixed64(sb, math.Float64bits(v))
		sb = protowire.AppendTag(sb, 2, protowire.VarintType)
		sb = protowire.AppendVarint(sb, uint64(testNow.UnixMilli()+int64(i)))
		ts = protowire.AppendTag(ts, 2, protowire.BytesType)
		ts = protowire.AppendBytes(ts, sb)
	}
	var req []byte
	req = protowire.AppendTag(req, 1, protowire.BytesType)
	req = protowire.AppendBytes(req, ts)
	return snappy.Encode(nil, req)
}

func otlpLogs(t testing.TB, jsonEnc bool, messages ...string) []byte {
	ld := plog.NewLogs()
	rl := ld.ResourceLogs().AppendEmpty()
	rl.Resource().Attributes().PutStr("service.name", "cart")
	for _, m := range messages {
		lr := rl.ScopeLogs().AppendEmpty().LogRecords().AppendEmpty()
		lr.SetTimestamp(pcommon.NewTimestampFromTime(testNow))
		lr.Body().SetStr(m)
	}
	req := plogotlp.NewExportRequestFromLogs(ld)
	return marshalOTLP(t, req, jsonEnc)
}

func otlpGauge(t testing.TB, jsonEnc bool) []byte {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", "cart")
	m := rm.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	m.SetName("queue.size")
	dp := m.SetEmptyGauge().DataPoints().AppendEmpty()
	dp.SetTimestamp(pcommon.NewTimestampFromTime(testNow))
	dp.SetIntValue(12)
	req := pmetricotlp.NewExportRequestFromMetrics(md)
	return marshalOTLP(t, req, jsonEnc)
}

func decodeJSON[T any](t *testing.T, rec *httptest.ResponseRecorder) T {
	t.Helper()
	var v T
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type = %q, want application/json; body %s", ct, rec.Body)
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
		t.Fatalf("answer is not JSON: %v: %s", err, rec.Body)
	}
	return v
}

func TestAcceptsEveryFormat(t *testing.T) {
	cases := []struct {
		name   string
		req    request
		kinds  []event.Kind
		source string
	}{
		{"events ndjson", request{path: PathEvents, contentType: "application/x-ndjson", body: []byte(logLine + "\n" + metricLine + "\n")}, []event.Kind{event.KindLog, event.KindMetric}, decode.SourceHTTP},
		{"events array", request{path: PathEvents, contentType: "application/json; charset=utf-8", body: []byte("[" + logLine + "," + metricLine + "]")}, []event.Kind{event.KindLog, event.KindMetric}, decode.SourceHTTP},
		{"events gzip", request{path: PathEvents, contentType: "application/json", encoding: "gzip", body: gzipped([]byte(logLine))}, []event.Kind{event.KindLog}, decode.SourceHTTP},
		{"alertmanager", request{path: PathAlertmanager, contentType: "application/json", body: []byte(amBody)}, []event.Kind{event.KindAlert}, decode.SourceAlertmanager},
		{"remote write", request{path: PathRemoteWrite, contentType: "application/x-protobuf", encoding: "snappy", body: remoteWrite("up", 1, 0)}, []event.Kind{event.KindMetric, event.KindMetric}, decode.SourcePrometheus},
		{"remote write 1.0 by proto param", request{path: PathRemoteWrite, contentType: "application/x-protobuf;proto=prometheus.WriteRequest", body: remoteWrite("up", 1)}, []event.Kind{event.KindMetric}, decode.SourcePrometheus},
		{"otlp logs json", request{path: PathOTLPLogs, contentType: "application/json", body: otlpLogs(t, true, "a", "b")}, []event.Kind{event.KindLog, event.KindLog}, decode.SourceOTLP},
		{"otlp logs json gzip", request{path: PathOTLPLogs, contentType: "application/json", encoding: "gzip", body: gzipped(otlpLogs(t, true, "a"))}, []event.Kind{event.KindLog}, decode.SourceOTLP},
		{"otlp metrics json", request{path: PathOTLPMetrics, contentType: "application/json", body: otlpGauge(t, true)}, []event.Kind{event.KindMetric}, decode.SourceOTLP},
		{"changes", request{path: PathChanges, contentType: "application/json", body: []byte(changeBody)}, []event.Kind{event.KindChange}, decode.SourceChanges},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			pub := &fakePublisher{}
			rec := c.req.do(newTestHandler(t, pub, nil))
			if rec.Code != http.StatusOK {
				t.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
			resp := decodeJSON[Response](t, rec)
			got := pub.published()
			if resp.Accepted != len(c.kinds) || len(got) != len(c.kinds) || len(pub.calls) != 1 {
				t.Fatalf("accepted %d, published %d in %d calls, want %d in 1", resp.Accepted, len(got), len(pub.calls), len(c.kinds))
			}
			for i, e := range got {
				if resp.IDs[i] != e.ID {
					t.Errorf("id %d answered %s, published %s", i, resp.IDs[i], e.ID)
				}
				if e.Kind != c.kinds[i] || e.Source != c.source {
					t.Errorf("event %d: kind %s source %s, want %s %s", i, e.Kind, e.Source, c.kinds[i], c.source)
				}
				if err := e.Validate(); err != nil {
					t.Errorf("published an invalid event: %v", err)
				}
				if !e.ObservedTime.Equal(testNow) {
					t.Errorf("observed time %s, want the injected clock's %s", e.ObservedTime, testNow)
				}
			}
			if !pub.deadline {
				t.Error("PublishAll got a context without a deadline")
			}
		})
	}
}

func TestOTLPProtobufAnswers(t *testing.T) {
	for _, c := range []struct {
		path string
		body []byte
	}{{PathOTLPLogs, otlpLogs(t, false, "x", "y")}, {PathOTLPMetrics, otlpGauge(t, false)}} {
		pub := &fakePublisher{}
		h := newTestHandler(t, pub, nil)
		rec := request{path: c.path, contentType: "application/x-protobuf", body: c.body}.do(h)
		if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/x-protobuf" {
			t.Fatalf("%s: status %d type %q", c.path, rec.Code, rec.Header().Get("Content-Type"))
		}
		// The empty Export*ServiceResponse: full success.
		if rec.Body.Len() != 0 {
			t.Errorf("%s: body %x, want the empty message", c.path, rec.Body.Bytes())
		}
		if len(pub.published()) == 0 {
			t.Errorf("%s: nothing published", c.path)
		}
	}

	// No valid record: a google.rpc.Status with INVALID_ARGUMENT and the
	// problem.
	pub := &fakePublisher{}
	rec := request{path: PathOTLPLogs, contentType: "application/x-protobuf", body: otlpLogs(t, false, "", "")}.do(newTestHandler(t, pub, nil))
	if rec.Code != http.StatusBadRequest {
		t.Fatalf("status %d", rec.Code)
	}
	code, msg := parseStatus(t, rec.Body.Bytes())
	if code != 3 || !strings.Contains(msg, `scopeLogs[1].logRecords[0].body`) {
		t.Errorf("status code %d message %q", code, msg)
	}
	if len(pub.published()) != 0 {
		t.Error("published part of an invalid request")
	}
}

func parseStatus(t *testing.T, b []byte) (code int, msg string) {
	t.Helper()
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			t.Fatalf("not protobuf: %x", b)
		}
		b = b[n:]
		switch {
		case num == 1 && typ == protowire.VarintType:
			v, m := protowire.ConsumeVarint(b)
			code, n = int(v), m
		case num == 2 && typ == protowire.BytesType:
			v, m := protowire.ConsumeString(b)
			msg, n = v, m
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			t.Fatalf("bad field %d", num)
		}
		b = b[n:]
	}
	return code, msg
}

func TestRefusals(t *testing.T) {
	bomb := gzipped(bytes.Repeat([]byte(" "), 3000)) // 3,000 bytes inflated from ~30
	small := func(c *Config) { c.MaxBodyBytes = 1000; c.MaxDecodedBytes = 2000; c.MaxEvents = 10 }
	cases := []struct {
		name    string
		req     request
		status  int
		says    string
		headers map[string]string
	}{
		{"unknown path", request{path: "/v2/events", contentType: "application/json"}, 404, "no endpoint /v2/events", nil},
		{"GET", request{method: http.MethodGet, path: PathEvents}, 405, "use POST", map[string]string{"Allow": "POST"}},
		{"PUT", request{method: http.MethodPut, path: PathChanges}, 405, "use POST", map[string]string{"Allow": "POST"}},
		{"no token", request{path: PathEvents, token: "-", contentType: "application/json", body: []byte(logLine)}, 401, "bearer token", map[string]string{"WWW-Authenticate": `Bearer realm="aiops"`}},
		{"wrong token", request{path: PathEvents, token: "Bearer " + tokenA + "x", contentType: "application/json", body: []byte(logLine)}, 401, "bearer token", nil},
		{"basic auth", request{path: PathEvents, token: "Basic " + tokenA, contentType: "application/json", body: []byte(logLine)}, 401, "bearer token", nil},
		{"empty bearer", request{path: PathEvents, token: "Bearer ", contentType: "application/json", body: []byte(logLine)}, 401, "bearer token", nil},
		{"text/plain", request{path: PathEvents, contentType: "text/plain", body: []byte(logLine)}, 415, "application/json or application/x-ndjson", nil},
		{"no content type", request{path: PathAlertmanager, body: []byte(amBody)}, 415, "not a media type", nil},
		{"ndjson to alertmanager", request{path: PathAlertmanager, contentType: "application/x-ndjson", body: []byte(amBody)}, 415, "want application/json", nil},
		{"remote write 2.0", request{path: PathRemoteWrite, contentType: "application/x-protobuf;proto=io.prometheus.write.v2.Request", body: remoteWrite("up", 1)}, 415, "only remote-write 1.0", nil},
		{"gzip remote write", request{path: PathRemoteWrite, contentType: "application/x-protobuf", encoding: "gzip", body: remoteWrite("up", 1)}, 415, "want snappy", nil},
		{"brotli", request{path: PathEvents, contentType: "application/json", encoding: "br", body: []byte(logLine)}, 415, "Content-Encoding", nil},
		{"otlp xml", request{path: PathOTLPMetrics, contentType: "application/xml"}, 415, "application/x-protobuf, application/protobuf or application/json", nil},
		{"body over limit", request{path: PathEvents, contentType: "application/json", body: bytes.Repeat([]byte(" "), 1001)}, 413, "over the limit of 1000", nil},
		{"body over limit, length unknown", request{path: PathEvents, contentType: "application/json", body: bytes.Repeat([]byte(" "), 1001), unknownLength: true}, 413, "over the limit of 1000", nil},
		{"gzip bomb", request{path: PathEvents, contentType: "application/json", encoding: "gzip", body: bomb}, 413, "after gzip decompression", nil},
		{"snappy bomb", request{path: PathRemoteWrite, contentType: "application/x-protobuf", body: snappy.Encode(nil, bytes.Repeat([]byte{0}, 3000))}, 413, "decompressed", nil},
		{"too many events", request{path: PathEvents, contentType: "application/x-ndjson", body: []byte(strings.Repeat(`{"kind":"log"}`+"\n", 11))}, 413, "more than 10 events", nil},
		{"invalid item", request{path: PathEvents, contentType: "application/x-ndjson", body: []byte(logLine + "\n" + `{"kind":"log","service":"a","body":{"message":"x"}}`)}, 400, "nothing accepted", nil},
		{"bad gzip", request{path: PathEvents, contentType: "application/json", encoding: "gzip", body: []byte("not gzip")}, 400, "not gzip", nil},
		{"truncated gzip", request{path: PathEvents, contentType: "application/json", encoding: "gzip", body: gzipped([]byte(logLine))[:20]}, 400, "gzip", nil},
		{"idempotency key too long", request{path: PathEvents, contentType: "application/json", body: []byte(logLine), idempotencyKeys: []string{strings.Repeat("k", MaxIdempotencyKey+1)}}, 400, "Idempotency-Key header: 256 characters, want 1 to 255", nil},
		{"idempotency key with a space", request{path: PathEvents, contentType: "application/json", body: []byte(logLine), idempotencyKeys: []string{"a b"}}, 400, "Idempotency-Key header: character 2 is not printable ASCII", nil},
		{"two idempotency keys", request{path: PathEvents, contentType: "application/json", body: []byte(logLine), idempotencyKeys: []string{"a", "b"}}, 400, "Idempotency-Key header: given 2 times", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			pub := &fakePublisher{}
			rec := c.req.do(newTestHandler(t, pub, small))
			if rec.Code != c.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, c.status, rec.Body)
			}
			resp := decodeJSON[ErrorResponse](t, rec)
			if !strings.Contains(resp.Error, c.says) {
				t.Errorf("error %q does not say %q", resp.Error, c.says)
			}
			for k, v := range c.headers {
				if got := rec.Header().Get(k); got != v {
					t.Errorf("header %s = %q, want %q", k, got, v)
				}
			}
			if n := len(pub.published()); n != 0 {
				t.Errorf("published %d events of a refused request", n)
			}
		})
	}
}

func TestInvalidDataNamesItemAndField(t *testing.T) {
	pub := &fakePublisher{}
	body := logLine + "\n" + logLine + "\n" + `{"kind":"log","service":"a","body":{"message":"x"}}` + "\n" + `{"kind":"metric","service":"a","time":"2026-11-21T11:59:00Z","body":{"name":"m","value":"high"}}`
	rec := request{path: PathEvents, contentType: "application/x-ndjson", body: []byte(body)}.do(newTestHandler(t, pub, nil))
	if rec.Code != http.StatusBadRequest {
		t.Fatalf("status %d", rec.Code)
	}
	var raw map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &raw); err != nil {
		t.Fatal(err)
	}
	problems, _ := json.Marshal(raw["problems"])
	want := `[{"field":"time","item":2,"problem":"is required"},{"field":"body.value","item":3,"problem":"has JSON type string, want number"}]`
	if string(problems) != want {
		t.Errorf("problems = %s\nwant       %s", problems, want)
	}
	if len(pub.published()) != 0 {
		t.Error("valid items of an invalid request were published")
	}
}

func TestPublishFailureIs503(t *testing.T) {
	pub := &fakePublisher{fail: errors.New("nats: timeout")}
	h := newTestHandler(t, pub, func(c *Config) { c.RetryAfter = 2500 * time.Millisecond })
	for _, req := range []request{
		{path: PathEvents, contentType: "application/json", body: []byte(logLine)},
		{path: PathRemoteWrite, contentType: "application/x-protobuf", body: remoteWrite("up", 1)},
	} {
		rec := req.do(h)
		if rec.Code != http.StatusServiceUnavailable {
			t.Fatalf("%s: status %d, want 503", req.path, rec.Code)
		}
		if got := rec.Header().Get("Retry-After"); got != "3" {
			t.Errorf("Retry-After = %q, want 3 (2.5 s rounded up)", got)
		}
		if resp := decodeJSON[ErrorResponse](t, rec); resp.Error != ErrBusUnavailable {
			t.Errorf("error %q", resp.Error)
		}
	}
	rec := request{path: PathOTLPLogs, contentType: "application/x-protobuf", body: otlpLogs(t, false, "x")}.do(h)
	if code, _ := parseStatus(t, rec.Body.Bytes()); rec.Code != 503 || code != 14 || rec.Header().Get("Retry-After") == "" {
		t.Errorf("OTLP protobuf: status %d, rpc code %d, Retry-After %q", rec.Code, code, rec.Header().Get("Retry-After"))
	}
}

func TestSkippedOnlyIsAcceptedWithoutPublishing(t *testing.T) {
	pub := &fakePublisher{fail: errors.New("must not be called")}
	stale := math.Float64frombits(0x7ff0000000000002)
	rec := request{path: PathRemoteWrite, contentType: "application/x-protobuf", body: remoteWrite("up", stale, math.NaN())}.do(newTestHandler(t, pub, nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	resp := decodeJSON[Response](t, rec)
	if resp.Accepted != 0 || len(resp.IDs) != 0 || resp.Skipped[decode.SkippedStaleMarkers] != 1 || resp.Skipped[decode.SkippedNonFinite] != 1 {
		t.Errorf("answer %+v", resp)
	}
}

func TestRateLimitPerToken(t *testing.T) {
	clk := &clock{now: testNow}
	pub := &fakePublisher{}
	h, err := New(Config{Tokens: []string{tokenA, tokenB}, RatePerToken: 0.5, Burst: 2}, pub, WithClock(clk.Now))
	if err != nil {
		t.Fatal(err)
	}
	post := func(token string) *httptest.ResponseRecorder {
		return request{path: PathEvents, contentType: "application/json", token: "Bearer " + token, body: []byte(logLine)}.do(h)
	}
	for i := range 2 {
		if rec := post(tokenA); rec.Code != http.StatusOK {
			t.Fatalf("request %d within the burst: %d", i, rec.Code)
		}
	}
	rec := post(tokenA)
	if rec.Code != http.StatusTooManyRequests {
		t.Fatalf("third request: %d, want 429", rec.Code)
	}
	if got := rec.Header().Get("Retry-After"); got != "2" {
		t.Errorf("Retry-After = %q, want 2 (one token at 0.5/s)", got)
	}
	if resp := decodeJSON[ErrorResponse](t, rec); !strings.Contains(resp.Error, "rate limit") {
		t.Errorf("error %q", resp.Error)
	}
	if rec := post(tokenB); rec.Code != http.StatusOK {
		t.Errorf("another token shares the bucket: %d", rec.Code)
	}
	clk.Add(2 * time.Second)
	if rec := post(tokenA); rec.Code != http.StatusOK {
		t.Errorf("after refill: %d", rec.Code)
	}
	if rec := post(tokenA); rec.Code != http.StatusTooManyRequests {
		t.Errorf("refill gave more than one request: %d", rec.Code)
	}
	if n := len(pub.published()); n != 4 {
		t.Errorf("published %d events, want 4", n)
	}
}

// Over the rate limit, Prometheus's remote-write and Alertmanager are
// answered 503: both drop a batch answered 429 and retry a 5xx.
func TestRateLimitOfPushClientsIs503(t *testing.T) {
	clk := &clock{now: testNow}
	h, err := New(Config{Tokens: []string{tokenA}, RatePerToken: 0.5, Burst: 1}, &fakePublisher{}, WithClock(clk.Now))
	if err != nil {
		t.Fatal(err)
	}
	am := request{path: PathAlertmanager, contentType: "application/json", token: "Bearer " + tokenA,
		body: []byte(`{"version":"4","status":"firing","alerts":[{"status":"firing","labels":{"alertname":"A","service":"web"},"startsAt":"` + testNow.Format(time.RFC3339) + `"}]}`)}
	if rec := am.do(h); rec.Code != http.StatusOK {
		t.Fatalf("within the burst: %d %s", rec.Code, rec.Body)
	}
	rec := am.do(h)
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" || !strings.Contains(rec.Body.String(), "rate limit") {
		t.Fatalf("Alertmanager over the rate: %d (Retry-After %q), want 503 naming the rate limit", rec.Code, rec.Header().Get("Retry-After"))
	}
	if rec := (request{path: PathEvents, contentType: "application/json", token: "Bearer " + tokenA, body: []byte(logLine)}).do(h); rec.Code != http.StatusTooManyRequests {
		t.Fatalf("/v1/events over the rate: %d, want 429", rec.Code)
	}
}

func TestAnonymous(t *testing.T) {
	pub := &fakePublisher{}
	h := newTestHandler(t, pub, func(c *Config) { c.Tokens = nil; c.AllowAnonymous = true })
	if rec := (request{path: PathEvents, token: "-", host: "127.0.0.1:8080", contentType: "application/json", body: []byte(logLine)}).do(h); rec.Code != http.StatusOK {
		t.Errorf("anonymous request: %d", rec.Code)
	}
	// A token that is presented must still be a valid one.
	if rec := (request{path: PathEvents, token: "Bearer nope", contentType: "application/json", body: []byte(logLine)}).do(h); rec.Code != http.StatusUnauthorized {
		t.Errorf("unknown token with anonymous allowed: %d", rec.Code)
	}
}

// An anonymous request is taken only when addressed to localhost or an IP
// address: a web page in a browser on the gateway's machine can point a
// name of its own at 127.0.0.1 (DNS rebinding) and post events there as a
// local client would, but its requests carry that name in Host.
func TestAnonymousRequestToAReboundNameIsRefused(t *testing.T) {
	pub := &fakePublisher{}
	h := newTestHandler(t, pub, func(c *Config) { c.Tokens = nil; c.AllowAnonymous = true })
	for _, host := range []string{"localhost:8080", "127.0.0.1:8080", "[::1]:8080", "localhost"} {
		if rec := (request{path: PathEvents, token: "-", host: host, contentType: "application/json", body: []byte(logLine)}).do(h); rec.Code != http.StatusOK {
			t.Errorf("anonymous request to %s: %d %s", host, rec.Code, rec.Body)
		}
	}
	taken := len(pub.published())
	for _, host := range []string{"rebound.attacker.example:8080", "rebound.attacker.example", "localhost.attacker.example:8080"} {
		rec := (request{path: PathEvents, token: "-", host: host, contentType: "application/json", body: []byte(logLine)}).do(h)
		if rec.Code != http.StatusUnauthorized || !strings.Contains(rec.Body.String(), "addressed to localhost or an IP address") {
			t.Errorf("anonymous request to %s: %d %s, want 401 saying which hosts are served without a token", host, rec.Code, rec.Body)
		}
	}
	if n := len(pub.published()); n != taken {
		t.Errorf("%d events published for requests to a rebound name", n-taken)
	}
}

// TestAnonymousGatewayRefusesANameBoundOffLoopback: Validate allows
// allow_anonymous on a loopback name, "localhost" included, which
// /etc/hosts or a DNS search domain may map to another address; the
// server decides by the address the name binds. Here "localhost" binds
// every address, as such a mapping would make it bind another.
func TestAnonymousGatewayRefusesANameBoundOffLoopback(t *testing.T) {
	listen = func(network, _ string) (net.Listener, error) { return net.Listen(network, "0.0.0.0:0") }
	t.Cleanup(func() { listen = net.Listen })
	cfg := ServerConfig{Config: Config{AllowAnonymous: true}, Listen: "localhost:0"}
	s, err := NewServer(cfg, &fakePublisher{}, zerolog.Nop())
	if err == nil {
		s.listener.Close()
		t.Fatal("an anonymous gateway listens on every address")
	}
	if !strings.Contains(err.Error(), "ingest.allow_anonymous") {
		t.Errorf("error %q: want ingest.allow_anonymous named", err)
	}
}

func TestSecondTokenAndCaseOfScheme(t *testing.T) {
	pub := &fakePublisher{}
	h := newTestHandler(t, pub, nil)
	rec := request{path: PathEvents, token: "bearer " + tokenB, contentType: "application/json", body: []byte(logLine)}.do(h)
	if rec.Code != http.StatusOK {
		t.Errorf("second token, lower-case scheme: %d", rec.Code)
	}
}

func TestConfigValidate(t *testing.T) {
	cases := []struct {
		cfg   Config
		field string
	}{
		{Config{}, "tokens"},
		{Config{Tokens: []string{"short"}}, "tokens[0]"},
		{Config{Tokens: []string{tokenA}, MaxBodyBytes: -1}, "max_body_bytes"},
		{Config{Tokens: []string{tokenA}, MaxDecodedBytes: 2 << 30}, "max_decoded_bytes"},
		{Config{Tokens: []string{tokenA}, MaxEvents: -5}, "max_events"},
		{Config{Tokens: []string{tokenA}, RatePerToken: -1}, "rate_per_token"},
		{Config{Tokens: []string{tokenA}, RatePerToken: math.NaN()}, "rate_per_token"},  // a NaN bucket never runs dry: no limit
		{Config{Tokens: []string{tokenA}, RatePerToken: math.Inf(1)}, "rate_per_token"}, // no limit either
		{Config{Tokens: []string{tokenA}, AuthFailureRate: -1}, "auth_failure_rate"},
		{Config{Tokens: []string{tokenA}, AuthFailureRate: math.NaN()}, "auth_failure_rate"}, // wrong tokens never blocked
		{Config{Tokens: []string{tokenA}, AuthFailureRate: math.Inf(1)}, "auth_failure_rate"},
		{Config{Tokens: []string{tokenA}, Burst: -1}, "burst"},
		{Config{Tokens: []string{tokenA}, PublishTimeout: -time.Second}, "publish_timeout"},
		{Config{Tokens: []string{tokenA}, MinBodyRate: -1}, "min_body_rate"},
		{Config{Tokens: []string{tokenA}, BodyGracePeriod: -time.Second}, "body_grace_period"},
		{Config{Tokens: []string{tokenA}, RetryAfter: -time.Second}, "retry_after"},
		{Config{Tokens: []string{tokenA}, MaxStoreBacklog: 1.5}, "max_store_backlog"},        // past the limit, events are discarded
		{Config{Tokens: []string{tokenA}, MaxStoreBacklog: math.NaN()}, "max_store_backlog"}, // no ratio is >= NaN: nothing would be refused
	}
	for _, c := range cases {
		err := c.cfg.Validate()
		if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), c.field+":") {
			t.Errorf("%s: error %v", c.field, err)
		}
		if _, nerr := New(c.cfg, &fakePublisher{}); nerr == nil {
			t.Errorf("%s: New accepted an invalid config", c.field)
		}
	}
	if err := (Config{Tokens: []string{tokenA}}).Validate(); err != nil {
		t.Errorf("defaults do not validate: %v", err)
	}
	if err := (Config{AllowAnonymous: true}).Validate(); err != nil {
		t.Errorf("anonymous config: %v", err)
	}
	if _, err := New(Config{Tokens: []string{tokenA}}, nil); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("nil publisher: %v", err)
	}
}

func ExampleHandler() {
	h, _ := New(Config{Tokens: []string{tokenA}}, &fakePublisher{})
	req := httptest.NewRequest(http.MethodPost, PathChanges, strings.NewReader(`{"service":"checkout","version":"v2"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+tokenA)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	fmt.Println(rec.Code, decodeAccepted(rec.Body.Bytes()))
	// Output: 200 1
}

func decodeAccepted(b []byte) int {
	var r Response
	json.Unmarshal(b, &r)
	return r.Accepted
}

// An OTLP JSON client reads the success answer as an
// Export*ServiceResponse; the extra fields must not break that.
func TestOTLPJSONAnswerIsAnExportResponse(t *testing.T) {
	rec := request{path: PathOTLPLogs, contentType: "application/json", body: otlpLogs(t, true, "x")}.do(newTestHandler(t, &fakePublisher{}, nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d", rec.Code)
	}
	resp := plogotlp.NewExportResponse()
	if err := resp.UnmarshalJSON(rec.Body.Bytes()); err != nil {
		t.Fatalf("not an ExportLogsServiceResponse: %v", err)
	}
	if ps := resp.PartialSuccess(); ps.RejectedLogRecords() != 0 || ps.ErrorMessage() != "" {
		t.Errorf("partial success %d %q", ps.RejectedLogRecords(), ps.ErrorMessage())
	}
}

// A few kilobytes of gzip that inflate to a million empty OTLP log records
// (85 bytes each in pdata) are refused with 413 before pdata sees them.
func TestOTLPMessageBombIs413(t *testing.T) {
	var sl []byte
	for range decode.MaxOTLPMessages + 1 {
		sl = protowire.AppendTag(sl, 2, protowire.BytesType)
		sl = protowire.AppendBytes(sl, nil)
	}
	rl := protowire.AppendBytes(protowire.AppendTag(nil, 2, protowire.BytesType), sl)
	req := protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), rl)
	body := gzipped(req)
	rec := request{path: PathOTLPLogs, contentType: "application/x-protobuf", encoding: "gzip", body: body}.do(newTestHandler(t, &fakePublisher{}, nil))
	if rec.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d for %d gzip bytes", rec.Code, len(body))
	}
	if code, msg := parseStatus(t, rec.Body.Bytes()); code != 8 || !strings.Contains(msg, "OTLP messages") {
		t.Errorf("rpc status %d %q", code, msg)
	}
}

func TestPathsAreServed(t *testing.T) {
	h := newTestHandler(t, &fakePublisher{}, nil)
	mux := http.NewServeMux()
	for _, p := range h.Paths() {
		mux.Handle(p, h)
	}
	// Every listed path reaches the handler (an empty body is a 4xx of the
	// handler, not the mux's plain-text 404).
	for _, p := range h.Paths() {
		rec := request{path: p, contentType: "application/json"}.do(mux)
		if rec.Code == http.StatusNotFound || rec.Header().Get("Content-Type") == "text/plain; charset=utf-8" {
			t.Errorf("%s: %d %q", p, rec.Code, rec.Body)
		}
	}
	if n := len(h.Paths()); n != len(endpoints()) {
		t.Errorf("Paths lists %d paths, the handler serves %d", n, len(endpoints()))
	}
}

func TestConcurrentRequests(t *testing.T) {
	pub := &fakePublisher{}
	h := newTestHandler(t, pub, func(c *Config) { c.Burst = 1000 })
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			token := tokenA
			if i%2 == 1 {
				token = tokenB
			}
			for range 10 {
				rec := request{path: PathEvents, token: "Bearer " + token, contentType: "application/x-ndjson", body: []byte(logLine + "\n" + metricLine)}.do(h)
				if rec.Code != http.StatusOK {
					t.Errorf("status %d", rec.Code)
				}
			}
		}()
	}
	wg.Wait()
	got := pub.published()
	ids := map[string]bool{}
	for _, e := range got {
		ids[e.ID] = true
	}
	if len(got) != 160 || len(ids) != 160 {
		t.Errorf("published %d events with %d distinct ids, want 160", len(got), len(ids))
	}
}

func TestGzipExactlyAtTheLimitIsRead(t *testing.T) {
	line := []byte(logLine)
	h := newTestHandler(t, &fakePublisher{}, func(c *Config) { c.MaxDecodedBytes = int64(len(line)) })
	if rec := (request{path: PathEvents, contentType: "application/json", encoding: "gzip", body: gzipped(line)}).do(h); rec.Code != http.StatusOK {
		t.Fatalf("at the limit: %d %s", rec.Code, rec.Body)
	}
	if rec := (request{path: PathEvents, contentType: "application/json", encoding: "gzip", body: gzipped(append(line, ' '))}).do(h); rec.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("one byte over: %d", rec.Code)
	}
}

func TestLogsNeverHoldTokens(t *testing.T) {
	var logs bytes.Buffer
	pub := &fakePublisher{}
	h := newTestHandler(t, pub, func(c *Config) { c.Burst = 1; c.RatePerToken = 0.001 }, WithLogger(zerolog.New(&logs).Level(zerolog.DebugLevel)))
	wrong := "Bearer wrong-token-but-secret-too-0123"
	request{path: PathEvents, contentType: "application/json", body: []byte(logLine)}.do(h)               // accepted
	request{path: PathEvents, contentType: "application/json", body: []byte(logLine)}.do(h)               // 429
	request{path: PathEvents, token: wrong, contentType: "application/json", body: []byte(logLine)}.do(h) // 401
	pub.fail = errors.New("bus down")
	request{path: PathEvents, token: "Bearer " + tokenB, contentType: "application/json", body: []byte(logLine)}.do(h) // 503
	out := logs.String()
	if strings.Count(out, "\n") < 4 {
		t.Fatalf("expected a log line per request, got:\n%s", out)
	}
	for _, secret := range []string{tokenA, tokenB, "wrong-token-but-secret-too"} {
		if strings.Contains(out, secret) {
			t.Errorf("a log line holds a token:\n%s", out)
		}
	}
}

// A producer that sends envelopes without ids and retries with the same
// Idempotency-Key gets the same ids back; another key, or none, gives
// other ids; an envelope's own id always wins.
func TestIdempotencyKeyKeepsIDsAcrossRetries(t *testing.T) {
	body := []byte(`{"kind":"log","service":"checkout","time":"2026-11-21T11:59:00Z","body":{"message":"declined"}}
{"kind":"log","service":"checkout","time":"2026-11-21T11:59:00Z","body":{"message":"declined"}}
{"id":"01KAKZ5N2V3W4X5Y6Z7A8B9C0D","kind":"log","service":"checkout","time":"2026-11-21T11:59:00Z","body":{"message":"own id"}}`)
	post := func(keys ...string) []string {
		t.Helper()
		rec := request{path: PathEvents, contentType: "application/x-ndjson", body: body, idempotencyKeys: keys}.do(newTestHandler(t, &fakePublisher{}, nil))
		if rec.Code != http.StatusOK {
			t.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
		return decodeJSON[Response](t, rec).IDs
	}
	first, retry := post("7f0c2a4e-req-1"), post("7f0c2a4e-req-1")
	if !slices.Equal(first, retry) {
		t.Fatalf("same key, ids %v then %v", first, retry)
	}
	if first[0] == first[1] {
		t.Errorf("two identical events of one request share the id %s", first[0])
	}
	if first[2] != "01KAKZ5N2V3W4X5Y6Z7A8B9C0D" {
		t.Errorf("own id replaced by %s", first[2])
	}
	other, none := post("7f0c2a4e-req-2"), post()
	for i := 0; i < 2; i++ {
		if other[i] == first[i] || none[i] == first[i] {
			t.Errorf("event %d: id %s with the key, %s with another key, %s with none", i, first[i], other[i], none[i])
		}
		if !event.ValidID(first[i]) {
			t.Errorf("derived id %q is not a ULID", first[i])
		}
	}
}

// An OTLP request with a bad record among good ones (one outside the time
// window, an empty body) is answered 200 with the good ones published and
// a partial_success counting and naming the refused, in the request's
// encoding: the OpenTelemetry exporters drop a whole request answered
// 400, and they log the partial_success.
func TestOTLPPartialSuccess(t *testing.T) {
	t.Run("logs, protobuf", func(t *testing.T) {
		pub := &fakePublisher{}
		rec := request{path: PathOTLPLogs, contentType: "application/x-protobuf", body: otlpLogs(t, false, "ok", "", "fine")}.do(newTestHandler(t, pub, nil))
		if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/x-protobuf" {
			t.Fatalf("status %d type %q: %s", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
		}
		resp := plogotlp.NewExportResponse()
		if err := resp.UnmarshalProto(rec.Body.Bytes()); err != nil {
			t.Fatalf("not an ExportLogsServiceResponse: %v", err)
		}
		if ps := resp.PartialSuccess(); ps.RejectedLogRecords() != 1 || !strings.Contains(ps.ErrorMessage(), "scopeLogs[1].logRecords[0].body") {
			t.Errorf("partial_success %d rejected, %q; want 1 naming the record", ps.RejectedLogRecords(), ps.ErrorMessage())
		}
		if n := len(pub.published()); n != 2 {
			t.Errorf("published %d events, want the 2 good records", n)
		}
	})
	t.Run("logs, JSON", func(t *testing.T) {
		pub := &fakePublisher{}
		rec := request{path: PathOTLPLogs, contentType: "application/json", body: otlpLogs(t, true, "ok", "", "fine")}.do(newTestHandler(t, pub, nil))
		if rec.Code != http.StatusOK {
			t.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
		resp := plogotlp.NewExportResponse()
		if err := resp.UnmarshalJSON(rec.Body.Bytes()); err != nil {
			t.Fatalf("not an ExportLogsServiceResponse: %v", err)
		}
		if ps := resp.PartialSuccess(); ps.RejectedLogRecords() != 1 || !strings.Contains(ps.ErrorMessage(), "scopeLogs[1].logRecords[0].body") {
			t.Errorf("partialSuccess %d rejected, %q; want 1 naming the record", ps.RejectedLogRecords(), ps.ErrorMessage())
		}
		ours := decodeJSON[Response](t, rec)
		if ours.Accepted != 2 || ours.Skipped[decode.SkippedInvalid] != 1 || len(ours.Problems) != 1 {
			t.Errorf("answer %+v, want 2 accepted, 1 refused with its problem", ours)
		}
		if n := len(pub.published()); n != 2 {
			t.Errorf("published %d events, want the 2 good records", n)
		}
	})
	t.Run("metrics, protobuf", func(t *testing.T) {
		md := pmetric.NewMetrics()
		rm := md.ResourceMetrics().AppendEmpty()
		rm.Resource().Attributes().PutStr("service.name", "cart")
		m := rm.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
		m.SetName("queue.size")
		gauge := m.SetEmptyGauge()
		for _, at := range []time.Time{testNow, testNow.Add(-20 * 24 * time.Hour), testNow.Add(-time.Minute)} {
			dp := gauge.DataPoints().AppendEmpty()
			dp.SetTimestamp(pcommon.NewTimestampFromTime(at))
			dp.SetIntValue(12)
		}
		body, err := pmetricotlp.NewExportRequestFromMetrics(md).MarshalProto()
		if err != nil {
			t.Fatal(err)
		}
		pub := &fakePublisher{}
		rec := request{path: PathOTLPMetrics, contentType: "application/x-protobuf", body: body}.do(newTestHandler(t, pub, nil))
		if rec.Code != http.StatusOK {
			t.Fatalf("status %d", rec.Code)
		}
		resp := pmetricotlp.NewExportResponse()
		if err := resp.UnmarshalProto(rec.Body.Bytes()); err != nil {
			t.Fatalf("not an ExportMetricsServiceResponse: %v", err)
		}
		if ps := resp.PartialSuccess(); ps.RejectedDataPoints() != 1 || !strings.Contains(ps.ErrorMessage(), "dataPoints[1].timeUnixNano") {
			t.Errorf("partial_success %d rejected, %q; want 1 naming the point", ps.RejectedDataPoints(), ps.ErrorMessage())
		}
		if n := len(pub.published()); n != 2 {
			t.Errorf("published %d events, want the 2 good points", n)
		}
	})
}

// Refusals made before the body is read (no token, over the rate, too
// many requests at once, a Content-Type that does not parse, not POST)
// are google.rpc.Status messages for an OTLP protobuf client too, which
// cannot read a JSON body; an OTLP JSON client still gets JSON.
func TestOTLPProtobufRefusalsBeforeTheBodyAreStatus(t *testing.T) {
	const protobuf = "application/x-protobuf"
	busy := newTestHandler(t, &fakePublisher{}, func(c *Config) { c.MaxConcurrentRequests = 1 })
	busy.inflight <- struct{}{}
	limited := newTestHandler(t, &fakePublisher{}, func(c *Config) { c.Burst = 1; c.RatePerToken = 0.001 })
	request{path: PathOTLPMetrics, contentType: protobuf, body: otlpGauge(t, false)}.do(limited)
	for _, c := range []struct {
		name     string
		h        *Handler
		req      request
		status   int
		grpcCode int
	}{
		{"no token", newTestHandler(t, &fakePublisher{}, nil), request{path: PathOTLPLogs, token: "-", contentType: protobuf}, 401, 16},
		{"over the rate", limited, request{path: PathOTLPMetrics, contentType: protobuf}, 429, 8},
		{"too many at once", busy, request{path: PathOTLPLogs, contentType: protobuf}, 503, 14},
		{"content type that does not parse", newTestHandler(t, &fakePublisher{}, nil), request{path: PathOTLPLogs, contentType: protobuf + "; charset"}, 415, 2},
		{"GET", newTestHandler(t, &fakePublisher{}, nil), request{method: http.MethodGet, path: PathOTLPLogs, contentType: protobuf}, 405, 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			rec := c.req.do(c.h)
			if rec.Code != c.status || rec.Header().Get("Content-Type") != protobuf {
				t.Fatalf("status %d type %q, want %d %s: %s", rec.Code, rec.Header().Get("Content-Type"), c.status, protobuf, rec.Body)
			}
			if code, msg := parseStatus(t, rec.Body.Bytes()); code != c.grpcCode || msg == "" {
				t.Errorf("google.rpc.Status code %d message %q, want code %d and a message", code, msg, c.grpcCode)
			}
			jsonReq := c.req
			jsonReq.contentType = strings.Replace(c.req.contentType, protobuf, "application/json", 1)
			if rec := jsonReq.do(c.h); rec.Code != c.status {
				t.Errorf("OTLP JSON: status %d, want %d", rec.Code, c.status)
			} else {
				decodeJSON[ErrorResponse](t, rec)
			}
		})
	}
}

// A token from the environment with surrounding whitespace (a variable set
// from a file ending in a newline) is the token without it, as one from
// tokens_file is: no request carries a newline in its header.
func TestServerTokensTrimmed(t *testing.T) {
	file := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(file, []byte("# producers\n"+tokenB+"\r\n\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := ServerConfig{Config: Config{Tokens: []string{" " + tokenA + "\n"}}, TokensFile: file}
	got, generated, err := cfg.tokens(zerolog.Nop())
	if err != nil || generated || !slices.Equal(got, []string{tokenA, tokenB}) {
		t.Errorf("tokens = %q, %v; want %q", got, err, []string{tokenA, tokenB})
	}
}

// marshalOTLP is an OTLP export request in JSON or protobuf.
func marshalOTLP(t testing.TB, req interface {
	MarshalJSON() ([]byte, error)
	MarshalProto() ([]byte, error)
}, jsonEnc bool) []byte {
	t.Helper()
	marshal := req.MarshalProto
	if jsonEnc {
		marshal = req.MarshalJSON
	}
	b, err := marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A syslog daemon's HTTP output (syslog-ng's http(), rsyslog's omhttp)
// sends many lines a request and cannot fix one: syslog-ng 3.38 resends a
// batch answered 400 every time_reopen for ever, so one line too long or
// timed outside the window stopped its host's shipping. With
// skip_invalid=true the valid lines are taken and the others counted and
// named, also when none is valid.
func TestSkipInvalidTakesTheValidLines(t *testing.T) {
	old := `{"kind":"log","service":"sshd","time":"2026-10-01T00:00:00Z","body":{"message":"too old"}}`
	body := logLine + "\n" + old + "\n" + logLine + "\n" + `{"kind":"log",` + "\n"
	pub := &fakePublisher{}
	h := newTestHandler(t, pub, nil)
	rec := request{path: PathEvents + "?skip_invalid=true", contentType: "application/x-ndjson", body: []byte(body)}.do(h)
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	resp := decodeJSON[Response](t, rec)
	if resp.Accepted != 2 || len(pub.published()) != 2 || resp.Skipped[decode.SkippedInvalid] != 2 {
		t.Errorf("answer %+v, %d published; want 2 accepted and published, 2 skipped", resp, len(pub.published()))
	}
	if len(resp.Problems) != 2 || resp.Problems[0].Item != 1 || resp.Problems[0].Field != "time" || resp.Problems[1].Item != 3 {
		t.Errorf("problems %+v, want item 1's time and item 3", resp.Problems)
	}

	rec = request{path: PathEvents + "?skip_invalid=true", contentType: "application/x-ndjson", body: []byte(old)}.do(h)
	if resp := decodeJSON[Response](t, rec); rec.Code != http.StatusOK || resp.Accepted != 0 || resp.Skipped[decode.SkippedInvalid] != 1 {
		t.Errorf("nothing valid: status %d, answer %+v; want 200 with 1 skipped", rec.Code, resp)
	}
	rec = request{path: PathEvents + "?skip_invalid=true", contentType: "application/json", body: []byte("[" + logLine + "," + old + "]")}.do(h)
	if resp := decodeJSON[Response](t, rec); rec.Code != http.StatusOK || resp.Accepted != 1 || resp.Skipped[decode.SkippedInvalid] != 1 {
		t.Errorf("array: status %d, answer %+v; want 200 with 1 accepted, 1 skipped", rec.Code, resp)
	}
	// A body that is no request at all is still refused.
	rec = request{path: PathEvents + "?skip_invalid=true", contentType: "application/x-ndjson", body: []byte("\n")}.do(h)
	if rec.Code != http.StatusBadRequest {
		t.Errorf("empty body: status %d, want 400", rec.Code)
	}
	rec = request{path: PathEvents + "?skip_invalid=maybe", contentType: "application/x-ndjson", body: []byte(logLine)}.do(h)
	if resp := decodeJSON[ErrorResponse](t, rec); rec.Code != http.StatusBadRequest || !strings.Contains(resp.Error, "skip_invalid") {
		t.Errorf("skip_invalid=maybe: status %d, error %q; want 400 naming skip_invalid", rec.Code, resp.Error)
	}
}
