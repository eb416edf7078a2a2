// Package wordgen generates alert storms with ground truth to score an
// incident correlator on storms it was never tuned on. It was written
// blind to the correlator and to the project's other generators, from the
// words of issue #12 ("storms cascading over a dependency graph,
// deploy-induced incidents, two or more independent incidents at the same
// moment, flapping alerts, alerts resolved and firing again, unrelated
// noise", a service catalog, change events) and from how Prometheus and
// Alertmanager estates behave, and calibrated to the two
// baselines on seeds 2001–2100 only.
//
// Generate(seed, DefaultConfig()) gives replay input lines (the format of
// `aiops correlate replay`), the catalog and the truth; the same seed
// gives the same bytes.
//
// # The estate
//
// A video streaming platform on one production Kubernetes cluster: 25
// applications and 14 datastores in three layers (edge gateway and client
// back ends; playback, identity, commerce, discovery and content
// services; Postgres, Redis, Cassandra, Kafka, Elasticsearch, Ceph,
// RabbitMQ, ClickHouse, Vault). The catalog lists every one with owner,
// team, tier, runbook and depends_on (what it calls).
//
// Alerts carry the component the way each monitoring source really
// labels it, which is rarely one tidy label:
//
//   - an application's own metrics (a ServiceMonitor): service and job are
//     its name, with a route label on error-rate alerts;
//   - applications of the web-experience and identity teams are only
//     seen through Istio's sidecar telemetry: destination_service_name,
//     no service label, no route;
//   - SLO burn-rate alerts (Pyrra style, ErrorBudgetBurn): slo is
//     "<name>-availability", no service label;
//   - kube-state-metrics alerts (KubePodCrashLooping, replicas mismatch,
//     HPA, node): service, job, instance name kube-state-metrics itself;
//     the workload is in pod, container, deployment, statefulset or node;
//   - datastore exporters: service is the exporter's Service
//     ("identity-db-metrics", "search-elasticsearch-exporter",
//     "cassandra-main-dc1-all-pods-service", "rook-ceph-mgr"); Strimzi's
//     Kafka alerts have none (strimzi_io_cluster, pod);
//   - blackbox probes of the public endpoints: instance is the URL;
//   - business KPIs computed by the analytics pipeline
//     (PlaybackStartFailureRateHigh) are labelled service="qoe-analytics"
//     though they measure playback.
//
// Every alert carries cluster and prometheus (the external labels).
//
// # What a storm holds
//
// Six hours of a Saturday evening. Incidents start 20 to 60 minutes apart;
// with probability 0.2 another, independent incident starts 0 to 3
// minutes after one (about two such pairs a storm, sometimes three at
// once). Incidents at the same time never share a component, so each
// alert has one defensible cause. The kinds (weights):
//
//   - cascade (0.30): a datastore (70%) or a shared service fails, as an
//     outage or a degradation; its callers, and theirs, follow with
//     probabilities falling per hop, 10 to 75 seconds later each (2 to 6
//     minutes for Kafka and queue consumers, whose lag builds up);
//   - deploy (0.22): a deploy of a service (the change line 1 to 6
//     minutes before the first alert) brings errors, latency (then often
//     its own database saturates) or crash loops; callers may follow; a
//     rollback (a deploy of the previous version) ends it;
//   - config (0.12): a config or feature-flag change brings errors on a
//     route or two; reverted by a second change;
//   - self (0.14): a service fails on its own (saturation, a memory
//     leak, a poison message for a consumer);
//   - node (0.10): a worker node dies: a burst of errors on the 2 to 4
//     services with pods on it, a datastore member sometimes, and the
//     node's own alerts (KubeNodeNotReady, KubeNodeUnreachable after
//     their 15 minutes, TargetDown for node-exporter);
//   - external (0.12): the payment provider or a CDN fails; the services
//     behind it follow.
//
// Rules keep their real for: durations (2 minutes for error rates, 5 for
// latency, 15 for kube-state-metrics), so some alerts join late and short
// incidents never raise them. A critical error rate follows its warning.
// A slow SLO burn fires 9 to 20 minutes in and resolves 10 to 35 minutes
// after the rest. With probability 0.35 one of an incident's warnings
// flaps (fires and resolves every few minutes); with probability 0.25 a
// cascade's, self or external incident's root alerts (and some of their
// callers') resolve and fire again 6 to 20 minutes later.
//
// Noise: about four unrelated alerts an hour (filesystems and volumes
// filling, failed CronJobs, CPU throttling, HPAs at max, latency blips,
// consumer lag, scrape failures, clock drift, dead tuples, Ceph
// warnings, slow SLO burns, expiring certificates), some flapping, and
// 20 standing alerts already firing when the storm starts (up to a week
// old; Alertmanager repeats them, some are cleared during the storm).
// Harmless deploys, config and flag changes come about every 12 minutes.
//
// Delivery is Alertmanager's (deliver.go): one route grouping by
// namespace and alertname, group_wait 30s, group_interval 5m,
// repeat_interval 4h, send_resolved, kube-prometheus' inhibition rule
// (critical mutes warning of the same alertname and namespace); each
// notification holds every alert of its group. What was sent before the
// storm started is not in the lines.
//
// # Ground truth
//
// The truth maps every alert fingerprint in the lines (Alertmanager's,
// over the labels) to one incident:
//
//   - An incident is one fault and everything it caused: the alerts of
//     the faulty component, of every component hit through depends_on
//     (callers, transitively, and a datastore saturated by a faulty
//     caller), of the infrastructure that carried it (the dead node, the
//     pods on it), and the business KPIs it moved, whatever labels they
//     carry and however late they fire (a 15-minute rule, a slow burn, a
//     backlog draining).
//   - An alert that resolves and fires again, or flaps, stays in its
//     incident: a fingerprint belongs to exactly one incident. A label
//     set is never reused by another incident in the same storm (an
//     incident that would raise it raises something else or nothing).
//   - Two incidents at the same moment are two incidents: different
//     faults on disjoint components.
//   - A deploy-induced incident is the alerts after the bad deploy; the
//     change lines (deploy, rollback, revert) are not scored.
//   - Every noise alert is an incident of its own, even when it fires
//     beside an incident: it is never on a component an incident holds
//     at the time (nor, when it could be a symptom, on a caller of one),
//     so it cannot be read as part of it.
//   - An alert only ever sent resolved (it fired and resolved between two
//     flushes of a busy group, or was muted by inhibition all the while
//     it fired) still belongs to its incident: it fired during it, and
//     the payload says when.
//   - Harmless changes never touch a component within half an hour
//     before an incident hits it.
//
// Storm.Incidents counts the distinct incidents of the truth, noise
// alerts included (eval.Scores.TrueIncidents).
//
// # Calibration
//
// The issue measured "label grouping by service scores pairwise F1
// 0.09–0.20 on storms of this kind, a 5-minute time window 0.63–0.73".
// Over seeds 2001–2100 (TestCalibrationTable; no other seed was looked
// at), each alert first seen at its earliest startsAt (event time, as
// the windows run on):
//
//	baseline                               P      R      F1
//	by service label (absent: one group)   0.124  0.285  0.167
//	5-minute chain (eval.ChainByTime)      0.598  0.806  0.676
//	5-minute windows (eval.WindowsByTime)  0.680  0.602  0.632
//
// The 5-minute figure the range is matched to is the chain (the
// project's eval.BaselineTimeWindow). Per storm, on average: 10.0
// incidents and 43.7 noise alerts, 104.6 alerts, 184.0 webhook
// notifications, 220.1 lines with 36.1 changes; 8.7 alerts fired again
// (refired or flapping) and 7.4 were only ever sent resolved (3 to 4 of
// them incident members muted by inhibition, the rest standing noise
// cleared during the storm). A correlator that leaves alerts only ever
// sent resolved unassigned scores at most F1 0.914 on these storms, 0.995
// with Config.Inhibit off (which moves the baselines by under 0.01).
package wordgen
