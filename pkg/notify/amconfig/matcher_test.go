package amconfig

import (
	"errors"
	"strings"
	"testing"
)

func TestParseMatchers(t *testing.T) {
	for _, c := range []struct {
		in   string
		want string // Matchers.String of the result
	}{
		{`a=b`, `{a="b"}`},
		{`{a="b"}`, `{a="b"}`},
		{`a = b , c!=d`, `{a="b",c!="d"}`},
		{`a=~"x,y", b!~z`, `{a=~"x,y",b!~"z"}`},
		{`msg="say \"hi\""`, `{msg="say \"hi\""}`},
		{`path="C:\\temp"`, `{path="C:\\temp"}`},
		{`v="tab\tkept"`, `{v="tab\\tkept"}`},
		{`v="line\nbreak"`, `{v="line\nbreak"}`},
		{`v=trailing\`, `{v="trailing\\"}`},
		{`v=  spaced value  `, `{v="spaced value"}`},
		{`v=""`, `{v=""}`},
		{`v=`, `{v=""}`},
		{`job:rate5m=~"0"`, `{job:rate5m=~"0"}`},
		{`a=b,`, `{a="b"}`},
		{`v="ü😀"`, `{v="ü😀"}`},
		{`a==b`, `{a="=b"}`},
		{`a=~~b`, `{a=~"~b"}`},
	} {
		ms, err := ParseMatchers(c.in)
		if err != nil {
			t.Errorf("ParseMatchers(%q): %v", c.in, err)
			continue
		}
		if got := ms.String(); got != c.want {
			t.Errorf("ParseMatchers(%q) = %s, want %s", c.in, got, c.want)
		}
	}
	for _, in := range []string{
		`a`, `=b`, `,a=b`, `a=b,,c=d`, `a="b`, `a=b"`, `a="b"c"`, `a=~"("`, `a!~"[z-a]"`,
	} {
		if ms, err := ParseMatchers(in); err == nil {
			t.Errorf("ParseMatchers(%q) = %s, want an error", in, ms)
		}
	}
}

func TestParseMatcherInvalidUTF8(t *testing.T) {
	if _, err := ParseMatcher("a=\xff"); err == nil {
		t.Error("ParseMatcher accepted invalid UTF-8")
	}
	// ParseMatchers reads its input rune by rune, which turns an invalid
	// byte into U+FFFD before ParseMatcher sees it (as in Alertmanager).
	if ms, err := ParseMatchers("a=\xff"); err != nil || ms[0].Value != "\uFFFD" {
		t.Errorf("ParseMatchers = %v, %v", ms, err)
	}
}

func TestMatcherMatches(t *testing.T) {
	m := func(s string) *Matcher {
		t.Helper()
		x, err := ParseMatcher(s)
		if err != nil {
			t.Fatal(err)
		}
		return x
	}
	for _, c := range []struct {
		matcher string
		value   string
		want    bool
	}{
		{`a=b`, "b", true},
		{`a=b`, "bb", false},
		{`a!=b`, "", true},
		{`a=""`, "", true},
		{`a!=""`, "", false},
		{`a=~"b|c"`, "c", true},
		{`a=~"b|c"`, "bc", false}, // anchored at both ends
		{`a=~"b"`, "abc", false},
		{`a=~"^b$"`, "b", true},
		{`a=~".*"`, "", true},
		{`a=~".+"`, "", false},
		{`a!~".+"`, "", true},
		{`a!~"b.*"`, "bx", false},
		{`a!~"b.*"`, "xb", true},
		{`a=~"(?i)disk"`, "DISK", true},
		{`a=~"x|"`, "", true},
	} {
		if got := m(c.matcher).Matches(c.value); got != c.want {
			t.Errorf("%s matches %q = %v, want %v", c.matcher, c.value, got, c.want)
		}
	}
	ms := Matchers{m(`a=b`), m(`c!~"x"`)}
	if !ms.Matches(map[string]string{"a": "b"}) || ms.Matches(map[string]string{"a": "b", "c": "x"}) || ms.Matches(nil) {
		t.Error("Matchers.Matches")
	}
	if !(Matchers{}).Matches(nil) {
		t.Error("no matchers match everything")
	}
}

func TestParseLabels(t *testing.T) {
	ls, err := ParseLabels([]string{`a=b`, `c="d,e \"f\""`, `g=`, `h = i `})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"a": "b", "c": `d,e "f"`, "g": "", "h": "i"}
	if len(ls) != len(want) {
		t.Fatalf("got %v", ls)
	}
	for k, v := range want {
		if ls[k] != v {
			t.Errorf("%s = %q, want %q", k, ls[k], v)
		}
	}
	for _, bad := range []string{`a!=b`, `a=~b`, `a`} {
		if _, err := ParseLabels([]string{bad}); err == nil {
			t.Errorf("ParseLabels(%q): no error", bad)
		}
	}
}

// Labels whose names are not classic Prometheus names (OpenTelemetry's
// otel.scope.name, k8s.pod.name, ...) are matched as Alertmanager 0.27 and
// later read them: a name the classic parser refuses is read by the UTF-8
// grammar, where it is a double-quoted Go string or an unquoted literal
// without reserved characters. String writes a name with a reserved
// character quoted, as Alertmanager does.
func TestParseMatchersUTF8Names(t *testing.T) {
	for _, c := range []struct {
		in   string
		name string // of the first matcher
		want string // Matchers.String of the result
	}{
		{`{"otel.scope.name"="checkout"}`, "otel.scope.name", `{otel.scope.name="checkout"}`},
		{`"service.namespace"=~"shop.*"`, "service.namespace", `{service.namespace=~"shop.*"}`},
		{`otel.scope.name=checkout`, "otel.scope.name", `{otel.scope.name="checkout"}`},
		{`"k8s.pod.name" != "web-0", team=db`, "k8s.pod.name", `{k8s.pod.name!="web-0",team="db"}`},
		{`{"a.b"="x",}`, "a.b", `{a.b="x"}`},
		{`"service name"="say \"hi\""`, "service name", `{"service name"="say \"hi\""}`},
		{`"a\\b"="c"`, `a\b`, `{"a\\b"="c"}`},
		{`"\u00e9t\u00e9"="😀"`, "été", `{été="😀"}`},
		{`"x.y"=~"\\d+"`, "x.y", `{x.y=~"\\d+"}`},
		{`{ "a,b" = "c" , "d}" !~ "e" }`, "a,b", `{"a,b"="c","d}"!~"e"}`},
		// Alertmanager 0.25 refused these; the UTF-8 grammar reads them.
		{`1a=b`, "1a", `{1a="b"}`},
		{`a-b=c`, "a-b", `{a-b="c"}`},
	} {
		ms, err := ParseMatchers(c.in)
		if err != nil {
			t.Errorf("ParseMatchers(%q): %v", c.in, err)
			continue
		}
		if ms[0].Name != c.name {
			t.Errorf("ParseMatchers(%q): name %q, want %q", c.in, ms[0].Name, c.name)
		}
		if got := ms.String(); got != c.want {
			t.Errorf("ParseMatchers(%q) = %s, want %s", c.in, got, c.want)
		}
		// What String writes reads back the same.
		if again, err := ParseMatchers(ms.String()); err != nil || again.String() != ms.String() {
			t.Errorf("ParseMatchers(%q) = %s, %v", ms.String(), again, err)
		}
	}
	for _, c := range []struct{ in, want string }{
		{`"a.b"`, `bad matcher format: "a.b" (expected an operator`},
		{`"a.b"=`, `bad matcher format: "a.b"= (expected a label value after =)`},
		{`"a.b"="x`, `missing its closing double quote`},
		{`{"a.b"="x"`, `expected a closing brace`},
		{`"a.b"="x"}`, `closing brace without an opening one`},
		{`"a\qb"="x"`, `label name "a\qb" is not a valid double-quoted string`},
		{`"a.b"=~"("`, `error parsing regexp`},
		{`""="x"`, `empty label name`},
		{`"\xff"="x"`, `not valid UTF-8`},
		{`"a.b"="x" "y"`, `expected a comma`},
		{`"a.b"=="x"`, `expected a label value after =`},
	} {
		ms, err := ParseMatchers(c.in)
		if err == nil {
			t.Errorf("ParseMatchers(%q) = %s, want an error", c.in, ms)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParseMatchers(%q): %v\nwant it to say %q", c.in, err, c.want)
		}
	}
}

// ParseMatcher (one matcher: amtool's label arguments, the silences API's
// filter) reads a UTF-8 name too, but not braces or a list, as
// Alertmanager's.
func TestParseMatcherUTF8Names(t *testing.T) {
	m, err := ParseMatcher(`"otel.scope.name"=~"check.*"`)
	if err != nil || m.Name != "otel.scope.name" || m.Type != MatchRegexp || !m.Matches("checkout") {
		t.Fatalf("ParseMatcher = %v, %v", m, err)
	}
	for _, in := range []string{`{"a.b"="x"}`, `"a.b"="x", c=d`, `"a.b"`} {
		if m, err := ParseMatcher(in); err == nil {
			t.Errorf("ParseMatcher(%q) = %s, want an error", in, m)
		}
	}
	ls, err := ParseLabels([]string{`"otel.scope.name"=checkout`, `k8s.pod.name="web-0"`})
	if err != nil || ls["otel.scope.name"] != "checkout" || ls["k8s.pod.name"] != "web-0" {
		t.Fatalf("ParseLabels = %v, %v", ls, err)
	}
}

// ParseMatcherChecked gives each matcher it reads to its check before
// compiling it, in either grammar: the check's error refuses it, saying
// why, and a matcher it takes is ParseMatcher's.
func TestParseMatcherCheckedChecksBeforeCompiling(t *testing.T) {
	refuse := func(t MatchType, name, value string) error {
		if t == MatchRegexp && value == "(" {
			return errors.New("too costly")
		}
		return nil
	}
	for _, s := range []string{`pod=~"("`, `"otel.pod"=~"("`} {
		if _, err := ParseMatcherChecked(s, refuse); err == nil || !strings.Contains(err.Error(), "too costly") {
			t.Errorf("%s: %v, want the check's error, not the compiler's", s, err)
		}
	}
	for _, s := range []string{`pod=~"web-.*"`, `"otel.pod"!="a"`} {
		m, err := ParseMatcherChecked(s, refuse)
		want, _ := ParseMatcher(s)
		if err != nil || m.String() != want.String() {
			t.Errorf("%s: %v (%v), want %v", s, m, err, want)
		}
	}
}
