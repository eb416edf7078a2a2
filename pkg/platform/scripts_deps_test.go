package platform

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// scripts/deps.sh writes /usr/sbin/policy-rc.d ("exit 101": no service
// starts) for the time of an apt-get install when there is none. Left
// behind, it keeps every later package on the machine from starting its
// service; it was, when the install was interrupted (Ctrl-C). These tests
// run deps.sh with a stand-in apt-get that waits until interrupted, a
// PATH without the tools it installs, and DEPS_POLICY_RC_D pointing into
// a temporary folder.
func TestDepsScriptRemovesItsPolicyOnInterrupt(t *testing.T) {
	policy := runDepsInterrupted(t, nil)
	if _, err := os.Stat(policy); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("interrupted deps.sh left %s behind (stat: %v)", policy, err)
	}
}

func TestDepsScriptKeepsAPolicyThatWasThere(t *testing.T) {
	const theirs = "#!/bin/sh\n# the image's own\nexit 101\n"
	policy := runDepsInterrupted(t, []byte(theirs))
	if data, err := os.ReadFile(policy); err != nil || string(data) != theirs {
		t.Fatalf("interrupted deps.sh changed the policy that was there: %q, %v", data, err)
	}
}

// runDepsInterrupted runs deps.sh until its first apt-get install, checks
// a policy is in place then, interrupts the script's process group as a
// terminal's Ctrl-C does, and returns the policy's path once it exited.
// before, when not nil, is a policy there before the run.
func runDepsInterrupted(t *testing.T, before []byte) string {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	// Only what deps.sh runs besides what it installs, so it installs
	// gcc first whatever this machine has.
	for _, tool := range []string{"bash", "sh", "dirname", "mktemp", "grep", "cat", "rm", "awk", "chmod", "sleep", "touch"} {
		path, err := exec.LookPath(tool)
		if err != nil {
			t.Skipf("%s not on PATH", tool)
		}
		if err := os.Symlink(path, filepath.Join(bin, tool)); err != nil {
			t.Fatal(err)
		}
	}
	policy := filepath.Join(dir, "policy-rc.d")
	installing := filepath.Join(dir, "installing")
	writeExecutable(t, filepath.Join(bin, "id"), "#!/bin/sh\necho 0\n") // root, without sudo
	writeExecutable(t, filepath.Join(bin, "apt-cache"), "#!/bin/sh\necho '  Candidate: 1.0'\n")
	writeExecutable(t, filepath.Join(bin, "apt-get"), "#!/bin/sh\n"+
		`[ "$1" = install ] || exit 0`+"\n"+
		`[ -x "$DEPS_POLICY_RC_D" ] && touch "$INSTALLING"`+"\n"+
		"exec sleep 300\n")
	if before != nil {
		writeExecutable(t, policy, string(before))
	}
	script, err := filepath.Abs("../../scripts/deps.sh")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(script)
	cmd.Env = []string{"PATH=" + bin, "DEPS_POLICY_RC_D=" + policy, "INSTALLING=" + installing}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
	// The install runs (with a policy in place) when the stand-in says so.
	for {
		if _, err := os.Stat(installing); err == nil {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("deps.sh exited (%v) before apt-get install ran with a policy in place", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("interrupted deps.sh exited 0")
		}
	case <-time.After(time.Minute):
		t.Fatal("deps.sh still running a minute after SIGINT")
	}
	return policy
}
