// Package notifier delivers incidents to the tools people work in: it
// consumes the correlator's incident events (events.incident.>), routes
// each with an Alertmanager configuration file as it is (route tree,
// inhibit rules, time intervals), and delivers it to the matched receivers'
// integrations: Alertmanager's webhook v4 payload for webhook_configs
// (existing receivers keep working), the signed aiops payload for
// aiops_webhook_configs (Standard Webhooks signatures), PagerDuty, Slack,
// Jira, ServiceNow and Go templates. Delivery is at-least-once with an
// idempotency key per incident transition and integration, retried with
// backoff, and never repeated to an integration that answered 2xx when the
// incident event comes again.
package notifier

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"net/http"
	neturl "net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/bus"
	"github.com/aiops-dev/aiops/pkg/config"
	"github.com/aiops-dev/aiops/pkg/correlate"
	"github.com/aiops-dev/aiops/pkg/errs"
	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/pkg/notify/amconfig"
	"github.com/aiops-dev/aiops/pkg/notify/webhook"
	"github.com/aiops-dev/aiops/pkg/stage"
)

// Processor routes and delivers incident events: a stage.Sink that holds
// each event until its notifications went out, and a stage.Ticker that
// sends them when their grouping timers say.
type Processor struct {
	cfg    Config
	routes *amconfig.Config // nil: no routes configured
	client *webhook.Client
	log    zerolog.Logger
	// integrations are the receivers' integrations, by receiver name, in
	// the order of their idempotency keys.
	integrations map[string][]*integration
	// jiras are the Jira integrations by their path, whose memos New
	// keeps in the state bucket (keepJiraMemos).
	jiras map[string]*webhook.Jira

	// delivered remembers (transition, receiver, webhook) deliveries that
	// got a 2xx, so that a redelivered incident event does not notify
	// them again.
	delivered *lru.Cache[string, struct{}]
	// sentKV keeps those of them whose notification another integration
	// of the receiver failed, for the notifiers after this one
	// (delivered.go); nil: in memory only.
	sentKV jetstream.KeyValue

	mu sync.Mutex
	// sources holds, for each inhibit rule, the labels of the open
	// incidents that match its source matchers (by incident id): the
	// incidents that can inhibit through it. Kept per rule, as
	// Alertmanager does, so that an incident is checked against the few
	// that can inhibit it, not against every open incident.
	sources []map[string]map[string]string
	// open are the open incidents by id, what they inhibit by; unsaved
	// those changed since store last took them (sources.go)
	open     map[string]openIncident
	unsaved  map[string]struct{}
	store    OpenStore                 // nil: the open incidents live in memory only
	resolved *lru.Cache[string, ended] // resolved incidents' last states
	saveNow  chan struct{}             // wakes the saver (saveLoop)
	// saving holds one pass of saveOpen at a time; a pass waits for it
	// only as long as its context lets it (writeState's is bounded).
	saving chan struct{}
	// tombstoneWaits are the resolves whose events wait, sent, for their
	// tombstone's write (afterTombstone), by incident id.
	tombstoneWaits map[string][]tombstoneWait
	// quietSwept is when Tick last forgot the open incidents of which
	// nothing came for max_age, without a bucket (forgetQuietOpen).
	quietSwept    time.Time
	tombstoneHeld int
	fenced        atomic.Bool // the lease is lost: the store is not written
	storeFailing  atomic.Bool // the bucket's last write failed (a saver's pass, a key: keepSent): notifications do not wait for it (writeState)
	termBegun     atomic.Bool // a term read the open incidents (restoreOpen)
	// holds tells whether the lease is still this instance's by its own
	// clock (bus.Lease.Valid; nil: no lease): a paused instance must not
	// write what the next holder owns.
	holds func() bool
	// keptEvents is the bytes of incident events the open incidents keep
	// for repeats (recordSent), at most maxAllKeptEvents
	keptEvents     int
	loggedKeptFull bool
	loggedFull     bool

	// records publishes every attempt as a webhook_delivery event (the
	// writer's webhook_deliveries table); nil: attempts are only logged.
	records stage.Publisher
	// silences mute notifications by their labels (nil: none).
	silences Muter

	// schedule holds the notifications waiting for their route's timers,
	// in event time (clock), under mu.
	schedule *schedule
	clock    eventClock
	m        *metrics
	now      func() time.Time
	// lanes deliver what came due, one per receiver (under mu): a
	// receiver that is slow, or down and retried, holds only its own
	// notifications behind it, and one receiver's go out one at a time in
	// the order they came due, as Alertmanager runs each aggregation
	// group's pipeline on its own goroutine.
	lanes map[string]*lane
	// inFlight counts the notes handed to lanes whose result has not come
	// back (under mu); idle, when set, is closed once it drops to zero.
	inFlight int
	idle     chan struct{}
	// sendCtx is the lanes' context (under mu): it outlives Write's and
	// Tick's callers, and Flush cancels it (and makes a new one) when the
	// drain ends before a send did, as leaseLost does when the lease is
	// lost.
	sendCtx    context.Context
	cancelSend context.CancelFunc
	// maxHold is how long a notification whose receiver cannot be reached
	// is held and tried again (notifier.delivery.max_hold); maxAge is the
	// stream's max_age (0: unknown or unbounded), before which a held
	// event is given up on (hold).
	maxHold, maxAge time.Duration
	// span is what the stream held at the last look (under mu; zero
	// before one): past its max_bytes the stream discards its oldest
	// events whatever max_age says, so a held event is given up on before
	// the stream's oldest reach it (hold).
	span streamSpan
}

// streamSpan is the time the stream spans: its first and last messages'
// times, and whether it is at nine tenths of a size limit or more (so
// that its oldest messages go as new ones come), as seen at a time.
type streamSpan struct {
	first, last time.Time
	full        bool
	at          time.Time // when it was seen (noteStream sets it)
}

// spanOf is what a stream's state says of its span.
func spanOf(info *jetstream.StreamInfo) streamSpan {
	nearly := func(have uint64, limit int64) bool { return limit > 0 && float64(have) >= 0.9*float64(limit) }
	return streamSpan{first: info.State.FirstTime, last: info.State.LastTime,
		full: nearly(info.State.Bytes, info.Config.MaxBytes) || nearly(info.State.Msgs, info.Config.MaxMsgs)}
}

// noteStream records the stream's span (Service looks every
// streamLookEvery).
func (p *Processor) noteStream(span streamSpan) {
	span.at = p.now()
	p.mu.Lock()
	p.span = span
	p.mu.Unlock()
}

// lane is one receiver's delivery queue. Its goroutine runs while the
// queue holds something and ends when it is empty; the queue holds at most
// one note per incident and route (slot.take), so the schedule bounds it.
type lane struct {
	queue   []handoff
	running bool
}

// handoff is a note handed to a lane, with the event time it came due at
// (the route's interval starts then).
type handoff struct {
	n   *note
	now time.Time
}

// sending is what the records of one send's attempts name; each send
// carries its own in its context, since lanes send at the same time.
type sending struct {
	incidentID, service, eventID string
}

type sendingKey struct{}

// recorder gives the webhook client's attempts to Processor.record, with
// the context of the send they belong to.
type recorder struct{ p *Processor }

func (r recorder) RecordAttempt(a webhook.Attempt) { r.p.record(context.Background(), a) }

func (r recorder) RecordAttemptContext(ctx context.Context, a webhook.Attempt) { r.p.record(ctx, a) }

// WithRecords publishes every delivery attempt as a webhook_delivery event
// through pub (New gives it the bus).
func (p *Processor) WithRecords(pub stage.Publisher) *Processor {
	p.records = pub
	return p
}

// NewProcessor builds the processor without a network.
func NewProcessor(cfg Config, log zerolog.Logger, opts ...webhook.Option) (*Processor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	p := &Processor{cfg: cfg, log: log, schedule: newSchedule(), now: time.Now, lanes: map[string]*lane{},
		open: map[string]openIncident{}, unsaved: map[string]struct{}{}, jiras: map[string]*webhook.Jira{}, saving: make(chan struct{}, 1)}
	p.m = newMetrics(p)
	p.sendCtx, p.cancelSend = context.WithCancel(context.Background())
	p.maxHold = cmp.Or(cfg.Delivery.MaxHold, DefaultMaxHold)
	if cfg.Routes != "" {
		var err error
		if p.routes, err = amconfig.Load(cfg.Routes); err != nil {
			return nil, err
		}
		if p.integrations, err = buildIntegrations(p.routes, p); err != nil {
			return nil, err
		}
		if len(p.routes.Templates) > 0 {
			// Taken, as Alertmanager's files have them, but not read:
			// what they define (slack.default.title redefined, ...)
			// would be lost without a word.
			log.Warn().Strs("templates", p.routes.Templates).Msg("notifier.routes: the Alertmanager template files of templates are not read: " +
				"text keys (title, text, description, ...) are Go templates of the aiops incident ({{ .Title }}, services/notifier/README.md), " +
				"and the default messages are aiops's own; write what those files changed into the receivers' keys, then remove templates")
		}
		if rt := p.routes.Global.ResolveTimeout; rt != amconfig.DefaultResolveTimeout {
			// Alertmanager applies it to the alerts posted to it, which
			// aiops's gateway takes: a team moving its file would expect
			// it to hold there.
			log.Warn().Dur("resolve_timeout", rt).Msg("notifier.routes: global.resolve_timeout is not applied by the notifier: " +
				"alerts are posted to the gateway, whose ingest.resolve_timeout (5m by default) says how long one without endsAt holds; set it there")
		}
	} else {
		log.Warn().Msg("notifier.routes is not set: incidents are delivered to nobody")
	}
	p.cfg.Consumer.AckWait = cfg.ackWait()
	opts = append([]webhook.Option{webhook.WithRecorder(recorder{p})}, opts...)
	var err error
	if p.client, err = webhook.New(cfg.Delivery.Config, opts...); err != nil {
		return nil, err
	}
	p.delivered, _ = lru.New[string, struct{}](100_000)
	p.resolved, _ = lru.New[string, ended](maxResolved)
	p.saveNow = make(chan struct{}, 1)
	return p, nil
}

// recordWait bounds how long a delivery record waits for the publisher.
const recordWait = time.Second

// record logs every delivery attempt and publishes it as a
// webhook_delivery event, linked to the incident event, its id derived
// from the attempt so a repeat is stored once. It does not wait for the
// ack: the record of an attempt is worth less than holding the delivery.
// ctx names the send the attempt is part of.
func (p *Processor) record(ctx context.Context, a webhook.Attempt) {
	ev := p.log.Info()
	if a.Error != "" {
		ev = p.log.Warn().Str("error", a.Error)
	}
	ev.Str("receiver", a.Receiver).Str("idempotency_key", a.IdempotencyKey).Int("attempt", a.Number).
		Int("status", a.StatusCode).Dur("duration", a.Duration).Bool("retrying", a.Retrying).Msg("webhook attempt")
	if p.records == nil {
		return
	}
	cur, _ := ctx.Value(sendingKey{}).(sending)
	e, err := event.New(event.KindWebhookDelivery, cur.service, a.Start, event.WebhookDeliveryBody{
		IncidentID: cur.incidentID, Receiver: a.Receiver, Attempt: a.Number, StatusCode: a.StatusCode, Error: a.Error,
		DurationMS: a.Duration.Milliseconds(), IdempotencyKey: a.IdempotencyKey, Retrying: a.Retrying,
	})
	if err != nil {
		p.log.Error().Err(err).Msg("delivery record not built")
		return
	}
	e.ID = event.DerivedID(a.Start, "webhook_delivery", a.IdempotencyKey, fmt.Sprint(a.Number))
	e.Source = "notifier"
	e.Links = []string{cur.eventID}
	data, err := e.MarshalJSON()
	if err == nil {
		// A publisher whose acks are all outstanding makes Publish wait
		// for a slot: a record waits a moment for one, not the send it
		// records (nor a stop, which cancels ctx).
		pctx, cancel := context.WithTimeout(ctx, recordWait)
		_, err = p.records.Publish(pctx, bus.Message{Subject: e.Subject(), ID: e.ID, Data: data})
		cancel()
	}
	if err != nil {
		p.log.Warn().Err(err).Str("receiver", a.Receiver).Msg("delivery record not published")
	}
}

// routed is an incident event decided: the incident, and the routes it
// goes to (none: it is inhibited, silenced or muted everywhere).
type routed struct {
	inc    webhook.Incident
	st     correlate.State
	labels map[string]string // what it is routed and muted by
	routes []*amconfig.Route
	env    *event.Envelope // the incident event (kept with what was sent: recordSent)
}

// route decodes an incident event, records it as a source of inhibition
// (or forgets it, resolved) and finds the routes it goes to. Whether a
// silence, an inhibition or a time interval holds it back is asked when
// its notification is due (mutedNow), as Alertmanager asks at every
// flush: one added while a notification waits, or while an open incident
// repeats, holds it too. A bad event is a permanent error.
func (p *Processor) route(in *event.Envelope) (*routed, error) {
	r, err := p.routedOf(in)
	if err != nil {
		return r, err
	}
	p.mu.Lock()
	p.track(r)
	p.mu.Unlock()
	return r, nil
}

// track records r as a source of inhibition, or forgets it, resolved
// (trackOpen). p.mu is held.
func (p *Processor) track(r *routed) {
	if p.routes != nil && p.trackOpen(r.st.IncidentID, r.env.ID, r.labels, r.inc.Status == webhook.StatusResolved, stamp{r.st.Revision, r.env.Time}, shownAs{r.st.OpenedAt, r.st.Title}) {
		p.changed(r.st.IncidentID)
	}
}

// routedOf decodes an incident event and finds the routes it goes to,
// recording nothing.
func (p *Processor) routedOf(in *event.Envelope) (*routed, error) {
	var st correlate.State
	if err := in.DecodeBody(&st); err != nil {
		return nil, errs.Permanent(fmt.Errorf("notifier: incident event %s: %w", in.ID, err))
	}
	inc := incidentOf(in, &st)
	if err := inc.Validate(); err != nil {
		return nil, errs.Permanent(fmt.Errorf("notifier: incident event %s: %w", in.ID, err))
	}
	r := &routed{inc: inc, st: st, env: in}
	if p.routes == nil {
		return r, nil
	}
	r.labels = labelsOf(&st)
	for _, route := range p.routes.Route.Match(r.labels) {
		if _, ok := p.routes.Receiver(route.Receiver); ok { // Load checked every route's receiver
			r.routes = append(r.routes, route)
		}
	}
	return r, nil
}

// mutedNow says why n must not go out at now ("" when it may): another
// open incident inhibits its incident, a silence matches it (at now or at
// the wall clock), or its route is in a mute time interval (or out of its
// active ones) at now (inhibition only with inhibit: a replay of dead
// letters does not see the open incidents). A resolve whose route's receiver may have heard of
// the incident goes out whatever mutes it: a mute holds back pages, not
// the end of one a receiver already holds (its ticket would stay open).
// p.mu is held.
func (p *Processor) mutedNow(n *note, now time.Time, mayHaveHeard, inhibit bool) string {
	r := n.send.(*routed)
	if p.routes == nil || n.resolved && mayHaveHeard {
		return ""
	}
	if inhibit && p.inhibited(r.st.IncidentID, r.labels) {
		return "inhibited"
	}
	if ids := p.silenced(r.labels, now); len(ids) > 0 {
		return "silenced by " + strings.Join(ids, ", ")
	}
	for _, route := range r.routes {
		if route.Path != n.route {
			continue
		}
		muted, err := p.routes.Muted(route, now)
		if err != nil {
			p.log.Warn().Err(err).Str("route", route.Path).Msg("time interval not evaluated: delivering")
		}
		if muted {
			return "in a mute time interval (or out of the active ones) of " + route.Path
		}
	}
	return ""
}

// ErrMuted is Notify's answer when every receiver of the event is muted now
// (a silence, an inhibition, a time interval): nothing was sent.
var ErrMuted = errors.New("notifier: muted now")

// Notify delivers one incident event to its receivers now, without the
// grouping timers (Replay uses it: a dead letter's time came long ago).
// What is muted now is not sent; when that is every receiver, ErrMuted.
// Each receiver is sent it as if it never heard of the incident
// (webhook.Incident.FirstNotice): PagerDuty gets a trigger before an
// acknowledge.
// An integration that could not be reached in the retry budget fails the
// event (transient); one that refused it for good (4xx) makes a permanent
// error once the others are through.
func (p *Processor) Notify(ctx context.Context, in *event.Envelope) error {
	if in.Kind != event.KindIncident {
		return nil
	}
	r, err := p.route(in)
	if err != nil {
		return err
	}
	var failed []error
	var muted []string
	for _, route := range r.routes {
		n := &note{incidentID: r.st.IncidentID, route: route.Path, receiver: route.Receiver,
			eventID: in.ID, at: in.Time, resolved: r.inc.Status == webhook.StatusResolved, send: r}
		// What is muted now is not sent now; a resolve goes out (its
		// receivers may have heard the incident before it failed).
		p.mu.Lock()
		why := p.mutedNow(n, p.now(), true, false)
		p.mu.Unlock()
		if why != "" {
			muted = append(muted, route.Receiver+": "+why)
			continue
		}
		// Sent as a first notice: what reached this receiver before is
		// unknown here (a dead letter is one whose delivery failed), and
		// PagerDuty ignores an acknowledge of an alert it never had, while
		// a trigger of one it has open only joins it (dedup_key).
		_, _, err := p.send(ctx, n, 0)
		failed = append(failed, err)
	}
	if len(muted) > 0 && len(muted) == len(r.routes) {
		return fmt.Errorf("%w: %s", ErrMuted, strings.Join(muted, "; "))
	}
	return joinResults(failed)
}

// Write takes one incident event (the stage.Sink side): its notifications
// are scheduled by each route's grouping timers (Timing), and the event is
// settled once they went out, so that what waits is held by JetStream, not
// only in memory: a notifier that stops or crashes before a notification
// went out gets its event again. What is due at once is handed to its
// receiver's lane before Write returns.
func (p *Processor) Write(ctx context.Context, in *event.Envelope, done func(error)) {
	if in.Kind != event.KindIncident {
		done(nil)
		return
	}
	r, err := p.routedOf(in)
	if err != nil {
		done(err)
		return
	}
	id, st, resolved := r.st.IncidentID, stamp{r.st.Revision, in.Time}, r.inc.Status == webhook.StatusResolved
	p.mu.Lock()
	defer p.mu.Unlock()
	// Tracked in the same hold of p.mu as the offers below: the saver
	// takes a resolve's tombstone with what they learnt (unheard).
	p.track(r)
	r.routes = p.withRoutesBefore(id, r.routes)
	if len(r.routes) == 0 {
		done(nil)
		return
	}
	if resolved && p.store != nil {
		done = p.afterTombstone(id, st, done)
	}
	settle := settleAll(done, len(r.routes))
	// An incident opened from an anomaly that waited is timed at the
	// anomaly, minutes before the signal that opened it, which its state
	// holds: the clock takes that, or a notifier that saw nothing else
	// runs as far behind (every timer late) until another event comes.
	now := p.clock.observe(laterOf(in.Time, r.st.LastEvent), p.now())
	var unheard []string
	for _, route := range r.routes {
		if p.endedFor(id, st, route.Path) || p.supersededFor(id, st, route) {
			settle(nil) // its resolve, or a newer state, stands for it: nothing to send
			continue
		}
		n := &note{incidentID: id, route: route.Path, receiver: route.Receiver, eventID: in.ID, at: in.Time,
			resolved: resolved, send: r, made: in.ObservedTime, bytes: len(in.Body), shared: len(r.routes) > 1,
			timing: Timing{Wait: route.GroupWait, Interval: route.GroupInterval, Repeat: route.RepeatInterval}}
		// Timers batch what changes on its own (members joining); what a
		// person did or must see (acknowledged, resolved, reopened) goes
		// out at once.
		n.urgent = r.inc.Transition != webhook.Transition(event.IncidentOpened) && r.inc.Transition != webhook.Transition(event.IncidentUpdated)
		n.transition = string(r.inc.Transition)
		n.opening = r.inc.Transition == webhook.Transition(event.IncidentOpened)
		n.arrived = now
		known := p.schedule.has(id, route.Path)
		if p.schedule.offer(n, r.st.OpenedAt, settle) {
			unheard = append(unheard, route.Path)
		}
		if !known && !n.opening {
			p.recallHeard(n)
		}
	}
	if len(unheard) > 0 {
		p.unheard(id, st, unheard)
	}
	p.handDue(now)
}

// withRoutesBefore adds to routes, those incident id's labels match now,
// the routes the schedule knows it at: an incident's labels change while
// it is open (its root cause moves to another team's service, a worse
// member raises its severity), and a receiver it was routed to before
// must still hear of its acknowledgement and resolve, or the page it got
// (a PagerDuty alert, a ticket) stays open for ever, and its slot must not
// repeat the old state after the incident resolved. Alertmanager never
// meets this: an alert's labels are its identity. p.mu is held.
func (p *Processor) withRoutesBefore(id string, routes []*amconfig.Route) []*amconfig.Route {
	if p.routes == nil {
		return routes
	}
	matched := len(routes)
	p.routes.Route.Walk(func(route *amconfig.Route) {
		if !p.schedule.has(id, route.Path) || slices.Contains(routes[:matched], route) {
			return
		}
		if _, ok := p.routes.Receiver(route.Receiver); ok {
			routes = append(routes, route)
		}
	})
	return routes
}

// Tick hands what came due to the receivers' lanes (the stage.Ticker
// side): the runner calls it every second with the wall clock, which moves
// the notifier's event time on while no event arrives.
func (p *Processor) Tick(_ context.Context, now time.Time, _ stage.Emitter) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.store == nil {
		// No saver to do it (saveOpen), at most every saveEvery.
		if wall := p.now(); wall.Sub(p.quietSwept) >= saveEvery {
			p.quietSwept = wall
			p.forgetQuietOpen(wall)
		}
	}
	p.handDue(p.clock.at(now))
	return nil
}

// Flush, at the drain, lets the sends in flight finish (until ctx ends)
// so that their events are settled with their result, then settles every
// event still waiting for its notification, queued ones included, with
// ErrStopping: JetStream delivers them again, to this notifier when it is
// back or to another one.
func (p *Processor) Flush(ctx context.Context) error {
	p.mu.Lock()
	p.dropQueued()
	p.mu.Unlock()
	err := p.waitSent(ctx)
	p.mu.Lock()
	defer p.mu.Unlock()
	// What was queued meanwhile (a Write of the source's drain, a note
	// handed once a send came back) goes back with the rest, unsent.
	p.dropQueued()
	if err != nil {
		// A send still going ends now; its event goes back with the rest.
		err = fmt.Errorf("notifier: %d notifications still being sent at the end of the drain: %w", p.inFlight, err)
		p.endSends()
	}
	if n := p.schedule.held(); n > 0 {
		p.log.Info().Int("events", n).Msg("stopping: incident events waiting for their notification go back to the stream")
	}
	p.schedule.release(ErrStopping)
	p.releaseTombstoneWaits("", stamp{}, ErrStopping)
	return err
}

// leaseLost fences the processor off when its lease is lost (Hold learns
// it at the holder's deadline at the latest) and ends the sends in flight:
// a request begun inside the term, or a retry of it after a backoff, would
// otherwise go on until the drain's end, up to a send's whole retry budget,
// and land after the next holder sent a newer state of the incident (a
// trigger after its resolve, which PagerDuty opens again). Their events go
// back to the stream with the rest at the stop the lost lease brings.
func (p *Processor) leaseLost() {
	p.fenced.Store(true)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.endSends()
}

// endSends ends the sends in flight (their requests and retries) and
// gives the next ones a context of their own. p.mu is held.
func (p *Processor) endSends() {
	p.cancelSend()
	p.sendCtx, p.cancelSend = context.WithCancel(context.Background())
}

// dropQueued empties every lane's queue (under mu): those notes are not
// sent; the schedule still holds their inputs.
func (p *Processor) dropQueued() {
	for _, l := range p.lanes {
		p.finished(len(l.queue))
		clear(l.queue)
		l.queue = l.queue[:0]
	}
}

// waitSent waits until every note handed to a lane has its result, or ctx
// ends.
func (p *Processor) waitSent(ctx context.Context) error {
	p.mu.Lock()
	if p.inFlight == 0 {
		p.mu.Unlock()
		return nil
	}
	if p.idle == nil {
		p.idle = make(chan struct{})
	}
	idle := p.idle
	p.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// finished counts n handed notes as done (under mu).
func (p *Processor) finished(n int) {
	p.inFlight -= n
	if p.inFlight == 0 && p.idle != nil {
		close(p.idle)
		p.idle = nil
	}
}

// ErrStopping settles the events a stopping notifier still held: given
// back, not judged bad (errs.GivenBack), so one on its last delivery is
// dead-lettered saying so.
var ErrStopping = errs.GivenBack(errors.New("notifier: stopping before the notification was due"))

// handDue hands every notification due at now (event time) to its
// receiver's lane, under mu: taking them from the schedule and queueing
// them at once keeps each lane in the order they came due.
func (p *Processor) handDue(now time.Time) {
	for _, n := range p.schedule.due(now) {
		p.hand(n, now)
	}
}

// hand queues n on its receiver's lane (under mu), starting the lane's
// goroutine when it is not running.
func (p *Processor) hand(n *note, now time.Time) {
	l := p.lanes[n.receiver]
	if l == nil {
		l = &lane{}
		p.lanes[n.receiver] = l
	}
	l.queue = append(l.queue, handoff{n: n, now: now})
	// Its state is marked for writing now, not when its turn comes: the
	// pass the first note of a burst waits for (writeState) writes the
	// states of those queued behind it too, in one round trip (putAll).
	p.stateUnwritten(n)
	p.inFlight++
	if !l.running {
		l.running = true
		go p.deliverLane(l)
	}
}

// deliverLane sends the lane's notes one at a time until its queue is
// empty, each settling its events with the result: a transient failure
// with the error (JetStream delivers them again, with backoff), a refusal
// permanently (they are dead-lettered).
func (p *Processor) deliverLane(l *lane) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for len(l.queue) > 0 {
		h := l.queue[0]
		l.queue[0] = handoff{}
		l.queue = l.queue[1:]
		if !p.schedule.handsOut(h.n) {
			// Released by a drain that ended first: its inputs went back
			// (with ErrStopping) and another notifier may send it.
			p.finished(1)
			continue
		}
		var err error
		heard := p.schedule.mayHaveHeard(h.n)
		if why := p.mutedNow(h.n, p.clock.at(p.now()), heard, true); why != "" {
			// Muted when due: it stands as the state last sent, so an open
			// incident repeats (asked again then) and a resolved one
			// stops, but no receiver heard it.
			h.n.muted = true
			p.log.Info().Str("incident_id", h.n.incidentID).Str("route", h.n.route).Str("why", why).Msg("incident muted: not delivered")
		} else {
			ctx, heardBy := p.sendCtx, p.schedule.heardBy(h.n)
			unwritten := p.stateUnwritten(h.n)
			p.mu.Unlock()
			if unwritten {
				p.writeState(ctx)
			}
			var reached uint64
			var breakerUntil time.Time
			reached, breakerUntil, err = p.send(ctx, h.n, heardBy)
			p.mu.Lock()
			h.n.reached = reached
			// A repeat nobody heard the first send of (muted when due: the
			// first page, once the mute ended) is held too: skipped, the
			// page would wait for repeat_interval.
			if err != nil && !errs.IsPermanent(err) && (h.n.repeat == 0 || !heard) {
				// The receiver could not be reached: the notification is
				// held for another try (its events stay unacked, told in
				// progress), until max_hold.
				var held bool
				if held, err = p.hold(h.n, err, breakerUntil); held {
					p.finished(1)
					continue
				}
			}
		}
		if p.schedule.sent(h.n, h.now, err) {
			p.recordSent(h.n, h.now)
		}
		// A newer state of the incident, offered while h.n was out, waited
		// for it: it goes now if its time came, behind this lane's queue.
		now := p.clock.at(p.now())
		if next := p.schedule.dueAfter(h.n, now); next != nil {
			p.hand(next, now)
		}
		p.finished(1)
	}
	l.running = false
}

// ErrHeldTooLong is why a notification's incident event is dead-lettered
// after its receiver could not be reached for notifier.delivery.max_hold
// (or before the stream would drop the event).
var ErrHeldTooLong = errors.New("notifier: receiver not reached")

// hold decides about n, whose try just failed with err (transient, not a
// repeat): it is held for another try (true), after a backoff and not
// before the breaker in front of the receiver lets a request through
// (breakerUntil), or, failing for max_hold already, or so long that the
// stream would soon drop its oldest event, or while what is held for
// receivers that cannot be reached passes half of max_ack_pending or
// max_held_bytes, given up on: the permanent error its inputs are
// dead-lettered with. p.mu is held.
func (p *Processor) hold(n *note, err error, breakerUntil time.Time) (bool, error) {
	wall := p.now()
	since, tries, oldest, ok := p.schedule.failed(n, wall)
	if !ok {
		return false, err // released at a drain meanwhile: sent ignores it
	}
	deadline := since.Add(p.maxHold)
	why := fmt.Sprintf("failing for notifier.delivery.max_hold (%v, since %s, %d tries)", p.maxHold, since.UTC().Format(time.RFC3339), tries)
	if p.maxAge > 0 && !oldest.IsZero() {
		// The stream drops an event max_age after it was stored: give it
		// up (store its dead letter) well before.
		if limit := oldest.Add(p.maxAge - p.maxAge/10); limit.Before(deadline) {
			deadline = limit
			why = fmt.Sprintf("failing since %s (%d tries), and its incident event, made %s, would soon leave the stream (max_age %v)",
				since.UTC().Format(time.RFC3339), tries, oldest.UTC().Format(time.RFC3339), p.maxAge)
		}
	}
	if sp := p.span; sp.full && !oldest.IsZero() && sp.last.After(sp.first) {
		// Full, the stream discards its oldest as new events come: about
		// oldest - first after it was seen, at the pace it went, comes
		// the event's turn. Give it up while a tenth of the stream is
		// still older.
		if limit := sp.at.Add(oldest.Sub(sp.first) - sp.last.Sub(sp.first)/10); limit.Before(deadline) {
			deadline = limit
			why = fmt.Sprintf("failing since %s (%d tries), and its incident event, made %s, would soon leave the stream, which is at its max_bytes and discards its oldest (it held what came since %s; streams.max_bytes)",
				since.UTC().Format(time.RFC3339), tries, oldest.UTC().Format(time.RFC3339), sp.first.UTC().Format(time.RFC3339))
		}
	}
	// What a receiver that is down holds stays unacked, and the consumer
	// fetches nothing past max_ack_pending: held without a bound, a long
	// outage of one receiver would stop every receiver's notifications.
	// Half of it is left to the others.
	if held := p.schedule.failingInputs; held > p.cfg.Consumer.MaxAckPending/2 && wall.Before(deadline) {
		deadline = wall
		why = fmt.Sprintf("failing since %s (%d tries), and the incident events held for receivers that cannot be reached (%d) pass half of notifier.consumer.max_ack_pending (%d), past which every receiver's notifications would wait",
			since.UTC().Format(time.RFC3339), tries, held, p.cfg.Consumer.MaxAckPending)
	}
	// They stay in memory too, and a storm's incident event comes near
	// 512 KiB: bounded in bytes as well, a long outage during a storm
	// cannot take the notifier's memory.
	if held := p.schedule.failingBytes; held > p.cfg.Delivery.MaxHeldBytes && wall.Before(deadline) {
		deadline = wall
		why = fmt.Sprintf("failing since %s (%d tries), and the incident events held for receivers that cannot be reached (%d bytes) pass notifier.delivery.max_held_bytes (%d)",
			since.UTC().Format(time.RFC3339), tries, held, p.cfg.Delivery.MaxHeldBytes)
	}
	log := p.log.With().Str("incident_id", n.incidentID).Str("receiver", n.receiver).Str("event_id", n.eventID).Logger()
	if !wall.Before(deadline) {
		if n.repeat > 0 {
			// The first page after a mute, whose events were acked when
			// it was muted: nothing to dead-letter; the next repeat
			// tries again.
			err = errs.Permanent(fmt.Errorf("%w: %s, %s: %w", ErrHeldTooLong, n.receiver, why, err))
			log.Error().Err(err).Msg("receiver not reached: the page held since its mute ended is given up until the next repeat_interval")
			return false, err
		}
		err = errs.Permanent(fmt.Errorf("%w: %s, %s; once it is back, `aiops notify replay` delivers it: %w", ErrHeldTooLong, n.receiver, why, err))
		log.Error().Err(err).Msg("receiver not reached: incident event dead-lettered; run `aiops notify replay` once the receiver is back")
		return false, err
	}
	delay := p.retryDelay(tries)
	delay = max(delay, breakerUntil.Sub(wall)) // a try before would fail at once
	delay = min(delay, deadline.Sub(wall))     // the last try comes at the deadline
	p.schedule.retry(n, p.clock.at(wall).Add(delay))
	ev := log.Debug()
	if tries == 1 {
		ev = log.Warn()
	}
	ev.Err(err).Dur("next_try_in", delay).Time("held_until", deadline).Msg("receiver not reached: notification held and tried again")
	return true, nil
}

// retryDelay is the wait before the next try of a held notification
// after tries failed ones: retry.base_delay doubled for each, at most
// retry.max_delay, its upper half drawn at random so that notifications
// held together do not all come back at once.
func (p *Processor) retryDelay(tries int) time.Duration {
	r := p.cfg.Delivery.Retry
	d := r.MaxDelay
	if tries < 32 {
		if b := r.BaseDelay << tries; b > 0 && b < d {
			d = b
		}
	}
	return d/2 + rand.N(d/2+1)
}

// send delivers one notification to the integrations of its receiver;
// the error is transient when one failed, permanent (errs) when the only
// failures were refusals; reached tells which integrations took it,
// breakerUntil when the breakers in front of those that failed let the
// first of them be tried again (zero: one may be tried now).
// heardBy are the integrations a notification of the incident certainly
// reached; every other one is sent it as a first notice
// (webhook.Incident.FirstNotice: PagerDuty triggers before acknowledging).
func (p *Processor) send(ctx context.Context, n *note, heardBy uint64) (reached uint64, breakerUntil time.Time, err error) {
	if p.fencedOff() {
		// The lease is no longer this instance's by its own clock (paused
		// past its deadline): the next holder may have sent a newer state
		// of the incident already, and this one would go out after it (a
		// PagerDuty trigger after its resolve). Held, it goes back to the
		// stream at the stop the lost lease brings.
		return 0, time.Time{}, fmt.Errorf("notifier: not sent: %w", stage.ErrFenced)
	}
	r := n.send.(*routed)
	inc := r.inc
	if n.shownAs != "" {
		inc.Transition = webhook.Transition(n.shownAs)
	}
	ctx = context.WithValue(ctx, sendingKey{}, sending{incidentID: r.st.IncidentID, service: r.st.Service, eventID: n.eventID})
	eventID := n.eventID
	if n.repeat > 0 {
		// A repeat is a new notification: a new idempotency key.
		eventID = fmt.Sprintf("%s/repeat-%d", n.eventID, n.repeat)
	}
	failed, refused, reached, breakerUntil := p.deliver(ctx, n.receiver, eventID, inc, heardBy, n.shared)
	for _, err := range refused {
		p.log.Error().Err(err).Str("receiver", n.receiver).Str("incident_id", inc.ID).
			Msg("receiver refused the incident: not retried (dead letter); fix the receiver or its configuration, then run `aiops notify replay`")
	}
	if len(failed) > 0 {
		return reached, breakerUntil, errors.Join(failed...)
	}
	if len(refused) > 0 {
		return reached, time.Time{}, errs.Permanent(errors.Join(refused...))
	}
	return reached, time.Time{}, nil
}

// joinResults is the result of several notifications of one event:
// transient when any failure is, permanent when all are.
func joinResults(results []error) error {
	var all []error
	permanent := true
	for _, err := range results {
		if err != nil {
			all = append(all, err)
			permanent = permanent && errs.IsPermanent(err)
		}
	}
	if len(all) == 0 {
		return nil
	}
	if permanent {
		return errs.Permanent(errors.Join(all...))
	}
	return errors.Join(all...)
}

// settleAll calls done once n results came, with their joined result.
func settleAll(done func(error), n int) func(error) {
	var mu sync.Mutex
	var results []error
	return func(err error) {
		mu.Lock()
		results = append(results, err)
		last := len(results) == n
		mu.Unlock()
		if last {
			done(joinResults(results))
		}
	}
}

// deliver sends inc to every integration of the receiver named name, each
// under the idempotency key of this incident event (eventID: its id is
// unique per transition) at that integration: the same on every retry and
// redelivery. An integration that answered 2xx for the key is not sent it
// again, here or, when another integration failed or the event waits for
// other routes too (shared: a stop gives it back before they went out), by
// a notifier after this one (keepSent); nor, whatever happens, is one
// whose receiver cannot tell it again (integration.keptAtOnce). It
// returns the transient failures and the permanent ones apart,
// and when the first integration that failed can be tried again: the end
// of its breaker's cool-down, zero when one of them has no breaker open.
func (p *Processor) deliver(ctx context.Context, name, eventID string, inc webhook.Incident, heardBy uint64, shared bool) (failed, refused []error, reached uint64, breakerUntil time.Time) {
	anyClosed := false
	var taken, takenBy []string // keys taken now, and by which integrations
	defer func() {
		if len(failed)+len(refused) > 0 || shared {
			p.keepSent(ctx, name, taken, takenBy)
		}
	}()
	for i, ig := range p.integrations[name] {
		if inc.Status == webhook.StatusResolved && !ig.sendResolved {
			continue
		}
		key := event.DerivedID(inc.Time(), eventID, name, fmt.Sprint(i))
		if _, done := p.delivered.Get(key); done {
			reached |= integrationBit(i)
			continue
		}
		if i > 0 && p.fencedOff() {
			// The lease ran out while an integration before this one was
			// tried (send checked it before the first): the rest is held.
			failed = append(failed, fmt.Errorf("receiver %s: %s: not sent: %w", name, ig.path, stage.ErrFenced))
			anyClosed = true
			continue
		}
		inc.DeliveryKey = key // the payload's key is the webhook-id
		inc.FirstNotice = heardBy&integrationBit(i) == 0
		ig.mu.Lock()
		began := time.Now()
		err := ig.send(ctx, key, asSeenBy(inc))
		ig.mu.Unlock()
		took := time.Since(began)
		switch {
		case err == nil:
			p.m.observe(name, ig, outcomeSent, took)
			p.delivered.Add(key, struct{}{})
			if ig.keptAtOnce {
				p.keepSent(ctx, name, []string{key}, []string{ig.path})
			} else {
				taken, takenBy = append(taken, key), append(takenBy, ig.path)
			}
			reached |= integrationBit(i)
		case errs.IsPermanent(err):
			p.m.observe(name, ig, outcomeRefused, took)
			refused = append(refused, fmt.Errorf("%s: %w", ig.path, err))
		default:
			p.m.observe(name, ig, outcomeFailed, took)
			failed = append(failed, fmt.Errorf("receiver %s: %s: %w", name, ig.path, err))
			switch until := p.client.BreakerOpenUntil(name, ig.path); {
			case until.IsZero():
				anyClosed = true
			case breakerUntil.IsZero() || until.Before(breakerUntil):
				breakerUntil = until
			}
		}
	}
	if anyClosed {
		breakerUntil = time.Time{}
	}
	return failed, refused, reached, breakerUntil
}

// asSeenBy is inc as its integration is to see it: an update that is a
// first notice (FirstNotice: no notification of the incident reached the
// integration, as far as the notifier knows) reads as the incident's
// opening, carrying its latest state. The first page is the latest state
// at group_wait, and after a restart whichever state came first (the
// opening, redelivered after ack_wait, comes behind what was published
// since): sent as updated, a receiver acting on incident.opened never
// opened anything. An acknowledgement stays one (PagerDuty gets a trigger
// before it: webhook.PagerDutyEvents), and so do a reopening, which a
// ticket a notifier before the restart closed must see as such, and an
// update of a resolved incident (a comment), which opens nothing.
func asSeenBy(inc webhook.Incident) webhook.Incident {
	if inc.FirstNotice && inc.Transition == webhook.TransitionUpdated && inc.Status != webhook.StatusResolved {
		inc.Transition = webhook.TransitionOpened
	}
	return inc
}

// SendTest delivers inc to the receiver named name through the path every
// incident takes (payloads, templates, signing, retries, breaker, rate
// limit), under a fresh idempotency key; nil once every integration of the
// receiver answered 2xx.
func (p *Processor) SendTest(ctx context.Context, name string, inc webhook.Incident) error {
	if p.routes == nil {
		return fmt.Errorf("%w: notifier.routes is not set", ErrInvalidConfig)
	}
	if _, ok := p.routes.Receiver(name); !ok {
		return fmt.Errorf("%w: no receiver %q", ErrInvalidConfig, name)
	}
	if len(p.integrations[name]) == 0 {
		return fmt.Errorf("%w: receiver %q has no integrations", ErrInvalidConfig, name)
	}
	eventID := event.DerivedID(time.Now(), "send-test", name)
	ctx = context.WithValue(ctx, sendingKey{}, sending{incidentID: inc.ID, service: inc.Service, eventID: eventID})
	heardBy := ^uint64(0) // as inc says: a first notice or none
	if inc.FirstNotice {
		heardBy = 0
	}
	failed, refused, _, _ := p.deliver(ctx, name, eventID, inc, heardBy, false)
	return errors.Join(append(refused, failed...)...)
}

// authHeader is the Authorization header http_config asks for: an
// authorization (Bearer by default) or basic_auth, credentials inline or
// from a file. TLS and proxy settings are transportFor's.
func authHeader(hc *amconfig.HTTPConfig) (http.Header, error) {
	if hc == nil {
		return nil, nil
	}
	secret := func(inline, file string) (string, error) {
		if file == "" {
			return inline, nil
		}
		// Trimmed as Alertmanager trims it (prometheus/common): a file
		// written by an editor or `echo` ends in blank lines a header
		// must not carry.
		s, err := config.ReadSecretFile(file)
		if s = strings.TrimSpace(s); err == nil && s == "" {
			err = fmt.Errorf("secret file %s holds only blanks", file)
		}
		return s, err
	}
	switch {
	case hc.Authorization != nil:
		cred, err := secret(hc.Authorization.Credentials, hc.Authorization.CredentialsFile)
		if err != nil {
			return nil, err
		}
		typ := hc.Authorization.Type
		if typ == "" {
			typ = "Bearer"
		}
		return http.Header{"Authorization": {typ + " " + cred}}, nil
	case hc.BasicAuth != nil:
		pass, err := secret(hc.BasicAuth.Password, hc.BasicAuth.PasswordFile)
		if err != nil {
			return nil, err
		}
		req := http.Request{Header: http.Header{}}
		req.SetBasicAuth(hc.BasicAuth.Username, pass)
		return req.Header, nil
	}
	return nil, nil
}

// cutUserinfo takes the user name and password out of a receiver's URL
// (http://user:pass@host/): the client refuses a URL that holds them, as
// it would send them beside any Authorization header. A URL that does not
// parse is left to the client to refuse.
func cutUserinfo(raw string) (string, *neturl.Userinfo) {
	u, err := neturl.Parse(raw)
	if err != nil || u.User == nil {
		return raw, nil
	}
	user := u.User
	u.User = nil
	return u.String(), user
}

// trackSource records the incident as a possible source of inhibition,
// or forgets it once resolved (trackOpen). p.mu is held.
func (p *Processor) trackSource(id string, labels map[string]string, resolved bool) {
	rules := p.routes.InhibitRules
	if p.sources == nil {
		p.sources = make([]map[string]map[string]string, len(rules))
		for i := range p.sources {
			p.sources[i] = map[string]map[string]string{}
		}
	}
	for i, r := range rules {
		if !resolved && r.SourceMatchers.Matches(labels) {
			p.sources[i][id] = labels
		} else {
			delete(p.sources[i], id)
		}
	}
}

// inhibited reports whether another open incident inhibits the incident
// id of labels. p.mu is held.
func (p *Processor) inhibited(id string, labels map[string]string) bool {
	var others []map[string]string
	for i, r := range p.routes.InhibitRules {
		if !r.TargetMatchers.Matches(labels) || i >= len(p.sources) {
			continue
		}
		others = others[:0]
		for other, l := range p.sources[i] {
			if other != id {
				others = append(others, l)
			}
		}
		if r.Inhibits(labels, others) {
			return true
		}
	}
	return false
}

// labelsOf are the labels an incident is routed by, as Alertmanager routes
// an alert: the resource attributes and labels of its first member on its
// root-cause service (alertname, severity, cluster...,
// deployment.environment), then the incident's own: service, team,
// severity, incident_id, status.
func labelsOf(st *correlate.State) map[string]string {
	l := map[string]string{}
	for _, m := range st.Members {
		if m.Service == st.Service {
			// Where the signal ran (an OpenTelemetry resource:
			// deployment.environment, k8s.namespace.name), under its own
			// labels, as a Prometheus series' labels win over the target
			// labels it is scraped with.
			maps.Copy(l, m.Resource)
			maps.Copy(l, m.Labels)
			if l["alertname"] == "" {
				l["alertname"] = m.Name
			}
			break
		}
	}
	l["service"] = st.Service
	if st.Team != "" {
		l["team"] = st.Team
	}
	if st.Severity != "" {
		l["severity"] = string(st.Severity)
	}
	l["incident_id"] = st.IncidentID
	l["status"] = st.State
	return l
}

// incidentOf maps an incident event to the payloads' incident.
func incidentOf(e *event.Envelope, st *correlate.State) webhook.Incident {
	inc := webhook.Incident{
		ID: st.IncidentID, Status: webhook.Status(st.State), Transition: webhook.Transition(st.Status), At: e.Time,
		Title: st.Title, Service: st.Service, Team: st.Team, Owner: st.Owner, Assignee: st.Assignee,
		Severity: st.Severity, Runbook: st.Runbook, OpenedAt: st.OpenedAt, AcknowledgedAt: st.AcknowledgedAt,
		ResolvedAt: st.ResolvedAt, AcknowledgedBy: st.AcknowledgedBy, ResolvedBy: st.ResolvedBy, Services: st.Services, MemberCount: st.MemberCount, Labels: e.Labels, MergedInto: st.MergedInto,
	}
	for _, rc := range st.RootCauses {
		inc.RootCauses = append(inc.RootCauses, webhook.RootCause{Service: rc.Service, Score: rc.Score, Reasons: rc.Reasons})
	}
	for _, m := range st.Members {
		labels := m.Labels
		if len(labels) == 0 {
			labels = map[string]string{"alertname": m.Name, "service": m.Service}
		}
		inc.Members = append(inc.Members, webhook.Member{Fingerprint: m.Fingerprint, Kind: string(m.Kind), Service: m.Service,
			Name: m.Name, Summary: m.Summary, Severity: m.Severity, Firing: m.Firing, FirstSeen: m.FirstSeen, LastSeen: m.LastSeen,
			Labels: labels})
	}
	for _, c := range st.Comments {
		inc.Comments = append(inc.Comments, webhook.Comment{By: c.By, Text: c.Text, Time: c.Time})
	}
	for _, c := range st.Changes {
		inc.Changes = append(inc.Changes, webhook.Change{ID: c.EventID, Service: c.Service, Type: c.Type, Version: c.Version,
			Author: c.Author, Commit: c.Commit, URL: c.URL, Description: c.Description, Time: c.Time})
	}
	return inc
}

// integration is one entry of a receiver (a webhook_configs item, a
// pagerduty_configs item, ...), ready to send an incident.
type integration struct {
	// path is where the entry is in the file, for errors and logs; label
	// is it within its receiver (webhook_configs[0]), for metrics.
	path, label  string
	sendResolved bool
	// keptAtOnce: its receiver cannot tell a notification it took from
	// the same one sent again (a Slack incoming webhook has no
	// idempotency key), so what it took is kept in the state bucket
	// before the incident event is settled (keepSent), not only when a
	// sibling failed: a kill before the event's ack was stored sent it
	// again, and a person read it twice.
	keptAtOnce bool
	// send delivers inc under key; errors are permanent (errs) when trying
	// again cannot help.
	send func(ctx context.Context, key string, inc webhook.Incident) error
	// mu makes sends one at a time: the receiver's lane sends one after
	// the other, but Notify and SendTest may send beside it, and Jira's and
	// ServiceNow's set the header they read before sending.
	mu sync.Mutex
}

// buildIntegrations compiles every receiver's integrations: their
// templates are parsed and rendered once on sample incidents, so that a
// template that cannot work fails at start, naming its key.
func buildIntegrations(cfg *amconfig.Config, p *Processor) (map[string][]*integration, error) {
	out := map[string][]*integration{}
	var problems []error
	for _, r := range cfg.Receivers {
		igs, err := receiverIntegrations(r, p)
		if err != nil {
			problems = append(problems, err)
			continue
		}
		for _, ig := range igs {
			ig.label = strings.TrimPrefix(ig.path, r.Path+".")
		}
		out[r.Name] = igs
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, errors.Join(problems...))
	}
	return out, nil
}

// templates compiles the text templates of one integration entry.
type templates struct {
	path string
	errs []error
}

// text compiles one text key; nil when the key is empty.
func (t *templates) text(key, text string) *webhook.Template {
	return t.compile(key, text, webhook.TemplateText)
}

func (t *templates) compile(key, text string, format webhook.TemplateFormat) *webhook.Template {
	if text == "" {
		return nil
	}
	tt, err := webhook.ParseTemplate(t.path+"."+key, text, format)
	if err == nil {
		err = tt.Check()
	}
	if err != nil {
		if msg := err.Error(); strings.Contains(msg, "can't evaluate field") || strings.Contains(msg, "not defined") {
			// Most likely written for Alertmanager: say what to write.
			err = fmt.Errorf("%w: a text key is a Go template of the aiops incident ({{ .Title }}, {{ .Service }}, "+
				"{{ upper .Severity }}, {{ index .Labels \"alertname\" }}, {{ range .Members }}...: services/notifier/README.md), "+
				"not of Alertmanager's notification data (.Alerts, .CommonLabels, its template files and functions)", err)
		}
		t.errs = append(t.errs, err)
		return nil
	}
	return tt
}

// render renders a compiled text key, or gives def when the key was empty.
func render(t *webhook.Template, inc webhook.Incident, def string) (string, error) {
	if t == nil {
		return def, nil
	}
	b, err := t.Render(inc)
	return strings.TrimSpace(string(b)), err
}

// renderAll renders each template into its string, stopping at the first
// error.
func renderAll(inc webhook.Incident, dst map[*string]*webhook.Template) error {
	for p, t := range dst {
		v, err := render(t, inc, *p)
		if err != nil {
			return err
		}
		*p = v
	}
	return nil
}

// readFile reads a secret or URL file when sending: a file that is not
// there yet is an operator's fix away, so the error is transient (the
// event comes again).
func readFile(key, inline, file string) (string, error) {
	if file == "" {
		return inline, nil
	}
	data, err := config.ReadSecretFile(file)
	if err != nil {
		return "", fmt.Errorf("%s: %w", key, err)
	}
	return strings.TrimSpace(data), nil
}

func receiverIntegrations(r *amconfig.Receiver, p *Processor) ([]*integration, error) {
	var out []*integration
	var errs []error
	// post sends one body built by body (listing fewer members when the
	// incident's is over max_body_bytes: webhook.Fit), to the URL (or URL
	// file), with http_config's authentication and, with a secret file,
	// signed.
	// transport is the one http_config asks for, built at start; a
	// problem is a configuration error naming the entry.
	transport := func(path string, hc *amconfig.HTTPConfig) http.RoundTripper {
		rt, err := transportFor(hc)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", path, err))
		}
		if hc != nil && hc.TLSConfig.InsecureSkipVerify {
			// Taken, as Alertmanager takes it; said, since a line
			// copied from a test setup would otherwise go unseen.
			p.log.Warn().Str("key", path+".http_config.tls_config.insecure_skip_verify").
				Msg("notifier.routes: the receiver's certificate is not checked: whoever stands between reads and changes what is sent, its credentials included; give its CA with tls_config.ca_file instead")
		}
		return rt
	}
	// postSteps is post for a notification of several requests, sent one
	// after the other (PagerDuty's trigger before an acknowledge): each
	// under key plus its step's suffix, the last (the notification's
	// own, suffix "") under key.
	type step struct {
		suffix string
		body   []byte
	}
	postSteps := func(path, url, urlFile string, hc *amconfig.HTTPConfig, timeout time.Duration, secretFile, contentType string, steps func(webhook.Incident) ([]step, error)) func(context.Context, string, webhook.Incident) error {
		rt := transport(path, hc)
		if timeout > MaxSendTimeout {
			errs = append(errs, fmt.Errorf("%s: timeout %v: at most %v (a stop waits %v for the sends in flight, then cancels them)", path, timeout, MaxSendTimeout, drainTimeout))
		}
		return func(ctx context.Context, key string, inc webhook.Incident) error {
			u, err := readFile("url_file", url, urlFile)
			if err != nil {
				return err
			}
			bodies, err := steps(inc)
			if err != nil {
				return err
			}
			u, user := cutUserinfo(u)
			req := webhook.Request{Receiver: r.Name, Integration: path, URL: u, ContentType: contentType, Transport: rt, Redirects: redirectsFor(hc), Timeout: timeout}
			if secretFile != "" {
				secrets, err := webhook.ReadSecretsFile(secretFile)
				if err != nil {
					return fmt.Errorf("secret_file: %w", err)
				}
				req.Secrets = secrets
			}
			if req.Header, err = authHeader(hc); err != nil {
				return fmt.Errorf("http_config: %w", err)
			}
			if user != nil && req.Header.Get("Authorization") == "" {
				// As Go's client, under Alertmanager, sends a URL's user:
				// basic auth, unless http_config authenticates.
				pass, _ := user.Password()
				hreq := http.Request{Header: http.Header{}}
				hreq.SetBasicAuth(user.Username(), pass)
				req.Header = hreq.Header
			}
			for _, st := range bodies {
				req.Body, req.IdempotencyKey = st.body, key+st.suffix
				if _, err := p.client.Deliver(ctx, req); err != nil {
					return err
				}
			}
			return nil
		}
	}
	post := func(path, url, urlFile string, hc *amconfig.HTTPConfig, timeout time.Duration, secretFile, contentType string, body func(webhook.Incident) ([]byte, error)) func(context.Context, string, webhook.Incident) error {
		return postSteps(path, url, urlFile, hc, timeout, secretFile, contentType, func(inc webhook.Incident) ([]step, error) {
			b, err := webhook.Fit(inc, p.client.Config().MaxBodyBytes, body)
			return []step{{body: b}}, err
		})
	}

	for _, wc := range r.WebhookConfigs {
		out = append(out, &integration{path: wc.Path, sendResolved: wc.SendResolved,
			send: post(wc.Path, wc.URL, wc.URLFile, wc.HTTPConfig, wc.Timeout, "", "", func(inc webhook.Incident) ([]byte, error) {
				return webhook.Alertmanager(inc, webhook.AlertmanagerOptions{Receiver: r.Name, ExternalURL: p.cfg.ExternalURL,
					MaxAlerts: int(min(wc.MaxAlerts, math.MaxInt32))})
			})})
	}
	for _, wc := range r.AiopsWebhookConfigs {
		if wc.MaxAlerts != 0 {
			errs = append(errs, fmt.Errorf("%s: max_alerts: only webhook_configs list alerts; the aiops payload carries the incident's members as they are", wc.Path))
		}
		out = append(out, &integration{path: wc.Path, sendResolved: wc.SendResolved,
			send: post(wc.Path, wc.URL, wc.URLFile, wc.HTTPConfig, wc.Timeout, wc.SecretFile, "", webhook.Generic)})
	}

	for _, c := range r.PagerDutyConfigs {
		t := &templates{path: c.Path}
		tpl := map[string]*webhook.Template{
			"description": t.text("description", c.Description), "source": t.text("source", c.Source),
			"severity": t.text("severity", c.Severity), "class": t.text("class", c.Class),
			"component": t.text("component", c.Component), "group": t.text("group", c.Group),
			"client": t.text("client", c.Client), "client_url": t.text("client_url", c.ClientURL),
		}
		details := map[string]*webhook.Template{}
		for k, v := range c.Details {
			details[k] = t.text("details."+k, v)
		}
		errs = append(errs, t.errs...)
		// events builds what PagerDuty is sent for inc under routingKey.
		events := func(inc webhook.Incident, routingKey string) ([]webhook.PagerDutyEvent, error) {
			pd := webhook.PagerDutyConfig{RoutingKey: routingKey, Details: map[string]string{}}
			for _, img := range c.Images {
				pd.Images = append(pd.Images, webhook.PagerDutyImage{Src: img.Src, Href: img.Href, Alt: img.Alt})
			}
			for _, l := range c.Links {
				pd.Links = append(pd.Links, webhook.PagerDutyLink(l))
			}
			err := renderAll(inc, map[*string]*webhook.Template{
				&pd.Summary: tpl["description"], &pd.Source: tpl["source"], &pd.Severity: tpl["severity"],
				&pd.Class: tpl["class"], &pd.Component: tpl["component"], &pd.Group: tpl["group"],
				&pd.Client: tpl["client"], &pd.ClientURL: tpl["client_url"],
			})
			for k, dt := range details {
				if err == nil {
					pd.Details[k], err = render(dt, inc, "")
				}
			}
			if err != nil {
				return nil, err
			}
			// An acknowledge PagerDuty cannot place (it never had the
			// incident) gets a trigger before it.
			return webhook.PagerDutyEvents(inc, pd)
		}
		if len(t.errs) == 0 {
			// What the keys render to must be sendable too (a severity
			// of critical, error, warning or info; an absolute
			// client_url): a literal that is not refuses every trigger.
			if _, err := events(webhook.SampleIncident(), "sample-routing-key"); err != nil {
				errs = append(errs, fmt.Errorf("%s: rendering the sample incident: %w", c.Path, err))
			}
		}
		out = append(out, &integration{path: c.Path, sendResolved: c.SendResolved,
			send: postSteps(c.Path, c.URL, "", c.HTTPConfig, 0, "", "", func(inc webhook.Incident) ([]step, error) {
				key, err := readFile("routing_key_file", c.RoutingKey, c.RoutingKeyFile)
				if err != nil {
					return nil, err
				}
				evs, err := events(inc, key)
				steps := make([]step, len(evs))
				for i, e := range evs {
					if i < len(evs)-1 {
						steps[i].suffix = "-" + e.Action
					}
					steps[i].body = e.Body
				}
				return steps, err
			})})
	}

	for _, c := range r.SlackConfigs {
		t := &templates{path: c.Path}
		title, text := t.text("title", c.Title), t.text("text", c.Text)
		errs = append(errs, t.errs...)
		out = append(out, &integration{path: c.Path, sendResolved: c.SendResolved, keptAtOnce: true,
			send: post(c.Path, c.APIURL, c.APIURLFile, c.HTTPConfig, 0, "", "", func(inc webhook.Incident) ([]byte, error) {
				opts := webhook.SlackOptions{Channel: c.Channel, Username: c.Username, IconEmoji: c.IconEmoji, IconURL: c.IconURL, TitleLink: c.TitleLink}
				if err := renderAll(inc, map[*string]*webhook.Template{&opts.Title: title, &opts.Text: text}); err != nil {
					return nil, err
				}
				return webhook.Slack(inc, opts)
			})})
	}

	for _, c := range r.JiraConfigs {
		t := &templates{path: c.Path}
		tpl := map[string]*webhook.Template{
			"project": t.text("project", c.Project), "issue_type": t.text("issue_type", c.IssueType),
			"summary": t.text("summary", c.Summary), "description": t.text("description", c.Description),
			"priority": t.text("priority", c.Priority),
		}
		labels := make([]*webhook.Template, len(c.Labels))
		for i, l := range c.Labels {
			labels[i] = t.text(fmt.Sprintf("labels[%d]", i), l)
		}
		errs = append(errs, t.errs...)
		jira := &webhook.Jira{Receiver: r.Name, Integration: c.Path, APIURL: c.APIURL, ResolveTransition: c.ResolveTransition, ReopenTransition: c.ReopenTransition,
			Transport: transport(c.Path, c.HTTPConfig), Redirects: redirectsFor(c.HTTPConfig)}
		p.jiras[c.Path] = jira
		out = append(out, &integration{path: c.Path, sendResolved: c.SendResolved,
			send: func(ctx context.Context, key string, inc webhook.Incident) error {
				issue := webhook.JiraIssue{Summary: inc.Title, Description: jira.DescriptionText(inc)}
				err := renderAll(inc, map[*string]*webhook.Template{
					&issue.Project: tpl["project"], &issue.IssueType: tpl["issue_type"], &issue.Summary: tpl["summary"],
					&issue.Description: tpl["description"], &issue.Priority: tpl["priority"],
				})
				for _, l := range labels {
					var v string
					if err == nil {
						v, err = render(l, inc, "")
					}
					// Jira labels hold no spaces.
					if v = strings.ReplaceAll(v, " ", "_"); v != "" {
						issue.Labels = append(issue.Labels, v)
					}
				}
				if err != nil {
					return err
				}
				h, err := authHeader(c.HTTPConfig)
				if err != nil {
					return fmt.Errorf("http_config: %w", err)
				}
				jira.Header = h
				return jira.Notify(ctx, p.client, key, inc, issue)
			}})
	}

	for _, c := range r.ServiceNowConfigs {
		t := &templates{path: c.Path}
		short, desc, notes := t.text("short_description", c.ShortDescription), t.text("description", c.Description), t.text("close_notes", c.CloseNotes)
		errs = append(errs, t.errs...)
		states := map[webhook.Status]string{}
		for k, v := range c.States {
			states[webhook.Status(k)] = v
		}
		sn := &webhook.ServiceNow{Receiver: r.Name, Integration: c.Path, APIURL: c.APIURL, Table: c.Table, States: states, Transport: transport(c.Path, c.HTTPConfig),
			Redirects: redirectsFor(c.HTTPConfig)}
		out = append(out, &integration{path: c.Path, sendResolved: c.SendResolved,
			send: func(ctx context.Context, key string, inc webhook.Incident) error {
				closeCode := c.CloseCode
				if closeCode == "" {
					closeCode = "Solved (Permanently)"
				}
				closeNotes := fmt.Sprintf("Resolved in aiops at %s.", inc.Time().UTC().Format("2006-01-02 15:04:05 UTC"))
				if inc.MergedInto != "" {
					closeNotes = fmt.Sprintf("Merged in aiops into incident %s at %s: its failure goes on there.", inc.MergedInto, inc.Time().UTC().Format("2006-01-02 15:04:05 UTC"))
				}
				rec := webhook.ServiceNowRecord{ShortDescription: inc.Title, Description: webhook.DescriptionText(inc),
					AssignmentGroup: c.AssignmentGroup, CallerID: c.CallerID, Category: c.Category, CloseCode: closeCode, CloseNotes: closeNotes}
				if err := renderAll(inc, map[*string]*webhook.Template{&rec.ShortDescription: short, &rec.Description: desc, &rec.CloseNotes: notes}); err != nil {
					return err
				}
				h, err := authHeader(c.HTTPConfig)
				if err != nil {
					return fmt.Errorf("http_config: %w", err)
				}
				sn.Header = h
				return sn.Notify(ctx, p.client, key, inc, rec)
			}})
	}

	for _, c := range r.TemplateConfigs {
		if c.MaxAlerts != 0 {
			errs = append(errs, fmt.Errorf("%s: max_alerts: only webhook_configs list alerts; a template renders the members itself", c.Path))
		}
		t := &templates{path: c.Path}
		format := webhook.TemplateText
		if strings.Contains(strings.ToLower(c.ContentType), "json") {
			format = webhook.TemplateJSON
		}
		body := t.compile("template", c.Template, format)
		errs = append(errs, t.errs...)
		out = append(out, &integration{path: c.Path, sendResolved: c.SendResolved,
			send: post(c.Path, c.URL, c.URLFile, c.HTTPConfig, c.Timeout, c.SecretFile, c.ContentType, func(inc webhook.Incident) ([]byte, error) {
				return body.Render(inc)
			})})
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// laterOf is the later of a and b.
func laterOf(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
