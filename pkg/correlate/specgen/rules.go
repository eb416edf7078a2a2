package specgen

import (
	"fmt"
	"net/url"
	"time"
)

// rule is a Prometheus alerting rule: what fires, how long its condition
// must hold (for), the expression behind generatorURL and a summary.
// Expressions and summaries take the service name as %[1]s.
type rule struct {
	name     string
	severity string
	forDur   time.Duration
	job      string // scrape job; "" means the service's own pods
	port     string
	expr     string
	summary  string
}

const (
	minute = time.Minute
	second = time.Second
)

// Rules for the service where an incident starts, by kind.
var rootRules = map[kind][]rule{
	kindDB: {
		{"PostgresDown", "critical", 1 * minute, "postgres-exporter", "9187", `pg_up{service="%[1]s"} == 0`, "PostgreSQL %[1]s is down"},
		{"PostgresTooManyConnections", "critical", 2 * minute, "postgres-exporter", "9187", `sum by (instance) (pg_stat_activity_count{service="%[1]s"}) > 0.9 * pg_settings_max_connections`, "PostgreSQL %[1]s is running out of connections"},
		{"PostgresReplicationLagHigh", "warning", 3 * minute, "postgres-exporter", "9187", `pg_replication_lag_seconds{service="%[1]s"} > 30`, "PostgreSQL %[1]s replica is lagging"},
		{"PostgresSlowQueries", "warning", 5 * minute, "postgres-exporter", "9187", `rate(pg_stat_statements_total_time_seconds{service="%[1]s"}[5m]) / rate(pg_stat_statements_calls{service="%[1]s"}[5m]) > 0.5`, "PostgreSQL %[1]s queries are slow"},
	},
	kindCache: {
		{"RedisDown", "critical", 1 * minute, "redis-exporter", "9121", `redis_up{service="%[1]s"} == 0`, "Redis %[1]s is down"},
		{"RedisRejectedConnections", "critical", 2 * minute, "redis-exporter", "9121", `increase(redis_rejected_connections_total{service="%[1]s"}[5m]) > 0`, "Redis %[1]s rejects connections"},
		{"RedisMemoryHigh", "warning", 5 * minute, "redis-exporter", "9121", `redis_memory_used_bytes{service="%[1]s"} / redis_memory_max_bytes > 0.9`, "Redis %[1]s is almost out of memory"},
	},
	kindQueue: {
		{"KafkaBrokerDown", "critical", 1 * minute, "kafka-exporter", "9308", `kafka_broker_up{service="%[1]s"} == 0`, "Kafka broker of %[1]s is down"},
		{"KafkaUnderReplicatedPartitions", "critical", 3 * minute, "kafka-exporter", "9308", `sum(kafka_topic_partition_under_replicated_partition{service="%[1]s"}) > 0`, "Kafka %[1]s has under-replicated partitions"},
		{"KafkaConsumerLagHigh", "warning", 5 * minute, "kafka-exporter", "9308", `sum by (consumergroup) (kafka_consumergroup_lag{service="%[1]s"}) > 10000`, "Kafka %[1]s consumers are lagging"},
	},
	kindSearch: {
		{"ElasticsearchClusterRed", "critical", 2 * minute, "elasticsearch-exporter", "9114", `elasticsearch_cluster_health_status{service="%[1]s",color="red"} == 1`, "Elasticsearch %[1]s cluster is red"},
		{"ElasticsearchHeapHigh", "warning", 5 * minute, "elasticsearch-exporter", "9114", `elasticsearch_jvm_memory_used_bytes{service="%[1]s",area="heap"} / elasticsearch_jvm_memory_max_bytes > 0.9`, "Elasticsearch %[1]s heap usage is high"},
	},
	kindStorage: {
		{"ObjectStoreErrorRateHigh", "critical", 2 * minute, "minio", "9000", `sum(rate(minio_s3_requests_errors_total{service="%[1]s"}[5m])) / sum(rate(minio_s3_requests_total{service="%[1]s"}[5m])) > 0.05`, "Object store %[1]s returns errors"},
		{"ObjectStoreLatencyHigh", "warning", 5 * minute, "minio", "9000", `histogram_quantile(0.99, sum by (le) (rate(minio_s3_ttfb_seconds_bucket{service="%[1]s"}[5m]))) > 2`, "Object store %[1]s is slow"},
	},
	kindApp: {
		{"KubePodCrashLooping", "critical", 2 * minute, "kube-state-metrics", "8080", `increase(kube_pod_container_status_restarts_total{service="%[1]s"}[10m]) > 3`, "Pods of %[1]s are crash looping"},
		{"KubeContainerOOMKilled", "warning", 0, "kube-state-metrics", "8080", `kube_pod_container_status_last_terminated_reason{service="%[1]s",reason="OOMKilled"} == 1`, "A container of %[1]s was OOM killed"},
		{"HTTP5xxRateHigh", "critical", 2 * minute, "", "8080", `sum by (pod) (rate(http_requests_total{service="%[1]s",code=~"5.."}[5m])) / sum by (pod) (rate(http_requests_total{service="%[1]s"}[5m])) > 0.05`, "%[1]s is failing requests"},
		{"ThreadPoolExhausted", "warning", 3 * minute, "", "8080", `executor_active_threads{service="%[1]s"} / executor_pool_max_threads >= 1`, "%[1]s worker pool is exhausted"},
	},
}

// Rules for services dragged in by a failure below them (apps and edges).
var symptomRules = []rule{
	{"HTTP5xxRateHigh", "critical", 2 * minute, "", "8080", `sum by (pod) (rate(http_requests_total{service="%[1]s",code=~"5.."}[5m])) / sum by (pod) (rate(http_requests_total{service="%[1]s"}[5m])) > 0.05`, "%[1]s is failing requests"},
	{"LatencyP99High", "warning", 5 * minute, "", "8080", `histogram_quantile(0.99, sum by (pod, le) (rate(http_request_duration_seconds_bucket{service="%[1]s"}[5m]))) > 1`, "%[1]s p99 latency is above 1s"},
	{"UpstreamErrorsHigh", "warning", 3 * minute, "", "8080", `sum by (pod) (rate(http_client_requests_total{service="%[1]s",outcome="error"}[5m])) > 1`, "%[1]s sees errors from its dependencies"},
	{"CircuitBreakerOpen", "warning", 1 * minute, "", "8080", `max by (pod) (resilience4j_circuitbreaker_state{service="%[1]s",state="open"}) == 1`, "A circuit breaker of %[1]s is open"},
}

// Rules for deploy-induced failures on the deployed service.
var deployRules = []rule{
	{"KubePodCrashLooping", "critical", 2 * minute, "kube-state-metrics", "8080", `increase(kube_pod_container_status_restarts_total{service="%[1]s"}[10m]) > 3`, "Pods of %[1]s are crash looping"},
	{"HTTP5xxRateHigh", "critical", 2 * minute, "", "8080", `sum by (pod) (rate(http_requests_total{service="%[1]s",code=~"5.."}[5m])) / sum by (pod) (rate(http_requests_total{service="%[1]s"}[5m])) > 0.05`, "%[1]s is failing requests"},
	{"KubeDeploymentRolloutStuck", "warning", 5 * minute, "kube-state-metrics", "8080", `kube_deployment_status_replicas_updated{service="%[1]s"} < kube_deployment_spec_replicas`, "Rollout of %[1]s is stuck"},
	{"LatencyP99High", "warning", 5 * minute, "", "8080", `histogram_quantile(0.99, sum by (pod, le) (rate(http_request_duration_seconds_bucket{service="%[1]s"}[5m]))) > 1`, "%[1]s p99 latency is above 1s"},
}

// Rules that flap: conditions near their threshold.
var flapRules = map[bool][]rule{
	false: { // apps and edges
		{"LatencyP99High", "warning", 1 * minute, "", "8080", `histogram_quantile(0.99, sum by (pod, le) (rate(http_request_duration_seconds_bucket{service="%[1]s"}[5m]))) > 1`, "%[1]s p99 latency is above 1s"},
		{"KubePodNotReady", "warning", 1 * minute, "kube-state-metrics", "8080", `kube_pod_status_ready{service="%[1]s",condition="false"} == 1`, "A pod of %[1]s is not ready"},
		{"CPUThrottlingHigh", "info", 1 * minute, "kubelet", "10250", `sum by (pod) (rate(container_cpu_cfs_throttled_periods_total{service="%[1]s"}[5m])) / sum by (pod) (rate(container_cpu_cfs_periods_total[5m])) > 0.25`, "%[1]s is CPU throttled"},
	},
	true: { // stores
		{"PostgresReplicationLagHigh", "warning", 1 * minute, "postgres-exporter", "9187", `pg_replication_lag_seconds{service="%[1]s"} > 30`, "Replica of %[1]s is lagging"},
		{"DiskIOSaturated", "warning", 1 * minute, "node-exporter", "9100", `rate(node_disk_io_time_seconds_total{service="%[1]s"}[5m]) > 0.9`, "Disks of %[1]s are saturated"},
	},
}

// Rules of unrelated noise: housekeeping warnings and short blips.
var noiseRules = []rule{
	{"NodeFilesystemSpaceFillingUp", "warning", 15 * minute, "node-exporter", "9100", `predict_linear(node_filesystem_avail_bytes{service="%[1]s"}[6h], 24*3600) < 0`, "Filesystem of %[1]s fills up within 24h"},
	{"CertificateExpiringSoon", "warning", 10 * minute, "blackbox", "9115", `probe_ssl_earliest_cert_expiry{service="%[1]s"} - time() < 14 * 86400`, "TLS certificate of %[1]s expires in less than 14 days"},
	{"KubeJobFailed", "warning", 1 * minute, "kube-state-metrics", "8080", `kube_job_failed{service="%[1]s"} > 0`, "A batch job of %[1]s failed"},
	{"HighMemoryUsage", "warning", 10 * minute, "kubelet", "10250", `container_memory_working_set_bytes{service="%[1]s"} / container_spec_memory_limit_bytes > 0.9`, "%[1]s is close to its memory limit"},
	{"CPUThrottlingHigh", "info", 15 * minute, "kubelet", "10250", `sum by (pod) (rate(container_cpu_cfs_throttled_periods_total{service="%[1]s"}[5m])) / sum by (pod) (rate(container_cpu_cfs_periods_total[5m])) > 0.25`, "%[1]s is CPU throttled"},
	{"GCPauseHigh", "warning", 5 * minute, "", "8080", `rate(jvm_gc_pause_seconds_sum{service="%[1]s"}[5m]) > 0.2`, "%[1]s spends too long in garbage collection"},
	{"LatencyP99High", "warning", 5 * minute, "", "8080", `histogram_quantile(0.99, sum by (pod, le) (rate(http_request_duration_seconds_bucket{service="%[1]s"}[5m]))) > 1`, "%[1]s p99 latency is above 1s"},
	{"HTTP5xxRateHigh", "critical", 2 * minute, "", "8080", `sum by (pod) (rate(http_requests_total{service="%[1]s",code=~"5.."}[5m])) / sum by (pod) (rate(http_requests_total{service="%[1]s"}[5m])) > 0.05`, "%[1]s is failing requests"},
}

const (
	cluster     = "prod-eu-1"
	externalURL = "http://alertmanager.monitoring.svc:9093"
	promURL     = "http://prometheus-k8s-0.monitoring.svc:9090"
)

// generatorURL is the Prometheus graph link of a rule, as Prometheus sets it.
func (ru rule) generatorURL(svc string) string {
	return promURL + "/graph?g0.expr=" + url.QueryEscape(fmt.Sprintf(ru.expr, svc)) + "&g0.tab=1"
}
