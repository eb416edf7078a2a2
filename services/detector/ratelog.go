package detector

import (
	"sync/atomic"
	"time"
)

// logLimiter lets a warning that can repeat with every sample out at most
// once per period, with how many times it happened since the last line: a
// line per sample would flood the log exactly when something is wrong.
type logLimiter struct {
	n, last atomic.Int64 // occurrences not logged yet; unix ns of the last line
}

// hit counts one occurrence at now and returns how many occurrences the
// line due now reports (this one included), or 0 when no line is due. The
// first occurrence is logged at once.
func (l *logLimiter) hit(now time.Time, every time.Duration) int64 {
	n := l.n.Add(1)
	last := l.last.Load()
	if last != 0 && now.UnixNano()-last < int64(every) || !l.last.CompareAndSwap(last, now.UnixNano()) {
		return 0
	}
	l.n.Add(-n)
	return n
}
