package aiops

import (
	"fmt"
	"html"
	"io"
	"math"
	"slices"
	"sort"
	"strings"
	"time"
)

// incidentRow is one true incident on the eval page: its items in the order
// first seen, and what the correlator made of it.
type incidentRow struct {
	id    string
	items []string
	// pieces counts the predicted incidents its items went to; with names
	// the other true incidents sharing its main predicted incident (the
	// one holding most of its items).
	pieces int
	with   []string
	// missing counts its items that never went in (not drawn).
	missing int
}

// incidentColour is the colour of the n-th predicted incident drawn: hues
// a golden angle apart, so that no two incidents share one and those drawn
// one after the other differ most; lightness varies too, for the hues
// that come close after many turns.
func incidentColour(n int) string {
	hue := math.Mod(float64(n)*137.508, 360)
	return fmt.Sprintf("hsl(%.0f,70%%,%d%%)", hue, 35+15*(n%3))
}

// aloneColour marks items the correlator put in no incident.
const aloneColour = "#aaa"

// tickSteps are the time axis's steps, the smallest giving at most
// maxTicks ticks over the storm taken.
var tickSteps = []time.Duration{time.Minute, 5 * time.Minute, 10 * time.Minute, 30 * time.Minute, time.Hour,
	3 * time.Hour, 6 * time.Hour, 12 * time.Hour, 24 * time.Hour, 7 * 24 * time.Hour, 30 * 24 * time.Hour, 365 * 24 * time.Hour}

const maxTicks = 30

// writeEvalPage writes the page of `correlate eval --page`: per storm, a
// row per true incident (noise alone, kept whole, is left out), each item
// a dot at the time it was first seen, coloured by the incident the
// correlator put it in. A row of several colours is an incident split; a
// colour on several rows, incidents merged.
func writeEvalPage(w io.Writer, res EvalResult, details []stormDetail) error {
	var b strings.Builder
	esc := html.EscapeString
	b.WriteString("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>aiops correlate eval</title>\n")
	b.WriteString("<style>body{font-family:sans-serif;margin:20px}text{font-size:11px}table{border-collapse:collapse}td,th{padding:2px 8px;text-align:right}td:first-child{text-align:left}</style></head><body>\n")
	b.WriteString("<h2>aiops correlate eval</h2>\n<p>Each row is a true incident, each dot one of its items (an alert, an anomaly) when first seen, coloured by the incident the correlator put it in: several colours in a row is an incident split, one colour in several rows incidents merged. Noise the correlator left alone is not drawn. Hover a dot for the item.</p>\n")
	b.WriteString("<table><tr><th>storm</th><th>F1</th><th>precision</th><th>recall</th><th>incidents / true</th><th>5-min windows F1</th></tr>\n")
	all := slices.Clone(res.Storms)
	if len(all) > 1 {
		all = append(all, res.Mean)
	}
	for i, sc := range all {
		name := esc(sc.Storm)
		if i < len(res.Storms) {
			name = fmt.Sprintf("<a href=\"#storm-%d\">%s</a>", i, name)
		}
		c := sc.Correlator
		fmt.Fprintf(&b, "<tr><td>%s</td><td>%.3f</td><td>%.3f</td><td>%.3f</td><td>%d / %d</td><td>%.3f</td></tr>\n", name, c.F1, c.Precision, c.Recall, c.PredictedIncidents, c.TrueIncidents, sc.Window.F1)
	}
	b.WriteString("</table>\n")
	for i, d := range details {
		sc := res.Storms[i]
		fmt.Fprintf(&b, "<h3 id=\"storm-%d\">%s: F1 %.3f (precision %.3f, recall %.3f), %d incidents for %d true</h3>\n",
			i, esc(sc.Storm), sc.Correlator.F1, sc.Correlator.Precision, sc.Correlator.Recall, sc.Correlator.PredictedIncidents, sc.Correlator.TrueIncidents)
		writeStormSVG(&b, d)
	}
	b.WriteString("</body></html>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// predictedOf is where the correlator put item: its incident, or the item
// alone when it joined none (it never went in).
func (d stormDetail) predictedOf(item string) string {
	if p := d.assign[item]; p != "" {
		return p
	}
	return "alone:" + item
}

// rows are the storm's true incidents worth drawing, in the order they
// were first seen.
func (d stormDetail) rows() []incidentRow {
	byTrue, missing := d.trueIncidents()    // what never went in is not drawn (eval tells it)
	truesIn := map[string]map[string]bool{} // predicted → true incidents in it
	for t, items := range byTrue {
		for _, item := range items {
			p := d.predictedOf(item)
			if truesIn[p] == nil {
				truesIn[p] = map[string]bool{}
			}
			truesIn[p][t] = true
		}
	}
	first := func(item string) time.Time { return d.items[item].First }
	var rows []incidentRow
	for t, items := range byTrue {
		sort.Slice(items, func(i, j int) bool {
			if !first(items[i]).Equal(first(items[j])) {
				return first(items[i]).Before(first(items[j]))
			}
			return items[i] < items[j]
		})
		count := map[string]int{}
		main := ""
		for _, it := range items {
			p := d.predictedOf(it)
			count[p]++
			if main == "" || count[p] > count[main] {
				main = p
			}
		}
		r := incidentRow{id: t, items: items, pieces: len(count), missing: missing[t]}
		for other := range truesIn[main] {
			if other != t {
				r.with = append(r.with, other)
			}
		}
		sort.Strings(r.with)
		if len(items) > 1 || len(r.with) > 0 {
			rows = append(rows, r)
		}
	}
	sort.Slice(rows, func(i, j int) bool {
		a, b := first(rows[i].items[0]), first(rows[j].items[0])
		if !a.Equal(b) {
			return a.Before(b)
		}
		return rows[i].id < rows[j].id
	})
	return rows
}

func writeStormSVG(b *strings.Builder, d stormDetail) {
	const width, label, right, top, rowH = 1300.0, 420.0, 20.0, 24.0, 16.0
	rows := d.rows()
	var from, to time.Time
	for _, it := range d.items {
		if from.IsZero() || it.First.Before(from) {
			from = it.First
		}
		if it.First.After(to) {
			to = it.First
		}
	}
	span := max(to.Sub(from).Seconds(), 1)
	x := func(t time.Time) float64 { return label + (width-label-right)*t.Sub(from).Seconds()/span }
	height := top + rowH*float64(len(rows)) + 10
	esc := html.EscapeString
	fmt.Fprintf(b, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\">\n", width, height)
	step := tickSteps[len(tickSteps)-1]
	for _, st := range tickSteps {
		if to.Sub(from)/st <= maxTicks {
			step = st
			break
		}
	}
	format := "15:04"
	if step >= 24*time.Hour {
		format = "2006-01-02"
	}
	for t, n := from.Truncate(step).Add(step), 0; t.Before(to) && n < maxTicks; t, n = t.Add(step), n+1 {
		fmt.Fprintf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#eee\"/><text x=\"%.1f\" y=\"14\" text-anchor=\"middle\">%s</text>\n",
			x(t), top-6, x(t), height, x(t), t.UTC().Format(format))
	}
	color := map[string]string{}
	for i, r := range rows {
		y := top + rowH*float64(i) + rowH/2
		what := fmt.Sprintf("%s: %d items", r.id, len(r.items))
		if len(r.items) == 1 {
			what = r.id + ": 1 item"
		}
		if r.missing > 0 {
			what = fmt.Sprintf("%s: %d of %d items (the others never went in)", r.id, len(r.items), len(r.items)+r.missing)
		}
		if r.pieces > 1 {
			what += fmt.Sprintf(", split in %d", r.pieces)
		}
		if len(r.with) > 0 {
			with := r.with
			if len(with) > 2 {
				with = append(slices.Clone(with[:2]), fmt.Sprintf("%d more", len(r.with)-2))
			}
			what += ", with " + strings.Join(with, ", ")
		}
		fill := "#333"
		if r.pieces > 1 || len(r.with) > 0 {
			fill = "#b22"
		}
		fmt.Fprintf(b, "<text x=\"4\" y=\"%.1f\" fill=\"%s\">%s</text>\n", y+4, fill, esc(what))
		a, z := d.items[r.items[0]].First, d.items[r.items[len(r.items)-1]].First
		fmt.Fprintf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ccc\"/>\n", x(a), y, x(z), y)
		for _, item := range r.items {
			p := d.predictedOf(item)
			c, ok := color[p]
			switch {
			case ok:
			case d.assign[item] == "":
				c = aloneColour
			default:
				c = incidentColour(len(color))
				color[p] = c
			}
			it := d.items[item]
			fmt.Fprintf(b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"%s\" fill-opacity=\"0.8\"><title>%s</title></circle>\n", x(it.First), y, c,
				esc(fmt.Sprintf("%s %s on %s, first seen %s, in incident %s", item, it.Name, it.Service, it.First.UTC().Format("2006-01-02 15:04:05"), p)))
		}
	}
	b.WriteString("</svg>\n")
}
