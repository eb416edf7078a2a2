package aiops

import (
	"bytes"
	"encoding/xml"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aiops-dev/aiops/pkg/correlate"
)

// svgRect is a member's bar as drawn.
type svgRect struct {
	X     float64 `xml:"x,attr"`
	Width float64 `xml:"width,attr"`
	Fill  string  `xml:"fill,attr"`
	Title string  `xml:"title"`
}

// pageSVG decodes the picture of a page: it must be well-formed, whatever
// the texts in it.
func pageSVG(t *testing.T, page string) (rects []svgRect, lines int, texts []string) {
	t.Helper()
	start, end := strings.Index(page, "<svg"), strings.Index(page, "</svg>")
	if start < 0 || end < 0 {
		t.Fatalf("no picture in the page:\n%s", page)
	}
	var svg struct {
		Rects []svgRect `xml:"rect"`
		Lines []struct {
			Title string `xml:"title"`
		} `xml:"line"`
		Texts []string `xml:"text"`
	}
	if err := xml.Unmarshal([]byte(page[start:end+len("</svg>")]), &svg); err != nil {
		t.Fatalf("the picture is not well-formed: %v", err)
	}
	for _, l := range svg.Lines {
		if l.Title != "" {
			lines++
		}
	}
	return svg.Rects, lines, svg.Texts
}

// The page draws each member from its first signal to its end (a firing
// one to the end of the picture), in the colour of what it is, with the
// changes and the opening, acknowledgement and resolution; what others
// wrote is escaped, and a runbook is a link only when it is a web address.
func TestIncidentPageDrawsEachMemberAndEscapesWhatOthersWrote(t *testing.T) {
	at := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	st := correlate.State{
		IncidentID: "01JF3", Title: "payments-db failing </title><script>alert(1)</script>", State: "acknowledged",
		Service: "payments-db", Team: "data", Runbook: "javascript:alert(1)",
		OpenedAt: at.Add(time.Minute), AcknowledgedAt: at.Add(4 * time.Minute), AcknowledgedBy: "ana", LastEvent: at.Add(20 * time.Minute),
		MemberCount: 4, Firing: 3,
		Members: []correlate.Member{
			{Kind: correlate.SignalAlert, Service: "web", Name: "HighLatency", Firing: true, FirstSeen: at.Add(2 * time.Minute), LastSeen: at.Add(10 * time.Minute), Count: 3},
			{Kind: correlate.SignalAlert, Service: "payments-db", Name: `ReplicationLag"><script>x</script>`, FirstSeen: at.Add(time.Minute), LastSeen: at.Add(8 * time.Minute), Count: 2},
			{Kind: correlate.SignalAnomaly, Service: "payments-db", Name: "latency_p99", Firing: true, FirstSeen: at.Add(90 * time.Second), LastSeen: at.Add(9 * time.Minute), Count: 40,
				Reading: &correlate.Reading{Value: 900, Expected: 120, Lower: 80, Upper: 160}},
			{Kind: correlate.SignalAlert, Service: "checkout", Name: "Errors", Firing: true, Flapping: true, FirstSeen: at.Add(3 * time.Minute), LastSeen: at.Add(15 * time.Minute), Count: 9},
		},
		Changes:  []correlate.Change{{Service: "payments-db", Type: "deploy", Version: "v2<b>", Author: "bob", Time: at}},
		Timeline: []correlate.Entry{{Time: at.Add(time.Minute), What: "opened by alert ReplicationLag <img src=x>"}, {Time: at.Add(4 * time.Minute), What: "acknowledged by ana"}},
		Comments: []correlate.Comment{{By: "mallory<script>", Text: "</pre><script>steal()</script>", Time: at.Add(5 * time.Minute)}},
	}
	var buf bytes.Buffer
	if err := writeIncidentPage(&buf, st, at.Add(30*time.Minute)); err != nil {
		t.Fatal(err)
	}
	page := buf.String()
	if strings.Contains(page, "<script") || strings.Contains(page, "<img") || strings.Contains(page, "v2<b>") || strings.Contains(page, `href="javascript`) {
		t.Fatalf("what others wrote reached the page as markup:\n%s", page)
	}
	for _, want := range []string{"payments-db failing &lt;/title&gt;&lt;script&gt;", "runbook javascript:alert(1)", "&lt;/pre&gt;&lt;script&gt;steal()", "opened by alert ReplicationLag &lt;img src=x&gt;"} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	rects, lines, texts := pageSVG(t, page)
	if len(rects) != 4 {
		t.Fatalf("%d bars, want one per member (4)", len(rects))
	}
	// Sorted by service, then first signal: checkout, payments-db (the
	// alert, then the anomaly), web.
	want := []struct{ fill, title string }{
		{"#ff7f0e", "alert Errors on checkout"}, {"#999", "alert ReplicationLag"}, {"#9467bd", "anomaly latency_p99 on payments-db"}, {"#d62728", "alert HighLatency on web"},
	}
	for i, w := range want {
		if rects[i].Fill != w.fill || !strings.Contains(rects[i].Title, w.title) {
			t.Errorf("bar %d: %s %q, want %s %q", i, rects[i].Fill, rects[i].Title, w.fill, w.title)
		}
	}
	if !strings.Contains(rects[2].Title, "value 900, expected 120 (band 80 to 160)") {
		t.Errorf("the anomaly's bar does not say its value and band: %q", rects[2].Title)
	}
	// A firing member runs to the end of the picture; the resolved one
	// ends at its last signal, before the firing one that started later.
	firingEnd, resolvedEnd := rects[3].X+rects[3].Width, rects[1].X+rects[1].Width
	if firingEnd < 1079 || resolvedEnd >= firingEnd || rects[1].X >= rects[3].X {
		t.Errorf("bars: resolved %.1f to %.1f, firing %.1f to %.1f; want the firing one to the right edge (1080)", rects[1].X, resolvedEnd, rects[3].X, firingEnd)
	}
	// The change, the opening and the acknowledgement; no resolution.
	if lines != 3 {
		t.Errorf("%d marked lines, want 3 (the change, opened, acknowledged)", lines)
	}
	var labels []string
	for _, tx := range texts {
		if strings.Contains(tx, ":") && !strings.Contains(tx, "09:") {
			labels = append(labels, tx)
		}
	}
	if len(labels) != 4 || labels[1] != `payments-db: ReplicationLag"><script>x<…` {
		t.Errorf("lane labels %q: want 4, cut at 40 characters", labels)
	}

	// A web address is linked.
	st.Runbook = "https://runbooks.example/payments-db?a=1&b=2"
	buf.Reset()
	if err := writeIncidentPage(&buf, st, at.Add(30*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), `<a href="https://runbooks.example/payments-db?a=1&amp;b=2">`) {
		t.Errorf("an https runbook is not linked:\n%s", buf.String())
	}
}

// An incident not resolved is drawn up to now, its firing members firing
// until then; one resolved, or drawn long after (history replayed), up to
// its last time.
func TestIncidentPageRunsToNowWhileNotResolved(t *testing.T) {
	at := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	st := correlate.State{IncidentID: "x", OpenedAt: at, LastEvent: at, MemberCount: 1, Firing: 1,
		Members: []correlate.Member{{Kind: correlate.SignalAlert, Service: "web", Name: "Down", Firing: true, FirstSeen: at, LastSeen: at}}}
	for _, c := range []struct {
		name     string
		resolved time.Time
		now      time.Time
		to       time.Time
	}{
		{"open, drawn 10 minutes on", time.Time{}, at.Add(10 * time.Minute), at.Add(10 * time.Minute)},
		{"open, drawn a week on", time.Time{}, at.Add(7 * 24 * time.Hour), at.Add(time.Minute)},
		{"resolved", at.Add(2 * time.Minute), at.Add(10 * time.Minute), at.Add(2 * time.Minute)},
	} {
		st.ResolvedAt = c.resolved
		from, to := incidentSpan(st, c.now)
		if pad := c.to.Sub(at) / 40; !from.Equal(at.Add(-pad)) || !to.Equal(c.to.Add(pad)) {
			t.Errorf("%s: drawn %v to %v, want %v to %v and a fortieth more each side", c.name, from, to, at, c.to)
		}
	}
}

// The ticks fall on round times, some five to twelve of them, whatever
// the incident's length.
func TestTickStep(t *testing.T) {
	day := 24 * time.Hour
	for _, d := range []time.Duration{10 * time.Second, 3 * time.Minute, 47 * time.Minute, 5 * time.Hour, 50 * time.Hour,
		13 * day, 60 * day, 400 * day, 40 * 365 * day} {
		step := tickStep(d)
		if n := d / step; n > 12 || n < 3 {
			t.Errorf("%v: step %v gives %d ticks", d, step, n)
		}
	}
	if got := strconv.Itoa(int(tickStep(time.Minute) / time.Second)); got != "5" {
		t.Errorf("a minute ticks every %ss, want 5", got)
	}
}

// Past a day the ticks say the date: at the time of day alone, a week's
// ticks all read 00:00. (An alert's startsAt may be as early as 1970, so
// a page may span decades: some twelve ticks still, not one a day.)
func TestTicksOfALongIncidentSayTheDate(t *testing.T) {
	at := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	st := correlate.State{IncidentID: "x", OpenedAt: at, ResolvedAt: at.Add(10 * 24 * time.Hour), MemberCount: 1,
		Members: []correlate.Member{{Kind: correlate.SignalAlert, Service: "web", Name: "Down", FirstSeen: at, LastSeen: at.Add(10 * 24 * time.Hour)}}}
	var page bytes.Buffer
	if err := writeIncidentPage(&page, st, at.Add(11*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, _, texts := pageSVG(t, page.String()); !slices.Contains(texts, "2026-12-05") {
		t.Errorf("texts %q over ten days, want the ticks to say the date (2026-12-05 among them)", texts)
	}
}
