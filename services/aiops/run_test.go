package aiops

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
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
	"github.com/aiops-dev/aiops/pkg/store"
	"github.com/aiops-dev/aiops/pkg/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// waitReady waits until the admin server says the pipeline is ready (it
// starts after every component was built), or returns why it is not.
func waitReady(adminAddr string, finished <-chan error) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + adminAddr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case err := <-finished:
			return fmt.Errorf("aiops run exited: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("aiops run not ready after 30s: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// syncBuffer is a bytes.Buffer safe to write from the pipeline's goroutine
// and read from the test's.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (s *syncBuffer) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b.Reset()
}

// localRun is `aiops run` started in-process for a test: on free ports,
// its state and tokens in dir, ClickHouse at dsn.
type localRun struct {
	t                                  *testing.T
	dir, dsn                           string
	nats, admin, ingest, api, silences string
}

// start runs the pipeline with extra -set flags until ctx ends and waits
// until it is ready; finished gets Run's result. The ports are picked free
// and then handed over, so a test binary running beside this one may take
// one in between: it starts again on new ports when a bind fails. out
// (nil: discarded) gets the start-up summary, emptied before each try.
func (r *localRun) start(ctx context.Context, out *syncBuffer, extra ...string) (finished chan error) {
	r.t.Helper()
	for attempt := 1; ; attempt++ {
		r.nats, r.admin, r.ingest, r.api, r.silences = testenv.FreeAddr(r.t), testenv.FreeAddr(r.t), testenv.FreeAddr(r.t), testenv.FreeAddr(r.t), testenv.FreeAddr(r.t)
		args := append([]string{
			"-set", "nats.listen=" + r.nats,
			"-set", "nats.store_dir=" + r.dir + "/nats",
			"-set", "nats.generate_token_file=" + r.dir + "/nats-token",
			"-set", "ingest.listen=" + r.ingest,
			"-set", "ingest.generate_token_file=" + r.dir + "/ingest-token",
			"-set", "store.dsn=" + r.dsn,
			"-set", "admin.listen=" + r.admin,
			"-set", "correlator.api.listen=" + r.api,
			"-set", "correlator.api.generate_token_file=" + r.dir + "/api-token",
			"-set", "notifier.api.listen=" + r.silences,
			"-set", "notifier.api.generate_token_file=" + r.dir + "/api-token",
			"-set", "writer.max_age=100ms",
		}, extra...)
		var w io.Writer = io.Discard
		if out != nil {
			out.Reset()
			w = out
		}
		finished = make(chan error, 1)
		go func() { finished <- runPipelineTo(ctx, args, w) }()
		err := waitReady(r.admin, finished)
		if err == nil {
			return finished
		}
		if !strings.Contains(err.Error(), "address already in use") || attempt == 5 {
			r.t.Fatal(err)
		}
	}
}

// TestRunPipeline runs `aiops run` in-process on its embedded NATS and a
// real ClickHouse: an event published to NATS by a producer ends up in the
// events table, and the admin endpoints answer.
func TestRunPipeline(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: needs ClickHouse")
	}
	dsn := testenv.ClickHouse(t)
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	// A local receiver of incident webhooks, routed by an Alertmanager
	// configuration.
	hooks := make(chan []byte, 16)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		hooks <- body
	}))
	defer receiver.Close()
	routes := writeAMConfig(t, receiver.URL)
	var summary syncBuffer
	run := &localRun{t: t, dir: dir, dsn: dsn}
	finished := run.start(ctx, &summary,
		"-set", "notifier.routes="+routes,
		"-set", "logminer.state.save_every=1s",
		"-set", "log.level=warn")
	natsAddr, adminAddr, ingestAddr, apiAddr, silencesAddr := run.nats, run.admin, run.ingest, run.api, run.silences
	// The start-up summary names every listener at its address, and where
	// its token is.
	for _, want := range []string{"http://" + ingestAddr, "http://" + apiAddr, "http://" + silencesAddr, "http://" + adminAddr,
		"nats://" + natsAddr, dsn, dir + "/ingest-token", dir + "/api-token", dir + "/nats-token"} {
		if !strings.Contains(summary.String(), want) {
			t.Errorf("start-up summary lacks %s:\n%s", want, summary.String())
		}
	}
	log := zerolog.Nop()
	_, js, err := bus.Connect(ctx, bus.Config{URLs: []string{"nats://" + natsAddr}, TokenFile: dir + "/nats-token", MaxReconnects: 1}, log)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := bus.NewPublisher(js)
	if err != nil {
		t.Fatal(err)
	}

	var ids []string
	var msgs []bus.Message
	for i := 0; i < 20; i++ {
		e, err := event.New(event.KindChange, "payments", time.Now().UTC().Truncate(time.Second), event.ChangeBody{Type: "deploy", Version: fmt.Sprintf("1.%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := json.Marshal(e)
		ids = append(ids, e.ID)
		msgs = append(msgs, bus.Message{Subject: e.Subject(), ID: e.ID, Data: raw})
	}
	if _, err := pub.PublishAll(ctx, msgs); err != nil {
		t.Fatal(err)
	}

	// A producer posting over HTTP with the generated token.
	token, err := os.ReadFile(dir + "/ingest-token")
	if err != nil {
		t.Fatal(err)
	}
	// Times of now: the gateway refuses what the store would delete (more
	// than max_event_age old).
	logAt := time.Now().UTC().Add(-time.Minute).Truncate(time.Second)
	post := func(auth string) (*http.Response, []byte) {
		req, _ := http.NewRequest("POST", "http://"+ingestAddr+"/v1/events", strings.NewReader(
			`{"kind":"log","service":"payments","time":"`+logAt.Format(time.RFC3339)+`","severity":"error","body":{"message":"card declined"}}`+"\n"+
				`{"kind":"log","service":"payments","time":"`+logAt.Add(time.Second).Format(time.RFC3339)+`","body":{"message":"retrying"}}`))
		req.Header.Set("Content-Type", "application/x-ndjson")
		if auth != "" {
			req.Header.Set("Authorization", "Bearer "+auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, body
	}
	if resp, _ := post(""); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("post without token: %d, want 401", resp.StatusCode)
	}
	resp, body := post(strings.TrimSpace(string(token)))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("post: %d %s", resp.StatusCode, body)
	}
	var accepted struct {
		Accepted int      `json:"accepted"`
		IDs      []string `json:"ids"`
	}
	if err := json.Unmarshal(body, &accepted); err != nil || accepted.Accepted != 2 || len(accepted.IDs) != 2 {
		t.Fatalf("answer %s: %v", body, err)
	}
	ids = append(ids, accepted.IDs...)

	st, err := store.Open(context.Background(), store.Config{DSN: dsn}, log)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
		var n uint64
		err := st.Conn.QueryRow(context.Background(), "SELECT count() FROM events FINAL WHERE service = 'payments' AND has(?, id)", ids).Scan(&n)
		if err == nil && n == 22 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("events in ClickHouse: %d, %v; want 22", n, err)
		}
	}

	// The logminer templated the two posted logs; the writer stored its
	// output, linked to the raw ids.
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
		var n uint64
		err := st.Conn.QueryRow(context.Background(),
			"SELECT count() FROM events FINAL WHERE kind = 'log' AND source = 'logminer' AND hasAny(links, ?)", accepted.IDs).Scan(&n)
		if err == nil && n == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("templated logs in ClickHouse: %d, %v; want 2", n, err)
		}
	}

	// Metric samples with a spike go through the detector: the anomaly
	// reaches the anomalies table, linked to the sample.
	var samples strings.Builder
	start := time.Now().UTC().Truncate(time.Minute).Add(-2 * time.Hour)
	for i := 0; i < 80; i++ {
		v := 100 + float64(i%5)
		if i == 70 {
			v = 400
		}
		fmt.Fprintf(&samples, `{"kind":"metric","service":"payments","time":%q,"labels":{"__name__":"latency_ms"},"body":{"name":"latency_ms","value":%g}}`+"\n",
			start.Add(time.Duration(i)*time.Minute).Format(time.RFC3339), v)
	}
	req, _ := http.NewRequest("POST", "http://"+ingestAddr+"/v1/events", strings.NewReader(samples.String()))
	req.Header.Set("Content-Type", "application/x-ndjson")
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("post samples: %v %v", resp, err)
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
		var n uint64
		var value float64
		// The episode's rows: its opening on the spike, then its close
		// on a calm value.
		err := st.Conn.QueryRow(context.Background(),
			"SELECT count(), max(value) FROM anomalies FINAL WHERE service = 'payments' AND metric = 'latency_ms'").Scan(&n, &value)
		if err == nil && n >= 1 && value == 400 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("anomalies in ClickHouse: %d, highest value %g, %v; want the spike of 400", n, value, err)
		}
	}

	// An Alertmanager storm goes in through the gateway; the correlator
	// makes one incident of it, the writer stores the incident, and the
	// incidents API lists it.
	now := time.Now().UTC().Truncate(time.Second)
	am := fmt.Sprintf(`{"version":"4","groupKey":"{}:{}","status":"firing","receiver":"aiops","groupLabels":{},"commonLabels":{},"commonAnnotations":{},"externalURL":"http://am","alerts":[
		{"status":"firing","labels":{"alertname":"HighErrorRate","service":"cart","severity":"critical"},"annotations":{"summary":"5xx over 5%%"},"startsAt":%q,"endsAt":"0001-01-01T00:00:00Z","generatorURL":"http://prom","fingerprint":"c0ffee0000000001"},
		{"status":"firing","labels":{"alertname":"HighLatency","service":"cart","severity":"warning"},"annotations":{"summary":"p99 over 2s"},"startsAt":%q,"endsAt":"0001-01-01T00:00:00Z","generatorURL":"http://prom","fingerprint":"c0ffee0000000002"}]}`,
		now.Format(time.RFC3339), now.Add(5*time.Second).Format(time.RFC3339))
	req, _ = http.NewRequest("POST", "http://"+ingestAddr+"/v1/alertmanager", strings.NewReader(am))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("post alerts: %v %v", resp, err)
	}
	var incidentID string
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
		var n uint64
		err := st.Conn.QueryRow(context.Background(),
			"SELECT count(), any(incident_id) FROM incidents FINAL WHERE service = 'cart' AND status = 'opened'").Scan(&n, &incidentID)
		if err == nil && n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("incidents of cart in ClickHouse: %d, %v; want one for the two alerts", n, err)
		}
	}
	// The notifier routed it (severity critical → the pager receiver) and
	// the local receiver got it.
	select {
	case body := <-hooks:
		if !strings.Contains(string(body), incidentID) {
			t.Fatalf("webhook %s: not incident %s", body, incidentID)
		}
	case <-time.After(time.Minute):
		t.Fatal("no webhook for the incident within a minute")
	}
	// ... and every attempt is a row of webhook_deliveries.
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
		var n uint64
		var code uint16
		err := st.Conn.QueryRow(context.Background(),
			"SELECT count(), any(status_code) FROM webhook_deliveries FINAL WHERE incident_id = ? AND receiver = 'pager'", incidentID).Scan(&n, &code)
		if err == nil && n == 1 && code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("webhook_deliveries of the incident: %d rows (status %d), %v; want its one attempt", n, code, err)
		}
	}
	apiToken, err := os.ReadFile(dir + "/api-token")
	if err != nil {
		t.Fatal(err)
	}
	req, _ = http.NewRequest("GET", "http://"+apiAddr+"/v1/incidents?service=cart", nil)
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(apiToken)))
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), incidentID) || !strings.Contains(string(body), `"member_count": 2`) {
		t.Fatalf("incidents API: %d %s; want incident %s with both alerts", resp.StatusCode, body, incidentID)
	}

	// The same from a shell: aiops incidents finds the API and its token
	// in the configuration aiops run was given.
	cli := func(args ...string) string {
		t.Helper()
		var out, errOut bytes.Buffer
		args = append(args, "-set", "correlator.api.listen="+apiAddr, "-set", "correlator.api.generate_token_file="+dir+"/api-token")
		if err := incidentsMain(ctx, args, &out, &errOut); err != nil {
			t.Fatalf("aiops incidents %s: %v\n%s", strings.Join(args, " "), err, errOut.String())
		}
		return out.String()
	}
	if out := cli("list", "-service", "cart", "-status", "open"); !strings.Contains(out, incidentID+"  open") || strings.Count(out, "\n") != 2 {
		t.Errorf("aiops incidents list:\n%s\nwant a header and incident %s, open", out, incidentID)
	}
	if out := cli("show", incidentID); !strings.Contains(out, "members (2, 2 firing)") || !strings.Contains(out, "HighErrorRate on cart") || !strings.Contains(out, "timeline") {
		t.Errorf("aiops incidents show:\n%s\nwant both firing members and the timeline", out)
	}
	page := filepath.Join(dir, "incident.html")
	cli("show", incidentID, "-page", page)
	if html, err := os.ReadFile(page); err != nil {
		t.Errorf("aiops incidents show -page: %v", err)
	} else if rects, _, _ := pageSVG(t, string(html)); len(rects) != 2 || !strings.Contains(string(html), "HighErrorRate") {
		t.Errorf("aiops incidents show -page drew %d members, want both:\n%s", len(rects), html)
	}
	if out := cli("ack", incidentID, "-by", "ana"); !strings.Contains(out, incidentID+"  acknowledged") {
		t.Errorf("aiops incidents ack:\n%s\nwant the incident acknowledged", out)
	}

	// The silences API answers with the same token (amtool's default
	// URL in a plain run).
	req, _ = http.NewRequest("GET", "http://"+silencesAddr+"/api/v2/silences", nil)
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(apiToken)))
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || strings.TrimSpace(string(body)) != "[]" {
		t.Fatalf("silences API: %d %s; want an empty list", resp.StatusCode, body)
	}

	// Every metric the Grafana dashboard reads is one the pipeline exports.
	if resp, err := http.Get("http://" + adminAddr + "/metrics"); err == nil {
		metrics, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, name := range dashboardMetrics(t) {
			if !bytes.Contains(metrics, []byte("\n"+name)) {
				t.Errorf("the dashboard reads %s, which /metrics does not export", name)
			}
		}
	}
	for path, want := range map[string]int{"/healthz": 200, "/readyz": 200, "/metrics": 200} {
		resp, err := http.Get("http://" + adminAddr + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%s: %d, want %d", path, resp.StatusCode, want)
		}
	}

	cancel()
	select {
	case err := <-finished:
		if err != nil {
			t.Fatalf("aiops run stopped with %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("aiops run did not stop within a minute of cancellation")
	}
}
