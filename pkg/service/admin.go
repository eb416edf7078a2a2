package service

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/aiops-dev/aiops/pkg/config"
	"github.com/aiops-dev/aiops/pkg/httpapi"
)

// DefaultAdminListen is the documented admin address of every aiops
// service and of `aiops run` (platform.DefaultConfig): loopback, so an
// unconfigured service exposes nothing to other machines, on a fixed port
// (9464, the port OpenTelemetry's Prometheus exporter uses) so a
// Prometheus scrape configuration keeps working across restarts. Services
// sharing one machine each need their own admin.listen.
const DefaultAdminListen = "127.0.0.1:9464"

// ephemeralAdminListen is used when AdminConfig.Listen is empty (Run
// called with a zero AdminConfig, as tests and embedders do): loopback, on
// a port the kernel picks, so two of them never collide.
const ephemeralAdminListen = "127.0.0.1:0"

// ErrInsecureListen is returned when the admin server would listen beyond
// loopback without a token.
var ErrInsecureListen = errors.New("admin server without a token must listen on loopback")

// AdminConfig configures the admin HTTP server (/healthz, /readyz, /metrics).
type AdminConfig struct {
	// Listen is host:port; empty means a loopback port the kernel picks
	// (platform.DefaultConfig sets DefaultAdminListen). Without a token the
	// host must be a loopback address or "localhost".
	Listen string `yaml:"listen"`
	// TokenFile holds the bearer token every request must present.
	TokenFile string `yaml:"token_file"`
	// Token is the bearer token itself. It can only come from the
	// environment (PREFIX_ADMIN__TOKEN with config.Load), never from the file.
	Token string `yaml:"-" env:"token"`
}

// Validate checks the fields without reading the token file.
func (c AdminConfig) Validate() error {
	if c.Token != "" && c.TokenFile != "" {
		return errors.New("admin.token_file and the admin token from the environment are both set; keep one")
	}
	listen := c.listen()
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return fmt.Errorf("admin.listen: %q is not host:port: %w", listen, err)
	}
	if _, err := net.LookupPort("tcp", port); err != nil {
		return fmt.Errorf("admin.listen: %q has an invalid port: %w", listen, err)
	}
	if c.Token == "" && c.TokenFile == "" && !IsLoopbackHost(host) {
		return fmt.Errorf("admin.listen: %q: %w; set admin.token_file (or the admin token environment variable) to listen there",
			listen, ErrInsecureListen)
	}
	return nil
}

func (c AdminConfig) listen() string {
	if c.Listen == "" {
		return ephemeralAdminListen
	}
	return c.Listen
}

// ResolveToken returns the configured token: Token, else the content of
// TokenFile (see config.Secret), else "" for none.
// A token shorter than config.MinTokenLength is refused, as on every
// listener.
func (c AdminConfig) ResolveToken() (string, error) {
	if c.Token != "" {
		return config.CheckToken("admin.token", c.Token)
	}
	if c.TokenFile == "" {
		return "", nil
	}
	token, err := config.Secret(c.TokenFile, "")
	if err != nil {
		return "", fmt.Errorf("admin.token_file: %w", err)
	}
	return config.CheckToken("admin.token_file", token)
}

// IsLoopbackHost reports whether host (an IP or "localhost") can only be
// reached from this machine: the one test every listener uses to decide
// whether it may go without a token.
func IsLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Check is a named readiness check. Fn returns nil when the dependency it
// checks (a server connection, a consumer) is usable; it must honour ctx.
type Check struct {
	Name string
	Fn   func(ctx context.Context) error
}

// Tolerated is a check's failure that does not make the process unready
// (yet): /readyz shows it, with ok true.
type Tolerated struct{ Err error }

func (t Tolerated) Error() string { return t.Err.Error() }

func (t Tolerated) Unwrap() error { return t.Err }

// WithGrace is c failing only once it has failed on every run for longer
// than grace, its failures till then Tolerated; now is the clock (nil:
// time.Now). A dependency a restart or a failover heals within grace
// then does not flap readiness: taken out of a load balancer's rotation,
// a process that buffers (the gateway of aiops run, which holds what it
// takes in NATS while ClickHouse is away) would refuse the very producers
// it could serve.
func WithGrace(c Check, grace time.Duration, now func() time.Time) Check {
	if now == nil {
		now = time.Now
	}
	var (
		mu    sync.Mutex
		since time.Time // when c started failing; zero while it passes
	)
	return Check{Name: c.Name, Fn: func(ctx context.Context) error {
		// c's own answer, a timeout included, must come before the
		// caller's deadline to be tolerated: it gets nine tenths of it.
		if dl, ok := ctx.Deadline(); ok {
			var cancel context.CancelFunc
			ctx, cancel = context.WithDeadline(ctx, dl.Add(-time.Until(dl)/10))
			defer cancel()
		}
		err := c.Fn(ctx)
		mu.Lock()
		defer mu.Unlock()
		switch t := now(); {
		case err == nil:
			since = time.Time{}
			return nil
		case since.IsZero():
			since = t
			fallthrough
		case t.Sub(since) <= grace:
			return Tolerated{fmt.Errorf("failing for %s, within its grace of %s: %w", t.Sub(since).Round(time.Second), grace, err)}
		default:
			return fmt.Errorf("failing for %s, past its grace of %s: %w", t.Sub(since).Round(time.Second), grace, err)
		}
	}}
}

// LastFailure is a check on work a component tries again for ever (a
// lease holder's terms): it fails with the error the work last failed
// with, until the work is known to go well again.
type LastFailure struct {
	name string
	err  atomic.Pointer[error]
}

// NewLastFailure is a LastFailure for its check named name, passing.
func NewLastFailure(name string) *LastFailure { return &LastFailure{name: name} }

// Failed records err (nil: none).
func (f *LastFailure) Failed(err error) { f.err.Store(&err) }

// Check fails with what why says of the last failure recorded, unless
// excused (nil: never) says the failure does not matter now (another
// instance does the work: this one is a standby like any other).
func (f *LastFailure) Check(why string, excused func(context.Context) bool) Check {
	return Check{Name: f.name, Fn: func(ctx context.Context) error {
		if err := f.err.Load(); err != nil && *err != nil && (excused == nil || !excused(ctx)) {
			return fmt.Errorf("%s: %w", why, *err)
		}
		return nil
	}}
}

// admin serves the admin endpoints.
type admin struct {
	checks       []Check
	checkTimeout time.Duration
	draining     atomic.Bool
}

// newAdminHandler serves the admin endpoints. With a token, /metrics and
// the checks of /readyz (their errors name hosts and addresses) want it;
// /healthz and the bare status of /readyz do not, so a kubelet's probes,
// which cannot read a secret, still work on a listener other machines can
// reach. Without a token the listener is on loopback (Validate and
// listenAdmin refuse anything else) and everything answers the requests
// addressed to localhost or an IP address (httpapi.LocalOnly: not to a
// web page's own name rebound to 127.0.0.1).
func newAdminHandler(a *admin, registry *prometheus.Registry, token string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	metrics := promhttp.HandlerFor(registry, promhttp.HandlerOpts{
		ErrorHandling: promhttp.ContinueOnError, // a broken collector must not hide the others
	})
	if token == "" {
		mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) { a.serveReady(w, r, true) })
		mux.Handle("GET /metrics", metrics)
		// Loopback, but a page in a browser here could rebind a name
		// of its own to it: only requests to localhost or an address.
		return httpapi.LocalOnly(mux)
	}
	want := sha256.Sum256([]byte(token))
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		a.serveReady(w, r, authorized(r, want))
	})
	mux.Handle("GET /metrics", requireToken(want, metrics))
	return mux
}

// tokenEqual compares SHA-256 digests in constant time: comparing digests,
// which always have the same length, also hides the token's length.
func tokenEqual(got string, want [sha256.Size]byte) bool {
	sum := sha256.Sum256([]byte(got))
	return subtle.ConstantTimeCompare(sum[:], want[:]) == 1
}

func authorized(r *http.Request, want [sha256.Size]byte) bool {
	scheme, got, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	return ok && strings.EqualFold(scheme, "Bearer") && tokenEqual(got, want)
}

func requireToken(want [sha256.Size]byte, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !authorized(r, want) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="aiops-admin"`)
			http.Error(w, "401 unauthorized: send Authorization: Bearer <admin token>", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// CheckResult is one check's outcome in the /readyz response.
type CheckResult struct {
	Name  string `json:"name"`
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

// ReadyResponse is the /readyz response body.
type ReadyResponse struct {
	Status string        `json:"status"` // "ready", "not ready" or "shutting down"
	Checks []CheckResult `json:"checks,omitempty"`
}

// serveReady answers /readyz; detail says whether the checks' names and
// errors are shown (the status code is the same either way).
func (a *admin) serveReady(w http.ResponseWriter, r *http.Request, detail bool) {
	resp := ReadyResponse{Status: "ready"}
	code := http.StatusOK
	if a.draining.Load() {
		// Tell load balancers to stop sending work while components drain.
		resp.Status, code = "shutting down", http.StatusServiceUnavailable
	} else {
		resp.Checks = a.runChecks(r.Context())
		for _, c := range resp.Checks {
			if !c.OK {
				resp.Status, code = "not ready", http.StatusServiceUnavailable
			}
		}
	}
	if !detail {
		resp.Checks = nil
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(resp)
}

// runChecks runs all checks concurrently, each bounded by checkTimeout. A
// check that ignores its context is reported as timed out and left to finish
// in the background, so one stuck dependency cannot hang /readyz.
func (a *admin) runChecks(ctx context.Context) []CheckResult {
	results := make([]CheckResult, len(a.checks))
	var wg sync.WaitGroup
	for i, c := range a.checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = a.runCheck(ctx, c)
		}()
	}
	wg.Wait()
	return results
}

func (a *admin) runCheck(ctx context.Context, c Check) CheckResult {
	ctx, cancel := context.WithTimeout(ctx, a.checkTimeout)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				done <- fmt.Errorf("check panicked: %v", p)
			}
		}()
		done <- c.Fn(ctx)
	}()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		err = fmt.Errorf("no answer within %s", a.checkTimeout)
	}
	if err != nil {
		return CheckResult{Name: c.Name, OK: errors.As(err, new(Tolerated)), Error: err.Error()}
	}
	return CheckResult{Name: c.Name, OK: true}
}
