package aiops

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
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
	// a failed run keeps the result of the run before it
	if err := writeOutput(path, nil, func(w io.Writer) error {
		w.Write([]byte("trunc"))
		return errors.New("stopped")
	}); err == nil {
		t.Fatal("writeOutput returned nil for a failed write")
	}
	if got, _ := os.ReadFile(path); string(got) != "a,b\n" {
		t.Errorf("after a failed run the result holds %q, want the earlier run's", got)
	}
	// a pipe is written in place, not replaced by a file
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	read := make(chan string, 1)
	go func() {
		data, _ := os.ReadFile(fifo)
		read <- string(data)
	}()
	if err := writeOutput(fifo, nil, func(w io.Writer) error { _, err := w.Write([]byte("through")); return err }); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-read:
		if got != "through" {
			t.Errorf("the pipe's reader got %q", got)
		}
	case <-time.After(10 * time.Second):
		t.Error("nothing came through the pipe: it was replaced by a file")
	}
	if st, err := os.Stat(fifo); err != nil || st.Mode()&os.ModeNamedPipe == 0 {
		t.Errorf("the pipe was replaced: %v %v", st.Mode(), err)
	}
}
