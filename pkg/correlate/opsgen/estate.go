package opsgen

import (
	"fmt"
	"hash/fnv"
	"slices"
	"strings"
	"time"
)

// role is what kind of workload a service is; it decides which alerts it
// can fire and how a failure shows on its callers.
type role int

const (
	roleHTTP        role = iota // synchronous API (Deployment)
	roleEdge                    // gateway or BFF in front of the APIs
	roleWorker                  // Kafka consumer or batch worker
	roleAdapter                 // wraps an external provider (PSP, carrier, SMS)
	rolePostgres                // StatefulSet, primary plus replicas
	roleRedis                   // StatefulSet with sentinel
	roleKafka                   // brokers
	roleElastic                 // search cluster
	roleObjectStore             // MinIO
	roleClickHouse              // analytics store
	roleCluster                 // the Kubernetes cluster itself (nodes)
)

func (r role) stateful() bool { return r >= rolePostgres && r <= roleClickHouse }

func (r role) app() bool { return r <= roleAdapter }

// pool is the estate every storm draws from: a mid-sized e-commerce
// company on one Kubernetes cluster. deps are the real runtime calls
// (the service calls what it depends on). Core services are in every
// estate; the rest are drawn per seed.
var pool = []struct {
	name, team string
	role       role
	tier       int
	core       bool
	deps       string
	extra      string // provider of an adapter, topic of a Kafka user
}{
	// data-platform: the shared stores
	{"postgres-orders", "data-platform", rolePostgres, 1, true, "", ""},
	{"postgres-payments", "data-platform", rolePostgres, 1, true, "", ""},
	{"postgres-users", "data-platform", rolePostgres, 1, true, "", ""},
	{"postgres-catalog", "data-platform", rolePostgres, 1, true, "", ""},
	{"redis-cache", "data-platform", roleRedis, 1, true, "", ""},
	{"redis-sessions", "data-platform", roleRedis, 1, true, "", ""},
	{"kafka", "data-platform", roleKafka, 1, true, "", ""},
	{"elasticsearch", "data-platform", roleElastic, 2, false, "", ""},
	{"object-storage", "data-platform", roleObjectStore, 2, false, "", ""},
	{"clickhouse", "data-platform", roleClickHouse, 3, false, "", ""},
	// platform
	{"kubernetes", "platform", roleCluster, 1, true, "", ""},
	{"feature-flags", "platform", roleHTTP, 2, false, "redis-cache", ""},
	// identity
	{"auth", "identity", roleHTTP, 1, true, "postgres-users redis-sessions", ""},
	{"user-profile", "identity", roleHTTP, 1, true, "postgres-users redis-cache", ""},
	{"accounts", "identity", roleHTTP, 2, false, "postgres-users kafka auth", "users.v1"},
	{"consent", "identity", roleHTTP, 3, false, "postgres-users", ""},
	{"mfa", "identity", roleHTTP, 2, false, "redis-sessions sms-gateway", ""},
	// commerce
	{"cart", "commerce", roleHTTP, 1, true, "redis-cache pricing catalog inventory", ""},
	{"checkout", "commerce", roleHTTP, 1, true, "cart pricing payments orders auth inventory promotions tax-service user-profile", ""},
	{"orders", "commerce", roleHTTP, 1, true, "postgres-orders kafka inventory", "orders.v1"},
	{"pricing", "commerce", roleHTTP, 1, true, "postgres-catalog redis-cache promotions", ""},
	{"promotions", "commerce", roleHTTP, 2, false, "postgres-catalog redis-cache", ""},
	{"tax-service", "commerce", roleAdapter, 2, false, "", "avalara"},
	{"loyalty", "commerce", roleHTTP, 3, false, "postgres-users kafka", "loyalty.v1"},
	{"wishlist", "commerce", roleHTTP, 3, false, "postgres-users catalog", ""},
	{"gift-cards", "commerce", roleHTTP, 3, false, "postgres-payments ledger", ""},
	{"store-locator", "commerce", roleHTTP, 3, false, "postgres-catalog redis-cache", ""},
	// payments
	{"payments", "payments", roleHTTP, 1, true, "postgres-payments psp-adapter fraud-detection ledger kafka", "payments.v1"},
	{"psp-adapter", "payments", roleAdapter, 1, true, "", "adyen"},
	{"fraud-detection", "payments", roleHTTP, 1, false, "redis-cache feature-store", ""},
	{"ledger", "payments", roleHTTP, 1, false, "postgres-payments kafka", "ledger.v1"},
	{"refunds", "payments", roleHTTP, 2, false, "payments ledger orders", ""},
	{"invoicing", "payments", roleWorker, 2, false, "postgres-payments object-storage kafka", "payments.v1"},
	{"subscriptions", "payments", roleHTTP, 2, false, "payments postgres-payments user-profile", ""},
	{"payouts", "payments", roleWorker, 2, false, "ledger psp-adapter postgres-payments", ""},
	// discovery
	{"catalog", "discovery", roleHTTP, 1, true, "postgres-catalog redis-cache object-storage", "catalog.v1"},
	{"search", "discovery", roleHTTP, 1, false, "elasticsearch catalog", ""},
	{"search-indexer", "discovery", roleWorker, 2, false, "kafka elasticsearch catalog", "catalog.v1"},
	{"recommendations", "discovery", roleHTTP, 2, false, "redis-cache catalog feature-store", ""},
	{"feature-store", "discovery", roleHTTP, 2, false, "redis-cache clickhouse", ""},
	{"reviews", "discovery", roleHTTP, 3, false, "postgres-catalog user-profile", ""},
	{"media", "discovery", roleHTTP, 2, false, "object-storage", ""},
	{"image-resizer", "discovery", roleHTTP, 3, false, "object-storage", ""},
	{"sitemap-generator", "discovery", roleWorker, 3, false, "catalog object-storage", ""},
	// fulfillment
	{"inventory", "fulfillment", roleHTTP, 1, true, "postgres-orders redis-cache kafka", "inventory.v1"},
	{"shipping", "fulfillment", roleHTTP, 2, false, "orders carrier-gateway postgres-orders", ""},
	{"carrier-gateway", "fulfillment", roleAdapter, 2, false, "", "dhl"},
	{"warehouse-sync", "fulfillment", roleWorker, 2, false, "kafka inventory", "orders.v1"},
	{"returns", "fulfillment", roleHTTP, 3, false, "orders shipping refunds", ""},
	{"delivery-tracking", "fulfillment", roleHTTP, 3, false, "shipping kafka redis-cache", "shipments.v1"},
	{"label-printer", "fulfillment", roleHTTP, 3, false, "carrier-gateway object-storage", ""},
	// messaging
	{"notifications", "messaging", roleWorker, 2, false, "kafka user-profile email-sender sms-gateway push-gateway", "notifications.v1"},
	{"email-sender", "messaging", roleAdapter, 2, false, "", "sendgrid"},
	{"sms-gateway", "messaging", roleAdapter, 3, false, "", "twilio"},
	{"push-gateway", "messaging", roleAdapter, 3, false, "", "fcm"},
	{"campaign-scheduler", "messaging", roleWorker, 3, false, "notifications postgres-users clickhouse", ""},
	{"chat-support", "messaging", roleHTTP, 3, false, "user-profile orders postgres-users", ""},
	// web (edge)
	{"api-gateway", "web", roleEdge, 1, true, "auth cart checkout catalog search orders user-profile recommendations feature-flags", ""},
	{"web-frontend", "web", roleEdge, 1, true, "api-gateway media ab-testing", ""},
	{"mobile-bff", "web", roleEdge, 1, false, "auth cart checkout catalog search orders user-profile delivery-tracking event-collector", ""},
	{"partner-api", "web", roleEdge, 2, false, "auth catalog inventory orders", ""},
	{"admin-portal", "web", roleEdge, 3, false, "auth orders catalog refunds returns user-profile", ""},
	// analytics
	{"event-collector", "analytics", roleHTTP, 2, false, "kafka", "clickstream.v1"},
	{"stream-processor", "analytics", roleWorker, 3, false, "kafka clickhouse", "clickstream.v1"},
	{"reporting", "analytics", roleHTTP, 3, false, "clickhouse postgres-orders", ""},
	{"etl-orders", "analytics", roleWorker, 3, false, "postgres-orders clickhouse object-storage", ""},
	{"ab-testing", "analytics", roleHTTP, 2, false, "redis-cache clickhouse", ""},
}

var people = []string{
	"a.novak", "m.okafor", "s.tanaka", "l.fischer", "r.mehta", "j.silva",
	"k.olsen", "d.costa", "e.byrne", "p.kowalski", "h.nguyen", "t.mueller",
	"c.rossi", "n.haddad", "o.petrov", "y.kim", "f.dubois", "g.larsen",
	"i.moreno", "v.shah", "b.adeyemi", "z.horvat", "w.chen", "u.lindqvist",
}

// service is one service of the estate, with its pods over time.
type service struct {
	name, team, namespace, owner string
	role                         role
	tier                         int
	extra                        string // provider or topic
	deps                         []*service
	callers                      []*service
	gens                         []generation // pod generations, oldest first
	version                      [3]int
	configRev                    int
	routes                       []string // HTTP routes, for teams that alert per route
}

// generation is the set of pods a rollout leaves running from a time on.
type generation struct {
	from time.Time
	rs   string
	pods []pod
}

type pod struct{ name, node string }

// podsAt are the pods running at t.
func (s *service) podsAt(t time.Time) []pod {
	i := len(s.gens) - 1
	for i > 0 && s.gens[i].from.After(t) {
		i--
	}
	return s.gens[i].pods
}

// k8sAlphabet is the alphabet Kubernetes uses for generated name suffixes.
const k8sAlphabet = "bcdfghjklmnpqrstvwxz2456789"

func (g *gen) k8sSuffix(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = k8sAlphabet[g.r.IntN(len(k8sAlphabet))]
	}
	return string(b)
}

// buildEstate draws the services, their dependencies, owners and pods.
func (g *gen) buildEstate() {
	n := g.cfg.MinServices + g.r.IntN(g.cfg.MaxServices-g.cfg.MinServices+1)
	var optional []int
	picked := map[string]bool{}
	for i, p := range pool {
		if p.core {
			picked[p.name] = true
		} else {
			optional = append(optional, i)
		}
	}
	g.r.Shuffle(len(optional), func(i, j int) { optional[i], optional[j] = optional[j], optional[i] })
	for _, i := range optional {
		if len(picked) >= n {
			break
		}
		picked[pool[i].name] = true
	}

	owners := map[string][]string{}
	perm := g.r.Perm(len(people))
	k := 0
	g.byName = map[string]*service{}
	for _, p := range pool {
		if !picked[p.name] {
			continue
		}
		if owners[p.team] == nil {
			owners[p.team] = []string{people[perm[k%len(perm)]], people[perm[(k+1)%len(perm)]]}
			k += 2
		}
		s := &service{name: p.name, team: p.team, role: p.role, tier: p.tier, extra: p.extra}
		s.owner = owners[p.team][g.r.IntN(2)] + "@" + g.domain
		switch {
		case p.role == roleCluster:
			s.namespace = "kube-system"
		case p.role.stateful():
			s.namespace = "data"
		default:
			s.namespace = p.team
		}
		s.version = [3]int{1 + g.r.IntN(4), g.r.IntN(60), g.r.IntN(12)}
		g.services = append(g.services, s)
		g.byName[s.name] = s
	}
	slices.SortFunc(g.services, func(a, b *service) int { return strings.Compare(a.name, b.name) })

	// Dependencies: those of the pool between services present, plus a
	// few extra ones on shared stores that vary per seed (who reads the
	// shared cache or publishes on Kafka differs between estates).
	shared := []string{"redis-cache", "kafka", "postgres-users", "postgres-orders", "object-storage"}
	for _, p := range pool {
		s := g.byName[p.name]
		if s == nil {
			continue
		}
		for _, d := range strings.Fields(p.deps) {
			if ds := g.byName[d]; ds != nil {
				s.deps = append(s.deps, ds)
			}
		}
		if s.role.app() && g.r.Float64() < 0.15 {
			if ds := g.byName[shared[g.r.IntN(len(shared))]]; ds != nil && !slices.Contains(s.deps, ds) {
				s.deps = append(s.deps, ds)
			}
		}
	}
	for _, s := range g.services {
		for _, d := range s.deps {
			d.callers = append(d.callers, s)
		}
	}
	for _, s := range g.services {
		slices.SortFunc(s.callers, func(a, b *service) int { return strings.Compare(a.name, b.name) })
	}

	nodes := 10 + g.r.IntN(15)
	for range nodes {
		g.nodes = append(g.nodes, fmt.Sprintf("ip-10-%d-%d-%d.%s.compute.internal", 40+g.r.IntN(4), g.r.IntN(256), 1+g.r.IntN(254), g.region))
	}
	for _, s := range g.services {
		g.firstPods(s)
		if s.role == roleHTTP || s.role == roleEdge || s.role == roleAdapter {
			s.routes = g.httpRoutes(s)
		}
	}
}

// httpRoutes are the routes a service serves.
func (g *gen) httpRoutes(s *service) []string {
	res := strings.TrimSuffix(s.name, "-service")
	all := []string{
		"GET /v1/" + res, "GET /v1/" + res + "/{id}", "POST /v1/" + res,
		"PUT /v1/" + res + "/{id}", "DELETE /v1/" + res + "/{id}", "GET /v1/" + res + "/search",
		"POST /v1/" + res + "/{id}/actions", "GET /v2/" + res,
	}
	g.r.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	routes := all[:3+g.r.IntN(4)]
	slices.Sort(routes)
	return routes
}

// anyRoute labels an HTTP alert of s with one of its routes when its team
// alerts per route (nil otherwise).
func (g *gen) anyRoute(s *service) map[string]string {
	if !g.teams[s.team].perRoute || len(s.routes) == 0 {
		return nil
	}
	return map[string]string{"route": pick(g, s.routes)}
}

// routeVia labels an HTTP alert of s with the route that calls dep when
// its team alerts per route: the same dependency always fails the same
// route.
func (g *gen) routeVia(s, dep *service) map[string]string {
	if !g.teams[s.team].perRoute || len(s.routes) == 0 {
		return nil
	}
	h := fnv.New32a()
	h.Write([]byte(dep.name))
	return map[string]string{"route": s.routes[h.Sum32()%uint32(len(s.routes))]}
}

// firstPods places the pods running before the storm.
func (g *gen) firstPods(s *service) {
	var n int
	switch s.role {
	case roleCluster:
		return
	case rolePostgres, roleClickHouse:
		n = 2 + g.r.IntN(2)
	case roleRedis, roleKafka, roleElastic:
		n = 3 + g.r.IntN(3)
	case roleObjectStore:
		n = 4
	case roleEdge:
		n = 4 + g.r.IntN(6)
	default:
		n = 2 + g.r.IntN(3)
		if s.tier == 1 {
			n += 2 + g.r.IntN(4)
		}
	}
	gen0 := generation{from: g.start.Add(-30 * 24 * time.Hour)}
	if !s.role.stateful() {
		gen0.rs = g.k8sSuffix(9 + g.r.IntN(2))
	}
	for i := range n {
		name := fmt.Sprintf("%s-%d", s.name, i)
		if s.role == roleRedis {
			name = fmt.Sprintf("%s-node-%d", s.name, i)
		}
		if !s.role.stateful() {
			name = s.name + "-" + gen0.rs + "-" + g.k8sSuffix(5)
		}
		gen0.pods = append(gen0.pods, pod{name: name, node: g.nodes[g.r.IntN(len(g.nodes))]})
	}
	s.gens = []generation{gen0}
}

// rollPods replaces the pods of a Deployment at t (a rollout); rs names
// the ReplicaSet ("" for a new one).
func (g *gen) rollPods(s *service, t time.Time, rs string) {
	if s.role.stateful() || s.role == roleCluster {
		return
	}
	if rs == "" {
		rs = g.k8sSuffix(9 + g.r.IntN(2))
	}
	last := s.gens[len(s.gens)-1]
	next := generation{from: t, rs: rs}
	for range last.pods {
		next.pods = append(next.pods, pod{name: s.name + "-" + rs + "-" + g.k8sSuffix(5), node: g.nodes[g.r.IntN(len(g.nodes))]})
	}
	// keep generations ordered by time
	i := len(s.gens)
	for i > 0 && s.gens[i-1].from.After(t) {
		i--
	}
	s.gens = slices.Insert(s.gens, i, next)
}

// catalog renders the service catalog YAML. A share of real dependency
// edges is left out, as in any catalog maintained by hand.
func (g *gen) catalog() []byte {
	var b strings.Builder
	b.WriteString("# Service catalog, exported from the developer portal.\n")
	b.WriteString("services:\n")
	for _, s := range g.services {
		var deps []string
		for _, d := range s.deps {
			if g.r.Float64() < g.cfg.CatalogMissingEdges {
				continue
			}
			deps = append(deps, d.name)
		}
		slices.Sort(deps)
		fmt.Fprintf(&b, "  %s:\n", s.name)
		fmt.Fprintf(&b, "    owner: %s\n", s.owner)
		fmt.Fprintf(&b, "    team: %s\n", s.team)
		fmt.Fprintf(&b, "    tier: %d\n", s.tier)
		fmt.Fprintf(&b, "    runbook: https://runbooks.%s/%s/%s\n", g.domain, s.team, s.name)
		fmt.Fprintf(&b, "    depends_on: [%s]\n", strings.Join(deps, ", "))
	}
	return []byte(b.String())
}
