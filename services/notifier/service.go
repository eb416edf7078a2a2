package notifier

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/bus"
	"github.com/aiops-dev/aiops/pkg/notify/silence"
	"github.com/aiops-dev/aiops/pkg/platform"
	"github.com/aiops-dev/aiops/pkg/service"
	"github.com/aiops-dev/aiops/pkg/stage"
)

// Component is the notifier as a platform component: section "notifier".
var Component = platform.NewComponent("notifier", func() Config { return Config{} }, false,
	func(ctx context.Context, p *platform.Platform, cfg Config, log zerolog.Logger) (service.Runner, error) {
		return New(ctx, p.JS, cfg, log)
	})

// Main runs the notifier service with the flags in args (-config, -set).
var Main = platform.ServiceMain(Component)

// Service is the notifier on JetStream: the stage that delivers incident
// events, the silences they are muted by (a key-value bucket every
// instance follows) and, with api.listen, the silences API.
type Service struct {
	*stage.Stage
	proc     *Processor
	silences *silence.Store
	api      *SilencesAPI // nil without api.listen
	lease    *bus.Lease   // nil with lease.disabled
	log      zerolog.Logger
	// terms fails /readyz with the error the last term ended with, until
	// a term reads the open incidents again.
	terms *service.LastFailure
	js    jetstream.JetStream // to look at the stream's span (watchStream)
}

// Checks is the notifier's readiness: not ready while its terms end in
// errors (the open incidents unreadable, say), which the lease's loop
// tries again for ever with nothing but its log to tell; ready again once
// another instance holds the lease (the failing one a standby like any
// other, whose failure a pod-not-ready alert would page for in vain).
func (s *Service) Checks() []service.Check {
	return []service.Check{s.terms.Check("its last term ended with an error, and it stands by until a term reads the open incidents", s.lease.HeldByAnother)}
}

// Addr is where the silences API listens (nil without one): the port
// bound when api.listen asks for any (port 0).
func (s *Service) Addr() net.Addr {
	if s.api == nil {
		return nil
	}
	return s.api.Addr()
}

// GCInterval is how often long-expired silences are deleted.
const GCInterval = 15 * time.Minute

// New builds the notifier on js.
func New(ctx context.Context, js jetstream.JetStream, cfg Config, log zerolog.Logger, opts ...stage.OpenOption) (*Service, error) {
	proc, err := NewProcessor(cfg, log)
	if err != nil {
		return nil, err
	}
	stream, err := js.Stream(ctx, proc.cfg.Consumer.Stream)
	if err != nil {
		return nil, fmt.Errorf("notifier: stream %s: %w", proc.cfg.Consumer.Stream, err)
	}
	if err := proc.holdWithin(proc.cfg.Consumer.Stream, stream.CachedInfo().Config.MaxAge, cfg.Delivery.MaxHold != 0); err != nil {
		return nil, err
	}
	proc.noteStream(spanOf(stream.CachedInfo()))
	records, err := bus.NewPublisher(js)
	if err != nil {
		return nil, err
	}
	proc.WithRecords(records)
	s := &Service{proc: proc, log: log, terms: service.NewLastFailure("notifier"), js: js}
	if s.silences, err = silence.Open(ctx, js, proc.cfg.Silences); err != nil {
		return nil, err
	}
	proc.WithSilences(s.silences)
	if !proc.cfg.State.Disabled {
		store, err := openKVStore(ctx, js, proc.cfg.State)
		if err != nil {
			s.silences.Close()
			return nil, err
		}
		proc.WithOpenStore(store)
		proc.keepJiraMemos(store.kv)
		proc.keepSentIn(store.kv)
	}
	if proc.cfg.API.Listen != "" {
		if s.api, err = NewSilencesAPI(s.silences, proc, proc.cfg.API, log); err != nil {
			s.silences.Close()
			return nil, err
		}
	}
	if s.lease, err = proc.cfg.Lease.Open(ctx, js, "notifier."+proc.cfg.Consumer.Durable); err != nil {
		s.silences.Close()
		return nil, fmt.Errorf("notifier: %w", err)
	}
	proc.holds = s.lease.Valid
	// An incident event is held until its notification went out, which
	// can take longer than ack_wait (a slow or failing receiver holds the
	// notes queued behind it): the consumer tells JetStream it is in
	// progress meanwhile, so it is neither redelivered while held nor
	// counted against max_deliver. Its settings on the server are applied
	// when this instance takes the lease, not by a standby: the holder
	// (an older build, in a rolling update) tells in progress every third
	// of its own ack_wait, and a shorter one set under it had the server
	// redeliver what it held.
	opts = append([]stage.OpenOption{stage.WithConsumerOptions(bus.WithInProgress(), bus.WithSettingsOnRun())}, opts...)
	if s.Stage, err = stage.Open(ctx, js, proc, stage.Config{Name: "notifier", Workers: 1, TickEvery: time.Second, DrainTimeout: drainTimeout, CheckpointTimeout: drainTimeout - time.Second}, proc.cfg.Consumer, log, opts...); err != nil {
		s.silences.Close()
		return nil, err
	}
	return s, nil
}

// Run delivers while this instance holds the lease, until ctx ends,
// serving the silences API and collecting long-expired silences all the
// while.
func (s *Service) Run(ctx context.Context) error {
	defer s.silences.Close()
	actx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	var apiErr error
	if s.api != nil {
		wg.Go(func() {
			if apiErr = s.api.Run(actx); apiErr != nil {
				cancel() // a listener that died takes the service down with it
			}
		})
	}
	wg.Go(func() { gcSilences(actx, s.silences, GCInterval, s.log) })
	wg.Go(func() { s.watchStream(actx, streamLookEvery) })
	// each term reads the open incidents first: the holder before may have
	// changed them; a lost lease stops writing them at once
	term := func(ctx context.Context) (err error) {
		defer func() {
			if err != nil && ctx.Err() == nil {
				s.terms.Failed(err)
			}
		}()
		if err := s.proc.restoreOpen(ctx); err != nil {
			return err
		}
		s.terms.Failed(nil)
		s.proc.restoreSentKeys(ctx)
		// the saver's last pass comes after the drain, which still
		// notifies events fetched before the stop; a lost lease stops its
		// writes (fenced) without it
		sctx, stopSaver := context.WithCancel(context.WithoutCancel(ctx))
		var saver sync.WaitGroup
		saver.Go(func() { s.proc.saveLoop(sctx) })
		err = s.Stage.Run(ctx)
		stopSaver()
		saver.Wait()
		return err
	}
	err := s.lease.Lead(actx, s.log, term, s.proc.leaseLost)
	cancel()
	wg.Wait()
	if err == nil {
		err = apiErr
	}
	return err
}

// streamLookEvery is how often the notifier looks at the span of the
// stream its incident events are on: well within the time a held event
// is given up before the stream would discard it (a tenth of its span).
const streamLookEvery = 30 * time.Second

// watchStream records the stream's span every interval until ctx ends; a
// look that fails keeps the last one.
func (s *Service) watchStream(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		stream, err := s.js.Stream(lctx, s.proc.cfg.Consumer.Stream)
		cancel()
		if err != nil {
			s.log.Debug().Err(err).Msg("looking at the stream's span failed; the last look holds")
			continue
		}
		s.proc.noteStream(spanOf(stream.CachedInfo()))
	}
}

// Silences is the service's silence store.
func (s *Service) Silences() *silence.Store { return s.silences }

// API is the silences API (nil without api.listen).
func (s *Service) API() *SilencesAPI { return s.api }

// holdWithin bounds max_hold by the max_age of the stream the incident
// events are on (0: unbounded), which drops an event held longer: one
// set (explicit) past nine tenths of it is refused, the default shortened
// to half of it, and every held event is given up on before it would be
// dropped (hold).
func (p *Processor) holdWithin(stream string, maxAge time.Duration, explicit bool) error {
	if maxAge <= 0 {
		return nil
	}
	p.maxAge = maxAge
	limit := maxAge - maxAge/10
	switch {
	case explicit && p.maxHold > limit:
		return fmt.Errorf("%w: notifier.delivery.max_hold %v: at most %v, nine tenths of stream %s's max_age (%v), so that an event held that long is dead-lettered before the stream drops it",
			ErrInvalidConfig, p.maxHold, limit, stream, maxAge)
	case !explicit && p.maxHold > maxAge/2:
		p.maxHold = maxAge / 2
	}
	return nil
}

// drainTimeout bounds a stop's wait for the sends in flight (the sink's
// flush gets a second less): longer than a webhook attempt's default
// timeout (webhook.DefaultTimeout), within the service's shutdown timeout
// with the consumer's fetch and flush of acks (stage.Open checks).
const drainTimeout = 16 * time.Second

// MaxSendTimeout bounds one webhook attempt (notifier.delivery.timeout, a
// webhook_config's timeout): within drainTimeout, so that a stop lets the
// attempts in flight end rather than cancel every one.
const MaxSendTimeout = drainTimeout - time.Second

// Collector is the stage's metrics and the notifier's own (metrics.go).
func (s *Service) Collector() prometheus.Collector {
	return stage.Collectors{s.Stage.Collector(), s.proc.m.collector()}
}
