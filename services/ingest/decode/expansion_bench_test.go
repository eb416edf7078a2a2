package decode

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/aiops-dev/aiops/pkg/errs"
	"google.golang.org/protobuf/encoding/protowire"
)

// wideSeries is the remote-write request of issue #14 item 2: one series
// of labels labels and samples samples (92 KB snappy-compressed at 128 ×
// 10,000), whose every sample becomes an event carrying every label.
func wideSeries(labels, samples int) []byte {
	s := rwSeries{labels: []rwLabel{{"__name__", "wide"}}}
	for i := 1; i < labels; i++ {
		s.labels = append(s.labels, rwLabel{fmt.Sprintf("label_%03d", i), fmt.Sprintf("value_%03d", i)})
	}
	for i := range samples {
		s.samples = append(s.samples, rwSample{float64(i), testNow.UnixMilli() - int64(samples-i)})
	}
	return encodeWriteRequest([]rwSeries{s})
}

// BenchmarkRemoteWriteExpansion measures the memory one request costs the
// gateway (decode, then the JSON the publisher sends of each event) for a
// narrow series and for the wide one the expansion limit refuses; run with
// -benchmem and compare B/op.
func BenchmarkRemoteWriteExpansion(b *testing.B) {
	for _, c := range []struct{ labels, samples int }{{10, 10_000}, {128, 10_000}} {
		body := wideSeries(c.labels, c.samples)
		b.Run(fmt.Sprintf("labels=%d/samples=%d/bytes=%d", c.labels, c.samples, len(body)), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				batch, err := RemoteWrite(body, Options{Now: testNow})
				if err != nil {
					continue // refused: what it cost until then is what counts
				}
				var out []byte
				for _, e := range batch.Events {
					out, _ = e.AppendJSON(out[:0])
				}
			}
		})
	}
}

// TestExpansionBounded is issue #14 item 2: a small request whose shared
// parts are copied into every event is refused (413 upstream) before the
// events are built, in every format that shares parts; a request under the
// limit gets every event.
func TestExpansionBounded(t *testing.T) {
	wide := wideSeries(128, 10_000)
	if len(wide) > 100_000 {
		t.Fatalf("the reproduction is %d bytes, want the issue's ~92 KB", len(wide))
	}
	_, err := RemoteWrite(wide, opts())
	if !errors.Is(err, ErrTooMuchOutput) || !errs.IsPermanent(err) {
		t.Fatalf("wide series: got %v, want a permanent ErrTooMuchOutput", err)
	}
	if !strings.Contains(err.Error(), "series 0 has 10000 samples, each an event carrying its 128 labels") {
		t.Errorf("the error does not say why: %v", err)
	}
	b, err := RemoteWrite(wideSeries(128, 1000), opts())
	if err != nil || len(b.Events) != 1000 {
		t.Fatalf("128 labels × 1,000 samples: %v", err)
	}
	for _, e := range b.Events {
		if len(e.Labels) != 128 || e.Labels["label_127"] != "value_127" {
			t.Fatalf("event lost labels: %d", len(e.Labels))
		}
	}

	// OTLP logs: a resource of 120 attributes of 2 KB each (240 KB)
	// over 1,000 tiny records is 240 MB of events.
	res := otlpResource("svc")
	var attrs []byte
	for i := range 120 {
		value := protowire.AppendTag(nil, 1, protowire.BytesType)
		value = protowire.AppendString(value, strings.Repeat("v", 2000))
		kv := protowire.AppendTag(nil, 1, protowire.BytesType)
		kv = protowire.AppendString(kv, fmt.Sprintf("attr.%d", i))
		kv = pbMsg(kv, 2, value)
		attrs = pbMsg(attrs, 1, kv)
	}
	res = pbMsg(res[:0], 1, append(attrs, res[2:]...)) // the Resource's attributes plus service.name
	body := protowire.AppendTag(nil, 1, protowire.BytesType)
	body = protowire.AppendString(body, "x")
	record := protowire.AppendTag(nil, 1, protowire.Fixed64Type)
	record = protowire.AppendFixed64(record, uint64(testNow.UnixNano()))
	record = pbMsg(record, 5, body)
	var scope []byte
	for range 1000 {
		scope = pbMsg(scope, 2, record)
	}
	req := pbMsg(nil, 1, pbMsg(res, 2, scope))
	_, err = OTLPLogs(req, Protobuf, opts())
	if !errors.Is(err, ErrTooMuchOutput) {
		t.Fatalf("OTLP logs with a 240 KB resource × 1,000 records: got %v, want ErrTooMuchOutput", err)
	}
	o := opts()
	o.MaxExpandedBytes = 1 << 30
	b, err = OTLPLogs(req, Protobuf, o)
	if err != nil || len(b.Events) != 1000 || len(b.Events[999].Resource) != 121 {
		t.Fatalf("under a larger limit the same request decodes: %v", err)
	}

	// OTLP metrics: the same resource over 1,000 points.
	var dp []byte
	dp = protowire.AppendTag(dp, 3, protowire.Fixed64Type)
	dp = protowire.AppendFixed64(dp, uint64(testNow.UnixNano()))
	dp = protowire.AppendTag(dp, 4, protowire.Fixed64Type)
	dp = protowire.AppendFixed64(dp, 0)
	var gauge []byte
	for range 1000 {
		gauge = pbMsg(gauge, 1, dp)
	}
	metric := protowire.AppendTag(nil, 1, protowire.BytesType)
	metric = protowire.AppendString(metric, "m")
	metric = pbMsg(metric, 5, gauge)
	mreq := pbMsg(nil, 1, pbMsg(res, 2, pbMsg(nil, 2, metric)))
	if _, err := OTLPMetrics(mreq, Protobuf, opts()); !errors.Is(err, ErrTooMuchOutput) {
		t.Fatalf("OTLP metrics: got %v, want ErrTooMuchOutput", err)
	}
}
