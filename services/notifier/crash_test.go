package notifier

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/bus"
	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/pkg/notify/webhook"
	"github.com/aiops-dev/aiops/pkg/stage"
	"github.com/aiops-dev/aiops/pkg/stage/stagetest"
)

// A notifier that dies after its receiver took a notification, before the
// incident event's ack reached JetStream, is followed by one that sends it
// again (at-least-once) under the same webhook-id, signed afresh: a
// receiver that keeps the webhook-ids it took drops it, and one that
// checks the timestamp's age still accepts it.
func TestCrashBeforeTheAckResendsUnderTheSameWebhookID(t *testing.T) {
	r := newJSRig(t, zerolog.ErrorLevel)
	var mu sync.Mutex
	var ids []string
	var verified []error
	took, answer := make(chan struct{}), make(chan struct{})
	key, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		mu.Lock()
		ids = append(ids, req.Header.Get(webhook.HeaderID))
		verified = append(verified, webhook.Verify([][]byte{key}, req.Header, body, time.Now(), 0))
		first := len(ids) == 1
		mu.Unlock()
		if first {
			close(took)
			<-answer // the notifier dies meanwhile; its 200 comes too late
		}
	}))
	defer hook.Close()
	defer func() {
		select {
		case <-answer:
		default:
			close(answer)
		}
	}()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "secret"), []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	routes := filepath.Join(dir, "alertmanager.yml")
	yml := "route:\n  receiver: hook\n  group_wait: 0s\nreceivers:\n- name: hook\n  aiops_webhook_configs:\n  - url: " + hook.URL + "\n    secret_file: " + filepath.Join(dir, "secret") + "\n"
	if err := os.WriteFile(routes, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := Config{Routes: routes, Lease: bus.LeaseConfig{Disabled: true}}
	cfg.Consumer.FetchWait = 50 * time.Millisecond
	cfg.Consumer.AckWait = 2 * time.Second // the redelivery after the crash
	cfg.Delivery.RateLimit.Disabled = true

	ncA, jsA, err := bus.Connect(context.Background(), bus.Config{URLs: []string{r.js.Conn().ConnectedUrl()}}, r.log)
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(context.Background(), jsA, cfg, r.log)
	if err != nil {
		t.Fatal(err)
	}
	ctxA, crashA := context.WithCancel(context.Background())
	ranA := make(chan error, 1)
	go func() { ranA <- a.Run(ctxA) }()
	now := time.Now().UTC()
	r.publish(incidentAt(t, "crash-inc", "db", "dba", event.SeverityCritical, event.IncidentOpened, now, now))
	<-took
	ncA.Close() // it dies: nothing it sends from now on reaches JetStream
	crashA()
	close(answer)
	<-ranA

	b, stopB := r.start(cfg)
	defer stopB()
	eventually(t, func() string { return "the next notifier did not ack the incident event" }, func() bool {
		return b.ConsumerStats().Acked == 1
	})
	mu.Lock()
	defer mu.Unlock()
	if len(ids) != 2 || ids[0] != ids[1] {
		t.Fatalf("webhook-ids %v: want the notification twice under one id", ids)
	}
	for i, err := range verified {
		if err != nil {
			t.Errorf("request %d: signature: %v", i+1, err)
		}
	}
}

// A Slack incoming webhook has no idempotency key: a notification it took
// and is sent again shows twice. A notifier killed after Slack answered
// 2xx, before the incident event's ack was stored (`aiops run`'s embedded
// server writes its consumers' acks in the background, up to 100 ms
// later) and before its saver wrote what went out, was followed by one
// that sent it again: a kill -9 soak, each kill 0 to 200 ms after Slack
// answered, showed 23 of 101 incident states twice or more in Slack
// (resolves, whose acks wait for their tombstones, up to 7 times over
// as many restarts). Slack's deliveries are kept in the state bucket as
// soon as it took them, before their events are settled.
func TestCrashAfterSlackTookANotificationDoesNotSendItAgain(t *testing.T) {
	r := newJSRig(t, zerolog.ErrorLevel)
	slack := newReceiver(t)
	routes := filepath.Join(t.TempDir(), "alertmanager.yml")
	yml := "route: {receiver: chat, group_wait: 0s}\nreceivers:\n- name: chat\n  slack_configs: [{api_url: '" + slack.srv.URL + "', send_resolved: true}]\n"
	if err := os.WriteFile(routes, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	// notifier starts a term as Service.Run does, without the saver: the
	// kill comes before its pass.
	notifier := func() (*stagetest.Harness, *Processor) {
		t.Helper()
		ctx := context.Background()
		kv, err := openKVStore(ctx, r.js, StateConfig{}.WithDefaults())
		if err != nil {
			t.Fatal(err)
		}
		proc, err := NewProcessor(Config{Routes: routes}, zerolog.Nop())
		if err != nil {
			t.Fatal(err)
		}
		proc.WithOpenStore(kv)
		proc.keepSentIn(kv.kv)
		if err := proc.restoreOpen(ctx); err != nil {
			t.Fatal(err)
		}
		proc.restoreSentKeys(ctx)
		return stagetest.Start(t, proc, stage.Config{Name: "notifier", TickEvery: time.Second}), proc
	}
	opened := time.Now().UTC()
	for i, e := range []*event.Envelope{
		incidentAt(t, "slack-crash", "db", "dba", event.SeverityCritical, event.IncidentOpened, opened, opened),
		incidentAt(t, "slack-crash", "db", "dba", event.SeverityCritical, event.IncidentResolved, opened, opened.Add(time.Minute)),
	} {
		h, proc := notifier()
		h.Send(e)
		waitSent(t, proc)
		h.Stop() // killed: its ack never reached the stream
		h, proc = notifier()
		h.Send(e) // delivered again after ack_wait
		waitSent(t, proc)
		h.Stop()
		if got, _ := slack.requests(); len(got) != i+1 {
			t.Fatalf("%s: Slack took %d messages, want %d: the notifier after the kill sent it again", e.ID, len(got), i+1)
		}
	}
}

// A notifier killed right after its receiver took an incident's resolve,
// before the saver wrote the resolve's tombstone, left nothing that said
// the resolve went out: the incident's older state, whose ack the kill
// lost too, came again to the next notifier ahead of the resolve, and
// went out after it (the kill -9 soak of the README's "What is sent
// twice" saw an opening paged 17 s after its incident's resolve; to
// PagerDuty, a trigger after its resolve pages again). A resolve goes out once its
// tombstone is written, which the next notifier reads: what is older
// than the resolve is not sent.
func TestCrashAfterAResolveWentOutSendsNoOlderStateAfterIt(t *testing.T) {
	r := newJSRig(t, zerolog.ErrorLevel)
	hook := newReceiver(t)
	heard := func() (out []string) {
		_, bodies := hook.requests()
		for _, b := range bodies {
			status := "firing"
			if strings.Contains(string(b), `"status":"resolved"`) {
				status = "resolved"
			}
			out = append(out, status)
		}
		return out
	}
	opening := incidentAt(t, "inc", "db", "dba", event.SeverityCritical, event.IncidentOpened, t0, t0)
	update := incidentAt(t, "inc", "db", "dba", event.SeverityCritical, event.IncidentUpdated, t0, t0.Add(40*time.Second))
	resolve := incidentAt(t, "inc", "db", "dba", event.SeverityCritical, event.IncidentResolved, t0, t0.Add(50*time.Second))

	h, _, at, tick := timedRigWith(t, hook, nil, r.stateBucket())
	h.Send(opening)
	tick(31 * time.Second) // past group_wait: the opening goes out
	at(40 * time.Second)
	h.Send(update) // waits for group_interval
	at(50 * time.Second)
	h.Send(resolve) // goes out at once, standing for the update
	tick(51 * time.Second)
	if got := heard(); len(got) != 2 || got[1] != "resolved" {
		t.Fatalf("before the kill the receiver heard %v, want the opening, then the resolve", got)
	}
	h.Stop() // killed before the saver's pass: the acks of the update and the resolve are lost

	h, _, at, tick = timedRigWith(t, hook, nil, r.stateBucket())
	at(2 * time.Minute)
	h.Send(update) // delivered again, ahead of the resolve
	tick(2 * time.Minute)
	h.Send(resolve)
	tick(2*time.Minute + time.Second)
	got := heard()
	for i, s := range got {
		if s == "firing" && slices.Contains(got[:i], "resolved") {
			t.Fatalf("the receiver heard %v: an older state after the resolve", got)
		}
	}
}

// A notifier killed right after an update or an acknowledgement went
// out, before the saver wrote that it did, is followed by one that gets
// the incident's older update again (its ack, settled by the newer
// state's send, lost with the kill) and must not send it after the newer
// one: a receiver that drops the newer one's webhook-id when it comes
// again showed the older state until the incident's next change. The
// update went out after the saver wrote the incident at it; the
// acknowledgement goes out at once, before the saver's pass.
func TestCrashAfterAnUpdateWentOutSendsNoOlderStateAfterIt(t *testing.T) {
	for _, tc := range []struct {
		transition string
		saverPass  bool
	}{
		{event.IncidentUpdated, true},
		{event.IncidentAcknowledged, false},
	} {
		t.Run(tc.transition, func(t *testing.T) {
			r := newJSRig(t, zerolog.ErrorLevel)
			hook := newReceiver(t)
			ids := func() []string { // of incident inc, each once
				got, bodies := hook.requests()
				var out []string
				for i, req := range got {
					if !strings.Contains(string(bodies[i]), `"incident_id":"inc"`) {
						continue
					}
					if id := req.Header.Get(webhook.HeaderID); !slices.Contains(out, id) {
						out = append(out, id)
					}
				}
				return out
			}
			opening := incidentAt(t, "inc", "db", "dba", event.SeverityCritical, event.IncidentOpened, t0, t0)
			older := incidentAt(t, "inc", "db", "dba", event.SeverityCritical, event.IncidentUpdated, t0, t0.Add(40*time.Second))
			newer := incidentAt(t, "inc", "db", "dba", event.SeverityCritical, tc.transition, t0, t0.Add(50*time.Second))

			h, proc, at, tick := timedRigWith(t, hook, nil, r.stateBucket())
			h.Send(opening)
			tick(31 * time.Second) // past group_wait: the opening goes out
			at(40 * time.Second)
			h.Send(older) // waits for group_interval (5m)
			if err := proc.saveOpen(context.Background()); err != nil {
				t.Fatal(err)
			}
			at(50 * time.Second)
			h.Send(newer) // stands for it
			if tc.saverPass {
				if err := proc.saveOpen(context.Background()); err != nil {
					t.Fatal(err)
				}
			}
			tick(6 * time.Minute) // the newer state has gone out
			if got := ids(); len(got) != 2 {
				t.Fatalf("before the kill the receiver got %d notifications, want the opening and the newer state", len(got))
			}
			h.Stop() // killed before the saver wrote that it went out

			h, _, at, tick = timedRigWith(t, hook, nil, r.stateBucket())
			at(7 * time.Minute)
			// What was published meanwhile comes at once, moving the clock;
			// the held events come again after ack_wait.
			h.Send(incidentAt(t, "other", "search", "discovery", event.SeverityWarning, event.IncidentOpened, t0.Add(7*time.Minute), t0.Add(7*time.Minute)))
			h.Send(older) // delivered again, ahead of the newer one
			tick(7 * time.Minute)
			h.Send(newer)
			tick(13 * time.Minute)
			if got := ids(); len(got) != 2 {
				t.Fatalf("after the kill the receiver got %d distinct notifications, want the 2 it had: the older update went out after the newer state", len(got))
			}
		})
	}
}

// A flap that a graceful stop cut in two: opened, its root moved within
// group_wait (the saver wrote the incident at that update), the notifier
// stopped (both events given back to the stream, nothing sent), and the
// next notifier got them again, then the resolve, still within
// group_wait. No receiver heard of the incident, so none hears of its
// resolve: the opening, come again, was dropped as older than the update
// the bucket held, the slot was made by the update, which cannot tell
// that no receiver heard, and the resolve went out alone.
func TestFlapAcrossAGracefulStopIsNotNotified(t *testing.T) {
	r := newJSRig(t, zerolog.ErrorLevel)
	hook := newReceiver(t)
	opening := incidentAt(t, "inc", "db", "dba", event.SeverityCritical, event.IncidentOpened, t0, t0)
	update := incidentAt(t, "inc", "api", "web", event.SeverityCritical, event.IncidentUpdated, t0, t0.Add(10*time.Second))
	resolve := incidentAt(t, "inc", "api", "web", event.SeverityCritical, event.IncidentResolved, t0, t0.Add(20*time.Second))

	h, proc, at, _ := timedRigWith(t, hook, nil, r.stateBucket())
	h.Send(opening)
	at(10 * time.Second)
	h.Send(update) // its root moved: the saver writes it
	if err := proc.saveOpen(context.Background()); err != nil {
		t.Fatal(err)
	}
	h.Stop() // graceful: both events go back to the stream
	if err := proc.saveOpen(context.Background()); err != nil {
		t.Fatal(err) // the saver's last pass
	}

	h, proc, at, tick := timedRigWith(t, hook, nil, r.stateBucket())
	at(15 * time.Second)
	var held []*stagetest.Held
	for _, e := range []*event.Envelope{opening, update, resolve} {
		held = append(held, h.Send(e))
	}
	tick(time.Minute)
	if err := proc.saveOpen(context.Background()); err != nil {
		t.Fatal(err) // the tombstone the resolve's ack waits for
	}
	for i, p := range held {
		if res, ok := p.Result(); !ok || res.Outcome != stagetest.Acked {
			t.Fatalf("event %d settled %v, %v %v: want acked", i, ok, res.Outcome, res.Err)
		}
	}
	if got, bodies := hook.requests(); len(got) > 0 {
		t.Fatalf("the receiver got %d notifications of a flap nobody heard of, the first: %s", len(got), bodies[0])
	}
}

// A receiver that never heard of an incident reads its first page as the
// incident's opening, whatever state it carries. A notifier killed while
// the opening waited for group_wait, its root moved meanwhile, gets the
// opening and the update again only after ack_wait, behind what the
// correlator published since, which comes at once: the slot is made by
// that later update, past group_wait, and its page went out as
// incident.updated, the receiver told of no opening (a kill -9 soak: 12
// incidents of about 100). So did the first page of an incident whose
// update replaced its opening within group_wait, without a kill.
func TestFirstPageReadsAsAnOpening(t *testing.T) {
	transitions := func(hook *receiver) []string {
		_, bodies := hook.requests()
		var out []string
		for _, b := range bodies {
			out = append(out, payloadType(t, b))
		}
		return out
	}
	aiopsHook := func(hook *receiver) string {
		t.Helper()
		file := filepath.Join(t.TempDir(), "secret")
		if err := os.WriteFile(file, []byte(secret+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return "aiops_webhook_configs: [{url: '" + hook.srv.URL + "', secret_file: '" + file + "'}]"
	}
	opening := incidentAt(t, "inc", "db", "dba", event.SeverityCritical, event.IncidentOpened, t0, t0)
	moved := incidentAt(t, "inc", "api", "web", event.SeverityCritical, event.IncidentUpdated, t0, t0.Add(10*time.Second))
	later := incidentAt(t, "inc", "api", "web", event.SeverityCritical, event.IncidentUpdated, t0, t0.Add(2*time.Minute))

	t.Run("its update within group_wait", func(t *testing.T) {
		hook := newReceiver(t)
		h, _, at, tick := timedRigTo(t, aiopsHook(hook), nil, nil)
		h.Send(opening)
		at(10 * time.Second)
		h.Send(moved)
		tick(31 * time.Second)
		if got := transitions(hook); len(got) != 1 || got[0] != "incident.opened" {
			t.Fatalf("the receiver got %v, want one incident.opened", got)
		}
	})
	t.Run("after a kill", func(t *testing.T) {
		r := newJSRig(t, zerolog.ErrorLevel)
		hook := newReceiver(t)
		h, proc, at, _ := timedRigTo(t, aiopsHook(hook), nil, r.stateBucket())
		h.Send(opening)
		at(10 * time.Second)
		h.Send(moved) // its root moved: the saver writes it
		if err := proc.saveOpen(context.Background()); err != nil {
			t.Fatal(err)
		}
		h.Stop() // killed while the opening waited for group_wait

		h, _, at, tick := timedRigTo(t, aiopsHook(hook), nil, r.stateBucket())
		at(2 * time.Minute)
		h.Send(later) // published since: it comes at once
		tick(2 * time.Minute)
		h.Send(opening) // after ack_wait
		h.Send(moved)
		tick(3 * time.Minute)
		if got := transitions(hook); len(got) != 1 || got[0] != "incident.opened" {
			t.Fatalf("the receiver got %v, want one incident.opened", got)
		}
	})
}

// An incident whose slot the schedule forgot at its bound (MaxSlots: an
// idle slot, its opening sent) is no receiver's first notice: its next
// update, which makes a slot knowing no notification, must not read as a
// second opening (asSeenBy). Without a crash, the receiver opened a
// second ticket; the incident's record of the route says it heard.
func TestUpdateAfterItsSlotWasForgottenIsNoOpening(t *testing.T) {
	hook := newReceiver(t)
	file := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(file, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	h, proc, at, tick := timedRigTo(t, "aiops_webhook_configs: [{url: '"+hook.srv.URL+"', secret_file: '"+file+"'}]", nil, &memOpen{kept: map[string]openIncident{}})
	proc.mu.Lock()
	proc.schedule.max = 1 // a schedule at its bound
	proc.mu.Unlock()
	h.Send(incidentAt(t, "inc", "db", "dba", event.SeverityCritical, event.IncidentOpened, t0, t0))
	tick(31 * time.Second) // its opening went out; its slot is idle
	at(time.Minute)
	h.Send(incidentAt(t, "other", "cache", "web", event.SeverityCritical, event.IncidentOpened, t0.Add(time.Minute), t0.Add(time.Minute)))
	tick(2 * time.Minute) // the other's slot took the room of inc's
	h.Send(incidentAt(t, "inc", "api", "web", event.SeverityCritical, event.IncidentUpdated, t0, t0.Add(2*time.Minute)))
	tick(10 * time.Minute)
	_, bodies := hook.requests()
	var got []string
	for _, b := range bodies {
		var p struct {
			Type string `json:"type"`
			Data struct {
				ID string `json:"id"`
			} `json:"data"`
		}
		if err := json.Unmarshal(b, &p); err != nil {
			t.Fatal(err)
		}
		if p.Data.ID == "inc" {
			got = append(got, p.Type)
		}
	}
	if len(got) != 2 || got[0] != "incident.opened" || got[1] != "incident.updated" {
		t.Fatalf("the receiver got %v for inc, want incident.opened then incident.updated", got)
	}
}

// An incident reopened keeps what its resolve stood for. A kill -9 soak
// (rate-limited lanes, so the resolve waited behind other pages): the
// opening went out while the incident's resolve was already known (its
// entry a tombstone, so what went out was not recorded), the incident
// reopened before the resolve went out (its entry open again, knowing
// neither the resolve nor what went out), and the notifier was killed.
// The next one got the update older than the resolve again (settled by
// nothing that went out) and sent it as the incident's opening: the
// receiver was opened twice (1 incident of 50). Had the resolve gone out,
// the update would have come after it.
func TestReopenedIncidentSendsNoStateOlderThanItsResolveAfterACrash(t *testing.T) {
	r := newJSRig(t, zerolog.ErrorLevel)
	bucket := func() *kvOpen {
		t.Helper()
		kv, err := openKVStore(context.Background(), r.js, StateConfig{}.WithDefaults())
		if err != nil {
			t.Fatal(err)
		}
		return kv
	}
	// The receiver takes the opening once the resolve is known, and the
	// resolve not before the notifier is killed; what it answered is kept.
	var mu sync.Mutex
	var answered []string
	requests := 0
	took := make(chan int, 8)
	openingGate, killed := make(chan struct{}), make(chan struct{})
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		mu.Lock()
		requests++
		n := requests
		mu.Unlock()
		took <- n
		switch n {
		case 1:
			<-openingGate
		case 2:
			<-killed
			return
		}
		typ := payloadType(t, body)
		mu.Lock()
		answered = append(answered, typ)
		mu.Unlock()
	}))
	defer hook.Close()
	defer close(killed) // before the server closes: it waits for its requests
	file := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(file, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	integration := "aiops_webhook_configs: [{url: '" + hook.URL + "', secret_file: '" + file + "'}]"
	opening := incidentAt(t, "inc", "db", "dba", event.SeverityCritical, event.IncidentOpened, t0, t0)
	update := incidentAt(t, "inc", "db", "dba", event.SeverityCritical, event.IncidentUpdated, t0, t0.Add(35*time.Second))
	resolve := incidentAt(t, "inc", "db", "dba", event.SeverityCritical, event.IncidentResolved, t0, t0.Add(50*time.Second))
	reopen := incidentAt(t, "inc", "db", "dba", event.SeverityCritical, event.IncidentReopened, t0, t0.Add(60*time.Second))

	h, proc, at, _ := timedRigTo(t, integration, nil, bucket())
	h.Send(opening)
	at(31 * time.Second)
	if err := h.Tick(proc.now()); err != nil { // past group_wait: the opening goes out
		t.Fatal(err)
	}
	<-took
	at(35 * time.Second)
	h.Send(update) // waits for group_interval
	at(50 * time.Second)
	h.Send(resolve) // waits for the opening's send
	close(openingGate)
	<-took // the resolve is being sent
	at(60 * time.Second)
	h.Send(reopen)
	if err := proc.saveOpen(context.Background()); err != nil {
		t.Fatal(err) // the saver's pass
	}
	// killed: the update, the resolve and the reopening come again

	h, _, at, tick := timedRigTo(t, integration, nil, bucket())
	at(2 * time.Minute)
	for _, e := range []*event.Envelope{update, resolve, reopen} {
		h.Send(e)
	}
	tick(3 * time.Minute)
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"incident.opened", "incident.resolved", "incident.reopened"}; !slices.Equal(answered, want) {
		t.Fatalf("the receiver took %v, want %v", answered, want)
	}
}
