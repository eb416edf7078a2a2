package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aiops-dev/aiops/pkg/errs"
)

// An unsafe request (a ticket's create) that got no answer is not retried:
// the receiver may have acted on it. Nor is one a gateway answered 502 or
// 504 for (it lost the server's answer or gave up waiting for it: the
// request usually got there), or 408. A 503 or a 429 (the server says it
// did not take it) is retried as for any request, and a safe request is
// retried after all of them.
func TestUnsafeRequests(t *testing.T) {
	for _, c := range []struct {
		name     string
		unsafe   bool
		first    int // the first answer's status; 0: none (it hangs)
		attempts int
		ok       bool
	}{
		{"unsafe after a timeout", true, 0, 1, false},
		{"unsafe after a 502", true, 502, 1, false},
		{"unsafe after a 504", true, 504, 1, false},
		{"unsafe after a 408", true, 408, 1, false},
		{"unsafe after a 503", true, 503, 2, true},
		{"unsafe after a 429", true, 429, 2, true},
		{"safe after a timeout", false, 0, 2, true},
		{"safe after a 502", false, 502, 2, true},
		{"safe after a 504", false, 504, 2, true},
		{"safe after a 408", false, 408, 2, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			clock := newFakeClock()
			tr := newTestReceiver(t, clock, nil, func(n int, w http.ResponseWriter, r *http.Request) {
				if n == 1 && c.first == 0 {
					<-r.Context().Done()
					return
				}
				if n == 1 {
					w.WriteHeader(c.first)
					return
				}
				w.WriteHeader(201)
			})
			cfg := testConfig()
			cfg.Timeout = 200 * time.Millisecond
			rec := &attempts{}
			cl := newTestClient(t, cfg, clock, rec)
			req := testRequest(tr.URL)
			req.Unsafe = c.unsafe
			res, err := cl.Deliver(context.Background(), req)
			if got := len(rec.List()); got != c.attempts || (err == nil) != c.ok {
				t.Fatalf("%d attempts, error %v; want %d attempts, success %v", got, err, c.attempts, c.ok)
			}
			if err != nil && (errs.IsPermanent(err) || !strings.Contains(err.Error(), "not idempotent") || res.StatusCode != c.first) {
				t.Fatalf("error %v, status %d: want a transient one that says why it was not retried", err, res.StatusCode)
			}
		})
	}
}

// A gateway in front of Jira answers 504 once Jira made the issue: the
// create is not sent again blindly (a second issue), the notification
// fails, and its redelivery finds the issue by its label.
func TestJiraCreateGatewayTimeout(t *testing.T) {
	js := &jiraServer{issues: map[string]string{}, done: map[string]bool{}}
	gatewayTimeouts := 1
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/issue") || gatewayTimeouts == 0 {
			js.ServeHTTP(w, r)
			return
		}
		gatewayTimeouts--
		js.ServeHTTP(httptest.NewRecorder(), r) // Jira made it; its answer is lost
		w.WriteHeader(http.StatusGatewayTimeout)
	}))
	defer srv.Close()
	cl := newTestClient(t, testConfig(), newFakeClock(), &attempts{})
	j := &Jira{Receiver: "ops", APIURL: srv.URL + "/rest/api/2"}
	in := SampleIncident()
	issue := JiraIssue{Project: "OPS", IssueType: "Bug", Summary: in.Title}
	if err := j.Notify(context.Background(), cl, "k1", in, issue); err == nil || errs.IsPermanent(err) {
		t.Fatalf("a create answered 504: %v, want a transient error", err)
	}
	if err := j.Notify(context.Background(), cl, "k1", in, issue); err != nil { // the event again
		t.Fatal(err)
	}
	want := []string{"POST /rest/api/2/search", "POST /rest/api/2/issue", "POST /rest/api/2/search"}
	if fmt.Sprint(js.calls) != fmt.Sprint(want) || len(js.issues) != 1 {
		t.Fatalf("requests %q, %d issues; want %q and one issue", js.calls, len(js.issues), want)
	}
}

// A create answered 504 may have made the issue, which Jira's search may
// not show for a few seconds: the incident's next notification within
// JiraCreateSettle creates no other (a transient error: it comes again),
// and one after it finds the issue, or creates it if it was not made.
func TestJiraCreateUnansweredSettles(t *testing.T) {
	js := &jiraServer{issues: map[string]string{}, done: map[string]bool{}}
	lagging, timeouts, makes := true, 1, true
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/search") && lagging:
			w.Write([]byte(`{"issues":[]}`)) // the index does not have it yet
		case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/issue") && timeouts > 0:
			timeouts--
			if makes {
				js.ServeHTTP(httptest.NewRecorder(), r) // Jira made it; its answer is lost
			}
			w.WriteHeader(http.StatusGatewayTimeout)
		default:
			js.ServeHTTP(w, r)
		}
	}))
	defer srv.Close()
	cl := newTestClient(t, testConfig(), newFakeClock(), &attempts{})
	now := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	j := &Jira{Receiver: "ops", APIURL: srv.URL + "/rest/api/2", now: func() time.Time { return now }}
	in := SampleIncident()
	issue := JiraIssue{Project: "OPS", IssueType: "Bug", Summary: in.Title}
	if err := j.Notify(context.Background(), cl, "k1", in, issue); err == nil || errs.IsPermanent(err) {
		t.Fatalf("a create answered 504: %v, want a transient error", err)
	}
	now = now.Add(time.Second) // redelivered while the index lags
	if err := j.Notify(context.Background(), cl, "k1", in, issue); !errors.Is(err, ErrJiraCreateSettling) || errs.IsPermanent(err) {
		t.Fatalf("the event again while the search lags: %v, want ErrJiraCreateSettling", err)
	}
	if len(js.issues) != 1 {
		t.Fatalf("%d issues, want the one the unanswered create made", len(js.issues))
	}
	lagging = false
	now = now.Add(5 * time.Second)
	if err := j.Notify(context.Background(), cl, "k1", in, issue); err != nil || len(js.issues) != 1 {
		t.Fatalf("once the search shows it: %v, %d issues; want the one", err, len(js.issues))
	}

	// a create that was not made: after the settle time, it is made
	other := SampleIncident()
	other.ID = "inc-other"
	timeouts, makes = 1, false
	if err := j.Notify(context.Background(), cl, "k2", other, issue); err == nil || errs.IsPermanent(err) {
		t.Fatalf("an unanswered create: %v", err)
	}
	now = now.Add(JiraCreateSettle)
	if err := j.Notify(context.Background(), cl, "k2", other, issue); err != nil || len(js.issues) != 2 {
		t.Fatalf("after the settle time: %v, %d issues; want the other incident's made", err, len(js.issues))
	}
}

// A Jira keeps what the search may not show yet in its Memory, so a new
// Jira on the same memory (a restarted notifier's) settles after the
// create its predecessor got no answer to; a memory that cannot be read
// fails the notification (transient) before any request, since a create
// without the memo could make a second issue.
func TestJiraMemoryOutlivesTheJira(t *testing.T) {
	js := &jiraServer{issues: map[string]string{}, index: map[string]string{}, done: map[string]bool{}}
	timeouts := 1
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/issue") && timeouts > 0 {
			timeouts--
			js.ServeHTTP(httptest.NewRecorder(), r) // made; the answer is lost
			w.WriteHeader(http.StatusGatewayTimeout)
			return
		}
		js.ServeHTTP(w, r) // the index (empty) lags behind
	}))
	defer srv.Close()
	cl := newTestClient(t, testConfig(), newFakeClock(), &attempts{})
	in := SampleIncident()
	issue := JiraIssue{Project: "OPS", IssueType: "Bug", Summary: in.Title}
	mem := NewLocalJiraMemory()
	first := &Jira{Receiver: "ops", APIURL: srv.URL + "/rest/api/2", Memory: mem}
	if err := first.Notify(context.Background(), cl, "k1", in, issue); err == nil || errs.IsPermanent(err) {
		t.Fatalf("a create answered 504: %v, want a transient error", err)
	}
	second := &Jira{Receiver: "ops", APIURL: srv.URL + "/rest/api/2", Memory: mem}
	if err := second.Notify(context.Background(), cl, "k1", in, issue); !errors.Is(err, ErrJiraCreateSettling) || js.last != 1 {
		t.Fatalf("the event again, to another Jira on the memory: %v, %d issues; want ErrJiraCreateSettling, one issue", err, js.last)
	}
	js.calls = nil
	broken := &Jira{Receiver: "ops", APIURL: srv.URL + "/rest/api/2", Memory: failingMemory{}}
	if err := broken.Notify(context.Background(), cl, "k1", in, issue); err == nil || errs.IsPermanent(err) || len(js.calls) != 0 {
		t.Fatalf("a memory that cannot be read: %v, requests %q; want a transient error and none", err, js.calls)
	}
}

type failingMemory struct{}

func (failingMemory) Recall(context.Context, string) (JiraMemo, error) {
	return JiraMemo{}, errors.New("bucket unreachable")
}

func (failingMemory) Keep(context.Context, string, JiraMemo) {}

// The settle after an unanswered create ends before the notifier's
// redeliveries do (1, 2, 4, 8 s apart, ±20%): a create that was not made
// is made by a later one, not dead-lettered with the event. A create the
// receiver refused with a 503 (it did not take it) does not settle.
func TestJiraSettleEndsWithinTheRedeliveries(t *testing.T) {
	js := &jiraServer{issues: map[string]string{}, done: map[string]bool{}}
	timeouts, unavailable := 1, false
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/issue") && timeouts > 0:
			timeouts--
			w.WriteHeader(http.StatusGatewayTimeout) // not made
		case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/issue") && unavailable:
			w.WriteHeader(http.StatusServiceUnavailable)
		default:
			js.ServeHTTP(w, r)
		}
	}))
	defer srv.Close()
	cfg := testConfig()
	cfg.Retry.MaxAttempts = 1
	cl := newTestClient(t, cfg, newFakeClock(), &attempts{})
	t0 := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	now := t0
	j := &Jira{Receiver: "ops", APIURL: srv.URL + "/rest/api/2", now: func() time.Time { return now }}
	in := SampleIncident()
	issue := JiraIssue{Project: "OPS", IssueType: "Bug", Summary: in.Title}
	var err error
	for _, at := range []time.Duration{0, 1200 * time.Millisecond, 3600 * time.Millisecond, 8400 * time.Millisecond, 12 * time.Second} {
		now = t0.Add(at)
		if err = j.Notify(context.Background(), cl, "k1", in, issue); err == nil {
			break
		}
	}
	if err != nil || len(js.issues) != 1 {
		t.Fatalf("after five deliveries, the last 12 s after the first: %v, %d issues; want the issue made", err, len(js.issues))
	}

	other := SampleIncident()
	other.ID = "inc-503"
	unavailable = true
	if err := j.Notify(context.Background(), cl, "k2", other, issue); err == nil || errs.IsPermanent(err) {
		t.Fatalf("a create answered 503: %v, want a transient error", err)
	}
	unavailable = false
	now = now.Add(time.Second)
	if err := j.Notify(context.Background(), cl, "k2", other, issue); err != nil || len(js.issues) != 2 {
		t.Fatalf("the redelivery after a 503: %v, %d issues; want it made at once", err, len(js.issues))
	}
}

func TestRequestMethods(t *testing.T) {
	clock := newFakeClock()
	var methods []string
	var mu sync.Mutex
	tr := newTestReceiver(t, clock, nil, func(n int, w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		methods = append(methods, r.Method)
		mu.Unlock()
	})
	cl := newTestClient(t, testConfig(), clock, &attempts{})
	for _, m := range []string{"GET", "PATCH", ""} {
		req := testRequest(tr.URL)
		req.Method = m
		if m == "GET" {
			req.Body = nil
		}
		if _, err := cl.Deliver(context.Background(), req); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	for i, h := range tr.Hits() {
		got = append(got, fmt.Sprintf("%s %q %q", methods[i], h.header.Get("Content-Type"), h.body))
	}
	want := `[GET "" "" PATCH "application/json" "{\"incident\":\"checkout down\"}" POST "application/json" "{\"incident\":\"checkout down\"}"]`
	if fmt.Sprint(got) != want {
		t.Fatalf("%s\nwant %s", got, want)
	}
	for _, m := range []string{"DELETE", "GET"} {
		req := testRequest(tr.URL)
		req.Method = m
		if _, err := cl.Deliver(context.Background(), req); !errors.Is(err, ErrInvalidRequest) || !errs.IsPermanent(err) {
			t.Errorf("%s with a body: %v, want ErrInvalidRequest", m, err)
		}
	}
}

// A request's redirect policy overrides the client's follow_redirects
// both ways; a policy that is none of the three is refused before sending.
func TestRequestRedirects(t *testing.T) {
	clock := newFakeClock()
	tr := newTestReceiver(t, clock, nil, func(n int, w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/old" {
			http.Redirect(w, r, "/new", http.StatusPermanentRedirect)
		}
	})
	for _, c := range []struct {
		clientFollows bool
		policy        RedirectPolicy
		followed      bool
	}{
		{false, RedirectsDefault, false}, {true, RedirectsDefault, true},
		{false, RedirectsFollow, true}, {true, RedirectsRefuse, false},
	} {
		cfg := testConfig()
		cfg.FollowRedirects = c.clientFollows
		cl := newTestClient(t, cfg, clock, &attempts{})
		req := testRequest(tr.URL + "/old")
		req.Redirects = c.policy
		_, err := cl.Deliver(context.Background(), req)
		if followed := err == nil; followed != c.followed || (err != nil && !errors.Is(err, ErrRedirect)) {
			t.Errorf("client follows %v, policy %d: %v, want followed %v", c.clientFollows, c.policy, err, c.followed)
		}
	}
	req := testRequest(tr.URL + "/old")
	req.Redirects = RedirectsRefuse + 1
	before := len(tr.Hits())
	if _, err := newTestClient(t, testConfig(), clock, &attempts{}).Deliver(context.Background(), req); !errors.Is(err, ErrInvalidRequest) || len(tr.Hits()) != before {
		t.Fatalf("an unknown policy: %v, %d requests sent; want ErrInvalidRequest before sending", err, len(tr.Hits())-before)
	}
}

// A redirect that would turn the POST into a GET without its body (301,
// 302, 303: an http->https or moved endpoint) fails for good, naming why,
// instead of counting the GET's 2xx as delivered; 307 and 308 keep the
// method and are followed (TestRequestRedirects).
func TestRedirectChangingTheMethodFails(t *testing.T) {
	for _, code := range []int{http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther} {
		clock := newFakeClock()
		var mu sync.Mutex
		var seen []string
		tr := newTestReceiver(t, clock, nil, func(n int, w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			seen = append(seen, r.Method+" "+r.URL.Path)
			mu.Unlock()
			if r.URL.Path == "/old" {
				http.Redirect(w, r, "/new", code)
			}
		})
		cl := newTestClient(t, testConfig(), clock, &attempts{})
		req := testRequest(tr.URL + "/old")
		req.Redirects = RedirectsFollow
		_, err := cl.Deliver(context.Background(), req)
		mu.Lock()
		if !errors.Is(err, ErrRedirect) || !errs.IsPermanent(err) || !strings.Contains(err.Error(), "as GET") || len(seen) != 1 {
			t.Errorf("%d: %v after %v; want a permanent ErrRedirect naming the GET, the receiver asked once", code, err, seen)
		}
		mu.Unlock()
	}
}

// jiraServer is a Jira API whose search finds the newest issue per label;
// create (and a comment) can be made to hang once after it made the issue
// (the comment): the answer lost on the way back. failComments answers
// that many reads of the comments 503. With index set, the search answers
// from it instead: an index lagging behind the creates.
type jiraServer struct {
	mu           sync.Mutex
	issues       map[string]string   // label → key of the newest issue
	index        map[string]string   // label → key, as the search sees them; nil: issues
	last         int                 // number of the last issue made
	done         map[string]bool     // key → done
	comments     map[string][]string // key → the comments' bodies (JSON), oldest first
	hangCreate   bool
	hangComment  bool
	failComments int
	calls        []string
	bodies       []string
}

func (j *jiraServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	j.mu.Lock()
	j.calls = append(j.calls, r.Method+" "+r.URL.Path)
	j.bodies = append(j.bodies, string(b))
	var answer string
	code, hang := 200, false
	switch {
	case strings.HasSuffix(r.URL.Path, "/search"):
		var q struct{ JQL string }
		json.Unmarshal(b, &q)
		var issues []string
		index := j.issues
		if j.index != nil {
			index = j.index
		}
		for label, key := range index {
			if strings.Contains(q.JQL, `labels = "`+label+`"`) {
				cat := "new"
				if j.done[key] {
					cat = "done"
				}
				issues = append(issues, fmt.Sprintf(`{"key":%q,"fields":{"status":{"statusCategory":{"key":%q}}}}`, key, cat))
			}
		}
		answer = `{"issues":[` + strings.Join(issues, ",") + `]}`
	case strings.HasSuffix(r.URL.Path, "/issue"):
		var is struct{ Fields struct{ Labels []string } }
		json.Unmarshal(b, &is)
		j.last = max(j.last, len(j.issues)) + 1
		key := fmt.Sprintf("OPS-%d", j.last)
		for _, l := range is.Fields.Labels {
			if strings.HasPrefix(l, "aiops-") {
				j.issues[l] = key
			}
		}
		code, answer, hang = 201, fmt.Sprintf(`{"key":%q}`, key), j.hangCreate
		j.hangCreate = false
	case r.Method == "GET" && len(strings.Split(r.URL.Path, "/")) == 6 && strings.Split(r.URL.Path, "/")[4] == "issue":
		key, cat := strings.Split(r.URL.Path, "/")[5], "new"
		if n, _ := strconv.Atoi(strings.TrimPrefix(key, "OPS-")); n > max(j.last, len(j.issues)) || r.URL.Query().Get("fields") != "status" {
			code = 404
			break
		}
		if j.done[key] {
			cat = "done"
		}
		answer = fmt.Sprintf(`{"key":%q,"fields":{"status":{"statusCategory":{"key":%q}}}}`, key, cat)
	case r.Method == "GET" && strings.HasSuffix(r.URL.Path, "/transitions"):
		answer = `{"transitions":[{"id":"31","name":"Done"},{"id":"41","name":"Reopen"}]}`
	case strings.HasSuffix(r.URL.Path, "/transitions"):
		j.done[strings.Split(r.URL.Path, "/")[5]] = strings.Contains(string(b), `"31"`)
		code = 204
	case strings.HasSuffix(r.URL.Path, "/comment") && r.Method == "GET":
		if j.failComments > 0 {
			j.failComments--
			code = 503
			break
		}
		// Newest first, at most maxResults, as orderBy=-created asks.
		list := j.comments[strings.Split(r.URL.Path, "/")[5]]
		var page []string
		for i := len(list) - 1; i >= 0 && r.URL.Query().Get("orderBy") == "-created"; i-- {
			if n, _ := strconv.Atoi(r.URL.Query().Get("maxResults")); len(page) < n {
				page = append(page, fmt.Sprintf(`{"id":"%d","author":{"name":"aiops"},"body":%s}`, 10000+i, list[i]))
			}
		}
		answer = fmt.Sprintf(`{"startAt":0,"maxResults":%d,"total":%d,"comments":[%s]}`, len(page), len(list), strings.Join(page, ","))
	case strings.HasSuffix(r.URL.Path, "/comment"):
		var c struct{ Body json.RawMessage }
		json.Unmarshal(b, &c)
		if j.comments == nil {
			j.comments = map[string][]string{}
		}
		issue := strings.Split(r.URL.Path, "/")[5]
		j.comments[issue] = append(j.comments[issue], string(c.Body))
		code, hang = 201, j.hangComment
		j.hangComment = false
	default:
		code = 201
	}
	j.mu.Unlock()
	if hang {
		<-r.Context().Done()
		return
	}
	w.WriteHeader(code)
	io.WriteString(w, answer)
}

// A create whose answer never came is not sent again; the next
// notification finds the issue by its label. A reopened incident whose
// issue is done goes through the Reopen transition and gets a comment, in
// Atlassian Document Format on API v3. A transition the workflow lacks is
// a permanent error naming it.
func TestJiraCreateLostAndReopen(t *testing.T) {
	js := &jiraServer{issues: map[string]string{}, done: map[string]bool{}, hangCreate: true}
	srv := httptest.NewServer(js)
	defer srv.Close()
	cfg := testConfig()
	cfg.Timeout = 200 * time.Millisecond
	cl := newTestClient(t, cfg, newFakeClock(), &attempts{})
	j := &Jira{Receiver: "ops", APIURL: srv.URL + "/rest/api/3", ResolveTransition: "Done", ReopenTransition: "Reopen"}
	in := SampleIncident()
	issue := JiraIssue{Project: "OPS", IssueType: "Bug", Summary: in.Title, Description: "d"}
	ctx := context.Background()

	err := j.Notify(ctx, cl, "k1", in, issue)
	if err == nil || errs.IsPermanent(err) {
		t.Fatalf("a lost create: %v, want a transient error", err)
	}
	if err := j.Notify(ctx, cl, "k1", in, issue); err != nil { // the event again
		t.Fatal(err)
	}
	res := in
	res.Status, res.Transition, res.ResolvedAt, res.At = StatusResolved, TransitionResolved, in.OpenedAt.Add(time.Hour), time.Time{}
	if err := j.Notify(ctx, cl, "k2", res, issue); err != nil {
		t.Fatal(err)
	}
	re := in
	re.Transition, re.At = TransitionReopened, in.OpenedAt.Add(2*time.Hour)
	if err := j.Notify(ctx, cl, "k3", re, issue); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"POST /rest/api/3/search", "POST /rest/api/3/issue", // lost
		"POST /rest/api/3/search", // found: opened already
		"POST /rest/api/3/search", "GET /rest/api/3/issue/OPS-1/transitions", "POST /rest/api/3/issue/OPS-1/transitions",
		"POST /rest/api/3/search", "GET /rest/api/3/issue/OPS-1/transitions", "POST /rest/api/3/issue/OPS-1/transitions",
		"GET /rest/api/3/issue/OPS-1/comment", "POST /rest/api/3/issue/OPS-1/comment",
	}
	if fmt.Sprint(js.calls) != fmt.Sprint(want) {
		t.Fatalf("requests\n%q\nwant\n%q", js.calls, want)
	}
	if js.bodies[8] != `{"transition":{"id":"41"}}` || !strings.HasPrefix(js.bodies[10], `{"body":{"content":[{"content":[{"text":"aiops: incident `) ||
		!strings.HasSuffix(js.bodies[10], `{"content":[{"text":"aiops-notification: k3","type":"text"}],"type":"paragraph"}],"type":"doc","version":1}}`) ||
		!strings.Contains(js.bodies[1], `"description":{"content":[{"content":[{"text":"d","type":"text"}],"type":"paragraph"}],"type":"doc","version":1}`) {
		t.Fatalf("reopen %s, comment %s, create %s", js.bodies[8], js.bodies[10], js.bodies[1])
	}

	j.ResolveTransition = "Close"
	err = j.Notify(ctx, cl, "k4", res, issue)
	if !errs.IsPermanent(err) || !strings.Contains(err.Error(), `no transition "Close"`) {
		t.Fatalf("a missing transition: %v", err)
	}
}

// Jira's search index lags behind a create: after a reopening made a new
// issue (the old one done, no reopen_transition), the search still finds
// only the old one. The issue the Jira made last is the incident's: an
// update comments on it instead of making a third, a resolve closes it,
// and a reopening after that makes a new one. A remembered issue older
// than the one found (another notifier made that one) gives way to it,
// and so does one that is gone (404).
func TestJiraSearchLagsBehindCreate(t *testing.T) {
	in := SampleIncident()
	label := JiraLabel(in.ID)
	js := &jiraServer{issues: map[string]string{label: "OPS-1"}, index: map[string]string{label: "OPS-1"}, done: map[string]bool{"OPS-1": true}}
	srv := httptest.NewServer(js)
	defer srv.Close()
	cl := newTestClient(t, testConfig(), newFakeClock(), &attempts{})
	j := &Jira{Receiver: "ops", APIURL: srv.URL + "/rest/api/2", ResolveTransition: "Done"}
	issue := JiraIssue{Project: "OPS", IssueType: "Bug", Summary: in.Title}
	ctx := context.Background()
	state := func(tr Transition, status Status, after time.Duration) Incident {
		s := in
		s.Transition, s.Status, s.At = tr, status, in.OpenedAt.Add(after)
		if status == StatusResolved {
			s.ResolvedAt = s.At
		}
		return s
	}
	for i, s := range []Incident{
		state(TransitionReopened, StatusOpen, time.Hour),                   // makes OPS-2
		state(TransitionUpdated, StatusOpen, time.Hour+time.Second),        // comments on OPS-2
		state(TransitionResolved, StatusResolved, time.Hour+2*time.Second), // closes OPS-2
		state(TransitionReopened, StatusOpen, time.Hour+3*time.Second),     // OPS-2 done: makes OPS-3
	} {
		if err := j.Notify(ctx, cl, fmt.Sprintf("k%d", i+1), s, issue); err != nil {
			t.Fatalf("notification %d: %v", i+1, err)
		}
	}
	want := []string{
		"POST /rest/api/2/search", "POST /rest/api/2/issue",
		"POST /rest/api/2/search", "GET /rest/api/2/issue/OPS-2", "GET /rest/api/2/issue/OPS-2/comment", "POST /rest/api/2/issue/OPS-2/comment",
		"POST /rest/api/2/search", "GET /rest/api/2/issue/OPS-2", "GET /rest/api/2/issue/OPS-2/transitions", "POST /rest/api/2/issue/OPS-2/transitions",
		"POST /rest/api/2/search", "GET /rest/api/2/issue/OPS-2", "POST /rest/api/2/issue",
	}
	if fmt.Sprint(js.calls) != fmt.Sprint(want) {
		t.Fatalf("requests\n%q\nwant\n%q", js.calls, want)
	}
	if js.last != 3 || !js.done["OPS-2"] || len(js.comments["OPS-2"]) != 1 || remembered(j, in.ID) != "OPS-3" {
		t.Fatalf("issues made up to OPS-%d, OPS-2 done %v with %d comments, remembered %s; want OPS-3, OPS-2 done with 1 comment, OPS-3",
			js.last, js.done["OPS-2"], len(js.comments["OPS-2"]), remembered(j, in.ID))
	}

	// The index caught up, with OPS-3; this Jira remembers the older
	// OPS-2 (say it stood by while another notifier made OPS-3).
	js.index = nil
	remember(j, in.ID, "OPS-2")
	js.calls = nil
	if err := j.Notify(ctx, cl, "k5", state(TransitionUpdated, StatusOpen, 2*time.Hour), issue); err != nil {
		t.Fatal(err)
	}
	// It remembers one that is gone.
	remember(j, in.ID, "OPS-9")
	if err := j.Notify(ctx, cl, "k6", state(TransitionResolved, StatusResolved, 3*time.Hour), issue); err != nil {
		t.Fatal(err)
	}
	want = []string{
		"POST /rest/api/2/search", "GET /rest/api/2/issue/OPS-3/comment", "POST /rest/api/2/issue/OPS-3/comment",
		"POST /rest/api/2/search", "GET /rest/api/2/issue/OPS-9", "GET /rest/api/2/issue/OPS-3/transitions", "POST /rest/api/2/issue/OPS-3/transitions",
	}
	if fmt.Sprint(js.calls) != fmt.Sprint(want) || !js.done["OPS-3"] || remembered(j, in.ID) != "" {
		t.Fatalf("requests\n%q\nwant\n%q\n(OPS-3 done %v, remembered %q)", js.calls, want, js.done["OPS-3"], remembered(j, in.ID))
	}
}

// remembered is the issue j made last for the incident, as it knows it.
func remembered(j *Jira, id string) string {
	m, _ := j.memory().Recall(context.Background(), id)
	return m.Issue
}

// remember makes j know issueKey as the incident's issue made last.
func remember(j *Jira, id, issueKey string) {
	j.memory().Keep(context.Background(), id, JiraMemo{Issue: issueKey})
}

// Jira refuses a summary with a line break (400): a rendered summary goes
// on one line, trimmed; one that is blank falls back to the title.
func TestJiraSummaryOnOneLine(t *testing.T) {
	for _, c := range []struct{ summary, want string }{
		{" [CRITICAL] checkout:\r\n  error rate up \n\n\tafter deploy\n", "[CRITICAL] checkout: error rate up after deploy"},
		{"one\rtwo", "one two"},
		{" \n ", "checkout: error rate and p99 latency up after deploy"},
	} {
		js := &jiraServer{issues: map[string]string{}, done: map[string]bool{}}
		srv := httptest.NewServer(js)
		cl := newTestClient(t, testConfig(), newFakeClock(), &attempts{})
		j := &Jira{Receiver: "ops", APIURL: srv.URL + "/rest/api/2"}
		in := SampleIncident()
		in.Title = "checkout: error rate and p99 latency up\nafter deploy"
		err := j.Notify(context.Background(), cl, "k", in, JiraIssue{Project: "OPS", IssueType: "Bug", Summary: c.summary})
		srv.Close()
		var create struct{ Fields struct{ Summary string } }
		if err != nil || len(js.bodies) != 2 || json.Unmarshal([]byte(js.bodies[1]), &create) != nil || create.Fields.Summary != c.want {
			t.Errorf("summary %q: %v, created %v; want the summary %q", c.summary, err, js.bodies, c.want)
		}
	}
}

// ServiceNow refuses a sys_id that is not one (it goes into a URL path),
// and a resolved incident without a record creates none.
func TestServiceNowChecksAnswers(t *testing.T) {
	var calls []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls = append(calls, r.Method)
		if strings.Contains(r.URL.RawQuery, "nothing") {
			io.WriteString(w, `{"result":[]}`)
			return
		}
		io.WriteString(w, `{"result":[{"sys_id":"../../sys_user"}]}`)
	}))
	defer srv.Close()
	cl := newTestClient(t, testConfig(), newFakeClock(), &attempts{})
	sn := &ServiceNow{Receiver: "ops", APIURL: srv.URL}
	in := SampleIncident()
	in.Transition = TransitionUpdated
	if err := sn.Notify(context.Background(), cl, "k", in, ServiceNowRecord{}); !errors.Is(err, ErrUnexpectedResponse) || !errs.IsPermanent(err) {
		t.Fatalf("a bad sys_id: %v", err)
	}
	in.ID = "nothing0000000000000000000"
	in.Status, in.Transition, in.ResolvedAt = StatusResolved, TransitionResolved, in.OpenedAt.Add(time.Hour)
	if err := sn.Notify(context.Background(), cl, "k", in, ServiceNowRecord{}); err != nil || len(calls) != 2 {
		t.Fatalf("resolved without a record: %v, requests %v (want two searches only)", err, calls)
	}
}

// A merged incident's ticket says where its failure went: Jira comments
// before the resolve transition closes the issue, ServiceNow's work note
// says it.
func TestTicketsOfAMergedIncident(t *testing.T) {
	ctx := context.Background()
	in := mergedIncident()
	js := &jiraServer{issues: map[string]string{JiraLabel(in.ID): "OPS-7"}, done: map[string]bool{}}
	srv := httptest.NewServer(js)
	defer srv.Close()
	cl := newTestClient(t, testConfig(), newFakeClock(), &attempts{})
	j := &Jira{Receiver: "ops", APIURL: srv.URL + "/rest/api/2", ResolveTransition: "Done"}
	if err := j.Notify(ctx, cl, "k", in, JiraIssue{Project: "OPS", IssueType: "Bug", Summary: in.Title}); err != nil {
		t.Fatal(err)
	}
	want := []string{"POST /rest/api/2/search", "GET /rest/api/2/issue/OPS-7/comment", "POST /rest/api/2/issue/OPS-7/comment",
		"GET /rest/api/2/issue/OPS-7/transitions", "POST /rest/api/2/issue/OPS-7/transitions"}
	if fmt.Sprint(js.calls) != fmt.Sprint(want) {
		t.Fatalf("jira requests\n%q\nwant\n%q", js.calls, want)
	}
	note := "Merged into incident " + in.MergedInto + ": its failure goes on there."
	if !strings.Contains(js.bodies[2], note) || !js.done["OPS-7"] {
		t.Fatalf("jira comment %s, issue done %v", js.bodies[2], js.done["OPS-7"])
	}

	var patch string
	sn := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPatch {
			b, _ := io.ReadAll(r.Body)
			patch = string(b)
		}
		io.WriteString(w, `{"result":[{"sys_id":"0123456789abcdef0123456789abcdef"}]}`)
	}))
	defer sn.Close()
	s := &ServiceNow{Receiver: "ops", APIURL: sn.URL}
	if err := s.Notify(ctx, cl, "k", in, ServiceNowRecord{CloseCode: "Solved"}); err != nil {
		t.Fatal(err)
	}
	var fields map[string]string
	if err := json.Unmarshal([]byte(patch), &fields); err != nil || fields["state"] != "6" || !strings.Contains(fields["work_notes"], note) {
		t.Fatalf("servicenow update %s: %v", patch, err)
	}
}

// A redelivered notification (same key) writes no second comment, whether
// the first post's answer was lost or the notifier crashed after it; a new
// notification (a new key, k10 sharing k1's prefix) writes one. A read of
// the comments that fails is retried as any request, and when it keeps
// failing the notification fails and posts nothing, so its redelivery
// comments once. On API v2 (plain text) and v3 (Atlassian Document Format).
func TestJiraCommentOncePerNotification(t *testing.T) {
	for _, api := range []string{"2", "3"} {
		t.Run("v"+api, func(t *testing.T) {
			in := SampleIncident()
			in.Transition, in.At = TransitionUpdated, in.OpenedAt.Add(time.Minute)
			js := &jiraServer{issues: map[string]string{JiraLabel(in.ID): "OPS-7"}, done: map[string]bool{}}
			srv := httptest.NewServer(js)
			defer srv.Close()
			cfg := testConfig()
			cfg.Timeout = 200 * time.Millisecond
			rec := &attempts{}
			cl := newTestClient(t, cfg, newFakeClock(), rec)
			j := &Jira{Receiver: "ops", APIURL: srv.URL + "/rest/api/" + api}
			issue := JiraIssue{Project: "OPS", IssueType: "Bug"}
			ctx := context.Background()
			comments := func() int {
				js.mu.Lock()
				defer js.mu.Unlock()
				return len(js.comments["OPS-7"])
			}

			js.hangComment = true
			if err := j.Notify(ctx, cl, "k1", in, issue); err == nil || errs.IsPermanent(err) {
				t.Fatalf("a comment whose answer was lost: %v, want a transient error", err)
			}
			for range 2 { // the event again: after the lost answer, after a crash
				if err := j.Notify(ctx, cl, "k1", in, issue); err != nil {
					t.Fatal(err)
				}
			}
			if n := comments(); n != 1 {
				t.Fatalf("one notification delivered three times: %d comments, want 1", n)
			}
			if err := j.Notify(ctx, cl, "k10", in, issue); err != nil {
				t.Fatal(err)
			}
			if n := comments(); n != 2 {
				t.Fatalf("a second notification: %d comments, want 2", n)
			}

			js.failComments = 2
			before := len(rec.List())
			if err := j.Notify(ctx, cl, "k2", in, issue); err != nil {
				t.Fatal(err)
			}
			// search, 3 reads of the comments, post
			if n, got := comments(), len(rec.List())-before; n != 3 || got != 5 {
				t.Fatalf("after two failed reads: %d comments, %d attempts; want 3 comments, 5 attempts", n, got)
			}
			js.failComments = 100
			if err := j.Notify(ctx, cl, "k3", in, issue); err == nil || errs.IsPermanent(err) {
				t.Fatalf("comments that cannot be read: %v, want a transient error", err)
			}
			if n := comments(); n != 3 {
				t.Fatalf("comments that cannot be read: %d comments, want 3 (nothing posted)", n)
			}
			js.failComments = 0
			if err := j.Notify(ctx, cl, "k3", in, issue); err != nil {
				t.Fatal(err)
			}
			if n := comments(); n != 4 {
				t.Fatalf("the failed notification again: %d comments, want 4", n)
			}
			last := js.comments["OPS-7"][3]
			if !strings.Contains(last, "aiops: incident "+in.ID+" updated") || !strings.Contains(last, "aiops-notification: k3") {
				t.Fatalf("comment %s: want the incident's text and its marker", last)
			}
		})
	}
}

// serviceNowServer is a Table API with incident records and their work
// notes in sys_journal_field; an update can be made to hang once after it
// was applied, and failJournal answers that many journal reads 503.
type serviceNowServer struct {
	mu          sync.Mutex
	records     map[string]string   // correlation_id → sys_id
	notes       map[string][]string // sys_id → work notes, oldest first
	states      map[string]string   // sys_id → state
	hangUpdate  bool
	failJournal int
	denyJournal bool // the account may not read sys_journal_field: 403
	calls       []string
}

func (s *serviceNowServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.calls = append(s.calls, r.Method+" "+r.URL.Path)
	code, answer, hang := 200, `{"result":[]}`, false
	query := r.URL.Query().Get("sysparm_query")
	switch {
	case r.Method == "GET" && strings.HasSuffix(r.URL.Path, "/sys_journal_field"):
		if s.denyJournal {
			code = 403
			break
		}
		if s.failJournal > 0 {
			s.failJournal--
			code = 503
			break
		}
		var sysID string
		fmt.Sscanf(query, "element_id=%32s", &sysID)
		list := s.notes[sysID]
		limit, _ := strconv.Atoi(r.URL.Query().Get("sysparm_limit"))
		var page []string
		for i := len(list) - 1; i >= 0 && len(page) < limit && strings.HasSuffix(query, "^element=work_notes^ORDERBYDESCsys_created_on"); i-- {
			v, _ := json.Marshal(list[i])
			page = append(page, `{"value":`+string(v)+`}`)
		}
		answer = `{"result":[` + strings.Join(page, ",") + `]}`
	case r.Method == "GET":
		for corr, id := range s.records {
			if strings.HasPrefix(query, "correlation_id="+corr+"^") {
				answer = `{"result":[{"sys_id":"` + id + `"}]}`
			}
		}
	case r.Method == "PATCH":
		var f map[string]string
		json.Unmarshal(b, &f)
		id := strings.TrimPrefix(r.URL.Path, "/api/now/table/incident/")
		s.states[id] = f["state"]
		if f["work_notes"] != "" {
			s.notes[id] = append(s.notes[id], f["work_notes"])
		}
		hang, s.hangUpdate = s.hangUpdate, false
	default:
		code = 400
	}
	s.mu.Unlock()
	if hang {
		<-r.Context().Done()
		return
	}
	w.WriteHeader(code)
	io.WriteString(w, answer)
}

// As for Jira's comments: one work note per notification however often it
// is delivered, a second for a new notification, and a journal that cannot
// be read fails the notification without updating the record.
func TestServiceNowWorkNoteOncePerNotification(t *testing.T) {
	in := SampleIncident()
	in.Transition, in.At = TransitionUpdated, in.OpenedAt.Add(time.Minute)
	const sysID = "0123456789abcdef0123456789abcdef"
	ss := &serviceNowServer{records: map[string]string{in.ID: sysID}, notes: map[string][]string{}, states: map[string]string{}}
	srv := httptest.NewServer(ss)
	defer srv.Close()
	cfg := testConfig()
	cfg.Timeout = 200 * time.Millisecond
	rec := &attempts{}
	cl := newTestClient(t, cfg, newFakeClock(), rec)
	sn := &ServiceNow{Receiver: "ops", APIURL: srv.URL}
	ctx := context.Background()
	notes := func() []string {
		ss.mu.Lock()
		defer ss.mu.Unlock()
		return slices.Clone(ss.notes[sysID])
	}

	ss.hangUpdate = true
	if err := sn.Notify(ctx, cl, "k1", in, ServiceNowRecord{}); err == nil || errs.IsPermanent(err) {
		t.Fatalf("an update whose answer was lost: %v, want a transient error", err)
	}
	for range 2 {
		if err := sn.Notify(ctx, cl, "k1", in, ServiceNowRecord{}); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(notes()); n != 1 {
		t.Fatalf("one notification delivered three times: %d work notes, want 1", n)
	}
	ack := in
	ack.Status, ack.Transition, ack.AcknowledgedAt, ack.At = StatusAcknowledged, TransitionAcknowledged, in.OpenedAt.Add(2*time.Minute), time.Time{}
	if err := sn.Notify(ctx, cl, "k10", ack, ServiceNowRecord{}); err != nil {
		t.Fatal(err)
	}
	if n := notes(); len(n) != 2 || ss.states[sysID] != "2" || !strings.HasSuffix(n[1], "\n\naiops-notification: k10") {
		t.Fatalf("a second notification: work notes %q, state %s; want 2 notes, state 2", n, ss.states[sysID])
	}

	ss.failJournal = 100
	before := len(rec.List())
	if err := sn.Notify(ctx, cl, "k2", in, ServiceNowRecord{}); err == nil || errs.IsPermanent(err) {
		t.Fatalf("a journal that cannot be read: %v, want a transient error", err)
	}
	if n, got := len(notes()), len(rec.List())-before; n != 2 || got != 1+cfg.Retry.MaxAttempts {
		t.Fatalf("a journal that cannot be read: %d work notes, %d attempts; want 2 notes, the search and %d reads", n, got, cfg.Retry.MaxAttempts)
	}
	ss.failJournal = 0
	if err := sn.Notify(ctx, cl, "k2", in, ServiceNowRecord{}); err != nil {
		t.Fatal(err)
	}
	if n := len(notes()); n != 3 {
		t.Fatalf("the failed notification again: %d work notes, want 3", n)
	}

	// An account that may not read the journal (it could update records
	// before the check existed) still updates them, unchecked.
	ss.denyJournal = true
	if err := sn.Notify(ctx, cl, "k3", ack, ServiceNowRecord{}); err != nil {
		t.Fatalf("a journal the account may not read: %v, want the update made", err)
	}
	if n := len(notes()); n != 4 {
		t.Fatalf("a journal the account may not read: %d work notes, want 4", n)
	}
}

// The client keeps MaxResponseBytes of an answer: a page of long notes cut
// in the middle of one is searched up to the cut. An answer that is not
// cut and not the JSON asked for is an error.
func TestNotesHoldMarker(t *testing.T) {
	long := strings.Repeat("log line\n", 4000)
	page := func(notes ...string) []byte {
		var els []string
		for _, n := range notes {
			v, _ := json.Marshal(n)
			els = append(els, `{"value":`+string(v)+`}`)
		}
		return []byte(`{"result":[` + strings.Join(els, ",") + `]}`)
	}
	cut := func(b []byte) []byte { return b[:min(len(b), MaxResponseBytes)] }
	for _, c := range []struct {
		name  string
		body  []byte
		found bool
		err   bool
	}{
		{"marker in a note", page("a", "text\n\naiops-notification: k1"), true, false},
		{"marker as a prefix only", page("aiops-notification: k10"), false, false},
		{"no notes", page(), false, false},
		{"cut after the marker's note", cut(page("x\naiops-notification: k1", long, long)), true, false},
		{"cut before the marker's note", cut(page(long, long, "aiops-notification: k1")), false, false},
		{"not JSON", []byte("<html>login</html>"), false, true},
		{"no result", []byte(`{"error":{"message":"no thing"}}`), false, true},
		{"result not an array", []byte(`{"result":{"value":"aiops-notification: k1"}}`), false, true},
		{"a broken note, not cut", []byte(`{"result":[{"value":"a"},{"value":`), false, true},
	} {
		found, err := notesHoldMarker(c.body, "result", "value", notificationMarker("k1"))
		if found != c.found || (err != nil) != c.err {
			t.Errorf("%s: found %v, error %v; want found %v, error %v", c.name, found, err, c.found, c.err)
		}
	}
}

// A ticket's comment (Jira) or work note (ServiceNow) on an
// acknowledgement or a resolution by hand says who gave it: the ticket
// is where the team looks, and "acknowledged" alone left them asking.
func TestTicketNoteSaysWhoAcknowledgedAndResolved(t *testing.T) {
	in := SampleIncident()
	in.Status, in.Transition, in.AcknowledgedAt, in.AcknowledgedBy = StatusAcknowledged, TransitionAcknowledged, in.OpenedAt.Add(time.Minute), "ana"
	if got := commentText(in); !strings.Contains(got, "Acknowledged by ana.") {
		t.Errorf("acknowledgement's note %q does not name ana", got)
	}
	in.Status, in.Transition, in.ResolvedAt, in.ResolvedBy = StatusResolved, TransitionResolved, in.OpenedAt.Add(time.Hour), "bo"
	if got := commentText(in); !strings.Contains(got, "Resolved by bo.") || strings.Contains(got, "ana") {
		t.Errorf("resolution's note %q: want bo named, not the acknowledgement again", got)
	}
	in.ResolvedBy = ""
	if got := commentText(in); strings.Contains(got, "Resolved by") {
		t.Errorf("a resolution by time alone: %q names somebody", got)
	}
}

// A Jira issue closed by resolve_transition says who resolved the
// incident by hand: a comment naming them comes before the transition
// (done, a retry finds nothing left to do). A resolution by time alone
// names nobody and only transitions, as before.
func TestJiraResolvedByHandCommentsWhoBeforeTheTransition(t *testing.T) {
	ctx := context.Background()
	in := SampleIncident()
	in.Status, in.Transition, in.ResolvedAt, in.ResolvedBy = StatusResolved, TransitionResolved, in.OpenedAt.Add(time.Hour), "bo"
	js := &jiraServer{issues: map[string]string{JiraLabel(in.ID): "OPS-7"}, done: map[string]bool{}}
	srv := httptest.NewServer(js)
	defer srv.Close()
	cl := newTestClient(t, testConfig(), newFakeClock(), &attempts{})
	j := &Jira{Receiver: "ops", APIURL: srv.URL + "/rest/api/2", ResolveTransition: "Done"}
	issue := JiraIssue{Project: "OPS", IssueType: "Bug", Summary: in.Title}
	if err := j.Notify(ctx, cl, "k", in, issue); err != nil {
		t.Fatal(err)
	}
	want := []string{"POST /rest/api/2/search", "GET /rest/api/2/issue/OPS-7/comment", "POST /rest/api/2/issue/OPS-7/comment",
		"GET /rest/api/2/issue/OPS-7/transitions", "POST /rest/api/2/issue/OPS-7/transitions"}
	if fmt.Sprint(js.calls) != fmt.Sprint(want) {
		t.Fatalf("jira requests\n%q\nwant\n%q", js.calls, want)
	}
	if !strings.Contains(js.bodies[2], "Resolved by bo.") || !js.done["OPS-7"] {
		t.Fatalf("jira comment %s, issue done %v; want bo named, then the issue done", js.bodies[2], js.done["OPS-7"])
	}

	js = &jiraServer{issues: map[string]string{JiraLabel(in.ID): "OPS-7"}, done: map[string]bool{}}
	srv2 := httptest.NewServer(js)
	defer srv2.Close()
	j.APIURL = srv2.URL + "/rest/api/2"
	in.ResolvedBy = ""
	if err := j.Notify(ctx, cl, "k2", in, issue); err != nil {
		t.Fatal(err)
	}
	want = []string{"POST /rest/api/2/search", "GET /rest/api/2/issue/OPS-7/transitions", "POST /rest/api/2/issue/OPS-7/transitions"}
	if fmt.Sprint(js.calls) != fmt.Sprint(want) {
		t.Fatalf("resolved by time alone: jira requests\n%q\nwant\n%q", js.calls, want)
	}
}

// Jira's API v2 renders a description and a comment as wiki markup: what
// producers named (an alert's name, in the title and the reasons; who
// acknowledged) shows as the text it is, not as a link, an image or a
// macro, as Slack's mrkdwn is escaped. API v3's document holds text
// nodes, and ServiceNow plain text: both keep it as it came.
func TestJiraKeepsProducerTextOutOfWikiMarkup(t *testing.T) {
	const hostile = `[Reset password|https://evil.example/login] !https://evil.example/px.png! {color:red}x{color} C:\[x]`
	const escaped = `\[Reset password\|https://evil.example/login\] \!https://evil.example/px.png\! \{color:red\}x\{color\} C:&#92;\[x\]`
	in := SampleIncident()
	in.Summary = hostile
	in.RootCauses[0].Reasons = []string{"earliest signal (" + hostile + ")"}
	in.Status, in.Transition, in.AcknowledgedAt, in.AcknowledgedBy = StatusAcknowledged, TransitionAcknowledged, in.OpenedAt.Add(time.Minute), hostile

	v2 := &Jira{Receiver: "ops", APIURL: "http://jira.example/rest/api/2"}
	desc := v2.DescriptionText(in)
	if strings.Count(desc, escaped) != 2 || strings.Contains(strings.ReplaceAll(desc, escaped, ""), "evil") {
		t.Errorf("API v2 description\n%s\nwant the summary and the reason as %s", desc, escaped)
	}
	v3 := &Jira{Receiver: "ops", APIURL: "http://jira.example/rest/api/3"}
	if got := v3.DescriptionText(in); got != DescriptionText(in) || strings.Count(got, hostile) != 2 {
		t.Errorf("API v3 description\n%s\nwant it as written", got)
	}

	js := &jiraServer{issues: map[string]string{JiraLabel(in.ID): "OPS-7"}, done: map[string]bool{}}
	srv := httptest.NewServer(js)
	defer srv.Close()
	cl := newTestClient(t, testConfig(), newFakeClock(), &attempts{})
	v2.APIURL = srv.URL + "/rest/api/2"
	if err := v2.Notify(context.Background(), cl, "k", in, JiraIssue{Project: "OPS", IssueType: "Bug", Summary: in.Title}); err != nil {
		t.Fatal(err)
	}
	var comment struct{ Body string }
	if len(js.bodies) != 3 || json.Unmarshal([]byte(js.bodies[2]), &comment) != nil ||
		strings.Count(comment.Body, escaped) != 2 || strings.Contains(strings.ReplaceAll(comment.Body, escaped, ""), "evil") {
		t.Errorf("jira requests %q, bodies %q; want a comment with who acknowledged and the summary as %s", js.calls, js.bodies, escaped)
	}
	if got := commentText(in); strings.Count(got, hostile) != 2 {
		t.Errorf("ServiceNow's work note %q: want the text as written", got)
	}
}
