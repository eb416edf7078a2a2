package detect

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/aiops-dev/aiops/pkg/detect/synth"
	"github.com/aiops-dev/aiops/pkg/errs"
)

// groupCSV writes a generated asset as a replay input.
func groupCSV(t testing.TB, g synth.Group) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("timestamp," + strings.Join(g.Channels, ",") + "\n")
	for i, ts := range g.Times {
		b.WriteString(ts.Format("2006-01-02 15:04:05"))
		for c := range g.Channels {
			b.WriteByte(',')
			b.WriteString(strconv.FormatFloat(g.Values[c][i], 'f', 4, 64))
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// ReplayGroup of method pca gives the same results as a Group fed the
// same rows, and keeps every input cell verbatim.
func TestReplayGroupMatchesGroup(t *testing.T) {
	a, err := synth.GenerateGroup(synth.GroupBreak, synth.GroupOptions{Seed: 3, Magnitude: 3})
	if err != nil {
		t.Fatal(err)
	}
	in := groupCSV(t, a)
	// one missing cell, written two ways
	in = strings.Replace(in, "\n"+a.Times[500].Format("2006-01-02 15:04:05")+","+strconv.FormatFloat(a.Values[0][500], 'f', 4, 64), "\n"+a.Times[500].Format("2006-01-02 15:04:05")+",", 1)
	in = strings.Replace(in, "\n"+a.Times[501].Format("2006-01-02 15:04:05")+","+strconv.FormatFloat(a.Values[0][501], 'f', 4, 64), "\n"+a.Times[501].Format("2006-01-02 15:04:05")+",NaN", 1)
	var out bytes.Buffer
	var rows []GroupReplayRow
	st, err := ReplayGroupFunc(strings.NewReader(in), &out, GroupReplayOptions{Method: MethodPCA}, func(r GroupReplayRow) { rows = append(rows, r) })
	if err != nil {
		t.Fatal(err)
	}
	g, _ := NewGroup(GroupConfig{}, len(a.Channels))
	inLines := strings.Split(strings.TrimSpace(in), "\n")
	outLines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(outLines) != len(inLines) || outLines[0] != inLines[0]+",anomaly_score,is_anomaly,channel,changing" {
		t.Fatalf("%d output lines for %d input lines; header %q", len(outLines), len(inLines), outLines[0])
	}
	changing := 0
	for i := range a.Times {
		row := make([]float64, len(a.Channels))
		for c := range row {
			row[c], _ = strconv.ParseFloat(strconv.FormatFloat(a.Values[c][i], 'f', 4, 64), 64)
		}
		if i == 500 || i == 501 {
			row[0] = math.NaN()
		}
		want := g.Observe(a.Times[i], row)
		wantLine := fmt.Sprintf("%s,%s,0,", inLines[i+1], strconv.FormatFloat(want.Score, 'f', 6, 64))
		if want.Anomaly {
			wantLine = fmt.Sprintf("%s,%s,1,%s", inLines[i+1], strconv.FormatFloat(want.Score, 'f', 6, 64), a.Channels[want.Channel])
		}
		if want.Changing {
			wantLine += ",1"
			changing++
		} else {
			wantLine += ",0"
		}
		if outLines[i+1] != wantLine {
			t.Fatalf("row %d: %q, want %q", i, outLines[i+1], wantLine)
		}
		if rows[i].Line != i+2 || rows[i].Result.Score != want.Score {
			t.Fatalf("callback row %d: line %d score %v", i, rows[i].Line, rows[i].Result.Score)
		}
	}
	if st.Rows != len(a.Times) || st.Missing != 2 || st.WarmUp < DefaultGroupWarmup || st.Anomalies == 0 || len(st.Channels) != len(a.Channels) {
		t.Errorf("stats %+v", st)
	}
	if changing == 0 {
		t.Error("no row is changing: the changing column was not exercised")
	}
}

func TestReplayGroupErrors(t *testing.T) {
	const h = "timestamp,a,b,c\n"
	const ok = "2026-01-01 00:00:00,1,2,3\n"
	many := "timestamp"
	for i := 0; i <= MaxGroupChannels; i++ {
		many += ",c" + strconv.Itoa(i)
	}
	cases := []struct {
		in    string
		want  error
		names []string
	}{
		{"", ErrReplayHeader, []string{"empty"}},
		{"time,a,b\n", ErrReplayHeader, []string{"line 1"}},
		{"timestamp,a,a\n", ErrReplayHeader, []string{"line 1", "column 3", `"a"`}},
		{"timestamp,a,,b\n", ErrReplayHeader, []string{"line 1", "column 3"}},
		{many + "\n", ErrReplayTooLarge, []string{"line 1", "257 value columns"}},
		{h + ok + "2026-01-01 00:00:01,1,2\n", ErrReplayRow, []string{"line 3", "3 fields", "4"}},
		{h + ok + "2026-01-01 00:00:01,1,2,3,4\n", ErrReplayRow, []string{"line 3"}},
		{h + ok + "soon,1,2,3\n", ErrReplayTimestamp, []string{"line 3", "soon"}},
		{h + ok + "2026-01-01 00:00:01,1,x2,3\n", ErrReplayValue, []string{"line 3", "column 3 (b)", "x2"}},
		{h + "2026-01-01 00:00:00,1,2," + strings.Repeat("1", MaxGroupReplayLine) + "\n", ErrReplayTooLarge, []string{"line 2"}},
	}
	for _, c := range cases {
		_, err := ReplayGroup(strings.NewReader(c.in), &bytes.Buffer{}, GroupReplayOptions{})
		if !errors.Is(err, c.want) || !errs.IsPermanent(err) {
			t.Errorf("%.50q: %v, want %v", c.in, err, c.want)
			continue
		}
		for _, n := range c.names {
			if !strings.Contains(err.Error(), n) {
				t.Errorf("%.50q: %v does not name %s", c.in, err, n)
			}
		}
	}
	if _, err := ReplayGroup(strings.NewReader(h), nil, GroupReplayOptions{Method: MethodPCA, Group: GroupConfig{Warmup: 2}}); !errors.Is(err, ErrInvalidGroupConfig) {
		t.Errorf("bad config: %v", err)
	}
	if _, err := ReplayGroup(strings.NewReader(h), nil, GroupReplayOptions{Config: Config{Threshold: 2}}); !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "threshold") {
		t.Errorf("bad config of the vote's detectors: %v", err)
	}
	if _, err := ReplayGroup(strings.NewReader(h), nil, GroupReplayOptions{Method: "kmeans"}); !errors.Is(err, ErrInvalidMethod) || !strings.Contains(err.Error(), "kmeans") {
		t.Errorf("bad method: %v", err)
	}
}

func TestIsGroupHeader(t *testing.T) {
	for in, want := range map[string]bool{
		"timestamp,value":               false,
		"\xef\xbb\xbftimestamp,value\r": false,
		"timestamp,a,b":                 true,
		"\xef\xbb\xbfTimestamp,a,b\r\n": true,
		"time,a,b":                      false,
		"timestamp":                     false,
		`"timestamp","a","b"`:           true,
	} {
		if got := IsGroupHeader([]byte(in)); got != want {
			t.Errorf("%q: %v, want %v", in, got, want)
		}
	}
}

// ReplayGroup by default votes: the same flagged rows, scores and top
// channels as a Vote of the default profile fed the same rows, and no
// changing column.
func TestReplayGroupVoteMatchesVote(t *testing.T) {
	a, err := synth.GenerateGroup(synth.GroupShift, synth.GroupOptions{Seed: 3, Magnitude: 4, Rows: 3000})
	if err != nil {
		t.Fatal(err)
	}
	in := groupCSV(t, a)
	var out bytes.Buffer
	st, err := ReplayGroup(strings.NewReader(in), &out, GroupReplayOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p, _ := NewProfile(Config{})
	v, _ := NewVote(p, len(a.Channels))
	inLines := strings.Split(strings.TrimSpace(in), "\n")
	outLines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(outLines) != len(inLines) || outLines[0] != inLines[0]+",anomaly_score,is_anomaly,channel" {
		t.Fatalf("%d output lines for %d input lines; header %q", len(outLines), len(inLines), outLines[0])
	}
	flagged := 0
	for i := range a.Times {
		row := make([]float64, len(a.Channels))
		for c := range row {
			row[c], _ = strconv.ParseFloat(strconv.FormatFloat(a.Values[c][i], 'f', 4, 64), 64)
		}
		want := v.Observe(a.Times[i], row)
		wantLine := fmt.Sprintf("%s,%s,0,", inLines[i+1], strconv.FormatFloat(want.Score, 'f', 6, 64))
		if want.Anomaly {
			flagged++
			wantLine = fmt.Sprintf("%s,%s,1,%s", inLines[i+1], strconv.FormatFloat(want.Score, 'f', 6, 64), a.Channels[want.Channel])
		}
		if outLines[i+1] != wantLine {
			t.Fatalf("row %d: %q, want %q", i, outLines[i+1], wantLine)
		}
	}
	if flagged == 0 || st.Anomalies != flagged || st.WarmUp == 0 {
		t.Errorf("stats %+v, %d rows flagged by the vote", st, flagged)
	}
}

// BenchmarkReplayGroup: 20,000 rows of 8 channels per op, method pca.
func BenchmarkReplayGroup(b *testing.B) {
	a, err := synth.GenerateGroup(synth.GroupShift, synth.GroupOptions{Seed: 1, Rows: 20_000})
	if err != nil {
		b.Fatal(err)
	}
	in := groupCSV(b, a)
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := ReplayGroup(strings.NewReader(in), nil, GroupReplayOptions{Method: MethodPCA}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/20_000, "ns/row")
}
