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
	var mu sync.Mutex
	down := true
	hookTries, hookTook, slackTook := 0, 0, 0
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		hookTries++
		if down {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		hookTook++
	}))
	t.Cleanup(hook.Close)
	slack := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		slackTook++
		mu.Unlock()
		_, _ = w.Write([]byte("ok"))
	}))
	t.Cleanup(slack.Close)
	routes := filepath.Join(t.TempDir(), "alertmanager.yml")
	yml := fmt.Sprintf("route: {receiver: oncall, group_wait: 0s}\nreceivers:\n- name: oncall\n  webhook_configs: [{url: '%s'}]\n  slack_configs: [{api_url: '%s', channel: '#oncall'}]\n", hook.URL, slack.URL)
	if err := os.WriteFile(routes, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := outageConfig(routes)
	cfg.Consumer.MaxDeliver = 5
	counts := func() (int, int, int) {
		mu.Lock()
		defer mu.Unlock()
		return hookTries, hookTook, slackTook
	}
	say := func() string {
		tries, took, s := counts()
		return fmt.Sprintf("webhook tried %d times, took %d; slack took %d", tries, took, s)
	}

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

	mu.Lock()
	down = false
	mu.Unlock()
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
	var mu sync.Mutex
	down := false
	hookTries, hookTook, slackTook := 0, 0, 0
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		hookTries++
		if down {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		hookTook++
	}))
	t.Cleanup(hook.Close)
	slack := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		slackTook++
		mu.Unlock()
		_, _ = w.Write([]byte("ok"))
	}))
	t.Cleanup(slack.Close)
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
`, slack.URL, hook.URL)
	if err := os.WriteFile(routes, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := outageConfig(routes)
	cfg.Consumer.MaxDeliver = 5
	counts := func() (int, int, int) {
		mu.Lock()
		defer mu.Unlock()
		return hookTries, hookTook, slackTook
	}
	say := func() string {
		tries, took, s := counts()
		return fmt.Sprintf("webhook tried %d times, took %d; slack took %d", tries, took, s)
	}

	a, stopA := r.start(cfg)
	opened := time.Now().UTC()
	r.publish(incidentAt(t, "inc-two-receivers", "db", "dba", event.SeverityCritical, event.IncidentOpened, opened, opened))
	eventually(t, say, func() bool { _, took, s := counts(); return took == 1 && s == 1 })
	mu.Lock()
	down = true
	mu.Unlock()
	r.publish(incidentAt(t, "inc-two-receivers", "db", "dba", event.SeverityCritical, event.IncidentResolved, opened, opened.Add(time.Second)))
	// Two attempts a try: a third means the first try is over, and the
	// resolve held for the webhook.
	eventually(t, say, func() bool { tries, _, s := counts(); return tries >= 4 && s == 2 })
	stopA()
	if st := a.ConsumerStats(); st.Acked != 1 {
		t.Fatalf("acked %d incident events, want the opening only: %+v", st.Acked, st)
	}

	mu.Lock()
	down = false
	mu.Unlock()
	b, stopB := r.start(cfg)
	defer stopB()
	eventually(t, say, func() bool { _, took, _ := counts(); return took == 2 && b.ConsumerStats().Acked == 1 })
	if _, _, s := counts(); s != 2 {
		t.Fatalf("Slack got %d notifications, want 2 (the opening, the resolve): the notifier after the stop sent the resolve again", s)
	}
}
