package bus

import "testing"

// A valid token is kept as it is; any other text becomes a hashed token,
// the same for the same text and different for different texts.
func TestKeyToken(t *testing.T) {
	if got := KeyToken("0123456789abcdef"); got != "0123456789abcdef" {
		t.Errorf("a valid token became %q", got)
	}
	a, b := KeyToken("cpu.host b"), KeyToken("cpu.host c")
	if !ValidKeyToken(a) || a == b || a != KeyToken("cpu.host b") || a[:2] != "h-" {
		t.Errorf("tokens of texts: %q, %q", a, b)
	}
	for _, bad := range []string{"", "a.b", "a b", "a*", string(make([]byte, 129))} {
		if ValidKeyToken(bad) {
			t.Errorf("%q taken for a valid token", bad)
		}
	}
}
