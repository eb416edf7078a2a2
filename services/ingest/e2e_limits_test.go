package ingest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aiops-dev/aiops/pkg/bus"
	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/services/writer"
	"github.com/rs/zerolog"
)

// messageOfJSONSize repeats unit until the message is as long as fits in
// size bytes once written as a JSON string.
func messageOfJSONSize(unit string, size int) string {
	unitJSON, _ := json.Marshal(unit)
	n := (size - 2) / (len(unitJSON) - 2)
	return strings.Repeat(unit, n)
}

// TestE2ELimitsFitEveryStage is issue #14 item 3: a log with a
// 300,000-byte message got a 200, its raw row was stored, and the log
// miner's templated copy (600,061 bytes) was dead-lettered by the writer.
// Now the gateway refuses such a message with a 400, and logs at the limits
// built to make the templated copy as large as possible (every token a
// variable, escapes, the most labels) go through the real log miner and
// writer: raw and templated rows stored, nothing dead-lettered.
func TestE2ELimitsFitEveryStage(t *testing.T) {
	r := newE2ERig(t, rigOptions{logminer: true})

	reproduction := fmt.Sprintf(`{"kind":"log","service":"limits","time":%q,"body":{"message":%q}}`, rfc3339(recent()), strings.Repeat("x", 300_000))
	a := r.post(PathEvents, "application/json", "", []byte(reproduction))
	if a.status != http.StatusBadRequest || !strings.Contains(string(a.body), `"field":"body.message"`) || !strings.Contains(string(a.body), "over the limit of 65536") {
		t.Fatalf("a 300,000-byte message: %s, want 400 naming body.message", a)
	}

	bigLabels := map[string]string{}
	for i := range event.MaxLabels - 1 {
		bigLabels[fmt.Sprintf("l%03d", i)] = strings.Repeat("v", 3500)
	}
	type logIn struct {
		name    string
		message string
		labels  map[string]string
	}
	inputs := []logIn{
		{"numbers", messageOfJSONSize("1 ", event.MaxLogMessageBytes), nil},
		{"delimited numbers", messageOfJSONSize("1,", event.MaxLogMessageBytes), nil},
		{"escapes", messageOfJSONSize("\x01 \"1 ", event.MaxLogMessageBytes), nil},
		{"words", messageOfJSONSize("word ", event.MaxLogMessageBytes), nil},
		{"ips and labels", messageOfJSONSize("10.0.0.1 ", event.MaxLogMessageBytes), bigLabels},
	}
	var ndjson strings.Builder
	t0 := recent()
	for i, in := range inputs {
		e := map[string]any{"kind": "log", "service": "limits", "time": rfc3339(t0.Add(0)), "labels": map[string]string{"case": in.name}, "body": map[string]string{"message": in.message}}
		if in.labels != nil {
			l := map[string]string{"case": in.name}
			for k, v := range in.labels {
				l[k] = v
			}
			e["labels"] = l
		}
		b, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		if i > 0 {
			ndjson.WriteByte('\n')
		}
		ndjson.Write(b)
	}
	resp := r.post(PathEvents, "application/x-ndjson", "", []byte(ndjson.String())).accepted(t)
	if resp.Accepted != len(inputs) {
		t.Fatalf("accepted %d, want %d", resp.Accepted, len(inputs))
	}
	r.drained()

	for _, in := range inputs {
		rows := r.logs("service = 'limits' AND labels.value[indexOf(labels.key, 'case')] = ?", in.name)
		var raw, templated int
		for _, l := range rows {
			if l.Message != in.message {
				t.Errorf("%s: stored message differs (%d bytes, want %d)", in.name, len(l.Message), len(in.message))
			}
			if l.Derived == 1 {
				templated++
				if l.Template == "" {
					t.Errorf("%s: the templated row has no template", in.name)
				}
				// The bound event.CheckFits is derived from: template and
				// parameters (as JSON) at most twice the message each.
				params := 2
				for _, p := range l.Params {
					params += event.JSONStringLen(p) + 1
				}
				msg := event.JSONStringLen(l.Message)
				if tpl := event.JSONStringLen(l.Template); tpl > 2*msg || params > 2*msg {
					t.Errorf("%s: template %d and parameters %d bytes as JSON for a message of %d: over the twice event.CheckFits assumes", in.name, tpl, params, msg)
				}
				t.Logf("%s: message %d, template %d, parameters %d bytes as JSON", in.name, msg, event.JSONStringLen(l.Template), params)
			} else {
				raw++
			}
		}
		if raw != 1 || templated != 1 {
			t.Errorf("%s: %d raw and %d templated rows, want 1 and 1", in.name, raw, templated)
		}
	}
	dl, err := r.js.Stream(context.Background(), bus.StreamDeadLetter)
	if err != nil {
		t.Fatal(err)
	}
	if n := dl.CachedInfo().State.Msgs; n != 0 {
		t.Fatalf("%d messages dead-lettered, want none", n)
	}
}

// TestE2EPartitionsBounded is issue #14 item 5 through the real store: one
// request of 2,000 events a day apart from 2027-01-01 took the active parts
// from 33 to 4,034. It is refused whole; events spread over the whole
// window are stored in at most 15 day partitions per table.
func TestE2EPartitionsBounded(t *testing.T) {
	r := newE2ERig(t, rigOptions{})
	partitions := func(table string) uint64 {
		return r.count("SELECT uniqExact(partition) FROM system.parts WHERE database = currentDatabase() AND table = ? AND active", table)
	}
	var far strings.Builder
	for i := range 2000 {
		fmt.Fprintf(&far, `{"kind":"log","service":"far","time":%q,"body":{"message":"day %d"}}`+"\n", rfc3339(time.Date(2027, 1, 1+i, 0, 0, 0, 0, time.UTC)), i)
	}
	if a := r.post(PathEvents, "application/x-ndjson", "", []byte(far.String())); a.status != http.StatusBadRequest {
		t.Fatalf("2,000 events a day apart: %d, want 400", a.status)
	}
	var spread strings.Builder
	now := time.Now().UTC()
	for h := 0; h <= 13*24-2; h += 6 {
		fmt.Fprintf(&spread, `{"kind":"log","service":"spread","time":%q,"body":{"message":"hour %d"}}`+"\n", rfc3339(now.Add(-time.Duration(h)*time.Hour)), h)
	}
	fmt.Fprintf(&spread, `{"kind":"log","service":"spread","time":%q,"body":{"message":"ahead"}}`+"\n", rfc3339(now.Add(50*time.Minute)))
	resp := r.post(PathEvents, "application/x-ndjson", "", []byte(spread.String())).accepted(t)
	r.drained()
	if n := r.count("SELECT count() FROM events FINAL"); n != uint64(resp.Accepted) {
		t.Fatalf("%d events stored, want the %d accepted", n, resp.Accepted)
	}
	for _, table := range []string{"events", "logs"} {
		if n := partitions(table); n > 15 || n < 13 {
			t.Errorf("%s: %d partitions for 13 days of events, want 13 to 15", table, n)
		}
	}
	// Item 4: what the gateway accepted survives the retention pass that
	// runs at the writer's start and then hourly, the oldest by a day.
	ret, err := writer.NewRetention(r.conn, nil, 0, zerolog.Nop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	dropped, err := ret.Apply(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if n := r.count("SELECT count() FROM events FINAL"); n != uint64(resp.Accepted) || len(dropped) != 0 {
		t.Fatalf("after a retention pass %d of %d accepted events are left (dropped %v)", n, resp.Accepted, dropped)
	}
}
