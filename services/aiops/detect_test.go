package aiops

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aiops-dev/aiops/pkg/detect"
	"github.com/aiops-dev/aiops/pkg/service"
)

// writeSeries writes n rows around 50 (σ 1) at one-minute steps with a spike
// of +20 at row spike, and returns the file and its rows.
func writeSeries(t *testing.T, dir string, n, spike int) (string, [][]string) {
	t.Helper()
	r := rand.New(rand.NewPCG(4, 2))
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	var b strings.Builder
	b.WriteString("timestamp,value\n")
	rows := make([][]string, n)
	for i := range rows {
		v := 50 + r.NormFloat64()
		if i == spike {
			v += 20
		}
		rows[i] = []string{t0.Add(time.Duration(i) * time.Minute).Format("2006-01-02 15:04:05"), strconv.FormatFloat(v, 'f', 4, 64)}
		fmt.Fprintf(&b, "%s,%s\n", rows[i][0], rows[i][1])
	}
	path := filepath.Join(dir, "series.csv")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, rows
}

func TestDetectReplayEndToEnd(t *testing.T) {
	dir := t.TempDir()
	const n, spike = 3000, 2500
	in, rows := writeSeries(t, dir, n, spike)
	out, png := filepath.Join(dir, "scores.csv"), filepath.Join(dir, "plot.png")
	var stderr bytes.Buffer
	if err := detectMain(context.Background(), []string{"replay", "--input", in, "--output", out, "--plot", png}, nil, &stderr); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got[0], ",") != "timestamp,value,anomaly_score,is_anomaly" {
		t.Fatalf("header %v", got[0])
	}
	if len(got)-1 != n {
		t.Fatalf("%d output rows for %d input rows", len(got)-1, n)
	}
	anomalies := 0
	for i, row := range got[1:] {
		if row[0] != rows[i][0] || row[1] != rows[i][1] {
			t.Fatalf("row %d is %v, want input %v in order", i, row[:2], rows[i])
		}
		score, err := strconv.ParseFloat(row[2], 64)
		if err != nil || score < 0 || score > 1 {
			t.Fatalf("row %d: score %q outside [0,1]", i, row[2])
		}
		if (row[3] == "1") != (score >= detect.DefaultThreshold) || (row[3] != "0" && row[3] != "1") {
			t.Fatalf("row %d: is_anomaly %q with score %v", i, row[3], score)
		}
		if row[3] == "1" {
			anomalies++
		}
	}
	if got[spike+1][3] != "1" {
		t.Errorf("the spike at row %d is not flagged: %v", spike, got[spike+1])
	}
	if anomalies > 10 {
		t.Errorf("%d anomalies in a normal series with one spike", anomalies)
	}
	if s := stderr.String(); !strings.Contains(s, fmt.Sprintf("%d rows", n)) || !strings.Contains(s, fmt.Sprintf("%d anomalies", anomalies)) || !strings.Contains(s, "bad rows") {
		t.Errorf("summary on stderr does not report rows and anomalies: %q", s)
	}
	img, err := os.ReadFile(png)
	if err != nil || !bytes.HasPrefix(img, []byte("\x89PNG")) {
		t.Errorf("plot: %v, %d bytes", err, len(img))
	}
}

// The pipeline file chooses the detectors: a threshold of 0.99 flags fewer
// rows than the default of 0.5 on the same data.
func TestDetectReplayConfig(t *testing.T) {
	dir := t.TempDir()
	in, _ := writeSeries(t, dir, 500, 400)
	cfg := filepath.Join(dir, "p.yaml")
	os.WriteFile(cfg, []byte("detect:\n  rules:\n    - name: strict\n      match: {metric: lat}\n      detectors: {threshold: 0.999999, z_threshold: 1000}\n"), 0o600)
	var out, stderr bytes.Buffer
	if err := detectMain(context.Background(), []string{"replay", "--input", in, "--output", "-", "--config", cfg, "--metric", "lat"}, &out, &stderr); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "route strict") || !strings.Contains(stderr.String(), " 0 anomalies") {
		t.Errorf("the strict rule was not used: %s", stderr.String())
	}
	if lines := strings.Count(out.String(), "\n"); lines != 501 {
		t.Errorf("%d lines on stdout, want 501", lines)
	}
}

// A series a rule ignores (ignore: true) is not scored by the service, and
// the replay does not score it either: it says which rule ignores it and
// writes nothing, instead of a file of zeros that reads as "scored, nothing
// found". Another series of the same file is scored.
func TestDetectReplayRefusesASeriesItsRuleIgnores(t *testing.T) {
	dir := t.TempDir()
	in, _ := writeSeries(t, dir, 500, 400)
	out := filepath.Join(dir, "scores.csv")
	args := func(metric string) []string {
		return []string{"replay", "--input", in, "--output", out, "--config", "../../pipelines/default.yaml", "--metric", metric, "--service", "shop"}
	}
	var stderr bytes.Buffer
	err := detectMain(context.Background(), args("scrape_duration_seconds"), nil, &stderr)
	if err == nil || !errors.Is(err, service.ErrUsage) || !strings.Contains(err.Error(), "rule prometheus-scrape") ||
		!strings.Contains(err.Error(), "ignore: true") {
		t.Fatalf("replay of scrape_duration_seconds: %v, want a usage error naming rule prometheus-scrape and ignore: true\n%s", err, stderr.String())
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("the refused replay wrote %s (%v)", out, err)
	}
	if err := detectMain(context.Background(), args("up"), nil, &stderr); err != nil {
		t.Fatalf("replay of up: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "route target-up") {
		t.Errorf("up not scored by its rule target-up: %s", stderr.String())
	}
}

// detect eval scores with the route of a series of no name, service or
// labels: a rule that ignores that series leaves nothing to score, said as
// such rather than a crash on its missing detectors.
func TestDetectEvalRefusesAConfigWhoseRuleIgnoresItsSeries(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "p.yaml")
	os.WriteFile(cfg, []byte("detect:\n  rules:\n    - name: not-canary\n      match: {labels: {canary: \"\"}}\n      ignore: true\n"), 0o600)
	var stdout, stderr bytes.Buffer
	err := detectMain(context.Background(), []string{"eval", "--config", cfg, dir}, &stdout, &stderr)
	if err == nil || !errors.Is(err, service.ErrUsage) || !strings.Contains(err.Error(), "rule not-canary") {
		t.Fatalf("eval with a rule ignoring its series: %v, want a usage error naming rule not-canary", err)
	}
}

func TestDetectReplayBadInput(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.csv")
	os.WriteFile(bad, []byte("time,val\n2026-01-01 00:00:00,1\n"), 0o600)
	badCfg := filepath.Join(dir, "bad.yaml")
	os.WriteFile(badCfg, []byte("detect:\n  defaults:\n    window: 2\n"), 0o600)
	good, _ := writeSeries(t, dir, 10, 5)
	out := filepath.Join(dir, "out.csv")
	for name, c := range map[string]struct {
		args  []string
		usage bool
		want  string
	}{
		"no subcommand": {nil, true, "replay"},
		"unknown sub":   {[]string{"score"}, true, "score"},
		"no input":      {[]string{"replay", "--output", out}, true, "--input"},
		"no output":     {[]string{"replay", "--input", good}, true, "--output"},
		"bad flag":      {[]string{"replay", "--inptu", good}, true, "inptu"},
		"bad config":    {[]string{"replay", "--input", good, "--output", out, "--config", badCfg}, true, "bad.yaml:3: detect.defaults.window"},
		"missing input": {[]string{"replay", "--input", filepath.Join(dir, "nope.csv"), "--output", out}, true, "nope.csv"},
		"bad header":    {[]string{"replay", "--input", bad, "--output", out}, false, "header"},
	} {
		var stderr bytes.Buffer
		err := detectMain(context.Background(), c.args, nil, &stderr)
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		if errors.Is(err, service.ErrUsage) != c.usage {
			t.Errorf("%s: %v: usage error %v, want %v", name, err, !c.usage, c.usage)
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %q does not name %q", name, err, c.want)
		}
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("a failed replay left %s behind (%v)", out, err)
	}
}

// TestDetectHelpNamesEachFlagList: `aiops detect -h` shows both
// subcommands' usage and, having no flag set of its own, says where each
// one's flags are instead of an empty list.
func TestDetectHelpNamesEachFlagList(t *testing.T) {
	var stderr bytes.Buffer
	if err := detectMain(context.Background(), []string{"-h"}, nil, &stderr); err != nil {
		t.Fatal(err)
	}
	help := stderr.String()
	for _, want := range []string{"usage: aiops detect replay", "flags: aiops detect replay -h\n", "usage: aiops detect eval", "flags: aiops detect eval -h\n"} {
		if !strings.Contains(help, want) {
			t.Errorf("help does not contain %q:\n%s", want, help)
		}
	}
	if strings.Contains(help, "flags:\n") {
		t.Errorf("help has an empty flag list:\n%s", help)
	}
}

func TestDetectEvalScoresFolder(t *testing.T) {
	dir := t.TempDir()
	var b strings.Builder
	b.WriteString("timestamp,value,label\n")
	r := rand.New(rand.NewPCG(1, 6))
	for i := 0; i < 4000; i++ {
		v, lab := 50+r.NormFloat64(), 0
		if i == 3500 {
			v, lab = 90, 1
		}
		fmt.Fprintf(&b, "%d,%.4f,%d\n", 1700000000+60*i, v, lab)
	}
	if err := os.WriteFile(filepath.Join(dir, "kpi.csv"), []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "manifest.csv"), []byte("entity,rows\nkpi,4000\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if err := detectMain(context.Background(), []string{"eval", dir}, &stdout, &stderr); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	out := stdout.String()
	// the spike is the one segment of the scored half: found in time
	if !strings.Contains(out, "kpi ") || !strings.Contains(out, " 1/1/1 ") || !strings.Contains(out, "mean over 1 files: F1(d7) 1.000") {
		t.Errorf("output:\n%s", out)
	}
	if !strings.Contains(stderr.String(), "manifest.csv: skipped") {
		t.Errorf("stderr:\n%s", stderr.String())
	}
	for _, args := range [][]string{{"eval"}, {"eval", "--part", "some", dir}, {"eval", filepath.Join(dir, "none")}} {
		if err := detectMain(context.Background(), args, &stdout, &stderr); !errors.Is(err, service.ErrUsage) {
			t.Errorf("%v: error %v, want a usage error", args, err)
		}
	}
}

// What the command line names is checked before any scoring: an input
// that is a folder, an output or a picture that cannot be written are
// usage errors (exit 2), and nothing is written.
func TestDetectReplayRefusesUnusablePathsFirst(t *testing.T) {
	dir := t.TempDir()
	in, _ := writeSeries(t, dir, 50, 40)
	out := filepath.Join(dir, "out.csv")
	missing := filepath.Join(dir, "no", "x")
	for name, args := range map[string][]string{
		"input a folder":             {"replay", "--input", dir, "--output", out},
		"output in a missing folder": {"replay", "--input", in, "--output", missing},
		"output a folder":            {"replay", "--input", in, "--output", dir},
		"plot in a missing folder":   {"replay", "--input", in, "--output", out, "--plot", missing},
	} {
		var stderr bytes.Buffer
		err := detectMain(context.Background(), args, nil, &stderr)
		if service.ExitCode(err) != 2 {
			t.Errorf("%s: %v (exit %d), want a usage error", name, err, service.ExitCode(err))
		}
		if strings.Contains(stderr.String(), "rows") {
			t.Errorf("%s: scored before refusing: %s", name, stderr.String())
		}
		if _, err := os.Stat(out); !os.IsNotExist(err) {
			t.Errorf("%s: %s written (%v)", name, out, err)
		}
	}
}

// A gzip-compressed series (as the labelled datasets come) scores as the
// plain file does.
func TestDetectReplayReadsGzip(t *testing.T) {
	dir := t.TempDir()
	in, _ := writeSeries(t, dir, 200, 150)
	data, _ := os.ReadFile(in)
	var zb bytes.Buffer
	zw := gzip.NewWriter(&zb)
	zw.Write(data)
	zw.Close()
	gz := filepath.Join(dir, "series.csv.gz")
	os.WriteFile(gz, zb.Bytes(), 0o600)
	var plain, unzipped bytes.Buffer
	if err := detectMain(context.Background(), []string{"replay", "--input", in, "--output", "-"}, &plain, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	if err := detectMain(context.Background(), []string{"replay", "--input", gz, "--output", "-"}, &unzipped, &bytes.Buffer{}); err != nil {
		t.Fatalf("gzip input: %v", err)
	}
	if !bytes.Equal(plain.Bytes(), unzipped.Bytes()) {
		t.Fatalf("gzip input scored differently")
	}
}

// A long series tells how far the scoring went on standard error, as it
// goes (a 100-million-row file scores for minutes).
func TestDetectReplayTellsProgress(t *testing.T) {
	dir := t.TempDir()
	in, _ := writeSeries(t, dir, 2000, 1500)
	defer func(every time.Duration) { progressEvery = every }(progressEvery)
	progressEvery = 0 // every read
	var stderr bytes.Buffer
	if err := detectMain(context.Background(), []string{"replay", "--input", in, "--output", filepath.Join(dir, "out.csv")}, nil, &stderr); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stderr.String(), "detect replay: 100% (0 of 0 MB)") {
		t.Fatalf("stderr %q: want the progress through the file", stderr.String())
	}
}
