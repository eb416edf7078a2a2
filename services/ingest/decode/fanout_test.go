package decode

import (
	"fmt"
	"runtime"
	"strings"
	"testing"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

// stalePointRequest is one OTLP metrics request with a single data point
// flagged "no recorded value" that has attrs attributes and fanout
// quantiles (summary) or explicit buckets (histogram).
func stalePointRequest(t *testing.T, histogram bool, attrs, fanout int) []byte {
	t.Helper()
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", "svc")
	m := rm.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	m.SetName("m")
	ts := uint64(testNow.UnixNano())
	if histogram {
		h := m.SetEmptyHistogram()
		h.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
		dp := h.DataPoints().AppendEmpty()
		dp.SetTimestamp(pcommon.Timestamp(ts))
		dp.SetFlags(pmetric.DefaultDataPointFlags.WithNoRecordedValue(true))
		for i := 0; i < attrs; i++ {
			dp.Attributes().PutStr(fmt.Sprintf("a%d", i), "")
		}
		for i := 0; i < fanout; i++ {
			dp.ExplicitBounds().Append(float64(i))
			dp.BucketCounts().Append(0)
		}
		dp.BucketCounts().Append(0)
	} else {
		dp := m.SetEmptySummary().DataPoints().AppendEmpty()
		dp.SetTimestamp(pcommon.Timestamp(ts))
		dp.SetFlags(pmetric.DefaultDataPointFlags.WithNoRecordedValue(true))
		for i := 0; i < attrs; i++ {
			dp.Attributes().PutStr(fmt.Sprintf("a%d", i), "")
		}
		for i := 0; i < fanout; i++ {
			q := dp.QuantileValues().AppendEmpty()
			q.SetQuantile(float64(i) / float64(fanout))
			q.SetValue(1)
		}
	}
	return encodeMetrics(t, md, Protobuf)
}

// One data point that becomes a series per bucket or quantile is checked
// before its attributes are copied for each (their product, thousands by
// thousands, in a request of a few hundred KB): a stale one is skipped
// whole, counted once, and one with more attributes than an event
// holds beside le or quantile is refused, naming them.
func TestFannedOutPointCheckedBeforeItsAttributesAreCopied(t *testing.T) {
	for _, histogram := range []bool{false, true} {
		const n = 1_000
		body := stalePointRequest(t, histogram, n, n)
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		b, err := OTLPMetrics(body, Protobuf, opts())
		runtime.ReadMemStats(&after)
		if err != nil {
			t.Fatalf("histogram %v: %v", histogram, err)
		}
		// about ten times the request's size; copied for each bucket, the
		// attributes took 80 MB for this 30 KB request
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 100*uint64(len(body)) {
			t.Errorf("histogram %v: decoding a %d-byte request of one stale point allocated %d bytes", histogram, len(body), alloc)
		}
		if len(b.Events) != 0 || b.Skipped[SkippedStaleMarkers] != 1 {
			t.Errorf("histogram %v, a stale point: %d events, %d stale markers skipped; want none, the point once", histogram, len(b.Events), b.Skipped[SkippedStaleMarkers])
		}
		live := stalePointRequest(t, histogram, 200, 5)
		md, err := (&pmetric.ProtoUnmarshaler{}).UnmarshalMetrics(live)
		if err != nil {
			t.Fatal(err)
		}
		m := md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().At(0)
		if histogram {
			m.Histogram().DataPoints().At(0).SetFlags(pmetric.DefaultDataPointFlags)
		} else {
			m.Summary().DataPoints().At(0).SetFlags(pmetric.DefaultDataPointFlags)
		}
		b, err = OTLPMetrics(encodeMetrics(t, md, Protobuf), Protobuf, opts())
		if err == nil && len(b.Events) > 0 {
			t.Fatalf("histogram %v: a point of 200 attributes made %d events", histogram, len(b.Events))
		}
		if err == nil || !strings.Contains(err.Error(), "attributes") {
			t.Errorf("histogram %v: a point of 200 attributes: %v, want it refused naming its attributes", histogram, err)
		}
	}
}
