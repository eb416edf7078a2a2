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

	"github.com/aiops-dev/aiops/pkg/bus"
	"github.com/aiops-dev/aiops/pkg/event"
)

// A standby's API passes each request on to the active instance over NATS
// (request-reply on ForwardSubject), so that every instance behind one
// address answers: a Kubernetes Service in front of the active correlator
// and its standby would otherwise send every other request to the one
// that can only say 503. The request was authenticated where it came in;
// the active instance serves it as if it had come to its own listener,
// without the bearer (whoever may publish on the subject may already send
// commands on incidents.command.>, docs/security.md).

// ForwardSubject is where the instance holding durable's lease, as
// holder, takes the API requests its standbys pass on. It is outside
// every stream's subjects (a stream capturing it would answer with a
// publish ack). It names the holder, whom a standby reads in the lease:
// an instance whose node died keeps its subscription on the server until
// its connection times out (minutes), and a subject it shared with the
// next holder would take part of the requests into nothing for as long;
// its own subject takes them only while its lease stands (lease.ttl).
func ForwardSubject(durable, holder string) string {
	return fmt.Sprintf("aiops.correlator.api.%s.%016x", durable, event.PartsHash(holder))
}

// Headers of a forwarded request and its answer.
const (
	hdrMethod = "Aiops-Method"
	hdrURI    = "Aiops-Uri"
	hdrStatus = "Aiops-Status"
	// hdrParts is how many messages the answer's body takes (one when
	// absent): the first has the status and headers, each a part.
	hdrParts = "Aiops-Parts"
)

// answerRoom is what the first message of an answer keeps free of its
// body for the status and headers.
const answerRoom = 4 << 10

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
	lease   *bus.Lease
	durable string
	slots   chan struct{}
	timeout time.Duration // a standby's wait for the answer: ForwardTimeout
	// received, when set, is called with each passed-on request as the
	// active instance takes it off its subscription: tests hold it there
	// so that the next request waits in the client behind it.
	received func(*nats.Msg)
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
	ctx, cancel := context.WithTimeout(r.Context(), a.fwd.timeout)
	defer cancel()
	holder, err := a.fwd.lease.Holder(ctx)
	switch {
	case err != nil:
		writeUnavailable(w, fmt.Sprintf("%s: reading who holds the lease: %v", ErrStandby, err))
		return
	case holder == "":
		writeUnavailable(w, ErrStandby.Error()+", and no instance holds the lease yet")
		return
	}
	subject := ForwardSubject(a.fwd.durable, holder)
	msg := nats.NewMsg(subject)
	msg.Header.Set(hdrMethod, r.Method)
	msg.Header.Set(hdrURI, r.URL.RequestURI())
	for _, h := range forwardedRequestHeaders {
		if v := r.Header.Get(h); v != "" {
			msg.Header.Set(h, v)
		}
	}
	msg.Data = body
	// An inbox of its own, not RequestMsg's: an answer longer than one
	// NATS message comes in several.
	inbox, err := a.fwd.nc.SubscribeSync(a.fwd.nc.NewInbox())
	if err == nil {
		defer func() { _ = inbox.Unsubscribe() }()
		msg.Reply = inbox.Subject
		err = a.fwd.nc.PublishMsg(msg)
	}
	var answer *nats.Msg
	if err == nil {
		answer, err = inbox.NextMsgWithContext(ctx)
	}
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		writeUnavailable(w, ErrStandby.Error()+", and no active instance answers yet (taking over, or restoring its state)")
		return
	case errors.Is(err, context.DeadlineExceeded) && r.Context().Err() == nil:
		why := fmt.Sprintf("%s: the active instance did not answer within %s", ErrStandby, a.fwd.timeout)
		if r.Method == http.MethodPost {
			why += " (the command may have been applied: send it again under the same Idempotency-Key, or read the incident before sending one without)"
		}
		writeError(w, http.StatusGatewayTimeout, why)
		return
	case err != nil:
		writeUnavailable(w, fmt.Sprintf("%s: passing the request to the active instance: %v", ErrStandby, err))
		return
	}
	status, err := strconv.Atoi(answer.Header.Get(hdrStatus))
	if err != nil || status < 100 || status > 599 {
		writeError(w, http.StatusBadGateway, fmt.Sprintf("%s: the active instance's answer has no status (%q)", ErrStandby, answer.Header.Get(hdrStatus)))
		return
	}
	for k, vs := range answer.Header {
		if k == hdrStatus || k == hdrParts {
			continue
		}
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	parts := 1
	if v := answer.Header.Get(hdrParts); v != "" {
		if parts, err = strconv.Atoi(v); err != nil || parts < 1 {
			writeError(w, http.StatusBadGateway, fmt.Sprintf("%s: the active instance's answer has no part count (%q)", ErrStandby, v))
			return
		}
	}
	w.WriteHeader(status)
	_, _ = w.Write(answer.Data)
	for i := 1; i < parts; i++ {
		m, err := inbox.NextMsgWithContext(ctx)
		if err != nil {
			// The status is out: a client must not take the part it got
			// for the whole answer, so the connection is broken off.
			a.log.Warn().Err(err).Str("subject", subject).Int("part", i+1).Int("parts", parts).Msg("a part of the active instance's answer did not come: the answer is cut off")
			panic(http.ErrAbortHandler)
		}
		_, _ = w.Write(m.Data)
	}
}

// answerForwarded serves the requests standbys pass on until ctx ends or
// the returned stop is called (the end of a term: the next holder takes
// them, on its own subject). The stop drains the subscription: the
// requests the client took but did not yet hand to the callback are still
// answered (the handler's 503 with Retry-After, once the term is over),
// where an unsubscribe dropped them and their standbys waited
// ForwardTimeout for a 504.
func (a *API) answerForwarded(ctx context.Context) (stop func(), err error) {
	if a == nil || a.fwd == nil {
		return func() {}, nil
	}
	subject := ForwardSubject(a.fwd.durable, a.fwd.lease.Name())
	sub, err := a.fwd.nc.Subscribe(subject, func(m *nats.Msg) {
		if a.fwd.received != nil {
			a.fwd.received(m)
		}
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
		return nil, fmt.Errorf("correlator.api: answering the requests standbys pass on (%s): %w", subject, err)
	}
	return func() { _ = sub.Drain() }, nil
}

// serveForwarded answers one passed-on request through the same handlers
// as the listener (bar the bearer, checked where it came in). An answer
// longer than one NATS message goes in parts, each as long as one may be.
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
	rec := &recorder{header: http.Header{}}
	a.handler.ServeHTTP(rec, r)
	a.respond(m, rec)
}

// reply answers a passed-on request with an error of the API's shape.
func (a *API) reply(m *nats.Msg, status int, msg string) {
	rec := &recorder{header: http.Header{}}
	if status == http.StatusServiceUnavailable {
		writeUnavailable(rec, msg) // as the API's other 503s
	} else {
		writeError(rec, status, msg)
	}
	a.respond(m, rec)
}

// respond sends rec's answer to a passed-on request: its status and
// headers with the body's first part, the rest each in a message as long
// as one may be.
func (a *API) respond(m *nats.Msg, rec *recorder) {
	body := rec.body.Bytes()
	part := max(int(a.fwd.nc.MaxPayload())-answerRoom, answerRoom)
	parts := max((len(body)+part-1)/part, 1)
	out := nats.NewMsg(m.Reply)
	for k, vs := range rec.header {
		out.Header[k] = vs
	}
	out.Header.Set(hdrStatus, strconv.Itoa(rec.statusOr200()))
	out.Header.Set(hdrParts, strconv.Itoa(parts))
	for i := range parts {
		if i > 0 {
			out = &nats.Msg{Subject: m.Reply}
		}
		out.Data = body[i*part : min((i+1)*part, len(body))]
		if err := m.RespondMsg(out); err != nil {
			a.log.Warn().Err(err).Str("subject", m.Subject).Msg("answering a passed-on API request failed: the standby gives up after correlator.ForwardTimeout")
			return
		}
	}
}

// recorder is the http.ResponseWriter of a passed-on request: it keeps
// the answer.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
}

func (r *recorder) Write(p []byte) (int, error) {
	r.WriteHeader(http.StatusOK)
	return r.body.Write(p)
}

func (r *recorder) statusOr200() int {
	if r.status == 0 {
		return http.StatusOK
	}
	return r.status
}
