package amconfig

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aiops-dev/aiops/pkg/config"
)

// base is the smallest valid configuration; cases add to it.
const base = `
route:
  receiver: a
receivers:
- name: a
`

// configCase is a configuration with what Parse must say about it and
// what Alertmanager 0.25 says (TestCheckConfigAgainstAmtool checks the
// latter with the real amtool).
type configCase struct {
	name string
	yaml string
	// wantErr are substrings of the error, the first naming the key; nil
	// when the configuration is valid.
	wantErr []string
	// amAccepts: amtool check-config accepts it.
	amAccepts bool
	// why explains a case where aiops and Alertmanager do not agree.
	why string
}

// utf8Names is why aiops takes a configuration that Debian's Alertmanager
// 0.25 refuses: label names that are not classic Prometheus names, in
// matchers, group_by and equal, as Alertmanager 0.27 and later take them.
const utf8Names = "UTF-8 label names came in Alertmanager 0.27"

var configCases = []configCase{
	// Valid.
	{name: "minimal", yaml: base, amAccepts: true},
	{name: "yaml 1.1 booleans", amAccepts: true, yaml: `
route:
  receiver: a
  routes:
  - {matchers: [a=b], continue: yes}
  - {matchers: [a=c], continue: off}
receivers: [{name: a}]
`},
	{name: "empty lists of unsupported receiver types configure nothing", amAccepts: true, yaml: base + `
- name: b
  email_configs: []
  slack_configs:
`},
	{name: "time intervals in every form", amAccepts: true, yaml: base + `
time_intervals:
- name: all
  time_intervals:
  - times: [{start_time: '00:00', end_time: '24:00'}]
    weekdays: ['Monday:FRIDAY', sunday]
    days_of_month: ['1:5', '-3:-1', '-7', '31']
    months: ['january:march', '12', '13']
    years: ['2020:2030']
    location: America/New_York
  - {}
mute_time_intervals:
- name: legacy
  time_intervals: []
`},
	{name: "webhook with every 0.25 key", amAccepts: true, yaml: `
route: {receiver: a}
receivers:
- name: a
  webhook_configs:
  - url: https://example.com/x
    send_resolved: false
    max_alerts: 3
    http_config:
      bearer_token: t
      proxy_url: http://proxy:3128
      proxy_connect_header: {X-A: [b]}
      follow_redirects: false
      enable_http2: false
      tls_config: {ca_file: ca.pem, cert_file: c.pem, key_file: k.pem, server_name: x, insecure_skip_verify: true, min_version: TLS12, max_version: TLS13}
  - url: http://example.com/y
    http_config:
      oauth2: {client_id: id, client_secret_file: /s, token_url: 'https://t/', scopes: [a], endpoint_params: {k: v}}
`},
	{name: "url_file", wantErr: nil, amAccepts: false, why: "url_file came in Alertmanager 0.26", yaml: `
route: {receiver: a}
receivers:
- name: a
  webhook_configs:
  - url_file: /etc/secrets/url
`},
	{name: "aiops webhook", amAccepts: false, why: "aiops_webhook_configs is aiops's own receiver type", yaml: `
route: {receiver: a}
receivers:
- name: a
  aiops_webhook_configs:
  - url: https://example.com/x
    secret_file: secret
`},
	{name: "global keys newer than 0.25", amAccepts: false, why: "smtp_tls_config and rocketchat_api_url came after Alertmanager 0.25", yaml: `
global:
  smtp_tls_config: {insecure_skip_verify: true}
  rocketchat_api_url: https://chat.example.com
` + base},

	{name: "scalars of other types as strings", amAccepts: true, yaml: `
route: {receiver: 123, routes: [{receiver: true, match: {a: ~, b: 1.50}}]}
receivers: [{name: 123}, {name: true}]
`},
	{name: "null items", amAccepts: true, yaml: base + `
inhibit_rules: [~]
time_intervals:
- name: x
  time_intervals: [~, {weekdays: [~], days_of_month: [~], months: [~], years: [~], times: [~], location: ''}]
`},
	{name: "max_alerts in other notations", amAccepts: true, yaml: `
route: {receiver: a}
receivers: [{name: a, webhook_configs: [{url: 'http://x/', max_alerts: 0x10}, {url: 'http://x/', max_alerts: 2.5}]}]
`},
	{name: "max_alerts quoted", yaml: "route: {receiver: a}\nreceivers: [{name: a, webhook_configs: [{url: 'http://x/', max_alerts: '5'}]}]\n", wantErr: []string{"max_alerts: expected a non-negative integer"}},
	{name: "continue quoted", yaml: "route: {receiver: a, routes: [{continue: 'true'}]}\nreceivers: [{name: a}]\n", wantErr: []string{"route.routes[0].continue: expected true or false"}},
	{name: "group_by a string", yaml: "route: {receiver: a, group_by: a}\nreceivers: [{name: a}]\n", wantErr: []string{"route.group_by: expected a list"}},
	{name: "templates a string", yaml: base + "templates: a\n", wantErr: []string{"templates: expected a list"}},
	{name: "a matcher that is a number", yaml: "route: {receiver: a, routes: [{matchers: [123]}]}\nreceivers: [{name: a}]\n", wantErr: []string{"route.routes[0].matchers[0]: bad matcher format: 123"}},
	{name: "null route", yaml: "route: {receiver: a, routes: [~]}\nreceivers: [{name: a}]\n", wantErr: []string{"route.routes[0]: expected a route, got null"}},
	{name: "null receiver", yaml: "route: {receiver: a}\nreceivers: [{name: a}, ~]\n", wantErr: []string{"receivers[1]: name is required"}},
	{name: "empty equal label", yaml: base + "inhibit_rules: [{equal: ['']}]\n", wantErr: []string{`inhibit_rules[0].equal[0]: "" is not a valid label name`}},
	{name: "a merge key under an explicit key of a route", amAccepts: true, yaml: "route: {receiver: a, routes: [{<<: {receiver: a}, receiver: a}]}\nreceivers: [{name: a}]\n"},

	// The file and its top level.
	{name: "empty file", yaml: "", wantErr: []string{"route", "empty"}},
	{name: "not yaml", yaml: "route: [", wantErr: []string{"not YAML"}},
	{name: "top level a list", yaml: "- a", wantErr: []string{"(top level): expected a mapping"}},
	{name: "unknown top-level key", yaml: base + "foo: 1\n", wantErr: []string{"foo: unknown key"}},
	{name: "null route", yaml: "route:\nreceivers: [{name: a}]\n", wantErr: []string{"route: is required"}},
	{name: "key written twice", yaml: "route: {receiver: a, receiver: a}\nreceivers: [{name: a}]\n", wantErr: []string{"route.receiver: key written twice"}},
	{name: "merge key into a match map that sets a label again", yaml: `
route:
  receiver: a
  routes:
  - match: &m {team: web}
  - match: {team: db, <<: *m}
receivers: [{name: a}]
`, wantErr: []string{"route.routes[1].match.team: key set twice"}},

	// Routes.
	{name: "unknown route key", yaml: "route: {receiver: a, recevier: b}\nreceivers: [{name: a}]\n", wantErr: []string{"route.recevier: unknown key"}},
	{name: "unknown key in a child route", yaml: `
route:
  receiver: a
  routes:
  - matcher: [a=b]
receivers: [{name: a}]
`, wantErr: []string{"route.routes[0].matcher: unknown key"}},
	{name: "root without receiver", yaml: "route: {group_by: [a]}\nreceivers: [{name: a}]\n", wantErr: []string{"route.receiver: the root route must name a receiver"}},
	{name: "root with matchers", yaml: "route: {receiver: a, matchers: [a=b]}\nreceivers: [{name: a}]\n", wantErr: []string{"route.matchers: the root route must not have matchers"}},
	{name: "root with match", yaml: "route: {receiver: a, match: {a: b}}\nreceivers: [{name: a}]\n", wantErr: []string{"route.match: the root route must not have matchers"}},
	{name: "root with match_re", yaml: "route: {receiver: a, match_re: {a: b}}\nreceivers: [{name: a}]\n", wantErr: []string{"route.match_re: the root route must not have matchers"}},
	{name: "root with empty matchers", yaml: "route: {receiver: a, matchers: []}\nreceivers: [{name: a}]\n", amAccepts: true},
	{name: "root with continue", yaml: "route: {receiver: a, continue: true}\nreceivers: [{name: a}]\n", wantErr: []string{"route.continue: the root route cannot have continue"}},
	{name: "root with mute_time_intervals", yaml: "route: {receiver: a, mute_time_intervals: [x]}\nreceivers: [{name: a}]\ntime_intervals: [{name: x}]\n", wantErr: []string{"route.mute_time_intervals: the root route must not have mute time intervals"}},
	{name: "root with active_time_intervals", yaml: "route: {receiver: a, active_time_intervals: [x]}\nreceivers: [{name: a}]\ntime_intervals: [{name: x}]\n", wantErr: []string{"route.active_time_intervals: the root route must not have active"}},
	{name: "undefined receiver", yaml: `
route:
  receiver: a
  routes:
  - matchers: [a=b]
    routes:
    - receiver: nope
receivers: [{name: a}]
`, wantErr: []string{`route.routes[0].routes[0].receiver: undefined receiver "nope"`}},
	{name: "undefined root receiver", yaml: "route: {receiver: b}\nreceivers: [{name: a}]\n", wantErr: []string{`route.receiver: undefined receiver "b"`}},
	{name: "undefined mute time interval", yaml: `
route:
  receiver: a
  routes:
  - mute_time_intervals: [weekends]
receivers: [{name: a}]
`, wantErr: []string{`route.routes[0].mute_time_intervals: undefined time interval "weekends"`}},
	{name: "undefined active time interval", yaml: `
route:
  receiver: a
  routes:
  - active_time_intervals: [hours]
receivers: [{name: a}]
mute_time_intervals: [{name: other}]
`, wantErr: []string{`route.routes[0].active_time_intervals: undefined time interval "hours"`}},
	{name: "bad matcher", yaml: "route:\n  receiver: a\n  routes:\n  - matchers: [foo]\nreceivers: [{name: a}]\n", wantErr: []string{"route.routes[0].matchers[0]: bad matcher format: foo"}},
	{name: "matcher with an unescaped quote", yaml: "route:\n  receiver: a\n  routes:\n  - matchers: ['a=\"b\"c\"']\nreceivers: [{name: a}]\n", wantErr: []string{"route.routes[0].matchers[0]: matcher value contains unescaped double quote"}},
	{name: "matcher with an unclosed quote", yaml: "route:\n  receiver: a\n  routes:\n  - matchers: ['a=\"b']\nreceivers: [{name: a}]\n", wantErr: []string{"route.routes[0].matchers[0]: matcher value contains unescaped double quote"}},
	{name: "matcher with a bad regex", yaml: "route:\n  receiver: a\n  routes:\n  - matchers: ['a=~\"(\"']\nreceivers: [{name: a}]\n", wantErr: []string{"route.routes[0].matchers[0]: error parsing regexp"}},
	{name: "empty matcher before a comma", yaml: "route:\n  receiver: a\n  routes:\n  - matchers: [',a=b']\nreceivers: [{name: a}]\n", wantErr: []string{"route.routes[0].matchers[0]: bad matcher format"}},
	{name: "matchers not a list", yaml: "route:\n  receiver: a\n  routes:\n  - matchers: a=b\nreceivers: [{name: a}]\n", wantErr: []string{"route.routes[0].matchers: expected a list"}},
	{name: "match with a bad label name", yaml: "route:\n  receiver: a\n  routes:\n  - match: {foo-bar: x}\nreceivers: [{name: a}]\n", wantErr: []string{`route.routes[0].match.foo-bar: "foo-bar" is not a valid label name`}},
	{name: "match with a colon in the label name", yaml: "route:\n  receiver: a\n  routes:\n  - match: {'a:b': x}\nreceivers: [{name: a}]\n", wantErr: []string{`route.routes[0].match.a:b: "a:b" is not a valid label name`}},
	{name: "match_re with a bad regex", yaml: "route:\n  receiver: a\n  routes:\n  - match_re: {a: '['}\nreceivers: [{name: a}]\n", wantErr: []string{"route.routes[0].match_re.a: invalid regular expression"}},
	{name: "group_by with an empty label", yaml: "route: {receiver: a, group_by: ['']}\nreceivers: [{name: a}]\n", wantErr: []string{`route.group_by[0]: "" is not a valid label name`}},
	{name: "group_by with UTF-8 label names", yaml: "route: {receiver: a, group_by: [a-b, otel.scope.name, 'service name', été]}\nreceivers: [{name: a}]\n", amAccepts: false, why: utf8Names},
	{name: "matchers with UTF-8 label names", amAccepts: false, why: utf8Names, yaml: `
route:
  receiver: a
  routes:
  - matchers: ['{"otel.scope.name"="checkout", k8s.pod.name=~"web-.*"}', '"service name"!="x"']
receivers: [{name: a}]
`},
	{name: "match with a dotted label name", yaml: "route:\n  receiver: a\n  routes:\n  - match: {otel.scope.name: x}\nreceivers: [{name: a}]\n", wantErr: []string{`route.routes[0].match.otel.scope.name: "otel.scope.name" is not a valid label name ([a-zA-Z_][a-zA-Z0-9_]*; name others in a matchers list, double-quoted)`}},
	{name: "matcher with a bad UTF-8 label name", yaml: "route:\n  receiver: a\n  routes:\n  - matchers: ['\"a.b\"=~\"(\"']\nreceivers: [{name: a}]\n", wantErr: []string{"route.routes[0].matchers[0]: error parsing regexp"}},
	{name: "group_by with ... and a label", yaml: "route: {receiver: a, group_by: ['...', a]}\nreceivers: [{name: a}]\n", wantErr: []string{"route.group_by: cannot have '...'"}},
	{name: "group_by with a label twice", yaml: "route: {receiver: a, group_by: [a, b, a]}\nreceivers: [{name: a}]\n", wantErr: []string{`route.group_by[2]: label "a" is listed twice`}},
	{name: "group_interval zero", yaml: "route: {receiver: a, group_interval: 0s}\nreceivers: [{name: a}]\n", wantErr: []string{"route.group_interval: cannot be zero"}},
	{name: "repeat_interval zero", yaml: "route:\n  receiver: a\n  routes: [{repeat_interval: 0}]\nreceivers: [{name: a}]\n", wantErr: []string{"route.routes[0].repeat_interval: cannot be zero"}},
	{name: "group_wait zero is fine", yaml: "route: {receiver: a, group_wait: 0s}\nreceivers: [{name: a}]\n", amAccepts: true},
	{name: "bad duration", yaml: "route: {receiver: a, group_wait: 5 minutes}\nreceivers: [{name: a}]\n", wantErr: []string{"route.group_wait: not a valid duration"}},
	{name: "durations out of order", yaml: "route: {receiver: a, group_wait: 1m1h}\nreceivers: [{name: a}]\n", wantErr: []string{"route.group_wait: not a valid duration"}},
	{name: "continue not a boolean", yaml: "route:\n  receiver: a\n  routes: [{continue: maybe}]\nreceivers: [{name: a}]\n", wantErr: []string{"route.routes[0].continue: expected true or false"}},
	{name: "routes a mapping", yaml: "route:\n  receiver: a\n  routes: {receiver: a}\nreceivers: [{name: a}]\n", wantErr: []string{"route.routes: expected a list"}},

	// Receivers.
	{name: "receiver without name", yaml: "route: {receiver: a}\nreceivers: [{name: a}, {webhook_configs: []}]\n", wantErr: []string{"receivers[1]: name is required"}},
	{name: "duplicate receiver", yaml: "route: {receiver: a}\nreceivers: [{name: a}, {name: a}]\n", wantErr: []string{`receivers[1] (a).name: receiver name "a" is not unique: receivers[0] (a) has it too`}},
	{name: "email receiver", amAccepts: true, why: "aiops does not send email", yaml: base + `
- name: b
- name: team-x
  email_configs: [{to: x@example.com, from: am@example.com, smarthost: 'mail:25'}]
`, wantErr: []string{"receivers[2] (team-x): email_configs is not supported by aiops (supported: webhook_configs, pagerduty_configs, slack_configs, jira_configs, aiops_webhook_configs, servicenow_configs, aiops_template_configs)"}},
	{name: "opsgenie receiver", amAccepts: true, why: "aiops does not send to Opsgenie", yaml: base + `
- name: og
  opsgenie_configs: [{api_key: k}]
`, wantErr: []string{"receivers[1] (og): opsgenie_configs is not supported by aiops"}},

	// PagerDuty, Slack and Jira as Alertmanager writes them.
	{name: "slack receiver", amAccepts: true, yaml: base + `
- name: chat
  slack_configs: [{api_url: 'https://hooks.example.com/x', channel: '#a'}]
`},
	{name: "pagerduty receiver", amAccepts: true, yaml: base + `
- name: pd
  pagerduty_configs: [{routing_key: k}]
`},
	{name: "pagerduty with every applied key", amAccepts: true, yaml: base + `
- name: pd
  pagerduty_configs:
  - routing_key_file: /etc/secrets/pd
    url: https://events.example.com/v2/enqueue
    client: aiops
    client_url: https://aiops.example.com/
    description: '{{ .Title }}'
    details: {team: '{{ .Team }}', env: prod}
    images: [{src: 'https://x.example.com/i.png', alt: graph, href: 'https://x.example.com/'}]
    links: [{href: 'https://x.example.com/', text: dashboard}]
    source: '{{ .Service }}'
    severity: critical
    class: latency
    component: db
    group: payments
    send_resolved: false
    http_config: {proxy_url: 'http://proxy:3128'}
`},
	{name: "slack with every applied key", amAccepts: true, yaml: `
global:
  slack_api_url_file: /etc/secrets/slack
route: {receiver: a}
receivers:
- name: a
  slack_configs:
  - channel: '#incidents'
    username: aiops
    icon_emoji: ':rotating_light:'
    icon_url: 'https://x.example.com/i.png'
    title: '{{ .Title }}'
    title_link: 'https://aiops.example.com/'
    text: '{{ .Summary }}'
    send_resolved: true
  - api_url_file: /etc/secrets/slack2
`},
	{name: "pagerduty without a routing key", amAccepts: false, yaml: base + "- name: pd\n  pagerduty_configs: [{url: 'https://x.example.com/'}]\n",
		wantErr: []string{"receivers[1] (pd).pagerduty_configs[0]: missing routing key"}},
	{name: "pagerduty with routing_key and routing_key_file", amAccepts: false, yaml: base + "- name: pd\n  pagerduty_configs: [{routing_key: a, routing_key_file: /b}]\n",
		wantErr: []string{"receivers[1] (pd).pagerduty_configs[0]: at most one of routing_key and routing_key_file"}},
	{name: "pagerduty service_key", amAccepts: true, why: "service_key is the Events API v1, which aiops does not send", yaml: base + "- name: pd\n  pagerduty_configs: [{service_key: a}]\n",
		wantErr: []string{"receivers[1] (pd).pagerduty_configs[0].service_key: an Alertmanager key that aiops does not apply", "receivers[1] (pd).pagerduty_configs[0]: missing routing key"}},
	{name: "pagerduty link without href", amAccepts: true, why: "Alertmanager 0.25 does not check links", yaml: base + "- name: pd\n  pagerduty_configs: [{routing_key: a, links: [{text: t}]}]\n",
		wantErr: []string{"receivers[1] (pd).pagerduty_configs[0].links[0]: href is required"}},
	{name: "pagerduty bad url", amAccepts: false, yaml: base + "- name: pd\n  pagerduty_configs: [{routing_key: a, url: 'ftp://x/'}]\n",
		wantErr: []string{`receivers[1] (pd).pagerduty_configs[0].url: unsupported URL scheme "ftp"`}},
	{name: "slack without api_url", amAccepts: false, yaml: base + "- name: s\n  slack_configs: [{channel: x}]\n",
		wantErr: []string{"receivers[1] (s).slack_configs[0]: no api_url"}},
	{name: "slack with api_url and api_url_file", amAccepts: false, yaml: base + "- name: s\n  slack_configs: [{api_url: 'https://x/', api_url_file: /y}]\n",
		wantErr: []string{"receivers[1] (s).slack_configs[0]: at most one of api_url and api_url_file"}},
	{name: "slack color", amAccepts: true, why: "aiops sends Block Kit messages without attachment colours; a key it would ignore is an error", yaml: base + "- name: s\n  slack_configs: [{api_url: 'https://x/', color: danger}]\n",
		wantErr: []string{"receivers[1] (s).slack_configs[0].color: an Alertmanager key that aiops does not apply"}},
	{name: "slack unknown key", amAccepts: false, yaml: base + "- name: s\n  slack_configs: [{api_url: 'https://x/', chanel: x}]\n",
		wantErr: []string{"receivers[1] (s).slack_configs[0].chanel: unknown key (known keys: send_resolved, http_config, api_url, api_url_file, channel"}},
	{name: "jira receiver", amAccepts: false, why: "jira_configs came in Alertmanager 0.28", yaml: base + `
- name: j
  jira_configs:
  - api_url: https://jira.example.com/rest/api/2
    project: OPS
    issue_type: Bug
    summary: '{{ .Title }}'
    description: '{{ .Summary }}'
    labels: [aiops, '{{ .Team }}']
    priority: High
    resolve_transition: Done
    reopen_transition: Reopen
    send_resolved: true
    http_config: {basic_auth: {username: bot, password_file: /etc/secrets/jira}}
`},
	{name: "jira without project", amAccepts: false, yaml: base + "- name: j\n  jira_configs: [{api_url: 'https://x/', issue_type: Bug}]\n",
		wantErr: []string{"receivers[1] (j).jira_configs[0].project: is required"}},
	{name: "jira without api_url", amAccepts: false, yaml: base + "- name: j\n  jira_configs: [{project: P, issue_type: Bug}]\n",
		wantErr: []string{"receivers[1] (j).jira_configs[0]: no api_url"}},
	{name: "jira fields", amAccepts: false, yaml: base + "- name: j\n  jira_configs: [{api_url: 'https://x/', project: P, issue_type: Bug, fields: {customfield_1: x}}]\n",
		wantErr: []string{"receivers[1] (j).jira_configs[0].fields: an Alertmanager key that aiops does not apply"}},

	// aiops's own.
	{name: "servicenow receiver", amAccepts: false, why: "servicenow_configs is aiops's own", yaml: base + `
- name: sn
  servicenow_configs:
  - api_url: https://example.service-now.com
    assignment_group: db-ops
    states: {acknowledged: '3'}
    http_config: {basic_auth: {username: aiops, password_file: /etc/secrets/sn}}
`},
	{name: "servicenow without api_url", amAccepts: false, yaml: base + "- name: sn\n  servicenow_configs: [{table: incident}]\n",
		wantErr: []string{"receivers[1] (sn).servicenow_configs[0].api_url: is required"}},
	{name: "servicenow bad table and state", amAccepts: false, yaml: base + "- name: sn\n  servicenow_configs: [{api_url: 'https://x/', table: 'incident?x=1', states: {closed: '7'}}]\n",
		wantErr: []string{"receivers[1] (sn).servicenow_configs[0].table: \"incident?x=1\" is not a table name", "servicenow_configs[0].states.closed: unknown status"}},
	{name: "template receiver", amAccepts: false, why: "aiops_template_configs is aiops's own", yaml: base + `
- name: t
  aiops_template_configs:
  - url: https://x.example.com/hook
    template: '{"title": {{ json .Title }}}'
  - url: https://x.example.com/text
    template: '{{ .Title }}'
    content_type: text/plain
    secret_file: /etc/secrets/t
`},
	{name: "template receiver without a template", amAccepts: false, yaml: base + "- name: t\n  aiops_template_configs: [{url: 'https://x/'}]\n",
		wantErr: []string{"receivers[1] (t).aiops_template_configs[0]: one of template and template_file is required"}},
	{name: "unknown receiver key", yaml: base + "  foo_configs: [{}]\n", wantErr: []string{"receivers[0] (a).foo_configs: unknown key"}},
	{name: "webhook without url", yaml: "route: {receiver: a}\nreceivers: [{name: a, webhook_configs: [{send_resolved: true}]}]\n", wantErr: []string{"receivers[0] (a).webhook_configs[0]: one of url or url_file is required"}},
	{name: "webhook null entry", yaml: "route: {receiver: a}\nreceivers: [{name: a, webhook_configs: [~]}]\n", wantErr: []string{"receivers[0] (a).webhook_configs[0]: one of url or url_file is required"}},
	{name: "webhook with ftp url", yaml: "route: {receiver: a}\nreceivers: [{name: a, webhook_configs: [{url: 'ftp://x/'}]}]\n", wantErr: []string{`receivers[0] (a).webhook_configs[0].url: unsupported URL scheme "ftp"`}},
	{name: "webhook url without host", yaml: "route: {receiver: a}\nreceivers: [{name: a, webhook_configs: [{url: 'http:///x'}]}]\n", wantErr: []string{"receivers[0] (a).webhook_configs[0].url: the URL has no host"}},
	{name: "webhook with url and url_file", yaml: "route: {receiver: a}\nreceivers: [{name: a, webhook_configs: [{url: 'http://x/', url_file: f}]}]\n", wantErr: []string{"receivers[0] (a).webhook_configs[0]: at most one of url and url_file"}},
	{name: "webhook unknown key", yaml: "route: {receiver: a}\nreceivers: [{name: a, webhook_configs: [{url: 'http://x/', secret_file: f}]}]\n", wantErr: []string{"receivers[0] (a).webhook_configs[0].secret_file: unknown key", "aiops_webhook_configs"}},
	{name: "webhook negative max_alerts", yaml: "route: {receiver: a}\nreceivers: [{name: a, webhook_configs: [{url: 'http://x/', max_alerts: -1}]}]\n", wantErr: []string{"receivers[0] (a).webhook_configs[0].max_alerts: expected a non-negative integer"}},
	{name: "http_config with two bearer tokens", yaml: "route: {receiver: a}\nreceivers: [{name: a, webhook_configs: [{url: 'http://x/', http_config: {bearer_token: a, bearer_token_file: b}}]}]\n", wantErr: []string{"receivers[0] (a).webhook_configs[0].http_config: at most one of bearer_token and bearer_token_file"}},
	{name: "http_config with basic_auth and authorization", yaml: "route: {receiver: a}\nreceivers: [{name: a, webhook_configs: [{url: 'http://x/', http_config: {basic_auth: {username: u}, authorization: {credentials: c}}}]}]\n", wantErr: []string{"receivers[0] (a).webhook_configs[0].http_config: at most one of basic_auth, oauth2 and authorization"}},
	{name: "http_config unknown key", yaml: "route: {receiver: a}\nreceivers: [{name: a, webhook_configs: [{url: 'http://x/', http_config: {no_proxy: x}}]}]\n", wantErr: []string{"receivers[0] (a).webhook_configs[0].http_config.no_proxy: unknown key"}},
	{name: "http_config bad tls version", yaml: "route: {receiver: a}\nreceivers: [{name: a, webhook_configs: [{url: 'http://x/', http_config: {tls_config: {min_version: TLS9}}}]}]\n", wantErr: []string{"receivers[0] (a).webhook_configs[0].http_config.tls_config.min_version: unknown TLS version"}},
	{name: "http_config oauth2 without client_id", yaml: "route: {receiver: a}\nreceivers: [{name: a, webhook_configs: [{url: 'http://x/', http_config: {oauth2: {client_secret: s, token_url: t}}}]}]\n", wantErr: []string{"receivers[0] (a).webhook_configs[0].http_config: oauth2.client_id is required"}},
	{name: "http_config basic authorization", yaml: "route: {receiver: a}\nreceivers: [{name: a, webhook_configs: [{url: 'http://x/', http_config: {authorization: {type: Basic}}}]}]\n", wantErr: []string{`receivers[0] (a).webhook_configs[0].http_config: authorization.type cannot be "basic"`}},
	{name: "proxy_connect_header without proxy_url", yaml: "route: {receiver: a}\nreceivers: [{name: a, webhook_configs: [{url: 'http://x/', http_config: {proxy_connect_header: {a: [b]}}}]}]\n", wantErr: []string{"receivers[0] (a).webhook_configs[0].http_config: proxy_connect_header needs proxy_url"}},
	{name: "aiops webhook without secret_file", yaml: "route: {receiver: a}\nreceivers: [{name: a, aiops_webhook_configs: [{url: 'http://x/'}]}]\n", wantErr: []string{"receivers[0] (a).aiops_webhook_configs[0].secret_file: is required"}},
	{name: "aiops webhook unknown key", yaml: "route: {receiver: a}\nreceivers: [{name: a, aiops_webhook_configs: [{url: 'http://x/', secret_file: s, secret: x}]}]\n", wantErr: []string{"receivers[0] (a).aiops_webhook_configs[0].secret: unknown key"}},
	{name: "receivers a mapping", yaml: "route: {receiver: a}\nreceivers: {name: a}\n", wantErr: []string{"receivers: expected a list"}},

	// Inhibit rules.
	{name: "inhibit rule with every key", amAccepts: true, yaml: base + `
inhibit_rules:
- source_match: {a: b}
  source_match_re: {c: 'd|e'}
  source_matchers: ['f!="g"']
  target_match: {h: i}
  target_match_re: {j: k.*}
  target_matchers: [l=~m, n!~o]
  equal: [p, q]
`},
	{name: "inhibit rule with a bad matcher", yaml: base + "inhibit_rules: [{source_matchers: ['a=b'], target_matchers: ['c']}]\n", wantErr: []string{"inhibit_rules[0].target_matchers[0]: bad matcher format"}},
	{name: "inhibit rule with UTF-8 names", yaml: base + "inhibit_rules: [{source_matchers: ['\"k8s.pod.name\"=~\".+\"'], equal: [x-y, k8s.pod.name]}]\n", amAccepts: false, why: utf8Names},
	{name: "inhibit rule with a bad source_match label", yaml: base + "inhibit_rules: [{source_match: {'x y': b}}]\n", wantErr: []string{`inhibit_rules[0].source_match.x y: "x y" is not a valid label name`}},
	{name: "inhibit rule unknown key", yaml: base + "inhibit_rules: [{source: {a: b}}]\n", wantErr: []string{"inhibit_rules[0].source: unknown key"}},

	// Time intervals.
	{name: "time interval without name", yaml: base + "time_intervals: [{time_intervals: []}]\n", wantErr: []string{"time_intervals[0]: name is required"}},
	{name: "time interval name twice", yaml: base + "mute_time_intervals: [{name: x}]\ntime_intervals: [{name: x}]\n", wantErr: []string{`time_intervals[0] (x).name: time interval name "x" is not unique: mute_time_intervals[0] (x) has it too`}},
	{name: "bad weekday", yaml: base + "time_intervals: [{name: x, time_intervals: [{weekdays: [funday]}]}]\n", wantErr: []string{`time_intervals[0] (x).time_intervals[0].weekdays[0]: "funday" is not a weekday`}},
	{name: "weekday range backwards", yaml: base + "time_intervals: [{name: x, time_intervals: [{weekdays: ['saturday:monday']}]}]\n", wantErr: []string{"time_intervals[0] (x).time_intervals[0].weekdays[0]:", "must not come after"}},
	{name: "numeric weekday", yaml: base + "time_intervals: [{name: x, time_intervals: [{weekdays: [1]}]}]\n", wantErr: []string{`weekdays[0]: "1" is not a weekday`}},
	{name: "day of month zero", yaml: base + "time_intervals: [{name: x, time_intervals: [{days_of_month: ['0']}]}]\n", wantErr: []string{"time_intervals[0] (x).time_intervals[0].days_of_month[0]: 0 is not a day of the month"}},
	{name: "day of month 32", yaml: base + "time_intervals: [{name: x, time_intervals: [{days_of_month: ['1:32']}]}]\n", wantErr: []string{"days_of_month[0]: 32 is not a day of the month"}},
	{name: "day of month negative to positive", yaml: base + "time_intervals: [{name: x, time_intervals: [{days_of_month: ['-1:5']}]}]\n", wantErr: []string{"days_of_month[0]:", "end day must be negative"}},
	{name: "day of month backwards", yaml: base + "time_intervals: [{name: x, time_intervals: [{days_of_month: ['10:2']}]}]\n", wantErr: []string{"days_of_month[0]:", "always before"}},
	{name: "month backwards", yaml: base + "time_intervals: [{name: x, time_intervals: [{months: ['march:january']}]}]\n", wantErr: []string{"months[0]:", "end month january is before start month march"}},
	{name: "bad month", yaml: base + "time_intervals: [{name: x, time_intervals: [{months: ['smarch']}]}]\n", wantErr: []string{`months[0]: "smarch" is not a month`}},
	{name: "year backwards", yaml: base + "time_intervals: [{name: x, time_intervals: [{years: ['2025:2024']}]}]\n", wantErr: []string{"years[0]:", "end year 2024 is before start year 2025"}},
	{name: "range of three", yaml: base + "time_intervals: [{name: x, time_intervals: [{years: ['1:2:3']}]}]\n", wantErr: []string{"years[0]:", "is not a range"}},
	{name: "time without end", yaml: base + "time_intervals: [{name: x, time_intervals: [{times: [{start_time: '10:00'}]}]}]\n", wantErr: []string{"time_intervals[0] (x).time_intervals[0].times[0]: both start_time and end_time are required"}},
	{name: "time 25:00", yaml: base + "time_intervals: [{name: x, time_intervals: [{times: [{start_time: '10:00', end_time: '25:00'}]}]}]\n", wantErr: []string{`times[0].end_time: "25:00" is not a time of day`}},
	{name: "time 24:01", yaml: base + "time_intervals: [{name: x, time_intervals: [{times: [{start_time: '10:00', end_time: '24:01'}]}]}]\n", wantErr: []string{`times[0].end_time: "24:01" is not a time of day`}},
	{name: "time one digit hour", yaml: base + "time_intervals: [{name: x, time_intervals: [{times: [{start_time: '9:00', end_time: '10:00'}]}]}]\n", wantErr: []string{`times[0].start_time: "9:00" is not a time of day`}},
	{name: "time backwards", yaml: base + "time_intervals: [{name: x, time_intervals: [{times: [{start_time: '10:00', end_time: '10:00'}]}]}]\n", wantErr: []string{"times[0]: start_time 10:00 must be before end_time 10:00"}},
	{name: "time unknown key", yaml: base + "time_intervals: [{name: x, time_intervals: [{times: [{start: '10:00', start_time: '10:00', end_time: '11:00'}]}]}]\n", wantErr: []string{"times[0].start: unknown key"}},
	{name: "bad location", yaml: base + "time_intervals: [{name: x, time_intervals: [{location: Mars/Olympus}]}]\n", wantErr: []string{"time_intervals[0] (x).time_intervals[0].location: unknown time zone"}},
	{name: "time interval unknown key", yaml: base + "time_intervals: [{name: x, time_intervals: [{hours: ['1']}]}]\n", wantErr: []string{"time_intervals[0] (x).time_intervals[0].hours: unknown key"}},

	// Global.
	{name: "global with every 0.25 key", amAccepts: true, yaml: `
global:
  resolve_timeout: 1h
  http_config: {follow_redirects: false}
  smtp_from: a@example.com
  smtp_hello: example.com
  smtp_smarthost: 'mail.example.com:25'
  smtp_auth_username: u
  smtp_auth_password: p
  smtp_auth_secret: s
  smtp_auth_identity: i
  smtp_require_tls: false
  slack_api_url: https://hooks.example.com/x
  pagerduty_url: https://events.example.com/v2/enqueue
  opsgenie_api_url: https://api.example.com/
  opsgenie_api_key_file: /k
  wechat_api_url: https://wechat.example.com/
  wechat_api_secret: s
  wechat_api_corp_id: c
  victorops_api_url: https://vo.example.com/
  victorops_api_key: k
  telegram_api_url: https://tg.example.com
  webex_api_url: https://webex.example.com/v1/messages
` + base},
	{name: "global unknown key", yaml: "global: {smtp_form: a}\n" + base, wantErr: []string{"global.smtp_form: unknown key"}},
	{name: "global bad resolve_timeout", yaml: "global: {resolve_timeout: soon}\n" + base, wantErr: []string{"global.resolve_timeout: not a valid duration"}},
	{name: "global smarthost without port", yaml: "global: {smtp_smarthost: mail.example.com}\n" + base, wantErr: []string{"global.smtp_smarthost: not host:port"}},
	{name: "global bad url", yaml: "global: {pagerduty_url: 'events.example.com'}\n" + base, wantErr: []string{"global.pagerduty_url: unsupported URL scheme"}},
	{name: "global url and url file", yaml: "global: {slack_api_url: 'https://x/', slack_api_url_file: /f}\n" + base, wantErr: []string{"global: at most one of slack_api_url and slack_api_url_file"}},
	{name: "global smtp_require_tls not a boolean", yaml: "global: {smtp_require_tls: 'sometimes'}\n" + base, wantErr: []string{"global.smtp_require_tls: expected true or false"}},
	{name: "global http_config bad", yaml: "global: {http_config: {bearer_token: a, basic_auth: {username: b}}}\n" + base, wantErr: []string{"global.http_config: at most one of basic_auth, oauth2, bearer_token"}},
}

func TestParseCases(t *testing.T) {
	for _, c := range configCases {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := Parse([]byte(c.yaml))
			if c.wantErr == nil {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				if cfg.Route == nil {
					t.Fatal("no route")
				}
			} else {
				if err == nil {
					t.Fatalf("Parse accepted it; want an error with %q", c.wantErr)
				}
				for _, w := range c.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q\ndoes not contain %q", err, w)
					}
				}
				if !errors.Is(err, ErrInvalidConfig) || !errors.Is(err, config.ErrInvalidConfig) {
					t.Errorf("error does not wrap ErrInvalidConfig: %v", err)
				}
				var e *Error
				if c.name != "not yaml" && (!errors.As(err, &e) || e.Path == "") {
					t.Errorf("error names no key: %v", err)
				}
			}
			// A case where aiops and Alertmanager disagree says why.
			if weAccept := c.wantErr == nil; (weAccept == c.amAccepts) != (c.why == "") {
				t.Errorf("aiops accepts=%v, Alertmanager accepts=%v, why=%q: a difference needs a reason, and only a difference", weAccept, c.amAccepts, c.why)
			}
		})
	}
}

func TestParseCollectsEveryProblem(t *testing.T) {
	_, err := Parse([]byte(`
route:
  routes:
  - receiver: nope
    matchers: [bad]
receivers:
- name: x
  email_configs: [{to: a@b}]
`))
	var es Errors
	if !errors.As(err, &es) {
		t.Fatalf("want Errors, got %v", err)
	}
	want := []string{
		"route.routes[0].matchers[0]: bad matcher format: bad",
		"receivers[0] (x): email_configs is not supported",
		"route.receiver: the root route must name a receiver",
		`route.routes[0].receiver: undefined receiver "nope"`,
	}
	if len(es) != len(want) {
		t.Fatalf("got %d problems, want %d:\n%v", len(es), len(want), err)
	}
	for i, w := range want {
		if !strings.Contains(es[i].Error(), w) {
			t.Errorf("problem %d = %q, want %q", i, es[i], w)
		}
	}
	if !strings.Contains(err.Error(), "(line 5)") {
		t.Errorf("no line numbers in %q", err)
	}
}

func TestParseErrorsHideSecrets(t *testing.T) {
	_, err := Parse([]byte(`
route: {receiver: a}
receivers:
- name: a
  webhook_configs:
  - url: 'ftp://user:s3cr3t@example.com/hook'
    http_config: {bearer_token: [t0k3n]}
`))
	if err == nil || strings.Contains(err.Error(), "s3cr3t") || strings.Contains(err.Error(), "t0k3n") {
		t.Fatalf("error shows a secret or is missing: %v", err)
	}
}

func TestParseRealistic(t *testing.T) {
	cfg, err := Load(filepath.Join("testdata", "routes", "11-realistic.yml"))
	if err != nil {
		t.Fatal(err)
	}
	g := cfg.Global
	if g.ResolveTimeout != 5*time.Minute || !g.HTTPConfig.FollowRedirects || !g.HTTPConfig.EnableHTTP2 {
		t.Errorf("global: %+v %+v", g, g.HTTPConfig)
	}
	wantExtra := map[string]any{
		"smtp_smarthost":   "mail.example.com:587",
		"smtp_from":        "alerts@example.com",
		"smtp_require_tls": true,
		"slack_api_url":    "https://hooks.slack.example.com/services/T000/B000/XXX",
	}
	if !reflect.DeepEqual(g.Extra, wantExtra) {
		t.Errorf("global extra = %v, want %v", g.Extra, wantExtra)
	}
	if want := []string{filepath.Join("testdata", "routes", "templates/*.tmpl")}; !reflect.DeepEqual(cfg.Templates, want) {
		t.Errorf("templates = %q, want %q", cfg.Templates, want)
	}

	db, ok := cfg.Receiver("db-webhook")
	if !ok || len(db.WebhookConfigs) != 1 {
		t.Fatalf("db-webhook: %+v", db)
	}
	w := db.WebhookConfigs[0]
	if w.URL != "https://db.example.com/hooks/am" || w.SendResolved || w.MaxAlerts != 10 ||
		!reflect.DeepEqual(w.HTTPConfig.Authorization, &Authorization{Type: "Bearer", CredentialsFile: "/etc/secrets/db-token"}) {
		t.Errorf("db webhook: %+v %+v", w, w.HTTPConfig)
	}
	ops, _ := cfg.Receiver("ops-webhook")
	if ow := ops.WebhookConfigs[0]; !ow.SendResolved || ow.HTTPConfig != g.HTTPConfig {
		t.Errorf("ops webhook does not default to send_resolved and the global http_config: %+v", ow)
	}
	x, _ := cfg.Receiver("team-x-webhook")
	if h := x.WebhookConfigs[0].HTTPConfig; h.BasicAuth.PasswordFile != "/etc/secrets/x" || h.TLSConfig.CAFile != "/etc/ssl/x-ca.pem" || h.TLSConfig.MinVersion != "TLS12" {
		t.Errorf("team-x http_config: %+v", h)
	}
	if len(cfg.InhibitRules) != 2 {
		t.Fatalf("inhibit rules: %d", len(cfg.InhibitRules))
	}
	if got := cfg.InhibitRules[1].TargetMatchers.String(); got != `{alertname=~"^(?:.+)$"}` {
		t.Errorf("target_match_re = %s", got)
	}
	if len(cfg.TimeIntervals) != 2 || cfg.TimeIntervals[0].Name != "weekends" || !cfg.TimeIntervals[0].Legacy || cfg.TimeIntervals[1].Name != "business-hours" {
		t.Fatalf("time intervals: %+v", cfg.TimeIntervals)
	}
	bh := cfg.TimeIntervals[1].TimeIntervals[0]
	if bh.Location.String() != "Europe/Berlin" || !reflect.DeepEqual(bh.Weekdays, []InclusiveRange{{1, 5}}) || !reflect.DeepEqual(bh.Times, []TimeRange{{540, 1020}}) {
		t.Errorf("business-hours: %+v", bh)
	}

	r := cfg.Route
	if r.Receiver != "ops-webhook" || !reflect.DeepEqual(r.GroupBy, []string{"alertname", "cluster", "service"}) ||
		r.GroupWait != 30*time.Second || r.GroupInterval != 5*time.Minute || r.RepeatInterval != 3*time.Hour {
		t.Errorf("root: %+v", r)
	}
	tx := r.Routes[0].Routes[0]
	if tx.Receiver != "team-x-webhook" || !reflect.DeepEqual(tx.GroupBy, []string{"alertname", "cluster", "database"}) ||
		tx.RepeatInterval != 3*time.Hour || !reflect.DeepEqual(tx.MuteTimeIntervals, []string{"weekends"}) || tx.Path != "route.routes[0].routes[0]" {
		t.Errorf("team-x route: %+v", tx)
	}
	if tx.Parent() != r.Routes[0] || r.Parent() != nil {
		t.Error("parents")
	}
	if got := tx.Key(); got != `{}/{service=~"mysql|postgres|cassandra"}/{owner="team-x"}` {
		t.Errorf("key = %s", got)
	}
}

func TestLoadResolvesPaths(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "am.yml")
	err := os.WriteFile(f, []byte(`
global:
  http_config: {tls_config: {ca_file: ca.pem}}
route: {receiver: a}
receivers:
- name: a
  webhook_configs:
  - url: http://x/
    url_file: ''
  - url: http://y/
    http_config: {bearer_token_file: token, basic_auth: ~}
  aiops_webhook_configs:
  - url_file: url
    secret_file: keys/secret
    http_config:
      oauth2: {client_id: i, client_secret_file: cs, token_url: 'http://t/', tls_config: {cert_file: /abs/c.pem}}
`), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(f)
	if err != nil {
		t.Fatal(err)
	}
	a := cfg.Receivers[0]
	if got := a.WebhookConfigs[0].HTTPConfig.TLSConfig.CAFile; got != filepath.Join(dir, "ca.pem") {
		t.Errorf("global ca_file = %s", got)
	}
	if got := a.WebhookConfigs[1].HTTPConfig.Authorization.CredentialsFile; got != filepath.Join(dir, "token") {
		t.Errorf("bearer_token_file = %s", got)
	}
	aw := a.AiopsWebhookConfigs[0]
	if aw.SecretFile != filepath.Join(dir, "keys/secret") || aw.URLFile != "url" || !aw.SendResolved {
		t.Errorf("aiops webhook = %+v", aw)
	}
	if o := aw.HTTPConfig.OAuth2; o.ClientSecretFile != filepath.Join(dir, "cs") || o.TLSConfig.CertFile != "/abs/c.pem" {
		t.Errorf("oauth2 = %+v", o)
	}

	if _, err := Load(filepath.Join(dir, "missing.yml")); !errors.Is(err, ErrInvalidConfig) || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	if _, err := Load(f + "x"); err == nil {
		t.Error("no error for a missing file")
	}
	bad := filepath.Join(dir, "bad.yml")
	if err := os.WriteFile(bad, []byte("route: {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(bad); err == nil || !strings.HasPrefix(err.Error(), bad+": ") {
		t.Errorf("error does not name the file: %v", err)
	}
}

func TestParseRefusesAliasBombs(t *testing.T) {
	// r9 stands for 10^9 nested routes.
	y := "x:\n  r0: &r0 {matchers: [a=b]}\n"
	for i := 1; i <= 9; i++ {
		refs := strings.TrimSuffix(strings.Repeat(fmt.Sprintf("*r%d, ", i-1), 10), ", ")
		y += fmt.Sprintf("  r%d: &r%d {matchers: [a=b], routes: [%s]}\n", i, i, refs)
	}
	y += "route:\n  receiver: a\n  routes: [*r9]\nreceivers: [{name: a}]\n"
	done := make(chan error, 1)
	go func() { _, err := Parse([]byte(y)); done <- err }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "aliases") {
			t.Errorf("Parse: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Parse did not finish")
	}
}

func TestParseDuration(t *testing.T) {
	for s, want := range map[string]time.Duration{
		"0": 0, "0s": 0, "30s": 30 * time.Second, "1h30m": 90 * time.Minute, "2d": 48 * time.Hour,
		"1w": 7 * 24 * time.Hour, "1y": 365 * 24 * time.Hour, "5m30ms": 5*time.Minute + 30*time.Millisecond,
		"100ms": 100 * time.Millisecond, "1y2w3d4h5m6s7ms": 365*24*time.Hour + 14*24*time.Hour + 3*24*time.Hour + 4*time.Hour + 5*time.Minute + 6*time.Second + 7*time.Millisecond,
	} {
		if got, err := ParseDuration(s); err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	for _, s := range []string{"", "00", "1", "1.5h", "1m1h", "1s1s", "-1s", "1 m", "h", "99999999999999999999y", "300y"} {
		if got, err := ParseDuration(s); err == nil {
			t.Errorf("ParseDuration(%q) = %v, want an error", s, got)
		}
	}
}

// The integrations take the global section's defaults as Alertmanager's
// do, and Load reads template_file beside the configuration.
func TestLoadIntegrations(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "body.tmpl"), []byte(`{"id": {{ json .ID }}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(dir, "am.yml")
	err := os.WriteFile(f, []byte(`
global:
  slack_api_url: https://hooks.example.com/global
  jira_api_url: https://jira.example.com/rest/api/2
  http_config: {authorization: {credentials_file: token}}
route: {receiver: a}
receivers:
- name: a
  pagerduty_configs: [{routing_key_file: pd.key}]
  slack_configs: [{channel: '#x'}]
  jira_configs: [{project: OPS, issue_type: Bug}]
  servicenow_configs: [{api_url: 'https://sn.example.com', http_config: {basic_auth: {username: u, password_file: sn.pw}}}]
  aiops_template_configs: [{url: 'https://t.example.com/', template_file: body.tmpl, secret_file: t.secret}]
`), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(f)
	if err != nil {
		t.Fatal(err)
	}
	a := cfg.Receivers[0]
	pd, sl, j, sn, tc := a.PagerDutyConfigs[0], a.SlackConfigs[0], a.JiraConfigs[0], a.ServiceNowConfigs[0], a.TemplateConfigs[0]
	if pd.URL != PagerDutyEventsURL || !pd.SendResolved || pd.RoutingKeyFile != "pd.key" || pd.HTTPConfig != cfg.Global.HTTPConfig {
		t.Errorf("pagerduty: %+v", pd)
	}
	if sl.APIURL != "https://hooks.example.com/global" || sl.SendResolved || sl.Channel != "#x" {
		t.Errorf("slack: %+v", sl)
	}
	if j.APIURL != "https://jira.example.com/rest/api/2" || !j.SendResolved || j.HTTPConfig.Authorization.CredentialsFile != filepath.Join(dir, "token") {
		t.Errorf("jira: %+v", j)
	}
	if sn.Table != "incident" || sn.HTTPConfig.BasicAuth.PasswordFile != filepath.Join(dir, "sn.pw") {
		t.Errorf("servicenow: %+v", sn)
	}
	if tc.Template != `{"id": {{ json .ID }}}` || tc.SecretFile != filepath.Join(dir, "t.secret") || tc.ContentType != "application/json" {
		t.Errorf("template: %+v", tc)
	}

	if err := os.Remove(filepath.Join(dir, "body.tmpl")); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(f); err == nil || !strings.Contains(err.Error(), "aiops_template_configs[0].template_file") || !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("a missing template_file: %v", err)
	}
}

// A receiver URL that is no http(s) URL is reported with its line, as
// every other problem is: in a file of many receivers the path alone
// leaves the reader counting list items.
func TestBadReceiverURLNamesItsLine(t *testing.T) {
	_, err := Parse([]byte(`route: {receiver: a}
receivers:
- name: a
  slack_configs:
  - api_url: 'http//hooks.example.com/services/T0/B0/x'
  pagerduty_configs:
  - routing_key: k
    url: ':not-a-url'
  jira_configs:
  - {project: OPS, issue_type: Bug, api_url: 'ftp://jira.example.com'}
  servicenow_configs:
  - api_url: 'example.service-now.com'
  webhook_configs:
  - url: 'gopher://x/'
`))
	var es Errors
	if !errors.As(err, &es) {
		t.Fatalf("want Errors, got %v", err)
	}
	want := map[string]int{
		"receivers[0] (a).slack_configs[0].api_url":      5,
		"receivers[0] (a).pagerduty_configs[0].url":      8,
		"receivers[0] (a).jira_configs[0].api_url":       10,
		"receivers[0] (a).servicenow_configs[0].api_url": 12,
		"receivers[0] (a).webhook_configs[0].url":        14,
	}
	for _, e := range es {
		line, ok := want[e.Path]
		if !ok {
			t.Errorf("unexpected problem %v", e)
			continue
		}
		if e.Line != line {
			t.Errorf("%s: line %d, want %d (%v)", e.Path, e.Line, line, e)
		}
		delete(want, e.Path)
	}
	for path := range want {
		t.Errorf("no problem reported at %s:\n%v", path, err)
	}
}
