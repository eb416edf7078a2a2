package notifier

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/bus"
	"github.com/aiops-dev/aiops/pkg/event"
)

// hookLog is a webhook receiver of Alertmanager payloads that records
// every notification it answered 200: the incident, its status and the
// webhook-id (the idempotency key). With a gate, each request first waits
// for a value from it (a slow receiver).
type hookLog struct {
	srv     *httptest.Server
	gate    chan struct{}
	release func() // opens the gate for good
	mu      sync.Mutex
	got     []heard
	// arrived counts requests that came in, answered or still held.
	arrived int
}

type heard struct{ incident, status, key string }

func newHookLog(t *testing.T, gated bool) *hookLog {
	h := &hookLog{release: func() {}}
	if gated {
		h.gate = make(chan struct{})
		h.release = sync.OnceFunc(func() { close(h.gate) })
	}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		h.arrived++
		h.mu.Unlock()
		if h.gate != nil {
			select {
			case <-h.gate:
			case <-r.Context().Done():
				return
			}
		}
		var p struct {
			GroupLabels       map[string]string `json:"groupLabels"`
			CommonAnnotations map[string]string `json:"commonAnnotations"`
		}
		if err := json.Unmarshal(body, &p); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		h.mu.Lock()
		h.got = append(h.got, heard{p.GroupLabels["incident_id"], p.CommonAnnotations["incident_status"], r.Header.Get("webhook-id")})
		h.mu.Unlock()
	}))
	t.Cleanup(func() {
		h.release()
		h.srv.Close()
	})
	return h
}

// arrivals counts the requests that came in, answered or still held.
func (h *hookLog) arrivals() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.arrived
}

// heard lists what the receiver answered, in order.
func (h *hookLog) heard() []heard {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]heard(nil), h.got...)
}

// statuses lists the statuses of incident's notifications, in order.
func (h *hookLog) statuses(incident string) []string {
	var out []string
	for _, n := range h.heard() {
		if n.incident == incident {
			out = append(out, n.status)
		}
	}
	return out
}

// routesTo writes an Alertmanager configuration sending everything to url
// with group_wait wait.
func routesTo(t *testing.T, url, wait string) string {
	t.Helper()
	routes := filepath.Join(t.TempDir(), "alertmanager.yml")
	yml := fmt.Sprintf("route:\n  receiver: hook\n  group_wait: %s\n  group_interval: 5m\nreceivers:\n- name: hook\n  webhook_configs:\n  - url: %s\n", wait, url)
	if err := os.WriteFile(routes, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	return routes
}

// publish stores incident events on the stream, as the correlator does.
func (r *jsRig) publish(es ...*event.Envelope) {
	r.t.Helper()
	for _, e := range es {
		data, err := e.MarshalJSON()
		if err != nil {
			r.t.Fatal(err)
		}
		if _, err := r.js.Publish(context.Background(), e.Subject(), data, jetstream.WithMsgID(e.ID)); err != nil {
			r.t.Fatal(err)
		}
	}
}

// eventually waits until cond holds; what it says when it does not within
// a minute (a safety net, not a timing assertion).
func eventually(t *testing.T, what func() string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("still not done after a minute: %s", what())
		}
	}
}

// A notifier restarted after an incident was notified (and its events
// acked, which happens only once a notification standing for them went
// out) still sends the incident's resolve, although the resolve's event
// time is within group_wait of the opening: whether a flap was notified
// cannot be judged from event times alone. Two ways an incident is
// notified within group_wait are covered: an acknowledgement (which goes
// out at once), and an opening whose group_wait had passed on the
// notifier's clock when its resolve, stamped earlier, arrived.
func TestRestartedNotifierSendsResolveOfNotifiedIncident(t *testing.T) {
	r := newJSRig(t, zerolog.ErrorLevel)
	hook := newHookLog(t, false)
	cfg := Config{Routes: routesTo(t, hook.srv.URL, "1m"), Lease: bus.LeaseConfig{Disabled: true}}
	cfg.Consumer.FetchWait = 50 * time.Millisecond

	now := time.Now().UTC().Truncate(time.Millisecond)
	// acked-inc: opened now, acknowledged a second later: the
	// acknowledgement goes out at once, within group_wait.
	ackedOpen := incidentAt(t, "acked-inc", "db", "dba", event.SeverityCritical, event.IncidentOpened, now, now)
	acked := incidentAt(t, "acked-inc", "db", "dba", event.SeverityCritical, event.IncidentAcknowledged, now, now.Add(time.Second))
	// late-inc: opened two minutes ago; the clock (now) is past its
	// group_wait, so its opening goes out at once. Its resolve, stamped
	// 30s after the opening, reaches the notifier only later (a lagging
	// source).
	lateAt := now.Add(-2 * time.Minute)
	lateOpen := incidentAt(t, "late-inc", "web", "storefront", event.SeverityWarning, event.IncidentOpened, lateAt, lateAt)
	// flap-inc: opened now, waiting for group_wait at the restart (its
	// event handed back), resolved after it.
	flapOpen := incidentAt(t, "flap-inc", "api", "core", event.SeverityWarning, event.IncidentOpened, now, now)

	first, stopFirst := r.start(cfg)
	r.publish(ackedOpen, acked, lateOpen, flapOpen)
	eventually(t, func() string { return fmt.Sprintf("heard %v, consumer %+v", hook.heard(), first.ConsumerStats()) }, func() bool {
		return len(hook.heard()) == 2 && first.ConsumerStats().Acked == 3 && first.ConsumerStats().Delivered == 4
	})
	stopFirst()

	second, stopSecond := r.start(cfg)
	defer stopSecond()
	r.publish(
		incidentAt(t, "acked-inc", "db", "dba", event.SeverityCritical, event.IncidentResolved, now, now.Add(2*time.Second)),
		incidentAt(t, "late-inc", "web", "storefront", event.SeverityWarning, event.IncidentResolved, lateAt, lateAt.Add(30*time.Second)),
		incidentAt(t, "flap-inc", "api", "core", event.SeverityWarning, event.IncidentResolved, now, now.Add(2*time.Second)),
	)
	// The resolves and the flap's opening, handed back at the stop, are
	// acked only once settled: sent, or judged never to need sending.
	eventually(t, func() string { return fmt.Sprintf("consumer %+v", second.ConsumerStats()) }, func() bool {
		return second.ConsumerStats().Acked == 4
	})
	for _, inc := range []string{"acked-inc", "late-inc"} {
		if got := hook.statuses(inc); len(got) != 2 || got[1] != "resolved" {
			t.Errorf("%s: the receiver heard %v; want its notification, then its resolve", inc, got)
		}
	}
	// Whichever of the flap's opening and resolve came first, the receiver
	// heard nothing of it, or its resolve (when the resolve came first:
	// this notifier could not tell whether the opening went out); never
	// an opening not followed by its resolve.
	if got := hook.statuses("flap-inc"); len(got) > 1 || (len(got) == 1 && got[0] != "resolved") {
		t.Errorf("flap-inc: the receiver heard %v; want nothing, or its resolve", got)
	}
}
