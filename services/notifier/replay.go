package notifier

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/aiops-dev/aiops/pkg/bus"
	"github.com/aiops-dev/aiops/pkg/event"
)

// DeadLetter is one incident event the notifier gave up on: the
// receivers stayed down through every redelivery, or refused it.
type DeadLetter struct {
	// Seq is its sequence in the DEADLETTER stream.
	Seq        uint64
	IncidentID string
	EventID    string
	Status     string
	// Reason is why it was dead-lettered; Stored is when.
	Reason string
	Stored time.Time
	// Err is what replaying it answered (nil: delivered, and removed from
	// the dead letters).
	Err error
}

// DeadLetterSubject is where the notifier's consumer puts its dead
// letters (bus.ConsumerConfig.DeadLetterPrefix.<stream>.<durable>).
func (c Config) DeadLetterSubject() string {
	c = c.WithDefaults()
	prefix := c.Consumer.DeadLetterPrefix
	if prefix == "" {
		prefix = "deadletter" // the bus consumer's default
	}
	return prefix + "." + c.Consumer.Stream + "." + c.Consumer.Durable
}

// Replay delivers the notifier's dead letters again through proc (the
// same routes, silences, inhibition and delivery as the service, with the
// same idempotency keys, so a receiver that got one before can tell), in
// the order they were dead-lettered. A dead letter delivered is removed;
// one that fails again stays for the next replay. With dryRun nothing is
// sent or removed: each is only listed. each is called for every dead
// letter as it is done (progress).
func Replay(ctx context.Context, js jetstream.JetStream, proc *Processor, subject string, dryRun bool, each func(DeadLetter)) (delivered, failed int, err error) {
	stream, err := js.Stream(ctx, bus.StreamDeadLetter)
	if err != nil {
		return 0, 0, fmt.Errorf("notifier: replay: stream %s: %w", bus.StreamDeadLetter, err)
	}
	info, err := stream.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		return 0, 0, fmt.Errorf("notifier: replay: %w", err)
	}
	total := info.State.Subjects[subject]
	if total == 0 {
		return 0, 0, nil
	}
	// An ordered consumer reads them once without leaving a consumer
	// behind.
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
	if err != nil {
		return 0, 0, fmt.Errorf("notifier: replay: %w", err)
	}
	for n := uint64(0); n < total; n++ {
		msg, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			if errors.Is(err, jetstream.ErrNoMessages) || errors.Is(err, nats.ErrTimeout) {
				break // removed meanwhile (another replay)
			}
			return delivered, failed, fmt.Errorf("notifier: replay: %w", err)
		}
		md, err := msg.Metadata()
		if err != nil {
			return delivered, failed, err
		}
		dl := DeadLetter{Seq: md.Sequence.Stream, Stored: md.Timestamp, Reason: msg.Headers().Get(bus.HeaderDeadLetterReason)}
		e, perr := event.Parse(msg.Data())
		switch {
		case perr != nil:
			dl.Err = fmt.Errorf("not an event: %w", perr)
		default:
			dl.EventID, dl.IncidentID = e.ID, e.Labels["incident_id"]
			dl.Status = incidentStatus(e)
			if !dryRun {
				dl.Err = proc.Notify(ctx, e)
			}
		}
		switch {
		case dryRun:
		case dl.Err != nil:
			failed++
		default:
			if err := stream.DeleteMsg(ctx, dl.Seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
				dl.Err = fmt.Errorf("delivered, but not removed from the dead letters: %w", err)
				failed++
			} else {
				delivered++
			}
		}
		if each != nil {
			each(dl)
		}
	}
	return delivered, failed, nil
}

// incidentStatus is the transition an incident event announces, for
// listing (empty when the body does not say).
func incidentStatus(e *event.Envelope) string {
	var b struct {
		Status string `json:"status"`
	}
	if e.DecodeBody(&b) != nil {
		return ""
	}
	return b.Status
}
