package detector

import (
	"context"

	"github.com/aiops-dev/aiops/pkg/platform"
	"github.com/aiops-dev/aiops/pkg/service"
)

// ServiceConfig is the configuration of the detector binary.
type ServiceConfig struct {
	platform.Config `yaml:",inline"`
	Detector        Config `yaml:"detector"`
}

// Validate names the field that is wrong.
func (c ServiceConfig) Validate() error {
	if err := c.Config.Validate(); err != nil {
		return err
	}
	return c.Detector.Validate()
}

// Main runs the detector service with the flags in args (-config, -set).
func Main(ctx context.Context, args []string) error {
	cfg := ServiceConfig{Config: platform.DefaultConfig()}
	if err := platform.LoadConfig("detector", args, &cfg); err != nil {
		return err
	}
	p, err := platform.Open(ctx, "detector", cfg.Config)
	if err != nil {
		return err
	}
	d, err := New(ctx, p.JS, cfg.Detector, p.Log)
	if err != nil {
		p.Close()
		return err
	}
	p.Registry.MustRegister(d.Collector())
	return p.Run(ctx, service.Named("detector", d))
}
