package notifier

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/bus"
	"github.com/aiops-dev/aiops/pkg/event"
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

// A dead letter replayed to PagerDuty reaches it as a first notice: replay
// cannot know whether PagerDuty ever had the incident (its dead letter is
// there because the delivery failed), and PagerDuty ignores an acknowledge
// for a dedup_key it has no alert for. So an acknowledged incident's dead
// letter sends a trigger, then the acknowledge (a trigger for an alert
// PagerDuty has open is only added to its log: dedup_key); an open one
// sends its trigger, a resolved one only its resolve.
func TestReplayTriggersPagerDuty(t *testing.T) {
	r := newJSRig(t, zerolog.ErrorLevel)
	pd := newFakeAPI(t, func(c call) answer { return answer{code: 202, body: `{"status":"success"}`} })
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "pd.key"), []byte("R0UT1NGKEY\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	routes := filepath.Join(dir, "alertmanager.yml")
	if err := os.WriteFile(routes, []byte("route: {receiver: pager, group_wait: 0s}\nreceivers:\n- name: pager\n  pagerduty_configs:\n  - routing_key_file: "+
		filepath.Join(dir, "pd.key")+"\n    url: "+pd.srv.URL+"/v2/enqueue\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := Config{Routes: routes}
	proc, err := NewProcessor(cfg, r.log)
	if err != nil {
		t.Fatal(err)
	}
	subject := cfg.DeadLetterSubject()
	for _, tc := range []struct {
		name string
		pick func(opened, acked, resolved *event.Envelope) *event.Envelope
		want []string
	}{
		{"acknowledged", func(_, a, _ *event.Envelope) *event.Envelope { return a }, []string{"trigger", "acknowledge"}},
		{"open", func(o, _, _ *event.Envelope) *event.Envelope { return o }, []string{"trigger"}},
		{"resolved", func(_, _, res *event.Envelope) *event.Envelope { return res }, []string{"resolve"}},
	} {
		before := len(pd.got())
		e := tc.pick(lifecycle(t))
		data, _ := e.MarshalJSON()
		msg := nats.NewMsg(subject)
		msg.Data = data
		msg.Header.Set(bus.HeaderDeadLetterReason, "receiver pager: HTTP 503")
		if _, err := r.js.PublishMsg(context.Background(), msg); err != nil {
			t.Fatal(err)
		}
		if d, f, err := Replay(context.Background(), r.js, proc, subject, false, nil); err != nil || d != 1 || f != 0 {
			t.Fatalf("%s: replay delivered %d, failed %d, %v", tc.name, d, f, err)
		}
		var actions []string
		for _, c := range pd.got()[before:] {
			actions = append(actions, jsonOf(t, c.Body)["event_action"].(string))
		}
		if !slices.Equal(actions, tc.want) {
			t.Errorf("%s incident replayed: PagerDuty got %v, want %v", tc.name, actions, tc.want)
		}
	}
}
