package aiops

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/pkg/notify/webhook"
	"github.com/aiops-dev/aiops/pkg/store"
	"github.com/aiops-dev/aiops/pkg/testenv"
)

// TestRunRestartMidStream stops `aiops run` while it is taking in a batch
// of events and starts it again on the same data: every accepted event is
// stored once, the alert that arrives after the restart joins the incident
// opened before it (no second incident), and the receiver never gets the
// same notification (webhook-id, the idempotency key) twice.
func TestRunRestartMidStream(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: needs ClickHouse")
	}
	dsn := testenv.ClickHouse(t)
	began := time.Now()
	dir := t.TempDir()
	secret := bytes.Repeat([]byte{42}, 32)
	os.WriteFile(filepath.Join(dir, "webhook-secret"), []byte(webhook.SecretPrefix+base64.StdEncoding.EncodeToString(secret)), 0o600)
	recv := &demoReceiver{secrets: [][]byte{secret}}
	hooks := httptest.NewServer(recv)
	defer hooks.Close()
	routes := filepath.Join(dir, "alertmanager.yml")
	os.WriteFile(routes, []byte(demoRoutes(hooks.URL)), 0o600)

	run := &localRun{t: t, dir: dir, dsn: dsn}
	var ingestAddr string
	start := func() (context.CancelFunc, chan error) {
		ctx, cancel := context.WithCancel(context.Background())
		finished := run.start(ctx, nil,
			"-set", "correlator.catalog="+filepath.Join("..", "..", DefaultCatalog),
			"-set", "notifier.routes="+routes,
			"-set", "log.level=error",
			// What run 1 had fetched but not finished comes back
			// after ack_wait (30 s by default): shorter here, so
			// the test waits less; the count is what it checks.
			"-set", "writer.consumer.ack_wait=5s",
			"-set", "correlator.consumer.ack_wait=5s",
			"-set", "notifier.consumer.ack_wait=5s",
			// An incident's updates are at least 30 s of event time
			// apart by default; the joining alert's update comes
			// sooner with 2 s.
			"-set", "correlator.rules.update_interval=2s",
		)
		ingestAddr = run.ingest
		return cancel, finished
	}
	stop := func(cancel context.CancelFunc, finished chan error) {
		cancel()
		select {
		case err := <-finished:
			if err != nil {
				t.Fatalf("aiops run stopped with %v", err)
			}
		case <-time.After(time.Minute):
			t.Fatal("aiops run did not stop within a minute")
		}
	}
	post := func(path string, body []byte) []string {
		token, err := os.ReadFile(dir + "/ingest-token")
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest("POST", "http://"+ingestAddr+path, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if path == "/v1/events" {
			req.Header.Set("Content-Type", "application/x-ndjson")
		}
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		answer, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("POST %s: %d %s", path, resp.StatusCode, answer)
		}
		var a struct{ IDs []string }
		json.Unmarshal(answer, &a)
		return a.IDs
	}
	now := time.Now().UTC().Truncate(time.Second)
	alerts := func(as ...webhook.AlertmanagerAlert) []byte {
		b, _ := json.Marshal(webhook.AlertmanagerPayload{Version: "4", GroupKey: "{}:{}", Status: "firing", Receiver: "aiops",
			GroupLabels: map[string]string{}, CommonLabels: map[string]string{}, CommonAnnotations: map[string]string{}, Alerts: as})
		return b
	}
	alert := func(name, service string, at time.Time) webhook.AlertmanagerAlert {
		labels := map[string]string{"alertname": name, "service": service, "severity": "critical"}
		return webhook.AlertmanagerAlert{Status: "firing", Labels: labels, Annotations: map[string]string{}, StartsAt: at, Fingerprint: event.AlertmanagerFingerprint(labels)}
	}
	st, err := store.Open(context.Background(), store.Config{DSN: dsn}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	count := func(q string, args ...any) uint64 {
		var n uint64
		if err := st.Conn.QueryRow(context.Background(), q, args...).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	waitUntil := func(what string, ok func() bool) {
		for deadline := time.Now().Add(time.Minute); !ok(); time.Sleep(200 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("not within a minute: %s", what)
			}
		}
	}

	// Run 1: an incident opens and is delivered; then a batch of logs
	// arrives and the pipeline is stopped at once, while it works on it.
	cancel, finished := start()
	post("/v1/alertmanager", alerts(alert("PaymentsDown", "payments", now.Add(-time.Minute)), alert("CheckoutErrors", "checkout", now.Add(-50*time.Second))))
	waitUntil("the incident delivered", func() bool { return len(recv.received()) > 0 })
	t.Logf("%5.1fs run 1: incident delivered", time.Since(began).Seconds())
	var logs bytes.Buffer
	for i := 0; i < 2000; i++ {
		fmt.Fprintf(&logs, `{"kind":"log","service":"payments","time":%q,"severity":"error","body":{"message":"charge %d failed: card declined"}}`+"\n",
			now.Add(time.Duration(i)*time.Millisecond).Format(time.RFC3339Nano), i)
	}
	ids := post("/v1/events", logs.Bytes())
	t.Logf("%5.1fs run 1: %d logs accepted, stopping", time.Since(began).Seconds(), len(ids))
	stop(cancel, finished)
	t.Logf("%5.1fs run 1 stopped", time.Since(began).Seconds())

	// Run 2 on the same data: a third alert of the same failure.
	cancel, finished = start()
	defer func() { stop(cancel, finished) }()
	t.Logf("%5.1fs run 2 ready", time.Since(began).Seconds())
	post("/v1/alertmanager", alerts(alert("WebErrors", "web", now.Add(-20*time.Second))))
	waitUntil("every accepted log stored", func() bool {
		return count("SELECT count() FROM logs FINAL WHERE derived = 0 AND has(?, id)", ids) == uint64(len(ids))
	})
	t.Logf("%5.1fs run 2: every accepted log stored", time.Since(began).Seconds())
	waitUntil("the web alert in the incident", func() bool {
		return count("SELECT count() FROM events FINAL WHERE kind = 'incident' AND position(body, 'WebErrors') > 0") > 0
	})
	if n := count("SELECT uniqExact(incident_id) FROM incident_history FINAL"); n != 1 {
		t.Errorf("%d incidents, want the one opened before the restart", n)
	}
	if n := count("SELECT count() FROM logs FINAL WHERE derived = 0 AND service = 'payments'"); n != uint64(len(ids)) {
		t.Errorf("%d raw logs stored, want the %d accepted", n, len(ids))
	}
	waitUntil("a notification after the restart", func() bool {
		for _, h := range recv.received() {
			if strings.Contains(string(h.Payload), "web") {
				return true
			}
		}
		return false
	})
	t.Logf("%5.1fs run 2: everything stored and delivered", time.Since(began).Seconds())
	seen := map[string]int{}
	opened := 0
	for _, h := range recv.received() {
		seen[h.WebhookID]++
		if h.Transition == "opened" {
			opened++
		}
	}
	for id, n := range seen {
		if n > 1 {
			t.Errorf("webhook-id %s delivered %d times", id, n)
		}
	}
	if opened != 1 {
		t.Errorf("%d opened notifications, want 1: the receiver's first page of the incident reads as its opening, and only the first: %+v", opened, recv.received())
	}
}
