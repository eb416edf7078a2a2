package ingest

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aiops-dev/aiops/pkg/event"
	"google.golang.org/protobuf/encoding/protowire"
)

// TestWrongTokensAreRateLimitedPerClient is issue #14 item 8: 300 requests
// with a wrong token were 300 answers of 401. Past the burst a client
// address is answered 429 for every wrong or missing token until its
// bucket refills; other addresses are not affected. A right token passes:
// behind a proxy, or under aiops run, every producer has one address, and
// one script with a stale token must not lock the others out (tokens are
// at least 16 characters: guessing is not what the block slows, work is).
func TestWrongTokensAreRateLimitedPerClient(t *testing.T) {
	clk := &clock{now: testNow}
	pub := &fakePublisher{}
	h, err := New(Config{Tokens: []string{tokenA}, AuthFailureRate: 1, AuthFailureBurst: 10}, pub, WithClock(clk.Now))
	if err != nil {
		t.Fatal(err)
	}
	post := func(remote, token string) *http.Response {
		return request{path: PathEvents, contentType: "application/json", token: token, body: []byte(logLine), remote: remote}.do(h).Result()
	}
	const attacker, other = "203.0.113.7:5555", "198.51.100.2:4444"
	codes := map[int]int{}
	for range 300 {
		codes[post(attacker, "Bearer wrong-token-0123456789").StatusCode]++
	}
	if codes[http.StatusUnauthorized] != 10 || codes[http.StatusTooManyRequests] != 290 {
		t.Fatalf("300 wrong tokens from one address: %v, want 10 × 401 then 290 × 429", codes)
	}
	if resp := post(attacker, "Bearer "+tokenA); resp.StatusCode != http.StatusOK {
		t.Fatalf("a right token from the blocked address: %d, want 200", resp.StatusCode)
	}
	resp := post(attacker, "-")
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "1" {
		t.Fatalf("no token from the blocked address: %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if resp := post(other, "Bearer "+tokenA); resp.StatusCode != http.StatusOK {
		t.Fatalf("another address: %d", resp.StatusCode)
	}
	if resp := post(other, "-"); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("another address without a token: %d", resp.StatusCode)
	}
	// Another port of the same host is the same client.
	if resp := post("203.0.113.7:6666", "Bearer wrong"); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("same host, other port: %d", resp.StatusCode)
	}
	clk.Add(time.Second)
	if resp := post(attacker, "Bearer "+tokenA); resp.StatusCode != http.StatusOK {
		t.Fatalf("after a second the right token: %d", resp.StatusCode)
	}
	if resp := post(attacker, "Bearer wrong"); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("the refilled failure: %d", resp.StatusCode)
	}
	if resp := post(attacker, "Bearer wrong"); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("the next one: %d", resp.StatusCode)
	}
}

// blockingPublisher holds every PublishAll until release is closed.
type blockingPublisher struct {
	entered chan struct{}
	release chan struct{}
}

func (p *blockingPublisher) PublishAll(ctx context.Context, _ []*event.Envelope) error {
	p.entered <- struct{}{}
	select {
	case <-p.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// TestConcurrentRequestsAreBounded: each request is bounded on its own,
// and MaxConcurrentRequests bounds how many are in memory at once (issue
// #14 item 2: four wide requests at once took 1.8 GB).
func TestConcurrentRequestsAreBounded(t *testing.T) {
	pub := &blockingPublisher{entered: make(chan struct{}, 4), release: make(chan struct{})}
	// The clock is the bodies' day: on the real one their time ages past
	// max_event_age and no request reaches the publisher.
	clk := &clock{now: testNow}
	h, err := New(Config{Tokens: []string{tokenA}, MaxConcurrentRequests: 2}, pub, WithClock(clk.Now))
	if err != nil {
		t.Fatal(err)
	}
	post := func() *http.Response {
		return request{path: PathEvents, contentType: "application/json", body: []byte(logLine)}.do(h).Result()
	}
	done := make(chan int, 2)
	for range 2 {
		go func() { done <- post().StatusCode }()
	}
	for range 2 {
		select {
		case <-pub.entered:
		case code := <-done: // it would never reach the publisher: say so, not hang
			t.Fatalf("a request answered %d before reaching the publisher", code)
		}
	}
	resp := post()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("a third request while two are in progress: %d", resp.StatusCode)
	}
	close(pub.release)
	for range 2 {
		if code := <-done; code != http.StatusOK {
			t.Fatalf("a request in progress: %d", code)
		}
	}
	if resp := post(); resp.StatusCode != http.StatusOK {
		t.Fatalf("after they finished: %d", resp.StatusCode)
	}
}

// deepLogs is the reproduction of issue #14 item 1 in the wire format: one
// log record whose body is an AnyValue nested levels levels through
// ArrayValue (9.5 MB at a million levels).
func deepLogs(levels int) []byte {
	leaf := protowire.AppendTag(nil, 1, protowire.BytesType)
	leaf = protowire.AppendString(leaf, "x")
	sizes := make([]int, levels+1)
	sizes[levels] = len(leaf)
	for i := levels - 1; i >= 0; i-- {
		wrapper := 1 + protowire.SizeVarint(uint64(sizes[i+1])) + sizes[i+1]
		sizes[i] = 1 + protowire.SizeVarint(uint64(wrapper)) + wrapper
	}
	body := make([]byte, 0, sizes[0])
	for i := 0; i < levels; i++ {
		body = protowire.AppendTag(body, 5, protowire.BytesType)
		body = protowire.AppendVarint(body, uint64(1+protowire.SizeVarint(uint64(sizes[i+1]))+sizes[i+1]))
		body = protowire.AppendTag(body, 1, protowire.BytesType)
		body = protowire.AppendVarint(body, uint64(sizes[i+1]))
	}
	body = append(body, leaf...)
	msg := func(b []byte, num protowire.Number, content []byte) []byte {
		return protowire.AppendBytes(protowire.AppendTag(b, num, protowire.BytesType), content)
	}
	record := protowire.AppendTag(nil, 1, protowire.Fixed64Type)
	record = protowire.AppendFixed64(record, uint64(testNow.UnixNano()))
	record = msg(record, 5, body)
	return msg(nil, 1, msg(nil, 2, msg(nil, 2, record)))
}

// TestHostileRequestsThroughTheHandler: the reproductions of issue #14 as
// a producer sends them, gzip and snappy included, answered with the
// status and message a client can act on, and the handler still serving.
func TestHostileRequestsThroughTheHandler(t *testing.T) {
	pub := &fakePublisher{}
	h := newTestHandler(t, pub, nil)
	deep := gzipped(deepLogs(1_000_000))
	rec := request{path: PathOTLPLogs, contentType: "application/x-protobuf", encoding: "gzip", body: deep}.do(h)
	if code, msg := parseStatus(t, rec.Body.Bytes()); rec.Code != http.StatusBadRequest || code != 3 || !strings.Contains(msg, "nested more than 64 levels") {
		t.Fatalf("a million levels (%d gzip bytes): %d, rpc %d %q", len(deep), rec.Code, code, msg)
	}

	var wide promSeries
	wide.labels = [][2]string{{"__name__", "wide"}}
	for i := 1; i < 128; i++ {
		wide.labels = append(wide.labels, [2]string{fmt.Sprintf("label_%03d", i), fmt.Sprintf("value_%03d", i)})
	}
	for i := range 10_000 {
		wide.samples = append(wide.samples, promSample{float64(i), testNow.Add(time.Duration(i-10_000) * time.Millisecond)})
	}
	body := writeRequest([]promSeries{wide})
	rec = request{path: PathRemoteWrite, contentType: "application/x-protobuf", encoding: "snappy", body: body}.do(h)
	if rec.Code != http.StatusRequestEntityTooLarge || !strings.Contains(rec.Body.String(), "each an event carrying its 128 labels") {
		t.Fatalf("1 series × 10,000 samples × 128 labels (%d bytes): %d %s", len(body), rec.Code, rec.Body.String())
	}

	dupKind := `{"kind":"alert","kind":"log","service":"a","time":"2026-11-21T12:00:00Z","body":{"message":"m"}}`
	rec = request{path: PathEvents, contentType: "application/json", body: []byte(dupKind)}.do(h)
	if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), `"field":"kind","problem":"appears more than once"`) {
		t.Fatalf("duplicate kind: %d %s", rec.Code, rec.Body.String())
	}
	huge := `{"kind":"metric","service":"a","time":"2026-11-21T12:00:00Z","body":{"name":"m","value":1e400}}`
	rec = request{path: PathEvents, contentType: "application/json", body: []byte(huge)}.do(h)
	if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "is 1e400, out of the range of a 64-bit float") {
		t.Fatalf("1e400: %d %s", rec.Code, rec.Body.String())
	}
	badUTF8 := "{\"kind\":\"log\",\"service\":\"a\xff\",\"time\":\"2026-11-21T12:00:00Z\",\"body\":{\"message\":\"m\"}}"
	rec = request{path: PathEvents, contentType: "application/json", body: []byte(badUTF8)}.do(h)
	if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "not valid UTF-8") {
		t.Fatalf("invalid UTF-8 in service: %d %s", rec.Code, rec.Body.String())
	}

	if rec := (request{path: PathEvents, contentType: "application/json", body: []byte(logLine)}).do(h); rec.Code != http.StatusOK {
		t.Fatalf("a valid request after them: %d %s", rec.Code, rec.Body.String())
	}
	if n := len(pub.published()); n != 1 {
		t.Fatalf("%d events published, want only the valid one", n)
	}
}
