package aiops

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aiops-dev/aiops/pkg/correlate"
)

// Progress goes to standard error for a long input: long in time, not
// only in lines. An input of large webhooks (2,000 lines of 500 alerts,
// 400 MB, a minute's replay) told nothing until its end: progress came
// only every 100,000 lines read and every 10,000 replayed.
func TestReplayTellsProgressOfFewLongLines(t *testing.T) {
	defer func(was time.Duration) { progressEvery = was }(progressEvery)
	progressEvery = time.Nanosecond // every line is "a while" here
	var in bytes.Buffer
	for i := range 20 {
		fmt.Fprintf(&in, `{"type":"alertmanager","time":"2026-12-01T10:%02d:30Z","payload":{"version":"4","status":"firing","alerts":[{"status":"firing","labels":{"alertname":"A","service":"s%d"},"startsAt":"2026-12-01T10:%02d:00Z"}]}}`+"\n", i, i, i)
	}
	var progress bytes.Buffer
	if _, err := Replay(context.Background(), &in, correlate.DefaultConfig(), nil, &progress); err != nil {
		t.Fatal(err)
	}
	var reading, replaying int
	for _, l := range strings.Split(progress.String(), "\n") {
		switch {
		case strings.HasPrefix(l, "correlate replay: read "):
			reading++
		case strings.HasPrefix(l, "correlate replay: ") && strings.Contains(l, " lines/s"):
			replaying++
		}
	}
	if reading == 0 || replaying == 0 {
		t.Fatalf("progress told %d times while reading, %d while replaying, want both:\n%s", reading, replaying, progress.String())
	}
}
