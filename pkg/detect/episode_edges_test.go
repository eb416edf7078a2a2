package detect

import (
	"math/rand/v2"
	"testing"
	"time"
)

// opensPerDay replays values a minute apart and counts the episodes opened
// on each day.
func opensPerDay(t *testing.T, cfg Config, values []float64) []int {
	d := mustDetector(t, cfg)
	days := make([]int, len(values)/1440+1)
	for i, v := range values {
		if r := d.Observe(at(i, time.Minute), v); r.Episode == EpisodeOpen {
			days[i/1440]++
		}
	}
	return days
}

func TestBudgetHoldsHugeHourlySpikes(t *testing.T) {
	const n = 5 * 1440
	for _, spike := range []float64{30, 1e6} {
		rng := rand.New(rand.NewPCG(16, 1))
		v := make([]float64, n)
		for i := range v {
			v[i] = 50 + rng.NormFloat64()
			if i%60 == 0 {
				v[i] += spike
			}
		}
		days := opensPerDay(t, Config{}, v)
		t.Logf("spike %g: episodes opened per day %v", spike, days)
		if days[4] > 2 {
			t.Errorf("spike %g every hour: %d episodes opened on day 5 (budget 1 a day)", spike, days[4])
		}
	}
}

// A series over its forecast threshold for good opens one episode, which
// MaxDuration ends, not one a day: the budget's bar holds at a score of 1.
func TestSaturatedForecastEpisodes(t *testing.T) {
	const n = 3 * 1440
	rng := rand.New(rand.NewPCG(3, 1))
	v := make([]float64, n)
	for i := range v {
		v[i] = 0.97 + 0.001*rng.NormFloat64()
	}
	days := opensPerDay(t, Config{Forecast: ForecastConfig{Enabled: true, Threshold: 0.95}}, v)
	t.Logf("over the threshold throughout: episodes opened per day %v", days)
	if days[2] > 1 {
		t.Errorf("a series over its forecast threshold for good: %d episodes opened on day 3", days[2])
	}
}

// A forecast's alarm is not the value leaving a band: the value is inside
// the EWMA band it reports. Its episode must last while the forecast
// fires (up to Episode.MaxDuration), not close at the next sample "back in
// its normal range" while the disk keeps filling, past its threshold too.
func TestForecastEpisodeLastsWhileTheForecastFires(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 1))
	d := mustDetector(t, Config{Forecast: ForecastConfig{Enabled: true, Threshold: 0.95}})
	opens := 0
	for i := 0; i < 2400; i++ {
		v := 0.5 + 0.0002*float64(i) + 0.001*rng.NormFloat64() // full at i = 2250
		r := d.Observe(at(i, time.Minute), v)
		switch r.Episode {
		case EpisodeOpen:
			opens++
		case EpisodeClose:
			if lasted := r.Time.Sub(r.EpisodeInfo.Start); r.Score >= 0.5 && lasted < DefaultEpisodeMaxDuration {
				t.Errorf("minute %d (value %.4f, threshold 0.95): the forecast's episode closed after %v at score %.3f by %v", i, v, lasted, r.Score, r.Detector)
			}
		}
	}
	t.Logf("%d episodes opened", opens)
}

// TestFlatLineBlipOpensNoEpisode: a series that has never moved has no
// scale but the 1e-12 floor, so its first move scores 1 whatever its size
// (go_goroutines 7 → 8 and back, node_procs_blocked 0 → 1 and back on a
// real host, flat for minutes: episodes of "1e8 sigmas", severity error).
// Flat for under a day (the budget's one episode a day), such a move opens
// an episode only when the next observation is still off the line, as a
// target's up falling to 0 is; a blip opens none. Flat for longer, the
// blip opens one at once.
func TestFlatLineBlipOpensNoEpisode(t *testing.T) {
	const flat = 100
	run := func(step time.Duration, values ...float64) (opens []int, starts []time.Time) {
		d := mustDetector(t, Config{})
		for i := 0; i < flat; i++ {
			d.Observe(at(i, step), values[0])
		}
		for i, v := range values[1:] {
			if r := d.Observe(at(flat+i, step), v); r.Episode == EpisodeOpen {
				opens, starts = append(opens, flat+i), append(starts, r.EpisodeInfo.Start)
			}
		}
		return opens, starts
	}
	if opens, _ := run(10*time.Second, 7, 8, 7, 7, 7); len(opens) != 0 {
		t.Errorf("flat 7 for 1,000 s, one sample at 8: episodes opened at %v, want none", opens)
	}
	opens, starts := run(10*time.Second, 1, 0, 0, 0, 0)
	if len(opens) != 1 || opens[0] != flat+1 || !starts[0].Equal(at(flat, 10*time.Second)) {
		t.Errorf("flat 1 for 1,000 s, falling to 0 and staying: episodes opened at %v starting %v, want one at %d starting at %d", opens, starts, flat+1, flat)
	}
	if opens, _ := run(time.Hour, 7, 8, 7, 7, 7); len(opens) != 1 || opens[0] != flat {
		t.Errorf("flat 7 for 100 hours, one sample at 8: episodes opened at %v, want one at %d", opens, flat)
	}
}

// TestFlatLineMoveThatStaysAcrossAGapOpensAnEpisode: a young flat line's
// first move waits for the next observation; when that one comes after a
// gap and is still off the line, the move stayed. Taken for a blip, it
// opened nothing, and nothing after it either: the move had taught the
// series its resolution, so a target's up at 0 for good scored 0.05
// against a line at 1 and never opened an episode.
func TestFlatLineMoveThatStaysAcrossAGapOpensAnEpisode(t *testing.T) {
	const flat, step = 100, 10 * time.Second
	d := mustDetector(t, Config{})
	for i := 0; i < flat; i++ {
		d.Observe(at(i, step), 1)
	}
	var opens []int
	var start time.Time
	for _, i := range []int{flat, flat + 60, flat + 61, flat + 62} { // ten minutes unobserved after the move
		if r := d.Observe(at(i, step), 0); r.Episode == EpisodeOpen {
			opens, start = append(opens, i), r.EpisodeInfo.Start
		}
	}
	if len(opens) != 1 || opens[0] != flat+60 || !start.Equal(at(flat, step)) {
		t.Errorf("flat 1 for 1,000 s, falling to 0 and staying, a gap after the fall: episodes opened at %v starting %v, want one at %d starting at %d", opens, start, flat+60, flat)
	}
}

// TestCounterEpisodePeakValueIsTheRate: a counter's detectors score its
// per-second rate, and its anomaly's value, expected and band are rates;
// the episode's peak value was the raw total at the peak (peak_value
// in the anomalies table: a counter's total since boot beside a rate), a
// figure of another unit than the value it names.
func TestCounterEpisodePeakValueIsTheRate(t *testing.T) {
	const step = 15 * time.Second
	d := mustDetector(t, Config{Counter: true})
	total := 3.2e6
	var peak Episode
	var peakScored float64
	for i := 0; i < 300; i++ {
		rate := 2.0 + float64(i%3) // 2 to 4 opens a second
		if i >= 250 && i < 253 {
			rate = 400 // a burst of connections
		}
		total += rate * step.Seconds()
		r := d.Observe(at(i, step), total)
		if r.Alarm && r.Score >= peak.Peak {
			peak, peakScored = r.EpisodeInfo, r.Scored
		}
	}
	if peak.Peak == 0 {
		t.Fatal("a burst of 100 times the rate opened no episode")
	}
	if peak.PeakValue != peakScored {
		t.Errorf("episode peak value %g, want the rate scored at the peak, %g /s (the counter's total is over 3.2e6)", peak.PeakValue, peakScored)
	}
}

// TestStepSeriesEpisodeEndsWhenItSitsStill: go_gc_duration_seconds
// {quantile="1"} of a real node_exporter, the largest of its recent GC
// pauses, sits on a value and steps to each new maximum, where it stays
// until that pause leaves the summary's window (samples every 15 s, as
// scraped). Its step to 4.4 ms, three times the maximum before, opened an
// episode that the regime, the variance CUSUM, the trend test and the
// slowed EWMA held for as long as it stayed there: past the correlator's
// 5 minutes, an incident for one GC pause; so did its step to 5.1 ms ten
// minutes later. The step is the event; a series that sits on one value
// sitting on its new one is what it does. A snapshot taken in the episode
// restores it as it was. A rate that was busy and falls to 0 and stays
// there sits still too, but it did not before: its episode lasts.
func TestStepSeriesEpisodeEndsWhenItSitsStill(t *testing.T) {
	const step = 15 * time.Second
	var gc []float64
	var jumps []int // the samples of the steps to 4.4 and 5.1 ms
	for _, s := range []struct {
		v float64
		n int
	}{{0, 1}, {0.000015438, 2}, {0.000310738, 1}, {0.000501281, 16}, {0.000969908, 9}, {0.001088469, 42}, {0.001409609, 8}, {0.00441609, 42}, {0.005114499, 40}} {
		if s.v > 0.004 {
			jumps = append(jumps, len(gc))
		}
		for range s.n {
			gc = append(gc, s.v)
		}
	}
	d := mustDetector(t, Config{})
	var opens [2]int
	var last [2]time.Duration // the last sample in an episode after each jump
	var restored *Detector    // from a snapshot a sample after the first jump
	for i, v := range gc {
		r := d.Observe(at(i, step), v)
		if restored != nil {
			if rr := restored.Observe(at(i, step), v); rr.Alarm != r.Alarm || rr.Episode != r.Episode {
				t.Errorf("sample %d: restored from a snapshot in the episode: alarm %v %v, want %v %v", i, rr.Alarm, rr.Episode, r.Alarm, r.Episode)
			}
		}
		if i == jumps[0]+1 {
			state, err := d.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			restored = d.Profile().NewDetector()
			if err := restored.UnmarshalBinary(state); err != nil {
				t.Fatal(err)
			}
		}
		for j := len(jumps) - 1; j >= 0; j-- {
			if i >= jumps[j] {
				if r.Episode == EpisodeOpen {
					opens[j]++
				}
				if r.Alarm {
					last[j] = time.Duration(i-jumps[j]) * step
				}
				break
			}
		}
	}
	for j, ms := range []string{"1.4 to 4.4", "4.4 to 5.1"} {
		if opens[j] > 1 || last[j] >= time.Minute {
			t.Errorf("GC pause maximum stepping from %s ms and staying: %d episodes, in alarm until %v after the step, want at most one, under a minute", ms, opens[j], last[j])
		}
	}
	if opens[0] != 1 {
		t.Errorf("GC pause maximum stepping from 1.4 to 4.4 ms: %d episodes, want one", opens[0])
	}

	// A rate busy around 40/s that falls to 0 and stays there.
	d = mustDetector(t, Config{})
	rng := rand.New(rand.NewPCG(7, 7))
	for i := 0; i < 400; i++ {
		d.Observe(at(i, step), 40+4*rng.NormFloat64())
	}
	var held time.Duration
	for i := 0; i < 80; i++ {
		if r := d.Observe(at(400+i, step), 0); r.Alarm {
			held = time.Duration(i) * step
		}
	}
	if held < 5*time.Minute {
		t.Errorf("a busy rate falling to 0 for 20 minutes: in alarm until %v after the fall, want at least 5 minutes", held)
	}
}

// TestLevelShiftEpisodeEndsOnceSettled: a noisy series that shifts by 20σ
// and stays there (a cache tripling node_memory_Buffers_bytes on a real
// host, scraped every 15 s) is flagged once, and the new level is then the
// normal one: the episode ends once the window's median has taken the new
// level, Window/2 observations after the shift, plus the observation that
// closes it. The slower baselines (the regime's, frozen for up to 3
// hours; the EWMA, slowed while it fires) held it 17 to 20 minutes there,
// and the regime alone for hours. A snapshot taken in the episode, or
// after it while the detectors still score the new level, restores it as
// it was. A shift that goes back while the detectors still score the
// level it left opens no episode for its return.
func TestLevelShiftEpisodeEndsOnceSettled(t *testing.T) {
	const step = 15 * time.Second
	const shiftAt, back = 400, 1000
	v := noise(11, 1200, 1)
	for i := shiftAt; i < back; i++ {
		v[i] += 20
	}
	d := mustDetector(t, Config{})
	var restored []*Detector // from snapshots a sample after the shift and after the close
	opens, last := 0, -1     // episodes opened from the shift on; the last sample in alarm
	for i, x := range v {
		r := d.Observe(at(i, step), x)
		for _, rd := range restored {
			if rr := rd.Observe(at(i, step), x); rr.Alarm != r.Alarm || rr.Episode != r.Episode {
				t.Errorf("sample %d: restored from a snapshot: alarm %v %v, want %v %v", i, rr.Alarm, rr.Episode, r.Alarm, r.Episode)
			}
		}
		if i == shiftAt+1 || r.Episode == EpisodeClose && i < back {
			state, err := d.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			rd := d.Profile().NewDetector()
			if err := rd.UnmarshalBinary(state); err != nil {
				t.Fatal(err)
			}
			restored = append(restored, rd)
		}
		if i < shiftAt {
			continue
		}
		if r.Episode == EpisodeOpen {
			opens++
			if i != shiftAt {
				t.Errorf("episode opened at sample %d, want the shift's, %d", i, shiftAt)
			}
		}
		if r.Alarm {
			last = i
		}
		if r.Episode == EpisodeClose && !r.EpisodeInfo.NewLevel {
			t.Errorf("sample %d: the shift's close %+v, want it at a new level", i, r.EpisodeInfo)
		}
	}
	if opens != 1 {
		t.Errorf("a 20σ shift that stays, then goes back: %d episodes, want one", opens)
	}
	// Settled once the window's median holds the new level (half the
	// window) and the trend test, whose window sees the step as a climb
	// until it has passed it, is calm again: two windows at most.
	if settled := shiftAt + 2*DefaultWindow; last > settled {
		t.Errorf("a 20σ shift that stays: in alarm until sample %d, %v after the shift, want at most %d samples (two windows)", last, time.Duration(last-shiftAt)*step, 2*DefaultWindow)
	}
}

// TestTargetDownIsOneEpisode: Prometheus's up, scored with a forecast of
// its fall under 0.5 (the built-in rule target-up), falls from 1 to 0 for
// four minutes at 15 s, the first move of a line flat for two hours (its
// move opens an episode once the next sample is still off the line) or
// for two days (at once). The fall taught the series its resolution (1),
// so 0 scored 0.14 on the next sample, and the episode ended at the third
// sample down; the forecast opened a second a minute later: two episodes
// for one outage on a real host. A value past the forecast's threshold
// holds the episode: one, from the fall to the first sample back, or
// until the trend test is calm again.
func TestTargetDownIsOneEpisode(t *testing.T) {
	const step = 15 * time.Second
	cfg := Config{Forecast: ForecastConfig{Enabled: true, Threshold: 0.5, Falling: true, Horizon: time.Minute}}
	for _, upFor := range []time.Duration{2 * time.Hour, 48 * time.Hour} {
		fall := int(upFor / step)
		d := mustDetector(t, cfg)
		opens, first, last := 0, -1, -1
		for i := 0; i < fall+16+40; i++ {
			v := 1.0
			if i >= fall && i < fall+16 {
				v = 0
			}
			r := d.Observe(at(i, step), v)
			if r.Episode == EpisodeOpen {
				opens++
			}
			if r.Alarm {
				if first < 0 {
					first = int(r.EpisodeInfo.Start.Sub(at(0, step)) / step)
				}
				last = i
			}
		}
		// Back up, it ends once the trend test, whose window saw the fall
		// and the return, is calm: within half a window.
		if opens != 1 || first != fall || last < fall+15 || last > fall+15+DefaultWindow/2 {
			t.Errorf("up 1 for %v, then 0 for 16 samples: %d episodes, in alarm from sample %d to %d, want one from the fall (%d) to the last sample down (%d) or at most half a window after it", upFor, opens, first, last, fall, fall+15)
		}
	}

	// A noisy utilization that jumps past the forecast's 0.95 and stays
	// there an hour has settled on no new normal: its episode lasts.
	d := mustDetector(t, Config{Forecast: ForecastConfig{Enabled: true, Threshold: 0.95, Horizon: 6 * time.Hour}})
	rng := rand.New(rand.NewPCG(9, 9))
	held := 0 // samples past the threshold in alarm
	for i := range 1000 {
		v := 0.5 + 0.01*rng.NormFloat64()
		if i >= 600 && i < 840 {
			v += 0.48
		}
		if r := d.Observe(at(i, step), v); r.Alarm && i >= 600 && i < 840 {
			held++
		}
	}
	if held != 240 {
		t.Errorf("a utilization past 0.95 for an hour: in alarm %d of its 240 samples", held)
	}
}

// A drift (a leak climbing for days) is no new level: the window's median
// follows a ramp and its robust z stays under the threshold, so its first
// episode ended as settled within the hour, and the hold after it, which
// ends on a calm observation the slower baselines never give a ramp, kept
// four days of a climb from 50 to over 600 from opening another. A series
// still trending has not settled: its episodes end as any other's, and
// it is flagged again each day it goes on (the budget's pace).
func TestDriftIsNoNewLevel(t *testing.T) {
	const ramp = 2 * 1440
	rng := rand.New(rand.NewPCG(1, 1))
	d := mustDetector(t, Config{})
	days := make([]int, 6)
	for i := range ramp + 4*1440 {
		v := 50 + rng.NormFloat64()
		if i >= ramp {
			v += 0.1 * float64(i-ramp) // 100σ of its noise a day
		}
		r := d.Observe(at(i, time.Minute), v)
		if r.Episode == EpisodeOpen {
			days[i/1440]++
		}
		if r.Episode == EpisodeClose && r.EpisodeInfo.NewLevel {
			t.Errorf("minute %d of the climb (%.1f): its episode ended as settled on a new level", i-ramp, v)
		}
	}
	for day := 2; day < 6; day++ {
		if days[day] == 0 {
			t.Errorf("climbing, day %d: no episode opened (opened per day %v)", day+1, days)
		}
	}
}
