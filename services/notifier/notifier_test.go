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
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/correlate"
	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/pkg/notify/webhook"
	"github.com/aiops-dev/aiops/pkg/stage"
	"github.com/aiops-dev/aiops/pkg/stage/stagetest"
)

var t0 = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

// receiver is a webhook endpoint that answers from a script (then 200) and
// records what it got.
type receiver struct {
	mu     sync.Mutex
	script []int
	got    []*http.Request
	bodies [][]byte
	srv    *httptest.Server
}

func newReceiver(t *testing.T, script ...int) *receiver {
	r := &receiver{script: script}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.got = append(r.got, req)
		r.bodies = append(r.bodies, body)
		code := 200
		if len(r.script) > 0 {
			code, r.script = r.script[0], r.script[1:]
		}
		r.mu.Unlock()
		w.WriteHeader(code)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) requests() ([]*http.Request, [][]byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*http.Request(nil), r.got...), append([][]byte(nil), r.bodies...)
}

const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// rig writes an Alertmanager configuration routing team=dba to a signed
// aiops webhook and everything else to an Alertmanager-style webhook, and
// runs the notifier on the stage runtime.
func rig(t *testing.T, dba, rest *receiver) *stagetest.Harness {
	t.Helper()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "secret"), []byte(secret+"\n"), 0o600)
	routes := filepath.Join(dir, "alertmanager.yml")
	os.WriteFile(routes, []byte(`
route:
  receiver: everyone
  group_by: [service]
  routes:
  - matchers: [team="dba"]
    receiver: dba-oncall
receivers:
- name: everyone
  webhook_configs:
  - url: `+rest.srv.URL+`
- name: dba-oncall
  aiops_webhook_configs:
  - url: `+dba.srv.URL+`
    secret_file: secret
`), 0o600)
	noSleep := func(ctx context.Context, d time.Duration) error { return ctx.Err() }
	proc, err := NewProcessor(Config{Routes: routes}, zerolog.Nop(), webhook.WithClock(time.Now, noSleep))
	if err != nil {
		t.Fatal(err)
	}
	records = stagetest.NewPublisher()
	proc.WithRecords(records)
	return stagetest.Start(t, proc, stage.Config{Name: "notifier"})
}

// records holds the delivery records of the last rig.
var records *stagetest.Publisher

// incident makes the opened incident event of a database failure with its
// dependents, as the correlator publishes it.
func incident(t *testing.T, service string) *event.Envelope {
	t.Helper()
	cat, err := correlate.ParseCatalog([]byte("services:\n  web: {team: storefront, depends_on: [payments-db]}\n  payments-db: {team: dba}\n  search: {team: discovery}\n"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := correlate.New(correlate.Config{}, cat)
	if err != nil {
		t.Fatal(err)
	}
	ups := c.Observe(correlate.Signal{Kind: correlate.SignalAlert, Fingerprint: "fp-" + service, Service: service, Name: "HighLatency",
		Severity: event.SeverityCritical, Time: t0, EventID: event.DerivedID(t0, service)})
	e, err := correlate.Envelope(ups[0], t0)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// An incident of the dba team reaches the dba receiver, signed as the
// Standard Webhooks specification says, with the aiops payload; retries of
// a 5xx carry the same webhook-id; a redelivery of the incident event sends
// nothing again to a receiver that answered 2xx.
func TestDeliversSignedAndRetried(t *testing.T) {
	dba, rest := newReceiver(t, 503, 502), newReceiver(t)
	h := rig(t, dba, rest)
	e := incident(t, "payments-db")
	if r := h.Feed(e)[0]; r.Outcome != stagetest.Acked {
		t.Fatalf("%v %v", r.Outcome, r.Err)
	}
	got, bodies := dba.requests()
	if len(got) != 3 {
		t.Fatalf("dba receiver got %d requests, want 3 (two 5xx, then 200)", len(got))
	}
	key, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	for i, req := range got {
		if req.Header.Get("webhook-id") != got[0].Header.Get("webhook-id") {
			t.Fatalf("attempt %d has another webhook-id", i+1)
		}
		if err := webhook.Verify([][]byte{key}, req.Header, bodies[i], time.Now(), time.Minute); err != nil {
			t.Fatalf("attempt %d: signature: %v", i+1, err)
		}
	}
	var payload map[string]any
	if err := json.Unmarshal(bodies[2], &payload); err != nil || payload["version"] != webhook.GenericVersion {
		t.Fatalf("payload %s: %v", bodies[2], err)
	}
	if n, _ := rest.requests(); len(n) != 0 {
		t.Fatalf("the default receiver got %d requests for a dba incident", len(n))
	}
	h.Feed(e) // redelivered
	if again, _ := dba.requests(); len(again) != 3 {
		t.Fatalf("a redelivered incident event was sent again: %d requests", len(again))
	}
	// Every attempt is a webhook_delivery event for the writer's table.
	var codes []int
	for _, r := range records.Events(t) {
		var b event.WebhookDeliveryBody
		if err := r.DecodeBody(&b); err != nil {
			t.Fatal(err)
		}
		if r.Kind != event.KindWebhookDelivery || b.Receiver != "dba-oncall" || b.IdempotencyKey != got[0].Header.Get("webhook-id") || r.Links[0] != e.ID {
			t.Fatalf("record %+v of %s", b, r.Kind)
		}
		codes = append(codes, b.StatusCode)
	}
	if len(codes) != 3 || codes[0] != 503 || codes[1] != 502 || codes[2] != 200 {
		t.Fatalf("recorded status codes %v, want [503 502 200]", codes)
	}
}

// Other incidents go to the default route's Alertmanager-style webhook; a
// receiver that refuses (4xx) is not retried and the event is acked; one
// that cannot be reached fails the event, which comes again.
func TestRoutesAndFailures(t *testing.T) {
	dba, rest := newReceiver(t), newReceiver(t, 400)
	h := rig(t, dba, rest)
	if r := h.Feed(incident(t, "search"))[0]; r.Outcome != stagetest.Acked {
		t.Fatalf("a 4xx: %v %v, want acked (refused for good, not retried)", r.Outcome, r.Err)
	}
	got, bodies := rest.requests()
	if len(got) != 1 {
		t.Fatalf("default receiver got %d requests, want 1 (a 400 is not retried)", len(got))
	}
	var am struct {
		Version string `json:"version"`
		Status  string `json:"status"`
		Alerts  []struct {
			Labels map[string]string `json:"labels"`
		} `json:"alerts"`
	}
	if err := json.Unmarshal(bodies[0], &am); err != nil || am.Version != "4" || am.Status != "firing" || len(am.Alerts) == 0 {
		t.Fatalf("Alertmanager payload %s: %v", bodies[0], err)
	}
	rest.srv.Close() // unreachable now
	if r := h.Feed(incident(t, "web"))[0]; r.Outcome != stagetest.Naked {
		t.Fatalf("an unreachable receiver: %v, want naked (redelivered later)", r.Outcome)
	}
}

func TestConfigErrors(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "am.yml")
	os.WriteFile(bad, []byte("route: {receiver: x}\nreceivers:\n- name: x\n  email_configs: [{to: a@b.c}]\n"), 0o600)
	err := Config{Routes: bad}.Validate()
	if err == nil || !strings.Contains(err.Error(), "notifier.routes") || !strings.Contains(err.Error(), "email_configs is not supported") {
		t.Fatalf("%v", err)
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
}

// Routes match the alerts' own labels (a cluster here), and http_config's
// authorization reaches the receiver; a secret file that cannot be read
// fails the event (it comes again) rather than dropping the incident.
func TestLabelsAuthAndMissingSecret(t *testing.T) {
	eu := newReceiver(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "token"), []byte("s3cret\n"), 0o600)
	routes := filepath.Join(dir, "alertmanager.yml")
	os.WriteFile(routes, []byte(`
route:
  receiver: nobody
  routes:
  - matchers: [cluster="eu-1"]
    receiver: eu
  - matchers: [cluster="us-1"]
    receiver: us
receivers:
- name: nobody
- name: eu
  webhook_configs:
  - url: `+eu.srv.URL+`
    http_config:
      authorization: {credentials_file: token}
- name: us
  aiops_webhook_configs:
  - url: `+eu.srv.URL+`
    secret_file: missing.secret
`), 0o600)
	proc, err := NewProcessor(Config{Routes: routes}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	h := stagetest.Start(t, proc, stage.Config{Name: "notifier"})
	inCluster := func(cluster string) *event.Envelope {
		c, _ := correlate.New(correlate.Config{}, nil)
		ups := c.Observe(correlate.Signal{Kind: correlate.SignalAlert, Fingerprint: "fp-" + cluster, Service: "api", Name: "HighLatency",
			Time: t0, EventID: event.DerivedID(t0, cluster), Labels: map[string]string{"alertname": "HighLatency", "cluster": cluster}})
		e, _ := correlate.Envelope(ups[0], t0)
		return e
	}
	if r := h.Feed(inCluster("eu-1"))[0]; r.Outcome != stagetest.Acked {
		t.Fatalf("%v %v", r.Outcome, r.Err)
	}
	got, _ := eu.requests()
	if len(got) != 1 || got[0].Header.Get("Authorization") != "Bearer s3cret" {
		t.Fatalf("%d requests, Authorization %q; want one, with the bearer token from the file", len(got), got[0].Header.Get("Authorization"))
	}
	if r := h.Feed(inCluster("us-1"))[0]; r.Outcome != stagetest.Naked || !strings.Contains(r.Err.Error(), "secret_file") {
		t.Fatalf("a missing secret file: %v %v, want naked naming secret_file", r.Outcome, r.Err)
	}
}
