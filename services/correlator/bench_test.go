package correlator

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/bus"
	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/pkg/testenv"
)

// BenchmarkEndToEnd: anomalies on 10,000 series of the catalog's services
// stored on EVENTS, then consumed by the correlator on the stage runtime
// (decode, Observe, incident events published, acks) and, in the same run
// and on the same stored messages, by a raw JetStream pull consumer that
// only acks: events/s of each and the correlator's ratio to raw, stateless
// and saving its state.
//
//	go test ./services/correlator -run '^$' -bench EndToEnd -benchtime 100000x
func BenchmarkEndToEnd(b *testing.B) {
	srv := testenv.StartNATS(b)
	log := zerolog.Nop()
	ctx := context.Background()
	nc, js, err := bus.Connect(ctx, bus.Config{URLs: []string{srv.URL()}}, log)
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	if err := bus.EnsureTopology(ctx, js, bus.DefaultStreams()); err != nil {
		b.Fatal(err)
	}
	pub, err := bus.NewPublisher(js)
	if err != nil {
		b.Fatal(err)
	}
	services := []string{"web", "checkout", "payments-db", "search"}
	t0 := time.Now().Add(-time.Hour)
	for i := range b.N {
		at := t0.Add(time.Duration(i) * time.Millisecond)
		v, score := 10.0, 0.9
		e, err := event.New(event.KindAnomaly, services[i%len(services)], at, event.AnomalyBody{
			Series: fmt.Sprintf("%016x", i%10_000), Metric: "latency", Value: &v, Expected: 1, Upper: 2, Score: &score, Detector: "robust_z"})
		if err != nil {
			b.Fatal(err)
		}
		e.ID = event.DerivedID(at, "bench", fmt.Sprint(i))
		data, _ := e.MarshalJSON()
		if _, err := pub.Publish(ctx, bus.Message{Subject: e.Subject(), ID: e.ID, Data: data}); err != nil {
			b.Fatal(err)
		}
	}
	if err := pub.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	filter := []string{event.KindFilterAll(event.KindAnomaly)}
	b.ResetTimer()

	// Raw: a pull consumer that acks each message.
	start := time.Now()
	cons, err := bus.EnsureConsumer(ctx, js, bus.StreamEvents, jetstream.ConsumerConfig{Durable: "raw", AckPolicy: jetstream.AckExplicitPolicy, FilterSubjects: filter, MaxAckPending: 4096})
	if err != nil {
		b.Fatal(err)
	}
	for got := 0; got < b.N; {
		batch, err := cons.Fetch(256, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			b.Fatal(err)
		}
		for m := range batch.Messages() {
			if err := m.Ack(); err != nil {
				b.Fatal(err)
			}
			got++
		}
	}
	raw := float64(b.N) / time.Since(start).Seconds()

	// The correlator, stateless, then saving its state (the default),
	// where an input's ack waits for the checkpoint that holds what it did
	// (one is taken whenever half of max_ack_pending wait; the tail's is
	// asked for here, as save_every would give it after a burst): from its
	// start until every input was acked, each on its own durable consumer.
	run := func(durable string, saved bool) float64 {
		cfg := Config{Catalog: writeCatalog(b), State: StateConfig{Disabled: !saved, Key: durable}, Lease: LeaseConfig{Disabled: true}}
		cfg.Consumer.Durable, cfg.Consumer.FilterSubjects = durable, filter
		svc, err := New(ctx, js, cfg, log)
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- svc.Run(rctx) }()
		for svc.ConsumerStats().Acked < uint64(b.N) {
			if svc.ConsumerStats().Delivered >= uint64(b.N) {
				svc.CheckpointSoon()
			}
			time.Sleep(time.Millisecond)
		}
		elapsed := time.Since(start)
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		return float64(b.N) / elapsed.Seconds()
	}
	rate := run("correlator", false)
	saved := run("correlator-saved", true)
	b.StopTimer()
	b.ReportMetric(raw, "raw_events/s")
	b.ReportMetric(rate, "events/s")
	b.ReportMetric(rate/raw, "x_raw")
	b.ReportMetric(saved, "saved_events/s")
	b.ReportMetric(saved/raw, "saved_x_raw")
}
