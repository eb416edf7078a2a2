package plot

import (
	"bytes"
	"errors"
	"fmt"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aiops-dev/aiops/pkg/detect"
)

// TestPNGOfSKAB replays one SKAB channel (Accelerometer1RMS of other/13.csv)
// through detect.ReplayFunc and draws it; set AIOPS_PLOT_OUT to keep the PNG.
func TestPNGOfSKAB(t *testing.T) {
	data := os.Getenv("AIOPS_SHARED_DATA")
	if data == "" {
		data = filepath.Join("..", "..", "..", "..", "shared", "data")
	}
	raw, err := os.ReadFile(filepath.Join(data, "skab", "data", "other", "13.csv"))
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skipf("SKAB not found (set AIOPS_SHARED_DATA): %v", err)
	}
	var csv strings.Builder
	csv.WriteString("timestamp,value\n")
	for i, l := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		if i == 0 {
			continue
		}
		f := strings.Split(l, ";")
		fmt.Fprintf(&csv, "%s,%s\n", f[0], f[1])
	}
	var rows []detect.ReplayRow
	if _, err := detect.ReplayFunc(strings.NewReader(csv.String()), nil, detect.Config{}, func(r detect.ReplayRow) { rows = append(rows, r) }); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := PNG(&buf, rows, Options{Title: "SKAB other/13.csv Accelerometer1RMS"}); err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatalf("not a PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() < 500 || b.Dy() < 200 {
		t.Errorf("image %v too small", b)
	}
	if out := os.Getenv("AIOPS_PLOT_OUT"); out != "" {
		if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := PNG(&buf, nil, Options{}); !errors.Is(err, ErrNoRows) {
		t.Errorf("no rows: %v", err)
	}
}
