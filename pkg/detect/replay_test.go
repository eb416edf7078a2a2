package detect

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/aiops-dev/aiops/pkg/errs"
)

func TestReplay(t *testing.T) {
	var in strings.Builder
	in.WriteString("\xef\xbb\xbftimestamp,value\r\n")
	n := 200
	for i := 0; i < n; i++ {
		ts := t0.Add(time.Duration(i) * time.Minute)
		v := fmt.Sprintf("%.3f", 10+float64(i%5)*0.1)
		switch i {
		case 150:
			v = "60" // spike
		case 160:
			v = "n/a" // unparsable: kept, score 0
		case 170:
			v = "NaN"
		}
		if i%2 == 0 {
			fmt.Fprintf(&in, "%s,%s\n", ts.Format("2006-01-02 15:04:05"), v)
		} else {
			fmt.Fprintf(&in, "%s,%s\n", ts.Format(time.RFC3339), v)
		}
		if i == 100 {
			in.WriteString("\n") // blank line skipped
		}
	}
	var out bytes.Buffer
	st, err := Replay(strings.NewReader(in.String()), &out, Config{})
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if lines[0] != "timestamp,value,anomaly_score,is_anomaly" || len(lines) != n+1 {
		t.Fatalf("header %q, %d lines, want %d", lines[0], len(lines), n+1)
	}
	if !strings.HasPrefix(lines[151], t0.Add(150*time.Minute).Format("2006-01-02 15:04:05")+",60,") || !strings.HasSuffix(lines[151], ",1") {
		t.Errorf("spike row %q", lines[151])
	}
	if !strings.HasSuffix(lines[161], ",n/a,0.000000,0") || !strings.HasSuffix(lines[171], ",NaN,0.000000,0") {
		t.Errorf("bad value rows %q %q", lines[161], lines[171])
	}
	if st.Rows != n || st.BadValues != 1 || st.Invalid != 1 || st.Anomalies < 1 || st.WarmUp != DefaultWarmUp {
		t.Errorf("stats %+v", st)
	}
}

func TestReplayErrors(t *testing.T) {
	cases := []struct {
		in   string
		want error
		line string
	}{
		{"", ErrReplayHeader, "empty"},
		{"time,val\n", ErrReplayHeader, "line 1"},
		{"timestamp,value\n2026-01-01 00:00:00,1\n2026-01-01 00:00:01,1,2\n", ErrReplayRow, "line 3"},
		{"timestamp,value\n2026-01-01 00:00:00,1\nyesterday,1\n", ErrReplayTimestamp, "line 3"},
		{"timestamp,value\n2026-01-01 00:00:00," + strings.Repeat("1", MaxReplayLine) + "\n", ErrReplayTooLarge, "line 2"},
	}
	for _, c := range cases {
		_, err := Replay(strings.NewReader(c.in), &bytes.Buffer{}, Config{})
		if !errors.Is(err, c.want) || !errs.IsPermanent(err) || !strings.Contains(err.Error(), c.line) {
			t.Errorf("%.40q: %v, want %v naming %s", c.in, err, c.want, c.line)
		}
	}
	if _, err := Replay(strings.NewReader("timestamp,value\n"), nil, Config{Window: 2}); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("bad config: %v", err)
	}
}

// The labelled corpora write Unix seconds; a replay of them scores the
// same as of the same series written in RFC 3339.
func TestReplayUnixSeconds(t *testing.T) {
	var unix, rfc strings.Builder
	unix.WriteString("timestamp,value\n")
	rfc.WriteString("timestamp,value\n")
	for i := 0; i < 300; i++ {
		ts := t0.Add(time.Duration(i) * time.Minute)
		v := 10 + float64(i%7)*0.1
		if i == 250 {
			v = 80
		}
		fmt.Fprintf(&unix, "%d,%g\n", ts.Unix(), v)
		fmt.Fprintf(&rfc, "%s,%g\n", ts.Format(time.RFC3339), v)
	}
	scores := func(in string) (string, ReplayStats) {
		var out bytes.Buffer
		st, err := Replay(strings.NewReader(in), &out, Config{})
		if err != nil {
			t.Fatal(err)
		}
		var col strings.Builder
		for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n")[1:] {
			col.WriteString(l[strings.Index(l, ",")+1:] + "\n") // value and scores
		}
		return col.String(), st
	}
	a, sa := scores(unix.String())
	b, sb := scores(rfc.String())
	if a != b || sa.Anomalies < 1 || sa != sb {
		t.Fatalf("Unix seconds scored differently (%+v vs %+v) or found nothing", sa, sb)
	}
	if _, err := Replay(strings.NewReader("timestamp,value\n99999999999999,1\n"), io.Discard, Config{}); !errors.Is(err, ErrReplayTimestamp) {
		t.Fatalf("a time past year 5000: %v, want ErrReplayTimestamp", err)
	}
}
