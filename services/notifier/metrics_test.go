package notifier

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// Each integration's notifications are counted by receiver, integration
// and outcome, and what a receiver that cannot be reached holds is shown:
// an operator alerts on them as on Alertmanager's
// alertmanager_notifications_failed_total.
func TestNotificationsAreCountedByReceiverIntegrationAndOutcome(t *testing.T) {
	hook := newCounter(t, http.StatusServiceUnavailable) // down at first
	h, proc, move := heldRigWith(t, hook.srv.URL, func(*Config) {})
	count := func(outcome string) float64 {
		return testutil.ToFloat64(proc.m.notifications.WithLabelValues("hook", "webhook_configs[0]", outcome))
	}
	e := incident(t, "web")
	held := h.Send(e)
	waitSent(t, proc)
	if count(outcomeFailed) != 1 || count(outcomeSent) != 0 {
		t.Fatalf("failed %v, sent %v; want the one failure", count(outcomeFailed), count(outcomeSent))
	}
	if got := testutil.ToFloat64(proc.m.held); got != 1 {
		t.Fatalf("held events %v, want 1", got)
	}
	if got := testutil.ToFloat64(proc.m.heldBytes); got != float64(len(e.Body)) {
		t.Fatalf("held bytes %v, want the event's %d", got, len(e.Body))
	}
	move(61 * time.Minute) // the breaker's cool-down passed: sent
	resultOf(t, held)
	if count(outcomeSent) != 1 || testutil.ToFloat64(proc.m.held) != 0 || testutil.ToFloat64(proc.m.heldBytes) != 0 {
		t.Fatalf("sent %v, held %v (%v bytes); want it sent and nothing held", count(outcomeSent), testutil.ToFloat64(proc.m.held), testutil.ToFloat64(proc.m.heldBytes))
	}

	refusing := newCounter(t, http.StatusBadRequest)
	h, proc, _ = heldRigWith(t, refusing.srv.URL, func(*Config) {})
	h.Send(incident(t, "web"))
	waitSent(t, proc)
	if got := testutil.ToFloat64(proc.m.notifications.WithLabelValues("hook", "webhook_configs[0]", outcomeRefused)); got != 1 {
		t.Fatalf("refused %v, want 1", got)
	}
	// Registered as the service registers it, under the names documented.
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(proc.m.collector())
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP aiops_notifier_held_events Incident events held for receivers that cannot be reached (bounded by delivery.max_held_bytes and half of consumer.max_ack_pending).
# TYPE aiops_notifier_held_events gauge
aiops_notifier_held_events 0
`), "aiops_notifier_held_events"); err != nil {
		t.Fatal(err)
	}
	if n, err := testutil.GatherAndCount(reg, "aiops_notifier_notifications_total", "aiops_notifier_notification_duration_seconds", "aiops_notifier_held_bytes"); err != nil || n != 3 {
		t.Fatalf("%d series of the notifier's metrics gathered (%v), want 3", n, err)
	}
}
