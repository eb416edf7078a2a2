package notifier

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/pkg/notify/amconfig"
)

// An incident is routed by its severity label as aiops reads it (debug,
// info, warning, error, critical: labelsOf), not as its alert spelt it:
// an alert sent as severity=page is a critical incident. A file written
// for Alertmanager routes on the alerts' words (match: {severity: page},
// severity=~"P1|P2"), which no incident has: its pages would go to
// another route, or nowhere, without a word. checkSeverityMatchers
// refuses such a matcher at start, naming where it is and what to write.

// severityWords are spellings ParseSeverity reads as another severity
// (lower case; each is tried as written in upper and title case too),
// tried against the regular expressions of severity matchers. A matcher
// of = or != is tried with its own value.
var severityWords = func() []string {
	words := []string{"trace", "dbg", "lowest", "information", "informational", "notice", "ok", "none", "low", "planning",
		"warn", "minor", "medium", "moderate", "err", "major", "high", "severe",
		"crit", "fatal", "alert", "emerg", "emergency", "panic", "page", "disaster", "highest", "urgent", "blocker",
		"debug", "info", "warning", "error", "critical"}
	for level := range 6 {
		for _, prefix := range []string{"p", "sev", "sev-", "s"} {
			words = append(words, fmt.Sprint(prefix, level))
		}
	}
	var out []string
	for _, w := range words {
		out = append(out, w, strings.ToUpper(w), strings.ToUpper(w[:1])+w[1:])
	}
	return out
}()

// checkSeverityMatchers reports every severity matcher of cfg's routes
// and inhibit rules that matches an alert's word for a severity but not
// the severity its incident has (or, negated, excludes the word but not
// the severity): it would not treat the incident as Alertmanager treats
// the alert.
func checkSeverityMatchers(cfg *amconfig.Config) error {
	var problems []error
	check := func(where string, ms amconfig.Matchers) {
		for _, m := range ms {
			if m.Name != "severity" {
				continue
			}
			if why := severityProblem(m); why != "" {
				problems = append(problems, fmt.Errorf("%s: %s", where, why))
			}
		}
	}
	cfg.Route.Walk(func(r *amconfig.Route) { check(r.Path, r.Matchers) })
	for _, r := range cfg.InhibitRules {
		check(r.Path+", its source", r.SourceMatchers)
		check(r.Path+", its target", r.TargetMatchers)
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: notifier.routes: %w", ErrInvalidConfig, errors.Join(problems...))
	}
	return nil
}

// severityProblem says why m, a severity matcher, would not treat an
// incident as Alertmanager treats its alert, and what to write; "" when
// it would.
func severityProblem(m *amconfig.Matcher) string {
	w, sev, ok := severityMismatch(m)
	if !ok {
		return ""
	}
	return fmt.Sprintf("%s: an alert's severity %q is %s in its incident's labels (an incident's severity is one of debug, info, warning, error, critical), "+
		"which this matcher does not take as it takes %q: name the incident's severity, as in %s", m, w, sev, w, suggestion(m, sev))
}

// severityMismatch finds a word m's pattern (its value, or its regular
// expression, whether the matcher is negated or not) takes, whose
// severity the pattern does not take.
func severityMismatch(m *amconfig.Matcher) (word string, sev event.Severity, ok bool) {
	takes := func(v string) bool {
		switch m.Type {
		case amconfig.MatchEqual, amconfig.MatchNotEqual:
			return v == m.Value
		case amconfig.MatchNotRegexp:
			return !m.Matches(v)
		}
		return m.Matches(v)
	}
	words := severityWords
	if m.Type == amconfig.MatchEqual || m.Type == amconfig.MatchNotEqual {
		words = []string{m.Value}
	}
	for _, w := range words {
		if sev, known := event.ParseSeverity(w); known && sev != "" && takes(w) && !takes(string(sev)) {
			return w, sev, true
		}
	}
	return "", "", false
}

// suggestion is m taking sev besides what it takes.
func suggestion(m *amconfig.Matcher, sev event.Severity) string {
	value := m.Value
	if m.Type == amconfig.MatchEqual || m.Type == amconfig.MatchNotEqual {
		value = regexp.QuoteMeta(value)
	} else if inner, ok := strings.CutPrefix(value, "^(?:"); ok && strings.HasSuffix(inner, ")$") {
		value = strings.TrimSuffix(inner, ")$") // match_re's, anchored as Alertmanager shows it
	}
	op := "=~"
	if m.Type == amconfig.MatchNotEqual || m.Type == amconfig.MatchNotRegexp {
		op = "!~"
	}
	return fmt.Sprintf(`%s%s"%s|%s"`, m.Name, op, sev, value)
}
