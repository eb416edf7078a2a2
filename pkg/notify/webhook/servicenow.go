package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/aiops-dev/aiops/pkg/errs"
	"github.com/aiops-dev/aiops/pkg/event"
)

// ServiceNowRecord is what an incident record says, rendered by the caller
// (servicenow_configs' templates). Empty fields are not sent.
type ServiceNowRecord struct {
	ShortDescription, Description       string
	AssignmentGroup, CallerID, Category string
	CloseCode, CloseNotes               string
}

// DefaultServiceNowStates maps an incident's status to the state of a
// ServiceNow incident record: New, In Progress, Resolved.
var DefaultServiceNowStates = map[Status]string{StatusOpen: "1", StatusAcknowledged: "2", StatusResolved: "6"}

// ServiceNow keeps one record per incident in a table of a ServiceNow
// instance through the Table API: POST /api/now/table/<table> when the
// incident opens (correlation_id holding the incident id), then PATCH
// /api/now/table/<table>/<sys_id> with the state its status maps to and a
// work note on every later transition (close_code and close_notes when it
// resolves). The record is found by a query on correlation_id each time,
// so a restarted notifier continues the same record. A work note ends in
// the notification's marker, and the update is skipped when one of the
// record's newest work notes (sys_journal_field) carries it already: a
// redelivered notification writes no second note.
type ServiceNow struct {
	// Receiver names the receiver (records); Integration the entry of it
	// (breaker, rate limit: Request.Integration).
	Receiver, Integration string
	// APIURL is the instance: https://example.service-now.com.
	APIURL string
	// Table defaults to incident.
	Table string
	// Transport sends the requests (http_config's TLS and proxy); nil:
	// the client's.
	Transport http.RoundTripper
	// Redirects is http_config.follow_redirects; zero: the client's.
	Redirects RedirectPolicy
	// Header carries the authentication (basic auth, or a bearer token).
	Header http.Header
	// States maps statuses to states; missing ones take
	// DefaultServiceNowStates'.
	States map[Status]string
}

var sysIDRE = regexp.MustCompile(`^[0-9a-f]{32}$`)

func (s *ServiceNow) table() string {
	if s.Table == "" {
		return "incident"
	}
	return s.Table
}

func (s *ServiceNow) state(st Status) string {
	if v := s.States[st]; v != "" {
		return v
	}
	return DefaultServiceNowStates[st]
}

func (s *ServiceNow) url(rest string) string { return s.tableURL(s.table(), rest) }

func (s *ServiceNow) tableURL(table, rest string) string {
	return strings.TrimSuffix(s.APIURL, "/") + "/api/now/table/" + table + rest
}

// Notify brings the incident's record up to date with in; key is the
// notification's idempotency key. A resolved incident without a record
// creates none.
func (s *ServiceNow) Notify(ctx context.Context, d Deliverer, key string, in Incident, rec ServiceNowRecord) error {
	if err := in.Validate(); err != nil {
		return errs.Permanent(err)
	}
	if strings.ContainsAny(in.ID, "^=&\r\n") {
		// It goes into an encoded query.
		return errs.Permanent(fmt.Errorf("%w %q: characters a ServiceNow query cannot hold", ErrInvalidIncident, in.ID))
	}
	q := url.Values{
		"sysparm_query":  {"correlation_id=" + in.ID + "^ORDERBYDESCsys_created_on"},
		"sysparm_fields": {"sys_id,number,state"},
		"sysparm_limit":  {"1"},
	}
	body, err := s.do(ctx, d, key, "search", http.MethodGet, s.url("?"+q.Encode()), nil)
	if err != nil {
		return err
	}
	var found struct {
		Result []struct {
			SysID string `json:"sys_id"`
		} `json:"result"`
	}
	if err := json.Unmarshal(body, &found); err != nil {
		return errs.Permanent(fmt.Errorf("servicenow search: %w: %v", ErrUnexpectedResponse, err))
	}
	fields := map[string]string{"state": s.state(in.Status)}
	if len(found.Result) == 0 {
		if in.Status == StatusResolved {
			return nil
		}
		urgency, impact := serviceNowPriority(in.severity())
		for k, v := range map[string]string{
			"short_description": cut(rec.ShortDescription, 160), "description": rec.Description,
			"assignment_group": rec.AssignmentGroup, "caller_id": rec.CallerID, "category": rec.Category,
			"correlation_id": in.ID, "correlation_display": "aiops", "urgency": urgency, "impact": impact,
		} {
			if v != "" {
				fields[k] = v
			}
		}
		// A create that got no answer is not retried: the next
		// notification searches first and finds the record if it was made.
		_, err := s.send(ctx, d, Request{IdempotencyKey: key + "-create", Method: http.MethodPost, URL: s.url(""), Unsafe: true}, "create", fields)
		return err
	}
	sysID := found.Result[0].SysID
	if !sysIDRE.MatchString(sysID) {
		return errs.Permanent(fmt.Errorf("servicenow search: %w: sys_id %q", ErrUnexpectedResponse, cut(sysID, 40)))
	}
	if in.Transition == TransitionOpened {
		return nil // created already: this is a redelivery
	}
	marker := notificationMarker(key)
	written, err := s.noted(ctx, d, key, sysID, marker)
	if err != nil || written {
		return err
	}
	fields["work_notes"] = commentText(in) + "\n\n" + marker
	if in.Status == StatusResolved {
		for k, v := range map[string]string{"close_code": rec.CloseCode, "close_notes": rec.CloseNotes} {
			if v != "" {
				fields[k] = v
			}
		}
	}
	// Unsafe: a repeated PATCH would append its work note again, so a
	// lost answer fails the notification and its redelivery looks first.
	_, err = s.send(ctx, d, Request{IdempotencyKey: key + "-update", Method: http.MethodPatch, URL: s.url("/" + sysID), Unsafe: true}, "update", fields)
	return err
}

// noted tells whether one of the record's newest work notes carries
// marker: then this notification's update (state, note and close fields,
// one PATCH) was applied already.
func (s *ServiceNow) noted(ctx context.Context, d Deliverer, key, sysID, marker string) (bool, error) {
	q := url.Values{
		"sysparm_query":  {"element_id=" + sysID + "^element=work_notes^ORDERBYDESCsys_created_on"},
		"sysparm_fields": {"value"},
		"sysparm_limit":  {strconv.Itoa(notesChecked)},
	}
	body, err := s.do(ctx, d, key, "journal", http.MethodGet, s.tableURL("sys_journal_field", "?"+q.Encode()), nil)
	var se *StatusError
	if errors.As(err, &se) && (se.StatusCode == http.StatusUnauthorized || se.StatusCode == http.StatusForbidden) {
		// An account that may update incidents but not read the journal
		// (the check is new; such accounts worked before it): updating
		// without the check risks a second work note on a redelivery,
		// which is better than refusing every update of the record.
		return false, nil
	}
	if err != nil {
		return false, err
	}
	found, err := notesHoldMarker(body, "result", "value", marker)
	if err != nil {
		return false, errs.Permanent(fmt.Errorf("servicenow journal: %w: %v", ErrUnexpectedResponse, err))
	}
	return found, nil
}

func (s *ServiceNow) do(ctx context.Context, d Deliverer, key, step, method, url string, body any) ([]byte, error) {
	return s.send(ctx, d, Request{IdempotencyKey: key + "-" + step, Method: method, URL: url}, step, body)
}

// send completes req (receiver, body, headers) and delivers it.
func (s *ServiceNow) send(ctx context.Context, d Deliverer, req Request, step string, body any) ([]byte, error) {
	var b []byte
	if body != nil {
		var err error
		if b, err = marshal(body); err != nil {
			return nil, errs.Permanent(fmt.Errorf("webhook: servicenow %s: %w", step, err))
		}
	}
	req.Transport, req.Redirects = s.Transport, s.Redirects
	h := s.Header.Clone()
	if h == nil {
		h = http.Header{}
	}
	h.Set("Accept", "application/json")
	req.Receiver, req.Integration, req.Body, req.Header = s.Receiver, s.Integration, b, h
	res, err := d.Deliver(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("servicenow %s: %w", step, err)
	}
	return res.Body, nil
}

// serviceNowPriority is the urgency and impact (1 high, 2 medium, 3 low)
// of a severity.
func serviceNowPriority(s event.Severity) (urgency, impact string) {
	switch s {
	case event.SeverityCritical:
		return "1", "1"
	case event.SeverityError:
		return "2", "2"
	case event.SeverityWarning:
		return "2", "3"
	}
	return "3", "3"
}
