package platform_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/bus"
	"github.com/aiops-dev/aiops/pkg/config"
	"github.com/aiops-dev/aiops/pkg/detect"
	"github.com/aiops-dev/aiops/pkg/logmine"
	"github.com/aiops-dev/aiops/pkg/platform"
	"github.com/aiops-dev/aiops/pkg/service"
	"github.com/aiops-dev/aiops/pkg/stage"
	"github.com/aiops-dev/aiops/pkg/store"
)

type echoConfig struct {
	Greeting string `yaml:"greeting"`
	Times    int    `yaml:"times"`
}

func (c echoConfig) Validate() error {
	if c.Times < 0 {
		return fmt.Errorf("echo.times: must not be negative, got %d", c.Times)
	}
	return nil
}

type extraConfig struct {
	Port int `yaml:"port"`
}

func (c extraConfig) Validate() error {
	if c.Port > 65535 {
		return fmt.Errorf("extra.port: %d is not a port", c.Port)
	}
	return nil
}

var echo = platform.NewComponent("echo", func() echoConfig { return echoConfig{Greeting: "hi", Times: 1} }, false,
	func(context.Context, *platform.Platform, echoConfig, zerolog.Logger) (service.Runner, error) {
		return service.RunnerFunc(func(ctx context.Context) error { <-ctx.Done(); return nil }), nil
	})

func load(t *testing.T, comps []platform.Component, extra []platform.Section, sets ...string) (*platform.AssembledConfig, error) {
	t.Helper()
	a := platform.Assemble(platform.DefaultConfig(), comps, extra...)
	return a, a.LoadWith(config.Options{EnvPrefix: "AIOPS", Environ: []string{}, Sets: sets})
}

// A configuration assembled from components: defaults, one section per
// component under its name, extra sections copied back, strict keys, and
// every error a usage error naming the full key.
func TestAssembledConfig(t *testing.T) {
	var extra extraConfig
	a, err := load(t, []platform.Component{echo}, []platform.Section{{Key: "extra", Value: &extra}},
		"echo.times=3", "extra.port=8080", "bus.urls=[nats://10.0.0.1:4222]")
	if err != nil {
		t.Fatal(err)
	}
	got, ok := platform.SectionOf[echoConfig](a, "echo")
	if !ok || got.Greeting != "hi" || got.Times != 3 {
		t.Fatalf("echo section %+v (%v), want the default greeting and times=3", got, ok)
	}
	if extra.Port != 8080 || a.Platform().Bus.URLs[0] != "nats://10.0.0.1:4222" {
		t.Fatalf("extra %+v, bus %v", extra, a.Platform().Bus.URLs)
	}
	if a.NeedsStore() {
		t.Fatal("echo needs no store")
	}
	for _, c := range []struct{ set, want string }{
		{"echo.timez=3", "echo.timez"},
		{"echo.times=-1", "echo.times: must not be negative"},
		{"extra.port=70000", "extra.port: 70000 is not a port"},
		{"nope.x=1", "nope"},
	} {
		var extra extraConfig
		_, err := load(t, []platform.Component{echo}, []platform.Section{{Key: "extra", Value: &extra}}, c.set)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("-set %s: %v, want an error naming %q", c.set, err, c.want)
			continue
		}
		if !errors.Is(err, config.ErrInvalidConfig) || service.ExitCode(err) != 2 {
			t.Errorf("-set %s: exit code %d, want the usage code 2 (%v)", c.set, service.ExitCode(err), err)
		}
	}
}

func TestWithDefaults(t *testing.T) {
	c := platform.WithDefaults(echo, func() echoConfig { return echoConfig{Greeting: "hello"} })
	a, err := load(t, []platform.Component{c}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := platform.SectionOf[echoConfig](a, "echo"); got.Greeting != "hello" {
		t.Fatalf("section %+v, want the replaced defaults", got)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("defaults of another type were taken")
		}
	}()
	platform.WithDefaults(echo, func() extraConfig { return extraConfig{} })
}

// A binary built from a component refuses a bad section before it
// connects to anything, with the usage exit code.
func TestServiceMainRefusesBadConfig(t *testing.T) {
	err := platform.ServiceMain(echo)(context.Background(), []string{"-set", "echo.times=-2", "-set", "bus.urls=[nats://127.0.0.1:1]"})
	if service.ExitCode(err) != 2 || !strings.Contains(err.Error(), "echo.times") {
		t.Fatalf("%v (exit code %d), want exit code 2 naming echo.times", err, service.ExitCode(err))
	}
}

// Every package's configuration error is the one configuration error, so
// any of them is a usage error (exit code 2) wherever it surfaces.
func TestOneConfigError(t *testing.T) {
	bad := map[string]error{
		"bus":     bus.ConsumerConfig{Stream: "no spaces allowed"}.Validate(),
		"store":   store.Config{DSN: "mysql://x"}.Validate(),
		"stage":   stage.Config{Name: "x", Workers: -1}.Validate(),
		"detect":  detect.Config{Window: 3}.Validate(),
		"logmine": logmine.Config{MaxTemplates: -1}.Validate(),
	}
	for pkg, err := range bad {
		if err == nil {
			t.Errorf("%s: no error for a bad config", pkg)
			continue
		}
		if !errors.Is(err, config.ErrInvalidConfig) || service.ExitCode(err) != 2 || !strings.HasPrefix(err.Error(), pkg+": invalid configuration") {
			t.Errorf("%s: %v (exit code %d), want the one configuration error, prefixed %q", pkg, err, service.ExitCode(err), pkg+": ")
		}
	}
}

type poolConfig struct {
	Senders int `yaml:"senders"`
}

func (poolConfig) Validate() error   { return nil }
func (c poolConfig) StoreConns() int { return 10*max(c.Senders, 1) + 4 }

var pooled = platform.NewComponent("pooled", func() poolConfig { return poolConfig{} }, true,
	func(context.Context, *platform.Platform, poolConfig, zerolog.Logger) (service.Runner, error) {
		return service.RunnerFunc(func(ctx context.Context) error { <-ctx.Done(); return nil }), nil
	})

// A component that says how many ClickHouse connections it uses at once
// sizes the store's pool when the configuration does not: the writer's
// senders alone, without store.max_open_conns.
func TestComponentsSizeTheStorePool(t *testing.T) {
	a, err := load(t, []platform.Component{echo, pooled}, nil, "pooled.senders=2")
	if err != nil {
		t.Fatal(err)
	}
	if got := a.Platform().Store.NeededConns; got != 24 {
		t.Fatalf("the store needs %d connections, want the component's 24", got)
	}
	if a, err = load(t, []platform.Component{echo}, nil); err != nil || a.Platform().Store.NeededConns != 0 {
		t.Fatalf("without such a component: need %d (%v), want 0", a.Platform().Store.NeededConns, err)
	}
}

// A store.dsn that cannot work is a usage error when the configuration is
// loaded, before anything is started (`aiops run` started its embedded
// NATS and connected to it first), and the error says "store:" once.
func TestStoreCheckedAtLoadWhenNeeded(t *testing.T) {
	for _, set := range []string{"store.dsn=http://127.0.0.1:8123", "store.dsn=clickhouse://", "store.dsn=clickhouse://127.0.0.1:9000/x?dial_timeout=soon"} {
		_, err := load(t, []platform.Component{echo, pooled}, nil, set)
		if err == nil || service.ExitCode(err) != 2 || !strings.Contains(err.Error(), "store: invalid configuration: dsn: ") {
			t.Errorf("-set %s: %v (exit code %d), want a usage error naming store and dsn", set, err, service.ExitCode(err))
			continue
		}
		if strings.Contains(err.Error(), "store: store:") || strings.Count(err.Error(), "invalid configuration") > 1 {
			t.Errorf("-set %s: %q says store or invalid configuration twice", set, err)
		}
	}
	// A service without a store does not care.
	if _, err := load(t, []platform.Component{echo}, nil, "store.dsn=http://127.0.0.1:8123"); err != nil {
		t.Errorf("a store-less component refused an unused store.dsn: %v", err)
	}
	// Nor does the bus section's message name its section twice.
	_, err := load(t, []platform.Component{echo}, nil, "bus.urls=[http://x]")
	if err == nil || strings.Contains(err.Error(), "bus: bus:") {
		t.Errorf("bad bus.urls: %v, want an error naming bus once", err)
	}
}

// A file of the project's other kinds given to -config says what it is
// and where it goes, for every service: `aiops run -config
// pipelines/default.yaml` said only `unknown key "detect"`.
func TestLoadNamesAFileOfAnotherKind(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct{ file, content, want string }{
		{"../../pipelines/default.yaml", "", "a detector pipeline file (its top key is detect), not a configuration: -set detector.pipeline=../../pipelines/default.yaml"},
		{"../../pipelines/catalog.yaml", "", "a service catalog (its top key is services), not a configuration: -set correlator.catalog=../../pipelines/catalog.yaml"},
		{dir + "/alertmanager.yml", "route:\n  receiver: ops\nreceivers:\n  - name: ops\n", "an Alertmanager configuration (its top key is route), not a configuration: -set notifier.routes=" + dir + "/alertmanager.yml"},
	} {
		if c.content != "" {
			if err := os.WriteFile(c.file, []byte(c.content), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		a := platform.Assemble(platform.DefaultConfig(), []platform.Component{echo})
		err := a.Load("echo", []string{"-config", c.file})
		if !errors.Is(err, config.ErrUnknownKey) || !strings.Contains(err.Error(), c.want) || strings.Count(err.Error(), "unknown key") != 1 {
			t.Errorf("-config %s: %v\nwant one unknown key saying %q", c.file, err, c.want)
		}
	}
}
