package bus

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/aiops-dev/aiops/pkg/event"
)

// The default topology: every event on EVENTS (incidents included, on
// events.incident.<service>), commands to incidents on INCIDENTS, and what
// no stage could process on DEADLETTER, where an operator can inspect and
// replay it. pkg/event/subject.go has the subject scheme.
const (
	StreamEvents     = "EVENTS"
	StreamIncidents  = "INCIDENTS"
	StreamDeadLetter = "DEADLETTER"

	SubjectEvents     = "events.>"
	SubjectIncidents  = "incidents.>"
	SubjectDeadLetter = "deadletter.>"

	// DefaultDuplicateWindow is how long a stream remembers message ids. It
	// must exceed the longest time a producer keeps retrying one publish.
	DefaultDuplicateWindow = 2 * time.Minute

	// DefaultMaxAge is how long every stream keeps a message by default:
	// the retention of the events and logs tables (writer.retention), so a
	// replay from the stream never holds what the store has already
	// dropped, and the stream cannot grow for ever (issue #14: 613 MB after
	// 460k events with no limit).
	DefaultMaxAge = 14 * 24 * time.Hour
	// DefaultEventsMaxBytes bounds EVENTS (about 800,000 events of 1.3 KB):
	// the backlog the stream holds while a consumer is down. Past it the
	// oldest messages are discarded, consumed or not, so size it to the
	// longest outage to ride out (streams.max_bytes). JetStream reserves a
	// stream's max_bytes in its store when the stream is created, so the
	// three defaults need 1.125 GiB of max_store.
	DefaultEventsMaxBytes = 1 << 30
	// DefaultSmallStreamMaxBytes bounds INCIDENTS (commands) and DEADLETTER.
	DefaultSmallStreamMaxBytes = 64 << 20
	// MinStreamMaxBytes is the least byte bound a configuration may give
	// the streams (streams.max_bytes): two of the largest messages the
	// pipeline makes, an envelope of event.MaxEnvelopeBytes (the server's
	// default max_payload) with its subject and headers, a dead letter's
	// included (its reason alone may take 1 KiB). The server acks a
	// message larger than the stream's bound and discards it at once, and
	// a stream with room for one only has each large message push out
	// every message before it, read or not.
	MinStreamMaxBytes = 2 * (event.MaxEnvelopeBytes + messageHeaderRoom)
	// messageHeaderRoom is what a message's subject, headers and the
	// store's own record may add to its data.
	messageHeaderRoom = 64 << 10
	// With memory storage (tests and demos) the defaults are a quarter, so
	// the reservation fits the memory of a small machine; EVENTS but
	// DefaultMemoryEventsMaxBytes.
	memoryStorageDivisor = 4
	// DefaultMemoryEventsMaxBytes bounds EVENTS with memory storage. A
	// quarter of the file default, 256 MiB, left 25.6 MiB above the
	// gateway's default bound (ingest.max_store_backlog, 0.9), under one
	// request's events (ingest.max_expanded_bytes, 32 MiB): a request
	// accepted just under the bound could push out events the writer had
	// not stored, and the gateway warned so at every start of the
	// project's own defaults. 384 MiB leaves 38 MiB: the request's events
	// and their subjects, headers and the store's records (10,000 events
	// at most, some 300 bytes each).
	DefaultMemoryEventsMaxBytes = 384 << 20
)

type topology struct {
	storage          jetstream.StorageType
	replicas         int
	dupWindow        time.Duration
	maxAge           time.Duration
	maxBytes         int64
	metricPartitions int
}

// MaxMetricPartitions bounds WithMetricPartitions.
const MaxMetricPartitions = 1024

// WithMetricPartitions makes the EVENTS stream put every metric sample in
// one of n partitions by its service: a sample published on
// events.metric.<service> is stored on events.metric.<p>.<service>, p in
// 0..n-1 (NATS deterministic subject mapping, the same p for a service on
// every server and after every restart). Stateful consumers of metrics then
// scale out one instance per partition, each filtering
// MetricPartitionFilter(p), and every series always reaches the same
// instance. 0 (the default) stores samples on the subject they were sent
// on. Every service provisions the streams, so all must agree on n.
func WithMetricPartitions(n int) TopologyOption {
	return func(t *topology) { t.metricPartitions = n }
}

// MetricPartitionFilter is the subject filter of partition p of the metric
// samples (see WithMetricPartitions).
func MetricPartitionFilter(p int) string { return event.MetricPartitionFilter(p) }

// TopologyOption adjusts DefaultStreams.
type TopologyOption func(*topology)

// WithMemoryStorage keeps the streams in memory: for tests and demos only, a
// restart loses everything.
func WithMemoryStorage() TopologyOption {
	return func(t *topology) { t.storage = jetstream.MemoryStorage }
}

// WithReplicas sets the replica count (1, 3 or 5 in a cluster).
func WithReplicas(n int) TopologyOption { return func(t *topology) { t.replicas = n } }

// WithDuplicateWindow replaces DefaultDuplicateWindow.
func WithDuplicateWindow(d time.Duration) TopologyOption {
	return func(t *topology) { t.dupWindow = d }
}

// WithMaxAge bounds how long messages are kept (0: DefaultMaxAge; negative:
// no bound).
func WithMaxAge(d time.Duration) TopologyOption { return func(t *topology) { t.maxAge = d } }

// WithMaxBytes bounds each stream's size (0: DefaultEventsMaxBytes for
// EVENTS, DefaultSmallStreamMaxBytes for the others; with memory storage
// DefaultMemoryEventsMaxBytes and a quarter of the other; negative: no
// bound).
func WithMaxBytes(n int64) TopologyOption { return func(t *topology) { t.maxBytes = n } }

// DefaultStreams returns the EVENTS, INCIDENTS and DEADLETTER stream configs:
// file storage, limits retention discarding the oldest, one replica, a
// 2-minute duplicate window, DefaultMaxAge and DefaultEventsMaxBytes (EVENTS)
// or DefaultSmallStreamMaxBytes unless options say otherwise.
func DefaultStreams(opts ...TopologyOption) []jetstream.StreamConfig {
	t := topology{storage: jetstream.FileStorage, replicas: 1, dupWindow: DefaultDuplicateWindow}
	for _, o := range opts {
		o(&t)
	}
	maxAge := t.maxAge
	switch {
	case maxAge == 0:
		maxAge = DefaultMaxAge
	case maxAge < 0:
		maxAge = 0 // JetStream's "no bound"
	}
	mk := func(name, subject, desc string) jetstream.StreamConfig {
		maxBytes := t.maxBytes
		switch {
		case maxBytes == 0 && name == StreamEvents:
			maxBytes = DefaultEventsMaxBytes
		case maxBytes == 0:
			maxBytes = DefaultSmallStreamMaxBytes
		case maxBytes < 0:
			maxBytes = -1
		}
		if t.maxBytes == 0 && t.storage == jetstream.MemoryStorage {
			maxBytes /= memoryStorageDivisor
			if name == StreamEvents {
				maxBytes = DefaultMemoryEventsMaxBytes
			}
		}
		return jetstream.StreamConfig{
			Name:        name,
			Description: desc,
			Subjects:    []string{subject},
			Storage:     t.storage,
			Retention:   jetstream.LimitsPolicy,
			Replicas:    t.replicas,
			Duplicates:  t.dupWindow,
			MaxAge:      maxAge,
			MaxBytes:    maxBytes,
			Discard:     jetstream.DiscardOld,
		}
	}
	events := mk(StreamEvents, SubjectEvents, "aiops events: every input and every stage's output")
	if n := t.metricPartitions; n > 0 {
		// Only three-token subjects match: a sample already partitioned
		// (republished from a dead letter, say) is stored as it is.
		events.SubjectTransform = &jetstream.SubjectTransformConfig{
			Source:      "events.metric.*",
			Destination: fmt.Sprintf("events.metric.{{partition(%d,1)}}.{{wildcard(1)}}", n),
		}
	}
	return []jetstream.StreamConfig{
		events,
		mk(StreamIncidents, SubjectIncidents, "aiops commands to incidents (ack, resolve, assign, comment) on incidents.command.<id>"),
		mk(StreamDeadLetter, SubjectDeadLetter, "aiops messages no stage could process, with the reason in headers"),
	}
}

// EnsureTopology ensures every stream; it stops at the first failure.
func EnsureTopology(ctx context.Context, js jetstream.JetStream, streams []jetstream.StreamConfig) error {
	for _, cfg := range streams {
		if _, err := EnsureStream(ctx, js, cfg); err != nil {
			return fmt.Errorf("bus: topology: %w", err)
		}
	}
	return nil
}

// TopologyDrift names each setting of the existing streams that ensuring
// streams would change ("EVENTS max_bytes 1073741824 -> 268435456"); a
// stream not there yet is left out. Every service ensures the streams at
// start, so two services configured differently change them back and
// forth, each start trimming (max_bytes, max_age), moving (replicas) or
// re-partitioning (metric_partitions) what the other set: the caller says
// so before it applies its own. A stream that cannot be looked up is left
// to EnsureStream to report.
func TopologyDrift(ctx context.Context, js jetstream.JetStream, streams []jetstream.StreamConfig) []string {
	var drift []string
	for _, want := range streams {
		s, err := js.Stream(ctx, want.Name)
		if err != nil {
			continue
		}
		have := s.CachedInfo().Config
		note := func(field string, old, new any) {
			drift = append(drift, fmt.Sprintf("%s %s %v -> %v", want.Name, field, old, new))
		}
		if have.Replicas != want.Replicas && want.Replicas > 0 {
			note("replicas", have.Replicas, want.Replicas)
		}
		if bound(have.MaxBytes) != bound(want.MaxBytes) {
			note("max_bytes", have.MaxBytes, want.MaxBytes)
		}
		if have.MaxAge != want.MaxAge {
			note("max_age", have.MaxAge, want.MaxAge)
		}
		if want.Duplicates > 0 && have.Duplicates != want.Duplicates {
			note("duplicate_window", have.Duplicates, want.Duplicates)
		}
		if transform(have.SubjectTransform) != transform(want.SubjectTransform) {
			note("subject_transform (metric_partitions)", transform(have.SubjectTransform), transform(want.SubjectTransform))
		}
	}
	return drift
}

// bound is a stream's byte limit, -1 for none (which the server keeps
// for 0).
func bound(n int64) int64 {
	if n <= 0 {
		return -1
	}
	return n
}

func transform(t *jetstream.SubjectTransformConfig) string {
	if t == nil {
		return "none"
	}
	return t.Source + " -> " + t.Destination
}
