package logmine_test

import (
	"bytes"
	"io"
	"math/rand/v2"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/aiops-dev/aiops/pkg/logmine"
	"github.com/aiops-dev/aiops/pkg/logmine/internal/loghub"
)

// mixedContents interleaves the four systems' message contents.
func mixedContents(b *testing.B) []string {
	all := loadContents(b)
	var out []string
	for i := 0; ; i++ {
		added := false
		for _, sys := range loghub.Systems {
			if i < len(all[sys]) {
				out = append(out, all[sys][i])
				added = true
			}
		}
		if !added {
			return out
		}
	}
}

// Matching real lines of known templates: the miner is warmed on all
// 8000 lines first, so every line takes the match path.
func BenchmarkMatch(b *testing.B) {
	lines := mixedContents(b)
	m := newMiner(b, nil)
	for _, l := range lines {
		m.Match(l)
	}
	var bytesTotal int
	for _, l := range lines {
		bytesTotal += len(l)
	}
	var r logmine.Result
	b.SetBytes(int64(bytesTotal / len(lines)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		m.MatchInto(lines[i%len(lines)], &r)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lines/s")
}

// Header parsing alone, each system's format on its own lines.
func BenchmarkHeaderParse(b *testing.B) {
	dir := loghub.Require(b)
	type set struct {
		f     *logmine.Format
		lines []string
	}
	var sets []set
	for _, sys := range loghub.Systems {
		ds, err := loghub.Load(dir, sys)
		if err != nil {
			b.Fatal(err)
		}
		f, err := logmine.CompileFormat(ds.Format)
		if err != nil {
			b.Fatal(err)
		}
		sets = append(sets, set{f, ds.Lines})
	}
	var vals []string
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s := sets[i%len(sets)]
		var ok bool
		vals, ok = s.f.Parse(s.lines[(i/len(sets))%len(s.lines)], vals)
		if !ok {
			b.Fatal("line did not parse")
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lines/s")
}

// Masking alone (tokenising and all maskers), on the real contents.
func BenchmarkMask(b *testing.B) {
	lines := mixedContents(b)
	m, err := logmine.NewMasker()
	if err != nil {
		b.Fatal(err)
	}
	var buf []byte
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		buf = m.AppendMasked(buf[:0], lines[i%len(lines)])
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lines/s")
}

// Offline parsing end to end (header, mining, CSV) of the four files.
func BenchmarkParseFile(b *testing.B) {
	dir := loghub.Require(b)
	var inputs [][]byte
	var opts []logmine.ParseOptions
	lines := 0
	for _, sys := range loghub.Systems {
		ds, err := loghub.Load(dir, sys)
		if err != nil {
			b.Fatal(err)
		}
		inputs = append(inputs, []byte(strings.Join(ds.Lines, "\n")))
		opts = append(opts, logmine.ParseOptions{Format: ds.Format})
		lines += len(ds.Lines)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for k, in := range inputs {
			if _, err := logmine.ParseFile(bytes.NewReader(in), io.Discard, opts[k]); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N*lines)/b.Elapsed().Seconds(), "lines/s")
}

// Heap bytes per template held, measured with runtime.MemStats around
// loading N distinct templates of 8 tokens (about 50 bytes of text). The
// first two words come from 100 each, so the templates spread over the
// prefix tree as real ones do.
func BenchmarkMemoryPerTemplate(b *testing.B) {
	const side = 100
	r := rand.New(rand.NewPCG(1, 2))
	word := func() string {
		w := make([]byte, 3+r.IntN(6))
		for i := range w {
			w[i] = byte('a' + r.IntN(26))
		}
		return string(w)
	}
	firsts := make([]string, side)
	seconds := make([]string, side)
	for i := range firsts {
		firsts[i], seconds[i] = word(), word()
	}
	var lines []string
	for _, f := range firsts {
		for _, s := range seconds {
			lines = append(lines, strings.Join([]string{f, s, word(), word(), "from", "10.0.0.1", "port", word()}, " "))
		}
	}
	var perTemplate float64
	for i := 0; i < b.N; i++ {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		m := newMiner(b, func(c *logmine.Config) { c.MaxTemplates = 2 * len(lines) })
		for _, l := range lines {
			m.Match(l)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		perTemplate = float64(after.HeapAlloc-before.HeapAlloc) / float64(m.Stats().Templates)
		runtime.KeepAlive(m)
	}
	b.ReportMetric(perTemplate, "bytes/template")
}

// randomWords returns n lines of 8 random lower-case words each: a flood of
// lines unlike each other, every one a new template.
func randomWords(n int, seed uint64) []string {
	r := rand.New(rand.NewPCG(seed, 3))
	lines := make([]string, n)
	w := make([]string, 8)
	for i := range lines {
		for j := range w {
			b := make([]byte, 3+r.IntN(6))
			for k := range b {
				b[k] = byte('a' + r.IntN(26))
			}
			w[j] = string(b)
		}
		lines[i] = strings.Join(w, " ")
	}
	return lines
}

// BenchmarkFlood measures lines of a flood (randomWords), each a new
// template, at two sizes of flood: the time per line should not grow with
// the templates already held. Run with -benchtime=1x.
func BenchmarkFlood(b *testing.B) {
	for _, n := range []int{5_000, 40_000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			lines := randomWords(n, 1)
			for i := 0; i < b.N; i++ {
				m := newMiner(b, nil)
				for _, l := range lines {
					m.Match(l)
				}
			}
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "lines/s")
		})
	}
}
