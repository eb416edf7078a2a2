package event

import (
	"crypto/rand"
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

// NewID returns a new ULID for time t.
func NewID(t time.Time) string {
	ids.Lock()
	id, err := ulid.New(ulid.Timestamp(t), ids.entropy)
	if err != nil {
		// The monotonic reader overflows only after 2^80 ids in one
		// millisecond or when the clock goes backwards past an id already
		// handed out; a fresh reader starts a new random sequence.
		ids.entropy = ulid.Monotonic(rand.Reader, 0)
		id = ulid.MustNew(ulid.Timestamp(t), ids.entropy)
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
