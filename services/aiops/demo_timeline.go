package aiops

import (
	"context"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/aiops-dev/aiops/pkg/correlate"
)

// newScanValue is a pointer to a zero value of a column's scan type.
func newScanValue(t reflect.Type) any { return reflect.New(t).Interface() }

// formatValue prints a scanned column value for a table.
func formatValue(v any) string {
	rv := reflect.ValueOf(v)
	for rv.Kind() == reflect.Pointer {
		if rv.IsNil() {
			return "NULL"
		}
		rv = rv.Elem()
	}
	switch x := rv.Interface().(type) {
	case time.Time:
		return x.UTC().Format("2006-01-02 15:04:05")
	case float64:
		return fmt.Sprintf("%g", x)
	case float32:
		return fmt.Sprintf("%g", x)
	case string:
		if len(x) > 70 {
			return x[:67] + "..."
		}
		return x
	default:
		return fmt.Sprint(x)
	}
}

// timeline is what the demo's picture shows, read back from ClickHouse
// (the series, anomalies, changes) and from the incidents and webhooks.
type timeline struct {
	From, To  time.Time
	Series    map[string][]point // service → latency samples
	Anomalies []mark
	Changes   []mark
	Incidents []correlate.State
	Hooks     []receivedHook
}

type point struct {
	T time.Time
	V float64
}

type mark struct {
	T       time.Time
	Service string
	Label   string
	V       float64
}

func (d *demo) loadTimeline(ctx context.Context, from, to time.Time, incs []correlate.State) (timeline, error) {
	tl := timeline{From: from, To: to, Series: map[string][]point{}, Incidents: incs, Hooks: d.recv.received()}
	rows, err := d.st.Conn.Query(ctx, "SELECT service, time, value FROM metric_samples FINAL WHERE name = ? AND time >= ? ORDER BY service, time", demoMetric, from)
	if err != nil {
		return tl, err
	}
	for rows.Next() {
		var p point
		var svc string
		if err := rows.Scan(&svc, &p.T, &p.V); err != nil {
			rows.Close()
			return tl, err
		}
		tl.Series[svc] = append(tl.Series[svc], p)
	}
	rows.Close()
	rows, err = d.st.Conn.Query(ctx, "SELECT time, service, concat(metric, ' (', detector, ')'), value FROM anomalies FINAL ORDER BY time")
	if err != nil {
		return tl, err
	}
	for rows.Next() {
		var m mark
		if err := rows.Scan(&m.T, &m.Service, &m.Label, &m.V); err != nil {
			rows.Close()
			return tl, err
		}
		tl.Anomalies = append(tl.Anomalies, m)
	}
	rows.Close()
	rows, err = d.st.Conn.Query(ctx, "SELECT time, service, concat(change_type, ' ', version, ' ', description) FROM changes FINAL ORDER BY time")
	if err != nil {
		return tl, err
	}
	defer rows.Close()
	for rows.Next() {
		var m mark
		if err := rows.Scan(&m.T, &m.Service, &m.Label); err != nil {
			return tl, err
		}
		tl.Changes = append(tl.Changes, m)
	}
	return tl, rows.Err()
}

// writeOutputs writes webhooks.jsonl (every webhook as received) and
// timeline.html.
func (d *demo) writeOutputs(ctx context.Context, sc demoScenario, dir string, incs []correlate.State) error {
	f, err := os.Create(filepath.Join(dir, "webhooks.jsonl"))
	if err != nil {
		return err
	}
	enc := json.NewEncoder(f)
	for _, h := range d.recv.received() {
		if err := enc.Encode(h); err != nil {
			f.Close()
			return err
		}
	}
	if err := f.Close(); err != nil {
		return err
	}
	_, last := sc.span()
	tl, err := d.loadTimeline(ctx, sc.Now.Add(-40*time.Minute), last.Add(time.Minute), incs)
	if err != nil {
		return fmt.Errorf("demo: timeline: %w", err)
	}
	path := filepath.Join(dir, "timeline.html")
	f, err = os.Create(path)
	if err != nil {
		return err
	}
	if err := writeTimelineHTML(f, tl); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	fmt.Fprintf(d.w, "\nThe scenario's timeline: %s (series, anomalies, changes, incident spans, notifications)\nEvery webhook as received: %s\n",
		path, filepath.Join(dir, "webhooks.jsonl"))
	return nil
}

var timelineColors = []string{"#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#17becf"}

// writeTimelineHTML draws the timeline as one self-contained HTML page
// (inline SVG, no script, nothing fetched): latency series with their
// anomalies, change markers, one bar per incident from opening to
// resolution with a tick per notification received.
func writeTimelineHTML(w io.Writer, tl timeline) error {
	const width, left, right = 1100.0, 70.0, 20.0
	const chartTop, chartH = 30.0, 300.0
	span := tl.To.Sub(tl.From).Seconds()
	if span <= 0 {
		span = 1
	}
	x := func(t time.Time) float64 { return left + (width-left-right)*t.Sub(tl.From).Seconds()/span }
	maxV := 1.0
	services := make([]string, 0, len(tl.Series))
	for s, ps := range tl.Series {
		services = append(services, s)
		for _, p := range ps {
			maxV = max(maxV, p.V)
		}
	}
	sort.Strings(services)
	maxV *= 1.1
	y := func(v float64) float64 { return chartTop + chartH - chartH*v/maxV }
	color := map[string]string{}
	for i, s := range services {
		color[s] = timelineColors[i%len(timelineColors)]
	}
	barTop := chartTop + chartH + 50
	height := barTop + float64(len(tl.Incidents))*40 + 60

	var b strings.Builder
	esc := html.EscapeString
	fmt.Fprintf(&b, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>aiops demo timeline</title>\n")
	b.WriteString("<style>body{font-family:sans-serif;margin:20px}text{font-size:11px}.legend span{margin-right:14px}</style></head><body>\n")
	fmt.Fprintf(&b, "<h2>aiops demo: %s to %s UTC</h2>\n", tl.From.Format("2006-01-02 15:04"), tl.To.Format("15:04"))
	b.WriteString("<p class=\"legend\">")
	for _, s := range services {
		fmt.Fprintf(&b, "<span style=\"color:%s\">&#9644; %s p99 latency (ms)</span>", color[s], esc(s))
	}
	b.WriteString("<span style=\"color:#d62728\">&#9679; anomaly</span><span style=\"color:#555\">&#9474; change</span><span>&#9646; incident (open to resolved)</span><span>&#9660; notification received</span></p>\n")
	fmt.Fprintf(&b, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\">\n", width, height)
	// Axes and a tick every 5 minutes.
	fmt.Fprintf(&b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#333\"/>\n", left, chartTop+chartH, width-right, chartTop+chartH)
	fmt.Fprintf(&b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#333\"/>\n", left, chartTop, left, chartTop+chartH)
	for t := tl.From.Truncate(5 * time.Minute).Add(5 * time.Minute); t.Before(tl.To); t = t.Add(5 * time.Minute) {
		fmt.Fprintf(&b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#eee\"/><text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n",
			x(t), chartTop, x(t), height-30, x(t), chartTop+chartH+14, t.Format("15:04"))
	}
	for _, v := range []float64{0, maxV / 2, maxV / 1.1} {
		fmt.Fprintf(&b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%.0f ms</text>\n", left-4, y(v)+4, v)
	}
	for _, c := range tl.Changes {
		if c.T.Before(tl.From) || c.T.After(tl.To) {
			continue
		}
		fmt.Fprintf(&b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#555\" stroke-dasharray=\"4 3\"/><text x=\"%.1f\" y=\"%.1f\" transform=\"rotate(-90 %.1f %.1f)\" fill=\"#555\">%s</text>\n",
			x(c.T), chartTop, x(c.T), chartTop+chartH, x(c.T)+10, chartTop+chartH-4, x(c.T)+10, chartTop+chartH-4, esc(c.Service+": "+c.Label))
	}
	for _, s := range services {
		var pts []string
		for _, p := range tl.Series[s] {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(p.T), y(p.V)))
		}
		fmt.Fprintf(&b, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" points=\"%s\"/>\n", color[s], strings.Join(pts, " "))
	}
	for _, a := range tl.Anomalies {
		if a.T.Before(tl.From) || a.T.After(tl.To) {
			continue
		}
		v := a.V
		if !strings.HasPrefix(a.Label, demoMetric) {
			v = maxV / 1.05 // an error burst: a count, not a latency; drawn at the top
		}
		fmt.Fprintf(&b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"5\" fill=\"#d62728\" fill-opacity=\"0.7\"><title>%s</title></circle>\n",
			x(a.T), y(min(v, maxV)), esc(a.T.Format("15:04:05")+" "+a.Service+" "+a.Label))
	}
	// Incidents: a bar from opening to resolution (or the end), a
	// triangle per notification at the transition's event time.
	for i, st := range tl.Incidents {
		top := barTop + float64(i)*40
		end := st.ResolvedAt
		if end.IsZero() {
			end = tl.To
		}
		fmt.Fprintf(&b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"14\" fill=\"#f2b134\"><title>%s</title></rect>\n",
			x(st.OpenedAt), top, max(2, x(end)-x(st.OpenedAt)), esc(st.IncidentID+" "+st.Title))
		fmt.Fprintf(&b, "<text x=\"%.1f\" y=\"%.1f\">%s</text>\n", left, top+28, esc(fmt.Sprintf("%s: %s (root cause %s, team %s; %s)", st.IncidentID, st.Title, st.Service, st.Team, st.State)))
		for _, h := range tl.Hooks {
			if h.Incident != st.IncidentID {
				continue
			}
			hx := x(h.At)
			fmt.Fprintf(&b, "<path d=\"M%.1f %.1f l-5 -9 l10 0 z\" fill=\"#333\"><title>%s</title></path>\n", hx, top, esc(h.Transition+" to "+h.Receiver+" at "+h.At.Format("15:04:05")))
		}
	}
	b.WriteString("</svg>\n</body></html>\n")
	_, err := io.WriteString(w, b.String())
	return err
}
