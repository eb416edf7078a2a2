package detector

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/bus"
	"github.com/aiops-dev/aiops/pkg/detect"
	"github.com/aiops-dev/aiops/pkg/detect/synth"
	"github.com/aiops-dev/aiops/pkg/stage"
	"github.com/aiops-dev/aiops/pkg/stage/stagetest"
)

// benchSource hands every delivery to the runner at once, as a consumer
// with room for them would, and returns once each has its result.
type benchSource struct {
	msgs   []*bus.Delivery
	failed atomic.Pointer[error]
}

func (src *benchSource) Run(ctx context.Context, h bus.AsyncHandler) error {
	var wg sync.WaitGroup
	wg.Add(len(src.msgs))
	done := func(err error) {
		if err != nil {
			src.failed.CompareAndSwap(nil, &err)
		}
		wg.Done()
	}
	for _, d := range src.msgs {
		h(ctx, d, done)
	}
	wg.Wait()
	return nil
}

// runBench times the service's stage runner (as New configures it, with a
// publisher that acks at once) over msgs: decode, Process, publish, acks.
func runBench(b *testing.B, s *Service, msgs []*bus.Delivery) {
	r, err := stage.NewRunner(s, s.stageConfig(), stagetest.NewPublisher(), zerolog.Nop(), stage.WithClock(s.now))
	if err != nil {
		b.Fatal(err)
	}
	src := &benchSource{msgs: msgs}
	b.ReportAllocs()
	b.ResetTimer()
	if err := r.Run(context.Background(), src); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	if err := src.failed.Load(); err != nil {
		b.Fatal(*err)
	}
}

// BenchmarkHandle measures the service path per sample, through the stage
// runner: strict decode of the envelope and body, series lookup (LRU),
// detection, and (rarely) the anomaly encode and a publish that acks at
// once. 1,000 series in turn. Run with an explicit count, e.g.
// -benchtime=200000x.
func BenchmarkHandle(b *testing.B) {
	const nSeries = 1000
	// the clock at the last sample: none is ignored as too far ahead of it
	end := t0.Add(time.Duration(b.N/nSeries) * time.Minute)
	s := newCore(b, Config{}, WithClock(func() time.Time { return end }))
	msgs := make([]*bus.Delivery, b.N)
	vals := normal(b.N/nSeries+1, 11)
	for i := range msgs {
		series, step := i%nSeries, i/nSeries
		_, data := sample(b, "api", "latency", map[string]string{"pod": fmt.Sprint(series)}, t0.Add(time.Duration(step)*time.Minute), vals[step], "")
		msgs[i] = &bus.Delivery{Subject: "events.metric.api", Data: data, Delivered: 1}
	}
	runBench(b, s, msgs)
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
		s := newCore(b, Config{MaxSeries: n})
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

// BenchmarkHandleGroup measures the service path per sample (through the
// stage runner) when every sample also feeds a pipeline group: 10 assets of
// 8 channels, their rows in turn (2,500 rows each at 200000x), for each
// method: pca (past the 300-row warm-up; the Group's score and its
// occasional refit) and vote (8 more detectors per row, one per channel).
// The row assembly and the score come on top of BenchmarkHandle's path.
// Run with an explicit count, e.g. -benchtime=200000x.
func BenchmarkHandleGroup(b *testing.B) {
	const nAssets, d = 10, 8
	a, err := synth.GenerateGroup(synth.GroupClean, synth.GroupOptions{Seed: 1, Rows: 2000})
	if err != nil {
		b.Fatal(err)
	}
	for _, method := range []string{detect.MethodPCA, detect.MethodVote} {
		b.Run("method="+method, func(b *testing.B) {
			p := votePipeline(b, a.Channels)
			if method == detect.MethodPCA {
				p = groupPipeline(b, a.Channels, "")
			}
			end := t0.Add(time.Duration(b.N/(d*nAssets)) * time.Second) // the last row: none too far ahead of the clock
			s := newCore(b, Config{}, WithPipeline(p), WithClock(func() time.Time { return end }))
			msgs := make([]*bus.Delivery, b.N)
			for i := range msgs {
				c, asset, row := i%d, (i/d)%nAssets, i/(d*nAssets)
				_, data := sample(b, "plant", a.Channels[c], map[string]string{"host": fmt.Sprint(asset)}, t0.Add(time.Duration(row)*time.Second), a.Values[c][row%len(a.Times)], "")
				msgs[i] = &bus.Delivery{Subject: "events.metric.plant", Data: data, Delivered: 1}
			}
			runBench(b, s, msgs)
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "samples/s")
			b.ReportMetric(float64(b.N)/d/b.Elapsed().Seconds(), "rows/s")
		})
	}
}
