package testenv

import (
	"bytes"
	"net/http"
	"os/exec"
	"testing"
	"time"
)

// InstallAlertmanager is how CI gets the real Alertmanager and amtool
// (Debian's package; scripts/deps.sh runs it).
const InstallAlertmanager = "apt-get install -y prometheus-alertmanager"

// Binary finds the first of names on PATH. Without any, the test skips,
// or fails under CI (like a missing server).
func Binary(t testing.TB, names ...string) string {
	t.Helper()
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	unavailable(t, names[0], exec.ErrNotFound)
	return ""
}

// Alertmanager starts the real Alertmanager (Debian's
// prometheus-alertmanager) on a free loopback port with the configuration
// file cfg, waits until it is ready and stops it when the test ends; it
// returns host:port. The tests that compare aiops with Alertmanager
// (routing, inhibition, time intervals, silences) use it.
func Alertmanager(t testing.TB, cfg string) string {
	t.Helper()
	bin := Binary(t, "prometheus-alertmanager", "alertmanager")
	return serveReady(t, "Alertmanager", func(addr string) *exec.Cmd {
		return exec.Command(bin, "--config.file="+cfg, "--storage.path="+t.TempDir(),
			"--web.listen-address="+addr, "--cluster.listen-address=")
	})
}

// Prometheus starts the real Prometheus server (Debian's prometheus, 2.42)
// on a free loopback port with the configuration file cfg, like
// Alertmanager; the dashboard test has it scrape aiops and evaluate the
// Grafana dashboard's queries. flags are added to its command line.
func Prometheus(t testing.TB, cfg string, flags ...string) string {
	t.Helper()
	bin := Binary(t, "prometheus")
	return serveReady(t, "Prometheus", func(addr string) *exec.Cmd {
		return exec.Command(bin, append([]string{"--config.file=" + cfg, "--storage.tsdb.path=" + t.TempDir(),
			"--web.listen-address=" + addr}, flags...)...)
	})
}

// serveReady starts the command built for a free loopback address, stops it
// when the test ends, and waits until its /-/ready answers 200 (the
// Prometheus projects' readiness endpoint).
func serveReady(t testing.TB, name string, command func(addr string) *exec.Cmd) string {
	t.Helper()
	addr := FreeAddr(t)
	var logs bytes.Buffer
	cmd := command(addr)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killWithTest(cmd.Process.Pid)
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	client := &http.Client{Timeout: time.Second}
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		resp, err := client.Get("http://" + addr + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return addr
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not get ready on %s: %v\n%s", name, addr, err, logs.String())
		}
	}
}
