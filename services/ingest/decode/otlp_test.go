package decode

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/aiops-dev/aiops/pkg/event"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
)

func sampleLogs() plog.Logs {
	ld := plog.NewLogs()
	rl := ld.ResourceLogs().AppendEmpty()
	rl.Resource().Attributes().PutStr("service.name", "checkout")
	rl.Resource().Attributes().PutStr("host.name", "web-1")
	sl := rl.ScopeLogs().AppendEmpty()
	sl.Scope().SetName("checkout/payments")

	lr := sl.LogRecords().AppendEmpty()
	lr.SetTimestamp(pcommon.NewTimestampFromTime(t0))
	lr.SetObservedTimestamp(pcommon.NewTimestampFromTime(t0.Add(time.Second)))
	lr.SetSeverityNumber(plog.SeverityNumberError)
	lr.SetSeverityText("oops") // the number wins
	lr.Body().SetStr("payment declined for order 42")
	lr.Attributes().PutStr("http.method", "POST")
	lr.Attributes().PutInt("http.status_code", 502)
	lr.Attributes().PutEmptyMap("user").PutStr("tier", "gold")
	lr.SetTraceID(pcommon.TraceID{0x5b, 0x8e, 0xfb, 0xf7, 0x98, 0x2b, 0x4e, 0x2b, 0x8b, 0x1c, 0x6d, 0x1b, 0x1f, 0x1e, 0xab, 0xcd})
	lr.SetSpanID(pcommon.SpanID{1, 2, 3, 4, 5, 6, 7, 8})

	lr = sl.LogRecords().AppendEmpty()
	lr.SetObservedTimestamp(pcommon.NewTimestampFromTime(t0.Add(2 * time.Second)))
	lr.SetSeverityText("WARN")
	lr.Body().SetEmptyMap().PutStr("msg", "slow query")

	rl = ld.ResourceLogs().AppendEmpty() // a resource without service.name
	lr = rl.ScopeLogs().AppendEmpty().LogRecords().AppendEmpty()
	lr.SetEventName("session.start")
	return ld
}

func encodeLogs(t *testing.T, ld plog.Logs, enc Encoding) []byte {
	t.Helper()
	req := plogotlp.NewExportRequestFromLogs(ld)
	var (
		b   []byte
		err error
	)
	if enc == JSON {
		b, err = req.MarshalJSON()
	} else {
		b, err = req.MarshalProto()
	}
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestOTLPLogs(t *testing.T) {
	for _, enc := range []Encoding{Protobuf, JSON} {
		t.Run(enc.String(), func(t *testing.T) {
			b, err := OTLPLogs(encodeLogs(t, sampleLogs(), enc), enc, opts())
			if err != nil {
				t.Fatal(err)
			}
			checkValid(t, b, SourceOTLP)
			if len(b.Events) != 3 {
				t.Fatalf("got %d events, want 3", len(b.Events))
			}
			e := b.Events[0]
			eq(t, "kind", e.Kind, event.KindLog)
			eq(t, "service", e.Service, "checkout")
			eq(t, "resource", e.Resource, map[string]string{"service.name": "checkout", "host.name": "web-1"})
			eq(t, "labels", e.Labels, map[string]string{"http.method": "POST", "http.status_code": "502", "user": `{"tier":"gold"}`})
			eq(t, "severity from number", e.Severity, event.SeverityError)
			eq(t, "time", e.Time, t0)
			eq(t, "observed", e.ObservedTime, t0.Add(time.Second))
			eq(t, "body", body[event.LogBody](t, e), event.LogBody{
				Message: "payment declined for order 42",
				TraceID: "5b8efbf7982b4e2b8b1c6d1b1f1eabcd",
				SpanID:  "0102030405060708",
			})

			e = b.Events[1]
			eq(t, "severity from text", e.Severity, event.SeverityWarning)
			eq(t, "time from observed", e.Time, t0.Add(2*time.Second))
			eq(t, "map body as JSON", body[event.LogBody](t, e).Message, `{"msg":"slow query"}`)
			eq(t, "no labels", len(e.Labels), 0)

			e = b.Events[2]
			eq(t, "unknown service", e.Service, UnknownService)
			eq(t, "time from receive", e.Time, testNow)
			eq(t, "event name as message", body[event.LogBody](t, e).Message, "session.start")
			eq(t, "no severity", e.Severity, event.Severity(""))
		})
	}
}

// Records alike in body, time and severity (a shipper's repeated line
// within one second) are several events, each with its own id, so the
// stream's deduplication does not drop them; the same request decoded
// again (a retry) gives the same ids.
func TestOTLPLogsRepeatedLinesKeepTheirOwnIDs(t *testing.T) {
	ld := plog.NewLogs()
	rl := ld.ResourceLogs().AppendEmpty()
	rl.Resource().Attributes().PutStr("service.name", "checkout")
	sl := rl.ScopeLogs().AppendEmpty()
	for range 3 {
		lr := sl.LogRecords().AppendEmpty()
		lr.SetTimestamp(pcommon.NewTimestampFromTime(t0))
		lr.SetSeverityNumber(plog.SeverityNumberError)
		lr.Body().SetStr("connection refused")
	}
	req := encodeLogs(t, ld, Protobuf)
	first, err := OTLPLogs(req, Protobuf, opts())
	if err != nil {
		t.Fatal(err)
	}
	retry, err := OTLPLogs(req, Protobuf, opts())
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for i, e := range first.Events {
		ids[e.ID] = true
		if retry.Events[i].ID != e.ID {
			t.Errorf("record %d: id %s, on a retry %s: want the same", i, e.ID, retry.Events[i].ID)
		}
	}
	if len(ids) != 3 {
		t.Fatalf("3 repeated records got %d distinct ids, want 3", len(ids))
	}
}

// Two requests of the same line at the same time without an observed time
// (a shipper that repeats an error within its timestamps' second, in two
// batches) are the same content: without more, the second is taken for a
// retry of the first and the stream drops it. A producer that names its
// requests with an Idempotency-Key tells them apart: the key is part of
// the ids, so each request's lines are stored, and a retry with the key
// of its request keeps its ids.
func TestOTLPLogsIdempotencyKeyTellsRequestsApart(t *testing.T) {
	ld := plog.NewLogs()
	rl := ld.ResourceLogs().AppendEmpty()
	rl.Resource().Attributes().PutStr("service.name", "checkout")
	lr := rl.ScopeLogs().AppendEmpty().LogRecords().AppendEmpty()
	lr.SetTimestamp(pcommon.NewTimestampFromTime(t0))
	lr.SetSeverityNumber(plog.SeverityNumberError)
	lr.Body().SetStr("connection refused")
	body := encodeLogs(t, ld, Protobuf)
	id := func(key string, now time.Time) string {
		t.Helper()
		b, err := OTLPLogs(body, Protobuf, Options{Now: now, IdempotencyKey: key})
		if err != nil {
			t.Fatal(err)
		}
		return b.Events[0].ID
	}
	first, second := id("batch-1", testNow), id("batch-2", testNow.Add(time.Second))
	if first == second {
		t.Fatalf("the same line in two requests with their own Idempotency-Key: one id %s, want one each (the stream keeps one)", first)
	}
	if retry := id("batch-1", testNow.Add(time.Minute)); retry != first {
		t.Errorf("a retry with the request's key: id %s, want %s", retry, first)
	}
	if a, b := id("", testNow), id("", testNow.Add(time.Minute)); a != b {
		t.Errorf("without a key a retry got id %s, then %s: want the same", a, b)
	}
}

func TestLogSeverity(t *testing.T) {
	cases := []struct {
		n    plog.SeverityNumber
		text string
		want event.Severity
	}{
		{plog.SeverityNumberTrace, "", event.SeverityDebug},
		{plog.SeverityNumberDebug4, "", event.SeverityDebug},
		{plog.SeverityNumberInfo, "ERROR", event.SeverityInfo},
		{plog.SeverityNumberWarn2, "", event.SeverityWarning},
		{plog.SeverityNumberError3, "", event.SeverityError},
		{plog.SeverityNumberFatal, "", event.SeverityCritical},
		{plog.SeverityNumberUnspecified, "fatal", event.SeverityCritical},
		{plog.SeverityNumberUnspecified, "verbose", ""},
	}
	for _, c := range cases {
		eq(t, c.n.String()+"/"+c.text, logSeverity(c.n, c.text), c.want)
	}
}

func TestOTLPLogsErrors(t *testing.T) {
	t.Run("garbage", func(t *testing.T) {
		for _, enc := range []Encoding{Protobuf, JSON} {
			_, err := OTLPLogs([]byte("\xff\xffnot otlp"), enc, opts())
			p := hasProblem(t, err, NoItem, "")
			if !strings.Contains(p.Problem, "ExportLogsServiceRequest ("+enc.String()) {
				t.Errorf("problem %q does not name the message and encoding", p.Problem)
			}
		}
	})
	t.Run("empty body and bad attribute", func(t *testing.T) {
		ld := sampleLogs()
		lrs := ld.ResourceLogs().At(0).ScopeLogs().At(0).LogRecords()
		lrs.At(1).Body().SetStr("")
		lrs.At(0).Attributes().PutStr("bad", "\xff")
		b, err := OTLPLogs(encodeLogs(t, ld, Protobuf), Protobuf, opts())
		refusedProblem(t, b, err, 0, "scopeLogs[0].logRecords[1].body")
		refusedProblem(t, b, err, 0, "scopeLogs[0].logRecords[0].attributes.bad")
		if err != nil || len(b.Events) != 1 || b.Skipped[SkippedInvalid] != 2 {
			t.Fatalf("two bad records and a good one: %v, want the good one taken and 2 refused", err)
		}
	})
	t.Run("too many", func(t *testing.T) {
		o := opts()
		o.MaxEvents = 2
		if _, err := OTLPLogs(encodeLogs(t, sampleLogs(), Protobuf), Protobuf, o); !errors.Is(err, ErrTooManyEvents) {
			t.Fatalf("want ErrTooManyEvents, got %v", err)
		}
	})
}

func sampleMetrics() pmetric.Metrics {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", "cart")
	ms := rm.ScopeMetrics().AppendEmpty().Metrics()
	ts := pcommon.NewTimestampFromTime(t0)

	g := ms.AppendEmpty()
	g.SetName("process.memory.usage")
	g.SetUnit("By")
	dp := g.SetEmptyGauge().DataPoints().AppendEmpty()
	dp.SetTimestamp(ts)
	dp.SetDoubleValue(1.5e8)
	dp.Attributes().PutStr("pool", "heap")

	s := ms.AppendEmpty()
	s.SetName("http.server.requests")
	sum := s.SetEmptySum()
	sum.SetIsMonotonic(true)
	sum.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	dp = sum.DataPoints().AppendEmpty()
	dp.SetTimestamp(ts)
	dp.SetIntValue(1200)
	stale := sum.DataPoints().AppendEmpty()
	stale.SetTimestamp(ts)
	stale.SetFlags(pmetric.DefaultDataPointFlags.WithNoRecordedValue(true))

	d := ms.AppendEmpty()
	d.SetName("jobs.done")
	delta := d.SetEmptySum()
	delta.SetIsMonotonic(true)
	delta.SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
	dp = delta.DataPoints().AppendEmpty()
	dp.SetTimestamp(ts)
	dp.SetIntValue(7)
	nan := delta.DataPoints().AppendEmpty()
	nan.SetTimestamp(ts)
	nan.SetDoubleValue(math.NaN())

	h := ms.AppendEmpty()
	h.SetName("rpc.duration")
	h.SetUnit("ms")
	hist := h.SetEmptyHistogram()
	hist.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	hdp := hist.DataPoints().AppendEmpty()
	hdp.SetTimestamp(ts)
	hdp.SetCount(40)
	hdp.SetSum(812.5)
	hdp.ExplicitBounds().FromRaw([]float64{10, 100})
	hdp.BucketCounts().FromRaw([]uint64{30, 8, 2})
	hdp.Attributes().PutStr("method", "Get")

	sm := ms.AppendEmpty()
	sm.SetName("gc.pause")
	sdp := sm.SetEmptySummary().DataPoints().AppendEmpty()
	sdp.SetTimestamp(ts)
	sdp.SetCount(3)
	sdp.SetSum(0.75)
	q := sdp.QuantileValues().AppendEmpty()
	q.SetQuantile(0.99)
	q.SetValue(0.4)
	return md
}

func encodeMetrics(t *testing.T, md pmetric.Metrics, enc Encoding) []byte {
	t.Helper()
	req := pmetricotlp.NewExportRequestFromMetrics(md)
	var (
		b   []byte
		err error
	)
	if enc == JSON {
		b, err = req.MarshalJSON()
	} else {
		b, err = req.MarshalProto()
	}
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// An OTLP protobuf answer is empty for full success, a stale and a NaN
// point included (valid OTLP, not stored: OTLPPartialSuccess), and
// counts the refused points in its partial_success.
func TestOTLPResponse(t *testing.T) {
	md := sampleMetrics()
	b, err := OTLPMetrics(encodeMetrics(t, md, Protobuf), Protobuf, opts())
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "skipped", b.Skipped, map[string]int{SkippedStaleMarkers: 1, SkippedNonFinite: 1})
	if out, err := OTLPResponse(false, b); err != nil || len(out) != 0 {
		t.Fatalf("a stale and a NaN point: %x, %v; want the empty message", out, err)
	}
	md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().At(0).Gauge().DataPoints().At(0).SetTimestamp(0)
	if b, err = OTLPMetrics(encodeMetrics(t, md, Protobuf), Protobuf, opts()); err != nil {
		t.Fatal(err)
	}
	out, err := OTLPResponse(false, b)
	if err != nil {
		t.Fatal(err)
	}
	resp := pmetricotlp.NewExportResponse()
	if err := resp.UnmarshalProto(out); err != nil {
		t.Fatal(err)
	}
	if ps := resp.PartialSuccess(); ps.RejectedDataPoints() != 1 || ps.ErrorMessage() != `item 0: field "scopeMetrics[0].metrics[0].gauge.dataPoints[0].timeUnixNano": is required` {
		t.Fatalf("partial_success %d rejected, %q; want the refused point alone, named", ps.RejectedDataPoints(), ps.ErrorMessage())
	}
	if out, err := OTLPResponse(true, &Batch{}); err != nil || len(out) != 0 {
		t.Fatalf("full success: %d bytes, %v; want the empty message", len(out), err)
	}
}

func TestOTLPMetrics(t *testing.T) {
	for _, enc := range []Encoding{Protobuf, JSON} {
		t.Run(enc.String(), func(t *testing.T) {
			b, err := OTLPMetrics(encodeMetrics(t, sampleMetrics(), enc), enc, opts())
			if err != nil {
				t.Fatal(err)
			}
			checkValid(t, b, SourceOTLP)
			eq(t, "skipped", b.Skipped, map[string]int{SkippedStaleMarkers: 1, SkippedNonFinite: 1})
			type want struct {
				labels map[string]string
				body   event.MetricBody
			}
			wants := []want{
				{map[string]string{"__name__": "process.memory.usage", "pool": "heap"}, event.MetricBody{Name: "process.memory.usage", Value: ptr(1.5e8), Unit: "By", Type: event.MetricGauge}},
				{map[string]string{"__name__": "http.server.requests"}, event.MetricBody{Name: "http.server.requests", Value: ptr(1200), Type: event.MetricCounter}},
				{map[string]string{"__name__": "jobs.done"}, event.MetricBody{Name: "jobs.done", Value: ptr(7), Type: event.MetricGauge}},
				{map[string]string{"__name__": "rpc.duration_count", "method": "Get"}, event.MetricBody{Name: "rpc.duration_count", Value: ptr(40), Type: event.MetricCounter}},
				{map[string]string{"__name__": "rpc.duration_sum", "method": "Get"}, event.MetricBody{Name: "rpc.duration_sum", Value: ptr(812.5), Unit: "ms", Type: event.MetricCounter}},
				// Buckets 30, 8, 2 over bounds 10, 100: cumulative, as Prometheus keeps them.
				{map[string]string{"__name__": "rpc.duration_bucket", "method": "Get", "le": "10"}, event.MetricBody{Name: "rpc.duration_bucket", Value: ptr(30), Type: event.MetricCounter}},
				{map[string]string{"__name__": "rpc.duration_bucket", "method": "Get", "le": "100"}, event.MetricBody{Name: "rpc.duration_bucket", Value: ptr(38), Type: event.MetricCounter}},
				{map[string]string{"__name__": "rpc.duration_bucket", "method": "Get", "le": "+Inf"}, event.MetricBody{Name: "rpc.duration_bucket", Value: ptr(40), Type: event.MetricCounter}},
				{map[string]string{"__name__": "gc.pause_count"}, event.MetricBody{Name: "gc.pause_count", Value: ptr(3), Type: event.MetricCounter}},
				{map[string]string{"__name__": "gc.pause_sum"}, event.MetricBody{Name: "gc.pause_sum", Value: ptr(0.75), Type: event.MetricCounter}},
				{map[string]string{"__name__": "gc.pause", "quantile": "0.99"}, event.MetricBody{Name: "gc.pause", Value: ptr(0.4), Type: event.MetricGauge}},
			}
			if len(b.Events) != len(wants) {
				t.Fatalf("got %d events, want %d", len(b.Events), len(wants))
			}
			for i, w := range wants {
				e := b.Events[i]
				eq(t, w.body.Name+" kind", e.Kind, event.KindMetric)
				eq(t, w.body.Name+" service", e.Service, "cart")
				eq(t, w.body.Name+" resource", e.Resource, map[string]string{"service.name": "cart"})
				eq(t, w.body.Name+" time", e.Time, t0)
				eq(t, w.body.Name+" labels", e.Labels, w.labels)
				eq(t, w.body.Name+" body", body[event.MetricBody](t, e), w.body)
			}
		})
	}
}

// A metric name that cannot be a label (__name__) is named as the
// metric's name, not as an attribute the producer never sent.
func TestOTLPMetricNameProblemNamesTheName(t *testing.T) {
	md := sampleMetrics()
	md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().At(0).SetName("memory\xff")
	b, err := OTLPMetrics(encodeMetrics(t, md, Protobuf), Protobuf, opts())
	p := refusedProblem(t, b, err, 0, "scopeMetrics[0].metrics[0].name")
	if !strings.Contains(p.Problem, "UTF-8") {
		t.Errorf("problem %q does not say what is wrong", p.Problem)
	}
}

func TestOTLPMetricsErrors(t *testing.T) {
	md := sampleMetrics()
	ms := md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics()
	ms.At(0).Gauge().DataPoints().At(0).SetTimestamp(0)
	ms.At(3).Histogram().DataPoints().At(0).SetTimestamp(0)
	ms.AppendEmpty().SetName("no.data")
	ms.AppendEmpty().SetEmptyGauge().DataPoints().AppendEmpty().SetTimestamp(1)
	b, err := OTLPMetrics(encodeMetrics(t, md, Protobuf), Protobuf, opts())
	refusedProblem(t, b, err, 0, "scopeMetrics[0].metrics[0].gauge.dataPoints[0].timeUnixNano")
	refusedProblem(t, b, err, 0, "scopeMetrics[0].metrics[3].histogram.dataPoints[0].timeUnixNano")
	refusedProblem(t, b, err, 0, "scopeMetrics[0].metrics[5]")
	refusedProblem(t, b, err, 0, "scopeMetrics[0].metrics[6].name")
	if err != nil {
		t.Fatalf("good points beside bad ones: %v, want them taken", err)
	}
	// The metric without data refuses no point; the nameless one its one.
	eq(t, "refused points", b.Skipped[SkippedInvalid], 3)

	// A histogram whose buckets do not fit its bounds, one whose bounds go
	// down: both named.
	md = sampleMetrics()
	ms = md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics()
	ms.At(3).Histogram().DataPoints().At(0).BucketCounts().FromRaw([]uint64{30, 10})
	bad := ms.At(3).Histogram().DataPoints().AppendEmpty()
	bad.SetTimestamp(1)
	bad.ExplicitBounds().FromRaw([]float64{5, 1})
	bad.BucketCounts().FromRaw([]uint64{1, 1, 1})
	b, err = OTLPMetrics(encodeMetrics(t, md, Protobuf), Protobuf, opts())
	refusedProblem(t, b, err, 0, "scopeMetrics[0].metrics[3].histogram.dataPoints[0].bucketCounts")
	refusedProblem(t, b, err, 0, "scopeMetrics[0].metrics[3].histogram.dataPoints[1].explicitBounds[1]")

	o := opts()
	o.MaxEvents = 10 // 11 events: the summary's quantile is one too many
	// The point past the limit is refused alone (partial success), the
	// others taken: an SDK cannot split its export by events.
	b, err = OTLPMetrics(encodeMetrics(t, sampleMetrics(), JSON), JSON, o)
	if err != nil {
		t.Fatalf("want the points within max_events taken, got %v", err)
	}
	if len(b.Events) > 10 || b.Skipped[SkippedInvalid] != 1 || len(b.Problems) != 1 || !strings.Contains(b.Problems[0].Problem, "past the 10 events") {
		t.Fatalf("%d events, skipped %v, problems %v", len(b.Events), b.Skipped, b.Problems)
	}
}

// An attribute value over a label's 4 KiB (OpenTelemetry's
// exception.stacktrace of a Java error is routinely larger) is cut to fit
// and marked so, as the SDKs' attribute value length limit does: refused,
// the record was lost, and with it exactly the error logs. A metric
// point's attribute names its series: over 4 KiB, it is still refused.
func TestOTLPLogAttributeOverALabelsLimitIsCut(t *testing.T) {
	trace := strings.Repeat("at com.shop.Checkout.pay(Checkout.java:42) é\n", 600)
	for _, enc := range []Encoding{Protobuf, JSON} {
		t.Run(enc.String(), func(t *testing.T) {
			ld := sampleLogs()
			lr := ld.ResourceLogs().At(0).ScopeLogs().At(0).LogRecords().At(0)
			lr.Attributes().PutStr("exception.stacktrace", trace)
			b, err := OTLPLogs(encodeLogs(t, ld, enc), enc, opts())
			if err != nil {
				t.Fatal(err)
			}
			checkValid(t, b, SourceOTLP)
			eq(t, "events", len(b.Events), 3)
			eq(t, "cut", b.Truncated, 1)
			got := b.Events[0].Labels["exception.stacktrace"]
			marker := fmt.Sprintf(" …[cut from %d bytes, %016x]", len(trace), fnv64a(trace))
			if len(got) > event.MaxLabelBytes || !strings.HasSuffix(got, marker) || !strings.HasPrefix(trace, strings.TrimSuffix(got, marker)) || !utf8.ValidString(got) {
				t.Errorf("cut value of %d bytes ends %q, want at most %d bytes of the trace's start, whole runes, then %q", len(got), got[max(0, len(got)-60):], event.MaxLabelBytes, marker)
			}
			eq(t, "other labels", b.Events[0].Labels["http.method"], "POST")

			md := sampleMetrics()
			md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().At(0).Gauge().DataPoints().At(0).Attributes().PutStr("query", trace)
			mb, err := OTLPMetrics(encodeMetrics(t, md, enc), enc, opts())
			if err != nil {
				t.Fatal(err)
			}
			refusedProblem(t, mb, err, 0, "scopeMetrics[0].metrics[0].gauge.dataPoints[0].attributes.query")

			// A resource's (a Java process.command_line and its
			// classpath) is cut too: refused, it refused every record
			// and point of the process.
			classpath := "java -cp " + strings.Repeat("/opt/app/lib/some-library-1.2.3.jar:", 200) + " com.shop.Main"
			ld = sampleLogs()
			ld.ResourceLogs().At(0).Resource().Attributes().PutStr("process.command_line", classpath)
			b, err = OTLPLogs(encodeLogs(t, ld, enc), enc, opts())
			if err != nil {
				t.Fatal(err)
			}
			checkValid(t, b, SourceOTLP)
			eq(t, "events of a long resource", len(b.Events), 3)
			eq(t, "cut", b.Truncated, 1)
			if got := b.Events[0].Resource["process.command_line"]; len(got) > event.MaxLabelBytes || !strings.HasSuffix(got, fmt.Sprintf(" …[cut from %d bytes, %016x]", len(classpath), fnv64a(classpath))) {
				t.Errorf("resource value of %d bytes ends %q", len(got), got[max(0, len(got)-40):])
			}
			md = sampleMetrics()
			md.ResourceMetrics().At(0).Resource().Attributes().PutStr("process.command_line", classpath)
			mb, err = OTLPMetrics(encodeMetrics(t, md, enc), enc, opts())
			if err != nil {
				t.Fatal(err)
			}
			checkValid(t, mb, SourceOTLP)
			if mb.Skipped[SkippedInvalid] != 0 || mb.Truncated != 1 {
				t.Errorf("points of a long resource: %d refused, %d cut; want none refused, one cut", mb.Skipped[SkippedInvalid], mb.Truncated)
			}
			// Another process, alike in its first 4 KiB and its length:
			// its series stay its own.
			other := classpath[:len(classpath)-len("com.shop.Main")] + "com.shop.Jobs"
			md = sampleMetrics()
			md.ResourceMetrics().At(0).Resource().Attributes().PutStr("process.command_line", other)
			ob, err := OTLPMetrics(encodeMetrics(t, md, enc), enc, opts())
			if err != nil {
				t.Fatal(err)
			}
			if ob.Events[0].Fingerprint == mb.Events[0].Fingerprint {
				t.Errorf("two processes alike in their first 4 KiB share the series %s", ob.Events[0].Fingerprint)
			}
		})
	}
}

// A log record's body over a message's 64 KiB as JSON (a stack trace the
// Collector's filelog receiver joined into one record, a line listing
// thousands of blocks) is cut to fit and marked, as an attribute over a
// label's limit is: refused, the record was lost (the Collector drops a
// request answered 400 and logs an error at every partial success), and
// with it exactly the error logs. Escapes count as JSON writes them.
func TestOTLPLogMessageOverTheLimitIsCut(t *testing.T) {
	trace := "java.lang.StackOverflowError\n" + strings.Repeat("\tat com.shop.Checkout.pay(Checkout.java:42) \"é\"\n", 3000)
	for _, enc := range []Encoding{Protobuf, JSON} {
		t.Run(enc.String(), func(t *testing.T) {
			ld := sampleLogs()
			ld.ResourceLogs().At(0).ScopeLogs().At(0).LogRecords().At(0).Body().SetStr(trace)
			b, err := OTLPLogs(encodeLogs(t, ld, enc), enc, opts())
			if err != nil {
				t.Fatal(err)
			}
			checkValid(t, b, SourceOTLP)
			eq(t, "events", len(b.Events), 3)
			eq(t, "cut", b.Truncated, 1)
			var body event.LogBody
			if err := json.Unmarshal(b.Events[0].Body, &body); err != nil {
				t.Fatal(err)
			}
			got := body.Message
			marker := fmt.Sprintf(" …[cut from %d bytes]", len(trace))
			if n := event.JSONStringLen(got); n > event.MaxLogMessageBytes || n < event.MaxLogMessageBytes-16 {
				t.Errorf("cut message is %d bytes as JSON, want at most %d and not much less", n, event.MaxLogMessageBytes)
			}
			if !strings.HasSuffix(got, marker) || !strings.HasPrefix(trace, strings.TrimSuffix(got, marker)) || !utf8.ValidString(got) {
				t.Errorf("cut message ends %q, want the trace's start, whole runes, then %q", got[max(0, len(got)-60):], marker)
			}
			if err := b.Events[0].CheckFits(); err != nil {
				t.Errorf("the cut record does not fit: %v", err)
			}
		})
	}
}

// One record outside the time window among good ones (an exporter's
// backlog after an outage) is refused alone: the OpenTelemetry exporters
// drop a whole request answered 400, so refusing it whole lost the good
// records with it. A request with no good record is still refused.
func TestOTLPLogsTakeTheGoodRecordsBesideABadOne(t *testing.T) {
	old := testNow.Add(-20 * 24 * time.Hour)
	logs := func(times ...time.Time) plog.Logs {
		ld := plog.NewLogs()
		rl := ld.ResourceLogs().AppendEmpty()
		rl.Resource().Attributes().PutStr("service.name", "checkout")
		sl := rl.ScopeLogs().AppendEmpty()
		for _, ts := range times {
			lr := sl.LogRecords().AppendEmpty()
			lr.SetTimestamp(pcommon.NewTimestampFromTime(ts))
			lr.Body().SetStr("line at " + ts.String())
		}
		return ld
	}
	for _, enc := range []Encoding{Protobuf, JSON} {
		t.Run(enc.String(), func(t *testing.T) {
			b, err := OTLPLogs(encodeLogs(t, logs(t0, old, t0.Add(time.Second)), enc), enc, opts())
			if err != nil {
				t.Fatalf("two good records beside an old one: %v, want them taken", err)
			}
			checkValid(t, b, SourceOTLP)
			eq(t, "events", len(b.Events), 2)
			eq(t, "refused records", b.Skipped[SkippedInvalid], 1)
			p := refusedProblem(t, b, err, 0, "scopeLogs[0].logRecords[1].timeUnixNano")
			if !strings.Contains(p.Problem, "before the gateway's clock") {
				t.Errorf("problem %q does not say why", p.Problem)
			}

			_, err = OTLPLogs(encodeLogs(t, logs(old, old.Add(time.Second)), enc), enc, opts())
			hasProblem(t, err, 0, "scopeLogs[0].logRecords[1].timeUnixNano")
		})
	}
}

// A data point is taken or refused whole: the count and sum of a
// histogram point whose buckets do not fit its bounds are not taken
// without its buckets, and the other points of the request are.
func TestOTLPMetricsTakeTheGoodPointsBesideBadOnes(t *testing.T) {
	for _, enc := range []Encoding{Protobuf, JSON} {
		t.Run(enc.String(), func(t *testing.T) {
			md := sampleMetrics()
			ms := md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics()
			ms.At(0).Gauge().DataPoints().At(0).SetTimestamp(pcommon.NewTimestampFromTime(testNow.Add(2 * time.Hour)))
			ms.At(3).Histogram().DataPoints().At(0).BucketCounts().FromRaw([]uint64{30, 10})
			b, err := OTLPMetrics(encodeMetrics(t, md, enc), enc, opts())
			if err != nil {
				t.Fatalf("good points beside two bad ones: %v, want them taken", err)
			}
			checkValid(t, b, SourceOTLP)
			refusedProblem(t, b, err, 0, "scopeMetrics[0].metrics[0].gauge.dataPoints[0].timeUnixNano")
			refusedProblem(t, b, err, 0, "scopeMetrics[0].metrics[3].histogram.dataPoints[0].bucketCounts")
			eq(t, "skipped", b.Skipped, map[string]int{SkippedStaleMarkers: 1, SkippedNonFinite: 1, SkippedInvalid: 2})
			var names []string
			for _, e := range b.Events {
				names = append(names, body[event.MetricBody](t, e).Name)
			}
			// Of the 11 events of sampleMetrics, the gauge's and the
			// histogram's five are not taken.
			eq(t, "taken", names, []string{"http.server.requests", "jobs.done", "gc.pause_count", "gc.pause_sum", "gc.pause"})

			only := pmetric.NewMetrics()
			dp := only.ResourceMetrics().AppendEmpty().ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
			dp.SetName("queue.size")
			dp.SetEmptyGauge().DataPoints().AppendEmpty().SetIntValue(3) // no time
			_, err = OTLPMetrics(encodeMetrics(t, only, enc), enc, opts())
			hasProblem(t, err, 0, "scopeMetrics[0].metrics[0].gauge.dataPoints[0].timeUnixNano")
		})
	}
}

// The partial_success of a request with refused records counts them and
// names their problems, so the exporter's log says what was dropped.
func TestOTLPResponseNamesRefusedRecords(t *testing.T) {
	ld := sampleLogs()
	ld.ResourceLogs().At(0).ScopeLogs().At(0).LogRecords().At(1).Body().SetStr("")
	b, err := OTLPLogs(encodeLogs(t, ld, Protobuf), Protobuf, opts())
	if err != nil {
		t.Fatal(err)
	}
	out, err := OTLPResponse(true, b)
	if err != nil {
		t.Fatal(err)
	}
	resp := plogotlp.NewExportResponse()
	if err := resp.UnmarshalProto(out); err != nil {
		t.Fatal(err)
	}
	ps := resp.PartialSuccess()
	if ps.RejectedLogRecords() != 1 || !strings.Contains(ps.ErrorMessage(), `item 0: field "scopeLogs[0].logRecords[1].body"`) {
		t.Fatalf("partial_success %d rejected, %q; want the refused record counted and its problem named", ps.RejectedLogRecords(), ps.ErrorMessage())
	}
}

// Two instrumentation scopes (libraries) that export the same metric
// name and attributes are two series, as OpenTelemetry's data model has
// them (a metric stream is identified by its scope too): with one
// fingerprint for both, the detector took the second scope's sample at
// the same time for a duplicate of the first and dropped it, and at times
// apart it scored the two streams as one series (two cumulative counters
// interleaved look like a reset at every sample), while metric_samples
// held two values of one series at one time. The scope's name and version
// are labels, as OpenTelemetry's Prometheus exporters add otel_scope_name
// and otel_scope_version; a point without a scope keeps its labels and
// fingerprint; a retry of the request gets the same ids.
func TestOTLPScopesAreSeriesOfTheirOwn(t *testing.T) {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", "checkout")
	for i, scope := range [][2]string{{"lib/a", "1.0"}, {"lib/b", "1.0"}, {"lib/b", "1.1"}, {"", ""}} {
		sm := rm.ScopeMetrics().AppendEmpty()
		sm.Scope().SetName(scope[0])
		sm.Scope().SetVersion(scope[1])
		m := sm.Metrics().AppendEmpty()
		m.SetName("requests")
		dp := m.SetEmptyGauge().DataPoints().AppendEmpty()
		dp.SetTimestamp(pcommon.NewTimestampFromTime(t0))
		dp.SetDoubleValue(float64(i))
		dp.Attributes().PutStr("route", "/cart")
	}
	for _, enc := range []Encoding{Protobuf, JSON} {
		t.Run(enc.String(), func(t *testing.T) {
			req := encodeMetrics(t, md, enc)
			first, err := OTLPMetrics(req, enc, opts())
			if err != nil {
				t.Fatal(err)
			}
			checkValid(t, first, SourceOTLP)
			retry, err := OTLPMetrics(req, enc, Options{Now: testNow.Add(time.Minute)})
			if err != nil {
				t.Fatal(err)
			}
			wantLabels := []map[string]string{
				{"__name__": "requests", "route": "/cart", "otel.scope.name": "lib/a", "otel.scope.version": "1.0"},
				{"__name__": "requests", "route": "/cart", "otel.scope.name": "lib/b", "otel.scope.version": "1.0"},
				{"__name__": "requests", "route": "/cart", "otel.scope.name": "lib/b", "otel.scope.version": "1.1"},
				{"__name__": "requests", "route": "/cart"},
			}
			if len(first.Events) != len(wantLabels) {
				t.Fatalf("%d events, want %d", len(first.Events), len(wantLabels))
			}
			fingerprints := map[string]int{}
			for i, e := range first.Events {
				eq(t, "labels", e.Labels, wantLabels[i])
				if j, dup := fingerprints[e.Fingerprint]; dup {
					t.Errorf("points %d and %d, of different scopes, have one fingerprint %s: want a series each", j, i, e.Fingerprint)
				}
				fingerprints[e.Fingerprint] = i
				if retry.Events[i].ID != e.ID {
					t.Errorf("point %d: id %s, on a retry %s: want the same", i, e.ID, retry.Events[i].ID)
				}
			}
			// A point without a scope is the series it always was.
			eq(t, "fingerprint without a scope", first.Events[3].Fingerprint,
				event.Fingerprint(event.KindMetric, "checkout", map[string]string{"__name__": "requests", "route": "/cart"}, map[string]string{"service.name": "checkout"}))
		})
	}

	// A point's own attribute of that name is kept; a scope name that
	// cannot be a label is named as the scope's field.
	sms := md.ResourceMetrics().At(0).ScopeMetrics()
	sms.At(0).Metrics().At(0).Gauge().DataPoints().At(0).Attributes().PutStr(ScopeNameLabel, "own")
	sms.At(1).Scope().SetName("lib/\xff")
	b, err := OTLPMetrics(encodeMetrics(t, md, Protobuf), Protobuf, opts())
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "own attribute", b.Events[0].Labels[ScopeNameLabel], "own")
	p := refusedProblem(t, b, err, 0, "scopeMetrics[1].scope.name")
	if !strings.Contains(p.Problem, "UTF-8") {
		t.Errorf("problem %q does not say what is wrong", p.Problem)
	}
}

// The labels the gateway adds to a point (__name__, a bucket's le, and
// otel.scope.name and otel.scope.version from its scope) count against
// event.MaxLabels with its attributes: a point of 126 attributes was
// refused as "attributes has 129 entries", a count its producer could not
// find in what it sent. The refusal names the added labels and how many
// attributes are too many; one attribute fewer is taken.
func TestOTLPLabelLimitNamesTheLabelsTheGatewayAdds(t *testing.T) {
	scoped := func() pmetric.Metric {
		md := pmetric.NewMetrics()
		rm := md.ResourceMetrics().AppendEmpty()
		rm.Resource().Attributes().PutStr("service.name", "checkout")
		sm := rm.ScopeMetrics().AppendEmpty()
		sm.Scope().SetName("lib/a")
		sm.Scope().SetVersion("1.0")
		m := sm.Metrics().AppendEmpty()
		m.SetName("requests")
		return m
	}
	attributes := func(m pcommon.Map, n int) {
		for i := range n {
			m.PutStr(fmt.Sprintf("a%d", i), "x")
		}
	}
	decoded := func(m pmetric.Metric) (*Batch, error) {
		t.Helper()
		md := pmetric.NewMetrics()
		rm := md.ResourceMetrics().AppendEmpty()
		rm.Resource().Attributes().PutStr("service.name", "checkout")
		sm := rm.ScopeMetrics().AppendEmpty()
		sm.Scope().SetName("lib/a")
		sm.Scope().SetVersion("1.0")
		m.CopyTo(sm.Metrics().AppendEmpty())
		return OTLPMetrics(encodeMetrics(t, md, Protobuf), Protobuf, opts())
	}
	says := func(p Problem, wants ...string) {
		t.Helper()
		for _, want := range wants {
			if !strings.Contains(p.Problem, want) {
				t.Errorf("problem %q does not say %q", p.Problem, want)
			}
		}
	}
	gauge := func(n int) pmetric.Metric {
		m := scoped()
		dp := m.SetEmptyGauge().DataPoints().AppendEmpty()
		dp.SetTimestamp(pcommon.NewTimestampFromTime(t0))
		dp.SetDoubleValue(1)
		attributes(dp.Attributes(), n)
		return m
	}
	b, err := decoded(gauge(event.MaxLabels - 2))
	says(refusedProblem(t, b, err, 0, "scopeMetrics[0].metrics[0].gauge.dataPoints[0].attributes"),
		"129 labels", "__name__", ScopeNameLabel, ScopeVersionLabel, "send 1 attribute fewer")
	b, err = decoded(gauge(event.MaxLabels - 3))
	if err != nil || len(b.Events) != 1 || len(b.Events[0].Labels) != event.MaxLabels {
		t.Fatalf("a point of %d labels in all: %v, %+v; want it taken", event.MaxLabels, err, b)
	}

	// A histogram's buckets have le too: its point is refused whole.
	h := scoped()
	dp := h.SetEmptyHistogram().DataPoints().AppendEmpty()
	dp.SetTimestamp(pcommon.NewTimestampFromTime(t0))
	dp.SetCount(2)
	dp.ExplicitBounds().FromRaw([]float64{1})
	dp.BucketCounts().FromRaw([]uint64{1, 1})
	attributes(dp.Attributes(), event.MaxLabels-3)
	b, err = decoded(h)
	says(refusedProblem(t, b, err, 0, "scopeMetrics[0].metrics[0].histogram.dataPoints[0].attributes"),
		"129 labels", "__name__, le, "+ScopeNameLabel)
}

// A histogram or summary point flagged "no recorded value" makes no
// series, and is one skipped data point, not one per series it would have
// made; it is not rejected (OTLPPartialSuccess).
func TestOTLPStaleHistogramIsOnePoint(t *testing.T) {
	md := sampleMetrics()
	ms := md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics()
	ms.At(3).Histogram().DataPoints().At(0).SetFlags(pmetric.DefaultDataPointFlags.WithNoRecordedValue(true))
	ms.At(4).Summary().DataPoints().At(0).SetFlags(pmetric.DefaultDataPointFlags.WithNoRecordedValue(true))
	b, err := OTLPMetrics(encodeMetrics(t, md, Protobuf), Protobuf, opts())
	if err != nil {
		t.Fatal(err)
	}
	// the sum's stale point, the histogram's and the summary's
	eq(t, "skipped", b.Skipped, map[string]int{SkippedStaleMarkers: 3, SkippedNonFinite: 1})
	if n, msg := OTLPPartialSuccess(b); n != 0 || msg != "" {
		t.Errorf("rejected data points %d %q, want none", n, msg)
	}
	for _, e := range b.Events {
		if n := e.Labels["__name__"]; strings.HasPrefix(n, "rpc.duration") || strings.HasPrefix(n, "gc.pause") {
			t.Errorf("a series %s of a point without a recorded value", n)
		}
	}
}

// An attribute key given twice (OTLP keys are unique, but the wire and
// the pdata decoders keep both) refuses its record, point or resource,
// naming the key, and the others are taken: made into labels, the last
// value silently replaced the first.
func TestOTLPDuplicateAttributeKeysAreRefused(t *testing.T) {
	ts := strconv.FormatInt(t0.UnixNano(), 10)
	attrs := func(keys ...string) string {
		var kv []string
		for i, k := range keys {
			kv = append(kv, fmt.Sprintf(`{"key":%q,"value":{"stringValue":"v%d"}}`, k, i))
		}
		return "[" + strings.Join(kv, ",") + "]"
	}
	record := func(keys ...string) string {
		return `{"timeUnixNano":"` + ts + `","body":{"stringValue":"m"},"attributes":` + attrs(keys...) + `}`
	}
	logs := `{"resourceLogs":[
		{"resource":{"attributes":` + attrs("service.name", "host") + `},"scopeLogs":[{"logRecords":[` + record("a", "b") + `,` + record("a", "b", "a") + `]}]},
		{"resource":{"attributes":` + attrs("service.name", "service.name") + `},"scopeLogs":[{"logRecords":[` + record() + `,` + record() + `]}]}]}`
	b, err := OTLPLogs([]byte(logs), JSON, opts())
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Events) != 1 || b.Events[0].Labels["a"] != "v0" || b.Skipped[SkippedInvalid] != 3 {
		t.Fatalf("%d events, skipped %v; want the record without a repeated key alone, 3 refused", len(b.Events), b.Skipped)
	}
	refusedProblem(t, b, err, 0, "scopeLogs[0].logRecords[1].attributes.a")
	refusedProblem(t, b, err, 1, "resource.attributes.service.name")

	point := func(keys ...string) string {
		return `{"timeUnixNano":"` + ts + `","asDouble":1,"attributes":` + attrs(keys...) + `}`
	}
	metrics := `{"resourceMetrics":[
		{"resource":{"attributes":` + attrs("service.name") + `},"scopeMetrics":[{"metrics":[
			{"name":"g","gauge":{"dataPoints":[` + point("x") + `,` + point("x", "y", "x") + `]}},
			{"name":"h","histogram":{"aggregationTemporality":2,"dataPoints":[{"timeUnixNano":"` + ts + `","count":"1","attributes":` + attrs("le", "le") + `}]}}]}]},
		{"resource":{"attributes":` + attrs("k", "k") + `},"scopeMetrics":[{"metrics":[{"name":"g","gauge":{"dataPoints":[` + point() + `]}}]}]}]}`
	b, err = OTLPMetrics([]byte(metrics), JSON, opts())
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Events) != 1 || b.Events[0].Labels["x"] != "v0" || b.Skipped[SkippedInvalid] != 3 {
		t.Fatalf("%d events, skipped %v; want the point without a repeated key alone, 3 refused", len(b.Events), b.Skipped)
	}
	refusedProblem(t, b, err, 0, "scopeMetrics[0].metrics[0].gauge.dataPoints[1].attributes.x")
	refusedProblem(t, b, err, 0, "scopeMetrics[0].metrics[1].histogram.dataPoints[0].attributes.le")
	refusedProblem(t, b, err, 1, "resource.attributes.k")
}

// A histogram point OTLP calls invalid made wrong le series without a
// word (a NaN bound became le="NaN", a +Inf bound a second le="+Inf",
// counts that do not add up to count a le="+Inf" that disagreed with
// _count, bounds without counts a histogram without its buckets): it is
// refused alone, the problem naming the field and the metric, and the
// good points beside it are taken. A point without buckets, which OTLP
// allows (no bounds, no counts), has its count and sum; one without a
// recorded value is skipped whatever its counts say.
func TestOTLPInvalidHistogramPointIsRefusedAlone(t *testing.T) {
	inf := math.Inf(1)
	for _, c := range []struct {
		name   string
		bounds []float64
		counts []uint64
		count  uint64
		field  string // below the bad point's path
		says   string
	}{
		{"NaN bound", []float64{math.NaN()}, []uint64{1, 1}, 2, "explicitBounds[0]", "is NaN, not a finite bound"},
		{"+Inf bound", []float64{1, inf}, []uint64{1, 1, 0}, 2, "explicitBounds[1]", "is +Inf, not a finite bound"},
		{"-Inf bound", []float64{-inf, 1}, []uint64{0, 1, 1}, 2, "explicitBounds[0]", "is -Inf, not a finite bound"},
		{"bounds without counts", []float64{1, 2}, nil, 2, "bucketCounts", "has 0 entries, want one more than explicitBounds (2)"},
		{"counts under count", []float64{1}, []uint64{1, 1}, 3, "bucketCounts", "add up to 2, not the point's count 3"},
		{"counts over count", []float64{1}, []uint64{2, 2}, 3, "bucketCounts", "add up to 4, not the point's count 3"},
		{"counts overflowing to count", []float64{1}, []uint64{math.MaxUint64, 4}, 3, "bucketCounts", "add up to more than 2^64-1"},
		{"bound not increasing", []float64{2, 2}, []uint64{1, 1, 0}, 2, "explicitBounds[1]", "greater than the bound before it"},
	} {
		t.Run(c.name, func(t *testing.T) {
			md := sampleMetrics()
			hist := md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().At(3).Histogram()
			bad := hist.DataPoints().AppendEmpty()
			bad.SetTimestamp(pcommon.NewTimestampFromTime(t0))
			bad.Attributes().PutStr("method", "Put")
			bad.SetCount(c.count)
			bad.SetSum(1)
			bad.ExplicitBounds().FromRaw(c.bounds)
			bad.BucketCounts().FromRaw(c.counts)
			b, err := OTLPMetrics(encodeMetrics(t, md, Protobuf), Protobuf, opts())
			if err != nil {
				t.Fatalf("good points beside a bad histogram point: %v, want them taken", err)
			}
			p := refusedProblem(t, b, err, 0, "scopeMetrics[0].metrics[3].histogram.dataPoints[1]."+c.field)
			for _, want := range []string{c.says, `histogram "rpc.duration"`} {
				if !strings.Contains(p.Problem, want) {
					t.Errorf("problem %q does not say %q", p.Problem, want)
				}
			}
			eq(t, "refused points", b.Skipped[SkippedInvalid], 1)
			if n, msg := OTLPPartialSuccess(b); n != 1 || !strings.Contains(msg, "rpc.duration") {
				t.Errorf("partial_success %d rejected, %q; want the point counted and its metric named", n, msg)
			}
			for _, e := range b.Events {
				if e.Labels["method"] == "Put" {
					t.Errorf("a series %v of the refused point", e.Labels)
				}
			}
			eq(t, "events", len(b.Events), 11) // all of sampleMetrics'
		})
	}

	md := sampleMetrics()
	hist := md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().At(3).Histogram()
	none := hist.DataPoints().AppendEmpty() // no buckets: count and sum only
	none.SetTimestamp(pcommon.NewTimestampFromTime(t0))
	none.Attributes().PutStr("method", "Put")
	none.SetCount(5)
	none.SetSum(9)
	stale := hist.DataPoints().AppendEmpty()
	stale.SetTimestamp(pcommon.NewTimestampFromTime(t0))
	stale.Attributes().PutStr("method", "Delete")
	stale.SetFlags(pmetric.DefaultDataPointFlags.WithNoRecordedValue(true))
	stale.ExplicitBounds().FromRaw([]float64{1})
	stale.BucketCounts().FromRaw([]uint64{7, 7})
	b, err := OTLPMetrics(encodeMetrics(t, md, Protobuf), Protobuf, opts())
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "skipped", b.Skipped, map[string]int{SkippedStaleMarkers: 2, SkippedNonFinite: 1})
	var put []string
	for _, e := range b.Events {
		if e.Labels["method"] == "Put" {
			put = append(put, e.Labels["__name__"])
		}
	}
	eq(t, "series of the point without buckets", put, []string{"rpc.duration_count", "rpc.duration_sum"})
}

// An attribute named after a label the gateway sets on a point's series
// (__name__ on any point, le on a histogram's, quantile on a summary's)
// was overwritten, so points that differ only in it became one series
// with two values at one time: such a point is refused alone, naming the
// attribute and the metric. The same names where the gateway sets no
// such label (le on a gauge, quantile on a histogram) are labels as any.
func TestOTLPAttributeNamedAfterAGatewayLabelIsRefused(t *testing.T) {
	for _, enc := range []Encoding{Protobuf, JSON} {
		t.Run(enc.String(), func(t *testing.T) {
			md := sampleMetrics()
			ms := md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics()
			gauge := ms.At(0).Gauge().DataPoints()
			ms.At(0).Gauge().DataPoints().At(0).Attributes().PutStr("le", "kept")
			gauge.At(0).CopyTo(gauge.AppendEmpty())
			gauge.At(1).Attributes().PutStr("__name__", "other")
			hist := ms.At(3).Histogram().DataPoints()
			hist.At(0).Attributes().PutStr("quantile", "kept")
			hist.At(0).CopyTo(hist.AppendEmpty())
			hist.At(1).Attributes().PutStr("le", "0.5")
			summary := ms.At(4).Summary().DataPoints()
			summary.At(0).CopyTo(summary.AppendEmpty())
			summary.At(1).Attributes().PutStr("quantile", "p99")

			b, err := OTLPMetrics(encodeMetrics(t, md, enc), enc, opts())
			if err != nil {
				t.Fatalf("good points beside three bad ones: %v, want them taken", err)
			}
			checkValid(t, b, SourceOTLP)
			for _, c := range []struct{ field, says string }{
				{"scopeMetrics[0].metrics[0].gauge.dataPoints[1].attributes.__name__", `metric "process.memory.usage" (the metric's name)`},
				{"scopeMetrics[0].metrics[3].histogram.dataPoints[1].attributes.le", `metric "rpc.duration" (the bound of each bucket`},
				{"scopeMetrics[0].metrics[4].summary.dataPoints[1].attributes.quantile", `metric "gc.pause" (the quantile of each value`},
			} {
				if p := refusedProblem(t, b, err, 0, c.field); !strings.Contains(p.Problem, c.says) {
					t.Errorf("problem %q does not say %q", p.Problem, c.says)
				}
			}
			eq(t, "skipped", b.Skipped, map[string]int{SkippedStaleMarkers: 1, SkippedNonFinite: 1, SkippedInvalid: 3})
			// The 11 events of sampleMetrics, none of the refused points'.
			eq(t, "events", len(b.Events), 11)
			eq(t, "gauge labels", b.Events[0].Labels, map[string]string{"__name__": "process.memory.usage", "pool": "heap", "le": "kept"})
			for _, e := range b.Events {
				if n := e.Labels["__name__"]; strings.HasPrefix(n, "rpc.duration") && e.Labels["quantile"] != "kept" {
					t.Errorf("histogram series %v without its quantile attribute", e.Labels)
				}
			}
		})
	}
}

// Invalid UTF-8 in an OTLP log record's body or event name, or inside a
// map or array attribute value, was rewritten to U+FFFD when made JSON
// and the record taken, where the gateway's JSON inputs refuse it
// (event.CheckJSON): the record is refused alone, naming the field; the
// same for a data point's or a resource's attribute and a metric's unit.
func TestOTLPInvalidUTF8IsRefusedNotRewritten(t *testing.T) {
	ld := plog.NewLogs()
	rl := ld.ResourceLogs().AppendEmpty()
	rl.Resource().Attributes().PutStr("service.name", "checkout")
	lrs := rl.ScopeLogs().AppendEmpty().LogRecords()
	record := func() plog.LogRecord {
		lr := lrs.AppendEmpty()
		lr.SetTimestamp(pcommon.NewTimestampFromTime(t0))
		lr.Body().SetStr(fmt.Sprintf("line %d", lrs.Len()))
		return lr
	}
	record() // good
	record().Body().SetStr("card \xff declined")
	record().Body().SetEmptyMap().PutEmptySlice("items").AppendEmpty().SetStr("\xfe")
	record().Body().SetEmptyMap().PutStr("ok\xff", "v")
	named := record()
	named.Body().SetStr("")
	named.SetEventName("session\xff")
	record().Attributes().PutEmptyMap("user").PutStr("name", "\xff")
	rl = ld.ResourceLogs().AppendEmpty()
	rl.Resource().Attributes().PutEmptySlice("hosts").AppendEmpty().SetStr("\xff")
	rl.ScopeLogs().AppendEmpty().LogRecords().AppendEmpty().Body().SetStr("m")

	for _, enc := range []Encoding{Protobuf, JSON} {
		b, err := OTLPLogs(encodeLogs(t, ld, enc), enc, opts())
		if err != nil {
			t.Fatalf("%s: a good record beside bad ones: %v, want it taken", enc, err)
		}
		for _, c := range []struct {
			item           int
			field, problem string
		}{
			{0, "scopeLogs[0].logRecords[1].body", "is not valid UTF-8"},
			{0, "scopeLogs[0].logRecords[2].body.items[0]", "is not valid UTF-8"},
			{0, "scopeLogs[0].logRecords[3].body", "has a key that is not valid UTF-8"},
			{0, "scopeLogs[0].logRecords[4].eventName", "is not valid UTF-8"},
			{0, "scopeLogs[0].logRecords[5].attributes.user.name", "is not valid UTF-8"},
			{1, "resource.attributes.hosts[0]", "is not valid UTF-8"},
		} {
			eq(t, enc.String()+" "+c.field, refusedProblem(t, b, err, c.item, c.field).Problem, c.problem)
		}
		eq(t, enc.String()+" refused records", b.Skipped[SkippedInvalid], 6)
		if len(b.Events) != 1 || body[event.LogBody](t, b.Events[0]).Message != "line 1" {
			t.Fatalf("%s: %d events, want the good record alone", enc, len(b.Events))
		}
	}

	md := sampleMetrics()
	ms := md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics()
	ms.At(0).SetUnit("\xffB")
	ms.At(1).Sum().DataPoints().At(0).Attributes().PutEmptyMap("peer").PutStr("host", "\xff")
	m, err := OTLPMetrics(encodeMetrics(t, md, Protobuf), Protobuf, opts())
	if err != nil {
		t.Fatalf("good points beside bad ones: %v, want them taken", err)
	}
	refusedProblem(t, m, err, 0, "scopeMetrics[0].metrics[0].unit")
	refusedProblem(t, m, err, 0, "scopeMetrics[0].metrics[1].sum.dataPoints[0].attributes.peer.host")
	eq(t, "refused points", m.Skipped[SkippedInvalid], 2)
	eq(t, "events", len(m.Events), 9)
}

func fnv64a(s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	return h.Sum64()
}
