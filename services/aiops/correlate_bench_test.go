package aiops

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"runtime"
	"testing"
	"time"

	"github.com/aiops-dev/aiops/pkg/correlate"
)

// BenchmarkReplay replays a generated storm (issuegen seed 1, 20 times
// over) and reports, beside its lines/s, its ratio to the least a replay
// must do, decoding each line once (lines/s of json.Unmarshal alone, in
// the same run), and the bytes of heap that readLines holds per line
// while the lines wait for their turn (with spoolInMemory at 0 every
// line waits on disk).
func BenchmarkReplay(b *testing.B) {
	s := issuegenStorm(1)
	catalog, err := correlate.ParseCatalog(s.catalog)
	if err != nil {
		b.Fatal(err)
	}
	var in bytes.Buffer
	lines := 0
	for range 20 {
		for _, l := range s.lines {
			in.Write(l)
			in.WriteByte('\n')
			lines++
		}
	}
	input := in.Bytes()
	was := spoolInMemory
	b.Cleanup(func() { spoolInMemory = was })
	spoolInMemory = 0
	b.Setenv("TMPDIR", b.TempDir())

	// The baseline, timed in the same run (testing.Benchmark cannot run
	// inside a benchmark).
	decodeOnce := func() {
		for line := range bytes.Lines(input) {
			var v map[string]any
			if err := json.Unmarshal(line, &v); err != nil {
				b.Fatal(err)
			}
		}
	}
	decodeOnce() // warm
	started := time.Now()
	rounds := 0
	for ; rounds < 3 || time.Since(started) < 500*time.Millisecond; rounds++ {
		decodeOnce()
	}
	base := float64(lines) * float64(rounds) / time.Since(started).Seconds()
	// What readLines holds per line beyond its fixed buffers: the heap
	// it keeps for the input four times over, less for it once, over the
	// lines added.
	heldFor := func(input []byte) (int64, int) {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		held, err := readLines(context.Background(), bytes.NewReader(input), io.Discard)
		if err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		runtime.KeepAlive(input) // the input is the caller's, not held
		n := len(held.lines)
		held.spool.close()
		return int64(after.HeapAlloc) - int64(before.HeapAlloc), n
	}
	once, n1 := heldFor(input)
	twice, n2 := heldFor(bytes.Repeat(input, 4))
	perLine := (float64(twice) - float64(once)) / float64(n2-n1)
	b.ResetTimer()
	for range b.N {
		if _, err := Replay(context.Background(), bytes.NewReader(input), correlate.DefaultConfig(), catalog, io.Discard); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	rate := float64(lines) * float64(b.N) / b.Elapsed().Seconds()
	b.ReportMetric(rate, "lines/s")
	b.ReportMetric(rate/base, "x_decode_once")
	b.ReportMetric(perLine, "held_B/line")
	b.ReportMetric(float64(len(input))/float64(lines), "input_B/line")
}
