package amconfig

import (
	"cmp"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MatchType is the operator of a Matcher.
type MatchType int

// The four operators of Alertmanager's matchers.
const (
	MatchEqual     MatchType = iota // =
	MatchNotEqual                   // !=
	MatchRegexp                     // =~
	MatchNotRegexp                  // !~
)

func (t MatchType) String() string {
	switch t {
	case MatchEqual:
		return "="
	case MatchNotEqual:
		return "!="
	case MatchRegexp:
		return "=~"
	case MatchNotRegexp:
		return "!~"
	}
	return fmt.Sprintf("MatchType(%d)", int(t))
}

// Matcher tests one label of an alert. A label the alert does not have is
// the empty string, so name="" and name!~".+" match an alert without it.
type Matcher struct {
	Type  MatchType
	Name  string
	Value string

	re *regexp.Regexp
}

// NewMatcher returns a matcher; a regular expression is anchored at both
// ends, as Alertmanager does: it is compiled as ^(?:value)$.
func NewMatcher(t MatchType, name, value string) (*Matcher, error) {
	m := &Matcher{Type: t, Name: name, Value: value}
	switch t {
	case MatchEqual, MatchNotEqual:
	case MatchRegexp, MatchNotRegexp:
		re, err := regexp.Compile("^(?:" + value + ")$")
		if err != nil {
			return nil, err
		}
		m.re = re
	default:
		return nil, fmt.Errorf("unknown match type %d", int(t))
	}
	return m, nil
}

// Matches reports whether a label value (empty if the alert does not have
// the label) satisfies the matcher.
func (m *Matcher) Matches(v string) bool {
	switch m.Type {
	case MatchEqual:
		return v == m.Value
	case MatchNotEqual:
		return v != m.Value
	case MatchRegexp:
		return m.re.MatchString(v)
	case MatchNotRegexp:
		return !m.re.MatchString(v)
	}
	return false
}

// String writes the matcher as Alertmanager does: name, operator and the
// value in double quotes with \, " and newline escaped; a name that the
// UTF-8 grammar could not read unquoted (it has a reserved character) is
// double-quoted too, name and value as Go strings (strconv.Quote), as
// Alertmanager 0.27 and later write it.
func (m *Matcher) String() string {
	if strings.ContainsFunc(m.Name, reservedRune) {
		return strconv.Quote(m.Name) + m.Type.String() + strconv.Quote(m.Value)
	}
	return fmt.Sprintf(`%s%s"%s"`, m.Name, m.Type, escapeValue(m.Value))
}

var valueEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)

func escapeValue(s string) string { return valueEscaper.Replace(s) }

// Matchers is a conjunction: an alert matches if every matcher matches. The
// empty list matches everything.
type Matchers []*Matcher

// Matches reports whether the labels satisfy every matcher.
func (ms Matchers) Matches(labels map[string]string) bool {
	for _, m := range ms {
		if !m.Matches(labels[m.Name]) {
			return false
		}
	}
	return true
}

// String writes {m1,m2,...} as Alertmanager and amtool do.
func (ms Matchers) String() string {
	var b strings.Builder
	b.WriteByte('{')
	for i, m := range ms {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(m.String())
	}
	b.WriteByte('}')
	return b.String()
}

// sortMatchers orders matchers by name, then value, then operator, as
// Alertmanager sorts a route's matchers (which is the order amtool shows).
func sortMatchers(ms Matchers) {
	slices.SortStableFunc(ms, func(a, b *Matcher) int {
		return cmp.Or(strings.Compare(a.Name, b.Name), strings.Compare(a.Value, b.Value), cmp.Compare(a.Type, b.Type))
	})
}

// The label name, the operator ("=~" before "=" so that "=~" is not read as
// "=" followed by a value starting with "~") and the rest, trimmed.
var matcherRE = regexp.MustCompile(`^\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(=~|=|!=|!~)\s*((?s).*?)\s*$`)

var matchTypes = map[string]MatchType{"=": MatchEqual, "!=": MatchNotEqual, "=~": MatchRegexp, "!~": MatchNotRegexp}

// ParseMatchers parses one item of a matchers list as Alertmanager does in
// its default mode since 0.27 ("fallback"): as Alertmanager 0.25 did
// (parseClassicMatchers), and an item that parser refuses as Alertmanager's
// UTF-8 matchers (parseUTF8Matchers), which is how a label name that is
// not a classic Prometheus name is written: `"otel.scope.name"="checkout"`,
// or unquoted when it has no reserved character, `k8s.pod.name=~"web-.*"`.
// So what 0.25 read is read exactly as before.
func ParseMatchers(s string) (Matchers, error) {
	ms, err := parseClassicMatchers(s)
	if err == nil {
		return ms, nil
	}
	ums, utf8Only, uerr := parseUTF8Matchers(s, NewMatcher)
	switch {
	case uerr == nil:
		return ums, nil
	case utf8Only:
		// The item names a label only the UTF-8 grammar reads: its
		// error names the problem, where the classic parser's would
		// only say it is not a classic matcher.
		return nil, uerr
	}
	return nil, err
}

// parseClassicMatchers parses one item of a matchers list as Alertmanager
// 0.25 does: optionally in braces, one or more matchers separated by
// commas (a comma inside double quotes does not separate), each as in
// parseClassicMatcher. `a=b, c=~"x,y"` and `{a="b"}` are both valid.
func parseClassicMatchers(s string) (Matchers, error) {
	s = strings.TrimPrefix(s, "{")
	s = strings.TrimSuffix(s, "}")
	var (
		insideQuotes bool
		escaped      bool
		token        strings.Builder
		tokens       []string
	)
	for _, r := range s {
		switch r {
		case ',':
			if !insideQuotes {
				tokens = append(tokens, token.String())
				token.Reset()
				continue
			}
		case '"':
			if !escaped {
				insideQuotes = !insideQuotes
			} else {
				escaped = false
			}
		case '\\':
			escaped = !escaped
		default:
			escaped = false
		}
		token.WriteRune(r)
	}
	if last := strings.TrimSpace(token.String()); last != "" {
		tokens = append(tokens, last)
	}
	ms := make(Matchers, 0, len(tokens))
	for _, tok := range tokens {
		m, err := parseClassicMatcher(tok, NewMatcher)
		if err != nil {
			return nil, err
		}
		ms = append(ms, m)
	}
	return ms, nil
}

// ParseMatcher parses one matcher (amtool's label arguments, the silences
// API's filter) as Alertmanager does since 0.27: as 0.25 did
// (parseClassicMatcher), and what that refuses as one UTF-8 matcher,
// without braces (see ParseMatchers).
func ParseMatcher(s string) (*Matcher, error) { return parseMatcher(s, NewMatcher) }

// ParseMatcherChecked is ParseMatcher, the matcher read given to check
// (its operator, name and value) before its regular expression is
// compiled: a check's error refuses it. A matcher from an untrusted
// sender (the silences API's filter) is so refused before it costs the
// compiling.
func ParseMatcherChecked(s string, check func(t MatchType, name, value string) error) (*Matcher, error) {
	return parseMatcher(s, func(t MatchType, name, value string) (*Matcher, error) {
		if err := check(t, name, value); err != nil {
			return nil, err
		}
		return NewMatcher(t, name, value)
	})
}

// newMatcherFunc makes the matcher a parser read (NewMatcher).
type newMatcherFunc func(t MatchType, name, value string) (*Matcher, error)

func parseMatcher(s string, newMatcher newMatcherFunc) (*Matcher, error) {
	m, err := parseClassicMatcher(s, newMatcher)
	if err == nil || !utf8.ValidString(s) {
		return m, err
	}
	ms, utf8Only, uerr := parseUTF8Matchers(s, newMatcher)
	trimmed := strings.TrimSpace(s)
	switch {
	case uerr == nil && len(ms) == 1 && !strings.HasPrefix(trimmed, "{") && !strings.HasSuffix(trimmed, "}"):
		return ms[0], nil
	case uerr == nil && utf8Only:
		return nil, fmt.Errorf("bad matcher format: %s (expected one matcher, without braces)", s)
	case uerr != nil && utf8Only:
		return nil, uerr
	}
	return nil, err
}

// parseClassicMatcher parses name op value with op one of =, !=, =~, !~, as
// Alertmanager 0.25 does. The value may be in double quotes; in it \" is a
// quote, \\ a backslash and \n a newline (any other backslash is kept as
// written). Unquoted values are taken as written, spaces around trimmed;
// an unescaped double quote inside a value is an error.
func parseClassicMatcher(s string, newMatcher newMatcherFunc) (*Matcher, error) {
	ms := matcherRE.FindStringSubmatch(s)
	if len(ms) == 0 {
		return nil, fmt.Errorf("bad matcher format: %s", s)
	}
	var (
		rawValue            = ms[3]
		value               strings.Builder
		escaped             bool
		expectTrailingQuote bool
	)
	if strings.HasPrefix(rawValue, `"`) {
		rawValue = strings.TrimPrefix(rawValue, `"`)
		expectTrailingQuote = true
	}
	if !utf8.ValidString(rawValue) {
		return nil, fmt.Errorf("matcher value not valid UTF-8: %s", ms[3])
	}
	for i, r := range rawValue {
		if escaped {
			escaped = false
			switch r {
			case 'n':
				value.WriteByte('\n')
			case '"', '\\':
				value.WriteRune(r)
			default:
				value.WriteByte('\\')
				value.WriteRune(r)
			}
			continue
		}
		switch r {
		case '\\':
			if i < len(rawValue)-1 {
				escaped = true
				continue
			}
			value.WriteByte('\\')
		case '"':
			if !expectTrailingQuote || i < len(rawValue)-1 {
				return nil, fmt.Errorf("matcher value contains unescaped double quote: %s", ms[3])
			}
			expectTrailingQuote = false
		default:
			value.WriteRune(r)
		}
	}
	if expectTrailingQuote {
		return nil, fmt.Errorf("matcher value contains unescaped double quote: %s", ms[3])
	}
	return newMatcher(matchTypes[ms[2]], ms[1], value.String())
}

// The UTF-8 matchers grammar of Alertmanager 0.27 and later (its
// matcher/parse package and the "UTF-8 matchers" of its configuration
// documentation):
//
//	matchers = [ "{" ] [ matcher { "," matcher } [ "," ] ] [ "}" ]  (both braces or neither)
//	matcher  = literal ( "=" | "!=" | "=~" | "!~" ) literal          (label name, operator, value)
//	literal  = unquoted | quoted
//
// An unquoted literal is one or more characters none of them reserved
// (white space and { } ! = ~ , \ " ' `); a quoted one is a Go string
// literal in double quotes (\" a quote, \\ a backslash, \n, \t, \u00e9,
// ... as strconv.Unquote reads them) that must be valid UTF-8. White space
// between tokens is ignored.

// reservedRune reports whether r cannot be part of an unquoted literal.
func reservedRune(r rune) bool {
	return unicode.IsSpace(r) || strings.ContainsRune("{}!=~,\\\"'`", r)
}

// utf8Token is one token of the UTF-8 grammar: kind is '{', '}', ',',
// 'o' (an operator), 'q' (a quoted literal), 'u' (an unquoted one) or 0
// at the end of the input; text is as written.
type utf8Token struct {
	kind byte
	text string
}

// utf8Lexer reads the tokens of s.
type utf8Lexer struct {
	s   string
	pos int
	// bad makes the error of a malformed input.
	bad func(format string, args ...any) error
}

func (l *utf8Lexer) next() (utf8Token, error) {
	for l.pos < len(l.s) {
		r, w := utf8.DecodeRuneInString(l.s[l.pos:])
		if !unicode.IsSpace(r) {
			break
		}
		l.pos += w
	}
	if l.pos == len(l.s) {
		return utf8Token{}, nil
	}
	start := l.pos
	r, w := utf8.DecodeRuneInString(l.s[l.pos:])
	l.pos += w
	switch {
	case r == '{' || r == '}' || r == ',':
		return utf8Token{byte(r), l.s[start:l.pos]}, nil
	case r == '=' || r == '!':
		switch {
		case strings.HasPrefix(l.s[l.pos:], "~"), r == '!' && strings.HasPrefix(l.s[l.pos:], "="):
			l.pos++
		case r == '!':
			return utf8Token{}, l.bad("expected = or ~ after !")
		}
		return utf8Token{'o', l.s[start:l.pos]}, nil
	case r == '"':
		// To the first double quote not escaped by a backslash; the
		// bytes compared are ASCII, never part of another character.
		for escaped := false; l.pos < len(l.s); l.pos++ {
			switch c := l.s[l.pos]; {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				l.pos++
				return utf8Token{'q', l.s[start:l.pos]}, nil
			}
		}
		return utf8Token{}, l.bad("%s is missing its closing double quote", l.s[start:])
	case reservedRune(r):
		return utf8Token{}, l.bad("unexpected %q: it may only be in a double-quoted name or value", r)
	}
	for l.pos < len(l.s) {
		r, w := utf8.DecodeRuneInString(l.s[l.pos:])
		if reservedRune(r) {
			break
		}
		l.pos += w
	}
	return utf8Token{'u', l.s[start:l.pos]}, nil
}

// parseUTF8Matchers parses s in the UTF-8 grammar. utf8Only reports
// whether it came to a label name that the classic parser cannot read
// (double-quoted, or not a classic name): the input was then meant in
// this grammar, and its error is the one to report. Unlike Alertmanager,
// an empty label name is an error (a matcher of it would test nothing).
func parseUTF8Matchers(s string, newMatcher newMatcherFunc) (ms Matchers, utf8Only bool, err error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("bad matcher format: %s (%s)", s, fmt.Sprintf(format, args...))
	}
	if !utf8.ValidString(s) {
		return nil, false, bad("not valid UTF-8")
	}
	l := &utf8Lexer{s: s, bad: bad}
	literal := func(t utf8Token, what string) (string, error) {
		if t.kind == 'u' {
			return t.text, nil
		}
		v, err := strconv.Unquote(t.text)
		if err != nil {
			return "", bad(`%s %s is not a valid double-quoted string: escape " and \ with a backslash`, what, t.text)
		}
		if !utf8.ValidString(v) {
			return "", bad("%s %s is not valid UTF-8", what, t.text)
		}
		return v, nil
	}
	t, err := l.next()
	braced := t.kind == '{'
	if braced && err == nil {
		t, err = l.next()
	}
	for err == nil && t.kind != 0 && t.kind != '}' {
		if t.kind != 'q' && t.kind != 'u' {
			return nil, utf8Only, bad("expected a label name, got %s", t.text)
		}
		var (
			name, value string
			op, v       utf8Token
			m           *Matcher
		)
		if name, err = literal(t, "label name"); err != nil {
			return nil, true, err
		}
		utf8Only = utf8Only || t.kind == 'q' || !classicName(name)
		if name == "" {
			return nil, utf8Only, bad("empty label name")
		}
		if op, err = l.next(); err != nil {
			return nil, utf8Only, err
		}
		if op.kind != 'o' {
			return nil, utf8Only, bad("expected an operator (=, !=, =~ or !~) after %s", t.text)
		}
		if v, err = l.next(); err != nil {
			return nil, utf8Only, err
		}
		if v.kind != 'q' && v.kind != 'u' {
			return nil, utf8Only, bad("expected a label value after %s", op.text)
		}
		if value, err = literal(v, "label value"); err != nil {
			return nil, utf8Only, err
		}
		if m, err = newMatcher(matchTypes[op.text], name, value); err != nil {
			return nil, utf8Only, err
		}
		ms = append(ms, m)
		if t, err = l.next(); err == nil && t.kind == ',' {
			// A comma may end the list.
			t, err = l.next()
		} else if err == nil && t.kind != 0 && t.kind != '}' {
			return nil, utf8Only, bad("expected a comma or a closing brace after %s, got %s", v.text, t.text)
		}
	}
	switch {
	case err != nil:
		return nil, utf8Only, err
	case braced && t.kind != '}':
		return nil, utf8Only, bad("expected a closing brace at the end")
	case !braced && t.kind == '}':
		return nil, utf8Only, bad("a closing brace without an opening one")
	}
	if t.kind == '}' {
		if t, err = l.next(); err != nil || t.kind != 0 {
			return nil, utf8Only, bad("expected nothing after the closing brace")
		}
	}
	return ms, utf8Only, nil
}

// classicName reports whether the classic parser reads s as a label name
// (colons included, as in recording rules' names).
func classicName(s string) bool {
	return classicNameRE.MatchString(s)
}

var classicNameRE = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)

// validUTF8LabelName reports whether s may name a label in group_by or an
// inhibit rule's equal, as Alertmanager 0.27 and later take them: any
// non-empty UTF-8 text.
func validUTF8LabelName(s string) bool {
	return s != "" && utf8.ValidString(s)
}

// validLabelName reports whether s is a Prometheus label name:
// [a-zA-Z_][a-zA-Z0-9_]*.
func validLabelName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		if !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b == '_' || b >= '0' && b <= '9' && i > 0) {
			return false
		}
	}
	return true
}
