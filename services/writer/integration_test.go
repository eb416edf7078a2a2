package writer

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/bus"
	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/pkg/store"
	"github.com/aiops-dev/aiops/pkg/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// rig is one test's servers: an embedded JetStream and a fresh ClickHouse
// database with the project schema.
type rig struct {
	t     *testing.T
	nats  *testenv.NATSServer
	dsn   string
	store *store.Store
	log   zerolog.Logger
}

func newRig(t *testing.T) *rig {
	if testing.Short() {
		t.Skip("integration test: needs JetStream and ClickHouse")
	}
	r := &rig{t: t, nats: testenv.StartNATS(t), dsn: testenv.ClickHouse(t), log: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)}
	ctx := context.Background()
	st, err := store.Open(ctx, store.Config{DSN: r.dsn}, r.log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := st.Migrate(ctx, store.Schema); err != nil {
		t.Fatal(err)
	}
	r.store = st
	_, js := r.connect()
	if err := bus.EnsureTopology(ctx, js, bus.DefaultStreams()); err != nil {
		t.Fatal(err)
	}
	return r
}

// connect opens a NATS connection of its own, so a test can kill one
// writer's connection without touching the others.
func (r *rig) connect() (*nats.Conn, jetstream.JetStream) {
	nc, js, err := bus.Connect(context.Background(), bus.Config{URLs: []string{r.nats.URL()}}, r.log)
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(nc.Close)
	return nc, js
}

// startWriter runs a writer on its own connection and ClickHouse pool; stop
// kills it: the connection is closed under it, so acks in flight are lost
// as in a crash, then Run is waited for.
func (r *rig) startWriter(dsn string, cfg Config) (stop func(), w *Writer) {
	ctx, cancel := context.WithCancel(context.Background())
	nc, js := r.connect()
	st, err := store.Open(ctx, store.Config{DSN: dsn, DialTimeout: time.Second}, r.log)
	if err != nil {
		r.t.Fatal(err)
	}
	w, err = New(ctx, js, st.Conn, cfg, r.log)
	if err != nil {
		r.t.Fatal(err)
	}
	finished := make(chan error, 1)
	go func() { finished <- w.Run(ctx) }()
	return func() {
		nc.Close()
		cancel()
		select {
		case <-finished:
		case <-time.After(2 * time.Minute):
			r.t.Error("writer did not return within 2 minutes of being killed")
		}
		st.Close()
	}, w
}

func (r *rig) count(query string, args ...any) uint64 {
	var n uint64
	if err := r.store.Conn.QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		r.t.Fatalf("%s: %v", query, err)
	}
	return n
}

// waitFor polls cond until it holds, failing after limit with what it saw.
func (r *rig) waitFor(limit time.Duration, what string, cond func() (bool, string)) {
	deadline := time.Now().Add(limit)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("%s: not reached within %s (%s)", what, limit, state)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// drained reports whether the writer's durable consumer has nothing left.
func (r *rig) drained(js jetstream.JetStream) (bool, string) {
	c, err := js.Consumer(context.Background(), bus.StreamEvents, "writer")
	if err != nil {
		return false, err.Error()
	}
	info, err := c.Info(context.Background())
	if err != nil {
		return false, err.Error()
	}
	return info.NumPending == 0 && info.NumAckPending == 0 && info.NumRedelivered == 0,
		fmt.Sprintf("pending %d, ack pending %d, redelivered %d", info.NumPending, info.NumAckPending, info.NumRedelivered)
}

func envelope(t testing.TB, i int, at time.Time) (*event.Envelope, []byte) {
	e, err := event.New(event.KindLog, fmt.Sprintf("svc-%d", i%7), at, event.LogBody{Message: fmt.Sprintf("request %d failed", i)})
	if err != nil {
		t.Fatal(err)
	}
	e.Labels = map[string]string{"env": "test", "shard": fmt.Sprint(i % 13)}
	e.Severity = event.SeverityError
	e.Fingerprint = event.Fingerprint(e.Kind, e.Service, e.Labels, e.Resource)
	raw, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	return e, raw
}

// TestEveryIDExactlyOnce publishes 200,000 envelopes, republishes 10% of
// them, kills the writer twice while it works, and checks that ClickHouse
// ends with every id exactly once.
func TestEveryIDExactlyOnce(t *testing.T) {
	const total, republished = 200_000, 20_000
	r := newRig(t)
	_, js := r.connect()
	pub, err := bus.NewPublisher(js, bus.WithMaxInFlight(4096))
	if err != nil {
		t.Fatal(err)
	}

	base := time.Now().UTC().Truncate(time.Second).Add(-time.Hour)
	ids := make([]string, total)
	msgs := make([]bus.Message, total)
	for i := range msgs {
		e, raw := envelope(t, i, base.Add(time.Duration(i)*time.Millisecond))
		ids[i] = e.ID
		msgs[i] = bus.Message{Subject: e.Subject(), ID: e.ID, Data: raw}
	}

	var published atomic.Int64
	pubErr := make(chan error, 1)
	go func() {
		ctx := context.Background()
		for start := 0; start < total; start += 5000 {
			batch := msgs[start : start+5000]
			if _, err := pub.PublishAll(ctx, cloneMessages(batch)); err != nil {
				pubErr <- err
				return
			}
			published.Add(int64(len(batch)))
			// Every tenth event again, as a producer retrying after a lost
			// ack would: the stream's duplicate window must drop them.
			var again []bus.Message
			for i := start; i < start+5000; i += total / republished {
				again = append(again, msgs[i])
			}
			if _, err := pub.PublishAll(ctx, cloneMessages(again)); err != nil {
				pubErr <- err
				return
			}
		}
		pubErr <- nil
	}()

	cfg := Config{MaxRows: 5000, MaxAge: 200 * time.Millisecond, Consumer: bus.ConsumerConfig{AckWait: 10 * time.Second, Backoff: []time.Duration{100 * time.Millisecond}}}
	inTable := func() uint64 { return r.count("SELECT count() FROM events") }
	for kill, after := range []uint64{40_000, 110_000} {
		stop, _ := r.startWriter(r.dsn, cfg)
		r.waitFor(2*time.Minute, fmt.Sprintf("writer %d inserts %d rows", kill+1, after), func() (bool, string) {
			n := inTable()
			return n >= after, fmt.Sprintf("%d rows", n)
		})
		stop()
	}
	stop, _ := r.startWriter(r.dsn, cfg)
	defer stop()
	if err := <-pubErr; err != nil {
		t.Fatalf("publish: %v", err)
	}

	stream, err := js.Stream(context.Background(), bus.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != total {
		t.Fatalf("stream holds %d messages after %d publishes and %d republishes, want %d", info.State.Msgs, total, republished, total)
	}

	r.waitFor(3*time.Minute, "writer drains the stream", func() (bool, string) { return r.drained(js) })
	if n := r.count("SELECT count() FROM events FINAL"); n != total {
		t.Fatalf("events FINAL has %d rows, want %d", n, total)
	}
	if n := r.count("SELECT uniqExact(id) FROM events"); n != total {
		t.Fatalf("%d distinct ids, want %d", n, total)
	}
	rows, err := r.store.Conn.Query(context.Background(), "SELECT DISTINCT id FROM events")
	if err != nil {
		t.Fatal(err)
	}
	want := make(map[string]bool, total)
	for _, id := range ids {
		want[id] = true
	}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		if !want[id] {
			t.Fatalf("id %s in ClickHouse was never published", id)
		}
		delete(want, id)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(want) != 0 {
		t.Fatalf("%d published ids missing from ClickHouse", len(want))
	}
	t.Logf("raw rows before merges: %d (duplicates from redelivery after the kills: %d)",
		r.count("SELECT count() FROM events"), r.count("SELECT count() FROM events")-total)
}

func cloneMessages(ms []bus.Message) []bus.Message {
	out := make([]bus.Message, len(ms))
	for i, m := range ms {
		out[i] = bus.Message{Subject: m.Subject, ID: m.ID, Data: m.Data}
	}
	return out
}

// TestMalformedGoesToDeadLetter sends garbage between good events: the
// garbage lands on the dead-letter subject with its reason, the good events
// in ClickHouse.
func TestMalformedGoesToDeadLetter(t *testing.T) {
	r := newRig(t)
	_, js := r.connect()
	pub, err := bus.NewPublisher(js)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	var msgs []bus.Message
	for i := 0; i < 10; i++ {
		e, raw := envelope(t, i, now)
		msgs = append(msgs, bus.Message{Subject: e.Subject(), ID: e.ID, Data: raw})
		if i == 3 {
			msgs = append(msgs, bus.Message{Subject: "events.log.bad", ID: "garbage-1", Data: []byte(`{"kind":"log","service":`)})
		}
		if i == 6 {
			msgs = append(msgs, bus.Message{Subject: "events.log.bad", ID: "garbage-2", Data: []byte(`{"kind":"log","time":"2026-11-21T12:00:00Z","service":"x","body":{"message":"no id"}}`)})
		}
	}
	if _, err := pub.PublishAll(context.Background(), msgs); err != nil {
		t.Fatal(err)
	}
	stop, w := r.startWriter(r.dsn, Config{MaxAge: 100 * time.Millisecond})
	defer stop()
	r.waitFor(time.Minute, "good events stored", func() (bool, string) {
		n := r.count("SELECT count() FROM events FINAL")
		return n == 10, fmt.Sprintf("%d rows", n)
	})
	r.waitFor(time.Minute, "consumer drained", func() (bool, string) { return r.drained(js) })
	if s := w.Stats(); s.DeadLettered != 2 || s.Acked != 10 {
		t.Fatalf("stats %+v: want 2 dead-lettered, 10 acked", s)
	}

	dlq, err := js.Stream(context.Background(), bus.StreamDeadLetter)
	if err != nil {
		t.Fatal(err)
	}
	reasons := map[string]string{}
	for seq := uint64(1); seq <= 2; seq++ {
		m, err := dlq.GetMsg(context.Background(), seq)
		if err != nil {
			t.Fatalf("dead letter %d: %v", seq, err)
		}
		if !strings.HasPrefix(m.Subject, "deadletter.EVENTS.writer") {
			t.Errorf("dead letter on subject %s", m.Subject)
		}
		reasons[string(m.Data)] = m.Header.Get(bus.HeaderDeadLetterReason)
	}
	for data, reason := range reasons {
		switch {
		case strings.Contains(data, `"service":`) && !strings.Contains(data, "no id"):
			if !strings.Contains(reason, "not valid JSON") {
				t.Errorf("truncated JSON dead-lettered with reason %q", reason)
			}
		case strings.Contains(data, "no id"):
			if !strings.Contains(reason, `field "id" is required`) {
				t.Errorf("envelope without id dead-lettered with reason %q", reason)
			}
		default:
			t.Errorf("unexpected dead letter %q", data)
		}
	}
	if len(reasons) != 2 {
		t.Fatalf("dead letters: %v", reasons)
	}
}

// TestClickHouseOutage cuts the writer off ClickHouse for 30 seconds: it
// must ack nothing meanwhile, then catch up with nothing lost.
func TestClickHouseOutage(t *testing.T) {
	r := newRig(t)
	u, err := url.Parse(r.dsn)
	if err != nil {
		t.Fatal(err)
	}
	proxy := testenv.NewProxy(t, u.Host)
	u.Host = proxy.Addr()

	_, js := r.connect()
	pub, err := bus.NewPublisher(js)
	if err != nil {
		t.Fatal(err)
	}
	publish := func(from, n int) {
		now := time.Now().UTC().Truncate(time.Second)
		msgs := make([]bus.Message, n)
		for i := range msgs {
			e, raw := envelope(t, from+i, now)
			msgs[i] = bus.Message{Subject: e.Subject(), ID: e.ID, Data: raw}
		}
		if _, err := pub.PublishAll(context.Background(), msgs); err != nil {
			t.Fatal(err)
		}
	}

	cfg := Config{MaxRows: 500, MaxAge: 100 * time.Millisecond, Consumer: bus.ConsumerConfig{
		AckWait: 5 * time.Second, Backoff: []time.Duration{200 * time.Millisecond, 500 * time.Millisecond, time.Second},
	}}
	stop, w := r.startWriter(u.String(), cfg)
	defer stop()

	publish(0, 1000)
	r.waitFor(time.Minute, "first 1000 stored", func() (bool, string) {
		n := r.count("SELECT count() FROM events FINAL")
		return n == 1000, fmt.Sprintf("%d rows", n)
	})
	r.waitFor(time.Minute, "first 1000 acked", func() (bool, string) { return r.drained(js) })
	acked := w.Stats().Acked

	proxy.Cut()
	publish(1000, 2000)
	var mu sync.Mutex
	var during []string
	for end := time.Now().Add(30 * time.Second); time.Now().Before(end); time.Sleep(time.Second) {
		s := w.Stats()
		n := r.count("SELECT count() FROM events")
		mu.Lock()
		if s.Acked != acked {
			during = append(during, fmt.Sprintf("acked %d -> %d", acked, s.Acked))
		}
		if n != 1000 {
			during = append(during, fmt.Sprintf("%d rows in ClickHouse", n))
		}
		mu.Unlock()
	}
	if len(during) > 0 {
		t.Fatalf("during the outage: %v", during)
	}
	if s := w.Stats(); s.DeadLettered != 0 {
		t.Fatalf("an outage dead-lettered %d messages", s.DeadLettered)
	}

	proxy.Restore()
	r.waitFor(2*time.Minute, "caught up after the outage", func() (bool, string) {
		n := r.count("SELECT count() FROM events FINAL")
		return n == 3000, fmt.Sprintf("%d rows", n)
	})
	r.waitFor(time.Minute, "all acked after the outage", func() (bool, string) { return r.drained(js) })
	if s := w.Stats(); s.DeadLettered != 0 || s.Acked < acked+2000 {
		t.Fatalf("after the outage: %+v", s)
	}
}
