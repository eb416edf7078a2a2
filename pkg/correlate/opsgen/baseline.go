package opsgen

import (
	"encoding/json"
	"time"
)

// seenAlert is an alert as the lines show it: first seen at the time of
// the first line carrying it.
type seenAlert struct {
	fp, service string
	first       time.Time
}

// seen lists the alerts of the lines in order of first appearance.
func (s *Storm) seen() []seenAlert {
	var out []seenAlert
	known := map[string]bool{}
	for _, b := range s.Lines {
		var l struct {
			Time    time.Time `json:"time"`
			Payload *struct {
				Alerts []struct {
					Labels      map[string]string `json:"labels"`
					Fingerprint string            `json:"fingerprint"`
				} `json:"alerts"`
			} `json:"payload"`
		}
		if err := json.Unmarshal(b, &l); err != nil {
			panic("opsgen: bad line: " + err.Error())
		}
		if l.Payload == nil {
			continue
		}
		for _, a := range l.Payload.Alerts {
			if known[a.Fingerprint] {
				continue
			}
			known[a.Fingerprint] = true
			out = append(out, seenAlert{fp: a.Fingerprint, service: a.Labels["service"], first: l.Time})
		}
	}
	return out
}

// BaselineByService groups alerts by their service label: each alert
// fingerprint maps to its service.
func (s *Storm) BaselineByService() map[string]string {
	out := map[string]string{}
	for _, a := range s.seen() {
		out[a.fp] = a.service
	}
	return out
}

// BaselineTimeWindow groups alerts by arrival: an alert joins the open
// window when it is first seen within d of the alert that opened it, and
// opens a new window otherwise.
func (s *Storm) BaselineTimeWindow(d time.Duration) map[string]string {
	out := map[string]string{}
	var open time.Time
	var id string
	for _, a := range s.seen() {
		if id == "" || a.first.Sub(open) > d {
			open, id = a.first, a.fp
		}
		out[a.fp] = id
	}
	return out
}
