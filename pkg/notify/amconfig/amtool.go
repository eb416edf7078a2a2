package amconfig

import (
	"errors"
	"fmt"
	"strings"
)

// ParseLabels reads label arguments as amtool does (name=value, the value
// optionally in double quotes with \", \\ and \n escapes; only =).
func ParseLabels(args []string) (map[string]string, error) {
	labels := make(map[string]string, len(args))
	for _, a := range args {
		m, err := ParseMatcher(a)
		if err != nil {
			return nil, err
		}
		if m.Type != MatchEqual {
			return nil, errors.New("labels must be specified as key=value pairs")
		}
		labels[m.Name] = m.Value
	}
	return labels, nil
}

// FormatRoutesTest returns what `amtool config routes test
// --config.file=FILE [--tree] label=value ...` (Alertmanager 0.25)
// prints on standard output: with tree, "Matching routes:", the tree of
// the routes an alert walks through (each leaf with its receiver) and two
// empty lines; then the receivers joined by commas and a newline.
func FormatRoutesTest(cfg *Config, labels map[string]string, tree bool) string {
	var b strings.Builder
	if tree {
		t := &treeNode{value: "."}
		matchingTree(cfg.Route, t, labels)
		b.WriteString("Matching routes:\n")
		b.WriteString(t.String())
		b.WriteString("\n\n")
	}
	b.WriteString(strings.Join(cfg.Route.Receivers(labels), ","))
	b.WriteString("\n")
	return b.String()
}

// routeSlug names a route as amtool does: its matchers, or default-route
// when it has none; with the receiver for a route that is a match.
func routeSlug(r *Route, withReceiver bool) string {
	s := "default-route"
	if len(r.Matchers) > 0 {
		s = r.Matchers.String()
	}
	if withReceiver {
		s += "  receiver: " + r.Receiver
	}
	return s
}

func matchingTree(r *Route, parent *treeNode, labels map[string]string) {
	branch := parent.add(routeSlug(r, false))
	final := true
	for _, c := range r.Routes {
		if c.Matchers.Matches(labels) {
			matchingTree(c, branch, labels)
			final = false
			if !c.Continue {
				break
			}
		}
	}
	if final {
		branch.value = routeSlug(r, true)
	}
}

// treeNode draws a tree as the treeprint package in Debian's amtool 0.25
// does (a vertical line followed by two no-break spaces and a space).
type treeNode struct {
	value    string
	children []*treeNode
}

func (n *treeNode) add(v string) *treeNode {
	c := &treeNode{value: v}
	n.children = append(n.children, c)
	return c
}

const (
	treeLink  = "│\u00a0\u00a0 "
	treeBlank = "    "
	treeMid   = "├──"
	treeEnd   = "└──"
)

func (n *treeNode) String() string {
	var b strings.Builder
	b.WriteString(n.value)
	b.WriteByte('\n')
	n.writeChildren(&b, nil)
	return b.String()
}

// writeChildren writes n's children; ended[i] tells whether the ancestor
// at depth i was the last of its siblings (no line continues below it).
func (n *treeNode) writeChildren(b *strings.Builder, ended []bool) {
	for i, c := range n.children {
		last := i == len(n.children)-1
		for _, e := range ended {
			if e {
				b.WriteString(treeBlank)
			} else {
				b.WriteString(treeLink)
			}
		}
		edge := treeMid
		if last {
			edge = treeEnd
		}
		fmt.Fprintf(b, "%s %s\n", edge, c.value)
		if len(c.children) > 0 {
			c.writeChildren(b, append(ended[:len(ended):len(ended)], last))
		}
	}
}
