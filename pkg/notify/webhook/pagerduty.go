package webhook

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/aiops-dev/aiops/pkg/config"
	"github.com/aiops-dev/aiops/pkg/errs"
	"github.com/aiops-dev/aiops/pkg/event"
)

// PagerDutyEventsURL is the endpoint of PagerDuty's Events API v2.
const PagerDutyEventsURL = "https://events.pagerduty.com/v2/enqueue"

// PagerDutyConfig configures the PagerDuty payload of one receiver.
type PagerDutyConfig struct {
	// RoutingKey is the integration key of a PagerDuty service (or of an
	// event orchestration). A secret: it has no yaml key, so set it from
	// the environment or name a file in RoutingKeyFile and call
	// LoadRoutingKey.
	RoutingKey     string `yaml:"-" env:"routing_key"`
	RoutingKeyFile string `yaml:"routing_key_file" json:"routing_key_file"`
	// Client is the "client" shown in PagerDuty. Default "aiops".
	Client string `yaml:"client" json:"client"`
	// ClientURL is the "client_url", a link to aiops; optional.
	ClientURL string `yaml:"client_url" json:"client_url"`
	// DefaultSeverity is sent for incidents without a severity: critical,
	// error, warning or info. Default error, as Alertmanager's PagerDuty
	// integration sends.
	DefaultSeverity string `yaml:"default_severity" json:"default_severity"`

	// Overrides of what a trigger says, as an Alertmanager file's
	// pagerduty_configs set them (the notifier renders their templates per
	// incident): Summary replaces the title, the others the fields of the
	// same name; empty keeps what the incident says. Severity must be
	// critical, error, warning or info. Details are added to
	// custom_details; Images and Links come after the incident's links.
	Summary   string            `yaml:"-" json:"-"`
	Source    string            `yaml:"-" json:"-"`
	Severity  string            `yaml:"-" json:"-"`
	Class     string            `yaml:"-" json:"-"`
	Component string            `yaml:"-" json:"-"`
	Group     string            `yaml:"-" json:"-"`
	Details   map[string]string `yaml:"-" json:"-"`
	Images    []PagerDutyImage  `yaml:"-" json:"-"`
	Links     []PagerDutyLink   `yaml:"-" json:"-"`
}

// PagerDutyImage is an image shown with a PagerDuty alert.
type PagerDutyImage struct {
	Src  string `json:"src"`
	Href string `json:"href,omitempty"`
	Alt  string `json:"alt,omitempty"`
}

// PagerDutyLink is a link shown with a PagerDuty alert.
type PagerDutyLink struct {
	Href string `json:"href"`
	Text string `json:"text,omitempty"`
}

// WithDefaults returns c with every zero field set to its default.
func (c PagerDutyConfig) WithDefaults() PagerDutyConfig {
	setDefault(&c.Client, "aiops")
	setDefault(&c.DefaultSeverity, "error")
	return c
}

// Validate checks c after filling defaults; each error names the key and
// wraps ErrInvalidConfig. A routing key must be given one way or the other.
func (c PagerDutyConfig) Validate() error {
	c = c.WithDefaults()
	switch {
	case c.RoutingKey == "" && c.RoutingKeyFile == "":
		return invalid("routing_key_file", "empty, and no routing key from the environment")
	case strings.ContainsFunc(c.RoutingKey, isControl) || strings.Contains(c.RoutingKey, " "):
		return invalid("routing_key", "contains white space or control characters")
	case c.DefaultSeverity != "critical" && c.DefaultSeverity != "error" && c.DefaultSeverity != "warning" && c.DefaultSeverity != "info":
		return invalid("default_severity", "%q, want critical, error, warning or info", c.DefaultSeverity)
	case c.ClientURL != "" && !absoluteURL(c.ClientURL):
		return invalid("client_url", "not an absolute http or https URL")
	case c.Severity != "" && c.Severity != "critical" && c.Severity != "error" && c.Severity != "warning" && c.Severity != "info":
		return invalid("severity", "%q, want critical, error, warning or info", c.Severity)
	}
	return nil
}

// LoadRoutingKey returns c with RoutingKey read from RoutingKeyFile (as
// every secret file is read: config.ReadSecretFile), when the file is set.
func (c PagerDutyConfig) LoadRoutingKey() (PagerDutyConfig, error) {
	if c.RoutingKeyFile == "" {
		return c, nil
	}
	k, err := config.ReadSecretFile(c.RoutingKeyFile)
	if err != nil {
		return c, fmt.Errorf("%w: routing_key_file: %w", ErrInvalidConfig, err)
	}
	c.RoutingKey = k
	return c, nil
}

func absoluteURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

// PagerDuty limits (Events API v2, "Send an Alert Event").
const (
	pdSummaryMax  = 1024
	pdDedupKeyMax = 255
)

// PagerDuty builds an alert event of PagerDuty's Events API v2 (POST it to
// PagerDutyEventsURL). The incident's status chooses event_action: open is
// trigger, acknowledged is acknowledge, resolved is resolve; dedup_key is
// the incident id (the same on trigger, acknowledge and resolve, on every
// retry and after a restart), so every transition of an incident lands on one
// PagerDuty alert (a trigger after a resolve opens a new one, as a
// reopened incident should). A trigger carries payload.summary (the title,
// at most 1024 characters), source (the service, else "aiops"), severity
// (critical, error, warning, info; debug is sent as info), timestamp,
// component, group (the team), class, custom_details and links to the
// incident and the runbook; acknowledge and resolve carry only
// routing_key, dedup_key and event_action, as PagerDuty documents. So a
// merged incident's resolve cannot say where it went: the incident it
// was merged into is a PagerDuty alert of its own (its id the dedup_key).
// PagerDutyEvents adds the trigger an acknowledge needs when PagerDuty
// never had the incident.
func PagerDuty(in Incident, cfg PagerDutyConfig) ([]byte, error) {
	return pagerDutyEvent(in, cfg, pdAction(in.Status))
}

// pdAction is the event_action of an incident's status.
func pdAction(s Status) string {
	switch s {
	case StatusAcknowledged:
		return "acknowledge"
	case StatusResolved:
		return "resolve"
	}
	return "trigger"
}

// PagerDutyEvent is one event of PagerDuty's Events API v2 to send.
type PagerDutyEvent struct {
	// Action is its event_action: trigger, acknowledge or resolve.
	Action string
	Body   []byte
}

// PagerDutyEvents is what to send PagerDuty for in, in order; the last is
// PagerDuty(in, cfg). PagerDuty ignores an acknowledge for a dedup_key with
// no open alert, so an incident acknowledged before its receiver heard of
// it (in.FirstNotice: acknowledged within group_wait, its opening never
// sent) would never appear there, nor would its resolve count: a trigger
// goes first, then the acknowledge. A resolve gets no trigger before it:
// there is nothing to close that PagerDuty never had.
func PagerDutyEvents(in Incident, cfg PagerDutyConfig) ([]PagerDutyEvent, error) {
	action := pdAction(in.Status)
	own, err := pagerDutyEvent(in, cfg, action)
	if err != nil {
		return nil, err
	}
	events := []PagerDutyEvent{{Action: action, Body: own}}
	if action == "acknowledge" && in.FirstNotice {
		trigger, err := pagerDutyEvent(in, cfg, "trigger")
		if err != nil {
			return nil, err
		}
		events = append([]PagerDutyEvent{{Action: "trigger", Body: trigger}}, events...)
	}
	return events, nil
}

// pagerDutyEvent builds the event of that action for in (PagerDuty).
func pagerDutyEvent(in Incident, cfg PagerDutyConfig, action string) ([]byte, error) {
	cfg = cfg.WithDefaults()
	if cfg.RoutingKey == "" {
		return nil, errs.Permanent(invalid("routing_key", "empty: set it from the environment, or call LoadRoutingKey to read routing_key_file"))
	}
	if err := cfg.Validate(); err != nil {
		return nil, errs.Permanent(err)
	}
	if err := in.Validate(); err != nil {
		return nil, errs.Permanent(err)
	}
	if len(in.ID) > pdDedupKeyMax {
		return nil, errs.Permanent(fmt.Errorf("%w %q: id longer than PagerDuty's dedup_key (%d)", ErrInvalidIncident, in.ID, pdDedupKeyMax))
	}
	ev := pdEvent{RoutingKey: cfg.RoutingKey, DedupKey: in.ID, EventAction: action}
	if action == "trigger" {
		ev.Client, ev.ClientURL = cfg.Client, cfg.ClientURL
		source := in.Service
		if source == "" {
			source = "aiops"
		}
		details := map[string]any{
			"incident_id": in.ID,
			"status":      in.Status,
			"transition":  in.Transition,
			"services":    nonNil(in.Services),
			"members":     in.memberCount(),
		}
		for k, v := range cfg.Details {
			details[k] = v
		}
		for k, v := range map[string]string{"summary": in.Summary, "owner": in.Owner, "assignee": in.Assignee, "runbook": in.Runbook, "url": in.URL} {
			if v != "" {
				details[k] = v
			}
		}
		if len(in.RootCauses) > 0 {
			var rcs []string
			for _, rc := range in.RootCauses {
				rcs = append(rcs, fmt.Sprintf("%s (%.2f): %s", rc.Service, rc.Score, strings.Join(rc.Reasons, "; ")))
			}
			details["root_causes"] = rcs
		}
		if len(in.Changes) > 0 {
			var chs []string
			for _, c := range in.Changes {
				chs = append(chs, strings.TrimSpace(strings.Join([]string{c.Type, c.Service, c.Version, c.URL}, " ")))
			}
			details["changes"] = chs
		}
		if len(in.Labels) > 0 {
			details["labels"] = in.Labels
		}
		or := func(override, v string) string {
			if override != "" {
				return override
			}
			return v
		}
		severity := pdSeverity(in.severity(), cfg.DefaultSeverity)
		ev.Payload = &pdPayload{
			Summary: cut(or(cfg.Summary, in.Title), pdSummaryMax), Source: or(cfg.Source, source), Severity: or(cfg.Severity, severity),
			Timestamp: utc(in.Time()).Format("2006-01-02T15:04:05.000Z07:00"), Component: or(cfg.Component, in.Service),
			Group: or(cfg.Group, in.Team), Class: or(cfg.Class, "aiops.incident"), CustomDetails: details,
		}
		if in.URL != "" {
			ev.Links = append(ev.Links, pdLink{Href: in.URL, Text: "Incident in aiops"})
		}
		if in.Runbook != "" {
			ev.Links = append(ev.Links, pdLink{Href: in.Runbook, Text: "Runbook"})
		}
		for _, l := range cfg.Links {
			ev.Links = append(ev.Links, pdLink(l))
		}
		ev.Images = cfg.Images
	}
	b, err := marshal(ev)
	if err != nil {
		return nil, errs.Permanent(fmt.Errorf("webhook: pagerduty payload of incident %s: %w", in.ID, err))
	}
	return b, nil
}

func pdSeverity(s event.Severity, def string) string {
	switch s {
	case event.SeverityCritical, event.SeverityError, event.SeverityWarning, event.SeverityInfo:
		return string(s)
	case event.SeverityDebug:
		return "info"
	}
	return def
}

type pdEvent struct {
	RoutingKey  string           `json:"routing_key"`
	EventAction string           `json:"event_action"`
	DedupKey    string           `json:"dedup_key"`
	Payload     *pdPayload       `json:"payload,omitempty"`
	Client      string           `json:"client,omitempty"`
	ClientURL   string           `json:"client_url,omitempty"`
	Links       []pdLink         `json:"links,omitempty"`
	Images      []PagerDutyImage `json:"images,omitempty"`
}

type pdPayload struct {
	Summary       string         `json:"summary"`
	Source        string         `json:"source"`
	Severity      string         `json:"severity"`
	Timestamp     string         `json:"timestamp"`
	Component     string         `json:"component,omitempty"`
	Group         string         `json:"group,omitempty"`
	Class         string         `json:"class,omitempty"`
	CustomDetails map[string]any `json:"custom_details,omitempty"`
}

type pdLink struct {
	Href string `json:"href"`
	Text string `json:"text,omitempty"`
}
