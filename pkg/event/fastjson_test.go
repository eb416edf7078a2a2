package event

import (
	"encoding/json"
	"reflect"
	"testing"
)

// The fast path must never hide a field: whenever onlyKnownKeys says yes on
// valid JSON, every top-level key must be a known one, spelled exactly, and
// decoding through either path must give the same envelope.
func checkFastPath(t *testing.T, data []byte) {
	var keys map[string]json.RawMessage
	if json.Unmarshal(data, &keys) != nil {
		return
	}
	if onlyKnownKeys(data) {
		for k := range keys {
			if _, ok := knownFields[k]; !ok {
				t.Fatalf("onlyKnownKeys accepted unknown key %q in %s", k, data)
			}
		}
	}
	var fast Envelope
	if !decodeFast(data, &fast) {
		return
	}
	var slow Envelope
	if err := slow.UnmarshalJSON(data); err != nil {
		t.Fatalf("fast path accepted what the slow path refuses (%v): %s", err, data)
	}
	if !reflect.DeepEqual(fast, slow) {
		t.Fatalf("fast and slow decode differ on %s:\n%+v\n%+v", data, fast, slow)
	}
}

var fastPathSeeds = []string{
	`{"kind":"log","service":"a","body":{"message":"x","nested":{"service":"y"}}}`,
	`{"kind":"log","Service":"a"}`,
	`{"kind":"log","service":"a\"b","extra":1}`,
	`{"labels":{"a":"}"},"x":[1,{"y":"]"}]}`,
	`{"kind":"log","service":"a\\","x_unknown":true}`,
	`{"schema_version":1,"links":["a","b"],"body":null}`,
	`{"kind":"log","body":"text"}`,
	`{"kind":"log","serv\u0069ce":"a"}`,
	`{}`,
	` { "kind" : "log" , "service" : "a" } `,
	`{"time":"2026-11-21T12:00:00Z","severity":"warn","labels":{},"x":null}`,
}

func TestFastPathAgreesWithSlowPath(t *testing.T) {
	for _, s := range fastPathSeeds {
		checkFastPath(t, []byte(s))
	}
	raw, _ := json.Marshal(validLog())
	if !onlyKnownKeys(raw) {
		t.Fatal("a plain envelope takes the slow path")
	}
	checkFastPath(t, raw)
}

func FuzzFastPath(f *testing.F) {
	for _, s := range fastPathSeeds {
		f.Add([]byte(s))
	}
	raw, _ := json.Marshal(validLog())
	f.Add(raw)
	f.Fuzz(func(t *testing.T, data []byte) { checkFastPath(t, data) })
}
