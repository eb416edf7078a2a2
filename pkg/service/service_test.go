package service

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/config"
)

// started is a service running in the background of a test.
type started struct {
	base    string         // http://host:port of the admin server
	signals chan os.Signal // injected signal channel
	cancel  context.CancelFunc
	done    chan error // Run's result
}

// start runs Run in the background and waits until the admin server listens.
func start(t *testing.T, opts Options, components ...Runner) *started {
	t.Helper()
	s := &started{signals: make(chan os.Signal, 2), done: make(chan error, 1)}
	addrs := make(chan net.Addr, 1)
	if opts.Name == "" {
		opts.Name = "test"
	}
	opts.Signals = s.signals
	opts.OnAdminListen = func(a net.Addr) { addrs <- a }
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go func() { s.done <- Run(ctx, opts, components...) }()
	select {
	case a := <-addrs:
		s.base = "http://" + a.String()
	case err := <-s.done:
		t.Fatalf("Run returned before listening: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		select {
		case <-s.done:
		case <-time.After(10 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
	return s
}

func (s *started) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-s.done:
		s.done <- err // for Cleanup
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
		return nil
	}
}

func get(t *testing.T, url, token string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(body)
}

// waitForCancel is a component that stops when asked, after a short drain.
func waitForCancel(stopped *atomic.Bool) Runner {
	return RunnerFunc(func(ctx context.Context) error {
		<-ctx.Done()
		time.Sleep(10 * time.Millisecond) // drain
		stopped.Store(true)
		return nil
	})
}

func TestHealthzAndMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	counter := prometheus.NewCounter(prometheus.CounterOpts{Name: "aiops_test_events_total", Help: "test"})
	reg.MustRegister(counter)
	counter.Add(3)
	s := start(t, Options{Registry: reg})

	code, _, body := get(t, s.base+"/healthz", "")
	if code != http.StatusOK {
		t.Errorf("/healthz = %d %q, want 200", code, body)
	}
	code, _, body = get(t, s.base+"/metrics", "")
	if code != http.StatusOK || !strings.Contains(body, "aiops_test_events_total 3") {
		t.Errorf("/metrics = %d, want 200 with aiops_test_events_total 3; body:\n%s", code, body)
	}
	code, _, _ = get(t, s.base+"/nope", "")
	if code != http.StatusNotFound {
		t.Errorf("/nope = %d, want 404", code)
	}
	resp, err := http.Post(s.base+"/healthz", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /healthz = %d, want 405", resp.StatusCode)
	}
}

// Without a token the admin server (on loopback) answers only requests
// addressed to localhost or an IP address: a web page in the operator's
// browser can point a name of its own at 127.0.0.1 (DNS rebinding) and
// read /metrics and /readyz's errors as a local client would, but its
// requests carry that name in Host.
func TestAdminWithoutTokenRefusesARequestToAReboundName(t *testing.T) {
	reg := prometheus.NewRegistry()
	counter := prometheus.NewCounter(prometheus.CounterOpts{Name: "aiops_test_events_total", Help: "test"})
	reg.MustRegister(counter)
	s := start(t, Options{Registry: reg})
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(s.base, "http://"))
	for host, want := range map[string]int{
		"127.0.0.1:" + port:                  http.StatusOK,
		"localhost:" + port:                  http.StatusOK,
		"rebound.attacker.example:" + port:   http.StatusForbidden,
		"localhost.attacker.example:" + port: http.StatusForbidden,
		"rebound.attacker.example":           http.StatusForbidden,
	} {
		for _, path := range []string{"/metrics", "/readyz", "/healthz"} {
			req, err := http.NewRequest(http.MethodGet, s.base+path, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Host = host
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != want || want != http.StatusOK && strings.Contains(string(body), "aiops_test_events_total") {
				t.Errorf("GET %s with Host %s = %d, want %d; body:\n%s", path, host, resp.StatusCode, want, body)
			}
		}
	}
}

func TestReadyzNamesFailingCheckThenRecovers(t *testing.T) {
	var natsErr atomic.Pointer[error]
	down := errors.New("nats: no servers available")
	natsErr.Store(&down)
	s := start(t, Options{Checks: []Check{
		{Name: "clickhouse", Fn: func(context.Context) error { return nil }},
		{Name: "nats", Fn: func(context.Context) error { return *natsErr.Load() }},
	}})

	code, header, body := get(t, s.base+"/readyz", "")
	if code != http.StatusServiceUnavailable {
		t.Fatalf("/readyz = %d, want 503 while nats is down", code)
	}
	if ct := header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	var resp ReadyResponse
	if err := json.Unmarshal([]byte(body), &resp); err != nil {
		t.Fatalf("body %q: %v", body, err)
	}
	want := []CheckResult{{Name: "clickhouse", OK: true}, {Name: "nats", Error: down.Error()}}
	if resp.Status != "not ready" || fmt.Sprint(resp.Checks) != fmt.Sprint(want) {
		t.Errorf("/readyz body = %+v, want status not ready and checks %+v", resp, want)
	}

	var ok error
	natsErr.Store(&ok)
	code, _, body = get(t, s.base+"/readyz", "")
	if code != http.StatusOK || !strings.Contains(body, `"status":"ready"`) {
		t.Errorf("/readyz = %d %q, want 200 ready once nats is back", code, body)
	}
}

// A dependency that fails for less than its grace (a ClickHouse restart)
// leaves the process ready, /readyz saying so; past it, the process is not
// ready; once it passes, a new failure has its whole grace again.
func TestReadyzToleratesACheckFailingWithinItsGrace(t *testing.T) {
	var pingErr atomic.Pointer[error]
	var ok error
	pingErr.Store(&ok)
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	var clock atomic.Pointer[time.Time]
	clock.Store(&now)
	at := func(d time.Duration) { t := now.Add(d); clock.Store(&t) }
	ping := Check{Name: "clickhouse", Fn: func(context.Context) error { return *pingErr.Load() }}
	s := start(t, Options{Checks: []Check{WithGrace(ping, time.Minute, func() time.Time { return *clock.Load() })}})
	down := errors.New("dial tcp 127.0.0.1:9000: connect: connection refused")
	for _, step := range []struct {
		at       time.Duration
		err      error
		code     int
		okCheck  bool
		inDetail string
	}{
		{0, nil, http.StatusOK, true, ""},
		{10 * time.Second, down, http.StatusOK, true, "failing for 0s, within its grace of 1m0s: " + down.Error()},
		{50 * time.Second, down, http.StatusOK, true, "failing for 40s"},
		{71 * time.Second, down, http.StatusServiceUnavailable, false, "failing for 1m1s, past its grace of 1m0s: " + down.Error()},
		{80 * time.Second, nil, http.StatusOK, true, ""},
		{90 * time.Second, down, http.StatusOK, true, "failing for 0s"},
	} {
		at(step.at)
		pingErr.Store(&step.err)
		code, _, body := get(t, s.base+"/readyz", "")
		var resp ReadyResponse
		if err := json.Unmarshal([]byte(body), &resp); err != nil {
			t.Fatalf("body %q: %v", body, err)
		}
		if code != step.code || len(resp.Checks) != 1 || resp.Checks[0].OK != step.okCheck || !strings.Contains(resp.Checks[0].Error, step.inDetail) ||
			step.inDetail == "" && resp.Checks[0].Error != "" {
			t.Errorf("at %s: /readyz = %d %s, want %d with the check ok %v saying %q", step.at, code, body, step.code, step.okCheck, step.inDetail)
		}
	}
}

// checkedRunner runs until its context ends and reports err as its
// readiness.
type checkedRunner struct{ err atomic.Pointer[error] }

func (r *checkedRunner) Run(ctx context.Context) error { <-ctx.Done(); return nil }

func (r *checkedRunner) Checks() []Check {
	return []Check{{Name: "stage", Fn: func(context.Context) error { return *r.err.Load() }}}
}

// A component whose work fails over and over while the process lives (a
// correlator whose terms end in errors) says so on /readyz, named or not.
func TestReadyzReportsTheChecksOfItsComponents(t *testing.T) {
	r := &checkedRunner{}
	failing := errors.New("restore: state unreadable")
	r.err.Store(&failing)
	s := start(t, Options{Checks: []Check{{Name: "nats", Fn: func(context.Context) error { return nil }}}}, Named("correlator", r))
	code, _, body := get(t, s.base+"/readyz", "")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, `{"name":"stage","ok":false,"error":"restore: state unreadable"}`) {
		t.Fatalf("/readyz = %d %q, want 503 naming the component's failing check", code, body)
	}
	var ok error
	r.err.Store(&ok)
	if code, _, body := get(t, s.base+"/readyz", ""); code != http.StatusOK {
		t.Errorf("/readyz = %d %q, want 200 once the component is well", code, body)
	}
}

func TestReadyzHungCheckTimesOut(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	s := start(t, Options{CheckTimeout: 20 * time.Millisecond, Checks: []Check{
		{Name: "stuck", Fn: func(context.Context) error { <-release; return nil }}, // ignores ctx
		{Name: "panics", Fn: func(context.Context) error { panic("bad check") }},
	}})
	code, _, body := get(t, s.base+"/readyz", "")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "no answer within 20ms") ||
		!strings.Contains(body, "check panicked: bad check") {
		t.Errorf("/readyz = %d %q, want 503 naming the timeout and the panic", code, body)
	}
}

func TestReadyzDuringShutdown(t *testing.T) {
	draining := make(chan struct{})
	release := make(chan struct{})
	s := start(t, Options{}, RunnerFunc(func(ctx context.Context) error {
		<-ctx.Done()
		close(draining)
		<-release
		return nil
	}))
	s.signals <- syscall.SIGTERM
	<-draining
	code, _, body := get(t, s.base+"/readyz", "")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "shutting down") {
		t.Errorf("/readyz while draining = %d %q, want 503 shutting down", code, body)
	}
	close(release)
	if err := s.wait(t); err != nil {
		t.Errorf("Run = %v, want nil", err)
	}
}

func TestTokenAuth(t *testing.T) {
	const token = "correct-horse-battery-staple"
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, admin := range map[string]AdminConfig{
		"token":      {Token: token},
		"token file": {TokenFile: tokenFile},
	} {
		t.Run(name, func(t *testing.T) {
			var logs syncBuffer
			s := start(t, Options{Admin: admin, Log: zerolog.New(&logs), Checks: []Check{
				{Name: "store", Fn: func(context.Context) error { return errors.New("dial tcp 10.1.2.3:9000: refused") }},
			}})
			defer func() {
				if strings.Contains(logs.String(), token) {
					t.Errorf("logs contain the token:\n%s", logs.String())
				}
			}()
			// A kubelet's probes carry no secret: /healthz and the status
			// of /readyz answer without the token, but the checks (their
			// errors name hosts) only with it.
			if code, _, body := get(t, s.base+"/healthz", ""); code != http.StatusOK || strings.TrimSpace(body) != "ok" {
				t.Errorf("/healthz without a token = %d %q, want 200 ok", code, body)
			}
			code, _, body := get(t, s.base+"/readyz", "")
			if code != http.StatusServiceUnavailable || !strings.Contains(body, "not ready") || strings.Contains(body, "10.1.2.3") || strings.Contains(body, "store") {
				t.Errorf("/readyz without a token = %d %s, want 503 with the status only", code, body)
			}
			code, _, body = get(t, s.base+"/readyz", "Bearer "+token)
			if code != http.StatusServiceUnavailable || !strings.Contains(body, "10.1.2.3") {
				t.Errorf("/readyz with the token = %d %s, want 503 naming the failing check", code, body)
			}
			for _, path := range []string{"/metrics"} {
				for _, bad := range []string{"", "Bearer wrong", "Bearer " + token + "x", "Bearer " + token[:5], "Basic " + token, token} {
					code, header, body := get(t, s.base+path, bad)
					if code != http.StatusUnauthorized || !strings.HasPrefix(header.Get("WWW-Authenticate"), "Bearer") {
						t.Errorf("%s with Authorization %q = %d (WWW-Authenticate %q), want 401 with a Bearer challenge",
							path, bad, code, header.Get("WWW-Authenticate"))
					}
					if strings.Contains(body, token) {
						t.Errorf("%s: 401 body contains the token", path)
					}
				}
				for _, good := range []string{"Bearer " + token, "bearer " + token} {
					if code, _, _ := get(t, s.base+path, good); code != http.StatusOK {
						t.Errorf("%s with Authorization %q = %d, want 200", path, good, code)
					}
				}
			}
		})
	}
}

func TestTokenEqual(t *testing.T) {
	want := sha256.Sum256([]byte("secret"))
	for got, match := range map[string]bool{"secret": true, "": false, "secreT": false, "secret ": false, "s": false} {
		if tokenEqual(got, want) != match {
			t.Errorf("tokenEqual(%q) = %v, want %v", got, !match, match)
		}
	}
}

// BenchmarkTokenEqual shows the comparison takes as long whether the guess is
// wrong in its first or its last byte; only the guess's own length (hashing
// it) changes the time, and the guesser knows that already.
func BenchmarkTokenEqual(b *testing.B) {
	token := strings.Repeat("k", 64)
	want := sha256.Sum256([]byte(token))
	for name, guess := range map[string]string{
		"first-byte":  "x" + token[1:],
		"last-byte":   token[:63] + "x",
		"short-guess": "k",
		"equal":       token,
	} {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				tokenEqual(guess, want)
			}
		})
	}
}

func TestNonLoopbackWithoutTokenRefused(t *testing.T) {
	for _, listen := range []string{"0.0.0.0:0", ":0", "[::]:0", "example.com:9090"} {
		err := Run(context.Background(), Options{Name: "test", Admin: AdminConfig{Listen: listen}})
		if !errors.Is(err, ErrInsecureListen) || !strings.Contains(err.Error(), listen) {
			t.Errorf("listen %q without token: err = %v, want ErrInsecureListen naming it", listen, err)
		}
		if ExitCode(err) != ExitUsage {
			t.Errorf("listen %q without token: exit code %d, want %d", listen, ExitCode(err), ExitUsage)
		}
	}
	// With a token the same address is fine.
	const token = "admin-token-0123456789"
	s := start(t, Options{Admin: AdminConfig{Listen: "0.0.0.0:0", Token: token}})
	if code, _, _ := get(t, strings.Replace(s.base, "0.0.0.0", "127.0.0.1", 1)+"/healthz", "Bearer "+token); code != http.StatusOK {
		t.Errorf("/healthz on 0.0.0.0 with token = %d, want 200", code)
	}
	// A token too short to keep guessing out of reach is refused.
	if _, err := (AdminConfig{Listen: "0.0.0.0:0", Token: "t"}).ResolveToken(); err == nil || !strings.Contains(err.Error(), "admin.token") {
		t.Errorf("a token of one character: %v, want an error naming admin.token", err)
	}
	// A token file ending in blank lines (or a token from a variable set
	// from one) is the token without them: no request carries a newline.
	file := filepath.Join(t.TempDir(), "admin.token")
	if err := os.WriteFile(file, []byte(token+"\r\n\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, cfg := range []AdminConfig{{TokenFile: file}, {Token: " " + token + "\n"}} {
		if got, err := cfg.ResolveToken(); got != token || err != nil {
			t.Errorf("ResolveToken of %+v = %q, %v; want the token without whitespace", cfg, got, err)
		}
	}
}

func TestAdminConfigValidate(t *testing.T) {
	cases := []struct {
		cfg  AdminConfig
		want string // "" = valid
	}{
		{AdminConfig{}, ""},
		{AdminConfig{Listen: "127.0.0.1:9464"}, ""},
		{AdminConfig{Listen: "localhost:9464"}, ""},
		{AdminConfig{Listen: "[::1]:0"}, ""},
		{AdminConfig{Listen: ":9464", TokenFile: "/run/secrets/admin"}, ""},
		{AdminConfig{Listen: "127.0.0.1"}, "not host:port"},
		{AdminConfig{Listen: "127.0.0.1:http-ish"}, "invalid port"},
		{AdminConfig{Listen: "10.0.0.1:9464"}, "loopback"},
		{AdminConfig{Token: "a", TokenFile: "/f"}, "both set"},
	}
	for _, c := range cases {
		err := c.cfg.Validate()
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%+v: err = %v, want valid", c.cfg, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "admin.")):
			t.Errorf("%+v: err = %v, want one naming the admin field and containing %q", c.cfg, err, c.want)
		}
	}
}

func TestUnreadableTokenFileIsAConfigError(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "token")
	err := Run(context.Background(), Options{Name: "test", Admin: AdminConfig{TokenFile: missing}})
	if !errors.Is(err, config.ErrInvalidConfig) || !strings.Contains(err.Error(), missing) {
		t.Errorf("err = %v, want ErrInvalidConfig naming %s", err, missing)
	}
}

func TestAdminTokenFromEnvironmentOnly(t *testing.T) {
	type cfg struct {
		Admin AdminConfig `yaml:"admin"`
	}
	var c cfg
	err := config.Load(&c, config.Options{EnvPrefix: "AIOPS", Environ: []string{"AIOPS_ADMIN__TOKEN=from-env", "AIOPS_ADMIN__LISTEN=:9464"}})
	if err != nil || c.Admin.Token != "from-env" || c.Admin.Listen != ":9464" {
		t.Errorf("Load = %v, admin %+v; want the token and listen address from the environment", err, c.Admin)
	}
	if err := config.Load(&c, config.Options{Sets: []string{"admin.token=x"}}); !errors.Is(err, config.ErrUnknownKey) {
		t.Errorf("admin.token from -set: err = %v, want ErrUnknownKey", err)
	}
}

func TestSignalDrainsComponents(t *testing.T) {
	var a, b atomic.Bool
	s := start(t, Options{ShutdownTimeout: 5 * time.Second}, Named("a", waitForCancel(&a)), Named("b", waitForCancel(&b)))
	s.signals <- os.Interrupt
	if err := s.wait(t); err != nil {
		t.Errorf("Run = %v, want nil after a clean drain", err)
	}
	if !a.Load() || !b.Load() {
		t.Errorf("drained a=%v b=%v, want both before Run returned", a.Load(), b.Load())
	}
}

func TestParentContextCancelDrains(t *testing.T) {
	var a atomic.Bool
	s := start(t, Options{}, waitForCancel(&a), RunnerFunc(func(ctx context.Context) error {
		<-ctx.Done()
		return ctx.Err() // context.Canceled after cancellation is a clean stop
	}))
	s.cancel()
	if err := s.wait(t); err != nil || !a.Load() {
		t.Errorf("Run = %v, drained = %v; want nil and drained", err, a.Load())
	}
}

func TestHangingComponentNamedAfterTimeout(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	var ok atomic.Bool
	s := start(t, Options{ShutdownTimeout: 50 * time.Millisecond},
		Named("consumer", waitForCancel(&ok)),
		Named("stuck-batcher", RunnerFunc(func(context.Context) error { <-release; return nil })))
	s.signals <- syscall.SIGTERM
	err := s.wait(t)
	if !errors.Is(err, ErrShutdownTimeout) || !strings.Contains(err.Error(), "stuck-batcher") {
		t.Fatalf("Run = %v, want ErrShutdownTimeout naming stuck-batcher", err)
	}
	if strings.Contains(err.Error(), "consumer") {
		t.Errorf("Run = %v names consumer, which stopped", err)
	}
	if ExitCode(err) != ExitFailure {
		t.Errorf("exit code %d, want %d", ExitCode(err), ExitFailure)
	}
}

func TestSecondSignalForcesShutdown(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	s := start(t, Options{ShutdownTimeout: time.Hour},
		Named("stuck", RunnerFunc(func(context.Context) error { <-release; return nil })))
	s.signals <- syscall.SIGTERM
	s.signals <- syscall.SIGTERM
	err := s.wait(t)
	if !errors.Is(err, ErrForcedShutdown) || !strings.Contains(err.Error(), "stuck") {
		t.Errorf("Run = %v, want ErrForcedShutdown naming stuck", err)
	}
}

func TestFailingComponentCancelsOthers(t *testing.T) {
	boom := errors.New("boom")
	var other atomic.Bool
	var logs syncBuffer
	s := start(t, Options{Log: zerolog.New(&logs)},
		Named("writer", RunnerFunc(func(context.Context) error { return boom })),
		Named("consumer", waitForCancel(&other)))
	err := s.wait(t)
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "component writer: boom") {
		t.Errorf("Run = %v, want boom named after its component", err)
	}
	if !other.Load() {
		t.Error("the other component was not cancelled and drained")
	}
	if !strings.Contains(logs.String(), `{"level":"error","component":"writer","error":"boom","message":"component failed"}`) {
		t.Errorf("logs lack the failure as a structured line:\n%s", logs.String())
	}
}

// syncBuffer is a bytes.Buffer safe for a logger and a test reading it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestPanickingComponentIsAnError(t *testing.T) {
	var other atomic.Bool
	s := start(t, Options{},
		Named("buggy", RunnerFunc(func(context.Context) error { panic("nil map") })),
		Named("consumer", waitForCancel(&other)))
	err := s.wait(t)
	if err == nil || !strings.Contains(err.Error(), "component buggy: panic: nil map") || !other.Load() {
		t.Errorf("Run = %v (other drained %v), want the panic as an error and the other drained", err, other.Load())
	}
}

func TestComponentFinishingEndsServiceCleanly(t *testing.T) {
	var other atomic.Bool
	s := start(t, Options{},
		Named("replay", RunnerFunc(func(context.Context) error { return nil })),
		Named("consumer", waitForCancel(&other)))
	if err := s.wait(t); err != nil || !other.Load() {
		t.Errorf("Run = %v (other drained %v), want nil and the other drained", err, other.Load())
	}
}

func TestInvalidOptions(t *testing.T) {
	ok := func(context.Context) error { return nil }
	for _, c := range []struct {
		opts Options
		want string
	}{
		{Options{}, "service name"},
		{Options{Name: "x", Checks: []Check{{Fn: ok}}}, "checks[0]: name is empty"},
		{Options{Name: "x", Checks: []Check{{Name: "db"}}}, `check "db": Fn is nil`},
		{Options{Name: "x", Checks: []Check{{Name: "db", Fn: ok}, {Name: "db", Fn: ok}}}, "registered twice"},
		{Options{Name: "x", ShutdownTimeout: -1}, "negative"},
	} {
		err := Run(context.Background(), c.opts)
		if !errors.Is(err, config.ErrInvalidConfig) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Run(%+v) = %v, want ErrInvalidConfig containing %q", c.opts, err, c.want)
		}
	}
}

func TestComponentNames(t *testing.T) {
	if got := nameOf(Named("writer", RunnerFunc(nil)), 0); got != "writer" {
		t.Errorf("named: %q, want writer", got)
	}
	if got := nameOf(RunnerFunc(nil), 3); got != "service.RunnerFunc#3" {
		t.Errorf("unnamed: %q, want service.RunnerFunc#3", got)
	}
}

// A failure recorded fails its check, unless excused at the time of the
// check (another instance does the work), and no more once cleared.
func TestLastFailureFailsItsCheckUnlessExcused(t *testing.T) {
	f := NewLastFailure("stage")
	excused := false
	check := f.Check("its last term failed", func(context.Context) bool { return excused })
	if err := check.Fn(context.Background()); err != nil {
		t.Fatalf("no failure yet: %v", err)
	}
	f.Failed(errors.New("state unreadable"))
	if err := check.Fn(context.Background()); err == nil || err.Error() != "its last term failed: state unreadable" {
		t.Fatalf("after a failure: %v", err)
	}
	excused = true
	if err := check.Fn(context.Background()); err != nil {
		t.Fatalf("excused: %v", err)
	}
	excused = false
	f.Failed(nil)
	if err := check.Fn(context.Background()); err != nil {
		t.Fatalf("cleared: %v", err)
	}
}
