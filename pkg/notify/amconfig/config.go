package amconfig

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/aiops-dev/aiops/pkg/config"
)

// Config is an Alertmanager configuration file as the notifier reads it.
type Config struct {
	// Global holds the global section: resolve_timeout and http_config,
	// and every other global key, kept as written and not used.
	Global GlobalConfig
	// Route is the root of the routing tree, with every route's options
	// already inherited as Alertmanager does.
	Route *Route
	// InhibitRules in the order of the file.
	InhibitRules []*InhibitRule
	// Receivers in the order of the file.
	Receivers []*Receiver
	// TimeIntervals holds the entries of the older top-level
	// mute_time_intervals (Legacy true) then those of time_intervals.
	TimeIntervals []*NamedTimeInterval
	// Templates are the template globs, kept (relative ones joined to the
	// file's folder by Load, as Alertmanager does) and not used.
	Templates []string
}

// Receiver returns the receiver of that name.
func (c *Config) Receiver(name string) (*Receiver, bool) {
	for _, r := range c.Receivers {
		if r.Name == name {
			return r, true
		}
	}
	return nil, false
}

// GlobalConfig is the global section.
type GlobalConfig struct {
	// ResolveTimeout: default 5m.
	ResolveTimeout time.Duration
	// HTTPConfig is global.http_config (DefaultHTTPConfig when absent), the
	// HTTP settings of every webhook that has no http_config of its own.
	HTTPConfig *HTTPConfig
	// Extra holds every other global key (smtp_*, slack_*, pagerduty_url,
	// opsgenie_*, ...) as written: a string, a bool (smtp_require_tls,
	// smtp_force_implicit_tls) or a *TLSConfig (smtp_tls_config). aiops
	// does not use them; they are validated as Alertmanager does so that a
	// file Alertmanager refuses is refused here too.
	Extra map[string]any
}

// The global keys kept in Extra, by kind. Alertmanager 0.25 has them all
// but jira_api_url, smtp_auth_secret_file, smtp_tls_config,
// smtp_force_implicit_tls, slack_app_*, wechat_api_secret_file,
// telegram_bot_token*, rocketchat_* and mattermost_*, which later versions
// added.
var (
	globalURLKeys = []string{"slack_api_url", "slack_app_url", "pagerduty_url", "opsgenie_api_url", "wechat_api_url",
		"victorops_api_url", "telegram_api_url", "webex_api_url", "jira_api_url", "rocketchat_api_url", "mattermost_webhook_url"}
	globalBoolKeys   = []string{"smtp_require_tls", "smtp_force_implicit_tls"}
	globalStringKeys = []string{"smtp_from", "smtp_hello", "smtp_smarthost", "smtp_auth_username", "smtp_auth_password",
		"smtp_auth_password_file", "smtp_auth_secret", "smtp_auth_secret_file", "smtp_auth_identity",
		"slack_api_url_file", "slack_app_token", "slack_app_token_file", "opsgenie_api_key", "opsgenie_api_key_file",
		"wechat_api_secret", "wechat_api_secret_file", "wechat_api_corp_id", "victorops_api_key", "victorops_api_key_file",
		"telegram_bot_token", "telegram_bot_token_file", "rocketchat_token", "rocketchat_token_file",
		"rocketchat_token_id", "rocketchat_token_id_file", "mattermost_webhook_url_file"}
	// Pairs of which at most one may be set.
	globalExclusive = [][2]string{
		{"slack_api_url", "slack_api_url_file"}, {"slack_app_token", "slack_app_token_file"},
		{"opsgenie_api_key", "opsgenie_api_key_file"}, {"victorops_api_key", "victorops_api_key_file"},
		{"telegram_bot_token", "telegram_bot_token_file"}, {"smtp_auth_password", "smtp_auth_password_file"},
		{"smtp_auth_secret", "smtp_auth_secret_file"}, {"wechat_api_secret", "wechat_api_secret_file"},
		{"rocketchat_token", "rocketchat_token_file"}, {"rocketchat_token_id", "rocketchat_token_id_file"},
		{"mattermost_webhook_url", "mattermost_webhook_url_file"},
	}
)

// DefaultResolveTimeout is global.resolve_timeout when it is absent.
const DefaultResolveTimeout = 5 * time.Minute

// InhibitRule mutes an alert that matches TargetMatchers while an alert
// that matches SourceMatchers fires with the same values of the Equal
// labels.
type InhibitRule struct {
	// SourceMatchers joins source_match, source_match_re and
	// source_matchers; TargetMatchers likewise.
	SourceMatchers Matchers
	TargetMatchers Matchers
	Equal          []string
	// Path is where the rule is in the file (inhibit_rules[i]).
	Path string
}

// Receiver is a named set of integrations.
type Receiver struct {
	Name                string
	WebhookConfigs      []*WebhookConfig
	AiopsWebhookConfigs []*AiopsWebhookConfig
	PagerDutyConfigs    []*PagerDutyConfig
	SlackConfigs        []*SlackConfig
	JiraConfigs         []*JiraConfig
	ServiceNowConfigs   []*ServiceNowConfig
	TemplateConfigs     []*TemplateConfig
	// Path is where the receiver is in the file (receivers[i] (name)).
	Path string
}

// The receiver types aiops delivers to: four of Alertmanager's and three of
// its own.
const supportedReceiverTypes = "webhook_configs, pagerduty_configs, slack_configs, jira_configs, aiops_webhook_configs, servicenow_configs, aiops_template_configs"

var alertmanagerReceiverTypes = []string{"discord_configs", "email_configs", "incidentio_configs",
	"mattermost_configs", "msteams_configs", "msteamsv2_configs", "opsgenie_configs",
	"pushover_configs", "rocketchat_configs", "sns_configs", "telegram_configs",
	"victorops_configs", "webex_configs", "wechat_configs"}

// WebhookConfig is one entry of webhook_configs: Alertmanager's generic
// webhook (the body is Alertmanager's webhook payload, version 4).
type WebhookConfig struct {
	// SendResolved: notify when alerts resolve too. Default true.
	SendResolved bool
	// URL to POST to (http or https); exactly one of URL and URLFile.
	URL string
	// URLFile is a file whose content is the URL, read when sending
	// (Alertmanager 0.26 and later; not joined to the file's folder, as in
	// Alertmanager).
	URLFile string
	// MaxAlerts caps the alerts in one message; 0 is no limit.
	MaxAlerts uint64
	// Timeout bounds one request (Alertmanager 0.28 and later); 0 is the
	// sender's default.
	Timeout time.Duration
	// HTTPConfig is the entry's http_config, or global.http_config when it
	// has none (as Alertmanager does).
	HTTPConfig *HTTPConfig
	// Path is where the entry is in the file.
	Path string
}

// AiopsWebhookConfig is one entry of aiops_webhook_configs: a webhook that
// aiops signs with Standard Webhooks. It has every key of webhook_configs
// and secret_file.
type AiopsWebhookConfig struct {
	WebhookConfig
	// SecretFile holds the Standard Webhooks secret (whsec_...); required.
	// Load joins a relative path to the configuration file's folder.
	SecretFile string
}

// MaxFileSize bounds the file Load reads.
const MaxFileSize = config.MaxFileSize

// Load reads and parses an Alertmanager configuration file. Relative paths
// of files in http_config (TLS files, password and credential files), of
// secret_file and of templates are joined to the file's folder, as
// Alertmanager does.
func Load(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrInvalidConfig, path, err)
	}
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("%w: %s: larger than %d bytes", ErrInvalidConfig, path, MaxFileSize)
	}
	cfg, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	cfg.resolvePaths(filepath.Dir(path))
	if err := cfg.readTemplateFiles(filepath.Dir(path)); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

func joinDir(dir, p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(dir, p)
}

func (c *Config) resolvePaths(dir string) {
	for i, t := range c.Templates {
		c.Templates[i] = joinDir(dir, t)
	}
	done := map[*HTTPConfig]bool{}
	resolve := func(h *HTTPConfig) {
		if h == nil || done[h] {
			return
		}
		done[h] = true
		h.setDirectory(dir)
	}
	resolve(c.Global.HTTPConfig)
	for _, r := range c.Receivers {
		for _, w := range r.WebhookConfigs {
			resolve(w.HTTPConfig)
		}
		for _, w := range r.AiopsWebhookConfigs {
			resolve(w.HTTPConfig)
			w.SecretFile = joinDir(dir, w.SecretFile)
		}
		for _, c := range r.PagerDutyConfigs {
			resolve(c.HTTPConfig)
		}
		for _, c := range r.SlackConfigs {
			resolve(c.HTTPConfig)
		}
		for _, c := range r.JiraConfigs {
			resolve(c.HTTPConfig)
		}
		for _, c := range r.ServiceNowConfigs {
			resolve(c.HTTPConfig)
		}
		for _, c := range r.TemplateConfigs {
			resolve(c.HTTPConfig)
			c.SecretFile = joinDir(dir, c.SecretFile)
		}
	}
}

// Parse parses an Alertmanager configuration. It refuses what
// Alertmanager refuses, unknown keys (with their path), and receiver types
// aiops does not deliver to (supportedReceiverTypes). The error is an
// Errors listing every problem, each naming its key; it wraps
// ErrInvalidConfig.
func Parse(data []byte) (*Config, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, Errors{{Msg: fmt.Sprintf("not YAML: %v", err)}}
	}
	d := &decoder{}
	cfg := d.config(&root)
	if len(d.errs) > 0 {
		return nil, d.errs
	}
	return cfg, nil
}

func (d *decoder) config(root *yaml.Node) *Config {
	cfg := &Config{Global: GlobalConfig{ResolveTimeout: DefaultResolveTimeout, HTTPConfig: DefaultHTTPConfig(), Extra: map[string]any{}}}
	doc := root
	if doc.Kind == yaml.DocumentNode && len(doc.Content) > 0 {
		doc = doc.Content[0]
	}
	if doc.Kind == yaml.DocumentNode || isNull(doc) {
		d.errorf(nil, "route", "no route: the file is empty")
		return nil
	}
	if resolve(doc).Kind != yaml.MappingNode {
		d.errorf(resolve(doc), "(top level)", "expected a mapping of global, route, receivers, ..., got %s", kindName(doc))
		return nil
	}
	entries, _ := d.mapping(doc, "")
	var routeNode, routeKey *yaml.Node
	var legacyIntervals, intervals []*NamedTimeInterval
	for _, e := range entries {
		switch e.key {
		case "global":
			d.global(e.val, e.path, &cfg.Global)
		case "route":
			routeNode, routeKey = e.val, e.keyNode
			cfg.Route = nil
			if !isNull(e.val) {
				cfg.Route = d.route(e.val, "route", nil)
			}
		case "inhibit_rules":
			cfg.InhibitRules = d.inhibitRules(e.val, e.path)
		case "receivers":
			cfg.Receivers = d.receivers(e.val, e.path)
		case "templates":
			cfg.Templates, _ = d.stringList(e.val, e.path)
		case "mute_time_intervals":
			legacyIntervals = d.namedTimeIntervals(e.val, e.path, true)
		case "time_intervals":
			intervals = d.namedTimeIntervals(e.val, e.path, false)
		default:
			d.unknownKey(e, "global, route, inhibit_rules, receivers, templates, time_intervals, mute_time_intervals")
		}
	}
	cfg.TimeIntervals = append(legacyIntervals, intervals...)
	// global.http_config is the default of every webhook.
	for _, r := range cfg.Receivers {
		for _, w := range r.WebhookConfigs {
			if w.HTTPConfig == nil {
				w.HTTPConfig = cfg.Global.HTTPConfig
			}
		}
		for _, w := range r.AiopsWebhookConfigs {
			if w.HTTPConfig == nil {
				w.HTTPConfig = cfg.Global.HTTPConfig
			}
		}
	}
	d.integrationDefaults(cfg)

	switch {
	case isNull(routeNode):
		d.errorf(routeKey, "route", "is required: the root route names the default receiver")
	case cfg.Route != nil:
		d.checkRoot(cfg.Route)
	}

	// Names: unique receivers and time intervals, and every one a route
	// refers to defined.
	receivers := map[string]*Receiver{}
	for _, r := range cfg.Receivers {
		if r.Name == "" {
			continue
		}
		if first, ok := receivers[r.Name]; ok {
			d.errorf(nil, r.Path+".name", "receiver name %q is not unique: %s has it too", r.Name, first.Path)
			continue
		}
		receivers[r.Name] = r
	}
	tis := map[string]*NamedTimeInterval{}
	for _, ti := range cfg.TimeIntervals {
		if ti.Name == "" {
			continue
		}
		if first, ok := tis[ti.Name]; ok {
			d.errorf(nil, ti.Path+".name", "time interval name %q is not unique: %s has it too", ti.Name, first.Path)
			continue
		}
		tis[ti.Name] = ti
	}
	if cfg.Route != nil {
		cfg.Route.Walk(func(r *Route) {
			if r.receiverSet != "" && receivers[r.receiverSet] == nil {
				d.errorf(nil, r.Path+".receiver", "undefined receiver %q (no receivers entry has that name)", r.receiverSet)
			}
			for _, name := range r.MuteTimeIntervals {
				if tis[name] == nil {
					d.errorf(nil, r.Path+".mute_time_intervals", "undefined time interval %q", name)
				}
			}
			for _, name := range r.ActiveTimeIntervals {
				if tis[name] == nil {
					d.errorf(nil, r.Path+".active_time_intervals", "undefined time interval %q", name)
				}
			}
		})
	}
	return cfg
}

// checkRoot applies Alertmanager's rules for the root route: it catches
// every alert, so it has a receiver, no matchers, no time intervals and no
// continue.
func (d *decoder) checkRoot(r *Route) {
	if r.receiverSet == "" {
		d.errorf(nil, "route.receiver", "the root route must name a receiver (the default for every alert)")
	}
	for _, k := range r.rootMatcherKeys {
		d.errorf(nil, "route."+k, "the root route must not have matchers: it must match every alert")
	}
	if len(r.MuteTimeIntervals) > 0 {
		d.errorf(nil, "route.mute_time_intervals", "the root route must not have mute time intervals")
	}
	if len(r.ActiveTimeIntervals) > 0 {
		d.errorf(nil, "route.active_time_intervals", "the root route must not have active time intervals")
	}
	if r.Continue {
		d.errorf(nil, "route.continue", "the root route cannot have continue")
	}
}

func (d *decoder) global(n *yaml.Node, path string, g *GlobalConfig) {
	entries, ok := d.mapping(n, path)
	if !ok {
		return
	}
	g.Extra = map[string]any{}
	known := "resolve_timeout, http_config, smtp_tls_config, " + strings.Join(slices.Concat(globalURLKeys, globalBoolKeys, globalStringKeys), ", ")
	for _, e := range entries {
		switch {
		case e.key == "resolve_timeout":
			if isNull(e.val) {
				// yaml.v2 leaves a null at the zero value.
				g.ResolveTimeout = 0
				continue
			}
			g.ResolveTimeout, _ = d.duration(e.val, e.path)
		case e.key == "http_config":
			if h := d.httpConfig(e.val, e.path); h != nil {
				g.HTTPConfig = h
			}
		case e.key == "smtp_tls_config":
			if isNull(e.val) {
				continue
			}
			t := &TLSConfig{}
			d.tlsConfig(e.val, e.path, t)
			g.Extra[e.key] = t
		case slices.Contains(globalBoolKeys, e.key):
			if isNull(e.val) {
				continue
			}
			b, _ := d.boolean(e.val, e.path)
			g.Extra[e.key] = b
		case slices.Contains(globalURLKeys, e.key):
			s, ok := d.str(e.val, e.path)
			if !ok || isNull(e.val) {
				continue
			}
			if err := checkHTTPURL(s); err != nil && !(s == "<secret>" && (e.key == "slack_api_url" || e.key == "mattermost_webhook_url")) {
				d.errorf(resolve(e.val), e.path, "%v", err)
				continue
			}
			g.Extra[e.key] = s
		case slices.Contains(globalStringKeys, e.key):
			s, ok := d.str(e.val, e.path)
			if !ok || s == "" {
				continue
			}
			if e.key == "smtp_smarthost" {
				if err := checkHostPort(s); err != nil {
					d.errorf(resolve(e.val), e.path, "%v", err)
					continue
				}
			}
			g.Extra[e.key] = s
		default:
			d.unknownKey(e, known)
		}
	}
	for _, pair := range globalExclusive {
		if g.Extra[pair[0]] != nil && g.Extra[pair[1]] != nil {
			d.errorf(resolve(n), path, "at most one of %s and %s may be set", pair[0], pair[1])
		}
	}
}

func (d *decoder) inhibitRules(n *yaml.Node, path string) []*InhibitRule {
	items, _ := d.sequence(n, path)
	var out []*InhibitRule
	for i, it := range items {
		p := index(path, i)
		entries, ok := d.mapping(it, p)
		if !ok {
			continue
		}
		r := &InhibitRule{Path: p}
		var src, tgt [3]Matchers
		for _, e := range entries {
			switch e.key {
			case "source_match":
				src[0] = d.addMatchers(src[0], d.labelMatchers(e.val, e.path, MatchEqual), e)
			case "source_match_re":
				src[1] = d.addMatchers(src[1], d.labelMatchers(e.val, e.path, MatchRegexp), e)
			case "source_matchers":
				src[2] = append(src[2], d.matcherList(e.val, e.path)...)
			case "target_match":
				tgt[0] = d.addMatchers(tgt[0], d.labelMatchers(e.val, e.path, MatchEqual), e)
			case "target_match_re":
				tgt[1] = d.addMatchers(tgt[1], d.labelMatchers(e.val, e.path, MatchRegexp), e)
			case "target_matchers":
				tgt[2] = append(tgt[2], d.matcherList(e.val, e.path)...)
			case "equal":
				eq, _ := d.stringList(e.val, e.path)
				for j, l := range eq {
					if !validUTF8LabelName(l) {
						d.errorf(resolve(e.val), index(e.path, j), "%q is not a valid label name", l)
					}
				}
				r.Equal = eq
			default:
				d.unknownKey(e, "source_matchers, target_matchers, equal, source_match, source_match_re, target_match, target_match_re")
			}
		}
		r.SourceMatchers = slices.Concat(src[:]...)
		r.TargetMatchers = slices.Concat(tgt[:]...)
		out = append(out, r)
	}
	return out
}

func (d *decoder) receivers(n *yaml.Node, path string) []*Receiver {
	items, _ := d.sequence(n, path)
	var out []*Receiver
	for i, it := range items {
		entries, ok := d.mapping(it, index(path, i))
		if !ok {
			continue
		}
		r := &Receiver{}
		for _, e := range entries {
			if e.key == "name" {
				r.Name, _ = d.str(e.val, e.path)
			}
		}
		r.Path = named(path, i, r.Name)
		if r.Name == "" {
			d.errorf(it, r.Path, "name is required")
		}
		for _, e := range entries {
			e.path = joinKey(r.Path, e.key)
			switch {
			case e.key == "name":
			case e.key == "webhook_configs":
				r.WebhookConfigs = decodeList(d, e, func(n *yaml.Node, path string) (*WebhookConfig, bool) {
					wc := &WebhookConfig{}
					return wc, d.webhook(n, path, wc, "", nil)
				})
			case e.key == "aiops_webhook_configs":
				r.AiopsWebhookConfigs = decodeList(d, e, func(n *yaml.Node, path string) (*AiopsWebhookConfig, bool) {
					ac := &AiopsWebhookConfig{}
					return ac, d.aiopsWebhook(n, path, ac)
				})
			case e.key == "pagerduty_configs":
				r.PagerDutyConfigs = decodeList(d, e, d.pagerDuty)
			case e.key == "slack_configs":
				r.SlackConfigs = decodeList(d, e, d.slack)
			case e.key == "jira_configs":
				r.JiraConfigs = decodeList(d, e, d.jira)
			case e.key == "servicenow_configs":
				r.ServiceNowConfigs = decodeList(d, e, d.serviceNow)
			case e.key == "aiops_template_configs":
				r.TemplateConfigs = decodeList(d, e, d.templateWebhook)
			case slices.Contains(alertmanagerReceiverTypes, e.key):
				if list, ok := d.sequence(e.val, e.path); ok && len(list) == 0 {
					continue // an empty list configures nothing
				}
				d.errorf(e.keyNode, r.Path, "%s is not supported by aiops (supported: %s)", e.key, supportedReceiverTypes)
			default:
				d.unknownKey(e, "name, "+supportedReceiverTypes)
			}
		}
		out = append(out, r)
	}
	return out
}

// decodeList decodes the entries of a receiver's list (webhook_configs,
// pagerduty_configs, ...) with one, keeping the valid ones; a key given
// again replaces the list.
func decodeList[T any](d *decoder, e entry, one func(*yaml.Node, string) (T, bool)) []T {
	var out []T
	list, _ := d.sequence(e.val, e.path)
	for j, it := range list {
		if c, ok := one(it, index(e.path, j)); ok {
			out = append(out, c)
		}
	}
	return out
}

const webhookKeys = "url, url_file, send_resolved, max_alerts, timeout, http_config"

// webhook decodes the keys of webhook_configs into wc; extra, if not nil,
// decodes the further keys that it knows (listed in extraKeys) and
// reports whether it knew the key. It reports whether the entry is valid.
func (d *decoder) webhook(n *yaml.Node, path string, wc *WebhookConfig, extraKeys string, extra func(entry) bool) bool {
	entries, ok := d.mapping(n, path)
	if !ok {
		return false
	}
	before := len(d.errs)
	*wc = WebhookConfig{SendResolved: true, Path: path}
	var urlNode *yaml.Node
	for _, e := range entries {
		switch e.key {
		case "url":
			wc.URL, _ = d.str(e.val, e.path)
			urlNode = resolve(e.val)
		case "url_file":
			wc.URLFile, _ = d.str(e.val, e.path)
		case "send_resolved":
			wc.SendResolved, _ = d.boolean(e.val, e.path)
		case "max_alerts":
			wc.MaxAlerts, _ = d.uint(e.val, e.path)
		case "timeout":
			wc.Timeout, _ = d.duration(e.val, e.path)
		case "http_config":
			wc.HTTPConfig = d.httpConfig(e.val, e.path)
		default:
			if extra != nil && extra(e) {
				continue
			}
			known := webhookKeys
			if extraKeys != "" {
				known += ", " + extraKeys
			}
			if e.key == "secret_file" && extra == nil {
				known += " (secret_file is a key of aiops_webhook_configs)"
			}
			d.unknownKey(e, known)
		}
	}
	switch {
	case wc.URL == "" && wc.URLFile == "":
		d.errorf(resolve(n), path, "one of url or url_file is required")
	case wc.URL != "" && wc.URLFile != "":
		d.errorf(resolve(n), path, "at most one of url and url_file may be set")
	case wc.URL != "":
		if err := checkHTTPURL(wc.URL); err != nil {
			d.errorf(urlNode, joinKey(path, "url"), "%v", err)
		}
	}
	return len(d.errs) == before
}

func (d *decoder) aiopsWebhook(n *yaml.Node, path string, ac *AiopsWebhookConfig) bool {
	before := len(d.errs)
	d.webhook(n, path, &ac.WebhookConfig, "secret_file", func(e entry) bool {
		if e.key != "secret_file" {
			return false
		}
		ac.SecretFile, _ = d.str(e.val, e.path)
		return true
	})
	if ac.SecretFile == "" && resolve(n).Kind == yaml.MappingNode {
		d.errorf(resolve(n), joinKey(path, "secret_file"), "is required: the file that holds the Standard Webhooks secret (whsec_...)")
	}
	return len(d.errs) == before
}
