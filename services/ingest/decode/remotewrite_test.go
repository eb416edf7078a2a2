package decode

import (
	"errors"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/klauspost/compress/snappy"
	"google.golang.org/protobuf/encoding/protowire"
)

// The remote-write 1.0 messages, encoded the way prompb does.
type rwLabel struct{ name, value string }
type rwSample struct {
	value float64
	ms    int64
}
type rwSeries struct {
	labels     []rwLabel
	samples    []rwSample
	histograms int
}
type rwMeta struct {
	typ          uint64
	family, unit string
}

func encodeWriteRequest(series []rwSeries, meta ...rwMeta) []byte {
	var req []byte
	for _, s := range series {
		var ts []byte
		for _, l := range s.labels {
			var lb []byte
			lb = protowire.AppendTag(lb, labelName, protowire.BytesType)
			lb = protowire.AppendString(lb, l.name)
			lb = protowire.AppendTag(lb, labelValue, protowire.BytesType)
			lb = protowire.AppendString(lb, l.value)
			ts = protowire.AppendTag(ts, tsLabels, protowire.BytesType)
			ts = protowire.AppendBytes(ts, lb)
		}
		for _, smp := range s.samples {
			var sb []byte
			sb = protowire.AppendTag(sb, sampleValue, protowire.Fixed64Type)
			sb = protowire.AppendFixed64(sb, math.Float64bits(smp.value))
			sb = protowire.AppendTag(sb, sampleTime, protowire.VarintType)
			sb = protowire.AppendVarint(sb, uint64(smp.ms))
			ts = protowire.AppendTag(ts, tsSamples, protowire.BytesType)
			ts = protowire.AppendBytes(ts, sb)
		}
		for range s.histograms {
			ts = protowire.AppendTag(ts, tsHistograms, protowire.BytesType)
			ts = protowire.AppendBytes(ts, []byte{0x08, 0x01})
		}
		req = protowire.AppendTag(req, wrTimeseries, protowire.BytesType)
		req = protowire.AppendBytes(req, ts)
	}
	for _, m := range meta {
		var mb []byte
		mb = protowire.AppendTag(mb, mdType, protowire.VarintType)
		mb = protowire.AppendVarint(mb, m.typ)
		mb = protowire.AppendTag(mb, mdFamily, protowire.BytesType)
		mb = protowire.AppendString(mb, m.family)
		mb = protowire.AppendTag(mb, mdUnit, protowire.BytesType)
		mb = protowire.AppendString(mb, m.unit)
		req = protowire.AppendTag(req, wrMetadata, protowire.BytesType)
		req = protowire.AppendBytes(req, mb)
	}
	return snappy.Encode(nil, req)
}

var t0 = time.Date(2026, 11, 21, 11, 59, 30, 0, time.UTC)

func TestRemoteWrite(t *testing.T) {
	stale := math.Float64frombits(staleNaN)
	req := encodeWriteRequest([]rwSeries{
		{
			labels:  []rwLabel{{"__name__", "http_requests_total"}, {"job", "api"}, {"code", "200"}, {"instance", "10.0.0.1:8080"}, {"empty", ""}},
			samples: []rwSample{{1027, t0.UnixMilli()}, {1031.5, t0.UnixMilli() + 15000}, {stale, t0.UnixMilli() + 30000}},
		},
		{
			labels:     []rwLabel{{"__name__", "queue_depth"}, {"service", "billing"}, {"job", "billing-exporter"}},
			samples:    []rwSample{{-3, t0.UnixMilli()}, {math.Inf(1), t0.UnixMilli()}, {math.NaN(), t0.UnixMilli()}},
			histograms: 2,
		},
		{
			labels:  []rwLabel{{"__name__", "latency_seconds_bucket"}, {"le", "0.5"}},
			samples: []rwSample{{42, t0.UnixMilli()}},
		},
		{
			labels:  []rwLabel{{"__name__", "temperature"}},
			samples: []rwSample{{21.5, t0.UnixMilli()}},
		},
	}, rwMeta{promCounter, "queue_depth", "items"}, rwMeta{promHistogram, "latency_seconds", "seconds"})

	b, err := RemoteWrite(req, opts())
	if err != nil {
		t.Fatal(err)
	}
	checkValid(t, b, SourcePrometheus)
	eq(t, "skipped", b.Skipped, map[string]int{SkippedStaleMarkers: 1, SkippedNonFinite: 2, SkippedNativeHistograms: 2})
	if len(b.Events) != 5 {
		t.Fatalf("got %d events, want 5", len(b.Events))
	}
	first := b.Events[0]
	eq(t, "kind", first.Kind, event.KindMetric)
	eq(t, "service from job", first.Service, "api")
	eq(t, "labels (empty value dropped)", first.Labels, map[string]string{"__name__": "http_requests_total", "job": "api", "code": "200", "instance": "10.0.0.1:8080"})
	eq(t, "time", first.Time, t0)
	eq(t, "observed", first.ObservedTime, testNow)
	eq(t, "fingerprint", first.Fingerprint, event.Fingerprint(event.KindMetric, "api", first.Labels, nil))
	eq(t, "body", body[event.MetricBody](t, first), event.MetricBody{Name: "http_requests_total", Value: ptr(1027), Type: event.MetricCounter})
	second := b.Events[1]
	eq(t, "second time", second.Time, t0.Add(15*time.Second))
	eq(t, "second value", body[event.MetricBody](t, second).Value, ptr(1031.5))
	eq(t, "same series, same fingerprint", second.Fingerprint, first.Fingerprint)
	if second.ID == first.ID {
		t.Error("two samples share an id")
	}

	q := b.Events[2]
	eq(t, "service label wins", q.Service, "billing")
	eq(t, "counter from metadata", body[event.MetricBody](t, q), event.MetricBody{Name: "queue_depth", Value: ptr(-3), Type: event.MetricCounter, Unit: "items"})
	eq(t, "histogram bucket from family metadata", body[event.MetricBody](t, b.Events[3]), event.MetricBody{Name: "latency_seconds_bucket", Value: ptr(42), Type: event.MetricCounter, Unit: "seconds"})
	g := b.Events[4]
	eq(t, "no job or service", g.Service, UnknownService)
	eq(t, "gauge by name", body[event.MetricBody](t, g).Type, event.MetricGauge)

	// A retried request gives the same ids, so the bus drops the repeat.
	again, err := RemoteWrite(req, Options{Now: testNow.Add(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	for i := range b.Events {
		eq(t, "id of retried sample", again.Events[i].ID, b.Events[i].ID)
	}
}

func TestPromType(t *testing.T) {
	cases := []struct{ name, typ string }{
		{"up", event.MetricGauge},
		{"node_cpu_seconds_total", event.MetricCounter},
		{"rpc_duration_seconds_count", event.MetricCounter},
		{"rpc_duration_seconds_sum", event.MetricCounter},
		{"rpc_duration_seconds_bucket", event.MetricCounter},
		{"total_memory_bytes", event.MetricGauge},
	}
	for _, c := range cases {
		typ, _ := promType(c.name, nil)
		eq(t, c.name, typ, c.typ)
	}
	meta := map[string]familyMeta{"rpc_duration_seconds": {typ: promSummary}, "jobs_total": {typ: promGauge}, "temp": {typ: promGaugeHistogram}}
	for name, want := range map[string]string{"rpc_duration_seconds": event.MetricGauge, "rpc_duration_seconds_count": event.MetricCounter, "jobs_total": event.MetricGauge, "temp_bucket": event.MetricGauge} {
		typ, _ := promType(name, meta)
		eq(t, name+" with metadata", typ, want)
	}
}

func TestRemoteWriteErrors(t *testing.T) {
	ok := rwSeries{labels: []rwLabel{{"__name__", "up"}}, samples: []rwSample{{1, t0.UnixMilli()}}}
	cases := []struct {
		name  string
		in    []byte
		item  int
		field string
	}{
		{"not snappy", []byte("plain protobuf, no snappy"), NoItem, ""},
		{"not protobuf", snappy.Encode(nil, []byte{0xff, 0xff, 0xff}), NoItem, ""},
		{"no name", encodeWriteRequest([]rwSeries{ok, {labels: []rwLabel{{"job", "x"}}, samples: []rwSample{{1, t0.UnixMilli()}}}}), 1, "labels.__name__"},
		{"duplicate label", encodeWriteRequest([]rwSeries{ok, ok, {labels: []rwLabel{{"__name__", "a"}, {"job", "x"}, {"job", "y"}}}}), 2, "labels.job"},
		// A label given empty (absent to Prometheus) and then with a
		// value is a duplicate too.
		{"duplicate label, the first empty", encodeWriteRequest([]rwSeries{{labels: []rwLabel{{"__name__", "a"}, {"job", ""}, {"job", "y"}}}}), 0, "labels.job"},
		{"too many labels", encodeWriteRequest([]rwSeries{{labels: manyLabels(event.MaxLabels + 1), samples: []rwSample{{1, t0.UnixMilli()}}}}), 0, "labels"},
		{"empty label name", encodeWriteRequest([]rwSeries{{labels: []rwLabel{{"__name__", "a"}, {"", "y"}}}}), 0, "labels"},
		{"timestamp zero", encodeWriteRequest([]rwSeries{{labels: []rwLabel{{"__name__", "a"}}, samples: []rwSample{{1, t0.UnixMilli()}, {2, 0}}}}), 0, "samples[1].timestamp"},
		{"label not utf-8", encodeWriteRequest([]rwSeries{{labels: []rwLabel{{"__name__", "a"}, {"x", "\xff"}}, samples: []rwSample{{1, t0.UnixMilli()}}}}), 0, "labels.x"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b, err := RemoteWrite(c.in, opts())
			p := refusedProblem(t, b, err, c.item, c.field)
			if p.Problem == "" {
				t.Error("empty problem")
			}
		})
	}
}

func manyLabels(n int) []rwLabel {
	ls := []rwLabel{{"__name__", "up"}}
	for i := range n - 1 {
		ls = append(ls, rwLabel{fmt.Sprintf("l%d", i), "v"})
	}
	return ls
}

func TestRemoteWriteLimits(t *testing.T) {
	series := rwSeries{labels: []rwLabel{{"__name__", "up"}}}
	for i := range 10 {
		series.samples = append(series.samples, rwSample{1, t0.UnixMilli() + int64(i)})
	}
	req := encodeWriteRequest([]rwSeries{series})
	o := opts()
	o.MaxEvents = 9
	if _, err := RemoteWrite(req, o); !errors.Is(err, ErrTooManyEvents) {
		t.Fatalf("want ErrTooManyEvents, got %v", err)
	}
	// Series without samples make no events but still cost memory.
	empty := rwSeries{labels: []rwLabel{{"__name__", "up"}}}
	o.MaxEvents = 2
	if _, err := RemoteWrite(encodeWriteRequest([]rwSeries{empty, empty, empty}), o); !errors.Is(err, ErrTooManyEvents) {
		t.Fatalf("3 series over a limit of 2: want ErrTooManyEvents, got %v", err)
	}
	if b, err := RemoteWrite(encodeWriteRequest([]rwSeries{empty, empty}), o); err != nil || len(b.Events) != 0 {
		t.Fatalf("2 empty series: %v", err)
	}
	// Samples are counted as they are read, across series: the second
	// series passes the limit. Stale markers are not events and count
	// only as skipped.
	o.MaxEvents = 12
	stale := rwSeries{labels: []rwLabel{{"__name__", "down"}}}
	for i := range 20 {
		stale.samples = append(stale.samples, rwSample{math.Float64frombits(staleNaN), t0.UnixMilli() + int64(i)})
	}
	if b, err := RemoteWrite(encodeWriteRequest([]rwSeries{series, stale}), o); err != nil || len(b.Events) != 10 || b.Skipped[SkippedStaleMarkers] != 20 {
		t.Fatalf("10 samples and 20 stale markers under a limit of 12: %v", err)
	}
	if _, err := RemoteWrite(encodeWriteRequest([]rwSeries{series, series}), o); !errors.Is(err, ErrTooManyEvents) {
		t.Fatalf("two series of 10 samples over a limit of 12: want ErrTooManyEvents, got %v", err)
	}
	o = opts()
	o.MaxDecodedBytes = 50
	if _, err := RemoteWrite(req, o); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("want ErrTooLarge, got %v", err)
	}
}
