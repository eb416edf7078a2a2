package decode

import (
	"math"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
)

// Structure-aware fuzz targets: the fuzzer picks the shape of a request
// (nesting depth, fan-out, label and sample counts, sizes, times) in a few
// bytes, and the generators of gen_test.go build it in the wire format. The
// byte-level targets of fuzz_test.go cannot reach a million levels or a
// request that expands a thousand times: their inputs are capped at 1 MiB
// and random bytes rarely form valid nested messages. These run their
// seeds (deep, wide and tiny shapes) in every `go test`; for a longer run:
//
//	go test -run '^$' -fuzz FuzzOTLPLogsShape -fuzztime 5m ./services/ingest/decode/
//	go test -run '^$' -fuzz FuzzRemoteWriteShape -fuzztime 5m ./services/ingest/decode/

// checkShapeOutcome is checkOutcome with the gateway's default limits, plus
// the bound on what an accepted request expands to.
func checkShapeOutcome(t *testing.T, b *Batch, err error) {
	t.Helper()
	o := opts().withDefaults()
	checkOutcome(t, b, err, o)
	if err != nil {
		return
	}
	total := 0
	for _, e := range b.Events {
		out, merr := e.AppendJSON(nil)
		if merr != nil {
			t.Fatalf("accepted event does not encode: %v", merr)
		}
		total += len(out)
	}
	if total > 2*o.MaxExpandedBytes {
		t.Fatalf("accepted events are %d bytes as JSON, over twice the %d expansion limit", total, o.MaxExpandedBytes)
	}
}

// FuzzOTLPLogsShape: records records, each with attrs attributes of
// attrLen bytes, under a resource of resAttrs attributes of attrLen bytes,
// whose body is a value nested depth levels (arrays, or maps when kv).
func FuzzOTLPLogsShape(f *testing.F) {
	for _, s := range []struct {
		depth                             uint32
		kv                                bool
		records, attrs, resAttrs, attrLen uint16
		tsOffsetSec                       int64
		leaf                              string
	}{
		{0, false, 1, 1, 1, 8, 0, "hello"},
		{30, false, 3, 2, 2, 8, -60, "x"},
		{31, true, 1, 0, 0, 0, 0, "x"},
		{1_000_000, false, 1, 0, 0, 0, 0, "deep"},
		{400_000, true, 1, 0, 0, 0, 0, "deep map"},
		{0, false, 10_000, 0, 120, 2000, 0, "wide resource"},
		{2, false, 20, 120, 0, 4000, 0, "wide attributes"},
		{0, false, 5, 1, 1, 1, -20 * 86400, "old"},
		{0, false, 5, 1, 1, 1, 2 * 3600, "future"},
		{0, false, 1, 0, 0, 0, 0, strings.Repeat("\x01", 70_000)},
	} {
		f.Add(s.depth, s.kv, s.records, s.attrs, s.resAttrs, s.attrLen, s.tsOffsetSec, s.leaf)
	}
	f.Fuzz(func(t *testing.T, depth uint32, kv bool, records, attrs, resAttrs, attrLen uint16, tsOffsetSec int64, leaf string) {
		depth %= 2_000_000
		// Sizes first: the generators must not build what the gateway
		// would refuse by size before any decoder ran.
		perLevel := 8 // two tags and two varints of up to three bytes
		if kv {
			perLevel = 14
		}
		estimate := int(resAttrs)*(int(attrLen)+16) + int(records)*(int(depth)*perLevel+len(leaf)+int(attrs)*(int(attrLen)+16)+32)
		if estimate > DefaultMaxDecodedBytes {
			t.Skip("over the gateway's 10 MiB decoded limit: refused before the decoder")
		}
		body := nestedAnyValue(int(depth), kv, leaf)
		ts := testNow.Add(0).UnixNano() + tsOffsetSec*1e9
		record := protowire.AppendTag(nil, 1, protowire.Fixed64Type)
		record = protowire.AppendFixed64(record, uint64(ts))
		record = pbMsg(record, 5, body)
		for i := range int(attrs) {
			record = pbMsg(record, 6, keyValue(i, int(attrLen)))
		}
		resource := otlpResource("svc")
		var resourceAttrs []byte
		for i := range int(resAttrs) {
			resourceAttrs = pbMsg(resourceAttrs, 1, keyValue(i, int(attrLen)))
		}
		resource = pbMsg(resource[:0], 1, append(resourceAttrs, resource[2:]...))
		size := len(resource) + int(records)*(len(record)+5)
		if size > DefaultMaxDecodedBytes {
			t.Skip("over the gateway's 10 MiB decoded limit: refused before the decoder")
		}
		var scope []byte
		for range int(records) {
			scope = pbMsg(scope, 2, record)
		}
		b, err := OTLPLogs(pbMsg(nil, 1, pbMsg(resource, 2, scope)), Protobuf, opts())
		checkShapeOutcome(t, b, err)
	})
}

// keyValue is a KeyValue "k<i>" = a string of n bytes.
func keyValue(i, n int) []byte {
	value := protowire.AppendTag(nil, 1, protowire.BytesType)
	value = protowire.AppendString(value, strings.Repeat("v", n))
	kv := protowire.AppendTag(nil, 1, protowire.BytesType)
	kv = protowire.AppendString(kv, "k"+strings.Repeat("x", i%7)+string(rune('a'+i%26))+string(rune('a'+i/26%26)))
	return pbMsg(kv, 2, value)
}

// FuzzRemoteWriteShape: series series of labels labels (values labelLen
// bytes) and samples samples each, every staleEvery-th sample a staleness
// marker, timed from tsOffsetMs around the receive time a step apart.
func FuzzRemoteWriteShape(f *testing.F) {
	for _, s := range []struct {
		series, labels, samples, labelLen uint16
		staleEvery                        uint8
		tsOffsetMs, stepMs                int64
	}{
		{1, 3, 1, 4, 0, 0, 0},
		{1, 128, 10_000, 5, 0, -10_000_000, 1000},
		{1, 129, 1, 4, 0, 0, 0},
		{10_001, 1, 0, 1, 0, 0, 0},
		{100, 20, 100, 10, 7, -60_000, 15_000},
		{2, 2, 3, 1, 0, -20 * 86_400_000, 1},
		{1, 2, 50, 1, 0, 0, 86_400_000},
		{1, 2, 1, 5000, 0, 0, 0},
	} {
		f.Add(s.series, s.labels, s.samples, s.labelLen, s.staleEvery, s.tsOffsetMs, s.stepMs)
	}
	f.Fuzz(func(t *testing.T, series, labels, samples, labelLen uint16, staleEvery uint8, tsOffsetMs, stepMs int64) {
		if int(series)*(int(labels)*(int(labelLen)+16)+int(samples)*12) > DefaultMaxDecodedBytes {
			t.Skip("over the gateway's 10 MiB decoded limit: refused before the decoder")
		}
		var all []rwSeries
		for s := range int(series) {
			rs := rwSeries{labels: []rwLabel{{"__name__", "m" + string(rune('a'+s%26))}}}
			for l := 1; l < int(labels); l++ {
				rs.labels = append(rs.labels, rwLabel{"l" + strings.Repeat("x", l/26) + string(rune('a'+l%26)), strings.Repeat("v", int(labelLen))})
			}
			for i := range int(samples) {
				v := float64(i)
				if staleEvery > 0 && i%int(staleEvery) == 0 {
					v = math.Float64frombits(staleNaN)
				}
				rs.samples = append(rs.samples, rwSample{v, testNow.UnixMilli() + tsOffsetMs + int64(i)*stepMs})
			}
			all = append(all, rs)
		}
		b, err := RemoteWrite(encodeWriteRequest(all), opts())
		checkShapeOutcome(t, b, err)
	})
}
