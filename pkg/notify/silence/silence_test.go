package silence

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/aiops-dev/aiops/pkg/notify/amconfig"
)

var t0 = time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)

func eq(name, value string) Matcher { return Matcher{Name: name, Value: value} }

func neg(m Matcher) Matcher {
	f := false
	m.IsEqual = &f
	return m
}

func re(m Matcher) Matcher { m.IsRegex = true; return m }

func valid() Silence {
	return Silence{Matchers: []Matcher{eq("service", "db")}, StartsAt: t0, EndsAt: t0.Add(time.Hour), CreatedBy: "ann", Comment: "maintenance"}
}

func TestValidate(t *testing.T) {
	for _, c := range []struct {
		name string
		edit func(*Silence)
		want string
	}{
		{"valid", func(*Silence) {}, ""},
		{"no matcher", func(s *Silence) { s.Matchers = nil }, "at least one matcher required"},
		{"all match empty", func(s *Silence) { s.Matchers = []Matcher{eq("a", ""), re(eq("b", ".*"))} }, "must not match the empty string"},
		{"a negated matcher counts as not matching empty", func(s *Silence) { s.Matchers = []Matcher{eq("a", ""), neg(eq("c", "x"))} }, ""},
		{"one does not match empty", func(s *Silence) { s.Matchers = []Matcher{eq("a", ""), re(eq("b", ".+"))} }, ""},
		{"bad regex", func(s *Silence) { s.Matchers = []Matcher{re(eq("a", "("))} }, "invalid label matcher 0"},
		{"empty name", func(s *Silence) { s.Matchers = []Matcher{eq("", "x")} }, `invalid label name ""`},
		{"name not UTF-8", func(s *Silence) { s.Matchers = []Matcher{eq("a\xff", "x")} }, `invalid label name "a\xff"`},
		// As Alertmanager 0.27 and later take them: what OpenTelemetry
		// names, which the routes can match, a silence can too.
		{"an OpenTelemetry name", func(s *Silence) { s.Matchers = []Matcher{eq("otel.scope.name", "checkout"), eq("0a", "x")} }, ""},
		{"too many", func(s *Silence) {
			for i := 0; i <= MaxMatchers; i++ {
				s.Matchers = append(s.Matchers, eq("a", "x"))
			}
		}, "matchers, at most"},
		{"long value", func(s *Silence) { s.Matchers = []Matcher{eq("a", strings.Repeat("x", MaxFieldBytes+1))} }, "over 4096 bytes"},
		{"zero start", func(s *Silence) { s.StartsAt = time.Time{} }, "invalid zero start timestamp"},
		{"zero end", func(s *Silence) { s.EndsAt = time.Time{} }, "invalid zero end timestamp"},
		{"end before start", func(s *Silence) { s.EndsAt = t0.Add(-time.Second) }, "end time must not be before start time"},
		{"no author", func(s *Silence) { s.CreatedBy = "" }, "creator information missing"},
		{"no comment", func(s *Silence) { s.Comment = "" }, "comment missing"},
	} {
		s := valid()
		c.edit(&s)
		err := s.Validate()
		if (c.want == "") != (err == nil) || (err != nil && (!strings.Contains(err.Error(), c.want) || !errors.Is(err, ErrInvalid))) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
}

func TestStateAt(t *testing.T) {
	s := valid()
	for _, c := range []struct {
		at   time.Time
		want State
	}{
		{t0.Add(-time.Nanosecond), StatePending},
		{t0, StateActive},
		{t0.Add(time.Hour), StateActive},
		{t0.Add(time.Hour + time.Nanosecond), StateExpired},
	} {
		if got := s.StateAt(c.at); got != c.want {
			t.Errorf("at %s: %s, want %s", c.at, got, c.want)
		}
	}
}

func TestCanUpdate(t *testing.T) {
	now := t0.Add(30 * time.Minute) // prev is active
	prev := valid()
	for _, c := range []struct {
		name string
		edit func(*Silence)
		at   time.Time
		want bool
	}{
		{"longer", func(s *Silence) { s.EndsAt = t0.Add(2 * time.Hour) }, now, true},
		{"comment", func(s *Silence) { s.Comment = "other" }, now, true},
		{"other matchers", func(s *Silence) { s.Matchers = []Matcher{eq("service", "web")} }, now, false},
		{"negated matcher", func(s *Silence) { s.Matchers = []Matcher{neg(eq("service", "db"))} }, now, false},
		{"isEqual spelled out", func(s *Silence) { tr := true; s.Matchers = []Matcher{{Name: "service", Value: "db", IsEqual: &tr}} }, now, true},
		{"active, moved start", func(s *Silence) { s.StartsAt = t0.Add(time.Minute) }, now, false},
		{"active, ends in the past", func(s *Silence) { s.EndsAt = t0.Add(10 * time.Minute) }, now, false},
		{"pending, starts later", func(s *Silence) { s.StartsAt = t0.Add(time.Minute) }, t0.Add(-time.Hour), true},
		{"pending, starts in the past", func(s *Silence) { s.StartsAt = t0.Add(-2 * time.Hour) }, t0.Add(-time.Hour), false},
		{"expired", func(*Silence) {}, t0.Add(2 * time.Hour), false},
	} {
		next := valid()
		c.edit(&next)
		if got := canUpdate(&prev, &next, c.at); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

func TestMatchesFilter(t *testing.T) {
	s := Silence{Matchers: []Matcher{eq("service", "db"), re(eq("env", "prod|stage")), neg(eq("team", "x"))}}
	// The cases were asked of Alertmanager 0.25 with silences like s.
	for _, c := range []struct {
		filter string
		want   bool
	}{
		{``, true},
		{`service="db"`, true},
		{`service="web"`, false},
		{`service=~"d.*"`, false},
		{`env=~"prod|stage"`, true},
		{`env="prod|stage"`, false},
		{`env=~"prod.*"`, false},
		{`team!="x"`, true},
		{`team="x"`, false},
		{`team!="y"`, false},
		{`missing=""`, false},
		{`service!="db"`, false},
		{`service="db",team!="x"`, true},
		{`service="db",team!="y"`, false},
	} {
		ms, err := amconfig.ParseMatchers(c.filter)
		if err != nil {
			t.Fatal(err)
		}
		if got := s.MatchesFilter(ms); got != c.want {
			t.Errorf("filter %s: %v, want %v", c.filter, got, c.want)
		}
	}
}

func TestSort(t *testing.T) {
	now := t0
	mk := func(id string, start, end time.Duration) Silence {
		return Silence{ID: id, StartsAt: now.Add(start), EndsAt: now.Add(end)}
	}
	sils := []Silence{
		mk("expired-early", -3*time.Hour, -2*time.Hour),
		mk("pending-late", 2*time.Hour, 3*time.Hour),
		mk("active-late", -time.Hour, 5*time.Hour),
		mk("expired-late", -3*time.Hour, -time.Hour),
		mk("pending-early", time.Hour, 9*time.Hour),
		mk("active-early", -time.Hour, time.Hour),
	}
	Sort(sils, now)
	var got []string
	for _, s := range sils {
		got = append(got, s.ID)
	}
	want := "active-early active-late pending-early pending-late expired-late expired-early"
	if strings.Join(got, " ") != want {
		t.Fatalf("order %v, want %s", got, want)
	}
}

func TestNewUUID(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		u := newUUID()
		if len(u) != 36 || u[14] != '4' || !strings.ContainsRune("89ab", rune(u[19])) || seen[u] {
			t.Fatalf("%q is not a fresh version 4 UUID", u)
		}
		seen[u] = true
	}
}

// A regular expression's counted repetitions multiply its compiled
// program: `\pL{99}` 571 times, 4 KiB, compiled to 56,000 instructions,
// 5 MiB the store kept for as long as the silence, and 40 ms to compile;
// a silence of 56 of them cost the notifier 225 MB and 5 s, so a few
// posts, each within the body's 256 KiB, exhausted its memory and
// stopped every notification. Such a matcher is refused, naming it; a
// long list of names, the longest regular expression a silence usually
// holds, is taken.
func TestSilenceRegexpOfAHugeProgramIsRefused(t *testing.T) {
	s := valid()
	s.Matchers = append(s.Matchers, re(eq("pod", strings.Repeat(`\pL{99}`, MaxFieldBytes/7))))
	if err := s.Validate(); err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "matcher 1") || !strings.Contains(err.Error(), "instructions") {
		t.Errorf("got %v, want matcher 1 refused for its program's size", err)
	}
	// Counted on its parse, not compiled: `\pL{1000}` 455 times makes
	// 455,000 instructions, 117 MiB to compile.
	s = valid()
	s.Matchers = append(s.Matchers, re(eq("pod", strings.Repeat(`\pL{1000}`, MaxFieldBytes/9))))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	err := s.Validate()
	runtime.ReadMemStats(&after)
	if err == nil || !strings.Contains(err.Error(), "instructions") {
		t.Errorf("got %v, want it refused for its program's size", err)
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > 16<<20 {
		t.Errorf("refusing it allocated %d bytes, want at most 16 MiB", got)
	}
	// Smaller ones count together: 64 of 8,000 instructions each (574
	// bytes) would be 49 MB.
	s = valid()
	for i := range MaxMatchers - 1 {
		s.Matchers = append(s.Matchers, re(eq(fmt.Sprintf("l%d", i), strings.Repeat(`\pL{99}`, 82))))
	}
	if err := s.Validate(); err == nil || !strings.Contains(err.Error(), "matcher 3:") {
		t.Errorf("got %v, want matcher 3 refused, where the programs pass the limit", err)
	}
	hosts := make([]string, 0, 400)
	for i := 0; len(strings.Join(hosts, "|")) < MaxFieldBytes-40; i++ {
		hosts = append(hosts, fmt.Sprintf("web-%04d", i))
	}
	s = valid()
	for _, name := range []string{"instance", "host", "pod", "node"} {
		s.Matchers = append(s.Matchers, re(eq(name, strings.Join(hosts, "|")+`(:[0-9]{2,5})?`)))
	}
	if err := s.Validate(); err != nil {
		t.Errorf("four lists of %d host names: %v", len(hosts), err)
	}
}

// A list filter compares a silence's matchers as written: it compiles no
// regular expression, which cost a list of 10,000 silences of 64 costly
// matchers each hours of the notifier's time at every amtool query.
func TestMatchesFilterCompilesNothing(t *testing.T) {
	s := Silence{Matchers: []Matcher{re(eq("env", "prod|stage")), neg(re(eq("team", "a.*")))}}
	ms, err := amconfig.ParseMatchers(`env=~"prod|stage",team!~"a.*"`)
	if err != nil {
		t.Fatal(err)
	}
	if !s.MatchesFilter(ms) {
		t.Fatal("the filter does not match the silence written with it")
	}
	if n := testing.AllocsPerRun(10, func() { s.MatchesFilter(ms) }); n != 0 {
		t.Errorf("a filter allocated %v times, want none (no compiling)", n)
	}
}
