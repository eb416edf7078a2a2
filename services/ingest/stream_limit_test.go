package ingest

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

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
	js, listen, post := gatewayLookingByRoom(t)
	ctx := context.Background()
	// The gateway listens: it took EVENTS' limit, and has not looked yet
	// (a probe or a scrape would look).
	waitListening(t, listen)

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

	accepted, refused := post600KB(t, post)
	if held := streamState(t, js).Msgs; held != uint64(accepted) || !refused {
		t.Fatalf("%d events answered 200, %d of them in EVENTS (refused any: %v): the others were discarded unstored", accepted, held, refused)
	}
}

// Other producers take the room too: a producer on NATS, another gateway,
// the log miner's templated copies. The gateway counts what the stream
// took since its last look as it follows it, not only the events it
// accepted: counting its own alone, it went by a look that saw EVENTS
// nearly empty after a producer on NATS stored 85% of it, and answered
// 200 for events the stream then discarded unstored.
func TestStoreGuardCountsWhatOtherProducersStore(t *testing.T) {
	if testing.Short() {
		t.Skip("needs JetStream")
	}
	js, listen, post := gatewayLookingByRoom(t)
	ctx := context.Background()
	waitListening(t, listen) // it made the streams as it sets them: the limit below is not undone
	s, err := js.Stream(ctx, bus.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.CachedInfo().Config
	cfg.MaxBytes = 1 << 20
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if code := post("the first look: EVENTS is empty"); code != http.StatusOK {
		t.Fatalf("first request: %d", code)
	}

	// A producer on NATS stores 880 KB.
	for range 88 {
		if _, err := js.Publish(ctx, "events.log.direct", make([]byte, 10000)); err != nil {
			t.Fatal(err)
		}
	}
	accepted, refused := post600KB(t, post)
	accepted++ // the first
	if st := streamState(t, js); st.FirstSeq != 1 || !refused {
		t.Fatalf("%d events answered 200 after 88 published on NATS, EVENTS holds them from sequence %d (refused any: %v), want from 1: the others were discarded unstored",
			accepted, st.FirstSeq, refused)
	}
}

// post600KB posts 30 logs of 20 KiB each, and counts those answered 200
// and whether any was refused with 503 (anything else fails t).
func post600KB(t *testing.T, post func(message string) int) (accepted int, refused bool) {
	t.Helper()
	for range 30 {
		switch code := post(strings.Repeat("x", 20<<10)); code {
		case http.StatusOK:
			accepted++
		case http.StatusServiceUnavailable:
			refused = true
		default:
			t.Fatalf("a request: %d", code)
		}
	}
	return accepted, refused
}

// streamState is EVENTS' state now.
func streamState(t *testing.T, js jetstream.JetStream) jetstream.StreamState {
	t.Helper()
	s, err := js.Stream(context.Background(), bus.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	return s.CachedInfo().State
}

// gatewayLookingByRoom runs a gateway on its own whose writer is stopped
// (it stores nothing), looking at the backlog by the room alone after
// its first look (not by time), and posts logs to it.
func gatewayLookingByRoom(t *testing.T) (js jetstream.JetStream, listen string, post func(message string) int) {
	t.Helper()
	every := storeBacklogEvery
	storeBacklogEvery = time.Hour
	t.Cleanup(func() { storeBacklogEvery = every })
	js, _, listen, tokenFile := standaloneGateway(t, "writer")
	return js, listen, func(message string) int { return postLog(t, listen, tokenFile, message) }
}
