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
	t := amconfig.MatchEqual
	switch {
	case m.IsRegex && m.equal():
		t = amconfig.MatchRegexp
	case m.IsRegex:
		t = amconfig.MatchNotRegexp
	case !m.equal():
		t = amconfig.MatchNotEqual
	}
	return amconfig.NewMatcher(t, m.Name, m.Value)
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
	allMatchEmpty := true
	for i, m := range s.Matchers {
		if len(m.Name) > MaxFieldBytes || len(m.Value) > MaxFieldBytes {
			return bad("matcher %d: name or value over %d bytes", i, MaxFieldBytes)
		}
		if !validLabelName(m.Name) {
			return bad("invalid label matcher %d: invalid label name %q", i, m.Name)
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
	ms amconfig.Matchers
}

func compile(s Silence) (*compiled, error) {
	c := &compiled{Silence: s, ms: make(amconfig.Matchers, 0, len(s.Matchers))}
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
			cm, err := m.compile()
			return err == nil && cm.Type == f.Type && cm.Name == f.Name && cm.Value == f.Value
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
