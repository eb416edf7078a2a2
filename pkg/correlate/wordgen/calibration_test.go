package wordgen

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/aiops-dev/aiops/pkg/correlate/eval"
)

// The calibration seeds are 2001–2100, and only those: the storms a
// correlator is scored on are other seeds.
const firstCalibrationSeed, lastCalibrationSeed = 2001, 2100

type tally struct {
	n                                    float64
	service, chain, windows              [3]float64 // precision, recall, F1
	incidents, noise, alerts, notes      float64
	lines, changes, firedAgain, resolved float64
}

func (t *tally) add(s Storm, c Calibration) {
	t.n++
	for _, x := range []struct {
		into  *[3]float64
		score eval.Scores
	}{{&t.service, c.ByService}, {&t.chain, c.Chain5m}, {&t.windows, c.Windows5m}} {
		x.into[0] += x.score.Precision
		x.into[1] += x.score.Recall
		x.into[2] += x.score.F1
	}
	ids := map[string]bool{}
	for _, id := range s.Truth {
		if strings.HasPrefix(id, "noise-") {
			t.noise++
		} else {
			ids[id] = true
		}
	}
	t.incidents += float64(len(ids))
	t.alerts += float64(len(s.Truth))
	t.notes += float64(s.Notifications)
	t.lines += float64(len(s.Lines))
	// An alert sent firing with two startsAt fired again; one never sent
	// firing fired and resolved between two of its group's flushes.
	firing := map[string]map[time.Time]bool{}
	resolved := map[string]bool{}
	for _, raw := range s.Lines {
		var l struct{ Payload *payload }
		if err := json.Unmarshal(raw, &l); err != nil {
			panic(err)
		}
		if l.Payload == nil {
			t.changes++
			continue
		}
		for _, a := range l.Payload.Alerts {
			if a.Status == "resolved" {
				resolved[a.Fingerprint] = true
				continue
			}
			if firing[a.Fingerprint] == nil {
				firing[a.Fingerprint] = map[time.Time]bool{}
			}
			firing[a.Fingerprint][a.StartsAt] = true
		}
	}
	for fp := range s.Truth {
		if len(firing[fp]) >= 2 {
			t.firedAgain++
		}
		if len(firing[fp]) == 0 && resolved[fp] {
			t.resolved++
		}
	}
}

func (t *tally) mean(x float64) float64 { return x / t.n }

func calibrate(t *testing.T, from, to uint64) *tally {
	t.Helper()
	var tl tally
	for seed := from; seed <= to; seed++ {
		s := Generate(seed, DefaultConfig())
		c, err := Calibrate(s)
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		tl.add(s, c)
	}
	return &tl
}

// TestCalibration checks the two baselines on a handful of seeds,
// with bounds loose enough for a few storms: grouping by the service
// label scores badly, a 5-minute time window middling.
func TestCalibration(t *testing.T) {
	tl := calibrate(t, firstCalibrationSeed, firstCalibrationSeed+19)
	service, chain := tl.mean(tl.service[2]), tl.mean(tl.chain[2])
	t.Logf("20 storms: by service F1 %.3f, 5-minute chain F1 %.3f", service, chain)
	if service < 0.05 || service > 0.28 {
		t.Errorf("grouping by service scores F1 %.3f on 20 storms, want about 0.09–0.20", service)
	}
	if chain < 0.55 || chain > 0.80 {
		t.Errorf("a 5-minute window scores F1 %.3f on 20 storms, want about 0.63–0.73", chain)
	}
}

// TestCalibrationTable is the table in doc.go (go test -run
// TestCalibrationTable -v): the mean over the calibration seeds must land
// in the ranges.
func TestCalibrationTable(t *testing.T) {
	if testing.Short() {
		t.Skip("100 storms")
	}
	tl := calibrate(t, firstCalibrationSeed, lastCalibrationSeed)
	row := func(name string, s [3]float64) {
		t.Logf("%-28s P %.3f  R %.3f  F1 %.3f", name, tl.mean(s[0]), tl.mean(s[1]), tl.mean(s[2]))
	}
	row("by service label", tl.service)
	row("5-minute chain (ChainByTime)", tl.chain)
	row("5-minute windows (Windows)", tl.windows)
	t.Logf("per storm: %.1f incidents + %.1f noise alerts; %.1f alerts, %.1f notifications, %.1f lines (%.1f changes); %.1f alerts fired again, %.1f only ever seen resolved",
		tl.mean(tl.incidents), tl.mean(tl.noise), tl.mean(tl.alerts), tl.mean(tl.notes), tl.mean(tl.lines), tl.mean(tl.changes), tl.mean(tl.firedAgain), tl.mean(tl.resolved))
	if f := tl.mean(tl.service[2]); f < 0.09 || f > 0.20 {
		t.Errorf("by service: mean F1 %.3f, the issue measured 0.09–0.20", f)
	}
	if f := tl.mean(tl.chain[2]); f < 0.63 || f > 0.73 {
		t.Errorf("5-minute chain: mean F1 %.3f, the issue measured 0.63–0.73", f)
	}
}
