package detector

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/aiops-dev/aiops/pkg/detect"
	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/pkg/stage/stagetest"
)

// anomalyBody is e's anomaly body.
func anomalyBody(t *testing.T, e *event.Envelope) event.AnomalyBody {
	t.Helper()
	var b event.AnomalyBody
	if err := e.DecodeBody(&b); err != nil {
		t.Fatal(err)
	}
	return b
}

// episodeEvent is an anomaly event with its body.
type episodeEvent struct {
	env  *event.Envelope
	body event.AnomalyBody
}

func episodeEvents(t *testing.T, h *stagetest.Harness) []episodeEvent {
	t.Helper()
	var out []episodeEvent
	for _, e := range h.Pub.Events(t) {
		var b event.AnomalyBody
		if err := e.DecodeBody(&b); err != nil {
			t.Fatal(err)
		}
		out = append(out, episodeEvent{e, b})
	}
	return out
}

// openEpisode sends 100 normal samples of name, one a minute, then a level
// shift to 150 for three samples, moving clock with the series, and returns
// the last sample sent.
func openEpisode(t *testing.T, h *stagetest.Harness, clock *testClock, name string, from time.Time) *event.Envelope {
	t.Helper()
	values := append(normal(100, 5), 150, 151, 150)
	var last *event.Envelope
	for i, v := range values {
		e, data := sample(t, "db", name, map[string]string{"instance": "db-1"}, from.Add(time.Duration(i)*time.Minute), v, "")
		ack(t, h, data)
		clock.add(time.Minute)
		last = e
	}
	return last
}

// heartbeat sends a sample of another series at the clock's time: silence
// is told while other series' samples come.
func heartbeat(t *testing.T, h *stagetest.Harness, clock *testClock) {
	t.Helper()
	_, data := sample(t, "other", "heartbeat", nil, clock.now(), 1, "")
	ack(t, h, data)
}

// A series that stops while anomalous, while others go on, has its episode
// closed after ten of its intervals without a sample, at its last sample's
// time; before that, and after, nothing more is sent, and nothing is
// closed while no series sends (the bus or the producers are down). When
// it comes back anomalous, a new episode opens.
func TestSilentSeriesEpisodeIsClosed(t *testing.T) {
	clock := &testClock{t: t0}
	s, h := newTestService(t, Config{}, WithClock(clock.now))
	last := openEpisode(t, h, clock, "latency_ms", t0)
	got := episodeEvents(t, h)
	if len(got) != 1 || got[0].body.Episode != event.EpisodeOpen {
		t.Fatalf("%d anomaly events, want one opening an episode", len(got))
	}
	open := got[0].body

	clock.add(8 * time.Minute) // 9 minutes since the last sample: within ten intervals
	heartbeat(t, h, clock)
	if err := h.Tick(clock.now()); err != nil {
		t.Fatal(err)
	}
	if n := len(h.Pub.Messages()); n != 1 {
		t.Fatalf("%d events after 9 silent minutes, want still 1", n)
	}
	clock.add(30 * time.Minute) // and no sample of any series
	if err := h.Tick(clock.now()); err != nil {
		t.Fatal(err)
	}
	if n := len(h.Pub.Messages()); n != 1 {
		t.Fatalf("%d events after 30 minutes without any sample, want still 1", n)
	}
	heartbeat(t, h, clock)
	if err := h.Tick(clock.now()); err != nil {
		t.Fatal(err)
	}
	got = episodeEvents(t, h)
	if len(got) != 2 {
		t.Fatalf("%d events after 11 silent minutes, want the open and its close", len(got))
	}
	c := got[1]
	if c.body.Episode != event.EpisodeClose || c.body.EpisodeID != open.EpisodeID || c.body.Series != last.Fingerprint {
		t.Errorf("close %+v, want the close of episode %s of series %s", c.body, open.EpisodeID, last.Fingerprint)
	}
	if !c.env.Time.Equal(last.Time) || len(c.env.Links) != 1 || c.env.Links[0] != last.ID {
		t.Errorf("close at %v linked to %v, want at the last sample %v, linked to %s", c.env.Time, c.env.Links, last.Time, last.ID)
	}
	if c.env.Service != "db" || c.env.Labels["instance"] != "db-1" || c.body.Metric != "latency_ms" {
		t.Errorf("close names service %q labels %v metric %q", c.env.Service, c.env.Labels, c.body.Metric)
	}
	if !strings.Contains(c.body.Reason, "sent no sample since "+last.Time.Format(time.RFC3339)) || !c.body.Start.Equal(open.Start) {
		t.Errorf("close reason %q start %v, want the silence named and the episode's start %v", c.body.Reason, c.body.Start, open.Start)
	}
	if c.env.Fingerprint != got[0].env.Fingerprint {
		t.Errorf("close fingerprint %s, the open's %s: one series, one fingerprint", c.env.Fingerprint, got[0].env.Fingerprint)
	}
	s.mu.Lock()
	ser, _ := s.series.Get(seriesKey(last.Fingerprint))
	p := ser.pending
	s.mu.Unlock()
	if p != 0 {
		t.Errorf("%d anomalies of the series pending after the close was stored", p)
	}

	clock.add(time.Hour)
	heartbeat(t, h, clock)
	if err := h.Tick(clock.now()); err != nil {
		t.Fatal(err)
	}
	if n := len(h.Pub.Messages()); n != 2 {
		t.Fatalf("%d events after another silent hour, want the episode closed once", n)
	}
	// back, and still anomalous: a new episode
	for i, v := range []float64{160, 161, 160} {
		_, data := sample(t, "db", "latency_ms", map[string]string{"instance": "db-1"}, last.Time.Add(time.Duration(70+i)*time.Minute), v, "")
		ack(t, h, data)
	}
	got = episodeEvents(t, h)
	if len(got) < 3 || got[2].body.Episode != event.EpisodeOpen || got[2].body.EpisodeID == open.EpisodeID {
		t.Errorf("after the series came back at 160: %d events, want a new episode opened", len(got))
	}
}

// kvDeletes records the keys deleted from the snapshot bucket, and those
// written (the last value of each).
type kvDeletes struct {
	jetstream.KeyValue
	deleted []string
	put     map[string][]byte
}

func (k *kvDeletes) Delete(_ context.Context, key string, _ ...jetstream.KVDeleteOpt) error {
	k.deleted = append(k.deleted, key)
	return nil
}

func (k *kvDeletes) Put(_ context.Context, key string, value []byte) (uint64, error) {
	if k.put == nil {
		k.put = map[string][]byte{}
	}
	k.put[key] = value
	return uint64(len(k.put)), nil
}

// A series evicted from memory (max_series) with an episode open has it
// closed at the next tick, and its snapshot, which holds the episode open,
// rewritten with the episode ended (a restart would close it again, and
// still restores its baseline); one evicted calm sends nothing.
func TestEvictedSeriesEpisodeIsClosed(t *testing.T) {
	clock := &testClock{t: t0}
	s, h := newTestService(t, Config{MaxSeries: 1}, WithClock(clock.now))
	kv := &kvDeletes{}
	s.kv = kv
	last := openEpisode(t, h, clock, "latency_ms", t0)
	_, data := sample(t, "db", "other", nil, t0, 1, "")
	ack(t, h, data) // evicts latency_ms
	if err := h.Tick(clock.now()); err != nil {
		t.Fatal(err)
	}
	got := episodeEvents(t, h)
	if len(got) != 2 || got[1].body.Episode != event.EpisodeClose || got[1].body.EpisodeID != got[0].body.EpisodeID {
		t.Fatalf("%d events, want the open and, after the eviction, its close", len(got))
	}
	if r := got[1].body.Reason; !strings.Contains(r, "dropped from the detector's memory") || got[1].env.Links[0] != last.ID {
		t.Errorf("close reason %q links %v", r, got[1].env.Links)
	}
	if len(kv.deleted)+len(kv.put) != 0 {
		t.Errorf("snapshots deleted %v, written %d, before the close was stored", kv.deleted, len(kv.put))
	}
	if err := h.Tick(clock.now()); err != nil { // the close is stored: its snapshot is rewritten
		t.Fatal(err)
	}
	key := seriesKey(last.Fingerprint)
	v, ok := kv.put[s.keyOf(key)]
	if len(kv.deleted) != 0 || len(kv.put) != 1 || !ok {
		t.Fatalf("snapshots deleted %v, written %d, want the evicted series' rewritten", kv.deleted, len(kv.put))
	}
	if ser, err := s.decode(key, v); err != nil || ser.det.InEpisode() || ser.last != nil || ser.det.Observations() == 0 {
		t.Errorf("the rewritten snapshot: %v, want its state with no episode open", err)
	}
	_, data = sample(t, "db", "third", nil, t0, 1, "")
	ack(t, h, data) // evicts "other", calm
	if err := h.Tick(clock.now()); err != nil {
		t.Fatal(err)
	}
	if n := len(h.Pub.Messages()); n != 2 {
		t.Errorf("%d events after a calm series was evicted, want still 2", n)
	}
}

// stalledKeys is a bucket whose writes wait for their context while it
// stalls (resumed: the stall is over).
type stalledKeys struct {
	jetstream.KeyValue
	mu      sync.Mutex
	resumed chan struct{}
	put     map[string][]byte
}

func newStalledKeys() *stalledKeys {
	return &stalledKeys{resumed: make(chan struct{}), put: map[string][]byte{}}
}

func (k *stalledKeys) resume() {
	k.mu.Lock()
	defer k.mu.Unlock()
	select {
	case <-k.resumed:
	default:
		close(k.resumed)
	}
}

func (k *stalledKeys) Put(ctx context.Context, key string, value []byte) (uint64, error) {
	select {
	case <-k.resumed:
	default:
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-k.resumed:
			return 0, errors.New("fake: the stall ended without an answer")
		}
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.put[key] = value
	return uint64(len(k.put)), nil
}

func (k *stalledKeys) written(key string) ([]byte, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	v, ok := k.put[key]
	return v, ok
}

// A bucket that stalls holds a tick at most staleBudget on the snapshots
// of evicted series whose closes were stored, and those it did not write
// are written by a later tick. Written one after another on the tick, each
// waited up to the client's timeout (5 s): thousands of them (after a
// restart that could not load the snapshots of series in episodes) held
// the closes and the rows closed on their wait for hours.
func TestStalledBucketHoldsNoTickOnStaleSnapshots(t *testing.T) {
	clock := &testClock{t: t0}
	s, h := newTestService(t, Config{MaxSeries: 1}, WithClock(clock.now))
	kv := newStalledKeys()
	s.kv = kv
	last := openEpisode(t, h, clock, "latency_ms", t0)
	_, data := sample(t, "db", "other", nil, t0, 1, "")
	ack(t, h, data) // evicts latency_ms
	release := kv.resume
	tickUnheld(t, h, clock.now(), release) // closes its episode
	tickUnheld(t, h, clock.now(), release) // the close is stored: its snapshot is rewritten, or not
	key := s.keyOf(seriesKey(last.Fingerprint))
	if _, ok := kv.written(key); ok {
		t.Fatal("the stalled bucket took a write")
	}
	kv.resume()
	tickUnheld(t, h, clock.now(), release)
	v, ok := kv.written(key)
	if !ok {
		t.Fatal("the evicted series' snapshot was not rewritten once the bucket was back")
	}
	if ser, err := s.decode(seriesKey(last.Fingerprint), v); err != nil || ser.det.InEpisode() {
		t.Errorf("the rewritten snapshot: %v, want its state with no episode open", err)
	}
}

// A close whose publish fails is sent again by the next tick, under the
// same id.
func TestSilentCloseRetried(t *testing.T) {
	clock := &testClock{t: t0}
	_, h := newTestService(t, Config{}, WithClock(clock.now))
	openEpisode(t, h, clock, "latency_ms", t0)
	clock.add(time.Hour)
	heartbeat(t, h, clock)
	h.Pub.Refuse(true)
	if err := h.Tick(clock.now()); err == nil {
		t.Log("the tick reported no error for a refused publish") // the runner keeps it either way
	}
	h.Pub.Refuse(false)
	if err := h.Tick(clock.now()); err != nil {
		t.Fatal(err)
	}
	got := episodeEvents(t, h)
	if len(got) != 2 || got[1].body.Episode != event.EpisodeClose {
		t.Fatalf("%d events after the refused close and a retry, want the open and its close", len(got))
	}
}

// The snapshot of a series in an episode keeps its last sample, so that
// after a restore a silent series is still closed; a calm one keeps none,
// and a version 1 snapshot (without it) is still read.
func TestSnapshotKeepsTheLastSampleOfAnEpisode(t *testing.T) {
	clock := &testClock{t: t0}
	s, h := newTestService(t, Config{}, WithClock(clock.now))
	last := openEpisode(t, h, clock, "latency_ms", t0)
	ser, ok := s.series.Get(seriesKey(last.Fingerprint))
	if !ok || ser.last == nil {
		t.Fatal("series in an episode has no last sample")
	}
	data, err := s.encode(nil, ser)
	if err != nil {
		t.Fatal(err)
	}
	back, err := s.decode(ser.key, data)
	if err != nil {
		t.Fatal(err)
	}
	if back.last == nil || back.last.ID != last.ID || back.last.Labels["instance"] != "db-1" || !back.det.InEpisode() {
		t.Fatalf("decoded last sample %+v, episode open %v; want sample %s", back.last, back.det.InEpisode(), last.ID)
	}
	// version 1: no last sample
	calm := *ser
	calm.last = nil
	v1, err := s.encode(nil, &calm)
	if err != nil {
		t.Fatal(err)
	}
	v1[0] = 1
	if back, err := s.decode(ser.key, v1); err != nil || back.last != nil || back.det.Observations() != ser.det.Observations() {
		t.Errorf("version 1 snapshot: %v, %+v", err, back)
	}
	if _, err := s.decode(ser.key, data[:len(ser.route)+5]); err == nil {
		t.Error("a snapshot cut inside its last sample was read")
	}
}

// After a restart the series silent since is closed once its silence has
// passed on the restarted service's clock (real JetStream and key-value
// bucket).
func TestSilentSeriesClosedAfterRestart(t *testing.T) {
	r := newRig(t)
	clock := &testClock{t: t0.Add(2 * time.Hour)} // after the samples' times
	cfg := Config{}
	svc, stop := r.start(cfg, WithClock(clock.now))
	values := append(normal(100, 5), 150, 151, 150)
	var datas [][]byte
	var last *event.Envelope
	for i, v := range values {
		e, data := sample(t, "db", "latency_ms", nil, t0.Add(time.Duration(i)*time.Minute), v, "")
		datas, last = append(datas, data), e
	}
	r.publish(datas...)
	waitObservations(t, svc, last.Fingerprint, len(values))
	open := r.waitAnomalies(1)
	stop(false)

	clock.add(time.Hour) // the restarted service is silent ten minutes later
	_, stop = r.start(cfg, WithClock(clock.now))
	defer stop(false)
	time.Sleep(2 * time.Second) // a few ticks at the start time: not silent for long enough yet
	if got := r.anomalies(); len(got) != 1 {
		t.Fatalf("%d anomalies right after the restart, want 1", len(got))
	}
	clock.add(11 * time.Minute)
	_, beat := sample(t, "other", "heartbeat", nil, clock.now(), 1, "")
	r.publish(beat) // another series' sample: this one is silent, not the bus
	got := r.waitAnomalies(2)
	a, b := anomalyBody(t, open[0]), anomalyBody(t, got[1])
	if b.Episode != event.EpisodeClose || b.EpisodeID != a.EpisodeID || got[1].Links[0] != last.ID {
		t.Errorf("after the restart: %s of episode %s linked to %v, want the close of %s linked to %s",
			b.Episode, b.EpisodeID, got[1].Links, a.EpisodeID, last.ID)
	}
}

// A series snapshot the restart cannot load (here its route's detector
// changed shape: another window) held an episode open: the restarted
// detector closes it at once, at its last sample, and once the close is
// stored rewrites the snapshot with the episode ended, so that the next
// restart does not close it again and a rollback of the configuration
// still restores the baseline. The same for a snapshot left out because
// max_series is full, and for one whose route (rule latency) ignores its
// series now (ignore: true), which no sample of it will close.
func TestEpisodeOfAnUnrestoredSnapshotIsClosed(t *testing.T) {
	const latencyRule = "detect:\n  rules:\n    - name: latency\n      match: {metric: latency_ms}\n"
	for _, c := range []struct {
		name, first, yaml, reason string
		maxSeries                 int
	}{
		{"changed shape", "", "detect:\n  defaults: {window: 64}\n", "incompatible config", 0},
		{"max_series", "", "", "memory was full (max_series)", 1},
		{"ignored", latencyRule + "      detectors: {z_threshold: 6}\n", latencyRule + "      ignore: true\n", `route "latency" ignores its series now`, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := newRig(t)
			clock := &testClock{t: t0.Add(2 * time.Hour)}
			// the pipeline of the first start, and of the rollback
			first := Config{}
			if c.first != "" {
				first.Pipeline = filepath.Join(t.TempDir(), "first.yaml")
				if err := os.WriteFile(first.Pipeline, []byte(c.first), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			svc, stop := r.start(first, WithClock(clock.now))
			var datas [][]byte
			var last, other *event.Envelope
			for i, v := range append(normal(100, 5), 150, 151, 150) {
				if c.maxSeries > 0 {
					// a second series, seen first, so snapshotted and
					// restored first: it takes the one place
					o, data := sample(t, "api", "errors", nil, t0.Add(time.Duration(i)*time.Minute-time.Second), 1, "")
					datas, other = append(datas, data), o
				}
				e, data := sample(t, "db", "latency_ms", nil, t0.Add(time.Duration(i)*time.Minute), v, "")
				datas, last = append(datas, data), e
			}
			r.publish(datas...)
			waitObservations(t, svc, last.Fingerprint, 103)
			open := r.waitAnomalies(1)
			stop(false)

			cfg := Config{MaxSeries: c.maxSeries}
			if c.yaml != "" {
				cfg.Pipeline = filepath.Join(t.TempDir(), "p.yaml")
				if err := os.WriteFile(cfg.Pipeline, []byte(c.yaml), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			svc, stop = r.start(cfg, WithClock(clock.now))
			got := r.waitAnomalies(2)
			a, b := anomalyBody(t, open[0]), anomalyBody(t, got[1])
			if b.Episode != event.EpisodeClose || b.EpisodeID != a.EpisodeID || got[1].Links[0] != last.ID ||
				!got[1].Time.Equal(last.Time) || !strings.Contains(b.Reason, c.reason) {
				t.Errorf("after the restart: %s of episode %s at %v linked to %v (%q), want the close of %s at %v linked to %s, saying %q",
					b.Episode, b.EpisodeID, got[1].Time, got[1].Links, b.Reason, a.EpisodeID, last.Time, last.ID, c.reason)
			}
			kv, err := r.js.KeyValue(context.Background(), "detector_state")
			if err != nil {
				t.Fatal(err)
			}
			key := svc.cfg.Instance + "." + seriesKey(last.Fingerprint)
			holdsEpisode := func() (bool, error) {
				e, err := kv.Get(context.Background(), key)
				if err != nil {
					return true, err
				}
				h, err := decodeHeader(key, e.Value())
				if err != nil {
					return true, err
				}
				_, ep, err := detect.OpenEpisodeOf(h.state)
				return ep || h.last != nil, err
			}
			deadline := time.Now().Add(10 * time.Second)
			for ep, err := holdsEpisode(); ep || err != nil; ep, err = holdsEpisode() {
				if time.Now().After(deadline) {
					t.Fatalf("snapshot %s still holds the episode after it was closed (%v)", key, err)
				}
				time.Sleep(100 * time.Millisecond)
			}
			if other != nil {
				if _, err := kv.Get(context.Background(), svc.cfg.Instance+"."+seriesKey(other.Fingerprint)); err != nil {
					t.Errorf("the restored series' snapshot: %v", err)
				}
			}
			stop(false)

			svc, stop = r.start(cfg, WithClock(clock.now))
			// a sample processed: the restore is behind; then ticks run
			e, beat := sample(t, "other", "heartbeat", nil, clock.now(), 1, "")
			r.publish(beat)
			waitObservations(t, svc, e.Fingerprint, 1)
			time.Sleep(2 * time.Second)
			if n := len(r.anomalies()); n != 2 {
				t.Errorf("%d anomalies after a second restart, want the episode closed once (2)", n)
			}
			stop(false)
			if c.yaml == "" {
				return
			}
			// the configuration rolled back: the baseline comes back, with
			// no episode open
			svc, stop = r.start(first, WithClock(clock.now))
			defer stop(false)
			waitObservations(t, svc, last.Fingerprint, 103)
		})
	}
}

// A group asset that stops sending in an alarm has it ended after ten of
// its rows' intervals without a sample, at its last row's time, with the
// alarm's episode id; one evicted (max_assets) in an alarm has it ended at
// the next tick.
func TestSilentAssetAlarmIsEnded(t *testing.T) {
	fault := []int{1, 3, 4}
	a := faultAsset(6, fault, 30*60)
	stopAt := a.Onset + 10 // ten rows into the fault
	for _, evict := range []bool{false, true} {
		clock := &testClock{t: a.Times[stopAt-1]} // at the last row sent
		cfg := Config{}
		if evict {
			cfg.MaxAssets = 1
		}
		s, h := newTestService(t, cfg, WithPipeline(votePipeline(t, a.Channels)), WithClock(clock.now))
		kv := &kvDeletes{}
		s.kv = kv
		datas := assetSamples(t, a)
		for _, d := range datas[:stopAt*len(a.Channels)] {
			ack(t, h, d)
		}
		got := published(t, h.Pub)
		if len(got) == 0 || got[0].body.Episode != event.EpisodeOpen {
			t.Fatalf("evict %v: %d group anomalies in the fault, want an open first", evict, len(got))
		}
		lastRow := a.Times[stopAt-1]
		if evict {
			_, d := sample(t, "plant", a.Channels[0], map[string]string{"host": "pump-2"}, lastRow, 1, "")
			ack(t, h, d)
		} else {
			clock.add(9 * time.Minute)
			heartbeat(t, h, clock)
			if err := h.Tick(clock.now()); err != nil {
				t.Fatal(err)
			}
			if n := len(published(t, h.Pub)); n != len(got) {
				t.Fatalf("%d group anomalies after 9 silent minutes, want still %d", n, len(got))
			}
			clock.add(2 * time.Minute)
			heartbeat(t, h, clock)
		}
		if err := h.Tick(clock.now()); err != nil {
			t.Fatal(err)
		}
		after := published(t, h.Pub)
		if len(after) != len(got)+1 {
			t.Fatalf("evict %v: %d group anomalies, want %d and the alarm's end", evict, len(after), len(got)+1)
		}
		c := after[len(after)-1]
		want := "no sample since the row of " + lastRow.Format(time.RFC3339)
		if evict {
			want = "dropped from the detector's memory (max_assets)"
		}
		if c.body.Episode != event.EpisodeClose || c.body.EpisodeID != got[0].body.EpisodeID || !c.env.Time.Equal(lastRow) || !strings.Contains(c.body.Reason, want) {
			t.Errorf("evict %v: last event %s of episode %s at %v, reason %q; want the close of %s at %v saying %q",
				evict, c.body.Episode, c.body.EpisodeID, c.env.Time, c.body.Reason, got[0].body.EpisodeID, lastRow, want)
		}
		if err := h.Tick(clock.now()); err != nil { // the close is stored: its snapshot goes
			t.Fatal(err)
		}
		if evict {
			var key string
			for k := range kv.put {
				key = k
			}
			if len(kv.put) != 1 || !strings.HasPrefix(key, s.cfg.Instance+"."+assetKeyPrefix) || len(kv.deleted) != 0 {
				t.Errorf("snapshots written %d (%s), deleted %v, want the evicted asset's rewritten", len(kv.put), key, kv.deleted)
			} else if a, err := s.decodeAsset(strings.TrimPrefix(key, s.cfg.Instance+"."+assetKeyPrefix), kv.put[key]); err != nil || a.det.Alarming() {
				t.Errorf("the rewritten asset snapshot: %v, want its state with the alarm ended", err)
			}
		}
		if !evict && len(kv.deleted)+len(kv.put) != 0 {
			t.Errorf("snapshots deleted %v, written %d, for an asset still in memory", kv.deleted, len(kv.put))
		}
		for _, g := range got {
			if g.env.ID == c.env.ID {
				t.Errorf("evict %v: the close has the id of an earlier anomaly, %s", evict, c.env.ID)
			}
		}
		if err := h.Tick(clock.now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if n := len(published(t, h.Pub)); n != len(after) {
			t.Errorf("evict %v: %d group anomalies an hour later, want the alarm ended once", evict, n)
		}
	}
}

// After an outage of the bus, the backlog replayed in stream order closes
// nothing: the other series' backlog samples are as old as this series'
// were, so the samples' own time has not moved on. With no sample of any
// series at all, the service's clock alone closes the episode, after
// twelve silences (two hours for one a minute).
func TestSilenceAfterAnOutage(t *testing.T) {
	clock := &testClock{t: t0.Add(2 * time.Hour)}
	_, h := newTestService(t, Config{}, WithClock(clock.now))
	last := openEpisode(t, h, clock, "latency_ms", t0)
	clock.add(20 * time.Minute) // the bus is down
	_, data := sample(t, "other", "heartbeat", nil, last.Time.Add(30*time.Second), 1, "")
	ack(t, h, data) // the first of the backlog
	if err := h.Tick(clock.now()); err != nil {
		t.Fatal(err)
	}
	if n := len(h.Pub.Messages()); n != 1 {
		t.Fatalf("%d events after the outage's first backlog sample, want the open alone", n)
	}
	clock.add(100 * time.Minute) // nothing more of any series: 2 h since this series' last sample
	if err := h.Tick(clock.now()); err != nil {
		t.Fatal(err)
	}
	got := episodeEvents(t, h)
	if len(got) != 2 || got[1].body.Episode != event.EpisodeClose {
		t.Fatalf("%d events after two hours without a sample of any series, want the open and its close", len(got))
	}
}

// A close waits while the episode's opening is not stored (its publish
// failed, and its sample's redelivery has not stored it yet): it must not
// overtake it.
func TestSilentCloseWaitsForTheOpen(t *testing.T) {
	clock := &testClock{t: t0.Add(2 * time.Hour)}
	_, h := newTestService(t, Config{}, WithClock(clock.now))
	for i, v := range normal(100, 5) {
		_, data := sample(t, "db", "latency_ms", nil, t0.Add(time.Duration(i)*time.Minute), v, "")
		ack(t, h, data)
	}
	_, spike := sample(t, "db", "latency_ms", nil, t0.Add(100*time.Minute), 150, "")
	h.Pub.Refuse(true)
	if r := h.FeedRaw(spike); r.Outcome == stagetest.Acked {
		t.Fatal("the spike was acked although its anomaly was refused")
	}
	h.Pub.Refuse(false)
	clock.add(time.Hour)
	heartbeat(t, h, clock)
	if err := h.Tick(clock.now()); err != nil {
		t.Fatal(err)
	}
	if n := len(h.Pub.Messages()); n != 0 {
		t.Fatalf("%d events stored while the opening waits for its redelivery, want none", n)
	}
	ack(t, h, spike) // the redelivery stores the opening
	if err := h.Tick(clock.now()); err != nil {
		t.Fatal(err)
	}
	got := episodeEvents(t, h)
	if len(got) != 2 || got[0].body.Episode != event.EpisodeOpen || got[1].body.Episode != event.EpisodeClose {
		t.Fatalf("%d events, want the open, then its close", len(got))
	}
}

// An anomaly counts once in unstored from a failed Settled until a
// StoredLate, however often the runner calls them: a kept input's
// redelivery calls StoredLate for every output it stores, also those the
// first delivery stored, and once per redelivery.
func TestUnstoredCountsAnAnomalyOnce(t *testing.T) {
	var n int32
	stored := new(unstoredMark)
	n += stored.failed(nil)
	n -= stored.stored() // stored the first time, StoredLate anyway
	n -= stored.stored()
	if n != 0 {
		t.Fatalf("unstored %d after an output stored at once and told StoredLate twice, want 0", n)
	}
	failed := new(unstoredMark)
	n += failed.failed(errors.New("no ack"))
	n += failed.failed(errors.New("no ack")) // told again
	if n != 1 {
		t.Fatalf("unstored %d after one output failed, want 1", n)
	}
	n -= failed.stored()
	n -= failed.stored()
	if n != 0 {
		t.Fatalf("unstored %d after it was stored late (told twice), want 0", n)
	}
	var none *unstoredMark // an output the runner never took
	if none.failed(errors.New("encode")) != 0 || none.stored() != 0 {
		t.Error("an output never taken counted in unstored")
	}
}

// A group asset snapshot the restart cannot load held an alarm: its group
// changed its channels or its method, or left the pipeline. The restarted
// detector ends the alarm at once, at the asset's last row, with the
// alarm's episode id, and once the close is stored rewrites the snapshot
// with the alarm ended: a second restart ends nothing, and a rollback of
// the configuration restores the asset without an alarm nothing would end.
func TestAlarmOfAnUnrestoredAssetIsEnded(t *testing.T) {
	fault := []int{1, 3, 4}
	a := faultAsset(6, fault, 30*60)
	stopAt := a.Onset + 10 // ten rows into the fault, and half a row more
	group := func(channels []string, extra string) string {
		return "detect:\n  groups:\n    - name: pump\n      by: [host]\n      channels: [" + strings.Join(channels, ", ") + "]\n" + extra
	}
	for _, c := range []struct{ name, yaml, reason string }{
		{"channels", group(a.Channels[:5], ""), "changed its channels"},
		{"method", group(a.Channels, "      method: pca\n"), "changed its method"},
		{"removed", "detect:\n  defaults: {}\n", "is not in the pipeline"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := newRig(t)
			write := func(yaml string) string {
				file := filepath.Join(t.TempDir(), "p.yaml")
				if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
					t.Fatal(err)
				}
				return file
			}
			before := Config{Pipeline: write(group(a.Channels, "")), Snapshot: SnapshotConfig{Interval: time.Hour}}
			svc, stop := r.start(before)
			r.publish(assetSamples(t, a)[:stopAt*len(a.Channels)+3]...) // a row open in the snapshot
			waitRows(t, svc, stopAt-1)
			var open []groupEvent
			for deadline := time.Now().Add(30 * time.Second); len(open) == 0 || float64(len(open)) < testutil.ToFloat64(svc.m.groupAnomalies); open = r.groupAnomalies() {
				if time.Now().After(deadline) {
					t.Fatalf("%d group anomalies on the stream, %v published", len(open), testutil.ToFloat64(svc.m.groupAnomalies))
				}
				time.Sleep(100 * time.Millisecond)
			}
			if open[0].body.Episode != event.EpisodeOpen || open[len(open)-1].body.Episode == event.EpisodeClose {
				t.Fatalf("group anomalies in the fault: %s to %s, want an open alarm", open[0].body.Episode, open[len(open)-1].body.Episode)
			}
			n := len(open)
			stop(false)

			after := Config{Pipeline: write(c.yaml), Snapshot: SnapshotConfig{Interval: time.Hour}}
			svc, stop = r.start(after)
			got := r.groupAnomalies()
			for deadline := time.Now().Add(30 * time.Second); len(got) <= n && time.Now().Before(deadline); got = r.groupAnomalies() {
				time.Sleep(100 * time.Millisecond)
			}
			lastRow := a.Times[stopAt-1]
			if len(got) != n+1 {
				t.Fatalf("%d group anomalies after the restart, want the %d before and the close", len(got), n)
			}
			o, e := got[0], got[n]
			if o.env.ID != open[0].env.ID || e.body.Episode != event.EpisodeClose || e.body.EpisodeID != o.body.EpisodeID ||
				!e.env.Time.Equal(lastRow) || !e.body.Start.Equal(o.body.Start) || !strings.Contains(e.body.Reason, c.reason) ||
				e.env.Fingerprint != o.env.Fingerprint {
				t.Errorf("after the restart: %s of episode %s at %v from %v (%q), fingerprint %s; want the close of %s at %v from %v saying %q, fingerprint %s",
					e.body.Episode, e.body.EpisodeID, e.env.Time, e.body.Start, e.body.Reason, e.env.Fingerprint,
					o.body.EpisodeID, lastRow, o.body.Start, c.reason, o.env.Fingerprint)
			}
			kv, err := r.js.KeyValue(context.Background(), "detector_state")
			if err != nil {
				t.Fatal(err)
			}
			key := svc.cfg.Instance + "." + assetKeyPrefix + e.body.Series
			alarmed := func() (bool, error) {
				entry, err := kv.Get(context.Background(), key)
				if err != nil {
					return true, err
				}
				h, err := readAssetHeader(key, entry.Value())
				if err != nil || !h.open {
					return true, fmt.Errorf("the rewritten snapshot: %v, row open %v", err, h.open)
				}
				at, ok := h.stateAt()
				if !ok {
					return true, fmt.Errorf("no detector state in %s", key)
				}
				_, on, err := detect.GroupAlarmOf(h.rowState[at:])
				return on, err
			}
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
				on, err := alarmed()
				if !on && err == nil {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("snapshot %s still holds the alarm after it was ended (%v)", key, err)
				}
			}
			stop(false)

			svc, stop = r.start(after)
			e2, beat := sample(t, "other", "heartbeat", nil, lastRow, 1, "")
			r.publish(beat) // processed: the restore is behind; then ticks run
			waitObservations(t, svc, e2.Fingerprint, 1)
			time.Sleep(2 * time.Second)
			if got := len(r.groupAnomalies()); got != n+1 {
				t.Errorf("%d group anomalies after a second restart, want the alarm ended once (%d)", got, n+1)
			}
			stop(false)

			// the configuration rolled back: the asset comes back, its
			// model kept and its alarm ended
			svc, stop = r.start(before)
			defer stop(false)
			r.publish(beat)
			waitObservations(t, svc, e2.Fingerprint, 1)
			svc.mu.Lock()
			defer svc.mu.Unlock()
			restored, ok := svc.assets.Get(e.body.Series)
			if !ok || restored.det.Alarming() {
				t.Errorf("after the rollback: asset restored %v, want it restored without an alarm", ok)
			}
		})
	}
}

// A group asset snapshot left out because max_assets is full held an
// alarm: the next tick ends it as an eviction's, and its snapshot is
// rewritten with the alarm ended.
func TestAlarmOfAnAssetOverMaxAssetsIsEnded(t *testing.T) {
	a := faultAsset(6, []int{1, 3, 4}, 30*60)
	stopAt := a.Onset + 10
	clock := &testClock{t: a.Times[stopAt-1]}
	p := votePipeline(t, a.Channels)
	s, h := newTestService(t, Config{}, WithPipeline(p), WithClock(clock.now))
	for _, d := range assetSamples(t, a)[:stopAt*len(a.Channels)] {
		ack(t, h, d)
	}
	alarmed, data := onlyAssetSnapshot(t, s)
	if !alarmed.det.Alarming() {
		t.Fatal("the asset is not in an alarm")
	}
	opened := published(t, h.Pub)[0]

	s, h = newTestService(t, Config{MaxAssets: 1}, WithPipeline(p), WithClock(clock.now))
	kv := &kvDeletes{}
	s.kv = kv
	_, d := sample(t, "plant", a.Channels[0], map[string]string{"host": "pump-2"}, a.Times[0], 1, "")
	ack(t, h, d) // another asset takes the one place
	if ok, err := s.restoreAsset(assetKeyPrefix+alarmed.key, data); ok || err != nil {
		t.Fatalf("restoreAsset over max_assets: %v, %v; want not restored", ok, err)
	}
	if err := h.Tick(clock.now()); err != nil {
		t.Fatal(err)
	}
	got := published(t, h.Pub)
	if len(got) != 1 {
		t.Fatalf("%d group anomalies after the restore, want the alarm's end", len(got))
	}
	c := got[0]
	if c.body.Episode != event.EpisodeClose || c.body.EpisodeID != opened.body.EpisodeID || !c.env.Time.Equal(a.Times[stopAt-1]) ||
		!strings.Contains(c.body.Reason, "max_assets") {
		t.Errorf("%s of episode %s at %v (%q), want the close of %s at %v", c.body.Episode, c.body.EpisodeID, c.env.Time, c.body.Reason,
			opened.body.EpisodeID, a.Times[stopAt-1])
	}
	if err := h.Tick(clock.now()); err != nil { // the close is stored: the snapshot is rewritten
		t.Fatal(err)
	}
	key := s.cfg.Instance + "." + assetKeyPrefix + alarmed.key
	if v, ok := kv.put[key]; !ok {
		t.Errorf("snapshot %s not rewritten (written %d)", key, len(kv.put))
	} else if b, err := s.decodeAsset(alarmed.key, v); err != nil || b.det.Alarming() {
		t.Errorf("the rewritten snapshot: %v, want its state with the alarm ended", err)
	}
}

// The episodes of series snapshots and the alarms of asset snapshots a
// restart could not load are closed at the first tick, up to max_series
// of the first and max_assets of the second: the assets' alarms took
// places of the series' (one bound for both), so with more assets than
// max_series the rest of them and every series' episode stayed open.
func TestOrphanAssetsDoNotCountAgainstMaxSeries(t *testing.T) {
	a := faultAsset(6, []int{1, 3, 4}, 30*60)
	stopAt := a.Onset + 10
	clock := &testClock{t: a.Times[stopAt-1]}
	p := votePipeline(t, a.Channels)
	s, h := newTestService(t, Config{}, WithPipeline(p), WithClock(clock.now))
	for _, d := range assetSamples(t, a)[:stopAt*len(a.Channels)] {
		ack(t, h, d)
	}
	alarmed, data := onlyAssetSnapshot(t, s)
	if !alarmed.det.Alarming() {
		t.Fatal("the asset is not in an alarm")
	}
	_, last, v, open := legacySnapshot(t, append(normal(100, 5), 150, 151))
	if !open {
		t.Fatal("no episode open in the series")
	}

	s, h = newTestService(t, Config{MaxSeries: 1}, WithPipeline(p), WithClock(clock.now))
	s.kv = &kvDeletes{}
	gone := errors.New("not in the pipeline")
	s.orphanAssetSkipped(alarmed.key, data, gone)
	s.orphanAssetSkipped(alarmed.key+"-2", data, gone)
	s.orphanSkipped(seriesKey(last.Fingerprint), v, gone)
	if err := h.Tick(clock.now()); err != nil {
		t.Fatal(err)
	}
	series := map[string]bool{}
	for _, e := range episodeEvents(t, h) {
		if e.body.Episode == event.EpisodeClose {
			series[e.body.Series] = true
		}
	}
	if len(series) != 3 {
		t.Errorf("closes of %v after the restore, want the two assets' and the series'", series)
	}
}
