package detect

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"time"

	"github.com/aiops-dev/aiops/pkg/errs"
)

// MaxGroupReplayLine bounds one CSV line of a group replay: up to
// MaxGroupChannels values need more room than a univariate line.
const MaxGroupReplayLine = 64 << 10

// Sentinel errors of ReplayGroup besides those of Replay (ErrReplayHeader,
// ErrReplayRow, ErrReplayTimestamp, ErrReplayTooLarge); all are permanent
// and name the line.
var (
	// ErrReplayValue: a cell is neither a number, NaN nor empty.
	ErrReplayValue = errors.New("detect: bad replay value")
)

// GroupReplayStats counts what ReplayGroup saw.
type GroupReplayStats struct {
	Channels  []string // the value columns, in order
	Rows      int      // data rows read and written
	Anomalies int      // rows with is_anomaly = 1
	WarmUp    int      // rows scored 0 while the model learns
	Missing   int      // empty or NaN cells
	Ignored   int      // rows with every channel missing, out of order or duplicate timestamps: score 0
}

// GroupReplayOptions choose how ReplayGroup scores the rows, as the
// detector service scores a pipeline group.
type GroupReplayOptions struct {
	// Method is MethodVote (the default, "") or MethodPCA.
	Method string
	// Config configures the channels' detectors of MethodVote (the
	// pipeline's defaults in the service).
	Config Config
	// Group configures MethodPCA's Group.
	Group GroupConfig
}

// GroupReplayRow is one scored row, passed to ReplayGroupFunc's callback.
// Values and Result.Expected are the row's own copies. With MethodVote,
// Result holds the vote's Time, Score, Anomaly, Channel, Sigmas (the top
// channel's), Expected (each channel's own detector's, NaN while it
// learns) and Flags; the principal-component fields are zero.
type GroupReplayRow struct {
	Line   int       // 1-based line number in the input
	Values []float64 // one per channel; NaN where missing
	Result GroupResult
}

// IsGroupHeader reports whether a replay header line names more than one
// value column after timestamp (timestamp,a,b,...): the input of
// ReplayGroup rather than Replay.
func IsGroupHeader(line []byte) bool {
	line = bytes.TrimSpace(bytes.TrimPrefix(line, []byte("\xef\xbb\xbf")))
	fields := bytes.Split(line, []byte(","))
	return len(fields) > 2 && bytes.EqualFold(unquote(bytes.TrimSpace(fields[0])), []byte("timestamp"))
}

// ReplayGroup scores a CSV of several channels of one asset offline as the
// detector service scores a pipeline group of o.Method: a Vote of the
// channels' own detectors (MethodVote, the default) or one Group
// (MethodPCA). The input has the header timestamp,<channel>,<channel>,...
// (2 to MaxGroupChannels channels, unique non-empty names); timestamps are
// as Replay's. The output has the header
// timestamp,<channels>,anomaly_score,is_anomaly,channel (MethodPCA adds
// ,changing) and one row for each input row, in order, with the timestamp
// and the cells copied verbatim; anomaly_score is the vote's Score (0.5 at
// its limit) or the Group's; channel names the column that contributes
// most to an anomalous row and is empty otherwise; changing is 1 while the
// asset's operating point is moving (GroupResult.Changing: it switches on
// where a change starts and off where the asset has settled), else 0.
//
// An empty cell or NaN (any case) is a missing channel. Everything else
// that is wrong stops the replay with a permanent error naming the line and,
// for a cell, the column: a header that is not timestamp plus at least two
// columns, a row with another number of fields than the header, a timestamp
// or a number that does not parse, a line over MaxGroupReplayLine bytes, more
// than MaxReplayRows rows. Blank lines are skipped.
func ReplayGroup(r io.Reader, w io.Writer, o GroupReplayOptions) (GroupReplayStats, error) {
	return ReplayGroupFunc(r, w, o, nil)
}

// ReplayGroupFunc is ReplayGroup that also passes each scored row to each
// (if not nil), for example to collect them for a plot. w may be nil to
// skip the CSV.
func ReplayGroupFunc(r io.Reader, w io.Writer, o GroupReplayOptions, each func(GroupReplayRow)) (GroupReplayStats, error) {
	var st GroupReplayStats
	method, err := ParseMethod(o.Method)
	if err != nil {
		return st, err
	}
	var profile *Profile
	if method == MethodVote {
		if profile, err = NewProfile(o.Config); err != nil {
			return st, err
		}
	} else if err := o.Group.Validate(); err != nil {
		return st, err
	}
	if w == nil {
		w = io.Discard
	}
	lr := newLineReader(r, MaxGroupReplayLine)
	bw := bufio.NewWriterSize(w, 64<<10)
	var observe func(time.Time, []float64) GroupResult
	var fields [][]byte
	var row []float64
	out := make([]byte, 0, 256)
	for {
		text, last, err := lr.next()
		if err != nil {
			return st, err
		}
		line := lr.line
		switch {
		case len(text) == 0:
		case observe == nil:
			names, err := groupHeader(text, line)
			if err != nil {
				return st, err
			}
			st.Channels = names
			if observe, err = groupObserver(method, profile, o.Group, len(names)); err != nil {
				return st, err
			}
			row = make([]float64, len(names))
			out = append(out[:0], "timestamp"...)
			for _, n := range names {
				out = append(out, ',')
				out = append(out, n...)
			}
			out = append(out, ",anomaly_score,is_anomaly,channel"...)
			if method == MethodPCA {
				out = append(out, ",changing"...)
			}
			out = append(out, '\n')
			if _, err := bw.Write(out); err != nil {
				return st, fmt.Errorf("detect: replay: write: %w", err)
			}
		default:
			if st.Rows >= MaxReplayRows {
				return st, errs.Permanent(fmt.Errorf("%w: line %d: more than %d rows", ErrReplayTooLarge, line, MaxReplayRows))
			}
			fields = splitFields(fields[:0], text)
			if len(fields) != len(row)+1 {
				return st, errs.Permanent(fmt.Errorf("%w: line %d: %d fields, the header has %d", ErrReplayRow, line, len(fields), len(row)+1))
			}
			t, err := ParseTimestamp(string(fields[0]))
			if err != nil {
				return st, errs.Permanent(fmt.Errorf("%w: line %d: %q: want Unix seconds, YYYY-MM-DD HH:MM:SS or RFC 3339", ErrReplayTimestamp, line, truncate(fields[0])))
			}
			for j, f := range fields[1:] {
				if len(f) == 0 || bytes.EqualFold(f, []byte("nan")) {
					row[j] = math.NaN()
					st.Missing++
					continue
				}
				v, err := strconv.ParseFloat(string(f), 64)
				if err != nil {
					return st, errs.Permanent(fmt.Errorf("%w: line %d, column %d (%s): %q is not a number", ErrReplayValue, line, j+2, st.Channels[j], truncate(f)))
				}
				row[j] = v
			}
			res := observe(t, row)
			st.count(res)
			out = out[:0]
			for i, f := range fields {
				if i > 0 {
					out = append(out, ',')
				}
				out = append(out, f...)
			}
			out = append(out, ',')
			out = strconv.AppendFloat(out, res.Score, 'f', 6, 64)
			if res.Anomaly {
				out = append(out, ",1,"...)
				if res.Channel >= 0 {
					out = append(out, st.Channels[res.Channel]...)
				}
			} else {
				out = append(out, ",0,"...)
			}
			switch {
			case method != MethodPCA:
			case res.Changing:
				out = append(out, ",1"...)
			default:
				out = append(out, ",0"...)
			}
			out = append(out, '\n')
			if _, err := bw.Write(out); err != nil {
				return st, fmt.Errorf("detect: replay: write: %w", err)
			}
			if each != nil {
				res.Expected = append([]float64(nil), res.Expected...)
				each(GroupReplayRow{Line: line, Values: append([]float64(nil), row...), Result: res})
			}
		}
		if last {
			break
		}
	}
	if observe == nil {
		return st, errs.Permanent(fmt.Errorf("%w: input is empty", ErrReplayHeader))
	}
	if err := bw.Flush(); err != nil {
		return st, fmt.Errorf("detect: replay: write: %w", err)
	}
	return st, nil
}

// groupObserver returns the scorer of rows of channels channels by
// method: a Vote of profile's detectors or a Group of cfg. A vote's result
// is given in a GroupResult (see GroupReplayRow).
func groupObserver(method string, profile *Profile, cfg GroupConfig, channels int) (func(time.Time, []float64) GroupResult, error) {
	if method == MethodPCA {
		g, err := NewGroup(cfg, channels)
		if err != nil {
			return nil, err
		}
		return g.Observe, nil
	}
	v, err := NewVote(profile, channels)
	if err != nil {
		return nil, err
	}
	return func(t time.Time, row []float64) GroupResult {
		r := v.Observe(t, row)
		g := GroupResult{Time: r.Time, Score: r.Score, Anomaly: r.Anomaly, Channel: r.Channel, Expected: r.Expected, Flags: r.Flags}
		if r.Channel >= 0 {
			g.Sigmas = r.Channels[r.Channel].Sigmas
		}
		return g
	}, nil
}

func (st *GroupReplayStats) count(r GroupResult) {
	st.Rows++
	switch {
	case r.Flags&(FlagInvalid|FlagOutOfOrder|FlagDuplicate) != 0:
		st.Ignored++
	case r.Flags&FlagWarmUp != 0:
		st.WarmUp++
	}
	if r.Anomaly {
		st.Anomalies++
	}
}

// groupHeader checks a group header and returns its channel names.
func groupHeader(text []byte, line int) ([]string, error) {
	fields := splitFields(nil, text)
	if len(fields) < 3 || !bytes.EqualFold(fields[0], []byte("timestamp")) {
		return nil, errs.Permanent(fmt.Errorf("%w: line %d is %q, want timestamp and at least two value columns", ErrReplayHeader, line, truncate(text)))
	}
	if len(fields)-1 > MaxGroupChannels {
		return nil, errs.Permanent(fmt.Errorf("%w: line %d: %d value columns, at most %d", ErrReplayTooLarge, line, len(fields)-1, MaxGroupChannels))
	}
	names := make([]string, len(fields)-1)
	seen := make(map[string]int, len(names))
	for j, f := range fields[1:] {
		if len(f) == 0 {
			return nil, errs.Permanent(fmt.Errorf("%w: line %d, column %d has no name", ErrReplayHeader, line, j+2))
		}
		names[j] = string(f)
		if k, dup := seen[names[j]]; dup {
			return nil, errs.Permanent(fmt.Errorf("%w: line %d, column %d repeats the name %q of column %d", ErrReplayHeader, line, j+2, names[j], k+2))
		}
		seen[names[j]] = j
	}
	return names, nil
}

// splitFields appends the trimmed, unquoted comma-separated fields of b to
// dst.
func splitFields(dst [][]byte, b []byte) [][]byte {
	for {
		i := bytes.IndexByte(b, ',')
		if i < 0 {
			return append(dst, unquote(bytes.TrimSpace(b)))
		}
		dst = append(dst, unquote(bytes.TrimSpace(b[:i])))
		b = b[i+1:]
	}
}
