// Package pipeline reads the detection part of a pipeline file
// (pipelines/*.yaml): which series get which detectors and parameters.
//
// A file holds a top-level `detect` section; other top-level sections belong
// to other stages (correlation, routing) and are left to them:
//
//	detect:
//	  defaults:            # a detect.Config; omitted fields keep detect's defaults
//	    threshold: 0.5
//	  rules:               # first match wins; no match: defaults
//	    - name: disk-free
//	      match:
//	        metric: node_filesystem_avail_bytes   # anchored RE2 on the metric name
//	        service: "db-.*"                      # anchored RE2 on the envelope service
//	        labels: {mountpoint: "/"}             # anchored RE2 per label; "" matches absent
//	      detectors:       # overlaid on defaults: only the fields given change
//	        forecast: {enabled: true, threshold: 1e9, falling: true}
//	    - name: prometheus-scrape
//	      match: {metric: "scrape_(duration_seconds|samples_scraped)"}
//	      ignore: true     # not scored, not taken by groups (the writer stores them)
//	  groups:              # multivariate: several metrics of one asset scored together
//	    - name: golden-signals
//	      match: {service: ".+"}          # as a rule's match; the metric must also be a channel
//	      by: [service]                   # labels naming one asset; "service" is the envelope's
//	      channels: [http_requests_rate, http_error_ratio, http_latency_p99_seconds]
//	      wait: 30s                       # how long a row waits for its missing channels
//	      method: vote                    # vote (default): the channels' detectors (defaults) vote; pca: a detect.Group
//	    - name: pumps
//	      by: [host]
//	      channels: [flow, pressure, current]
//	      method: pca
//	      settings: {warmup: 300}         # a detect.GroupConfig, for method pca only
//
// Parse checks unknown fields (strictly, with the line), then Validate checks
// every value; both name the file, the line and the field path.
package pipeline

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/aiops-dev/aiops/pkg/detect"
	"github.com/aiops-dev/aiops/pkg/errs"
)

// MaxFileBytes bounds a pipeline file.
const MaxFileBytes = 1 << 20

// DefaultRoute is the name of the route taken when no rule matches.
const DefaultRoute = "default"

// ErrInvalid is wrapped by every error of Parse, Load and Validate.
var ErrInvalid = errors.New("pipeline: invalid")

// Match selects series. Every non-empty field must match (logical and).
// Patterns are RE2, anchored at both ends as in Prometheus label matchers.
type Match struct {
	Metric  string            `yaml:"metric"`
	Service string            `yaml:"service"`
	Labels  map[string]string `yaml:"labels"`
}

// Rule gives the series it matches their detector configuration, or, with
// Ignore, leaves them unscored.
type Rule struct {
	Name  string `yaml:"name"`
	Match Match  `yaml:"match"`
	// Detectors is the defaults with this rule's fields laid over them.
	Detectors detect.Config `yaml:"detectors"`
	// Ignore: the series the rule matches are not scored and not taken by
	// groups: series about the monitoring rather than the service
	// (Prometheus's scrape health), whose jitter is no incident. A file
	// giving it detectors too is refused; in code, Ignore wins.
	Ignore bool `yaml:"ignore"`
	// Line is where the rule starts in its file (0 when built in code).
	Line int `yaml:"-"`

	node            *yaml.Node // the detectors mapping, for the line of a bad field
	metric, service *regexp.Regexp
	labels          []labelMatcher
	gauge, counter  *detect.Profile
}

type labelMatcher struct {
	name string
	re   *regexp.Regexp
}

// Pipeline is the detection configuration of a pipeline file.
type Pipeline struct {
	// File names the source in errors.
	File     string
	Defaults detect.Config
	Rules    []Rule
	// Groups score several metrics of one asset together (a detect.Vote
	// or a detect.Group each, by their Method); a sample they take keeps its route's univariate detectors.
	Groups []Group

	defaultsLine int
	defaultsNode *yaml.Node
	def          Rule
	compiled     bool
}

// Route is what Select found for a series: the rule's name and its
// profiles, or Ignore when the rule leaves its series unscored.
type Route struct {
	Name           string
	Ignore         bool
	gauge, counter *detect.Profile
}

// Profile returns the profile for a gauge or, with counter, for a counter
// (the rule's detectors with Counter set, so that the detectors see a rate);
// nil for a route that ignores its series.
func (r Route) Profile(counter bool) *detect.Profile {
	if counter {
		return r.counter
	}
	return r.gauge
}

// Default is the pipeline with no rules: detect's defaults for every series.
func Default() *Pipeline {
	p := &Pipeline{File: "(built-in defaults)", Rules: BuiltIn()}
	if err := p.Validate(); err != nil {
		panic(err) // detect's defaults are valid; a test pins it
	}
	return p
}

// ScrapeHealth is the rule that leaves Prometheus's scrape-health series
// unscored: its remote-write sends, with every target's samples, series
// about the scrape itself (how long it took, how many samples it got),
// whose jitter is the monitoring's, not the service's; scored, a scrape
// that took 40 ms instead of 10 was an anomaly and an incident. Exporters
// time their own collectors likewise (node_exporter's
// node_scrape_collector_duration_seconds, one series per collector: in a
// trial scraping a node_exporter, 50 of the first 80 anomaly episodes and
// the first incident; mysqld, windows, postgres and redis exporters'
// <x>_exporter_..._duration_seconds). Not up, nor a collector's success:
// their fall to 0 is a target, or a part of it, down. The built-in pipeline has it, and so
// does a file without a rules key; a file's rules replace it
// (pipelines/default.yaml writes it out).
func ScrapeHealth() Rule {
	return Rule{
		Name:   "prometheus-scrape",
		Match:  Match{Metric: "scrape_(duration_seconds|samples_scraped|samples_post_metric_relabeling|series_added|timeout_seconds|sample_limit|body_size_bytes)|[a-z]+_scrape_collector_duration_seconds|[a-z]+_exporter_(collector|scrape|last_scrape)_duration_seconds"},
		Ignore: true,
	}
}

// UntypedCounters is the rule that scores as counters the counters
// node_exporter exposes untyped, which remote-write carries as gauges
// (Prometheus's metadata says unknown, and their names do not end in
// _total): /proc/vmstat's and /proc/net/netstat's and snmp's, but for
// their two gauges, Tcp_CurrEstab and Ip_Forwarding. Scored as gauges,
// every rise of such a counter was a level shift, an anomaly episode
// that never ended (a trial: node_netstat_Udp_InDatagrams, +11 to +19.5
// sigma for as long as it ran).
func UntypedCounters() Rule {
	return Rule{
		Name:      "untyped-counters",
		Match:     Match{Metric: "node_vmstat_.*|node_netstat_(Tcp_(ActiveOpens|PassiveOpens|AttemptFails|EstabResets|InSegs|OutSegs|RetransSegs|InErrs|OutRsts|InCsumErrors)|(Udp|Udp6|UdpLite|UdpLite6|TcpExt|Icmp|Icmp6|Ip6|IpExt)_.*)"},
		Detectors: detect.Config{Counter: true},
	}
}

// TargetUp is the rule for Prometheus's up, 1 while it scrapes a target
// and 0 while it cannot: a target down is anomalous for as long as it is
// down, which the statistical detectors cannot say. Its fall taught them
// the series' resolution, a step of 1, so the next sample at 0 was 2.9 of
// its scales off and the episode closed one or two samples after it
// opened (a second outage opened one minutes late, for one sample): a
// target down for an hour never lasted the correlator's anomaly_wait, and
// opened no incident. A value past the forecast's threshold, 0.5, holds
// an open episode, so the fall's lasts the outage and ends at the first
// sample back; the forecast of a fall under 0.5 fires while the level of
// up is under it (or will be within the minute), from about a minute into
// an outage whose fall opened none (a second one, judged by the learnt
// resolution) to about a minute after the target is back; a single failed
// scrape moves the level too little to fire it.
func TargetUp() Rule {
	return Rule{
		Name:      "target-up",
		Match:     Match{Metric: "up"},
		Detectors: detect.Config{Forecast: detect.ForecastConfig{Enabled: true, Threshold: 0.5, Falling: true, Horizon: time.Minute}},
	}
}

// BuiltIn is the rules of a pipeline without rules of its own:
// ScrapeHealth, UntypedCounters, TargetUp (pipelines/default.yaml writes
// them out).
func BuiltIn() []Rule { return []Rule{ScrapeHealth(), UntypedCounters(), TargetUp()} }

// Load reads and validates the pipeline file at path.
func Load(path string) (*Pipeline, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("pipeline: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("pipeline: read %s: %w", path, err)
	}
	return Parse(path, data)
}

// file is the strict shape of a pipeline file, decoded once to catch unknown
// fields with their line.
type file struct {
	Detect struct {
		Defaults detect.Config `yaml:"defaults"`
		Rules    []Rule        `yaml:"rules"`
		Groups   []Group       `yaml:"groups"`
	} `yaml:"detect"`
	Others map[string]yaml.Node `yaml:",inline"`
}

// Parse reads a pipeline file's content (name is used in errors) and
// validates it. Errors wrap ErrInvalid, are permanent and name the line.
func Parse(name string, data []byte) (*Pipeline, error) {
	if len(data) > MaxFileBytes {
		return nil, invalid(name, 0, "", "file larger than %d bytes", MaxFileBytes)
	}
	var strict file
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&strict); err != nil && !errors.Is(err, io.EOF) {
		return nil, invalid(name, 0, "", "%s", strings.TrimPrefix(err.Error(), "yaml: "))
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, invalid(name, 0, "", "%s", err)
	}
	// Without rules of its own (no rules key), a file has the built-in
	// rules; rules: [] is none.
	p := &Pipeline{File: name, Rules: BuiltIn()}
	if len(doc.Content) == 0 {
		return p, p.Validate()
	}
	section := child(doc.Content[0], "detect")
	if section == nil {
		return p, p.Validate()
	}
	if defaults := child(section, "defaults"); defaults != nil {
		p.defaultsLine, p.defaultsNode = defaults.Line, defaults
		if err := defaults.Decode(&p.Defaults); err != nil {
			return nil, invalid(name, defaults.Line, "detect.defaults", "%s", err)
		}
		// The built-in rules score over the file's defaults, as its own
		// rules do.
		for i := range p.Rules {
			counter := p.Rules[i].Detectors.Counter
			p.Rules[i].Detectors = p.Defaults
			p.Rules[i].Detectors.Counter = counter
		}
	}
	if rules := child(section, "rules"); rules != nil {
		if rules.Kind != yaml.SequenceNode {
			return nil, invalid(name, rules.Line, "detect.rules", "is not a list")
		}
		p.Rules = nil
		for i, rn := range rules.Content {
			// The rule's detectors decode over a copy of the defaults, so a
			// rule states only what it changes.
			r := Rule{Detectors: p.Defaults, Line: rn.Line}
			if err := rn.Decode(&r); err != nil {
				return nil, invalid(name, rn.Line, fmt.Sprintf("detect.rules[%d]", i), "%s", err)
			}
			r.Line, r.node = rn.Line, child(rn, "detectors")
			if r.Ignore && r.node != nil {
				// detectors for series that are not scored: one of the two
				// is a mistake, and which one the file does not say
				return nil, invalid(name, keyLine(rn, "detectors"), fmt.Sprintf("detect.rules[%d].detectors", i),
					"rule %q has ignore: true, whose series are not scored: remove ignore or detectors", r.Name)
			}
			p.Rules = append(p.Rules, r)
		}
	}
	if groups := child(section, "groups"); groups != nil {
		if groups.Kind != yaml.SequenceNode {
			return nil, invalid(name, groups.Line, "detect.groups", "is not a list")
		}
		for i, gn := range groups.Content {
			var g Group
			if err := gn.Decode(&g); err != nil {
				return nil, invalid(name, gn.Line, fmt.Sprintf("detect.groups[%d]", i), "%s", err)
			}
			g.Line, g.node = gn.Line, gn
			p.Groups = append(p.Groups, g)
		}
	}
	return p, p.Validate()
}

// lineOf returns the line of the dotted field path under m, or def when the
// field is not written there (an inherited default).
func lineOf(m *yaml.Node, path string, def int) int {
	for _, k := range strings.Split(path, ".") {
		if m = child(m, k); m == nil {
			return def
		}
	}
	return m.Line
}

// keyLine returns the line of key in mapping m, or m's line.
func keyLine(m *yaml.Node, key string) int {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i].Line
		}
	}
	return m.Line
}

func child(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// Validate checks every rule and compiles it. Errors name the file, the
// line, the field path and the problem, wrap ErrInvalid and are permanent.
func (p *Pipeline) Validate() error {
	def := Rule{Name: DefaultRoute, Detectors: p.Defaults, Line: p.defaultsLine, node: p.defaultsNode}
	if err := def.compile(p.File, "detect.defaults"); err != nil {
		return err
	}
	seen := map[string]int{DefaultRoute: -1}
	for i := range p.Rules {
		r := &p.Rules[i]
		path := fmt.Sprintf("detect.rules[%d]", i)
		switch {
		case r.Name == "":
			return invalid(p.File, r.Line, path+".name", "is empty")
		case len(r.Name) > 64 || strings.ContainsAny(r.Name, " \t\n."):
			return invalid(p.File, r.Line, path+".name", "%q must be at most 64 characters without spaces or dots", r.Name)
		}
		if j, dup := seen[r.Name]; dup {
			if j < 0 {
				return invalid(p.File, r.Line, path+".name", "%q is reserved for the defaults", r.Name)
			}
			return invalid(p.File, r.Line, path+".name", "%q repeats the name of rules[%d]", r.Name, j)
		}
		seen[r.Name] = i
		if r.Ignore {
			if r.Match.Metric == "" && r.Match.Service == "" && len(r.Match.Labels) == 0 {
				// every series: the detector would score nothing, most
				// likely a match written at the wrong indentation
				return invalid(p.File, r.Line, path+".match", "rule %q has ignore: true and no match: it would ignore every series", r.Name)
			}
		} else if err := r.compile(p.File, path+".detectors"); err != nil {
			return err
		} else if r.Detectors.Vote != p.Defaults.Vote {
			// A group's vote is one for all its channels, whatever
			// their rules: set here, it would be silently ignored.
			return invalid(p.File, lineOf(r.node, "vote", r.Line), path+".detectors.vote",
				"is read from detect.defaults only (a group's vote is one for all its channels): move it there")
		}
		if err := r.compileMatch(p.File, path+".match"); err != nil {
			return err
		}
	}
	groups := map[string]int{}
	for i := range p.Groups {
		if err := p.Groups[i].compile(p.File, i, groups); err != nil {
			return err
		}
		if err := p.ignoredChannel(i); err != nil {
			return err
		}
	}
	p.def = def
	p.compiled = true
	return nil
}

// ignoredChannel refuses a channel of group i whose every series a rule
// ignores (the first rule to take them all, whatever their service and
// labels, and no rule before it scoring some of them): the group would
// never get it, and every row would wait out the group's wait and be
// scored without it.
func (p *Pipeline) ignoredChannel(i int) error {
	g := &p.Groups[i]
	for j, c := range g.Channels {
		for _, r := range p.Rules {
			if r.metric != nil && !r.metric.MatchString(c) {
				continue // none of its series
			}
			if r.Match.Service != "" || len(r.Match.Labels) > 0 {
				if r.Ignore {
					continue // some of its series
				}
				break // first match wins: this rule scores some of them, which the group gets
			}
			if r.Ignore {
				return invalid(p.File, lineOf(g.node, "channels", g.Line), fmt.Sprintf("detect.groups[%d].channels[%d]", i, j),
					"%q is a metric rule %q ignores (ignore: true): the group would never get it; remove the channel, or narrow the rule", c, r.Name)
			}
			break // first match wins: this rule scores them
		}
	}
	return nil
}

func (r *Rule) compile(file, path string) error {
	cfg := r.Detectors
	// Each sample's type chooses the gauge or the counter profile below.
	// A rule's counter: true scores its series as counters whatever their
	// samples say: exporters expose counters untyped (node_exporter's
	// netstat and vmstat series), which remote-write carries as gauges,
	// and a counter scored as a gauge is a level shift at every rise.
	asCounter := cfg.Counter
	if asCounter && r.Name == DefaultRoute {
		return invalid(file, lineOf(r.node, "counter", r.Line), path+".counter",
			"would score every series as a counter: set it on a rule matching the counters whose samples say gauge")
	}
	cfg.Counter = false
	g, err := detect.NewProfile(cfg)
	if err != nil {
		msg := strings.TrimPrefix(err.Error(), detect.ErrInvalidConfig.Error()+": ")
		field, _, _ := strings.Cut(msg, ":")
		return invalid(file, lineOf(r.node, field, r.Line), path+"."+msg, "")
	}
	cfg.Counter = true
	c, err := detect.NewProfile(cfg)
	if err != nil {
		return invalid(file, r.Line, path, "%s", err)
	}
	if asCounter {
		g = c
	}
	r.gauge, r.counter = g, c
	return nil
}

func (r *Rule) compileMatch(file, path string) error {
	var err error
	r.metric, r.service, r.labels, err = r.Match.compile(file, r.Line, path)
	return err
}

// anchored compiles pat anchored at both ends. pat must be a regular
// expression on its own: one that only compiles inside the anchoring group
// ("a)|(b" makes "^(?:a)|(b)$") would undo the anchors and match far more
// than it says.
func anchored(pat string) (*regexp.Regexp, error) {
	if _, err := regexp.Compile(pat); err != nil {
		return nil, err
	}
	return regexp.Compile("^(?:" + pat + ")$")
}

// compile turns m's patterns into anchored regular expressions; errors
// name file:line and path.field.
func (m Match) compile(file string, line int, path string) (metric, service *regexp.Regexp, labels []labelMatcher, err error) {
	re := func(field, pat string) (*regexp.Regexp, error) {
		if pat == "" {
			return nil, nil
		}
		x, err := anchored(pat)
		if err != nil {
			return nil, invalid(file, line, path+"."+field, "%q is not a regular expression: %v", pat, err)
		}
		return x, nil
	}
	if metric, err = re("metric", m.Metric); err != nil {
		return nil, nil, nil, err
	}
	if service, err = re("service", m.Service); err != nil {
		return nil, nil, nil, err
	}
	names := make([]string, 0, len(m.Labels))
	for k := range m.Labels {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		if k == "" {
			return nil, nil, nil, invalid(file, line, path+".labels", "has an empty label name")
		}
		x, err := anchored(m.Labels[k])
		if err != nil {
			return nil, nil, nil, invalid(file, line, path+".labels."+k, "%q is not a regular expression: %v", m.Labels[k], err)
		}
		labels = append(labels, labelMatcher{k, x})
	}
	return metric, service, labels, nil
}

func (r *Rule) matches(metric, service string, labels map[string]string) bool {
	return matches(r.metric, r.service, r.labels, metric, service, labels)
}

func matches(reMetric, reService *regexp.Regexp, reLabels []labelMatcher, metric, service string, labels map[string]string) bool {
	if reMetric != nil && !reMetric.MatchString(metric) {
		return false
	}
	if reService != nil && !reService.MatchString(service) {
		return false
	}
	for _, l := range reLabels {
		if !l.re.MatchString(labels[l.name]) {
			return false
		}
	}
	return true
}

// Select returns the route of a series: the first rule that matches it, or
// the defaults; a route with Ignore leaves the series unscored. p must
// have been validated (Parse, Load and Default do it).
func (p *Pipeline) Select(metric, service string, labels map[string]string) Route {
	for i := range p.Rules {
		if r := &p.Rules[i]; r.matches(metric, service, labels) {
			return r.route()
		}
	}
	return Route{Name: DefaultRoute, gauge: p.def.gauge, counter: p.def.counter}
}

func (r *Rule) route() Route {
	if r.Ignore {
		return Route{Name: r.Name, Ignore: true}
	}
	return Route{Name: r.Name, gauge: r.gauge, counter: r.counter}
}

// Lookup returns the route named name (a rule or DefaultRoute), for
// restoring a series whose labels are not at hand.
func (p *Pipeline) Lookup(name string) (Route, bool) {
	if name == DefaultRoute {
		return Route{Name: DefaultRoute, gauge: p.def.gauge, counter: p.def.counter}, true
	}
	for i := range p.Rules {
		if r := &p.Rules[i]; r.Name == name {
			return r.route(), true
		}
	}
	return Route{}, false
}

func invalid(file string, line int, field, format string, args ...any) error {
	var b strings.Builder
	b.WriteString(file)
	if line > 0 {
		fmt.Fprintf(&b, ":%d", line)
	}
	b.WriteString(": ")
	if field != "" {
		b.WriteString(field)
		if format != "" {
			b.WriteString(": ")
		}
	}
	fmt.Fprintf(&b, format, args...)
	return errs.Permanent(fmt.Errorf("%w: %s", ErrInvalid, b.String()))
}
