package event

import (
	"encoding/hex"
	"hash/fnv"
	"slices"
	"strings"
)

// Fingerprint identifies "the same thing happening again": the same alert
// firing twice, the samples of one metric series, the lines of one log
// stream. It is FNV-1a 64 over
//
//	kind 0xff service 0xff (key 0xff value 0xff)...
//
// where the key/value pairs are the labels, then the resource attributes
// with their keys prefixed "resource.", all sorted by key (then value). The
// result is 16 lower-case hex digits. Time, severity, body and id do not take
// part, so a repeat of an event has the fingerprint of the first one, in
// every process and after every restart. The byte layout is pinned by a
// golden test: changing it changes every stored fingerprint.
func Fingerprint(k Kind, service string, labels, resource map[string]string) string {
	pairs := make([][2]string, 0, len(labels)+len(resource))
	for key, v := range labels {
		pairs = append(pairs, [2]string{key, v})
	}
	for key, v := range resource {
		pairs = append(pairs, [2]string{"resource." + key, v})
	}
	slices.SortFunc(pairs, func(a, b [2]string) int {
		if c := strings.Compare(a[0], b[0]); c != 0 {
			return c
		}
		return strings.Compare(a[1], b[1])
	})

	h := fnv.New64a()
	write := func(s string) {
		h.Write([]byte(s))
		h.Write([]byte{0xff})
	}
	write(string(k))
	write(service)
	for _, p := range pairs {
		write(p[0])
		write(p[1])
	}
	var sum [8]byte
	return hex.EncodeToString(h.Sum(sum[:0]))
}

// validFingerprint reports whether s has the form Fingerprint returns.
func validFingerprint(s string) bool {
	if len(s) != 16 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
