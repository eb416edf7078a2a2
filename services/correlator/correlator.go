// Package correlator is the correlation service: it consumes alerts,
// anomalies (the detector's and the log miner's error bursts) and changes,
// groups them into incidents with pkg/correlate, and publishes every
// incident transition (opened, updated, acknowledged, resolved, reopened)
// as an incident event on events.incident.<service>, which the writer
// stores in incidents and incident_history and the notifier delivers.
//
// It runs on the stage runtime with one worker (the state is one), ticks
// every second to let event time move on while nothing arrives, and saves
// its state to a JetStream object store every few seconds and on shutdown.
package correlator

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/correlate"
	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/pkg/stage"
)

// Processor is the correlator as a stage.Processor and stage.Ticker; its
// state is one correlate.Correlator.
type Processor struct {
	cfg Config
	log zerolog.Logger
	now func() time.Time

	mu          sync.Mutex
	c           *correlate.Correlator
	lastArrival time.Time // wall clock of the last signal
	lastTick    time.Time
}

// NewProcessor builds the processor without a network: it reads the
// catalog and checks the rules.
func NewProcessor(cfg Config, log zerolog.Logger, now func() time.Time) (*Processor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	var cat *correlate.Catalog
	if cfg.Catalog != "" {
		var err error
		if cat, err = correlate.ReadCatalog(cfg.Catalog); err != nil {
			return nil, err
		}
	}
	c, err := correlate.New(cfg.Rules, cat)
	if err != nil {
		return nil, err
	}
	if now == nil {
		now = time.Now
	}
	return &Processor{cfg: cfg, log: log, now: now, c: c}, nil
}

// Process takes one event: alerts, anomalies and changes become signals;
// other kinds are acked and ignored (a filter that lets them through is
// harmless).
func (p *Processor) Process(_ context.Context, in *event.Envelope, out stage.Emitter) error {
	s, ok, err := correlate.SignalOf(in)
	if err != nil || !ok {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lastArrival = p.now()
	return p.emit(p.c.Observe(s), out)
}

func (p *Processor) emit(ups []correlate.Update, out stage.Emitter) error {
	observed := p.now().UTC()
	for _, u := range ups {
		e, err := correlate.Envelope(u, observed)
		if err != nil {
			return err
		}
		if err := out.Emit(stage.Output{Event: e}); err != nil {
			return err
		}
		p.log.Info().Str("incident_id", u.State.IncidentID).Str("transition", string(u.Transition)).
			Str("service", u.State.Service).Int("members", u.State.MemberCount).Msg("incident " + string(u.Transition))
	}
	return nil
}

// Tick lets event time move on with the wall clock while no signal
// arrives (see Config.IdleAdvance), resolving quiet incidents and
// publishing held updates.
func (p *Processor) Tick(_ context.Context, now time.Time, out stage.Emitter) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	step := now.Sub(p.lastTick)
	p.lastTick = now
	if p.lastArrival.IsZero() || now.Sub(p.lastArrival) < p.cfg.IdleAdvance || step <= 0 || p.c.Now().IsZero() {
		return nil
	}
	return p.emit(p.c.Advance(p.c.Now().Add(step)), out)
}

// Apply carries out a command on an incident and emits its event.
func (p *Processor) Apply(cmd correlate.Command, out stage.Emitter) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	u, err := p.c.Apply(cmd)
	if err != nil {
		return err
	}
	return p.emit([]correlate.Update{u}, out)
}

// Incidents returns the incidents in memory.
func (p *Processor) Incidents() []correlate.State {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.c.Incidents()
}

// snapshot and restore are the state as bytes.
func (p *Processor) snapshot() ([]byte, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.c.MarshalJSON()
}

func (p *Processor) restore(data []byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.c.UnmarshalJSON(data)
}

// durable adds saving the state to an object store.
type durable struct {
	*Processor
	store jetstream.ObjectStore
	key   string
}

// Restore loads the saved state, if any.
func (d durable) Restore(ctx context.Context) error {
	data, err := d.store.GetBytes(ctx, d.key)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("correlator: reading state %s/%s: %w", d.cfg.State.Bucket, d.key, err)
	}
	if err := d.restore(data); err != nil {
		return err
	}
	d.log.Info().Int("incidents", len(d.Incidents())).Msg("state restored")
	return nil
}

// Checkpoint saves the state.
func (d durable) Checkpoint(ctx context.Context) error {
	data, err := d.snapshot()
	if err != nil {
		return err
	}
	_, err = d.store.PutBytes(ctx, d.key, data)
	return err
}

// Service is the correlator wired to JetStream.
type Service struct {
	*stage.Stage
	proc *Processor
}

// New builds the correlator on js: the processor, its state store and its
// durable consumer.
func New(ctx context.Context, js jetstream.JetStream, cfg Config, log zerolog.Logger, opts ...stage.OpenOption) (*Service, error) {
	proc, err := NewProcessor(cfg, log, nil)
	if err != nil {
		return nil, err
	}
	cfg = proc.cfg
	var run any = proc
	scfg := stage.Config{Name: "correlator", Workers: 1, TickEvery: time.Second}
	if !cfg.State.Disabled {
		store, err := js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
			Bucket: cfg.State.Bucket, Description: "aiops correlator state: incidents and their members",
			Storage: jetstream.FileStorage,
		})
		if err != nil {
			return nil, fmt.Errorf("correlator: object store %s: %w", cfg.State.Bucket, err)
		}
		run = durable{Processor: proc, store: store, key: cfg.State.Key}
		scfg.CheckpointEvery = cfg.State.SaveEvery
	}
	st, err := stage.Open(ctx, js, run, scfg, cfg.Consumer, log, opts...)
	if err != nil {
		return nil, err
	}
	return &Service{Stage: st, proc: proc}, nil
}

// Processor is the service's processor (its incidents, commands).
func (s *Service) Processor() *Processor { return s.proc }

// Collector exports the runtime's and the consumer's metrics.
func (s *Service) Collector() prometheus.Collector { return s.Stage.Collector() }
