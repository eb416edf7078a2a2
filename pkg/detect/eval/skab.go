package eval

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aiops-dev/aiops/pkg/detect"
	"github.com/aiops-dev/aiops/pkg/errs"
)

// ErrSKABFormat is wrapped by every error ReadSKAB returns for bad input.
var ErrSKABFormat = errors.New("eval: bad SKAB file")

// Multivariate is a multivariate labelled series: SKAB's layout.
type Multivariate struct {
	Channels []string    // channel names, in column order
	Times    []time.Time // one per row
	Values   [][]float64 // Values[c][i]: channel c at row i
	Labels   []bool      // the anomaly column
	// Changepoints is the changepoint column: the rows where a collective
	// anomaly starts, settles, starts to return and ends (all false when
	// the file has no such column).
	Changepoints []bool
}

// maxSKABRows bounds one file; SKAB files have about 1,200 rows.
const maxSKABRows = 1_000_000

// ReadSKAB reads a SKAB file: ';'-separated, a header whose first column is
// datetime, then the sensor channels, then anomaly and changepoint (both
// optional: anomaly-free.csv has neither, and its labels are all false).
func ReadSKAB(r io.Reader) (Multivariate, error) {
	var m Multivariate
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 64<<10)
	line := 0
	labelCol, cpCol := -1, -1
	var cols []int
	for sc.Scan() {
		line++
		f := strings.Split(strings.TrimSpace(sc.Text()), ";")
		if line == 1 {
			if len(f) < 3 || f[0] != "datetime" {
				return m, errs.Permanent(fmt.Errorf("%w: line 1: header must start with datetime, got %q", ErrSKABFormat, sc.Text()))
			}
			for i, name := range f[1:] {
				switch name {
				case "anomaly":
					labelCol = i + 1
				case "changepoint":
					cpCol = i + 1
				default:
					cols = append(cols, i+1)
					m.Channels = append(m.Channels, name)
				}
			}
			if len(cols) == 0 {
				return m, errs.Permanent(fmt.Errorf("%w: line 1: no channel columns", ErrSKABFormat))
			}
			m.Values = make([][]float64, len(cols))
			continue
		}
		if len(f) == 1 && f[0] == "" {
			continue
		}
		if len(m.Times) >= maxSKABRows {
			return m, errs.Permanent(fmt.Errorf("%w: line %d: more than %d rows", ErrSKABFormat, line, maxSKABRows))
		}
		if len(f) <= max(labelCol, cpCol, cols[len(cols)-1]) {
			return m, errs.Permanent(fmt.Errorf("%w: line %d: %d fields", ErrSKABFormat, line, len(f)))
		}
		t, err := time.Parse("2006-01-02 15:04:05", f[0])
		if err != nil {
			return m, errs.Permanent(fmt.Errorf("%w: line %d: datetime %q", ErrSKABFormat, line, f[0]))
		}
		m.Times = append(m.Times, t)
		for c, col := range cols {
			v, err := strconv.ParseFloat(f[col], 64)
			if err != nil {
				return m, errs.Permanent(fmt.Errorf("%w: line %d: %s %q", ErrSKABFormat, line, m.Channels[c], f[col]))
			}
			m.Values[c] = append(m.Values[c], v)
		}
		lab, err := flag(f, labelCol)
		if err != nil {
			return m, errs.Permanent(fmt.Errorf("%w: line %d: anomaly %v", ErrSKABFormat, line, err))
		}
		cp, err := flag(f, cpCol)
		if err != nil {
			return m, errs.Permanent(fmt.Errorf("%w: line %d: changepoint %v", ErrSKABFormat, line, err))
		}
		m.Labels = append(m.Labels, lab)
		m.Changepoints = append(m.Changepoints, cp)
	}
	if err := sc.Err(); err != nil {
		return m, fmt.Errorf("%w: line %d: %v", ErrSKABFormat, line+1, err)
	}
	if line == 0 {
		return m, errs.Permanent(fmt.Errorf("%w: empty", ErrSKABFormat))
	}
	return m, nil
}

// flag reads the 0/1 column col of a SKAB row; a missing column (col < 0:
// anomaly-free.csv has neither label) is false.
func flag(f []string, col int) (bool, error) {
	if col < 0 {
		return false, nil
	}
	v, err := strconv.ParseFloat(f[col], 64)
	if err != nil {
		return false, fmt.Errorf("%q", f[col])
	}
	return v != 0, nil
}

// Score runs one detector over a univariate series and returns each
// point's score and alarm.
func Score(cfg detect.Config, times []time.Time, values []float64) (scores []float64, alarms []bool, err error) {
	d, err := detect.NewDetector(cfg)
	if err != nil {
		return nil, nil, err
	}
	scores = make([]float64, len(values))
	alarms = make([]bool, len(values))
	for i, v := range values {
		r := d.Observe(times[i], v)
		scores[i], alarms[i] = r.Score, r.Anomaly
	}
	return scores, alarms, nil
}

// ErrAgreement is wrapped by ScoreAgree's error for an agreement count
// outside 1..channels; it is permanent.
var ErrAgreement = errors.New("eval: agreement count out of range")

// ScoreAgree runs one univariate detector per channel and takes, per row,
// the agree-th largest score over the channels: the row is anomalous when
// at least agree channels are. agree 1 is ScoreMax. It is an evaluation
// choice for multivariate data, not a detector setting: independent
// channels each with a small false-alarm rate add up under the maximum,
// and a fault that moves a process usually moves several of its sensors.
func ScoreAgree(cfg detect.Config, m Multivariate, agree int) (scores []float64, alarms []bool, err error) {
	if agree < 1 || agree > len(m.Values) {
		return nil, nil, errs.Permanent(fmt.Errorf("%w: agree %d with %d channels", ErrAgreement, agree, len(m.Values)))
	}
	per := make([][]float64, len(m.Values))
	for c, ch := range m.Values {
		if per[c], _, err = Score(cfg, m.Times, ch); err != nil {
			return nil, nil, err
		}
	}
	thr := cfg.WithDefaults().Threshold
	scores = make([]float64, len(m.Times))
	alarms = make([]bool, len(m.Times))
	row := make([]float64, len(per))
	for i := range scores {
		for c := range per {
			row[c] = per[c][i]
		}
		slices.Sort(row)
		scores[i] = row[len(row)-agree]
		alarms[i] = scores[i] >= thr
	}
	return scores, alarms, nil
}

// ScoreMax runs one univariate detector per channel and takes, per row, the
// maximum score over the channels: the row is anomalous when any channel
// is. That is how the default detector applies to multivariate data with no
// model of the relations between channels.
func ScoreMax(cfg detect.Config, m Multivariate) (scores []float64, alarms []bool, err error) {
	thr := cfg.WithDefaults().Threshold
	scores = make([]float64, len(m.Times))
	for _, ch := range m.Values {
		s, _, err := Score(cfg, m.Times, ch)
		if err != nil {
			return nil, nil, err
		}
		for i, v := range s {
			scores[i] = max(scores[i], v)
		}
	}
	alarms = make([]bool, len(scores))
	for i, s := range scores {
		alarms[i] = s >= thr
	}
	return scores, alarms, nil
}

// ScoreGroup runs one multivariate Group detector over every channel of m
// together and returns each row's score and alarm.
func ScoreGroup(cfg detect.GroupConfig, m Multivariate) (scores []float64, alarms []bool, err error) {
	scores = make([]float64, len(m.Times))
	alarms = make([]bool, len(m.Times))
	err = EachGroupRow(cfg, m, func(i int, r detect.GroupResult) { scores[i], alarms[i] = r.Score, r.Anomaly })
	return scores, alarms, err
}

// GroupChanges runs one Group over m and returns, for each row, whether
// the asset was changing (detect.GroupResult.Changing): its switches are
// the predicted changepoints.
func GroupChanges(cfg detect.GroupConfig, m Multivariate) ([]bool, error) {
	changing := make([]bool, len(m.Times))
	err := EachGroupRow(cfg, m, func(i int, r detect.GroupResult) { changing[i] = r.Changing })
	return changing, err
}

// EachGroupRow runs one Group over the rows of m in order and passes each
// row's index and result to each.
func EachGroupRow(cfg detect.GroupConfig, m Multivariate, each func(int, detect.GroupResult)) error {
	g, err := detect.NewGroup(cfg, len(m.Values))
	if err != nil {
		return err
	}
	row := make([]float64, len(m.Values))
	for i, t := range m.Times {
		for c := range m.Values {
			row[c] = m.Values[c][i]
		}
		each(i, g.Observe(t, row))
	}
	return nil
}
