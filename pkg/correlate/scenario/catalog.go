package scenario

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/aiops-dev/aiops/pkg/correlate"
)

// WriteCatalog writes c to path as YAML, in the form correlate.ReadCatalog
// reads.
func WriteCatalog(path string, c correlate.Catalog) error {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(c); err != nil {
		return fmt.Errorf("catalog: encode: %w", err)
	}
	if err := enc.Close(); err != nil {
		return fmt.Errorf("catalog: encode: %w", err)
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
}

// Layers of the generated graph, from the edge down.
const (
	layerFrontend = iota
	layerAPI
	layerBackend
	layerData
)

// protoService is one entry of the name pools the catalog is drawn from.
type protoService struct {
	name  string
	team  string
	tier  int
	store string // data layer: postgres, mysql, redis, kafka, rabbitmq, elasticsearch
}

// pools hold realistic services per layer; a catalog takes a share of each.
var pools = [4][]protoService{
	layerFrontend: {
		{name: "web-storefront", team: "storefront", tier: 1},
		{name: "mobile-bff", team: "mobile", tier: 1},
		{name: "checkout-web", team: "checkout", tier: 1},
		{name: "partner-portal", team: "partners", tier: 2},
		{name: "admin-portal", team: "backoffice", tier: 3},
		{name: "help-center", team: "support", tier: 3},
	},
	layerAPI: {
		{name: "api-gateway", team: "edge", tier: 1},
		{name: "checkout-api", team: "checkout", tier: 1},
		{name: "search-api", team: "search", tier: 1},
		{name: "account-api", team: "identity", tier: 1},
		{name: "orders-api", team: "orders", tier: 1},
		{name: "catalog-api", team: "catalog", tier: 2},
		{name: "graphql-gateway", team: "edge", tier: 1},
		{name: "cart-api", team: "checkout", tier: 1},
		{name: "partner-api", team: "partners", tier: 2},
		{name: "loyalty-api", team: "growth", tier: 2},
		{name: "reviews-api", team: "catalog", tier: 3},
		{name: "support-api", team: "support", tier: 3},
	},
	layerBackend: {
		{name: "payments", team: "payments", tier: 1},
		{name: "auth", team: "identity", tier: 1},
		{name: "inventory", team: "logistics", tier: 1},
		{name: "pricing", team: "catalog", tier: 1},
		{name: "order-processor", team: "orders", tier: 1},
		{name: "cart-service", team: "checkout", tier: 1},
		{name: "product-catalog", team: "catalog", tier: 1},
		{name: "user-profile", team: "identity", tier: 2},
		{name: "fraud-detection", team: "payments", tier: 1},
		{name: "shipping", team: "logistics", tier: 2},
		{name: "notifications", team: "growth", tier: 2},
		{name: "recommendations", team: "growth", tier: 2},
		{name: "query-service", team: "search", tier: 1},
		{name: "session-service", team: "identity", tier: 1},
		{name: "ledger", team: "payments", tier: 1},
		{name: "order-history", team: "orders", tier: 2},
		{name: "promotions", team: "growth", tier: 2},
		{name: "search-indexer", team: "search", tier: 2},
		{name: "tax-calculator", team: "payments", tier: 2},
		{name: "feature-flags", team: "edge", tier: 1},
		{name: "email-sender", team: "growth", tier: 3},
		{name: "media-service", team: "catalog", tier: 3},
		{name: "warehouse-sync", team: "logistics", tier: 3},
		{name: "audit-log", team: "data-platform", tier: 3},
	},
	layerData: {
		{name: "orders-db", team: "orders", tier: 1, store: "postgres"},
		{name: "payments-db", team: "payments", tier: 1, store: "postgres"},
		{name: "users-db", team: "identity", tier: 1, store: "mysql"},
		{name: "catalog-db", team: "catalog", tier: 1, store: "postgres"},
		{name: "events-kafka", team: "data-platform", tier: 1, store: "kafka"},
		{name: "session-redis", team: "identity", tier: 1, store: "redis"},
		{name: "inventory-db", team: "logistics", tier: 1, store: "postgres"},
		{name: "cache-redis", team: "data-platform", tier: 2, store: "redis"},
		{name: "search-elasticsearch", team: "search", tier: 1, store: "elasticsearch"},
		{name: "cart-redis", team: "checkout", tier: 1, store: "redis"},
		{name: "orders-kafka", team: "data-platform", tier: 1, store: "kafka"},
		{name: "ledger-db", team: "payments", tier: 1, store: "postgres"},
		{name: "notifications-rabbitmq", team: "growth", tier: 2, store: "rabbitmq"},
		{name: "shipping-db", team: "logistics", tier: 2, store: "postgres"},
		{name: "reviews-db", team: "catalog", tier: 3, store: "mysql"},
		{name: "audit-db", team: "data-platform", tier: 3, store: "postgres"},
		{name: "analytics-kafka", team: "data-platform", tier: 2, store: "kafka"},
		{name: "profile-db", team: "identity", tier: 2, store: "postgres"},
	},
}

// MinServices and MaxServices bound Config.Services (the name pools hold
// MaxServices services).
const (
	MinServices = 12
	MaxServices = 60
)

// teamPeople are the owners a team's services are assigned to.
var teamPeople = map[string][]string{
	"storefront":    {"lena.fischer", "omar.haddad"},
	"mobile":        {"yuki.tanaka", "sam.okafor"},
	"checkout":      {"maria.silva", "tom.becker", "ines.moreau"},
	"partners":      {"raj.patel"},
	"backoffice":    {"anna.kowalski"},
	"support":       {"leo.martin"},
	"edge":          {"nora.lindqvist", "felix.wagner"},
	"search":        {"chen.wei", "ana.costa"},
	"identity":      {"david.cohen", "priya.nair"},
	"orders":        {"jonas.berg", "fatima.zahra"},
	"catalog":       {"lucas.rossi", "emma.dubois"},
	"growth":        {"kofi.mensah", "sara.lopez"},
	"payments":      {"mikhail.orlov", "julia.schmidt", "hana.kim"},
	"logistics":     {"pedro.alves", "olga.petrova"},
	"data-platform": {"ivan.horvat", "grace.obi", "ali.demir"},
}

// svcInfo is what the generator knows about a service beyond the catalog.
type svcInfo struct {
	name      string
	layer     int
	team      string
	store     string
	namespace string
	tier      int
	order     int      // position in the topological order: deps have larger orders
	endpoints []string // route labels of its latency and error alerts
	rsHash    string   // replica set hash of its pods
}

// topology is the generated catalog plus generator-side facts.
type topology struct {
	catalog    correlate.Catalog
	svcs       map[string]*svcInfo
	names      []string // sorted
	byLayer    [4][]string
	dependents map[string][]string
}

// buildTopology draws n services from the pools (about 12% frontends, 22%
// APIs, 40% backends, 26% data stores) and wires a layered acyclic graph:
// frontends call 1-2 APIs, APIs 2-4 backends (often auth), backends 0-2
// other backends further down the order and 1-2 data stores, with a strong
// preference for services of the same team. Every backend and data store
// ends up with at least one dependent.
func buildTopology(r *rand.Rand, n int) *topology {
	counts := [4]int{}
	counts[layerFrontend] = max(2, n*12/100)
	counts[layerAPI] = max(3, n*22/100)
	counts[layerData] = max(3, n*26/100)
	counts[layerBackend] = n - counts[layerFrontend] - counts[layerAPI] - counts[layerData]
	// Keep every count inside its pool, moving the excess to the others.
	for {
		moved := false
		for l := range 4 {
			if over := counts[l] - len(pools[l]); over > 0 {
				counts[l] -= over
				for k := range 4 {
					if room := len(pools[k]) - counts[k]; room > 0 && over > 0 {
						m := min(room, over)
						counts[k] += m
						over -= m
					}
				}
				moved = true
			}
		}
		if !moved {
			break
		}
	}

	t := &topology{svcs: map[string]*svcInfo{}, dependents: map[string][]string{}}
	order := 0
	for l := range 4 {
		pool := pools[l]
		// The first entries of each pool are the core a shop always has;
		// the rest are drawn at random.
		core := min(counts[l], max(1, counts[l]/2))
		picked := slices.Clone(pool[:core])
		rest := slices.Clone(pool[core:])
		r.Shuffle(len(rest), func(i, j int) { rest[i], rest[j] = rest[j], rest[i] })
		picked = append(picked, rest[:counts[l]-core]...)
		if l == layerBackend {
			r.Shuffle(len(picked), func(i, j int) { picked[i], picked[j] = picked[j], picked[i] })
		}
		for _, p := range picked {
			s := &svcInfo{
				name:      p.name,
				layer:     l,
				team:      p.team,
				store:     p.store,
				namespace: p.team,
				tier:      p.tier,
				order:     order,
				rsHash:    randomAlnum(r, 9, podAlphabet),
			}
			order++
			if l == layerData {
				s.namespace = "data"
			}
			s.endpoints = endpointsFor(r, s)
			t.svcs[p.name] = s
			t.byLayer[l] = append(t.byLayer[l], p.name)
		}
	}
	deps := map[string][]string{}
	add := func(from, to string) {
		if !slices.Contains(deps[from], to) && from != to {
			deps[from] = append(deps[from], to)
		}
	}
	// pick chooses k distinct candidates, weighting same-team ones by aff.
	pick := func(from *svcInfo, cands []string, k int, aff float64) []string {
		cands = slices.Clone(cands)
		var out []string
		for len(out) < k && len(cands) > 0 {
			total := 0.0
			for _, c := range cands {
				total += weight(from, t.svcs[c], aff)
			}
			x := r.Float64() * total
			i := 0
			for ; i < len(cands)-1; i++ {
				x -= weight(from, t.svcs[cands[i]], aff)
				if x < 0 {
					break
				}
			}
			out = append(out, cands[i])
			cands = slices.Delete(cands, i, i+1)
		}
		return out
	}
	for _, name := range t.byLayer[layerFrontend] {
		s := t.svcs[name]
		for _, d := range pick(s, t.byLayer[layerAPI], 1+r.IntN(2), 4) {
			add(name, d)
		}
	}
	auth := ""
	if _, ok := t.svcs["auth"]; ok {
		auth = "auth"
	}
	for _, name := range t.byLayer[layerAPI] {
		s := t.svcs[name]
		for _, d := range pick(s, t.byLayer[layerBackend], 2+r.IntN(3), 5) {
			add(name, d)
		}
		if auth != "" && r.Float64() < 0.5 {
			add(name, auth)
		}
	}
	backends := t.byLayer[layerBackend]
	for i, name := range backends {
		s := t.svcs[name]
		if later := backends[i+1:]; len(later) > 0 {
			for _, d := range pick(s, later, r.IntN(3), 4) {
				add(name, d)
			}
		}
		for _, d := range pick(s, t.byLayer[layerData], 1+r.IntN(2), 8) {
			add(name, d)
		}
	}
	// Give every backend and data store a dependent.
	for _, l := range []int{layerBackend, layerData} {
		for _, name := range t.byLayer[l] {
			has := false
			for _, ds := range deps {
				if slices.Contains(ds, name) {
					has = true
					break
				}
			}
			if has {
				continue
			}
			s := t.svcs[name]
			var cands []string
			for _, other := range t.names0() {
				o := t.svcs[other]
				if o.order < s.order && (o.layer == l-1 || o.layer == l && l == layerBackend) {
					cands = append(cands, other)
				}
			}
			if len(cands) == 0 {
				for _, other := range t.names0() {
					if t.svcs[other].order < s.order {
						cands = append(cands, other)
					}
				}
			}
			slices.Sort(cands)
			if len(cands) > 0 {
				add(pick(s, cands, 1, 6)[0], name)
			}
		}
	}

	t.names = t.names0()
	t.catalog = correlate.Catalog{Services: make(map[string]correlate.Service, len(t.svcs))}
	for _, name := range t.names {
		s := t.svcs[name]
		d := append([]string{}, deps[name]...)
		slices.Sort(d)
		people := teamPeople[s.team]
		t.catalog.Services[name] = correlate.Service{
			Owner:     people[r.IntN(len(people))] + "@example.com",
			Team:      s.team,
			Tier:      fmt.Sprintf("tier-%d", s.tier),
			Runbook:   fmt.Sprintf("https://runbooks.example.com/%s/%s", s.team, name),
			DependsOn: d,
		}
	}
	t.dependents = t.catalog.Dependents()
	return t
}

func (t *topology) names0() []string {
	names := make([]string, 0, len(t.svcs))
	for n := range t.svcs {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

func weight(from, to *svcInfo, aff float64) float64 {
	if from.team == to.team {
		return aff
	}
	return 1
}

// related reports whether a and b lie on one dependency path.
func (t *topology) related(a, b string) bool {
	return a == b || t.catalog.DependsTransitively(a, b) || t.catalog.DependsTransitively(b, a)
}

// endpointsFor invents the routes (HTTP) or methods (gRPC) a service
// serves; latency and error alerts carry one as their endpoint label.
func endpointsFor(r *rand.Rand, s *svcInfo) []string {
	noun := strings.Split(s.name, "-")[0]
	var all []string
	switch s.layer {
	case layerFrontend:
		all = []string{"/", "/checkout", "/account", "/search", "/product/:id", "/cart", "/static/*"}
	case layerAPI:
		all = []string{
			"/v1/" + noun, "/v1/" + noun + "/{id}", "/v1/" + noun + "/search",
			"/v2/" + noun, "/v1/" + noun + "/{id}/items", "/v1/" + noun + "/batch",
		}
	case layerBackend:
		svc := strings.ToUpper(noun[:1]) + noun[1:] + "Service"
		all = []string{
			noun + "." + svc + "/Get", noun + "." + svc + "/List", noun + "." + svc + "/Create",
			noun + "." + svc + "/Update", noun + "." + svc + "/Stream",
		}
	case layerData:
		return nil
	}
	r.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	k := min(len(all), 3+r.IntN(2))
	out := slices.Clone(all[:k])
	slices.Sort(out)
	return out
}

const hexLower = "0123456789abcdef"

func randomAlnum(r *rand.Rand, n int, alphabet string) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[r.IntN(len(alphabet))]
	}
	return string(b)
}

// podAlphabet is the alphabet Kubernetes draws pod-template hashes and pod
// name suffixes from (no vowels, no look-alike digits).
const podAlphabet = "bcdfghjklmnpqrstvwxz2456789"
