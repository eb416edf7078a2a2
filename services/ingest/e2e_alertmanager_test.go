package ingest

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/pkg/testenv"
)

// The real Alertmanager (Debian's prometheus-alertmanager) notifies the
// gateway with the receiver README.md shows, its token read from a
// credentials_file: an alert posted to Alertmanager lands in the alerts
// table firing, then resolved, each once however often Alertmanager
// repeats it in the group's notifications.
func TestE2ERealAlertmanager(t *testing.T) {
	r := newE2ERig(t, rigOptions{})
	dir := t.TempDir()
	token := filepath.Join(dir, "aiops-token")
	if err := os.WriteFile(token, []byte(e2eToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// README.md's receiver, with timers short enough for a test.
	cfg := filepath.Join(dir, "alertmanager.yml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`route:
  receiver: aiops
  group_by: [alertname]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 2s
receivers:
  - name: aiops
    webhook_configs:
      - url: %s/v1/alertmanager
        http_config:
          authorization: {type: Bearer, credentials_file: %s}
        send_resolved: true
        max_alerts: 10000
`, r.url, token)), 0o600); err != nil {
		t.Fatal(err)
	}
	am := testenv.Alertmanager(t, cfg)

	starts := time.Now().UTC().Add(-time.Minute).Truncate(time.Second)
	post := func(ends string) {
		t.Helper()
		body := fmt.Sprintf(`[{"labels":{"alertname":"HighLatency","service":"checkout","severity":"critical","instance":"web-1"},
			"annotations":{"summary":"p99 over 2s"},"startsAt":%q%s}]`, starts.Format(time.RFC3339), ends)
		resp, err := http.Post("http://"+am+"/api/v2/alerts", "application/json", bytes.NewBufferString(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("posting to Alertmanager: %s", resp.Status)
		}
	}
	waitAlerts := func(want int) []storedAlert {
		t.Helper()
		deadline := time.Now().Add(time.Minute)
		for {
			got := r.alerts("alert_name = 'HighLatency'")
			if len(got) >= want || time.Now().After(deadline) {
				if len(got) != want {
					t.Fatalf("%d alert rows, want %d: %+v", len(got), want, got)
				}
				return got
			}
			time.Sleep(200 * time.Millisecond)
		}
	}

	post("")
	firing := waitAlerts(1)[0]
	if firing.Status != "firing" || !firing.StartsAt.Equal(starts) || firing.Service != "checkout" ||
		firing.Severity != "critical" || firing.Labels["instance"] != "web-1" || firing.Annotations["summary"] != "p99 over 2s" || firing.Fingerprint == "" {
		t.Errorf("firing row %+v, want the alert as posted, with Alertmanager's fingerprint", firing)
	}
	time.Sleep(5 * time.Second) // repeat_interval passes twice: Alertmanager sends the firing alert again
	if got := r.alerts("alert_name = 'HighLatency'"); len(got) != 1 {
		t.Fatalf("%d alert rows after Alertmanager's repeats, want the firing one once", len(got))
	}
	ends := time.Now().UTC().Truncate(time.Second)
	post(fmt.Sprintf(`,"endsAt":%q`, ends.Format(time.RFC3339)))
	got := waitAlerts(2)
	if got[1].Status != "resolved" || !got[1].EndsAt.Equal(ends) || got[1].Fingerprint != firing.Fingerprint {
		t.Errorf("rows %+v, want the firing one, then its resolution at %s", got, ends)
	}
}

// The real Prometheus (Debian's prometheus) sends its alerts straight to
// the gateway as it would to an Alertmanager, with the configuration
// README.md shows: an alerting rule on a metric the test controls fires,
// lands in the alerts table once however often Prometheus resends it,
// then resolves when the metric drops, with the fingerprint an
// Alertmanager would have given it.
func TestE2ERealPrometheusSendsItsAlerts(t *testing.T) {
	r := newE2ERig(t, rigOptions{})
	dir := t.TempDir()
	token := filepath.Join(dir, "aiops-token")
	if err := os.WriteFile(token, []byte(e2eToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var failing atomic.Bool
	failing.Store(true)
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		v := 0
		if failing.Load() {
			v = 1
		}
		fmt.Fprintf(w, "checkout_failing %d\n", v)
	}))
	defer target.Close()
	ingest, err := url.Parse(r.url)
	if err != nil {
		t.Fatal(err)
	}
	rules := filepath.Join(dir, "rules.yml")
	if err := os.WriteFile(rules, []byte(`groups:
  - name: checkout
    interval: 1s
    rules:
      - alert: CheckoutFailing
        expr: checkout_failing == 1
        labels: {severity: critical, service: checkout}
        annotations: {summary: checkout is failing}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`global: {scrape_interval: 1s, evaluation_interval: 1s}
rule_files: [%s]
scrape_configs:
  - job_name: checkout
    static_configs: [{targets: [%q]}]
alerting:
  alertmanagers:
    - scheme: %s
      authorization: {credentials_file: %s}
      static_configs: [{targets: [%q]}]
`, rules, strings.TrimPrefix(target.URL, "http://"), ingest.Scheme, token, ingest.Host)), 0o600); err != nil {
		t.Fatal(err)
	}
	// Resent every second, not every minute: the resends must not add rows.
	testenv.Prometheus(t, cfg, "--rules.alert.resend-delay=1s")

	waitAlerts := func(want int) []storedAlert {
		t.Helper()
		deadline := time.Now().Add(time.Minute)
		for {
			got := r.alerts("alert_name = 'CheckoutFailing'")
			if len(got) >= want || time.Now().After(deadline) {
				if len(got) != want {
					t.Fatalf("%d alert rows, want %d: %+v", len(got), want, got)
				}
				return got
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	firing := waitAlerts(1)[0]
	if firing.Status != "firing" || firing.Service != "checkout" || firing.Severity != "critical" ||
		firing.Annotations["summary"] != "checkout is failing" || firing.Labels["job"] != "checkout" ||
		firing.Fingerprint != event.AlertmanagerFingerprint(firing.Labels) || !strings.Contains(firing.GeneratorURL, "checkout_failing") ||
		firing.EndsAt.Unix() > 0 {
		t.Errorf("firing row %+v, want the rule's alert with Alertmanager's fingerprint of its labels and no end", firing)
	}
	// The endsAt Prometheus sends with it is when it expires unless sent
	// again, which the correlator resolves it by (its event's body).
	body, _ := r.event(firing.ID).Body.(map[string]any)
	if expires, _ := body["expires_at"].(string); expires == "" {
		t.Errorf("the firing alert's event has no expires_at: %v", body)
	} else if at, err := time.Parse(time.RFC3339Nano, expires); err != nil || !at.After(firing.StartsAt) {
		t.Errorf("expires_at %q (%v), want a time after startsAt %s", expires, err, firing.StartsAt)
	}
	time.Sleep(4 * time.Second) // Prometheus resends the firing alert, each time with a later endsAt
	if got := r.alerts("alert_name = 'CheckoutFailing'"); len(got) != 1 {
		t.Fatalf("%d alert rows after Prometheus's resends, want the firing one once", len(got))
	}
	failing.Store(false)
	got := waitAlerts(2)
	if got[1].Status != "resolved" || got[1].Fingerprint != firing.Fingerprint || !got[1].StartsAt.Equal(firing.StartsAt) || !got[1].EndsAt.After(firing.StartsAt) {
		t.Errorf("rows %+v, want the firing one, then its resolution", got)
	}
}
