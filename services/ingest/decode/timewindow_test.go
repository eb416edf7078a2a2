package decode

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
)

// TestEventTimeWindow is issue #14 items 4 and 5: events timed 2020-01-01
// and 1970-01-02 were acked and then deleted at the next retention pass, one
// timed 2105 was kept forever, and a request of 2,000 events a day apart
// opened 2,000 partitions per table. Every format now refuses an event
// timed more than MaxPast before or MaxFuture after the receive time, on
// the field the producer set.
func TestEventTimeWindow(t *testing.T) {
	envelope := func(ts string) string {
		return `{"kind":"log","service":"a","time":"` + ts + `","body":{"message":"m"}}`
	}
	for _, c := range []struct {
		ts, want string
	}{
		{"2020-01-01T00:00:00Z", "more than 13 days before the gateway's clock"},
		{"1970-01-02T00:00:00Z", "more than 13 days before the gateway's clock"},
		{"2105-01-01T00:00:00Z", "more than 1h0m0s after the gateway's clock"},
		{testNow.Add(61 * time.Minute).Format(time.RFC3339), "after the gateway's clock"},
	} {
		_, err := Events([]byte(envelope(c.ts)), opts())
		if p := hasProblem(t, err, 0, "time"); !strings.Contains(p.Problem, c.want) {
			t.Errorf("%s: %q, want %q", c.ts, p.Problem, c.want)
		}
		_, err = NDJSON([]byte(envelope(c.ts)), opts())
		hasProblem(t, err, 0, "time")
	}
	for _, ts := range []time.Time{testNow.Add(-DefaultMaxPast), testNow.Add(DefaultMaxFuture), testNow} {
		if _, err := Events([]byte(envelope(ts.Format(time.RFC3339))), opts()); err != nil {
			t.Errorf("%s, inside the window: %v", ts, err)
		}
	}
	// The window follows the options.
	o := opts()
	o.MaxPast = 30 * 24 * time.Hour
	if _, err := Events([]byte(envelope(testNow.Add(-20*24*time.Hour).Format(time.RFC3339))), o); err != nil {
		t.Errorf("20 days back with a 30-day window: %v", err)
	}

	// One request of 2,000 events one a day from 2027-01-01: refused whole.
	var b strings.Builder
	for i := range 2000 {
		fmt.Fprintln(&b, envelope(time.Date(2027, 1, 1+i, 0, 0, 0, 0, time.UTC).Format(time.RFC3339)))
	}
	_, err := NDJSON([]byte(b.String()), opts())
	var de *Error
	if problemsOf(t, err); !errorsAs(err, &de) || de.Total != 2000 {
		t.Fatalf("2,000 far-apart events: %v", err)
	}

	old := testNow.Add(-20 * 24 * time.Hour)
	rw := encodeWriteRequest([]rwSeries{{labels: []rwLabel{{"__name__", "up"}}, samples: []rwSample{{1, testNow.UnixMilli()}, {1, old.UnixMilli()}}}})
	rb, err := RemoteWrite(rw, opts())
	refusedProblem(t, rb, err, 0, "samples[1].timestamp")
	if err != nil || len(rb.Events) != 1 {
		t.Errorf("the sample in the window beside one out of it: %v, want it taken", err)
	}

	_, err = OTLPLogs(otlpLogsWithBody(nestedAnyValue(0, false, "x"), 1, uint64(old.UnixNano())), Protobuf, opts())
	hasProblem(t, err, 0, "scopeLogs[0].logRecords[0].timeUnixNano")

	_, err = OTLPMetrics(otlpGaugeWithAttribute(nestedAnyValue(0, false, "x"), 1, uint64(testNow.Add(2*time.Hour).UnixNano())), Protobuf, opts())
	hasProblem(t, err, 0, "scopeMetrics[0].metrics[0].gauge.dataPoints[0].timeUnixNano")

	_, err = Changes([]byte(`{"service":"a","time":"2020-01-01T00:00:00Z","description":"deploy"}`), opts())
	hasProblem(t, err, 0, "time")
}

// TestOldFiringAlertIsClampedAndFlagged: Alertmanager resends an alert that
// has been firing for weeks with its true startsAt; refusing it would lose
// the whole notification. Its event is timed inside the window (the same
// time all day, so resends keep one id), flagged with time_clamped_from,
// and the body keeps startsAt. An old resolved alert is refused.
func TestOldFiringAlertIsClampedAndFlagged(t *testing.T) {
	started := testNow.Add(-40 * 24 * time.Hour)
	firing := fmt.Sprintf(`{"version":"4","status":"firing","alerts":[{"status":"firing","labels":{"alertname":"Old"},"startsAt":%q}]}`, started.Format(time.RFC3339))
	b, err := Alertmanager([]byte(firing), opts())
	if err != nil {
		t.Fatal(err)
	}
	e := b.Events[0]
	windowStart := testNow.Add(-DefaultMaxPast)
	if e.Time.Before(windowStart) || e.Time.After(testNow) || !e.Time.Equal(e.Time.Truncate(24*time.Hour)) {
		t.Errorf("clamped time %s, want a midnight in [%s, %s]", e.Time, windowStart, testNow)
	}
	if got := string(e.Extra["time_clamped_from"]); got != `"`+started.Format(time.RFC3339Nano)+`"` {
		t.Errorf("time_clamped_from = %s", got)
	}
	var body struct {
		StartsAt time.Time `json:"starts_at"`
	}
	if err := json.Unmarshal(e.Body, &body); err != nil || !body.StartsAt.Equal(started) {
		t.Errorf("body startsAt %s (%v), want %s", body.StartsAt, err, started)
	}
	// A resend an hour later is the same event.
	o := opts()
	o.Now = testNow.Add(time.Hour)
	again, err := Alertmanager([]byte(firing), o)
	if err != nil || again.Events[0].ID != e.ID {
		t.Errorf("resend an hour later: id %v, want %s (%v)", again.Events[0].ID, e.ID, err)
	}
	resolved := fmt.Sprintf(`{"version":"4","status":"resolved","alerts":[{"status":"resolved","labels":{"alertname":"Old"},"startsAt":%q,"endsAt":%q}]}`,
		started.Format(time.RFC3339), started.Add(time.Hour).Format(time.RFC3339))
	_, err = Alertmanager([]byte(resolved), opts())
	hasProblem(t, err, 0, "endsAt")
}

func errorsAs(err error, target **Error) bool { return errors.As(err, target) }

// TestFitsCheckSkipIsSafe: Events and NDJSON skip event.CheckFits for an
// envelope sent in at most fitsCheckFrom bytes; the envelopes of that size
// that grow the most when re-encoded (raw U+2028, which becomes a 6-byte
// escape) must still pass it.
func TestFitsCheckSkipIsSafe(t *testing.T) {
	head := `{"kind":"log","service":"a","time":"2026-11-21T12:00:00Z","body":{"message":"`
	tail := `"}}`
	n := (fitsCheckFrom - len(head) - len(tail)) / len("\u2028")
	line := head + strings.Repeat("\u2028", n) + tail
	if len(line) > fitsCheckFrom {
		t.Fatalf("line is %d bytes, over %d", len(line), fitsCheckFrom)
	}
	b, err := NDJSON([]byte(line), opts())
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Events[0].CheckFits(); err != nil {
		t.Fatalf("an envelope of %d bytes as sent fails CheckFits, which was skipped: %v", len(line), err)
	}
	// And one byte-pair past the bound is checked (and refused).
	over := head + strings.Repeat("\u2028", n+400) + tail
	_, err = NDJSON([]byte(over), opts())
	hasProblem(t, err, 0, "body.message")
}

// TestObservedTimeWindow: an observed_time set by the producer far after
// the gateway's clock froze the correlator's member of its alert (every
// later report of it looked older, so old news), and only the time was
// checked. The observed time is refused past MaxFuture as the time is, on
// the field the producer set; one in the window, or none (the receive
// time), is taken.
func TestObservedTimeWindow(t *testing.T) {
	envelope := func(observed string) string {
		return `{"kind":"alert","service":"a","time":"` + testNow.Format(time.RFC3339) + `","observed_time":"` + observed +
			`","body":{"name":"Down","status":"firing"}}`
	}
	for _, ts := range []string{"2105-01-01T00:00:00Z", testNow.Add(61 * time.Minute).Format(time.RFC3339)} {
		_, err := Events([]byte(envelope(ts)), opts())
		if p := hasProblem(t, err, 0, "observed_time"); !strings.Contains(p.Problem, "after the gateway's clock") || !strings.Contains(p.Problem, "max_event_future") {
			t.Errorf("%s: %q, want it after the gateway's clock, naming max_event_future", ts, p.Problem)
		}
		_, err = NDJSON([]byte(envelope(ts)), opts())
		hasProblem(t, err, 0, "observed_time")
	}
	for _, ts := range []time.Time{testNow.Add(DefaultMaxFuture), testNow, testNow.Add(-time.Hour)} {
		b, err := Events([]byte(envelope(ts.Format(time.RFC3339))), opts())
		if err != nil {
			t.Errorf("observed %s, inside the window: %v", ts, err)
		} else if !b.Events[0].ObservedTime.Equal(ts) {
			t.Errorf("observed %s taken as %s", ts, b.Events[0].ObservedTime)
		}
	}
	o := opts()
	o.MaxFuture = 3 * time.Hour
	if _, err := Events([]byte(envelope(testNow.Add(2*time.Hour).Format(time.RFC3339))), o); err != nil {
		t.Errorf("observed 2h ahead with max_event_future 3h: %v", err)
	}

	// OTLP: a record's observedTimeUnixNano, beside a good one.
	record := func(observed time.Time) []byte {
		r := protowire.AppendTag(nil, 1, protowire.Fixed64Type) // time_unix_nano
		r = protowire.AppendFixed64(r, uint64(testNow.UnixNano()))
		r = protowire.AppendTag(r, 11, protowire.Fixed64Type) // observed_time_unix_nano
		r = protowire.AppendFixed64(r, uint64(observed.UnixNano()))
		return pbMsg(r, 5, nestedAnyValue(0, false, "x")) // body
	}
	scope := pbMsg(pbMsg(nil, 2, record(testNow.Add(2*time.Hour))), 2, record(testNow))
	b, err := OTLPLogs(pbMsg(nil, 1, pbMsg(otlpResource("svc"), 2, scope)), Protobuf, opts())
	refusedProblem(t, b, err, 0, "scopeLogs[0].logRecords[0].observedTimeUnixNano")
	if err != nil || len(b.Events) != 1 {
		t.Errorf("the record observed in the window beside one out of it: %v, want it taken", err)
	}
}
