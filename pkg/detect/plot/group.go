package plot

import (
	"errors"
	"fmt"
	"image/color"
	"io"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/aiops-dev/aiops/pkg/detect"
)

// MaxPanels bounds the channels GroupPNG draws: one panel each, and more
// than this many are unreadable on one image.
const MaxPanels = 32

// ErrTooManyPanels: the group has more channels than MaxPanels.
var ErrTooManyPanels = errors.New("plot: too many channels for one image")

// GroupPNG draws the rows of a group replay (from detect.ReplayGroupFunc)
// to w: one panel per channel, stacked on one time axis, each with the
// channel's values, the model's expected value once it has one, the
// anomalous rows shaded, and a red dot where the row's anomaly names that
// channel. opts.Height is per panel (default 4 cm).
func GroupPNG(w io.Writer, channels []string, rows []detect.GroupReplayRow, opts Options) error {
	if len(rows) == 0 || len(channels) == 0 {
		return ErrNoRows
	}
	if len(channels) > MaxPanels {
		return fmt.Errorf("%w: %d channels, at most %d", ErrTooManyPanels, len(channels), MaxPanels)
	}
	if opts.Width == 0 {
		opts.Width = 30 * vg.Centimeter
	}
	if opts.Height == 0 {
		opts.Height = 4 * vg.Centimeter
	}
	xOf := func(r detect.GroupReplayRow) float64 {
		return float64(r.Result.Time.Unix()) + float64(r.Result.Time.Nanosecond())/1e9
	}
	// anomalous spans, shared by every panel
	type span struct{ from, to float64 }
	var spans []span
	for i, r := range rows {
		if !r.Result.Anomaly {
			continue
		}
		x := xOf(r)
		end := x
		if i+1 < len(rows) {
			end = xOf(rows[i+1])
		}
		if n := len(spans); n > 0 && i > 0 && rows[i-1].Result.Anomaly {
			spans[n-1].to = end
		} else {
			spans = append(spans, span{x, end})
		}
	}
	plots := make([][]*plot.Plot, len(channels))
	for c, name := range channels {
		var vals, exp, top plotter.XYs
		lo, hi := math.Inf(1), math.Inf(-1)
		for _, r := range rows {
			if c >= len(r.Values) || math.IsNaN(r.Values[c]) || math.IsInf(r.Values[c], 0) {
				continue
			}
			x, v := xOf(r), r.Values[c]
			lo, hi = min(lo, v), max(hi, v)
			vals = append(vals, plotter.XY{X: x, Y: v})
			if c < len(r.Result.Expected) && !math.IsNaN(r.Result.Expected[c]) { // NaN: a vote's channel still learning
				exp = append(exp, plotter.XY{X: x, Y: r.Result.Expected[c]})
			}
			if r.Result.Anomaly && r.Result.Channel == c {
				top = append(top, plotter.XY{X: x, Y: v})
			}
		}
		p := plot.New()
		p.Y.Label.Text = name
		p.X.Tick.Marker = plot.TimeTicks{Format: "01-02 15:04:05"}
		if c == 0 {
			p.Title.Text = opts.Title
		}
		if c < len(channels)-1 {
			p.X.Tick.Label.Color = color.Transparent
		} else {
			p.X.Label.Text = "time"
		}
		if len(vals) == 0 {
			plots[c] = []*plot.Plot{p}
			continue
		}
		if hi == lo {
			lo, hi = lo-1, hi+1
		}
		for _, s := range spans {
			box, err := plotter.NewPolygon(plotter.XYs{{X: s.from, Y: lo}, {X: s.to, Y: lo}, {X: s.to, Y: hi}, {X: s.from, Y: hi}})
			if err != nil {
				return fmt.Errorf("plot: anomaly span: %w", err)
			}
			box.Color = color.NRGBA{R: 240, G: 120, B: 120, A: 70}
			box.LineStyle.Color = color.Transparent
			p.Add(box)
		}
		line, err := plotter.NewLine(vals)
		if err != nil {
			return fmt.Errorf("plot: %s values: %w", name, err)
		}
		line.Color = color.RGBA{A: 255}
		line.Width = vg.Points(0.6)
		p.Add(line)
		if len(exp) > 0 {
			el, err := plotter.NewLine(exp)
			if err != nil {
				return fmt.Errorf("plot: %s expected: %w", name, err)
			}
			el.Color = color.RGBA{B: 200, A: 255}
			el.Width = vg.Points(0.8)
			el.Dashes = []vg.Length{vg.Points(3), vg.Points(2)}
			p.Add(el)
		}
		if len(top) > 0 {
			sc, err := plotter.NewScatter(top)
			if err != nil {
				return fmt.Errorf("plot: %s anomalies: %w", name, err)
			}
			sc.GlyphStyle.Color = color.RGBA{R: 220, A: 255}
			sc.GlyphStyle.Shape = draw.CircleGlyph{}
			sc.GlyphStyle.Radius = vg.Points(2)
			p.Add(sc)
		}
		plots[c] = []*plot.Plot{p}
	}
	// one time axis for every panel
	xmin, xmax := xOf(rows[0]), xOf(rows[len(rows)-1])
	for _, ps := range plots {
		ps[0].X.Min, ps[0].X.Max = xmin, max(xmax, xmin+1)
	}
	img := vgimg.New(opts.Width, opts.Height*vg.Length(len(channels)))
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: len(channels), Cols: 1, PadX: vg.Millimeter, PadY: vg.Millimeter, PadTop: vg.Millimeter, PadBottom: vg.Millimeter, PadLeft: vg.Millimeter, PadRight: vg.Millimeter}
	canvases := plot.Align(plots, tiles, dc)
	for c := range plots {
		plots[c][0].Draw(canvases[c][0])
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(w); err != nil {
		return fmt.Errorf("plot: write png: %w", err)
	}
	return nil
}
