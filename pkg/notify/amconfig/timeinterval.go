package amconfig

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// NamedTimeInterval is one entry of time_intervals (or of the older
// mute_time_intervals): a name that routes refer to, and the intervals it
// stands for. A time is in it if it is in any of the intervals.
type NamedTimeInterval struct {
	Name          string
	TimeIntervals []TimeInterval
	// Legacy is true for an entry of the top-level mute_time_intervals,
	// which Alertmanager still reads (and treats as time_intervals).
	Legacy bool
	// Path is where the entry is in the file.
	Path string
}

// ContainsTime reports whether t is in one of the intervals.
func (n *NamedTimeInterval) ContainsTime(t time.Time) bool {
	for _, ti := range n.TimeIntervals {
		if ti.ContainsTime(t) {
			return true
		}
	}
	return false
}

// TimeInterval is a set of times: a time is in it if it satisfies every
// field that is set. A field that is absent (nil) does not restrict; a
// field written as an empty list ([]) matches nothing, as in Alertmanager.
type TimeInterval struct {
	// Times are ranges of minutes of the day: [StartMinute, EndMinute),
	// 00:00 to 24:00.
	Times []TimeRange
	// Weekdays are inclusive ranges, 0 = sunday to 6 = saturday.
	Weekdays []InclusiveRange
	// DaysOfMonth are inclusive ranges of 1 to 31, or -1 (the last day) to
	// -31; clamped to the length of the month.
	DaysOfMonth []InclusiveRange
	// Months are inclusive ranges, 1 = january to 12 = december.
	Months []InclusiveRange
	// Years are inclusive ranges.
	Years []InclusiveRange
	// Location is the time zone the fields are read in; nil is UTC.
	Location *time.Location
}

// TimeRange is [StartMinute, EndMinute) in minutes of the day.
type TimeRange struct {
	StartMinute, EndMinute int
}

// InclusiveRange is [Begin, End].
type InclusiveRange struct {
	Begin, End int
}

// ContainsTime reports whether t is in the interval, with Alertmanager's
// semantics: t is read in Location (UTC when none is given, whatever
// t's own location), times are half-open ([start, end), so 24:00 ends the
// day), the other ranges inclusive, and negative days of the month count
// from its end.
func (tp TimeInterval) ContainsTime(t time.Time) bool {
	if tp.Location != nil {
		t = t.In(tp.Location)
	} else {
		t = t.UTC()
	}
	if tp.Times != nil {
		in := false
		minute := t.Hour()*60 + t.Minute()
		for _, r := range tp.Times {
			if minute >= r.StartMinute && minute < r.EndMinute {
				in = true
				break
			}
		}
		if !in {
			return false
		}
	}
	if tp.DaysOfMonth != nil {
		in := false
		days := daysInMonth(t)
		for _, r := range tp.DaysOfMonth {
			begin, end := r.Begin, r.End
			if begin < 0 {
				begin = days + begin + 1
			}
			if end < 0 {
				end = days + end + 1
			}
			// A range that starts after the end of this month is not in it.
			if begin > days {
				continue
			}
			begin = clamp(begin, -days, days)
			end = clamp(end, -days, days)
			if t.Day() >= begin && t.Day() <= end {
				in = true
				break
			}
		}
		if !in {
			return false
		}
	}
	if tp.Months != nil {
		in := false
		for _, r := range tp.Months {
			if int(t.Month()) >= r.Begin && int(t.Month()) <= r.End {
				in = true
				break
			}
		}
		if !in {
			return false
		}
	}
	if tp.Weekdays != nil {
		in := false
		for _, r := range tp.Weekdays {
			if int(t.Weekday()) >= r.Begin && int(t.Weekday()) <= r.End {
				in = true
				break
			}
		}
		if !in {
			return false
		}
	}
	if tp.Years != nil {
		in := false
		for _, r := range tp.Years {
			if t.Year() >= r.Begin && t.Year() <= r.End {
				in = true
				break
			}
		}
		if !in {
			return false
		}
	}
	return true
}

// daysInMonth is the length of t's month as Alertmanager computes it: the
// hours from the first of the month to the first of the next, in t's
// location, over 24, rounded down. So in a location that moves its clocks
// forward during the month (March in most of Europe), the month is one day
// shorter than on the calendar and day -1 is the day before the last.
// Alertmanager 0.25 does this; we do the same so that intervals mute what
// they mute there.
func daysInMonth(t time.Time) int {
	start := time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, t.Location())
	return int(start.AddDate(0, 1, 0).Sub(start).Hours() / 24)
}

func clamp(n, lo, hi int) int {
	return min(max(n, lo), hi)
}

// Muted reports whether notifications of route r are held back at t: t is
// in one of its mute_time_intervals, or it has active_time_intervals and t
// is in none of them. An interval name the configuration does not define
// is an error (Parse refuses such a configuration, so this happens only
// for a route of another Config).
func (c *Config) Muted(r *Route, t time.Time) (bool, error) {
	muted, err := c.inIntervals(t, r.MuteTimeIntervals)
	if err != nil || muted {
		return muted, err
	}
	if len(r.ActiveTimeIntervals) == 0 {
		return false, nil
	}
	active, err := c.inIntervals(t, r.ActiveTimeIntervals)
	if err != nil {
		return false, err
	}
	return !active, nil
}

func (c *Config) inIntervals(t time.Time, names []string) (bool, error) {
	for _, name := range names {
		ti, ok := c.TimeInterval(name)
		if !ok {
			return false, fmt.Errorf("amconfig: time interval %q is not defined", name)
		}
		if ti.ContainsTime(t) {
			return true, nil
		}
	}
	return false, nil
}

// TimeInterval returns the time interval of that name, from time_intervals
// or mute_time_intervals.
func (c *Config) TimeInterval(name string) (*NamedTimeInterval, bool) {
	for _, ti := range c.TimeIntervals {
		if ti.Name == name {
			return ti, true
		}
	}
	return nil, false
}

// Decoding.

var (
	weekdays = map[string]int{"sunday": 0, "monday": 1, "tuesday": 2, "wednesday": 3, "thursday": 4, "friday": 5, "saturday": 6}
	months   = map[string]int{"january": 1, "february": 2, "march": 3, "april": 4, "may": 5, "june": 6,
		"july": 7, "august": 8, "september": 9, "october": 10, "november": 11, "december": 12}
	monthNames = func() map[int]string {
		m := map[int]string{}
		for k, v := range months {
			m[v] = k
		}
		return m
	}()
	clockRE = regexp.MustCompile(`^((([01][0-9])|(2[0-3])):[0-5][0-9])$|(^24:00$)`)
)

func (d *decoder) namedTimeIntervals(n *yaml.Node, path string, legacy bool) []*NamedTimeInterval {
	items, _ := d.sequence(n, path)
	var out []*NamedTimeInterval
	for i, it := range items {
		entries, ok := d.mapping(it, index(path, i))
		if !ok {
			continue
		}
		nti := &NamedTimeInterval{Legacy: legacy}
		for _, e := range entries {
			if e.key == "name" {
				nti.Name, _ = d.str(e.val, e.path)
			}
		}
		p := named(path, i, nti.Name)
		nti.Path = p
		for _, e := range entries {
			e.path = joinKey(p, e.key)
			switch e.key {
			case "name":
			case "time_intervals":
				nti.TimeIntervals = nil
				list, _ := d.sequence(e.val, e.path)
				for j, tin := range list {
					if ti, ok := d.timeInterval(tin, index(e.path, j)); ok {
						nti.TimeIntervals = append(nti.TimeIntervals, ti)
					}
				}
			default:
				d.unknownKey(e, "name, time_intervals")
			}
		}
		if nti.Name == "" {
			d.errorf(it, p, "name is required")
		}
		out = append(out, nti)
	}
	return out
}

func (d *decoder) timeInterval(n *yaml.Node, path string) (TimeInterval, bool) {
	var ti TimeInterval
	entries, ok := d.mapping(n, path)
	if !ok {
		return ti, false
	}
	before := len(d.errs)
	for _, e := range entries {
		switch e.key {
		case "times":
			items, ok := d.sequence(e.val, e.path)
			ti.Times = nil
			if ok && items != nil {
				ti.Times = []TimeRange{}
			}
			for i, it := range items {
				if tr, ok := d.timeRange(it, index(e.path, i)); ok {
					ti.Times = append(ti.Times, tr)
				}
			}
		case "weekdays":
			ti.Weekdays = d.ranges(e.val, e.path, parseWeekdayRange)
		case "days_of_month":
			ti.DaysOfMonth = d.ranges(e.val, e.path, parseDayOfMonthRange)
		case "months":
			ti.Months = d.ranges(e.val, e.path, parseMonthRange)
		case "years":
			ti.Years = d.ranges(e.val, e.path, parseYearRange)
		case "location":
			if isNull(e.val) {
				continue
			}
			s, ok := d.str(e.val, e.path)
			if !ok {
				continue
			}
			loc, err := time.LoadLocation(s)
			if err != nil {
				d.errorf(resolve(e.val), e.path, "%v", err)
				continue
			}
			ti.Location = loc
		default:
			d.unknownKey(e, "times, weekdays, days_of_month, months, years, location")
		}
	}
	return ti, len(d.errs) == before
}

func (d *decoder) timeRange(n *yaml.Node, path string) (TimeRange, bool) {
	if isNull(n) {
		// yaml.v2 leaves a null item at the zero range, which no time is in.
		return TimeRange{}, true
	}
	var start, end string
	entries, ok := d.mapping(n, path)
	if !ok {
		return TimeRange{}, false
	}
	for _, e := range entries {
		switch e.key {
		case "start_time":
			start, _ = d.str(e.val, e.path)
		case "end_time":
			end, _ = d.str(e.val, e.path)
		default:
			d.unknownKey(e, "start_time, end_time")
		}
	}
	if start == "" || end == "" {
		d.errorf(resolve(n), path, "both start_time and end_time are required")
		return TimeRange{}, false
	}
	s, err := parseClock(start)
	if err != nil {
		d.errorf(resolve(n), joinKey(path, "start_time"), "%v", err)
		return TimeRange{}, false
	}
	e, err := parseClock(end)
	if err != nil {
		d.errorf(resolve(n), joinKey(path, "end_time"), "%v", err)
		return TimeRange{}, false
	}
	if s >= e {
		d.errorf(resolve(n), path, "start_time %s must be before end_time %s", start, end)
		return TimeRange{}, false
	}
	return TimeRange{StartMinute: s, EndMinute: e}, true
}

// parseClock reads HH:MM, 00:00 to 24:00, as minutes of the day.
func parseClock(s string) (int, error) {
	if !clockRE.MatchString(s) {
		return 0, fmt.Errorf("%q is not a time of day (HH:MM, 00:00 to 24:00)", s)
	}
	h, _ := strconv.Atoi(s[:2])
	m, _ := strconv.Atoi(s[3:])
	return h*60 + m, nil
}

// ranges decodes a list of "a" or "a:b" items; null is nil, [] an empty
// (non-nil) list.
func (d *decoder) ranges(n *yaml.Node, path string, parse func(string) (InclusiveRange, error)) []InclusiveRange {
	items, ok := d.sequence(n, path)
	if !ok || items == nil {
		return nil
	}
	out := []InclusiveRange{}
	for i, it := range items {
		if isNull(it) {
			// yaml.v2 leaves a null item at the zero range, 0:0, unchecked.
			out = append(out, InclusiveRange{})
			continue
		}
		s, ok := d.str(it, index(path, i))
		if !ok {
			continue
		}
		r, err := parse(s)
		if err != nil {
			d.errorf(it, index(path, i), "%v", err)
			continue
		}
		out = append(out, r)
	}
	return out
}

// splitRange splits "a:b" (or "a", which is a:a) after lowercasing, and
// maps each side with member.
func splitRange(in string, member func(string) (int, error)) (InclusiveRange, error) {
	in = strings.ToLower(in)
	if strings.ContainsRune(in, ':') {
		parts := strings.Split(in, ":")
		if len(parts) != 2 {
			return InclusiveRange{}, fmt.Errorf("%q is not a range (a or a:b)", in)
		}
		b, err := member(parts[0])
		if err != nil {
			return InclusiveRange{}, err
		}
		e, err := member(parts[1])
		if err != nil {
			return InclusiveRange{}, err
		}
		return InclusiveRange{Begin: b, End: e}, nil
	}
	v, err := member(in)
	return InclusiveRange{Begin: v, End: v}, err
}

func parseWeekdayRange(s string) (InclusiveRange, error) {
	r, err := splitRange(s, func(m string) (int, error) {
		v, ok := weekdays[m]
		if !ok {
			return 0, fmt.Errorf("%q is not a weekday (sunday to saturday)", m)
		}
		return v, nil
	})
	if err != nil {
		return r, err
	}
	if r.Begin > r.End {
		return r, fmt.Errorf("%q: the start day must not come after the end day (ranges go from sunday to saturday)", s)
	}
	return r, nil
}

func parseDayOfMonthRange(s string) (InclusiveRange, error) {
	r, err := splitRange(s, atoi)
	if err != nil {
		return r, err
	}
	if r.Begin == 0 || r.Begin < -31 || r.Begin > 31 {
		return r, fmt.Errorf("%d is not a day of the month (1 to 31, or -31 to -1 from the end)", r.Begin)
	}
	if r.End == 0 || r.End < -31 || r.End > 31 {
		return r, fmt.Errorf("%d is not a day of the month (1 to 31, or -31 to -1 from the end)", r.End)
	}
	if r.Begin < 0 && r.End > 0 {
		return r, fmt.Errorf("%q: the end day must be negative if the start day is", s)
	}
	// Alertmanager checks begin <= end on a 28-day month.
	b, e := r.Begin, r.End
	if b < 0 {
		b += 28
	}
	if e < 0 {
		e += 28
	}
	if b > e {
		return r, fmt.Errorf("%q: the end day is always before the start day", s)
	}
	return r, nil
}

func parseMonthRange(s string) (InclusiveRange, error) {
	r, err := splitRange(s, func(m string) (int, error) {
		if v, ok := months[m]; ok {
			return v, nil
		}
		v, err := strconv.Atoi(m)
		if err != nil {
			return 0, fmt.Errorf("%q is not a month (january to december, or 1 to 12)", m)
		}
		return v, nil
	})
	if err != nil {
		return r, err
	}
	if r.Begin > r.End {
		return r, fmt.Errorf("%q: end month %s is before start month %s", s, monthName(r.End), monthName(r.Begin))
	}
	return r, nil
}

func monthName(m int) string {
	if n, ok := monthNames[m]; ok {
		return n
	}
	return strconv.Itoa(m)
}

func parseYearRange(s string) (InclusiveRange, error) {
	r, err := splitRange(s, atoi)
	if err != nil {
		return r, err
	}
	if r.Begin > r.End {
		return r, fmt.Errorf("%q: end year %d is before start year %d", s, r.End, r.Begin)
	}
	return r, nil
}

func atoi(s string) (int, error) {
	v, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a number", s)
	}
	return v, nil
}
