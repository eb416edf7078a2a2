package ingest

import (
	"encoding/json"
	"math"
	"net/http"
	"strings"
	"testing"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"google.golang.org/protobuf/encoding/protowire"
)

// rwSeries encodes one remote-write TimeSeries with one sample.
func rwSeries(name string, v float64, ms int64) []byte {
	var ts []byte
	for _, l := range [][2]string{{"__name__", name}, {"job", "node"}} {
		var lb []byte
		lb = protowire.AppendTag(lb, 1, protowire.BytesType)
		lb = protowire.AppendString(lb, l[0])
		lb = protowire.AppendTag(lb, 2, protowire.BytesType)
		lb = protowire.AppendString(lb, l[1])
		ts = protowire.AppendTag(ts, 1, protowire.BytesType)
		ts = protowire.AppendBytes(ts, lb)
	}
	var sb []byte
	sb = protowire.AppendTag(sb, 1, protowire.Fixed64Type)
	sb = protowire.AppendFixed64(sb, math.Float64bits(v))
	sb = protowire.AppendTag(sb, 2, protowire.VarintType)
	sb = protowire.AppendVarint(sb, uint64(ms))
	ts = protowire.AppendTag(ts, 2, protowire.BytesType)
	return protowire.AppendBytes(ts, sb)
}

// Remote-write 1.0: "Remote write Receivers MAY ingest valid samples within
// a write request that otherwise contains invalid samples. Receivers MUST
// return a HTTP 400 status code ("Bad Request") for write requests that
// contain any invalid samples." A request of one good sample and one two
// hours in the future (a sender's clock ahead) may keep the good one, but
// must be answered 400, so that Prometheus logs the refusal and counts it
// in prometheus_remote_storage_samples_failed_total instead of reporting
// the batch sent.
func TestRemoteWriteInvalidSampleIs400(t *testing.T) {
	var req []byte
	for _, ts := range [][]byte{
		rwSeries("up", 1, testNow.UnixMilli()),
		rwSeries("node_load1", 0.5, testNow.Add(2*60*60*1e9).UnixMilli()),
	} {
		req = protowire.AppendTag(req, 1, protowire.BytesType)
		req = protowire.AppendBytes(req, ts)
	}
	pub := &fakePublisher{}
	rec := request{path: PathRemoteWrite, contentType: "application/x-protobuf", encoding: "snappy", body: snappy.Encode(nil, req)}.do(newTestHandler(t, pub, nil))
	if rec.Code != http.StatusBadRequest {
		t.Errorf("status %d, want 400 (a write request containing an invalid sample): %s", rec.Code, rec.Body)
	}
	if n := len(pub.published()); n != 1 {
		t.Errorf("%d events published, want the valid sample's", n)
	}
	if !strings.Contains(rec.Body.String(), "samples[0].timestamp") {
		t.Errorf("answer does not name the invalid sample: %s", rec.Body)
	}
}

// OTLP/HTTP: "The response body for all HTTP 4xx and HTTP 5xx responses
// MUST be a Protobuf-encoded Status message that describes the problem."
// and "The server MUST use the same "Content-Type" in the response as it
// received in the request." An OTLP JSON request refused gets a
// JSON-encoded google.rpc.Status: {"code": 3, "message": "..."}.
func TestOTLPJSONErrorIsStatus(t *testing.T) {
	h := newTestHandler(t, &fakePublisher{}, nil)
	for _, c := range []struct {
		req  request
		code int
	}{
		{request{path: PathOTLPLogs, contentType: "application/json", body: []byte(`{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"timeUnixNano":"1000000000000000000","body":{"stringValue":"old"}}]}]}]}`)}, 3},
		{request{path: PathOTLPMetrics, contentType: "application/json", body: []byte(`{"resourceMetrics":`)}, 3},
		{request{path: PathOTLPLogs, contentType: "application/json", token: "-", body: []byte(`{}`)}, 16},
	} {
		rec := c.req.do(h)
		if rec.Code < 400 {
			t.Fatalf("%s: status %d", c.req.path, rec.Code)
		}
		if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s: Content-Type %q", c.req.path, ct)
		}
		var st struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil {
			t.Fatalf("%s: %v", c.req.path, err)
		}
		if st.Code != c.code || st.Message == "" {
			t.Errorf("%s %d: Status{code: %d, message: %q}, want code %d and the problem; body %s", c.req.path, rec.Code, st.Code, st.Message, c.code, rec.Body)
		}
	}
}

// One OTLP export of 600 explicit-bucket histogram points (the OpenTelemetry
// SDKs' default 15 bounds: 18 events each), 600 data points, well under
// max_events points and 100 KB on the wire, as the Go SDK's periodic reader
// sends a service's metrics in one request it cannot split: refused whole
// with 413, which the exporter does not retry, so every metric of the
// service is lost at every export.
func TestOTLPHistogramFanOutIsNotRefusedWhole(t *testing.T) {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", "api")
	ms := rm.ScopeMetrics().AppendEmpty().Metrics()
	g := ms.AppendEmpty()
	g.SetName("goroutines")
	gp := g.SetEmptyGauge().DataPoints().AppendEmpty()
	gp.SetTimestamp(pcommon.NewTimestampFromTime(testNow))
	gp.SetIntValue(12)
	m := ms.AppendEmpty()
	m.SetName("http.server.request.duration")
	hist := m.SetEmptyHistogram()
	hist.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	bounds := []float64{0, 5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10000}
	for i := range 600 {
		dp := hist.DataPoints().AppendEmpty()
		dp.Attributes().PutInt("http.route", int64(i))
		dp.SetTimestamp(pcommon.NewTimestampFromTime(testNow))
		dp.SetCount(1)
		dp.SetSum(3)
		dp.ExplicitBounds().FromRaw(bounds)
		counts := make([]uint64, len(bounds)+1)
		counts[1] = 1
		dp.BucketCounts().FromRaw(counts)
	}
	body, err := pmetricotlp.NewExportRequestFromMetrics(md).MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	pub := &fakePublisher{}
	rec := request{path: PathOTLPMetrics, contentType: "application/x-protobuf", body: body}.do(newTestHandler(t, pub, nil))
	if rec.Code != http.StatusOK {
		code, msg := parseStatus(t, rec.Body.Bytes())
		t.Fatalf("%d bytes, 601 points: status %d (rpc %d %q), want 200 with what fits taken", len(body), rec.Code, code, msg)
	}
	if len(pub.published()) == 0 {
		t.Error("nothing published")
	}
}

// idleSummary is what the Collector's Prometheus receiver makes of a
// client_golang summary that observed nothing in its window: count and
// sum, and NaN quantiles; and a gauge of a series that ended, flagged
// "no recorded value".
func idleSummary(t *testing.T, jsonEnc bool) []byte {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", "cart")
	ms := rm.ScopeMetrics().AppendEmpty().Metrics()
	s := ms.AppendEmpty()
	s.SetName("rpc_latency_seconds")
	dp := s.SetEmptySummary().DataPoints().AppendEmpty()
	dp.SetTimestamp(pcommon.NewTimestampFromTime(testNow))
	dp.SetCount(12)
	dp.SetSum(3.5)
	for _, q := range []float64{0.5, 0.99} {
		qv := dp.QuantileValues().AppendEmpty()
		qv.SetQuantile(q)
		qv.SetValue(math.NaN())
	}
	g := ms.AppendEmpty()
	g.SetName("queue_size")
	gp := g.SetEmptyGauge().DataPoints().AppendEmpty()
	gp.SetTimestamp(pcommon.NewTimestampFromTime(testNow))
	gp.SetFlags(pmetric.DefaultDataPointFlags.WithNoRecordedValue(true))
	req := pmetricotlp.NewExportRequestFromMetrics(md)
	return marshalOTLP(t, req, jsonEnc)
}

// NaN quantiles (a summary over no observations) and points flagged "no
// recorded value" are valid OTLP, as NaN and staleness markers are valid
// Prometheus samples: the answer is full success, not a partial_success
// counting them as rejected, which made the exporters log an error for
// data nothing was wrong with at every export. What the gateway did not
// store is counted in the JSON answer's skipped and in
// aiops_ingest_skipped_total.
func TestOTLPNaNQuantilesAndStalePointsAreNotRejected(t *testing.T) {
	pub := &fakePublisher{}
	h := newTestHandler(t, pub, nil)
	rec := request{path: PathOTLPMetrics, contentType: "application/x-protobuf", body: idleSummary(t, false)}.do(h)
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	resp := pmetricotlp.NewExportResponse()
	if err := resp.UnmarshalProto(rec.Body.Bytes()); err != nil {
		t.Fatal(err)
	}
	if ps := resp.PartialSuccess(); ps.RejectedDataPoints() != 0 || ps.ErrorMessage() != "" {
		t.Errorf("partial_success %d rejected, %q; want full success", ps.RejectedDataPoints(), ps.ErrorMessage())
	}
	var names []string
	for _, e := range pub.published() {
		names = append(names, e.Labels["__name__"])
	}
	if strings.Join(names, " ") != "rpc_latency_seconds_count rpc_latency_seconds_sum" {
		t.Errorf("published %v, want the summary's count and sum", names)
	}

	rec = request{path: PathOTLPMetrics, contentType: "application/json", body: idleSummary(t, true)}.do(h)
	var ours Response
	if err := json.Unmarshal(rec.Body.Bytes(), &ours); rec.Code != http.StatusOK || err != nil {
		t.Fatalf("JSON: status %d: %s", rec.Code, rec.Body)
	}
	if ours.PartialSuccess != nil || ours.Skipped["non_finite_values"] != 1 || ours.Skipped["stale_markers"] != 1 || ours.Accepted != 2 {
		t.Errorf("JSON answer %s, want 2 accepted, the NaN point and the stale one skipped, no partialSuccess", rec.Body)
	}
	for reason, want := range map[string]float64{"non_finite_values": 2, "stale_markers": 2} {
		if got := testutil.ToFloat64(h.m.skipped.WithLabelValues("otlp_metrics", reason)); got != want {
			t.Errorf("aiops_ingest_skipped_total{reason=%q} = %g, want %g", reason, got, want)
		}
	}
}

// OTLP/HTTP names application/x-protobuf; RFC 9996 registered
// application/protobuf for the same bytes (application/x-protobuf its
// deprecated alias), and clients built on the registration send it. Both
// are taken, answered with the request's own Content-Type as OTLP/HTTP
// requires, refusals included; media type parameters (a JSON client's
// charset) and letter case do not matter.
func TestOTLPTakesEveryProtobufMediaTypeAndParameters(t *testing.T) {
	for _, c := range []struct {
		path, contentType, answer string
		body                      []byte
	}{
		{PathOTLPLogs, "application/protobuf", "application/protobuf", otlpLogs(t, false, "x")},
		{PathOTLPMetrics, "application/protobuf", "application/protobuf", otlpGauge(t, false)},
		{PathOTLPMetrics, "Application/X-Protobuf", "application/x-protobuf", otlpGauge(t, false)},
		{PathOTLPLogs, "application/json; charset=utf-8", "application/json", otlpLogs(t, true, "x")},
		{PathOTLPMetrics, "application/json;charset=UTF-8", "application/json", otlpGauge(t, true)},
	} {
		pub := &fakePublisher{}
		rec := request{path: c.path, contentType: c.contentType, body: c.body}.do(newTestHandler(t, pub, nil))
		if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != c.answer {
			t.Errorf("%s %q: status %d type %q, want 200 %s: %s", c.path, c.contentType, rec.Code, rec.Header().Get("Content-Type"), c.answer, rec.Body)
			continue
		}
		if n := len(pub.published()); n != 1 {
			t.Errorf("%s %q: %d events published, want 1", c.path, c.contentType, n)
		}
	}
	rec := request{path: PathOTLPLogs, contentType: "application/protobuf", body: otlpLogs(t, false, "")}.do(newTestHandler(t, &fakePublisher{}, nil))
	if code, msg := parseStatus(t, rec.Body.Bytes()); rec.Code != http.StatusBadRequest || rec.Header().Get("Content-Type") != "application/protobuf" || code != 3 || !strings.Contains(msg, "logRecords[0].body") {
		t.Errorf("no valid record: status %d type %q, rpc status %d %q", rec.Code, rec.Header().Get("Content-Type"), code, msg)
	}
}

// A log attribute the gateway cut to fit a label is not a rejection (the
// record is taken, and the exporters would log an error at every export)
// but is counted in aiops_ingest_truncated_total, where an operator sees
// it.
func TestOTLPLogAttributeCutIsCountedNotRejected(t *testing.T) {
	pub := &fakePublisher{}
	h := newTestHandler(t, pub, nil)
	ld := plog.NewLogs()
	rl := ld.ResourceLogs().AppendEmpty()
	rl.Resource().Attributes().PutStr("service.name", "checkout")
	lr := rl.ScopeLogs().AppendEmpty().LogRecords().AppendEmpty()
	lr.SetTimestamp(pcommon.NewTimestampFromTime(testNow))
	lr.SetSeverityNumber(plog.SeverityNumberError)
	lr.Body().SetStr("payment failed")
	lr.Attributes().PutStr("exception.stacktrace", strings.Repeat("at com.shop.Checkout.pay(Checkout.java:42)\n", 500))
	body, err := plogotlp.NewExportRequestFromLogs(ld).MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	rec := request{path: PathOTLPLogs, contentType: "application/x-protobuf", body: body}.do(h)
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	resp := plogotlp.NewExportResponse()
	if err := resp.UnmarshalProto(rec.Body.Bytes()); err != nil {
		t.Fatal(err)
	}
	if ps := resp.PartialSuccess(); ps.RejectedLogRecords() != 0 || ps.ErrorMessage() != "" {
		t.Errorf("partial_success %d rejected, %q; want full success", ps.RejectedLogRecords(), ps.ErrorMessage())
	}
	if got := len(pub.published()); got != 1 {
		t.Fatalf("published %d events, want the record", got)
	}
	if got := testutil.ToFloat64(h.m.truncated.WithLabelValues("otlp_logs")); got != 1 {
		t.Errorf("aiops_ingest_truncated_total = %g, want 1", got)
	}
}
