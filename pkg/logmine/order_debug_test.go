package logmine_test

import (
	"math/rand/v2"
	"testing"

	"github.com/aiops-dev/aiops/pkg/logmine"
	"github.com/aiops-dev/aiops/pkg/logmine/internal/loghub"
)

func TestOrderDebug(t *testing.T) {
	dir := loghub.Require(t)
	for _, sys := range loghub.Systems {
		ds, _ := loghub.Load(dir, sys)
		base, _, _ := logmine.ParseLines(ds.Lines, logmine.ParseOptions{Format: ds.Format})
		for seed := uint64(1); seed <= 20; seed++ {
			perm := rand.New(rand.NewPCG(seed, 7)).Perm(len(ds.Lines))
			lines := make([]string, len(perm))
			for i, p := range perm {
				lines[i] = ds.Lines[p]
			}
			got, _, _ := logmine.ParseLines(lines, logmine.ParseOptions{Format: ds.Format})
			diff := 0
			for i, p := range perm {
				if got[i].Template != base[p].Template {
					if diff < 3 {
						t.Logf("%s seed %d line %d: %q vs %q", sys, seed, p, got[i].Template, base[p].Template)
					}
					diff++
				}
			}
			if diff > 0 {
				t.Logf("%s seed %d: %d lines differ", sys, seed, diff)
			}
		}
	}
}
