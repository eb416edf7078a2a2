package event

import (
	"bytes"
	"encoding/json"
	"fmt"
	"hash/maphash"
	"slices"
	"strings"

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

// scanProblem is what scanJSON found wrong, if anything.
type scanProblem int

const (
	scanOK        scanProblem = iota
	scanTooDeep               // nested more than MaxNesting levels
	scanDuplicate             // a key appears twice in one object
	scanSurrogate             // a \u escape of a lone UTF-16 surrogate
)

// scanResult is the first problem scanJSON found: where (the byte offset),
// in which field (a path such as "labels.env" or "body.a[1].b") and, for
// a lone surrogate, the escape itself.
type scanResult struct {
	problem scanProblem
	at      int
	field   string
	escape  string
}

// scanFrame is an object or an array scanJSON is inside of.
type scanFrame struct {
	array bool
	index int            // the element being read, in an array
	key   []byte         // the key being read, in an object
	keys  int            // where the object's keys start in scanJSON's keys
	seen  map[uint64]int // its keys by hash, once they are many (dupKey)
}

// scanJSON checks data in one pass, before any decoder runs, for what
// encoding/json accepts but the pipeline must not:
//
//   - nesting deeper than MaxNesting, which bounds encoding/json's
//     recursion;
//   - a key repeated in one object, at any depth: encoding/json keeps the
//     last of two equal keys (keys compared after unescaping) and
//     ClickHouse's JSON functions read the first, so an envelope, a label
//     or a body with a repeated key would mean one thing to the gateway and
//     another to an analyst;
//   - a \u escape of a lone UTF-16 surrogate (\ud800 without its low half,
//     or a low half alone): no character, it becomes U+FFFD in the decoded
//     fields while the raw body and unknown fields keep the escape, which a
//     consumer reads as invalid UTF-8.
//
// It skims without validating (the decoder reports syntax errors) and costs
// one look at each byte plus, for each key, at most 16 comparisons or one
// map operation; nothing is copied but escaped keys.
func scanJSON(data []byte) scanResult {
	var (
		frameBuf [8]scanFrame
		stack    = frameBuf[:0]
		// The keys of the objects on the stack, each object's after its
		// parent's (see dupKey).
		keyBuf    [32][]byte
		keys      = keyBuf[:0]
		expectKey bool
	)
	for i := 0; i < len(data); i++ {
		switch data[i] {
		case '"':
			start, escaped, lone := i+1, false, -1
			for i++; i < len(data) && data[i] != '"'; i++ {
				if data[i] != '\\' {
					continue
				}
				escaped = true
				i++
				if i < len(data) && data[i] == 'u' && lone < 0 {
					switch n := surrogateEscape(data[i-1:]); {
					case n < 0:
						lone = i - 1
					case n > 0:
						i += n // to the low half's "u": a pair is no lone surrogate
					}
				}
			}
			end := min(i, len(data))
			if len(stack) == 0 {
				continue
			}
			top := &stack[len(stack)-1]
			isKey := !top.array && expectKey
			if lone >= 0 {
				if isKey {
					top.key = data[start:end] // as written: it has no unescaped form
				}
				return scanResult{problem: scanSurrogate, at: lone, field: scanPath(stack), escape: string(data[lone : lone+6])}
			}
			if !isKey {
				continue
			}
			expectKey = false
			key := data[start:end]
			if escaped {
				var s string
				if err := json.Unmarshal(data[start-1:min(i+1, len(data))], &s); err != nil {
					continue // not valid JSON: the decoder says so
				}
				key = []byte(s)
			}
			top.key = key
			if dupKey(keys[top.keys:], key, &top.seen) {
				return scanResult{problem: scanDuplicate, at: start - 1, field: scanPath(stack)}
			}
			keys = append(keys, key)
		case '{', '[':
			if len(stack) == MaxNesting {
				return scanResult{problem: scanTooDeep, at: i}
			}
			stack = append(stack, scanFrame{array: data[i] == '[', keys: len(keys)})
			expectKey = data[i] == '{'
		case '}', ']':
			if len(stack) > 0 {
				keys = keys[:stack[len(stack)-1].keys]
				stack = stack[:len(stack)-1]
			}
			expectKey = false
		case ',':
			if len(stack) > 0 {
				top := &stack[len(stack)-1]
				top.index++
				expectKey = !top.array
			}
		}
	}
	return scanResult{problem: scanOK, at: -1}
}

// keySeed seeds the hashes dupKey compares keys by.
var keySeed = maphash.MakeSeed()

// dupKey reports whether key is one of keys, the keys an object had so far
// (the caller appends key after the call). An object's first keys are
// compared in place (an envelope has about ten, a label set or a body a
// handful); past them, *seen holds the index in keys of the first key of
// each hash.
func dupKey(keys [][]byte, key []byte, seen *map[uint64]int) bool {
	const small = 16
	equal := func(k []byte) bool { return bytes.Equal(k, key) }
	if len(keys) < small {
		return slices.ContainsFunc(keys, equal)
	}
	if *seen == nil {
		*seen = make(map[uint64]int, 4*small)
		for i, k := range keys {
			h := maphash.Bytes(keySeed, k)
			if _, ok := (*seen)[h]; !ok {
				(*seen)[h] = i
			}
		}
	}
	h := maphash.Bytes(keySeed, key)
	i, ok := (*seen)[h]
	switch {
	case !ok:
		(*seen)[h] = len(keys)
		return false
	case bytes.Equal(keys[i], key):
		return true
	}
	// Two keys of one hash: compared one by one, as rare as a collision
	// of a seeded 64-bit hash.
	return slices.ContainsFunc(keys, equal)
}

// surrogateEscape looks at the \u escape b starts with: -1 for a lone
// surrogate, the distance from its "u" to the next escape's "u" for a high
// surrogate followed by a low one (a pair: one character), 0 otherwise
// (including hex digits that are not: the decoder refuses those).
func surrogateEscape(b []byte) int {
	r, ok := hex4(b)
	switch {
	case !ok || r < 0xd800 || r > 0xdfff:
		return 0
	case r >= 0xdc00:
		return -1
	}
	if len(b) >= 12 && b[6] == '\\' && b[7] == 'u' {
		if low, ok := hex4(b[6:]); ok && low >= 0xdc00 && low <= 0xdfff {
			return 6
		}
	}
	return -1
}

// hex4 reads the four hex digits of the \u escape b starts with.
func hex4(b []byte) (rune, bool) {
	if len(b) < 6 {
		return 0, false
	}
	var r rune
	for _, c := range b[2:6] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// scanPath names where the scan is: the keys and indexes of the frames on
// stack, as "labels.env" or "body.a[1].b", each key clipped.
func scanPath(stack []scanFrame) string {
	var b strings.Builder
	for _, f := range stack {
		if f.array {
			fmt.Fprintf(&b, "[%d]", f.index)
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(clip(string(f.key)))
	}
	return b.String()
}
