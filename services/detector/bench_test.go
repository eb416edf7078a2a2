package detector

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/aiops-dev/aiops/pkg/bus"
	"github.com/aiops-dev/aiops/pkg/detect/synth"
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

// BenchmarkSeriesBytes measures the heap per series held by the service
// (detector with the default seasonal profile, LRU entry, map slot, key),
// with 100,000 series. Run with -benchtime=1x.
func BenchmarkSeriesBytes(b *testing.B) {
	const n = 100_000
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("%016x", uint64(i)*0x9e3779b97f4a7c15)
	}
	for i := 0; i < b.N; i++ {
		s, _ := newTestService(b, Config{MaxSeries: n})
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		s.mu.Lock()
		for _, k := range keys {
			s.lookup(k, "latency", "api", nil, false)
		}
		s.mu.Unlock()
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "B/series")
		runtime.KeepAlive(s)
	}
}

// BenchmarkHandleGroup measures the service path per sample when every
// sample also feeds a pipeline group: 10 assets of 8 channels, their rows
// in turn (2,500 rows each at 200000x, past the 300-row warm-up). The row
// assembly, the Group's score and its occasional refit come on top of
// BenchmarkHandle's path. Run with an explicit count, e.g. -benchtime=200000x.
func BenchmarkHandleGroup(b *testing.B) {
	const nAssets, d = 10, 8
	a, err := synth.GenerateGroup(synth.GroupClean, synth.GroupOptions{Seed: 1, Rows: 2000})
	if err != nil {
		b.Fatal(err)
	}
	s, _ := newTestService(b, Config{}, WithPipeline(groupPipeline(b, a.Channels, "")))
	msgs := make([]*bus.Delivery, b.N)
	for i := range msgs {
		c, asset, row := i%d, (i/d)%nAssets, i/(d*nAssets)
		_, data := sample(b, "plant", a.Channels[c], map[string]string{"host": fmt.Sprint(asset)}, t0.Add(time.Duration(row)*time.Second), a.Values[c][row%len(a.Times)], "")
		msgs[i] = &bus.Delivery{Subject: "events.metric.plant", Data: data, Delivered: 1}
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
	b.ReportMetric(float64(b.N)/d/b.Elapsed().Seconds(), "rows/s")
}
