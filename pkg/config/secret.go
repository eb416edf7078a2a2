package config

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/aiops-dev/aiops/pkg/errs"
)

// ErrSecretNotSet is returned by Secret when neither the file nor the
// environment variable provides a secret, so callers of optional secrets can
// tell "none configured" from "configured but unreadable".
var ErrSecretNotSet = errors.New("secret not set")

// MaxSecretSize bounds a secret file; a token or password is a few hundred
// bytes, anything bigger is the wrong file.
const MaxSecretSize = 64 << 10

// Secret returns a secret read from file, or, when file is empty, from the
// environment variable envVar. The file wins because naming a file is a
// deliberate act in the configuration while an environment variable may be
// inherited; a file that is named but unreadable is an error, never a silent
// fall-back. One trailing newline ("\n" or "\r\n"), which editors and `echo`
// add, is removed. Errors name the file or variable and never contain the
// secret. Empty file and envVar, or an unset or empty variable, give
// ErrSecretNotSet.
func Secret(file, envVar string) (string, error) {
	if file != "" {
		s, err := readSecretFile(file)
		if err != nil {
			return "", errs.Permanent(err)
		}
		return s, nil
	}
	if envVar == "" {
		return "", ErrSecretNotSet
	}
	v, ok := os.LookupEnv(envVar)
	v = trimNewline(v)
	if !ok || v == "" {
		return "", fmt.Errorf("environment variable %s is empty or unset: %w", envVar, ErrSecretNotSet)
	}
	return v, nil
}

// ReadSecretFile reads a secret from a file as Secret does: at most
// MaxSecretSize bytes, one trailing newline removed, an empty file refused.
// Every secret file of the project (tokens, the NATS and ClickHouse
// passwords) is read by it, so they all behave alike. Errors name the file
// and never contain the secret.
func ReadSecretFile(path string) (string, error) { return readSecretFile(path) }

func readSecretFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("secret file: %w", err) // *PathError names the path
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxSecretSize+1))
	if err != nil {
		return "", fmt.Errorf("secret file %s: %w", path, err)
	}
	if len(data) > MaxSecretSize {
		return "", fmt.Errorf("secret file %s: larger than %d bytes", path, MaxSecretSize)
	}
	s := trimNewline(string(data))
	if s == "" {
		return "", fmt.Errorf("secret file %s is empty", path)
	}
	return s, nil
}

func trimNewline(s string) string {
	if t, ok := strings.CutSuffix(s, "\r\n"); ok {
		return t
	}
	return strings.TrimSuffix(s, "\n")
}
