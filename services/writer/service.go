package writer

import (
	"context"

	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/platform"
	"github.com/aiops-dev/aiops/pkg/service"
)

// Component is the writer as a platform component: section "writer",
// needs ClickHouse.
var Component = platform.NewComponent("writer", func() Config { return Config{} }, true,
	func(ctx context.Context, p *platform.Platform, cfg Config, log zerolog.Logger) (service.Runner, error) {
		return New(ctx, p.JS, p.Store.Conn, cfg, log)
	})

// Main runs the writer service with the flags in args (-config, -set).
var Main = platform.ServiceMain(Component)
