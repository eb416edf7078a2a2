package bus

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/aiops-dev/aiops/pkg/testenv"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
)

// BenchmarkPublishConsume publishes b.N messages of 200 B asynchronously with
// message ids, then consumes them with one ack per message, through pkg/bus
// and through plain nats.go jetstream, against the same embedded server and a
// memory-storage stream. msgs/s counts both phases; pub_msgs/s and
// consume_msgs/s split them.
//
//	go test -run '^$' -bench PublishConsume -benchtime 200000x ./bus/
func BenchmarkPublishConsume(b *testing.B) {
	srv := testenv.StartNATS(b)
	nc, err := nats.Connect(srv.URL())
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(benchInFlight))
	if err != nil {
		b.Fatal(err)
	}
	if _, err := js.CreateStream(context.Background(), DefaultStreams(WithMemoryStorage())[2]); err != nil {
		b.Fatal(err)
	}
	payload := make([]byte, 200)
	for i := range payload {
		payload[i] = 'a' + byte(i%26)
	}
	run := 0
	// setup gives each run a fresh stream, the ids to publish and a consumer
	// config; it is not timed.
	setup := func(b *testing.B) (string, []string) {
		b.StopTimer()
		run++
		name := fmt.Sprintf("BENCH%d", run)
		ctx := context.Background()
		if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
			Name: name, Subjects: []string{"bench" + strconv.Itoa(run) + ".>"},
			Storage: jetstream.MemoryStorage, Duplicates: time.Minute,
		}); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = js.DeleteStream(context.Background(), name) })
		ids := make([]string, b.N)
		for i := range ids {
			ids[i] = fmt.Sprintf("01JBENCH%08d%d", i, run)
		}
		return name, ids
	}

	b.Run("bus", func(b *testing.B) {
		stream, ids := setup(b)
		subject := "bench" + stream[len("BENCH"):] + ".x"
		ctx := context.Background()
		p, err := NewPublisher(js, WithMaxInFlight(benchInFlight))
		if err != nil {
			b.Fatal(err)
		}
		c, err := NewConsumer(ctx, js, ConsumerConfig{
			Stream: stream, Durable: "bus", BatchSize: benchBatch, MaxAckPending: benchMaxAckPending, FetchWait: time.Second,
		}, zerolog.Nop())
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.StartTimer()
		start := time.Now()
		for i := range ids {
			if _, err := p.Publish(ctx, Message{Subject: subject, ID: ids[i], Data: payload}); err != nil {
				b.Fatal(err)
			}
		}
		if err := p.Flush(ctx); err != nil {
			b.Fatal(err)
		}
		published := time.Now()
		runCtx, stop := context.WithCancel(ctx)
		n, want := 0, b.N
		var consumed time.Time
		err = c.Run(runCtx, Sync(func(ctx context.Context, d *Delivery) error {
			n++
			if n == want {
				consumed = time.Now()
				b.StopTimer()
				stop()
			}
			return nil
		}))
		if err != nil {
			b.Fatal(err)
		}
		report(b, start, published, consumed)
		if st := c.Stats(); st.Acked != uint64(b.N) {
			b.Fatalf("acked %d of %d", st.Acked, b.N)
		}
	})

	b.Run("raw", func(b *testing.B) {
		stream, ids := setup(b)
		subject := "bench" + stream[len("BENCH"):] + ".x"
		ctx := context.Background()
		cons, err := js.CreateOrUpdateConsumer(ctx, stream, jetstream.ConsumerConfig{
			Durable: "raw", AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: benchMaxAckPending,
		})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.StartTimer()
		start := time.Now()
		for i := range ids {
			if _, err := js.PublishAsync(subject, payload, jetstream.WithMsgID(ids[i])); err != nil {
				b.Fatal(err)
			}
		}
		select {
		case <-js.PublishAsyncComplete():
		case <-time.After(time.Minute):
			b.Fatal("publish acks missing after 1m")
		}
		published := time.Now()
		got := 0
		for got < b.N {
			mb, err := cons.Fetch(min(benchBatch, b.N-got), jetstream.FetchMaxWait(time.Second))
			if err != nil {
				b.Fatal(err)
			}
			for m := range mb.Messages() {
				if err := m.Ack(); err != nil {
					b.Fatal(err)
				}
				got++
			}
		}
		consumed := time.Now()
		b.StopTimer()
		report(b, start, published, consumed)
	})
}

const (
	benchInFlight      = 4096
	benchBatch         = 256
	benchMaxAckPending = 1024
)

func report(b *testing.B, start, published, consumed time.Time) {
	n := float64(b.N)
	b.ReportMetric(n/consumed.Sub(start).Seconds(), "msgs/s")
	b.ReportMetric(n/published.Sub(start).Seconds(), "pub_msgs/s")
	b.ReportMetric(n/consumed.Sub(published).Seconds(), "consume_msgs/s")
}
