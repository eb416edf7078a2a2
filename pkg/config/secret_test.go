package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const secretValue = "s3cr3t-t0ken"

func TestSecretFromFileTrimsOneNewline(t *testing.T) {
	for _, content := range []string{secretValue + "\n", secretValue + "\r\n", secretValue} {
		path := filepath.Join(t.TempDir(), "token")
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := Secret(path, "")
		if err != nil || got != secretValue {
			t.Errorf("Secret(file with %q) = %q, %v; want %q", content, got, err, secretValue)
		}
	}
}

func TestSecretFileWinsOverEnv(t *testing.T) {
	path := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(path, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AIOPS_TEST_SECRET", "from-env")
	got, err := Secret(path, "AIOPS_TEST_SECRET")
	if err != nil || got != "from-file" {
		t.Errorf("Secret = %q, %v; want from-file", got, err)
	}
}

func TestSecretFromEnv(t *testing.T) {
	t.Setenv("AIOPS_TEST_SECRET", secretValue+"\n")
	got, err := Secret("", "AIOPS_TEST_SECRET")
	if err != nil || got != secretValue {
		t.Errorf("Secret = %q, %v; want %q", got, err, secretValue)
	}
}

func TestSecretNotSet(t *testing.T) {
	if _, err := Secret("", ""); !errors.Is(err, ErrSecretNotSet) {
		t.Errorf("nothing configured: err = %v, want ErrSecretNotSet", err)
	}
	t.Setenv("AIOPS_TEST_SECRET", "")
	_, err := Secret("", "AIOPS_TEST_SECRET")
	if !errors.Is(err, ErrSecretNotSet) || !strings.Contains(err.Error(), "AIOPS_TEST_SECRET") {
		t.Errorf("empty variable: err = %v, want ErrSecretNotSet naming the variable", err)
	}
}

func TestSecretFileErrorsNameFileNeverSecret(t *testing.T) {
	t.Setenv("AIOPS_TEST_SECRET", secretValue)
	dir := t.TempDir()

	missing := filepath.Join(dir, "missing")
	_, err := Secret(missing, "AIOPS_TEST_SECRET")
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing file: err = %v, want not-exist naming %s (no fall-back to the variable)", err, missing)
	}

	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Secret(empty, ""); err == nil || !strings.Contains(err.Error(), empty) {
		t.Errorf("empty file: err = %v, want an error naming %s", err, empty)
	}

	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, []byte(secretValue+strings.Repeat("x", MaxSecretSize)), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Secret(big, "")
	if err == nil || !strings.Contains(err.Error(), big) {
		t.Errorf("oversized file: err = %v, want an error naming %s", err, big)
	}
	if err != nil && strings.Contains(err.Error(), secretValue) {
		t.Errorf("err = %q contains the secret", err)
	}
}
