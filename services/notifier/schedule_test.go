package notifier

import (
	"errors"
	"fmt"
	"math/rand"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aiops-dev/aiops/pkg/errs"
)

var amDefaults = Timing{Wait: 30 * time.Second, Interval: 5 * time.Minute, Repeat: 4 * time.Hour}

// mkNote makes a note of event; the tests call an incident's opening
// event "open".
func mkNote(id, event string, at time.Time, resolved bool) *note {
	return &note{incidentID: id, route: "route", receiver: "r", eventID: event, at: at, resolved: resolved, timing: amDefaults, opening: event == "open"}
}

// settled counts the dones called, by event.
type settled map[string]int

func (s settled) done(event string) func(error) { return func(error) { s[event]++ } }

func dueIDs(s *schedule, now time.Time) string {
	var out []string
	for _, n := range s.due(now) {
		out = append(out, fmt.Sprintf("%s/%s#%d", n.incidentID, n.eventID, n.repeat))
	}
	return fmt.Sprint(out)
}

func TestScheduleWaitCoalescesAndSends(t *testing.T) {
	s, done := newSchedule(), settled{}
	s.offer(mkNote("a", "open", t0, false), t0, done.done("open"))
	s.offer(mkNote("a", "upd1", t0.Add(10*time.Second), false), t0, done.done("upd1"))
	if got := dueIDs(s, t0.Add(29*time.Second)); got != "[]" {
		t.Fatalf("due before the wait: %s", got)
	}
	if s.next() != t0.Add(30*time.Second) {
		t.Fatalf("next %s, want the end of the wait", s.next())
	}
	due := s.due(t0.Add(30 * time.Second))
	if len(due) != 1 || due[0].eventID != "upd1" {
		t.Fatalf("due at the end of the wait: %s, want the latest state only", dueIDs(s, t0.Add(30*time.Second)))
	}
	if len(done) != 0 || s.held() != 2 {
		t.Fatalf("settled %v before sending, %d held", done, s.held())
	}
	s.sent(due[0], t0.Add(30*time.Second), nil)
	if done["open"] != 1 || done["upd1"] != 1 || s.held() != 0 {
		t.Fatalf("after sending: settled %v, %d held; want both inputs done", done, s.held())
	}
}

func TestScheduleResolvedWithinWaitIsNeverNotified(t *testing.T) {
	s, done := newSchedule(), settled{}
	s.offer(mkNote("a", "open", t0, false), t0, done.done("open"))
	s.offer(mkNote("a", "res", t0.Add(20*time.Second), true), t0, done.done("res"))
	if got := dueIDs(s, t0.Add(time.Hour)); got != "[]" {
		t.Fatalf("a flap shorter than the wait was notified: %s", got)
	}
	if done["open"] != 1 || done["res"] != 1 || s.held() != 0 {
		t.Fatalf("settled %v, %d held", done, s.held())
	}
	// The opening comes again (its ack was lost): the resolve stands for
	// it, and the receiver never hears of the incident.
	s.offer(mkNote("a", "open", t0, false), t0, done.done("open"))
	s.offer(mkNote("a", "res", t0.Add(20*time.Second), true), t0, done.done("res"))
	if got := dueIDs(s, t0.Add(time.Hour)); got != "[]" || done["open"] != 2 || done["res"] != 2 {
		t.Fatalf("after the flap, redeliveries: due %s, settled %v; want nothing due, both settled", got, done)
	}
}

// A flap whose opening was tried is not dropped: the receiver may have
// got the opening although the send failed (its answer was lost).
func TestScheduleResolveWithinWaitAfterAFailedSend(t *testing.T) {
	s, done := newSchedule(), settled{}
	s.offer(mkNote("a", "open", t0, false), t0, done.done("open"))
	out := s.due(t0.Add(30 * time.Second))
	s.sent(out[0], t0.Add(30*time.Second), errors.New("timeout"))
	s.offer(mkNote("a", "res", t0.Add(25*time.Second), true), t0, done.done("res"))
	if got := dueIDs(s, t0.Add(31*time.Second)); got != "[a/res#0]" || done["res"] != 0 {
		t.Fatalf("due %s, settled %v; want the resolve sent", got, done)
	}
}

func TestScheduleIntervalAndResolve(t *testing.T) {
	s, done := newSchedule(), settled{}
	s.offer(mkNote("a", "open", t0, false), t0, done.done("open"))
	first := s.due(t0.Add(30 * time.Second))[0]
	s.sent(first, t0.Add(30*time.Second), nil)
	// Changes within the interval wait for it; the latest goes out.
	s.offer(mkNote("a", "upd1", t0.Add(time.Minute), false), t0, done.done("upd1"))
	s.offer(mkNote("a", "upd2", t0.Add(2*time.Minute), false), t0, done.done("upd2"))
	if got := dueIDs(s, t0.Add(5*time.Minute)); got != "[]" {
		t.Fatalf("due within the interval: %s", got)
	}
	at := t0.Add(30*time.Second + 5*time.Minute)
	due := s.due(at)
	if len(due) != 1 || due[0].eventID != "upd2" {
		t.Fatalf("due at the interval: %s", dueIDs(s, at))
	}
	s.sent(due[0], at, nil)
	// A resolve after a notification goes out (at the next interval) and
	// forgets the incident.
	s.offer(mkNote("a", "res", at.Add(time.Minute), true), t0, done.done("res"))
	due = s.due(at.Add(5 * time.Minute))
	if len(due) != 1 || !due[0].resolved {
		t.Fatalf("the resolve is not due: %s", dueIDs(s, at.Add(5*time.Minute)))
	}
	s.sent(due[0], at.Add(5*time.Minute), nil)
	if s.held() != 0 || done["res"] != 1 || dueIDs(s, at.Add(48*time.Hour)) != "[]" {
		t.Fatalf("after the resolve went out: %d held, settled %v; want nothing held and nothing due again (no repeats)", s.held(), done)
	}
}

func TestScheduleRepeats(t *testing.T) {
	s, done := newSchedule(), settled{}
	s.offer(mkNote("a", "open", t0, false), t0, done.done("open"))
	sentAt := t0.Add(30 * time.Second)
	s.sent(s.due(sentAt)[0], sentAt, nil)
	if got := dueIDs(s, sentAt.Add(4*time.Hour-time.Second)); got != "[]" {
		t.Fatalf("repeated early: %s", got)
	}
	for i := 1; i <= 2; i++ {
		at := sentAt.Add(time.Duration(i) * 4 * time.Hour)
		due := s.due(at)
		if len(due) != 1 || due[0].repeat != i || due[0].eventID != "open" {
			t.Fatalf("repeat %d: %s", i, dueIDs(s, at))
		}
		s.sent(due[0], at, nil)
	}
}

// A notifier that restarted knows nothing it sent: a resolve goes out
// at once, whether the incident lasted longer than the wait or not (its
// opening, or an acknowledgement, may have gone out before the restart).
func TestScheduleResolveAfterARestart(t *testing.T) {
	s, done := newSchedule(), settled{}
	s.offer(mkNote("long", "res", t0.Add(10*time.Minute), true), t0, done.done("long"))
	s.offer(mkNote("short", "res", t0.Add(10*time.Second), true), t0, done.done("short"))
	if got := dueIDs(s, t0.Add(10*time.Minute)); got != "[short/res#0 long/res#0]" || len(done) != 0 {
		t.Fatalf("due %s, settled %v; want both resolves out", got, done)
	}
}

func TestScheduleKeepsIncidentsApart(t *testing.T) {
	s, done := newSchedule(), settled{}
	s.offer(mkNote("a", "open", t0, false), t0, done.done("a"))
	s.offer(mkNote("b", "open", t0.Add(10*time.Second), false), t0.Add(10*time.Second), done.done("b"))
	if got := dueIDs(s, t0.Add(35*time.Second)); got != "[a/open#0]" {
		t.Fatalf("due %s, want a only", got)
	}
	if got := dueIDs(s, t0.Add(40*time.Second)); got != "[b/open#0]" {
		t.Fatalf("due %s, want b only (a is out already)", got)
	}
	s = newSchedule()
	s.offer(mkNote("b", "open", t0.Add(10*time.Second), false), t0.Add(10*time.Second), done.done("b"))
	s.offer(mkNote("a", "open", t0, false), t0, done.done("a"))
	if got := dueIDs(s, t0.Add(40*time.Second)); got != "[a/open#0 b/open#0]" {
		t.Fatalf("due %s, want both, the earlier first", got)
	}
}

// A note handed out is not handed out again while it is out (a lane
// sends it): a newer state offered meanwhile waits for its result, and
// then goes at once when its time came; the note's own inputs are settled
// by its send.
func TestScheduleHandsANoteOnce(t *testing.T) {
	s, done := newSchedule(), settled{}
	s.offer(mkNote("a", "open", t0, false), t0, done.done("open"))
	at := t0.Add(30 * time.Second)
	out := s.due(at)
	if len(out) != 1 || dueIDs(s, at.Add(time.Hour)) != "[]" {
		t.Fatalf("handed %d, then again %s while out; want once", len(out), dueIDs(s, at.Add(time.Hour)))
	}
	ack := mkNote("a", "ack", at.Add(time.Second), false)
	ack.urgent = true
	s.offer(ack, t0, done.done("ack"))
	if got := dueIDs(s, at.Add(time.Second)); got != "[]" {
		t.Fatalf("due %s while the opening is out; want it to wait", got)
	}
	s.sent(out[0], at, nil)
	if done["open"] != 1 || done["ack"] != 0 {
		t.Fatalf("settled %v by the opening's send; want the opening only (it went out), the acknowledgement held", done)
	}
	next := s.dueAfter(out[0], at.Add(time.Second))
	if next != ack || s.dueAfter(out[0], at.Add(time.Second)) != nil {
		t.Fatalf("after the opening's send: %v, want the acknowledgement once", next)
	}
	s.sent(next, at.Add(time.Second), nil)
	if done["open"] != 1 || done["ack"] != 1 {
		t.Fatalf("settled %v, want both once", done)
	}
	// A repeat out is not repeated again until it is back.
	rep := s.due(at.Add(5 * time.Hour))
	if len(rep) != 1 || rep[0].repeat != 1 || dueIDs(s, at.Add(10*time.Hour)) != "[]" {
		t.Fatalf("repeats %d, then %s while out", len(rep), dueIDs(s, at.Add(10*time.Hour)))
	}
}

// An event that comes again after its notification went out (its ack was
// lost) is settled at once, not held for the next interval.
func TestScheduleRedeliveryOfSent(t *testing.T) {
	s, done := newSchedule(), settled{}
	s.offer(mkNote("a", "open", t0, false), t0, done.done("open"))
	s.sent(s.due(t0.Add(30 * time.Second))[0], t0.Add(30*time.Second), nil)
	s.offer(mkNote("a", "open", t0, false), t0, done.done("open"))
	if done["open"] != 2 || s.held() != 0 || dueIDs(s, t0.Add(time.Hour)) != "[]" || dueIDs(s, t0.Add(5*time.Hour)) != "[a/open#1]" {
		t.Fatalf("settled %v, %d held; want the redelivery settled, nothing due before the repeat", done, s.held())
	}
}

// An older state redelivered after a newer one was offered, or went out,
// never replaces it: the receiver would see the incident go back.
func TestScheduleOlderStateNeverReplacesNewer(t *testing.T) {
	s, done := newSchedule(), settled{}
	s.offer(mkNote("a", "open", t0, false), t0, done.done("open"))
	s.offer(mkNote("a", "ack", t0.Add(10*time.Second), false), t0, done.done("ack"))
	s.offer(mkNote("a", "open", t0, false), t0, done.done("open"))
	due := s.due(t0.Add(30 * time.Second))
	if len(due) != 1 || due[0].eventID != "ack" {
		t.Fatalf("due %s, want the newer state", dueIDs(s, t0.Add(30*time.Second)))
	}
	s.sent(due[0], t0.Add(30*time.Second), nil)
	if done["open"] != 2 || done["ack"] != 1 || s.held() != 0 {
		t.Fatalf("settled %v, %d held; want every input settled by the newer state's send", done, s.held())
	}
	// While a newer state is out: the older one gets the send's result.
	s.offer(mkNote("a", "res", t0.Add(20*time.Minute), true), t0, done.done("res"))
	out := s.due(t0.Add(20 * time.Minute))
	s.offer(mkNote("a", "ack2", t0.Add(15*time.Minute), false), t0, done.done("ack2"))
	if len(out) != 1 || out[0].eventID != "res" || done["ack2"] != 0 {
		t.Fatalf("out %v, settled %v; want the resolve out, the older state waiting for it", out, done)
	}
	s.sent(out[0], t0.Add(20*time.Minute), nil)
	if done["res"] != 1 || done["ack2"] != 1 || dueIDs(s, t0.Add(30*time.Minute)) != "[]" {
		t.Fatalf("settled %v; want the older state settled by the resolve's send, nothing due", done)
	}
	// After it went out: an older state that was never sent itself.
	s.offer(mkNote("a", "upd", t0.Add(5*time.Second), false), t0, done.done("upd"))
	if done["upd"] != 1 || s.held() != 0 || dueIDs(s, t0.Add(10*time.Minute)) != "[]" {
		t.Fatalf("settled %v, %d held; want the stale state settled, nothing due", done, s.held())
	}
}

// The schedule keeps at most max slots: idle ones (sent, waiting only for
// a repeat) are forgotten first, never one that holds an input.
func TestScheduleBounded(t *testing.T) {
	s, done := newSchedule(), settled{}
	s.max = 10
	for i := 0; i < 10; i++ {
		id := fmt.Sprintf("idle-%d", i)
		s.offer(mkNote(id, "open", t0, false), t0, done.done(id))
		s.sent(s.slots[slotKey(id, "route")].pending, t0.Add(time.Minute), nil)
	}
	for i := 0; i < 30; i++ {
		id := fmt.Sprintf("held-%d", i)
		s.offer(mkNote(id, "open", t0, false), t0, done.done(id))
	}
	if s.held() != 30 {
		t.Fatalf("%d inputs held, want all 30", s.held())
	}
	if s.forgotten != 10 {
		t.Fatalf("%d slots forgotten, want the 10 idle ones", s.forgotten)
	}
	for k := range s.slots {
		if strings.HasPrefix(k, "idle-") {
			t.Fatalf("idle slot %q kept while over the bound", k)
		}
	}
}

// Every change of a slot's time adds an entry to the schedule's wakes;
// the ones no longer current are dropped before they outnumber the slots
// well, and due still hands out the latest state once.
func TestScheduleWakesStayBounded(t *testing.T) {
	s, done := newSchedule(), settled{}
	s.offer(mkNote("a", "open", t0, false), t0, done.done("open"))
	at := t0.Add(30 * time.Second)
	s.sent(s.due(at)[0], at, nil)
	var last *note
	for i := range 5000 {
		// An acknowledgement is due at once, an update at the interval:
		// the slot's time moves back and forth.
		last = mkNote("a", fmt.Sprint("change-", i), at.Add(time.Second), false)
		last.urgent = i%2 == 0
		s.offer(last, t0, done.done(last.eventID))
	}
	if s.wakes.Len() > 4*len(s.slots)+1024 {
		t.Fatalf("%d wakes for %d slots", s.wakes.Len(), len(s.slots))
	}
	due := s.due(at.Add(5 * time.Minute))
	if len(due) != 1 || due[0] != last || dueIDs(s, at.Add(time.Hour)) != "[]" {
		t.Fatalf("due %d notes (want the latest state once)", len(due))
	}
}

// An incident acknowledged within the wait was notified at once: its
// resolve, within the wait too, goes out (the receiver would otherwise
// keep it acknowledged for ever), unlike a flap nobody saw.
func TestScheduleResolveWithinWaitAfterAnUrgentNote(t *testing.T) {
	s, done := newSchedule(), settled{}
	s.offer(mkNote("a", "open", t0, false), t0, done.done("open"))
	ack := mkNote("a", "ack", t0.Add(5*time.Second), false)
	ack.urgent = true
	s.offer(ack, t0, done.done("ack"))
	due := s.due(t0.Add(5 * time.Second))
	if len(due) != 1 || due[0] != ack {
		t.Fatalf("the acknowledgement is not due at once: %d notes", len(due))
	}
	s.sent(due[0], t0.Add(5*time.Second), nil)
	res := mkNote("a", "res", t0.Add(20*time.Second), true)
	res.urgent = true
	s.offer(res, t0, done.done("res"))
	if done["res"] != 0 {
		t.Fatalf("the resolve was settled (dropped) at once: settled %v", done)
	}
	due = s.due(t0.Add(20 * time.Second))
	if len(due) != 1 || due[0] != res {
		t.Fatalf("the resolve is not due after the acknowledgement went out: %d notes, settled %v", len(due), done)
	}
	s.sent(due[0], t0.Add(20*time.Second), nil)
	if done["res"] != 1 || s.held() != 0 || dueIDs(s, t0.Add(48*time.Hour)) != "[]" {
		t.Fatalf("after the resolve went out: settled %v, %d held; want nothing held or due", done, s.held())
	}
}

// A resolve within the wait offered while the acknowledgement is being
// sent neither drops nor settles it before its result: when that send
// fails, the acknowledgement's event waits for the resolve, which carries
// the incident's later state, and is settled with its result.
func TestScheduleResolveWithinWaitWhileSending(t *testing.T) {
	s := newSchedule()
	var ackErr, resErr []error
	s.offer(mkNote("a", "open", t0, false), t0, func(error) {})
	ack := mkNote("a", "ack", t0.Add(5*time.Second), false)
	ack.urgent = true
	s.offer(ack, t0, func(err error) { ackErr = append(ackErr, err) })
	due := s.due(t0.Add(5 * time.Second))
	res := mkNote("a", "res", t0.Add(20*time.Second), true)
	res.urgent = true // as Write makes a resolve
	s.offer(res, t0, func(err error) { resErr = append(resErr, err) })
	if len(ackErr) != 0 || len(resErr) != 0 {
		t.Fatalf("settled before the acknowledgement's result: ack %v, resolve %v", ackErr, resErr)
	}
	down := errors.New("receiver down")
	s.sent(due[0], t0.Add(21*time.Second), down)
	if len(ackErr) != 0 {
		t.Fatalf("the acknowledgement's event settled %v by its failed send; want it held by the resolve", ackErr)
	}
	if next := s.dueAfter(due[0], t0.Add(21*time.Second)); next != res {
		t.Fatalf("the resolve is not handed once the acknowledgement's send came back: %v", next)
	}
	s.sent(res, t0.Add(21*time.Second), down)
	if len(ackErr) != 1 || !errors.Is(ackErr[0], down) || len(resErr) != 1 || !errors.Is(resErr[0], down) {
		t.Fatalf("after the resolve failed: ack %v, resolve %v; want both settled with the failure once", ackErr, resErr)
	}
}

// A new state offered while the previous one is out waits for
// group_interval from that send, which is recorded: a redelivery of its
// event is settled at once.
func TestScheduleIntervalAfterASendInFlight(t *testing.T) {
	s, done := newSchedule(), settled{}
	s.offer(mkNote("a", "open", t0, false), t0, done.done("open"))
	at := t0.Add(30 * time.Second)
	out := s.due(at)
	s.offer(mkNote("a", "upd", at.Add(time.Second), false), t0, done.done("upd"))
	// JetStream redelivers the opening while it is being sent.
	s.offer(mkNote("a", "open", t0, false), t0, done.done("open"))
	s.sent(out[0], at, nil)
	if done["open"] != 2 || done["upd"] != 0 {
		t.Fatalf("settled %v after the opening went out; want its event (twice) only", done)
	}
	if next := s.dueAfter(out[0], at.Add(2*time.Second)); next != nil {
		t.Fatalf("%s handed at once after the opening; want it to wait for group_interval", next.eventID)
	}
	if got := dueIDs(s, at.Add(5*time.Minute-time.Second)); got != "[]" {
		t.Fatalf("due within the interval: %s", got)
	}
	if got := dueIDs(s, at.Add(5*time.Minute)); got != "[a/upd#0]" {
		t.Fatalf("due at the interval: %s", got)
	}
	s.offer(mkNote("a", "open", t0, false), t0, done.done("open"))
	if done["open"] != 3 {
		t.Fatalf("a later redelivery of the opening is held: settled %v", done)
	}
}

// Random offers, dues, results and releases: after due(now), no slot has
// anything left to hand out at now (its wake was lost).
func TestScheduleWakesNeverMissASlot(t *testing.T) {
	for seed := int64(0); seed < 300; seed++ {
		rng := rand.New(rand.NewSource(seed))
		s := newSchedule()
		s.max = 8
		now := t0
		var out []*note
		for step := range 400 {
			now = now.Add(time.Duration(rng.Intn(90)) * time.Second)
			switch op := rng.Intn(10); {
			case op < 5:
				n := mkNote(fmt.Sprint("i", rng.Intn(12)), fmt.Sprint("e", step), now, rng.Intn(6) == 0)
				n.timing = Timing{Wait: 30 * time.Second, Interval: 2 * time.Minute, Repeat: 10 * time.Minute}
				n.urgent = rng.Intn(4) == 0
				s.offer(n, now.Add(-time.Duration(rng.Intn(60))*time.Second), func(error) {})
			case op < 8 && len(out) > 0:
				i := rng.Intn(len(out))
				var err error
				if rng.Intn(3) == 0 {
					err = errors.New("receiver down")
				}
				s.sent(out[i], now, err)
				out = slices.Delete(out, i, i+1)
			case op == 9 && rng.Intn(10) == 0:
				s.release(ErrStopping)
				out = nil
			}
			out = append(out, s.due(now)...)
			for k, sl := range s.slots {
				if at, ok := sl.wakeAt(); ok && !now.Before(at) {
					t.Fatalf("seed %d step %d: slot %q due at %s (now %s) left after due", seed, step, k, at, now)
				}
			}
		}
	}
}

// A notifier that gave the opening back at a drain (its lease taken over)
// cannot tell whether another sent it meanwhile: a resolve within the wait
// that reaches it later goes out, or the receiver could keep the incident
// open for ever.
func TestScheduleResolveAfterTheOpeningWentBack(t *testing.T) {
	s, done := newSchedule(), settled{}
	s.offer(mkNote("a", "open", t0, false), t0, done.done("open"))
	s.release(errors.New("stopping"))
	if done["open"] != 1 {
		t.Fatalf("the opening settled %d times at the release, want once", done["open"])
	}
	s.offer(mkNote("a", "res", t0.Add(20*time.Second), true), t0, done.done("res"))
	if got := dueIDs(s, t0.Add(30*time.Second)); got != "[a/res#0]" {
		t.Fatalf("due after the resolve: %s, want the resolve sent", got)
	}
}

// failingInputs (what Processor.hold bounds) counts the inputs of the
// slots whose receiver is failing: a failed try counts its slot's
// inputs, a newer state offered to it and an older one redelivered count
// too, and the count goes back to zero once the slot sent, gave up or
// was released, whatever path: a count that leaked would dead-letter
// every later outage's notifications.
func TestScheduleCountsWhatFailingReceiversHold(t *testing.T) {
	s, done := newSchedule(), settled{}
	want := func(n int, when string) {
		t.Helper()
		if s.failingInputs != n {
			t.Fatalf("%s: %d inputs counted as failing, want %d", when, s.failingInputs, n)
		}
	}
	try := func(id string, now time.Time) *note {
		t.Helper()
		due := s.due(now)
		if len(due) != 1 || due[0].incidentID != id {
			t.Fatalf("due at %v: %s, want %s's note", now, dueIDs(s, now), id)
		}
		return due[0]
	}
	fail := func(n *note, retryAt time.Time) {
		t.Helper()
		if _, _, _, ok := s.failed(n, retryAt); !ok {
			t.Fatal("failed: the note is not handed out")
		}
		s.retry(n, retryAt)
	}
	s.offer(mkNote("a", "open", t0, false), t0, done.done("a/open"))
	s.offer(mkNote("b", "open", t0, false), t0, done.done("b/open"))
	want(0, "offered")
	at := t0.Add(30 * time.Second)
	due := s.due(at)
	if len(due) != 2 {
		t.Fatalf("due %s, want both openings", dueIDs(s, at))
	}
	a, b := due[0], due[1]
	if a.incidentID != "a" {
		a, b = b, a
	}
	// b goes out; a fails, gets an update while out, and is held
	s.offer(mkNote("a", "upd", at.Add(time.Second), false), t0, done.done("a/upd"))
	want(0, "an update offered while the opening is out")
	s.sent(b, at, nil)
	fail(a, at.Add(time.Minute))
	want(2, "a failed with its update pending")
	s.offer(mkNote("a", "open", t0, false), t0, done.done("a/open"))
	want(3, "a's opening redelivered")
	// a's retry fails again, then goes out
	a = try("a", at.Add(time.Minute))
	fail(a, at.Add(2*time.Minute))
	want(3, "a failed again")
	a = try("a", at.Add(2*time.Minute))
	s.sent(a, at.Add(2*time.Minute), nil)
	want(0, "a sent")
	// a fails again and is given up (a permanent error)
	s.offer(mkNote("a", "upd2", at.Add(3*time.Minute), false), t0, done.done("a/upd2"))
	a = try("a", at.Add(8*time.Minute))
	fail(a, at.Add(9*time.Minute))
	want(1, "a's second update failed")
	a = try("a", at.Add(9*time.Minute))
	s.failed(a, at.Add(9*time.Minute))
	s.sent(a, at.Add(9*time.Minute), errs.Permanent(errors.New("held too long")))
	want(0, "a given up")
	// held by a failing receiver at a stop
	s.offer(mkNote("a", "upd3", at.Add(10*time.Minute), false), t0, done.done("a/upd3"))
	fail(try("a", at.Add(15*time.Minute)), at.Add(16*time.Minute))
	want(1, "a's third update failed")
	s.release(ErrStopping)
	want(0, "released")
	if done["a/open"] != 2 || done["a/upd"] != 1 || done["b/open"] != 1 || done["a/upd2"] != 1 || done["a/upd3"] != 1 {
		t.Fatalf("settled %v, want every input once", done)
	}
}
