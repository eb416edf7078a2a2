package bus

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// A request left unanswered is asked again; an answer, a refusal or the
// caller's own end is taken as it is.
func TestAskAgainAsksAgainOnlyWhatWentUnanswered(t *testing.T) {
	unanswered := func(n int, then error) (func() (int, error), *int) {
		calls := 0
		return func() (int, error) {
			calls++
			if calls <= n {
				return 0, context.DeadlineExceeded
			}
			return calls, then
		}, &calls
	}
	defer func(p time.Duration) { askAgainPause = p }(askAgainPause)
	askAgainPause = time.Millisecond
	ctx := context.Background()
	ask, calls := unanswered(2, nil)
	if v, err := AskAgain(ctx, ask); err != nil || v != 3 || *calls != 3 {
		t.Fatalf("two unanswered, then an answer: %d, %v after %d calls; want the answer after 3", v, err, *calls)
	}
	refused := errors.New("refused")
	ask, calls = unanswered(0, refused)
	if _, err := AskAgain(ctx, ask); !errors.Is(err, refused) || *calls != 1 {
		t.Fatalf("a refusal: %v after %d calls; want it after 1", err, *calls)
	}
	ask, calls = unanswered(apiTries+5, nil)
	if _, err := AskAgain(ctx, ask); !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "no answer") || *calls != apiTries {
		t.Fatalf("never answered: %v after %d calls; want a 'no answer' error after %d", err, *calls, apiTries)
	}
	ended, cancel := context.WithCancel(ctx)
	cancel()
	ask, calls = unanswered(apiTries, nil)
	if _, err := AskAgain(ended, ask); err == nil || *calls != 1 {
		t.Fatalf("the caller's context ended: %v after %d calls; want its error after 1", err, *calls)
	}
}

// unansweredOnce is a JetStream whose first bucket creation goes
// unanswered, as on a fresh cluster with every service starting at once.
type unansweredOnce struct {
	jetstream.JetStream
	kv int
}

func (u *unansweredOnce) CreateKeyValue(ctx context.Context, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	if u.kv++; u.kv == 1 {
		return nil, context.DeadlineExceeded
	}
	return u.JetStream.CreateKeyValue(ctx, cfg)
}

func TestLeaseBucketUnansweredIsAskedAgain(t *testing.T) {
	e := newEnv(t, newTestServerURL(t))
	js := &unansweredOnce{JetStream: e.js}
	l, err := NewLease(context.Background(), js, "leases_unanswered", "k", "me", 10*time.Second)
	if err != nil {
		t.Fatalf("lease with its bucket's first creation unanswered: %v", err)
	}
	if ok, err := l.TryAcquire(testCtx(t)); !ok || err != nil {
		t.Fatalf("acquire: %v %v", ok, err)
	}
}
