package correlate

import (
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/aiops-dev/aiops/pkg/due"
)

// snapshotVersion starts every snapshot; a snapshot of another version is
// refused rather than misread. Version 2 added Merged: a version 1
// snapshot restores with no merge remembered.
const snapshotVersion = 2

type snapshot struct {
	Version   int                 `json:"version"`
	Now       time.Time           `json:"now"`
	Incidents []incidentSnapshot  `json:"incidents"`
	Changes   map[string][]Change `json:"changes,omitempty"`
	// Merged is where the incidents merged within ReopenWindow went, the
	// oldest merge first.
	Merged []mergeRecord `json:"merged,omitempty"`
	// Openings are the times incidents opened within the last hour
	// (Correlator.spreadWindow); a snapshot without them restores none.
	Openings []time.Time `json:"openings,omitempty"`
	// Places are the first two values seen of each location label
	// (Correlator.varies); a snapshot without them learns them again.
	Places map[string][]string `json:"places,omitempty"`
	// Retired are the ids of incidents forgotten (Correlator.retired); a
	// snapshot without them restores none.
	Retired []string `json:"retired,omitempty"`
	// Ended are the ends of alerts first seen resolved, in the order
	// taken (Correlator.ended); a snapshot without them restores none.
	Ended []endRecord `json:"ended,omitempty"`
	// Waiting are the lone anomaly series waiting to open an incident
	// (Correlator.wait), by fingerprint; a snapshot without them
	// restores none.
	Waiting map[string]*waitingAnomaly `json:"waiting,omitempty"`
	Stats   Stats                      `json:"stats"`
}

type incidentSnapshot struct {
	ID             string    `json:"id"`
	Root           string    `json:"root"`
	Status         string    `json:"status"`
	OpenedAt       time.Time `json:"opened_at"`
	AcknowledgedAt time.Time `json:"acknowledged_at,omitzero"`
	ResolvedAt     time.Time `json:"resolved_at,omitzero"`
	LastSignal     time.Time `json:"last_signal"`
	// LastArrival: an older snapshot has none, and quiet runs from
	// LastSignal.
	LastArrival   time.Time `json:"last_arrival,omitzero"`
	LastPublished time.Time `json:"last_published,omitzero"`
	// OpenedRoot: an older snapshot has none, and its first update is
	// held for UpdateInterval, as before.
	OpenedRoot string `json:"opened_root,omitempty"`
	Assignee   string `json:"assignee,omitempty"`
	// AcknowledgedBy, ResolvedBy: an older snapshot has neither.
	AcknowledgedBy string            `json:"acknowledged_by,omitempty"`
	ResolvedBy     string            `json:"resolved_by,omitempty"`
	Comments       []Comment         `json:"comments,omitempty"`
	Members        []memberSnapshot  `json:"members"`
	Changes        []Change          `json:"changes,omitempty"`
	Timeline       []entrySnapshot   `json:"timeline,omitempty"`
	GroupLabels    map[string]string `json:"group_labels,omitempty"`
	Reopens        int               `json:"reopens,omitempty"`
	Dirty          bool              `json:"dirty,omitempty"`
	Revision       int               `json:"revision"`
	// Storm is set on an alert storm's incident (Config.AlertStorms),
	// StormPlaces on a location burst's (Config.LocationBursts); Place is
	// where the incident opened. An older snapshot has none.
	Storm       bool    `json:"storm,omitempty"`
	StormPlaces []place `json:"storm_places,omitempty"`
	Place       place   `json:"place,omitzero"`
	// Wave is when the failure last came back on the root
	// (Correlator.returns), Returns how often; an older snapshot has
	// neither, and the incident spreads from its opening.
	Wave    time.Time `json:"wave,omitzero"`
	Returns int       `json:"returns,omitempty"`
	// Commands are the ids of the last commands applied (Command.ID).
	Commands []string `json:"commands,omitempty"`
	// LastFired is when a member last fired (incident.lastFired); an
	// older snapshot has none, and it is taken from the members. So is
	// LastHeard, when a signal of it was last observed
	// (incident.lastHeard: members that left count too).
	LastFired time.Time `json:"last_fired,omitzero"`
	LastHeard time.Time `json:"last_heard,omitzero"`
	// ResolvedEvent is the event time it resolved at, when a person's
	// resolution timed ResolvedAt otherwise (incident.resolvedEvent); an
	// older snapshot has none, and its ResolvedAt is that. Since is when
	// its current state began (incident.since); an older snapshot has
	// none, and it is the latest of its opening, acknowledgement,
	// resolution and the reopening its timeline tells.
	ResolvedEvent time.Time `json:"resolved_event,omitzero"`
	Since         time.Time `json:"since,omitzero"`
}

// entrySnapshot is an Entry with its time whole: an Entry's JSON, what
// the outside reads, has milliseconds, and a restored timeline must order
// what comes later as the live one does.
type entrySnapshot struct {
	Time time.Time `json:"time"`
	What string    `json:"what"`
}

type memberSnapshot struct {
	Member
	Flips    []time.Time `json:"flips,omitempty"`
	Episode  string      `json:"episode,omitempty"`
	Observed time.Time   `json:"observed,omitzero"`
}

// MarshalJSON is the whole state, for a checkpoint.
func (c *Correlator) MarshalJSON() ([]byte, error) {
	s := snapshot{Version: snapshotVersion, Now: c.now, Changes: c.changes, Merged: c.liveMerges(), Openings: c.openings, Places: c.places, Retired: c.retired, Ended: c.liveEnds(), Waiting: c.waiting.series, Stats: c.stats}
	for _, inc := range c.sortedIncidents() {
		is := incidentSnapshot{
			ID: inc.id, Root: inc.root, Status: inc.status, OpenedAt: inc.openedAt, AcknowledgedAt: inc.acknowledgedAt,
			ResolvedAt: inc.resolvedAt, ResolvedEvent: inc.resolvedEvent, Since: inc.since, LastSignal: inc.lastSignal, LastArrival: inc.lastArrival, LastPublished: inc.lastPublished, OpenedRoot: inc.openedRoot,
			Assignee: inc.assignee, AcknowledgedBy: inc.acknowledgedBy, ResolvedBy: inc.resolvedBy, Comments: inc.comments, Changes: inc.changes,
			GroupLabels: inc.groupLabels, Reopens: inc.reopens, Dirty: inc.dirty, Revision: inc.revision, Storm: inc.storm,
			StormPlaces: inc.stormPlaces, Place: inc.place, Wave: inc.wave, Returns: inc.returns, Commands: inc.commands,
			LastFired: inc.lastFired, LastHeard: inc.lastHeard,
		}
		for _, e := range inc.timeline {
			is.Timeline = append(is.Timeline, entrySnapshot(e))
		}
		for _, m := range inc.members {
			is.Members = append(is.Members, memberSnapshot{Member: m.Member, Flips: m.flips, Episode: m.episode, Observed: m.observed})
		}
		s.Incidents = append(s.Incidents, is)
	}
	return json.Marshal(s)
}

// UnmarshalJSON replaces the state with a checkpoint's. The configuration
// and catalog stay those the correlator was built with.
func (c *Correlator) UnmarshalJSON(data []byte) error {
	var s snapshot
	if err := json.Unmarshal(data, &s); err != nil {
		return fmt.Errorf("correlate: snapshot: %w", err)
	}
	if s.Version < 1 || s.Version > snapshotVersion {
		return fmt.Errorf("correlate: snapshot version %d, want 1 to %d", s.Version, snapshotVersion)
	}
	c.restoring = true
	defer func() { c.restoring = false }()
	c.now, c.stats, c.queue, c.openings = s.Now, s.Stats, due.Queue[*incident]{}, s.Openings
	c.members = map[string]*member{}
	c.incidents = map[string]*incident{}
	c.bytes = 0 // counted again as the members and incidents come back
	c.listing, c.listingGone, c.listingOK = nil, 0, false
	c.byService = map[string]map[*incident]struct{}{}
	c.byRoot = map[string]map[*incident]struct{}{}
	c.byPeer = map[string]map[*incident]struct{}{}
	c.changes = s.Changes
	if c.changes == nil {
		c.changes = map[string][]Change{}
	}
	c.merged, c.mergedOrder = map[string]mergeRecord{}, nil
	c.retired, c.retiredSet = nil, nil
	for _, id := range s.Retired {
		c.retire(id)
	}
	c.ended, c.endedOrder = nil, nil
	for _, r := range s.Ended {
		if r.Fingerprint == "" {
			return fmt.Errorf("correlate: snapshot: the end of an alert without a fingerprint (at %s)", r.At)
		}
		c.noteEnd(Signal{Fingerprint: r.Fingerprint, Time: r.At})
	}
	c.waiting = newAnomalyWait()
	for _, fp := range slices.Sorted(maps.Keys(s.Waiting)) {
		w := s.Waiting[fp]
		if w == nil || fp == "" || w.First.Fingerprint != fp {
			return fmt.Errorf("correlate: snapshot: a waiting anomaly filed under %q is not of that series", fp)
		}
		c.waiting.add(fp, w, c.topo)
	}
	c.recent, c.bursts, c.storms = nil, map[burstKey][]*incident{}, map[*incident]struct{}{}
	c.places = map[string][]string{}
	if *c.cfg.LocationBursts {
		for _, l := range c.cfg.LocationLabels {
			if vs := s.Places[l]; len(vs) > 0 {
				c.places[l] = vs[:min(len(vs), 2)]
			}
		}
	}
	var recent []*incident
	for _, r := range s.Merged {
		if r.ID == "" || r.Into == "" {
			return fmt.Errorf("correlate: snapshot: a merge record without an incident id (%q into %q)", r.ID, r.Into)
		}
		c.remember(r)
	}
	for _, is := range s.Incidents {
		// An incident whose members all left (their series started
		// another episode) is restored too: it still resolves, and its
		// resolution is published.
		inc := &incident{
			id: is.ID, status: is.Status, openedAt: is.OpenedAt, acknowledgedAt: is.AcknowledgedAt,
			resolvedAt: is.ResolvedAt, resolvedEvent: is.ResolvedEvent, since: is.Since, lastSignal: is.LastSignal, lastArrival: is.LastArrival, lastPublished: is.LastPublished, openedRoot: is.OpenedRoot,
			assignee: is.Assignee, acknowledgedBy: is.AcknowledgedBy, resolvedBy: is.ResolvedBy, comments: is.Comments, changes: is.Changes,
			groupLabels: is.GroupLabels, reopens: is.Reopens, dirty: is.Dirty, revision: is.Revision, wave: is.Wave, returns: is.Returns, commands: is.Commands,
			lastFired: is.LastFired, lastHeard: is.LastHeard, services: map[string]int{}, names: map[string]int{}, arrived: map[string]time.Time{},
		}
		if inc.resolvedEvent.IsZero() {
			inc.resolvedEvent = inc.resolvedAt
		}
		for _, e := range is.Timeline {
			inc.timeline = append(inc.timeline, Entry(e))
		}
		if inc.since.IsZero() {
			inc.since = latest(inc.openedAt, latest(inc.acknowledgedAt, inc.resolvedAt))
			// A reopening cleared both: its timeline entry tells when.
			for _, e := range inc.timeline {
				if strings.HasPrefix(e.What, reopenedNote) {
					inc.since = latest(inc.since, e.Time)
				}
			}
		}
		located := func(at place) bool { return *c.cfg.LocationBursts && slices.Contains(c.cfg.LocationLabels, at.Label) }
		if located(is.Place) {
			inc.place = is.Place
		}
		if len(c.cfg.GroupBy) > 0 {
			inc.group = groupKey(c.cfg.GroupBy, inc.groupLabels)
		}
		// (Of a rule turned off since, or of a location label no longer
		// configured, an incident like any.)
		if is.Storm && *c.cfg.AlertStorms {
			c.markStorm(inc, place{})
		}
		for _, at := range is.StormPlaces {
			if located(at) {
				c.markStorm(inc, at)
			}
		}
		if w := c.recentWindow(); w > 0 && !inc.openedAt.Before(c.now.Add(-w)) {
			recent = append(recent, inc)
		}
		for _, ms := range is.Members {
			m := &member{Member: ms.Member, flips: ms.Flips, episode: ms.Episode, observed: ms.Observed}
			c.count(inc, m)
			last := m.LastSeen
			if !m.Firing && m.Kind == SignalAlert {
				last = m.FirstSeen // its last time is a resolution
			}
			if is.LastFired.IsZero() && last.After(inc.lastFired) {
				inc.lastFired = last
			}
			if heard := cmp.Or(m.observed, m.LastSeen); is.LastHeard.IsZero() && heard.After(inc.lastHeard) {
				inc.lastHeard = heard
			}
		}
		if c.incidents[inc.id] == nil {
			inc.size, inc.acct = timelineBytes(inc.timeline), &c.bytes
			c.bytes += incidentBytes + inc.size
		}
		c.incidents[inc.id] = inc
		c.setRoot(inc, is.Root)
		c.reschedule(inc)
	}
	// The burst index as live kept it: the incidents opened within
	// recentWindow of the watermark (burstOf looks at no other).
	sortIncidents(recent)
	for _, inc := range recent {
		c.enterRecent(inc)
	}
	c.fileArrivals()
	return nil
}

// liveEnds is endedOrder without the ends of a fingerprint replaced by a
// later one.
func (c *Correlator) liveEnds() []endRecord {
	var out []endRecord
	for _, r := range c.endedOrder {
		if at, ok := c.ended[r.Fingerprint]; ok && at.Equal(r.At) {
			out = append(out, r)
		}
	}
	return out
}

// liveMerges is mergedOrder without the records of an id merged again
// since (MergedInto answers the latest).
func (c *Correlator) liveMerges() []mergeRecord {
	var out []mergeRecord
	for _, r := range c.mergedOrder {
		if c.current(r) {
			out = append(out, r)
		}
	}
	return out
}
