package logmine_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/aiops-dev/aiops/pkg/logmine"
)

func readSample(t *testing.T, name string) []string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "headers", name))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(raw), "\n"), "\n")
}

// Each hand-written sample is detected as its kind, every line splits,
// and the first line's message and level are what the kind defines.
func TestDetectHeader(t *testing.T) {
	cases := []struct {
		file         string
		kind         logmine.HeaderKind
		content      string // of the first line
		level        string
		lastContent  string
		lastSource   string
		wantAllLines bool
	}{
		{"rfc3164.log", logmine.HeaderRFC3164, "'su root' failed for lonvick on /dev/pts/8", "crit",
			"eth0: link up, 1000 Mbps, full duplex", "kernel", true},
		{"rfc5424.log", logmine.HeaderRFC5424, "An application event log entry", "notice",
			"Accepted publickey for deploy from 10.0.0.7 port 52211 ssh2", "sshd", true},
		{"json.log", logmine.HeaderJSON, "listening", "info", "slow query took 1532ms", "", true},
		{"logfmt.log", logmine.HeaderLogfmt, "request done method=GET path=/api/v1/items status=200 dur=12ms", "info",
			`crashed err="connection reset by peer"`, "", true},
		{"log4j.log", logmine.HeaderLog4j, "Application started in 3.2 seconds", "info",
			"Opened connection 7 to db-1:5432", "com.example.Db", true},
		{"access.log", logmine.HeaderAccess, "GET /apache_pb.gif HTTP/1.0 200", "info",
			"GET /health HTTP/1.1 503", "10.1.2.4", true},
		{"klog.log", logmine.HeaderKlog, "Starting EndpointSlice controller", "info",
			"error retrieving resource lock kube-system/kube-scheduler: context deadline exceeded", "leaderelection.go:330", true},
		{"none.log", logmine.HeaderNone, "Starting up", "",
			"Received block blk_-1608999687919862906 of size 91178 from /10.250.10.6", "", true},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			lines := readSample(t, c.file)
			d := logmine.DetectHeader(lines)
			if d.Kind != c.kind || d.Sampled != len(lines) {
				t.Fatalf("detected %+v, want %s over %d lines", d, c.kind, len(lines))
			}
			if c.kind != logmine.HeaderNone && d.Matched != len(lines) {
				t.Errorf("%d of %d lines split", d.Matched, len(lines))
			}
			h, ok := logmine.SplitHeader(d.Kind, lines[0])
			if !ok || h.Content != c.content || h.Level != c.level {
				t.Errorf("first line: %+v %v, want content %q level %q", h, ok, c.content, c.level)
			}
			h, ok = logmine.SplitHeader(d.Kind, lines[len(lines)-1])
			if !ok || h.Content != c.lastContent || h.Source != c.lastSource {
				t.Errorf("last line: %+v %v, want content %q source %q", h, ok, c.lastContent, c.lastSource)
			}
			// no other kind would have taken the whole sample: the choice
			// is not an accident of the preference order
			for _, k := range logmine.HeaderKinds() {
				if k == c.kind {
					continue
				}
				all := true
				for _, l := range lines {
					if _, ok := logmine.SplitHeader(k, l); !ok {
						all = false
					}
				}
				if all {
					t.Errorf("%s also splits every line", k)
				}
			}
		})
	}
}

// A few foreign lines do not change the choice; a sample that is mostly
// plain text is not given a header.
func TestDetectHeaderMajority(t *testing.T) {
	lines := append(readSample(t, "klog.log"), "panic: something", "")
	if d := logmine.DetectHeader(lines); d.Kind != logmine.HeaderKlog || d.Matched != 3 || d.Sampled != 4 {
		t.Errorf("klog with a stray line: %+v", d)
	}
	lines = append(readSample(t, "none.log"), readSample(t, "json.log")[0])
	if d := logmine.DetectHeader(lines); d.Kind != logmine.HeaderNone {
		t.Errorf("mostly plain: %+v", d)
	}
	if d := logmine.DetectHeader(nil); d.Kind != logmine.HeaderNone || d.Sampled != 0 {
		t.Errorf("empty sample: %+v", d)
	}
}

// Offline parsing with detection mines the messages, not the headers: the
// two access lines of one request type share a template.
func TestParseLinesDetectsHeader(t *testing.T) {
	lines := readSample(t, "rfc3164.log")
	parsed, st, err := logmine.ParseLines(lines, logmine.ParseOptions{Format: logmine.FormatAuto})
	if err != nil {
		t.Fatal(err)
	}
	if st.Header.Kind != logmine.HeaderRFC3164 || st.Unmatched != 0 {
		t.Fatalf("stats %+v", st)
	}
	if parsed[3].Template != "eth0: link up, <*> Mbps, full duplex" {
		t.Errorf("template %q", parsed[3].Template)
	}
	// ParseFile streams: it holds the first lines back until it decided
	var out bytes.Buffer
	st, err = logmine.ParseFile(strings.NewReader(strings.Join(lines, "\n")), &out, logmine.ParseOptions{Format: logmine.FormatAuto})
	if err != nil || st.Header.Kind != logmine.HeaderRFC3164 || st.Lines != len(lines) {
		t.Fatalf("ParseFile: %+v %v", st, err)
	}
	if !strings.Contains(out.String(), "eth0: link up, <*> Mbps, full duplex") {
		t.Errorf("ParseFile output:\n%s", out.String())
	}
}

// A logfmt value quoted with an escape that makes invalid UTF-8
// (msg="\xff") keeps its escaped text: unquoted, the message held a byte
// that every JSON encoding publishes as U+FFFD, so the template's id,
// hashed over the byte, was not the id of the text published.
func TestLogfmtValueOfInvalidUTF8KeepsItsEscape(t *testing.T) {
	line := `ts=2026-12-06T10:00:00Z level=error msg="bad byte \xff in request"`
	h, ok := logmine.SplitHeader(logmine.HeaderLogfmt, line)
	if !ok {
		t.Fatal("not split")
	}
	if !utf8.ValidString(h.Content) || !strings.Contains(h.Content, `\xff`) {
		t.Errorf("content %q: want valid UTF-8 keeping the escape", h.Content)
	}
	if h2, _ := logmine.SplitHeader(logmine.HeaderLogfmt, `ts=2026-12-06T10:00:00Z level=error msg="caf\u00e9 \"quoted\""`); !strings.Contains(h2.Content, `café "quoted"`) {
		t.Errorf("a valid escape is unquoted no more: %q", h2.Content)
	}
}

// A message ending in a stack trace (a log record's body of several
// lines) keeps its header: the content spans the lines, so its level is
// read and the miner takes the message's first line.
func TestHeaderOfAMessageOfSeveralLines(t *testing.T) {
	trace := "\n\tat com.example.Pool.get(Pool.java:88)\n\tat com.example.Handler.serve(Handler.java:41)"
	for _, c := range []struct {
		kind             logmine.HeaderKind
		line, level, msg string
	}{
		{logmine.HeaderLog4j, "2024-01-02 10:00:00,123 ERROR [main] com.example.Handler - request failed: pool closed", "error", "request failed: pool closed"},
		{logmine.HeaderLog4j, "2024-01-02 10:00:00.123 [main] ERROR com.example.Handler - request failed: pool closed", "error", "request failed: pool closed"},
		{logmine.HeaderKlog, "E0102 10:00:00.123456       1 handler.go:41] request failed: pool closed", "error", "request failed: pool closed"},
		{logmine.HeaderRFC3164, "<11>Jan  2 10:00:00 web-1 app[42]: request failed: pool closed", "err", "request failed: pool closed"},
		{logmine.HeaderRFC5424, "<11>1 2024-01-02T10:00:00Z web-1 app 42 - - request failed: pool closed", "err", "request failed: pool closed"},
	} {
		h, ok := logmine.SplitHeader(c.kind, c.line+trace)
		if !ok || h.Level != c.level || h.Content != c.msg+trace {
			t.Errorf("%s: %+v %v, want level %q and the message with its trace", c.kind, h, ok, c.level)
		}
	}
}
