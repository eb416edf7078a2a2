package writer

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/aiops-dev/aiops/pkg/event"
)

// A fast path for the bodies of the high-volume kinds (logs, metric
// samples). encoding/json's reflection cost more per event than everything
// else the writer does with it (BenchmarkRows), so these bodies are read by
// a small scanner instead. It handles the shape producers send: an object
// whose known fields hold strings, numbers or arrays of strings, while
// unknown fields may hold anything. Whatever else it meets (null, a known
// field of an unexpected type, invalid UTF-8, a key differing from a known
// one only in case, which encoding/json would match) makes it answer "not
// mine", and the caller decodes with encoding/json, which also words the
// errors. FuzzFastBodies checks that both agree whenever the fast path
// answers.

// scanner walks one JSON value; its methods return false on anything they
// do not accept.
type scanner struct {
	data []byte
	pos  int
}

func (s *scanner) space() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

func (s *scanner) next(c byte) bool {
	s.space()
	if s.pos < len(s.data) && s.data[s.pos] == c {
		s.pos++
		return true
	}
	return false
}

func (s *scanner) peek() byte {
	s.space()
	if s.pos < len(s.data) {
		return s.data[s.pos]
	}
	return 0
}

// plainString reads a string and returns its contents: a view into data
// when it has no escapes, else a decoded copy. It refuses control
// characters and invalid UTF-8 (encoding/json replaces the latter).
func (s *scanner) plainString() ([]byte, bool) {
	if !s.next('"') {
		return nil, false
	}
	start := s.pos
	ascii := true
	for s.pos < len(s.data) {
		c := s.data[s.pos]
		switch {
		case c == '"':
			v := s.data[start:s.pos]
			s.pos++
			if !ascii && !utf8.Valid(v) {
				return nil, false
			}
			return v, true
		case c == '\\':
			return s.escaped(start)
		case c < 0x20:
			return nil, false
		case c >= 0x80:
			ascii = false
		}
		s.pos++
	}
	return nil, false
}

// escaped finishes a string that holds escapes, from its first byte at
// start, decoding them as encoding/json does (a lone UTF-16 surrogate
// becomes U+FFFD).
func (s *scanner) escaped(start int) ([]byte, bool) {
	out := make([]byte, 0, s.pos-start+16)
	out = append(out, s.data[start:s.pos]...)
	for s.pos < len(s.data) {
		c := s.data[s.pos]
		switch {
		case c == '"':
			s.pos++
			if !utf8.Valid(out) {
				return nil, false
			}
			return out, true
		case c < 0x20:
			return nil, false
		case c != '\\':
			out = append(out, c)
			s.pos++
			continue
		}
		s.pos++
		if s.pos >= len(s.data) {
			return nil, false
		}
		switch e := s.data[s.pos]; e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := s.hex4(s.pos + 1)
			if !ok {
				return nil, false
			}
			s.pos += 4
			if utf16.IsSurrogate(r) {
				r2, ok := rune(0), false
				if s.pos+2 < len(s.data) && s.data[s.pos+1] == '\\' && s.data[s.pos+2] == 'u' {
					r2, ok = s.hex4(s.pos + 3)
				}
				if dec := utf16.DecodeRune(r, r2); ok && dec != unicode.ReplacementChar {
					r = dec
					s.pos += 6
				} else {
					r = unicode.ReplacementChar
				}
			}
			out = utf8.AppendRune(out, r)
		default:
			return nil, false
		}
		s.pos++
	}
	return nil, false
}

func (s *scanner) hex4(at int) (rune, bool) {
	if at+4 > len(s.data) {
		return 0, false
	}
	var r rune
	for _, h := range s.data[at : at+4] {
		switch {
		case h >= '0' && h <= '9':
			h -= '0'
		case h >= 'a' && h <= 'f':
			h = h - 'a' + 10
		case h >= 'A' && h <= 'F':
			h = h - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(h)
	}
	return r, true
}

// number reads a number in JSON's grammar and returns its text.
func (s *scanner) number() ([]byte, bool) {
	s.space()
	start := s.pos
	d := s.data
	if s.pos < len(d) && d[s.pos] == '-' {
		s.pos++
	}
	switch {
	case s.pos < len(d) && d[s.pos] == '0':
		s.pos++
	case s.pos < len(d) && d[s.pos] >= '1' && d[s.pos] <= '9':
		for s.pos < len(d) && d[s.pos] >= '0' && d[s.pos] <= '9' {
			s.pos++
		}
	default:
		return nil, false
	}
	digits := func() bool {
		n := s.pos
		for s.pos < len(d) && d[s.pos] >= '0' && d[s.pos] <= '9' {
			s.pos++
		}
		return s.pos > n
	}
	if s.pos < len(d) && d[s.pos] == '.' {
		s.pos++
		if !digits() {
			return nil, false
		}
	}
	if s.pos < len(d) && (d[s.pos] == 'e' || d[s.pos] == 'E') {
		s.pos++
		if s.pos < len(d) && (d[s.pos] == '+' || d[s.pos] == '-') {
			s.pos++
		}
		if !digits() {
			return nil, false
		}
	}
	return d[start:s.pos], true
}

func (s *scanner) literal(word string) bool {
	s.space()
	if strings.HasPrefix(string(s.data[s.pos:min(len(s.data), s.pos+len(word))]), word) {
		s.pos += len(word)
		return true
	}
	return false
}

// skip passes over any value of an unknown field, to a bounded depth.
func (s *scanner) skip(depth int) bool {
	if depth > 32 {
		return false
	}
	switch s.peek() {
	case '"':
		_, ok := s.plainString()
		return ok
	case '{':
		s.pos++
		if s.next('}') {
			return true
		}
		for {
			if _, ok := s.plainString(); !ok {
				return false
			}
			if !s.next(':') || !s.skip(depth+1) {
				return false
			}
			if s.next('}') {
				return true
			}
			if !s.next(',') {
				return false
			}
		}
	case '[':
		s.pos++
		if s.next(']') {
			return true
		}
		for {
			if !s.skip(depth + 1) {
				return false
			}
			if s.next(']') {
				return true
			}
			if !s.next(',') {
				return false
			}
		}
	case 't':
		return s.literal("true")
	case 'f':
		return s.literal("false")
	case 'n':
		return s.literal("null")
	default:
		_, ok := s.number()
		return ok
	}
}

// stringArray reads an array of plain strings.
func (s *scanner) stringArray() ([]string, bool) {
	if !s.next('[') {
		return nil, false
	}
	out := []string{}
	if s.next(']') {
		return out, true
	}
	for {
		v, ok := s.plainString()
		if !ok {
			return nil, false
		}
		out = append(out, string(v))
		if s.next(']') {
			return out, true
		}
		if !s.next(',') {
			return nil, false
		}
	}
}

// object calls field for each member of the top-level object, with the
// scanner at the member's value; field consumes the value. The input must
// end after the object.
func (s *scanner) object(known []string, field func(key string) bool) bool {
	if !s.next('{') {
		return false
	}
	if !s.next('}') {
		for {
			k, ok := s.plainString()
			if !ok || !s.next(':') {
				return false
			}
			key := ""
			for _, name := range known {
				if string(k) == name {
					key = name
					break
				}
				if strings.EqualFold(string(k), name) {
					return false // encoding/json would fill the field
				}
			}
			if key == "" {
				if !s.skip(0) {
					return false
				}
			} else if !field(key) {
				return false
			}
			if s.next('}') {
				break
			}
			if !s.next(',') {
				return false
			}
		}
	}
	s.space()
	return s.pos == len(s.data)
}

var logBodyFields = []string{"message", "template_id", "template", "params", "trace_id", "span_id"}

// fastLogBody decodes a log body the plain way; ok false means "use
// encoding/json".
func fastLogBody(data []byte, b *event.LogBody) (ok bool) {
	s := scanner{data: data}
	return s.object(logBodyFields, func(key string) bool {
		if key == "params" {
			p, ok := s.stringArray()
			b.Params = p
			return ok
		}
		v, ok := s.plainString()
		if !ok {
			return false
		}
		switch key {
		case "message":
			b.Message = string(v)
		case "template_id":
			b.TemplateID = string(v)
		case "template":
			b.Template = string(v)
		case "trace_id":
			b.TraceID = string(v)
		case "span_id":
			b.SpanID = string(v)
		}
		return true
	})
}

var metricBodyFields = []string{"name", "value", "unit", "type"}

// fastMetricBody decodes a metric body the plain way; ok false means "use
// encoding/json".
func fastMetricBody(data []byte, b *event.MetricBody, value *float64) (ok bool) {
	s := scanner{data: data}
	return s.object(metricBodyFields, func(key string) bool {
		if key == "value" {
			n, ok := s.number()
			if !ok {
				return false
			}
			f, err := strconv.ParseFloat(string(n), 64)
			if err != nil {
				return false // out of range: encoding/json words the error
			}
			*value = f
			b.Value = value
			return true
		}
		v, ok := s.plainString()
		if !ok {
			return false
		}
		switch key {
		case "name":
			b.Name = string(v)
		case "unit":
			b.Unit = string(v)
		case "type":
			b.Type = string(v)
		}
		return true
	})
}
