package notifier

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/event"
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
