package platform

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The first-run scripts (scripts/run.sh, scripts/clickhouse.sh) start the
// platform on a developer's machine. These tests run copies of them in a
// checkout whose path has a space, with a stand-in for clickhouse-server (a
// process that only waits), one for clickhouse-client (it always answers)
// and one for bin/aiops (its -check passes; run, it records its store
// settings and exits 3, as `aiops run` does when it cannot start).

type scriptCheckout struct {
	t    *testing.T
	root string
	env  []string
}

func newScriptCheckout(t *testing.T) *scriptCheckout {
	t.Helper()
	for _, bin := range []string{"bash", "setsid", "sleep"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s not on PATH", bin)
		}
	}
	root := filepath.Join(t.TempDir(), "my checkout")
	for _, dir := range []string{"scripts", "bin", "fake"} {
		if err := os.MkdirAll(filepath.Join(root, dir), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, script := range []string{"run.sh", "clickhouse.sh"} {
		data, err := os.ReadFile(filepath.Join("..", "..", "scripts", script))
		if err != nil {
			t.Fatal(err)
		}
		writeExecutable(t, filepath.Join(root, "scripts", script), string(data))
	}
	// exec -a keeps "clickhouse" in the command line, which clickhouse.sh
	// checks before it trusts or signals a recorded pid.
	writeExecutable(t, filepath.Join(root, "fake", "clickhouse-server"), "#!/usr/bin/env bash\nexec -a clickhouse-server-fake sleep 300\n")
	writeExecutable(t, filepath.Join(root, "fake", "clickhouse-client"), "#!/bin/sh\nexit 0\n")
	writeExecutable(t, filepath.Join(root, "bin", "aiops"), "#!/bin/sh\n"+
		// -check (run.sh asks it first) passes unless FAKE_CHECK_FAILS
		// says what to fail with.
		`if [ "$1 $2" = "run -check" ]; then`+"\n"+
		`  printf '%s\n%s\n%s\n' "$AIOPS_STORE__DSN" "$AIOPS_STORE__PASSWORD_FILE" "$*" >"$(dirname "$0")/../aiops-check"`+"\n"+
		`  [ -z "$FAKE_CHECK_FAILS" ] && exit 0`+"\n"+
		`  echo "aiops: usage: $FAKE_CHECK_FAILS" >&2; exit 2`+"\n"+
		"fi\n"+
		`printf '%s\n%s\n' "$AIOPS_STORE__DSN" "$AIOPS_STORE__PASSWORD_FILE" >"$(dirname "$0")/../aiops-store"`+"\nexit 3\n")
	c := &scriptCheckout{t: t, root: root, env: append(os.Environ(),
		"CLICKHOUSE_SERVER="+filepath.Join(root, "fake", "clickhouse-server"),
		"CLICKHOUSE_CLIENT="+filepath.Join(root, "fake", "clickhouse-client"),
		"AIOPS_STORE__DSN=", // run.sh starts its own ClickHouse only without one
	)}
	t.Cleanup(func() { c.run("scripts/clickhouse.sh", "stop", filepath.Join(root, "data", "clickhouse")) })
	return c
}

func writeExecutable(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o755); err != nil {
		t.Fatal(err)
	}
}

// run runs a script of the checkout from another directory and returns
// its exit code and standard error.
func (c *scriptCheckout) run(script string, args ...string) (int, string) {
	c.t.Helper()
	return c.runIn(c.t.TempDir(), script, args...)
}

// runIn runs a script of the checkout from the folder dir.
func (c *scriptCheckout) runIn(dir, script string, args ...string) (int, string) {
	c.t.Helper()
	cmd := exec.Command(filepath.Join(c.root, script), args...)
	cmd.Dir = dir
	cmd.Env = c.env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), stderr.String()
	} else if err != nil {
		c.t.Fatalf("%s: %v", script, err)
	}
	return 0, stderr.String()
}

func (c *scriptCheckout) clickhouseRunning() bool {
	code, _ := c.run("scripts/clickhouse.sh", "status", filepath.Join(c.root, "data", "clickhouse"))
	return code == 0
}

// run.sh stops the ClickHouse it started, and only that one: a server that
// was already running (the first `make run` of two, `make demo`, or one
// started by hand) kept running when a second run.sh exited, typically at
// once because the first pipeline holds the NATS port.
func TestRunScriptStopsOnlyTheClickHouseItStarted(t *testing.T) {
	c := newScriptCheckout(t)

	code, stderr := c.run("scripts/run.sh")
	if code != 3 {
		t.Fatalf("run.sh exited %d, want aiops's 3:\n%s", code, stderr)
	}
	store, err := os.ReadFile(filepath.Join(c.root, "aiops-store"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(store)), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "clickhouse://127.0.0.1:") || lines[1] != filepath.Join(c.root, "data", "clickhouse-password") {
		t.Fatalf("aiops ran with store %q, want the local server and its password file", lines)
	}
	if c.clickhouseRunning() {
		t.Fatal("run.sh left the ClickHouse it started running")
	}

	// Somebody else's server, in the same folder.
	dir := filepath.Join(c.root, "data", "clickhouse")
	c.env = append(c.env, "AIOPS_CLICKHOUSE_PASSWORD_FILE="+filepath.Join(c.root, "data", "clickhouse-password"))
	if code, stderr := c.run("scripts/clickhouse.sh", "start", dir); code != 0 {
		t.Fatalf("clickhouse.sh start: exit %d\n%s", code, stderr)
	}
	if code, stderr := c.run("scripts/run.sh"); code != 3 {
		t.Fatalf("run.sh exited %d, want aiops's 3:\n%s", code, stderr)
	}
	if !c.clickhouseRunning() {
		t.Fatal("run.sh stopped a ClickHouse it had not started")
	}
}

// The generated ClickHouse password is readable by its owner only, also
// when the file was there but empty (touched, or truncated): writing into
// it kept its mode, 0644 from a touch, whatever the umask of the writer.
func TestClickHousePasswordFileIsPrivate(t *testing.T) {
	c := newScriptCheckout(t)
	password := filepath.Join(c.root, "data", "clickhouse-password")
	if err := os.MkdirAll(filepath.Dir(password), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(password, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(password, 0o644); err != nil { // whatever the test's umask
		t.Fatal(err)
	}
	c.env = append(c.env, "AIOPS_CLICKHOUSE_PASSWORD_FILE="+password)
	if code, stderr := c.run("scripts/clickhouse.sh", "start", filepath.Join(c.root, "data", "clickhouse")); code != 0 {
		t.Fatalf("clickhouse.sh start: exit %d\n%s", code, stderr)
	}
	info, err := os.Stat(password)
	if err != nil {
		t.Fatal(err)
	}
	if info.Size() != 32 || info.Mode().Perm() != 0o600 {
		t.Fatalf("password file: %d bytes, mode %v; want 32 bytes, 0600", info.Size(), info.Mode().Perm())
	}
}

// deps.sh on a fresh machine, where unattended-upgrades holds apt's lock
// for the first minutes: it waits for the lock instead of failing at
// once with "Could not get lock". apt-get here is a stand-in that is busy
// twice, then installs.
func TestDepsScriptWaitsForTheAptLock(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("deps.sh installs only as root (or with sudo)")
	}
	if _, err := os.Stat("/usr/sbin/policy-rc.d"); err != nil {
		t.Skip("deps.sh would create /usr/sbin/policy-rc.d for its installs: not in a test")
	}
	root := filepath.Join(t.TempDir(), "my checkout")
	bin := filepath.Join(t.TempDir(), "bin")
	for _, dir := range []string{filepath.Join(root, "scripts"), bin} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(filepath.Join("..", "..", "scripts", "deps.sh"))
	if err != nil {
		t.Fatal(err)
	}
	writeExecutable(t, filepath.Join(root, "scripts", "deps.sh"), string(data))
	// Only what deps.sh needs besides what it installs, so every package
	// looks missing.
	for _, tool := range []string{"bash", "id", "awk", "mktemp", "grep", "cat", "rm", "sleep", "dirname"} {
		path, err := exec.LookPath(tool)
		if err != nil {
			t.Skipf("%s not on PATH", tool)
		}
		if err := os.Symlink(path, filepath.Join(bin, tool)); err != nil {
			t.Fatal(err)
		}
	}
	log := filepath.Join(bin, "apt-get.log")
	writeExecutable(t, filepath.Join(bin, "apt-get"), "#!/bin/sh\n"+
		`n=$(cat "$0.count" 2>/dev/null || echo 0); echo $((n + 1)) >"$0.count"`+"\n"+
		`if [ "$n" -lt 2 ]; then echo "E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 1 (apt-get)" >&2; exit 100; fi`+"\n"+
		`echo "$*" >>"$0.log"`+"\n")
	writeExecutable(t, filepath.Join(bin, "apt-cache"), "#!/bin/sh\necho '  Candidate: 1.0'\n")
	writeExecutable(t, filepath.Join(bin, "go"), "#!/bin/sh\nexit 0\n")

	cmd := exec.Command(filepath.Join(root, "scripts", "deps.sh"))
	cmd.Env = []string{"PATH=" + bin, "HOME=" + t.TempDir()}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("deps.sh: %v\n%s", err, out)
	}
	installed, _ := os.ReadFile(log)
	if !strings.Contains(string(installed), "install -y -q --no-install-recommends gcc libc6-dev") ||
		!strings.Contains(string(installed), "clickhouse-server clickhouse-client") {
		t.Fatalf("apt-get ran with:\n%s\ndeps.sh said:\n%s", installed, out)
	}
	if !strings.Contains(string(out), "waiting") {
		t.Errorf("deps.sh did not say it waits for apt:\n%s", out)
	}
}

// deps.sh without Go on PATH says what to do and fails: it said "skipping
// go mod download" and then `make run` stopped on its exit status, as if
// something else had gone wrong.
func TestDepsScriptSaysGoIsMissing(t *testing.T) {
	root := filepath.Join(t.TempDir(), "my checkout")
	bin := filepath.Join(t.TempDir(), "bin")
	for _, dir := range []string{filepath.Join(root, "scripts"), bin} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(filepath.Join("..", "..", "scripts", "deps.sh"))
	if err != nil {
		t.Fatal(err)
	}
	writeExecutable(t, filepath.Join(root, "scripts", "deps.sh"), string(data))
	if _, err := os.Stat("/usr/share/java/zookeeper.jar"); err != nil && os.Geteuid() != 0 {
		t.Skip("deps.sh would install ZooKeeper's jar, which it does only as root (or with sudo)")
	}
	for _, tool := range []string{"bash", "id", "dirname", "sh", "awk", "mktemp", "grep", "cat", "rm", "chmod"} {
		path, err := exec.LookPath(tool)
		if err != nil {
			t.Skipf("%s not on PATH", tool)
		}
		if err := os.Symlink(path, filepath.Join(bin, tool)); err != nil {
			t.Fatal(err)
		}
	}
	// Every package installed already; ZooKeeper's jar is a path, which a
	// test cannot make: an apt-get that installs nothing stands in.
	for _, tool := range []string{"gcc", "clickhouse-server", "amtool", "prometheus", "apt-get"} {
		writeExecutable(t, filepath.Join(bin, tool), "#!/bin/sh\nexit 0\n")
	}
	writeExecutable(t, filepath.Join(bin, "apt-cache"), "#!/bin/sh\necho '  Candidate: 1.0'\n")
	cmd := exec.Command(filepath.Join(root, "scripts", "deps.sh"))
	cmd.Env = []string{"PATH=" + bin, "HOME=" + t.TempDir(), "DEPS_POLICY_RC_D=" + filepath.Join(t.TempDir(), "policy-rc.d")}
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("deps.sh passed without Go:\n%s", out)
	}
	if !strings.Contains(string(out), "go is not on PATH") || !strings.Contains(string(out), "run this again") ||
		strings.Contains(string(out), "skipping") {
		t.Errorf("deps.sh without Go said:\n%s\nwant that Go is missing and what to do, not that it skips", out)
	}
}
