package logmine

import (
	"fmt"
	"slices"
	"strings"

	"github.com/aiops-dev/aiops/pkg/errs"
)

// Format splits a raw log line into header fields and the message content,
// from the `<Field>` notation of the log-parsing benchmarks, e.g.
//
//	<Date> <Time> <Pid> <Level> <Component>: <Content>
//	\[<Time>\] \[<Level>\] <Content>
//
// A space in the format matches one or more whitespace characters; `\x`
// is the literal x; every other character is literal. Each field ends at the
// first place where the literal after it matches (a lazy match, like the
// benchmark's `(?P<Field>.*?)` regexes, without backtracking, so a bad line
// costs one linear scan); the last field runs to the end of the line, or up
// to a literal suffix that must end it. A Format is immutable and safe for
// concurrent use.
type Format struct {
	spec    string
	names   []string
	content int       // index of Content in names
	lead    litPart   // literal before the first field
	after   []litPart // after[i] is the literal after field i
}

// litPart is a literal of the format: runs of text separated by
// whitespace matchers.
type litPart struct {
	pieces []string // literal text between whitespace runs
	ws     []bool   // ws[i]: a whitespace run comes before pieces[i]
	tailWS bool     // a whitespace run ends the literal
}

func (l litPart) empty() bool { return len(l.pieces) == 0 && !l.tailWS }

// ContentField is the field that holds the message.
const ContentField = "Content"

// CompileFormat parses a format spec. It needs exactly one <Content> field,
// field names of letters, digits and '_', no duplicates, and a literal
// between any two fields (two adjacent fields cannot be told apart).
func CompileFormat(spec string) (*Format, error) {
	f := &Format{spec: spec, content: -1}
	if strings.TrimSpace(spec) == "" {
		return nil, formatErr("empty format")
	}
	var lit strings.Builder
	cur := litPart{}
	pendingWS := false
	flush := func() {
		if lit.Len() > 0 {
			cur.pieces = append(cur.pieces, lit.String())
			cur.ws = append(cur.ws, pendingWS)
			pendingWS = false
			lit.Reset()
		}
	}
	endLit := func() litPart {
		flush()
		cur.tailWS = pendingWS
		pendingWS = false
		l := cur
		cur = litPart{}
		return l
	}
	for i := 0; i < len(spec); i++ {
		c := spec[i]
		switch {
		case c == '\\':
			if i+1 >= len(spec) {
				return nil, formatErr("%q ends with a lone backslash", spec)
			}
			i++
			lit.WriteByte(spec[i])
		case c == ' ' || c == '\t':
			flush()
			pendingWS = true
			for i+1 < len(spec) && (spec[i+1] == ' ' || spec[i+1] == '\t') {
				i++
			}
		case c == '<':
			end := strings.IndexByte(spec[i:], '>')
			if end < 0 {
				return nil, formatErr("unclosed '<' at offset %d in %q", i, spec)
			}
			name := spec[i+1 : i+end]
			if !validFieldName(name) {
				return nil, formatErr("bad field name %q at offset %d (letters, digits, '_')", name, i)
			}
			if slices.Contains(f.names, name) {
				return nil, formatErr("field <%s> appears twice", name)
			}
			l := endLit()
			if len(f.names) == 0 {
				f.lead = l
			} else {
				if l.empty() {
					return nil, formatErr("fields <%s> and <%s> have no literal between them", f.names[len(f.names)-1], name)
				}
				f.after = append(f.after, l)
			}
			if name == ContentField {
				f.content = len(f.names)
			}
			f.names = append(f.names, name)
			i += end
		default:
			lit.WriteByte(c)
		}
	}
	if len(f.names) == 0 {
		return nil, formatErr("%q has no <Field>", spec)
	}
	f.after = append(f.after, endLit())
	if f.content < 0 {
		return nil, formatErr("%q has no <%s> field", spec, ContentField)
	}
	return f, nil
}

func validFieldName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if class[s[i]]&cWordChar == 0 || s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// String returns the spec the format was compiled from.
func (f *Format) String() string { return f.spec }

// Fields returns the field names in order.
func (f *Format) Fields() []string { return slices.Clone(f.names) }

// ContentIndex is the position of <Content> in Fields and in Parse's values.
func (f *Format) ContentIndex() int { return f.content }

// Parse splits line into field values (substrings of line, aligned with
// Fields), appending them to dst[:0]. ok is false when the line does not
// have the format; the caller then treats the whole line as content.
func (f *Format) Parse(line string, dst []string) (values []string, ok bool) {
	values = dst[:0]
	pos, ok := matchLitAt(line, 0, f.lead)
	if !ok {
		return values, false
	}
	last := len(f.names) - 1
	for i := range f.names {
		lit := f.after[i]
		if i == last {
			end, ok := matchSuffix(line, pos, lit)
			if !ok {
				return values, false
			}
			values = append(values, line[pos:end])
			return values, true
		}
		start, next, ok := findLit(line, pos, lit)
		if !ok {
			return values, false
		}
		values = append(values, line[pos:start])
		pos = next
	}
	return values, true
}

// Content returns the message content of line, or ok=false if the line does
// not have the format.
func (f *Format) Content(line string) (content string, ok bool) {
	var buf [16]string
	v, ok := f.Parse(line, buf[:0])
	if !ok {
		return "", false
	}
	return v[f.content], true
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f'
}

// matchLitAt matches lit exactly at line[pos:] and returns the end.
func matchLitAt(line string, pos int, lit litPart) (int, bool) {
	for i, p := range lit.pieces {
		if lit.ws[i] {
			n := skipSpace(line, pos)
			if n == pos {
				return 0, false
			}
			pos = n
		}
		if !strings.HasPrefix(line[pos:], p) {
			return 0, false
		}
		pos += len(p)
	}
	if lit.tailWS {
		n := skipSpace(line, pos)
		if n == pos {
			return 0, false
		}
		pos = n
	}
	return pos, true
}

func skipSpace(line string, pos int) int {
	for pos < len(line) && isSpace(line[pos]) {
		pos++
	}
	return pos
}

// findLit finds the first place at or after pos where lit matches; it
// returns where the match starts and ends.
func findLit(line string, pos int, lit litPart) (start, end int, ok bool) {
	if len(lit.pieces) == 0 || lit.ws[0] {
		// the literal starts with whitespace: try each whitespace run
		for s := pos; s < len(line); s++ {
			if !isSpace(line[s]) {
				continue
			}
			if e, ok := matchLitAt(line, s, lit); ok {
				return s, e, true
			}
			// skip the rest of this run: a lazy field ends at the run's start
			for s+1 < len(line) && isSpace(line[s+1]) {
				s++
			}
		}
		return 0, 0, false
	}
	first := lit.pieces[0]
	for s := pos; s <= len(line)-len(first); {
		k := strings.Index(line[s:], first)
		if k < 0 {
			return 0, 0, false
		}
		s += k
		if e, ok := matchLitAt(line, s, lit); ok {
			return s, e, true
		}
		s++
	}
	return 0, 0, false
}

// matchSuffix: the last field runs to the end of the line, or lazily up to
// a literal that must end the line.
func matchSuffix(line string, pos int, lit litPart) (int, bool) {
	if lit.empty() {
		return len(line), true
	}
	for s := pos; s <= len(line); s++ {
		if e, ok := matchLitAt(line, s, lit); ok && e == len(line) {
			return s, true
		}
	}
	return 0, false
}

func formatErr(format string, args ...any) error {
	return errs.Permanent(fmt.Errorf("%w: "+format, append([]any{ErrInvalidFormat}, args...)...))
}
