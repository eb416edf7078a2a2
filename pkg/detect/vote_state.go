package detect

import (
	"encoding/binary"
	"fmt"

	"github.com/aiops-dev/aiops/pkg/errs"
)

// voteStateVersion is the byte after the magic of a Vote snapshot. Bump it
// when the layout changes; UnmarshalBinary rejects versions it does not
// know.
const voteStateVersion = 1

var voteStateMagic = [2]byte{'v', 'o'}

// Flag bits of a Vote snapshot.
const (
	voteHasLast = 1 << iota
	voteAlarm
)

// voteHeaderBytes: magic, version, channels(2), flags(1), rows, last,
// since (8 each).
const voteHeaderBytes = 2 + 1 + 2 + 1 + 8*3

// MarshalBinary encodes the vote's state: magic, version, the number of
// channels, the row count, the last row's time and the flagged run's
// start, then per channel its count of rows in alarm and its detector's
// state (length-prefixed, Detector.MarshalBinary). Thresholds are not part
// of it, as for a Detector.
func (v *Vote) MarshalBinary() ([]byte, error) {
	return v.AppendBinary(nil)
}

// AppendBinary appends the encoding of MarshalBinary to b.
func (v *Vote) AppendBinary(b []byte) ([]byte, error) {
	var flags byte
	if v.hasLast {
		flags |= voteHasLast
	}
	if v.alarm {
		flags |= voteAlarm
	}
	b = append(b, voteStateMagic[0], voteStateMagic[1], voteStateVersion)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(v.dets)))
	b = append(b, flags)
	for _, x := range [...]uint64{v.rows, uint64(v.last), uint64(v.since)} {
		b = binary.LittleEndian.AppendUint64(b, x)
	}
	for c, d := range v.dets {
		b = binary.LittleEndian.AppendUint64(b, v.alarms[c])
		at := len(b)
		b = append(b, 0, 0, 0, 0) // the length, set below
		var err error
		if b, err = d.AppendBinary(b); err != nil {
			return nil, err
		}
		binary.LittleEndian.PutUint32(b[at:], uint32(len(b)-at-4))
	}
	return b, nil
}

// UnmarshalBinary restores a state written by MarshalBinary into v, which
// must have as many channels and a profile of the same config shape. On
// error v is unchanged; errors wrap ErrStateVersion, ErrStateMismatch or
// ErrStateCorrupt and are permanent.
func (v *Vote) UnmarshalBinary(data []byte) error {
	if len(data) < 3 || data[0] != voteStateMagic[0] || data[1] != voteStateMagic[1] {
		return errs.Permanent(fmt.Errorf("%w: no vote state magic", ErrStateVersion))
	}
	if data[2] != voteStateVersion {
		return errs.Permanent(fmt.Errorf("%w: vote version %d, this build reads %d", ErrStateVersion, data[2], voteStateVersion))
	}
	if len(data) < voteHeaderBytes {
		return corrupt("vote state of %d bytes, the header alone is %d", len(data), voteHeaderBytes)
	}
	if n := int(binary.LittleEndian.Uint16(data[3:])); n != len(v.dets) {
		return errs.Permanent(fmt.Errorf("%w: vote state of %d channels, this vote has %d", ErrStateMismatch, n, len(v.dets)))
	}
	flags := data[5]
	rows := binary.LittleEndian.Uint64(data[6:])
	last := int64(binary.LittleEndian.Uint64(data[14:]))
	since := int64(binary.LittleEndian.Uint64(data[22:]))
	p := data[voteHeaderBytes:]
	dets := make([]*Detector, len(v.dets))
	alarms := make([]uint64, len(v.dets))
	for c := range dets {
		if len(p) < 12 {
			return corrupt("vote state truncated at channel %d", c)
		}
		alarms[c] = binary.LittleEndian.Uint64(p)
		size := int(binary.LittleEndian.Uint32(p[8:]))
		p = p[12:]
		if size > len(p) {
			return corrupt("vote state: channel %d's detector holds %d bytes, %d left", c, size, len(p))
		}
		if alarms[c] > rows {
			return corrupt("vote state: channel %d in alarm on %d of %d rows", c, alarms[c], rows)
		}
		dets[c] = v.p.NewDetector()
		if err := dets[c].UnmarshalBinary(p[:size]); err != nil {
			return fmt.Errorf("vote channel %d: %w", c, err)
		}
		p = p[size:]
	}
	if len(p) != 0 {
		return corrupt("vote state: %d bytes after the last channel", len(p))
	}
	v.dets, v.alarms, v.rows = dets, alarms, rows
	v.hasLast, v.alarm = flags&voteHasLast != 0, flags&voteAlarm != 0
	v.last, v.since = last, since
	return nil
}
