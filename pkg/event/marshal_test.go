package event

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

// referenceJSON is what encoding/json makes of the known fields, plus the
// extra fields: the encoding AppendJSON must agree with.
func referenceJSON(t testing.TB, e *Envelope) any {
	known, err := json.Marshal(envelopeJSON(*e))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(known, &m); err != nil {
		t.Fatal(err)
	}
	for k, raw := range e.Extra {
		if _, isKnown := knownFields[k]; isKnown {
			continue
		}
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			t.Fatal(err)
		}
		// As a decoder would see the key: invalid UTF-8 becomes U+FFFD.
		quoted, _ := json.Marshal(k)
		json.Unmarshal(quoted, &k)
		m[k] = v
	}
	return m
}

func checkMarshal(t *testing.T, e *Envelope) {
	out, err := json.Marshal(e)
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	if !json.Valid(out) {
		t.Fatalf("invalid JSON: %s", out)
	}
	var got any
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	if want := referenceJSON(t, e); !reflect.DeepEqual(got, want) {
		t.Fatalf("AppendJSON and encoding/json disagree:\n%s\n%v", out, want)
	}
}

func TestMarshalAgreesWithEncodingJSON(t *testing.T) {
	e := validLog()
	checkMarshal(t, e)
	e.Service = "quote\" back\\slash \n\r\t\x01 \x7f é 日本 \u2028\u2029 <>&"
	e.Labels = map[string]string{"b": "2", "a": "\xff invalid utf8", "": "empty key"}
	e.Resource = map[string]string{"host": "web-1"}
	e.Links = []string{NewID(t0), NewID(t0)}
	e.Source = "src"
	e.Extra = map[string]json.RawMessage{"x_team": json.RawMessage(`"payments"`), "x_n": json.RawMessage(` [1, {"a": null}] `), "id": json.RawMessage(`"shadow"`)}
	e.Time = time.Date(2026, 11, 21, 12, 0, 0, 123456789, time.FixedZone("x", 3600))
	checkMarshal(t, e)
	e.Body = nil
	checkMarshal(t, e)
	e.Body = json.RawMessage(`"not an object"`)
	if _, err := json.Marshal(e); err == nil {
		t.Fatal("a body that is not an object was encoded")
	}
}

func FuzzMarshal(f *testing.F) {
	f.Add("svc", "env", "prod", "msg", "extra")
	f.Add("a\"b", "\x00", "\xff\xfe", "\u2028", "\\")
	f.Fuzz(func(t *testing.T, service, key, value, message, extraKey string) {
		e := validLog()
		e.Service = service
		e.Labels = map[string]string{key: value}
		body, _ := json.Marshal(LogBody{Message: message})
		e.Body = body
		e.Extra = map[string]json.RawMessage{extraKey: json.RawMessage(`1`)}
		checkMarshal(t, e)
	})
}
