package specgen

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
)

// kind is what a service is; it decides which alerts it raises.
type kind int

const (
	kindEdge    kind = iota // user-facing entry points: frontends, gateways
	kindApp                 // business services
	kindDB                  // PostgreSQL clusters
	kindCache               // Redis
	kindQueue               // Kafka
	kindSearch              // Elasticsearch
	kindStorage             // object storage
)

func (k kind) isStore() bool { return k >= kindDB }

// poolEntry is a candidate service: its name, kind and owning team.
type poolEntry struct {
	name string
	kind kind
	team string
}

var edgePool = []poolEntry{
	{"web-frontend", kindEdge, "storefront"},
	{"mobile-bff", kindEdge, "mobile"},
	{"api-gateway", kindEdge, "platform"},
	{"partner-api", kindEdge, "partners"},
	{"admin-portal", kindEdge, "backoffice"},
}

var appPool = []poolEntry{
	{"checkout", kindApp, "storefront"},
	{"cart", kindApp, "storefront"},
	{"orders", kindApp, "fulfilment"},
	{"payments", kindApp, "payments"},
	{"catalog", kindApp, "catalog"},
	{"search", kindApp, "catalog"},
	{"pricing", kindApp, "catalog"},
	{"inventory", kindApp, "fulfilment"},
	{"shipping", kindApp, "fulfilment"},
	{"accounts", kindApp, "identity"},
	{"auth", kindApp, "identity"},
	{"notifications", kindApp, "growth"},
	{"recommendations", kindApp, "growth"},
	{"reviews", kindApp, "catalog"},
	{"loyalty", kindApp, "growth"},
	{"fraud-check", kindApp, "payments"},
	{"invoicing", kindApp, "payments"},
	{"promotions", kindApp, "growth"},
	{"media", kindApp, "catalog"},
	{"geo", kindApp, "fulfilment"},
}

var storePool = []poolEntry{
	{"orders-db", kindDB, "fulfilment"},
	{"payments-db", kindDB, "payments"},
	{"accounts-db", kindDB, "identity"},
	{"catalog-db", kindDB, "catalog"},
	{"inventory-db", kindDB, "fulfilment"},
	{"shipping-db", kindDB, "fulfilment"},
	{"reviews-db", kindDB, "catalog"},
	{"session-cache", kindCache, "platform"},
	{"catalog-cache", kindCache, "catalog"},
	{"pricing-cache", kindCache, "catalog"},
	{"event-bus", kindQueue, "platform"},
	{"email-queue", kindQueue, "growth"},
	{"search-index", kindSearch, "catalog"},
	{"object-store", kindStorage, "platform"},
}

var owners = map[string][]string{
	"storefront": {"maria.lopez", "tom.becker"},
	"mobile":     {"aiko.tanaka"},
	"platform":   {"sam.okafor", "lena.weiss"},
	"partners":   {"raj.patel"},
	"backoffice": {"nina.kovac"},
	"fulfilment": {"jon.berg", "ines.silva"},
	"payments":   {"omar.haddad", "julia.nowak"},
	"catalog":    {"li.wei", "pablo.ruiz"},
	"identity":   {"kate.murphy"},
	"growth":     {"ben.adler", "sara.costa"},
}

// service is one node of the dependency graph.
type service struct {
	name       string
	kind       kind
	team       string
	owner      string
	tier       int
	deps       []int // indices of the services it depends on
	dependents []int // indices of the services that depend on it
}

// graph is the service catalog: a DAG where edges point from a service to
// what it depends on (edge -> apps -> apps -> stores).
type graph struct {
	svcs []*service
}

// newGraph draws a catalog of about n services: a few edges on top, a
// layered DAG of business services, and data stores at the bottom.
func newGraph(r *rand.Rand, n int) *graph {
	n = max(8, min(n, len(edgePool)+len(appPool)+len(storePool)))
	nEdge := max(2, min(n/10, len(edgePool)))
	nStore := max(3, min(n*3/10, len(storePool)))
	nApp := min(n-nEdge-nStore, len(appPool))

	pick := func(pool []poolEntry, k int) []poolEntry {
		p := slices.Clone(pool)
		r.Shuffle(len(p), func(i, j int) { p[i], p[j] = p[j], p[i] })
		return p[:k]
	}
	g := &graph{}
	add := func(e poolEntry) int {
		os := owners[e.team]
		g.svcs = append(g.svcs, &service{name: e.name, kind: e.kind, team: e.team, owner: os[r.IntN(len(os))]})
		return len(g.svcs) - 1
	}
	var edges, apps, stores []int
	for _, e := range pick(edgePool, nEdge) {
		edges = append(edges, add(e))
	}
	// apps come in a random order: an app may only depend on apps after
	// it, which keeps the graph acyclic and gives it depth.
	for _, e := range pick(appPool, nApp) {
		apps = append(apps, add(e))
	}
	for _, e := range pick(storePool, nStore) {
		stores = append(stores, add(e))
	}
	byName := map[string]int{}
	for i, s := range g.svcs {
		byName[s.name] = i
	}

	for pos, a := range apps {
		later := apps[pos+1:]
		k := []int{0, 1, 1, 2, 2, 3}[r.IntN(6)]
		for _, j := range r.Perm(len(later)) {
			if k == 0 {
				break
			}
			// prefer near successors: a few layers, not one long chain
			if j > 6 && r.IntN(2) == 0 {
				continue
			}
			g.link(a, later[j])
			k--
		}
	}
	for _, s := range stores {
		st := g.svcs[s]
		if st.kind == kindDB {
			// a database belongs to one service, sometimes read by a second
			owner := apps[r.IntN(len(apps))]
			if o, ok := byName[strings.TrimSuffix(st.name, "-db")]; ok {
				owner = o
			}
			g.link(owner, s)
			if r.Float64() < 0.3 {
				g.link(apps[r.IntN(len(apps))], s)
			}
			continue
		}
		users := 2 + r.IntN(4)
		for _, j := range r.Perm(len(apps))[:min(users, len(apps))] {
			g.link(apps[j], s)
		}
	}
	for _, e := range edges {
		k := 2 + r.IntN(4)
		for _, j := range r.Perm(len(apps)) {
			if k == 0 {
				break
			}
			// entry points call the upper half of the app order
			if j > len(apps)/2 && r.IntN(3) > 0 {
				continue
			}
			g.link(e, apps[j])
			k--
		}
	}
	for _, a := range apps {
		if len(g.svcs[a].dependents) == 0 {
			g.link(edges[r.IntN(len(edges))], a)
		}
	}
	for _, s := range g.svcs {
		switch {
		case s.kind == kindEdge:
			s.tier = 1
		case len(s.dependents) >= 3:
			s.tier = 1
		case len(s.dependents) == 2:
			s.tier = 2
		default:
			s.tier = 2 + r.IntN(2)
		}
	}
	return g
}

// link records that a depends on b (once).
func (g *graph) link(a, b int) {
	if a == b || slices.Contains(g.svcs[a].deps, b) {
		return
	}
	g.svcs[a].deps = append(g.svcs[a].deps, b)
	g.svcs[b].dependents = append(g.svcs[b].dependents, a)
}

// adjacent reports whether a and b are the same service or one depends
// directly on the other.
func (g *graph) adjacent(a, b int) bool {
	return a == b || slices.Contains(g.svcs[a].deps, b) || slices.Contains(g.svcs[b].deps, a)
}

func (g *graph) runbook(i int) string {
	return "https://runbooks.example.com/" + g.svcs[i].team + "/" + g.svcs[i].name
}

func (g *graph) namespace(i int) string { return g.svcs[i].team }

// yaml renders the catalog in the format, services sorted by name.
func (g *graph) yaml() []byte {
	idx := make([]int, len(g.svcs))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int { return strings.Compare(g.svcs[a].name, g.svcs[b].name) })
	var b strings.Builder
	b.WriteString("# Service catalog: who owns what and what calls what.\n")
	b.WriteString("services:\n")
	for _, i := range idx {
		s := g.svcs[i]
		deps := make([]string, 0, len(s.deps))
		for _, d := range s.deps {
			deps = append(deps, g.svcs[d].name)
		}
		slices.Sort(deps)
		fmt.Fprintf(&b, "  %s:\n", s.name)
		fmt.Fprintf(&b, "    owner: %s\n", s.owner)
		fmt.Fprintf(&b, "    team: %s\n", s.team)
		fmt.Fprintf(&b, "    tier: %d\n", s.tier)
		fmt.Fprintf(&b, "    runbook: %s\n", g.runbook(i))
		if len(deps) == 0 {
			b.WriteString("    depends_on: []\n")
			continue
		}
		b.WriteString("    depends_on:\n")
		for _, d := range deps {
			fmt.Fprintf(&b, "      - %s\n", d)
		}
	}
	return []byte(b.String())
}
