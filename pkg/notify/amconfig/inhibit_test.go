package amconfig

import (
	"math/rand/v2"
	"testing"
)

func TestInhibited(t *testing.T) {
	cfg := mustParse(t, base+`
inhibit_rules:
- source_matchers: [severity=critical]
  target_matchers: [severity=~"warning|critical"]
  equal: [cluster, service]
- source_match: {alertname: ClusterDown}
  target_match_re: {alertname: '.+'}
  target_matchers: ['alertname!=ClusterDown']
  equal: [cluster]
`)
	type L = map[string]string
	for _, c := range []struct {
		name   string
		target L
		firing []L
		want   bool
	}{
		{"critical inhibits warning with equal labels",
			L{"severity": "warning", "cluster": "a", "service": "s"},
			[]L{{"severity": "critical", "cluster": "a", "service": "s"}}, true},
		{"an equal label differs",
			L{"severity": "warning", "cluster": "a", "service": "s"},
			[]L{{"severity": "critical", "cluster": "b", "service": "s"}}, false},
		{"equal labels missing on both sides are equal",
			L{"severity": "warning"},
			[]L{{"severity": "critical"}}, true},
		{"missing on one side, empty on the other, is equal",
			L{"severity": "warning", "cluster": ""},
			[]L{{"severity": "critical", "service": ""}}, true},
		{"missing on one side only is not",
			L{"severity": "warning", "cluster": "a"},
			[]L{{"severity": "critical"}}, false},
		{"the source does not match",
			L{"severity": "warning"},
			[]L{{"severity": "major"}}, false},
		{"the target does not match",
			L{"severity": "info"},
			[]L{{"severity": "critical"}}, false},
		{"nothing fires",
			L{"severity": "warning"}, nil, false},
		{"an alert does not inhibit itself",
			L{"severity": "critical", "cluster": "a"},
			[]L{{"severity": "critical", "cluster": "a"}}, false},
		{"nor does a peer that matches both sides",
			L{"severity": "critical", "cluster": "a", "alertname": "X"},
			[]L{{"severity": "critical", "cluster": "a", "alertname": "Y"}}, false},
		{"a source that is not a target inhibits a two-sided target",
			L{"alertname": "ClusterDown2", "cluster": "a"},
			[]L{{"alertname": "ClusterDown", "cluster": "a"}}, true},
		{"legacy rule: ClusterDown inhibits everything in its cluster",
			L{"alertname": "Disk", "cluster": "a", "severity": "critical"},
			[]L{{"alertname": "ClusterDown", "cluster": "a"}, {"alertname": "Other"}}, true},
		{"legacy rule: but not ClusterDown itself",
			L{"alertname": "ClusterDown", "cluster": "a"},
			[]L{{"alertname": "ClusterDown", "cluster": "a"}}, false},
		{"legacy rule: other cluster",
			L{"alertname": "Disk", "cluster": "b"},
			[]L{{"alertname": "ClusterDown", "cluster": "a"}}, false},
	} {
		if got := cfg.Inhibited(c.target, c.firing); got != c.want {
			t.Errorf("%s: Inhibited = %v, want %v", c.name, got, c.want)
		}
		for _, r := range cfg.InhibitRules {
			if got, want := r.Index(c.firing).InhibitingAlert(c.target), r.InhibitingAlert(c.target, c.firing); got != want {
				t.Errorf("%s: %s: the index's InhibitingAlert = %d, the rule's %d", c.name, r.Path, got, want)
			}
		}
	}
	r := cfg.InhibitRules[1]
	if i := r.InhibitingAlert(L{"alertname": "Disk", "cluster": "a"}, []L{{"alertname": "X"}, {"alertname": "ClusterDown", "cluster": "a"}}); i != 1 {
		t.Errorf("InhibitingAlert = %d, want 1", i)
	}
}

// The index answers what the rule answers, for every target among many
// firing alerts: the same first inhibiting alert, or none.
func TestInhibitIndexAnswersAsTheRule(t *testing.T) {
	cfg := mustParse(t, base+`
inhibit_rules:
- source_matchers: [severity=critical]
  target_matchers: [severity=~"warning|critical"]
  equal: [cluster, service]
- source_matchers: [severity=~"critical|warning"]
  target_matchers: [severity=warning]
  equal: [cluster]
- source_matchers: [alertname=Down]
  target_matchers: [severity!=info]
`)
	rnd := rand.New(rand.NewPCG(1, 2))
	pick := func(values ...string) string { return values[rnd.IntN(len(values))] }
	var firing []map[string]string
	for range 300 {
		l := map[string]string{"severity": pick("critical", "warning", "info"), "alertname": pick("Down", "Slow")}
		if c := pick("a", "b", "", "-"); c != "-" {
			l["cluster"] = c // "" and missing are the same value
		}
		if s := pick("x", "y", "-"); s != "-" {
			l["service"] = s
		}
		firing = append(firing, l)
	}
	for _, r := range cfg.InhibitRules {
		for n := range len(firing) {
			// the firing alerts so far, each of them a target too
			x := r.Index(firing[:n])
			for _, target := range firing {
				if got, want := x.InhibitingAlert(target), r.InhibitingAlert(target, firing[:n]); got != want {
					t.Fatalf("%s, %d firing, target %v: the index's InhibitingAlert = %d, the rule's %d", r.Path, n, target, got, want)
				}
			}
		}
	}
}
