package logminer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/aiops-dev/aiops/pkg/bus"
	"github.com/aiops-dev/aiops/pkg/errs"
	"github.com/aiops-dev/aiops/pkg/logmine"
	"github.com/aiops-dev/aiops/pkg/stage"
)

// stateVersion is the layout of a saved state; Restore refuses others.
const stateVersion = 1

// savedState is what is kept in the object store: the miner's own snapshot
// (templates, merges; compact binary with a checksum) and the count series,
// including the counts of the interval in progress, so a restart in the
// middle of an interval neither loses nor repeats its lines.
type savedState struct {
	Version int    `json:"version"`
	Miner   []byte `json:"miner"`
	// IntervalEnd is the end of the interval the series' counts belong
	// to. A state restored after that time drops those counts (it keeps
	// the averages): the interval may have been emitted after the save,
	// and a late partial count is worth less than a count never doubled.
	// Unless Stopped: the save came after the last tick of the run.
	IntervalEnd time.Time     `json:"interval_end"`
	Series      []seriesState `json:"series"`
	// Stopped: saved once the stop began, when no tick closes an interval
	// any more (Tick), so no tick published the counts of IntervalEnd's
	// interval. A state restored after IntervalEnd publishes them as that
	// interval's (with the outputs the outbox held), instead of losing
	// the lines of every interval a restart straddles.
	Stopped bool `json:"stopped,omitempty"`
	// Unacked are the raw logs the counts hold whose outputs were not all
	// stored: their redelivery is mined, not counted again (unacked).
	Unacked []string `json:"unacked,omitempty"`
	// Headers are the header kinds detected for auto services: restored,
	// a service's lines are split as before, and mined into the same
	// templates (detected again, the first lines could be split by
	// another kind and get other template ids).
	Headers map[string]logmine.Detection `json:"headers,omitempty"`
}

// ErrInvalidState is wrapped when a saved state cannot be read.
var ErrInvalidState = errors.New("logminer: invalid saved state")

func (l *Logminer) encodeState() ([]byte, error) {
	snap, err := l.miner.Snapshot()
	if err != nil {
		return nil, err
	}
	series, end := l.counts.snapshot(l.now())
	return json.Marshal(savedState{Version: stateVersion, Miner: snap, IntervalEnd: end.UTC(), Series: series,
		Stopped: l.stopping(), Unacked: l.unacked.list(), Headers: l.headers.detected()})
}

func (l *Logminer) decodeState(data []byte) error {
	var st savedState
	if err := json.Unmarshal(data, &st); err != nil {
		return errs.Permanent(fmt.Errorf("%w: %v", ErrInvalidState, err))
	}
	if st.Version != stateVersion {
		return errs.Permanent(fmt.Errorf("%w: version %d, this build reads %d", ErrInvalidState, st.Version, stateVersion))
	}
	if err := l.miner.Restore(st.Miner); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidState, err)
	}
	ended := !l.now().Before(st.IntervalEnd)
	if ended && !st.Stopped {
		for i := range st.Series {
			st.Series[i].Count, st.Series[i].Errors = 0, 0
		}
	}
	l.counts.restore(st.Series)
	l.unacked.restore(st.Unacked)
	l.headers.restore(st.Headers)
	l.restoredStopped = st.Stopped
	if ended && st.Stopped {
		// The interval ended while the logminer was stopped: close it
		// now, its samples and bursts sent by the first tick under the
		// ids its own tick would have given them.
		var held heldEmitter
		if err := l.closeInterval(st.IntervalEnd, &held); err != nil {
			l.log.Error().Err(err).Time("interval_end", st.IntervalEnd).Msg("counts of the interval the stop saved not all published")
		}
		l.outbox.Hold(append(slices.Clone(l.outbox.Held()), held.msgs...))
	}
	l.counts.begin(l.now())
	return nil
}

// heldEmitter keeps what an interval closed at the restore emits, for the
// outbox that the first tick sends.
type heldEmitter struct{ msgs []bus.Message }

func (h *heldEmitter) Emit(o stage.Output) error {
	m, err := stage.Message(o)
	if err != nil {
		return err
	}
	h.msgs = append(h.msgs, m)
	return nil
}

// openState binds the object store that holds the state, creating it.
func openState(ctx context.Context, js jetstream.JetStream, cfg StateConfig) (jetstream.ObjectStore, error) {
	store, err := stage.OpenStateStore(ctx, js, cfg, "logminer state: template miner snapshots and count series")
	if err != nil {
		return nil, fmt.Errorf("logminer: %w", err)
	}
	return store, nil
}

// stateObjects is where the state and its outbox are kept: a
// stage.FencedObjects on the state bucket (openObjects). Its Put sends an
// object's meta only once every chunk was stored (nats.go's put does not
// wait for them: a put whose chunks were refused could land its meta, and
// leave an object no start could read), and refuses to write over what
// another instance claimed since this one restored (stage.ErrFenced).
type stateObjects interface {
	Claim(ctx context.Context, names ...string) error
	GetBytes(ctx context.Context, name string, opts ...jetstream.GetObjectOpt) ([]byte, error)
	Put(ctx context.Context, name string, data []byte) error
}

// openObjects binds the state bucket, creating it, for writes under
// compare-and-set.
func openObjects(ctx context.Context, js jetstream.JetStream, cfg StateConfig) (*stage.FencedObjects, error) {
	if _, err := openState(ctx, js, cfg); err != nil {
		return nil, err
	}
	objects, err := stage.NewFencedObjects(ctx, js, cfg.Bucket)
	if err != nil {
		return nil, fmt.Errorf("logminer: %w", err)
	}
	return objects, nil
}

// checkpointed is the logminer with its state kept in the object store:
// the runner restores the state before the first delivery and saves it
// every SaveEvery and after the drain. Without a state store the runner
// drives the logminer alone and saves nothing. It is a stage.Outbox: the
// samples and bursts of a minute the state no longer counts, which the
// stream had not stored, are saved beside the state (the object
// <key>.outbox) and sent after a restart.
type checkpointed struct{ *Logminer }

// Restore loads the saved outbox and state (loadState), claimed first: no
// other instance's save lands over what this one saves from now on (one
// still running on the same state key, or one stopping late in a rolling
// restart, whose saves are refused). A state the last
// stop saved is saved again at once: it says no tick published its
// interval, which this run's tick may do, and a crash before the next
// save would then publish that interval again from it.
func (c checkpointed) Restore(ctx context.Context) error {
	c.inFlight.Clear() // the restored outbox holds what was in flight
	c.counts.begin(c.now())
	c.restoredStopped = false
	if err := c.state.Claim(ctx, c.cfg.State.Key, stage.OutboxObject(c.cfg.State.Key)); err != nil {
		return fmt.Errorf("logminer: state %s: %w", c.cfg.State.Bucket, err)
	}
	if err := c.loadOutbox(ctx); err != nil {
		return err
	}
	if err := c.loadState(ctx); err != nil {
		return err
	}
	if c.restoredStopped {
		if err := c.Checkpoint(ctx); err != nil {
			c.log.Warn().Err(err).Msg("the state the stop saved not saved again at the start: the next save will")
		}
	}
	return nil
}

// Checkpoint saves the outbox, then the state (saveState). The outbox
// holds the tick outputs the runner handed over and the template events in
// flight when the state was taken.
func (c checkpointed) Checkpoint(ctx context.Context) error {
	c.emitMu.Lock()
	data, err := c.encodeState()
	flying := c.inFlight.Messages()
	c.emitMu.Unlock()
	if err != nil {
		return err
	}
	outbox := new(stage.HeldOutputs)
	outbox.Hold(append(slices.Clone(c.Held()), flying...))
	err = c.saveOutbox(ctx, outbox)
	if err == nil {
		err = c.saveState(ctx, data)
	}
	if errors.Is(err, stage.ErrFenced) {
		c.log.Warn().Err(err).Str("bucket", c.cfg.State.Bucket).Str("key", c.cfg.State.Key).
			Msg("state not saved: another logminer restored it since this one did (two instances on one state.key); the last one started keeps it")
	}
	return err
}

// Hold and Held are the outbox (stage.Outbox).
func (c checkpointed) Hold(msgs []bus.Message) { c.outbox.Hold(msgs) }
func (c checkpointed) Held() []bus.Message     { return c.outbox.Held() }

// loadOutbox restores the saved outbox, if there is one. As for the
// state, a read that fails for now stops the start (the next save would
// write over what it holds) and one that no read will get (undecodable,
// or naming chunks the bucket does not hold) is logged and ignored.
func (l *Logminer) loadOutbox(ctx context.Context) error {
	err := l.outbox.LoadFrom(ctx, l.state, l.cfg.State.Key)
	switch {
	case errors.Is(err, stage.ErrOutbox), errors.Is(err, stage.ErrBrokenObject):
		l.log.Error().Err(err).Str("bucket", l.cfg.State.Bucket).Msg("saved outbox unreadable: the samples it held are lost")
		l.metrics.stateLoadFailures.Add(1)
	case err != nil:
		return fmt.Errorf("logminer: state %s: %w", l.cfg.State.Bucket, err)
	}
	return nil
}

// saveOutbox writes the outputs held.
func (l *Logminer) saveOutbox(ctx context.Context, outbox *stage.HeldOutputs) error {
	data, err := outbox.MarshalBinary()
	if err == nil {
		err = l.state.Put(ctx, stage.OutboxObject(l.cfg.State.Key), data)
	}
	if err != nil {
		l.metrics.stateSaveFailures.Add(1)
		return fmt.Errorf("logminer: state %s: %w", l.cfg.State.Bucket, err)
	}
	return nil
}

// loadState restores the saved state, if there is one. A state that no
// read will get (undecodable, or naming chunks the bucket does not hold:
// stage.ErrBrokenObject) is logged and ignored: the miner relearns the
// templates from the next lines, and their ids, derived from the template
// text, come out the same. Refusing to start would stop log mining until
// an operator deletes the object. A read that fails for now (the server
// away) stops the start instead: started empty, the next save would
// replace a good state.
func (l *Logminer) loadState(ctx context.Context) error {
	data, err := l.state.GetBytes(ctx, l.cfg.State.Key)
	switch {
	case errors.Is(err, jetstream.ErrObjectNotFound):
		l.log.Info().Str("bucket", l.cfg.State.Bucket).Str("key", l.cfg.State.Key).Msg("no saved state: starting empty")
		return nil
	case errors.Is(err, stage.ErrBrokenObject):
		l.log.Error().Err(err).Str("bucket", l.cfg.State.Bucket).Str("key", l.cfg.State.Key).Msg("saved state unreadable: starting empty")
		l.metrics.stateLoadFailures.Add(1)
		return nil
	case err != nil:
		return fmt.Errorf("logminer: reading state %s/%s: %w", l.cfg.State.Bucket, l.cfg.State.Key, err)
	}
	if err := l.decodeState(data); err != nil {
		l.log.Error().Err(err).Str("bucket", l.cfg.State.Bucket).Str("key", l.cfg.State.Key).Msg("saved state unreadable: starting empty")
		l.metrics.stateLoadFailures.Add(1)
		return nil
	}
	st := l.miner.Stats()
	held, _, _ := l.counts.stats()
	l.log.Info().Int("templates", st.Templates).Int("series", held).Int("bytes", len(data)).Msg("state restored")
	return nil
}

// saveState writes a state encodeState took.
func (l *Logminer) saveState(ctx context.Context, data []byte) error {
	if l.state == nil {
		return nil
	}
	if err := l.state.Put(ctx, l.cfg.State.Key, data); err != nil {
		l.metrics.stateSaveFailures.Add(1)
		return fmt.Errorf("logminer: saving state %s/%s: %w", l.cfg.State.Bucket, l.cfg.State.Key, err)
	}
	l.metrics.stateSaves.Add(1)
	l.metrics.stateBytes.Store(int64(len(data)))
	return nil
}
