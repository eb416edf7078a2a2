package decode

import "testing"

// With an Idempotency-Key an envelope without an id gets one derived from
// the key, its position in the request and its content, body included:
// two different logs under one key get two ids (the stream would keep the
// first and drop the second while the gateway answers it accepted), and
// the same request sent again gets the same ids.
func TestKeyedIDCoversTheBody(t *testing.T) {
	o := opts()
	o.IdempotencyKey = "batch-1"
	a, err := Events([]byte(`{"kind":"log","service":"s","time":"2026-11-21T11:00:00Z","body":{"message":"disk full"}}`), o)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Events([]byte(`{"kind":"log","service":"s","time":"2026-11-21T11:00:00Z","body":{"message":"payment declined"}}`), o)
	if err != nil {
		t.Fatal(err)
	}
	if a.Events[0].ID == b.Events[0].ID {
		t.Errorf("two different envelopes under one key share id %s: the second is dropped as a duplicate while answered accepted", a.Events[0].ID)
	}
	again, err := Events([]byte(`{"kind":"log","service":"s","time":"2026-11-21T11:00:00Z","body":{"message":"disk full"}}`), o)
	if err != nil {
		t.Fatal(err)
	}
	if again.Events[0].ID != a.Events[0].ID {
		t.Errorf("the same request sent again under its key: id %s, first %s", again.Events[0].ID, a.Events[0].ID)
	}
}

// A retry under the same Idempotency-Key whose body differs only by its
// encoding (whitespace, key order) keeps its id: stored once.
func TestKeyedIDStableAcrossReencoding(t *testing.T) {
	o := opts()
	o.IdempotencyKey = "batch-1"
	a, err := Events([]byte(`{"kind":"log","service":"s","time":"2026-11-21T11:00:00Z","body":{"message":"disk full","severity_text":"ERROR"}}`), o)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Events([]byte(`{"kind":"log","service":"s","time":"2026-11-21T11:00:00Z","body":{ "severity_text": "ERROR", "message": "disk full" }}`), o)
	if err != nil {
		t.Fatal(err)
	}
	if a.Events[0].ID != b.Events[0].ID {
		t.Fatalf("same event re-encoded under one key: ids %s and %s", a.Events[0].ID, b.Events[0].ID)
	}
}
