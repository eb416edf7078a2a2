package config

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// MinTokenLength is the shortest bearer token a listener accepts.
const MinTokenLength = 16

// CheckToken returns the token t configured under key without its
// surrounding whitespace, or an error naming key when what is left is
// shorter than MinTokenLength. Whitespace is dropped because HTTP trims
// header values: a token kept with the newline of its file (or of the
// file a variable was set from) would refuse everyone.
func CheckToken(key, t string) (string, error) {
	t = strings.TrimSpace(t)
	if err := CheckTokenLength(key, t); err != nil {
		return "", err
	}
	return t, nil
}

// CheckTokenLength is CheckToken's length check alone, for a token that
// is compared as it is (the embedded NATS server's: its clients send it
// byte for byte).
func CheckTokenLength(key, t string) error {
	if len(t) < MinTokenLength {
		return fmt.Errorf("%s: the token is %d characters, want at least %d (openssl rand -hex 32 makes one)", key, len(t), MinTokenLength)
	}
	return nil
}

// ReadOrCreateToken returns the token kept in path, creating a random one
// (48 hex digits, file mode 0600) when the file does not exist. Local runs
// use it so every listener is authenticated without set-up, and the token
// stays the same across restarts so producers set up once keep working.
func ReadOrCreateToken(path string) (string, error) {
	raw, err := readTokenFile(path)
	switch {
	case err == nil:
		t := strings.TrimSpace(string(raw))
		if len(t) < MinTokenLength {
			return "", fmt.Errorf("%s holds no token of %d characters or more", path, MinTokenLength)
		}
		return t, nil
	case !errors.Is(err, os.ErrNotExist):
		return "", err
	}
	buf := make([]byte, 24)
	if _, err := rand.Read(buf); err != nil {
		return "", err
	}
	token := hex.EncodeToString(buf)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", err
	}
	// Several listeners of one process may share the file and start at
	// once: the token is written aside and linked into place, which fails
	// when another got there first, whose token is then everyone's.
	tmp, err := os.CreateTemp(filepath.Dir(path), ".token-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(token + "\n"); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if !errors.Is(err, os.ErrExist) {
			return "", err
		}
		// Another got there first: its token is everyone's. Read once:
		// a path that exists for Link and not for ReadFile (a dangling
		// symlink) would otherwise send this round for ever, a token
		// file left behind at each turn.
		raw, err := readTokenFile(path)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return "", fmt.Errorf("%s exists but leads to no file (a dangling symlink?): remove it, or make it lead to the token", path)
			}
			return "", err
		}
		t := strings.TrimSpace(string(raw))
		if len(t) < MinTokenLength {
			return "", fmt.Errorf("%s holds no token of %d characters or more", path, MinTokenLength)
		}
		return t, nil
	}
	return token, nil
}

// readTokenFile reads a generated token's file as every secret file is
// read: at most MaxSecretSize bytes (a file named by mistake, or a link
// to /dev/zero, is refused instead of read whole). A file other users may
// read or write, or that another user owns, is refused, as ssh refuses
// such a private key: aiops made it 0600, so a wider mode is a change no
// one meant (a copy, a restore, a chmod -R) and the token may be known to
// others; one they may write, or made, holds the token they chose. Files
// the operator names (token_file, password_file) are not checked:
// Kubernetes and Docker mount secrets 0440 or 0444 in a container where
// no other user runs.
func readTokenFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if err := checkTokenFileMode(path, f); err != nil {
		return nil, err
	}
	raw, err := io.ReadAll(io.LimitReader(f, MaxSecretSize+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(raw) > MaxSecretSize {
		return nil, fmt.Errorf("%s: larger than %d bytes: not a token file", path, MaxSecretSize)
	}
	return raw, nil
}

// checkTokenFileMode refuses a generated token's file that users other
// than its owner may read or write, or that another user owns. Windows
// has no such mode bits.
func checkTokenFileMode(path string, f *os.File) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("%s has mode %04o: other users may read or change the token it holds. "+
			"Run chmod 600 %s, or delete it to have a new token made at the next start (do that if others may have read it)", path, perm, path)
	}
	// Its mode alone does not tell: root reads another user's 0600 file,
	// and whoever made the file chose the token.
	if uid, ok := fileOwner(fi); ok && uid != os.Geteuid() {
		return fmt.Errorf("%s is owned by user %d, not by this one (%d): whoever made it chose the token it holds. "+
			"Delete it to have a new token made at the next start, and keep data/ writable by this user only", path, uid, os.Geteuid())
	}
	return nil
}
