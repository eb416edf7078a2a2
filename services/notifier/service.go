package notifier

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
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
	// held are the incident events fetched and not settled, told in
	// progress while they wait (progress.go).
	held *heldMsgs
	log  zerolog.Logger
}

// GCInterval is how often long-expired silences are deleted.
const GCInterval = 15 * time.Minute

// New builds the notifier on js.
func New(ctx context.Context, js jetstream.JetStream, cfg Config, log zerolog.Logger, opts ...stage.OpenOption) (*Service, error) {
	proc, err := NewProcessor(cfg, log)
	if err != nil {
		return nil, err
	}
	records, err := bus.NewPublisher(js)
	if err != nil {
		return nil, err
	}
	proc.WithRecords(records)
	s := &Service{proc: proc, held: newHeldMsgs(), log: log}
	if s.silences, err = silence.Open(ctx, js, proc.cfg.Silences); err != nil {
		return nil, err
	}
	proc.WithSilences(s.silences)
	if proc.cfg.API.Listen != "" {
		if s.api, err = NewSilencesAPI(s.silences, proc.cfg.API, log); err != nil {
			s.silences.Close()
			return nil, err
		}
	}
	if s.lease, err = proc.cfg.Lease.Open(ctx, js, "notifier."+proc.cfg.Consumer.Durable); err != nil {
		s.silences.Close()
		return nil, fmt.Errorf("notifier: %w", err)
	}
	if s.Stage, err = stage.Open(ctx, trackingJS{JetStream: js, held: s.held}, proc, stage.Config{Name: "notifier", Workers: 1, TickEvery: time.Second, CheckpointTimeout: 30 * time.Second}, proc.cfg.Consumer, log, opts...); err != nil {
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
	// Held events are told in progress until the stage drained, not only
	// until ctx ends: the drain waits for the sends in flight.
	hctx, stopHeld := context.WithCancel(context.WithoutCancel(ctx))
	defer stopHeld()
	wg.Go(func() { s.held.keepInProgress(hctx, s.proc.cfg.Consumer.AckWait, s.log) })
	err := s.lease.Lead(actx, s.log, s.Stage.Run, nil)
	stopHeld()
	cancel()
	wg.Wait()
	if err == nil {
		err = apiErr
	}
	return err
}

// Silences is the service's silence store.
func (s *Service) Silences() *silence.Store { return s.silences }

// API is the silences API (nil without api.listen).
func (s *Service) API() *SilencesAPI { return s.api }
