package event

import (
	"testing"
	"time"
)

func TestDecodeWithID(t *testing.T) {
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	const derived = "01KAKZ5N2V3W4X5Y6Z7A8B9C0D"
	noID := []byte(`{"kind":"log","service":"a","time":"2026-11-21T11:59:00Z","body":{"message":"m"}}`)
	e, err := DecodeWithID(noID, now, func(e *Envelope) string {
		if e.Service != "a" || e.ObservedTime != (time.Time{}) {
			t.Errorf("id func saw %+v, want the envelope as sent, before Normalize", e)
		}
		return derived
	})
	if err != nil || e.ID != derived {
		t.Fatalf("id %q, err %v; want %s", e.ID, err, derived)
	}
	own := []byte(`{"id":"01KAKZ5N2V3W4X5Y6Z7A8B9C0E","kind":"log","service":"a","time":"2026-11-21T11:59:00Z","body":{"message":"m"}}`)
	if e, err := DecodeWithID(own, now, func(*Envelope) string { return derived }); err != nil || e.ID != "01KAKZ5N2V3W4X5Y6Z7A8B9C0E" {
		t.Errorf("own id: %v, err %v", e, err)
	}
	if e, err := DecodeWithID(noID, now, func(*Envelope) string { return "" }); err != nil || !ValidID(e.ID) || e.ID == derived {
		t.Errorf("empty derived id: got %v, err %v; want a fresh random ULID", e, err)
	}
	if _, err := DecodeWithID([]byte(`{"kind":"log"`), now, nil); err == nil {
		t.Error("truncated JSON decoded")
	}
}
