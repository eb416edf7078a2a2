package notifier

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/pkg/notify/webhook"
)

// A receiver with a webhook that cannot be reached and a Slack incoming
// webhook that took the notification: the notification is held for the
// webhook, and a stop gives its incident event back to the stream. The
// next notifier (this one restarted, or a standby) sends it to the
// webhook, not to Slack again: Slack has no idempotency key, and a person
// read the same message twice.
func TestIntegrationThatTookANotificationIsNotSentItAgainAfterARestart(t *testing.T) {
	r := newJSRig(t, zerolog.ErrorLevel)
	recv := newHookAndSlack(t, true)
	routes := filepath.Join(t.TempDir(), "alertmanager.yml")
	yml := fmt.Sprintf("route: {receiver: oncall, group_wait: 0s}\nreceivers:\n- name: oncall\n  webhook_configs: [{url: '%s'}]\n  slack_configs: [{api_url: '%s', channel: '#oncall'}]\n", recv.hook.URL, recv.slack.URL)
	if err := os.WriteFile(routes, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := outageConfig(routes)
	cfg.Consumer.MaxDeliver = 5
	counts, say := recv.counts, recv.say

	a, stopA := r.start(cfg)
	now := time.Now().UTC()
	r.publish(incidentAt(t, "inc-slack", "db", "dba", event.SeverityCritical, event.IncidentOpened, now, now))
	// Two attempts a try: a third means the first try is over, and the
	// notification held for the webhook.
	eventually(t, say, func() bool { tries, _, s := counts(); return tries >= 3 && s == 1 })
	stopA()
	if st := a.ConsumerStats(); st.Acked != 0 {
		t.Fatalf("the held incident event was acked: %+v", st)
	}

	recv.setDown(false)
	b, stopB := r.start(cfg)
	defer stopB()
	eventually(t, say, func() bool { _, took, _ := counts(); return took == 1 && b.ConsumerStats().Acked == 1 })
	if _, _, s := counts(); s != 1 {
		t.Fatalf("Slack got the notification %d times, want once: the notifier after the stop sent it again", s)
	}
}

// The same across receivers: the resolve of an incident routed to two
// receivers (a route with continue), one of which, a Slack channel, took
// it while the other's webhook could not be reached, is given back to the
// stream at a stop for the webhook. The next notifier sends it to the
// webhook, not to Slack again. A cluster trial saw this with receivers
// that were only slow: a notifier stopped while one receiver's lane was
// behind the other's sent 13 of 125 resolves twice.
func TestReceiverThatTookAResolveIsNotSentItAgainAfterARestart(t *testing.T) {
	r := newJSRig(t, zerolog.ErrorLevel)
	recv := newHookAndSlack(t, false)
	routes := filepath.Join(t.TempDir(), "alertmanager.yml")
	yml := fmt.Sprintf(`route:
  receiver: oncall
  group_wait: 0s
  routes:
  - {receiver: chat, continue: true}
  - {receiver: oncall}
receivers:
- name: chat
  slack_configs: [{api_url: '%s', channel: '#oncall', send_resolved: true}]
- name: oncall
  webhook_configs: [{url: '%s'}]
`, recv.slack.URL, recv.hook.URL)
	if err := os.WriteFile(routes, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := outageConfig(routes)
	cfg.Consumer.MaxDeliver = 5
	counts, say := recv.counts, recv.say

	a, stopA := r.start(cfg)
	opened := time.Now().UTC()
	r.publish(incidentAt(t, "inc-two-receivers", "db", "dba", event.SeverityCritical, event.IncidentOpened, opened, opened))
	eventually(t, say, func() bool { _, took, s := counts(); return took == 1 && s == 1 })
	recv.setDown(true)
	r.publish(incidentAt(t, "inc-two-receivers", "db", "dba", event.SeverityCritical, event.IncidentResolved, opened, opened.Add(time.Second)))
	// Two attempts a try: a third means the first try is over, and the
	// resolve held for the webhook.
	eventually(t, say, func() bool { tries, _, s := counts(); return tries >= 4 && s == 2 })
	stopA()
	if st := a.ConsumerStats(); st.Acked != 1 {
		t.Fatalf("acked %d incident events, want the opening only: %+v", st.Acked, st)
	}

	recv.setDown(false)
	b, stopB := r.start(cfg)
	defer stopB()
	eventually(t, say, func() bool { _, took, _ := counts(); return took == 2 && b.ConsumerStats().Acked == 1 })
	if _, _, s := counts(); s != 2 {
		t.Fatalf("Slack got %d notifications, want 2 (the opening, the resolve): the notifier after the stop sent the resolve again", s)
	}
}

// hookAndSlack are a webhook receiver, answering 503 while down, and a
// Slack incoming webhook, each counting what it took.
type hookAndSlack struct {
	hook, slack *httptest.Server

	mu                             sync.Mutex
	down                           bool
	hookTries, hookTook, slackTook int
}

func newHookAndSlack(t *testing.T, down bool) *hookAndSlack {
	h := &hookAndSlack{down: down}
	h.hook = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.hookTries++
		if h.down {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		h.hookTook++
	}))
	t.Cleanup(h.hook.Close)
	h.slack = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		h.mu.Lock()
		h.slackTook++
		h.mu.Unlock()
		_, _ = w.Write([]byte("ok"))
	}))
	t.Cleanup(h.slack.Close)
	return h
}

func (h *hookAndSlack) setDown(down bool) {
	h.mu.Lock()
	h.down = down
	h.mu.Unlock()
}

// counts are the webhook's tries, what it took, and what Slack took.
func (h *hookAndSlack) counts() (tries, took, slack int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.hookTries, h.hookTook, h.slackTook
}

func (h *hookAndSlack) say() string {
	tries, took, s := h.counts()
	return fmt.Sprintf("webhook tried %d times, took %d; slack took %d", tries, took, s)
}

// stalledKV is a state bucket whose server stalls: every Put waits until
// its context ends, and what the context allowed is recorded.
type stalledKV struct {
	jetstream.KeyValue
	mu     sync.Mutex
	puts   int
	allows []time.Duration // each Put's context's time left as it came
}

func (s *stalledKV) Put(ctx context.Context, key string, value []byte) (uint64, error) {
	s.mu.Lock()
	s.puts++
	if deadline, ok := ctx.Deadline(); ok {
		s.allows = append(s.allows, time.Until(deadline))
	} else {
		s.allows = append(s.allows, -1)
	}
	s.mu.Unlock()
	<-ctx.Done()
	return 0, ctx.Err()
}

// A Slack delivery's key is written at once, on its receiver's lane, before
// the incident event is settled. On a stalled bucket it waited 5 s for each
// Slack notification (sentKeysTimeout), five times what a notification
// waits for its state's write (stateWriteWait), and went on waiting while
// the bucket was known to fail, when the state's writes are not waited for
// at all (storeFailing). It waits as they do, and a write that failed
// tells the next ones.
func TestSlackKeyWriteWaitsNoLongerThanAStateWrite(t *testing.T) {
	slack := newReceiver(t)
	routes := filepath.Join(t.TempDir(), "alertmanager.yml")
	yml := "route: {receiver: chat}\nreceivers:\n- name: chat\n  slack_configs: [{api_url: '" + slack.srv.URL + "'}]\n"
	if err := os.WriteFile(routes, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := NewProcessor(Config{Routes: routes}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	kv := &stalledKV{}
	p.keepSentIn(kv)
	for range 2 {
		if err := p.SendTest(context.Background(), "chat", webhook.SampleIncident()); err != nil {
			t.Fatal(err)
		}
	}
	if got, _ := slack.requests(); len(got) != 2 {
		t.Fatalf("Slack took %d messages, want 2", len(got))
	}
	kv.mu.Lock()
	defer kv.mu.Unlock()
	if allowed := kv.allows[0]; allowed < 0 || allowed > stateWriteWait {
		t.Errorf("the Slack key's write was allowed %v, want at most stateWriteWait (%v)", allowed, stateWriteWait)
	}
	if kv.puts != 1 {
		t.Errorf("%d writes of Slack's keys, want 1: the write that failed on the stalled bucket tells the next not to wait", kv.puts)
	}
}
