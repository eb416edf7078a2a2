package bus

import (
	"fmt"
	"hash/fnv"
)

// KeyToken makes s one token of a key-value key: s itself when it is a
// valid token (the ids and fingerprints aiops makes always are), else "h-"
// and a hash of it, since a producer may send a fingerprint or an id of any
// text, and a key's tokens allow only letters, digits, '-', '_' and '='.
func KeyToken(s string) string {
	if ValidKeyToken(s) {
		return s
	}
	h := fnv.New64a()
	h.Write([]byte(s))
	return fmt.Sprintf("h-%016x", h.Sum64())
}

// ValidKeyToken reports whether s can be a key token as it is.
func ValidKeyToken(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-' || c == '_' || c == '=') {
			return false
		}
	}
	return true
}
