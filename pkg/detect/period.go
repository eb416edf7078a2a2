package detect

import (
	"math"

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
