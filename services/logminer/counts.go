package logminer

import (
	"sort"
	"sync"
	"time"

	"github.com/aiops-dev/aiops/pkg/logmine"
)

// maxBurstExamples bounds the raw event ids an error burst links to.
const maxBurstExamples = 10

// series is the count state of one (service, template).
type series struct {
	Count  uint64 `json:"count"`  // lines in the current interval
	Errors uint64 `json:"errors"` // of them, error or critical
	// ErrAvg is the moving average of Errors over past intervals in
	// which the series had lines (an interval without any leaves it as
	// it was).
	ErrAvg float64 `json:"err_avg"`
	// Idle counts the intervals since the last line.
	Idle int `json:"idle"`
	// Quiet: silent for more than IdleIntervals, the series gets no
	// samples and is kept only for its error average (see flush).
	Quiet    bool     `json:"quiet,omitempty"`
	examples []string // error event ids of the current interval
}

// sample is one emitted count.
type sample struct {
	Service string
	ID      logmine.TemplateID
	Count   uint64
}

// burst is one series whose error lines jumped.
type burst struct {
	Service  string
	ID       logmine.TemplateID
	Errors   uint64
	Expected float64 // the moving average before this interval
	Examples []string
}

// counts keeps per-template, per-service line counts for the current
// interval and the history the burst rule needs. Lines are added by
// Process and the interval is closed by Tick, so it is locked.
type counts struct {
	mu      sync.Mutex
	cfg     Config
	byID    map[logmine.TemplateID]map[string]*series
	n       int    // series held, quiet ones left out
	quiet   int    // quiet series held (at most MaxSeries)
	dropped uint64 // lines of series beyond MaxSeries
	late    uint64 // lines timed more than MaxLateness before the open interval
	// closed is the end of the last interval flushed, or the start of
	// the interval the run started (or the state was restored) in: the
	// counts held are of the interval ending Interval after it.
	closed time.Time
}

// begin starts counting at now: the counts held are of now's interval,
// until a flush names the next one. So a save between that interval's
// end and its flush names it, not the interval the clock is in.
func (c *counts) begin(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = now.Truncate(c.cfg.Interval)
}

func newCounts(cfg Config) *counts {
	return &counts{cfg: cfg, byID: map[logmine.TemplateID]map[string]*series{}}
}

// add counts one line timed at; severe says it was of error or critical
// severity, eventID is kept as an example for a burst. It reports false
// when the line is too late (timed more than MaxLateness before the open
// interval's start: its own interval was closed long ago, and counted in
// this one, a backlog flushed at once would look like a burst now), or
// when the series is new and MaxSeries is reached. (A raw log whose outputs failed
// is not processed again on its redelivery: the runner republishes its
// kept outputs; one processed again, after a restart or with its kept
// outputs dropped, is not counted again: Logminer.mine asks unacked.)
func (c *counts) add(service string, id logmine.TemplateID, severe bool, eventID string, at time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if at.Before(c.closed.Add(-c.cfg.MaxLateness)) {
		c.late++
		return false
	}
	s := c.get(service, id, true)
	if s == nil {
		c.dropped++
		return false
	}
	s.Count++
	s.Idle = 0
	if severe {
		s.Errors++
		if len(s.examples) < maxBurstExamples {
			s.examples = append(s.examples, eventID)
		}
	}
	return true
}

func (c *counts) get(service string, id logmine.TemplateID, create bool) *series {
	svcs := c.byID[id]
	if s := svcs[service]; s != nil || !create {
		if s != nil && s.Quiet && create {
			// counted again: a series again, with its error average
			if c.n >= c.cfg.MaxSeries {
				return nil
			}
			s.Quiet = false
			c.quiet--
			c.n++
		}
		return s
	}
	if c.n >= c.cfg.MaxSeries {
		return nil
	}
	if svcs == nil {
		svcs = map[string]*series{}
		c.byID[id] = svcs
	}
	s := &series{}
	svcs[service] = s
	c.n++
	return s
}

// merge moves the counts of template from into template to, in every
// service: the miner generalised from into to, so from's lines are to's now
// and so is its history (its error average adds to to's: to now covers both).
func (c *counts) merge(from, to logmine.TemplateID) {
	if from == to {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for svc, src := range c.byID[from] {
		dst := c.byID[to][svc]
		if dst == nil {
			if c.byID[to] == nil {
				c.byID[to] = map[string]*series{}
			}
			c.byID[to][svc] = src
			continue
		}
		dst.Count += src.Count
		dst.Errors += src.Errors
		dst.ErrAvg += src.ErrAvg
		dst.Idle = min(dst.Idle, src.Idle)
		for _, e := range src.examples {
			if len(dst.examples) < maxBurstExamples {
				dst.examples = append(dst.examples, e)
			}
		}
		// one series less: a quiet one if either was, and the result is
		// quiet only if both were
		if src.Quiet || dst.Quiet {
			c.quiet--
		} else {
			c.n--
		}
		dst.Quiet = dst.Quiet && src.Quiet
	}
	delete(c.byID, from)
}

// flush closes the interval ending at end: it returns a sample for every
// series counted within the last IdleIntervals intervals (0 for one that
// fell silent) and the bursts, then starts the next interval. Output is
// sorted by service, then template id, so it is deterministic.
//
// A series silent for longer is forgotten, but for its error average
// when it has one: it is kept quiet (no samples), so a message that errs
// again after a silence (a job failing every hour) is measured against
// its usual rate, not flagged as new every time. At most MaxSeries quiet
// series are kept; beyond, the longest silent are forgotten.
func (c *counts) flush(end time.Time) ([]sample, []burst) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = end
	samples := make([]sample, 0, c.n)
	var bursts []burst
	for id, svcs := range c.byID {
		for svc, s := range svcs {
			if s.Quiet {
				s.Idle++
				continue
			}
			if s.Count == 0 && s.Idle >= c.cfg.IdleIntervals {
				c.n--
				if s.ErrAvg > 0 {
					s.Quiet = true
					s.Idle++
					c.quiet++
				} else {
					delete(svcs, svc)
				}
				continue
			}
			samples = append(samples, sample{Service: svc, ID: id, Count: s.Count})
			if !c.cfg.Burst.Disabled && s.Errors >= uint64(c.cfg.Burst.MinCount) && float64(s.Errors) > c.cfg.Burst.Factor*s.ErrAvg {
				bursts = append(bursts, burst{Service: svc, ID: id, Errors: s.Errors, Expected: s.ErrAvg, Examples: s.examples})
			}
			switch {
			case s.Count == 0:
				// An interval without a line of the template says nothing
				// of its error rate when it logs: a job that fails with
				// the same errors every hour keeps its average.
				s.Idle++
			case s.ErrAvg == 0:
				// Seed the average with the first interval of errors, so
				// a template that starts erring steadily is flagged once,
				// not for every interval the average takes to climb.
				s.ErrAvg = float64(s.Errors)
			default:
				a := c.cfg.Burst.Alpha
				s.ErrAvg = a*float64(s.Errors) + (1-a)*s.ErrAvg
			}
			s.Count, s.Errors, s.examples = 0, 0, nil
		}
		if len(svcs) == 0 {
			delete(c.byID, id)
		}
	}
	if c.quiet > c.cfg.MaxSeries {
		c.forgetQuiet(c.quiet - c.cfg.MaxSeries)
	}
	sort.Slice(samples, func(i, j int) bool {
		if samples[i].Service != samples[j].Service {
			return samples[i].Service < samples[j].Service
		}
		return samples[i].ID < samples[j].ID
	})
	sort.Slice(bursts, func(i, j int) bool {
		if bursts[i].Service != bursts[j].Service {
			return bursts[i].Service < bursts[j].Service
		}
		return bursts[i].ID < bursts[j].ID
	})
	return samples, bursts
}

// forgetQuiet forgets the n quiet series silent the longest (ties by
// service, then template id).
func (c *counts) forgetQuiet(n int) {
	type key struct {
		svc  string
		id   logmine.TemplateID
		idle int
	}
	keys := make([]key, 0, c.quiet)
	for id, svcs := range c.byID {
		for svc, s := range svcs {
			if s.Quiet {
				keys = append(keys, key{svc, id, s.Idle})
			}
		}
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if a.idle != b.idle {
			return a.idle > b.idle
		}
		if a.svc != b.svc {
			return a.svc < b.svc
		}
		return a.id < b.id
	})
	for _, k := range keys[:min(n, len(keys))] {
		delete(c.byID[k.id], k.svc)
		if len(c.byID[k.id]) == 0 {
			delete(c.byID, k.id)
		}
		c.quiet--
	}
}

// seriesState is one series in a saved state.
type seriesState struct {
	Service string             `json:"service"`
	ID      logmine.TemplateID `json:"id"`
	series
}

// snapshot returns the series and the end of the interval their counts
// are of: the one after the last flushed, or after the start of the run
// (begin); now's without either.
func (c *counts) snapshot(now time.Time) (series []seriesState, end time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	end = now.Truncate(c.cfg.Interval).Add(c.cfg.Interval)
	if !c.closed.IsZero() {
		// A save between an interval's end and its flush (the tick is
		// held off meanwhile) saves that interval's counts, not the next.
		end = c.closed.Add(c.cfg.Interval)
	}
	out := make([]seriesState, 0, c.n+c.quiet)
	for id, svcs := range c.byID {
		for svc, s := range svcs {
			out = append(out, seriesState{Service: svc, ID: id, series: *s})
		}
	}
	return out, end
}

func (c *counts) restore(list []seriesState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.byID = map[logmine.TemplateID]map[string]*series{}
	c.n, c.quiet = 0, 0
	for _, st := range list {
		if c.byID[st.ID][st.Service] != nil {
			continue // twice in the list: only from a forged state
		}
		if st.Quiet {
			if c.quiet >= c.cfg.MaxSeries {
				continue
			}
			c.quiet++
		} else {
			if c.n >= c.cfg.MaxSeries {
				continue
			}
			c.n++
		}
		if c.byID[st.ID] == nil {
			c.byID[st.ID] = map[string]*series{}
		}
		s := st.series
		s.examples = nil
		c.byID[st.ID][st.Service] = &s
	}
}

// stats returns the series held, the lines not counted beyond MaxSeries
// and those not counted for being too late.
func (c *counts) stats() (held int, dropped, late uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n, c.dropped, c.late
}
