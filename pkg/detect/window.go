package detect

import "math"

// window is a fixed-size rolling window that keeps its values sorted through
// a permutation of ring slots: one byte per value on top of the values, and
// O(window) work per insert with no allocation. For the small windows used
// here this beats a two-heap median (which needs the same values plus
// position indexes) and an approximate sketch (which is larger than 32
// values and not exact).
type window struct {
	vals []float64 // ring of the last len(vals) values, in arrival order
	perm []uint8   // slots of vals, in ascending order of value
	head uint8     // next slot to write
	n    uint8     // values held, ≤ len(vals)
	// fresh counts the values pushed since the series last broke (a gap),
	// saturating at len(vals); slope needs a full window of them
	fresh uint8
	// slopeCu is the detector's trend CUSUM (Detector.trend), signed by
	// its side. It lives here because it fits this struct's padding, which
	// keeps the Detector in its 224-byte allocation size class.
	slopeCu float32
}

// breakSlope forgets the slope evidence: the series broke (a gap).
func (w *window) breakSlope() { w.fresh, w.slopeCu = 0, 0 }

func newWindow(size int) window {
	return window{vals: make([]float64, size), perm: make([]uint8, 0, size)}
}

// push inserts x, dropping the oldest value when the window is full.
func (w *window) push(x float64) {
	size := len(w.vals)
	slot := w.head
	if int(w.n) == size {
		// drop the value that slot holds from the sorted order
		for i, s := range w.perm {
			if s == slot {
				copy(w.perm[i:], w.perm[i+1:])
				w.perm = w.perm[:len(w.perm)-1]
				break
			}
		}
	} else {
		w.n++
	}
	w.vals[slot] = x
	if int(w.fresh) < size {
		w.fresh++
	}
	// binary search for the first value greater than x
	lo, hi := 0, len(w.perm)
	for lo < hi {
		mid := (lo + hi) / 2
		if w.vals[w.perm[mid]] <= x {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	w.perm = append(w.perm, 0)
	copy(w.perm[lo+1:], w.perm[lo:])
	w.perm[lo] = slot
	w.head++
	if int(w.head) == size {
		w.head = 0
	}
}

func (w *window) at(i int) float64 { return w.vals[w.perm[i]] }

// median of the window; 0 when empty.
func (w *window) median() float64 {
	n := len(w.perm)
	switch {
	case n == 0:
		return 0
	case n%2 == 1:
		return w.at(n / 2)
	default:
		return (w.at(n/2-1) + w.at(n/2)) / 2
	}
}

// mad is the median absolute deviation from m, the window's median. The
// deviations of a sorted array from its median are two sorted runs (leftwards
// and rightwards of the middle), so merging them to the middle rank is O(n).
func (w *window) mad(m float64) float64 {
	n := len(w.perm)
	if n == 0 {
		return 0
	}
	l, r := n/2-1, n/2
	var prev, cur float64
	for k := 0; k <= n/2; k++ {
		prev = cur
		switch {
		case l < 0:
			cur = w.at(r) - m
			r++
		case r >= n:
			cur = m - w.at(l)
			l--
		default:
			dl, dr := m-w.at(l), w.at(r)-m
			if dl <= dr {
				cur = dl
				l--
			} else {
				cur = dr
				r++
			}
		}
	}
	if n%2 == 1 {
		return cur
	}
	return (prev + cur) / 2
}

// meanAD is the mean absolute deviation from m: the fallback scale when the
// MAD collapses on discrete or quantised data (Iglewicz and Hoaglin's
// modified z-score uses 1.2533 × meanAD when MAD = 0).
func (w *window) meanAD(m float64) float64 {
	if len(w.perm) == 0 {
		return 0
	}
	var s float64
	for _, slot := range w.perm {
		d := w.vals[slot] - m
		if d < 0 {
			d = -d
		}
		s += d
	}
	return s / float64(len(w.perm))
}

// slope fits a least-squares line to the window in arrival order, each
// value first clipped to med ± 3 scale so that a spike moves it a bounded
// step. It returns the slope per value, its standard error from the
// residuals (as if they were white), and the line's value at the newest
// point; ok is false until the window holds len(vals) values pushed since
// the last breakSlope.
func (w *window) slope(med, scale float64) (slope, se, end float64, ok bool) {
	size := len(w.vals)
	n := int(w.n)
	if n < size || int(w.fresh) < size || n < 3 {
		return 0, 0, 0, false
	}
	// one pass over the values centred on the median (so the sum of
	// squares does not cancel on large values): residual sum of squares
	// = Σ(y-ȳ)² - slope²·Σ(i-c)²
	lo, hi := -3*scale, 3*scale
	c := float64(n-1) / 2
	var sy, syy, sxy float64
	slot := int(w.head) // the oldest value when full
	for i := 0; i < n; i++ {
		y := clamp(w.vals[slot]-med, lo, hi)
		sy += y
		syy += y * y
		sxy += (float64(i) - c) * y
		if slot++; slot == size {
			slot = 0
		}
	}
	fn := float64(n)
	sxx := fn * (fn*fn - 1) / 12
	mean := sy / fn
	slope = sxy / sxx
	rss := math.Max(syy-fn*mean*mean-slope*slope*sxx, 0)
	return slope, math.Sqrt(rss / (fn - 2) / sxx), med + mean + slope*c, true
}
