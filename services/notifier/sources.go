package notifier

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"

	"github.com/nats-io/nats.go/jetstream"
)

// The open incidents are what inhibits: an incident is held back while
// another open incident matches an inhibit rule's source. The correlator
// sends an incident's events only when it changes, so a notifier that
// knew them only in memory forgot, at every restart (or when a standby
// took the lease), every incident that inhibits, and paged for what they
// inhibit until each one's next event. The open incidents' labels are
// kept in a key-value bucket (StateConfig), written when they change,
// before the event that changed them can be acked, and read before the
// first event after a start.

// StateConfig is the key-value bucket of the open incidents' labels.
type StateConfig struct {
	// Bucket is the JetStream key-value bucket (default "notifier_state").
	Bucket string `yaml:"bucket"`
	// Replicas of the bucket on a NATS cluster (default 1).
	Replicas int `yaml:"replicas"`
	// Disabled keeps the open incidents in memory only: a restart forgets
	// which of them inhibit.
	Disabled bool `yaml:"disabled"`
}

// WithDefaults fills what is unset.
func (c StateConfig) WithDefaults() StateConfig {
	if c.Bucket == "" {
		c.Bucket = "notifier_state"
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	return c
}

// Validate names the key that is wrong.
func (c StateConfig) Validate() error {
	if c.Replicas < 0 || c.Replicas > 5 {
		return fmt.Errorf("replicas: %d is not in [1,5]", c.Replicas)
	}
	return nil
}

// MaxOpen bounds the open incidents the notifier keeps for inhibition;
// past it an incident's opening inhibits nothing (counted in the log).
const MaxOpen = 100_000

// openIncident is what the notifier keeps of an open incident: the labels
// it is routed by, and its revision, so that an older state of it that
// comes again changes nothing.
type openIncident struct {
	ID       string            `json:"id"`
	Labels   map[string]string `json:"labels"`
	Revision int               `json:"revision"`
}

// OpenStore keeps the open incidents across restarts.
type OpenStore interface {
	Put(ctx context.Context, inc openIncident) error
	Delete(ctx context.Context, id string) error
	// All returns every incident kept.
	All(ctx context.Context) ([]openIncident, error)
}

// kvOpen is an OpenStore on a JetStream key-value bucket: one key per open
// incident, deleted once it resolved.
type kvOpen struct{ kv jetstream.KeyValue }

// openKVStore creates (or updates) the bucket of cfg.
func openKVStore(ctx context.Context, js jetstream.JetStream, cfg StateConfig) (*kvOpen, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      cfg.Bucket,
		Description: "aiops notifier: the labels of the open incidents, which inhibit (key open.<incident id>)",
		History:     1,
		Replicas:    cfg.Replicas,
		Storage:     jetstream.FileStorage,
	})
	if err != nil {
		return nil, fmt.Errorf("notifier: bucket %s: %w", cfg.Bucket, err)
	}
	return &kvOpen{kv}, nil
}

// openKey is the key of incident id: the id when it is a valid key token
// (the correlator's are), else a hash of it.
func openKey(id string) string {
	ok := id != "" && len(id) <= 128
	for i := 0; ok && i < len(id); i++ {
		c := id[i]
		ok = c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-' || c == '_' || c == '='
	}
	if ok {
		return "open." + id
	}
	h := fnv.New64a()
	h.Write([]byte(id))
	return fmt.Sprintf("open.h-%016x", h.Sum64())
}

func (s *kvOpen) Put(ctx context.Context, inc openIncident) error {
	data, err := json.Marshal(inc)
	if err != nil {
		return err
	}
	_, err = s.kv.Put(ctx, openKey(inc.ID), data)
	return err
}

func (s *kvOpen) Delete(ctx context.Context, id string) error {
	err := s.kv.Delete(ctx, openKey(id))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil
	}
	return err
}

func (s *kvOpen) All(ctx context.Context) ([]openIncident, error) {
	lister, err := s.kv.ListKeys(ctx)
	if err != nil {
		return nil, err
	}
	var out []openIncident
	for key := range lister.Keys() {
		e, err := s.kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue // resolved meanwhile
		}
		if err != nil {
			return nil, err
		}
		var inc openIncident
		if err := json.Unmarshal(e.Value(), &inc); err != nil || inc.ID == "" {
			continue // not ours; the next put of that incident mends it
		}
		out = append(out, inc)
	}
	return out, nil
}

// WithOpenStore keeps the open incidents in store, read by Restore.
func (p *Processor) WithOpenStore(store OpenStore) *Processor {
	p.store = store
	return p
}

// trackOpen records the state of incident id (its labels, resolved or not,
// at revision) as what it inhibits by, and reports whether what is kept of
// it changed. An older revision than the one kept changes nothing. p.mu is
// held.
func (p *Processor) trackOpen(id string, labels map[string]string, resolved bool, revision int) bool {
	old, had := p.open[id]
	switch {
	case had && revision < old.Revision:
		return false // an older state, come again
	case resolved && !had:
		return false
	case resolved:
		delete(p.open, id)
		p.trackSource(id, nil, true)
		return true
	case !had && len(p.open) >= MaxOpen:
		if !p.loggedFull {
			p.loggedFull = true
			p.log.Error().Int("max", MaxOpen).Msg("too many open incidents: the newest inhibit nothing")
		}
		return false
	}
	p.open[id] = openIncident{ID: id, Labels: labels, Revision: revision}
	p.trackSource(id, labels, false)
	return !had || !maps.Equal(old.Labels, labels)
}

// saveOpen writes what changed of the open incidents to the store; what
// fails is written at the next event or checkpoint.
func (p *Processor) saveOpen(ctx context.Context) error {
	if p.store == nil {
		return nil
	}
	p.saveMu.Lock()
	defer p.saveMu.Unlock()
	p.mu.Lock()
	todo := make(map[string]*openIncident, len(p.unsaved))
	for id := range p.unsaved {
		if inc, ok := p.open[id]; ok {
			todo[id] = &inc
		} else {
			todo[id] = nil
		}
	}
	clear(p.unsaved)
	p.mu.Unlock()
	var failed []string
	var errs []error
	for id, inc := range todo {
		var err error
		if inc == nil {
			err = p.store.Delete(ctx, id)
		} else {
			err = p.store.Put(ctx, *inc)
		}
		if err != nil {
			failed = append(failed, id)
			errs = append(errs, err)
		}
	}
	if len(failed) == 0 {
		return nil
	}
	p.mu.Lock()
	for _, id := range failed {
		p.unsaved[id] = struct{}{}
	}
	p.mu.Unlock()
	return fmt.Errorf("notifier: %d open incidents not saved (retried): %w", len(failed), errors.Join(errs...))
}

// Restore reads the open incidents kept (the stage.Checkpointer side: before
// the first event).
func (p *Processor) Restore(ctx context.Context) error {
	if p.store == nil {
		return nil
	}
	all, err := p.store.All(ctx)
	if err != nil {
		return fmt.Errorf("notifier: open incidents: %w", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, inc := range all {
		p.trackOpen(inc.ID, inc.Labels, false, inc.Revision)
	}
	p.log.Info().Int("open_incidents", len(all)).Msg("open incidents restored")
	return nil
}

// Checkpoint writes the open incidents whose write failed.
func (p *Processor) Checkpoint(ctx context.Context) error { return p.saveOpen(ctx) }
