package event

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"time"

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
	e, err := unmarshal(data)
	if err != nil {
		return nil, err
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
	var e Envelope
	if decodeFast(data, &e) {
		return &e, nil
	}
	if err := json.Unmarshal(data, &e); err != nil {
		var ve *ValidationError
		if !asType(err, &ve) {
			// A syntax error never reaches UnmarshalJSON: the decoder
			// checks the whole input first.
			ve = &ValidationError{Problems: []FieldError{{Problem: "not valid JSON: " + err.Error()}}}
		}
		return nil, errs.Permanent(ve)
	}
	return &e, nil
}

// envelopeJSON has the known fields; Envelope adds the unknown ones.
type envelopeJSON Envelope

// MarshalJSON writes the known fields, then the Extra ones in key order.
func (e Envelope) MarshalJSON() ([]byte, error) {
	known, err := json.Marshal(envelopeJSON(e))
	if err != nil || len(e.Extra) == 0 {
		return known, err
	}
	keys := make([]string, 0, len(e.Extra))
	for k := range e.Extra {
		if _, isKnown := knownFields[k]; !isKnown {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	var buf bytes.Buffer
	buf.Grow(len(known) + 64*len(keys))
	buf.Write(known[:len(known)-1]) // drop the closing brace
	for _, k := range keys {
		name, _ := json.Marshal(k)
		buf.WriteByte(',')
		buf.Write(name)
		buf.WriteByte(':')
		buf.Write(e.Extra[k])
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
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
		return fmt.Sprintf("has JSON type %s, want %s", typeErr.Value, jsonTypeName(typeErr.Type.Kind().String()))
	}
	var timeErr *time.ParseError
	if ok := asType(err, &timeErr); ok {
		return "is not an RFC 3339 time: " + fmt.Sprintf("%q", timeErr.Value)
	}
	return err.Error()
}

func jsonTypeName(goKind string) string {
	switch goKind {
	case "string":
		return "string"
	case "int", "int64", "uint64", "float64":
		return "number"
	case "map", "struct":
		return "object"
	case "slice":
		return "array"
	}
	return goKind
}
