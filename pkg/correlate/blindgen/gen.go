package blindgen

import (
	"math"
	"math/rand/v2"
	"slices"
	"time"
)

type gen struct {
	r      *rand.Rand
	cfg    Config
	cat    *catalog
	incs   []*incident
	chs    []*change
	fps    map[string]*incident
	start  time.Time
	end    time.Time
	nInc   int
	nNoise int
	// hot weighs services: a few of them, different in every storm, are
	// where most trouble, most noise and most deploys happen.
	hot map[string]float64
}

func (g *gen) pickHot(xs []*service) *service {
	w := make([]float64, len(xs))
	for i, s := range xs {
		w[i] = g.hot[s.Name]
	}
	return xs[g.weighted(w)]
}

func (g *gen) heat(n int, weight float64) {
	g.hot = map[string]float64{}
	for _, name := range g.cat.names {
		g.hot[name] = 1
	}
	for _, i := range g.r.Perm(len(g.cat.names))[:n] {
		g.hot[g.cat.names[i]] = weight
	}
}

// ---- random helpers ----

func (g *gen) chance(p float64) bool { return g.r.Float64() < p }

func (g *gen) uni(lo, hi float64) float64 { return lo + (hi-lo)*g.r.Float64() }

// between is a uniform duration in [lo, hi).
func (g *gen) between(lo, hi time.Duration) time.Duration {
	if hi <= lo {
		return lo
	}
	return lo + time.Duration(g.r.Int64N(int64(hi-lo)))
}

// logn is a log-normal duration with the given median, clamped.
func (g *gen) logn(median time.Duration, sigma float64, lo, hi time.Duration) time.Duration {
	d := time.Duration(float64(median) * math.Exp(sigma*g.r.NormFloat64()))
	return max(lo, min(hi, d))
}

func (g *gen) poisson(mean float64) int {
	// Knuth for small means, normal approximation above.
	if mean > 30 {
		return max(0, int(math.Round(mean+math.Sqrt(mean)*g.r.NormFloat64())))
	}
	l, k, p := math.Exp(-mean), 0, 1.0
	for {
		p *= g.r.Float64()
		if p <= l {
			return k
		}
		k++
	}
}

func pickOne[T any](g *gen, xs []T) T { return xs[g.r.IntN(len(xs))] }

func (g *gen) weighted(w []float64) int {
	var sum float64
	for _, x := range w {
		sum += x
	}
	v := g.r.Float64() * sum
	for i, x := range w {
		if v < x {
			return i
		}
		v -= x
	}
	return len(w) - 1
}

// hourWeights is how likely trouble starts in each hour of the day (UTC,
// a European shop): quiet nights, a morning deploy window, an evening peak.
var hourWeights = []float64{0.5, 0.4, 0.4, 0.4, 0.4, 0.5, 0.7, 1.0, 1.6, 2.0, 2.2, 2.2, 2.0, 2.0, 2.2, 2.2, 2.0, 1.8, 1.6, 1.8, 2.0, 1.6, 1.0, 0.7}

// deployWeights: deploys happen in working hours, a few at night.
var deployWeights = []float64{0.1, 0.05, 0.05, 0.05, 0.05, 0.05, 0.2, 0.6, 1.5, 2.5, 2.5, 2.2, 1.2, 2.2, 2.5, 2.5, 2.0, 1.2, 0.5, 0.3, 0.2, 0.2, 0.1, 0.1}

func (g *gen) timeOfDay(w []float64, lo, hi time.Duration) time.Time {
	for {
		h := g.weighted(w)
		t := g.start.Add(time.Duration(h)*time.Hour + g.between(0, time.Hour))
		if off := t.Sub(g.start); off >= lo && off < g.cfg.Duration-hi {
			return t
		}
	}
}

// ---- pod selection ----

// podsHit is how many of n pods a problem of severity sev shows on.
func (g *gen) podsHit(n int, sev float64) int {
	k := int(math.Round(sev * float64(n) * g.uni(0.3, 1.0)))
	return max(1, min(n, k))
}

func (g *gen) somePods(n, k int) []int {
	p := g.r.Perm(n)
	out := p[:k]
	slices.Sort(out)
	return out
}

// jitter shifts a condition span per pod: pods cross a threshold at
// different moments.
func (g *gen) jitter(on, off time.Time) span {
	a := on.Add(g.between(0, 20*time.Second))
	b := off.Add(g.between(-30*time.Second, 2*time.Minute))
	if !b.After(a) {
		b = a.Add(time.Minute)
	}
	return span{a, b}
}

// chatter splits [on, off) into on/off segments, as a metric hovering
// around its threshold does.
func (g *gen) chatter(on, off time.Time, onMed, offMed time.Duration) []span {
	var out []span
	t := on
	for t.Before(off) {
		e := t.Add(g.logn(onMed, 0.6, 30*time.Second, 4*onMed))
		if e.After(off) {
			e = off
		}
		out = append(out, span{t, e})
		t = e.Add(g.logn(offMed, 0.7, 30*time.Second, 4*offMed))
	}
	return out
}

// ---- symptoms ----

const (
	effErrors  = "errors"
	effLatency = "latency"
	effDown    = "down"
	effCrash   = "crash"
	effOOM     = "oom"
	effSat     = "saturation"
	effLag     = "lag"
)

// hit adds the alerts service s shows when it is hurt by effect with
// severity sev between on and off; via names the dependencies the trouble
// came through (the gateway's upstream label).
func (g *gen) hit(inc *incident, s *service, effect string, on, off time.Time, sev float64, via []string) {
	pods := inc.podsOf(g, s)
	perPod := func(ruleName string, p float64) {
		for _, i := range g.somePods(len(pods), g.podsHit(len(pods), sev)) {
			if g.chance(p) {
				g.add(inc, s, ruleName, i, nil, g.jitter(on, off))
			}
		}
	}
	one := func(ruleName string, p float64, extra map[string]string) {
		if g.chance(p) {
			g.add(inc, s, ruleName, g.r.IntN(len(pods)), extra, g.jitter(on, off))
		}
	}
	switch effect {
	case effCrash:
		perPod(rCrashLoop, 0.9)
		one(rReplicas, 0.6, nil)
		return
	case effOOM:
		for _, i := range g.somePods(len(pods), g.podsHit(len(pods), sev)) {
			t := on.Add(g.between(0, 10*time.Minute))
			for t.Before(off) {
				g.add(inc, s, rMemNearLimit, i, nil, span{t.Add(-g.between(10*time.Minute, 25*time.Minute)), t})
				g.add(inc, s, rOOM, i, nil, span{t, t.Add(10 * time.Minute)})
				t = t.Add(g.logn(30*time.Minute, 0.4, 8*time.Minute, 2*time.Hour))
			}
		}
		return
	case effDown:
		perPod(rNotReady, 0.8)
		perPod(rTargetDown, 0.4)
		if s.http() {
			one(rHighErrorRate, 0.4, nil)
		}
		return
	case effSat:
		perPod(rThrottling, 0.5)
		one(rHPAMaxed, 0.6, nil)
		if s.http() {
			perPod(rHighLatency, 0.6)
		}
		return
	}
	switch s.Kind {
	case kGateway:
		for _, u := range via {
			k := 1 + g.r.IntN(2)
			for _, i := range g.somePods(len(pods), min(k, len(pods))) {
				if effect == effLatency && g.chance(0.7) {
					g.add(inc, s, rUpstreamLatency, i, map[string]string{"upstream": u}, g.jitter(on, off))
				} else {
					g.add(inc, s, rUpstreamErrors, i, map[string]string{"upstream": u}, g.jitter(on, off))
				}
			}
		}
		if sev > 0.5 && g.chance(0.5) {
			target := "https://www.shop.example.com/"
			if s.Name == "partner-gateway" {
				target = "https://partners.shop.example.com/health"
			}
			g.add(inc, s, rProbeFailed, 0, map[string]string{"target": target}, g.chatter(on, off, 4*time.Minute, time.Minute)...)
		}
		if effect != effLatency {
			perPod(rHighErrorRate, 0.3)
		}
	case kWeb, kBFF, kAPI, kInternal, kExternal:
		if effect == effLatency {
			perPod(rHighLatency, 0.85)
			perPod(rHighErrorRate, 0.25)
		} else {
			perPod(rHighErrorRate, 0.85)
			perPod(rHighLatency, 0.25)
		}
		if len(via) > 0 && g.chance(0.2) {
			g.add(inc, s, rCircuitOpen, 0, map[string]string{"circuit": pickOne(g, via)}, g.jitter(on, off))
		}
		for _, v := range via {
			if d := g.cat.byName[v]; d != nil && d.Kind == kPostgres && g.chance(0.3) {
				one(rPoolExhausted, 1, nil)
			}
		}
	case kWorker:
		group := map[string]string{"consumergroup": s.Name}
		if effect == effErrors || effect == effDown {
			perPod(rJobFailures, 0.7)
			if g.chance(0.4) {
				g.add(inc, s, rDLQ, 0, map[string]string{"topic": s.Name + ".dlq"}, g.jitter(on, off))
			}
			if g.chance(0.5) {
				g.add(inc, s, rConsumerLag, 0, group, g.jitter(on.Add(3*time.Minute), off.Add(5*time.Minute)))
			}
		} else {
			g.add(inc, s, rConsumerLag, 0, group, g.jitter(on, off.Add(5*time.Minute)))
			if g.chance(0.3) {
				perPod(rJobFailures, 0.5)
			}
		}
	case kCron:
		run := pickOne(g, inc.podsOf(g, s))
		g.add(inc, s, rJobFailed, 0, map[string]string{"job_name": run.name[:len(run.name)-6]}, span{on.Add(g.between(0, 20*time.Minute)), off.Add(time.Hour)})
	}
}

// ---- propagation ----

type affected struct {
	on, off time.Time
	sev     float64
	effect  string
	via     []string
	done    bool
}

// strength is how likely trouble at dep reaches a service that calls it.
func (g *gen) strength(dep, user *service) float64 {
	switch {
	case user.Kind == kGateway:
		return 0.9
	case dep.Name == "redis-cache", dep.Kind == kObject:
		return 0.5
	case dep.Kind == kKafka && (user.Kind == kWorker || user.Kind == kCron):
		return 0.9
	case dep.Kind == kKafka:
		return 0.4 // producers buffer
	case dep.Kind == kVault:
		return 0.45 // secrets are cached until a restart
	case dep.Tier >= 3:
		return 0.4 // degraded gracefully
	case user.Kind == kWorker || user.Kind == kCron:
		return 0.65
	}
	return 0.8
}

// spread propagates trouble at root (already alerted by the caller) up to
// the services that depend on it, and adds their alerts.
func (g *gen) spread(inc *incident, root *service, effect string, on, off time.Time, sev float64) {
	aff := map[string]*affected{root.Name: {on: on, off: off, sev: sev, effect: effect}}
	for {
		var cur string
		for _, n := range g.cat.names {
			if a, ok := aff[n]; ok && !a.done && (cur == "" || a.on.Before(aff[cur].on)) {
				cur = n
			}
		}
		if cur == "" {
			break
		}
		a := aff[cur]
		a.done = true
		s := g.cat.byName[cur]
		for _, dn := range s.dependents {
			d := g.cat.byName[dn]
			if !g.chance(a.sev * g.strength(s, d)) {
				continue
			}
			dsev := a.sev * g.uni(0.6, 1.0)
			if dsev < 0.2 {
				continue
			}
			var delay time.Duration
			if d.Kind == kWorker || d.Kind == kCron {
				delay = g.logn(2*time.Minute, 0.6, 30*time.Second, 20*time.Minute)
			} else if g.chance(0.1) {
				// Pools and retries hold out for a while before giving up.
				delay = g.logn(3*time.Minute, 0.6, 30*time.Second, 15*time.Minute)
			} else {
				// Synchronous calls fail with the request; what differs
				// is when each rate window crosses its threshold.
				delay = g.logn(15*time.Second, 0.8, 2*time.Second, 5*time.Minute)
			}
			lag := g.logn(90*time.Second, 0.8, 10*time.Second, 10*time.Minute)
			if g.chance(0.1) {
				lag += g.between(10*time.Minute, 40*time.Minute) // stuck until someone restarts it
			}
			eff := effErrors
			switch {
			case a.effect == effLatency && g.chance(0.65), a.effect == effErrors && g.chance(0.2):
				eff = effLatency
			}
			if d.Kind == kWorker && g.chance(0.5) {
				eff = effLag
			}
			don, doff := a.on.Add(delay), a.off.Add(lag)
			if da, ok := aff[dn]; ok {
				if !da.done && don.Before(da.on) {
					da.on = don
				}
				da.sev = max(da.sev, dsev)
				if doff.After(da.off) {
					da.off = doff
				}
				if !slices.Contains(da.via, cur) {
					da.via = append(da.via, cur)
				}
				continue
			}
			aff[dn] = &affected{on: don, off: doff, sev: dsev, effect: eff, via: []string{cur}}
		}
	}
	for _, n := range g.cat.names {
		a, ok := aff[n]
		if !ok || n == root.Name {
			continue
		}
		g.hit(inc, g.cat.byName[n], a.effect, a.on, a.off, a.sev, a.via)
	}
}
