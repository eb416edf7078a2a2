package pipeline

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aiops-dev/aiops/pkg/detect"
	"github.com/aiops-dev/aiops/pkg/errs"
)

// The shipped default pipeline loads and writes out exactly detect's
// defaults, so "no tuning" means the same thing in the file and in code.
func TestDefaultFile(t *testing.T) {
	p, err := Load("../../../pipelines/default.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := p.Defaults.WithDefaults(), detect.DefaultConfig(); got != want {
		t.Errorf("defaults in the file %+v differ from detect.DefaultConfig %+v", got, want)
	}
	r := p.Select("node_filesystem_avail_bytes", "db", map[string]string{"mountpoint": "/"})
	if r.Name != "disk-free" {
		t.Fatalf("disk free routed to %q", r.Name)
	}
	cfg := r.Profile(false).Config()
	if !cfg.Forecast.Enabled || !cfg.Forecast.Falling || cfg.Forecast.Threshold != 0 {
		t.Errorf("disk-free forecast %+v", cfg.Forecast)
	}
	if cfg.Window != detect.DefaultWindow || cfg.Seasonal.Period != 24*time.Hour {
		t.Errorf("rule did not inherit the defaults: %+v", cfg)
	}
	if !r.Profile(true).Config().Counter || r.Profile(false).Config().Counter {
		t.Error("counter profile must set Counter and the gauge one must not")
	}
	if r := p.Select("http_requests_total", "api", nil); r.Name != DefaultRoute {
		t.Errorf("unmatched series routed to %q", r.Name)
	}
	// Prometheus's scrape health is about the monitoring, not the service:
	// not scored. up is: its fall to 0 is a target down.
	for _, m := range []string{"scrape_duration_seconds", "scrape_samples_scraped", "scrape_samples_post_metric_relabeling",
		"scrape_series_added", "scrape_timeout_seconds", "scrape_sample_limit", "scrape_body_size_bytes",
		// Exporters' timings of their own collectors.
		"node_scrape_collector_duration_seconds", "pg_scrape_collector_duration_seconds", "windows_exporter_collector_duration_seconds",
		"mysql_exporter_collector_duration_seconds", "redis_exporter_last_scrape_duration_seconds", "pg_exporter_last_scrape_duration_seconds"} {
		if r := p.Select(m, "shop", map[string]string{"job": "shop", "instance": "shop-1:8080"}); r.Name != "prometheus-scrape" || !r.Ignore {
			t.Errorf("%s routed to %+v, want prometheus-scrape, ignored", m, r)
		}
	}
	for _, m := range []string{"up", "scrape_duration_seconds_total", "my_scrape_duration_seconds", "scrape_errors",
		"node_scrape_collector_success", "probe_duration_seconds", "node_exporter_build_info", "http_scrape_collector_duration_seconds_total"} {
		if r := p.Select(m, "shop", nil); r.Ignore {
			t.Errorf("%s ignored by %q, want it scored", m, r.Name)
		}
	}
	// The file writes out the built-in rules, which a plain `aiops run`
	// (no pipeline file) goes by.
	for i, builtIn := range BuiltIn() {
		if got := p.Rules[i]; got.Name != builtIn.Name || got.Match.Metric != builtIn.Match.Metric || got.Ignore != builtIn.Ignore || got.Detectors.WithDefaults() != builtIn.Detectors.WithDefaults() {
			t.Errorf("the file's rule %d %q (%q, ignore %v, detectors %+v) is not the built-in %q (%q, ignore %v, detectors %+v)", i,
				got.Name, got.Match.Metric, got.Ignore, got.Detectors.WithDefaults(), builtIn.Name, builtIn.Match.Metric, builtIn.Ignore, builtIn.Detectors.WithDefaults())
		}
	}
	// So does a file without a rules key (a file for other stages, or
	// defaults alone); rules: [] is none.
	for _, c := range []struct {
		file    string
		ignored bool
	}{
		{"", true},
		{"correlator: {}\n", true},
		{"detect:\n  defaults: {threshold: 0.6}\n", true},
		{"detect:\n  rules: []\n", false},
	} {
		p, err := Parse("p.yaml", []byte(c.file))
		if err != nil {
			t.Fatal(err)
		}
		if r := p.Select("scrape_duration_seconds", "shop", nil); r.Ignore != c.ignored {
			t.Errorf("%q: scrape_duration_seconds routed to %q, ignored %v, want %v", c.file, r.Name, r.Ignore, c.ignored)
		}
	}
	if r := Default().Select("scrape_duration_seconds", "shop", nil); !r.Ignore {
		t.Errorf("the built-in pipeline routes scrape_duration_seconds to %q, scored", r.Name)
	}
	// Anchored: a metric that only contains the pattern does not match.
	if r := p.Select("x_node_filesystem_avail_bytes", "", nil); r.Name != DefaultRoute {
		t.Errorf("unanchored match: routed to %q", r.Name)
	}
}

func TestMatchAndOverlay(t *testing.T) {
	p, err := Parse("t.yaml", []byte(`
correlate: {anything: goes}   # another stage's section
detect:
  defaults:
    window: 64
  rules:
    - name: prod-latency
      match:
        metric: http_.*_seconds
        service: checkout|cart
        labels: {env: prod, canary: ""}
      detectors:
        z_threshold: 8
        seasonal: {disabled: true}
`))
	if err != nil {
		t.Fatal(err)
	}
	r := p.Select("http_request_seconds", "cart", map[string]string{"env": "prod"})
	if r.Name != "prod-latency" {
		t.Fatalf("routed to %q", r.Name)
	}
	cfg := r.Profile(false).Config()
	if cfg.Window != 64 || cfg.ZThreshold != 8 || !cfg.Seasonal.Disabled || cfg.Seasonal.Period != 24*time.Hour {
		t.Errorf("overlay: %+v", cfg)
	}
	for _, c := range []struct {
		metric, service string
		labels          map[string]string
	}{
		{"http_request_seconds", "cart", map[string]string{"env": "dev"}},
		{"http_request_seconds", "cart", map[string]string{"env": "prod", "canary": "yes"}},
		{"http_request_seconds", "search", map[string]string{"env": "prod"}},
		{"grpc_request_seconds", "cart", map[string]string{"env": "prod"}},
	} {
		if r := p.Select(c.metric, c.service, c.labels); r.Name != DefaultRoute {
			t.Errorf("%+v routed to %q", c, r.Name)
		} else if r.Profile(false).Config().Window != 64 {
			t.Errorf("default route lost the file's defaults")
		}
	}
	if _, ok := p.Lookup("prod-latency"); !ok {
		t.Error("Lookup of a rule failed")
	}
	if _, ok := p.Lookup("nope"); ok {
		t.Error("Lookup of a missing rule succeeded")
	}
}

func TestErrorsNameLineAndField(t *testing.T) {
	for _, c := range []struct {
		name, yaml string
		want       []string
	}{
		{"unknown field", "detect:\n  defaults:\n    windw: 3\n", []string{"t.yaml", "line 3", "windw"}},
		{"bad default", "detect:\n  defaults:\n    alpha: 0.05\n    window: 3\n", []string{"t.yaml:4", "detect.defaults.window", "[8,255]"}},
		{"bad rule value", "detect:\n  rules:\n    - name: a\n      detectors:\n        seasonal:\n          period: 10ms\n", []string{"t.yaml:6", "detect.rules[0].detectors.seasonal.period"}},
		{"bad regex", "detect:\n  rules:\n    - name: a\n      match: {metric: \"(\"}\n", []string{"t.yaml:3", "detect.rules[0].match.metric", "regular expression"}},
		{"bad label regex", "detect:\n  rules:\n    - name: a\n      match: {labels: {env: \"[\"}}\n", []string{"detect.rules[0].match.labels.env"}},
		{"no name", "detect:\n  rules:\n    - match: {metric: x}\n", []string{"t.yaml:3", "detect.rules[0].name", "empty"}},
		{"duplicate", "detect:\n  rules:\n    - name: a\n    - name: a\n", []string{"t.yaml:4", "detect.rules[1].name", "rules[0]"}},
		{"reserved", "detect:\n  rules:\n    - name: default\n", []string{"detect.rules[0].name", "reserved"}},
		{"rules not a list", "detect:\n  rules: {a: 1}\n", []string{"t.yaml"}},
		{"bad duration", "detect:\n  defaults:\n    seasonal: {period: soon}\n", []string{"t.yaml", "soon"}},
		{"not yaml", "detect: [\n", []string{"t.yaml"}},
		{"ignore with detectors", "detect:\n  rules:\n    - name: scrape\n      match: {metric: scrape_.*}\n      ignore: true\n      detectors:\n        z_threshold: 8\n",
			[]string{"t.yaml:6", "detect.rules[0].detectors", `"scrape"`, "ignore: true"}},
		{"ignore without match", "detect:\n  rules:\n    - name: everything\n      ignore: true\n", []string{"t.yaml:3", "detect.rules[0].match", "every series"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("t.yaml", []byte(c.yaml))
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

// A rule with ignore: true routes the series it matches (first match
// wins) to a route that ignores them, without profiles; Lookup finds it by
// name as a snapshot's restore does.
func TestIgnoreRuleRoutesItsSeriesToNoDetectors(t *testing.T) {
	p, err := Parse("t.yaml", []byte(`
detect:
  rules:
    - name: canary-latency
      match: {metric: scrape_duration_seconds, labels: {canary: "yes"}}
      detectors: {z_threshold: 9}
    - name: scrape
      match: {metric: scrape_.*}
      ignore: true
`))
	if err != nil {
		t.Fatal(err)
	}
	r := p.Select("scrape_duration_seconds", "shop", nil)
	if r.Name != "scrape" || !r.Ignore || r.Profile(false) != nil || r.Profile(true) != nil {
		t.Errorf("scrape_duration_seconds routed to %+v, want the ignoring rule scrape without profiles", r)
	}
	// first match wins: an earlier rule still scores what it matches
	if r := p.Select("scrape_duration_seconds", "shop", map[string]string{"canary": "yes"}); r.Name != "canary-latency" || r.Ignore {
		t.Errorf("canary series routed to %+v, want canary-latency, scored", r)
	}
	if r := p.Select("up", "shop", nil); r.Name != DefaultRoute || r.Ignore {
		t.Errorf("up routed to %+v, want the defaults, scored", r)
	}
	if r, ok := p.Lookup("scrape"); !ok || !r.Ignore {
		t.Errorf("Lookup(scrape) = %+v, %v, want the ignoring route", r, ok)
	}
}

func TestEmptyAndDefault(t *testing.T) {
	for _, src := range []string{"", "other: {}\n", "detect: {}\n"} {
		p, err := Parse("e.yaml", []byte(src))
		if err != nil {
			t.Fatalf("%q: %v", src, err)
		}
		if got := p.Select("m", "s", nil).Profile(false).Config(); got != detect.DefaultConfig() {
			t.Errorf("%q: defaults %+v", src, got)
		}
	}
	if got := Default().Select("m", "s", nil).Profile(false).Config(); got != detect.DefaultConfig() {
		t.Errorf("Default(): %+v", got)
	}
	if _, err := Parse("big.yaml", make([]byte, MaxFileBytes+1)); !errors.Is(err, ErrInvalid) {
		t.Errorf("oversized file: %v", err)
	}
}

// Parse never panics, and what it refuses it refuses with ErrInvalid; what
// it accepts routes every series to a usable profile.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"", "detect: {}\n", "detect:\n  defaults: {window: 64}\n  rules:\n    - name: a\n      match: {metric: \"x.*\", labels: {env: prod}}\n      detectors: {seasonal: {period: 1h}}\n",
		"detect:\n  rules:\n    - name: a\n    - name: a\n", "detect: [\n", "detect:\n  defaults:\n    windw: 3\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse("f.yaml", data)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		r := p.Select("m", "s", map[string]string{"env": "prod"})
		if !r.Ignore && (r.Profile(false) == nil || r.Profile(true) == nil) {
			t.Fatalf("route %q without profiles", r.Name)
		}
	})
}

// node_exporter exposes the counters of /proc/vmstat and /proc/net/netstat
// untyped, and remote-write carries them as gauges: the built-in rule
// untyped-counters scores them as counters whatever their samples say,
// but for netstat's gauges. A rule of a file may say counter: true too,
// over the file's defaults; the defaults may not.
func TestRuleScoresUntypedCountersAsCounters(t *testing.T) {
	for _, p := range []*Pipeline{Default(), mustParse(t, "detect:\n  defaults: {threshold: 0.6}\n")} {
		for _, m := range []string{"node_netstat_Udp_InDatagrams", "node_netstat_Tcp_PassiveOpens", "node_netstat_TcpExt_ListenDrops", "node_netstat_Ip6_InOctets", "node_vmstat_pgfault", "node_vmstat_oom_kill"} {
			r := p.Select(m, "node", nil)
			if r.Name != "untyped-counters" || !r.Profile(false).Config().Counter || !r.Profile(true).Config().Counter {
				t.Errorf("%s: %s routed to %q, counter %v, want untyped-counters scoring it as a counter", p.File, m, r.Name, r.Profile(false).Config().Counter)
			}
			if got := r.Profile(false).Config().Threshold; got != p.Defaults.WithDefaults().Threshold {
				t.Errorf("%s: %s scored at threshold %v, want the defaults' %v", p.File, m, got, p.Defaults.WithDefaults().Threshold)
			}
		}
		for _, m := range []string{"node_netstat_Tcp_CurrEstab", "node_netstat_Ip_Forwarding", "node_memory_MemFree_bytes", "node_load1"} {
			if r := p.Select(m, "node", nil); r.Profile(false).Config().Counter {
				t.Errorf("%s: %s routed to %q as a counter, want a gauge", p.File, m, r.Name)
			}
		}
	}
	p := mustParse(t, "detect:\n  rules:\n    - name: mine\n      match: {metric: app_untyped_requests}\n      detectors: {counter: true, window: 16}\n")
	if r := p.Select("app_untyped_requests", "app", nil); r.Name != "mine" || !r.Profile(false).Config().Counter || r.Profile(false).Config().Window != 16 {
		t.Errorf("a file's rule with counter: true: routed to %q, counter %v, window %d", r.Name, r.Profile(false).Config().Counter, r.Profile(false).Config().Window)
	}
}

func mustParse(t *testing.T, yaml string) *Pipeline {
	t.Helper()
	p, err := Parse("t.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestBuiltInRuleHoldsATargetDownWhileItIsDown: Prometheus's up is 1 while
// it scrapes a target and 0 while it cannot. Scored by the statistical
// detectors, its fall opened an episode that closed one or two samples
// later (the fall had taught the series its resolution, 1, so 0 was 2.9 of
// its scales off; a second outage opened nothing for minutes), and a
// target down for half an hour never lasted the correlator's 5 minutes:
// no incident. The built-in rule target-up holds the episode while up
// stays under 0.5, and a single failed scrape opens none that lasts.
func TestBuiltInRuleHoldsATargetDownWhileItIsDown(t *testing.T) {
	const step = 15 * time.Second
	for _, p := range []*Pipeline{Default(), mustLoad(t, "../../../pipelines/default.yaml")} {
		r := p.Select("up", "host", map[string]string{"job": "node", "instance": "host-1:9100"})
		d := r.Profile(false).NewDetector()
		t0 := time.Date(2026, 12, 7, 17, 0, 0, 0, time.UTC)
		var values []float64
		add := func(v float64, n int) {
			for range n {
				values = append(values, v)
			}
		}
		add(1, 480)                               // two hours up
		add(0, 32)                                // eight minutes down
		add(1, 240)                               // an hour up
		add(0, 32)                                // down again
		add(1, 240)                               //
		add(0, 1)                                 // one failed scrape
		add(1, 120)                               //
		downs := [][2]int{{480, 512}, {752, 784}} // each outage's first and last+1 sample
		var longest [3]time.Duration              // per outage, and the failed scrape
		var start time.Time
		for i, v := range values {
			res := d.Observe(t0.Add(time.Duration(i)*step), v)
			if res.Episode == detect.EpisodeOpen {
				start = res.EpisodeInfo.Start
			}
			if !res.Alarm {
				continue
			}
			k := 2
			for j, o := range downs {
				if i >= o[0] && i < o[1]+8 {
					k = j
				}
			}
			longest[k] = max(longest[k], t0.Add(time.Duration(i)*step).Sub(start))
			if i > 512+8 && i < 752 || i > 784+8 && i < 1024 {
				t.Errorf("%s: up back at 1 for %v still in an episode at sample %d", p.File, time.Duration(i-512)*step, i)
			}
		}
		for j := range downs {
			if longest[j] < 5*time.Minute {
				t.Errorf("%s: outage %d of 8 minutes held an episode %v, want at least 5 minutes (the correlator's anomaly_wait)", p.File, j+1, longest[j])
			}
		}
		if longest[2] >= time.Minute {
			t.Errorf("%s: one failed scrape held an episode %v, want under a minute", p.File, longest[2])
		}
	}
}

func mustLoad(t *testing.T, path string) *Pipeline {
	t.Helper()
	p, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
