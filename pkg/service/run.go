// Package service is the runtime every aiops binary stands on: an admin HTTP
// server (/healthz, /readyz, /metrics, bearer-token authentication), the
// lifecycle of the service's components (start, signal, bounded graceful
// shutdown) and exit codes for main.
//
// A service's main stays a one-liner over an importable app, so tests run the
// whole service in-process:
//
//	func main() { os.Exit(service.Main("ingest", os.Args[1:], os.Stderr, ingest.Run)) }
//
// where ingest.Run parses flags, loads its configuration with config.Load and
// ends in service.Run(ctx, opts, components...).
package service

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/config"
	"github.com/aiops-dev/aiops/pkg/errs"
	"github.com/aiops-dev/aiops/pkg/logging"
)

// Defaults for zero Options fields. The shutdown timeout stays below
// Kubernetes' default 30s grace period, so Run reports who hung before the
// kubelet's SIGKILL makes that impossible.
const (
	DefaultShutdownTimeout = 25 * time.Second
	DefaultCheckTimeout    = 5 * time.Second
)

var (
	// ErrShutdownTimeout is returned when components did not stop within
	// Options.ShutdownTimeout; the error names them.
	ErrShutdownTimeout = errors.New("components did not stop in time")
	// ErrForcedShutdown is returned when a second signal arrived while
	// components were draining; the error names those still running.
	ErrForcedShutdown = errors.New("shutdown forced by a second signal")
)

// Runner is a component of a service: a consumer, a batcher, an HTTP
// listener. Run works until ctx is cancelled, then drains (stops taking work,
// finishes what it holds, flushes batches) and returns nil; a non-nil error
// means it failed. Returning context.Canceled after cancellation counts as a
// clean stop. A Runner with a `Name() string` method is named by it in logs
// and errors.
type Runner interface {
	Run(ctx context.Context) error
}

// RunnerFunc adapts a function to Runner.
type RunnerFunc func(ctx context.Context) error

// Run calls f(ctx).
func (f RunnerFunc) Run(ctx context.Context) error { return f(ctx) }

// Named gives r a name for logs and errors.
func Named(name string, r Runner) Runner { return namedRunner{name, r} }

type namedRunner struct {
	name string
	Runner
}

func (n namedRunner) Name() string { return n.name }

// Unwrap is the runner that was named.
func (n namedRunner) Unwrap() Runner { return n.Runner }

// Checker is a Runner with readiness checks of its own (a stage whose
// work fails over and over while the process lives): Run serves them on
// /readyz with Options.Checks.
type Checker interface {
	Checks() []Check
}

// runnerChecks are the checks of the runners that are Checkers, named or
// not.
func runnerChecks(runners []Runner) []Check {
	var checks []Check
	for _, r := range runners {
		for r != nil {
			if c, ok := r.(Checker); ok {
				checks = append(checks, c.Checks()...)
				break
			}
			u, ok := r.(interface{ Unwrap() Runner })
			if !ok {
				break
			}
			r = u.Unwrap()
		}
	}
	return checks
}

func nameOf(r Runner, i int) string {
	if n, ok := r.(interface{ Name() string }); ok && n.Name() != "" {
		return n.Name()
	}
	return fmt.Sprintf("%T#%d", r, i)
}

// Options configures Run.
type Options struct {
	// Name is the service name, used in logs.
	Name  string
	Admin AdminConfig
	// Log receives lifecycle events; the zero Logger discards them. Build it
	// with logging.New and Service set: Run does not add the service field
	// again (that would duplicate the JSON key).
	Log zerolog.Logger
	// Registry is served on /metrics; nil means a new registry with the Go
	// runtime and process collectors.
	Registry *prometheus.Registry
	// Checks must all pass for /readyz to answer 200, with those of the
	// components that are Checkers.
	Checks []Check
	// CheckTimeout bounds each readiness check; zero means DefaultCheckTimeout.
	CheckTimeout time.Duration
	// ShutdownTimeout bounds the wait for components after cancellation;
	// zero means DefaultShutdownTimeout.
	ShutdownTimeout time.Duration
	// Signals delivers shutdown signals; nil means SIGINT and SIGTERM of this
	// process. Tests inject a channel.
	Signals <-chan os.Signal
	// OnAdminListen, if set, is called with the admin server's bound address
	// once it is bound, before it serves (tests listen on port 0 and need
	// the port; aiops run prints it).
	OnAdminListen func(addr net.Addr)
}

func (o *Options) validate() error {
	if o.Name == "" {
		return errors.New("service name is empty")
	}
	if err := o.Admin.Validate(); err != nil {
		return err
	}
	if o.CheckTimeout < 0 || o.ShutdownTimeout < 0 {
		return errors.New("check and shutdown timeouts must not be negative")
	}
	seen := map[string]bool{}
	for i, c := range o.Checks {
		switch {
		case c.Name == "":
			return fmt.Errorf("checks[%d]: name is empty", i)
		case c.Fn == nil:
			return fmt.Errorf("check %q: Fn is nil", c.Name)
		case seen[c.Name]:
			return fmt.Errorf("check %q: registered twice", c.Name)
		}
		seen[c.Name] = true
	}
	return nil
}

func invalid(err error) error {
	return errs.Permanent(fmt.Errorf("%w: %w", config.ErrInvalidConfig, err))
}

type result struct {
	name string
	err  error
}

// Run starts the admin server and every component, and stops them all when
// ctx is cancelled, a signal arrives, or any component returns. Components
// then have ShutdownTimeout to return; a second signal stops the wait.
//
// Run returns nil after a clean shutdown, the component's error (wrapped with
// its name) if one failed, ErrShutdownTimeout or ErrForcedShutdown naming
// the components that did not stop, or several of these joined. A component
// returning nil before shutdown ends the service cleanly, as in oklog/run:
// a service whose part has stopped is not doing its job. Invalid options and
// an unreadable token wrap config.ErrInvalidConfig.
func Run(ctx context.Context, opts Options, components ...Runner) error {
	opts.Checks = append(slices.Clone(opts.Checks), runnerChecks(components)...)
	if err := opts.validate(); err != nil {
		return invalid(err)
	}
	if opts.CheckTimeout == 0 {
		opts.CheckTimeout = DefaultCheckTimeout
	}
	if opts.ShutdownTimeout == 0 {
		opts.ShutdownTimeout = DefaultShutdownTimeout
	}
	registry := opts.Registry
	if registry == nil {
		registry = prometheus.NewRegistry()
		registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	logger := opts.Log

	token, err := opts.Admin.ResolveToken()
	if err != nil {
		return invalid(err)
	}
	ln, err := listenAdmin(opts.Admin.listen(), token)
	if err != nil {
		return err
	}
	adm := &admin{checks: opts.Checks, checkTimeout: opts.CheckTimeout}
	adminLog := logger.With().Str(logging.FieldComponent, "admin").Logger()
	srv := &http.Server{
		Handler:           newAdminHandler(adm, registry, token),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      opts.CheckTimeout + 30*time.Second,
		IdleTimeout:       time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          log.New(adminLog, "", 0),
	}
	// Before it serves: a client that saw /readyz answer also finds done
	// what OnAdminListen does (aiops run's start-up summary); connections
	// wait in the listener's queue meanwhile.
	if opts.OnAdminListen != nil {
		opts.OnAdminListen(ln.Addr())
	}
	adminDone := make(chan error, 1)
	go func() { adminDone <- srv.Serve(ln) }()
	defer stopAdmin(srv, adminDone, adminLog)
	adminLog.Info().Str("addr", ln.Addr().String()).Bool("auth", token != "").Msg("admin server listening")

	signals := opts.Signals
	if signals == nil {
		ch := make(chan os.Signal, 2)
		signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
		defer signal.Stop(ch)
		signals = ch
	}

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	results := make(chan result, len(components))
	running := map[string]bool{}
	for i, c := range components {
		name := nameOf(c, i)
		running[name] = true
		go func() { results <- result{name, runComponent(runCtx, c)} }()
	}
	logger.Info().Int("components", len(components)).Msg("service started")

	var failures []error
	record := func(r result, afterCancel bool) {
		delete(running, r.name)
		l := logger.With().Str(logging.FieldComponent, r.name).Logger()
		switch {
		case r.err == nil || (afterCancel && errors.Is(r.err, context.Canceled)):
			l.Info().Msg("component stopped")
		default:
			l.Error().Err(r.err).Msg("component failed")
			failures = append(failures, fmt.Errorf("component %s: %w", r.name, r.err))
		}
	}

	select {
	case <-ctx.Done():
		logger.Info().Msg("context cancelled, shutting down")
	case sig := <-signals:
		logger.Info().Str("signal", sig.String()).Msg("signal received, shutting down")
	case r := <-results:
		record(r, false)
		logger.Info().Str(logging.FieldComponent, r.name).Msg("component returned, stopping the others")
	case err := <-adminDone:
		adminDone <- err // for stopAdmin
		logger.Error().Err(err).Msg("admin server failed")
		failures = append(failures, fmt.Errorf("admin server: %w", err))
	}
	adm.draining.Store(true)
	cancel()

	deadline := time.NewTimer(opts.ShutdownTimeout)
	defer deadline.Stop()
	for len(running) > 0 {
		select {
		case r := <-results:
			record(r, true)
		case <-deadline.C:
			err := fmt.Errorf("%w (%s): %s", ErrShutdownTimeout, opts.ShutdownTimeout, names(running))
			logger.Error().Err(err).Msg("shutdown timed out")
			return errors.Join(append(failures, err)...)
		case sig := <-signals:
			err := fmt.Errorf("%w (%s): %s", ErrForcedShutdown, sig, names(running))
			logger.Warn().Err(err).Msg("second signal, not waiting any longer")
			return errors.Join(append(failures, err)...)
		}
	}
	if len(failures) > 0 {
		return errors.Join(failures...)
	}
	logger.Info().Msg("service stopped cleanly")
	return nil
}

func listenAdmin(addr, token string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("admin server: %w", err)
	}
	// Validate accepted only loopback names without a token; check what the
	// name actually resolved to as well.
	if tcp, ok := ln.Addr().(*net.TCPAddr); ok && token == "" && !tcp.IP.IsLoopback() {
		ln.Close()
		return nil, invalid(fmt.Errorf("admin.listen: %q bound %s: %w", addr, tcp, ErrInsecureListen))
	}
	return ln, nil
}

// stopAdmin lets in-flight admin requests (a Prometheus scrape) finish
// briefly, then closes the server.
func stopAdmin(srv *http.Server, done <-chan error, l zerolog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		srv.Close()
	}
	if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
		l.Debug().Err(err).Msg("admin server stopped")
	}
}

// runComponent turns a panic into an error so the other components still get
// their graceful shutdown.
func runComponent(ctx context.Context, r Runner) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v\n%s", p, debug.Stack())
		}
	}()
	return r.Run(ctx)
}

func names(set map[string]bool) string {
	list := make([]string, 0, len(set))
	for n := range set {
		list = append(list, n)
	}
	sort.Strings(list)
	return strings.Join(list, ", ")
}
