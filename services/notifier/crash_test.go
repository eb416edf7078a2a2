package notifier

import (
	"context"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/bus"
	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/pkg/notify/webhook"
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
