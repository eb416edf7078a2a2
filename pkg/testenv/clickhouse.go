package testenv

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/wait"
)

// Environment variables read by ClickHouse.
const (
	// EnvClickHouseDSN names a server by a full clickhouse-go DSN, e.g.
	// clickhouse://default:secret@db:9000?dial_timeout=5s (its database part
	// is replaced by a fresh one per test).
	EnvClickHouseDSN = "AIOPS_TEST_CLICKHOUSE_DSN"
	// EnvClickHouseAddr names a server by host:port of its native protocol,
	// user default without password.
	EnvClickHouseAddr = "AIOPS_TEST_CLICKHOUSE_ADDR"
	// EnvClickHouseImage overrides the Docker image used with testcontainers.
	EnvClickHouseImage = "AIOPS_TEST_CLICKHOUSE_IMAGE"
)

// DefaultClickHouseImage is a current LTS release, the other end of the
// version range from Debian's 18.16 that the local-process path runs.
const DefaultClickHouseImage = "clickhouse/clickhouse-server:24.8"

const (
	dockerProbeTimeout  = 3 * time.Second
	containerTimeout    = 3 * time.Minute
	localStartTimeout   = 60 * time.Second
	serverReadyTimeout  = 30 * time.Second
	databaseDDLTimeout  = 30 * time.Second
	defaultDialTimeout  = "5s"
	testDatabasePrefix  = "test_"
	clickhouseScriptRel = "scripts/clickhouse.sh"
)

// clickhouseServer is the one server shared by the tests of a test binary.
type clickhouseServer struct {
	dsn    string // base DSN; its database part is replaced per test
	source string // where it came from, for messages
	err    error  // why no server could be had: the skip reason
	// fromEnv marks a server named in the environment: when that one fails
	// the tests fail, since somebody asked for it explicitly.
	fromEnv bool
}

var (
	clickhouseOnce   sync.Once
	sharedClickHouse clickhouseServer
)

// ClickHouse returns the DSN of a fresh, empty database on a ClickHouse
// server reached over the native protocol, e.g.
// "clickhouse://127.0.0.1:9000/test_ab12cd34ef56?dial_timeout=5s".
// The database is dropped when t ends, so tests never see each other's rows.
// Where the server comes from is described in the package documentation; t is
// skipped (failed under CI=true) when there is none.
func ClickHouse(t testing.TB) (dsn string) {
	t.Helper()
	clickhouseOnce.Do(func() { sharedClickHouse = findClickHouse() })
	if sharedClickHouse.err != nil {
		if sharedClickHouse.fromEnv {
			t.Fatalf("testenv: %v", sharedClickHouse.err)
		}
		unavailable(t, "ClickHouse", sharedClickHouse.err)
		return ""
	}
	dsn, err := freshDatabase(t, sharedClickHouse.dsn)
	if err != nil {
		t.Fatalf("testenv: ClickHouse from %s: %v", sharedClickHouse.source, err)
	}
	return dsn
}

// unavailable skips t, or fails it under CI where a missing server means a
// broken machine rather than a developer without ClickHouse.
func unavailable(t testing.TB, what string, reason error) {
	t.Helper()
	if ci := os.Getenv("CI"); ci != "" && ci != "false" && ci != "0" {
		t.Fatalf("testenv: no %s server under CI=%s: %v", what, ci, reason)
		return
	}
	t.Skipf("testenv: no %s server: %v", what, reason)
}

// findClickHouse tries every source in order and returns the first server
// that answers, or the list of what was tried.
func findClickHouse() clickhouseServer {
	if dsn, ok, err := clickhouseFromEnv(); ok {
		if err != nil {
			return clickhouseServer{err: err, fromEnv: true}
		}
		src := "$" + EnvClickHouseDSN
		if os.Getenv(EnvClickHouseDSN) == "" {
			src = "$" + EnvClickHouseAddr
		}
		if err := waitReady(dsn, serverReadyTimeout); err != nil {
			return clickhouseServer{err: fmt.Errorf("%s (%s) does not answer: %w", src, redact(dsn), err), fromEnv: true}
		}
		return clickhouseServer{dsn: dsn, source: src}
	}

	var tried []string
	tried = append(tried, fmt.Sprintf("$%s and $%s unset", EnvClickHouseDSN, EnvClickHouseAddr))

	if dsn, err := clickhouseFromDocker(); err == nil {
		return clickhouseServer{dsn: dsn, source: "testcontainers"}
	} else {
		tried = append(tried, "Docker: "+err.Error())
	}

	if dsn, err := clickhouseFromLocalProcess(); err == nil {
		return clickhouseServer{dsn: dsn, source: "local clickhouse-server"}
	} else {
		tried = append(tried, "local process: "+err.Error())
	}
	return clickhouseServer{err: errors.New(strings.Join(tried, "; "))}
}

// clickhouseFromEnv reports whether the environment names a server, and its
// DSN.
func clickhouseFromEnv() (dsn string, ok bool, err error) {
	if dsn := os.Getenv(EnvClickHouseDSN); dsn != "" {
		if _, err := clickhouse.ParseDSN(dsn); err != nil {
			return "", true, fmt.Errorf("$%s is not a valid DSN: %v", EnvClickHouseDSN, err)
		}
		return dsn, true, nil
	}
	if addr := os.Getenv(EnvClickHouseAddr); addr != "" {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return "", true, fmt.Errorf("$%s=%q is not host:port: %v", EnvClickHouseAddr, addr, err)
		}
		return "clickhouse://" + addr + "?dial_timeout=" + defaultDialTimeout, true, nil
	}
	return "", false, nil
}

// dockerSocket says where a Docker engine might listen, without talking to
// it: testcontainers' own discovery can take long or panic when there is
// none, so it runs only when this finds a candidate.
func dockerSocket() (string, error) {
	if h := os.Getenv("DOCKER_HOST"); h != "" {
		return h, nil
	}
	if h := os.Getenv("TESTCONTAINERS_DOCKER_SOCKET_OVERRIDE"); h != "" {
		return h, nil
	}
	candidates := []string{"/var/run/docker.sock"}
	if home, err := os.UserHomeDir(); err == nil {
		candidates = append(candidates,
			filepath.Join(home, ".docker", "run", "docker.sock"),
			filepath.Join(home, ".docker", "desktop", "docker.sock"))
	}
	if xdg := os.Getenv("XDG_RUNTIME_DIR"); xdg != "" {
		candidates = append(candidates, filepath.Join(xdg, "docker.sock"))
	}
	for _, c := range candidates {
		if fi, err := os.Stat(c); err == nil && fi.Mode()&os.ModeSocket != 0 {
			return "unix://" + c, nil
		}
	}
	return "", errors.New("no Docker engine (DOCKER_HOST unset, no docker.sock)")
}

// dockerAnswers asks the engine for a health answer within timeout. It never
// panics and never waits longer than timeout, even if the client ignores ctx.
func dockerAnswers(timeout time.Duration) error {
	if _, err := dockerSocket(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	result := make(chan error, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				result <- fmt.Errorf("testcontainers panicked: %v", r)
			}
		}()
		provider, err := testcontainers.ProviderDocker.GetProvider()
		if err != nil {
			result <- err
			return
		}
		defer provider.Close()
		result <- provider.Health(ctx)
	}()
	select {
	case err := <-result:
		if err != nil {
			return fmt.Errorf("docker engine does not answer: %w", err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("docker engine did not answer within %s", timeout)
	}
}

// clickhouseFromDocker starts a container for the whole test binary.
func clickhouseFromDocker() (dsn string, err error) {
	if err := dockerAnswers(dockerProbeTimeout); err != nil {
		return "", err
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("testcontainers panicked: %v", r)
		}
	}()
	image := os.Getenv(EnvClickHouseImage)
	if image == "" {
		image = DefaultClickHouseImage
	}
	password := randomHex(12)
	ctx, cancel := context.WithTimeout(context.Background(), containerTimeout)
	defer cancel()
	ctr, err := testcontainers.Run(ctx, image,
		testcontainers.WithExposedPorts("9000/tcp"),
		testcontainers.WithEnv(map[string]string{
			"CLICKHOUSE_USER":     "default",
			"CLICKHOUSE_PASSWORD": password,
		}),
		testcontainers.WithWaitStrategy(wait.ForListeningPort("9000/tcp").WithStartupTimeout(containerTimeout)),
	)
	if err != nil {
		if ctr != nil {
			_ = testcontainers.TerminateContainer(ctr)
		}
		return "", fmt.Errorf("start %s: %w", image, err)
	}
	atExit(func() { _ = testcontainers.TerminateContainer(ctr) })
	addr, err := ctr.PortEndpoint(ctx, "9000/tcp", "")
	if err != nil {
		return "", fmt.Errorf("container %s port 9000: %w", image, err)
	}
	dsn = (&url.URL{
		Scheme:   "clickhouse",
		User:     url.UserPassword("default", password),
		Host:     addr,
		RawQuery: "dial_timeout=" + defaultDialTimeout,
	}).String()
	if err := waitReady(dsn, serverReadyTimeout); err != nil {
		return "", fmt.Errorf("container %s does not answer: %w", image, err)
	}
	return dsn, nil
}

// clickhouseFromLocalProcess starts clickhouse-server from PATH with
// scripts/clickhouse.sh in a temporary folder.
func clickhouseFromLocalProcess() (string, error) {
	if _, err := exec.LookPath("clickhouse-server"); err != nil {
		return "", errors.New("clickhouse-server not on PATH (run scripts/deps.sh)")
	}
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	script := filepath.Join(root, clickhouseScriptRel)
	if _, err := os.Stat(script); err != nil {
		return "", fmt.Errorf("%s: %w", script, err)
	}
	dir, err := os.MkdirTemp("", "aiops-clickhouse-")
	if err != nil {
		return "", err
	}
	addr, err := runClickHouseScript(script, dir)
	if err != nil {
		_ = os.RemoveAll(dir)
		return "", err
	}
	stop := func() {
		cmd := exec.Command(script, "stop", dir)
		_ = cmd.Run()
		_ = os.RemoveAll(dir)
	}
	atExit(stop)
	startWatchdog(script, dir)
	return "clickhouse://" + addr + "?dial_timeout=" + defaultDialTimeout, nil
}

// runClickHouseScript starts the server in dir with the environment plus
// env (KEY=value, e.g. a port to take) and returns its native address.
func runClickHouseScript(script, dir string, env ...string) (addr string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), localStartTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, script, "start", dir)
	// The test server is throwaway and password-less: a developer's
	// password for their own server must not leak into it.
	cmd.Env = append(withoutEnv(os.Environ(), "AIOPS_CLICKHOUSE_PASSWORD"), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s start %s: %v: %s", script, dir, err, strings.TrimSpace(stderr.String()))
	}
	for _, line := range strings.Split(stdout.String(), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "CLICKHOUSE_ADDR="); ok {
			return v, nil
		}
	}
	return "", fmt.Errorf("%s start printed no CLICKHOUSE_ADDR: %q", script, stdout.String())
}

// startWatchdog runs a detached shell that stops the server once this test
// binary has exited, so that a binary killed by -timeout, or a package whose
// TestMain does not call Main, leaves no server behind.
func startWatchdog(script, dir string) {
	const watch = `while kill -0 "$0" 2>/dev/null; do sleep 1; done; "$1" stop "$2" >/dev/null 2>&1; rm -rf "$2"`
	cmd := exec.Command("/bin/sh", "-c", watch, fmt.Sprint(os.Getpid()), script, dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err == nil {
		_ = cmd.Process.Release()
	}
}

// killWithTest runs a detached shell that kills pid once this test
// process is gone, like startWatchdog: t.Cleanup does not run when the
// test binary is killed (a -timeout panic, SIGKILL), and a server left
// behind holds its port and memory for good.
func killWithTest(pid int) {
	const watch = `while kill -0 "$0" 2>/dev/null; do sleep 1; done; kill -9 "$1" 2>/dev/null`
	cmd := exec.Command("/bin/sh", "-c", watch, fmt.Sprint(os.Getpid()), fmt.Sprint(pid))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err == nil {
		_ = cmd.Process.Release()
	}
}

// repoRoot walks up from the working directory (a test runs in its package
// folder) to the folder holding go.work.
func repoRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for dir := wd; ; {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.work above %s: cannot find %s", wd, clickhouseScriptRel)
		}
		dir = parent
	}
}

// waitReady pings dsn until it answers or timeout passes: a server just
// started may accept connections before it answers queries.
func waitReady(dsn string, timeout time.Duration) error {
	opts, err := clickhouse.ParseDSN(dsn)
	if err != nil {
		return err
	}
	conn, err := clickhouse.Open(opts)
	if err != nil {
		return err
	}
	defer conn.Close()
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = conn.Ping(ctx)
		cancel()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// freshDatabase creates a database with a random name on the server of base
// and returns base pointing at it; t's cleanup drops it.
func freshDatabase(t testing.TB, base string) (string, error) {
	u, err := url.Parse(base)
	if err != nil {
		return "", fmt.Errorf("DSN %s: %v", redact(base), err)
	}
	opts, err := clickhouse.ParseDSN(base)
	if err != nil {
		return "", fmt.Errorf("DSN %s: %v", redact(base), err)
	}
	opts.Auth.Database = "default"
	conn, err := clickhouse.Open(opts)
	if err != nil {
		return "", err
	}
	name := testDatabasePrefix + randomHex(6)
	ctx, cancel := context.WithTimeout(context.Background(), databaseDDLTimeout)
	defer cancel()
	// name is generated above from hex digits only, so quoting is enough.
	if err := conn.Exec(ctx, "CREATE DATABASE `"+name+"`"); err != nil {
		conn.Close()
		return "", fmt.Errorf("create database %s: %w", name, err)
	}
	t.Cleanup(func() {
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), databaseDDLTimeout)
		defer cancel()
		if err := conn.Exec(ctx, "DROP DATABASE IF EXISTS `"+name+"`"); err != nil {
			t.Errorf("testenv: drop database %s: %v", name, err)
		}
	})

	u.Path = "/" + name
	q := u.Query()
	q.Del("database")
	if q.Get("dial_timeout") == "" {
		q.Set("dial_timeout", defaultDialTimeout)
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// redact hides the password of a DSN, in the user part or a query
// parameter, for messages.
func redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "(unparsable DSN)"
	}
	if q := u.Query(); q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}

func withoutEnv(env []string, name string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, name+"=") {
			out = append(out, kv)
		}
	}
	return out
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
