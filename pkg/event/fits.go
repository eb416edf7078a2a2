package event

import (
	"unicode/utf8"

	"github.com/aiops-dev/aiops/pkg/errs"
)

// Limits a gateway applies on top of Validate, so that what it accepts also
// fits every stage after it. The log miner publishes a templated copy of
// each log whose body holds the message, its template and its parameters,
// under the same labels and resource plus template_id; the writer and every
// consumer refuse an envelope over MaxEnvelopeBytes or a body over
// MaxBodyBytes (Parse), so the copy of an accepted log must stay under both:
//
//   - the template is at most twice the message as JSON (a one-character
//     variable and its separator, "1 ", become "<*> ") and so are the
//     parameters (`"1",` for "1 "; escapes cost the same in all three), so
//     the templated body is at most five times the message plus its ids:
//     5 × MaxLogMessageBytes = 320 KiB < MaxBodyBytes (with a margin for
//     masks that might grow);
//   - the templated envelope is the accepted one plus at most four times
//     the message and a label: MaxAcceptedEnvelopeBytes + 4 × 64 KiB + 1 KiB
//     < MaxEnvelopeBytes.
//
// A test runs messages built to expand the most through the real log miner
// and writer (services/ingest TestE2ELimitsFitEveryStage).
const (
	// MaxLogMessageBytes bounds a log message as JSON (escapes counted).
	MaxLogMessageBytes = 64 << 10
	// MaxAcceptedEnvelopeBytes bounds an accepted envelope as JSON.
	MaxAcceptedEnvelopeBytes = 512 << 10
)

// CheckFits returns a permanent *ValidationError when a valid envelope
// is over the gateway's limits (MaxLogMessageBytes, MaxAcceptedEnvelopeBytes),
// else nil. It measures without encoding.
func (e *Envelope) CheckFits() error {
	var p problems
	// The message is a string inside the body, where it takes at least
	// half the bytes it takes once re-encoded (a raw U+2028 is 3 bytes
	// there, 6 escaped), so a body of up to half the limit cannot hold a
	// message over it, and the common small log is not decoded twice.
	if e.Kind == KindLog && len(e.Body) > MaxLogMessageBytes/2 {
		var b LogBody
		// Validate decoded it already; a body it accepted decodes.
		if decodeBody(e.Body, &b) == nil {
			if n := jsonStringLen(b.Message); n > MaxLogMessageBytes {
				p.add("body.message", "is %d bytes as JSON, over the limit of %d (the log miner's templated copy must fit the %d-byte body limit)", n, MaxLogMessageBytes, MaxBodyBytes)
			}
		}
	}
	if n := e.sizeBound(); n > MaxAcceptedEnvelopeBytes {
		p.add("", "is about %d bytes as JSON, over the limit of %d for an accepted event (labels, resource and body together)", n, MaxAcceptedEnvelopeBytes)
	}
	if len(p.list) == 0 {
		return nil
	}
	return errs.Permanent(&ValidationError{Problems: p.list})
}

// SizeBound is an upper bound of the envelope's JSON size, without
// encoding it: every string with its escapes, the fixed fields at their
// longest.
func (e *Envelope) SizeBound() int { return e.sizeBound() }

func (e *Envelope) sizeBound() int {
	n := 400 + jsonStringLen(e.Source) + jsonStringLen(e.Service) + jsonStringLen(e.Fingerprint) + len(e.Body) + len(e.Links)*29
	for _, m := range []map[string]string{e.Labels, e.Resource} {
		for k, v := range m {
			n += jsonStringLen(k) + jsonStringLen(v) + 2
		}
	}
	for k, v := range e.Extra {
		n += jsonStringLen(k) + len(v) + 2
	}
	return n
}

// JSONStringLen is the length of s written as a JSON string by the
// envelope's encoder, quotes and escapes included, without writing it.
func JSONStringLen(s string) int { return jsonStringLen(s) }

// jsonStringLen is the length of s written by appendString, quotes included.
func jsonStringLen(s string) int {
	n := 2
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\' || c == '\n' || c == '\r' || c == '\t':
				n += 2
			case c < 0x20:
				n += 6
			default:
				n++
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			n += 6
		case r == '\u2028' || r == '\u2029':
			n += 6
		default:
			n += size
		}
		i += size
	}
	return n
}
