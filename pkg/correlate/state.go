package correlate

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aiops-dev/aiops/pkg/event"
)

// State is an incident as the outside sees it: the body of its incident
// events, what the API returns, what a webhook carries. The first fields
// are event.IncidentBody's (what the writer's incidents table reads).
type State struct {
	IncidentID string `json:"incident_id"`
	// Status is the transition this state announces (opened, updated,
	// acknowledged, resolved, reopened); empty outside an event.
	Status   string    `json:"status,omitempty"`
	Title    string    `json:"title"`
	Team     string    `json:"team,omitempty"`
	OpenedAt time.Time `json:"opened_at"`
	// AcknowledgedAt and ResolvedAt, by a person, are when the person gave
	// the command (Command.Time: what MTTA and MTTR run to), while the
	// event announcing it is timed at the correlator's event time; any
	// other resolution is timed in event time (resolved by time alone:
	// its last signal).
	AcknowledgedAt time.Time `json:"acknowledged_at,omitzero"`
	ResolvedAt     time.Time `json:"resolved_at,omitzero"`
	// AcknowledgedBy and ResolvedBy name who gave the command (the
	// command's by, "someone" without one); a resolution by time alone
	// has no ResolvedBy.
	AcknowledgedBy string `json:"acknowledged_by,omitempty"`
	ResolvedBy     string `json:"resolved_by,omitempty"`

	// Revision counts the incident's events: two transitions at one event
	// time (an assign and a comment) are two events.
	Revision int `json:"revision"`
	// State is open, acknowledged or resolved.
	State    string         `json:"state"`
	Service  string         `json:"service"` // the first root-cause candidate's
	Severity event.Severity `json:"severity,omitempty"`
	Owner    string         `json:"owner,omitempty"`
	Tier     string         `json:"tier,omitempty"`
	Runbook  string         `json:"runbook,omitempty"`
	Assignee string         `json:"assignee,omitempty"`
	Services []string       `json:"services"`
	Firing   int            `json:"firing"`
	Flapping int            `json:"flapping,omitempty"`
	Reopens  int            `json:"reopens,omitempty"`
	// MergedInto is set on the last event of an incident merged into
	// another (Correlator.absorb): resolved at the merge, its members
	// moved to that incident.
	MergedInto string    `json:"merged_into,omitempty"`
	LastEvent  time.Time `json:"last_signal_at"`
	// MemberCount is exact; Members lists at most max_members of them,
	// firing ones first (fewer in an event that would pass
	// event.MaxBodyBytes).
	MemberCount int         `json:"member_count"`
	Members     []Member    `json:"members"`
	Changes     []Change    `json:"changes,omitempty"` // fewer in an event that would pass event.MaxBodyBytes
	RootCauses  []Candidate `json:"root_causes,omitempty"`
	Comments    []Comment   `json:"comments,omitempty"`
	// Timeline is left out of the incidents API's list (its GET of one
	// incident has it); every incident event has one.
	Timeline []Entry `json:"timeline,omitempty"`
}

// fitBody encodes st within event.MaxBodyBytes, which every consumer
// holds an event to: an incident whose members' labels, comments or
// timeline would pass it lists fewer members (MemberCount stays exact),
// then fewer comments (the newest kept), then fewer linked changes (the
// latest linked kept), then fewer timeline entries (the first ten and the
// newest kept), then fewer root-cause candidates (the best kept), then
// its members' long label and resource values (over 256 bytes), then
// fewer services (its own kept), so that its events stay storable; its
// resolution, and an acknowledgement, above all.
func fitBody(st State) (json.RawMessage, error) {
	trimmed := false
	for {
		body, err := event.MarshalBody(st)
		if err != nil || len(body) <= event.MaxBodyBytes {
			return body, err
		}
		if !trimmed {
			// The members on the incident's service go first: a notifier
			// routes by the labels of one of them.
			trimmed = true
			st.Members = slices.Clone(st.Members)
			slices.SortStableFunc(st.Members, func(a, b Member) int {
				return cmp.Compare(boolRank(a.Service != st.Service), boolRank(b.Service != st.Service))
			})
		}
		switch n := len(st.Timeline); {
		case len(st.Members) > 1:
			st.Members = st.Members[:len(st.Members)/2]
		case len(st.Comments) > 1:
			st.Comments = st.Comments[len(st.Comments)/2:]
		case len(st.Changes) > 1:
			st.Changes = st.Changes[len(st.Changes)/2:]
		case n > 20:
			st.Timeline = append(st.Timeline[:10:10], st.Timeline[n-(n-10)/2:]...)
		case len(st.RootCauses) > 1:
			st.RootCauses = st.RootCauses[:len(st.RootCauses)/2]
		case hasLongLabels(st.Members):
			// One member alone too large (labels and resource near their
			// limits): their long values go, those a route matches on
			// (alertname, service, severity, ...) are short.
			st.Members = shortLabelsOnly(st.Members)
		case len(st.Services) > 1:
			own := slices.Contains(st.Services, st.Service)
			rest := slices.DeleteFunc(slices.Clone(st.Services), func(s string) bool { return s == st.Service })
			rest = rest[:len(rest)/2]
			if own {
				rest = append([]string{st.Service}, rest...)
			}
			st.Services = rest
		default:
			return nil, fmt.Errorf("correlate: incident %s's event is %d bytes, over the limit of %d", st.IncidentID, len(body), event.MaxBodyBytes)
		}
	}
}

// maxKeptLabel is the longest label or resource value an event that
// would pass the body limit keeps of its members.
const maxKeptLabel = 256

func hasLongLabels(ms []Member) bool {
	for _, m := range ms {
		for _, kv := range []map[string]string{m.Labels, m.Resource} {
			for _, v := range kv {
				if len(v) > maxKeptLabel {
					return true
				}
			}
		}
	}
	return false
}

// shortLabelsOnly is ms without their label and resource values longer
// than maxKeptLabel.
func shortLabelsOnly(ms []Member) []Member {
	short := func(kv map[string]string) map[string]string {
		out := make(map[string]string, len(kv))
		for k, v := range kv {
			if len(v) <= maxKeptLabel {
				out[k] = v
			}
		}
		return out
	}
	ms = slices.Clone(ms)
	for i := range ms {
		ms[i].Labels, ms[i].Resource = short(ms[i].Labels), short(ms[i].Resource)
	}
	return ms
}

func boolRank(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Member is one deduplicated source of signals in an incident.
type Member struct {
	Fingerprint string         `json:"fingerprint"`
	Kind        SignalKind     `json:"kind"`
	Service     string         `json:"service"`
	Name        string         `json:"name"`
	Summary     string         `json:"summary,omitempty"`
	Severity    event.Severity `json:"severity,omitempty"`
	Firing      bool           `json:"firing"`
	Flapping    bool           `json:"flapping,omitempty"`
	FirstSeen   time.Time      `json:"first_seen"`
	LastSeen    time.Time      `json:"last_seen"`
	Count       int            `json:"count"`
	// Expires is when a firing alert is taken as resolved unless reported
	// again (Signal.Expires), zero for one that waits for its resolution.
	Expires time.Time `json:"expires,omitzero"`
	// Labels are the signal's labels (the first one's), what a notifier
	// routes by.
	Labels map[string]string `json:"labels,omitempty"`
	// Resource is the first signal's resource (OpenTelemetry's resource
	// attributes), which a notifier routes by beside Labels.
	Resource map[string]string `json:"resource,omitempty"`
	// LabelsCut counts the label and resource entries left out of a
	// member whose labels and resource passed 16 KiB (storedLabels).
	LabelsCut    int    `json:"labels_cut,omitempty"`
	FirstEventID string `json:"first_event_id,omitempty"`
	LastEventID  string `json:"last_event_id,omitempty"`
	// *Reading is an anomaly's last value and expected band, nil for an
	// alert: its fields are the member's in JSON, zeros included (traffic
	// fallen to 0, a band whose floor is 0 are what a reader must see).
	// It is replaced, never changed in place: the states handed out share
	// it.
	*Reading
}

// Reading is an anomaly's value and the band the detector expected it in.
type Reading struct {
	Value    float64 `json:"value"`
	Expected float64 `json:"expected"`
	Lower    float64 `json:"lower"`
	Upper    float64 `json:"upper"`
}

// readingOf is s's reading, nil for a signal that is no anomaly.
func readingOf(s Signal) *Reading {
	if s.Kind != SignalAnomaly {
		return nil
	}
	return &Reading{Value: s.Value, Expected: s.Expected, Lower: s.Lower, Upper: s.Upper}
}

// Change is a change linked to an incident.
type Change struct {
	EventID     string    `json:"event_id,omitempty"`
	Service     string    `json:"service"`
	Type        string    `json:"type"`
	Version     string    `json:"version,omitempty"`
	Author      string    `json:"author,omitempty"`
	Commit      string    `json:"commit,omitempty"`
	URL         string    `json:"url,omitempty"`
	Description string    `json:"description,omitempty"`
	Time        time.Time `json:"time"`
}

// same reports whether ch and x are one change event (delivered twice, or
// linked twice).
func (ch Change) same(x Change) bool {
	return x.EventID == ch.EventID && x.Service == ch.Service && x.Time.Equal(ch.Time)
}

// Candidate is a possible root cause, with why.
type Candidate struct {
	Service string   `json:"service"`
	Score   float64  `json:"score"`
	Reasons []string `json:"reasons"`
}

// Entry is one line of an incident's timeline.
type Entry struct {
	Time time.Time `json:"time"`
	What string    `json:"what"`
}

// TimelineTime is the format of a timeline entry's time in JSON: RFC 3339
// in UTC with milliseconds, always. time.Time's own drops trailing zeros
// and keeps the zone, so a timeline read 09:35:52Z beside
// 09:38:28.429767318Z.
const TimelineTime = "2006-01-02T15:04:05.000Z07:00"

// MarshalJSON writes the entry's time as TimelineTime, and its text as it
// is (<, > and & unescaped, as event.MarshalBody keeps them).
func (e Entry) MarshalJSON() ([]byte, error) {
	return event.MarshalBody(struct {
		Time string `json:"time"`
		What string `json:"what"`
	}{e.Time.UTC().Format(TimelineTime), e.What})
}

// Comment is what a person wrote on an incident.
type Comment struct {
	By   string    `json:"by"`
	Text string    `json:"text"`
	Time time.Time `json:"time"`
}

// state builds inc's State for transition tr.
func (c *Correlator) state(inc *incident, tr Transition) State {
	s := State{
		IncidentID: inc.id, Status: string(tr), Revision: inc.revision, OpenedAt: inc.openedAt, AcknowledgedAt: inc.acknowledgedAt,
		ResolvedAt: inc.resolvedAt, AcknowledgedBy: inc.acknowledgedBy, ResolvedBy: inc.resolvedBy, State: inc.status, Assignee: inc.assignee, Firing: inc.firing,
		Flapping: len(inc.flappers), Reopens: inc.reopens, MergedInto: inc.mergedInto, LastEvent: inc.lastSignal, MemberCount: len(inc.members),
		Changes: append([]Change(nil), inc.changes...), Comments: append([]Comment(nil), inc.comments...),
		Timeline: append([]Entry(nil), inc.timeline...),
	}
	for svc := range inc.services {
		s.Services = append(s.Services, svc)
	}
	sort.Strings(s.Services)
	s.Severity = severityOf(inc)
	members := make([]*member, len(inc.members))
	copy(members, inc.members)
	sort.SliceStable(members, func(i, j int) bool { return members[i].Firing && !members[j].Firing })
	for i, m := range members {
		if i == c.cfg.MaxMembers {
			break
		}
		s.Members = append(s.Members, m.Member)
	}
	s.RootCauses = c.rootCauses(inc)
	s.Service = leadService(inc, s.RootCauses)
	if c.cat != nil {
		if svc, ok := c.cat.Services[s.Service]; ok {
			s.Owner, s.Team, s.Tier, s.Runbook = svc.Owner, svc.Team, svc.Tier, svc.Runbook
		}
	}
	s.Title = title(inc, s.Service)
	return s
}

// leadService is the service an incident is named after, whose owner,
// team and runbook it takes: its first root-cause candidate (rc), else the
// first of its services by name, else its root.
func leadService(inc *incident, rc []Candidate) string {
	if len(rc) > 0 {
		return rc[0].Service
	}
	first := ""
	for svc := range inc.services {
		if first == "" || svc < first {
			first = svc
		}
	}
	if first != "" {
		return first
	}
	return inc.root
}

// title names the incident after its first signal on its root-cause
// service (else its first signal) and how far it spread.
func title(inc *incident, service string) string {
	if len(inc.members) == 0 {
		// Its last member left (a new anomaly episode of its series).
		return "incident on " + service
	}
	first := inc.members[0]
	for _, m := range inc.members {
		if m.Service == service {
			first = m
			break
		}
	}
	t := first.Name + " on " + first.Service
	if n := len(inc.services) - 1; n > 0 {
		t += fmt.Sprintf(" and %d more service", n)
		if n > 1 {
			t += "s"
		}
	}
	return t
}

// rootCauses ranks the incident's services (and the services of its
// linked changes) as root causes: the most upstream failing service (no
// failing dependency of its own, failing services depending on it), a
// linked change, the earliest signal. A changed service that is not
// failing itself ranks below every failing one (ranked as most upstream, a
// harmless deploy of a dependency named the wrong root in a quarter of
// generated cascades). At an equal score a service the catalog places
// comes before one it does not. Each candidate says why.
func (c *Correlator) rootCauses(inc *incident) []Candidate {
	type facts struct {
		first      time.Time
		deps, ups  int
		change     *Change
		isMember   bool
		signalName string
	}
	all := map[string]*facts{}
	for _, m := range inc.members {
		f := all[m.Service]
		if f == nil {
			f = &facts{first: m.FirstSeen, isMember: true, signalName: m.Name}
			all[m.Service] = f
		}
		if m.FirstSeen.Before(f.first) {
			f.first, f.signalName = m.FirstSeen, m.Name
		}
	}
	for i := range inc.changes {
		ch := &inc.changes[i]
		f := all[ch.Service]
		if f == nil {
			f = &facts{first: ch.Time}
			all[ch.Service] = f
		}
		if f.change == nil || ch.Time.After(f.change.Time) {
			f.change = ch
		}
	}
	for svc, f := range all {
		for other, g := range all {
			if other == svc || !g.isMember {
				continue
			}
			if c.topo.hops(svc, other) > 0 {
				f.deps++ // svc depends on a failing service
			}
			if c.topo.hops(other, svc) > 0 {
				f.ups++ // a failing service depends on svc
			}
		}
	}
	firsts := map[string]time.Time{}
	var earliest time.Time
	for svc, f := range all {
		if f.isMember {
			firsts[svc] = f.first
			if earliest.IsZero() || f.first.Before(earliest) {
				earliest = f.first
			}
		}
	}
	trees := c.failureTrees(firsts)
	var out []Candidate
	for svc, f := range all {
		var cand Candidate
		cand.Service = svc
		switch {
		case f.isMember && f.deps == 0 && f.ups > 0:
			cand.Score += 3 + float64(f.ups)/float64(len(all))
			cand.Reasons = append(cand.Reasons, fmt.Sprintf("most upstream: no failing dependency of its own, %d failing service(s) depend on it", f.ups))
		case f.isMember && f.deps == 0:
			cand.Score++
			cand.Reasons = append(cand.Reasons, "no failing dependency of its own")
		case !f.isMember:
			// Changed, not failing itself: its change may have broken
			// what depends on it, less likely than any failing service
			// (every failing candidate scores 1 or more).
			cand.Score += 0.5
			if f.ups > 0 {
				cand.Score += 0.25
				cand.Reasons = append(cand.Reasons, fmt.Sprintf("not failing itself, %d failing service(s) depend on it", f.ups))
			} else {
				cand.Reasons = append(cand.Reasons, "not failing itself")
			}
		}
		if f.change != nil {
			if f.isMember {
				cand.Score += 2
			}
			// A change linked to an incident merged into one that opened
			// earlier came after this one's opening.
			when, d := "before", inc.openedAt.Sub(f.change.Time)
			if d < 0 {
				when, d = "after", -d
			}
			cand.Reasons = append(cand.Reasons, fmt.Sprintf("%s %s by %s %s %s the incident opened",
				f.change.Type, orDash(f.change.Version), orDash(f.change.Author), d.Round(time.Second), when))
		}
		at := " (" + f.signalName + " at " + f.first.UTC().Format(time.RFC3339) + ")"
		switch tree := trees[svc]; {
		case !f.isMember:
		case f.first.Equal(earliest):
			cand.Score++
			cand.Reasons = append(cand.Reasons, "earliest signal"+at)
		case tree.size > 1 && f.first.Equal(tree.first):
			cand.Score++
			cand.Reasons = append(cand.Reasons, fmt.Sprintf("earliest signal of the %d failing services the catalog relates to it%s", tree.size, at))
		}
		if cand.Score > 0 {
			out = append(out, cand)
		}
	}
	// At an equal score a service the catalog places comes first: one it
	// does not place joined by time alone (unplaced_signals), and, named
	// first, it took the incident's owner, team and runbook away.
	placed := func(svc string) bool { _, ok := c.topo.index[svc]; return ok }
	sort.Slice(out, func(i, j int) bool {
		if out[i].Score != out[j].Score {
			return out[i].Score > out[j].Score
		}
		if pi, pj := placed(out[i].Service), placed(out[j].Service); pi != pj {
			return pi
		}
		return out[i].Service < out[j].Service
	})
	if len(out) > 5 {
		out = out[:5]
	}
	return out
}

// failureTree is one of an incident's failures: the failing services
// the catalog relates, one way or the other.
type failureTree struct {
	first time.Time // its first signal
	size  int       // its services
}

// failureTrees splits the failing services (first: each one's first
// signal) into failure trees, and gives each service its tree. The
// earliest signal speaks for a root among the services it could have
// broken: in an incident holding unrelated failures (an alert storm, a
// location burst), each failure's own earliest counts too, or the one
// that happened to fire first outranked the failure with more services
// failing behind it (a tier-0 database's outage was paged to an
// analytics owner).
func (c *Correlator) failureTrees(first map[string]time.Time) map[string]failureTree {
	parent := make(map[string]string, len(first))
	var find func(string) string
	find = func(s string) string {
		if p := parent[s]; p != s {
			parent[s] = find(p)
		}
		return parent[s]
	}
	// Only services the catalog places are related, and each pair once,
	// by index: a storm's thousands of unplaced services cost no pair
	// (compared by name, each pair's long names doubled the cost of
	// ranking, which every published state pays).
	var placed []int
	for s := range first {
		parent[s] = s
		if i, ok := c.topo.index[s]; ok {
			placed = append(placed, i)
		}
	}
	for x, i := range placed {
		for _, j := range placed[x+1:] {
			if c.topo.below[i][j] > 0 || c.topo.below[j][i] > 0 {
				parent[find(c.topo.names[i])] = find(c.topo.names[j])
			}
		}
	}
	trees := map[string]failureTree{}
	for s, t := range first {
		tr, ok := trees[find(s)]
		if !ok || t.Before(tr.first) {
			tr.first = t
		}
		tr.size++
		trees[find(s)] = tr
	}
	out := make(map[string]failureTree, len(first))
	for s := range first {
		out[s] = trees[find(s)]
	}
	return out
}

func orDash(s string) string {
	if strings.TrimSpace(s) == "" {
		return "-"
	}
	return s
}

// Source is the envelope source of incident events.
const Source = "correlator"

// Envelope is the incident event of u: kind incident on
// events.incident.<service>, its id derived from the incident, the
// transition and its time (a replayed or redelivered transition is the same
// event), linked to the members' first events and to the changes linked.
func Envelope(u Update, observed time.Time) (*event.Envelope, error) {
	st := u.State
	body, err := fitBody(st)
	if err != nil {
		return nil, err
	}
	e := &event.Envelope{
		SchemaVersion: event.SchemaVersion,
		ID:            event.DerivedID(u.Time, "incident-event", st.IncidentID, string(u.Transition), u.Time.UTC().Format(time.RFC3339Nano), strconv.Itoa(st.Revision)),
		Kind:          event.KindIncident,
		Time:          u.Time,
		ObservedTime:  observed,
		Source:        Source,
		Service:       st.Service,
		Severity:      st.Severity,
		Labels:        map[string]string{"incident_id": st.IncidentID},
		Body:          body,
	}
	// The analysts' incident_timeline query finds an incident's alerts,
	// anomalies and changes through these links. (A Signal built by hand
	// rather than by SignalOf may carry an id that is no ULID: linked, it
	// would make the event invalid for every consumer.)
	for _, m := range st.Members {
		if event.ValidID(m.FirstEventID) {
			e.Links = append(e.Links, m.FirstEventID)
		}
	}
	for _, ch := range st.Changes {
		if event.ValidID(ch.EventID) {
			e.Links = append(e.Links, ch.EventID)
		}
	}
	if len(e.Links) > event.MaxLinks {
		e.Links = e.Links[:event.MaxLinks]
	}
	e.Fingerprint = event.Fingerprint(e.Kind, e.Service, e.Labels, nil)
	return e, nil
}
