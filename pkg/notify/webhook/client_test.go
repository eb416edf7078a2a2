package webhook

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aiops-dev/aiops/pkg/config"
	"github.com/aiops-dev/aiops/pkg/errs"
)

// fakeClock is the injected clock: Sleep advances it instead of waiting,
// and remembers what it was asked to sleep.
type fakeClock struct {
	mu     sync.Mutex
	t      time.Time
	sleeps []time.Duration
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 3, 14, 10, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sleeps = append(c.sleeps, d)
	c.t = c.t.Add(d)
	return nil
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func (c *fakeClock) Sleeps() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.sleeps)
}

// hit is one request a test receiver got.
type hit struct {
	header http.Header
	body   []byte
	at     time.Time // the fake clock when it arrived
	verify error     // Verify with the test secret, when there is one
}

// receiver is a local HTTP receiver that answers as its script says
// (n counts its requests from 1) and keeps every request.
type testReceiver struct {
	*httptest.Server
	mu     sync.Mutex
	hits   []hit
	clock  *fakeClock
	secret []byte
}

func newTestReceiver(t *testing.T, clock *fakeClock, secret []byte, script func(n int, w http.ResponseWriter, r *http.Request)) *testReceiver {
	t.Helper()
	tr := &testReceiver{clock: clock, secret: secret}
	tr.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h := hit{header: r.Header.Clone(), body: body, at: clock.Now()}
		if secret != nil {
			h.verify = Verify([][]byte{secret}, r.Header, body, clock.Now(), 0)
		}
		tr.mu.Lock()
		tr.hits = append(tr.hits, h)
		n := len(tr.hits)
		tr.mu.Unlock()
		script(n, w, r)
	}))
	t.Cleanup(tr.Close)
	return tr
}

func (tr *testReceiver) Hits() []hit {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return slices.Clone(tr.hits)
}

// statuses answers the given statuses in turn, then the last one forever.
func statuses(codes ...int) func(int, http.ResponseWriter, *http.Request) {
	return func(n int, w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(codes[min(n, len(codes))-1])
		fmt.Fprintf(w, "answer %d", n)
	}
}

// attempts is a Recorder that keeps what it is given.
type attempts struct {
	mu   sync.Mutex
	list []Attempt
}

func (a *attempts) RecordAttempt(at Attempt) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.list = append(a.list, at)
}

func (a *attempts) List() []Attempt {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.list)
}

// testConfig retries at 1s, 2s, 4s... (times the jitter of 0.5 the tests
// inject) with the breaker and rate limit out of the way.
func testConfig() Config {
	return Config{
		Timeout: 2 * time.Second,
		Retry:   RetryConfig{BaseDelay: time.Second, MaxDelay: 30 * time.Second, MaxAttempts: 6, MaxElapsed: 10 * time.Minute},
		Breaker: BreakerConfig{Disabled: true}, RateLimit: RateLimitConfig{Disabled: true},
	}
}

func newTestClient(t *testing.T, cfg Config, clock *fakeClock, rec Recorder, more ...Option) *Client {
	t.Helper()
	opts := append([]Option{WithClock(clock.Now, clock.Sleep), WithJitter(func() float64 { return 0.5 }), WithRecorder(rec)}, more...)
	c, err := New(cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var testSecret = []byte("0123456789abcdef0123456789abcdef")

const testKey = "01JPA9V3KX8Q6M1T2R3S4W5Y6Z"

func testRequest(url string) Request {
	return Request{
		Receiver: "ops", URL: url, Body: []byte(`{"incident":"checkout down"}`), IdempotencyKey: testKey,
		Secrets: [][]byte{testSecret},
	}
}

// checkAttempts compares the recorded attempts with the statuses wanted
// (0 for no response) and checks numbering, key and Retrying.
func checkAttempts(t *testing.T, got []Attempt, wantStatus []int, lastRetrying bool) {
	t.Helper()
	if len(got) != len(wantStatus) {
		t.Fatalf("%d attempts recorded, want %d: %+v", len(got), len(wantStatus), got)
	}
	for i, a := range got {
		if a.Number != i+1 || a.StatusCode != wantStatus[i] || a.Receiver != "ops" || a.IdempotencyKey != testKey {
			t.Errorf("attempt %d = %+v, want number %d status %d", i, a, i+1, wantStatus[i])
		}
		wantRetrying := i < len(got)-1 || lastRetrying
		if a.Retrying != wantRetrying {
			t.Errorf("attempt %d: Retrying %v, want %v", i+1, a.Retrying, wantRetrying)
		}
		if (a.Error == "") != (a.StatusCode >= 200 && a.StatusCode < 300) {
			t.Errorf("attempt %d: status %d with error %q", i+1, a.StatusCode, a.Error)
		}
	}
}

// checkSigned checks every request a receiver got: the same webhook-id,
// webhook-timestamp the fake clock's time of the attempt, a signature that
// Verify accepts and that an independent HMAC reproduces.
func checkSigned(t *testing.T, hits []hit, atts []Attempt, body []byte) {
	t.Helper()
	for i, h := range hits {
		if got := h.header.Get(HeaderID); got != testKey {
			t.Errorf("request %d: webhook-id %q, want %q on every attempt", i+1, got, testKey)
		}
		ts := h.header.Get(HeaderTimestamp)
		if want := strconv.FormatInt(h.at.Unix(), 10); ts != want {
			t.Errorf("request %d: webhook-timestamp %s, want %s", i+1, ts, want)
		}
		if i < len(atts) && ts != strconv.FormatInt(atts[i].Start.Unix(), 10) {
			t.Errorf("request %d: webhook-timestamp %s, attempt started %v", i+1, ts, atts[i].Start)
		}
		if h.verify != nil {
			t.Errorf("request %d: Verify: %v", i+1, h.verify)
		}
		if got, want := h.header.Get(HeaderSignature), independentSign(testSecret, testKey, ts, body); got != want {
			t.Errorf("request %d: webhook-signature %s, want %s", i+1, got, want)
		}
		if string(h.body) != string(body) {
			t.Errorf("request %d: body %q", i+1, h.body)
		}
		if ct := h.header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("request %d: Content-Type %q", i+1, ct)
		}
	}
}

func TestRetry5xxThenSuccess(t *testing.T) {
	clock := newFakeClock()
	rcv := newTestReceiver(t, clock, testSecret, statuses(503, 500, 502, 200, 500))
	rec := &attempts{}
	c := newTestClient(t, testConfig(), clock, rec)
	req := testRequest(rcv.URL + "/hook")
	res, err := c.Deliver(context.Background(), req)
	if err != nil || !res.Delivered || res.Attempts != 4 || res.StatusCode != 200 || string(res.Body) != "answer 4" {
		t.Fatalf("Deliver = %+v, %v", res, err)
	}
	checkAttempts(t, rec.List(), []int{503, 500, 502, 200}, false)
	// Full jitter with the injected 0.5: half of 1s, 2s, 4s.
	if got, want := clock.Sleeps(), []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second}; !slices.Equal(got, want) {
		t.Fatalf("slept %v, want %v", got, want)
	}
	if res.Duration != 3500*time.Millisecond {
		t.Errorf("Duration %v, want 3.5s", res.Duration)
	}
	for i, a := range rec.List() {
		if i > 0 && !a.Start.After(rec.List()[i-1].Start) {
			t.Errorf("attempt %d started at %v, not after the one before", i+1, a.Start)
		}
		if i < 3 && !strings.Contains(a.Error, "HTTP 50") {
			t.Errorf("attempt %d error %q", i+1, a.Error)
		}
	}
	checkSigned(t, rcv.Hits(), rec.List(), req.Body)
	// The id stays, the timestamp is the attempt's: 3.5s later, another one.
	if h := rcv.Hits(); h[0].header.Get(HeaderTimestamp) == h[3].header.Get(HeaderTimestamp) {
		t.Errorf("every attempt has the timestamp %s", h[0].header.Get(HeaderTimestamp))
	}
	// Nothing more is sent after the 2xx: the server's fifth answer is
	// never asked for, even once every handler has returned.
	rcv.Close()
	if n := len(rcv.Hits()); n != 4 {
		t.Fatalf("the receiver got %d requests, want 4", n)
	}
	s := c.Stats("ops")
	if s.Deliveries != 1 || s.Delivered != 1 || s.Failed != 0 || s.Attempts != 4 {
		t.Fatalf("stats %+v", s)
	}
}

func TestTimeoutThenSuccess(t *testing.T) {
	clock := newFakeClock()
	release := make(chan struct{})
	defer close(release)
	rcv := newTestReceiver(t, clock, testSecret, func(n int, w http.ResponseWriter, r *http.Request) {
		if n == 1 {
			select { // hang until the client gives up
			case <-r.Context().Done():
			case <-release:
			}
			return
		}
		w.WriteHeader(http.StatusAccepted)
	})
	cfg := testConfig()
	cfg.Timeout = 100 * time.Millisecond
	rec := &attempts{}
	c := newTestClient(t, cfg, clock, rec)
	req := testRequest(rcv.URL)
	res, err := c.Deliver(context.Background(), req)
	if err != nil || !res.Delivered || res.Attempts != 2 || res.StatusCode != 202 {
		t.Fatalf("Deliver = %+v, %v", res, err)
	}
	atts := rec.List()
	checkAttempts(t, atts, []int{0, 202}, false)
	if atts[0].Error != "timed out after 100ms" {
		t.Errorf("attempt 1 error %q", atts[0].Error)
	}
	if got := clock.Sleeps(); !slices.Equal(got, []time.Duration{500 * time.Millisecond}) {
		t.Errorf("slept %v", got)
	}
	checkSigned(t, rcv.Hits(), atts, req.Body)
}

func TestRetryAfter(t *testing.T) {
	clock := newFakeClock()
	rcv := newTestReceiver(t, clock, testSecret, func(n int, w http.ResponseWriter, _ *http.Request) {
		switch n {
		case 1:
			w.Header().Set("Retry-After", "7")
		case 2: // an HTTP date 20s after the fake now
			w.Header().Set("Retry-After", clock.Now().Add(20*time.Second).Format(http.TimeFormat))
		case 3: // an hour: capped at retry.max_retry_after
			w.Header().Set("Retry-After", "3600")
		case 4:
			w.WriteHeader(http.StatusOK)
			return
		}
		w.WriteHeader(http.StatusTooManyRequests)
	})
	cfg := testConfig()
	cfg.Retry.MaxRetryAfter = time.Minute
	rec := &attempts{}
	c := newTestClient(t, cfg, clock, rec)
	req := testRequest(rcv.URL)
	res, err := c.Deliver(context.Background(), req)
	if err != nil || res.Attempts != 4 {
		t.Fatalf("Deliver = %+v, %v", res, err)
	}
	checkAttempts(t, rec.List(), []int{429, 429, 429, 200}, false)
	if got, want := clock.Sleeps(), []time.Duration{7 * time.Second, 20 * time.Second, time.Minute}; !slices.Equal(got, want) {
		t.Fatalf("slept %v, want %v (Retry-After honoured, not the backoff)", got, want)
	}
	checkSigned(t, rcv.Hits(), rec.List(), req.Body)

	// 503 with Retry-After counts too; giving up keeps what was asked.
	clock2 := newFakeClock()
	rcv2 := newTestReceiver(t, clock2, nil, func(_ int, w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Retry-After", "90")
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	cfg.Retry.MaxAttempts = 2
	c2 := newTestClient(t, cfg, clock2, &attempts{})
	res, err = c2.Deliver(context.Background(), testRequest(rcv2.URL))
	if !errors.Is(err, ErrGaveUp) || res.Attempts != 2 || res.RetryAfter != 90*time.Second {
		t.Fatalf("Deliver = %+v, %v", res, err)
	}
	if got := clock2.Sleeps(); !slices.Equal(got, []time.Duration{time.Minute}) {
		t.Fatalf("slept %v, want the cap", got)
	}
}

func TestPermanentStatus(t *testing.T) {
	for _, code := range []int{400, 401, 403, 404, 410, 422} {
		t.Run(strconv.Itoa(code), func(t *testing.T) {
			clock := newFakeClock()
			rcv := newTestReceiver(t, clock, testSecret, func(_ int, w http.ResponseWriter, _ *http.Request) {
				http.Error(w, "invalid_payload\n\x00 details", code)
			})
			rec := &attempts{}
			c := newTestClient(t, testConfig(), clock, rec)
			res, err := c.Deliver(context.Background(), testRequest(rcv.URL))
			if !errs.IsPermanent(err) || !errors.Is(err, ErrRejected) || res.Delivered || res.Attempts != 1 || res.StatusCode != code {
				t.Fatalf("Deliver = %+v, %v", res, err)
			}
			var se *StatusError
			if !errors.As(err, &se) || se.StatusCode != code || se.Body != "invalid_payload   details" {
				t.Fatalf("StatusError %+v", se)
			}
			checkAttempts(t, rec.List(), []int{code}, false)
			if len(clock.Sleeps()) != 0 || len(rcv.Hits()) != 1 {
				t.Fatalf("retried a %d: sleeps %v, hits %d", code, clock.Sleeps(), len(rcv.Hits()))
			}
		})
	}
}

func TestRedirect(t *testing.T) {
	clock := newFakeClock()
	target := newTestReceiver(t, clock, testSecret, statuses(200))
	for _, code := range []int{301, 302, 307, 308} {
		rcv := newTestReceiver(t, clock, nil, func(_ int, w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, target.URL+"/moved?token=s3cr3t", code)
		})
		rec := &attempts{}
		c := newTestClient(t, testConfig(), clock, rec)
		res, err := c.Deliver(context.Background(), testRequest(rcv.URL))
		if !errs.IsPermanent(err) || !errors.Is(err, ErrRedirect) || res.Attempts != 1 || res.StatusCode != code {
			t.Fatalf("%d: Deliver = %+v, %v", code, res, err)
		}
		if strings.Contains(err.Error(), "s3cr3t") {
			t.Fatalf("the error shows the Location: %v", err)
		}
		checkAttempts(t, rec.List(), []int{code}, false)
	}
	if n := len(target.Hits()); n != 0 {
		t.Fatalf("a redirect was followed: the target got %d requests", n)
	}

	// Configured to follow: a 307 on the same origin keeps the POST, its
	// body and headers.
	var moved *testReceiver
	moved = newTestReceiver(t, clock, testSecret, func(n int, w http.ResponseWriter, r *http.Request) {
		if n == 1 {
			http.Redirect(w, r, moved.URL+"/moved", http.StatusTemporaryRedirect)
		}
	})
	cfg := testConfig()
	cfg.FollowRedirects = true
	rec := &attempts{}
	c := newTestClient(t, cfg, clock, rec)
	req := testRequest(moved.URL)
	res, err := c.Deliver(context.Background(), req)
	if err != nil || res.StatusCode != 200 || res.Attempts != 1 {
		t.Fatalf("following: Deliver = %+v, %v", res, err)
	}
	checkAttempts(t, rec.List(), []int{200}, false)
	if hits := moved.Hits(); len(hits) != 2 {
		t.Fatalf("following: %d requests, want the first and the redirected one", len(hits))
	}
	checkSigned(t, moved.Hits()[1:], nil, req.Body)

	// Even configured to follow, a redirect to another origin is refused:
	// it would get the body and a signature it could replay. The error
	// names no URL.
	elsewhere := newTestReceiver(t, clock, nil, func(_ int, w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL+"/services/T000/B000/s3cr3t", http.StatusTemporaryRedirect)
	})
	res, err = c.Deliver(context.Background(), testRequest(elsewhere.URL+"/hooks/t0ken"))
	if !errs.IsPermanent(err) || !errors.Is(err, ErrRedirect) || res.Attempts != 1 || len(target.Hits()) != 0 {
		t.Fatalf("redirect to another origin: %+v, %v, the target got %d requests", res, err, len(target.Hits()))
	}
	if strings.Contains(err.Error(), "s3cr3t") || strings.Contains(err.Error(), "t0ken") {
		t.Fatalf("the error shows a URL: %v", err)
	}

	// A redirect turning the POST into a GET is refused, its error naming
	// no URL either.
	get := newTestReceiver(t, clock, nil, func(_ int, w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/services/T000/B000/s3cr3t", http.StatusFound)
	})
	res, err = c.Deliver(context.Background(), testRequest(get.URL+"/hooks/t0ken"))
	if !errs.IsPermanent(err) || !errors.Is(err, ErrRedirect) || !strings.Contains(err.Error(), "without its body") {
		t.Fatalf("redirect to a GET: %+v, %v", res, err)
	}
	if strings.Contains(err.Error(), "s3cr3t") || strings.Contains(err.Error(), "t0ken") {
		t.Fatalf("the error shows a URL: %v", err)
	}

	// A loop is cut after MaxRedirects, permanently.
	var loop *testReceiver
	loop = newTestReceiver(t, clock, nil, func(_ int, w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, loop.URL+"/again", http.StatusTemporaryRedirect)
	})
	res, err = c.Deliver(context.Background(), testRequest(loop.URL))
	if !errs.IsPermanent(err) || !errors.Is(err, ErrRedirect) || len(loop.Hits()) != MaxRedirects+1 {
		t.Fatalf("redirect loop: %+v, %v, %d requests", res, err, len(loop.Hits()))
	}
}

func TestGiveUp(t *testing.T) {
	clock := newFakeClock()
	rcv := newTestReceiver(t, clock, nil, statuses(500))
	cfg := testConfig()
	cfg.Retry.MaxAttempts = 3
	rec := &attempts{}
	c := newTestClient(t, cfg, clock, rec)
	res, err := c.Deliver(context.Background(), testRequest(rcv.URL))
	if !errors.Is(err, ErrGaveUp) || errs.IsPermanent(err) || res.Attempts != 3 || !strings.Contains(err.Error(), "retry.max_attempts") {
		t.Fatalf("Deliver = %+v, %v", res, err)
	}
	checkAttempts(t, rec.List(), []int{500, 500, 500}, false)
	if len(rcv.Hits()) != 3 {
		t.Fatalf("%d requests", len(rcv.Hits()))
	}

	// max_elapsed: 40s + 40s would pass 60s, so the third attempt is not made.
	clock = newFakeClock()
	rcv = newTestReceiver(t, clock, nil, func(_ int, w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Retry-After", "40")
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	cfg = testConfig()
	cfg.Retry.MaxElapsed = time.Minute
	rec = &attempts{}
	c = newTestClient(t, cfg, clock, rec)
	res, err = c.Deliver(context.Background(), testRequest(rcv.URL))
	if !errors.Is(err, ErrGaveUp) || res.Attempts != 2 || !strings.Contains(err.Error(), "retry.max_elapsed") {
		t.Fatalf("Deliver = %+v, %v", res, err)
	}
	checkAttempts(t, rec.List(), []int{503, 503}, false)

	// The context's deadline: no retry is scheduled past it.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rec = &attempts{}
	c = newTestClient(t, testConfig(), newFakeClock(), rec)
	res, err = c.Deliver(ctx, testRequest(rcv.URL))
	if !errors.Is(err, ErrGaveUp) || res.Attempts != 1 || !strings.Contains(err.Error(), "deadline") {
		t.Fatalf("Deliver = %+v, %v", res, err)
	}
}

func TestConnectionError(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	clock := newFakeClock()
	cfg := testConfig()
	cfg.Retry.MaxAttempts = 2
	rec := &attempts{}
	c := newTestClient(t, cfg, clock, rec)
	url := "http://" + addr + "/services/T000/B000/s3cr3tt0ken"
	res, err := c.Deliver(context.Background(), testRequest(url))
	if !errors.Is(err, ErrGaveUp) || errs.IsPermanent(err) || res.Attempts != 2 || res.StatusCode != 0 {
		t.Fatalf("Deliver = %+v, %v", res, err)
	}
	checkAttempts(t, rec.List(), []int{0, 0}, false)
	for _, a := range rec.List() {
		if !strings.Contains(a.Error, "connection refused") || strings.Contains(a.Error, "s3cr3t") {
			t.Errorf("attempt error %q", a.Error)
		}
	}
	if strings.Contains(err.Error(), "s3cr3t") {
		t.Fatalf("the error shows the URL: %v", err)
	}
}

func TestInvalidRequests(t *testing.T) {
	clock := newFakeClock()
	rcv := newTestReceiver(t, clock, nil, statuses(200))
	cfg := testConfig()
	cfg.MaxBodyBytes = 100
	rec := &attempts{}
	c := newTestClient(t, cfg, clock, rec)
	for _, tc := range []struct {
		name   string
		modify func(*Request)
		want   error
	}{
		{"no receiver", func(r *Request) { r.Receiver = "" }, ErrInvalidRequest},
		{"ftp", func(r *Request) { r.URL = "ftp://example.com/s3cr3t" }, ErrInvalidRequest},
		{"relative", func(r *Request) { r.URL = "/hook/s3cr3t" }, ErrInvalidRequest},
		{"bad url", func(r *Request) { r.URL = "http://exa mple.com/s3cr3t" }, ErrInvalidRequest},
		{"user info", func(r *Request) { r.URL = "https://u:s3cr3t@example.com/" }, ErrInvalidRequest},
		{"no key", func(r *Request) { r.IdempotencyKey = "" }, ErrInvalidRequest},
		{"dot in key", func(r *Request) { r.IdempotencyKey = "incident.1" }, ErrInvalidRequest},
		{"space in key", func(r *Request) { r.IdempotencyKey = "incident 1" }, ErrInvalidRequest},
		{"long key", func(r *Request) { r.IdempotencyKey = strings.Repeat("k", 256) }, ErrInvalidRequest},
		{"empty secret", func(r *Request) { r.Secrets = [][]byte{testSecret, nil} }, ErrInvalidRequest},
		{"reserved header", func(r *Request) { r.Header = http.Header{"Webhook-Id": {"x"}} }, ErrInvalidRequest},
		{"content type header", func(r *Request) { r.Header = http.Header{"content-type": {"text/plain"}} }, ErrInvalidRequest},
		{"header injection", func(r *Request) { r.Header = http.Header{"X-A": {"a\r\nX-B: b"}} }, ErrInvalidRequest},
		{"bad header name", func(r *Request) { r.Header = http.Header{"X A": {"a"}} }, ErrInvalidRequest},
		{"content type injection", func(r *Request) { r.ContentType = "text/plain\r\nX: y" }, ErrInvalidRequest},
		{"body too large", func(r *Request) { r.Body = make([]byte, 101) }, ErrBodyTooLarge},
	} {
		req := testRequest(rcv.URL)
		tc.modify(&req)
		res, err := c.Deliver(context.Background(), req)
		if !errors.Is(err, tc.want) || !errs.IsPermanent(err) || res.Attempts != 0 {
			t.Errorf("%s: %+v, %v", tc.name, res, err)
		}
		if err != nil && strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("%s: the error shows the URL: %v", tc.name, err)
		}
	}
	if len(rcv.Hits()) != 0 || len(rec.List()) != 0 {
		t.Fatalf("an invalid request was sent: %d hits, %d attempts", len(rcv.Hits()), len(rec.List()))
	}
	// At the limit it goes.
	req := testRequest(rcv.URL)
	req.Body = make([]byte, 100)
	if _, err := c.Deliver(context.Background(), req); err != nil {
		t.Fatal(err)
	}
}

func TestHeadersAndUnsigned(t *testing.T) {
	clock := newFakeClock()
	rcv := newTestReceiver(t, clock, nil, statuses(204))
	c := newTestClient(t, testConfig(), clock, &attempts{})
	req := testRequest(rcv.URL)
	req.Secrets = nil
	req.ContentType = "text/plain; charset=utf-8"
	req.Header = http.Header{"Authorization": {"Bearer t"}, "x-extra": {"1", "2"}}
	uaReq := req
	if _, err := c.Deliver(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	h := rcv.Hits()[0].header
	if h.Get("Authorization") != "Bearer t" || !slices.Equal(h.Values("X-Extra"), []string{"1", "2"}) ||
		h.Get("Content-Type") != "text/plain; charset=utf-8" || h.Get("User-Agent") != DefaultUserAgent {
		t.Fatalf("headers %v", h)
	}
	if h.Get(HeaderSignature) != "" || h.Get(HeaderID) != testKey || h.Get(HeaderTimestamp) != strconv.FormatInt(clock.Now().Unix(), 10) {
		t.Fatalf("webhook headers of an unsigned request: %v", h)
	}
	uaReq.Header = http.Header{"User-Agent": {"custom/1"}}
	if _, err := c.Deliver(context.Background(), uaReq); err != nil {
		t.Fatal(err)
	}
	if ua := rcv.Hits()[1].header.Get("User-Agent"); ua != "custom/1" {
		t.Fatalf("User-Agent %q", ua)
	}
	// Rotation: two secrets, two signatures, each verifies alone.
	rcv2 := newTestReceiver(t, clock, nil, statuses(200))
	other := []byte("another secret of thirty-two b.")
	req = testRequest(rcv2.URL)
	req.Secrets = [][]byte{testSecret, other}
	if _, err := c.Deliver(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	hit := rcv2.Hits()[0]
	if len(strings.Fields(hit.header.Get(HeaderSignature))) != 2 {
		t.Fatalf("webhook-signature %q", hit.header.Get(HeaderSignature))
	}
	for _, s := range req.Secrets {
		if err := Verify([][]byte{s}, hit.header, hit.body, clock.Now(), 0); err != nil {
			t.Fatal(err)
		}
	}
}

func TestResponseBodyLimit(t *testing.T) {
	clock := newFakeClock()
	big := strings.Repeat("x", 1<<20)
	rcv := newTestReceiver(t, clock, nil, func(n int, w http.ResponseWriter, _ *http.Request) {
		if n == 1 {
			w.WriteHeader(500)
		}
		io.WriteString(w, big)
	})
	rec := &attempts{}
	c := newTestClient(t, testConfig(), clock, rec)
	res, err := c.Deliver(context.Background(), testRequest(rcv.URL))
	if err != nil || len(res.Body) != MaxResponseBytes {
		t.Fatalf("Deliver: body of %d bytes, %v", len(res.Body), err)
	}
	if e := rec.List()[0].Error; len(e) > 300 || !strings.HasSuffix(e, "...") {
		t.Fatalf("attempt error of %d bytes: %.80q", len(e), e)
	}
}

func TestCanceled(t *testing.T) {
	clock := newFakeClock()
	rcv := newTestReceiver(t, clock, nil, statuses(503))
	ctx, cancel := context.WithCancel(context.Background())
	rec := &attempts{}
	c := newTestClient(t, testConfig(), clock, RecorderFunc(func(a Attempt) {
		rec.RecordAttempt(a)
		cancel() // the caller gives up during the first backoff
	}))
	res, err := c.Deliver(ctx, testRequest(rcv.URL))
	if !errors.Is(err, context.Canceled) || errs.IsPermanent(err) || res.Attempts != 1 {
		t.Fatalf("Deliver = %+v, %v", res, err)
	}
	if len(rcv.Hits()) != 1 {
		t.Fatalf("%d requests", len(rcv.Hits()))
	}
}

func TestBreaker(t *testing.T) {
	clock := newFakeClock()
	var mu sync.Mutex
	healthy := false
	rcv := newTestReceiver(t, clock, nil, func(_ int, w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if !healthy {
			w.WriteHeader(http.StatusBadGateway)
		}
	})
	var changes []string
	cfg := testConfig()
	cfg.Breaker = BreakerConfig{Failures: 3, CoolDown: 30 * time.Second}
	cfg.Retry.MaxAttempts = 5
	rec := &attempts{}
	c := newTestClient(t, cfg, clock, rec, WithBreakerObserver(func(receiver string, from, to BreakerState) {
		changes = append(changes, receiver+":"+from.String()+">"+to.String())
	}))
	deliver := func() (Result, error) { return c.Deliver(context.Background(), testRequest(rcv.URL)) }

	// Three consecutive failures open it: the third attempt is the last,
	// since the breaker would refuse the fourth.
	res, err := deliver()
	if !errors.Is(err, ErrCircuitOpen) || errs.IsPermanent(err) || res.Attempts != 3 {
		t.Fatalf("first delivery: %+v, %v", res, err)
	}
	checkAttempts(t, rec.List(), []int{502, 502, 502}, false)
	s := c.Stats("ops")
	if s.Breaker != BreakerOpen || s.BreakerOpens != 1 || !s.BreakerOpenUntil.Equal(clock.Now().Add(30*time.Second)) {
		t.Fatalf("stats after opening: %+v", s)
	}

	// Open: fails at once, nothing sent, nothing recorded.
	clock.Advance(29 * time.Second)
	res, err = deliver()
	if !errors.Is(err, ErrCircuitOpen) || res.Attempts != 0 || len(rcv.Hits()) != 3 || len(rec.List()) != 3 {
		t.Fatalf("while open: %+v, %v, %d requests", res, err, len(rcv.Hits()))
	}
	if s := c.Stats("ops"); s.BreakerRejected != 1 {
		t.Fatalf("rejected %d", s.BreakerRejected)
	}
	// Another receiver is not affected.
	other := testRequest(newTestReceiver(t, clock, nil, statuses(200)).URL)
	other.Receiver = "other"
	if _, err := c.Deliver(context.Background(), other); err != nil {
		t.Fatalf("the breaker of one receiver refused another: %v", err)
	}

	// After the cool-down one trial goes; it fails, so the breaker opens
	// again and that delivery stops after its one attempt.
	clock.Advance(time.Second)
	before := len(rcv.Hits())
	res, err = deliver()
	if !errors.Is(err, ErrCircuitOpen) || res.Attempts != 1 || len(rcv.Hits()) != before+1 {
		t.Fatalf("failed trial: %+v, %v", res, err)
	}
	if s := c.Stats("ops"); s.Breaker != BreakerOpen || s.BreakerOpens != 2 {
		t.Fatalf("after a failed trial: %+v", s)
	}

	// The receiver recovers; the next trial closes the breaker.
	mu.Lock()
	healthy = true
	mu.Unlock()
	clock.Advance(30 * time.Second)
	if res, err := deliver(); err != nil || res.Attempts != 1 {
		t.Fatalf("successful trial: %+v, %v", res, err)
	}
	if s := c.Stats("ops"); s.Breaker != BreakerClosed || s.ConsecutiveFailures != 0 {
		t.Fatalf("after a successful trial: %+v", s)
	}
	want := []string{"ops:closed>open", "ops:open>half-open", "ops:half-open>open", "ops:open>half-open", "ops:half-open>closed"}
	if !slices.Equal(changes, want) {
		t.Fatalf("breaker changes %v, want %v", changes, want)
	}

	// A success resets the count: failures must be consecutive.
	mu.Lock()
	healthy = false
	mu.Unlock()
	cfg.Retry.MaxAttempts = 2
	c2 := newTestClient(t, cfg, clock, &attempts{})
	d2 := func() { c2.Deliver(context.Background(), testRequest(rcv.URL)) }
	d2() // two failures
	mu.Lock()
	healthy = true
	mu.Unlock()
	d2() // a success
	mu.Lock()
	healthy = false
	mu.Unlock()
	d2() // two failures
	if s := c2.Stats("ops"); s.Breaker != BreakerClosed || s.ConsecutiveFailures != 2 {
		t.Fatalf("non-consecutive failures: %+v", s)
	}
}

// TestBreakerPerIntegration: integrations of one receiver have a breaker
// each, so one that is down does not block the others (a receiver's Slack
// failing while its PagerDuty works).
func TestBreakerPerIntegration(t *testing.T) {
	clock := newFakeClock()
	down := newTestReceiver(t, clock, nil, func(_ int, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusBadGateway) })
	up := newTestReceiver(t, clock, nil, func(int, http.ResponseWriter, *http.Request) {})
	cfg := testConfig()
	cfg.Breaker = BreakerConfig{Failures: 2, CoolDown: time.Minute}
	cfg.Retry.MaxAttempts = 3
	c := newTestClient(t, cfg, clock, &attempts{})
	slack, pager := testRequest(down.URL), testRequest(up.URL)
	slack.Integration, pager.Integration = "receivers[0].slack_configs[0]", "receivers[0].pagerduty_configs[0]"
	if _, err := c.Deliver(context.Background(), slack); !errors.Is(err, ErrCircuitOpen) {
		t.Fatalf("the failing integration: %v, want its breaker open", err)
	}
	if _, err := c.Deliver(context.Background(), pager); err != nil {
		t.Fatalf("the healthy integration of the same receiver: %v", err)
	}
	if len(up.Hits()) != 1 {
		t.Fatalf("the healthy integration got %d requests, want 1", len(up.Hits()))
	}
	if s := c.Stats("ops " + slack.Integration); s.Breaker != BreakerOpen {
		t.Fatalf("stats of the failing integration: %+v", s)
	}
	if s := c.Stats("ops " + pager.Integration); s.Breaker != BreakerClosed || s.Delivered != 1 {
		t.Fatalf("stats of the healthy integration: %+v", s)
	}
	// A caller holding a notification for later waits for the failing
	// integration's cool-down, not for the healthy one's.
	if until := c.BreakerOpenUntil("ops", slack.Integration); !until.Equal(clock.Now().Add(time.Minute)) {
		t.Fatalf("the failing integration's breaker opens again at %v, want after its cool-down (%v)", until, clock.Now().Add(time.Minute))
	}
	if until := c.BreakerOpenUntil("ops", pager.Integration); !until.IsZero() {
		t.Fatalf("the healthy integration's breaker is open until %v, want closed", until)
	}
	if until := c.BreakerOpenUntil("nobody", ""); !until.IsZero() {
		t.Fatalf("a receiver never delivered to: open until %v, want closed", until)
	}
	// Without an integration, requests share the receiver's breaker.
	plain := testRequest(up.URL)
	if _, err := c.Deliver(context.Background(), plain); err != nil {
		t.Fatal(err)
	}
	if s := c.Stats("ops"); s.Delivered != 1 {
		t.Fatalf("stats of the receiver: %+v", s)
	}
}

func TestBreakerOneTrial(t *testing.T) {
	clock := newFakeClock()
	arrived, release := make(chan struct{}), make(chan struct{})
	rcv := newTestReceiver(t, clock, nil, func(n int, w http.ResponseWriter, _ *http.Request) {
		switch n {
		case 1:
			w.WriteHeader(500)
		case 2: // the trial: wait until the test has tried a second delivery
			close(arrived)
			<-release
		}
	})
	cfg := testConfig()
	cfg.Breaker = BreakerConfig{Failures: 1, CoolDown: time.Minute}
	cfg.Retry.MaxAttempts = 1
	c := newTestClient(t, cfg, clock, &attempts{})
	if _, err := c.Deliver(context.Background(), testRequest(rcv.URL)); !errors.Is(err, ErrGaveUp) {
		t.Fatal(err)
	}
	clock.Advance(time.Minute)
	trial := make(chan error)
	go func() {
		_, err := c.Deliver(context.Background(), testRequest(rcv.URL))
		trial <- err
	}()
	<-arrived
	if s := c.Stats("ops"); s.Breaker != BreakerHalfOpen {
		t.Fatalf("during the trial: %v", s.Breaker)
	}
	res, err := c.Deliver(context.Background(), testRequest(rcv.URL))
	if !errors.Is(err, ErrCircuitOpen) || res.Attempts != 0 || !strings.Contains(err.Error(), "trial request is in flight") {
		t.Fatalf("a second request during the trial: %+v, %v", res, err)
	}
	close(release)
	if err := <-trial; err != nil {
		t.Fatalf("trial: %v", err)
	}
	if _, err := c.Deliver(context.Background(), testRequest(rcv.URL)); err != nil {
		t.Fatalf("after the trial: %v", err)
	}
	if n := len(rcv.Hits()); n != 3 {
		t.Fatalf("%d requests, want 3", n)
	}
}

// A request that started before the breaker opened cannot close it by
// succeeding late.
func TestBreakerStaleOutcome(t *testing.T) {
	now := time.Unix(0, 0)
	b := newBreaker(BreakerConfig{Failures: 1, CoolDown: time.Minute}, nil)
	slow, ok, _ := b.allow(now)
	fast, ok2, _ := b.allow(now)
	if !ok || !ok2 {
		t.Fatal("closed breaker refused")
	}
	b.done(fast, now, true)
	if b.state != BreakerOpen {
		t.Fatal("not open")
	}
	b.done(slow, now, false)
	if b.state != BreakerOpen {
		t.Fatal("a stale success closed the breaker")
	}
	// A trial given back (the caller gave up) lets the next one through.
	now = now.Add(time.Minute)
	gen, ok, _ := b.allow(now)
	if !ok || b.state != BreakerHalfOpen {
		t.Fatal("no trial after the cool-down")
	}
	if _, ok, _ := b.allow(now); ok {
		t.Fatal("two trials at once")
	}
	b.cancel(gen)
	if _, ok, _ := b.allow(now); !ok {
		t.Fatal("a cancelled trial kept the breaker half-open")
	}
}

func TestRateLimit(t *testing.T) {
	clock := newFakeClock()
	rcv := newTestReceiver(t, clock, nil, statuses(200))
	cfg := testConfig()
	cfg.RateLimit = RateLimitConfig{PerSecond: 2, Burst: 3}
	c := newTestClient(t, cfg, clock, &attempts{})
	start := clock.Now()
	for range 10 {
		if _, err := c.Deliver(context.Background(), testRequest(rcv.URL)); err != nil {
			t.Fatal(err)
		}
	}
	// The burst goes at once, then one every 500ms.
	want := slices.Repeat([]time.Duration{500 * time.Millisecond}, 7)
	if got := clock.Sleeps(); !slices.Equal(got, want) {
		t.Fatalf("slept %v, want %v", got, want)
	}
	// The limit holds over every window: at most burst + rate*window.
	hits := rcv.Hits()
	for i := range hits {
		for j := i; j < len(hits); j++ {
			window := hits[j].at.Sub(hits[i].at).Seconds()
			if n := float64(j - i + 1); n > 3+2*window+1e-9 {
				t.Fatalf("%v requests in %vs", n, window)
			}
		}
	}
	if d := hits[len(hits)-1].at.Sub(start); d != 3500*time.Millisecond {
		t.Fatalf("10 requests took %v, want 3.5s", d)
	}
	s := c.Stats("ops")
	if s.RateLimitWaits != 7 || s.RateLimitWaited != 3500*time.Millisecond || s.Tokens != 0 {
		t.Fatalf("stats %+v", s)
	}
	clock.Advance(time.Hour)
	if s := c.Stats("ops"); s.Tokens != 3 {
		t.Fatalf("tokens after an idle hour: %v, want the burst", s.Tokens)
	}

	// Retries take tokens too.
	clock = newFakeClock()
	rcv = newTestReceiver(t, clock, nil, statuses(503, 503, 200))
	cfg.RateLimit = RateLimitConfig{PerSecond: 0.1, Burst: 1}
	c = newTestClient(t, cfg, clock, &attempts{})
	if _, err := c.Deliver(context.Background(), testRequest(rcv.URL)); err != nil {
		t.Fatal(err)
	}
	// Backoff 500ms, then 9.5s more for the token; 1s, then 9s more.
	if got, want := clock.Sleeps(), []time.Duration{500 * time.Millisecond, 9500 * time.Millisecond, time.Second, 9 * time.Second}; !slices.Equal(got, want) {
		t.Fatalf("slept %v, want %v", got, want)
	}
}

func TestRateLimitDenied(t *testing.T) {
	clock := newFakeClock()
	rcv := newTestReceiver(t, clock, nil, statuses(200))
	cfg := testConfig()
	cfg.RateLimit = RateLimitConfig{PerSecond: 0.01, Burst: 1, MaxWait: time.Minute}
	c := newTestClient(t, cfg, clock, &attempts{})
	if _, err := c.Deliver(context.Background(), testRequest(rcv.URL)); err != nil {
		t.Fatal(err)
	}
	// The next token is 100s away, beyond max_wait.
	res, err := c.Deliver(context.Background(), testRequest(rcv.URL))
	if !errors.Is(err, ErrRateLimited) || errs.IsPermanent(err) || res.Attempts != 0 {
		t.Fatalf("Deliver = %+v, %v", res, err)
	}
	// Or beyond the context's deadline.
	cfg.RateLimit = RateLimitConfig{PerSecond: 0.1, Burst: 1}
	c = newTestClient(t, cfg, clock, &attempts{})
	c.Deliver(context.Background(), testRequest(rcv.URL))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.Deliver(ctx, testRequest(rcv.URL)); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("a wait past the deadline: %v", err)
	}
	if n := len(rcv.Hits()); n != 2 {
		t.Fatalf("%d requests, want 2", n)
	}
	if s := c.Stats("ops"); s.RateLimitDenied != 1 || s.Tokens > 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestConcurrentDeliveries(t *testing.T) {
	clock := newFakeClock()
	rcv := newTestReceiver(t, clock, testSecret, statuses(500, 200))
	cfg := testConfig()
	cfg.Breaker = BreakerConfig{Failures: 100}
	cfg.RateLimit = RateLimitConfig{PerSecond: 1000, Burst: 1000}
	rec := &attempts{}
	c := newTestClient(t, cfg, clock, rec)
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			req := testRequest(rcv.URL)
			req.Receiver = []string{"ops", "dev"}[i%2]
			if _, err := c.Deliver(context.Background(), req); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	for _, h := range rcv.Hits() {
		if h.verify != nil {
			t.Fatal(h.verify)
		}
	}
	all := c.AllStats()
	if len(all) != 2 || all[0].Receiver != "dev" || all[0].Delivered+all[1].Delivered != 20 || len(rec.List()) != len(rcv.Hits()) {
		t.Fatalf("stats %+v, %d attempts, %d requests", all, len(rec.List()), len(rcv.Hits()))
	}
}

func TestBackoff(t *testing.T) {
	for _, c := range []struct {
		jitter float64
		n      int
		want   time.Duration
	}{
		{0.5, 1, 500 * time.Millisecond},
		{0.5, 2, time.Second},
		{0.5, 5, 8 * time.Second},
		{0.5, 6, 15 * time.Second}, // 32s capped at max_delay 30s
		{0.5, 70, 15 * time.Second},
		{0.5, 1000, 15 * time.Second},
		{0, 3, 0},
		{0.999, 1, 999 * time.Millisecond},
		{1.5, 1, 0}, // a broken source falls back to 0
	} {
		cl, err := New(testConfig(), WithJitter(func() float64 { return c.jitter }))
		if err != nil {
			t.Fatal(err)
		}
		if got := cl.backoff(c.n); got != c.want {
			t.Errorf("backoff(%d) with jitter %v = %v, want %v", c.n, c.jitter, got, c.want)
		}
	}
	// The default jitter stays within [0, ceiling).
	cl, _ := New(testConfig())
	for range 1000 {
		if d := cl.backoff(3); d < 0 || d >= 4*time.Second {
			t.Fatalf("backoff(3) = %v", d)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 3, 14, 10, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"", 0, false},
		{"0", 0, true},
		{" 120 ", 2 * time.Minute, true},
		{"-5", 0, false},
		{"1.5", 0, false},
		{"soon", 0, false},
		{"Sat, 14 Mar 2026 10:01:30 GMT", 90 * time.Second, true},
		{"Saturday, 14-Mar-26 10:00:10 GMT", 10 * time.Second, true}, // RFC 850
		{"Sat Mar 14 10:00:05 2026", 5 * time.Second, true},          // asctime
		{"Fri, 13 Mar 2026 10:00:00 GMT", 0, true},                   // the past: now
		{"99999999999999999999", 0, false},
		{"9999999999999", time.Duration(1<<63 - 1).Truncate(time.Second), true},
	} {
		got, ok := parseRetryAfter(c.in, now)
		if got != c.want || ok != c.ok {
			t.Errorf("parseRetryAfter(%q) = %v, %v, want %v, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	if err := (Config{}).Validate(); err != nil {
		t.Fatalf("the zero config: %v", err)
	}
	d := DefaultConfig()
	if d.Timeout != DefaultTimeout || d.Retry.MaxAttempts != DefaultMaxAttempts || d.Breaker.Failures != DefaultFailures || d.RateLimit.Burst != DefaultBurst || d.FollowRedirects {
		t.Fatalf("DefaultConfig = %+v", d)
	}
	for _, c := range []struct {
		key    string
		modify func(*Config)
	}{
		{"timeout", func(c *Config) { c.Timeout = time.Microsecond }},
		{"max_body_bytes", func(c *Config) { c.MaxBodyBytes = -1 }},
		{"user_agent", func(c *Config) { c.UserAgent = "a\r\nb" }},
		{"retry.base_delay", func(c *Config) { c.Retry.BaseDelay = -time.Second }},
		{"retry.max_delay", func(c *Config) { c.Retry.BaseDelay, c.Retry.MaxDelay = time.Minute, time.Second }},
		{"retry.max_attempts", func(c *Config) { c.Retry.MaxAttempts = -1 }},
		{"retry.max_attempts", func(c *Config) { c.Retry.MaxAttempts = 1001 }},
		{"retry.max_elapsed", func(c *Config) { c.Retry.MaxElapsed = -1 }},
		{"retry.max_retry_after", func(c *Config) { c.Retry.MaxRetryAfter = -1 }},
		{"breaker.failures", func(c *Config) { c.Breaker.Failures = -1 }},
		{"breaker.cool_down", func(c *Config) { c.Breaker.CoolDown = -1 }},
		{"rate_limit.per_second", func(c *Config) { c.RateLimit.PerSecond = -1 }},
		{"rate_limit.burst", func(c *Config) { c.RateLimit.Burst = -1 }},
		{"rate_limit.max_wait", func(c *Config) { c.RateLimit.MaxWait = -1 }},
	} {
		cfg := Config{}
		c.modify(&cfg)
		err := cfg.Validate()
		if !errors.Is(err, ErrInvalidConfig) || !errors.Is(err, config.ErrInvalidConfig) || !strings.Contains(err.Error(), ": "+c.key+": ") {
			t.Errorf("%s: %v", c.key, err)
		}
		if _, nerr := New(cfg); !errors.Is(nerr, ErrInvalidConfig) {
			t.Errorf("New with a bad %s: %v", c.key, nerr)
		}
	}
	for i, o := range []Option{WithClock(nil, nil), WithRecorder(nil), WithTransport(nil), WithJitter(nil), WithBreakerObserver(nil), nil} {
		if _, err := New(Config{}, o); !errors.Is(err, ErrInvalidOption) {
			t.Errorf("option %d: %v", i, err)
		}
	}
}

// The config loads from YAML with the keys the errors name.
func TestConfigLoad(t *testing.T) {
	var cfg Config
	err := config.Load(&cfg, config.Options{Sets: []string{"retry.max_attempts=3", "rate_limit.per_second=0.5", "breaker.cool_down=1m", "follow_redirects=true"}})
	if err != nil || cfg.Retry.MaxAttempts != 3 || cfg.RateLimit.PerSecond != 0.5 || cfg.Breaker.CoolDown != time.Minute || !cfg.FollowRedirects {
		t.Fatalf("Load = %+v, %v", cfg, err)
	}
	err = config.Load(&cfg, config.Options{Sets: []string{"retry.max_attempts=0", "breaker.failures=-2"}})
	if !errors.Is(err, config.ErrInvalidConfig) || !strings.Contains(err.Error(), "breaker.failures") {
		t.Fatalf("Load of a bad value: %v", err)
	}
}

func TestWithTransport(t *testing.T) {
	var seen []string
	rt := roundTripper(func(r *http.Request) (*http.Response, error) {
		seen = append(seen, r.Header.Get(HeaderID))
		return &http.Response{StatusCode: 200, Body: io.NopCloser(strings.NewReader("ok")), Header: http.Header{}}, nil
	})
	c := newTestClient(t, testConfig(), newFakeClock(), &attempts{}, WithTransport(rt))
	if _, err := c.Deliver(context.Background(), testRequest("https://hooks.example.com/x")); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(seen, []string{testKey}) {
		t.Fatalf("transport saw %v", seen)
	}
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// contextRecorder records the value each attempt's context carries.
type contextRecorder struct {
	attempts
	tags []any
}

type tagKey struct{}

func (r *contextRecorder) RecordAttemptContext(ctx context.Context, a Attempt) {
	r.RecordAttempt(a)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tags = append(r.tags, ctx.Value(tagKey{}))
}

// A ContextRecorder is given the context of the Deliver each attempt is
// part of, retries included: concurrent callers tell their attempts apart
// by it.
func TestContextRecorder(t *testing.T) {
	clock := newFakeClock()
	rcv := newTestReceiver(t, clock, nil, statuses(503, 200))
	rec := &contextRecorder{}
	c := newTestClient(t, testConfig(), clock, rec)
	if _, err := c.Deliver(context.WithValue(context.Background(), tagKey{}, "incident-1"), testRequest(rcv.URL)); err != nil {
		t.Fatal(err)
	}
	checkAttempts(t, rec.List(), []int{503, 200}, false)
	if !slices.Equal(rec.tags, []any{"incident-1", "incident-1"}) {
		t.Fatalf("attempts recorded with %v, want each with its Deliver's context", rec.tags)
	}
}
