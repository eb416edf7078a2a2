package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

const token = "0123456789abcdef0123"

func TestBearer(t *testing.T) {
	h := Bearer(token, "silences API", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	for _, c := range []struct {
		header string
		want   int
	}{
		{"", 401},
		{"Bearer", 401},
		{"Basic " + token, 401},
		{"Bearer " + token + "x", 401},
		{"Bearer " + token[:len(token)-1], 401},
		{"Bearer " + token, 204},
		{"bearer " + token, 204},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		if c.header != "" {
			r.Header.Set("Authorization", c.header)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != c.want {
			t.Errorf("Authorization %q: %d, want %d", c.header, w.Code, c.want)
		}
		if w.Code == 401 && (!strings.Contains(w.Body.String(), "Bearer <silences API token>") || w.Header().Get("WWW-Authenticate") == "") {
			t.Errorf("401 does not say what to send: %q %v", w.Body.String(), w.Header())
		}
	}
}

func TestDecodeJSON(t *testing.T) {
	type body struct {
		A string   `json:"a"`
		N int      `json:"n,omitempty"`
		L []string `json:"l,omitempty"`
	}
	for _, c := range []struct {
		in       string
		ok       bool
		wantErr  string
		wantCode int
	}{
		{"", false, "", 0},
		{"  \n", false, "", 0},
		{`{"a":"x"}`, true, "", 0},
		{`{"a":"x","b":1}`, false, `unknown field "b"`, 400},
		{`{"a":"x"} {"a":"y"}`, false, "data after the JSON value", 400},
		// A closing bracket or brace is not a second value (the decoder's
		// More says no more values), and is refused all the same.
		{`{"a":"x"} ]`, false, `data after the JSON value at byte 10: "]"`, 400},
		{"{\"a\":\"x\"}\n}", false, "data after the JSON value", 400},
		{`{"a":"x"}x`, false, "data after the JSON value", 400},
		{"{\"a\":\"x\"} \r\n\t", true, "", 0},
		{`{"a":"` + strings.Repeat("x", 100) + `"}`, false, "over 64 bytes", 413},
		{`{"a":`, false, "it ends before its value does", 400},
		// Said in JSON's words, not Go's types.
		{`[]`, false, "the body is a JSON array: want an object", 400},
		{`{"a":1}`, false, `field "a" is a JSON number: want a string`, 400},
		{`{"n":"1"}`, false, `field "n" is a JSON string: want a whole number`, 400},
		{`{"l":{}}`, false, `field "l" is a JSON object: want an array`, 400},
		{`{"a" "x"}`, false, "not JSON at byte 5", 400},
		// What encoding/json would take and quietly change is refused,
		// as the gateway refuses it: the value kept would not be the one
		// sent (a silence's matcher on "x\xff" matches "x\uFFFD"), or
		// not the one another reader of the body takes (the first "a").
		{"{\"a\":\"x\xff\"}", false, "the body is not valid UTF-8 (at byte 7)", 400},
		{`{"a":"y","a":"x"}`, false, `field "a" appears more than once`, 400},
		{`{"a":"x\ud800"}`, false, "lone UTF-16 surrogate", 400},
	} {
		var b body
		ok, err := DecodeJSON(httptest.NewRequest("POST", "/", strings.NewReader(c.in)), 64, &b)
		if ok != c.ok || (c.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.wantErr)) {
			t.Errorf("%q: %v %v, want %v and an error naming %q", c.in, ok, err, c.ok, c.wantErr)
		}
		if err != nil && StatusOf(err) != c.wantCode {
			t.Errorf("%q: status %d, want %d", c.in, StatusOf(err), c.wantCode)
		}
		if ok && b.A != "x" {
			t.Errorf("%q: decoded %+v", c.in, b)
		}
	}
}

// UnmarshalStrict is also how a NATS message is read (a correlator
// command), where an empty one reaches it: the reason says so, not Go's
// "EOF".
func TestUnmarshalStrictOfNothingSaysItIsEmpty(t *testing.T) {
	for _, in := range []string{"", " \n"} {
		var v struct{}
		if err := UnmarshalStrict([]byte(in), &v); err == nil || err.Error() != "empty: want one JSON value" {
			t.Errorf("%q: %v, want it said empty", in, err)
		}
	}
}

func TestConfig(t *testing.T) {
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, ""},
		{Config{Listen: "127.0.0.1:0", Token: token}, ""},
		{Config{Listen: "127.0.0.1:0"}, "token: none set"},
		{Config{Listen: "localhost", Token: token}, "listen:"},
		{Config{Listen: "127.0.0.1:0", Token: token, TokenFile: "f"}, "token_file:"},
	} {
		err := c.cfg.Validate()
		if (c.want == "") != (err == nil) || (err != nil && !strings.HasPrefix(err.Error(), c.want)) {
			t.Errorf("%+v: %v, want %q", c.cfg, err, c.want)
		}
	}
	// A generated token is kept and read back on the next start.
	cfg := Config{Listen: "127.0.0.1:0", GenerateTokenFile: filepath.Join(t.TempDir(), "api-token")}
	first, err := cfg.ResolveToken(zerolog.Nop())
	if err != nil || len(first) < 16 {
		t.Fatalf("generated %q: %v", first, err)
	}
	if again, _ := cfg.ResolveToken(zerolog.Nop()); again != first {
		t.Fatalf("second start got %q, first %q", again, first)
	}
}

func TestServer(t *testing.T) {
	s, err := Listen("127.0.0.1:0", Bearer(token, "test", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		WriteJSON(w, 200, map[string]int{"n": 1})
	})))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	req, _ := http.NewRequest("GET", "http://"+s.Addr().String()+"/", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"n": 1`) || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("%d %q", resp.StatusCode, b)
	}
	if _, err := Listen(s.Addr().String(), http.NotFoundHandler()); err == nil {
		t.Fatal("a second server on the same port started")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run after cancel: %v", err)
	}
}

// Failures are counted per address: past the burst the address's missing
// or wrong tokens are refused (429, Retry-After) until its bucket refills,
// and other addresses still get in. The right token always gets in: under
// `aiops run` every local client is 127.0.0.1, and one process sending a
// stale token must not lock amtool and the operators out.
func TestBearerLimitsFailures(t *testing.T) {
	h := Bearer(token, "test", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	do := func(remote, auth string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = remote
		r.Header.Set("Authorization", auth)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	for i := 0; i < DefaultAuthFailureBurst; i++ {
		if w := do("10.0.0.1:1234", "Bearer wrong"); w.Code != 401 {
			t.Fatalf("failure %d: %d, want 401", i, w.Code)
		}
	}
	if w := do("10.0.0.1:999", "Bearer wrong"); w.Code != 429 || w.Header().Get("Retry-After") == "" {
		t.Fatalf("past the burst: %d %v, want 429 with Retry-After", w.Code, w.Header())
	}
	if w := do("10.0.0.1:999", "Bearer "+token); w.Code != 204 {
		t.Fatalf("the right token from a blocked address: %d, want 204", w.Code)
	}
	if w := do("10.0.0.1:999", ""); w.Code != 429 {
		t.Fatalf("no token from a blocked address: %d, want 429", w.Code)
	}
	if w := do("10.0.0.2:1", "Bearer "+token); w.Code != 204 {
		t.Fatalf("another address: %d, want 204", w.Code)
	}
}

// An IPv6 client's failures count against its /64: rotating addresses
// within it (a host is commonly given a whole /64) does not reset them.
func TestBearerLimitsFailuresPerIPv6Prefix(t *testing.T) {
	h := Bearer(token, "test", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	code := func(remote string) int {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = remote
		r.Header.Set("Authorization", "Bearer wrong")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code
	}
	for i := range DefaultAuthFailureBurst {
		if c := code(fmt.Sprintf("[2001:db8:1:2::%x]:443", i+1)); c != 401 {
			t.Fatalf("failure %d: %d, want 401", i, c)
		}
	}
	if c := code("[2001:db8:1:2:ffff::1]:443"); c != 429 {
		t.Errorf("another address of the same /64 past the burst: %d, want 429", c)
	}
	if c := code("[2001:db8:1:3::1]:443"); c != 401 {
		t.Errorf("another /64: %d, want 401", c)
	}
}

func TestAuthFailuresBounded(t *testing.T) {
	a := NewAuthFailures(1, 10)
	now := time.Now()
	for i := range MaxAuthFailureClients + 500 {
		a.Fail(fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255), now)
	}
	if n := len(a.clients); n > MaxAuthFailureClients {
		t.Fatalf("%d client addresses remembered, over %d", n, MaxAuthFailureClients)
	}
}

// A token too short to keep guessing out of reach is refused, from the
// configuration or from its file: Bearer serves the right token even from
// an address it blocks for wrong ones.
func TestShortTokenRefused(t *testing.T) {
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte("1234\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for key, c := range map[string]Config{"token": {Token: "abcd"}, "token_file": {TokenFile: file}} {
		if _, err := c.ResolveToken(zerolog.Nop()); err == nil || !strings.HasPrefix(err.Error(), key+":") || !strings.Contains(err.Error(), "at least 16") {
			t.Errorf("%s of 4 characters: %v, want an error naming %s and the 16 characters", key, err, key)
		}
	}
	if tok, err := (Config{Token: strings.Repeat("k", 16)}).ResolveToken(zerolog.Nop()); err != nil || len(tok) != 16 {
		t.Errorf("a token of 16 characters: %q %v", tok, err)
	}
}

// A token kept with surrounding whitespace (an environment variable set
// from a file that ends in a newline) is the token without it: no request
// can carry the whitespace, since HTTP trims header values.
func TestTokenWhitespaceTrimmed(t *testing.T) {
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte(token+"\r\n\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for key, c := range map[string]Config{"token": {Token: token + "\n"}, "token_file": {TokenFile: file}} {
		got, err := c.ResolveToken(zerolog.Nop())
		if err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		h := Bearer(got, "test", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Authorization", "Bearer "+token)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != http.StatusNoContent {
			t.Errorf("%s with a trailing newline: the right token got %d, want 204", key, w.Code)
		}
	}
	if _, err := (Config{Token: " \n"}).ResolveToken(zerolog.Nop()); err == nil {
		t.Error("a token of whitespace only was accepted")
	}
}

// A 401 of a server that generated its token says which file holds it
// (`aiops run`: data/api-token); one whose token the operator set says
// nothing of where it came from.
func TestBearerWithHint(t *testing.T) {
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{GenerateTokenFile: "data/api-token"}, "send Authorization: Bearer <incidents API token> (this server generated its token: it is in data/api-token)"},
		{Config{TokenFile: "/run/secrets/api-token", GenerateTokenFile: "data/api-token"}, "send Authorization: Bearer <incidents API token>"},
		{Config{Token: token, GenerateTokenFile: "data/api-token"}, "send Authorization: Bearer <incidents API token>"},
	} {
		h := BearerWithHint(token, "incidents API", c.cfg.TokenHint(), http.NotFoundHandler())
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
		var got struct{ Error string }
		if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil || w.Code != 401 || got.Error != c.want || strings.Contains(w.Body.String(), `\u003c`) {
			t.Errorf("%+v: %d %s, want 401 %q, unescaped", c.cfg, w.Code, w.Body, c.want)
		}
	}
}

// encoding/json reads a key in another case, "By" or "BY", as the field
// "by", the last of them kept: a proxy or an audit reading the exact key
// would see another value than the one applied. Such keys are refused,
// naming the field, wherever they are; labels (a map's keys) and a field
// given in its own case still go in.
func TestUnmarshalStrictRefusesAFieldNamedInAnotherCase(t *testing.T) {
	type matcher struct {
		Name  string `json:"name"`
		Value string `json:"value"`
	}
	type body struct {
		By       string            `json:"by"`
		Matchers []matcher         `json:"matchers"`
		Labels   map[string]string `json:"labels"`
	}
	for _, c := range []struct{ in, want string }{
		{`{"by":"x","By":"y"}`, `field "By": the field is "by"`},
		{`{"BY":"y"}`, `field "BY": the field is "by"`},
		{`{"matchers":[{"name":"a","value":"b"},{"name":"a","VALUE":"c"}]}`, `field "matchers[1].VALUE": the field is "matchers[1].value"`},
		{"{\"by\":\"x\",\"matchers\":[{\"name\":\"a\",\"value\":\"b\"}],\"labels\":{\"App\":\"1\",\"app\":\"2\"}}", ""},
	} {
		var b body
		err := UnmarshalStrict([]byte(c.in), &b)
		if c.want == "" {
			if err != nil || b.By != "x" || b.Labels["App"] != "1" || b.Labels["app"] != "2" {
				t.Errorf("%s: %v %+v, want it read", c.in, err, b)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.in, err, c.want)
		}
	}
}
