package webhook

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/aiops-dev/aiops/pkg/errs"
	"github.com/aiops-dev/aiops/pkg/event"
)

// GenericVersion is the "version" of the generic payload. A change that
// removes or renames a field, or changes its meaning, gets a new version;
// new fields may appear within a version, so receivers must ignore fields
// they do not know.
const GenericVersion = "aiops.incident.v1"

// Generic builds the aiops generic JSON payload of an incident transition,
// shaped as Standard Webhooks recommends (type, timestamp, data):
//
//	field                   type      always  meaning
//	version                 string    yes     "aiops.incident.v1"
//	type                    string    yes     "incident." + data.transition, e.g. "incident.opened"
//	timestamp               string    yes     the transition's time, RFC 3339 UTC
//	data.id                 string    yes     incident id (a ULID)
//	data.idempotency_key    string    yes     the webhook-id it is sent under (Incident.Key)
//	data.status             string    yes     state after the transition: open, acknowledged, resolved
//	data.transition         string    yes     opened, updated, acknowledged, resolved, reopened
//	data.title              string    yes     one line
//	data.summary            string    no      a few sentences
//	data.service            string    no      the first root-cause candidate's service
//	data.team               string    no      owning team
//	data.owner              string    no      owner (a person, a rota)
//	data.assignee           string    no      who took the incident
//	data.severity           string    no      debug, info, warning, error, critical
//	data.runbook            string    no      runbook URL
//	data.url                string    no      the incident's page
//	data.opened_at          string    yes     RFC 3339 UTC
//	data.acknowledged_at    string    no      RFC 3339 UTC
//	data.resolved_at        string    no      RFC 3339 UTC
//	data.acknowledged_by    string    no      who acknowledged it (the command's by)
//	data.resolved_by        string    no      who resolved it; none when it resolved by itself
//	data.comments           [object]  no      {by, text, time}, oldest first (the newest 50)
//	data.services           [string]  yes     every service with a member (may be empty)
//	data.root_causes        [object]  yes     {service, score (0 to 1), reasons [string]}, best first
//	data.members            [object]  yes     {fingerprint, kind (alert|anomaly), service, name, summary?,
//	                                          severity?, firing (bool), first_seen, last_seen, labels?}
//	data.member_count       number    yes     members in the incident; data.members may list fewer
//	data.changes            [object]  yes     {id?, service, type, version?, author?, commit?, url?,
//	                                          description?, time}
//	data.labels             object    yes     string to string (may be empty)
//	data.merged_into        string    no      on a resolved incident merged into another: that
//	                                          incident's id (the failure goes on there)
//
// "no" fields are left out when empty; times are RFC 3339 with nanoseconds
// when they have them. Keys are snake_case; labels come with sorted keys.
func Generic(in Incident) ([]byte, error) {
	if err := in.Validate(); err != nil {
		return nil, errs.Permanent(err)
	}
	d := genericData{
		ID: in.ID, IdempotencyKey: in.Key(), Status: string(in.Status), Transition: string(in.Transition),
		Title: in.Title, Summary: in.Summary, Service: in.Service, Team: in.Team, Owner: in.Owner,
		Assignee: in.Assignee, Severity: string(in.severity()), Runbook: in.Runbook, URL: in.URL,
		OpenedAt: utc(in.OpenedAt), AcknowledgedAt: utc(in.AcknowledgedAt), ResolvedAt: utc(in.ResolvedAt),
		AcknowledgedBy: in.AcknowledgedBy, ResolvedBy: in.ResolvedBy,
		Services: nonNil(in.Services), RootCauses: []genericCause{}, Members: []genericMember{},
		MemberCount: in.memberCount(), Changes: []genericChange{}, Labels: in.Labels, MergedInto: in.MergedInto,
		FirstNotice: in.FirstNotice,
	}
	if d.Labels == nil {
		d.Labels = map[string]string{}
	}
	for _, rc := range in.RootCauses {
		d.RootCauses = append(d.RootCauses, genericCause{Service: rc.Service, Score: rc.Score, Reasons: nonNil(rc.Reasons)})
	}
	for _, m := range in.Members {
		d.Members = append(d.Members, genericMember{
			Fingerprint: m.Fingerprint, Kind: m.Kind, Service: m.Service, Name: m.Name, Summary: m.Summary,
			Severity: string(m.Severity), Firing: m.Firing, FirstSeen: utc(m.FirstSeen), LastSeen: utc(m.LastSeen), Labels: m.Labels,
		})
	}
	for _, c := range in.Comments {
		d.Comments = append(d.Comments, genericComment{By: c.By, Text: c.Text, Time: utc(c.Time)})
	}
	for _, c := range in.Changes {
		d.Changes = append(d.Changes, genericChange{
			ID: c.ID, Service: c.Service, Type: c.Type, Version: c.Version, Author: c.Author, Commit: c.Commit,
			URL: c.URL, Description: c.Description, Time: utc(c.Time),
		})
	}
	return marshal(genericPayload{
		Version: GenericVersion, Type: "incident." + string(in.Transition), Timestamp: utc(in.Time()), Data: d,
	})
}

// marshal is json.Marshal without the escaping of <, > and & that is meant
// for HTML: payloads are read by programs and people, not browsers.
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte{'\n'}), nil
}

type genericPayload struct {
	Version   string      `json:"version"`
	Type      string      `json:"type"`
	Timestamp time.Time   `json:"timestamp"`
	Data      genericData `json:"data"`
}

type genericData struct {
	ID             string            `json:"id"`
	IdempotencyKey string            `json:"idempotency_key"`
	Status         string            `json:"status"`
	Transition     string            `json:"transition"`
	Title          string            `json:"title"`
	Summary        string            `json:"summary,omitempty"`
	Service        string            `json:"service,omitempty"`
	Team           string            `json:"team,omitempty"`
	Owner          string            `json:"owner,omitempty"`
	Assignee       string            `json:"assignee,omitempty"`
	Severity       string            `json:"severity,omitempty"`
	Runbook        string            `json:"runbook,omitempty"`
	URL            string            `json:"url,omitempty"`
	OpenedAt       time.Time         `json:"opened_at"`
	AcknowledgedAt time.Time         `json:"acknowledged_at,omitzero"`
	ResolvedAt     time.Time         `json:"resolved_at,omitzero"`
	AcknowledgedBy string            `json:"acknowledged_by,omitempty"`
	ResolvedBy     string            `json:"resolved_by,omitempty"`
	Comments       []genericComment  `json:"comments,omitempty"`
	Services       []string          `json:"services"`
	RootCauses     []genericCause    `json:"root_causes"`
	Members        []genericMember   `json:"members"`
	MemberCount    int               `json:"member_count"`
	Changes        []genericChange   `json:"changes"`
	Labels         map[string]string `json:"labels"`
	MergedInto     string            `json:"merged_into,omitempty"`
	// FirstNotice: no notification of the incident reached this receiver
	// before, whatever the transition (an acknowledgement after a restart
	// lost the opening's turn): a receiver that opens a ticket on
	// incident.opened opens one on this too.
	FirstNotice bool `json:"first_notice,omitempty"`
}

type genericComment struct {
	By   string    `json:"by"`
	Text string    `json:"text"`
	Time time.Time `json:"time"`
}

type genericCause struct {
	Service string   `json:"service"`
	Score   float64  `json:"score"`
	Reasons []string `json:"reasons"`
}

type genericMember struct {
	Fingerprint string            `json:"fingerprint"`
	Kind        string            `json:"kind"`
	Service     string            `json:"service"`
	Name        string            `json:"name"`
	Summary     string            `json:"summary,omitempty"`
	Severity    string            `json:"severity,omitempty"`
	Firing      bool              `json:"firing"`
	FirstSeen   time.Time         `json:"first_seen"`
	LastSeen    time.Time         `json:"last_seen"`
	Labels      map[string]string `json:"labels,omitempty"`
}

type genericChange struct {
	ID          string    `json:"id,omitempty"`
	Service     string    `json:"service"`
	Type        string    `json:"type"`
	Version     string    `json:"version,omitempty"`
	Author      string    `json:"author,omitempty"`
	Commit      string    `json:"commit,omitempty"`
	URL         string    `json:"url,omitempty"`
	Description string    `json:"description,omitempty"`
	Time        time.Time `json:"time"`
}

func utc(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.UTC()
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// MaxIncidentJSON bounds what ParseGeneric reads.
const MaxIncidentJSON = 1 << 20

// ParseGeneric reads an incident from the JSON Generic writes (a whole
// aiops.incident.v1 payload, or its data object alone), so that a payload
// a receiver got can be replayed into a template or a test delivery.
// Unknown fields are ignored (new fields may come within a version); the
// incident must be valid (Incident.Validate).
func ParseGeneric(b []byte) (Incident, error) {
	if len(b) > MaxIncidentJSON {
		return Incident{}, fmt.Errorf("%w: %d bytes, more than %d", ErrInvalidIncident, len(b), MaxIncidentJSON)
	}
	var p struct {
		Version   string          `json:"version"`
		Timestamp time.Time       `json:"timestamp"`
		Data      json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(b, &p); err != nil {
		return Incident{}, fmt.Errorf("%w: not JSON: %v", ErrInvalidIncident, err)
	}
	if p.Version != "" && p.Version != GenericVersion {
		return Incident{}, fmt.Errorf("%w: version %q, want %q", ErrInvalidIncident, p.Version, GenericVersion)
	}
	if p.Data != nil {
		b = p.Data
	}
	var d genericData
	if err := json.Unmarshal(b, &d); err != nil {
		return Incident{}, fmt.Errorf("%w: %v", ErrInvalidIncident, err)
	}
	in := Incident{
		ID: d.ID, Status: Status(d.Status), Transition: Transition(d.Transition), Title: d.Title, Summary: d.Summary,
		Service: d.Service, Team: d.Team, Owner: d.Owner, Assignee: d.Assignee, Severity: event.Severity(d.Severity),
		Runbook: d.Runbook, URL: d.URL, OpenedAt: d.OpenedAt, AcknowledgedAt: d.AcknowledgedAt, ResolvedAt: d.ResolvedAt,
		AcknowledgedBy: d.AcknowledgedBy, ResolvedBy: d.ResolvedBy,
		Services: d.Services, MemberCount: d.MemberCount, Labels: d.Labels, MergedInto: d.MergedInto,
		FirstNotice: d.FirstNotice,
	}
	for _, rc := range d.RootCauses {
		in.RootCauses = append(in.RootCauses, RootCause(rc))
	}
	for _, m := range d.Members {
		in.Members = append(in.Members, Member{Fingerprint: m.Fingerprint, Kind: m.Kind, Service: m.Service, Name: m.Name,
			Summary: m.Summary, Severity: event.Severity(m.Severity), Firing: m.Firing, FirstSeen: m.FirstSeen, LastSeen: m.LastSeen, Labels: m.Labels})
	}
	for _, c := range d.Comments {
		in.Comments = append(in.Comments, Comment(c))
	}
	for _, c := range d.Changes {
		in.Changes = append(in.Changes, Change(c))
	}
	// The transition's time is the payload's timestamp; without one (a
	// data object alone), the time of the status.
	in.At = p.Timestamp
	if err := in.Validate(); err != nil {
		return Incident{}, err
	}
	return in, nil
}
