package ingest

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/aiops-dev/aiops/pkg/event"
)

// TestWrongTokensAreRateLimitedPerClient is issue #14 item 8: 300 requests
// with a wrong token were 300 answers of 401. Past the burst a client
// address is answered 429 for everything (a right token too, or guessing
// would not be slowed) until its bucket refills; other addresses are not
// affected.
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
	resp := post(attacker, "Bearer "+tokenA)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "1" {
		t.Fatalf("a right token from the blocked address: %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if resp := post(other, "Bearer "+tokenA); resp.StatusCode != http.StatusOK {
		t.Fatalf("another address: %d", resp.StatusCode)
	}
	if resp := post(other, "-"); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("another address without a token: %d", resp.StatusCode)
	}
	// Another port of the same host is the same client.
	if resp := post("203.0.113.7:6666", "Bearer "+tokenA); resp.StatusCode != http.StatusTooManyRequests {
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

func TestAuthFailureClientsAreBounded(t *testing.T) {
	clk := &clock{now: testNow}
	h, err := New(Config{Tokens: []string{tokenA}}, &fakePublisher{}, WithClock(clk.Now))
	if err != nil {
		t.Fatal(err)
	}
	for i := range MaxAuthFailureClients + 500 {
		remote := fmt.Sprintf("10.%d.%d.%d:1", i>>16&255, i>>8&255, i&255)
		request{path: PathEvents, contentType: "application/json", token: "Bearer x", body: []byte(logLine), remote: remote}.do(h)
	}
	if n := len(h.failures.clients); n > MaxAuthFailureClients {
		t.Fatalf("%d client addresses remembered, over %d", n, MaxAuthFailureClients)
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
	h, err := New(Config{Tokens: []string{tokenA}, MaxConcurrentRequests: 2}, pub)
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
	<-pub.entered
	<-pub.entered
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
