package detector

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/aiops-dev/aiops/pkg/bus"
)

// TestScaleOutByPartition: with the EVENTS stream partitioning metric
// samples by service, two detectors, one per partition, share the series:
// every series is held by exactly one of them with all its observations,
// and a spike of every service becomes exactly one anomaly.
func TestScaleOutByPartition(t *testing.T) {
	r := newRig(t)
	const partitions = 2
	if err := bus.EnsureTopology(context.Background(), r.js, bus.DefaultStreams(bus.WithMetricPartitions(partitions))); err != nil {
		t.Fatal(err)
	}
	svcs := make([]*Service, partitions)
	for p := range svcs {
		name := fmt.Sprintf("detector-p%d", p)
		var stop func(bool)
		svcs[p], stop = r.start(Config{
			Consumer: bus.ConsumerConfig{Durable: name, FilterSubjects: []string{bus.MetricPartitionFilter(p)}},
			Instance: name,
		})
		defer stop(false)
	}

	const services = 10
	values := append(normal(100, 40), 180) // a spike at the end of each series
	fps := make([]string, services)
	var data [][]byte
	for s := range services {
		for i, v := range values {
			e, d := sample(t, fmt.Sprintf("svc%d", s), "latency_ms", nil, t0.Add(time.Duration(i)*time.Minute), v, "")
			data, fps[s] = append(data, d), e.Fingerprint
		}
	}
	r.publish(data...)
	got := r.waitAnomalies(services)

	held := [partitions]int{}
	for s, fp := range fps {
		deadline := time.Now().Add(30 * time.Second)
		for {
			owners, full := 0, 0
			for p, svc := range svcs {
				if n, ok := svc.Observations(fp); ok {
					owners++
					if n == len(values) {
						full++
						held[p]++
					}
				}
			}
			if owners == 1 && full == 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("series of svc%d: held by %d detectors, complete in %d; want exactly one of each", s, owners, full)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	if held[0] == 0 || held[1] == 0 {
		t.Errorf("series per partition %v: one detector got everything", held)
	}
	seen := map[string]bool{}
	for _, a := range got {
		if seen[a.Service] {
			t.Errorf("two anomalies for %s", a.Service)
		}
		seen[a.Service] = true
	}
	t.Logf("series per partition: %v", held)
}
