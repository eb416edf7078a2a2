package pipeline

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/aiops-dev/aiops/pkg/detect"
)

// Limits and defaults of a group.
const (
	// DefaultGroupWait is how long a row waits for its missing channels.
	DefaultGroupWait = 30 * time.Second
	MaxGroupWait     = time.Hour
	// MaxGroupBy bounds the labels that name an asset.
	MaxGroupBy = 16
	// ByService in a group's by is the envelope's service, not a label.
	ByService = "service"
)

// Group scores several metrics of one asset together: samples that Match
// and whose metric is one of Channels are gathered, per asset (the values
// of the By labels), into rows of one value per channel, and each row is
// scored by the group's Method.
type Group struct {
	Name  string `yaml:"name"`
	Match Match  `yaml:"match"`
	// By names the labels whose values identify one asset; ByService is
	// the envelope's service.
	By []string `yaml:"by"`
	// Channels are the metric names that make a row, in order.
	Channels []string `yaml:"channels"`
	// Wait is how long a row waits for its missing channels before it is
	// scored without them. Default DefaultGroupWait.
	Wait time.Duration `yaml:"wait"`
	// Method scores the rows: detect.MethodVote (the default) votes the
	// channels' own univariate detectors (detect.Vote, the pipeline's
	// defaults), as `aiops detect eval` scores an asset; detect.MethodPCA
	// is one principal-component model of the channels (detect.Group).
	Method string `yaml:"method"`
	// Settings configure method pca's detect.Group; zero fields take
	// detect's defaults. A vote has none (its channels' detectors are the
	// pipeline's defaults), so settings with method vote are an error.
	Settings detect.GroupConfig `yaml:"settings"`
	// Line is where the group starts in its file (0 when built in code).
	Line int `yaml:"-"`

	node            *yaml.Node
	metric, service *regexp.Regexp
	labels          []labelMatcher
	index           map[string]int
}

// GroupChannel is a group that takes a sample, and the sample's channel in it.
type GroupChannel struct {
	Group   *Group
	Channel int
}

var labelNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func (g *Group) compile(file string, i int, seen map[string]int) error {
	path := fmt.Sprintf("detect.groups[%d]", i)
	at := func(field string) int { return lineOf(g.node, field, g.Line) }
	switch {
	case g.Name == "":
		return invalid(file, g.Line, path+".name", "is empty")
	case len(g.Name) > 64 || strings.ContainsAny(g.Name, " \t\n."):
		return invalid(file, at("name"), path+".name", "%q must be at most 64 characters without spaces or dots", g.Name)
	}
	if j, dup := seen[g.Name]; dup {
		return invalid(file, at("name"), path+".name", "%q repeats the name of groups[%d]", g.Name, j)
	}
	seen[g.Name] = i
	if len(g.By) == 0 || len(g.By) > MaxGroupBy {
		return invalid(file, at("by"), path+".by", "has %d labels, want 1 to %d", len(g.By), MaxGroupBy)
	}
	by := map[string]bool{}
	for j, l := range g.By {
		if !labelNameRE.MatchString(l) {
			return invalid(file, at("by"), fmt.Sprintf("%s.by[%d]", path, j), "%q is not a label name", l)
		}
		if by[l] {
			return invalid(file, at("by"), fmt.Sprintf("%s.by[%d]", path, j), "%q is repeated", l)
		}
		by[l] = true
	}
	if len(g.Channels) < 2 || len(g.Channels) > detect.MaxGroupChannels {
		return invalid(file, at("channels"), path+".channels", "has %d metrics, want 2 to %d", len(g.Channels), detect.MaxGroupChannels)
	}
	g.index = make(map[string]int, len(g.Channels))
	for j, c := range g.Channels {
		if c == "" {
			return invalid(file, at("channels"), fmt.Sprintf("%s.channels[%d]", path, j), "is empty")
		}
		if k, dup := g.index[c]; dup {
			return invalid(file, at("channels"), fmt.Sprintf("%s.channels[%d]", path, j), "%q repeats channels[%d]", c, k)
		}
		g.index[c] = j
	}
	if g.Wait == 0 {
		g.Wait = DefaultGroupWait
	}
	if g.Wait < time.Second || g.Wait > MaxGroupWait {
		return invalid(file, at("wait"), path+".wait", "%v, want 1s to %v", g.Wait, MaxGroupWait)
	}
	method, err := detect.ParseMethod(g.Method)
	if err != nil {
		return invalid(file, at("method"), path+".method", "group %q: %q is not a method, want %s (the default) or %s", g.Name, g.Method, detect.MethodVote, detect.MethodPCA)
	}
	g.Method = method
	if method == detect.MethodVote && g.Settings != (detect.GroupConfig{}) {
		return invalid(file, at("settings"), path+".settings", "group %q: settings configure method %s; method %s scores each channel with the detect.defaults detectors (set method: %s to keep them)", g.Name, detect.MethodPCA, detect.MethodVote, detect.MethodPCA)
	}
	if err := g.Settings.Validate(); err != nil {
		msg := strings.TrimPrefix(err.Error(), detect.ErrInvalidGroupConfig.Error()+": ")
		field, _, _ := strings.Cut(msg, ":")
		return invalid(file, lineOf(child(g.node, "settings"), field, g.Line), path+".settings."+msg, "")
	}
	g.metric, g.service, g.labels, err = g.Match.compile(file, g.Line, path+".match")
	return err
}

// Channel returns the channel of metric in g.
func (g *Group) Channel(metric string) (int, bool) {
	c, ok := g.index[metric]
	return c, ok
}

// Group returns the group named name.
func (p *Pipeline) Group(name string) (*Group, bool) {
	for i := range p.Groups {
		if g := &p.Groups[i]; g.Name == name {
			return g, true
		}
	}
	return nil, false
}

// SelectGroups appends to dst every group that takes a sample of metric:
// its match matches and metric is one of its channels. A sample may feed
// several groups. p must have been validated.
func (p *Pipeline) SelectGroups(dst []GroupChannel, metric, service string, labels map[string]string) []GroupChannel {
	for i := range p.Groups {
		g := &p.Groups[i]
		c, ok := g.index[metric]
		if ok && matches(g.metric, g.service, g.labels, metric, service, labels) {
			dst = append(dst, GroupChannel{g, c})
		}
	}
	return dst
}
