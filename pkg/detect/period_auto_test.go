package detect

import (
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// seasonSeries returns n values every step: season(t) plus noise of σ 1.
func seasonSeries(seed uint64, n int, step time.Duration, season func(t time.Duration) float64) []float64 {
	rng := rand.New(rand.NewPCG(seed, 7))
	v := make([]float64, n)
	for i := range v {
		v[i] = season(time.Duration(i)*step) + rng.NormFloat64()
	}
	return v
}

func sine(period time.Duration, amp float64) func(time.Duration) float64 {
	return func(t time.Duration) float64 { return amp * math.Sin(2*math.Pi*float64(t)/float64(period)) }
}

// officeHours is a working-day profile: busy hours on weekdays, quiet
// weekends.
func officeHours(t time.Duration) float64 {
	day := int(t / (24 * time.Hour) % 7)
	h := int(t/time.Hour) % 24
	if day < 5 && h >= 8 && h < 18 {
		return 5
	}
	return 0
}

func TestSelectPeriod(t *testing.T) {
	const days = 15
	weekly := officeHours
	var walk float64
	rng := rand.New(rand.NewPCG(9, 9))
	for name, c := range map[string]struct {
		step   time.Duration
		season func(time.Duration) float64
		want   time.Duration
	}{
		"hourly sine":                           {time.Minute, sine(time.Hour, 3), time.Hour},
		"daily sine":                            {time.Minute, sine(24*time.Hour, 3), 24 * time.Hour},
		"daily at 5m":                           {5 * time.Minute, sine(24*time.Hour, 3), 24 * time.Hour},
		"weekly":                                {5 * time.Minute, weekly, 7 * 24 * time.Hour},
		"noise only":                            {time.Minute, func(time.Duration) float64 { return 0 }, 0},
		"random walk":                           {5 * time.Minute, func(time.Duration) float64 { walk += rng.NormFloat64(); return walk }, 0},
		"daily under the noise of hourly means": {time.Minute, sine(24*time.Hour, 0.02), 0},
		"hourly at 1h":                          {time.Hour, sine(time.Hour, 3), 0}, // the interval cannot show it
		"daily at 1h":                           {time.Hour, sine(24*time.Hour, 3), 24 * time.Hour},
	} {
		for seed := uint64(1); seed <= 3; seed++ {
			walk = 0
			n := int(days * 24 * time.Hour / c.step)
			if got := SelectPeriod(seasonSeries(seed, n, c.step, c.season), c.step); got != c.want {
				t.Errorf("%s, seed %d: period %v, want %v", name, seed, got, c.want)
			}
		}
	}
}

// TestAutoSeasonDetector: a detector with Season auto switches to the
// period of its series, keeps it across a snapshot, and scores a
// deviation from the hourly profile it chose.
func TestAutoSeasonDetector(t *testing.T) {
	step := time.Minute
	v := seasonSeries(1, 4*24*60, step, sine(time.Hour, 5))
	auto := Config{Season: SeasonAuto}
	d := mustDetector(t, auto)
	if d.Period() != 24*time.Hour {
		t.Fatalf("before deciding: period %v, want the configured 24h", d.Period())
	}
	for i, x := range v {
		d.Observe(at(i, step), x)
	}
	if d.Period() != time.Hour {
		t.Fatalf("after 4 days of an hourly sine: period %v, want 1h", d.Period())
	}
	snap, err := d.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	e := mustDetector(t, auto)
	if err := e.UnmarshalBinary(snap); err != nil {
		t.Fatal(err)
	}
	if e.Period() != time.Hour || e.finder != nil {
		t.Fatalf("restored: period %v, still choosing %v", e.Period(), e.finder != nil)
	}
	// the profile is learnt: on-season values are calm, the opposite
	// phase (the profile inverted) is not
	n := len(v)
	calm, inv := 0, 0
	for i := 0; i < 60; i++ {
		x := 5 * math.Sin(2*math.Pi*float64(i+n)/60)
		if e.Observe(at(n+i, step), x).Score >= 0.5 {
			calm++
		}
	}
	for i := 60; i < 120; i++ {
		x := -5 * math.Sin(2*math.Pi*float64(i+n)/60)
		if e.Observe(at(n+i, step), x).Scores[KindSeasonal] >= 0.5 {
			inv++
		}
	}
	if calm > 3 || inv < 20 {
		t.Errorf("hourly profile: %d of 60 on-season minutes anomalous, %d of 60 inverted ones seasonal-anomalous", calm, inv)
	}

	none := mustDetector(t, auto)
	w := seasonSeries(2, 4*24*60, step, func(time.Duration) float64 { return 0 })
	for i, x := range w {
		none.Observe(at(i, step), x)
	}
	if none.Period() != 0 {
		t.Errorf("noise only: period %v, want none", none.Period())
	}
	for _, cfg := range []Config{{}, {Season: "24h"}} {
		fixed := mustDetector(t, cfg)
		for i, x := range v {
			fixed.Observe(at(i, step), x)
		}
		if fixed.Period() != 24*time.Hour {
			t.Errorf("season %q: period %v, want 24h kept", cfg.Season, fixed.Period())
		}
	}
}

func TestSeasonConfig(t *testing.T) {
	for _, c := range []Config{{Season: "auto"}, {Season: "none"}, {Season: "1h"}, {Season: "1h", Seasonal: SeasonalConfig{Period: time.Hour}}} {
		if err := c.Validate(); err != nil {
			t.Errorf("%+v: %v", c.Season, err)
		}
	}
	if c := (Config{Season: "none"}).WithDefaults(); !c.Seasonal.Disabled {
		t.Error("season none leaves the seasonal baseline on")
	}
	if c := (Config{Season: "1h"}).WithDefaults(); c.Seasonal.Period != time.Hour {
		t.Errorf("season 1h: period %v", c.Seasonal.Period)
	}
	for _, c := range []Config{{Season: "daily"}, {Season: "1h", Seasonal: SeasonalConfig{Period: 2 * time.Hour}}, {Season: "0.5s"}} {
		if err := c.Validate(); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%q: error %v, want ErrInvalidConfig", c.Season, err)
		}
	}
}

// TestSeasonSnapshot: version 5's season fields round-trip (no season
// included), a version 4 snapshot restores with the configured season, and
// impossible season fields are refused.
func TestSeasonSnapshot(t *testing.T) {
	step := time.Minute
	auto := Config{Season: SeasonAuto}
	none := mustDetector(t, auto)
	for i, x := range seasonSeries(3, 4*24*60, step, func(time.Duration) float64 { return 0 }) {
		none.Observe(at(i, step), x)
	}
	snap, err := none.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	r := mustDetector(t, auto)
	if err := r.UnmarshalBinary(snap); err != nil || r.Period() != 0 || r.finder != nil {
		t.Fatalf("no season restored: %v, period %v, choosing %v", err, r.Period(), r.finder != nil)
	}
	v4 := append([]byte(nil), snap[:len(snap)-seasonBytes]...)
	v4[2] = 4
	r = mustDetector(t, auto)
	if err := r.UnmarshalBinary(v4); err != nil || r.Period() != 24*time.Hour || r.finder != nil {
		t.Fatalf("version 4 restored: %v, period %v, choosing %v", err, r.Period(), r.finder != nil)
	}
	young := mustDetector(t, auto)
	young.Observe(at(0, step), 1)
	snap, _ = young.MarshalBinary()
	r = mustDetector(t, auto)
	if err := r.UnmarshalBinary(snap); err != nil || r.finder == nil {
		t.Fatalf("choosing restored: %v, choosing %v", err, r.finder != nil)
	}
	for name, c := range map[string]struct {
		cfg    Config
		period time.Duration
		flag   byte
	}{
		"2h period under auto":        {auto, 2 * time.Hour, 0},
		"hourly under a fixed 24h":    {Config{}, time.Hour, 0},
		"choosing under a fixed 24h":  {Config{}, 24 * time.Hour, 1},
		"choice flag 3":               {auto, 24 * time.Hour, 3},
		"a season without a profile":  {Config{Season: SeasonNone}, 24 * time.Hour, 0},
		"no season under a fixed 24h": {Config{}, 0, 0},
	} {
		d := mustDetector(t, c.cfg)
		b, _ := d.MarshalBinary()
		binary.LittleEndian.PutUint64(b[len(b)-seasonBytes:], uint64(c.period))
		b[len(b)-1] = c.flag
		if err := mustDetector(t, c.cfg).UnmarshalBinary(b); !errors.Is(err, ErrStateCorrupt) {
			t.Errorf("%s: %v, want ErrStateCorrupt", name, err)
		}
	}
}

// TestWeeklySeasonHourlyBuckets: a weekly season auto chose has one bucket
// an hour (the configured 24 would span 7 hours each, across the start
// and end of office hours); the profile's shape is learnt, its snapshot
// (version 6) round-trips with 168 buckets, and a version 5 snapshot of a
// weekly season (24 buckets) restores interpolated to 168.
func TestWeeklySeasonHourlyBuckets(t *testing.T) {
	step := 5 * time.Minute
	auto := Config{Season: SeasonAuto}
	d := mustDetector(t, auto)
	v := seasonSeries(4, 4*7*24*12, step, officeHours)
	for i, x := range v {
		d.Observe(at(i, step), x)
	}
	if d.Period() != 7*24*time.Hour || len(d.season) != weekBuckets {
		t.Fatalf("after 4 weeks of office hours: period %v with %d buckets, want 168h with %d", d.Period(), len(d.season), weekBuckets)
	}
	// the series' first day (a working day of officeHours) is busy at
	// 10:00 and quiet at 20:00, its sixth (a weekend) quiet at 10:00
	seasonAt := func(day, hour int) float64 {
		s, _, _, _ := d.seasonAt(at(0, step).Add(time.Duration(day*24+hour) * time.Hour).UnixNano())
		return s
	}
	if busy, evening, weekend := seasonAt(0, 10), seasonAt(0, 20), seasonAt(5, 10); busy-evening < 4 || busy-weekend < 4 {
		t.Errorf("profile: Monday 10:00 %.2f, 20:00 %.2f, Saturday 10:00 %.2f; want office hours 5 above the rest", busy, evening, weekend)
	}
	snap, err := d.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	r := mustDetector(t, auto)
	if err := r.UnmarshalBinary(snap); err != nil || r.Period() != d.Period() || len(r.season) != weekBuckets {
		t.Fatalf("restored: %v, period %v, %d buckets", err, r.Period(), len(r.season))
	}
	next := at(len(v), step)
	if a, b := d.Observe(next, 5), r.Observe(next, 5); a.Score != b.Score || a.Expected != b.Expected {
		t.Errorf("restored detector scores %v (expected %v), the original %v (%v)", b.Score, b.Expected, a.Score, a.Expected)
	}

	// version 5: the same state with the configured 24 buckets
	old := *d
	old.season = resampleProfile(d.season, DefaultBuckets)
	old.bucketNs = weekNs / DefaultBuckets
	v5, err := old.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	v5[2] = 5
	r = mustDetector(t, auto)
	if err := r.UnmarshalBinary(v5); err != nil || r.Period() != d.Period() || len(r.season) != weekBuckets {
		t.Fatalf("version 5 restored: %v, period %v, %d buckets", err, r.Period(), len(r.season))
	}
	for h := 0; h < weekBuckets; h += 7 { // the 24 buckets' own phases
		if got, want := r.season[h], old.season[h/7]; math.Abs(float64(got-want)) > 1e-6 {
			t.Errorf("version 5 bucket %d: %v, the 24-bucket profile has %v there", h, got, want)
		}
	}
	// a version 6 snapshot whose bucket count does not fit its season
	v5[2] = 6
	if err := mustDetector(t, auto).UnmarshalBinary(v5); !errors.Is(err, ErrStateCorrupt) {
		t.Errorf("version 6 weekly with 24 buckets: %v, want ErrStateCorrupt", err)
	}
}
