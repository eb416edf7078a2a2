package writer

import (
	"context"

	"github.com/aiops-dev/aiops/pkg/platform"
	"github.com/aiops-dev/aiops/pkg/service"
)

// ServiceConfig is the configuration of the writer binary.
type ServiceConfig struct {
	platform.Config `yaml:",inline"`
	Writer          Config `yaml:"writer"`
}

// Validate names the field that is wrong.
func (c ServiceConfig) Validate() error {
	if err := c.Config.Validate(); err != nil {
		return err
	}
	return c.Writer.Validate()
}

// Main runs the writer service with the flags in args (-config, -set).
func Main(ctx context.Context, args []string) error {
	cfg := ServiceConfig{Config: platform.DefaultConfig()}
	if err := platform.LoadConfig("writer", args, &cfg); err != nil {
		return err
	}
	p, err := platform.Open(ctx, "writer", cfg.Config, platform.WithStore())
	if err != nil {
		return err
	}
	w, err := New(ctx, p.JS, p.Store.Conn, cfg.Writer, p.Log)
	if err != nil {
		p.Close()
		return err
	}
	p.Registry.MustRegister(w.Collector())
	return p.Run(ctx, service.Named("writer", w))
}
