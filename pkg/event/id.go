package event

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"hash/fnv"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"
)

// ids hands out ULIDs that sort by creation time and stay unique within a
// millisecond (monotonic entropy). A ULID rather than a UUIDv4 because
// ClickHouse orders and partitions by time, and a sortable id keeps inserts
// of one batch close together.
var ids = struct {
	sync.Mutex
	entropy *ulid.MonotonicEntropy
}{entropy: ulid.Monotonic(rand.Reader, 0)}

// NewID returns a new ULID for time t (clamped into what a ULID holds:
// 1970 to the year 10889).
func NewID(t time.Time) string {
	ms := uint64(min(max(t.UnixMilli(), 0), int64(ulid.MaxTime())))
	ids.Lock()
	id, err := ulid.New(ms, ids.entropy)
	if err != nil {
		// The monotonic reader overflows only after 2^80 ids in one
		// millisecond or when the clock goes backwards past an id already
		// handed out; a fresh reader starts a new random sequence.
		ids.entropy = ulid.Monotonic(rand.Reader, 0)
		id = ulid.MustNew(ms, ids.entropy)
	}
	ids.Unlock()
	return id.String()
}

// ValidID reports whether s is a well-formed ULID (26 Crockford base32
// characters, upper or lower case).
func ValidID(s string) bool {
	_, err := ulid.ParseStrict(s)
	return err == nil
}

// DerivedID is the id of an event derived from others (a templated log, an
// anomaly, an alert decoded from a webhook): a ULID whose time part is t
// (milliseconds, clamped into what a ULID holds) and whose random part is
// SHA-256 over parts, each length-prefixed so that no two lists of parts
// hash alike. The same input always gives the same id, so an input
// redelivered after a crash or a retried request yields the event of the
// first attempt, which the stream's duplicate window and the writer's
// ReplacingMergeTree drop. Every derived id in aiops comes from here.
func DerivedID(t time.Time, parts ...string) string { return derivedID(t, parts) }

// DerivedIDBytes is DerivedID over byte slices (a request's body, say):
// the same id as DerivedID of the same parts as strings, without copying
// them into strings first.
func DerivedIDBytes(t time.Time, parts ...[]byte) string { return derivedID(t, parts) }

func derivedID[S ~string | ~[]byte](t time.Time, parts []S) string {
	var sum [sha256.Size]byte
	size := 0
	for _, p := range parts {
		size += binary.MaxVarintLen64 + len(p)
	}
	if size <= 512 {
		// The usual few short parts: one buffer on the stack, where a
		// hash.Hash would cost an allocation per part.
		var buf [512]byte
		b := buf[:0]
		for _, p := range parts {
			b = binary.AppendUvarint(b, uint64(len(p)))
			b = append(b, p...)
		}
		sum = sha256.Sum256(b)
	} else {
		// Large parts (a log body) are hashed where they are.
		h := sha256.New()
		var n [binary.MaxVarintLen64]byte
		for _, p := range parts {
			h.Write(n[:binary.PutUvarint(n[:], uint64(len(p)))])
			h.Write([]byte(p))
		}
		h.Sum(sum[:0])
	}
	ms := min(max(t.UnixMilli(), 0), int64(ulid.MaxTime()))
	var id ulid.ULID
	_ = id.SetTime(uint64(ms)) // in range: clamped above
	copy(id[6:], sum[:10])
	return id.String()
}

// IDTime is the time part of a ULID, the zero time if id is not one.
func IDTime(id string) time.Time {
	u, err := ulid.ParseStrict(id)
	if err != nil {
		return time.Time{}
	}
	return ulid.Time(u.Time())
}

// PartsHash is FNV-1a 64 over parts, each length-prefixed (a uvarint), so
// that no two lists of parts hash alike by moving bytes from one part to
// the next: a short key for what is compared, never for what must not
// collide on purpose (DerivedID is that).
func PartsHash(parts ...string) uint64 {
	h := fnv.New64a()
	var n [binary.MaxVarintLen64]byte
	for _, p := range parts {
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(p)))])
		h.Write([]byte(p))
	}
	return h.Sum64()
}
