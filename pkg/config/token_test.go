package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadOrCreateToken(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "token")
	first, err := ReadOrCreateToken(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(first) < MinTokenLength {
		t.Fatalf("token %d characters", len(first))
	}
	info, err := os.Stat(path)
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("token file mode %v, %v; want 0600", info.Mode(), err)
	}
	again, err := ReadOrCreateToken(path)
	if err != nil || again != first {
		t.Fatalf("second read %q, %v; want the same token", again, err)
	}
	other, _ := ReadOrCreateToken(filepath.Join(t.TempDir(), "token"))
	if other == first {
		t.Fatal("two new tokens are equal")
	}
	short := filepath.Join(t.TempDir(), "short")
	os.WriteFile(short, []byte("abc\n"), 0o600)
	if _, err := ReadOrCreateToken(short); err == nil || !strings.Contains(err.Error(), short) || strings.Contains(err.Error(), "abc") {
		t.Fatalf("short token: %v", err)
	}
}
