package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aiops-dev/aiops/pkg/errs"
)

// Deliverer sends one request with retries: Client.Deliver. The ticketing
// integrations (Jira, ServiceNow) take one so that every step of theirs
// goes through the same retries, circuit breaker, rate limit and records
// as a webhook.
type Deliverer interface {
	Deliver(ctx context.Context, req Request) (Result, error)
}

// ErrUnexpectedResponse (permanent) is a 2xx whose body is not what the
// API documents (no issue key after a create, say).
var ErrUnexpectedResponse = errors.New("unexpected response")

// Jira limits (Alertmanager's too).
const (
	jiraSummaryMax     = 255
	jiraDescriptionMax = 32767
	// jiraKeysMax bounds the memos a Jira keeps in its process (see
	// JiraMemo).
	jiraKeysMax = 10_000
	// notesChecked is how many of a ticket's newest comments (work notes)
	// are searched for a notification's marker before one is written: a
	// redelivery comes seconds to minutes after the first delivery, so
	// its note is among the newest unless people wrote that many since.
	notesChecked = 50
)

// JiraIssue is what a Jira issue of an incident says, rendered by the
// caller (jira_configs' templates). The summary is sent on one line (Jira
// refuses a line break there): its lines trimmed and joined by a space,
// the incident's title when that leaves nothing.
type JiraIssue struct {
	Project, IssueType, Summary, Description, Priority string
	Labels                                             []string
}

// JiraMemo is what a Jira integration knows of an incident's issue that
// Jira's search may not show yet: its index lags behind a create by up to
// a few seconds.
type JiraMemo struct {
	// Issue is the key of the issue made last for the incident: an update
	// within the lag must neither open a second issue nor go to the older
	// issue the search still finds (the done one a reopening replaced).
	Issue string `json:"issue,omitempty"`
	// Unanswered is when a create of the incident's issue got no answer
	// (it may have been made): for JiraCreateSettle after it, a search
	// that finds nothing does not create another.
	Unanswered time.Time `json:"unanswered,omitzero"`
}

// JiraMemory keeps JiraMemos by incident id. Without one a Jira keeps
// them in its process; the notifier keeps them in its state bucket, so
// that a notifier restarted, or a standby taking the lease, within the
// index's lag knows them too, and makes no second issue.
type JiraMemory interface {
	// Recall is the incident's memo (zero: none). An error fails the
	// notification, which comes again: without the memo a create could
	// make a second issue.
	Recall(ctx context.Context, incidentID string) (JiraMemo, error)
	// Keep replaces the incident's memo. A memory that cannot keep it
	// durably says so itself and keeps it in the process: the request it
	// records was made.
	Keep(ctx context.Context, incidentID string, m JiraMemo)
}

// localJiraMemory is a JiraMemory in the process, at most jiraKeysMax
// memos (all dropped past that: a memo matters only seconds).
type localJiraMemory struct {
	mu    sync.Mutex
	memos map[string]JiraMemo
}

func (l *localJiraMemory) Recall(_ context.Context, id string) (JiraMemo, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.memos[id], nil
}

func (l *localJiraMemory) Keep(_ context.Context, id string, m JiraMemo) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.memos == nil || len(l.memos) >= jiraKeysMax {
		l.memos = map[string]JiraMemo{}
	}
	if m == (JiraMemo{}) {
		delete(l.memos, id)
		return
	}
	l.memos[id] = m
}

// NewLocalJiraMemory is a JiraMemory in the process: what a Jira without
// Memory uses, and a fallback for a durable one.
func NewLocalJiraMemory() JiraMemory { return &localJiraMemory{} }

// Jira keeps one Jira issue per incident through the REST API (v2, or v3
// when APIURL ends in /3): it creates the issue when the incident opens,
// comments when it is updated or acknowledged, applies ResolveTransition
// when it resolves (a merged incident's issue is commented "Merged into
// incident <id>" first) and ReopenTransition when it reopens. The issue carries
// the label JiraLabel(incident id), and every notification first finds the
// issue with a JQL search on that label, so a restarted notifier (or
// another instance) continues the same issue instead of opening a second.
type Jira struct {
	// Receiver names the receiver (records); Integration the entry of it
	// (breaker, rate limit: Request.Integration).
	Receiver, Integration string
	// APIURL is the REST API's base: https://jira.example.com/rest/api/2.
	APIURL string
	// Transport sends the requests (http_config's TLS and proxy); nil:
	// the client's.
	Transport http.RoundTripper
	// Redirects is http_config.follow_redirects; zero: the client's.
	Redirects RedirectPolicy
	// Header carries the authentication (Authorization).
	Header http.Header
	// ResolveTransition and ReopenTransition name workflow transitions;
	// empty: a comment only.
	ResolveTransition, ReopenTransition string

	// Memory keeps what the search may not show yet (JiraMemo); nil: a
	// memory in this process, lost at a restart.
	Memory JiraMemory

	mu    sync.Mutex
	local *localJiraMemory // Memory's stand-in when nil
	// now is the clock of JiraMemo.Unanswered (nil: time.Now).
	now func() time.Time
}

// JiraCreateSettle is how long after a create that got no answer (a
// gateway's 504, a timeout) the incident's next notification waits for
// Jira's search to show the issue, if it was made, before it creates one:
// longer than the index's lag (a few seconds), shorter than the
// notifier's redeliveries last (1, 2, 4, 8 s apart), so that one of them
// still creates the issue if it was not made.
const JiraCreateSettle = 10 * time.Second

// ErrJiraCreateSettling is the transient error of a notification that
// waits for JiraCreateSettle.
var ErrJiraCreateSettling = errors.New("jira: an earlier create of this incident's issue got no answer; waiting for the search to show it before creating another")

func (j *Jira) clock() time.Time {
	if j.now != nil {
		return j.now()
	}
	return time.Now()
}

func (j *Jira) memory() JiraMemory {
	if j.Memory != nil {
		return j.Memory
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.local == nil {
		j.local = &localJiraMemory{}
	}
	return j.local
}

// settling tells whether a create of the incident (memo m) got no answer
// less than JiraCreateSettle ago.
func (j *Jira) settling(m JiraMemo) bool {
	return !m.Unanswered.IsZero() && j.clock().Sub(m.Unanswered) < JiraCreateSettle
}

// JiraLabel is the label that names an incident's issue.
func JiraLabel(incidentID string) string { return "aiops-" + incidentID }

// jiraKeyRE is a Jira issue key, the only thing of a response that goes
// into a URL path.
var jiraKeyRE = regexp.MustCompile(`^[A-Z][A-Z0-9_]*-[0-9]+$`)

// Notify brings the incident's issue up to date with in; key is the
// notification's idempotency key, from which every step's is derived. A
// resolved incident without an issue creates none. Errors are permanent
// when trying again cannot help (a 4xx, a transition the workflow does not
// have).
func (j *Jira) Notify(ctx context.Context, d Deliverer, key string, in Incident, issue JiraIssue) error {
	if err := in.Validate(); err != nil {
		return errs.Permanent(err)
	}
	if issue.Project == "" || issue.IssueType == "" {
		return errs.Permanent(fmt.Errorf("%w: jira: project and issue_type are required", ErrInvalidRequest))
	}
	memo, err := j.memory().Recall(ctx, in.ID)
	if err != nil {
		return fmt.Errorf("jira: what is known of incident %s's issue: %w", in.ID, err)
	}
	found, done, err := j.search(ctx, d, key, in.ID, issue.Project)
	if err != nil {
		return err
	}
	if made := memo.Issue; made != "" && made != found && newerIssue(made, found) {
		// Jira's search index lags behind a create by a few seconds: it
		// may not have the issue made last yet, and answer nothing, or
		// the done issue a reopening replaced (an update would then make
		// a third issue, a resolve would leave the new one open). The
		// issue made last is the incident's; its status is read.
		if found, done, err = j.status(ctx, d, key, in.ID, memo, found, done); err != nil {
			return err
		}
	}
	switch {
	case in.Status == StatusResolved:
		if found == "" || done {
			return nil
		}
		if j.ResolveTransition == "" {
			return j.comment(ctx, d, key, found, in)
		}
		// A merged incident's issue says where its failure went before it
		// closes, and one resolved by hand who resolved it: once done, a
		// retry of this notification finds nothing left to do, so the
		// comment comes first.
		if in.MergedInto != "" || in.ResolvedBy != "" {
			if err := j.comment(ctx, d, key, found, in); err != nil {
				return err
			}
		}
		return j.transition(ctx, d, key, found, j.ResolveTransition)
	case found == "" || done && j.ReopenTransition == "":
		if j.settling(memo) {
			return ErrJiraCreateSettling
		}
		return j.create(ctx, d, key, in, issue, memo)
	case done:
		if err := j.transition(ctx, d, key, found, j.ReopenTransition); err != nil {
			return err
		}
		return j.comment(ctx, d, key, found, in)
	case in.Transition == TransitionOpened:
		return nil // created already: this is a redelivery
	}
	return j.comment(ctx, d, key, found, in)
}

// newerIssue tells whether issue key a was made after b (none: ""): Jira
// numbers a project's issues in the order they are made. A remembered
// issue older than the one found gives way to it (another notifier made
// the newer one while this one stood by); keys of different projects (a
// renamed project) cannot be compared, and the remembered one is kept.
func newerIssue(a, b string) bool {
	pa, na, _ := strings.Cut(a, "-")
	pb, nb, ok := strings.Cut(b, "-")
	if !ok || pa != pb {
		return true
	}
	x, errA := strconv.ParseUint(na, 10, 64)
	y, errB := strconv.ParseUint(nb, 10, 64)
	return errA != nil || errB != nil || x > y
}

// status reads whether the issue made last for the incident (memo.Issue)
// is done, to use it instead of what the search found (foundKey,
// foundDone). An issue that is not there any more (deleted, or no longer
// visible to the account: 404) is forgotten, and the search's answer
// stands.
func (j *Jira) status(ctx context.Context, d Deliverer, key, id string, memo JiraMemo, foundKey string, foundDone bool) (string, bool, error) {
	issueKey := memo.Issue
	q := url.Values{"fields": {"status"}}
	body, err := j.do(ctx, d, key, "status", http.MethodGet, j.url("issue", issueKey)+"?"+q.Encode(), nil)
	var se *StatusError
	if errors.As(err, &se) && se.StatusCode == http.StatusNotFound {
		memo.Issue = ""
		j.memory().Keep(ctx, id, memo)
		return foundKey, foundDone, nil
	}
	if err != nil {
		return "", false, err
	}
	var res jiraStatus
	if err := json.Unmarshal(body, &res); err != nil {
		return "", false, errs.Permanent(fmt.Errorf("jira issue %s: %w: %v", issueKey, ErrUnexpectedResponse, err))
	}
	return issueKey, res.done(), nil
}

// jiraStatus is the status of an issue as the API answers it with
// fields=status.
type jiraStatus struct {
	Fields struct {
		Status struct {
			StatusCategory struct {
				Key string `json:"key"`
			} `json:"statusCategory"`
		} `json:"status"`
	} `json:"fields"`
}

// done tells whether the status is in the done category.
func (s jiraStatus) done() bool { return s.Fields.Status.StatusCategory.Key == "done" }

// v3 tells whether the API takes Atlassian Document Format.
func (j *Jira) v3() bool { return strings.HasSuffix(strings.TrimSuffix(j.APIURL, "/"), "/3") }

// jiraWiki keeps text out of Jira's wiki markup, which API v2 renders in
// a description and a comment: the characters that open a link or a
// mention ([), an image (!), a macro ({: color, panel, html) or a table
// cell (|) are escaped with a backslash, and a backslash becomes an
// entity, since two are a line break and one would escape what follows.
// An alert's name is the producer's: as markup it could show a phishing
// link or load an image from anywhere in every reader's browser.
var jiraWiki = strings.NewReplacer(`\`, "&#92;", "[", `\[`, "]", `\]`, "{", `\{`, "}", `\}`, "!", `\!`, "|", `\|`)

// plain is s as text for this API version: escaped for v2's wiki markup,
// as it is for v3, whose document holds text nodes.
func (j *Jira) plain(s string) string {
	if j.v3() {
		return s
	}
	return jiraWiki.Replace(s)
}

// DescriptionText is the default description of this Jira's issues:
// DescriptionText, the incident's own text kept out of the wiki markup
// of API v2.
func (j *Jira) DescriptionText(in Incident) string { return descriptionText(in, j.plain) }

func (j *Jira) url(path ...string) string {
	return strings.TrimSuffix(j.APIURL, "/") + "/" + strings.Join(path, "/")
}

// text is paragraphs as the API version wants them: one string, blank
// lines between them, or an Atlassian Document Format document.
func (j *Jira) text(paragraphs ...string) any {
	if !j.v3() {
		return strings.Join(paragraphs, "\n\n")
	}
	content := make([]any, len(paragraphs))
	for i, p := range paragraphs {
		content[i] = map[string]any{"type": "paragraph", "content": []any{map[string]any{"type": "text", "text": p}}}
	}
	return map[string]any{"type": "doc", "version": 1, "content": content}
}

func (j *Jira) do(ctx context.Context, d Deliverer, key, step, method, url string, body any) ([]byte, error) {
	return j.send(ctx, d, Request{IdempotencyKey: key + "-" + step, Method: method, URL: url}, step, body)
}

// send completes req (receiver, body, headers) and delivers it.
func (j *Jira) send(ctx context.Context, d Deliverer, req Request, step string, body any) ([]byte, error) {
	var b []byte
	if body != nil {
		var err error
		if b, err = marshal(body); err != nil {
			return nil, errs.Permanent(fmt.Errorf("webhook: jira %s: %w", step, err))
		}
	}
	req.Transport, req.Redirects = j.Transport, j.Redirects
	h := j.Header.Clone()
	if h == nil {
		h = http.Header{}
	}
	h.Set("Accept", "application/json")
	req.Receiver, req.Integration, req.Body, req.Header = j.Receiver, j.Integration, b, h
	res, err := d.Deliver(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("jira %s: %w", step, err)
	}
	return res.Body, nil
}

// jqlString quotes s for JQL.
func jqlString(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// search finds the newest issue labelled for the incident: its key and
// whether its status is in the done category.
func (j *Jira) search(ctx context.Context, d Deliverer, key, id, project string) (string, bool, error) {
	jql := fmt.Sprintf("project = %s AND labels = %s ORDER BY created DESC", jqlString(project), jqlString(JiraLabel(id)))
	// Jira Cloud retired POST /search for /search/jql; Data Center has
	// only the former (Alertmanager chooses the same way).
	path := "search"
	if u, err := url.Parse(j.APIURL); err == nil && strings.HasSuffix(u.Hostname(), ".atlassian.net") {
		path = "search/jql"
	}
	body, err := j.do(ctx, d, key, "search", http.MethodPost, j.url(path), map[string]any{
		"jql": jql, "maxResults": 1, "fields": []string{"status"},
	})
	if err != nil {
		return "", false, err
	}
	var res struct {
		Issues []struct {
			Key string `json:"key"`
			jiraStatus
		} `json:"issues"`
	}
	if err := json.Unmarshal(body, &res); err != nil {
		return "", false, errs.Permanent(fmt.Errorf("jira search: %w: %v", ErrUnexpectedResponse, err))
	}
	if len(res.Issues) == 0 {
		return "", false, nil
	}
	is := res.Issues[0]
	if !jiraKeyRE.MatchString(is.Key) {
		return "", false, errs.Permanent(fmt.Errorf("jira search: %w: issue key %q", ErrUnexpectedResponse, cut(is.Key, 40)))
	}
	return is.Key, is.done(), nil
}

func (j *Jira) create(ctx context.Context, d Deliverer, key string, in Incident, issue JiraIssue, memo JiraMemo) error {
	labels := append(slices.Clone(issue.Labels), JiraLabel(in.ID))
	slices.Sort(labels)
	labels = slices.Compact(labels)
	fields := map[string]any{
		"project":   map[string]string{"key": issue.Project},
		"issuetype": map[string]string{"name": issue.IssueType},
		"summary":   cut(oneLine(issue.Summary, in.Title), jiraSummaryMax),
		"labels":    labels,
	}
	if issue.Description != "" {
		fields["description"] = j.text(cut(issue.Description, jiraDescriptionMax))
	}
	if issue.Priority != "" {
		fields["priority"] = map[string]string{"name": issue.Priority}
	}
	// A create that got no answer is not retried: the next notification
	// searches first and finds the issue if it was made.
	body, err := j.send(ctx, d, Request{IdempotencyKey: key + "-create", Method: http.MethodPost, URL: j.url("issue"), Unsafe: true},
		"create", map[string]any{"fields": fields})
	if err != nil {
		if errors.Is(err, ErrMayBeApplied) { // it may have been made
			memo.Unanswered = j.clock()
			j.memory().Keep(ctx, in.ID, memo)
		}
		return err
	}
	var res struct {
		Key string `json:"key"`
	}
	if err := json.Unmarshal(body, &res); err != nil || !jiraKeyRE.MatchString(res.Key) {
		return errs.Permanent(fmt.Errorf("jira create: %w: no issue key", ErrUnexpectedResponse))
	}
	j.memory().Keep(ctx, in.ID, JiraMemo{Issue: res.Key})
	return nil
}

// oneLine is s as Jira takes a summary: its lines joined by a space,
// each trimmed, blank ones dropped (Jira refuses a summary with a line
// break: 400); def the same way when that leaves nothing.
func oneLine(s, def string) string {
	var lines []string
	for l := range strings.Lines(strings.ReplaceAll(s, "\r", "\n")) {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) == 0 && def != "" {
		return oneLine(def, "")
	}
	return strings.Join(lines, " ")
}

// comment adds the incident's comment to the issue, ending in the
// notification's marker, unless one of the issue's newest comments carries
// that marker already: the notifier may have crashed after the post and
// before acking the event, or the post's answer may have been lost. The
// post is Unsafe so that the client never repeats it blindly; a lost
// answer fails the notification, whose redelivery looks again.
func (j *Jira) comment(ctx context.Context, d Deliverer, key, issueKey string, in Incident) error {
	marker := notificationMarker(key)
	q := url.Values{"orderBy": {"-created"}, "maxResults": {strconv.Itoa(notesChecked)}}
	body, err := j.do(ctx, d, key, "comments", http.MethodGet, j.url("issue", issueKey, "comment")+"?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	found, err := notesHoldMarker(body, "comments", "body", marker)
	if err != nil {
		return errs.Permanent(fmt.Errorf("jira comments: %w: %v", ErrUnexpectedResponse, err))
	}
	if found {
		return nil
	}
	_, err = j.send(ctx, d, Request{IdempotencyKey: key + "-comment", Method: http.MethodPost, URL: j.url("issue", issueKey, "comment"), Unsafe: true},
		"comment", map[string]any{"body": j.text(noteText(in, j.plain), marker)})
	return err
}

// notificationMarker is the last line of every Jira comment and ServiceNow
// work note aiops writes: the notification's idempotency key, the same on
// every redelivery, by which a redelivered notification finds the note it
// wrote before.
func notificationMarker(key string) string { return "aiops-notification: " + key }

// notesHoldMarker tells whether one of the notes in the array field of a
// JSON object (Jira's comments, ServiceNow's result) has marker as a line
// of a string in its noteField (Jira's body, plain or Atlassian Document
// Format; ServiceNow's value). The client keeps at most MaxResponseBytes of
// an answer, so a page of long notes may end in the middle of one: the
// notes before it are searched, the newest ones since the page is newest
// first.
func notesHoldMarker(body []byte, field, noteField, marker string) (bool, error) {
	truncated := len(body) >= MaxResponseBytes
	dec := json.NewDecoder(bytes.NewReader(body))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return false, errors.New("not a JSON object")
	}
	for dec.More() {
		name, err := dec.Token()
		if err != nil {
			return false, err
		}
		if name != field {
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return false, err
			}
			continue
		}
		if t, err := dec.Token(); err != nil || t != json.Delim('[') {
			return false, fmt.Errorf("%s is not an array", field)
		}
		for dec.More() {
			var note map[string]any
			if err := dec.Decode(&note); err != nil {
				if truncated {
					return false, nil
				}
				return false, fmt.Errorf("%s: %v", field, err)
			}
			if holdsLine(note[noteField], marker) {
				return true, nil
			}
		}
		return false, nil
	}
	return false, fmt.Errorf("no %s", field)
}

// holdsLine tells whether a string in v (a string, or the strings within
// decoded JSON) has line as one of its lines, spaces around it aside.
func holdsLine(v any, line string) bool {
	switch v := v.(type) {
	case string:
		for l := range strings.Lines(v) {
			if strings.TrimSpace(l) == line {
				return true
			}
		}
	case []any:
		for _, e := range v {
			if holdsLine(e, line) {
				return true
			}
		}
	case map[string]any:
		for _, e := range v {
			if holdsLine(e, line) {
				return true
			}
		}
	}
	return false
}

// transition applies the transition of that name (as Jira's workflow
// names it, case aside).
func (j *Jira) transition(ctx context.Context, d Deliverer, key, issueKey, name string) error {
	body, err := j.do(ctx, d, key, "transitions", http.MethodGet, j.url("issue", issueKey, "transitions"), nil)
	if err != nil {
		return err
	}
	var res struct {
		Transitions []struct {
			ID   string `json:"id"`
			Name string `json:"name"`
		} `json:"transitions"`
	}
	if err := json.Unmarshal(body, &res); err != nil {
		return errs.Permanent(fmt.Errorf("jira transitions: %w: %v", ErrUnexpectedResponse, err))
	}
	for _, t := range res.Transitions {
		if strings.EqualFold(t.Name, name) {
			_, err := j.send(ctx, d, Request{IdempotencyKey: key + "-transition", Method: http.MethodPost, URL: j.url("issue", issueKey, "transitions"), Unsafe: true},
				"transition", map[string]any{"transition": map[string]string{"id": t.ID}})
			return err
		}
	}
	return errs.Permanent(fmt.Errorf("jira: issue %s has no transition %q now (it has %d others)", issueKey, name, len(res.Transitions)))
}

// commentText says what happened to an incident, for a comment or a work
// note.
func commentText(in Incident) string { return noteText(in, asWritten) }

// noteText is commentText with what people and producers wrote passed
// through plain (a Jira's, for its wiki markup).
func noteText(in Incident, plain func(string) string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "aiops: incident %s %s (status %s) at %s.", in.ID, in.Transition, in.Status, utc(in.Time()).Format("2006-01-02 15:04:05 UTC"))
	if in.MergedInto != "" {
		fmt.Fprintf(&b, " Merged into incident %s: its failure goes on there.", in.MergedInto)
	}
	switch {
	case in.Transition == TransitionAcknowledged && in.AcknowledgedBy != "":
		fmt.Fprintf(&b, " Acknowledged by %s.", plain(in.AcknowledgedBy))
	case in.Transition == TransitionResolved && in.ResolvedBy != "":
		fmt.Fprintf(&b, " Resolved by %s.", plain(in.ResolvedBy))
	}
	if in.Assignee != "" {
		fmt.Fprintf(&b, " Assignee: %s.", plain(in.Assignee))
	}
	if n := in.memberCount(); n > 0 {
		fmt.Fprintf(&b, " Members: %d.", n)
	}
	if in.Summary != "" {
		b.WriteString("\n" + plain(in.Summary))
	}
	return b.String()
}

func asWritten(s string) string { return s }

// DescriptionText is the default description of a ticket: the summary, the
// root causes, the changes and the links.
func DescriptionText(in Incident) string { return descriptionText(in, asWritten) }

// descriptionText is DescriptionText with the incident's own text (not
// its id, its links, its runbook) passed through plain.
func descriptionText(in Incident, plain func(string) string) string {
	var b strings.Builder
	if in.Summary != "" {
		b.WriteString(plain(in.Summary) + "\n\n")
	}
	fmt.Fprintf(&b, "Incident %s, %s since %s.", in.ID, in.Status, utc(in.OpenedAt).Format("2006-01-02 15:04:05 UTC"))
	if in.Service != "" {
		fmt.Fprintf(&b, " Service: %s.", plain(in.Service))
	}
	if in.Severity != "" {
		fmt.Fprintf(&b, " Severity: %s.", plain(string(in.Severity)))
	}
	for i, rc := range in.RootCauses {
		if i == 0 {
			b.WriteString("\n\nRoot causes:")
		}
		fmt.Fprintf(&b, "\n- %s (%.2f): %s", plain(rc.Service), rc.Score, plain(strings.Join(rc.Reasons, "; ")))
	}
	for i, c := range in.Changes {
		if i == 0 {
			b.WriteString("\n\nChanges:")
		}
		fmt.Fprintf(&b, "\n- %s", plain(strings.TrimSpace(strings.Join([]string{c.Type, c.Service, c.Version, c.URL}, " "))))
	}
	if in.URL != "" {
		b.WriteString("\n\nIncident: " + in.URL)
	}
	if in.Runbook != "" {
		b.WriteString("\nRunbook: " + in.Runbook)
	}
	return b.String()
}
