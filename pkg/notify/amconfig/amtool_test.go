package amconfig

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
)

// The tests in this file compare the package with the real Alertmanager:
// `amtool config routes test` for routing and `amtool check-config` for
// what is a valid file (and, in inhibit_am_test.go and
// timeinterval_am_test.go, an Alertmanager server). amtool and the server
// come with Debian's prometheus-alertmanager package (Alertmanager 0.25):
//
//	apt-get install -y prometheus-alertmanager
//
// Without amtool on PATH the tests skip, except under CI=true, where they
// fail.

const installAmtool = "apt-get install -y prometheus-alertmanager"

func amtoolBinary(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("amtool")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("amtool is not on PATH and CI=true: CI must install it (%s)", installAmtool)
		}
		t.Skipf("amtool is not on PATH: these tests compare with the real Alertmanager; install it with `%s`", installAmtool)
	}
	return bin
}

// runAmtool runs amtool with HOME in a temporary folder, so that no
// user's amtool configuration applies; it returns standard output.
func runAmtool(bin, home string, args ...string) (string, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "HOME="+home)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		return stdout.String(), fmt.Errorf("%w: %s", err, strings.TrimSpace(stdout.String()+"\n"+stderr.String()))
	}
	return stdout.String(), nil
}

// absent stands for a label the alert does not have.
const absent = "\x00absent"

// routeCases lists, for each configuration in testdata/routes, the values
// each label takes in the generated alerts (absent: no such label; "" the
// empty value, which amtool passes as name="").
var routeCases = []struct {
	file   string
	labels map[string][]string
}{
	{"01-simple.yml", map[string][]string{
		"team":     {absent, "db", "web", "other"},
		"severity": {absent, "critical", "warning"},
	}},
	{"02-nested-inherit.yml", map[string][]string{
		"team":     {absent, "infra", "app", "x"},
		"service":  {absent, "disk", "net", "api"},
		"severity": {absent, "critical", "warning", "warn", "xwarn"},
		"env":      {absent, "prod", "staging"},
	}},
	{"03-continue.yml", map[string][]string{
		"severity": {absent, "critical", "info"},
		"team":     {absent, "db", "web", "dbx"},
		"env":      {absent, "prod", "staging", "dev"},
	}},
	{"04-match-re.yml", map[string][]string{
		"service":  {absent, "web", "webapp", "xweb", "api", "gateway", "apigateway", "db", "^db$", "ac", "bc", "abc", "mycache1", "cache"},
		"env":      {absent, "prod", "", "staging"},
		"instance": {absent, "10.0.0.1", "10.0.0.1:9100", "10.0.0.1x", "a.b.c.d"},
	}},
	{"05-matchers-quoting.yml", map[string][]string{
		"team":     {absent, "db", "ops", "web"},
		"env":      {absent, "prod", "production", "dev"},
		"msg":      {absent, "a,b", `say "hi"`, "x12", `x\d+`, "xab", "spaced value", `tab\tkept`, "ünï😀", "a"},
		"path":     {absent, `C:\temp`, `C:\\temp`},
		"severity": {absent, "info", "critical"},
	}},
	{"06-negative-missing.yml", map[string][]string{
		"env":      {absent, "", "prod"},
		"team":     {absent, "", "db", "web"},
		"severity": {absent, "info", "warning", "critical"},
		"owner":    {absent, "", "alice"},
		"region":   {absent, "eu-west", "us-east", ""},
	}},
	{"07-mixed-syntax.yml", map[string][]string{
		"team":      {absent, "db"},
		"env":       {absent, "prod", "staging", "dev"},
		"severity":  {absent, "info", "critical"},
		"alertname": {absent, "DiskFull", "DiskSlow", "CPU"},
		"zone":      {absent, "a", "b"},
	}},
	{"08-fallback.yml", map[string][]string{
		"team":     {absent, "db", "web"},
		"env":      {absent, "prod", "dev", "qa"},
		"severity": {absent, "critical", "warning", "info"},
	}},
	{"09-repeats.yml", map[string][]string{
		"page": {absent, "yes", "no"},
		"team": {absent, "db", "web"},
		"env":  {absent, "prod"},
	}},
	{"10-colons-and-names.yml", map[string][]string{
		"__name__":   {absent, "up", "down"},
		"job:rate5m": {absent, "0", "0.0", "0x0"},
		"alertname":  {absent, "DiskFull", "diskfull", "DISKFULL", "Disk"},
		"host":       {absent, "a01", "c99", "d01", "a1"},
		"dc":         {absent, "", "eu", "us", "asia"},
		"_tier":      {absent, "gold", "bronze"},
		"tier_":      {absent, "x"},
	}},
	{"11-realistic.yml", map[string][]string{
		"service":  {absent, "mysql", "postgres", "files", "web"},
		"owner":    {absent, "team-x", "team-y"},
		"severity": {absent, "critical", "warning"},
		"team":     {absent, "frontend"},
	}},
	{"12-group-by-and-timers.yml", map[string][]string{
		"team": {absent, "db", "web"},
		"env":  {absent, "prod", "dev", "qa", "uat"},
	}},
}

// labelSets returns every combination of the values when there are at
// most max, else max distinct combinations drawn with a fixed seed.
func labelSets(values map[string][]string, max int, seed uint64) []map[string]string {
	names := make([]string, 0, len(values))
	total := 1
	for n, vs := range values {
		names = append(names, n)
		total *= len(vs)
	}
	slices.Sort(names)
	build := func(pick func(i int) int) map[string]string {
		ls := map[string]string{}
		for i, n := range names {
			if v := values[n][pick(i)]; v != absent {
				ls[n] = v
			}
		}
		return ls
	}
	var out []map[string]string
	if total <= max {
		for k := 0; k < total; k++ {
			rest := k
			out = append(out, build(func(i int) int {
				j := rest % len(values[names[i]])
				rest /= len(values[names[i]])
				return j
			}))
		}
		return out
	}
	rng := rand.New(rand.NewPCG(seed, 42))
	seen := map[string]bool{}
	for tries := 0; len(out) < max && tries < 100*max; tries++ {
		ls := build(func(i int) int { return rng.IntN(len(values[names[i]])) })
		key := fmt.Sprint(ls)
		if seen[key] {
			continue
		}
		seen[key] = true
		out = append(out, ls)
	}
	return out
}

var plainValue = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)

// labelArgs writes labels as amtool arguments: name="value" with the
// value escaped, or name=value for plain values when plain is true.
func labelArgs(ls map[string]string, plain bool) []string {
	var args []string
	for _, n := range slices.Sorted(maps.Keys(ls)) {
		v := ls[n]
		if plain && plainValue.MatchString(v) {
			args = append(args, n+"="+v)
		} else {
			args = append(args, n+`="`+escapeValue(v)+`"`)
		}
	}
	return args
}

// TestRoutesTestAgainstAmtool runs the real `amtool config routes test`
// (with and without --tree) on every configuration of testdata/routes and
// many label sets, and requires FormatRoutesTest to print exactly the
// same.
func TestRoutesTestAgainstAmtool(t *testing.T) {
	bin := amtoolBinary(t)
	home := t.TempDir()
	perConfig := 40
	if testing.Short() {
		perConfig = 8
	}
	type job struct {
		file, path string
		cfg        *Config
		args       []string
		tree       bool
		want       string
		err        error
	}
	var jobs []*job
	for ci, rc := range routeCases {
		path := filepath.Join("testdata", "routes", rc.file)
		cfg, err := Load(path)
		if err != nil {
			t.Fatalf("%s: %v", rc.file, err)
		}
		for si, ls := range labelSets(rc.labels, perConfig, uint64(ci)) {
			args := labelArgs(ls, si%2 == 0)
			for _, tree := range []bool{false, true} {
				jobs = append(jobs, &job{file: rc.file, path: path, cfg: cfg, args: args, tree: tree})
			}
		}
	}
	if n, err := filepath.Glob(filepath.Join("testdata", "routes", "*.yml")); err != nil || len(n) != len(routeCases) {
		t.Fatalf("testdata/routes has %d files, routeCases lists %d", len(n), len(routeCases))
	}

	var wg sync.WaitGroup
	sem := make(chan struct{}, 2*runtime.NumCPU())
	for _, j := range jobs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			args := []string{"config", "routes", "test", "--config.file=" + j.path}
			if j.tree {
				args = append(args, "--tree")
			}
			j.want, j.err = runAmtool(bin, home, append(args, j.args...)...)
		}()
	}
	wg.Wait()

	failures := 0
	for _, j := range jobs {
		if j.err != nil {
			t.Fatalf("%s %q: amtool: %v", j.file, j.args, j.err)
		}
		labels, err := ParseLabels(j.args)
		if err != nil {
			t.Fatalf("%s: ParseLabels(%q): %v", j.file, j.args, err)
		}
		if got := FormatRoutesTest(j.cfg, labels, j.tree); got != j.want {
			failures++
			if failures <= 10 {
				t.Errorf("%s tree=%v labels %q:\namtool:\n%s\namconfig:\n%s", j.file, j.tree, j.args, j.want, got)
			}
		}
	}
	if failures > 0 {
		t.Fatalf("%d of %d outputs differ from amtool's", failures, len(jobs))
	}
	labelSetsRun := len(jobs) / 2
	t.Logf("%d configurations, %d label sets, %d amtool runs: identical output", len(routeCases), labelSetsRun, len(jobs))
	if !testing.Short() && labelSetsRun < 300 {
		t.Fatalf("only %d label sets: the comparison needs a few hundred", labelSetsRun)
	}
}

// TestCheckConfigAgainstAmtool runs `amtool check-config` on every
// configuration the tests parse, and requires that Alertmanager accepts
// or refuses each as the case says: as aiops does, except for the cases
// that name why they differ (aiops-only keys, receiver types aiops does
// not support, keys newer than Alertmanager 0.25).
func TestCheckConfigAgainstAmtool(t *testing.T) {
	bin := amtoolBinary(t)
	home := t.TempDir()
	dir := t.TempDir()

	type check struct {
		name, file string
		amAccepts  bool
		why        string
	}
	var checks []check
	routeFiles, _ := filepath.Glob(filepath.Join("testdata", "routes", "*.yml"))
	for _, f := range append(routeFiles, filepath.Join("testdata", "inhibit.yml")) {
		checks = append(checks, check{name: f, file: f, amAccepts: true})
	}
	for i, c := range configCases {
		f := filepath.Join(dir, fmt.Sprintf("case-%03d.yml", i))
		if err := os.WriteFile(f, []byte(c.yaml), 0o644); err != nil {
			t.Fatal(err)
		}
		checks = append(checks, check{name: c.name, file: f, amAccepts: c.amAccepts, why: c.why})
	}

	results := make([]error, len(checks))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 2*runtime.NumCPU())
	for i, c := range checks {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			_, results[i] = runAmtool(bin, home, "check-config", c.file)
		}()
	}
	wg.Wait()

	agree, differ := 0, 0
	for i, c := range checks {
		err := results[i]
		var exit *exec.ExitError
		if err != nil && !errors.As(err, &exit) {
			t.Fatalf("%s: running amtool: %v", c.name, err)
		}
		if amAccepts := err == nil; amAccepts != c.amAccepts {
			t.Errorf("%s: amtool check-config accepts=%v, the case says %v (%v)", c.name, amAccepts, c.amAccepts, err)
		}
		if c.why != "" {
			differ++
		} else {
			agree++
		}
	}
	t.Logf("%d configurations checked with amtool check-config: %d judged alike, %d differ for a stated reason", len(checks), agree, differ)
}
