package detect

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/aiops-dev/aiops/pkg/errs"
)

// Offsets in a Group's state header (group_state.go): the flags, then
// after k the counters n, sinceFit, calm and warm, last, alarmSince and
// the five floats, smooth the last.
const (
	groupFlagsAt      = 5
	groupCalmAt       = 8 + 2*4
	groupAlarmSinceAt = 8 + 4*4 + 8
	groupSmoothAt     = 8 + 4*4 + 8*2 + 8*4
)

// Offsets in a Vote's state header (vote_state.go).
const (
	voteFlagsAt = 5
	voteSinceAt = 6 + 8*2
)

// GroupAlarmOf reads the alarm held on in a state a Group or a Vote
// wrote, whatever the group's channels, method or configuration now: a
// restore that cannot use the state still has an alarm to end, which
// nothing else would. since is when it began.
func GroupAlarmOf(data []byte) (since time.Time, on bool, err error) {
	switch {
	case isGroupState(data):
		if data[groupFlagsAt]&groupAlarm == 0 {
			return time.Time{}, false, nil
		}
		return fromUnixNano(int64(binary.LittleEndian.Uint64(data[groupAlarmSinceAt:]))), true, nil
	case isVoteState(data):
		if data[voteFlagsAt]&voteAlarm == 0 {
			return time.Time{}, false, nil
		}
		return time.Unix(0, int64(binary.LittleEndian.Uint64(data[voteSinceAt:]))).UTC(), true, nil
	}
	return time.Time{}, false, errs.Permanent(fmt.Errorf("%w: neither a group nor a vote state", ErrStateVersion))
}

// EndGroupAlarmIn returns a copy of a state a Group or a Vote wrote with
// its alarm ended as EndAlarm ends it (a Vote's channels' episodes too),
// whatever the group's configuration now: the snapshot of an asset whose
// alarm was closed while its state could not be loaded is kept so, and a
// rollback of the configuration restores its model without an alarm
// nothing would end.
func EndGroupAlarmIn(data []byte) ([]byte, error) {
	switch {
	case isGroupState(data):
		out := slices.Clone(data)
		out[groupFlagsAt] &^= groupAlarm
		binary.LittleEndian.PutUint32(out[groupCalmAt:], 0)
		binary.LittleEndian.PutUint64(out[groupAlarmSinceAt:], uint64(unixNano(time.Time{})))
		binary.LittleEndian.PutUint64(out[groupSmoothAt:], math.Float64bits(0))
		return out, nil
	case isVoteState(data):
		out := slices.Clone(data)
		out[voteFlagsAt] &^= voteAlarm
		binary.LittleEndian.PutUint64(out[voteSinceAt:], 0)
		channels := int(binary.LittleEndian.Uint16(out[3:]))
		p := out[voteHeaderBytes:]
		for c := range channels {
			if len(p) < 12 {
				return nil, corrupt("vote state truncated at channel %d", c)
			}
			size := int(binary.LittleEndian.Uint32(p[8:]))
			p = p[12:]
			if size > len(p) {
				return nil, corrupt("vote state: channel %d's detector holds %d bytes, %d left", c, size, len(p))
			}
			ended, err := EndEpisodeIn(p[:size])
			if err != nil {
				return nil, fmt.Errorf("vote channel %d: %w", c, err)
			}
			copy(p, ended) // the same length: only fields are cleared
			p = p[size:]
		}
		return out, nil
	}
	return nil, errs.Permanent(fmt.Errorf("%w: neither a group nor a vote state", ErrStateVersion))
}

// GroupStateChannels is the number of channels of a state a Group or a
// Vote wrote, or 0 when data is neither.
func GroupStateChannels(data []byte) int {
	if !isGroupState(data) && !isVoteState(data) {
		return 0
	}
	return int(binary.LittleEndian.Uint16(data[3:]))
}

func isGroupState(data []byte) bool {
	return len(data) >= groupHeaderBytes && data[0] == groupStateMagic[0] && data[1] == groupStateMagic[1] &&
		(data[2] == 1 || data[2] == groupStateVersion)
}

func isVoteState(data []byte) bool {
	return len(data) >= voteHeaderBytes && data[0] == voteStateMagic[0] && data[1] == voteStateMagic[1] &&
		data[2] == voteStateVersion
}
