package aiops

import (
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/aiops-dev/aiops/pkg/httpapi"
	"github.com/aiops-dev/aiops/pkg/platform"
	"github.com/aiops-dev/aiops/services/correlator"
	"github.com/aiops-dev/aiops/services/ingest"
	"github.com/aiops-dev/aiops/services/notifier"
)

// Listener is one line of `aiops run`'s start-up summary: what listens
// where, and where the credential a client needs is kept.
type Listener struct {
	Name string
	// Addr is a URL a client can use.
	Addr string
	// Auth says where the token (or password) is: a file, an environment
	// variable, or why there is none.
	Auth string
	// Serves lists what a client finds there.
	Serves string
	// Key is the configuration key of an address this process binds
	// (nats.listen, ingest.listen, ...) and Listen that host:port; both
	// are empty for a server elsewhere (an external NATS, ClickHouse).
	Key, Listen string
}

// Listeners is what `aiops run` will listen on with cfg: the gateway, the
// incidents and silences APIs, the admin server, NATS (embedded or
// external) and ClickHouse. It is computed from the configuration before
// anything starts, so it says the configured addresses (a port 0 is
// such); the start-up summary puts in the ports bound (boundListeners).
func Listeners(cfg *platform.AssembledConfig, nats EmbeddedNATSConfig) []Listener {
	pc := cfg.Platform()
	var ls []Listener
	if in, ok := platform.SectionOf[ingest.ServerConfig](cfg, "ingest"); ok {
		listen := in.Listen
		if listen == "" {
			listen = ingest.DefaultListen
		}
		scheme := "http"
		if in.TLSCertFile != "" {
			scheme = "https"
		}
		auth := "none (allow_anonymous: loopback only)"
		switch {
		case len(in.Tokens) > 0:
			auth = "AIOPS_INGEST__TOKENS (environment)"
		case in.TokensFile != "":
			auth = "file " + abs(in.TokensFile) + " (one token per line)"
		case in.GenerateTokenFile != "":
			auth = "file " + abs(in.GenerateTokenFile)
		}
		ls = append(ls, Listener{Name: "ingest", Addr: scheme + "://" + listen, Auth: auth,
			Serves: "POST /v1/events /v1/alertmanager /api/v2/alerts /v1/changes /api/v1/write /v1/logs /v1/metrics",
			Key:    "ingest.listen", Listen: listen})
	}
	if c, ok := platform.SectionOf[correlator.Config](cfg, "correlator"); ok && c.API.Listen != "" {
		ls = append(ls, Listener{Name: "incidents API", Addr: "http://" + c.API.Listen, Auth: apiAuth(c.API, "AIOPS_CORRELATOR__API__TOKEN"),
			Serves: "GET /v1/incidents, POST /v1/incidents/{id}/ack|resolve|assign|comment",
			Key:    "correlator.api.listen", Listen: c.API.Listen})
	}
	if n, ok := platform.SectionOf[notifier.Config](cfg, "notifier"); ok && n.API.Listen != "" {
		ls = append(ls, Listener{Name: "silences API", Addr: "http://" + n.API.Listen, Auth: apiAuth(n.API, "AIOPS_NOTIFIER__API__TOKEN"),
			Serves: "Alertmanager API v2 /api/v2/silences /api/v2/alerts (amtool)",
			Key:    "notifier.api.listen", Listen: n.API.Listen})
	}
	adminListen := pc.Admin.Listen
	adminAuth := "none: loopback only (a token is required to listen elsewhere)"
	switch {
	case pc.Admin.Token != "":
		adminAuth = "AIOPS_ADMIN__TOKEN (environment)"
	case pc.Admin.TokenFile != "":
		adminAuth = "file " + abs(pc.Admin.TokenFile)
	}
	ls = append(ls, Listener{Name: "admin", Addr: "http://" + adminListen, Auth: adminAuth, Serves: "/healthz /readyz /metrics",
		Key: "admin.listen", Listen: adminListen})
	if nats.Embedded {
		auth := "none: loopback only"
		switch {
		case nats.Token != "":
			auth = "AIOPS_NATS__TOKEN (environment)"
		case nats.TokenFile != "":
			auth = "file " + abs(nats.TokenFile)
		case nats.GenerateTokenFile != "":
			auth = "file " + abs(nats.GenerateTokenFile)
		}
		ls = append(ls, Listener{Name: "NATS (embedded)", Addr: "nats://" + nats.Listen, Auth: auth, Serves: "JetStream, store " + abs(nats.StoreDir),
			Key: "nats.listen", Listen: nats.Listen})
	} else {
		auth := "none"
		switch {
		case pc.Bus.CredentialsFile != "":
			auth = "credentials file " + abs(pc.Bus.CredentialsFile)
		case pc.Bus.Token != "":
			auth = "AIOPS_BUS__TOKEN (environment)"
		case pc.Bus.TokenFile != "":
			auth = "file " + abs(pc.Bus.TokenFile)
		case pc.Bus.Password != "":
			auth = "user " + pc.Bus.User + ", AIOPS_BUS__PASSWORD (environment)"
		case pc.Bus.PasswordFile != "":
			auth = "user " + pc.Bus.User + ", password file " + abs(pc.Bus.PasswordFile)
		}
		ls = append(ls, Listener{Name: "NATS", Addr: strings.Join(pc.Bus.RedactedURLs(), ","), Auth: auth, Serves: "JetStream (external)"})
	}
	if cfg.NeedsStore() {
		auth := "no password"
		switch {
		case pc.Store.Password != "":
			auth = "password from AIOPS_STORE__PASSWORD (environment)"
		case pc.Store.PasswordFile != "":
			auth = "password file " + abs(pc.Store.PasswordFile)
		}
		ls = append(ls, Listener{Name: "ClickHouse", Addr: pc.Store.Redacted(), Auth: auth, Serves: "the analyst's tables (docs/queries.md)"})
	}
	return ls
}

func apiAuth(c httpapi.Config, env string) string {
	switch {
	case c.Token != "":
		return env + " (environment)"
	case c.TokenFile != "":
		return "file " + abs(c.TokenFile)
	case c.GenerateTokenFile != "":
		return "file " + abs(c.GenerateTokenFile)
	}
	return "none"
}

// abs makes a relative path absolute, so the summary can be followed from
// any directory; it never reads the file.
func abs(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

// WriteSummary prints the listeners as one aligned block: name, address,
// where the credential is, and on the next line what is served. It names
// files and variables, never the secrets in them.
func WriteSummary(w io.Writer, version string, ls []Listener) error {
	nameW, addrW := 0, 0
	for _, l := range ls {
		nameW, addrW = max(nameW, len(l.Name)), max(addrW, len(l.Addr))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "aiops %s is listening on:\n", version)
	for _, l := range ls {
		fmt.Fprintf(&b, "  %-*s  %-*s  auth: %s\n", nameW, l.Name, addrW, l.Addr, l.Auth)
		if l.Serves != "" {
			fmt.Fprintf(&b, "  %-*s  %s\n", nameW, "", l.Serves)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
