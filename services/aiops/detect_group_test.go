package aiops

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/aiops-dev/aiops/pkg/detect"
	"github.com/aiops-dev/aiops/pkg/detect/synth"
	"github.com/aiops-dev/aiops/pkg/service"
)

// writeGroup writes a generated asset as timestamp,ch0,...,ch7 and returns
// the file, its rows and the asset.
func writeGroup(t *testing.T, dir string) (string, [][]string, synth.Group) {
	t.Helper()
	g, err := synth.GenerateGroup(synth.GroupShift, synth.GroupOptions{Seed: 1, Magnitude: 3})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	b.WriteString("timestamp," + strings.Join(g.Channels, ",") + "\n")
	rows := make([][]string, len(g.Times))
	for i, ts := range g.Times {
		rows[i] = []string{ts.Format("2006-01-02 15:04:05")}
		for c := range g.Channels {
			rows[i] = append(rows[i], strconv.FormatFloat(g.Values[c][i], 'f', 4, 64))
		}
		b.WriteString(strings.Join(rows[i], ",") + "\n")
	}
	path := filepath.Join(dir, "asset.csv")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, rows, g
}

// Several columns are scored by the default method, a vote of the
// channels' own detectors, as the service scores a pipeline group and
// detect eval an asset.
func TestDetectReplayGroupEndToEnd(t *testing.T) {
	dir := t.TempDir()
	in, rows, g := writeGroup(t, dir)
	out, png := filepath.Join(dir, "scores.csv"), filepath.Join(dir, "plot.png")
	var stderr bytes.Buffer
	if err := detectMain(context.Background(), []string{"replay", "--input", in, "--output", out, "--plot", png}, nil, &stderr); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	wantHeader := "timestamp," + strings.Join(g.Channels, ",") + ",anomaly_score,is_anomaly,channel"
	if strings.Join(got[0], ",") != wantHeader {
		t.Fatalf("header %v, want %s", got[0], wantHeader)
	}
	if len(got)-1 != len(rows) {
		t.Fatalf("%d output rows for %d input rows", len(got)-1, len(rows))
	}
	d := len(g.Channels)
	var faultRows, faultFlagged, cleanFlagged, anomalies int
	for i, row := range got[1:] {
		if !slices.Equal(row[:d+1], rows[i]) {
			t.Fatalf("row %d is %v, want input %v in order", i, row[:d+1], rows[i])
		}
		score, err := strconv.ParseFloat(row[d+1], 64)
		if err != nil || score < 0 || score > 1 {
			t.Fatalf("row %d: score %q outside [0,1]", i, row[d+1])
		}
		anomalous := row[d+2] == "1"
		if anomalous != (score >= detect.DefaultThreshold) || (row[d+2] != "0" && row[d+2] != "1") {
			t.Fatalf("row %d: is_anomaly %q with score %v", i, row[d+2], score)
		}
		switch {
		case anomalous && !slices.Contains(g.Channels, row[d+3]):
			t.Fatalf("row %d: anomalous, channel %q is not a column", i, row[d+3])
		case !anomalous && row[d+3] != "":
			t.Fatalf("row %d: not anomalous but names channel %q", i, row[d+3])
		}
		if anomalous {
			anomalies++
		}
		if g.Labels[i] {
			faultRows++
			if anomalous {
				faultFlagged++
			}
		} else if anomalous {
			cleanFlagged++
		}
	}
	// A fault three times the generator's usual size is found; the vote
	// flags the rows where its channels' episodes are open together, so
	// not all of it (eval's point F1), and few clean rows.
	clean := len(rows) - faultRows
	if faultFlagged == 0 {
		t.Errorf("none of the fault's %d rows flagged", faultRows)
	}
	if cleanFlagged*100 > clean {
		t.Errorf("%d of %d clean rows flagged, want under 1%%", cleanFlagged, clean)
	}
	t.Logf("fault rows flagged %d/%d, clean rows flagged %d/%d", faultFlagged, faultRows, cleanFlagged, clean)
	if s := stderr.String(); !strings.Contains(s, strconv.Itoa(len(rows))+" rows of 8 channels") || !strings.Contains(s, "method vote") || !strings.Contains(s, strconv.Itoa(anomalies)+" anomalies") {
		t.Errorf("summary on stderr: %q", s)
	}
	img, err := os.ReadFile(png)
	if err != nil || !bytes.HasPrefix(img, []byte("\x89PNG")) {
		t.Errorf("plot: %v, %d bytes", err, len(img))
	}
}

// --group takes the method and settings of a pipeline group: method pca
// with a threshold near 1 flags nothing, and adds the changing column;
// with the default settings it flags the fault and marks where it starts.
func TestDetectReplayGroupConfig(t *testing.T) {
	dir := t.TempDir()
	in, rows, g := writeGroup(t, dir)
	cfg := filepath.Join(dir, "p.yaml")
	os.WriteFile(cfg, []byte("detect:\n  groups:\n    - name: pump\n      by: [host]\n      channels: [a, b]\n      method: pca\n      settings: {threshold: 0.999999}\n    - name: pca\n      by: [host]\n      channels: [a, b]\n      method: pca\n"), 0o600)
	var out, stderr bytes.Buffer
	if err := detectMain(context.Background(), []string{"replay", "--input", in, "--output", "-", "--config", cfg, "--group", "pump"}, &out, &stderr); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), " 0 anomalies") || !strings.Contains(stderr.String(), "method pca") {
		t.Errorf("the group's method and threshold were not used: %s", stderr.String())
	}
	if lines := strings.Count(out.String(), "\n"); lines != len(rows)+1 {
		t.Errorf("%d lines on stdout, want %d", lines, len(rows)+1)
	}
	out.Reset()
	if err := detectMain(context.Background(), []string{"replay", "--input", in, "--output", "-", "--config", cfg, "--group", "pca"}, &out, &stderr); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	got, err := csv.NewReader(&out).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	d := len(g.Channels)
	if got[0][d+4] != "changing" {
		t.Fatalf("method pca: header %v, want a changing column", got[0])
	}
	faultFlagged, changeAt := 0, -1
	for i, row := range got[1:] {
		if i < detect.DefaultGroupWarmup && row[d+2] != "0" {
			t.Fatalf("row %d flagged during the warm-up", i)
		}
		if g.Labels[i] && row[d+2] == "1" {
			faultFlagged++
		}
		if row[d+4] == "1" && i >= g.Onset && changeAt < 0 {
			changeAt = i
		}
	}
	if faultFlagged == 0 || changeAt < 0 || changeAt > g.Onset+60 {
		t.Errorf("method pca: %d fault rows flagged; the change starting at row %d marked at row %d, want within 60 rows", faultFlagged, g.Onset, changeAt)
	}
	err = detectMain(context.Background(), []string{"replay", "--input", in, "--output", "-", "--config", cfg, "--group", "nope"}, &out, &stderr)
	if !errors.Is(err, service.ErrUsage) || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("unknown group: %v", err)
	}
	series, _ := writeSeries(t, dir, 10, 5)
	err = detectMain(context.Background(), []string{"replay", "--input", series, "--output", "-", "--config", cfg, "--group", "pump"}, &out, &stderr)
	if !errors.Is(err, service.ErrUsage) || !strings.Contains(err.Error(), "several columns") {
		t.Errorf("--group with a single series: %v", err)
	}
}

func TestDetectReplayGroupBadInput(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out.csv")
	for name, c := range map[string]struct{ csv, want string }{
		"ragged":     {"timestamp,a,b\n2026-01-01 00:00:00,1,2\n2026-01-01 00:00:01,1\n", "line 3: 2 fields"},
		"bad number": {"timestamp,a,b\n2026-01-01 00:00:00,1,2\n2026-01-01 00:00:01,1,zz\n", "line 3, column 3 (b)"},
		"bad time":   {"timestamp,a,b\n2026-01-01 00:00:00,1,2\nlater,1,2\n", "line 3"},
		"too many":   {"timestamp" + strings.Repeat(",x", detect.MaxGroupChannels+1) + "\n", "value columns"},
	} {
		in := filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+".csv")
		os.WriteFile(in, []byte(c.csv), 0o600)
		err := detectMain(context.Background(), []string{"replay", "--input", in, "--output", out}, nil, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), in) {
			t.Errorf("%s: %v, want an error naming %s and %q", name, err, in, c.want)
		}
		if _, err := os.Stat(out); !os.IsNotExist(err) {
			t.Errorf("%s: a failed replay left %s behind", name, out)
		}
	}
}
