package notifier

import (
	"cmp"
	"slices"
	"strings"
	"time"

	"github.com/aiops-dev/aiops/pkg/due"
	"github.com/aiops-dev/aiops/pkg/errs"
)

// Timing is a route's grouping timers, as Alertmanager's route has them.
// An incident is one aggregation group (the correlator already grouped its
// alerts), so per incident and route:
//   - Wait: the first notification goes out Wait after the incident opened
//     (in event time), carrying whatever it gathered meanwhile; an
//     incident that resolved within Wait is never notified at all;
//   - Interval: further changes go out at most every Interval, the latest
//     state only;
//   - Repeat: an open incident that did not change is notified again every
//     Repeat.
type Timing struct {
	Wait, Interval, Repeat time.Duration
}

// note is one notification to make: the incident in some state, to the
// receiver of one route.
type note struct {
	incidentID string
	route      string // the route's path in the file (its identity)
	receiver   string
	eventID    string    // the incident event it announces
	at         time.Time // that event's time (a repeat's too): offer orders states by it
	resolved   bool
	timing     Timing
	// send is everything the delivery needs; opaque here.
	send any
	// repeat counts the repeats of an unchanged state (0: not a repeat).
	repeat int
	// urgent goes out at once, whatever the timers (a transition a person
	// made or must see).
	urgent bool
	// transition is its incident event's; shownAs, when not empty, the
	// one it is sent as: that of an urgent state it replaced before the
	// state went out (offer).
	transition, shownAs string
	// opening announces the incident's opening (its first event).
	opening bool
	// arrived is the notifier's clock when its event came (zero: not
	// known): an opening that comes past its wait waits LateOpeningHold
	// from then.
	arrived time.Time
	// muted: held back by a silence, an inhibition or a time interval
	// when its time came. It stands as sent, but nobody heard it.
	muted bool
	// reached are the integrations of the receiver that took it (bit i:
	// its i-th, integrationBit).
	reached uint64
	// made is when its incident event was made (its observed time): the
	// stream drops the event max_age after about then.
	made time.Time
	// bytes is its incident event's size (its body): what holding the
	// event costs, counted in schedule.failingBytes.
	bytes int
	// shared: its incident event is routed to other routes too, and held
	// until their notifications went out as well, so a stop gives it back
	// to the stream after this one reached its receiver (keepSent).
	shared bool
}

// input is an incident event a slot holds: settled with done once a
// notification standing for it went out (or no longer needs to).
type input struct {
	done  func(error)
	bytes int
}

// slot is what the schedule knows of one incident at one route.
type slot struct {
	timing   Timing
	due      time.Time
	lastSent time.Time // event time of the last notification (zero: none)
	pending  *note     // the state to send at due (nil: nothing new)
	last     *note     // the state sent last, for repeats (or a flap's resolve, which needed none)
	// settle are the inputs the pending state stands for: they are done
	// once it went out (or no longer needs to).
	settle []input
	// sent are the incident events notified last (a ring of
	// maxRemembered): one that comes again is settled at once.
	sent []string
	// handed is the note a receiver's lane holds (queued or being sent),
	// until its result came back through sent: the slot hands out nothing
	// else meanwhile, so that no note goes out twice at once and one
	// incident's notifications to a route go out in order.
	handed *note
	// handedSettles is how many of settle (the first ones) handed stands
	// for: those offered once it was out wait for the newer state.
	handedSettles int
	// wake is the slot's entry in the schedule's wakes (armed: it has
	// one): when it next has something to hand out.
	wake  time.Time
	armed bool
	// heardBy are the integrations of the route's receiver a
	// notification of the incident reached (integrationBit): one that
	// did not is sent its next one as a first notice (PagerDuty triggers
	// before it acknowledges), whatever its siblings took.
	heardBy uint64
	// sawOpening: the slot was made by the incident's opening event, so
	// it knows every notification of the incident to the route (one made
	// by a later event, after a restart, does not).
	sawOpening bool
	// failingSince is when (wall clock) the notification held here first
	// failed to reach the receiver (zero: it is not failing); tries counts
	// its failed tries since. Its inputs stay held, and it is tried again
	// at retryAt (event time) at the earliest, as is a newer state offered
	// meanwhile, which stands for them too.
	failingSince time.Time
	tries        int
	retryAt      time.Time
	// oldest is when the earliest of the held inputs (settle) was made:
	// the stream drops it about max_age after.
	oldest time.Time
	// counted and countedBytes are what the slot adds to
	// schedule.failingInputs and failingBytes (recount).
	counted, countedBytes int
	// forgotten: its incident was forgotten (no event for max_age) while
	// the slot was busy; it goes once idle.
	forgotten bool
	// unheard: no receiver of the route can have heard of the incident.
	// The slot was made by the incident's opening event, which this
	// notifier holds until a notification standing for it went out, and
	// it has handed out nothing since. Only then is a resolve within the
	// wait a flap to drop.
	unheard bool
}

// newest is the latest state the slot knows: pending, else the one handed
// out, else the one sent last (nil: none).
func (sl *slot) newest() *note {
	switch {
	case sl.pending != nil:
		return sl.pending
	case sl.handed != nil:
		return sl.handed
	}
	return sl.last
}

// wakeAt is when the slot next has something to hand out: its pending
// state's due time, or its next repeat; false while a note is out or
// nothing is left to send.
func (sl *slot) wakeAt() (time.Time, bool) {
	switch {
	case sl.handed != nil:
		return time.Time{}, false
	case sl.pending != nil:
		return sl.due, true
	case sl.last != nil && !sl.last.resolved && sl.again() > 0:
		return sl.lastSent.Add(sl.again()), true
	}
	return time.Time{}, false
}

// integrationBit is the bit of a receiver's i-th integration in
// note.reached and slot.heardBy; none past the 64th, which is then never
// known to have heard (sent first notices: a trigger joins an alert
// PagerDuty has open).
func integrationBit(i int) uint64 {
	if i < 0 || i >= 64 {
		return 0
	}
	return 1 << i
}

// maxRemembered bounds the events a slot remembers as sent.
const maxRemembered = 64

// schedule decides, in event time, when each incident's notifications go
// out to each route. It is not safe for concurrent use.
type schedule struct {
	slots map[string]*slot
	// wakes orders the slots by wakeAt, so that due looks at those whose
	// time came, not at every slot (on every event and tick). An entry no
	// longer its slot's (the slot changed or was forgotten since) is
	// skipped.
	wakes due.Queue[wake]
	max   int
	// Forgotten counts slots dropped for MaxSlots.
	forgotten uint64
	// failingInputs counts the inputs held by slots whose receiver could
	// not be reached (slot.failingSince set): the incident events a
	// receiver that is down keeps unacked, which Processor.hold bounds;
	// failingBytes is their size (an event held for two such routes
	// counts twice).
	failingInputs, failingBytes int
}

// recount brings failingInputs and failingBytes up to date with sl after
// its inputs, or whether it is failing, changed.
func (s *schedule) recount(sl *slot) {
	n, b := 0, 0
	if !sl.failingSince.IsZero() {
		n = len(sl.settle)
		for _, in := range sl.settle {
			b += in.bytes
		}
	}
	s.failingInputs += n - sl.counted
	s.failingBytes += b - sl.countedBytes
	sl.counted, sl.countedBytes = n, b
}

// wake is a slot in schedule.wakes.
type wake struct {
	key string
	sl  *slot
}

// arm puts the slot at k in wakes at its wakeAt, after any change to it.
// Stale entries are dropped once they outnumber the slots well.
func (s *schedule) arm(k string, sl *slot) {
	if s.slots[k] != sl {
		return // forgotten
	}
	at, ok := sl.wakeAt()
	if !ok {
		sl.armed = false
		return
	}
	if sl.armed && sl.wake.Equal(at) {
		return
	}
	sl.wake, sl.armed = at, true
	s.wakes.Push(at, wake{key: k, sl: sl})
	if s.wakes.Len() > 4*len(s.slots)+1024 {
		s.wakes.Compact(s.live)
	}
}

// live tells whether w, queued at at, is its slot's current entry.
func (s *schedule) live(at time.Time, w wake) bool {
	return s.slots[w.key] == w.sl && w.sl.armed && w.sl.wake.Equal(at)
}

func newSchedule() *schedule { return &schedule{slots: map[string]*slot{}, max: MaxSlots} }

// MaxSlots bounds the incidents (per route) the schedule remembers. Past
// it, slots with nothing waiting (kept only for their repeats and their
// interval) are forgotten first: an incident forgotten so is notified at
// its next change without waiting for group_interval, and not repeated
// until then. Slots holding inputs are never dropped.
const MaxSlots = 100_000

// LateOpeningHold is how long (event time) an opening that comes past its
// wait waits for a resolve behind it (with a wait of 0 nothing is a flap:
// it goes at once). The correlator opens an incident as
// of its signal's time, which a sender may have held for minutes
// (Alertmanager sends an alert that joins a group at the group's next
// group_interval), and in an alert storm merges it into the storm's in
// the same moment, publishing both states at once: handed out on
// arrival, the opening was paged and resolved a moment later, once for
// every such alert. Held this long, the resolve finds it unsent, a flap.
const LateOpeningHold = time.Second

func slotKey(incidentID, route string) string { return incidentID + "\x00" + route }

// offer takes a new state of an incident for a route; done is called once
// it was sent or superseded by a state that was, or at once when nothing
// will be sent: an incident resolved within the wait that no receiver
// heard of (slot.unheard) is a flap, and there is nothing to resolve.
// Every other resolve goes out, within the wait or not: a notifier that
// does not hold the incident's opening event cannot tell what went out
// (restarted after the opening was acked, which happens only once a
// notification standing for it went out: an acknowledgement, which goes
// at once, or the opening itself, due on a clock that ran past the wait
// before a resolve stamped earlier arrived), and a receiver that heard
// of the incident would keep it open for ever. The price is the resolve
// of a flap it never heard of, after a restart, unless the flap's
// tombstone said so (Processor.endedFor). It reports whether n was
// dropped as such a flap.
func (s *schedule) offer(n *note, openedAt time.Time, done func(error)) (flap bool) {
	k := slotKey(n.incidentID, n.route)
	sl := s.slots[k]
	if n.resolved && n.at.Sub(openedAt) < n.timing.Wait && sl != nil && sl.unheard {
		// The resolve stays as the slot's last state, unsent, so that an
		// earlier state redelivered after it (its send failed, or its ack
		// was lost) is settled as stale instead of going out.
		s.settlePending(sl, nil)
		sl.last = lastOf(n)
		sl.remember(n.eventID)
		s.arm(k, sl)
		done(nil)
		return true
	}
	if sl == nil {
		s.makeRoom()
		due := openedAt.Add(n.timing.Wait)
		if n.opening && n.timing.Wait > 0 && due.Before(n.arrived) {
			due = n.arrived.Add(LateOpeningHold)
		}
		sl = &slot{due: due, unheard: n.opening, sawOpening: n.opening}
		s.slots[k] = sl
	}
	defer s.recount(sl)
	if slices.Contains(sl.sent, n.eventID) {
		done(nil) // a redelivery of what went out already
		return false
	}
	if sl.handed != nil && sl.handed.eventID == n.eventID && sl.handed.repeat == 0 {
		// A redelivery of what is being sent: it has that send's result.
		sl.settle = slices.Insert(sl.settle, sl.handedSettles, input{done, n.bytes})
		sl.handedSettles++
		sl.holds(n.made)
		return false
	}
	if newer := sl.newest(); newer != nil && n.at.Before(newer.at) {
		// An older state redelivered (its ack was lost, or it waited past
		// ack_wait) after a newer one was offered, handed out or sent:
		// the newer stands for it, since an incident's events are
		// strictly ordered in time. Sending it would show the receiver a
		// stale state.
		switch newer {
		case sl.pending:
			sl.settle = append(sl.settle, input{done, n.bytes})
			sl.holds(n.made)
		case sl.handed:
			sl.settle = slices.Insert(sl.settle, sl.handedSettles, input{done, n.bytes})
			sl.handedSettles++
			sl.holds(n.made)
		default:
			done(nil)
		}
		return false
	}
	if old := sl.pending; old != nil && old.urgent && !n.urgent {
		// n stands for a transition a person made or must see that has
		// not gone out (an acknowledgement, a reopening, replaced by an
		// update of the same moment): it goes at once, as that one, or
		// it would wait for group_interval and read as an update (a
		// receiver that closed the incident's ticket at its resolve
		// would not hear it reopen).
		n.urgent, n.shownAs = true, cmp.Or(old.shownAs, old.transition)
	}
	sl.timing = n.timing
	sl.pending = n
	sl.forgotten = false // its incident is back
	sl.settle = append(sl.settle, input{done, n.bytes})
	sl.holds(n.made)
	switch {
	case n.urgent:
		sl.due = time.Time{}
	case !sl.lastSent.IsZero():
		sl.due = sl.lastSent.Add(sl.timing.Interval)
	}
	if !sl.failingSince.IsZero() && sl.due.Before(sl.retryAt) {
		// The receiver is failing: a newer state waits for the next try,
		// as the state it replaces did.
		sl.due = sl.retryAt
	}
	s.arm(k, sl)
	return false
}

// holds notes that an input made at made is held now.
func (sl *slot) holds(made time.Time) {
	if !made.IsZero() && (sl.oldest.IsZero() || made.Before(sl.oldest)) {
		sl.oldest = made
	}
}

// makeRoom forgets idle slots (nothing pending) while the schedule is at
// its bound: a tenth of the bound at once, so that it is not done for
// every new incident.
func (s *schedule) makeRoom() {
	if len(s.slots) < s.max {
		return
	}
	drop := max(s.max/10, 1)
	for k, sl := range s.slots {
		if drop == 0 {
			break
		}
		if sl.pending == nil && len(sl.settle) == 0 {
			delete(s.slots, k)
			s.forgotten++
			drop--
		}
	}
}

// due hands out the notifications to make at now, the earliest first:
// new states whose time came, and repeats of unchanged open incidents.
// Each stays handed until sent reports its result.
func (s *schedule) due(now time.Time) []*note {
	var out []*note
	for {
		at, w, ok := s.wakes.PopDue(now)
		if !ok {
			break
		}
		if !s.live(at, w) {
			continue
		}
		w.sl.armed = false
		if n := w.sl.take(now); n != nil {
			out = append(out, n)
		}
		s.arm(w.key, w.sl)
	}
	slices.SortFunc(out, func(a, b *note) int {
		return a.at.Compare(b.at)
	})
	return out
}

// dueAfter hands out what n's slot has due at now once n was sent: a
// newer state offered while n was out waited for it.
func (s *schedule) dueAfter(n *note, now time.Time) *note {
	k := slotKey(n.incidentID, n.route)
	sl := s.slots[k]
	if sl == nil {
		return nil
	}
	next := sl.take(now)
	s.arm(k, sl)
	return next
}

// mayHaveHeard tells whether n's route's receiver may have heard of n's
// incident: unless the slot knows every notification since the opening
// (made by it, or restored from a record that knew) and that none reached
// it.
func (s *schedule) mayHaveHeard(n *note) bool {
	sl := s.slots[slotKey(n.incidentID, n.route)]
	return sl == nil || sl.heardBy != 0 || !sl.sawOpening
}

// heardBy are the integrations of n's route's receiver a notification of
// n's incident certainly reached: none when the slot is not known.
func (s *schedule) heardBy(n *note) uint64 {
	if sl := s.slots[slotKey(n.incidentID, n.route)]; sl != nil {
		return sl.heardBy
	}
	return 0
}

// knowledge is what a record of n's slot keeps for a notifier after a
// restart (restoreSent): the integrations heard, and whether the slot knew
// every notification since the opening (else heardBy tells nothing).
func (s *schedule) knowledge(n *note) (heardBy uint64, knows bool) {
	if sl := s.slots[slotKey(n.incidentID, n.route)]; sl != nil {
		return sl.heardBy, sl.sawOpening
	}
	return 0, false
}

// has tells whether the schedule knows incident id at route.
func (s *schedule) has(id, route string) bool {
	_, ok := s.slots[slotKey(id, route)]
	return ok
}

// handsOut tells whether n is still handed out by its slot, its result
// awaited: not once a drain released it.
func (s *schedule) handsOut(n *note) bool {
	sl := s.slots[slotKey(n.incidentID, n.route)]
	return sl != nil && sl.handed == n
}

// take hands out the slot's notification due at now, if any and if none
// is out already.
// again is how long after the last send an unchanged open incident is
// sent again (0: never): repeat_interval, or group_interval while what
// went last was muted, as Alertmanager asks the mutes at every flush: the
// page goes out soon after a silence ends, not a repeat_interval later.
func (sl *slot) again() time.Duration {
	if sl.last != nil && sl.last.muted && sl.timing.Interval > 0 {
		return sl.timing.Interval
	}
	return sl.timing.Repeat
}

func (sl *slot) take(now time.Time) *note {
	switch {
	case sl.handed != nil:
		return nil
	case sl.pending != nil && !now.Before(sl.due):
		sl.handed, sl.handedSettles = sl.pending, len(sl.settle)
		sl.unheard = false
	case sl.pending == nil && sl.last != nil && !sl.last.resolved && sl.again() > 0 &&
		!now.Before(sl.lastSent.Add(sl.again())):
		// A repeat keeps its state's time (at): stamped with now, it
		// made a resolve timed before now (when the incident went quiet,
		// published at the correlator's next tick) look older than the
		// state sent last, and the resolve was dropped as stale.
		r := *sl.last
		r.repeat++
		r.muted, r.reached = false, 0 // a send of its own
		sl.pending, sl.due, sl.handed, sl.handedSettles = &r, now, &r, 0
	}
	return sl.handed
}

// sent records the result of sending n at now (event time): its inputs
// are settled with it, and it reports whether n is now the state sent
// last (what a repeat sends again). A success (or a refusal, which trying again cannot
// help) starts the interval before the next change; a transient failure
// leaves the state to the inputs' redelivery, which offers it again. A
// resolved incident's slot stays, idle (it has no repeats, and makeRoom
// forgets idle slots first), so that an older state redelivered after the
// resolve went out is known to be stale.
//
// A newer state offered while n was out stays pending: on a success it
// waits for the interval from n's send, and only n's own inputs are
// settled; on a transient failure it stands for n's inputs too (it
// carries the incident's later state), which it settles with its own
// result.
func (s *schedule) sent(n *note, now time.Time, err error) (last bool) {
	k := slotKey(n.incidentID, n.route)
	sl := s.slots[k]
	if sl == nil {
		return false
	}
	if sl.handed != n && sl.pending != n {
		return false // released at a drain meanwhile: its result changes nothing
	}
	defer s.arm(k, sl)
	defer s.recount(sl)
	ownSettles := len(sl.settle)
	if sl.pending != n {
		ownSettles = 0
		if sl.handed == n {
			ownSettles = sl.handedSettles
		}
	}
	if sl.handed == n {
		sl.handed, sl.handedSettles = nil, 0
	}
	if sl.pending == n {
		sl.pending = nil
	}
	// A failed repeat is skipped, not retried every tick.
	wentOut := err == nil || errs.IsPermanent(err) || n.repeat > 0
	if !wentOut && sl.pending != nil {
		return false // the newer state stands for n's inputs
	}
	for _, in := range sl.settle[:ownSettles] {
		in.done(err)
	}
	sl.settle = slices.Delete(sl.settle, 0, ownSettles)
	if len(sl.settle) == 0 {
		sl.oldest = time.Time{}
	}
	if !wentOut {
		return false
	}
	sl.failingSince, sl.tries, sl.retryAt = time.Time{}, 0, time.Time{}
	sl.last, sl.lastSent = lastOf(n), now
	sl.heardBy |= n.reached
	sl.remember(n.eventID)
	if sl.pending != nil && !sl.pending.urgent {
		sl.due = now.Add(sl.timing.Interval)
	}
	if sl.forgotten && sl.idle() {
		delete(s.slots, k)
		return false // nothing to record of a forgotten incident
	}
	return true
}

// failed records that a try of n, handed out, failed at wall (its
// receiver could not be reached): it returns since when the notification
// held at n's slot has been failing, how many of its tries failed, and
// when the earliest of its held inputs was made; ok is false when n is no
// longer handed out (released at a drain while it was being sent).
func (s *schedule) failed(n *note, wall time.Time) (since time.Time, tries int, oldest time.Time, ok bool) {
	sl := s.slots[slotKey(n.incidentID, n.route)]
	if sl == nil || sl.handed != n {
		return time.Time{}, 0, time.Time{}, false
	}
	if sl.failingSince.IsZero() {
		sl.failingSince = wall
	}
	sl.tries++
	s.recount(sl)
	return sl.failingSince, sl.tries, sl.oldest, true
}

// retry holds the inputs of n, whose try failed (failed), for another try
// at at (event time): n is pending again, or a newer state offered while
// it was out, which carries the incident's later state, takes its place
// and its inputs, due no earlier than at. What reached an integration of
// the receiver counts as heard.
func (s *schedule) retry(n *note, at time.Time) {
	k := slotKey(n.incidentID, n.route)
	sl := s.slots[k]
	if sl == nil || sl.handed != n {
		return
	}
	sl.handed, sl.handedSettles = nil, 0
	sl.heardBy |= n.reached
	sl.retryAt = at
	if sl.pending == n || sl.pending == nil {
		sl.pending, sl.due = n, at
	} else if sl.due.Before(at) {
		sl.due = at
	}
	s.arm(k, sl)
}

// forgetIdle drops the idle slots (nothing pending, handed out or held)
// of the incidents open says are not open, unless what they sent last was
// the resolve: at a term's start, a slot an earlier term of this notifier
// left may know an incident the holder between resolved, and would repeat
// it. (A resolved one's slot stays: it tells a stale state.)
func (s *schedule) forgetIdle(open func(incidentID string) bool) {
	for k, sl := range s.slots {
		id, _, _ := strings.Cut(k, "\x00")
		idle := sl.pending == nil && sl.handed == nil && len(sl.settle) == 0
		if idle && (sl.last == nil || !sl.last.resolved) && !open(id) {
			delete(s.slots, k)
		}
	}
}

// forgetIncident drops the slots of incident id: it is repeated no more.
// One busy (a repeat being sent) goes once its send is done (sent), unless
// a new state of the incident came meanwhile.
func (s *schedule) forgetIncident(id string) {
	for k, sl := range s.slots {
		if !strings.HasPrefix(k, id+"\x00") {
			continue
		}
		if sl.idle() {
			delete(s.slots, k)
		} else {
			sl.forgotten = true
		}
	}
}

// idle: nothing pending, handed out or held.
func (sl *slot) idle() bool { return sl.pending == nil && sl.handed == nil && len(sl.settle) == 0 }

// restoreSent gives the schedule what a notifier before it (this one
// before a restart, or the last holder of the lease) sent last of an open
// incident to a route, kept in the state bucket: n went out at lastSent
// (event time), so the incident, unchanged, is repeated repeat_interval
// after it, and n's event, delivered again, is settled at once; heardBy
// and knows are that notifier's knowledge (a record that does not know
// leaves the receiver one that may have heard). A slot this notifier
// holds that is busy or knows a later send is kept.
func (s *schedule) restoreSent(n *note, lastSent time.Time, heardBy uint64, knows bool) {
	k := slotKey(n.incidentID, n.route)
	if sl := s.slots[k]; sl != nil && (sl.pending != nil || sl.handed != nil || len(sl.settle) > 0 || !sl.lastSent.Before(lastSent)) {
		return
	}
	s.makeRoom()
	sl := &slot{timing: n.timing, last: n, lastSent: lastSent, heardBy: heardBy, sawOpening: knows}
	sl.remember(n.eventID)
	s.slots[k] = sl
	s.arm(k, sl)
}

// recallHeard adds to the knowledge of n's slot, made by a later state
// than the opening, what a record of the route kept (heardBy, known when
// knows): nothing went out to the route while it had no slot.
func (s *schedule) recallHeard(n *note, heardBy uint64, knows bool) {
	if sl := s.slots[slotKey(n.incidentID, n.route)]; sl != nil && !sl.sawOpening {
		sl.heardBy |= heardBy
		sl.sawOpening = knows
	}
}

// lastOf is what a slot keeps of n as the state it sent last. A resolved
// incident is never repeated: its slot stays only to tell a stale state
// (its time) until the incident is forgotten, and keeps n without what
// its send needed (the decoded incident, about four times its event's
// size: 2.7 MB for an event near the body limit, kept by every resolved
// incident of the last max_age, up to MaxSlots a route).
func lastOf(n *note) *note {
	if !n.resolved || n.send == nil {
		return n
	}
	light := *n
	light.send = nil
	return &light
}

// remember records eventID as notified: a redelivery of it is settled at
// once.
func (sl *slot) remember(eventID string) {
	if len(sl.sent) == maxRemembered {
		sl.sent = sl.sent[1:]
	}
	sl.sent = append(sl.sent, eventID)
}

// settlePending settles the inputs the slot's pending state stands for
// with err and drops it.
func (s *schedule) settlePending(sl *slot, err error) {
	for _, in := range sl.settle {
		in.done(err)
	}
	sl.settle, sl.pending, sl.oldest = nil, nil, time.Time{}
	sl.failingSince, sl.tries, sl.retryAt = time.Time{}, 0, time.Time{}
	s.recount(sl)
}

// release settles every input still held with err and forgets what was
// pending or handed out (a stopping notifier: the inputs come again, and
// the result of a send still going changes nothing). A slot is no longer
// unheard: the opening it held went back to the stream, and another
// notifier (this one's lease taken over) may send it before a resolve
// reaches this one again.
func (s *schedule) release(err error) {
	for k, sl := range s.slots {
		s.settlePending(sl, err)
		sl.handed, sl.handedSettles = nil, 0
		sl.unheard = false
		s.arm(k, sl)
	}
}

// next is the earliest time something is due (zero: nothing pending).
func (s *schedule) next() time.Time {
	var t time.Time
	for _, sl := range s.slots {
		if d, ok := sl.wakeAt(); ok && (t.IsZero() || d.Before(t)) {
			t = d
		}
	}
	return t
}

// held counts the inputs waiting for a notification.
func (s *schedule) held() int {
	n := 0
	for _, sl := range s.slots {
		n += len(sl.settle)
	}
	return n
}

// eventClock is the notifier's time: the latest event time seen, moved on
// by the wall clock since it was seen, so that timers run on the events'
// own times (a replay of history is fast and gives the same
// notifications) and still fire while no event arrives.
type eventClock struct {
	mark, wall time.Time
}

// MaxClockSkew bounds how far ahead of the wall clock an event's time
// moves the notifier's clock: a producer whose clock runs an hour ahead
// must not fire every timer at once.
const MaxClockSkew = time.Minute

// observe takes an event's time seen at wall and returns the time now.
func (c *eventClock) observe(t, wall time.Time) time.Time {
	if lim := wall.Add(MaxClockSkew); t.After(lim) {
		t = lim
	}
	if c.mark.IsZero() || t.After(c.at(wall)) {
		c.mark, c.wall = t, wall
	}
	return c.at(wall)
}

// at is the time at wall.
func (c *eventClock) at(wall time.Time) time.Time {
	if c.mark.IsZero() {
		return wall
	}
	return c.mark.Add(max(0, wall.Sub(c.wall)))
}
