package webhook

import (
	"fmt"
	"strconv"
	"time"

	"github.com/aiops-dev/aiops/pkg/errs"
	"github.com/aiops-dev/aiops/pkg/event"
)

// AlertmanagerOptions fills the fields of the Alertmanager payload that
// describe the sender.
type AlertmanagerOptions struct {
	// Receiver is the payload's "receiver", the name Alertmanager's
	// configuration would give the receiver.
	Receiver string
	// ExternalURL is the payload's "externalURL", a link back to aiops.
	ExternalURL string
	// MaxAlerts is a webhook_config's max_alerts: at most this many
	// alerts are listed, the rest counted in truncatedAlerts, as
	// Alertmanager does; 0 lists them all.
	MaxAlerts int
}

// AlertmanagerPayload is the body of Prometheus Alertmanager's webhook
// (payload version 4), its fields in the order Alertmanager writes them.
// The Alertmanager function builds one for an incident; the storm
// generators (pkg/correlate/scenario, blindgen, fleetgen, stagegen) write
// them into their replay lines.
type AlertmanagerPayload struct {
	Version           string              `json:"version"`
	GroupKey          string              `json:"groupKey"`
	TruncatedAlerts   int                 `json:"truncatedAlerts"`
	Status            string              `json:"status"`
	Receiver          string              `json:"receiver"`
	GroupLabels       map[string]string   `json:"groupLabels"`
	CommonLabels      map[string]string   `json:"commonLabels"`
	CommonAnnotations map[string]string   `json:"commonAnnotations"`
	ExternalURL       string              `json:"externalURL"`
	Alerts            []AlertmanagerAlert `json:"alerts"`
}

// AlertmanagerAlert is one alert of an AlertmanagerPayload. A firing
// alert's EndsAt is the zero time, written "0001-01-01T00:00:00Z" as
// Alertmanager does (time.Time's own encoding: no omitempty).
type AlertmanagerAlert struct {
	Status       string            `json:"status"`
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
	Fingerprint  string            `json:"fingerprint"`
}

// Alertmanager builds the body Prometheus Alertmanager's webhook_config
// sends (an AlertmanagerPayload, version 4), so receivers written for
// Alertmanager keep working when aiops notifies them instead:
//
//	version            "4"
//	groupKey           {}:{incident_id="<id>"}: one group per incident
//	truncatedAlerts    members of the incident not listed in alerts
//	status             "resolved" for a resolved incident, else "firing"
//	receiver           opts.Receiver
//	groupLabels        {incident_id}
//	commonLabels       the labels every alert has
//	commonAnnotations  the annotations every alert has
//	externalURL        opts.ExternalURL
//	alerts[]           one per member (the incident itself when it has none):
//	  status           firing or resolved (every alert of a resolved incident)
//	  labels           the incident's labels, the member's, then alertname (the
//	                   member's name), service, severity, team, incident_id
//	  annotations      summary, description, runbook_url, incident_title,
//	                   incident_url, incident_status, incident_merged_into
//	                   (when set)
//	  startsAt         the member's first_seen (the incident's opened_at)
//	  endsAt           when it stopped firing; 0001-01-01T00:00:00Z while
//	                   firing, as Alertmanager sends
//	  generatorURL     the incident's URL
//	  fingerprint      16 hex digits, Prometheus' FNV-1a fingerprint of labels
//
// An acknowledged incident still fires: Alertmanager has no acknowledgement;
// its status is in the incident_status annotation.
func Alertmanager(in Incident, opts AlertmanagerOptions) ([]byte, error) {
	if err := in.Validate(); err != nil {
		return nil, errs.Permanent(err)
	}
	resolved := in.Status == StatusResolved
	common := map[string]string{
		"incident_title":  in.Title,
		"incident_url":    in.URL,
		"incident_status": string(in.Status),
		"runbook_url":     in.Runbook,
		// A receiver written for Alertmanager sees every alert resolved;
		// this says the failure goes on in another incident.
		"incident_merged_into": in.MergedInto,
	}
	var alerts []AlertmanagerAlert
	add := func(labels map[string]string, summary, description string, firing bool, start, end time.Time) {
		ann := map[string]string{"summary": summary, "description": description}
		for k, v := range common {
			ann[k] = v
		}
		for k, v := range ann {
			if v == "" {
				delete(ann, k)
			}
		}
		a := AlertmanagerAlert{Status: "firing", Labels: labels, Annotations: ann, StartsAt: utc(start), GeneratorURL: in.URL, Fingerprint: event.AlertmanagerFingerprint(labels)}
		if !firing || resolved {
			a.Status = "resolved"
			if end.IsZero() || end.Before(start) {
				end = in.Time()
			}
			a.EndsAt = utc(end)
		}
		alerts = append(alerts, a)
	}
	for _, m := range in.Members {
		labels := make(map[string]string, len(in.Labels)+len(m.Labels)+5)
		for k, v := range in.Labels {
			labels[k] = v
		}
		for k, v := range m.Labels {
			labels[k] = v
		}
		sev := m.Severity
		if sev == "" {
			sev = in.severity()
		}
		name := m.Name
		if name == "" {
			name = "AiopsSignal"
		}
		setLabels(labels, "alertname", name, "service", m.Service, "severity", string(sev), "team", in.Team, "incident_id", in.ID)
		end := m.LastSeen
		if resolved && !in.ResolvedAt.IsZero() && m.Firing {
			end = in.ResolvedAt
		}
		add(labels, m.Summary, "", m.Firing, m.FirstSeen, end)
	}
	if len(alerts) == 0 {
		labels := make(map[string]string, len(in.Labels)+5)
		for k, v := range in.Labels {
			labels[k] = v
		}
		setLabels(labels, "alertname", "AiopsIncident", "service", in.Service, "severity", string(in.severity()), "team", in.Team, "incident_id", in.ID)
		add(labels, in.Title, in.Summary, true, in.OpenedAt, in.ResolvedAt)
	}

	msg := AlertmanagerPayload{
		Version:         "4",
		GroupKey:        "{}:{incident_id=" + strconv.Quote(in.ID) + "}",
		TruncatedAlerts: max(in.memberCount()-len(in.Members), 0),
		Status:          "firing",
		Receiver:        opts.Receiver,
		GroupLabels:     map[string]string{"incident_id": in.ID},
		ExternalURL:     opts.ExternalURL,
		Alerts:          alerts,
	}
	if resolved {
		msg.Status = "resolved"
	}
	msg.CommonLabels = intersect(alerts, func(a AlertmanagerAlert) map[string]string { return a.Labels })
	msg.CommonAnnotations = intersect(alerts, func(a AlertmanagerAlert) map[string]string { return a.Annotations })
	if opts.MaxAlerts > 0 && len(msg.Alerts) > opts.MaxAlerts {
		// After the common labels, which Alertmanager takes from all.
		msg.TruncatedAlerts += len(msg.Alerts) - opts.MaxAlerts
		msg.Alerts = msg.Alerts[:opts.MaxAlerts]
	}
	b, err := marshal(msg)
	if err != nil {
		return nil, errs.Permanent(fmt.Errorf("webhook: alertmanager payload of incident %s: %w", in.ID, err))
	}
	return b, nil
}

// setLabels sets name/value pairs, skipping empty values; they win over
// labels of the same name already there.
func setLabels(labels map[string]string, kv ...string) {
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			labels[kv[i]] = kv[i+1]
		}
	}
}

// intersect is the name/value pairs that every alert's map holds.
func intersect(alerts []AlertmanagerAlert, get func(AlertmanagerAlert) map[string]string) map[string]string {
	out := map[string]string{}
	if len(alerts) == 0 {
		return out
	}
	for k, v := range get(alerts[0]) {
		out[k] = v
	}
	for _, a := range alerts[1:] {
		m := get(a)
		for k, v := range out {
			if w, ok := m[k]; !ok || w != v {
				delete(out, k)
			}
		}
	}
	return out
}
