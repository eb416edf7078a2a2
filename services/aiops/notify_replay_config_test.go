package aiops

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/bus"
	"github.com/aiops-dev/aiops/pkg/testenv"
)

// `aiops notify replay -config aiops.yaml` takes the configuration aiops
// run runs with, as its usage and services/notifier/README.md say: its
// other sections (nats, ingest, writer, ...) are no error, and the
// embedded NATS it names (nats.listen, with the token of
// nats.generate_token_file) is the one it reaches.
func TestNotifyReplayTakesTheRunConfig(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: needs JetStream")
	}
	dir := t.TempDir()
	natsCfg := EmbeddedNATSConfig{Embedded: true, Listen: "127.0.0.1:" + testenv.StablePort(t),
		StoreDir: filepath.Join(dir, "nats"), GenerateTokenFile: filepath.Join(dir, "nats-token")}
	token, err := natsCfg.token()
	if err != nil {
		t.Fatal(err)
	}
	ns, err := startEmbeddedNATS(natsCfg, token)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Shutdown()
	nc, js, err := bus.Connect(context.Background(), bus.Config{URLs: []string{"nats://" + natsCfg.Listen}, Token: token}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if err := bus.EnsureTopology(context.Background(), js, bus.DefaultStreams()); err != nil {
		t.Fatal(err)
	}
	routes := writeAMConfig(t, "http://127.0.0.1:1")
	cfgFile := filepath.Join(dir, "aiops.yaml")
	if err := os.WriteFile(cfgFile, []byte("nats:\n  listen: "+natsCfg.Listen+"\n  store_dir: "+natsCfg.StoreDir+
		"\n  generate_token_file: "+natsCfg.GenerateTokenFile+"\ningest:\n  listen: 127.0.0.1:0\nnotifier:\n  routes: "+routes+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	err = notifyMain(context.Background(), []string{"replay", "-config", cfgFile, "--dry-run"}, &out, &out)
	if err != nil || !strings.Contains(out.String(), "no dead letters") {
		t.Fatalf("notify replay -config aiops.yaml: %v\n%s", err, out.String())
	}
	// The deployments' own aiops.yaml loads too (from the checkout's
	// root, where its paths are).
	out.Reset()
	t.Chdir("../..")
	err = notifyMain(context.Background(), []string{"replay", "-config", "deployments/config/aiops.yaml",
		"-set", "nats.listen=" + natsCfg.Listen, "-set", "nats.generate_token_file=" + natsCfg.GenerateTokenFile, "--dry-run"}, &out, &out)
	if err != nil || !strings.Contains(out.String(), "no dead letters") {
		t.Fatalf("notify replay -config deployments/config/aiops.yaml: %v\n%s", err, out.String())
	}
}

// With no NATS at the address (aiops run not running, or on another
// port), the replay says so and names the key that moves it, not only the
// client's "no servers available".
func TestNotifyReplayWithoutNATSNamesTheListenKey(t *testing.T) {
	dir := t.TempDir()
	routes := writeAMConfig(t, "http://127.0.0.1:1")
	var out bytes.Buffer
	err := notifyMain(context.Background(), []string{"replay", "-set", "nats.listen=127.0.0.1:" + testenv.StablePort(t),
		"-set", "nats.generate_token_file=" + filepath.Join(dir, "nats-token"), "-set", "notifier.routes=" + routes, "--dry-run"}, &out, &out)
	if err == nil || !strings.Contains(err.Error(), "is aiops run running?") || !strings.Contains(err.Error(), "nats.listen") {
		t.Fatalf("notify replay without NATS: %v\n%s", err, out.String())
	}
}
