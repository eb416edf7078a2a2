package ingest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aiops-dev/aiops/pkg/bus"
	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/services/writer"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
)

// retryUntilAccepted posts body as a producer honouring the contract does:
// on 503 it waits Retry-After seconds and sends the same request again. Any
// other answer than 200 or 503-with-Retry-After fails the test.
func (r *e2eRig) retryUntilAccepted(path, contentType string, body []byte) (Response, int) {
	r.t.Helper()
	for attempt := 1; ; attempt++ {
		a := r.post(path, contentType, "", body)
		if a.status == http.StatusOK {
			return a.accepted(r.t), attempt
		}
		wait := refusedForNow(r.t, a)
		if attempt == 30 {
			r.t.Fatalf("still %s after %d attempts", a, attempt)
		}
		time.Sleep(wait)
	}
}

// refusedForNow asserts a is a 503 that tells the producer when to retry
// and that nothing was accepted, and returns the wait.
func refusedForNow(t testing.TB, a answer) time.Duration {
	t.Helper()
	if a.status != http.StatusServiceUnavailable {
		t.Fatalf("answer %s, want 503", a)
	}
	secs, err := strconv.Atoi(a.header.Get("Retry-After"))
	if err != nil || secs < 1 {
		t.Fatalf("503 with Retry-After %q, want whole seconds >= 1", a.header.Get("Retry-After"))
	}
	var e ErrorResponse
	if err := json.Unmarshal(a.body, &e); err != nil || e.Error != ErrBusUnavailable {
		t.Fatalf("503 body %s, want the error %q (%v)", a.body, ErrBusUnavailable, err)
	}
	return time.Duration(secs) * time.Second
}

// TestE2EBusOutage: with JetStream down the gateway answers 503 with
// Retry-After, never 200; once the server is back the same requests are
// accepted, every event reaches ClickHouse, and none is there twice (the
// client keeps no reconnect buffer, and a publish stored before its ack was
// lost is dropped as a repeat when the retry sends the same id).
func TestE2EBusOutage(t *testing.T) {
	r := newE2ERig(t, rigOptions{change: func(c *ServerConfig) { c.PublishTimeout = 2 * time.Second }})
	base := recent()

	// Before the outage: the path works.
	warm := r.post(PathEvents, "application/json", "", []byte(fmt.Sprintf(
		`{"kind":"log","service":"checkout","time":%q,"body":{"message":"before the outage"}}`, rfc3339(base)))).accepted(t)

	// Envelopes with their own ids, as the README tells a retrying
	// producer to send them; alerts get ids derived from their content.
	ids := []string{event.NewID(base), event.NewID(base), event.NewID(base)}
	var nd strings.Builder
	for i, id := range ids {
		fmt.Fprintf(&nd, `{"id":%q,"kind":"log","service":"checkout","time":%q,"severity":"error","body":{"message":"payment %d declined"}}`+"\n",
			id, rfc3339(base.Add(time.Duration(i+1)*time.Second)), i)
	}
	am := amPayload("firing", amAlertJSON("firing", labels("alertname", "BusDown", "service", "checkout", "severity", "critical"),
		labels("summary", "posted during the outage"), base.Add(5*time.Second), time.Time{}, "00aa11bb22cc33dd"))

	r.nats.Shutdown()
	// A producer that gives up after a 503: with the client's reconnect
	// buffer off (pkg/bus), nothing of its request is stored later behind
	// its back.
	refusedForNow(t, r.post(PathEvents, "application/json", "", []byte(fmt.Sprintf(
		`{"kind":"log","service":"checkout","time":%q,"body":{"message":"given up after a 503"}}`, rfc3339(base)))))
	refusedForNow(t, r.post(PathEvents, "application/x-ndjson", "", []byte(nd.String())))
	refusedForNow(t, r.post(PathAlertmanager, "application/json", "", am))
	if n := r.count("SELECT count() FROM events WHERE id IN (?, ?, ?)", ids[0], ids[1], ids[2]); n != 0 {
		t.Fatalf("%d refused events are in ClickHouse while the bus is down", n)
	}

	r.nats.Restart()
	got, attempts := r.retryUntilAccepted(PathEvents, "application/x-ndjson", []byte(nd.String()))
	if got.Accepted != len(ids) || !slices.Equal(got.IDs, ids) {
		t.Fatalf("after the restart: answer %+v, want the posted ids %v", got, ids)
	}
	amResp, amAttempts := r.retryUntilAccepted(PathAlertmanager, "application/json", am)
	if amResp.Accepted != 1 {
		t.Fatalf("alertmanager after the restart: answer %+v", amResp)
	}
	t.Logf("accepted after %d and %d attempts", attempts, amAttempts)

	r.drained()
	// Each event once in the stream itself (the duplicate window drops a
	// repeat of an id), and once in every table.
	stream, err := r.js.Stream(context.Background(), bus.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	if n := stream.CachedInfo().State.Msgs; n != 5 {
		t.Errorf("stream %s holds %d messages, want 5", bus.StreamEvents, n)
	}
	r.assertCounts(map[string]uint64{writer.TableEvents: 5, writer.TableLogs: 4, writer.TableAlerts: 1})
	if n := r.count("SELECT count() FROM logs WHERE message = 'given up after a 503'"); n != 0 {
		t.Errorf("a request answered 503 and never retried was stored %d times", n)
	}
	for i, id := range ids {
		logs := r.logs("id = ?", id)
		if len(logs) != 1 || logs[0].Message != fmt.Sprintf("payment %d declined", i) || !logs[0].Time.Equal(base.Add(time.Duration(i+1)*time.Second)) {
			t.Errorf("log %s: rows %+v", id, logs)
		}
	}
	if a := r.alerts("id = ?", amResp.IDs[0]); len(a) != 1 || a[0].AlertName != "BusDown" || a[0].Fingerprint != "00aa11bb22cc33dd" {
		t.Errorf("alert %s: rows %+v", amResp.IDs[0], a)
	}
	if l := r.logs("id = ?", warm.IDs[0]); len(l) != 1 || l[0].Message != "before the outage" {
		t.Errorf("log before the outage: rows %+v", l)
	}
}

// TestE2EIdempotencyKey: a producer that sends envelopes without ids and
// retries a request (its answer was lost) with the same Idempotency-Key
// stores each event once; without the key the retry stores them twice.
func TestE2EIdempotencyKey(t *testing.T) {
	r := newE2ERig(t, rigOptions{})
	base := recent()
	var nd strings.Builder
	for i := 0; i < 3; i++ {
		fmt.Fprintf(&nd, `{"kind":"log","service":"billing","time":%q,"body":{"message":"invoice %d sent"}}`+"\n", rfc3339(base.Add(time.Duration(i)*time.Second)), i)
	}
	keyed := http.Header{"Content-Type": {"application/x-ndjson"}, "Idempotency-Key": {"c1a5e7d2-2026-11-21-batch-1"}}
	first := r.postHeaders(PathEvents, keyed, []byte(nd.String())).accepted(t)
	retry := r.postHeaders(PathEvents, keyed, []byte(nd.String())).accepted(t)
	if !slices.Equal(first.IDs, retry.IDs) {
		t.Fatalf("the retry got ids %v, the first answer %v", retry.IDs, first.IDs)
	}
	unkeyed := nd.String()
	unkeyed = strings.ReplaceAll(unkeyed, "invoice", "receipt")
	r.post(PathEvents, "application/x-ndjson", "", []byte(unkeyed)).accepted(t)
	r.post(PathEvents, "application/x-ndjson", "", []byte(unkeyed)).accepted(t)
	r.drained()
	if n := r.count("SELECT count() FROM logs FINAL WHERE service = 'billing' AND message LIKE 'invoice %'"); n != 3 {
		t.Errorf("%d invoice rows after a keyed retry, want 3", n)
	}
	if n := r.count("SELECT count() FROM logs FINAL WHERE service = 'billing' AND message LIKE 'receipt %'"); n != 6 {
		t.Errorf("%d receipt rows after an unkeyed retry, want 6 (each stored twice)", n)
	}
}

// TestE2EOTLPLogsIdempotencyKey: a shipper that repeats an error line
// within its timestamps' second, in two requests, without an observed
// time, sends the same content twice; named by their Idempotency-Keys the
// two requests are two lines stored, where the stream used to keep one
// (both answered 200 with one id), and a retry with a request's key is
// still stored once.
func TestE2EOTLPLogsIdempotencyKey(t *testing.T) {
	r := newE2ERig(t, rigOptions{})
	ld := plog.NewLogs()
	rl := ld.ResourceLogs().AppendEmpty()
	rl.Resource().Attributes().PutStr("service.name", "ledger")
	lr := rl.ScopeLogs().AppendEmpty().LogRecords().AppendEmpty()
	lr.SetTimestamp(pcommon.NewTimestampFromTime(recent().Truncate(time.Second)))
	lr.SetSeverityNumber(plog.SeverityNumberError)
	lr.Body().SetStr("connection refused")
	body, err := plogotlp.NewExportRequestFromLogs(ld).MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	keyed := func(key string) Response {
		return r.postHeaders(PathOTLPLogs, http.Header{"Content-Type": {"application/json"}, "Idempotency-Key": {key}}, body).accepted(t)
	}
	first, second, retry := keyed("ledger-batch-1"), keyed("ledger-batch-2"), keyed("ledger-batch-1")
	if first.IDs[0] == second.IDs[0] || retry.IDs[0] != first.IDs[0] {
		t.Fatalf("ids: %s, %s, and the retry of the first %s: want two, the retry the first's", first.IDs[0], second.IDs[0], retry.IDs[0])
	}
	r.drained()
	if n := r.count("SELECT count() FROM logs FINAL WHERE service = 'ledger'"); n != 2 {
		t.Errorf("%d rows of the line sent in two requests and retried once, want 2", n)
	}
}
