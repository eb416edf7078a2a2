package notifier

import (
	"context"

	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/platform"
	"github.com/aiops-dev/aiops/pkg/service"
)

// Component is the notifier as a platform component: section "notifier".
var Component = platform.NewComponent("notifier", func() Config { return Config{} }, false,
	func(ctx context.Context, p *platform.Platform, cfg Config, log zerolog.Logger) (service.Runner, error) {
		return New(ctx, p.JS, cfg, log)
	})

// Main runs the notifier service with the flags in args (-config, -set).
var Main = platform.ServiceMain(Component)
