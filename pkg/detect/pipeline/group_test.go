package pipeline

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aiops-dev/aiops/pkg/detect"
	"github.com/aiops-dev/aiops/pkg/errs"
)

// The shipped group takes the golden signals of any service and leaves the
// rules' routing alone.
func TestDefaultFileGroup(t *testing.T) {
	p, err := Load("../../../pipelines/default.yaml")
	if err != nil {
		t.Fatal(err)
	}
	g, ok := p.Group("golden-signals")
	if !ok {
		t.Fatal("no golden-signals group")
	}
	if len(g.Channels) != 4 || g.By[0] != ByService || g.Wait != 30*time.Second {
		t.Errorf("group %+v", g)
	}
	got := p.SelectGroups(nil, "service:http_errors:ratio_rate1m", "checkout", nil)
	if len(got) != 1 || got[0].Group != g || got[0].Channel != 1 {
		t.Errorf("error ratio taken by %+v, want golden-signals channel 1", got)
	}
	if got := p.SelectGroups(nil, "node_filesystem_avail_bytes", "db", nil); len(got) != 0 {
		t.Errorf("a metric that is no channel taken by %d groups", len(got))
	}
	if r := p.Select("service:http_errors:ratio_rate1m", "checkout", nil); r.Name != DefaultRoute {
		t.Errorf("a group's metric routed to %q, want the univariate default", r.Name)
	}
}

func TestGroupsMatchAndOverlap(t *testing.T) {
	p, err := Parse("g.yaml", []byte(`
detect:
  groups:
    - name: nodes
      match: {labels: {env: prod}}
      by: [host]
      channels: [cpu, mem, disk]
    - name: cpu-mem
      by: [host, service]
      channels: [mem, cpu]
      method: pca
      settings: {warmup: 50, max_alarm: 10m}
`))
	if err != nil {
		t.Fatal(err)
	}
	got := p.SelectGroups(nil, "cpu", "s", map[string]string{"env": "prod"})
	if len(got) != 2 || got[0].Group.Name != "nodes" || got[0].Channel != 0 || got[1].Group.Name != "cpu-mem" || got[1].Channel != 1 {
		t.Errorf("cpu in prod: %+v", got)
	}
	if got := p.SelectGroups(nil, "cpu", "s", map[string]string{"env": "dev"}); len(got) != 1 || got[0].Group.Name != "cpu-mem" {
		t.Errorf("cpu in dev: %+v", got)
	}
	if g, _ := p.Group("nodes"); g.Method != detect.MethodVote {
		t.Errorf("nodes: method %q, want the default %q", g.Method, detect.MethodVote)
	}
	g, _ := p.Group("cpu-mem")
	if g.Method != detect.MethodPCA {
		t.Errorf("cpu-mem: method %q, want %q", g.Method, detect.MethodPCA)
	}
	if g.Settings.Warmup != 50 || g.Settings.MaxAlarm != 10*time.Minute || g.Wait != DefaultGroupWait {
		t.Errorf("settings %+v wait %v", g.Settings, g.Wait)
	}
	if _, err := detect.NewGroup(g.Settings, len(g.Channels)); err != nil {
		t.Errorf("settings do not make a group: %v", err)
	}
}

func TestGroupErrorsNameLineAndField(t *testing.T) {
	const head = "detect:\n  groups:\n    - name: a\n      by: [host]\n"
	for _, c := range []struct {
		name, yaml string
		want       []string
	}{
		{"unknown field", head + "      channels: [x, y]\n      chanels: [z]\n", []string{"g.yaml", "line 6", "chanels"}},
		{"no name", "detect:\n  groups:\n    - by: [host]\n      channels: [x, y]\n", []string{"g.yaml:3", "detect.groups[0].name", "empty"}},
		{"dotted name", "detect:\n  groups:\n    - name: a.b\n      by: [host]\n      channels: [x, y]\n", []string{"g.yaml:3", "detect.groups[0].name"}},
		{"duplicate", head + "      channels: [x, y]\n    - name: a\n      by: [h]\n      channels: [x, y]\n", []string{"g.yaml:6", "detect.groups[1].name", "groups[0]"}},
		{"no by", "detect:\n  groups:\n    - name: a\n      channels: [x, y]\n", []string{"g.yaml:3", "detect.groups[0].by"}},
		{"bad by", "detect:\n  groups:\n    - name: a\n      by: [\"a-b\"]\n      channels: [x, y]\n", []string{"g.yaml:4", "detect.groups[0].by[0]", "label name"}},
		{"one channel", head + "      channels: [x]\n", []string{"g.yaml:5", "detect.groups[0].channels", "2 to"}},
		{"repeated channel", head + "      channels: [x, y, x]\n", []string{"g.yaml:5", "detect.groups[0].channels[2]", "channels[0]"}},
		{"bad wait", head + "      channels: [x, y]\n      wait: 5ms\n", []string{"g.yaml:6", "detect.groups[0].wait"}},
		{"bad setting", head + "      channels: [x, y]\n      method: pca\n      settings:\n        smooth: 1\n        warmup: 3\n", []string{"g.yaml:9", "detect.groups[0].settings.warmup"}},
		{"bad method", head + "      channels: [x, y]\n      method: kmeans\n", []string{"g.yaml:6", "detect.groups[0].method", `group "a"`, `"kmeans"`, "vote", "pca"}},
		{"settings of a vote", head + "      channels: [x, y]\n      settings: {warmup: 50}\n", []string{"g.yaml:6", "detect.groups[0].settings", `group "a"`, "method: pca"}},
		{"bad regex", head + "      channels: [x, y]\n      match: {service: \"(\"}\n", []string{"detect.groups[0].match.service", "regular expression"}},
		{"not a list", "detect:\n  groups: {a: 1}\n", []string{"g.yaml"}},
		// A rule's vote would be ignored: a group's is the defaults'.
		{"vote in a rule", "detect:\n  rules:\n    - name: r\n      match: {metric: x}\n      detectors:\n        vote: {severity: 3}\n", []string{"g.yaml:6", "detect.rules[0].detectors.vote", "detect.defaults"}},
		// A rule ignoring a channel's metric whatever its service: the
		// group would never get it (the built-in rule, then a file's).
		{"channel ignored by the built-in rule", head + "      channels: [x, scrape_duration_seconds]\n", []string{"g.yaml:5", "detect.groups[0].channels[1]", `"scrape_duration_seconds"`, `"prometheus-scrape"`, "ignore: true"}},
		{"channel ignored by a rule", "detect:\n  rules:\n    - name: quiet\n      match: {metric: \"y|z\"}\n      ignore: true\n  groups:\n    - name: a\n      by: [host]\n      channels: [x, y]\n", []string{"g.yaml:9", "detect.groups[0].channels[1]", `"quiet"`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("g.yaml", []byte(c.yaml))
			if err == nil {
				t.Fatal("accepted")
			}
			if !errors.Is(err, ErrInvalid) || !errs.IsPermanent(err) {
				t.Errorf("%v: not ErrInvalid and permanent", err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %q", err, w)
				}
			}
		})
	}
}

// A rule that ignores a channel's metric on some services only, or after
// a rule that scores it everywhere or on some services (first match
// wins: a group of those services gets it), leaves the group its
// samples: the file is taken.
func TestGroupChannelNotIgnoredEverywhereIsTaken(t *testing.T) {
	const groups = "  groups:\n    - name: a\n      by: [host]\n      match: {service: plant}\n      channels: [x, y]\n"
	for name, rules := range map[string]string{
		"some services":       "    - name: quiet\n      match: {metric: y, service: batch}\n      ignore: true\n",
		"after a scoring one": "    - name: loud\n      match: {metric: y}\n      detectors: {budget: 0.5}\n    - name: quiet\n      match: {metric: y}\n      ignore: true\n",
		"after one scoring it on the group's service": "    - name: plant\n      match: {metric: y, service: plant}\n      detectors: {budget: 0.5}\n    - name: quiet\n      match: {metric: y}\n      ignore: true\n",
	} {
		if _, err := Parse("g.yaml", []byte("detect:\n  rules:\n"+rules+groups)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}
