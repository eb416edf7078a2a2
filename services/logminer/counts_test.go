package logminer

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/aiops-dev/aiops/pkg/logmine"
)

func testCountsConfig() Config {
	cfg := Config{State: StateConfig{Disabled: true}}
	cfg = cfg.WithDefaults()
	return cfg
}

func addN(c *counts, svc string, id logmine.TemplateID, n int, severe bool) {
	for i := range n {
		c.add(svc, id, severe, fmt.Sprintf("ev-%s-%d-%d", svc, id, i), time.Time{})
	}
}

func TestCountsSamplesAndIdle(t *testing.T) {
	cfg := testCountsConfig()
	cfg.IdleIntervals = 2
	c := newCounts(cfg)
	addN(c, "api", 1, 3, false)
	addN(c, "api", 2, 1, false)
	addN(c, "db", 1, 5, false)
	samples, bursts := c.flush(time.Time{})
	want := []sample{{"api", 1, 3}, {"api", 2, 1}, {"db", 1, 5}}
	if fmt.Sprint(samples) != fmt.Sprint(want) || len(bursts) != 0 {
		t.Fatalf("interval 1: samples %v bursts %v, want %v and none", samples, bursts, want)
	}
	// api/2 goes on, the others fall silent: two intervals of zeros
	// (IdleIntervals), then they are forgotten.
	for i, wantLen := range []int{3, 3, 1} {
		addN(c, "api", 2, 1, false)
		samples, _ := c.flush(time.Time{})
		if len(samples) != wantLen {
			t.Fatalf("silent interval %d: %d samples %v, want %d", i+1, len(samples), samples, wantLen)
		}
		for _, s := range samples {
			if s.ID == 1 && s.Count != 0 {
				t.Errorf("silent series counted %d", s.Count)
			}
		}
	}
	if held, _, _ := c.stats(); held != 1 {
		t.Errorf("series held %d, want 1", held)
	}
}

func TestCountsBurstRule(t *testing.T) {
	cfg := testCountsConfig() // factor 3, min 10, alpha 0.2
	c := newCounts(cfg)
	// A template that starts logging errors: no history, 10 errors burst.
	addN(c, "api", 7, 10, true)
	addN(c, "api", 8, 9, true) // below MinCount
	addN(c, "api", 9, 50, false)
	_, bursts := c.flush(time.Time{})
	if len(bursts) != 1 || bursts[0].ID != 7 || bursts[0].Errors != 10 || bursts[0].Expected != 0 {
		t.Fatalf("bursts %+v, want template 7 with 10 errors over 0", bursts)
	}
	if len(bursts[0].Examples) != maxBurstExamples {
		t.Errorf("examples %d, want %d", len(bursts[0].Examples), maxBurstExamples)
	}
	// The first interval of errors seeds the average, so the same rate is
	// no burst; three times the average is not either, more is.
	avg := 10.0
	for range 5 {
		addN(c, "api", 7, 10, true)
		if _, b := c.flush(time.Time{}); len(b) != 0 {
			t.Fatalf("steady rate flagged: %+v (average %.2f)", b, avg)
		}
		avg = 0.2*10 + 0.8*avg
	}
	exact := int(3 * avg) // at or below 3x the average: not a burst
	addN(c, "api", 7, exact, true)
	if _, b := c.flush(time.Time{}); len(b) != 0 {
		t.Fatalf("%d errors with average %.2f flagged", exact, avg)
	}
	avg = 0.2*float64(exact) + 0.8*avg
	over := int(3*avg) + 1
	addN(c, "api", 7, over, true)
	_, b := c.flush(time.Time{})
	if len(b) != 1 || b[0].Errors != uint64(over) || fmt.Sprintf("%.6f", b[0].Expected) != fmt.Sprintf("%.6f", avg) {
		t.Fatalf("%d errors over average %.4f: bursts %+v", over, avg, b)
	}
}

func TestCountsMergeMovesHistory(t *testing.T) {
	c := newCounts(testCountsConfig())
	addN(c, "api", 1, 4, true)
	addN(c, "db", 1, 2, false)
	addN(c, "api", 2, 3, false)
	c.merge(1, 2)
	samples, _ := c.flush(time.Time{})
	want := []sample{{"api", 2, 7}, {"db", 2, 2}}
	if fmt.Sprint(samples) != fmt.Sprint(want) {
		t.Fatalf("after merge: %v, want %v", samples, want)
	}
	if held, _, _ := c.stats(); held != 2 {
		t.Errorf("series held %d, want 2", held)
	}
}

func TestCountsMaxSeries(t *testing.T) {
	cfg := testCountsConfig()
	cfg.MaxSeries = 2
	c := newCounts(cfg)
	if !c.add("a", 1, false, "x", time.Time{}) || !c.add("b", 1, false, "x", time.Time{}) {
		t.Fatal("first two series refused")
	}
	if c.add("c", 1, false, "x", time.Time{}) {
		t.Fatal("third series accepted beyond MaxSeries 2")
	}
	if !c.add("a", 1, false, "x", time.Time{}) {
		t.Fatal("known series refused")
	}
	if held, dropped, _ := c.stats(); held != 2 || dropped != 1 {
		t.Errorf("held %d dropped %d, want 2 and 1", held, dropped)
	}
}

func TestCountsSnapshotRoundTrip(t *testing.T) {
	c := newCounts(testCountsConfig())
	addN(c, "api", 1, 12, true)
	c.flush(time.Time{})
	addN(c, "api", 1, 3, true) // the interval in progress
	snap, _ := c.snapshot(time.Now())
	data, err := json.Marshal(snap)
	if err != nil {
		t.Fatal(err)
	}
	var list []seriesState
	if err := json.Unmarshal(data, &list); err != nil {
		t.Fatal(err)
	}
	d := newCounts(testCountsConfig())
	d.restore(list)
	s1, b1 := c.flush(time.Time{})
	s2, b2 := d.flush(time.Time{})
	if fmt.Sprint(s1) != fmt.Sprint(s2) || fmt.Sprint(len(b1)) != fmt.Sprint(len(b2)) {
		t.Fatalf("restored counts differ: %v %v vs %v %v", s1, b1, s2, b2)
	}
	if s2[0].Count != 3 {
		t.Errorf("the interval in progress was not kept: %v", s2)
	}
	if d.byID[1]["api"].ErrAvg != c.byID[1]["api"].ErrAvg || c.byID[1]["api"].ErrAvg == 0 {
		t.Errorf("error average not restored: %v vs %v", d.byID[1]["api"].ErrAvg, c.byID[1]["api"].ErrAvg)
	}
}

// countedLines sums the current interval's counts of service.
func countedLines(c *counts, service string) (n uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, svcs := range c.byID {
		if s := svcs[service]; s != nil {
			n += s.Count
		}
	}
	return n
}

// The counts held between an interval's end and its flush (a save the
// tick waited for) are of the interval that ended, not of the next: the
// end saved is the flushed one's plus Interval, whatever the clock says.
func TestCountsSnapshotNamesTheIntervalOfItsCounts(t *testing.T) {
	cfg := testCountsConfig()
	c := newCounts(cfg)
	b := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	c.flush(b.Add(-cfg.Interval))
	addN(c, "api", 1, 5, false)
	if _, end := c.snapshot(b.Add(200 * time.Millisecond)); !end.Equal(b) {
		t.Fatalf("counts of the interval ending %v saved as ending %v", b, end)
	}
	c.flush(b)
	if _, end := c.snapshot(b.Add(time.Second)); !end.Equal(b.Add(cfg.Interval)) {
		t.Fatalf("after the flush at %v: %v, want the next interval's end", b, end)
	}
}

// A steady error that recurs after silences longer than idle_intervals (a
// job failing with 20 lines every 10 intervals) is flagged once, when it
// first errs: its series is kept quiet for its error average, which an
// interval without its lines leaves as it was, through a save and
// restore too. A jump over its usual rate is still flagged. Quiet series
// get no samples, and at most max_series are kept, the longest silent
// forgotten first.
func TestCountsRecurringErrorFlaggedOnce(t *testing.T) {
	c := newCounts(testCountsConfig()) // idle_intervals 5
	bursts := 0
	for round := range 6 {
		if round == 3 { // restarted in the silence
			list, _ := c.snapshot(time.Now())
			data, err := json.Marshal(list)
			if err != nil {
				t.Fatal(err)
			}
			var back []seriesState
			if err := json.Unmarshal(data, &back); err != nil {
				t.Fatal(err)
			}
			c = newCounts(testCountsConfig())
			c.restore(back)
		}
		addN(c, "cron", 1, 20, true)
		for i := range 10 {
			samples, b := c.flush(time.Time{})
			bursts += len(b)
			if i > 5 && len(samples) != 0 {
				t.Fatalf("round %d, interval %d: samples %v from a series silent for %d intervals", round, i, samples, i)
			}
		}
	}
	if bursts != 1 {
		t.Fatalf("%d bursts for the same error every 10 intervals, want 1 (the first)", bursts)
	}
	if held, _, _ := c.stats(); held != 0 || c.quiet != 1 {
		t.Fatalf("%d series and %d quiet, want 0 and 1", held, c.quiet)
	}
	addN(c, "cron", 1, 61, true) // over 3 times the usual 20
	if _, b := c.flush(time.Time{}); len(b) != 1 || b[0].Expected != 20 {
		t.Fatalf("a jump after the silence: bursts %+v, want one over the average 20", b)
	}

	cfg := testCountsConfig()
	cfg.MaxSeries = 2
	c = newCounts(cfg)
	for i, svc := range []string{"a", "b", "c"} {
		addN(c, svc, 1, 10, true)
		for range 1 + 2*(2-i) { // a falls silent first, then b, then c
			c.flush(time.Time{})
		}
	}
	for range cfg.IdleIntervals + 1 {
		c.flush(time.Time{})
	}
	if c.quiet != 2 || c.byID[1]["a"] != nil || c.byID[1]["b"] == nil || c.byID[1]["c"] == nil {
		t.Fatalf("quiet series %d %v: want b and c kept, a (silent the longest) forgotten", c.quiet, c.byID[1])
	}
}
