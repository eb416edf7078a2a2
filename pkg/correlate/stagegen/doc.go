// Package stagegen generates storms as the whole pipeline sees them, with
// ground truth, to score an alert correlator: not Alertmanager alerts
// alone, but also the anomaly detector's episodes, the log miner's error
// bursts and CD's changes. Many real incidents show first, or only, as
// drifting latency, error-rate and saturation series and as bursts of an
// error log template; alert rules cover some services and some symptoms,
// and a deploy or a config change comes before some failures.
//
// It was written blind to the correlator: without reading the correlator
// (pkg/correlate's own files, QUALITY.md, services/correlator), the other
// storm generators or the replay's tests. Only the envelope (pkg/event,
// docs/events.md), the scorer (pkg/correlate/eval) and the replay's line
// decoder were read, so the storms are not shaped by how the correlator was
// tuned.
//
// # The estate
//
// 56 services of an online shop (estate.go): an ingress, gateways and
// BFFs; request/response services (auth, checkout, cart, pricing, orders,
// payments, catalog, search, ...); queue workers (fulfillment,
// notifications, search-indexer, etl-pipeline, ...); eight PostgreSQL
// clusters, four Redis, a memcached, Kafka, Elasticsearch, an object
// store, a warehouse; and proxies to third parties (payment, shipping,
// SMS, mail, exchange rates). Each has a team (and a namespace of its
// team), a tier and its real dependencies. The catalog written for a storm
// is imperfect as real ones are: some services never made it in
// (CatalogMissingServices), some real dependencies were never declared
// (CatalogMissingEdges), some declared ones are stale (CatalogStaleEdges).
//
// # A day of operations
//
// Config.Incidents failures are spread over the day (one per slot; a share
// Concurrent start within minutes of another, unrelated one). Each is one
// of six archetypes (Config.Mix):
//
//   - a backing service fails (a database's connections or disk, a cache's
//     memory, Kafka's replication, Elasticsearch's heap...), sometimes after
//     a config or infrastructure change on it, and its callers suffer;
//   - a deploy breaks a service minutes later (errors, often crash loops);
//     a canary shows a small bump alone on the service first, the promotion
//     10-20 minutes later breaks it for real; most end with a rollback;
//   - a config or feature-flag change does the same;
//   - a third-party provider degrades behind its proxy;
//   - one service exhausts something (memory leak, disk, CPU, connection
//     pool): long slow episodes, mostly on itself;
//   - a Kubernetes node goes NotReady and pods of unrelated services on it
//     hiccup together (a grouping the catalog cannot explain).
//
// Failures spread up the real dependency graph: each caller of a hurt
// service is hurt with probability Propagate (×0.7 per further hop, up to
// MaxHops), a little later, showing latency and errors and logging a
// template that names the dependency; edge services are hurt with at least
// EdgePropagate, since users' failures reach the edge. Some failures come
// in two or three waves with quiet spells between (Recurring).
//
// Every symptom on a service becomes signals with a chance each: an
// anomaly episode on the series the detector watches for it
// (DetectorCoverage), an alert if a rule covers it (AlertCoverage, less on
// lower tiers), an error burst for error symptoms (LogCoverage). Alert
// labels follow the usual exporters: service alerts carry service,
// namespace, team, job; kube-state-metrics alerts (KubePodCrashLooping,
// KubeNodeNotReady) name a pod or a node and job="kube-state-metrics",
// not the service; CPUThrottlingHigh has no service and no job; Kafka
// consumer-lag alerts name the consumer group and job="kafka-exporter".
//
// Noise belongs to nothing: short alerts on random services, a couple of
// alerts that flap all day, detector blips, a few chatty series that blip
// many times a day (a batch job's latency), error bursts of everyday
// templates, and harmless deploys, config and flag changes, mostly in
// working hours.
//
// # The stages
//
// Prometheus evaluates every 30 s (a per-rule offset): an alert fires at
// the first evaluation at least its rule's `for` after its condition began
// (conditions shorter than `for` never fire), startsAt is that
// evaluation, and it resolves at the first evaluation after the condition
// ended. Alertmanager is simulated honestly: routes per team label
// (receiver team-<team>, else platform-oncall), group_by
// (alertname, namespace by default), group_wait 30 s for a new group, a
// flush every group_interval (5 m) that notifies when an alert not yet
// notified fires, when alerts resolved (send_resolved) or when
// repeat_interval (4 h) passed (its DedupStage rules, including "a group
// whose alerts all fired and resolved between flushes is not notified");
// resolved alerts leave the group after a flush and an empty group is
// deleted; the notification log outlives groups. So alerts arrive late,
// batched with unrelated alerts of the same name and namespace, repeated,
// and resolved. Firing alerts have endsAt 0001-01-01T00:00:00Z.
//
// The detector opens an episode 30 s-2 m after a series leaves its band,
// updates it at most every DetectorUpdate (plus up to a minute) while it
// stays out and closes it 1-3 m after it is back; each event is an anomaly
// envelope (source detector, the series' labels, value, expected band,
// score, episode, episode_id, start, end, peak). The log miner reports an
// error burst about a minute after it starts and every BurstEvery while it
// lasts (source logminer, labels template_id, level, namespace; no
// episode). Every envelope validates with pkg/event; ids are
// event.DerivedID over the seed and the series, so storms are deterministic.
//
// # Ground truth
//
// Items are what a correlator groups: alert fingerprints (the
// Alertmanager "fingerprint" of each alert, however many notifications
// carry it) and anomaly event ids (each event of an episode is an item).
// An item's incident is the failure that caused it; only items that reach
// the lines are in Truth. Each noise unit is its own incident: a noise
// alert, an error burst, or a noise episode (all events of one noise
// episode, which share an episode_id, are one incident). An alert's
// fingerprint belongs to one incident only: an alert with the same labels
// as one already caused by another incident is left out of the storm,
// since no truth could say which incident it belongs to.
//
// # Calibration
//
// DefaultConfig is tuned so that the naive baselines score as the
// correlator's issue says of real storms (by service 0.09-0.20, a 5-minute
// time window 0.63-0.73), mean pairwise F1 (eval.Pairwise):
//
//	seeds   BaselineByService  BaselineTimeWindow(5m)  incidents  items
//	 1-20        0.168               0.677              188.6    1088.6
//	21-40        0.164               0.668              188.2    1073.3
//
// About 20 of the incidents are failures; the rest are noise units. The
// baselines read only the lines: an item's service is its alert's first
// label of service, job, app ("unknown" without), or the envelope's
// service; its time is that of the first line carrying it.
package stagegen
