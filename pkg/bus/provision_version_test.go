package bus

import (
	"errors"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
)

// nats-server 2.9 does not know a consumer's filter_subjects: it made the
// correlator's consumer (two subjects) unfiltered, and a later start with
// one subject left a consumer that skipped every message in silence. The
// consumer is refused before the server is asked, naming the version.
func TestConsumerOfSeveralFiltersIsRefusedBefore2_10(t *testing.T) {
	two := jetstream.ConsumerConfig{Durable: "correlator", FilterSubjects: []string{"events.alert.>", "events.anomaly.>"}}
	one := jetstream.ConsumerConfig{Durable: "writer", FilterSubject: "events.>"}
	for _, c := range []struct {
		version string
		cfg     jetstream.ConsumerConfig
		refused bool
	}{
		{"2.9.10", two, true},
		{"2.9.25", two, true},
		{"1.4.1", two, true},
		{"2.10.0", two, false},
		{"2.11.0-beta.2", two, false},
		{"2.15.2", two, false},
		{"3.0.0", two, false},
		{"", two, false},       // unknown: the server answers
		{"dev", two, false},    // unknown
		{"2.9.10", one, false}, // one subject: the older field, known to 2.9
	} {
		err := filtersSupported(c.version, "EVENTS/"+c.cfg.Durable, c.cfg)
		if got := err != nil; got != c.refused {
			t.Errorf("%q with %d filters: %v, want refused %v", c.version, len(c.cfg.FilterSubjects), err, c.refused)
			continue
		}
		if err != nil && (!errors.Is(err, ErrServerTooOld) || !strings.Contains(err.Error(), c.version) || !strings.Contains(err.Error(), "2.10")) {
			t.Errorf("%q: %v, want ErrServerTooOld naming the version and 2.10", c.version, err)
		}
	}
}
