package correlator

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/correlate"
	"github.com/aiops-dev/aiops/pkg/errs"
	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/pkg/httpapi"
	"github.com/aiops-dev/aiops/pkg/service"
	"github.com/aiops-dev/aiops/pkg/stage"
)

// APIConfig is the incidents API's listener: off unless Listen is set,
// always with a bearer token.
type APIConfig = httpapi.Config

// MaxIdempotencyKey bounds an Idempotency-Key: with the request's hash it
// makes a command id of at most correlate.MaxCommandID bytes.
const MaxIdempotencyKey = correlate.MaxCommandID - len("key:/0123456789abcdef")

// Errors of Submit.
var (
	// ErrCommandTimeout: the command was not applied before the caller's
	// deadline (commands wait for the next tick, every second).
	ErrCommandTimeout = errors.New("correlator: the command was not applied in time")
	// ErrNotStored: the command was applied, but neither is its incident
	// event stored nor does a saved state hold it yet (a crash now would
	// lose it); the runtime retries the event at the next tick and a
	// checkpoint follows at once.
	ErrNotStored = errors.New("correlator: the command is applied but not stored yet")
	// ErrStandby: this instance does not hold the lease; the active one
	// has the incidents. A signal given back so is good (errs.GivenBack).
	ErrStandby = errs.GivenBack(errors.New("correlator: this instance is standing by (it does not hold the lease)"))
	// ErrCatchingUp: the incident is not known, but this instance restored
	// its state less than the consumer's ack_wait ago, and the signals its
	// predecessor took after its last save (a crash) are still coming
	// again: they may make the incident again. Asked again soon, the
	// command is applied or refused as unknown.
	ErrCatchingUp = errors.New("correlator: the incident is not known yet: the signals from before this instance took over are still coming again")
)

// pendingCommand is a command waiting for the next tick.
type pendingCommand struct {
	cmd    correlate.Command
	result chan commandResult
	// applied is the state the command made, set by the tick that
	// applied it (guarded by Processor.mu): a caller whose deadline came
	// before the answer gets it with ErrNotStored.
	applied *correlate.State
}

type commandResult struct {
	state correlate.State
	err   error
}

// Submit hands a command to the correlator and waits until, with a state
// store, a saved checkpoint holds the command (one is asked for at once),
// and the incident event it causes was stored by the stream: a caller
// told yes must not lose the command to a crash, which restores the last
// saved state. The event is published only once that checkpoint holds
// the command (Processor.unsaved). Commands are applied by the tick, through the runtime, so
// their events are published (and retried) like every other output. A
// command the incident refuses (unknown, already resolved) fails at once.
// A command on an incident merged into another applies to that one
// (correlate.Correlator.Apply): the state returned is then that
// incident's. A command applied whose answer did not come by ctx's end
// returns its state with ErrNotStored. A command given again under its id
// is not applied twice: it returns the state once a checkpoint holds its
// first application, ErrNotStored before that. cmd.Time is when the
// command was received (zero: now), which times what the person did
// (correlate.Command.Time), not when the tick applies it.
func (p *Processor) Submit(ctx context.Context, cmd correlate.Command) (correlate.State, error) {
	if cmd.Time.IsZero() {
		cmd.Time = p.now()
	}
	p.mu.Lock()
	if !p.leading.Load() || !p.holding() {
		p.mu.Unlock()
		return correlate.State{}, ErrStandby
	}
	if _, ok := p.c.Incident(cmd.IncidentID); !ok {
		if _, merged := p.c.MergedInto(cmd.IncidentID); !merged {
			p.mu.Unlock()
			if p.catchingUp() {
				return correlate.State{}, fmt.Errorf("%w: %s", ErrCatchingUp, cmd.IncidentID)
			}
			return correlate.State{}, fmt.Errorf("%w: %s", correlate.ErrUnknownIncident, cmd.IncidentID)
		}
	}
	pc := pendingCommand{cmd: cmd, result: make(chan commandResult, 1), applied: new(correlate.State)}
	p.commands = append(p.commands, pc)
	p.mu.Unlock()
	if p.tickSoon != nil {
		p.tickSoon()
	}
	select {
	case r := <-pc.result:
		return r.state, r.err
	case <-ctx.Done():
		// Not applied yet: take it back, so that a retry is not applied
		// twice. Applied meanwhile: its result is the answer.
		p.mu.Lock()
		for i, q := range p.commands {
			if q.result == pc.result {
				p.commands = append(p.commands[:i], p.commands[i+1:]...)
				p.mu.Unlock()
				return correlate.State{}, fmt.Errorf("%w: %w", ErrCommandTimeout, ctx.Err())
			}
		}
		// Taken by a tick: applied, and answered already or its event or
		// checkpoint is still to come (a retry under its id is told when
		// it is in); or not applied, and answered at once (the term ended
		// or the lease ran out: failPending, applyCommands).
		st := *pc.applied
		p.mu.Unlock()
		if st.IncidentID == "" {
			r := <-pc.result
			return r.state, r.err
		}
		select {
		case r := <-pc.result:
			return r.state, r.err
		default:
			return st, fmt.Errorf("%w: %w", ErrNotStored, ctx.Err())
		}
	}
}

// failPending answers every command not applied yet with err (the term
// ended: the next holder of the lease takes commands).
func (p *Processor) failPending(err error) {
	p.mu.Lock()
	cmds := p.commands
	p.commands = nil
	p.mu.Unlock()
	for _, pc := range cmds {
		pc.result <- commandResult{err: err}
	}
}

// applyCommands publishes the events of the commands a saved checkpoint
// holds now, and runs the pending commands; p.mu is held. Each command's
// caller hears back once its event was stored; with a state store, its
// event waits for a saved checkpoint that holds the command (unsaved).
func (p *Processor) applyCommands(now time.Time, out stage.Emitter) {
	cmds, due := p.commands, p.due
	p.commands, p.due = nil, nil
	if (len(cmds) > 0 || len(due) > 0) && !p.holding() {
		// The lease ran out by this instance's clock (it was paused, or
		// cannot renew): the next holder takes the commands, and sends
		// the events its restored outbox holds.
		for _, pc := range cmds {
			pc.result <- commandResult{err: ErrStandby}
		}
		for _, c := range due {
			c.answer(ErrStandby)
		}
		return
	}
	for _, c := range due {
		if err := out.Emit(stage.Output{Event: c.event, Settled: settledAnswer(c.answer)}); err != nil {
			c.answer(err)
		}
	}
	for _, pc := range cmds {
		// Its event is timed at the correlator's event time; what the
		// person did, at the command's receipt (correlate.Command.Time).
		u, err := p.c.Apply(pc.cmd)
		if errors.Is(err, correlate.ErrApplied) {
			// Given again (redelivered, retried): its event went out, or
			// a checkpoint holds it; until then the repeat is told so.
			if p.unstored[pc.cmd.ID] {
				err = fmt.Errorf("%w: the command %s was applied, its event not yet", ErrNotStored, pc.cmd.ID)
			} else {
				err = nil
			}
			p.log.Info().Str("incident_id", u.State.IncidentID).Str("action", pc.cmd.Action).Str("command_id", pc.cmd.ID).AnErr("answer", err).Msg("incident command given again: not applied twice")
			pc.result <- commandResult{state: u.State, err: err}
			continue
		}
		if err != nil {
			pc.result <- commandResult{err: err}
			continue
		}
		*pc.applied = u.State
		e, err := correlate.Envelope(u, now.UTC())
		if err == nil {
			result, state := pc.result, u.State
			answer := func(err error) { result <- commandResult{state: state, err: err} }
			if p.unstored != nil {
				// Published by the tick after the checkpoint asked for
				// now saved it (saved).
				if pc.cmd.ID != "" {
					p.unstored[pc.cmd.ID] = true // until a checkpoint holds it
				}
				p.unsaved = append(p.unsaved, commandEvent{event: e, answer: answer})
				if p.checkpointSoon != nil {
					p.checkpointSoon()
				}
			} else {
				err = out.Emit(stage.Output{Event: e, Settled: settledAnswer(answer)})
			}
		}
		if err != nil {
			pc.result <- commandResult{err: err}
		}
		logged := p.log.Info().Str("incident_id", u.State.IncidentID).Str("action", pc.cmd.Action).Str("by", pc.cmd.By)
		if u.State.IncidentID != pc.cmd.IncidentID {
			logged = logged.Str("merged_incident_id", pc.cmd.IncidentID)
		}
		logged.Msg("incident command applied")
	}
}

// settledAnswer answers a command once the stream stored its event, or
// refused it (ErrNotStored: the runtime sends it again).
func settledAnswer(answer func(error)) func(error) {
	return func(err error) {
		if err != nil {
			err = fmt.Errorf("%w: %w", ErrNotStored, err)
		}
		answer(err)
	}
}

// API serves the incidents API on the processor's state:
//
//	GET  /v1/incidents?status=&service=&team=&severity=&since=&until=&limit=&cursor=
//	GET  /v1/incidents/{id}
//	POST /v1/incidents/{id}/ack|resolve|assign|comment   {"by","assignee","text"}
//
// status is open (nobody acknowledged it yet), acknowledged, resolved, or
// active (open or acknowledged: what on call still has to deal with); the
// list leaves the timelines out. A command is timed when the API received
// it (correlate.Command.Time).
//
// An incident merged into another within the reopen window answers GET
// with 308 to the one it went into, and its commands apply there
// (commandAnswer.AppliedTo).
type API struct {
	*httpapi.Server
	proc *Processor
	log  zerolog.Logger
	// handler serves a request on this instance (503 when it stands by);
	// the listener's passes a standby's requests on instead (fwd).
	handler http.Handler
	fwd     *forwarder // nil: a standby answers 503 (forward.go)
	// reads holds a slot for each list or incident being answered
	// (MaxConcurrentReads), which one waits readWait for.
	reads    chan struct{}
	readWait time.Duration
}

// MaxConcurrentReads bounds the lists and incidents the API answers at
// once. An answer is built whole in memory, every incident listed with
// its members and their labels (megabytes in a storm), so dashboards
// polling or a script in a loop would otherwise multiply it until the
// process, the embedded NATS with it, runs out of memory.
const MaxConcurrentReads = 4

// MaxCommandBody bounds a command request.
const MaxCommandBody = 64 << 10

func newAPI(proc *Processor, cfg APIConfig, log zerolog.Logger) (*API, error) {
	token, err := cfg.ResolveToken(log)
	if err != nil {
		return nil, fmt.Errorf("correlator.api.%w", err)
	}
	a := &API{proc: proc, log: log, reads: make(chan struct{}, MaxConcurrentReads), readWait: httpapi.SlotWait}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/incidents", a.reading(a.list))
	mux.HandleFunc("GET /v1/incidents/{id}", a.reading(a.get))
	mux.HandleFunc("POST /v1/incidents/{id}/{action}", a.command)
	// What the mux itself would answer in plain text (another method, an
	// unknown path) is answered as every other error, in JSON.
	mux.HandleFunc("/v1/incidents", httpapi.MethodNotAllowed("GET"))
	mux.HandleFunc("/v1/incidents/{id}", httpapi.MethodNotAllowed("GET"))
	mux.HandleFunc("/v1/incidents/{id}/{action}", httpapi.MethodNotAllowed("POST"))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no path %q: the API serves /v1/incidents, /v1/incidents/{id} and /v1/incidents/{id}/ack|resolve|assign|comment", r.URL.Path))
	})
	a.handler = a.leading(cleanPaths(mux), false)
	if a.Server, err = httpapi.Listen(cfg.Listen, httpapi.BearerWithHint(token, "incidents API", cfg.TokenHint(), a.leading(cleanPaths(mux), true))); err != nil {
		return nil, fmt.Errorf("correlator.api.listen: %w", err)
	}
	return a, nil
}

// cleanPaths answers a path not in its clean form (//v1/incidents,
// /v1/incidents/./ID, a trailing slash) with a JSON 404, where the mux
// would redirect it with an HTML page.
func cleanPaths(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p := r.URL.Path; p != "/" && path.Clean(p) != p {
			writeError(w, http.StatusNotFound, fmt.Sprintf("no path %q: not in its clean form (%q)", p, path.Clean(p)))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// leading serves next on the instance holding the lease, which has the
// incidents; one standing by passes the request on to it (forward, when
// it may and knows how) or answers 503.
func (a *API) leading(next http.Handler, forward bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !a.proc.leading.Load() {
			if forward && a.fwd != nil {
				a.forward(w, r)
				return
			}
			writeUnavailable(w, ErrStandby.Error())
			return
		}
		next.ServeHTTP(w, r)
	})
}

// reading serves next while it holds one of the MaxConcurrentReads
// slots, waiting up to readWait for one; past that it answers 503.
func (a *API) reading(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !httpapi.TakeSlot(r.Context(), a.reads, a.readWait) {
			writeUnavailable(w, fmt.Sprintf("the API is answering its limit of %d lists and incidents at once; retry shortly", MaxConcurrentReads))
			return
		}
		defer func() { <-a.reads }()
		next(w, r)
	}
}

var writeJSON, writeError = httpapi.WriteJSON, httpapi.WriteError

// writeUnavailable answers 503 with Retry-After: the request may succeed
// in a few seconds (a tick, a takeover), unchanged.
func writeUnavailable(w http.ResponseWriter, msg string) {
	w.Header().Set("Retry-After", "5")
	writeError(w, http.StatusServiceUnavailable, msg)
}

// MaxListed bounds the incidents one list returns (its limit's default).
const MaxListed = 500

// listParams are the query parameters GET /v1/incidents takes.
var listParams = []string{"status", "service", "team", "severity", "since", "until", "limit", "cursor"}

// list answers the incidents in memory that match the filters, newest
// first (in a storm the new ones are what a person looks for), at most
// limit of them; "truncated" says more matched, and "next_cursor", given
// back as cursor with the same filters, lists the rest. A parameter it
// does not know is an error: a typo would otherwise list everything.
func (a *API) list(w http.ResponseWriter, r *http.Request) {
	// Not r.URL.Query(): it drops what it cannot read (a ';' between
	// parameters, a bad %-escape), and a filter dropped lists everything.
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("the query string: %v; separate parameters with '&' and %%-escape their values", err))
		return
	}
	for k, vs := range q {
		if !slices.Contains(listParams, k) {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("unknown parameter %q: want %s", k, strings.Join(listParams, ", ")))
			return
		}
		if len(vs) > 1 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("parameter %q given %d times: give it once", k, len(vs)))
			return
		}
		if strings.TrimSpace(vs[0]) == "" && k != "cursor" { // an empty cursor is the first page
			// Taken as no filter, it would list everything.
			writeError(w, http.StatusBadRequest, fmt.Sprintf("parameter %q is empty: give it a value or leave it out", k))
			return
		}
	}
	var since, until time.Time
	for _, p := range []struct {
		key string
		dst *time.Time
	}{{"since", &since}, {"until", &until}} {
		if v := q.Get(p.key); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				writeError(w, http.StatusBadRequest, fmt.Sprintf("%s: %q is not an RFC 3339 time", p.key, v))
				return
			}
			*p.dst = t
		}
	}
	if !since.IsZero() && !until.IsZero() && until.Before(since) {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("until %s is before since %s", q.Get("until"), q.Get("since")))
		return
	}
	// active is open or acknowledged: what a person on call still has to
	// deal with (open alone leaves out what someone acknowledged).
	status := q.Get("status")
	if status != "" && !slices.Contains([]string{correlate.StatusOpen, correlate.StatusAcknowledged, correlate.StatusResolved, correlate.StatusActive}, status) {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("status: %q, want open, acknowledged, resolved or active (open or acknowledged)", status))
		return
	}
	var severity event.Severity
	if v := q.Get("severity"); v != "" {
		sev, ok := event.ParseSeverity(v)
		if !ok || sev == "" {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("severity: %q is not a severity", v))
			return
		}
		severity = sev
	}
	limit := MaxListed
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxListed {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("limit: %q, want 1 to %d", v, MaxListed))
			return
		}
		limit = n
	}
	var before *correlate.ListPosition
	if v := q.Get("cursor"); v != "" {
		p, ok := decodeCursor(v)
		if !ok {
			writeError(w, http.StatusBadRequest, "cursor: not a next_cursor this API gave; pass it on as it came")
			return
		}
		before = &p
	}
	f := correlate.IncidentFilter{Status: status, Service: q.Get("service"), Team: q.Get("team"), Severity: severity, Since: since, Until: until, Before: before}
	a.proc.mu.Lock()
	if f.Service != "" {
		// As signals name it: another letter case, _ for -.
		f.Service = a.proc.c.ServiceOf(correlate.Signal{Service: f.Service})
	}
	out, truncated := a.proc.c.Listed(f, nil, limit)
	a.proc.mu.Unlock()
	if out == nil {
		out = []correlate.State{}
	}
	for i := range out {
		out[i].Timeline = nil // left out: GET /v1/incidents/{id} has it
	}
	answer := map[string]any{"incidents": out, "truncated": truncated}
	if truncated {
		last := out[len(out)-1]
		answer["next_cursor"] = encodeCursor(correlate.ListPosition{OpenedAt: last.OpenedAt, ID: last.IncidentID})
	}
	writeJSON(w, http.StatusOK, answer)
}

// A cursor is where a list stopped: the last incident's opening (Unix
// nanoseconds) and id, base64url-encoded so that clients pass it on as it
// is, without reading it. It names a
// position, not an incident, so a page follows even when the incident it
// ended at has left memory since.
func encodeCursor(p correlate.ListPosition) string {
	return base64.RawURLEncoding.EncodeToString(fmt.Appendf(nil, "%d/%s", p.OpenedAt.UnixNano(), p.ID))
}

func decodeCursor(s string) (correlate.ListPosition, bool) {
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return correlate.ListPosition{}, false
	}
	at, id, ok := strings.Cut(string(raw), "/")
	ns, err := strconv.ParseInt(at, 10, 64)
	if !ok || err != nil || id == "" {
		return correlate.ListPosition{}, false
	}
	return correlate.ListPosition{OpenedAt: time.Unix(0, ns).UTC(), ID: id}, true
}

func (a *API) get(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	a.proc.mu.Lock()
	st, ok := a.proc.c.Incident(id)
	target, merged := "", false
	if !ok {
		target, merged = a.proc.c.MergedInto(id)
	}
	a.proc.mu.Unlock()
	switch {
	case merged:
		// The page a person got names the merged incident; the failure
		// goes on in target. A client that follows redirects gets it; one
		// that does not reads why.
		w.Header().Set("Location", "/v1/incidents/"+url.PathEscape(target))
		writeJSON(w, http.StatusPermanentRedirect, map[string]string{
			"error":       fmt.Sprintf("incident %q was merged into %s: its members, and commands given to it, went there", id, target),
			"merged_into": target,
		})
	case !ok:
		writeError(w, http.StatusNotFound, fmt.Sprintf("no incident %q%s (resolved and merged incidents leave memory after the reopen window; query ClickHouse for older ones: incidents.merged_into names where a merged one went)", id, a.proc.partitionNote()))
	default:
		writeJSON(w, http.StatusOK, st)
	}
}

// commandAnswer is a command's answer: the new state of the incident the
// command applied to, and, when that is not the incident in the path (it
// was merged into this one), its id in AppliedTo.
type commandAnswer struct {
	correlate.State
	AppliedTo string `json:"applied_to,omitempty"`
}

// answerOf is the answer to a command that left the incident in st. A
// command applied now returns the state its event announced, whose Status
// is that event's transition; a command given again returns the
// incident's state, which has none: the transition is left out of both,
// as GET leaves it out, so that a retry under an Idempotency-Key answers
// what the first send did.
func answerOf(st correlate.State, id string) commandAnswer {
	st.Status = ""
	return commandAnswer{State: st, AppliedTo: appliedTo(st, id)}
}

func (a *API) command(w http.ResponseWriter, r *http.Request) {
	received := a.proc.now() // when the person acted: MTTA and MTTR run to it
	action := r.PathValue("action")
	if !slices.Contains([]string{"ack", "resolve", "assign", "comment"}, action) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no action %q: want ack, resolve, assign or comment", action))
		return
	}
	var body struct {
		By       string `json:"by"`
		Assignee string `json:"assignee"`
		Text     string `json:"text"`
	}
	if _, err := httpapi.DecodeJSON(r, MaxCommandBody, &body); err != nil {
		writeError(w, httpapi.StatusOf(err), "the body is not a command: "+err.Error())
		return
	}
	// What an action needs is the request's to give: its absence is a 400
	// naming the field, not a 409 as if the incident's state refused it;
	// told before the command waits for a tick.
	if err := (correlate.Command{Action: action, By: body.By, Assignee: body.Assignee, Text: body.Text}).Validate(); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	// A client retrying (a 503, a lost answer) under one Idempotency-Key
	// applies its command once.
	var cmdID string
	if key := r.Header.Get("Idempotency-Key"); key != "" {
		if len(key) > MaxIdempotencyKey {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("Idempotency-Key of %d bytes, at most %d", len(key), MaxIdempotencyKey))
			return
		}
		// Printable ASCII, as the gateway's: the key goes into the
		// command's id, which the saved state keeps as JSON, where a byte
		// that is not UTF-8 becomes U+FFFD; after a restore the retry the
		// key is for would not be known, and be applied again.
		for i := 0; i < len(key); i++ {
			if key[i] < 0x21 || key[i] > 0x7e {
				writeError(w, http.StatusBadRequest, fmt.Sprintf("Idempotency-Key: byte %d is not printable ASCII (a UUID makes a good key)", i+1))
				return
			}
		}
		// The request is part of the id: a key used again for another
		// command (another action, text or assignee) is that command.
		// Each field length-prefixed (PartsHash): no two requests hash
		// alike by moving bytes (a NUL in a JSON string) between fields.
		cmdID = fmt.Sprintf("key:%s/%016x", key, event.PartsHash(r.PathValue("id"), action, body.By, body.Assignee, body.Text))
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	id := r.PathValue("id")
	st, err := a.proc.Submit(ctx, correlate.Command{IncidentID: id, Action: action, By: body.By, Assignee: body.Assignee, Text: body.Text, ID: cmdID, Time: received})
	switch {
	case errors.Is(err, correlate.ErrUnknownIncident):
		writeError(w, http.StatusNotFound, err.Error()+a.proc.partitionNote())
	case errors.Is(err, correlate.ErrInvalidCommand), errors.Is(err, correlate.ErrUnknownAction):
		writeError(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, correlate.ErrConflict):
		writeError(w, http.StatusConflict, err.Error())
	case errors.Is(err, ErrNotStored) && cmdID == "":
		// Applied: a retry without a key would apply it again.
		w.Header().Set("Warning", `199 aiops "applied, not stored yet: send an Idempotency-Key to retry safely"`)
		writeJSON(w, http.StatusAccepted, answerOf(st, id))
	case errors.Is(err, ErrCommandTimeout), errors.Is(err, ErrNotStored), errors.Is(err, ErrStandby), errors.Is(err, ErrCatchingUp):
		writeUnavailable(w, err.Error())
	case err != nil:
		// Not the request's fault, nor the incident's state's: logged,
		// and said as a failure of the server's.
		a.log.Error().Err(err).Str("incident_id", id).Str("action", action).Msg("command failed")
		writeError(w, http.StatusInternalServerError, err.Error())
	default:
		writeJSON(w, http.StatusOK, answerOf(st, id))
	}
}

// partitionNote says, on a partitioned correlator, that its API knows only
// its own partition's incidents.
func (p *Processor) partitionNote() string {
	if p.partition == nil {
		return ""
	}
	return fmt.Sprintf(" in partition %d of %d (this API knows only its own partition's incidents; ask the others)", p.cfg.Partition.Index, p.cfg.Partition.Count)
}

// appliedTo is the incident a command on id applied to, when another (id
// was merged into it), else "".
func appliedTo(st correlate.State, id string) string {
	if st.IncidentID != id {
		return st.IncidentID
	}
	return ""
}

var _ service.Runner = (*API)(nil)
