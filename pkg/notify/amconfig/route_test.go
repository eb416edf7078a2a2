package amconfig

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func mustParse(t *testing.T, y string) *Config {
	t.Helper()
	cfg, err := Parse([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestRouteMatch(t *testing.T) {
	cfg := mustParse(t, `
route:
  receiver: root
  routes:
  - matchers: [team=db]
    receiver: db
    continue: true
    routes:
    - matchers: [env=prod]
      receiver: db-prod
  - matchers: [team=~"db|web"]
    receiver: db-or-web
  - matchers: [team=web]
    receiver: web-never
  - matchers: ['owner=""']
    receiver: no-owner
receivers: [{name: root}, {name: db}, {name: db-prod}, {name: db-or-web}, {name: web-never}, {name: no-owner}]
`)
	for _, c := range []struct {
		labels map[string]string
		want   string
	}{
		{map[string]string{"team": "db", "env": "prod"}, "db-prod,db-or-web"},
		{map[string]string{"team": "db"}, "db,db-or-web"},
		{map[string]string{"team": "web"}, "db-or-web"},
		{map[string]string{"team": "x", "owner": "me"}, "root"},
		{map[string]string{"team": "x"}, "no-owner"},
		{nil, "no-owner"},
	} {
		if got := strings.Join(cfg.Route.Receivers(c.labels), ","); got != c.want {
			t.Errorf("%v: receivers %s, want %s", c.labels, got, c.want)
		}
	}
	// A route that does not match returns nil.
	if got := cfg.Route.Routes[0].Match(map[string]string{"team": "web"}); got != nil {
		t.Errorf("non-matching route returned %v", got)
	}
	// The matched routes are the tree's nodes.
	got := cfg.Route.Match(map[string]string{"team": "db", "env": "prod"})
	if len(got) != 2 || got[0] != cfg.Route.Routes[0].Routes[0] || got[1] != cfg.Route.Routes[1] {
		t.Errorf("Match = %v", got)
	}
}

func TestRouteInheritance(t *testing.T) {
	cfg := mustParse(t, `
route:
  receiver: root
  group_by: [b, a]
  repeat_interval: 1h
  routes:
  - matchers: [x=1]
    group_wait: 1s
    mute_time_intervals: [m]
    routes:
    - matchers: [y=1]
      receiver: child
      group_by: ['...']
      active_time_intervals: [m]
      routes:
      - matchers: [z=1]
        group_by: []
      - matchers: [z=2]
        group_by: [c]
  - matchers: [x=2]
    receiver: two
    group_interval: 2m
    continue: true
receivers: [{name: root}, {name: child}, {name: two}]
time_intervals: [{name: m}]
`)
	r := cfg.Route
	x1, y1 := r.Routes[0], r.Routes[0].Routes[0]
	z1, z2, x2 := y1.Routes[0], y1.Routes[1], r.Routes[1]
	type opts struct {
		Receiver            string
		GroupBy             []string
		GroupByAll          bool
		Wait, Interval, Rpt time.Duration
		Mute, Active        []string
		Continue            bool
	}
	get := func(r *Route) opts {
		return opts{r.Receiver, r.GroupBy, r.GroupByAll, r.GroupWait, r.GroupInterval, r.RepeatInterval, r.MuteTimeIntervals, r.ActiveTimeIntervals, r.Continue}
	}
	for _, c := range []struct {
		name string
		r    *Route
		want opts
	}{
		{"root", r, opts{"root", []string{"a", "b"}, false, 30 * time.Second, 5 * time.Minute, time.Hour, nil, nil, false}},
		{"x1", x1, opts{"root", []string{"a", "b"}, false, time.Second, 5 * time.Minute, time.Hour, []string{"m"}, nil, false}},
		{"y1", y1, opts{"child", []string{"a", "b"}, true, time.Second, 5 * time.Minute, time.Hour, nil, []string{"m"}, false}},
		// group_by: [] inherits in Alertmanager 0.25 (GroupByAll included).
		{"z1", z1, opts{"child", []string{"a", "b"}, true, time.Second, 5 * time.Minute, time.Hour, nil, nil, false}},
		{"z2", z2, opts{"child", []string{"c"}, false, time.Second, 5 * time.Minute, time.Hour, nil, nil, false}},
		{"x2", x2, opts{"two", []string{"a", "b"}, false, 30 * time.Second, 2 * time.Minute, time.Hour, nil, nil, true}},
	} {
		if got := get(c.r); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s:\n got %+v\nwant %+v", c.name, got, c.want)
		}
	}
	labels := map[string]string{"a": "1", "b": "2", "c": "3", "d": "4"}
	if got := x1.GroupLabels(labels); !reflect.DeepEqual(got, map[string]string{"a": "1", "b": "2"}) {
		t.Errorf("GroupLabels = %v", got)
	}
	if got := y1.GroupLabels(labels); !reflect.DeepEqual(got, labels) {
		t.Errorf("GroupLabels with ... = %v", got)
	}
	var paths []string
	r.Walk(func(r *Route) { paths = append(paths, r.Path) })
	if want := "route route.routes[0] route.routes[0].routes[0] route.routes[0].routes[0].routes[0] route.routes[0].routes[0].routes[1] route.routes[1]"; strings.Join(paths, " ") != want {
		t.Errorf("Walk: %v", paths)
	}
}

func TestRouteMatchersSortedAndAnchored(t *testing.T) {
	cfg := mustParse(t, `
route:
  receiver: a
  routes:
  - match: {team: db, env: prod}
    match_re: {service: 'a|b'}
    matchers: ['alertname!~"x"', 'env=prod']
receivers: [{name: a}]
`)
	got := cfg.Route.Routes[0].Matchers.String()
	want := `{alertname!~"x",env="prod",env="prod",service=~"^(?:a|b)$",team="db"}`
	if got != want {
		t.Errorf("matchers %s, want %s", got, want)
	}
}

func TestFormatRoutesTestTree(t *testing.T) {
	cfg := mustParse(t, `
route:
  receiver: default
  routes:
  - matchers: ['service=~"db|api"', 'env!="dev"']
    receiver: team-a
    continue: true
    routes:
    - match: {severity: critical}
      receiver: pager
    - match_re: {severity: "warn.*"}
  - match: {team: b}
    receiver: team-b
    routes:
    - matchers: [sub=x]
      receiver: sub-x
receivers: [{name: default}, {name: team-a}, {name: team-b}, {name: pager}, {name: sub-x}]
`)
	// The output of amtool 0.25 (Debian) for these labels; the vertical
	// line is followed by two no-break spaces.
	want := "Matching routes:\n" +
		".\n" +
		"└── default-route\n" +
		"    ├── {env!=\"dev\",service=~\"db|api\"}\n" +
		"    │\u00a0\u00a0 └── {severity=\"critical\"}  receiver: pager\n" +
		"    └── {team=\"b\"}\n" +
		"        └── {sub=\"x\"}  receiver: sub-x\n" +
		"\n\n" +
		"pager,sub-x\n"
	labels := map[string]string{"service": "db", "severity": "critical", "team": "b", "sub": "x"}
	if got := FormatRoutesTest(cfg, labels, true); got != want {
		t.Errorf("tree:\n%s\nwant:\n%s", got, want)
	}
	if got := FormatRoutesTest(cfg, map[string]string{"team": "c"}, false); got != "default\n" {
		t.Errorf("no tree: %q", got)
	}
	want = "Matching routes:\n.\n└── default-route\n    └── {env!=\"dev\",service=~\"db|api\"}\n        └── {severity=~\"^(?:warn.*)$\"}  receiver: team-a\n\n\nteam-a\n"
	if got := FormatRoutesTest(cfg, map[string]string{"service": "api", "severity": "warning"}, true); got != want {
		t.Errorf("tree:\n%s\nwant:\n%s", got, want)
	}
}

// An incident's labels may have names that are not classic Prometheus
// names: OpenTelemetry's scope (otel.scope.name) and attributes
// (k8s.pod.name, service.namespace). As in Alertmanager 0.27 and later,
// routes match them through matchers (the name double-quoted), group_by
// and inhibit rules' equal name them as they are, and a route's matchers
// print them as Alertmanager does.
func TestUTF8LabelNames(t *testing.T) {
	cfg := mustParse(t, `
route:
  receiver: default
  group_by: [otel.scope.name, "service name"]
  routes:
  - matchers: ['{"otel.scope.name"="checkout"}']
    receiver: checkout
  - matchers: ['"service.namespace"=~"shop.*"', '"service name"!=""']
    receiver: shop
inhibit_rules:
- source_matchers: [severity=critical]
  target_matchers: [severity=warning]
  equal: [k8s.pod.name]
receivers: [{name: default}, {name: checkout}, {name: shop}]
`)
	type L = map[string]string
	for _, c := range []struct {
		labels L
		want   string
	}{
		{L{"otel.scope.name": "checkout"}, "checkout"},
		{L{"otel.scope.name": "checkout2"}, "default"},
		{L{"otel_scope_name": "checkout"}, "default"},
		{L{"service.namespace": "shop-eu", "service name": "cart"}, "shop"},
		{L{"service.namespace": "shop-eu"}, "default"},
		{L{"service.namespace": "warehouse", "service name": "cart"}, "default"},
	} {
		if got := strings.Join(cfg.Route.Receivers(c.labels), ","); got != c.want {
			t.Errorf("%v: receivers %s, want %s", c.labels, got, c.want)
		}
	}
	if got, want := cfg.Route.Routes[0].GroupBy, []string{"otel.scope.name", "service name"}; !reflect.DeepEqual(got, want) {
		t.Errorf("group_by inherited as %q, want %q", got, want)
	}
	labels := L{"otel.scope.name": "checkout", "service name": "cart", "k8s.pod.name": "web-0"}
	if got, want := cfg.Route.Routes[0].GroupLabels(labels), (L{"otel.scope.name": "checkout", "service name": "cart"}); !reflect.DeepEqual(got, want) {
		t.Errorf("GroupLabels = %v, want %v", got, want)
	}
	crit := L{"severity": "critical", "k8s.pod.name": "web-0"}
	if !cfg.Inhibited(L{"severity": "warning", "k8s.pod.name": "web-0"}, []L{crit}) {
		t.Error("a warning of the critical alert's pod is not inhibited")
	}
	if cfg.Inhibited(L{"severity": "warning", "k8s.pod.name": "web-1"}, []L{crit}) {
		t.Error("a warning of another pod is inhibited")
	}
	want := "Matching routes:\n.\n└── default-route\n    └── {\"service name\"!=\"\",service.namespace=~\"shop.*\"}  receiver: shop\n\n\nshop\n"
	if got := FormatRoutesTest(cfg, L{"service.namespace": "shop", "service name": "x"}, true); got != want {
		t.Errorf("tree:\n%s\nwant:\n%s", got, want)
	}
}
