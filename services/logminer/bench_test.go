package logminer

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/bus"
	"github.com/aiops-dev/aiops/pkg/testenv"
)

// benchRig is an embedded JetStream with the default streams (file storage,
// as in production) and n encoded raw logs of three kinds over two services.
func benchRig(b *testing.B, n int) (r *rig, data [][]byte, ids []string) {
	b.Helper()
	r = &rig{nats: testenv.StartNATS(b), log: zerolog.Nop()}
	_, js, err := bus.Connect(context.Background(), bus.Config{URLs: []string{r.nats.URL()}}, r.log)
	if err != nil {
		b.Fatal(err)
	}
	if err := bus.EnsureTopology(context.Background(), js, bus.DefaultStreams()); err != nil {
		b.Fatal(err)
	}
	logs := rawLogs(b, n, 0, time.Now()) // live: counted, as the lines of a running service
	data, ids = make([][]byte, n), make([]string, n)
	for i, l := range logs {
		if data[i], err = json.Marshal(l.env); err != nil {
			b.Fatal(err)
		}
		ids[i] = l.env.ID
	}
	return r, data, ids
}

// BenchmarkHandler is the service path without the fetch: decode the raw
// envelope, mine, encode the templated log, publish it and settle the
// delivery once the stream acked it (the stage runner's workers and acker,
// handed the deliveries the consumer would hand it).
func BenchmarkHandler(b *testing.B) {
	r, data, _ := benchRig(b, b.N)
	nc, js, err := bus.Connect(context.Background(), bus.Config{URLs: []string{r.nats.URL()}}, r.log)
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	l, err := New(context.Background(), js, Config{State: StateConfig{Disabled: true}}, r.log)
	if err != nil {
		b.Fatal(err)
	}
	handle, stop := runByHand(b, l)
	var wg sync.WaitGroup
	wg.Add(b.N)
	var failed sync.Once
	done := func(err error) {
		if err != nil {
			failed.Do(func() { b.Error(err) })
		}
		wg.Done()
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		handle(ctx, &bus.Delivery{Subject: "events.log.x", Data: data[i], Delivered: 1}, done)
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "lines/s")
	b.StopTimer()
	if err := stop(); err != nil {
		b.Error(err)
	}
}

// BenchmarkService is the whole service: the raw logs are in the stream
// first, then a running logminer fetches, mines, publishes and acks them;
// the clock stops when the durable consumer has nothing left to deliver.
func BenchmarkService(b *testing.B) {
	r, data, ids := benchRig(b, b.N)
	_, js, err := bus.Connect(context.Background(), bus.Config{URLs: []string{r.nats.URL()}}, r.log)
	if err != nil {
		b.Fatal(err)
	}
	pub, err := bus.NewPublisher(js)
	if err != nil {
		b.Fatal(err)
	}
	msgs := make([]bus.Message, b.N)
	for i, d := range data {
		msgs[i] = bus.Message{Subject: "events.log.checkout", ID: ids[i], Data: d}
	}
	if _, err := pub.PublishAll(context.Background(), msgs); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	l, err := New(ctx, js, Config{State: StateConfig{Disabled: true}}, r.log)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start := time.Now()
	finished := make(chan error, 1)
	go func() { finished <- l.Run(ctx) }()
	for l.Stats().Acked < uint64(b.N) {
		time.Sleep(time.Millisecond)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "lines/s")
	b.StopTimer()
	cancel()
	<-finished
}

// BenchmarkPublishBaseline is raw JetStream on the same server: publishing
// the same number of messages (the raw logs) asynchronously and waiting for
// every ack, the floor under any stage that publishes one event per input.
func BenchmarkPublishBaseline(b *testing.B) {
	r, data, ids := benchRig(b, b.N)
	_, js, err := bus.Connect(context.Background(), bus.Config{URLs: []string{r.nats.URL()}}, r.log)
	if err != nil {
		b.Fatal(err)
	}
	pub, err := bus.NewPublisher(js)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		if _, err := pub.Publish(ctx, bus.Message{Subject: "events.log.x.templated", ID: ids[i], Data: data[i]}); err != nil {
			b.Fatal(err)
		}
	}
	if err := pub.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}
