package correlate

import (
	"cmp"
	"errors"
	"fmt"
	"iter"
	"maps"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aiops-dev/aiops/pkg/due"
	"github.com/aiops-dev/aiops/pkg/event"
)

// Transition is what happened to an incident.
type Transition string

// The transitions an incident event announces.
const (
	Opened       Transition = "opened"
	Updated      Transition = "updated"
	Acknowledged Transition = "acknowledged"
	Resolved     Transition = "resolved"
	Reopened     Transition = "reopened"
)

// Incident statuses.
const (
	StatusOpen         = "open"
	StatusAcknowledged = "acknowledged"
	StatusResolved     = "resolved"
)

// Update is one incident event to publish: the transition and the
// incident's state after it.
type Update struct {
	Transition Transition
	// Time is the event time of the transition.
	Time  time.Time
	State State
}

// member is one deduplicated signal source in an incident.
type member struct {
	Member
	flips []time.Time // state changes within FlapWindow
	inc   *incident
	// episode is the anomaly episode (Signal.EpisodeID) the member is in
	// now, "" for a series whose detector tells none.
	episode string
	// advisory: the member is an advisory alert (Config.AdvisoryAlerts),
	// as its incident counted it; local: a resource alert
	// (Config.LocalAlerts).
	advisory, local bool
	// observed is when the latest event applied to it was observed
	// (Signal.Observed): it tells old news from a later report (stale).
	observed time.Time
	// size is its part of Correlator.bytes, counted while it is in
	// Correlator.members.
	size int64
}

// incident is the correlator's working state of one incident.
type incident struct {
	id       string
	status   string
	openedAt time.Time
	// acknowledgedAt and resolvedAt are what the incident's state says; by
	// command, they are when the person gave it (Command.Time).
	// resolvedEvent is the event time it resolved at, which the reopen
	// window and the forgetting run from: commands are no part of an
	// event-time replay, so their times must move no timer.
	acknowledgedAt time.Time
	resolvedAt     time.Time
	resolvedEvent  time.Time
	// acknowledgedBy and resolvedBy are who gave the command, while the
	// state it made lasts ("" for a resolution by time alone).
	acknowledgedBy, resolvedBy string
	// since is when its current state began, as its timeline tells: the
	// opening, the last reopening, a person's acknowledgement or
	// resolution. No command is timed before it (apply).
	since      time.Time
	lastSignal time.Time
	// lastArrival is the watermark when its latest signal came: after a
	// signal older than the watermark (a backlog catching up after an
	// outage, a producer's clock behind the others'), quiet runs from
	// when it came, not from its time, so that an episode of a backlog is
	// one incident as long as it lasted, not several resolved at once.
	lastArrival time.Time
	assignee    string
	comments    []Comment
	members     []*member
	services    map[string]int // members per service
	names       map[string]int // members per signal name
	advisory    int            // members that are advisory alerts (Config.AdvisoryAlerts)
	local       int            // members that are resource alerts (Config.LocalAlerts)
	// arrived is, per service, when the latest new member there first
	// fired: where the failure went last, and when (spreading).
	arrived map[string]time.Time
	// root is the most upstream service of the incident: every member's
	// service is the root or depends on it. New members join through the
	// root, never through another member, so concurrent failures that
	// share symptom services (a mail sender, a notifications hub) are not
	// chained into one.
	root string
	// lastFired is the latest time a member fired or reported an anomaly:
	// an incident takes new members only while that is within GroupWindow,
	// so a long-firing alert does not pull in what fails near it hours
	// later.
	lastFired time.Time
	// lastHeard is the latest time a signal of it was observed (its
	// event's observed time, else its time): what Config.AlertExpiry
	// counts from.
	lastHeard time.Time
	// expiresNext is at most the earliest Member.Expires of its firing
	// alerts, zero for none: a resend moves a member's on, and lapse
	// finds the next when this one passes (endExpired).
	expiresNext time.Time
	// wave is when the failure last came back on the root (returns):
	// the incident spreads again for SpreadWindow from then.
	wave    time.Time
	returns int // how often it came back (maxReturns)
	// commands are the ids of the last commands applied (Command.ID),
	// oldest first.
	commands []string
	firing   int // members firing (alerts only)
	// failing counts, per service, the alerts firing there that are no
	// advisory (waitedOn).
	failing map[string]int
	// episodes are the members whose anomaly episode is open (an opening
	// or update of a named episode came, its close not yet): the incident
	// waits for their close to resolve (lapse).
	episodes    int
	flappers    []*member // members flapping: what calm and dueOf look at
	changes     []Change
	timeline    []Entry
	groupLabels map[string]string
	reopens     int
	// lastFailed is, per service, when an alert of the incident (not an
	// advisory one) was last seen failing there (noteFailed, waitedOn).
	lastFailed map[string]time.Time
	// peers counts, per service of the incident, then per catalogued
	// service a peer label of a member there names (its upstream, its
	// circuit), the members naming it (namingAbove).
	peers      map[string]map[string]int
	mergedInto string // the incident this one was merged into
	// storm: the incident is an alert storm's (Config.AlertStorms), which
	// takes new signals from any service; stormPlaces: it is the location
	// bursts' of those places (Config.LocationBursts), which takes new
	// signals from there, any service. place is where its first signal
	// came from, group its GroupBy labels' values (groupKey). recent: it
	// opened within the bursts' windows of the watermark, and is filed in
	// Correlator.bursts under filedAs.
	storm       bool
	stormPlaces []place
	place       place
	group       string
	recent      bool
	filedAs     []burstKey

	dirty         bool      // changed since the last event
	lastPublished time.Time // event time of the last event
	// openedRoot is the root its opening was published with: the first
	// update that moves it is not held for UpdateInterval (updateDue).
	openedRoot string
	revision   int // events published so far: part of each event's id
	// dueAt is when time alone next changes the incident (dueOf), as
	// queued in Correlator.queue; zero when nothing is due or it is gone.
	dueAt time.Time
	// looked is the last spreadingNow scan that judged it (Correlator's
	// scans): each scan looks at an incident once.
	looked uint64
	// lead is its lead service (leadService) as of leadOf, for the team
	// filter of a list, which would rank the root causes of every
	// incident it looks at, every call.
	lead   string
	leadOf leadKey
	// acct is the Correlator.bytes it is counted in while in memory,
	// size its part there beyond incidentBytes: its timeline's.
	acct *int64
	size int64
}

// leadKey is what an incident's lead service was worked out from: its
// published revision, unchanged since (not dirty), and, should a change
// not have marked it, its members, changes and opening.
type leadKey struct {
	revision, members, changes int
	openedAt                   time.Time
}

// Correlator is the incident state. It is not safe for concurrent use: the
// service serializes signals, ticks and commands.
type Correlator struct {
	cfg  Config
	cat  *Catalog
	topo *topology
	// names finds a signal's catalogued service.
	names serviceNames
	// advisory, slow, local and ignored match the names of advisory
	// alerts (Config.AdvisoryAlerts), of slow ones (Config.SlowAlerts), of
	// resource alerts (Config.LocalAlerts) and of those taken for none
	// (Config.IgnoredAlerts); nil when the rule is off.
	advisory, slow, local, ignored *nameRule

	now time.Time // the watermark: the latest event time seen
	// queue orders the incidents by when time alone next changes them (a
	// quiet period ends, a held update is due, a member may calm, a
	// resolved incident is forgotten): Advance looks only at those due,
	// so a signal costs the same with a thousand incidents as with one.
	queue     due.Queue[*incident]
	members   map[string]*member
	incidents map[string]*incident
	// listing holds the incidents in Listed's order (sortIncidents: opened
	// first, then id), so that a list call, under the lock the signals
	// wait on, does not sort every incident: an opening appends (openings
	// come in time order), a forgotten incident stays until listingGone
	// passes half of it. listingOK is false when it must be rebuilt (an
	// opening moved back by a merge, one out of order, a restore).
	listing     []*incident
	listingGone int
	listingOK   bool
	byService   map[string]map[*incident]struct{}
	byRoot      map[string]map[*incident]struct{}
	// byPeer holds, per catalogued service, the incidents with a member
	// on their root whose peer label names it (namingAbove).
	byPeer  map[string]map[*incident]struct{}
	changes map[string][]Change // recent changes by service
	// openings are the times the latest incidents opened (at most
	// BusyOpenings+1, none more than an hour before the watermark), in
	// the order they opened (spreadWindow).
	openings []time.Time
	// merged says where each incident merged within ReopenWindow went (the
	// page a person got names it): Correlator.MergedInto, Apply.
	// mergedOrder holds the same records by merge time, the oldest first,
	// so that Advance ages them out from its front.
	merged      map[string]mergeRecord
	mergedOrder []mergeRecord
	// recent are the incidents opened within StormWindow or
	// LocationWindow of the watermark, whichever is longer, in the order
	// they were opened (pruneRecent); bursts files them by the names of
	// the alerts they hold and by where they opened (burstKey), so that an
	// opening looks only at those that could make a burst with it. storms
	// are the alert storms' and location bursts' incidents. places holds,
	// per location label, the first two values seen: a label counts once
	// it took two (varies). Only with Config.AlertStorms or
	// Config.LocationBursts.
	recent []*incident
	bursts map[burstKey][]*incident
	storms map[*incident]struct{}
	places map[string][]string
	// retired are the ids of the incidents forgotten, the oldest first,
	// at most MaxRetired: an alert of one is sent again with its startsAt
	// (still firing when the incident was resolved by hand or evicted, or
	// fired again after Alertmanager resolved it by timeout), and would
	// derive the same id for the incident it opens (open), which the
	// stores and the notifier would take for the old one.
	retired    []string
	retiredSet map[string]struct{}
	// ended are the ends (resolution times) of alerts first seen resolved
	// (resolvedFirst), by fingerprint, and endedOrder the same in the
	// order they were taken, at most MaxEnded, kept for ReopenWindow of
	// event time: a firing of such an alert timed before its end, which
	// came after the resolution (notifications reordered, a firing naked
	// and redelivered), is the firing that end closed (late).
	ended      map[string]time.Time
	endedOrder []endRecord
	// waiting are the lone anomaly series waiting to open an incident
	// (Config.LoneAnomalies).
	waiting anomalyWait
	// evicted are the resolutions of the open incidents evict forgot
	// while a signal was taken, which Observe returns with its own events.
	evicted []Update
	// arrivals are the new members' first firings, as taken (a later
	// one on the same service supersedes an entry), kept while a signal
	// could still look at them (spreadingNow), with
	// Config.UnplacedSignals and a catalog; kept is their number at the
	// last pruning (noteArrival).
	arrivals  []arrival
	kept      int
	scans     uint64
	restoring bool // UnmarshalJSON counts members: fileArrivals files them after
	// unplaced are, by group (Config.GroupBy), the incidents a signal
	// the catalog cannot place opened, in the order they opened, kept
	// while a failure arriving could still adopt them (adoptUnplaced),
	// under the same conditions as arrivals; unplacedCount is their
	// number, keptUnplaced that at the last sweep (noteUnplaced).
	unplaced      map[string][]*incident
	unplacedCount int
	keptUnplaced  int
	// components, when set (Partitioned), is the catalog component
	// of each catalogued service: a peer label naming a service of
	// another component is no edge (peersOf).
	components map[string]string
	// partition, when set (Partitioned), is part of every incident id
	// this correlator derives (newID).
	partition string
	// own are the labels a member keeps whatever its size (ownLabels);
	// bytes is the estimate of the heap the members and incidents take,
	// which MaxStateBytes bounds with the waiting anomalies' (StateBytes).
	own   map[string]bool
	bytes int64

	stats Stats
}

// MaxRetired bounds the ids of forgotten incidents the correlator keeps
// from being given again (Correlator.retired).
const MaxRetired = 10_000

// MaxEnded bounds the ends of alerts first seen resolved the correlator
// remembers (Correlator.ended).
const MaxEnded = 10_000

// endRecord is the end of an alert first seen resolved (Correlator.ended).
type endRecord struct {
	Fingerprint string    `json:"fingerprint"`
	At          time.Time `json:"at"`
}

// mergeRecord is what the correlator remembers of a merged incident.
type mergeRecord struct {
	ID   string    `json:"id"`
	Into string    `json:"into"`
	At   time.Time `json:"at"` // the merge's event time
}

// Stats counts what the correlator did.
type Stats struct {
	Signals  uint64 `json:"signals"`
	Repeats  uint64 `json:"repeats"`
	Orphans  uint64 `json:"orphans"`
	Changes  uint64 `json:"changes"`
	Opened   uint64 `json:"opened"`
	Reopened uint64 `json:"reopened"`
	Resolved uint64 `json:"resolved"`
	Merged   uint64 `json:"merged"`
	Evicted  uint64 `json:"evicted"`
	// Ignored counts the signals of alerts Config.IgnoredAlerts names.
	Ignored uint64 `json:"ignored,omitempty"`
	// Unconfirmed counts the lone anomaly series that waited
	// (Config.LoneAnomalies) and opened nothing.
	Unconfirmed uint64 `json:"unconfirmed,omitempty"`
}

// New returns a correlator with cfg (defaults filled) and the catalog
// (nil: no topology, a service relates only to itself).
func New(cfg Config, cat *Catalog) (*Correlator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cat != nil {
		if err := cat.Validate(); err != nil {
			return nil, fmt.Errorf("%w: catalog: %w", ErrInvalidConfig, err)
		}
	}
	cfg = cfg.WithDefaults()
	c := &Correlator{
		cfg: cfg, cat: cat, topo: newTopology(cat, *cfg.SharedServices, *cfg.UndeclaredSiblings), names: newServiceNames(cat),
		members: map[string]*member{}, incidents: map[string]*incident{},
		byService: map[string]map[*incident]struct{}{}, byRoot: map[string]map[*incident]struct{}{}, byPeer: map[string]map[*incident]struct{}{}, changes: map[string][]Change{},
		merged: map[string]mergeRecord{}, bursts: map[burstKey][]*incident{}, storms: map[*incident]struct{}{},
		places: map[string][]string{}, own: ownLabels(cfg), waiting: newAnomalyWait(),
	}
	for _, r := range []struct {
		key      string
		patterns []string
		rule     **nameRule
	}{{"advisory_alerts", cfg.AdvisoryAlerts, &c.advisory}, {"slow_alerts", cfg.SlowAlerts, &c.slow},
		{"local_alerts", cfg.LocalAlerts, &c.local}, {"ignored_alerts", cfg.IgnoredAlerts, &c.ignored}} {
		var err error
		if *r.rule, err = newNameRule(r.patterns); err != nil {
			return nil, fmt.Errorf("%w: correlator.rules.%s: %w", ErrInvalidConfig, r.key, err)
		}
	}
	return c, nil
}

// Now is the watermark: the latest event time seen or advanced to.
func (c *Correlator) Now() time.Time { return c.now }

// Stats returns the counters so far.
func (c *Correlator) Stats() Stats { return c.stats }

// Fingerprints is the number of members in memory.
func (c *Correlator) Fingerprints() int { return len(c.members) }

// Held is the number of incidents in memory: the open ones and those
// resolved within ReopenWindow.
func (c *Correlator) Held() int { return len(c.incidents) }

// ServiceOf is the service Observe takes s to be on: its own when the
// catalog knows it, else the catalogued service its labels name (a
// workload, a pod or volume claim of one, a rule family's own label).
func (c *Correlator) ServiceOf(s Signal) string { return c.names.of(s.Service, s.Labels) }

// Observe takes one signal: time first advances to the signal's (incidents
// whose quiet period ended before it resolve), then the signal updates its
// member or joins or opens an incident. It returns the incident events to
// publish, in order.
func (c *Correlator) Observe(s Signal) []Update {
	ups := c.observe(s)
	if len(c.evicted) > 0 {
		ups = append(ups, c.evicted...)
		c.evicted = nil
	}
	return ups
}

func (c *Correlator) observe(s Signal) []Update {
	ups := c.Advance(s.Time)
	defer c.schedule(s.Fingerprint)
	c.stats.Signals++
	// Text the correlator keeps but reads no further than its first
	// kilobyte (a name to compare, a summary to show): bounded here,
	// the name is one name wherever it is kept.
	s.Name, s.Summary = cutText(s.Name), cutText(s.Summary)
	s.Service = c.names.of(s.Service, s.Labels)
	if *c.cfg.LocationBursts {
		c.learnPlace(s)
	}
	if s.Kind == SignalChange {
		c.change(s)
		return ups
	}
	if s.Kind == SignalAlert && c.ignored.matches(s.Name) {
		c.stats.Ignored++ // a heartbeat, no failure (Config.IgnoredAlerts)
		return ups
	}
	if m, ok := c.members[s.Fingerprint]; ok && m.inc != nil {
		if episode := c.newEpisode(m, s); episode && c.returns(m, s) {
			inc := m.inc
			if s.EpisodeID != "" {
				c.setEpisode(m, s.EpisodeID)
			}
			done, u := c.repeat(m, s, true) // reopens inc if it resolved
			if done {
				inc.wave = latest(inc.wave, s.Time)
				inc.returns++
				inc.note(s.Time, fmt.Sprintf("%s on %s went wrong again: the failure came back", m.Name, m.Service))
				return append(ups, u...)
			}
		} else if episode {
			// Another episode of the series: a new anomaly, which
			// joins whatever fails now.
			inc := m.inc
			c.leave(m)
			inc.dirty = true
			c.reschedule(inc)
		} else if done, u := c.repeat(m, s, false); done {
			return append(ups, u...)
		}
	}
	if s.Resolved {
		if c.waiting.end(s, c.topo) {
			return ups // its series waited, and opens nothing now alone
		}
		if s.Kind == SignalAlert && !s.Started.IsZero() {
			// First seen resolved, it fired all the same: its firing
			// corroborates a lone anomaly it then joins (resolvedFirst).
			fired := s
			fired.Time, fired.Resolved = s.Started, false
			from := len(ups)
			ups = c.corroborate(fired, ups)
			released := len(ups)
			return c.announceWith(s, append(ups, c.resolvedFirst(s)...), from, released)
		}
		return append(ups, c.resolvedFirst(s)...)
	}
	if c.late(s) {
		// Its end came first, and opened nothing: neither does it, or
		// it would fire for ever (what ended is not sent again).
		c.stats.Orphans++
		return ups
	}
	from := len(ups)
	ups = c.corroborate(s, ups)
	released := len(ups)
	inc, why := c.best(s)
	if s.Kind == SignalAnomaly {
		if done, u := c.wait(s, inc != nil); done {
			return c.announceWith(s, append(ups, u...), from, released)
		}
	}
	return c.announceWith(s, c.place(s, inc, why, ups), from, released)
}

// announceWith has the opening of an incident that s corroborated
// (ups[from:released], corroborate's) announce s, which joined it: the
// opening is timed at the anomaly's first event, minutes back, and a
// notifier pages an opening that late at once, so announced alone it
// paged without the signal that made it worth a page, which came a
// group_interval later as an update.
func (c *Correlator) announceWith(s Signal, ups []Update, from, released int) []Update {
	m, ok := c.members[s.Fingerprint]
	if !ok || m.inc == nil {
		return ups
	}
	return c.restateOpening(m.inc, ups, from, released)
}

// restateOpening has inc's opening among ups[from:to] say what inc
// holds now, when it is inc's latest update there and nothing was
// published of inc since: what joined or changed in the same step is
// then part of the first page, not an update a group_interval later.
func (c *Correlator) restateOpening(inc *incident, ups []Update, from, to int) []Update {
	last := -1
	for i := from; i < len(ups); i++ {
		if ups[i].State.IncidentID == inc.id {
			last = i
		}
	}
	if last < 0 || last >= to || ups[last].Transition != Opened || inc.revision != ups[last].State.Revision {
		return ups // not opened here, or published since
	}
	ups[last].State = c.state(inc, Opened)
	inc.openedRoot = inc.root
	inc.dirty = false
	return ups
}

// place has s join inc, or open an incident when inc is nil.
func (c *Correlator) place(s Signal, inc *incident, why relation, ups []Update) []Update {
	rootBefore, opened := "", inc == nil
	if opened {
		ups = append(ups, c.open(s, why))
		if m, ok := c.members[s.Fingerprint]; ok {
			inc = m.inc
		}
	} else {
		rootBefore = inc.root
		newService := inc.services[s.Service] == 0
		c.join(inc, s, why)
		if m, ok := c.members[s.Fingerprint]; !ok || m.inc != inc {
			return ups // forgotten at once: memory is full and inc was the oldest
		}
		if newService {
			ups = c.gather(inc, s, ups)
		}
	}
	if inc != nil && inc.root == s.Service && rootBefore != s.Service {
		// s just became inc's root: the incidents it could have joined
		// as their late root come along.
		ups = c.absorb(inc, s, ups)
	}
	if inc != nil && inc.mergedInto == "" {
		ups = c.burst(s, ups)
	}
	if inc != nil && inc.mergedInto == "" {
		ups = c.adoptUnplaced(inc, s, ups)
	}
	if opened && inc != nil && inc.mergedInto == "" && *c.cfg.AlertStorms {
		ups = c.storm(inc, s, ups)
	}
	if opened && inc != nil && inc.mergedInto == "" && inc.place != (place{}) {
		ups = c.locationBurst(inc, s, ups)
	}
	return ups
}

// storm merges the incidents that opened within StormWindow of s, which
// just opened inc, and hold an alert of s's name, once with inc they are
// at least StormBurst (Config.AlertStorms): the same symptom on services
// the catalog does not relate, all at once, is one failure.
func (c *Correlator) storm(inc *incident, s Signal, ups []Update) []Update {
	if s.Kind != SignalAlert {
		return ups
	}
	return c.burstOf(inc, s, ups, c.bursts[burstKey{name: s.Name, group: inc.group}], c.cfg.StormWindow, c.cfg.StormBurst, place{},
		func(n int) string {
			return fmt.Sprintf("an alert storm: %d incidents with %s opened within %s", n, s.Name, c.cfg.StormWindow)
		})
}

// locationBurst merges the incidents that opened within LocationWindow
// of s, which just opened inc, where inc opened, once with inc they are
// at least LocationBurst (Config.LocationBursts): failures of any kind on
// unrelated services in one region, zone or cluster at once are that
// place's.
func (c *Correlator) locationBurst(inc *incident, s Signal, ups []Update) []Update {
	if inc.onlyAdvisory() {
		return ups // a forecast in a place is no failure of the place
	}
	return c.burstOf(inc, s, ups, c.bursts[burstKey{at: inc.place, group: inc.group}], c.cfg.LocationWindow, c.cfg.LocationBurst, inc.place,
		func(n int) string {
			return fmt.Sprintf("a location burst: %d incidents opened in %s within %s", n, inc.place, c.cfg.LocationWindow)
		})
}

// burstOf merges, of the recent incidents in candidates that opened
// within w of the watermark and of s, the most that opened within one w
// holding inc, which s just opened, into the earliest to open, once they
// are at least least: a burst. The earliest becomes a burst's incident
// (markStorm: an alert storm's when at is zero, else the location burst's
// of at), which takes new signals from any service (best), within
// SpreadWindow of its opening as any incident. Looking both ways in time,
// a burst is the same whatever order its signals came in; only incidents
// opened within w of the watermark count.
func (c *Correlator) burstOf(inc *incident, s Signal, ups []Update, candidates []*incident, w time.Duration, least int, at place, why func(int) string) []Update {
	floor := c.now.Add(-w)
	pieces := []*incident{inc}
	for _, o := range candidates {
		if o != inc && o.mergedInto == "" && !o.openedAt.Before(floor) && absDuration(o.openedAt.Sub(s.Time)) <= w && c.takes(o, s) &&
			(at == place{} || !o.onlyAdvisory()) {
			pieces = append(pieces, o)
		}
	}
	if len(pieces) < least {
		return ups
	}
	sortIncidents(pieces)
	// The densest window that holds inc: first..last.
	first, last := 0, -1
	for i, j := 0, 0; i < len(pieces) && !pieces[i].openedAt.After(inc.openedAt); i++ {
		for j < len(pieces) && pieces[j].openedAt.Sub(pieces[i].openedAt) <= w {
			j++
		}
		if pieces[j-1].openedAt.Before(inc.openedAt) {
			continue // the window ends before inc opened
		}
		if j-i > last-first+1 {
			first, last = i, j-1
		}
	}
	n := last - first + 1
	if n < least {
		return ups
	}
	into, reason := pieces[first], why(n)
	if c.markStorm(into, at) {
		into.note(s.Time, reason)
	}
	for _, p := range pieces[first+1 : last+1] {
		ups = append(ups, c.merge(p, into, s.Time, reason))
	}
	return ups
}

// markStorm makes inc an alert storm's incident (at zero) or a location
// burst's of at (best), and reports whether that is new. Only burstOf,
// merge and a restored snapshot with the rule that made it on make one,
// so a merge passing the mark on needs no check of its own. An incident
// keeps at most maxStormPlaces places.
func (c *Correlator) markStorm(inc *incident, at place) bool {
	switch {
	case at == place{}:
		if inc.storm {
			return false
		}
		inc.storm = true
	case slices.Contains(inc.stormPlaces, at) || len(inc.stormPlaces) >= maxStormPlaces:
		return false
	default:
		inc.stormPlaces = append(inc.stormPlaces, at)
	}
	c.storms[inc] = struct{}{}
	return true
}

// maxStormPlaces bounds the places of an incident's location bursts: a
// failure spanning more is seldom a place's.
const maxStormPlaces = 8

func absDuration(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// burstKey files a recent incident for the burst rules: by the name of
// an alert it holds (storm) or by where it opened (locationBurst), and by
// its GroupBy labels' values, since only incidents a signal may join make
// a burst with it. A list then holds only incidents that would merge, so
// it stays short: a flood of openings that never merge (each its own
// group_by value) is not scanned at each opening.
type burstKey struct {
	name  string
	at    place
	group string
}

// groupKey is the values of the GroupBy labels, in order.
func groupKey(by []string, labels map[string]string) string {
	var b strings.Builder
	for _, l := range by {
		b.WriteString(labels[l])
		b.WriteByte(0)
	}
	return b.String()
}

// enterRecent makes inc, which opens now (or is restored), one of the
// recent incidents a burst looks for: filed by where it opened and by the
// name of each alert it holds, as count files those that come later.
func (c *Correlator) enterRecent(inc *incident) {
	inc.recent = true
	c.recent = append(c.recent, inc)
	if inc.place.Label != "" {
		c.file(inc, burstKey{at: inc.place, group: inc.group})
	}
	for _, m := range inc.members {
		if key := (burstKey{name: m.Name, group: inc.group}); *c.cfg.AlertStorms && m.Kind == SignalAlert && !slices.Contains(inc.filedAs, key) {
			c.file(inc, key)
		}
	}
}

// file files a recent incident under key.
func (c *Correlator) file(inc *incident, key burstKey) {
	c.bursts[key] = append(c.bursts[key], inc)
	inc.filedAs = append(inc.filedAs, key)
}

// leaveRecent takes inc out of the burst index.
func (c *Correlator) leaveRecent(inc *incident) {
	for _, key := range inc.filedAs {
		list := c.bursts[key]
		if len(list) > 0 && list[0] == inc {
			list[0] = nil // pruning goes in opening order: the front
			list = list[1:]
		} else {
			list = slices.DeleteFunc(list, func(o *incident) bool { return o == inc })
		}
		if len(list) == 0 {
			delete(c.bursts, key)
		} else {
			c.bursts[key] = list
		}
	}
	inc.recent, inc.filedAs = false, nil
}

// pruneRecent drops the incidents that opened more than the bursts'
// windows before the watermark from the burst index (recentWindow).
// recent is in the order they were opened, which late signals may make a
// little out of time order: one opened earlier than the front waits for
// it, and burstOf skips it.
func (c *Correlator) pruneRecent() {
	floor := c.now.Add(-c.recentWindow())
	n := 0
	for n < len(c.recent) && c.recent[n].openedAt.Before(floor) {
		if c.recent[n].recent {
			c.leaveRecent(c.recent[n])
		}
		n++
	}
	if n > 0 {
		c.recent = append(c.recent[:0], c.recent[n:]...)
	}
}

// recentWindow is how long an incident stays recent: the longest window
// of the burst rules that are on.
func (c *Correlator) recentWindow() time.Duration {
	var w time.Duration
	if *c.cfg.AlertStorms {
		w = c.cfg.StormWindow
	}
	if *c.cfg.LocationBursts {
		w = max(w, c.cfg.LocationWindow)
	}
	return w
}

// place is where a signal comes from: a location label and its value
// (Config.LocationBursts).
type place struct {
	Label string `json:"label"`
	Value string `json:"value"`
}

func (p place) String() string { return p.Label + "=" + p.Value }

// placeOf is where s comes from: the first of LocationLabels it carries
// that varies (zero for none). A label every signal carries with one
// value says nothing (one region), a later one may (its clusters).
func (c *Correlator) placeOf(s Signal) place {
	for _, l := range c.cfg.LocationLabels {
		if v := s.Labels[l]; v != "" && c.varies(l) {
			return place{l, v}
		}
	}
	return place{}
}

// learnPlace records the value of each location label s carries, the
// first two per label (varies).
func (c *Correlator) learnPlace(s Signal) {
	for _, l := range c.cfg.LocationLabels {
		v := s.Labels[l]
		if v == "" {
			continue
		}
		if seen := c.places[l]; len(seen) < 2 && !slices.Contains(seen, v) {
			c.places[l] = append(seen, v)
		}
	}
}

// varies reports whether signals came from two places under label: only
// then does a burst in one of them say something.
func (c *Correlator) varies(label string) bool { return len(c.places[label]) >= 2 }

// burst merges into an open incident of a shared service the incidents
// that opened around it, once they are a burst (Config.SharedServices):
// the symptoms of a DNS failure that alerted after it.
func (c *Correlator) burst(s Signal, ups []Update) []Update {
	var shared []*incident
	for _, sh := range c.topo.shared {
		for inc := range c.byRoot[sh] {
			if _, ok := c.eligible(inc, s); ok {
				shared = append(shared, inc)
			}
		}
	}
	sortIncidents(shared)
	for _, inc := range shared {
		if inc.mergedInto == "" {
			ups = c.absorb(inc, s, ups)
		}
	}
	return ups
}

// resolvedFirst takes the end of an alert never seen firing: it resolved
// before Alertmanager's group_wait passed, or an inhibition rule muted it
// all the while it fired, so its first notification says resolved. It
// joins the incident it would have joined firing when it started, as a
// resolved member; it opens none: a failure over before anyone was told
// is not worth a new page. One that started when nothing it could join
// was failing is an orphan (it fired before the correlator started, or
// before a restart that lost it).
func (c *Correlator) resolvedFirst(s Signal) []Update {
	if s.Kind == SignalAlert {
		c.noteEnd(s)
	}
	if s.Kind != SignalAlert || s.Started.IsZero() {
		c.stats.Orphans++
		return nil
	}
	fired := s
	fired.Time, fired.Resolved = s.Started, false
	inc, why := c.best(fired)
	if inc == nil {
		c.stats.Orphans++
		return nil
	}
	rootBefore, newService := inc.root, inc.services[s.Service] == 0
	c.join(inc, fired, why)
	m, ok := c.members[s.Fingerprint]
	if !ok || m.inc != inc {
		return nil // forgotten at once: memory is full and inc was the oldest
	}
	inc.tally(m, -1)
	m.Firing, m.LastSeen, m.LastEventID = false, s.Time, s.EventID
	inc.noteFailed(m)
	inc.signalled(s.Time, c.now)
	inc.note(s.Time, fmt.Sprintf("%s on %s resolved (it fired at %s)", m.Name, m.Service, s.Started.UTC().Format(time.RFC3339)))
	if inc.root == s.Service && rootBefore != s.Service {
		// It fired as the root showing up late (Observe).
		return c.absorb(inc, fired, nil)
	}
	if newService {
		return c.gather(inc, fired, nil) // it fired as a symptom (Observe)
	}
	return nil
}

// noteEnd remembers the end of s, an alert first seen resolved
// (Correlator.ended), keeping the latest end of a fingerprint.
func (c *Correlator) noteEnd(s Signal) {
	if at, ok := c.ended[s.Fingerprint]; ok && !s.Time.After(at) {
		return
	}
	if c.ended == nil {
		c.ended = map[string]time.Time{}
	}
	c.ended[s.Fingerprint] = s.Time
	c.endedOrder = append(c.endedOrder, endRecord{Fingerprint: s.Fingerprint, At: s.Time})
	if n := len(c.endedOrder) - MaxEnded; n > 0 {
		c.dropEnds(n)
	}
}

// late reports whether s is the firing of an alert whose end came first
// (Correlator.ended): timed before that end, within ReopenWindow of it.
// It is the same alert firing again, with its old startsAt, only when its
// end was Alertmanager's timeout; then its next resend past ReopenWindow
// opens an incident.
func (c *Correlator) late(s Signal) bool {
	if s.Kind != SignalAlert || s.Resolved {
		return false
	}
	at, ok := c.ended[s.Fingerprint]
	return ok && s.Time.Before(at) && c.now.Sub(at) <= c.cfg.ReopenWindow
}

// ageEnds forgets the ends taken first that are more than ReopenWindow
// before now, from the oldest taken (late checks the time of the others).
func (c *Correlator) ageEnds(now time.Time) {
	n := 0
	for n < len(c.endedOrder) && now.Sub(c.endedOrder[n].At) > c.cfg.ReopenWindow {
		n++
	}
	c.dropEnds(n)
}

// dropEnds forgets the n oldest ends taken first.
func (c *Correlator) dropEnds(n int) {
	for _, r := range c.endedOrder[:n] {
		if at, ok := c.ended[r.Fingerprint]; ok && at.Equal(r.At) {
			delete(c.ended, r.Fingerprint)
		}
	}
	clear(c.endedOrder[:n])
	c.endedOrder = c.endedOrder[n:]
}

// absorb merges into into, whose root s just became, the other incidents
// s could have joined (eligible: opened at most SpreadWindow before it, its
// service not changed since they opened unless they reached it, ...) as
// their late root: those whose root depends on it (at most DownDepth
// hops). They are the symptoms of one failure that alerted before their
// cause, each opening its own incident; the cause joins only one of them
// (Correlator.best), and brings the others along. A shared service
// (Config.SharedServices) is what any service may depend on: it brings
// every eligible incident opened within StormWindow of its own, once they
// are at least SharedBurst.
func (c *Correlator) absorb(into *incident, s Signal, ups []Update) []Update {
	i, ok := c.topo.index[into.root]
	if !ok {
		return ups
	}
	var pieces []*incident
	taken := map[*incident]bool{into: true}
	take := func(inc *incident) {
		// An incident of resource alerts alone is no symptom of into's
		// root, shared or not (Config.LocalAlerts).
		if _, ok := c.eligible(inc, s); ok && !taken[inc] && !inc.onlyLocal() {
			pieces, taken[inc] = append(pieces, inc), true
		}
	}
	if slices.Contains(c.topo.shared, into.root) {
		// Its failure began at its opening or, reopened, when it came
		// back (since): its symptoms opened around then, not around an
		// opening a reopen_window back.
		began := into.openedAt
		if into.reopens > 0 {
			began = into.since
		}
		for _, inc := range c.incidents {
			// A shared service's failure shows on what depends on it at
			// once: over a whole spread window, unrelated failures and
			// noise gather as often (QUALITY.md, session 28).
			if absDuration(inc.openedAt.Sub(began)) <= c.cfg.StormWindow {
				take(inc)
			}
		}
		if len(pieces) < c.cfg.SharedBurst {
			return ups // amid fewer, a failure of its own
		}
	} else {
		for inc := range c.rootedAbove(i, c.cfg.DownDepth) {
			take(inc)
		}
		for inc := range c.namingAbove(i, c.cfg.DownDepth) {
			take(inc)
		}
	}
	sortIncidents(pieces)
	for _, inc := range pieces {
		ups = append(ups, c.merge(inc, into, s.Time, "its root "+into.root+" is what "+inc.root+" depends on, or fails on"))
	}
	return ups
}

// namingAbove yields the incidents whose root's signals name, by a peer
// label (peerLabels: the upstream a caller's errors are on, the circuit
// it opened), service i or a service at most depth hops above it: a
// caller two hops up that alerts first on its upstream's name is a
// symptom of i as much as the upstream is, when i turns out to be the
// late root. One naming several such services comes once for each.
//
// Only incidents of at most namingPiece members come: a caller's
// incident is a few alerts, and labels naming services at random (a
// misconfigured exporter, a hostile producer) must not make merging
// large incidents the work of every signal. Each merge ends an incident,
// so what these merges move stays within namingPiece per incident opened.
func (c *Correlator) namingAbove(i, depth int) iter.Seq[*incident] {
	return func(yield func(*incident) bool) {
		for j, other := range c.topo.below {
			if hops := int(other[i]); j != i && (hops == 0 || hops > depth) {
				continue
			}
			for inc := range c.byPeer[c.topo.names[j]] {
				if len(inc.members) <= namingPiece && !yield(inc) {
					return
				}
			}
		}
	}
}

// namingPiece is the most members an incident merged for naming a
// service may hold (namingAbove).
const namingPiece = 16

// peersOf calls f with each catalogued service other than its own that a
// peer label of m names as what m's service calls or fails on
// (peerLabels, not callerLabels).
func (c *Correlator) peersOf(m *member, f func(named string)) {
	for k, v := range m.Labels {
		if !peerLabels[k] || callerLabels[k] {
			continue
		}
		if name, ok := c.names.lookup(v); ok && name != m.Service {
			if key, in := c.components[m.Service]; c.components != nil && (!in || key != c.components[name]) {
				continue // another partition's (Partitioned)
			}
			if _, placed := c.topo.index[name]; placed {
				f(name)
			}
		}
	}
}

// Partitioned makes the correlator partition index of count, as a
// Partitioner splits the signals: it joins signals only within a catalog
// component (a peer label naming a service of another component, or a
// signal on a service the catalog does not place naming one, is no edge,
// which partitions would split), and its incident ids derive from the
// partition too, so that a component a catalog edit moved to another
// partition is not given there the id of the incident this one let go
// of (Release), at a lower revision. Without partitions ids derive from
// the signal alone, whatever the catalog says: a signal redelivered after
// a restart with an edited catalog opens the incident it opened before.
func (c *Correlator) Partitioned(index, count int) {
	c.components = c.cat.Components()
	c.partition = fmt.Sprintf("partition %d of %d", index, count)
}

// callerLabels are the peer labels that name who calls the signal's
// service, not what it fails on: no upstream of it (peersOf).
var callerLabels = map[string]bool{"downstream": true, "caller": true, "client": true, "source_service": true}

// countPeers adds d to inc's tally of the services m's peer labels name,
// and files inc under those its root's members name (namingAbove).
func (c *Correlator) countPeers(inc *incident, m *member, d int) {
	c.peersOf(m, func(named string) {
		if inc.peers == nil {
			inc.peers = map[string]map[string]int{}
		}
		at := inc.peers[m.Service]
		if at == nil {
			at = map[string]int{}
			inc.peers[m.Service] = at
		}
		before := at[named]
		if at[named] += d; at[named] <= 0 {
			delete(at, named)
			if len(at) == 0 {
				delete(inc.peers, m.Service)
			}
		}
		if m.Service != inc.root {
			return // filed by what the root's members name only
		}
		if before == 0 && at[named] > 0 {
			fileUnder(c.byPeer, named, inc)
		} else if before > 0 && at[named] == 0 {
			takeOut(c.byPeer, named, inc)
		}
	})
}

// fileUnder files inc in sets under key (byService, byRoot, byPeer).
func fileUnder(sets map[string]map[*incident]struct{}, key string, inc *incident) {
	set := sets[key]
	if set == nil {
		set = map[*incident]struct{}{}
		sets[key] = set
	}
	set[inc] = struct{}{}
}

// takeOut takes inc out of sets under key, and the key once empty.
func takeOut(sets map[string]map[*incident]struct{}, key string, inc *incident) {
	if set := sets[key]; set != nil {
		delete(set, inc)
		if len(set) == 0 {
			delete(sets, key)
		}
	}
}

// gather merges into into, which s just joined on a service new to it as a
// symptom (its service depends on into's root), the incidents s's own
// symptoms opened: those rooted on a direct dependent of s's service that
// opened when or after s started (a symptom does not come before its
// cause) and that s could have joined (eligible). It is absorb for a
// symptom: a fast cascade notifies a symptom two hops up before the hop
// between, which then joins the root's incident and brings the symptom's
// along. Pieces that opened before s started failed first, on their own,
// unless their root's signals name s's service or a direct dependent of
// it by a peer label (namingAbove): those failed on it.
func (c *Correlator) gather(into *incident, s Signal, ups []Update) []Update {
	i, ok := c.topo.index[s.Service]
	if !ok || c.topo.hops(s.Service, into.root) == 0 {
		return ups // s is the root, or joined a burst's incident: no symptom
	}
	var pieces []*incident
	taken := map[*incident]bool{into: true}
	take := func(inc *incident) {
		// One of resource alerts alone is no symptom (Config.LocalAlerts).
		if _, ok := c.eligible(inc, s); ok && !taken[inc] && !inc.onlyLocal() {
			pieces, taken[inc] = append(pieces, inc), true
		}
	}
	for inc := range c.rootedAbove(i, 1) {
		if !inc.openedAt.Before(s.Time) {
			take(inc)
		}
	}
	// A caller whose signals name s's service, or a direct dependent of
	// it, by a peer label fails on it, whenever it opened (the label is
	// the edge, declared in the catalog or not).
	for inc := range c.namingAbove(i, 1) {
		take(inc)
	}
	sortIncidents(pieces)
	for _, inc := range pieces {
		ups = append(ups, c.merge(inc, into, s.Time, inc.root+" depends on "+s.Service+", which failed before it"))
	}
	return ups
}

// rootedAbove yields the incidents rooted on a service that depends on the
// service of index i, at most depth hops above it, with the hops: the
// incidents it may be the late root of (best, absorb) or whose symptoms it
// may have caused (gather).
func (c *Correlator) rootedAbove(i, depth int) iter.Seq2[*incident, int] {
	return func(yield func(*incident, int) bool) {
		for j, other := range c.topo.below {
			hops := int(other[i])
			if hops == 0 || hops > depth {
				continue
			}
			for inc := range c.byRoot[c.topo.names[j]] {
				if !yield(inc, hops) {
					return
				}
			}
		}
	}
}

// merge moves every member of from into into, and ends from: resolved at
// t, its last event naming into (State.MergedInto). from is forgotten at
// once, but where it went is remembered for ReopenWindow (MergedInto);
// into publishes the members it took with its next update.
func (c *Correlator) merge(from, into *incident, t time.Time, why string) Update {
	// What people did on from goes on with its failure in into: an
	// acknowledgement (into open), an assignee (into without one), the
	// comments. Merged only, from would be paged again as into.
	if from.status == StatusAcknowledged && into.status == StatusOpen {
		into.status, into.acknowledgedAt, into.acknowledgedBy = StatusAcknowledged, from.acknowledgedAt, from.acknowledgedBy
		into.since = latest(into.since, from.since)
		into.note(t, "acknowledged, as "+from.id+" was")
	}
	if into.assignee == "" && from.assignee != "" {
		into.assignee = from.assignee
		into.note(t, fmt.Sprintf("assigned to %s, as %s was", from.assignee, from.id))
	}
	if len(from.comments) > 0 {
		into.comments = append(into.comments, from.comments...)
		slices.SortStableFunc(into.comments, func(a, b Comment) int { return a.Time.Compare(b.Time) })
		into.comments = keepNewest(into.comments, MaxComments)
	}
	from.status, from.resolvedAt, from.resolvedEvent, from.mergedInto = StatusResolved, t, t, into.id
	from.note(t, "merged into "+into.id+": "+why)
	if from.storm {
		c.markStorm(into, place{})
	}
	for _, at := range from.stormPlaces {
		c.markStorm(into, at)
	}
	c.stats.Merged++
	u := c.publish(from, Resolved, t)
	into.note(t, fmt.Sprintf("merged %s (%s, opened %s)", from.id, title(from, from.root), from.openedAt.UTC().Format(time.RFC3339)))
	moved := from.members
	c.detachAll(from)
	for _, m := range moved {
		c.adopt(into, m)
	}
	// Its members' signals, sent again once into is forgotten, must not
	// derive its id (merged, it is known only within ReopenWindow).
	c.retire(from.id)
	for _, ch := range from.changes {
		into.link(ch)
	}
	if from.openedAt.Before(into.openedAt) && sameMonth(from.openedAt, into.openedAt) {
		into.openedAt = from.openedAt
		c.listingOK = false // into's place in the order moved
	}
	into.wave, into.returns = latest(into.wave, from.wave), max(into.returns, from.returns)
	// into's own ids stay the newest: one may still wait for its repeat.
	own := into.commands
	into.commands = nil
	for _, id := range slices.Concat(from.commands, own) {
		into.rememberCommand(id)
	}
	if from.lastFired.After(into.lastFired) {
		into.lastFired = from.lastFired
	}
	if from.lastHeard.After(into.lastHeard) {
		into.lastHeard = from.lastHeard
	}
	into.signalled(from.lastSignal, from.lastArrival)
	c.forget(from)
	c.remember(mergeRecord{ID: from.id, Into: into.id, At: t})
	c.reschedule(into)
	return u
}

// rememberCommand records the id of a command applied, keeping the last
// maxCommandIDs.
func (inc *incident) rememberCommand(id string) {
	if slices.Contains(inc.commands, id) {
		return
	}
	if n := len(inc.commands) - maxCommandIDs + 1; n > 0 { // a snapshot may hold more
		inc.commands = slices.Delete(inc.commands, 0, n)
	}
	inc.commands = append(inc.commands, id)
}

// remember records a merge, in mergedOrder's time order (a merge is
// almost always the latest: only a late signal's comes before others),
// keeping at most MaxFingerprints records: each merged incident had
// members, so they are bounded like the members, the oldest going first.
func (c *Correlator) remember(r mergeRecord) {
	c.merged[r.ID] = r
	i := len(c.mergedOrder)
	for i > 0 && c.mergedOrder[i-1].At.After(r.At) {
		i--
	}
	c.mergedOrder = slices.Insert(c.mergedOrder, i, r)
	if n := len(c.mergedOrder) - c.cfg.MaxFingerprints; n > 0 {
		c.dropMerges(n)
	}
}

// ageMerges forgets the merges more than ReopenWindow before now, as a
// resolved incident is forgotten.
func (c *Correlator) ageMerges(now time.Time) {
	n := 0
	for n < len(c.mergedOrder) && now.Sub(c.mergedOrder[n].At) > c.cfg.ReopenWindow {
		n++
	}
	c.dropMerges(n)
}

// dropMerges forgets the n oldest merges.
func (c *Correlator) dropMerges(n int) {
	for _, r := range c.mergedOrder[:n] {
		if c.current(r) {
			delete(c.merged, r.ID)
		}
	}
	clear(c.mergedOrder[:n])
	c.mergedOrder = c.mergedOrder[n:]
}

// current reports whether r is what MergedInto answers for its id: not
// replaced by a later merge of an incident with the same id.
func (c *Correlator) current(r mergeRecord) bool {
	m, ok := c.merged[r.ID]
	return ok && m.Into == r.Into && m.At.Equal(r.At)
}

// MergedInto says where the incident id went when it was merged within
// ReopenWindow: the incident it was merged into, or, when that one was
// merged too, where that one went, and so on.
func (c *Correlator) MergedInto(id string) (target string, ok bool) {
	r, ok := c.merged[id]
	if !ok {
		return "", false
	}
	target = r.Into
	// A chain is at most as long as the merges remembered (a merged
	// incident is gone, so none is merged twice).
	for hops := 0; hops < len(c.merged); hops++ {
		next, ok := c.merged[target]
		if !ok {
			break
		}
		target = next.Into
	}
	return target, true
}

// newEpisode reports whether s starts a new episode of anomaly member m:
// another episode than m's, as the detector tells (Signal.EpisodeID), or,
// where it tells none, its series went wrong again after QuietPeriod
// without an anomaly. An
// alert's fingerprint keeps its member (a resolved alert firing again is
// the same failure, or reopens it).
func (c *Correlator) newEpisode(m *member, s Signal) bool {
	if m.Kind != SignalAnomaly || s.Resolved {
		return false
	}
	if s.EpisodeID != "" && m.episode != "" {
		// The detector says which episode it is: its updates of a long
		// one may come further apart than QuietPeriod (the detector's
		// own update_every is 5 minutes). Another episode's close, or
		// an event older than the member's last, is a late one of an
		// episode gone by: it repeats the member and changes nothing.
		return s.EpisodeID != m.episode && s.Episode != EpisodeClose && !s.Time.Before(m.LastSeen)
	}
	return s.Time.Sub(m.LastSeen) > c.cfg.QuietPeriod
}

// returns reports whether s, a new episode of anomaly member m, is m's
// failure coming back: a pool that drains again, retries that pile up
// again, a wave of one failure rather than a failure of its own. It is
// when m is on the root of its incident, the incident reached beyond that
// service (a lone series blipping again is noise, not a wave), m's last
// anomaly was at most ReopenWindow before, the incident resolved at most
// ReopenWindow before (s reopens it, as an alert firing again does) or m
// went quiet at most GroupWindow before, the service did not change
// since its last anomaly (a deploy between the waves is a new failure,
// the deploy's), the incident came back fewer than maxReturns times (a
// root series blipping all day is no wave that keeps the incident
// spreading), and no other incident failing now would take s (best): a
// new failure below the root shows there first. The incident then
// spreads again (eligible): the wave reaches its callers afresh.
func (c *Correlator) returns(m *member, s Signal) bool {
	inc := m.inc
	if inc.mergedInto != "" || m.Service != inc.root || len(inc.services) < 2 || inc.returns >= maxReturns ||
		c.changedSince(m.Service, m.LastSeen, s.Time) {
		return false
	}
	quiet := s.Time.Sub(m.LastSeen)
	switch {
	case quiet > c.cfg.ReopenWindow:
		return false
	case inc.status == StatusResolved:
		if s.Time.Sub(inc.resolvedEvent) > c.cfg.ReopenWindow {
			return false
		}
	case quiet > c.cfg.GroupWindow:
		return false
	}
	other, _ := c.best(s)
	return other == nil || other == inc
}

// maxReturns bounds how often one incident comes back (returns): a
// failure in waves comes back a few times before it is fixed.
const maxReturns = 3

// repeat applies a signal to the member it repeats. done is false when the
// member's incident is gone for good (resolved beyond ReopenWindow): the
// signal then starts afresh. wave says s is a new episode of m that is
// its failure coming back (returns), whose episode m was given already.
func (c *Correlator) repeat(m *member, s Signal, wave bool) (done bool, ups []Update) {
	inc := m.inc
	// Old news (stale) is counted, but changes neither the member's state
	// nor the incident's: in order, the later event came after it.
	stale := m.stale(s) || c.late(s)
	reopened := false
	if inc.status == StatusResolved && !s.Resolved && !stale {
		if s.Time.Sub(inc.resolvedEvent) > c.cfg.ReopenWindow {
			c.leave(m)
			return false, nil
		}
		// An alert firing again reopens; one that never stopped (the
		// incident was resolved by hand, and Alertmanager resends what
		// still fires) is no news: the person resolving knew. So is the
		// detector's routine update of an anomaly episode still open. A
		// wave is news even when the last episode's close was lost (it
		// still counts as open).
		if !m.Firing || wave || m.Kind == SignalAnomaly && (m.episode == "" || s.EpisodeID != m.episode) {
			c.reopen(inc, s)
			reopened = true
		}
	}
	c.stats.Repeats++
	m.Count++
	if s.Time.After(m.LastSeen) {
		m.LastSeen = s.Time
		inc.noteFailed(m)
	}
	if stale {
		inc.saw(s)
		return true, ups
	}
	if s.Observed.After(m.observed) {
		m.observed = s.Observed
	}
	if s.EventID != "" {
		m.LastEventID = s.EventID
	}
	if s.EpisodeID != "" && m.episode == "" {
		c.setEpisode(m, s.EpisodeID)
	}
	m.Reading = readingOf(s)
	if m.Kind == SignalAlert {
		m.Expires = s.Expires // the latest report says how long it holds
	}
	if s.Severity.Rank() > m.Severity.Rank() {
		// Worse than first reported (a detector's episode whose peak
		// grew): the incident is as severe as its worst member got,
		// which notifiers route by. A milder report (a close) does not
		// lower it.
		m.Severity = s.Severity
		inc.dirty = true
	}
	if m.Kind == SignalAnomaly && m.episode != "" && s.EpisodeID == m.episode && m.Firing == s.Resolved {
		// Its episode opened again (an update after a lost close) or
		// closed: the incident waits for open episodes (lapse).
		inc.tally(m, -1)
		m.Firing = !s.Resolved
		inc.tally(m, 1)
		inc.dirty = true
	}
	if m.Kind != SignalAlert || m.Firing || !s.Resolved {
		// The resolution of an alert resolved already, sent again
		// (Prometheus resends it for 15 minutes), is no signal: it
		// would start the quiet period again at each resend.
		inc.signalled(s.Time, c.now)
	}
	inc.saw(s)
	if m.Kind == SignalAlert && m.Firing == s.Resolved {
		// A state change: firing → resolved or back.
		inc.tally(m, -1)
		m.Firing = !s.Resolved
		inc.tally(m, 1)
		if m.Firing {
			inc.note(s.Time, fmt.Sprintf("%s on %s fired again", m.Name, m.Service))
		} else {
			inc.note(s.Time, fmt.Sprintf("%s on %s resolved", m.Name, m.Service))
		}
		c.flip(m, s.Time)
		if !m.Flapping {
			inc.dirty = true
		}
	}
	inc.expiresBy(m)
	if reopened {
		if inc.root == s.Service {
			// The root failing again after its symptoms opened an
			// incident of their own (their anomalies, their alerts'
			// shorter `for`, come first) takes that incident in, as a
			// root alerting late for the first time does (place):
			// else one failure is paged twice, the reopened incident
			// holding only its root.
			ups = c.absorb(inc, s, ups)
		}
		// Published once the signal is applied, so that the reopening
		// shows the member that fired again firing (a page saying
		// reopened, with every alert resolved, tells of nothing).
		ups = append(ups, c.publish(inc, Reopened, s.Time))
	}
	return true, ups
}

// flip records a state change of m and starts its flapping when there
// were FlapStart within FlapWindow.
func (c *Correlator) flip(m *member, t time.Time) {
	m.flips = append(m.flips, t)
	m.flips = trimBefore(m.flips, t.Add(-c.cfg.FlapWindow))
	if !m.Flapping && len(m.flips) >= c.cfg.FlapStart {
		m.Flapping = true
		m.inc.flappers = append(m.inc.flappers, m)
		m.inc.note(t, fmt.Sprintf("%s on %s is flapping (%d changes in %s): its changes are held", m.Name, m.Service, len(m.flips), c.cfg.FlapWindow))
		m.inc.dirty = true
	}
}

func trimBefore(ts []time.Time, cut time.Time) []time.Time {
	i := 0
	for i < len(ts) && ts[i].Before(cut) {
		i++
	}
	if i == 0 {
		return ts
	}
	return append(ts[:0], ts[i:]...)
}

// best is the incident a new member joins, nil for none (open one), and
// why (its relation to the root, for the timeline: explain). The
// candidates are the incidents still taking signals (one fired within
// GroupWindow, or whose span holds the signal's time: eligible) whose
// root is the signal's service, a dependency of it (the
// signal is a symptom, at most UpDepth hops up) or a dependent of it (the
// real root showing up late, at most DownDepth hops down), opened at most
// SpreadWindow before the signal. Each
// candidate scores by its relation (root 3, symptom 2.5, late root 1.5,
// a quarter less per hop beyond the first) less RecencyWeight times how
// long ago, in GroupWindows, it last fired: a symptom of a failure that is
// happening now beats an older incident on the same service. Evidence
// beyond the root adds to the score: PathWeight when the incident already
// has a member on a direct dependency of the signal's service (the way
// the failure came), LabelWeight when a label of the signal names one of
// the incident's services (the pool or upstream it fails on). A service
// changed after the incident opened (at most ChangeWindow before the
// signal) is no candidate's, unless the incident already reached one of
// its direct dependencies (eligible). Ties go to an incident with a member
// of the same name, then the latest, then the lowest id.
func (c *Correlator) best(s Signal) (*incident, relation) {
	var (
		bestInc   *incident
		bestScore float64
		bestName  bool
		bestWhy   relation
	)
	window := c.cfg.GroupWindow
	consider := func(inc *incident, base float64, hops int, how relationKind) {
		gap, ok := c.eligible(inc, s)
		if !ok {
			return
		}
		score := base - 0.25*float64(max(hops-1, 0)) - c.cfg.RecencyWeight*max(gap.Seconds(), 0)/window.Seconds()
		if *c.cfg.LabelWeight > 0 {
			for _, v := range s.Labels {
				if v != s.Service && inc.services[v] > 0 {
					score += *c.cfg.LabelWeight
					break
				}
			}
		}
		if *c.cfg.PathWeight > 0 && c.reached(inc, s.Service) {
			score += *c.cfg.PathWeight
		}
		name := inc.hasName(s.Name)
		better := bestInc == nil || score > bestScore
		if !better && score == bestScore {
			switch {
			case name != bestName:
				better = name
			case !inc.lastFired.Equal(bestInc.lastFired):
				better = inc.lastFired.After(bestInc.lastFired)
			default:
				better = inc.id < bestInc.id
			}
		}
		if better {
			bestInc, bestScore, bestName = inc, score, name
			bestWhy = relation{how: how, hops: hops}
		}
	}
	for inc := range c.byRoot[s.Service] {
		consider(inc, 3, 0, onRoot)
	}
	// A resource alert is no symptom of what its service calls, a shared
	// service included (Config.LocalAlerts), nor is an incident of them
	// alone one of s's service.
	local, apart := c.isLocal(s.Kind, s.Name), ""
	if i, ok := c.topo.index[s.Service]; ok {
		below := c.topo.below[i]
		if g, ok := c.topo.guessed[i]; ok {
			below = g // an undeclared service: what it is guessed to call
		}
		for j, hops := range below {
			if hops == 0 || int(hops) > c.cfg.UpDepth {
				continue
			}
			for inc := range c.byRoot[c.topo.names[j]] {
				if !local {
					consider(inc, 2.5, int(hops), symptomOf)
				} else if _, ok := c.eligible(inc, s); ok && (apart == "" || inc.root < apart) {
					apart = inc.root // the timeline of what s opens says why (open)
				}
			}
		}
		for inc, hops := range c.rootedAbove(i, c.cfg.DownDepth) {
			if !inc.onlyLocal() {
				consider(inc, 1.5, hops, lateRootOf)
			}
		}
	}
	// An alert storm's incident is what anything failing now may belong
	// to, a location burst's what fails now in its places
	// (Config.AlertStorms, Config.LocationBursts).
	var at place
	if len(c.storms) > 0 && *c.cfg.LocationBursts {
		at = c.placeOf(s)
	}
	for inc := range c.storms {
		if inc.root != s.Service && (inc.storm || at != place{} && slices.Contains(inc.stormPlaces, at)) {
			consider(inc, 2.5, 1, inBurst)
		}
	}
	// A shared service's incident that already spans a burst of services
	// is what anything may depend on (Config.SharedServices).
	for _, sh := range c.topo.shared {
		if sh == s.Service || local {
			continue
		}
		for inc := range c.byRoot[sh] {
			if len(inc.services) >= c.cfg.SharedBurst {
				consider(inc, 2.5, 1, underShared)
			}
		}
	}
	if inc, near := c.spreadingNow(s); inc != nil {
		return inc, relation{how: unplacedNear, near: near}
	}
	if bestInc == nil {
		return nil, relation{apartFrom: apart}
	}
	return bestInc, bestWhy
}

// relation is why a new member joins the incident best chose, for the
// incident's timeline.
type relation struct {
	how  relationKind
	hops int    // between its service and the root (symptomOf, lateRootOf)
	near string // the service whose new member it came just after (unplacedNear)
	// apartFrom, when s joins nothing, is the root of an incident below
	// its service that a resource alert stays out of (Config.LocalAlerts).
	apartFrom string
}

type relationKind uint8

const (
	onRoot       relationKind = iota // on the incident's root service
	symptomOf                        // its service depends on the root
	lateRootOf                       // the root depends on its service
	inBurst                          // an alert storm's or a location burst's incident
	underShared                      // a shared service's incident
	unplacedNear                     // the catalog does not place it (Config.UnplacedSignals)
)

// explain says why s joins inc, a service new to it: how its service
// relates to the root, then the evidence best scored (a label of s naming
// a service of inc, what s's service calls already failing in inc). The
// timeline is what tells a person why an alert is in their incident.
func (c *Correlator) explain(inc *incident, s Signal, why relation) string {
	var b strings.Builder
	switch why.how {
	case onRoot:
		b.WriteString("on the root service")
	case symptomOf:
		fmt.Fprintf(&b, "it depends on the root, %s%s", inc.root, hopsAway(why.hops))
	case lateRootOf:
		fmt.Fprintf(&b, "the root, %s, depends on it%s: the cause showing after its symptoms", inc.root, hopsAway(why.hops))
	case inBurst:
		if inc.storm {
			b.WriteString("an alert storm, which takes what fails now on any service")
		} else {
			places := make([]string, len(inc.stormPlaces))
			for i, p := range inc.stormPlaces {
				places[i] = p.String()
			}
			fmt.Fprintf(&b, "a burst of failures in %s, which takes what fails there now", strings.Join(places, ", "))
		}
	case underShared:
		fmt.Fprintf(&b, "the root, %s, is a shared service failing under %d services", inc.root, len(inc.services))
	case unplacedNear:
		fmt.Fprintf(&b, "the catalog does not place %s, and it failed within %s of %s joining", s.Service, c.cfg.UnplacedWindow, why.near)
		return b.String()
	}
	if *c.cfg.LabelWeight > 0 {
		for _, k := range slices.Sorted(maps.Keys(s.Labels)) {
			if v := s.Labels[k]; v != s.Service && inc.services[v] > 0 {
				fmt.Fprintf(&b, "; its label %s names %s, in the incident", k, v)
				break
			}
		}
	}
	if d := c.reachedVia(inc, s.Service); *c.cfg.PathWeight > 0 && d != "" {
		fmt.Fprintf(&b, "; %s, which it calls, fails in the incident", d)
	}
	return b.String()
}

// hopsAway tells a distance in the catalog beyond one hop.
func hopsAway(hops int) string {
	if hops <= 1 {
		return ""
	}
	return fmt.Sprintf(" (%d hops away)", hops)
}

// spreadingNow is, for a signal the catalog cannot place
// (Config.UnplacedSignals), the incident it may join whose failure
// took a new member latest, at most UnplacedWindow before it, among
// those rooted on a catalogued service; nil for a placed signal, or when
// none is spreading now. It looks at the arrivals of the last minute or
// so (noteArrival), not at every incident in memory.
func (c *Correlator) spreadingNow(s Signal) (best *incident, on string) {
	if c.cat == nil || !*c.cfg.UnplacedSignals {
		return nil, ""
	}
	if _, placed := c.topo.index[s.Service]; placed {
		return nil, ""
	}
	var at time.Time
	// The arrivals within reach, newest first (they are in time order):
	// an incident's first live one met is its latest, which alone is
	// judged; of equal times the lowest id wins, in any order.
	c.scans++
	i, _ := slices.BinarySearchFunc(c.arrivals, s.Time, func(a arrival, t time.Time) int {
		return cmp.Or(a.at.Compare(t), -1) // past every arrival at t
	})
	cut := c.arrivalsCut()
	for i--; i >= 0; i-- {
		a := c.arrivals[i]
		inc := a.inc
		if s.Time.Sub(a.at) > c.cfg.UnplacedWindow || a.at.Before(cut) {
			break // older ones a restore would not have filed
		}
		if inc == best && a.at.Equal(at) {
			// Several of its services joined at that instant: name the
			// first by name, as a restore, which files them in that
			// order, would.
			if c.live(a) && a.service < on {
				on = a.service
			}
			continue
		}
		if best != nil && (a.at.Before(at) || a.at.Equal(at) && inc.id >= best.id) || inc.looked == c.scans || !c.live(a) {
			continue
		}
		inc.looked = c.scans
		if _, placed := c.topo.index[inc.root]; !placed || inc.status == StatusResolved {
			continue
		}
		if _, ok := c.eligible(inc, s); ok {
			best, at, on = inc, a.at, a.service
		}
	}
	return best, on
}

// eligible reports whether s may join inc at all (best then scores the
// incidents that pass), with the time since inc last fired.
func (c *Correlator) eligible(inc *incident, s Signal) (gap time.Duration, ok bool) {
	gap, window := s.Time.Sub(inc.lastFired), c.cfg.GroupWindow
	if gap > window && gap <= window+c.cfg.SlowAlertWait && c.waitedOn(inc, s) {
		// A slow alert's condition held its `for` before it fired: it
		// began while the incident was still taking members.
		window += c.cfg.SlowAlertWait
	}
	if gap < -window && inc.reopens == 0 && !s.Time.Before(inc.openedAt.Add(-window)) {
		// Timed within the incident's span, from its opening to its last
		// firing, all of it open (it never resolved and reopened): an
		// event that arrived late, or an alert first seen resolved long
		// after it started (resolvedFirst).
		gap = 0
	}
	if gap > window || gap < -window || !c.takes(inc, s) || c.apart(inc, s) {
		return gap, false
	}
	if c.changedSince(s.Service, inc.openedAt, s.Time) && !c.reached(inc, s.Service) &&
		// A slow alert's condition began its wait before it fired: a
		// change since (a rollback) did not cause it.
		(!c.waitedOn(inc, s) || c.changedSince(s.Service, inc.openedAt, s.Time.Add(-c.cfg.SlowAlertWait))) {
		// The service changed while the incident was under way: its new
		// failure is most likely the change's, not the incident's. Unless
		// the failure has visibly come its way: in a busy shop changes
		// come every few minutes, and one that broke nothing must not
		// split a cascade that reached the service (QUALITY.md, session
		// 15).
		return gap, false
	}
	if since, spread := s.Time.Sub(latest(inc.openedAt, inc.wave)), c.spreadWindow(s.Time); since > spread && !c.spreading(inc, s) &&
		(since > spread+c.cfg.SlowAlertWait || !c.waitedOn(inc, s)) {
		// A failure spreads to its dependents within minutes of its
		// start, or of coming back (returns); a new alert or series long
		// after, even on one of the incident's own services, is most
		// likely a failure of its own, unless the failure has just
		// reached what its service depends on, or s is a slow alert on
		// a service the incident holds (waitedOn).
		return gap, false
	}
	return gap, true
}

// waitedOn reports whether s is a slow alert (Config.SlowAlerts) on a
// service where inc has an alert firing, or one that fired until at most
// SlowAlertWait before s, not an advisory one: its rule
// waited its `for` on the failure inc already holds there (a pod
// crash-looping for 15 minutes after the deploy that broke it); a
// forecast is no failure to wait on.
func (c *Correlator) waitedOn(inc *incident, s Signal) bool {
	if s.Kind != SignalAlert || inc.services[s.Service] == 0 || !c.slow.matches(s.Name) {
		return false
	}
	// Its condition began up to SlowAlertWait before it fired: an alert
	// of the incident that failed there until then is what it waited on.
	return inc.failing[s.Service] > 0 || !inc.lastFailed[s.Service].Before(s.Time.Add(-c.cfg.SlowAlertWait))
}

// noteFailed notes that m, a member of inc, was last seen failing on its
// service at m.LastSeen (its last firing, or its end), when it is an
// alert and not an advisory one (waitedOn).
func (inc *incident) noteFailed(m *member) {
	if m.Kind != SignalAlert || m.advisory {
		return
	}
	if inc.lastFailed == nil {
		inc.lastFailed = map[string]time.Time{}
	}
	if m.LastSeen.After(inc.lastFailed[m.Service]) {
		inc.lastFailed[m.Service] = m.LastSeen
	}
}

// apart reports whether s stays out of inc, rooted on another service,
// because one side is only advisory (Config.AdvisoryAlerts): s is an
// advisory alert, or every member of inc is. A forecast or a housekeeping
// failure spreads to nothing and comes from nothing; what fails beside it
// in time is a failure of its own. An incident of advisory alerts alone
// that holds one of s's name takes it (one certificate expiring on
// several services); a failure's incident does not (every job that fails
// is a KubeJobFailed).
func (c *Correlator) apart(inc *incident, s Signal) bool {
	if c.advisory == nil || inc.root == s.Service {
		return false
	}
	if inc.onlyAdvisory() {
		return !c.isAdvisory(s.Kind, s.Name) || !inc.hasName(s.Name)
	}
	return c.isAdvisory(s.Kind, s.Name)
}

// onlyAdvisory reports whether every member of inc is an advisory alert.
func (inc *incident) onlyAdvisory() bool {
	return len(inc.members) > 0 && inc.advisory == len(inc.members)
}

// isLocal reports whether an alert of name is a resource alert
// (Config.LocalAlerts).
func (c *Correlator) isLocal(kind SignalKind, name string) bool {
	return kind == SignalAlert && c.local.matches(name)
}

// onlyLocal reports whether every member of inc is a resource alert: no
// symptom of what its services call (Config.LocalAlerts).
func (inc *incident) onlyLocal() bool {
	return len(inc.members) > 0 && inc.local == len(inc.members)
}

// isAdvisory reports whether an alert of name is advisory.
func (c *Correlator) isAdvisory(kind SignalKind, name string) bool {
	return kind == SignalAlert && c.advisory.matches(name)
}

// nameRule matches alert names against a rule's patterns
// (Config.AdvisoryAlerts, Config.SlowAlerts) and remembers its answers: a
// signal is looked at once per candidate incident, and a storm has few
// names.
type nameRule struct {
	re      *regexp.Regexp
	answers map[string]bool
	// last and lastIs: the latest answer, asked again for each incident a
	// signal may join.
	last   string
	lastIs bool
}

// newNameRule is the rule of patterns; nil when there are none (the rule
// is off).
func newNameRule(patterns []string) (*nameRule, error) {
	re, err := namePattern(patterns)
	if re == nil || err != nil {
		return nil, err
	}
	return &nameRule{re: re, answers: map[string]bool{}}, nil
}

// matches reports whether name is one of r's. A name longer than any
// rule's (maxRuleName) is not, and is not remembered: a producer's
// endless distinct names cost neither matching time nor memory.
func (r *nameRule) matches(name string) bool {
	if r == nil || name == "" || len(name) > maxRuleName {
		return false
	}
	if name != r.last {
		is, ok := r.answers[name]
		if !ok {
			if len(r.answers) >= maxRuleNames {
				clear(r.answers) // names without end: remember anew
			}
			is = r.re.MatchString(name)
			r.answers[name] = is
		}
		r.last, r.lastIs = name, is
	}
	return r.lastIs
}

const (
	maxRuleNames = 10_000
	maxRuleName  = 256
)

// reached reports whether inc has a member on a direct dependency of
// service (calls): the way a failure comes to it.
func (c *Correlator) reached(inc *incident, service string) bool {
	return c.reachedVia(inc, service) != ""
}

// reachedVia is the first direct dependency of service (calls) on which
// inc has a member, "" for none (reached; explain names it).
func (c *Correlator) reachedVia(inc *incident, service string) string {
	for _, d := range c.calls(service) {
		if inc.services[d] > 0 {
			return d
		}
	}
	return ""
}

// calls is what service calls directly: its dependencies in the catalog,
// or, for a service the catalog names only in depends_on, what it is
// guessed to call (Config.UndeclaredSiblings). Only the service's own
// signals use a guess, as evidence that a failure came its way.
func (c *Correlator) calls(service string) []string {
	if c.cat == nil {
		return nil
	}
	if deps := c.cat.Services[service].DependsOn; len(deps) > 0 {
		return deps
	}
	return c.topo.guessedCalls[service]
}

// changedSince reports whether service changed after opened, at most
// ChangeWindow before t.
func (c *Correlator) changedSince(service string, opened, t time.Time) bool {
	for _, ch := range c.changes[service] {
		if ch.Time.After(opened) && !ch.Time.After(t) && t.Sub(ch.Time) <= c.cfg.ChangeWindow {
			return true
		}
	}
	return false
}

// setRoot makes service the root of inc.
func (c *Correlator) setRoot(inc *incident, service string) {
	if inc.root == service {
		return
	}
	takeOut(c.byRoot, inc.root, inc)
	for named := range inc.peers[inc.root] {
		takeOut(c.byPeer, named, inc)
	}
	for named := range inc.peers[service] {
		fileUnder(c.byPeer, named, inc)
	}
	inc.root = service
	fileUnder(c.byRoot, service, inc)
}

// takes reports whether inc still takes a new member s: it is not
// resolved (a resolved incident reopens only when one of its own members
// fires again: a new alert after the recovery is a new failure), and its
// GroupBy labels match.
func (c *Correlator) takes(inc *incident, s Signal) bool {
	if inc.status == StatusResolved {
		return false
	}
	for _, l := range c.cfg.GroupBy {
		if inc.groupLabels[l] != s.Labels[l] {
			return false
		}
	}
	return true
}

// saw records that s fired (or reported an anomaly).
func (inc *incident) saw(s Signal) {
	if !s.Resolved && s.Time.After(inc.lastFired) {
		inc.lastFired = s.Time
	}
	if heard := cmp.Or(s.Observed, s.Time); heard.After(inc.lastHeard) {
		inc.lastHeard = heard
	}
}

// tally adds d times m's state to inc's counts: a firing alert to firing,
// an anomaly whose episode is open to episodes.
func (inc *incident) tally(m *member, d int) {
	switch {
	case !m.Firing:
	case m.Kind == SignalAlert:
		inc.firing += d
		if !m.advisory {
			if inc.failing == nil {
				inc.failing = map[string]int{}
			}
			if inc.failing[m.Service] += d; inc.failing[m.Service] <= 0 {
				delete(inc.failing, m.Service)
			}
		}
	default:
		inc.episodes += d
	}
}

func (inc *incident) hasName(name string) bool { return name != "" && inc.names[name] > 0 }

// open starts an incident with s as its first member; why says what it
// stayed out of (relation.apartFrom).
func (c *Correlator) open(s Signal, why relation) Update {
	inc := &incident{
		id:       c.newID(s),
		status:   StatusOpen,
		openedAt: s.Time, since: s.Time, lastSignal: s.Time, lastArrival: c.now,
		services: map[string]int{}, names: map[string]int{}, arrived: map[string]time.Time{},
	}
	if len(c.cfg.GroupBy) > 0 {
		inc.groupLabels = make(map[string]string, len(c.cfg.GroupBy))
		for _, l := range c.cfg.GroupBy {
			inc.groupLabels[l] = s.Labels[l]
		}
		inc.group = groupKey(c.cfg.GroupBy, inc.groupLabels)
	}
	c.incidents[inc.id] = inc
	c.bytes += incidentBytes
	inc.acct = &c.bytes
	if n := len(c.listing); c.listingOK && (n == 0 || incidentBefore(c.listing[n-1], inc)) {
		c.listing = append(c.listing, inc)
	} else {
		c.listingOK = false
	}
	c.stats.Opened++
	// Only whether more than BusyOpenings opened within the hour
	// matters: the latest BusyOpenings+1 tell.
	if c.openings = append(c.openings, s.Time); len(c.openings) > c.cfg.BusyOpenings+1 {
		c.openings = append(c.openings[:0], c.openings[1:]...)
	}
	if *c.cfg.LocationBursts {
		inc.place = c.placeOf(s)
	}
	if *c.cfg.AlertStorms || *c.cfg.LocationBursts {
		c.enterRecent(inc)
	}
	inc.note(s.Time, fmt.Sprintf("opened by %s on %s", describe(s), s.Service))
	if why.apartFrom != "" {
		inc.note(s.Time, fmt.Sprintf("kept out of the incident of %s, which %s depends on: a resource alert tells of %s itself, not of what it calls (local_alerts)", why.apartFrom, s.Service, s.Service))
	}
	c.join(inc, s, relation{how: onRoot})
	c.noteUnplaced(inc)
	return c.publish(inc, Opened, s.Time)
}

// join adds s to inc as a new member, for the reason why.
func (c *Correlator) join(inc *incident, s Signal, why relation) {
	labels, resource, cut := c.storedLabels(s.Labels, s.Resource)
	m := &member{Member: Member{
		Fingerprint: s.Fingerprint, Kind: s.Kind, Service: s.Service, Name: s.Name, Summary: s.Summary,
		Severity: s.Severity, Firing: s.Kind == SignalAlert && !s.Resolved, FirstSeen: s.Time, LastSeen: s.Time,
		Count: 1, LastEventID: s.EventID, FirstEventID: s.EventID, Labels: labels, Resource: resource, LabelsCut: cut,
		Reading: readingOf(s), Expires: s.Expires,
	}, episode: s.EpisodeID, observed: s.Observed}
	if s.Kind == SignalAnomaly && s.EpisodeID != "" {
		m.Firing = !s.Resolved // its episode is open
	}
	if old, ok := c.members[s.Fingerprint]; ok {
		c.leave(old)
	}
	if inc.services[s.Service] == 0 && len(inc.members) > 0 {
		inc.note(s.Time, fmt.Sprintf("%s joined with %s: %s", s.Service, describe(s), c.explain(inc, s, why)))
	}
	c.adopt(inc, m)
	inc.signalled(s.Time, c.now)
	inc.saw(s)
	c.evict(inc)
}

// adopt makes m, a new member or one merged from another incident, a
// member of inc.
func (c *Correlator) adopt(inc *incident, m *member) {
	if c.count(inc, m) {
		c.linkChanges(inc, m.Service)
		c.noteChangesDuring(inc, m.Service)
	}
	if inc.root == "" || c.topo.hops(inc.root, m.Service) > 0 {
		c.setRoot(inc, m.Service) // the first member, or the root showing up late
	}
	inc.dirty = true
}

// count makes m a member of inc in every index and tally (a member
// adopted, or restored from a snapshot), and reports whether m is the
// first of inc on its service.
func (c *Correlator) count(inc *incident, m *member) (newService bool) {
	m.inc = inc
	if old, ok := c.members[m.Fingerprint]; ok && old != m {
		c.bytes -= old.size // (two members of one fingerprint in a snapshot)
	}
	c.members[m.Fingerprint] = m
	m.size = sizeOf(m)
	c.bytes += m.size
	inc.members = append(inc.members, m)
	if m.advisory = c.isAdvisory(m.Kind, m.Name); m.advisory {
		inc.advisory++
	}
	if m.local = c.isLocal(m.Kind, m.Name); m.local {
		inc.local++
	}
	inc.noteFailed(m)
	inc.tally(m, 1)
	inc.expiresBy(m)
	if m.Flapping {
		inc.flappers = append(inc.flappers, m)
	}
	if newService = inc.services[m.Service] == 0; newService {
		fileUnder(c.byService, m.Service, inc)
	}
	inc.services[m.Service]++
	c.countPeers(inc, m, 1)
	if inc.names[m.Name]++; inc.recent && inc.names[m.Name] == 1 && m.Kind == SignalAlert && *c.cfg.AlertStorms {
		c.file(inc, burstKey{name: m.Name, group: inc.group})
	}
	if m.FirstSeen.After(inc.arrived[m.Service]) {
		inc.arrived[m.Service] = m.FirstSeen
		c.noteArrival(inc, m.Service, m.FirstSeen)
	}
	return newService
}

// arrival is a new member's first firing in an incident (spreadingNow).
type arrival struct {
	inc     *incident
	service string
	at      time.Time
}

// noteArrival files inc's new member on service, first seen at, for the
// signals the catalog cannot place, in time order (most come in order,
// and go at the end); the arrivals older than GroupWindow and
// UnplacedWindow before the latest event time (arrivalsCut) go from the
// front, as a restore leaves them out, and spreadingNow looks at none
// older. Past twice what the last pruning kept, the superseded ones go
// too.
func (c *Correlator) noteArrival(inc *incident, service string, at time.Time) {
	if c.cat == nil || !*c.cfg.UnplacedSignals || c.restoring {
		return
	}
	if _, placed := c.topo.index[service]; !placed {
		return // joined by time alone: no sign of the failure spreading
	}
	c.arrivals, _ = fileTimed(c.arrivals, arrival{inc, service, at}, func(a arrival) time.Time { return a.at }, c.arrivalsCut())
	if len(c.arrivals) > 2*c.kept+64 {
		c.arrivals = slices.DeleteFunc(c.arrivals, func(a arrival) bool { return !c.live(a) })
		c.kept = len(c.arrivals)
	}
}

// fileArrivals files the arrivals of every incident in memory afresh,
// in time order (a restored snapshot: the same list live kept, as far
// as spreadingNow can tell).
func (c *Correlator) fileArrivals() {
	c.arrivals, c.kept, c.unplaced, c.unplacedCount, c.keptUnplaced = nil, 0, nil, 0, 0
	if c.cat == nil || !*c.cfg.UnplacedSignals {
		return
	}
	cut := c.arrivalsCut()
	for _, inc := range c.incidents {
		if _, placed := c.topo.index[inc.root]; !placed && !inc.openedAt.Before(cut) {
			if c.unplaced == nil {
				c.unplaced = map[string][]*incident{}
			}
			c.unplaced[inc.group] = append(c.unplaced[inc.group], inc)
			c.unplacedCount++
		}
	}
	for _, list := range c.unplaced {
		slices.SortFunc(list, func(a, b *incident) int {
			return cmp.Or(a.openedAt.Compare(b.openedAt), strings.Compare(a.id, b.id))
		})
	}
	c.keptUnplaced = c.unplacedCount
	for _, inc := range c.incidents {
		for svc, at := range inc.arrived {
			if _, placed := c.topo.index[svc]; placed && !at.Before(cut) {
				c.arrivals = append(c.arrivals, arrival{inc, svc, at})
			}
		}
	}
	slices.SortFunc(c.arrivals, func(a, b arrival) int {
		return cmp.Or(a.at.Compare(b.at), strings.Compare(a.inc.id, b.inc.id), strings.Compare(a.service, b.service))
	})
	c.kept = len(c.arrivals)
}

// fileTimed files x in list, kept in the order of at (most come in
// order, and go at the end), and drops from the front what is before
// cut; it returns the list and how many it dropped.
func fileTimed[T any](list []T, x T, at func(T) time.Time, cut time.Time) ([]T, int) {
	t := at(x)
	i := len(list)
	for i > 0 && at(list[i-1]).After(t) {
		i--
	}
	list = slices.Insert(list, i, x)
	old := 0
	for old < len(list) && at(list[old]).Before(cut) {
		old++
	}
	clear(list[:old])
	return list[old:], old
}

// arrivalsCut is the oldest time an arrival or an unplaced incident is
// kept at: GroupWindow and UnplacedWindow before the latest event time.
// A signal may be minutes behind the latest (Alertmanager sends an alert
// once per group_interval, timed at its start); what is older a restore
// does not file, so live it is not looked at either.
func (c *Correlator) arrivalsCut() time.Time {
	return c.now.Add(-c.cfg.GroupWindow - c.cfg.UnplacedWindow)
}

// noteUnplaced files inc, just opened, when a signal the catalog cannot
// place opened it (adoptUnplaced). The incidents of its group opened
// before arrivalsCut go from the front; past twice what the last sweep
// kept, every group is swept of those and of the incidents gone.
func (c *Correlator) noteUnplaced(inc *incident) {
	if c.cat == nil || !*c.cfg.UnplacedSignals || c.restoring {
		return
	}
	if _, placed := c.topo.index[inc.root]; placed {
		return
	}
	if c.unplaced == nil {
		c.unplaced = map[string][]*incident{}
	}
	cut := c.arrivalsCut()
	list, dropped := fileTimed(c.unplaced[inc.group], inc, func(u *incident) time.Time { return u.openedAt }, cut)
	c.unplaced[inc.group] = list
	c.unplacedCount += 1 - dropped
	if c.unplacedCount > 2*c.keptUnplaced+64 {
		c.unplacedCount = 0
		for g, list := range c.unplaced {
			list = slices.DeleteFunc(list, func(u *incident) bool { return u.openedAt.Before(cut) || c.incidents[u.id] != u })
			if len(list) == 0 {
				delete(c.unplaced, g)
				continue
			}
			c.unplaced[g] = list
			c.unplacedCount += len(list)
		}
		c.keptUnplaced = c.unplacedCount
	}
}

// adoptUnplaced merges into inc, which s just joined or opened on a
// catalogued service, the incidents of its group that signals the
// catalog cannot place opened at most UnplacedWindow before or after s
// (Config.UnplacedSignals): a probe of a public URL that failed a few
// seconds before the service behind it alerted is that failure's, as it
// would have been had it come a few seconds after (spreadingNow), or
// been delivered after s.
func (c *Correlator) adoptUnplaced(inc *incident, s Signal, ups []Update) []Update {
	list := c.unplaced[inc.group]
	if len(list) == 0 {
		return ups
	}
	if _, placed := c.topo.index[s.Service]; !placed {
		return ups
	}
	from := s.Time.Add(-c.cfg.UnplacedWindow)
	if cut := c.arrivalsCut(); from.Before(cut) {
		from = cut
	}
	i, _ := slices.BinarySearchFunc(list, from, func(u *incident, t time.Time) int { return u.openedAt.Compare(t) })
	var pieces []*incident
	for ; i < len(list) && !list[i].openedAt.After(s.Time.Add(c.cfg.UnplacedWindow)); i++ {
		u := list[i]
		if u == inc || c.incidents[u.id] != u || u.storm || !c.takes(u, s) || c.apart(u, s) {
			continue
		}
		if _, placed := c.topo.index[u.root]; !placed {
			pieces = append(pieces, u)
		}
	}
	if len(pieces) == 0 {
		return ups
	}
	sortIncidents(pieces)
	for _, u := range pieces {
		ups = append(ups, c.merge(u, inc, s.Time, "it failed within "+c.cfg.UnplacedWindow.String()+" of "+s.Service+", and the catalog does not place "+u.root))
	}
	kept := slices.DeleteFunc(list, func(u *incident) bool { return c.incidents[u.id] != u })
	c.unplacedCount -= len(list) - len(kept)
	c.unplaced[inc.group] = kept
	return ups
}

// live reports whether a still tells when a's incident last took a new
// member on a's service: the incident is in memory, and no later member
// there (or a member leaving) moved its time.
func (c *Correlator) live(a arrival) bool {
	return c.incidents[a.inc.id] == a.inc && a.inc.arrived[a.service].Equal(a.at)
}

func describe(s Signal) string {
	switch s.Kind {
	case SignalAnomaly:
		return "an anomaly of " + s.Name
	default:
		return "alert " + s.Name
	}
}

// leave takes m out of its incident, which goes on without it (a new
// episode, a new start): the incident's arrived time on m's service is
// then that of the members left there, as a restored snapshot has it.
// (A merge and a forgotten incident detach every member: detachAll.)
func (c *Correlator) leave(m *member) {
	inc := m.inc
	c.detach(m)
	if inc == nil || inc.services[m.Service] == 0 || !inc.arrived[m.Service].Equal(m.FirstSeen) {
		return
	}
	var latest time.Time
	for _, x := range inc.members {
		if x.Service == m.Service && x.FirstSeen.After(latest) {
			latest = x.FirstSeen
		}
	}
	inc.arrived[m.Service] = latest
}

// detach takes m out of its incident (its fingerprint starts a new member).
func (c *Correlator) detach(m *member) {
	inc := m.inc
	if inc == nil {
		return
	}
	if i := slices.Index(inc.members, m); i >= 0 {
		inc.members = slices.Delete(inc.members, i, i+1)
	}
	c.unindex(inc, m)
}

// detachAll detaches every member of inc at once (forget, merge): one by
// one, each would search and shift the rest, quadratic in a storm's
// incident of a hundred thousand members.
func (c *Correlator) detachAll(inc *incident) {
	members := inc.members
	inc.members, inc.flappers = nil, nil
	for _, m := range members {
		c.unindex(inc, m)
	}
}

// unindex takes m, a member leaving inc, out of inc's tallies and the
// correlator's indexes.
func (c *Correlator) unindex(inc *incident, m *member) {
	m.inc = nil
	inc.tally(m, -1)
	if m.Flapping {
		inc.dropFlapper(m)
	}
	if m.advisory {
		inc.advisory--
	}
	if m.local {
		inc.local--
	}
	if inc.names[m.Name]--; inc.names[m.Name] <= 0 {
		delete(inc.names, m.Name)
	}
	c.countPeers(inc, m, -1)
	if inc.services[m.Service]--; inc.services[m.Service] <= 0 {
		delete(inc.services, m.Service)
		delete(inc.arrived, m.Service)
		takeOut(c.byService, m.Service, inc)
	}
	if c.members[m.Fingerprint] == m {
		delete(c.members, m.Fingerprint)
		c.bytes -= m.size
	}
}

// reopen turns a resolved incident back to open; the caller publishes
// the reopening once it applied s. On its timeline the reopening comes
// after the resolution it undoes, also when a person's clock, which timed
// that, ran ahead of event time.
func (c *Correlator) reopen(inc *incident, s Signal) {
	inc.status = StatusOpen
	inc.resolvedAt, inc.resolvedEvent = time.Time{}, time.Time{}
	inc.acknowledgedAt = time.Time{}
	inc.acknowledgedBy, inc.resolvedBy = "", ""
	inc.reopens++
	c.stats.Reopened++
	inc.since = latest(s.Time, inc.since)
	inc.note(inc.since, fmt.Sprintf(reopenedNote+"%s on %s", describe(s), s.Service))
}

// reopenedNote begins a reopening's timeline entry, which a checkpoint
// from before incident.since was kept tells it by.
const reopenedNote = "reopened by "

// change records a change and links it to the open incidents it may have
// caused: those with the service itself or a dependent at most DownDepth
// hops above it, opened within ChangeWindow after it. An open incident
// with a member on the service notes a change made while it was under
// way on its timeline (what changed during an incident is what its
// responders ask first) without linking it: it came after the failure.
func (c *Correlator) change(s Signal) {
	// Its type and description were cut with every signal's name and
	// summary; the rest is cut as well: the version and author come back
	// in a root cause's reason and in the timeline, and a change of a
	// few hundred kilobytes linked to an incident made every event of it
	// too large to publish, its resolution too.
	ch := Change{EventID: s.EventID, Service: s.Service, Type: s.Name, Version: cutText(s.Version), Author: cutText(s.Author),
		Commit: cutText(s.Commit), URL: cutText(s.URL), Description: s.Summary, Time: s.Time}
	for _, x := range c.changes[s.Service] {
		if ch.EventID != "" && ch.same(x) {
			return // delivered again: known already, linked and noted once
		}
	}
	c.stats.Changes++
	if _, known := c.changes[s.Service]; !known && len(c.changes) >= maxChangeServices {
		c.forgetOldestChanges()
	}
	list := append(c.changes[s.Service], ch)
	if len(list) > maxChangesPerService {
		list = list[len(list)-maxChangesPerService:]
	}
	c.changes[s.Service] = list
	for _, inc := range c.incidents {
		if inc.status == StatusResolved {
			continue
		}
		if s.Time.After(inc.openedAt) {
			if inc.services[s.Service] > 0 && inc.noteDuring(ch) {
				inc.dirty = true
				c.reschedule(inc)
			}
			continue
		}
		if inc.openedAt.Sub(s.Time) > c.cfg.ChangeWindow {
			continue
		}
		for svc := range inc.services {
			if hops := c.topo.hops(svc, s.Service); svc == s.Service || hops > 0 && hops <= c.cfg.DownDepth {
				inc.link(ch)
				c.reschedule(inc)
				break
			}
		}
	}
}

// stale tells an event that is old news for m: observed before the
// latest one applied (delivered again, or late: a firing after its own
// resolution, an episode's update after its close), or, observed at the
// same moment (or with no observed time), one whose own time is before
// m's latest. An event observed later is news whatever its own time:
// Alertmanager resolves an alert that Prometheus stopped refreshing (a
// restart), then sends it firing again with its old startsAt once the
// refresh comes; a producer that times its firings by their arrival
// resolves them with an end before the last one's arrival. (A resolution
// of an earlier firing delivered after a later one, which only
// reordered deliveries make, is then taken: the next resend of what
// fires fires it again.)
func (m *member) stale(s Signal) bool {
	if s.Observed.IsZero() || m.observed.IsZero() || s.Observed.Equal(m.observed) {
		return s.Time.Before(m.LastSeen)
	}
	return s.Observed.Before(m.observed)
}

// maxChangesPerService bounds the changes remembered per service, and
// maxChangeServices the services whose changes are remembered (twice the
// catalog's bound: the catalogued ones and as many others); beyond it the
// service whose last change taken is the oldest is forgotten. Changes no
// signal can link any more are forgotten besides (forgetOldChanges).
const (
	maxChangesPerService = 32
	maxChangeServices    = 2 * MaxCatalogServices
)

// MaxAhead is how far ahead of the wall clock the watermark may run: the
// correlator service takes an event timed up to that far ahead of its
// clock (ingest's max_event_future, 1 hour by default), and the signals on
// time then trail the watermark by as much.
const MaxAhead = time.Hour

// forgetOldestChanges forgets the changes of the service whose last
// change taken is the oldest (maxChangeServices).
func (c *Correlator) forgetOldestChanges() {
	var (
		oldest string
		at     time.Time
		found  bool
	)
	for svc, list := range c.changes {
		if len(list) == 0 {
			oldest = svc // (a snapshot's)
			break
		}
		last := list[len(list)-1].Time
		if !found || last.Before(at) || last.Equal(at) && svc < oldest {
			oldest, at, found = svc, last, true
		}
	}
	delete(c.changes, oldest)
}

// forgetOldChanges forgets the changes no signal can link any more:
// timed more than ChangeWindow before the watermark less MaxAhead and
// ReopenWindow (a signal on time trails a watermark an event timed ahead
// moved on by up to MaxAhead; one later still, already taken for old news
// by much else, finds its changes forgotten), unless within ChangeWindow
// before the opening of an incident held (one held for days still links a
// change made before it opened to a service that joins it). Counted per
// service only (maxChangesPerService), a month of deploys kept the latest
// 32 of every service that ever deployed, weeks old.
func (c *Correlator) forgetOldChanges() {
	recent := c.now.Add(-MaxAhead - c.cfg.ReopenWindow - c.cfg.ChangeWindow)
	var openings []time.Time // of the incidents held that opened before recent's window
	for _, inc := range c.incidents {
		if inc.openedAt.Before(recent.Add(c.cfg.ChangeWindow)) {
			openings = append(openings, inc.openedAt)
		}
	}
	slices.SortFunc(openings, time.Time.Compare)
	linkable := func(ch Change) bool {
		if !ch.Time.Before(recent) {
			return true
		}
		// The first opening at or after the change.
		i, _ := slices.BinarySearchFunc(openings, ch.Time, time.Time.Compare)
		return i < len(openings) && openings[i].Sub(ch.Time) <= c.cfg.ChangeWindow
	}
	for svc, list := range c.changes {
		list = slices.DeleteFunc(list, func(ch Change) bool { return !linkable(ch) })
		if len(list) == 0 {
			delete(c.changes, svc)
		} else {
			c.changes[svc] = list
		}
	}
}

// linkChanges links the recent changes to service and to what it depends
// on (at most DownDepth hops down: a front end depends on nearly everything)
// that happened within ChangeWindow before inc opened.
func (c *Correlator) linkChanges(inc *incident, service string) {
	consider := func(svc string) {
		for _, ch := range c.changes[svc] {
			if !ch.Time.After(inc.openedAt) && inc.openedAt.Sub(ch.Time) <= c.cfg.ChangeWindow {
				inc.link(ch)
			}
		}
	}
	consider(service)
	if i, ok := c.topo.index[service]; ok {
		for j, hops := range c.topo.below[i] {
			if hops > 0 && int(hops) <= c.cfg.DownDepth {
				consider(c.topo.names[j])
			}
		}
	}
}

// noteDuring notes on inc's timeline ch, a change made while inc was under
// way to one of its services, once, and at most maxDuringNotes changes an
// incident (a config pushed every minute must not push its joins and
// merges off the timeline). It reports whether it noted it.
func (inc *incident) noteDuring(ch Change) bool {
	what := fmt.Sprintf("%s%s of %s %s by %s", duringPrefix, ch.Type, ch.Service, orDash(ch.Version), orDash(ch.Author))
	n := 0
	for _, e := range inc.timeline {
		if e.What == what && e.Time.Equal(ch.Time) {
			return false
		}
		if strings.HasPrefix(e.What, duringPrefix) {
			n++
		}
	}
	if n >= maxDuringNotes {
		return false
	}
	inc.note(ch.Time, what)
	return true
}

const (
	duringPrefix   = "change during the incident: "
	maxDuringNotes = 20
)

// noteChangesDuring notes the changes to service made after inc opened
// (at most ChangeWindow before now): service just joined inc, so what
// changed on it while inc was under way is inc's story too.
func (c *Correlator) noteChangesDuring(inc *incident, service string) {
	for _, ch := range c.changes[service] {
		if ch.Time.After(inc.openedAt) && !ch.Time.After(c.now) && c.now.Sub(ch.Time) <= c.cfg.ChangeWindow {
			inc.noteDuring(ch)
		}
	}
}

func (inc *incident) link(ch Change) {
	for _, x := range inc.changes {
		if ch.same(x) {
			return
		}
	}
	// At most maxChangesPerService of one service, as the correlator
	// remembers them: a flood of changes timed before the opening (a
	// deploy history sent again, a hostile producer) keeps the latest.
	oldest, n := -1, 0
	for i, x := range inc.changes {
		if x.Service != ch.Service {
			continue
		}
		n++
		if oldest < 0 || x.Time.Before(inc.changes[oldest].Time) {
			oldest = i
		}
	}
	if n >= maxChangesPerService {
		if !ch.Time.After(inc.changes[oldest].Time) {
			return
		}
		inc.changes = slices.Delete(inc.changes, oldest, oldest+1)
	}
	inc.changes = append(inc.changes, ch)
	inc.note(ch.Time, fmt.Sprintf("change linked: %s of %s %s by %s", ch.Type, ch.Service, orDash(ch.Version), orDash(ch.Author)))
	inc.dirty = true
}

const maxTimeline = 200

// note adds an entry at t in time order: a change or signal delivered late
// goes where it happened, after the entries of its own time (almost always
// the last place, so the scan is short). The opening stays first, before
// what happened earlier (the changes linked to it), as the timeline's
// headline and among the entries a trim keeps.
func (inc *incident) note(t time.Time, what string) {
	i := len(inc.timeline)
	for i > 1 && inc.timeline[i-1].Time.After(t) {
		i--
	}
	inc.timeline = slices.Insert(inc.timeline, i, Entry{Time: t, What: what})
	grown := timelineBytes(inc.timeline[i : i+1])
	if n := len(inc.timeline); n > maxTimeline {
		// Keep the opening and the most recent entries.
		grown -= timelineBytes(inc.timeline[10 : n-(maxTimeline-10)])
		inc.timeline = append(inc.timeline[:10], inc.timeline[n-(maxTimeline-10):]...)
	}
	inc.size += grown
	if inc.acct != nil {
		*inc.acct += grown
	}
}

// Advance moves the watermark to t (never back) and returns what time
// alone does: incidents whose quiet period ended resolve, members stop
// flapping, held updates are published once UpdateInterval passed, and
// incidents resolved (or merged) beyond ReopenWindow are forgotten.
func (c *Correlator) Advance(t time.Time) []Update {
	if t.After(c.now) {
		// Once every change_window of event time, on its boundaries (a
		// restored correlator sweeps where it would have without the
		// restart).
		w := max(c.cfg.ChangeWindow, time.Minute)
		sweep := !c.now.IsZero() && t.Truncate(w).After(c.now.Truncate(w))
		// The series waiting in vain, once a minute on its boundaries
		// too: a sweep at another time forgets others, which a late
		// signal could still have placed.
		forget := t.Truncate(time.Minute).After(c.now.Truncate(time.Minute))
		c.now = t
		if sweep {
			c.forgetOldChanges()
		}
		if forget {
			c.forgetWaiting(t)
		}
	}
	now := c.now
	c.ageMerges(now)
	c.ageEnds(now)
	if len(c.recent) > 0 {
		c.pruneRecent()
	}
	due := c.popDue(now)
	if len(due) == 0 {
		return nil
	}
	sortIncidents(due)
	var ups []Update
	for _, inc := range due {
		ups = c.lapse(inc, now, ups)
	}
	for _, inc := range due {
		if c.incidents[inc.id] == inc {
			c.reschedule(inc)
		}
	}
	return ups
}

// lapse applies to inc what time alone does by now, appending its events
// to ups.
func (c *Correlator) lapse(inc *incident, now time.Time, ups []Update) []Update {
	if inc.status == StatusResolved {
		if now.Sub(inc.resolvedEvent) > c.cfg.ReopenWindow {
			c.forget(inc)
		}
		return ups
	}
	c.calm(inc, now)
	ended := c.endExpired(inc, now)
	if ups, expired := c.expire(inc, now, ups); expired {
		return ups
	}
	// A flapping member holds the resolution too, as it holds updates: a
	// resolution and a reopening each cycle are the pages flapping must
	// not make. Once it calms, the incident resolves as of its last signal.
	if quiet := c.quietOf(inc); inc.firing == 0 && len(inc.flappers) == 0 && now.Sub(inc.quietSince()) >= quiet {
		inc.status = StatusResolved
		// Its reopen window runs from its last signal, or, when expiries
		// ended its last alerts just now, from when they were taken as
		// ended: resolved as of an expiry expiryGrace ago, it would
		// otherwise reopen only within ReopenWindow less that of the
		// resolution going out, or never past a long duplicate window.
		inc.resolvedAt, inc.resolvedEvent = inc.lastSignal, latest(inc.lastSignal, ended)
		c.stats.Resolved++
		at := inc.quietSince().Add(quiet)
		if inc.episodes > 0 {
			inc.note(at, fmt.Sprintf("resolved: nothing came for %s, with %d anomaly episodes not closed", quiet, inc.episodes))
		} else {
			inc.note(at, fmt.Sprintf("resolved: every member resolved %s ago", quiet))
		}
		return append(ups, c.publish(inc, Resolved, at))
	}
	if inc.dirty && len(inc.flappers) == 0 && !now.Before(c.updateDue(inc)) {
		ups = append(ups, c.publish(inc, Updated, now))
	}
	return ups
}

// updateDue is when inc's held changes may be published: UpdateInterval
// after its last event, or at once when only its opening went out and
// the root moved since. The opening is what its first signal made it,
// and a notifier pages with the latest state group_wait after it:
// Alertmanager's default group_wait is UpdateInterval's 30 s, so the
// symptom's team was paged when the root's alert came seconds later.
func (c *Correlator) updateDue(inc *incident) time.Time {
	if inc.revision == 1 && inc.openedRoot != "" && inc.root != inc.openedRoot {
		return inc.lastPublished
	}
	return inc.lastPublished.Add(c.cfg.UpdateInterval)
}

// expire resolves inc once nothing of it was heard for Config.AlertExpiry
// while its alerts fire (their resolution was lost), as of then: its
// alerts are taken as resolved at that time, so that a delivery of what
// was heard before is old news (stale), and a resend after it fires
// again, reopening inc within ReopenWindow. It reports whether it did.
func (c *Correlator) expire(inc *incident, now time.Time, ups []Update) ([]Update, bool) {
	if c.cfg.AlertExpiry <= 0 || inc.firing == 0 || len(inc.flappers) > 0 || inc.lastHeard.IsZero() || now.Sub(inc.lastHeard) < c.cfg.AlertExpiry {
		return ups, false
	}
	at := inc.lastHeard.Add(c.cfg.AlertExpiry)
	n := 0
	for _, m := range inc.members {
		if m.Kind != SignalAlert || !m.Firing {
			continue
		}
		inc.tally(m, -1)
		m.Firing = false
		inc.tally(m, 1)
		inc.endedAt(m, at)
		n++
	}
	inc.status = StatusResolved
	inc.resolvedAt, inc.resolvedEvent = at, at
	c.stats.Resolved++
	inc.note(at, fmt.Sprintf("resolved: nothing of it heard for %s while %d alerts fired (alert_expiry): taken as resolved", c.cfg.AlertExpiry, n))
	return append(ups, c.publish(inc, Resolved, at)), true
}

// expiresBy lowers inc.expiresNext to m's expiry, when m is a firing
// alert that expires.
func (inc *incident) expiresBy(m *member) {
	if m.Firing && m.Kind == SignalAlert && !m.Expires.IsZero() && (inc.expiresNext.IsZero() || m.Expires.Before(inc.expiresNext)) {
		inc.expiresNext = m.Expires
	}
}

// endExpired resolves inc's firing alerts whose expiry (Member.Expires)
// passed expiryGrace ago with no later report, as of their expiry: as
// Alertmanager resolves a posted alert that is not sent again by its
// endsAt (Prometheus gone, its rule deleted), which would otherwise fire
// for ever. A resend after it fires the alert again. It returns when the
// last of the alerts it ended was due to end (its expiry and the grace),
// zero when it ended none.
func (c *Correlator) endExpired(inc *incident, now time.Time) (ended time.Time) {
	if inc.expiresNext.IsZero() || now.Before(inc.expiresNext.Add(c.expiryGrace())) {
		return ended
	}
	var next time.Time
	var expired []*member
	for _, m := range inc.members {
		switch {
		case !m.Firing || m.Kind != SignalAlert || m.Expires.IsZero():
		case now.Before(m.Expires.Add(c.expiryGrace())):
			if next.IsZero() || m.Expires.Before(next) {
				next = m.Expires
			}
		default:
			expired = append(expired, m)
		}
	}
	inc.expiresNext = next
	// The members' order differs after a restore: the timeline's must not.
	slices.SortFunc(expired, func(a, b *member) int {
		return cmp.Or(a.Expires.Compare(b.Expires), cmp.Compare(a.Fingerprint, b.Fingerprint))
	})
	for _, m := range expired {
		at := m.Expires
		ended = latest(ended, at.Add(c.expiryGrace()))
		inc.tally(m, -1)
		m.Firing, m.Expires = false, time.Time{}
		inc.tally(m, 1)
		inc.endedAt(m, at)
		inc.signalled(at, at)
		inc.note(at, fmt.Sprintf("%s on %s resolved: not sent again by %s, when its sender said it ends unless sent again", m.Name, m.Service, at.UTC().Format(time.RFC3339)))
		c.flip(m, at)
		if !m.Flapping {
			inc.dirty = true
		}
	}
	return ended
}

// endedAt records m, a firing alert of inc taken as resolved at at (its
// resolution lost), as its resolution then would: what was heard before
// is old news, and it was last seen then (a notifier's end of a member
// not firing; its resends kept their startsAt).
func (inc *incident) endedAt(m *member, at time.Time) {
	if at.After(m.observed) {
		m.observed = at
	}
	if at.After(m.LastSeen) {
		m.LastSeen = at
		inc.noteFailed(m)
	}
}

// expiryGrace is how long after its expiry an alert not reported again
// is resolved (endExpired): its resends may go unheard for
// Config.ResendGap, and event time may run ahead of the clock that set
// the expiry by up to MaxAheadOfObserved. An alert still firing must not
// resolve because its resends were dropped as duplicates or a producer's
// clock is fast.
func (c *Correlator) expiryGrace() time.Duration { return c.cfg.ResendGap + MaxAheadOfObserved }

// signalled records a signal of inc timed at, which came at the
// watermark now.
func (inc *incident) signalled(at, now time.Time) {
	inc.lastSignal = latest(inc.lastSignal, at)
	inc.lastArrival = latest(inc.lastArrival, now)
}

// quietSince is when inc's quiet began: its last signal, or, when that
// came later than its time (lastArrival), then.
func (inc *incident) quietSince() time.Time { return latest(inc.lastSignal, inc.lastArrival) }

// quietOf is how long inc must be without a signal to resolve once no
// alert of it fires: QuietPeriod, or, while an anomaly episode of it is
// open, openEpisodeQuiet quiet periods: the detector updates a long
// episode only every few minutes and closes it when it ends, and a
// close lost must not keep the incident open for ever.
func (c *Correlator) quietOf(inc *incident) time.Duration {
	if inc.episodes > 0 {
		return openEpisodeQuiet * c.cfg.QuietPeriod
	}
	return c.cfg.QuietPeriod
}

// openEpisodeQuiet: see quietOf.
const openEpisodeQuiet = 3

// dueOf is when time alone next changes inc (zero: never).
func (c *Correlator) dueOf(inc *incident) time.Time {
	if inc.status == StatusResolved {
		return inc.resolvedEvent.Add(c.cfg.ReopenWindow + time.Nanosecond)
	}
	var due time.Time
	earlier := func(t time.Time) {
		if due.IsZero() || t.Before(due) {
			due = t
		}
	}
	if inc.firing == 0 && len(inc.flappers) == 0 {
		earlier(inc.quietSince().Add(c.quietOf(inc)))
	}
	if c.cfg.AlertExpiry > 0 && inc.firing > 0 {
		earlier(inc.lastHeard.Add(c.cfg.AlertExpiry))
	}
	if !inc.expiresNext.IsZero() && inc.firing > 0 {
		earlier(inc.expiresNext.Add(c.expiryGrace()))
	}
	if inc.dirty && len(inc.flappers) == 0 {
		earlier(c.updateDue(inc))
	}
	for _, m := range inc.flappers {
		if len(m.flips) > 0 {
			earlier(m.flips[0].Add(c.cfg.FlapWindow))
		}
	}
	return due
}

// schedule reschedules the incident of fingerprint fp.
func (c *Correlator) schedule(fp string) {
	if m, ok := c.members[fp]; ok && m.inc != nil {
		c.reschedule(m.inc)
	}
}

// calm ends the flapping of members with fewer than FlapStop changes in
// the window.
func (c *Correlator) calm(inc *incident, now time.Time) {
	var calmed []*member
	still := inc.flappers[:0]
	for _, m := range inc.flappers {
		m.flips = trimBefore(m.flips, now.Add(-c.cfg.FlapWindow))
		if len(m.flips) >= c.cfg.FlapStop {
			still = append(still, m)
			continue
		}
		m.Flapping = false
		calmed = append(calmed, m)
	}
	clear(inc.flappers[len(still):])
	inc.flappers = still
	// The flappers' order differs after a restore: the timeline's must not.
	sort.Slice(calmed, func(i, j int) bool { return calmed[i].Fingerprint < calmed[j].Fingerprint })
	for _, m := range calmed {
		inc.note(now, fmt.Sprintf("%s on %s stopped flapping", m.Name, m.Service))
		inc.dirty = true
	}
}

// dropFlapper takes m off inc's flapping members.
func (inc *incident) dropFlapper(m *member) {
	for i, x := range inc.flappers {
		if x == m {
			inc.flappers = append(inc.flappers[:i], inc.flappers[i+1:]...)
			return
		}
	}
}

// sortedIncidents orders incidents by opening time, then id, so that the
// events of one Advance come out the same in replay and live.
func (c *Correlator) sortedIncidents() []*incident {
	out := make([]*incident, 0, len(c.incidents))
	for _, inc := range c.incidents {
		out = append(out, inc)
	}
	sortIncidents(out)
	return out
}

// sameMonth reports whether a and b fall in one calendar month in every
// time zone (UTC-12 to UTC+14). An incident's opening moves back to a
// merged one's only then: ClickHouse keeps each incident's states in the
// partition of the month it opened (toYYYYMM(opened_at), in the server's
// zone), and a state in another partition than the incident's first is a
// second row wherever a query's condition on opened_at leaves the newer
// row's partition out (partition pruning, before FINAL collapses rows).
// Merges join openings minutes apart, so only incidents merged within a
// day of a month's first midnight keep the later opening.
func sameMonth(a, b time.Time) bool {
	month := func(t time.Time) (int, time.Month) {
		y, m, _ := t.UTC().Date()
		return y, m
	}
	// The month's first midnight in every zone lies within 14 hours before
	// and 12 after the UTC one: both times after the latest of a month's
	// and before the earliest of the next.
	y, m := month(a.Add(14 * time.Hour))
	for _, t := range []time.Time{b.Add(14 * time.Hour), a.Add(-12 * time.Hour), b.Add(-12 * time.Hour)} {
		if yt, mt := month(t); yt != y || mt != m {
			return false
		}
	}
	return true
}

// sortIncidents orders incidents by opening time, then id.
func sortIncidents(out []*incident) {
	slices.SortFunc(out, func(a, b *incident) int {
		if c := a.openedAt.Compare(b.openedAt); c != 0 {
			return c
		}
		return strings.Compare(a.id, b.id)
	})
}

// incidentBefore reports whether a comes before b in sortIncidents' order.
func incidentBefore(a, b *incident) bool {
	if !a.openedAt.Equal(b.openedAt) {
		return a.openedAt.Before(b.openedAt)
	}
	return a.id < b.id
}

// listed is c.listing, rebuilt if it must be, without the incidents
// forgotten since (for reading only: it is c's).
func (c *Correlator) listed() []*incident {
	if !c.listingOK {
		c.listing = append(c.listing[:0], c.sortedIncidents()...)
		c.listingGone, c.listingOK = 0, true
	} else if c.listingGone > 0 {
		c.compactListing()
	}
	return c.listing
}

// compactListing drops the forgotten incidents from c.listing.
func (c *Correlator) compactListing() {
	c.listing = slices.DeleteFunc(c.listing, func(inc *incident) bool { return c.incidents[inc.id] != inc })
	c.listingGone = 0
}

// newID derives the id of the incident s opens from s, so that a replay,
// and the signal redelivered after a restart, give the same one; one
// already given (an incident in memory, merged, or retired) is derived
// again with a count.
func (c *Correlator) newID(s Signal) string {
	at := s.Time.UTC().Format(time.RFC3339Nano)
	parts := []string{s.Fingerprint, at}
	if c.partition != "" {
		parts = append(parts, c.partition) // Partitioned
	}
	id := event.DerivedID(s.Time, append([]string{"incident"}, parts...)...)
	for n := 2; c.given(id); n++ {
		id = event.DerivedID(s.Time, append(append([]string{"incident"}, parts...), strconv.Itoa(n))...)
	}
	return id
}

// Given tells whether id names an incident this state gave: one in
// memory, one merged within ReopenWindow, or one retired (forgotten, at
// most MaxRetired of them). An incident event of an id not given was made
// by a later state (a checkpoint's outbox saved after its state).
func (c *Correlator) Given(id string) bool { return c.given(id) }

// Retire takes ids as incidents given and forgotten (Given), never given
// again: an earlier partition layout's, let go of by another correlator,
// whose events this one sends.
func (c *Correlator) Retire(ids ...string) {
	for _, id := range ids {
		c.retire(id)
	}
}

// given tells whether id names an incident in memory, one merged within
// ReopenWindow, or one retired.
func (c *Correlator) given(id string) bool {
	_, open := c.incidents[id]
	_, merged := c.merged[id]
	_, retired := c.retiredSet[id]
	return open || merged || retired
}

// retire keeps id from being given again (Correlator.retired).
func (c *Correlator) retire(id string) {
	if c.retiredSet == nil {
		c.retiredSet = map[string]struct{}{}
	}
	if _, ok := c.retiredSet[id]; ok {
		return
	}
	if len(c.retired) >= MaxRetired {
		// Every incident forgotten comes here: dropping the oldest is
		// a reslice, not a copy of the rest (append reallocates).
		delete(c.retiredSet, c.retired[0])
		c.retired[0] = ""
		c.retired = c.retired[1:]
	}
	c.retired = append(c.retired, id)
	c.retiredSet[id] = struct{}{}
}

// forget drops a resolved incident and its members from memory: their
// fingerprints start afresh.
func (c *Correlator) forget(inc *incident) {
	c.retire(inc.id)
	c.detachAll(inc)
	takeOut(c.byRoot, inc.root, inc)
	if c.incidents[inc.id] == inc {
		c.bytes -= incidentBytes + inc.size
		inc.acct = nil
	}
	delete(c.incidents, inc.id)
	if c.listingGone++; c.listingGone > len(c.listing)/2 {
		c.compactListing() // bounded however long no list comes
	}
	delete(c.storms, inc)
	if inc.recent {
		c.leaveRecent(inc)
	}
	inc.dueAt = time.Time{}
}

// evict keeps the members in memory and the anomalies waiting under
// MaxFingerprints, and the estimate of what they and the incidents take
// under MaxStateBytes (StateBytes), by forgetting the incidents resolved
// longest ago, then the oldest open ones: the waiting, at most a
// sixteenth of either (roomToWait), make room as members do. Past a
// bound it forgets down to a sixty-fourth under it, in one sorted pass
// over the incidents: forgetting one incident a signal, each
// a scan of them all, made a full memory of one-member incidents take
// 2,600 signals/s (BenchmarkNewFingerprintsAtTheBound). keep, the
// incident the signal just joined or opened, goes last, and only when
// the others forgotten still leave memory over the bound (the low-water
// mark would otherwise take a storm's incident holding most of memory,
// firing, or one just opened, whose opening is then published).
func (c *Correlator) evict(keep *incident) {
	held := func() int { return len(c.members) + len(c.waiting.series) }
	byCount, byBytes := held() > c.cfg.MaxFingerprints, c.StateBytes() > c.cfg.MaxStateBytes
	if !byCount && !byBytes {
		return
	}
	limit := fmt.Sprintf("max_fingerprints %d", c.cfg.MaxFingerprints)
	if byBytes {
		limit = fmt.Sprintf("max_state_bytes %d", c.cfg.MaxStateBytes)
	}
	targetCount := c.cfg.MaxFingerprints - c.cfg.MaxFingerprints/64
	targetBytes := c.cfg.MaxStateBytes - c.cfg.MaxStateBytes/64
	order := make([]*incident, 0, len(c.incidents))
	for _, inc := range c.incidents {
		if inc != keep {
			order = append(order, inc)
		}
	}
	slices.SortFunc(order, func(a, b *incident) int {
		if ar, br := a.status == StatusResolved, b.status == StatusResolved; ar != br {
			if ar {
				return -1
			}
			return 1
		}
		if n := a.lastSignal.Compare(b.lastSignal); n != 0 {
			return n
		}
		return strings.Compare(a.id, b.id)
	})
	for _, oldest := range order {
		if (!byCount || held() <= targetCount) && (!byBytes || c.StateBytes() <= targetBytes) {
			return
		}
		c.evictOne(oldest, limit)
	}
	// One being opened (nothing published yet) stays: it holds one
	// member, and forgotten before its opening went out it would stay
	// open downstream for ever.
	full := held() > c.cfg.MaxFingerprints || c.StateBytes() > c.cfg.MaxStateBytes
	if keep != nil && full && keep.revision > 0 && c.incidents[keep.id] == keep {
		c.evictOne(keep, limit)
	}
}

// evictOne forgets inc to make room (evict), publishing its resolution
// when its last event said open; limit names the bound that was passed.
func (c *Correlator) evictOne(inc *incident, limit string) {
	if inc.status != StatusResolved && inc.revision > 0 {
		// Its last event said open: the stores and the notifier would
		// keep it open for ever. (One being opened has published
		// nothing yet; it is evict's keep, never forced out.)
		inc.status, inc.resolvedAt, inc.resolvedEvent = StatusResolved, c.now, c.now
		c.stats.Resolved++
		inc.note(c.now, "resolved: forgotten, memory is full ("+limit+")")
		c.evicted = append(c.evicted, c.publish(inc, Resolved, c.now))
	}
	c.stats.Evicted += uint64(len(inc.members))
	c.forget(inc)
}

// Release resolves and forgets the incidents none of whose services keep
// takes, and returns the resolutions of those whose last event said open;
// why goes into their timelines. The series waiting on a service keep
// does not take are forgotten too. A partition whose catalog changed lets
// go of what another partition owns now: their signals go there, which
// opens its own incidents for what still fails, and nothing would end
// them here.
func (c *Correlator) Release(keep func(service string) bool, why string) []Update {
	var ups []Update
	for _, inc := range c.sortedIncidents() {
		if len(inc.services) == 0 || slices.ContainsFunc(slices.Collect(maps.Keys(inc.services)), keep) {
			continue
		}
		if inc.status != StatusResolved && inc.revision > 0 {
			inc.status, inc.resolvedAt, inc.resolvedEvent, inc.since = StatusResolved, c.now, c.now, c.now
			c.stats.Resolved++
			inc.note(c.now, "resolved: "+why)
			ups = append(ups, c.publish(inc, Resolved, c.now))
		}
		c.forget(inc)
	}
	for fp, w := range c.waiting.series {
		if !keep(w.First.Service) {
			c.waiting.drop(fp) // it goes on where its signals go now, not in vain
		}
	}
	return ups
}

// publish records that inc's state at t is being published. An incident's
// events are strictly ordered in time: a state timed at or before the last
// one published (a resolution at last signal + quiet period, after an
// update published later than that; two commands at one instant) is moved
// just after it, so whoever keeps the latest state by time (the incidents
// table, a notifier) keeps this one.
func (c *Correlator) publish(inc *incident, tr Transition, t time.Time) Update {
	inc.dirty = false
	inc.revision++
	if tr == Opened {
		inc.openedRoot = inc.root
	}
	if !inc.lastPublished.IsZero() && !t.After(inc.lastPublished) {
		t = inc.lastPublished.Add(time.Nanosecond)
	}
	inc.lastPublished = t
	return Update{Transition: tr, Time: t, State: c.state(inc, tr)}
}

// Command errors.
var (
	ErrUnknownIncident = errors.New("correlate: no such incident")
	ErrUnknownAction   = errors.New("correlate: unknown action")
	// ErrInvalidCommand: the command itself is wrong (a field missing or
	// too long), whatever the incident's state.
	ErrInvalidCommand = errors.New("correlate: invalid command")
	// ErrApplied: a command with this id was applied to the incident
	// already; Apply returns the incident's state and no event.
	ErrApplied = errors.New("correlate: command applied already")
	// ErrConflict: the incident's state does not take the command (an
	// acknowledgement of an incident not open, a resolution of one
	// resolved).
	ErrConflict = errors.New("correlate: the incident's state does not take the command")
)

// Validate says what is wrong with the command itself, whatever the
// incident's state (ErrInvalidCommand, or ErrUnknownAction): a field its
// action needs and was not given (blank counts as not given), one it
// takes no notice of (a resolution note sent as text would be lost
// unseen), one too long. The same rules hold for a command sent over
// NATS and one posted to the API.
func (cmd Command) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidCommand, fmt.Sprintf(format, args...))
	}
	switch cmd.Action {
	case "ack", "acknowledge", "resolve", "assign", "comment":
	default:
		return fmt.Errorf("%w %q: want ack, resolve, assign or comment", ErrUnknownAction, cmd.Action)
	}
	switch {
	case len(cmd.By) > MaxCommandName || len(cmd.Assignee) > MaxCommandName:
		return bad("by or assignee over %d bytes", MaxCommandName)
	case len(cmd.ID) > MaxCommandID:
		return bad("command id of %d bytes, at most %d", len(cmd.ID), MaxCommandID)
	case cmd.Action == "assign" && strings.TrimSpace(cmd.Assignee) == "":
		return bad("%s needs %q", cmd.Action, "assignee")
	case cmd.Action == "comment" && strings.TrimSpace(cmd.Text) == "":
		return bad("%s needs %q", cmd.Action, "text")
	case cmd.Action != "assign" && cmd.Assignee != "":
		return bad("%s takes no %q: assign does", cmd.Action, "assignee")
	case cmd.Action != "comment" && cmd.Text != "":
		return bad("%s takes no %q: comment does (a comment, then the %s)", cmd.Action, "text", cmd.Action)
	}
	return nil
}

// Command is what a person says to an incident.
type Command struct {
	IncidentID string `json:"incident_id"`
	Action     string `json:"action"` // ack, resolve, assign, comment
	By         string `json:"by"`
	Assignee   string `json:"assignee,omitempty"`
	Text       string `json:"text,omitempty"`
	// Time is when the person gave the command (the incidents API's
	// receipt, a NATS command's stream timestamp; zero: the event time):
	// what MTTA and MTTR are measured to. It times the acknowledgement,
	// the resolution, the comment and the timeline entry, never before
	// the incident's current state (its opening, its last reopening, an
	// acknowledgement: a clock behind, or a command published before
	// another and applied after it, is timed then). The incident event
	// the command makes is timed at the event time, as every other, and
	// the reopen window runs from the event time of a resolution: an
	// event-time replay, which holds no command, makes the same events
	// as the live run.
	Time time.Time `json:"time"`
	// ID, when set, makes the command apply once: one given again (a
	// redelivered NATS command, an API request retried with its
	// Idempotency-Key) is answered ErrApplied. An incident remembers the
	// ids of its last maxCommandIDs commands.
	ID string `json:"id,omitempty"`
}

// maxCommandIDs bounds the command ids an incident remembers: a retry
// comes within seconds or minutes, not after dozens of other commands.
const maxCommandIDs = 32

// MaxCommandID bounds a command id's length.
const MaxCommandID = 256

// Bounds on what a command adds to an incident, which every later event
// of it carries: a name (by, assignee) in bytes, a comment's text in
// bytes (longer ones are cut), and the comments kept (the newest).
const (
	MaxCommandName = 256
	MaxCommentText = 4096
	MaxComments    = 50
)

// keepNewest returns the last n of cs.
func keepNewest(cs []Comment, n int) []Comment {
	if len(cs) <= n {
		return cs
	}
	return append([]Comment(nil), cs[len(cs)-n:]...)
}

// Apply carries out a command and returns the incident event it causes.
// A command on an incident merged within ReopenWindow applies to the
// incident it went into (MergedInto): the page a person got named the
// merged one, and the failure goes on in the other. The event is then
// that incident's (its State.IncidentID is not cmd.IncidentID), and its
// timeline says which merged incident the command was given to.
func (c *Correlator) Apply(cmd Command) (Update, error) {
	if err := cmd.Validate(); err != nil {
		return Update{}, err
	}
	inc, ok := c.incidents[cmd.IncidentID]
	if ok {
		return c.apply(inc, cmd, "")
	}
	target, merged := c.MergedInto(cmd.IncidentID)
	if !merged {
		return Update{}, fmt.Errorf("%w: %s", ErrUnknownIncident, cmd.IncidentID)
	}
	if inc, ok = c.incidents[target]; !ok {
		return Update{}, fmt.Errorf("%w: %s was merged into %s, which is no longer in memory", ErrUnknownIncident, cmd.IncidentID, target)
	}
	u, err := c.apply(inc, cmd, cmd.IncidentID)
	if err != nil {
		return u, fmt.Errorf("%w (the command was given to %s, merged into it)", err, cmd.IncidentID)
	}
	return u, nil
}

// apply carries out cmd on inc; via is the merged incident the command
// was given to ("" when it was inc).
func (c *Correlator) apply(inc *incident, cmd Command, via string) (u Update, err error) {
	defer c.reschedule(inc)
	t := cmd.Time // when the person did it; c.now times the event
	if t.IsZero() {
		t = c.now
	}
	t = latest(t, inc.since)
	if cmd.ID != "" {
		if slices.Contains(inc.commands, cmd.ID) {
			return Update{Time: c.now, State: c.state(inc, "")}, fmt.Errorf("%w: %s to %s", ErrApplied, cmd.ID, inc.id)
		}
		defer func() {
			if err == nil {
				inc.rememberCommand(cmd.ID)
			}
		}()
	}
	who := cmd.By
	if who == "" {
		who = "someone"
	}
	by := who
	if via != "" {
		by = fmt.Sprintf("%s (%s of merged incident %s)", who, cmd.Action, via)
	}
	switch cmd.Action {
	case "ack", "acknowledge":
		if inc.status != StatusOpen {
			return Update{}, fmt.Errorf("%w: incident %s is %s, not open", ErrConflict, inc.id, inc.status)
		}
		inc.status, inc.acknowledgedAt, inc.acknowledgedBy, inc.since = StatusAcknowledged, t, who, t
		inc.note(t, "acknowledged by "+by)
		return c.publish(inc, Acknowledged, c.now), nil
	case "resolve":
		if inc.status == StatusResolved {
			return Update{}, fmt.Errorf("%w: incident %s is already resolved", ErrConflict, inc.id)
		}
		inc.status, inc.resolvedAt, inc.resolvedEvent, inc.resolvedBy, inc.since = StatusResolved, t, c.now, who, t
		c.stats.Resolved++
		inc.note(t, "resolved by "+by)
		return c.publish(inc, Resolved, c.now), nil
	case "assign":
		inc.assignee = cmd.Assignee
		inc.note(t, fmt.Sprintf("assigned to %s by %s", cmd.Assignee, by))
		return c.publish(inc, Updated, c.now), nil
	case "comment":
		inc.comments = keepNewest(append(inc.comments, Comment{By: who, Text: event.Prefix(cmd.Text, MaxCommentText), Time: t}), MaxComments)
		inc.note(t, "comment by "+by)
		return c.publish(inc, Updated, c.now), nil
	}
	return Update{}, fmt.Errorf("%w %q: want ack, resolve, assign or comment", ErrUnknownAction, cmd.Action)
}

// Incident returns the current state of incident id.
func (c *Correlator) Incident(id string) (State, bool) {
	inc, ok := c.incidents[id]
	if !ok {
		return State{}, false
	}
	return c.state(inc, ""), true
}

// Incidents returns the state of every incident in memory, oldest first.
func (c *Correlator) Incidents() []State {
	var out []State
	for _, inc := range c.sortedIncidents() {
		out = append(out, c.state(inc, ""))
	}
	return out
}

// IncidentFilter picks incidents by what the correlator knows of them
// without building their state (zero fields pick all).
type IncidentFilter struct {
	Status  string // open, acknowledged, resolved, or active (open or acknowledged)
	Service string // one of the incident's services
	// Team is the catalog team of the incident's first root-cause
	// candidate (State.Team), Severity the worst its members reported
	// (State.Severity); both are found without building the state.
	Team     string
	Severity event.Severity
	Since    time.Time // opened at or after
	Until    time.Time // opened at or before
	// Before, when set, picks only incidents listed after it: opened
	// earlier, or at the same time with a lower id (a list's next page).
	Before *ListPosition
}

// ListPosition is an incident's place in Listed's order: its opening,
// then its id.
type ListPosition struct {
	OpenedAt time.Time
	ID       string
}

// StatusActive is no incident's status but a filter's: the incidents open
// or acknowledged, what a person on call still has to deal with (open is
// only those nobody acknowledged yet).
const StatusActive = "active"

func (f IncidentFilter) picks(inc *incident) bool {
	_, has := inc.services[f.Service]
	if !has && f.Service != "" {
		for s := range inc.services { // whatever the case, as the catalog's names
			if has = strings.EqualFold(s, f.Service); has {
				break
			}
		}
	}
	status := f.Status == "" || inc.status == f.Status || (f.Status == StatusActive && inc.status != StatusResolved)
	before := f.Before == nil || inc.openedAt.Before(f.Before.OpenedAt) || (inc.openedAt.Equal(f.Before.OpenedAt) && inc.id < f.Before.ID)
	return status && before && (f.Service == "" || has) &&
		(f.Since.IsZero() || !inc.openedAt.Before(f.Since)) && (f.Until.IsZero() || !inc.openedAt.After(f.Until))
}

// Listed returns the states of the incidents in memory that f picks and
// keep (nil: all) keeps, the latest opened first, at most limit of them;
// truncated says more matched. Only the states looked at are built, in
// the order c.listing keeps (no sort), from where f.Before is; a team
// filter ranks the root causes only of the incidents that changed since
// it last looked (teamOf). Team and service match whatever the case.
func (c *Correlator) Listed(f IncidentFilter, keep func(State) bool, limit int) (out []State, truncated bool) {
	all := c.listed()
	end := len(all)
	if f.Before != nil { // a later page: start where the last one ended
		end, _ = slices.BinarySearchFunc(all, *f.Before, func(inc *incident, p ListPosition) int {
			if c := inc.openedAt.Compare(p.OpenedAt); c != 0 {
				return c
			}
			return strings.Compare(inc.id, p.ID)
		})
	}
	for i := end - 1; i >= 0; i-- {
		if !f.picks(all[i]) || f.Severity != "" && severityOf(all[i]) != f.Severity || f.Team != "" && !strings.EqualFold(c.teamOf(all[i]), f.Team) {
			continue
		}
		st := c.state(all[i], "")
		if keep != nil && !keep(st) {
			continue
		}
		if len(out) == limit {
			return out, true
		}
		out = append(out, st)
	}
	return out, false
}

// severityOf is the worst severity inc's members reported (State.Severity).
func severityOf(inc *incident) event.Severity {
	var worst event.Severity
	for _, m := range inc.members {
		if m.Severity.Rank() > worst.Rank() {
			worst = m.Severity
		}
	}
	return worst
}

// teamOf is the catalog team of inc's first root-cause candidate
// (State.Team), its lead service remembered until inc changes.
func (c *Correlator) teamOf(inc *incident) string {
	if c.cat == nil {
		return ""
	}
	key := leadKey{inc.revision, len(inc.members), len(inc.changes), inc.openedAt}
	if inc.dirty || inc.lead == "" || inc.leadOf != key {
		inc.lead, inc.leadOf = leadService(inc, c.rootCauses(inc)), key
	}
	return c.cat.Services[inc.lead].Team
}

// IncidentOf returns the incident that fingerprint fp belongs to.
func (c *Correlator) IncidentOf(fp string) (string, bool) {
	m, ok := c.members[fp]
	if !ok || m.inc == nil {
		return "", false
	}
	return m.inc.id, true
}

// spreadWindow is SpreadWindow, or BusySpreadWindow while more than
// BusyOpenings incidents opened within the hour before t: the more
// failures start, the likelier an unrelated one falls within a window of
// another, so nearness in time counts for less.
func (c *Correlator) spreadWindow(t time.Time) time.Duration {
	cut := t.Add(-time.Hour)
	n := 0
	for n < len(c.openings) && c.openings[n].Before(cut) {
		n++
	}
	if n > 0 {
		c.openings = append(c.openings[:0], c.openings[n:]...)
	}
	if len(c.openings) > c.cfg.BusyOpenings {
		return c.cfg.BusySpreadWindow
	}
	return c.cfg.SpreadWindow
}

// spreading reports whether inc's failure is reaching s's service now,
// past SpreadWindow: a new member joined inc on a direct dependency of
// the service (calls) at most FrontWindow before s, and inc opened at most
// FrontLimit before s. A cascade through a deep graph, or through rules
// that wait a `for:` of minutes at each hop, reaches its last services
// after SpreadWindow, one hop at a time.
func (c *Correlator) spreading(inc *incident, s Signal) bool {
	if c.cat == nil || s.Time.Sub(inc.openedAt) > c.cfg.FrontLimit {
		return false
	}
	for _, d := range c.calls(s.Service) {
		if t, ok := inc.arrived[d]; ok {
			if gap := s.Time.Sub(t); gap >= 0 && gap <= c.cfg.FrontWindow {
				return true
			}
		}
	}
	return false
}

// latest is the later of a and b.
func latest(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
