package notifier

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/bus"
)

// On a real JetStream: a receiver down through every redelivery gets the
// incident event dead-lettered; once it is back, Replay delivers the dead
// letter with the notifier's own path and removes it; a second replay
// finds nothing.
func TestReplayDeadLetters(t *testing.T) {
	r := newJSRig(t, zerolog.ErrorLevel)
	js, log := r.js, r.log
	var down atomic.Bool
	down.Store(true)
	var mu sync.Mutex
	var got []string
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		var b strings.Builder
		buf := make([]byte, 1<<16)
		n, _ := r.Body.Read(buf)
		b.Write(buf[:n])
		mu.Lock()
		got = append(got, b.String())
		mu.Unlock()
	}))
	defer hook.Close()
	cfg := Config{Routes: hookRoutes(t, hook.URL)}
	cfg.Delivery.Retry.MaxAttempts = 1
	cfg.Consumer.MaxDeliver = 2
	cfg.Consumer.Backoff = []time.Duration{50 * time.Millisecond}
	cfg.Consumer.FetchWait = 50 * time.Millisecond
	_, stop := r.start(cfg)
	e := incident(t, "search")
	data, _ := e.MarshalJSON()
	if _, err := js.Publish(context.Background(), e.Subject(), data, jetstream.WithMsgID(e.ID)); err != nil {
		t.Fatal(err)
	}
	subject := cfg.DeadLetterSubject()
	stream, err := js.Stream(context.Background(), bus.StreamDeadLetter)
	if err != nil {
		t.Fatal(err)
	}
	count := func() uint64 {
		info, err := stream.Info(context.Background(), jetstream.WithSubjectFilter(subject))
		if err != nil {
			t.Fatal(err)
		}
		return info.State.Subjects[subject]
	}
	for deadline := time.Now().Add(20 * time.Second); count() != 1; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the incident event was not dead-lettered on %s", subject)
		}
	}
	stop()

	proc, err := NewProcessor(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	// A dry run lists it and sends nothing.
	var listed []DeadLetter
	d, f, err := Replay(context.Background(), js, proc, subject, true, func(dl DeadLetter) { listed = append(listed, dl) })
	if err != nil || d != 0 || f != 0 || len(listed) != 1 || listed[0].EventID != e.ID || !strings.Contains(listed[0].Reason, "503") {
		t.Fatalf("dry run: %d %d %v %+v", d, f, err, listed)
	}
	// Still down: it fails again and stays.
	if d, f, err := Replay(context.Background(), js, proc, subject, false, nil); err != nil || d != 0 || f != 1 || count() != 1 {
		t.Fatalf("replay to a receiver still down: delivered %d, failed %d, %v, %d left", d, f, err, count())
	}
	down.Store(false)
	if d, f, err := Replay(context.Background(), js, proc, subject, false, nil); err != nil || d != 1 || f != 0 {
		t.Fatalf("replay: delivered %d, failed %d, %v", d, f, err)
	}
	mu.Lock()
	n := len(got)
	ok := n == 1 && strings.Contains(got[0], e.Labels["incident_id"])
	mu.Unlock()
	if !ok || count() != 0 {
		t.Fatalf("the receiver got %d notifications (want the incident once), %d dead letters left", n, count())
	}
	if d, f, err := Replay(context.Background(), js, proc, subject, false, nil); err != nil || d+f != 0 {
		t.Fatalf("second replay: %d %d %v", d, f, err)
	}
}
