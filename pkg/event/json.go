package event

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aiops-dev/aiops/pkg/errs"
)

// MaxEnvelopeBytes bounds one encoded envelope. Larger input is refused
// before it is parsed.
const MaxEnvelopeBytes = 1 << 20

// Decode parses one JSON envelope, normalizes it (filling id, observed time
// and fingerprint where missing) and validates it. Every error is permanent:
// the same bytes will never decode, so they belong in a dead letter, not in a
// retry loop.
func Decode(data []byte, now time.Time) (*Envelope, error) {
	return DecodeWithID(data, now, nil)
}

// DecodeWithID is Decode where an envelope sent without an id gets
// id(e) (called before Normalize, so fields left out are still empty)
// instead of a random one; an empty result falls back to a random id. A
// gateway uses it to give the events of a retried request the ids they got
// the first time.
func DecodeWithID(data []byte, now time.Time, id func(*Envelope) string) (*Envelope, error) {
	e, err := unmarshal(data)
	if err != nil {
		return nil, err
	}
	if e.ID == "" && id != nil {
		e.ID = id(e)
	}
	e.Normalize(now)
	if err := e.Validate(); err != nil {
		return nil, err
	}
	return e, nil
}

// Parse is the strict decoder for events taken off the bus: it fills
// nothing in, so an envelope must carry every required field of the JSON
// Schema (id, observed_time and fingerprint included). A missing id would
// otherwise get a new one on every redelivery and defeat deduplication.
// Every error is permanent.
func Parse(data []byte) (*Envelope, error) {
	e, err := unmarshal(data)
	if err != nil {
		return nil, err
	}
	if err := e.Validate(); err != nil {
		return nil, err
	}
	return e, nil
}

// unmarshal parses data into an envelope without filling or validating it;
// every error is a permanent *ValidationError.
func unmarshal(data []byte) (*Envelope, error) {
	if len(data) > MaxEnvelopeBytes {
		return nil, errs.Permanent(&ValidationError{Problems: []FieldError{{Problem: fmt.Sprintf("envelope is %d bytes, over the limit of %d", len(data), MaxEnvelopeBytes)}}})
	}
	if err := checkJSON(data, "envelope "); err != nil {
		return nil, err
	}
	var e Envelope
	if !decodeFast(data, &e) {
		if err := json.Unmarshal(data, &e); err != nil {
			var ve *ValidationError
			if !asType(err, &ve) {
				// A syntax error never reaches UnmarshalJSON: the decoder
				// checks the whole input first.
				ve = &ValidationError{Problems: []FieldError{{Problem: "not valid JSON: " + err.Error()}}}
			}
			return nil, errs.Permanent(ve)
		}
	}
	return &e, nil
}

// CheckJSON refuses, before any decoder runs, what encoding/json would
// take and silently rewrite or drop, as Decode does for an envelope:
// invalid UTF-8 (rewritten to U+FFFD), nesting deeper than MaxNesting, a
// key given twice in one object (the last kept) and a \u escape of a lone
// UTF-16 surrogate (no character). The error is a permanent
// *ValidationError naming the field ("labels.env"), for decoders of other
// JSON objects (a change, an alert) that must not take part of what they
// were sent.
func CheckJSON(data []byte) error { return checkJSON(data, "") }

// checkJSON is CheckJSON with what ("envelope ") in front of the problems
// of the whole input.
func checkJSON(data []byte, what string) error {
	// Invalid UTF-8 would be rewritten to U+FFFD in the decoded fields
	// while an envelope's body keeps its bytes, so the stored row and the
	// envelope would disagree; scanJSON says why the rest is refused.
	if !utf8.Valid(data) {
		return refuse("", fmt.Sprintf("%sis not valid UTF-8 (at byte %d)", what, invalidUTF8At(data)))
	}
	switch r := scanJSON(data); r.problem {
	case scanTooDeep:
		return refuse("", fmt.Sprintf("%sis %v (at byte %d)", what, ErrTooDeep, r.at))
	case scanDuplicate:
		return refuse(r.field, "appears more than once")
	case scanSurrogate:
		return refuse(r.field, fmt.Sprintf("holds %s, a lone UTF-16 surrogate, which is no character (at byte %d)", r.escape, r.at))
	}
	return nil
}

func refuse(field, problem string) error {
	return errs.Permanent(&ValidationError{Problems: []FieldError{{Field: field, Problem: problem}}})
}

// invalidUTF8At is the offset of the first byte of data that is not valid UTF-8.
func invalidUTF8At(data []byte) int {
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		if r == utf8.RuneError && size <= 1 {
			return i
		}
		i += size
	}
	return len(data)
}

// envelopeJSON has the known fields; Envelope adds the unknown ones.
type envelopeJSON Envelope

// MarshalJSON writes the known fields, then the Extra ones in key order.
func (e Envelope) MarshalJSON() ([]byte, error) {
	return e.AppendJSON(make([]byte, 0, 384+len(e.Body)))
}

// AppendJSON appends the envelope's JSON to b: the known fields in struct
// order (empty optional ones left out), then the Extra ones in key order.
// It is written by hand because every stage re-encodes what it publishes
// and encoding/json re-validated and compacted the body each time (a fifth
// of the logminer's CPU). The body and the Extra values are copied as they
// are: they come from a decoder or from New, which only hold valid JSON; a
// body that is not an object is an error.
func (e *Envelope) AppendJSON(b []byte) ([]byte, error) {
	body := bytes.TrimSpace(e.Body)
	if len(body) > 0 && body[0] != '{' {
		return nil, fmt.Errorf("event %s: body is not a JSON object", e.ID)
	}
	b = append(b, `{"schema_version":`...)
	b = strconv.AppendInt(b, int64(e.SchemaVersion), 10)
	b = appendStringField(b, "id", e.ID)
	b = appendStringField(b, "kind", string(e.Kind))
	b = appendTimeField(b, "time", e.Time)
	b = appendTimeField(b, "observed_time", e.ObservedTime)
	if e.Source != "" {
		b = appendStringField(b, "source", e.Source)
	}
	b = appendStringField(b, "service", e.Service)
	if len(e.Resource) > 0 {
		b = appendMapField(b, "resource", e.Resource)
	}
	if len(e.Labels) > 0 {
		b = appendMapField(b, "labels", e.Labels)
	}
	if e.Severity != "" {
		b = appendStringField(b, "severity", string(e.Severity))
	}
	b = appendStringField(b, "fingerprint", e.Fingerprint)
	if len(e.Links) > 0 {
		b = append(b, `,"links":[`...)
		for i, l := range e.Links {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, l)
		}
		b = append(b, ']')
	}
	if len(body) > 0 {
		b = append(b, `,"body":`...)
		b = append(b, body...)
	}
	if len(e.Extra) > 0 {
		keys := make([]string, 0, len(e.Extra))
		for k := range e.Extra {
			if _, isKnown := knownFields[k]; !isKnown {
				keys = append(keys, k)
			}
		}
		slices.Sort(keys)
		for _, k := range keys {
			b = append(b, ',')
			b = appendString(b, k)
			b = append(b, ':')
			b = append(b, bytes.TrimSpace(e.Extra[k])...)
		}
	}
	return append(b, '}'), nil
}

func appendStringField(b []byte, name, v string) []byte {
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return appendString(b, v)
}

func appendTimeField(b []byte, name string, t time.Time) []byte {
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':', '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

// appendMapField writes the map with its keys sorted, as encoding/json does.
func appendMapField(b []byte, name string, m map[string]string) []byte {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':', '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, k)
		b = append(b, ':')
		b = appendString(b, m[k])
	}
	return append(b, '}')
}

// appendString writes s as a JSON string: quotes, backslashes and control
// characters escaped, invalid UTF-8 replaced by U+FFFD, U+2028 and U+2029
// escaped (as encoding/json does, for JavaScript consumers).
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// knownFields maps each JSON name to a decoder into the envelope. A field of
// the wrong JSON type is an error naming it.
var knownFields = map[string]func(e *Envelope, raw json.RawMessage) error{
	"schema_version": func(e *Envelope, raw json.RawMessage) error { return json.Unmarshal(raw, &e.SchemaVersion) },
	"id":             func(e *Envelope, raw json.RawMessage) error { return json.Unmarshal(raw, &e.ID) },
	"kind":           func(e *Envelope, raw json.RawMessage) error { return json.Unmarshal(raw, &e.Kind) },
	"time":           func(e *Envelope, raw json.RawMessage) error { return json.Unmarshal(raw, &e.Time) },
	"observed_time":  func(e *Envelope, raw json.RawMessage) error { return json.Unmarshal(raw, &e.ObservedTime) },
	"source":         func(e *Envelope, raw json.RawMessage) error { return json.Unmarshal(raw, &e.Source) },
	"service":        func(e *Envelope, raw json.RawMessage) error { return json.Unmarshal(raw, &e.Service) },
	"resource":       func(e *Envelope, raw json.RawMessage) error { return json.Unmarshal(raw, &e.Resource) },
	"labels":         func(e *Envelope, raw json.RawMessage) error { return json.Unmarshal(raw, &e.Labels) },
	"severity":       func(e *Envelope, raw json.RawMessage) error { return json.Unmarshal(raw, &e.Severity) },
	"fingerprint":    func(e *Envelope, raw json.RawMessage) error { return json.Unmarshal(raw, &e.Fingerprint) },
	"links":          func(e *Envelope, raw json.RawMessage) error { return json.Unmarshal(raw, &e.Links) },
	"body": func(e *Envelope, raw json.RawMessage) error {
		if string(raw) == "null" {
			return nil
		}
		if len(raw) == 0 || raw[0] != '{' {
			return fmt.Errorf("must be a JSON object")
		}
		e.Body = slices.Clone(raw)
		return nil
	},
}

// UnmarshalJSON reads known fields into the struct and keeps every other
// top-level field in Extra. Errors are *ValidationError naming the field.
func (e *Envelope) UnmarshalJSON(data []byte) error {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil {
		return &ValidationError{Problems: []FieldError{{Problem: "not a JSON object: " + err.Error()}}}
	}
	*e = Envelope{}
	var problems []FieldError
	for name, raw := range fields {
		decode, known := knownFields[name]
		if !known {
			if e.Extra == nil {
				e.Extra = make(map[string]json.RawMessage)
			}
			e.Extra[name] = slices.Clone(raw)
			continue
		}
		if err := decode(e, raw); err != nil {
			problems = append(problems, FieldError{Field: name, Problem: typeProblem(err)})
		}
	}
	if len(problems) > 0 {
		sortProblems(problems)
		return &ValidationError{Problems: problems}
	}
	return nil
}

// typeProblem turns a json error into a short reason without Go type names
// where a clearer word exists.
func typeProblem(err error) string {
	var typeErr *json.UnmarshalTypeError
	if ok := asType(err, &typeErr); ok {
		return TypeProblem(typeErr)
	}
	var timeErr *time.ParseError
	if ok := asType(err, &timeErr); ok {
		return "is not an RFC 3339 time: " + fmt.Sprintf("%q", timeErr.Value)
	}
	return err.Error()
}

// TypeProblem words a JSON type error for a producer. A number that does
// not fit its field (1e400 for a float, 1.5 or 1e30 for an integer) is
// reported as out of range rather than as a type mismatch: encoding/json
// gives it the JSON type "number 1e400", which read like "has JSON type
// number, want number".
func TypeProblem(typeErr *json.UnmarshalTypeError) string {
	want := jsonTypeName(typeErr.Type.Kind().String())
	if n, isNumber := strings.CutPrefix(typeErr.Value, "number "); isNumber && want == "number" {
		switch typeErr.Type.Kind() {
		case reflect.Float32, reflect.Float64:
			return fmt.Sprintf("is %s, out of the range of a 64-bit float", clip(n))
		default:
			return fmt.Sprintf("is %s, not an integer in the range of a %s", clip(n), typeErr.Type.Kind())
		}
	}
	return fmt.Sprintf("has JSON type %s, want %s", typeErr.Value, want)
}

func jsonTypeName(goKind string) string {
	switch goKind {
	case "string":
		return "string"
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64", "float32", "float64":
		return "number"
	case "map", "struct":
		return "object"
	case "slice":
		return "array"
	}
	return goKind
}
