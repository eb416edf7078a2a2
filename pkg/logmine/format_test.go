package logmine_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/aiops-dev/aiops/pkg/errs"
	"github.com/aiops-dev/aiops/pkg/logmine"
	"github.com/aiops-dev/aiops/pkg/logmine/internal/loghub"
)

// The header formats of the shared Loghub samples (their FORMATS.md), so
// these tests run without the data.
var loghubFormats = map[string]string{
	"HDFS":      `<Date> <Time> <Pid> <Level> <Component>: <Content>`,
	"Apache":    `\[<Time>\] \[<Level>\] <Content>`,
	"OpenSSH":   `<Date> <Day> <Time> <Component> sshd\[<Pid>\]: <Content>`,
	"Zookeeper": `<Date> <Time> - <Level>  \[<Node>:<Component>@<Id>\] - <Content>`,
}

func TestFormatParse(t *testing.T) {
	cases := []struct {
		format, line string
		want         []string
	}{
		{loghubFormats["HDFS"],
			"081109 203615 148 INFO dfs.DataNode$PacketResponder: PacketResponder 1 for block blk_38865049064139660 terminating",
			[]string{"081109", "203615", "148", "INFO", "dfs.DataNode$PacketResponder", "PacketResponder 1 for block blk_38865049064139660 terminating"}},
		{loghubFormats["Apache"],
			"[Sun Dec 04 04:47:44 2005] [notice] workerEnv.init() ok /etc/httpd/conf/workers2.properties",
			[]string{"Sun Dec 04 04:47:44 2005", "notice", "workerEnv.init() ok /etc/httpd/conf/workers2.properties"}},
		{loghubFormats["OpenSSH"],
			"Dec 10 06:55:46 LabSZ sshd[24200]: Invalid user webmaster from 173.234.31.186",
			[]string{"Dec", "10", "06:55:46", "LabSZ", "24200", "Invalid user webmaster from 173.234.31.186"}},
		{loghubFormats["Zookeeper"],
			"2015-07-29 17:41:44,747 - INFO  [QuorumPeer[myid=1]/0:0:0:0:0:0:0:0:2181:FastLeaderElection@774] - Notification time out: 3200",
			[]string{"2015-07-29", "17:41:44,747", "INFO", "QuorumPeer[myid=1]/0", "0:0:0:0:0:0:0:2181:FastLeaderElection", "774", "Notification time out: 3200"}},
		// a space in the format matches any run of whitespace
		{"<Level> <Content>", "WARN \t  disk  full", []string{"WARN", "disk  full"}},
		// a literal suffix after the last field
		{"<Content> <End>;", "a b c end;", []string{"a", "b c end"}},
		// empty content
		{"<Level>: <Content>", "INFO: ", []string{"INFO", ""}},
	}
	for _, c := range cases {
		f, err := logmine.CompileFormat(c.format)
		if err != nil {
			t.Fatalf("%q: %v", c.format, err)
		}
		got, ok := f.Parse(c.line, nil)
		if !ok || !slices.Equal(got, c.want) {
			t.Errorf("%q on %q: %q %v, want %q", c.format, c.line, got, ok, c.want)
		}
		if content, ok := f.Content(c.line); !ok || content != c.want[f.ContentIndex()] {
			t.Errorf("Content = %q %v", content, ok)
		}
	}
}

func TestFormatNoMatch(t *testing.T) {
	f, err := logmine.CompileFormat(loghubFormats["OpenSSH"])
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{
		"",
		"Dec 10 06:55:46 LabSZ",
		"Dec 10 06:55:46 LabSZ cron[1]: job",    // literal "sshd[" missing
		"Dec 10 06:55:46 LabSZ sshd[24200 oops", // "]: " missing
	} {
		if v, ok := f.Parse(line, nil); ok {
			t.Errorf("%q matched as %q", line, v)
		}
	}
	if got := f.Fields(); !slices.Equal(got, []string{"Date", "Day", "Time", "Component", "Pid", "Content"}) {
		t.Errorf("Fields = %q", got)
	}
}

// Every line of the eight real samples parses with its system's format
// (from FORMATS.md) and gives the Content the labelled data has.
func TestFormatOnLoghub(t *testing.T) {
	dir := loghub.Require(t)
	for _, sys := range loghub.All {
		ds, err := loghub.Load(dir, sys)
		if err != nil {
			t.Fatal(err)
		}
		f, err := logmine.CompileFormat(ds.Format)
		if err != nil {
			t.Fatal(err)
		}
		for i, l := range ds.Lines {
			c, ok := f.Content(l)
			// the labelled data strips trailing blanks, as the miner does
			if !ok || strings.TrimRight(c, " ") != ds.Contents[i] {
				t.Fatalf("%s line %d: %q %v, want %q", sys, i+1, c, ok, ds.Contents[i])
			}
		}
	}
}

func TestCompileFormatErrors(t *testing.T) {
	for _, spec := range []string{
		"", "   ", "<Date> <Time>", "<Content", "<Con tent>", "<A><Content>", "<Content> <Content>", `<Content>\`,
		"no fields",
	} {
		_, err := logmine.CompileFormat(spec)
		if !errors.Is(err, logmine.ErrInvalidFormat) || !errs.IsPermanent(err) {
			t.Errorf("CompileFormat(%q) = %v, want a permanent ErrInvalidFormat", spec, err)
		}
	}
}

// The notation of the logparser benchmark: optional groups, escaped
// brackets, regular-expression fragments, fields that hold spaces.
func TestFormatBenchmarkNotation(t *testing.T) {
	cases := []struct {
		name, format, line string
		want               []string // nil: the line must not match
	}{
		{"optional group present", `<Date> <Time> <Host> <Component>(\[<PID>\])?: <Content>`,
			"2024-01-02 10:00:00 web-1 cron[123]: job 7 started",
			[]string{"2024-01-02", "10:00:00", "web-1", "cron", "123", "job 7 started"}},
		{"optional group absent", `<Date> <Time> <Host> <Component>(\[<PID>\])?: <Content>`,
			"2024-01-02 10:00:00 web-1 kernel: eth0 link up",
			[]string{"2024-01-02", "10:00:00", "web-1", "kernel", "", "eth0 link up"}},
		{"escaped brackets", `\[<Time>\] \[<Level>\] <Content>`,
			"[Mon Jan 01 10:00:00 2024] [error] [client 10.0.0.1] File does not exist: /x",
			[]string{"Mon Jan 01 10:00:00 2024", "error", "[client 10.0.0.1] File does not exist: /x"}},
		{"field with spaces ends where the next text says", `\[<Time>\] <Program> - <Content>`,
			"[10.30 16:49:06] chrome.exe - proxy.example.com:5070 open through proxy",
			[]string{"10.30 16:49:06", "chrome.exe", "proxy.example.com:5070 open through proxy"}},
		{"regular-expression class between fields", `<Level>\d+ <Content>`,
			"WARN42 disk full", []string{"WARN", "disk full"}},
		// an unescaped '.' is any character, and the lazy <Date> takes
		// none: what Python's re gives for the benchmark's expression
		{"dot is any character, as in the benchmark", `<Date>.<Time> <Content>`,
			"2024-01-02T10:00:00 started", []string{"", "024-01-02T10:00:00", "started"}},
		{"escaped dot is a dot", `<Date>\.<Time> <Content>`,
			"2024.01 started", []string{"2024", "01", "started"}},
		{"a tab is a literal tab, only spaces become \\s+", "<Level>\t<Content>",
			"INFO\tstarted", []string{"INFO", "started"}},
		// a message ending in a stack trace keeps its header: the
		// content spans lines
		{"content of several lines, by the expression", `<Date> <Time> <Level> <Component>(\[<PID>\])?: <Content>`,
			"2024-01-02 10:00:00 ERROR web[7]: request failed\n\tat a.B.c(B.java:12)",
			[]string{"2024-01-02", "10:00:00", "ERROR", "web", "7", "request failed\n\tat a.B.c(B.java:12)"}},
		{"content of several lines, by the scanner", `<Date> <Time> <Level> <Component>: <Content>`,
			"2024-01-02 10:00:00 ERROR web: request failed\n\tat a.B.c(B.java:12)",
			[]string{"2024-01-02", "10:00:00", "ERROR", "web", "request failed\n\tat a.B.c(B.java:12)"}},
		{"non-matching line", `\[<Time>\] \[<Level>\] <Content>`,
			"plain text without a header", nil},
		{"optional group cannot save a missing literal", `<Component>(\[<PID>\])?: <Content>`,
			"kernel eth0 link up", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := logmine.CompileFormat(c.format)
			if err != nil {
				t.Fatal(err)
			}
			got, ok := f.Parse(c.line, nil)
			if c.want == nil {
				if ok {
					t.Fatalf("%q matched %q as %q", c.format, c.line, got)
				}
				return
			}
			if !ok || !slices.Equal(got, c.want) {
				t.Fatalf("%q on %q: %q %v, want %q", c.format, c.line, got, ok, c.want)
			}
		})
	}
}

// A line without the format is mined as a whole line, counted, never
// dropped.
func TestFormatUnmatchedLinesMinedWhole(t *testing.T) {
	lines := []string{
		"2024-01-02 10:00:00 INFO api: request 1 done",
		"2024-01-02 10:00:01 INFO api: request 2 done",
		"panic: runtime error: index out of range",
		"2024-01-02 10:00:02 INFO api: request 3 done",
	}
	parsed, st, err := logmine.ParseLines(lines, logmine.ParseOptions{Format: "<Date> <Time> <Level> <Component>: <Content>"})
	if err != nil {
		t.Fatal(err)
	}
	if st.Lines != 4 || st.Unmatched != 1 || len(parsed) != 4 {
		t.Fatalf("stats %+v, %d parsed; want 4 lines, 1 unmatched", st, len(parsed))
	}
	if parsed[2].Template != "panic: runtime error: index out of range" {
		t.Errorf("unmatched line mined as %q, want the whole line", parsed[2].Template)
	}
	if parsed[0].Template != "request <*> done" || parsed[0].ID != parsed[3].ID {
		t.Errorf("matched lines: %q / %q", parsed[0].Template, parsed[3].Template)
	}
}

func TestCompileFormatRegexpErrors(t *testing.T) {
	for _, spec := range []string{`(<Level> <Content>`, `<Level>[ <Content>`, strings.Repeat("x", logmine.MaxFormatBytes) + "<Content>"} {
		_, err := logmine.CompileFormat(spec)
		if !errors.Is(err, logmine.ErrInvalidFormat) {
			t.Errorf("CompileFormat(%.40q) = %v, want ErrInvalidFormat", spec, err)
		}
	}
}
