package event

import "strconv"

// The subject scheme, in one place: every consumer's filter is built from
// these, so a subject is never spelt twice.
//
//	events.<kind>.<service>             an event as produced (raw)
//	events.log.<service>.templated      a log with its template (logminer)
//	events.metric.<p>.<service>         a metric sample in partition p, when the
//	                                    EVENTS stream partitions metrics
//	events.incident.<service>           an incident's lifecycle (correlator)
//	incidents.command.<incident id>     a command to the correlator (ack,
//	                                    resolve, assign, comment), INCIDENTS stream
//
// Incidents are events like any other: they ride on EVENTS, so the writer
// stores them through its one consumer and the notifier filters
// events.incident.>. The INCIDENTS stream carries what is said to an
// incident, not what it is.

// TemplatedSuffix ends the subject of a templated log; the fourth token
// keeps it away from the miner's own filter (KindFilter(KindLog)).
const TemplatedSuffix = ".templated"

// TemplatedLogSubject is the subject of service's templated logs.
func TemplatedLogSubject(service string) string { return Subject(KindLog, service) + TemplatedSuffix }

// KindFilter matches the events of kind k as produced, one subject token
// per service: not the templated logs, not partitioned samples.
func KindFilter(k Kind) string { return SubjectPrefix + "." + string(k) + ".*" }

// KindFilterAll matches every event of kind k, derived and partitioned ones
// included.
func KindFilterAll(k Kind) string { return SubjectPrefix + "." + string(k) + ".>" }

// MetricPartitionFilter matches the metric samples of partition p.
func MetricPartitionFilter(p int) string {
	return SubjectPrefix + "." + string(KindMetric) + "." + strconv.Itoa(p) + ".>"
}

// IncidentCommandPrefix starts the subjects of commands to the correlator.
const IncidentCommandPrefix = "incidents.command"

// IncidentCommandSubject is the subject of commands to incident id.
func IncidentCommandSubject(id string) string { return IncidentCommandPrefix + "." + SubjectToken(id) }

// Subject builds events.<kind>.<service>. Characters that NATS subjects
// reserve (. * > and whitespace) are replaced by '_' so any service name maps
// to exactly one token; an empty service becomes "_".
func Subject(k Kind, service string) string {
	return SubjectPrefix + "." + string(k) + "." + SubjectToken(service)
}

// SubjectPrefix is the first token of every event subject.
const SubjectPrefix = "events"

// SubjectToken turns s into one NATS subject token.
func SubjectToken(s string) string {
	if s == "" {
		return "_"
	}
	clean := true
	for i := 0; i < len(s); i++ {
		if reservedInSubject(s[i]) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	b := []byte(s)
	for i := range b {
		if reservedInSubject(b[i]) {
			b[i] = '_'
		}
	}
	return string(b)
}

func reservedInSubject(c byte) bool {
	return c == '.' || c == '*' || c == '>' || c <= ' ' || c == 0x7f
}
