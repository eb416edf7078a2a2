package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aiops-dev/aiops/pkg/errs"
)

// An unsafe request (a ticket's create) that got no answer is not retried:
// the receiver may have acted on it. A 503 is retried as for any request,
// and a safe request is retried after a timeout.
func TestUnsafeRequests(t *testing.T) {
	for _, c := range []struct {
		name     string
		unsafe   bool
		first    string // hang or 503
		attempts int
		ok       bool
	}{
		{"unsafe after a timeout", true, "hang", 1, false},
		{"safe after a timeout", false, "hang", 2, true},
		{"unsafe after a 503", true, "503", 2, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			clock := newFakeClock()
			tr := newTestReceiver(t, clock, nil, func(n int, w http.ResponseWriter, r *http.Request) {
				if n == 1 && c.first == "hang" {
					<-r.Context().Done()
					return
				}
				if n == 1 {
					w.WriteHeader(503)
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
			_, err := cl.Deliver(context.Background(), req)
			if got := len(rec.List()); got != c.attempts || (err == nil) != c.ok {
				t.Fatalf("%d attempts, error %v; want %d attempts, success %v", got, err, c.attempts, c.ok)
			}
			if err != nil && (errs.IsPermanent(err) || !strings.Contains(err.Error(), "not idempotent")) {
				t.Fatalf("error %v: want a transient one that says why it was not retried", err)
			}
		})
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

// jiraServer is a Jira API with one issue per label; create (and a
// comment) can be made to hang once after it made the issue (the comment):
// the answer lost on the way back. failComments answers that many reads of
// the comments 503.
type jiraServer struct {
	mu           sync.Mutex
	issues       map[string]string   // label → key
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
		for label, key := range j.issues {
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
		key := fmt.Sprintf("OPS-%d", len(j.issues)+1)
		for _, l := range is.Fields.Labels {
			if strings.HasPrefix(l, "aiops-") {
				j.issues[l] = key
			}
		}
		code, answer, hang = 201, fmt.Sprintf(`{"key":%q}`, key), j.hangCreate
		j.hangCreate = false
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
