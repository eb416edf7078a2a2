package eval

import (
	"fmt"
	"time"

	"github.com/aiops-dev/aiops/pkg/correlate/scenario"
)

// The baselines see only what a correlator sees (the lines, through
// scenario.Items), never the truth. Both first deduplicate by item: all
// notifications of one alert fingerprint are one item, as any correlator
// would have them, so repeats and resolutions neither open incidents nor
// keep them open.

// BaselineByLabel puts all items with the same value of label into one
// incident, over the whole timeline, as an Alertmanager route grouping by
// that label does. Anomalies are grouped by their envelope labels (which
// carry service, namespace and job like the alerts). Items without the
// label share one incident, the group of the empty value, as in
// Alertmanager.
func BaselineByLabel(s scenario.Scenario, label string) map[string]string {
	out := map[string]string{}
	for _, it := range s.Items() {
		out[it.ID] = label + "=" + it.Labels[label]
	}
	return out
}

// BaselineTimeWindow chains items by time: in the order items are first
// seen, an item joins the current incident when it is first seen within
// window of the previous item's first sighting, else it opens a new one.
// With a 5-minute window everything that starts within 5 minutes of
// something else is one incident, whatever the services.
func BaselineTimeWindow(s scenario.Scenario, window time.Duration) map[string]string {
	items := s.Items()
	seen := make([]Sighting, len(items))
	for i, it := range items {
		seen[i] = Sighting{it.ID, it.FirstSeen}
	}
	return ChainByTime(seen, window)
}

// Sighting is an item and when a correlator first saw it, what the time
// baselines group by (each generator lists its storms' own).
type Sighting struct {
	ID    string
	First time.Time
}

// ChainByTime groups items, given in the order first seen, by time: an
// item joins the current group when it was first seen within window of
// the previous item, else it opens a new one (a chain: a steady trickle
// is one group however long).
func ChainByTime(items []Sighting, window time.Duration) map[string]string {
	return groupByTime(items, window, false)
}

// WindowsByTime groups items, given in the order first seen, by time: an
// item joins the current group when it was first seen within window of
// the group's first item, else it opens a new one (a group spans at most
// window).
func WindowsByTime(items []Sighting, window time.Duration) map[string]string {
	return groupByTime(items, window, true)
}

// groupByTime is ChainByTime, or with anchored WindowsByTime.
func groupByTime(items []Sighting, window time.Duration, anchored bool) map[string]string {
	out := make(map[string]string, len(items))
	n := 0
	var from time.Time
	for i, it := range items {
		if i == 0 || it.First.Sub(from) > window {
			n++
			from = it.First
		} else if !anchored {
			from = it.First
		}
		out[it.ID] = fmt.Sprintf("window-%d", n)
	}
	return out
}
