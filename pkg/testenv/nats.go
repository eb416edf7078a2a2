package testenv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/wait"
)

// EnvNATSURL names the environment variable that points tests at an existing
// JetStream-enabled NATS server instead of starting one.
const EnvNATSURL = "AIOPS_TEST_NATS_URL"

// NATSImage is the container image used when a Docker engine answers.
const NATSImage = "nats:2.10"

// NATS returns the URL of a JetStream-enabled NATS server for the test, from
// the first source that works: $AIOPS_TEST_NATS_URL, a NATSImage container
// started once per test binary when a Docker engine answers (stopped by
// Main/Shutdown), or an embedded nats-server started for this test alone and
// stopped by t.Cleanup. An embedded server costs milliseconds, so each test
// gets its own; on a shared server (the first two) tests must use stream and
// subject names of their own.
//
// A test that needs to stop or restart the server uses StartNATS instead,
// because only the embedded server can be controlled that way.
func NATS(t testing.TB) string {
	t.Helper()
	if u := os.Getenv(EnvNATSURL); u != "" {
		return u
	}
	natsContainerOnce.Do(func() { natsContainerURL, natsContainerErr = natsFromDocker() })
	if natsContainerErr == nil {
		return natsContainerURL
	}
	return StartNATS(t).URL()
}

var (
	natsContainerOnce sync.Once
	natsContainerURL  string
	natsContainerErr  error
)

// natsFromDocker starts NATSImage when a Docker engine answers; without one
// it fails within dockerProbeTimeout, never hanging or panicking.
func natsFromDocker() (u string, err error) {
	if err := dockerAnswers(dockerProbeTimeout); err != nil {
		return "", err
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("testcontainers panicked: %v", r)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), containerTimeout)
	defer cancel()
	ctr, err := testcontainers.Run(ctx, NATSImage,
		testcontainers.WithCmd("-js"),
		testcontainers.WithExposedPorts("4222/tcp"),
		testcontainers.WithWaitStrategy(wait.ForLog("Server is ready").WithStartupTimeout(containerTimeout)),
	)
	if err != nil {
		if ctr != nil {
			_ = testcontainers.TerminateContainer(ctr)
		}
		return "", fmt.Errorf("start %s: %w", NATSImage, err)
	}
	atExit(func() { _ = testcontainers.TerminateContainer(ctr) })
	u, err = ctr.PortEndpoint(ctx, "4222/tcp", "nats")
	if err != nil {
		return "", fmt.Errorf("container %s port 4222: %w", NATSImage, err)
	}
	return u, nil
}

// NATSServer is an embedded JetStream server owned by one test. It keeps its
// port and store directory across Restart so that clients reconnect to it and
// find the streams they left, which is what crash tests need.
type NATSServer struct {
	t        testing.TB
	storeDir string
	port     int

	mu  sync.Mutex
	srv *server.Server
}

// StartNATS starts an embedded JetStream server on 127.0.0.1, on a random
// port below the ephemeral range, with a store directory under
// t.TempDir(); t.Cleanup shuts it down.
func StartNATS(t testing.TB) *NATSServer {
	t.Helper()
	s := &NATSServer{t: t, storeDir: t.TempDir()}
	// Below the ephemeral range (StablePort), so that no outgoing connection
	// takes the port while a test has the server down for a Restart. A
	// port free at the check may still be taken before the server binds it:
	// a few tries.
	var err error
	for range 5 {
		if s.port, err = strconv.Atoi(StablePort(t)); err == nil {
			if err = s.start(); err == nil {
				break
			}
		}
	}
	if err != nil {
		t.Fatalf("testenv: start embedded NATS: %v", err)
	}
	t.Cleanup(s.Shutdown)
	return s
}

func (s *NATSServer) start() error {
	// A taken port fails here at once: the server would only log it and
	// leave ReadyForConnections to wait its whole 10 s.
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)))
	if err != nil {
		return err
	}
	l.Close()
	opts := &server.Options{
		ServerName: "aiops-test",
		Host:       "127.0.0.1",
		Port:       s.port,
		JetStream:  true,
		StoreDir:   s.storeDir,
		NoLog:      true,
		NoSigs:     true,
		// Tests publish hundreds of thousands of small messages; the default
		// limits are far above that, so nothing to tune here.
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return err
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return errors.New("server not ready for connections after 10s")
	}
	addr, ok := srv.Addr().(*net.TCPAddr)
	if !ok {
		srv.Shutdown()
		return fmt.Errorf("unexpected listener address %v", srv.Addr())
	}
	s.mu.Lock()
	s.srv = srv
	s.port = addr.Port
	s.mu.Unlock()
	return nil
}

// URL is the client URL, stable across Restart.
func (s *NATSServer) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return (&url.URL{Scheme: "nats", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))}).String()
}

// StoreDir is the JetStream store directory, stable across Restart.
func (s *NATSServer) StoreDir() string { return s.storeDir }

// Shutdown stops the server and waits until it is down. It is idempotent.
func (s *NATSServer) Shutdown() {
	s.mu.Lock()
	srv := s.srv
	s.srv = nil
	s.mu.Unlock()
	if srv != nil {
		srv.Shutdown()
		srv.WaitForShutdown()
	}
}

// Restart stops the server (if running) and starts it again on the same port
// with the same store directory.
func (s *NATSServer) Restart() {
	s.t.Helper()
	s.Shutdown()
	var err error
	// The port can stay in TIME_WAIT for a moment after shutdown.
	for i := 0; i < 50; i++ {
		if err = s.start(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.t.Fatalf("testenv: restart embedded NATS on port %d: %v", s.port, err)
}

// NarrowStream makes stream take only subjects until the returned restore
// is called: a publish to another subject it took fails (no stream answers),
// as when the stream is out of reach for one kind of output while the
// inputs go on.
func NarrowStream(t testing.TB, js jetstream.JetStream, stream string, subjects ...string) (restore func()) {
	t.Helper()
	ctx := context.Background()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	all := s.CachedInfo().Config
	some := all
	some.Subjects = subjects
	if _, err := js.UpdateStream(ctx, some); err != nil {
		t.Fatal(err)
	}
	return func() {
		t.Helper()
		if _, err := js.UpdateStream(ctx, all); err != nil {
			t.Fatal(err)
		}
	}
}
