package writer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/aiops-dev/aiops/pkg/bus"
	"github.com/aiops-dev/aiops/pkg/errs"
	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/pkg/store"
)

// TestTypedTablesFromJetStream publishes one event of each kind and an
// incident whose acknowledged_at is not a time: each good event reaches
// events and its typed table(s), field by field where the analyst reads
// them; the bad one is dead-lettered naming the field and reaches no table.
func TestTypedTablesFromJetStream(t *testing.T) {
	r := newRig(t)
	_, js := r.connect()
	pub, err := bus.NewPublisher(js)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now().UTC().Truncate(time.Second).Add(-time.Minute)
	bodies := map[event.Kind]string{
		event.KindLog:    `{"message":"payment declined","template_id":"t7","template":"payment <*>","params":["declined"]}`,
		event.KindMetric: `{"name":"latency_ms","value":12.5,"unit":"ms"}`,
		event.KindAlert:  `{"name":"HighLatency","status":"firing","annotations":{"runbook":"http://rb"}}`,
		event.KindChange: `{"type":"deploy","version":"v9","author":"alice"}`,
		event.KindAnomaly: `{"series":"0123456789abcdef","value":99,"expected":10,"lower":5,"upper":15,"score":0.97,"detector":"mad",` +
			`"episode":"update","episode_id":"ep-1","start":"2026-03-02T10:00:00Z","end":"2026-03-02T10:05:00Z","peak":7.5,"peak_time":"2026-03-02T10:03:00Z","peak_value":120}`,
		event.KindIncident:        `{"incident_id":"inc-7","status":"resolved","title":"slow checkout","team":"team-a","opened_at":"` + at.Format(time.RFC3339) + `","merged_into":"inc-6"}`,
		event.KindLogTemplate:     `{"template_id":"00112233aabbccdd","template":"payment <*>","status":"new","example":"payment declined"}`,
		event.KindWebhookDelivery: `{"incident_id":"inc-7","receiver":"dba-oncall","attempt":2,"status_code":503,"error":"503 Service Unavailable","duration_ms":41,"idempotency_key":"01JPA9V3KX8Q6M1T2R3S4W5Y6Z","retrying":true}`,
	}
	var msgs []bus.Message
	ids := map[event.Kind]string{}
	for _, k := range event.Kinds {
		e := mustEnvelope(t, k, bodies[k])
		e.Time, e.ObservedTime, e.Links = at, at, nil
		raw, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		ids[k] = e.ID
		msgs = append(msgs, bus.Message{Subject: e.Subject(), ID: e.ID, Data: raw})
	}
	bad := mustEnvelope(t, event.KindIncident, `{"incident_id":"inc-8","status":"opened","title":"t","acknowledged_at":"yesterday"}`)
	bad.Time, bad.ObservedTime = at, at
	badRaw, _ := json.Marshal(bad)
	msgs = append(msgs, bus.Message{Subject: bad.Subject(), ID: bad.ID, Data: badRaw})
	if _, err := pub.PublishAll(context.Background(), msgs); err != nil {
		t.Fatal(err)
	}

	stop, w := r.startWriter(r.dsn, Config{MaxAge: 100 * time.Millisecond})
	defer stop()
	r.waitFor(time.Minute, "consumer drained", func() (bool, string) { return r.drained(js) })
	if s := w.Stats(); s.Acked != uint64(len(event.Kinds)) || s.DeadLettered != 1 {
		if dl, err := js.Stream(context.Background(), bus.StreamDeadLetter); err == nil {
			for seq := uint64(1); seq <= s.DeadLettered; seq++ {
				if m, err := dl.GetMsg(context.Background(), seq); err == nil {
					t.Logf("dead letter %d: %s: %s", seq, m.Header.Get(bus.HeaderDeadLetterReason), m.Data)
				}
			}
		}
		t.Fatalf("stats %+v: want one acked per kind, 1 dead-lettered", s)
	}
	if n := r.count("SELECT count() FROM events FINAL"); n != uint64(len(event.Kinds)) {
		t.Fatalf("events has %d rows, want %d (the bad incident in none)", n, len(event.Kinds))
	}
	for table, kind := range map[string]event.Kind{
		TableLogs: event.KindLog, TableMetricSamples: event.KindMetric, TableAlerts: event.KindAlert, TableChanges: event.KindChange,
		TableAnomalies: event.KindAnomaly, TableIncidents: event.KindIncident, TableIncidentHistory: event.KindIncident,
		TableLogTemplates: event.KindLogTemplate, TableWebhookDeliveries: event.KindWebhookDelivery,
	} {
		if n := r.count("SELECT count() FROM "+table+" FINAL WHERE id = ?", ids[kind]); n != 1 {
			t.Errorf("%s: %d rows with the %s event's id, want 1", table, n, kind)
		}
		if n := r.count("SELECT count() FROM " + table + " FINAL"); n != 1 {
			t.Errorf("%s: %d rows, want 1", table, n)
		}
	}
	var (
		template string
		params   []string
		value    float64
		runbook  string
		score    float64
		team     string
		opened   time.Time
	)
	ctx := context.Background()
	scan := func(q string, dest ...any) {
		if err := r.store.Conn.QueryRow(ctx, q).Scan(dest...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	scan("SELECT template, params FROM logs", &template, &params)
	scan("SELECT value FROM metric_samples", &value)
	scan("SELECT annotations.value[indexOf(annotations.key, 'runbook')] FROM alerts", &runbook)
	scan("SELECT score FROM anomalies", &score)
	var (
		episode, episodeID       string
		epStart, epEnd, peakTime time.Time
		peak, peakValue          float64
	)
	scan("SELECT episode, episode_id, episode_start, episode_end, peak, peak_time, peak_value FROM anomalies",
		&episode, &episodeID, &epStart, &epEnd, &peak, &peakTime, &peakValue)
	epAt := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	if episode != "update" || episodeID != "ep-1" || !epStart.Equal(epAt) || !epEnd.Equal(epAt.Add(5*time.Minute)) ||
		peak != 7.5 || !peakTime.Equal(epAt.Add(3*time.Minute)) || peakValue != 120 {
		t.Fatalf("anomaly episode columns: %q %q start %v end %v peak %v at %v value %v", episode, episodeID, epStart, epEnd, peak, peakTime, peakValue)
	}
	var mergedInto, historyMergedInto string
	scan("SELECT team, opened_at, merged_into FROM incidents FINAL", &team, &opened, &mergedInto)
	scan("SELECT merged_into FROM incident_history FINAL", &historyMergedInto)
	if template != "payment <*>" || !slices.Equal(params, []string{"declined"}) || value != 12.5 || runbook != "http://rb" || score != 0.97 ||
		team != "team-a" || !opened.Equal(at) || mergedInto != "inc-6" || historyMergedInto != "inc-6" {
		t.Fatalf("typed columns: template %q params %q value %v runbook %q score %v team %q opened %v merged_into %q (history %q)",
			template, params, value, runbook, score, team, opened, mergedInto, historyMergedInto)
	}

	dlq, err := js.Stream(ctx, bus.StreamDeadLetter)
	if err != nil {
		t.Fatal(err)
	}
	m, err := dlq.GetMsg(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if reason := m.Header.Get(bus.HeaderDeadLetterReason); !strings.Contains(reason, "body.acknowledged_at") {
		t.Fatalf("dead letter reason %q does not name body.acknowledged_at", reason)
	}

	// The inserts are on /metrics: every kind's event is one row of
	// events, plus one row of its own table.
	for table, want := range map[string]float64{"events": float64(len(event.Kinds)), "logs": 1, "incidents": 1, "webhook_deliveries": 1} {
		if got := testutil.ToFloat64(w.sink.metrics.rows.WithLabelValues(table)); got != want {
			t.Errorf("aiops_writer_rows_written_total{table=%q} = %g, want %g", table, got, want)
		}
	}
	if n := testutil.CollectAndCount(w.Collector(), "aiops_writer_batch_rows"); n < 3 {
		t.Errorf("%d tables with a batch size histogram", n)
	}
}

// fakeRetentionClock lets a test set "now" and fire the next pass.
type fakeRetentionClock struct {
	mu   sync.Mutex
	now  time.Time
	tick chan time.Time
}

func (c *fakeRetentionClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeRetentionClock) After(time.Duration) <-chan time.Time { return c.tick }

func (c *fakeRetentionClock) set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

// TestRetentionDropsOldPartitionsPerTable writes logs and metric samples 20
// days and 1 day old: with 14 days for logs and 30 for samples, the first
// pass drops only the old logs; the next pass, 40 days later by the
// injected clock, drops the rest.
func TestRetentionDropsOldPartitionsPerTable(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	sink, err := NewSink(r.store.Conn, SinkConfig{MaxRows: 100, MaxAge: time.Hour, MaxPendingRows: 100}, r.log)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var failed []error
	var mu sync.Mutex
	for i, age := range []time.Duration{20 * 24 * time.Hour, 24 * time.Hour} {
		for _, k := range []event.Kind{event.KindLog, event.KindMetric} {
			body := `{"message":"m"}`
			if k == event.KindMetric {
				body = `{"name":"cpu","value":1}`
			}
			e := mustEnvelope(t, k, body)
			e.Time = now.Add(-age).Add(time.Duration(i) * time.Second)
			wg.Add(1)
			sink.Write(ctx, e, func(err error) {
				if err != nil {
					mu.Lock()
					failed = append(failed, err)
					mu.Unlock()
				}
				wg.Done()
			})
		}
	}
	if err := sink.Close(ctx); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if len(failed) > 0 {
		t.Fatal(failed[0])
	}

	clock := &fakeRetentionClock{now: now, tick: make(chan time.Time)}
	ret, err := NewRetention(r.store.Conn, map[string]int{TableLogs: 14}, time.Hour, r.log, clock)
	if err != nil {
		t.Fatal(err)
	}
	if d := ret.Days(); d[TableLogs] != 14 || d[TableMetricSamples] != DefaultRetentionDays[TableMetricSamples] {
		t.Fatalf("retention days %v", d)
	}
	runCtx, cancel := context.WithCancel(ctx)
	finished := make(chan struct{})
	go func() { ret.Run(runCtx); close(finished) }()
	defer func() { cancel(); <-finished }()

	want := func(what string, logs, samples uint64) {
		r.waitFor(30*time.Second, what, func() (bool, string) {
			l, s := r.count("SELECT count() FROM logs"), r.count("SELECT count() FROM metric_samples")
			return l == logs && s == samples, fmt.Sprintf("logs %d, metric_samples %d", l, s)
		})
	}
	want("first pass drops the 20-day-old logs only", 1, 2)
	if n := r.count("SELECT count() FROM events"); n != 2 {
		t.Fatalf("events after the first pass: %d rows, want the two 1-day-old ones (14 days)", n)
	}
	clock.set(now.Add(40 * 24 * time.Hour))
	clock.tick <- now
	want("the next pass drops the rest", 0, 0)

	// A table that is not partitioned by time makes a pass fail, naming
	// the table, without stopping the others.
	if err := r.store.Conn.Exec(ctx, "CREATE TABLE IF NOT EXISTS not_by_time (x UInt8) ENGINE = MergeTree PARTITION BY x ORDER BY x"); err != nil {
		t.Fatal(err)
	}
	b, err := store.NewBatchWriter(r.store.Conn, store.BatchConfig{Table: "not_by_time", Columns: []string{"x"}}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Add(ctx, []any{uint8(1)}, nil); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(ctx); err != nil {
		t.Fatal(err)
	}
	broken := &Retention{conn: r.store.Conn, days: map[string]int{"not_by_time": 1, TableLogs: 1}, interval: time.Hour, clock: clock, log: r.log}
	if _, err := broken.Apply(ctx); err == nil || !strings.Contains(err.Error(), "not_by_time") {
		t.Fatalf("Apply on a table without time partitions: %v, want an error naming it", err)
	}
}

// TestSinkAfterCloseReportsNotTaken: an event offered to a closed sink is
// reported once, as a transient failure (it will come again), never lost
// silently.
func TestSinkAfterCloseReportsNotTaken(t *testing.T) {
	r := newRig(t)
	sink, err := NewSink(r.store.Conn, SinkConfig{MaxRows: 10, MaxAge: time.Second, MaxPendingRows: 10}, r.log)
	if err != nil {
		t.Fatal(err)
	}
	if err := sink.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	var got []error
	sink.Write(context.Background(), mustEnvelope(t, event.KindIncident, `{"incident_id":"i","status":"opened","title":"t"}`), func(err error) { got = append(got, err) })
	if len(got) != 1 || !errors.Is(got[0], ErrNotTaken) || !errors.Is(got[0], store.ErrClosed) || errs.IsPermanent(got[0]) {
		t.Fatalf("done calls %v: want one transient ErrNotTaken wrapping store.ErrClosed", got)
	}
}
