package correlate

import (
	"maps"
	"slices"
	"time"

	"github.com/aiops-dev/aiops/pkg/event"
)

// Lone anomalies wait (Config.LoneAnomalies, AnomalyWait): an anomaly
// with no incident to join opens one only once its series stayed
// anomalous for AnomalyWait, at once when it is critical, or when a
// signal that tells of the same failure comes within AnomalyWait
// (corroborate). Of a busy host's hundreds of series some are off every
// few minutes, each an episode of a sample or two (QUALITY.md, session
// 37): as incidents they would be the flood aiops is meant to stem. The
// detector has stored them all the same.

// waitingAnomaly is an anomaly series waiting to open an incident: its
// first signal, when its episode began, and its latest signal (an
// update, or its end), which its member is brought up to once placed,
// with the count of its signals and the worst severity they reported
// (a member's Count and Severity, had it been placed at once).
type waitingAnomaly struct {
	First Signal         `json:"first"`
	Since time.Time      `json:"since"`
	Last  Signal         `json:"last"`
	Count int            `json:"count,omitempty"`
	Worst event.Severity `json:"worst,omitempty"`
}

// saw counts s, a signal of w's series.
func (w *waitingAnomaly) saw(s Signal) {
	w.Count++
	if s.Severity.Rank() > w.Worst.Rank() {
		w.Worst = s.Severity
	}
}

// anomalyWait holds the waiting series by fingerprint and by service (so
// that a signal looks at the services waiting, not at every series), and
// the estimate of the heap they take, which a sixteenth of
// MaxStateBytes bounds as a sixteenth of MaxFingerprints bounds their
// number: past either, an anomaly opens at once, as with
// lone_anomalies: true. The bounds count them with the members (evict).
type anomalyWait struct {
	series    map[string]*waitingAnomaly
	byService map[string]*waitingService
	bytes     int64
}

// waitingService is the series waiting on one service, and the
// service's place in the topology (-1: the catalog does not know it).
type waitingService struct {
	at     int
	series map[string]struct{}
}

func newAnomalyWait() anomalyWait {
	return anomalyWait{series: map[string]*waitingAnomaly{}, byService: map[string]*waitingService{}}
}

// waitingBytes is the estimate of the heap w takes: two signals, whose
// labels waitSignal bounded.
func waitingBytes(w *waitingAnomaly) int64 {
	n := int64(memberBytes)
	for _, s := range []*Signal{&w.First, &w.Last} {
		n += int64(len(s.Fingerprint) + len(s.Service) + len(s.Name) + len(s.Summary) + len(s.EventID) + len(s.EpisodeID) + len(s.Episode))
		n += int64(labelBytes(s.Labels) + labelBytes(s.Resource) + entryBytes*(len(s.Labels)+len(s.Resource)))
	}
	return n
}

func (a *anomalyWait) add(fp string, w *waitingAnomaly, t *topology) {
	a.series[fp] = w
	ws := a.byService[w.First.Service]
	if ws == nil {
		ws = &waitingService{at: -1, series: map[string]struct{}{}}
		if i, ok := t.index[w.First.Service]; ok {
			ws.at = i
		}
		a.byService[w.First.Service] = ws
	}
	ws.series[fp] = struct{}{}
	a.bytes += waitingBytes(w)
}

// drop forgets fp's series, if it waits, and returns it.
func (a *anomalyWait) drop(fp string) *waitingAnomaly {
	w, ok := a.series[fp]
	if !ok {
		return nil
	}
	delete(a.series, fp)
	if ws := a.byService[w.First.Service]; ws != nil {
		delete(ws.series, fp)
		if len(ws.series) == 0 {
			delete(a.byService, w.First.Service)
		}
	}
	a.bytes -= waitingBytes(w)
	return w
}

// end records s, the end of an anomaly episode, as its series' latest
// signal when the series waits, and reports whether it does.
func (a *anomalyWait) end(s Signal, t *topology) bool {
	w := a.drop(s.Fingerprint)
	if w == nil {
		return false
	}
	if !s.Time.Before(w.Last.Time) {
		w.Last = lean(s)
	}
	w.saw(s)
	a.add(s.Fingerprint, w, t)
	return true
}

// lean is s without its labels and resource, as kept of a series' latest
// signal: its member takes them of its first.
func lean(s Signal) Signal {
	s.Labels, s.Resource = nil, nil
	return s
}

// Waiting is the number of lone anomaly series waiting to open an
// incident (Config.LoneAnomalies).
func (c *Correlator) Waiting() int { return len(c.waiting.series) }

// WaitingRun reports whether the series fp waits to open an incident,
// and the id of the first event of its run of waiting: a run that starts
// afresh has another.
func (c *Correlator) WaitingRun(fp string) (firstEventID string, ok bool) {
	w, ok := c.waiting.series[fp]
	if !ok {
		return "", false
	}
	return w.First.EventID, true
}

// FirstEventOf is the id of the first event of fp's member in an
// incident: that of its run's first when a run that waited was placed
// (WaitingRun), another when the run waited in vain and a later episode
// was placed without waiting.
func (c *Correlator) FirstEventOf(fp string) (string, bool) {
	m, ok := c.members[fp]
	if !ok || m.inc == nil {
		return "", false
	}
	return m.FirstEventID, true
}

// waitsFor is how long after its latest signal a waiting series may
// still be placed: while its episode is open, as long as an incident
// waits for an open episode (quietOf: the detector sends an episode's
// updates minutes apart); once ended, AnomalyWait or QuietPeriod.
func (c *Correlator) waitsFor(w *waitingAnomaly) time.Duration {
	if w.Last.Resolved {
		return max(c.cfg.AnomalyWait, c.cfg.QuietPeriod)
	}
	return max(c.cfg.AnomalyWait, openEpisodeQuiet*c.cfg.QuietPeriod)
}

// wait takes s, an anomaly that joins inc (nil: it would open an
// incident), when its series waits or starts to: done says s is taken
// care of, waiting or placed with its series (release). A series that
// waits is placed once it joins an incident, lasted AnomalyWait or turns
// critical; one that does not yet starts to when it would open an
// incident alone, is not critical, and there is room.
func (c *Correlator) wait(s Signal, joins bool) (done bool, ups []Update) {
	w := c.waiting.drop(s.Fingerprint)
	if w != nil && (s.Time.Sub(w.Last.Time) > c.waitsFor(w) || c.episodeAfter(w, s)) {
		// A run of waiting is one episode: a series that goes wrong
		// again, after its episode ended or it was quiet that long,
		// starts afresh (the run before waited in vain), as an alerting
		// rule's `for` starts again when its condition stops holding.
		c.stats.Unconfirmed++
		w = nil
	}
	critical := s.Severity.Rank() >= event.SeverityCritical.Rank()
	if w == nil {
		if joins || critical || *c.cfg.LoneAnomalies || !c.roomToWait() {
			return false, nil
		}
		w = &waitingAnomaly{First: c.waitSignal(s), Since: s.Time}
		if !s.EpisodeStart.IsZero() && s.EpisodeStart.Before(s.Time) {
			w.Since = s.EpisodeStart // the detector saw it begin before
		}
	}
	if s.Time.After(w.Last.Time) || w.Last.Time.IsZero() {
		w.Last = lean(s)
	}
	w.saw(s)
	// It lasted when s, off as every signal here is (an end is not:
	// end), came AnomalyWait after the episode began.
	if joins || critical || s.Time.Sub(w.Since) >= c.cfg.AnomalyWait {
		return true, c.release(s.Fingerprint, w, nil)
	}
	c.waiting.add(s.Fingerprint, w, c.topo)
	c.evict(nil)
	return true, nil
}

// episodeAfter reports whether s, later than w's latest signal, is of
// another episode: w's ended, or s names another (its end was lost).
func (c *Correlator) episodeAfter(w *waitingAnomaly, s Signal) bool {
	if !s.Time.After(w.Last.Time) {
		return false // a late event of the run
	}
	return w.Last.Resolved || s.EpisodeID != "" && w.Last.EpisodeID != "" && s.EpisodeID != w.Last.EpisodeID
}

// waitSignal is s as kept while its series waits: its labels and
// resource bounded as a member's are (storedLabels).
func (c *Correlator) waitSignal(s Signal) Signal {
	s.Labels, s.Resource, _ = c.storedLabels(s.Labels, s.Resource)
	return s
}

// roomToWait reports whether one more series may wait: the waiting take
// at most a sixteenth of MaxFingerprints and of MaxStateBytes.
func (c *Correlator) roomToWait() bool {
	return len(c.waiting.series) < max(1, c.cfg.MaxFingerprints/16) && c.waiting.bytes < c.cfg.MaxStateBytes/16
}

// release places w, fp's series no longer waiting: its first signal
// joins the incident it fits or opens one, timed when it came, and its
// member is brought up to its latest signal.
func (c *Correlator) release(fp string, w *waitingAnomaly, ups []Update) []Update {
	from := len(ups)
	inc, why := c.best(w.First)
	ups = c.place(w.First, inc, why, ups)
	later := w.Last.EventID != w.First.EventID || !w.Last.Time.Equal(w.First.Time) || w.Last.Resolved
	if m, ok := c.members[fp]; ok && m.inc != nil {
		if later {
			_, u := c.repeat(m, w.Last, false)
			ups = append(ups, u...)
		}
		// The signals between its first and latest count too, the worst
		// of them as severe as a member's worst report makes it.
		m.Count = max(m.Count, w.Count)
		if w.Worst.Rank() > m.Severity.Rank() {
			m.Severity, m.inc.dirty = w.Worst, true
		}
		ups = c.restateOpening(m.inc, ups, from, len(ups))
	}
	c.schedule(fp) // its incident's timers, as Observe sets s's
	return ups
}

// corroborate places the series waiting within AnomalyWait of s when s
// tells of the same failure: an alert on their service or one related
// to it (UpDepth above, DownDepth below; a resource alert not above, a
// forecast on their service only), or an anomaly on a related other
// service. Another series of their own service does not: a host
// has hundreds, and some are always off. It looks at the services
// waiting or at those related to s's, whichever are fewer: every signal
// comes here.
func (c *Correlator) corroborate(s Signal, ups []Update) []Update {
	if len(c.waiting.series) == 0 || s.Kind != SignalAlert && s.Kind != SignalAnomaly {
		return ups
	}
	i, placed := c.topo.index[s.Service]
	// As in best: a resource alert is no symptom of what its service
	// calls, a forecast none of another service's failure; neither
	// would join the incident it opened.
	local, advisory := c.isLocal(s.Kind, s.Name), c.isAdvisory(s.Kind, s.Name)
	tells := func(j int) bool { // s tells of a failure of the service at j
		switch {
		case !placed || j < 0:
			return false
		case j == i:
			return s.Kind == SignalAlert
		case advisory:
			return false
		}
		up, down := int(c.topo.below[i][j]), int(c.topo.below[j][i])
		return up > 0 && up <= c.cfg.UpDepth && !local || down > 0 && down <= c.cfg.DownDepth
	}
	// The incident a series opens, at its first signal, takes no new
	// signal past spread_window, nor one on a service changed since
	// unless the series is on what that service calls, nor one of
	// another group (eligible): s would open another beside it, which
	// it alone placed.
	spread := c.spreadWindow(s.Time)
	joins := func(w *waitingAnomaly) bool {
		for _, l := range c.cfg.GroupBy {
			if w.First.Labels[l] != s.Labels[l] {
				return false
			}
		}
		return s.Time.Sub(w.First.Time) <= spread &&
			(!c.changedSince(s.Service, w.First.Time, s.Time) || slices.Contains(c.calls(s.Service), w.First.Service))
	}
	var fps []string
	take := func(ws *waitingService) {
		for fp := range ws.series {
			w := c.waiting.series[fp]
			if fp != s.Fingerprint && s.Time.Sub(w.Last.Time) <= c.cfg.AnomalyWait && w.First.Time.Sub(s.Time) <= c.cfg.AnomalyWait && joins(w) {
				fps = append(fps, fp)
			}
		}
	}
	switch {
	case !placed:
		if ws := c.waiting.byService[s.Service]; ws != nil && s.Kind == SignalAlert {
			take(ws)
		}
	case len(c.waiting.byService) <= len(c.topo.names):
		for _, ws := range c.waiting.byService {
			if tells(ws.at) {
				take(ws)
			}
		}
	default:
		for j, name := range c.topo.names {
			if ws := c.waiting.byService[name]; ws != nil && tells(j) {
				take(ws)
			}
		}
	}
	slices.Sort(fps) // the same order live and replayed
	for _, fp := range fps {
		ups = c.release(fp, c.waiting.drop(fp), ups)
	}
	return ups
}

// forgetWaiting forgets the series whose latest signal is older than
// they wait for (waitsFor): nothing can place them any more. Advance
// calls it once a minute of event time, on the minute's boundaries, so
// that a correlator restored from its snapshot forgets what the one
// that ran on does. (Each signal advances time: a look at every series
// each time would make the waiting cost every signal.)
func (c *Correlator) forgetWaiting(now time.Time) {
	for _, fp := range slices.Sorted(maps.Keys(c.waiting.series)) {
		if w := c.waiting.series[fp]; now.Sub(w.Last.Time) > c.waitsFor(w) {
			c.waiting.drop(fp)
			c.stats.Unconfirmed++
		}
	}
}
