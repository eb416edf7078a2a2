package stage_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/bus"
	"github.com/aiops-dev/aiops/pkg/event"

	"github.com/aiops-dev/aiops/pkg/stage"
	"github.com/aiops-dev/aiops/pkg/stage/stagetest"
)

// checkpointingSink is a Sink that is also a Checkpointer.
type checkpointingSink struct {
	sink
	restores, checkpoints atomic.Int64
}

func (s *checkpointingSink) Restore(context.Context) error    { s.restores.Add(1); return nil }
func (s *checkpointingSink) Checkpoint(context.Context) error { s.checkpoints.Add(1); return nil }

// NewRunner accepts AckAfterCheckpoint for a sink that is a Checkpointer
// (it checks proc), but Run restores and checkpoints only r.proc, nil for
// a sink: every ack waits for a checkpoint that never comes, the inputs
// are told in progress until the stop gives them all back (processed
// again), and the consumer stalls at max_ack_pending meanwhile.
func TestSinkCheckpointerIsRunOrRefused(t *testing.T) {
	s := &checkpointingSink{}
	_, err := stage.NewRunner(s, stage.Config{Name: "x", AckAfterCheckpoint: true, CheckpointEvery: 10 * time.Millisecond}, nil, zeroLog())
	if errors.Is(err, stage.ErrInvalidConfig) {
		return // refused: fine
	}
	if err != nil {
		t.Fatal(err)
	}
	h := stagetest.Start(t, s, stage.Config{AckAfterCheckpoint: true, CheckpointEvery: 10 * time.Millisecond})
	go h.Feed(logEvent(t, 1, "a"))
	time.Sleep(200 * time.Millisecond)
	_ = s.Flush(context.Background())
	time.Sleep(200 * time.Millisecond)
	if err := h.Stop(); err != nil {
		t.Fatal(err)
	}
	if s.restores.Load() == 0 || s.checkpoints.Load() == 0 {
		t.Fatalf("accepted, but Restore called %d times and Checkpoint %d times; acks %+v (every input given back at the stop)",
			s.restores.Load(), s.checkpoints.Load(), h.Later())
	}
}

// counting emits one output per input and counts the calls per input id.
type counting struct {
	mu    sync.Mutex
	calls map[string]int
}

func (p *counting) Process(_ context.Context, in *event.Envelope, out stage.Emitter) error {
	p.mu.Lock()
	if p.calls == nil {
		p.calls = map[string]int{}
	}
	p.calls[in.ID]++
	p.mu.Unlock()
	time.Sleep(2 * time.Millisecond)
	a := *in
	a.ID = "7" + in.ID[1:]
	return out.Emit(stage.Output{Subject: a.Subject() + ".echo", Event: &a})
}

// Graceful stops, one after another while inputs flow: every input handed
// to the processor is settled by the drain, so none is processed twice and
// none is left.
func TestGracefulStopsProcessEachInputOnce(t *testing.T) {
	_, js, log := jetStreamWithTopology(t, zerolog.WarnLevel)
	ctx := context.Background()
	const n = 3000
	pub, err := bus.NewPublisher(js)
	if err != nil {
		t.Fatal(err)
	}
	var ms []bus.Message
	for i := range n {
		e := logEvent(t, i, fmt.Sprintf("line %d", i))
		e.ID = event.DerivedID(e.Time, "input", fmt.Sprint(i))
		data, _ := e.MarshalJSON()
		ms = append(ms, bus.Message{Subject: e.Subject(), ID: e.ID, Data: data})
	}
	if _, err := pub.PublishAll(ctx, ms); err != nil {
		t.Fatal(err)
	}
	p := &counting{}
	cc := bus.ConsumerConfig{Stream: bus.StreamEvents, Durable: "count", FilterSubjects: []string{event.KindFilter(event.KindLog)}, FetchWait: 50 * time.Millisecond, BatchSize: 64}
	var acked uint64
	runs := 0
	for run := 0; acked < n && run < 400; run++ {
		runs++
		st, err := stage.Open(ctx, js, p, stage.Config{Name: "count", Workers: 4}, cc, log)
		if err != nil {
			t.Fatal(err)
		}
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- st.Run(rctx) }()
		time.Sleep(time.Duration(1+rand.IntN(30)) * time.Millisecond)
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		s := st.ConsumerStats()
		acked += s.Acked
		if s.DeadLettered != 0 || s.AckFailed != 0 {
			t.Fatalf("run %d: %+v", run, s)
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	twice := 0
	for _, c := range p.calls {
		if c > 1 {
			twice++
		}
	}
	t.Logf("%d runs", runs)
	if len(p.calls) != n || twice > 0 || acked != n {
		t.Fatalf("%d inputs processed of %d, %d of them more than once, %d acked", len(p.calls), n, twice, acked)
	}
}
