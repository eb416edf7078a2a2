package writer

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/aiops-dev/aiops/pkg/event"
)

var fastBodySeeds = []string{
	`{"message":"GET /api/orders/1 200 in 1 ms","template_id":"t42","template":"GET /api/orders/\u003c*\u003e","params":["1","2"],"trace_id":"ab"}`,
	`{"message":"tab\there \"quoted\" back\\slash \/ \b\f\n\r","span_id":"s"}`,
	`{"message":"emoji \ud83d\ude00 lone \ud800 end \udc00x","params":[]}`,
	`{"message":"ünïcödé ✓", "extra": {"nested": [1, 2.5e-3, true, false, null, {"k": "v\u00e9"}]}, "n": -0}`,
	` { "Message" : "case differs" } `,
	`{"message":"dup","message":"second","params":["a"],"params":["b","c"]}`,
	`{"message":null}`,
	`{"message":"x"} trailing`,
	`{"name":"cpu","value":0.25,"unit":"ratio","type":"gauge"}`,
	`{"name":"big","value":1e400}`,
	`{"name":"n","value":-12.5E+2,"labels":{"a":"b"}}`,
	`{"name":"n","value":01}`,
	`{"name":"n","value":"1"}`,
	`{"message":"bad utf8 \xff"}`,
	`[]`,
	`{}`,
}

// FuzzFastBodies: whenever the fast decoders accept a body, encoding/json
// accepts it too and decodes the same values.
//
//	go test ./services/writer -run '^$' -fuzz FuzzFastBodies -fuzztime 30s
func FuzzFastBodies(f *testing.F) {
	for _, s := range fastBodySeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var fast event.LogBody
		if fastLogBody(data, &fast) {
			var std event.LogBody
			if err := json.Unmarshal(data, &std); err != nil {
				t.Fatalf("fast path took a log body encoding/json refuses (%v): %q", err, data)
			}
			if !reflect.DeepEqual(fast, std) {
				t.Fatalf("log body %q: fast %+v, encoding/json %+v", data, fast, std)
			}
		}
		var fm event.MetricBody
		var v float64
		if fastMetricBody(data, &fm, &v) {
			var std event.MetricBody
			if err := json.Unmarshal(data, &std); err != nil {
				t.Fatalf("fast path took a metric body encoding/json refuses (%v): %q", err, data)
			}
			if fm.Name != std.Name || fm.Unit != std.Unit || fm.Type != std.Type || (fm.Value == nil) != (std.Value == nil) ||
				(fm.Value != nil && *fm.Value != *std.Value) {
				t.Fatalf("metric body %q: fast %+v, encoding/json %+v", data, fm, std)
			}
		}
	})
}

// TestFastBodiesTakeTheUsualShapes guards the speed: the bodies producers
// send, escapes included, must not fall back to encoding/json.
func TestFastBodiesTakeTheUsualShapes(t *testing.T) {
	for _, s := range fastBodySeeds[:4] {
		var b event.LogBody
		if !fastLogBody([]byte(s), &b) {
			t.Errorf("fast path refused %s", s)
		}
	}
	var m event.MetricBody
	var v float64
	if !fastMetricBody([]byte(fastBodySeeds[8]), &m, &v) || m.Value == nil || *m.Value != 0.25 {
		t.Errorf("fast path refused or misread %s: %+v", fastBodySeeds[8], m)
	}
	for _, s := range []string{fastBodySeeds[4], fastBodySeeds[6], fastBodySeeds[7], fastBodySeeds[13]} {
		var b event.LogBody
		if fastLogBody([]byte(s), &b) {
			t.Errorf("fast path took %q, which encoding/json must decide", s)
		}
	}
}
