package amconfig

import (
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// The integrations beyond webhooks. Alertmanager's own types
// (pagerduty_configs, slack_configs, jira_configs) are read with
// Alertmanager's keys; the keys aiops does not apply are errors that name
// them, never silently dropped. Text keys (description, title, summary,
// ...) are Go text/templates executed on the aiops incident, not on
// Alertmanager's template data: the notifier compiles and checks them when
// it starts, so that a template written for Alertmanager
// ({{ .CommonLabels.alertname }}) fails then, naming its key.

// Integration holds the keys every integration has.
type Integration struct {
	// SendResolved: notify when the incident resolves too.
	SendResolved bool
	// HTTPConfig is the entry's http_config, or global.http_config.
	HTTPConfig *HTTPConfig
	// Path is where the entry is in the file.
	Path string
}

// PagerDutyConfig is one entry of pagerduty_configs (Events API v2).
type PagerDutyConfig struct {
	Integration
	// RoutingKey or RoutingKeyFile (read when sending): exactly one.
	RoutingKey     string
	RoutingKeyFile string
	// URL defaults to global.pagerduty_url, else PagerDutyEventsURL.
	URL string
	// Client and ClientURL name the sender in PagerDuty.
	Client, ClientURL string
	// Description (a template) is payload.summary; default the incident's
	// title.
	Description string
	// Details (templates) are added to payload.custom_details.
	Details map[string]string
	// Images and Links are sent with a trigger.
	Images []PagerDutyImage
	Links  []PagerDutyLink
	// Source, Severity, Class, Component and Group (templates) override
	// what the incident says; Severity must render to critical, error,
	// warning or info.
	Source, Severity, Class, Component, Group string
}

// PagerDutyImage is an image of a PagerDuty event.
type PagerDutyImage struct{ Src, Alt, Href string }

// PagerDutyLink is a link of a PagerDuty event.
type PagerDutyLink struct{ Href, Text string }

// PagerDutyEventsURL is the default url of pagerduty_configs.
const PagerDutyEventsURL = "https://events.pagerduty.com/v2/enqueue"

// SlackConfig is one entry of slack_configs (an incoming webhook).
type SlackConfig struct {
	Integration
	// APIURL or APIURLFile (read when sending): exactly one, else
	// global.slack_api_url or slack_api_url_file.
	APIURL, APIURLFile string
	// Channel, Username, IconEmoji and IconURL override the webhook's.
	Channel, Username, IconEmoji, IconURL string
	// Title and Text (templates) replace the message's header and summary;
	// TitleLink links the title.
	Title, TitleLink, Text string
}

// JiraConfig is one entry of jira_configs, in Alertmanager 0.28's shape.
type JiraConfig struct {
	Integration
	// APIURL is the REST API's base (https://jira.example.com/rest/api/2),
	// default global.jira_api_url. Authentication is http_config's
	// (basic_auth with an API token, or authorization).
	APIURL string
	// Project and IssueType are required.
	Project, IssueType string
	// Summary and Description (templates) of the issue; Priority its
	// priority's name (a template; empty: Jira's default).
	Summary, Description, Priority string
	// Labels (templates) are added to the issue, besides the label that
	// names the incident.
	Labels []string
	// ResolveTransition and ReopenTransition are the names of the
	// workflow transitions applied when the incident resolves and reopens;
	// empty: a comment only.
	ResolveTransition, ReopenTransition string
}

// ServiceNowConfig is one entry of servicenow_configs (aiops's own): the
// Table API of a ServiceNow instance.
type ServiceNowConfig struct {
	Integration
	// APIURL is the instance (https://example.service-now.com). Required.
	APIURL string
	// Table defaults to incident.
	Table string
	// ShortDescription and Description (templates): default the title and
	// the summary with the root causes.
	ShortDescription, Description string
	// AssignmentGroup, CallerID and Category are copied to the record.
	AssignmentGroup, CallerID, Category string
	// States maps the incident's status (open, acknowledged, resolved) to
	// the record's state; default 1 (New), 2 (In Progress), 6 (Resolved).
	States map[string]string
	// CloseCode and CloseNotes (a template) are set on resolve.
	CloseCode, CloseNotes string
}

// TemplateConfig is one entry of aiops_template_configs (aiops's own): a
// webhook whose body is a Go text/template of the incident.
type TemplateConfig struct {
	WebhookConfig
	// Template is the body template, inline; TemplateFile names a file
	// holding it (joined to the configuration's folder, read by Load).
	// Exactly one.
	Template, TemplateFile string
	// ContentType of the body; default application/json, in which case
	// the rendering must be valid JSON.
	ContentType string
	// SecretFile, if set, signs the requests (Standard Webhooks).
	SecretFile string
}

// MaxTemplateFileSize bounds a template_file.
const MaxTemplateFileSize = 256 << 10

// Keys of Alertmanager's integrations that aiops reads but does not apply:
// an error, so that a file relying on them is not half obeyed.
var (
	pagerDutyUnapplied = []string{"service_key", "service_key_file", "timeout"}
	slackUnapplied     = []string{"color", "pretext", "fields", "short_fields", "footer", "fallback", "callback_id",
		"image_url", "thumb_url", "link_names", "mrkdwn_in", "actions", "app_token", "app_token_file", "app_url", "timeout", "message_text", "update_message"}
	jiraUnapplied = []string{"fields", "wont_fix_resolution", "reopen_duration", "api_type", "timeout"}
)

// fieldSet maps the keys of an integration to where they go: a *string,
// a *[]string, a *map[string]string or a func(entry) that decodes it.
type fieldSet map[string]any

// decodeFields applies the known keys of an integration entry; send_resolved
// and http_config go to ig. It reports the entries it did not know.
func (d *decoder) decodeFields(entries []entry, ig *Integration, fields fieldSet, unapplied []string, known string) {
	for _, e := range entries {
		switch p := fields[e.key].(type) {
		case *string:
			*p, _ = d.str(e.val, e.path)
			continue
		case *[]string:
			*p, _ = d.stringList(e.val, e.path)
			continue
		case *map[string]string:
			_, *p, _ = d.stringMap(e.val, e.path)
			continue
		case func(entry):
			p(e)
			continue
		}
		switch {
		case e.key == "send_resolved":
			ig.SendResolved, _ = d.boolean(e.val, e.path)
		case e.key == "http_config":
			ig.HTTPConfig = d.httpConfig(e.val, e.path)
		case slices.Contains(unapplied, e.key):
			d.errorf(e.keyNode, e.path, "an Alertmanager key that aiops does not apply (it would be ignored); remove it (known keys: %s)", known)
		default:
			d.unknownKey(e, known)
		}
	}
}

func knownKeys(fields fieldSet) string {
	keys := []string{"send_resolved", "http_config"}
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys[2:])
	return strings.Join(keys, ", ")
}

// checkURL checks the value s of key among entries (whose line it names).
func (d *decoder) checkURL(entries []entry, path, key, s string) {
	if s == "" {
		return
	}
	if err := checkHTTPURL(s); err != nil {
		var n *yaml.Node
		for _, e := range entries {
			if e.key == key {
				n = e.val
			}
		}
		d.errorf(n, joinKey(path, key), "%v", err)
	}
}

func (d *decoder) pagerDuty(n *yaml.Node, path string) (*PagerDutyConfig, bool) {
	entries, ok := d.mapping(n, path)
	if !ok {
		return nil, false
	}
	before := len(d.errs)
	c := &PagerDutyConfig{Integration: Integration{SendResolved: true, Path: path}}
	fields := fieldSet{
		"routing_key": &c.RoutingKey, "routing_key_file": &c.RoutingKeyFile, "url": &c.URL, "client": &c.Client,
		"client_url": &c.ClientURL, "description": &c.Description, "details": &c.Details, "source": &c.Source,
		"severity": &c.Severity, "class": &c.Class, "component": &c.Component, "group": &c.Group,
		"images": func(e entry) {
			items, _ := d.sequence(e.val, e.path)
			for i, it := range items {
				var img PagerDutyImage
				d.fields(entry{val: it, path: index(e.path, i)}, map[string]*string{"src": &img.Src, "alt": &img.Alt, "href": &img.Href})
				c.Images = append(c.Images, img)
			}
		},
		"links": func(e entry) {
			items, _ := d.sequence(e.val, e.path)
			for i, it := range items {
				var l PagerDutyLink
				d.fields(entry{val: it, path: index(e.path, i)}, map[string]*string{"href": &l.Href, "text": &l.Text})
				c.Links = append(c.Links, l)
			}
		},
	}
	d.decodeFields(entries, &c.Integration, fields, pagerDutyUnapplied, knownKeys(fields))
	switch {
	case c.RoutingKey == "" && c.RoutingKeyFile == "":
		d.errorf(resolve(n), path, "missing routing key: one of routing_key and routing_key_file is required (Events API v2)")
	case c.RoutingKey != "" && c.RoutingKeyFile != "":
		d.errorf(resolve(n), path, "at most one of routing_key and routing_key_file may be set")
	}
	d.checkURL(entries, path, "url", c.URL)
	for i, l := range c.Links {
		if l.Href == "" {
			d.errorf(nil, index(joinKey(path, "links"), i), "href is required")
		}
	}
	for i, img := range c.Images {
		if img.Src == "" {
			d.errorf(nil, index(joinKey(path, "images"), i), "src is required")
		}
	}
	return c, len(d.errs) == before
}

func (d *decoder) slack(n *yaml.Node, path string) (*SlackConfig, bool) {
	entries, ok := d.mapping(n, path)
	if !ok {
		return nil, false
	}
	before := len(d.errs)
	c := &SlackConfig{Integration: Integration{Path: path}} // send_resolved: false, as in Alertmanager
	fields := fieldSet{
		"api_url": &c.APIURL, "api_url_file": &c.APIURLFile, "channel": &c.Channel, "username": &c.Username,
		"icon_emoji": &c.IconEmoji, "icon_url": &c.IconURL, "title": &c.Title, "title_link": &c.TitleLink, "text": &c.Text,
	}
	d.decodeFields(entries, &c.Integration, fields, slackUnapplied, knownKeys(fields))
	if c.APIURL != "" && c.APIURLFile != "" {
		d.errorf(resolve(n), path, "at most one of api_url and api_url_file may be set")
	}
	d.checkURL(entries, path, "api_url", c.APIURL)
	return c, len(d.errs) == before
}

func (d *decoder) jira(n *yaml.Node, path string) (*JiraConfig, bool) {
	entries, ok := d.mapping(n, path)
	if !ok {
		return nil, false
	}
	before := len(d.errs)
	c := &JiraConfig{Integration: Integration{SendResolved: true, Path: path}}
	fields := fieldSet{
		"api_url": &c.APIURL, "project": &c.Project, "issue_type": &c.IssueType, "summary": &c.Summary,
		"description": &c.Description, "priority": &c.Priority, "labels": &c.Labels,
		"resolve_transition": &c.ResolveTransition, "reopen_transition": &c.ReopenTransition,
	}
	d.decodeFields(entries, &c.Integration, fields, jiraUnapplied, knownKeys(fields))
	if c.Project == "" {
		d.errorf(resolve(n), joinKey(path, "project"), "is required")
	}
	if c.IssueType == "" {
		d.errorf(resolve(n), joinKey(path, "issue_type"), "is required")
	}
	d.checkURL(entries, path, "api_url", c.APIURL)
	return c, len(d.errs) == before
}

// serviceNowStates are the statuses states may map.
var serviceNowStates = []string{"open", "acknowledged", "resolved"}

func (d *decoder) serviceNow(n *yaml.Node, path string) (*ServiceNowConfig, bool) {
	entries, ok := d.mapping(n, path)
	if !ok {
		return nil, false
	}
	before := len(d.errs)
	c := &ServiceNowConfig{Integration: Integration{SendResolved: true, Path: path}}
	fields := fieldSet{
		"api_url": &c.APIURL, "table": &c.Table, "short_description": &c.ShortDescription, "description": &c.Description,
		"assignment_group": &c.AssignmentGroup, "caller_id": &c.CallerID, "category": &c.Category,
		"states": &c.States, "close_code": &c.CloseCode, "close_notes": &c.CloseNotes,
	}
	d.decodeFields(entries, &c.Integration, fields, nil, knownKeys(fields))
	if c.APIURL == "" {
		d.errorf(resolve(n), joinKey(path, "api_url"), "is required: the instance, as in https://example.service-now.com")
	}
	d.checkURL(entries, path, "api_url", c.APIURL)
	if c.Table != "" && !validTableName(c.Table) {
		d.errorf(nil, joinKey(path, "table"), "%q is not a table name (letters, digits and _)", c.Table)
	}
	for k, v := range c.States {
		if !slices.Contains(serviceNowStates, k) {
			d.errorf(nil, joinKey(joinKey(path, "states"), k), "unknown status (open, acknowledged, resolved)")
		} else if v == "" {
			d.errorf(nil, joinKey(joinKey(path, "states"), k), "empty state")
		}
	}
	if c.Table == "" {
		c.Table = "incident"
	}
	return c, len(d.errs) == before
}

func validTableName(s string) bool {
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_') {
			return false
		}
	}
	return s != "" && len(s) <= 80
}

func (d *decoder) templateWebhook(n *yaml.Node, path string) (*TemplateConfig, bool) {
	before := len(d.errs)
	c := &TemplateConfig{}
	d.webhook(n, path, &c.WebhookConfig, "template, template_file, content_type, secret_file", func(e entry) bool {
		p, ok := map[string]*string{"template": &c.Template, "template_file": &c.TemplateFile, "content_type": &c.ContentType, "secret_file": &c.SecretFile}[e.key]
		if ok {
			*p, _ = d.str(e.val, e.path)
		}
		return ok
	})
	if resolve(n).Kind == yaml.MappingNode {
		switch {
		case c.Template == "" && c.TemplateFile == "":
			d.errorf(resolve(n), path, "one of template and template_file is required")
		case c.Template != "" && c.TemplateFile != "":
			d.errorf(resolve(n), path, "at most one of template and template_file may be set")
		}
	}
	if strings.ContainsAny(c.ContentType, "\r\n\x00") {
		d.errorf(nil, joinKey(path, "content_type"), "contains a line break or NUL")
	}
	if c.ContentType == "" {
		c.ContentType = "application/json"
	}
	return c, len(d.errs) == before
}

// integrationDefaults applies the global section to the integrations, as
// Alertmanager does: http_config, pagerduty_url, slack_api_url(_file),
// jira_api_url. It reports integrations that still lack a URL.
func (d *decoder) integrationDefaults(cfg *Config) {
	g := cfg.Global
	str := func(k string) string { s, _ := g.Extra[k].(string); return s }
	http := func(h **HTTPConfig) {
		if *h == nil {
			*h = g.HTTPConfig
		}
	}
	for _, r := range cfg.Receivers {
		for _, c := range r.PagerDutyConfigs {
			http(&c.HTTPConfig)
			if c.URL == "" {
				c.URL = str("pagerduty_url")
			}
			if c.URL == "" {
				c.URL = PagerDutyEventsURL
			}
		}
		for _, c := range r.SlackConfigs {
			http(&c.HTTPConfig)
			if c.APIURL == "" && c.APIURLFile == "" {
				c.APIURL, c.APIURLFile = str("slack_api_url"), str("slack_api_url_file")
				if c.APIURL == "<secret>" {
					// Taken as Alertmanager takes it (the redacted value
					// it prints), but no URL to send to.
					d.errorf(nil, c.Path, "global.slack_api_url is <secret>, the redacted value Alertmanager prints, not a URL: set the URL, or slack_api_url_file")
					continue
				}
			}
			if c.APIURL == "" && c.APIURLFile == "" {
				d.errorf(nil, c.Path, "no api_url: set api_url or api_url_file, or global.slack_api_url")
			}
		}
		for _, c := range r.JiraConfigs {
			http(&c.HTTPConfig)
			if c.APIURL == "" {
				c.APIURL = str("jira_api_url")
			}
			if c.APIURL == "" {
				d.errorf(nil, c.Path, "no api_url: set api_url, or global.jira_api_url")
			}
		}
		for _, c := range r.ServiceNowConfigs {
			http(&c.HTTPConfig)
		}
		for _, c := range r.TemplateConfigs {
			http(&c.HTTPConfig)
		}
	}
}

// readTemplateFiles reads every template_file (joined to dir) into
// Template, so that the configuration is whole once loaded.
func (c *Config) readTemplateFiles(dir string) error {
	var errs Errors
	for _, r := range c.Receivers {
		for _, t := range r.TemplateConfigs {
			if t.TemplateFile == "" {
				continue
			}
			t.TemplateFile = joinDir(dir, t.TemplateFile)
			data, err := readBounded(t.TemplateFile, MaxTemplateFileSize)
			if err != nil {
				errs = append(errs, &Error{Path: joinKey(t.Path, "template_file"), Msg: err.Error()})
				continue
			}
			t.Template = data
		}
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}

func readBounded(path string, max int) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, int64(max)+1))
	if err != nil {
		return "", err
	}
	if len(data) > max {
		return "", fmt.Errorf("%s: larger than %d bytes", path, max)
	}
	return string(data), nil
}
