package detector

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/aiops-dev/aiops/pkg/bus"
)

// BenchmarkHandle measures the service path per sample: strict decode of
// the envelope and body, series lookup (LRU), detection, and (rarely) the
// anomaly encode and a publish that acks at once. 1,000 series in turn.
// Run with an explicit count, e.g. -benchtime=200000x.
func BenchmarkHandle(b *testing.B) {
	const nSeries = 1000
	s, _ := newTestService(b, Config{})
	msgs := make([]*bus.Delivery, b.N)
	vals := normal(b.N/nSeries+1, 11)
	for i := range msgs {
		series, step := i%nSeries, i/nSeries
		_, data := sample(b, "api", "latency", map[string]string{"pod": fmt.Sprint(series)}, t0.Add(time.Duration(step)*time.Minute), vals[step], "")
		msgs[i] = &bus.Delivery{Subject: "events.metric.api", Data: data, Delivered: 1}
	}
	ctx := context.Background()
	done := func(err error) {
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s.Handle(ctx, msgs[i], done)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "samples/s")
}
