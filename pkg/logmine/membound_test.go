package logmine_test

import (
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"

	"github.com/aiops-dev/aiops/pkg/logmine"
)

// wordLine is a line of n words of wordLen letters after the two words
// that make it distinct, the whole made so that every line of a distinct
// n is a template of its own.
func wordLine(i, n, wordLen int) string {
	var b strings.Builder
	b.WriteByte(byte('a' + i%26))
	b.WriteByte(byte('a' + i/26%26))
	for j := range n {
		b.WriteByte(' ')
		b.WriteString(strings.Repeat(string(rune('a'+(i*7+j)%26)), wordLen))
	}
	return b.String()
}

// heapOf returns the heap bytes the miner holds after feeding it lines.
func heapOf(m *logmine.Miner, lines []string) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for _, l := range lines {
		m.Match(l)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(m)
	return after.HeapAlloc - before.HeapAlloc
}

// TestTemplateBytesBoundTheHeap: Stats.TemplateBytes, which
// MaxTemplateBytes bounds, is not below the heap the templates take,
// from short lines of real-looking words to 8,000 one-letter words (a
// line built to make the largest template for its bytes); and with
// MaxTemplateBytes set, such lines evict templates before the heap
// exceeds it. Templates sharing an indexed leaf count their index too.
func TestTemplateBytesBoundTheHeap(t *testing.T) {
	for _, c := range []struct{ tokens, wordLen int }{{8, 6}, {100, 1}, {1000, 6}, {8000, 1}} {
		var lines []string
		for i := range 100 {
			lines = append(lines, wordLine(i, c.tokens-i%3, c.wordLen))
		}
		m := newMiner(t, nil)
		heap := heapOf(m, lines)
		st := m.Stats()
		ratio := float64(heap) / float64(st.TemplateBytes)
		t.Logf("%d tokens of %d letters: %d templates, heap %d, estimated %d (%.2f)", c.tokens, c.wordLen, st.Templates, heap, st.TemplateBytes, ratio)
		if ratio > 1.15 {
			t.Errorf("%d tokens of %d letters: heap %d is %.2f times the estimate %d", c.tokens, c.wordLen, heap, ratio, st.TemplateBytes)
		}
	}

	// Lines of one leaf (the same first words) past the number of
	// templates from which a leaf indexes them: the index holds an entry
	// a literal token, about 70 bytes for distinct short words, which an
	// estimate of 24 a token left out (heap 3.6 times the estimate).
	for _, n := range []int{200, 2000} {
		r := rand.New(rand.NewPCG(1, uint64(n)))
		var lines []string
		for range 300 {
			var b strings.Builder
			b.WriteString("one leaf here")
			for range n {
				b.WriteByte(' ')
				b.WriteByte(byte('a' + r.IntN(26)))
				b.WriteByte(byte('a' + r.IntN(26)))
			}
			lines = append(lines, b.String())
		}
		m := newMiner(t, nil)
		heap := heapOf(m, lines)
		st := m.Stats()
		ratio := float64(heap) / float64(st.TemplateBytes)
		t.Logf("one leaf, %d tokens of 2 letters: %d templates, heap %d, estimated %d (%.2f)", n, st.Templates, heap, st.TemplateBytes, ratio)
		if st.Templates < 100 || ratio > 1.15 {
			t.Errorf("one leaf, %d tokens of 2 letters: %d templates, heap %d is %.2f times the estimate %d", n, st.Templates, heap, ratio, st.TemplateBytes)
		}
	}

	const bound = 4 << 20
	var lines []string
	for i := range 300 { // about 50 MB of templates without the bound
		lines = append(lines, wordLine(i, 8000-i, 1))
	}
	m := newMiner(t, func(c *logmine.Config) { c.MaxTemplateBytes = bound })
	heap := heapOf(m, lines)
	st := m.Stats()
	t.Logf("bound %d: %d templates, %d evicted, estimated %d, heap %d", bound, st.Templates, st.Evicted, st.TemplateBytes, heap)
	if st.TemplateBytes > bound || st.Evicted == 0 || heap > bound*12/10 {
		t.Errorf("bound %d: %d templates (%d evicted), estimated %d bytes, heap %d", bound, st.Templates, st.Evicted, st.TemplateBytes, heap)
	}
	// the most recent template stays whatever its size
	m = newMiner(t, func(c *logmine.Config) { c.MaxTemplateBytes = logmine.MinMaxTemplateBytes })
	for _, l := range lines[:3] {
		if r := m.Match(l); r.ID == 0 || r.Template == "" {
			t.Fatalf("a line over MaxTemplateBytes has no template: %+v", r)
		}
	}
	if st := m.Stats(); st.Templates != 1 || st.Evicted != 2 {
		t.Errorf("templates over MaxTemplateBytes alone: %d held, %d evicted; want the last one held", st.Templates, st.Evicted)
	}
}
