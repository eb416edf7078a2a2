package aiops

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/aiops-dev/aiops/pkg/bus"
	"github.com/aiops-dev/aiops/pkg/correlate"
	"github.com/aiops-dev/aiops/pkg/httpapi"
	"github.com/aiops-dev/aiops/pkg/platform"
	"github.com/aiops-dev/aiops/pkg/service"
	"github.com/aiops-dev/aiops/pkg/store"
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
	return runPipelineMain(ctx, args, summary, os.Stderr)
}

// runUsage says what `aiops run` starts and the key that moves each of
// its listeners: a second pipeline on one machine needs them all moved.
const runUsage = `usage: aiops run [-config FILE] [-set key=value ...] [-check]

Runs the whole pipeline in one process on an embedded NATS and prints
where each part listens (docs/operations.md). Each listener moves with
-set (port 0: any free port; -check names the key of a port another
program holds):

  -set ingest.listen=127.0.0.1:8080           the ingest gateway
  -set correlator.api.listen=127.0.0.1:8081   the incidents API
  -set notifier.api.listen=127.0.0.1:9093     the silences API
  -set admin.listen=127.0.0.1:9464            /healthz /readyz /metrics
  -set nats.listen=127.0.0.1:4222             the embedded NATS

ClickHouse is AIOPS_STORE__DSN's (scripts/run.sh starts a local one).

flags:
`

// runPipelineMain is runPipelineTo telling -check's warnings to stderr.
func runPipelineMain(ctx context.Context, args []string, summary, stderr io.Writer) error {
	fs := flag.NewFlagSet("aiops run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, runUsage); fs.PrintDefaults() }
	check := fs.Bool("check", false, "check the configuration, that every listen address is free and that no other aiops uses nats.store_dir, "+
		"then exit without starting anything (scripts/run.sh does, before it starts ClickHouse)")
	opts, err := platform.ParseFlagSet(fs, args)
	if err != nil {
		return err
	}
	var natsCfg EmbeddedNATSConfig
	cfg := RunConfig(&natsCfg)
	if err := cfg.LoadWith(opts); err != nil {
		return err
	}
	if natsCfg.Embedded {
		if err := embeddedBusConflict(cfg.Platform().Bus, natsCfg.Listen); err != nil {
			return service.Usage(err)
		}
	}
	if err := storeConsumerConflict(cfg); err != nil {
		return service.Usage(err)
	}
	if *check {
		return checkRun(cfg, natsCfg, stderr)
	}
	return runLoaded(ctx, cfg, natsCfg, summary)
}

// storeConsumerConflict refuses a writer whose durable consumer is not
// the one the gateway watches (ingest.store_consumer): the gateway
// refuses requests while that consumer has not stored most of EVENTS, so
// another one is watched for nothing, or, left on the server from before
// a rename and read by no writer, has the gateway answer 503 to every
// request once the events since fill nine tenths of EVENTS. The log
// miner holds its templated copies by the same consumer
// (logminer.store_consumer): watching another, its copies would push out
// events the writer has not stored, or wait for good.
func storeConsumerConflict(cfg *platform.AssembledConfig) error {
	w, ok := platform.SectionOf[writer.Config](cfg, writer.Component.Name)
	if !ok {
		return nil
	}
	durable := w.WithDefaults().Consumer.Durable
	if in, ok := platform.SectionOf[ingest.ServerConfig](cfg, ingest.Component.Name); ok {
		if watched := in.StoreConsumerName(); watched != durable {
			return fmt.Errorf("writer.consumer.durable is %q but the gateway watches the backlog of %q (ingest.store_consumer), "+
				"whose events it takes for unstored: -set ingest.store_consumer=%s", durable, watched, durable)
		}
	}
	if lm, ok := platform.SectionOf[logminer.Config](cfg, logminer.Component.Name); ok {
		if watched := lm.WithDefaults().StoreConsumer; watched != durable {
			return fmt.Errorf("writer.consumer.durable is %q but the log miner watches the backlog of %q (logminer.store_consumer), "+
				"whose events it takes for unstored: -set logminer.store_consumer=%s", durable, watched, durable)
		}
	}
	return nil
}

// checkRun is `aiops run -check`: what would stop `aiops run` at once,
// found without starting anything (the configuration was loaded before),
// and the catalog's warnings, told to stderr: a misspelt key or
// dependency is no error, and the run says it only among its logs.
func checkRun(cfg *platform.AssembledConfig, natsCfg EmbeddedNATSConfig, stderr io.Writer) error {
	if c, ok := platform.SectionOf[correlator.Config](cfg, correlator.Component.Name); ok && c.Catalog != "" {
		// Read once already by the configuration's check: it is readable.
		if cat, err := correlate.ReadCatalog(c.Catalog); err == nil {
			for _, w := range cat.Warnings {
				fmt.Fprintf(stderr, "aiops run -check: correlator.catalog %s: %s\n", c.Catalog, w)
			}
		}
	}
	if natsCfg.Embedded {
		// A token given is read and checked; a generated one is made
		// only by the run itself.
		if natsCfg.Token != "" || natsCfg.TokenFile != "" {
			if _, err := natsCfg.token(); err != nil {
				return service.Usage(err)
			}
		}
		// A store nobody created yet has nobody in it.
		if _, err := os.Stat(natsCfg.StoreDir); err == nil {
			lock, err := lockStoreDir(natsCfg.StoreDir)
			if err != nil {
				return err
			}
			lock.Close()
		}
	}
	return checkListeners(Listeners(cfg, natsCfg))
}

// checkListeners tries every address this process will listen on, before
// anything starts, and names each one taken with its key and a free
// address to give it instead. Taken one by one as each server started,
// they were found one per attempt, some only after NATS and ClickHouse.
// A port 0 (any free port) is never taken.
func checkListeners(ls []Listener) error {
	var taken, fixes, unusable []string
	seen := map[string]string{}
	var free []Listener // bindable one at a time
	for _, l := range ls {
		if l.Key == "" || l.Listen == "" {
			continue
		}
		host, port, err := net.SplitHostPort(l.Listen)
		if err != nil || port == "0" {
			continue // Validate said what is wrong with it; 0 is any port
		}
		if other, ok := seen[l.Listen]; ok {
			taken = append(taken, fmt.Sprintf("%s %s: also %s's address", l.Key, l.Listen, other))
			fixes = append(fixes, fmt.Sprintf("-set %s=%s", l.Key, freeAddr(host, port)))
			continue
		}
		seen[l.Listen] = l.Key
		ln, err := net.Listen("tcp", l.Listen)
		if err != nil {
			// "address already in use", without the "listen tcp ADDR:"
			// the line says already.
			reason := err.Error()
			var se *os.SyscallError
			if errors.As(err, &se) {
				reason = se.Err.Error()
			}
			// Not in use but not bindable (an address this machine does
			// not have, a port below 1024 for a user): no other aiops to
			// stop, and port 0 on that host fails the same way.
			if !errors.Is(err, syscall.EADDRINUSE) {
				unusable = append(unusable, fmt.Sprintf("%s %s: %s", l.Key, l.Listen, reason))
				continue
			}
			taken = append(taken, fmt.Sprintf("%s %s: %s", l.Key, l.Listen, reason))
			fixes = append(fixes, fmt.Sprintf("-set %s=%s", l.Key, freeAddr(host, port)))
			continue
		}
		ln.Close()
		free = append(free, l)
	}
	// Each free alone may still overlap another of this configuration on
	// its port, written otherwise (":8081" and "127.0.0.1:8081",
	// "localhost:8081"): all bound at once, as the run binds them.
	var held []net.Listener
	defer func() {
		for _, ln := range held {
			ln.Close()
		}
	}()
	for i, l := range free {
		ln, err := net.Listen("tcp", l.Listen)
		if err == nil {
			held = append(held, ln)
			continue
		}
		host, port, _ := net.SplitHostPort(l.Listen)
		other := "address already in use while the others are bound"
		for _, o := range free[:i] {
			if _, p, _ := net.SplitHostPort(o.Listen); p == port {
				other = fmt.Sprintf("overlaps %s %s", o.Key, o.Listen)
				break
			}
		}
		taken = append(taken, fmt.Sprintf("%s %s: %s", l.Key, l.Listen, other))
		fixes = append(fixes, fmt.Sprintf("-set %s=%s", l.Key, freeAddr(host, port)))
	}
	var msgs []string
	if len(unusable) > 0 {
		msgs = append(msgs, fmt.Sprintf("%s, so nothing was started:\n  %s\n"+
			"give each an address of this machine that this user may listen on",
			plural(len(unusable), "listen address cannot be used", "listen addresses cannot be used"), strings.Join(unusable, "\n  ")))
	}
	if len(taken) > 0 {
		msgs = append(msgs, fmt.Sprintf("%s, so nothing was started:\n  %s\n"+
			"another aiops run is probably running (stop it first; `ss -ltnp` names what holds a port), "+
			"or give this one other addresses: scripts/run.sh %s (the same flags work on bin/aiops run; make run takes none)",
			plural(len(taken), "listen address is taken", "listen addresses are taken"), strings.Join(taken, "\n  "), strings.Join(fixes, " ")))
	}
	if len(msgs) == 0 {
		return nil
	}
	return errors.New(strings.Join(msgs, "\n"))
}

// plural is "1 one" or "N many".
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// freeAddr is host with a port that is free now, for the message of a
// taken one: the port plus 10000 (or 20000, 30000) when free, else 0,
// which asks for any free port.
func freeAddr(host, port string) string {
	p, _ := strconv.Atoi(port)
	for _, next := range []int{p + 10000, p + 20000, p + 30000} {
		if next > 65535 {
			break
		}
		addr := net.JoinHostPort(host, strconv.Itoa(next))
		if ln, err := net.Listen("tcp", addr); err == nil {
			ln.Close()
			return addr
		}
	}
	return net.JoinHostPort(host, "0")
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
		// Before anything starts: one JetStream store, one pipeline.
		lock, err := lockStoreDir(natsCfg.StoreDir)
		if err != nil {
			return err
		}
		defer lock.Close()
	}
	if err := checkListeners(Listeners(cfg, natsCfg)); err != nil {
		return err
	}
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
		return withStoreHint(err, cfg.Platform().Store)
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
	// The components' listeners are bound by now, the admin server's once
	// Run starts: the summary waits for it and names the ports bound, so a
	// port 0 (any free port, which -check suggests when the usual ones
	// are taken) prints the one a client can use, not ":0".
	bound := map[string]net.Addr{}
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
			if key, ok := componentListenKeys[named.Name()]; ok {
				bound[key] = l.Addr()
			}
		}
	}
	ev.Msg("pipeline running")
	if summary != nil {
		p.OnAdminListen = func(addr net.Addr) {
			bound["admin.listen"] = addr
			if err := WriteSummary(summary, service.VersionString(), boundListeners(Listeners(cfg, natsCfg), bound)); err != nil {
				p.Log.Warn().Err(err).Msg("start-up summary not written")
			}
		}
	}
	return p.Run(ctx, runners...)
}

// componentListenKeys is the configuration key of the address each
// component of `aiops run` that serves HTTP listens on.
var componentListenKeys = map[string]string{
	"ingest":     "ingest.listen",
	"correlator": "correlator.api.listen",
	"notifier":   "notifier.api.listen",
}

// boundListeners is ls with the port of each listener bound (by its key)
// in place of the configured one; the host stays as configured
// ("localhost" is not rewritten to 127.0.0.1).
func boundListeners(ls []Listener, bound map[string]net.Addr) []Listener {
	out := make([]Listener, len(ls))
	for i, l := range ls {
		out[i] = l
		tcp, ok := bound[l.Key].(*net.TCPAddr)
		if !ok || l.Listen == "" {
			continue
		}
		host, port, err := net.SplitHostPort(l.Listen)
		if err != nil || port == strconv.Itoa(tcp.Port) {
			continue
		}
		listen := net.JoinHostPort(host, strconv.Itoa(tcp.Port))
		out[i].Addr = strings.Replace(l.Addr, l.Listen, listen, 1)
		out[i].Listen = listen
	}
	return out
}

// withStoreHint adds what to do to an error of Open that is ClickHouse
// not answering: `bin/aiops run` alone, without the local ClickHouse
// that scripts/run.sh starts, said only "connection refused".
func withStoreHint(err error, st store.Config) error {
	var dial *net.OpError
	if !strings.HasPrefix(err.Error(), "store: ") || !errors.As(err, &dial) || dial.Op != "dial" {
		return err
	}
	return fmt.Errorf("%w\nno ClickHouse answers at %s: make run (or scripts/run.sh, which passes its arguments on to aiops run) "+
		"starts a local one in data/clickhouse; to use another, set AIOPS_STORE__DSN=clickhouse://HOST:PORT/DATABASE "+
		"(its password in the file AIOPS_STORE__PASSWORD_FILE names)", err, st.Redacted())
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
