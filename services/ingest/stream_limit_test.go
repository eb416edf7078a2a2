package ingest

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aiops-dev/aiops/pkg/bus"
)

// The gateway looks again once the events it accepted take a quarter of
// the room below the bound (WithStoreBacklog), and that room is EVENTS'
// limit as it is now: streams.max_bytes changes while a gateway runs
// (the next service to start applies its own). It took the limit at its
// start for ever: EVENTS cut from 1 GiB to 256 KiB after it started, it
// weighed the room at a quarter of 1 GiB, looked again only by time and
// answered 200 for events the stream then discarded unstored.
func TestStoreGuardWeighsTheRoomAtTheStreamsLimitNow(t *testing.T) {
	if testing.Short() {
		t.Skip("needs JetStream")
	}
	every := storeBacklogEvery
	storeBacklogEvery = time.Hour // looks by the room alone, but the first
	t.Cleanup(func() { storeBacklogEvery = every })
	// The writer, stopped: it stores nothing.
	js, _, listen, tokenFile := standaloneGateway(t, "writer")
	ctx := context.Background()
	post := func(message string) int { return postLog(t, listen, tokenFile, message) }
	// The gateway listens: it took EVENTS' limit, and has not looked yet
	// (a probe or a scrape would look).
	for {
		c, err := net.Dial("tcp", listen)
		if err == nil {
			c.Close()
			break
		}
		time.Sleep(20 * time.Millisecond)
	}

	// Another service starts with streams.max_bytes 256 KiB.
	s, err := js.Stream(ctx, bus.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.CachedInfo().Config
	cfg.MaxBytes = 256 << 10
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}

	accepted := 0
	refused := false
	for range 30 { // 600 KB of events
		switch code := post(strings.Repeat("x", 20<<10)); code {
		case http.StatusOK:
			accepted++
		case http.StatusServiceUnavailable:
			refused = true
		default:
			t.Fatalf("a request: %d", code)
		}
	}
	s, err = js.Stream(ctx, bus.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	if held := s.CachedInfo().State.Msgs; held != uint64(accepted) || !refused {
		t.Fatalf("%d events answered 200, %d of them in EVENTS (refused any: %v): the others were discarded unstored", accepted, held, refused)
	}
}
