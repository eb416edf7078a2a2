package ingest

import (
	"context"

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
		return NewServer(cfg, BusPublisher{Publisher: pub}, log)
	})

// Main runs the ingest gateway with the flags in args (-config, -set).
var Main = platform.ServiceMain(Component)
