package bus_test

import (
	"context"
	"os"
	"time"

	"github.com/aiops-dev/aiops/pkg/bus"
	"github.com/aiops-dev/aiops/pkg/errs"
	"github.com/rs/zerolog"
)

// A service connects, ensures the topology, publishes with ids and consumes
// with a handler that only returns an error.
func Example() {
	ctx := context.Background()
	log := zerolog.New(os.Stderr)
	cfg := bus.Config{
		URLs:     []string{"nats://127.0.0.1:4222"},
		Name:     "writer",
		User:     "writer",
		Password: os.Getenv("AIOPS_NATS_PASSWORD"), // never in a config file
	}
	nc, js, err := bus.Connect(ctx, cfg, log)
	if err != nil {
		log.Fatal().Err(err).Msg("connect")
	}
	defer nc.Close()
	if err := bus.EnsureTopology(ctx, js, bus.DefaultStreams()); err != nil {
		log.Fatal().Err(err).Msg("topology")
	}

	pub, _ := bus.NewPublisher(js, bus.WithMaxInFlight(1024))
	// Returns once the stream stored both: only then answer the HTTP client.
	if _, err := pub.PublishAll(ctx, []bus.Message{
		{Subject: "events.log.checkout", ID: "01JD0000000000000000000001", Data: []byte(`{"body":"a"}`)},
		{Subject: "events.log.checkout", ID: "01JD0000000000000000000002", Data: []byte(`{"body":"b"}`)},
	}); err != nil {
		log.Error().Err(err).Msg("publish")
	}

	c, err := bus.NewConsumer(ctx, js, bus.ConsumerConfig{
		Stream: bus.StreamEvents, Durable: "writer", FilterSubjects: []string{"events.>"},
		BatchSize: 500, MaxAckPending: 5000, AckWait: time.Minute,
	}, log)
	if err != nil {
		log.Fatal().Err(err).Msg("consumer")
	}
	_ = c.Run(ctx, bus.Sync(func(ctx context.Context, d *bus.Delivery) error {
		if len(d.Data) == 0 {
			return errs.Permanentf("empty event at stream seq %d", d.StreamSeq) // dead-lettered
		}
		return nil // acked; any other error is retried with backoff
	}))
}
