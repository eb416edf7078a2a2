package ingest

import (
	"context"
	"strings"
	"sync"
	"testing"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploghttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	otellog "go.opentelemetry.io/otel/log"
	"go.opentelemetry.io/otel/metric"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/resource"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
)

// The OpenTelemetry Go SDK's own OTLP/HTTP exporters, the client most
// services send with, against the gateway, the writer and the log miner
// on a real JetStream and ClickHouse: every point and record is taken
// (the SDK reports a partial success, a refusal, to its error handler),
// including histograms of every shape the SDK makes (a bucket at each
// bound, none recorded in one attribute set, an observation above the
// last bound), and a log body that ends in a stack trace: two traces of
// one statement, of different depths, share a template.
func TestE2EOpenTelemetrySDKExportersAreTakenWhole(t *testing.T) {
	r := newE2ERig(t, rigOptions{logminer: true})
	ctx := context.Background()
	var (
		mu      sync.Mutex
		refused []error
	)
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		mu.Lock()
		defer mu.Unlock()
		refused = append(refused, err)
	}))
	t.Cleanup(func() { otel.SetErrorHandler(otel.ErrorHandlerFunc(func(error) {})) })
	res := resource.NewSchemaless(semconv.ServiceName("checkout-sdk"), semconv.HostName("web-3"))
	endpoint := strings.TrimPrefix(r.url, "http://")
	auth := map[string]string{"Authorization": "Bearer " + e2eToken}

	metricExp, err := otlpmetrichttp.New(ctx, otlpmetrichttp.WithEndpoint(endpoint), otlpmetrichttp.WithInsecure(), otlpmetrichttp.WithHeaders(auth))
	if err != nil {
		t.Fatal(err)
	}
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader), sdkmetric.WithResource(res))
	meter := mp.Meter("checkout")
	latency, err := meter.Float64Histogram("http.server.duration", metric.WithUnit("s"), metric.WithExplicitBucketBoundaries(0.1, 0.5, 1))
	if err != nil {
		t.Fatal(err)
	}
	requests, err := meter.Int64Counter("http.server.requests")
	if err != nil {
		t.Fatal(err)
	}
	inflight, err := meter.Int64UpDownCounter("http.server.active_requests")
	if err != nil {
		t.Fatal(err)
	}
	cart := metric.WithAttributes(attribute.String("http.route", "/cart"))
	pay := metric.WithAttributes(attribute.String("http.route", "/pay"))
	for _, v := range []float64{0.05, 0.1, 0.3, 0.5, 0.9, 1, 4} { // on each bound and past the last
		latency.Record(ctx, v, cart)
	}
	latency.Record(ctx, 0, pay)
	requests.Add(ctx, 7, cart)
	inflight.Add(ctx, -2, cart)

	logExp, err := otlploghttp.New(ctx, otlploghttp.WithEndpoint(endpoint), otlploghttp.WithInsecure(), otlploghttp.WithHeaders(auth))
	if err != nil {
		t.Fatal(err)
	}
	lp := sdklog.NewLoggerProvider(sdklog.WithProcessor(sdklog.NewSimpleProcessor(logExp)), sdklog.WithResource(res))
	logger := lp.Logger("checkout")
	trace := func(depth int) string {
		var b strings.Builder
		for i := range depth {
			b.WriteString("\n\tat com.example.Pool.get" + strings.Repeat("x", i) + "(Pool.java:88)")
		}
		return b.String()
	}
	for i, depth := range []int{2, 5} {
		var rec otellog.Record
		rec.SetSeverity(otellog.SeverityError)
		rec.SetBody(attribute.StringValue("payment 4" + string(rune('0'+i)) + " failed: pool closed" + trace(depth)))
		logger.Emit(ctx, rec)
	}

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		t.Fatal(err)
	}
	if err := metricExp.Export(ctx, &rm); err != nil {
		t.Fatalf("metrics export: %v", err)
	}
	if err := lp.Shutdown(ctx); err != nil {
		t.Fatalf("logs export: %v", err)
	}
	mu.Lock()
	if len(refused) > 0 {
		t.Fatalf("the gateway refused part of the SDK's export: %v", refused)
	}
	mu.Unlock()

	r.drained()
	// The histogram in two attribute sets: count, sum and four buckets
	// each; the counter and the up-down counter.
	if got := r.count("SELECT count() FROM metric_samples FINAL WHERE service = ? AND name LIKE 'http.server.%'", "checkout-sdk"); got != 14 {
		t.Fatalf("%d samples stored, want 14: %+v", got, r.samples("service = ?", "checkout-sdk"))
	}
	buckets := map[string]float64{}
	for _, s := range r.samples("service = ? AND name = ?", "checkout-sdk", "http.server.duration_bucket") {
		if s.Labels["http.route"] == "/cart" {
			buckets[s.Labels["le"]] = s.Value
		}
	}
	want := map[string]float64{"0.1": 2, "0.5": 4, "1": 6, "+Inf": 7} // a value on a bound is in its bucket
	same(t, "the /cart histogram's cumulative buckets", buckets, want)

	logs := r.logs("service = ? AND derived = 1", "checkout-sdk")
	if len(logs) != 2 {
		t.Fatalf("%d templated logs, want 2: %+v", len(logs), logs)
	}
	if logs[0].TemplateID != logs[1].TemplateID || logs[0].Template != "payment <*> failed: pool closed" {
		t.Fatalf("two depths of one statement's trace: templates %q (%s) and %q (%s), want one, its first line's",
			logs[0].Template, logs[0].TemplateID, logs[1].Template, logs[1].TemplateID)
	}
	if !strings.Contains(logs[1].Message, trace(5)) {
		t.Fatalf("templated copy lost its trace: %q", logs[1].Message)
	}
	if raw := r.logs("service = ? AND derived = 0", "checkout-sdk"); len(raw) != 2 {
		t.Fatalf("%d raw logs, want 2", len(raw))
	}
}
