package issuegen

import (
	"fmt"
	"time"

	"github.com/aiops-dev/aiops/pkg/event"
)

// nodeRule is a node-exporter rule: it fires on a node, with the exporter's
// own service label (kube-prometheus keeps the scrape target's service).
type nodeRule struct {
	name, severity, summary string
	extra                   map[string]string
}

var nodeRules = []nodeRule{
	{"NodeFilesystemSpaceFillingUp", sevWarning, "Filesystem on {instance} is predicted to run out of space within the next 24 hours", map[string]string{"device": "/dev/nvme1n1", "fstype": "ext4", "mountpoint": "/var/lib/containerd"}},
	{"NodeFilesystemAlmostOutOfSpace", sevWarning, "Filesystem on {instance} has less than 5% space left", map[string]string{"device": "/dev/nvme0n1p1", "fstype": "xfs", "mountpoint": "/"}},
	{"NodeClockNotSynchronising", sevWarning, "Clock on {instance} is not synchronising", nil},
	{"NodeNetworkReceiveErrs", sevWarning, "{instance} interface eth0 has encountered receive errors", map[string]string{"device": "eth0"}},
	{"NodeHighNumberConntrackEntriesUsed", sevWarning, "{instance}: 75% of conntrack entries are used", nil},
	{"NodeMemoryMajorPagesFaults", sevWarning, "{instance}: memory major page faults are occurring at a very high rate", nil},
	{"NodeSystemdServiceFailed", sevWarning, "systemd service on {instance} has entered failed state", map[string]string{"name": "amazon-ssm-agent.service"}},
}

// platformNoise are alerts about the platform rather than a catalogued
// service: a cron job, a certificate, the monitoring itself.
func (p *planner) platformNoise() (map[string]string, string, string) {
	owner := p.w.services[p.w.names[p.rng.IntN(len(p.w.names))]] // whose cron job, certificate, rules
	base := map[string]string{"cluster": clusterName, "prometheus": "monitoring/k8s", "severity": sevWarning}
	switch p.rng.IntN(4) {
	case 0:
		base["alertname"] = "KubeJobFailed"
		base["namespace"] = owner.namespace
		base["job_name"] = fmt.Sprintf("%s-nightly-%d", owner.name, 29000000+p.rng.IntN(999999))
		base["job"] = "kube-state-metrics"
		base["service"] = "kube-state-metrics"
		return base, "Job " + base["job_name"] + " failed to complete", `kube_job_failed{job="kube-state-metrics"} > 0`
	case 1:
		base["alertname"] = "CertManagerCertExpirySoon"
		base["namespace"] = owner.namespace
		base["name"] = owner.name + "-tls"
		base["job"] = "cert-manager"
		base["service"] = "cert-manager"
		return base, "The certificate " + base["name"] + " expires in less than 21 days", `certmanager_certificate_expiration_timestamp_seconds - time() < (21 * 24 * 3600)`
	case 2:
		base["alertname"] = "KubeletTooManyPods"
		base["node"] = p.nodes[p.rng.IntN(len(p.nodes))]
		base["namespace"] = "kube-system"
		base["job"] = "kubelet"
		base["service"] = "kubelet"
		base["severity"] = "info"
		return base, "Kubelet on " + base["node"] + " is running at 95% of its pod capacity", `count by (node) (kube_pod_info) / max by (node) (kube_node_status_capacity{resource="pods"}) > 0.95`
	default:
		base["alertname"] = "PrometheusRuleFailures"
		base["namespace"] = "monitoring"
		base["job"] = "prometheus-k8s"
		base["service"] = "prometheus-k8s"
		base["pod"] = fmt.Sprintf("prometheus-k8s-%d", p.rng.IntN(2))
		base["rule_group"] = fmt.Sprintf("/etc/prometheus/rules/prometheus-k8s-rulefiles-0/%s-rules.yaml;%s.rules", owner.namespace, owner.name)
		return base, "Prometheus " + base["pod"] + " has failed to evaluate rules", `increase(prometheus_rule_evaluation_failures_total[5m]) > 0`
	}
}

// serviceNoise are a service's own blips: throttling, memory, a pod that
// restarts, a latency bump, a scrape target gone, nothing its callers or
// dependencies show.
var serviceNoise = []rule{rCPUThrottling, rMemoryNearLim, rCrashLooping, rHpaMaxed, rHighLatency, rPodNotReady, rTargetDown}

// Kinds of noise, in shares of the noise alerts.
const (
	nodeNoiseShare     = 0.3 // node-exporter alerts
	platformNoiseShare = 0.2 // cron jobs, certificates, the monitoring itself
)

// noise fires the unrelated alerts at random times, each an incident of
// its own: node alerts, platform alerts and blips of services that take
// part in no incident then.
func (p *planner) noise() {
	for i := range p.cfg.Noise {
		id := fmt.Sprintf("noise-%02d", i+1)
		kind := p.rng.Float64()
		for try := 0; try < 30; try++ {
			if p.noiseAlert(id, kind) {
				break
			}
		}
	}
}

// noiseAlert tries one noise alert of kind (a draw in [0, 1) against the
// shares); false when the label set drawn is taken, or its node or
// service is busy then.
func (p *planner) noiseAlert(id string, kind float64) bool {
	start := p.cfg.Start.Add(p.between(0, p.cfg.Span-10*time.Minute))
	var dur time.Duration
	switch x := p.rng.Float64(); {
	case x < 0.6:
		dur = p.between(minFirstEpisode, 30*time.Minute)
	case x < 0.85:
		dur = p.between(30*time.Minute, 2*time.Hour)
	default:
		dur = p.cfg.Span * 2 // fires until the recording stops, notified again at each repeat
	}
	flaps := p.rng.Float64() < p.cfg.NoiseFlap
	if flaps {
		dur = p.between(30*time.Minute, 90*time.Minute)
	}
	var labels map[string]string
	var summary, expr, key string // key: what the alert keeps busy
	var svc *service
	switch {
	case kind < nodeNoiseShare:
		r := nodeRules[p.rng.IntN(len(nodeRules))]
		node := p.nodes[p.rng.IntN(len(p.nodes))]
		key = "node/" + node
		labels = map[string]string{
			"alertname": r.name, "severity": r.severity, "cluster": clusterName, "prometheus": "monitoring/k8s",
			"namespace": "monitoring", "job": "node-exporter", "service": "node-exporter",
			"instance": node + ":9100", "pod": "node-exporter-" + randomSuffix(p.rng, 5),
		}
		for k, v := range r.extra {
			labels[k] = v
		}
		summary, expr = r.summary, "node_exporter:"+r.name
	case kind < nodeNoiseShare+platformNoiseShare:
		labels, summary, expr = p.platformNoise()
	default:
		svc = p.w.services[p.w.names[p.rng.IntN(len(p.w.names))]]
		if svc.kind.stateful() {
			return false
		}
		r := serviceNoise[p.rng.IntN(len(serviceNoise))]
		pods := p.podsAt(svc, start)
		labels = instanceLabels(r, svc, pods, p.rng.IntN(len(pods)), "")
		summary, expr, key = r.summary, r.expr, svc.name
	}
	name := labels["alertname"]
	begin := p.evalAt(name, start)
	episodes := []episode{{begin, p.evalAt(name, begin.Add(dur))}}
	if flaps {
		episodes = p.flaps(begin, begin.Add(dur))
	}
	last := episodes[len(episodes)-1].end
	if last.After(p.horizon) {
		last = p.horizon
	}
	switch {
	case svc != nil:
		// A blip of a service is unrelated only away from its incidents
		// and its neighbours'.
		if !p.free(svc.name, begin.Add(-margin), last.Add(margin)) {
			return false
		}
	case key != "":
		for _, sp := range p.busy[key] { // two alerts of one node at once would look related
			if sp.from.Before(last.Add(margin)) && begin.Add(-margin).Before(sp.to) {
				return false
			}
		}
	}
	fp := event.AlertmanagerFingerprint(labels)
	if p.byFP[fp] != nil {
		return false
	}
	a := &alert{
		labels: labels, fp: fp, incident: id, url: generatorURL(expr), episodes: episodes,
		annotations: map[string]string{"summary": fill(summary, labels), "runbook_url": runbookBase + name},
	}
	p.byFP[fp] = a
	p.alerts = append(p.alerts, a)
	if key != "" {
		p.busy[key] = append(p.busy[key], span{begin, last, id})
	}
	return true
}
