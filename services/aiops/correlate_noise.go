package aiops

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/aiops-dev/aiops/pkg/correlate"
	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/pkg/notify/webhook"
)

// noiseNames are the alert names added noise fires under: the rules every
// estate has, which real incidents fire too.
var noiseNames = []string{"HighCPUUsage", "HighMemoryUsage", "TargetDown", "HighLatencyP99", "HighErrorRate", "KubePodCrashLooping", "DiskSpaceLow"}

// MinNoisePerHour and MaxNoisePerHour bound `correlate generate --noise`
// (0 adds none): under one a day is no stress, and the gaps between
// alerts must fit a time.Duration.
const (
	MinNoisePerHour = 0.01
	MaxNoisePerHour = 600
)

// addNoise adds to s unrelated alerts at perHour an hour over the storm's
// span (`correlate generate --noise`): each on a catalogued service drawn
// at random, under one of noiseNames, firing for 3 to 20 minutes, an
// incident of its own in the truth. Nothing keeps one off a service next
// to a failure at that moment: some are noise nobody could tell from a
// symptom, as in an estate. The same seed adds the same noise.
func addNoise(s *generatedStorm, seed uint64, perHour float64) error {
	if perHour <= 0 {
		return nil
	}
	cat, err := correlate.ParseCatalog(s.catalog)
	if err != nil {
		return fmt.Errorf("noise: the storm's catalog: %w", err)
	}
	services := cat.Names()
	if len(services) == 0 {
		return fmt.Errorf("noise: the storm's catalog names no service")
	}
	var first, last time.Time
	for _, data := range s.lines {
		l, err := parseLine(data)
		if err != nil {
			continue
		}
		if at := l.sentAt(); !at.IsZero() {
			if first.IsZero() || at.Before(first) {
				first = at
			}
			if at.After(last) {
				last = at
			}
		}
	}
	if !last.After(first) {
		return fmt.Errorf("noise: the storm's lines span no time")
	}
	rng := rand.New(rand.NewPCG(seed, 0x6e6f697365)) // "noise"
	mean := time.Duration(float64(time.Hour) / perHour)
	for n, at := 1, first; ; n++ {
		at = at.Add(time.Duration(rng.ExpFloat64() * float64(mean)))
		if at.After(last) {
			return nil
		}
		labels := map[string]string{
			"alertname": noiseNames[rng.IntN(len(noiseNames))], "service": services[rng.IntN(len(services))],
			"severity": "warning", "instance": fmt.Sprintf("10.9.%d.%d:9100", n/250, n%250+1),
		}
		fp := event.AlertmanagerFingerprint(labels)
		end := at.Add(3*time.Minute + time.Duration(rng.Int64N(int64(17*time.Minute))))
		for _, sent := range []struct {
			at     time.Time
			status string
			endsAt time.Time
		}{{at.Add(30 * time.Second), event.AlertFiring, time.Time{}}, {end.Add(30 * time.Second), event.AlertResolved, end}} {
			line, err := noiseLine(sent.at, sent.status, labels, fp, at, sent.endsAt)
			if err != nil {
				return err
			}
			s.lines = append(s.lines, line)
		}
		s.truth[fp] = fmt.Sprintf("noise-added-%d", n)
	}
}

// noiseLine is one Alertmanager webhook of one alert as a replay line.
func noiseLine(sent time.Time, status string, labels map[string]string, fp string, startsAt, endsAt time.Time) ([]byte, error) {
	notes := map[string]string{"summary": labels["alertname"] + " on " + labels["service"]}
	return json.Marshal(map[string]any{
		"type": "alertmanager", "time": sent,
		"payload": webhook.AlertmanagerPayload{
			Version: "4", Status: status, Receiver: "aiops", GroupKey: `{}:{alertname="` + labels["alertname"] + `"}`,
			GroupLabels: map[string]string{"alertname": labels["alertname"]}, CommonLabels: labels, CommonAnnotations: notes,
			ExternalURL: "http://alertmanager",
			Alerts: []webhook.AlertmanagerAlert{{Status: status, Labels: labels, Annotations: notes, StartsAt: startsAt, EndsAt: endsAt,
				GeneratorURL: "http://prometheus", Fingerprint: fp}},
		},
	})
}
