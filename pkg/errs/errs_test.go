package errs

import (
	"errors"
	"fmt"
	"testing"
)

func TestPermanent(t *testing.T) {
	base := errors.New("bad field")
	p := Permanent(base)
	if !IsPermanent(p) {
		t.Fatal("Permanent(err) is not permanent")
	}
	if !errors.Is(p, base) {
		t.Fatal("Permanent hides the wrapped error from errors.Is")
	}
	wrapped := fmt.Errorf("decode: %w", p)
	if !IsPermanent(wrapped) {
		t.Fatal("wrapping a permanent error loses its kind")
	}
	if IsPermanent(base) || IsPermanent(nil) {
		t.Fatal("a plain error is reported permanent")
	}
	if Permanent(nil) != nil {
		t.Fatal("Permanent(nil) must be nil")
	}
	if got := Permanentf("item %d: %w", 3, base); !IsPermanent(got) || !errors.Is(got, base) || got.Error() != "item 3: bad field" {
		t.Fatalf("Permanentf = %v", got)
	}
}
