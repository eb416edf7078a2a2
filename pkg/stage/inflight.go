package stage

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

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
// emitted; Settled and StoredLate forget it once stored. A processor that
// has one offers it to the runner (InFlightOutputs): each tick sends again
// those whose publish failed, for an input whose redelivery will not (its
// kept outputs dropped, or dead-lettered). Safe for concurrent use.
type InFlight struct {
	// Max is the outputs kept past which the processor takes no new
	// input (Room; 0: DefaultMaxInFlight): nothing is ever dropped, a
	// processor refuses inputs with ErrBusy instead.
	Max int
	// Wait is how long Room waits for the stream to store some
	// (0: DefaultRoomWait).
	Wait time.Duration

	mu    sync.Mutex
	msgs  map[string]inFlight
	n     uint64
	freed chan struct{} // closed when an output is forgotten; nil until Room waits
}

// DefaultMaxInFlight is InFlight.Max's default: the publisher's window
// (bus.Publisher's 4096 outputs awaiting their acks).
const DefaultMaxInFlight = 4096

// DefaultRoomWait is InFlight.Wait's default: acks free room within it in
// a burst, and a stop's drain, which cannot cut the wait short, is late by
// no more than a fetch's wait.
const DefaultRoomWait = time.Second

// ErrBusy is what a processor returns for an input it refuses, before
// taking anything of it in, while its InFlight has no Room: the input is
// naked and comes again once the stream stores what is in flight. On its
// last delivery it is dead-lettered, saying it was given back unprocessed
// (errs.GivenBack).
var ErrBusy = errs.GivenBack(errors.New("stage: too many outputs not stored yet: input refused for now"))

// InFlightOutputs is implemented by a processor that keeps its outputs in
// an InFlight: the runner's ticks send again those whose publish failed.
type InFlightOutputs interface {
	InFlightOutputs() *InFlight
}

type inFlight struct {
	msg    bus.Message
	n      uint64 // numbers them, oldest first
	failed bool   // a publish of it failed
}

// Track keeps e until stored and returns the Settled and StoredLate of its
// Output. An error is permanent: e cannot be encoded. Track never drops an
// output: a processor asks for Room before taking an input in.
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
	f.n++
	id := e.ID
	f.msgs[id] = inFlight{msg: bus.Message{Subject: e.Subject(), ID: id, Data: data}, n: f.n}
	landed := func() { f.Stored(id) }
	return func(err error) {
		if err == nil {
			landed()
			return
		}
		f.mu.Lock()
		if m, ok := f.msgs[id]; ok {
			m.failed = true
			f.msgs[id] = m
		}
		f.mu.Unlock()
	}, landed, nil
}

// Room returns nil once fewer than Max outputs are kept, waiting up to
// Wait for the stream to store some, and ErrBusy if it did not: the
// processor refuses the input before taking anything of it in. A burst
// fills the publisher's window for a moment, and waits; an outage lasts,
// and its inputs come again later.
func (f *InFlight) Room(ctx context.Context) error {
	timer := time.NewTimer(cmp.Or(f.Wait, DefaultRoomWait))
	defer timer.Stop()
	for {
		f.mu.Lock()
		if len(f.msgs) < cmp.Or(f.Max, DefaultMaxInFlight) {
			f.mu.Unlock()
			return nil
		}
		if f.freed == nil {
			f.freed = make(chan struct{})
		}
		freed := f.freed
		f.mu.Unlock()
		select {
		case <-freed:
		case <-timer.C:
			return ErrBusy
		case <-ctx.Done():
			return fmt.Errorf("%w (%w)", ErrBusy, ctx.Err())
		}
	}
}

// Stored forgets output id: the stream stored it.
func (f *InFlight) Stored(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.forget(id)
}

// forget deletes id and wakes Room's waiters. f.mu is held.
func (f *InFlight) forget(id string) {
	delete(f.msgs, id)
	f.wake()
}

// wake tells Room's waiters that outputs were forgotten. f.mu is held.
func (f *InFlight) wake() {
	if f.freed != nil {
		close(f.freed)
		f.freed = nil
	}
}

// Failed returns the outputs whose publish failed and that are not stored
// yet, oldest first.
func (f *InFlight) Failed() []bus.Message {
	return f.oldestFirst(func(m inFlight) bool { return m.failed })
}

// Messages returns the outputs in flight, oldest first.
func (f *InFlight) Messages() []bus.Message {
	return f.oldestFirst(func(inFlight) bool { return true })
}

// oldestFirst returns the outputs in flight that keep keeps, oldest first.
func (f *InFlight) oldestFirst(keep func(inFlight) bool) []bus.Message {
	f.mu.Lock()
	defer f.mu.Unlock()
	ms := slices.SortedFunc(maps.Values(f.msgs), func(a, b inFlight) int { return cmp.Compare(a.n, b.n) })
	out := make([]bus.Message, 0, len(ms))
	for _, m := range ms {
		if keep(m) {
			out = append(out, m.msg)
		}
	}
	return out
}

// Clear forgets every output (a new term: the last one's are its
// checkpoint's outbox's to send).
func (f *InFlight) Clear() {
	f.mu.Lock()
	defer f.mu.Unlock()
	clear(f.msgs)
	f.wake()
}

// Len is how many outputs are in flight.
func (f *InFlight) Len() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.msgs)
}
