package detect

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"
)

// BenchmarkObserve: ns and allocations per observation, default config.
func BenchmarkObserve(b *testing.B) {
	d, _ := NewDetector(Config{})
	rng := rand.New(rand.NewPCG(1, 1))
	vals := make([]float64, 4096)
	for i := range vals {
		vals[i] = 100 + 10*math.Sin(float64(i)/50) + rng.NormFloat64()
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		d.Observe(t0.Add(time.Duration(i)*time.Minute), vals[i&4095])
	}
}

// BenchmarkStateBytes holds 1e6 warmed-up detectors and reports heap bytes
// per series, with and without the seasonal buffers.
func BenchmarkStateBytes(b *testing.B) {
	for _, seasonal := range []bool{false, true} {
		b.Run(fmt.Sprintf("seasonal=%v", seasonal), func(b *testing.B) {
			const series = 1_000_000
			p, _ := NewProfile(Config{Seasonal: SeasonalConfig{Disabled: !seasonal}})
			for i := 0; i < b.N; i++ {
				runtime.GC()
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				ds := make([]*Detector, series)
				for j := range ds {
					ds[j] = p.NewDetector()
					for k := 0; k < 40; k++ { // past warm-up, window full
						ds[j].Observe(t0.Add(time.Duration(k)*time.Minute), float64(k%7))
					}
				}
				runtime.GC()
				runtime.ReadMemStats(&after)
				perSeries := float64(after.HeapAlloc-before.HeapAlloc) / series
				b.ReportMetric(perSeries, "B/series")
				snap, _ := ds[0].MarshalBinary()
				b.ReportMetric(float64(len(snap)), "snapshot-B")
				runtime.KeepAlive(ds)
			}
		})
	}
}

// BenchmarkReplay20k replays 20,000 rows of CSV.
func BenchmarkReplay20k(b *testing.B) {
	var in bytes.Buffer
	in.WriteString("timestamp,value\n")
	rng := rand.New(rand.NewPCG(2, 2))
	for i := 0; i < 20000; i++ {
		fmt.Fprintf(&in, "%s,%.4f\n", t0.Add(time.Duration(i)*time.Second).Format("2006-01-02 15:04:05"), 10+rng.NormFloat64())
	}
	data := in.Bytes()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		st, err := Replay(bytes.NewReader(data), io_discard{}, Config{})
		if err != nil || st.Rows != 20000 {
			b.Fatal(st, err)
		}
	}
}

type io_discard struct{}

func (io_discard) Write(p []byte) (int, error) { return len(p), nil }
