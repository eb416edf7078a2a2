package ingest

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"
)

// The gateway looks at the writer's backlog once per interval while it is
// small, and at every request once it is past half the limit: between two
// looks a burst of requests could otherwise fill the rest of the stream.
// A look that fails refuses nothing (the publish tells a bus away itself).
func TestStoreBacklogIsLookedAtEveryRequestPastHalfTheLimit(t *testing.T) {
	ratios := []float64{0.1, 0.5, 0.95, 0.2}
	var looks int
	var fail error
	measure := func(context.Context) (float64, error) {
		if fail != nil {
			return 0, fail
		}
		r := ratios[looks]
		looks++
		return r, nil
	}
	clk := &clock{now: testNow}
	h := newTestHandler(t, &fakePublisher{}, nil, WithClock(clk.Now), WithStoreBacklog(measure, time.Hour))
	post := func(want int) {
		t.Helper()
		rec := request{path: PathEvents, contentType: "application/json", body: []byte(logLine)}.do(h)
		if rec.Code != want {
			t.Fatalf("answer %d %s after %d looks, want %d", rec.Code, rec.Body, looks, want)
		}
		if want == http.StatusServiceUnavailable && rec.Header().Get("Retry-After") == "" {
			t.Fatal("a 503 without Retry-After")
		}
	}
	post(http.StatusOK) // 0.1
	post(http.StatusOK) // 0.1 still: within the hour
	if looks != 1 {
		t.Fatalf("%d looks within the interval, want 1", looks)
	}
	clk.Add(time.Hour)
	post(http.StatusOK)                 // 0.5, past half of 0.9
	post(http.StatusServiceUnavailable) // 0.95, looked at again at once
	post(http.StatusOK)                 // 0.2: the writer caught up
	if looks != 4 {
		t.Fatalf("%d looks, want 4", looks)
	}
	clk.Add(time.Hour)
	fail = errors.New("consumer not found")
	post(http.StatusOK)
}
