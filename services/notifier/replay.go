package notifier

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/aiops-dev/aiops/pkg/bus"
	"github.com/aiops-dev/aiops/pkg/correlate"
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
	// Replay is what replaying it sends (in a dry run: would send).
	Replay Replayed
	// Newer is the dead letter sent in its place (ReplaySuperseded).
	Newer uint64
	// Now is the incident's state in the notifier's state bucket: "open"
	// (acknowledged included), "resolved", or "" when not known there.
	Now string
	// Err is what replaying it answered (nil: done, and removed from the
	// dead letters).
	Err error
}

// Replayed is what a replay sends for a dead letter: a dead letter is an
// old state of its incident, and the receivers are brought to the state
// the incident is in now, not to that one.
type Replayed int

const (
	// ReplayState sends the dead letter's own state, as a first notice:
	// it is the newest of its incident's dead letters, and the incident
	// was not resolved since (or its state is not known).
	ReplayState Replayed = iota
	// ReplayResolve sends the incident's resolve instead: it was resolved
	// since, and the dead letter's state (a trigger, a ticket opened or
	// reopened) would page for an incident that is over.
	ReplayResolve
	// ReplaySuperseded sends nothing of its own: a newer dead letter of
	// its incident (Newer) is sent in its place, and it goes with it.
	ReplaySuperseded
	// ReplayOutdated sends nothing: the notifier handled a newer state of
	// the incident, still open, since (sent it, muted it, or holds it
	// for a receiver it cannot reach); sent now, the dead letter would
	// take its receivers back to an older state (an acknowledged ticket
	// to open).
	ReplayOutdated
)

func (r Replayed) String() string {
	switch r {
	case ReplayResolve:
		return "resolve"
	case ReplaySuperseded:
		return "superseded"
	case ReplayOutdated:
		return "outdated"
	}
	return "state"
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
// same routes, silences and delivery as the service, with the same
// idempotency keys, so a receiver that got one before can tell), bringing
// each incident's receivers to the state it is in now:
//
//   - the dead letters of one incident are sent as one, the newest state
//     (revision, then event time); the others are superseded by it,
//     removed with it or kept with it;
//   - an incident the state bucket (StateConfig) says was resolved since
//     that state is sent its resolve instead: the incident as that state
//     has it, resolved at the resolve's time, under the resolve's own
//     idempotency keys; it goes out whatever mutes it (a receiver may
//     have heard of the incident), to integrations with send_resolved;
//   - any other (the incident open, or its state not known: no entry in
//     the bucket, or no bucket) is sent as it is, as a first notice (what
//     reached a receiver before is not known: PagerDuty gets a trigger
//     before an acknowledge).
//
// Incidents go in the order of their first dead letter. What is done is
// removed; what fails again stays for the next replay. An incident whose
// state cannot be read is not sent (its dead letters fail). With dryRun
// nothing is sent or removed: each is only listed with what a replay
// would send. each is called for every dead letter as it is done.
// delivered and failed count dead letters.
func Replay(ctx context.Context, js jetstream.JetStream, proc *Processor, subject string, dryRun bool, each func(DeadLetter)) (delivered, failed int, err error) {
	stream, err := js.Stream(ctx, bus.StreamDeadLetter)
	if err != nil {
		return 0, 0, fmt.Errorf("notifier: replay: stream %s: %w", bus.StreamDeadLetter, err)
	}
	letters, err := readDeadLetters(ctx, stream, subject)
	if err != nil || len(letters) == 0 {
		return 0, 0, err
	}
	state, err := openState(ctx, js, proc.cfg.State)
	if err != nil {
		return 0, 0, fmt.Errorf("notifier: replay: %w", err)
	}
	for _, g := range letters {
		env, err := g.plan(ctx, state)
		if err == nil && env != nil && !dryRun {
			err = proc.Notify(ctx, env)
		}
		for _, dl := range g.members {
			dl.Err = err
		}
		if err == nil && !dryRun {
			g.remove(ctx, stream)
		}
		for _, dl := range g.members {
			switch {
			case dryRun:
			case dl.Err != nil:
				failed++
			default:
				delivered++
			}
			if each != nil {
				each(*dl)
			}
		}
	}
	return delivered, failed, nil
}

// remove deletes g's dead letters once done, the newest last, and none
// after one that could not be: an older state of an incident is never
// left alone, for the next replay to send as it is.
func (g *letterGroup) remove(ctx context.Context, stream jetstream.Stream) {
	order := slices.DeleteFunc(slices.Clone(g.members), func(dl *DeadLetter) bool { return dl == g.newest })
	var kept error
	for _, dl := range append(order, g.newest) {
		if kept == nil {
			if err := stream.DeleteMsg(ctx, dl.Seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
				kept = fmt.Errorf("done, but not removed from the dead letters: %w", err)
			}
		}
		dl.Err = kept
	}
}

// letterGroup is the dead letters of one incident (or one dead letter
// that is not an incident's), in the order they were dead-lettered, and
// the newest state among them.
type letterGroup struct {
	members []*DeadLetter
	newest  *DeadLetter
	env     *event.Envelope // newest's event; nil: not an event (err)
	st      correlate.State // newest's incident state
	stamp   stamp
	err     error // newest is not an event
}

// readDeadLetters reads every dead letter on subject once, grouped by
// incident in the order of each one's first. Only the newest event of an
// incident is kept in memory.
func readDeadLetters(ctx context.Context, stream jetstream.Stream, subject string) ([]*letterGroup, error) {
	info, err := stream.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		return nil, fmt.Errorf("notifier: replay: %w", err)
	}
	total := info.State.Subjects[subject]
	if total == 0 {
		return nil, nil
	}
	// An ordered consumer reads them once without leaving a consumer
	// behind.
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
	if err != nil {
		return nil, fmt.Errorf("notifier: replay: %w", err)
	}
	var groups []*letterGroup
	byIncident := map[string]*letterGroup{}
	for n := uint64(0); n < total; n++ {
		msg, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			if errors.Is(err, jetstream.ErrNoMessages) || errors.Is(err, nats.ErrTimeout) {
				break // removed meanwhile (another replay)
			}
			return nil, fmt.Errorf("notifier: replay: %w", err)
		}
		md, err := msg.Metadata()
		if err != nil {
			return nil, err
		}
		dl := &DeadLetter{Seq: md.Sequence.Stream, Stored: md.Timestamp, Reason: msg.Headers().Get(bus.HeaderDeadLetterReason)}
		if n := msg.Headers().Get(bus.HeaderTruncated); n != "" {
			// Cut to fit max_payload: the whole event is on its stream.
			stream, _, _ := strings.Cut(msg.Headers().Get(bus.HeaderConsumer), "/")
			groups = append(groups, &letterGroup{members: []*DeadLetter{dl}, newest: dl, err: fmt.Errorf("the dead letter holds only the first bytes of an event of %s bytes (too large for the server's max_payload with the dead-letter headers): the whole event is on stream %s at sequence %s",
				n, stream, msg.Headers().Get(bus.HeaderStreamSeq))})
			continue
		}
		e, perr := event.Parse(msg.Data())
		if perr != nil {
			groups = append(groups, &letterGroup{members: []*DeadLetter{dl}, newest: dl, err: fmt.Errorf("not an event: %w", perr)})
			continue
		}
		dl.EventID, dl.IncidentID = e.ID, e.Labels["incident_id"]
		var st correlate.State
		if e.Kind != event.KindIncident || e.DecodeBody(&st) != nil || st.IncidentID == "" {
			// Not an incident's: sent alone, as it is (Notify says what
			// is wrong with it).
			dl.Status = incidentStatus(e)
			groups = append(groups, &letterGroup{members: []*DeadLetter{dl}, newest: dl, env: e})
			continue
		}
		dl.IncidentID, dl.Status = st.IncidentID, st.Status
		at := stamp{st.Revision, e.Time}
		g := byIncident[st.IncidentID]
		if g == nil {
			g = &letterGroup{}
			byIncident[st.IncidentID] = g
			groups = append(groups, g)
		}
		g.members = append(g.members, dl)
		// the later dead-lettered of two equal states stands for both
		if g.newest == nil || !at.before(g.stamp) {
			g.newest, g.env, g.st, g.stamp = dl, e, st, at
		}
	}
	for _, g := range groups {
		for _, dl := range g.members {
			if dl != g.newest {
				dl.Replay, dl.Newer = ReplaySuperseded, g.newest.Seq
			}
		}
	}
	return groups, nil
}

// plan decides what replaying g sends (g.newest.Replay), from the state
// the bucket has of its incident: the event to notify (nil: nothing).
func (g *letterGroup) plan(ctx context.Context, state jetstream.KeyValue) (*event.Envelope, error) {
	if g.err != nil || g.st.IncidentID == "" {
		return g.env, g.err
	}
	now, known, err := incidentState(ctx, state, g.st.IncidentID)
	if err != nil {
		return nil, err
	}
	if known {
		current := "open"
		if now.Resolved {
			current = "resolved"
		}
		for _, dl := range g.members {
			dl.Now = current
		}
	}
	switch {
	case !known || !g.stamp.before(now.stamp()):
		return g.env, nil
	case !now.Resolved:
		// The older letters go with the newest, unsent: none is
		// delivered in another's place.
		for _, dl := range g.members {
			dl.Replay = ReplayOutdated
		}
		return nil, nil
	}
	g.newest.Replay = ReplayResolve
	return resolveOf(g.env, g.st, now)
}

// openState is the notifier's state bucket, read only; nil when the
// notifier keeps no state (disabled, or never ran with it): no incident's
// state is known.
func openState(ctx context.Context, js jetstream.JetStream, cfg StateConfig) (jetstream.KeyValue, error) {
	cfg = cfg.WithDefaults()
	if cfg.Disabled {
		return nil, nil
	}
	kv, err := js.KeyValue(ctx, cfg.Bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("state bucket %s: %w", cfg.Bucket, err)
	}
	return kv, nil
}

// incidentState reads what the state bucket has of incident id; known is
// false when it has nothing (no bucket, no entry: the incident is not
// known there, or its entry expired after state.max_age).
func incidentState(ctx context.Context, state jetstream.KeyValue, id string) (inc openIncident, known bool, err error) {
	if state == nil {
		return inc, false, nil
	}
	e, err := state.Get(ctx, openKey(id))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return inc, false, nil
	}
	if err == nil {
		err = json.Unmarshal(e.Value(), &inc)
	}
	if err != nil {
		// Sending the dead letter's state might page for an incident
		// that is over: it stays until its state can be read.
		return inc, false, fmt.Errorf("incident %s's state in bucket %s not read, nothing sent: %w", id, state.Bucket(), err)
	}
	return inc, true, nil
}

// resolveOf is the resolve of the incident of e (state st) as the state
// bucket has it (now): st resolved at now's time and revision, under the
// resolve's own event id, so that its idempotency keys are those the
// notifier sent the resolve under (one derived from the resolve's stamp
// when the tombstone is older than its EventID).
func resolveOf(e *event.Envelope, st correlate.State, now openIncident) (*event.Envelope, error) {
	st.Status, st.State = event.IncidentResolved, correlate.StatusResolved
	st.Revision, st.ResolvedAt = now.Revision, now.At
	body, err := event.MarshalBody(st)
	if err != nil {
		return nil, fmt.Errorf("the resolve of incident %s: %w", st.IncidentID, err)
	}
	r := *e
	r.ID, r.Time, r.Body = now.EventID, now.At, body
	if r.ID == "" {
		r.ID = event.DerivedID(now.At, "notify-replay-resolve", st.IncidentID, strconv.Itoa(now.Revision))
	}
	return &r, nil
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
