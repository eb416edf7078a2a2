package correlate

import (
	"maps"
	"slices"

	"github.com/aiops-dev/aiops/pkg/event"
)

// What the correlator keeps of a signal is bounded, so that its memory
// (and its saved state, the same data as JSON) is bounded by
// Config.MaxStateBytes and not by what producers send: an envelope may
// carry 128 labels and as many resource entries of 4 KiB and a body of
// 512 KiB, some 1.3 MB of heap per fingerprint kept whole, where a
// typical alert takes 1.5 to 4.5 KB.
const (
	// maxStoredText bounds a signal's name and summary, and a change's
	// version, author, commit and URL, as kept (a
	// longer one is cut at a UTF-8 boundary and ends in cutMark). A
	// name stays longer than maxRuleName when cut, so it matches no
	// name rule, as before.
	maxStoredText = 1 << 10
	// maxStoredLabels bounds a member's labels and resource (keys and
	// values) beyond the correlator's own labels (storedLabels).
	maxStoredLabels = 16 << 10
	cutMark         = "…"
)

// The heap a member, an incident and a timeline entry take beyond their
// strings, for the estimate Config.MaxStateBytes bounds (StateBytes),
// measured with BenchmarkBytesPerFingerprintOf (Go 1.26, amd64): a member
// without labels in incidents of 100 about 440 bytes, of which 90 are its
// strings; one alone in its incident about 3,500; each label or resource
// entry some 70 bytes besides its key and value. A timeline takes up to
// maxTimeline entries, each naming a signal and a service: counted, as
// members joining on new services, or flapping, add them.
const (
	memberBytes   = 384
	incidentBytes = 3072
	entryBytes    = 72
	noteBytes     = 48
)

// timelineBytes is the estimate of the heap tl takes.
func timelineBytes(tl []Entry) int64 {
	n := 0
	for _, e := range tl {
		n += noteBytes + len(e.What)
	}
	return int64(n)
}

// cutText is s cut to maxStoredText bytes, marked; s when shorter.
func cutText(s string) string {
	if len(s) <= maxStoredText {
		return s
	}
	return event.Prefix(s, maxStoredText-len(cutMark)) + cutMark
}

// labelBytes is the length of kv's keys and values.
func labelBytes(kv map[string]string) int {
	n := 0
	for k, v := range kv {
		n += len(k) + len(v)
	}
	return n
}

// ownLabels are the labels the correlator reads of a member or which
// routes most likely match on: the peer labels (peersOf reads them of
// the members kept), alertname and severity, the service labels, and the
// configured group_by and location labels.
func ownLabels(cfg Config) map[string]bool {
	own := maps.Clone(peerLabels)
	for _, l := range slices.Concat(serviceLabels, []string{"alertname", "severity"}, cfg.GroupBy, cfg.LocationLabels) {
		own[l] = true
	}
	return own
}

// storedLabels is what a member keeps of a signal's labels and resource,
// and how many entries it leaves out: all of them when their keys and
// values take at most maxStoredLabels bytes (the same maps: a normal
// alert is kept as it came). Else the correlator's own labels (ownLabels)
// of at most maxKeptLabel bytes, then the other labels and then the
// resource entries of at most maxKeptLabel bytes, in key order, while
// they fit within maxStoredLabels. The values left out are those longest
// or last: what a route matches on (alertname, service, severity,
// cluster, namespace) is short, as fitBody also has it. A peer label
// longer than maxKeptLabel names no service a signal can be on
// (event.MaxNameBytes).
func (c *Correlator) storedLabels(labels, resource map[string]string) (map[string]string, map[string]string, int) {
	if labelBytes(labels)+labelBytes(resource) <= maxStoredLabels {
		return labels, resource, 0
	}
	keptLabels, keptResource := map[string]string{}, map[string]string{}
	used, cut := 0, 0
	for k, v := range labels {
		if c.own[k] && len(v) <= maxKeptLabel {
			keptLabels[k] = v
			used += len(k) + len(v)
		}
	}
	keep := func(from, into map[string]string) {
		for _, k := range slices.Sorted(maps.Keys(from)) {
			if _, ok := into[k]; ok {
				continue
			}
			if v := from[k]; len(v) <= maxKeptLabel && used+len(k)+len(v) <= maxStoredLabels {
				into[k] = v
				used += len(k) + len(v)
			} else {
				cut++
			}
		}
	}
	keep(labels, keptLabels)
	keep(resource, keptResource)
	if len(keptResource) == 0 {
		keptResource = nil
	}
	return keptLabels, keptResource, cut
}

// sizeOf is the estimate of the heap m takes (memberBytes, entryBytes).
func sizeOf(m *member) int64 {
	n := memberBytes + len(m.Fingerprint) + len(m.Service) + len(m.Name) + len(m.Summary) + len(m.FirstEventID) + len(m.LastEventID) + len(m.episode)
	n += labelBytes(m.Labels) + labelBytes(m.Resource) + entryBytes*(len(m.Labels)+len(m.Resource))
	return int64(n)
}

// setEpisode sets m's episode, keeping the estimate of its size.
func (c *Correlator) setEpisode(m *member, id string) {
	d := int64(len(id) - len(m.episode))
	m.episode = id
	if c.members[m.Fingerprint] == m {
		m.size += d
		c.bytes += d
	}
}

// StateBytes is the estimate of the heap the members, incidents and
// waiting anomalies in memory take, which Config.MaxStateBytes bounds:
// their strings and timelines, and a fixed overhead for each member,
// label and incident.
func (c *Correlator) StateBytes() int64 { return c.bytes + c.waiting.bytes }
