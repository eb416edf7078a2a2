package eval

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"

	"gonum.org/v1/gonum/mat"
	"gonum.org/v1/gonum/stat/distuv"
)

// LeaderboardT2Q is the "T-squared+Q (PCA)" detector of SKAB's outlier
// leaderboard (0.76 point F1 there), rebuilt as a baseline measured in the
// same run as detect.Group: an offline model learnt from the first train
// rows, applied to the rest. It does what SKAB's T2 class does with
// scaling and PCA on: standardise with the training rows' mean and
// (population) standard deviation; keep the fewest principal components
// that explain more than 85 % of their variance; T² (in the components'
// variances) and Q (the squared residual off them), each smoothed by a
// rolling median of 5 rows; a row is anomalous when either is over its
// upper control limit at p = 0.999: T²'s from the F distribution,
// m(n-1)(n+1)/(n(n-m)) · F(m, n-m), Q's from Jackson and Mudholkar's
// formula as SKAB computes it (its θᵢ is the residual eigenvalues' sum to
// the power i, where the textbook sums the eigenvalues' powers). Two
// departures, both where SKAB's code leaves the result to chance: the
// residual eigenvalues are the smallest ones (SKAB sums those after the
// first m in LAPACK's unsorted order), and the quantiles are exact (SKAB
// takes the last point under p on a grid of step 0.0015). Rows before
// train are not flagged.
func LeaderboardT2Q(m Multivariate, train int) ([]bool, error) {
	d, n := len(m.Values), len(m.Times)
	if d < 2 || train < d+2 || train > n {
		return nil, fmt.Errorf("eval: T²+Q needs 2 or more channels and %d ≤ train ≤ %d rows, have %d channels, train %d", d+2, n, d, train)
	}
	mean, std := make([]float64, d), make([]float64, d)
	for c, col := range m.Values {
		for _, v := range col[:train] {
			mean[c] += v / float64(train)
		}
		for _, v := range col[:train] {
			std[c] += (v - mean[c]) * (v - mean[c]) / float64(train)
		}
		std[c] = math.Sqrt(std[c])
		if !(std[c] > 0) {
			return nil, fmt.Errorf("eval: T²+Q: channel %s is constant in the training rows", m.Channels[c])
		}
	}
	z := func(i int, dst []float64) {
		for c := range dst {
			dst[c] = (m.Values[c][i] - mean[c]) / std[c]
		}
	}
	// Covariance of the standardised training rows (n-1, as numpy's).
	cov := mat.NewSymDense(d, nil)
	row := make([]float64, d)
	for i := range train {
		z(i, row)
		for a := range d {
			for b := a; b < d; b++ {
				cov.SetSym(a, b, cov.At(a, b)+row[a]*row[b]/float64(train-1))
			}
		}
	}
	var eig mat.EigenSym
	if !eig.Factorize(cov, true) {
		return nil, errors.New("eval: T²+Q: the training covariance has no eigendecomposition")
	}
	vals := eig.Values(nil)
	var vecs mat.Dense
	eig.VectorsTo(&vecs)
	order := make([]int, d)
	for i := range order {
		order[i] = i
	}
	sort.Slice(order, func(a, b int) bool { return vals[order[a]] > vals[order[b]] })
	var total float64
	for _, v := range vals {
		total += v
	}
	k, cum := 0, 0.0
	for k < d && cum <= 0.85*total {
		cum += vals[order[k]]
		k++
	}
	if k == d {
		return nil, errors.New("eval: T²+Q: every component is needed for 85 % of the variance; Q is undefined")
	}
	var rest float64
	for _, o := range order[k:] {
		rest += vals[o]
	}
	const p = 0.999
	nf, kf := float64(train), float64(k)
	t2UCL := kf * (nf - 1) * (nf + 1) / (nf * (nf - kf)) * distuv.F{D1: kf, D2: nf - kf}.Quantile(p)
	h0 := 1.0 / 3 // 1 - 2θ₁θ₃/(3θ₂²) with θᵢ = rest^i
	c := distuv.UnitNormal.Quantile(p)
	qUCL := rest * math.Pow(1+c*h0*math.Sqrt2+h0*(h0-1), 1/h0)

	t2s, qs := make([]float64, n), make([]float64, n)
	proj := make([]float64, d)
	for i := train; i < n; i++ {
		z(i, row)
		clear(proj)
		var q float64
		for j := range k {
			var s float64
			for a := range d {
				s += vecs.At(a, order[j]) * row[a]
			}
			t2s[i] += s * s / vals[order[j]]
			for a := range d {
				proj[a] += s * vecs.At(a, order[j])
			}
		}
		for a := range d {
			q += (row[a] - proj[a]) * (row[a] - proj[a])
		}
		qs[i] = q
	}
	alarms := make([]bool, n)
	const window = 5
	for i := train + window - 1; i < n; i++ {
		alarms[i] = median(t2s[i-window+1:i+1]) > t2UCL || median(qs[i-window+1:i+1]) > qUCL
	}
	return alarms, nil
}

// median returns the median of a short window without changing it.
func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
