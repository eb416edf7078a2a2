package decode

import (
	"errors"
	"runtime"
	"strings"
	"testing"

	"go.opentelemetry.io/collector/pdata/pcommon"
)

// A map or array value is turned into JSON (pcommon.Value.AsString), which
// writes a control character as a six-byte escape: 9 MiB of them in one
// attribute, a few KB gzipped, rendered 54 MiB, and the gateway held
// several copies of it (its RSS grew by about 175 MB a request, 3 GB at
// ingest.max_concurrent_requests) before cutting the value to a label's
// 4 KiB. The rendering is charged against max_expanded_bytes before it is
// made, so such a request is refused with ErrTooMuchOutput (413) having
// cost about its own size, wherever the value is: a log record's
// attribute or body, a resource's attribute, a data point's attribute.
func TestOTLPStructuredValueIsChargedBeforeItIsRendered(t *testing.T) {
	const limit = 1 << 20
	escapes := strings.Repeat("\x01", limit/4) // 1.5 MiB as JSON
	put := func(m pcommon.Map) { m.PutEmptyMap("blob").PutStr("x", escapes) }
	cases := []struct {
		name string
		body func(t *testing.T) []byte
		dec  func([]byte, Encoding, Options) (*Batch, error)
	}{
		{"log record attribute", func(t *testing.T) []byte {
			ld := sampleLogs()
			put(ld.ResourceLogs().At(0).ScopeLogs().At(0).LogRecords().At(0).Attributes())
			return encodeLogs(t, ld, Protobuf)
		}, OTLPLogs},
		{"log record body", func(t *testing.T) []byte {
			ld := sampleLogs()
			ld.ResourceLogs().At(0).ScopeLogs().At(0).LogRecords().At(0).Body().SetEmptySlice().AppendEmpty().SetStr(escapes)
			return encodeLogs(t, ld, Protobuf)
		}, OTLPLogs},
		{"log resource attribute", func(t *testing.T) []byte {
			ld := sampleLogs()
			put(ld.ResourceLogs().At(0).Resource().Attributes())
			return encodeLogs(t, ld, Protobuf)
		}, OTLPLogs},
		{"metric resource attribute", func(t *testing.T) []byte {
			md := sampleMetrics()
			put(md.ResourceMetrics().At(0).Resource().Attributes())
			return encodeMetrics(t, md, Protobuf)
		}, OTLPMetrics},
		{"data point attribute", func(t *testing.T) []byte {
			md := sampleMetrics()
			put(md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().At(0).Gauge().DataPoints().At(0).Attributes())
			return encodeMetrics(t, md, Protobuf)
		}, OTLPMetrics},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			body := c.body(t)
			o := opts()
			o.MaxExpandedBytes = limit
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := c.dec(body, Protobuf, o)
			runtime.ReadMemStats(&after)
			if !errors.Is(err, ErrTooMuchOutput) {
				t.Errorf("got %v, want ErrTooMuchOutput: the value renders to 1.5 MiB of JSON, over the 1 MiB limit", err)
			}
			// Decoding the request costs a few times its size; rendering
			// the value would cost several times 1.5 MiB.
			if got := after.TotalAlloc - before.TotalAlloc; got > 4*uint64(len(body)) {
				t.Errorf("decoding a %d-byte request allocated %d bytes, want at most %d", len(body), got, 4*len(body))
			}
		})
	}
}

// A map or array value whose JSON fits is charged as it renders and taken
// as before: a small one whole, a long one cut to a label's limit.
func TestOTLPStructuredValueUnderTheLimitIsTaken(t *testing.T) {
	ld := sampleLogs()
	lr := ld.ResourceLogs().At(0).ScopeLogs().At(0).LogRecords().At(0)
	lr.Attributes().PutEmptySlice("frames").AppendEmpty().SetStr(strings.Repeat("at Checkout.pay\n", 1000))
	b, err := OTLPLogs(encodeLogs(t, ld, Protobuf), Protobuf, opts())
	if err != nil {
		t.Fatal(err)
	}
	checkValid(t, b, SourceOTLP)
	eq(t, "cut", b.Truncated, 1)
	eq(t, "small map", b.Events[0].Labels["user"], `{"tier":"gold"}`)
	md := sampleMetrics()
	md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().At(0).Gauge().DataPoints().At(0).Attributes().PutEmptyMap("pool.tags").PutBool("young", true)
	mb, err := OTLPMetrics(encodeMetrics(t, md, Protobuf), Protobuf, opts())
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "refused points", mb.Skipped[SkippedInvalid], 0)
	eq(t, "map label", mb.Events[0].Labels["pool.tags"], `{"young":true}`)
}
