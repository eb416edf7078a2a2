package detector

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/aiops-dev/aiops/pkg/bus"
)

// heldPublisher publishes anomalies whose acks come only when released.
type heldPublisher struct {
	mu   sync.Mutex
	held []*future
}

func (p *heldPublisher) Publish(_ context.Context, m bus.Message) (jetstream.PubAckFuture, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f := &future{ok: make(chan *jetstream.PubAck, 1), err: make(chan error, 1), msg: &nats.Msg{Subject: m.Subject, Data: m.Data}}
	p.held = append(p.held, f)
	return f, nil
}

func (p *heldPublisher) release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, f := range p.held {
		f.ok <- &jetstream.PubAck{}
	}
	p.held = nil
}

// kvRecorder stands for the bucket's stream: it acks every write, or fails
// the next fail writes.
type kvRecorder struct {
	mu   sync.Mutex
	fail int
	keys []string
}

func (k *kvRecorder) PublishAsync(subject string, data []byte, _ ...jetstream.PublishOpt) (jetstream.PubAckFuture, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	f := &future{ok: make(chan *jetstream.PubAck, 1), err: make(chan error, 1)}
	if k.fail > 0 {
		k.fail--
		f.err <- errors.New("fake: no ack")
		return f, nil
	}
	k.keys = append(k.keys, strings.TrimPrefix(subject, "$KV."+DefaultBucket+"."))
	f.ok <- &jetstream.PubAck{}
	return f, nil
}

func (k *kvRecorder) written() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]string(nil), k.keys...)
}

// A series whose anomaly is not acked yet stays out of the snapshot, so a
// crash before the ack leaves a state without the anomalous sample and its
// redelivery is scored (and published) again. Once acked, it is written.
func TestSnapshotWaitsForAnomalyAck(t *testing.T) {
	pub := &heldPublisher{}
	s, _ := newTestService(t, Config{}, WithPublisher(pub))
	kv := &kvRecorder{}
	s.snap = kv
	spike, data := feed(t, s, "api", "latency", 100, "")
	_, calm := sample(t, "api", "other", nil, t0, 1, "")
	if err := handle(s, calm); err != nil {
		t.Fatal(err)
	}
	result := make(chan error, 1)
	s.Handle(context.Background(), &bus.Delivery{Data: data}, func(err error) { result <- err })
	select {
	case err := <-result:
		t.Fatalf("sample settled (%v) before its anomaly was acked", err)
	default:
	}
	n, err := s.Snapshot(context.Background())
	if err != nil || n != 1 {
		t.Fatalf("snapshot wrote %d (%v), want only the calm series", n, err)
	}
	if got := kv.written(); len(got) != 1 || strings.HasSuffix(got[0], spike.Fingerprint) {
		t.Fatalf("written %v: the series with an unacked anomaly was snapshotted", got)
	}
	pub.release()
	if err := <-result; err != nil {
		t.Fatal(err)
	}
	if n, err := s.Snapshot(context.Background()); err != nil || n != 1 {
		t.Fatalf("after the ack the snapshot wrote %d (%v), want the spiked series", n, err)
	}
	if got := kv.written(); len(got) != 2 || got[1] != "detector."+spike.Fingerprint {
		t.Errorf("written %v, want detector.%s last", got, spike.Fingerprint)
	}
	if n, _ := s.Snapshot(context.Background()); n != 0 {
		t.Errorf("a snapshot with nothing changed wrote %d", n)
	}
}

// A failed write leaves the series dirty, and the next snapshot writes it.
func TestSnapshotRetriesFailedWrites(t *testing.T) {
	s, _ := newTestService(t, Config{})
	kv := &kvRecorder{fail: 1}
	s.snap = kv
	e, data := sample(t, "api", "m", nil, t0, 1, "")
	if err := handle(s, data); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Snapshot(context.Background()); err == nil || n != 0 {
		t.Fatalf("failed write: wrote %d, err %v", n, err)
	}
	if n, err := s.Snapshot(context.Background()); err != nil || n != 1 {
		t.Fatalf("retry: wrote %d, err %v", n, err)
	}
	if got := kv.written(); len(got) != 1 || got[0] != "detector."+e.Fingerprint {
		t.Errorf("written %v", got)
	}
}

// A cancelled snapshot leaves what it did not reach for the next one.
func TestCancelledSnapshotKeepsTheRest(t *testing.T) {
	s, _ := newTestService(t, Config{Snapshot: SnapshotConfig{Chunk: 1}})
	kv := &kvRecorder{}
	s.snap = kv
	for i := 0; i < 3; i++ {
		_, data := sample(t, "api", string(rune('a'+i)), nil, t0, 1, "")
		if err := handle(s, data); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	n, err := s.Snapshot(ctx)
	if err == nil {
		t.Fatal("cancelled snapshot reported no error")
	}
	m, err := s.Snapshot(context.Background())
	if err != nil || n != 0 || m != 3 {
		t.Errorf("cancelled snapshot wrote %d, the next %d (%v); want 0 then 3", n, m, err)
	}
}
