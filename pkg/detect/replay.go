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

// Limits of Replay's input.
const (
	MaxReplayLine = 4096       // bytes in one CSV line
	MaxReplayRows = 50_000_000 // data rows
)

// Sentinel errors of Replay; all are permanent and name the line.
var (
	ErrReplayHeader    = errors.New("detect: replay header is not timestamp,value")
	ErrReplayRow       = errors.New("detect: bad replay row")
	ErrReplayTimestamp = errors.New("detect: bad replay timestamp")
	ErrReplayTooLarge  = errors.New("detect: replay input too large")
)

// ReplayStats counts what Replay saw.
type ReplayStats struct {
	Rows          int // data rows read and written
	Anomalies     int // rows with is_anomaly = 1
	WarmUp        int // rows scored 0 during warm-up
	BadValues     int // value not a number: row kept, score 0
	Invalid       int // NaN, ±Inf or |value| > 1e100: row kept, score 0
	OutOfOrder    int // timestamp before the previous accepted one: score 0
	Duplicates    int // timestamp equal to the previous accepted one: score 0
	Gaps          int // rows after a gap
	CounterResets int // counter decreases
}

// ReplayRow is one scored row, passed to ReplayFunc's callback.
type ReplayRow struct {
	Line     int    // 1-based line number in the input
	BadValue bool   // the value did not parse; Result is zero apart from Time
	Result   Result // the detector's result
}

// Replay scores a CSV series offline with the same detector the service
// runs. The input has the header timestamp,value; timestamps are
// "YYYY-MM-DD HH:MM:SS" (UTC) or RFC 3339. The output has the header
// timestamp,value,anomaly_score,is_anomaly and one row for each input row,
// in the same order, with timestamp and value copied verbatim.
//
// Policy for bad rows: a wrong header, a row without exactly two fields, a
// timestamp that does not parse, a line over MaxReplayLine bytes or more
// than MaxReplayRows rows stop the replay with a permanent error naming the
// line. A value that does not parse as a number keeps its row with score 0
// and is counted in BadValues; NaN/Inf, out-of-order and duplicate
// timestamps are scored 0 as Detector.Observe documents. Blank lines are
// skipped.
func Replay(r io.Reader, w io.Writer, cfg Config) (ReplayStats, error) {
	return ReplayFunc(r, w, cfg, nil)
}

// ReplayFunc is Replay that also passes each scored row to each (if not nil),
// for example to collect them for a plot. w may be nil to skip the CSV.
func ReplayFunc(r io.Reader, w io.Writer, cfg Config, each func(ReplayRow)) (ReplayStats, error) {
	var st ReplayStats
	d, err := NewDetector(cfg)
	if err != nil {
		return st, err
	}
	if w == nil {
		w = io.Discard
	}
	lr := newLineReader(r, MaxReplayLine)
	bw := bufio.NewWriterSize(w, 64<<10)
	out := make([]byte, 0, 128)
	header := false
	for {
		text, last, err := lr.next()
		if err != nil {
			return st, err
		}
		line := lr.line
		if len(text) > 0 {
			if !header {
				ts, val, ok := split2(text)
				if !ok || !bytes.EqualFold(ts, []byte("timestamp")) || !bytes.EqualFold(val, []byte("value")) {
					return st, errs.Permanent(fmt.Errorf("%w: line %d is %q", ErrReplayHeader, line, truncate(text)))
				}
				header = true
				if _, err := bw.WriteString("timestamp,value,anomaly_score,is_anomaly\n"); err != nil {
					return st, fmt.Errorf("detect: replay: write: %w", err)
				}
			} else {
				if st.Rows >= MaxReplayRows {
					return st, errs.Permanent(fmt.Errorf("%w: line %d: more than %d rows", ErrReplayTooLarge, line, MaxReplayRows))
				}
				ts, val, ok := split2(text)
				if !ok {
					return st, errs.Permanent(fmt.Errorf("%w: line %d: want 2 fields timestamp,value, got %q", ErrReplayRow, line, truncate(text)))
				}
				t, err := ParseTimestamp(string(ts))
				if err != nil {
					return st, errs.Permanent(fmt.Errorf("%w: line %d: %q: want Unix seconds, YYYY-MM-DD HH:MM:SS or RFC 3339", ErrReplayTimestamp, line, truncate(ts)))
				}
				row := ReplayRow{Line: line}
				v, perr := strconv.ParseFloat(string(val), 64)
				if perr != nil {
					row.BadValue = true
					row.Result = Result{Time: t}
					st.BadValues++
				} else {
					row.Result = d.Observe(t, v)
					st.count(row.Result)
				}
				st.Rows++
				out = append(out[:0], ts...)
				out = append(out, ',')
				out = append(out, val...)
				out = append(out, ',')
				out = strconv.AppendFloat(out, row.Result.Score, 'f', 6, 64)
				if row.Result.Anomaly {
					out = append(out, ",1\n"...)
				} else {
					out = append(out, ",0\n"...)
				}
				if _, err := bw.Write(out); err != nil {
					return st, fmt.Errorf("detect: replay: write: %w", err)
				}
				if each != nil {
					each(row)
				}
			}
		}
		if last {
			break
		}
	}
	if !header {
		return st, errs.Permanent(fmt.Errorf("%w: input is empty", ErrReplayHeader))
	}
	if err := bw.Flush(); err != nil {
		return st, fmt.Errorf("detect: replay: write: %w", err)
	}
	return st, nil
}

func (st *ReplayStats) count(r Result) {
	f := r.Flags
	switch {
	case f&FlagInvalid != 0:
		st.Invalid++
	case f&FlagOutOfOrder != 0:
		st.OutOfOrder++
	case f&FlagDuplicate != 0:
		st.Duplicates++
	case f&FlagWarmUp != 0:
		st.WarmUp++
	}
	if f&FlagGap != 0 {
		st.Gaps++
	}
	if f&FlagCounterReset != 0 {
		st.CounterResets++
	}
	if r.Anomaly {
		st.Anomalies++
	}
}

// split2 splits "a,b" into trimmed, unquoted fields; ok is false unless
// there are exactly two.
func split2(b []byte) (a, c []byte, ok bool) {
	i := bytes.IndexByte(b, ',')
	if i < 0 || bytes.IndexByte(b[i+1:], ',') >= 0 {
		return nil, nil, false
	}
	return unquote(bytes.TrimSpace(b[:i])), unquote(bytes.TrimSpace(b[i+1:])), true
}

func unquote(b []byte) []byte {
	if len(b) >= 2 && b[0] == '"' && b[len(b)-1] == '"' {
		return b[1 : len(b)-1]
	}
	return b
}

func truncate(b []byte) string {
	if len(b) > 80 {
		return string(b[:80]) + "…"
	}
	return string(b)
}

// ParseTimestamp reads a row's time as the replay and eval inputs write
// it: Unix seconds (with an optional fraction: the labelled corpora),
// "YYYY-MM-DD HH:MM:SS" (UTC, optional fraction) or RFC 3339.
func ParseTimestamp(s string) (time.Time, error) {
	if sec, err := strconv.ParseInt(s, 10, 64); err == nil {
		if sec < -1e11 || sec > 1e11 { // beyond year ±5000: not seconds
			return time.Time{}, errors.New("out of range")
		}
		return time.Unix(sec, 0).UTC(), nil
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		if !(math.Abs(f) < 1e11) {
			return time.Time{}, errors.New("out of range")
		}
		sec, frac := math.Modf(f)
		return time.Unix(int64(sec), int64(frac*1e9)).UTC(), nil
	}
	if len(s) >= 19 && s[10] == ' ' {
		return time.Parse("2006-01-02 15:04:05.999999999", s)
	}
	return time.Parse(time.RFC3339Nano, s)
}

// lineReader yields the lines of a replay input, trimmed and counted, so
// that both replays read alike: a line over limit bytes is an error naming
// it, and a UTF-8 byte order mark before the header is dropped.
type lineReader struct {
	br    *bufio.Reader
	limit int
	line  int // lines read so far
}

func newLineReader(r io.Reader, limit int) *lineReader {
	return &lineReader{br: bufio.NewReaderSize(r, limit), limit: limit}
}

// next returns the next line's text (empty for a blank line) and whether it
// was the last one.
func (lr *lineReader) next() (text []byte, last bool, err error) {
	raw, rerr := lr.br.ReadSlice('\n')
	if rerr == bufio.ErrBufferFull {
		return nil, false, errs.Permanent(fmt.Errorf("%w: line %d is longer than %d bytes", ErrReplayTooLarge, lr.line+1, lr.limit))
	}
	if rerr != nil && rerr != io.EOF {
		return nil, false, fmt.Errorf("detect: replay: read line %d: %w", lr.line+1, rerr)
	}
	if len(raw) > 0 {
		lr.line++
	}
	text = bytes.TrimSpace(raw)
	if lr.line == 1 {
		text = bytes.TrimPrefix(text, []byte("\xef\xbb\xbf"))
	}
	return text, rerr == io.EOF, nil
}
