package stage_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/bus"
	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/pkg/stage"
	"github.com/aiops-dev/aiops/pkg/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// jetStreamWithTopology connects to a test NATS whose streams are the
// default topology, logging at level.
func jetStreamWithTopology(t *testing.T, level zerolog.Level) (*nats.Conn, jetstream.JetStream, zerolog.Logger) {
	t.Helper()
	srv := testenv.StartNATS(t)
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(level)
	nc, js, err := bus.Connect(context.Background(), bus.Config{URLs: []string{srv.URL()}}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	if err := bus.EnsureTopology(context.Background(), js, bus.DefaultStreams()); err != nil {
		t.Fatal(err)
	}
	return nc, js, log
}

// On a real JetStream: a stage consumes raw logs, publishes one output per
// input on its own subject, acks every input, dead-letters bad data with
// the reason, and a second run over the same durable resumes where the first
// stopped without reprocessing what it acked.
func TestStageOnJetStream(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: needs JetStream")
	}
	_, js, log := jetStreamWithTopology(t, zerolog.WarnLevel)
	ctx := context.Background()
	publish := func(from, n int) {
		for i := from; i < from+n; i++ {
			e := logEvent(t, i, fmt.Sprintf("line %d", i))
			e.ID = event.DerivedID(e.Time, "input", fmt.Sprint(i))
			if i == 7 {
				e.Body = []byte(`{"message":"bad"}`)
			}
			data, _ := e.MarshalJSON()
			if _, err := js.Publish(ctx, e.Subject(), data, jetstream.WithMsgID(e.ID)); err != nil {
				t.Fatal(err)
			}
		}
	}
	cc := bus.ConsumerConfig{Stream: bus.StreamEvents, Durable: "echo", FilterSubjects: []string{event.KindFilter(event.KindLog)}, FetchWait: 50 * time.Millisecond}
	run := func(want uint64) *echo {
		p := &echo{}
		st, err := stage.Open(ctx, js, p, stage.Config{Name: "echo", Workers: 2}, cc, log)
		if err != nil {
			t.Fatal(err)
		}
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- st.Run(rctx) }()
		deadline := time.Now().Add(30 * time.Second)
		for st.ConsumerStats().Acked+st.ConsumerStats().DeadLettered < want && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if s := st.ConsumerStats(); s.Acked+s.DeadLettered != want {
			t.Fatalf("consumer %+v, want %d inputs settled", s, want)
		}
		return p
	}

	publish(0, 20)
	first := run(20)
	if n := first.calls.Load(); n != 20 {
		t.Fatalf("first run processed %d inputs, want 20", n)
	}
	publish(20, 5)
	second := run(5)
	if n := second.calls.Load(); n != 5 {
		t.Fatalf("second run processed %d inputs, want only the 5 new ones", n)
	}

	outputs, err := js.Stream(ctx, bus.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	info, err := outputs.Info(ctx, jetstream.WithSubjectFilter("events.log.*.echo"))
	if err != nil {
		t.Fatal(err)
	}
	var stored uint64
	for _, n := range info.State.Subjects {
		stored += n
	}
	if stored != 24 {
		t.Fatalf("%d outputs stored, want 24 (25 inputs, one bad)", stored)
	}
	dl, err := js.Stream(ctx, bus.StreamDeadLetter)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := dl.GetLastMsgForSubject(ctx, "deadletter.EVENTS.echo")
	if err != nil {
		t.Fatalf("no dead letter for the bad input: %v", err)
	}
	if reason := msg.Header.Get(bus.HeaderDeadLetterReason); reason != "message is bad" {
		t.Fatalf("dead-letter reason %q, want the processor's", reason)
	}

	// Open counts the consumer's whole stop (its fetch under way, its
	// drain as the options leave it, its acks' flush) before the last
	// checkpoint: the budget's checkpoint, a second more of fetch or a
	// longer drain would outlast the service's stop.
	slow := cc
	slow.Durable, slow.FetchWait = "slow", 2*time.Second
	for _, c := range []struct {
		cfg  stage.Config
		cc   bus.ConsumerConfig
		opts []stage.OpenOption
	}{
		{stage.Config{Name: "cp", CheckpointTimeout: stage.CheckpointBudget()}, bus.ConsumerConfig{Stream: bus.StreamEvents, Durable: "cp"}, nil},
		{stage.Config{Name: "cp", CheckpointTimeout: stage.CheckpointBudget() - time.Second}, slow, nil},
		{stage.Config{Name: "cp"}, cc, []stage.OpenOption{stage.WithConsumerOptions(bus.WithDrainTimeout(15 * time.Second))}},
	} {
		if _, err := stage.Open(ctx, js, &checkpointer{}, c.cfg, c.cc, log, c.opts...); !errors.Is(err, stage.ErrInvalidConfig) ||
			!strings.Contains(err.Error(), "the consumer's fetch, drain and acks' flush, then checkpoint_timeout") {
			t.Errorf("%+v: %v, want refused for outlasting the service's stop", c.cfg, err)
		}
	}
	if _, err := stage.Open(ctx, js, &checkpointer{}, stage.Config{Name: "cp", CheckpointTimeout: stage.CheckpointBudget() - time.Millisecond},
		bus.ConsumerConfig{Stream: bus.StreamEvents, Durable: "cp"}, log); err != nil {
		t.Errorf("a checkpoint within the budget: %v", err)
	}
}

// lossy emits one output per input, on a subject no stream takes but a
// plain subscriber swallows for a message "lose": that output's ack never
// comes, as when the node that took it was lost.
type lossy struct{ calls atomic.Int64 }

func (p *lossy) Process(_ context.Context, in *event.Envelope, out stage.Emitter) error {
	p.calls.Add(1)
	var body event.LogBody
	if err := in.DecodeBody(&body); err != nil {
		return err
	}
	o := *in
	o.ID = "7" + in.ID[1:]
	subject := o.Subject() + ".echo"
	if body.Message == "lose" {
		subject = o.Subject() + ".lost"
	}
	return out.Emit(stage.Output{Subject: subject, Event: &o})
}

// An output whose ack is lost holds the inputs processed after it (the
// acker settles in order) only until the publisher gives up on it, which
// must come well within the consumer's ack_wait: at the publisher's 30s
// they were redelivered meanwhile, processed again, and dead-lettered
// once out of deliveries though their outputs were stored.
func TestStageLostOutputAckHoldsNoInputPastAckWait(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: needs JetStream")
	}
	nc, js, log := jetStreamWithTopology(t, zerolog.ErrorLevel)
	ctx := context.Background()
	testenv.NarrowStream(t, js, bus.StreamEvents, "events.log.*", "events.log.*.echo")
	sub, err := nc.Subscribe("events.log.*.lost", func(*nats.Msg) {})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	const n = 20 // after the one whose output's ack is lost
	for i := 0; i <= n; i++ {
		msg := fmt.Sprintf("line %d", i)
		if i == 0 {
			msg = "lose"
		}
		e := logEvent(t, i, msg)
		data, err := e.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := js.Publish(ctx, e.Subject(), data, jetstream.WithMsgID(e.ID)); err != nil {
			t.Fatal(err)
		}
	}
	cc := bus.ConsumerConfig{Stream: bus.StreamEvents, Durable: "lossy", FilterSubjects: []string{"events.log.*"},
		FetchWait: 50 * time.Millisecond, AckWait: 6 * time.Second}
	p := &lossy{}
	st, err := stage.Open(ctx, js, p, stage.Config{Name: "lossy"}, cc, log)
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- st.Run(rctx) }()
	for deadline := time.Now().Add(2 * time.Minute); st.ConsumerStats().Acked < n; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d of the %d inputs after the lost ack acked after 2 minutes: %+v", st.ConsumerStats().Acked, n, st.ConsumerStats())
		}
	}
	calls, s := p.calls.Load(), st.ConsumerStats()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if calls != n+1 || s.DeadLettered != 0 {
		t.Fatalf("processed %d times, %d dead-lettered (%+v); want each of the %d inputs processed once, none dead-lettered", calls, s.DeadLettered, s, n+1)
	}
}

// A configuration Open refuses leaves the server as it was: no consumer
// created, none changed.
func TestOpenRefusesBeforeTouchingTheServer(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: needs JetStream")
	}
	_, js, log := jetStreamWithTopology(t, zerolog.WarnLevel)
	ctx := context.Background()
	outlasting := stage.WithConsumerOptions(bus.WithDrainTimeout(15 * time.Second))
	cc := bus.ConsumerConfig{Stream: bus.StreamEvents, Durable: "refused", AckWait: 20 * time.Second}
	if _, err := stage.Open(ctx, js, &checkpointer{}, stage.Config{Name: "cp"}, cc, log, outlasting); !errors.Is(err, stage.ErrInvalidConfig) {
		t.Fatalf("Open: %v, want refused for outlasting the service's stop", err)
	}
	if _, err := js.Consumer(ctx, bus.StreamEvents, "refused"); !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.Fatalf("after a refused Open the consumer is there (%v): want none created", err)
	}

	if _, err := stage.Open(ctx, js, &checkpointer{}, stage.Config{Name: "cp"}, cc, log); err != nil {
		t.Fatal(err)
	}
	changed := cc
	changed.AckWait = 40 * time.Second
	if _, err := stage.Open(ctx, js, &checkpointer{}, stage.Config{Name: "cp"}, changed, log, outlasting); !errors.Is(err, stage.ErrInvalidConfig) {
		t.Fatalf("Open: %v, want refused for outlasting the service's stop", err)
	}
	c, err := js.Consumer(ctx, bus.StreamEvents, "refused")
	if err != nil {
		t.Fatal(err)
	}
	if got := c.CachedInfo().Config.AckWait; got != cc.AckWait {
		t.Fatalf("after a refused Open the consumer's ack wait is %s, want it unchanged at %s", got, cc.AckWait)
	}
}

// An input whose ack waits for a save is told in progress meanwhile: a
// state store down for several ack_waits (here 1 s) neither redelivers it
// (processed twice) nor, after max_deliver, dead-letters it though it was
// saved once the store came back.
func TestAckAfterCheckpointOutlastsAckWait(t *testing.T) {
	_, js, log := jetStreamWithTopology(t, zerolog.WarnLevel)
	ctx := context.Background()
	cc := bus.ConsumerConfig{Stream: bus.StreamEvents, Durable: "slow-store", FilterSubjects: []string{event.KindFilter(event.KindLog)},
		FetchWait: 50 * time.Millisecond, AckWait: time.Second, MaxDeliver: 3}
	p := &storeDown{}
	p.down.Store(true)
	st, err := stage.Open(ctx, js, p, stage.Config{Name: "slow-store", CheckpointEvery: 200 * time.Millisecond, AckAfterCheckpoint: true}, cc, log)
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- st.Run(rctx) }()
	e := logEvent(t, 1, "one")
	data, _ := e.MarshalJSON()
	if _, err := js.Publish(ctx, e.Subject(), data, jetstream.WithMsgID(e.ID)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3500 * time.Millisecond) // the store is down for three ack_waits and a half
	if s := st.ConsumerStats(); s.Acked != 0 {
		t.Fatalf("acked %d while no save succeeded", s.Acked)
	}
	p.down.Store(false)
	for deadline := time.Now().Add(10 * time.Second); st.ConsumerStats().Acked == 0 && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if s := st.ConsumerStats(); p.calls.Load() != 1 || s.Delivered != 1 || s.Acked != 1 || s.DeadLettered != 0 {
		t.Errorf("processed %d times, delivered %d, acked %d, dead-lettered %d; want once each, none dead-lettered",
			p.calls.Load(), s.Delivered, s.Acked, s.DeadLettered)
	}
}

// storeDown processes without outputs; its saves fail while down.
type storeDown struct {
	calls atomic.Int64
	down  atomic.Bool
}

func (p *storeDown) Process(context.Context, *event.Envelope, stage.Emitter) error {
	p.calls.Add(1)
	return nil
}
func (p *storeDown) Restore(context.Context) error { return nil }
func (p *storeDown) Checkpoint(context.Context) error {
	if p.down.Load() {
		return errors.New("state store unreachable")
	}
	return nil
}
