package stage

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/aiops-dev/aiops/pkg/bus"
)

// Outbox is implemented by a Checkpointer whose checkpoint also keeps the
// tick outputs the stream has not stored yet. A tick's outputs come from
// state the checkpoint holds (a detector's row closed, an incident
// resolved, a minute's counts flushed): saved without them, a restart
// would have the state and never send what it made. Before every
// checkpoint the runner hands over the tick outputs not stored, holding
// off ticks until the checkpoint returned (so no tick's state is saved
// without its outputs; a periodic checkpoint gets CheckpointTimeout);
// after Restore it takes those the checkpoint held (less those it still
// keeps, a correlator's between two terms) and sends them with the first
// tick. An output keeps its id, so a copy
// the stream stored after all is a duplicate it drops, and downstream
// dedups by id.
//
// HeldOutputs implements Hold and Held for a Checkpointer that saves its
// encoding beside its state.
type Outbox interface {
	Checkpointer
	// Hold is given, before each Checkpoint, the tick outputs not stored
	// (nil when there are none); the checkpoint saves them.
	Hold(msgs []bus.Message)
	// Held returns, after Restore, the outputs the restored checkpoint
	// held.
	Held() []bus.Message
}

// ErrOutbox is wrapped by the errors of decoding a saved outbox.
var ErrOutbox = errors.New("stage: bad saved outbox")

// HeldOutputs is the outputs an Outbox holds, safe for concurrent use.
type HeldOutputs struct {
	mu   sync.Mutex
	msgs []bus.Message
}

// Hold replaces the outputs held.
func (h *HeldOutputs) Hold(msgs []bus.Message) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.msgs = msgs
}

// Held returns the outputs held.
func (h *HeldOutputs) Held() []bus.Message {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.msgs
}

// heldOutput is one output as saved: an output's data is its encoded
// envelope, kept as it is (JSON within JSON, not base64).
type heldOutput struct {
	Subject string          `json:"subject"`
	ID      string          `json:"id"`
	Data    json.RawMessage `json:"data"`
}

// MarshalBinary encodes the outputs held, as a JSON array.
func (h *HeldOutputs) MarshalBinary() ([]byte, error) {
	data, _, err := h.MarshalWithin(0)
	return data, err
}

// MarshalWithin encodes the newest outputs held whose encoding fits in
// limit bytes (no limit when 0), for a store whose values are bounded (a
// key-value bucket's 1 MB); it returns how many older ones it left out.
func (h *HeldOutputs) MarshalWithin(limit int) (data []byte, left int, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]heldOutput, len(h.msgs))
	size := 1 // [ and ], less the last comma
	for i, m := range h.msgs {
		if !json.Valid(m.Data) {
			return nil, 0, fmt.Errorf("stage: held output %s is not JSON", m.ID)
		}
		out[i] = heldOutput{m.Subject, m.ID, m.Data}
		size += heldOverhead + len(m.Subject) + len(m.ID) + len(m.Data)
	}
	for limit > 0 && size > limit && left < len(out) {
		m := out[left]
		size -= heldOverhead + len(m.Subject) + len(m.ID) + len(m.Data)
		left++
	}
	for {
		data, err = encodeHeld(out[left:])
		// The count is exact unless a subject or an id needed escapes
		// (event.SubjectToken keeps " and \): then one more goes.
		if err != nil || limit <= 0 || len(data) <= limit || left == len(out) {
			return data, left, err
		}
		left++
	}
}

// encodeHeld writes out's data as it is (compacted, not HTML-escaped), so
// that the size MarshalWithin counts is what is written.
func encodeHeld(out []heldOutput) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(out); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// heldOverhead is what an output's encoding adds to its subject, id and
// data: keys, quotes, braces and a comma.
const heldOverhead = len(`{"subject":"","id":"","data":},`)

// UnmarshalBinary replaces the outputs held by those data encodes (none
// when data is empty).
func (h *HeldOutputs) UnmarshalBinary(data []byte) error {
	var in []heldOutput
	if len(data) > 0 {
		if err := json.Unmarshal(data, &in); err != nil {
			return fmt.Errorf("%w: %w", ErrOutbox, err)
		}
	}
	msgs := make([]bus.Message, 0, len(in))
	for i, o := range in {
		if o.Subject == "" || o.ID == "" || len(o.Data) == 0 {
			return fmt.Errorf("%w: output %d has no subject, id or data", ErrOutbox, i)
		}
		msgs = append(msgs, bus.Message{Subject: o.Subject, ID: o.ID, Data: []byte(o.Data)})
	}
	h.Hold(msgs)
	return nil
}

// ObjectReader reads objects of a state store: a jetstream.ObjectStore, or
// FencedObjects (which tells a broken object apart: ErrBrokenObject).
type ObjectReader interface {
	GetBytes(ctx context.Context, name string, opts ...jetstream.GetObjectOpt) ([]byte, error)
}

// LoadFrom replaces the outputs held by those saved beside the state
// object key of store (SaveTo), none when nothing is. A read that fails
// returns its error; an outbox that cannot be decoded, one wrapping
// ErrOutbox.
func (h *HeldOutputs) LoadFrom(ctx context.Context, store ObjectReader, key string) error {
	data, err := store.GetBytes(ctx, key+outboxSuffix)
	switch {
	case errors.Is(err, jetstream.ErrObjectNotFound):
		data = nil
	case err != nil:
		return fmt.Errorf("stage: reading %s%s: %w", key, outboxSuffix, err)
	}
	if err := h.UnmarshalBinary(data); err != nil {
		return fmt.Errorf("stage: %s%s: %w", key, outboxSuffix, err)
	}
	return nil
}

// SaveTo writes the outputs held beside the state object key of store,
// as the object <key>.outbox.
func (h *HeldOutputs) SaveTo(ctx context.Context, store jetstream.ObjectStore, key string) error {
	data, err := h.MarshalBinary()
	if err != nil {
		return err
	}
	if _, err := store.PutBytes(ctx, key+outboxSuffix, data); err != nil {
		return fmt.Errorf("stage: saving %s%s: %w", key, outboxSuffix, err)
	}
	return nil
}

const outboxSuffix = ".outbox"

// OutboxObject names the object that holds the outputs saved beside the
// state object key (SaveTo, SaveFenced).
func OutboxObject(key string) string { return key + outboxSuffix }

// SaveFenced is SaveTo through f, which claimed the outbox object
// (ErrFenced: another holder claimed it since), tagged with tag
// (FencedObjects.PutTagged): that of the state saved with it.
func (h *HeldOutputs) SaveFenced(ctx context.Context, f *FencedObjects, key, tag string) error {
	data, err := h.MarshalBinary()
	if err != nil {
		return err
	}
	if err := f.PutTagged(ctx, OutboxObject(key), data, tag); err != nil {
		return fmt.Errorf("stage: saving %s: %w", OutboxObject(key), err)
	}
	return nil
}
