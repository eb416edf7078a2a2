package aiops

import (
	"strings"
	"testing"
)

// TestNATSWithoutAuthWarns is issue #14 item 7: emptying
// nats.generate_token_file on loopback started NATS with no authentication
// and said nothing.
func TestNATSWithoutAuthWarns(t *testing.T) {
	cfg := DefaultNATSConfig()
	cfg.GenerateTokenFile = ""
	if err := cfg.Validate(); err != nil {
		t.Fatalf("loopback without a token is allowed: %v", err)
	}
	token, err := cfg.token()
	if err != nil || token != "" {
		t.Fatalf("token %q, %v", token, err)
	}
	if w := natsAuthWarning(cfg, token); !strings.Contains(w, "NO AUTHENTICATION") {
		t.Fatalf("no warning: %q", w)
	}
	if w := natsAuthWarning(DefaultNATSConfig(), "a-token-0123456789"); w != "" {
		t.Fatalf("a warning with a token: %q", w)
	}
	external := cfg
	external.Embedded = false
	if w := natsAuthWarning(external, ""); w != "" {
		t.Fatalf("a warning for an external NATS: %q", w)
	}
}
