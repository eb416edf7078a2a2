package ingest

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/aiops-dev/aiops/pkg/bus"
	"github.com/aiops-dev/aiops/pkg/event"
)

// The gateway looks at the writer's backlog once per interval while it is
// small, and ten times as often once it is past half the limit: between
// two looks a burst of requests could otherwise fill the rest of the
// stream, and a look at every request would put two JetStream API
// requests behind each. A look that fails below half the limit refuses
// nothing (the publish tells a bus away itself).
func TestStoreBacklogIsLookedAtMoreOftenPastHalfTheLimit(t *testing.T) {
	ratios := []float64{0.1, 0.5, 0.95, 0.2}
	var looks int
	var fail error
	measure := func(context.Context) (float64, int64, error) {
		if fail != nil {
			return 0, 0, fail
		}
		r := ratios[looks]
		looks++
		return r, 0, nil
	}
	clk := &clock{now: testNow}
	h := newTestHandler(t, &fakePublisher{}, nil, WithClock(clk.Now), WithStoreBacklog(measure, time.Hour, nil))
	post := func(want int) {
		t.Helper()
		rec := request{path: PathEvents, contentType: "application/json", body: []byte(logLine)}.do(h)
		if rec.Code != want {
			t.Fatalf("answer %d %s after %d looks, want %d", rec.Code, rec.Body, looks, want)
		}
		if want == http.StatusServiceUnavailable && rec.Header().Get("Retry-After") == "" {
			t.Fatal("a 503 without Retry-After")
		}
	}
	post(http.StatusOK) // 0.1
	post(http.StatusOK) // 0.1 still: within the hour
	if looks != 1 {
		t.Fatalf("%d looks within the interval, want 1", looks)
	}
	clk.Add(time.Hour)
	post(http.StatusOK) // 0.5, past half of 0.9
	post(http.StatusOK) // 0.5 still: within a tenth of the hour
	if looks != 2 {
		t.Fatalf("%d looks, want 2", looks)
	}
	clk.Add(time.Hour / pastHalfPace)
	post(http.StatusServiceUnavailable) // 0.95, looked at again a tenth of the interval on
	clk.Add(time.Hour / pastHalfPace)
	post(http.StatusOK) // 0.2: the writer caught up
	if looks != 4 {
		t.Fatalf("%d looks, want 4", looks)
	}
	clk.Add(time.Hour)
	fail = errors.New("consumer not found")
	post(http.StatusOK)
}

// Between two looks the gateway counts the events it accepted: once they
// take a quarter of the room the last look left below the limit it looks
// again, whatever the time. Looking by time alone, a 4 MiB EVENTS on
// aiops run filled within the second below half the limit (one 40 KB log
// in four, posted in a loop), and 101 of 268 events answered 200 were
// lost.
func TestStoreBacklogIsLookedAtOnceAcceptedEventsTakeTheRoom(t *testing.T) {
	for _, stream := range []struct {
		bytes int64
		looks int
		code  int
	}{
		{1 << 30, 1, http.StatusOK},              // a request's event takes none of the room
		{1000, 2, http.StatusServiceUnavailable}, // it takes over a quarter of the 400 bytes left
	} {
		ratios := []float64{0.5, 0.95}
		looks := 0
		measure := func(context.Context) (float64, int64, error) {
			r := ratios[looks]
			looks++
			return r, stream.bytes, nil
		}
		clk := &clock{now: testNow}
		h := newTestHandler(t, &fakePublisher{}, nil, WithClock(clk.Now), WithStoreBacklog(measure, time.Hour, nil))
		post := func() int {
			return request{path: PathEvents, contentType: "application/json", body: []byte(logLine)}.do(h).Code
		}
		if code := post(); code != http.StatusOK {
			t.Fatalf("first request: %d", code)
		}
		if code := post(); code != stream.code || looks != stream.looks {
			t.Fatalf("a stream of %d bytes, the second request within the hour: %d after %d looks, want %d after %d",
				stream.bytes, code, looks, stream.code, stream.looks)
		}
	}
}

// The room is taken by whoever publishes, not only by the events this
// gateway accepts: the gateway counts what the stream took as followed
// too (another gateway, a producer on NATS, the log miner's templated
// copies). Counting only its own, four gateways on a 4 MiB EVENTS, each
// posting one 40 KB log in five, filled it between looks: 26 of 530
// events answered 200 were never stored.
func TestStoreBacklogIsLookedAtOnceOtherProducersTakeTheRoom(t *testing.T) {
	const streamBytes = 1 << 20
	ratios := []float64{0.5, 0.95}
	looks := 0
	measure := func(context.Context) (float64, int64, error) {
		r := ratios[looks]
		looks++
		return r, streamBytes, nil
	}
	var read uint64 = 7 << 20 // what the stream took before: counted from the look on
	clk := &clock{now: testNow}
	h := newTestHandler(t, &fakePublisher{}, nil, WithClock(clk.Now),
		WithStoreBacklog(measure, time.Hour, func() uint64 { return read }))
	post := func() int {
		return request{path: PathEvents, contentType: "application/json", body: []byte(logLine)}.do(h).Code
	}
	if code := post(); code != http.StatusOK {
		t.Fatalf("first request: %d", code)
	}
	read += 90 << 10 // under a quarter of the 0.4 MiB left, this gateway's event too
	if code := post(); code != http.StatusOK || looks != 1 {
		t.Fatalf("the stream took under a quarter of the room: %d after %d looks, want 200 after 1", code, looks)
	}
	read += 20 << 10 // over it, since the first look
	if code := post(); code != http.StatusServiceUnavailable || looks != 2 {
		t.Fatalf("other producers took over a quarter of the room: %d after %d looks, want 503 after 2, looked at again", code, looks)
	}
}

// A request is let in by the last look before its body is read, so the
// requests in flight were all let in by the same room: each counts the
// events the others are publishing before it publishes its own. Counted
// once published, eight requests in flight on each of two gateways on a
// 4 MiB EVENTS landed past the bound together, and up to 96 of some 550
// events answered 200 were lost.
func TestStoreBacklogCountsTheRequestsInFlight(t *testing.T) {
	const streamBytes = 1 << 20
	measure := func(context.Context) (float64, int64, error) { return 0.85, streamBytes, nil }
	pub := &firstHeldPublisher{publishing: make(chan struct{}), release: make(chan struct{})}
	h := newTestHandler(t, pub, nil, WithStoreBacklog(measure, time.Hour, nil))
	// 30 KB each: one fits the 0.05 MiB left below the bound, two do not.
	body := []byte(`{"kind":"log","service":"checkout","time":"2026-11-21T11:59:00Z","body":{"message":"` + strings.Repeat("x", 30<<10) + `"}}`)
	post := func() int {
		return request{path: PathEvents, contentType: "application/json", body: body}.do(h).Code
	}
	first := make(chan int, 1)
	go func() { first <- post() }()
	select {
	case <-pub.publishing: // the first request's events are being published
	case code := <-first:
		t.Fatalf("the first request: %d, never published", code)
	}
	if rec := (request{path: PathEvents, contentType: "application/json", body: body}).do(h); rec.Code != http.StatusServiceUnavailable ||
		!strings.Contains(rec.Body.String(), "ingest.max_store_backlog") {
		t.Fatalf("a request while another's events take the room below the bound: %d %s, want 503 naming ingest.max_store_backlog", rec.Code, rec.Body)
	}
	close(pub.release)
	if code := <-first; code != http.StatusOK {
		t.Fatalf("the first request: %d", code)
	}
}

// A request whose events take more than the bound of the whole stream
// can never be taken, however long the client waits: it is answered 413
// naming the limits, not 503 with a Retry-After that has a client retry
// it for ever. One that fits an empty stream is taken.
func TestStoreBacklogRefusesARequestNoStreamRoomCanTake(t *testing.T) {
	const streamBytes = 64 << 10 // 0.9 of it (max_store_backlog): some 58 KB
	measure := func(context.Context) (float64, int64, error) { return 0, streamBytes, nil }
	h := newTestHandler(t, &fakePublisher{}, nil, WithStoreBacklog(measure, time.Hour, nil))
	post := func(n int) *httptest.ResponseRecorder {
		body := []byte(`{"kind":"log","service":"checkout","time":"2026-11-21T11:59:00Z","body":{"message":"` + strings.Repeat("x", n) + `"}}`)
		return request{path: PathEvents, contentType: "application/json", body: body}.do(h)
	}
	if rec := post(10 << 10); rec.Code != http.StatusOK {
		t.Fatalf("a 10 KB request on an empty stream: %d %s", rec.Code, rec.Body)
	}
	rec := post(60 << 10)
	if rec.Code != http.StatusRequestEntityTooLarge || rec.Header().Get("Retry-After") != "" ||
		!strings.Contains(rec.Body.String(), "streams.max_bytes") || !strings.Contains(rec.Body.String(), "ingest.max_store_backlog") {
		t.Fatalf("a 60 KB request, over 0.9 of a 64 KiB stream: %d (Retry-After %q) %s, want 413 naming streams.max_bytes and ingest.max_store_backlog, no Retry-After",
			rec.Code, rec.Header().Get("Retry-After"), rec.Body)
	}
}

// firstHeldPublisher holds its first publish until release, saying so on
// publishing; the others return at once.
type firstHeldPublisher struct {
	publishing, release chan struct{}
	calls               atomic.Int32
}

func (p *firstHeldPublisher) PublishAll(ctx context.Context, events []*event.Envelope) error {
	if p.calls.Add(1) == 1 {
		close(p.publishing)
		<-p.release
	}
	return nil
}

// While one request looks at the backlog the others go by the last look:
// had each waited in line for the server's answer, a slow bus would have
// made the gateway answer one request per round trip.
func TestStoreBacklogLookedAtByOneRequestAtATime(t *testing.T) {
	release := make(chan struct{})
	looking := make(chan struct{}, 1)
	looks := 0
	measure := func(context.Context) (float64, int64, error) {
		looks++
		if looks == 1 {
			return 0.6, 0, nil
		}
		looking <- struct{}{}
		<-release
		return 0.6, 0, nil
	}
	h := newTestHandler(t, &fakePublisher{}, nil, WithStoreBacklog(measure, 0, nil)) // every request looks
	post := func() int {
		return request{path: PathEvents, contentType: "application/json", body: []byte(logLine)}.do(h).Code
	}
	if code := post(); code != http.StatusOK {
		t.Fatalf("first request: %d", code)
	}
	done := make(chan int, 1)
	go func() { done <- post() }()
	<-looking // the second request's look is under way
	third := make(chan int, 1)
	go func() { third <- post() }()
	select {
	case code := <-third:
		if code != http.StatusOK {
			t.Fatalf("a request during another's look: %d, want 200 by the last look", code)
		}
	case <-time.After(10 * time.Second):
		close(release)
		t.Fatal("a request during another's look waited for it")
	}
	close(release)
	if code := <-done; code != http.StatusOK {
		t.Fatalf("the looking request: %d", code)
	}
}

// Looks that fail leave the guard blind: the last good look stands for
// its interval, and past that it refuses if that look was past half the
// limit (a burst could fill the rest unseen: the writer's consumer
// removed, the server answering publishes and not its API), until a look
// succeeds; below half, or before any look succeeded (a writer not
// started yet has no consumer), it accepts. Before, a look that failed
// refused nothing: 200 past 0.9 of the limit with the writer's consumer
// gone.
func TestStoreBacklogBlindPastHalfTheLimitRefuses(t *testing.T) {
	ratio, fail := 0.0, errors.New("consumer not found")
	failing := true
	measure := func(context.Context) (float64, int64, error) {
		if failing {
			return 0, 0, fail
		}
		return ratio, 0, nil
	}
	clk := &clock{now: testNow}
	h := newTestHandler(t, &fakePublisher{}, nil, WithClock(clk.Now), WithStoreBacklog(measure, time.Second, nil))
	const blind, full = "cannot see how many events are not stored yet", "events not stored yet take 95%"
	post := func(want int, after time.Duration, saying ...string) {
		t.Helper()
		clk.Add(after)
		rec := request{path: PathEvents, contentType: "application/json", body: []byte(logLine)}.do(h)
		if rec.Code != want {
			t.Fatalf("answer %d %s, want %d", rec.Code, rec.Body, want)
		}
		for _, s := range saying {
			if !strings.Contains(rec.Body.String(), s) {
				t.Fatalf("refused saying %s, want %q", rec.Body, s)
			}
		}
	}
	post(http.StatusOK, 0)         // no look ever succeeded
	post(http.StatusOK, time.Hour) // still none

	failing, ratio = false, 0.6 // past half of 0.9
	post(http.StatusOK, time.Hour)
	failing = true
	post(http.StatusOK, time.Second/pastHalfPace)                          // blind for a tenth of the interval
	post(http.StatusServiceUnavailable, time.Second/pastHalfPace*9, blind) // for the interval
	post(http.StatusServiceUnavailable, time.Hour, blind)

	failing, ratio = false, 0.3
	post(http.StatusOK, time.Second/pastHalfPace) // looked at again at the pace past half
	failing = true
	post(http.StatusOK, time.Second)
	post(http.StatusOK, time.Hour) // below half: blind, accepting

	failing, ratio = false, 0.95
	post(http.StatusServiceUnavailable, time.Hour, full)
	failing = true
	post(http.StatusServiceUnavailable, time.Second/pastHalfPace, blind)   // the last look stands
	post(http.StatusServiceUnavailable, time.Second/pastHalfPace*9, blind) // refusing, and blind since
	failing, ratio = false, 0.2
	post(http.StatusOK, time.Second/pastHalfPace) // a look that succeeds ends it
}

// A look serves every request until the next one, not only the caller
// that made it: a caller gone meanwhile (a client that hung up, a
// readiness probe past its timeout) made the look fail, and the guard,
// blind past half the limit, refused every request until the next look.
func TestStoreBacklogLookOutlivesItsCaller(t *testing.T) {
	measure := func(ctx context.Context) (float64, int64, error) {
		if err := ctx.Err(); err != nil {
			return 0, 0, err
		}
		return 0.6, 0, nil // past half of 0.9
	}
	clk := &clock{now: testNow}
	h := newTestHandler(t, &fakePublisher{}, nil, WithClock(clk.Now), WithStoreBacklog(measure, time.Second, nil))
	post := func() {
		t.Helper()
		rec := request{path: PathEvents, contentType: "application/json", body: []byte(logLine)}.do(h)
		if rec.Code != http.StatusOK {
			t.Fatalf("answer %d %s, want 200", rec.Code, rec.Body)
		}
	}
	post()
	clk.Add(time.Hour)
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	if err := h.backlog.missing(gone, clk.Now(), h.cfg.MaxStoreBacklog); err != nil {
		t.Fatal(err)
	}
	post() // by the probe's look
}

// The backlog gauge is what the gateway saw when it last looked, and it
// looked only when a request came: without traffic it kept its value for
// ever, a writer's backlog long stored shown as full (or the reverse). A
// scrape looks too, as a request does: at most once per interval and not
// while another look is under way.
func TestStoreBacklogGaugeIsLookedAtWhenScraped(t *testing.T) {
	ratios := []float64{0.1, 0.7}
	looks := 0
	measure := func(context.Context) (float64, int64, error) {
		r := ratios[min(looks, len(ratios)-1)]
		looks++
		return r, 0, nil
	}
	clk := &clock{now: testNow}
	h := newTestHandler(t, &fakePublisher{}, nil, WithClock(clk.Now), WithStoreBacklog(measure, time.Second, nil))
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(h.Collector())
	scrape := func() float64 {
		t.Helper()
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == "aiops_ingest_store_backlog_ratio" {
				return mf.GetMetric()[0].GetGauge().GetValue()
			}
		}
		t.Fatal("no aiops_ingest_store_backlog_ratio")
		return 0
	}
	if rec := (request{path: PathEvents, contentType: "application/json", body: []byte(logLine)}).do(h); rec.Code != http.StatusOK {
		t.Fatalf("request: %d", rec.Code)
	}
	if got := scrape(); got != 0.1 || looks != 1 {
		t.Fatalf("scraped within the second of the request's look: %g after %d looks, want 0.1 after 1", got, looks)
	}
	clk.Add(time.Second) // no request since
	if got := scrape(); got != 0.7 {
		t.Fatalf("scraped a second on without a request: %g, want 0.7, looked at anew", got)
	}
	if got := scrape(); got != 0.7 || looks != 2 {
		t.Fatalf("scraped again within the second: %g after %d looks, want 0.7 after 2", got, looks)
	}
}

// The guard looks before a request: EVENTS must leave one request's
// worth of room above the bound it refuses at, or a request taken just
// under it pushes out unstored events. The defaults leave 102 MiB for
// 32 MiB (32 MiB with memory storage, which warned at every start with a
// quarter of 1 GiB); the least stream streams.max_bytes takes leaves 218
// KiB.
func TestStoreRoomWarningWhenOneRequestDoesNotFit(t *testing.T) {
	cfg := Config{}.withDefaults()
	for _, storage := range [][]bus.TopologyOption{nil, {bus.WithMemoryStorage()}} {
		events := bus.DefaultStreams(storage...)[0]
		if w := storeRoomWarning(events.MaxBytes, cfg); events.Name != bus.StreamEvents || w != "" {
			t.Errorf("the defaults, %s storage: %s %q, want no warning", events.Storage, events.Name, w)
		}
	}
	if w := storeRoomWarning(0, cfg); w != "" {
		t.Errorf("no byte bound: %q, want no warning", w)
	}
	w := storeRoomWarning(bus.MinStreamMaxBytes, cfg)
	for _, key := range []string{"streams.max_bytes", "ingest.max_expanded_bytes", "ingest.max_store_backlog"} {
		if !strings.Contains(w, key) {
			t.Errorf("the least stream: %q, want a warning naming %s", w, key)
		}
	}
	cfg.MaxExpandedBytes = 128 << 10
	if w := storeRoomWarning(bus.MinStreamMaxBytes, cfg); w != "" {
		t.Errorf("requests of at most 128 KiB on the least stream: %q, want no warning", w)
	}
}
