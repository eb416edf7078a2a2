package ingest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/bus"
	"github.com/aiops-dev/aiops/pkg/platform"
	"github.com/aiops-dev/aiops/pkg/service"
)

// Component is the ingest gateway as a platform component: section
// "ingest", on the platform's bus connection.
var Component = platform.NewComponent("ingest", func() ServerConfig { return ServerConfig{} }, false,
	func(ctx context.Context, p *platform.Platform, cfg ServerConfig, log zerolog.Logger) (service.Runner, error) {
		pub, err := bus.NewPublisher(p.JS)
		if err != nil {
			return nil, err
		}
		if s, err := p.JS.Stream(ctx, bus.StreamEvents); err == nil {
			if warning := storeRoomWarning(s.CachedInfo().Config.MaxBytes, cfg.Config.withDefaults()); warning != "" {
				log.Warn().Msg(warning)
			}
		}
		measure, streamRead := busStoreBacklog(ctx, p.JS, cfg.StoreConsumerName(), log)
		return NewServer(cfg, BusPublisher{Publisher: pub}, log,
			WithStoreBacklog(measure, storeBacklogEvery, streamRead))
	})

// storeRoomWarning tells when EVENTS, of maxBytes, leaves less room above
// the backlog the gateway refuses at (max_store_backlog) than one request
// may publish (max_expanded_bytes): that room takes what the gateway
// cannot count before it is stored, other gateways' requests in flight
// and the log miner's copies, which could then push out events the writer
// has not stored. "" when there is room, or no byte bound.
func storeRoomWarning(maxBytes int64, cfg Config) string {
	if maxBytes <= 0 {
		return ""
	}
	room := int64(float64(maxBytes) * (1 - cfg.MaxStoreBacklog))
	if room >= cfg.MaxExpandedBytes {
		return ""
	}
	return fmt.Sprintf("EVENTS holds %d bytes, and above ingest.max_store_backlog %g of it %d are left, under one request's "+
		"ingest.max_expanded_bytes %d: other gateways' requests taken just under the bound may push out events not yet stored; "+
		"raise streams.max_bytes or lower ingest.max_expanded_bytes or ingest.max_store_backlog", maxBytes, cfg.MaxStoreBacklog, room, cfg.MaxExpandedBytes)
}

// storeBacklogEvery is how often the gateway looks at the writer's backlog
// while it is small (WithStoreBacklog): two requests to the server (the
// stream's state and the writer's: bus.StreamSizes.Backlog). A test
// looks at every request.
var storeBacklogEvery = time.Second

// busStoreBacklog measures the store consumer's backlog on EVENTS, its
// unacked events weighed at what they take: the gateway follows the
// sizes of EVENTS' messages (bus.StreamSizes) until ctx ends. Without
// that (EVENTS not there yet), it weighs them from a few read at each
// look (bus.ConsumerBacklog), which reads low when large events are a
// minority of them and most of their bytes. When there is no such
// consumer its error (ErrNoStoreConsumer) names the consumers there
// are, among which the writer's. streamRead is what EVENTS took as
// followed (bus.StreamSizes.ReadBytes), nil when it is not followed.
func busStoreBacklog(ctx context.Context, js jetstream.JetStream, durable string, log zerolog.Logger) (measure StoreBacklog, streamRead func() uint64) {
	look := func(ctx context.Context) (bus.Backlog, error) {
		return bus.ConsumerBacklog(ctx, js, bus.StreamEvents, durable)
	}
	if sizes, err := bus.FollowSizes(ctx, js, bus.StreamEvents); err != nil {
		log.Warn().Err(err).Msg("weighing the events the writer has not stored from a few of them read at each look, which reads low when large events are a minority of them")
	} else {
		context.AfterFunc(ctx, sizes.Stop)
		look = func(ctx context.Context) (bus.Backlog, error) { return sizes.Backlog(ctx, durable) }
		streamRead = sizes.ReadBytes
	}
	return func(ctx context.Context) (float64, int64, error) {
		b, err := look(ctx)
		if errors.Is(err, jetstream.ErrConsumerNotFound) {
			return 0, 0, noStoreConsumer(ctx, js, durable)
		}
		return b.Ratio, b.StreamMaxBytes, err
	}, streamRead
}

// noStoreConsumer says that EVENTS has no consumer durable, and which it
// has.
func noStoreConsumer(ctx context.Context, js jetstream.JetStream, durable string) error {
	there := "it has none"
	if names, err := consumerNames(ctx, js, bus.StreamEvents); err != nil {
		there = "its consumers could not be listed: " + err.Error()
	} else if len(names) > 0 {
		there = "its consumers: " + strings.Join(names, ", ")
	}
	return fmt.Errorf("%w: ingest.store_consumer is %q, and %s has no consumer of that name (%s): "+
		"set ingest.store_consumer to the writer's writer.consumer.durable, or start the writer if it has not run yet; "+
		"until then the gateway cannot bound the events the writer has not stored (ingest.max_store_backlog), and a long ClickHouse outage discards events it accepted",
		ErrNoStoreConsumer, durable, bus.StreamEvents, there)
}

// consumerNames lists stream's consumers, sorted.
func consumerNames(ctx context.Context, js jetstream.JetStream, stream string) ([]string, error) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return nil, err
	}
	lister := s.ConsumerNames(ctx)
	var names []string
	for name := range lister.Name() {
		names = append(names, name)
	}
	if err := lister.Err(); err != nil {
		return nil, err
	}
	slices.Sort(names)
	return names, nil
}

// Main runs the ingest gateway with the flags in args (-config, -set).
var Main = platform.ServiceMain(Component)
