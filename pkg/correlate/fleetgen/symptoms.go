package fleetgen

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// This file holds the vocabulary of incidents: the alert makers (one per
// label convention, drawing the per-incident-fresh labels) and the
// symptoms a service shows when it fails, slows down or backs up.

func (g *generator) randString(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = podAlphabet[g.rng.IntN(len(podAlphabet))]
	}
	return string(b)
}

// podName is a fresh Deployment pod: <deployment>-<replicaset>-<suffix>.
func (g *generator) podName(s *service) string {
	return s.name + "-" + g.randString(9+g.rng.IntN(2)) + "-" + g.randString(5)
}

// replicaSet is a fresh ReplicaSet prefix, for several pods of one rollout.
func (g *generator) replicaSet(s *service) string {
	return s.name + "-" + g.randString(9+g.rng.IntN(2))
}

// node is a worker node; Karpenter replaces nodes all day, so node names
// are fresh per incident.
type node struct{ name, ip, zone string }

func (g *generator) node(regionName string) node {
	r := regionNamed(regionName)
	ip := fmt.Sprintf("10.%d.%d.%d", r.octet, g.rng.IntN(64), 1+g.rng.IntN(254))
	return node{"ip-" + strings.ReplaceAll(ip, ".", "-") + "." + r.name + ".compute.internal", ip, pick(g, r.zones)}
}

func (g *generator) handler(s *service) string {
	n := s.noun
	return pick(g, []string{
		"GET /v1/" + n, "POST /v1/" + n, "GET /v1/" + n + "/:id", "PATCH /v1/" + n + "/:id",
		"DELETE /v1/" + n + "/:id", "GET /v1/" + n + "/:id/history", "POST /v1/" + n + "/:id/actions", "GET /internal/" + n + "/batch",
	})
}

// app raises a team rule: service=<svc> with the rule's dimensions. The
// PrometheusRule lives in the team's namespace, so the operator enforces
// namespace, and the chart adds team.
func (in *incident) app(key string, s *service, region string, kv ...string) *alert {
	a := in.g.newAlert(key, s, region)
	for i := 0; i+1 < len(kv); i += 2 {
		a.labels[kv[i]] = kv[i+1]
	}
	if key == "HighErrorRate" || key == "HighLatencyP99" {
		a.labels["handler"] = in.g.handler(s)
		a.vary = func(a *alert) { a.labels["handler"] = in.g.handler(s) }
	}
	return in.raise(a)
}

// targetDown is kube-prometheus-stack's TargetDown for an application's
// scrape target: job, namespace and service are its Kubernetes Service's.
func (in *incident) targetDown(s *service, region string) *alert {
	a := in.g.newAlert("TargetDown", s, region)
	delete(a.labels, "team")
	a.labels["job"] = s.name
	return in.raise(a)
}

func (in *incident) sloth(key string, s *service, region string) *alert {
	return in.raise(in.g.newAlert(key, s, region))
}

func (in *incident) mesh(key string, s *service, region string) *alert {
	a := in.g.newAlert(key, s, region)
	a.labels["namespace"] = "istio-system"
	return in.raise(a)
}

func (in *incident) lag(s *service, region string, critical bool) *alert {
	key := "KafkaConsumerGroupLag"
	if critical {
		key += ":crit"
	}
	return in.raise(in.g.newAlert(key, s, region))
}

// workload raises a kube-state-metrics rule about a whole workload:
// label is deployment, statefulset or horizontalpodautoscaler.
func (in *incident) workload(key string, s *service, region, label string) *alert {
	a := in.g.newAlert(key, s, region)
	a.labels[label] = s.name
	return in.raise(a)
}

// aggregated lists the pod rules whose expression aggregates away the
// scrape target's labels, keeping only these.
var aggregated = map[string][]string{
	"KubePodNotReady":      {"namespace", "pod"},
	"KubeContainerWaiting": {"namespace", "pod", "container"},
	"CPUThrottlingHigh":    {"namespace", "pod", "container"},
}

// pod raises a rule about one pod of s (kube-state-metrics or kubelet),
// pod "" drawing a fresh one; n is the node it runs on, for kubelet rules.
func (in *incident) pod(key string, s *service, region, pod string, n node) *alert {
	g := in.g
	a := g.newAlert(key, s, region)
	fresh := pod == ""
	if fresh {
		pod = g.podName(s)
	}
	a.labels["pod"], a.labels["container"] = pod, s.name
	if a.rule.conv == convKubelet {
		a.labels["node"], a.labels["instance"] = n.name, n.ip+":10250"
	}
	if keep, ok := aggregated[a.rule.name]; ok {
		for l := range a.labels {
			if !slices.Contains(keep, l) && !slices.Contains([]string{"alertname", "severity", "cluster", "region", "prometheus"}, l) {
				delete(a.labels, l)
			}
		}
	}
	if fresh {
		a.vary = func(a *alert) { a.labels["pod"] = g.podName(s) }
	}
	return in.raise(a)
}

// replicas is how many pods a datastore's StatefulSet has.
func replicas(s *service) int {
	if s.kind == kindKafka {
		return 6
	}
	return 3
}

func statefulPod(s *service, ordinal int) string {
	if s.kind == kindKafka {
		return fmt.Sprintf("%s-kafka-%d", s.name, ordinal)
	}
	return fmt.Sprintf("%s-%d", s.name, ordinal)
}

var exporterPort = map[kind]string{
	kindPostgres: "9187", kindRedis: "9121", kindKafka: "9404", kindRabbit: "15692",
	kindSearch: "9114", kindClickhouse: "9363", kindVault: "8200", kindMesh: "15014",
}

// exporter raises a datastore exporter rule on pod ordinal of s.
func (in *incident) exporter(key string, s *service, region string, ordinal int, kv ...string) *alert {
	a := in.g.newAlert(key, s, region)
	for i := 0; i+1 < len(kv); i += 2 {
		a.labels[kv[i]] = kv[i+1]
	}
	set := func(a *alert, ordinal int) {
		p := statefulPod(s, ordinal)
		if s.kind == kindMesh {
			p = "istiod-" + stableSuffix(a.labels["cluster"]+"istiod", 10) + "-" + stableSuffix(a.labels["cluster"]+"istiod"+fmt.Sprint(ordinal), 5)
		}
		a.labels["pod"] = p
		a.labels["instance"] = stableIP(a.labels["cluster"]+p, region) + ":" + exporterPort[s.kind]
	}
	set(a, ordinal)
	a.vary = func(a *alert) {
		ordinal = (ordinal + 1) % replicas(s)
		set(a, ordinal)
	}
	return in.raise(a)
}

// volume raises KubePersistentVolumeFillingUp for a datastore's volume.
func (in *incident) volume(key string, s *service, region string, ordinal int, n node) *alert {
	a := in.g.newAlert(key, s, region)
	a.labels["persistentvolumeclaim"] = "data-" + statefulPod(s, ordinal)
	a.labels["node"], a.labels["instance"], a.labels["metrics_path"] = n.name, n.ip+":10250", "/metrics"
	return in.raise(a)
}

// nodeAlert raises a node-level rule about n in cluster cl. The platform
// labels these rule groups app=k8s-platform (additionalRuleGroupLabels).
func (in *incident) nodeAlert(key, region, cl string, n node, kv ...string) *alert {
	g := in.g
	a := g.newAlert(key, svc("k8s-platform"), region)
	a.labels["cluster"] = cl
	switch key {
	case "KubeNodeNotReady":
		a.labels["job"], a.labels["service"], a.labels["endpoint"] = "kube-state-metrics", "kube-prometheus-stack-kube-state-metrics", "http"
		a.labels["container"], a.labels["namespace"] = "kube-state-metrics", "kube-system"
		a.labels["instance"] = stableIP(cl+"ksm", region) + ":8080"
		a.labels["node"], a.labels["condition"], a.labels["status"] = n.name, "Ready", "true"
	case "CoreDNSErrorsHigh":
		a.labels["job"], a.labels["service"], a.labels["namespace"] = "coredns", "kube-dns", "kube-system"
		delete(a.labels, "container")
		delete(a.labels, "endpoint")
	default:
		a.labels["instance"] = n.ip + ":9100"
		a.labels["pod"] = "kube-prometheus-stack-prometheus-node-exporter-" + g.randString(5)
	}
	for i := 0; i+1 < len(kv); i += 2 {
		a.labels[kv[i]] = kv[i+1]
	}
	return in.raise(a)
}

// cert raises a cert-manager rule for a Certificate owned by s; the
// platform's rule relabels the certificate's app label onto the alert.
func (in *incident) cert(key string, s *service, region, name string) *alert {
	a := in.g.newAlert(key, s, region)
	a.labels["name"], a.labels["exported_namespace"], a.labels["condition"] = name, s.namespace, "False"
	a.labels["namespace"], a.labels["job"], a.labels["service"] = "cert-manager", "cert-manager", "cert-manager"
	a.labels["instance"] = stableIP(a.labels["cluster"]+"cert-manager", region) + ":9402"
	if key == "CertManagerCertExpirySoon" {
		delete(a.labels, "condition")
	}
	return in.raise(a)
}

// hold records that an alert's condition holds from shortly after from
// (rate windows take a while to cross a threshold) until shortly after to
// (and to let them drain), sometimes dipping under the threshold in
// between: the alert resolves and fires again.
func (in *incident) hold(a *alert, from, to time.Time) {
	if a == nil {
		return
	}
	g := in.g
	lag := g.between(15*sec, 90*sec)
	if g.chance(0.15) { // a milder symptom takes longer to cross its threshold
		lag += g.between(0, 3*min)
	}
	from = from.Add(lag)
	to = to.Add(g.between(0, 4*min))
	if d := to.Sub(from); d > 14*min && g.chance(0.15) {
		mid := from.Add(g.between(d/4, d*3/4))
		a.on(from, mid)
		a.on(mid.Add(g.between(2*min, 7*min)), to)
		return
	}
	a.on(from, to)
}

// failing: s returns errors (or, for a datastore, shows distress) from..to.
func (in *incident) failing(s *service, region string, from, to time.Time, p float64) {
	g := in.g
	switch s.kind {
	case kindAPI:
		if g.chance(p) {
			in.hold(in.app("HighErrorRate", s, region), from, to)
			if g.chance(0.3) {
				in.hold(in.app("HighErrorRate", s, region), from, to)
			}
		}
		if s.tier == 1 && g.chance(0.5) {
			// The page fires once the 1h window has burnt 14.4x too.
			in.hold(in.sloth("AvailabilityBudgetBurn:page", s, region), from.Add(g.between(1*min, 5*min)), to)
		}
		if g.chance(0.2) {
			in.hold(in.mesh("IstioHighErrorRate", s, region), from, to)
		}
	case kindWorker:
		if g.chance(p) {
			in.hold(in.app("WorkerProcessingErrors", s, region, "queue", s.topic), from, to)
		}
	case kindPostgres:
		if g.chance(p) {
			in.hold(in.exporter("PostgresTooManyConnections", s, region, 0), from, to)
		}
		if g.chance(0.4) {
			in.hold(in.exporter("PostgresSlowQueries", s, region, g.rng.IntN(3)), from, to)
		}
	case kindRedis:
		if g.chance(p) {
			in.hold(in.exporter("RedisRejectedConnections", s, region, 0), from, to)
		}
	case kindKafka:
		if g.chance(p) {
			in.hold(in.exporter("KafkaUnderReplicatedPartitions", s, region, g.rng.IntN(6)), from, to)
		}
	case kindRabbit:
		if g.chance(p) {
			in.hold(in.exporter("RabbitmqQueueBacklog", s, region, 0, "queue", pick(g, []string{"exports", "invoices", "schedules"}), "vhost", "/"), from, to)
		}
	case kindSearch:
		if g.chance(p) {
			in.hold(in.exporter("OpenSearchClusterYellow", s, region, 0), from, to)
		}
		if g.chance(0.3) {
			in.hold(in.exporter("OpenSearchHeapHigh", s, region, g.rng.IntN(3)), from, to)
		}
	case kindClickhouse:
		if g.chance(p) {
			in.hold(in.exporter("ClickHouseReplicaDelay", s, region, 1+g.rng.IntN(2)), from, to)
		}
	case kindVault:
		if g.chance(p / 2) {
			in.hold(in.exporter("VaultSealed", s, region, g.rng.IntN(3)), from, to)
		}
	case kindMesh:
		if g.chance(p) {
			in.hold(in.exporter("IstiodPushErrors", s, region, 0), from, to)
		}
	case kindPlatform:
		if g.chance(p) {
			in.hold(in.nodeAlert("CoreDNSErrorsHigh", region, clustersIn(region)[0], node{}), from, to)
		}
	}
}

// slow: s answers slowly (or, for a worker, falls behind) from..to.
func (in *incident) slow(s *service, region string, from, to time.Time, p float64) {
	g := in.g
	switch s.kind {
	case kindAPI:
		if g.chance(p) {
			in.hold(in.app("HighLatencyP99", s, region), from, to)
		}
		if s.tier == 1 && g.chance(0.25) {
			in.hold(in.sloth("LatencyBudgetBurn:page", s, region), from.Add(g.between(1*min, 5*min)), to)
		}
		if g.chance(0.15) {
			in.hold(in.mesh("IstioHighLatency", s, region), from, to)
		}
	case kindWorker:
		in.backlog(s, region, from, to, p)
	case kindPostgres:
		if g.chance(p) {
			in.hold(in.exporter("PostgresSlowQueries", s, region, g.rng.IntN(3)), from, to)
		}
	default:
		in.failing(s, region, from, to, p*0.6)
	}
}

// backlog: a worker consumes slower than producers publish; its lag
// crosses the threshold minutes later and drains minutes after recovery.
func (in *incident) backlog(s *service, region string, from, to time.Time, p float64) {
	g := in.g
	if !g.chance(p) {
		return
	}
	start := from.Add(g.between(3*min, 15*min))
	end := to.Add(g.between(5*min, 25*min))
	switch {
	case slices.Contains(s.deps, "event-bus"):
		in.hold(in.lag(s, region, false), start, end)
		if end.Sub(start) > 40*min && g.chance(0.4) {
			in.hold(in.lag(s, region, true), start.Add(g.between(15*min, 35*min)), end.Add(-5*min))
		}
	case slices.Contains(s.deps, "job-queue"):
		in.hold(in.exporter("RabbitmqQueueBacklog", svc("job-queue"), region, 0, "queue", s.topic, "vhost", "/"), start, end)
	}
}

// upstream: caller reports failing calls to callee.
func (in *incident) upstream(caller, callee *service, region string, from, to time.Time, p float64) {
	if in.g.chance(p) {
		in.hold(in.app("UpstreamErrors", caller, region, "upstream", callee.name), from, to)
	}
}
