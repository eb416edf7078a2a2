package aiops

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aiops-dev/aiops/pkg/logmine"
	"github.com/aiops-dev/aiops/pkg/service"
	"github.com/aiops-dev/aiops/services/logminer"
)

// readCSV reads a parse result and checks the shape every output must have:
// the header, one row per input line, LineId counting from 1.
func readCSV(t *testing.T, path string, lines int) [][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) == 0 || strings.Join(rows[0], ",") != "LineId,EventId,EventTemplate" {
		t.Fatalf("header: got %v", rows[:min(1, len(rows))])
	}
	rows = rows[1:]
	if len(rows) != lines {
		t.Fatalf("got %d rows, want one per input line: %d", len(rows), lines)
	}
	for i, r := range rows {
		if r[0] != strconv.Itoa(i+1) {
			t.Fatalf("row %d: LineId %q, want %d", i, r[0], i+1)
		}
		if len(r[1]) != 16 {
			t.Fatalf("row %d: EventId %q is not a 16-digit template id", i, r[1])
		}
	}
	return rows
}

// TestLogsParseGenerated parses a generated file whose truth is known: three
// kinds of message with variables, and lines without the header format.
func TestLogsParseGenerated(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "app.log")
	var b strings.Builder
	var kinds []string // truth: the message kind of each line
	want := map[string]string{
		"conn":  "Accepted connection from <*>:<*> in <*>",
		"disk":  "Disk <*> usage at <*> percent",
		"login": "User <*> logged in with session <*>",
		"raw":   "kernel panic - not syncing",
	}
	unmatched := 0
	for i := range 600 {
		ts := fmt.Sprintf("2026-11-21 10:%02d:%02d", i/60%60, i%60)
		switch i % 4 {
		case 0:
			fmt.Fprintf(&b, "%s INFO net.Listener: Accepted connection from 10.0.%d.%d:%d in %dms\n", ts, i%7, i%250, 1024+i, i%90+1)
			kinds = append(kinds, "conn")
		case 1:
			fmt.Fprintf(&b, "%s WARN disk.Monitor: Disk /dev/sd%c usage at %d percent\n", ts, 'a'+i%5, 50+i%50)
			kinds = append(kinds, "disk")
		case 2:
			fmt.Fprintf(&b, "%s INFO auth.Session: User 0x%x logged in with session %08x-aaaa-bbbb-cccc-%012d\n", ts, i*7919, i, i)
			kinds = append(kinds, "login")
		case 3:
			if i%8 == 3 {
				b.WriteString("kernel panic - not syncing\n") // no header
				unmatched++
				kinds = append(kinds, "raw")
			} else {
				fmt.Fprintf(&b, "%s INFO net.Listener: Accepted connection from 10.1.%d.%d:%d in %dms\n", ts, i%9, i%200, 2048+i, i%40+1)
				kinds = append(kinds, "conn")
			}
		}
	}
	if err := os.WriteFile(in, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "parsed.csv")
	var stderr bytes.Buffer
	err := logsMain(context.Background(), []string{"parse", "--input", in, "--format", "<Date> <Time> <Level> <Component>: <Content>", "--output", out}, &stderr, time.Now)
	if err != nil {
		t.Fatalf("logs parse: %v\nstderr: %s", err, stderr.String())
	}
	rows := readCSV(t, out, len(kinds))
	idOf := map[string]string{}
	for i, r := range rows {
		k := kinds[i]
		if r[2] != want[k] {
			t.Errorf("line %d (%s): template %q, want %q", i+1, k, r[2], want[k])
		}
		if id, seen := idOf[k]; seen && id != r[1] {
			t.Errorf("line %d (%s): EventId %s, earlier lines of the kind had %s", i+1, k, r[1], id)
		}
		idOf[k] = r[1]
	}
	if len(idOf) != 4 {
		t.Errorf("got %d kinds, want 4", len(idOf))
	}
	seen := map[string]string{}
	for k, id := range idOf {
		if other, dup := seen[id]; dup {
			t.Errorf("kinds %s and %s share EventId %s", k, other, id)
		}
		seen[id] = k
	}
	wantWarning := fmt.Sprintf("warning: %d of %d lines did not have the format", unmatched, len(kinds))
	if !strings.Contains(stderr.String(), wantWarning) {
		t.Errorf("stderr lacks %q:\n%s", wantWarning, stderr.String())
	}
	if strings.Contains(stderr.String(), "%)") {
		t.Errorf("a small file printed progress:\n%s", stderr.String())
	}
}

// TestLogsParseWholeLines: without --format the whole line is the message,
// so the header's variables (date, time) become <*> and nothing is unmatched.
func TestLogsParseWholeLines(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "a.log")
	content := "2026-11-21 10:00:01 job 17 done\n\n2026-11-21 10:00:02 job 18 done\n"
	if err := os.WriteFile(in, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "a.csv")
	var stderr bytes.Buffer
	if err := logsMain(context.Background(), []string{"parse", "-input", in, "-output", out}, &stderr, time.Now); err != nil {
		t.Fatal(err)
	}
	rows := readCSV(t, out, 3)
	if rows[0][2] != "<*> <*> job <*> done" || rows[2][1] != rows[0][1] {
		t.Errorf("rows %v", rows)
	}
	if strings.Contains(stderr.String(), "warning") {
		t.Errorf("unexpected warning: %s", stderr.String())
	}
}

// "-" reads standard input, as the other offline tools do.
func TestLogsParseStandardInput(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stdin := os.Stdin
	os.Stdin = r
	t.Cleanup(func() { os.Stdin = stdin; r.Close() })
	go func() {
		w.Write([]byte("2026-11-21 10:00:01 job 17 done\n2026-11-21 10:00:02 job 18 done\n"))
		w.Close()
	}()
	out := filepath.Join(t.TempDir(), "a.csv")
	if err := logsMain(context.Background(), []string{"parse", "-input", "-", "-output", out}, &bytes.Buffer{}, time.Now); err != nil {
		t.Fatal(err)
	}
	if rows := readCSV(t, out, 2); rows[0][2] != "<*> <*> job <*> done" {
		t.Errorf("rows %v", rows)
	}
}

// TestLogsParseProgress: with a clock that moves 3s per read, a file read in
// several chunks reports its progress.
func TestLogsParseProgress(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "big.log")
	line := strings.Repeat("x", 100) + " request 42 served\n"
	if err := os.WriteFile(in, []byte(strings.Repeat(line, 20000)), 0o600); err != nil {
		t.Fatal(err)
	}
	clock := time.Unix(0, 0)
	tick := func() time.Time { clock = clock.Add(3 * time.Second); return clock }
	var stderr bytes.Buffer
	if err := logsMain(context.Background(), []string{"parse", "--input", in, "--output", filepath.Join(dir, "big.csv")}, &stderr, tick); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stderr.String(), "% (") || !strings.Contains(stderr.String(), "100% (") {
		t.Errorf("no progress to 100%% on stderr:\n%s", stderr.String())
	}
}

// TestLogsParseBadInput: every mistake is named, and a failed run leaves no
// output file behind.
func TestLogsParseBadInput(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "ok.log")
	if err := os.WriteFile(in, []byte("hello\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out.csv")
	cases := []struct {
		name  string
		args  []string
		usage bool
		want  string
	}{
		{"no subcommand", nil, true, "no subcommand"},
		{"unknown subcommand", []string{"grep"}, true, `unknown subcommand "grep"`},
		{"no input", []string{"parse", "--output", out}, true, "--input is required"},
		{"no output", []string{"parse", "--input", in}, true, "--output is required"},
		{"missing file", []string{"parse", "--input", filepath.Join(dir, "nope.log"), "--output", out}, true, "no such file"},
		{"directory", []string{"parse", "--input", dir, "--output", out}, true, "is a directory"},
		{"format without content", []string{"parse", "--input", in, "--format", "<Date> <Time>", "--output", out}, true, "--format"},
		{"stray argument", []string{"parse", "--input", in, "--output", out, "extra"}, true, `unexpected argument "extra"`},
		{"max line bytes too small", []string{"parse", "--input", in, "--output", out, "--max-line-bytes", "8"}, true, "--max-line-bytes must be in [16,"},
		{"output dir missing", []string{"parse", "--input", in, "--output", filepath.Join(dir, "no", "out.csv")}, true, "--output"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var stderr bytes.Buffer
			err := logsMain(context.Background(), c.args, &stderr, time.Now)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error containing %q", err, c.want)
			}
			if got := errors.Is(err, service.ErrUsage); got != c.usage {
				t.Errorf("usage error %v, want %v (%v)", got, c.usage, err)
			}
			if _, err := os.Stat(out); !os.IsNotExist(err) {
				t.Errorf("output exists after a failed run: %v", err)
			}
		})
	}
}

// TestLogsParseHDFS parses the Loghub HDFS sample with its format and checks
// grouping accuracy against the ground truth.
func TestLogsParseHDFS(t *testing.T) {
	const floor = 0.998 // Drain's published GA on HDFS
	dir := filepath.Join("..", "..", "..", "shared", "data", "loghub-2k", "HDFS")
	if v := os.Getenv("AIOPS_SHARED_DATA"); v != "" {
		dir = filepath.Join(v, "loghub-2k", "HDFS")
	}
	in := filepath.Join(dir, "HDFS_2k.log")
	if _, err := os.Stat(in); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("Loghub sample missing under CI: %v", err)
		}
		t.Skipf("Loghub sample not available: %v", err)
	}
	out := filepath.Join(t.TempDir(), "hdfs.csv")
	var stderr bytes.Buffer
	if err := logsMain(context.Background(), []string{"parse", "--input", in, "--format", "<Date> <Time> <Pid> <Level> <Component>: <Content>", "--output", out}, &stderr, time.Now); err != nil {
		t.Fatal(err)
	}
	rows := readCSV(t, out, 2000)
	f, err := os.Open(filepath.Join(dir, "HDFS_2k.log_structured.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	truth, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	truth = truth[1:]
	if len(truth) != len(rows) {
		t.Fatalf("truth has %d rows, output %d", len(truth), len(rows))
	}
	// A line is grouped right when its predicted group and its true group
	// are the same set of lines: both groups and their overlap have one size.
	pred, real, both := map[string]int{}, map[string]int{}, map[[2]string]int{}
	for i := range rows {
		p, r := rows[i][1], truth[i][7]
		pred[p]++
		real[r]++
		both[[2]string{p, r}]++
	}
	correct := 0
	for i := range rows {
		p, r := rows[i][1], truth[i][7]
		if n := both[[2]string{p, r}]; n == pred[p] && n == real[r] {
			correct++
		}
	}
	ga := float64(correct) / float64(len(rows))
	t.Logf("HDFS GA %.4f, %d templates", ga, len(pred))
	if ga < floor {
		t.Errorf("grouping accuracy %.4f below the floor %.3f", ga, floor)
	}
	if strings.Contains(stderr.String(), "warning") {
		t.Errorf("HDFS lines all have the format, got: %s", stderr.String())
	}
}

// writeSystem writes one labelled system in the Loghub layout.
func writeSystem(t *testing.T, dir, name string, lines, ids, templates, corrected []string) {
	t.Helper()
	d := filepath.Join(dir, name)
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	base := filepath.Join(d, name+"_2k.log")
	if err := os.WriteFile(base, []byte(strings.Join(lines, "\r\n")+"\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	write := func(path string, tm []string) {
		var b bytes.Buffer
		w := csv.NewWriter(&b)
		_ = w.Write([]string{"LineId", "Content", "EventId", "EventTemplate"})
		for i := range lines {
			_ = w.Write([]string{strconv.Itoa(i + 1), lines[i], ids[i], tm[i]})
		}
		w.Flush()
		if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(base+"_structured.csv", templates)
	if corrected != nil {
		write(base+"_structured_corrected.csv", corrected)
	}
}

// evalRow finds a system's row in the eval table and returns its fields.
func evalRow(t *testing.T, table, first string) []string {
	t.Helper()
	for _, l := range strings.Split(table, "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == first {
			return f
		}
	}
	t.Fatalf("no row %q in\n%s", first, table)
	return nil
}

// logs eval scores each system against both truths, prints per-system rows
// and the means, and reports progress on stderr.
func TestLogsEval(t *testing.T) {
	dir := t.TempDir()
	// A: a header format; the original truth writes the close message
	// differently from what the miner (and the corrected truth) write, so
	// PA against the original is 0.5 and against the corrected 1.
	writeSystem(t, dir, "A",
		[]string{"INFO: open file 1", "INFO: close file 2", "INFO: open file 3", "WARN: close file 4"},
		[]string{"E1", "E2", "E1", "E2"},
		[]string{"open file <*>", "close <*>", "open file <*>", "close <*>"},
		[]string{"open file <*>", "close file <*>", "open file <*>", "close file <*>"})
	// B: no format, no corrected truth; two messages the miner groups
	// right and one it cannot know apart from the first
	writeSystem(t, dir, "B",
		[]string{"start job 1", "start job 2", "stop job 3"},
		[]string{"E1", "E1", "E2"},
		[]string{"start job <*>", "start job <*>", "stop job <*>"}, nil)
	formats := filepath.Join(dir, "formats.txt")
	if err := os.WriteFile(formats, []byte("# header formats\nA: <Level>: <Content>\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	err := logsEval(context.Background(), []string{dir, "--format-file", formats, "--tuning", "A"}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	out := stdout.String()
	a := evalRow(t, out, "A")
	// system set lines unmatched templates truth GA PA PA(original)
	if want := []string{"A", "tuning", "4", "0", "2", "2", "1.0000", "1.0000", "0.5000"}; strings.Join(a, " ") != strings.Join(want, " ") {
		t.Errorf("row A = %q, want %q", a, want)
	}
	b := evalRow(t, out, "B")
	if b[1] != "other" || b[6] != "1.0000" || !strings.Contains(strings.Join(b, " "), "(no corrected truth)") {
		t.Errorf("row B = %q", b)
	}
	for _, label := range []string{"tuning", "other", "all"} {
		found := false
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(l, "mean "+label) {
				found = true
			}
		}
		if !found {
			t.Errorf("no mean %s row:\n%s", label, out)
		}
	}
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == "mean" && f[1] == "all" {
			// GA 1 and 1; PA 1 and 1 (B's PA is against its only truth)
			if f[3] != "1.0000" || f[4] != "1.0000" || f[5] != "0.7500" {
				t.Errorf("mean all = %q", f)
			}
		}
	}
	if !strings.Contains(stderr.String(), "logs eval: A (1 of 2)") || !strings.Contains(stderr.String(), "B has no format") {
		t.Errorf("stderr:\n%s", stderr.String())
	}
}

func TestLogsEvalBadInput(t *testing.T) {
	dir := t.TempDir()
	writeSystem(t, dir, "A", []string{"x 1"}, []string{"E1"}, []string{"x <*>"}, nil)
	badFormat := filepath.Join(dir, "bad.txt")
	if err := os.WriteFile(badFormat, []byte("A: <Level> no content\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	notFormat := filepath.Join(dir, "prose.txt")
	if err := os.WriteFile(notFormat, []byte("this is prose\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		args  []string
		usage bool
		want  string
	}{
		{"no dir", nil, true, "DIR is required"},
		{"not a dir", []string{badFormat}, true, "is not a directory"},
		{"format without content", []string{dir, "--format-file", badFormat}, true, "line 1 (A)"},
		{"format file of prose", []string{dir, "--format-file", notFormat}, true, "want `System: format`"},
		{"missing system", []string{dir, "--systems", "Z"}, false, "want exactly one *.log"},
		{"two dirs", []string{dir, dir}, true, "unexpected argument"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := logsEval(context.Background(), c.args, &stdout, &stderr)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error containing %q", err, c.want)
			}
			if got := errors.Is(err, service.ErrUsage); got != c.usage {
				t.Errorf("usage error %v, want %v (%v)", got, c.usage, err)
			}
		})
	}
}

// --format auto detects the header and says which it chose.
func TestLogsParseDetectsHeader(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "app.log")
	var b strings.Builder
	for i := range 50 {
		fmt.Fprintf(&b, "I0102 10:00:%02d.%06d       1 controller.go:117] Synced %d endpoints for service default/web-%d\n", i%60, i, i*3, i%5)
	}
	if err := os.WriteFile(in, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "parsed.csv")
	var stderr bytes.Buffer
	if err := logsMain(context.Background(), []string{"parse", "--input", in, "--format", "auto", "--output", out}, &stderr, time.Now); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "header detected: klog (50 of the first 50 lines)") {
		t.Errorf("stderr:\n%s", stderr.String())
	}
	rows := readCSV(t, out, 50)
	for _, r := range rows {
		if r[2] != "Synced <*> endpoints for service default/web-<*>" {
			t.Fatalf("template %q", r[2])
		}
	}
}

// A log saved with a byte order mark mines its first line as the others
// (not as a template of its own), and a gzip-compressed log (logrotate's
// app.log.1.gz) is mined as the plain one, not as compressed bytes.
func TestLogsParseReadsBOMAndGzip(t *testing.T) {
	dir := t.TempDir()
	text := "user 1 logged in\nuser 2 logged in\nuser 3 logged in\n"
	bom, gz := bomAndGzip(t, dir, "app.log", text)
	for _, in := range []string{bom, gz} {
		out := in + ".csv"
		if err := logsMain(context.Background(), []string{"parse", "--input", in, "--output", out}, &bytes.Buffer{}, time.Now); err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		for _, r := range readCSV(t, out, 3) {
			if r[2] != "user <*> logged in" {
				t.Errorf("%s: row %v, want the template user <*> logged in", in, r)
			}
		}
	}
}

// Every file the command line names that cannot be used is a usage error
// (exit 2), checked before any work: an output in a missing folder, a
// format file that does not exist.
func TestLogsCommandsRefuseUnusablePaths(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "ok.log")
	os.WriteFile(in, []byte("hello\n"), 0o600)
	writeSystem(t, dir, "A", []string{"x 1"}, []string{"E1"}, []string{"x <*>"}, nil)
	for name, run := range map[string]func() error{
		"parse output in a missing folder": func() error {
			return logsMain(context.Background(), []string{"parse", "--input", in, "--output", filepath.Join(dir, "no", "out.csv")}, &bytes.Buffer{}, time.Now)
		},
		"eval format file missing": func() error {
			return logsEval(context.Background(), []string{dir, "--format-file", filepath.Join(dir, "nope.md")}, &bytes.Buffer{}, &bytes.Buffer{})
		},
	} {
		if err := run(); service.ExitCode(err) != 2 {
			t.Errorf("%s: %v (exit %d), want a usage error", name, err, service.ExitCode(err))
		}
	}
}

// TestLogsParseCutsLongLinesAsTheLogminer: `logs parse` mines a long
// line's content (after its header) on the first bytes the logminer
// mines, cut on a character boundary, so its template is the logminer's;
// a line longer than the reader's buffer too. The warning says how much of
// a line is mined.
func TestLogsParseCutsLongLinesAsTheLogminer(t *testing.T) {
	const format = "<Date> <Time> <Level> <Component>: <Content>"
	// "é" across the cut; the second content is longer than the reader's
	// 64 KiB buffer
	contents := []string{strings.Repeat("ab é ", 8<<10), strings.Repeat("cd é ", 20<<10)}
	var in strings.Builder
	for _, c := range contents {
		in.WriteString("081109 203615 INFO dfs.DataNode: " + c + "\n")
	}
	dir := t.TempDir()
	path, out := filepath.Join(dir, "long.log"), filepath.Join(dir, "long.csv")
	if err := os.WriteFile(path, []byte(in.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	if err := logsMain(context.Background(), []string{"parse", "--input", path, "--format", format, "--output", out}, &stderr, time.Now); err != nil {
		t.Fatal(err)
	}
	rows := readCSV(t, out, len(contents))
	cfg := logmine.DefaultConfig()
	cfg.MaxLineBytes = logminer.DefaultConfig().MaxLineBytes
	for i, c := range contents {
		m, err := logmine.New(cfg) // the logminer's miner, on the content
		if err != nil {
			t.Fatal(err)
		}
		if want := m.Match(c).Template; rows[i][2] != want {
			t.Errorf("line %d: template of %d bytes (...%q), the logminer's has %d (...%q)", i+1, len(rows[i][2]), rows[i][2][max(0, len(rows[i][2])-12):], len(want), want[max(0, len(want)-12):])
		}
	}
	if want := fmt.Sprintf("2 lines were mined on their first %d bytes", cfg.MaxLineBytes); !strings.Contains(stderr.String(), want) {
		t.Errorf("stderr %q, want it to say %q", stderr.String(), want)
	}
}
