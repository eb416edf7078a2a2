package amconfig

import (
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// The options of the root route when it does not set them, as in
// Alertmanager.
const (
	DefaultGroupWait      = 30 * time.Second
	DefaultGroupInterval  = 5 * time.Minute
	DefaultRepeatInterval = 4 * time.Hour
)

// Route is a node of the routing tree with its effective options: what it
// does not set it inherits from its parent exactly as Alertmanager does
// (receiver, group_by, group_wait, group_interval, repeat_interval; the
// root's defaults are 30s, 5m and 4h). Time intervals and continue are
// not inherited.
type Route struct {
	// Receiver is the effective receiver.
	Receiver string
	// GroupBy is the effective set of grouping labels, sorted.
	GroupBy []string
	// GroupByAll is true when the route (or the nearest ancestor that sets
	// group_by) groups by every label: group_by: ['...'].
	GroupByAll bool
	// Effective timers.
	GroupWait, GroupInterval, RepeatInterval time.Duration
	// MuteTimeIntervals and ActiveTimeIntervals are this route's own
	// (Alertmanager does not inherit them).
	MuteTimeIntervals, ActiveTimeIntervals []string
	// Continue: after this route matches, its later siblings are tried
	// too.
	Continue bool
	// Matchers joins match, match_re and matchers, sorted by name, value
	// and operator as Alertmanager sorts them. A match_re value is kept
	// anchored (^(?:re)$), as Alertmanager shows it.
	Matchers Matchers
	// Routes are the children, in order.
	Routes []*Route
	// Path is where the route is in the file: route, route.routes[0], ...
	Path string

	parent *Route
	// receiverSet is the receiver the route itself names ("" if it
	// inherits); rootMatcherKeys are its non-empty matcher keys, for the
	// root's check.
	receiverSet     string
	rootMatcherKeys []string
}

// Parent returns the parent route; nil for the root.
func (r *Route) Parent() *Route { return r.parent }

// Match returns the routes an alert with these labels goes to, in order,
// as Alertmanager's dispatcher finds them: depth first, left to right; a
// route that matches stops the search among its siblings unless it has
// continue; a route whose children do not match is itself the match. It
// returns nil if r itself does not match. A label the map does not have is
// the empty string.
func (r *Route) Match(labels map[string]string) []*Route {
	if !r.Matchers.Matches(labels) {
		return nil
	}
	var all []*Route
	for _, c := range r.Routes {
		m := c.Match(labels)
		all = append(all, m...)
		if m != nil && !c.Continue {
			break
		}
	}
	if len(all) == 0 {
		all = append(all, r)
	}
	return all
}

// Receivers returns the receiver of each matched route, in order (a
// receiver may appear more than once), as `amtool config routes test`
// prints them joined by commas.
func (r *Route) Receivers(labels map[string]string) []string {
	routes := r.Match(labels)
	out := make([]string, len(routes))
	for i, m := range routes {
		out[i] = m.Receiver
	}
	return out
}

// Walk calls visit on r and every route below it, depth first.
func (r *Route) Walk(visit func(*Route)) {
	visit(r)
	for _, c := range r.Routes {
		c.Walk(visit)
	}
}

// Key identifies the route as Alertmanager's does in group keys: the
// matchers of every route from the root down, joined by "/". It is not
// unique in general (two sibling routes may have the same matchers).
func (r *Route) Key() string {
	var b strings.Builder
	if r.parent != nil {
		b.WriteString(r.parent.Key())
		b.WriteByte('/')
	}
	b.WriteString(r.Matchers.String())
	return b.String()
}

// GroupLabels returns the labels that make an alert's group on this route:
// all of them with GroupByAll, else those in GroupBy that the alert has.
func (r *Route) GroupLabels(labels map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range labels {
		if r.GroupByAll || slices.Contains(r.GroupBy, k) {
			out[k] = v
		}
	}
	return out
}

const routeKeys = "receiver, group_by, continue, matchers, match, match_re, group_wait, group_interval, repeat_interval, mute_time_intervals, active_time_intervals, routes"

// route decodes a route and its children, inheriting from parent as
// Alertmanager's dispatch.NewRoute does.
func (d *decoder) route(n *yaml.Node, path string, parent *Route) *Route {
	entries, ok := d.mapping(n, path)
	if !ok {
		return nil
	}
	r := &Route{Path: path, parent: parent}
	if parent == nil {
		r.GroupWait, r.GroupInterval, r.RepeatInterval = DefaultGroupWait, DefaultGroupInterval, DefaultRepeatInterval
		r.GroupBy = []string{}
	} else {
		r.Receiver = parent.Receiver
		r.GroupBy = parent.GroupBy
		r.GroupByAll = parent.GroupByAll
		r.GroupWait, r.GroupInterval, r.RepeatInterval = parent.GroupWait, parent.GroupInterval, parent.RepeatInterval
	}
	var children []entry
	var match, matchRE, matchers Matchers
	for _, e := range entries {
		switch e.key {
		case "receiver":
			r.receiverSet, _ = d.str(e.val, e.path)
			if r.receiverSet != "" {
				r.Receiver = r.receiverSet
			}
		case "group_by":
			d.groupBy(e, r)
		case "continue":
			r.Continue, _ = d.boolean(e.val, e.path)
		case "match":
			match = d.addMatchers(match, d.labelMatchers(e.val, e.path, MatchEqual), e)
		case "match_re":
			matchRE = d.addMatchers(matchRE, d.labelMatchers(e.val, e.path, MatchRegexp), e)
		case "matchers":
			matchers = append(matchers, d.matcherList(e.val, e.path)...)
		case "group_wait":
			if !isNull(e.val) {
				r.GroupWait, _ = d.duration(e.val, e.path)
			}
		case "group_interval", "repeat_interval":
			if isNull(e.val) {
				continue
			}
			v, ok := d.duration(e.val, e.path)
			if !ok {
				continue
			}
			if v == 0 {
				d.errorf(resolve(e.val), e.path, "cannot be zero")
				continue
			}
			if e.key == "group_interval" {
				r.GroupInterval = v
			} else {
				r.RepeatInterval = v
			}
		case "mute_time_intervals":
			r.MuteTimeIntervals, _ = d.stringList(e.val, e.path)
		case "active_time_intervals":
			r.ActiveTimeIntervals, _ = d.stringList(e.val, e.path)
		case "routes":
			children = []entry{e}
		default:
			d.unknownKey(e, routeKeys)
		}
	}
	for _, m := range []struct {
		key string
		ms  Matchers
	}{{"match", match}, {"match_re", matchRE}, {"matchers", matchers}} {
		if len(m.ms) > 0 {
			r.rootMatcherKeys = append(r.rootMatcherKeys, m.key)
		}
	}
	r.Matchers = slices.Concat(match, matchRE, matchers)
	sortMatchers(r.Matchers)
	for _, e := range children {
		items, _ := d.sequence(e.val, e.path)
		for i, it := range items {
			if isNull(it) {
				// Alertmanager crashes on a null route.
				d.errorf(it, index(e.path, i), "expected a route, got null")
				continue
			}
			if c := d.route(it, index(e.path, i), r); c != nil {
				r.Routes = append(r.Routes, c)
			}
		}
	}
	return r
}

// groupBy applies group_by as Alertmanager 0.25 does: a list of label
// names (any non-empty text, as 0.27 and later take them), or ['...'] for
// every label. A list with at least one name replaces the inherited one;
// ['...'] turns GroupByAll on and keeps the inherited names (unused while
// GroupByAll is on); an empty list, like no group_by at all, inherits.
func (d *decoder) groupBy(e entry, r *Route) {
	list, ok := d.stringList(e.val, e.path)
	if !ok {
		return
	}
	var names []string
	all := false
	seen := map[string]bool{}
	for i, l := range list {
		if l == "..." {
			all = true
			continue
		}
		if !validUTF8LabelName(l) {
			d.errorf(resolve(e.val), index(e.path, i), "%q is not a valid label name", l)
			continue
		}
		if seen[l] {
			d.errorf(resolve(e.val), index(e.path, i), "label %q is listed twice", l)
			continue
		}
		seen[l] = true
		names = append(names, l)
	}
	if all && len(names) > 0 {
		d.errorf(resolve(e.val), e.path, "cannot have '...' (every label) and label names at the same time")
		return
	}
	if names != nil {
		slices.Sort(names)
		r.GroupBy = names
		r.GroupByAll = false
	} else if all {
		r.GroupByAll = true
	}
}

// addMatchers adds the matchers of a match or match_re map that a merge
// key (<<) brought again: as in Alertmanager, the maps are joined and a
// label set in both is an error.
func (d *decoder) addMatchers(have, add Matchers, e entry) Matchers {
	for _, m := range add {
		if slices.ContainsFunc(have, func(h *Matcher) bool { return h.Name == m.Name }) {
			d.errorf(e.keyNode, joinKey(e.path, m.Name), "key set twice (once through a merge key <<)")
			continue
		}
		have = append(have, m)
	}
	return have
}

// labelMatchers decodes match (label: value, t MatchEqual) or match_re
// (label: regex, t MatchRegexp); keys must be classic label names. A
// regex is anchored as Alertmanager anchors it, and kept anchored:
// ^(?:re)$.
func (d *decoder) labelMatchers(n *yaml.Node, path string, t MatchType) Matchers {
	entries, m, _ := d.stringMap(n, path)
	var out Matchers
	for _, e := range entries {
		v, ok := m[e.key]
		if !ok {
			continue
		}
		if !validLabelName(e.key) {
			// As in Alertmanager, even 0.27 and later: only matchers
			// take other names.
			d.errorf(e.keyNode, e.path, "%q is not a valid label name ([a-zA-Z_][a-zA-Z0-9_]*; name others in a matchers list, double-quoted)", e.key)
			continue
		}
		if t == MatchRegexp {
			v = "^(?:" + v + ")$"
		}
		mt, err := NewMatcher(t, e.key, v)
		if err != nil {
			d.errorf(resolve(e.val), e.path, "invalid regular expression: %v", err)
			continue
		}
		out = append(out, mt)
	}
	return out
}

// matcherList decodes matchers: a list of strings, each one or more
// matchers (ParseMatchers).
func (d *decoder) matcherList(n *yaml.Node, path string) Matchers {
	items, _ := d.sequence(n, path)
	var out Matchers
	for i, it := range items {
		s, ok := d.str(it, index(path, i))
		if !ok {
			continue
		}
		ms, err := ParseMatchers(s)
		if err != nil {
			d.errorf(it, index(path, i), "%v", err)
			continue
		}
		out = append(out, ms...)
	}
	return out
}
