package notifier

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
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

// On a real JetStream: a receiver down past notifier.delivery.max_hold
// gets the incident event dead-lettered; once it is back, Replay delivers the dead
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
	cfg.Delivery.MaxHold = 100 * time.Millisecond
	cfg.Consumer.FetchWait = 50 * time.Millisecond
	_, stop := r.start(cfg)
	e := incident(t, "search")
	e.ObservedTime = time.Now().UTC() // made now: held for max_hold
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
	if err != nil || d != 0 || f != 0 || len(listed) != 1 || listed[0].EventID != e.ID || !strings.Contains(listed[0].Reason, "503") ||
		!strings.Contains(listed[0].Reason, "max_hold") {
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
	cfg := Config{Routes: pdRoutes(t, pd.srv.URL)}
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

// pdRoutes writes an Alertmanager configuration sending everything at once
// to PagerDuty's Events API at url.
func pdRoutes(t *testing.T, url string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "pd.key"), []byte("R0UT1NGKEY\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	routes := filepath.Join(dir, "alertmanager.yml")
	if err := os.WriteFile(routes, []byte("route: {receiver: pager, group_wait: 0s}\nreceivers:\n- name: pager\n  pagerduty_configs:\n  - routing_key_file: "+
		filepath.Join(dir, "pd.key")+"\n    url: "+url+"/v2/enqueue\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return routes
}

// deadLetters counts the dead letters on subject.
func deadLetters(t *testing.T, js jetstream.JetStream, subject string) uint64 {
	t.Helper()
	stream, err := js.Stream(context.Background(), bus.StreamDeadLetter)
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(context.Background(), jetstream.WithSubjectFilter(subject))
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Subjects[subject]
}

// deadLetter puts e on subject as the notifier's consumer dead-letters it.
func deadLetter(t *testing.T, js jetstream.JetStream, subject string, e *event.Envelope) {
	t.Helper()
	data, err := e.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	msg := nats.NewMsg(subject)
	msg.Data = data
	msg.Header.Set(bus.HeaderDeadLetterReason, "receiver hook: HTTP 503")
	if _, err := js.PublishMsg(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
}

// pdActions are the event_actions PagerDuty got for the incident id, in
// order, with each one's webhook-id.
func pdActions(t *testing.T, calls []call, id string) (actions, keys []string) {
	t.Helper()
	for _, c := range calls {
		b := jsonOf(t, c.Body)
		if b["dedup_key"] == id {
			actions = append(actions, b["event_action"].(string))
			keys = append(keys, c.Header.Get("webhook-id"))
		}
	}
	return actions, keys
}

// refusingPagerDuty is a PagerDuty Events API that refuses every event
// (400) while refuse is set, which it is at first.
func refusingPagerDuty(t *testing.T) (pd *fakeAPI, refuse *atomic.Bool) {
	refuse = new(atomic.Bool)
	refuse.Store(true)
	pd = newFakeAPI(t, func(c call) answer {
		if refuse.Load() {
			return answer{code: 400, body: `{"status":"invalid event"}`}
		}
		return answer{code: 202, body: `{"status":"success"}`}
	})
	return pd, refuse
}

// The dead letters of an incident resolved since (its opening and its
// acknowledgement refused by PagerDuty, its resolve taken) are an old
// state: replayed as they are, they would trigger an alert in PagerDuty
// that nothing resolves. Replay reads the incident's state in the
// notifier's state bucket and sends the resolve instead, under the key
// the notifier sent it with (PagerDuty, and any receiver that dedups on
// webhook-id, can tell it is the same), and no trigger; the dead letter of
// an incident still open is sent as it is, a trigger. Each is removed.
func TestReplayIncidentResolvedSinceSendsNoTrigger(t *testing.T) {
	r := newJSRig(t, zerolog.ErrorLevel)
	pd, refuse := refusingPagerDuty(t)
	cfg := Config{Routes: pdRoutes(t, pd.srv.URL)}
	cfg.Consumer.FetchWait = 50 * time.Millisecond
	subject := cfg.DeadLetterSubject()
	opened, acked, resolved := lifecycle(t)
	over, open := opened.Labels["incident_id"], incident(t, "search")
	_, stop := r.start(cfg)
	r.publish(opened, acked, open)
	eventually(t, func() string { return fmt.Sprintf("%d dead letters, want 3", deadLetters(t, r.js, subject)) },
		func() bool { return deadLetters(t, r.js, subject) == 3 })
	refuse.Store(false)
	r.publish(resolved)
	kv, err := r.js.KeyValue(context.Background(), cfg.WithDefaults().State.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	ended := func() bool {
		e, err := kv.Get(context.Background(), openKey(over))
		var inc openIncident
		return err == nil && json.Unmarshal(e.Value(), &inc) == nil && inc.Resolved
	}
	eventually(t, func() string { return "the resolve not sent, or not kept in the state bucket" }, func() bool {
		actions, _ := pdActions(t, pd.got(), over)
		return slices.Contains(actions, "resolve") && ended()
	})
	stop()
	_, live := pdActions(t, pd.got(), over)
	before := len(pd.got())

	proc, err := NewProcessor(cfg, r.log)
	if err != nil {
		t.Fatal(err)
	}
	check := func(what string, listed []DeadLetter) {
		t.Helper()
		if len(listed) != 3 {
			t.Fatalf("%s: %d dead letters listed, want 3", what, len(listed))
		}
		for _, dl := range listed {
			want, now := ReplayState, "open"
			if dl.IncidentID == over {
				want, now = ReplayResolve, "resolved"
				if dl.EventID == opened.ID {
					want = ReplaySuperseded
				}
			}
			if dl.Replay != want || dl.Now != now || dl.Err != nil {
				t.Errorf("%s: dead letter %d (incident %s, %s): %v, incident now %q, %v; want %v, %q", what, dl.Seq, dl.IncidentID, dl.Status, dl.Replay, dl.Now, dl.Err, want, now)
			}
		}
	}
	// A dry run tells what a replay sends, and sends nothing.
	var listed []DeadLetter
	if d, f, err := Replay(context.Background(), r.js, proc, subject, true, func(dl DeadLetter) { listed = append(listed, dl) }); err != nil || d+f != 0 || len(pd.got()) != before {
		t.Fatalf("dry run: %d %d %v, %d sent", d, f, err, len(pd.got())-before)
	}
	check("dry run", listed)
	listed = nil
	if d, f, err := Replay(context.Background(), r.js, proc, subject, false, func(dl DeadLetter) { listed = append(listed, dl) }); err != nil || d != 3 || f != 0 {
		t.Fatalf("replay: delivered %d, failed %d, %v", d, f, err)
	}
	check("replay", listed)
	if n := deadLetters(t, r.js, subject); n != 0 {
		t.Errorf("%d dead letters left", n)
	}
	actions, keys := pdActions(t, pd.got()[before:], over)
	if !slices.Equal(actions, []string{"resolve"}) || keys[0] != live[len(live)-1] {
		t.Errorf("the incident resolved since: PagerDuty got %v under %v, want its resolve again under the key it had (%s), and no trigger", actions, keys, live[len(live)-1])
	}
	if actions, _ := pdActions(t, pd.got()[before:], open.Labels["incident_id"]); !slices.Equal(actions, []string{"trigger"}) {
		t.Errorf("the incident still open: PagerDuty got %v, want its trigger", actions)
	}
}

// Two dead letters of one incident (its acknowledgement dead-lettered
// before its opening) send the receiver one notification, the newest
// state, and both are removed; a receiver still down keeps both.
func TestReplayCollapsesDeadLettersOfOneIncident(t *testing.T) {
	r := newJSRig(t, zerolog.ErrorLevel)
	var down atomic.Bool
	down.Store(true)
	var mu sync.Mutex
	var got []map[string]any
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		if down.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		mu.Lock()
		got = append(got, jsonOf(t, body))
		mu.Unlock()
	}))
	defer hook.Close()
	cfg := Config{Routes: hookRoutes(t, hook.URL)}
	cfg.Delivery.Retry.MaxAttempts = 1
	subject := cfg.DeadLetterSubject()
	opened, acked, _ := lifecycle(t)
	deadLetter(t, r.js, subject, acked)
	deadLetter(t, r.js, subject, opened)
	proc, err := NewProcessor(cfg, r.log)
	if err != nil {
		t.Fatal(err)
	}
	if d, f, err := Replay(context.Background(), r.js, proc, subject, false, nil); err != nil || d != 0 || f != 2 || deadLetters(t, r.js, subject) != 2 {
		t.Fatalf("replay to a receiver down: delivered %d, failed %d, %v, %d dead letters left (want both kept)", d, f, err, deadLetters(t, r.js, subject))
	}
	down.Store(false)
	if d, f, err := Replay(context.Background(), r.js, proc, subject, false, nil); err != nil || d != 2 || f != 0 {
		t.Fatalf("replay: delivered %d, failed %d, %v", d, f, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || got[0]["commonAnnotations"].(map[string]any)["incident_status"] != "acknowledged" {
		t.Fatalf("the receiver got %d notifications %v, want one: the acknowledged incident", len(got), got)
	}
	if n := deadLetters(t, r.js, subject); n != 0 {
		t.Errorf("%d dead letters left", n)
	}
}

// A dead letter older than a state of its incident the notifier handled
// since, the incident still open (its opening refused, its
// acknowledgement then sent), sends nothing: replayed, the opening would
// take the receiver back from acknowledged to triggered. It is removed.
func TestReplayOfAStateOlderThanOneSentSendsNothing(t *testing.T) {
	r := newJSRig(t, zerolog.ErrorLevel)
	pd, refuse := refusingPagerDuty(t)
	cfg := Config{Routes: pdRoutes(t, pd.srv.URL)}
	cfg.Consumer.FetchWait = 50 * time.Millisecond
	subject := cfg.DeadLetterSubject()
	opened, acked, _ := lifecycle(t)
	id := opened.Labels["incident_id"]
	_, stop := r.start(cfg)
	r.publish(opened)
	eventually(t, func() string { return fmt.Sprintf("%d dead letters, want 1", deadLetters(t, r.js, subject)) },
		func() bool { return deadLetters(t, r.js, subject) == 1 })
	refuse.Store(false)
	r.publish(acked)
	eventually(t, func() string { return "the acknowledgement not sent" }, func() bool {
		actions, _ := pdActions(t, pd.got(), id)
		return slices.Contains(actions, "acknowledge")
	})
	stop()
	before := len(pd.got())

	proc, err := NewProcessor(cfg, r.log)
	if err != nil {
		t.Fatal(err)
	}
	var listed []DeadLetter
	if d, f, err := Replay(context.Background(), r.js, proc, subject, false, func(dl DeadLetter) { listed = append(listed, dl) }); err != nil || d != 1 || f != 0 {
		t.Fatalf("replay: done %d, failed %d, %v; want the dead letter done", d, f, err)
	}
	if len(listed) != 1 || listed[0].Replay != ReplayOutdated || listed[0].Now != "open" {
		t.Fatalf("listed %+v, want the opening outdated, the incident open now", listed)
	}
	if got := pd.got()[before:]; len(got) != 0 {
		t.Errorf("the replay sent %d requests, want none", len(got))
	}
	if n := deadLetters(t, r.js, subject); n != 0 {
		t.Errorf("%d dead letters left, want the outdated one removed", n)
	}
}

// An incident with two dead letters (its opening and its
// acknowledgement), whose state entry holds a newer open state: nothing is
// sent, and both are listed as outdated, none as superseded (which
// `aiops notify replay` prints as "delivered in its place").
func TestReplayOfAnOutdatedGroupSendsNoneInAnothersPlace(t *testing.T) {
	r := newJSRig(t, zerolog.ErrorLevel)
	var sent atomic.Int64
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) { sent.Add(1) }))
	defer hook.Close()
	cfg := Config{Routes: hookRoutes(t, hook.URL)}
	subject := cfg.DeadLetterSubject()
	opened, acked, _ := lifecycle(t)
	id := opened.Labels["incident_id"]
	deadLetter(t, r.js, subject, opened)
	deadLetter(t, r.js, subject, acked)
	store, err := openKVStore(context.Background(), r.js, cfg.WithDefaults().State)
	if err != nil {
		t.Fatal(err)
	}
	// The notifier handled a newer open state since.
	if err := store.Put(context.Background(), openIncident{ID: id, Revision: 99, At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	proc, err := NewProcessor(cfg, r.log)
	if err != nil {
		t.Fatal(err)
	}
	var listed []DeadLetter
	if _, _, err := Replay(context.Background(), r.js, proc, subject, false, func(dl DeadLetter) { listed = append(listed, dl) }); err != nil {
		t.Fatal(err)
	}
	if sent.Load() != 0 {
		t.Fatalf("%d sent, want none (outdated)", sent.Load())
	}
	if len(listed) != 2 {
		t.Fatalf("%d dead letters listed, want 2", len(listed))
	}
	for _, dl := range listed {
		if dl.Replay != ReplayOutdated {
			t.Errorf("seq %d listed as replay kind %d (newer: seq %d), want outdated: nothing was delivered", dl.Seq, dl.Replay, dl.Newer)
		}
	}
}

// A dead letter cut to fit the server's max_payload (bus.HeaderTruncated)
// is not replayed as if it were the event: it fails, kept, saying where
// the whole event is.
func TestReplayOfATruncatedDeadLetterSaysWhereTheEventIs(t *testing.T) {
	r := newJSRig(t, zerolog.ErrorLevel)
	pd := newFakeAPI(t, func(c call) answer { return answer{code: 202, body: `{"status":"success"}`} })
	cfg := Config{Routes: pdRoutes(t, pd.srv.URL)}
	proc, err := NewProcessor(cfg, r.log)
	if err != nil {
		t.Fatal(err)
	}
	subject := cfg.DeadLetterSubject()
	_, _, resolved := lifecycle(t)
	data, _ := resolved.MarshalJSON()
	msg := nats.NewMsg(subject)
	msg.Data = data[:len(data)/2]
	msg.Header.Set(bus.HeaderDeadLetterReason, "receiver pager: HTTP 503")
	msg.Header.Set(bus.HeaderTruncated, strconv.Itoa(len(data)))
	msg.Header.Set(bus.HeaderConsumer, "INCIDENTS/notifier")
	msg.Header.Set(bus.HeaderStreamSeq, "42")
	if _, err := r.js.PublishMsg(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
	var got []DeadLetter
	d, f, err := Replay(context.Background(), r.js, proc, subject, false, func(dl DeadLetter) { got = append(got, dl) })
	if err != nil || d != 0 || f != 1 || len(got) != 1 {
		t.Fatalf("replay delivered %d, failed %d, %v; %d reported", d, f, err, len(got))
	}
	if e := fmt.Sprint(got[0].Err); !strings.Contains(e, "stream INCIDENTS at sequence 42") {
		t.Errorf("its error %q, want where the whole event is", e)
	}
	if n := len(pd.got()); n != 0 {
		t.Errorf("PagerDuty got %d calls", n)
	}
}
