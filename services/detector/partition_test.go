package detector

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/aiops-dev/aiops/pkg/bus"
	"github.com/aiops-dev/aiops/pkg/event"
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

// A sample published straight to a partition subject is stored as sent:
// on a partition not its service's, it reached an instance that does not
// own its series, which scored the series beside the owner (two
// detectors, two baselines, two sets of episodes). Such a sample is acked
// unscored and counted there; the owner holds the series alone, with
// every sample the stream gave its partition (one published straight to
// the right partition subject included).
func TestSampleOnAnotherPartitionIsNotScored(t *testing.T) {
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
	const services, n = 6, 40
	fps := make([]string, services)
	var data [][]byte
	for s := range services {
		for i, v := range normal(n, uint64(s)) {
			e, d := sample(t, fmt.Sprintf("svc%d", s), "latency_ms", nil, t0.Add(time.Duration(i)*time.Minute), v, "")
			data, fps[s] = append(data, d), e.Fingerprint
		}
	}
	r.publish(data...)
	// one sample of each series straight to every partition's subject: one
	// of them is its own
	var straight []bus.Message
	for s := range services {
		for p := range partitions {
			e, d := sample(t, fmt.Sprintf("svc%d", s), "latency_ms", nil, t0.Add(time.Duration(n+p)*time.Minute), 100, "")
			straight = append(straight, bus.Message{Subject: fmt.Sprintf("events.metric.%d.svc%d", p, s), ID: e.ID, Data: d})
		}
	}
	if _, err := r.pub.PublishAll(context.Background(), straight); err != nil {
		t.Fatal(err)
	}

	ignored := func() float64 {
		var sum float64
		for _, svc := range svcs {
			sum += testutil.ToFloat64(svc.m.ignored.WithLabelValues("other_partition"))
		}
		return sum
	}
	deadline := time.Now().Add(30 * time.Second)
	for s, fp := range fps {
		for {
			owners, full := 0, 0
			for _, svc := range svcs {
				if got, ok := svc.Observations(fp); ok {
					owners++
					if got == n+1 {
						full++
					}
				}
			}
			if owners == 1 && full == 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("series of svc%d: held by %d detectors, %d of them with its %d samples; want one", s, owners, full, n+1)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	for ignored() != services {
		if time.Now().After(deadline) {
			t.Fatalf("%v samples counted in samples_ignored_total{reason=\"other_partition\"}, want %d", ignored(), services)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A partition filter beyond the stream's partitions reads nothing: the
// detector refuses to start, naming it.
func TestPartitionFilterBeyondTheStreamIsRefused(t *testing.T) {
	r := newRig(t)
	if err := bus.EnsureTopology(context.Background(), r.js, bus.DefaultStreams(bus.WithMetricPartitions(2))); err != nil {
		t.Fatal(err)
	}
	_, err := New(context.Background(), r.js, Config{
		Consumer: bus.ConsumerConfig{Durable: "detector-p2", FilterSubjects: []string{bus.MetricPartitionFilter(2)}},
	}, r.log)
	if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "partition 2") {
		t.Errorf("New with partition 2 of 2: %v, want an invalid configuration naming partition 2", err)
	}
}

// The owner a detector computes for a sample's service (partitions.of) is
// the partition the NATS server's subject transform stores it under, for
// every service name the envelope allows: reserved characters, non-ASCII
// letters and spaces, emoji, names at the length limit, and random ones.
// A name on which the two disagreed would have its samples acked unscored
// by the only instance that reads them.
func TestPartitionOfAgreesWithTheServer(t *testing.T) {
	r := newRig(t)
	const partitions = 7
	if err := bus.EnsureTopology(context.Background(), r.js, bus.DefaultStreams(bus.WithMetricPartitions(partitions))); err != nil {
		t.Fatal(err)
	}
	parts, err := ownedPartitions(context.Background(), r.js, bus.ConsumerConfig{Stream: bus.StreamEvents, FilterSubjects: []string{bus.MetricPartitionFilter(0)}})
	if err != nil || parts == nil || parts.n != partitions {
		t.Fatalf("partitions read from the stream: %+v, %v; want %d", parts, err, partitions)
	}
	names := []string{"checkout", "_", "a.b", "a*b", "a>b", "a b", "a.*>", ".", "..", "Zürich", "日本語-api", "🚀", "a\u00a0b",
		"x\u3000y", "a\u2028b", "ǅ", "\u0301", strings.Repeat("é", 128), strings.Repeat("s.", 128)}
	rng := rand.New(rand.NewPCG(1, 2))
	runes := []rune("az09 ._*>-~ÿ€日本🚀\u00a0\u2003")
	for range 300 {
		b := make([]rune, 1+rng.IntN(20))
		for i := range b {
			b[i] = runes[rng.IntN(len(runes))]
		}
		names = append(names, string(b))
	}
	want := map[string]string{} // event id -> service
	var data [][]byte
	for i, name := range names {
		e, d := sample(t, name, "latency_ms", nil, t0.Add(time.Duration(i)*time.Second), 1, "")
		if err := e.Validate(); err != nil {
			t.Fatalf("service %q: %v", name, err)
		}
		want[e.ID] = name
		data = append(data, d)
	}
	r.publish(data...)

	c, err := r.js.OrderedConsumer(context.Background(), bus.StreamEvents, jetstream.OrderedConsumerConfig{FilterSubjects: []string{"events.metric.>"}})
	if err != nil {
		t.Fatal(err)
	}
	stored := 0
	for stored < len(names) {
		batch, err := c.FetchNoWait(100)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			stored++
			e, err := event.Parse(m.Data())
			if err != nil {
				t.Fatal(err)
			}
			tokens := strings.SplitN(m.Subject(), ".", 4)
			if len(tokens) != 4 || tokens[3] != event.SubjectToken(want[e.ID]) {
				t.Fatalf("sample of %q stored on %q", want[e.ID], m.Subject())
			}
			if got := strconv.FormatUint(uint64(parts.of(e.Service)), 10); got != tokens[2] {
				t.Errorf("service %q: partition %s by the detector, %s by the server", e.Service, got, tokens[2])
			}
		}
		if n == 0 {
			t.Fatalf("%d of %d samples read back", stored, len(names))
		}
	}
}

// The stream's partition count raised while a detector runs (another
// service started with a new streams.metric_partitions): the samples the
// stream now gives the detector's partition were another partition's by
// the count it read at start, and were left unscored until a restart.
// The first of them makes it read the count again, and the next are its.
func TestPartitionCountChangedWhileRunning(t *testing.T) {
	r := newRig(t)
	if err := bus.EnsureTopology(context.Background(), r.js, bus.DefaultStreams(bus.WithMetricPartitions(2))); err != nil {
		t.Fatal(err)
	}
	svc, stop := r.start(Config{
		Consumer: bus.ConsumerConfig{Durable: "detector-p0", FilterSubjects: []string{bus.MetricPartitionFilter(0)}},
		Instance: "detector-p0",
	})
	defer stop(false)
	if err := bus.EnsureTopology(context.Background(), r.js, bus.DefaultStreams(bus.WithMetricPartitions(3))); err != nil {
		t.Fatal(err)
	}
	// a service partition 0 owns of three, and partition 1 of two
	two, three := &partitions{n: 2, own: []bool{true, false}}, &partitions{n: 3, own: []bool{true, false, false}}
	service := ""
	for i := 0; service == ""; i++ {
		if s := fmt.Sprintf("svc%d", i); three.owns(s) && !two.owns(s) {
			service = s
		}
	}
	at := t0
	send := func(n int) (fp string) {
		var data [][]byte
		for range n {
			e, d := sample(t, service, "latency_ms", nil, at, 100, "")
			at = at.Add(time.Minute)
			data, fp = append(data, d), e.Fingerprint
		}
		r.publish(data...)
		return fp
	}
	send(1)
	deadline := time.Now().Add(30 * time.Second)
	for p := svc.parts.Load(); p == nil || p.n != 3; p = svc.parts.Load() {
		if time.Now().After(deadline) {
			t.Fatalf("the detector still owns by %d partitions after a sample of its own partition by 3", p.n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	fp := send(5)
	for {
		if got, _ := svc.Observations(fp); got == 5 {
			break
		}
		if time.Now().After(deadline) {
			got, _ := svc.Observations(fp)
			t.Fatalf("%d of the 5 samples sent after the count was read again were scored", got)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
