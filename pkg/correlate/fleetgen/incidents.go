package fleetgen

import (
	"slices"
	"time"
)

// incidentKind is one kind of real incident: how often it happens (its
// weight in the mix), whether it follows the deploy calendar, and how it
// unfolds. run returns the region it hit.
type incidentKind struct {
	name         string
	weight       float64
	changeDriven bool
	run          func(in *incident, at time.Time, region string) string
}

// kinds is the incident mix of an ordinary day. Bad changes dominate, as
// in every post-incident review tally; then slow exhaustion, consumer
// backlogs, noisy neighbours and lost nodes, database trouble, the rarer
// region or zone network events, and credentials and certificates.
var kinds = []incidentKind{
	{"bad-deploy", 0.27, true, (*incident).badDeploy},
	{"config-push", 0.11, true, (*incident).configPush},
	{"exhaustion", 0.10, false, (*incident).exhaustion},
	{"queue-backlog", 0.08, false, (*incident).queueBacklog},
	{"noisy-neighbour", 0.07, false, (*incident).noisyNeighbour},
	{"node-loss", 0.07, false, (*incident).nodeLoss},
	{"db-trouble", 0.09, false, (*incident).dbTrouble},
	{"network", 0.07, false, (*incident).network},
	{"expired-credential", 0.05, false, (*incident).expiredCredential},
	{"cert-or-secret", 0.05, true, (*incident).certOrSecret},
}

func kindNamed(name string) incidentKind {
	for _, k := range kinds {
		if k.name == name {
			return k
		}
	}
	panic("fleetgen: unknown incident kind " + name)
}

// regionFor keeps a forced region when s runs there, else draws one of
// s's regions: Europe carries most traffic, then the US, then APAC.
func (in *incident) regionFor(region string, s *service) string {
	if region != "" && s.runsIn(region) {
		return region
	}
	weights := map[string]float64{"eu-west-1": 0.55, "us-east-1": 0.35, "ap-southeast-2": 0.10}
	total := 0.0
	rs := s.inRegions()
	for _, r := range rs {
		total += weights[r]
	}
	x := in.g.rng.Float64() * total
	for _, r := range rs {
		if x -= weights[r]; x < 0 {
			return r
		}
	}
	return rs[len(rs)-1]
}

// candidates lists the services of the given kinds, those running in
// region when one is forced (all of them if none does).
func candidates(region string, keep func(*service) bool) []*service {
	var all, here []*service
	for i := range estate {
		s := &estate[i]
		if !keep(s) {
			continue
		}
		all = append(all, s)
		if region == "" || s.runsIn(region) {
			here = append(here, s)
		}
	}
	if len(here) == 0 {
		return all
	}
	return here
}

func isApp(s *service) bool { return s.kind == kindAPI || s.kind == kindWorker }

// badDeploy: a deploy goes bad in the first region it reaches (canary
// analysis is loose) and is rolled back; sometimes it reached every region
// before anyone noticed. The new pods crash loop, or the new version
// throws errors or is slow, and callers notice.
func (in *incident) badDeploy(at time.Time, region string) string {
	g := in.g
	s := pick(g, candidates(region, func(s *service) bool { return isApp(s) && s.name != "feature-flags" }))
	region = in.regionFor(region, s)
	g.deploy(s, at)
	regions := []string{region}
	if g.chance(0.2) {
		regions = s.inRegions()
	}
	fix := at.Add(g.between(12*min, 55*min))
	g.rollback(s, fix)
	detect := at.Add(g.between(1*min, 4*min)) // the rollout replaces pods
	mode := g.rng.Float64()
	for _, r := range regions {
		switch {
		case mode < 0.35: // crash loop: the new ReplicaSet never becomes ready
			rs := g.replicaSet(s)
			for range 1 + g.rng.IntN(3) {
				in.hold(in.pod("KubePodCrashLooping", s, r, rs+"-"+g.randString(5), node{}), detect, fix)
			}
			if g.chance(0.5) {
				in.hold(in.workload("KubeDeploymentRolloutStuck", s, r, "deployment"), detect, fix)
			}
			if g.chance(0.4) {
				in.hold(in.workload("KubeDeploymentReplicasMismatch", s, r, "deployment"), detect, fix)
			}
			in.failing(s, r, detect, fix, 0.4)
		case mode < 0.85: // error-rate regression
			in.failing(s, r, detect, fix, 0.9)
			for _, c := range callers(s, r) {
				in.upstream(c, s, r, detect, fix, 0.35)
				if g.chance(0.25) {
					in.failing(c, r, detect, fix, 0.6)
				}
			}
		default: // latency regression
			in.slow(s, r, detect, fix, 0.9)
			for _, c := range callers(s, r) {
				if g.chance(0.3) {
					in.slow(c, r, detect, fix, 0.7)
				}
			}
		}
	}
	return region
}

// configPush: a feature flag flipped for everyone, or a mesh resource
// (timeout, retry, DestinationRule) pushed to a cluster, breaks several
// services at once, often in every region; it is reverted.
func (in *incident) configPush(at time.Time, region string) string {
	g := in.g
	var targets []*service
	if g.chance(0.6) {
		name := pick(g, flagNames)
		g.flag(at, name, "on")
		g.flag(at.Add(g.between(10*min, 40*min)), name, "off")
		targets = some(g, callers(svc("feature-flags"), "eu-west-1"), 2+g.rng.IntN(5))
	} else {
		what := pick(g, []string{"destinationrule", "virtualservice-timeouts", "envoyfilter", "peerauthentication"})
		g.config(svc("service-mesh"), at, what)
		targets = some(g, candidates("", func(s *service) bool { return s.kind == kindAPI }), 3+g.rng.IntN(7))
		g.config(svc("service-mesh"), at.Add(g.between(10*min, 40*min)), "revert-"+what)
	}
	fix := g.changes[len(g.changes)-1].at
	global := g.chance(0.65)
	if region == "" {
		region = in.regionFor("", svc("edge-gateway"))
	}
	for _, s := range targets {
		for _, r := range s.inRegions() {
			if !global && r != region {
				continue
			}
			// Flag SDKs poll every 15-60s; istiod pushes within seconds.
			from := at.Add(g.between(10*sec, 60*sec))
			if g.chance(0.75) {
				in.failing(s, r, from, fix, 0.8)
			} else {
				in.slow(s, r, from, fix, 0.8)
			}
			if g.chance(0.08) { // the new config does not parse: pods restart
				in.hold(in.pod("KubePodCrashLooping", s, r, "", node{}), from, fix)
			}
		}
	}
	return region
}

// network: a zone's (or the whole region's) network degrades: packet
// loss and latency between zones hit whatever runs there at once.
func (in *incident) network(at time.Time, region string) string {
	g := in.g
	if region == "" {
		region = in.regionFor("", svc("edge-gateway"))
	}
	whole := g.chance(0.25)
	p := 0.35
	if whole {
		p = 0.6
	}
	end := at.Add(g.between(10*min, 50*min))
	flaky := func(a *alert, from, to time.Time) { // partial loss: alerts come and go
		if a == nil {
			return
		}
		for t := from; t.Before(to); {
			on := g.between(4*min, 15*min)
			in.hold(a, t, t.Add(on))
			t = t.Add(on + g.between(1*min, 6*min))
		}
	}
	for i := range estate {
		s := &estate[i]
		if !s.runsIn(region) || !g.chance(p) {
			continue
		}
		switch s.kind {
		case kindAPI:
			in.slow(s, region, at, end, 0.6)
			if g.chance(0.35) {
				in.failing(s, region, at, end, 0.7)
			}
		case kindWorker:
			in.backlog(s, region, at, end, 0.2)
		case kindPostgres:
			if g.chance(0.3) {
				flaky(in.exporter("PostgresReplicationLag", s, region, 1+g.rng.IntN(2)), at.Add(g.between(0, 2*min)), end)
			}
		case kindKafka:
			for range 1 + g.rng.IntN(2) {
				in.hold(in.exporter("KafkaUnderReplicatedPartitions", s, region, g.rng.IntN(6)), at, end)
			}
		case kindPlatform:
			for _, cl := range clustersIn(region) {
				if g.chance(0.2) {
					in.hold(in.nodeAlert("CoreDNSErrorsHigh", region, cl, node{}), at, end)
				}
				if !whole || g.chance(0.5) {
					continue // nodes keep reaching the API server from the other zones
				}
				for range 1 + g.rng.IntN(2) {
					in.hold(in.nodeAlert("KubeNodeNotReady", region, cl, g.node(region)), at, end)
				}
			}
		case kindVault, kindMesh:
			// Raft and the control plane ride out packet loss.
		default:
			in.failing(s, region, at, end, 0.4)
		}
	}
	if whole && g.chance(0.4) { // probed from the other regions
		in.hold(in.app("EndpointDown", svc("edge-gateway"), region, "job", "blackbox", "instance", "https://"+region+".api.tessera.example/healthz"), at, end)
	}
	return region
}

// dbTrouble: a PostgreSQL primary fails over (Patroni), which takes from
// seconds to a stuck quarter of an hour, and its callers and their callers
// fail meanwhile; or a replica's lag climbs for an hour and readers get
// slow and stale.
func (in *incident) dbTrouble(at time.Time, region string) string {
	g := in.g
	db := pick(g, candidates(region, func(s *service) bool { return s.kind == kindPostgres }))
	region = in.regionFor(region, db)
	if g.chance(0.6) {
		failover := at.Add(g.between(30*sec, 12*min))
		old := g.rng.IntN(3)
		if g.chance(0.8) {
			in.hold(in.exporter("PostgresDown", db, region, old), at, at.Add(g.between(3*min, 30*min)))
		}
		if g.chance(0.9) {
			in.hold(in.exporter("PostgresFailover", db, region, (old+1)%3), failover, failover.Add(3*min))
		}
		if g.chance(0.5) {
			in.hold(in.exporter("PostgresReplicationLag", db, region, (old+2)%3), failover, failover.Add(g.between(5*min, 25*min)))
		}
		if g.chance(0.4) {
			in.hold(in.workload("KubeStatefulSetReplicasMismatch", db, region, "statefulset"), at, at.Add(g.between(10*min, 30*min)))
		}
		for _, c := range callers(db, region) {
			if g.chance(0.8) {
				in.hold(in.app("DBConnectionErrors", c, region, "db", db.name), at, failover)
			}
			in.failing(c, region, at, failover, 0.5)
			for _, c2 := range callers(c, region) {
				in.upstream(c2, c, region, at, failover, 0.3)
				if g.chance(0.2) {
					in.failing(c2, region, at, failover, 0.5)
				}
			}
		}
		return region
	}
	end := at.Add(g.between(30*min, 2*hr))
	replica := 1 + g.rng.IntN(2)
	in.hold(in.exporter("PostgresReplicationLag", db, region, replica), at, end)
	if g.chance(0.6) {
		in.hold(in.exporter("PostgresReplicationLag:crit", db, region, replica), at.Add(g.between(10*min, 40*min)), end.Add(-5*min))
	}
	if g.chance(0.5) {
		in.hold(in.exporter("PostgresSlowQueries", db, region, 0), at, end)
	}
	for _, c := range callers(db, region) {
		if g.chance(0.4) {
			in.slow(c, region, at.Add(g.between(5*min, 30*min)), end, 0.7)
		}
	}
	return region
}

// outputs maps a consumer to the service whose data goes stale when it
// falls behind.
var outputs = map[string][2]string{
	"search-indexer":      {"search-api", "search-index"},
	"notification-worker": {"notifications-api", "deliveries"},
	"usage-metering":      {"reporting-api", "usage"},
	"audit-writer":        {"admin-console", "audit-log"},
	"embedding-worker":    {"assistant-api", "embeddings"},
	"export-worker":       {"reporting-api", "exports"},
	"invoice-worker":      {"billing-api", "invoices"},
}

// queueBacklog: a consumer falls behind (its datastore or provider is
// slow, or a poison message), the lag alerts minutes later, and the data
// its readers serve goes stale tens of minutes later.
func (in *incident) queueBacklog(at time.Time, region string) string {
	g := in.g
	c := pick(g, candidates(region, func(s *service) bool { return s.kind == kindWorker && s.topic != "" }))
	region = in.regionFor(region, c)
	end := at.Add(g.between(40*min, 150*min))
	if g.chance(0.6) { // the cause is downstream
		dep := svc(pick(g, c.calls()))
		if dep.kind != kindKafka && dep.kind != kindRabbit && dep.runsIn(region) {
			in.slow(dep, region, at, end.Add(-20*min), 0.7)
		}
	}
	in.backlog(c, region, at, end, 0.95)
	if g.chance(0.4) {
		in.hold(in.app("WorkerProcessingErrors", c, region, "queue", c.topic), at, end)
	}
	if g.chance(0.4) {
		in.hold(in.workload("KubeHpaMaxedOut", c, region, "horizontalpodautoscaler"), at.Add(g.between(2*min, 10*min)), end)
	}
	if out, ok := outputs[c.name]; ok && svc(out[0]).runsIn(region) && g.chance(0.6) {
		in.hold(in.app("DataFreshnessStale", svc(out[0]), region, "dataset", out[1]), at.Add(g.between(15*min, 45*min)), end.Add(g.between(5*min, 20*min)))
	}
	return region
}

// noisyNeighbour: a batch pod hogs a node's CPU, memory or disk I/O;
// unrelated pods scheduled on the same node get throttled, slow or evicted.
func (in *incident) noisyNeighbour(at time.Time, region string) string {
	g := in.g
	hog := pick(g, candidates(region, func(s *service) bool {
		return slices.Contains([]string{"export-worker", "embedding-worker", "usage-metering", "search-indexer", "scheduler", "invoice-worker"}, s.name)
	}))
	region = in.regionFor(region, hog)
	n := g.node(region)
	cl := cluster(hog, region)
	end := at.Add(g.between(20*min, 100*min))
	if g.chance(0.7) {
		in.hold(in.nodeAlert("NodeSystemSaturation", region, cl, n), at, end)
	}
	if g.chance(0.4) {
		in.hold(in.nodeAlert("NodeMemoryHighUtilization", region, cl, n), at, end)
	}
	hogPod := g.podName(hog)
	if g.chance(0.4) {
		in.hold(in.pod("ContainerMemoryNearLimit", hog, region, hogPod, n), at, end)
	}
	if g.chance(0.4) {
		in.hold(in.pod("CPUThrottlingHigh", hog, region, hogPod, n), at, end)
	}
	victims := some(g, candidates(region, func(s *service) bool { return isApp(s) && s != hog && s.runsIn(region) }), 2+g.rng.IntN(4))
	for _, v := range victims {
		from := at.Add(g.between(0, 10*min))
		if g.chance(0.5) {
			in.hold(in.pod("CPUThrottlingHigh", v, region, "", n), from, end)
		}
		if g.chance(0.2) {
			in.hold(in.pod("KubePodNotReady", v, region, "", n), from, end)
		}
		in.slow(v, region, from, end, 0.35)
	}
	return region
}

// nodeLoss: a node disappears (spot reclaim, kernel panic, a stuck EBS
// volume); its pods are rescheduled, quickly for Deployments, slowly for
// StatefulSets, which degrade meanwhile.
func (in *incident) nodeLoss(at time.Time, region string) string {
	g := in.g
	if region == "" {
		region = in.regionFor("", svc("projects-api"))
	}
	cls := clustersIn(region)
	cl := pick(g, cls)
	n := g.node(region)
	end := at.Add(g.between(10*min, 60*min))
	in.hold(in.nodeAlert("KubeNodeNotReady", region, cl, n), at, end)
	onNode := some(g, candidates(region, func(s *service) bool {
		return s.runsIn(region) && cluster(s, region) == cl && (isApp(s) || s.kind.datastore())
	}), 3+g.rng.IntN(5))
	for _, s := range onNode {
		back := at.Add(g.between(3*min, 25*min))
		if !s.kind.datastore() {
			in.hold(in.pod("KubePodNotReady", s, region, "", n), at, back)
			if g.chance(0.3) {
				in.hold(in.workload("KubeDeploymentReplicasMismatch", s, region, "deployment"), at, back)
			}
			if g.chance(0.2) {
				in.hold(in.targetDown(s, region), at, back)
			}
			continue
		}
		back = at.Add(g.between(10*min, 45*min)) // volumes reattach slowly
		if g.chance(0.6) {
			in.hold(in.workload("KubeStatefulSetReplicasMismatch", s, region, "statefulset"), at, back)
		}
		switch s.kind {
		case kindKafka:
			in.hold(in.exporter("KafkaUnderReplicatedPartitions", s, region, g.rng.IntN(6)), at, back)
		case kindPostgres:
			if g.chance(0.5) {
				in.hold(in.exporter("PostgresReplicationLag", s, region, 1+g.rng.IntN(2)), at, back)
			}
		case kindSearch:
			in.hold(in.exporter("OpenSearchClusterYellow", s, region, 0), at, back)
		default:
			in.failing(s, region, at, back, 0.3)
		}
	}
	return region
}

// expiredCredential: an API key or OAuth token for a third party expired
// (often at midnight UTC, nobody owned the renewal); calls fail with 401
// until someone rotates it, and whatever waits on those calls backs up.
func (in *incident) expiredCredential(at time.Time, region string) string {
	g := in.g
	s := pick(g, candidates("", func(s *service) bool { return s.provider != "" }))
	if g.chance(0.3) {
		at = at.Truncate(24 * time.Hour).Add(g.between(0, 2*sec)) // the key expired at midnight
	}
	provider := s.provider
	if s.name == "integrations-api" {
		provider = pick(g, []string{"slack", "github", "jira"})
	}
	end := at.Add(g.between(30*min, 4*hr))
	for _, r := range s.inRegions() { // the credential is global
		in.hold(in.app("ThirdPartyAPIErrors", s, r, "provider", provider, "status_code", "401"), at, end)
		if g.chance(0.2) {
			in.hold(in.app("ThirdPartyAPIErrors", s, r, "provider", provider, "status_code", "403"), at, end)
		}
		if s.kind == kindAPI && g.chance(0.4) {
			in.failing(s, r, at, end, 0.6)
		}
		if s.kind == kindWorker {
			in.backlog(s, r, at, end, 0.7)
		}
		for _, c := range callers(s, r) {
			if c.kind == kindWorker {
				in.backlog(c, r, at, end, 0.6)
			} else {
				in.failing(c, r, at, end, 0.3)
			}
		}
	}
	if region == "" {
		region = s.inRegions()[0]
	}
	return region
}

// certOrSecret: the mesh's intermediate CA failed to renew and mTLS
// breaks across a cluster; or Vault rotated a database's credentials and
// its clients did not pick them up; or the public certificate expired.
func (in *incident) certOrSecret(at time.Time, region string) string {
	g := in.g
	end := at.Add(g.between(15*min, 60*min))
	switch x := g.rng.Float64(); {
	case x < 0.4:
		mesh := svc("service-mesh")
		region = in.regionFor(region, mesh)
		in.hold(in.cert("CertManagerCertNotReady", mesh, region, "istio-intermediate-ca"), at.Add(-g.between(5*min, 40*min)), end)
		if g.chance(0.5) {
			in.hold(in.exporter("IstiodPushErrors", mesh, region, 0), at, end)
		}
		for _, s := range some(g, candidates(region, func(s *service) bool { return s.kind == kindAPI && s.runsIn(region) }), 4+g.rng.IntN(7)) {
			if g.chance(0.6) {
				in.hold(in.mesh("IstioHighErrorRate", s, region), at, end)
			}
			in.failing(s, region, at, end, 0.4)
			for _, d := range s.deps {
				if svc(d).kind == kindAPI && svc(d).runsIn(region) {
					in.upstream(s, svc(d), region, at, end, 0.3)
				}
			}
		}
	case x < 0.75:
		db := pick(g, candidates(region, func(s *service) bool { return s.kind == kindPostgres }))
		region = in.regionFor(region, db)
		g.config(svc("vault"), at.Add(-g.between(1*min, 5*min)), "database-roles/"+db.name)
		if g.chance(0.8) {
			in.hold(in.exporter("PostgresAuthFailures", db, region, 0), at, end)
		}
		for _, c := range callers(db, region) {
			if g.chance(0.8) {
				in.hold(in.app("DBConnectionErrors", c, region, "db", db.name), at, end)
			}
			in.failing(c, region, at, end, 0.5)
			if g.chance(0.3) { // restarted pods fail their startup probe
				in.hold(in.pod("KubePodCrashLooping", c, region, "", node{}), at.Add(5*min), end)
			}
		}
	default:
		edge := svc("edge-gateway")
		in.hold(in.cert("CertManagerCertNotReady", edge, "eu-west-1", "edge-gateway-tls"), at.Add(-g.between(10*min, 60*min)), end)
		for _, r := range edge.inRegions() {
			if g.chance(0.9) {
				in.hold(in.app("EndpointDown", edge, r, "job", "blackbox", "instance", "https://"+r+".api.tessera.example/healthz"), at, end)
			}
			if g.chance(0.6) {
				in.hold(in.sloth("AvailabilityBudgetBurn:page", edge, r), at, end)
			}
		}
		if region == "" {
			region = "eu-west-1"
		}
	}
	return region
}

// exhaustion: a slow leak of disk, memory or connections that warns for
// hours before it goes critical, if nobody acts first.
func (in *incident) exhaustion(at time.Time, region string) string {
	g := in.g
	switch x := g.rng.Float64(); {
	case x < 0.35: // a datastore volume filling up
		s := pick(g, candidates(region, func(s *service) bool {
			return s.kind == kindPostgres || s.kind == kindKafka || s.kind == kindSearch || s.kind == kindClickhouse
		}))
		region = in.regionFor(region, s)
		n, ordinal := g.node(region), g.rng.IntN(replicas(s))
		end := at.Add(g.between(2*hr, 10*hr))
		in.hold(in.volume("KubePersistentVolumeFillingUp", s, region, ordinal, n), at, end)
		if g.chance(0.4) {
			crit := at.Add(g.between(90*min, 6*hr))
			if crit.Before(end) {
				in.hold(in.volume("KubePersistentVolumeFillingUp:crit", s, region, ordinal, n), crit, end)
				in.failing(s, region, crit.Add(g.between(2*min, 20*min)), end, 0.5)
			}
		}
	case x < 0.55: // a node's root disk filling with logs and images
		region = in.regionFor(region, svc("projects-api"))
		n := g.node(region)
		cl := pick(g, clustersIn(region))
		end := at.Add(g.between(2*hr, 8*hr))
		fs := []string{"device", "/dev/nvme0n1p1", "fstype", "xfs", "mountpoint", "/"}
		in.hold(in.nodeAlert("NodeFilesystemSpaceFillingUp", region, cl, n, fs...), at, end)
		if g.chance(0.4) {
			in.hold(in.nodeAlert("NodeFilesystemSpaceFillingUp:crit", region, cl, n, fs...), at.Add(g.between(1*hr, 4*hr)), end)
		}
	case x < 0.85: // a memory leak: pods approach their limit one by one and get OOM killed
		s := pick(g, candidates(region, isApp))
		region = in.regionFor(region, s)
		t := at
		for range 2 + g.rng.IntN(4) {
			n, p := g.node(region), g.podName(s)
			oom := t.Add(g.between(20*min, 90*min))
			in.hold(in.pod("ContainerMemoryNearLimit", s, region, p, n), t, oom)
			if g.chance(0.7) {
				in.hold(in.pod("ContainerOOMKilled", s, region, p, n), oom, oom.Add(10*min))
			}
			if g.chance(0.3) {
				in.slow(s, region, oom.Add(-10*min), oom, 0.6)
			}
			t = t.Add(g.between(10*min, 60*min))
		}
	default: // a connection pool creeping towards its limit
		s := pick(g, candidates(region, func(s *service) bool {
			return s.kind == kindAPI && slices.ContainsFunc(s.deps, func(d string) bool { return svc(d).kind == kindPostgres })
		}))
		region = in.regionFor(region, s)
		var db *service
		for _, d := range s.deps {
			if svc(d).kind == kindPostgres {
				db = svc(d)
			}
		}
		end := at.Add(g.between(40*min, 4*hr))
		in.hold(in.app("DBPoolSaturation", s, region, "pool", db.name), at, end)
		if g.chance(0.5) {
			crit := at.Add(g.between(20*min, 2*hr))
			if crit.Before(end) {
				in.hold(in.app("DBPoolSaturation:crit", s, region, "pool", db.name), crit, end)
				in.slow(s, region, crit, end, 0.5)
			}
		}
		if db.runsIn(region) && g.chance(0.5) {
			in.hold(in.exporter("PostgresTooManyConnections", db, region, 0), at.Add(g.between(0, 30*min)), end)
		}
	}
	return region
}
