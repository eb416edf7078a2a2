package bus

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// ErrIncompatible is wrapped by EnsureStream and EnsureConsumer when the
// existing object differs from the wanted one in a way that cannot be applied
// without losing data or that the server cannot change in place. Such changes
// need an operator (a new stream and a migration), never an automatic update
// at service start-up.
var ErrIncompatible = errors.New("bus: incompatible change")

func incompatible(kind, name, field string, old, new any) error {
	return fmt.Errorf("%w: %s %s: %s would change from %v to %v", ErrIncompatible, kind, name, field, old, new)
}

// EnsureStream creates the stream if it is missing and otherwise updates it
// when the change is compatible: subjects added, subjects removed that hold no
// message, limits, duplicate window, replicas, description and the like.
// Storage type, retention policy and removing subjects that still hold
// messages are refused with an error wrapping ErrIncompatible that names the
// field. Running it twice with the same config changes nothing.
//
// A request the JetStream API leaves unanswered is asked again
// (AskAgain).
func EnsureStream(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	if cfg.Name == "" {
		return nil, invalid("stream name", "empty")
	}
	return AskAgain(ctx, func() (jetstream.Stream, error) { return ensureStream(ctx, js, cfg) })
}

// AskAgain calls ask until it is answered: a call that ends without an
// answer from the JetStream API (its timeout, context.DeadlineExceeded,
// ctx itself not ended) is made again, a second later, up to
// apiTries calls in all. On a fresh cluster, replicated streams and
// buckets created by several services starting at once kept the API from
// answering any of them for its 5 s timeout, and every service ended its
// start with "context deadline exceeded". ask must be safe to repeat
// (create-or-update, create-or-bind).
func AskAgain[T any](ctx context.Context, ask func() (T, error)) (T, error) {
	for try := 1; ; try++ {
		v, err := ask()
		if err == nil || !errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
			return v, err
		}
		if try == apiTries {
			return v, fmt.Errorf("%w (no answer from the JetStream API to %d requests in a row)", err, try)
		}
		sleep(ctx, askAgainPause)
	}
}

// askAgainPause is the wait before AskAgain asks again (tests shorten it).
var askAgainPause = time.Second

// apiTries bounds how often AskAgain asks again a request the
// JetStream API left unanswered: 6 tries of 5 s, half a minute.
const apiTries = 6

func ensureStream(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	for attempt := 0; ; attempt++ {
		s, err := js.Stream(ctx, cfg.Name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			s, err = js.CreateStream(ctx, cfg)
			// Another instance of the service may have created it meanwhile.
			if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) && attempt == 0 {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("bus: create stream %s: %w%s", cfg.Name, err, reservationHint(err, cfg))
			}
			return s, nil
		}
		if err != nil {
			return nil, fmt.Errorf("bus: look up stream %s: %w", cfg.Name, err)
		}
		if err := checkStreamChange(ctx, s, cfg); err != nil {
			return nil, err
		}
		s, err = js.UpdateStream(ctx, cfg)
		if err != nil {
			return nil, fmt.Errorf("bus: update stream %s: %w%s", cfg.Name, err, reservationHint(err, cfg))
		}
		return s, nil
	}
}

func checkStreamChange(ctx context.Context, s jetstream.Stream, want jetstream.StreamConfig) error {
	have := s.CachedInfo().Config
	name := want.Name
	if have.Storage != want.Storage {
		return incompatible("stream", name, "storage", have.Storage, want.Storage)
	}
	if have.Retention != want.Retention {
		return incompatible("stream", name, "retention", have.Retention, want.Retention)
	}
	if (have.Mirror == nil) != (want.Mirror == nil) {
		return incompatible("stream", name, "mirror", have.Mirror != nil, want.Mirror != nil)
	}
	if have.Sealed && !want.Sealed {
		return incompatible("stream", name, "sealed", have.Sealed, want.Sealed)
	}
	for _, subj := range have.Subjects {
		if slices.Contains(want.Subjects, subj) {
			continue
		}
		info, err := s.Info(ctx, jetstream.WithSubjectFilter(subj))
		if err != nil {
			return fmt.Errorf("bus: stream %s: count messages on removed subject %s: %w", name, subj, err)
		}
		var n uint64
		for _, c := range info.State.Subjects {
			n += c
		}
		if n > 0 {
			return fmt.Errorf("%w: stream %s: subjects: removing %q would orphan %d stored message(s) (subjects %v -> %v)",
				ErrIncompatible, name, subj, n, have.Subjects, want.Subjects)
		}
	}
	return nil
}

// EnsureConsumer creates the durable consumer if it is missing and otherwise
// updates it when the server can apply the change in place (filter subjects,
// ack wait, max deliver, max ack pending, backoff, description...). Changes the
// server cannot make (deliver policy, start sequence or time, ack policy,
// replay policy, max waiting, pull/push mode) are refused with ErrIncompatible
// naming the field, because they mean a different consumer, not an updated one.
func EnsureConsumer(ctx context.Context, js jetstream.JetStream, stream string, cfg jetstream.ConsumerConfig) (jetstream.Consumer, error) {
	if cfg.Durable == "" {
		return nil, invalid("durable", "a durable name is required")
	}
	if cfg.Name != "" && cfg.Name != cfg.Durable {
		return nil, invalid("name", "%q differs from durable %q", cfg.Name, cfg.Durable)
	}
	if nc := js.Conn(); nc != nil {
		if err := filtersSupported(nc.ConnectedServerVersion(), stream+"/"+cfg.Durable, cfg); err != nil {
			return nil, err
		}
	}
	c, err := js.Consumer(ctx, stream, cfg.Durable)
	switch {
	case errors.Is(err, jetstream.ErrConsumerNotFound):
	case err != nil:
		return nil, fmt.Errorf("bus: look up consumer %s on stream %s: %w", cfg.Durable, stream, err)
	default:
		if err := checkConsumerChange(stream+"/"+cfg.Durable, c.CachedInfo().Config, cfg); err != nil {
			return nil, err
		}
	}
	c, err = js.CreateOrUpdateConsumer(ctx, stream, cfg)
	if err != nil {
		return nil, fmt.Errorf("bus: create or update consumer %s on stream %s: %w", cfg.Durable, stream, err)
	}
	return c, nil
}

// ErrServerTooOld is returned for a consumer the connected NATS server
// cannot make as asked.
var ErrServerTooOld = errors.New("bus: nats-server too old")

// filtersSupported refuses a consumer of several filter subjects on a
// server before 2.10, which does not know the field: nats-server 2.9
// made the consumer unfiltered (nats.go returned the error after it), and
// a later start updating it to one subject left a consumer that skipped
// every message and said nothing. version "" or unparsed passes.
func filtersSupported(version, name string, cfg jetstream.ConsumerConfig) error {
	if len(cfg.FilterSubjects) < 2 || serverAtLeast(version, 2, 10) {
		return nil
	}
	return fmt.Errorf("%w: consumer %s filters %d subjects (%s), which needs nats-server 2.10 or later; the server is %s: upgrade it, or give the consumer one subject (its filter_subjects)",
		ErrServerTooOld, name, len(cfg.FilterSubjects), strings.Join(cfg.FilterSubjects, ", "), version)
}

// serverAtLeast tells whether a nats-server version ("2.9.10",
// "2.11.0-beta.2") is major.minor or later; a version it cannot read
// passes.
func serverAtLeast(version string, major, minor int) bool {
	parts := strings.SplitN(version, ".", 3)
	if len(parts) < 2 {
		return true
	}
	ma, err1 := strconv.Atoi(parts[0])
	mi, err2 := strconv.Atoi(strings.SplitN(parts[1], "-", 2)[0])
	if err1 != nil || err2 != nil {
		return true
	}
	return ma > major || ma == major && mi >= minor
}

func checkConsumerChange(name string, have, want jetstream.ConsumerConfig) error {
	if have.DeliverPolicy != want.DeliverPolicy {
		return incompatible("consumer", name, "deliver_policy", have.DeliverPolicy, want.DeliverPolicy)
	}
	if have.OptStartSeq != want.OptStartSeq {
		return incompatible("consumer", name, "opt_start_seq", have.OptStartSeq, want.OptStartSeq)
	}
	if !timePtrEqual(have.OptStartTime, want.OptStartTime) {
		return incompatible("consumer", name, "opt_start_time", have.OptStartTime, want.OptStartTime)
	}
	if have.AckPolicy != want.AckPolicy {
		return incompatible("consumer", name, "ack_policy", have.AckPolicy, want.AckPolicy)
	}
	if have.ReplayPolicy != want.ReplayPolicy {
		return incompatible("consumer", name, "replay_policy", have.ReplayPolicy, want.ReplayPolicy)
	}
	// The server fills in its default when MaxWaiting is zero.
	if want.MaxWaiting != 0 && have.MaxWaiting != want.MaxWaiting {
		return incompatible("consumer", name, "max_waiting", have.MaxWaiting, want.MaxWaiting)
	}
	if have.MemoryStorage != want.MemoryStorage {
		return incompatible("consumer", name, "mem_storage", have.MemoryStorage, want.MemoryStorage)
	}
	return nil
}

func timePtrEqual(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(*b)
}

// JetStream error codes for a stream whose max_bytes does not fit what the
// server (or account) may still reserve.
const (
	errCodeInsufficientMemory  = 10028
	errCodeInsufficientStorage = 10047
)

// reservationHint explains an "insufficient resources" refusal: JetStream
// reserves a stream's max_bytes up front, so a server with a small
// max_store refuses the default limits before any message is stored.
func reservationHint(err error, cfg jetstream.StreamConfig) string {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) || (apiErr.ErrorCode != errCodeInsufficientStorage && apiErr.ErrorCode != errCodeInsufficientMemory) {
		return ""
	}
	return fmt.Sprintf(" (the server reserves the stream's max_bytes, %d bytes, when it is created: lower streams.max_bytes or give the server more room, nats.max_store for the embedded one)", cfg.MaxBytes)
}
