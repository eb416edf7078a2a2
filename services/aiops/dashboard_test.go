package aiops

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aiops-dev/aiops/pkg/testenv"
)

// TestDashboardOnPrometheus has the real Prometheus (2.42) scrape a running
// aiops and evaluate every PromQL query of the Grafana dashboard: each must
// parse, run, and find series, so a renamed metric or label, or a query
// Prometheus rejects, fails here rather than as an empty panel.
func TestDashboardOnPrometheus(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: needs ClickHouse and Prometheus")
	}
	dsn := testenv.ClickHouse(t)
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	run := &localRun{t: t, dir: dir, dsn: dsn}
	finished := run.start(ctx, nil, "-set", "log.level=warn")
	defer func() {
		cancel()
		<-finished
	}()

	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`global:
  scrape_interval: 1s
scrape_configs:
  - job_name: aiops
    static_configs:
      - targets: [%q]
`, run.admin)), 0o600); err != nil {
		t.Fatal(err)
	}
	prom := testenv.Prometheus(t, cfg)

	// Traffic through the gateway and the writer, so that their request
	// and insert histograms have observations.
	token, err := os.ReadFile(dir + "/ingest-token")
	if err != nil {
		t.Fatal(err)
	}
	postLogs := func() {
		at := time.Now().UTC().Add(-time.Minute).Format(time.RFC3339)
		req, _ := http.NewRequest("POST", "http://"+run.ingest+"/v1/events", strings.NewReader(
			`{"kind":"log","service":"payments","time":"`+at+`","severity":"error","body":{"message":"card declined"}}`))
		req.Header.Set("Content-Type", "application/x-ndjson")
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("post: %d", resp.StatusCode)
		}
	}

	// Grafana's $__rate_interval is at least four scrape intervals.
	promQL, _ := dashboardQueries(t)
	pending := map[string]string{}
	for _, q := range promQL {
		pending[q] = "not run"
	}
	for deadline := time.Now().Add(45 * time.Second); len(pending) > 0 && time.Now().Before(deadline); time.Sleep(time.Second) {
		postLogs()
		for q := range pending {
			n, err := promQuery(prom, strings.ReplaceAll(q, "$__rate_interval", "10s"))
			switch {
			case err != nil:
				pending[q] = err.Error()
			case n == 0:
				pending[q] = "no series"
			default:
				delete(pending, q)
			}
		}
	}
	for q, why := range pending {
		t.Errorf("dashboard query %s: %s", q, why)
	}
}

// promQuery runs an instant query on Prometheus's HTTP API and returns how
// many series it found, or the error Prometheus gave.
func promQuery(addr, q string) (int, error) {
	resp, err := http.Get("http://" + addr + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var answer struct {
		Status    string
		Error     string
		ErrorType string
		Data      struct{ Result []json.RawMessage }
	}
	if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil {
		return 0, fmt.Errorf("HTTP %d: %v", resp.StatusCode, err)
	}
	if answer.Status != "success" {
		return 0, fmt.Errorf("%s: %s", answer.ErrorType, answer.Error)
	}
	return len(answer.Data.Result), nil
}
