package amconfig

import (
	"fmt"
	"strings"

	"github.com/aiops-dev/aiops/pkg/config"
)

// ErrInvalidConfig is wrapped by every error Parse and Load return for a
// configuration they refuse, so a main maps it to its usage exit code with
// errors.Is.
var ErrInvalidConfig = fmt.Errorf("amconfig: %w", config.ErrInvalidConfig)

// Error is one problem in a configuration: where it is (the key path, as in
// route.routes[1].matchers[0], and the line) and what is wrong.
type Error struct {
	// Path names the key: top-level key, then .key for a mapping key and
	// [i] for a list item; list items that have a name carry it in
	// parentheses, as in receivers[2] (team-x).
	Path string
	// Line is the 1-based line of the offending key or value; 0 if unknown.
	Line int
	// Msg says what is wrong.
	Msg string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Path)
	if e.Path != "" {
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	if e.Line > 0 {
		fmt.Fprintf(&b, " (line %d)", e.Line)
	}
	return b.String()
}

// Unwrap makes every Error an ErrInvalidConfig.
func (e *Error) Unwrap() error { return ErrInvalidConfig }

// Errors is every problem Parse found, in the order of the file (problems
// found by cross-checks, such as an undefined receiver, come after the
// problems of single keys). errors.As finds the first *Error through it.
type Errors []*Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	if len(lines) == 1 {
		return "amconfig: " + lines[0]
	}
	return fmt.Sprintf("amconfig: %d problems:\n  %s", len(lines), strings.Join(lines, "\n  "))
}

// Unwrap gives errors.Is and errors.As every problem.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}
