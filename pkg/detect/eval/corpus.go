package eval

import (
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/aiops-dev/aiops/pkg/detect"
	"github.com/aiops-dev/aiops/pkg/errs"
)

// A Case is one labelled file of a corpus to score, with the unlabelled
// train half streamed before it when there is one.
type Case struct {
	Name  string // the entity: the file name without .test, .csv and .gz
	Path  string // the labelled file
	Train string // its train half (name.train.csv[.gz]), or ""
}

// Part says which part of a corpus to score.
type Part int

// The parts: the split is declared up front and fixed (Tuning), so that
// defaults chosen on one part are reported on the other.
const (
	AllParts Part = iota
	TuningPart
	HeldOutPart
)

// ParsePart reads "all", "tune" or "holdout".
func ParsePart(s string) (Part, error) {
	switch s {
	case "", "all":
		return AllParts, nil
	case "tune", "tuning":
		return TuningPart, nil
	case "holdout", "held-out", "heldout":
		return HeldOutPart, nil
	}
	return 0, errs.Permanent(fmt.Errorf("eval: part %q: want all, tune or holdout", s))
}

// Tuning reports whether the entity named name belongs to the tuning part
// of its corpus: the FNV-1a hash of the name is even. Defaults may be
// chosen on the tuning part only; the other half is held out. The rule
// depends on nothing but the name, so it splits every corpus (and any a
// user brings) the same way, whatever the order of its files.
func Tuning(name string) bool {
	h := fnv.New32a()
	h.Write([]byte(name))
	return h.Sum32()%2 == 0
}

// In reports whether a case with this name is in part p.
func (p Part) In(name string) bool {
	switch p {
	case TuningPart:
		return Tuning(name)
	case HeldOutPart:
		return !Tuning(name)
	}
	return true
}

// ErrNoCases is returned by FindCases for a folder without labelled files.
var ErrNoCases = errors.New("eval: no labelled CSV files")

// MaxCases bounds the files of one corpus.
const MaxCases = 10_000

// FindCases walks dir for labelled CSV files (.csv or .csv.gz): a file
// name.test.csv[.gz] is scored after its name.train.csv[.gz] if there is
// one; train halves are never scored; every other CSV is scored on its
// own (files whose header does not end in label, such as a manifest, are
// left out when read: see Run). Cases come in name order.
func FindCases(dir string) ([]Case, error) {
	var cases []Case
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		base := d.Name()
		stem := strings.TrimSuffix(base, ".gz")
		stem, isCSV := strings.CutSuffix(stem, ".csv")
		if !isCSV {
			return nil
		}
		if strings.HasSuffix(stem, ".train") {
			return nil
		}
		c := Case{Path: path}
		if name, isTest := strings.CutSuffix(stem, ".test"); isTest {
			c.Name = name
			for _, ext := range []string{".train.csv.gz", ".train.csv"} {
				tp := filepath.Join(filepath.Dir(path), name+ext)
				if _, err := os.Stat(tp); err == nil {
					c.Train = tp
					break
				}
			}
		} else {
			c.Name = stem
		}
		if rel, err := filepath.Rel(dir, filepath.Dir(path)); err == nil && rel != "." {
			c.Name = filepath.ToSlash(filepath.Join(rel, c.Name))
		}
		if len(cases) >= MaxCases {
			return errs.Permanent(fmt.Errorf("eval: %s: more than %d files", dir, MaxCases))
		}
		cases = append(cases, c)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(cases) == 0 {
		return nil, errs.Permanent(fmt.Errorf("%w in %s", ErrNoCases, dir))
	}
	slices.SortFunc(cases, func(a, b Case) int { return strings.Compare(a.Name, b.Name) })
	return cases, nil
}

// Options of Run.
type Options struct {
	Config      detect.Config      // univariate files
	GroupConfig detect.GroupConfig // multivariate files
	// ScoreFrom is the fraction of a file without a train half that is
	// streamed before scoring starts (the AIOps Challenge's KPIs: stream
	// from the start, score the second half). Default 0.5; negative scores
	// every row.
	ScoreFrom float64
	// Delay of the challenge rule; default ChallengeDelay.
	Delay int
	// ZThreshold of the rolling z-score baseline; default 3.
	ZThreshold float64
	// Group scores multivariate files with one detect.Group (principal
	// components of the channels) instead of the default vote of the
	// channels' own detectors (detect.Vote, VoteAlarms).
	Group bool
}

// Result is the score of one case: the detector's and the z-score
// baseline's on the same rows.
type Result struct {
	Case     Case
	Channels int
	Scored   int // rows scored (the test half, or the part after ScoreFrom)
	Detector Segments
	ZScore   Segments
	Elapsed  time.Duration
}

// Run scores one case: it streams the train half (if any) and the file
// through the default detector (a detect.Detector for one value column, a
// detect.Group for several), and scores the rows after the train half, or
// after ScoreFrom of the file, against the labels; the rolling z-score
// over the previous day is scored on the same rows.
func Run(c Case, o Options) (Result, error) {
	start := time.Now()
	res := Result{Case: c}
	l, err := ReadLabelledFile(c.Path)
	if err != nil {
		return res, err
	}
	first := 0
	if c.Train != "" {
		tr, err := ReadLabelledFile(c.Train)
		if err != nil {
			return res, err
		}
		first = tr.Rows()
		if err := tr.Append(l); err != nil {
			return res, fmt.Errorf("%s: %w", c.Path, err)
		}
		l = tr
	} else {
		from := o.ScoreFrom
		if from == 0 {
			from = 0.5
		}
		if from > 0 {
			first = int(float64(l.Rows()) * math.Min(from, 1))
		}
	}
	res.Channels = len(l.Channels)
	alarms, err := Alarms(l, o)
	if err != nil {
		return res, err
	}
	delay := o.Delay
	if delay == 0 {
		delay = ChallengeDelay
	}
	res.Scored = l.Rows() - first
	res.Detector = MeasureSegments(l.Labels[first:], alarms[first:], delay)
	z := o.ZThreshold
	if z == 0 {
		z = 3
	}
	win := dayWindow(l.Times)
	zAlarms := make([]bool, l.Rows())
	for _, ch := range l.Values {
		for i, a := range ZScoreAlarms(ch, win, z) {
			zAlarms[i] = zAlarms[i] || a
		}
	}
	res.ZScore = MeasureSegments(l.Labels[first:], zAlarms[first:], delay)
	res.Elapsed = time.Since(start)
	return res, nil
}

// Alarms runs the default detector of l's shape over every row of l and
// returns where it is in an alarm episode.
func Alarms(l Labelled, o Options) ([]bool, error) {
	if len(l.Channels) == 1 {
		d, err := detect.NewDetector(o.Config)
		if err != nil {
			return nil, err
		}
		alarms := make([]bool, l.Rows())
		for i, v := range l.Values[0] {
			alarms[i] = d.Observe(l.Times[i], v).Alarm
		}
		return alarms, nil
	}
	if !o.Group {
		return VoteAlarms(o.Config, l)
	}
	_, alarms, err := ScoreGroup(o.GroupConfig, l.Multivariate())
	return alarms, err
}

// VoteAlarms runs a detect.Vote (one univariate detector of cfg per
// channel of l; VoteSurprise·√channels, the detector service's default
// method for a pipeline group) over every row of l and returns where it
// flags a row.
func VoteAlarms(cfg detect.Config, l Labelled) ([]bool, error) {
	p, err := detect.NewProfile(cfg)
	if err != nil {
		return nil, err
	}
	v, err := detect.NewVote(p, len(l.Values))
	if err != nil {
		return nil, err
	}
	row := make([]float64, len(l.Values))
	flagged := make([]bool, l.Rows())
	for i, t := range l.Times {
		for c, ch := range l.Values {
			row[c] = ch[i]
		}
		flagged[i] = v.Observe(t, row).Anomaly
	}
	return flagged, nil
}

// dayWindow is the number of rows in a day at the series' median interval
// (at least 10).
func dayWindow(times []time.Time) int {
	if len(times) < 2 {
		return 10
	}
	n := min(len(times)-1, 1000)
	d := make([]time.Duration, n)
	for i := range d {
		d[i] = times[i+1].Sub(times[i])
	}
	slices.Sort(d)
	step := d[n/2]
	if step <= 0 {
		return 10
	}
	return max(10, int(24*time.Hour/step))
}
