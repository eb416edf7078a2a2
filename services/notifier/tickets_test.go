package notifier

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/correlate"
	"github.com/aiops-dev/aiops/pkg/errs"
	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/pkg/notify/webhook"
)

// Jira's search index lags a few seconds behind a create. What a notifier
// learnt of an incident's issue meanwhile (a create that got no answer,
// the issue it made last) is kept in the state bucket, so a notifier
// restarted, or a standby taking over, within that lag neither creates a
// second issue nor loses the update: the event of a create whose answer
// was lost comes again to a new notifier and waits for the search (the
// issue was made), and the acknowledgement of an incident whose issue was
// just made comments on that issue.
func TestJiraIssueKnownAcrossARestart(t *testing.T) {
	r := newJSRig(t, zerolog.ErrorLevel)
	jira := &fakeJira{issues: map[string]*fakeIssue{}}
	lagging, lost := true, 0
	api := newFakeAPI(t, func(c call) answer {
		switch {
		case lagging && c.Method == "POST" && c.Path == "/rest/api/2/search":
			return answer{body: `{"issues":[]}`} // the index does not show the new issue yet
		case lost > 0 && c.Method == "POST" && c.Path == "/rest/api/2/issue":
			lost--
			jira.handle(c) // made; its answer is lost on the way
			return answer{code: 504}
		}
		return jira.handle(c)
	})
	dir := t.TempDir()
	routes := filepath.Join(dir, "alertmanager.yml")
	if err := os.WriteFile(routes, []byte(`
route: {receiver: tickets, group_wait: 0s}
receivers:
- name: tickets
  jira_configs:
  - api_url: `+api.srv.URL+`/rest/api/2
    project: OPS
    issue_type: Incident
`), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := Config{Routes: routes}
	// a notifier (re)started on the same JetStream: nothing in memory
	restarted := func() *Processor {
		t.Helper()
		svc, err := New(context.Background(), r.js, cfg, r.log)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(svc.silences.Close)
		svc.proc.holds = nil // Notify called directly, as by a term of the lease
		return svc.proc
	}
	ctx := context.Background()

	lost = 1
	unanswered := incident(t, "search")
	if err := restarted().Notify(ctx, unanswered); err == nil || errs.IsPermanent(err) {
		t.Fatalf("a create answered 504: %v, want a transient error", err)
	}
	err := restarted().Notify(ctx, unanswered)
	if !errors.Is(err, webhook.ErrJiraCreateSettling) || len(jira.issues) != 1 {
		t.Fatalf("the event again, to a restarted notifier, while the search lags: %v, %d issues; want ErrJiraCreateSettling and the one issue made",
			err, len(jira.issues))
	}

	opened, acked, _ := lifecycle(t)
	if err := restarted().Notify(ctx, opened); err != nil {
		t.Fatal(err)
	}
	if err := restarted().Notify(ctx, acked); err != nil {
		t.Fatal(err)
	}
	if len(jira.issues) != 2 || len(jira.issues["OPS-2"].comments) != 1 {
		t.Fatalf("issues %v: want OPS-2 made on open and commented on when acknowledged, after a restart, while the search lags", jira.issues)
	}
}

// The state bucket only spares a second Jira issue within the seconds
// Jira's search lags behind a create; a bucket that cannot be read (its
// only replica's server down, say) must not hold back Jira notifications,
// which would be dead-lettered after max_deliver: a notifier restarted
// while the bucket is gone still comments on the issue the search finds
// and opens the issue of a new incident.
func TestJiraNotifiedWhileStateBucketUnreadable(t *testing.T) {
	r := newJSRig(t, zerolog.ErrorLevel)
	jira := &fakeJira{issues: map[string]*fakeIssue{}}
	api := newFakeAPI(t, jira.handle)
	routes := jiraRoutes(t, api.srv.URL)
	cfg := Config{Routes: routes}
	ctx := context.Background()
	notifier := func() *Processor {
		t.Helper()
		svc, err := New(ctx, r.js, cfg, r.log)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(svc.silences.Close)
		svc.proc.holds = nil // Notify called directly, as by a term of the lease
		return svc.proc
	}
	opened, acked, _ := lifecycle(t)
	if err := notifier().Notify(ctx, opened); err != nil {
		t.Fatal(err)
	}
	restarted := notifier()
	if err := r.js.DeleteKeyValue(ctx, DefaultConfig().State.Bucket); err != nil {
		t.Fatal(err)
	}
	if err := restarted.Notify(ctx, acked); err != nil {
		t.Fatalf("the acknowledgement while the state bucket cannot be read: %v, want it commented", err)
	}
	if err := restarted.Notify(ctx, incident(t, "search")); err != nil {
		t.Fatalf("a new incident while the state bucket cannot be read: %v, want its issue made", err)
	}
	if len(jira.issues) != 2 || len(jira.issues["OPS-1"].comments) != 1 {
		t.Fatalf("issues %v: want OPS-1 commented on when acknowledged, and OPS-2 made", jira.issues)
	}
}

// A Jira issue's default description is its Jira's: on API v2, which
// renders it as wiki markup, an alert's name (in the title and the root
// cause's reasons) shows as the text it is, not as a link.
func TestJiraDescriptionKeepsAlertNamesOutOfWikiMarkup(t *testing.T) {
	r := newJSRig(t, zerolog.ErrorLevel)
	jira := &fakeJira{issues: map[string]*fakeIssue{}}
	api := newFakeAPI(t, jira.handle)
	routes := jiraRoutes(t, api.srv.URL)
	ctx := context.Background()
	svc, err := New(ctx, r.js, Config{Routes: routes}, r.log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.silences.Close)
	svc.proc.holds = nil // Notify called directly, as by a term of the lease

	const name, escaped = `[Reset password|https://evil.example/login]`, `\[Reset password\|https://evil.example/login\]`
	c, err := correlate.New(correlate.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ups := c.Observe(correlate.Signal{Kind: correlate.SignalAlert, Fingerprint: "fp-1", Service: "ledger", Name: name,
		Severity: event.SeverityCritical, Time: t0, EventID: event.DerivedID(t0, "ledger")})
	opened, err := correlate.Envelope(ups[0], t0)
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.proc.Notify(ctx, opened); err != nil {
		t.Fatal(err)
	}
	var created struct{ Fields struct{ Description string } }
	for _, c := range api.got() {
		if c.Method == "POST" && c.Path == "/rest/api/2/issue" {
			json.Unmarshal(c.Body, &created)
		}
	}
	desc := created.Fields.Description
	if !strings.Contains(desc, escaped) || strings.Contains(strings.ReplaceAll(desc, escaped, ""), "evil") {
		t.Errorf("the issue's description\n%s\nwant the alert's name as %s", desc, escaped)
	}
}

// jiraRoutes writes a routes file sending every incident at once to the
// Jira API v2 at apiURL (project OPS) and returns its path.
func jiraRoutes(t *testing.T, apiURL string) string {
	t.Helper()
	routes := filepath.Join(t.TempDir(), "alertmanager.yml")
	if err := os.WriteFile(routes, []byte(`
route: {receiver: tickets, group_wait: 0s}
receivers:
- name: tickets
  jira_configs:
  - api_url: `+apiURL+`/rest/api/2
    project: OPS
    issue_type: Incident
`), 0o600); err != nil {
		t.Fatal(err)
	}
	return routes
}
