package service_test

import (
	"context"
	"flag"
	"os"
	"time"

	"github.com/aiops-dev/aiops/pkg/config"
	"github.com/aiops-dev/aiops/pkg/logging"
	"github.com/aiops-dev/aiops/pkg/service"
)

// Config is what a service loads: its own keys plus the shared admin and log
// sections.
type Config struct {
	Admin   service.AdminConfig `yaml:"admin"`
	Log     logging.Options     `yaml:"log"`
	Workers int                 `yaml:"workers"`
}

func (c *Config) Validate() error {
	if err := c.Admin.Validate(); err != nil {
		return err
	}
	return c.Log.Validate()
}

// run is the importable app; main is os.Exit(service.Main("demo", os.Args[1:], os.Stderr, run)).
func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	opts := config.Flags(fs, "AIOPS")
	if err := fs.Parse(args); err != nil {
		return service.Usage(err)
	}
	cfg := Config{Admin: service.AdminConfig{Listen: "127.0.0.1:9464"}, Workers: 4}
	if err := config.Load(&cfg, *opts); err != nil {
		return err // exit code 2
	}
	cfg.Log.Service = "demo"
	log, err := logging.New(os.Stderr, cfg.Log)
	if err != nil {
		return err
	}
	worker := service.Named("worker", service.RunnerFunc(func(ctx context.Context) error {
		<-ctx.Done() // work until asked to stop, then drain and flush
		return nil
	}))
	return service.Run(ctx, service.Options{
		Name:            "demo",
		Admin:           cfg.Admin,
		Log:             log,
		ShutdownTimeout: 10 * time.Second,
		Checks: []service.Check{{Name: "bus", Fn: func(ctx context.Context) error {
			return nil // e.g. the NATS connection's status
		}}},
	}, worker)
}

func ExampleMain() {
	_ = run // os.Exit(service.Main("demo", os.Args[1:], os.Stderr, run))
}
