// Package httpapi is what every aiops API listener shares: where it
// listens, the bearer token it wants (from a file, the environment or a
// generated file, never from the configuration itself), a server that
// drains on shutdown, and JSON in and out with bounded bodies. The
// correlator's incidents API and the notifier's silences API are built on
// it, so both are authenticated the same way.
package httpapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/config"
	"github.com/aiops-dev/aiops/pkg/event"
)

// Config is one API listener. It is off unless Listen is set, and always
// wants a bearer token.
type Config struct {
	// Listen is host:port (empty: no API).
	Listen string `yaml:"listen"`
	// TokenFile holds the bearer token; the token may also come from the
	// environment (AIOPS_<SECTION>__API__TOKEN), never from the file.
	TokenFile string `yaml:"token_file"`
	Token     string `yaml:"-" env:"token"`
	// GenerateTokenFile, when no token is configured, creates a random
	// token in this file (mode 0600) at start; `aiops run` uses
	// data/api-token for every API.
	GenerateTokenFile string `yaml:"generate_token_file"`
}

// Validate names the key that is wrong, relative to the section (the
// caller prefixes it: "correlator.api.listen: ...").
func (c Config) Validate() error {
	if c.Listen == "" {
		return nil
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("listen: %q is not host:port: %v", c.Listen, err)
	}
	if c.Token == "" && c.TokenFile == "" && c.GenerateTokenFile == "" {
		return errors.New("token: none set: set token_file, the token in the environment (AIOPS_<SECTION>__API__TOKEN) or generate_token_file")
	}
	if c.Token != "" && c.TokenFile != "" {
		return errors.New("token_file: the token from the environment is set too; keep one")
	}
	return nil
}

// ResolveToken reads or creates the token; it never logs the token, only
// where a generated one is kept.
//
// A token shorter than config.MinTokenLength is refused: Bearer serves the
// right token even from an address it blocks for wrong ones (so that one
// local process with a stale token cannot lock the operators out), and
// only the token's length then keeps guessing out of reach.
//
// Surrounding whitespace is dropped: HTTP trims header values, so no
// request could carry it, and a token kept with it (an environment
// variable set from a file ending in a newline) would refuse everyone.
func (c Config) ResolveToken(log zerolog.Logger) (string, error) {
	switch {
	case c.Token != "":
		return config.CheckToken("token", c.Token)
	case c.TokenFile != "":
		t, err := config.Secret(c.TokenFile, "")
		if err != nil {
			return "", fmt.Errorf("token_file: %w", err)
		}
		return config.CheckToken("token_file", t)
	}
	t, err := config.ReadOrCreateToken(c.GenerateTokenFile)
	if err != nil {
		return "", fmt.Errorf("generate_token_file: %w", err)
	}
	log.Info().Str("token_file", c.GenerateTokenFile).Str("listen", c.Listen).Msg("API token: send it as 'Authorization: Bearer <token>'")
	return t, nil
}

// TokenHint says where a client finds a token the server generated
// (GenerateTokenFile: `aiops run` keeps it in data/api-token), for its
// 401; "" for a token from a file or the environment, which the operator
// hands out.
func (c Config) TokenHint() string {
	if c.Token != "" || c.TokenFile != "" || c.GenerateTokenFile == "" {
		return ""
	}
	return "this server generated its token: it is in " + c.GenerateTokenFile
}

// Bearer lets through the requests that carry the token as
// "Authorization: Bearer <token>"; the others get a 401 naming what to
// send. The comparison takes the same time whatever the guess. An address
// that sent a missing or wrong token DefaultAuthFailureBurst times has
// its missing or wrong tokens refused with a 429 until its bucket refills
// (DefaultAuthFailureRate a second); the right token is served all the
// same, since under `aiops run` every local client is 127.0.0.1 and one
// process with a stale token must not lock out amtool and the operators
// (the ingest gateway does the same).
func Bearer(token, realm string, next http.Handler) http.Handler {
	return BearerWithHint(token, realm, "", next)
}

// BearerWithHint is Bearer whose 401 adds hint (Config.TokenHint) when
// set: where the token is.
func BearerWithHint(token, realm, hint string, next http.Handler) http.Handler {
	unauthorized := "send Authorization: Bearer <" + realm + " token>"
	if hint != "" {
		unauthorized += " (" + hint + ")"
	}
	want := sha256.Sum256([]byte(token))
	failures := NewAuthFailures(DefaultAuthFailureRate, DefaultAuthFailureBurst)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scheme, got, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		sum := sha256.Sum256([]byte(strings.TrimSpace(got)))
		if !ok || !strings.EqualFold(scheme, "Bearer") || subtle.ConstantTimeCompare(sum[:], want[:]) != 1 {
			client, now := ClientAddr(r), time.Now()
			if wait := failures.Blocked(client, now); wait > 0 {
				w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
				WriteError(w, http.StatusTooManyRequests, "too many requests with a missing or invalid token from this address; retry in "+wait.Round(time.Millisecond).String())
				return
			}
			failures.Fail(client, now)
			w.Header().Set("WWW-Authenticate", fmt.Sprintf("Bearer realm=%q", realm))
			WriteError(w, http.StatusUnauthorized, unauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// The failures Bearer allows an address before refusing it for a while.
const (
	DefaultAuthFailureRate  = 1.0
	DefaultAuthFailureBurst = 10
)

// Server serves one handler on a listener opened at construction (so a
// port in use is an error at start, and Addr is known before Run).
type Server struct {
	srv *http.Server
	ln  net.Listener
}

// Listen opens addr for h.
func Listen(addr string, h http.Handler) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return &Server{ln: ln, srv: &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout: time.Minute, WriteTimeout: time.Minute, MaxHeaderBytes: 64 << 10}}, nil
}

// Addr is where the server listens.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Run serves until ctx ends, then lets requests in flight finish (5 s at
// most).
func (s *Server) Run(ctx context.Context) error {
	done := make(chan error, 1)
	go func() { done <- s.srv.Serve(s.ln) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.srv.Shutdown(sctx); err != nil {
		s.srv.Close()
	}
	<-done
	return nil
}

// WriteJSON answers v, indented (people read these answers with curl).
func WriteJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// WriteError answers {"error": msg}.
// MethodNotAllowed answers 405, with Allow, naming the methods a path
// takes (allow, as the Allow header lists them): what a mux would answer
// in plain text, in JSON as every aiops API answers.
func MethodNotAllowed(allow string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		WriteError(w, http.StatusMethodNotAllowed, fmt.Sprintf("%s %s: this path takes %s", r.Method, r.URL.Path, allow))
	}
}

func WriteError(w http.ResponseWriter, code int, msg string) {
	WriteJSON(w, code, map[string]string{"error": msg})
}

// ErrBodyTooLarge is DecodeJSON's answer to a body over its limit.
var ErrBodyTooLarge = errors.New("httpapi: the body is too large")

// DecodeJSON reads at most max bytes of r's body into dst, refusing
// unknown fields and trailing data. An empty body leaves dst as it is and
// returns false. Errors name the problem; answer them with StatusOf.
func DecodeJSON(r *http.Request, max int64, dst any) (bool, error) {
	data, err := io.ReadAll(io.LimitReader(r.Body, max+1))
	switch {
	case err != nil:
		return false, fmt.Errorf("reading the body: %w", err)
	case int64(len(data)) > max:
		return false, fmt.Errorf("%w: over %d bytes", ErrBodyTooLarge, max)
	case len(bytes.TrimSpace(data)) == 0:
		return false, nil
	}
	if err := UnmarshalStrict(data, dst); err != nil {
		return false, err
	}
	return true, nil
}

// UnmarshalStrict reads data, one JSON value, into dst as DecodeJSON
// does: unknown fields and trailing data refused, errors naming the
// problem for the sender.
func UnmarshalStrict(data []byte, dst any) error {
	// What encoding/json would take and quietly change is refused, as
	// the gateway refuses it (event.CheckJSON): invalid UTF-8 (read as
	// U+FFFD: a silence's matcher would match nothing that was meant), a
	// key given twice (the last kept, where a proxy reading the first
	// would let another value through), a field's name in another case
	// (read as the field: {"by":"x","By":"y"} is "y") and a lone UTF-16
	// surrogate.
	if err := event.CheckJSON(data); err != nil {
		return checkProblem(err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return jsonProblem(err)
	}
	if err := checkFieldCase(data, dst); err != nil {
		return err
	}
	// Only JSON whitespace may follow the value. dec.More is not the
	// check: it is false before a stray ] or }, which would pass.
	end := int(dec.InputOffset())
	if rest := bytes.TrimLeft(data[end:], " \t\r\n"); len(rest) > 0 {
		at := len(data) - len(rest)
		return fmt.Errorf("the body has data after the JSON value at byte %d: %q; send one JSON value", at, clipRunes(rest, 16))
	}
	return nil
}

// jsonProblem words a decoding error for the sender, who knows the JSON
// and not the Go type it goes into: a field of the wrong type names the
// field and what it wants, a value of the wrong type the object wanted.
func jsonProblem(err error) error {
	var typ *json.UnmarshalTypeError
	var syn *json.SyntaxError
	switch {
	case errors.As(err, &typ) && typ.Field == "":
		return fmt.Errorf("the body is a JSON %s: want an object", typ.Value)
	case errors.As(err, &typ):
		return fmt.Errorf("field %q is a JSON %s: want %s", typ.Field, typ.Value, jsonKind(typ.Type))
	case errors.As(err, &syn):
		return fmt.Errorf("not JSON at byte %d: %s", max(syn.Offset-1, 0), strings.TrimPrefix(syn.Error(), "json: ")) // from 0, as the other messages count
	case errors.Is(err, io.EOF):
		// Nothing but whitespace: DecodeJSON takes that as no body, a
		// NATS message (UnmarshalStrict alone) gets here.
		return errors.New("empty: want one JSON value")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errors.New("not JSON: it ends before its value does (a brace, bracket or quote not closed)")
	}
	return errors.New(strings.TrimPrefix(err.Error(), "json: "))
}

// checkProblem words event.CheckJSON's refusal of a body: its first
// problem, the field it names or the body's.
func checkProblem(err error) error {
	var v *event.ValidationError
	if !errors.As(err, &v) || len(v.Problems) == 0 {
		return err
	}
	if p := v.Problems[0]; p.Field != "" {
		return errors.New(p.String())
	}
	return errors.New("the body " + v.Problems[0].Problem)
}

// jsonKind names, with its article, the JSON value a Go type is read from.
func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.Pointer:
		return jsonKind(t.Elem())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	}
	return "another value"
}

// clipRunes is b's first n bytes as a string, at a rune boundary.
func clipRunes(b []byte, n int) string {
	if len(b) <= n {
		return string(b)
	}
	return strings.ToValidUTF8(string(b[:n]), "") + "..."
}

// StatusOf is the status code for a DecodeJSON error: 413 for a body over
// the limit, 400 for the rest.
func StatusOf(err error) int {
	if errors.Is(err, ErrBodyTooLarge) {
		return http.StatusRequestEntityTooLarge
	}
	return http.StatusBadRequest
}
