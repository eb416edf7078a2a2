package config

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
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

// Listeners of one process share a generated token file and start at
// once: they must all end up with the same token, the one in the file.
func TestReadOrCreateTokenConcurrent(t *testing.T) {
	for round := 0; round < 20; round++ {
		path := filepath.Join(t.TempDir(), "data", "api-token")
		tokens := make([]string, 8)
		var wg sync.WaitGroup
		for i := range tokens {
			wg.Go(func() {
				tok, err := ReadOrCreateToken(path)
				if err != nil {
					t.Error(err)
				}
				tokens[i] = tok
			})
		}
		wg.Wait()
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for i, tok := range tokens {
			if tok != strings.TrimSpace(string(raw)) {
				t.Fatalf("round %d: listener %d got %q, the file holds %q", round, i, tok, raw)
			}
		}
		if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
			t.Fatalf("mode %v, want 0600", fi.Mode().Perm())
		}
		entries, _ := os.ReadDir(filepath.Dir(path))
		if len(entries) != 1 {
			t.Fatalf("left behind: %v", entries)
		}
	}
}
