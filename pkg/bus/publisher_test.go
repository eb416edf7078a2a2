package bus

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aiops-dev/aiops/pkg/errs"
	"github.com/aiops-dev/aiops/pkg/testenv"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
)

func TestPublishSameIDStoredOnce(t *testing.T) {
	e := newEnv(t, newTestServerURL(t))
	ctx := testCtx(t)
	p, err := NewPublisher(e.js)
	if err != nil {
		t.Fatal(err)
	}
	ms := []Message{
		{Subject: e.prefix + ".x", ID: "same", Data: []byte("first")},
		{Subject: e.prefix + ".x", ID: "same", Data: []byte("retry")},
		{Subject: e.prefix + ".x", ID: "other", Data: []byte("second")},
	}
	acks, err := p.PublishAll(ctx, ms)
	if err != nil {
		t.Fatal(err)
	}
	if !acks[1].Duplicate || acks[0].Duplicate || acks[2].Duplicate {
		t.Fatalf("duplicate flags %v %v %v, want only the second", acks[0].Duplicate, acks[1].Duplicate, acks[2].Duplicate)
	}
	got := fetchAll(t, e.js, e.stream)
	if len(got) != 2 || string(got[0].Data()) != "first" || string(got[1].Data()) != "second" {
		t.Fatalf("stream holds %d messages, want first and second", len(got))
	}
	if id := got[0].Headers().Get(jetstream.MsgIDHeader); id != "same" {
		t.Fatalf("Nats-Msg-Id = %q", id)
	}
}

func TestPublishAllReturnsAfterAcks(t *testing.T) {
	e := newEnv(t, newTestServerURL(t))
	ctx := testCtx(t)
	p, err := NewPublisher(e.js, WithMaxInFlight(16))
	if err != nil {
		t.Fatal(err)
	}
	ms := make([]Message, 500)
	for i := range ms {
		ms[i] = Message{Subject: e.prefix + ".all", ID: fmt.Sprint("m", i), Data: []byte("x")}
	}
	acks, err := p.PublishAll(ctx, ms)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[uint64]bool{}
	for i, a := range acks {
		if a == nil || a.Stream != e.stream || seen[a.Sequence] {
			t.Fatalf("ack %d = %+v", i, a)
		}
		seen[a.Sequence] = true
	}
	// Returned means stored: no wait, no poll.
	s, err := e.js.Stream(ctx, e.stream)
	if err != nil {
		t.Fatal(err)
	}
	if n := s.CachedInfo().State.Msgs; n != 500 {
		t.Fatalf("stream holds %d messages right after PublishAll, want 500", n)
	}
	if p.InFlight() != 0 {
		t.Fatalf("%d publishes still in flight after PublishAll", p.InFlight())
	}
}

func TestPublishRejectsBadMessages(t *testing.T) {
	e := newEnv(t, newTestServerURL(t))
	ctx := testCtx(t)
	p, err := NewPublisher(e.js)
	if err != nil {
		t.Fatal(err)
	}
	ms := []Message{
		{Subject: e.prefix + ".ok", ID: "a"},
		{Subject: e.prefix + ".ok", ID: ""},
	}
	_, err = p.PublishAll(ctx, ms)
	if !errors.Is(err, ErrMissingID) || !errs.IsPermanent(err) || !strings.Contains(err.Error(), "message 1") {
		t.Fatalf("err = %v, want permanent ErrMissingID naming message 1", err)
	}
	for _, subj := range []string{"", "a.*", "a.>", "a..b", "a b", ".a"} {
		if _, err := p.Publish(ctx, Message{Subject: subj, ID: "x"}); !errors.Is(err, ErrInvalidSubject) {
			t.Errorf("subject %q: err = %v, want ErrInvalidSubject", subj, err)
		}
	}
	if _, err := p.Publish(ctx, Message{Subject: e.prefix + ".ok", ID: strings.Repeat("i", MaxIDLength+1)}); !errors.Is(err, ErrIDTooLong) || !errs.IsPermanent(err) {
		t.Error("an over-long id was accepted")
	}
	if _, err := NewPublisher(e.js, WithMaxInFlight(0)); err == nil || !strings.Contains(err.Error(), "max in flight") {
		t.Errorf("WithMaxInFlight(0): err = %v", err)
	}
	if _, err := NewPublisher(e.js, WithAckTimeout(0)); err == nil || !strings.Contains(err.Error(), "ack timeout") {
		t.Errorf("WithAckTimeout(0): err = %v", err)
	}
}

// With the server gone PublishAll must fail, not report success, and give up
// when its context ends.
func TestPublishAllFailsWhenServerIsDown(t *testing.T) {
	srv := testenv.StartNATS(t)
	e := newEnv(t, srv.URL())
	p, err := NewPublisher(e.js, WithMaxInFlight(8))
	if err != nil {
		t.Fatal(err)
	}
	srv.Shutdown()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	ms := make([]Message, 50)
	for i := range ms {
		ms[i] = Message{Subject: e.prefix + ".down", ID: fmt.Sprint("d", i), Data: []byte("x")}
	}
	acks, err := p.PublishAll(ctx, ms)
	if err == nil {
		t.Fatalf("PublishAll succeeded with the server down (%d acks)", len(acks))
	}
	if acks != nil {
		t.Fatalf("acks returned with an error: %v", acks)
	}
	if !strings.Contains(err.Error(), "message ") {
		t.Fatalf("error %q does not name the message index", err)
	}
	t.Logf("PublishAll with the server down: %v", err)
}

func TestFlushWaitsForAcks(t *testing.T) {
	e := newEnv(t, newTestServerURL(t))
	ctx := testCtx(t)
	p, err := NewPublisher(e.js)
	if err != nil {
		t.Fatal(err)
	}
	var futures []jetstream.PubAckFuture
	for i := 0; i < 300; i++ {
		f, err := p.Publish(ctx, Message{Subject: e.prefix + ".f", ID: fmt.Sprint("f", i), Data: []byte("x")})
		if err != nil {
			t.Fatal(err)
		}
		futures = append(futures, f)
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for i, f := range futures {
		select {
		case <-f.Ok():
		default:
			t.Fatalf("publish %d has no ack after Flush", i)
		}
	}
}

// A responder that never answers stands in for a stalled server: the bound
// holds, the next Publish waits for its context, and the ack timeout frees
// the slots.
func TestPublishInFlightBound(t *testing.T) {
	e := newEnv(t, newTestServerURL(t))
	subject := "stall" + e.prefix
	sub, err := e.nc.SubscribeSync(subject)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	p, err := NewPublisher(e.js, WithMaxInFlight(3), WithAckTimeout(300*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	var futures []jetstream.PubAckFuture
	for i := 0; i < 3; i++ {
		f, err := p.Publish(ctx, Message{Subject: subject, ID: fmt.Sprint(i)})
		if err != nil {
			t.Fatal(err)
		}
		futures = append(futures, f)
	}
	if p.InFlight() != 3 {
		t.Fatalf("in flight %d, want 3", p.InFlight())
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	_, err = p.Publish(short, Message{Subject: subject, ID: "3"})
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "in-flight slot") {
		t.Fatalf("fourth publish: err = %v, want a wait for an in-flight slot ending with the context", err)
	}
	for i, f := range futures {
		select {
		case err := <-f.Err():
			if !errors.Is(err, jetstream.ErrAsyncPublishTimeout) {
				t.Fatalf("publish %d: %v, want the ack timeout", i, err)
			}
		case <-f.Ok():
			t.Fatalf("publish %d acked by a responder that never answers", i)
		case <-ctx.Done():
			t.Fatal("no ack timeout")
		}
	}
	waitFor(t, "slots freed by the ack timeout", func() bool { return p.InFlight() == 0 })
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

// Publishers racing server restarts: every call returns by its context, and
// once the server is back every slot is free again. nats.go can fail a
// publish call and also call the error handler for the same message (the
// reconnect status goroutine fails all pending publishes while the write
// fails too); the publisher used to free two slots for it, and with one
// message in flight the second release blocked the caller forever (an
// ingest request that never got an answer in TestE2EBusOutage). Each
// goroutine has its own publisher with one message in flight, so a
// double release cannot be absorbed by another goroutine's slot.
func TestPublisherSlotsSurviveDisconnects(t *testing.T) {
	srv := testenv.StartNATS(t)
	ctx := testCtx(t)
	nc, js, err := Connect(ctx, Config{URLs: []string{srv.URL()}, ReconnectWait: 20 * time.Millisecond}, testLog(t).Level(zerolog.ErrorLevel+1))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	stream := fmt.Sprintf("SLOTS%d", uniq.Add(1))
	if _, err := EnsureStream(ctx, js, jetstream.StreamConfig{Name: stream, Subjects: []string{stream + ".>"}, Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	const publishers, restarts = 4, 40
	ps := make([]*Publisher, publishers)
	for i := range ps {
		if ps[i], err = NewPublisher(js, WithAckTimeout(time.Second)); err != nil {
			t.Fatal(err)
		}
	}

	stop := make(chan struct{})
	var calls, failed atomic.Int64
	var wg sync.WaitGroup
	for g, p := range ps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				callCtx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
				_, err := p.PublishAll(callCtx, []Message{{Subject: stream + ".x", ID: fmt.Sprintf("%d-%d", g, i), Data: []byte("x")}})
				cancel()
				if err != nil {
					failed.Add(1)
				}
				calls.Add(1)
			}
		}()
	}
	for range restarts {
		time.Sleep(30 * time.Millisecond)
		srv.Shutdown()
		time.Sleep(30 * time.Millisecond)
		srv.Restart()
	}
	waitFor(t, "the connection to come back", nc.IsConnected)
	close(stop)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("publishing goroutines still blocked 30s after the last restart, though each call has a 500ms context")
	}
	for i, p := range ps {
		waitFor(t, fmt.Sprintf("every in-flight slot of publisher %d to be freed", i), func() bool { return p.InFlight() == 0 })
	}
	if failed.Load() == 0 {
		t.Errorf("no publish failed in %d calls across %d restarts: the outages were not exercised", calls.Load(), restarts)
	}
	// Each publisher still works afterwards.
	for i, p := range ps {
		if _, err := p.PublishAll(ctx, []Message{{Subject: stream + ".after", ID: fmt.Sprint("after-", i), Data: []byte("z")}}); err != nil {
			t.Fatalf("publisher %d after the restarts: %v", i, err)
		}
	}
	t.Logf("%d calls, %d failed", calls.Load(), failed.Load())
}
