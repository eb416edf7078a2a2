package event

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/aiops-dev/aiops/pkg/errs"
)

// Limits on one envelope. They keep a bad producer from filling memory or
// ClickHouse with one event; the JSON Schema states the same numbers.
const (
	MaxBodyBytes     = 512 << 10
	MaxLabels        = 128
	MaxLabelKeyBytes = 256
	MaxLabelBytes    = 4096
	MaxNameBytes     = 256 // service, source
	MaxLinks         = 1024
	// MaxSchemaVersion is the largest schema_version the store holds (a
	// UInt16 column). Newer versions than SchemaVersion are accepted, so
	// an older stage passes a newer producer's events on.
	MaxSchemaVersion = 1<<16 - 1
)

// Times outside what ClickHouse's DateTime stores are refused.
var (
	minTime = time.Date(1970, 1, 2, 0, 0, 0, 0, time.UTC)
	maxTime = time.Date(2105, 12, 31, 0, 0, 0, 0, time.UTC)
)

// FieldError is one problem with one field. Field is a JSON path such as
// "labels.env" or "body.value"; empty for the envelope as a whole.
type FieldError struct {
	Field   string `json:"field,omitempty"`
	Problem string `json:"problem"`
}

func (f FieldError) String() string {
	if f.Field == "" {
		return f.Problem
	}
	return fmt.Sprintf("field %q %s", f.Field, f.Problem)
}

// ValidationError lists every problem found in one envelope.
type ValidationError struct {
	Problems []FieldError `json:"problems"`
}

func (v *ValidationError) Error() string {
	parts := make([]string, len(v.Problems))
	for i, p := range v.Problems {
		parts[i] = p.String()
	}
	return "invalid event: " + strings.Join(parts, "; ")
}

// Validate checks every field and returns a permanent error wrapping a
// *ValidationError that lists each problem, or nil.
func (e *Envelope) Validate() error {
	var p problems
	if e.SchemaVersion < 1 || e.SchemaVersion > MaxSchemaVersion {
		p.add("schema_version", "must be 1 to %d, got %d", MaxSchemaVersion, e.SchemaVersion)
	}
	switch {
	case e.ID == "":
		p.add("id", "is required")
	case !ValidID(e.ID):
		p.add("id", "is not a ULID (26 characters of Crockford base32): %q", clip(e.ID))
	}
	switch {
	case e.Kind == "":
		p.add("kind", "is required")
	case !e.Kind.Valid():
		p.add("kind", "is %q, want one of %s", clip(string(e.Kind)), kindList())
	}
	p.time("time", e.Time)
	p.time("observed_time", e.ObservedTime)
	p.name("service", e.Service, true)
	p.name("source", e.Source, false)
	p.labels("labels", e.Labels)
	p.labels("resource", e.Resource)
	if e.Severity != "" && e.Severity.Rank() == 0 {
		p.add("severity", "is %q, want one of debug, info, warning, error, critical", clip(string(e.Severity)))
	}
	if !validFingerprint(e.Fingerprint) {
		p.add("fingerprint", "must be 1 to %d bytes of printable UTF-8 without control characters or bidirectional formatting characters, got %q", MaxFingerprintBytes, clip(e.Fingerprint))
	}
	if len(e.Links) > MaxLinks {
		// Not checked one by one: a 1 MiB envelope holds 250,000 links,
		// and a problem for each cost far more than the decoding did.
		p.add("links", "has %d entries, over the limit of %d", len(e.Links), MaxLinks)
	} else {
		for i, l := range e.Links {
			if !ValidID(l) {
				p.add(fmt.Sprintf("links[%d]", i), "is not a ULID: %q", clip(l))
			}
		}
	}
	if len(e.Body) > MaxBodyBytes {
		p.add("body", "is %d bytes, over the limit of %d", len(e.Body), MaxBodyBytes)
	} else if e.Kind.Valid() {
		p.list = append(p.list, validateBody(e.Kind, e.Body)...)
	}
	if len(p.list) == 0 {
		return nil
	}
	sortProblems(p.list)
	return errs.Permanent(&ValidationError{Problems: p.list})
}

type problems struct{ list []FieldError }

func (p *problems) add(field, format string, args ...any) {
	p.list = append(p.list, FieldError{Field: field, Problem: fmt.Sprintf(format, args...)})
}

func (p *problems) time(field string, t time.Time) {
	switch {
	case t.IsZero():
		p.add(field, "is required")
	case t.Before(minTime) || t.After(maxTime):
		p.add(field, "is %s, outside the storable range 1970-01-02 to 2105-12-31", t.Format(time.RFC3339))
	}
}

func (p *problems) name(field, v string, required bool) {
	switch {
	case v == "" && required:
		p.add(field, "is required")
	case len(v) > MaxNameBytes:
		p.add(field, "is %d bytes, over the limit of %d", len(v), MaxNameBytes)
	case !printable(v):
		p.add(field, "must be printable UTF-8 without control characters or bidirectional formatting characters")
	}
}

func (p *problems) labels(field string, m map[string]string) {
	if len(m) > MaxLabels {
		p.add(field, "has %d entries, over the limit of %d", len(m), MaxLabels)
		return
	}
	for k, v := range m {
		switch {
		case k == "":
			p.add(field, "has an empty key")
		case len(k) > MaxLabelKeyBytes:
			p.add(field+"."+clip(k), "key is %d bytes, over the limit of %d", len(k), MaxLabelKeyBytes)
		case !printable(k):
			p.add(field+"."+clip(k), "key must be printable UTF-8 without control characters or bidirectional formatting characters")
		case len(v) > MaxLabelBytes:
			p.add(field+"."+k, "is %d bytes, over the limit of %d", len(v), MaxLabelBytes)
		case !utf8.ValidString(v):
			p.add(field+"."+k, "is not valid UTF-8")
		}
	}
}

func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		// C0, DEL and C1 controls, and the bidirectional formatting
		// characters: a name shown in a ticket or a chat message must
		// read as what it is (U+202E would show "gnp.exe" as "exe.png").
		if unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) {
			return false
		}
	}
	return true
}

// clip keeps error messages short when a producer sends a huge value.
func clip(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	return Prefix(s, max) + "..."
}

func kindList() string {
	names := make([]string, len(Kinds))
	for i, k := range Kinds {
		names[i] = string(k)
	}
	return strings.Join(names, ", ")
}

func sortProblems(list []FieldError) {
	slices.SortStableFunc(list, func(a, b FieldError) int { return strings.Compare(a.Field, b.Field) })
}

func asType[T error](err error, target *T) bool { return errors.As(err, target) }

// finite rejects what JSON cannot carry faithfully and ClickHouse would
// store as a poison value.
func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

// decodeBody decodes raw into v, strictly: a field of the wrong type is a
// FieldError under "body.".
func decodeBody(raw json.RawMessage, v any) *FieldError {
	if len(raw) == 0 {
		return nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) && typeErr.Field != "" {
			return &FieldError{Field: "body." + typeErr.Field, Problem: typeProblem(err)}
		}
		return &FieldError{Field: "body" + failingField(raw, v), Problem: typeProblem(err)}
	}
	return nil
}

// failingField finds which top-level field of a body struct a decode error
// came from, for errors encoding/json reports without a field (a time that
// is not RFC 3339): it decodes each field of raw on its own. It returns
// ".name", or "" when it cannot tell.
func failingField(raw json.RawMessage, v any) string {
	var fields map[string]json.RawMessage
	if json.Unmarshal(raw, &fields) != nil {
		return ""
	}
	t := reflect.TypeOf(v).Elem()
	for i := 0; i < t.NumField(); i++ {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		value, ok := fields[name]
		if !ok || name == "" || name == "-" {
			continue
		}
		if json.Unmarshal(value, reflect.New(t.Field(i).Type).Interface()) != nil {
			return "." + name
		}
	}
	return ""
}

// Prefix is the longest start of s of at most n bytes that ends on a
// character's start: a cut that splits no UTF-8 sequence.
func Prefix(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
