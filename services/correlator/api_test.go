package correlator

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/config"
	"github.com/aiops-dev/aiops/pkg/correlate"
	"github.com/aiops-dev/aiops/pkg/stage"
	"github.com/aiops-dev/aiops/pkg/stage/stagetest"
)

const apiToken = "test-token-0123456789abcdef"

type apiRig struct {
	t    *testing.T
	h    *stagetest.Harness
	api  *API
	base string
	// ticksAsked counts the ticks commands asked for (Processor.tickSoon).
	ticksAsked atomic.Int64
}

func newAPIRig(t *testing.T) *apiRig {
	r, _ := newAPIRigWithProc(t)
	return r
}

// newAPIRigWithProc is newAPIRig, with its processor.
func newAPIRigWithProc(t *testing.T) (*apiRig, *Processor) {
	// The real clock, as do's ticks are: event time moves on by itself
	// only after idle_advance without signals, which no test here waits,
	// so what the tests feed stays in memory (a merge, a resolution).
	proc, err := NewProcessor(Config{Catalog: writeCatalog(t)}, zerolog.Nop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	h := stagetest.Start(t, proc, stage.Config{TickEvery: time.Second})
	api, err := newAPI(proc, APIConfig{Listen: "127.0.0.1:0", Token: apiToken}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := contextWithCancel()
	go api.Run(ctx)
	t.Cleanup(cancel)
	r := &apiRig{t: t, h: h, api: api, base: "http://" + api.Addr().String()}
	proc.tickSoon = func() { r.ticksAsked.Add(1) }
	return r, proc
}

// oneIncident feeds an alert on web and returns the id of the one
// incident the API lists.
func (r *apiRig) oneIncident() string {
	r.t.Helper()
	r.h.Feed(alertEvent(r.t, "HighLatency", "web", 0, 0))
	_, body := r.do("GET", "/v1/incidents", apiToken, "")
	var list struct {
		Incidents []correlate.State `json:"incidents"`
	}
	if err := json.Unmarshal([]byte(body), &list); err != nil || len(list.Incidents) != 1 {
		r.t.Fatalf("incidents: %v %s", err, body)
	}
	return list.Incidents[0].IncidentID
}

// do sends a request and, while it waits, ticks the runner (commands are
// applied by the tick).
func (r *apiRig) do(method, path, token, body string) (int, string) {
	r.t.Helper()
	return r.doKeyed(method, path, token, "", body)
}

// doKeyed is do with an Idempotency-Key, when key is set.
func (r *apiRig) doKeyed(method, path, token, key, body string) (int, string) {
	r.t.Helper()
	req, _ := http.NewRequest(method, r.base+path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	type answer struct {
		code int
		body string
	}
	done := make(chan answer, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- answer{0, err.Error()}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		done <- answer{resp.StatusCode, string(b)}
	}()
	for {
		select {
		case a := <-done:
			return a.code, a.body
		case <-time.After(20 * time.Millisecond):
			r.h.Tick(time.Now())
		}
	}
}

func TestAPI(t *testing.T) {
	r := newAPIRig(t)
	if code, _ := r.do("GET", "/v1/incidents", "", ""); code != http.StatusUnauthorized {
		t.Fatalf("no token: %d", code)
	}
	if code, _ := r.do("GET", "/v1/incidents", "wrong-token-0123456789", ""); code != http.StatusUnauthorized {
		t.Fatalf("wrong token: %d", code)
	}
	r.h.Feed(alertEvent(t, "HighLatency", "web", 0, 0), alertEvent(t, "HighErrorRate", "checkout", 5*time.Second, 0),
		alertEvent(t, "ReplicationLag", "payments-db", 10*time.Second, 0),
		alertEvent(t, "HighLatency", "search", 20*time.Second, 0))

	var list struct{ Incidents []correlate.State }
	code, body := r.do("GET", "/v1/incidents?status=open&service=web", apiToken, "")
	if code != 200 || json.Unmarshal([]byte(body), &list) != nil || len(list.Incidents) != 1 || list.Incidents[0].Team != "dba" {
		t.Fatalf("list: %d %s", code, body)
	}
	id := list.Incidents[0].IncidentID
	for _, q := range []string{"status=closed", "since=yesterday", "severity=loud"} {
		if code, body := r.do("GET", "/v1/incidents?"+q, apiToken, ""); code != 400 || !strings.Contains(body, strings.Split(q, "=")[0]) {
			t.Errorf("%s: %d %s, want 400 naming the parameter", q, code, body)
		}
	}
	var st correlate.State
	if code, body := r.do("GET", "/v1/incidents/"+id, apiToken, ""); code != 200 || json.Unmarshal([]byte(body), &st) != nil || len(st.Timeline) == 0 {
		t.Fatalf("get: %d %s", code, body)
	}
	if code, _ := r.do("GET", "/v1/incidents/nope", apiToken, ""); code != 404 {
		t.Fatalf("unknown incident: %d", code)
	}

	code, body = r.do("POST", "/v1/incidents/"+id+"/ack", apiToken, `{"by":"ana"}`)
	if code != 200 || json.Unmarshal([]byte(body), &st) != nil || st.State != correlate.StatusAcknowledged {
		t.Fatalf("ack: %d %s", code, body)
	}
	if got := incidentEvents(t, r.h, "acknowledged"); len(got) != 1 {
		t.Fatalf("%d acknowledged events published, want 1", len(got))
	}
	if code, body := r.do("POST", "/v1/incidents/"+id+"/ack", apiToken, `{"by":"ana"}`); code != http.StatusConflict {
		t.Fatalf("second ack: %d %s, want 409", code, body)
	}
	if code, _ := r.do("POST", "/v1/incidents/"+id+"/escalate", apiToken, `{}`); code != 404 {
		t.Fatalf("unknown action: %d", code)
	}
	if code, body := r.do("POST", "/v1/incidents/"+id+"/comment", apiToken, `{"txt":"typo"}`); code != 400 || !strings.Contains(body, "txt") {
		t.Fatalf("unknown field: %d %s", code, body)
	}
	// A command missing what its action needs is the request's fault: 400
	// naming the field, and nothing published.
	updated := len(incidentEvents(t, r.h, "updated"))
	for _, c := range []struct{ action, body, field string }{
		{"assign", `{"by":"ana"}`, "assignee"},
		{"comment", `{"by":"ana","text":"  "}`, "text"},
	} {
		if code, body := r.do("POST", "/v1/incidents/"+id+"/"+c.action, apiToken, c.body); code != http.StatusBadRequest || !strings.Contains(body, c.field) {
			t.Errorf("%s %s: %d %s, want 400 naming %s", c.action, c.body, code, body, c.field)
		}
	}
	if got := len(incidentEvents(t, r.h, "updated")); got != updated {
		t.Fatalf("%d updated events published by incomplete commands, want none", got-updated)
	}
	if code, body := r.do("POST", "/v1/incidents/"+id+"/assign", apiToken, `{"by":"ana","assignee":"bo"}`); code != 200 || !strings.Contains(body, `"assignee": "bo"`) {
		t.Fatalf("assign: %d %s", code, body)
	}
	// A comment retried under its Idempotency-Key is made once; both
	// answers are the incident with it.
	for range 2 {
		code, body := r.doKeyed("POST", "/v1/incidents/"+id+"/comment", apiToken, "c-1", `{"by":"bo","text":"rolling back"}`)
		if code != 200 || strings.Count(body, "rolling back") != 1 {
			t.Fatalf("comment under a key: %d %s", code, body)
		}
	}
	// The key used again for another request is that request.
	if code, body := r.doKeyed("POST", "/v1/incidents/"+id+"/comment", apiToken, "c-1", `{"by":"bo","text":"done"}`); code != 200 || !strings.Contains(body, "done") {
		t.Fatalf("another comment under the same key: %d %s", code, body)
	}
	if code, _ := r.doKeyed("POST", "/v1/incidents/"+id+"/comment", apiToken, strings.Repeat("k", MaxIdempotencyKey), `{"by":"bo","text":"x"}`); code != 200 {
		t.Fatalf("an Idempotency-Key of %d bytes: %d", MaxIdempotencyKey, code)
	}
	if code, body := r.doKeyed("POST", "/v1/incidents/"+id+"/comment", apiToken, strings.Repeat("k", MaxIdempotencyKey+1), `{"by":"bo","text":"x"}`); code != 400 || !strings.Contains(body, "Idempotency-Key") {
		t.Fatalf("an Idempotency-Key of %d bytes: %d %s", MaxIdempotencyKey+1, code, body)
	}
	if code, _ := r.do("POST", "/v1/incidents/"+id+"/resolve", apiToken, `{"by":"bo"}`); code != 200 {
		t.Fatalf("resolve: %d", code)
	}
	if code, body := r.do("GET", "/v1/incidents?status=resolved", apiToken, ""); code != 200 || !strings.Contains(body, id) {
		t.Fatalf("resolved list: %d %s", code, body)
	}
}

// The list is newest first and says when it was cut; its parameters are
// checked (an unknown one, a range ending before it starts, a limit out
// of range are 400 naming them), and a severity is matched by meaning
// (crit is critical). Names too long for a command are 400.
func TestAPIListAndLimits(t *testing.T) {
	r := newAPIRig(t)
	r.h.Feed(alertEvent(t, "HighLatency", "web", 0, 0), alertEvent(t, "HighLatency", "search", 20*time.Second, 0))
	var list struct {
		Incidents []correlate.State
		Truncated bool
	}
	code, body := r.do("GET", "/v1/incidents", apiToken, "")
	if code != 200 || json.Unmarshal([]byte(body), &list) != nil || len(list.Incidents) != 2 || list.Truncated {
		t.Fatalf("list: %d %s", code, body)
	}
	if !list.Incidents[0].OpenedAt.After(list.Incidents[1].OpenedAt) || list.Incidents[0].Service != "search" {
		t.Fatalf("list order: %s then %s, want the newest (search) first", list.Incidents[0].Service, list.Incidents[1].Service)
	}
	code, body = r.do("GET", "/v1/incidents?limit=1", apiToken, "")
	if code != 200 || json.Unmarshal([]byte(body), &list) != nil || len(list.Incidents) != 1 || !list.Truncated || list.Incidents[0].Service != "search" {
		t.Fatalf("limit 1: %d %s, want the newest and truncated", code, body)
	}
	// The rest is a cursor away, page after page, each incident once, in
	// the same order as one list.
	for i, at := range []time.Duration{time.Hour, time.Hour, 2 * time.Hour} {
		r.h.Feed(alertEvent(t, "Failing"+strconv.Itoa(i), "svc-"+strconv.Itoa(i), at, 0))
	}
	code, body = r.do("GET", "/v1/incidents", apiToken, "")
	var whole struct{ Incidents []correlate.State }
	if code != 200 || json.Unmarshal([]byte(body), &whole) != nil || len(whole.Incidents) != 5 {
		t.Fatalf("list: %d %s, want 5 incidents", code, body)
	}
	var paged []string
	for cursor, pages := "", 0; ; pages++ {
		var page struct {
			Incidents  []correlate.State
			Truncated  bool
			NextCursor string `json:"next_cursor"`
		}
		code, body = r.do("GET", "/v1/incidents?limit=1&cursor="+cursor, apiToken, "")
		if code != 200 || json.Unmarshal([]byte(body), &page) != nil || pages > 4 {
			t.Fatalf("page %d: %d %s", pages, code, body)
		}
		for _, st := range page.Incidents {
			paged = append(paged, st.IncidentID)
		}
		if page.Truncated != (page.NextCursor != "") {
			t.Fatalf("page %d: truncated %v with next_cursor %q", pages, page.Truncated, page.NextCursor)
		}
		if !page.Truncated {
			break
		}
		cursor = page.NextCursor
	}
	var want []string
	for _, st := range whole.Incidents {
		want = append(want, st.IncidentID)
	}
	if !slices.Equal(paged, want) {
		t.Fatalf("paged %v, want the list's %v", paged, want)
	}
	for _, sev := range []string{"crit", "CRITICAL", "page"} {
		code, body = r.do("GET", "/v1/incidents?severity="+sev, apiToken, "")
		if code != 200 || json.Unmarshal([]byte(body), &list) != nil || len(list.Incidents) != 5 {
			t.Fatalf("severity=%s: %d %s, want every critical incident", sev, code, body)
		}
	}
	for q, name := range map[string]string{
		"stauts=open": "stauts", "limit=0": "limit", "limit=501": "limit", "severity=loud": "severity",
		"since=2026-01-02T00:00:00Z&until=2026-01-01T00:00:00Z":         "until",
		"status=open&status=resolved":                                   "status",
		"cursor=not-one":                                                "cursor",
		"cursor=" + base64.RawURLEncoding.EncodeToString([]byte("12/")): "cursor",
	} {
		if code, body := r.do("GET", "/v1/incidents?"+q, apiToken, ""); code != 400 || !strings.Contains(body, name) {
			t.Errorf("%s: %d %s, want 400 naming %s", q, code, body, name)
		}
	}
	id := list.Incidents[0].IncidentID
	long := strings.Repeat("n", correlate.MaxCommandName+1)
	for _, c := range []struct{ action, body string }{
		{"assign", `{"by":"ana","assignee":"` + long + `"}`},
		{"comment", `{"by":"` + long + `","text":"hi"}`},
	} {
		if code, body := r.do("POST", "/v1/incidents/"+id+"/"+c.action, apiToken, c.body); code != 400 || !strings.Contains(body, "256 bytes") {
			t.Errorf("%s with a name of %d bytes: %d %s, want 400", c.action, len(long), code, body)
		}
	}
}

func TestAPIConfig(t *testing.T) {
	for _, c := range []struct {
		api  APIConfig
		want string
	}{
		{APIConfig{Listen: "127.0.0.1:8081"}, "correlator.api.token: none set"},
		{APIConfig{Listen: "nope", Token: apiToken}, "correlator.api.listen"},
		{APIConfig{Listen: "127.0.0.1:8081", Token: apiToken, TokenFile: "x"}, "correlator.api.token_file"},
	} {
		cfg := DefaultConfig()
		cfg.API = c.api
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), c.want) || !errors.Is(err, config.ErrInvalidConfig) {
			t.Errorf("%+v: %v, want an invalid-config error naming %s", c.api, err, c.want)
		}
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("no API: %v", err)
	}
}

func contextWithCancel() (context.Context, context.CancelFunc) {
	return context.WithCancel(context.Background())
}

// An incident merged into another is one a person may have been paged for
// minutes ago: GET answers 308 to the incident it went into (a client that
// follows redirects gets that one), and its commands apply there, the
// answer saying so in applied_to.
func TestAPIMergedIncident(t *testing.T) {
	r := newAPIRig(t)
	// web and mobile alert first, each opening an incident; checkout, what
	// both depend on, arrives late and merges one into the other.
	r.h.Feed(alertEvent(t, "HighLatency", "web", 0, 0), alertEvent(t, "HighLatency", "mobile", 5*time.Second, 0),
		alertEvent(t, "HighErrorRate", "checkout", 10*time.Second, 0))
	var merged correlate.State
	for _, e := range incidentEvents(t, r.h, "resolved") {
		if err := e.DecodeBody(&merged); err != nil {
			t.Fatal(err)
		}
	}
	from, into := merged.IncidentID, merged.MergedInto
	if into == "" {
		t.Fatalf("no merge: %+v", merged)
	}

	req, _ := http.NewRequest("GET", r.base+"/v1/incidents/"+from, nil)
	req.Header.Set("Authorization", "Bearer "+apiToken)
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var moved struct {
		Error      string `json:"error"`
		MergedInto string `json:"merged_into"`
	}
	err = json.NewDecoder(resp.Body).Decode(&moved)
	resp.Body.Close()
	if resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != "/v1/incidents/"+into ||
		err != nil || moved.MergedInto != into || !strings.Contains(moved.Error, "merged into "+into) {
		t.Fatalf("GET of the merged incident: %d, Location %q, body %+v %v; want 308 to %s saying why", resp.StatusCode, resp.Header.Get("Location"), moved, err, into)
	}
	var st correlate.State
	if code, body := r.do("GET", "/v1/incidents/"+from, apiToken, ""); code != 200 || json.Unmarshal([]byte(body), &st) != nil || st.IncidentID != into {
		t.Fatalf("GET of the merged incident, following the redirect: %d %s, want %s", code, body, into)
	}

	var answer struct {
		correlate.State
		AppliedTo string `json:"applied_to"`
	}
	code, body := r.do("POST", "/v1/incidents/"+from+"/ack", apiToken, `{"by":"ana"}`)
	if code != 200 || json.Unmarshal([]byte(body), &answer) != nil || answer.AppliedTo != into || answer.IncidentID != into || answer.State.State != correlate.StatusAcknowledged {
		t.Fatalf("ack of the merged incident: %d %s, want %s acknowledged and applied_to naming it", code, body, into)
	}
	acked := incidentEvents(t, r.h, "acknowledged")
	if len(acked) != 1 || acked[0].DecodeBody(&st) != nil || st.IncidentID != into {
		t.Fatalf("%d acknowledged events, want one, of %s", len(acked), into)
	}
	if want := "acknowledged by ana (ack of merged incident " + from + ")"; !strings.Contains(body, want) {
		t.Fatalf("the target's timeline does not say %q: %s", want, body)
	}
	if code, body := r.do("POST", "/v1/incidents/"+from+"/ack", apiToken, `{"by":"bo"}`); code != http.StatusConflict || !strings.Contains(body, from) {
		t.Fatalf("a second ack through the merged incident: %d %q, want 409 naming it", code, body)
	}
	// A command on the incident itself applied to it: no applied_to.
	if code, body := r.do("POST", "/v1/incidents/"+into+"/comment", apiToken, `{"by":"bo","text":"pool exhausted"}`); code != 200 || strings.Contains(body, "applied_to") {
		t.Fatalf("comment on the target: %d %s, want 200 without applied_to", code, body)
	}
}

// memCheckpoint is a Processor with a state store that saves nothing but
// records what a saved checkpoint would hold; failing makes its
// checkpoints fail.
type memCheckpoint struct {
	*Processor
	failing *atomic.Bool
}

func (m memCheckpoint) Restore(context.Context) error { return nil }
func (m memCheckpoint) Checkpoint(context.Context) error {
	st, err := m.snapshot()
	if err != nil || m.failing.Load() {
		return errors.Join(err, errors.New("object store down"))
	}
	m.saved(st)
	return nil
}

// With a state store, a command is answered once a saved checkpoint holds
// it (one is taken at once; a crash before would lose the command), and
// not while checkpoints fail. Given again under its id, it is not applied
// twice: "not stored" until a checkpoint holds its first application,
// done after.
func TestCommandAnsweredOnceACheckpointHoldsIt(t *testing.T) {
	proc, err := NewProcessor(Config{Catalog: writeCatalog(t)}, zerolog.Nop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	proc.unstored = map[string]bool{} // as New makes it with a state store
	failing := new(atomic.Bool)
	h := stagetest.Start(t, memCheckpoint{proc, failing}, stage.Config{TickEvery: time.Second, CheckpointEvery: time.Hour})
	proc.checkpointSoon = h.Runner.CheckpointSoon
	h.Feed(alertEvent(t, "HighLatency", "web", 0, 0))
	id := proc.Incidents()[0].IncidentID
	submit := func(c correlate.Command, wait time.Duration) error {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		done := make(chan error, 1)
		go func() { _, err := proc.Submit(ctx, c); done <- err }()
		for {
			select {
			case err := <-done:
				return err
			case <-time.After(10 * time.Millisecond):
				h.Tick(time.Now())
			}
		}
	}
	// given again until done: "not stored" until then
	doneOnceHeld := func(c correlate.Command, what string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			err := submit(c, time.Second)
			if err == nil {
				return
			}
			if !errors.Is(err, ErrNotStored) || time.Now().After(deadline) {
				t.Fatalf("%s: %v, want done once a checkpoint holds it", what, err)
			}
		}
	}
	// No checkpoint holds the command: no yes, and no event either (a
	// crash now would restore a state without the command, and its
	// event would stay downstream beside the one the command given again
	// makes).
	failing.Store(true)
	held := correlate.Command{IncidentID: id, Action: "comment", Text: "zero", ID: "key:z"}
	if err := submit(held, time.Second); !errors.Is(err, ErrNotStored) {
		t.Fatalf("comment while checkpoints fail: %v, want ErrNotStored", err)
	}
	if n := len(h.Pub.Messages()); n != 1 {
		t.Fatalf("%d events published while no checkpoint holds the comment, want the opening alone", n)
	}
	if err := submit(held, 200*time.Millisecond); !errors.Is(err, ErrNotStored) {
		t.Fatalf("the comment again while checkpoints fail: %v, want ErrNotStored", err)
	}
	failing.Store(false)
	h.Runner.CheckpointSoon()
	doneOnceHeld(held, "the comment again once checkpoints work")

	refused := correlate.Command{IncidentID: id, Action: "comment", Text: "one", ID: "key:a"}
	h.Pub.Refuse(true)
	if err := submit(refused, 10*time.Second); !errors.Is(err, ErrNotStored) {
		t.Fatalf("comment while the stream refuses: %v, want ErrNotStored", err)
	}
	// The checkpoint asked for holds it (its outbox the event): given
	// again, it is done.
	h.Pub.Refuse(false)
	doneOnceHeld(refused, "the comment again")
	stored := correlate.Command{IncidentID: id, Action: "comment", Text: "two", ID: "key:b"}
	for i := range 2 {
		if err := submit(stored, 10*time.Second); err != nil {
			t.Fatalf("comment %d, its event stored: %v", i+1, err)
		}
	}
	if got := len(proc.Incidents()[0].Comments); got != 3 {
		t.Fatalf("%d comments, want each command's once (3)", got)
	}
}

// A command asks for the tick that applies it at once: taken one at a
// time, a burst of NATS commands would otherwise go at one a tick, a
// second each.
func TestCommandAsksForItsTick(t *testing.T) {
	r := newAPIRig(t)
	id := r.oneIncident()
	for i := range 3 {
		if code, body := r.do("POST", "/v1/incidents/"+id+"/comment", apiToken, fmt.Sprintf(`{"by":"ana","text":"%d"}`, i)); code != http.StatusOK {
			t.Fatalf("comment %d: %d %s", i, code, body)
		}
	}
	if n := r.ticksAsked.Load(); n != 3 {
		t.Errorf("%d ticks asked for by 3 commands, want 3", n)
	}
}

// A command applied whose event the stream does not store is answered 503
// with Retry-After when it has an Idempotency-Key (a retry is safe), and
// 202 with the state without one: retried, it would be applied again.
func TestCommandNotStoredAnswers(t *testing.T) {
	r := newAPIRig(t)
	id := r.oneIncident()
	r.h.Pub.Refuse(true)
	code, body := r.do("POST", "/v1/incidents/"+id+"/comment", apiToken, `{"by":"ana","text":"one"}`)
	var st commandAnswer
	if code != http.StatusAccepted || json.Unmarshal([]byte(body), &st) != nil || st.IncidentID != id || len(st.Comments) != 1 {
		t.Fatalf("comment without a key, not stored: %d %s, want 202 with the state holding it", code, body)
	}
	code, body = r.doKeyed("POST", "/v1/incidents/"+id+"/comment", apiToken, "k1", `{"by":"ana","text":"two"}`)
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "not stored yet") {
		t.Fatalf("comment with a key, not stored: %d %s, want 503", code, body)
	}
}

// An instance whose lease ran out by its own clock (paused, or unable to
// renew) neither takes nor applies a command, nor saves its state: the
// next holder owns them.
func TestNoCommandOrSaveOnceTheLeaseRanOut(t *testing.T) {
	proc, err := NewProcessor(Config{Catalog: writeCatalog(t)}, zerolog.Nop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var holds atomic.Bool
	holds.Store(true)
	proc.holds = holds.Load
	h := stagetest.Start(t, proc, stage.Config{TickEvery: time.Second})
	h.Feed(alertEvent(t, "HighLatency", "web", 0, 0))
	id := proc.Incidents()[0].IncidentID
	// taken while valid, the lease runs out before the tick applies it
	done := make(chan error, 1)
	go func() {
		_, err := proc.Submit(context.Background(), correlate.Command{IncidentID: id, Action: "ack", By: "ana"})
		done <- err
	}()
	for {
		proc.mu.Lock()
		n := len(proc.commands)
		proc.mu.Unlock()
		if n == 1 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	holds.Store(false)
	if err := h.Tick(time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, ErrStandby) {
		t.Fatalf("a command taken before the lease ran out, applied after: %v, want ErrStandby", err)
	}
	if _, err := proc.Submit(context.Background(), correlate.Command{IncidentID: id, Action: "ack", By: "ana"}); !errors.Is(err, ErrStandby) {
		t.Fatalf("a command once the lease ran out: %v, want ErrStandby", err)
	}
	if st := proc.Incidents()[0]; st.State != correlate.StatusOpen {
		t.Fatalf("state %s, want open: no command applied", st.State)
	}
	if len(h.Pub.Messages()) != 1 {
		t.Fatalf("%d events published, want the opening only", len(h.Pub.Messages()))
	}
	// no object store: a save would panic
	d := durable{Processor: proc, HeldOutputs: new(stage.HeldOutputs), fenced: new(atomic.Bool)}
	if err := d.Checkpoint(context.Background()); !errors.Is(err, stage.ErrFenced) {
		t.Fatalf("checkpoint once the lease ran out: %v, want skipped with stage.ErrFenced (its inputs go back to the stream)", err)
	}
}

// A partitioned correlator's API says that an incident it does not know
// may be another partition's.
func TestAPIOfAPartitionSaysSo(t *testing.T) {
	proc, err := NewProcessor(Config{Catalog: writeCatalog(t), Partition: PartitionConfig{Count: 3, Index: 1}}, zerolog.Nop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	api, err := newAPI(proc, APIConfig{Listen: "127.0.0.1:0", Token: apiToken}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := contextWithCancel()
	defer cancel()
	go api.Run(ctx)
	r := &apiRig{t: t, h: stagetest.Start(t, proc, stage.Config{TickEvery: time.Second}), base: "http://" + api.Addr().String()}
	for _, req := range [][2]string{{"GET", "/v1/incidents/nope"}, {"POST", "/v1/incidents/nope/ack"}} {
		code, body := r.do(req[0], req[1], apiToken, `{"by":"ana"}`)
		if code != http.StatusNotFound || !strings.Contains(body, "partition 1 of 3") {
			t.Errorf("%s %s: %d %s, want 404 naming the partition", req[0], req[1], code, body)
		}
	}
}

// What the API does not serve is answered in JSON, as its other errors: an
// unknown path 404, another method 405 naming the one the path takes.
func TestAPIAnswersWhatItDoesNotServeInJSON(t *testing.T) {
	r := newAPIRig(t)
	for _, c := range []struct {
		method, path string
		code         int
		want         string
	}{
		{"GET", "/v1/incident", 404, "no path"},
		{"DELETE", "/v1/incidents", 405, "takes GET"},
		{"POST", "/v1/incidents/x", 405, "takes GET"},
		{"GET", "/v1/incidents/x/ack", 405, "takes POST"},
	} {
		code, body := r.do(c.method, c.path, apiToken, "")
		var e struct{ Error string }
		if code != c.code || json.Unmarshal([]byte(body), &e) != nil || !strings.Contains(e.Error, c.want) {
			t.Errorf("%s %s: %d %s, want %d with a JSON error saying %q", c.method, c.path, code, body, c.code, c.want)
		}
	}
	if code, _ := r.do("GET", "/v1/incident", "", ""); code != http.StatusUnauthorized {
		t.Errorf("an unknown path without a token: %d, want 401 first", code)
	}
}

// A query string the list cannot read (a ';' between parameters, a bad
// %-escape) is a 400 naming the problem: dropped unread, its filter would
// be gone and the list would hold every incident.
func TestAPIListRefusesAQueryItCannotRead(t *testing.T) {
	r := newAPIRig(t)
	r.h.Feed(alertEvent(t, "HighLatency", "web", 0, 0), alertEvent(t, "HighLatency", "search", 20*time.Second, 0))
	for q, want := range map[string]string{
		"service=web;status=open": "semicolon",
		"service=%zz":             "%zz",
		"limit=1&service=we%b":    "%b",
		"status=":                 `parameter "status" is empty`, // listed as no filter, it would be everything
		"severity=%20":            `parameter "severity" is empty`,
	} {
		code, body := r.do("GET", "/v1/incidents?"+q, apiToken, "")
		var e struct{ Error string }
		if code != http.StatusBadRequest || json.Unmarshal([]byte(body), &e) != nil || !strings.Contains(e.Error, want) {
			t.Errorf("%s: %d %s, want 400 naming %s", q, code, body, want)
		}
	}
	// A service named as signals may name it: in other letter case.
	code, body := r.do("GET", "/v1/incidents?service=SEARCH", apiToken, "")
	var list struct{ Incidents []correlate.State }
	if code != http.StatusOK || json.Unmarshal([]byte(body), &list) != nil || len(list.Incidents) != 1 || list.Incidents[0].Service != "search" {
		t.Errorf("service=SEARCH: %d %s, want search's incident", code, body)
	}
	// A command's body: what it needs, given blank, and what it takes no
	// notice of are named; JSON of the wrong shape says what it wants.
	id := list.Incidents[0].IncidentID
	for _, c := range []struct{ action, body, want string }{
		{"assign", `{"by":"ana","assignee":"   "}`, `assign needs "assignee"`},
		{"ack", `{"by":"ana","text":"looking"}`, `ack takes no "text": comment does`},
		{"comment", `{"by":"ana","text":"x","assignee":"bo"}`, `comment takes no "assignee"`},
		{"ack", `[]`, "the body is a JSON array: want an object"},
		{"ack", `{"by":1}`, `field "by" is a JSON number: want a string`},
		{"ack", `{"by":"ana"`, "not JSON"},
	} {
		code, body := r.do("POST", "/v1/incidents/"+id+"/"+c.action, apiToken, c.body)
		var e struct{ Error string }
		if code != http.StatusBadRequest || json.Unmarshal([]byte(body), &e) != nil || !strings.Contains(e.Error, c.want) {
			t.Errorf("%s %s: %d %s, want 400 saying %q", c.action, c.body, code, body, c.want)
		}
	}
}

// An ack or resolve by a person is timed when the API received it, what
// MTTA and MTTR are measured to: not at the correlator's event time,
// which stands at the last signal's until idle_advance passed (an ack a
// few seconds after the opening read as acknowledged at the opening, MTTA
// 0). The incident event itself keeps the event time.
func TestAPICommandsAreTimedWhenReceived(t *testing.T) {
	r := newAPIRig(t)
	r.h.Feed(alertEvent(t, "HighLatency", "web", 0, 0))
	id := r.h.Pub.Events(t)[0].Labels["incident_id"]
	var st correlate.State
	for _, action := range []string{"ack", "resolve"} {
		before := time.Now()
		code, body := r.do("POST", "/v1/incidents/"+id+"/"+action, apiToken, `{"by":"ana"}`)
		after := time.Now()
		if code != 200 || json.Unmarshal([]byte(body), &st) != nil {
			t.Fatalf("%s: %d %s", action, code, body)
		}
		at := st.AcknowledgedAt
		if action == "resolve" {
			at = st.ResolvedAt
		}
		if at.Before(before) || at.After(after) {
			t.Errorf("%s timed %v, want when the API received it (%v to %v); the event time is %v", action, at, before, after, t0)
		}
		if last := st.Timeline[len(st.Timeline)-1]; !last.Time.Equal(at.Truncate(time.Millisecond)) {
			t.Errorf("%s: the timeline says %+v, want it at %v (to the millisecond)", action, last, at)
		}
	}
	for _, e := range append(incidentEvents(t, r.h, "acknowledged"), incidentEvents(t, r.h, "resolved")...) {
		if e.Time.Sub(t0) > time.Second {
			t.Errorf("the %s event is timed %v, want the event time (%v)", e.Labels["incident_id"], e.Time, t0)
		}
	}
}

// The list leaves each incident's timeline out (GET of one incident has
// it) rather than saying "timeline": null. status=active lists what a
// person on call still has to deal with, open and acknowledged; open
// stays what it was, the incidents nobody acknowledged.
func TestAPIListActiveWithoutTimelines(t *testing.T) {
	r := newAPIRig(t)
	r.h.Feed(alertEvent(t, "HighLatency", "web", 0, 0), alertEvent(t, "HighLatency", "search", 20*time.Second, 0))
	code, body := r.do("GET", "/v1/incidents", apiToken, "")
	if code != 200 || strings.Contains(body, "timeline") {
		t.Fatalf("list: %d %s, want no timeline in it", code, body)
	}
	var list struct{ Incidents []correlate.State }
	if json.Unmarshal([]byte(body), &list) != nil || len(list.Incidents) != 2 {
		t.Fatalf("list: %s", body)
	}
	acked := list.Incidents[0].IncidentID
	if code, body := r.do("POST", "/v1/incidents/"+acked+"/ack", apiToken, `{"by":"ana"}`); code != 200 {
		t.Fatalf("ack: %d %s", code, body)
	}
	for status, want := range map[string]int{"active": 2, "open": 1, "acknowledged": 1} {
		code, body := r.do("GET", "/v1/incidents?status="+status, apiToken, "")
		if code != 200 || json.Unmarshal([]byte(body), &list) != nil || len(list.Incidents) != want {
			t.Errorf("status=%s: %d %s, want %d incidents", status, code, body, want)
		}
	}
	if code, body := r.do("GET", "/v1/incidents?status=closed", apiToken, ""); code != 400 || !strings.Contains(body, "active") {
		t.Errorf("status=closed: %d %s, want 400 naming active among the statuses", code, body)
	}
}

// The 401 of an API whose token the server generated (`aiops run`:
// data/api-token) says where the token is, unescaped: JSON answers keep
// <, > and & as they are.
func TestAPIUnauthorizedNamesTheGeneratedTokenFile(t *testing.T) {
	proc, err := NewProcessor(Config{Catalog: writeCatalog(t)}, zerolog.Nop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "api-token")
	api, err := newAPI(proc, APIConfig{Listen: "127.0.0.1:0", GenerateTokenFile: file}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := contextWithCancel()
	defer cancel()
	go api.Run(ctx)
	resp, err := http.Get("http://" + api.Addr().String() + "/v1/incidents")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(body), "Bearer <incidents API token>") || !strings.Contains(string(body), file) {
		t.Fatalf("401: %d %s, want it to name the token file %s", resp.StatusCode, body, file)
	}
}

// Nor does such an instance take a signal (given back to the stream) or
// let time resolve what it holds: the next holder may have restored the
// state already, and what this one made of it would be published beside
// what that one makes.
func TestNoSignalOrTimeOnceTheLeaseRanOut(t *testing.T) {
	proc, err := NewProcessor(Config{Catalog: writeCatalog(t)}, zerolog.Nop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var holds atomic.Bool
	holds.Store(true)
	proc.holds = holds.Load
	h := stagetest.Start(t, proc, stage.Config{TickEvery: time.Second})
	h.Feed(alertEvent(t, "HighLatency", "web", 0, 0), alertEvent(t, "HighLatency", "web", 0, time.Minute))
	now := time.Now()
	if err := h.Tick(now); err != nil {
		t.Fatal(err)
	}
	published := len(h.Pub.Messages())
	holds.Store(false)
	if r := h.Feed(alertEvent(t, "DiskFull", "db", 2*time.Minute, 0))[0]; r.Outcome != stagetest.Naked || !errors.Is(r.Err, ErrStandby) {
		t.Fatalf("a signal once the lease ran out: %v %v, want given back (ErrStandby)", r.Outcome, r.Err)
	}
	if err := h.Tick(now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if n := len(h.Pub.Messages()); n != published {
		t.Fatalf("%d events published once the lease ran out, want none (web's incident resolved by a state no longer this instance's)", n-published)
	}
	holds.Store(true)
	if err := h.Tick(now.Add(2 * time.Hour)); err != nil {
		t.Fatal(err)
	}
	if n := len(h.Pub.Messages()); n == published {
		t.Fatal("holding again, the tick resolved nothing: the test does not show what it means to")
	}
}

// A command sent again under its Idempotency-Key answers what its first
// send answered: the incident's state, without the transition of the
// event that announced it ("status" is an event's, and GET leaves it out),
// so that a client comparing a retry's answer with the first sees no
// difference.
func TestCommandRetriedUnderItsKeyAnswersTheSameState(t *testing.T) {
	r := newAPIRig(t)
	id := r.oneIncident()
	var answers []string
	for range 2 {
		code, body := r.doKeyed("POST", "/v1/incidents/"+id+"/comment", apiToken, "note-1", `{"by":"ana","text":"failing over"}`)
		if code != 200 {
			t.Fatalf("comment: %d %s", code, body)
		}
		answers = append(answers, body)
	}
	if answers[0] != answers[1] {
		t.Fatalf("the retry answered\n%s\nthe first send\n%s", answers[1], answers[0])
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(answers[0]), &got); err != nil {
		t.Fatal(err)
	}
	if s, ok := got["status"]; ok {
		t.Fatalf("the answer holds the event's transition %q beside its state %q", s, got["state"])
	}
}
