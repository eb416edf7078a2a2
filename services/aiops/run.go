package aiops

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"

	"github.com/aiops-dev/aiops/pkg/bus"
	"github.com/aiops-dev/aiops/pkg/httpapi"
	"github.com/aiops-dev/aiops/pkg/platform"
	"github.com/aiops-dev/aiops/pkg/service"
	"github.com/aiops-dev/aiops/services/correlator"
	"github.com/aiops-dev/aiops/services/detector"
	"github.com/aiops-dev/aiops/services/ingest"
	"github.com/aiops-dev/aiops/services/logminer"
	"github.com/aiops-dev/aiops/services/notifier"
	"github.com/aiops-dev/aiops/services/writer"
)

// Components are the services `aiops run` runs in one process, each in its
// own configuration section. Adding a service is one line here.
func Components() []platform.Component {
	return []platform.Component{
		writer.Component,
		// On one machine the gateway listens on 127.0.0.1:8080 with a
		// generated token kept in data/.
		platform.WithDefaults(ingest.Component, func() ingest.ServerConfig {
			return ingest.ServerConfig{Listen: ingest.DefaultListen, GenerateTokenFile: "data/ingest-token"}
		}),
		logminer.Component,
		detector.Component,
		// The incidents API on 127.0.0.1:8081, its token kept in data/;
		// the service catalog in pipelines/catalog.yaml when there is one.
		platform.WithDefaults(correlator.Component, func() correlator.Config {
			c := correlator.Config{API: httpapi.Config{Listen: "127.0.0.1:8081", GenerateTokenFile: "data/api-token"}}
			if _, err := os.Stat(DefaultCatalog); err == nil {
				c.Catalog = DefaultCatalog
			}
			return c
		}),
		// The silences API where amtool looks by default
		// (127.0.0.1:9093), with the API token of data/.
		platform.WithDefaults(notifier.Component, func() notifier.Config {
			return notifier.Config{API: httpapi.Config{Listen: "127.0.0.1:9093", GenerateTokenFile: "data/api-token"}}
		}),
	}
}

// DefaultCatalog is the service catalog `aiops run` gives the correlator
// when the file exists (relative to the working directory).
const DefaultCatalog = "pipelines/catalog.yaml"

// DefaultNATSConfig is the embedded NATS of `aiops run`: 127.0.0.1:4222,
// its streams in ./data/nats, a random token kept in data/nats-token
// unless one is configured.
func DefaultNATSConfig() EmbeddedNATSConfig {
	return EmbeddedNATSConfig{Embedded: true, Listen: "127.0.0.1:4222", StoreDir: "data/nats", GenerateTokenFile: "data/nats-token"}
}

// RunConfig is the configuration of `aiops run`: the platform, the
// embedded NATS server (section nats) and each component's section.
func RunConfig(nats *EmbeddedNATSConfig) *platform.AssembledConfig {
	*nats = DefaultNATSConfig()
	return platform.Assemble(platform.DefaultConfig(), Components(), platform.Section{Key: "nats", Value: nats})
}

// runPipeline is `aiops run`: every service in one process.
func runPipeline(ctx context.Context, args []string) error {
	return runPipelineTo(ctx, args, os.Stdout)
}

// runPipelineTo is `aiops run` printing its start-up summary (every
// listener, where its token is) to summary once the configuration loaded.
func runPipelineTo(ctx context.Context, args []string, summary io.Writer) error {
	var natsCfg EmbeddedNATSConfig
	cfg := RunConfig(&natsCfg)
	if err := cfg.Load("aiops run", args); err != nil {
		return err
	}
	if natsCfg.Embedded {
		if err := embeddedBusConflict(cfg.Platform().Bus, natsCfg.Listen); err != nil {
			return service.Usage(err)
		}
	}
	return runLoaded(ctx, cfg, natsCfg, summary)
}

// embeddedBusConflict names a bus setting that the embedded NATS would
// silently replace: the pipeline connects to the embedded server, with its
// token, whatever bus says. URLs that name the default server or the
// embedded one (listen), however written ("nats://127.0.0.1:4222/",
// "NATS://..."), are no conflict.
func embeddedBusConflict(b bus.Config, listen string) error {
	var key string
	switch {
	case !embeddedURLs(b.URLs, listen):
		key = "bus.urls"
	case b.Token != "" || b.TokenFile != "":
		key = "bus.token_file (or AIOPS_BUS__TOKEN)"
	case b.CredentialsFile != "":
		key = "bus.credentials_file"
	case b.User != "" || b.Password != "" || b.PasswordFile != "":
		key = "bus.user"
	default:
		return nil
	}
	return fmt.Errorf("%s: set, but nats.embedded is true, which connects to the embedded server instead: set nats.embedded=false to use this NATS, or leave %s out", key, key)
}

// embeddedURLs tells whether urls are the default bus URLs, or name the
// embedded server's listen address, up to the scheme's case and a
// trailing slash.
func embeddedURLs(urls []string, listen string) bool {
	def := platform.DefaultConfig().Bus.URLs
	for _, raw := range urls {
		u, err := url.Parse(raw)
		if err != nil || !strings.EqualFold(u.Scheme, "nats") || u.User != nil || u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.Fragment != "" {
			return false
		}
		if !slices.Contains(def, "nats://"+u.Host) && (listen == "" || u.Host != listen) {
			return false
		}
	}
	return len(urls) > 0
}

// runLoaded runs a loaded configuration: the embedded NATS when it is
// one, the platform, every component, until ctx ends or a signal.
func runLoaded(ctx context.Context, cfg *platform.AssembledConfig, natsCfg EmbeddedNATSConfig, summary io.Writer, opts ...platform.Option) error {
	var natsToken string
	if natsCfg.Embedded {
		token, err := natsCfg.token()
		if err != nil {
			return service.Usage(err)
		}
		natsToken = token
		ns, err := startEmbeddedNATS(natsCfg, token)
		if err != nil {
			return err
		}
		defer ns.Shutdown()
		addr := ns.Addr().(*net.TCPAddr)
		// The summary names the port bound (nats.listen may ask for any).
		host, _, _ := net.SplitHostPort(natsCfg.Listen)
		natsCfg.Listen = net.JoinHostPort(host, fmt.Sprint(addr.Port))
		pc := cfg.Platform()
		pc.Bus.URLs = []string{fmt.Sprintf("nats://%s", net.JoinHostPort(addr.IP.String(), fmt.Sprint(addr.Port)))}
		pc.Bus.Token, pc.Bus.TokenFile = token, ""
		cfg.SetPlatform(pc)
	}
	p, err := platform.Open(ctx, "aiops", cfg.Platform(), append([]platform.Option{platform.WithStore()}, opts...)...)
	if err != nil {
		return err
	}
	if warning := natsAuthWarning(natsCfg, natsToken); warning != "" {
		p.Log.Warn().Str("listen", natsCfg.Listen).Msg(warning)
	}
	runners, err := cfg.Build(ctx, p, true)
	if err != nil {
		p.Close()
		return err
	}
	ev := p.Log.Info().Strs("nats", cfg.Platform().Bus.RedactedURLs()).Str("clickhouse", cfg.Platform().Store.Redacted())
	for _, r := range runners {
		named, ok := r.(interface {
			Name() string
			Unwrap() service.Runner
		})
		if !ok {
			continue
		}
		if l, ok := named.Unwrap().(interface{ Addr() net.Addr }); ok && l.Addr() != nil {
			ev = ev.Str(named.Name(), l.Addr().String())
		}
	}
	ev.Msg("pipeline running")
	if summary != nil {
		if err := WriteSummary(summary, service.VersionString(), Listeners(cfg, natsCfg)); err != nil {
			p.Close()
			return err
		}
	}
	return p.Run(ctx, runners...)
}

// natsAuthWarning is the warning logged when the embedded NATS starts
// without authentication ("" when it has a token or is not embedded):
// Validate allows that only on loopback, where it still lets every local
// process read, publish and delete every event.
func natsAuthWarning(cfg EmbeddedNATSConfig, token string) string {
	if !cfg.Embedded || token != "" {
		return ""
	}
	return "THE EMBEDDED NATS HAS NO AUTHENTICATION: every process on this machine can read, publish and delete every event; " +
		"set nats.generate_token_file (the default, data/nats-token), nats.token_file or AIOPS_NATS__TOKEN"
}
