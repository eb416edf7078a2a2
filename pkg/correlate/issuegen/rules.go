package issuegen

import (
	"net/url"
	"strings"
	"time"
)

// scope says which label set a rule fires with, as the exporters behind
// real rules give them.
type scope int

const (
	perService  scope = iota // the service's own metrics (a ServiceMonitor): service, job = service
	perUpstream              // per dependency the service calls (client-side metrics): adds upstream
	perPod                   // kube-state-metrics or cAdvisor: pod, container
	perInstance              // a data store's exporter: instance, pod
	perWorkload              // kube-state-metrics, per Deployment or HPA
	perProbe                 // a blackbox probe of a public URL: the exporter's own service label
)

// rule is an alerting rule: its name, severity, `for` and what it says.
type rule struct {
	name     string
	severity string
	hold     time.Duration // the rule's `for`
	scope    scope
	expr     string // shown in the generator URL
	summary  string // {svc}, {pod}, {upstream}, {instance} are filled in
	extra    map[string]string
}

const (
	sevCritical = "critical"
	sevWarning  = "warning"
)

// Rules of request/response services and workers (their own symptoms, and
// what they show when something they call fails).
var (
	rHighErrorRate  = rule{"HighErrorRate", sevCritical, 2 * time.Minute, perService, `sum(rate(http_requests_total{code=~"5.."}[5m])) by (service) / sum(rate(http_requests_total[5m])) by (service) > 0.05`, "{svc}: more than 5% of requests fail", nil}
	rHighLatency    = rule{"HighLatencyP99", sevWarning, 5 * time.Minute, perService, `histogram_quantile(0.99, sum(rate(http_request_duration_seconds_bucket[5m])) by (le, service)) > 1`, "{svc}: p99 latency above 1s", nil}
	rBudgetBurn     = rule{"ErrorBudgetBurn", sevCritical, 2 * time.Minute, perService, `slo:sli_error:ratio_rate1h > (14.4 * 0.001) and slo:sli_error:ratio_rate5m > (14.4 * 0.001)`, "{svc}: burning the 30-day availability budget 14x too fast", map[string]string{"slo": "availability", "long_window": "1h", "short_window": "5m"}}
	rUpstreamErrors = rule{"UpstreamErrorsHigh", sevWarning, 2 * time.Minute, perUpstream, `sum(rate(client_requests_total{result="error"}[5m])) by (service, upstream) > 1`, "{svc}: calls to {upstream} failing", nil}
	rBreakerOpen    = rule{"CircuitBreakerOpen", sevWarning, 1 * time.Minute, perUpstream, `max(resilience4j_circuitbreaker_state{state="open"}) by (service, upstream) == 1`, "{svc}: circuit breaker to {upstream} is open", nil}
	rCrashLooping   = rule{"KubePodCrashLooping", sevWarning, 15 * time.Minute, perPod, `max_over_time(kube_pod_container_status_waiting_reason{reason="CrashLoopBackOff"}[5m]) >= 1`, "Pod {pod} is crash looping", nil}
	rPodNotReady    = rule{"KubePodNotReady", sevWarning, 15 * time.Minute, perPod, `sum by (namespace, pod) (kube_pod_status_phase{phase=~"Pending|Unknown|Failed"}) > 0`, "Pod {pod} has been in a non-ready state for longer than 15 minutes", nil}
	rMemoryNearLim  = rule{"ContainerMemoryNearLimit", sevWarning, 5 * time.Minute, perPod, `container_memory_working_set_bytes / container_spec_memory_limit_bytes > 0.9`, "Container in {pod} is using more than 90% of its memory limit", nil}
	rCPUThrottling  = rule{"CPUThrottlingHigh", sevWarning, 15 * time.Minute, perPod, `sum(increase(container_cpu_cfs_throttled_periods_total[5m])) by (container, pod, namespace) / sum(increase(container_cpu_cfs_periods_total[5m])) by (container, pod, namespace) > 0.25`, "Processes in {pod} experience elevated CPU throttling", nil}
	rReplicasMism   = rule{"KubeDeploymentReplicasMismatch", sevWarning, 15 * time.Minute, perWorkload, `kube_deployment_spec_replicas != kube_deployment_status_replicas_available`, "Deployment {svc} has not matched the expected number of replicas", nil}
	rHpaMaxed       = rule{"KubeHpaMaxedOut", sevWarning, 15 * time.Minute, perWorkload, `kube_horizontalpodautoscaler_status_current_replicas == kube_horizontalpodautoscaler_spec_max_replicas`, "HPA {svc} has been running at max replicas for longer than 15 minutes", nil}
	rConsumerLag    = rule{"KafkaConsumerGroupLagHigh", sevWarning, 5 * time.Minute, perService, `sum(kafka_consumergroup_lag) by (consumergroup) > 10000`, "{svc}: consumer group lag above 10k messages", nil}
	rJobErrors      = rule{"WorkerJobFailuresHigh", sevCritical, 2 * time.Minute, perService, `sum(rate(worker_jobs_failed_total[5m])) by (service) / sum(rate(worker_jobs_total[5m])) by (service) > 0.1`, "{svc}: more than 10% of jobs fail", nil}
	rProviderErrors = rule{"ExternalProviderErrorsHigh", sevCritical, 2 * time.Minute, perService, `sum(rate(provider_requests_total{outcome!="ok"}[5m])) by (service, provider) / sum(rate(provider_requests_total[5m])) by (service, provider) > 0.1`, "{svc}: the third-party provider answers errors", nil}
	rTargetDown     = rule{"TargetDown", sevWarning, 10 * time.Minute, perService, `100 * (count(up == 0) by (job, namespace, service) / count(up) by (job, namespace, service)) > 10`, "10% of the {svc} targets are down", nil}
	rProbeFailed    = rule{"BlackboxProbeFailed", sevCritical, 2 * time.Minute, perProbe, `probe_success == 0`, "Probe of {instance} failed", nil}
	rProbeSlow      = rule{"BlackboxProbeSlow", sevWarning, 1 * time.Minute, perProbe, `avg_over_time(probe_duration_seconds[1m]) > 1`, "Probe of {instance} took more than 1s", nil}
	rGoroutines     = rule{"ThreadPoolSaturated", sevWarning, 5 * time.Minute, perPod, `executor_active_threads / executor_pool_max_threads > 0.95`, "{pod}: request thread pool saturated", nil}
)

// Rules of data stores and platform services.
var (
	rPostgresDown     = rule{"PostgresqlDown", sevCritical, 1 * time.Minute, perInstance, `pg_up == 0`, "PostgreSQL {instance} is down", nil}
	rPostgresConns    = rule{"PostgresqlTooManyConnections", sevWarning, 2 * time.Minute, perInstance, `sum by (instance) (pg_stat_activity_count) > pg_settings_max_connections * 0.8`, "PostgreSQL {instance} uses more than 80% of its connections", nil}
	rPostgresSlow     = rule{"PostgresqlSlowQueries", sevWarning, 5 * time.Minute, perInstance, `avg by (instance) (rate(pg_stat_activity_max_tx_duration[2m])) > 2`, "PostgreSQL {instance} has slow queries", nil}
	rPostgresDeadlock = rule{"PostgresqlDeadlocks", sevWarning, 1 * time.Minute, perInstance, `increase(pg_stat_database_deadlocks{datname!~"template.*|postgres"}[1m]) > 5`, "PostgreSQL {instance} has deadlocks", nil}
	rPostgresRepl     = rule{"PostgresqlReplicationLag", sevWarning, 2 * time.Minute, perInstance, `pg_replication_lag > 30 and on (instance) pg_replication_is_replica == 1`, "PostgreSQL replica {instance} lags behind its primary", nil}
	rPostgresTx       = rule{"PostgresqlLongRunningTransaction", sevWarning, 5 * time.Minute, perInstance, `pg_stat_activity_max_tx_duration{state="active"} > 300`, "PostgreSQL {instance} has a transaction running for over 5 minutes", nil}
	rMySQLDown        = rule{"MysqlDown", sevCritical, 1 * time.Minute, perInstance, `mysql_up == 0`, "MySQL {instance} is down", nil}
	rMySQLConns       = rule{"MysqlTooManyConnections", sevWarning, 2 * time.Minute, perInstance, `max_over_time(mysql_global_status_threads_connected[1m]) / mysql_global_variables_max_connections > 0.8`, "MySQL {instance} uses more than 80% of its connections", nil}
	rMySQLSlow        = rule{"MysqlSlowQueries", sevWarning, 2 * time.Minute, perInstance, `increase(mysql_global_status_slow_queries[1m]) > 0`, "MySQL {instance} has slow queries", nil}
	rMySQLRepl        = rule{"MysqlSlaveReplicationLag", sevWarning, 1 * time.Minute, perInstance, `mysql_slave_status_seconds_behind_master > 30`, "MySQL replica {instance} lags behind", nil}
	rRedisDown        = rule{"RedisDown", sevCritical, 1 * time.Minute, perInstance, `redis_up == 0`, "Redis {instance} is down", nil}
	rRedisMemory      = rule{"RedisOutOfMemory", sevWarning, 2 * time.Minute, perInstance, `redis_memory_used_bytes / redis_memory_max_bytes > 0.9`, "Redis {instance} is running out of memory", nil}
	rRedisRejected    = rule{"RedisRejectedConnections", sevCritical, 1 * time.Minute, perInstance, `increase(redis_rejected_connections_total[1m]) > 0`, "Redis {instance} rejects connections", nil}
	rRedisReplication = rule{"RedisReplicationBroken", sevCritical, 1 * time.Minute, perInstance, `delta(redis_connected_slaves[1m]) < 0`, "Redis {instance} lost a replica", nil}
	rKafkaBrokerDown  = rule{"KafkaBrokerDown", sevCritical, 1 * time.Minute, perInstance, `up{job="kafka-exporter"} == 0`, "Kafka broker {instance} is down", nil}
	rKafkaUnderRepl   = rule{"KafkaUnderReplicatedPartitions", sevWarning, 2 * time.Minute, perInstance, `sum by (instance) (kafka_topic_partition_under_replicated_partition) > 0`, "Kafka {instance} has under-replicated partitions", nil}
	rKafkaOffline     = rule{"KafkaOfflinePartitions", sevCritical, 1 * time.Minute, perInstance, `sum by (instance) (kafka_controller_offline_partitions_count) > 0`, "Kafka {instance} reports offline partitions", nil}
	rKafkaISR         = rule{"KafkaISRShrinking", sevWarning, 2 * time.Minute, perInstance, `rate(kafka_server_replicamanager_isrshrinks_total[5m]) > 0`, "Kafka {instance}: in-sync replica sets are shrinking", nil}
	rESRed            = rule{"ElasticsearchClusterRed", sevCritical, 1 * time.Minute, perInstance, `elasticsearch_cluster_health_status{color="red"} == 1`, "Elasticsearch cluster health is RED", nil}
	rESNodeDown       = rule{"ElasticsearchNodeDown", sevCritical, 1 * time.Minute, perInstance, `elasticsearch_cluster_health_number_of_nodes < 5`, "Elasticsearch node {instance} left the cluster", nil}
	rESHeap           = rule{"ElasticsearchHeapUsageTooHigh", sevWarning, 2 * time.Minute, perInstance, `elasticsearch_jvm_memory_used_bytes{area="heap"} / elasticsearch_jvm_memory_max_bytes{area="heap"} > 0.9`, "Elasticsearch {instance} heap above 90%", nil}
	rESUnassigned     = rule{"ElasticsearchUnassignedShards", sevWarning, 2 * time.Minute, perInstance, `elasticsearch_cluster_health_unassigned_shards > 0`, "Elasticsearch has unassigned shards", nil}
	rMemcachedDown    = rule{"MemcachedDown", sevCritical, 1 * time.Minute, perInstance, `memcached_up == 0`, "Memcached {instance} is down", nil}
	rMemcachedEvict   = rule{"MemcachedEvictionsHigh", sevWarning, 5 * time.Minute, perInstance, `rate(memcached_items_evicted_total[5m]) > 100`, "Memcached {instance} evicts items", nil}
	rMongoDown        = rule{"MongodbDown", sevCritical, 1 * time.Minute, perInstance, `mongodb_up == 0`, "MongoDB {instance} is down", nil}
	rMongoRepl        = rule{"MongodbReplicationLag", sevWarning, 2 * time.Minute, perInstance, `mongodb_mongod_replset_member_replication_lag > 10`, "MongoDB replica {instance} lags behind", nil}
	rMongoConns       = rule{"MongodbTooManyConnections", sevWarning, 2 * time.Minute, perInstance, `avg by (instance) (rate(mongodb_connections{state="current"}[1m])) / avg by (instance) (sum (mongodb_connections) by (instance)) * 100 > 80`, "MongoDB {instance} has too many connections", nil}
	rVaultSealed      = rule{"VaultSealed", sevCritical, 1 * time.Minute, perInstance, `vault_core_unsealed == 0`, "Vault {instance} is sealed", nil}
	rVaultLatency     = rule{"VaultRequestLatencyHigh", sevWarning, 2 * time.Minute, perInstance, `vault_core_handle_request{quantile="0.99"} > 500`, "Vault {instance} answers slowly", nil}
	rMinioOffline     = rule{"MinioNodeOffline", sevCritical, 1 * time.Minute, perInstance, `minio_cluster_nodes_offline_total > 0`, "MinIO node {instance} is offline", nil}
	rMinioDiskOffline = rule{"MinioDiskOffline", sevWarning, 1 * time.Minute, perInstance, `minio_cluster_drive_offline_total > 0`, "MinIO {instance} has offline drives", nil}
	rMinioLatency     = rule{"MinioRequestLatencyHigh", sevWarning, 5 * time.Minute, perInstance, `histogram_quantile(0.99, sum(rate(minio_s3_requests_ttfb_seconds_distribution[5m])) by (le, instance)) > 2`, "MinIO {instance} answers slowly", nil}
	rPVFilling        = rule{"KubePersistentVolumeFillingUp", sevWarning, 1 * time.Minute, perInstance, `kubelet_volume_stats_available_bytes / kubelet_volume_stats_capacity_bytes < 0.15`, "The volume of {pod} is filling up", nil}
)

// use is a rule in a failure mode: how likely it fires, on how many of the
// pods or instances (from which index: the primary is instance 0), and
// how long after the impact its condition starts to hold.
type use struct {
	r          rule
	p          float64
	from, n    int // instances from..from+n-1; n 0 means one
	lead, late time.Duration
}

// mode is how a service fails: the rules that fire on it, how strongly its
// callers feel it (a multiplier on the spread) and how long a hop to a
// caller takes.
type mode struct {
	name   string
	uses   []use
	fanout float64
	hop    [2]time.Duration
}

var fastHop = [2]time.Duration{5 * time.Second, 40 * time.Second}
var slowHop = [2]time.Duration{time.Minute, 4 * time.Minute}

// failureModes lists how each kind of service fails on its own.
var failureModes = map[kind][]mode{
	kindPostgres: {
		{"primary down", []use{{rPostgresDown, 1, 0, 1, 0, 0}, {rPostgresRepl, 0.6, 1, 2, 0, time.Minute}}, 1, fastHop},
		{"connection exhaustion", []use{{rPostgresConns, 1, 0, 1, 0, 0}, {rPostgresSlow, 0.6, 0, 1, 0, 2 * time.Minute}}, 0.9, fastHop},
		{"lock contention", []use{{rPostgresDeadlock, 0.8, 0, 1, 0, 0}, {rPostgresTx, 0.8, 0, 1, 0, time.Minute}, {rPostgresSlow, 0.5, 0, 1, 0, time.Minute}}, 0.7, slowHop},
		{"disk full", []use{{rPVFilling, 1, 0, 1, -25 * time.Minute, -10 * time.Minute}, {rPostgresDown, 0.7, 0, 1, 0, 30 * time.Second}}, 1, fastHop},
	},
	kindMySQL: {
		{"primary down", []use{{rMySQLDown, 1, 0, 1, 0, 0}, {rMySQLRepl, 0.5, 1, 2, 0, time.Minute}}, 1, fastHop},
		{"connection exhaustion", []use{{rMySQLConns, 1, 0, 1, 0, 0}, {rMySQLSlow, 0.7, 0, 1, 0, time.Minute}}, 0.9, fastHop},
	},
	kindRedis: {
		{"down", []use{{rRedisDown, 1, 0, 1, 0, 0}, {rRedisReplication, 0.5, 1, 1, 0, time.Minute}}, 1, fastHop},
		{"out of memory", []use{{rRedisMemory, 1, 0, 1, -6 * time.Minute, -2 * time.Minute}, {rRedisRejected, 0.7, 0, 1, 0, 0}}, 0.8, fastHop},
	},
	kindKafka: {
		{"broker down", []use{{rKafkaBrokerDown, 1, 2, 1, 0, 0}, {rKafkaUnderRepl, 0.9, 0, 2, 0, time.Minute}, {rKafkaOffline, 0.4, 0, 1, 0, time.Minute}}, 0.8, slowHop},
		{"ISR shrinking", []use{{rKafkaISR, 1, 1, 3, 0, time.Minute}, {rKafkaUnderRepl, 0.8, 1, 2, 0, 2 * time.Minute}}, 0.6, slowHop},
	},
	kindElastic: {
		{"cluster red", []use{{rESRed, 1, 0, 1, 0, 0}, {rESNodeDown, 0.8, 3, 1, -time.Minute, 0}, {rESUnassigned, 0.8, 0, 1, 0, time.Minute}}, 1, fastHop},
		{"heap pressure", []use{{rESHeap, 1, 1, 3, -4 * time.Minute, 0}, {rESUnassigned, 0.3, 0, 1, 0, 2 * time.Minute}}, 0.8, fastHop},
	},
	kindMemcache: {
		{"node down", []use{{rMemcachedDown, 1, 1, 1, 0, 0}}, 0.7, fastHop},
		{"evictions", []use{{rMemcachedEvict, 1, 0, 3, 0, time.Minute}}, 0.5, slowHop},
	},
	kindMongo: {
		{"primary down", []use{{rMongoDown, 1, 0, 1, 0, 0}, {rMongoRepl, 0.5, 1, 2, 0, time.Minute}}, 1, fastHop},
		{"connection exhaustion", []use{{rMongoConns, 1, 0, 2, 0, 0}}, 0.8, fastHop},
	},
	kindVault: {
		{"sealed", []use{{rVaultSealed, 1, 0, 3, 0, 30 * time.Second}}, 1, fastHop},
		{"slow", []use{{rVaultLatency, 1, 0, 2, 0, time.Minute}}, 0.6, fastHop},
	},
	kindObjectStore: {
		{"node offline", []use{{rMinioOffline, 1, 0, 1, 0, 0}, {rMinioDiskOffline, 0.6, 1, 2, 0, time.Minute}}, 0.9, fastHop},
		{"slow", []use{{rMinioLatency, 1, 0, 4, 0, time.Minute}}, 0.7, fastHop},
	},
	kindHTTP: {
		{"memory leak", []use{{rMemoryNearLim, 1, 0, 3, -8 * time.Minute, 0}, {rCrashLooping, 0.7, 0, 2, 0, time.Minute}, {rHighErrorRate, 0.7, 0, 0, 0, time.Minute}, {rHighLatency, 0.5, 0, 0, 0, time.Minute}}, 0.7, fastHop},
		{"overload", []use{{rHighLatency, 1, 0, 0, 0, 0}, {rGoroutines, 0.6, 0, 3, 0, time.Minute}, {rHpaMaxed, 0.6, 0, 0, -5 * time.Minute, 0}, {rHighErrorRate, 0.6, 0, 0, 0, time.Minute}, {rBudgetBurn, 0.5, 0, 0, 0, time.Minute}}, 0.9, fastHop},
		{"errors", []use{{rHighErrorRate, 1, 0, 0, 0, 0}, {rBudgetBurn, 0.7, 0, 0, 0, 30 * time.Second}, {rPodNotReady, 0.4, 0, 2, 0, time.Minute}}, 1, fastHop},
	},
	kindWorker: {
		{"stuck consumers", []use{{rConsumerLag, 1, 0, 0, 0, time.Minute}, {rJobErrors, 0.6, 0, 0, 0, 0}, {rCrashLooping, 0.5, 0, 2, 0, time.Minute}}, 0.6, slowHop},
	},
	kindAdapter: {
		{"provider outage", []use{{rProviderErrors, 1, 0, 0, 0, 0}, {rHighErrorRate, 0.7, 0, 0, 0, 30 * time.Second}, {rHighLatency, 0.5, 0, 0, 0, time.Minute}}, 1, fastHop},
	},
}

// deployModes are how a bad change shows on the changed service.
var deployModes = []mode{
	{"crash on start", []use{{rCrashLooping, 1, 0, 3, 0, time.Minute}, {rReplicasMism, 0.8, 0, 0, 0, 0}, {rHighErrorRate, 0.5, 0, 0, 0, time.Minute}}, 0.6, fastHop},
	{"regression", []use{{rHighErrorRate, 1, 0, 0, 0, 0}, {rBudgetBurn, 0.7, 0, 0, 0, 30 * time.Second}, {rHighLatency, 0.4, 0, 0, 0, time.Minute}}, 1, fastHop},
	{"slow regression", []use{{rHighLatency, 1, 0, 0, 0, 0}, {rGoroutines, 0.6, 0, 3, 0, time.Minute}, {rBudgetBurn, 0.5, 0, 0, 0, 2 * time.Minute}}, 0.8, fastHop},
	{"memory leak", []use{{rMemoryNearLim, 1, 0, 3, 0, 2 * time.Minute}, {rCrashLooping, 0.6, 0, 2, 0, 4 * time.Minute}, {rHighLatency, 0.5, 0, 0, 0, 2 * time.Minute}}, 0.5, fastHop},
}

// callerUses are what a caller of a failing service shows, by its kind;
// the upstream rules name the failing service it calls.
var callerUses = map[kind][]use{
	kindHTTP: {
		{rHighErrorRate, 0.75, 0, 0, 0, 30 * time.Second},
		{rHighLatency, 0.35, 0, 0, 0, time.Minute},
		{rBudgetBurn, 0.4, 0, 0, 0, time.Minute},
		{rUpstreamErrors, 0.35, 0, 0, 0, 0},
		{rBreakerOpen, 0.15, 0, 0, 0, 0},
		{rPodNotReady, 0.06, 0, 2, 0, time.Minute},
	},
	kindWorker: {
		{rConsumerLag, 0.7, 0, 0, 0, 2 * time.Minute},
		{rJobErrors, 0.6, 0, 0, 0, 30 * time.Second},
		{rCrashLooping, 0.15, 0, 2, 0, time.Minute},
	},
	kindAdapter: {
		{rHighErrorRate, 0.7, 0, 0, 0, 30 * time.Second},
		{rUpstreamErrors, 0.5, 0, 0, 0, 0},
		{rHighLatency, 0.3, 0, 0, 0, time.Minute},
	},
}

// probes are the public URLs synthetic monitoring probes, by the edge
// service behind them.
var probes = map[string][]string{
	"web-storefront": {"https://www.shop.example.com/", "https://www.shop.example.com/checkout"},
	"graphql-bff":    {"https://www.shop.example.com/graphql?query=health"},
	"mobile-bff":     {"https://m-api.shop.example.com/healthz"},
	"api-gateway":    {"https://api.shop.example.com/healthz"},
	"partner-api":    {"https://partners.shop.example.com/v2/health"},
}

// exporterJob is the job label of a stateful service's exporter, and the
// exporter's port.
func exporterJob(k kind) (string, string) {
	switch k {
	case kindPostgres:
		return "postgres-exporter", "9187"
	case kindMySQL:
		return "mysqld-exporter", "9104"
	case kindRedis:
		return "redis-exporter", "9121"
	case kindKafka:
		return "kafka-exporter", "9308"
	case kindElastic:
		return "elasticsearch-exporter", "9114"
	case kindMemcache:
		return "memcached-exporter", "9150"
	case kindMongo:
		return "mongodb-exporter", "9216"
	case kindVault:
		return "vault", "8200"
	case kindObjectStore:
		return "minio", "9000"
	}
	return "", "8080"
}

const (
	clusterName   = "prod-eu-west-1"
	prometheusURL = "https://prometheus.shop.example.com"
	runbookBase   = "https://runbooks.shop.example.com/alerts/"
)

// fill replaces the placeholders of a summary.
func fill(text string, labels map[string]string) string {
	return strings.NewReplacer("{svc}", labels["service"], "{pod}", labels["pod"], "{upstream}", labels["upstream"], "{instance}", labels["instance"]).Replace(text)
}

// generatorURL is Prometheus's link to the rule's expression.
func generatorURL(expr string) string {
	return prometheusURL + "/graph?g0.expr=" + url.QueryEscape(expr) + "&g0.tab=1"
}

// instanceLabels is a rule's label set on service s, on pod or instance
// index i (for the per-pod and per-instance scopes), and for upstream
// (the dependency called, per-upstream scope; the probed URL, probes).
func instanceLabels(r rule, s *service, pods []string, i int, upstream string) map[string]string {
	l := map[string]string{
		"alertname":  r.name,
		"severity":   r.severity,
		"cluster":    clusterName,
		"prometheus": "monitoring/k8s",
		"namespace":  s.namespace,
	}
	switch r.scope {
	case perService, perUpstream:
		l["service"] = s.name
		l["job"] = s.name
		l["team"] = s.team
		if r.scope == perUpstream {
			l["upstream"] = upstream
		}
	case perPod:
		l["service"] = s.name
		l["pod"] = pods[i%len(pods)]
		l["container"] = s.name
		if r.name == rMemoryNearLim.name || r.name == rCPUThrottling.name || r.name == rGoroutines.name {
			l["job"] = "kubelet"
		} else {
			l["job"] = "kube-state-metrics"
		}
	case perInstance:
		job, port := exporterJob(s.kind)
		pod := pods[i%len(pods)]
		l["service"] = s.name
		l["job"] = job
		l["pod"] = pod
		l["instance"] = pod + ":" + port
		if r.name == rPVFilling.name {
			l["job"] = "kubelet"
			l["persistentvolumeclaim"] = "data-" + pod
			delete(l, "instance")
		}
	case perProbe:
		l["namespace"] = "monitoring"
		l["job"] = "blackbox-http"
		l["service"] = "blackbox-exporter"
		l["instance"] = upstream // the probed URL
	case perWorkload:
		l["service"] = s.name
		l["job"] = "kube-state-metrics"
		if r.name == rHpaMaxed.name {
			l["horizontalpodautoscaler"] = s.name
		} else {
			l["deployment"] = s.name
		}
	}
	for k, v := range r.extra {
		l[k] = v
	}
	return l
}
