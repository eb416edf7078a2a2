package scenario

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/pkg/notify/webhook"
)

// LineType says what one replay line carries.
type LineType string

// The line types of the replay format.
const (
	// TypeAlertmanager is one Alertmanager webhook (version 4) as it was
	// posted: {"type":"alertmanager","time":RFC3339,"payload":{...}}.
	TypeAlertmanager LineType = "alertmanager"
	// TypeChange is one change as posted to /v1/changes:
	// {"type":"change","time":RFC3339,"change":{"service","kind","version","author","commit","url"}}.
	TypeChange LineType = "change"
	// TypeEvent is one envelope as it travels on the bus (here: the
	// detector's anomalies): {"type":"event","event":{...}}.
	TypeEvent LineType = "event"
)

// Change kinds a change line carries.
const (
	ChangeDeploy      = "deploy"
	ChangeConfig      = "config"
	ChangeFeatureFlag = "feature_flag"
)

// Line is one line of the replay input: exactly one of Payload, Change
// and Event is set, as Type says. Time is when the line arrived: the
// webhook's post time, the change's time, or for an event line the
// envelope's observed time (the event line has no time of its own).
type Line struct {
	Type    LineType
	Time    time.Time
	Payload *Webhook
	Change  *Change
	Event   *event.Envelope
}

// Webhook is the Alertmanager webhook payload, version 4: the notifier's
// webhook.AlertmanagerPayload, one definition for both.
type Webhook = webhook.AlertmanagerPayload

// Alert is one alert of a webhook (webhook.AlertmanagerAlert). A firing
// alert's EndsAt is the zero time, written "0001-01-01T00:00:00Z" as
// Alertmanager does.
type Alert = webhook.AlertmanagerAlert

// Change is one change line's object.
type Change struct {
	Service string `json:"service"`
	Kind    string `json:"kind"` // deploy, config or feature_flag
	Version string `json:"version"`
	Author  string `json:"author"`
	Commit  string `json:"commit"`
	URL     string `json:"url"`
}

// AlertFingerprint is Alertmanager's fingerprint of a label set: FNV-1a 64
// over the label names in sorted order, each name and value followed by
// the byte 0xff, as 16 lower-case hex digits (Prometheus'
// model.LabelSet.Fingerprint). Annotations, times and status take no part.
func AlertFingerprint(labels map[string]string) string { return event.AlertmanagerFingerprint(labels) }

type lineJSON struct {
	Type    LineType        `json:"type"`
	Time    string          `json:"time,omitempty"`
	Payload *Webhook        `json:"payload,omitempty"`
	Change  *Change         `json:"change,omitempty"`
	Event   json.RawMessage `json:"event,omitempty"`
}

// MarshalJSON writes the replay shape of the line's type.
func (l Line) MarshalJSON() ([]byte, error) {
	out := lineJSON{Type: l.Type}
	switch l.Type {
	case TypeAlertmanager:
		if l.Payload == nil {
			return nil, errors.New("scenario: alertmanager line without payload")
		}
		out.Time, out.Payload = l.Time.UTC().Format(time.RFC3339), l.Payload
	case TypeChange:
		if l.Change == nil {
			return nil, errors.New("scenario: change line without change")
		}
		out.Time, out.Change = l.Time.UTC().Format(time.RFC3339), l.Change
	case TypeEvent:
		if l.Event == nil {
			return nil, errors.New("scenario: event line without event")
		}
		raw, err := l.Event.MarshalJSON()
		if err != nil {
			return nil, err
		}
		out.Event = raw
	default:
		return nil, fmt.Errorf("scenario: unknown line type %q", l.Type)
	}
	return json.Marshal(out)
}

// UnmarshalJSON reads any of the three shapes; unknown keys are errors.
func (l *Line) UnmarshalJSON(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var in lineJSON
	if err := dec.Decode(&in); err != nil {
		return fmt.Errorf("scenario: line: %w", err)
	}
	*l = Line{Type: in.Type}
	parseTime := func() error {
		t, err := time.Parse(time.RFC3339, in.Time)
		if err != nil {
			return fmt.Errorf("scenario: %s line: time: %w", in.Type, err)
		}
		l.Time = t
		return nil
	}
	switch in.Type {
	case TypeAlertmanager:
		if in.Payload == nil || in.Change != nil || in.Event != nil {
			return errors.New("scenario: an alertmanager line has a payload and nothing else")
		}
		l.Payload = in.Payload
		return parseTime()
	case TypeChange:
		if in.Change == nil || in.Payload != nil || in.Event != nil {
			return errors.New("scenario: a change line has a change and nothing else")
		}
		l.Change = in.Change
		return parseTime()
	case TypeEvent:
		if in.Event == nil || in.Payload != nil || in.Change != nil || in.Time != "" {
			return errors.New("scenario: an event line has an event and nothing else")
		}
		var e event.Envelope
		if err := json.Unmarshal(in.Event, &e); err != nil {
			return fmt.Errorf("scenario: event line: %w", err)
		}
		l.Event, l.Time = &e, e.ObservedTime
		return nil
	}
	return fmt.Errorf("scenario: unknown line type %q", in.Type)
}

// WriteJSONL writes one line per JSON object, in the order given.
func WriteJSONL(w io.Writer, lines []Line) error {
	bw := bufio.NewWriter(w)
	for i, l := range lines {
		data, err := l.MarshalJSON()
		if err != nil {
			return fmt.Errorf("line %d: %w", i+1, err)
		}
		bw.Write(data)
		bw.WriteByte('\n')
	}
	return bw.Flush()
}

// ReadJSONL reads what WriteJSONL wrote; blank lines are skipped.
func ReadJSONL(r io.Reader) ([]Line, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), event.MaxEnvelopeBytes+64<<10)
	var lines []Line
	n := 0
	for sc.Scan() {
		n++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		var l Line
		if err := l.UnmarshalJSON(b); err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		lines = append(lines, l)
	}
	return lines, sc.Err()
}
