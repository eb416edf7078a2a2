package ingest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/bus"
	"github.com/aiops-dev/aiops/pkg/config"
	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/pkg/service"
)

// ServerConfig is the HTTP listener around the Handler.
type ServerConfig struct {
	Config `yaml:",inline"`
	// Listen is host:port for producers (default 127.0.0.1:8080).
	Listen string `yaml:"listen"`
	// TokensFile holds the bearer tokens, one per line (# comments and blank
	// lines ignored). Tokens can also come from AIOPS_INGEST__TOKENS.
	TokensFile string `yaml:"tokens_file"`
	// GenerateTokenFile, when no token is configured, makes the server
	// create one random token in this file (mode 0600) at start, so a local
	// run is authenticated without set-up; `aiops run` uses data/ingest-token.
	GenerateTokenFile string `yaml:"generate_token_file"`
	// TLSCertFile and TLSKeyFile switch the listener to HTTPS.
	TLSCertFile string `yaml:"tls_cert_file"`
	TLSKeyFile  string `yaml:"tls_key_file"`
	// StoreConsumer is the durable consumer of EVENTS that stores events
	// in ClickHouse, whose backlog the gateway watches (MaxStoreBacklog):
	// the writer's writer.consumer.durable, default "writer".
	StoreConsumer string `yaml:"store_consumer"`
}

// DefaultStoreConsumer is the writer's durable consumer by default.
const DefaultStoreConsumer = "writer"

// StoreConsumerName is the consumer StoreConsumer names, its default
// filled in.
func (c ServerConfig) StoreConsumerName() string {
	if c.StoreConsumer == "" {
		return DefaultStoreConsumer
	}
	return c.StoreConsumer
}

// DefaultListen is where producers post by default.
const DefaultListen = "127.0.0.1:8080"

// Validate names the field that is wrong. Tokens from files are checked
// when the server starts.
func (c ServerConfig) Validate() error {
	if c.Listen != "" {
		if _, _, err := net.SplitHostPort(c.Listen); err != nil {
			return fmt.Errorf("ingest.listen: %q is not host:port: %v", c.Listen, err)
		}
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		return errors.New("ingest.tls_cert_file and ingest.tls_key_file: set both or neither")
	}
	if c.AllowAnonymous && !loopback(c.listen()) {
		return fmt.Errorf("ingest.allow_anonymous: refused on %q, which other machines can reach; configure tokens", c.listen())
	}
	if len(c.Tokens) == 0 && c.TokensFile == "" && c.GenerateTokenFile == "" && !c.AllowAnonymous {
		return errors.New("ingest: no bearer tokens, so every request would be refused: set ingest.tokens_file (one token per line) or AIOPS_INGEST__TOKENS='[token1, token2]'")
	}
	cfg := c.Config
	if c.TokensFile != "" || c.GenerateTokenFile != "" {
		// The tokens arrive at start; check everything else now.
		cfg.AllowAnonymous = true
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("ingest: %w", err)
	}
	return nil
}

func (c ServerConfig) listen() string {
	if c.Listen == "" {
		return DefaultListen
	}
	return c.Listen
}

// listen is net.Listen; a test makes a loopback name bind elsewhere.
var listen = net.Listen

func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	return err == nil && service.IsLoopbackHost(host)
}

// Server serves the ingest endpoints until its context ends.
type Server struct {
	handler           *Handler
	http              *http.Server
	listener          net.Listener
	certFile, keyFile string // HTTPS when set
	log               zerolog.Logger
}

// NewServer resolves the tokens, builds the handler and binds the listener
// (so a port conflict fails at start, not later).
func NewServer(cfg ServerConfig, pub Publisher, log zerolog.Logger, extra ...Option) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	tokens, generated, err := cfg.tokens(log)
	if err != nil {
		return nil, err
	}
	cfg.Config.Tokens = tokens
	opts := append([]Option{WithLogger(log)}, extra...)
	if generated {
		// A client refused a token it never got told where to find.
		opts = append(opts, withTokenHint("this gateway generated its token: it is in "+cfg.GenerateTokenFile))
	}
	h, err := New(cfg.Config, pub, opts...)
	if err != nil {
		return nil, err
	}
	ln, err := listen("tcp", cfg.listen())
	if err != nil {
		return nil, fmt.Errorf("ingest.listen: %w", err)
	}
	// Validate allowed anonymous requests on a loopback name; decide by
	// what the name resolved to ("localhost" that /etc/hosts or a DNS
	// search domain maps elsewhere).
	if tcp, ok := ln.Addr().(*net.TCPAddr); ok && cfg.AllowAnonymous && !tcp.IP.IsLoopback() {
		ln.Close()
		return nil, fmt.Errorf("ingest.allow_anonymous: refused: ingest.listen %q binds %s, which other machines can reach; configure tokens", cfg.listen(), tcp.IP)
	}
	s := &Server{
		handler:  h,
		listener: ln,
		certFile: cfg.TLSCertFile,
		keyFile:  cfg.TLSKeyFile,
		log:      log,
		http: &http.Server{
			Handler: h,
			// Slow or stalled clients must not hold connections forever.
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       maxBodyTime, // the body is paced within it (pacedBody)
			WriteTimeout:      2 * time.Minute,
			IdleTimeout:       2 * time.Minute,
			MaxHeaderBytes:    64 << 10,
		},
	}
	return s, nil
}

// Addr is the bound address.
func (s *Server) Addr() net.Addr { return s.listener.Addr() }

// Checks is the gateway's readiness: not ready while the consumer whose
// backlog it watches (WithStoreBacklog: ingest.store_consumer) is not on
// the stream, its check naming the one it watches and the ones there are.
// A gateway started before its writer is ready once the writer has made
// its consumer; one told another name never is, so that a rollout with
// the wrong name stalls rather than takes away the bound on events not
// stored. Requests are taken meanwhile, as before.
func (s *Server) Checks() []service.Check {
	h := s.handler
	if h.backlog == nil {
		return nil
	}
	return []service.Check{{Name: "ingest", Fn: func(ctx context.Context) error {
		return h.backlog.missing(ctx, h.now(), h.cfg.MaxStoreBacklog)
	}}}
}

// Collector exports the gateway's metrics (aiops_ingest_*).
func (s *Server) Collector() prometheus.Collector { return s.handler.Collector() }

// Run serves until ctx ends, then stops accepting and lets requests in
// flight finish (they answer only after the bus acked their events).
func (s *Server) Run(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() {
		if s.certFile != "" {
			errc <- s.http.ServeTLS(s.listener, s.certFile, s.keyFile)
		} else {
			errc <- s.http.Serve(s.listener)
		}
	}()
	s.log.Info().Str("addr", s.listener.Addr().String()).Bool("tls", s.certFile != "").Msg("ingest listening")
	select {
	case err := <-errc:
		return fmt.Errorf("ingest server: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.http.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("ingest shutdown: %w", err)
	}
	return nil
}

// tokens gathers the tokens from the environment, the tokens file and, when
// there are none, a generated token file.
// generated tells that the token is the generated file's.
func (c ServerConfig) tokens(log zerolog.Logger) (_ []string, generated bool, _ error) {
	// Surrounding whitespace is dropped, as from the file: HTTP trims
	// header values, so no request could carry it.
	var tokens []string
	for _, t := range c.Config.Tokens {
		tokens = append(tokens, strings.TrimSpace(t))
	}
	if c.TokensFile != "" {
		raw, err := config.Secret(c.TokensFile, "")
		if err != nil {
			return nil, false, fmt.Errorf("ingest.tokens_file: %w", err)
		}
		sc := bufio.NewScanner(bytes.NewReader([]byte(raw)))
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if line != "" && !strings.HasPrefix(line, "#") {
				tokens = append(tokens, line)
			}
		}
	}
	if len(tokens) == 0 && c.GenerateTokenFile != "" {
		token, err := config.ReadOrCreateToken(c.GenerateTokenFile)
		if err != nil {
			return nil, false, fmt.Errorf("ingest.generate_token_file: %w", err)
		}
		log.Info().Str("token_file", c.GenerateTokenFile).Msg("ingest token: send it as 'Authorization: Bearer <token>'")
		return append(tokens, token), true, nil
	}
	return tokens, false, nil
}

// BusPublisher publishes envelopes to JetStream on their subjects, with the
// event id as the message id, and returns once every one was acked.
type BusPublisher struct{ Publisher *bus.Publisher }

// PublishAll implements Publisher.
func (b BusPublisher) PublishAll(ctx context.Context, events []*event.Envelope) error {
	msgs := make([]bus.Message, len(events))
	for i, e := range events {
		// MarshalJSON directly: json.Marshal would check and compact its
		// output once more, about a tenth of the gateway's CPU per event
		// (BenchmarkIngestNDJSON1000), for bytes that are valid JSON
		// already (compact, but for unknown fields, kept as sent).
		data, err := e.MarshalJSON()
		if err != nil {
			return fmt.Errorf("event %d: %w", i, err)
		}
		msgs[i] = bus.Message{Subject: e.Subject(), ID: e.ID, Data: data}
	}
	_, err := b.Publisher.PublishAll(ctx, msgs)
	return err
}
