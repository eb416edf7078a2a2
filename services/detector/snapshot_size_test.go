package detector

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/aiops-dev/aiops/pkg/event"
)

// A series whose samples carry labels near the envelope's limits (an
// accepted sample of under 512 KiB) and that opens an episode: its
// snapshot holds the last sample's labels, resource and metric name. It
// must fit the bucket (NATS's default max_payload, 1 MiB) or the series is
// never saved: every snapshot fails to write it, and a restart loses its
// baseline and its open episode.
func TestSnapshotOfSeriesWithLabelsNearTheLimitsFitsTheBucket(t *testing.T) {
	labels := map[string]string{}
	for i := range 110 {
		labels[fmt.Sprintf("l%03d", i)] = strings.Repeat("<", 4000) // valid UTF-8, printable
	}
	s, h := newTestService(t, Config{})
	var e *event.Envelope
	var data []byte
	for i, v := range normal(101, 3) {
		if i == 100 {
			v = 150 // the spike: an episode opens
		}
		e, _ = sample(t, "api", "latency_ms", labels, t0.Add(time.Duration(i)*time.Minute), v, "")
		// as a producer writes it (json.Marshal would escape every '<')
		var err error
		if data, err = e.MarshalJSON(); err != nil {
			t.Fatal(err)
		}
		ack(t, h, data)
	}
	if err := e.CheckFits(); err != nil {
		t.Fatalf("the sample is not one the gateway accepts: %v", err)
	}
	if len(h.Pub.Messages()) != 1 {
		t.Fatalf("%d anomalies, want the spike's open", len(h.Pub.Messages()))
	}
	v := snapshotOf(t, s, e.Fingerprint)
	t.Logf("sample %d bytes, its series' snapshot %d bytes", len(data), len(v))

	r := newRig(t)
	kv, err := r.js.CreateOrUpdateKeyValue(context.Background(), jetstream.KeyValueConfig{Bucket: "review_det"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(context.Background(), "detector."+seriesKey(e.Fingerprint), v); err != nil {
		t.Errorf("the snapshot of a series whose accepted sample is %d bytes is %d bytes and cannot be written: %v", len(data), len(v), err)
	}
}
