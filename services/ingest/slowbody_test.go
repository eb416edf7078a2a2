package ingest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// startServer runs a Server for cfg on a free loopback port until the test
// ends and returns its address.
func startServer(t *testing.T, cfg ServerConfig, pub Publisher) string {
	t.Helper()
	cfg.Listen = "127.0.0.1:0"
	s, err := NewServer(cfg, pub, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server: %v", err)
		}
	})
	return s.Addr().String()
}

// TestStalledUploadFreesItsSlot: a producer that sends the headers of a
// large body and then a trickle, or nothing (a client gone without
// closing its connection, a stalled link), held one of the
// max_concurrent_requests slots until the server's 2-minute ReadTimeout:
// sixteen of them answered every other producer 503 for two minutes, and
// the stalled one then got a 400 "i/o timeout". Now a body must keep
// arriving at min_body_rate after body_grace_period: the stalled request
// is answered 503 naming the problem (every client retries a 503) and its
// slot serves the next request.
func TestStalledUploadFreesItsSlot(t *testing.T) {
	pub := &fakePublisher{}
	addr := startServer(t, ServerConfig{Config: Config{
		Tokens: []string{tokenA}, MaxConcurrentRequests: 1,
		BodyGracePeriod: 100 * time.Millisecond,
		// The clock of the bodies' day is not the server's: take any time.
		MaxEventAge: 100 * 365 * 24 * time.Hour, MaxEventFuture: 100 * 365 * 24 * time.Hour,
	}}, pub)

	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: application/x-ndjson\r\nContent-Length: %d\r\n\r\n",
		PathEvents, addr, tokenA, 1<<20)
	if _, err := conn.Write(bytes.Repeat([]byte("\n"), 100)); err != nil {
		t.Fatal(err)
	}
	// Not a bound on how fast the gateway is: a guard so that the gateway
	// without the rule fails here instead of after its 2-minute ReadTimeout.
	conn.SetReadDeadline(time.Now().Add(time.Minute))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer to the stalled upload: %v (it holds the only slot until the server's ReadTimeout)", err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" ||
		!strings.Contains(string(body), "arrived slower than") {
		t.Fatalf("the stalled upload: %d %s, want 503 with Retry-After saying the body arrived too slowly", resp.StatusCode, body)
	}

	req, err := http.NewRequest(http.MethodPost, "http://"+addr+PathEvents, strings.NewReader(logLine))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tokenA)
	req.Header.Set("Content-Type", "application/json")
	next, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	next.Body.Close()
	if next.StatusCode != http.StatusOK || len(pub.published()) != 1 {
		t.Fatalf("the next request: %d, %d events published; want 200 and its event", next.StatusCode, len(pub.published()))
	}
}

// A body that pauses is read as long as what it sent covers the pause at
// min_body_rate: the deadline moves with the bytes, so a producer on a
// slow or bursty link is not cut off, only one that falls behind.
func TestPausedUploadOnPaceIsRead(t *testing.T) {
	pub := &fakePublisher{}
	addr := startServer(t, ServerConfig{Config: Config{
		Tokens: []string{tokenA}, MaxConcurrentRequests: 1,
		// 8 KiB sent at once buy 8 s at 1 KiB/s: far more than the pause.
		BodyGracePeriod: 50 * time.Millisecond, MinBodyRate: 1 << 10,
		MaxEventAge: 100 * 365 * 24 * time.Hour, MaxEventFuture: 100 * 365 * 24 * time.Hour,
	}}, pub)
	first := append(bytes.Repeat([]byte("\n"), 8<<10), logLine...)
	rest := []byte("\n" + metricLine + "\n")
	body, w := io.Pipe()
	go func() {
		w.Write(first)
		time.Sleep(250 * time.Millisecond) // the pause: past the grace, within the pace
		w.Write(rest)
		w.Close()
	}()
	req, err := http.NewRequest(http.MethodPost, "http://"+addr+PathEvents, body)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = int64(len(first) + len(rest))
	req.Header.Set("Authorization", "Bearer "+tokenA)
	req.Header.Set("Content-Type", "application/x-ndjson")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || len(pub.published()) != 2 {
		t.Fatalf("a paused upload on pace: %d %s, %d events published; want 200 and both", resp.StatusCode, answer, len(pub.published()))
	}
}

func TestBodyDeadline(t *testing.T) {
	begin := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		n    int64
		want time.Duration
	}{
		{0, 10 * time.Second},                     // nothing yet: the grace
		{16 << 10, 11 * time.Second},              // a second per 16 KiB
		{160 << 10, 20 * time.Second},             //
		{10 << 20, maxBodyTime},                   // never past the server's read timeout
		{8 << 10, 10*time.Second + time.Second/2}, // in proportion
	} {
		if got := bodyDeadline(begin, c.n, 10*time.Second, 16<<10).Sub(begin); got != c.want {
			t.Errorf("after %d bytes: due %s after the start, want %s", c.n, got, c.want)
		}
	}
}

// The body's deadline ends with the body: net/http's read for the next
// request, started at the body's end, would time out at one set later
// and cancel the request's context, failing a publish still waiting for
// the bus with a 503.
func TestBodyDeadlineEndsWithTheBody(t *testing.T) {
	pub := &blockingPublisher{entered: make(chan struct{}, 1), release: make(chan struct{})}
	addr := startServer(t, ServerConfig{Config: Config{
		Tokens: []string{tokenA}, BodyGracePeriod: 10 * time.Millisecond,
		MaxEventAge: 100 * 365 * 24 * time.Hour, MaxEventFuture: 100 * 365 * 24 * time.Hour,
	}}, pub)
	req, err := http.NewRequest(http.MethodPost, "http://"+addr+PathEvents, strings.NewReader(logLine))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tokenA)
	req.Header.Set("Content-Type", "application/json")
	answered := make(chan *http.Response, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Error(err)
		}
		answered <- resp
	}()
	<-pub.entered
	time.Sleep(200 * time.Millisecond) // the publish outlasts the body's deadline (10 ms)
	close(pub.release)
	resp := <-answered
	if resp == nil {
		t.FailNow()
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("a publish that outlasted the body's deadline: %d, want 200", resp.StatusCode)
	}
}

// The gateway serves HTTPS with ingest.tls_cert_file, and then HTTP/2 to
// the clients that offer it (the OpenTelemetry exporters do): there a
// request body's deadline is the stream's, not the connection's. A stalled
// HTTP/2 upload is answered 503 too and frees its slot, and the requests
// that follow on the same connection, one of them gzip, are read whole and
// taken.
func TestStalledUploadOverHTTP2FreesItsSlot(t *testing.T) {
	certFile, keyFile, roots := selfSignedCert(t)
	pub := &fakePublisher{}
	addr := startServer(t, ServerConfig{TLSCertFile: certFile, TLSKeyFile: keyFile, Config: Config{
		Tokens: []string{tokenA}, MaxConcurrentRequests: 1,
		BodyGracePeriod: 100 * time.Millisecond,
		MaxEventAge:     100 * 365 * 24 * time.Hour, MaxEventFuture: 100 * 365 * 24 * time.Hour,
	}}, pub)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, ForceAttemptHTTP2: true}}
	defer client.CloseIdleConnections()
	post := func(body io.Reader, length int64, encoding string) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, "https://"+addr+PathEvents, body)
		if err != nil {
			t.Fatal(err)
		}
		req.ContentLength = length
		req.Header.Set("Authorization", "Bearer "+tokenA)
		req.Header.Set("Content-Type", "application/x-ndjson")
		if encoding != "" {
			req.Header.Set("Content-Encoding", encoding)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		answer, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(answer)
	}

	stalled, w := io.Pipe()
	defer w.Close()
	go w.Write(bytes.Repeat([]byte("\n"), 100)) // then nothing
	resp, answer := post(stalled, 1<<20, "")
	if resp.ProtoMajor != 2 {
		t.Fatalf("the client spoke %s, want HTTP/2", resp.Proto)
	}
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !strings.Contains(answer, "arrived slower than") {
		t.Fatalf("the stalled upload: %d %s, want 503 with Retry-After saying the body arrived too slowly", resp.StatusCode, answer)
	}
	plain := []byte(logLine + "\n")
	zipped := gzipped([]byte(metricLine + "\n"))
	for i, body := range [][]byte{plain, zipped} {
		encoding := ""
		if i == 1 {
			encoding = "gzip"
		}
		if resp, answer := post(bytes.NewReader(body), int64(len(body)), encoding); resp.StatusCode != http.StatusOK {
			t.Fatalf("request %d after the stalled one: %d %s, want 200", i+1, resp.StatusCode, answer)
		}
	}
	if n := len(pub.published()); n != 2 {
		t.Fatalf("%d requests published, want the 2 after the stalled one", n)
	}
}

// selfSignedCert writes a certificate for 127.0.0.1 and its key, and
// returns the pool that trusts it.
func selfSignedCert(t *testing.T) (certFile, keyFile string, roots *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ingest.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	for path, block := range map[string]*pem.Block{certFile: {Type: "CERTIFICATE", Bytes: der}, keyFile: {Type: "EC PRIVATE KEY", Bytes: keyDER}} {
		if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	roots = x509.NewCertPool()
	roots.AddCert(cert)
	return certFile, keyFile, roots
}

// A 401 says what to send, unescaped ("Bearer <token>", not
// "\u003ctoken\u003e"), and, when the gateway generated its token (aiops
// run), the file it is in: a new user's first request has no token yet.
func TestUnauthorizedNamesTheGeneratedTokenFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "ingest-token")
	addr := startServer(t, ServerConfig{GenerateTokenFile: file}, &fakePublisher{})
	resp, err := http.Post("http://"+addr+"/v1/events", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(body), "Bearer <token>") || !strings.Contains(string(body), file) {
		t.Fatalf("%d %s: want a 401 naming Bearer <token> and %s", resp.StatusCode, body, file)
	}
}
