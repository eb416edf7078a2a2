package aiops

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

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

func TestNotifySendTest(t *testing.T) {
	var hits atomic.Int64
	var signed atomic.Bool
	code := atomic.Int64{}
	code.Store(200)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if r.Header.Get("webhook-signature") != "" {
			signed.Store(true)
		}
		w.WriteHeader(int(code.Load()))
	}))
	defer srv.Close()
	cfg := writeAMConfig(t, srv.URL)
	var out bytes.Buffer
	if err := notifyMain(context.Background(), []string{"send-test", "--config", cfg, "--receiver", "dba"}, &out, &bytes.Buffer{}); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if hits.Load() != 1 || !signed.Load() || !strings.Contains(out.String(), "dba attempt 1: 200") || !strings.Contains(out.String(), "delivered") {
		t.Fatalf("hits %d, signed %v, output %q", hits.Load(), signed.Load(), out.String())
	}
	code.Store(400)
	out.Reset()
	err := notifyMain(context.Background(), []string{"send-test", "--config", cfg, "--receiver", "pager"}, &out, &bytes.Buffer{})
	if err == nil || !strings.Contains(out.String(), "pager attempt 1: 400") {
		t.Fatalf("a 400: %v %q, want a failure after one attempt", err, out.String())
	}
	if err := notifyMain(context.Background(), []string{"send-test", "--config", cfg, "--receiver", "nobody"}, &out, &bytes.Buffer{}); service.ExitCode(err) != 2 {
		t.Fatalf("unknown receiver: %v", err)
	}
}
