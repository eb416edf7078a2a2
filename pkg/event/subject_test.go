package event

import (
	"strings"
	"testing"
)

// matches is NATS subject matching: * one token, > the rest.
func matches(filter, subject string) bool {
	f, s := strings.Split(filter, "."), strings.Split(subject, ".")
	for i, tok := range f {
		if tok == ">" {
			return len(s) > i
		}
		if i >= len(s) || (tok != "*" && tok != s[i]) {
			return false
		}
	}
	return len(f) == len(s)
}

// The filters built from the scheme take what their consumers want and
// nothing else: the miner never sees its own output, a partition only its
// samples.
func TestSubjectScheme(t *testing.T) {
	raw, templated := Subject(KindLog, "check.out"), TemplatedLogSubject("check.out")
	if raw != "events.log.check_out" || templated != "events.log.check_out.templated" {
		t.Fatalf("subjects %q %q", raw, templated)
	}
	for _, c := range []struct {
		filter, subject string
		want            bool
	}{
		{KindFilter(KindLog), raw, true},
		{KindFilter(KindLog), templated, false},
		{KindFilterAll(KindLog), templated, true},
		{KindFilter(KindMetric), "events.metric.3.checkout", false},
		{MetricPartitionFilter(3), "events.metric.3.checkout", true},
		{MetricPartitionFilter(3), "events.metric.13.checkout", false},
		{KindFilterAll(KindIncident), Subject(KindIncident, "payments"), true},
		{KindFilterAll(KindIncident), Subject(KindAnomaly, "payments"), false},
	} {
		if got := matches(c.filter, c.subject); got != c.want {
			t.Errorf("%s matches %s: %v, want %v", c.filter, c.subject, got, c.want)
		}
	}
	if got := IncidentCommandSubject("01J.*>"); got != "incidents.command.01J___" {
		t.Fatalf("command subject %q: an id must stay one token", got)
	}
}
