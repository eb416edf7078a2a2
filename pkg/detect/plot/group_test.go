package plot

import (
	"bytes"
	"errors"
	"fmt"
	"image/png"
	"os"
	"strings"
	"testing"

	"github.com/aiops-dev/aiops/pkg/detect"
	"github.com/aiops-dev/aiops/pkg/detect/synth"
)

// TestGroupPNG replays a generated asset with a shift (the default method,
// a vote, whose channels have no expected value while they learn) and
// draws one panel per channel; set AIOPS_PLOT_OUT to keep the PNG.
func TestGroupPNG(t *testing.T) {
	g, err := synth.GenerateGroup(synth.GroupShift, synth.GroupOptions{Seed: 1, Magnitude: 4, Rows: 3000})
	if err != nil {
		t.Fatal(err)
	}
	var in strings.Builder
	in.WriteString("timestamp," + strings.Join(g.Channels, ",") + "\n")
	for i, ts := range g.Times {
		in.WriteString(ts.Format("2006-01-02 15:04:05"))
		for c := range g.Channels {
			fmt.Fprintf(&in, ",%.4f", g.Values[c][i])
		}
		in.WriteString("\n")
	}
	var rows []detect.GroupReplayRow
	st, err := detect.ReplayGroupFunc(strings.NewReader(in.String()), nil, detect.GroupReplayOptions{}, func(r detect.GroupReplayRow) { rows = append(rows, r) })
	if err != nil {
		t.Fatal(err)
	}
	if st.Anomalies == 0 {
		t.Fatal("no anomalous row to shade")
	}
	var buf bytes.Buffer
	if err := GroupPNG(&buf, st.Channels, rows, Options{Title: g.Name}); err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatalf("not a PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() < 500 || b.Dy() < 8*100 {
		t.Errorf("image %v too small for 8 panels", b)
	}
	if out := os.Getenv("AIOPS_PLOT_OUT"); out != "" {
		if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := GroupPNG(&buf, st.Channels, nil, Options{}); !errors.Is(err, ErrNoRows) {
		t.Errorf("no rows: %v", err)
	}
	if err := GroupPNG(&buf, make([]string, MaxPanels+1), rows, Options{}); !errors.Is(err, ErrTooManyPanels) {
		t.Errorf("too many channels: %v", err)
	}
}
