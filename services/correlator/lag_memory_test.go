package correlator

import (
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/correlate"
)

// README (idle_advance) promises event time stays behind the wall
// clock by "the longest delivery lag ... of the last hour's signals".
// noteLag keeps one lag and replaces it by the first shorter one once it
// is an hour old, forgetting a longer lag seen since: here 1m at 59m is
// within the last hour at 61m, but the idle advance allows only 10s.
func TestLagIsTheLongestOfTheLastHour(t *testing.T) {
	wall := &clock{t: t0}
	p, err := NewProcessor(Config{Catalog: writeCatalog(t)}, zerolog.Nop(), wall.now)
	if err != nil {
		t.Fatal(err)
	}
	arrive := func(at, lag time.Duration) {
		p.noteLag(correlate.Signal{Time: t0.Add(at - lag), Observed: t0.Add(at)}, t0.Add(at))
	}
	arrive(0, 5*time.Minute)
	arrive(59*time.Minute, time.Minute)
	arrive(61*time.Minute, 10*time.Second)
	if p.lag < time.Minute {
		t.Errorf("lag %s at 61m, want 1m: the longest of the last hour (1m at 59m)", p.lag)
	}
}
