package blindgen

import (
	"fmt"
	"hash/fnv"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/aiops-dev/aiops/pkg/event"
)

// span is a half-open time interval [a, b).
type span struct{ a, b time.Time }

type pod struct {
	name, ip, node string
}

// alert is one Prometheus alert (one label set) of one true incident. cond
// holds when its expression was true; fired when Prometheus had it firing
// after its for: duration, on its evaluation ticks.
type alert struct {
	inc    *incident
	svc    *service
	rule   def
	labels map[string]string
	ann    map[string]string
	fp     string
	cond   []span
	fired  []span
}

type incident struct {
	id     string
	kind   string
	pods   map[string][]pod
	alerts map[string]*alert
	keys   []string
}

type change struct {
	t        time.Time
	svc      string
	kind     string // deploy or config
	rollback bool
	author   string
	commit   string
	version  string
}

const cluster = "prod-eu-west-1"

var namespaces = map[string]string{
	kDNS: "kube-system", kMesh: "istio-system", kCerts: "cert-manager", kVault: "vault",
	kPlatform: "kube-system", kMonitor: "monitoring",
}

func (g *gen) newIncident(kind string) *incident {
	inc := &incident{kind: kind, pods: map[string][]pod{}, alerts: map[string]*alert{}}
	if kind == "noise" {
		g.nNoise++
		inc.id = fmt.Sprintf("noise-%03d", g.nNoise)
	} else {
		g.nInc++
		inc.id = fmt.Sprintf("inc-%03d-%s", g.nInc, kind)
	}
	g.incs = append(g.incs, inc)
	return inc
}

const alnum = "bcdfghjklmnpqrstvwxz2456789"

func (g *gen) randStr(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = alnum[g.r.IntN(len(alnum))]
	}
	return string(b)
}

func (g *gen) nodeName() string {
	return fmt.Sprintf("ip-10-0-%d-%d.eu-west-1.compute.internal", g.r.IntN(96), 1+g.r.IntN(254))
}

func (g *gen) ip() string {
	return fmt.Sprintf("10.%d.%d.%d", 40+g.r.IntN(8), g.r.IntN(256), 1+g.r.IntN(254))
}

// freshPods makes the pods of s as they run during one incident:
// StatefulSet ordinals for stateful services, a ReplicaSet hash and a
// random suffix for deployments. Pod IPs are new, as after a reschedule.
func (g *gen) freshPods(s *service) []pod {
	out := make([]pod, s.Pods)
	hash := g.randStr(9 + g.r.IntN(2))
	for i := range out {
		var name string
		switch {
		case s.Kind == kPlatform:
			name = g.nodeName()
		case s.stateful() || s.Kind == kVault || s.Kind == kMonitor:
			name = fmt.Sprintf("%s-%d", s.Name, i)
		case s.Kind == kCron:
			name = fmt.Sprintf("%s-%d-%s", s.Name, 28_000_000+g.r.IntN(999_999), g.randStr(5))
		default:
			name = fmt.Sprintf("%s-%s-%s", s.Name, hash, g.randStr(5))
		}
		out[i] = pod{name: name, ip: g.ip(), node: g.nodeName()}
	}
	return out
}

func (inc *incident) podsOf(g *gen, s *service) []pod {
	p, ok := inc.pods[s.Name]
	if !ok {
		p = g.freshPods(s)
		inc.pods[s.Name] = p
	}
	return p
}

// add records that rule's expression held on pod i of s during cond
// (extra labels distinguish alerts of one rule on one pod). Alerts with
// the same key in one incident are one alert whose condition spans merge.
func (g *gen) add(inc *incident, s *service, ruleName string, i int, extra map[string]string, cond ...span) *alert {
	r, ok := rules[ruleName]
	if !ok {
		panic("no rule " + ruleName)
	}
	pods := inc.podsOf(g, s)
	i %= len(pods)
	var ek []string
	for k, v := range extra {
		ek = append(ek, k+"="+v)
	}
	slices.Sort(ek)
	key := fmt.Sprintf("%s|%s|%d|%s", s.Name, ruleName, i, strings.Join(ek, ","))
	if a, ok := inc.alerts[key]; ok {
		a.cond = append(a.cond, cond...)
		return a
	}
	for {
		p := pods[i]
		labels := map[string]string{
			"alertname": ruleName,
			"severity":  r.sev,
			"service":   s.Name,
			"team":      s.Team,
			"cluster":   cluster,
			"pod":       p.name,
			"instance":  p.ip + ":" + r.port,
		}
		ns := namespaces[s.Kind]
		if ns == "" {
			ns = s.Team
		}
		labels["namespace"] = ns
		if r.job != "" {
			labels["job"] = r.job
		} else {
			labels["job"] = s.Name
		}
		if s.Kind == kPlatform {
			labels["node"] = p.name
			delete(labels, "pod")
		}
		for k, v := range extra {
			labels[k] = v
		}
		fp := event.AlertmanagerFingerprint(labels)
		if other, used := g.fps[fp]; used && other != inc {
			pods[i].ip = g.ip() // vanishingly rare: a new address makes a new label set
			continue
		}
		g.fps[fp] = inc
		a := &alert{inc: inc, svc: s, rule: r, labels: labels, fp: fp, cond: cond}
		a.ann = map[string]string{
			"summary":     r.summaryFor(s.Name),
			"description": fmt.Sprintf("%s on %s (%s).", r.summaryFor(s.Name), p.name, labels["instance"]),
			"runbook_url": "https://runbooks.shop.example.com/alerts/" + strings.ToLower(ruleName),
		}
		if s.Kind == kPlatform {
			a.ann["description"] = fmt.Sprintf("%s: node %s.", r.summaryFor(s.Name), p.name)
		}
		inc.alerts[key] = a
		inc.keys = append(inc.keys, key)
		return a
	}
}

// evalTick is the rule evaluation interval.
const evalTick = 30 * time.Second

func tickOffset(rule string) time.Duration {
	h := fnv.New32a()
	h.Write([]byte(rule))
	return time.Duration(h.Sum32()%30000) * time.Millisecond
}

// ceilTick is the first evaluation at or after t.
func ceilTick(t time.Time, off time.Duration) time.Time {
	base := t.Add(-off).Truncate(evalTick)
	tk := base.Add(off)
	if tk.Before(t) {
		tk = tk.Add(evalTick)
	}
	return tk
}

// fire turns condition spans into firing spans as Prometheus evaluates a
// rule with a for: duration: pending from the first evaluation that sees
// the condition, firing once it held for the duration, resolved at the
// first evaluation that no longer sees it.
func (a *alert) fire() {
	off := tickOffset(a.rule.name)
	var q []span
	for _, c := range a.cond {
		if !c.b.After(c.a) {
			continue
		}
		q = append(q, span{ceilTick(c.a, off), ceilTick(c.b, off)})
	}
	slices.SortFunc(q, func(x, y span) int { return x.a.Compare(y.a) })
	var merged []span
	for _, s := range q {
		if !s.b.After(s.a) {
			continue
		}
		if n := len(merged); n > 0 && !s.a.After(merged[n-1].b) {
			if s.b.After(merged[n-1].b) {
				merged[n-1].b = s.b
			}
			continue
		}
		merged = append(merged, s)
	}
	steps := time.Duration(math.Ceil(float64(a.rule.forDur) / float64(evalTick)))
	a.fired = nil
	for _, s := range merged {
		f := s.a.Add(steps * evalTick)
		if f.Before(s.b) {
			a.fired = append(a.fired, span{f, s.b})
		}
	}
}
