// Package logging builds the zerolog.Logger every aiops service uses, so that
// all of them write the same timestamps, levels and field names and a log
// query written for one service works for all.
package logging

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"
)

// Field names shared by all services. Log these keys, not ad-hoc variants
// (eventID, incident, svc), so one query follows an event through the pipeline.
const (
	FieldService   = "service"
	FieldComponent = "component"
	// FieldPart names a part of a component (a table's batch writer, the
	// retention pass): zerolog repeats a key added twice, and a line
	// with two components matches neither query.
	FieldPart       = "part"
	FieldEventID    = "event_id"
	FieldIncidentID = "incident_id"
	FieldSubject    = "subject"
	FieldTime       = "time"
)

// TimeFormat is RFC 3339 in UTC with milliseconds: sortable as text and fine
// enough to order events within a second.
const TimeFormat = "2006-01-02T15:04:05.000Z07:00"

// Formats accepted in Options.Format.
const (
	FormatJSON    = "json"
	FormatConsole = "console"
	FormatAuto    = "auto" // console on a terminal, JSON otherwise
)

// ErrInvalidOptions is wrapped by every error about Options.
var ErrInvalidOptions = errors.New("invalid logging options")

// Options configures New. The yaml tags let services embed it in their
// configuration as `log:`.
type Options struct {
	// Level is trace, debug, info (the default when empty), warn, error or
	// disabled.
	Level string `yaml:"level"`
	// Format is json, console or auto (the default when empty).
	Format string `yaml:"format"`
	// Caller adds the file:line of the log call, at some cost per line.
	Caller bool `yaml:"caller"`
	// Service is added to every line as FieldService.
	Service string `yaml:"-"`
	// Now returns the time stamped on each line; nil means time.Now. Tests
	// inject a fixed clock.
	Now func() time.Time `yaml:"-"`
}

var levels = map[string]zerolog.Level{
	"trace":    zerolog.TraceLevel,
	"debug":    zerolog.DebugLevel,
	"info":     zerolog.InfoLevel,
	"warn":     zerolog.WarnLevel,
	"warning":  zerolog.WarnLevel,
	"error":    zerolog.ErrorLevel,
	"disabled": zerolog.Disabled,
}

// ParseLevel maps a level name (case-insensitive; "" is info) to a zerolog
// level. Unlike zerolog.ParseLevel it accepts no numbers and no fatal/panic,
// which are not levels a service should be configured to.
func ParseLevel(s string) (zerolog.Level, error) {
	if s == "" {
		return zerolog.InfoLevel, nil
	}
	if l, ok := levels[strings.ToLower(s)]; ok {
		return l, nil
	}
	return zerolog.NoLevel, fmt.Errorf("%w: level %q is not one of trace, debug, info, warn, error, disabled",
		ErrInvalidOptions, s)
}

// Validate reports the first invalid field, naming it.
func (o Options) Validate() error {
	if _, err := ParseLevel(o.Level); err != nil {
		return fmt.Errorf("log.level: %w", err)
	}
	switch o.Format {
	case "", FormatJSON, FormatConsole, FormatAuto:
	default:
		return fmt.Errorf("log.format: %w: %q is not one of json, console, auto", ErrInvalidOptions, o.Format)
	}
	return nil
}

// New returns a logger writing to w. It changes no zerolog globals, so
// loggers with different options coexist (tests, several services in one
// process).
func New(w io.Writer, o Options) (zerolog.Logger, error) {
	if err := o.Validate(); err != nil {
		return zerolog.Nop(), err
	}
	level, _ := ParseLevel(o.Level)
	now := o.Now
	if now == nil {
		now = time.Now
	}

	terminal := isTerminal(w)
	if o.Format == FormatConsole || (o.Format != FormatJSON && terminal) {
		w = zerolog.ConsoleWriter{
			Out:        w,
			NoColor:    !terminal,
			TimeFormat: "15:04:05.000",
		}
	}
	ctx := zerolog.New(w).Level(level).Hook(timestampHook{now}).With()
	if o.Service != "" {
		ctx = ctx.Str(FieldService, o.Service)
	}
	if o.Caller {
		ctx = ctx.Caller()
	}
	return ctx.Logger(), nil
}

// timestampHook stamps each line with our format and clock instead of
// zerolog's package-level TimeFieldFormat and TimestampFunc, which are
// process-wide.
type timestampHook struct{ now func() time.Time }

func (h timestampHook) Run(e *zerolog.Event, _ zerolog.Level, _ string) {
	e.Str(FieldTime, h.now().UTC().Format(TimeFormat))
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd()))
}
