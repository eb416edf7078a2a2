package plot

import (
	"math"
	"slices"

	"github.com/aiops-dev/aiops/pkg/detect"
)

// MaxBuckets bounds the runs of rows a Thinner keeps: a picture 30 cm wide
// has fewer pixel columns, so drawing more rows shows nothing more.
const MaxBuckets = 2048

// Thinner gathers, of a replay's rows in time order, those worth drawing,
// however long the replay: the rows fall into runs (buckets) of equal
// length, which doubles each time there are more than MaxBuckets runs,
// and each run keeps its first and last row, the rows of its lowest and
// highest value of each channel (a spike stays in the picture) and its
// first and last anomalous row. Memory is bounded by MaxBuckets times the
// channels, not by the rows (a 3-million-row series took 3.7 GB drawn
// whole).
type Thinner[R any] struct {
	values    func(R) []float64 // a row's values by channel (NaN: none)
	anomalous func(R) bool
	per       int // rows a bucket stands for
	done      []bucket[R]
	cur       *bucket[R]
	seq       int
}

// kept is a row with its place in the stream.
type kept[R any] struct {
	row R
	seq int
	ok  bool
}

type bucket[R any] struct {
	n                 int
	first, last       kept[R]
	firstBad, lastBad kept[R] // anomalous rows
	lo, hi            []kept[R]
	loValue, hiValue  []float64
}

// NewThinner thins rows whose values and anomaly values and anomalous tell.
func NewThinner[R any](values func(R) []float64, anomalous func(R) bool) *Thinner[R] {
	return &Thinner[R]{values: values, anomalous: anomalous, per: 1}
}

// SeriesThinner thins the rows of detect.ReplayFunc: one channel, the
// scored value (none for a bad or ignored row).
func SeriesThinner() *Thinner[detect.ReplayRow] {
	return NewThinner(func(r detect.ReplayRow) []float64 {
		if r.BadValue || r.Result.Flags.Ignored() {
			return nil
		}
		return []float64{r.Result.Scored}
	}, func(r detect.ReplayRow) bool { return r.Result.Anomaly })
}

// GroupThinner thins the rows of detect.ReplayGroupFunc.
func GroupThinner() *Thinner[detect.GroupReplayRow] {
	return NewThinner(func(r detect.GroupReplayRow) []float64 { return r.Values },
		func(r detect.GroupReplayRow) bool { return r.Result.Anomaly })
}

// Add takes the next row.
func (t *Thinner[R]) Add(r R) {
	if t.cur == nil {
		t.cur = &bucket[R]{}
	}
	t.cur.add(kept[R]{r, t.seq, true}, t.values(r), t.anomalous(r))
	t.seq++
	if t.cur.n < t.per {
		return
	}
	t.done = append(t.done, *t.cur)
	t.cur = nil
	if len(t.done) > MaxBuckets {
		// Twice as many rows a bucket: merge neighbours.
		merged := t.done[:0]
		for i := 0; i < len(t.done); i += 2 {
			b := t.done[i]
			if i+1 < len(t.done) {
				b.merge(&t.done[i+1])
			}
			merged = append(merged, b)
		}
		t.done = merged
		t.per *= 2
	}
}

// Rows returns the rows kept, in the order they came.
func (t *Thinner[R]) Rows() []R {
	var all []kept[R]
	for i := range t.done {
		all = t.done[i].rows(all)
	}
	if t.cur != nil {
		all = t.cur.rows(all)
	}
	slices.SortFunc(all, func(a, b kept[R]) int { return a.seq - b.seq })
	all = slices.CompactFunc(all, func(a, b kept[R]) bool { return a.seq == b.seq })
	out := make([]R, len(all))
	for i, k := range all {
		out[i] = k.row
	}
	return out
}

func (b *bucket[R]) add(k kept[R], values []float64, anomalous bool) {
	b.n++
	if !b.first.ok {
		b.first = k
	}
	b.last = k
	if anomalous {
		if !b.firstBad.ok {
			b.firstBad = k
		}
		b.lastBad = k
	}
	for c, v := range values {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			continue
		}
		b.channels(c + 1)
		if !b.lo[c].ok || v < b.loValue[c] {
			b.lo[c], b.loValue[c] = k, v
		}
		if !b.hi[c].ok || v > b.hiValue[c] {
			b.hi[c], b.hiValue[c] = k, v
		}
	}
}

// channels makes room in b for n channels.
func (b *bucket[R]) channels(n int) {
	for len(b.lo) < n {
		b.lo, b.hi = append(b.lo, kept[R]{}), append(b.hi, kept[R]{})
		b.loValue, b.hiValue = append(b.loValue, 0), append(b.hiValue, 0)
	}
}

// merge folds o, the bucket after b, into b.
func (b *bucket[R]) merge(o *bucket[R]) {
	b.n += o.n
	if !b.first.ok {
		b.first = o.first
	}
	if o.last.ok {
		b.last = o.last
	}
	if !b.firstBad.ok {
		b.firstBad = o.firstBad
	}
	if o.lastBad.ok {
		b.lastBad = o.lastBad
	}
	for c := range o.lo {
		b.channels(c + 1)
		if o.lo[c].ok && (!b.lo[c].ok || o.loValue[c] < b.loValue[c]) {
			b.lo[c], b.loValue[c] = o.lo[c], o.loValue[c]
		}
		if o.hi[c].ok && (!b.hi[c].ok || o.hiValue[c] > b.hiValue[c]) {
			b.hi[c], b.hiValue[c] = o.hi[c], o.hiValue[c]
		}
	}
}

// rows appends the rows b keeps to out.
func (b *bucket[R]) rows(out []kept[R]) []kept[R] {
	for _, k := range []kept[R]{b.first, b.last, b.firstBad, b.lastBad} {
		if k.ok {
			out = append(out, k)
		}
	}
	for c := range b.lo {
		for _, k := range []kept[R]{b.lo[c], b.hi[c]} {
			if k.ok {
				out = append(out, k)
			}
		}
	}
	return out
}
