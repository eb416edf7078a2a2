package detect

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/aiops-dev/aiops/pkg/errs"
)

// Methods of scoring the rows of an asset (a pipeline group, a replay of
// several columns): a vote of the channels' own detectors (Vote), the
// default, or one principal-component model of the channels (Group).
const (
	MethodVote = "vote"
	MethodPCA  = "pca"
)

// ErrInvalidMethod: a method is neither MethodVote nor MethodPCA.
var ErrInvalidMethod = errors.New("detect: unknown group method")

// ParseMethod reads a method: "" (the default, MethodVote), MethodVote or
// MethodPCA.
func ParseMethod(s string) (string, error) {
	switch s {
	case "", MethodVote:
		return MethodVote, nil
	case MethodPCA:
		return MethodPCA, nil
	}
	return "", errs.Permanent(fmt.Errorf("%w %q: want %s or %s", ErrInvalidMethod, s, MethodVote, MethodPCA))
}

// VoteSurprise sets how surprising the channels in alarm at once must be
// for a row of an asset of n channels to be flagged: their summed surprise
// must reach VoteSurprise·√n. Chosen on the tuning parts of SMD (38
// channels), ASD and JumpStarter (19) among 2, 2.25, 2.5 and 3 as the
// largest (the fewest alarms) whose mean F1(d7) + pooled point-adjusted F1
// is above a count quorum's ⌈√n/2⌉ on each of the three (QUALITY.md).
const VoteSurprise = 2.5

// A Vote scores the rows of several channels of one asset with one
// univariate Detector per channel and flags the rows where the channels in
// an alarm episode are surprising enough together: a channel in alarm adds
// −ln of the fraction of the rows so far that it has been in alarm
// ((a+1)/(n+2), a its rows in alarm, n the rows), plus
// Config.Vote.Severity times the log ratio by which its score exceeds its
// budget's bar (how much further out it is than its next episode would
// have to be), and a row is flagged when the sum reaches
// VoteSurprise·√channels. A count of channels treats every channel alike,
// so the few channels of a machine that are often in alarm (quantised,
// bursty metrics) would set its false alarms; weighted by their own rarity
// they count little, and two rarely alarming channels at once count as
// much as several noisy ones (Fisher's combination of the channels'
// p-values, with the alarm rate as the p-value, times Chebyshev's bound on
// going further out). The rarity alone of one channel is at most ln(rows),
// under the limit for months of rows; with its severity, one channel far
// past its bar flags the row by itself.
//
// This is what `aiops detect eval` scores on multivariate files and what
// the detector service runs for a pipeline group of method vote. Its state
// is the channels' detectors and one count each: bounded by the channels.
// It is not safe for concurrent use.
type Vote struct {
	p      *Profile
	dets   []*Detector
	alarms []uint64 // rows each channel was in an alarm episode
	rows   uint64   // rows observed
	limit  float64
	// severity is Config.Vote.Severity, 0 with RarityOnly
	severity float64

	hasLast bool
	last    int64 // unix ns of the last row observed
	alarm   bool  // the last row was flagged
	since   int64 // unix ns of the first row of the current flagged run

	// scratch of the last result
	results  []Result
	surprise []float64
	expected []float64
	top      []int
}

// VoteResult is the score of one row and its explanation. Its slices are
// the Vote's scratch: valid until the next Observe.
type VoteResult struct {
	Time time.Time
	// Anomaly: the row is flagged, Surprise >= Limit.
	Anomaly bool
	// Surprise is the summed surprise of the channels in an alarm episode
	// (their rarity and severity; 0 when none is); Limit is
	// VoteSurprise·√channels.
	Surprise, Limit float64
	// Score in [0,1] is 0.5 at the limit, as every detector's threshold:
	// 1/(1+(Limit/Surprise)⁴).
	Score float64
	// Channel is the channel that contributes most (the most surprising in
	// alarm), -1 if none is in alarm; Contributors are every channel in
	// alarm, most surprising first; ChannelSurprise is each channel's
	// share of Surprise (0 when not in alarm).
	Channel         int
	Contributors    []int
	ChannelSurprise []float64
	// Channels are the channels' own results (value, expected, band,
	// detector, episode); Expected is each one's expected value (its
	// Expected when it has a baseline, else NaN).
	Channels []Result
	Expected []float64
	// Flags: FlagInvalid for a row of another width or with every channel
	// missing, FlagOutOfOrder and FlagDuplicate for a row not after the
	// last (such a row changes nothing and is not counted); FlagWarmUp
	// when every channel with a value is still warming up.
	Flags Flags
}

// NewVote returns a vote over channels channels, each with a detector of
// profile p.
func NewVote(p *Profile, channels int) (*Vote, error) {
	if p == nil {
		return nil, errs.Permanent(fmt.Errorf("%w: a vote needs a profile", ErrInvalidConfig))
	}
	if channels < 1 || channels > MaxGroupChannels {
		return nil, errs.Permanent(fmt.Errorf("%w: %d channels, want 1..%d", ErrInvalidGroupConfig, channels, MaxGroupChannels))
	}
	v := &Vote{
		p: p, dets: make([]*Detector, channels), alarms: make([]uint64, channels),
		limit:   VoteSurprise * math.Sqrt(float64(channels)),
		results: make([]Result, channels), surprise: make([]float64, channels),
		expected: make([]float64, channels), top: make([]int, 0, channels),
	}
	if !p.cfg.Vote.RarityOnly {
		v.severity = p.cfg.Vote.Severity
	}
	for c := range v.dets {
		v.dets[c] = p.NewDetector()
	}
	return v, nil
}

// Channels is the number of channels.
func (v *Vote) Channels() int { return len(v.dets) }

// Rows is the number of rows counted so far.
func (v *Vote) Rows() uint64 { return v.rows }

// Alarming reports whether the last row was flagged; AlarmSince is the
// time of the first row of that flagged run (zero when it was not). A
// flagged row after one that was not opens an asset's episode, a row not
// flagged after one that was closes it: the runs of flagged rows are the
// episodes `aiops detect eval` counts.
func (v *Vote) Alarming() bool { return v.alarm }

// EndAlarm ends the alarm, and the channels' episodes, without a row:
// the asset has gone silent or is dropped from memory.
func (v *Vote) EndAlarm() {
	v.alarm, v.since = false, 0
	for _, d := range v.dets {
		d.EndEpisode()
	}
}

// AlarmSince: see Alarming.
func (v *Vote) AlarmSince() time.Time {
	if !v.alarm {
		return time.Time{}
	}
	return time.Unix(0, v.since).UTC()
}

// Observe scores one row (one value per channel, in a fixed order; NaN or
// ±Inf is a missing channel, which its detector ignores). Every channel's
// detector observes its value, then the channels in an alarm episode add
// their surprise.
func (v *Vote) Observe(t time.Time, row []float64) VoteResult {
	r := VoteResult{Time: t, Limit: v.limit, Channel: -1}
	if len(row) != len(v.dets) {
		r.Flags |= FlagInvalid
		return r
	}
	ns := t.UnixNano()
	if v.hasLast && ns <= v.last {
		if ns == v.last {
			r.Flags |= FlagDuplicate
		} else {
			r.Flags |= FlagOutOfOrder
		}
		return r
	}
	valid := false
	for _, x := range row {
		if validValue(x) {
			valid = true
			break
		}
	}
	if !valid {
		r.Flags |= FlagInvalid
		return r
	}
	v.hasLast, v.last = true, ns
	v.rows++
	// n+2 of the alarm rate (a+1)/(n+2): a channel that has never been in
	// alarm starts near 1/(n+2), one always in alarm near 1
	n2 := float64(v.rows + 2)
	v.top = v.top[:0]
	var sum float64
	warming := true
	for c, d := range v.dets {
		res := d.Observe(t, row[c])
		v.results[c] = res
		if res.Flags&FlagInvalid == 0 && res.Flags&FlagWarmUp == 0 {
			warming = false
		}
		v.expected[c] = math.NaN()
		if res.HasBaseline {
			v.expected[c] = res.Expected
		}
		v.surprise[c] = 0
		if !res.Alarm {
			continue
		}
		v.alarms[c]++
		s := -math.Log((float64(v.alarms[c]) + 1) / n2)
		if v.severity > 0 {
			// how far past the bar its next episode would have to clear:
			// 0 on the rows of an episode back under it
			s += v.severity * math.Max(0, logRatio(res.Score)-float64(d.ep.bar))
		}
		v.surprise[c] = s
		sum += s
		// insertion by surprise, most first: few channels are in alarm
		i := len(v.top)
		v.top = append(v.top, c)
		for i > 0 && v.surprise[v.top[i-1]] < s {
			v.top[i] = v.top[i-1]
			i--
		}
		v.top[i] = c
	}
	if warming {
		r.Flags |= FlagWarmUp
	}
	r.Surprise, r.Score = sum, saturate(sum, v.limit)
	r.Anomaly = sum >= v.limit
	if len(v.top) > 0 {
		r.Channel = v.top[0]
	}
	r.Contributors, r.ChannelSurprise, r.Channels, r.Expected = v.top, v.surprise, v.results, v.expected
	if r.Anomaly && !v.alarm {
		v.since = ns
	}
	v.alarm = r.Anomaly
	return r
}
