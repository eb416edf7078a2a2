package logmine

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/aiops-dev/aiops/pkg/errs"
)

// Format splits a raw log line into header fields and the message content,
// from the `log_format` notation of the logparser benchmark, e.g.
//
//	<Date> <Time> <Pid> <Level> <Component>: <Content>
//	\[<Time>\] \[<Level>\] <Content>
//	<Date> <Time> <Node> <Component>(\[<PID>\])?: <Content>
//
// The notation is the benchmark's own: the spec is split at `<Field>`
// names; each field becomes the lazy group `(?P<Field>.*?)` (the Content
// field's spans lines: a message may end in a stack trace), every run of
// spaces in the text between fields becomes `\s+`, everything else is a
// regular-expression fragment as written (`\[` is a bracket, `(...)?` an
// optional group, `\d+` digits), and the whole is anchored at both ends.
// So a field may hold spaces: it ends where the text after it in the format
// matches (`\[<Time>\]` takes "10.30 16:49:06"). A field inside an
// optional group that did not match is "".
//
// Specs whose text between fields is plain (letters, escaped punctuation,
// spaces: every format of the benchmark's common systems) are matched by a
// hand-written scanner that gives the same fields as the regular
// expression, without allocating; a line it rejects is tried once more with
// the regular expression (Go's RE2: linear time, no catastrophic
// backtracking), so the result is always the expression's. A Format is
// immutable and safe for concurrent use.
type Format struct {
	spec    string
	names   []string
	content int            // index of Content in names
	re      *regexp.Regexp // the benchmark's expression, always set
	groups  []int          // groups[i]: the submatch index of names[i]
	plain   bool           // lead/after hold the whole format: the fast path applies
	lead    litPart        // literal before the first field
	after   []litPart      // after[i] is the literal after field i
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

// MaxFormatBytes bounds a format spec, so a configured format cannot make
// compiling (and every line's match) arbitrarily expensive.
const MaxFormatBytes = 4096

// fieldRe is the benchmark's split: a field is `<` name `>` with no angle
// bracket inside.
var fieldRe = regexp.MustCompile(`<[^<>]+>`)

var spacesRe = regexp.MustCompile(` +`)

// CompileFormat parses a format spec. It needs exactly one <Content> field,
// field names of letters, digits and '_', no duplicates, text between any
// two fields (two adjacent lazy fields cannot be told apart: the first
// would always be empty), and a valid regular expression once the fields
// are replaced.
func CompileFormat(spec string) (*Format, error) {
	f := &Format{spec: spec, content: -1, plain: true}
	if strings.TrimSpace(spec) == "" {
		return nil, formatErr("empty format")
	}
	if len(spec) > MaxFormatBytes {
		return nil, formatErr("format is %d bytes, more than %d", len(spec), MaxFormatBytes)
	}
	var expr strings.Builder
	expr.WriteString("^")
	pos := 0
	addText := func(text string) error {
		l, plain, err := plainLiteral(text)
		if err != nil {
			return err
		}
		if !plain {
			f.plain = false
		}
		if len(f.names) == 0 {
			f.lead = l
		} else {
			f.after = append(f.after, l)
		}
		expr.WriteString(spacesRe.ReplaceAllString(text, `\s+`))
		return nil
	}
	for _, loc := range fieldRe.FindAllStringIndex(spec, -1) {
		name := spec[loc[0]+1 : loc[1]-1]
		if !validFieldName(name) {
			return nil, formatErr("bad field name %q at offset %d (letters, digits, '_')", name, loc[0])
		}
		if slices.Contains(f.names, name) {
			return nil, formatErr("field <%s> appears twice", name)
		}
		if len(f.names) > 0 && loc[0] == pos {
			return nil, formatErr("fields <%s> and <%s> have no text between them", f.names[len(f.names)-1], name)
		}
		if err := addText(spec[pos:loc[0]]); err != nil {
			return nil, err
		}
		if name == ContentField {
			f.content = len(f.names)
		}
		f.names = append(f.names, name)
		if name == ContentField {
			// A message's text may hold lines (a stack trace), as the
			// scanner's last field does; the header's fields stay on
			// the first line.
			expr.WriteString("(?P<" + name + ">(?s:.*?))")
		} else {
			expr.WriteString("(?P<" + name + ">.*?)")
		}
		pos = loc[1]
	}
	if len(f.names) == 0 {
		return nil, formatErr("%q has no <Field>", spec)
	}
	if f.content < 0 {
		return nil, formatErr("%q has no <%s> field", spec, ContentField)
	}
	// the text after the last field: after[last]
	l, plain, err := plainLiteral(spec[pos:])
	if err != nil {
		return nil, err
	}
	f.plain = f.plain && plain
	f.after = append(f.after, l)
	expr.WriteString(spacesRe.ReplaceAllString(spec[pos:], `\s+`))
	expr.WriteString("$")
	re, err := regexp.Compile(expr.String())
	if err != nil {
		return nil, formatErr("%q is not a valid expression once its fields are replaced: %v", spec, err)
	}
	f.re = re
	f.groups = make([]int, len(f.names))
	for i, n := range f.names {
		f.groups[i] = re.SubexpIndex(n)
	}
	return f, nil
}

// plainLiteral reads the text between two fields. plain is false when the
// text is a regular-expression fragment beyond literal characters: then
// only the expression can match it. A lone trailing backslash is an error.
func plainLiteral(text string) (l litPart, plain bool, err error) {
	var lit strings.Builder
	pendingWS := false
	plain = true
	flush := func() {
		if lit.Len() > 0 {
			l.pieces = append(l.pieces, lit.String())
			l.ws = append(l.ws, pendingWS)
			pendingWS = false
			lit.Reset()
		}
	}
	for i := 0; i < len(text); i++ {
		c := text[i]
		switch {
		case c == '\\':
			if i+1 >= len(text) {
				return l, false, formatErr("%q ends with a lone backslash", text)
			}
			i++
			if isAlnum(text[i]) || text[i] == ' ' {
				plain = false // \d, \s, \t ...: a class or an escape, not a literal
			}
			lit.WriteByte(text[i])
		case c == ' ':
			flush()
			pendingWS = true
			for i+1 < len(text) && text[i+1] == ' ' {
				i++
			}
		case strings.IndexByte(".^$*+?()[]{}|", c) >= 0 || c < ' ':
			plain = false
			lit.WriteByte(c)
		default:
			lit.WriteByte(c)
		}
	}
	flush()
	l.tailWS = pendingWS
	return l, plain, nil
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
	if !f.plain {
		return f.match(line, dst)
	}
	// The scanner, for plain formats. Each field ends at the first place
	// where the literal after it matches, which is the lazy group's first
	// choice; when the rest then matches too, the expression would have
	// made the same choices. Where the scanner gives up, the expression
	// (which backtracks) decides.
	values = dst[:0]
	pos, ok := matchLitAt(line, 0, f.lead)
	if !ok {
		return f.match(line, dst)
	}
	last := len(f.names) - 1
	for i := range f.names {
		lit := f.after[i]
		if i == last {
			end, ok := matchSuffix(line, pos, lit)
			if !ok {
				return f.match(line, dst)
			}
			values = append(values, line[pos:end])
			return values, true
		}
		start, next, ok := findLit(line, pos, lit)
		if !ok {
			return f.match(line, dst)
		}
		values = append(values, line[pos:start])
		pos = next
	}
	return values, true
}

// match is Parse with the regular expression.
func (f *Format) match(line string, dst []string) ([]string, bool) {
	values := dst[:0]
	loc := f.re.FindStringSubmatchIndex(line)
	if loc == nil {
		return values, false
	}
	for _, g := range f.groups {
		if a := loc[2*g]; a >= 0 {
			values = append(values, line[a:loc[2*g+1]])
		} else {
			values = append(values, "")
		}
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
