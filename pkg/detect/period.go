package detect

import (
	"math"
	"time"

	"gonum.org/v1/gonum/stat"
)

// FindPeriod returns the lag in [minLag, maxLag] with the highest
// autocorrelation of values, and that autocorrelation, for choosing
// SeasonalConfig.Period from history (period = lag × sampling interval).
// It returns (0, 0) when there is too little data (fewer than 2 × maxLag
// finite values), when the series is flat, or when no lag reaches an
// autocorrelation of 0.3, a season too weak to model. NaN and ±Inf values
// are dropped.
func FindPeriod(values []float64, minLag, maxLag int) (lag int, acf float64) {
	if minLag < 2 {
		minLag = 2
	}
	x := make([]float64, 0, len(values))
	for _, v := range values {
		if finite(v) {
			x = append(x, v)
		}
	}
	if maxLag < minLag || len(x) < 2*maxLag {
		return 0, 0
	}
	mean, variance := stat.PopMeanVariance(x, nil)
	if !(variance > 0) {
		return 0, 0
	}
	for i := range x {
		x[i] -= mean
	}
	n := float64(len(x))
	acfAt := func(k int) float64 {
		var s float64
		for i := k; i < len(x); i++ {
			s += x[i] * x[i-k]
		}
		return s / (n * variance)
	}
	// skip the first lobe: a smooth series correlates with itself at
	// small lags without any season
	k := minLag
	for ; k <= maxLag && acfAt(k) > 0; k++ {
	}
	rs := make([]float64, maxLag+2)
	peak := 0.0
	for j := k; j <= maxLag+1 && j < len(x); j++ {
		rs[j] = acfAt(j)
		if j <= maxLag {
			peak = math.Max(peak, rs[j])
		}
	}
	if peak < 0.3 {
		return 0, 0
	}
	// the first local maximum close to the peak: multiples of the period
	// correlate almost as well and are not the period
	best, bestACF := 0, 0.0
	for j := k; j <= maxLag; j++ {
		if rs[j] >= 0.9*peak && rs[j] >= rs[j+1] && (j == k || rs[j] >= rs[j-1]) {
			best, bestACF = j, rs[j]
			break
		}
	}
	return best, bestACF
}

// Season candidates of Config.Season auto.
const (
	hourNs = int64(time.Hour)
	dayNs  = 24 * hourNs
	weekNs = 7 * dayNs
)

// periodFinder picks a detector's season (Config.Season auto) from the
// autocorrelation of two downsampled copies of the series: 5-minute means
// over the last 6 hours (an hourly season is 12 of them) and hourly means
// over the last 2 weeks (a daily season is 24, a weekly one 168). Its state
// is bounded (1.6 kB of means, 1.8 kB of heap) whatever the sampling rate, and it is dropped once it
// has decided: after 3 days between hourly, daily and none, and when daily
// won, after 2 weeks whether weekly does better.
type periodFinder struct {
	fine, coarse bins
	decided      bool // hourly/daily/none decided; waiting for weekly
}

const (
	fineBinNs   = 5 * int64(time.Minute)
	fineBins    = 72 // 6 hours
	coarseBinNs = hourNs
	coarseBins  = 336 // 2 weeks
	// seasonMinACF is the autocorrelation at the period, less the one at
	// half the period, a season must reach: a sine scores 2, white noise
	// about 0, and a smooth wander or trend (which correlates at every
	// short lag) below 0, because it correlates better at half the lag.
	// Chosen on the tuning parts (aiops detect eval --part tune; 0.2 and
	// 0.3 scored alike and best of 0.2 to 1.0) and checked on synthetic
	// series (period_auto_test.go).
	seasonMinACF = 0.3
	// weekMargin: weekly replaces daily only when its score beats daily's
	// by this much, because a daily season also correlates at 168 h.
	weekMargin = 0.1
)

func newPeriodFinder() *periodFinder {
	return &periodFinder{
		fine:   bins{width: fineBinNs, vals: make([]float32, 0, fineBins)},
		coarse: bins{width: coarseBinNs, vals: make([]float32, 0, coarseBins)},
	}
}

// bins is a ring of the means of x over consecutive time bins.
type bins struct {
	width int64
	cur   int64 // index of the bin being summed (ns / width)
	sum   float64
	cnt   int32
	head  int32
	full  bool
	vals  []float32
}

func (b *bins) add(ns int64, x float64) {
	i := floorDiv(ns, b.width) // before 1970 too: one bin is one width

	if b.cnt > 0 && i != b.cur {
		m := float32(b.sum / float64(b.cnt))
		// a gap repeats the last mean (at most a ring's length), so lags
		// stay lags of time
		n := i - b.cur
		if n > int64(cap(b.vals)) {
			n = int64(cap(b.vals))
		}
		for ; n > 0; n-- {
			b.push(m)
		}
		b.sum, b.cnt = 0, 0
	}
	b.cur = i
	b.sum += x
	b.cnt++
}

func (b *bins) push(m float32) {
	if len(b.vals) < cap(b.vals) {
		b.vals = append(b.vals, m)
		return
	}
	b.vals[b.head] = m
	b.head++
	if int(b.head) == len(b.vals) {
		b.head, b.full = 0, true
	}
}

// ordered returns the means oldest first.
func (b *bins) ordered() []float64 {
	out := make([]float64, 0, len(b.vals))
	for i := range b.vals {
		out = append(out, float64(b.vals[(int(b.head)+i)%len(b.vals)]))
	}
	return out
}

// seasonScore is the autocorrelation of x at lag minus that at lag/2
// (see seasonMinACF); 0 when x is flat or shorter than 2 lags.
func seasonScore(x []float64, lag int) float64 {
	if len(x) < 2*lag || lag < 2 {
		return 0
	}
	mean, variance := stat.PopMeanVariance(x, nil)
	if !(variance > 0) || !finite(variance) {
		return 0
	}
	acf := func(k int) float64 {
		var s float64
		for i := k; i < len(x); i++ {
			s += (x[i] - mean) * (x[i-k] - mean)
		}
		return s / (float64(len(x)-k) * variance)
	}
	return acf(lag) - acf(lag/2)
}

// add feeds the value x observed at ns, dtSec the typical interval; it
// returns the chosen period (0: no season) and true once it decides.
func (f *periodFinder) add(ns int64, x, dtSec float64) (int64, bool) {
	f.fine.add(ns, x)
	f.coarse.add(ns, x)
	if !f.decided {
		if len(f.coarse.vals) < 72 {
			return 0, false
		}
		p := choosePeriod(f.fine.ordered(), f.coarse.ordered(), dtSec, false)
		if p != dayNs {
			return p, true
		}
		f.decided = true
		return 0, false
	}
	if len(f.coarse.vals) < coarseBins {
		return 0, false
	}
	return choosePeriod(nil, f.coarse.ordered(), dtSec, true), true
}

// choosePeriod picks among the seasons the sampling interval dtSec allows
// (at least 12 observations per period): hourly from fine (5-minute
// means), daily and, when weekly is set, weekly from coarse (hourly
// means). The best score over seasonMinACF wins, 0 if none reaches it.
func choosePeriod(fine, coarse []float64, dtSec float64, weekly bool) int64 {
	allows := func(p int64) bool { return dtSec > 0 && dtSec*1e9*12 <= float64(p) }
	best, bestScore := int64(0), seasonMinACF
	if allows(hourNs) && len(fine) >= 24 {
		if s := seasonScore(fine, int(hourNs/fineBinNs)); s >= bestScore {
			best, bestScore = hourNs, s
		}
	}
	day := 0.0
	if allows(dayNs) {
		day = seasonScore(coarse, int(dayNs/coarseBinNs))
		if day >= bestScore {
			best, bestScore = dayNs, day
		}
	}
	if weekly && allows(weekNs) {
		if s := seasonScore(coarse, int(weekNs/coarseBinNs)); s >= seasonMinACF && s >= day+weekMargin {
			best = weekNs
		}
	}
	return best
}

// SelectPeriod picks the season of a series sampled every interval (values
// in time order, NaN for missing) the way Config.Season auto does: hourly,
// daily or weekly (weekly needs 2 weeks of values, the others 3 days), or
// 0 when none is strong enough.
func SelectPeriod(values []float64, interval time.Duration) time.Duration {
	if interval <= 0 {
		return 0
	}
	f := newPeriodFinder()
	dt := interval.Seconds()
	var p int64
	decided := false
	for i, v := range values {
		if !finite(v) {
			continue
		}
		if p, decided = f.add(int64(i)*int64(interval), v, dt); decided {
			return time.Duration(p)
		}
	}
	if f.decided {
		return 24 * time.Hour
	}
	return 0
}

// profile returns the mean of the bins at each of len(out) phases of a
// period of periodNs, centred and interpolated linearly, in out: bucket i
// is the phase i × periodNs / len(out), as Detector.seasonAt reads it.
func (b *bins) profile(periodNs int64, out []float32) {
	nPh := int(periodNs / b.width)
	if nPh < 1 || len(b.vals) == 0 {
		return
	}
	sum := make([]float64, nPh)
	cnt := make([]int, nPh)
	x := b.ordered()
	first := b.cur - int64(len(x)) // bin index of x[0]
	for j, v := range x {
		// a phase in [0, periodNs) also for bins before 1970 (negative
		// times): Go's % keeps the sign of the dividend
		ph := (first + int64(j)) * b.width % periodNs
		if ph < 0 {
			ph += periodNs
		}
		k := int(ph / b.width)
		sum[k] += v
		cnt[k]++
	}
	var all float64
	var n int
	for k := range sum {
		if cnt[k] > 0 {
			sum[k] /= float64(cnt[k])
			all += sum[k]
			n++
		}
	}
	if n == 0 {
		return
	}
	all /= float64(n)
	for k := range sum {
		if cnt[k] == 0 {
			sum[k] = all
		}
	}
	bucketNs := float64(periodNs) / float64(len(out))
	for i := range out {
		// phase of bucket i in bins, against bin k's centre (k + 0.5)
		pos := float64(i)*bucketNs/float64(b.width) - 0.5
		if pos < 0 {
			pos += float64(nPh)
		}
		k0 := int(pos) % nPh
		fr := pos - math.Floor(pos)
		k1 := (k0 + 1) % nPh
		out[i] = float32((1-fr)*sum[k0] + fr*sum[k1] - all)
	}
}

// floorDiv is a / b rounded towards minus infinity (b > 0).
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b < 0 {
		q--
	}
	return q
}
