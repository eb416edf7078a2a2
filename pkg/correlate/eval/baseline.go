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
	out := map[string]string{}
	n := 0
	var last time.Time
	for i, it := range s.Items() {
		if i == 0 || it.FirstSeen.Sub(last) > window {
			n++
		}
		last = it.FirstSeen
		out[it.ID] = fmt.Sprintf("window-%d", n)
	}
	return out
}
