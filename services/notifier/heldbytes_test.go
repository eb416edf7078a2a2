package notifier

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aiops-dev/aiops/pkg/correlate"
	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/pkg/stage/stagetest"
)

// stormMembers are the members of a storm's incident: 1,900 with a dozen
// labels each, which make an incident event near event.MaxBodyBytes.
func stormMembers(at time.Time) []correlate.Member {
	var ms []correlate.Member
	for i := range 1900 {
		labels := map[string]string{"alertname": "Down", "service": "db"}
		for j := range 10 {
			labels[fmt.Sprintf("label_%02d", j)] = fmt.Sprintf("value-%04d-%02d", i, j)
		}
		ms = append(ms, correlate.Member{Fingerprint: fmt.Sprint("fp-", i), Kind: correlate.SignalAlert,
			Service: "db", Name: "Down", Severity: event.SeverityCritical, Firing: true, FirstSeen: at, LastSeen: at, Labels: labels})
	}
	return ms
}

// largeIncident is the opening of incident id with members, as the
// correlator publishes it; its body must be near the limit.
func largeIncident(t *testing.T, id string, members []correlate.Member, at time.Time) *event.Envelope {
	t.Helper()
	st := correlate.State{IncidentID: id, Status: event.IncidentOpened, State: correlate.StatusOpen, Title: "down: db", Team: "dba",
		Service: "db", Severity: event.SeverityCritical, OpenedAt: at, LastEvent: at, Services: []string{"db"},
		MemberCount: len(members), Members: members}
	e, err := correlate.Envelope(correlate.Update{Transition: event.IncidentOpened, Time: at, State: st}, at)
	if err != nil {
		t.Fatal(err)
	}
	if len(e.Body) < event.MaxBodyBytes*9/10 {
		t.Fatalf("incident event of %d bytes, want one near the limit of %d", len(e.Body), event.MaxBodyBytes)
	}
	return e
}

// heapInUse is the live heap after a collection.
func heapInUse() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// counter is a receiver that answers its first request with a status,
// then 200, and counts them (keeping no body: the test weighs the heap).
type counter struct {
	srv      *httptest.Server
	requests atomic.Int64
}

func newCounter(t *testing.T, first int) *counter {
	c := &counter{}
	c.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if c.requests.Add(1) == 1 {
			w.WriteHeader(first)
		}
	}))
	t.Cleanup(c.srv.Close)
	return c
}

// stormFlood sends incidents large incident events, each of its own
// incident, to a notifier (heldRigWith, max_held_bytes budget) whose
// receiver answers status, and returns what the heap grew by once each
// was tried, with the events' results and the notifier.
func stormFlood(t *testing.T, status, incidents, budget int) (grown int64, held []*stagetest.Held, proc *Processor, hook *counter, move func(time.Duration)) {
	t.Helper()
	hook = newCounter(t, status)
	h, proc, move := heldRigWith(t, hook.srv.URL, func(cfg *Config) { cfg.Delivery.MaxHeldBytes = budget })
	now := time.Now()
	members := stormMembers(now)
	before := heapInUse()
	held = make([]*stagetest.Held, incidents)
	for i := range held {
		held[i] = h.Send(largeIncident(t, fmt.Sprint("storm-", i), members, now))
		waitSent(t, proc)
	}
	return heapInUse() - before, held, proc, hook, move
}

// A receiver down through a flood of a storm's incidents, each event
// near the 512 KiB body limit, holds at most notifier.delivery.max_held_bytes
// of them: past it, a notification that fails is dead-lettered at once,
// the reason naming the key and aiops notify replay. Bounded only by
// their count (half of max_ack_pending, 10,000 by default) they held
// 0.5 MB each, 5 GB at the default, besides what the schedule keeps of
// every incident it notified (its last state, decoded, for repeats),
// which the same flood to a receiver that takes every one measures.
// Nothing is lost: once the receiver is back it gets each held incident,
// the rest are dead letters.
func TestFloodOfLargeIncidentsHeldWithinMaxHeldBytes(t *testing.T) {
	const budget, incidents = 4 << 20, 100
	// The same flood delivered, nothing held: what the schedule keeps.
	kept, _, _, _, _ := stormFlood(t, http.StatusOK, incidents, budget)
	grown, held, proc, hook, move := stormFlood(t, http.StatusServiceUnavailable, incidents, budget)
	proc.mu.Lock()
	heldBytes, heldInputs := proc.schedule.failingBytes, proc.schedule.failingInputs
	proc.mu.Unlock()
	t.Logf("%d incident events near 512 KiB: %d held (%d bytes); the heap grew by %d MiB, %d MiB when none was held",
		incidents, heldInputs, heldBytes, grown>>20, kept>>20)
	if heldBytes > budget || heldInputs == 0 {
		t.Fatalf("%d events held, %d bytes; want some, at most max_held_bytes (%d)", heldInputs, heldBytes, budget)
	}
	if grown-kept > 4*budget {
		t.Errorf("holding %d bytes of incident events took %d MiB of heap, want at most %d MiB", heldBytes, (grown-kept)>>20, 4*budget>>20)
	}
	var dead int
	for i, hd := range held {
		r, settled := hd.Result()
		if !settled {
			continue
		}
		if r.Outcome != stagetest.DeadLettered || !errors.Is(r.Err, ErrHeldTooLong) ||
			!strings.Contains(r.Err.Error(), "pass notifier.delivery.max_held_bytes (4194304)") || !strings.Contains(r.Err.Error(), "aiops notify replay") {
			t.Fatalf("storm-%d: %v %v; want it held, or dead-lettered naming max_held_bytes and aiops notify replay", i, r.Outcome, r.Err)
		}
		dead++
	}
	if dead != incidents-heldInputs {
		t.Fatalf("%d dead letters, %d held, want every one of %d either", dead, heldInputs, incidents)
	}

	move(61 * time.Minute) // past the breaker's cool-down: the receiver is back
	acked := 0
	for i, hd := range held {
		switch r := resultOf(t, hd); r.Outcome {
		case stagetest.Acked:
			acked++
		case stagetest.DeadLettered:
		default:
			t.Fatalf("storm-%d: %v %v", i, r.Outcome, r.Err)
		}
	}
	if acked != heldInputs {
		t.Fatalf("%d acked once the receiver was back, want the %d held", acked, heldInputs)
	}
	if delivered := int(hook.requests.Load()) - 1; delivered != heldInputs { // the first failed; the breaker refused the others without a request
		t.Fatalf("the receiver took %d notifications, want the %d held", delivered, heldInputs)
	}
	proc.mu.Lock()
	defer proc.mu.Unlock()
	if proc.schedule.failingBytes != 0 || proc.schedule.failingInputs != 0 {
		t.Errorf("%d events, %d bytes still counted as held, want none", proc.schedule.failingInputs, proc.schedule.failingBytes)
	}
}

// notifier.delivery.max_held_bytes is 64 MiB unless set, and at least
// one incident event of the largest size.
func TestMaxHeldBytesAtLeastOneLargestEvent(t *testing.T) {
	if got := DefaultConfig().Delivery.MaxHeldBytes; got != 64<<20 {
		t.Fatalf("default max_held_bytes %d, want 64 MiB", got)
	}
	cfg := Config{}
	cfg.Delivery.MaxHeldBytes = 1000
	if err := cfg.Validate(); !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "notifier.delivery.max_held_bytes 1000: at least 524288") {
		t.Fatalf("max_held_bytes 1000: %v", err)
	}
}

// A resolved incident's slot stays (to tell a stale state redelivered
// after the resolve), but never repeats: it keeps what it sent last
// without the decoded incident. A flood of large incidents, opened and
// resolved, kept every one decoded until MaxSlots (100,000 a route) or
// its stream's max_age forgot it: about 2 MB each here.
func TestResolvedIncidentsKeepNoDecodedState(t *testing.T) {
	const incidents = 40
	hook := newCounter(t, http.StatusOK)
	h, proc, move := heldRigWith(t, hook.srv.URL, func(cfg *Config) { cfg.Delivery.RateLimit.Disabled = true }) // its clock stands still
	now := time.Now()
	members := stormMembers(now)
	var held []*stagetest.Held
	given.Store(0)
	before := heapInUse()
	for i := range incidents {
		open := largeIncident(t, fmt.Sprint("storm-", i), members, now)
		held = append(held, sendAndWait(t, h, proc, open))
		var st correlate.State
		if err := json.Unmarshal(open.Body, &st); err != nil {
			t.Fatal(err)
		}
		at := now.Add(time.Minute)
		st.Status, st.State, st.ResolvedAt, st.LastEvent, st.Revision = event.IncidentResolved, correlate.StatusResolved, at, at, 2
		resolved, err := correlate.Envelope(correlate.Update{Transition: event.IncidentResolved, Time: at, State: st}, at)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, sendAndWait(t, h, proc, resolved))
	}
	move(time.Second)
	for i, hd := range held {
		r, ok := hd.Result()
		if !ok || r.Outcome != stagetest.Acked {
			t.Fatalf("event %d: settled %v: %v %v (%d requests)", i, ok, r.Outcome, r.Err, hook.requests.Load())
		}
	}
	held = nil
	// The harness keeps every input it was given (it counts the attempts
	// of each): not the notifier's.
	kept := heapInUse() - before - int64(given.Load())
	t.Logf("%d large incidents opened and resolved: the heap kept %d KiB", incidents, kept>>10)
	if got := hook.requests.Load(); got != 2*incidents {
		t.Fatalf("the receiver took %d notifications, want %d", got, 2*incidents)
	}
	if kept > incidents*event.MaxBodyBytes/4 {
		t.Fatalf("the heap kept %d MiB for %d resolved incidents, want their decoded states gone", kept>>20, incidents)
	}
}

// given counts the bytes of the inputs sendAndWait gave.
var given atomic.Int64

// sendAndWait sends e and waits until what it made due went out.
func sendAndWait(t *testing.T, h *stagetest.Harness, proc *Processor, e *event.Envelope) *stagetest.Held {
	t.Helper()
	data, _ := e.MarshalJSON()
	given.Add(int64(len(data)))
	held := h.Send(e)
	waitSent(t, proc)
	return held
}
