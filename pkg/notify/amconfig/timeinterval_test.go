package amconfig

import (
	"testing"
	"time"
)

func TestMuted(t *testing.T) {
	cfg := mustParse(t, `
route:
  receiver: a
  routes:
  - matchers: [r=muted]
    mute_time_intervals: [weekends, nights]
  - matchers: [r=active]
    active_time_intervals: [business]
  - matchers: [r=both]
    mute_time_intervals: [lunch]
    active_time_intervals: [business]
  - matchers: [r=none]
receivers: [{name: a}]
mute_time_intervals:
- name: weekends
  time_intervals: [{weekdays: ['saturday', 'sunday']}]
time_intervals:
- name: nights
  time_intervals:
  - times: [{start_time: '22:00', end_time: '24:00'}, {start_time: '00:00', end_time: '06:00'}]
- name: business
  time_intervals:
  - weekdays: ['monday:friday']
    times: [{start_time: '09:00', end_time: '17:00'}]
    location: Europe/Berlin
- name: lunch
  time_intervals:
  - times: [{start_time: '12:00', end_time: '13:00'}]
    location: Europe/Berlin
`)
	route := func(name string) *Route {
		for _, r := range cfg.Route.Routes {
			if r.Matchers.Matches(map[string]string{"r": name}) {
				return r
			}
		}
		t.Fatalf("no route %s", name)
		return nil
	}
	berlin, _ := time.LoadLocation("Europe/Berlin")
	tokyo, _ := time.LoadLocation("Asia/Tokyo")
	for _, c := range []struct {
		route string
		at    time.Time
		want  bool
	}{
		{"muted", time.Date(2024, 6, 8, 12, 0, 0, 0, time.UTC), true},   // saturday
		{"muted", time.Date(2024, 6, 10, 12, 0, 0, 0, time.UTC), false}, // monday noon
		{"muted", time.Date(2024, 6, 10, 23, 59, 0, 0, time.UTC), true}, // 24:00 ends the day
		{"muted", time.Date(2024, 6, 10, 6, 0, 0, 0, time.UTC), false},  // end is exclusive
		{"muted", time.Date(2024, 6, 10, 5, 59, 0, 0, time.UTC), true},
		// No location: UTC, whatever t's location (Monday 08:00 in Tokyo is Sunday 23:00 UTC).
		{"muted", time.Date(2024, 6, 10, 8, 0, 0, 0, tokyo), true},
		{"active", time.Date(2024, 6, 10, 9, 0, 0, 0, berlin), false},
		{"active", time.Date(2024, 6, 10, 8, 59, 0, 0, berlin), true},
		{"active", time.Date(2024, 6, 10, 7, 30, 0, 0, time.UTC), false}, // 09:30 in Berlin
		{"active", time.Date(2024, 6, 10, 17, 0, 0, 0, berlin), true},
		{"active", time.Date(2024, 6, 8, 10, 0, 0, 0, berlin), true}, // saturday
		{"both", time.Date(2024, 6, 10, 12, 30, 0, 0, berlin), true},
		{"both", time.Date(2024, 6, 10, 11, 30, 0, 0, berlin), false},
		{"none", time.Date(2024, 6, 8, 12, 0, 0, 0, time.UTC), false},
	} {
		got, err := cfg.Muted(route(c.route), c.at)
		if err != nil || got != c.want {
			t.Errorf("%s at %s: Muted = %v, %v; want %v", c.route, c.at, got, err, c.want)
		}
	}
	if _, err := cfg.Muted(&Route{MuteTimeIntervals: []string{"nope"}}, time.Now()); err == nil {
		t.Error("no error for an undefined interval")
	}
}

func TestTimeIntervalContainsTime(t *testing.T) {
	parse := func(y string) TimeInterval {
		t.Helper()
		cfg := mustParse(t, base+"time_intervals: [{name: x, time_intervals: ["+y+"]}]\n")
		return cfg.TimeIntervals[0].TimeIntervals[0]
	}
	berlin, _ := time.LoadLocation("Europe/Berlin")
	for _, c := range []struct {
		interval string
		at       time.Time
		want     bool
	}{
		{"{}", time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), true},
		{"{days_of_month: ['-3:-1']}", time.Date(2024, 2, 27, 0, 0, 0, 0, time.UTC), true}, // leap year: 27 to 29
		{"{days_of_month: ['-3:-1']}", time.Date(2024, 2, 26, 23, 59, 0, 0, time.UTC), false},
		{"{days_of_month: ['-3:-1']}", time.Date(2023, 2, 26, 0, 0, 0, 0, time.UTC), true},
		{"{days_of_month: ['-1']}", time.Date(2024, 4, 30, 0, 0, 0, 0, time.UTC), true},
		{"{days_of_month: ['31']}", time.Date(2024, 4, 30, 0, 0, 0, 0, time.UTC), false},
		{"{days_of_month: ['1:-1']}", time.Date(2024, 4, 17, 0, 0, 0, 0, time.UTC), true},
		{"{days_of_month: ['30:31']}", time.Date(2023, 2, 28, 0, 0, 0, 0, time.UTC), false}, // starts after the month ends
		// The 31st and 30th days from the end of a 28-day month fall before
		// it: nothing in it.
		{"{days_of_month: ['-31:-30']}", time.Date(2023, 2, 1, 0, 0, 0, 0, time.UTC), false},
		{"{days_of_month: ['-31:-28']}", time.Date(2023, 2, 1, 0, 0, 0, 0, time.UTC), true},
		{"{days_of_month: ['-31:-28']}", time.Date(2023, 2, 2, 0, 0, 0, 0, time.UTC), false},
		// Alertmanager's month length in a location that springs forward:
		// March in Berlin has 30 "days", so -1 is the 30th.
		{"{days_of_month: ['-1'], location: Europe/Berlin}", time.Date(2024, 3, 30, 12, 0, 0, 0, berlin), true},
		{"{days_of_month: ['-1'], location: Europe/Berlin}", time.Date(2024, 3, 31, 12, 0, 0, 0, berlin), false},
		{"{days_of_month: ['-1']}", time.Date(2024, 3, 31, 12, 0, 0, 0, time.UTC), true},
		{"{months: ['december:december', 'january:february']}", time.Date(2024, 2, 10, 0, 0, 0, 0, time.UTC), true},
		{"{months: ['march:november']}", time.Date(2024, 2, 10, 0, 0, 0, 0, time.UTC), false},
		{"{years: ['2023:2024']}", time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), false},
		{"{years: ['2023:2024']}", time.Date(2024, 12, 31, 23, 59, 0, 0, time.UTC), true},
		// New Year's Eve in Berlin is still 2024 in UTC.
		{"{years: ['2025'], location: Europe/Berlin}", time.Date(2024, 12, 31, 23, 30, 0, 0, time.UTC), true},
		{"{weekdays: []}", time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), false}, // an empty list matches nothing
		{"{times: []}", time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), false},
		{"{weekdays: ~}", time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), true}, // null does not restrict
		// A null item is the zero range, as in Alertmanager: 0:0.
		{"{weekdays: [~]}", time.Date(2024, 1, 7, 12, 0, 0, 0, time.UTC), true}, // a sunday
		{"{weekdays: [~]}", time.Date(2024, 1, 8, 12, 0, 0, 0, time.UTC), false},
		{"{times: [~]}", time.Date(2024, 1, 8, 0, 0, 0, 0, time.UTC), false},
		{"~", time.Date(2024, 1, 8, 0, 0, 0, 0, time.UTC), true},
	} {
		if got := parse(c.interval).ContainsTime(c.at); got != c.want {
			t.Errorf("%s contains %s = %v, want %v", c.interval, c.at, got, c.want)
		}
	}
}
