// Package silence holds Alertmanager-style silences: label matchers that
// mute notifications between two times. The types are the Alertmanager
// API v2 shapes (so amtool and every Alertmanager client work against
// aiops), the rules are Alertmanager 0.25's: what a valid silence is, when
// one is pending, active or expired, which edits update a silence in place
// and which replace it with a new one, how a list is filtered and sorted.
// Store keeps them in a JetStream key-value bucket, so every notifier
// instance sees the same silences and a restart forgets none.
package silence

import (
	"cmp"
	"errors"
	"fmt"
	"regexp/syntax"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/aiops-dev/aiops/pkg/notify/amconfig"
)

// State is where a silence is in its life at some time.
type State string

// The three states, in Alertmanager's order of listing.
const (
	StateActive  State = "active"
	StatePending State = "pending"
	StateExpired State = "expired"
)

// Matcher is one label matcher in the API v2 shape. IsEqual false negates
// it (!= or !~); a client that does not send isEqual means true.
type Matcher struct {
	Name    string `json:"name"`
	Value   string `json:"value"`
	IsRegex bool   `json:"isRegex"`
	IsEqual *bool  `json:"isEqual,omitempty"`
}

func (m Matcher) equal() bool { return m.IsEqual == nil || *m.IsEqual }

// String writes m as amtool does: name, operator, quoted value.
func (m Matcher) String() string {
	if cm, err := m.compile(); err == nil {
		return cm.String()
	}
	return fmt.Sprintf("%s?%q", m.Name, m.Value)
}

// compile turns m into the routing package's matcher (anchored regular
// expressions, a missing label reads as "").
// Compile is m as a matcher of labels.
func (m Matcher) Compile() (*amconfig.Matcher, error) { return m.compile() }

func (m Matcher) compile() (*amconfig.Matcher, error) {
	return amconfig.NewMatcher(m.matchType(), m.Name, m.Value)
}

// matchType is m's operator.
func (m Matcher) matchType() amconfig.MatchType {
	switch {
	case m.IsRegex && m.equal():
		return amconfig.MatchRegexp
	case m.IsRegex:
		return amconfig.MatchNotRegexp
	case !m.equal():
		return amconfig.MatchNotEqual
	}
	return amconfig.MatchEqual
}

// MaxRegexpInsts bounds the programs a silence's regex matchers compile
// to, together: a regular expression of plain text or a list of names
// makes about one instruction per byte, so this takes four of them at
// MaxFieldBytes. Counted repetitions multiply it, and the store keeps
// each compiled matcher as long as its silence (about 100 bytes an
// instruction): `\pL{99}` 571 times, 4 KiB, compiled to 56,000
// instructions (5 MiB, 40 ms), and a silence of 56 of them cost the
// notifier 225 MB.
const MaxRegexpInsts = 4 * MaxFieldBytes

// FilterCheck is the check (amconfig.ParseMatcherChecked) of one
// request's filter matchers: it refuses a regular expression that, with
// those it passed before, compiles to more than a silence's may. A
// filter could match no silence past it (MatchesFilter compares them as
// written), and a request's filters are compiled together for it: each
// under the bound, 200 of them made 3.2 million instructions.
func FilterCheck() func(t amconfig.MatchType, name, value string) error {
	total := 0
	return func(t amconfig.MatchType, _, value string) error {
		if t != amconfig.MatchRegexp && t != amconfig.MatchNotRegexp {
			return nil
		}
		n := regexpInsts(value)
		if total+n > MaxRegexpInsts {
			return fmt.Errorf("its regular expression compiles to %d instructions or more, with the filters' before it %d, a silence's at most %d", n, total+n, MaxRegexpInsts)
		}
		total += n
		return nil
	}
}

// regexpInsts is about the size of the program value compiles to, as
// amconfig.NewMatcher anchors it, counted on its parse tree, without
// compiling it (a 4 KiB expression can make 444,000 instructions, 117
// MiB to compile); 0 when it does not parse (compile says why).
func regexpInsts(value string) int {
	re, err := syntax.Parse("^(?:"+value+")$", syntax.Perl)
	if err != nil {
		return 0
	}
	return insts(re)
}

// insts is what syntax.Compile makes of re, give or take one or two
// instructions a node, saturating past MaxRegexpInsts so that nested
// repetitions cannot overflow it.
func insts(re *syntax.Regexp) int {
	n := 0
	switch re.Op {
	case syntax.OpLiteral:
		n = len(re.Rune)
	case syntax.OpConcat:
		for _, sub := range re.Sub {
			n += insts(sub)
		}
	case syntax.OpAlternate:
		for _, sub := range re.Sub {
			n += insts(sub) + 1 // an Alt for each
		}
	case syntax.OpCapture, syntax.OpStar, syntax.OpPlus, syntax.OpQuest:
		n = insts(re.Sub[0]) + 2
	case syntax.OpRepeat:
		// x{n,m} is n copies of x and m-n optional ones, x{n,} n and a
		// star: each copy its program (Max and Min are at most 1000).
		copies := re.Max
		if copies < 0 {
			copies = re.Min + 1
		}
		n = max(copies, 1)*insts(re.Sub[0]) + copies - re.Min // the optional ones' Alts
	default: // a class, any character, an anchor, a word boundary
		n = 1
	}
	return min(n, MaxRegexpInsts+1)
}

// Silence mutes the notifications whose labels every matcher matches,
// from StartsAt to EndsAt.
type Silence struct {
	ID        string    `json:"id,omitempty"`
	Matchers  []Matcher `json:"matchers"`
	StartsAt  time.Time `json:"startsAt"`
	EndsAt    time.Time `json:"endsAt"`
	UpdatedAt time.Time `json:"updatedAt,omitzero"`
	CreatedBy string    `json:"createdBy"`
	Comment   string    `json:"comment"`
}

// StateAt is the silence's state at t: pending before StartsAt, expired
// after EndsAt, active in between (both ends included, as Alertmanager).
func (s *Silence) StateAt(t time.Time) State {
	switch {
	case t.Before(s.StartsAt):
		return StatePending
	case t.After(s.EndsAt):
		return StateExpired
	}
	return StateActive
}

// Limits of one silence, which hold before its matchers are compiled.
const (
	MaxMatchers     = 64
	MaxFieldBytes   = 4 << 10 // a matcher's name or value, createdBy
	MaxCommentBytes = 16 << 10
)

// ErrInvalid is wrapped by every reason a silence is refused.
var ErrInvalid = errors.New("silence invalid")

// Validate applies Alertmanager's rules: at least one matcher, each valid,
// not all of them positive matchers of the empty string (a silence of
// everything),
// both times set and the end not before the start, an author and a
// comment.
func (s *Silence) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
	}
	if len(s.Matchers) == 0 {
		return bad("at least one matcher required")
	}
	if len(s.Matchers) > MaxMatchers {
		return bad("%d matchers, at most %d", len(s.Matchers), MaxMatchers)
	}
	allMatchEmpty, insts := true, 0
	for i, m := range s.Matchers {
		if len(m.Name) > MaxFieldBytes || len(m.Value) > MaxFieldBytes {
			return bad("matcher %d: name or value over %d bytes", i, MaxFieldBytes)
		}
		if !validLabelName(m.Name) {
			return bad("invalid label matcher %d: invalid label name %q", i, m.Name)
		}
		if m.IsRegex {
			if insts += regexpInsts(m.Value); insts > MaxRegexpInsts {
				return bad("matcher %d: the silence's regular expressions compile to %d instructions up to it, at most %d: write fewer or smaller counted repetitions ({n})", i, insts, MaxRegexpInsts)
			}
		}
		cm, err := m.compile()
		if err != nil {
			return bad("invalid label matcher %d: %v", i, err)
		}
		// As Alertmanager counts it, a negated matcher never "matches the
		// empty string", whatever its value.
		allMatchEmpty = allMatchEmpty && m.equal() && cm.Matches("")
	}
	if allMatchEmpty {
		return bad("at least one matcher must not match the empty string")
	}
	switch {
	case s.StartsAt.IsZero():
		return bad("invalid zero start timestamp")
	case s.EndsAt.IsZero():
		return bad("invalid zero end timestamp")
	case s.EndsAt.Before(s.StartsAt):
		return bad("end time must not be before start time")
	case s.CreatedBy == "":
		return bad("creator information missing")
	case s.Comment == "":
		return bad("comment missing")
	case len(s.CreatedBy) > MaxFieldBytes:
		return bad("createdBy over %d bytes", MaxFieldBytes)
	case len(s.Comment) > MaxCommentBytes:
		return bad("comment over %d bytes", MaxCommentBytes)
	}
	return nil
}

// compiled is a silence with its matchers ready to test labels.
type compiled struct {
	Silence
	ms   amconfig.Matchers
	cost int
}

// Cost is about the bytes a silence takes where it is kept: its text, and
// the programs its regular expressions compile to, about 100 bytes an
// instruction (MaxRegexpInsts).
func Cost(s Silence) int {
	n := 200 + len(s.ID) + len(s.CreatedBy) + len(s.Comment) // times, keys, the JSON around them
	for _, m := range s.Matchers {
		n += 40 + len(m.Name) + len(m.Value)
		if m.IsRegex {
			n += 100 * regexpInsts(m.Value)
		}
	}
	return n
}

func compile(s Silence) (*compiled, error) {
	c := &compiled{Silence: s, ms: make(amconfig.Matchers, 0, len(s.Matchers)), cost: Cost(s)}
	for _, m := range s.Matchers {
		cm, err := m.compile()
		if err != nil {
			return nil, err
		}
		c.ms = append(c.ms, cm)
	}
	return c, nil
}

// canUpdate reports whether next may replace prev in place at now, as
// Alertmanager decides: the same matchers; an active silence keeps its
// start and does not end in the past; a pending one does not start in the
// past; an expired one is never edited (a new silence is made instead).
func canUpdate(prev, next *Silence, now time.Time) bool {
	if !slices.EqualFunc(prev.Matchers, next.Matchers, func(a, b Matcher) bool {
		return a.Name == b.Name && a.Value == b.Value && a.IsRegex == b.IsRegex && a.equal() == b.equal()
	}) {
		return false
	}
	switch prev.StateAt(now) {
	case StateActive:
		return next.StartsAt.Equal(prev.StartsAt) && !next.EndsAt.Before(now)
	case StatePending:
		return !next.StartsAt.Before(now)
	}
	return false
}

// MatchesFilter is Alertmanager's (0.25) filter of a silence list: every
// filter matcher must be one of the silence's own matchers, the same name,
// operator and value (so `env=~"prod|stage"` finds the silence written
// with it, and `env=~"prod.*"` does not).
func (s *Silence) MatchesFilter(filter amconfig.Matchers) bool {
	for _, f := range filter {
		if !slices.ContainsFunc(s.Matchers, func(m Matcher) bool {
			// As written: compiling every silence's regular expressions
			// at every list cost more than the list.
			return m.matchType() == f.Type && m.Name == f.Name && m.Value == f.Value
		}) {
			return false
		}
	}
	return true
}

// Sort orders silences as Alertmanager lists them at now: active ones
// first, ending soonest first; then pending ones, starting soonest first;
// then expired ones, most recently ended first.
func Sort(sils []Silence, now time.Time) {
	rank := map[State]int{StateActive: 0, StatePending: 1, StateExpired: 2}
	slices.SortStableFunc(sils, func(a, b Silence) int {
		sa, sb := a.StateAt(now), b.StateAt(now)
		if sa != sb {
			return cmp.Compare(rank[sa], rank[sb])
		}
		switch sa {
		case StateExpired:
			return b.EndsAt.Compare(a.EndsAt)
		case StatePending:
			return a.StartsAt.Compare(b.StartsAt)
		}
		return a.EndsAt.Compare(b.EndsAt)
	})
}

// validLabelName is Alertmanager's rule for a label name since 0.27 (its
// default mode): any non-empty UTF-8, so that a silence can name what the
// routes can (OpenTelemetry's otel.scope.name, http.route).
func validLabelName(s string) bool {
	return s != "" && utf8.ValidString(s)
}
