package decode

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strings"

	"github.com/aiops-dev/aiops/pkg/event"
)

// Change is what a producer posts to /v1/changes. Unknown fields are
// refused, so a misspelt "sevice" is an error instead of a change of
// service "unknown".
type Change struct {
	ID          string            `json:"id,omitempty"`
	Service     string            `json:"service"`
	Type        string            `json:"type,omitempty"` // deploy when empty
	Version     string            `json:"version,omitempty"`
	Author      string            `json:"author,omitempty"`
	Commit      string            `json:"commit,omitempty"`
	URL         string            `json:"url,omitempty"`
	Description string            `json:"description,omitempty"`
	Time        string            `json:"time,omitempty"` // RFC 3339; the receive time when empty
	Labels      map[string]string `json:"labels,omitempty"`
}

// DefaultChangeType is the type of a change that names none.
const DefaultChangeType = "deploy"

// changeSynonyms are the other words CI/CD and infrastructure tools use for
// the change types (event.ChangeTypes), in lower case.
var changeSynonyms = map[string]string{
	"deployment": "deploy", "release": "deploy", "rollout": "deploy", "rollback": "deploy", "upgrade": "deploy", "redeploy": "deploy",
	"configuration": "config", "config_change": "config", "configchange": "config", "settings": "config",
	"flag": "feature_flag", "feature-flag": "feature_flag", "featureflag": "feature_flag", "feature_toggle": "feature_flag", "toggle": "feature_flag",
	"infra": "infrastructure", "scale": "infrastructure", "scaling": "infrastructure", "migration": "infrastructure", "maintenance": "infrastructure",
}

// ChangeType is the change type a word names: one of event.ChangeTypes in
// any letter case, or a word tools use for one ("release", "rollout" and
// "rollback" are deploys, "infra" and "scaling" infrastructure). ok is
// false for any other word.
func ChangeType(word string) (typ string, ok bool) {
	w := strings.ToLower(strings.TrimSpace(word))
	if slices.Contains(event.ChangeTypes, w) {
		return w, true
	}
	typ, ok = changeSynonyms[w]
	return typ, ok
}

// Changes decodes one change object or a JSON array of them into change
// events. Item is the index in the array (0 for a lone object); Field is the
// change's field. service is required; type defaults to deploy and must be
// one of event.ChangeTypes or a word ChangeType takes for one; time defaults to the receive time; labels (for
// example env or region) become the envelope's labels. An id, when given,
// is kept, so a producer that retries with the same id is not counted
// twice; otherwise the id is derived from the content and the time. Two
// changes of one request with the same id (given, or derived: the same
// change twice) are refused, as /v1/events does: the stream keeps one
// event per id, and "accepted: 2" would be one stored.
func Changes(body []byte, o Options) (*Batch, error) {
	o = o.withDefaults()
	if err := event.CheckJSONNesting(body); err != nil {
		return nil, tooDeep(err)
	}
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return nil, requestProblem("", "the body has no changes")
	}
	var items []json.RawMessage
	if trimmed[0] == '[' {
		array := boundedItems{max: o.MaxEvents}
		if err := json.Unmarshal(trimmed, &array); err != nil {
			if errors.Is(err, errTooManyItems) {
				return nil, tooManyEvents(o.MaxEvents)
			}
			return nil, syntaxProblem(NoItem, err)
		}
		if items = array.items; len(items) == 0 {
			return nil, requestProblem("", "the array has no changes")
		}
	} else {
		items = []json.RawMessage{trimmed}
	}
	var c problems
	batch := &Batch{Events: make([]*event.Envelope, 0, len(items))}
	seen := make(map[string]int, len(items)) // ids, to their item
	for i, raw := range items {
		e, givenID := changeEvent(i, raw, o, &c)
		if e == nil {
			continue
		}
		if j, dup := seen[e.ID]; dup {
			if givenID {
				c.add(i, "id", duplicateID, e.ID, j)
			} else {
				c.add(i, "", "is the same change as item %d (service, type, time and content): the stream keeps one event per id; send it once, or give each an id of its own", j)
			}
			continue
		}
		seen[e.ID] = i
		batch.Events = append(batch.Events, e)
	}
	if err := c.err(); err != nil {
		return nil, err
	}
	return batch, nil
}

// changeEvent decodes the change at position i; givenID says whether its
// id is the producer's rather than derived.
func changeEvent(i int, raw json.RawMessage, o Options, c *problems) (e *event.Envelope, givenID bool) {
	if len(raw) == 0 || raw[0] != '{' {
		c.add(i, "", "is not a JSON object")
		return nil, false
	}
	// encoding/json keeps the last of a key given twice and rewrites
	// invalid UTF-8: a change would be stored other than it was sent.
	if err := event.CheckJSON(raw); err != nil {
		c.addInvalid(i, err, nil)
		return nil, false
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var ch Change
	if err := dec.Decode(&ch); err != nil {
		c.addProblem(problemOf(i, err))
		return nil, false
	}
	if dec.More() {
		c.add(i, "", "has data after the object")
		return nil, false
	}
	t, err := parseTime(ch.Time)
	if err != nil {
		c.add(i, "time", "%v", err)
		return nil, false
	}
	if t.IsZero() {
		// Timed at its receipt, the change gets another derived id on
		// every retry: the key the producer sent to make its retries
		// safe would be taken and do nothing.
		if o.IdempotencyKey != "" && ch.ID == "" {
			c.add(i, "time", "is required with an Idempotency-Key (or give the change an id): without it the change is timed when it arrives, so each retry would be stored as another change")
			return nil, false
		}
		t = o.Now
	}
	if ch.Type == "" {
		ch.Type = DefaultChangeType
	} else if typ, ok := ChangeType(ch.Type); ok {
		ch.Type = typ
	}
	e = &event.Envelope{
		ID:      ch.ID,
		Kind:    event.KindChange,
		Time:    t,
		Service: ch.Service,
		Labels:  ch.Labels,
	}
	e.Body, _ = event.MarshalBody(event.ChangeBody{
		Type:        ch.Type,
		Version:     ch.Version,
		Author:      ch.Author,
		Commit:      ch.Commit,
		URL:         ch.URL,
		Description: ch.Description,
	})
	if err := seal(e, SourceChanges, o, e.Body); err != nil {
		c.addInvalid(i, err, func(field string) string { return strings.TrimPrefix(field, "body.") })
		return nil, false
	}
	return e, ch.ID != ""
}
