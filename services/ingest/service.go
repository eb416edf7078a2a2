package ingest

import (
	"context"

	"github.com/aiops-dev/aiops/pkg/bus"
	"github.com/aiops-dev/aiops/pkg/platform"
	"github.com/aiops-dev/aiops/pkg/service"
)

// ServiceConfig is the configuration of the ingest binary.
type ServiceConfig struct {
	platform.Config `yaml:",inline"`
	Ingest          ServerConfig `yaml:"ingest"`
}

// Validate names the field that is wrong.
func (c ServiceConfig) Validate() error {
	if err := c.Config.Validate(); err != nil {
		return err
	}
	return c.Ingest.Validate()
}

// Main runs the ingest gateway with the flags in args (-config, -set).
func Main(ctx context.Context, args []string) error {
	cfg := ServiceConfig{Config: platform.DefaultConfig()}
	if err := platform.LoadConfig("ingest", args, &cfg); err != nil {
		return err
	}
	p, err := platform.Open(ctx, "ingest", cfg.Config)
	if err != nil {
		return err
	}
	srv, err := NewComponent(p, cfg.Ingest)
	if err != nil {
		p.Close()
		return err
	}
	return p.Run(ctx, service.Named("ingest", srv))
}

// NewComponent builds the ingest server on a platform's bus connection.
func NewComponent(p *platform.Platform, cfg ServerConfig) (*Server, error) {
	pub, err := bus.NewPublisher(p.JS)
	if err != nil {
		return nil, err
	}
	return NewServer(cfg, BusPublisher{Publisher: pub}, p.Log.With().Str("component", "ingest").Logger())
}
