package scenario

import (
	"fmt"
	"hash/fnv"
	"math"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Alert names the generator uses.
const (
	HighLatency             = "HighLatency"
	HighErrorRate           = "HighErrorRate"
	PodCrashLooping         = "PodCrashLooping"
	OOMKilled               = "OOMKilled"
	KubePodNotReady         = "KubePodNotReady"
	HighCPU                 = "HighCPU"
	HighMemoryUsage         = "HighMemoryUsage"
	DiskFull                = "DiskFull"
	ConnectionPoolExhausted = "ConnectionPoolExhausted"
	CircuitBreakerOpen      = "CircuitBreakerOpen"
	ReplicationLag          = "ReplicationLag"
	QueueBacklog            = "QueueBacklog"
	CertificateExpiry       = "CertificateExpiry"
	TargetDown              = "TargetDown"
	SlowQueries             = "SlowQueries"
	TooManyConnections      = "TooManyConnections"
	UnderReplicatedParts    = "KafkaUnderReplicatedPartitions"
	ClusterHealthRed        = "ElasticsearchClusterRed"
	SLOBurnRate             = "SLOErrorBudgetBurn"
)

// AlertNames lists every alert name the generator may emit.
var AlertNames = []string{
	HighLatency, HighErrorRate, PodCrashLooping, OOMKilled, KubePodNotReady, HighCPU,
	HighMemoryUsage, DiskFull, ConnectionPoolExhausted, CircuitBreakerOpen, ReplicationLag,
	QueueBacklog, CertificateExpiry, TargetDown, SlowQueries, TooManyConnections,
	UnderReplicatedParts, ClusterHealthRed, SLOBurnRate,
}

// span is one firing interval of an alert; end after the horizon means
// the alert is still firing when the scenario ends.
type span struct{ start, end time.Time }

// genAlert is one alert (one label set, one fingerprint) and its life.
type genAlert struct {
	labels       map[string]string
	fp           string
	service      string
	team         string // the route its notifications take
	summary      string
	describe     func(v float64) string
	value        float64 // the value the description quotes, jittered per notification
	extra        map[string]string
	generatorURL string
	spans        []span
	label        string // the true incident
}

// alertCtx is what an alert is about beyond its service.
type alertCtx struct {
	target string // the dependency a symptom points at (pool, upstream, topic)
	rsHash string // pod-template hash (a deploy makes new pods)
}

// clusterName is the one cluster every alert comes from.
const clusterName = "prod-eu-west-1"

var storePorts = map[string]int{
	"postgres": 9187, "mysql": 9104, "redis": 9121, "kafka": 9308,
	"rabbitmq": 15692, "elasticsearch": 9114,
}

// pod is one pod name of s: service-hash-suffix, as a Deployment names them.
func (g *gen) pod(s *svcInfo, ctx alertCtx) string {
	h := s.rsHash
	if ctx.rsHash != "" {
		h = ctx.rsHash
	}
	return s.name + "-" + h + "-" + randomAlnum(g.r, 5, podAlphabet)
}

// instance is a scrape target of s: a data store's member with its
// exporter port, or a pod IP for a service.
func (g *gen) instance(s *svcInfo) string {
	if s.layer == layerData {
		return fmt.Sprintf("%s-%d.%s.data.svc:%d", s.name, g.r.IntN(3), s.name, storePorts[s.store])
	}
	return fmt.Sprintf("10.%d.%d.%d:8080", 20+g.r.IntN(12), g.r.IntN(256), 2+g.r.IntN(250))
}

// topicOf names the topic or queue a queue alert is about.
func topicOf(target string, consumer string) string {
	base := strings.TrimSuffix(strings.TrimSuffix(target, "-kafka"), "-rabbitmq")
	noun := strings.Split(consumer, "-")[0]
	return base + "." + noun + ".v1"
}

// newAlert builds an alert of the given name on s, unique in the scenario:
// a label set already used (by this or another incident) is drawn again
// with other pods, endpoints or instances, and as a last resort gets a
// "replica" label, so that every fingerprint belongs to one true incident.
func (g *gen) newAlert(name string, s *svcInfo, sev string, ctx alertCtx, label string) *genAlert {
	var a *genAlert
	for try := 0; ; try++ {
		a = g.drawAlert(name, s, sev, ctx)
		if try >= 12 {
			a.labels["replica"] = strconv.Itoa(try)
		}
		a.fp = AlertFingerprint(a.labels)
		if !g.usedFP[a.fp] {
			break
		}
	}
	g.usedFP[a.fp] = true
	a.label = label
	a.service = s.name
	a.team = s.team
	if g.r.Float64() < 0.6 {
		a.extra["runbook_url"] = g.topo.catalog.Services[s.name].Runbook + "#" + strings.ToLower(name)
	}
	if g.r.Float64() < 0.4 {
		a.extra["dashboard"] = fmt.Sprintf("https://grafana.example.com/d/%s/%s?var-service=%s", randomAlnum(g.r, 9, hexLower), s.team, s.name)
	}
	g.alerts = append(g.alerts, a)
	return a
}

// ruleVariant picks, per team and alert name, which wording the team's
// rule uses: teams write their own rules.
func (g *gen) ruleVariant(team, name string, n int) int {
	h := fnv.New32a()
	h.Write([]byte(team + "\xff" + name))
	return int((h.Sum32() ^ uint32(g.salt)) % uint32(n))
}

func (g *gen) drawAlert(name string, s *svcInfo, sev string, ctx alertCtx) *genAlert {
	r := g.r
	l := map[string]string{
		"alertname": name,
		"service":   s.name,
		"severity":  sev,
		"namespace": s.namespace,
		"cluster":   clusterName,
	}
	if g.teamLabel[name] {
		l["team"] = s.team
	}
	a := &genAlert{labels: l, extra: map[string]string{}}
	v := g.ruleVariant(s.team, name, 3)
	svc := s.name
	endpoint := ""
	if len(s.endpoints) > 0 {
		endpoint = s.endpoints[r.IntN(len(s.endpoints))]
	}
	var expr string
	switch name {
	case HighLatency:
		threshold := []float64{0.5, 1, 2}[r.IntN(3)]
		if s.layer == layerData {
			threshold = []float64{0.01, 0.05, 0.1}[r.IntN(3)]
			l["instance"] = g.instance(s)
		} else if endpoint != "" && r.Float64() < 0.7 {
			l["endpoint"] = endpoint
		}
		a.value = threshold * (1.5 + 3*r.Float64())
		where := svc
		if e := l["endpoint"]; e != "" {
			where = svc + " " + e
		}
		a.summary = []string{
			"High latency on " + where,
			svc + " p99 latency above SLO",
			"Latency SLO at risk for " + svc,
		}[v]
		a.describe = func(x float64) string {
			return []string{
				fmt.Sprintf("p99 latency of %s is %.2fs, above the %gs threshold for 5 minutes.", where, x, threshold),
				fmt.Sprintf("99th percentile request duration on %s = %.3fs (threshold %gs).", where, x, threshold),
				fmt.Sprintf("Requests to %s are slow: p99 %.2fs over the last 5m (limit %gs).", where, x, threshold),
			}[v]
		}
		expr = fmt.Sprintf(`histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{service=%q}[5m]))) > %g`, svc, threshold)
	case HighErrorRate, SLOBurnRate:
		if endpoint != "" && r.Float64() < 0.5 {
			l["endpoint"] = endpoint
		}
		threshold := []float64{1, 2, 5}[r.IntN(3)]
		a.value = threshold * (1.2 + 6*r.Float64())
		if name == SLOBurnRate {
			l["slo"] = []string{"availability", "latency"}[r.IntN(2)]
			l["window"] = []string{"1h", "6h"}[r.IntN(2)]
			a.value = 2 + 12*r.Float64()
			a.summary = fmt.Sprintf("%s is burning its %s error budget", svc, l["slo"])
			a.describe = func(x float64) string {
				return fmt.Sprintf("%s SLO of %s burns error budget %.1fx faster than sustainable over %s.", l["slo"], svc, x, l["window"])
			}
			expr = fmt.Sprintf(`slo:sli_error:ratio_rate%s{service=%q} > (14.4 * 0.001)`, l["window"], svc)
			break
		}
		where := svc
		if e := l["endpoint"]; e != "" {
			where = svc + " " + e
		}
		a.summary = []string{
			"High error rate on " + where,
			svc + " is returning errors",
			"5xx ratio above " + strconv.FormatFloat(threshold, 'g', -1, 64) + "% on " + svc,
		}[v]
		a.describe = func(x float64) string {
			return []string{
				fmt.Sprintf("%.1f%% of requests to %s failed over the last 5 minutes (threshold %g%%).", x, where, threshold),
				fmt.Sprintf("Error ratio of %s is %.2f%%.", where, x),
				fmt.Sprintf("%s: %.1f%% 5xx responses, SLO allows %g%%.", where, x, threshold),
			}[v]
		}
		expr = fmt.Sprintf(`sum(rate(http_requests_total{service=%q,code=~"5.."}[5m])) / sum(rate(http_requests_total{service=%q}[5m])) * 100 > %g`, svc, svc, threshold)
	case PodCrashLooping, OOMKilled, KubePodNotReady:
		pod := g.pod(s, ctx)
		l["pod"] = pod
		if name != KubePodNotReady {
			l["container"] = svc
			if r.Float64() < 0.08 {
				l["container"] = "istio-proxy"
			}
		}
		a.value = float64(3 + r.IntN(12))
		switch name {
		case PodCrashLooping:
			a.summary = []string{"Pod " + pod + " is crash looping", svc + " pod restarting repeatedly", "CrashLoopBackOff in " + svc}[v]
			a.describe = func(x float64) string {
				return fmt.Sprintf("Pod %s/%s (container %s) restarted %.0f times in the last 15 minutes.", s.namespace, pod, l["container"], x)
			}
			expr = fmt.Sprintf(`increase(kube_pod_container_status_restarts_total{namespace=%q,pod=%q}[15m]) > 3`, s.namespace, pod)
		case OOMKilled:
			a.summary = "Container " + l["container"] + " in " + pod + " was OOM killed"
			a.describe = func(x float64) string {
				return fmt.Sprintf("%s was killed for exceeding its memory limit (%.0f times in 1h).", pod, math.Max(1, x/3))
			}
			expr = fmt.Sprintf(`kube_pod_container_status_last_terminated_reason{reason="OOMKilled",pod=%q} == 1`, pod)
		default:
			a.summary = "Pod " + pod + " not ready"
			a.describe = func(float64) string {
				return fmt.Sprintf("Pod %s/%s has been in a non-ready state for longer than 5 minutes.", s.namespace, pod)
			}
			expr = fmt.Sprintf(`kube_pod_status_ready{condition="false",pod=%q} == 1`, pod)
		}
	case HighCPU, HighMemoryUsage:
		what := "CPU"
		if name == HighMemoryUsage {
			what = "memory"
		}
		if s.layer == layerData {
			l["instance"] = g.instance(s)
		} else {
			l["pod"] = g.pod(s, ctx)
		}
		target := l["instance"] + l["pod"]
		a.value = 85 + 14*r.Float64()
		a.summary = []string{"High " + what + " usage on " + svc, what + " saturation on " + target, svc + " " + what + " above 85%"}[v]
		a.describe = func(x float64) string {
			return fmt.Sprintf("%s usage of %s is %.0f%% (threshold 85%%).", what, target, math.Min(x, 99.9))
		}
		expr = fmt.Sprintf(`container_%s_usage_ratio{service=%q} > 0.85`, strings.ToLower(what), svc)
	case DiskFull:
		if s.layer == layerData {
			l["instance"] = g.instance(s)
			l["mountpoint"] = "/var/lib/" + s.store
		} else {
			l["instance"] = g.instance(s)
			l["mountpoint"] = []string{"/", "/var/log", "/data"}[r.IntN(3)]
		}
		l["device"] = []string{"/dev/nvme1n1", "/dev/sdb", "/dev/xvdf"}[r.IntN(3)]
		a.value = 90 + 9.5*r.Float64()
		if sev != "critical" {
			a.value = 80 + 9*r.Float64()
		}
		a.summary = []string{"Disk almost full on " + l["instance"], svc + " is running out of disk space", "Filesystem " + l["mountpoint"] + " filling up on " + svc}[v]
		a.describe = func(x float64) string {
			return fmt.Sprintf("%s on %s is %.1f%% full.", l["mountpoint"], l["instance"], math.Min(x, 99.9))
		}
		expr = fmt.Sprintf(`(1 - node_filesystem_avail_bytes{mountpoint=%q} / node_filesystem_size_bytes) * 100 > 85`, l["mountpoint"])
	case ConnectionPoolExhausted:
		l["pod"] = g.pod(s, ctx)
		pool := ctx.target
		if pool == "" {
			pool = "default"
		}
		l["pool"] = pool
		a.value = float64(50 + 50*r.IntN(4))
		a.summary = []string{"Connection pool to " + pool + " exhausted on " + svc, svc + ": no free connections to " + pool, "DB pool saturation in " + svc}[v]
		a.describe = func(x float64) string {
			return fmt.Sprintf("All %.0f connections of pool %s are in use on %s; requests wait for a connection.", x, pool, l["pod"])
		}
		expr = fmt.Sprintf(`db_pool_connections_in_use{service=%q,pool=%q} / db_pool_connections_max >= 1`, svc, pool)
	case CircuitBreakerOpen:
		if r.Float64() < 0.6 {
			l["pod"] = g.pod(s, ctx)
		}
		up := ctx.target
		if up == "" {
			up = "unknown"
		}
		l["upstream"] = up
		a.value = float64(20 + r.IntN(80))
		a.summary = "Circuit breaker to " + up + " open in " + svc
		a.describe = func(x float64) string {
			return fmt.Sprintf("%s stopped calling %s after %.0f%% of calls failed.", svc, up, math.Min(x, 100))
		}
		expr = fmt.Sprintf(`resilience4j_circuitbreaker_state{service=%q,name=%q,state="open"} == 1`, svc, up)
	case ReplicationLag:
		l["instance"] = fmt.Sprintf("%s-%d.%s.data.svc:%d", svc, 1+r.IntN(2), svc, storePorts[s.store])
		a.value = 30 + 600*r.Float64()
		a.summary = []string{"Replication lag on " + svc, svc + " replica is behind the primary", "Replica " + l["instance"] + " lagging"}[v]
		a.describe = func(x float64) string {
			return fmt.Sprintf("Replica %s is %.0f seconds behind its primary.", l["instance"], x)
		}
		expr = `pg_replication_lag_seconds > 30`
	case QueueBacklog:
		topic := topicOf(ctx.target, svc)
		if s.layer == layerData {
			topic = strings.Split(svc, "-")[0] + "." + []string{"created", "updated", "events"}[r.IntN(3)] + ".v1"
		}
		l["topic"] = topic
		l["consumer_group"] = svc
		a.value = float64(5000 + r.IntN(200000))
		a.summary = []string{"Backlog growing on " + topic, svc + " is not keeping up with " + topic, "Consumer lag on " + topic}[v]
		a.describe = func(x float64) string {
			return fmt.Sprintf("Consumer group %s is %.0f messages behind on %s.", svc, x, topic)
		}
		expr = fmt.Sprintf(`sum(kafka_consumergroup_lag{consumergroup=%q,topic=%q}) > 5000`, svc, topic)
	case CertificateExpiry:
		l["secret"] = svc + []string{"-tls", "-mtls", "-internal-tls", "-grpc-tls"}[r.IntN(4)]
		a.value = float64(1 + r.IntN(20))
		if sev == "critical" {
			a.value = 0
		}
		a.summary = "TLS certificate of " + svc + " expires soon"
		if sev == "critical" {
			a.summary = "TLS certificate of " + svc + " has expired"
		}
		a.describe = func(x float64) string {
			if x <= 0 {
				return fmt.Sprintf("Certificate in secret %s/%s is expired; clients fail the TLS handshake.", s.namespace, l["secret"])
			}
			return fmt.Sprintf("Certificate in secret %s/%s expires in %.0f days.", s.namespace, l["secret"], x)
		}
		expr = fmt.Sprintf(`certmanager_certificate_expiration_timestamp_seconds{name=%q} - time() < 21 * 86400`, l["secret"])
	case TargetDown:
		l["instance"] = g.instance(s)
		l["job"] = svc
		a.value = 100 * float64(1+r.IntN(3)) / 3
		a.summary = []string{"Target " + l["instance"] + " is down", svc + " scrape target unreachable", "Prometheus cannot scrape " + svc}[v]
		a.describe = func(x float64) string {
			return fmt.Sprintf("%.0f%% of the %s targets are down.", x, svc)
		}
		expr = fmt.Sprintf(`up{job=%q} == 0`, svc)
	case SlowQueries:
		l["instance"] = g.instance(s)
		l["datname"] = strings.TrimSuffix(svc, "-db")
		a.value = 2 + 20*r.Float64()
		a.summary = "Slow queries on " + svc
		a.describe = func(x float64) string {
			return fmt.Sprintf("Mean query time on %s database %s is %.1fs.", l["instance"], l["datname"], x)
		}
		expr = `rate(pg_stat_statements_total_time_seconds[5m]) / rate(pg_stat_statements_calls[5m]) > 1`
	case TooManyConnections:
		l["instance"] = g.instance(s)
		a.value = 90 + 10*r.Float64()
		a.summary = svc + " is close to max_connections"
		a.describe = func(x float64) string {
			return fmt.Sprintf("%s uses %.0f%% of max_connections.", l["instance"], math.Min(x, 100))
		}
		expr = `sum(pg_stat_activity_count) / pg_settings_max_connections > 0.9`
	case UnderReplicatedParts:
		l["instance"] = g.instance(s)
		l["topic"] = strings.Split(svc, "-")[0] + ".events.v1"
		a.value = float64(1 + r.IntN(40))
		a.summary = "Under-replicated partitions on " + svc
		a.describe = func(x float64) string {
			return fmt.Sprintf("%.0f partitions of %s are under-replicated on %s.", x, l["topic"], l["instance"])
		}
		expr = `kafka_topic_partition_under_replicated_partition > 0`
	case ClusterHealthRed:
		l["instance"] = g.instance(s)
		a.value = float64(1 + r.IntN(12))
		a.summary = "Elasticsearch cluster " + svc + " is red"
		a.describe = func(x float64) string {
			return fmt.Sprintf("%.0f primary shards of %s are unassigned.", x, svc)
		}
		expr = `elasticsearch_cluster_health_status{color="red"} == 1`
	default:
		panic("scenario: unknown alert name " + name)
	}
	a.generatorURL = "http://prometheus-k8s-0.monitoring.svc:9090/graph?g0.expr=" + url.QueryEscape(expr) + "&g0.tab=1"
	return a
}

// annotations are an alert's annotations at notification time at: the
// description quotes the value as it was then (Prometheus re-renders
// annotations on every evaluation, so they change while the labels and
// the fingerprint stay).
func (a *genAlert) annotations(at time.Time) map[string]string {
	h := fnv.New64a()
	h.Write([]byte(a.fp))
	h.Write([]byte(at.UTC().Format(time.RFC3339)))
	u := float64(h.Sum64()%2001)/1000 - 1 // in [-1,1]
	out := make(map[string]string, 2+len(a.extra))
	out["summary"] = a.summary
	out["description"] = a.describe(a.value * (1 + 0.15*u))
	for k, v := range a.extra {
		out[k] = v
	}
	return out
}

// rootAlerts are what a failing service itself fires.
func rootAlerts(s *svcInfo) []string {
	switch s.store {
	case "postgres", "mysql":
		return []string{ReplicationLag, DiskFull, SlowQueries, TooManyConnections, HighCPU, TargetDown}
	case "redis":
		return []string{HighMemoryUsage, HighLatency, TargetDown, HighCPU}
	case "kafka":
		return []string{UnderReplicatedParts, DiskFull, TargetDown, HighLatency}
	case "rabbitmq":
		return []string{QueueBacklog, HighMemoryUsage, TargetDown, DiskFull}
	case "elasticsearch":
		return []string{ClusterHealthRed, HighLatency, DiskFull, HighCPU}
	}
	return []string{PodCrashLooping, HighErrorRate, HighLatency, OOMKilled, KubePodNotReady, HighCPU}
}

// deployAlerts are what a bad change makes a service fire.
func deployAlerts(s *svcInfo, kind string) []string {
	if s.layer == layerData {
		return []string{TooManyConnections, SlowQueries, HighLatency, HighCPU}
	}
	if kind == ChangeFeatureFlag {
		return []string{HighErrorRate, HighLatency, HighErrorRate, SLOBurnRate}
	}
	return []string{HighErrorRate, PodCrashLooping, HighLatency, OOMKilled, KubePodNotReady}
}

// symptomAlerts are what a service fires when cause, a service it depends
// on (directly when direct), is failing.
func symptomAlerts(s, cause *svcInfo, direct bool) []string {
	var out []string
	if direct {
		switch cause.store {
		case "postgres", "mysql":
			out = append(out, ConnectionPoolExhausted, ConnectionPoolExhausted)
		case "kafka", "rabbitmq":
			out = append(out, QueueBacklog, QueueBacklog)
		case "redis", "elasticsearch":
			out = append(out, HighLatency)
		case "":
			out = append(out, CircuitBreakerOpen)
		}
	}
	out = append(out, HighLatency, HighLatency, HighErrorRate, HighErrorRate)
	if s.layer <= layerAPI {
		out = append(out, SLOBurnRate)
	}
	if s.layer != layerData {
		out = append(out, KubePodNotReady)
	}
	return out
}

// localAlerts are the failures that stay on one service.
func localAlerts(s *svcInfo) []string {
	if s.layer == layerData {
		return []string{DiskFull, HighCPU, HighMemoryUsage, TargetDown, ReplicationLag}
	}
	return []string{PodCrashLooping, OOMKilled, CertificateExpiry, DiskFull, HighCPU, HighMemoryUsage, TargetDown}
}

// noiseAlerts are what fires on its own now and then.
func noiseAlerts(s *svcInfo) []string {
	if s.layer == layerData {
		return []string{HighCPU, HighLatency, DiskFull, TargetDown, HighMemoryUsage, SlowQueries}
	}
	return []string{HighLatency, HighErrorRate, HighCPU, PodCrashLooping, KubePodNotReady, OOMKilled, HighMemoryUsage, TargetDown, CertificateExpiry}
}
