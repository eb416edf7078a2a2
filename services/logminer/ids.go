package logminer

import (
	"crypto/sha256"
	"time"

	"github.com/oklog/ulid/v2"
)

// derivedID is a ULID for an event the logminer derives from others: its
// time part is at (milliseconds), its random part a hash of parts. The same
// input always gives the same id, so a raw log redelivered after a crash is
// templated into an event with the id of the first attempt, which the
// stream's duplicate window and the writer's ReplacingMergeTree drop.
func derivedID(at time.Time, parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	var id ulid.ULID
	ms := at.UnixMilli()
	if ms < 0 {
		ms = 0
	}
	_ = id.SetTime(uint64(ms)) // only fails beyond the year 10889
	copy(id[6:], sum[:10])
	return id.String()
}

// idTime is the time part of a ULID (a valid one: event.Parse checked it).
func idTime(id string) time.Time {
	u, err := ulid.ParseStrict(id)
	if err != nil {
		return time.Time{}
	}
	return ulid.Time(u.Time())
}
