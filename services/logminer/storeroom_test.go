package logminer

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/aiops-dev/aiops/pkg/bus"
	"github.com/aiops-dev/aiops/pkg/event"
)

// While ClickHouse is away the gateway stops accepting logs once the
// events the writer has not stored take ingest.max_store_backlog (0.9) of
// EVENTS' limit, and EVENTS discards its oldest past the limit, stored or
// not. The log miner still owes a templated copy of each log accepted, as
// large as the log and more: published into the last tenth, the copies
// pushed out logs the gateway had answered 200 for (aiops run, a 4 MiB
// EVENTS, a burst of 40 KB logs: 6 of 210 lost). It holds them until the
// writer has stored enough, and publishes them then.
func TestCopiesWaitForTheWriterToMakeRoom(t *testing.T) {
	r := newRig(t)
	_, js := r.connect()
	ctx := context.Background()
	const maxBytes = 4 << 20
	if err := bus.EnsureTopology(ctx, js, bus.DefaultStreams(bus.WithMaxBytes(maxBytes))); err != nil {
		t.Fatal(err)
	}
	// The writer while ClickHouse is away: its consumer acks nothing.
	writer, err := js.CreateOrUpdateConsumer(ctx, bus.StreamEvents, jetstream.ConsumerConfig{Durable: "writer", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}

	// What the gateway accepts up to its bound: one 40 KB log in four.
	// The log miner is behind (restarting, or slower than the burst).
	var logs []rawLog
	for i := 0; streamBytes(t, js) < 0.9*maxBytes-50_000; i++ {
		message := fmt.Sprintf("payment %d timed out after 3000ms", i)
		if i%4 == 0 {
			message += " " + strings.Repeat("x", 40_000)
		}
		e, err := event.New(event.KindLog, "checkout", time.Now(), event.LogBody{Message: message})
		if err != nil {
			t.Fatal(err)
		}
		logs = append(logs, rawLog{env: e})
		publishRaw(t, js, logs[len(logs)-1:])
	}

	cfg := Config{}
	cfg.State.Disabled = true
	l, stop := r.start(cfg)
	defer stop()
	// The log miner mines every log, or holds the copies it has no room
	// for.
	miner, err := js.Consumer(ctx, bus.StreamEvents, cfg.WithDefaults().Consumer.Durable)
	if err != nil {
		t.Fatal(err)
	}
	for unackedBy(t, miner) > 0 && l.metrics.heldForStore.Load() == 0 {
		time.Sleep(50 * time.Millisecond)
	}
	if first := streamState(t, js).FirstSeq; first != 1 {
		t.Fatalf("with the writer storing nothing, EVENTS discarded its first %d events, logs answered 200 among them, "+
			"to take the log miner's copies (%d logs, %d of them mined)", first-1, len(logs), uint64(len(logs))-unackedBy(t, miner))
	}

	// ClickHouse is back: the writer stores what there is, and then every
	// copy the log miner held.
	stored := 0
	copies := map[string]bool{}
	deadline := time.Now().Add(time.Minute)
	for len(copies) < len(logs) {
		if time.Now().After(deadline) {
			t.Fatalf("the writer got %d copies of the %d logs within a minute", len(copies), len(logs))
		}
		msgs, err := writer.Fetch(500, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for m := range msgs.Messages() {
			meta, err := m.Metadata()
			if err != nil {
				t.Fatal(err)
			}
			if want := uint64(stored + 1); meta.Sequence.Stream != want {
				t.Fatalf("the writer got sequence %d after %d: EVENTS discarded %d events it had not stored", meta.Sequence.Stream, stored, meta.Sequence.Stream-want)
			}
			if strings.HasSuffix(m.Subject(), event.TemplatedSuffix) {
				copies[m.Headers().Get("Nats-Msg-Id")] = true
			}
			if err := m.Ack(); err != nil {
				t.Fatal(err)
			}
			stored++
		}
	}
}

// streamBytes is what EVENTS holds now.
func streamBytes(t *testing.T, js jetstream.JetStream) float64 {
	t.Helper()
	return float64(streamState(t, js).Bytes)
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

// unackedBy is what consumer c has not acked of what its filter matches.
func unackedBy(t *testing.T, c jetstream.Consumer) uint64 {
	t.Helper()
	info, err := c.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.NumPending + uint64(info.NumAckPending)
}
