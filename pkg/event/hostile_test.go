package event

import (
	"errors"
	"strings"
	"testing"

	"github.com/aiops-dev/aiops/pkg/errs"
)

// problemsOf asserts err is a permanent *ValidationError and returns its problems.
func problemsOfErr(t *testing.T, err error) []FieldError {
	t.Helper()
	if err == nil {
		t.Fatal("want an error, got nil")
	}
	if !errs.IsPermanent(err) {
		t.Fatalf("error is not permanent: %v", err)
	}
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("not a *ValidationError: %v", err)
	}
	return ve.Problems
}

func wantProblem(t *testing.T, err error, field, contains string) {
	t.Helper()
	for _, p := range problemsOfErr(t, err) {
		if p.Field == field && strings.Contains(p.Problem, contains) {
			return
		}
	}
	t.Fatalf("no problem on %q containing %q in %v", field, contains, err)
}

const okLog = `{"kind":"log","service":"api","time":"2026-11-21T12:00:00Z","body":{"message":"hi"}}`

func TestDecodeRefusesDeepNesting(t *testing.T) {
	deep := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	// At the limit (the envelope is one level) it decodes.
	ok := `{"kind":"log","service":"api","time":"2026-11-21T12:00:00Z","body":{"message":"hi","x":` + deep(MaxNesting-2) + `}}`
	if _, err := Decode([]byte(ok), t0); err != nil {
		t.Fatalf("nesting of %d refused: %v", MaxNesting, err)
	}
	for name, in := range map[string]string{
		"body":     `{"kind":"log","service":"api","time":"2026-11-21T12:00:00Z","body":{"message":"hi","x":` + deep(MaxNesting-1) + `}}`,
		"extra":    `{"kind":"log","service":"api","time":"2026-11-21T12:00:00Z","x":` + deep(200_000) + `}`,
		"brackets": deep(200_000),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Decode([]byte(in), t0)
			wantProblem(t, err, "", "nested more than 64 levels")
			_, err = Parse([]byte(in))
			wantProblem(t, err, "", "nested more than 64 levels")
		})
	}
	// Brackets inside strings are text, not nesting.
	inString := `{"kind":"log","service":"api","time":"2026-11-21T12:00:00Z","body":{"message":"` + strings.Repeat("[{\\\"", 200) + `"}}`
	if _, err := Decode([]byte(inString), t0); err != nil {
		t.Fatalf("brackets in a string counted as nesting: %v", err)
	}
}

func TestDecodeRefusesDuplicateKeys(t *testing.T) {
	for _, c := range []struct{ in, field string }{
		{`{"kind":"alert","kind":"log","service":"api","time":"2026-11-21T12:00:00Z","body":{"message":"hi"}}`, "kind"},
		{`{"kind":"log","service":"api","\u006bind":"log","time":"2026-11-21T12:00:00Z","body":{"message":"hi"}}`, "kind"},
		{`{"kind":"log","service":"api","x":1,"x":2,"time":"2026-11-21T12:00:00Z","body":{"message":"hi"}}`, "x"},
		{`{"kind":"log","service":"api","time":"2026-11-21T12:00:00Z","body":{"message":"hi","message":"bye"}}`, "body.message"},
	} {
		_, err := Decode([]byte(c.in), t0)
		wantProblem(t, err, c.field, "appears more than once")
		if _, err := Parse([]byte(c.in)); err == nil {
			t.Errorf("Parse accepted %s", c.in)
		}
	}
	// The same key at different depths, or in an array of objects, is fine.
	nested := `{"kind":"log","service":"api","time":"2026-11-21T12:00:00Z","labels":{"kind":"x"},"body":{"message":"hi","a":[{"message":1},{"message":2}]}}`
	if _, err := Decode([]byte(nested), t0); err != nil {
		t.Fatalf("keys repeated at other depths refused: %v", err)
	}
	// Many distinct keys (past the linear search) are fine, one repeat is not.
	var b strings.Builder
	b.WriteString(`{"kind":"log","service":"api","time":"2026-11-21T12:00:00Z","body":{"message":"hi"`)
	for i := range 40 {
		b.WriteString(`,"k` + strings.Repeat("x", i) + `":1`)
	}
	if _, err := Decode([]byte(b.String()+"}}"), t0); err != nil {
		t.Fatalf("40 distinct keys refused: %v", err)
	}
	_, err := Decode([]byte(b.String()+`,"kxxx":2}}`), t0)
	wantProblem(t, err, "body.kxxx", "appears more than once")
}

func TestDecodeRefusesInvalidUTF8(t *testing.T) {
	in := []byte(`{"kind":"log","service":"ap` + "\xff" + `i","time":"2026-11-21T12:00:00Z","body":{"message":"hi"}}`)
	_, err := Decode(in, t0)
	wantProblem(t, err, "", "not valid UTF-8 (at byte 27)")
	in = []byte(`{"kind":"log","service":"api","time":"2026-11-21T12:00:00Z","body":{"message":"h` + "\xc3" + `"}}`)
	_, err = Decode(in, t0)
	wantProblem(t, err, "", "not valid UTF-8")
	if _, err := Decode([]byte(okLog), t0); err != nil {
		t.Fatal(err)
	}
}

func TestNumberOutOfRangeIsNamed(t *testing.T) {
	in := `{"kind":"metric","service":"api","time":"2026-11-21T12:00:00Z","body":{"name":"x","value":1e400}}`
	_, err := Decode([]byte(in), t0)
	wantProblem(t, err, "body.value", "is 1e400, out of the range of a 64-bit float")
	in = `{"schema_version":1.5,"kind":"log","service":"api","time":"2026-11-21T12:00:00Z","body":{"message":"x"}}`
	_, err = Decode([]byte(in), t0)
	wantProblem(t, err, "schema_version", "not an integer")
}

func BenchmarkCheckJSONNesting(b *testing.B) {
	data := []byte(okLog)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if CheckJSONNesting(data) != nil {
			b.Fatal("refused")
		}
	}
}

func TestJSONStringLenIsWhatAppendStringWrites(t *testing.T) {
	for _, s := range []string{"", "plain", "quote\" back\\ nl\n cr\r tab\t", "\x01\x1f\x7f", "bad \xff\xfe utf8", "\u2028\u2029", "é ü 日本 🎉", strings.Repeat("\x00", 100)} {
		if got, want := jsonStringLen(s), len(appendString(nil, s)); got != want {
			t.Errorf("%q: jsonStringLen %d, appendString wrote %d", s, got, want)
		}
	}
}

func TestCheckFits(t *testing.T) {
	e := validLog()
	if err := e.CheckFits(); err != nil {
		t.Fatal(err)
	}
	big := validLog()
	big.Body = []byte(`{"message":"` + strings.Repeat("\\u0001", MaxLogMessageBytes/6+1) + `"}`)
	if err := big.Validate(); err != nil {
		t.Fatal(err)
	}
	wantProblem(t, big.CheckFits(), "body.message", "over the limit of 65536")
	wide := validLog()
	wide.Labels = map[string]string{}
	for i := range 127 {
		wide.Labels[strings.Repeat("k", 3)+string(rune('a'+i%26))+strings.Repeat("x", i/26)] = strings.Repeat("v", 4096)
	}
	wide.Resource = wide.Labels // each within Validate's limits, together 1 MB
	if err := wide.Validate(); err != nil {
		t.Fatal(err)
	}
	wantProblem(t, wide.CheckFits(), "", "over the limit of 524288")
}

// Past MaxLinks the links are refused as a whole, not one by one: a 1 MiB
// envelope holds 250,000 links of `"x",`, whose problems took twenty times
// the time of decoding the envelope and made a 10 MB error.
func TestTooManyLinksIsOneProblem(t *testing.T) {
	e := validLog()
	e.Links = make([]string, MaxLinks+1)
	for i := range e.Links {
		e.Links[i] = "x"
	}
	problems := problemsOfErr(t, e.Validate())
	if len(problems) != 1 || problems[0].Field != "links" || !strings.Contains(problems[0].Problem, "over the limit of 1024") {
		t.Fatalf("%d problems, want the one on links: %v", len(problems), problems[:min(len(problems), 3)])
	}
	e.Links = e.Links[:MaxLinks]
	if n := len(problemsOfErr(t, e.Validate())); n != MaxLinks {
		t.Fatalf("%d problems for %d bad links within the limit, want one each", n, MaxLinks)
	}
}
