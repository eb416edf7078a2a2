package fleetgen

import (
	"fmt"
	"hash/fnv"
	"net/url"
	"strings"
	"time"

	"github.com/aiops-dev/aiops/pkg/event"
)

// convention is the label convention of a family of alert rules: which
// labels the rule's series carry, and so which label names the service.
type convention int

const (
	convApp      convention = iota // team-written rules: service=<svc>, namespace, team
	convSloth                      // Sloth SLO burn-rate rules: sloth_service=<svc>
	convKSM                        // kube-state-metrics rules: deployment/container/pod/... of the workload
	convKubelet                    // kubelet and cAdvisor rules: container, pod, persistentvolumeclaim, node
	convNode                       // node-exporter and cluster rules, labelled app=k8s-platform
	convExporter                   // datastore exporters: app=<svc>, pod=<statefulset>-<n>
	convLag                        // kafka-exporter consumer lag: consumergroup=<svc>
	convMesh                       // Istio telemetry: destination_workload=<svc>
)

// rule is one Prometheus alerting rule.
type rule struct {
	name     string
	severity string
	conv     convention
	forDur   time.Duration
	expr     string
	summary  string
	descr    string  // description; {{ $value }} is the value drawn from lo..hi
	lo, hi   float64 // range of the value in the description
	unit     string
}

const (
	sec = time.Second
	min = time.Minute
	hr  = time.Hour
)

// rules is the rule vocabulary, keyed by name (and severity where a rule
// has two thresholds). The for: durations follow kube-prometheus-stack and
// the usual exporter mixins; the team rules follow what such teams write.
var rules = map[string]rule{
	// Team rules (one PrometheusRule per service's Helm chart).
	"HighErrorRate":          {"HighErrorRate", "critical", convApp, 3 * min, `sum by (service, handler) (rate(http_requests_total{code=~"5.."}[5m])) / sum by (service, handler) (rate(http_requests_total[5m])) > 0.05`, "{{ $labels.service }}: {{ $labels.handler }} is failing", "{{ $value }} of requests to {{ $labels.handler }} on {{ $labels.service }} in {{ $labels.cluster }} return 5xx.", 5, 60, "%"},
	"HighLatencyP99":         {"HighLatencyP99", "warning", convApp, 5 * min, `histogram_quantile(0.99, sum by (service, handler, le) (rate(http_request_duration_seconds_bucket[5m]))) > 1`, "{{ $labels.service }}: {{ $labels.handler }} is slow", "p99 latency of {{ $labels.handler }} on {{ $labels.service }} is {{ $value }}.", 1.2, 9, "s"},
	"UpstreamErrors":         {"UpstreamErrors", "warning", convApp, 3 * min, `sum by (service, upstream) (rate(upstream_requests_total{outcome="error"}[5m])) > 1`, "{{ $labels.service }} cannot reach {{ $labels.upstream }}", "{{ $labels.service }} sees {{ $value }} failed calls per second to {{ $labels.upstream }}.", 2, 80, "/s"},
	"DBConnectionErrors":     {"DBConnectionErrors", "critical", convApp, 2 * min, `sum by (service, db) (rate(db_connection_errors_total[2m])) > 0.5`, "{{ $labels.service }} fails to connect to {{ $labels.db }}", "{{ $value }} connection errors per second from {{ $labels.service }} to {{ $labels.db }}.", 1, 40, "/s"},
	"DBPoolSaturation":       {"DBPoolSaturation", "warning", convApp, 10 * min, `max by (service, pool) (db_pool_in_use / db_pool_max) > 0.8`, "{{ $labels.service }} connection pool {{ $labels.pool }} nearly exhausted", "{{ $value }} of the {{ $labels.pool }} pool is in use.", 80, 95, "%"},
	"DBPoolSaturation:crit":  {"DBPoolSaturation", "critical", convApp, 5 * min, `max by (service, pool) (db_pool_in_use / db_pool_max) > 0.97`, "{{ $labels.service }} connection pool {{ $labels.pool }} exhausted", "{{ $value }} of the {{ $labels.pool }} pool is in use; requests wait for connections.", 97, 100, "%"},
	"ThirdPartyAPIErrors":    {"ThirdPartyAPIErrors", "critical", convApp, 5 * min, `sum by (service, provider, status_code) (rate(external_api_requests_total{status_code!~"2.."}[5m])) > 0.5`, "{{ $labels.service }}: {{ $labels.provider }} API returns {{ $labels.status_code }}", "{{ $value }} calls per second to {{ $labels.provider }} fail with {{ $labels.status_code }}.", 0.6, 30, "/s"},
	"WorkerProcessingErrors": {"WorkerProcessingErrors", "warning", convApp, 5 * min, `sum by (service, queue) (rate(worker_messages_failed_total[5m])) > 0.2`, "{{ $labels.service }} fails to process {{ $labels.queue }}", "{{ $value }} messages per second from {{ $labels.queue }} fail and are retried.", 0.3, 25, "/s"},
	"DataFreshnessStale":     {"DataFreshnessStale", "warning", convApp, 10 * min, `time() - max by (service, dataset) (dataset_last_update_timestamp_seconds) > 900`, "{{ $labels.service }}: {{ $labels.dataset }} is stale", "{{ $labels.dataset }} served by {{ $labels.service }} was last updated {{ $value }} ago.", 16, 90, "m"},
	"EndpointDown":           {"EndpointDown", "critical", convApp, 2 * min, `probe_success{job="blackbox"} == 0`, "{{ $labels.instance }} is down", "The blackbox probe of {{ $labels.instance }} has failed for 2 minutes.", 0, 0, ""},
	"TargetDown":             {"TargetDown", "warning", convApp, 10 * min, `100 * (count by (job, namespace, service) (up == 0) / count by (job, namespace, service) (up)) > 10`, "One or more targets are unreachable.", "{{ $value }} of the {{ $labels.job }}/{{ $labels.service }} targets in {{ $labels.namespace }} namespace are down.", 20, 100, "%"},
	// Sloth-generated SLO rules.
	"AvailabilityBudgetBurn:page":   {"AvailabilityBudgetBurn", "critical", convSloth, 0, `(slo:sli_error:ratio_rate5m > (14.4 * 0.001)) and (slo:sli_error:ratio_rate1h > (14.4 * 0.001))`, "{{ $labels.sloth_service }} is burning its availability error budget fast", "{{ $labels.sloth_slo }} error budget burn rate is {{ $value }}x.", 14.5, 80, "x"},
	"AvailabilityBudgetBurn:ticket": {"AvailabilityBudgetBurn", "warning", convSloth, 0, `(slo:sli_error:ratio_rate2h > (3 * 0.001)) and (slo:sli_error:ratio_rate1d > (3 * 0.001))`, "{{ $labels.sloth_service }} is burning its availability error budget", "{{ $labels.sloth_slo }} error budget burn rate is {{ $value }}x.", 3, 14, "x"},
	"LatencyBudgetBurn:page":        {"LatencyBudgetBurn", "critical", convSloth, 0, `(slo:sli_error:ratio_rate5m > (14.4 * 0.01)) and (slo:sli_error:ratio_rate1h > (14.4 * 0.01))`, "{{ $labels.sloth_service }} is burning its latency error budget fast", "{{ $labels.sloth_slo }} error budget burn rate is {{ $value }}x.", 14.5, 40, "x"},
	// kube-state-metrics rules (kube-prometheus-stack kubernetes-apps).
	"KubePodCrashLooping":                {"KubePodCrashLooping", "warning", convKSM, 15 * min, `max_over_time(kube_pod_container_status_waiting_reason{reason="CrashLoopBackOff", job="kube-state-metrics"}[5m]) >= 1`, "Pod is crash looping.", "Pod {{ $labels.namespace }}/{{ $labels.pod }} ({{ $labels.container }}) is in waiting state (reason: \"CrashLoopBackOff\").", 0, 0, ""},
	"KubePodNotReady":                    {"KubePodNotReady", "warning", convKSM, 15 * min, `sum by (namespace, pod, cluster) (max by (namespace, pod, cluster) (kube_pod_status_phase{job="kube-state-metrics", phase=~"Pending|Unknown|Failed"})) > 0`, "Pod has been in a non-ready state for more than 15 minutes.", "Pod {{ $labels.namespace }}/{{ $labels.pod }} has been in a non-ready state for longer than 15 minutes.", 0, 0, ""},
	"KubeDeploymentReplicasMismatch":     {"KubeDeploymentReplicasMismatch", "warning", convKSM, 15 * min, `kube_deployment_spec_replicas{job="kube-state-metrics"} > kube_deployment_status_replicas_available{job="kube-state-metrics"}`, "Deployment has not matched the expected number of replicas.", "Deployment {{ $labels.namespace }}/{{ $labels.deployment }} has not matched the expected number of replicas for longer than 15 minutes.", 0, 0, ""},
	"KubeDeploymentRolloutStuck":         {"KubeDeploymentRolloutStuck", "warning", convKSM, 15 * min, `kube_deployment_status_condition{condition="Progressing", status="false", job="kube-state-metrics"} != 0`, "Deployment rollout is not progressing.", "Rollout of deployment {{ $labels.namespace }}/{{ $labels.deployment }} is not progressing for longer than 15 minutes.", 0, 0, ""},
	"KubeHpaMaxedOut":                    {"KubeHpaMaxedOut", "warning", convKSM, 15 * min, `kube_horizontalpodautoscaler_status_current_replicas{job="kube-state-metrics"} == kube_horizontalpodautoscaler_spec_max_replicas{job="kube-state-metrics"}`, "HPA is running at max replicas", "HPA {{ $labels.namespace }}/{{ $labels.horizontalpodautoscaler }} has been running at max replicas for longer than 15 minutes.", 0, 0, ""},
	"KubeContainerWaiting":               {"KubeContainerWaiting", "warning", convKSM, 1 * hr, `sum by (namespace, pod, container, cluster) (kube_pod_container_status_waiting_reason{job="kube-state-metrics"}) > 0`, "Pod container waiting longer than 1 hour", "pod/{{ $labels.pod }} in namespace {{ $labels.namespace }} on container {{ $labels.container }} has been in waiting state for longer than 1 hour.", 0, 0, ""},
	"KubeJobFailed":                      {"KubeJobFailed", "warning", convKSM, 15 * min, `kube_job_failed{job="kube-state-metrics"} > 0`, "Job failed to complete.", "Job {{ $labels.namespace }}/{{ $labels.job_name }} failed to complete. Removing failed job after investigation should clear this alert.", 0, 0, ""},
	"KubeStatefulSetReplicasMismatch":    {"KubeStatefulSetReplicasMismatch", "warning", convKSM, 15 * min, `kube_statefulset_status_replicas_ready{job="kube-state-metrics"} != kube_statefulset_status_replicas{job="kube-state-metrics"}`, "StatefulSet has not matched the expected number of replicas.", "StatefulSet {{ $labels.namespace }}/{{ $labels.statefulset }} has not matched the expected number of replicas for longer than 15 minutes.", 0, 0, ""},
	"ContainerOOMKilled":                 {"ContainerOOMKilled", "warning", convKSM, 0, `increase(kube_pod_container_status_restarts_total[10m]) > 0 and on (namespace, pod, container) kube_pod_container_status_last_terminated_reason{reason="OOMKilled"} == 1`, "Container was OOM killed", "Container {{ $labels.container }} in pod {{ $labels.namespace }}/{{ $labels.pod }} was OOM killed.", 0, 0, ""},
	"KubeNodeNotReady":                   {"KubeNodeNotReady", "warning", convNode, 15 * min, `kube_node_status_condition{job="kube-state-metrics",condition="Ready",status="true"} == 0`, "Node is not ready.", "{{ $labels.node }} has been unready for more than 15 minutes.", 0, 0, ""},
	"CPUThrottlingHigh":                  {"CPUThrottlingHigh", "info", convKubelet, 15 * min, `sum(increase(container_cpu_cfs_throttled_periods_total{container!=""}[5m])) by (cluster, container, pod, namespace) / sum(increase(container_cpu_cfs_periods_total[5m])) by (cluster, container, pod, namespace) > (25 / 100)`, "Processes experience elevated CPU throttling.", "{{ $value }} throttling of CPU in namespace {{ $labels.namespace }} for container {{ $labels.container }} in pod {{ $labels.pod }}.", 26, 90, "%"},
	"ContainerMemoryNearLimit":           {"ContainerMemoryNearLimit", "warning", convKubelet, 15 * min, `container_memory_working_set_bytes{container!=""} / container_spec_memory_limit_bytes > 0.9`, "Container memory close to its limit", "Container {{ $labels.container }} in pod {{ $labels.pod }} uses {{ $value }} of its memory limit.", 90, 99, "%"},
	"KubePersistentVolumeFillingUp":      {"KubePersistentVolumeFillingUp", "warning", convKubelet, 1 * hr, `kubelet_volume_stats_available_bytes / kubelet_volume_stats_capacity_bytes < 0.15 and predict_linear(kubelet_volume_stats_available_bytes[6h], 4 * 24 * 3600) < 0`, "PersistentVolume is filling up.", "Based on recent sampling, the PersistentVolume claimed by {{ $labels.persistentvolumeclaim }} in Namespace {{ $labels.namespace }} is expected to fill up within four days. Currently {{ $value }} is available.", 5, 15, "%"},
	"KubePersistentVolumeFillingUp:crit": {"KubePersistentVolumeFillingUp", "critical", convKubelet, 1 * min, `kubelet_volume_stats_available_bytes / kubelet_volume_stats_capacity_bytes < 0.03`, "PersistentVolume is filling up.", "The PersistentVolume claimed by {{ $labels.persistentvolumeclaim }} in Namespace {{ $labels.namespace }} is only {{ $value }} free.", 0.5, 3, "%"},
	// node-exporter and cluster rules.
	"NodeSystemSaturation":              {"NodeSystemSaturation", "warning", convNode, 15 * min, `node_load1{job="node-exporter"} / count without (cpu, mode) (node_cpu_seconds_total{job="node-exporter", mode="idle"}) > 2`, "System saturated, load per core is very high.", "System load per core at {{ $labels.instance }} has been above 2 for the last 15 minutes, is currently at {{ $value }}.", 2.1, 6, ""},
	"NodeMemoryHighUtilization":         {"NodeMemoryHighUtilization", "warning", convNode, 15 * min, `100 - (node_memory_MemAvailable_bytes{job="node-exporter"} / node_memory_MemTotal_bytes{job="node-exporter"} * 100) > 90`, "Host is running out of memory.", "Memory is filling up at {{ $labels.instance }}, has been above 90% for the last 15 minutes, is currently at {{ $value }}.", 90, 99, "%"},
	"NodeNetworkReceiveErrs":            {"NodeNetworkReceiveErrs", "warning", convNode, 1 * hr, `rate(node_network_receive_errs_total{job="node-exporter"}[2m]) / rate(node_network_receive_packets_total{job="node-exporter"}[2m]) > 0.01`, "Network interface is reporting many receive errors.", "{{ $labels.instance }} interface {{ $labels.device }} has encountered {{ $value }} receive errors in the last two minutes.", 100, 5000, ""},
	"NodeFilesystemSpaceFillingUp":      {"NodeFilesystemSpaceFillingUp", "warning", convNode, 1 * hr, `node_filesystem_avail_bytes{job="node-exporter",fstype!=""} / node_filesystem_size_bytes{job="node-exporter",fstype!=""} * 100 < 15 and predict_linear(node_filesystem_avail_bytes{job="node-exporter",fstype!=""}[6h], 24*60*60) < 0`, "Filesystem is predicted to run out of space within the next 24 hours.", "Filesystem on {{ $labels.device }}, mounted on {{ $labels.mountpoint }}, at {{ $labels.instance }} has only {{ $value }} available space left and is filling up.", 5, 15, "%"},
	"NodeFilesystemSpaceFillingUp:crit": {"NodeFilesystemSpaceFillingUp", "critical", convNode, 1 * hr, `node_filesystem_avail_bytes{job="node-exporter",fstype!=""} / node_filesystem_size_bytes{job="node-exporter",fstype!=""} * 100 < 10 and predict_linear(node_filesystem_avail_bytes{job="node-exporter",fstype!=""}[6h], 4*60*60) < 0`, "Filesystem is predicted to run out of space within the next 4 hours.", "Filesystem on {{ $labels.device }}, mounted on {{ $labels.mountpoint }}, at {{ $labels.instance }} has only {{ $value }} available space left and is filling up fast.", 1, 10, "%"},
	"NodeClockNotSynchronising":         {"NodeClockNotSynchronising", "warning", convNode, 10 * min, `min_over_time(node_timex_sync_status{job="node-exporter"}[5m]) == 0 and node_timex_maxerror_seconds{job="node-exporter"} >= 16`, "Clock not synchronising.", "Clock at {{ $labels.instance }} is not synchronising. Ensure NTP is configured on this host.", 0, 0, ""},
	"CoreDNSErrorsHigh":                 {"CoreDNSErrorsHigh", "critical", convNode, 10 * min, `sum without (pod, instance, server, zone, view, rcode, plugin) (rate(coredns_dns_responses_total{rcode="SERVFAIL"}[5m])) / sum without (pod, instance, server, zone, view, rcode, plugin) (rate(coredns_dns_responses_total[5m])) > 0.03`, "CoreDNS is returning SERVFAIL.", "CoreDNS is returning SERVFAIL for {{ $value }} of requests.", 3, 30, "%"},
	// Datastore exporters.
	"PostgresDown":                   {"PostgresDown", "critical", convExporter, 1 * min, `pg_up == 0`, "PostgreSQL is down", "PostgreSQL instance {{ $labels.pod }} is down.", 0, 0, ""},
	"PostgresFailover":               {"PostgresFailover", "warning", convExporter, 0, `changes(patroni_master[5m]) > 0`, "Patroni changed the primary", "{{ $labels.pod }} became the primary of {{ $labels.app }}.", 0, 0, ""},
	"PostgresReplicationLag":         {"PostgresReplicationLag", "warning", convExporter, 5 * min, `pg_replication_lag_seconds > 30`, "PostgreSQL replica is lagging", "Replica {{ $labels.pod }} is {{ $value }} behind the primary.", 31, 300, "s"},
	"PostgresReplicationLag:crit":    {"PostgresReplicationLag", "critical", convExporter, 5 * min, `pg_replication_lag_seconds > 300`, "PostgreSQL replica is far behind", "Replica {{ $labels.pod }} is {{ $value }} behind the primary.", 301, 3600, "s"},
	"PostgresTooManyConnections":     {"PostgresTooManyConnections", "warning", convExporter, 5 * min, `sum by (app, pod) (pg_stat_activity_count) > 0.8 * pg_settings_max_connections`, "PostgreSQL has too many connections", "{{ $labels.pod }} uses {{ $value }} of max_connections.", 80, 99, "%"},
	"PostgresSlowQueries":            {"PostgresSlowQueries", "warning", convExporter, 10 * min, `avg by (app, pod) (rate(pg_stat_statements_mean_exec_time_seconds[5m])) > 0.5`, "PostgreSQL queries are slow", "Mean query time on {{ $labels.pod }} is {{ $value }}.", 0.6, 4, "s"},
	"PostgresAuthFailures":           {"PostgresAuthFailures", "warning", convExporter, 2 * min, `sum by (app, pod) (rate(pg_log_auth_failed_total[5m])) > 0.1`, "PostgreSQL rejects logins", "{{ $value }} failed logins per second on {{ $labels.pod }}.", 0.2, 20, "/s"},
	"RedisDown":                      {"RedisDown", "critical", convExporter, 1 * min, `redis_up == 0`, "Redis down", "Redis instance {{ $labels.pod }} is down.", 0, 0, ""},
	"RedisMemoryHigh":                {"RedisMemoryHigh", "warning", convExporter, 10 * min, `redis_memory_used_bytes / redis_memory_max_bytes > 0.9`, "Redis out of memory", "Redis {{ $labels.pod }} uses {{ $value }} of its maxmemory.", 90, 99, "%"},
	"RedisRejectedConnections":       {"RedisRejectedConnections", "critical", convExporter, 2 * min, `increase(redis_rejected_connections_total[1m]) > 0`, "Redis rejected connections", "Some connections to {{ $labels.pod }} have been rejected.", 0, 0, ""},
	"KafkaUnderReplicatedPartitions": {"KafkaUnderReplicatedPartitions", "warning", convExporter, 5 * min, `kafka_server_replicamanager_underreplicatedpartitions > 0`, "Kafka has under-replicated partitions", "Broker {{ $labels.pod }} has {{ $value }} under-replicated partitions.", 1, 400, ""},
	"KafkaOfflinePartitions":         {"KafkaOfflinePartitions", "critical", convExporter, 1 * min, `kafka_controller_kafkacontroller_offlinepartitionscount > 0`, "Kafka has offline partitions", "{{ $value }} partitions have no active leader.", 1, 60, ""},
	"RabbitmqQueueBacklog":           {"RabbitmqQueueBacklog", "warning", convExporter, 10 * min, `rabbitmq_queue_messages_ready > 5000`, "RabbitMQ queue {{ $labels.queue }} is backing up", "{{ $value }} messages are waiting in {{ $labels.queue }}.", 5000, 250000, ""},
	"OpenSearchClusterYellow":        {"OpenSearchClusterYellow", "warning", convExporter, 10 * min, `opensearch_cluster_status{color="yellow"} == 1`, "OpenSearch cluster is yellow", "Some replica shards of {{ $labels.app }} are unassigned.", 0, 0, ""},
	"OpenSearchClusterRed":           {"OpenSearchClusterRed", "critical", convExporter, 5 * min, `opensearch_cluster_status{color="red"} == 1`, "OpenSearch cluster is red", "Some primary shards of {{ $labels.app }} are unassigned.", 0, 0, ""},
	"OpenSearchHeapHigh":             {"OpenSearchHeapHigh", "warning", convExporter, 10 * min, `opensearch_jvm_mem_heap_used_percent > 85`, "OpenSearch heap usage is high", "Node {{ $labels.pod }} uses {{ $value }} of its heap.", 85, 98, "%"},
	"OpenSearchDiskWatermark":        {"OpenSearchDiskWatermark", "warning", convExporter, 30 * min, `opensearch_fs_path_available_bytes / opensearch_fs_path_total_bytes < 0.15`, "OpenSearch disk low watermark reached", "Node {{ $labels.pod }} has {{ $value }} disk left; shards will no longer be allocated to it.", 8, 15, "%"},
	"ClickHouseReplicaDelay":         {"ClickHouseReplicaDelay", "warning", convExporter, 10 * min, `clickhouse_replicas_max_absolute_delay > 300`, "ClickHouse replica is delayed", "Replica {{ $labels.pod }} is {{ $value }} behind.", 301, 3600, "s"},
	"ClickHouseTooManyParts":         {"ClickHouseTooManyParts", "warning", convExporter, 10 * min, `clickhouse_max_part_count_for_partition > 300`, "ClickHouse has too many parts", "A partition on {{ $labels.pod }} has {{ $value }} parts; inserts will be throttled.", 300, 900, ""},
	"VaultSealed":                    {"VaultSealed", "critical", convExporter, 1 * min, `vault_core_unsealed == 0`, "Vault is sealed", "Vault {{ $labels.pod }} is sealed.", 0, 0, ""},
	"IstiodPushErrors":               {"IstiodPushErrors", "warning", convExporter, 10 * min, `sum by (app, pod) (rate(pilot_xds_push_errors[5m])) > 0`, "istiod fails to push configuration", "{{ $labels.pod }} fails {{ $value }} xDS pushes per second.", 0.1, 20, "/s"},
	"CertManagerCertNotReady":        {"CertManagerCertNotReady", "critical", convExporter, 10 * min, `max by (name, exported_namespace, condition) (certmanager_certificate_ready_status{condition!="True"} == 1)`, "The cert {{ $labels.name }} is not ready to serve traffic.", "This certificate has not been ready to serve traffic for at least 10m. If the cert is being renewed or there is another valid cert, the ingress controller may be able to serve that instead.", 0, 0, ""},
	"CertManagerCertExpirySoon":      {"CertManagerCertExpirySoon", "warning", convExporter, 1 * hr, `avg by (exported_namespace, namespace, name) (certmanager_certificate_expiration_timestamp_seconds - time()) < (21 * 24 * 3600)`, "The cert {{ $labels.name }} is {{ $value }} from expiry, it should have renewed over a week ago.", "The domain that this cert covers will be unavailable after expiry.", 2, 20, "d"},
	// kafka-exporter.
	"KafkaConsumerGroupLag":      {"KafkaConsumerGroupLag", "warning", convLag, 10 * min, `sum by (consumergroup, topic) (kafka_consumergroup_lag) > 10000`, "Consumer group {{ $labels.consumergroup }} is lagging on {{ $labels.topic }}", "Consumer group {{ $labels.consumergroup }} is {{ $value }} messages behind on {{ $labels.topic }}.", 10000, 500000, ""},
	"KafkaConsumerGroupLag:crit": {"KafkaConsumerGroupLag", "critical", convLag, 10 * min, `sum by (consumergroup, topic) (kafka_consumergroup_lag) > 200000`, "Consumer group {{ $labels.consumergroup }} is far behind on {{ $labels.topic }}", "Consumer group {{ $labels.consumergroup }} is {{ $value }} messages behind on {{ $labels.topic }}.", 200000, 2000000, ""},
	// Istio telemetry.
	"IstioHighErrorRate": {"IstioHighErrorRate", "critical", convMesh, 5 * min, `sum by (destination_workload, destination_workload_namespace) (rate(istio_requests_total{reporter="destination", response_code=~"5.."}[5m])) / sum by (destination_workload, destination_workload_namespace) (rate(istio_requests_total{reporter="destination"}[5m])) > 0.05`, "{{ $labels.destination_workload }} returns errors through the mesh", "{{ $value }} of requests to {{ $labels.destination_workload }}.{{ $labels.destination_workload_namespace }} fail.", 5, 100, "%"},
	"IstioHighLatency":   {"IstioHighLatency", "warning", convMesh, 5 * min, `histogram_quantile(0.99, sum by (destination_workload, destination_workload_namespace, le) (rate(istio_request_duration_milliseconds_bucket{reporter="destination"}[5m]))) > 2000`, "{{ $labels.destination_workload }} is slow through the mesh", "p99 latency of {{ $labels.destination_workload }} is {{ $value }}.", 2000, 15000, "ms"},
}

// evalInterval is the evaluation interval of a convention's rule groups:
// kube-prometheus-stack evaluates its rules every 30s, the teams' and
// Sloth's rules every minute.
func (c convention) evalInterval() time.Duration {
	if c == convApp || c == convSloth {
		return time.Minute
	}
	return 30 * time.Second
}

// alert is one alert rule instance (one label set) of one incident: its
// labels and when its expression holds.
type alert struct {
	incident string
	service  string
	region   string
	rule     rule
	labels   map[string]string
	annots   map[string]string
	fp       string
	cond     []span // when the rule's expression holds
	// vary redraws the labels that are fresh per incident (a pod, a node,
	// a handler) when the label set is already taken by another incident.
	vary func(a *alert)
	// firing is what Prometheus makes of cond: [startsAt, endsAt) per
	// firing period.
	firing []span
}

type span struct{ from, to time.Time }

// on records that the alert's expression holds from..to. A nil alert (one
// dropped for want of a fresh label set) ignores it.
func (a *alert) on(from, to time.Time) *alert {
	if a != nil && to.After(from) {
		a.cond = append(a.cond, span{from, to})
	}
	return a
}

// newAlert builds an alert of a rule for service s in region, with the
// labels the rule's convention gives its series. Callers add the rule's
// own dimensions (handler, pod, upstream, ...).
func (g *generator) newAlert(key string, s *service, regionName string) *alert {
	r, ok := rules[key]
	if !ok {
		panic("fleetgen: unknown rule " + key)
	}
	cl := cluster(s, regionName)
	l := map[string]string{
		"alertname":  r.name,
		"severity":   r.severity,
		"cluster":    cl,
		"region":     regionName,
		"prometheus": "monitoring/kube-prometheus-stack-prometheus",
	}
	switch r.conv {
	case convApp:
		l["service"], l["namespace"], l["team"] = s.name, s.namespace, s.team
	case convSloth:
		slo := "requests-availability"
		if r.name == "LatencyBudgetBurn" {
			slo = "requests-latency"
		}
		sev := "page"
		if r.severity == "warning" {
			sev = "ticket"
		}
		l["sloth_service"], l["sloth_slo"], l["sloth_id"], l["sloth_severity"] = s.name, slo, s.name+"-"+slo, sev
		l["team"], l["tier"] = s.team, fmt.Sprint(s.tier)
	case convKSM:
		// kube-state-metrics is scraped with honor_labels, so the target's
		// own container and pod label every series that has none.
		l["namespace"], l["job"], l["endpoint"] = s.namespace, "kube-state-metrics", "http"
		l["service"] = "kube-prometheus-stack-kube-state-metrics"
		l["container"], l["pod"] = "kube-state-metrics", "kube-prometheus-stack-kube-state-metrics-"+stableSuffix(cl, 10)+"-"+stableSuffix(cl+"p", 5)
		l["instance"] = stableIP(cl+"ksm", regionName) + ":8080"
	case convKubelet:
		l["namespace"], l["job"], l["endpoint"] = s.namespace, "kubelet", "https-metrics"
		l["service"], l["metrics_path"] = "kube-prometheus-stack-kubelet", "/metrics/cadvisor"
	case convNode:
		l["app"], l["namespace"], l["job"] = "k8s-platform", "monitoring", "node-exporter"
		l["service"], l["container"], l["endpoint"] = "kube-prometheus-stack-prometheus-node-exporter", "node-exporter", "http-metrics"
	case convExporter:
		l["app"], l["namespace"], l["endpoint"] = s.name, s.namespace, "metrics"
		l["job"], l["service"] = s.name+"-metrics", s.name+"-metrics"
	case convLag:
		// The rule sums by consumergroup and topic; the operator enforces
		// the namespace of the PrometheusRule.
		l["consumergroup"], l["topic"], l["namespace"] = s.name, s.topic, "kafka"
	case convMesh:
		l["destination_workload"], l["destination_workload_namespace"] = s.name, s.namespace
	}
	return &alert{service: s.name, region: regionName, rule: r, labels: l}
}

// finish expands the annotations and computes the fingerprint; called
// once the labels are final.
func (g *generator) finish(a *alert) {
	a.fp = event.AlertmanagerFingerprint(a.labels)
	value := ""
	if a.rule.hi > 0 {
		v := a.rule.lo + g.rng.Float64()*(a.rule.hi-a.rule.lo)
		switch {
		case v >= 1000:
			value = fmt.Sprintf("%.0f%s", v, a.rule.unit)
		case v >= 10:
			value = fmt.Sprintf("%.1f%s", v, a.rule.unit)
		default:
			value = fmt.Sprintf("%.3g%s", v, a.rule.unit)
		}
	}
	a.annots = map[string]string{
		"summary":     expand(a.rule.summary, a.labels, value),
		"description": expand(a.rule.descr, a.labels, value),
	}
	switch a.rule.conv {
	case convApp, convSloth, convLag, convMesh:
		s := svc(a.service)
		a.annots["runbook_url"] = fmt.Sprintf("https://runbooks.tessera.example/%s/%s#%s", s.team, s.name, strings.ToLower(a.rule.name))
	case convKSM, convKubelet:
		a.annots["runbook_url"] = "https://runbooks.prometheus-operator.dev/runbooks/kubernetes/" + strings.ToLower(a.rule.name)
	case convNode:
		a.annots["runbook_url"] = "https://runbooks.prometheus-operator.dev/runbooks/node/" + strings.ToLower(a.rule.name)
	default:
		a.annots["runbook_url"] = "https://runbooks.prometheus-operator.dev/runbooks/general/" + strings.ToLower(a.rule.name)
	}
}

// expand fills a Prometheus annotation template the way Prometheus does
// for the two forms the rules use.
func expand(text string, labels map[string]string, value string) string {
	for {
		i := strings.Index(text, "{{ $labels.")
		if i < 0 {
			break
		}
		j := strings.Index(text[i:], " }}")
		name := text[i+len("{{ $labels.") : i+j]
		text = text[:i] + labels[name] + text[i+j+3:]
	}
	return strings.ReplaceAll(text, "{{ $value }}", value)
}

// generatorURL links the alert to its expression on the cluster's
// Prometheus, as Prometheus does.
func generatorURL(a *alert) string {
	return "https://prometheus." + a.labels["cluster"] + ".tessera.example/graph?g0.expr=" + url.QueryEscape(a.rule.expr) + "&g0.tab=1"
}

// stableSuffix and stableIP give per-cluster constants (the
// kube-state-metrics pod, exporter addresses) that do not depend on the
// seed.
func stableSuffix(key string, n int) string {
	h := fnv.New64a()
	h.Write([]byte(key))
	x := h.Sum64()
	var b strings.Builder
	for range n {
		b.WriteByte(podAlphabet[x%uint64(len(podAlphabet))])
		x /= uint64(len(podAlphabet))
		if x == 0 {
			x = 0x9e3779b97f4a7c15
		}
	}
	return b.String()
}

func stableIP(key, regionName string) string {
	h := fnv.New32a()
	h.Write([]byte(key))
	x := h.Sum32()
	return fmt.Sprintf("10.%d.%d.%d", regionNamed(regionName).octet, 64+x%64, 1+(x>>8)%254)
}

// podAlphabet is the alphabet Kubernetes draws generated name suffixes
// from.
const podAlphabet = "bcdfghjklmnpqrstvwxz2456789"
