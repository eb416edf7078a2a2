package decode

import (
	"errors"
	"testing"

	"github.com/aiops-dev/aiops/pkg/errs"
	"github.com/klauspost/compress/snappy"
)

// checkOutcome is what every decoder promises for any input: either a batch
// of valid events within the limit, or a permanent error.
func checkOutcome(t *testing.T, b *Batch, err error, o Options) {
	t.Helper()
	if err != nil {
		if !errs.IsPermanent(err) {
			t.Fatalf("error is not permanent: %v", err)
		}
		var de *Error
		if errors.As(err, &de) && (len(de.Problems) == 0 || len(de.Problems) > MaxProblems || de.Total < len(de.Problems)) {
			t.Fatalf("malformed *Error: %d problems, total %d", len(de.Problems), de.Total)
		}
		return
	}
	if b == nil {
		t.Fatal("nil batch without an error")
	}
	if len(b.Events) > o.MaxEvents {
		t.Fatalf("%d events, over the limit %d", len(b.Events), o.MaxEvents)
	}
	for i, e := range b.Events {
		if verr := e.Validate(); verr != nil {
			t.Fatalf("event %d accepted but invalid: %v", i, verr)
		}
		if e.Source == "" {
			t.Fatalf("event %d has no source", i)
		}
	}
}

func fuzzOpts() Options { return Options{Now: testNow, MaxEvents: 200, MaxDecodedBytes: 1 << 20} }

func FuzzEvents(f *testing.F) {
	for _, s := range []string{logA, metricB, "[" + logA + "," + metricB + "]", logA + "\n" + metricB, "[]", "{}", `[{"kind":"log"}]`, "\n\n", `{"kind":"log","service":"a","time":"2026-01-01T00:00:00Z","body":{"message":"x"},"extra":[1,2]}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		o := fuzzOpts()
		b, err := Events(in, o)
		checkOutcome(t, b, err, o)
	})
}

func FuzzAlertmanager(f *testing.F) {
	for _, s := range []string{amPayloadJSON, `{"version":"4","alerts":[{}]}`, `{"version":"4","alerts":[{"status":"resolved","labels":{"alertname":"a"},"endsAt":"2026-01-01T00:00:00Z"}]}`, `{"version":4}`, `null`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		o := fuzzOpts()
		b, err := Alertmanager(in, o)
		checkOutcome(t, b, err, o)
	})
}

func FuzzPrometheusAlerts(f *testing.F) {
	for _, s := range []string{promAlertsJSON, `[{}]`, `[{"labels":{"alertname":"a"},"endsAt":"2026-01-01T00:00:00Z"}]`, `{"alerts":[]}`, `null`, `[]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		o := fuzzOpts()
		b, err := PrometheusAlerts(in, o)
		checkOutcome(t, b, err, o)
	})
}

func FuzzRemoteWrite(f *testing.F) {
	f.Add(encodeWriteRequest([]rwSeries{{labels: []rwLabel{{"__name__", "up"}, {"job", "a"}}, samples: []rwSample{{1, t0.UnixMilli()}}}}, rwMeta{promCounter, "up", "1"}))
	f.Add(encodeWriteRequest([]rwSeries{{labels: []rwLabel{{"__name__", "x"}}, samples: []rwSample{{2, 0}}, histograms: 1}}))
	f.Add(snappy.Encode(nil, []byte{0x0a, 0x02, 0x0a, 0x00}))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, in []byte) {
		o := fuzzOpts()
		b, err := RemoteWrite(in, o)
		checkOutcome(t, b, err, o)
	})
}

// FuzzRemoteWriteProto fuzzes the protobuf under the snappy layer, which
// random bytes otherwise rarely reach.
func FuzzRemoteWriteProto(f *testing.F) {
	seed, _ := snappy.Decode(nil, encodeWriteRequest([]rwSeries{{labels: []rwLabel{{"__name__", "up"}, {"job", "a"}}, samples: []rwSample{{1, t0.UnixMilli()}, {2, t0.UnixMilli() + 1}}}}, rwMeta{promGauge, "up", ""}))
	f.Add(seed)
	f.Fuzz(func(t *testing.T, in []byte) {
		o := fuzzOpts()
		b, err := RemoteWrite(snappy.Encode(nil, in), o)
		checkOutcome(t, b, err, o)
	})
}

func FuzzOTLPLogs(f *testing.F) {
	ld := sampleLogs()
	for _, enc := range []Encoding{Protobuf, JSON} {
		f.Add(encodeLogs(&testing.T{}, ld, enc), enc == JSON)
	}
	f.Add([]byte(`{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"stringValue":"x"},"timeUnixNano":"1"}]}]}]}`), true)
	f.Fuzz(func(t *testing.T, in []byte, isJSON bool) {
		enc := Protobuf
		if isJSON {
			enc = JSON
		}
		o := fuzzOpts()
		b, err := OTLPLogs(in, enc, o)
		checkOutcome(t, b, err, o)
	})
}

func FuzzOTLPMetrics(f *testing.F) {
	md := sampleMetrics()
	for _, enc := range []Encoding{Protobuf, JSON} {
		f.Add(encodeMetrics(&testing.T{}, md, enc), enc == JSON)
	}
	f.Add([]byte(`{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"m","gauge":{"dataPoints":[{"asDouble":1,"timeUnixNano":"1"}]}}]}]}]}`), true)
	f.Fuzz(func(t *testing.T, in []byte, isJSON bool) {
		enc := Protobuf
		if isJSON {
			enc = JSON
		}
		o := fuzzOpts()
		b, err := OTLPMetrics(in, enc, o)
		checkOutcome(t, b, err, o)
	})
}

func FuzzChanges(f *testing.F) {
	for _, s := range []string{deployJSON, "[" + deployJSON + "]", `{"service":"a","type":"config"}`, `[{"service":"a"},{}]`, `{"service":"a","time":"2026-11-21T11:30:00+01:00","labels":{"k":"v"}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		o := fuzzOpts()
		b, err := Changes(in, o)
		checkOutcome(t, b, err, o)
	})
}

func FuzzNDJSON(f *testing.F) {
	for _, s := range []string{logA, logA + "\n" + metricB, logA + "\r\n\r\n" + metricB + "\n", "{\n}", "\n", `{"kind":"metric","service":"a","time":"2026-01-01T00:00:00Z","body":{"name":"m","value":1e400}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		o := fuzzOpts()
		b, err := NDJSON(in, o)
		checkOutcome(t, b, err, o)
	})
}
