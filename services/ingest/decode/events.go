package decode

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"

	"github.com/aiops-dev/aiops/pkg/event"
)

// Events decodes envelopes sent as one JSON object, a JSON array of
// objects, or a stream of objects (NDJSON: one per line; any whitespace
// between objects is accepted). Item is the 0-based position of the
// envelope in the request; Field is the envelope's JSON field. What the
// producer set is kept (an id it chose makes its retries idempotent); what it
// left out is filled by event.Normalize, the source with "http"; with
// Options.IdempotencyKey a missing id is derived from the key instead.
// Under Options.SkipInvalid an invalid envelope is skipped, not the
// request refused; a syntax error of a JSON array or stream still refuses
// it (what follows cannot be read).
func Events(body []byte, o Options) (*Batch, error) {
	o = o.withDefaults()
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 {
		return nil, requestProblem("", "the body has no events")
	}
	var (
		c     problems
		batch = &Batch{}
		item  int
		seen  = map[string]int{} // ids, to their item
	)
	take := func(raw json.RawMessage) error {
		if item >= o.MaxEvents {
			return tooManyEvents(o.MaxEvents)
		}
		e, err := event.DecodeWithID(raw, o.Now, keyedID(o.IdempotencyKey, item))
		if err == nil {
			err = o.checkTime(e)
		}
		if err == nil && len(raw) > fitsCheckFrom {
			err = e.CheckFits()
		}
		if err != nil {
			c.addInvalid(item, err, nil)
		} else if stageOnly(e.Kind) {
			c.add(item, "kind", stageOnlyProblem, e.Kind)
		} else if j, dup := seen[e.ID]; dup {
			c.add(item, "id", duplicateID, e.ID, j)
		} else {
			seen[e.ID] = item
			if e.Source == "" {
				e.Source = SourceHTTP
			}
			batch.Events = append(batch.Events, e)
		}
		item++
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	if trimmed[0] == '[' {
		if _, err := dec.Token(); err != nil {
			return nil, syntaxProblem(NoItem, err)
		}
		for dec.More() {
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				c.addProblem(problemOf(item, err))
				return nil, c.err()
			}
			if err := take(raw); err != nil {
				return nil, err
			}
		}
		if _, err := dec.Token(); err != nil {
			c.addProblem(problemOf(NoItem, err))
			return nil, c.err()
		}
		if _, err := dec.Token(); err != io.EOF {
			c.add(NoItem, "", "has data after the closing ] of the array")
			return nil, c.err()
		}
	} else {
		for {
			var raw json.RawMessage
			err := dec.Decode(&raw)
			if err == io.EOF {
				break
			}
			if err != nil {
				c.addProblem(problemOf(item, err))
				return nil, c.err()
			}
			if err := take(raw); err != nil {
				return nil, err
			}
		}
	}
	return c.refuseOrSkip(batch, o)
}

// NDJSON decodes newline-delimited envelopes: one JSON object per line,
// blank lines skipped, CRLF accepted. It is Events without the streaming
// JSON tokenizer, which costs a tenth of the decode time, for producers that
// declare application/x-ndjson; an object spread over several lines is an
// error here. Item is the 0-based index of the object among the non-blank
// lines.
func NDJSON(body []byte, o Options) (*Batch, error) {
	o = o.withDefaults()
	var (
		c     problems
		batch = &Batch{}
		item  int
	)
	seen := map[string]int{} // ids, to their item
	for len(body) > 0 {
		line := body
		if i := bytes.IndexByte(body, '\n'); i >= 0 {
			line, body = body[:i], body[i+1:]
		} else {
			body = nil
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		if item >= o.MaxEvents {
			return nil, tooManyEvents(o.MaxEvents)
		}
		var ve *event.ValidationError
		e, err := event.DecodeWithID(line, o.Now, keyedID(o.IdempotencyKey, item))
		if err == nil {
			err = o.checkTime(e)
		}
		if err == nil && len(line) > fitsCheckFrom {
			err = e.CheckFits()
		}
		if errors.As(err, &ve) {
			c.addInvalid(item, err, nil)
		} else if err != nil {
			c.addProblem(problemOf(item, err))
		} else if stageOnly(e.Kind) {
			c.add(item, "kind", stageOnlyProblem, e.Kind)
		} else if j, dup := seen[e.ID]; dup {
			c.add(item, "id", duplicateID, e.ID, j)
		} else {
			seen[e.ID] = item
			if e.Source == "" {
				e.Source = SourceHTTP
			}
			batch.Events = append(batch.Events, e)
		}
		item++
	}
	if item == 0 {
		return nil, requestProblem("", "the body has no events")
	}
	return c.refuseOrSkip(batch, o)
}

// refuseOrSkip ends Events and NDJSON: a request with a problem is
// refused whole, or under Options.SkipInvalid its valid envelopes taken.
func (c *problems) refuseOrSkip(batch *Batch, o Options) (*Batch, error) {
	if o.SkipInvalid {
		if err := c.skipAll(batch); err != nil {
			return nil, err
		}
		return batch, nil
	}
	if err := c.err(); err != nil {
		return nil, err
	}
	return batch, nil
}

// fitsCheckFrom is the size of an envelope as sent up to which
// event.CheckFits cannot fail, so it is skipped: a string re-encoded is at
// most twice as long as sent (a raw U+2028 becomes a 6-byte escape; what
// else is escaped had to be escaped in the input too), so the log message
// stays within MaxLogMessageBytes, and the envelope, with the fields the
// gateway fills, far within MaxAcceptedEnvelopeBytes.
const fitsCheckFrom = event.MaxLogMessageBytes / 2

func problemOf(item int, err error) Problem {
	field, problem := jsonProblem(err)
	if errors.Is(err, io.EOF) {
		problem = "is not valid JSON: unexpected end of input"
	}
	return Problem{Item: item, Field: field, Problem: problem}
}

func syntaxProblem(item int, err error) error {
	var c problems
	c.addProblem(problemOf(item, err))
	return c.err()
}

// duplicateID is the problem of an id given twice in one request: the
// stream keeps one event per id, so answering both accepted would say
// more was stored than was.
const duplicateID = "%q is also item %d's: the stream keeps one event per id"

const stageOnlyProblem = "%q events are made by aiops's own stages (incidents by the correlator, webhook deliveries by the notifier, log templates by the log miner), not taken from producers: an ingest token must not open or resolve incidents"

// stageOnly tells the kinds only aiops's stages make: the gateway refuses
// them from producers, whose tokens must not be able to open, resolve or
// record what the incidents API and the notifier answer for. (Anomalies
// are taken: a producer may run a detector of its own.)
func stageOnly(k event.Kind) bool {
	return k == event.KindIncident || k == event.KindWebhookDelivery || k == event.KindLogTemplate
}
