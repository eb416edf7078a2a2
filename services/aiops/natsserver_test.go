package aiops

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestEmbeddedNATSListenPort: a port that is not a number from 0 to 65535
// is refused by Validate, naming nats.listen (exit code 2, before anything
// starts), and port 0 means a free port, as for every other listener,
// not nats-server's default 4222.
func TestEmbeddedNATSListenPort(t *testing.T) {
	for _, listen := range []string{"127.0.0.1:abc", "127.0.0.1:70000", "127.0.0.1:-1", "127.0.0.1:"} {
		cfg := DefaultNATSConfig()
		cfg.Listen = listen
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "nats.listen") {
			t.Errorf("nats.listen %q: Validate said %v, want an error naming nats.listen", listen, err)
		}
	}

	cfg := DefaultNATSConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.StoreDir = t.TempDir()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ns, err := startEmbeddedNATS(cfg, "")
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Shutdown()
	if port := ns.Addr().(*net.TCPAddr).Port; port == 4222 {
		t.Fatalf("nats.listen 127.0.0.1:0 listens on %d, want a free port", port)
	}
}

// TestEmbeddedNATSWithoutTokenRefusesANonLoopbackBind: Validate lets a
// server without a token listen on a loopback name, "localhost" included,
// which /etc/hosts or a DNS search domain may map to another address; the
// server decides by the address the name binds. 0.0.0.0 stands in for
// such a name here (it binds every address, as Validate is not asked).
func TestEmbeddedNATSWithoutTokenRefusesANonLoopbackBind(t *testing.T) {
	cfg := DefaultNATSConfig()
	cfg.Listen = "0.0.0.0:0"
	cfg.StoreDir = t.TempDir()
	ns, err := startEmbeddedNATS(cfg, "")
	if err == nil {
		ns.Shutdown()
		t.Fatal("the embedded NATS started without a token on every address")
	}
	if !strings.Contains(err.Error(), "nats.listen") || !strings.Contains(err.Error(), "no token") {
		t.Errorf("error %q: want nats.listen named and why", err)
	}
	// With a token it may listen there.
	ns, err = startEmbeddedNATS(cfg, "0123456789abcdef0123456789abcdef")
	if err != nil {
		t.Fatal(err)
	}
	ns.Shutdown()
}

// TestEmbeddedNATSRefusesShortToken: the embedded NATS, like every other
// listener (docs/security.md), refuses a token shorter than 16
// characters, from the environment or a file, without saying it.
func TestEmbeddedNATSRefusesShortToken(t *testing.T) {
	const short = "s3cret"
	env := DefaultNATSConfig()
	env.Token = short
	file := DefaultNATSConfig()
	file.TokenFile = filepath.Join(t.TempDir(), "nats-token")
	if err := os.WriteFile(file.TokenFile, []byte(short+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, cfg := range map[string]EmbeddedNATSConfig{"AIOPS_NATS__TOKEN": env, "nats.token_file": file} {
		_, err := cfg.token()
		if err == nil {
			t.Errorf("%s: a %d-character token was accepted", name, len(short))
			continue
		}
		if !strings.Contains(err.Error(), name) || strings.Contains(err.Error(), short) {
			t.Errorf("%s: %v: want the key named and the token left out", name, err)
		}
	}
	ok := DefaultNATSConfig()
	ok.Token = "0123456789abcdef"
	if _, err := ok.token(); err != nil {
		t.Errorf("a 16-character token: %v", err)
	}
}
