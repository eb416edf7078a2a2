package aiops

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/aiops-dev/aiops/pkg/config"
	"github.com/aiops-dev/aiops/pkg/service"
)

// EmbeddedNATSConfig configures the NATS server `aiops run` starts in its
// own process when no external NATS URL is given.
type EmbeddedNATSConfig struct {
	// Embedded starts the server in this process (the default); false
	// means bus.urls names an external NATS.
	Embedded bool `yaml:"embedded"`
	// Listen is where this process's services and outside producers reach
	// the server.
	Listen string `yaml:"listen"`
	// StoreDir holds the JetStream file store, so a restart keeps every
	// stream and consumer position.
	StoreDir string `yaml:"store_dir"`
	// TokenFile (or the environment variable AIOPS_NATS__TOKEN, read into
	// Token) protects the listener. Required when Listen is not loopback.
	TokenFile string `yaml:"token_file"`
	Token     string `yaml:"-" env:"token"`
	// GenerateTokenFile, when no token is configured, holds a random token
	// created at the first start (mode 0600), so even the loopback listener
	// is authenticated; producers on this machine read it from there.
	GenerateTokenFile string `yaml:"generate_token_file"`
	// MaxStore bounds the disk JetStream may use, in bytes (0: server default).
	MaxStore int64 `yaml:"max_store"`
}

// Validate names the field that is wrong.
func (c EmbeddedNATSConfig) Validate() error {
	if !c.Embedded {
		return nil
	}
	if c.StoreDir == "" {
		return errors.New("nats.store_dir: is required")
	}
	host, port, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return fmt.Errorf("nats.listen: %q is not host:port: %v", c.Listen, err)
	}
	if _, err := listenPort(port); err != nil {
		return fmt.Errorf("nats.listen: %q: %v", c.Listen, err)
	}
	if !service.IsLoopbackHost(host) && c.Token == "" && c.TokenFile == "" && c.GenerateTokenFile == "" {
		return fmt.Errorf("nats.listen: %q is reachable from other machines; set nats.token_file or AIOPS_NATS__TOKEN, or listen on 127.0.0.1", c.Listen)
	}
	return nil
}

// listenPort is the port of a listen address as nats-server takes it:
// 0 asks for a free port, which nats-server spells -1 (its 0 is 4222).
func listenPort(port string) (int, error) {
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return 0, fmt.Errorf("port %q is not a number from 0 (any free port) to 65535", port)
	}
	if n == 0 {
		return server.RANDOM_PORT, nil
	}
	return n, nil
}

// token resolves the server's token: the environment, then the token file,
// then a generated one. A short token is refused as on every other
// listener: NATS has no limit on failed attempts to slow a guesser.
func (c EmbeddedNATSConfig) token() (string, error) {
	switch {
	case c.Token != "":
		return c.Token, config.CheckTokenLength("AIOPS_NATS__TOKEN", c.Token)
	case c.TokenFile != "":
		t, err := config.Secret(c.TokenFile, "")
		if err != nil {
			return "", fmt.Errorf("nats.token_file: %w", err)
		}
		return t, config.CheckTokenLength("nats.token_file", t)
	case c.GenerateTokenFile != "":
		t, err := config.ReadOrCreateToken(c.GenerateTokenFile)
		if err != nil {
			return "", fmt.Errorf("nats.generate_token_file: %w", err)
		}
		return t, nil
	}
	return "", nil
}

// storeLockFile, in nats.store_dir, is locked (flock) by the `aiops run`
// whose embedded NATS uses the store, and holds its pid: two servers on
// one JetStream store would each write it as its own.
const storeLockFile = "aiops.lock"

var errLocked = errors.New("locked")

// lockStoreDir takes the store's lock for as long as the file returned
// is open, or says which process holds it.
func lockStoreDir(dir string) (*os.File, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("nats.store_dir: %w", err)
	}
	path := filepath.Join(dir, storeLockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("nats.store_dir: %w", err)
	}
	if err := tryLock(f); err != nil {
		f.Close()
		if errors.Is(err, errLocked) {
			return nil, fmt.Errorf("nats.store_dir %s is in use by another aiops: %s holds %s. "+
				"Two pipelines must not share one JetStream store: stop that one, or give this one its own nats.store_dir and listen addresses",
				dir, lockHolder(path), path)
		}
		return nil, fmt.Errorf("nats.store_dir: lock %s: %w", path, err)
	}
	// The pid is for the message above; the lock itself is the flock.
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return f, nil
}

// lockHolder names the process whose pid the lock file holds: "pid N",
// with its command name where /proc tells it ("pid N (aiops)").
func lockHolder(path string) string {
	data, _ := os.ReadFile(path)
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 0 {
		return "a process that has not written its pid yet"
	}
	if comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); err == nil {
		return fmt.Sprintf("pid %d (%s)", pid, strings.TrimSpace(string(comm)))
	}
	return fmt.Sprintf("pid %d", pid)
}

// startEmbeddedNATS starts a JetStream-enabled nats-server in this process
// and returns it with the URL clients should use.
func startEmbeddedNATS(cfg EmbeddedNATSConfig, token string) (*server.Server, error) {
	opts := &server.Options{
		ServerName:    "aiops-embedded",
		JetStream:     true,
		StoreDir:      filepath.Clean(cfg.StoreDir),
		NoSigs:        true,
		NoLog:         true,
		Authorization: token,
		MaxPayload:    8 << 20,
	}
	if cfg.MaxStore > 0 {
		opts.JetStreamMaxStore = cfg.MaxStore
	}
	host, portText, _ := net.SplitHostPort(cfg.Listen)
	port, err := listenPort(portText)
	if err != nil {
		return nil, fmt.Errorf("nats.listen: %w", err)
	}
	opts.Host, opts.Port = host, port
	if err := os.MkdirAll(opts.StoreDir, 0o700); err != nil {
		return nil, fmt.Errorf("nats.store_dir: %w", err)
	}
	// nats-server only logs a failed bind (and logging is off here), then
	// never becomes ready: try the address first so "address already in
	// use" (another NATS on 4222, say) is said at once.
	probe, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("nats.listen: %w", err)
	}
	bound := probe.Addr()
	probe.Close()
	// Validate let a server without a token listen on a loopback name;
	// decide by what the name resolved to ("localhost" that /etc/hosts
	// or a DNS search domain maps elsewhere).
	if tcp, ok := bound.(*net.TCPAddr); ok && token == "" && !tcp.IP.IsLoopback() {
		return nil, fmt.Errorf("nats.listen: %q binds %s, which other machines can reach, and the server has no token: "+
			"set nats.generate_token_file, nats.token_file or AIOPS_NATS__TOKEN, or listen on 127.0.0.1", cfg.Listen, tcp.IP)
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded NATS: %w", err)
	}
	ns.Start()
	if !ns.ReadyForConnections(30 * time.Second) {
		ns.Shutdown()
		return nil, errors.New("embedded NATS: not ready after 30s")
	}
	return ns, nil
}

// clientURLToken is how a client on this machine reaches the embedded
// server of this configuration: its listen address (one that listens on
// every address reached on loopback) and its token, read and never made:
// a generate_token_file that does not exist yet is no token (the server
// was not started with one).
func (c EmbeddedNATSConfig) clientURLToken() (string, string, error) {
	host, port, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return "", "", fmt.Errorf("nats.listen: %q is not host:port: %v", c.Listen, err)
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	url := "nats://" + net.JoinHostPort(host, port)
	if c.Token == "" && c.TokenFile == "" && c.GenerateTokenFile != "" {
		if _, err := os.Stat(c.GenerateTokenFile); errors.Is(err, os.ErrNotExist) {
			return url, "", nil
		}
		t, err := config.Secret(c.GenerateTokenFile, "")
		if err != nil {
			return "", "", fmt.Errorf("nats.generate_token_file: %w", err)
		}
		return url, t, nil
	}
	t, err := c.token()
	return url, t, err
}
