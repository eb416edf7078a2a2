package stagegen

import (
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"strings"
	"time"
)

// symptom is one way a failure shows on a service.
type symptom int

const (
	symLatency symptom = iota
	symErrors
	symSaturation // CPU
	symMemory
	symConn // connection pool / connections
	symLag  // consumer or replication lag
	symDisk
	symTraffic // requests drop
	symCrash   // pods restarting
)

// metricDef is one metric series the detector watches.
type metricDef struct {
	name     string
	unit     string
	expected float64 // the usual value
	band     float64 // half-width of the expected band
	peak     float64 // a typical anomalous value
}

// metricFor is the series the detector watches for a symptom on a kind of
// service; ok is false when it watches none.
func metricFor(k kind, s symptom) (metricDef, bool) {
	switch s {
	case symLatency:
		switch k {
		case kPostgres:
			return metricDef{"pg_stat_statements_mean_exec_seconds", "s", 0.004, 0.003, 0.9}, true
		case kRedis, kMemcached:
			return metricDef{"cache_command_duration_seconds:p99", "s", 0.0008, 0.0006, 0.25}, true
		case kKafka:
			return metricDef{"kafka_network_request_duration_seconds:p99", "s", 0.012, 0.01, 1.8}, true
		case kSearch:
			return metricDef{"elasticsearch_search_latency_seconds:p99", "s", 0.08, 0.05, 4.2}, true
		case kWarehouse:
			return metricDef{"warehouse_query_duration_seconds:p95", "s", 12, 8, 340}, true
		case kWorker:
			return metricDef{"job_duration_seconds:p95", "s", 1.5, 1, 45}, true
		default:
			return metricDef{"http_server_request_duration_seconds:p99", "s", 0.18, 0.09, 3.5}, true
		}
	case symErrors:
		switch k {
		case kPostgres:
			return metricDef{"pg_stat_database_xact_rollback:rate5m", "1/s", 0.4, 0.6, 85}, true
		case kRedis, kMemcached:
			return metricDef{"cache_rejected_connections:rate5m", "1/s", 0, 0.05, 40}, true
		case kKafka:
			return metricDef{"kafka_server_failed_produce_requests:rate5m", "1/s", 0, 0.1, 120}, true
		case kSearch:
			return metricDef{"elasticsearch_thread_pool_rejected:rate5m", "1/s", 0, 0.2, 60}, true
		case kWorker:
			return metricDef{"job_failures:rate5m", "1/s", 0.01, 0.02, 3.2}, true
		case kExternal:
			return metricDef{"upstream_requests:error_ratio", "ratio", 0.004, 0.004, 0.62}, true
		case kObject:
			return metricDef{"s3_requests:error_ratio", "ratio", 0.001, 0.002, 0.35}, true
		case kWarehouse:
			return metricDef{"warehouse_failed_queries:rate5m", "1/s", 0, 0.01, 0.8}, true
		default:
			return metricDef{"http_server_requests:error_ratio", "ratio", 0.002, 0.003, 0.31}, true
		}
	case symSaturation:
		return metricDef{"container_cpu_usage:ratio", "ratio", 0.42, 0.2, 0.98}, true
	case symMemory:
		switch k {
		case kRedis:
			return metricDef{"redis_memory_used:ratio", "ratio", 0.55, 0.15, 0.99}, true
		case kMemcached:
			return metricDef{"memcached_evictions:rate5m", "1/s", 2, 5, 900}, true
		case kSearch:
			return metricDef{"elasticsearch_jvm_heap_used:ratio", "ratio", 0.6, 0.15, 0.97}, true
		default:
			return metricDef{"container_memory_working_set:ratio", "ratio", 0.5, 0.2, 0.97}, true
		}
	case symConn:
		switch k {
		case kPostgres:
			return metricDef{"pg_stat_activity_count:ratio_max", "ratio", 0.35, 0.2, 1}, true
		default:
			return metricDef{"db_client_connections_pending", "1", 0, 2, 180}, true
		}
	case symLag:
		switch k {
		case kPostgres:
			return metricDef{"pg_replication_lag_seconds", "s", 0.2, 1, 420}, true
		case kKafka:
			return metricDef{"kafka_topic_under_replicated_partitions", "1", 0, 0.5, 37}, true
		default:
			return metricDef{"kafka_consumergroup_lag_seconds", "s", 3, 10, 1800}, true
		}
	case symDisk:
		return metricDef{"node_filesystem_used:ratio", "ratio", 0.61, 0.1, 0.97}, true
	case symTraffic:
		return metricDef{"http_server_requests:rate5m", "1/s", 850, 220, 95}, true
	}
	return metricDef{}, false
}

// alertDef is one alert instance: its rule and its labels.
type alertDef struct {
	labels map[string]string
	ann    map[string]string
	expr   string
	forDur time.Duration
}

// alertFor is the alert a Prometheus rule raises for a symptom on a
// service, if any rule covers it. Labels follow what the usual exporters
// and mixins give: kube-state-metrics alerts name a pod and the namespace,
// not the service; Kafka lag alerts name the consumer group.
func (g *gen) alertFor(s *service, sym symptom) (alertDef, bool) {
	ns := g.w.namespace(s.name)
	sev := "warning"
	if s.tier == 1 {
		sev = "critical"
	}
	svcAlert := func(name, job, expr, summary string, forDur time.Duration, extra ...string) alertDef {
		l := map[string]string{"alertname": name, "service": s.name, "namespace": ns, "team": s.team, "severity": sev, "job": job, "cluster": "prod-eu-west-1"}
		for i := 0; i+1 < len(extra); i += 2 {
			l[extra[i]] = extra[i+1]
		}
		return alertDef{labels: l, expr: expr, forDur: forDur, ann: map[string]string{
			"summary":     summary,
			"description": fmt.Sprintf("%s on %s in %s has been outside its threshold for more than %s.", name, s.name, ns, forDur),
			"runbook_url": fmt.Sprintf("https://runbooks.internal/alerts/%s", strings.ToLower(name)),
		}}
	}
	pod := func() string { return g.podName(s.name) }
	switch sym {
	case symCrash:
		p := pod()
		return alertDef{labels: map[string]string{"alertname": "KubePodCrashLooping", "namespace": ns, "pod": p, "container": s.name,
			"job": "kube-state-metrics", "severity": "warning", "cluster": "prod-eu-west-1", "team": s.team},
			expr:   `max_over_time(kube_pod_container_status_waiting_reason{reason="CrashLoopBackOff",job="kube-state-metrics"}[5m]) >= 1`,
			forDur: 2 * time.Minute,
			ann: map[string]string{"summary": "Pod is crash looping.", "description": fmt.Sprintf("Pod %s/%s (%s) is in waiting state (reason: \"CrashLoopBackOff\").", ns, p, s.name),
				"runbook_url": "https://runbooks.prometheus-operator.dev/runbooks/kubernetes/kubepodcrashlooping"}}, true
	case symSaturation:
		if s.kind == kEdge || s.kind == kHTTP || s.kind == kWorker {
			p := pod()
			return alertDef{labels: map[string]string{"alertname": "CPUThrottlingHigh", "namespace": ns, "pod": p, "container": s.name, "severity": "info", "cluster": "prod-eu-west-1"},
				expr:   `sum(increase(container_cpu_cfs_throttled_periods_total{container!=""}[5m])) by (cluster, container, pod, namespace) / sum(increase(container_cpu_cfs_periods_total{}[5m])) by (cluster, container, pod, namespace) > (25 / 100)`,
				forDur: 15 * time.Minute,
				ann: map[string]string{"summary": "Processes experience elevated CPU throttling.", "description": fmt.Sprintf("High CPU throttling in namespace %s for container %s in pod %s.", ns, s.name, p),
					"runbook_url": "https://runbooks.prometheus-operator.dev/runbooks/kubernetes/cputhrottlinghigh"}}, true
		}
	}
	switch s.kind {
	case kEdge, kHTTP:
		switch sym {
		case symErrors:
			if s.kind == kEdge && s.tier == 1 {
				return svcAlert("SLOErrorBudgetBurn", s.name, fmt.Sprintf(`slo:sli_error:ratio_rate1h{service=%q} > (14.4 * 0.001)`, s.name),
					fmt.Sprintf("%s is burning its availability error budget fast", s.name), 2*time.Minute, "slo", "availability", "long_window", "1h"), true
			}
			return svcAlert("HighErrorRate", s.name, fmt.Sprintf(`sum(rate(http_server_requests_total{service=%q,code=~"5.."}[5m])) / sum(rate(http_server_requests_total{service=%q}[5m])) > 0.05`, s.name, s.name),
				fmt.Sprintf("%s 5xx ratio above 5%%", s.name), 2*time.Minute), true
		case symLatency:
			return svcAlert("HighLatencyP99", s.name, fmt.Sprintf(`histogram_quantile(0.99, sum by (le) (rate(http_server_request_duration_seconds_bucket{service=%q}[5m]))) > 1`, s.name),
				fmt.Sprintf("%s p99 latency above 1s", s.name), 5*time.Minute), true
		case symTraffic:
			return svcAlert("RequestRateDrop", s.name, fmt.Sprintf(`sum(rate(http_server_requests_total{service=%q}[5m])) < 0.3 * sum(rate(http_server_requests_total{service=%q}[5m] offset 1w))`, s.name, s.name),
				fmt.Sprintf("%s receives far less traffic than a week ago", s.name), 5*time.Minute), true
		case symMemory:
			return svcAlert("ContainerMemoryNearLimit", s.name, fmt.Sprintf(`container_memory_working_set_bytes{container=%q} / container_spec_memory_limit_bytes > 0.9`, s.name),
				fmt.Sprintf("%s memory close to its limit", s.name), 10*time.Minute), true
		case symConn:
			return svcAlert("DBConnectionPoolExhausted", s.name, fmt.Sprintf(`hikaricp_connections_pending{service=%q} > 10`, s.name),
				fmt.Sprintf("%s waits for database connections", s.name), 3*time.Minute), true
		}
	case kWorker:
		switch sym {
		case symLag:
			return alertDef{labels: map[string]string{"alertname": "KafkaConsumerGroupLagHigh", "consumergroup": s.name, "topic": s.name + "-events",
				"job": "kafka-exporter", "namespace": "platform", "severity": "warning", "cluster": "prod-eu-west-1"},
				expr:   fmt.Sprintf(`sum(kafka_consumergroup_lag{consumergroup=%q}) by (consumergroup, topic) > 50000`, s.name),
				forDur: 10 * time.Minute,
				ann:    map[string]string{"summary": fmt.Sprintf("Consumer group %s is lagging", s.name), "description": "Consumer group lag above 50000 messages for 10 minutes."}}, true
		case symErrors:
			return svcAlert("JobFailuresHigh", s.name, fmt.Sprintf(`rate(job_failures_total{service=%q}[5m]) > 0.5`, s.name), fmt.Sprintf("%s jobs failing", s.name), 5*time.Minute), true
		}
	case kPostgres:
		inst := "instance"
		extra := []string{inst, s.name + "-0." + s.name + ":9187", "db_cluster", s.name}
		switch sym {
		case symConn:
			return svcAlert("PostgresTooManyConnections", "postgres-exporter", fmt.Sprintf(`sum(pg_stat_activity_count{service=%q}) / pg_settings_max_connections > 0.9`, s.name),
				fmt.Sprintf("%s is close to max_connections", s.name), 2*time.Minute, extra...), true
		case symLatency:
			return svcAlert("PostgresSlowQueries", "postgres-exporter", `avg(rate(pg_stat_statements_total_time_seconds[5m])) > 0.5`,
				fmt.Sprintf("%s queries are slow", s.name), 5*time.Minute, extra...), true
		case symLag:
			return svcAlert("PostgresReplicationLagHigh", "postgres-exporter", `pg_replication_lag_seconds > 60`,
				fmt.Sprintf("%s replica lags behind the primary", s.name), 2*time.Minute, extra...), true
		case symDisk:
			return svcAlert("PostgresDiskSpaceLow", "postgres-exporter", `pg_volume_available_bytes / pg_volume_size_bytes < 0.1`,
				fmt.Sprintf("%s volume nearly full", s.name), 5*time.Minute, extra...), true
		}
	case kRedis:
		extra := []string{"instance", s.name + "-master-0:9121"}
		switch sym {
		case symMemory:
			return svcAlert("RedisMemoryHigh", "redis-exporter", `redis_memory_used_bytes / redis_memory_max_bytes > 0.9`, fmt.Sprintf("%s memory above 90%%", s.name), 5*time.Minute, extra...), true
		case symErrors:
			return svcAlert("RedisRejectedConnections", "redis-exporter", `increase(redis_rejected_connections_total[1m]) > 0`, fmt.Sprintf("%s rejects connections", s.name), 0, extra...), true
		case symLatency:
			return svcAlert("RedisLatencyHigh", "redis-exporter", `redis_commands_duration_seconds_p99 > 0.05`, fmt.Sprintf("%s commands slow", s.name), 3*time.Minute, extra...), true
		}
	case kMemcached:
		if sym == symMemory {
			return svcAlert("MemcachedEvictionsHigh", "memcached-exporter", `rate(memcached_items_evicted_total[5m]) > 100`, fmt.Sprintf("%s evicting", s.name), 5*time.Minute), true
		}
	case kKafka:
		switch sym {
		case symLag:
			return svcAlert("KafkaUnderReplicatedPartitions", "kafka-exporter", `sum(kafka_topic_partition_under_replicated_partition) > 0`, "Kafka has under-replicated partitions", 5*time.Minute, "broker", fmt.Sprintf("kafka-%d", g.r.IntN(5))), true
		case symLatency:
			return svcAlert("KafkaProduceLatencyHigh", "kafka-exporter", `kafka_network_requestmetrics_totaltimems{request="Produce",quantile="0.99"} > 500`, "Kafka produce latency high", 3*time.Minute), true
		case symDisk:
			return svcAlert("KafkaBrokerDiskFilling", "node-exporter", `predict_linear(node_filesystem_avail_bytes{mountpoint="/var/lib/kafka"}[6h], 4*3600) < 0`, "Kafka broker disk filling up", 10*time.Minute, "broker", fmt.Sprintf("kafka-%d", g.r.IntN(5))), true
		}
	case kSearch:
		switch sym {
		case symMemory:
			return svcAlert("ElasticsearchHeapUsageHigh", "elasticsearch-exporter", `elasticsearch_jvm_memory_used_bytes{area="heap"} / elasticsearch_jvm_memory_max_bytes{area="heap"} > 0.9`, "Elasticsearch heap above 90%", 5*time.Minute), true
		case symErrors:
			return svcAlert("ElasticsearchClusterYellow", "elasticsearch-exporter", `elasticsearch_cluster_health_status{color="yellow"} == 1`, "Elasticsearch cluster is yellow", 5*time.Minute), true
		case symLatency:
			return svcAlert("ElasticsearchSearchLatencyHigh", "elasticsearch-exporter", `elasticsearch_search_latency_p99 > 2`, "Search latency high", 5*time.Minute), true
		}
	case kObject:
		if sym == symErrors {
			return svcAlert("ObjectStoreErrorRateHigh", "blackbox", `probe_success{job="blackbox",target="object-store"} == 0`, "Object store requests failing", 2*time.Minute), true
		}
	case kExternal:
		if sym == symErrors || sym == symLatency {
			return svcAlert("UpstreamProviderDegraded", s.name, fmt.Sprintf(`sum(rate(upstream_requests_total{service=%q,outcome!="ok"}[5m])) / sum(rate(upstream_requests_total{service=%q}[5m])) > 0.1`, s.name, s.name),
				fmt.Sprintf("third-party provider behind %s is failing", s.name), 3*time.Minute, "provider", providerOf(s.name)), true
		}
	case kWarehouse:
		if sym == symLatency {
			return svcAlert("WarehouseQueriesQueued", "warehouse-exporter", `warehouse_queued_queries > 40`, "Warehouse queue is long", 10*time.Minute), true
		}
	}
	return alertDef{}, false
}

func providerOf(s string) string {
	switch s {
	case "payment-gateway-proxy":
		return "adyen"
	case "shipping-carrier-proxy":
		return "dhl-express"
	case "sms-sender":
		return "twilio"
	case "smtp-relay":
		return "sendgrid"
	case "currency-rates":
		return "openexchangerates"
	}
	return "external"
}

// podName is a pod of a Deployment: name, ReplicaSet hash, pod suffix.
func (g *gen) podName(svc string) string {
	const letters = "bcdfghjklmnpqrstvwxz2456789"
	b := make([]byte, 0, 16)
	for i := 0; i < 10; i++ {
		b = append(b, letters[g.rsHash(svc, i)])
	}
	b = append(b, '-')
	for i := 0; i < 5; i++ {
		b = append(b, letters[g.r.IntN(len(letters))])
	}
	return svc + "-" + string(b)
}

// rsHash is the ReplicaSet hash of a service: fixed for the storm (good
// enough: pods differ by their suffix).
func (g *gen) rsHash(svc string, i int) int {
	h := fnv.New32a()
	fmt.Fprintf(h, "%d/%s/%d", g.seed, svc, i)
	return int(h.Sum32() % 27)
}

// templateID is a log template's id: 16 hex digits.
func templateID(svc, tmpl string) string {
	h := fnv.New64a()
	h.Write([]byte(svc))
	h.Write([]byte{0xff})
	h.Write([]byte(tmpl))
	return fmt.Sprintf("%016x", h.Sum64())
}

// causeTemplates are the log templates a service writes when a dependency
// of the given kind fails it.
func depTemplate(r *rand.Rand, dep *service) string {
	switch dep.kind {
	case kPostgres:
		return pick(r, []string{
			"ERROR could not acquire connection from pool " + dep.name + " within <*>ms",
			"ERROR pq: canceling statement due to statement timeout on " + dep.name,
			"FATAL dial tcp <*>:5432: connect: connection refused (" + dep.name + ")",
		})
	case kRedis, kMemcached:
		return pick(r, []string{
			"ERROR " + dep.name + ": i/o timeout after <*>ms",
			"WARN cache miss storm on " + dep.name + ", falling back to origin",
		})
	case kKafka:
		return pick(r, []string{
			"ERROR kafka: Failed to produce message to topic <*>: Broker: Request timed out",
			"ERROR kafka consumer: OFFSET_OUT_OF_RANGE on partition <*>",
		})
	case kExternal:
		return "ERROR upstream " + providerOf(dep.name) + " returned HTTP <*> for request <*>"
	}
	return pick(r, []string{
		"ERROR call to " + dep.name + " failed: context deadline exceeded after <*>ms",
		"ERROR call to " + dep.name + " failed: rpc error: code = Unavailable desc = <*>",
		"WARN circuit breaker for " + dep.name + " open, <*> requests rejected",
	})
}

var selfTemplates = []string{
	"ERROR java.lang.NullPointerException at <*>",
	"ERROR panic: runtime error: invalid memory address or nil pointer dereference [recovered] <*>",
	"ERROR failed to decode request body: json: cannot unmarshal <*> into Go struct field <*>",
	"ERROR unhandled exception in handler <*>: KeyError: <*>",
	"ERROR migration <*> not applied: relation <*> does not exist",
	"ERROR invalid configuration: key <*> is missing",
}

var noiseTemplates = []string{
	"WARN retrying request <*> (attempt <*> of 3)",
	"ERROR failed to refresh OAuth token for <*>: 401",
	"ERROR health check of <*> timed out",
	"WARN slow query took <*>ms: SELECT <*>",
	"ERROR context canceled while writing response to <*>",
	"ERROR GC overhead limit exceeded in worker <*>",
}

func pick[T any](r *rand.Rand, xs []T) T { return xs[r.IntN(len(xs))] }
