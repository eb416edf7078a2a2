package writer

import (
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/errs"
	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/pkg/stage"
	"github.com/aiops-dev/aiops/pkg/stage/stagetest"
)

// sinkRig is the writer's sink on the stage runtime with in-memory tables:
// the writer's logic with no server.
func sinkRig(t *testing.T) (*stagetest.Harness, map[string]*stagetest.Table) {
	t.Helper()
	sink, tables := memorySink(t)
	return stagetest.Start(t, sink, stage.Config{Name: "writer"}), tables
}

// memorySink is the writer's sink on in-memory tables, not started.
func memorySink(t *testing.T) (*Sink, map[string]*stagetest.Table) {
	t.Helper()
	tables := map[string]*stagetest.Table{}
	sink, err := NewSinkOf(func(table string) (Inserter, error) {
		tables[table] = stagetest.NewTable()
		return tables[table], nil
	}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	return sink, tables
}

// incidentState is an incident event of the service billing at at.
func incidentState(t *testing.T, at time.Time, body event.IncidentBody) *event.Envelope {
	t.Helper()
	e, err := event.New(event.KindIncident, "billing", at, body)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func logEnvelope(t *testing.T, msg string) *event.Envelope {
	t.Helper()
	e, err := event.New(event.KindLog, "checkout", time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC), event.LogBody{Message: msg})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// An event becomes its raw row and its kind's row, and is acked once both
// committed; a log's body fields are the logs row's columns.
func TestSinkWritesEachEventTwice(t *testing.T) {
	h, tables := sinkRig(t)
	e := logEnvelope(t, "payment provider timed out")
	if r := h.Feed(e)[0]; r.Outcome != stagetest.Acked {
		t.Fatalf("%v %v", r.Outcome, r.Err)
	}
	if n := len(tables[TableEvents].Rows()); n != 1 {
		t.Fatalf("%d events rows, want 1", n)
	}
	logs := tables[TableLogs].Rows()
	if len(logs) != 1 {
		t.Fatalf("%d logs rows, want 1", len(logs))
	}
	row := logs[0]
	var sawID, sawMessage bool
	for i, col := range Columns[TableLogs] {
		switch v := row[i].(type) {
		case string:
			sawID = sawID || col == "id" && v == e.ID
			sawMessage = sawMessage || col == "message" && v == "payment provider timed out"
		case *string:
			sawID = sawID || col == "id" && *v == e.ID
			sawMessage = sawMessage || col == "message" && *v == "payment provider timed out"
		}
	}
	if !sawID || !sawMessage {
		t.Fatalf("logs row %v: want the id and the message in their columns", row)
	}
	for _, table := range []string{TableMetricSamples, TableAlerts, TableIncidents} {
		if n := len(tables[table].Rows()); n != 0 {
			t.Fatalf("%d rows in %s for a log", n, table)
		}
	}
}

// An insert that fails naks the event (it comes again, and the committed
// row is deduplicated by its id); one whose data can never fit
// dead-letters it; so does a body that does not fit its kind's table.
func TestSinkSettlesFailures(t *testing.T) {
	h, tables := sinkRig(t)
	tables[TableLogs].FailNext(1, nil)
	if r := h.Feed(logEnvelope(t, "a"))[0]; r.Outcome != stagetest.Naked || !strings.Contains(r.Err.Error(), "on purpose") {
		t.Fatalf("failed insert: %v %v, want naked", r.Outcome, r.Err)
	}
	tables[TableLogs].FailNext(1, errs.Permanentf("value too long for column message"))
	if r := h.Feed(logEnvelope(t, "b"))[0]; r.Outcome != stagetest.DeadLettered {
		t.Fatalf("permanent insert failure: %v %v, want dead-lettered", r.Outcome, r.Err)
	}
	bad, err := event.New(event.KindMetric, "api", time.Now(), map[string]any{"name": "x", "value": "not a number"})
	if err != nil {
		t.Fatal(err)
	}
	if r := h.FeedRaw(mustJSON(t, bad)); r.Outcome != stagetest.DeadLettered {
		t.Fatalf("a metric whose value is not a number: %v %v, want dead-lettered", r.Outcome, r.Err)
	}
}

// The runtime flushes the sink when it stops: rows held for a batch are
// committed and their events acked, not left for a redelivery.
func TestSinkFlushedOnStop(t *testing.T) {
	h, tables := sinkRig(t)
	for _, tb := range tables {
		tb.Hold(true)
	}
	results := make(chan stagetest.Result, 1)
	go func() { results <- h.Feed(logEnvelope(t, "held"))[0] }()
	deadline := time.Now().Add(10 * time.Second)
	for tables[TableLogs].Held() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if err := h.Stop(); err != nil {
		t.Fatal(err)
	}
	if r := <-results; r.Outcome != stagetest.Acked || len(tables[TableEvents].Rows()) != 1 {
		t.Fatalf("%v, events rows %d: want the held event committed and acked by the flush at stop", r.Outcome, len(tables[TableEvents].Rows()))
	}
}

func mustJSON(t *testing.T, e *event.Envelope) []byte {
	t.Helper()
	data, err := e.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return data
}
