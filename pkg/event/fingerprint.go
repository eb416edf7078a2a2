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

// MaxFingerprintBytes bounds a fingerprint a producer sends.
const MaxFingerprintBytes = 256

// validFingerprint reports whether s can be an envelope's fingerprint.
// Producers may send their own (Alertmanager's, a dedup key of any form),
// which is kept as given, so any printable text of at most
// MaxFingerprintBytes is one, as for a service name; those aiops makes are
// always 16 hex digits.
func validFingerprint(s string) bool {
	return s != "" && len(s) <= MaxFingerprintBytes && printable(s)
}

// isHex16 reports whether s has the form Fingerprint returns: 16 lower-case
// hex digits (template ids have it too).
func isHex16(s string) bool {
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

// AlertmanagerFingerprint is Prometheus's fingerprint of a label set
// (model.LabelSet.Fingerprint), the one Alertmanager gives every alert:
// FNV-1a 64 over the labels sorted by name, each name and value followed
// by the byte 0xff, as 16 lower-case hex digits. An alert that comes
// without a fingerprint gets this one, so it is keyed as Alertmanager
// would have keyed it.
func AlertmanagerFingerprint(labels map[string]string) string {
	names := make([]string, 0, len(labels))
	for n := range labels {
		names = append(names, n)
	}
	slices.Sort(names)
	h := fnv.New64a()
	for _, n := range names {
		h.Write([]byte(n))
		h.Write([]byte{0xff})
		h.Write([]byte(labels[n]))
		h.Write([]byte{0xff})
	}
	var sum [8]byte
	return hex.EncodeToString(h.Sum(sum[:0]))
}
