package stage_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/bus"
	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/pkg/stage"
)

// refusing gives back every input, as a processor whose outputs have no
// room does (stage.ErrBusy), or fenced by a lost lease; its checkpoints
// fail the same way.
type refusing struct {
	calls      atomic.Int64
	process    error
	checkpoint error
}

func (p *refusing) Process(_ context.Context, in *event.Envelope, _ stage.Emitter) error {
	p.calls.Add(1)
	if p.process != nil {
		return fmt.Errorf("refusing: event %s: %w", in.ID, p.process)
	}
	return nil
}
func (p *refusing) Restore(context.Context) error    { return nil }
func (p *refusing) Checkpoint(context.Context) error { return p.checkpoint }

// An input given back on its last delivery for a reason of the instance
// (no room for outputs, a lost lease) was never judged bad. It is
// dead-lettered all the same (naked, its redelivery past max_deliver
// would be, by whichever instance gets it), but the reason must say that
// it is good and to publish it again, not read as a poison message.
func TestGivenBackOnLastDeliveryIsDeadLetteredAsGood(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    *refusing
		cfg  stage.Config
	}{
		{"busy", &refusing{process: stage.ErrBusy}, stage.Config{Name: "busy"}},
		{"fenced", &refusing{checkpoint: stage.ErrFenced}, stage.Config{Name: "fenced", CheckpointEvery: 100 * time.Millisecond, AckAfterCheckpoint: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, js, log := jetStreamWithTopology(t, zerolog.ErrorLevel)
			ctx := context.Background()
			cc := bus.ConsumerConfig{Stream: bus.StreamEvents, Durable: tc.name, FilterSubjects: []string{event.KindFilter(event.KindLog)},
				FetchWait: 50 * time.Millisecond, AckWait: 2 * time.Second, MaxDeliver: 2, Backoff: []time.Duration{10 * time.Millisecond}}
			st, err := stage.Open(ctx, js, tc.p, tc.cfg, cc, log)
			if err != nil {
				t.Fatal(err)
			}
			rctx, cancel := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() { done <- st.Run(rctx) }()
			e := logEvent(t, 1, "good")
			data, _ := e.MarshalJSON()
			if _, err := js.Publish(ctx, e.Subject(), data, jetstream.WithMsgID(e.ID)); err != nil {
				t.Fatal(err)
			}
			for deadline := time.Now().Add(20 * time.Second); st.ConsumerStats().DeadLettered == 0 && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			}
			cancel()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			dl, err := js.Stream(ctx, bus.StreamDeadLetter)
			if err != nil {
				t.Fatal(err)
			}
			msg, err := dl.GetLastMsgForSubject(ctx, "deadletter.EVENTS."+tc.name)
			if err != nil {
				t.Fatalf("not dead-lettered (%+v): %v", st.ConsumerStats(), err)
			}
			reason := msg.Header.Get(bus.HeaderDeadLetterReason)
			if !strings.Contains(reason, "not judged bad: replay it") {
				t.Fatalf("dead-letter reason %q does not say the input is good and how to retry it", reason)
			}
			t.Logf("reason: %s", reason)
		})
	}
}
