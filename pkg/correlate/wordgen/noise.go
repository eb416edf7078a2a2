package wordgen

import (
	"fmt"
	"hash/fnv"
	"time"
)

var cronJobs = []struct{ namespace, name string }{
	{"discovery", "catalog-reindex"}, {"web", "sitemap-export"}, {"commerce", "billing-reconcile"},
	{"content", "thumbnail-backfill"}, {"identity", "gdpr-erasure"}, {"data", "watch-stats-rollup"},
}

var pvcs = []struct{ namespace, name, owner string }{
	{"data", "data-identity-db-0", "identity-db"}, {"data", "data-catalog-db-1", "catalog-db"}, {"data", "data-cassandra-main-dc1-r2-sts-0", "cassandra-main"},
	{"kafka", "data-0-events-kafka-kafka-1", "events-kafka"}, {"monitoring", "prometheus-k8s-db-prometheus-k8s-0", ""}, {"data", "data-search-es-data-2", "search-elasticsearch"},
	{"content", "persistence-transcode-queue-server-1", "transcode-queue"},
}

var certs = []string{"https://partners." + domain + "/", "https://status." + domain + "/", "https://img." + domain + "/health", "https://tv-legacy." + domain + "/"}

// nodeIP is the address node-exporter is scraped at on a node.
func nodeIP(node string) string {
	var a, b, c, d int
	fmt.Sscanf(node, "ip-%d-%d-%d-%d", &a, &b, &c, &d)
	return fmt.Sprintf("%d.%d.%d.%d:9100", a, b, c, d)
}

// podSuffix is the stable suffix of the DaemonSet pod on node.
func podSuffix(node string) string {
	h := fnv.New32a()
	h.Write([]byte(node))
	x := h.Sum32()
	b := make([]byte, 5)
	for i := range b {
		b[i] = lowerAlnum[x%uint32(len(lowerAlnum))]
		x /= uint32(len(lowerAlnum))
	}
	return string(b)
}

func nodeExporterLabels(alertname, severity, node string) map[string]string {
	return map[string]string{"alertname": alertname, "severity": severity, "namespace": "monitoring", "job": "node-exporter", "service": nodeExpSvc,
		"endpoint": "http-metrics", "container": "node-exporter", "instance": nodeIP(node), "pod": "kube-prometheus-stack-prometheus-node-exporter-" + podSuffix(node)}
}

// noise fires unrelated alerts through the storm, and leaves Standing ones
// firing from before it: each one is an incident of its own, whatever
// else is going on at the time.
func (g *gen) noise() {
	for range g.cfg.Standing {
		g.nNoise++
		id := fmt.Sprintf("noise-%03d", g.nNoise)
		// Started up to a week ago; some are cleared during the storm.
		since := g.cfg.Start.Add(-g.between(10*time.Minute, 7*24*time.Hour))
		until := g.cfg.Start.Add(g.between(10*time.Minute, 10*time.Hour))
		for range 8 {
			if g.noiseAlert(id, since, until) != nil {
				break
			}
		}
	}
	for t := g.cfg.Start.Add(g.exp(g.cfg.NoiseGap)); t.Before(g.end); t = t.Add(g.exp(g.cfg.NoiseGap)) {
		g.nNoise++
		id := fmt.Sprintf("noise-%03d", g.nNoise)
		for range 8 {
			if g.noiseAlert(id, t, time.Time{}) != nil {
				break
			}
		}
	}
}

// symptomOf is what an alert that could be a symptom of trouble in c is
// about: c and what it calls.
func symptomOf(c *component) []string { return append([]string{c.name}, c.deps...) }

// noiseAlert fires one unrelated alert at t, until the given time or for
// as long as its kind lasts; nil when the one drawn is taken.
func (g *gen) noiseAlert(id string, t, until time.Time) *alert {
	apps := g.comps(func(c *component) bool { return c.kind == kindHTTP })
	c := pick(g, apps)
	var labels, a map[string]string
	var about []string // the components (or node) it is about
	// Every kind draws its own duration; this draw is kept only so the
	// calibrated seeds give the storms they were calibrated on.
	g.between(5*time.Minute, 20*time.Minute)
	var dur time.Duration
	flaps := false
	kind := g.r.IntN(14)
	if !until.IsZero() {
		kind = pick(g, []int{0, 1, 2, 3, 4, 5, 11, 13}) // the kinds that last
	}
	switch kind {
	case 0:
		node := pick(g, nodes)
		about = []string{"node:" + node}
		labels = nodeExporterLabels("NodeFilesystemSpaceFillingUp", "warning", node)
		labels["device"], labels["fstype"], labels["mountpoint"] = "/dev/nvme1n1", "xfs", "/var/lib/containerd"
		a = ann("Filesystem is predicted to run out of space within the next 24 hours.", "Filesystem on /dev/nvme1n1 at "+nodeIP(node)+" has only 14.2% available space left and is filling up.", "nodefilesystemspacefillingup")
		dur, flaps = g.between(40*time.Minute, 4*time.Hour), g.p(0.3)
	case 1:
		job := pick(g, cronJobs)
		labels = ksmLabels(job.namespace, "KubeJobFailed", "warning")
		labels["job_name"] = fmt.Sprintf("%s-%d", job.name, t.Unix()/60)
		a = ann("Job failed to complete.", "Job "+job.namespace+"/"+labels["job_name"]+" failed to complete. Removing failed job after investigation should clear this alert.", "kubejobfailed")
		dur = g.between(time.Hour, 3*time.Hour)
	case 2:
		pvc := pick(g, pvcs)
		about = []string{pvc.owner}
		labels = map[string]string{"alertname": "KubePersistentVolumeFillingUp", "severity": "warning", "namespace": pvc.namespace, "persistentvolumeclaim": pvc.name,
			"job": "kubelet", "service": kubeletSvc, "metrics_path": "/metrics", "endpoint": "https-metrics"}
		a = ann("PersistentVolume is filling up.", "Based on recent sampling, the PersistentVolume claimed by "+pvc.name+" in Namespace "+pvc.namespace+" is expected to fill up within four days.", "kubepersistentvolumefillingup")
		dur = g.between(time.Hour, 5*time.Hour)
	case 3:
		url := pick(g, certs)
		labels = map[string]string{"alertname": "BlackboxSslCertificateWillExpireSoon", "severity": "warning", "namespace": "monitoring", "job": "blackbox-exporter", "module": "http_2xx", "instance": url}
		a = ann("SSL certificate will expire soon", "SSL certificate of "+url+" expires in 13 days.", "ssl-certificate-expiry")
		dur = 24 * time.Hour
	case 4:
		about = []string{c.name}
		labels = map[string]string{"alertname": "CPUThrottlingHigh", "severity": "warning", "namespace": c.namespace, "container": c.name, "pod": g.pod(c),
			"job": "kubelet", "service": kubeletSvc, "metrics_path": "/metrics/cadvisor", "endpoint": "https-metrics"}
		a = ann("Processes experience elevated CPU throttling.", fmt.Sprintf("%d%% throttling of CPU in namespace %s for container %s in pod %s.", 26+g.r.IntN(50), c.namespace, c.name, labels["pod"]), "cputhrottlinghigh")
		dur, flaps = g.between(15*time.Minute, time.Hour), g.p(0.5)
	case 5:
		about = symptomOf(c)
		labels = ksmLabels(c.namespace, "KubeHpaMaxedOut", "warning")
		labels["horizontalpodautoscaler"] = c.name
		a = ann("HPA is running at max replicas", fmt.Sprintf("HPA %s/%s has been running at max replicas for longer than 15 minutes.", c.namespace, c.name), "kubehpamaxedout")
		dur = g.between(15*time.Minute, time.Hour)
	case 6, 7:
		about = symptomOf(c)
		labels = httpLabels(c, "HTTPLatencyHigh", "warning", "")
		a = ann(c.name+": p99 latency above SLO", fmt.Sprintf("p99 latency of %s is %.2fs (objective 0.8s).", c.name, 0.85+g.r.Float64()), "http-latency")
		dur, flaps = g.between(3*time.Minute, 10*time.Minute), g.p(0.4)
	case 8:
		cons := g.est.byName[pick(g, []string{"qoe-analytics", "notification-service"})]
		about = symptomOf(cons)
		labels = map[string]string{"alertname": "KafkaConsumerGroupLagHigh", "severity": "warning", "namespace": "kafka", "service": "events-kafka-exporter",
			"job": "kafka-exporter", "instance": "events-kafka-kafka-exporter-6c8f9d7b5-p4x7t:9404", "consumergroup": cons.name, "topic": cons.topic}
		a = ann("Kafka consumer group lag", fmt.Sprintf("Consumer group %s lags %d messages on %s.", cons.name, 50000+g.r.IntN(200000), cons.topic), "kafka-consumer-lag")
		dur = g.between(5*time.Minute, 20*time.Minute)
	case 9:
		about = []string{c.name}
		labels = map[string]string{"alertname": "TargetDown", "severity": "warning", "namespace": c.namespace, "job": c.name, "service": c.name}
		a = ann("One or more targets are unreachable.", fmt.Sprintf("%d%% of the %s/%s targets in %s namespace are down.", 100/c.replicas, c.name, c.name, c.namespace), "targetdown")
		dur = g.between(10*time.Minute, 25*time.Minute)
	case 10:
		node := pick(g, nodes)
		about = []string{"node:" + node}
		labels = nodeExporterLabels("NodeClockNotSynchronising", "warning", node)
		a = ann("Clock not synchronising.", "Clock at "+nodeIP(node)+" is not synchronising. Ensure NTP is configured on this host.", "nodeclocknotsynchronising")
		dur = g.between(10*time.Minute, 40*time.Minute)
	case 11:
		db := pick(g, []string{"identity-db", "subscriptions-db", "entitlements-db", "catalog-db"})
		about = []string{db}
		labels = map[string]string{"alertname": "PostgresqlTooManyDeadTuples", "severity": "warning", "namespace": "data", "service": db + "-metrics",
			"job": "postgres-exporter", "instance": db + "-0." + db + "-hl.data.svc:9187", "server": db + "-0", "datname": db[:len(db)-3]}
		a = ann("Postgresql too many dead tuples", "PostgreSQL dead tuples are too large on "+db+".", "postgresql-dead-tuples")
		dur = g.between(30*time.Minute, 2*time.Hour)
	case 12:
		about = []string{"media-storage"}
		labels = map[string]string{"alertname": "CephHealthWarning", "severity": "warning", "namespace": "rook-ceph", "service": "rook-ceph-mgr", "job": "rook-ceph-mgr", "managedBy": "rook-ceph"}
		a = ann("Ceph is in the WARNING state", "The cluster state has been HEALTH_WARN for more than 15 minutes (deep scrub running late).", "ceph-health-warning")
		dur = g.between(10*time.Minute, 30*time.Minute)
	default:
		if c.tier > 2 {
			return nil
		}
		about = symptomOf(c)
		labels = sloLabels(c, "warning", "6h", "30m")
		a = ann(c.name+"-availability: error budget burning", "The availability objective 99.9% is burning 6x its budget (6h and 30m windows).", "error-budget-burn")
		dur = g.between(30*time.Minute, 90*time.Minute)
	}
	if g.taken(id, labels) {
		return nil
	}
	eps := []episode{{t, t.Add(dur)}}
	if !until.IsZero() {
		eps[0].end = until
	}
	// Noise looks like nothing an incident going on at the time on the
	// same component (or node) would raise: else its truth would be
	// arguable.
	from := t
	if from.Before(g.cfg.Start) {
		from = g.cfg.Start
	}
	h := hold{from: from, to: eps[0].end.Add(10 * time.Minute), comps: map[string]bool{}}
	for _, c := range about {
		if c != "" {
			h.comps[c] = true
		}
	}
	if !g.free(h) {
		return nil
	}
	if until.IsZero() && flaps {
		eps = eps[:0]
		for s := t; s.Before(t.Add(dur)) || len(eps) < 3; {
			e := s.Add(g.between(time.Minute, 4*time.Minute))
			eps = append(eps, episode{s, e})
			s = e.Add(g.between(time.Minute, 5*time.Minute))
		}
	}
	return g.add(id, labels, a, eps...)
}
