package webhook

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/aiops-dev/aiops/pkg/errs"
)

// ErrTemplate is wrapped by every error of a custom payload template:
// parsing, rendering, output that is not the JSON it should be.
var ErrTemplate = errors.New("webhook: template")

// TemplateFormat says what a template renders.
type TemplateFormat int

const (
	// TemplateText output is sent as is.
	TemplateText TemplateFormat = iota
	// TemplateJSON output must be valid JSON (use the json function to
	// quote values): an invalid rendering is an error, not a request.
	TemplateJSON
)

// maxTemplateOutput bounds a rendering, like a request body.
const maxTemplateOutput = 1 << 20

// errOutputTooLarge is a rendering that passed maxTemplateOutput: Fit
// takes it as a body too large, and lists fewer members.
var errOutputTooLarge = fmt.Errorf("output larger than %d bytes", maxTemplateOutput)

// Template is a custom payload: a Go text/template executed with the
// Incident as its data ({{.Title}}, {{range .RootCauses}}...), with
// missing map keys an error rather than "<no value>", and these functions:
//
//	json v            v as JSON: {"title": {{json .Title}}}
//	join list sep     strings.Join
//	upper v, lower v  case (v a string, a Status, a severity...)
//	default d v       v, or d when v is the zero value ("", 0, nil, zero time)
//	truncate n v      v cut to n characters, ending in "…" when cut
//	time layout t     t (UTC) in a Go layout, "" for the zero time
//	rfc3339 t         t (UTC) in RFC 3339, "" for the zero time
//	unix t            t as unix seconds, 0 for the zero time
//	key               the incident's IdempotencyKey
type Template struct {
	name   string
	format TemplateFormat
	t      *template.Template
}

var templateFuncs = template.FuncMap{
	"json": func(v any) (string, error) {
		b, err := marshal(v)
		return string(b), err
	},
	"join":  func(list []string, sep string) string { return strings.Join(list, sep) },
	"upper": func(v any) string { return strings.ToUpper(str(v)) },
	"lower": func(v any) string { return strings.ToLower(str(v)) },
	"default": func(d, v any) any {
		if v == nil || reflect.ValueOf(v).IsZero() {
			return d
		}
		return v
	},
	"truncate": func(n int, v any) string {
		if n < 1 {
			return ""
		}
		return cut(str(v), n)
	},
	"time": func(layout string, t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format(layout)
	},
	"rfc3339": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format(time.RFC3339)
	},
	"unix": func(t time.Time) int64 {
		if t.IsZero() {
			return 0
		}
		return t.Unix()
	},
	"key": func() string { return "" }, // replaced per rendering
}

// str is v as a string: string types (Status, event.Severity) as they are,
// anything else as fmt.Sprint prints it.
func str(v any) string {
	if rv := reflect.ValueOf(v); rv.Kind() == reflect.String {
		return rv.String()
	}
	return fmt.Sprint(v)
}

// ParseTemplate parses a custom payload template. Errors wrap ErrTemplate
// and name the template and the line: `webhook: template "name" line 3:
// function "titel" not defined`.
func ParseTemplate(name, text string, format TemplateFormat) (*Template, error) {
	if name == "" {
		return nil, fmt.Errorf("%w: no name", ErrTemplate)
	}
	t, err := template.New(name).Funcs(templateFuncs).Option("missingkey=error").Parse(text)
	if err != nil {
		return nil, templateError(name, err)
	}
	return &Template{name: name, format: format, t: t}, nil
}

// Name is the template's name.
func (t *Template) Name() string { return t.name }

// Render executes the template for in. Errors wrap ErrTemplate, name the
// template line that failed, and are permanent: the same incident fails
// the same way.
func (t *Template) Render(in Incident) ([]byte, error) {
	if err := in.Validate(); err != nil {
		return nil, errs.Permanent(err)
	}
	key := in.Key()
	tt, err := t.t.Clone()
	if err != nil {
		return nil, errs.Permanent(templateError(t.name, err))
	}
	tt.Funcs(template.FuncMap{"key": func() string { return key }})
	var buf bytes.Buffer
	if err := tt.Execute(&limitedWriter{w: &buf, n: maxTemplateOutput}, in); err != nil {
		if errors.Is(err, errOutputTooLarge) {
			return nil, errs.Permanent(fmt.Errorf("%w %q: %w", ErrTemplate, t.name, errOutputTooLarge))
		}
		return nil, errs.Permanent(templateError(t.name, err))
	}
	out := buf.Bytes()
	if t.format == TemplateJSON {
		var v any
		if err := json.Unmarshal(out, &v); err != nil {
			var se *json.SyntaxError
			if errors.As(err, &se) {
				line := 1 + bytes.Count(out[:min(int(se.Offset), len(out))], []byte{'\n'})
				return nil, errs.Permanent(fmt.Errorf("%w %q: output line %d is not valid JSON: %v (quote values with the json function)", ErrTemplate, t.name, line, se))
			}
			return nil, errs.Permanent(fmt.Errorf("%w %q: output is not valid JSON: %v", ErrTemplate, t.name, err))
		}
	}
	return out, nil
}

// Check renders the template for SampleIncident in each of its states and
// for a minimal incident (only the required fields: no members, root
// causes, changes or labels), so that a template that fails on an incident
// of the kind that will come fails now, at configuration time. A JSON
// template is also rendered for the sample incident whose text (title,
// summary, names, reasons, label values...) holds a double quote, a
// backslash, a single quote and a line break: a value put into the JSON
// without the json function ("{{ .Title }}") renders valid JSON for the
// plain sample, but breaks on such an incident (a permanent error then)
// or lets a crafted title add keys of its own.
func (t *Template) Check() error {
	full := SampleIncident()
	minimal := Incident{ID: full.ID, Status: StatusOpen, Transition: TransitionOpened, Title: full.Title, OpenedAt: full.OpenedAt}
	ack := full
	ack.Status, ack.Transition, ack.AcknowledgedAt, ack.AcknowledgedBy = StatusAcknowledged, TransitionAcknowledged, full.OpenedAt.Add(4*time.Minute), "ana"
	ack.At = ack.AcknowledgedAt
	res := ack
	res.Status, res.Transition, res.ResolvedAt, res.ResolvedBy = StatusResolved, TransitionResolved, full.OpenedAt.Add(31*time.Minute), "ana"
	res.Comments = []Comment{{By: "ana", Text: "failing over the replica", Time: full.OpenedAt.Add(10 * time.Minute)}}
	res.At = res.ResolvedAt
	type sample struct {
		what    string
		in      Incident
		awkward bool
	}
	samples := []sample{{"the sample incident", full, false}, {"the sample incident acknowledged", ack, false},
		{"the sample incident resolved", res, false}, {"a minimal incident", minimal, false}}
	if t.format == TemplateJSON {
		samples = append(samples, sample{"the sample incident", awkwardIncident(full), true},
			sample{"the sample incident acknowledged", awkwardIncident(ack), true}, sample{"the sample incident resolved", awkwardIncident(res), true})
	}
	for _, c := range samples {
		_, err := t.Render(c.in)
		switch {
		case err == nil:
		case c.awkward:
			return fmt.Errorf("%w (rendering %s with quotes, a backslash and a line break in its text: "+
				"{{ json .Title }} puts a value into JSON, \"{{ .Title }}\" does not)", err, c.what)
		default:
			return fmt.Errorf("%w (rendering %s)", err, c.what)
		}
	}
	return nil
}

// awkward is s with what a JSON string must escape around it: a double
// quote first (so that truncate keeps one), a backslash, a single quote
// (the js function escapes it in a way JSON does not take) and a line
// break.
func awkward(s string) string { return `"` + s + `" \ it's` + "\n" + `a second line` }

// awkwardIncident is in with awkward text in every string field a
// template may put into its output as it is: not the id, status,
// transition, severity, kinds, fingerprints, times and URLs, which are
// not free text. The labels keep their names (templates name them) and
// get one more whose name is awkward (templates that range over them).
func awkwardIncident(in Incident) Incident {
	for _, s := range []*string{&in.Title, &in.Summary, &in.Service, &in.Team, &in.Owner, &in.Assignee} {
		*s = awkward(*s)
	}
	awkwardLabels := func(m map[string]string) map[string]string {
		if m == nil {
			return nil
		}
		out := make(map[string]string, len(m)+1)
		for k, v := range m {
			out[k] = awkward(v)
		}
		// A label name is free text too (OpenTelemetry attributes, UTF-8
		// names): one more, awkward, for a template that ranges over them.
		out[awkward("label")] = awkward("value")
		return out
	}
	in.Labels = awkwardLabels(in.Labels)
	in.Services = slices.Clone(in.Services)
	for i := range in.Services {
		in.Services[i] = awkward(in.Services[i])
	}
	in.RootCauses = slices.Clone(in.RootCauses)
	for i := range in.RootCauses {
		rc := &in.RootCauses[i]
		rc.Service = awkward(rc.Service)
		rc.Reasons = slices.Clone(rc.Reasons)
		for j := range rc.Reasons {
			rc.Reasons[j] = awkward(rc.Reasons[j])
		}
	}
	in.Members = slices.Clone(in.Members)
	for i := range in.Members {
		m := &in.Members[i]
		m.Service, m.Name, m.Summary = awkward(m.Service), awkward(m.Name), awkward(m.Summary)
		m.Labels = awkwardLabels(m.Labels)
	}
	in.Changes = slices.Clone(in.Changes)
	for i := range in.Changes {
		c := &in.Changes[i]
		for _, s := range []*string{&c.Service, &c.Type, &c.Version, &c.Author, &c.Commit, &c.Description} {
			*s = awkward(*s)
		}
	}
	return in
}

// CheckTemplate parses a template and checks it (Template.Check): the one
// call to validate a configured template.
func CheckTemplate(name, text string, format TemplateFormat) error {
	t, err := ParseTemplate(name, text, format)
	if err != nil {
		return err
	}
	return t.Check()
}

// templateError restates text/template's "template: name:3:14: executing
// ..." as `webhook: template "name" line 3: ...`.
func templateError(name string, err error) error {
	msg := err.Error()
	rest, ok := strings.CutPrefix(msg, "template: "+name+":")
	if !ok {
		return fmt.Errorf("%w %q: %s", ErrTemplate, name, msg)
	}
	lineText, rest, _ := strings.Cut(rest, ":")
	line, lerr := strconv.Atoi(lineText)
	if lerr != nil {
		return fmt.Errorf("%w %q: %s", ErrTemplate, name, msg)
	}
	// Drop the column and text/template's restatement of the template.
	if col, after, ok := strings.Cut(rest, ":"); ok {
		if _, cerr := strconv.Atoi(col); cerr == nil {
			rest = after
		}
	}
	rest = strings.TrimSpace(rest)
	if after, ok := strings.CutPrefix(rest, "executing "+strconv.Quote(name)+" at "); ok {
		rest = "at " + after
	}
	return fmt.Errorf("%w %q line %d: %s", ErrTemplate, name, line, rest)
}

// limitedWriter fails a rendering that grows past n bytes (a runaway
// range), rather than filling memory.
type limitedWriter struct {
	w *bytes.Buffer
	n int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if l.w.Len()+len(p) > l.n {
		return 0, errOutputTooLarge
	}
	return l.w.Write(p)
}
