package fleetgen

import (
	"fmt"
	"time"
)

// Noise is what fills the channels between incidents: alerts that fire on
// their own, for reasons unrelated to anything else, each its own true
// incident. Most resolve by themselves; a few sit for hours.

// noiseMaker raises one noise alert of a sort at at.
type noiseMaker func(in *incident, at time.Time) *alert

var noiseMakers = []struct {
	weight float64
	make   noiseMaker
	length [2]time.Duration // how long the condition holds
}{
	{3, func(in *incident, at time.Time) *alert { // a pod's CPU limit set too low
		s := pick(in.g, candidates("", isApp))
		r := in.regionFor("", s)
		return in.pod("CPUThrottlingHigh", s, r, "", in.g.node(r))
	}, [2]time.Duration{16 * min, 3 * hr}},
	{2, func(in *incident, at time.Time) *alert { // a CronJob run failed
		s := pick(in.g, candidates("", func(s *service) bool { return s.kind == kindWorker }))
		a := in.g.newAlert("KubeJobFailed", s, in.regionFor("", s))
		task := pick(in.g, []string{"cleanup", "compact", "reindex", "rollup", "retry-dead-letters", "sync"})
		a.labels["job_name"] = fmt.Sprintf("%s-%s-%d", s.name, task, 29000000+in.g.rng.IntN(999999))
		return in.raise(a)
	}, [2]time.Duration{20 * min, 6 * hr}},
	{2, func(in *incident, at time.Time) *alert { // a pod stuck Pending or failing its readiness probe
		s := pick(in.g, candidates("", isApp))
		return in.pod("KubePodNotReady", s, in.regionFor("", s), "", node{})
	}, [2]time.Duration{16 * min, 70 * min}},
	{1, func(in *incident, at time.Time) *alert { // an image pull that never succeeds
		s := pick(in.g, candidates("", isApp))
		return in.pod("KubeContainerWaiting", s, in.regionFor("", s), "", node{})
	}, [2]time.Duration{61 * min, 3 * hr}},
	{2, func(in *incident, at time.Time) *alert { // traffic peak at the HPA's ceiling
		s := pick(in.g, candidates("", isApp))
		return in.workload("KubeHpaMaxedOut", s, in.regionFor("", s), "horizontalpodautoscaler")
	}, [2]time.Duration{16 * min, 90 * min}},
	{3, func(in *incident, at time.Time) *alert { // one slow endpoint
		s := pick(in.g, candidates("", func(s *service) bool { return s.kind == kindAPI }))
		return in.app("HighLatencyP99", s, in.regionFor("", s))
	}, [2]time.Duration{11 * min, 40 * min}},
	{2, func(in *incident, at time.Time) *alert { // a burst of errors on one endpoint (a bad client, a bad tenant)
		s := pick(in.g, candidates("", func(s *service) bool { return s.kind == kindAPI }))
		return in.app("HighErrorRate", s, in.regionFor("", s))
	}, [2]time.Duration{6 * min, 20 * min}},
	{2, func(in *incident, at time.Time) *alert { // a report query or a migration
		s := pick(in.g, candidates("", func(s *service) bool { return s.kind == kindPostgres }))
		return in.exporter("PostgresSlowQueries", s, in.regionFor("", s), in.g.rng.IntN(3))
	}, [2]time.Duration{11 * min, 50 * min}},
	{1, func(in *incident, at time.Time) *alert {
		s := pick(in.g, candidates("", func(s *service) bool { return s.kind == kindRedis }))
		return in.exporter("RedisMemoryHigh", s, in.regionFor("", s), in.g.rng.IntN(3))
	}, [2]time.Duration{11 * min, 4 * hr}},
	{1, func(in *incident, at time.Time) *alert {
		s := svc("search-cluster")
		return in.exporter("OpenSearchDiskWatermark", s, in.regionFor("", s), in.g.rng.IntN(3))
	}, [2]time.Duration{31 * min, 5 * hr}},
	{1, func(in *incident, at time.Time) *alert {
		r := in.regionFor("", svc("k8s-platform"))
		return in.nodeAlert("NodeClockNotSynchronising", r, pick(in.g, clustersIn(r)), in.g.node(r))
	}, [2]time.Duration{11 * min, 40 * min}},
	{2, func(in *incident, at time.Time) *alert { // the provider has a bad quarter hour
		s := pick(in.g, candidates("", func(s *service) bool { return s.provider != "" }))
		return in.app("ThirdPartyAPIErrors", s, in.regionFor("", s), "provider", s.provider, "status_code", pick(in.g, []string{"500", "502", "503", "429"}))
	}, [2]time.Duration{6 * min, 25 * min}},
	{1, func(in *incident, at time.Time) *alert { // a scrape target restarting slowly
		s := pick(in.g, candidates("", isApp))
		return in.targetDown(s, in.regionFor("", s))
	}, [2]time.Duration{11 * min, 30 * min}},
	{1, func(in *incident, at time.Time) *alert { // an internal certificate that did not renew
		s := pick(in.g, candidates("", func(s *service) bool { return s.kind == kindAPI }))
		return in.cert("CertManagerCertExpirySoon", s, in.regionFor("", s), s.name+"-internal-tls")
	}, [2]time.Duration{61 * min, 8 * hr}},
	{2, func(in *incident, at time.Time) *alert { // a batch of events from a big tenant
		s := pick(in.g, candidates("", func(s *service) bool { return s.kind == kindWorker && s.topic != "" && s.name != "scheduler" }))
		if s.deps[0] != "event-bus" {
			return in.exporter("RabbitmqQueueBacklog", svc("job-queue"), in.regionFor("", s), 0, "queue", s.topic, "vhost", "/")
		}
		return in.lag(s, in.regionFor("", s), false)
	}, [2]time.Duration{11 * min, 40 * min}},
	{1, func(in *incident, at time.Time) *alert {
		s := svc("metering-db")
		return in.exporter("ClickHouseTooManyParts", s, in.regionFor("", s), in.g.rng.IntN(3))
	}, [2]time.Duration{11 * min, 90 * min}},
	{1, func(in *incident, at time.Time) *alert { // a pool sized for last year's traffic
		s := pick(in.g, []*service{svc("projects-api"), svc("documents-api"), svc("tenant-service"), svc("billing-api"), svc("files-api")})
		db := s.deps[0]
		return in.app("DBPoolSaturation", s, in.regionFor("", s), "pool", db)
	}, [2]time.Duration{11 * min, 40 * min}},
	{1, func(in *incident, at time.Time) *alert { // a busy node
		r := in.regionFor("", svc("k8s-platform"))
		return in.nodeAlert("NodeSystemSaturation", r, pick(in.g, clustersIn(r)), in.g.node(r))
	}, [2]time.Duration{16 * min, 45 * min}},
}

// planNoise raises the day's noise alerts and flapping alerts.
func (g *generator) planNoise() {
	total := 0.0
	for _, m := range noiseMakers {
		total += m.weight
	}
	for range g.poisson(g.cfg.Noise) {
		x := g.rng.Float64() * total
		m := noiseMakers[len(noiseMakers)-1]
		for _, c := range noiseMakers {
			if x -= c.weight; x < 0 {
				m = c
				break
			}
		}
		at := g.when(false)
		in := g.newIncident("noise")
		m.make(in, at).on(at, at.Add(g.between(m.length[0], m.length[1])))
	}
	for range g.poisson(g.cfg.Flapping) {
		g.flapping(g.when(false))
	}
}

// flapping: one alert whose expression hovers around its threshold for
// hours, firing and resolving again and again.
func (g *generator) flapping(at time.Time) {
	in := g.newIncident("flapping")
	var a *alert
	switch x := g.rng.Float64(); {
	case x < 0.35:
		s := pick(g, candidates("", func(s *service) bool { return s.kind == kindAPI }))
		a = in.app("HighLatencyP99", s, in.regionFor("", s))
	case x < 0.55:
		s := pick(g, candidates("", isApp))
		a = in.workload("KubeHpaMaxedOut", s, in.regionFor("", s), "horizontalpodautoscaler")
	case x < 0.75:
		s := pick(g, candidates("", func(s *service) bool { return s.kind == kindRedis }))
		a = in.exporter("RedisMemoryHigh", s, in.regionFor("", s), 0)
	default:
		s := pick(g, []*service{svc("projects-api"), svc("documents-api"), svc("tenant-service"), svc("files-api")})
		a = in.app("DBPoolSaturation", s, in.regionFor("", s), "pool", s.deps[0])
	}
	end := at.Add(g.between(1*hr, 6*hr))
	for t := at; t.Before(end); {
		on := g.between(6*min, 25*min)
		a.on(t, t.Add(on))
		t = t.Add(on + g.between(1*min, 20*min))
	}
}
