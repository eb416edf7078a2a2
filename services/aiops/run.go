package aiops

import (
	"context"
	"fmt"
	"net"

	"github.com/aiops-dev/aiops/pkg/platform"
	"github.com/aiops-dev/aiops/pkg/service"
	"github.com/aiops-dev/aiops/services/detector"
	"github.com/aiops-dev/aiops/services/ingest"
	"github.com/aiops-dev/aiops/services/logminer"
	"github.com/aiops-dev/aiops/services/writer"
)

// RunConfig is the configuration of `aiops run`: the platform, the embedded
// NATS server and each service's own section.
type RunConfig struct {
	platform.Config `yaml:",inline"`
	NATS            EmbeddedNATSConfig  `yaml:"nats"`
	Ingest          ingest.ServerConfig `yaml:"ingest"`
	Writer          writer.Config       `yaml:"writer"`
	Logminer        logminer.Config     `yaml:"logminer"`
	Detector        detector.Config     `yaml:"detector"`
}

// DefaultRunConfig runs everything on this machine: an embedded NATS on
// 127.0.0.1:4222 keeping its streams in ./data/nats, the ingest gateway on
// 127.0.0.1:8080, ClickHouse on 127.0.0.1:9000. Both listeners get a random
// token kept in data/ unless tokens are configured.
func DefaultRunConfig() RunConfig {
	return RunConfig{
		Config: platform.DefaultConfig(),
		NATS: EmbeddedNATSConfig{Embedded: true, Listen: "127.0.0.1:4222", StoreDir: "data/nats",
			GenerateTokenFile: "data/nats-token"},
		Ingest: ingest.ServerConfig{Listen: ingest.DefaultListen, GenerateTokenFile: "data/ingest-token"},
	}
}

// Validate names the field that is wrong.
func (c RunConfig) Validate() error {
	if err := c.Config.Validate(); err != nil {
		return err
	}
	if err := c.NATS.Validate(); err != nil {
		return err
	}
	if err := c.Ingest.Validate(); err != nil {
		return err
	}
	if err := c.Logminer.Validate(); err != nil {
		return err
	}
	if err := c.Detector.Validate(); err != nil {
		return err
	}
	return c.Writer.Validate()
}

// runPipeline is `aiops run`: every service in one process.
func runPipeline(ctx context.Context, args []string) error {
	cfg := DefaultRunConfig()
	if err := platform.LoadConfig("aiops run", args, &cfg); err != nil {
		return err
	}
	if cfg.NATS.Embedded {
		token, err := cfg.NATS.token()
		if err != nil {
			return service.Usage(err)
		}
		ns, err := startEmbeddedNATS(cfg.NATS, token)
		if err != nil {
			return err
		}
		defer ns.Shutdown()
		addr := ns.Addr().(*net.TCPAddr)
		cfg.Bus.URLs = []string{fmt.Sprintf("nats://%s", net.JoinHostPort(addr.IP.String(), fmt.Sprint(addr.Port)))}
		cfg.Bus.Token, cfg.Bus.TokenFile = token, ""
	}
	p, err := platform.Open(ctx, "aiops", cfg.Config, platform.WithStore())
	if err != nil {
		return err
	}
	w, err := writer.New(ctx, p.JS, p.Store.Conn, cfg.Writer, p.Log.With().Str("component", "writer").Logger())
	if err != nil {
		p.Close()
		return err
	}
	p.Registry.MustRegister(w.Collector())
	gateway, err := ingest.NewComponent(p, cfg.Ingest)
	if err != nil {
		p.Close()
		return err
	}
	miner, err := logminer.New(ctx, p.JS, cfg.Logminer, p.Log.With().Str("component", "logminer").Logger())
	if err != nil {
		p.Close()
		return err
	}
	p.Registry.MustRegister(miner.Collector())
	detect, err := detector.New(ctx, p.JS, cfg.Detector, p.Log.With().Str("component", "detector").Logger())
	if err != nil {
		p.Close()
		return err
	}
	p.Registry.MustRegister(detect.Collector())
	p.Log.Info().Strs("nats", cfg.Bus.URLs).Str("clickhouse", cfg.Store.Redacted()).Str("ingest", gateway.Addr().String()).Msg("pipeline running")
	return p.Run(ctx, service.Named("writer", w), service.Named("ingest", gateway), service.Named("logminer", miner), service.Named("detector", detect))
}
