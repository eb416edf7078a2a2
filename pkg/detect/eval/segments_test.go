package eval

import (
	"compress/gzip"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestMeasureSegments(t *testing.T) {
	// segments: [2,12) found at row 11 (delay 9: late), [15,17) found at 15,
	// [20,22) missed; false runs: [0,1) and [23,25); the run [14,17) runs
	// into the second segment, so it is a detection, not a false episode
	labels := b("00111111111100011000110000")
	alarms := b("10000000000100111000000110")
	s := MeasureSegments(labels, alarms, ChallengeDelay)
	if s.Segments != 3 || s.Found != 2 || s.FoundInTime != 1 {
		t.Errorf("segments %d found %d in time %d, want 3, 2, 1", s.Segments, s.Found, s.FoundInTime)
	}
	if s.FalseEpisodes != 2 {
		t.Errorf("false episodes %d, want 2", s.FalseEpisodes)
	}
	if s.Point != (Point{TP: 3, FP: 4, FN: 11, TN: 8}) {
		t.Errorf("point %+v", s.Point)
	}
	if s.Adjusted != (Point{TP: 12, FP: 4, FN: 2, TN: 8}) {
		t.Errorf("adjusted %+v", s.Adjusted)
	}
	if s.Delayed != (Point{TP: 2, FP: 4, FN: 12, TN: 8}) {
		t.Errorf("delayed %+v", s.Delayed)
	}
	if s.Flagged != 7 || s.FlaggedNormal != 4 || s.Normal != 12 {
		t.Errorf("flagged %d normal flagged %d of %d", s.Flagged, s.FlaggedNormal, s.Normal)
	}
	var sum Segments
	sum.Add(s)
	sum.Add(s)
	if sum.Delayed.TP != 4 || sum.FalseEpisodes != 4 || sum.Rows != 52 || sum.FalsePer1000() != s.FalsePer1000() {
		t.Errorf("Add: %+v", sum)
	}
}

func TestZScoreAlarmsFlagsOutlierOnly(t *testing.T) {
	v := make([]float64, 500)
	for i := range v {
		v[i] = math.Sin(float64(i)) // bounded, |z| < 1.5
	}
	v[300] = 50
	v[200] = math.NaN()
	a := ZScoreAlarms(v, 100, 3)
	for i, x := range a {
		if x != (i == 300) {
			t.Fatalf("row %d alarm %v", i, x)
		}
	}
}

func TestReadLabelled(t *testing.T) {
	l, err := ReadLabelled(strings.NewReader("timestamp,a,b,label\n60,1,,0\n120,2,3.5,1\n"))
	if err != nil {
		t.Fatal(err)
	}
	if l.Rows() != 2 || len(l.Channels) != 2 || !math.IsNaN(l.Values[1][0]) || l.Values[1][1] != 3.5 || !l.Labels[1] || l.Times[1].Unix() != 120 {
		t.Errorf("read %+v", l)
	}
	for _, in := range []string{
		"",
		"entity,train_file\nx,y\n",
		"timestamp,value,label\n60,1\n",
		"timestamp,value,label\nnoon,1,0\n",
		"timestamp,value,label\n60,1,2\n",
		"timestamp,value,label\n60,1,0\n" + strings.Repeat("9", MaxLabelledLine+1) + "\n",
	} {
		_, err := ReadLabelled(strings.NewReader(in))
		if !errors.Is(err, ErrLabelledFormat) {
			t.Errorf("%.40q: error %v, want ErrLabelledFormat", in, err)
		}
	}
	if _, err := ReadLabelled(strings.NewReader("entity,train_file\n")); !errors.Is(err, ErrNotLabelled) {
		t.Errorf("manifest: %v, want ErrNotLabelled", err)
	}
}

func TestFindCasesAndRun(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) {
		p := filepath.Join(dir, name)
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(name, ".gz") {
			gz := gzip.NewWriter(f)
			gz.Write([]byte(body))
			gz.Close()
		} else {
			f.Write([]byte(body))
		}
		f.Close()
	}
	series := func(from, n, spike int) string {
		var sb strings.Builder
		sb.WriteString("timestamp,value,label\n")
		for i := from; i < from+n; i++ {
			v, lab := 10+math.Sin(float64(i)/5), "0"
			if i == spike {
				v, lab = 100, "1"
			}
			sb.WriteString(strings.Join([]string{itoa(i * 60), ftoa(v), lab}, ",") + "\n")
		}
		return sb.String()
	}
	write("m.train.csv.gz", series(0, 400, -1))
	write("m.test.csv.gz", series(400, 400, 700))
	write("k.csv", series(0, 800, 700))
	write("manifest.csv", "entity,train_file\n")
	cases, err := FindCases(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(cases) != 3 || cases[1].Name != "m" || cases[1].Train == "" || cases[0].Name != "k" {
		t.Fatalf("cases %+v", cases)
	}
	for _, c := range cases[:2] {
		r, err := Run(c, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if r.Scored != 400 || r.Detector.Segments != 1 || r.Detector.FoundInTime != 1 {
			t.Errorf("%s: scored %d, %+v", c.Name, r.Scored, r.Detector)
		}
	}
	if _, err := Run(cases[2], Options{}); !errors.Is(err, ErrNotLabelled) {
		t.Errorf("manifest: %v", err)
	}
	if n := len(cases); TuningPart.In("m") == HeldOutPart.In("m") || !AllParts.In("m") || n == 0 {
		t.Error("parts must split")
	}
}

func itoa(i int) string     { return strconv.Itoa(i) }
func ftoa(f float64) string { return strconv.FormatFloat(f, 'f', 4, 64) }
