package aiops

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aiops-dev/aiops/pkg/config"
	"github.com/aiops-dev/aiops/pkg/platform"
	"github.com/aiops-dev/aiops/pkg/service"
)

// TestListenersDefaults: with no configuration the summary names every
// listener of `aiops run` at its documented port, and where each token is.
func TestListenersDefaults(t *testing.T) {
	var nats EmbeddedNATSConfig
	cfg := RunConfig(&nats)
	if err := cfg.LoadWith(config.Options{Environ: []string{}}); err != nil {
		t.Fatal(err)
	}
	got := map[string]Listener{}
	for _, l := range Listeners(cfg, nats) {
		got[l.Name] = l
	}
	abs := func(p string) string { a, _ := filepath.Abs(p); return a }
	want := map[string][2]string{
		"ingest":          {"http://127.0.0.1:8080", "file " + abs("data/ingest-token")},
		"incidents API":   {"http://127.0.0.1:8081", "file " + abs("data/api-token")},
		"silences API":    {"http://127.0.0.1:9093", "file " + abs("data/api-token")},
		"admin":           {"http://127.0.0.1:9464", "none: loopback only"},
		"NATS (embedded)": {"nats://127.0.0.1:4222", "file " + abs("data/nats-token")},
		"ClickHouse":      {"clickhouse://127.0.0.1:9000/default", "no password"},
	}
	for name, w := range want {
		l, ok := got[name]
		if !ok {
			t.Errorf("no %s in the summary: %+v", name, got)
			continue
		}
		if l.Addr != w[0] || !strings.HasPrefix(l.Auth, w[1]) {
			t.Errorf("%s: %s, auth %q; want %s, auth %q", name, l.Addr, l.Auth, w[0], w[1])
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d listeners, want %d: %+v", len(got), len(want), got)
	}
}

// TestListenersNameSecretsNotValues: tokens from the environment are named
// by their variable, never printed.
func TestListenersNameSecretsNotValues(t *testing.T) {
	const secret = "s3cret-token-value-0123456789"
	var nats EmbeddedNATSConfig
	cfg := RunConfig(&nats)
	err := cfg.LoadWith(config.Options{Environ: []string{
		"AIOPS_INGEST__TOKENS=[" + secret + "]",
		"AIOPS_ADMIN__TOKEN=" + secret,
		"AIOPS_NATS__TOKEN=" + secret,
		"AIOPS_STORE__PASSWORD=" + secret,
		"AIOPS_CORRELATOR__API__TOKEN=" + secret,
		"AIOPS_STORE__DSN=clickhouse://ch.example:9000/aiops",
	}, EnvPrefix: "AIOPS", Sets: []string{"admin.listen=0.0.0.0:9464"}})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := WriteSummary(&out, "v1", Listeners(cfg, nats)); err != nil {
		t.Fatal(err)
	}
	// A password in the DSN instead (the configuration is refused with
	// both): printed redacted.
	dsnCfg := RunConfig(&EmbeddedNATSConfig{})
	err = dsnCfg.LoadWith(config.Options{Environ: []string{
		"AIOPS_STORE__DSN=clickhouse://ch.example:9000/aiops?password=" + secret,
	}, EnvPrefix: "AIOPS"})
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteSummary(&out, "v1", Listeners(dsnCfg, nats)); err != nil {
		t.Fatal(err)
	}
	// An external NATS whose URLs carry a password or a token: printed
	// redacted.
	var external EmbeddedNATSConfig
	busCfg := RunConfig(&external)
	err = busCfg.LoadWith(config.Options{Environ: []string{
		"AIOPS_STORE__DSN=clickhouse://ch.example:9000/aiops",
	}, EnvPrefix: "AIOPS", Sets: []string{"nats.embedded=false", "bus.urls=[nats://aiops:" + secret + "@nats-1:4222, nats://" + secret + "@nats-2:4222]"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteSummary(&out, "v1", Listeners(busCfg, external)); err != nil {
		t.Fatal(err)
	}
	s := out.String()
	if strings.Contains(s, secret) {
		t.Fatalf("the summary prints a secret:\n%s", s)
	}
	for _, want := range []string{"AIOPS_INGEST__TOKENS", "AIOPS_ADMIN__TOKEN", "AIOPS_NATS__TOKEN", "AIOPS_STORE__PASSWORD", "AIOPS_CORRELATOR__API__TOKEN", "http://0.0.0.0:9464", "ch.example:9000", "nats://aiops:xxxxx@nats-1:4222"} {
		if !strings.Contains(s, want) {
			t.Errorf("summary lacks %q:\n%s", want, s)
		}
	}
}

// With the embedded NATS, bus settings naming another server or its
// credentials would be silently replaced: `aiops run` refuses them as a
// usage error, naming the key, before it starts anything; the default
// URL, as the example configuration writes it, is fine.
func TestRunRefusesBusSettingsTheEmbeddedNATSReplaces(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct{ set, key string }{
		{"bus.urls=[nats://nats-1:4222]", "bus.urls"},
		{"bus.token_file=/run/secrets/nats-token", "bus.token_file"},
		{"bus.credentials_file=/run/secrets/aiops.creds", "bus.credentials_file"},
	} {
		err := runPipelineTo(context.Background(), []string{"-set", c.set, "-set", "nats.store_dir=" + filepath.Join(dir, "nats"), "-set", "nats.generate_token_file=" + filepath.Join(dir, "nats", "token")}, io.Discard)
		if service.ExitCode(err) != 2 || !strings.Contains(fmt.Sprint(err), c.key) || !strings.Contains(fmt.Sprint(err), "nats.embedded") {
			t.Errorf("-set %s: %v (exit %d), want a usage error naming %s and nats.embedded", c.set, err, service.ExitCode(err), c.key)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "nats")); !os.IsNotExist(err) {
		t.Errorf("the embedded NATS started before the refusal: %v", err)
	}
	if err := embeddedBusConflict(platform.DefaultConfig().Bus, DefaultNATSConfig().Listen); err != nil {
		t.Errorf("the default bus: %v", err)
	}
}

// The default URL written otherwise (a trailing slash, the scheme in
// capitals), or the embedded server's own address, names the server the
// pipeline connects to anyway: no conflict. Another host, port, a user or
// path still is.
func TestRunTakesTheDefaultBusURLHoweverWritten(t *testing.T) {
	for _, c := range []struct {
		urls     []string
		listen   string
		conflict bool
	}{
		{[]string{"nats://127.0.0.1:4222/"}, "127.0.0.1:4222", false},
		{[]string{"NATS://127.0.0.1:4222"}, "127.0.0.1:4222", false},
		{[]string{"nats://127.0.0.1:4333"}, "127.0.0.1:4333", false},
		{[]string{"nats://127.0.0.1:4222", "nats://127.0.0.1:4222/"}, "127.0.0.1:4222", false},
		{[]string{"nats://127.0.0.1:4333"}, "127.0.0.1:4222", true},
		{[]string{"nats://nats-1:4222"}, "127.0.0.1:4222", true},
		{[]string{"nats://u:p@127.0.0.1:4222"}, "127.0.0.1:4222", true},
		{[]string{"tls://127.0.0.1:4222"}, "127.0.0.1:4222", true},
		{[]string{"nats://127.0.0.1:4222/x"}, "127.0.0.1:4222", true},
	} {
		b := platform.DefaultConfig().Bus
		b.URLs = c.urls
		if err := embeddedBusConflict(b, c.listen); (err != nil) != c.conflict {
			t.Errorf("bus.urls %v with nats.listen %s: %v, want a conflict: %v", c.urls, c.listen, err, c.conflict)
		}
	}
	// from a file, as `aiops run -config` reads it: past the check, the
	// start stops at the embedded NATS's token file, which is missing
	dir := t.TempDir()
	file := filepath.Join(dir, "aiops.yaml")
	if err := os.WriteFile(file, []byte("bus:\n  urls: [nats://127.0.0.1:4222/]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := runPipelineTo(context.Background(), []string{"-config", file, "-set", "nats.token_file=" + filepath.Join(dir, "missing"),
		"-set", "nats.store_dir=" + filepath.Join(dir, "nats")}, io.Discard)
	if err == nil || strings.Contains(err.Error(), "bus.urls") || !strings.Contains(err.Error(), "missing") {
		t.Errorf("the default URL with a trailing slash: %v, want past the bus check, stopped at the missing token file", err)
	}
}

// `aiops run -help` names the key that moves each of its listeners: a
// second pipeline on a machine needs every port moved, and the flags
// alone (-set key=value) did not say which keys.
func TestRunHelpNamesEveryListenKey(t *testing.T) {
	var stderr bytes.Buffer
	err := runPipelineMain(context.Background(), []string{"-help"}, io.Discard, &stderr)
	if err == nil {
		t.Fatal("-help: want the usage error flag gives")
	}
	var nats EmbeddedNATSConfig
	cfg := RunConfig(&nats)
	if err := cfg.LoadWith(config.Options{Environ: []string{}}); err != nil {
		t.Fatal(err)
	}
	for _, l := range Listeners(cfg, nats) {
		if l.Key != "" && !strings.Contains(stderr.String(), l.Key+"=") {
			t.Errorf("aiops run -help does not name %s, the key of %s:\n%s", l.Key, l.Name, stderr.String())
		}
	}
}
