package platform

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// run.sh asks `aiops run -check` before it starts ClickHouse: a
// configuration error was said only after the local server had started
// and stopped again, seconds each time.
func TestRunScriptChecksBeforeClickHouse(t *testing.T) {
	c := newScriptCheckout(t)
	c.env = append(c.env, `FAKE_CHECK_FAILS=invalid configuration: flag -set notifer.routes: unknown key "notifer"`)
	code, stderr := c.run("scripts/run.sh", "-set", "notifer.routes=x.yml")
	if code != 2 || !strings.Contains(stderr, `unknown key "notifer"`) {
		t.Fatalf("run.sh exited %d, want -check's 2 and its message:\n%s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(c.root, "data", "clickhouse", "config.xml")); err == nil {
		t.Error("run.sh started ClickHouse for a configuration -check refused")
	}
	if _, err := os.Stat(filepath.Join(c.root, "aiops-store")); err == nil {
		t.Error("run.sh ran aiops after -check refused")
	}
	// -check saw the flags and the store settings the run would have.
	check, err := os.ReadFile(filepath.Join(c.root, "aiops-check"))
	if err != nil {
		t.Fatal(err)
	}
	want := "clickhouse://127.0.0.1:9000/default\n" + filepath.Join(c.root, "data", "clickhouse-password") + "\nrun -check -set notifer.routes=x.yml\n"
	if string(check) != want {
		t.Errorf("aiops run -check ran with\n%s\nwant\n%s", check, want)
	}
}

// `scripts/run.sh -check` (README: "scripts/run.sh takes aiops run's
// flags") checks and starts nothing: it started the local ClickHouse and
// stopped it again, seconds each, to run the check a second time.
func TestRunScriptCheckStartsNoClickHouse(t *testing.T) {
	for _, flag := range []string{"-check", "--check=true"} {
		c := newScriptCheckout(t)
		if code, stderr := c.run("scripts/run.sh", flag, "-set", "ingest.listen=127.0.0.1:18080"); code != 0 {
			t.Fatalf("run.sh %s exited %d, want -check's 0:\n%s", flag, code, stderr)
		}
		if _, err := os.Stat(filepath.Join(c.root, "data", "clickhouse", "config.xml")); err == nil {
			t.Errorf("run.sh %s started ClickHouse", flag)
		}
		check, err := os.ReadFile(filepath.Join(c.root, "aiops-check"))
		if err != nil {
			t.Fatal(err)
		}
		if want := "run -check " + flag + " -set ingest.listen=127.0.0.1:18080\n"; !strings.HasSuffix(string(check), want) {
			t.Errorf("aiops run -check ran with\n%s\nwant it to end with\n%s", check, want)
		}
	}
}

// A relative -config names a file where run.sh was started, as every
// other command's does: run.sh goes to the checkout first (data/ is
// there), and `scripts/run.sh -config "my conf/aiops.yaml"` from the
// folder holding it failed with "open my conf/aiops.yaml: no such file or
// directory". -set values stay as given: their paths are the checkout's.
func TestRunScriptTakesARelativeConfigFromWhereItIsStarted(t *testing.T) {
	c := newScriptCheckout(t)
	user := t.TempDir()
	conf := filepath.Join(user, "my conf", "aiops.yaml")
	for _, tc := range []struct {
		args []string
		want string // what -check was given after "run -check "
	}{
		{[]string{"-config", "my conf/aiops.yaml", "-set", "notifier.routes=try/am.yml"}, "-config " + conf + " -set notifier.routes=try/am.yml"},
		{[]string{"--config=my conf/aiops.yaml"}, "--config=" + conf},
		{[]string{"-config", conf}, "-config " + conf},
		{[]string{"-set", "-config", "-config", "x.yaml"}, "-set -config -config " + filepath.Join(user, "x.yaml")},
	} {
		if code, stderr := c.runIn(user, "scripts/run.sh", tc.args...); code != 3 {
			t.Fatalf("run.sh %q exited %d, want the stand-in's 3:\n%s", tc.args, code, stderr)
		}
		check, err := os.ReadFile(filepath.Join(c.root, "aiops-check"))
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSuffix(string(check), "\n"), "\n")
		if got := lines[len(lines)-1]; got != "run -check "+tc.want {
			t.Errorf("run.sh %q ran aiops run -check with\n%s\nwant\n%s", tc.args, got, "run -check "+tc.want)
		}
	}
}

// Whatever ends run.sh stops the ClickHouse it started: Ctrl-C in `make
// demo` left it running (and every later `make run` used it, "left
// running", so it never went away), and a SIGTERM to the script alone
// (make passes it on to its child only) left aiops running and the
// script waiting for it. aiops gets one signal however many the script
// got: a second one forces its shutdown instead of letting it drain.
// aiops here is a stand-in in Go, whose signals behave as aiops's (a
// shell ignores for good the SIGINT that a command started with & has
// ignored; Go takes it back): it runs until a signal, drains for half a
// second noting every signal, then exits 0 as aiops does.
func TestRunScriptStopsClickHouseOnEveryExit(t *testing.T) {
	fake := buildFakeAiops(t)
	for _, tc := range []struct {
		name    string
		args    []string
		command string
		sig     syscall.Signal
		group   bool // as a terminal's Ctrl-C: to the script, aiops and all
	}{
		{"make run, Ctrl-C", nil, "run", syscall.SIGINT, true},
		{"make demo, Ctrl-C", []string{"--demo"}, "demo", syscall.SIGINT, true},
		{"make run, SIGTERM to the script", nil, "run", syscall.SIGTERM, false},
		{"make demo, SIGTERM to the script", []string{"--demo", "-seed", "2"}, "demo", syscall.SIGTERM, false},
		{"SIGTERM to the process group", nil, "run", syscall.SIGTERM, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newScriptCheckout(t)
			started, stopped := filepath.Join(c.root, "aiops-started"), filepath.Join(c.root, "aiops-stopped")
			data, err := os.ReadFile(fake)
			if err != nil {
				t.Fatal(err)
			}
			writeExecutable(t, filepath.Join(c.root, "bin", "aiops"), string(data))
			cmd := exec.Command(filepath.Join(c.root, "scripts", "run.sh"), tc.args...)
			cmd.Dir = t.TempDir()
			cmd.Env = c.env
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			var stderr strings.Builder
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			t.Cleanup(func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
			for {
				if _, err := os.Stat(started); err == nil {
					break
				}
				select {
				case err := <-done:
					t.Fatalf("run.sh exited (%v) before aiops started:\n%s", err, stderr.String())
				case <-time.After(10 * time.Millisecond):
				}
			}
			if !c.clickhouseRunning() {
				t.Fatalf("aiops started without the local ClickHouse:\n%s", stderr.String())
			}
			pid := cmd.Process.Pid
			if tc.group {
				pid = -pid
			}
			if err := syscall.Kill(pid, tc.sig); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("run.sh exited with %v after aiops stopped on the signal, want 0 as aiops:\n%s", err, stderr.String())
				}
			case <-time.After(30 * time.Second):
				t.Fatalf("run.sh still running 30s after %v:\n%s", tc.sig, stderr.String())
			}
			ran, _ := os.ReadFile(started)
			signals, _ := os.ReadFile(stopped)
			if want := strings.Join(append([]string{tc.command}, tc.args[min(1, len(tc.args)):]...), " "); string(ran) != want {
				t.Errorf("aiops ran as %q, want %q", ran, want)
			}
			if n := strings.Count(string(signals), "\n"); n != 1 {
				t.Errorf("aiops got %d signals (%q), want one: a second forces its shutdown", n, signals)
			}
			if c.clickhouseRunning() {
				t.Errorf("run.sh left the ClickHouse it started running:\n%s", stderr.String())
			}
		})
	}
}

// fakeAiops is bin/aiops for TestRunScriptStopsClickHouseOnEveryExit:
// -check passes; otherwise it writes its arguments to ../aiops-started,
// and, from the first SIGINT or SIGTERM on for half a second, each signal
// to a line of ../aiops-stopped, then exits 0.
const fakeAiops = `package main

import (
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) > 2 && os.Args[1] == "run" && os.Args[2] == "-check" {
		return
	}
	signals := make(chan os.Signal, 8)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	exe, _ := os.Executable()
	root := filepath.Join(filepath.Dir(exe), "..")
	os.WriteFile(filepath.Join(root, "aiops-started"), []byte(strings.Join(os.Args[1:], " ")), 0o644)
	got := []string{(<-signals).String()}
	for drained := time.After(500 * time.Millisecond); ; {
		select {
		case s := <-signals:
			got = append(got, s.String())
			continue
		case <-drained:
		}
		break
	}
	os.WriteFile(filepath.Join(root, "aiops-stopped"), []byte(strings.Join(got, "\n")+"\n"), 0o644)
}
`

// buildFakeAiops compiles fakeAiops and returns the binary's path.
func buildFakeAiops(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go not on PATH: the stand-in for aiops is built with it")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(fakeAiops), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(goBin, "build", "-o", "aiops", "main.go")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the stand-in for aiops: %v\n%s", err, out)
	}
	return filepath.Join(dir, "aiops")
}

// The query command run.sh suggests keeps the ClickHouse password off
// the command line, where every user of the machine reads it (ps,
// /proc/PID/cmdline) for as long as the query runs: clickhouse-client
// 18.16 does not hide --password. It reads the password from the
// client configuration clickhouse.sh writes, mode 0600.
func TestRunScriptQueryHintKeepsThePasswordOffTheCommandLine(t *testing.T) {
	c := newScriptCheckout(t)
	code, stderr := c.run("scripts/run.sh")
	if code != 3 {
		t.Fatalf("run.sh exited %d, want aiops's 3:\n%s", code, stderr)
	}
	var hint string
	for _, line := range strings.Split(stderr, "\n") {
		if strings.Contains(line, "query it with") {
			hint = line
		}
	}
	if hint == "" || strings.Contains(hint, "--password") || !strings.Contains(hint, "--config-file data/clickhouse/client.xml") {
		t.Fatalf("run.sh's query hint: %q\nwant clickhouse-client --config-file data/clickhouse/client.xml, no --password", hint)
	}
	info, err := os.Stat(filepath.Join(c.root, "data", "clickhouse", "client.xml"))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("data/clickhouse/client.xml: %v %v, want it there, mode 0600", info, err)
	}
}
