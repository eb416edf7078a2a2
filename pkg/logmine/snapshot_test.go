package logmine_test

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	"github.com/aiops-dev/aiops/pkg/logmine"
	"github.com/aiops-dev/aiops/pkg/logmine/internal/loghub"
)

// restartLines is a long mixed stream: the eight Loghub samples' contents
// (when the shared data is there), the synthetic types, lines made to
// generalise and fold in leaves of many templates, and lines whose
// generalisation or fold turns a routing token into <*> (a word in the
// second position, drawn from more values than MaxChildren, next to a
// state that folds by WordFoldAfter; a name in the second position that
// folds by FoldAfter; a name opening a message that folds online by
// ConsolidateAfter), shuffled.
func restartLines(t *testing.T) []string {
	var lines []string
	if dir, err := loghub.Dir(); err == nil {
		for _, sys := range loghub.All {
			lines = append(lines, contentsOf(t, dir, sys)...)
		}
	} else {
		t.Logf("without the Loghub samples: %v", err)
	}
	synth, _ := synthLines(21, 4000)
	lines = append(lines, synth...)
	lines = append(lines, nearLines(3000, 22)...)
	lines = append(lines, shapeLines(1000, 23)...)
	r := rand.New(rand.NewPCG(24, 24))
	word := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte('a' + r.IntN(26))
		}
		return string(b)
	}
	states := []string{"UP", "DOWN", "WAIT", "IDLE", "BUSY"}
	names := []string{"alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet"}
	for i := 0; i < 4000; i++ {
		switch r.IntN(4) {
		case 0:
			lines = append(lines, fmt.Sprintf("conn %s state %s key=%d", word(2), states[r.IntN(len(states))], r.IntN(9)))
		case 1:
			lines = append(lines, fmt.Sprintf("replica %s is back in sync after %d ms", names[r.IntN(len(names))], r.IntN(500)))
		case 2:
			lines = append(lines, fmt.Sprintf("%s opened session %d", names[r.IntN(len(names))], r.IntN(1000)))
		default:
			lines = append(lines, fmt.Sprintf("job %s finished with %s status", word(3), states[r.IntN(len(states))]))
		}
	}
	r.Shuffle(len(lines), func(i, j int) { lines[i], lines[j] = lines[j], lines[i] })
	return lines
}

// A miner saved and restored every few lines continues exactly like one
// that never stopped: every line gets the same result (id, template,
// params, new, changed, merges) and both end with the same templates and
// counters, with evictions (a small MaxTemplates) and with the leaf index
// from the second template of a leaf.
func TestRestoreContinuesLikeNeverStopped(t *testing.T) {
	lines := restartLines(t)
	for _, tc := range []struct {
		every, maxTemplates, indexAt int
	}{
		{997, 0, 0},
		{101, 0, 0},
		{997, 200, 0},
		{499, 0, 2},
		{499, 150, 2},
	} {
		t.Run(fmt.Sprintf("every%d/max%d/index%d", tc.every, tc.maxTemplates, tc.indexAt), func(t *testing.T) {
			if tc.indexAt > 0 {
				defer logmine.SetIndexAt(tc.indexAt)()
			}
			cfg := func(c *logmine.Config) {
				if tc.maxTemplates > 0 {
					c.MaxTemplates = tc.maxTemplates
				}
			}
			whole := newMiner(t, cfg)
			cur := newMiner(t, cfg)
			for i, l := range lines {
				if i > 0 && i%tc.every == 0 {
					snap, err := cur.Snapshot()
					if err != nil {
						t.Fatal(err)
					}
					cur = newMiner(t, cfg)
					if err := cur.Restore(snap); err != nil {
						t.Fatal(err)
					}
				}
				a, b := whole.Match(l), cur.Match(l)
				if !reflect.DeepEqual(a, b) {
					t.Fatalf("line %d %q: restored %+v, never stopped %+v", i, l, b, a)
				}
			}
			if !slices.Equal(whole.Templates(), cur.Templates()) || !slices.Equal(whole.Merges(), cur.Merges()) {
				t.Fatal("the restored miner ends with other templates or merges")
			}
			if a, b := whole.Stats(), cur.Stats(); a != b {
				t.Fatalf("stats: restored %+v, never stopped %+v", b, a)
			}
		})
	}
}
