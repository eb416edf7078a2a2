package bus

import (
	"strings"
	"testing"
)

// A token or password holding '/' (openssl rand -base64 makes them) cuts
// the URL's user part short: the parser takes the secret's start for the
// host and the rest for the path, so RedactedURLs (the start-up summary,
// aiops run's start log) shows the whole secret, and Validate lets it
// through to be dialled as a host name.
func TestRedactedURLsSecretWithSlash(t *testing.T) {
	for _, raw := range []string{
		"nats://s3cr/etTOKENxyz@nats-1:4222",
		"nats://aiops:123/s3cretPWxyz@nats-1:4222",
	} {
		c := Config{URLs: []string{raw}}
		got := strings.Join(c.RedactedURLs(), ",")
		if strings.Contains(got, "etTOKENxyz") || strings.Contains(got, "s3cretPWxyz") {
			t.Errorf("RedactedURLs(%q) = %q: the secret is shown", raw, got)
		}
		if err := c.Validate(); err == nil {
			t.Errorf("Validate(%q) = nil: a URL whose secret the parser split is taken", raw)
		} else if strings.Contains(err.Error(), "TOKENxyz") || strings.Contains(err.Error(), "PWxyz") {
			t.Errorf("Validate error repeats the secret: %v", err)
		}
	}
}
