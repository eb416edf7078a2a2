package aiops

import (
	"fmt"
	"html"
	"io"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/aiops-dev/aiops/pkg/correlate"
)

// writeIncidentPage draws one incident, as of now, as a self-contained HTML page
// (inline SVG, no script, nothing fetched), for the person on call: a
// lane per member from its first signal to its resolution (or to the
// incident's last signal while it fires), the linked changes, the
// opening, acknowledgement and resolution, a mark per timeline entry; then
// the root-cause candidates, the timeline and the comments as text. Every
// text is escaped: anyone who can post an alert, a change or a comment
// chooses it.
func writeIncidentPage(w io.Writer, st correlate.State, now time.Time) error {
	from, to := incidentSpan(st, now)
	const width, left, laneH = 1100.0, 260.0, 18.0
	x := pageScale(from, to, left, width)
	members := slices.Clone(st.Members)
	slices.SortStableFunc(members, func(a, b correlate.Member) int {
		if c := strings.Compare(a.Service, b.Service); c != 0 {
			return c
		}
		return a.FirstSeen.Compare(b.FirstSeen)
	})
	const top = 40.0
	lanesEnd := top + float64(len(members))*laneH
	height := lanesEnd + 70

	var b strings.Builder
	esc := html.EscapeString
	fmt.Fprintf(&b, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>%s</title>\n", esc("incident "+st.IncidentID))
	b.WriteString("<style>body{font-family:sans-serif;margin:20px}svg text{font-size:11px}td{padding:2px 8px;vertical-align:top}.legend span{margin-right:14px}</style></head><body>\n")
	fmt.Fprintf(&b, "<h2>%s</h2>\n<p><b>%s</b>", esc(st.Title), esc(st.IncidentID))
	fmt.Fprintf(&b, " &middot; %s &middot; severity %s &middot; service %s (team %s, owner %s, tier %s)", esc(st.State), esc(orDash(string(st.Severity))),
		esc(orDash(st.Service)), esc(orDash(st.Team)), esc(orDash(st.Owner)), esc(orDash(st.Tier)))
	if st.Assignee != "" {
		fmt.Fprintf(&b, " &middot; assigned to %s", esc(st.Assignee))
	}
	b.WriteString("</p>\n")
	if st.Runbook != "" {
		// Linked only when it is a web address: a javascript: runbook
		// would run in the page of whoever opens it.
		if u, err := url.Parse(st.Runbook); err == nil && (u.Scheme == "http" || u.Scheme == "https") {
			fmt.Fprintf(&b, "<p>runbook <a href=\"%s\">%s</a></p>\n", esc(st.Runbook), esc(st.Runbook))
		} else {
			fmt.Fprintf(&b, "<p>runbook %s</p>\n", esc(st.Runbook))
		}
	}
	fmt.Fprintf(&b, "<p>%d members, %d firing", st.MemberCount, st.Firing)
	if len(st.Members) < st.MemberCount {
		fmt.Fprintf(&b, " (%d drawn: the incident's state lists at most that many, firing ones first)", len(st.Members))
	}
	fmt.Fprintf(&b, "; %s to %s UTC</p>\n", from.UTC().Format("2006-01-02 15:04:05"), to.UTC().Format("2006-01-02 15:04:05"))
	b.WriteString("<p class=\"legend\"><span style=\"color:#d62728\">&#9644; alert firing</span><span style=\"color:#9467bd\">&#9644; anomaly firing</span>" +
		"<span style=\"color:#ff7f0e\">&#9644; flapping</span><span style=\"color:#999\">&#9644; resolved</span><span style=\"color:#555\">&#9474; change</span>" +
		"<span style=\"color:#1f77b4\">&#9474; opened</span><span style=\"color:#2ca02c\">&#9474; acknowledged</span><span>&#9474; resolved</span><span>&#9650; timeline entry</span></p>\n")
	fmt.Fprintf(&b, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\">\n", width, height)
	writeTicks(&b, from, to, x, top, lanesEnd+20)
	for i, m := range members {
		y := top + float64(i)*laneH
		end := m.LastSeen
		if m.Firing {
			end = to
		}
		color := "#999"
		switch {
		case m.Flapping:
			color = "#ff7f0e"
		case m.Firing && m.Kind == correlate.SignalAnomaly:
			color = "#9467bd"
		case m.Firing:
			color = "#d62728"
		}
		what := fmt.Sprintf("%s %s on %s: %d signals, first %s, last %s", m.Kind, m.Name, m.Service, m.Count,
			m.FirstSeen.UTC().Format(time.RFC3339), m.LastSeen.UTC().Format(time.RFC3339))
		if m.Reading != nil {
			what += fmt.Sprintf("; value %g, expected %g (band %g to %g)", m.Value, m.Expected, m.Lower, m.Upper)
		}
		if m.Summary != "" {
			what += "; " + m.Summary
		}
		fmt.Fprintf(&b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n", left-6, y+12, esc(cut(m.Service+": "+m.Name, 40)))
		fmt.Fprintf(&b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"><title>%s</title></rect>\n",
			x(m.FirstSeen), y+3, max(2, x(end)-x(m.FirstSeen)), laneH-6, color, esc(what))
	}
	vline := func(t time.Time, color, dash, label string) {
		if t.IsZero() {
			return
		}
		fmt.Fprintf(&b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-dasharray=\"%s\"><title>%s</title></line>\n",
			x(t), top-2, x(t), lanesEnd+20, color, dash, esc(label))
	}
	for _, ch := range st.Changes {
		vline(ch.Time, "#555", "4 3", fmt.Sprintf("%s %s %s %s by %s", ch.Time.UTC().Format(time.RFC3339), ch.Service, ch.Type, ch.Version, orDash(ch.Author)))
	}
	vline(st.OpenedAt, "#1f77b4", "", "opened "+st.OpenedAt.UTC().Format(time.RFC3339))
	vline(st.AcknowledgedAt, "#2ca02c", "", "acknowledged by "+st.AcknowledgedBy+" at "+st.AcknowledgedAt.UTC().Format(time.RFC3339))
	vline(st.ResolvedAt, "#000", "", "resolved "+st.ResolvedAt.UTC().Format(time.RFC3339))
	for _, e := range st.Timeline {
		fmt.Fprintf(&b, "<path d=\"M%.1f %.1f l-5 9 l10 0 z\" fill=\"#333\"><title>%s</title></path>\n",
			x(e.Time), lanesEnd+24, esc(e.Time.UTC().Format(correlate.TimelineTime)+" "+e.What))
	}
	b.WriteString("</svg>\n")

	if len(st.RootCauses) > 0 {
		b.WriteString("<h3>Root-cause candidates</h3>\n<ol>\n")
		for _, rc := range st.RootCauses {
			fmt.Fprintf(&b, "<li><b>%s</b>: %s</li>\n", esc(rc.Service), esc(strings.Join(rc.Reasons, "; ")))
		}
		b.WriteString("</ol>\n")
	}
	if len(st.Changes) > 0 {
		b.WriteString("<h3>Changes</h3>\n<table>\n")
		for _, ch := range st.Changes {
			fmt.Fprintf(&b, "<tr><td>%s</td><td>%s</td><td>%s %s</td><td>%s</td></tr>\n", ch.Time.UTC().Format(time.RFC3339), esc(ch.Service),
				esc(ch.Type), esc(ch.Version), esc(orDash(ch.Author)))
		}
		b.WriteString("</table>\n")
	}
	if len(st.Timeline) > 0 {
		b.WriteString("<h3>Timeline</h3>\n<table>\n")
		for _, e := range st.Timeline {
			fmt.Fprintf(&b, "<tr><td>%s</td><td>%s</td></tr>\n", e.Time.UTC().Format(correlate.TimelineTime), esc(e.What))
		}
		b.WriteString("</table>\n")
	}
	for _, cm := range st.Comments {
		fmt.Fprintf(&b, "<h4>Comment by %s at %s</h4>\n<pre>%s</pre>\n", esc(cm.By), cm.Time.UTC().Format(time.RFC3339), esc(cm.Text))
	}
	b.WriteString("</body></html>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// writeIncidentPageFile writes st's page to path.
func writeIncidentPageFile(path string, st correlate.State, now time.Time) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("incidents show: -page: %w", err)
	}
	if err := writeIncidentPage(f, st, now); err != nil {
		f.Close()
		return fmt.Errorf("incidents show: -page: writing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("incidents show: -page: writing %s: %w", path, err)
	}
	return nil
}

// incidentSpan is the time the page draws: from the earliest of the
// opening, the members' first signals and the changes, to the latest of
// the resolution, the last signal and the timeline, or to now for an
// incident not resolved (its firing members fire until now), unless now
// is a day past it (history replayed, event time far from the wall
// clock); at least a minute, a little wider.
func incidentSpan(st correlate.State, now time.Time) (from, to time.Time) {
	times := []time.Time{st.OpenedAt, st.AcknowledgedAt, st.ResolvedAt, st.LastEvent}
	for _, m := range st.Members {
		times = append(times, m.FirstSeen, m.LastSeen)
	}
	for _, ch := range st.Changes {
		times = append(times, ch.Time)
	}
	for _, e := range st.Timeline {
		times = append(times, e.Time)
	}
	from, to = spanOf(times)
	if st.ResolvedAt.IsZero() && now.After(to) && now.Sub(to) < 24*time.Hour {
		to = now
	}
	return widen(from, to)
}

// spanOf is the earliest and the latest of times, the zero ones left out.
func spanOf(times []time.Time) (from, to time.Time) {
	for _, t := range times {
		if t.IsZero() {
			continue
		}
		if from.IsZero() || t.Before(from) {
			from = t
		}
		if t.After(to) {
			to = t
		}
	}
	return from, to
}

// widen makes from..to at least a minute, then a fortieth wider each side,
// so that nothing drawn sits on the picture's edge.
func widen(from, to time.Time) (time.Time, time.Time) {
	to = latest(to, from.Add(time.Minute))
	pad := to.Sub(from) / 40
	return from.Add(-pad), to.Add(pad)
}

// pageScale maps from..to onto left..width-20 (the right margin), times
// outside it onto its ends.
func pageScale(from, to time.Time, left, width float64) func(time.Time) float64 {
	const right = 20.0
	span := to.Sub(from).Seconds()
	return func(t time.Time) float64 {
		return left + (width-left-right)*min(max(t.Sub(from).Seconds()/span, 0), 1)
	}
}

func latest(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// writeTicks draws a vertical line from top to bottom at each round time
// between from and to, labelled above top.
func writeTicks(b *strings.Builder, from, to time.Time, x func(time.Time) float64, top, bottom float64) {
	step := tickStep(to.Sub(from))
	layout := tickLayout(step)
	for t := from.Truncate(step).Add(step); t.Before(to); t = t.Add(step) {
		fmt.Fprintf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#eee\"/><text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n",
			x(t), top, x(t), bottom, x(t), top-6, t.UTC().Format(layout))
	}
}

// tickStep is a round step giving some three to twelve ticks over d,
// which may be decades (an alert's startsAt as early as 1970).
func tickStep(d time.Duration) time.Duration {
	const day = 24 * time.Hour
	for _, s := range []time.Duration{time.Second, 5 * time.Second, 15 * time.Second, 30 * time.Second, time.Minute, 5 * time.Minute,
		15 * time.Minute, 30 * time.Minute, time.Hour, 3 * time.Hour, 6 * time.Hour, 12 * time.Hour,
		day, 2 * day, 7 * day, 14 * day, 28 * day, 91 * day, 182 * day} {
		if d/s <= 12 {
			return s
		}
	}
	s := 365 * day
	for d/s > 12 {
		s *= 2
	}
	return s
}

// tickLayout is how a tick of step reads: the date once ticks are a day
// or more apart (at the time of day alone they would all read 00:00).
func tickLayout(step time.Duration) string {
	switch {
	case step < time.Minute:
		return "15:04:05"
	case step < 24*time.Hour:
		return "15:04"
	}
	return "2006-01-02"
}

// cut shortens s to at most n runes.
func cut(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

// writeReplayPage draws the incidents of a replay as a self-contained
// HTML page: a lane per incident, the earliest opened first, from its
// opening to its resolution (or to the replay's last time), merged ones
// in grey up to the merge, with the changes linked to any of them.
func writeReplayPage(w io.Writer, res *ReplayResult) error {
	incs := slices.Clone(res.Incidents)
	slices.SortStableFunc(incs, func(a, b ReplayIncident) int { return a.OpenedAt.Compare(b.OpenedAt) })
	var times []time.Time
	var changes []correlate.Change
	for _, inc := range incs {
		times = append(times, inc.OpenedAt, inc.ResolvedAt)
		for _, e := range inc.Timeline {
			times = append(times, e.Time)
		}
		for _, ch := range inc.Changes {
			if !slices.ContainsFunc(changes, func(x correlate.Change) bool {
				return x.Time.Equal(ch.Time) && x.Service == ch.Service && x.Version == ch.Version
			}) {
				changes = append(changes, ch)
				times = append(times, ch.Time)
			}
		}
	}
	from, to := widen(spanOf(times))
	const width, left, laneH, top = 1100.0, 330.0, 18.0, 40.0
	x := pageScale(from, to, left, width)
	lanesEnd := top + float64(len(incs))*laneH
	merged := 0
	for _, inc := range incs {
		if inc.MergedInto != "" {
			merged++
		}
	}

	var b strings.Builder
	esc := html.EscapeString
	b.WriteString("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>aiops correlate replay</title>\n")
	b.WriteString("<style>body{font-family:sans-serif;margin:20px}svg text{font-size:11px}.legend span{margin-right:14px}</style></head><body>\n")
	fmt.Fprintf(&b, "<h2>%d incidents (%d merged into another) of %d alerts and %d events, %s to %s UTC</h2>\n", len(incs), merged,
		len(res.Assignments), len(res.EventAssignments), from.UTC().Format("2006-01-02 15:04:05"), to.UTC().Format("2006-01-02 15:04:05"))
	b.WriteString("<p class=\"legend\"><span style=\"color:#d62728\">&#9644; open at the end</span><span style=\"color:#1f77b4\">&#9644; resolved</span>" +
		"<span style=\"color:#999\">&#9644; merged into another</span><span style=\"color:#555\">&#9474; change</span></p>\n")
	fmt.Fprintf(&b, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\">\n", width, lanesEnd+30)
	writeTicks(&b, from, to, x, top, lanesEnd+10)
	for i, inc := range incs {
		y := top + float64(i)*laneH
		end, color := inc.ResolvedAt, "#1f77b4"
		switch {
		case inc.MergedInto != "":
			color = "#999"
		case end.IsZero():
			end, color = to, "#d62728"
		}
		if end.IsZero() {
			end = inc.OpenedAt
		}
		what := fmt.Sprintf("%s: %s; %d members; services %s; team %s", inc.ID, inc.Title, inc.Members, strings.Join(inc.Services, ", "), orDash(inc.Team))
		if len(inc.RootCauses) > 0 {
			what += "; root cause " + inc.RootCauses[0].Service + ": " + strings.Join(inc.RootCauses[0].Reasons, "; ")
		}
		if inc.MergedInto != "" {
			what += "; merged into " + inc.MergedInto
		}
		fmt.Fprintf(&b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n", left-6, y+12, esc(cut(fmt.Sprintf("%s (%d)", inc.Title, inc.Members), 55)))
		fmt.Fprintf(&b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"><title>%s</title></rect>\n",
			x(inc.OpenedAt), y+3, max(2, x(end)-x(inc.OpenedAt)), laneH-6, color, esc(what))
	}
	for _, ch := range changes {
		fmt.Fprintf(&b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#555\" stroke-dasharray=\"4 3\"><title>%s</title></line>\n",
			x(ch.Time), top-2, x(ch.Time), lanesEnd+10, esc(fmt.Sprintf("%s %s %s %s by %s", ch.Time.UTC().Format(time.RFC3339), ch.Service, ch.Type, ch.Version, orDash(ch.Author))))
	}
	b.WriteString("</svg>\n</body></html>\n")
	_, err := io.WriteString(w, b.String())
	return err
}
