package event

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aiops-dev/aiops/pkg/errs"
	"github.com/santhosh-tekuri/jsonschema/v6"
)

var t0 = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

// TestFingerprintGolden pins the byte layout: the expected values were
// computed outside Go (FNV-1a 64 written out in Python over the documented
// layout). A change here changes every fingerprint already stored.
func TestFingerprintGolden(t *testing.T) {
	got := Fingerprint(KindAlert, "checkout",
		map[string]string{"env": "prod", "alertname": "HighLatency"},
		map[string]string{"host": "web-1"})
	if got != "68fa2e0308ef8f70" {
		t.Fatalf("fingerprint changed: got %s, want 68fa2e0308ef8f70", got)
	}
	if got := Fingerprint(KindMetric, "", nil, nil); got != "313b69e012fa063f" {
		t.Fatalf("empty fingerprint changed: got %s", got)
	}
}

func TestFingerprintIdentity(t *testing.T) {
	base := Fingerprint(KindAlert, "svc", map[string]string{"a": "1", "b": "2"}, nil)
	for i := 0; i < 50; i++ { // map iteration order varies run to run
		if got := Fingerprint(KindAlert, "svc", map[string]string{"b": "2", "a": "1"}, nil); got != base {
			t.Fatalf("fingerprint depends on map order: %s vs %s", got, base)
		}
	}
	differs := map[string]string{
		"kind":            Fingerprint(KindLog, "svc", map[string]string{"a": "1", "b": "2"}, nil),
		"service":         Fingerprint(KindAlert, "svc2", map[string]string{"a": "1", "b": "2"}, nil),
		"label value":     Fingerprint(KindAlert, "svc", map[string]string{"a": "1", "b": "3"}, nil),
		"label moved":     Fingerprint(KindAlert, "svc", map[string]string{"a": "1"}, map[string]string{"b": "2"}),
		"key/value split": Fingerprint(KindAlert, "svc", map[string]string{"a": "1b", "": "2"}, nil),
	}
	for what, fp := range differs {
		if fp == base {
			t.Errorf("changing the %s did not change the fingerprint", what)
		}
	}
	e1, _ := New(KindAlert, "svc", t0, AlertBody{Name: "x", Status: AlertFiring})
	e2, _ := New(KindAlert, "svc", t0.Add(time.Hour), AlertBody{Name: "y", Status: AlertResolved})
	if e1.Fingerprint != e2.Fingerprint {
		t.Error("time or body changed the fingerprint")
	}
}

func validLog() *Envelope {
	e, err := New(KindLog, "checkout", t0, LogBody{Message: "payment failed"})
	if err != nil {
		panic(err)
	}
	e.Labels = map[string]string{"env": "prod"}
	e.Severity = SeverityError
	e.Fingerprint = Fingerprint(e.Kind, e.Service, e.Labels, e.Resource)
	return e
}

func TestRoundTripKeepsUnknownFields(t *testing.T) {
	in := `{"schema_version":1,"id":"01JD0000000000000000000000","kind":"log","time":"2026-11-21T12:00:00Z",
	  "observed_time":"2026-11-21T12:00:01Z","service":"api","fingerprint":"0123456789abcdef",
	  "body":{"message":"hi","vendor_field":{"x":[1,2]}},"trace_flags":7,"x_team":"payments"}`
	e, err := Decode([]byte(in), t0)
	if err != nil {
		t.Fatal(err)
	}
	if string(e.Extra["x_team"]) != `"payments"` || string(e.Extra["trace_flags"]) != "7" {
		t.Fatalf("unknown fields not kept: %v", e.Extra)
	}
	out, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	if err := json.Unmarshal(out, &back); err != nil {
		t.Fatal(err)
	}
	if back["x_team"] != "payments" || back["trace_flags"] != float64(7) {
		t.Fatalf("unknown fields lost on the way out: %s", out)
	}
	body := back["body"].(map[string]any)
	if _, ok := body["vendor_field"]; !ok {
		t.Fatalf("unknown body field lost: %s", out)
	}
	e2, err := Decode(out, t0)
	if err != nil {
		t.Fatal(err)
	}
	if e2.ID != e.ID || !e2.Time.Equal(e.Time) || e2.Fingerprint != e.Fingerprint || e2.Service != "api" {
		t.Fatalf("round trip changed the envelope: %+v vs %+v", e2, e)
	}
}

func TestDecodeFillsDefaults(t *testing.T) {
	e, err := Decode([]byte(`{"kind":"metric","time":"2026-11-21T12:00:00+01:00","service":"db","severity":"WARN",
		"labels":{"__name__":"cpu"},"body":{"name":"cpu","value":0.5}}`), t0)
	if err != nil {
		t.Fatal(err)
	}
	if !ValidID(e.ID) || e.SchemaVersion != SchemaVersion || !e.ObservedTime.Equal(t0) || e.Severity != SeverityWarning {
		t.Fatalf("defaults not filled: %+v", e)
	}
	if e.Time.Location() != time.UTC || e.Time.Hour() != 11 {
		t.Fatalf("time not normalized to UTC: %v", e.Time)
	}
	if e.Fingerprint != Fingerprint(KindMetric, "db", map[string]string{"__name__": "cpu"}, nil) {
		t.Fatal("fingerprint not computed from identity")
	}
}

func TestValidationNamesTheField(t *testing.T) {
	cases := []struct {
		name, json, field, problem string
	}{
		{"not an object", `[1]`, "", "not a JSON object"},
		{"missing kind", `{"time":"2026-11-21T12:00:00Z","service":"a","body":{"message":"m"}}`, "kind", "is required"},
		{"bad kind", `{"kind":"trace","time":"2026-11-21T12:00:00Z","service":"a"}`, "kind", `is "trace"`},
		{"missing time", `{"kind":"log","service":"a","body":{"message":"m"}}`, "time", "is required"},
		{"time not RFC 3339", `{"kind":"log","time":"yesterday","service":"a","body":{"message":"m"}}`, "time", "RFC 3339"},
		{"time out of range", `{"kind":"log","time":"2200-01-01T00:00:00Z","service":"a","body":{"message":"m"}}`, "time", "outside the storable range"},
		{"service missing", `{"kind":"log","time":"2026-11-21T12:00:00Z","body":{"message":"m"}}`, "service", "is required"},
		{"service control char", `{"kind":"log","time":"2026-11-21T12:00:00Z","service":"a\nb","body":{"message":"m"}}`, "service", "printable"},
		{"service wrong type", `{"kind":"log","time":"2026-11-21T12:00:00Z","service":5,"body":{"message":"m"}}`, "service", "has JSON type number, want string"},
		{"bad id", `{"id":"123","kind":"log","time":"2026-11-21T12:00:00Z","service":"a","body":{"message":"m"}}`, "id", "not a ULID"},
		{"bad severity", `{"kind":"log","severity":"purple","time":"2026-11-21T12:00:00Z","service":"a","body":{"message":"m"}}`, "severity", `"purple"`},
		{"fingerprint with a control character", `{"fingerprint":"alert\u0007","kind":"log","time":"2026-11-21T12:00:00Z","service":"a","body":{"message":"m"}}`, "fingerprint", "without control characters"},
		{"service with a C1 control", `{"kind":"log","time":"2026-11-21T12:00:00Z","service":"a\u0085b","body":{"message":"m"}}`, "service", "without control characters"},
		{"service with a bidirectional override", `{"kind":"log","time":"2026-11-21T12:00:00Z","service":"pay\u202egnp.exe","body":{"message":"m"}}`, "service", "bidirectional formatting characters"},
		{"label key with an isolate", `{"kind":"log","time":"2026-11-21T12:00:00Z","service":"a","labels":{"te\u2066am":"x"},"body":{"message":"m"}}`, "labels.te\u2066am", "bidirectional formatting characters"},
		{"fingerprint with a right-to-left mark", `{"fingerprint":"alert\u200f1","kind":"log","time":"2026-11-21T12:00:00Z","service":"a","body":{"message":"m"}}`, "fingerprint", "bidirectional formatting characters"},
		{"fingerprint too long", `{"fingerprint":"` + strings.Repeat("f", MaxFingerprintBytes+1) + `","kind":"log","time":"2026-11-21T12:00:00Z","service":"a","body":{"message":"m"}}`, "fingerprint", "1 to 256 bytes"},
		{"template id not a fingerprint aiops makes", `{"kind":"log_template","time":"2026-11-21T12:00:00Z","service":"a","body":{"template_id":"t-1","template":"t","status":"new"}}`, "body.template_id", "16 lower-case hex"},
		{"label not string", `{"kind":"log","time":"2026-11-21T12:00:00Z","service":"a","labels":{"x":1},"body":{"message":"m"}}`, "labels", "want string"},
		{"body not object", `{"kind":"log","time":"2026-11-21T12:00:00Z","service":"a","body":"hello"}`, "body", "JSON object"},
		{"log without message", `{"kind":"log","time":"2026-11-21T12:00:00Z","service":"a","body":{}}`, "body.message", "is required"},
		{"log without body", `{"kind":"log","time":"2026-11-21T12:00:00Z","service":"a"}`, "body", "is required for kind log"},
		{"metric without value", `{"kind":"metric","time":"2026-11-21T12:00:00Z","service":"a","body":{"name":"x"}}`, "body.value", "is required"},
		{"metric value string", `{"kind":"metric","time":"2026-11-21T12:00:00Z","service":"a","body":{"name":"x","value":"1"}}`, "body.value", "want number"},
		{"alert bad status", `{"kind":"alert","time":"2026-11-21T12:00:00Z","service":"a","body":{"name":"x","status":"open"}}`, "body.status", `"open"`},
		{"change bad type", `{"kind":"change","time":"2026-11-21T12:00:00Z","service":"a","body":{"type":"yolo"}}`, "body.type", `"yolo"`},
		{"anomaly score out of range", `{"kind":"anomaly","time":"2026-11-21T12:00:00Z","service":"a","body":{"series":"s","detector":"mad","value":1,"score":2}}`, "body.score", "[0,1]"},
		{"incident without id", `{"kind":"incident","time":"2026-11-21T12:00:00Z","service":"a","body":{"status":"opened","title":"t"}}`, "body.incident_id", "is required"},
		{"template changed without previous", `{"kind":"log_template","time":"2026-11-21T12:00:00Z","service":"a","body":{"template_id":"00112233aabbccdd","template":"t","status":"changed"}}`, "body.previous_id", "when status is changed"},
		{"incident time not a time", `{"kind":"incident","time":"2026-11-21T12:00:00Z","service":"a","body":{"incident_id":"i","status":"opened","title":"t","acknowledged_at":"yesterday"}}`, "body.acknowledged_at", "RFC 3339"},
		{"bad link", `{"kind":"log","time":"2026-11-21T12:00:00Z","service":"a","links":["nope"],"body":{"message":"m"}}`, "links[0]", "not a ULID"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Decode([]byte(c.json), t0)
			if err == nil {
				t.Fatal("accepted")
			}
			if !errs.IsPermanent(err) {
				t.Errorf("error is not permanent: %v", err)
			}
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("not a *ValidationError: %T %v", err, err)
			}
			for _, p := range ve.Problems {
				if p.Field == c.field && strings.Contains(p.Problem, c.problem) {
					return
				}
			}
			t.Fatalf("no problem for field %q containing %q in: %v", c.field, c.problem, err)
		})
	}
}

func TestDecodeRefusesOversize(t *testing.T) {
	big := bytes.Repeat([]byte(" "), MaxEnvelopeBytes+1)
	_, err := Decode(big, t0)
	if err == nil || !errs.IsPermanent(err) || !strings.Contains(err.Error(), "over the limit") {
		t.Fatalf("oversized envelope: %v", err)
	}
	e := validLog()
	e.Labels = map[string]string{}
	for i := 0; i <= MaxLabels; i++ {
		e.Labels[strings.Repeat("k", i+1)] = "v"
	}
	if err := e.Validate(); err == nil || !strings.Contains(err.Error(), `field "labels" has 129 entries`) {
		t.Fatalf("too many labels: %v", err)
	}
}

// TestSchemaAgreesWithValidate runs one corpus through the published JSON
// Schema and through Validate: both must accept and refuse the same ones.
func TestSchemaAgreesWithValidate(t *testing.T) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(SchemaJSON))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource("envelope.json", doc); err != nil {
		t.Fatal(err)
	}
	schema, err := c.Compile("envelope.json")
	if err != nil {
		t.Fatalf("schema does not compile: %v", err)
	}
	mutate := func(f func(m map[string]any)) []byte {
		raw, _ := json.Marshal(validLog())
		var m map[string]any
		json.Unmarshal(raw, &m)
		f(m)
		out, _ := json.Marshal(m)
		return out
	}
	corpus := map[string][]byte{
		"valid log":    mutate(func(m map[string]any) {}),
		"valid metric": mutate(func(m map[string]any) { m["kind"] = "metric"; m["body"] = map[string]any{"name": "cpu", "value": 0.3} }),
		"valid alert": mutate(func(m map[string]any) {
			m["kind"] = "alert"
			m["body"] = map[string]any{"name": "Down", "status": "firing"}
		}),
		"valid change": mutate(func(m map[string]any) {
			m["kind"] = "change"
			m["body"] = map[string]any{"type": "deploy", "version": "1.2"}
		}),
		"unknown field kept":         mutate(func(m map[string]any) { m["x_extra"] = []any{1, "a"} }),
		"valid newer schema_version": mutate(func(m map[string]any) { m["schema_version"] = 2 }),
		"schema_version over uint16": mutate(func(m map[string]any) { m["schema_version"] = MaxSchemaVersion + 1 }),
		"missing id":                 mutate(func(m map[string]any) { delete(m, "id") }),
		"bad kind":                   mutate(func(m map[string]any) { m["kind"] = "span" }),
		"empty service":              mutate(func(m map[string]any) { m["service"] = "" }),
		"bad severity":               mutate(func(m map[string]any) { m["severity"] = "loud" }),
		"producer's fingerprint":     mutate(func(m map[string]any) { m["fingerprint"] = "Checkout/HighErrorRate #1" }),
		"fingerprint with a newline": mutate(func(m map[string]any) { m["fingerprint"] = "a\nb" }),
		"service with a C1 control":  mutate(func(m map[string]any) { m["service"] = "a\u0085b" }),
		"service with an override":   mutate(func(m map[string]any) { m["service"] = "pay\u202egnp.exe" }),
		"label key with an isolate":  mutate(func(m map[string]any) { m["labels"] = map[string]any{"te\u2066am": "x"} }),
		"source with a control":      mutate(func(m map[string]any) { m["source"] = "http\u0007" }),
		"empty source":               mutate(func(m map[string]any) { m["source"] = "" }),
		"service in Arabic":          mutate(func(m map[string]any) { m["service"] = "خدمة-الدفع" }),
		"fingerprint too long":       mutate(func(m map[string]any) { m["fingerprint"] = strings.Repeat("f", MaxFingerprintBytes+1) }),
		"label not string":           mutate(func(m map[string]any) { m["labels"] = map[string]any{"a": 1} }),
		"no message":                 mutate(func(m map[string]any) { m["body"] = map[string]any{} }),
		"metric no value":            mutate(func(m map[string]any) { m["kind"] = "metric"; m["body"] = map[string]any{"name": "cpu"} }),
		"alert bad status": mutate(func(m map[string]any) {
			m["kind"] = "alert"
			m["body"] = map[string]any{"name": "Down", "status": "up"}
		}),
		"time not a time": mutate(func(m map[string]any) { m["time"] = "noon" }),
		"link not ulid":   mutate(func(m map[string]any) { m["links"] = []any{"x"} }),
		"valid new template": mutate(func(m map[string]any) {
			m["kind"] = "log_template"
			m["body"] = map[string]any{"template_id": "00112233aabbccdd", "template": "user <*> logged in", "status": "new"}
		}),
		"changed template without previous id": mutate(func(m map[string]any) {
			m["kind"] = "log_template"
			m["body"] = map[string]any{"template_id": "00112233aabbccdd", "template": "user <*> logged in", "status": "changed"}
		}),
		"valid merged incident": mutate(func(m map[string]any) {
			m["kind"] = "incident"
			m["body"] = map[string]any{"incident_id": "i", "status": "resolved", "title": "t", "merged_into": "j"}
		}),
		"merged_into not a string": mutate(func(m map[string]any) {
			m["kind"] = "incident"
			m["body"] = map[string]any{"incident_id": "i", "status": "resolved", "title": "t", "merged_into": 7}
		}),
		"valid incident resolved by hand": mutate(func(m map[string]any) {
			m["kind"] = "incident"
			m["body"] = map[string]any{"incident_id": "i", "status": "resolved", "title": "t", "acknowledged_by": "ana", "resolved_by": "bo"}
		}),
		"acknowledged_by not a string": mutate(func(m map[string]any) {
			m["kind"] = "incident"
			m["body"] = map[string]any{"incident_id": "i", "status": "acknowledged", "title": "t", "acknowledged_by": 7}
		}),
		"valid anomaly episode": mutate(func(m map[string]any) {
			m["kind"] = "anomaly"
			m["body"] = map[string]any{"series": "s", "value": 9, "score": 0.9, "detector": "vote", "episode": "open", "episode_id": "e",
				"start": "2026-11-21T12:00:00Z", "end": "2026-11-21T12:00:00Z", "peak": 0.9, "peak_time": "2026-11-21T12:00:00Z", "peak_value": 9}
		}),
		// A producer checking its anomalies against the schema must not
		// post what Validate refuses (an episode's open without end was
		// a 400 of a body the schema took, in a storm trial).
		"episode without end": mutate(func(m map[string]any) {
			m["kind"] = "anomaly"
			m["body"] = map[string]any{"series": "s", "value": 9, "score": 0.9, "detector": "vote", "episode": "open", "episode_id": "e",
				"start": "2026-11-21T12:00:00Z"}
		}),
		"episode without start": mutate(func(m map[string]any) {
			m["kind"] = "anomaly"
			m["body"] = map[string]any{"series": "s", "value": 9, "score": 0.9, "detector": "vote", "episode": "open", "episode_id": "e",
				"end": "2026-11-21T12:00:00Z"}
		}),
		"episode without episode_id": mutate(func(m map[string]any) {
			m["kind"] = "anomaly"
			m["body"] = map[string]any{"series": "s", "value": 9, "score": 0.9, "detector": "vote", "episode": "open",
				"start": "2026-11-21T12:00:00Z", "end": "2026-11-21T12:00:00Z"}
		}),
		"episode not a phase": mutate(func(m map[string]any) {
			m["kind"] = "anomaly"
			m["body"] = map[string]any{"series": "s", "value": 9, "score": 0.9, "detector": "vote", "episode": "opened", "episode_id": "e",
				"start": "2026-11-21T12:00:00Z", "end": "2026-11-21T12:00:00Z"}
		}),
		"episode start not a time": mutate(func(m map[string]any) {
			m["kind"] = "anomaly"
			m["body"] = map[string]any{"series": "s", "value": 9, "score": 0.9, "detector": "vote", "start": "noon"}
		}),
		"template id not hex": mutate(func(m map[string]any) {
			m["kind"] = "log_template"
			m["body"] = map[string]any{"template_id": "xyz", "template": "t", "status": "new"}
		}),
	}
	for name, raw := range corpus {
		inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		schemaErr := schema.Validate(inst)
		var e Envelope
		goErr := json.Unmarshal(raw, &e)
		if goErr == nil {
			goErr = e.Validate() // no Normalize: the schema describes what is on the wire
		}
		if (schemaErr == nil) != (goErr == nil) {
			t.Errorf("%s: schema says %v, Validate says %v", name, schemaErr, goErr)
		}
		if strings.HasPrefix(name, "valid") && goErr != nil {
			t.Errorf("%s refused: %v", name, goErr)
		}
	}
}

func TestSubject(t *testing.T) {
	cases := map[string]string{
		"checkout":      "events.log.checkout",
		"api.v2":        "events.log.api_v2",
		"a b*c>d":       "events.log.a_b_c_d",
		"":              "events.log._",
		"pay-svc_01:eu": "events.log.pay-svc_01:eu",
	}
	for svc, want := range cases {
		if got := Subject(KindLog, svc); got != want {
			t.Errorf("Subject(%q) = %q, want %q", svc, got, want)
		}
	}
}

func TestNewIDUniqueAndOrdered(t *testing.T) {
	const workers, each = 8, 2000
	var mu sync.Mutex
	seen := make(map[string]bool, workers*each)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]string, each)
			for i := range local {
				local[i] = NewID(t0)
			}
			for i := 1; i < len(local); i++ {
				if local[i] <= local[i-1] {
					t.Errorf("ids not increasing within one millisecond: %s then %s", local[i-1], local[i])
					return
				}
			}
			mu.Lock()
			for _, id := range local {
				seen[id] = true
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	if len(seen) != workers*each {
		t.Fatalf("%d unique ids of %d", len(seen), workers*each)
	}
	if a, b := NewID(t0), NewID(t0.Add(time.Millisecond)); a >= b {
		t.Fatalf("later time sorts first: %s >= %s", a, b)
	}
}

func TestParseSeverity(t *testing.T) {
	for in, want := range map[string]Severity{"WARN": SeverityWarning, "fatal": SeverityCritical, "Err": SeverityError, "trace": SeverityDebug, "": ""} {
		got, ok := ParseSeverity(in)
		if !ok || got != want {
			t.Errorf("ParseSeverity(%q) = %q,%v want %q", in, got, ok, want)
		}
	}
	// The priorities of paging and ticketing tools: 1 is the worst.
	for in, want := range map[string]Severity{"SEV0": SeverityCritical, "p0": SeverityCritical, "P1": SeverityCritical, "sev-2": SeverityError, "SEV 3": SeverityWarning, "s4": SeverityInfo, "p5": SeverityInfo,
		"Highest": SeverityCritical, "medium": SeverityWarning, "Low": SeverityInfo, "lowest": SeverityDebug, "severe": SeverityError, "page": SeverityCritical} {
		got, ok := ParseSeverity(in)
		if !ok || got != want {
			t.Errorf("ParseSeverity(%q) = %q,%v want %q", in, got, ok, want)
		}
	}
	for _, in := range []string{"purple", "p6", "sev12", "3", "p", "sev", "pp1", "s-"} {
		if got, ok := ParseSeverity(in); ok {
			t.Errorf("unknown severity %q accepted as %q", in, got)
		}
	}
	if SeverityCritical.Rank() <= SeverityError.Rank() || Severity("").Rank() != 0 {
		t.Error("rank order wrong")
	}
}

func BenchmarkDecode(b *testing.B) {
	raw, _ := json.Marshal(validLog())
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := Decode(raw, t0); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMarshal(b *testing.B) {
	e := validLog()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := json.Marshal(e); err != nil {
			b.Fatal(err)
		}
	}
}

func TestParseIsStrict(t *testing.T) {
	good, _ := json.Marshal(validLog())
	e, err := Parse(good)
	if err != nil || e.Service != "checkout" {
		t.Fatalf("Parse(valid) = %v, %v", e, err)
	}
	// What Decode would fill in, Parse refuses: a bus consumer must not
	// invent an id that changes on every redelivery.
	_, err = Parse([]byte(`{"kind":"log","time":"2026-11-21T12:00:00Z","service":"a","body":{"message":"m"}}`))
	var ve *ValidationError
	if !errors.As(err, &ve) || !errs.IsPermanent(err) {
		t.Fatalf("Parse(incomplete) = %v", err)
	}
	fields := map[string]bool{}
	for _, p := range ve.Problems {
		fields[p.Field] = true
	}
	for _, f := range []string{"id", "observed_time", "fingerprint", "schema_version"} {
		if !fields[f] {
			t.Errorf("Parse did not name missing %s: %v", f, err)
		}
	}
}

func TestBrokenJSONNamesTheProblem(t *testing.T) {
	for _, decode := range []func([]byte) (*Envelope, error){Parse, func(b []byte) (*Envelope, error) { return Decode(b, t0) }} {
		_, err := decode([]byte(`{"kind":"log","service":`))
		var ve *ValidationError
		if !errors.As(err, &ve) || !errs.IsPermanent(err) || !strings.Contains(err.Error(), "not valid JSON: unexpected end of JSON input") {
			t.Fatalf("truncated JSON: %v", err)
		}
	}
}

func TestMarshalBodyKeepsTemplates(t *testing.T) {
	raw, err := MarshalBody(LogBody{Message: "a < b && c > d", Template: "user <*> logged in"})
	if err != nil {
		t.Fatal(err)
	}
	if string(raw) != `{"message":"a < b && c > d","template":"user <*> logged in"}` {
		t.Fatalf("MarshalBody = %s", raw)
	}
}

// Derived ids are deterministic, keep their time, tell apart lists of parts
// that concatenate alike, and never fail on times a ULID cannot hold.
func TestDerivedID(t *testing.T) {
	at := time.Date(2026, 11, 21, 12, 0, 0, 123_000_000, time.UTC)
	a := DerivedID(at, "templated_log", "01JDB3V0R6Z6ZJ9J3W4C4Q8Y2M")
	if a != DerivedID(at, "templated_log", "01JDB3V0R6Z6ZJ9J3W4C4Q8Y2M") || !ValidID(a) {
		t.Fatalf("%s: not a stable ULID", a)
	}
	if !IDTime(a).Equal(at) {
		t.Fatalf("time part %v, want %v", IDTime(a), at)
	}
	if DerivedID(at, "ab", "c") == DerivedID(at, "a", "bc") || DerivedID(at, "x") == DerivedID(at.Add(time.Millisecond), "x") {
		t.Fatal("different inputs gave the same id")
	}
	for _, t0 := range []time.Time{time.Unix(-5, 0), time.Date(12000, 1, 1, 0, 0, 0, 0, time.UTC)} {
		if id := DerivedID(t0, "x"); !ValidID(id) {
			t.Fatalf("time %v: %q is not a ULID", t0, id)
		}
	}
	if id := NewID(time.Time{}); !ValidID(id) {
		t.Fatalf("NewID of the zero time: %q", id)
	}
	long := strings.Repeat("x", 2000)
	if DerivedID(at, "a", long) != DerivedIDBytes(at, []byte("a"), []byte(long)) || DerivedID(at, "a", "b") != DerivedIDBytes(at, []byte("a"), []byte("b")) {
		t.Fatal("DerivedIDBytes differs from DerivedID over the same parts")
	}
	if !IDTime("not an id").IsZero() {
		t.Fatal("IDTime of a non-ULID is not the zero time")
	}
}

// TestPartsHashSeparatesParts: moving bytes from one part to the next, or
// an empty part, gives another hash.
func TestPartsHashSeparatesParts(t *testing.T) {
	if PartsHash("ab", "c") == PartsHash("a", "bc") || PartsHash("", "x") == PartsHash("x", "") || PartsHash("x") == PartsHash("x", "") {
		t.Fatal("different lists of parts hash alike")
	}
	// The notifier keeps this hash in its records: it must stay FNV-1a 64
	// over each part's uvarint length and bytes.
	h := fnv.New64a()
	h.Write([]byte{1, 'a', 0, 3})
	h.Write([]byte("xyz"))
	if PartsHash("a", "", "xyz") != h.Sum64() {
		t.Fatalf("PartsHash = %x, want %x: the stored keys would change", PartsHash("a", "", "xyz"), h.Sum64())
	}
}

// BenchmarkDerivedID: a derived id of a few short parts (a templated log's)
// and of a 2 KB body (an OTLP log's content id), beside the SHA-256 of the
// same bytes alone, the floor.
func BenchmarkDerivedID(b *testing.B) {
	at := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	body := []byte(strings.Repeat("x", 2048))
	b.Run("short", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			DerivedID(at, "templated_log", "01JDB3V0R6Z6ZJ9J3W4C4Q8Y2M")
		}
	})
	b.Run("body-2KB", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			DerivedIDBytes(at, []byte("log"), []byte("0123456789abcdef"), body)
		}
	})
	b.Run("sha256-2KB-baseline", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			sha256.Sum256(body)
		}
	})
}

// The fingerprint is Prometheus' (github.com/prometheus/common, model
// signature_test.go: TestLabelsToSignature and TestMetricToFingerprint).
func TestAlertmanagerFingerprint(t *testing.T) {
	if got := AlertmanagerFingerprint(map[string]string{}); got != fmt.Sprintf("%016x", uint64(14695981039346656037)) {
		t.Fatalf("empty: %s", got)
	}
	if got := AlertmanagerFingerprint(map[string]string{"name": "garland, briggs", "fear": "love is not enough"}); got != fmt.Sprintf("%016x", uint64(5799056148416392346)) {
		t.Fatalf("fingerprint %s", got)
	}
}

// Prefix cuts on a character's start, never inside a UTF-8 sequence.
func TestPrefixCutsOnACharacter(t *testing.T) {
	for _, c := range []struct {
		s    string
		n    int
		want string
	}{
		{"abc", 5, "abc"}, {"abc", 2, "ab"}, {"aé", 2, "a"}, {"aé", 3, "aé"}, {"é", 1, ""}, {"x€y", 3, "x"}, {"x€y", 4, "x€"},
	} {
		if got := Prefix(c.s, c.n); got != c.want {
			t.Errorf("Prefix(%q, %d) = %q, want %q", c.s, c.n, got, c.want)
		}
	}
}

// TestEpisodeErrorNamesTheMissingField: an episode's anomaly without end
// was refused naming body.start, which the producer had sent.
func TestEpisodeErrorNamesTheMissingField(t *testing.T) {
	start := t0.Add(-time.Minute)
	cases := map[string]struct {
		body AnomalyBody
		want string
	}{
		"no start":         {AnomalyBody{End: t0}, `field "body.start" is required with an episode`},
		"no end":           {AnomalyBody{Start: start}, `field "body.end" is required with an episode`},
		"end before start": {AnomalyBody{Start: t0, End: start}, `field "body.end" is before start`},
	}
	for name, c := range cases {
		value, score := 9.0, 0.9
		b := c.body
		b.Series, b.Value, b.Score, b.Detector, b.Episode, b.EpisodeID = "s", &value, &score, "ewma", EpisodeOpen, "e"
		e, err := New(KindAnomaly, "checkout", t0, b)
		if err == nil {
			err = e.Validate()
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want %s", name, err, c.want)
		}
	}
}
