package writer

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aiops-dev/aiops/pkg/errs"
	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/pkg/service"
)

func mustEnvelope(t *testing.T, k event.Kind, body string) *event.Envelope {
	t.Helper()
	at := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	e := &event.Envelope{SchemaVersion: 1, ID: event.NewID(at), Kind: k, Time: at, ObservedTime: at.Add(time.Second),
		Service: "checkout", Labels: map[string]string{"team": "team-a", "env": "prod"}, Severity: event.SeverityError,
		Links: []string{event.NewID(at)}, Body: json.RawMessage(body)}
	e.Fingerprint = event.Fingerprint(k, e.Service, e.Labels, nil)
	return e
}

// column returns the value of column name in a row of table.
func column(t *testing.T, table string, row []any, name string) any {
	t.Helper()
	for i, c := range Columns[table] {
		if c == name {
			return deref(row[i])
		}
	}
	t.Fatalf("%s has no column %s", table, name)
	return nil
}

// deref reads through the pointers rows hold to the envelope's fields.
func deref(v any) any {
	rv := reflect.ValueOf(v)
	if rv.Kind() == reflect.Pointer {
		if rv.IsNil() {
			return nil
		}
		return rv.Elem().Interface()
	}
	return v
}

func TestRowsRouteEachKindToItsTables(t *testing.T) {
	cases := []struct {
		kind   event.Kind
		body   string
		tables []string
		check  map[string]map[string]any // table -> column -> value
	}{
		{event.KindLog, `{"message":"boom","template_id":"t1","template":"<*> boom","params":["a"],"trace_id":"tr"}`,
			[]string{TableEvents, TableLogs}, map[string]map[string]any{TableLogs: {"message": "boom", "template_id": "t1", "trace_id": "tr", "derived": uint8(1), "severity": "error"}}},
		{event.KindMetric, `{"name":"cpu","value":0.5}`,
			[]string{TableEvents, TableMetricSamples}, map[string]map[string]any{TableMetricSamples: {"name": "cpu", "value": 0.5, "type": "gauge"}}},
		{event.KindAlert, `{"name":"HighLatency","status":"firing","starts_at":"2026-03-02T09:58:00Z","annotations":{"summary":"slow"},"generator_url":"http://prom/g"}`,
			[]string{TableEvents, TableAlerts}, map[string]map[string]any{TableAlerts: {
				"alert_name": "HighLatency", "status": "firing", "generator_url": "http://prom/g",
				"starts_at": time.Date(2026, 3, 2, 9, 58, 0, 0, time.UTC), "ends_at": time.Unix(0, 0).UTC(),
			}}},
		{event.KindChange, `{"type":"deploy","version":"v2","author":"alice","commit":"abc"}`,
			[]string{TableEvents, TableChanges}, map[string]map[string]any{TableChanges: {"change_type": "deploy", "version": "v2", "commit": "abc"}}},
		{event.KindAnomaly, `{"series":"0123456789abcdef","metric":"cpu","value":9,"expected":1,"lower":0,"upper":2,"score":0.9,"detector":"mad","window":"5m"}`,
			[]string{TableEvents, TableAnomalies}, map[string]map[string]any{TableAnomalies: {"value": 9.0, "upper": 2.0, "score": 0.9, "detector": "mad", "window": "5m"}}},
		{event.KindLogTemplate, `{"template_id":"00112233aabbccdd","template":"a <*>","status":"changed","previous_id":"0011223344556677","merged_from":["0011223344556677"]}`,
			[]string{TableEvents, TableLogTemplates}, map[string]map[string]any{TableLogTemplates: {"template_id": "00112233aabbccdd", "status": "changed", "previous_id": "0011223344556677"}}},
		// An opened state without opened_at: its own time is the opening.
		{event.KindIncident, `{"incident_id":"inc-9","status":"opened","title":"t"}`,
			[]string{TableEvents, TableIncidents, TableIncidentHistory}, map[string]map[string]any{
				TableIncidents:       {"incident_id": "inc-9", "opened_at": time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC), "resolved_at": time.Unix(0, 0).UTC()},
				TableIncidentHistory: {"status": "opened", "opened_at": time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)},
			}},
		// A resolved state without resolved_at or team: the event time
		// resolves it, the label names the team.
		{event.KindIncident, `{"incident_id":"inc-9","status":"resolved","title":"t","opened_at":"2026-03-02T09:00:00Z","acknowledged_at":"2026-03-02T09:30:00Z"}`,
			[]string{TableEvents, TableIncidents, TableIncidentHistory}, map[string]map[string]any{
				TableIncidents: {"incident_id": "inc-9", "team": "team-a", "opened_at": time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC),
					"resolved_at": time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC), "acknowledged_at": time.Date(2026, 3, 2, 9, 30, 0, 0, time.UTC),
					"version": uint64(time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC).UnixNano())},
				TableIncidentHistory: {"status": "resolved", "team": "team-a", "merged_into": ""},
			}},
		// The last state of a merged incident names where it went, in
		// both tables.
		{event.KindIncident, `{"incident_id":"inc-9","status":"resolved","title":"t","opened_at":"2026-03-02T09:00:00Z","merged_into":"inc-8"}`,
			[]string{TableEvents, TableIncidents, TableIncidentHistory}, map[string]map[string]any{
				TableIncidents:       {"incident_id": "inc-9", "merged_into": "inc-8"},
				TableIncidentHistory: {"status": "resolved", "merged_into": "inc-8"},
			}},
		// Who acknowledged and who resolved it, in both tables.
		{event.KindIncident, `{"incident_id":"inc-9","status":"resolved","title":"t","opened_at":"2026-03-02T09:00:00Z","acknowledged_by":"ana","resolved_by":"bo"}`,
			[]string{TableEvents, TableIncidents, TableIncidentHistory}, map[string]map[string]any{
				TableIncidents:       {"acknowledged_by": "ana", "resolved_by": "bo", "merged_into": ""},
				TableIncidentHistory: {"acknowledged_by": "ana", "resolved_by": "bo"},
			}},
	}
	for _, c := range cases {
		t.Run(string(c.kind), func(t *testing.T) {
			e := mustEnvelope(t, c.kind, c.body)
			rows, err := Rows(e)
			if err != nil {
				t.Fatal(err)
			}
			if len(rows) != len(c.tables) {
				t.Fatalf("%d rows, want tables %v", len(rows), c.tables)
			}
			for i, r := range rows {
				if r.Table != c.tables[i] {
					t.Fatalf("row %d for %s, want %s", i, r.Table, c.tables[i])
				}
				if len(r.Row) != len(Columns[r.Table]) {
					t.Fatalf("%s row has %d values for %d columns", r.Table, len(r.Row), len(Columns[r.Table]))
				}
				if got := column(t, r.Table, r.Row, "id"); got != e.ID {
					t.Fatalf("%s id = %v, want the event id %s", r.Table, got, e.ID)
				}
				for name, want := range c.check[r.Table] {
					got := column(t, r.Table, r.Row, name)
					if wt, ok := want.(time.Time); ok {
						if gt, ok := got.(time.Time); !ok || !gt.Equal(wt) {
							t.Errorf("%s.%s = %v, want %v", r.Table, name, got, wt)
						}
						continue
					}
					if got != want {
						t.Errorf("%s.%s = %#v, want %#v", r.Table, name, got, want)
					}
				}
			}
		})
	}
}

func TestRowsRejectBadBodiesNamingTheField(t *testing.T) {
	for _, c := range []struct {
		kind  event.Kind
		body  string
		field string
	}{
		{event.KindLog, `{"template_id":"t"}`, "body.message"},
		{event.KindLog, `{"message":"m","params":"not a list"}`, "body.params"},
		{event.KindMetric, `{"name":"cpu","value":"high"}`, "body.value"},
		{event.KindMetric, `{"name":"cpu"}`, "body.value"},
		{event.KindAlert, `{"name":"A","status":"firing","ends_at":"soon"}`, "body.ends_at"},
		{event.KindChange, `{"version":"v1"}`, "body.type"},
		{event.KindAnomaly, `{"series":"s","value":1,"detector":"mad"}`, "body.score"},
		{event.KindIncident, `{"incident_id":"i","status":"updated","title":"t","acknowledged_at":"yesterday"}`, "body.acknowledged_at"},
		// Only an opened state's own time is its opening: a later state
		// without opened_at cannot be put in its incident's partition.
		{event.KindIncident, `{"incident_id":"i","status":"resolved","title":"t"}`, "body.opened_at"},
		{event.KindIncident, `{"incident_id":"i","status":"reopened","title":"t"}`, "body.opened_at"},
		{event.KindIncident, `{"incident_id":"i","status":"updated","title":"t","team":7}`, "body.team"},
		{event.KindIncident, ``, "body"},
		{event.KindIncident, `{"incident_id":"i","status":"updated","title":"t","merged_into":"j"}`, "body.merged_into"},
		{event.KindIncident, `{"incident_id":"i","status":"resolved","title":"t","merged_into":"i"}`, "body.merged_into"},
		// incidents is partitioned by opened_at: held between 1970-01-02
		// and the state's time (2026-03-02T10:00:00Z here).
		{event.KindIncident, `{"incident_id":"i","status":"opened","title":"t","opened_at":"1969-12-31T23:00:00Z"}`, "body.opened_at"},
		{event.KindIncident, `{"incident_id":"i","status":"opened","title":"t","opened_at":"1970-01-01T12:00:00Z"}`, "body.opened_at"},
		{event.KindIncident, `{"incident_id":"i","status":"opened","title":"t","opened_at":"2026-03-03T10:00:00Z"}`, "body.opened_at"},
		{event.KindAnomaly, `{"series":"s","value":1,"score":1,"peak_time":"soon"}`, "body.peak_time"},
	} {
		e := mustEnvelope(t, c.kind, c.body)
		_, err := Rows(e)
		if err == nil || !errors.Is(err, ErrBadBody) || !errs.IsPermanent(err) || !strings.Contains(err.Error(), c.field+":") {
			t.Errorf("%s %s: err = %v, want a permanent ErrBadBody naming %s", c.kind, c.body, err, c.field)
		}
	}
}

// A DateTime column ends at 2106-02-07T06:28:15Z, and the driver would
// store a later time wrapped around (2200 as 2063): such a time is stored
// as that last second, the event kept (the events table has the body as
// sent), not dead-lettered after the gateway accepted it.
func TestRowsHoldFarFutureTimesAtTheLastDateTime(t *testing.T) {
	for _, c := range []struct {
		kind          event.Kind
		body          string
		table, column string
	}{
		{event.KindAlert, `{"name":"A","status":"firing","starts_at":"2200-01-01T00:00:00Z"}`, TableAlerts, "starts_at"},
		{event.KindAlert, `{"name":"A","status":"resolved","ends_at":"2106-02-07T06:28:16Z"}`, TableAlerts, "ends_at"},
		{event.KindIncident, `{"incident_id":"i","status":"updated","title":"t","opened_at":"2026-03-02T09:00:00Z","acknowledged_at":"2200-01-01T00:00:00Z"}`, TableIncidents, "acknowledged_at"},
		{event.KindIncident, `{"incident_id":"i","status":"resolved","title":"t","opened_at":"2026-03-02T09:00:00Z","resolved_at":"9999-12-31T23:59:59Z"}`, TableIncidents, "resolved_at"},
	} {
		rows, err := Rows(mustEnvelope(t, c.kind, c.body))
		if err != nil {
			t.Errorf("%s %s: %v, want the event stored", c.kind, c.body, err)
			continue
		}
		found := false
		for _, r := range rows {
			if r.Table != c.table {
				continue
			}
			found = true
			if got, ok := column(t, c.table, r.Row, c.column).(time.Time); !ok || !got.Equal(maxDateTime) {
				t.Errorf("%s %s: %s = %v, want %v", c.kind, c.body, c.column, got, maxDateTime)
			}
		}
		if !found {
			t.Errorf("%s %s: no %s row", c.kind, c.body, c.table)
		}
	}
}

func TestWebhookDeliveryRowValidates(t *testing.T) {
	good := WebhookDelivery{ID: event.NewID(time.Now()), Time: time.Now(), IncidentID: "inc-1", Receiver: "jira", Attempt: 1, Duration: 1500 * time.Millisecond}
	row, err := WebhookDeliveryRow(good)
	if err != nil {
		t.Fatal(err)
	}
	if got := column(t, TableWebhookDeliveries, row, "duration_ms"); got != uint32(1500) {
		t.Fatalf("duration_ms = %v, want 1500", got)
	}
	for field, d := range map[string]WebhookDelivery{
		"id":          {ID: "x", IncidentID: "i", Receiver: "r"},
		"incident_id": {ID: good.ID, Receiver: "r"},
		"receiver":    {ID: good.ID, IncidentID: "i"},
		"duration":    {ID: good.ID, IncidentID: "i", Receiver: "r", Duration: -1},
	} {
		if _, err := WebhookDeliveryRow(d); err == nil || !errs.IsPermanent(err) || !strings.Contains(err.Error(), field+":") {
			t.Errorf("%s: err = %v, want a permanent error naming it", field, err)
		}
	}
}

func TestJoinReportsOnceAfterTheLastRow(t *testing.T) {
	transient, permanent := errors.New("timeout"), errs.Permanentf("bad row")
	for _, c := range []struct {
		name    string
		results []error
		want    error
	}{
		{"all committed", []error{nil, nil, nil}, nil},
		{"first error wins", []error{nil, transient, errors.New("later")}, transient},
		{"permanent if any permanent", []error{transient, nil, permanent}, permanent},
	} {
		var calls []error
		j := newJoin(len(c.results), func(err error) { calls = append(calls, err) })
		for i, r := range c.results {
			if len(calls) != 0 {
				t.Fatalf("%s: reported after %d of %d rows", c.name, i, len(c.results))
			}
			j.rowDone(r)
		}
		if len(calls) != 1 || calls[0] != c.want {
			t.Errorf("%s: reported %v, want once %v", c.name, calls, c.want)
		}
	}
}

func TestConfigValidateNamesTheField(t *testing.T) {
	for field, cfg := range map[string]Config{
		"writer.retention.nosuch":   {Retention: map[string]int{"nosuch": 3}},
		"writer.retention.logs":     {Retention: map[string]int{"logs": 0}},
		"writer.retention_interval": {RetentionInterval: -time.Second},
		"writer.senders":            {Senders: 99},
		"writer.max_rows":           {MaxRows: -1},
		"writer.drain_timeout":      {DrainTimeout: service.DefaultShutdownTimeout},
	} {
		if err := cfg.Validate(); err == nil || !strings.HasPrefix(err.Error(), field+":") {
			t.Errorf("%s: Validate() = %v", field, err)
		}
	}
	if err := (Config{Retention: map[string]int{"logs": 7, "incidents": 730}}).Validate(); err != nil {
		t.Fatalf("valid retention refused: %v", err)
	}
}

// A batch too large for the batch writer is a configuration error of the
// binary (usage, exit code 2) found before anything connects, not a failure
// at start-up.
func TestMainRefusesOversizedBatches(t *testing.T) {
	err := Main(context.Background(), []string{"-set", "writer.max_rows=2000000", "-set", "bus.urls=[nats://127.0.0.1:1]"})
	if service.ExitCode(err) != 2 || !strings.Contains(err.Error(), "writer.max_rows") {
		t.Fatalf("%v (exit code %d), want exit code 2 naming writer.max_rows", err, service.ExitCode(err))
	}
}

// TestRowsOfAKindWithoutTable: a kind this writer has no table for still
// reaches events, rather than being dead-lettered.
func TestRowsOfAKindWithoutTable(t *testing.T) {
	e := mustEnvelope(t, event.Kind("future_kind"), `{"x":1}`)
	rows, err := Rows(e)
	if err != nil || len(rows) != 1 || rows[0].Table != TableEvents {
		t.Fatalf("Rows = %v, %v; want the events row only", rows, err)
	}
}

// duration_ms is a UInt32 column: a longer delivery is held at its
// largest value (49.7 days), however large the body's number. Turned into
// a time.Duration first, a duration_ms past 292 years overflowed it: one
// wrapped to a negative Duration and was dead-lettered as "must not be
// negative", another to a few nanoseconds and was stored as 0 ms.
func TestWebhookDeliveryDurationTooLongIsHeldAtTheColumnsMax(t *testing.T) {
	for _, ms := range []string{"4294967296", "9223372036855", "18446744073710", "9223372036854775807"} {
		e := mustEnvelope(t, event.KindWebhookDelivery, `{"incident_id":"i","receiver":"r","attempt":1,"idempotency_key":"k","duration_ms":`+ms+`}`)
		rows, err := Rows(e)
		if err != nil {
			t.Errorf("duration_ms %s: %v, want it stored", ms, err)
			continue
		}
		if got := column(t, TableWebhookDeliveries, rows[1].Row, "duration_ms"); got != uint32(1<<32-1) {
			t.Errorf("duration_ms %s stored as %v, want %d", ms, got, uint32(1<<32-1))
		}
	}
}

// Where a log ran (the host a syslog daemon names, an OTLP resource's
// host.name or pod) was kept in events alone: the logs table, which
// analysts filter, had no column for it.
func TestLogRowKeepsTheResource(t *testing.T) {
	e := mustEnvelope(t, event.KindLog, `{"message":"Failed password for root from 10.0.0.9 port 22 ssh2"}`)
	e.Resource = map[string]string{"host": "web-1", "region": "eu-west-1"}
	row, err := LogRow(e)
	if err != nil {
		t.Fatal(err)
	}
	if keys, values := column(t, TableLogs, row, "resource.key"), column(t, TableLogs, row, "resource.value"); !reflect.DeepEqual(keys, []string{"host", "region"}) ||
		!reflect.DeepEqual(values, []string{"web-1", "eu-west-1"}) {
		t.Errorf("resource %v = %v, want host web-1 and region eu-west-1", keys, values)
	}
	e.Resource = nil
	if row, err = LogRow(e); err != nil {
		t.Fatal(err)
	}
	if keys := column(t, TableLogs, row, "resource.key"); !reflect.DeepEqual(keys, []string{}) {
		t.Errorf("no resource: resource.key = %#v, want empty", keys)
	}
}
