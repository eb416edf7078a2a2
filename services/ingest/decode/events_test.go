package decode

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aiops-dev/aiops/pkg/errs"
	"github.com/aiops-dev/aiops/pkg/event"
)

const logA = `{"kind":"log","service":"checkout","time":"2026-11-21T11:59:00Z","severity":"ERR","labels":{"env":"prod"},"body":{"message":"payment failed"}}`
const metricB = `{"id":"01JDCZ0000000000000000000A","kind":"metric","service":"api","source":"agent","time":"2026-11-21T11:58:00.5Z","body":{"name":"latency","value":0.25}}`

func TestEventsShapes(t *testing.T) {
	cases := map[string]string{
		"object":        logA,
		"array":         "[" + logA + "," + metricB + "]",
		"ndjson":        logA + "\n" + metricB + "\n",
		"ndjson crlf":   logA + "\r\n\r\n" + metricB + "\r\n",
		"pretty object": strings.ReplaceAll(logA, ",", ",\n  "),
		"array spaced":  " [\n" + logA + " ,\n " + metricB + "\n] \n",
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			b, err := Events([]byte(in), opts())
			if err != nil {
				t.Fatal(err)
			}
			want := 2
			if name == "object" || name == "pretty object" {
				want = 1
			}
			if len(b.Events) != want {
				t.Fatalf("got %d events, want %d", len(b.Events), want)
			}
			e := b.Events[0]
			eq(t, "kind", e.Kind, event.KindLog)
			eq(t, "service", e.Service, "checkout")
			eq(t, "time", e.Time, time.Date(2026, 11, 21, 11, 59, 0, 0, time.UTC))
			eq(t, "observed", e.ObservedTime, testNow)
			eq(t, "severity", e.Severity, event.SeverityError)
			eq(t, "source", e.Source, SourceHTTP)
			eq(t, "labels", e.Labels, map[string]string{"env": "prod"})
			eq(t, "fingerprint", e.Fingerprint, event.Fingerprint(event.KindLog, "checkout", map[string]string{"env": "prod"}, nil))
			eq(t, "message", body[event.LogBody](t, e).Message, "payment failed")
			if !event.ValidID(e.ID) {
				t.Errorf("id %q is not a ULID", e.ID)
			}
			if want == 2 {
				m := b.Events[1]
				eq(t, "kept id", m.ID, "01JDCZ0000000000000000000A")
				eq(t, "kept source", m.Source, "agent")
				eq(t, "metric value", body[event.MetricBody](t, m).Value, ptr(0.25))
				eq(t, "time", m.Time, time.Date(2026, 11, 21, 11, 58, 0, 5e8, time.UTC))
			}
		})
	}
}

var withID = strings.Replace(logA, "{", `{"id":"01JQ0000000000000000000001",`, 1)

func TestEventsErrors(t *testing.T) {
	noTime := `{"kind":"log","service":"a","body":{"message":"x"}}`
	cases := []struct {
		name  string
		in    string
		item  int
		field string
		says  string
	}{
		{"empty", " \n", NoItem, "", "no events"},
		{"missing time in ndjson", logA + "\n" + noTime, 1, "time", "is required"},
		{"missing time in array", "[" + logA + "," + logA + "," + noTime + "]", 2, "time", "is required"},
		{"bad kind", `{"kind":"trace","service":"a","time":"2026-01-01T00:00:00Z"}`, 0, "kind", "want one of"},
		{"body value wrong type", `{"kind":"metric","service":"a","time":"2026-01-01T00:00:00Z","body":{"name":"m","value":"high"}}`, 0, "body.value", "JSON type string"},
		{"time not RFC 3339", `{"kind":"log","service":"a","time":"yesterday","body":{"message":"x"}}`, 0, "time", "RFC 3339"},
		{"syntax error in line 2", logA + "\n{\"kind\": \n", 1, "", "not valid JSON"},
		{"not an object", logA + "\n42\n", 1, "", "not a JSON object"},
		{"data after array", "[" + logA + "] {}", NoItem, "", "after the closing"},
		{"unterminated array", "[" + logA + ",", 1, "", "not valid JSON"},
		// The stream keeps one event per id: a second is not "accepted".
		{"an id twice in an array", "[" + withID + "," + logA + "," + withID + "]", 2, "id", "is also item 0's"},
		{"an id twice in ndjson", withID + "\n" + withID + "\n", 1, "id", "is also item 0's"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b, err := Events([]byte(c.in), opts())
			if b != nil {
				t.Errorf("got a batch of %d events with an error", len(b.Events))
			}
			p := hasProblem(t, err, c.item, c.field)
			if !strings.Contains(p.Problem, c.says) {
				t.Errorf("problem %q does not say %q", p.Problem, c.says)
			}
		})
	}
}

func TestEventsRefusesWholeRequestAndCapsProblems(t *testing.T) {
	var sb strings.Builder
	for i := range 150 {
		fmt.Fprintf(&sb, `{"kind":"log","service":"s%d","body":{"message":"x"}}`+"\n", i)
	}
	sb.WriteString(logA + "\n")
	_, err := Events([]byte(sb.String()), opts())
	var de *Error
	if !errors.As(err, &de) {
		t.Fatalf("want *Error, got %v", err)
	}
	eq(t, "listed", len(de.Problems), MaxProblems)
	eq(t, "total", de.Total, 150)
	eq(t, "first", de.Problems[0], Problem{Item: 0, Field: "time", Problem: "is required"})
	if !strings.Contains(err.Error(), "and 50 more problems") {
		t.Errorf("message does not count the rest: %.200s", err.Error())
	}
	if !strings.Contains(de.Problems[1].String(), `item 1: field "time": is required`) {
		t.Errorf("String() = %q", de.Problems[1].String())
	}
}

func TestEventsTooMany(t *testing.T) {
	in := strings.Repeat(logA+"\n", 3)
	o := opts()
	o.MaxEvents = 2
	_, err := Events([]byte(in), o)
	if !errors.Is(err, ErrTooManyEvents) || !errs.IsPermanent(err) {
		t.Fatalf("want permanent ErrTooManyEvents, got %v", err)
	}
	o.MaxEvents = 3
	if b, err := Events([]byte(in), o); err != nil || len(b.Events) != 3 {
		t.Fatalf("exactly at the limit: %v", err)
	}
}

func TestProblemJSONLeavesOutRequestItem(t *testing.T) {
	b, _ := Problem{Item: NoItem, Problem: "p"}.MarshalJSON()
	eq(t, "request-wide", string(b), `{"problem":"p"}`)
	b, _ = Problem{Item: 0, Field: "time", Problem: "is required"}.MarshalJSON()
	eq(t, "item 0", string(b), `{"item":0,"field":"time","problem":"is required"}`)
}

func TestNDJSONMatchesEvents(t *testing.T) {
	in := []byte(logA + "\r\n\n" + metricB + "\n  \n" + logA)
	viaStream, err := Events(in, opts())
	if err != nil {
		t.Fatal(err)
	}
	viaLines, err := NDJSON(in, opts())
	if err != nil {
		t.Fatal(err)
	}
	if len(viaLines.Events) != 3 || len(viaStream.Events) != 3 {
		t.Fatalf("got %d and %d events, want 3", len(viaLines.Events), len(viaStream.Events))
	}
	for i := range viaLines.Events {
		a, b := *viaLines.Events[i], *viaStream.Events[i]
		if i != 1 { // the log lines have no id: each decode draws one
			a.ID, b.ID = "", ""
		}
		eq(t, fmt.Sprintf("event %d", i), a, b)
	}
}

func TestNDJSONErrors(t *testing.T) {
	noTime := `{"kind":"log","service":"a","body":{"message":"x"}}`
	cases := []struct {
		name  string
		in    string
		want  []Problem
		field string
	}{
		{"blank", "\n \r\n", []Problem{{Item: NoItem, Problem: "the body has no events"}}, ""},
		{"every bad line reported", logA + "\n{\"kind\":\n" + noTime + "\n\n7\n", []Problem{
			{Item: 1, Problem: "is not valid JSON: unexpected end of JSON input"},
			{Item: 2, Field: "time", Problem: "is required"},
		}, ""},
		{"pretty object", "{\n" + `"kind":"log"` + "\n}", []Problem{{Item: 0, Problem: "is not valid JSON: unexpected end of JSON input"}}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := NDJSON([]byte(c.in), opts())
			got := problemsOf(t, err)
			for _, w := range c.want {
				found := false
				for _, p := range got {
					if p.Item == w.Item && p.Field == w.Field && strings.Contains(p.Problem, strings.TrimPrefix(w.Problem, "is not valid JSON: ")) {
						found = true
					}
				}
				if !found {
					t.Errorf("no problem like %+v in %v", w, got)
				}
			}
		})
	}
	o := opts()
	o.MaxEvents = 2
	if _, err := NDJSON([]byte(strings.Repeat(logA+"\n", 3)), o); !errors.Is(err, ErrTooManyEvents) {
		t.Fatalf("want ErrTooManyEvents, got %v", err)
	}
}
