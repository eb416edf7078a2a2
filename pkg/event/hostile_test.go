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

// A \u escape of a lone UTF-16 surrogate is valid JSON syntax but no
// character: encoding/json turns it into U+FFFD in the decoded fields while
// the raw body and unknown fields keep the escape, which ClickHouse's JSON
// functions read as invalid UTF-8. It is refused wherever it is, naming where.
func TestDecodeRefusesLoneSurrogates(t *testing.T) {
	const head = `{"kind":"log","service":"api","time":"2026-11-21T12:00:00Z"`
	for _, c := range []struct{ in, field string }{
		{`{"kind":"log","service":"a\ud800pi","time":"2026-11-21T12:00:00Z","body":{"message":"hi"}}`, "service"},
		{head + `,"labels":{"env":"\udc00"},"body":{"message":"hi"}}`, "labels.env"},
		{head + `,"body":{"message":"a\ud83dx"}}`, "body.message"},
		{head + `,"body":{"message":"hi","a":{"b":["x","\ud800\u0041"]}}}`, "body.a.b[1]"},
		{head + `,"body":{"message":"hi","trail":"\udbff"}}`, "body.trail"},
		{head + `,"x_extra":{"k":"\uDFFF"},"body":{"message":"hi"}}`, "x_extra.k"},
		{head + `,"labels":{"k\ud800":"v"},"body":{"message":"hi"}}`, `labels.k\ud800`},
		{head + `,"body":{"message":"\\\ud800"}}`, "body.message"},
		{head + `,"body":{"message":"\udc00\ud800"}}`, "body.message"},
	} {
		_, err := Decode([]byte(c.in), t0)
		wantProblem(t, err, c.field, "lone UTF-16 surrogate")
		_, err = Parse([]byte(c.in))
		wantProblem(t, err, c.field, "lone UTF-16 surrogate")
	}
	// A pair is one character, escaped or not; a backslash before "u" is text.
	for _, ok := range []string{
		head + `,"body":{"message":"\ud83d\ude00 \uD83D\uDE00 😀 \\ud800"}}`,
		head + `,"labels":{"k":"\\\ud83d\ude00"},"body":{"message":"\u00e9"}}`,
	} {
		e, err := Decode([]byte(ok), t0)
		if err != nil {
			t.Fatalf("%s refused: %v", ok, err)
		}
		if strings.ContainsRune(e.Labels["k"]+e.Service, '\uFFFD') {
			t.Fatalf("decoded with U+FFFD: %+v", e)
		}
	}
}

// A repeated key means the last value to encoding/json and the first to
// ClickHouse's JSON functions, in labels and deep in a body as much as at
// the top; it is refused at any depth.
func TestDecodeRefusesDuplicateKeysAtAnyDepth(t *testing.T) {
	const head = `{"kind":"log","service":"api","time":"2026-11-21T12:00:00Z"`
	for _, c := range []struct{ in, field string }{
		{head + `,"labels":{"env":"prod","env":"dev"},"body":{"message":"hi"}}`, "labels.env"},
		{head + `,"resource":{"host":"a","\u0068ost":"b"},"body":{"message":"hi"}}`, "resource.host"},
		{head + `,"body":{"message":"hi","attributes":{"user":"a","user":"b"}}}`, "body.attributes.user"},
		{head + `,"body":{"message":"hi","a":[{"x":1},{"y":1,"z":{},"y":2}]}}`, "body.a[1].y"},
		{head + `,"x_extra":{"k":1,"k":2},"body":{"message":"hi"}}`, "x_extra.k"},
	} {
		_, err := Decode([]byte(c.in), t0)
		wantProblem(t, err, c.field, "appears more than once")
		_, err = Parse([]byte(c.in))
		wantProblem(t, err, c.field, "appears more than once")
	}
	// Past the linear search of one object: 40 distinct keys in a nested
	// object are fine, one repeat is not, and sibling objects keep their own.
	var b strings.Builder
	b.WriteString(head + `,"body":{"message":"hi","a":{"x":{"k":1},"y":{"k":2}},"deep":{"n":0`)
	for i := range 40 {
		b.WriteString(`,"k` + strings.Repeat("x", i) + `":{"k":` + strings.Repeat("1", i+1) + `}`)
	}
	if _, err := Decode([]byte(b.String()+"}}}"), t0); err != nil {
		t.Fatalf("40 distinct keys refused: %v", err)
	}
	_, err := Decode([]byte(b.String()+`,"kxxx":2}}}`), t0)
	wantProblem(t, err, "body.deep.kxxx", "appears more than once")
}

// The writer stores schema_version as a UInt16: a larger one would be
// stored as another version.
func TestSchemaVersionFitsItsColumn(t *testing.T) {
	e := validLog()
	e.SchemaVersion = MaxSchemaVersion
	if err := e.Validate(); err != nil {
		t.Fatalf("schema_version %d refused: %v", MaxSchemaVersion, err)
	}
	e.SchemaVersion = MaxSchemaVersion + 1
	wantProblem(t, e.Validate(), "schema_version", "must be 1 to 65535, got 65536")
	_, err := Decode([]byte(`{"schema_version":70000,"kind":"log","service":"api","time":"2026-11-21T12:00:00Z","body":{"message":"x"}}`), t0)
	wantProblem(t, err, "schema_version", "must be 1 to 65535, got 70000")
}
