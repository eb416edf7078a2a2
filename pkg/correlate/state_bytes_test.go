package correlate

import (
	"errors"
	"fmt"
	"maps"
	"runtime"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/aiops-dev/aiops/pkg/event"
)

// recount is the estimate of c's state counted from scratch: what
// Correlator.bytes must equal however it got there.
func recount(c *Correlator) int64 {
	n := int64(len(c.incidents)) * incidentBytes
	for _, inc := range c.incidents {
		n += timelineBytes(inc.timeline)
	}
	for _, m := range c.members {
		n += sizeOf(m)
	}
	for _, w := range c.waiting.series {
		n += waitingBytes(w)
	}
	return n
}

// hugeSignal is an alert as large as an envelope lets one be, its
// strings its own (as decoded from its own envelope): 128 labels of 256
// bytes (the longest a member keeps when cut), 128 resource entries of 4
// KiB, a 64 KiB summary and a 2 KiB name. Some of its labels are the
// correlator's own, short.
func hugeSignal(i int, at time.Time) Signal {
	fill := func(n int) string { return strings.Repeat(string(rune('a'+i%26)), n) }
	s := Signal{Kind: SignalAlert, Fingerprint: fmt.Sprintf("huge-%d", i), Service: fmt.Sprintf("svc-%d", i),
		Name: fill(2 << 10), Summary: fill(64 << 10), Severity: event.SeverityCritical, Time: at, EventID: event.NewID(at),
		Labels: map[string]string{"alertname": "Huge", "upstream": "db", "cluster": "eu-1"}, Resource: map[string]string{}}
	for j := len(s.Labels); j < event.MaxLabels; j++ {
		s.Labels[fmt.Sprintf("label%03d", j)] = fill(maxKeptLabel)
	}
	for j := range event.MaxLabels {
		s.Resource[fmt.Sprintf("attr%03d", j)] = fill(event.MaxLabelBytes)
	}
	return s
}

// A flood of the largest alerts, each a new fingerprint, stays within
// max_state_bytes: each member keeps a bounded part of its signal, and
// the oldest incidents are forgotten, the open ones resolved saying which
// limit. Counted by fingerprints alone (a million by default), the
// members kept whole took some 1.3 MB of heap each.
func TestFloodOfHugeSignalsStaysWithinMaxStateBytes(t *testing.T) {
	const budget = 8 << 20
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	c, err := New(Config{MaxStateBytes: budget}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var evictedNote string
	for i := range 600 {
		for _, u := range c.Observe(hugeSignal(i, t0.Add(time.Duration(i)*time.Second))) {
			if tl := u.State.Timeline; u.Transition == Resolved && len(tl) > 0 && strings.Contains(tl[len(tl)-1].What, "memory is full") {
				evictedNote = tl[len(tl)-1].What
			}
		}
		if got := c.StateBytes(); got > budget {
			t.Fatalf("after signal %d: state of %d bytes, over max_state_bytes %d", i, got, budget)
		}
	}
	if got, want := c.StateBytes(), recount(c); got != want {
		t.Fatalf("state counted %d bytes as it changed, %d counted afresh", got, want)
	}
	if c.Fingerprints() < 100 || c.Stats().Evicted == 0 {
		t.Fatalf("%d fingerprints kept, %d evicted: want the budget full of members and the oldest forgotten", c.Fingerprints(), c.Stats().Evicted)
	}
	if !strings.Contains(evictedNote, "max_state_bytes") {
		t.Errorf("an evicted incident's last timeline entry is %q, want it to name max_state_bytes", evictedNote)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if grew := int64(after.HeapAlloc) - int64(before.HeapAlloc); grew > 2*budget {
		t.Errorf("heap grew by %d bytes holding a state estimated at %d, want at most twice max_state_bytes (%d)", grew, c.StateBytes(), 2*budget)
	}
	runtime.KeepAlive(c)

	m := c.members[fmt.Sprintf("huge-%d", 599)].Member
	if len(m.Summary) > maxStoredText || !strings.HasSuffix(m.Summary, cutMark) || !utf8.ValidString(m.Summary) ||
		len(m.Name) > maxStoredText || !strings.HasSuffix(m.Name, cutMark) {
		t.Errorf("summary of %d bytes, name of %d: want both cut to at most %d, marked", len(m.Summary), len(m.Name), maxStoredText)
	}
	if n := labelBytes(m.Labels) + labelBytes(m.Resource); n > maxStoredLabels {
		t.Errorf("labels and resource of %d bytes kept, want at most %d", n, maxStoredLabels)
	}
	if m.Labels["alertname"] != "Huge" || m.Labels["upstream"] != "db" || m.Labels["cluster"] != "eu-1" {
		t.Errorf("labels %v: the correlator's own were left out", m.Labels)
	}
	if kept := len(m.Labels) + len(m.Resource); m.LabelsCut != 2*event.MaxLabels-kept {
		t.Errorf("labels_cut %d, want the %d entries left out", m.LabelsCut, 2*event.MaxLabels-kept)
	}
}

// A normal alert (ten labels, a resource, a summary of a line) is kept as
// it came: its member holds its very maps, and its incident's event says
// nothing was cut.
func TestNormalSignalIsKeptAsItCame(t *testing.T) {
	c := newCorrelator(t, Config{})
	s := alert("HighLatency", "checkout", 0)
	s.Summary = strings.Repeat("p99 latency over 2s on POST /checkout; ", 3)
	s.Labels = map[string]string{}
	for i := range 10 {
		s.Labels[fmt.Sprintf("label%d", i)] = fmt.Sprintf("value-%d-of-a-normal-length", i)
	}
	s.Resource = map[string]string{"deployment.environment": "prod", "k8s.namespace.name": "shop"}
	labels, resource := maps.Clone(s.Labels), maps.Clone(s.Resource)
	u := feed(c, s)[0]
	m := u.State.Members[0]
	if m.Summary != s.Summary || m.Name != s.Name || !maps.Equal(m.Labels, labels) || !maps.Equal(m.Resource, resource) || m.LabelsCut != 0 {
		t.Fatalf("member %+v, want the signal's name, summary, labels and resource as they came", m)
	}
	e, err := Envelope(u, t0)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(e.Body), "labels_cut") {
		t.Errorf("event body %s names labels_cut", e.Body)
	}
	if got, want := c.StateBytes(), recount(c); got != want || got <= incidentBytes+memberBytes {
		t.Errorf("state of %d bytes, counted afresh %d; want them equal, over the fixed overheads", got, want)
	}
}

// A restored state counts its bytes afresh, as the live one counted them
// through joins, merges, new episodes, resolutions and forgetting; and the
// first signal after a restore into a smaller budget forgets down to it.
func TestRestoreRecountsStateBytes(t *testing.T) {
	c := newCorrelator(t, Config{})
	big := hugeSignal(1, t0)
	big.Service, big.Fingerprint = "search", "big"
	anomaly := Signal{Kind: SignalAnomaly, Fingerprint: "series-1", Service: "payments", Name: "latency", Time: t0.Add(time.Minute), EventID: "a1"}
	later := anomaly
	later.Time, later.EventID, later.EpisodeID, later.Episode = t0.Add(2*time.Minute), "a2", "episode-with-a-long-id-0123456789", EpisodeUpdate
	feed(c, alert("HighLatency", "checkout", 0), big, anomaly, later, alert("Errors", "payments", 3*time.Minute),
		resolved(alert("HighLatency", "checkout", 0), 4*time.Minute), alert("Down", "batch", 5*time.Minute))
	c.Advance(t0.Add(3 * time.Hour)) // resolves all, forgets some
	feed(c, alert("Down", "cart", 3*time.Hour), hugeSignal(2, t0.Add(3*time.Hour)))
	if got, want := c.StateBytes(), recount(c); got != want {
		t.Fatalf("live state counted %d bytes, %d afresh", got, want)
	}
	r := restarted(t, c)
	if got, want := r.StateBytes(), c.StateBytes(); got != want {
		t.Fatalf("restored state of %d bytes, the live one %d", got, want)
	}

	data, err := c.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	small, err := New(Config{MaxStateBytes: MinStateBytes}, c.cat)
	if err != nil {
		t.Fatal(err)
	}
	if err := small.UnmarshalJSON(data); err != nil {
		t.Fatal(err)
	}
	feed(small, hugeSignal(3, t0.Add(4*time.Hour)))
	if got := small.StateBytes(); got > MinStateBytes || got != recount(small) {
		t.Errorf("after a signal, state of %d bytes (%d afresh), want within max_state_bytes %d", got, recount(small), MinStateBytes)
	}
}

func TestMaxStateBytesIsValidated(t *testing.T) {
	for _, v := range []int64{-1, 1, MinStateBytes - 1} {
		if err := (Config{MaxStateBytes: v}).Validate(); !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "max_state_bytes") {
			t.Errorf("max_state_bytes %d: %v, want it refused, named", v, err)
		}
	}
	for _, v := range []int64{0, MinStateBytes, 64 << 30} {
		if err := (Config{MaxStateBytes: v}).Validate(); err != nil {
			t.Errorf("max_state_bytes %d: %v", v, err)
		}
	}
}

// An incident being opened is not forgotten to make room, however large
// its one member (a fingerprint of megabytes, by hand: an envelope's body
// is at most 512 KiB): forgotten before its opening went out, no
// resolution would follow it, and it would stay open downstream.
func TestOpeningLargerThanMaxStateBytesIsKept(t *testing.T) {
	c, err := New(Config{MaxStateBytes: MinStateBytes}, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := alert("Down", "batch", 0)
	s.Fingerprint = strings.Repeat("f", 2*MinStateBytes)
	ups := feed(c, s)
	if len(ups) != 1 || ups[0].Transition != Opened {
		t.Fatalf("events %s, want opened", transitions(ups))
	}
	if _, ok := c.Incident(ups[0].State.IncidentID); !ok {
		t.Fatal("the incident just opened was forgotten, its opening published with no resolution to follow")
	}
}

// The lone anomalies waiting count under the bounds with the members:
// with memory full of incidents, series that start to wait make the
// oldest incidents go, rather than take a sixteenth more than
// max_fingerprints and max_state_bytes say.
func TestWaitingAnomaliesCountWithinTheBounds(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		huge bool // signals as large as an envelope lets them be
	}{
		{"max_fingerprints", Config{MaxFingerprints: 64}, false},
		{"max_state_bytes", Config{MaxStateBytes: MinStateBytes}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCorrelator(t, tc.cfg)
			rules := c.cfg
			signal := func(i int) Signal {
				s := hugeSignal(i, t0.Add(time.Duration(i)*time.Second))
				if !tc.huge {
					s.Labels, s.Resource, s.Name, s.Summary = nil, nil, fmt.Sprintf("Small%d", i), "small"
				}
				return s
			}
			i := 0
			for ; c.Fingerprints() < rules.MaxFingerprints-1 && c.StateBytes() < rules.MaxStateBytes-rules.MaxStateBytes/32; i++ {
				feed(c, signal(i))
			}
			for j := range 40 {
				s := signal(i + j)
				s.Kind, s.Severity, s.EpisodeID, s.Episode = SignalAnomaly, event.SeverityWarning, fmt.Sprintf("ep-%d", j), EpisodeOpen
				feed(c, s)
				if n := c.Fingerprints() + c.Waiting(); n > rules.MaxFingerprints {
					t.Fatalf("after anomaly %d: %d members and %d waiting, over max_fingerprints %d", j, c.Fingerprints(), c.Waiting(), rules.MaxFingerprints)
				}
				if got := c.StateBytes(); got > rules.MaxStateBytes {
					t.Fatalf("after anomaly %d: state of %d bytes (%d waiting), over max_state_bytes %d", j, got, c.Waiting(), rules.MaxStateBytes)
				}
				if got, want := c.StateBytes(), recount(c); got != want {
					t.Fatalf("after anomaly %d: state counted %d bytes as it changed, %d counted afresh", j, got, want)
				}
			}
			if c.Waiting() == 0 {
				t.Fatal("no anomaly waits: the test fills nothing")
			}
		})
	}
}
