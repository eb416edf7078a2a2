package stage_test

import (
	"context"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/bus"
	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/pkg/stage"
)

// slowPair blocks on the inputs whose message begins with "slow" until
// released, and records the others it processed.
type slowPair struct {
	busy     atomic.Int64
	release  chan struct{}
	mu       sync.Mutex
	finished []string
}

func (p *slowPair) Process(_ context.Context, in *event.Envelope, _ stage.Emitter) error {
	var body event.LogBody
	if err := in.DecodeBody(&body); err != nil {
		return err
	}
	if strings.HasPrefix(body.Message, "slow") {
		p.busy.Add(1)
		<-p.release
	}
	p.mu.Lock()
	p.finished = append(p.finished, body.Message)
	p.mu.Unlock()
	return nil
}

// With several workers, an input waits in the workers' queue while each
// worker is busy: it must be told in progress meanwhile, as one waiting
// in a fetched batch is, or the server hands it out again after ack wait,
// to another instance too, while it is still queued here (processed
// twice, and a delivery counted that no handler saw, towards its dead
// letter).
func TestInputQueuedForABusyWorkerIsToldInProgress(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: needs JetStream")
	}
	_, js, log := jetStreamWithTopology(t, zerolog.ErrorLevel)
	ctx := context.Background()
	for i, msg := range []string{"slow 0", "slow 1", "queued"} {
		e := logEvent(t, i, msg)
		data, _ := e.MarshalJSON()
		if _, err := js.Publish(ctx, e.Subject(), data, jetstream.WithMsgID(e.ID)); err != nil {
			t.Fatal(err)
		}
	}
	cc := bus.ConsumerConfig{Stream: bus.StreamEvents, Durable: "queued", FilterSubjects: []string{event.KindFilter(event.KindLog)},
		FetchWait: 50 * time.Millisecond, AckWait: time.Second, MaxDeliver: 10}
	p := &slowPair{release: make(chan struct{})}
	var releaseOnce sync.Once
	t.Cleanup(func() { releaseOnce.Do(func() { close(p.release) }) })
	st, err := stage.Open(ctx, js, p, stage.Config{Name: "queued", Workers: 2}, cc, log)
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- st.Run(rctx) }()
	waitUntil(t, "both workers busy", func() bool { return p.busy.Load() == 2 })

	// Another instance on the same durable: what the server hands out
	// again comes to it.
	other, err := bus.NewConsumer(ctx, js, cc, log)
	if err != nil {
		t.Fatal(err)
	}
	stolen := make(chan struct{})
	var stoleOnce sync.Once
	octx, stopOther := context.WithCancel(ctx)
	otherDone := make(chan error, 1)
	go func() {
		otherDone <- other.Run(octx, bus.Sync(func(_ context.Context, d *bus.Delivery) error {
			var body event.LogBody
			if e, err := event.Parse(d.Data); err == nil && e.DecodeBody(&body) == nil && body.Message == "queued" {
				stoleOnce.Do(func() { close(stolen) })
			}
			return nil
		}))
	}()
	// Told at a third of ack wait, then every third: four signals cover
	// more than an ack wait since it was queued.
	waitUntil(t, "the queued input told in progress or handed out again", func() bool {
		select {
		case <-stolen:
			return true
		default:
			return st.ConsumerStats().InProgress >= 4
		}
	})
	select {
	case <-stolen:
		t.Fatalf("the input queued behind two busy workers was handed to another instance (%d in-progress signals)", st.ConsumerStats().InProgress)
	default:
	}
	releaseOnce.Do(func() { close(p.release) })
	waitUntil(t, "the queued input processed", func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return slices.Contains(p.finished, "queued")
	})
	stopOther()
	cancel()
	for _, ch := range []chan error{done, otherDone} {
		if err := <-ch; err != nil {
			t.Fatal(err)
		}
	}
}

// waitUntil waits until cond holds; a minute at most (a safety net, not a
// timing assertion).
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("not within a minute: %s", what)
		}
	}
}
