package aiops

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A result is written whole or not at all, readable as any file written
// (not 0600 as a temporary file is), and a folder in its place is told
// before any work.
func TestOpenOutput(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "scores.csv")
	w, commit, err := openOutput(path, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("a,b\n"))
	if err := commit(nil); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o644 {
		t.Fatalf("result: %v, mode %v; want 0644", err, st.Mode().Perm())
	}
	w, commit, err = openOutput(filepath.Join(dir, "failed.csv"), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("half"))
	if err := commit(errors.New("stopped")); err == nil {
		t.Fatal("a failed run's commit returned nil")
	}
	if left, _ := os.ReadDir(dir); len(left) != 1 {
		t.Fatalf("a failed run left %d files, want only the first result", len(left))
	}
	if _, _, err := openOutput(dir, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "is a folder") {
		t.Fatalf("a folder as output: %v", err)
	}
}
