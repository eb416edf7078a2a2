package stage

import (
	"context"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
)

// unansweredOnce is a JetStream whose first object store creation goes
// unanswered, as on a fresh cluster with every service starting at once.
type unansweredOnce struct {
	jetstream.JetStream
	calls int
}

func (u *unansweredOnce) CreateOrUpdateObjectStore(ctx context.Context, cfg jetstream.ObjectStoreConfig) (jetstream.ObjectStore, error) {
	if u.calls++; u.calls == 1 {
		return nil, context.DeadlineExceeded
	}
	return u.JetStream.CreateOrUpdateObjectStore(ctx, cfg)
}

// A state bucket's creation left unanswered is asked again, not the
// end of the service's start.
func TestStateStoreUnansweredIsAskedAgain(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: needs JetStream")
	}
	js := testJetStream(t)
	u := &unansweredOnce{JetStream: js}
	if _, err := OpenStateStore(context.Background(), u, StateConfig{Bucket: "unanswered"}, "test"); err != nil || u.calls != 2 {
		t.Fatalf("state store with its first creation unanswered: %v after %d calls, want it made at the second", err, u.calls)
	}
}
