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
	wantHeader := "timestamp," + strings.Join(g.Channels, ",") + ",anomaly_score,is_anomaly,channel,changing"
	if strings.Join(got[0], ",") != wantHeader {
		t.Fatalf("header %v, want %s", got[0], wantHeader)
	}
	if len(got)-1 != len(rows) {
		t.Fatalf("%d output rows for %d input rows", len(got)-1, len(rows))
	}
	d := len(g.Channels)
	var faultRows, faultFlagged, cleanFlagged, anomalies int
	changeAt := -1 // the first changing row from the fault's onset
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
		case i < detect.DefaultGroupWarmup && (anomalous || score != 0):
			t.Fatalf("row %d scored %v during the warm-up", i, score)
		}
		if anomalous {
			anomalies++
		}
		if row[d+4] != "0" && row[d+4] != "1" {
			t.Fatalf("row %d: changing %q", i, row[d+4])
		}
		if row[d+4] == "1" && i >= g.Onset && changeAt < 0 {
			changeAt = i
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
	// A fault three times the generator's usual size: nearly all of it
	// flagged, few clean rows (those right after it, while the alarm is
	// released).
	clean := len(rows) - faultRows - detect.DefaultGroupWarmup
	if changeAt < 0 || changeAt > g.Onset+60 {
		t.Errorf("the change starting at row %d was marked at row %d, want within 60 rows", g.Onset, changeAt)
	}
	if faultFlagged*10 < faultRows*9 {
		t.Errorf("%d of the fault's %d rows flagged, want at least 90%%", faultFlagged, faultRows)
	}
	if cleanFlagged*10 > clean {
		t.Errorf("%d of %d clean scored rows flagged, want under 10%%", cleanFlagged, clean)
	}
	t.Logf("fault rows flagged %d/%d, clean rows flagged %d/%d", faultFlagged, faultRows, cleanFlagged, clean)
	if s := stderr.String(); !strings.Contains(s, strconv.Itoa(len(rows))+" rows of 8 channels") || !strings.Contains(s, strconv.Itoa(anomalies)+" anomalies") {
		t.Errorf("summary on stderr: %q", s)
	}
	img, err := os.ReadFile(png)
	if err != nil || !bytes.HasPrefix(img, []byte("\x89PNG")) {
		t.Errorf("plot: %v, %d bytes", err, len(img))
	}
}

// --group takes the settings of a pipeline group: a threshold near 1 flags
// nothing.
func TestDetectReplayGroupConfig(t *testing.T) {
	dir := t.TempDir()
	in, rows, _ := writeGroup(t, dir)
	cfg := filepath.Join(dir, "p.yaml")
	os.WriteFile(cfg, []byte("detect:\n  groups:\n    - name: pump\n      by: [host]\n      channels: [a, b]\n      settings: {threshold: 0.999999}\n"), 0o600)
	var out, stderr bytes.Buffer
	if err := detectMain(context.Background(), []string{"replay", "--input", in, "--output", "-", "--config", cfg, "--group", "pump"}, &out, &stderr); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), " 0 anomalies") {
		t.Errorf("the group's threshold was not used: %s", stderr.String())
	}
	if lines := strings.Count(out.String(), "\n"); lines != len(rows)+1 {
		t.Errorf("%d lines on stdout, want %d", lines, len(rows)+1)
	}
	err := detectMain(context.Background(), []string{"replay", "--input", in, "--output", "-", "--config", cfg, "--group", "nope"}, &out, &stderr)
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
