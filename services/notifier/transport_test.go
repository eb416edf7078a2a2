package notifier

import (
	"encoding/pem"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/notify/webhook"
	"github.com/aiops-dev/aiops/pkg/stage"
	"github.com/aiops-dev/aiops/pkg/stage/stagetest"
)

// http_config's tls_config and proxy_url are applied: a receiver behind a
// certificate of its own CA is reached with ca_file (and refused without:
// the event is naked), a receiver through proxy_url goes through the
// proxy; oauth2 is refused by name at start.
func TestHTTPConfigTLSAndProxy(t *testing.T) {
	var tlsGot atomic.Int32
	secure := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { tlsGot.Add(1) }))
	secure.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes are expected
	secure.StartTLS()
	defer secure.Close()
	var proxied atomic.Int32
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A forward proxy gets the absolute URL of the target.
		if r.URL.IsAbs() && strings.HasPrefix(r.URL.String(), "http://receiver.invalid/") {
			proxied.Add(1)
		}
	}))
	defer proxy.Close()
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: secure.Certificate().Raw}), 0o600)
	write := func(yml string) string {
		p := filepath.Join(dir, "am.yml")
		os.WriteFile(p, []byte(yml), 0o600)
		return p
	}
	// run sends an incident through routes: how its event was settled, or
	// held (its receiver not reached: tried again later).
	const held = stagetest.Outcome(-1)
	run := func(routes string) stagetest.Outcome {
		t.Helper()
		proc, err := NewProcessor(Config{Routes: routes, Delivery: DeliveryConfig{Config: webhook.Config{Retry: webhook.RetryConfig{MaxAttempts: 1}}}}, zerolog.Nop())
		if err != nil {
			t.Fatal(err)
		}
		h := stagetest.Start(t, proc, stage.Config{Name: "notifier", TickEvery: 1e9})
		in := h.Send(incident(t, "search"))
		waitSent(t, proc)
		if r, ok := in.Result(); ok {
			return r.Outcome
		}
		return held
	}
	withCA := write(`route: {receiver: r, group_wait: 0s}
receivers:
- name: r
  webhook_configs:
  - url: ` + secure.URL + `
    http_config: {tls_config: {ca_file: ca.pem}}
`)
	if o := run(withCA); o != stagetest.Acked || tlsGot.Load() != 1 {
		t.Fatalf("with ca_file: %v, %d requests", o, tlsGot.Load())
	}
	withoutCA := write(`route: {receiver: r, group_wait: 0s}
receivers:
- name: r
  webhook_configs:
  - url: ` + secure.URL + `
`)
	if o := run(withoutCA); o != held || tlsGot.Load() != 1 {
		t.Fatalf("without ca_file: %v, %d requests; want refused by the TLS check, held for another try", o, tlsGot.Load())
	}
	viaProxy := write(`route: {receiver: r, group_wait: 0s}
receivers:
- name: r
  webhook_configs:
  - url: http://receiver.invalid/hook
    http_config: {proxy_url: ` + proxy.URL + `}
`)
	if o := run(viaProxy); o != stagetest.Acked || proxied.Load() != 1 {
		t.Fatalf("through proxy_url: %v, %d proxied", o, proxied.Load())
	}
	oauth := write(`route: {receiver: r}
receivers:
- name: r
  webhook_configs:
  - url: http://receiver.invalid/hook
    http_config: {oauth2: {client_id: a, client_secret: b, token_url: 'http://t.invalid/token'}}
`)
	if _, err := NewProcessor(Config{Routes: oauth}, zerolog.Nop()); err == nil || !strings.Contains(err.Error(), "oauth2 is not supported") || !strings.Contains(err.Error(), "receivers[0]") {
		t.Fatalf("oauth2: %v, want a start error naming it and the receiver", err)
	}
	missingCA := write(`route: {receiver: r}
receivers:
- name: r
  webhook_configs:
  - url: ` + secure.URL + `
    http_config: {tls_config: {ca_file: nope.pem}}
`)
	if _, err := NewProcessor(Config{Routes: missingCA}, zerolog.Nop()); err == nil || !strings.Contains(err.Error(), "tls_config.ca_file") {
		t.Fatalf("missing ca_file: %v", err)
	}
}

// http_config.follow_redirects is applied per integration, as in
// Alertmanager: absent, a receiver's redirect is followed (a 307 keeps the
// POST and its body), even though the delivery client's own
// follow_redirects is false; written false, the 3xx dead-letters the event
// naming the redirect, for a webhook and for a ticketing API alike, even
// when the client's own follow_redirects is true.
func TestHTTPConfigFollowRedirects(t *testing.T) {
	var moved, arrived atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/old") {
			moved.Add(1)
			http.Redirect(w, r, strings.Replace(r.URL.Path, "/old", "/new", 1), http.StatusTemporaryRedirect)
			return
		}
		if b, _ := io.ReadAll(r.Body); r.Method == http.MethodPost && len(b) > 0 {
			arrived.Add(1)
		}
	}))
	defer srv.Close()
	dir := t.TempDir()
	run := func(clientFollows bool, receiver string) stagetest.Result {
		t.Helper()
		moved.Store(0)
		arrived.Store(0)
		routes := filepath.Join(dir, "am.yml")
		os.WriteFile(routes, []byte("route: {receiver: r, group_wait: 0s}\nreceivers:\n- name: r\n"+receiver), 0o600)
		proc, err := NewProcessor(Config{Routes: routes, Delivery: DeliveryConfig{Config: webhook.Config{FollowRedirects: clientFollows, Retry: webhook.RetryConfig{MaxAttempts: 1}}}}, zerolog.Nop())
		if err != nil {
			t.Fatal(err)
		}
		h := stagetest.Start(t, proc, stage.Config{Name: "notifier", TickEvery: 1e9})
		return h.Feed(incident(t, "search"))[0]
	}
	if r := run(false, "  webhook_configs: [{url: '"+srv.URL+"/old/hook'}]\n"); r.Outcome != stagetest.Acked || moved.Load() != 1 || arrived.Load() != 1 {
		t.Fatalf("no http_config: %v %v, %d redirected, %d arrived; want the redirect followed", r.Outcome, r.Err, moved.Load(), arrived.Load())
	}
	for _, receiver := range []string{
		"  webhook_configs: [{url: '" + srv.URL + "/old/hook', http_config: {follow_redirects: false}}]\n",
		"  servicenow_configs: [{api_url: '" + srv.URL + "/old', http_config: {follow_redirects: false}}]\n",
	} {
		r := run(true, receiver)
		if r.Outcome != stagetest.DeadLettered || !errors.Is(r.Err, webhook.ErrRedirect) || moved.Load() != 1 || arrived.Load() != 0 {
			t.Fatalf("%s: %v %v, %d redirected, %d arrived; want the 3xx refused", receiver, r.Outcome, r.Err, moved.Load(), arrived.Load())
		}
	}
}

// insecure_skip_verify is taken, as Alertmanager takes it, and warned
// about at start naming the key: whoever stands between the notifier and
// the receiver then reads and changes what is sent, the receiver's
// credentials and the incidents with it, and a line copied from a test
// setup into production would otherwise say nothing.
func TestInsecureSkipVerifyIsWarnedAboutAtStart(t *testing.T) {
	for _, c := range []struct {
		tls    string
		warned bool
	}{{"{insecure_skip_verify: true}", true}, {"{insecure_skip_verify: false}", false}, {"{server_name: hooks.example.com}", false}} {
		routes := filepath.Join(t.TempDir(), "alertmanager.yml")
		os.WriteFile(routes, []byte(`route: {receiver: hook}
receivers:
- name: hook
  webhook_configs: [{url: 'https://hooks.example.com/', http_config: {tls_config: `+c.tls+`}}]
`), 0o600)
		var logs strings.Builder
		if _, err := NewProcessor(Config{Routes: routes}, zerolog.New(&logs)); err != nil {
			t.Fatal(err)
		}
		key := "receivers[0] (hook).webhook_configs[0].http_config.tls_config.insecure_skip_verify"
		if got := strings.Contains(logs.String(), `"level":"warn"`) && strings.Contains(logs.String(), key); got != c.warned {
			t.Errorf("tls_config %s: warned %t naming %s, want %t; the log:\n%s", c.tls, got, key, c.warned, logs.String())
		}
	}
}
