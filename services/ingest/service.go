package ingest

import (
	"context"
	"fmt"
	"time"

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
		return NewServer(cfg, BusPublisher{Publisher: pub}, log, WithStoreBacklog(busStoreBacklog(p, cfg.StoreConsumerName()), storeBacklogEvery))
	})

// storeRoomWarning tells when EVENTS, of maxBytes, leaves less room above
// the backlog the gateway refuses at (max_store_backlog) than one request
// may publish (max_expanded_bytes): the guard looks before a request, so
// a request accepted just under the bound could then push out events the
// writer has not stored. "" when there is room, or no byte bound.
func storeRoomWarning(maxBytes int64, cfg Config) string {
	if maxBytes <= 0 {
		return ""
	}
	room := int64(float64(maxBytes) * (1 - cfg.MaxStoreBacklog))
	if room >= cfg.MaxExpandedBytes {
		return ""
	}
	return fmt.Sprintf("EVENTS holds %d bytes, and above ingest.max_store_backlog %g of it %d are left, under one request's "+
		"ingest.max_expanded_bytes %d: a request taken just under the bound may push out events not yet stored; "+
		"raise streams.max_bytes or lower ingest.max_expanded_bytes or ingest.max_store_backlog", maxBytes, cfg.MaxStoreBacklog, room, cfg.MaxExpandedBytes)
}

// storeBacklogEvery is how often the gateway looks at the writer's backlog
// while it is small (WithStoreBacklog): seven requests to the server (the
// stream's state, the writer's, and a few of its unacked messages to
// weigh them: bus.ConsumerBacklog). A test
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
