package silence

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/aiops-dev/aiops/pkg/bus"

	"github.com/aiops-dev/aiops/pkg/config"
	"github.com/aiops-dev/aiops/pkg/notify/amconfig"
)

// Errors of Store.
var (
	// ErrNotFound: no silence has that id.
	ErrNotFound = errors.New("silence not found")
	// ErrTooMany: the store holds MaxSilences silences, the expired ones
	// it still keeps (for the retention) included, as Alertmanager counts
	// them.
	ErrTooMany = errors.New("too many silences")
)

// ErrInvalidConfig is wrapped by Config.Validate's errors.
var ErrInvalidConfig = fmt.Errorf("silence: %w", config.ErrInvalidConfig)

// Config is where silences are kept and for how long.
type Config struct {
	// Bucket is the JetStream key-value bucket (default "silences").
	Bucket string `yaml:"bucket"`
	// Replicas of the bucket on a NATS cluster (default 1).
	Replicas int `yaml:"replicas"`
	// Retention keeps an expired silence this long, to be listed and
	// copied (default 120h, as Alertmanager).
	Retention time.Duration `yaml:"retention"`
	// MaxSilences bounds the silences kept (default 10,000), the expired
	// ones still retained included, as Alertmanager's
	// --silences.max-silences does: counting only those not expired would
	// let a client that creates and expires silences in a loop grow the
	// bucket without bound for the retention. A new silence (or an edit
	// that makes one) is refused at the bound; an edit in place is not.
	MaxSilences int `yaml:"max_silences"`
	// MaxBytes bounds the silences kept together (default 64 MiB), each
	// counted as its text plus the programs its regular expressions
	// compile to (Cost): 10,000 silences of the largest size one may have
	// would hold gigabytes, in the bucket and in every instance's memory.
	// A new silence or an edit is refused past it, as at MaxSilences.
	MaxBytes int `yaml:"max_bytes"`
}

// WithDefaults fills what is unset.
func (c Config) WithDefaults() Config {
	if c.Bucket == "" {
		c.Bucket = "silences"
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.Retention == 0 {
		c.Retention = 120 * time.Hour
	}
	if c.MaxSilences == 0 {
		c.MaxSilences = 10_000
	}
	if c.MaxBytes == 0 {
		c.MaxBytes = 64 << 20
	}
	return c
}

// Validate names the key that is wrong.
func (c Config) Validate() error {
	c = c.WithDefaults()
	switch {
	case c.Replicas < 1 || c.Replicas > 5:
		return fmt.Errorf("%w: replicas: %d, want 1 to 5", ErrInvalidConfig, c.Replicas)
	case c.Retention < 0:
		return fmt.Errorf("%w: retention: %s is negative", ErrInvalidConfig, c.Retention)
	case c.MaxSilences < 0:
		return fmt.Errorf("%w: max_silences: %d is negative", ErrInvalidConfig, c.MaxSilences)
	case c.MaxBytes < 0:
		return fmt.Errorf("%w: max_bytes: %d is negative", ErrInvalidConfig, c.MaxBytes)
	}
	return nil
}

// Store keeps silences in a JetStream key-value bucket, one key per
// silence. Writes go to the bucket with the revision they read, so two
// instances editing one silence never overwrite each other; every
// instance keeps a copy of all silences, kept current by a watch, for the
// hot path (Mutes).
type Store struct {
	kv  jetstream.KeyValue
	cfg Config
	now func() time.Time

	mu    sync.RWMutex
	byID  map[string]*entry
	bytes int // the Cost of every silence in byID

	stop context.CancelFunc
	done chan struct{}
}

type entry struct {
	*compiled
	rev uint64
}

// Option configures Open.
type Option func(*Store)

// WithClock replaces time.Now (tests).
func WithClock(now func() time.Time) Option { return func(s *Store) { s.now = now } }

// Open binds the bucket (creating it) and loads every silence; the copy
// follows the bucket until Close.
func Open(ctx context.Context, js jetstream.JetStream, cfg Config, opts ...Option) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	kvc := jetstream.KeyValueConfig{
		Bucket:      cfg.Bucket,
		Description: "aiops silences (Alertmanager API v2 shape), one key per silence id",
		History:     1,
		Replicas:    cfg.Replicas,
		Storage:     jetstream.FileStorage,
	}
	kv, err := bus.AskAgain(ctx, func() (jetstream.KeyValue, error) { return js.CreateOrUpdateKeyValue(ctx, kvc) })
	if err != nil {
		return nil, fmt.Errorf("silence: bucket %s: %w", cfg.Bucket, err)
	}
	s := &Store{kv: kv, cfg: cfg, now: time.Now, byID: map[string]*entry{}, done: make(chan struct{})}
	for _, o := range opts {
		o(s)
	}
	wctx, stop := context.WithCancel(context.Background())
	s.stop = stop
	w, err := kv.WatchAll(wctx)
	if err != nil {
		stop()
		return nil, fmt.Errorf("silence: watching %s: %w", cfg.Bucket, err)
	}
	// The watch first replays every key, then a nil marks the end of it.
	for loaded := false; !loaded; {
		select {
		case u, ok := <-w.Updates():
			if !ok {
				stop()
				return nil, fmt.Errorf("silence: watching %s: ended while loading", cfg.Bucket)
			}
			if u == nil {
				loaded = true
				break
			}
			s.apply(u)
		case <-ctx.Done():
			stop()
			return nil, ctx.Err()
		}
	}
	go func() {
		defer close(s.done)
		defer w.Stop()
		for u := range w.Updates() {
			if u != nil {
				s.apply(u)
			}
		}
	}()
	return s, nil
}

// Close stops following the bucket.
func (s *Store) Close() {
	s.stop()
	<-s.done
}

// apply keeps the copy in step with one change of the bucket; a change
// older than what the copy has (this instance's own write, seen again) is
// skipped.
func (s *Store) apply(u jetstream.KeyValueEntry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur, ok := s.byID[u.Key()]; ok && cur.rev >= u.Revision() {
		return
	}
	if u.Operation() != jetstream.KeyValuePut {
		s.drop(u.Key())
		return
	}
	var sil Silence
	if err := json.Unmarshal(u.Value(), &sil); err != nil {
		return // not a silence: nobody but the store writes this bucket
	}
	c, err := compile(sil)
	if err != nil {
		return
	}
	s.put(u.Key(), &entry{compiled: c, rev: u.Revision()})
}

func (s *Store) keep(c *compiled, rev uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur, ok := s.byID[c.ID]; ok && cur.rev >= rev {
		return
	}
	s.put(c.ID, &entry{compiled: c, rev: rev})
}

// put and drop change byID and its bytes together; s.mu is held.
func (s *Store) put(id string, e *entry) {
	s.drop(id)
	s.byID[id] = e
	s.bytes += e.cost
}

func (s *Store) drop(id string) {
	if e, ok := s.byID[id]; ok {
		s.bytes -= e.cost
		delete(s.byID, id)
	}
}

// room fails when a silence of cost bytes, kept under id, would take the
// silences past MaxBytes (what id holds now is freed by it).
func (s *Store) room(id string, cost int) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	total := s.bytes + cost
	if e, ok := s.byID[id]; ok {
		total -= e.cost
	}
	if total > s.cfg.MaxBytes {
		return fmt.Errorf("%w: %d bytes kept, this silence (%d bytes, counting its regular expressions' programs) would take them past %d (silences.max_bytes); expired silences count until they are deleted, %v after they ended (silences.retention)",
			ErrTooMany, s.bytes, cost, s.cfg.MaxBytes, s.cfg.Retention)
	}
	return nil
}

// read is the silence as the bucket has it now, with its revision.
func (s *Store) read(ctx context.Context, id string) (*Silence, uint64, error) {
	e, err := s.kv.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrInvalidKey) {
		return nil, 0, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil {
		return nil, 0, err
	}
	var sil Silence
	if err := json.Unmarshal(e.Value(), &sil); err != nil {
		return nil, 0, fmt.Errorf("silence %s: stored value: %w", id, err)
	}
	return &sil, e.Revision(), nil
}

// write stores sil under its id: created when rev is 0, else only if the
// bucket still holds revision rev.
func (s *Store) write(ctx context.Context, sil *Silence, rev uint64) error {
	c, err := compile(*sil)
	if err != nil {
		return err
	}
	data, err := json.Marshal(sil)
	if err != nil {
		return err
	}
	if rev == 0 {
		rev, err = s.kv.Create(ctx, sil.ID, data)
	} else {
		rev, err = s.kv.Update(ctx, sil.ID, data, rev)
	}
	if err != nil {
		return err
	}
	s.keep(c, rev)
	return nil
}

// Set stores a silence as Alertmanager's API does and returns its id.
// Without an id it is new. With one, it edits that silence in place when
// canUpdate allows; otherwise the old one is expired and the edit becomes
// a new silence with a new id. A new silence does not start in the past.
func (s *Store) Set(ctx context.Context, sil Silence) (string, error) {
	now := s.nowMS()
	// Times are kept to the millisecond, as the API writes them, so that
	// a client sending back what it read (amtool silence update) sends
	// the same start.
	sil.StartsAt, sil.EndsAt = sil.StartsAt.UTC().Truncate(time.Millisecond), sil.EndsAt.UTC().Truncate(time.Millisecond)
	sil.UpdatedAt = now
	if err := sil.Validate(); err != nil {
		return "", err
	}
	for attempt := 0; ; attempt++ {
		id, err := s.set(ctx, sil, now)
		if !conflict(err) || attempt == maxAttempts {
			return id, err
		}
		// Another instance wrote the same silence between our read and
		// our write: read it again.
		backoff(attempt)
	}
}

func (s *Store) set(ctx context.Context, sil Silence, now time.Time) (string, error) {
	var prev *Silence
	var rev uint64
	if sil.ID != "" {
		var err error
		if prev, rev, err = s.read(ctx, sil.ID); err != nil {
			return "", err
		}
		if canUpdate(prev, &sil, now) {
			if err := s.room(sil.ID, Cost(sil)); err != nil {
				return "", err
			}
			return sil.ID, s.write(ctx, &sil, rev)
		}
	}
	// A new silence, or an edit that replaces one: there must be room for
	// it before the one it replaces is expired (which frees none).
	if n := s.count(); n >= s.cfg.MaxSilences {
		return "", fmt.Errorf("%w: %d kept, at most %d (silences.max_silences); expired silences count until they are deleted, %v after they ended (silences.retention)",
			ErrTooMany, n, s.cfg.MaxSilences, s.cfg.Retention)
	}
	if err := s.room("", Cost(sil)); err != nil {
		return "", err
	}
	if prev != nil && prev.StateAt(now) != StateExpired {
		if err := s.expire(ctx, prev, rev, now); err != nil {
			return "", fmt.Errorf("expire previous silence: %w", err)
		}
	}
	sil.ID = newUUID()
	if sil.StartsAt.Before(now) {
		sil.StartsAt = now
	}
	return sil.ID, s.write(ctx, &sil, 0)
}

// Expire ends a silence now: an active one ends, a pending one never
// starts (both its times become now), an expired one stays as it is.
func (s *Store) Expire(ctx context.Context, id string) error {
	for attempt := 0; ; attempt++ {
		now := s.nowMS()
		sil, rev, err := s.read(ctx, id)
		if err == nil {
			err = s.expire(ctx, sil, rev, now)
		}
		if !conflict(err) || attempt == maxAttempts {
			return err
		}
		backoff(attempt)
	}
}

func (s *Store) expire(ctx context.Context, sil *Silence, rev uint64, now time.Time) error {
	switch sil.StateAt(now) {
	case StateExpired:
		return nil // expiring is idempotent: the silence stays as it ended
	case StatePending:
		sil.StartsAt = now
	}
	sil.EndsAt = now
	sil.UpdatedAt = now
	return s.write(ctx, sil, rev)
}

func (s *Store) nowMS() time.Time { return s.now().UTC().Truncate(time.Millisecond) }

// Get is one silence from this instance's copy.
func (s *Store) Get(id string) (Silence, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	e, ok := s.byID[id]
	if !ok {
		return Silence{}, false
	}
	return clone(e.Silence), true
}

// List is every silence the filter passes (MatchesFilter), in
// Alertmanager's order.
func (s *Store) List(filter amconfig.Matchers) []Silence {
	s.mu.RLock()
	out := make([]Silence, 0, len(s.byID))
	for _, e := range s.byID {
		if e.MatchesFilter(filter) {
			out = append(out, clone(e.Silence))
		}
	}
	s.mu.RUnlock()
	Sort(out, s.now())
	return out
}

// Mutes returns the ids of the silences active at t whose matchers all
// match labels, sorted; none means the notification goes out.
func (s *Store) Mutes(labels map[string]string, t time.Time) []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var ids []string
	for id, e := range s.byID {
		if e.StateAt(t) == StateActive && e.ms.Matches(labels) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// count is the number of silences kept, expired ones included.
func (s *Store) count() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.byID)
}

// GC deletes the silences that expired more than the retention ago and
// returns how many. Instances may run it at once: a delete only applies
// to the revision it read.
func (s *Store) GC(ctx context.Context) (int, error) {
	cutoff := s.now().Add(-s.cfg.Retention)
	s.mu.RLock()
	type old struct {
		id  string
		rev uint64
	}
	var olds []old
	for id, e := range s.byID {
		if e.EndsAt.Before(cutoff) {
			olds = append(olds, old{id, e.rev})
		}
	}
	s.mu.RUnlock()
	n := 0
	for _, o := range olds {
		err := s.kv.Purge(ctx, o.id, jetstream.LastRevision(o.rev))
		if conflict(err) {
			continue // edited meanwhile
		}
		if err != nil {
			return n, err
		}
		s.mu.Lock()
		s.drop(o.id)
		s.mu.Unlock()
		n++
	}
	return n, nil
}

// maxAttempts bounds the retries of a write that lost a race.
const maxAttempts = 10

// backoff waits a random while, longer after each lost race, so writers
// racing for one silence do not keep colliding.
func backoff(attempt int) {
	time.Sleep(time.Duration(mrand.Int64N(int64(time.Millisecond) << min(attempt, 6))))
}

// conflict reports a write refused because the key changed since it was
// read (Update's revision check) or was created meanwhile (Create).
func conflict(err error) bool {
	return errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists)
}

func clone(s Silence) Silence {
	s.Matchers = slices.Clone(s.Matchers)
	return s
}

// newUUID is a random (version 4) UUID, the form Alertmanager gives
// silence ids.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
