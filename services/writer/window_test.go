package writer

import (
	"strings"
	"testing"
	"time"

	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/pkg/stage"
	"github.com/aiops-dev/aiops/pkg/stage/stagetest"
)

// TestTimeWindowDeadLettersWhatRetentionWouldDelete is issue #14 items 4
// and 5 for producers that publish straight to NATS: the gateway refuses
// events outside its window, but the writer stored any time it was given,
// so an event timed 2020 was stored and deleted at the next retention
// pass, and days far apart opened a partition each. With the window the
// writer dead-letters them with the reason and stores nothing of them.
func TestTimeWindowDeadLettersWhatRetentionWouldDelete(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	h, tables := windowedSink(t, now)
	at := func(ts time.Time) *event.Envelope {
		e, err := event.New(event.KindLog, "checkout", ts, event.LogBody{Message: "m"})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	for _, c := range []struct {
		ts   time.Time
		want string
	}{
		{time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), "past the events table's retention"},
		{time.Date(1970, 1, 2, 0, 0, 0, 0, time.UTC), "past the events table's retention"},
		{time.Date(2105, 1, 1, 0, 0, 0, 0, time.UTC), "after now"},
		{now.Add(25 * time.Hour), "after now"},
	} {
		r := h.Feed(at(c.ts))[0]
		if r.Outcome != stagetest.DeadLettered || !strings.Contains(r.Err.Error(), c.want) {
			t.Errorf("%s: %v %v, want dead-lettered with %q", c.ts, r.Outcome, r.Err, c.want)
		}
	}
	// The gateway's window (13 days back, an hour ahead) is inside.
	for _, ts := range []time.Time{now.Add(-13 * 24 * time.Hour), now, now.Add(time.Hour)} {
		if r := h.Feed(at(ts))[0]; r.Outcome != stagetest.Acked {
			t.Errorf("%s: %v %v, want acked", ts, r.Outcome, r.Err)
		}
	}
	if n := len(tables[TableEvents].Rows()); n != 3 {
		t.Fatalf("%d events rows, want the 3 inside the window", n)
	}
}

// writer.max_event_future defaults to a day; a negative one is a config error.
func TestConfigMaxEventFuture(t *testing.T) {
	if got := DefaultConfig().MaxEventFuture; got != DefaultMaxEventFuture {
		t.Fatalf("default %s", got)
	}
	if err := (Config{MaxEventFuture: -time.Second}).Validate(); err == nil || !strings.Contains(err.Error(), "writer.max_event_future") {
		t.Fatalf("negative: %v", err)
	}
}

// windowedSink is a sink on in-memory tables whose time window (14 days
// back, the default ahead) runs on the clock now.
func windowedSink(t *testing.T, now time.Time) (*stagetest.Harness, map[string]*stagetest.Table) {
	t.Helper()
	sink, tables := memorySink(t)
	sink.SetTimeWindow(TimeWindow{MaxPast: 14 * 24 * time.Hour, MaxFuture: DefaultMaxEventFuture, Now: func() time.Time { return now }})
	return stagetest.Start(t, sink, stage.Config{Name: "writer"}), tables
}
