package platform

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aiops-dev/aiops/pkg/bus"
	"github.com/aiops-dev/aiops/pkg/service"
	"github.com/aiops-dev/aiops/pkg/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

type testConfig struct {
	Config `yaml:",inline"`
	Extra  int `yaml:"extra"`
}

func (c testConfig) Validate() error { return c.Config.Validate() }

func TestLoadConfig(t *testing.T) {
	t.Setenv("AIOPS_TEST_SOMETHING", "fixtures may share the prefix")
	t.Setenv("AIOPS_EXP", "1") // the correlator's exploration tests
	t.Setenv("AIOPS_EXP_RULES", "{spread_window: 8m}")
	t.Setenv("AIOPS_EXTRA", "7")
	cfg := testConfig{Config: DefaultConfig()}
	if err := LoadConfig("x", []string{"-set", "streams.replicas=3"}, &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Extra != 7 || cfg.Streams.Replicas != 3 || cfg.Bus.URLs[0] != "nats://127.0.0.1:4222" {
		t.Fatalf("loaded %+v", cfg)
	}

	for name, args := range map[string][]string{
		"unknown key":     {"-set", "bus.urlz=x"},
		"stray argument":  {"extra-arg"},
		"invalid storage": {"-set", "streams.storage=tape"},
		"unknown flag":    {"-frobnicate"},
	} {
		cfg := testConfig{Config: DefaultConfig()}
		err := LoadConfig("x", args, &cfg)
		if err == nil || service.ExitCode(err) != service.ExitUsage {
			t.Errorf("%s: err %v (exit %d), want a usage error", name, err, service.ExitCode(err))
		}
	}
	t.Setenv("AIOPS_BUS__NOPE", "1")
	if err := LoadConfig("x", nil, &testConfig{Config: DefaultConfig()}); err == nil || !strings.Contains(err.Error(), "AIOPS_BUS__NOPE") {
		t.Fatalf("unknown variable: %v", err)
	}
}

// The scripts' own variables share the prefix: chdb.sh reads
// AIOPS_CHDB_VERSION, and `AIOPS_CHDB_VERSION=... make test` passes it to
// every test and service, which must not refuse it as an unknown key.
func TestLoadConfigIgnoresScriptVariables(t *testing.T) {
	for _, v := range []string{"AIOPS_CHDB_VERSION", "AIOPS_CLICKHOUSE_START_TIMEOUT", "AIOPS_TEST_CHDB_LIB"} {
		t.Setenv(v, "1")
	}
	if err := LoadConfig("x", nil, &testConfig{Config: DefaultConfig()}); err != nil {
		t.Fatal(err)
	}
}

// The ignored names end where their families do: AIOPS_EXP ignores the
// exploration switches AIOPS_EXP and AIOPS_EXP_*, not every variable
// that starts so (AIOPS_EXPORT__URL was ignored silently, whatever it
// meant to set).
func TestLoadConfigRefusesVariablesPastAnIgnoredName(t *testing.T) {
	for _, v := range []string{"AIOPS_EXPORT__URL", "AIOPS_EXPIRY", "AIOPS_SHARED_DATASET"} {
		t.Run(v, func(t *testing.T) {
			t.Setenv("AIOPS_EXP", "1")
			t.Setenv("AIOPS_EXP_RULES", "{spread_window: 8m}")
			t.Setenv("AIOPS_SHARED_DATA", "/data")
			t.Setenv(v, "x")
			err := LoadConfig("x", nil, &testConfig{Config: DefaultConfig()})
			if err == nil || !strings.Contains(err.Error(), v) || strings.Contains(err.Error(), "AIOPS_EXP_RULES") {
				t.Fatalf("err = %v, want %s refused as an unknown key, and nothing else", err, v)
			}
		})
	}
}

func TestValidateNamesTheField(t *testing.T) {
	for field, mutate := range map[string]func(*Config){
		"streams.storage":           func(c *Config) { c.Streams.Storage = "tape" },
		"streams.replicas":          func(c *Config) { c.Streams.Replicas = 9 },
		"streams.metric_partitions": func(c *Config) { c.Streams.MetricPartitions = bus.MaxMetricPartitions + 1 },
		"bus":                       func(c *Config) { c.Bus.URLs = []string{"http://x"} },
		"admin":                     func(c *Config) { c.Admin.Listen = "0.0.0.0:9000" },
		"log":                       func(c *Config) { c.Log.Level = "loud" },
	} {
		c := DefaultConfig()
		mutate(&c)
		if err := c.Validate(); err == nil || !strings.HasPrefix(err.Error(), field) {
			t.Errorf("%s: %v", field, err)
		}
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
}

// A stream bound under the largest message has the server ack that
// message and discard it at once (TestMinStreamMaxBytesHoldsTheLargestMessages
// in pkg/bus): streams.max_bytes is refused below bus.MinStreamMaxBytes,
// naming the key, the value and the least one.
func TestValidateRefusesStreamsTooSmallForAMessage(t *testing.T) {
	for _, n := range []int64{1 << 10, bus.MinStreamMaxBytes - 1} {
		c := DefaultConfig()
		c.Streams.MaxBytes = n
		err := c.Validate()
		if err == nil || !strings.HasPrefix(err.Error(), "streams.max_bytes: ") ||
			!strings.Contains(err.Error(), fmt.Sprint(n)) || !strings.Contains(err.Error(), fmt.Sprint(bus.MinStreamMaxBytes)) {
			t.Errorf("streams.max_bytes %d: %v, want it refused naming the key, the value and %d", n, err, bus.MinStreamMaxBytes)
		}
	}
	for _, n := range []int64{0, bus.MinStreamMaxBytes} {
		c := DefaultConfig()
		c.Streams.MaxBytes = n
		if err := c.Validate(); err != nil {
			t.Errorf("streams.max_bytes %d: %v", n, err)
		}
	}
}

func TestOpenProvisionsStreams(t *testing.T) {
	if testing.Short() {
		t.Skip("needs JetStream")
	}
	srv := testenv.StartNATS(t)
	cfg := DefaultConfig()
	cfg.Bus.URLs = []string{srv.URL()}
	cfg.Streams.Storage = "memory"
	p, err := Open(context.Background(), "test", cfg, WithLogOutput(io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for _, name := range []string{bus.StreamEvents, bus.StreamIncidents, bus.StreamDeadLetter} {
		if _, err := p.JS.Stream(context.Background(), name); err != nil {
			t.Errorf("stream %s: %v", name, err)
		}
	}
	checks := p.Checks()
	if len(checks) != 1 || checks[0].Name != "nats" || checks[0].Fn(context.Background()) != nil {
		t.Fatalf("checks without a store: %+v", checks)
	}
	srv.Shutdown()
	if err := checks[0].Fn(context.Background()); err == nil {
		t.Fatal("nats check passes with the server down")
	}
	// A store is asked for but unreachable: Open fails and says so.
	cfg.Store.DSN = "clickhouse://127.0.0.1:1/default?dial_timeout=200ms"
	srv.Restart()
	_, err = Open(context.Background(), "test", cfg, WithStore(), WithLogOutput(io.Discard))
	if err == nil || !strings.HasPrefix(err.Error(), "store:") {
		t.Fatalf("Open with unreachable store: %v", err)
	}
}

// ClickHouse going away (a restart, a failover) does not make a process
// that stores unready at once: the gateway of aiops run holds what it
// takes in NATS meanwhile, and out of its load balancer's rotation it
// would refuse the producers it could serve. Its check says what fails.
func TestClickHouseAwayIsToleratedWithinTheGrace(t *testing.T) {
	if testing.Short() {
		t.Skip("needs JetStream and ClickHouse")
	}
	srv := testenv.StartNATS(t)
	u, err := url.Parse(testenv.ClickHouse(t))
	if err != nil {
		t.Fatal(err)
	}
	proxy := testenv.NewProxy(t, u.Host)
	u.Host = proxy.Addr()
	cfg := DefaultConfig()
	cfg.Bus.URLs = []string{srv.URL()}
	cfg.Streams.Storage = "memory"
	cfg.Store.DSN = u.String()
	p, err := Open(context.Background(), "test", cfg, WithStore(), WithLogOutput(io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	var check service.Check
	for _, c := range p.Checks() {
		if c.Name == "clickhouse" {
			check = c
		}
	}
	if check.Fn == nil || check.Fn(context.Background()) != nil {
		t.Fatalf("no passing clickhouse check among %+v", p.Checks())
	}
	proxy.Cut()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = check.Fn(ctx)
	if !errors.As(err, new(service.Tolerated)) || !strings.Contains(err.Error(), "within its grace of 1m0s") {
		t.Errorf("clickhouse away: %v, want a failure tolerated for %s", err, StoreGrace)
	}
	proxy.Restore()
	if err := check.Fn(context.Background()); err != nil {
		t.Errorf("clickhouse back: %v", err)
	}
}

// Every service provisions the streams at start with its own streams
// settings. One configured apart from the others (metric partitions left
// out, another max_bytes) changes the shared streams back at each of its
// starts: un-partitioning the samples the detectors' filters wait for,
// trimming a backlog. It says so, naming each change; a service that
// agrees with the streams says nothing.
func TestOpenWarnsOfStreamSettingsItChanges(t *testing.T) {
	if testing.Short() {
		t.Skip("needs JetStream")
	}
	srv := testenv.StartNATS(t)
	open := func(partitions int, maxBytes int64) string {
		cfg := DefaultConfig()
		cfg.Bus.URLs = []string{srv.URL()}
		cfg.Streams.Storage = "memory"
		cfg.Streams.MetricPartitions = partitions
		cfg.Streams.MaxBytes = maxBytes
		var out bytes.Buffer
		p, err := Open(context.Background(), "test", cfg, WithLogOutput(&out))
		if err != nil {
			t.Fatal(err)
		}
		p.Close()
		return out.String()
	}
	open(2, 0)
	if out := open(2, 0); strings.Contains(out, "streams settings differ") {
		t.Fatalf("the same settings again reported as a change:\n%s", out)
	}
	out := open(0, 8<<20)
	for _, want := range []string{"EVENTS subject_transform", "EVENTS max_bytes", "DEADLETTER max_bytes"} {
		if !strings.Contains(out, want) {
			t.Errorf("no warning naming %q among:\n%s", want, out)
		}
	}
}
