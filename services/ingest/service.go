package ingest

import (
	"context"
	"time"

	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/bus"
	"github.com/aiops-dev/aiops/pkg/platform"
	"github.com/aiops-dev/aiops/pkg/service"
)

// Component is the ingest gateway as a platform component: section
// "ingest", on the platform's bus connection.
var Component = platform.NewComponent("ingest", func() ServerConfig { return ServerConfig{} }, false,
	func(_ context.Context, p *platform.Platform, cfg ServerConfig, log zerolog.Logger) (service.Runner, error) {
		pub, err := bus.NewPublisher(p.JS)
		if err != nil {
			return nil, err
		}
		return NewServer(cfg, BusPublisher{Publisher: pub}, log, WithStoreBacklog(busStoreBacklog(p, cfg.StoreConsumerName()), storeBacklogEvery))
	})

// storeBacklogEvery is how often the gateway looks at the writer's backlog
// while it is small (WithStoreBacklog): two requests to the server. A test
// looks at every request.
var storeBacklogEvery = time.Second

// busStoreBacklog measures the store consumer's backlog on EVENTS.
func busStoreBacklog(p *platform.Platform, durable string) StoreBacklog {
	return func(ctx context.Context) (float64, error) {
		b, err := bus.ConsumerBacklog(ctx, p.JS, bus.StreamEvents, durable)
		return b.Ratio, err
	}
}

// Main runs the ingest gateway with the flags in args (-config, -set).
var Main = platform.ServiceMain(Component)
