package ingest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/bus"
	"github.com/aiops-dev/aiops/pkg/testenv"
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
	nats := testenv.StartNATS(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	nc, js, err := bus.Connect(ctx, bus.Config{URLs: []string{nats.URL()}}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if err := bus.EnsureTopology(ctx, js, bus.DefaultStreams()); err != nil {
		t.Fatal(err)
	}
	// The writer, stopped: it stores nothing.
	if _, err := js.CreateOrUpdateConsumer(ctx, bus.StreamEvents, jetstream.ConsumerConfig{Durable: "writer", AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
		t.Fatal(err)
	}

	admin, listen := testenv.FreeAddr(t), testenv.FreeAddr(t)
	tokenFile := filepath.Join(t.TempDir(), "ingest-token")
	finished := make(chan error, 1)
	go func() {
		finished <- Main(ctx, []string{"-set", "bus.urls=[" + nats.URL() + "]", "-set", "log.level=error",
			"-set", "admin.listen=" + admin, "-set", "ingest.listen=" + listen, "-set", "ingest.generate_token_file=" + tokenFile})
	}()
	defer func() {
		cancel()
		if err := <-finished; err != nil {
			t.Errorf("Main: %v", err)
		}
	}()
	post := func(message string) int {
		t.Helper()
		for {
			token, err := os.ReadFile(tokenFile)
			if err == nil {
				req, _ := http.NewRequest(http.MethodPost, "http://"+listen+"/v1/events", strings.NewReader(
					fmt.Sprintf(`{"kind":"log","service":"checkout","time":%q,"body":{"message":%q}}`, time.Now().UTC().Format(time.RFC3339), message)))
				req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
				req.Header.Set("Content-Type", "application/json")
				resp, err := http.DefaultClient.Do(req)
				if err == nil {
					resp.Body.Close()
					return resp.StatusCode
				}
				if !errors.Is(err, syscall.ECONNREFUSED) {
					t.Fatal(err)
				}
			} else if !errors.Is(err, os.ErrNotExist) {
				t.Fatal(err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
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
