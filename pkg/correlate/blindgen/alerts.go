package blindgen

import (
	"strings"
	"time"
)

// def is an alerting rule as a team would have written it.
type def struct {
	name   string
	sev    string
	forDur time.Duration
	job    string // empty: the service's own scrape job
	port   string
	// summary and expr take the service name.
	summary string
	expr    string
}

const (
	critical = "critical"
	warning  = "warning"
	info     = "info"
)

func m(n int) time.Duration { return time.Duration(n) * time.Minute }

var rules = map[string]def{}

func rule(d def) string {
	if _, dup := rules[d.name]; dup {
		panic("duplicate rule " + d.name)
	}
	rules[d.name] = d
	return d.name
}

// The rule set: per-pod application rules, kube-state-metrics rules as
// kube-prometheus ships them (with their long for: durations), exporter
// rules for the data stores, blackbox probes at the edge.
var (
	rHighErrorRate = rule(def{name: "HighErrorRate", sev: critical, forDur: m(2), port: "8080",
		summary: "%s: more than 5% of requests fail", expr: `sum by (pod) (rate(http_server_requests_total{service="%s",code=~"5.."}[5m])) / sum by (pod) (rate(http_server_requests_total{service="%[1]s"}[5m])) > 0.05`})
	rHighLatency = rule(def{name: "HighLatencyP99", sev: warning, forDur: m(3), port: "8080",
		summary: "%s: p99 latency above 1s", expr: `histogram_quantile(0.99, sum by (pod, le) (rate(http_server_request_duration_seconds_bucket{service="%s"}[5m]))) > 1`})
	rUpstreamErrors = rule(def{name: "GatewayUpstreamErrors", sev: critical, forDur: m(1), port: "9901",
		summary: "%s: upstream cluster returns 5xx", expr: `sum by (pod, upstream) (rate(envoy_cluster_upstream_rq_xx{service="%s",envoy_response_code_class="5"}[2m])) > 5`})
	rUpstreamLatency = rule(def{name: "GatewayUpstreamLatencyHigh", sev: warning, forDur: m(3), port: "9901",
		summary: "%s: upstream p99 latency high", expr: `histogram_quantile(0.99, sum by (pod, upstream, le) (rate(envoy_cluster_upstream_rq_time_bucket{service="%s"}[5m]))) > 2000`})
	rProbeFailed = rule(def{name: "BlackboxProbeFailed", sev: critical, forDur: m(1), job: "blackbox", port: "9115",
		summary: "%s: synthetic probe failing", expr: `probe_success{service="%s"} == 0`})
	rTrafficDrop = rule(def{name: "RequestRateDropped", sev: warning, forDur: m(10), port: "8080",
		summary: "%s: request rate 60% below last week", expr: `sum(rate(http_server_requests_total{service="%s"}[10m])) < 0.4 * sum(rate(http_server_requests_total{service="%[1]s"}[10m] offset 1w))`})
	rPoolExhausted = rule(def{name: "DBConnectionPoolExhausted", sev: critical, forDur: m(1), port: "8080",
		summary: "%s: connection pool has no idle connections", expr: `hikaricp_connections_pending{service="%s"} > 10`})
	rCircuitOpen = rule(def{name: "CircuitBreakerOpen", sev: warning, forDur: m(1), port: "8080",
		summary: "%s: circuit breaker open", expr: `resilience4j_circuitbreaker_state{service="%s",state="open"} == 1`})

	rCrashLoop = rule(def{name: "KubePodCrashLooping", sev: warning, forDur: m(15), job: "kube-state-metrics", port: "8080",
		summary: "%s: pod is crash looping", expr: `max_over_time(kube_pod_container_status_waiting_reason{reason="CrashLoopBackOff",namespace=~".+",pod=~"%s-.*"}[5m]) >= 1`})
	rNotReady = rule(def{name: "KubePodNotReady", sev: warning, forDur: m(15), job: "kube-state-metrics", port: "8080",
		summary: "%s: pod not ready for 15 minutes", expr: `sum by (namespace, pod) (kube_pod_status_phase{phase=~"Pending|Unknown|Failed",pod=~"%s-.*"}) > 0`})
	rReplicas = rule(def{name: "KubeDeploymentReplicasMismatch", sev: warning, forDur: m(15), job: "kube-state-metrics", port: "8080",
		summary: "%s: deployment has not matched the expected number of replicas", expr: `kube_deployment_spec_replicas{deployment="%s"} > kube_deployment_status_replicas_available{deployment="%[1]s"}`})
	rRollout = rule(def{name: "KubeDeploymentRolloutStuck", sev: warning, forDur: m(15), job: "kube-state-metrics", port: "8080",
		summary: "%s: rollout is not progressing", expr: `kube_deployment_status_condition{condition="Progressing",status="false",deployment="%s"} != 0`})
	rOOM = rule(def{name: "ContainerOOMKilled", sev: warning, forDur: 0, job: "kube-state-metrics", port: "8080",
		summary: "%s: container was OOM killed", expr: `increase(kube_pod_container_status_restarts_total{pod=~"%s-.*"}[10m]) > 0 and kube_pod_container_status_last_terminated_reason{reason="OOMKilled"} == 1`})
	rThrottling = rule(def{name: "CPUThrottlingHigh", sev: info, forDur: m(15), job: "kubelet", port: "10250",
		summary: "%s: more than 25% of CPU periods throttled", expr: `sum by (pod) (increase(container_cpu_cfs_throttled_periods_total{pod=~"%s-.*"}[5m])) / sum by (pod) (increase(container_cpu_cfs_periods_total{pod=~"%[1]s-.*"}[5m])) > 0.25`})
	rMemNearLimit = rule(def{name: "ContainerMemoryNearLimit", sev: warning, forDur: m(10), job: "kubelet", port: "10250",
		summary: "%s: container memory above 90% of its limit", expr: `container_memory_working_set_bytes{pod=~"%s-.*"} / container_spec_memory_limit_bytes > 0.9`})
	rHPAMaxed = rule(def{name: "KubeHpaMaxedOut", sev: warning, forDur: m(15), job: "kube-state-metrics", port: "8080",
		summary: "%s: HPA running at max replicas", expr: `kube_horizontalpodautoscaler_status_current_replicas{horizontalpodautoscaler="%s"} == kube_horizontalpodautoscaler_spec_max_replicas`})
	rTargetDown = rule(def{name: "TargetDown", sev: warning, forDur: m(10), port: "8080",
		summary: "%s: scrape target down", expr: `up{service="%s"} == 0`})
	rJobFailed = rule(def{name: "KubeJobFailed", sev: warning, forDur: m(15), job: "kube-state-metrics", port: "8080",
		summary: "%s: job failed to complete", expr: `kube_job_failed{job_name=~"%s-.*"} > 0`})

	rJobFailures = rule(def{name: "WorkerJobFailureRate", sev: critical, forDur: m(5), port: "8080",
		summary: "%s: more than 10% of processed messages fail", expr: `sum by (pod) (rate(worker_messages_failed_total{service="%s"}[5m])) / sum by (pod) (rate(worker_messages_total{service="%[1]s"}[5m])) > 0.1`})
	rConsumerLag = rule(def{name: "KafkaConsumerLagHigh", sev: warning, forDur: m(5), job: "kafka-exporter", port: "9308",
		summary: "%s: consumer group lag growing", expr: `sum by (consumergroup) (kafka_consumergroup_lag{consumergroup="%s"}) > 10000`})
	rDLQ = rule(def{name: "DeadLetterQueueGrowing", sev: warning, forDur: m(5), job: "kafka-exporter", port: "9308",
		summary: "%s: messages going to the dead letter topic", expr: `rate(kafka_topic_partition_current_offset{topic="%s.dlq"}[5m]) > 0`})

	rPgDown = rule(def{name: "PostgresqlDown", sev: critical, forDur: m(1), job: "postgres-exporter", port: "9187",
		summary: "%s: PostgreSQL instance is down", expr: `pg_up{service="%s"} == 0`})
	rPgConns = rule(def{name: "PostgresqlTooManyConnections", sev: warning, forDur: m(2), job: "postgres-exporter", port: "9187",
		summary: "%s: more than 80% of max_connections in use", expr: `sum by (instance) (pg_stat_activity_count{service="%s"}) > 0.8 * pg_settings_max_connections`})
	rPgSlow = rule(def{name: "PostgresqlSlowQueries", sev: warning, forDur: m(5), job: "postgres-exporter", port: "9187",
		summary: "%s: mean query time above 500ms", expr: `avg by (instance) (rate(pg_stat_statements_mean_exec_time_seconds{service="%s"}[5m])) > 0.5`})
	rPgLocks = rule(def{name: "PostgresqlLockWaitsHigh", sev: warning, forDur: m(3), job: "postgres-exporter", port: "9187",
		summary: "%s: many sessions waiting on locks", expr: `sum by (instance) (pg_locks_count{service="%s",mode=~".*Exclusive.*"}) > 50`})
	rPgLag = rule(def{name: "PostgresqlReplicationLag", sev: critical, forDur: m(5), job: "postgres-exporter", port: "9187",
		summary: "%s: replica lags more than 30s", expr: `pg_replication_lag_seconds{service="%s"} > 30`})
	rPgDisk = rule(def{name: "PostgresqlDiskSpaceLow", sev: warning, forDur: m(15), job: "node-exporter", port: "9100",
		summary: "%s: data volume more than 85% full", expr: `kubelet_volume_stats_used_bytes{persistentvolumeclaim=~"data-%s-.*"} / kubelet_volume_stats_capacity_bytes > 0.85`})
	rPgDiskCrit = rule(def{name: "PostgresqlDiskSpaceCritical", sev: critical, forDur: m(5), job: "node-exporter", port: "9100",
		summary: "%s: data volume more than 95% full", expr: `kubelet_volume_stats_used_bytes{persistentvolumeclaim=~"data-%s-.*"} / kubelet_volume_stats_capacity_bytes > 0.95`})

	rRedisDown = rule(def{name: "RedisDown", sev: critical, forDur: m(1), job: "redis-exporter", port: "9121",
		summary: "%s: Redis instance is down", expr: `redis_up{service="%s"} == 0`})
	rRedisMem = rule(def{name: "RedisMemoryHigh", sev: warning, forDur: m(5), job: "redis-exporter", port: "9121",
		summary: "%s: Redis memory above 90% of maxmemory", expr: `redis_memory_used_bytes{service="%s"} / redis_memory_max_bytes > 0.9`})
	rRedisEvict = rule(def{name: "RedisEvictionsHigh", sev: warning, forDur: m(5), job: "redis-exporter", port: "9121",
		summary: "%s: keys evicted at a high rate", expr: `rate(redis_evicted_keys_total{service="%s"}[5m]) > 100`})
	rRedisRejected = rule(def{name: "RedisRejectedConnections", sev: critical, forDur: 0, job: "redis-exporter", port: "9121",
		summary: "%s: Redis rejects connections", expr: `increase(redis_rejected_connections_total{service="%s"}[1m]) > 0`})

	rESRed = rule(def{name: "ElasticsearchClusterRed", sev: critical, forDur: m(2), job: "elasticsearch-exporter", port: "9114",
		summary: "%s: cluster health is red", expr: `elasticsearch_cluster_health_status{service="%s",color="red"} == 1`})
	rESYellow = rule(def{name: "ElasticsearchClusterYellow", sev: warning, forDur: m(10), job: "elasticsearch-exporter", port: "9114",
		summary: "%s: cluster health is yellow", expr: `elasticsearch_cluster_health_status{service="%s",color="yellow"} == 1`})
	rESHeap = rule(def{name: "ElasticsearchHeapUsageHigh", sev: warning, forDur: m(5), job: "elasticsearch-exporter", port: "9114",
		summary: "%s: JVM heap above 90%", expr: `elasticsearch_jvm_memory_used_bytes{service="%s",area="heap"} / elasticsearch_jvm_memory_max_bytes > 0.9`})
	rESLatency = rule(def{name: "ElasticsearchSearchLatencyHigh", sev: warning, forDur: m(5), job: "elasticsearch-exporter", port: "9114",
		summary: "%s: search latency high", expr: `rate(elasticsearch_indices_search_query_time_seconds{service="%s"}[5m]) / rate(elasticsearch_indices_search_query_total[5m]) > 0.5`})
	rESDisk = rule(def{name: "ElasticsearchDiskWatermarkHigh", sev: warning, forDur: m(5), job: "elasticsearch-exporter", port: "9114",
		summary: "%s: node above the high disk watermark", expr: `elasticsearch_filesystem_data_available_bytes{service="%s"} / elasticsearch_filesystem_data_size_bytes < 0.1`})

	rKafkaBroker = rule(def{name: "KafkaBrokerDown", sev: critical, forDur: m(2), job: "kafka-jmx", port: "5556",
		summary: "%s: broker left the cluster", expr: `count(kafka_server_replicamanager_leadercount{service="%s"}) < 5`})
	rKafkaURP = rule(def{name: "KafkaUnderReplicatedPartitions", sev: warning, forDur: m(5), job: "kafka-jmx", port: "5556",
		summary: "%s: under-replicated partitions", expr: `kafka_server_replicamanager_underreplicatedpartitions{service="%s"} > 0`})
	rKafkaOffline = rule(def{name: "KafkaOfflinePartitions", sev: critical, forDur: m(1), job: "kafka-jmx", port: "5556",
		summary: "%s: partitions without a leader", expr: `kafka_controller_kafkacontroller_offlinepartitionscount{service="%s"} > 0`})
	rKafkaProduce = rule(def{name: "KafkaProduceLatencyHigh", sev: warning, forDur: m(5), job: "kafka-jmx", port: "5556",
		summary: "%s: produce request latency high", expr: `kafka_network_requestmetrics_totaltimems{service="%s",request="Produce",quantile="0.99"} > 500`})

	rObjErrors = rule(def{name: "ObjectStorageErrorRate", sev: critical, forDur: m(3), job: "minio", port: "9000",
		summary: "%s: S3 API returns errors", expr: `sum(rate(minio_s3_requests_errors_total{service="%s"}[5m])) / sum(rate(minio_s3_requests_total[5m])) > 0.05`})
	rObjLatency = rule(def{name: "ObjectStorageLatencyHigh", sev: warning, forDur: m(5), job: "minio", port: "9000",
		summary: "%s: S3 API latency high", expr: `histogram_quantile(0.99, sum by (le) (rate(minio_s3_ttfb_seconds_bucket{service="%s"}[5m]))) > 2`})

	rPSPErrors = rule(def{name: "PaymentProviderErrorRate", sev: critical, forDur: m(2), port: "8080",
		summary: "%s: payment provider returns errors", expr: `sum(rate(psp_requests_total{service="%s",outcome="error"}[5m])) / sum(rate(psp_requests_total[5m])) > 0.1`})
	rPSPLatency = rule(def{name: "PaymentProviderLatencyHigh", sev: warning, forDur: m(5), port: "8080",
		summary: "%s: payment provider p99 above 5s", expr: `histogram_quantile(0.99, sum by (le) (rate(psp_request_duration_seconds_bucket{service="%s"}[5m]))) > 5`})

	rDNSErrors = rule(def{name: "CoreDNSErrorsHigh", sev: critical, forDur: m(5), job: "coredns", port: "9153",
		summary: "%s: SERVFAIL responses above 3%", expr: `sum(rate(coredns_dns_responses_total{service="%s",rcode="SERVFAIL"}[5m])) / sum(rate(coredns_dns_responses_total[5m])) > 0.03`})
	rDNSLatency = rule(def{name: "CoreDNSLatencyHigh", sev: warning, forDur: m(10), job: "coredns", port: "9153",
		summary: "%s: DNS p99 latency above 100ms", expr: `histogram_quantile(0.99, sum by (pod, le) (rate(coredns_dns_request_duration_seconds_bucket{service="%s"}[5m]))) > 0.1`})
	rDNSForward = rule(def{name: "CoreDNSForwardHealthcheckFailure", sev: warning, forDur: m(2), job: "coredns", port: "9153",
		summary: "%s: upstream resolvers failing health checks", expr: `sum(rate(coredns_forward_healthcheck_failures_total{service="%s"}[5m])) > 0`})

	rIstioPush = rule(def{name: "IstioPilotPushErrors", sev: warning, forDur: m(5), job: "istiod", port: "15014",
		summary: "%s: xDS pushes failing", expr: `sum(rate(pilot_xds_push_errors{service="%s"}[5m])) > 0`})
	rIstioDown = rule(def{name: "IstiodUnavailable", sev: critical, forDur: m(3), job: "istiod", port: "15014",
		summary: "%s: no istiod replica ready", expr: `sum(up{service="%s"}) == 0`})
	rEnvoy503 = rule(def{name: "EnvoySidecarUpstream503", sev: warning, forDur: m(2), job: "envoy-stats", port: "15090",
		summary: "%s: sidecar returns 503 UH/UF", expr: `sum by (pod) (rate(istio_requests_total{destination_service_name="%s",response_code="503",response_flags=~"UH|UF|NR"}[5m])) > 1`})

	rCertSoon = rule(def{name: "CertManagerCertExpirySoon", sev: warning, forDur: m(60), job: "cert-manager", port: "9402",
		summary: "%s: certificate expires in less than 7 days", expr: `certmanager_certificate_expiration_timestamp_seconds{service="%s"} - time() < 7 * 86400`})
	rCertNotReady = rule(def{name: "CertManagerCertNotReady", sev: critical, forDur: m(10), job: "cert-manager", port: "9402",
		summary: "%s: certificate is not ready", expr: `max by (name, exported_namespace) (certmanager_certificate_ready_status{service="%s",condition=~"False|Unknown"}) == 1`})
	rSSLExpired = rule(def{name: "BlackboxSSLCertExpired", sev: critical, forDur: 0, job: "blackbox", port: "9115",
		summary: "%s: TLS certificate has expired", expr: `probe_ssl_earliest_cert_expiry{service="%s"} - time() <= 0`})

	rVaultSealed = rule(def{name: "VaultSealed", sev: critical, forDur: 0, job: "vault", port: "8200",
		summary: "%s: Vault is sealed", expr: `vault_core_unsealed{service="%s"} == 0`})
	rVaultLatency = rule(def{name: "VaultRequestLatencyHigh", sev: warning, forDur: m(5), job: "vault", port: "8200",
		summary: "%s: Vault request latency high", expr: `vault_core_handle_request{service="%s",quantile="0.99"} > 500`})

	rNodeNotReady = rule(def{name: "KubeNodeNotReady", sev: warning, forDur: m(15), job: "kube-state-metrics", port: "8080",
		summary: "%s: node not ready for 15 minutes", expr: `kube_node_status_condition{condition="Ready",status="true",service="%s"} == 0`})
	rNodeUnreachable = rule(def{name: "KubeNodeUnreachable", sev: warning, forDur: m(15), job: "kube-state-metrics", port: "8080",
		summary: "%s: node is unreachable", expr: `kube_node_spec_taint{key="node.kubernetes.io/unreachable",effect="NoSchedule",service="%s"} == 1`})
	rKubeletDown = rule(def{name: "KubeletDown", sev: critical, forDur: m(15), job: "kubelet", port: "10250",
		summary: "%s: kubelet disappeared from target discovery", expr: `absent(up{job="kubelet",service="%s"} == 1)`})
	rNodeDisk = rule(def{name: "NodeFilesystemSpaceFillingUp", sev: warning, forDur: m(60), job: "node-exporter", port: "9100",
		summary: "%s: filesystem predicted to run out of space within 24 hours", expr: `predict_linear(node_filesystem_avail_bytes{service="%s",fstype!=""}[6h], 24*3600) < 0`})
	rNodeMem = rule(def{name: "NodeMemoryPressure", sev: warning, forDur: m(5), job: "kube-state-metrics", port: "8080",
		summary: "%s: node under memory pressure", expr: `kube_node_status_condition{condition="MemoryPressure",status="true",service="%s"} == 1`})
	rNodeCPU = rule(def{name: "NodeHighCPU", sev: warning, forDur: m(15), job: "node-exporter", port: "9100",
		summary: "%s: node CPU above 90%", expr: `1 - avg by (instance) (rate(node_cpu_seconds_total{mode="idle",service="%s"}[5m])) > 0.9`})
	rNodeClock = rule(def{name: "NodeClockSkewDetected", sev: warning, forDur: m(10), job: "node-exporter", port: "9100",
		summary: "%s: clock skew detected", expr: `node_timex_offset_seconds{service="%s"} > 0.05`})

	rWatchdog = rule(def{name: "Watchdog", sev: "none", forDur: 0, job: "prometheus", port: "9090",
		summary: "%s: the alerting pipeline is alive", expr: `vector(1)`})
	rScrapeFail = rule(def{name: "PrometheusTargetScrapesFailing", sev: warning, forDur: m(10), job: "prometheus", port: "9090",
		summary: "%s: scrapes failing", expr: `increase(prometheus_target_scrapes_exceeded_sample_limit_total{service="%s"}[5m]) > 0`})
	rRuleFail = rule(def{name: "PrometheusRuleFailures", sev: critical, forDur: m(15), job: "prometheus", port: "9090",
		summary: "%s: rule evaluations failing", expr: `increase(prometheus_rule_evaluation_failures_total{service="%s"}[5m]) > 0`})
)

func (d def) summaryFor(svc string) string { return strings.ReplaceAll(d.summary, "%s", svc) }

func (d def) exprFor(svc string) string {
	return strings.ReplaceAll(strings.ReplaceAll(d.expr, "%[1]s", svc), "%s", svc)
}
