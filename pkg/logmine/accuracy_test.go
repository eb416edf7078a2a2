package logmine_test

import (
	"testing"

	"github.com/aiops-dev/aiops/pkg/logmine"
	"github.com/aiops-dev/aiops/pkg/logmine/eval"
	"github.com/aiops-dev/aiops/pkg/logmine/internal/loghub"
)

func TestAccuracyDebug(t *testing.T) {
	dir := loghub.Require(t)
	for _, sys := range loghub.Systems {
		ds, err := loghub.Load(dir, sys)
		if err != nil {
			t.Fatal(err)
		}
		parsed, st, err := logmine.ParseLines(ds.Lines, logmine.ParseOptions{Format: ds.Format})
		if err != nil {
			t.Fatal(err)
		}
		ids := make([]string, len(parsed))
		tm := make([]string, len(parsed))
		for i, p := range parsed {
			ids[i] = p.ID.String()
			tm[i] = p.Template
		}
		ga, _ := eval.GroupingAccuracy(ds.EventIDs, ids)
		pa, _ := eval.ParsingAccuracy(ds.Templates, tm)
		t.Logf("%-10s GA %.4f PA %.4f templates %d unmatched %d", sys, ga, pa, st.Templates, st.Unmatched)
		seen := map[string]bool{}
		for i := range tm {
			if tm[i] != ds.Templates[i] && !seen[tm[i]+ds.Templates[i]] {
				seen[tm[i]+ds.Templates[i]] = true
				t.Logf("  %s got %q want %q", ds.EventIDs[i], tm[i], ds.Templates[i])
			}
		}
	}
}
