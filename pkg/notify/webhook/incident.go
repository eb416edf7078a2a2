package webhook

import (
	"errors"
	"fmt"
	"time"

	"github.com/aiops-dev/aiops/pkg/event"
)

// ErrInvalidIncident is wrapped (permanently) by the payload builders when
// an Incident lacks what every payload needs.
var ErrInvalidIncident = errors.New("webhook: invalid incident")

// Status is an incident's state after a transition.
type Status string

// The incident states (those of the correlator).
const (
	StatusOpen         Status = "open"
	StatusAcknowledged Status = "acknowledged"
	StatusResolved     Status = "resolved"
)

// Transition is what happened to an incident.
type Transition string

// The transitions an incident event announces (those of the correlator).
const (
	TransitionOpened       Transition = "opened"
	TransitionUpdated      Transition = "updated"
	TransitionAcknowledged Transition = "acknowledged"
	TransitionResolved     Transition = "resolved"
	TransitionReopened     Transition = "reopened"
)

// Incident is what the payload builders need to know about one incident
// transition. The notifier maps its own incident type to it; only ID,
// Status, Transition, Title and OpenedAt are required.
type Incident struct {
	ID         string
	Status     Status
	Transition Transition
	// At is when the transition happened; zero means the time of the
	// status (ResolvedAt, AcknowledgedAt, else OpenedAt). See Time.
	At      time.Time
	Title   string
	Summary string
	// Service is the first root-cause candidate's service.
	Service  string
	Team     string
	Owner    string
	Assignee string
	Severity event.Severity
	// Runbook and URL (the incident's page) are absolute URLs or empty.
	Runbook string
	URL     string

	OpenedAt       time.Time
	AcknowledgedAt time.Time
	ResolvedAt     time.Time
	// AcknowledgedBy and ResolvedBy name who gave the command; a
	// resolution by time alone has no ResolvedBy.
	AcknowledgedBy string
	ResolvedBy     string
	// Comments are what people wrote on the incident, oldest first.
	Comments []Comment

	// Services lists every service with a member.
	Services   []string
	RootCauses []RootCause
	// Members lists the incident's signals (possibly the first few);
	// MemberCount is the exact number, 0 meaning len(Members).
	Members     []Member
	MemberCount int
	Changes     []Change
	Labels      map[string]string
	// MergedInto, set only on a resolved incident, names the incident its
	// members were merged into (its symptoms alerted before their cause,
	// which that incident holds): it was resolved because its failure
	// continues there, not because the failure ended.
	MergedInto string
	// DeliveryKey is the key a notifier sends this notification under
	// (its webhook-id: one per receiver integration, and per repeat), which
	// the payloads carry too, so that a receiver deduplicating on either
	// sees the same key; empty: IdempotencyKey(in).
	DeliveryKey string
	// FirstNotice says that no notification of the incident reached this
	// notification's receiver before (the notifier's schedule knows it:
	// the route never notified the incident, say it was acknowledged
	// within group_wait). PagerDutyEvents then triggers before it
	// acknowledges.
	FirstNotice bool
}

// Comment is what a person wrote on an incident.
type Comment struct {
	By   string
	Text string
	Time time.Time
}

// Key is the notification's idempotency key: DeliveryKey, else
// IdempotencyKey(in).
func (in Incident) Key() string {
	if in.DeliveryKey != "" {
		return in.DeliveryKey
	}
	return IdempotencyKey(in)
}

// RootCause is a candidate root cause, with why.
type RootCause struct {
	Service string
	Score   float64
	Reasons []string
}

// Member is one signal of an incident: an alert or an anomaly.
type Member struct {
	Fingerprint string
	// Kind is "alert" or "anomaly".
	Kind      string
	Service   string
	Name      string
	Summary   string
	Severity  event.Severity
	Firing    bool
	FirstSeen time.Time
	LastSeen  time.Time
	Labels    map[string]string
}

// Change is a change (a deploy, a configuration change) linked to an
// incident.
type Change struct {
	ID          string
	Service     string
	Type        string
	Version     string
	Author      string
	Commit      string
	URL         string
	Description string
	Time        time.Time
}

// Time is when the transition happened: At, or the time of the status.
func (in Incident) Time() time.Time {
	if !in.At.IsZero() {
		return in.At
	}
	switch in.Status {
	case StatusResolved:
		if !in.ResolvedAt.IsZero() {
			return in.ResolvedAt
		}
	case StatusAcknowledged:
		if !in.AcknowledgedAt.IsZero() {
			return in.AcknowledgedAt
		}
	}
	return in.OpenedAt
}

// Validate checks what every payload needs: an id, a known status and
// transition, a title, the opening time; merged_into only when resolved,
// naming another incident. Errors wrap ErrInvalidIncident.
func (in Incident) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w %q: %s", ErrInvalidIncident, in.ID, fmt.Sprintf(format, args...))
	}
	switch {
	case in.ID == "":
		return fmt.Errorf("%w: no id", ErrInvalidIncident)
	case in.Status != StatusOpen && in.Status != StatusAcknowledged && in.Status != StatusResolved:
		return bad("status %q, want open, acknowledged or resolved", in.Status)
	case !validTransition(in.Transition):
		return bad("transition %q, want opened, updated, acknowledged, resolved or reopened", in.Transition)
	case in.Title == "":
		return bad("no title")
	case in.OpenedAt.IsZero():
		return bad("no opened_at")
	case in.MergedInto != "" && in.Status != StatusResolved:
		return bad("merged_into %q with status %s: only a resolved incident is merged", in.MergedInto, in.Status)
	case in.MergedInto != "" && in.MergedInto == in.ID:
		return bad("merged into itself")
	}
	return nil
}

func validTransition(t Transition) bool {
	switch t {
	case TransitionOpened, TransitionUpdated, TransitionAcknowledged, TransitionResolved, TransitionReopened:
		return true
	}
	return false
}

// IdempotencyKey is the webhook-id of one incident transition: a ULID
// (event.DerivedID) whose time is the transition's and whose rest hashes
// the incident id, the transition, the status and that time. The same
// transition gets the same key on every retry and every redelivery, to
// every receiver, so a receiver that keeps the ids it processed drops the
// duplicates; two transitions of one incident get different keys.
func IdempotencyKey(in Incident) string {
	t := in.Time()
	return event.DerivedID(t, "notify.webhook", in.ID, string(in.Transition), string(in.Status), t.UTC().Format(time.RFC3339Nano))
}

// severity is the incident's severity, "" when it said none.
func (in Incident) severity() event.Severity {
	if s, ok := event.ParseSeverity(string(in.Severity)); ok {
		return s
	}
	return ""
}

func (in Incident) memberCount() int {
	return max(in.MemberCount, len(in.Members))
}

// SampleIncident is a complete incident for previews and for checking
// templates (CheckTemplate): every field set, times fixed.
func SampleIncident() Incident {
	t0 := time.Date(2026, 3, 14, 9, 26, 53, 0, time.UTC)
	return Incident{
		ID:         "01JPA9V3KX8Q6M1T2R3S4W5Y6Z",
		Status:     StatusOpen,
		Transition: TransitionOpened,
		At:         t0,
		Title:      "checkout: error rate and p99 latency up after deploy",
		Summary:    "5xx on POST /checkout rose from 0.1% to 7% two minutes after checkout v2.14.0 was deployed.",
		Service:    "checkout",
		Team:       "payments",
		Owner:      "payments-oncall",
		Assignee:   "alice",
		Severity:   event.SeverityCritical,
		Runbook:    "https://runbooks.example.com/checkout/high-error-rate",
		URL:        "https://aiops.example.com/incidents/01JPA9V3KX8Q6M1T2R3S4W5Y6Z",
		OpenedAt:   t0,
		Services:   []string{"checkout", "payments-api"},
		RootCauses: []RootCause{
			{Service: "checkout", Score: 0.82, Reasons: []string{"deploy v2.14.0 two minutes before the first alert", "most upstream service with a member"}},
			{Service: "payments-api", Score: 0.31, Reasons: []string{"latency anomaly downstream of checkout"}},
		},
		Members: []Member{
			{
				Fingerprint: "8f1c2a9d3e4b5f60", Kind: "alert", Service: "checkout", Name: "HighErrorRate",
				Summary: "5xx ratio 7% > 1%", Severity: event.SeverityCritical, Firing: true,
				FirstSeen: t0.Add(-90 * time.Second), LastSeen: t0,
				Labels: map[string]string{"alertname": "HighErrorRate", "service": "checkout", "env": "prod"},
			},
			{
				Fingerprint: "1b2c3d4e5f607182", Kind: "anomaly", Service: "payments-api", Name: "http_request_duration_seconds_p99",
				Summary: "p99 1.8s, expected 0.3s", Severity: event.SeverityWarning, Firing: true,
				FirstSeen: t0.Add(-60 * time.Second), LastSeen: t0,
			},
		},
		MemberCount: 2,
		Changes: []Change{{
			ID: "01JPA9QZ0000000000000000CH", Service: "checkout", Type: "deploy", Version: "v2.14.0",
			Author: "bob", Commit: "3f2a1c9", URL: "https://ci.example.com/deploys/4711",
			Description: "checkout v2.14.0", Time: t0.Add(-2 * time.Minute),
		}},
		Labels: map[string]string{"env": "prod", "region": "eu-west-1"},
	}
}

// Fit builds in's payload with build and, when it is larger than max
// bytes, builds it again listing fewer of the members (the first ones
// kept, as many as fit) rather than having the client refuse it for its
// size: an incident of a storm, hundreds of alerts with their labels, is
// the one a receiver must hear of. The payloads tell the members left out
// (member_count, truncatedAlerts). A payload that does not fit even
// without members is returned as built, for the client to refuse.
func Fit(in Incident, max int, build func(Incident) ([]byte, error)) ([]byte, error) {
	// A rendering over its own bound is a body too large as well.
	tooLarge := func(b []byte, err error) bool { return errors.Is(err, errOutputTooLarge) || err == nil && len(b) > max }
	b, err := build(in)
	if !tooLarge(b, err) || len(in.Members) == 0 {
		return b, err
	}
	in.MemberCount = in.memberCount()
	all := in.Members
	// The largest count of members that fits is between lo (0, or one
	// that fits: fit) and hi: the size grows with the members listed.
	lo, hi, fit := 0, len(all)-1, []byte(nil)
	for lo < hi {
		n := (lo + hi + 1) / 2
		in.Members = all[:n]
		nb, err := build(in)
		if tooLarge(nb, err) {
			hi = n - 1
			continue
		}
		if err != nil {
			return nil, err
		}
		lo, fit = n, nb
	}
	if fit == nil {
		in.Members = nil
		return build(in)
	}
	return fit, nil
}
