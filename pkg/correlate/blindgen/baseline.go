package blindgen

import (
	"cmp"
	"encoding/json"
	"slices"
	"time"

	"github.com/aiops-dev/aiops/pkg/correlate/eval"
)

// item is one alert as a correlator sees it: its fingerprint, its service
// label and when a notification first carried it.
type item struct {
	fp, service string
	first       time.Time
}

// seen reads the alerts back from the lines, as a correlator would, in
// the order they first appear.
func (s *Storm) seen() []item {
	var items []item
	known := map[string]bool{}
	for _, b := range s.Lines {
		var l struct {
			Type    string    `json:"type"`
			Time    time.Time `json:"time"`
			Payload *struct {
				Alerts []struct {
					Labels      map[string]string `json:"labels"`
					Fingerprint string            `json:"fingerprint"`
				} `json:"alerts"`
			} `json:"payload"`
		}
		if err := json.Unmarshal(b, &l); err != nil {
			panic(err)
		}
		if l.Type != "alertmanager" || l.Payload == nil {
			continue
		}
		for _, a := range l.Payload.Alerts {
			if known[a.Fingerprint] {
				continue
			}
			known[a.Fingerprint] = true
			items = append(items, item{fp: a.Fingerprint, service: a.Labels["service"], first: l.Time})
		}
	}
	slices.SortStableFunc(items, func(x, y item) int {
		if c := x.first.Compare(y.first); c != 0 {
			return c
		}
		return cmp.Compare(x.fp, y.fp)
	})
	return items
}

// BaselineByService groups every alert fingerprint by its service label
// over the whole storm, as an Alertmanager route grouping by service does.
func (s *Storm) BaselineByService() map[string]string {
	out := map[string]string{}
	for _, it := range s.seen() {
		out[it.fp] = "service=" + it.service
	}
	return out
}

// BaselineTimeWindow groups alerts by time: in the order they first appear
// in a notification, an alert opens a new group when it appears more than
// d after the first alert of the current group, else joins it.
func (s *Storm) BaselineTimeWindow(d time.Duration) map[string]string {
	var items []eval.Sighting
	for _, it := range s.seen() {
		items = append(items, eval.Sighting{ID: it.fp, First: it.first})
	}
	return eval.WindowsByTime(items, d)
}
