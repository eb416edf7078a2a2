package logmine_test

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/aiops-dev/aiops/pkg/logmine"
)

// A token that repeats a path opener and a '/' that maskPath refuses
// ("=//": a '/' after a '/'; "=/1.2.3.4": an address) made maskPath scan
// to the end of the token at every '/', and refuse: quadratic in the
// token's length (a 16 KiB line of "=//" took 30 ms to mask, 4 KiB 1.8 ms).
func TestMaskPathScanIsLinear(t *testing.T) {
	for _, unit := range []string{"=//", "=/1.1.1.1", "(/,", "@//a"} {
		scanned := func(n int) uint64 {
			mk, err := logmine.NewMasker()
			if err != nil {
				t.Fatal(err)
			}
			mk.Mask(strings.Repeat(unit, n/len(unit)))
			return mk.PathScanned()
		}
		small, large := scanned(4<<10), scanned(16<<10)
		t.Logf("%q: %d bytes scanned at 4 KiB, %d at 16 KiB", unit, small, large)
		if large > 5*small+64 {
			t.Errorf("%q: maskPath scanned %d bytes on 4 KiB and %d on 16 KiB: %.1f times for 4 times the line", unit, small, large, float64(large)/float64(max(small, 1)))
		}
	}
}

func hostileWord(r *rand.Rand) string {
	b := make([]byte, 4+r.IntN(5))
	for k := range b {
		b[k] = byte('a' + r.IntN(26))
	}
	return string(b)
}

// foldFlood: lines of one first word, one of 90 second words and four
// random words: each a template of its own, spread over 90 sibling leaves
// of the last routing level.
func foldFlood(n int, seed uint64) []string {
	r := rand.New(rand.NewPCG(seed, 1))
	seconds := make([]string, 90)
	for i := range seconds {
		seconds[i] = hostileWord(r)
	}
	out := make([]string, n)
	for i := range out {
		out[i] = "x " + seconds[i%len(seconds)] + " " + hostileWord(r) + " " + hostileWord(r) + " " + hostileWord(r) + " " + hostileWord(r)
	}
	return out
}

// A line that makes a new template is checked by fold against every
// template of every sibling leaf of its last routing level, unindexed: a
// flood of distinct lines under one first word costs each line as many
// checks as templates are held (3.3 ms a line at 21,000 templates, 125
// lines/s at 50,000 under the logminer's one mining lock).
func TestFoldCostDoesNotGrowWithTemplates(t *testing.T) {
	perLine := func(n int) float64 {
		m := newMiner(t, nil)
		for _, l := range foldFlood(n, 1) {
			m.Match(l)
		}
		before := m.FoldChecked()
		probe := foldFlood(500, 2)
		for _, l := range probe {
			m.Match(l)
		}
		t.Logf("after %d lines (%d templates): %.0f fold checks a line", n, m.Stats().Templates, float64(m.FoldChecked()-before)/float64(len(probe)))
		return float64(m.FoldChecked()-before) / float64(len(probe))
	}
	small, large := perLine(1500), perLine(6000)
	if large > 2*small+50 {
		t.Errorf("fold checks a line: %.0f after 1,500 lines, %.0f after 6,000: they grow with the templates held", small, large)
	}
}

// fold through the leaf index finds what a scan finds: the same results
// with the index off, at its default and from the second template, on a
// flood under one first word mixed with lines that fold (the same words
// after many second words, some of them generalised already).
func TestFoldThroughTheIndexChangesNoResult(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 3))
	flood := foldFlood(6000, 4)
	tails := make([][]string, 300)
	for j := range tails {
		tails[j] = []string{hostileWord(r), hostileWord(r), hostileWord(r), hostileWord(r)}
	}
	lastWords := []string{"alpha", "beta", "gamma", "delta", "eps", "zeta"}
	var seconds []string
	for _, l := range flood[:90] {
		seconds = append(seconds, strings.Fields(l)[1])
	}
	var lines []string
	for i, l := range flood {
		lines = append(lines, l)
		if i%3 == 0 {
			// tail j after second words of the flood: the first ones
			// keep to one second word and vary their last word (that
			// leaf generalises it to <*>), then others come
			f := strings.Fields(l)
			j := r.IntN(len(tails))
			tail := slices.Clone(tails[j])
			if r.IntN(3) == 0 {
				tail[3] = lastWords[r.IntN(len(lastWords))]
				f[1] = seconds[j%len(seconds)]
			}
			lines = append(lines, strings.Join(append(f[:2], tail...), " "))
		}
	}
	run := func(at int) ([]logmine.Result, []logmine.Template) {
		defer logmine.SetIndexAt(at)()
		m := newMiner(t, nil)
		out := make([]logmine.Result, len(lines))
		for i, l := range lines {
			out[i] = m.Match(l)
		}
		return out, m.Templates()
	}
	wantR, wantT := run(1 << 30)
	for _, at := range []int{2, 32} {
		gotR, gotT := run(at)
		for i := range lines {
			if gotR[i].ID != wantR[i].ID || gotR[i].Changed != wantR[i].Changed || len(gotR[i].Merges) != len(wantR[i].Merges) {
				t.Fatalf("index at %d: line %d %q: %+v, scanning %+v", at, i, lines[i], gotR[i], wantR[i])
			}
		}
		if len(gotT) != len(wantT) {
			t.Fatalf("index at %d: %d templates, scanning %d", at, len(gotT), len(wantT))
		}
		for i := range gotT {
			if gotT[i] != wantT[i] {
				t.Fatalf("index at %d: template %v, scanning %v", at, gotT[i], wantT[i])
			}
		}
	}
	st := 0
	for _, r := range wantR {
		if r.Changed {
			st++
		}
	}
	t.Logf("%d lines, %d changed a template, %d templates", len(lines), st, len(wantT))
}

// Lines that share most of their words with the templates of their leaf
// are each compared with a share of all of them, which the leaf index
// cannot narrow: a leaf holds at most maxLeafTemplates, so the cost of a
// line stops growing with the templates such a flood makes.
func TestNearFloodComparisonsBoundedByTheLeaf(t *testing.T) {
	nearFlood := func(n int, seed uint64) []string {
		r := rand.New(rand.NewPCG(seed, 1))
		ws := []string{"xa", "yb", "zc"}
		out := make([]string, n)
		for i := range out {
			t := []string{"p", "q"}
			for range 18 {
				t = append(t, ws[r.IntN(3)])
			}
			out[i] = strings.Join(t, " ")
		}
		return out
	}
	perLine := func(n int) float64 {
		m := newMiner(t, nil)
		for _, l := range nearFlood(n, 1) {
			m.Match(l)
		}
		before := m.Compared()
		probe := nearFlood(300, 2)
		for _, l := range probe {
			m.Match(l)
		}
		t.Logf("after %d lines (%d templates, %d evicted): %.0f comparisons a line", n, m.Stats().Templates, m.Stats().Evicted, float64(m.Compared()-before)/float64(len(probe)))
		return float64(m.Compared()-before) / float64(len(probe))
	}
	small, large := perLine(2000), perLine(8000)
	if large > 1.3*small+20 {
		t.Errorf("comparisons a line: %.0f after 2,000 lines, %.0f after 8,000: they grow with the templates held", small, large)
	}
}
