package ingest

import (
	"errors"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// Every answer is counted by endpoint and code; accepted events and body
// bytes by endpoint; every request's duration observed.
func TestGatewayMetrics(t *testing.T) {
	pub := &fakePublisher{}
	clk := &clock{now: testNow}
	h, err := New(Config{Tokens: []string{tokenA}}, pub, WithClock(clk.Now))
	if err != nil {
		t.Fatal(err)
	}
	body := `{"kind":"log","service":"api","time":"2026-11-21T11:59:00Z","body":{"message":"a"}}` + "\n" +
		`{"kind":"log","service":"api","time":"2026-11-21T11:59:01Z","body":{"message":"b"}}` + "\n"
	ok := request{path: PathEvents, contentType: "application/x-ndjson", token: "Bearer " + tokenA, body: []byte(body)}
	if w := ok.do(h); w.Code != 200 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	if w := (request{path: PathEvents, contentType: "application/x-ndjson", token: "Bearer nope", body: []byte(body)}).do(h); w.Code != 401 {
		t.Fatalf("wrong token: %d", w.Code)
	}
	if w := (request{path: "/nope", token: "Bearer " + tokenA}).do(h); w.Code != 404 {
		t.Fatalf("unknown path: %d", w.Code)
	}
	pub.fail = errors.New("bus down")
	if w := ok.do(h); w.Code != 503 {
		t.Fatalf("bus down: %d", w.Code)
	}
	for _, c := range []struct {
		endpoint, code string
		want           float64
	}{{"events", "200", 1}, {"events", "401", 1}, {"unknown", "404", 1}, {"events", "503", 1}} {
		if got := testutil.ToFloat64(h.m.requests.WithLabelValues(c.endpoint, c.code)); got != c.want {
			t.Errorf("requests %s %s: %g, want %g", c.endpoint, c.code, got, c.want)
		}
	}
	if got := testutil.ToFloat64(h.m.events.WithLabelValues("events")); got != 2 {
		t.Errorf("events accepted: %g, want 2 (the 503's were not)", got)
	}
	if got := testutil.ToFloat64(h.m.bytes.WithLabelValues("events")); got != float64(2*len(body)) {
		t.Errorf("bytes: %g, want %d (the two requests read whole)", got, 2*len(body))
	}
	if n := testutil.CollectAndCount(h.m, "aiops_ingest_request_duration_seconds"); n != 2 {
		t.Errorf("%d duration series, want events and unknown", n)
	}
	if problems, err := testutil.CollectAndLint(h.Collector()); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
	if !strings.HasPrefix(h.m.requests.WithLabelValues("events", "200").Desc().String(), `Desc{fqName: "aiops_ingest_requests_total"`) {
		t.Errorf("name: %s", h.m.requests.WithLabelValues("events", "200").Desc())
	}
}
