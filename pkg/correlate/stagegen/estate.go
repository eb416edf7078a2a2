package stagegen

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
)

// kind is what a service is, which decides its metrics, its alert rules
// and the ways it fails.
type kind int

const (
	kEdge      kind = iota // ingress, gateways, BFFs: HTTP with SLOs
	kHTTP                  // ordinary request/response services
	kWorker                // queue consumers and batch jobs
	kPostgres              // PostgreSQL clusters
	kRedis                 // Redis
	kMemcached             // memcached
	kKafka                 // the Kafka cluster
	kSearch                // Elasticsearch
	kObject                // object storage gateway
	kExternal              // proxies to third-party providers
	kWarehouse             // the analytics warehouse
)

// service is one service of the estate as it really is (its real
// dependencies); the catalog written out may differ.
type service struct {
	name  string
	team  string
	tier  int
	kind  kind
	deps  []string // what it calls / needs
	owner string
}

// teams and their namespaces.
var teams = map[string]string{
	"edge":        "edge",
	"identity":    "identity",
	"commerce":    "shop",
	"payments":    "payments",
	"discovery":   "discovery",
	"fulfillment": "fulfillment",
	"data":        "data",
	"ml":          "ml",
	"platform":    "platform",
	"messaging":   "messaging",
}

// estate is the system: 56 services of a mid-sized online shop, callers
// first. deps are the real runtime dependencies.
var estate = []service{
	{name: "ingress-nginx", team: "platform", tier: 1, kind: kEdge, deps: []string{"web-frontend", "api-gateway", "partner-api", "mobile-bff", "admin-portal"}},
	{name: "web-frontend", team: "edge", tier: 1, kind: kEdge, deps: []string{"api-gateway", "media-service", "feature-flags"}},
	{name: "mobile-bff", team: "edge", tier: 1, kind: kEdge, deps: []string{"api-gateway", "feature-flags"}},
	{name: "admin-portal", team: "edge", tier: 3, kind: kEdge, deps: []string{"api-gateway", "reporting"}},
	{name: "partner-api", team: "edge", tier: 2, kind: kEdge, deps: []string{"auth", "orders", "inventory", "rate-limiter"}},
	{name: "api-gateway", team: "edge", tier: 1, kind: kEdge, deps: []string{"auth", "rate-limiter", "checkout", "cart", "catalog", "search", "accounts", "orders", "recommendations", "reviews"}},
	{name: "auth", team: "identity", tier: 1, kind: kHTTP, deps: []string{"user-db", "session-cache", "rate-limiter"}},
	{name: "accounts", team: "identity", tier: 2, kind: kHTTP, deps: []string{"user-db", "auth", "notifications"}},
	{name: "rate-limiter", team: "platform", tier: 1, kind: kHTTP, deps: []string{"ratelimit-redis"}},
	{name: "feature-flags", team: "platform", tier: 2, kind: kHTTP, deps: []string{"flags-db"}},
	{name: "checkout", team: "commerce", tier: 1, kind: kHTTP, deps: []string{"cart", "payments", "pricing", "inventory", "orders", "fraud-detection", "shipping-quote"}},
	{name: "cart", team: "commerce", tier: 1, kind: kHTTP, deps: []string{"cart-cache", "pricing", "catalog"}},
	{name: "pricing", team: "commerce", tier: 1, kind: kHTTP, deps: []string{"pricing-db", "feature-flags", "currency-rates"}},
	{name: "orders", team: "commerce", tier: 1, kind: kHTTP, deps: []string{"orders-db", "kafka", "inventory"}},
	{name: "inventory", team: "fulfillment", tier: 1, kind: kHTTP, deps: []string{"inventory-db", "kafka"}},
	{name: "payments", team: "payments", tier: 1, kind: kHTTP, deps: []string{"payments-db", "payment-gateway-proxy", "fraud-detection", "kafka"}},
	{name: "fraud-detection", team: "payments", tier: 1, kind: kHTTP, deps: []string{"feature-store", "ml-serving"}},
	{name: "payment-gateway-proxy", team: "payments", tier: 1, kind: kExternal},
	{name: "catalog", team: "discovery", tier: 1, kind: kHTTP, deps: []string{"catalog-db", "catalog-cache", "media-service"}},
	{name: "search", team: "discovery", tier: 1, kind: kHTTP, deps: []string{"search-cluster", "catalog"}},
	{name: "search-indexer", team: "discovery", tier: 2, kind: kWorker, deps: []string{"kafka", "search-cluster", "catalog-db"}},
	{name: "recommendations", team: "ml", tier: 2, kind: kHTTP, deps: []string{"feature-store", "catalog", "ml-serving"}},
	{name: "reviews", team: "discovery", tier: 3, kind: kHTTP, deps: []string{"reviews-db", "moderation"}},
	{name: "moderation", team: "ml", tier: 3, kind: kWorker, deps: []string{"ml-serving", "kafka"}},
	{name: "ml-serving", team: "ml", tier: 2, kind: kHTTP, deps: []string{"object-store"}},
	{name: "feature-store", team: "ml", tier: 2, kind: kHTTP, deps: []string{"feature-cache"}},
	{name: "media-service", team: "discovery", tier: 2, kind: kHTTP, deps: []string{"object-store", "image-resizer"}},
	{name: "image-resizer", team: "discovery", tier: 3, kind: kWorker, deps: []string{"object-store"}},
	{name: "shipping-quote", team: "fulfillment", tier: 2, kind: kHTTP, deps: []string{"shipping-carrier-proxy", "inventory"}},
	{name: "shipping-carrier-proxy", team: "fulfillment", tier: 2, kind: kExternal},
	{name: "fulfillment", team: "fulfillment", tier: 2, kind: kWorker, deps: []string{"orders", "kafka", "warehouse-sync", "shipping-carrier-proxy"}},
	{name: "warehouse-sync", team: "fulfillment", tier: 3, kind: kWorker, deps: []string{"kafka", "inventory-db"}},
	{name: "notifications", team: "messaging", tier: 2, kind: kWorker, deps: []string{"kafka", "email-sender", "sms-sender", "user-db"}},
	{name: "email-sender", team: "messaging", tier: 3, kind: kWorker, deps: []string{"smtp-relay"}},
	{name: "sms-sender", team: "messaging", tier: 3, kind: kExternal},
	{name: "smtp-relay", team: "messaging", tier: 3, kind: kExternal},
	{name: "currency-rates", team: "commerce", tier: 2, kind: kExternal},
	{name: "reporting", team: "data", tier: 3, kind: kHTTP, deps: []string{"data-warehouse", "orders-db"}},
	{name: "etl-pipeline", team: "data", tier: 3, kind: kWorker, deps: []string{"kafka", "data-warehouse", "object-store", "orders-db"}},
	{name: "data-warehouse", team: "data", tier: 3, kind: kWarehouse},
	{name: "user-db", team: "platform", tier: 1, kind: kPostgres},
	{name: "orders-db", team: "platform", tier: 1, kind: kPostgres},
	{name: "payments-db", team: "payments", tier: 1, kind: kPostgres},
	{name: "pricing-db", team: "platform", tier: 2, kind: kPostgres},
	{name: "inventory-db", team: "platform", tier: 1, kind: kPostgres},
	{name: "catalog-db", team: "platform", tier: 2, kind: kPostgres},
	{name: "reviews-db", team: "platform", tier: 3, kind: kPostgres},
	{name: "flags-db", team: "platform", tier: 2, kind: kPostgres},
	{name: "session-cache", team: "identity", tier: 1, kind: kRedis},
	{name: "cart-cache", team: "commerce", tier: 1, kind: kRedis},
	{name: "feature-cache", team: "ml", tier: 2, kind: kRedis},
	{name: "ratelimit-redis", team: "platform", tier: 1, kind: kRedis},
	{name: "catalog-cache", team: "discovery", tier: 2, kind: kMemcached},
	{name: "kafka", team: "platform", tier: 1, kind: kKafka},
	{name: "search-cluster", team: "discovery", tier: 1, kind: kSearch},
	{name: "object-store", team: "platform", tier: 2, kind: kObject},
}

var owners = []string{"a.kowalski", "m.okafor", "j.lindqvist", "s.tanaka", "r.mehta", "l.moreau", "d.alvarez", "k.nguyen", "e.schmidt", "p.oconnor"}

// world is the estate of one storm: services by name, their callers, and
// the (imperfect) catalog written for it.
type world struct {
	svcs    []*service
	byName  map[string]*service
	callers map[string][]string
	nodes   []string
	catalog []byte
}

func newWorld(r *rand.Rand, cfg Config) *world {
	w := &world{byName: map[string]*service{}, callers: map[string][]string{}}
	for i := range estate {
		s := estate[i]
		s.deps = slices.Clone(s.deps)
		s.owner = owners[(i*7)%len(owners)]
		w.svcs = append(w.svcs, &s)
		w.byName[s.name] = &s
	}
	for _, s := range w.svcs {
		for _, d := range s.deps {
			if w.byName[d] == nil {
				panic("stagegen: unknown dependency " + d)
			}
			w.callers[d] = append(w.callers[d], s.name)
		}
	}
	for i := 1; i <= cfg.Nodes; i++ {
		w.nodes = append(w.nodes, fmt.Sprintf("ip-10-4-%d-%d.eu-west-1.compute.internal", 16+i%4, 10+i*7%200))
	}
	w.catalog = w.writeCatalog(r, cfg)
	return w
}

// writeCatalog writes the service catalog as a real one is: a few services
// never made it in, a few real dependencies were never declared, and a few
// declared ones are stale.
func (w *world) writeCatalog(r *rand.Rand, cfg Config) []byte {
	names := make([]string, 0, len(w.svcs))
	for _, s := range w.svcs {
		names = append(names, s.name)
	}
	missing := map[string]bool{}
	for _, i := range r.Perm(len(names))[:min(cfg.CatalogMissingServices, len(names))] {
		missing[names[i]] = true
	}
	type edge struct{ from, to string }
	var edges []edge
	for _, s := range w.svcs {
		for _, d := range s.deps {
			edges = append(edges, edge{s.name, d})
		}
	}
	dropped := map[edge]bool{}
	for _, i := range r.Perm(len(edges))[:min(cfg.CatalogMissingEdges, len(edges))] {
		dropped[edges[i]] = true
	}
	stale := map[string][]string{}
	for n := 0; n < cfg.CatalogStaleEdges; n++ {
		a, b := w.svcs[r.IntN(len(w.svcs))], w.svcs[r.IntN(len(w.svcs))]
		if a == b || slices.Contains(a.deps, b.name) || slices.Contains(stale[a.name], b.name) || a.kind >= kPostgres && a.kind != kExternal {
			continue
		}
		stale[a.name] = append(stale[a.name], b.name)
	}
	var sb strings.Builder
	sb.WriteString("# Service catalog (generated from the platform's service registry).\n")
	sb.WriteString("services:\n")
	sorted := slices.Clone(w.svcs)
	slices.SortFunc(sorted, func(a, b *service) int { return strings.Compare(a.name, b.name) })
	for _, s := range sorted {
		if missing[s.name] {
			continue
		}
		fmt.Fprintf(&sb, "  %s:\n", s.name)
		fmt.Fprintf(&sb, "    owner: %s\n", s.owner)
		fmt.Fprintf(&sb, "    team: %s\n", s.team)
		fmt.Fprintf(&sb, "    tier: %d\n", s.tier)
		fmt.Fprintf(&sb, "    runbook: https://runbooks.internal/%s/%s\n", s.team, s.name)
		var deps []string
		for _, d := range s.deps {
			if !dropped[edge{s.name, d}] {
				deps = append(deps, d)
			}
		}
		deps = append(deps, stale[s.name]...)
		if len(deps) == 0 {
			sb.WriteString("    depends_on: []\n")
			continue
		}
		sb.WriteString("    depends_on:\n")
		for _, d := range deps {
			fmt.Fprintf(&sb, "      - %s\n", d)
		}
	}
	return []byte(sb.String())
}

// namespace of a service.
func (w *world) namespace(s string) string { return teams[w.byName[s].team] }
