package eval

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/aiops-dev/aiops/pkg/detect"
	"github.com/aiops-dev/aiops/pkg/errs"
)

// ErrLabelledFormat is wrapped by every error ReadLabelled returns for bad
// input; it is permanent.
var ErrLabelledFormat = errors.New("eval: bad labelled CSV")

// ErrNotLabelled is wrapped (with ErrLabelledFormat) when the first line is
// not a labelled header: callers walking a corpus skip such files
// (manifests, indexes) instead of failing.
var ErrNotLabelled = errors.New("not a labelled file")

// Limits of ReadLabelled, checked before the work they bound: a line is
// read into a fixed buffer, and the row count is checked before a row is
// stored.
const (
	MaxLabelledLine    = 64 << 10   // bytes in one line
	MaxLabelledRows    = 20_000_000 // data rows of one file
	MaxLabelledColumns = 256        // value columns (a Group's channel bound)
	// MaxLabelledCells bounds rows × value columns of one file (400 MB of
	// values): the row limit alone would let 256 columns take 40 GB.
	MaxLabelledCells = 50_000_000
)

// Labelled is one labelled file: timestamp, one or more value columns, label.
type Labelled struct {
	Channels []string    // value column names, in order
	Times    []time.Time // one per row
	Values   [][]float64 // Values[c][i]: channel c at row i (NaN if the cell is empty or not a number)
	Labels   []bool      // label column: 1 anomalous, 0 normal
}

// Rows is the number of data rows.
func (l Labelled) Rows() int { return len(l.Times) }

// Multivariate returns l in the layout the group scorers take.
func (l Labelled) Multivariate() Multivariate {
	return Multivariate{Channels: l.Channels, Times: l.Times, Values: l.Values, Labels: l.Labels}
}

// Append adds the rows of o (same channels) after l's; it is how a train
// half is streamed before its test half.
func (l *Labelled) Append(o Labelled) error {
	if len(o.Channels) != len(l.Channels) {
		return errs.Permanent(fmt.Errorf("%w: %d columns, the file before has %d", ErrLabelledFormat, len(o.Channels), len(l.Channels)))
	}
	l.Times = append(l.Times, o.Times...)
	for c := range l.Values {
		l.Values[c] = append(l.Values[c], o.Values[c]...)
	}
	l.Labels = append(l.Labels, o.Labels...)
	return nil
}

// ReadLabelledFile reads a labelled CSV file, gunzipping it when its name
// ends in .gz.
func ReadLabelledFile(path string) (Labelled, error) {
	f, err := os.Open(path)
	if err != nil {
		return Labelled{}, err
	}
	defer f.Close()
	var r io.Reader = f
	if strings.HasSuffix(path, ".gz") {
		gz, err := gzip.NewReader(f)
		if err != nil {
			return Labelled{}, errs.Permanent(fmt.Errorf("%w: %s: %v", ErrLabelledFormat, path, err))
		}
		defer gz.Close()
		r = gz
	}
	l, err := ReadLabelled(r)
	if err != nil {
		return l, fmt.Errorf("%s: %w", path, err)
	}
	return l, nil
}

// ReadLabelled reads a labelled CSV: the header timestamp,<value
// columns>,label (one value column is a series, several are one asset's
// channels), comma separated. Timestamps are Unix seconds (integer or
// decimal) or YYYY-MM-DD HH:MM:SS (UTC) or RFC 3339; labels are 0 or 1. A
// value that is empty or not a number is NaN (a missing sample); a wrong
// column count, timestamp or label is an error naming the line.
func ReadLabelled(r io.Reader) (Labelled, error) {
	var l Labelled
	br := bufio.NewReaderSize(r, MaxLabelledLine)
	line := 0
	var fields [][]byte
	for {
		raw, rerr := br.ReadSlice('\n')
		if rerr == bufio.ErrBufferFull {
			return l, errs.Permanent(fmt.Errorf("%w: line %d is longer than %d bytes", ErrLabelledFormat, line+1, MaxLabelledLine))
		}
		if rerr != nil && rerr != io.EOF {
			return l, fmt.Errorf("eval: read line %d: %w", line+1, rerr)
		}
		if len(raw) > 0 {
			line++
		}
		text := bytes.TrimSpace(raw)
		if line == 1 {
			text = bytes.TrimPrefix(text, []byte("\xef\xbb\xbf"))
		}
		if len(text) > 0 {
			fields = fields[:0]
			for f := range bytes.SplitSeq(text, []byte{','}) {
				fields = append(fields, bytes.TrimSpace(f))
			}
			if l.Channels == nil {
				if err := l.header(fields); err != nil {
					return l, err
				}
			} else if err := l.row(fields, line); err != nil {
				return l, err
			}
		}
		if rerr == io.EOF {
			break
		}
	}
	if l.Channels == nil {
		return l, errs.Permanent(fmt.Errorf("%w: the input is empty", ErrLabelledFormat))
	}
	return l, nil
}

func (l *Labelled) header(f [][]byte) error {
	n := len(f)
	if n < 3 || !bytes.EqualFold(f[0], []byte("timestamp")) || !bytes.EqualFold(f[n-1], []byte("label")) {
		return errs.Permanent(fmt.Errorf("%w: %w: line 1: want the header timestamp,<value columns>,label, got %q", ErrLabelledFormat, ErrNotLabelled, truncate(bytes.Join(f, []byte{','}))))
	}
	if n-2 > MaxLabelledColumns {
		return errs.Permanent(fmt.Errorf("%w: line 1: %d value columns, at most %d", ErrLabelledFormat, n-2, MaxLabelledColumns))
	}
	l.Channels = make([]string, 0, n-2)
	for _, c := range f[1 : n-1] {
		l.Channels = append(l.Channels, string(c))
	}
	l.Values = make([][]float64, n-2)
	return nil
}

func (l *Labelled) row(f [][]byte, line int) error {
	want := len(l.Channels) + 2
	if len(f) != want {
		return errs.Permanent(fmt.Errorf("%w: line %d: %d fields, the header has %d", ErrLabelledFormat, line, len(f), want))
	}
	if len(l.Times) >= MaxLabelledRows {
		return errs.Permanent(fmt.Errorf("%w: line %d: more than %d rows", ErrLabelledFormat, line, MaxLabelledRows))
	}
	if (len(l.Times)+1)*len(l.Channels) > MaxLabelledCells {
		return errs.Permanent(fmt.Errorf("%w: line %d: more than %d values (rows × columns)", ErrLabelledFormat, line, MaxLabelledCells))
	}
	t, err := detect.ParseTimestamp(string(f[0]))
	if err != nil {
		return errs.Permanent(fmt.Errorf("%w: line %d: timestamp %q: want Unix seconds, YYYY-MM-DD HH:MM:SS or RFC 3339", ErrLabelledFormat, line, truncate(f[0])))
	}
	var lab bool
	switch string(f[len(f)-1]) {
	case "0", "0.0":
	case "1", "1.0":
		lab = true
	default:
		return errs.Permanent(fmt.Errorf("%w: line %d: label %q: want 0 or 1", ErrLabelledFormat, line, truncate(f[len(f)-1])))
	}
	l.Times = append(l.Times, t)
	l.Labels = append(l.Labels, lab)
	for c := range l.Channels {
		v, err := strconv.ParseFloat(string(f[c+1]), 64)
		if err != nil {
			v = math.NaN()
		}
		l.Values[c] = append(l.Values[c], v)
	}
	return nil
}

func truncate(b []byte) string {
	if len(b) > 80 {
		return string(b[:80]) + "…"
	}
	return string(b)
}
