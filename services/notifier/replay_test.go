package notifier

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/bus"
	"github.com/aiops-dev/aiops/pkg/testenv"
)

// On a real JetStream: a receiver down through every redelivery gets the
// incident event dead-lettered; once it is back, Replay delivers the dead
// letter with the notifier's own path and removes it; a second replay
// finds nothing.
func TestReplayDeadLetters(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: needs JetStream")
	}
	srv := testenv.StartNATS(t)
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.ErrorLevel)
	nc, js, err := bus.Connect(context.Background(), bus.Config{URLs: []string{srv.URL()}}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	if err := bus.EnsureTopology(context.Background(), js, bus.DefaultStreams()); err != nil {
		t.Fatal(err)
	}
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
	routes := filepath.Join(t.TempDir(), "alertmanager.yml")
	os.WriteFile(routes, []byte("route:\n  receiver: hook\n  group_wait: 0s\nreceivers:\n- name: hook\n  webhook_configs:\n  - url: "+hook.URL+"\n"), 0o600)
	cfg := Config{Routes: routes}
	cfg.Delivery.Retry.MaxAttempts = 1
	cfg.Consumer.MaxDeliver = 2
	cfg.Consumer.Backoff = []time.Duration{50 * time.Millisecond}
	cfg.Consumer.FetchWait = 50 * time.Millisecond
	svc, err := New(context.Background(), js, cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
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
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

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
