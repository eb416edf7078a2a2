package amconfig

import (
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
		`a`, `=b`, `1a=b`, `a-b=c`, `,a=b`, `a=b,,c=d`, `a="b`, `a=b"`, `a="b"c"`, `a=~"("`, `a!~"[z-a]"`,
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
