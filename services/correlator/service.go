package correlator

import (
	"context"

	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/platform"
	"github.com/aiops-dev/aiops/pkg/service"
)

// Component is the correlator as a platform component: section "correlator".
var Component = platform.NewComponent("correlator", func() Config { return Config{} }, false,
	func(ctx context.Context, p *platform.Platform, cfg Config, log zerolog.Logger) (service.Runner, error) {
		return New(ctx, p.JS, cfg, log)
	})

// Main runs the correlator service with the flags in args (-config, -set).
var Main = platform.ServiceMain(Component)
