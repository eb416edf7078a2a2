package config

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aiops-dev/aiops/pkg/errs"
)

type busConfig struct {
	URLs       []string      `yaml:"urls"`
	Timeout    time.Duration `yaml:"timeout"`
	MaxPending int           `yaml:"max_pending"`
}

type storeConfig struct {
	DSN      string `yaml:"dsn"`
	Password string `yaml:"-" env:"password"`
}

type common struct {
	Name string `yaml:"name"`
}

type receiver struct {
	URL     string        `yaml:"url"`
	Timeout time.Duration `yaml:"timeout"`
}

type testConfig struct {
	common    `yaml:",inline"`
	Receivers map[string]receiver `yaml:"receivers"`
	Bus       busConfig           `yaml:"bus"`
	Store     *storeConfig        `yaml:"store"`
	Labels    map[string]string   `yaml:"labels"`
	Debug     bool                `yaml:"debug"`
	Workers   int                 `yaml:"workers"`

	validated int
	invalid   error
}

func (c *testConfig) Validate() error {
	c.validated++
	return c.invalid
}

func defaults() testConfig {
	return testConfig{
		common:  common{Name: "default"},
		Bus:     busConfig{URLs: []string{"nats://default:4222"}, Timeout: time.Second, MaxPending: 10},
		Workers: 1,
	}
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadPrecedence(t *testing.T) {
	file := writeFile(t, `
name: from-file
bus:
  timeout: 5s
  max_pending: 20
workers: 2
`)
	cfg := defaults()
	err := Load(&cfg, Options{
		File:      file,
		EnvPrefix: "AIOPS",
		Environ: []string{
			"AIOPS_BUS__MAX_PENDING=30",
			"AIOPS_WORKERS=3",
			"OTHER_WORKERS=99", // another prefix: ignored
		},
		Sets: []string{"workers=4"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Bus.URLs[0] != "nats://default:4222" {
		t.Errorf("bus.urls = %v, want the default kept (no source set it)", cfg.Bus.URLs)
	}
	if cfg.Name != "from-file" || cfg.Bus.Timeout != 5*time.Second {
		t.Errorf("name, bus.timeout = %q, %v; want the file's from-file, 5s", cfg.Name, cfg.Bus.Timeout)
	}
	if cfg.Bus.MaxPending != 30 {
		t.Errorf("bus.max_pending = %d, want the environment's 30 over the file's 20", cfg.Bus.MaxPending)
	}
	if cfg.Workers != 4 {
		t.Errorf("workers = %d, want -set's 4 over the environment's 3", cfg.Workers)
	}
	if cfg.validated != 1 {
		t.Errorf("Validate called %d times, want 1", cfg.validated)
	}
}

func TestLoadFileUnknownKeyNamesKeyAndLine(t *testing.T) {
	file := writeFile(t, "name: x\nbus:\n  urls: [a]\n  timout: 5s\nworkerz: 3\n")
	cfg := defaults()
	err := Load(&cfg, Options{File: file})
	if !errors.Is(err, ErrUnknownKey) || !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("err = %v, want ErrUnknownKey and ErrInvalidConfig", err)
	}
	for _, want := range []string{file + `:4: unknown key "bus.timout"`, file + `:5: unknown key "workerz"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("err = %q, want it to contain %q", err, want)
		}
	}
	if !errs.IsPermanent(err) {
		t.Error("a configuration error must be permanent")
	}
	if cfg.validated != 0 {
		t.Error("Validate ran on a configuration that failed to load")
	}
}

func TestLoadFileTypeErrorNamesLineNotValue(t *testing.T) {
	file := writeFile(t, "bus:\n  max_pending: s3cr3t-looking\n")
	cfg := defaults()
	err := Load(&cfg, Options{File: file})
	if err == nil || !strings.Contains(err.Error(), file+":2:") {
		t.Fatalf("err = %v, want it to name %s:2", err, file)
	}
	if strings.Contains(err.Error(), "s3cr3t-looking") {
		t.Errorf("err = %q repeats the value", err)
	}
}

// A value of the wrong type is named by its key as well as its line, and
// each problem gets its own hint: the duration hint went to the end of
// the message, after whatever problem came last.
func TestLoadFileTypeErrorsNameTheKey(t *testing.T) {
	file := writeFile(t, "bus:\n  timeout: 5\n  max_pending: lots\nreceivers:\n  ops:\n    timeout: 2\nworkers: [1]\n")
	cfg := defaults()
	err := Load(&cfg, Options{File: file})
	if err == nil {
		t.Fatal("loaded")
	}
	lines := strings.Split(err.Error(), "\n")
	want := []string{
		file + `:2: key "bus.timeout": cannot unmarshal !!int value into time.Duration (a duration needs a unit`,
		file + `:3: key "bus.max_pending": cannot unmarshal !!str value into int`,
		file + `:6: key "receivers.ops.timeout": cannot unmarshal !!int value into time.Duration (a duration needs a unit`,
		file + `:7: key "workers": cannot unmarshal !!seq into int`,
	}
	if len(lines) != len(want) {
		t.Fatalf("err = %q, want %d lines", err, len(want))
	}
	for i, w := range want {
		if !strings.Contains(lines[i], w) {
			t.Errorf("line %d = %q, want it to contain %q", i, lines[i], w)
		}
	}
	if strings.Contains(lines[1], "duration") || strings.Contains(lines[3], "duration") {
		t.Errorf("err = %q: the duration hint on a problem that is not a duration", err)
	}
	// Several keys on one line: the line alone, no guess.
	file = writeFile(t, "{workers: 2, debug: maybe}\n")
	err = Load(&cfg, Options{File: file})
	if err == nil || !strings.Contains(err.Error(), file+":1: cannot unmarshal") {
		t.Errorf("err = %v, want the line without a key", err)
	}
}

// yaml.v3 reports a problem in an alias's value at the line of the
// anchored node: that line holds the anchor's key, not the one whose type
// is wrong, so it is named by the line alone (workers is the int, name a
// string; receivers.dev.timeout and receivers.ops.timeout are one line).
func TestLoadFileTypeErrorThroughAnAliasNamesNoOtherKey(t *testing.T) {
	for _, c := range []struct{ name, yaml, want, notWant string }{
		{"alias", "name: &n lots\nworkers: *n\n", ":1: cannot unmarshal !!str value into int", `"name"`},
		{"alias of a mapping", "receivers:\n  ops: &r\n    timeout: 2\n  dev: *r\n", ":3: cannot unmarshal !!int value into time.Duration", `"receivers.ops.timeout"`},
		{"merge key", "receivers:\n  ops: &r\n    timeout: 2\n  dev:\n    <<: *r\n    url: http://x\n", ":3: cannot unmarshal !!int value into time.Duration", `"receivers.ops.timeout"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := defaults()
			err := Load(&cfg, Options{File: writeFile(t, c.yaml)})
			if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), c.notWant) {
				t.Errorf("err = %v, want %q without the key %s", err, c.want, c.notWant)
			}
		})
	}
	// an anchor without aliases still names its key
	cfg := defaults()
	err := Load(&cfg, Options{File: writeFile(t, "name: x\nworkers: &w lots\n")})
	if err == nil || !strings.Contains(err.Error(), `:2: key "workers": cannot unmarshal`) {
		t.Errorf("err = %v, want the key workers named", err)
	}
}

func TestLoadDurations(t *testing.T) {
	cfg := defaults()
	if err := Load(&cfg, Options{File: writeFile(t, "bus:\n  timeout: 1m30s\n")}); err != nil {
		t.Fatal(err)
	}
	if cfg.Bus.Timeout != 90*time.Second {
		t.Errorf("timeout = %v, want 1m30s", cfg.Bus.Timeout)
	}
	if err := Load(&cfg, Options{Sets: []string{"bus.timeout=250ms"}}); err != nil {
		t.Fatal(err)
	}
	if cfg.Bus.Timeout != 250*time.Millisecond {
		t.Errorf("timeout = %v, want 250ms", cfg.Bus.Timeout)
	}
	err := Load(&cfg, Options{File: writeFile(t, "bus:\n  timeout: 5\n")})
	if err == nil || !strings.Contains(err.Error(), "needs a unit") {
		t.Errorf("err = %v, want a hint that a duration needs a unit", err)
	}
}

func TestLoadEnvLists(t *testing.T) {
	cfg := defaults()
	err := Load(&cfg, Options{EnvPrefix: "AIOPS", Environ: []string{
		"AIOPS_BUS__URLS=[nats://a:4222, nats://b:4222]",
	}})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"nats://a:4222", "nats://b:4222"}
	if !reflect.DeepEqual(cfg.Bus.URLs, want) {
		t.Errorf("bus.urls = %v, want %v", cfg.Bus.URLs, want)
	}
}

func TestLoadEnvStringsAreLiteral(t *testing.T) {
	// YAML would read "#..." as a comment and "*x" as an alias.
	dsn := "clickhouse://u:p#*&x@host:9000/db?a=b: c"
	cfg := defaults()
	err := Load(&cfg, Options{EnvPrefix: "AIOPS", Environ: []string{
		"AIOPS_STORE__DSN=" + dsn,
		"AIOPS_LABELS__TEAM=sre",
		"AIOPS_DEBUG=true",
	}})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Store == nil || cfg.Store.DSN != dsn {
		t.Errorf("store = %+v, want dsn %q", cfg.Store, dsn)
	}
	if cfg.Labels["team"] != "sre" || !cfg.Debug {
		t.Errorf("labels, debug = %v, %v; want team=sre, true", cfg.Labels, cfg.Debug)
	}
}

func TestLoadMapOfStructs(t *testing.T) {
	cfg := defaults()
	err := Load(&cfg, Options{
		File:      writeFile(t, "receivers:\n  team-a:\n    url: http://a\n    timeout: 2s\n"),
		EnvPrefix: "AIOPS",
		Environ:   []string{"AIOPS_RECEIVERS__OPS__URL=http://ops"},
		Sets:      []string{"receivers.team-a.timeout=3s"},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]receiver{"team-a": {URL: "http://a", Timeout: 3 * time.Second}, "ops": {URL: "http://ops"}}
	if !reflect.DeepEqual(cfg.Receivers, want) {
		t.Errorf("receivers = %+v, want %+v", cfg.Receivers, want)
	}
	err = Load(&cfg, Options{File: writeFile(t, "receivers:\n  team-a:\n    uri: http://a\n")})
	if err == nil || !strings.Contains(err.Error(), `:3: unknown key "receivers.team-a.uri"`) {
		t.Errorf("err = %v, want the unknown key inside a map entry named with its line", err)
	}
}

func TestLoadEnvOnlyField(t *testing.T) {
	cfg := defaults()
	err := Load(&cfg, Options{EnvPrefix: "AIOPS", Environ: []string{"AIOPS_STORE__PASSWORD=pw"}})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Store.Password != "pw" {
		t.Errorf("store.password = %q, want pw from the environment", cfg.Store.Password)
	}
	// Secrets are kept out of files and the command line (visible in ps).
	err = Load(&cfg, Options{File: writeFile(t, "store:\n  password: pw\n")})
	if !errors.Is(err, ErrUnknownKey) || !strings.Contains(err.Error(), "from the environment") {
		t.Errorf("password in the file: err = %v, want ErrUnknownKey pointing to the environment", err)
	}
	// On the command line too, the error says where a secret goes: a
	// bare "unknown key" reads as a key that does not exist.
	err = Load(&cfg, Options{Sets: []string{"store.password=pw"}})
	if !errors.Is(err, ErrUnknownKey) || !strings.Contains(err.Error(), "from the environment") || strings.Contains(err.Error(), "pw\"") {
		t.Errorf("password in -set: err = %v, want ErrUnknownKey pointing to the environment, without the value", err)
	}
}

func TestLoadUnknownEnvAndSetNameThemselves(t *testing.T) {
	cases := []struct {
		name string
		opts Options
		want string
	}{
		{"env", Options{EnvPrefix: "AIOPS", Environ: []string{"AIOPS_BUS__URL=x"}},
			`environment variable AIOPS_BUS__URL: unknown key "bus.url"`},
		{"env top level", Options{EnvPrefix: "AIOPS", Environ: []string{"AIOPS_NOPE=x"}},
			`environment variable AIOPS_NOPE: unknown key "nope"`},
		{"env below a scalar", Options{EnvPrefix: "AIOPS", Environ: []string{"AIOPS_WORKERS__X=1"}},
			`environment variable AIOPS_WORKERS__X: unknown key "workers.x"`},
		{"set", Options{Sets: []string{"bus.nope=1"}}, `flag -set bus.nope: unknown key "bus.nope"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := defaults()
			err := Load(&cfg, c.opts)
			if !errors.Is(err, ErrUnknownKey) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("err = %v, want ErrUnknownKey containing %q", err, c.want)
			}
		})
	}
}

func TestLoadEnvIgnore(t *testing.T) {
	cfg := defaults()
	err := Load(&cfg, Options{EnvPrefix: "AIOPS", EnvIgnore: []string{"AIOPS_TEST_"}, Environ: []string{
		"AIOPS_TEST_NATS_URL=nats://127.0.0.1:4222", // a test fixture, not configuration
		"AIOPS_WORKERS=6",
	}})
	if err != nil || cfg.Workers != 6 {
		t.Errorf("Load = %v, workers %d; want the fixture ignored and workers 6", err, cfg.Workers)
	}
	err = Load(&cfg, Options{EnvPrefix: "AIOPS", EnvIgnore: []string{"AIOPS_TEST_"}, Environ: []string{"AIOPS_TESTS=1"}})
	if !errors.Is(err, ErrUnknownKey) {
		t.Errorf("AIOPS_TESTS is outside the ignored prefix: err = %v, want ErrUnknownKey", err)
	}
}

func TestLoadBadValueNamesSourceNotValue(t *testing.T) {
	cfg := defaults()
	err := Load(&cfg, Options{EnvPrefix: "AIOPS", Environ: []string{"AIOPS_BUS__MAX_PENDING=hunter2"}})
	if err == nil {
		t.Fatal("a non-integer for an int key loaded")
	}
	if !strings.Contains(err.Error(), "AIOPS_BUS__MAX_PENDING") || !strings.Contains(err.Error(), "bus.max_pending") {
		t.Errorf("err = %q, want it to name the variable and the key", err)
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("err = %q repeats the value", err)
	}
	err = Load(&cfg, Options{Sets: []string{"workers"}})
	if err == nil || !strings.Contains(err.Error(), "key=value") {
		t.Errorf("-set without '=': err = %v, want a key=value hint", err)
	}
}

// yaml.v3 quotes a value between backticks; a value holding a backtick
// (a password put in the wrong key) showed its part after the first one.
func TestLoadBadValueWithBackticksIsNotRepeated(t *testing.T) {
	for _, v := range []string{"hu`nter2", "x`hun`ter2", "hunter2`", "a`hunter2` into int"} {
		for name, opts := range map[string]Options{
			"env":  {EnvPrefix: "AIOPS", Environ: []string{"AIOPS_BUS__MAX_PENDING=" + v}},
			"set":  {Sets: []string{"bus.timeout=" + v}},
			"file": {File: writeFile(t, "bus:\n  max_pending: "+v+"\n")},
		} {
			cfg := defaults()
			err := Load(&cfg, opts)
			if err == nil {
				t.Errorf("%s %q: loaded", name, v)
				continue
			}
			for _, part := range []string{"ter2", "hun", "nter"} {
				if strings.Contains(err.Error(), part) {
					t.Errorf("%s %q: err = %q repeats part of the value", name, v, err)
				}
			}
		}
	}
}

// A value holding a line break (a block scalar in the file, a quoted
// "\n" anywhere) was shown: the pattern that hid it stopped at the end
// of a line. Each problem of a message is hidden on its own, and still
// named.
func TestLoadBadValueWithALineBreakIsNotRepeated(t *testing.T) {
	for name, opts := range map[string]Options{
		"file block":  {File: writeFile(t, "bus:\n  max_pending: |\n    hunter2\n")},
		"file quoted": {File: writeFile(t, "bus:\n  max_pending: \"hun\\nter2\"\n")},
		"file long":   {File: writeFile(t, "bus:\n  max_pending: |\n    hun\n    ter2hunter2\n")},
		"env":         {EnvPrefix: "AIOPS", Environ: []string{"AIOPS_BUS__MAX_PENDING=\"hun\\nter2\""}},
		"set":         {Sets: []string{"bus.timeout=|\n  hunter2\n"}},
	} {
		cfg := defaults()
		err := Load(&cfg, opts)
		if err == nil {
			t.Errorf("%s: loaded", name)
			continue
		}
		if strings.Contains(err.Error(), "hun") || strings.Contains(err.Error(), "ter2") {
			t.Errorf("%s: err = %q repeats part of the value", name, err)
		}
	}
	for name, opts := range map[string]Options{
		"file": {File: writeFile(t, "bus:\n  max_pending: |\n    hunter2\n  timeout: \"hun\\nter2\"\n")},
		"set":  {Sets: []string{`bus={max_pending: "hun\nter2", timeout: "hun\nter2"}`}},
	} {
		cfg := defaults()
		err := Load(&cfg, opts)
		if err == nil || strings.Contains(err.Error(), "hun") || strings.Contains(err.Error(), "ter2") ||
			!strings.Contains(err.Error(), "value into int") || !strings.Contains(err.Error(), "value into time.Duration") {
			t.Errorf("%s: err = %v, want both problems named without their values", name, err)
		}
	}
}

func TestLoadSetMergesStructAndReplacesList(t *testing.T) {
	cfg := defaults()
	err := Load(&cfg, Options{Sets: []string{"bus={max_pending: 7}", "bus.urls=[x]"}})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Bus.MaxPending != 7 || cfg.Bus.Timeout != time.Second || !reflect.DeepEqual(cfg.Bus.URLs, []string{"x"}) {
		t.Errorf("bus = %+v, want max_pending 7, timeout kept at 1s, urls [x]", cfg.Bus)
	}
	err = Load(&cfg, Options{Sets: []string{"bus={typo: 7}"}})
	if err == nil || !strings.Contains(err.Error(), "typo") {
		t.Errorf("unknown key inside a flow mapping: err = %v, want it named", err)
	}
}

func TestLoadValidateErrorReturned(t *testing.T) {
	cfg := defaults()
	cfg.invalid = errors.New("bus.urls: at least one URL is required")
	err := Load(&cfg, Options{})
	if !errors.Is(err, cfg.invalid) || !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("err = %v, want the Validate error wrapped in ErrInvalidConfig", err)
	}
}

func TestLoadMissingFileNamesIt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "absent.yaml")
	cfg := defaults()
	err := Load(&cfg, Options{File: path})
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), path) {
		t.Errorf("err = %v, want not-exist naming %s", err, path)
	}
}

func TestLoadEmptyFileKeepsDefaults(t *testing.T) {
	cfg := defaults()
	if err := Load(&cfg, Options{File: writeFile(t, "# nothing yet\n")}); err != nil {
		t.Fatal(err)
	}
	if cfg.Name != "default" || cfg.Workers != 1 {
		t.Errorf("cfg = %+v, want defaults", cfg)
	}
}

func TestLoadRejectsNonStructPointer(t *testing.T) {
	var n int
	if err := Load(&n, Options{}); err == nil {
		t.Error("Load(*int) succeeded")
	}
	if err := Load(testConfig{}, Options{}); err == nil {
		t.Error("Load(struct value) succeeded")
	}
}

func TestFlags(t *testing.T) {
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	opts := Flags(fs, "AIOPS")
	err := fs.Parse([]string{"-config", "/etc/aiops.yaml", "-set", "workers=5", "-set", "bus.urls=[a]"})
	if err != nil {
		t.Fatal(err)
	}
	want := Options{File: "/etc/aiops.yaml", EnvPrefix: "AIOPS", Sets: []string{"workers=5", "bus.urls=[a]"}}
	if !reflect.DeepEqual(*opts, want) {
		t.Errorf("options = %+v, want %+v", *opts, want)
	}
	fs = flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(new(strings.Builder))
	Flags(fs, "AIOPS")
	if err := fs.Parse([]string{"-set", "workers"}); err == nil {
		t.Error("-set without '=' parsed")
	}
}

func ExampleLoad() {
	type Config struct {
		Bus struct {
			URLs    []string      `yaml:"urls"`
			Timeout time.Duration `yaml:"timeout"`
		} `yaml:"bus"`
	}
	var cfg Config
	cfg.Bus.Timeout = 5 * time.Second
	err := Load(&cfg, Options{
		EnvPrefix: "AIOPS",
		Environ:   []string{"AIOPS_BUS__URLS=[nats://a:4222, nats://b:4222]"},
		Sets:      []string{"bus.timeout=10s"},
	})
	fmt.Println(cfg.Bus.URLs, cfg.Bus.Timeout, err)
	// Output: [nats://a:4222 nats://b:4222] 10s <nil>
}

// A variable's name carries no case: AIOPS_RECEIVERS__OPS__URL names the
// map key the file spells "Ops" (it used to add a second entry, "ops",
// beside it, silently), a key spelled with a lower-case letter is taken
// as written, and one a variable cannot tell apart is an error naming the
// keys.
func TestLoadEnvMapKeysKeepTheirCase(t *testing.T) {
	cfg := defaults()
	err := Load(&cfg, Options{
		File:      writeFile(t, "receivers:\n  Ops:\n    url: http://a\n    timeout: 2s\nlabels:\n  Team: a\n"),
		EnvPrefix: "AIOPS",
		Environ: []string{
			"AIOPS_RECEIVERS__OPS__URL=http://ops",
			"AIOPS_LABELS__team=b",
			"AIOPS_LABELS__Region=eu",
			"AIOPS_LABELS__ENV=prod",
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]receiver{"Ops": {URL: "http://ops", Timeout: 2 * time.Second}}; !reflect.DeepEqual(cfg.Receivers, want) {
		t.Errorf("receivers = %+v, want %+v", cfg.Receivers, want)
	}
	if want := map[string]string{"Team": "b", "Region": "eu", "env": "prod"}; !reflect.DeepEqual(cfg.Labels, want) {
		t.Errorf("labels = %v, want %v", cfg.Labels, want)
	}

	cfg = defaults()
	err = Load(&cfg, Options{
		File:      writeFile(t, "labels:\n  Team: a\n  TEAM: b\n"),
		EnvPrefix: "AIOPS",
		Environ:   []string{"AIOPS_LABELS__team=c"},
	})
	if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), `environment variable AIOPS_LABELS__team: key "labels.team" matches "TEAM" and "Team"`) ||
		!strings.Contains(err.Error(), "-set") {
		t.Errorf("err = %v, want the keys a variable cannot tell apart named", err)
	}
	cfg = defaults()
	err = Load(&cfg, Options{
		File:      writeFile(t, "labels:\n  Team: a\n  TEAM: b\n"),
		EnvPrefix: "AIOPS",
		Environ:   []string{"AIOPS_LABELS__TEAM=c"},
	})
	if want := map[string]string{"Team": "a", "TEAM": "c"}; err != nil || !reflect.DeepEqual(cfg.Labels, want) {
		t.Errorf("labels = %v, err %v; want the key spelled as the variable %v", cfg.Labels, err, want)
	}
}

// An unknown key names the closest known one when one is close (a typo),
// from every source, and nothing when none is.
func TestLoadUnknownKeySuggestsTheClosest(t *testing.T) {
	cases := []struct {
		name string
		opts Options
		want string
	}{
		{"file", Options{File: writeFile(t, "bus:\n  timout: 5s\n")}, `:2: unknown key "bus.timout" (did you mean "bus.timeout"?)`},
		{"file top level", Options{File: writeFile(t, "workerz: 3\n")}, `:1: unknown key "workerz" (did you mean "workers"?)`},
		{"set", Options{Sets: []string{"bsu.urls=[a]"}}, `flag -set bsu.urls: unknown key "bsu" (did you mean "bus"?)`},
		{"set nested", Options{Sets: []string{"bus.max_pendign=3"}}, `unknown key "bus.max_pendign" (did you mean "bus.max_pending"?)`},
		{"env", Options{EnvPrefix: "AIOPS", Environ: []string{"AIOPS_BUS__URL=x"}},
			`environment variable AIOPS_BUS__URL: unknown key "bus.url" (did you mean "bus.urls"?)`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := defaults()
			err := Load(&cfg, c.opts)
			if !errors.Is(err, ErrUnknownKey) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("err = %v, want ErrUnknownKey containing %q", err, c.want)
			}
		})
	}
	for _, set := range []string{"nope=1", "bus.zzz=1", "receivers.a.nope=1"} {
		cfg := defaults()
		err := Load(&cfg, Options{Sets: []string{set}})
		if !errors.Is(err, ErrUnknownKey) || strings.Contains(err.Error(), "did you mean") {
			t.Errorf("-set %s: err = %v, want ErrUnknownKey without a far-fetched suggestion", set, err)
		}
	}
}

// A file of another kind given as the configuration (the detector's
// pipeline file, whose top key is detect) is told as such, once, with
// what to do: not as an unknown key, nor as a typo of a section.
func TestLoadFileOfAnotherKind(t *testing.T) {
	file := writeFile(t, "detect:\n  rules: []\nroutes: x\n")
	kinds := map[string]func(string) string{
		"detect": func(path string) string { return path + " is a pipeline file: set pipeline=" + path },
	}
	cfg := defaults()
	err := Load(&cfg, Options{File: file, FileKinds: kinds})
	if !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("err = %v, want ErrUnknownKey", err)
	}
	want := file + `:1: unknown key "detect": ` + file + " is a pipeline file: set pipeline=" + file
	if err.Error() != "invalid configuration: "+want {
		t.Errorf("err = %q, want %q alone", err, want)
	}
	// A configuration of this kind with one such key among its own (a
	// section indented wrong) is no file of the other kind: its unknown
	// key is listed as any other.
	file = writeFile(t, "workers: 2\ndetect:\n  rules: []\n")
	cfg = defaults()
	err = Load(&cfg, Options{File: file, FileKinds: kinds})
	if !errors.Is(err, ErrUnknownKey) || !strings.Contains(err.Error(), `unknown key "detect"`) || strings.Contains(err.Error(), "pipeline file") {
		t.Errorf("a configuration with a stray detect: err = %v, want its unknown key without the other kind's advice", err)
	}
	// The same key from -set is a key like any other.
	err = Load(&cfg, Options{Sets: []string{"detect.rules=[]"}, FileKinds: kinds})
	if !errors.Is(err, ErrUnknownKey) || strings.Contains(err.Error(), "pipeline file") {
		t.Errorf("-set detect.rules: err = %v, want an unknown key without the file's hint", err)
	}
}
