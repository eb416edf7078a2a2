package event

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/aiops-dev/aiops/pkg/errs"
)

// MaxNesting bounds how deeply objects and arrays may nest in any input,
// JSON or protobuf. Decoders that recurse (encoding/json, pdata, the
// JSON encoding of an OTLP value) use a goroutine stack frame per level;
// a body of a million nested arrays fits in a few megabytes and used to
// overflow the stack of the whole process. No envelope, webhook or OTLP
// payload seen in practice nests more than a dozen levels.
const MaxNesting = 64

// ErrTooDeep is wrapped by the errors of CheckJSONNesting.
var ErrTooDeep = fmt.Errorf("nested more than %d levels", MaxNesting)

// CheckJSONNesting refuses data whose objects and arrays nest more than
// MaxNesting levels. It is a single pass over the bytes that only tracks
// strings and brackets, with no recursion and no allocation, so it can run
// before any decoder; it does not validate the JSON (the decoder does).
func CheckJSONNesting(data []byte) error {
	depth := 0
	for i := 0; i < len(data); i++ {
		switch data[i] {
		case '"':
			for i++; i < len(data) && data[i] != '"'; i++ {
				if data[i] == '\\' {
					i++
				}
			}
		case '{', '[':
			depth++
			if depth > MaxNesting {
				return errs.Permanent(fmt.Errorf("%w (at byte %d)", ErrTooDeep, i))
			}
		case '}', ']':
			depth--
		}
	}
	return nil
}

// duplicateKey returns the first key that appears twice at the top level of
// the JSON object obj (keys compared after unescaping). encoding/json keeps
// the last of two equal keys and ClickHouse's JSON functions read the first,
// so an envelope or body with a repeated key would mean one thing to the
// gateway and another to an analyst; it is refused instead. Like
// CheckJSONNesting it skims without validating.
func duplicateKey(obj []byte) (string, bool) {
	key, dup, _ := scanKeys(obj, 0)
	return key, dup
}

// scanKeys is duplicateKey that also reports, when maxDepth > 0, the offset
// of the first bracket nested deeper than maxDepth (else -1): the envelope
// decoder checks both in one pass.
func scanKeys(obj []byte, maxDepth int) (dupKey string, dup bool, deepAt int) {
	var (
		// The first keys are compared in place, without a copy: an
		// envelope has about ten, a body a handful.
		small [16][]byte
		n     int
		seen  map[string]struct{}
		depth int
		isKey bool
	)
	for i := 0; i < len(obj); i++ {
		switch obj[i] {
		case '"':
			start, escaped := i+1, false
			for i++; i < len(obj) && obj[i] != '"'; i++ {
				if obj[i] == '\\' {
					escaped = true
					i++
				}
			}
			if depth != 1 || !isKey {
				continue
			}
			isKey = false
			key := obj[start:min(i, len(obj))]
			if escaped {
				var s string
				if err := json.Unmarshal(obj[start-1:min(i+1, len(obj))], &s); err != nil {
					continue // not valid JSON: the decoder says so
				}
				key = []byte(s)
			}
			if seen == nil {
				for _, k := range small[:n] {
					if bytes.Equal(k, key) {
						return string(key), true, -1
					}
				}
				if n < len(small) {
					small[n] = key
					n++
					continue
				}
				seen = make(map[string]struct{}, 2*len(small))
				for _, k := range small {
					seen[string(k)] = struct{}{}
				}
			}
			if _, dup := seen[string(key)]; dup {
				return string(key), true, -1
			}
			seen[string(key)] = struct{}{}
		case '{':
			depth++
			isKey = depth == 1
			if maxDepth > 0 && depth > maxDepth {
				return "", false, i
			}
		case '[':
			depth++
			if maxDepth > 0 && depth > maxDepth {
				return "", false, i
			}
		case '}', ']':
			depth--
		case ',':
			isKey = depth == 1
		}
	}
	return "", false, -1
}
