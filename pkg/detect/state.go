package detect

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/aiops-dev/aiops/pkg/errs"
)

// stateVersion is the first byte after the magic of a snapshot. Bump it
// when the layout changes; UnmarshalBinary rejects versions it does not know.
// Version 2 appends the regime after a level shift; a version 1 snapshot
// (without it) restores with no regime running. Version 3 appends the
// trend CUSUM and the window's count of values since the last gap; a
// version 1 or 2 snapshot restores with the CUSUM at 0 and its window
// taken as gap-free.
//
// Version 4 appends the resolution (res, prevX) and the alarm episode; an
// older snapshot restores with no resolution learnt yet and no episode
// open. The episode's flag byte: 1 open, 2 recovering, 4 steps (an
// episode of a series that sat still), in its bits 8 to 32 the
// observations the value sat still (up to stepRelease), and 64 settled
// (the last episode ended on a new level); a build before them reads such
// a byte as corrupt.
//
// Version 5 appends the season in use (Config.Season auto may have chosen
// another than the configured one) and whether it is still being chosen;
// an older snapshot restores with the configured season, chosen. The
// finder's means are not kept: a detector restored while choosing starts
// its days of evidence again, which keeps snapshots small.
//
// Version 6 has version 5's layout, but the number of season buckets
// follows the season in use: a weekly season auto chose has one an hour
// (weekBuckets), the others the configured number. A version 5 snapshot of
// a weekly season (the configured buckets) restores with its profile
// interpolated to one bucket an hour.
const stateVersion = 6

// seasonBytes is the size of the season fields version 5 appends.
const seasonBytes = 8 + 1

// regimeBytes is the size of the regime fields version 2 appends.
const regimeBytes = 4 + 4 + 2 + 1

// trendBytes is the size of the trend fields version 3 appends.
const trendBytes = 4 + 1

// episodeBytes is the size of the resolution and episode fields version 4
// appends: the resolution (4 + 8), then the episode (episodeFieldBytes).
const episodeBytes = 4 + 8 + episodeFieldBytes

// episodeFieldBytes is the size of the episode's fields: flags, calm, bar,
// peak, peak detector, four times and three values.
const episodeFieldBytes = 1 + 1 + 4 + 4 + 1 + 8*7

var stateMagic = [2]byte{'d', 't'}

// Sentinel errors of UnmarshalBinary; both are permanent.
var (
	// ErrStateVersion: the snapshot has another magic or version.
	ErrStateVersion = errors.New("detect: unknown state version")
	// ErrStateMismatch: the snapshot was taken with a configuration of
	// another shape (window, buckets, period, seasonal on/off, counter).
	ErrStateMismatch = errors.New("detect: state taken with an incompatible config")
	// ErrStateCorrupt: the snapshot is truncated or holds impossible values.
	ErrStateCorrupt = errors.New("detect: corrupt state")
)

const stateFloats = 13

// MarshalBinary encodes the state: magic, version, the fingerprint of the
// config shape, then the fields little-endian. Thresholds are not part of
// the state, so they can change across a restore.
func (d *Detector) MarshalBinary() ([]byte, error) {
	return d.AppendBinary(make([]byte, 0, d.stateSize()))
}

func (d *Detector) stateSize() int {
	return d.stateSizeV1(len(d.season)) + regimeBytes + trendBytes + episodeBytes + seasonBytes
}

// stateSizeV1 is the size of a version 1 snapshot with buckets season
// buckets.
func (d *Detector) stateSizeV1(buckets int) int {
	return 2 + 1 + 4 + 1 + 4 + 8 + 8 + 8*stateFloats + 2 + 8*len(d.win.vals) + len(d.win.vals) + 4*buckets
}

// AppendBinary appends the encoding of MarshalBinary to b.
func (d *Detector) AppendBinary(b []byte) ([]byte, error) {
	b = append(b, stateMagic[0], stateMagic[1], stateVersion)
	b = binary.LittleEndian.AppendUint32(b, d.p.fingerprint)
	var has byte
	if d.hasLast {
		has = 1
	}
	b = append(b, has)
	b = binary.LittleEndian.AppendUint32(b, d.n)
	b = binary.LittleEndian.AppendUint64(b, uint64(d.lastT))
	b = binary.LittleEndian.AppendUint64(b, uint64(d.firstT))
	for _, f := range [stateFloats]float64{d.lastRaw, d.dt, d.mean, d.vari, d.cuPos, d.cuNeg, d.cuVa, d.level, d.slope, d.hwVa, d.slow, d.slowSl, d.seVa} {
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(f))
	}
	b = append(b, d.win.n, d.win.head)
	for _, f := range d.win.vals {
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(f))
	}
	b = append(b, d.win.perm...)
	for i := len(d.win.perm); i < len(d.win.vals); i++ {
		b = append(b, 0)
	}
	for _, f := range d.season {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(f))
	}
	b = binary.LittleEndian.AppendUint32(b, math.Float32bits(d.regRef))
	b = binary.LittleEndian.AppendUint32(b, math.Float32bits(d.regSd))
	b = binary.LittleEndian.AppendUint16(b, d.regN)
	b = append(b, d.regIn)
	b = binary.LittleEndian.AppendUint32(b, math.Float32bits(d.win.slopeCu))
	b = append(b, d.win.fresh)
	b = binary.LittleEndian.AppendUint32(b, math.Float32bits(d.res))
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(d.prevX))
	e := &d.ep
	var open byte
	if e.open {
		open = 1
	}
	if e.recovering {
		open |= 2
	}
	if e.steps {
		open |= 4
	}
	if e.settled {
		open |= 64
	}
	open |= d.still << 3
	b = append(b, open, e.calm)
	b = binary.LittleEndian.AppendUint32(b, math.Float32bits(e.bar))
	b = binary.LittleEndian.AppendUint32(b, math.Float32bits(e.peak))
	b = append(b, e.peakDet)
	for _, v := range [...]int64{e.start, e.end, e.peakT, e.lastUpd} {
		b = binary.LittleEndian.AppendUint64(b, uint64(v))
	}
	for _, f := range [...]float64{e.peakVal, e.lo, e.hi} {
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(f))
	}
	b = binary.LittleEndian.AppendUint64(b, uint64(d.Period()))
	var choosing byte
	if d.finder != nil {
		choosing = 1
		if d.finder.decided {
			choosing = 2
		}
	}
	return append(b, choosing), nil
}

func corrupt(format string, args ...any) error {
	return errs.Permanent(fmt.Errorf("%w: %s", ErrStateCorrupt, fmt.Sprintf(format, args...)))
}

// UnmarshalBinary restores a state written by MarshalBinary into d, which
// must come from a profile of the same config shape. On error d is unchanged.
func (d *Detector) UnmarshalBinary(data []byte) error {
	if len(data) < 7 || data[0] != stateMagic[0] || data[1] != stateMagic[1] {
		return errs.Permanent(fmt.Errorf("%w: no detector state magic", ErrStateVersion))
	}
	version := data[2]
	if version < 1 || version > stateVersion {
		return errs.Permanent(fmt.Errorf("%w: version %d, this build reads 1 to %d", ErrStateVersion, version, stateVersion))
	}
	if fp := binary.LittleEndian.Uint32(data[3:]); fp != d.p.fingerprint {
		return errs.Permanent(fmt.Errorf("%w: fingerprint %08x, profile %08x", ErrStateMismatch, fp, d.p.fingerprint))
	}
	// the season's bucket count: the configured one, or (version 6) the
	// one of the season in use, whose period ends the snapshot
	buckets := 0
	if d.season != nil {
		buckets = d.p.cfg.Seasonal.Buckets
		if version >= 6 && len(data) >= seasonBytes {
			buckets = d.p.seasonBuckets(int64(binary.LittleEndian.Uint64(data[len(data)-seasonBytes:])))
		}
	}
	want := d.stateSizeV1(buckets) + regimeBytes + trendBytes + episodeBytes + seasonBytes
	switch version {
	case 1:
		want = d.stateSizeV1(buckets)
	case 2:
		want = d.stateSizeV1(buckets) + regimeBytes
	case 3:
		want = d.stateSizeV1(buckets) + regimeBytes + trendBytes
	case 4:
		want = d.stateSizeV1(buckets) + regimeBytes + trendBytes + episodeBytes
	}
	if len(data) != want {
		return corrupt("%d bytes, want %d for version %d", len(data), want, version)
	}
	nd := *d
	nd.win = newWindow(len(d.win.vals))
	if d.season != nil {
		nd.season = make([]float32, buckets)
	}
	p := data[7:]
	nd.hasLast = p[0] == 1
	if p[0] > 1 {
		return corrupt("flag byte %d", p[0])
	}
	nd.n = binary.LittleEndian.Uint32(p[1:])
	nd.lastT = int64(binary.LittleEndian.Uint64(p[5:]))
	nd.firstT = int64(binary.LittleEndian.Uint64(p[13:]))
	p = p[21:]
	var fl [stateFloats]float64
	for i := range fl {
		fl[i] = math.Float64frombits(binary.LittleEndian.Uint64(p[8*i:]))
		if !finite(fl[i]) {
			return corrupt("field %d is %v", i, fl[i])
		}
	}
	nd.lastRaw, nd.dt, nd.mean, nd.vari, nd.cuPos, nd.cuNeg, nd.cuVa, nd.level, nd.slope, nd.hwVa, nd.slow, nd.slowSl, nd.seVa = fl[0], fl[1], fl[2], fl[3], fl[4], fl[5], fl[6], fl[7], fl[8], fl[9], fl[10], fl[11], fl[12]
	if nd.vari < 0 || nd.hwVa < 0 || nd.seVa < 0 || nd.dt < 0 || nd.cuPos < 0 || nd.cuNeg < 0 || nd.cuVa < 0 {
		return corrupt("negative variance, interval or CUSUM")
	}
	p = p[8*stateFloats:]
	size := len(nd.win.vals)
	wn, head := int(p[0]), int(p[1])
	if wn > size || head >= size {
		return corrupt("window count %d head %d for size %d", wn, head, size)
	}
	nd.win.n, nd.win.head = uint8(wn), uint8(head)
	p = p[2:]
	for i := range nd.win.vals {
		nd.win.vals[i] = math.Float64frombits(binary.LittleEndian.Uint64(p[8*i:]))
	}
	p = p[8*size:]
	var seen [256]bool
	for i := 0; i < wn; i++ {
		s := int(p[i])
		if s >= size || seen[s] || (wn < size && !slotFilled(s, head, wn, size)) {
			return corrupt("window order names slot %d twice or out of range", s)
		}
		seen[s] = true
		if !finite(nd.win.vals[s]) {
			return corrupt("window value %v", nd.win.vals[s])
		}
		if i > 0 && nd.win.vals[s] < nd.win.vals[p[i-1]] {
			return corrupt("window order not sorted")
		}
		nd.win.perm = append(nd.win.perm, p[i])
	}
	p = p[size:]
	for i := range nd.season {
		nd.season[i] = math.Float32frombits(binary.LittleEndian.Uint32(p[4*i:]))
		if f := float64(nd.season[i]); !finite(f) {
			return corrupt("season bucket %d is %v", i, f)
		}
	}
	nd.regRef, nd.regSd, nd.regN, nd.regIn = 0, 0, 0, 0
	if version >= 2 {
		p = p[4*len(nd.season):]
		nd.regRef = math.Float32frombits(binary.LittleEndian.Uint32(p))
		nd.regSd = math.Float32frombits(binary.LittleEndian.Uint32(p[4:]))
		nd.regN = binary.LittleEndian.Uint16(p[8:])
		nd.regIn = p[10]
		if nd.regN > 0 && (!finite(float64(nd.regRef)) || !(nd.regSd > 0) || math.IsInf(float64(nd.regSd), 0) || nd.regIn >= regimeRelease) {
			return corrupt("regime baseline %v scale %v inside %d", nd.regRef, nd.regSd, nd.regIn)
		}
	}
	nd.win.fresh = nd.win.n // before version 3: taken as gap-free
	if version >= 3 {
		p = p[regimeBytes:]
		cu := math.Float32frombits(binary.LittleEndian.Uint32(p))
		if !(math.Abs(float64(cu)) <= 2*trendLimit) { // also NaN
			return corrupt("trend CUSUM %v", cu)
		}
		if int(p[4]) > len(nd.win.vals) {
			return corrupt("%d values since the last gap, window of %d", p[4], len(nd.win.vals))
		}
		nd.win.slopeCu, nd.win.fresh = cu, p[4]
	}
	nd.res, nd.prevX, nd.ep, nd.still = 0, 0, episodeState{}, 0
	if version >= 4 {
		p = p[trendBytes:]
		nd.res = math.Float32frombits(binary.LittleEndian.Uint32(p))
		nd.prevX = math.Float64frombits(binary.LittleEndian.Uint64(p[4:]))
		if !(nd.res >= 0) || math.IsInf(float64(nd.res), 0) || !finite(nd.prevX) {
			return corrupt("resolution %v, previous value %v", nd.res, nd.prevX)
		}
		e, err := decodeEpisode(p[12:])
		if err != nil {
			return err
		}
		p, nd.ep, nd.still = p[12:], e, p[12]>>3&7
	}
	nd.periodNs, nd.bucketNs, nd.finder = d.p.periodNs, d.p.bucketNs, nil
	if d.season == nil {
		nd.periodNs, nd.bucketNs = 0, 0
	}
	if version >= 5 {
		p = p[episodeFieldBytes:]
		per, choosing := int64(binary.LittleEndian.Uint64(p)), p[8]
		switch {
		case d.season == nil && (per != 0 || choosing != 0):
			return corrupt("season %v without a seasonal profile", time.Duration(per))
		case per != 0 && per != d.p.periodNs && (!d.p.auto || (per != hourNs && per != dayNs && per != weekNs)):
			return corrupt("season %v, configured %v", time.Duration(per), time.Duration(d.p.periodNs))
		case per == 0 && d.season != nil && !d.p.auto:
			return corrupt("no season, configured %v", time.Duration(d.p.periodNs))
		case choosing > 2 || (choosing != 0 && !d.p.auto):
			return corrupt("season choice flag %d", choosing)
		}
		if n := d.p.seasonBuckets(per); d.season != nil && len(nd.season) != n {
			nd.season = resampleProfile(nd.season, n) // a version 5 weekly season
		}
		if d.season != nil {
			// no season keeps the configured period's memory, with a
			// flat profile (see setPeriod)
			nd.periodNs, nd.bucketNs = d.p.periodNs, 0
			if per != 0 {
				nd.periodNs, nd.bucketNs = per, per/int64(len(nd.season))
			}
		}
		if choosing != 0 {
			nd.finder = newPeriodFinder()
			nd.finder.decided = choosing == 2
		}
	}
	*d = nd
	return nil
}

// resampleProfile returns the seasonal profile prof, read as a periodic
// piecewise-linear curve (as seasonAt reads it), at n evenly spaced phases.
func resampleProfile(prof []float32, n int) []float32 {
	out := make([]float32, n)
	for i := range out {
		pos := float64(i) * float64(len(prof)) / float64(n)
		b0 := int(pos)
		f := pos - float64(b0)
		b1 := (b0 + 1) % len(prof)
		out[i] = float32((1-f)*float64(prof[b0]) + f*float64(prof[b1]))
	}
	return out
}

// slotFilled reports whether ring slot s holds a value when the window has
// wn < size values: they occupy the wn slots before head.
func slotFilled(s, head, wn, size int) bool {
	return (s-(head-wn)+size)%size < wn
}

// decodeEpisode reads the episode's fields (episodeFieldBytes at p).
func decodeEpisode(p []byte) (episodeState, error) {
	if p[0]>>3&7 > stepRelease || p[0]&128 != 0 {
		return episodeState{}, corrupt("episode flag byte %d", p[0])
	}
	e := episodeState{open: p[0]&1 != 0, recovering: p[0]&2 != 0, steps: p[0]&4 != 0, settled: p[0]&64 != 0, calm: p[1]}
	e.bar = math.Float32frombits(binary.LittleEndian.Uint32(p[2:]))
	e.peak = math.Float32frombits(binary.LittleEndian.Uint32(p[6:]))
	e.peakDet = p[10]
	p = p[11:]
	e.start, e.end, e.peakT, e.lastUpd = int64(binary.LittleEndian.Uint64(p)), int64(binary.LittleEndian.Uint64(p[8:])), int64(binary.LittleEndian.Uint64(p[16:])), int64(binary.LittleEndian.Uint64(p[24:]))
	e.peakVal = math.Float64frombits(binary.LittleEndian.Uint64(p[32:]))
	e.lo = math.Float64frombits(binary.LittleEndian.Uint64(p[40:]))
	e.hi = math.Float64frombits(binary.LittleEndian.Uint64(p[48:]))
	if !(e.bar >= 0 && e.bar <= maxBar) || !(e.peak >= 0 && e.peak <= 1) || Kind(e.peakDet) >= NumKinds || !finite(e.peakVal) || !finite(e.lo) || !finite(e.hi) {
		return episodeState{}, corrupt("episode bar %v peak %v detector %d value %v", e.bar, e.peak, e.peakDet, e.peakVal)
	}
	return e, nil
}

// episodeAt is where the episode's fields of a state start (ok false for a
// state that predates episodes, version 4).
func episodeAt(data []byte) (at int, ok bool, err error) {
	if len(data) < 7 || data[0] != stateMagic[0] || data[1] != stateMagic[1] {
		return 0, false, errs.Permanent(fmt.Errorf("%w: no detector state magic", ErrStateVersion))
	}
	version, end := data[2], len(data)
	switch {
	case version < 4:
		return 0, false, nil
	case version > stateVersion:
		return 0, false, errs.Permanent(fmt.Errorf("%w: version %d, this build reads 1 to %d", ErrStateVersion, version, stateVersion))
	case version >= 5:
		end -= seasonBytes
	}
	if end-episodeFieldBytes < 7 {
		return 0, false, corrupt("%d bytes, too short for an episode", len(data))
	}
	return end - episodeFieldBytes, true, nil
}

// EndEpisodeIn returns a copy of a state MarshalBinary wrote, whatever the
// profile it was taken with, with its alarm episode ended as EndEpisode
// ends it (the budget's bar kept): the snapshot of a series whose episode
// was closed while its state could not be loaded is kept so, and restores
// its baseline without an episode nothing would end.
func EndEpisodeIn(data []byte) ([]byte, error) {
	at, ok, err := episodeAt(data)
	if err != nil || !ok {
		return slices.Clone(data), err
	}
	if _, err := decodeEpisode(data[at : at+episodeFieldBytes]); err != nil {
		return nil, err
	}
	out := slices.Clone(data)
	f := out[at : at+episodeFieldBytes]
	bar := slices.Clone(f[2:6])
	clear(f)
	copy(f[2:6], bar)
	return out, nil
}

// OpenEpisodeOf reads the alarm episode held open in a state MarshalBinary
// wrote, whatever the profile it was taken with. A restore that cannot use
// the state (its route left the pipeline, or its configuration changed
// shape) still has an episode to close: nothing else would end it. ok is
// false when no episode was open, or the state predates episodes
// (version 4): its fields end the state, or come just before the season
// of version 5 on.
func OpenEpisodeOf(data []byte) (info Episode, ok bool, err error) {
	at, ok, err := episodeAt(data)
	if err != nil || !ok {
		return Episode{}, false, err
	}
	e, err := decodeEpisode(data[at : at+episodeFieldBytes])
	if err != nil || !e.open {
		return Episode{}, false, err
	}
	d := Detector{ep: e}
	return d.episodeInfo(), true, nil
}
