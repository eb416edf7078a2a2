package eval

import (
	"path/filepath"
	"testing"
)

// corpusFigures are the figures of one corpus part, as aiops detect eval
// prints them.
type corpusFigures struct {
	files                  int
	pooled                 Segments
	meanF1, meanPA, meanPt float64
	maxFlagged             float64 // the largest fraction of rows flagged in one file
	maxFlaggedFile         string
	zMeanF1                float64
}

// scoreCorpus runs every every-th case of part of dir with the defaults.
func scoreCorpus(t *testing.T, dir string, part Part, every int) corpusFigures {
	t.Helper()
	cases, err := FindCases(dir)
	if err != nil {
		t.Fatal(err)
	}
	var f corpusFigures
	k := 0
	for _, c := range cases {
		if !part.In(c.Name) || filepath.Base(c.Path) == "manifest.csv" || filepath.Base(c.Path) == "series.csv" {
			continue
		}
		if k++; (k-1)%every != 0 {
			continue
		}
		r, err := Run(c, Options{})
		if err != nil {
			t.Fatalf("%s: %v", c.Path, err)
		}
		d := r.Detector
		f.files++
		f.pooled.Add(d)
		f.meanF1 += d.Delayed.F1()
		f.meanPA += d.Adjusted.F1()
		f.meanPt += d.Point.F1()
		f.zMeanF1 += r.ZScore.Delayed.F1()
		if d.FlaggedFraction() > f.maxFlagged {
			f.maxFlagged, f.maxFlaggedFile = d.FlaggedFraction(), c.Name
		}
	}
	if f.files == 0 {
		t.Fatalf("no case of %s in the part", dir)
	}
	n := float64(f.files)
	f.meanF1, f.meanPA, f.meanPt, f.zMeanF1 = f.meanF1/n, f.meanPA/n, f.meanPt/n, f.zMeanF1/n
	p := f.pooled
	t.Logf("%s (%d files): mean F1(d7) %.3f (z-score %.3f), mean point F1 %.3f, mean PA-F1 %.3f; pooled F1(d7) %.3f point %.3f PA %.3f; segments %d/%d/%d; false episodes %.2f per 1,000 rows; normal rows flagged %.2f%%; most flagged file %s %.2f%%",
		filepath.Base(dir), f.files, f.meanF1, f.zMeanF1, f.meanPt, f.meanPA, p.Delayed.F1(), p.Point.F1(), p.Adjusted.F1(),
		p.FoundInTime, p.Found, p.Segments, p.FalsePer1000(), 100*p.FlaggedNormalFraction(), f.maxFlaggedFile, 100*f.maxFlagged)
	return f
}

// TestQualityCorporaHeldOut gates the floors of the real corpora on their
// held-out parts (HeldOutPart: defaults were chosen on the tuning part
// only), subsampled so that it runs in under a minute: every held-out
// KPI, SMD machine and ASD server, every third JumpStarter service. No flood anywhere: at most 2% of the normal rows of
// a corpus flagged, no file over 10% of its rows. The quality floors sit
// under the figures measured when they were set (pkg/detect/QUALITY.md),
// so a regression fails and noise does not. The pooled point F1 floors
// were lowered when an episode began to end once its series settles on
// a new level (and is not trending): a labelled segment longer than half
// a window is no longer flagged to its end (KPIs 0.514 -> 0.358, SMD
// 0.191 -> 0.155, this JumpStarter subsample 0.147 -> 0.123), while mean
// F1(d7) rose on every held-out part but ASD's, unchanged (this subsample
// of JumpStarter: 0.431 -> 0.426), and the rows flagged fell.
func TestQualityCorporaHeldOut(t *testing.T) {
	if testing.Short() {
		t.Skip("quality test over the shared corpora")
	}
	data := sharedData(t)
	for _, c := range []struct {
		dir            string
		every          int
		minMeanF1      float64 // challenge rule, mean over files
		minPooledPA    float64 // point-adjusted, pooled
		minPooledPoint float64 // point F1, pooled
		minBeatsZScore bool    // mean F1(d7) above the rolling z-score's
	}{
		{"kpi-aiops2018", 1, 0.60, 0.80, 0.30, true},
		{"smd", 1, 0.45, 0.80, 0.13, true},
		{"asd", 1, 0.38, 0.63, 0.19, true},
		{"jumpstarter", 3, 0.38, 0.90, 0.10, false},
	} {
		t.Run(c.dir, func(t *testing.T) {
			f := scoreCorpus(t, filepath.Join(data, c.dir), HeldOutPart, c.every)
			if fr := f.pooled.FlaggedNormalFraction(); fr > 0.02 {
				t.Errorf("flood: %.2f%% of normal rows flagged, want at most 2%%", 100*fr)
			}
			if f.maxFlagged > 0.10 {
				t.Errorf("flood: %s flagged on %.2f%% of its rows, want at most 10%%", f.maxFlaggedFile, 100*f.maxFlagged)
			}
			if f.meanF1 < c.minMeanF1 {
				t.Errorf("mean F1 by the challenge rule %.3f, floor %.2f", f.meanF1, c.minMeanF1)
			}
			if pa := f.pooled.Adjusted.F1(); pa < c.minPooledPA {
				t.Errorf("pooled point-adjusted F1 %.3f, floor %.2f", pa, c.minPooledPA)
			}
			if pt := f.pooled.Point.F1(); pt < c.minPooledPoint {
				t.Errorf("pooled point F1 %.3f, floor %.2f", pt, c.minPooledPoint)
			}
			if c.minBeatsZScore && f.meanF1 <= f.zMeanF1 {
				t.Errorf("mean F1 by the challenge rule %.3f, not above the rolling z-score's %.3f", f.meanF1, f.zMeanF1)
			}
		})
	}
}
