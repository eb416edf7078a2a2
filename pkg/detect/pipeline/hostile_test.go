package pipeline

import (
	"errors"
	"strings"
	"testing"
)

// A matcher is a regular expression of its own, anchored at both ends: a
// pattern that only compiles inside the anchoring group ("a)|(b" becomes
// "^(?:a)|(b)$") is refused, not taken with its anchors undone (it would
// match every name that starts with a, or ends with b).
func TestMatcherThatBreaksItsAnchorsIsRefused(t *testing.T) {
	for _, c := range []struct{ name, yaml, field string }{
		{"rule metric", "detect:\n  rules:\n    - name: a\n      match: {metric: \"disk)|(.*\"}\n", "detect.rules[0].match.metric"},
		{"rule service", "detect:\n  rules:\n    - name: a\n      match: {service: \"db)|(.*\"}\n", "detect.rules[0].match.service"},
		{"rule label", "detect:\n  rules:\n    - name: a\n      match: {labels: {env: \"prod)|(.*\"}}\n", "detect.rules[0].match.labels.env"},
		{"group label", "detect:\n  groups:\n    - name: g\n      match: {labels: {env: \"prod)|(.*\"}}\n      by: [host]\n      channels: [a, b]\n", "detect.groups[0].match.labels.env"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p, err := Parse("t.yaml", []byte(c.yaml))
			if err == nil {
				r := p.Select("http_requests_total", "web", map[string]string{"env": "dev"})
				g := p.SelectGroups(nil, "a", "web", map[string]string{"env": "dev"})
				t.Fatalf("accepted; an unrelated series goes to route %q and %d groups", r.Name, len(g))
			}
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "t.yaml:3") || !strings.Contains(err.Error(), c.field) {
				t.Errorf("error %q does not name t.yaml:3 and %s", err, c.field)
			}
		})
	}
}

// counter is no setting of the defaults: each sample's type says whether
// it is a counter, and scoring every series as one would score gauges'
// differences. A file that sets it is refused, naming the line and the
// field. A rule may (its series are counters whose samples say gauge:
// TestRuleScoresUntypedCountersAsCounters).
func TestCounterInTheDefaultsIsRefused(t *testing.T) {
	for _, c := range []struct{ name, yaml, want string }{
		{"defaults", "detect:\n  defaults:\n    window: 32\n    counter: true\n", "t.yaml:4: detect.defaults.counter"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("t.yaml", []byte(c.yaml))
			if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want one naming %s", err, c.want)
			}
		})
	}
}
