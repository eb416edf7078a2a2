package aiops

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aiops-dev/aiops/pkg/notify/webhook"
	"github.com/aiops-dev/aiops/pkg/service"
)

func writeAMConfig(t *testing.T, url string) string {
	t.Helper()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "secret"), []byte("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n"), 0o600)
	p := filepath.Join(dir, "alertmanager.yml")
	os.WriteFile(p, []byte(`
route:
  receiver: default
  group_wait: 1s
  routes:
  - matchers: [team="dba"]
    receiver: dba
    continue: true
  - matchers: [severity=~"critical|page"]
    receiver: pager
receivers:
- name: default
- name: dba
  aiops_webhook_configs:
  - url: `+url+`
    secret_file: secret
- name: pager
  webhook_configs:
  - url: `+url+`
`), 0o600)
	return p
}

func TestNotifyRoutesTest(t *testing.T) {
	cfg := writeAMConfig(t, "http://127.0.0.1:1/hook")
	for labels, want := range map[string]string{
		"team=dba severity=critical": "dba,pager",
		"team=dba":                   "dba",
		"severity=page":              "pager",
		"service=web":                "default",
	} {
		var out bytes.Buffer
		if err := notifyMain(context.Background(), append([]string{"routes", "test", "--config", cfg}, strings.Fields(labels)...), &out, &bytes.Buffer{}); err != nil {
			t.Fatal(err)
		}
		if got := strings.TrimSpace(out.String()); got != want {
			t.Errorf("%s: %q, want %q", labels, got, want)
		}
	}
	err := notifyMain(context.Background(), []string{"routes", "test"}, &bytes.Buffer{}, &bytes.Buffer{})
	if service.ExitCode(err) != 2 {
		t.Fatalf("no --config: %v", err)
	}
}

// send-test goes through the notifier's delivery: a 503 is retried with
// the same webhook-id, the request is signed, exit 0 after the 2xx; a 400
// fails after one attempt; an unknown receiver is a usage error.
func TestNotifySendTest(t *testing.T) {
	var hits atomic.Int64
	var mu sync.Mutex
	var ids []string
	var signed atomic.Bool
	script := make(chan int, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		mu.Lock()
		ids = append(ids, r.Header.Get("webhook-id"))
		mu.Unlock()
		if r.Header.Get("webhook-signature") != "" {
			signed.Store(true)
		}
		code := 200
		select {
		case code = <-script:
		default:
		}
		w.WriteHeader(code)
	}))
	defer srv.Close()
	cfg := writeAMConfig(t, srv.URL)
	var out bytes.Buffer
	script <- 503
	if err := notifyMain(context.Background(), []string{"send-test", "--config", cfg, "--receiver", "dba"}, &out, &bytes.Buffer{}); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if hits.Load() != 2 || !signed.Load() || ids[0] != ids[1] || len(lines) != 3 ||
		!strings.HasPrefix(lines[0], "dba attempt 1 ("+ids[0]+"): 503 HTTP 503 Service Unavailable") || !strings.HasSuffix(lines[0], "(retrying)") ||
		!strings.HasPrefix(lines[1], "dba attempt 2 ("+ids[0]+"): 200 in ") || lines[2] != "dba: delivered" {
		t.Fatalf("hits %d, signed %v, ids %q, output %q", hits.Load(), signed.Load(), ids, out.String())
	}
	script <- 400
	out.Reset()
	err := notifyMain(context.Background(), []string{"send-test", "--config", cfg, "--receiver", "pager"}, &out, &bytes.Buffer{})
	if err == nil || service.ExitCode(err) == 2 || !strings.Contains(out.String(), "pager attempt 1") || strings.Contains(out.String(), "attempt 2") || hits.Load() != 3 {
		t.Fatalf("a 400: %v %q, want a failure after one attempt", err, out.String())
	}
	if err := notifyMain(context.Background(), []string{"send-test", "--config", cfg, "--receiver", "nobody"}, &out, &bytes.Buffer{}); service.ExitCode(err) != 2 {
		t.Fatalf("unknown receiver: %v", err)
	}
}

// template render prints the rendering of a template for the sample
// incident or one from a file, and names the line of a template error.
func TestNotifyTemplateRender(t *testing.T) {
	dir := t.TempDir()
	tmpl := filepath.Join(dir, "t.tmpl")
	os.WriteFile(tmpl, []byte(`{"id": {{ json .ID }}, "status": {{ json .Status }}, "first_cause": {{ json (index .RootCauses 0).Service }}}`), 0o600)
	var out bytes.Buffer
	if err := notifyMain(context.Background(), []string{"template", "render", "--template", tmpl}, &out, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	if got, want := out.String(), `{"id": "01JPA9V3KX8Q6M1T2R3S4W5Y6Z", "status": "open", "first_cause": "checkout"}`+"\n"; got != want {
		t.Fatalf("%q, want %q", got, want)
	}
	// An incident from a payload a receiver got.
	inc := webhook.SampleIncident()
	inc.ID, inc.Status, inc.Transition, inc.ResolvedAt, inc.At = "01JQ0000000000000000000000", webhook.StatusResolved, webhook.TransitionResolved, inc.OpenedAt.Add(time.Hour), time.Time{}
	payload, err := webhook.Generic(inc)
	if err != nil {
		t.Fatal(err)
	}
	incFile := filepath.Join(dir, "incident.json")
	os.WriteFile(incFile, payload, 0o600)
	out.Reset()
	if err := notifyMain(context.Background(), []string{"template", "render", "--template", tmpl, "--incident", incFile}, &out, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), `"id": "01JQ0000000000000000000000", "status": "resolved"`) {
		t.Fatalf("%q", out.String())
	}
	os.WriteFile(tmpl, []byte("{\n\"a\": {{ .Nope }}}"), 0o600)
	err = notifyMain(context.Background(), []string{"template", "render", "--template", tmpl}, &out, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), `"t.tmpl" line 2`) || !strings.Contains(err.Error(), "Nope") {
		t.Fatalf("a bad field: %v", err)
	}
	if err := notifyMain(context.Background(), []string{"template", "render"}, &out, &bytes.Buffer{}); service.ExitCode(err) != 2 {
		t.Fatalf("no --template: %v", err)
	}
}
