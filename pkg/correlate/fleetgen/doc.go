// Package fleetgen generates day-long Alertmanager alert storms of a
// multi-region SaaS platform, with ground truth, to score an alert
// correlator on storms it was not tuned on. It was written without
// reading the correlator or the project's other storm generators.
//
// # The estate
//
// "Tessera", a B2B collaboration SaaS (projects, documents, files,
// search, notifications, billing, usage metering, an AI assistant,
// third-party integrations), runs 50 catalog services (estate.go) on
// Kubernetes in eu-west-1 and us-east-1 (an "apps" and a "data" cluster
// each) with a small edge presence in ap-southeast-2 (one cluster). Most
// services run in both main regions; billing runs in the EU only; the
// front door (edge-gateway, web-bff, auth-service, realtime-gateway,
// session-cache, feature-flags) also runs in APAC. Shared infrastructure
// is in the catalog as services of the platform team: Kafka (event-bus),
// RabbitMQ (job-queue), Vault, the Istio mesh with cert-manager
// (service-mesh), the feature-flag service and the clusters themselves
// (k8s-platform). As real catalogs are, it is incomplete: most services
// really use Vault, feature flags or the mesh without declaring them (the
// hidden dependencies), and incidents propagate along real dependencies.
//
// Monitoring is kube-prometheus-stack (one Prometheus per cluster, with
// external labels cluster, region and prometheus), plus exporters for the
// datastores, kafka-exporter, Istio telemetry, Sloth-generated SLO rules
// and each team's own PrometheusRule. Each region has its own
// Alertmanager; every receiver also has a webhook config pointing at the
// AIOps ingest, which is what a storm records.
//
// # The incident mix
//
// A day (DefaultConfig) has a Poisson number of real incidents (mean 34)
// whose kinds are drawn from a mix, and whose start times follow the
// deploy calendar (European and US working hours) for change-driven kinds
// or the traffic curve for the others; with probability 0.08 an incident
// is joined within three minutes by an unrelated one, half of the time in
// the same region. The kinds (incidents.go), by weight:
//
//   - bad-deploy (27%): a deploy (a change line), then crash-looping new
//     pods, an error-rate or a latency regression, callers' upstream
//     errors; rolled back (a rollback line) after 12-55 minutes.
//   - config-push (11%): a feature flag flipped on for everyone, or a mesh
//     resource pushed, breaking 2-10 services at once, usually in every
//     region; reverted.
//   - db-trouble (9%): a PostgreSQL failover (old primary down, new
//     primary, lagging replica, callers' connection errors two hops up),
//     or replica lag climbing for an hour with slow readers.
//   - exhaustion (10%): a datastore volume or a node's disk filling (warning
//     for hours, critical later), a memory leak (pods near their limit one
//     by one, then OOM killed), a connection pool creeping up.
//   - queue-backlog (8%): a consumer falls behind; its lag alerts 5-25
//     minutes later and its readers' data goes stale 15-45 minutes later.
//   - noisy-neighbour (7%): a batch pod hogs a node; unrelated pods on it
//     are throttled, slow or evicted.
//   - node-loss (7%): a node disappears; pods and StatefulSets degrade
//     until rescheduled.
//   - network (7%): a zone's or a whole region's network degrades; many
//     services of that region only slow down or fail, Kafka
//     under-replicates, replicas lag, sometimes CoreDNS and nodes suffer.
//   - expired-credential (5%): a third-party key expires (sometimes at
//     midnight); 401s in every region for up to four hours, backlogs.
//   - cert-or-secret (5%): the mesh CA fails to renew and mTLS breaks
//     across a cluster, Vault rotates database credentials that clients
//     miss, or the public certificate expires.
//
// On top come about 70 stand-alone noise alerts (noise.go: throttled
// containers, failed CronJobs, pods not ready, HPAs at their ceiling, one
// slow endpoint, slow queries, a provider's bad quarter hour, ...) and
// about 5 alerts flapping around their threshold for hours; each is its
// own true incident. About 110 harmless changes (deploys, config pushes,
// flag flips, a few needless rollbacks) are interleaved. A seed's day has
// about 270 distinct alerts, 580 notifications and 107 true incidents.
//
// # How Prometheus and Alertmanager are emulated
//
// An incident says when each alert's expression holds (symptoms.go): a
// detection lag after onset (rate windows take time to cross a
// threshold), a tail after recovery, sometimes a dip that resolves the
// alert and fires it again. Prometheus (prometheus.go) evaluates each rule
// group on a fixed grid (30s for kube-prometheus-stack and exporter rules,
// 1m for team and Sloth rules) and applies for: (15m for kube-state-metrics
// rules, 1h for slow disk predictions, 2-10m for team rules, none for
// Sloth), so short conditions never fire and the fast and slow rules of
// one incident fire minutes apart. Alertmanager (alertmanager.go) routes
// each alert to a leaf of one routing tree (SLO alerts; the platform's
// namespaces; each team's namespace, critical to its pager, warning and
// info to its Slack channel; a catch-all), groups by the route's group_by,
// flushes group_wait (1m; 30s for SLOs and the catch-all) after the group
// appears and every
// group_interval (5m) after that, and sends only what its notification
// log's dedup rule allows: new firing alerts, new resolutions, or a
// repeat after repeat_interval (1h-12h). Resolved alerts leave the group
// after the flush that reports them; empty groups are deleted. Warning
// and info alerts are muted while a more severe alert with the same
// alertname and namespace fires (kube-prometheus-stack's inhibit rules).
// Payloads carry several alerts, sorted by job, instance and labels, with
// groupLabels, commonLabels and commonAnnotations as Alertmanager computes
// them. Truth maps every fingerprint that appears in a notification to
// its incident; an alert that fired and resolved unseen within a group's
// wait is not in the storm.
//
// # Label conventions
//
// Every alert names its catalog service, but by the convention of the
// rule family that raised it (rules.go), and ServiceOf recovers it: the
// first of these labels whose value names a catalog service wins.
//
//   - sloth_service: Sloth SLO burn-rate alerts (with sloth_slo, sloth_id,
//     sloth_severity, team, tier; no namespace).
//   - destination_workload: Istio telemetry alerts (namespace is
//     istio-system, the rule's).
//   - consumergroup: kafka-exporter lag alerts (namespace kafka).
//   - app: datastore exporter alerts (app=<statefulset>, with pod
//     <statefulset>-<n>, job and service <name>-metrics), cert-manager
//     alerts (app of the Certificate), and node-level rules, which the
//     platform labels app=k8s-platform.
//   - deployment, statefulset, horizontalpodautoscaler, job_name (a
//     CronJob's job <service>-<task>-<n>), container, pod (by prefix:
//     <deployment>-<replicaset>-<suffix>), persistentvolumeclaim
//     (data-<statefulset>-<n>): kube-state-metrics and kubelet rules.
//     Their service label is the scrape target's
//     (kube-prometheus-stack-kube-state-metrics), and workload-level rules
//     carry kube-state-metrics' own container and pod, as honor_labels
//     leaves them; rules that aggregate keep only namespace, pod and
//     container.
//   - service: team rules (service, namespace, team and the rule's
//     dimensions: handler, upstream, db, pool, provider, status_code,
//     queue, dataset) and TargetDown (job, namespace, service of the
//     Kubernetes Service). Alerts also name other services in other
//     labels (upstream, db, pool), as real ones do.
//
// A label set belongs to one incident only: pods, nodes and handlers are
// drawn fresh per incident, and a rule without such a label (an SLO, a
// consumer group) that would repeat another incident's label set is not
// raised.
//
// # Calibration
//
// The issue asking for this generator states that on storms of this kind
// grouping by service scores pairwise F1 0.09-0.20 and a 5-minute time
// window 0.63-0.73 (eval.Pairwise against the truth). DefaultConfig was
// calibrated by the incident rate, the coincidence rate, the noise amount
// and the incident mix. Mean pairwise F1:
//
//	seeds  1-20: BaselineByService 0.178, BaselineTimeWindow(5m) 0.683
//	seeds 21-40: BaselineByService 0.178, BaselineTimeWindow(5m) 0.658
//
// TestCalibration holds seeds 1-20 to the ranges.
package fleetgen
