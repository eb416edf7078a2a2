package notifier

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/correlate"
	"github.com/aiops-dev/aiops/pkg/errs"
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
  group_wait: 0s
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
	records, lastProc = stagetest.NewPublisher(), proc
	proc.WithRecords(records)
	return stagetest.Start(t, proc, stage.Config{Name: "notifier", TickEvery: time.Second})
}

// records holds the delivery records of the last rig (or start), lastProc
// its processor.
var (
	records  *stagetest.Publisher
	lastProc *Processor
)

// sendHeld sends e and waits until proc tried its notifications: e must
// be held for another try (a receiver not reached), not settled.
func sendHeld(t *testing.T, h *stagetest.Harness, proc *Processor, e *event.Envelope) *stagetest.Held {
	t.Helper()
	held := h.Send(e)
	waitSent(t, proc)
	if r, settled := held.Result(); settled {
		t.Fatalf("incident event %s settled %v %v, want it held for another try", e.ID, r.Outcome, r.Err)
	}
	return held
}

// retryHeld ticks proc past the next try of what it holds and waits for
// the tries.
func retryHeld(t *testing.T, h *stagetest.Harness, proc *Processor) {
	t.Helper()
	if err := h.Tick(time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	waitSent(t, proc)
}

// resultOf is held's result, which must have come.
func resultOf(t *testing.T, held *stagetest.Held) stagetest.Result {
	t.Helper()
	r, ok := held.Result()
	if !ok {
		t.Fatal("the incident event is still held")
	}
	return r
}

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
	// The payload's key is the webhook-id: a receiver deduplicating on
	// either sees one key.
	if data, _ := payload["data"].(map[string]any); data["idempotency_key"] != got[0].Header.Get("webhook-id") {
		t.Fatalf("data.idempotency_key %v, webhook-id %s: want the same", data["idempotency_key"], got[0].Header.Get("webhook-id"))
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
// receiver that refuses (4xx) is not retried and the event goes to the
// dead letters (for aiops notify replay once the receiver is fixed); one
// that cannot be reached holds the event, tried again (outage_test.go).
func TestRoutesAndFailures(t *testing.T) {
	dba, rest := newReceiver(t), newReceiver(t, 400)
	h := rig(t, dba, rest)
	if r := h.Feed(incident(t, "search"))[0]; r.Outcome != stagetest.DeadLettered || !strings.Contains(r.Err.Error(), "400") {
		t.Fatalf("a 4xx: %v %v, want dead-lettered with the reason (refused for good, not retried)", r.Outcome, r.Err)
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
	sendHeld(t, h, lastProc, incident(t, "web"))
}

func TestConfigErrors(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "am.yml")
	os.WriteFile(bad, []byte("route: {receiver: x, group_wait: 0s}\nreceivers:\n- name: x\n  email_configs: [{to: a@b.c}]\n"), 0o600)
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
// holds the event, tried again, rather than dropping the incident: it
// goes out once the file is there.
func TestLabelsAuthAndMissingSecret(t *testing.T) {
	eu := newReceiver(t)
	dir := t.TempDir()
	// Blank lines after the token, as an editor leaves them, are no part
	// of it (Alertmanager trims them too).
	os.WriteFile(filepath.Join(dir, "token"), []byte("s3cret\n\n  \n"), 0o600)
	routes := filepath.Join(dir, "alertmanager.yml")
	os.WriteFile(routes, []byte(`
route:
  receiver: nobody
  group_wait: 0s
  routes:
  - matchers: [cluster="eu-1"]
    receiver: eu
  - matchers: [cluster="us-1"]
    receiver: us
  - matchers: [cluster="ap-1"]
    receiver: ap
receivers:
- name: nobody
- name: ap
  webhook_configs:
  - url: `+strings.Replace(eu.srv.URL, "://", "://bot:pa%40ss@", 1)+`
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
	h := stagetest.Start(t, proc, stage.Config{Name: "notifier", TickEvery: time.Second})
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
	// A URL with a user and password, which Alertmanager accepts, sends
	// them as basic auth, not in the URL.
	if r := h.Feed(inCluster("ap-1"))[0]; r.Outcome != stagetest.Acked {
		t.Fatalf("receiver whose URL holds a user: %v %v, want acked", r.Outcome, r.Err)
	}
	got, _ = eu.requests()
	if user, pass, ok := got[1].BasicAuth(); len(got) != 2 || !ok || user != "bot" || pass != "pa@ss" {
		t.Fatalf("%d requests, basic auth of the second %q %q %v; want the URL's user bot and password pa@ss", len(got), user, pass, ok)
	}
	held := sendHeld(t, h, proc, inCluster("us-1"))
	if got, _ := eu.requests(); len(got) != 2 {
		t.Fatalf("%d requests, want none sent without its secret", len(got)-2)
	}
	os.WriteFile(filepath.Join(dir, "missing.secret"), []byte(secret+"\n"), 0o600)
	retryHeld(t, h, proc)
	if r := resultOf(t, held); r.Outcome != stagetest.Acked {
		t.Fatalf("once the secret file is there: %v %v, want acked", r.Outcome, r.Err)
	}
	if got, _ := eu.requests(); len(got) != 3 || got[2].Header.Get("webhook-signature") == "" {
		t.Fatalf("%d requests, want the held one sent, signed", len(got))
	}
}

// call is one request a fake API got.
type call struct {
	Method, Path, Query string
	Header              http.Header
	Body                []byte
}

// answer is what a fake API answers; hang holds the request until the
// client gives up (a timeout).
type answer struct {
	code   int
	header map[string]string
	body   string
	hang   bool
}

// fakeAPI is a real HTTP server whose answers a test scripts, recording
// every request.
type fakeAPI struct {
	mu    sync.Mutex
	calls []call
	srv   *httptest.Server
}

func newFakeAPI(t *testing.T, handle func(c call) answer) *fakeAPI {
	f := &fakeAPI{}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		c := call{Method: req.Method, Path: req.URL.Path, Query: req.URL.RawQuery, Header: req.Header.Clone(), Body: body}
		f.mu.Lock()
		f.calls = append(f.calls, c)
		a := handle(c)
		f.mu.Unlock()
		if a.hang {
			<-req.Context().Done()
			return
		}
		for k, v := range a.header {
			w.Header().Set(k, v)
		}
		if a.code == 0 {
			a.code = 200
		}
		w.WriteHeader(a.code)
		io.WriteString(w, a.body)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeAPI) got() []call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]call(nil), f.calls...)
}

// sleeps records the waits of the delivery client, which does not wait.
type sleeps struct {
	mu sync.Mutex
	d  []time.Duration
}

func (s *sleeps) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.d = append(s.d, d)
	s.mu.Unlock()
	return ctx.Err()
}

// start runs a notifier on the Alertmanager configuration yml, written in
// dir beside the files a test put there, with a 300ms attempt timeout and
// waits recorded instead of slept.
func start(t *testing.T, dir, yml string) (*stagetest.Harness, *sleeps) {
	t.Helper()
	routes := filepath.Join(dir, "alertmanager.yml")
	if err := os.WriteFile(routes, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	s := &sleeps{}
	proc, err := NewProcessor(Config{Routes: routes, Delivery: DeliveryConfig{Config: webhook.Config{Timeout: 300 * time.Millisecond}}}, zerolog.Nop(),
		webhook.WithClock(time.Now, s.sleep), webhook.WithJitter(func() float64 { return 0.5 }))
	if err != nil {
		t.Fatal(err)
	}
	records, lastProc = stagetest.NewPublisher(), proc
	proc.WithRecords(records)
	return stagetest.Start(t, proc, stage.Config{Name: "notifier", TickEvery: time.Second}), s
}

// recorded lists the delivery records of the last notifier started:
// "receiver key-suffix status" per attempt, the suffix being what follows
// the 26 characters of the notification's key (a ticketing step).
func recorded(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, r := range records.Events(t) {
		var b event.WebhookDeliveryBody
		if err := r.DecodeBody(&b); err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%s %s %d", b.Receiver, b.IdempotencyKey[26:], b.StatusCode))
	}
	return out
}

// lifecycle is the opened, acknowledged and resolved events of one
// critical incident of payments-db (team dba), as the correlator publishes
// them.
func lifecycle(t *testing.T) (opened, acked, resolved *event.Envelope) {
	t.Helper()
	cat, err := correlate.ParseCatalog([]byte("services:\n  payments-db: {team: dba}\n"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := correlate.New(correlate.Config{}, cat)
	if err != nil {
		t.Fatal(err)
	}
	ups := c.Observe(correlate.Signal{Kind: correlate.SignalAlert, Fingerprint: "fp-db", Service: "payments-db", Name: "DBDown",
		Severity: event.SeverityCritical, Time: t0, EventID: event.DerivedID(t0, "db")})
	envelope := func(u correlate.Update, err error) *event.Envelope {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		e, err := correlate.Envelope(u, u.Time)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	opened = envelope(ups[0], nil)
	id := ups[0].State.IncidentID
	acked = envelope(c.Apply(correlate.Command{IncidentID: id, Action: "ack", By: "alice", Time: t0.Add(time.Minute)}))
	resolved = envelope(c.Apply(correlate.Command{IncidentID: id, Action: "resolve", By: "alice", Time: t0.Add(10 * time.Minute)}))
	return opened, acked, resolved
}

func feedAcked(t *testing.T, h *stagetest.Harness, e *event.Envelope) {
	t.Helper()
	if r := h.Feed(e)[0]; r.Outcome != stagetest.Acked {
		t.Fatalf("incident event %s: %v %v, want acked", e.ID, r.Outcome, r.Err)
	}
}

func jsonOf(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return m
}

// PagerDuty: trigger, acknowledge and resolve of one incident carry one
// dedup_key (the incident id); 5xx are retried with backoff, a 429 after
// its Retry-After, each retry with the webhook-id of its first attempt;
// redelivered incident events send nothing again.
func TestPagerDutyLifecycle(t *testing.T) {
	n := 0
	pd := newFakeAPI(t, func(c call) answer {
		n++
		switch n {
		case 1, 2: // the trigger: two 5xx
			return answer{code: 503}
		case 4: // the acknowledge: throttled
			return answer{code: 429, header: map[string]string{"Retry-After": "7"}}
		}
		return answer{code: 202, body: `{"status":"success","dedup_key":"x"}`}
	})
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "pd.key"), []byte("R0UT1NGKEY\n"), 0o600)
	h, slept := start(t, dir, `
route: {receiver: pager, group_wait: 0s}
receivers:
- name: pager
  pagerduty_configs:
  - routing_key_file: `+filepath.Join(dir, "pd.key")+`
    url: `+pd.srv.URL+`/v2/enqueue
    description: '{{ .Service }}: {{ .Title }}'
    details: {owner_team: '{{ .Team }}'}
    links: [{href: 'https://grafana.example.com/d/db', text: dashboard}]
`)
	opened, acked, resolved := lifecycle(t)
	for _, e := range []*event.Envelope{opened, acked, resolved} {
		feedAcked(t, h, e)
	}
	calls := pd.got()
	if len(calls) != 6 {
		t.Fatalf("%d requests, want 6: trigger 503, 503, 202; acknowledge 429, 202; resolve 202", len(calls))
	}
	wantActions := []string{"trigger", "trigger", "trigger", "acknowledge", "acknowledge", "resolve"}
	var id string
	for i, c := range calls {
		m := jsonOf(t, c.Body)
		if c.Method != "POST" || c.Path != "/v2/enqueue" || m["event_action"] != wantActions[i] || m["routing_key"] != "R0UT1NGKEY" {
			t.Fatalf("request %d: %s %s %s", i+1, c.Method, c.Path, c.Body)
		}
		if i == 0 {
			id = m["dedup_key"].(string)
		}
		if m["dedup_key"] != id || id == "" {
			t.Fatalf("request %d: dedup_key %v, want %q on every transition", i+1, m["dedup_key"], id)
		}
		if c.Header.Get("webhook-signature") != "" {
			t.Fatalf("request %d is signed: PagerDuty has no secret", i+1)
		}
	}
	for _, same := range [][]int{{0, 1, 2}, {3, 4}} {
		for _, i := range same[1:] {
			if calls[i].Header.Get("webhook-id") != calls[same[0]].Header.Get("webhook-id") {
				t.Fatalf("request %d: a retry with another webhook-id", i+1)
			}
		}
	}
	if calls[0].Header.Get("webhook-id") == calls[3].Header.Get("webhook-id") || calls[3].Header.Get("webhook-id") == calls[5].Header.Get("webhook-id") {
		t.Fatal("two transitions share a webhook-id")
	}
	p := jsonOf(t, calls[2].Body)["payload"].(map[string]any)
	if !strings.HasPrefix(p["summary"].(string), "payments-db: ") || p["severity"] != "critical" ||
		p["custom_details"].(map[string]any)["owner_team"] != "dba" {
		t.Fatalf("trigger payload %v", p)
	}
	if links := jsonOf(t, calls[2].Body)["links"].([]any); links[len(links)-1].(map[string]any)["text"] != "dashboard" {
		t.Fatalf("links %v", links)
	}
	// Backoff 500ms then 1s, each halved by the jitter; then Retry-After.
	want := []time.Duration{250 * time.Millisecond, 500 * time.Millisecond, 7 * time.Second}
	if fmt.Sprint(slept.d) != fmt.Sprint(want) {
		t.Fatalf("waits %v, want %v", slept.d, want)
	}
	// Every attempt is a webhook_delivery record.
	if got, want := recorded(t), []string{"pager  503", "pager  503", "pager  202", "pager  429", "pager  202", "pager  202"}; !slices.Equal(got, want) {
		t.Fatalf("records %q, want %q", got, want)
	}
	for _, e := range []*event.Envelope{opened, acked, resolved} {
		feedAcked(t, h, e) // redelivered
	}
	if again := pd.got(); len(again) != 6 {
		t.Fatalf("redelivered incident events were sent again: %d requests", len(again))
	}
}

// fakeJira is a Jira REST API v2 with one project: issues, labels, a
// search by label, comments and a workflow with Done and Reopen.
type fakeJira struct {
	issues     map[string]*fakeIssue // by key
	failSearch int                   // the next searches answered 500
}

type fakeIssue struct {
	labels   []string
	done     bool
	comments []string // bodies, oldest first
}

var labelInJQL = regexp.MustCompile(`labels = "([^"]+)"`)

func (j *fakeJira) handle(c call) answer {
	switch {
	case c.Method == "POST" && c.Path == "/rest/api/2/search":
		if j.failSearch > 0 {
			j.failSearch--
			return answer{code: 500}
		}
		var q struct {
			JQL string `json:"jql"`
		}
		json.Unmarshal(c.Body, &q)
		m := labelInJQL.FindStringSubmatch(q.JQL)
		var found []string
		for key, is := range j.issues {
			if m != nil && slices.Contains(is.labels, m[1]) {
				cat := "new"
				if is.done {
					cat = "done"
				}
				found = append(found, fmt.Sprintf(`{"key":%q,"fields":{"status":{"statusCategory":{"key":%q}}}}`, key, cat))
			}
		}
		return answer{body: `{"issues":[` + strings.Join(found, ",") + `]}`}
	case c.Method == "POST" && c.Path == "/rest/api/2/issue":
		var is struct {
			Fields struct {
				Labels []string `json:"labels"`
			} `json:"fields"`
		}
		json.Unmarshal(c.Body, &is)
		key := fmt.Sprintf("OPS-%d", len(j.issues)+1)
		j.issues[key] = &fakeIssue{labels: is.Fields.Labels}
		return answer{code: 201, body: fmt.Sprintf(`{"id":"1000%d","key":%q}`, len(j.issues), key)}
	case c.Method == "POST" && strings.HasSuffix(c.Path, "/comment"):
		is := j.issues[strings.Split(c.Path, "/")[5]]
		var cm struct {
			Body string `json:"body"`
		}
		json.Unmarshal(c.Body, &cm)
		is.comments = append(is.comments, cm.Body)
		return answer{code: 201, body: fmt.Sprintf(`{"id":"%d"}`, len(is.comments))}
	case c.Method == "GET" && strings.HasSuffix(c.Path, "/comment"):
		is := j.issues[strings.Split(c.Path, "/")[5]]
		var page []string
		for i := len(is.comments) - 1; i >= 0; i-- { // newest first
			b, _ := json.Marshal(is.comments[i])
			page = append(page, fmt.Sprintf(`{"id":"%d","body":%s}`, i+1, b))
		}
		return answer{body: fmt.Sprintf(`{"startAt":0,"maxResults":50,"total":%d,"comments":[%s]}`, len(page), strings.Join(page, ","))}
	case c.Method == "GET" && strings.Count(c.Path, "/") == 5 && j.issues[strings.Split(c.Path, "/")[5]] != nil: // an issue's status
		cat := "new"
		if j.issues[strings.Split(c.Path, "/")[5]].done {
			cat = "done"
		}
		return answer{body: fmt.Sprintf(`{"fields":{"status":{"statusCategory":{"key":%q}}}}`, cat)}
	case c.Method == "GET" && strings.HasSuffix(c.Path, "/transitions"):
		return answer{body: `{"transitions":[{"id":"21","name":"In Progress"},{"id":"31","name":"Done"},{"id":"41","name":"Reopen"}]}`}
	case c.Method == "POST" && strings.HasSuffix(c.Path, "/transitions"):
		key := strings.Split(c.Path, "/")[5]
		j.issues[key].done = strings.Contains(string(c.Body), `"31"`)
		return answer{code: 204}
	}
	return answer{code: 404}
}

func steps(calls []call) []string {
	var out []string
	for _, c := range calls {
		out = append(out, c.Method+" "+c.Path)
	}
	return out
}

// Jira: the incident's issue is created when it opens (with the label that
// names it), commented on when acknowledged, moved through Done when it
// resolves; a notifier restarted between finds the issue by its label and
// does not open a second one; a redelivered notification finds its
// comment by the key on the comment's last line and writes no second.
func TestJiraLifecycle(t *testing.T) {
	jira := &fakeJira{issues: map[string]*fakeIssue{}, failSearch: 1}
	api := newFakeAPI(t, jira.handle)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "jira.token"), []byte("t0ken\n"), 0o600)
	yml := `
route: {receiver: tickets, group_wait: 0s}
receivers:
- name: tickets
  jira_configs:
  - api_url: ` + api.srv.URL + `/rest/api/2
    project: OPS
    issue_type: Incident
    summary: '[{{ upper .Severity }}] {{ .Title }}'
    labels: [aiops, 'team-{{ .Team }}']
    priority: '{{ if eq .Severity "critical" }}Highest{{ else }}High{{ end }}'
    resolve_transition: Done
    reopen_transition: Reopen
    http_config:
      basic_auth: {username: bot@example.com, password_file: jira.token}
`
	h, _ := start(t, dir, yml)
	opened, acked, resolved := lifecycle(t)
	feedAcked(t, h, opened)
	h2, _ := start(t, dir, yml) // a restart: nothing in memory
	feedAcked(t, h2, acked)
	h3, _ := start(t, dir, yml) // it crashed before acking: the event comes again
	feedAcked(t, h3, acked)
	feedAcked(t, h3, resolved)

	calls := api.got()
	want := []string{
		"POST /rest/api/2/search", "POST /rest/api/2/search", "POST /rest/api/2/issue", // opened: a 500, then create
		"POST /rest/api/2/search", "GET /rest/api/2/issue/OPS-1/comment", "POST /rest/api/2/issue/OPS-1/comment", // acknowledged, after the restart
		"POST /rest/api/2/search", "GET /rest/api/2/issue/OPS-1/comment", // acknowledged again, after a crash: commented already
		// resolved by hand: a comment naming who, then the transition
		"POST /rest/api/2/search", "GET /rest/api/2/issue/OPS-1/comment", "POST /rest/api/2/issue/OPS-1/comment",
		"GET /rest/api/2/issue/OPS-1/transitions", "POST /rest/api/2/issue/OPS-1/transitions",
	}
	if got := steps(calls); !slices.Equal(got, want) {
		t.Fatalf("requests\n%q\nwant\n%q", got, want)
	}
	if len(jira.issues) != 1 || !jira.issues["OPS-1"].done || len(jira.issues["OPS-1"].comments) != 2 {
		t.Fatalf("issues %v: want one, done, with two comments (acknowledged, resolved)", jira.issues)
	}
	create := jsonOf(t, calls[2].Body)["fields"].(map[string]any)
	var inc struct {
		IncidentID string `json:"incident_id"`
		Title      string `json:"title"`
	}
	opened.DecodeBody(&inc)
	if create["summary"] != "[CRITICAL] "+inc.Title || fmt.Sprint(create["labels"]) != fmt.Sprintf("[aiops aiops-%s team-dba]", inc.IncidentID) ||
		create["project"].(map[string]any)["key"] != "OPS" || create["issuetype"].(map[string]any)["name"] != "Incident" ||
		create["priority"].(map[string]any)["name"] != "Highest" || !strings.Contains(create["description"].(string), "payments-db") {
		t.Fatalf("create %s", calls[2].Body)
	}
	if q := jsonOf(t, calls[0].Body)["jql"]; q != fmt.Sprintf(`project = "OPS" AND labels = "aiops-%s" ORDER BY created DESC`, inc.IncidentID) {
		t.Fatalf("jql %v", q)
	}
	key := strings.TrimSuffix(calls[5].Header.Get("webhook-id"), "-comment")
	if c := jsonOf(t, calls[5].Body)["body"].(string); !strings.Contains(c, "acknowledged") || !strings.HasSuffix(c, "\n\naiops-notification: "+key) {
		t.Fatalf("comment %q: want the transition, and last the line aiops-notification: %s", c, key)
	}
	if q, _ := url.ParseQuery(calls[4].Query); q.Get("orderBy") != "-created" || q.Get("maxResults") != "50" {
		t.Fatalf("comments read with %q, want the newest 50", calls[4].Query)
	}
	if c := jsonOf(t, calls[10].Body)["body"].(string); !strings.Contains(c, "Resolved by alice.") {
		t.Fatalf("resolve's comment %q: want who resolved it", c)
	}
	if tr := string(calls[12].Body); tr != `{"transition":{"id":"31"}}` {
		t.Fatalf("transition %s", tr)
	}
	for i, c := range calls {
		if u, p, ok := (&http.Request{Header: c.Header}).BasicAuth(); !ok || u != "bot@example.com" || p != "t0ken" {
			t.Fatalf("request %d: basic auth %q %q %v", i+1, u, p, ok)
		}
	}
	if calls[0].Header.Get("webhook-id") != calls[1].Header.Get("webhook-id") {
		t.Fatal("the retried search has another webhook-id")
	}
	// The last notifier's records: one per step.
	if got, want := recorded(t), []string{
		"tickets -search 200", "tickets -comments 200", "tickets -search 200", "tickets -comments 200", "tickets -comment 201",
		"tickets -transitions 200", "tickets -transition 204",
	}; !slices.Equal(got, want) {
		t.Fatalf("records %q, want %q", got, want)
	}
}

// fakeServiceNow is the Table API of one table: records found by
// correlation_id, created and updated, their work notes kept in
// sys_journal_field.
type fakeServiceNow struct {
	records map[string]map[string]any // by sys_id
	notes   map[string][]string       // by sys_id, oldest first
}

func (s *fakeServiceNow) handle(c call) answer {
	const table = "/api/now/table/incident"
	switch {
	case c.Method == "GET" && c.Path == table:
		q, _ := url.ParseQuery(c.Query)
		corr := strings.TrimPrefix(strings.Split(q.Get("sysparm_query"), "^")[0], "correlation_id=")
		var found []string
		for id, r := range s.records {
			if r["correlation_id"] == corr {
				found = append(found, fmt.Sprintf(`{"sys_id":%q,"number":"INC0010001","state":%q}`, id, r["state"]))
			}
		}
		return answer{body: `{"result":[` + strings.Join(found, ",") + `]}`}
	case c.Method == "POST" && c.Path == table:
		var r map[string]any
		json.Unmarshal(c.Body, &r)
		id := fmt.Sprintf("%032x", len(s.records)+1)
		s.records[id] = r
		return answer{code: 201, body: fmt.Sprintf(`{"result":{"sys_id":%q,"number":"INC0010001"}}`, id)}
	case c.Method == "PATCH" && strings.HasPrefix(c.Path, table+"/"):
		r := s.records[strings.TrimPrefix(c.Path, table+"/")]
		if r == nil {
			return answer{code: 404}
		}
		var upd map[string]any
		json.Unmarshal(c.Body, &upd)
		for k, v := range upd {
			r[k] = v
		}
		if note, ok := upd["work_notes"].(string); ok {
			if s.notes == nil {
				s.notes = map[string][]string{}
			}
			id := strings.TrimPrefix(c.Path, table+"/")
			s.notes[id] = append(s.notes[id], note)
		}
		return answer{body: `{"result":{}}`}
	case c.Method == "GET" && c.Path == "/api/now/table/sys_journal_field":
		q, _ := url.ParseQuery(c.Query)
		id := strings.TrimPrefix(strings.Split(q.Get("sysparm_query"), "^")[0], "element_id=")
		var found []string
		for i := len(s.notes[id]) - 1; i >= 0; i-- { // newest first
			b, _ := json.Marshal(s.notes[id][i])
			found = append(found, `{"value":`+string(b)+`}`)
		}
		return answer{body: `{"result":[` + strings.Join(found, ",") + `]}`}
	}
	return answer{code: 400}
}

// ServiceNow: a record is created when the incident opens (correlation_id
// the incident id, urgency and impact from its severity, state New), then
// PATCHed to In Progress and to Resolved with close code and notes. A
// PATCH whose answer was lost is not sent again blindly: the notification
// is held and tried again, and its work note, found in the journal by the
// key on its last line, says the update was made.
func TestServiceNowLifecycle(t *testing.T) {
	sn := &fakeServiceNow{records: map[string]map[string]any{}}
	hung := false
	api := newFakeAPI(t, func(c call) answer {
		a := sn.handle(c)
		if c.Method == "PATCH" && !hung {
			hung = true
			return answer{hang: true} // applied, the answer lost
		}
		return a
	})
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "sn.pw"), []byte("pa55\n"), 0o600)
	h, _ := start(t, dir, `
route: {receiver: itsm, group_wait: 0s}
receivers:
- name: itsm
  servicenow_configs:
  - api_url: `+api.srv.URL+`
    assignment_group: database-ops
    close_notes: 'Closed by aiops: {{ .Title }}'
    http_config:
      basic_auth: {username: aiops, password_file: sn.pw}
`)
	opened, acked, resolved := lifecycle(t)
	feedAcked(t, h, opened)
	held := sendHeld(t, h, lastProc, acked) // an update whose answer was lost
	retryHeld(t, h, lastProc)
	if r := resultOf(t, held); r.Outcome != stagetest.Acked {
		t.Fatalf("the update tried again: %v %v, want acked", r.Outcome, r.Err)
	}
	feedAcked(t, h, resolved)
	const rec = "/api/now/table/incident/00000000000000000000000000000001"
	want := []string{"GET /api/now/table/incident", "POST /api/now/table/incident",
		"GET /api/now/table/incident", "GET /api/now/table/sys_journal_field", "PATCH " + rec, // the answer lost
		"GET /api/now/table/incident", "GET /api/now/table/sys_journal_field", // the note is there
		"GET /api/now/table/incident", "GET /api/now/table/sys_journal_field", "PATCH " + rec}
	calls := api.got()
	if got := steps(calls); !slices.Equal(got, want) {
		t.Fatalf("requests\n%q\nwant\n%q", got, want)
	}
	if len(sn.records) != 1 {
		t.Fatalf("%d records, want 1", len(sn.records))
	}
	var inc struct {
		IncidentID string `json:"incident_id"`
		Title      string `json:"title"`
	}
	opened.DecodeBody(&inc)
	created := jsonOf(t, calls[1].Body)
	if created["correlation_id"] != inc.IncidentID || created["state"] != "1" || created["urgency"] != "1" || created["impact"] != "1" ||
		created["assignment_group"] != "database-ops" || created["short_description"] != inc.Title {
		t.Fatalf("create %s", calls[1].Body)
	}
	key := strings.TrimSuffix(calls[4].Header.Get("webhook-id"), "-update")
	if ack := jsonOf(t, calls[4].Body); ack["state"] != "2" || !strings.Contains(ack["work_notes"].(string), "acknowledged") ||
		!strings.HasSuffix(ack["work_notes"].(string), "\n\naiops-notification: "+key) {
		t.Fatalf("acknowledge %s: want the transition, and last the line aiops-notification: %s", calls[4].Body, key)
	}
	if notes := sn.notes["00000000000000000000000000000001"]; len(notes) != 2 {
		t.Fatalf("work notes %q: want two, acknowledged and resolved", notes)
	}
	if q, _ := url.ParseQuery(calls[3].Query); q.Get("sysparm_query") != "element_id=00000000000000000000000000000001^element=work_notes^ORDERBYDESCsys_created_on" ||
		q.Get("sysparm_fields") != "value" || q.Get("sysparm_limit") != "50" {
		t.Fatalf("journal query %q", calls[3].Query)
	}
	if res := jsonOf(t, calls[9].Body); res["state"] != "6" || res["close_code"] != "Solved (Permanently)" || res["close_notes"] != "Closed by aiops: "+inc.Title {
		t.Fatalf("resolve %s", calls[9].Body)
	}
	if u, p, _ := (&http.Request{Header: calls[0].Header}).BasicAuth(); u != "aiops" || p != "pa55" {
		t.Fatalf("basic auth %q %q", u, p)
	}
	if q, _ := url.ParseQuery(calls[0].Query); q.Get("sysparm_query") != "correlation_id="+inc.IncidentID+"^ORDERBYDESCsys_created_on" {
		t.Fatalf("query %q", calls[0].Query)
	}
}

// Slack: the title and text templates replace the header and summary; a
// timed-out attempt is retried; resolved incidents are not sent unless
// send_resolved (false by default, as in Alertmanager).
func TestSlack(t *testing.T) {
	n := 0
	api := newFakeAPI(t, func(c call) answer {
		n++
		return answer{hang: n == 1, body: "ok"}
	})
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "slack.url"), []byte(api.srv.URL+"/services/T0/B0/XYZ\n"), 0o600)
	h, _ := start(t, dir, `
route: {receiver: chat, group_wait: 0s}
receivers:
- name: chat
  slack_configs:
  - api_url_file: `+filepath.Join(dir, "slack.url")+`
    channel: '#db-incidents'
    title: '{{ .Service }} is {{ .Status }}'
    text: 'Runbook: {{ default "none" .Runbook }} <b>'
`)
	opened, acked, resolved := lifecycle(t)
	for _, e := range []*event.Envelope{opened, acked, resolved} {
		feedAcked(t, h, e)
	}
	calls := api.got()
	if len(calls) != 3 || calls[0].Path != "/services/T0/B0/XYZ" {
		t.Fatalf("%q: want the opening twice (a timeout, then 200) and the acknowledgement, not the resolution", steps(calls))
	}
	m := jsonOf(t, calls[1].Body)
	blocks := m["blocks"].([]any)
	header := blocks[0].(map[string]any)["text"].(map[string]any)["text"]
	summary := blocks[1].(map[string]any)["text"].(map[string]any)["text"]
	if m["channel"] != "#db-incidents" || header != "payments-db is open" || summary != "Runbook: none &lt;b&gt;" {
		t.Fatalf("message %s", calls[1].Body)
	}
	if h := jsonOf(t, calls[2].Body)["blocks"].([]any)[0].(map[string]any)["text"].(map[string]any)["text"]; h != "payments-db is acknowledged" {
		t.Fatalf("acknowledgement header %v", h)
	}
}

// A custom template renders the body; a 400 is refused for good after one
// attempt (the event is acked, nothing retried), and a JSON template that
// renders invalid JSON never reaches the receiver.
func TestTemplateReceiver(t *testing.T) {
	n := 0
	api := newFakeAPI(t, func(c call) answer {
		n++
		if n == 1 {
			return answer{code: 400, body: `{"error":"unknown field"}`}
		}
		return answer{code: 204}
	})
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "secret"), []byte(secret+"\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "ticket.json.tmpl"), []byte(`{"ref": {{ json .ID }}, "what": {{ json (printf "%s %s" .Service .Transition) }}, "sev": {{ json (upper .Severity) }}}`), 0o600)
	h, _ := start(t, dir, `
route: {receiver: custom, group_wait: 0s}
receivers:
- name: custom
  aiops_template_configs:
  - url: `+api.srv.URL+`/tickets
    template_file: ticket.json.tmpl
    secret_file: secret
`)
	opened, acked, _ := lifecycle(t)
	if r := h.Feed(opened)[0]; r.Outcome != stagetest.DeadLettered { // 400: refused, not retried
		t.Fatalf("the refused opening: %v %v, want dead-lettered", r.Outcome, r.Err)
	}
	feedAcked(t, h, acked)
	calls := api.got()
	if len(calls) != 2 {
		t.Fatalf("%d requests, want 2: the opening once (400, not retried), the acknowledgement", len(calls))
	}
	var inc struct {
		IncidentID string `json:"incident_id"`
	}
	opened.DecodeBody(&inc)
	if got, want := string(calls[1].Body), `{"ref": "`+inc.IncidentID+`", "what": "payments-db acknowledged", "sev": "CRITICAL"}`; got != want {
		t.Fatalf("body %s\nwant %s", got, want)
	}
	key, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err := webhook.Verify([][]byte{key}, calls[1].Header, calls[1].Body, time.Now(), time.Minute); err != nil || calls[1].Header.Get("Content-Type") != "application/json" {
		t.Fatalf("signature %v, content type %q", err, calls[1].Header.Get("Content-Type"))
	}
}

// Templates are checked when the notifier starts: one written for
// Alertmanager's data, or that renders invalid JSON, is a configuration
// error naming its key.
func TestTemplateErrorsAtStart(t *testing.T) {
	for yml, want := range map[string]string{
		"slack_configs: [{api_url: 'http://127.0.0.1:1/', title: '{{ .CommonLabels.alertname }}'}]": `receivers[0] (x).slack_configs[0].title" line 1: at <.CommonLabels.alertname>: can't evaluate field CommonLabels`,
		"pagerduty_configs: [{routing_key: k, description: '{{ .Title'}]":                           `receivers[0] (x).pagerduty_configs[0].description" line 1: unclosed action`,
		"aiops_template_configs: [{url: 'http://127.0.0.1:1/', template: '{\"a\": {{ .Title }}}'}]": `receivers[0] (x).aiops_template_configs[0].template": output line 1 is not valid JSON`,
	} {
		routes := filepath.Join(t.TempDir(), "am.yml")
		os.WriteFile(routes, []byte("route: {receiver: x, group_wait: 0s}\nreceivers:\n- name: x\n  "+yml+"\n"), 0o600)
		_, err := NewProcessor(Config{Routes: routes}, zerolog.Nop())
		if err == nil || !strings.Contains(err.Error(), want) || !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s:\n%v\nwant an invalid configuration containing %q", yml, err, want)
		}
	}
}

// A webhook_config's max_alerts and timeout apply as in Alertmanager: at
// most max_alerts alerts listed, the rest counted in truncatedAlerts, and
// each attempt bounded by the entry's timeout rather than the delivery
// default. Payloads that list no alerts refuse max_alerts at start.
func TestWebhookMaxAlertsAndTimeout(t *testing.T) {
	few := newReceiver(t)
	done := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-done:
		}
	}))
	t.Cleanup(slow.Close)
	t.Cleanup(func() { close(done) }) // first: Close waits for the handlers
	dir := t.TempDir()
	routes := filepath.Join(dir, "alertmanager.yml")
	os.WriteFile(routes, []byte(`
route: {receiver: hooks, group_wait: 0s}
receivers:
- name: hooks
  webhook_configs:
  - url: `+few.srv.URL+`
    max_alerts: 1
  - url: `+slow.URL+`
    timeout: 50ms
`), 0o600)
	noSleep := func(ctx context.Context, d time.Duration) error { return ctx.Err() }
	proc, err := NewProcessor(Config{Routes: routes}, zerolog.Nop(), webhook.WithClock(time.Now, noSleep))
	if err != nil {
		t.Fatal(err)
	}
	recs := stagetest.NewPublisher()
	proc.WithRecords(recs)
	h := stagetest.Start(t, proc, stage.Config{Name: "notifier", TickEvery: time.Second})

	// An incident of two alerts: payments-db and web, which calls it.
	cat, err := correlate.ParseCatalog([]byte("services:\n  web: {depends_on: [payments-db]}\n  payments-db: {}\n"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := correlate.New(correlate.Config{}, cat)
	if err != nil {
		t.Fatal(err)
	}
	var last correlate.Update
	for i, svc := range []string{"payments-db", "web"} {
		at := t0.Add(time.Duration(i) * time.Second)
		ups := c.Observe(correlate.Signal{Kind: correlate.SignalAlert, Fingerprint: "fp-" + svc, Service: svc, Name: "HighLatency",
			Severity: event.SeverityCritical, Time: at, EventID: event.DerivedID(at, svc)})
		if len(ups) > 0 {
			last = ups[len(ups)-1]
		}
	}
	if ups := c.Advance(t0.Add(time.Minute)); len(ups) > 0 {
		last = ups[len(ups)-1] // the update naming both members
	}
	if len(last.State.Members) != 2 {
		t.Fatalf("the incident has %d members, want 2", len(last.State.Members))
	}
	e, err := correlate.Envelope(last, t0.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	sendHeld(t, h, proc, e) // the slow receiver timed out
	_, bodies := few.requests()
	if len(bodies) != 1 {
		t.Fatalf("max_alerts receiver got %d requests", len(bodies))
	}
	var am webhook.AlertmanagerPayload
	if err := json.Unmarshal(bodies[0], &am); err != nil {
		t.Fatal(err)
	}
	if len(am.Alerts) != 1 || am.TruncatedAlerts != 1 {
		t.Fatalf("max_alerts 1 of 2 members: %d alerts listed, truncatedAlerts %d", len(am.Alerts), am.TruncatedAlerts)
	}
	timedOut := 0
	for _, r := range recs.Events(t) {
		var b event.WebhookDeliveryBody
		if err := r.DecodeBody(&b); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(b.Error, "timed out after 50ms") {
			timedOut++
		}
	}
	if timedOut == 0 {
		t.Fatal("no attempt of the slow receiver timed out after its 50ms timeout")
	}

	// A timeout the stop's drain would cut is refused at start.
	long := filepath.Join(dir, "long.yml")
	os.WriteFile(long, []byte("route: {receiver: x, group_wait: 0s}\nreceivers:\n- name: x\n  webhook_configs: [{url: http://127.0.0.1:1/, timeout: 30s}]\n"), 0o600)
	if _, err := NewProcessor(Config{Routes: long}, zerolog.Nop()); err == nil || !strings.Contains(err.Error(), "timeout 30s: at most 15s") {
		t.Fatalf("a webhook timeout of 30s: %v", err)
	}
	if err := (Config{Delivery: DeliveryConfig{Config: webhook.Config{Timeout: 20 * time.Second}}}).Validate(); err == nil || !strings.Contains(err.Error(), "notifier.delivery.timeout") {
		t.Fatalf("a delivery timeout of 20s: %v", err)
	}
	for _, kind := range []string{"aiops_webhook_configs", "aiops_template_configs"} {
		bad := filepath.Join(dir, kind+".yml")
		extra := ""
		if kind == "aiops_template_configs" {
			extra = ", template: '{}'"
		}
		os.WriteFile(filepath.Join(dir, "secret"), []byte(secret+"\n"), 0o600)
		os.WriteFile(bad, []byte("route: {receiver: x, group_wait: 0s}\nreceivers:\n- name: x\n  "+kind+": [{url: http://127.0.0.1:1/, secret_file: secret, max_alerts: 3"+extra+"}]\n"), 0o600)
		if _, err := NewProcessor(Config{Routes: bad}, zerolog.Nop()); err == nil || !strings.Contains(err.Error(), "max_alerts") || !strings.Contains(err.Error(), kind) {
			t.Fatalf("%s with max_alerts: %v, want an error naming it", kind, err)
		}
	}
}

// An incident acknowledged within group_wait: its opening never went out,
// and PagerDuty ignores an acknowledge for a dedup_key it has no alert
// for, so a trigger goes first, then the acknowledge, each under its own
// webhook-id; the resolve then closes the alert. The opening, which the
// acknowledge stands for, is acked.
func TestPagerDutyAcknowledgedBeforeItWasNotified(t *testing.T) {
	pd := newFakeAPI(t, func(c call) answer { return answer{code: 202, body: `{"status":"success"}`} })
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "pd.key"), []byte("R0UT1NGKEY\n"), 0o600)
	h, _ := start(t, dir, `
route: {receiver: pager, group_wait: 5m}
receivers:
- name: pager
  pagerduty_configs:
  - routing_key_file: `+filepath.Join(dir, "pd.key")+`
    url: `+pd.srv.URL+`/v2/enqueue
`)
	opened, acked, resolved := lifecycle(t)
	held := h.Send(opened)
	if len(pd.got()) != 0 {
		t.Fatal("the opening went out within group_wait")
	}
	feedAcked(t, h, acked)
	if r, ok := held.Result(); !ok || r.Outcome != stagetest.Acked {
		t.Fatalf("the opening: %v %v, want acked with the acknowledgement", ok, r.Outcome)
	}
	feedAcked(t, h, resolved)
	var actions, ids []string
	for _, c := range pd.got() {
		m := jsonOf(t, c.Body)
		actions = append(actions, m["event_action"].(string))
		ids = append(ids, c.Header.Get("webhook-id"))
		var inc struct {
			IncidentID string `json:"incident_id"`
		}
		opened.DecodeBody(&inc)
		if m["dedup_key"] != inc.IncidentID {
			t.Fatalf("%s: dedup_key %v, want %s", m["event_action"], m["dedup_key"], inc.IncidentID)
		}
	}
	if want := []string{"trigger", "acknowledge", "resolve"}; !slices.Equal(actions, want) {
		t.Fatalf("PagerDuty got %v, want %v", actions, want)
	}
	if ids[0] != ids[1]+"-trigger" {
		t.Fatalf("webhook-ids %v: want the trigger's to be the acknowledgement's plus -trigger", ids)
	}

}

// A receiver's Retry-After holds its lane at most
// delivery.retry.max_retry_after (default 1m), however long it asks for.
func TestRetryAfterCappedByDefault(t *testing.T) {
	n := 0
	hook := newFakeAPI(t, func(c call) answer {
		if n++; n == 1 {
			return answer{code: 429, header: map[string]string{"Retry-After": "1000000"}}
		}
		return answer{code: 200}
	})
	h, slept := start(t, t.TempDir(), "route: {receiver: hook, group_wait: 0s}\nreceivers:\n- name: hook\n  webhook_configs:\n  - url: "+hook.srv.URL+"\n")
	feedAcked(t, h, incident(t, "search"))
	if want := []time.Duration{webhook.DefaultMaxRetryAfter}; len(hook.got()) != 2 || !slices.Equal(slept.d, want) {
		t.Fatalf("%d requests, waits %v; want 2, after %v", len(hook.got()), slept.d, want)
	}
}

// An incident of a storm, 200 alerts with some twenty labels each, makes
// payloads over max_body_bytes (256 KiB): they go out listing the members
// that fit, and count them all, instead of being refused for their size
// (the event dead-lettered, and again at every replay).
func TestStormIncidentFitsMaxBodyBytes(t *testing.T) {
	am, aiops := newReceiver(t), newReceiver(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "secret"), []byte(secret+"\n"), 0o600)
	routes := filepath.Join(dir, "alertmanager.yml")
	os.WriteFile(routes, []byte(`
route: {receiver: hooks, group_wait: 0s}
receivers:
- name: hooks
  webhook_configs:
  - url: `+am.srv.URL+`
  aiops_webhook_configs:
  - url: `+aiops.srv.URL+`
    secret_file: secret
`), 0o600)
	proc, err := NewProcessor(Config{Routes: routes}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	h := stagetest.Start(t, proc, stage.Config{Name: "notifier", TickEvery: time.Second})
	st := correlate.State{IncidentID: "01JPA9V3KX8Q6M1T2R3S4W5Y6Z", Status: "opened", State: "open", Revision: 1, OpenedAt: t0,
		Service: "checkout", Title: "storm", Severity: "critical", MemberCount: 200}
	for i := range 200 {
		labels := map[string]string{"alertname": "KubePodCrashLooping", "severity": "critical", "service": "checkout"}
		for j := range 18 {
			labels[fmt.Sprintf("label_%02d", j)] = fmt.Sprintf("value-%03d-%02d-abcdefghijklmnopqrstuvwxyz", i, j)
		}
		st.Members = append(st.Members, correlate.Member{Fingerprint: fmt.Sprintf("%016x", i), Kind: "alert", Service: "checkout",
			Name: "KubePodCrashLooping", Summary: "Pod checkout/checkout-abc is crash looping (restarts 5 in 10m); see runbook",
			Severity: "critical", Firing: true, FirstSeen: t0, LastSeen: t0, Count: 1, Labels: labels})
	}
	e, err := correlate.Envelope(correlate.Update{Transition: "opened", Time: t0, State: st}, t0)
	if err != nil {
		t.Fatal(err)
	}
	if r := h.Feed(e)[0]; r.Outcome != stagetest.Acked {
		t.Fatalf("storm incident: %v %v, want acked", r.Outcome, r.Err)
	}
	_, amBodies := am.requests()
	_, aiopsBodies := aiops.requests()
	if len(amBodies) != 1 || len(aiopsBodies) != 1 {
		t.Fatalf("%d and %d requests, want one to each receiver", len(amBodies), len(aiopsBodies))
	}
	var amp webhook.AlertmanagerPayload
	if err := json.Unmarshal(amBodies[0], &amp); err != nil {
		t.Fatal(err)
	}
	gen, err := webhook.ParseGeneric(aiopsBodies[0])
	if err != nil {
		t.Fatal(err)
	}
	max := webhook.DefaultMaxBodyBytes
	if len(amBodies[0]) > max || len(amp.Alerts) == 0 || len(amp.Alerts)+amp.TruncatedAlerts != 200 {
		t.Fatalf("alertmanager payload: %d bytes, %d alerts listed, truncatedAlerts %d; want at most %d bytes, listing some of the 200", len(amBodies[0]), len(amp.Alerts), amp.TruncatedAlerts, max)
	}
	if len(aiopsBodies[0]) > max || len(gen.Members) == 0 || len(gen.Members) == 200 || gen.MemberCount != 200 {
		t.Fatalf("aiops payload: %d bytes, %d members listed, member_count %d; want at most %d bytes, listing some of the 200", len(aiopsBodies[0]), len(gen.Members), gen.MemberCount, max)
	}
}

// A notifier whose lease ran out by its own clock (paused past its
// deadline) sends nothing: the next holder may have sent a newer state of
// the incident already. The notification is held, and goes back to the
// stream at the stop.
func TestNotifierWithoutItsLeaseSendsNothing(t *testing.T) {
	dba, rest := newReceiver(t), newReceiver(t)
	h := rig(t, dba, rest)
	var asked atomic.Int32
	lastProc.holds = func() bool { asked.Add(1); return false }
	held := h.Send(incident(t, "payments-db"))
	// The lane tries the notification at once (group_wait 0): wait until
	// it asked for the lease, or sent.
	for deadline := time.Now().Add(time.Minute); asked.Load() == 0; {
		if got, _ := dba.requests(); len(got) > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got, _ := dba.requests(); len(got) != 0 {
		t.Fatalf("without the lease the receiver got %d requests", len(got))
	}
	if err := h.Stop(); err != nil {
		t.Fatal(err)
	}
	if r, ok := held.Result(); !ok || r.Outcome == stagetest.Acked {
		t.Fatalf("the event after the stop: %+v (settled %v), want it given back", r, ok)
	}
}

// A lease that runs out while one integration of a receiver is tried
// stops the receiver's next integrations: they are held, not sent after
// the next holder may have sent a newer state.
func TestLeaseLostBetweenIntegrationsHoldsTheRest(t *testing.T) {
	var holds atomic.Bool
	holds.Store(true)
	second := newReceiver(t)
	first := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		holds.Store(false) // the lease runs out while this one answers
		w.WriteHeader(200)
	}))
	t.Cleanup(first.Close)
	dir := t.TempDir()
	routes := filepath.Join(dir, "alertmanager.yml")
	if err := os.WriteFile(routes, []byte(`
route: {receiver: both, group_wait: 0s}
receivers:
- name: both
  webhook_configs:
  - url: `+first.URL+`
  - url: `+second.srv.URL+`
`), 0o600); err != nil {
		t.Fatal(err)
	}
	noSleep := func(ctx context.Context, d time.Duration) error { return ctx.Err() }
	proc, err := NewProcessor(Config{Routes: routes}, zerolog.Nop(), webhook.WithClock(time.Now, noSleep))
	if err != nil {
		t.Fatal(err)
	}
	proc.holds = holds.Load
	if err := proc.Notify(context.Background(), incident(t, "web")); err == nil || errs.IsPermanent(err) || !errors.Is(err, stage.ErrFenced) {
		t.Fatalf("Notify: %v, want a failure for now naming the lost lease", err)
	}
	if got, _ := second.requests(); len(got) != 0 {
		t.Fatalf("the second integration got %d requests after the lease ran out", len(got))
	}
}

// The payloads get who acknowledged and resolved an incident and what
// people wrote on it from the incident's state.
func TestIncidentOfCarriesWhoActedAndTheComments(t *testing.T) {
	at := time.Date(2026, 3, 14, 9, 30, 0, 0, time.UTC)
	st := &correlate.State{IncidentID: "01JPA9Z0000000000000000INC", Status: "resolved", State: "resolved", Title: "t", OpenedAt: at,
		AcknowledgedAt: at.Add(time.Minute), ResolvedAt: at.Add(time.Hour), AcknowledgedBy: "ana", ResolvedBy: "bo",
		Comments: []correlate.Comment{{By: "ana", Text: "failing over", Time: at.Add(2 * time.Minute)}}}
	in := incidentOf(&event.Envelope{Time: at.Add(time.Hour)}, st)
	if in.AcknowledgedBy != "ana" || in.ResolvedBy != "bo" || len(in.Comments) != 1 || in.Comments[0] != (webhook.Comment{By: "ana", Text: "failing over", Time: at.Add(2 * time.Minute)}) {
		t.Fatalf("incident %+v: want ana, bo and the comment", in)
	}
}
