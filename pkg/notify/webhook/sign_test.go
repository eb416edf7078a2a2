package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The test vector of Standard Webhooks, from the reference libraries'
// tests: github.com/standard-webhooks/standard-webhooks,
// libraries/go/webhook_test.go, TestWebhookSign (commit 449485ca), the
// same values as the other libraries' sign tests. Secret, message id,
// timestamp and payload give exactly this signature.
const (
	vectorSecret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	vectorID        = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	vectorTimestamp = 1614265330
	vectorPayload   = `{"test": 2432232314}`
	vectorSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
	// A well-formed signature that matches nothing, from the same file.
	otherSignature = "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc="
)

func vectorHeader(sig string) http.Header {
	h := http.Header{}
	h.Set(HeaderID, vectorID)
	h.Set(HeaderTimestamp, strconv.Itoa(vectorTimestamp))
	h.Set(HeaderSignature, sig)
	return h
}

// independentSign computes a signature the long way, without Sign, so the
// tests do not check Sign against itself.
func independentSign(secret []byte, id, ts string, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	fmt.Fprintf(mac, "%s.%s.%s", id, ts, body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

func TestSpecTestVector(t *testing.T) {
	key, err := ParseSecret(vectorSecret)
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Unix(vectorTimestamp, 0)
	if got := Sign(key, vectorID, ts, []byte(vectorPayload)); got != vectorSignature {
		t.Fatalf("Sign = %s, want %s", got, vectorSignature)
	}
	if got := independentSign(key, vectorID, strconv.Itoa(vectorTimestamp), []byte(vectorPayload)); got != vectorSignature {
		t.Fatalf("independent HMAC = %s, want %s (the secret decodes wrongly)", got, vectorSignature)
	}
	// A sub-second part of the time does not change the signature.
	if got := Sign(key, vectorID, ts.Add(999*time.Millisecond), []byte(vectorPayload)); got != vectorSignature {
		t.Fatalf("Sign with milliseconds = %s", got)
	}
	if err := Verify([][]byte{key}, vectorHeader(vectorSignature), []byte(vectorPayload), ts, 0); err != nil {
		t.Fatalf("Verify of the test vector: %v", err)
	}
	// As the reference tests: several signatures, one valid, verify.
	multi := strings.Join([]string{otherSignature, "v2,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=", vectorSignature, otherSignature}, " ")
	if err := Verify([][]byte{key}, vectorHeader(multi), []byte(vectorPayload), ts, 0); err != nil {
		t.Fatalf("Verify with several signatures: %v", err)
	}
	if err := Verify([][]byte{key}, vectorHeader(otherSignature), []byte(vectorPayload), ts, 0); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("Verify of a wrong signature = %v, want ErrBadSignature", err)
	}
	if err := Verify([][]byte{key}, vectorHeader(vectorSignature), []byte(`{"test": 2432232315}`), ts, 0); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("Verify of a changed body = %v, want ErrBadSignature", err)
	}
	// The same MAC under another version tag is not a v1 signature.
	if err := Verify([][]byte{key}, vectorHeader("v1a,"+vectorSignature[3:]), []byte(vectorPayload), ts, 0); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("Verify of a v1a signature = %v, want ErrBadSignature", err)
	}
}

func TestVerifyTimestamps(t *testing.T) {
	key, _ := ParseSecret(vectorSecret)
	ts := time.Unix(vectorTimestamp, 0)
	h := vectorHeader(vectorSignature)
	body := []byte(vectorPayload)
	for _, c := range []struct {
		now       time.Time
		tolerance time.Duration
		stale     bool
	}{
		{ts.Add(DefaultTolerance), 0, false},
		{ts.Add(DefaultTolerance + time.Second), 0, true},
		{ts.Add(-DefaultTolerance), 0, false},
		{ts.Add(-DefaultTolerance - time.Second), 0, true},
		{ts.Add(time.Hour), 0, true},
		{ts.Add(30 * time.Second), 10 * time.Second, true},
		{ts.Add(30 * time.Second), time.Minute, false},
	} {
		err := Verify([][]byte{key}, h, body, c.now, c.tolerance)
		if c.stale != errors.Is(err, ErrStaleTimestamp) || (!c.stale && err != nil) {
			t.Errorf("now %+ds tolerance %v: %v, want stale %v", c.now.Unix()-vectorTimestamp, c.tolerance, err, c.stale)
		}
	}
}

func TestVerifyRejects(t *testing.T) {
	key, _ := ParseSecret(vectorSecret)
	ts := time.Unix(vectorTimestamp, 0)
	body := []byte(vectorPayload)
	for _, name := range []string{HeaderID, HeaderTimestamp, HeaderSignature} {
		h := vectorHeader(vectorSignature)
		h.Del(name)
		if err := Verify([][]byte{key}, h, body, ts, 0); !errors.Is(err, ErrMissingHeader) || !strings.Contains(err.Error(), name) {
			t.Errorf("without %s: %v", name, err)
		}
	}
	h := vectorHeader(vectorSignature)
	h.Set(HeaderTimestamp, "2021-02-25T15:02:10Z")
	if err := Verify([][]byte{key}, h, body, ts, 0); !errors.Is(err, ErrInvalidTimestamp) {
		t.Errorf("RFC 3339 timestamp: %v", err)
	}
	h = vectorHeader(vectorSignature)
	h.Set(HeaderID, "msg_other")
	if err := Verify([][]byte{key}, h, body, ts, 0); !errors.Is(err, ErrBadSignature) {
		t.Errorf("another id: %v", err)
	}
	if err := Verify(nil, vectorHeader(vectorSignature), body, ts, 0); !errors.Is(err, ErrInvalidSecret) {
		t.Errorf("no secret: %v", err)
	}
	if err := Verify([][]byte{key, {}}, vectorHeader(vectorSignature), body, ts, 0); !errors.Is(err, ErrInvalidSecret) {
		t.Errorf("an empty secret: %v", err)
	}
	if err := Verify([][]byte{key}, vectorHeader("v1,!!!notbase64"), body, ts, 0); !errors.Is(err, ErrBadSignature) {
		t.Errorf("garbage signature: %v", err)
	}
}

func TestRotation(t *testing.T) {
	oldKey, newKey := []byte(strings.Repeat("o", 32)), []byte(strings.Repeat("n", 32))
	ts := time.Unix(1700000000, 0)
	body := []byte(`{"a":1}`)
	h := http.Header{}
	SetHeaders(h, [][]byte{oldKey, newKey}, "id1", ts, body)
	sigs := strings.Fields(h.Get(HeaderSignature))
	if len(sigs) != 2 || sigs[0] != independentSign(oldKey, "id1", "1700000000", body) || sigs[1] != independentSign(newKey, "id1", "1700000000", body) {
		t.Fatalf("webhook-signature = %q", h.Get(HeaderSignature))
	}
	for _, k := range [][]byte{oldKey, newKey} {
		if err := Verify([][]byte{k}, h, body, ts, 0); err != nil {
			t.Fatalf("a receiver holding one of the secrets: %v", err)
		}
	}
	if err := Verify([][]byte{[]byte(strings.Repeat("x", 32))}, h, body, ts, 0); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("a third secret: %v", err)
	}
	SetHeaders(h, nil, "id1", ts, body)
	if h.Get(HeaderSignature) != "" || h.Get(HeaderID) != "id1" || h.Get(HeaderTimestamp) != "1700000000" {
		t.Fatalf("unsigned headers: %v", h)
	}
}

func TestParseSecret(t *testing.T) {
	raw := []byte(strings.Repeat("k", 32))
	enc := base64.StdEncoding.EncodeToString(raw)
	if got, err := ParseSecret(SecretPrefix + enc); err != nil || string(got) != string(raw) {
		t.Fatalf("ParseSecret = %q, %v", got, err)
	}
	// 25 bytes: padded base64; accepted without the padding too.
	raw25 := []byte(strings.Repeat("z", 25))
	padded := base64.StdEncoding.EncodeToString(raw25)
	for _, s := range []string{padded, strings.TrimRight(padded, "=")} {
		if got, err := ParseSecret(SecretPrefix + s); err != nil || string(got) != string(raw25) {
			t.Fatalf("ParseSecret(%q) = %q, %v", s, got, err)
		}
	}
	for _, c := range []struct{ in, want string }{
		{"", "empty"},
		{enc, `does not start with "whsec_"`},
		{"whsec_" + enc + "\n", "white space"},
		{"whsec_not*base64", "not standard base64"},
		{"whsec_" + base64.StdEncoding.EncodeToString(make([]byte, 16)), "16 bytes, want 24 to 64"},
		{"whsec_" + base64.StdEncoding.EncodeToString(make([]byte, 65)), "65 bytes, want 24 to 64"},
	} {
		_, err := ParseSecret(c.in)
		if !errors.Is(err, ErrInvalidSecret) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParseSecret(%q) = %v, want %q", c.in, err, c.want)
		}
		if c.in != "" && len(c.in) > 10 && strings.Contains(err.Error(), c.in[6:]) {
			t.Errorf("error %q holds the secret", err)
		}
	}
}

func TestReadSecretFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	key, err := ReadSecretFile(write("ok", vectorSecret+"\n"))
	if err != nil || Sign(key, vectorID, time.Unix(vectorTimestamp, 0), []byte(vectorPayload)) != vectorSignature {
		t.Fatalf("ReadSecretFile: %v", err)
	}
	if _, err := ReadSecretFile(write("crlf", vectorSecret+"\r\n")); err != nil {
		t.Fatalf("CRLF: %v", err)
	}
	big := write("big", "whsec_"+strings.Repeat("A", 64<<10))
	if _, err := ReadSecretFile(big); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("a file over 64 KiB: %v", err)
	}
	bad := write("bad", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n")
	if _, err := ReadSecretFile(bad); !errors.Is(err, ErrInvalidSecret) || !strings.Contains(err.Error(), bad) || strings.Contains(err.Error(), "MfKQ") {
		t.Fatalf("a secret without prefix: %v", err)
	}
	if _, err := ReadSecretFile(write("empty", "\n")); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Fatalf("an empty file: %v", err)
	}
	if _, err := ReadSecretFile(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a missing file: %v", err)
	}
}

// A secret file may hold several secrets (a rotation: the new and the old):
// each signs, and a receiver holding either verifies.
func TestReadSecretsFile(t *testing.T) {
	dir := t.TempDir()
	newKey, oldKey := "whsec_"+base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef")), "whsec_"+base64.StdEncoding.EncodeToString([]byte("fedcba9876543210fedcba9876543210"))
	path := filepath.Join(dir, "secret")
	os.WriteFile(path, []byte(newKey+"\n\n"+oldKey+"\n"), 0o600)
	keys, err := ReadSecretsFile(path)
	if err != nil || len(keys) != 2 {
		t.Fatalf("two secrets: %d, %v", len(keys), err)
	}
	h := http.Header{}
	body := []byte(`{"a":1}`)
	now := time.Now()
	SetHeaders(h, keys, "msg_1", now, body)
	for i, k := range keys {
		if err := Verify([][]byte{k}, h, body, now, time.Minute); err != nil {
			t.Errorf("a receiver with secret %d only: %v", i+1, err)
		}
	}
	for _, c := range []struct{ content, says string }{
		{"", "empty"},
		{"\n\n", "no secret"},
		{newKey + "\nnot-a-secret\n", "line 2"},
		{strings.Repeat(newKey+"\n", MaxSecrets+1), "more than"},
	} {
		os.WriteFile(path, []byte(c.content), 0o600)
		if _, err := ReadSecretsFile(path); err == nil || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%q: %v, want an error saying %q", c.content, err, c.says)
		}
	}
}
