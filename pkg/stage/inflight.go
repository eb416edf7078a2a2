package stage

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/aiops-dev/aiops/pkg/bus"
	"github.com/aiops-dev/aiops/pkg/errs"
	"github.com/aiops-dev/aiops/pkg/event"
)

// InFlight keeps a processor's outputs until the stream stored them, for
// an Outbox whose state cannot leave out the inputs they came from (one
// correlator, one template miner): its checkpoint saves the state and, in
// its outbox, the outputs in flight at that moment. Without them a
// restart would hold the state, and the input's redelivery would make
// nothing (a repeat, a template already known). Track an output as it is
// emitted; Settled and StoredLate forget it once stored. Safe for
// concurrent use.
type InFlight struct {
	// Max bounds the outputs kept (0: DefaultMaxInFlight); beyond it the
	// oldest is forgotten (a publish that never settles must not grow the
	// state for ever), and OnDrop, when set, is told its id.
	Max    int
	OnDrop func(id string)

	mu   sync.Mutex
	msgs map[string]inFlight
	n    uint64
}

// DefaultMaxInFlight is InFlight.Max's default.
const DefaultMaxInFlight = 4096

type inFlight struct {
	msg bus.Message
	n   uint64 // numbers them, oldest first
}

// Track keeps e until stored and returns the Settled and StoredLate of its
// Output. An error is permanent: e cannot be encoded.
func (f *InFlight) Track(e *event.Envelope) (settled func(error), storedLate func(), err error) {
	data, err := e.MarshalJSON()
	if err != nil {
		return nil, nil, errs.Permanent(fmt.Errorf("stage: encoding %s event %s: %w", e.Kind, e.ID, err))
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.msgs == nil {
		f.msgs = map[string]inFlight{}
	}
	limit := cmp.Or(f.Max, DefaultMaxInFlight)
	if len(f.msgs) >= limit {
		oldest, n := "", uint64(0)
		for id, m := range f.msgs {
			if oldest == "" || m.n < n {
				oldest, n = id, m.n
			}
		}
		delete(f.msgs, oldest)
		if f.OnDrop != nil {
			f.OnDrop(oldest)
		}
	}
	f.n++
	id := e.ID
	f.msgs[id] = inFlight{bus.Message{Subject: e.Subject(), ID: id, Data: data}, f.n}
	landed := func() {
		f.mu.Lock()
		delete(f.msgs, id)
		f.mu.Unlock()
	}
	return func(err error) {
		if err == nil {
			landed()
		}
	}, landed, nil
}

// Messages returns the outputs in flight, oldest first.
func (f *InFlight) Messages() []bus.Message {
	f.mu.Lock()
	defer f.mu.Unlock()
	ms := slices.SortedFunc(maps.Values(f.msgs), func(a, b inFlight) int { return cmp.Compare(a.n, b.n) })
	out := make([]bus.Message, len(ms))
	for i, m := range ms {
		out[i] = m.msg
	}
	return out
}

// Clear forgets every output (a new term: the last one's are its
// checkpoint's outbox's to send).
func (f *InFlight) Clear() {
	f.mu.Lock()
	defer f.mu.Unlock()
	clear(f.msgs)
}

// Len is how many outputs are in flight.
func (f *InFlight) Len() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.msgs)
}
