package correlator

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/bus"
	"github.com/aiops-dev/aiops/pkg/errs"
	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/pkg/stage"
	"github.com/aiops-dev/aiops/pkg/stage/stagetest"
	"github.com/aiops-dev/aiops/pkg/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

var t0 = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

const catalogYAML = `
services:
  web:         {team: storefront, depends_on: [checkout]}
  checkout:    {team: payments, runbook: https://runbooks/checkout, depends_on: [payments-db]}
  payments-db: {team: dba, runbook: https://runbooks/pg}
  search:      {team: discovery}
  mobile:      {team: mobile, depends_on: [checkout]}
`

func writeCatalog(t testing.TB) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "catalog.yaml")
	if err := os.WriteFile(p, []byte(catalogYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// alertEvent is an alert as the ingest gateway's Alertmanager decoder
// makes it: time = startsAt (endsAt when resolved), Alertmanager's
// fingerprint.
func alertEvent(t testing.TB, name, service string, startsAt time.Duration, resolvedAt time.Duration) *event.Envelope {
	t.Helper()
	body := event.AlertBody{Name: name, Status: event.AlertFiring, StartsAt: t0.Add(startsAt), Annotations: map[string]string{"summary": name + " on " + service}}
	at := body.StartsAt
	if resolvedAt > 0 {
		body.Status, body.EndsAt = event.AlertResolved, t0.Add(resolvedAt)
		at = body.EndsAt
	}
	e, err := event.New(event.KindAlert, service, at, body)
	if err != nil {
		t.Fatal(err)
	}
	e.Labels = map[string]string{"alertname": name, "service": service, "severity": "critical"}
	e.Severity = event.SeverityCritical
	e.Fingerprint = event.Fingerprint(event.KindAlert, service, e.Labels, nil)[:16]
	e.ID = event.DerivedID(at, e.Fingerprint, body.Status)
	return e
}

// clock is a wall clock tests move by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

func TestProcessorTurnsAStormIntoIncidents(t *testing.T) {
	wall := &clock{t: t0}
	proc, err := NewProcessor(Config{Catalog: writeCatalog(t)}, zerolog.Nop(), wall.now)
	if err != nil {
		t.Fatal(err)
	}
	h := stagetest.Start(t, proc, stage.Config{TickEvery: time.Second})
	storm := []*event.Envelope{
		alertEvent(t, "HighLatency", "web", 0, 0),
		alertEvent(t, "HighErrorRate", "checkout", 10*time.Second, 0),
		alertEvent(t, "ReplicationLag", "payments-db", 30*time.Second, 0),
		alertEvent(t, "HighLatency", "search", 31*time.Second, 0), // unrelated
	}
	for i, r := range h.Feed(storm...) {
		if r.Outcome != stagetest.Acked {
			t.Fatalf("alert %d: %v %v", i, r.Outcome, r.Err)
		}
	}
	if r := h.Feed(mustMetric(t))[0]; r.Outcome != stagetest.Acked {
		t.Fatalf("a metric sample: %v, want acked and ignored", r.Outcome)
	}
	opened := incidentEvents(t, h, "opened")
	if len(opened) != 2 {
		t.Fatalf("%d incidents opened, want 2 (the cascade and search)", len(opened))
	}
	// Everything resolves; with no signal for a while the wall clock moves
	// event time on and the incidents resolve.
	wall.set(t0.Add(3 * time.Minute)) // when the resolutions are sent
	h.Feed(alertEvent(t, "HighLatency", "web", 0, 2*time.Minute), alertEvent(t, "HighErrorRate", "checkout", 10*time.Second, 2*time.Minute),
		alertEvent(t, "ReplicationLag", "payments-db", 30*time.Second, 3*time.Minute), alertEvent(t, "HighLatency", "search", 31*time.Second, 3*time.Minute))
	for i := 1; i <= 400; i++ {
		wall.set(t0.Add(3*time.Minute + time.Duration(i)*time.Second))
		if err := h.Tick(wall.now()); err != nil {
			t.Fatal(err)
		}
	}
	resolved := incidentEvents(t, h, "resolved")
	if len(resolved) != 2 {
		t.Fatalf("%d incidents resolved after idling, want 2", len(resolved))
	}
	var cascade event.IncidentBody
	for _, e := range resolved {
		if e.Service == "payments-db" {
			if err := e.DecodeBody(&cascade); err != nil {
				t.Fatal(err)
			}
		}
	}
	if cascade.Team != "dba" || !strings.HasPrefix(cascade.Title, "ReplicationLag on payments-db and 2 more services") {
		t.Fatalf("cascade incident %+v, want it named after its root with the root's team", cascade)
	}
}

// A state restored while all is quiet (a restart, another instance taking
// over) still resolves its incidents: the quiet counts from the term's
// first tick, not from a signal that may never come.
func TestRestoredIncidentsResolveWhileAllIsQuiet(t *testing.T) {
	for _, restart := range []bool{false, true} {
		wall := &clock{t: t0}
		proc, err := NewProcessor(Config{Catalog: writeCatalog(t)}, zerolog.Nop(), wall.now)
		if err != nil {
			t.Fatal(err)
		}
		h := stagetest.Start(t, proc, stage.Config{TickEvery: time.Second})
		h.Feed(alertEvent(t, "HighLatency", "search", 0, 0))
		wall.set(t0.Add(2 * time.Minute))
		h.Feed(alertEvent(t, "HighLatency", "search", 0, 2*time.Minute)) // resolved: the quiet period begins
		if restart {
			st, err := proc.snapshot()
			if err != nil {
				t.Fatal(err)
			}
			if proc, err = NewProcessor(Config{Catalog: writeCatalog(t)}, zerolog.Nop(), wall.now); err != nil {
				t.Fatal(err)
			}
			if err := proc.restore(st.data); err != nil {
				t.Fatal(err)
			}
			h = stagetest.Start(t, proc, stage.Config{TickEvery: time.Second})
		}
		for i := 1; i <= 900; i++ {
			wall.set(t0.Add(2*time.Minute + time.Duration(i)*time.Second))
			if err := h.Tick(wall.now()); err != nil {
				t.Fatal(err)
			}
		}
		if n := len(incidentEvents(t, h, "resolved")); n != 1 {
			t.Errorf("restarted %v: %d incidents resolved after 15 quiet minutes, want 1", restart, n)
		}
	}
}

func mustMetric(t testing.TB) *event.Envelope {
	v := 1.0
	e, err := event.New(event.KindMetric, "web", t0, event.MetricBody{Name: "up", Value: &v})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func incidentEvents(t testing.TB, h *stagetest.Harness, status string) []*event.Envelope {
	t.Helper()
	var out []*event.Envelope
	for _, e := range h.Pub.Events(t) {
		var b event.IncidentBody
		if err := e.DecodeBody(&b); err != nil {
			t.Fatal(err)
		}
		if e.Kind == event.KindIncident && b.Status == status {
			out = append(out, e)
		}
	}
	return out
}

func TestConfigErrors(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "cat.yaml")
	os.WriteFile(bad, []byte("services:\n  a: {depends_on: [b, \" \"]}\n  b: {}\n"), 0o600)
	if err := (Config{Catalog: bad}).Validate(); err == nil || !strings.Contains(err.Error(), `correlator.catalog`) || !strings.Contains(err.Error(), `services.a.depends_on[1]: an empty name`) {
		t.Fatalf("bad catalog: %v", err)
	}
	if err := (Config{IdleAdvance: -time.Second}).Validate(); err == nil || !strings.Contains(err.Error(), "correlator.idle_advance") {
		t.Fatalf("negative idle_advance: %v", err)
	}
	// Partitions sharing one durable (or one state) would stand by for
	// each other and each keep only its share of the signals.
	for _, c := range []Config{
		{Partition: PartitionConfig{Count: 3, Index: 1}, Consumer: bus.ConsumerConfig{Durable: "correlator"}},
		{Partition: PartitionConfig{Count: 3, Index: 1}, State: StateConfig{Key: "state"}},
	} {
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "partition.count 3") {
			t.Fatalf("partitions with a durable or state key of their own: %v", err)
		}
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
}

// An incident event an input made is kept for the checkpoint's outbox
// until stored: at once when its publish succeeds, or when the input's
// redelivery sends it again after a failure (it used to stay, and go out
// again after every restart).
func TestEventInFlightIsForgottenOnceStored(t *testing.T) {
	proc, err := NewProcessor(Config{Catalog: writeCatalog(t)}, zerolog.Nop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	proc.inFlight = &stage.InFlight{} // as with a state store
	flying := func() int {
		st, err := proc.snapshot()
		if err != nil {
			t.Fatal(err)
		}
		return len(st.flying)
	}
	h := stagetest.Start(t, proc, stage.Config{TickEvery: time.Second})
	web := alertEvent(t, "HighLatency", "web", 0, 0)
	h.Pub.FailNext(1)
	if r := h.Feed(web)[0]; r.Outcome != stagetest.Naked {
		t.Fatalf("the opening's publish failed: %v, want naked", r.Outcome)
	}
	if n := flying(); n != 1 {
		t.Fatalf("%d events in flight after the failed publish, want the opening", n)
	}
	if r := h.Feed(web)[0]; r.Outcome != stagetest.Acked {
		t.Fatalf("the redelivery: %v %v", r.Outcome, r.Err)
	}
	if n := flying(); n != 0 {
		t.Fatalf("%d events in flight once the redelivery stored the opening, want none", n)
	}
	if r := h.Feed(alertEvent(t, "HighLatency", "search", 5*time.Second, 0))[0]; r.Outcome != stagetest.Acked || flying() != 0 {
		t.Fatalf("an opening stored at once: %v, %d in flight", r.Outcome, flying())
	}
}

// A producer publishing straight to NATS with its clock far ahead sets an
// observed time in the future: trusted, it made every later report of its
// alert (the resolution observed by the gateway) look older, old news, and
// the incident stayed open for ever. An observed time more than an hour
// ahead of the correlator's clock is not trusted: the alert is judged by
// its own times, and its resolution resolves it.
func TestObservedTimeFarAheadIsNotTrusted(t *testing.T) {
	wall := &clock{t: t0.Add(time.Minute)}
	proc, err := NewProcessor(Config{Catalog: writeCatalog(t)}, zerolog.Nop(), wall.now)
	if err != nil {
		t.Fatal(err)
	}
	h := stagetest.Start(t, proc, stage.Config{TickEvery: time.Second})
	firing := alertEvent(t, "HighLatency", "search", 0, 0)
	firing.ObservedTime = time.Date(2105, 1, 1, 0, 0, 0, 0, time.UTC)
	end := alertEvent(t, "HighLatency", "search", 0, 2*time.Minute)
	end.ObservedTime = t0.Add(2 * time.Minute)
	for i, r := range h.Feed(firing, end) {
		if r.Outcome != stagetest.Acked {
			t.Fatalf("event %d: %v %v", i, r.Outcome, r.Err)
		}
	}
	for i := 1; i <= 600; i++ {
		wall.set(t0.Add(2*time.Minute + time.Duration(i)*time.Second))
		if err := h.Tick(wall.now()); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(incidentEvents(t, h, "resolved")); n != 1 {
		t.Fatalf("%d incidents resolved (%d opened), want the one its alert opened: the resolution was taken for old news", n, len(incidentEvents(t, h, "opened")))
	}
}

// A producer publishing straight to NATS with its clock far ahead sets a
// time in the future: taken, it became the correlator's watermark (the
// latest event time), so every incident's quiet period and reopen window
// passed at once, and kept passing (the snapshot keeps the watermark):
// an anomaly's incident resolved, and each later anomaly of the series
// opened one more that resolved at once. An event timed more than an
// hour ahead of the correlator's clock is refused, as the gateway
// refuses it, naming its time.
func TestEventTimedFarAheadIsRefused(t *testing.T) {
	wall := &clock{t: t0.Add(time.Minute)}
	proc, err := NewProcessor(Config{Catalog: writeCatalog(t)}, zerolog.Nop(), wall.now)
	if err != nil {
		t.Fatal(err)
	}
	h := stagetest.Start(t, proc, stage.Config{TickEvery: time.Second})
	anomaly := func(at time.Duration) *event.Envelope {
		v, score := 900.0, 0.99
		e, err := event.New(event.KindAnomaly, "search", t0.Add(at), event.AnomalyBody{
			Series: "latency-search", Metric: "latency", Value: &v, Expected: 100, Upper: 200, Score: &score, Detector: "robust_z"})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	ahead := alertEvent(t, "Down", "batch", 0, 0)
	ahead.Time = time.Date(2105, 1, 1, 0, 0, 0, 0, time.UTC)
	in := []*event.Envelope{anomaly(0), ahead}
	// Off for 5 minutes (rules.anomaly_wait): a lone anomaly opens its incident.
	for i := 1; i <= 10; i++ {
		in = append(in, anomaly(time.Duration(i)*30*time.Second))
	}
	for i, r := range h.Feed(in...) {
		switch {
		case in[i] != ahead && r.Outcome != stagetest.Acked:
			t.Fatalf("event %d: %v %v", i, r.Outcome, r.Err)
		case in[i] == ahead && (r.Outcome != stagetest.DeadLettered || !strings.Contains(fmt.Sprint(r.Err), "2105-01-01T00:00:00Z")):
			t.Fatalf("the event timed in 2105: %v %v, want it dead-lettered naming its time", r.Outcome, r.Err)
		}
	}
	if opened, resolved := len(incidentEvents(t, h, "opened")), len(incidentEvents(t, h, "resolved")); opened != 1 || resolved != 0 {
		t.Fatalf("%d incidents opened, %d resolved; want the anomaly's one, open", opened, resolved)
	}
}

// A NATS command names its incident by its subject; one whose body names
// another incident is ambiguous, and is refused (dead-lettered) with both
// ids: it used to apply to the body's, so that a command published for
// one incident resolved another. A message of two commands is refused
// too: the second was dropped unseen.
func TestNATSCommandNamingAnotherIncidentIsRefused(t *testing.T) {
	proc, err := NewProcessor(Config{Catalog: writeCatalog(t)}, zerolog.Nop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	h := stagetest.Start(t, proc, stage.Config{TickEvery: time.Second})
	h.Feed(alertEvent(t, "HighLatency", "web", 0, 0), alertEvent(t, "HighLatency", "search", time.Second, 0))
	var ids []string
	for _, st := range proc.Incidents() {
		ids = append(ids, st.IncidentID)
	}
	if len(ids) != 2 {
		t.Fatalf("%d incidents, want 2", len(ids))
	}
	s := &Service{proc: proc, log: zerolog.Nop()}
	for i, tc := range []struct {
		name, body string
		refused    bool
	}{
		{"another incident in the body", `{"incident_id":"` + ids[1] + `","action":"resolve","by":"ana"}`, true},
		{"the subject's incident in the body", `{"incident_id":"` + ids[0] + `","action":"comment","by":"ana","text":"looking"}`, false},
		{"no incident in the body", `{"action":"comment","by":"ana","text":"still looking"}` + "\n", false},
		// two commands in one message: the second was dropped unseen
		{"a second command after it", `{"action":"comment","by":"ana","text":"one"} {"action":"resolve","by":"ana"}`, true},
		// not JSON: the reason names the byte, as the API's 400 does,
		// not Go's "invalid character 'a' looking for beginning of value"
		{"not JSON", `ack by ana`, true},
	} {
		done := make(chan error, 1)
		go func() {
			done <- s.command(context.Background(), &bus.Delivery{Subject: event.IncidentCommandSubject(ids[0]), Data: []byte(tc.body), StreamSeq: uint64(i + 1), Published: t0})
		}()
		var err error
	wait:
		for {
			select {
			case err = <-done:
				break wait
			default:
				if err := h.Tick(time.Now()); err != nil {
					t.Fatal(err)
				}
			}
		}
		if tc.refused {
			if !errs.IsPermanent(err) || !strings.Contains(fmt.Sprint(err), ids[0]) || i == 0 && !strings.Contains(fmt.Sprint(err), ids[1]) {
				t.Errorf("%s: %v, want it refused naming the subject (and the body's incident)", tc.name, err)
			}
			if tc.name == "not JSON" && !strings.Contains(fmt.Sprint(err), "not JSON at byte 0") {
				t.Errorf("%s: %v, want the reason to say where it is not JSON", tc.name, err)
			}
		} else if err != nil {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	if n := len(incidentEvents(t, h, "resolved")); n != 0 {
		t.Errorf("%d incidents resolved by a command refused", n)
	}
}
