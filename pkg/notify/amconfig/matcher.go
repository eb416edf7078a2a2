package amconfig

import (
	"cmp"
	"fmt"
	"regexp"
	"slices"
	"strings"
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
// value in double quotes with \, " and newline escaped.
func (m *Matcher) String() string {
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

// ParseMatchers parses one item of a matchers list as Alertmanager 0.25
// does: optionally in braces, one or more matchers separated by commas
// (a comma inside double quotes does not separate), each as in
// ParseMatcher. `a=b, c=~"x,y"` and `{a="b"}` are both valid.
func ParseMatchers(s string) (Matchers, error) {
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
		m, err := ParseMatcher(tok)
		if err != nil {
			return nil, err
		}
		ms = append(ms, m)
	}
	return ms, nil
}

// ParseMatcher parses name op value with op one of =, !=, =~, !~, as
// Alertmanager 0.25 does. The value may be in double quotes; in it \" is a
// quote, \\ a backslash and \n a newline (any other backslash is kept as
// written). Unquoted values are taken as written, spaces around trimmed;
// an unescaped double quote inside a value is an error.
func ParseMatcher(s string) (*Matcher, error) {
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
	return NewMatcher(matchTypes[ms[2]], ms[1], value.String())
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
