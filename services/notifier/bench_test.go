package notifier

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/bus"
	"github.com/aiops-dev/aiops/pkg/correlate"
	"github.com/aiops-dev/aiops/pkg/event"
)

// The benchmarks below put incident events on a real JetStream and time
// each from its publish to the moment a local webhook receiver has it,
// beside the same path without the notifier (publish → a plain consumer)
// in the same run:
//
//	go test ./services/notifier -run '^$' -bench Latency -benchtime 3000x
//
// They report p50 and p99 latency in ms, notifications/s and the p99
// ratio to raw JetStream.

// incidentEvent is the opened event of incident n, as the correlator
// publishes it.
func incidentEvent(b testing.TB, n int, at time.Time) *event.Envelope {
	return incidentStateEvent(b, n, event.IncidentOpened, at, at)
}

// incidentStateEvent is the event of incident n, opened at opened, that
// announces transition at at: its opening (revision 0), or a later state
// (revision 1) with the same labels, as a member's change or an
// acknowledgement leaves them.
func incidentStateEvent(b testing.TB, n int, transition string, opened, at time.Time) *event.Envelope {
	id := fmt.Sprintf("inc-%08d", n)
	svc := fmt.Sprintf("svc-%d", n%50)
	st := correlate.State{IncidentID: id, Status: transition, State: correlate.StatusOpen, Title: "HighLatency on " + svc,
		Service: svc, Severity: event.SeverityCritical, OpenedAt: opened, LastEvent: at, Services: []string{svc}, Firing: 1, MemberCount: 1,
		Members: []correlate.Member{{Fingerprint: "fp-" + id, Kind: correlate.SignalAlert, Service: svc, Name: "HighLatency",
			Severity: event.SeverityCritical, Firing: true, FirstSeen: opened, LastSeen: at}}}
	switch transition {
	case event.IncidentUpdated:
		st.Revision = 1
	case event.IncidentAcknowledged:
		st.Revision, st.State, st.AcknowledgedAt, st.AcknowledgedBy = 1, correlate.StatusAcknowledged, at, "ana"
	}
	e, err := correlate.Envelope(correlate.Update{Transition: correlate.Transition(transition), Time: at, State: st}, at)
	if err != nil {
		b.Fatal(err)
	}
	return e
}

// latencies collects publish→arrival times by incident id.
type latencies struct {
	mu   sync.Mutex
	sent map[string]time.Time
	got  []time.Duration
	done chan struct{}
	want int
}

func newLatencies(want int) *latencies {
	return &latencies{sent: map[string]time.Time{}, done: make(chan struct{}), want: want}
}

func (l *latencies) publish(id string) {
	l.mu.Lock()
	l.sent[id] = time.Now()
	l.mu.Unlock()
}

func (l *latencies) arrived(id string) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	t0, ok := l.sent[id]
	if !ok {
		return
	}
	delete(l.sent, id)
	l.got = append(l.got, now.Sub(t0))
	if len(l.got) == l.want {
		close(l.done)
	}
}

// expect starts l over for want more arrivals.
func (l *latencies) expect(want int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.got, l.done, l.want = nil, make(chan struct{}), want
}

func (l *latencies) report(b *testing.B, prefix string, elapsed time.Duration) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	slices.Sort(l.got)
	q := func(p float64) time.Duration { return l.got[min(len(l.got)-1, int(p*float64(len(l.got))))] }
	b.ReportMetric(float64(q(0.5).Microseconds())/1000, prefix+"p50-ms")
	b.ReportMetric(float64(q(0.99).Microseconds())/1000, prefix+"p99-ms")
	b.ReportMetric(float64(len(l.got))/elapsed.Seconds(), prefix+"msgs/s")
	return q(0.99)
}

type benchRig struct{ *jsRig }

func newBenchRig(b *testing.B) *benchRig { return &benchRig{newJSRig(b, zerolog.Disabled)} }

// publish sends n incident events, paced at rate per second (0: as fast
// as the stream takes them), and waits for l to have them all.
func (r *benchRig) publish(b *testing.B, l *latencies, n, rate int) time.Duration {
	events := make([]*event.Envelope, n)
	now := time.Now().UTC()
	for i := range events {
		events[i] = incidentEvent(b, i, now)
	}
	b.ResetTimer()
	elapsed := r.send(b, l, events, rate)
	b.StopTimer()
	return elapsed
}

// send publishes events, paced at rate per second (0: as fast as the
// stream takes them), and waits for l to have them all: the time that
// took.
func (r *benchRig) send(b *testing.B, l *latencies, events []*event.Envelope, rate int) time.Duration {
	data := make([][]byte, len(events))
	for i, e := range events {
		data[i], _ = e.MarshalJSON()
	}
	start := time.Now()
	for i, e := range events {
		if rate > 0 {
			if d := time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(rate))); d > 0 {
				time.Sleep(d)
			}
		}
		l.publish(e.Labels["incident_id"])
		if _, err := r.js.PublishAsync(e.Subject(), data[i], jetstream.WithMsgID(e.ID)); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-l.done:
	case <-time.After(time.Minute + time.Duration(len(events))*time.Millisecond):
		l.mu.Lock()
		defer l.mu.Unlock()
		b.Fatalf("%d of %d arrived", len(l.got), len(events))
	}
	return time.Since(start)
}

// publishLaterStates opens n incidents and, once each was notified and
// the saver wrote them (untimed), sends one later state of each, an
// update or (every other one) an acknowledgement, paced at rate per
// second (0: as fast as the stream takes them), and waits for l to have
// them all. settled waits for the saver's pass under way (nil: no
// notifier).
func (r *benchRig) publishLaterStates(b *testing.B, l *latencies, n, rate int, settled func()) time.Duration {
	opened := time.Now().UTC()
	openings := make([]*event.Envelope, n)
	for i := range openings {
		openings[i] = incidentEvent(b, i, opened)
	}
	l.expect(n)
	r.send(b, l, openings, 0)
	if settled != nil {
		settled()
	}
	at := time.Now().UTC()
	later := make([]*event.Envelope, n)
	for i := range later {
		later[i] = incidentStateEvent(b, i, []string{event.IncidentUpdated, event.IncidentAcknowledged}[i%2], opened, at)
	}
	l.expect(n)
	b.ResetTimer()
	elapsed := r.send(b, l, later, rate)
	b.StopTimer()
	return elapsed
}

var incidentIDRE = regexp.MustCompile(`inc-\d{8}`)

// notifierPath runs the notifier with one Alertmanager webhook receiver.
func (r *benchRig) notifierPath(b *testing.B, l *latencies) {
	r.runNotifier(b, hookRoutes(b, r.hook(b, l)))
}

// hook is a local webhook receiver that tells l of every incident it gets;
// it returns its URL.
func (r *benchRig) hook(b *testing.B, l *latencies) string {
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		if id := incidentIDRE.Find(body); id != nil {
			l.arrived(string(id))
		}
	}))
	b.Cleanup(hook.Close)
	return hook.URL
}

// besideSlowPath runs the notifier with the receiver l times and, for the
// incidents of one service in 50 (svc-7), also a receiver that answers
// after delay, as a ticketing API may: l's notifications must not wait
// behind it.
func (r *benchRig) besideSlowPath(b *testing.B, l *latencies, delay time.Duration) {
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		_, _ = io.Copy(io.Discard, req.Body)
		time.Sleep(delay)
	}))
	b.Cleanup(slow.Close)
	routes := filepath.Join(b.TempDir(), "alertmanager.yml")
	if err := os.WriteFile(routes, []byte(`route:
  receiver: hook
  group_wait: 0s
  routes:
  - {matchers: [service="svc-7"], receiver: slow, continue: true}
  - {receiver: hook}
receivers:
- name: hook
  webhook_configs: [{url: `+r.hook(b, l)+`}]
- name: slow
  webhook_configs: [{url: `+slow.URL+`}]
`), 0o600); err != nil {
		b.Fatal(err)
	}
	r.runNotifier(b, routes)
}

// laterStatesPath runs the notifier with the receiver l, its updates
// sent at most a millisecond apart (group_interval) so that each goes
// out: it returns a function that waits for the saver's pass under way.
func (r *benchRig) laterStatesPath(b *testing.B, l *latencies) (settled func()) {
	routes := filepath.Join(b.TempDir(), "alertmanager.yml")
	if err := os.WriteFile(routes, []byte(`route:
  receiver: hook
  group_wait: 0s
  group_interval: 1ms
receivers:
- name: hook
  webhook_configs: [{url: `+r.hook(b, l)+`}]
`), 0o600); err != nil {
		b.Fatal(err)
	}
	svc := r.runNotifier(b, routes)
	return func() {
		// A pass takes its turn after the one under way, and finds what
		// that wrote written.
		if err := svc.proc.saveOpen(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
}

// runNotifier runs the notifier with the routes file.
func (r *benchRig) runNotifier(b *testing.B, routes string) *Service {
	cfg := Config{Routes: routes}
	cfg.Delivery.RateLimit.Disabled = true // the receiver is local: measure the notifier
	cfg.Consumer.FetchWait = 10 * time.Millisecond
	svc, stop := r.start(cfg)
	b.Cleanup(stop)
	return svc
}

// rawPath consumes the same subject with a plain JetStream consumer that
// acks each message: the floor any stage on the bus pays.
func (r *benchRig) rawPath(b *testing.B, l *latencies) {
	c, err := r.js.CreateOrUpdateConsumer(context.Background(), bus.StreamEvents, jetstream.ConsumerConfig{
		Durable: "raw-bench", FilterSubjects: []string{event.KindFilterAll(event.KindIncident)}, AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		b.Fatal(err)
	}
	cc, err := c.Consume(func(m jetstream.Msg) {
		if id := incidentIDRE.Find(m.Data()); id != nil {
			l.arrived(string(id))
		}
		_ = m.Ack()
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(cc.Stop)
}

// BenchmarkLatency1000PerSecond: incident events at 1,000/s; b.N events.
func BenchmarkLatency1000PerSecond(b *testing.B) {
	var raw, notified time.Duration
	b.Run("raw-jetstream", func(b *testing.B) {
		r := newBenchRig(b)
		l := newLatencies(b.N)
		r.rawPath(b, l)
		raw = l.report(b, "", r.publish(b, l, b.N, 1000))
	})
	b.Run("notifier", func(b *testing.B) {
		r := newBenchRig(b)
		l := newLatencies(b.N)
		r.notifierPath(b, l)
		notified = l.report(b, "", r.publish(b, l, b.N, 1000))
		if raw > 0 {
			b.ReportMetric(float64(notified)/float64(raw), "p99-vs-raw")
		}
	})
	// The same, while the incidents of one service in 50 also go to a
	// receiver that takes 20 ms to answer.
	b.Run("notifier-beside-slow-receiver", func(b *testing.B) {
		r := newBenchRig(b)
		l := newLatencies(b.N)
		r.besideSlowPath(b, l, 20*time.Millisecond)
		notified = l.report(b, "", r.publish(b, l, b.N, 1000))
		if raw > 0 {
			b.ReportMetric(float64(notified)/float64(raw), "p99-vs-raw")
		}
	})
}

// BenchmarkThroughput: incident events as fast as the stream takes them;
// notifications/s beside raw JetStream consume.
func BenchmarkThroughput(b *testing.B) {
	var rawRate float64
	b.Run("raw-jetstream", func(b *testing.B) {
		r := newBenchRig(b)
		l := newLatencies(b.N)
		r.rawPath(b, l)
		elapsed := r.publish(b, l, b.N, 0)
		l.report(b, "", elapsed)
		rawRate = float64(b.N) / elapsed.Seconds()
	})
	b.Run("notifier", func(b *testing.B) {
		r := newBenchRig(b)
		l := newLatencies(b.N)
		r.notifierPath(b, l)
		elapsed := r.publish(b, l, b.N, 0)
		l.report(b, "", elapsed)
		if rawRate > 0 {
			b.ReportMetric(float64(b.N)/elapsed.Seconds()/rawRate, "rate-vs-raw")
		}
	})
}

// BenchmarkLaterStates: b.N open incidents (opened first, untimed) each
// get one later state, an update or an acknowledgement, which waits for
// the incident's entry to be written before it goes out
// (Processor.writeState), as fast as the stream takes them and at
// 1,000/s; notifications/s and p99 latency beside raw JetStream consume:
//
//	go test ./services/notifier -run '^$' -bench LaterStates -benchtime 3000x
func BenchmarkLaterStates(b *testing.B) {
	for _, pace := range []struct {
		name string
		rate int
	}{{"unpaced", 0}, {"1000-per-second", 1000}} {
		var raw time.Duration
		var rawRate float64
		b.Run(pace.name+"/raw-jetstream", func(b *testing.B) {
			r := newBenchRig(b)
			l := newLatencies(b.N)
			r.rawPath(b, l)
			elapsed := r.publishLaterStates(b, l, b.N, pace.rate, nil)
			raw = l.report(b, "", elapsed)
			rawRate = float64(b.N) / elapsed.Seconds()
		})
		b.Run(pace.name+"/notifier", func(b *testing.B) {
			r := newBenchRig(b)
			l := newLatencies(b.N)
			settled := r.laterStatesPath(b, l)
			elapsed := r.publishLaterStates(b, l, b.N, pace.rate, settled)
			notified := l.report(b, "", elapsed)
			if raw > 0 {
				b.ReportMetric(float64(notified)/float64(raw), "p99-vs-raw")
				b.ReportMetric(float64(b.N)/elapsed.Seconds()/rawRate, "rate-vs-raw")
			}
		})
	}
}
