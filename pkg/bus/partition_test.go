package bus

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/aiops-dev/aiops/pkg/testenv"
	"github.com/nats-io/nats.go/jetstream"
)

// With metric partitions the EVENTS stream stores each service's samples
// under one partition token, the same for every sample of the service; the
// partition filters split the samples exactly; other kinds and subjects
// that already carry a partition are stored as sent; and the partitions
// can be switched off again.
func TestMetricPartitions(t *testing.T) {
	srv := testenv.StartNATS(t) // the default stream names: a server of its own
	e := newEnv(t, srv.URL())
	ctx := testCtx(t)
	const n = 3
	if err := EnsureTopology(ctx, e.js, DefaultStreams(WithMemoryStorage(), WithMetricPartitions(n))); err != nil {
		t.Fatal(err)
	}
	const services, perService = 24, 3
	for i := 0; i < services; i++ {
		for j := 0; j < perService; j++ {
			if _, err := e.js.Publish(ctx, fmt.Sprintf("events.metric.svc%d", i), []byte("x")); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := e.js.Publish(ctx, "events.log.svc0", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := e.js.Publish(ctx, "events.metric.1.svc0", []byte("republished")); err != nil {
		t.Fatal(err)
	}

	partitionOf := map[string]string{}
	used := map[string]bool{}
	var sawLog, sawRepublished bool
	for _, m := range fetchAll(t, e.js, StreamEvents) {
		tok := strings.Split(m.Subject(), ".")
		switch {
		case m.Subject() == "events.log.svc0":
			sawLog = true
			continue
		case string(m.Data()) == "republished":
			sawRepublished = m.Subject() == "events.metric.1.svc0"
			continue
		case len(tok) != 4 || tok[0] != "events" || tok[1] != "metric":
			t.Fatalf("sample stored on %q, want events.metric.<p>.<service>", m.Subject())
		}
		p, svc := tok[2], tok[3]
		if p < "0" || p > fmt.Sprint(n-1) || len(p) != 1 {
			t.Fatalf("partition token %q of %s, want 0..%d", p, m.Subject(), n-1)
		}
		if was, ok := partitionOf[svc]; ok && was != p {
			t.Fatalf("service %s in partitions %s and %s", svc, was, p)
		}
		partitionOf[svc], used[p] = p, true
	}
	if len(partitionOf) != services || len(used) < 2 {
		t.Fatalf("%d services in %d partitions, want %d services over at least 2", len(partitionOf), len(used), services)
	}
	if !sawLog || !sawRepublished {
		t.Errorf("a log (%v) or an already partitioned sample (%v) was not stored as sent", sawLog, sawRepublished)
	}
	s, err := e.js.Stream(ctx, StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	var total uint64
	for p := 0; p < n; p++ {
		info, err := s.Info(ctx, jetstream.WithSubjectFilter(MetricPartitionFilter(p)))
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range info.State.Subjects {
			total += c
		}
	}
	if total != services*perService+1 { // +1: the republished sample
		t.Errorf("the partition filters hold %d samples, want %d", total, services*perService+1)
	}

	// Off again: a new sample is stored as sent.
	if err := EnsureTopology(ctx, e.js, DefaultStreams(WithMemoryStorage())); err != nil {
		t.Fatal(err)
	}
	if ack, err := e.js.Publish(context.Background(), "events.metric.late", []byte("y")); err != nil {
		t.Fatal(err)
	} else if m, err := s.GetMsg(ctx, ack.Sequence); err != nil || m.Subject != "events.metric.late" {
		t.Errorf("after switching partitions off: stored on %v (%v), want events.metric.late", m, err)
	}
}
