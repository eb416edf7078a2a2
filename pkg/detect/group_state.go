package detect

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"

	"gonum.org/v1/gonum/mat"

	"github.com/aiops-dev/aiops/pkg/errs"
)

// groupStateVersion is the byte after the magic of a Group snapshot. Bump
// it when the layout changes; UnmarshalBinary rejects versions it does not
// know. Version 2 appends the change window; a version 1 state loads with
// the change detector off until the next relearn.
const groupStateVersion = 2

var groupStateMagic = [2]byte{'g', 'p'}

// Flag bits of a Group snapshot.
const (
	groupHasFirst = 1 << iota
	groupAlarm
	groupModel // the first model has been learnt: mean, scale, cov, pc, lambda follow
)

// groupHeaderBytes: magic, version, channels(2), flags(1), k(2), n, sinceFit,
// calm, warm rows (4 each), last, alarmSince (8 each), 5 floats.
const groupHeaderBytes = 2 + 1 + 2 + 1 + 2 + 4*4 + 8*2 + 8*5

// MarshalBinary encodes the group's state: magic, version, the number of
// channels, then the fields little-endian (the warm-up rows while it warms
// up, the model after). The configuration is not part of the state: it is
// the group's on restore, so settings can change across a restart.
func (g *Group) MarshalBinary() ([]byte, error) {
	return g.AppendBinary(nil)
}

// AppendBinary appends the encoding of MarshalBinary to b.
func (g *Group) AppendBinary(b []byte) ([]byte, error) {
	d := g.d
	var flags byte
	if g.hasFirst {
		flags |= groupHasFirst
	}
	if g.alarm {
		flags |= groupAlarm
	}
	if g.pc != nil {
		flags |= groupModel
	}
	size := groupHeaderBytes + 8*d*len(g.warm)
	if g.pc != nil {
		size += 8 * (2*d + d*(d+1)/2 + d*g.k + g.k)
	}
	b = append(b, make([]byte, 0, size)...)
	b = append(b, groupStateMagic[0], groupStateMagic[1], groupStateVersion)
	b = binary.LittleEndian.AppendUint16(b, uint16(d))
	b = append(b, flags)
	b = binary.LittleEndian.AppendUint16(b, uint16(g.k))
	for _, v := range [...]int{g.n, g.sinceFit, g.calm, len(g.warm)} {
		b = binary.LittleEndian.AppendUint32(b, uint32(v))
	}
	b = binary.LittleEndian.AppendUint64(b, uint64(unixNano(g.last)))
	b = binary.LittleEndian.AppendUint64(b, uint64(unixNano(g.alarmSince)))
	f := func(v float64) { b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v)) }
	for _, v := range [...]float64{g.resid, g.resid0, g.t2Lim, g.qLim, g.smooth} {
		f(v)
	}
	for _, row := range g.warm {
		for _, v := range row {
			f(v)
		}
	}
	if g.pc != nil {
		for _, v := range g.mean {
			f(v)
		}
		for _, v := range g.scale {
			f(v)
		}
		for i := 0; i < d; i++ {
			for j := i; j < d; j++ {
				f(g.cov.At(i, j))
			}
		}
		for j := 0; j < d; j++ {
			for i := 0; i < g.k; i++ {
				f(g.pc.At(j, i))
			}
		}
		for _, v := range g.lambda {
			f(v)
		}
	}
	c := &g.change
	b = binary.LittleEndian.AppendUint32(b, uint32(c.w))
	if c.w > 0 {
		b = binary.LittleEndian.AppendUint64(b, uint64(c.n))
		b = append(b, boolByte(c.on))
		f(c.lim)
		for _, v := range c.rows {
			f(v)
		}
	}
	return b, nil
}

func boolByte(v bool) byte {
	if v {
		return 1
	}
	return 0
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return math.MinInt64
	}
	return t.UnixNano()
}

func fromUnixNano(n int64) time.Time {
	if n == math.MinInt64 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// UnmarshalBinary restores a state written by MarshalBinary into g, which
// must have as many channels. On error g is unchanged; errors wrap
// ErrStateVersion, ErrStateMismatch or ErrStateCorrupt and are permanent.
func (g *Group) UnmarshalBinary(data []byte) error {
	if len(data) < 3 || data[0] != groupStateMagic[0] || data[1] != groupStateMagic[1] {
		return errs.Permanent(fmt.Errorf("%w: no group state magic", ErrStateVersion))
	}
	version := data[2]
	if version != 1 && version != groupStateVersion {
		return errs.Permanent(fmt.Errorf("%w: group version %d, this build reads 1 and %d", ErrStateVersion, version, groupStateVersion))
	}
	if len(data) < groupHeaderBytes {
		return corrupt("group state of %d bytes, header alone is %d", len(data), groupHeaderBytes)
	}
	d := int(binary.LittleEndian.Uint16(data[3:]))
	if d != g.d {
		return errs.Permanent(fmt.Errorf("%w: group state of %d channels, group of %d", ErrStateMismatch, d, g.d))
	}
	flags := data[5]
	k := int(binary.LittleEndian.Uint16(data[6:]))
	p := data[8:]
	u32 := func() int { v := binary.LittleEndian.Uint32(p); p = p[4:]; return int(v) }
	n, sinceFit, calm, warm := u32(), u32(), u32(), u32()
	last := int64(binary.LittleEndian.Uint64(p))
	alarmSince := int64(binary.LittleEndian.Uint64(p[8:]))
	p = p[16:]
	f := func() float64 { v := math.Float64frombits(binary.LittleEndian.Uint64(p)); p = p[8:]; return v }
	model := flags&groupModel != 0
	want := groupHeaderBytes + 8*d*warm
	if model {
		if k < 1 || k > d {
			return corrupt("%d components for %d channels", k, d)
		}
		want += 8 * (2*d + d*(d+1)/2 + d*k + k)
	}
	var cw int // the change window's rows, version 2
	if version >= 2 {
		if len(data) < want+4 {
			return corrupt("group state of %d bytes, want %d and a change window", len(data), want)
		}
		cw = int(binary.LittleEndian.Uint32(data[want:]))
		want += 4
		if cw > 0 {
			if cw > 10_000 {
				return corrupt("change window of %d rows", cw)
			}
			want += 8 + 1 + 8 + 8*2*cw*d
		}
	}
	if flags&^(groupHasFirst|groupAlarm|groupModel) != 0 || warm > g.cfg.Warmup+1_000_000 || len(data) != want {
		return corrupt("group state of %d bytes with flags %#x and %d warm-up rows, want %d bytes", len(data), flags, warm, want)
	}
	ng := *g
	ng.hasFirst, ng.alarm = flags&groupHasFirst != 0, flags&groupAlarm != 0
	ng.n, ng.sinceFit, ng.calm = n, sinceFit, calm
	ng.last, ng.alarmSince = fromUnixNano(last), fromUnixNano(alarmSince)
	ng.resid, ng.resid0, ng.t2Lim, ng.qLim, ng.smooth = f(), f(), f(), f(), f()
	for _, v := range [...]float64{ng.resid, ng.resid0, ng.t2Lim, ng.qLim, ng.smooth} {
		if !finite(v) || v < 0 {
			return corrupt("group limit, residual or score %v", v)
		}
	}
	ng.warm = nil
	if warm > 0 {
		ng.warm = make([][]float64, warm)
		for i := range ng.warm {
			ng.warm[i] = make([]float64, d)
			for j := range ng.warm[i] {
				if ng.warm[i][j] = f(); !validValue(ng.warm[i][j]) {
					return corrupt("warm-up row %d channel %d is %v", i, j, ng.warm[i][j])
				}
			}
		}
	}
	ng.mean, ng.scale, ng.cov, ng.pc, ng.lambda, ng.k = nil, nil, nil, nil, nil, 0
	if model {
		ng.k = k
		ng.mean, ng.scale = make([]float64, d), make([]float64, d)
		for j := range ng.mean {
			if ng.mean[j] = f(); !finite(ng.mean[j]) {
				return corrupt("mean of channel %d is %v", j, ng.mean[j])
			}
		}
		for j := range ng.scale {
			if ng.scale[j] = f(); !(ng.scale[j] > 0) || math.IsInf(ng.scale[j], 0) {
				return corrupt("scale of channel %d is %v", j, ng.scale[j])
			}
		}
		ng.cov = mat.NewSymDense(d, nil)
		for i := 0; i < d; i++ {
			for j := i; j < d; j++ {
				v := f()
				if !finite(v) {
					return corrupt("covariance (%d,%d) is %v", i, j, v)
				}
				ng.cov.SetSym(i, j, v)
			}
		}
		ng.pc = mat.NewDense(d, k, nil)
		for j := 0; j < d; j++ {
			for i := 0; i < k; i++ {
				v := f()
				if !finite(v) {
					return corrupt("component (%d,%d) is %v", j, i, v)
				}
				ng.pc.Set(j, i, v)
			}
		}
		ng.lambda = make([]float64, k)
		for i := range ng.lambda {
			if ng.lambda[i] = f(); !(ng.lambda[i] > 0) || math.IsInf(ng.lambda[i], 0) {
				return corrupt("eigenvalue %d is %v", i, ng.lambda[i])
			}
		}
		if !(ng.t2Lim > 0 && ng.qLim > 0) {
			return corrupt("limits %v %v of a learnt model", ng.t2Lim, ng.qLim)
		}
	}
	ng.change = changeWindow{}
	if version >= 2 {
		p = p[4:] // the change window's rows, read above
		if cw > 0 {
			c := changeWindow{w: cw, d: d, n: int(binary.LittleEndian.Uint64(p)), on: p[8] == 1, rows: make([]float64, 2*cw*d)}
			if p[8] > 1 || c.n < 0 {
				return corrupt("change window flag %d, %d rows", p[8], c.n)
			}
			p = p[9:]
			if c.lim = f(); !(c.lim > 0) || math.IsInf(c.lim, 0) {
				return corrupt("change limit %v", c.lim)
			}
			for i := range c.rows {
				if c.rows[i] = f(); !finite(c.rows[i]) {
					return corrupt("change window value %d is %v", i, c.rows[i])
				}
			}
			ng.change = c
		}
	}
	ng.z, ng.proj = make([]float64, d), make([]float64, d)
	*g = ng
	return nil
}
