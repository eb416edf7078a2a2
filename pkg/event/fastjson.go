package event

import (
	"encoding/json"
)

// decodeFast is the common case of UnmarshalJSON in one pass of
// encoding/json: an object whose top-level keys are all known, spelled
// exactly, with values of the right types. ok is false for anything else
// (unknown or oddly cased keys, a type error, a body that is not an object),
// and the caller takes the slow path, which keeps unknown fields and names
// every problem.
func decodeFast(data []byte, e *Envelope) (ok bool) {
	if !onlyKnownKeys(data) {
		return false
	}
	var w envelopeJSON
	if err := json.Unmarshal(data, &w); err != nil {
		return false
	}
	switch {
	case len(w.Body) == 0:
	case string(w.Body) == "null":
		w.Body = nil
	case w.Body[0] != '{':
		return false
	}
	*e = Envelope(w)
	return true
}

// onlyKnownKeys reports whether data is an object whose top-level keys are
// all in knownFields, exactly (encoding/json would match a struct field
// case-insensitively, while the slow path keeps "Service" as an unknown
// field). It is a skimming scanner, not a validator: anything it does not
// expect makes it answer false.
func onlyKnownKeys(data []byte) bool {
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '{' {
		return false
	}
	i = skipSpace(data, i+1)
	if i < len(data) && data[i] == '}' {
		return true
	}
	for i < len(data) {
		if data[i] != '"' {
			return false
		}
		end := i + 1
		for end < len(data) && data[end] != '"' {
			if data[end] == '\\' {
				return false // an escaped key: let the slow path decide
			}
			end++
		}
		if end >= len(data) {
			return false
		}
		if _, known := knownFields[string(data[i+1:end])]; !known {
			return false
		}
		i = skipSpace(data, end+1)
		if i >= len(data) || data[i] != ':' {
			return false
		}
		if i = skipValue(data, skipSpace(data, i+1)); i < 0 {
			return false
		}
		i = skipSpace(data, i)
		if i >= len(data) {
			return false
		}
		switch data[i] {
		case ',':
			i = skipSpace(data, i+1)
		case '}':
			return true
		default:
			return false
		}
	}
	return false
}

func skipSpace(data []byte, i int) int {
	for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r') {
		i++
	}
	return i
}

// skipValue returns the index just past the JSON value starting at i, or -1.
func skipValue(data []byte, i int) int {
	depth := 0
	for i < len(data) {
		switch c := data[i]; c {
		case '"':
			i++
			for i < len(data) && data[i] != '"' {
				if data[i] == '\\' {
					i++
				}
				i++
			}
			if i >= len(data) {
				return -1
			}
			i++
		case '{', '[':
			depth++
			i++
		case '}', ']':
			if depth == 0 {
				return i // the end of the enclosing object: a scalar ended here
			}
			depth--
			i++
		case ',':
			if depth == 0 {
				return i
			}
			i++
		default:
			i++
		}
		if depth == 0 && i > 0 && (data[i-1] == '"' || data[i-1] == '}' || data[i-1] == ']') {
			return i
		}
	}
	if depth == 0 {
		return i
	}
	return -1
}
