package logmine_test

import (
	"strings"
	"testing"

	"github.com/aiops-dev/aiops/pkg/logmine"
)

// rebuild puts params back into a template.
func rebuild(tpl string, params []string) (string, bool) {
	var b strings.Builder
	for _, p := range params {
		i := strings.Index(tpl, logmine.Wildcard)
		if i < 0 {
			return "", false
		}
		b.WriteString(tpl[:i])
		b.WriteString(p)
		tpl = tpl[i+len(logmine.Wildcard):]
	}
	if strings.Contains(tpl, logmine.Wildcard) {
		return "", false
	}
	b.WriteString(tpl)
	return b.String(), true
}

// Any input: no panic, and every result's parameters put back into its
// template give the line (spacing normalised), also when the line holds
// the wildcard text.
func FuzzMatch(f *testing.F) {
	for _, s := range []string{
		"Received block blk_-1 of size 67108864 from /10.250.19.102",
		"user=alice action=login src=10.0.0.1:22",
		"GET https://x.io/a?b=1 200 15ms 3KB",
		"fe80::1 00:1a:2b:3c:4d:5e 123e4567-e89b-12d3-a456-426614174000",
		"/a/b/c_1 ./x ~/y C:\\z 2024-01-02T03:04:05Z 17:41:44,747",
		"blk_1 blk_2 blk_3 x@y.io 0xdead 1h2m3s -5 1.2.3",
		"", "   ", "\t", ":: : =", "a=b=c:d",
		"a <*>:<*> b", "glob <*>.log 12", "x<*>y <*><*> <*> <*> <*> <*1> /a/<*>/b",
	} {
		f.Add(s, "Invalid user bob from 1.2.3.4")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		m, err := logmine.New(logmine.DefaultConfig())
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range []string{a, b, a + " " + b, b + " " + a, a} {
			r := m.Match(line)
			if strings.ContainsAny(line, "\r\n\v\f") {
				continue
			}
			// a list's parameter is the line's text from its first item to
			// its last, with the line's spacing between them
			got, ok := rebuild(r.Template, r.Params)
			got = strings.Join(strings.FieldsFunc(got, func(c rune) bool { return c == ' ' || c == '\t' }), " ")
			if want := strings.Join(strings.FieldsFunc(line, func(c rune) bool { return c == ' ' || c == '\t' }), " "); !ok || got != want {
				t.Fatalf("line %q: template %q params %q rebuild %q", line, r.Template, r.Params, got)
			}
			if r.ID != logmine.IDOf(r.Template) {
				t.Fatalf("id of %q", r.Template)
			}
		}
		// the second merging pass leaves every merged id resolving to a
		// template held, and every template under the id of its text
		for _, mg := range m.Consolidate() {
			if _, ok := m.Lookup(m.Resolve(mg.From)); !ok {
				t.Fatalf("merge %v resolves to no template: %v", mg, m.Templates())
			}
		}
		for _, tp := range m.Templates() {
			if tp.ID != logmine.IDOf(tp.Template) {
				t.Fatalf("template %q held under id %v", tp.Template, tp.ID)
			}
		}
		snap, err := m.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Restore(snap); err != nil {
			t.Fatal(err)
		}
	})
}

func FuzzFormat(f *testing.F) {
	f.Add(`<Date> <Time> - <Level>  \[<Node>:<Component>@<Id>\] - <Content>`, "2015-07-29 17:41:44,747 - INFO  [a:b@1] - x")
	f.Add(`\[<Time>\] \[<Level>\] <Content>`, "[x] [y] z")
	f.Add(`<Content> end`, "a b end")
	f.Add(`<Component>(\[<PID>\])?: <Content>`, "cron[1]: x")
	f.Add(`<Level>\d+ (a|b)* <Content>`, "W1 ab x")
	f.Fuzz(func(t *testing.T, spec, line string) {
		fm, err := logmine.CompileFormat(spec)
		if err != nil {
			return
		}
		vals, ok := fm.Parse(line, nil)
		if ok && len(vals) != len(fm.Fields()) {
			t.Fatalf("%d values for %d fields", len(vals), len(fm.Fields()))
		}
	})
}

// Any line under any header kind: no panic, and a kind that takes the line
// takes it again with the same result (detection votes rely on it).
func FuzzSplitHeader(f *testing.F) {
	for _, s := range []string{
		`<34>Oct 11 22:14:15 mymachine su[230]: 'su root' failed`,
		`<165>1 2003-10-11T22:14:15.003Z host app - ID47 [x@1 a="\]"] msg`,
		`{"level":"info","msg":"x","n":1}`, `{"msg":`, `{}`,
		`time=1 level=info msg="a \" b" k=v`, `a= b=`,
		`2024-01-02 10:00:00,123 INFO  [main] a.B - m`,
		`1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.0" 200 2326 "-" "ua"`,
		`I0102 10:00:00.123456       1 a.go:1] m`, "", "\x00", "=",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		for _, k := range append(logmine.HeaderKinds(), logmine.HeaderNone) {
			h, ok := logmine.SplitHeader(k, line)
			h2, ok2 := logmine.SplitHeader(k, line)
			if ok != ok2 || h != h2 {
				t.Fatalf("%s on %q: %+v %v, then %+v %v", k, line, h, ok, h2, ok2)
			}
		}
		_ = logmine.DetectHeader([]string{line, line})
	})
}
