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
func BenchmarkObserve(b *testing.B) { benchObserve(b, Config{}) }

// BenchmarkObserveAuto: the same with Season auto (the finder decides
// after 3 days, 4,320 observations, and its cost stops there).
func BenchmarkObserveAuto(b *testing.B) { benchObserve(b, Config{Season: SeasonAuto}) }

func benchObserve(b *testing.B, cfg Config) {
	d, _ := NewDetector(cfg)
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
// per series, with and without the seasonal buffers, and with Season auto
// while it still chooses (100,000 series: its finder is about 1.8 kB).
func BenchmarkStateBytes(b *testing.B) {
	for _, mode := range []string{"false", "true", "auto"} {
		b.Run("seasonal="+mode, func(b *testing.B) {
			series := 1_000_000
			cfg := Config{Seasonal: SeasonalConfig{Disabled: mode == "false"}}
			if mode == "auto" {
				series, cfg.Season = 100_000, SeasonAuto
			}
			p, _ := NewProfile(cfg)
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
				perSeries := float64(after.HeapAlloc-before.HeapAlloc) / float64(series)
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
