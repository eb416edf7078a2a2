package logminer

import (
	"fmt"
	"sync"

	lru "github.com/hashicorp/golang-lru/v2"
)

// unacked holds the ids of the raw logs counted whose outputs were not all
// stored yet, so whose raw log may come again: its outputs failed (it is
// naked), their acks had not come when the stop's drain ended, or the
// process dies before they come. The state saves it beside the counts
// that hold those lines, so that a raw log the restored counts hold is
// mined again when it comes back, but not counted again (the runner's
// kept outputs, which spare a redelivery the processing, do not outlive
// the process, and are bounded). An id is forgotten once every output of
// its line was stored: then the raw log is acked, and if it comes again
// (its ack was lost, or a producer sent it twice) it is counted again.
// Bounded by MaxSeries plus the consumer's MaxAckPending, which bounds
// the raw logs that may come again (delivered and not acked, naked ones
// included): beyond, the oldest is forgotten, a raw log left behind by a
// dead letter or by a crash after its ack rather than one waiting for its
// redelivery.
type unacked struct {
	ids *lru.Cache[string, struct{}]
}

func newUnacked(max int) (*unacked, error) {
	ids, err := lru.New[string, struct{}](max)
	if err != nil {
		return nil, fmt.Errorf("logminer: %w", err)
	}
	return &unacked{ids: ids}, nil
}

// counted reports whether raw log id was counted already and, if not,
// holds it as counted now.
func (u *unacked) counted(id string) bool {
	ok, _ := u.ids.ContainsOrAdd(id, struct{}{})
	return ok
}

// list returns the ids held, oldest first, for a saved state.
func (u *unacked) list() []string { return u.ids.Keys() }

// restore replaces the ids held with those of a saved state.
func (u *unacked) restore(ids []string) {
	u.ids.Purge()
	for _, id := range ids {
		u.ids.Add(id, struct{}{})
	}
}

// outputs returns, for each of the n outputs of raw log id's line, the
// Settled and StoredLate that forget id once every one of them was
// stored: by its first send (Settled with nil), or by the send of the
// outputs the runner kept for its redelivery (StoredLate).
func (u *unacked) outputs(id string, n int) (settled []func(error), late []func()) {
	var mu sync.Mutex
	stored := make([]bool, n)
	left := n
	store := func(i int) {
		mu.Lock()
		if !stored[i] {
			stored[i] = true
			left--
		}
		all := left == 0
		mu.Unlock()
		if all {
			u.ids.Remove(id)
		}
	}
	settled, late = make([]func(error), n), make([]func(), n)
	for i := range n {
		settled[i] = func(err error) {
			if err == nil {
				store(i)
			}
		}
		late[i] = func() { store(i) }
	}
	return settled, late
}
