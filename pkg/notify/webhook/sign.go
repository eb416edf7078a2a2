package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/aiops-dev/aiops/pkg/config"
)

// The Standard Webhooks headers.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// Secrets and signatures.
const (
	// SecretPrefix starts every serialised secret.
	SecretPrefix = "whsec_"
	// MinSecretBytes and MaxSecretBytes bound a decoded secret, as the
	// specification asks (at least 192 bits, at most 512).
	MinSecretBytes = 24
	MaxSecretBytes = 64
	// SignatureVersion prefixes an HMAC-SHA256 signature ("v1,<base64>").
	SignatureVersion = "v1"
	// DefaultTolerance is how far a webhook-timestamp may be from the
	// receiver's clock, either way, when Verify is given no tolerance.
	DefaultTolerance = 5 * time.Minute
)

// Errors of ParseSecret and Verify, for errors.Is.
var (
	// ErrInvalidSecret: a secret that is not whsec_<base64> of 24 to 64
	// bytes, or an empty one.
	ErrInvalidSecret = errors.New("webhook: invalid secret")
	// ErrMissingHeader: a request without webhook-id, webhook-timestamp or
	// webhook-signature.
	ErrMissingHeader = errors.New("webhook: missing header")
	// ErrInvalidTimestamp: a webhook-timestamp that is not unix seconds.
	ErrInvalidTimestamp = errors.New("webhook: invalid webhook-timestamp")
	// ErrStaleTimestamp: a webhook-timestamp further from now than the
	// tolerance (a replay, or a clock far off).
	ErrStaleTimestamp = errors.New("webhook: webhook-timestamp outside the tolerance")
	// ErrBadSignature: no v1 signature in webhook-signature matches any of
	// the secrets.
	ErrBadSignature = errors.New("webhook: no matching signature")
)

// Sign returns the Standard Webhooks signature of one message:
// "v1," followed by the standard base64 of HMAC-SHA256 with key secret over
// "<id>.<unix seconds of ts>.<body>".
func Sign(secret []byte, id string, ts time.Time, body []byte) string {
	mac := sum(secret, id, ts.Unix(), body)
	return SignatureVersion + "," + base64.StdEncoding.EncodeToString(mac)
}

func sum(secret []byte, id string, unix int64, body []byte) []byte {
	h := hmac.New(sha256.New, secret)
	var buf [20]byte
	h.Write([]byte(id))
	h.Write([]byte{'.'})
	h.Write(strconv.AppendInt(buf[:0], unix, 10))
	h.Write([]byte{'.'})
	h.Write(body)
	return h.Sum(nil)
}

// SignatureHeader is the value of webhook-signature for a message signed
// with every secret, in order, separated by spaces: during a rotation the
// old and the new secret both sign, so receivers holding either verify.
// It is empty without secrets.
func SignatureHeader(secrets [][]byte, id string, ts time.Time, body []byte) string {
	sigs := make([]string, len(secrets))
	for i, s := range secrets {
		sigs[i] = Sign(s, id, ts, body)
	}
	return strings.Join(sigs, " ")
}

// SetHeaders sets webhook-id, webhook-timestamp and, when there are
// secrets, webhook-signature on h.
func SetHeaders(h http.Header, secrets [][]byte, id string, ts time.Time, body []byte) {
	h.Set(HeaderID, id)
	h.Set(HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
	if len(secrets) > 0 {
		h.Set(HeaderSignature, SignatureHeader(secrets, id, ts, body))
	} else {
		h.Del(HeaderSignature)
	}
}

// ParseSecret decodes a secret written as "whsec_" followed by the standard
// base64 (padded or not) of 24 to 64 bytes. Errors wrap ErrInvalidSecret
// and never contain the secret.
func ParseSecret(s string) ([]byte, error) {
	if s == "" {
		return nil, fmt.Errorf("%w: empty", ErrInvalidSecret)
	}
	enc, ok := strings.CutPrefix(s, SecretPrefix)
	if !ok {
		return nil, fmt.Errorf("%w: does not start with %q", ErrInvalidSecret, SecretPrefix)
	}
	if strings.TrimSpace(enc) != enc {
		return nil, fmt.Errorf("%w: contains leading or trailing white space", ErrInvalidSecret)
	}
	key, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		key, err = base64.RawStdEncoding.DecodeString(enc)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: the part after %q is not standard base64", ErrInvalidSecret, SecretPrefix)
	}
	if len(key) < MinSecretBytes || len(key) > MaxSecretBytes {
		return nil, fmt.Errorf("%w: decodes to %d bytes, want %d to %d", ErrInvalidSecret, len(key), MinSecretBytes, MaxSecretBytes)
	}
	return key, nil
}

// ReadSecretFile reads a whsec_ secret from a file as every secret file of
// aiops is read (config.ReadSecretFile: at most 64 KiB, one trailing
// newline dropped, an empty file refused) and parses it. Errors name the
// file, never the secret.
func ReadSecretFile(path string) ([]byte, error) {
	s, err := config.ReadSecretFile(path)
	if err != nil {
		return nil, err
	}
	key, err := ParseSecret(s)
	if err != nil {
		return nil, fmt.Errorf("secret file %s: %w", path, err)
	}
	return key, nil
}

// MaxSecrets bounds the secrets of one secret file.
const MaxSecrets = 4

// ReadSecretsFile reads a file of Standard Webhooks secrets, one per line
// (blank lines ignored): during a rotation it holds the new secret and the
// old one, and a request carries a signature under each, so receivers
// verifying with either accept it.
func ReadSecretsFile(path string) ([][]byte, error) {
	s, err := config.ReadSecretFile(path)
	if err != nil {
		return nil, err
	}
	var keys [][]byte
	for i, line := range strings.Split(s, "\n") {
		if line = strings.TrimSpace(line); line == "" {
			continue
		}
		if len(keys) == MaxSecrets {
			return nil, fmt.Errorf("secret file %s: more than %d secrets", path, MaxSecrets)
		}
		key, err := ParseSecret(line)
		if err != nil {
			return nil, fmt.Errorf("secret file %s: line %d: %w", path, i+1, err)
		}
		keys = append(keys, key)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("secret file %s: no secret", path)
	}
	return keys, nil
}

// Verify checks a received webhook as a receiver should: the three headers
// are present, webhook-timestamp is within tolerance of now (either way;
// tolerance <= 0 means DefaultTolerance), and one of the v1 signatures in
// webhook-signature is the HMAC of "id.timestamp.body" under one of the
// secrets, compared in constant time. Signatures of other versions (v1a,
// ed25519) are skipped. body must be the raw bytes received, not JSON
// decoded and encoded again.
func Verify(secrets [][]byte, h http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	if len(secrets) == 0 {
		return fmt.Errorf("%w: no secret to verify with", ErrInvalidSecret)
	}
	for i, s := range secrets {
		if len(s) == 0 {
			return fmt.Errorf("%w: secret %d is empty", ErrInvalidSecret, i)
		}
	}
	id, tsText, sigs := h.Get(HeaderID), h.Get(HeaderTimestamp), h.Get(HeaderSignature)
	for _, hv := range [...]struct{ name, value string }{{HeaderID, id}, {HeaderTimestamp, tsText}, {HeaderSignature, sigs}} {
		if hv.value == "" {
			return fmt.Errorf("%w: %s", ErrMissingHeader, hv.name)
		}
	}
	unix, err := strconv.ParseInt(tsText, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: %q is not unix seconds", ErrInvalidTimestamp, tsText)
	}
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	// Compare in seconds: the header has no finer resolution.
	switch skew := now.Unix() - unix; {
	case skew > int64(tolerance/time.Second):
		return fmt.Errorf("%w: %ds old, tolerance %v", ErrStaleTimestamp, skew, tolerance)
	case -skew > int64(tolerance/time.Second):
		return fmt.Errorf("%w: %ds in the future, tolerance %v", ErrStaleTimestamp, -skew, tolerance)
	}
	want := make([][]byte, len(secrets))
	for i, s := range secrets {
		want[i] = sum(s, id, unix, body)
	}
	for _, vs := range strings.Fields(sigs) {
		version, enc, ok := strings.Cut(vs, ",")
		if !ok || version != SignatureVersion {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(enc)
		if err != nil {
			continue
		}
		for _, w := range want {
			if hmac.Equal(got, w) {
				return nil
			}
		}
	}
	return ErrBadSignature
}
