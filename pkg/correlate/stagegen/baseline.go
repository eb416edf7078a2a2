package stagegen

import (
	"encoding/json"
	"slices"
	"strings"
	"time"

	"github.com/aiops-dev/aiops/pkg/correlate/eval"
)

// item is one thing a correlator sees in the lines: an alert (by its
// Alertmanager fingerprint) or an anomaly event (by its id).
type item struct {
	id      string
	service string
	first   time.Time
	order   int
}

// items reads the lines as a correlator would and lists every item with
// the service it is about and when it was first seen (the time of the
// first line carrying it), in the order first seen. The service of an
// alert is its first label among service, job, app ("unknown" without
// one), as the gateway's decoder takes it; that of an anomaly is the
// envelope's service.
func (s Storm) items() []item {
	seen := map[string]bool{}
	var out []item
	for _, raw := range s.Lines {
		var l struct {
			Type    string    `json:"type"`
			Time    time.Time `json:"time"`
			Payload struct {
				Alerts []struct {
					Labels      map[string]string `json:"labels"`
					Fingerprint string            `json:"fingerprint"`
				} `json:"alerts"`
			} `json:"payload"`
			Event struct {
				ID      string    `json:"id"`
				Kind    string    `json:"kind"`
				Service string    `json:"service"`
				Time    time.Time `json:"time"`
			} `json:"event"`
		}
		if err := json.Unmarshal(raw, &l); err != nil {
			continue
		}
		switch l.Type {
		case "alertmanager":
			for _, a := range l.Payload.Alerts {
				if seen[a.Fingerprint] {
					continue
				}
				seen[a.Fingerprint] = true
				svc := "unknown"
				for _, k := range []string{"service", "job", "app"} {
					if v := a.Labels[k]; v != "" {
						svc = v
						break
					}
				}
				out = append(out, item{id: a.Fingerprint, service: svc, first: l.Time, order: len(out)})
			}
		case "event":
			if l.Event.Kind != "anomaly" || seen[l.Event.ID] {
				continue
			}
			seen[l.Event.ID] = true
			t := l.Time
			if t.IsZero() {
				t = l.Event.Time
			}
			out = append(out, item{id: l.Event.ID, service: l.Event.Service, first: t, order: len(out)})
		}
	}
	slices.SortStableFunc(out, func(a, b item) int {
		if c := a.first.Compare(b.first); c != 0 {
			return c
		}
		return a.order - b.order
	})
	return out
}

// BaselineByService is the naive baseline that groups every item by the
// service it is about, over the whole storm.
func (s Storm) BaselineByService() map[string]string {
	out := map[string]string{}
	for _, it := range s.items() {
		out[it.id] = "service=" + strings.ToLower(it.service)
	}
	return out
}

// BaselineTimeWindow is the naive baseline that chains items by time: in
// the order first seen, an item opens a new group when it is first seen
// more than d after the previous item, else joins the current group.
func (s Storm) BaselineTimeWindow(d time.Duration) map[string]string {
	var items []eval.Sighting
	for _, it := range s.items() {
		items = append(items, eval.Sighting{ID: it.id, First: it.first})
	}
	return eval.ChainByTime(items, d)
}
