package logmine_test

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/aiops-dev/aiops/pkg/logmine"
	"github.com/aiops-dev/aiops/pkg/logmine/internal/loghub"
)

// nearLines returns n lines of 8 tokens, each position drawn from a few
// words, numbers, "key=value" fields and shapes with digits: lines that
// share most of their tokens, so that templates generalise, fold and tie
// in leaves with many templates.
func nearLines(n int, seed uint64) []string {
	r := rand.New(rand.NewPCG(seed, 9))
	words := []string{"alpha", "beta", "gamma", "delta", "error", "ok"}
	toks := make([]string, 8)
	lines := make([]string, n)
	for i := range lines {
		for j := range toks {
			switch k := r.IntN(10); {
			case k < 6:
				toks[j] = words[(j+r.IntN(3))%len(words)]
			case k < 7:
				toks[j] = fmt.Sprint(r.IntN(1000))
			case k < 8:
				toks[j] = fmt.Sprintf("state=%s", words[r.IntN(3)])
			case k < 9:
				toks[j] = fmt.Sprintf("eth%d", r.IntN(4))
			default:
				toks[j] = fmt.Sprintf("w%c%c", 'a'+r.IntN(26), 'a'+r.IntN(26))
			}
		}
		lines[i] = strings.Join(toks, " ")
	}
	return lines
}

// shapeLines returns n lines of 6 tokens without a plain word: numbers,
// "key=value" fields and words with digits, which match a template
// without repeating any of its literals.
func shapeLines(n int, seed uint64) []string {
	r := rand.New(rand.NewPCG(seed, 11))
	toks := make([]string, 6)
	lines := make([]string, n)
	for i := range lines {
		for j := range toks {
			switch r.IntN(4) {
			case 0:
				toks[j] = fmt.Sprint(r.IntN(100))
			case 1:
				toks[j] = fmt.Sprintf("k%d=v%d", j, r.IntN(3))
			case 2:
				toks[j] = fmt.Sprintf("eth%d", r.IntN(9))
			default:
				toks[j] = fmt.Sprintf("r%d", r.IntN(50))
			}
		}
		lines[i] = strings.Join(toks, " ")
	}
	return lines
}

// prefixFlood returns n lines of one opening and distinct free text of
// one length ("user said: <6 random words>"): every template of their
// leaf repeats the line's routing words, so the index's lists at those
// positions hold them all.
func prefixFlood(n int, seed uint64) []string {
	lines := randomWords(n, seed)
	for i, l := range lines {
		lines[i] = "user said: " + l[:strings.LastIndexByte(l, ' ')]
		lines[i] = lines[i][:strings.LastIndexByte(lines[i], ' ')]
	}
	return lines
}

// A flood of lines that open alike is compared with the templates it can
// match, not with every template of the leaf: comparisons per line stay
// few as the templates grow (every line a template of its own), instead
// of growing with them (about 2,500 a line over 5,000 lines).
func TestLeafIndexBoundsComparisonsOnAPrefixFlood(t *testing.T) {
	m := newMiner(t, nil)
	lines := prefixFlood(5_000, 8)
	for _, l := range lines {
		m.Match(l)
	}
	// One a line, the leaf keeping the latest maxLeafTemplates.
	if st := m.Stats(); st.Templates+int(st.Evicted) != len(lines) {
		t.Fatalf("%d templates and %d evicted, want one a line", st.Templates, st.Evicted)
	}
	if per := float64(m.Compared()) / float64(len(lines)); per > 20 {
		t.Fatalf("%.0f comparisons a line, want a few", per)
	}
}

// mine runs lines through a new miner with the defaults and returns every
// result and the final templates.
func mine(t *testing.T, lines []string) ([]logmine.Result, []logmine.Template) {
	m := newMiner(t, nil)
	out := make([]logmine.Result, len(lines))
	for i, l := range lines {
		out[i] = m.Match(l)
	}
	return out, m.Templates()
}

// The leaf index changes how many templates a line is compared with, never
// which one it matches: every line's result, and the final templates, are
// the same with the index off, at its default and from the second template
// of a leaf, on the eight Loghub samples and on lines made to generalise,
// fold and flood.
func TestLeafIndexChangesNoResult(t *testing.T) {
	corpora := map[string][]string{
		"near":           nearLines(20_000, 1),
		"flood":          randomWords(5_000, 2),
		"flood and near": append(randomWords(3_000, 3), nearLines(5_000, 4)...),
		"shapes":         append(randomWords(2_000, 5), shapeLines(5_000, 6)...),
		"prefix flood":   append(prefixFlood(3_000, 7), nearLines(3_000, 8)...),
	}
	if dir, err := loghub.Dir(); err == nil {
		for _, sys := range loghub.All {
			ds, err := loghub.Load(dir, sys)
			if err != nil {
				t.Fatal(err)
			}
			corpora[sys] = ds.Lines // whole lines: headers make long shared prefixes
		}
	} else if !testing.Short() {
		t.Logf("Loghub samples not found (%v): synthetic lines only", err)
	}
	for name, lines := range corpora {
		restore := logmine.SetIndexAt(1 << 30)
		want, wantT := mine(t, lines)
		restore()
		for _, at := range []int{2, 32} {
			restore := logmine.SetIndexAt(at)
			got, gotT := mine(t, lines)
			restore()
			for i := range want {
				if !reflect.DeepEqual(got[i], want[i]) {
					t.Errorf("%s, index from %d templates: line %d %q: %+v, without the index %+v", name, at, i, lines[i], got[i], want[i])
					break
				}
			}
			if !reflect.DeepEqual(gotT, wantT) {
				t.Errorf("%s, index from %d templates: %d final templates, %d without the index, or they differ", name, at, len(gotT), len(wantT))
			}
		}
	}
}

// The leaf index's bound (bestIn) skips only templates that cannot reach
// the threshold: for every line of the eight Loghub samples (whole lines
// and their contents) and of lines made to generalise, fold and flood,
// and for every indexed leaf of its length, the template picked with the
// bound is the one a scan of the whole leaf picks.
func TestLeafIndexBoundSkipsNoMatch(t *testing.T) {
	corpora := map[string][]string{
		"near":         nearLines(5_000, 1),
		"shapes":       append(randomWords(1_000, 5), shapeLines(3_000, 6)...),
		"prefix flood": append(prefixFlood(2_000, 7), nearLines(2_000, 8)...),
	}
	if dir, err := loghub.Dir(); err == nil {
		for _, sys := range loghub.All {
			ds, err := loghub.Load(dir, sys)
			if err != nil {
				t.Fatal(err)
			}
			corpora[sys] = ds.Lines
			corpora[sys+" contents"] = ds.Contents
		}
	} else if !testing.Short() {
		t.Logf("Loghub samples not found (%v): synthetic lines only", err)
	}
	for name, lines := range corpora {
		for _, at := range []int{2, 32} {
			restore := logmine.SetIndexAt(at)
			m := newMiner(t, nil)
			for _, l := range lines {
				if err := m.CheckBound(l); err != nil {
					t.Errorf("%s, index from %d templates: %v", name, at, err)
					break
				}
				m.Match(l)
			}
			restore()
		}
	}
}
