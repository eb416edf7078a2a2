package detect

import (
	"bytes"
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// alarmRuns replays values at one-minute steps and returns the fraction of
// rows from row from on in alarm, the longest alarm run there, and the first
// row at or after from in alarm (-1 if none).
func alarmRuns(t *testing.T, values []float64, from int) (frac float64, longest, first int) {
	t.Helper()
	d := mustDetector(t, Config{})
	first = -1
	run, flagged := 0, 0
	for i, v := range values {
		r := d.Observe(at(i, time.Minute), v)
		if i < from {
			continue
		}
		if r.Alarm {
			flagged++
			run++
			longest = max(longest, run)
			if first < 0 {
				first = i
			}
		} else {
			run = 0
		}
	}
	return float64(flagged) / float64(len(values)-from), longest, first
}

// TestNoLastingAlarmOnOddButNormalSeries: series that are normal in their
// own way (event counts that are mostly zero, a noise-free square wave, a
// spike that recurs every hour) must not hold the alarm on: after two days
// of learning, under 1% of the rows are in alarm and no alarm lasts an hour.
func TestNoLastingAlarmOnOddButNormalSeries(t *testing.T) {
	const n = 5 * 1440
	rng := rand.New(rand.NewPCG(16, 1))
	zeros := make([]float64, n)
	for i := range zeros {
		if rng.Float64() < 0.03 {
			zeros[i] = float64(1 + rng.IntN(3))
		}
	}
	square := make([]float64, n)
	for i := range square {
		if (i/90)%2 == 1 { // 90 minutes up, 90 down
			square[i] = 10
		}
	}
	hourly := make([]float64, n)
	for i := range hourly {
		hourly[i] = 50 + rng.NormFloat64()
		if i%60 == 0 {
			hourly[i] += 30
		}
	}
	for name, v := range map[string][]float64{"mostly zeros": zeros, "square wave": square, "hourly spike": hourly} {
		frac, longest, _ := alarmRuns(t, v, 2*1440)
		if frac > 0.01 || longest >= 60 {
			t.Errorf("%s: %.2f%% of rows in alarm, longest alarm %d rows; want under 1%% and under an hour", name, 100*frac, longest)
		}
	}
}

// TestRealChangesStillFound: a level shift, a drift and a variance change
// on a noisy daily-seasonal series are each found within hours of their
// start, and nothing is flagged for long before.
func TestRealChangesStillFound(t *testing.T) {
	const n, k = 4 * 1440, 3 * 1440
	base := func(seed uint64) []float64 {
		rng := rand.New(rand.NewPCG(seed, 16))
		v := make([]float64, n)
		for i := range v {
			v[i] = 100 + 10*math.Sin(2*math.Pi*float64(i)/1440) + rng.NormFloat64()
		}
		return v
	}
	shift, drift, variance := base(1), base(2), base(3)
	for i := k; i < n; i++ {
		shift[i] += 6
		drift[i] += 0.05 * float64(i-k) // 3σ an hour
		variance[i] = 100 + 10*math.Sin(2*math.Pi*float64(i)/1440) + 5*(variance[i]-100-10*math.Sin(2*math.Pi*float64(i)/1440))
	}
	for name, v := range map[string][]float64{"level shift": shift, "drift": drift, "variance change": variance} {
		fracBefore, _, _ := alarmRuns(t, v[:k], 1440)
		_, _, first := alarmRuns(t, v, k)
		if first < 0 || first-k > 180 {
			t.Errorf("%s at row %d: first alarm at %d, want within 3 hours", name, k, first)
		}
		if fracBefore > 0.01 {
			t.Errorf("%s: %.2f%% of the rows before the change in alarm", name, 100*fracBefore)
		}
	}
}

// TestEpisodeLifecycle: a fault far outside the band, shorter than half
// the window (longer, it is a level shift: TestLevelShiftEpisodeEndsOnceSettled),
// opens one episode, updates it at most every UpdateEvery, and closes it
// with its span and peak at the first value back in range; an anomaly
// that outlasts MaxDuration is closed there, and the budget's bar keeps
// the same state from reopening at once.
func TestEpisodeLifecycle(t *testing.T) {
	v := noise(7, 700, 1)
	for i := 400; i < 415; i++ {
		v[i] += 40
	}
	d := mustDetector(t, Config{Episode: EpisodeConfig{UpdateEvery: 10 * time.Minute}})
	var events []EpisodeEvent
	var closed Result
	for i, x := range v {
		r := d.Observe(at(i, time.Minute), x)
		if r.Episode != EpisodeNone {
			events = append(events, r.Episode)
		}
		if r.Episode == EpisodeClose {
			closed = r
		}
		if r.Alarm != (i >= 400 && i < 415) && i >= 300 {
			t.Fatalf("row %d: alarm %v", i, r.Alarm)
		}
	}
	if len(events) < 2 || events[0] != EpisodeOpen || events[len(events)-1] != EpisodeClose || len(events)-2 > 6 {
		t.Fatalf("events %v, want open, at most 6 updates, close", events)
	}
	ep := closed.EpisodeInfo
	if !ep.Start.Equal(at(400, time.Minute)) || !ep.End.Equal(at(414, time.Minute)) || ep.Peak < 0.5 || ep.PeakValue < 130 || ep.NewLevel {
		t.Errorf("closed episode %+v, want 400..414 with a peak at the fault's level, back in range", ep)
	}

	// a series that stops 10σ away and stays, held by the level-shift
	// regime (it settles on no new level, as it does not move): closed
	// after MaxDuration, and the same state does not reopen it
	long := mustDetector(t, Config{Seasonal: SeasonalConfig{Disabled: true}, Episode: EpisodeConfig{MaxDuration: 30 * time.Minute}})
	w := noise(8, 600, 1)
	opens, closes := 0, 0
	for i, x := range w {
		if i >= 100 {
			x = 110
		}
		r := long.Observe(at(i, time.Minute), x)
		switch r.Episode {
		case EpisodeOpen:
			opens++
		case EpisodeClose:
			closes++
			if d := r.Time.Sub(r.EpisodeInfo.Start); d != 30*time.Minute {
				t.Errorf("episode %+v closed %v after its start, want MaxDuration", r.EpisodeInfo, d)
			}
		}
	}
	if opens != 1 || closes != 1 {
		t.Errorf("%d opens, %d closes for one lasting stop", opens, closes)
	}
}

// TestOpenEpisodeOf: the open episode is read from a state whatever its
// profile (seasonal or not, any window), equal to what EndEpisode of the
// restored detector gives; a state with no episode open gives none, and a
// truncated one an error.
func TestOpenEpisodeOf(t *testing.T) {
	for name, cfg := range map[string]Config{
		"default":      {},
		"no season":    {Seasonal: SeasonalConfig{Disabled: true}},
		"window of 31": {Window: 31, Seasonal: SeasonalConfig{Disabled: true}},
	} {
		t.Run(name, func(t *testing.T) {
			v := noise(7, 410, 1)
			for i := 400; i < 410; i++ {
				v[i] += 40
			}
			d := mustDetector(t, cfg)
			state := func() []byte {
				b, err := d.MarshalBinary()
				if err != nil {
					t.Fatal(err)
				}
				return b
			}
			for i, x := range v[:400] {
				d.Observe(at(i, time.Minute), x)
			}
			if _, ok, err := OpenEpisodeOf(state()); ok || err != nil {
				t.Fatalf("before the fault: open %v, err %v", ok, err)
			}
			for i := 400; i < 410; i++ {
				d.Observe(at(i, time.Minute), v[i])
			}
			if !d.InEpisode() {
				t.Fatal("no episode open in the fault")
			}
			b := state()
			got, ok, err := OpenEpisodeOf(b)
			want, _ := d.EndEpisode()
			if !ok || err != nil || got != want {
				t.Fatalf("OpenEpisodeOf = %+v %v %v, want %+v", got, ok, err, want)
			}
			if !got.Start.Equal(at(400, time.Minute)) || !got.End.Equal(at(409, time.Minute)) {
				t.Errorf("episode %v..%v, want the fault's rows 400..409", got.Start, got.End)
			}
			if _, _, err := OpenEpisodeOf(b[:60]); err == nil {
				t.Error("a truncated state gave no error")
			}
			// ended in the bytes: no episode, and the state restores into
			// its profile as EndEpisode leaves it
			ended, err := EndEpisodeIn(b)
			if err != nil {
				t.Fatal(err)
			}
			if _, open, err := OpenEpisodeOf(ended); open || err != nil {
				t.Fatalf("after EndEpisodeIn: open %v, err %v", open, err)
			}
			restored := mustDetector(t, cfg)
			if err := restored.UnmarshalBinary(ended); err != nil {
				t.Fatal(err)
			}
			again, _ := d.MarshalBinary() // d's episode was ended by EndEpisode above
			if got, _ := restored.MarshalBinary(); !bytes.Equal(got, again) {
				t.Error("the state ended in its bytes differs from the one EndEpisode ended")
			}
		})
	}
}
