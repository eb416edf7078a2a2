package correlator

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
)

// A standby's API passes each request on to the active instance over NATS
// (request-reply on ForwardSubject), so that every instance behind one
// address answers: a Kubernetes Service in front of the active correlator
// and its standby would otherwise send every other request to the one
// that can only say 503. The request was authenticated where it came in;
// the active instance serves it as if it had come to its own listener,
// without the bearer (whoever may publish on the subject may already send
// commands on incidents.command.>, docs/security.md).

// ForwardSubject is where the instance holding durable's lease takes the
// API requests its standbys pass on. It is outside every stream's
// subjects: a stream capturing it would answer with a publish ack.
func ForwardSubject(durable string) string { return "aiops.correlator.api." + durable }

// Headers of a forwarded request and its answer.
const (
	hdrMethod = "Aiops-Method"
	hdrURI    = "Aiops-Uri"
	hdrStatus = "Aiops-Status"
)

// forwardedRequestHeaders are the request headers the handlers read.
var forwardedRequestHeaders = []string{"Content-Type", "Idempotency-Key"}

// ForwardTimeout bounds how long a standby waits for the active
// instance's answer: longer than a command's own 30 s wait for its tick.
const ForwardTimeout = 35 * time.Second

// maxForwardedAtOnce bounds the forwarded requests the active instance
// serves at once; past it a request is answered 503 at once, as a
// listener at its connection limit would.
const maxForwardedAtOnce = 64

// forwarder is the NATS side of the API: the standby's client and the
// active instance's responder.
type forwarder struct {
	nc      *nats.Conn
	subject string
	slots   chan struct{}
}

// forward passes r to the active instance and writes its answer.
func (a *API) forward(w http.ResponseWriter, r *http.Request) {
	// The body is read up to one byte past the largest one the API takes:
	// the active instance refuses a longer one as its own listener would.
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxCommandBody+1))
	if err != nil {
		writeError(w, http.StatusBadRequest, "reading the body: "+err.Error())
		return
	}
	msg := nats.NewMsg(a.fwd.subject)
	msg.Header.Set(hdrMethod, r.Method)
	msg.Header.Set(hdrURI, r.URL.RequestURI())
	for _, h := range forwardedRequestHeaders {
		if v := r.Header.Get(h); v != "" {
			msg.Header.Set(h, v)
		}
	}
	msg.Data = body
	ctx, cancel := context.WithTimeout(r.Context(), ForwardTimeout)
	defer cancel()
	answer, err := a.fwd.nc.RequestMsgWithContext(ctx, msg)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusServiceUnavailable, ErrStandby.Error()+", and no active instance answers yet (taking over, or restoring its state)")
		return
	case errors.Is(err, context.DeadlineExceeded) && r.Context().Err() == nil:
		writeError(w, http.StatusGatewayTimeout, fmt.Sprintf("%s: the active instance did not answer within %s (a command may have been applied: send it again with the same Idempotency-Key)", ErrStandby, ForwardTimeout))
		return
	case err != nil:
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("%s: passing the request to the active instance: %v", ErrStandby, err))
		return
	}
	status, err := strconv.Atoi(answer.Header.Get(hdrStatus))
	if err != nil || status < 100 || status > 599 {
		writeError(w, http.StatusBadGateway, fmt.Sprintf("%s: the active instance's answer has no status (%q)", ErrStandby, answer.Header.Get(hdrStatus)))
		return
	}
	for k, vs := range answer.Header {
		if k == hdrStatus {
			continue
		}
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	w.WriteHeader(status)
	_, _ = w.Write(answer.Data)
}

// answerForwarded serves the requests standbys pass on until ctx ends or
// the returned stop is called (the end of a term: the next holder takes
// them). A queue group: one holder answers, even while a term that lost
// its lease has not unsubscribed yet.
func (a *API) answerForwarded(ctx context.Context) (stop func(), err error) {
	if a == nil || a.fwd == nil {
		return func() {}, nil
	}
	sub, err := a.fwd.nc.QueueSubscribe(a.fwd.subject, "correlator-api", func(m *nats.Msg) {
		select {
		case a.fwd.slots <- struct{}{}:
		default:
			a.reply(m, http.StatusServiceUnavailable, fmt.Sprintf("the active instance serves %d passed-on requests already", maxForwardedAtOnce))
			return
		}
		go func() {
			defer func() { <-a.fwd.slots }()
			a.serveForwarded(ctx, m)
		}()
	})
	if err != nil {
		return nil, fmt.Errorf("correlator.api: answering the requests standbys pass on (%s): %w", a.fwd.subject, err)
	}
	return func() { _ = sub.Unsubscribe() }, nil
}

// serveForwarded answers one passed-on request through the same handlers
// as the listener (bar the bearer, checked where it came in), bounded to
// what one NATS message carries.
func (a *API) serveForwarded(ctx context.Context, m *nats.Msg) {
	// Read as the listener reads a request line (url.ParseRequestURI):
	// url.Parse would take "//x/v1/incidents" for host x and path
	// /v1/incidents, and serve a path the listener refuses.
	uri := m.Header.Get(hdrURI)
	u, err := url.ParseRequestURI(uri)
	var r *http.Request
	if err == nil {
		r, err = http.NewRequestWithContext(ctx, m.Header.Get(hdrMethod), "/", bytes.NewReader(m.Data))
	}
	if err != nil {
		a.reply(m, http.StatusBadRequest, "a passed-on request that is no request: "+err.Error())
		return
	}
	r.URL, r.RequestURI = u, uri
	for _, h := range forwardedRequestHeaders {
		if v := m.Header.Get(h); v != "" {
			r.Header.Set(h, v)
		}
	}
	rec := &recorder{header: http.Header{}, limit: int(a.fwd.nc.MaxPayload()) - 4<<10}
	a.handler.ServeHTTP(rec, r)
	if rec.over {
		a.reply(m, http.StatusBadGateway, fmt.Sprintf("the answer is larger than a NATS message may be (max_payload %d bytes): ask for fewer incidents (limit) or ask the active instance directly", a.fwd.nc.MaxPayload()))
		return
	}
	out := nats.NewMsg(m.Reply)
	for k, vs := range rec.header {
		out.Header[k] = vs
	}
	out.Header.Set(hdrStatus, strconv.Itoa(rec.statusOr200()))
	out.Data = rec.body.Bytes()
	if err := m.RespondMsg(out); err != nil {
		a.log.Warn().Err(err).Str("subject", a.fwd.subject).Msg("answering a passed-on API request failed: the standby answers 503 after its timeout")
	}
}

// reply answers a passed-on request with an error of the API's shape.
func (a *API) reply(m *nats.Msg, status int, msg string) {
	rec := &recorder{header: http.Header{}, limit: 1 << 20}
	if status == http.StatusServiceUnavailable {
		rec.header.Set("Retry-After", "5") // as the API's other 503s
	}
	writeError(rec, status, msg)
	out := nats.NewMsg(m.Reply)
	for k, vs := range rec.header {
		out.Header[k] = vs
	}
	out.Header.Set(hdrStatus, strconv.Itoa(status))
	out.Data = rec.body.Bytes()
	_ = m.RespondMsg(out)
}

// recorder is the http.ResponseWriter of a passed-on request: it keeps
// the answer, up to limit bytes of body.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
	limit  int
	over   bool
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
}

func (r *recorder) Write(p []byte) (int, error) {
	r.WriteHeader(http.StatusOK)
	if r.body.Len()+len(p) > r.limit {
		r.over = true
		return 0, errors.New("correlator: the answer is larger than a NATS message may be")
	}
	return r.body.Write(p)
}

func (r *recorder) statusOr200() int {
	if r.status == 0 {
		return http.StatusOK
	}
	return r.status
}
