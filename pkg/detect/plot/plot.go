// Package plot draws a replayed series to PNG: the values, the expected
// value with its band, and the anomalies marked. It is separate from
// package detect so that the service does not link the plotting library.
package plot

import (
	"errors"
	"fmt"
	"image/color"
	"io"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/aiops-dev/aiops/pkg/detect"
)

// ErrNoRows: nothing to draw.
var ErrNoRows = errors.New("plot: no rows")

// Options of the drawing; zero fields take the defaults beside them.
type Options struct {
	Title         string
	Width, Height vg.Length // default 30 cm × 12 cm
}

// PNG draws rows (from detect.ReplayFunc) to w.
func PNG(w io.Writer, rows []detect.ReplayRow, opts Options) error {
	if len(rows) == 0 {
		return ErrNoRows
	}
	if opts.Width == 0 {
		opts.Width = 30 * vg.Centimeter
	}
	if opts.Height == 0 {
		opts.Height = 12 * vg.Centimeter
	}
	p := plot.New()
	p.Title.Text = opts.Title
	p.X.Label.Text = "time"
	p.Y.Label.Text = "value"
	p.X.Tick.Marker = plot.TimeTicks{Format: "01-02 15:04"}

	var vals, exp, lo, hi, anom plotter.XYs
	for _, r := range rows {
		res := r.Result
		x := float64(res.Time.Unix()) + float64(res.Time.Nanosecond())/1e9
		if r.BadValue || res.Flags.Ignored() {
			continue
		}
		vals = append(vals, plotter.XY{X: x, Y: res.Scored})
		if res.HasBaseline {
			exp = append(exp, plotter.XY{X: x, Y: res.Expected})
			lo = append(lo, plotter.XY{X: x, Y: res.Lower})
			hi = append(hi, plotter.XY{X: x, Y: res.Upper})
		}
		if res.Anomaly {
			anom = append(anom, plotter.XY{X: x, Y: res.Scored})
		}
	}
	if len(vals) == 0 {
		return ErrNoRows
	}
	if len(lo) > 0 {
		// the band as a polygon: upper left to right, lower right to left
		poly := append(plotter.XYs{}, hi...)
		for i := len(lo) - 1; i >= 0; i-- {
			poly = append(poly, lo[i])
		}
		band, err := plotter.NewPolygon(poly)
		if err != nil {
			return fmt.Errorf("plot: band: %w", err)
		}
		band.Color = color.NRGBA{R: 120, G: 170, B: 230, A: 110}
		band.LineStyle.Color = color.Transparent
		p.Add(band)
		p.Legend.Add("band", band)
	}
	line, err := plotter.NewLine(vals)
	if err != nil {
		return fmt.Errorf("plot: values: %w", err)
	}
	line.Color = color.RGBA{A: 255}
	line.Width = vg.Points(0.6)
	p.Add(line)
	p.Legend.Add("value", line)
	if len(exp) > 0 {
		el, err := plotter.NewLine(exp)
		if err != nil {
			return fmt.Errorf("plot: expected: %w", err)
		}
		el.Color = color.RGBA{B: 200, A: 255}
		el.Width = vg.Points(0.8)
		el.Dashes = []vg.Length{vg.Points(3), vg.Points(2)}
		p.Add(el)
		p.Legend.Add("expected", el)
	}
	if len(anom) > 0 {
		sc, err := plotter.NewScatter(anom)
		if err != nil {
			return fmt.Errorf("plot: anomalies: %w", err)
		}
		sc.GlyphStyle.Color = color.RGBA{R: 220, A: 255}
		sc.GlyphStyle.Shape = draw.CircleGlyph{}
		sc.GlyphStyle.Radius = vg.Points(2)
		p.Add(sc)
		p.Legend.Add("anomaly", sc)
	}
	p.Legend.Top = true
	img := vgimg.New(opts.Width, opts.Height)
	p.Draw(draw.New(img))
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(w); err != nil {
		return fmt.Errorf("plot: write png: %w", err)
	}
	return nil
}
