package notifier

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/bus"
	"github.com/aiops-dev/aiops/pkg/event"
)

// Incident events waiting in a slow receiver's lane (one being sent, the
// others queued behind it) are held for several ack_waits without being
// redelivered: the notifier tells JetStream they are in progress, and
// stops once they are settled. Each reaches the receiver once.
func TestHeldEventsAreNotRedelivered(t *testing.T) {
	r := newJSRig(t, zerolog.ErrorLevel)
	hook := newHookLog(t, true)
	const ackWait = 2 * time.Second
	cfg := Config{Routes: routesTo(t, hook.srv.URL, "0s"), Lease: bus.LeaseConfig{Disabled: true}}
	cfg.Consumer.FetchWait = 50 * time.Millisecond
	cfg.Consumer.AckWait = ackWait
	cfg.Delivery.RateLimit.Disabled = true
	cfg.Delivery.Timeout = MaxSendTimeout // the receiver holds the request (3 ack_waits)
	svc, stop := r.start(cfg)
	defer stop()
	defer hook.release() // before the stop, which waits for the sends

	now := time.Now().UTC()
	ids := []string{"first", "second", "third"}
	for _, id := range ids {
		r.publish(incidentAt(t, id, "svc-"+id, "team", event.SeverityCritical, event.IncidentOpened, now, now))
	}
	// The first is being sent (held by the receiver), the others queued.
	eventually(t, func() string { return fmt.Sprintf("%d requests, consumer %+v", hook.arrivals(), svc.ConsumerStats()) }, func() bool {
		return hook.arrivals() == 1 && svc.ConsumerStats().Delivered == 3
	})
	// Well past ack_wait, the receiver still holding the first request.
	time.Sleep(3 * ackWait)
	info, err := r.js.Consumer(context.Background(), cfg.WithDefaults().Consumer.Stream, cfg.WithDefaults().Consumer.Durable)
	if err != nil {
		t.Fatal(err)
	}
	ci, err := info.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if n := svc.ConsumerStats().Delivered; n != 3 || ci.NumRedelivered != 0 || ci.NumAckPending != 3 {
		t.Fatalf("while held: %d deliveries, %d redelivered, %d pending; want each of the 3 delivered once, all pending", n, ci.NumRedelivered, ci.NumAckPending)
	}
	if n := svc.ConsumerStats().InProgress; n < 3 {
		t.Fatalf("%d in-progress signals for the 3 held events, want each told at least once", n)
	}

	hook.release()
	eventually(t, func() string { return fmt.Sprintf("consumer %+v", svc.ConsumerStats()) }, func() bool {
		return svc.ConsumerStats().Acked == 3
	})
	told := svc.ConsumerStats().InProgress
	time.Sleep(ackWait) // past the next checks
	if got := svc.ConsumerStats().InProgress; got != told {
		t.Fatalf("%d in-progress signals after the events were acked, want none", got-told)
	}
	if n := svc.ConsumerStats().Delivered; n != 3 {
		t.Fatalf("%d deliveries, want 3", n)
	}
	keys := map[string]string{}
	for _, n := range hook.heard() {
		if other, ok := keys[n.key]; ok || n.key == "" {
			t.Fatalf("webhook-id %q for %s and %s", n.key, other, n.incident)
		}
		keys[n.key] = n.incident
	}
	for _, id := range ids {
		if got := hook.statuses(id); len(got) != 1 {
			t.Errorf("%s notified %d times, want once", id, len(got))
		}
	}
}

// An incident event its route's group_wait holds for several ack_waits
// is not redelivered meanwhile: the notifier tells it in progress. So
// ack_wait need not cover the timers (TestAckWaitIsAMinuteWhateverTheTimers).
func TestEventHeldByItsGroupWaitIsNotRedelivered(t *testing.T) {
	r := newJSRig(t, zerolog.ErrorLevel)
	hook := newHookLog(t, false)
	const ackWait = time.Second
	cfg := Config{Routes: routesTo(t, hook.srv.URL, "4s"), Lease: bus.LeaseConfig{Disabled: true}}
	cfg.Consumer.FetchWait = 50 * time.Millisecond
	cfg.Consumer.AckWait = ackWait
	svc, stop := r.start(cfg)
	defer stop()
	now := time.Now().UTC()
	r.publish(incidentAt(t, "waits", "svc-waits", "team", event.SeverityCritical, event.IncidentOpened, now, now))
	eventually(t, func() string { return fmt.Sprintf("%d notifications", len(hook.heard())) }, func() bool { return len(hook.heard()) == 1 })
	info, err := r.js.Consumer(context.Background(), cfg.WithDefaults().Consumer.Stream, cfg.WithDefaults().Consumer.Durable)
	if err != nil {
		t.Fatal(err)
	}
	ci, err := info.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if n := svc.ConsumerStats().Delivered; n != 1 || ci.NumRedelivered != 0 || svc.ConsumerStats().InProgress == 0 {
		t.Fatalf("held by a 4s group_wait with a 1s ack_wait: %d deliveries, %d redelivered, %d in-progress signals; want one delivery, told in progress",
			n, ci.NumRedelivered, svc.ConsumerStats().InProgress)
	}
}
