package detect

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"time"

	"github.com/aiops-dev/aiops/pkg/errs"
	"gonum.org/v1/gonum/mat"
)

// A Group scores rows of several channels of one asset together (the
// sensors of one pump, the golden signals of one service): a fault that
// moves the asset breaks the relations between its channels long before any
// one channel leaves its own band. It learns a principal-component model of
// the standardised channels from its first rows (the warm-up) and scores
// each later row with Hotelling's T² (how far the row is inside the model's
// subspace, in units of each component's variance) and the squared
// prediction error Q (how far it is off the subspace: a broken relation),
// each against a limit taken from the warm-up rows' own statistics. The
// larger ratio, smoothed over a few rows, is the score. After the warm-up
// the model keeps learning, slowly, from rows that are not anomalous, so it
// follows an asset's slow drift but not a fault.
type Group struct {
	cfg GroupConfig
	d   int // channels

	warm [][]float64 // warm-up rows, until the first fit
	n    int         // rows learnt

	mean, scale []float64     // per channel; scale is the warm-up standard deviation
	cov         *mat.SymDense // covariance of the standardised rows
	pc          *mat.Dense    // d × k leading eigenvectors
	lambda      []float64     // their eigenvalues
	resid       float64       // sum of the remaining eigenvalues at the last fit
	resid0      float64       // the same at the first fit: Q's limit scales with resid/resid0
	k           int
	t2Lim, qLim float64
	sinceFit    int

	smooth     float64 // EWMA of the ratio
	alarm      bool
	alarmSince time.Time
	calm       int // rows in a row under the release ratio while in alarm
	last       time.Time
	z, proj    []float64 // scratch
	hasFirst   bool

	change changeWindow // is the asset's operating point moving?
}

// GroupConfig configures a Group. The zero value is the default.
type GroupConfig struct {
	// Warmup is the number of valid rows the first model is learnt from;
	// no row scores before. Default 400.
	Warmup int `yaml:"warmup" json:"warmup"`
	// Variance is the fraction of the standardised variance the principal
	// components keep (the rest is Q's residual). Default 0.8.
	Variance float64 `yaml:"variance" json:"variance"`
	// Quantile of the warm-up rows' T² and Q that, times Margin, is the
	// limit: ratio 1. Default 0.995.
	Quantile float64 `yaml:"quantile" json:"quantile"`
	// Margin multiplies the limits: the warm-up rows are in the sample the
	// model was fitted to, so their statistics are smaller than a new
	// row's. Default 1.
	Margin float64 `yaml:"margin" json:"margin"`
	// T2Margin multiplies T²'s limit once more: a move along the usual
	// relations between the channels (T²) is what normal operation does,
	// drift most of all, while a broken relation (Q) is rarely normal.
	// Default 2.
	T2Margin float64 `yaml:"t2_margin" json:"t2_margin"`
	// Smooth is the memory, in rows, of the EWMA of the ratio that makes
	// the score (1: no smoothing). Default 10.
	Smooth int `yaml:"smooth" json:"smooth"`
	// Memory is the memory, in rows, with which the model goes on learning
	// from rows that are not anomalous after the warm-up; negative keeps
	// the first model for ever. Default 3600.
	Memory int `yaml:"memory" json:"memory"`
	// LevelMemory, when positive, is the memory in rows of each channel's
	// own level, which then follows every row, anomalous or not, so that a
	// channel drifting slowly on its own (a warming motor) is not a fault;
	// the relations between channels are still learnt from normal rows
	// only. Default 2400; negative: the level is learnt with Memory from
	// normal rows only.
	LevelMemory int `yaml:"level_memory" json:"level_memory"`
	// FreezeLevel stops the levels while an alarm runs, so that a fault
	// stays flagged for as long as it lasts, at the cost of flagging a
	// drifting channel until MaxAlarm. Default false: measured on the
	// generated assets, freezing lost more than it gained (QUALITY.md).
	FreezeLevel bool `yaml:"freeze_level" json:"freeze_level"`
	// Release ends an alarm once the smoothed ratio has stayed under it for
	// ReleaseRows rows in a row. Default 0.5 and 5.
	Release     float64 `yaml:"release" json:"release"`
	ReleaseRows int     `yaml:"release_rows" json:"release_rows"`
	// MaxAlarm is how long an alarm may last: then the asset's state is
	// taken as its new normal and the model is learnt again from the rows
	// that follow (a warm-up). Default 30 minutes.
	MaxAlarm time.Duration `yaml:"max_alarm" json:"max_alarm"`
	// Threshold is the score at or above which a row is anomalous; the
	// score is 0.5 at ratio 1. Default 0.5.
	Threshold float64 `yaml:"threshold" json:"threshold"`
	// ChangeWindow is the number of rows of each of the two windows whose
	// means the change detector compares (GroupResult.Changing);
	// negative turns it off, and so does a warm-up shorter than four
	// windows (too few rows to learn the limit from). Default 30.
	ChangeWindow int `yaml:"change_window" json:"change_window"`
	// ChangeMargin multiplies the change statistic's limit, the warm-up
	// rows' own Quantile. Default 0.7: a changepoint found late or missed
	// costs more than a switch on a calm asset.
	ChangeMargin float64 `yaml:"change_margin" json:"change_margin"`
	// ChangeRelease: the asset is changing from the row the statistic
	// reaches its limit until it falls under ChangeRelease of it.
	// Default 0.4.
	ChangeRelease float64 `yaml:"change_release" json:"change_release"`
}

// Group defaults.
const (
	DefaultGroupWarmup      = 400
	DefaultGroupVariance    = 0.8
	DefaultGroupQuantile    = 0.995
	DefaultGroupMargin      = 1
	DefaultGroupT2Margin    = 2
	DefaultGroupSmooth      = 10
	DefaultGroupMemory      = 3600
	DefaultGroupLevelMemory = 2400
	DefaultGroupRelease     = 0.5
	DefaultGroupReleaseRows = 5
	DefaultGroupMaxAlarm    = 30 * time.Minute
	// The change detector's defaults were chosen on generated assets
	// (pkg/detect/QUALITY.md, "Changepoints").
	DefaultGroupChangeWindow  = 30
	DefaultGroupChangeMargin  = 0.7
	DefaultGroupChangeRelease = 0.4
	// MaxGroupChannels bounds the channels of one group: the model is
	// d × d and its fit is O(d³).
	MaxGroupChannels = 256
)

// ErrInvalidGroupConfig is wrapped by GroupConfig.Validate's errors.
var ErrInvalidGroupConfig = errors.New("detect: invalid group config")

// WithDefaults returns c with zero fields set to their defaults.
func (c GroupConfig) WithDefaults() GroupConfig {
	c.Warmup = cmp.Or(c.Warmup, DefaultGroupWarmup)
	c.Variance = cmp.Or(c.Variance, DefaultGroupVariance)
	c.Quantile = cmp.Or(c.Quantile, DefaultGroupQuantile)
	c.Margin = cmp.Or(c.Margin, DefaultGroupMargin)
	c.T2Margin = cmp.Or(c.T2Margin, DefaultGroupT2Margin)
	c.Smooth = cmp.Or(c.Smooth, DefaultGroupSmooth)
	c.Memory = cmp.Or(c.Memory, DefaultGroupMemory)
	c.LevelMemory = cmp.Or(c.LevelMemory, DefaultGroupLevelMemory)
	c.Release = cmp.Or(c.Release, DefaultGroupRelease)
	c.ReleaseRows = cmp.Or(c.ReleaseRows, DefaultGroupReleaseRows)
	c.Threshold = cmp.Or(c.Threshold, DefaultThreshold)
	c.MaxAlarm = cmp.Or(c.MaxAlarm, DefaultGroupMaxAlarm)
	c.ChangeWindow = cmp.Or(c.ChangeWindow, DefaultGroupChangeWindow)
	c.ChangeMargin = cmp.Or(c.ChangeMargin, DefaultGroupChangeMargin)
	c.ChangeRelease = cmp.Or(c.ChangeRelease, DefaultGroupChangeRelease)
	return c
}

// Validate reports the first field out of range, after defaults.
func (c GroupConfig) Validate() error {
	c = c.WithDefaults()
	bad := func(field, format string, args ...any) error {
		return errs.Permanent(fmt.Errorf("%w: %s: %s", ErrInvalidGroupConfig, field, fmt.Sprintf(format, args...)))
	}
	switch {
	case c.Warmup < 10 || c.Warmup > 1_000_000:
		return bad("warmup", "%d, want 10..1000000", c.Warmup)
	case !(c.Variance > 0 && c.Variance <= 1):
		return bad("variance", "%g, want (0, 1]", c.Variance)
	case !(c.Quantile >= 0.5 && c.Quantile < 1):
		return bad("quantile", "%g, want [0.5, 1)", c.Quantile)
	case !(c.Margin >= 1 && c.Margin <= 100):
		return bad("margin", "%g, want 1..100", c.Margin)
	case !(c.T2Margin >= 1 && c.T2Margin <= 100):
		return bad("t2_margin", "%g, want 1..100", c.T2Margin)
	case c.Smooth < 1 || c.Smooth > 10_000:
		return bad("smooth", "%d, want 1..10000", c.Smooth)
	case c.Memory > 0 && c.Memory < 10:
		return bad("memory", "%d, want >= 10, or negative to keep the first model", c.Memory)
	case c.LevelMemory > 0 && c.LevelMemory < 10:
		return bad("level_memory", "%d, want >= 10, or negative to learn the level from normal rows only", c.LevelMemory)
	case !(c.Release > 0 && c.Release <= 1):
		return bad("release", "%g, want (0, 1]", c.Release)
	case c.ReleaseRows < 1:
		return bad("release_rows", "%d, want >= 1", c.ReleaseRows)
	case c.MaxAlarm < 0:
		return bad("max_alarm", "%s, want > 0", c.MaxAlarm)
	case !(c.Threshold > 0 && c.Threshold < 1):
		return bad("threshold", "%g, want (0, 1)", c.Threshold)
	case c.ChangeWindow > 10_000:
		return bad("change_window", "%d, want 1..10000, or negative for none", c.ChangeWindow)
	case !(c.ChangeMargin >= 0.1 && c.ChangeMargin <= 100):
		return bad("change_margin", "%g, want 0.1..100", c.ChangeMargin)
	case !(c.ChangeRelease > 0 && c.ChangeRelease <= 1):
		return bad("change_release", "%g, want (0, 1]", c.ChangeRelease)
	}
	return nil
}

// NewGroup returns a group over channels channels.
func NewGroup(cfg GroupConfig, channels int) (*Group, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if channels < 1 || channels > MaxGroupChannels {
		return nil, errs.Permanent(fmt.Errorf("%w: %d channels, want 1..%d", ErrInvalidGroupConfig, channels, MaxGroupChannels))
	}
	return &Group{cfg: cfg.WithDefaults(), d: channels, z: make([]float64, channels), proj: make([]float64, channels)}, nil
}

// GroupResult is the score of one row and its explanation.
type GroupResult struct {
	Time time.Time
	// Score in [0,1]; Anomaly is Score >= Threshold.
	Score   float64
	Anomaly bool
	// T2 and Q of the row and their limits (ratio 1); Ratio is the
	// larger of T2/T2Limit and Q/QLimit, Smoothed its EWMA.
	T2, T2Limit, Q, QLimit float64
	Ratio, Smoothed        float64
	// Channel is the channel that contributes most to the row's distance
	// from the model, -1 if none; Sigmas is its deviation in units of its
	// warm-up standard deviation: when Q dominates (a broken relation), how
	// far it must move to restore the relations (its reconstruction-based
	// contribution), else its distance from its level.
	Channel int
	Sigmas  float64
	// Expected is the model's mean of each channel (nil during warm-up);
	// the caller must not keep it past the next Observe.
	Expected []float64
	// Changing reports that the asset's operating point is moving: the
	// mean of the last ChangeWindow rows differs from that of the
	// ChangeWindow rows before by more than a limit learnt from the
	// warm-up (its Quantile of the same difference, times ChangeMargin). It
	// switches on where a change starts (a valve closing, a fault's
	// onset, its end) and off once the asset has settled, whether or not
	// the rows are anomalous; Change is its statistic, ChangeLimit the
	// value at which it switches on.
	Changing            bool
	Change, ChangeLimit float64
	Flags               Flags
}

// Warm reports whether the first model has been learnt.
func (g *Group) Warm() bool { return g.pc != nil }

// Alarming reports whether the group's alarm is on after the last Observe:
// from the row that crossed the threshold until the asset has been back
// for ReleaseRows rows (every row in between is anomalous). AlarmSince is
// when it began (zero when it is off). Together they make the alarm's
// episodes: a row anomalous while the alarm was off opens one, a row that
// is not while it was on closes it.
func (g *Group) Alarming() bool { return g.alarm }

// EndAlarm ends the alarm without a row, because the asset has gone silent
// or is dropped from memory, and forgets the smoothed ratio, so that the
// next row is judged on its own.
func (g *Group) EndAlarm() {
	g.alarm, g.alarmSince, g.calm, g.smooth = false, time.Time{}, 0, 0
}

// AlarmSince is the time of the row that started the current alarm, zero
// when the alarm is off.
func (g *Group) AlarmSince() time.Time {
	if !g.alarm {
		return time.Time{}
	}
	return g.alarmSince
}

// Observe scores one row (one value per channel, in a fixed order). A
// NaN, ±Inf or huge value is a missing channel: it counts as at its mean
// and the row is not learnt; a row with every channel missing, or older
// than or as old as the last, is ignored (score 0, state unchanged).
func (g *Group) Observe(t time.Time, row []float64) GroupResult {
	r := GroupResult{Time: t, Channel: -1}
	if len(row) != g.d {
		r.Flags |= FlagInvalid
		return r
	}
	if g.hasFirst && !t.After(g.last) {
		if t.Equal(g.last) {
			r.Flags |= FlagDuplicate
		} else {
			r.Flags |= FlagOutOfOrder
		}
		return r
	}
	missing := 0
	for _, v := range row {
		if !validValue(v) {
			missing++
		}
	}
	if missing == g.d {
		r.Flags |= FlagInvalid
		return r
	}
	g.last, g.hasFirst = t, true
	if g.alarm && t.Sub(g.alarmSince) >= g.cfg.MaxAlarm {
		// The fault has lasted so long that it is how the asset runs now.
		g.relearn()
		r.Flags |= FlagRelearn
	}
	if g.pc == nil {
		r.Flags |= FlagWarmUp
		if missing == 0 {
			g.warm = append(g.warm, slices.Clone(row))
			if len(g.warm) >= g.cfg.Warmup {
				g.firstFit()
			}
		}
		return r
	}
	for j, v := range row {
		if validValue(v) {
			g.z[j] = (v - g.mean[j]) / g.scale[j]
		} else {
			g.z[j] = 0
		}
	}
	t2, q := g.stats(g.z)
	r.Change, r.ChangeLimit, r.Changing = g.change.observe(g.z, g.cfg.ChangeRelease)
	qLim := g.qLim
	if g.resid0 > 0 {
		qLim *= g.resid / g.resid0
	}
	r.T2, r.T2Limit, r.Q, r.QLimit = t2, g.t2Lim, q, qLim
	r.Ratio = t2 / g.t2Lim
	if g.k < g.d && qLim > 0 {
		r.Ratio = max(r.Ratio, q/qLim)
	}
	a := 2 / (float64(g.cfg.Smooth) + 1)
	g.smooth += a * (r.Ratio - g.smooth)
	r.Smoothed = g.smooth
	r.Score = saturate(g.smooth, 1)
	switch {
	case r.Score >= g.cfg.Threshold:
		if !g.alarm {
			g.alarmSince = t
		}
		g.alarm, g.calm = true, 0
	case g.alarm && g.smooth < g.cfg.Release:
		g.calm++
		if g.calm >= g.cfg.ReleaseRows {
			g.alarm, g.calm = false, 0
		}
	case g.alarm:
		g.calm = 0
	}
	if g.alarm && r.Score < g.cfg.Threshold {
		// held: the alarm lasts until the asset is back for ReleaseRows
		r.Score = g.cfg.Threshold
	}
	r.Anomaly = r.Score >= g.cfg.Threshold
	// The channel to name: for a broken relation (Q dominates), the one
	// furthest from where the others put it; else the one furthest from
	// its mean.
	offSubspace := g.k < g.d && qLim > 0 && q/qLim > t2/g.t2Lim
	for j, z := range g.z {
		dev := z
		if offSubspace {
			// Reconstruction-based contribution: how far channel j must
			// move to put the row back on the model's subspace, the
			// residual divided by the share of j the subspace does not
			// explain (a channel the components explain well shows
			// only a small residual when it alone breaks).
			var h float64
			for i := 0; i < g.k; i++ {
				h += g.pc.At(j, i) * g.pc.At(j, i)
			}
			dev = (z - g.proj[j]) / max(1-h, 1e-6)
		}
		if r.Channel < 0 || math.Abs(dev) > math.Abs(r.Sigmas) {
			r.Channel, r.Sigmas = j, dev
		}
	}
	r.Expected = g.mean
	if missing == 0 {
		switch {
		case !g.alarm && g.cfg.Memory > 0:
			g.learn(row)
		case !g.alarm || (!g.cfg.FreezeLevel && g.cfg.LevelMemory > 0):
			g.follow(row)
		}
	}
	return r
}

// relearn drops the model: the next Warmup valid rows learn a new one.
func (g *Group) relearn() {
	g.pc, g.cov, g.lambda, g.warm = nil, nil, nil, nil
	g.alarm, g.calm, g.smooth = false, 0, 0
	g.change = changeWindow{}
}

// stats returns T² and Q of the standardised row z.
func (g *Group) stats(z []float64) (t2, q float64) {
	for j := range g.proj {
		g.proj[j] = 0
	}
	for i := 0; i < g.k; i++ {
		var s float64
		for j, zj := range z {
			s += g.pc.At(j, i) * zj
		}
		t2 += s * s / g.lambda[i]
		for j := range g.proj {
			g.proj[j] += s * g.pc.At(j, i)
		}
	}
	for j, zj := range z {
		e := zj - g.proj[j]
		q += e * e
	}
	return t2, q
}

// firstFit learns the model from the warm-up rows and sets the limits from
// their statistics. The model describes each row's deviation from the
// channels' levels as they were before the row: the level an EWMA with
// LevelMemory (a running mean while fewer rows than that were seen), or,
// with LevelMemory off or at least the warm-up, the warm-up's mean.
func (g *Group) firstFit() {
	d, n := g.d, len(g.warm)
	g.mean, g.scale = make([]float64, d), make([]float64, d)
	dev := make([][]float64, n)
	if L := g.cfg.LevelMemory; L > 0 && L < n {
		copy(g.mean, g.warm[0])
		for i, row := range g.warm {
			dev[i] = make([]float64, d)
			a := max(1/float64(L), 1/float64(i+1))
			for j, v := range row {
				dev[i][j] = v - g.mean[j]
				g.mean[j] += a * (v - g.mean[j])
			}
		}
		dev = dev[1:] // the first row has no level before it
	} else {
		for _, row := range g.warm {
			for j, v := range row {
				g.mean[j] += v / float64(n)
			}
		}
		for i, row := range g.warm {
			dev[i] = make([]float64, d)
			for j, v := range row {
				dev[i][j] = v - g.mean[j]
			}
		}
	}
	m := float64(len(dev))
	for _, e := range dev {
		for j, v := range e {
			g.scale[j] += v * v / m
		}
	}
	for j := range g.scale {
		// A channel flat during the warm-up gets a scale of a millionth
		// of its level (or 1e-9): any later movement is then far out,
		// which is what it is.
		g.scale[j] = max(math.Sqrt(g.scale[j]), 1e-6*math.Abs(g.mean[j]), 1e-9)
	}
	g.cov = mat.NewSymDense(d, nil)
	for _, e := range dev {
		for j := range e {
			e[j] /= g.scale[j]
		}
		for i := 0; i < d; i++ {
			for j := i; j < d; j++ {
				g.cov.SetSym(i, j, g.cov.At(i, j)+e[i]*e[j]/m)
			}
		}
	}
	g.fit()
	g.resid0 = g.resid
	t2s, qs := make([]float64, len(dev)), make([]float64, len(dev))
	for i, z := range dev {
		t2s[i], qs[i] = g.stats(z)
	}
	g.t2Lim = max(quantile(t2s, g.cfg.Quantile)*g.cfg.Margin*g.cfg.T2Margin, 1e-9)
	g.qLim = max(quantile(qs, g.cfg.Quantile)*g.cfg.Margin, 1e-9)
	g.change = newChangeWindow(g.cfg, d, dev)
	g.n, g.warm = n, nil
}

// fit takes the principal components of the covariance.
func (g *Group) fit() {
	var eig mat.EigenSym
	if !eig.Factorize(g.cov, true) {
		return // keep the previous model
	}
	vals := eig.Values(nil)
	var vecs mat.Dense
	eig.VectorsTo(&vecs)
	order := make([]int, len(vals))
	for i := range order {
		order[i] = i
	}
	sort.Slice(order, func(a, b int) bool { return vals[order[a]] > vals[order[b]] })
	var total float64
	for _, v := range vals {
		total += max(v, 0)
	}
	floor := max(total*1e-6, 1e-12)
	k, cum := 0, 0.0
	for k < len(order) && (k == 0 || cum < g.cfg.Variance*total) {
		cum += max(vals[order[k]], 0)
		k++
	}
	g.k = k
	g.pc = mat.NewDense(g.d, k, nil)
	g.lambda = make([]float64, k)
	for i := 0; i < k; i++ {
		g.lambda[i] = max(vals[order[i]], floor)
		for j := 0; j < g.d; j++ {
			g.pc.Set(j, i, vecs.At(j, order[i]))
		}
	}
	g.resid = 0
	for _, o := range order[k:] {
		g.resid += max(vals[o], 0)
	}
	g.resid = max(g.resid, floor)
	g.sinceFit = 0
}

// learn moves the covariance toward a row that is not anomalous (its
// deviation g.z, taken before the level moves), with a memory of Memory
// rows, refits now and then, and moves the levels.
func (g *Group) learn(row []float64) {
	a := 1 / float64(g.cfg.Memory)
	for i := 0; i < g.d; i++ {
		for j := i; j < g.d; j++ {
			c := g.cov.At(i, j)
			g.cov.SetSym(i, j, c+a*(g.z[i]*g.z[j]-c))
		}
	}
	g.n++
	g.sinceFit++
	if g.sinceFit >= max(g.cfg.Memory/20, 10) {
		g.fit()
	}
	g.follow(row)
}

// follow moves each channel's level toward row.
func (g *Group) follow(row []float64) {
	var a float64
	switch {
	case g.cfg.LevelMemory > 0:
		a = 1 / float64(g.cfg.LevelMemory)
	case g.cfg.Memory > 0:
		a = 1 / float64(g.cfg.Memory)
	default:
		return // the first model, for ever
	}
	for j, v := range row {
		g.mean[j] += a * (v - g.mean[j])
	}
}

// quantile returns the q-quantile of xs (sorted in place), linearly
// interpolated.
func quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	sort.Float64s(xs)
	pos := q * float64(len(xs)-1)
	i := int(pos)
	if i+1 >= len(xs) {
		return xs[len(xs)-1]
	}
	return xs[i] + (pos-float64(i))*(xs[i+1]-xs[i])
}
