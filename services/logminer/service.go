package logminer

import (
	"context"

	"github.com/aiops-dev/aiops/pkg/platform"
	"github.com/aiops-dev/aiops/pkg/service"
)

// ServiceConfig is the configuration of the logminer binary.
type ServiceConfig struct {
	platform.Config `yaml:",inline"`
	Logminer        Config `yaml:"logminer"`
}

// Validate names the field that is wrong.
func (c ServiceConfig) Validate() error {
	if err := c.Config.Validate(); err != nil {
		return err
	}
	return c.Logminer.Validate()
}

// Main runs the logminer service with the flags in args (-config, -set).
func Main(ctx context.Context, args []string) error {
	cfg := ServiceConfig{Config: platform.DefaultConfig()}
	if err := platform.LoadConfig("logminer", args, &cfg); err != nil {
		return err
	}
	p, err := platform.Open(ctx, "logminer", cfg.Config)
	if err != nil {
		return err
	}
	l, err := New(ctx, p.JS, cfg.Logminer, p.Log)
	if err != nil {
		p.Close()
		return err
	}
	p.Registry.MustRegister(l.Collector())
	return p.Run(ctx, service.Named("logminer", l))
}
