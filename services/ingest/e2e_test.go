package ingest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/services/writer"
)

// These tests post what a real producer sends to the gateway on a real
// listener, which publishes to a real JetStream, from which the real writer
// inserts into a real ClickHouse; then they read back every row, field by
// field, in the raw events table and in the kind's own table.
//
// Event times are a few minutes ago, so every table's retention keeps them.
// ClickHouse's DateTime holds whole seconds: times posted with a fraction
// come back truncated to the second.

// recent is a whole second a few minutes ago.
func recent() time.Time { return time.Now().UTC().Add(-10 * time.Minute).Truncate(time.Second) }

func rfc3339(t time.Time) string { return t.Format(time.RFC3339Nano) }

// receivedBetween checks a time the gateway filled with its clock: between
// the second before the request and the end of the answer.
func receivedBetween(t *testing.T, what string, got, before, after time.Time) {
	t.Helper()
	if got.Before(before.Truncate(time.Second)) || got.After(after) {
		t.Errorf("%s = %s, want the receive time, between %s and %s", what, got, before, after)
	}
}

func TestE2EEvents(t *testing.T) {
	r := newE2ERig(t, rigOptions{})
	base := recent()

	// A JSON object: a log with its own id, a severity synonym, labels, a
	// resource, trace ids, a fractional time and a field this schema
	// version does not know.
	objID := event.NewID(base)
	objBody := `{"message":"payment declined: card expired","trace_id":"5b8efbf7982b4e2b8b1c6d1b1f1eabcd","span_id":"0102030405060708"}`
	obj := fmt.Sprintf(`{"id":%q,"kind":"log","service":"checkout","time":%q,"severity":"ERR",
		"labels":{"env":"prod","pod":"checkout-7d9f"},"resource":{"host.name":"web-1","k8s.namespace":"shop"},
		"region_hint":"eu-1","body":%s}`, objID, rfc3339(base.Add(250*time.Millisecond)), objBody)
	objBefore := time.Now().UTC()
	objResp := r.post(PathEvents, "application/json", "", []byte(obj)).accepted(t)
	objAfter := time.Now().UTC()
	if objResp.Accepted != 1 || !slices.Equal(objResp.IDs, []string{objID}) {
		t.Fatalf("object: answer %+v, want the posted id %s", objResp, objID)
	}

	// A JSON array: a counter sample from an agent that says its source
	// and observed time, and a config change.
	metricBody := `{"name":"http_requests_total","value":1234,"type":"counter","unit":"requests"}`
	changeBody := `{"type":"config","version":"cfg-42","author":"bob@example.com","url":"https://git.example.com/cfg/pull/42","description":"raise connection pool to 64"}`
	arr := fmt.Sprintf(`[
		{"kind":"metric","service":"cart","source":"agent","time":%q,"observed_time":%q,
		 "labels":{"__name__":"http_requests_total","route":"/cart","code":"500"},"body":%s},
		{"kind":"change","service":"cart","time":%q,"labels":{"env":"prod"},"body":%s}
	]`, rfc3339(base.Add(time.Second)), rfc3339(base.Add(3*time.Second)), metricBody, rfc3339(base.Add(2*time.Second)), changeBody)
	arrBefore := time.Now().UTC()
	arrResp := r.post(PathEvents, "application/json", "", []byte(arr)).accepted(t)
	arrAfter := time.Now().UTC()
	if arrResp.Accepted != 2 || len(arrResp.IDs) != 2 {
		t.Fatalf("array: answer %+v, want 2 ids", arrResp)
	}

	// NDJSON with CRLF and a blank line: a log, a gauge without a type,
	// and an alert with Alertmanager's fingerprint.
	alertBody := fmt.Sprintf(`{"name":"QueueBacklog","status":"firing","starts_at":%q,"annotations":{"summary":"index queue above 10"},"generator_url":"http://prom:9090/graph?g0.expr=queue_depth"}`,
		rfc3339(base.Add(-time.Minute)))
	nd := fmt.Sprintf("%s\r\n\r\n%s\n%s\n",
		fmt.Sprintf(`{"kind":"log","service":"search","time":%q,"severity":"warning","body":{"message":"slow query took 2.3s"}}`, rfc3339(base.Add(4*time.Second))),
		fmt.Sprintf(`{"kind":"metric","service":"search","time":%q,"labels":{"__name__":"queue_depth","queue":"index"},"body":{"name":"queue_depth","value":17.5}}`, rfc3339(base.Add(5*time.Second))),
		fmt.Sprintf(`{"kind":"alert","service":"search","time":%q,"severity":"warning","fingerprint":"aa11bb22cc33dd44","labels":{"alertname":"QueueBacklog","queue":"index"},"body":%s}`, rfc3339(base.Add(6*time.Second)), alertBody))
	ndResp := r.post(PathEvents, "application/x-ndjson", "", []byte(nd)).accepted(t)
	if ndResp.Accepted != 3 || len(ndResp.IDs) != 3 {
		t.Fatalf("ndjson: answer %+v, want 3 ids", ndResp)
	}

	// Gzipped NDJSON: 50 logs.
	const gzCount = 50
	var gz bytes.Buffer
	for i := range gzCount {
		fmt.Fprintf(&gz, `{"kind":"log","service":"shipping","time":%q,"severity":"info","labels":{"shard":"%d"},"body":{"message":"order %d shipped"}}`+"\n",
			rfc3339(base.Add(time.Duration(i)*time.Second)), i%5, i)
	}
	gzResp := r.post(PathEvents, "application/x-ndjson", "gzip", gzipped(gz.Bytes())).accepted(t)
	if gzResp.Accepted != gzCount || len(gzResp.IDs) != gzCount {
		t.Fatalf("gzip: accepted %d with %d ids, want %d", gzResp.Accepted, len(gzResp.IDs), gzCount)
	}

	r.drained()
	r.assertCounts(map[string]uint64{
		writer.TableEvents:        1 + 2 + 3 + gzCount,
		writer.TableLogs:          1 + 1 + gzCount,
		writer.TableMetricSamples: 2,
		writer.TableChanges:       1,
		writer.TableAlerts:        1,
	})

	t.Run("object", func(t *testing.T) {
		objLabels := labels("env", "prod", "pod", "checkout-7d9f")
		objResource := labels("host.name", "web-1", "k8s.namespace", "shop")
		fp := event.Fingerprint(event.KindLog, "checkout", objLabels, objResource)
		got := r.event(objID)
		receivedBetween(t, "events.observed_time", got.ObservedTime, objBefore, objAfter)
		same(t, "events row", got, storedEvent{
			Kind: "log", Time: base, ObservedTime: got.ObservedTime, Source: "http", Service: "checkout", Severity: "error",
			Fingerprint: fp, Labels: objLabels, Resource: objResource, Body: mustJSON(t, objBody),
			Extra: mustJSON(t, `{"region_hint":"eu-1"}`), SchemaVersion: event.SchemaVersion,
		})
		logs := r.logs("id = ?", objID)
		if len(logs) != 1 {
			t.Fatalf("logs: %d rows for %s, want 1", len(logs), objID)
		}
		same(t, "logs row", logs[0], storedLog{
			ID: objID, Time: base, ObservedTime: got.ObservedTime, Service: "checkout", Source: "http", Severity: "error",
			Message: "payment declined: card expired", TraceID: "5b8efbf7982b4e2b8b1c6d1b1f1eabcd", SpanID: "0102030405060708",
			Fingerprint: fp, Labels: objLabels,
		})
	})

	t.Run("array", func(t *testing.T) {
		metricID, changeID := arrResp.IDs[0], arrResp.IDs[1]
		mLabels := labels("__name__", "http_requests_total", "route", "/cart", "code", "500")
		mFP := event.Fingerprint(event.KindMetric, "cart", mLabels, nil)
		same(t, "metric events row", r.event(metricID), storedEvent{
			Kind: "metric", Time: base.Add(time.Second), ObservedTime: base.Add(3 * time.Second), Source: "agent", Service: "cart",
			Fingerprint: mFP, Labels: mLabels, Body: mustJSON(t, metricBody), SchemaVersion: event.SchemaVersion,
		})
		same(t, "metric_samples rows", r.samples("id = ?", metricID), []storedSample{{
			ID: metricID, Time: base.Add(time.Second), Name: "http_requests_total", Value: 1234, Type: "counter", Unit: "requests",
			Fingerprint: mFP, Service: "cart", Labels: mLabels,
		}})

		cLabels := labels("env", "prod")
		got := r.event(changeID)
		receivedBetween(t, "change observed_time", got.ObservedTime, arrBefore, arrAfter)
		same(t, "change events row", got, storedEvent{
			Kind: "change", Time: base.Add(2 * time.Second), ObservedTime: got.ObservedTime, Source: "http", Service: "cart",
			Fingerprint: event.Fingerprint(event.KindChange, "cart", cLabels, nil), Labels: cLabels, Body: mustJSON(t, changeBody),
			SchemaVersion: event.SchemaVersion,
		})
		same(t, "changes rows", r.changes("id = ?", changeID), []storedChange{{
			ID: changeID, Time: base.Add(2 * time.Second), Service: "cart", Type: "config", Version: "cfg-42", Author: "bob@example.com",
			URL: "https://git.example.com/cfg/pull/42", Description: "raise connection pool to 64", Labels: cLabels,
		}})
	})

	t.Run("ndjson", func(t *testing.T) {
		logID, gaugeID, alertID := ndResp.IDs[0], ndResp.IDs[1], ndResp.IDs[2]
		logs := r.logs("id = ?", logID)
		if len(logs) != 1 {
			t.Fatalf("logs: %d rows for %s, want 1", len(logs), logID)
		}
		same(t, "logs row", logs[0], storedLog{
			ID: logID, Time: base.Add(4 * time.Second), ObservedTime: logs[0].ObservedTime, Service: "search", Source: "http",
			Severity: "warning", Message: "slow query took 2.3s", Fingerprint: event.Fingerprint(event.KindLog, "search", nil, nil),
		})
		gLabels := labels("__name__", "queue_depth", "queue", "index")
		same(t, "metric_samples rows", r.samples("id = ?", gaugeID), []storedSample{{
			ID: gaugeID, Time: base.Add(5 * time.Second), Name: "queue_depth", Value: 17.5, Type: "gauge",
			Fingerprint: event.Fingerprint(event.KindMetric, "search", gLabels, nil), Service: "search", Labels: gLabels,
		}})
		aLabels := labels("alertname", "QueueBacklog", "queue", "index")
		got := r.event(alertID)
		same(t, "alert events row", got, storedEvent{
			Kind: "alert", Time: base.Add(6 * time.Second), ObservedTime: got.ObservedTime, Source: "http", Service: "search",
			Severity: "warning", Fingerprint: "aa11bb22cc33dd44", Labels: aLabels, Body: mustJSON(t, alertBody), SchemaVersion: event.SchemaVersion,
		})
		same(t, "alerts rows", r.alerts("id = ?", alertID), []storedAlert{{
			ID: alertID, Time: base.Add(6 * time.Second), AlertName: "QueueBacklog", Status: "firing", Fingerprint: "aa11bb22cc33dd44",
			StartsAt: base.Add(-time.Minute), EndsAt: time.Unix(0, 0).UTC(), Severity: "warning", Service: "search",
			Labels: aLabels, Annotations: labels("summary", "index queue above 10"), GeneratorURL: "http://prom:9090/graph?g0.expr=queue_depth",
		}})
	})

	t.Run("gzip", func(t *testing.T) {
		logs := r.logs("service = ?", "shipping")
		if len(logs) != gzCount {
			t.Fatalf("logs: %d rows of service shipping, want %d", len(logs), gzCount)
		}
		for i, l := range logs { // ordered by time, which is the posted order
			lLabels := labels("shard", fmt.Sprint(i%5))
			same(t, fmt.Sprintf("log %d", i), l, storedLog{
				ID: gzResp.IDs[i], Time: base.Add(time.Duration(i) * time.Second), ObservedTime: l.ObservedTime, Service: "shipping",
				Source: "http", Severity: "info", Message: fmt.Sprintf("order %d shipped", i),
				Fingerprint: event.Fingerprint(event.KindLog, "shipping", lLabels, nil), Labels: lLabels,
			})
		}
		got := r.event(gzResp.IDs[7])
		same(t, "events row of log 7", got.Body, mustJSON(t, `{"message":"order 7 shipped"}`))
	})
}

// amAlertJSON is one alert of an Alertmanager webhook payload, as
// Alertmanager writes it; amPayload wraps alerts in a version 4 payload.
func amAlertJSON(status string, lbls, annotations map[string]string, startsAt, endsAt time.Time, fingerprint string) string {
	end := "0001-01-01T00:00:00Z" // what Alertmanager sends for "not resolved"
	if !endsAt.IsZero() {
		end = rfc3339(endsAt)
	}
	return fmt.Sprintf(`{"status":%q,"labels":%s,"annotations":%s,"startsAt":%q,"endsAt":%q,"generatorURL":"http://prometheus:9090/graph?g0.expr=%s","fingerprint":%q}`,
		status, jsonString(lbls), jsonString(annotations), rfc3339(startsAt), end, lbls["alertname"], fingerprint)
}

func amPayload(status string, alerts ...string) []byte {
	return []byte(fmt.Sprintf(`{"version":"4","groupKey":"{}:{alertname=\"x\"}","truncatedAlerts":0,"status":%q,"receiver":"aiops",
		"groupLabels":{},"commonLabels":{},"commonAnnotations":{},"externalURL":"http://alertmanager:9093","alerts":[%s]}`,
		status, strings.Join(alerts, ",")))
}

func TestE2EAlertmanager(t *testing.T) {
	r := newE2ERig(t, rigOptions{})
	base := recent()
	errLabels := labels("alertname", "HighErrorRate", "service", "checkout", "job", "checkout-api", "severity", "page", "team", "payments")
	errAnn := labels("summary", "5xx above 5%", "runbook_url", "https://runbooks.example.com/high-error-rate")
	diskLabels := labels("alertname", "DiskFilling", "job", "node", "instance", "db-1:9100", "severity", "warning")
	diskAnn := labels("description", "disk /var/lib/clickhouse fills within 4h")
	const errFP, diskFP = "1a2b3c4d5e6f7081", "9f8e7d6c5b4a3210"
	errStart, diskStart, errEnd := base, base.Add(30*time.Second), base.Add(4*time.Minute)

	// First notification: both firing (Alertmanager's endsAt for a firing
	// alert is either zero or the moment it would expire).
	first := r.post(PathAlertmanager, "application/json", "", amPayload("firing",
		amAlertJSON("firing", errLabels, errAnn, errStart, time.Time{}, errFP),
		amAlertJSON("firing", diskLabels, diskAnn, diskStart, base.Add(5*time.Minute), diskFP),
	)).accepted(t)
	// Next notification of the group: the error rate resolved, the disk
	// alert repeated with a later endsAt, which must not store it again.
	second := r.post(PathAlertmanager, "application/json", "", amPayload("firing",
		amAlertJSON("resolved", errLabels, errAnn, errStart, errEnd, errFP),
		amAlertJSON("firing", diskLabels, diskAnn, diskStart, base.Add(9*time.Minute), diskFP),
	)).accepted(t)
	if first.Accepted != 2 || second.Accepted != 2 {
		t.Fatalf("accepted %d and %d, want 2 and 2", first.Accepted, second.Accepted)
	}
	if second.IDs[1] != first.IDs[1] {
		t.Errorf("the repeated firing alert got id %s, first %s: want the same", second.IDs[1], first.IDs[1])
	}
	if second.IDs[0] == first.IDs[0] {
		t.Errorf("the resolution has the id of the firing alert %s", first.IDs[0])
	}

	r.drained()
	r.assertCounts(map[string]uint64{writer.TableEvents: 3, writer.TableAlerts: 3})

	url := func(name string) string { return "http://prometheus:9090/graph?g0.expr=" + name }
	want := map[string]storedAlert{
		first.IDs[0]: {
			ID: first.IDs[0], Time: errStart, AlertName: "HighErrorRate", Status: "firing", Fingerprint: errFP,
			StartsAt: errStart, EndsAt: time.Unix(0, 0).UTC(), Severity: "critical", Service: "checkout",
			Labels: errLabels, Annotations: errAnn, GeneratorURL: url("HighErrorRate"),
		},
		second.IDs[0]: {
			ID: second.IDs[0], Time: errEnd, AlertName: "HighErrorRate", Status: "resolved", Fingerprint: errFP,
			StartsAt: errStart, EndsAt: errEnd, Severity: "critical", Service: "checkout",
			Labels: errLabels, Annotations: errAnn, GeneratorURL: url("HighErrorRate"),
		},
		first.IDs[1]: {
			// The first notification's endsAt: the repeat was dropped.
			ID: first.IDs[1], Time: diskStart, AlertName: "DiskFilling", Status: "firing", Fingerprint: diskFP,
			StartsAt: diskStart, EndsAt: base.Add(5 * time.Minute), Severity: "warning", Service: "node",
			Labels: diskLabels, Annotations: diskAnn, GeneratorURL: url("DiskFilling"),
		},
	}
	for id, w := range want {
		same(t, "alerts row "+w.AlertName+" "+w.Status, r.alerts("id = ?", id), []storedAlert{w})
		body := map[string]any{"name": w.AlertName, "status": w.Status, "starts_at": rfc3339(w.StartsAt),
			"annotations": toAny(w.Annotations), "generator_url": w.GeneratorURL}
		if w.EndsAt.Unix() != 0 {
			body["ends_at"] = rfc3339(w.EndsAt)
		}
		got := r.event(id)
		same(t, "events row "+w.AlertName+" "+w.Status, got, storedEvent{
			Kind: "alert", Time: w.Time, ObservedTime: got.ObservedTime, Source: "alertmanager", Service: w.Service,
			Severity: w.Severity, Fingerprint: w.Fingerprint, Labels: w.Labels, Body: body, SchemaVersion: event.SchemaVersion,
		})
	}
}

func toAny(m map[string]string) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func jsonString(m map[string]string) string {
	var b strings.Builder
	b.WriteByte('{')
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%q:%q", k, m[k])
	}
	b.WriteByte('}')
	return b.String()
}

// promSeries is one remote-write time series.
type promSeries struct {
	labels  [][2]string
	samples []promSample
}

type promSample struct {
	value float64
	at    time.Time
}

// promMeta is one MetricMetadata entry (type 1 counter, 2 gauge, 3 histogram).
type promMeta struct {
	typ          uint64
	family, unit string
}

// writeRequest encodes a remote-write 1.0 WriteRequest (prompb field
// numbers) and snappy-compresses it, as Prometheus sends it.
func writeRequest(series []promSeries, meta ...promMeta) []byte {
	var req []byte
	for _, s := range series {
		var ts []byte
		for _, l := range s.labels {
			var lb []byte
			lb = protowire.AppendTag(lb, 1, protowire.BytesType)
			lb = protowire.AppendString(lb, l[0])
			lb = protowire.AppendTag(lb, 2, protowire.BytesType)
			lb = protowire.AppendString(lb, l[1])
			ts = protowire.AppendTag(ts, 1, protowire.BytesType)
			ts = protowire.AppendBytes(ts, lb)
		}
		for _, smp := range s.samples {
			var sb []byte
			sb = protowire.AppendTag(sb, 1, protowire.Fixed64Type)
			sb = protowire.AppendFixed64(sb, math.Float64bits(smp.value))
			sb = protowire.AppendTag(sb, 2, protowire.VarintType)
			sb = protowire.AppendVarint(sb, uint64(smp.at.UnixMilli()))
			ts = protowire.AppendTag(ts, 2, protowire.BytesType)
			ts = protowire.AppendBytes(ts, sb)
		}
		req = protowire.AppendTag(req, 1, protowire.BytesType)
		req = protowire.AppendBytes(req, ts)
	}
	for _, m := range meta {
		var mb []byte
		mb = protowire.AppendTag(mb, 1, protowire.VarintType)
		mb = protowire.AppendVarint(mb, m.typ)
		mb = protowire.AppendTag(mb, 2, protowire.BytesType)
		mb = protowire.AppendString(mb, m.family)
		mb = protowire.AppendTag(mb, 5, protowire.BytesType)
		mb = protowire.AppendString(mb, m.unit)
		req = protowire.AppendTag(req, 3, protowire.BytesType)
		req = protowire.AppendBytes(req, mb)
	}
	return snappy.Encode(nil, req)
}

// staleMarker is the NaN Prometheus writes when a series disappears.
var staleMarker = math.Float64frombits(0x7ff0000000000002)

func TestE2ERemoteWrite(t *testing.T) {
	r := newE2ERig(t, rigOptions{})
	base := recent()
	body := writeRequest([]promSeries{
		{
			labels: [][2]string{{"__name__", "http_requests_total"}, {"code", "500"}, {"instance", "10.0.0.7:8080"},
				{"job", "checkout-api"}, {"method", "POST"}, {"service", "checkout"}, {"zone", ""}},
			samples: []promSample{{1027, base}, {1031, base.Add(15 * time.Second)}, {staleMarker, base.Add(30 * time.Second)}},
		},
		{
			labels:  [][2]string{{"__name__", "node_memory_MemAvailable_bytes"}, {"instance", "db-1:9100"}, {"job", "node"}},
			samples: []promSample{{8.25e9, base.Add(1500 * time.Millisecond)}},
		},
		{
			labels:  [][2]string{{"__name__", "rpc_duration_seconds_count"}, {"job", "payments"}},
			samples: []promSample{{42, base.Add(2 * time.Second)}},
		},
	}, promMeta{typ: 2, family: "node_memory_MemAvailable_bytes", unit: "bytes"},
		promMeta{typ: 3, family: "rpc_duration_seconds", unit: "seconds"})

	resp := r.post(PathRemoteWrite, "application/x-protobuf", "snappy", body).accepted(t)
	if resp.Accepted != 4 || len(resp.IDs) != 4 {
		t.Fatalf("answer %+v, want 4 samples accepted", resp)
	}
	same(t, "skipped", resp.Skipped, map[string]int{"stale_markers": 1})

	r.drained()
	r.assertCounts(map[string]uint64{writer.TableEvents: 4, writer.TableMetricSamples: 4})

	reqLabels := labels("__name__", "http_requests_total", "code", "500", "instance", "10.0.0.7:8080", "job", "checkout-api", "method", "POST", "service", "checkout")
	memLabels := labels("__name__", "node_memory_MemAvailable_bytes", "instance", "db-1:9100", "job", "node")
	rpcLabels := labels("__name__", "rpc_duration_seconds_count", "job", "payments")
	fp := func(service string, l map[string]string) string {
		return event.Fingerprint(event.KindMetric, service, l, nil)
	}
	// Ordered by name, time, value.
	want := []storedSample{
		{ID: resp.IDs[0], Time: base, Name: "http_requests_total", Value: 1027, Type: "counter", Fingerprint: fp("checkout", reqLabels), Service: "checkout", Labels: reqLabels},
		{ID: resp.IDs[1], Time: base.Add(15 * time.Second), Name: "http_requests_total", Value: 1031, Type: "counter", Fingerprint: fp("checkout", reqLabels), Service: "checkout", Labels: reqLabels},
		{ID: resp.IDs[2], Time: base.Add(time.Second), Name: "node_memory_MemAvailable_bytes", Value: 8.25e9, Type: "gauge", Unit: "bytes", Fingerprint: fp("node", memLabels), Service: "node", Labels: memLabels},
		{ID: resp.IDs[3], Time: base.Add(2 * time.Second), Name: "rpc_duration_seconds_count", Value: 42, Type: "counter", Unit: "seconds", Fingerprint: fp("payments", rpcLabels), Service: "payments", Labels: rpcLabels},
	}
	same(t, "metric_samples rows", r.samples("1"), want)

	before := time.Now().UTC().Add(-time.Minute)
	for _, w := range want {
		got := r.event(w.ID)
		if got.ObservedTime.Before(before) || got.ObservedTime.After(time.Now()) {
			t.Errorf("%s: observed_time %s is not the receive time", w.Name, got.ObservedTime)
		}
		b := map[string]any{"name": w.Name, "value": jsonNumber(w.Value), "type": w.Type}
		if w.Unit != "" {
			b["unit"] = w.Unit
		}
		same(t, "events row "+w.Name, got, storedEvent{
			Kind: "metric", Time: w.Time, ObservedTime: got.ObservedTime, Source: "prometheus", Service: w.Service,
			Fingerprint: w.Fingerprint, Labels: w.Labels, Body: b, SchemaVersion: event.SchemaVersion,
		})
	}
}

// jsonNumber is v as jsonValue decodes a body that encoding/json wrote.
func jsonNumber(v float64) any {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return json.Number(b)
}

func TestE2EOTLPLogs(t *testing.T) {
	r := newE2ERig(t, rigOptions{})
	base := recent()
	traceID := pcommon.TraceID{0x5b, 0x8e, 0xfb, 0xf7, 0x98, 0x2b, 0x4e, 0x2b, 0x8b, 0x1c, 0x6d, 0x1b, 0x1f, 0x1e, 0xab, 0xcd}
	spanID := pcommon.SpanID{1, 2, 3, 4, 5, 6, 7, 8}
	// One request per encoding, with the encoding in the service name so
	// the two land as different events.
	logsFor := func(enc string) plog.Logs {
		ld := plog.NewLogs()
		rl := ld.ResourceLogs().AppendEmpty()
		res := rl.Resource().Attributes()
		res.PutStr("service.name", "checkout-"+enc)
		res.PutStr("host.name", "web-1")
		res.PutStr("k8s.pod.name", "checkout-7d9f")
		sl := rl.ScopeLogs().AppendEmpty()
		sl.Scope().SetName("checkout/payments")

		lr := sl.LogRecords().AppendEmpty()
		lr.SetTimestamp(pcommon.NewTimestampFromTime(base.Add(100 * time.Millisecond)))
		lr.SetObservedTimestamp(pcommon.NewTimestampFromTime(base.Add(2 * time.Second)))
		lr.SetSeverityNumber(plog.SeverityNumberError)
		lr.SetSeverityText("ERROR")
		lr.Body().SetStr("payment declined for order 42")
		lr.Attributes().PutStr("http.method", "POST")
		lr.Attributes().PutInt("http.status_code", 502)
		lr.Attributes().PutEmptyMap("user").PutStr("tier", "gold")
		lr.SetTraceID(traceID)
		lr.SetSpanID(spanID)

		lr = sl.LogRecords().AppendEmpty()
		lr.SetTimestamp(pcommon.NewTimestampFromTime(base.Add(3 * time.Second)))
		lr.SetObservedTimestamp(pcommon.NewTimestampFromTime(base.Add(3 * time.Second)))
		lr.SetSeverityText("WARN")
		lr.Body().SetEmptyMap().PutStr("msg", "slow query")
		return ld
	}
	for _, enc := range []string{"protobuf", "json"} {
		req := plogotlp.NewExportRequestFromLogs(logsFor(enc))
		var (
			body []byte
			err  error
			ct   = "application/x-protobuf"
		)
		if enc == "json" {
			body, err = req.MarshalJSON()
			ct = "application/json"
		} else {
			body, err = req.MarshalProto()
		}
		if err != nil {
			t.Fatal(err)
		}
		if a := r.post(PathOTLPLogs, ct, "", body); a.status != http.StatusOK {
			t.Fatalf("%s: answer %s", enc, a)
		}
	}

	r.drained()
	r.assertCounts(map[string]uint64{writer.TableEvents: 4, writer.TableLogs: 4})

	for _, enc := range []string{"protobuf", "json"} {
		t.Run(enc, func(t *testing.T) {
			service := "checkout-" + enc
			resource := labels("service.name", service, "host.name", "web-1", "k8s.pod.name", "checkout-7d9f")
			attrs := labels("http.method", "POST", "http.status_code", "502", "user", `{"tier":"gold"}`)
			logs := r.logs("service = ?", service)
			if len(logs) != 2 {
				t.Fatalf("logs: %d rows of %s, want 2", len(logs), service)
			}
			fpDeclined := event.Fingerprint(event.KindLog, service, attrs, resource)
			fpSlow := event.Fingerprint(event.KindLog, service, nil, resource)
			same(t, "logs rows", logs, []storedLog{
				{ID: logs[0].ID, Time: base, ObservedTime: base.Add(2 * time.Second), Service: service, Source: "otlp", Severity: "error",
					Message: "payment declined for order 42", TraceID: "5b8efbf7982b4e2b8b1c6d1b1f1eabcd", SpanID: "0102030405060708",
					Fingerprint: fpDeclined, Labels: attrs},
				{ID: logs[1].ID, Time: base.Add(3 * time.Second), ObservedTime: base.Add(3 * time.Second), Service: service, Source: "otlp",
					Severity: "warning", Message: `{"msg":"slow query"}`, Fingerprint: fpSlow},
			})
			same(t, "events row of the error", r.event(logs[0].ID), storedEvent{
				Kind: "log", Time: base, ObservedTime: base.Add(2 * time.Second), Source: "otlp", Service: service, Severity: "error",
				Fingerprint: fpDeclined, Labels: attrs, Resource: resource,
				Body:          mustJSON(t, `{"message":"payment declined for order 42","trace_id":"5b8efbf7982b4e2b8b1c6d1b1f1eabcd","span_id":"0102030405060708"}`),
				SchemaVersion: event.SchemaVersion,
			})
			same(t, "events row of the warning", r.event(logs[1].ID), storedEvent{
				Kind: "log", Time: base.Add(3 * time.Second), ObservedTime: base.Add(3 * time.Second), Source: "otlp", Service: service,
				Severity: "warning", Fingerprint: fpSlow, Resource: resource, Body: mustJSON(t, `{"message":"{\"msg\":\"slow query\"}"}`),
				SchemaVersion: event.SchemaVersion,
			})
		})
	}
}

func TestE2EOTLPMetrics(t *testing.T) {
	r := newE2ERig(t, rigOptions{})
	base := recent()
	at := pcommon.NewTimestampFromTime(base.Add(500 * time.Millisecond))
	// One request per encoding, with the encoding in the service name: OTLP
	// ids derive from series, time and value, so the same points in both
	// encodings would be stored once and the second would go unchecked.
	metricsFor := func(service string) pmetric.Metrics {
		md := pmetric.NewMetrics()
		rm := md.ResourceMetrics().AppendEmpty()
		rm.Resource().Attributes().PutStr("service.name", service)
		rm.Resource().Attributes().PutStr("host.name", "web-2")
		ms := rm.ScopeMetrics().AppendEmpty().Metrics()

		g := ms.AppendEmpty()
		g.SetName("process_memory_usage")
		g.SetUnit("By")
		dp := g.SetEmptyGauge().DataPoints().AppendEmpty()
		dp.SetTimestamp(at)
		dp.SetDoubleValue(5.125e8)
		dp.Attributes().PutStr("process", "cart-api")

		s := ms.AppendEmpty()
		s.SetName("http_server_requests")
		s.SetUnit("{request}")
		sum := s.SetEmptySum()
		sum.SetIsMonotonic(true)
		sum.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
		dp = sum.DataPoints().AppendEmpty()
		dp.SetTimestamp(at)
		dp.SetIntValue(9001)
		dp.Attributes().PutStr("http.route", "/cart")
		dp.Attributes().PutInt("http.status_code", 200)

		s = ms.AppendEmpty()
		s.SetName("queue_size_change")
		sum = s.SetEmptySum() // not monotonic: a gauge
		sum.SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
		dp = sum.DataPoints().AppendEmpty()
		dp.SetTimestamp(at)
		dp.SetIntValue(-3)

		h := ms.AppendEmpty()
		h.SetName("http_server_duration")
		h.SetUnit("s")
		hist := h.SetEmptyHistogram()
		hist.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
		hp := hist.DataPoints().AppendEmpty()
		hp.SetTimestamp(at)
		hp.SetCount(120)
		hp.SetSum(37.5)
		hp.ExplicitBounds().FromRaw([]float64{0.1, 0.5, 1})
		hp.BucketCounts().FromRaw([]uint64{80, 30, 8, 2})
		hp.Attributes().PutStr("http.route", "/cart")
		return md
	}

	posted := time.Now().UTC()
	for _, enc := range []string{"protobuf", "json"} {
		req := pmetricotlp.NewExportRequestFromMetrics(metricsFor("cart-" + enc))
		var (
			body []byte
			err  error
			ct   = "application/x-protobuf"
		)
		if enc == "json" {
			body, err = req.MarshalJSON()
			ct = "application/json"
		} else {
			body, err = req.MarshalProto()
		}
		if err != nil {
			t.Fatal(err)
		}
		if a := r.post(PathOTLPMetrics, ct, "", body); a.status != http.StatusOK {
			t.Fatalf("%s: answer %s", enc, a)
		}
	}

	answered := time.Now().UTC()
	r.drained()
	// Per request: a gauge, two sums, the histogram's count, sum and four
	// buckets.
	r.assertCounts(map[string]uint64{writer.TableEvents: 18, writer.TableMetricSamples: 18})

	for _, enc := range []string{"protobuf", "json"} {
		t.Run(enc, func(t *testing.T) {
			service := "cart-" + enc
			resource := labels("service.name", service, "host.name", "web-2")
			sec := base // DateTime keeps the whole second
			sample := func(name string, value float64, typ, unit string, attrs map[string]string) storedSample {
				l := withName(attrs, name)
				return storedSample{Time: sec, Name: name, Value: value, Type: typ, Unit: unit,
					Fingerprint: event.Fingerprint(event.KindMetric, service, l, resource), Service: service, Labels: l}
			}
			want := []storedSample{ // by name, then value
				// Buckets 80, 30, 8, 2 over bounds 0.1, 0.5, 1: cumulative.
				sample("http_server_duration_bucket", 80, "counter", "", labels("http.route", "/cart", "le", "0.1")),
				sample("http_server_duration_bucket", 110, "counter", "", labels("http.route", "/cart", "le", "0.5")),
				sample("http_server_duration_bucket", 118, "counter", "", labels("http.route", "/cart", "le", "1")),
				sample("http_server_duration_bucket", 120, "counter", "", labels("http.route", "/cart", "le", "+Inf")),
				sample("http_server_duration_count", 120, "counter", "", labels("http.route", "/cart")),
				sample("http_server_duration_sum", 37.5, "counter", "s", labels("http.route", "/cart")),
				sample("http_server_requests", 9001, "counter", "{request}", labels("http.route", "/cart", "http.status_code", "200")),
				sample("process_memory_usage", 5.125e8, "gauge", "By", labels("process", "cart-api")),
				sample("queue_size_change", -3, "gauge", "", nil),
			}
			got := r.samples("service = ?", service)
			if len(got) != len(want) {
				t.Fatalf("metric_samples: %d rows, want %d: %+v", len(got), len(want), got)
			}
			for i := range got {
				want[i].ID = got[i].ID
			}
			same(t, "metric_samples rows", got, want)
			for _, w := range want {
				e := r.event(w.ID)
				receivedBetween(t, w.Name+" observed_time", e.ObservedTime, posted, answered)
				b := map[string]any{"name": w.Name, "value": jsonNumber(w.Value), "type": w.Type}
				if w.Unit != "" {
					b["unit"] = w.Unit
				}
				same(t, "events row "+w.Name, e, storedEvent{
					Kind: "metric", Time: sec, ObservedTime: e.ObservedTime, Source: "otlp", Service: service,
					Fingerprint: w.Fingerprint, Labels: w.Labels, Resource: resource, Body: b, SchemaVersion: event.SchemaVersion,
				})
			}
		})
	}
}

func TestE2EChanges(t *testing.T) {
	r := newE2ERig(t, rigOptions{})
	base := recent()
	flagID := event.NewID(base)
	body := fmt.Sprintf(`[
		{"service":"checkout","type":"deploy","version":"v2.14.0","author":"ana@example.com","commit":"9fceb02",
		 "url":"https://ci.example.com/builds/811","description":"enable new payment provider","time":%q,"labels":{"env":"prod","region":"eu-west-1"}},
		{"id":%q,"service":"search","type":"feature_flag","version":"ranking-v3=on","author":"ops-bot","description":"50%% rollout"}
	]`, rfc3339(base), flagID)
	before := time.Now().UTC()
	resp := r.post(PathChanges, "application/json", "", []byte(body)).accepted(t)
	after := time.Now().UTC()
	if resp.Accepted != 2 || len(resp.IDs) != 2 || resp.IDs[1] != flagID {
		t.Fatalf("answer %+v, want 2 ids, the second %s", resp, flagID)
	}

	r.drained()
	r.assertCounts(map[string]uint64{writer.TableEvents: 2, writer.TableChanges: 2})

	deployLabels := labels("env", "prod", "region", "eu-west-1")
	same(t, "deploy", r.changes("id = ?", resp.IDs[0]), []storedChange{{
		ID: resp.IDs[0], Time: base, Service: "checkout", Type: "deploy", Version: "v2.14.0", Author: "ana@example.com", Commit: "9fceb02",
		URL: "https://ci.example.com/builds/811", Description: "enable new payment provider", Labels: deployLabels,
	}})
	deploy := r.event(resp.IDs[0])
	receivedBetween(t, "deploy observed_time", deploy.ObservedTime, before, after)
	same(t, "deploy events row", deploy, storedEvent{
		Kind: "change", Time: base, ObservedTime: deploy.ObservedTime, Source: "changes", Service: "checkout",
		Fingerprint: event.Fingerprint(event.KindChange, "checkout", deployLabels, nil), Labels: deployLabels,
		Body:          mustJSON(t, `{"type":"deploy","version":"v2.14.0","author":"ana@example.com","commit":"9fceb02","url":"https://ci.example.com/builds/811","description":"enable new payment provider"}`),
		SchemaVersion: event.SchemaVersion,
	})

	// No time: the receive time, which is also the observed time.
	flags := r.changes("id = ?", flagID)
	if len(flags) != 1 {
		t.Fatalf("changes: %d rows for %s, want 1", len(flags), flagID)
	}
	receivedBetween(t, "flag time", flags[0].Time, before, after)
	same(t, "feature flag", flags[0], storedChange{
		ID: flagID, Time: flags[0].Time, Service: "search", Type: "feature_flag", Version: "ranking-v3=on", Author: "ops-bot",
		Description: "50% rollout",
	})
	flag := r.event(flagID)
	same(t, "flag events row", flag, storedEvent{
		Kind: "change", Time: flags[0].Time, ObservedTime: flags[0].Time, Source: "changes", Service: "search",
		Fingerprint:   event.Fingerprint(event.KindChange, "search", nil, nil),
		Body:          mustJSON(t, `{"type":"feature_flag","version":"ranking-v3=on","author":"ops-bot","description":"50% rollout"}`),
		SchemaVersion: event.SchemaVersion,
	})
}
