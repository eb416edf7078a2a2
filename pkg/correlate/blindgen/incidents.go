package blindgen

import (
	"fmt"
	"slices"
	"time"
)

// ---- root faults ----

// fault adds the alerts of service s failing on its own (the cause) and
// returns how the failure looks to the services calling it.
func (g *gen) fault(inc *incident, s *service, on, off time.Time, sev float64) (effect string, outSev float64) {
	pods := inc.podsOf(g, s)
	n := len(pods)
	quiet := g.chance(0.1) // a monitoring gap: the cause itself does not alert
	add := func(rule string, i int, extra map[string]string, sp ...span) {
		if !quiet {
			g.add(inc, s, rule, i, extra, sp...)
		}
	}
	whole := span{on, off}
	switch s.Kind {
	case kPostgres:
		switch g.r.IntN(3) {
		case 0: // primary lost, failover, clients reconnect
			down := on.Add(g.logn(3*time.Minute, 0.5, time.Minute, 15*time.Minute))
			add(rPgDown, 0, nil, span{on, down})
			if n > 1 && g.chance(0.6) {
				add(rPgLag, 1, nil, span{on.Add(time.Minute), off})
			}
			return effErrors, sev
		case 1: // connection storm
			add(rPgConns, 0, nil, whole)
			if g.chance(0.5) {
				add(rPgSlow, 0, nil, whole)
			}
			return effErrors, sev * 0.9
		default: // slow queries, lock contention
			add(rPgSlow, 0, nil, whole)
			if g.chance(0.5) {
				add(rPgLocks, 0, nil, g.chatter(on, off, 5*time.Minute, 2*time.Minute)...)
			}
			return effLatency, sev * 0.8
		}
	case kRedis:
		switch g.r.IntN(3) {
		case 0:
			add(rRedisDown, g.r.IntN(n), nil, whole)
			if s.Name == "redis-cache" {
				return effLatency, sev
			}
			return effErrors, sev
		case 1:
			add(rRedisMem, 0, nil, whole)
			add(rRedisEvict, 0, nil, span{on.Add(2 * time.Minute), off})
			return effLatency, sev * 0.7
		default:
			add(rRedisRejected, 0, nil, g.chatter(on, off, 3*time.Minute, 2*time.Minute)...)
			return effErrors, sev * 0.8
		}
	case kElastic:
		if g.chance(0.5) {
			add(rESRed, 0, nil, whole)
			if g.chance(0.5) {
				add(rESYellow, 0, nil, span{on.Add(-2 * time.Minute), off.Add(10 * time.Minute)})
			}
			return effErrors, sev
		}
		for _, i := range g.somePods(n, g.podsHit(n, sev)) {
			add(rESHeap, i, nil, g.jitter(on, off))
		}
		add(rESLatency, 0, nil, whole)
		return effLatency, sev * 0.8
	case kKafka:
		if g.chance(0.6) {
			b := g.r.IntN(n)
			add(rKafkaBroker, b, nil, whole)
			for i := range n {
				if i != b && g.chance(0.5) {
					add(rKafkaURP, i, nil, g.jitter(on, off.Add(5*time.Minute)))
				}
			}
			if g.chance(0.3) {
				add(rKafkaOffline, 0, nil, span{on, on.Add(g.between(2*time.Minute, 8*time.Minute))})
			}
			return effErrors, sev * 0.8
		}
		add(rKafkaProduce, g.r.IntN(n), nil, whole)
		add(rKafkaURP, g.r.IntN(n), nil, g.chatter(on, off, 6*time.Minute, 3*time.Minute)...)
		return effLatency, sev * 0.7
	case kObject:
		if g.chance(0.5) {
			add(rObjErrors, 0, nil, whole)
			return effErrors, sev
		}
		add(rObjLatency, 0, nil, whole)
		return effLatency, sev
	case kExternal:
		if g.chance(0.6) {
			add(rPSPErrors, 0, map[string]string{"provider": "adyen"}, whole)
			return effErrors, sev
		}
		add(rPSPLatency, 0, map[string]string{"provider": "adyen"}, whole)
		return effLatency, sev
	case kVault:
		add(rVaultSealed, g.r.IntN(n), nil, whole)
		add(rVaultLatency, 0, nil, whole)
		return effErrors, sev * 0.7
	case kWorker, kCron:
		g.hit(inc, s, effErrors, on, off, sev, nil)
		return effErrors, sev
	}
	// An application service failing by itself.
	switch g.r.IntN(4) {
	case 0: // overload
		g.hit(inc, s, effSat, on, off, sev, nil)
		return effLatency, sev * 0.8
	case 1: // connection pool exhausted, thread pool stuck
		g.add(inc, s, rPoolExhausted, g.r.IntN(n), nil, whole)
		g.hit(inc, s, effErrors, on, off, sev, nil)
		return effErrors, sev
	case 2: // pods dying
		g.hit(inc, s, effDown, on, off, sev, nil)
		return effErrors, sev * 0.8
	default:
		g.hit(inc, s, effErrors, on, off, sev, nil)
		return effErrors, sev
	}
}

// incidentLength is how long it takes to fix things.
func (g *gen) incidentLength() time.Duration {
	return g.logn(28*time.Minute, 0.6, 6*time.Minute, 3*time.Hour)
}

// ---- incident kinds ----

func (g *gen) cascade(at time.Time) {
	inc := g.newIncident("cascade")
	var w []float64
	cands := g.cat.pick(func(s *service) bool {
		return s.stateful() || s.Kind == kExternal || s.Kind == kInternal || s.Kind == kVault
	})
	for _, s := range cands {
		switch {
		case s.Kind == kPostgres:
			w = append(w, 3)
		case s.stateful():
			w = append(w, 2)
		case s.Kind == kExternal:
			w = append(w, 2.5)
		case s.Kind == kVault:
			w = append(w, 0.5)
		default:
			w = append(w, 1)
		}
	}
	for i, c := range cands {
		w[i] *= g.hot[c.Name]
	}
	root := cands[g.weighted(w)]
	waves := 1
	if g.chance(g.cfg.SecondWave) {
		waves = 2
	}
	on := at
	sev := g.uni(0.6, 1)
	for range waves {
		off := on.Add(g.incidentLength())
		eff, s := g.fault(inc, root, on, off, sev)
		g.spread(inc, root, eff, on, off, s)
		on = off.Add(g.logn(18*time.Minute, 0.6, 4*time.Minute, 90*time.Minute))
		sev *= g.uni(0.6, 1)
	}
}

func (g *gen) deploy(at time.Time) {
	inc := g.newIncident("deploy")
	apps := g.cat.pick(func(s *service) bool { return s.app() })
	s := g.pickHot(apps)
	kind := "deploy"
	rollout := g.logn(3*time.Minute, 0.6, 30*time.Second, 15*time.Minute)
	if g.chance(0.2) {
		kind = "config"
		rollout = g.between(10*time.Second, time.Minute)
	}
	t := at.Add(-rollout)
	g.change(t, s, kind, false)
	on := at
	// The new pods are those of a new ReplicaSet.
	inc.pods[s.Name] = g.freshPods(s)
	fix := on.Add(g.logn(22*time.Minute, 0.5, 6*time.Minute, 2*time.Hour))
	mode := g.weighted([]float64{0.25, 0.35, 0.15, 0.12, 0.13})
	if kind == "config" && mode == 0 {
		mode = 1
	}
	if mode == 3 { // memory leak: OOM kills start long after the deploy
		on = at.Add(g.logn(50*time.Minute, 0.4, 15*time.Minute, 3*time.Hour))
		fix = on.Add(g.logn(60*time.Minute, 0.5, 15*time.Minute, 4*time.Hour))
	}
	recover := fix.Add(g.logn(2*time.Minute, 0.5, 30*time.Second, 8*time.Minute))
	g.change(fix, s, kind, true)
	sev := g.uni(0.5, 1)
	waves := 1
	if mode != 3 && g.chance(g.cfg.SecondWave*0.5) {
		waves = 2 // rolled forward with a fix that did not fix it
	}
	for w := range waves {
		if w == 1 {
			on = recover.Add(g.logn(25*time.Minute, 0.5, 8*time.Minute, 2*time.Hour))
			g.change(on.Add(-g.logn(2*time.Minute, 0.5, 20*time.Second, 8*time.Minute)), s, kind, false)
			fix = on.Add(g.logn(15*time.Minute, 0.5, 5*time.Minute, time.Hour))
			recover = fix.Add(g.logn(2*time.Minute, 0.5, 30*time.Second, 8*time.Minute))
			g.change(fix, s, kind, true)
		}
		switch mode {
		case 0: // new pods crash, the old ones keep serving
			g.hit(inc, s, effCrash, on, recover, sev, nil)
			if g.chance(0.3) {
				g.add(inc, s, rRollout, 0, nil, span{on, recover})
			}
			if g.chance(0.3) {
				g.hit(inc, s, effErrors, on, recover, sev*0.4, nil)
				g.spread(inc, s, effErrors, on, recover, sev*0.4)
			}
		case 1: // bad code or bad config: errors
			g.hit(inc, s, effErrors, on, recover, sev, nil)
			g.spread(inc, s, effErrors, on, recover, sev)
		case 2: // a new query hammers the database; its other clients suffer too
			g.hit(inc, s, effLatency, on, recover, sev, nil)
			var db *service
			for _, d := range s.Deps {
				if ds := g.cat.byName[d]; ds.Kind == kPostgres || ds.Kind == kElastic || ds.Kind == kRedis {
					db = ds
				}
			}
			if db != nil {
				dbOn := on.Add(g.between(0, 3*time.Minute))
				switch db.Kind {
				case kPostgres:
					g.add(inc, db, rPgSlow, 0, nil, span{dbOn, recover})
					if g.chance(0.5) {
						g.add(inc, db, rPgConns, 0, nil, span{dbOn, recover})
					}
				case kElastic:
					g.add(inc, db, rESLatency, 0, nil, span{dbOn, recover})
				case kRedis:
					g.add(inc, db, rRedisMem, 0, nil, span{dbOn, recover.Add(10 * time.Minute)})
				}
				g.spread(inc, db, effLatency, dbOn, recover, sev*0.8)
			} else {
				g.spread(inc, s, effLatency, on, recover, sev)
			}
		case 3:
			g.hit(inc, s, effOOM, on, recover, sev, nil)
			if g.chance(0.5) {
				g.hit(inc, s, effErrors, on, recover, sev*0.3, nil)
			}
		default: // latency regression
			g.hit(inc, s, effLatency, on, recover, sev, nil)
			if g.chance(0.5) {
				g.hit(inc, s, effSat, on.Add(2*time.Minute), recover, sev, nil)
			}
			g.spread(inc, s, effLatency, on, recover, sev*0.7)
		}
	}
}

// local is one service in trouble by itself: a stuck consumer, a pod on a
// bad node, a cron job failing, a hot shard. Several alerts, no spread.
func (g *gen) local(at time.Time) {
	inc := g.newIncident("local")
	s := pickOne(g, g.cat.pick(func(s *service) bool { return s.app() || s.stateful() }))
	off := at.Add(g.logn(25*time.Minute, 0.7, 5*time.Minute, 3*time.Hour))
	sev := g.uni(0.2, 0.7)
	switch {
	case s.Kind == kWorker:
		g.hit(inc, s, pickOne(g, []string{effLag, effErrors, effCrash}), at, off, sev, nil)
	case s.Kind == kCron:
		g.hit(inc, s, effErrors, at, off, sev, nil)
		g.add(inc, s, rCrashLoop, 0, nil, span{at, off})
	case s.stateful():
		g.fault(inc, s, at, off, sev*0.5)
	default:
		g.hit(inc, s, pickOne(g, []string{effDown, effSat, effOOM, effCrash, effLatency}), at, off, sev, nil)
	}
}

// flapping is an alert oscillating around its threshold for a long time.
func (g *gen) flapping(at time.Time) {
	inc := g.newIncident("flapping")
	type opt struct {
		kinds []string
		rule  string
		extra func(*service) map[string]string
	}
	opts := []opt{
		{[]string{kAPI, kBFF, kInternal, kWeb}, rHighLatency, nil},
		{[]string{kAPI, kBFF, kInternal}, rHighErrorRate, nil},
		{[]string{kWorker}, rConsumerLag, func(s *service) map[string]string { return map[string]string{"consumergroup": s.Name} }},
		{[]string{kRedis}, rRedisMem, nil},
		{[]string{kElastic}, rESHeap, nil},
		{[]string{kGateway}, rProbeFailed, func(s *service) map[string]string {
			return map[string]string{"target": "https://www.shop.example.com/search?q=shoes"}
		}},
		{[]string{kPostgres}, rPgLocks, nil},
		{[]string{kDNS}, rDNSForward, nil},
	}
	for {
		o := pickOne(g, opts)
		cands := g.cat.pick(func(s *service) bool { return slices.Contains(o.kinds, s.Kind) })
		if len(cands) == 0 {
			continue
		}
		s := pickOne(g, cands)
		var extra map[string]string
		if o.extra != nil {
			extra = o.extra(s)
		}
		end := at.Add(g.logn(80*time.Minute, 0.5, 30*time.Minute, 5*time.Hour))
		r := rules[o.rule]
		onMed := max(r.forDur+2*time.Minute, 4*time.Minute)
		k := 1
		if extra == nil && g.chance(0.5) {
			k = 2
		}
		for _, i := range g.somePods(len(inc.podsOf(g, s)), min(k, s.Pods)) {
			g.add(inc, s, o.rule, i, extra, g.chatter(at.Add(g.between(0, 10*time.Minute)), end, onMed, 4*time.Minute)...)
		}
		return
	}
}

// capacity is a slow burn: a resource runs out over hours, warnings first.
func (g *gen) capacity(at time.Time) {
	inc := g.newIncident("capacity")
	switch g.r.IntN(3) {
	case 0: // a database volume fills up
		db := pickOne(g, g.cat.pick(func(s *service) bool { return s.Kind == kPostgres }))
		crit := at.Add(g.logn(100*time.Minute, 0.4, 30*time.Minute, 5*time.Hour))
		if g.chance(0.5) { // caught in time: volume expanded
			end := crit.Add(g.logn(30*time.Minute, 0.5, 10*time.Minute, 2*time.Hour))
			g.add(inc, db, rPgDisk, 0, nil, span{at, end})
			g.add(inc, db, rPgDiskCrit, 0, nil, span{crit, end})
			return
		}
		full := crit.Add(g.logn(35*time.Minute, 0.5, 10*time.Minute, 2*time.Hour))
		end := full.Add(g.logn(25*time.Minute, 0.5, 8*time.Minute, 2*time.Hour))
		g.add(inc, db, rPgDisk, 0, nil, span{at, end})
		g.add(inc, db, rPgDiskCrit, 0, nil, span{crit, end})
		g.add(inc, db, rPgDown, 0, nil, span{full, full.Add(g.between(2*time.Minute, 10*time.Minute))})
		g.spread(inc, db, effErrors, full, end, g.uni(0.7, 1))
	case 1: // traffic peak outgrows a service path
		apis := g.cat.pick(func(s *service) bool { return s.Kind == kAPI || s.Kind == kInternal })
		s := pickOne(g, apis)
		end := at.Add(g.logn(2*time.Hour, 0.3, time.Hour, 5*time.Hour))
		g.add(inc, s, rHPAMaxed, 0, nil, span{at, end})
		t := at.Add(g.logn(20*time.Minute, 0.5, 5*time.Minute, time.Hour))
		g.hit(inc, s, effSat, t, end, g.uni(0.5, 0.9), nil)
		t = t.Add(g.logn(25*time.Minute, 0.5, 5*time.Minute, 90*time.Minute))
		if t.Before(end) {
			g.hit(inc, s, effLatency, t, end.Add(-10*time.Minute), 0.8, nil)
			g.spread(inc, s, effLatency, t, end.Add(-10*time.Minute), g.uni(0.5, 0.9))
		}
	default: // search cluster disks fill, shards go unassigned
		es := g.cat.byName["elasticsearch"]
		warn := at.Add(g.logn(90*time.Minute, 0.4, 30*time.Minute, 4*time.Hour))
		end := warn.Add(g.logn(50*time.Minute, 0.5, 15*time.Minute, 3*time.Hour))
		n := es.Pods
		for _, i := range g.somePods(n, 1+g.r.IntN(2)) {
			g.add(inc, es, rESDisk, i, nil, span{at.Add(g.between(0, 20*time.Minute)), end})
		}
		g.add(inc, es, rESYellow, 0, nil, span{warn, end})
		if g.chance(0.5) {
			red := warn.Add(g.logn(20*time.Minute, 0.5, 5*time.Minute, time.Hour))
			if red.Before(end) {
				g.add(inc, es, rESRed, 0, nil, span{red, end})
				g.spread(inc, es, effErrors, red, end, g.uni(0.6, 1))
			}
		}
	}
}

// infra is a shared-infrastructure failure: many services that share no
// dependency in the catalog fail together.
func (g *gen) infra(at time.Time) {
	inc := g.newIncident("infra")
	off := at.Add(g.logn(20*time.Minute, 0.6, 5*time.Minute, 2*time.Hour))
	apps := g.cat.pick(func(s *service) bool { return s.app() })
	victims := func(lo, hi int) []*service {
		k := lo + g.r.IntN(hi-lo+1)
		var out []*service
		for _, i := range g.somePods(len(apps), min(k, len(apps))) {
			out = append(out, apps[i])
		}
		return out
	}
	switch g.r.IntN(3) {
	case 0: // DNS: upstream resolvers fail or CoreDNS is overloaded
		dns := g.cat.byName["coredns"]
		g.add(inc, dns, rDNSErrors, 0, nil, span{at, off})
		g.add(inc, dns, rDNSLatency, 1, nil, span{at, off})
		if g.chance(0.5) {
			g.add(inc, dns, rDNSForward, 0, nil, g.chatter(at, off, 5*time.Minute, time.Minute)...)
		}
		for _, s := range victims(5, 11) {
			on := at.Add(g.logn(time.Minute, 0.8, 10*time.Second, 6*time.Minute))
			g.hit(inc, s, effErrors, on, off.Add(g.between(0, 3*time.Minute)), g.uni(0.3, 0.8), nil)
		}
	case 1: // service mesh control plane: stale endpoints, 503s between services
		mesh := g.cat.byName["istio-control-plane"]
		g.add(inc, mesh, rIstioDown, 0, nil, span{at, off})
		g.add(inc, mesh, rIstioPush, 1, nil, span{at.Add(-time.Minute), off})
		for _, s := range victims(4, 9) {
			on := at.Add(g.logn(3*time.Minute, 0.6, 30*time.Second, 20*time.Minute))
			if !on.Before(off) {
				continue
			}
			pods := inc.podsOf(g, s)
			for _, i := range g.somePods(len(pods), g.podsHit(len(pods), 0.6)) {
				g.add(inc, s, rEnvoy503, i, nil, g.jitter(on, off))
			}
			if g.chance(0.5) {
				g.hit(inc, s, effErrors, on, off, 0.4, nil)
			}
		}
	default: // a node dies and takes a pod of many services with it
		nodes := g.cat.byName["k8s-nodes"]
		i := g.r.IntN(nodes.Pods)
		g.add(inc, nodes, rNodeNotReady, i, nil, span{at, off.Add(30 * time.Minute)})
		if g.chance(0.6) {
			g.add(inc, nodes, rNodeUnreachable, i, nil, span{at, off.Add(30 * time.Minute)})
		}
		if g.chance(0.3) {
			g.add(inc, nodes, rKubeletDown, i, nil, span{at, off.Add(30 * time.Minute)})
		}
		for _, s := range victims(4, 8) {
			on := at.Add(g.between(0, 90*time.Second))
			podOff := on.Add(g.logn(6*time.Minute, 0.5, 2*time.Minute, 20*time.Minute)) // rescheduled elsewhere
			g.add(inc, s, rTargetDown, 0, nil, span{on, podOff})
			if g.chance(0.5) {
				g.add(inc, s, rNotReady, 0, nil, span{on, podOff})
			}
			if s.http() && g.chance(0.4) {
				g.hit(inc, s, effErrors, on, on.Add(3*time.Minute), 0.3, nil)
			}
		}
		for _, s := range g.cat.pick(func(s *service) bool { return s.stateful() }) {
			if !g.chance(0.2) {
				continue
			}
			pods := inc.podsOf(g, s)
			k := g.r.IntN(len(pods))
			switch s.Kind {
			case kKafka:
				g.add(inc, s, rKafkaBroker, k, nil, span{at, off})
				g.add(inc, s, rKafkaURP, (k+1)%len(pods), nil, span{at, off.Add(10 * time.Minute)})
			case kElastic:
				g.add(inc, s, rESYellow, k, nil, span{at, off.Add(20 * time.Minute)})
			case kPostgres:
				g.add(inc, s, rPgLag, k, nil, span{at, off})
			case kRedis:
				g.add(inc, s, rRedisDown, k, nil, span{at, at.Add(3 * time.Minute)})
			}
		}
	}
}

// certExpiry: a certificate whose renewal has been failing for days,
// warned about all along, expires during the day.
func (g *gen) certExpiry(at time.Time) {
	inc := g.newIncident("cert-expiry")
	cm := g.cat.byName["cert-manager"]
	gw := g.cat.byName["edge-gateway"]
	cert, host := "api-shop-example-com", "https://api.shop.example.com/"
	hurt := g.cat.byName["mobile-bff"]
	if pg := g.cat.byName["partner-gateway"]; pg != nil && g.chance(0.5) {
		gw, cert, host, hurt = pg, "partners-shop-example-com", "https://partners.shop.example.com/", g.cat.byName["partner-api"]
	}
	fixed := at.Add(g.logn(40*time.Minute, 0.5, 10*time.Minute, 3*time.Hour))
	labels := map[string]string{"certificate": cert}
	g.add(inc, cm, rCertSoon, 0, labels, span{at.Add(-7 * 24 * time.Hour), fixed})
	g.add(inc, cm, rCertNotReady, 0, labels, span{at.Add(-g.between(24*time.Hour, 72*time.Hour)), fixed})
	g.add(inc, gw, rSSLExpired, 0, map[string]string{"target": host}, span{at, fixed})
	g.add(inc, gw, rProbeFailed, 0, map[string]string{"target": host}, span{at, fixed})
	g.add(inc, hurt, rTrafficDrop, 0, nil, span{at.Add(time.Minute), fixed.Add(5 * time.Minute)})
	if hurt.Name == "mobile-bff" && g.chance(0.5) {
		g.add(inc, hurt, rHighErrorRate, 1, nil, span{at.Add(30 * time.Second), fixed})
	}
}

// ---- noise ----

type noiseOpt struct {
	kinds []string
	rule  string
}

var noiseOpts = []noiseOpt{
	{[]string{kAPI, kBFF, kInternal, kWeb, kWorker, kGateway}, rThrottling},
	{[]string{kAPI, kBFF, kInternal, kWeb, kWorker}, rThrottling},
	{[]string{kAPI, kBFF, kInternal, kWeb, kWorker}, rMemNearLimit},
	{[]string{kAPI, kBFF, kInternal, kWorker}, rCrashLoop},
	{[]string{kAPI, kBFF, kInternal, kWorker}, rTargetDown},
	{[]string{kAPI, kBFF, kInternal, kWeb}, rHighLatency},
	{[]string{kAPI, kBFF, kInternal}, rHighErrorRate},
	{[]string{kAPI, kBFF, kInternal}, rHPAMaxed},
	{[]string{kCron}, rJobFailed},
	{[]string{kPlatform}, rNodeDisk},
	{[]string{kPlatform}, rNodeCPU},
	{[]string{kPlatform}, rNodeMem},
	{[]string{kPlatform}, rNodeClock},
	{[]string{kMonitor}, rScrapeFail},
	{[]string{kMonitor}, rRuleFail},
	{[]string{kElastic}, rESDisk},
	{[]string{kRedis}, rRedisMem},
	{[]string{kWorker}, rConsumerLag},
	{[]string{kPostgres}, rPgSlow},
	{[]string{kDNS}, rDNSLatency},
	{[]string{kKafka}, rKafkaURP},
}

func (g *gen) noise(at time.Time) {
	inc := g.newIncident("noise")
	for {
		o := pickOne(g, noiseOpts)
		cands := g.cat.pick(func(s *service) bool { return slices.Contains(o.kinds, s.Kind) })
		if len(cands) == 0 {
			continue
		}
		s := g.pickHot(cands)
		var extra map[string]string
		switch o.rule {
		case rConsumerLag:
			extra = map[string]string{"consumergroup": s.Name}
		case rJobFailed:
			extra = map[string]string{"job_name": fmt.Sprintf("%s-%d", s.Name, 28_000_000+g.r.IntN(999_999))}
		}
		r := rules[o.rule]
		d := g.logn(12*time.Minute, 0.9, 2*time.Minute, 6*time.Hour) + r.forDur
		if o.rule == rNodeDisk || o.rule == rJobFailed {
			d += g.between(time.Hour, 6*time.Hour)
		}
		var conds []span
		switch {
		case g.chance(0.25):
			conds = g.chatter(at, at.Add(d+g.between(20*time.Minute, 2*time.Hour)), r.forDur+3*time.Minute, 5*time.Minute)
		case g.chance(0.12): // the same alert again later in the day
			t := at
			for range 2 + g.r.IntN(3) {
				conds = append(conds, span{t, t.Add(d)})
				t = t.Add(d + g.logn(2*time.Hour, 0.5, 20*time.Minute, 8*time.Hour))
			}
		default:
			conds = []span{{at, at.Add(d)}}
		}
		g.add(inc, s, o.rule, g.r.IntN(s.Pods), extra, conds...)
		return
	}
}

// ---- changes ----

var deployers = []string{"argocd", "spinnaker", "m.keller", "s.haddad", "l.bianchi", "e.fischer", "c.ruiz", "b.schmidt", "i.novak", "z.kaya", "t.okafor", "k.adeyemi", "v.ivanova"}

func (g *gen) change(t time.Time, s *service, kind string, rollback bool) {
	author := pickOne(g, deployers)
	if owners := ownerNames[s.Team]; len(owners) > 0 && g.chance(0.6) {
		author = pickOne(g, owners)
	}
	const hex = "0123456789abcdef"
	b := make([]byte, 40)
	for i := range b {
		b[i] = hex[g.r.IntN(16)]
	}
	g.chs = append(g.chs, &change{t: t.Truncate(time.Second), svc: s.Name, kind: kind, rollback: rollback, author: author, commit: string(b)})
}

func (g *gen) backgroundChanges() {
	apps := g.cat.pick(func(s *service) bool { return s.app() })
	infra := g.cat.pick(func(s *service) bool { return !s.app() })
	for range g.cfg.Changes {
		t := g.timeOfDay(deployWeights, 0, 0)
		if g.chance(0.15) {
			g.change(t, pickOne(g, infra), "config", false)
			continue
		}
		kind := "deploy"
		if g.chance(0.2) {
			kind = "config"
		}
		g.change(t, g.pickHot(apps), kind, false)
	}
}
