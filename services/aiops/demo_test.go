package aiops

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/correlate"
	"github.com/aiops-dev/aiops/pkg/notify/webhook"
	"github.com/aiops-dev/aiops/pkg/store"
	"github.com/aiops-dev/aiops/pkg/testenv"
)

// TestDemo runs `aiops demo` end to end on a real ClickHouse: it must
// exit cleanly (the two expected incidents opened, delivered signed,
// resolved, delivered again), print them with their enrichment, the
// webhooks and the analyst queries, and write the timeline.
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: needs ClickHouse")
	}
	dsn := testenv.ClickHouse(t)
	out := t.TempDir()
	var stdout bytes.Buffer
	err := runDemo(context.Background(), []string{"-set", "store.dsn=" + dsn, "-out", out, "-database", "aiops_demo_test", "-timeout", "90s"}, &stdout)
	t.Log(stdout.String())
	if err != nil {
		if log, rerr := os.ReadFile(filepath.Join(out, "pipeline.log")); rerr == nil {
			t.Logf("pipeline.log (last 4 KiB): %s", log[max(0, len(log)-4096):])
		}
		t.Fatal(err)
	}
	s := stdout.String()
	for _, want := range []string{
		"root cause payments: owner cy, team payments", "runbook https://runbooks.example.com/payments",
		"root cause search-index: owner gi, team discovery",
		"change payments deploy v2.14.0 by cy",
		"PaymentsLatencyHigh", "CheckoutErrorRateHigh", "HTTP5xxRateHigh", "logminer.error_burst",
		"discovery-oncall", "oncall", "0 rejected",
		"-- webhook deliveries per receiver", "-- the most anomalous metrics",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("the demo's output lacks %q", want)
		}
	}
	// The Grafana dashboard's ClickHouse queries run on what the demo
	// stored; its MTTA/MTTR table has both incidents' services.
	demoDSN, err := withDatabase(dsn, "aiops_demo_test")
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(context.Background(), store.Config{DSN: demoDSN}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, q := range dashboardSQL(t, time.Now().Add(-24*time.Hour), time.Now().Add(time.Hour)) {
		var tbl bytes.Buffer
		if err := printQuery(context.Background(), &tbl, st, q); err != nil {
			t.Errorf("dashboard query %s: %v", q, err)
		}
		if strings.Contains(q, "mttr_minutes") && (!strings.Contains(tbl.String(), "payments") || !strings.Contains(tbl.String(), "search-index")) {
			t.Errorf("the dashboard's MTTR table lacks the demo's incidents:\n%s", tbl.String())
		}
	}
	// The webhooks file holds every delivery, each verified; each expected
	// incident got its opened and its resolved notification.
	data, err := os.ReadFile(filepath.Join(out, "webhooks.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	transitions := map[string]map[string]bool{}
	for _, line := range bytes.Split(bytes.TrimSpace(data), []byte("\n")) {
		var h receivedHook
		if err := json.Unmarshal(line, &h); err != nil || !h.Verified {
			t.Fatalf("webhooks.jsonl line %s: %v", line, err)
		}
		if transitions[h.Receiver] == nil {
			transitions[h.Receiver] = map[string]bool{}
		}
		transitions[h.Receiver][h.Transition] = true
	}
	for _, r := range []string{"oncall", "discovery-oncall"} {
		if !transitions[r]["opened"] || !transitions[r]["resolved"] {
			t.Errorf("receiver %s got %v, want opened (its first page reads as the opening) and resolved", r, transitions[r])
		}
	}
	page, err := os.ReadFile(filepath.Join(out, "timeline.html"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"<svg", "<polyline", "<rect", "<circle", "<path", "payments", "search-index", "v2.14.0"} {
		if !bytes.Contains(page, []byte(want)) {
			t.Errorf("timeline.html lacks %q", want)
		}
	}
	// The picture is well-formed SVG a browser draws.
	svg := page[bytes.Index(page, []byte("<svg")) : bytes.Index(page, []byte("</svg>"))+len("</svg>")]
	dec := xml.NewDecoder(bytes.NewReader(svg))
	for {
		if _, err := dec.Token(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("timeline.html: the SVG is not well-formed: %v", err)
		}
	}
}

// TestDemoRefusesBadFlags: the database it drops must be a demo's; a
// wrong flag is a usage error before anything starts.
func TestDemoRefusesBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-database", "default"},
		{"-database", "aiops_demo; DROP TABLE x"},
		{"-timeout", "0s"},
		{"extra"},
	} {
		err := runDemo(context.Background(), args, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), strings.TrimPrefix(args[0], "-")) {
			t.Errorf("%v: %v, want an error naming it", args, err)
		}
	}
}

// TestDemoScenario: every event the scenario sends is inside the window
// the gateway accepts (13 days back, 1 hour ahead), the storm is on
// services of the example catalog that depend on each other, and the same
// seed gives the same scenario.
func TestDemoScenario(t *testing.T) {
	now := time.Date(2026, 12, 2, 9, 0, 17, 0, time.UTC)
	sc := newDemoScenario(now, 1)
	first, last := sc.span()
	if now.Sub(first) > 13*24*time.Hour || last.Sub(now) > time.Hour || !last.After(now) || !first.Before(now.Add(-time.Hour)) {
		t.Fatalf("span %s to %s around %s", first, last, now)
	}
	again, _ := json.Marshal(newDemoScenario(now, 1))
	once, _ := json.Marshal(sc)
	if !bytes.Equal(once, again) {
		t.Fatal("the same seed gave another scenario")
	}
	cat, err := correlate.ReadCatalog(filepath.Join("..", "..", DefaultCatalog))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range demoExpectations {
		root := cat.Services[e.Root]
		if root.Owner != e.Owner || root.Team != e.Team {
			t.Errorf("expectation %+v: catalog says %+v", e, root)
		}
		for _, s := range e.Services {
			if _, ok := cat.Services[s]; !ok {
				t.Errorf("%s is not in the catalog", s)
			}
		}
	}
	if !dependsOn(cat, "web", "payments") || !dependsOn(cat, "search", "search-index") || dependsOn(cat, "search", "payments") {
		t.Fatal("the storm's services are not related as the story says")
	}
}

func dependsOn(cat *correlate.Catalog, from, to string) bool {
	for _, d := range cat.Services[from].DependsOn {
		if d == to || dependsOn(cat, d, to) {
			return true
		}
	}
	return false
}

// TestDemoCatalogIsTheExample keeps the built-in copy equal to
// pipelines/catalog.yaml's services.
func TestDemoCatalogIsTheExample(t *testing.T) {
	want, err := correlate.ReadCatalog(filepath.Join("..", "..", DefaultCatalog))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "catalog.yaml")
	os.WriteFile(path, []byte(demoCatalog), 0o600)
	got, err := correlate.ReadCatalog(path)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := json.Marshal(got.Services)
	b, _ := json.Marshal(want.Services)
	if !bytes.Equal(a, b) {
		t.Fatalf("demoCatalog differs from %s:\n%s\n%s", DefaultCatalog, a, b)
	}
}

// TestDemoReceiverVerifies: the receiver takes a correctly signed webhook
// and refuses a forged or unsigned one.
func TestDemoReceiverVerifies(t *testing.T) {
	secret := bytes.Repeat([]byte{7}, 32)
	r := &demoReceiver{secrets: [][]byte{secret}}
	srv := httptest.NewServer(r)
	defer srv.Close()
	body, err := webhook.Generic(webhook.Incident{ID: "inc-1", Status: webhook.StatusOpen, Transition: webhook.TransitionOpened, Title: "t", OpenedAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	send := func(key []byte) int {
		req, _ := http.NewRequest("POST", srv.URL+"/hooks/oncall", bytes.NewReader(body))
		if key != nil {
			webhook.SetHeaders(req.Header, [][]byte{key}, "msg-1", time.Now(), body)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := send(secret); code != http.StatusNoContent || !r.got("inc-1", "opened") {
		t.Fatalf("signed webhook: %d, got %v", code, r.received())
	}
	if code := send(bytes.Repeat([]byte{8}, 32)); code != http.StatusUnauthorized {
		t.Fatalf("forged webhook: %d", code)
	}
	if code := send(nil); code != http.StatusUnauthorized {
		t.Fatalf("unsigned webhook: %d", code)
	}
	if r.rejected() != 2 || len(r.received()) != 1 {
		t.Fatalf("rejected %d, received %d", r.rejected(), len(r.received()))
	}
}

// watchWriter is the demo's output, calling on once with the first line
// that contains when.
type watchWriter struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	when string
	on   func()
}

func (w *watchWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.on != nil && bytes.Contains(p, []byte(w.when)) {
		w.on()
		w.on = nil
	}
	return w.buf.Write(p)
}

func (w *watchWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// TestDemoStopsOnSignal: Ctrl-C (SIGINT) stopped the pipeline, whose
// service.Run catches it, but not the demo, which then posted to a gateway
// that was gone ("connection refused") or polled ClickHouse for what the
// stopped pipeline would never write until -timeout, and failed either
// way. Stopped on a signal, it says so and exits 0 as every command does
// (docs/operations.md, "Exit codes").
func TestDemoStopsOnSignal(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: needs ClickHouse")
	}
	dsn := testenv.ClickHouse(t)
	// The pipeline is running (its service.Run has the signal) by then.
	w := &watchWriter{when: "  stored:", on: func() {
		if err := syscall.Kill(os.Getpid(), syscall.SIGINT); err != nil {
			t.Error(err)
		}
	}}
	start := time.Now()
	err := runDemo(context.Background(), []string{"-set", "store.dsn=" + dsn, "-out", t.TempDir(), "-database", "aiops_demo_signal", "-timeout", "60s"}, w)
	t.Log(w.String())
	if err != nil {
		t.Fatalf("interrupted, the demo failed after %s: %v", time.Since(start).Round(time.Second), err)
	}
	if !strings.Contains(w.String(), "interrupted") {
		t.Fatalf("the demo does not say it was interrupted")
	}
	if d := time.Since(start); d > 45*time.Second {
		t.Fatalf("the demo took %s to stop", d)
	}
}

// TestDemoUsesItsOwnTokens: the demo runs its own pipeline with its own
// generated tokens; an ingest or API token in the user's environment (set
// for `aiops run`) made the gateway use that one, no token file was made,
// and the demo failed with "open .../ingest-token: no such file".
func TestDemoUsesItsOwnTokens(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: needs ClickHouse")
	}
	dsn := testenv.ClickHouse(t)
	t.Setenv("AIOPS_INGEST__TOKENS", "[users-own-ingest-token-0123456789]")
	t.Setenv("AIOPS_CORRELATOR__API__TOKEN", "users-own-api-token-0123456789")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The first step is sent with the ingest token, and the incidents API
	// is asked with the API token, once "step 1/6" is printed.
	w := &watchWriter{when: "stored:", on: cancel}
	err := runDemo(ctx, []string{"-set", "store.dsn=" + dsn, "-out", t.TempDir(), "-database", "aiops_demo_tokens", "-timeout", "60s"}, w)
	t.Log(w.String())
	if !strings.Contains(w.String(), "stored:") {
		t.Fatalf("the demo did not get through its first step: %v", err)
	}
}

// TestDemoFailureKeepsItsCause: a demo that fails once its pipeline runs
// (here: a step not done within -timeout) must say why, not that the
// pipeline stopped: its own deferred stop ends the pipeline on the way out.
// It gets there also with a user configuration whose detector pipeline is
// a path relative to somewhere else (the example configuration, run from
// outside the checkout): the demo runs its own pipeline and takes only the
// store from it.
func TestDemoFailureKeepsItsCause(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: needs ClickHouse")
	}
	dsn := testenv.ClickHouse(t)
	userCfg := filepath.Join(t.TempDir(), "aiops.yaml")
	if err := os.WriteFile(userCfg, []byte("detector:\n  pipeline: pipelines/nowhere.yaml\nstore:\n  dsn: "+dsn+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, args := range map[string][]string{
		"set":         {"-set", "store.dsn=" + dsn, "-database", "aiops_demo_cause"},
		"user config": {"-config", userCfg, "-database", "aiops_demo_usercfg"},
	} {
		var w strings.Builder
		err := runDemo(context.Background(), append(args, "-out", t.TempDir(), "-timeout", "1ms"), &w)
		t.Log(w.String())
		if err == nil || !strings.Contains(err.Error(), "not done after") {
			t.Errorf("%s: the demo said %v, want the step that was not done in 1ms", name, err)
		}
	}
}
