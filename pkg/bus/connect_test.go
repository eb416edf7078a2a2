package bus

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"
)

func TestConfigValidate(t *testing.T) {
	ok := Config{URLs: []string{"nats://127.0.0.1:4222"}}
	if err := ok.Validate(); err != nil {
		t.Fatalf("minimal config: %v", err)
	}
	for _, tc := range []struct {
		field string
		edit  func(*Config)
	}{
		{"urls", func(c *Config) { c.URLs = nil }},
		{"urls[1]", func(c *Config) { c.URLs = append(c.URLs, "http://x:1") }},
		{"urls[0]", func(c *Config) { c.URLs = []string{"nats://"} }},
		{"urls[0]", func(c *Config) { c.URLs = []string{"nats://a b:1:%%"} }},
		{"password_file", func(c *Config) { c.User = "u"; c.Password = "p"; c.PasswordFile = "/f" }},
		{"token_file", func(c *Config) { c.Token = "t"; c.TokenFile = "/f" }},
		{"user", func(c *Config) { c.Password = "p" }},
		{"password_file", func(c *Config) { c.User = "u" }},
		{"credentials_file", func(c *Config) { c.CredentialsFile = "/c"; c.Token = "t" }},
		{"credentials_file", func(c *Config) { c.User = "u"; c.Password = "p"; c.TokenFile = "/t" }},
		{"tls.key_file", func(c *Config) { c.TLS.CertFile = "/c" }},
		{"tls.cert_file", func(c *Config) { c.TLS.KeyFile = "/k" }},
		{"connect_timeout", func(c *Config) { c.ConnectTimeout = -time.Second }},
		{"reconnect_wait", func(c *Config) { c.ReconnectWait = -time.Second }},
	} {
		c := ok
		tc.edit(&c)
		err := c.Validate()
		if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.field+":") {
			t.Errorf("%s: err = %v, want ErrInvalidConfig naming %s", tc.field, err, tc.field)
		}
	}
	// A URL with a password must not come back in the error.
	err := Config{URLs: []string{"ftp://user:hunter2@host:1"}}.Validate()
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("err = %v: missing, or leaks the password", err)
	}
}

// applyOptions builds the nats.Options a config produces.
func applyOptions(t *testing.T, c Config) nats.Options {
	t.Helper()
	opts, err := c.options()
	if err != nil {
		t.Fatal(err)
	}
	o := nats.GetDefaultOptions()
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			t.Fatal(err)
		}
	}
	return o
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConfigOptions(t *testing.T) {
	url := []string{"nats://127.0.0.1:4222"}
	o := applyOptions(t, Config{URLs: url, Name: "ingest", User: "svc", PasswordFile: writeFile(t, "pw", "s3cret\n")})
	if o.User != "svc" || o.Password != "s3cret" || o.Name != "ingest" {
		t.Fatalf("user/password/name: %q %q %q", o.User, o.Password, o.Name)
	}
	if o.MaxReconnect != -1 || o.ReconnectWait != time.Second || o.Timeout != 5*time.Second {
		t.Fatalf("defaults: max reconnect %d wait %s timeout %s", o.MaxReconnect, o.ReconnectWait, o.Timeout)
	}
	o = applyOptions(t, Config{URLs: url, User: "svc", Password: "from-env", MaxReconnects: 7, ReconnectWait: 3 * time.Second, ConnectTimeout: time.Second})
	if o.Password != "from-env" || o.MaxReconnect != 7 || o.ReconnectWait != 3*time.Second || o.Timeout != time.Second {
		t.Fatalf("explicit: %q %d %s %s", o.Password, o.MaxReconnect, o.ReconnectWait, o.Timeout)
	}
	o = applyOptions(t, Config{URLs: url, TokenFile: writeFile(t, "tok", "t0k\r\n")})
	if o.Token != "t0k" || o.User != "" {
		t.Fatalf("token: %q", o.Token)
	}
	o = applyOptions(t, Config{URLs: url, Token: "env-token"})
	if o.Token != "env-token" {
		t.Fatalf("token from env: %q", o.Token)
	}
	creds := writeFile(t, "svc.creds", "placeholder; nats.go reads it at connect time")
	o = applyOptions(t, Config{URLs: url, CredentialsFile: creds})
	if o.UserJWT == nil || o.SignatureCB == nil {
		t.Fatal("credentials file not mapped to JWT and signature callbacks")
	}
	if _, err := (Config{URLs: url, CredentialsFile: "/nonexistent/x.creds"}).options(); err == nil || !strings.Contains(err.Error(), "credentials_file") {
		t.Fatalf("missing credentials file: err = %v", err)
	}
	if _, err := (Config{URLs: url, User: "u", PasswordFile: writeFile(t, "empty", "\n")}).options(); err == nil || !strings.Contains(err.Error(), "password_file") {
		t.Fatalf("empty password file: err = %v", err)
	}

	pki := newTestPKI(t)
	o = applyOptions(t, Config{URLs: url, TLS: TLSConfig{CAFile: pki.caFile, CertFile: pki.certFile, KeyFile: pki.keyFile, ServerName: "bus.test"}})
	if !o.Secure || o.TLSConfig == nil || o.TLSConfig.RootCAs == nil || len(o.TLSConfig.Certificates) != 1 || o.TLSConfig.ServerName != "bus.test" || o.TLSConfig.MinVersion != tls.VersionTLS12 {
		t.Fatalf("tls not mapped: %+v", o.TLSConfig)
	}
	if _, err := (Config{URLs: url, TLS: TLSConfig{CAFile: writeFile(t, "ca.pem", "not pem")}}).options(); err == nil || !strings.Contains(err.Error(), "tls.ca_file") {
		t.Fatalf("bad CA file: err = %v", err)
	}
}

// Connect authenticates with a password from a file, over TLS, and logs the
// connection without the password.
func TestConnectWithPasswordOverTLS(t *testing.T) {
	pki := newTestPKI(t)
	srvTLS, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: pki.certFile, KeyFile: pki.keyFile})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: server.RANDOM_PORT, JetStream: true, StoreDir: t.TempDir(),
		NoLog: true, NoSigs: true,
		Users:     []*server.User{{Username: "svc", Password: "pa55-w0rd-xyz"}},
		TLSConfig: srvTLS, TLS: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	t.Cleanup(srv.Shutdown)
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("server not ready")
	}
	url := "tls://" + srv.Addr().String()
	// nats.go calls the logging handlers from its own goroutines.
	var logs lockedBuffer
	log := zerolog.New(&logs)
	ctx := testCtx(t)
	cfg := Config{URLs: []string{url}, Name: "test", User: "svc", PasswordFile: writeFile(t, "pw", "pa55-w0rd-xyz\n"),
		TLS: TLSConfig{CAFile: pki.caFile, ServerName: "bus.test"}}
	nc, js, err := Connect(ctx, cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	if !nc.IsConnected() || nc.TLSRequired() == false {
		t.Fatal("not connected over TLS")
	}
	if _, err := js.AccountInfo(ctx); err != nil {
		t.Fatal(err)
	}
	nc.Close()
	cfg.PasswordFile = writeFile(t, "wrong", "wrong-pa55")
	if _, _, err := Connect(ctx, cfg, log); err == nil {
		t.Fatal("wrong password accepted")
	}
	if strings.Contains(logs.String(), "pa55") {
		t.Fatalf("a password reached the log:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "nats connected") {
		t.Fatalf("connection not logged:\n%s", logs.String())
	}
}

func TestConnectRefusesServerWithoutJetStream(t *testing.T) {
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	t.Cleanup(srv.Shutdown)
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("server not ready")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _, err = Connect(ctx, Config{URLs: []string{"nats://" + srv.Addr().String()}}, zerolog.Nop())
	if err == nil || !strings.Contains(err.Error(), "jetstream not available") {
		t.Fatalf("err = %v, want jetstream not available", err)
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type testPKI struct{ caFile, certFile, keyFile string }

// newTestPKI writes a CA and a server/client certificate for "bus.test" and
// 127.0.0.1 signed by it.
func newTestPKI(t *testing.T) testPKI {
	t.Helper()
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "aiops test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "bus.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: []string{"bus.test"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	p := testPKI{caFile: filepath.Join(dir, "ca.pem"), certFile: filepath.Join(dir, "cert.pem"), keyFile: filepath.Join(dir, "key.pem")}
	for path, block := range map[string]*pem.Block{
		p.caFile:   {Type: "CERTIFICATE", Bytes: caDER},
		p.certFile: {Type: "CERTIFICATE", Bytes: der},
		p.keyFile:  {Type: "EC PRIVATE KEY", Bytes: keyDER},
	} {
		if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// A close the service asked for (the drain at every clean stop) is no
// warning: every `aiops run` stopped with Ctrl-C logged WRN "nats
// disconnected". A connection lost to the server still warns.
func TestConnectLogsOnlyAnUnplannedDisconnectAsAWarning(t *testing.T) {
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	t.Cleanup(srv.Shutdown)
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("server not ready")
	}
	connect := func(logs *lockedBuffer) *nats.Conn {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		nc, _, err := Connect(ctx, Config{URLs: []string{"nats://" + srv.Addr().String()}, ReconnectWait: 10 * time.Millisecond},
			zerolog.New(logs).Level(zerolog.InfoLevel))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		return nc
	}

	var planned lockedBuffer
	nc := connect(&planned)
	if err := nc.Drain(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the closed handler", func() bool { return strings.Contains(planned.String(), "nats connection closed") })
	if strings.Contains(planned.String(), `"level":"warn"`) {
		t.Fatalf("a planned close logged a warning:\n%s", planned.String())
	}

	var lost lockedBuffer
	connect(&lost)
	srv.Shutdown()
	waitFor(t, "the disconnect handler", func() bool { return strings.Contains(lost.String(), "nats disconnected") })
	if !strings.Contains(lost.String(), `"level":"warn"`) {
		t.Fatalf("a connection lost to the server logged no warning:\n%s", lost.String())
	}
}

// The warning of a lost connection names the server that was lost: on a
// cluster whose node was killed, it named the node the client had moved
// to already, or none, as the client was connected to neither when the
// handler ran (found by a cluster trial).
func TestDisconnectWarningNamesTheServerLost(t *testing.T) {
	var servers []*server.Server
	var urls []string
	for range 2 {
		srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
		if err != nil {
			t.Fatal(err)
		}
		go srv.Start()
		t.Cleanup(srv.Shutdown)
		if !srv.ReadyForConnections(10 * time.Second) {
			t.Fatal("server not ready")
		}
		servers = append(servers, srv)
		urls = append(urls, "nats://"+srv.Addr().String())
	}
	var logs lockedBuffer
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nc, _, err := Connect(ctx, Config{URLs: urls, ReconnectWait: 10 * time.Millisecond}, zerolog.New(&logs))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	lost := nc.ConnectedUrl()
	for i, u := range urls {
		if u == lost {
			servers[i].Shutdown()
		}
	}
	waitFor(t, "the reconnect", func() bool { return strings.Contains(logs.String(), "nats reconnected") })
	warned := false
	for line := range strings.Lines(logs.String()) {
		if !strings.Contains(line, "nats disconnected") {
			continue
		}
		warned = true
		if !strings.Contains(line, `"server":"`+lost+`"`) {
			t.Fatalf("the disconnect warning does not name the server lost (%s):\n%s", lost, line)
		}
	}
	if !warned {
		t.Fatalf("no disconnect warning:\n%s", logs.String())
	}
}
