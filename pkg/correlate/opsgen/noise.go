package opsgen

import (
	"fmt"
	"strings"
	"time"
)

// noiseKinds are the unrelated alerts of a normal day, with their weights.
var noiseKinds = []struct {
	id     string
	weight float64
}{
	{"latency", 0.22}, {"errors", 0.08}, {"targetdown", 0.07}, {"throttle", 0.14},
	{"job", 0.10}, {"disk-filling", 0.05}, {"oom", 0.07}, {"lag", 0.06},
	{"probe", 0.05}, {"pvc", 0.03}, {"clock", 0.03}, {"hpa", 0.06}, {"waiting", 0.04},
}

// makeNoise adds the alerts that belong to no incident: a few that were
// firing long before the storm (a certificate to renew, a disk filling
// slowly, a failed nightly job nobody cleaned up) and a steady trickle of
// blips and housekeeping alerts.
func (g *gen) makeNoise() {
	standing := g.cfg.StandingNoise/2 + g.r.IntN(g.cfg.StandingNoise/2+1)
	for range standing {
		id := pick(g, []string{"cert", "cert", "disk-filling", "job", "pvc", "waiting"})
		t := g.start.Add(-g.uniform(time.Hour, 72*time.Hour))
		end := time.Time{}
		if g.chance(0.25) {
			end = g.start.Add(g.uniform(0, g.end.Sub(g.start)))
		}
		g.noiseAlert(id, t, end)
	}

	rate := g.cfg.NoisePerHour / float64(time.Hour)
	if rate <= 0 {
		return
	}
	weights := make([]float64, len(noiseKinds))
	for i, k := range noiseKinds {
		weights[i] = k.weight
	}
	for t := g.start.Add(-30 * time.Minute); t.Before(g.end); t = t.Add(time.Duration(g.r.ExpFloat64() / rate)) {
		id := noiseKinds[g.weighted(weights)].id
		var d time.Duration
		switch id {
		case "latency", "targetdown":
			d = g.uniform(3*time.Minute, 12*time.Minute)
		case "errors", "probe":
			d = g.uniform(2*time.Minute, 6*time.Minute)
		case "oom":
			d = g.uniform(9*time.Minute, 11*time.Minute)
		case "throttle", "hpa", "lag", "clock":
			d = g.uniform(10*time.Minute, 60*time.Minute)
		default:
			d = g.uniform(time.Hour, 6*time.Hour)
		}
		a := g.noiseAlert(id, t, t.Add(d))
		if a != nil && (id == "throttle" || id == "hpa" || id == "lag") && g.chance(0.3) {
			// it comes back a few times as the load moves
			at := t.Add(d)
			for range 1 + g.r.IntN(3) {
				at = at.Add(g.uniform(5*time.Minute, 40*time.Minute))
				on := g.uniform(5*time.Minute, 30*time.Minute)
				a.addSpan(span{at, at.Add(on)})
				at = at.Add(on)
			}
		}
	}
}

// noiseAlert fires rule id on a fitting service from start to end; nil
// when that alert is already taken.
func (g *gen) noiseAlert(id string, start, end time.Time) *alert {
	fits := func(s *service) float64 {
		switch id {
		case "disk-filling", "clock":
			return b2f(s.role == roleCluster)
		case "pvc":
			return b2f(s.role.stateful())
		case "lag":
			return b2f(s.role == roleWorker)
		case "probe":
			return b2f(s.role == roleAdapter)
		case "job":
			return b2f(s.role == roleWorker) + 0.2*b2f(s.role == roleHTTP)
		case "cert", "latency", "errors":
			return b2f(s.role == roleEdge || s.role == roleHTTP || s.role == roleAdapter)
		}
		return b2f(s.role.app())
	}
	var cands []*service
	var ws []float64
	for _, s := range g.services {
		if w := fits(s); w > 0 {
			cands = append(cands, s)
			ws = append(ws, w)
		}
	}
	if len(cands) == 0 {
		return nil // a small estate may have no service this noise fits
	}
	s := cands[g.weighted(ws)]
	var subj string
	var l map[string]string
	switch id {
	case "disk-filling":
		node := pick(g, g.nodes)
		mount := pick(g, []string{"/", "/var/lib/containerd", "/var/log"})
		subj = nodeIP(node) + ":9100"
		l = map[string]string{"instance": subj, "device": "/dev/nvme0n1p1", "mountpoint": mount, "fstype": "xfs"}
	case "clock":
		subj = nodeIP(pick(g, g.nodes)) + ":9100"
		l = map[string]string{"instance": subj}
	case "pvc":
		p := pick(g, s.podsAt(start))
		pvc := "data-" + p.name
		subj = s.namespace + "/" + pvc
		l = map[string]string{"persistentvolumeclaim": pvc}
	case "job":
		name := s.name + "-" + pick(g, []string{"nightly", "reconcile", "cleanup", "export"})
		job := fmt.Sprintf("%s-%d", name, start.Add(-time.Duration(g.r.IntN(600))*time.Minute).Unix()/60)
		subj = s.namespace + "/" + job
		l = map[string]string{"job_name": job}
	case "cert":
		name := s.name + "-tls"
		subj = s.namespace + "/" + name
		l = map[string]string{"name": name, "issuer_name": "letsencrypt-prod"}
	case "targetdown":
		subj = s.namespace
		l = map[string]string{"job": s.name}
	default:
		subj, l = g.subjectFor(s, id, start)
	}
	return g.direct(owner{}, s, id, subj, l, start, end)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// nodeIP is the address of an EC2 node name (ip-10-42-7-19.… → 10.42.7.19).
func nodeIP(node string) string {
	host, _, _ := strings.Cut(node, ".")
	return strings.ReplaceAll(strings.TrimPrefix(host, "ip-"), "-", ".")
}
