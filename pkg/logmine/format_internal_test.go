package logmine

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// Parse (the fast scanner, the expression where it gives up) must give
// exactly the regular expression's result on every line: random lines built
// from the formats' own literals and field values with spaces, brackets and
// colons.
func TestFormatScanAgreesWithExpression(t *testing.T) {
	formats := []string{
		`<Date> <Time> <Pid> <Level> <Component>: <Content>`,
		`\[<Time>\] \[<Level>\] <Content>`,
		`<Date> <Day> <Time> <Component> sshd\[<Pid>\]: <Content>`,
		`<Date> <Time> - <Level>  \[<Node>:<Component>@<Id>\] - <Content>`,
		`\[<Time>\] <Program> - <Content>`,
		`<Content> <End>;`,
	}
	atoms := []string{"a", "b1", " ", "  ", ":", ": ", "[", "]", "] ", " - ", "-", "@", ";", "sshd[", "x y", "\t"}
	r := rand.New(rand.NewPCG(7, 7))
	for _, spec := range formats {
		f, err := CompileFormat(spec)
		if err != nil {
			t.Fatal(err)
		}
		if !f.plain {
			t.Fatalf("%q should take the fast path", spec)
		}
		accepted := 0
		for n := 0; n < 20000; n++ {
			var b strings.Builder
			for k := r.IntN(14); k >= 0; k-- {
				b.WriteString(atoms[r.IntN(len(atoms))])
			}
			line := b.String()
			got, ok := f.Parse(line, nil)
			want, wok := f.match(line, nil)
			if ok != wok || !slices.Equal(got, want) {
				t.Fatalf("%q on %q: Parse %q %v, expression %q %v", spec, line, got, ok, want, wok)
			}
			if ok {
				accepted++
			}
		}
		t.Logf("%q: %d of 20000 random lines matched", spec, accepted)
	}
}
