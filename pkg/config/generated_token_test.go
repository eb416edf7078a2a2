package config

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// A generate_token_file that is a dangling symlink (data/api-token linked
// to a secrets mount not there yet): ReadFile says it does not exist, Link
// says it does, and ReadOrCreateToken calls itself for ever, each call
// leaving a temporary token file behind until the stack overflows.
func TestReadOrCreateTokenDanglingSymlink(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "api-token")
	if err := os.Symlink(filepath.Join(dir, "missing", "token"), path); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := ReadOrCreateToken(path); done <- err }()
	select {
	case err := <-done:
		t.Logf("error: %v", err)
		if err == nil {
			t.Error("a token was made for a dangling symlink")
		}
	case <-time.After(3 * time.Second):
		ents, _ := os.ReadDir(dir)
		t.Fatalf("ReadOrCreateToken has not returned after 3 s; %d files in the directory", len(ents))
	}
}

// docs/security.md: secret files are read "at most 64 KiB"; the generated
// token's file (data/api-token, data/ingest-token, data/nats-token) was
// read whole, whatever it held.
func TestReadOrCreateTokenBounded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "api-token")
	big := make([]byte, MaxSecretSize+1)
	for i := range big {
		big[i] = 'a'
	}
	if err := os.WriteFile(path, big, 0o600); err != nil {
		t.Fatal(err)
	}
	tok, err := ReadOrCreateToken(path)
	if err == nil {
		t.Fatalf("a %d-byte token file was taken: a token of %d characters", len(big), len(tok))
	}
	t.Logf("error: %v", err)
}

// A generated token's file that other users may read (a copy, a restore,
// a token written by hand with umask 022) or write is refused, naming
// the file and the chmod that fixes it, as ssh refuses such a key; the
// owner's modes are taken.
func TestReadOrCreateTokenRefusesAFileOthersMayReadOrWrite(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no mode bits")
	}
	path := filepath.Join(t.TempDir(), "api-token")
	const token = "0123456789abcdef0123456789abcdef"
	if err := os.WriteFile(path, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o620, 0o602} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		_, err := ReadOrCreateToken(path)
		if err == nil || !strings.Contains(err.Error(), "chmod 600 "+path) {
			t.Errorf("mode %04o: err = %v, want a refusal naming chmod 600 %s", mode, err, path)
		}
	}
	for _, mode := range []os.FileMode{0o600, 0o400} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		if got, err := ReadOrCreateToken(path); err != nil || got != token {
			t.Errorf("mode %04o: %q, %v; want the token", mode, got, err)
		}
	}
}

// A generated token's file owned by another user is refused, as ssh
// refuses a key of another owner: whoever made it chose the token. Mode
// 0600 alone does not tell: root reads another user's 0600 file, so a
// user who could write into data/ (a checkout in a shared folder) and
// made data/api-token there before root's first `aiops run` knew every
// token. Making a file of another owner needs root.
func TestReadOrCreateTokenRefusesAFileOfAnotherOwner(t *testing.T) {
	if runtime.GOOS == "windows" || os.Geteuid() != 0 {
		t.Skip("making a file of another owner needs root")
	}
	path := filepath.Join(t.TempDir(), "api-token")
	if err := os.WriteFile(path, []byte("chosen-by-another-user-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(path, 65534, 65534); err != nil { // nobody
		t.Fatal(err)
	}
	_, err := ReadOrCreateToken(path)
	if err == nil || !strings.Contains(err.Error(), "owned by user 65534") || !strings.Contains(err.Error(), path) {
		t.Fatalf("a token file of another owner: err = %v, want a refusal naming the file and its owner", err)
	}
}
