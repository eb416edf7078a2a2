package logmine_test

import (
	"testing"

	"github.com/aiops-dev/aiops/pkg/logmine"
	"github.com/aiops-dev/aiops/pkg/logmine/eval"
	"github.com/aiops-dev/aiops/pkg/logmine/internal/loghub"
)

func TestSweepDebug(t *testing.T) {
	dir := loghub.Require(t)
	for _, pt := range []int{1, 2, 3} {
		for _, th := range []float64{0.4, 0.5, 0.55, 0.6, 0.65, 0.7, 0.8} {
			cfg := logmine.DefaultConfig()
			cfg.PrefixTokens, cfg.SimilarityThreshold = pt, th
			line := ""
			var sg, sp float64
			for _, sys := range loghub.Systems {
				ds, _ := loghub.Load(dir, sys)
				parsed, _, _ := logmine.ParseLines(ds.Lines, logmine.ParseOptions{Format: ds.Format, Config: &cfg})
				ids := make([]string, len(parsed))
				tm := make([]string, len(parsed))
				for i, p := range parsed {
					ids[i], tm[i] = p.ID.String(), p.Template
				}
				ga, _ := eval.GroupingAccuracy(ds.EventIDs, ids)
				pa, _ := eval.ParsingAccuracy(ds.Templates, tm)
				sg += ga
				sp += pa
				line += " " + sys[:3] + " " + ftoa(ga) + "/" + ftoa(pa)
			}
			t.Logf("pt=%d th=%.2f GA %.4f PA %.4f |%s", pt, th, sg/4, sp/4, line)
		}
	}
}

func ftoa(f float64) string {
	return string([]byte{byte('0' + int(f*1000)/1000), '.', byte('0' + int(f*1000)/100%10), byte('0' + int(f*1000)/10%10), byte('0' + int(f*1000)%10)})
}
