package correlate

import (
	"fmt"
	"time"

	"github.com/aiops-dev/aiops/pkg/errs"
	"github.com/aiops-dev/aiops/pkg/event"
)

// SignalKind says what a signal is.
type SignalKind string

// The kinds of signal the correlator takes.
const (
	SignalAlert   SignalKind = "alert"
	SignalAnomaly SignalKind = "anomaly"
	SignalChange  SignalKind = "change"
)

// Signal is one input of the correlator, whatever event it came from: an
// alert (firing or resolved), an anomaly (a detector's, or an error burst of
// a log template), or a change to a service.
//
// Its JSON is saved in the correlator's snapshot (the anomalies waiting
// to open an incident): a field renamed keeps its tag.
type Signal struct {
	Kind SignalKind `json:"kind"`
	// EventID is the id of the event the signal came from.
	EventID string `json:"event_id,omitempty"`
	// Fingerprint identifies what the signal is about across repeats:
	// Alertmanager's fingerprint, a producer's dedup key, the series of an
	// anomaly, the template of an error burst. Repeats update one member.
	Fingerprint string `json:"fingerprint"`
	Service     string `json:"service,omitempty"`
	// Name is the alert name, the anomaly's metric or the change's type.
	Name     string         `json:"name,omitempty"`
	Summary  string         `json:"summary,omitempty"`
	Severity event.Severity `json:"severity,omitempty"`
	// Resolved is true for a resolved alert and for the close of an
	// anomaly episode (the series is back in its normal range: it repeats
	// its member without firing it again); changes are never resolved.
	Resolved bool `json:"resolved,omitempty"`
	// Time is the signal's own time: when the alert started or ended, when
	// the anomaly was seen, when the change happened. Every window of the
	// correlator runs on these times.
	Time time.Time `json:"time"`
	// Started is when a resolved alert started firing (its startsAt):
	// an alert that fired and resolved within Alertmanager's group_wait
	// is first seen resolved, and joins what failed when it fired.
	Started time.Time `json:"started,omitzero"`
	// Expires is when a firing alert is to be taken as resolved unless
	// reported again (event.AlertBody.ExpiresAt: Prometheus's endsAt),
	// zero for one that is resolved only by its resolution.
	Expires time.Time `json:"expires,omitzero"`
	// Observed is when the event was observed (its envelope's observed
	// time: the gateway's receipt): a later report of an earlier time is
	// news, an event delivered again is not (Correlator's stale rule).
	Observed time.Time `json:"observed,omitzero"`
	// Claimed is the time the event gave when SignalOf took its observed
	// time for it (MaxAheadOfObserved), else zero: a correlator that
	// finds the observed time itself far ahead trusts neither.
	Claimed time.Time         `json:"claimed,omitzero"`
	Labels  map[string]string `json:"labels,omitempty"`
	// Resource is where the signal's source ran (an OpenTelemetry
	// resource: deployment.environment, k8s.namespace.name), kept for the
	// notifier to route by; grouping reads Labels alone.
	Resource map[string]string `json:"resource,omitempty"`

	// Anomaly details. EpisodeID names the detector's episode the anomaly
	// belongs to, Episode which event of it this is (EpisodeOpen,
	// EpisodeUpdate, EpisodeClose); "" when it tells none (an error
	// burst, a producer's own).
	Value     float64 `json:"value,omitempty"`
	Expected  float64 `json:"expected,omitempty"`
	Lower     float64 `json:"lower,omitempty"`
	Upper     float64 `json:"upper,omitempty"`
	EpisodeID string  `json:"episode_id,omitempty"`
	Episode   string  `json:"episode,omitempty"`
	// EpisodeStart is when the episode began (its first anomalous
	// sample), zero when the detector tells none.
	EpisodeStart time.Time `json:"episode_start,omitzero"`
	// Change details.
	Version string `json:"version,omitempty"`
	Author  string `json:"author,omitempty"`
	Commit  string `json:"commit,omitempty"`
	URL     string `json:"url,omitempty"`
}

// The events of an anomaly episode (Signal.Episode), as event.AnomalyBody
// names them.
const (
	EpisodeOpen   = event.EpisodeOpen
	EpisodeUpdate = event.EpisodeUpdate
	EpisodeClose  = event.EpisodeClose
)

// SignalOf turns an envelope into a signal. Kinds the correlator does not
// take (logs, metrics, incidents) return ok false; a body that does not fit
// its kind is a permanent error naming the field.
func SignalOf(e *event.Envelope) (s Signal, ok bool, err error) {
	s = Signal{EventID: e.ID, Fingerprint: e.Fingerprint, Service: e.Service, Severity: e.Severity, Time: e.Time, Observed: e.ObservedTime, Labels: e.Labels, Resource: e.Resource}
	switch e.Kind {
	case event.KindAlert:
		var b event.AlertBody
		if err := e.DecodeBody(&b); err != nil {
			return s, false, errs.Permanent(fmt.Errorf("correlate: alert %s: %w", e.ID, err))
		}
		s.Kind, s.Name = SignalAlert, b.Name
		s.Summary = b.Annotations["summary"]
		if s.Summary == "" {
			s.Summary = b.Annotations["description"]
		}
		// The envelope's time is when the alert started firing, or ended
		// for a resolved one (ingest's Alertmanager decoder sets it so).
		s.Resolved = b.Status == event.AlertResolved
		if s.Resolved && !b.StartsAt.IsZero() && b.StartsAt.Before(s.Time) {
			s.Started = b.StartsAt
		}
		if !s.Resolved {
			s.Expires = b.ExpiresAt
		}
	case event.KindAnomaly:
		var b event.AnomalyBody
		if err := e.DecodeBody(&b); err != nil {
			return s, false, errs.Permanent(fmt.Errorf("correlate: anomaly %s: %w", e.ID, err))
		}
		s.Kind, s.Name, s.Summary = SignalAnomaly, b.Metric, b.Reason
		if b.Series != "" {
			s.Fingerprint = b.Series
		}
		if b.Value != nil {
			s.Value = *b.Value
		}
		s.Expected, s.Lower, s.Upper = b.Expected, b.Lower, b.Upper
		s.Resolved = b.Episode == event.EpisodeClose
		s.EpisodeID, s.Episode, s.EpisodeStart = b.EpisodeID, b.Episode, b.Start
	case event.KindChange:
		var b event.ChangeBody
		if err := e.DecodeBody(&b); err != nil {
			return s, false, errs.Permanent(fmt.Errorf("correlate: change %s: %w", e.ID, err))
		}
		s.Kind, s.Name, s.Summary = SignalChange, b.Type, b.Description
		s.Version, s.Author, s.Commit, s.URL = b.Version, b.Author, b.Commit, b.URL
	default:
		return s, false, nil
	}
	if s.Fingerprint == "" {
		s.Fingerprint = event.Fingerprint(e.Kind, e.Service, e.Labels, e.Resource)
	}
	// What happened cannot have happened after it was heard of: a time
	// more than MaxAheadOfObserved after the gateway's receipt is a
	// producer's clock running ahead (the gateway takes up to an hour),
	// and taken as it is it would move every window, quiet period and
	// timer of the correlator (and the notifier's clock) that far at once.
	// The receipt stands for it. Both live and replay read it from the
	// envelope, so they still agree.
	if !s.Observed.IsZero() && s.Time.Sub(s.Observed) > MaxAheadOfObserved {
		s.Claimed, s.Time = s.Time, s.Observed
	}
	return s, true, nil
}

// MaxAheadOfObserved is how far a signal's own time may run ahead of its
// envelope's observed time before the observed time stands for it
// (SignalOf). The clocks of two hosts kept by NTP differ by far less, but
// a little time ahead is allowed on purpose: `aiops demo` times its
// recovery up to 10 minutes ahead so as not to wait for it, and a
// detector's anomaly is timed by its sample, which the detector scores up
// to 5 minutes ahead of its own clock (detector.max_event_future).
// Within it, ingest.max_event_future is the bound (services/ingest/README.md).
const MaxAheadOfObserved = 15 * time.Minute
