package detector

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/bus"
	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/pkg/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

type rig struct {
	t    *testing.T
	nats *testenv.NATSServer
	log  zerolog.Logger
	js   jetstream.JetStream
	pub  *bus.Publisher
}

func newRig(t *testing.T) *rig {
	if testing.Short() {
		t.Skip("integration test: needs JetStream")
	}
	r := &rig{t: t, nats: testenv.StartNATS(t), log: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)}
	_, r.js = r.connect()
	if err := bus.EnsureTopology(context.Background(), r.js, bus.DefaultStreams()); err != nil {
		t.Fatal(err)
	}
	var err error
	if r.pub, err = bus.NewPublisher(r.js); err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *rig) connect() (*nats.Conn, jetstream.JetStream) {
	nc, js, err := bus.Connect(context.Background(), bus.Config{URLs: []string{r.nats.URL()}}, r.log)
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(nc.Close)
	return nc, js
}

// start runs a detector on its own connection; stop cancels it (graceful:
// final snapshot) or, with crash, closes its connection first so nothing
// more reaches the server, then waits for Run.
func (r *rig) start(cfg Config, opts ...Option) (svc *Service, stop func(crash bool)) {
	return r.startPrepared(cfg, nil, opts...)
}

// startPrepared is start with prepare, if any, called on the service
// between New and Run.
func (r *rig) startPrepared(cfg Config, prepare func(*Service), opts ...Option) (svc *Service, stop func(crash bool)) {
	ctx, cancel := context.WithCancel(context.Background())
	nc, js := r.connect()
	svc, err := New(ctx, js, cfg, r.log, append([]Option{WithConsumerOptions(bus.WithDrainTimeout(5 * time.Second))}, opts...)...)
	if err != nil {
		r.t.Fatal(err)
	}
	if prepare != nil {
		prepare(svc)
	}
	finished := make(chan error, 1)
	go func() { finished <- svc.Run(ctx) }()
	return svc, func(crash bool) {
		if crash {
			nc.Close()
		}
		cancel()
		select {
		case err := <-finished:
			if err != nil && !crash {
				r.t.Errorf("Run: %v", err)
			}
		case <-time.After(time.Minute):
			r.t.Fatal("detector did not stop within a minute")
		}
	}
}

func (r *rig) publish(data ...[]byte) {
	msgs := make([]bus.Message, len(data))
	for i, d := range data {
		e, err := event.Parse(d)
		if err != nil {
			r.t.Fatal(err)
		}
		msgs[i] = bus.Message{Subject: e.Subject(), ID: e.ID, Data: d}
	}
	if _, err := r.pub.PublishAll(context.Background(), msgs); err != nil {
		r.t.Fatal(err)
	}
}

// anomalies reads every anomaly event in the stream.
func (r *rig) anomalies() []*event.Envelope {
	ctx := context.Background()
	c, err := r.js.OrderedConsumer(ctx, bus.StreamEvents, jetstream.OrderedConsumerConfig{FilterSubjects: []string{"events.anomaly.>"}})
	if err != nil {
		r.t.Fatal(err)
	}
	var out []*event.Envelope
	for {
		batch, err := c.FetchNoWait(100)
		if err != nil {
			r.t.Fatal(err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			e, err := event.Parse(m.Data())
			if err != nil {
				r.t.Fatalf("anomaly on the stream does not parse: %v", err)
			}
			out = append(out, e)
		}
		if n == 0 {
			return out
		}
	}
}

func (r *rig) waitAnomalies(n int) []*event.Envelope {
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := r.anomalies()
		if len(got) >= n || time.Now().After(deadline) {
			if len(got) != n {
				r.t.Fatalf("%d anomalies on the stream, want %d", len(got), n)
			}
			return got
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func waitObservations(t *testing.T, s *Service, fp string, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, _ := s.Observations(fp)
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("series %s: %d observations, want %d", fp, got, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// From published samples to an anomaly event on JetStream, then a restart
// that restores the state: the restored detector has every observation and
// scores the next spike at once, with no warm-up.
func TestSpikeToAnomalyAndRestartRestoresState(t *testing.T) {
	r := newRig(t)
	cfg := Config{Snapshot: SnapshotConfig{Interval: time.Hour}} // only the shutdown snapshot
	svc, stop := r.start(cfg)

	var data [][]byte
	var fp string
	values := append(normal(100, 5), 130)
	for i, v := range values {
		e, d := sample(t, "payments", "queue_depth", map[string]string{"queue": "q1"}, t0.Add(time.Duration(i)*time.Minute), v, "")
		data, fp = append(data, d), e.Fingerprint
	}
	r.publish(data...)
	got := r.waitAnomalies(1)
	a := got[0]
	spike, _ := event.Parse(data[len(data)-1])
	var b event.AnomalyBody
	if err := a.DecodeBody(&b); err != nil {
		t.Fatal(err)
	}
	if a.Subject() != "events.anomaly.payments" || b.Series != fp || *b.Value != 130 || *b.Score < 0.5 || *b.Score > 1 || a.Links[0] != spike.ID ||
		b.Episode != event.EpisodeOpen || !b.Start.Equal(spike.Time) {
		t.Fatalf("anomaly %s body %+v links %v; want series %s value 130 score in [0.5,1] link %s", a.Subject(), b, a.Links, fp, spike.ID)
	}
	waitObservations(t, svc, fp, len(values))
	stop(false)

	kv, err := r.js.KeyValue(context.Background(), DefaultBucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Get(context.Background(), "detector."+fp); err != nil {
		t.Fatalf("no snapshot under detector.%s: %v", fp, err)
	}

	svc2, stop2 := r.start(cfg)
	defer stop2(false)
	waitObservations(t, svc2, fp, len(values)) // restored, not re-learned: nothing was redelivered
	// Two normal samples then a spike, all right after the restart: a
	// warming-up detector would score them 0.
	var after [][]byte
	for i, v := range []float64{100.3, 99.8, 70} {
		_, d := sample(t, "payments", "queue_depth", map[string]string{"queue": "q1"}, t0.Add(time.Duration(len(values)+i)*time.Minute), v, "")
		after = append(after, d)
	}
	r.publish(after...)
	// the first normal sample closes the spike's episode, the dip opens
	// another: both need the restored state
	got = r.waitAnomalies(3)
	var closed event.AnomalyBody
	if err := got[1].DecodeBody(&closed); err != nil {
		t.Fatal(err)
	}
	if closed.Episode != event.EpisodeClose || closed.EpisodeID != b.EpisodeID || *closed.Peak != *b.Peak {
		t.Errorf("after restart: %+v, want the close of episode %s peaking at %v", closed, b.EpisodeID, *b.Peak)
	}
	if err := got[2].DecodeBody(&b); err != nil {
		t.Fatal(err)
	}
	if *b.Value != 70 || b.Series != fp || b.Episode != event.EpisodeOpen {
		t.Errorf("after restart: anomaly %+v, want the dip to 70 on %s opening an episode", b, fp)
	}
	waitObservations(t, svc2, fp, len(values)+3)
}

// A crash (no final snapshot) loses at most what came after the last
// periodic snapshot: the state comes back from the interval snapshot.
func TestCrashRestoresPeriodicSnapshot(t *testing.T) {
	r := newRig(t)
	cfg := Config{Snapshot: SnapshotConfig{Interval: time.Second}}
	svc, stop := r.start(cfg)
	var data [][]byte
	var fp string
	for i, v := range normal(60, 9) {
		e, d := sample(t, "web", "rps", nil, t0.Add(time.Duration(i)*time.Minute), v, "")
		data, fp = append(data, d), e.Fingerprint
	}
	r.publish(data...)
	waitObservations(t, svc, fp, 60)
	kv, err := r.js.KeyValue(context.Background(), DefaultBucket)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		// Wait for the snapshot that holds all 60, not an earlier one.
		if e, err := kv.Get(context.Background(), "detector."+fp); err == nil {
			if ser, err := svc.decode(fp, e.Value()); err == nil && ser.det.Observations() == 60 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("no periodic snapshot of the 60 samples within 20s")
		}
		time.Sleep(200 * time.Millisecond)
	}
	stop(true)
	svc2, stop2 := r.start(cfg)
	defer stop2(false)
	waitObservations(t, svc2, fp, 60)
}

// An episode that opens or closes between two periodic snapshots survives
// a crash: samples are acked before a snapshot holds them (the ones acked
// since the last are not redelivered), so the series' snapshot is written
// at the next tick after an open or a close. Restored from the snapshot of
// before the open, the fault going on opened a second episode under
// another id, and the first never got a close; from the one before the
// close, the episode was closed twice.
func TestEpisodeOpenOrCloseSurvivesACrash(t *testing.T) {
	r := newRig(t)
	cfg := Config{Snapshot: SnapshotConfig{Interval: time.Hour}} // no periodic snapshot in the test
	var fp string
	at := func(i int, v float64) []byte {
		e, d := sample(t, "payments", "queue_depth", map[string]string{"queue": "q1"}, t0.Add(time.Duration(i)*time.Minute), v, "")
		fp = e.Fingerprint
		return d
	}
	var kv jetstream.KeyValue // the service creates it
	// waitSnapshot waits until the series' snapshot has n observations.
	waitSnapshot := func(svc *Service, n int, inEpisode bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			if e, err := kv.Get(context.Background(), "detector."+fp); err == nil {
				if ser, err := svc.decode(fp, e.Value()); err == nil && ser.det.Observations() == n && ser.det.InEpisode() == inEpisode {
					return
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("no snapshot of the series with %d observations (episode open: %v) within 30s of the sample", n, inEpisode)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	episodes := func(got []*event.Envelope) (kinds []string, ids map[string]bool) {
		ids = map[string]bool{}
		for _, a := range got {
			var b event.AnomalyBody
			if err := a.DecodeBody(&b); err != nil {
				t.Fatal(err)
			}
			kinds, ids[b.EpisodeID] = append(kinds, b.Episode), true
		}
		return kinds, ids
	}

	svc, stop := r.start(cfg)
	kv, err := r.js.KeyValue(context.Background(), DefaultBucket)
	if err != nil {
		t.Fatal(err)
	}
	var data [][]byte
	for i, v := range normal(100, 5) {
		data = append(data, at(i, v))
	}
	r.publish(data...)
	waitObservations(t, svc, fp, 100)
	if _, err := svc.Snapshot(context.Background()); err != nil { // the last periodic snapshot
		t.Fatal(err)
	}
	r.publish(at(100, 150), at(101, 150)) // a fault opens an episode
	r.waitAnomalies(1)
	waitSnapshot(svc, 102, true)
	stop(true)

	svc, stop = r.start(cfg)
	waitObservations(t, svc, fp, 102)
	r.publish(at(102, 150), at(103, 100)) // the fault goes on, then ends
	got := r.waitAnomalies(2)
	if kinds, ids := episodes(got); len(ids) != 1 || kinds[1] != event.EpisodeClose {
		t.Fatalf("after a crash in the episode: anomalies %v of %d episodes, want the open and the close of one", kinds, len(ids))
	}
	waitSnapshot(svc, 104, false)
	stop(true)

	svc, stop = r.start(cfg)
	defer stop(false)
	waitObservations(t, svc, fp, 104)
	r.publish(at(104, 100.2), at(105, 30)) // calm, then a dip opens a new episode
	got = r.waitAnomalies(3)
	if kinds, ids := episodes(got); len(ids) != 2 || kinds[2] != event.EpisodeOpen {
		t.Errorf("after a crash that followed the close: anomalies %v of %d episodes, want the first episode's open and close, then the dip's open", kinds, len(ids))
	}
}

// withheldWrites passes snapshot writes on to the bucket, but, once
// withhold was called, those under its subject: they never reach the
// server and their acks never come, as for a process that dies before it
// sent them. seen is closed at the first one withheld.
type withheldWrites struct {
	asyncPublisher
	seen    chan struct{} // never reassigned: the test waits on it
	mu      sync.Mutex
	subject string // "" until withhold
	told    bool   // seen is closed
}

// withhold withholds the writes under subject from now on (set under the
// lock: the ticks write snapshots meanwhile).
func (w *withheldWrites) withhold(subject string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.subject = subject
}

func (w *withheldWrites) PublishAsync(subject string, data []byte, opts ...jetstream.PublishOpt) (jetstream.PubAckFuture, error) {
	w.mu.Lock()
	withheld := w.subject != "" && subject == w.subject
	if withheld && !w.told {
		close(w.seen)
		w.told = true
	}
	w.mu.Unlock()
	if withheld {
		return &future{ok: make(chan *jetstream.PubAck), err: make(chan error)}, nil
	}
	return w.asyncPublisher.PublishAsync(subject, data, opts...)
}

// A crash after the sample that opened or closed an episode was scored
// and its anomaly stored, but before the snapshot holding the transition
// reached the bucket (the tick after it writes it), loses nothing and
// doubles nothing: the sample's ack waits for that snapshot, so the next
// instance gets the sample again, first (the consumer rewound to its ack
// floor), and scores it from the snapshot before into the same anomaly
// (the same id). Acked with its anomaly, the sample was gone: restored from
// before the open, the fault going on opened a second episode and the
// first was never closed; restored from before the close, the next calm
// sample closed the episode a second time, under another id.
func TestEpisodeTransitionSurvivesACrashBeforeItsSnapshot(t *testing.T) {
	for _, transition := range []string{event.EpisodeOpen, event.EpisodeClose} {
		t.Run(transition, func(t *testing.T) {
			r := newRig(t)
			// no periodic snapshot in the test; a crashed stop gives up
			// on the withheld write soon
			cfg := Config{Snapshot: SnapshotConfig{Interval: time.Hour, ShutdownTimeout: 2 * time.Second}}
			var fp string
			var seq uint64 // the stream sequence of the last sample published
			at := func(i int, v float64) {
				e, d := sample(t, "payments", "queue_depth", map[string]string{"queue": "q1"}, t0.Add(time.Duration(i)*time.Minute), v, "")
				fp = e.Fingerprint
				ack, err := r.js.Publish(context.Background(), e.Subject(), d, jetstream.WithMsgID(e.ID))
				if err != nil {
					t.Fatal(err)
				}
				seq = ack.Sequence
			}
			// settled waits until every sample published was scored and
			// acked, and so its anomalies stored.
			settled := func() {
				t.Helper()
				c, err := r.js.Consumer(context.Background(), bus.StreamEvents, DefaultDurable)
				if err != nil {
					t.Fatal(err)
				}
				for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
					info, err := c.Info(context.Background())
					if err != nil {
						t.Fatal(err)
					}
					if info.AckFloor.Stream >= seq && info.NumAckPending == 0 {
						return
					}
					if time.Now().After(deadline) {
						t.Fatalf("samples up to %d not all acked within 30s: ack floor %d, %d pending", seq, info.AckFloor.Stream, info.NumAckPending)
					}
				}
			}
			var w *withheldWrites
			svc, stop := r.startPrepared(cfg, func(s *Service) {
				w = &withheldWrites{asyncPublisher: s.snap, seen: make(chan struct{})}
				s.snap = w
			})
			for i, v := range normal(100, 5) {
				at(i, v)
			}
			waitObservations(t, svc, fp, 100)
			next := 100
			if transition == event.EpisodeClose {
				at(next, 150) // a fault opens an episode, saved at the next tick
				next++
				settled()
			}
			if _, err := svc.Snapshot(context.Background()); err != nil { // the last periodic snapshot
				t.Fatal(err)
			}
			w.withhold("$KV." + DefaultBucket + ".detector." + fp)
			if transition == event.EpisodeOpen {
				at(next, 150) // the fault opens an episode
			} else {
				at(next, 100) // the fault ends
			}
			next++
			select {
			case <-w.seen: // the transition's anomaly is stored, its snapshot written
			case <-time.After(30 * time.Second):
				t.Fatal("no snapshot of the transition within 30s")
			}
			stop(true) // before that write reaches the bucket

			_, stop = r.start(cfg)
			if transition == event.EpisodeOpen {
				at(next, 150) // the fault goes on
				next++
			}
			at(next, 100.2) // calm
			settled()
			stop(false)

			kinds := map[string][]string{}
			var order []string
			for _, a := range r.anomalies() {
				var b event.AnomalyBody
				if err := a.DecodeBody(&b); err != nil {
					t.Fatal(err)
				}
				if kinds[b.EpisodeID] == nil {
					order = append(order, b.EpisodeID)
				}
				kinds[b.EpisodeID] = append(kinds[b.EpisodeID], b.Episode)
			}
			var got [][]string
			for _, id := range order {
				got = append(got, kinds[id])
			}
			if len(got) != 1 || !slices.Equal(got[0], []string{event.EpisodeOpen, event.EpisodeClose}) {
				t.Errorf("crash before the snapshot of the %s: anomalies by episode %v, want one episode, opened and closed once", transition, got)
			}
		})
	}
}

// The binary's Main, wired through platform (config, metrics registry,
// admin server, shutdown), scores samples into anomalies and stops cleanly.
func TestMainEndToEnd(t *testing.T) {
	r := newRig(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	finished := make(chan error, 1)
	go func() {
		finished <- Main(ctx, []string{"-set", "bus.urls=[" + r.nats.URL() + "]", "-set", "log.level=warn", "-set", "admin.listen=127.0.0.1:0", "-set", "detector.pipeline=../../pipelines/default.yaml"})
	}()
	var data [][]byte
	for i, v := range append(normal(60, 21), 90) {
		_, d := sample(t, "edge", "rps", nil, t0.Add(time.Duration(i)*time.Minute), v, "")
		data = append(data, d)
	}
	r.publish(data...)
	select {
	case err := <-finished:
		t.Fatalf("Main returned early: %v", err)
	case <-time.After(500 * time.Millisecond):
	}
	r.waitAnomalies(1)
	cancel()
	select {
	case err := <-finished:
		if err != nil {
			t.Fatalf("Main: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("Main did not return within a minute of cancellation")
	}
}

// One fault is one episode on the stream: an event when it opens, updates
// at a bounded rate while it lasts, one event when it ends (a 40-minute
// fault, here: once the series has settled on its level, half a window
// in, and its return opens none), all with one episode id, not an event
// per sample.
func TestFaultIsOneEpisode(t *testing.T) {
	r := newRig(t)
	svc, stop := r.start(Config{})
	defer stop(false)
	const calm, fault, after = 200, 40, 30
	values := normal(calm+fault+after, 5)
	for i := calm; i < calm+fault; i++ {
		values[i] += 60 // a 40-minute fault far outside the band
	}
	var data [][]byte
	var fp string
	for i, v := range values {
		e, d := sample(t, "checkout", "latency_ms", nil, t0.Add(time.Duration(i)*time.Minute), v, "")
		data, fp = append(data, d), e.Fingerprint
	}
	r.publish(data...)
	waitObservations(t, svc, fp, len(values))
	// every sample is observed; the close's publish may still be in flight
	var got []*event.Envelope
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		got = r.anomalies()
		closed := false
		for _, a := range got {
			var b event.AnomalyBody
			if a.DecodeBody(&b) == nil && b.Episode == event.EpisodeClose {
				closed = true
			}
		}
		if closed || time.Now().After(deadline) {
			break
		}
	}
	var opens, updates, closes int
	var id string
	var last event.AnomalyBody
	for _, a := range got {
		var b event.AnomalyBody
		if err := a.DecodeBody(&b); err != nil {
			t.Fatal(err)
		}
		switch b.Episode {
		case event.EpisodeOpen:
			opens++
			id = b.EpisodeID
		case event.EpisodeUpdate:
			updates++
		case event.EpisodeClose:
			closes++
		default:
			t.Errorf("anomaly with episode %q", b.Episode)
		}
		if b.EpisodeID != id {
			t.Errorf("episode id %s, the open's is %s", b.EpisodeID, id)
		}
		last = b
	}
	// updates at most every 5 minutes of a 40-minute fault
	if opens != 1 || closes != 1 || updates > fault/5+1 {
		t.Fatalf("%d opens, %d updates, %d closes for one %d-sample fault; want 1, at most %d, 1", opens, updates, closes, fault, fault/5+1)
	}
	start, end := t0.Add(calm*time.Minute), t0.Add((calm+fault-1)*time.Minute)
	if last.Episode != event.EpisodeClose || last.Start.Before(start) || last.Start.After(start.Add(2*time.Minute)) ||
		last.End.Before(start) || last.End.After(end) || *last.Peak < 0.5 || *last.PeakValue < 150 {
		t.Errorf("close %+v; want start near %v, end by %v, a peak over the threshold at the fault's level", last, start, end)
	}
}
