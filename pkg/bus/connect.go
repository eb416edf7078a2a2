package bus

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aiops-dev/aiops/pkg/config"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
)

// TLSConfig selects the files for a TLS connection. CAFile alone verifies the
// server; CertFile and KeyFile together add a client certificate.
type TLSConfig struct {
	CAFile     string `yaml:"ca_file"`
	CertFile   string `yaml:"cert_file"`
	KeyFile    string `yaml:"key_file"`
	ServerName string `yaml:"server_name"`
}

func (t TLSConfig) enabled() bool {
	return t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" || t.ServerName != ""
}

// Config says how to reach NATS. Secrets come from files (the *File fields)
// or are filled in by the caller from the environment (Password, Token); they
// have no yaml key so that they cannot sit in a config file, and they are never
// logged.
type Config struct {
	// URLs lists the servers; several for a cluster.
	URLs []string `yaml:"urls"`
	// Name is the connection name shown by the server's monitoring.
	Name            string    `yaml:"name"`
	CredentialsFile string    `yaml:"credentials_file"`
	User            string    `yaml:"user"`
	PasswordFile    string    `yaml:"password_file"`
	Password        string    `yaml:"-" env:"password"`
	TokenFile       string    `yaml:"token_file"`
	Token           string    `yaml:"-" env:"token"`
	TLS             TLSConfig `yaml:"tls"`
	// ConnectTimeout bounds each dial; 0 means 5s.
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
	// ReconnectWait is the pause between reconnect attempts; 0 means 1s.
	ReconnectWait time.Duration `yaml:"reconnect_wait"`
	// MaxReconnects bounds reconnect attempts; 0 or negative reconnects
	// forever, because a service without its bus is useless and should keep
	// trying rather than exit.
	MaxReconnects int `yaml:"max_reconnects"`
}

// ErrInvalidConfig is wrapped by every Validate error.
var ErrInvalidConfig = fmt.Errorf("bus: %w", config.ErrInvalidConfig)

func invalid(field, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrInvalidConfig, field, fmt.Sprintf(format, args...))
}

// RedactedURLs are URLs with any secret they carry replaced: a password,
// or a user that stands alone, which NATS reads as a token
// (nats://TOKEN@host). For start-up summaries and logs.
func (c Config) RedactedURLs() []string {
	out := make([]string, len(c.URLs))
	for i, raw := range c.URLs {
		u, err := url.Parse(raw)
		switch {
		case err != nil || atAfterHost(raw):
			out[i] = "(not a URL)"
			continue
		case u.User == nil:
		case hasPassword(u.User):
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		default:
			u.User = url.User("xxxxx")
		}
		out[i] = u.String()
	}
	return out
}

// atAfterHost reports an '@' after the URL's host part, which ends at the
// first '/', '?' or '#': the sign of a token or password holding one of
// those, not percent-encoded, which cuts the user part short (the parser
// then takes the secret's start for the host and the rest for the path,
// where RedactedURLs would show it).
func atAfterHost(raw string) bool {
	_, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return false
	}
	i := strings.IndexAny(rest, "/?#")
	return i >= 0 && strings.Contains(rest[i:], "@")
}

func hasPassword(u *url.Userinfo) bool {
	_, ok := u.Password()
	return ok
}

// Validate checks the config without touching files or the network.
func (c Config) Validate() error {
	if len(c.URLs) == 0 {
		return invalid("urls", "at least one server URL is required")
	}
	for i, raw := range c.URLs {
		u, err := url.Parse(raw)
		if err != nil {
			// url.Error repeats the URL, which may hold a password.
			return invalid(fmt.Sprintf("urls[%d]", i), "not a URL")
		}
		if atAfterHost(raw) {
			// Not echoed: the host and what follows it hold the secret.
			return invalid(fmt.Sprintf("urls[%d]", i), "an '@' after the host: a token or password holding '/', '?' or '#' must percent-encode them (%%2F, %%3F, %%23), as must an '@' (%%40); or use token_file or password_file")
		}
		switch u.Scheme {
		case "nats", "tls", "ws", "wss":
		default:
			return invalid(fmt.Sprintf("urls[%d]", i), "scheme %q, want nats, tls, ws or wss", u.Scheme)
		}
		if u.Host == "" {
			return invalid(fmt.Sprintf("urls[%d]", i), "no host")
		}
	}
	if c.Password != "" && c.PasswordFile != "" {
		return invalid("password_file", "set either password_file or the password from the environment, not both")
	}
	if c.Token != "" && c.TokenFile != "" {
		return invalid("token_file", "set either token_file or the token from the environment, not both")
	}
	hasPassword := c.Password != "" || c.PasswordFile != ""
	hasToken := c.Token != "" || c.TokenFile != ""
	if hasPassword && c.User == "" {
		return invalid("user", "a password is set but no user")
	}
	if c.User != "" && !hasPassword {
		return invalid("password_file", "user %q has no password (password_file or environment)", c.User)
	}
	methods := 0
	for _, b := range []bool{c.CredentialsFile != "", c.User != "", hasToken} {
		if b {
			methods++
		}
	}
	if methods > 1 {
		return invalid("credentials_file", "choose one of credentials_file, user/password or token")
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		if c.TLS.CertFile == "" {
			return invalid("tls.cert_file", "key_file is set without cert_file")
		}
		return invalid("tls.key_file", "cert_file is set without key_file")
	}
	if c.ConnectTimeout < 0 {
		return invalid("connect_timeout", "negative (%s)", c.ConnectTimeout)
	}
	if c.ReconnectWait < 0 {
		return invalid("reconnect_wait", "negative (%s)", c.ReconnectWait)
	}
	return nil
}

// readSecret reads a secret file; trailing newlines from editors are not part
// of the secret.
// readSecret reads a secret file the one way the project does
// (config.ReadSecretFile).
func readSecret(field, path string) (string, error) {
	s, err := config.ReadSecretFile(path)
	if err != nil {
		return "", invalid(field, "%v", err)
	}
	return s, nil
}

func (t TLSConfig) build() (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("bus: tls.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, invalid("tls.ca_file", "no PEM certificate in %s", t.CAFile)
		}
		tc.RootCAs = pool
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("bus: tls.cert_file/tls.key_file: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// options turns the config into nats.go options, reading secret files. The
// logging handlers are added by Connect.
func (c Config) options() ([]nats.Option, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	timeout := c.ConnectTimeout
	if timeout == 0 {
		timeout = 5 * time.Second
	}
	wait := c.ReconnectWait
	if wait == 0 {
		wait = time.Second
	}
	maxReconnects := c.MaxReconnects
	if maxReconnects <= 0 {
		maxReconnects = -1
	}
	opts := []nats.Option{
		nats.Timeout(timeout),
		nats.ReconnectWait(wait),
		nats.MaxReconnects(maxReconnects),
		// Without jitter every client of a restarted cluster reconnects at once.
		nats.ReconnectJitter(100*time.Millisecond, time.Second),
		// No reconnect buffer: a publish while disconnected fails at once
		// instead of sitting in the client and going out after the reconnect.
		// Otherwise the ingest gateway answers 503 ("not accepted, retry")
		// for events that are later stored anyway, and a producer's retry
		// stores them twice when they carry no id of their own.
		nats.ReconnectBufSize(-1),
		// A write to a dead peer holds the connection's lock, and every
		// publisher waits behind it; the default bound is a minute, far
		// longer than any request that publishes should wait.
		nats.FlusherTimeout(10 * time.Second),
	}
	if c.Name != "" {
		opts = append(opts, nats.Name(c.Name))
	}
	if c.CredentialsFile != "" {
		if _, err := os.Stat(c.CredentialsFile); err != nil {
			return nil, fmt.Errorf("bus: credentials_file: %w", err)
		}
		opts = append(opts, nats.UserCredentials(c.CredentialsFile))
	}
	if c.User != "" {
		pw := c.Password
		if c.PasswordFile != "" {
			var err error
			if pw, err = readSecret("password_file", c.PasswordFile); err != nil {
				return nil, err
			}
		}
		opts = append(opts, nats.UserInfo(c.User, pw))
	}
	if c.Token != "" || c.TokenFile != "" {
		tok := c.Token
		if c.TokenFile != "" {
			var err error
			if tok, err = readSecret("token_file", c.TokenFile); err != nil {
				return nil, err
			}
		}
		opts = append(opts, nats.Token(tok))
	}
	if c.TLS.enabled() {
		tc, err := c.TLS.build()
		if err != nil {
			return nil, err
		}
		opts = append(opts, nats.Secure(tc))
	}
	return opts, nil
}

// Connect dials NATS and returns the connection and its JetStream context. It
// fails if the server answers but JetStream is not enabled, so a service
// notices at start-up rather than at its first publish. Disconnects and
// reconnects are logged with the redacted server URL, never a secret.
func Connect(ctx context.Context, cfg Config, log zerolog.Logger) (*nats.Conn, jetstream.JetStream, error) {
	opts, err := cfg.options()
	if err != nil {
		return nil, nil, err
	}
	// The server this connection is on, for the disconnect warning: when
	// its handler runs the client is on no server (ConnectedUrl is empty)
	// or on the next one already, and the warning would name that one.
	var current atomic.Pointer[string]
	onServer := func(nc *nats.Conn) {
		u := nc.ConnectedUrlRedacted()
		current.Store(&u)
	}
	lostServer := func() string {
		if u := current.Load(); u != nil {
			return *u
		}
		return ""
	}
	opts = append(opts,
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			// A close this process asked for (Close, or the drain of
			// every clean stop) also calls this handler, without an
			// error: no warning, the closed handler says it.
			if err == nil && nc.IsClosed() {
				return
			}
			ev := log.Warn().Str("server", lostServer())
			if err != nil {
				ev = ev.Err(err)
			}
			ev.Msg("nats disconnected")
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			onServer(nc)
			log.Info().Str("server", nc.ConnectedUrlRedacted()).Uint64("reconnects", nc.Stats().Reconnects).Msg("nats reconnected")
		}),
		nats.ClosedHandler(func(nc *nats.Conn) {
			ev := log.Info()
			if err := nc.LastError(); err != nil {
				ev = log.Warn().Err(err)
			}
			ev.Msg("nats connection closed")
		}),
		nats.ErrorHandler(func(nc *nats.Conn, sub *nats.Subscription, err error) {
			ev := log.Error().Err(err)
			if sub != nil {
				ev = ev.Str("subject", sub.Subject)
			}
			ev.Msg("nats async error")
		}),
	)
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	nc, err := nats.Connect(strings.Join(cfg.URLs, ","), opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("bus: connect to %d server(s): %w", len(cfg.URLs), err)
	}
	onServer(nc)
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("bus: jetstream: %w", err)
	}
	if _, err := js.AccountInfo(ctx); err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("bus: jetstream not available on %s: %w", nc.ConnectedUrlRedacted(), err)
	}
	log.Info().Str("server", nc.ConnectedUrlRedacted()).Str("name", cfg.Name).Msg("nats connected")
	return nc, js, nil
}
