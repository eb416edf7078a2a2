package logminer

import (
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/pkg/logmine"
	"github.com/aiops-dev/aiops/pkg/stage/stagetest"
)

// longLine returns a message of at least size bytes: words of wordLen
// random letters after a first word that tells lines apart.
func longLine(r *rand.Rand, first string, wordLen, size int) string {
	var b strings.Builder
	b.WriteString(first)
	for b.Len() < size {
		b.WriteByte(' ')
		for range wordLen {
			b.WriteByte(byte('a' + r.IntN(26)))
		}
	}
	return b.String()
}

// A message longer than max_line_bytes is mined on its first
// max_line_bytes: its template and parameters cover that prefix, its
// templated copy keeps the whole message. So a template is bounded in
// bytes too: templates of the longest lines that take the most memory
// (one-letter words, 17 bytes a token besides the text) hold at most
// about ten times the default prefix, not ten times the line.
func TestLongLinesMinedOnAPrefix(t *testing.T) {
	l := newTestLogminer(t, Config{})
	if got := l.Miner().Config().MaxLineBytes; got != DefaultMaxLineBytes {
		t.Fatalf("the miner mines %d bytes of a line, want the default %d", got, DefaultMaxLineBytes)
	}
	h := startHarness(t, l)
	r := rand.New(rand.NewPCG(3, 4))
	msg := longLine(r, "start", 7, 200<<10)
	feedOK(t, h, rawEvent(t, "api", msg, event.SeverityInfo))
	var body event.LogBody
	if err := decode(t, h.Pub.Messages()[0]).DecodeBody(&body); err != nil {
		t.Fatal(err)
	}
	if body.Message != msg {
		t.Fatalf("the templated copy holds %d bytes of the %d-byte message", len(body.Message), len(msg))
	}
	if n := len(body.Template); n > DefaultMaxLineBytes || !strings.HasPrefix(msg, body.Template) {
		t.Fatalf("template of %d bytes, want the message's first %d at most", n, DefaultMaxLineBytes)
	}
	if st := l.Miner().Stats(); st.Truncated != 1 {
		t.Fatalf("stats %+v: want the line counted as truncated", st)
	}

	m, err := logmine.New(l.Miner().Config()) // the service's miner, alone
	if err != nil {
		t.Fatal(err)
	}
	const n = 50
	lines := make([]string, n)
	for i := range lines {
		lines[i] = longLine(r, "w"+string(rune('a'+i%26))+string(rune('a'+i/26)), 1, 200<<10)
	}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for _, line := range lines {
		m.Match(line)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := (int64(after.HeapAlloc) - int64(before.HeapAlloc)) / int64(m.Stats().Templates)
	t.Logf("%d templates of 200 KiB lines of one-letter words: %d KiB heap each", m.Stats().Templates, per>>10)
	if m.Stats().Templates != n || per > 200<<10 {
		t.Errorf("%d templates of %d KiB each: want %d of at most 200 KiB", m.Stats().Templates, per>>10, n)
	}
	runtime.KeepAlive(lines)
	runtime.KeepAlive(m)
}

// A raw log whose templated copy may pass the body limit (a producer that
// publishes to NATS directly is not held to the gateway's limit on the
// message) is dead-lettered before it is mined: the miner holds no
// template of it, and no count, sample, burst or template event names it.
func TestOversizedCopyRefusedBeforeMining(t *testing.T) {
	l := newTestLogminer(t, Config{})
	h := startHarness(t, l)
	// dense values: a long template and many parameters
	for _, msg := range []string{strings.Repeat("1,", 245_000)} {
		raw := rawEvent(t, "api", msg, event.SeverityError)
		if n := len(raw.Body); n > event.MaxBodyBytes {
			t.Fatalf("the raw body is %d bytes: not a valid raw log", n)
		}
		res := h.Feed(raw)[0]
		if res.Outcome != stagetest.DeadLettered || !strings.Contains(res.Err.Error(), "templated copy") {
			t.Fatalf("%d-byte message: %v (%v), want dead-lettered because its copy may not fit", len(msg), res.Outcome, res.Err)
		}
	}
	if err := h.Tick(testNow.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	st := l.Miner().Stats()
	held, _, _ := l.counts.stats()
	if st.Lines != 0 || st.Templates != 0 || held != 0 || len(h.Pub.Messages()) != 0 {
		t.Fatalf("refused lines left a trace: miner %+v, %d series, %d messages published", st, held, len(h.Pub.Messages()))
	}
}

// copyBound holds: the templated body of lines built to make the template
// and the parameters as long as possible (one-byte values, empty "key="
// values, escapes, separators of one byte) is never over it, with the
// prefix cut at max_line_bytes or not.
func TestCopyBoundHolds(t *testing.T) {
	units := []string{"1 ", "1,", "1.", "1:", "\x01 \"1 ", "word ", "10.0.0.1 ", "k= ", "k=1 ", "a=b,c=d ", "<*> ", "é1 ", "\u2028 ", "0x1f ", "blk_1 ", "/a/1 ", "x1 ", "[1] ", "\t1\t", "1  "}
	r := rand.New(rand.NewPCG(5, 6))
	alphabet := []byte("0123456789abz=:,.;/-_<>*\"\\ \t\x01")
	var msgs []string
	for _, u := range units {
		msgs = append(msgs, strings.Repeat(u, 2000/len(u)), strings.Repeat(u, (20<<10)/len(u)+1))
	}
	for range 200 {
		b := make([]byte, 50+r.IntN(3000))
		for i := range b {
			b[i] = alphabet[r.IntN(len(alphabet))]
		}
		msgs = append(msgs, string(b))
	}
	// every message the gateway accepts passes the bound at the default,
	// and at the largest max_line_bytes the configuration takes
	for _, maxLine := range []int{DefaultMaxLineBytes, MaxMaxLineBytes} {
		for _, u := range units {
			unitJSON := event.JSONStringLen(u) - 2
			msg := strings.Repeat(u, (event.MaxLogMessageBytes-2)/unitJSON)
			if b := copyBound(&event.LogBody{Message: msg}, msg, maxLine); b > event.MaxBodyBytes {
				t.Errorf("max_line_bytes %d: a message of %d bytes as JSON (%q repeated), accepted by the gateway, is refused: bound %d", maxLine, event.JSONStringLen(msg), u, b)
			}
		}
	}
	for _, maxLine := range []int{DefaultMaxLineBytes, 1024} {
		l := newTestLogminer(t, Config{MaxLineBytes: maxLine})
		h := startHarness(t, l)
		worst := 0.0
		for _, msg := range msgs {
			raw := rawEvent(t, "api", msg, event.SeverityInfo)
			var body event.LogBody
			if err := raw.DecodeBody(&body); err != nil {
				t.Fatal(err)
			}
			bound := copyBound(&body, body.Message, maxLine)
			before := len(h.Pub.Messages())
			feedOK(t, h, raw)
			copied := decode(t, h.Pub.Messages()[before])
			if len(copied.Body) > bound {
				t.Fatalf("max_line_bytes %d: a %d-byte message %.40q makes a body of %d bytes, over its bound %d", maxLine, len(msg), msg, len(copied.Body), bound)
			}
			base := copyBoundOverhead + event.JSONStringLen(body.Message)
			worst = max(worst, float64(len(copied.Body)-base)/float64(bound-base))
		}
		t.Logf("max_line_bytes %d: the template and parameters take at most %.2f of what the bound allows them", maxLine, worst)
	}
}

// The logminer and `aiops logs parse` (logmine.ParseLines, with its
// default options and with the logminer's max_line_bytes) cut a long
// message the same way: after its header, on a character boundary, at
// the same length; so the same line has the same template live and
// offline. Lines of a header format and of detected JSON lines, a
// two-byte character across the cut.
func TestLongLineSameTemplateLiveAndOffline(t *testing.T) {
	const format = "<Date> <Time> <Level> <Component>: <Content>"
	// "ab é " is 6 bytes: a cut at 16,384 bytes of the content falls
	// inside an "é"
	words := strings.Repeat("ab é ", 8<<10)
	for _, c := range []struct {
		name, format, line string
	}{
		{"format", format, "081109 203615 INFO dfs.DataNode: " + words},
		{"json", logmine.FormatAuto, `{"level":"info","msg":"` + words + `"}`},
	} {
		l := newTestLogminer(t, Config{Formats: map[string]string{"svc": c.format}})
		h := startHarness(t, l)
		feedOK(t, h, rawEvent(t, "svc", c.line, event.SeverityInfo))
		var live event.LogBody
		if err := decode(t, h.Pub.Messages()[0]).DecodeBody(&live); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(live.Template, "ab é ab é") {
			t.Fatalf("%s: live template %.40q: not mined on the content", c.name, live.Template)
		}
		for _, opts := range []logmine.ParseOptions{{Format: c.format}, {Format: c.format, MaxLineBytes: l.cfg.MaxLineBytes}} {
			parsed, _, err := logmine.ParseLines([]string{c.line}, opts)
			if err != nil {
				t.Fatal(err)
			}
			if got := parsed[0].Template; got != live.Template {
				t.Errorf("%s, max line bytes %d: offline template of %d bytes (%.40q...%q), live one of %d bytes (...%q)", c.name, opts.MaxLineBytes,
					len(got), got, got[max(0, len(got)-12):], len(live.Template), live.Template[max(0, len(live.Template)-12):])
			}
		}
	}
}
