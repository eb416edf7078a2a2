// Package scenario generates incident storms with ground truth, to
// measure the correlator: a service catalog (a layered, acyclic dependency
// graph), the replay lines the correlator's offline command reads
// (Alertmanager webhooks, changes, detector anomalies) and the true
// incident of every alert and anomaly.
//
// Everything is drawn from one seed (math/rand/v2, PCG): the same seed and
// Config give the same scenario byte for byte.
//
// # What a storm holds
//
// Planned incidents (Config.Incidents) are cascades (a backend or data
// store fails, the services that depend on it alert 15 s to 2.5 min per
// hop later, up to four hops up), deploy-induced failures (a change line,
// then 1-10 minutes later alerts on the changed service and some of its
// dependents, often a rollback near the end) and local failures (one
// service; a direct dependent rarely). Some start within one minute of
// each other in unrelated parts of the graph (Config.Simultaneous), half
// of those clusters among services of one team. In some incidents an
// alert flaps, in some an alert resolves and fires again. Affected
// services often show detector anomalies 30 s to 3 min before their first
// alert. Around them: isolated noise alerts and anomaly blips, alerts
// firing all along in the background, and changes that break nothing.
//
// # How alerts look
//
// Every alert is one label set: alertname, service, severity (critical,
// warning, info), namespace, cluster, often pod, instance, endpoint and
// the like, and team for some alert rules. Its fingerprint is
// AlertFingerprint: FNV-1a 64 over the sorted labels (name 0xff value
// 0xff ...), 16 hex digits, as Alertmanager computes it. A label set is
// never reused across incidents, so a fingerprint names one true incident.
//
// Alerts reach the lines as Alertmanager sends them: one aggregation group
// per team route (receiver "<team>-oncall", group_by alertname or service,
// drawn per team), notified GroupWait after the group forms, then at each
// GroupInterval when an alert fired or resolved, and every repeat interval
// (1-5 minutes, per team) while alerts keep firing unchanged. A webhook
// holds the group's firing alerts and the ones resolved since the last
// notification (status resolved, endsAt set; firing alerts carry endsAt
// 0001-01-01T00:00:00Z). A repeat has the same fingerprint and startsAt;
// an alert that fires again after resolving (flapping, refire) keeps its
// fingerprint and gets a new startsAt. The description annotation quotes
// a value that changes between notifications of the same alert. A group
// keyed by alertname mixes alerts of different incidents.
//
// # Truth
//
// Truth.Items maps each alert fingerprint and each anomaly event id in the
// lines to its incident label (inc-NN for planned incidents, noise-aNNN,
// noise-nNNN and bg-NN for singletons); Truth.Incidents gives each
// incident's kind, root service, causing change, affected services and
// items. Package eval scores a correlator's assignment against it.
package scenario
